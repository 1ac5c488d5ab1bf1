"""Ready-to-time runners: an ONNX Runtime session or a PyTorch model over a list of batches.

ONNX Runtime silently falls back to the CPU when the CUDA provider cannot start (a missing
library, no GPU): it logs a warning and runs anyway. A benchmark must not report CPU numbers
under a CUDA label, so after creating a session we read back ``session.get_providers()``
and fail when the requested provider is not first in it.

A runner's ``run(i)`` processes batch i and returns only when the work is done (the clock
is read right after); ``logits(i)`` does the same and returns host logits, for scoring.
"""

from __future__ import annotations

import copy
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .data import IMAGE_SIZE, NUM_CLASSES
from .errors import ModelError, ProviderError
from .files import regular_file
from .system import cpu_count, select_device, sync
from .timing import call_times, timed

ORT_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


@dataclass
class Runner:
    run: Callable[[int], object]
    logits: Callable[[int], np.ndarray]
    create_s: float  # cold cost: session creation, or building the model on the device
    providers: list[str]
    threads_effective: int | None
    split: Callable[[], dict] | None = None  # CUDA: per-batch copy/compute split in ms


def all_logits(runner: Runner, n_batches: int) -> np.ndarray:
    """Host logits of every batch, in order (untimed: for scoring and parity)."""
    return np.concatenate([runner.logits(i) for i in range(n_batches)])


def _mean_ms(fn: Callable[[int], object], n: int) -> float:
    return 1e3 * sum(call_times(fn, n)) / n


# ---------------------------------------------------------------------------- ONNX Runtime

def _ort():
    import onnxruntime as ort

    # ORT logs through its own default logger, straight to stderr; a failed CUDA provider
    # prints several lines there. We check and report every failure ourselves, in one line.
    ort.set_default_logger_severity(4)
    return ort


def session_options(threads: int, spin: bool = True):
    """Explicit thread settings: N intra-op threads, 1 inter-op thread, sequential execution.

    LeNet5 is a chain of ops with nothing to run side by side, so inter-op parallelism
    could only add scheduling noise. Spinning keeps idle intra-op threads busy-waiting
    between ops (ORT's default): lower latency, at the price of burning CPU.
    """
    ort = _ort()
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads  # 0 = ORT's default (one per physical core)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    so.log_severity_level = 3
    return so


def _preload_cuda(ort) -> None:
    """Let the CUDA provider find the CUDA/cuDNN libraries that come with pip packages
    (nvidia-*-cu13 wheels, or a CUDA build of torch) instead of needing a system install."""
    if hasattr(ort, "preload_dlls"):
        try:
            import torch  # noqa: F401  a CUDA build of torch loads its CUDA libraries
        except ImportError:
            pass
        ort.preload_dlls()


def create_session(path: Path, provider: str = "cpu", threads: int = 0, spin: bool = True):
    """An InferenceSession on exactly `provider`, with the model's signature checked."""
    ort = _ort()
    path = regular_file(path, "model", missing="run `make train` first to create it")
    wanted = ORT_PROVIDERS[provider]
    if provider == "cuda":
        if wanted not in ort.get_available_providers():
            raise ProviderError(f"--provider cuda: this onnxruntime build ({ort.__version__}) has no "
                                "CUDAExecutionProvider; install onnxruntime-gpu")
        _preload_cuda(ort)
    # TF32 explicitly on, as cuDNN runs PyTorch's convolutions: both CUDA rows use the same math.
    providers = [wanted] if provider == "cpu" else [(wanted, {"use_tf32": "1"}), ORT_PROVIDERS["cpu"]]
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
    try:  # a file can load and still fail to run (a damaged weight shape, an op without a kernel)
        out = session.run(None, {session.get_inputs()[0].name: np.zeros((1, 1, IMAGE_SIZE, IMAGE_SIZE), np.float32)})
    except Exception as e:
        raise ModelError(f"{path}: ONNX Runtime loads it but cannot run it: {str(e).strip().splitlines()[0]}") from None
    if np.shape(out[0]) != (1, NUM_CLASSES):
        raise ModelError(f"{path}: one image gives output of shape {np.shape(out[0])}, expected (1, {NUM_CLASSES})")
    return session


def check_signature(session, path: Path) -> None:
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


