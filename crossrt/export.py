"""ONNX export, ONNX's checker, and parity of ONNX Runtime against PyTorch on the test set.

The exported file carries what a user of it needs (dataset, arch, epochs, accuracy, the
preprocessing) in its metadata_props, and replaces an older file only once the checker
has accepted it.
"""

from __future__ import annotations

import copy
import io
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from . import reference
from .data import PREPROCESSING, in_batches, normalize
from .errors import ModelError, Stopped
from .files import atomic_write
from .reference import SCORING_BATCH
from .results import OnnxParity, TrainResult
from .runtimes.base import all_logits
from .runtimes.pytorch import copy_of, torch_runner

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
        torch.onnx.export(
            m,
            (torch.zeros(1, 1, 28, 28),),
            buf,
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
    proto = onnx.load_from_string(buf.getvalue())
    onnx.helper.set_model_props(proto, {key: str(value) for key, value in metadata.items()})
    onnx.checker.check_model(proto, full_check=True)
    atomic_write(Path(path), proto.SerializeToString())
    return time.perf_counter() - t0


def check_parity(model: torch.nn.Module, path: Path, x: np.ndarray, export_s: float = 0.0) -> OnnxParity:
    """Max absolute logit difference and top-1 agreement of ORT (CPU) against PyTorch on x."""
    batches = in_batches(x, SCORING_BATCH)
    ref = all_logits(torch_runner(copy_of(model), "cpu", 0, "host", batches), len(batches))
    got = reference.logits(path, x)
    return OnnxParity(
        path=str(path),
        opset=OPSET,
        max_abs_diff=float(np.abs(ref - got).max()),
        top1_agreement=float((ref.argmax(1) == got.argmax(1)).mean()),
        images=len(x),
        export_s=export_s,
    )


def read_metadata(path: Path) -> dict[str, str]:
    """The metadata_props of an ONNX file, as a dict; ModelError when it is not an ONNX file."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf's DecodeError, an OSError, ...
        raise ModelError(f"{path}: not an ONNX model ({type(e).__name__})") from None
    return {p.key: p.value for p in model.metadata_props}


def onnx_metadata(
    dataset: str,
    data_dir: str | None,
    arch: str,
    precision: str,
    epochs: int,
    accuracy: float | None,
    weights_sha256: str | None,
) -> dict[str, str]:
    """What a user of the .onnx file needs to know about it, for its metadata_props: among it,
    where its training data was (bench-infer and export find it there again) and the weights'
    fingerprint (bench-infer refuses a checkpoint with other weights)."""
    return {
        "dataset": dataset,
        "data_dir": data_dir or "",
        "arch": arch,
        "epochs": str(epochs),
        "precision": precision,
        "accuracy": "" if accuracy is None else f"{accuracy:.4f}",
        "preprocessing": PREPROCESSING,
        "weights_sha256": weights_sha256 or "",
        "torch_version": str(torch.__version__),
        "producer": "crossrt",
    }


def export_checked(model: torch.nn.Module, path: Path, metadata: dict[str, str], test_images: np.ndarray) -> OnnxParity:
    """Export, then check ONNX Runtime against PyTorch on the (raw uint8) test images."""
    export_s = export_onnx(model, path, metadata)
    return check_parity(model, path, normalize(test_images), export_s)


def export_checkpoint(state: dict, model: torch.nn.Module, path: Path, test_images: np.ndarray) -> OnnxParity:
    """Export a checkpoint's model (crossrt.checkpoint.load) with its training run's metadata."""
    epochs = state["epochs"]
    meta = onnx_metadata(
        state["dataset"],
        state.get("data_dir"),
        state["config"]["arch"],
        state["config"]["precision"],
        len(epochs),
        epochs[-1]["valid_accuracy"] if epochs else None,
        state.get("weights_sha256"),
    )
    return export_checked(model, path, meta, test_images)


def export_trained(model: torch.nn.Module, result: TrainResult, path: Path, test_images: np.ndarray) -> None:
    """Export the model a training run just produced into result.onnx.

    Training is done and checkpointed by then, so a failed or interrupted export raises
    Stopped with the result, which is saved all the same (marked incomplete).
    """
    meta = onnx_metadata(
        result.dataset,
        result.dataset_source,
        result.arch,
        result.precision,
        len(result.epochs),
        result.summary()["final_accuracy"],
        result.weights_sha256,
    )
    try:
        result.onnx = export_checked(model, path, meta, test_images)
    except (KeyboardInterrupt, Exception) as e:
        result.complete = False
        interrupted = isinstance(e, KeyboardInterrupt)
        what = "interrupted during the ONNX export" if interrupted else f"the ONNX export failed ({e})"
        raise Stopped(
            f"{what}; {result.checkpoint} holds the trained model (export it with: "
            f"crossrt export --checkpoint {result.checkpoint})",
            result,
            interrupted=interrupted,
        ) from None


def tiny_model(path: Path) -> None:
    """Conv, ReLU, pooling, flatten and a matrix product: LeNet5's kinds of node and signature, small.
    What `doctor` and the suite open a session on to learn whether a provider really runs here."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.standard_normal(s, dtype=np.float32), n)
        for n, s in (("w", (4, 1, 5, 5)), ("b", (4,)), ("g", (4 * 12 * 12, 10)))
    ]
    nodes = [
        helper.make_node("Conv", [INPUT_NAME, "w", "b"], ["c"]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("MatMul", ["f", "g"], [OUTPUT_NAME]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", 10])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)
    helper.set_model_props(model, {"producer": "crossrt"})  # crossrt's: a probe for the PyTorch runtimes too
    onnx.save(model, str(path))
