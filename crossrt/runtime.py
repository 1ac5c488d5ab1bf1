"""ONNX Runtime sessions that are exactly what was asked for.

ONNX Runtime silently falls back to the CPU when the CUDA provider cannot start (a missing
library, no GPU): it logs a warning and runs anyway. A benchmark must not report CPU numbers
under a CUDA label, so after creating a session we read back ``session.get_providers()``
and fail when the requested provider is not first in it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from .config import CrossrtError
from .data import IMAGE_SIZE, NUM_CLASSES

ORT_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}

# ORT logs through its own default logger, straight to stderr; a failed CUDA provider
# prints several lines there. We check and report every failure ourselves, in one line.
ort.set_default_logger_severity(4)


class ModelError(CrossrtError):
    """A model file that ONNX Runtime cannot use for LeNet5-style inference."""


class ProviderError(CrossrtError):
    """A requested execution provider that is not really in use."""


def session_options(threads: int, spin: bool = True) -> ort.SessionOptions:
    """Explicit thread settings: N intra-op threads, 1 inter-op thread, sequential execution.

    LeNet5 is a chain of ops with nothing to run side by side, so inter-op parallelism
    could only add scheduling noise. Spinning keeps idle intra-op threads busy-waiting
    between ops (ORT's default): lower latency, at the price of burning CPU.
    """
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads  # 0 = ORT's default (one per physical core)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    so.log_severity_level = 3
    return so


def _preload_cuda() -> None:
    """Let the CUDA provider find the CUDA/cuDNN libraries that come with pip packages
    (nvidia-*-cu13 wheels, or a CUDA build of torch) instead of needing a system install."""
    if hasattr(ort, "preload_dlls"):
        try:
            import torch  # noqa: F401  a CUDA build of torch loads its CUDA libraries
        except ImportError:
            pass
        ort.preload_dlls()


def create_session(path: Path, provider: str = "cpu", threads: int = 0,
                   spin: bool = True) -> ort.InferenceSession:
    """An InferenceSession on exactly `provider`, with the model's signature checked."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file (run `make train` first to create it)")
    wanted = ORT_PROVIDERS[provider]
    if provider == "cuda":
        if wanted not in ort.get_available_providers():
            raise ProviderError(f"--provider cuda: this onnxruntime build ({ort.__version__}) has no "
                                "CUDAExecutionProvider; install onnxruntime-gpu")
        _preload_cuda()
    providers = [wanted] if provider == "cpu" else [wanted, ORT_PROVIDERS["cpu"]]
    try:
        session = ort.InferenceSession(str(path), session_options(threads, spin), providers=providers)
    except Exception as e:  # ORT raises its own pybind exception types (InvalidProtobuf, Fail, ...)
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"{path}: ONNX Runtime cannot load it: {reason}") from None
    active = session.get_providers()
    if not active or active[0] != wanted:
        raise ProviderError(
            f"--provider {provider}: ONNX Runtime fell back to {', '.join(active)} "
            f"({wanted} could not start: no usable GPU, or the CUDA/cuDNN libraries that "
            f"onnxruntime {ort.__version__} needs are missing)")
    check_signature(session, path)
    return session


def check_signature(session: ort.InferenceSession, path: Path) -> None:
    """One float input [N, 1, 28, 28] and one output [N, 10], N free."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelError(f"{path}: expected 1 input and 1 output, found {len(inputs)} and {len(outputs)}")
    shape, want = inputs[0].shape, [1, IMAGE_SIZE, IMAGE_SIZE]
    if len(shape) != 4 or list(shape[1:]) != want or inputs[0].type != "tensor(float)":
        raise ModelError(f"{path}: input {inputs[0].name!r} is {inputs[0].type} {shape}, "
                         f"expected tensor(float) [N, {', '.join(map(str, want))}]")
    if isinstance(shape[0], int) and shape[0] != 1:
        raise ModelError(f"{path}: input batch size is fixed at {shape[0]}; export with a dynamic batch axis")
    out = outputs[0].shape
    if len(out) != 2 or out[1] != NUM_CLASSES:
        raise ModelError(f"{path}: output {outputs[0].name!r} is {out}, expected [N, {NUM_CLASSES}]")


def onnx_flops(path: Path) -> int:
    """FLOPs of one forward pass per image, counted from the ONNX graph (Conv, Gemm, MatMul).

    Shapes come from ONNX shape inference with the batch set to 1; like
    :func:`crossrt.model.forward_flops`, elementwise ops and pooling are not counted.
    """
    model = onnx.load(str(path))
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    dim.ClearField("dim_param")
    dim.dim_value = 1
    model = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for vi in (*model.graph.input, *model.graph.value_info, *model.graph.output):
        shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    total = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            w, out = shapes[node.input[1]], shapes[node.output[0]]
            total += 2 * int(np.prod(out)) * int(np.prod(w[1:]))
        elif node.op_type in ("Gemm", "MatMul"):
            a, out = shapes[node.input[0]], shapes[node.output[0]]
            trans_a = any(at.name == "transA" and at.i for at in node.attribute)
            k = a[-2] if trans_a else a[-1]
            total += 2 * int(np.prod(out)) * k
    return total