def ort_runner(model: Path, provider: str, threads: int, io: str, batches: list[np.ndarray],
               spin: bool = True) -> Runner:
    ort = _ort()
    session, create_s = timed(lambda: create_session(model, provider, threads, spin))
    name, out_name = session.get_inputs()[0].name, session.get_outputs()[0].name
    providers = session.get_providers()
    threads_effective = threads or None  # ORT does not report the size of its default pool

    def bind(x_dev, rows):
        """An IO binding of one device input to a preallocated device output."""
        binding = session.io_binding()
        binding.bind_ortvalue_input(name, x_dev)
        y_dev = ort.OrtValue.ortvalue_from_shape_and_type((rows, NUM_CLASSES), np.float32, "cuda", 0)
        binding.bind_ortvalue_output(out_name, y_dev)
        return binding

    def to_gpu(i):
        return ort.OrtValue.ortvalue_from_numpy(batches[i], "cuda", 0)

    def host(i):
        return session.run([out_name], {name: batches[i]})[0]

    if io == "host":
        return Runner(host, host, create_s, providers, threads_effective)
    if io == "end-to-end":
        def split():
            binding = bind(to_gpu(0), len(batches[0]))
            n = len(batches)
            return {"h2d": _mean_ms(to_gpu, n),
                    "compute": _mean_ms(lambda i: session.run_with_iobinding(binding), n),
                    "d2h": _mean_ms(lambda i: binding.get_outputs()[0].numpy(), n)}
        return Runner(host, host, create_s, providers, threads_effective, split)

    # Device-resident: inputs copied to the GPU once, outputs preallocated there, one
    # IO binding per batch, so the timed call is the model and nothing else.
    bindings = [bind(to_gpu(i), len(b)) for i, b in enumerate(batches)]

    def resident(i):
        # ORT's CUDA provider synchronises its stream at the end of run(), so the clock
        # read after this call covers the GPU work.
        session.run_with_iobinding(bindings[i])

    def logits(i):
        resident(i)
        return bindings[i].get_outputs()[0].numpy()

    return Runner(resident, logits, create_s, providers, threads_effective)


# ---------------------------------------------------------------------------- PyTorch

def _compiled(model, inputs: list):
    """The model through torch.compile (inductor), compiled now on one input of every batch
    shape it will see, so that compilation is the cold cost and never lands in a timed batch."""
    import torch
    import torch._inductor.config as inductor

    # Compile in this process: a pool of compile workers would linger and share the cores with
    # the timed runs. And with an empty cache: a cold cost that reused yesterday's compiled
    # kernels (2.6 s here instead of 15 s) would not be the cost a new user pays.
    inductor.compile_threads = 1
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="crossrt-inductor-")
    torch._dynamo.reset()
    compiled = torch.compile(model, dynamic=False)
    with torch.inference_mode():
        for x in {tuple(x.shape): x for x in inputs}.values():
            compiled(x)
    return compiled


def torch_runner(build: Callable[[], object], provider: str, threads: int, io: str,
                 batches: list[np.ndarray], compile: bool = False) -> Runner:
    """build() returns the network on the CPU; building it on the device (and compiling it,
    with compile=True) is the cold cost."""
    import torch

    device = select_device(provider, threads or cpu_count())

    host_x = [torch.from_numpy(b) for b in batches]

    def make():
        model = build().to(device, memory_format=torch.channels_last).eval()
        return _compiled(model, [x.to(device) for x in host_x]) if compile else model

    model, create_s = timed(make)
    label = ["cuda:0 " + torch.cuda.get_device_name(0)] if provider == "cuda" else ["cpu"]

    def forward(x):
        with torch.inference_mode():
            return model(x)

    if io == "host":
        return Runner(lambda i: forward(host_x[i]), lambda i: forward(host_x[i]).numpy(), create_s, label,
                      torch.get_num_threads())

    def e2e(i):
        return forward(host_x[i].to(device)).cpu()  # .cpu() waits for the GPU

    if io == "end-to-end":
        def split():
            dev = host_x[0].to(device)
            out = forward(dev)

            def synced(fn):
                return lambda i: (fn(i), sync(device))

            return {"h2d": _mean_ms(synced(lambda i: host_x[i].to(device)), len(batches)),
                    "compute": _mean_ms(synced(lambda i: forward(dev)), len(batches)),
                    "d2h": _mean_ms(lambda i: out.cpu(), len(batches))}
        return Runner(e2e, lambda i: e2e(i).numpy(), create_s, label, torch.get_num_threads(), split)

    dev_x = [x.to(device) for x in host_x]

    def resident(i):
        out = forward(dev_x[i])
        sync(device)
        return out

    return Runner(resident, lambda i: resident(i).cpu().numpy(), create_s, label, torch.get_num_threads())


def copy_of(model) -> Callable[[], object]:
    """A build() for torch_runner from a live model, leaving the caller's model untouched."""
    return lambda: copy.deepcopy(model).float().cpu()
