"""ONNX export, ONNX's checker, and parity of ONNX Runtime against PyTorch on the test set."""

from __future__ import annotations

import copy
import io
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from .data import PREPROCESSING, normalize
from .report import OnnxParity, TrainResult, atomic_write
from .runtime import create_session

OPSET = 17
INPUT_NAME, OUTPUT_NAME = "input", "logits"


def export_onnx(model: torch.nn.Module, path: Path, metadata: dict[str, str], opset: int = OPSET) -> float:
    """Export model (fp32, on the CPU) to path with a dynamic batch axis; return seconds taken.

    Uses the TorchScript exporter: for this plain conv net it produces the same graph as the
    dynamo exporter in a fraction of the time (0.15 s against 2.3 s here) and needs no
    onnxscript. The model is checked with onnx.checker before it replaces anything on disk.
    """
    t0 = time.perf_counter()
    m = copy.deepcopy(model).float().cpu().eval().to(memory_format=torch.contiguous_format)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its own deprecation
        torch.onnx.export(m, (torch.zeros(1, 1, 28, 28),), buf, dynamo=False, opset_version=opset,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    proto = onnx.load_from_string(buf.getvalue())
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.checker.check_model(proto, full_check=True)
    atomic_write(Path(path), proto.SerializeToString())
    return time.perf_counter() - t0


def torch_logits(model: torch.nn.Module, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """fp32 CPU logits of model for x, in batches."""
    m = copy.deepcopy(model).float().cpu().eval()
    with torch.inference_mode():
        return np.concatenate([m(torch.from_numpy(x[i:i + batch_size])).numpy()
                               for i in range(0, len(x), batch_size)])


def ort_logits(path: Path, x: np.ndarray, batch_size: int = 1000, threads: int = 0) -> np.ndarray:
    """ONNX Runtime CPU-provider logits of the model at path for x, in batches."""
    session = create_session(path, "cpu", threads)
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[i:i + batch_size]})[0]
                           for i in range(0, len(x), batch_size)])


def check_parity(model: torch.nn.Module, path: Path, x: np.ndarray, export_s: float = 0.0) -> OnnxParity:
    """Max absolute logit difference and top-1 agreement of ORT (CPU) against PyTorch on x."""
    ref, got = torch_logits(model, x), ort_logits(path, x)
    return OnnxParity(
        path=str(path), opset=OPSET,
        max_abs_diff=float(np.abs(ref - got).max()),
        top1_agreement=float((ref.argmax(1) == got.argmax(1)).mean()),
        images=len(x), export_s=export_s)


def read_metadata(path: Path) -> dict[str, str]:
    """The metadata_props of an ONNX file, as a dict."""
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def onnx_metadata(dataset: str, arch: str, precision: str, epochs: int, accuracy: float | None) -> dict[str, str]:
    """What a user of the .onnx file needs to know about it, for its metadata_props."""
    return {
        "dataset": dataset, "arch": arch, "epochs": str(epochs), "precision": precision,
        "accuracy": "" if accuracy is None else f"{accuracy:.4f}", "preprocessing": PREPROCESSING,
        "torch_version": str(torch.__version__), "producer": "crossrt",
    }


def export_checked(model: torch.nn.Module, path: Path, metadata: dict[str, str], x: np.ndarray) -> OnnxParity:
    """Export, then check ONNX Runtime against PyTorch on x (the normalised test images)."""
    export_s = export_onnx(model, path, metadata)
    return check_parity(model, path, x, export_s)


def export_result(model: torch.nn.Module, result: TrainResult, path: Path, test_images: np.ndarray) -> OnnxParity:
    """Export the model a training run just produced, with that run's metadata, and check it."""
    meta = onnx_metadata(result.dataset, result.arch, result.precision, len(result.epochs),
                         result.summary()["final_accuracy"])
    return export_checked(model, path, meta, normalize(test_images))
