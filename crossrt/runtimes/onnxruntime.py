"""The ONNX Runtime runtime: sessions that are exactly what was asked for, and its runner.

ONNX Runtime silently falls back to the CPU when the CUDA provider cannot start (a missing
library, no GPU): it logs a warning and runs anyway. A benchmark must not report CPU numbers
under a CUDA label. So the provider list of a CUDA session is read back (the CUDA provider
first, or no session), and a CUDA row records where ONNX Runtime's profiler saw each node run,
said under the table when any ran on the CPU (shape computations ORT keeps there on purpose,
an operator without a CUDA kernel); a session captured as a CUDA graph is created with CPU
fallback disabled (`session.disable_cpu_ep_fallback`), as capture needs every node on the GPU. ORT's own
messages (a failed library load, its log) never reach the screen: crossrt says what went
wrong in one line. Every run is given RunOptions that a Ctrl-C sets `terminate` on
(crossrt.stopping), so that even a model that never ends stops at once.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tempfile
import threading
import weakref
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from .. import stopping
from ..checks import choice, in_range, pairs
from ..errors import ModelError, ProviderError
from ..files import regular_file
from ..system import max_threads
from ..timing import timed
from .base import Runner, enqueue_ms, mean_ms

ORT_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}  # each provider's own EP
GRAPH_OPTIMIZATIONS = {
    "disabled": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}
EXECUTION_MODES = {"sequential": "ORT_SEQUENTIAL", "parallel": "ORT_PARALLEL"}
# What ORT raises for a model it cannot load, on any execution provider; anything else that
# creating a session on another EP than the CPU's raises is that EP's failure.
MODEL_ERRORS = ("InvalidProtobuf", "InvalidGraph", "NoSuchFile", "NoModel", "NotImplemented")
GRAPH_WARMUP = 3  # runs per graph id before ORT captures it (it warms up twice, then captures)
MAX_GRAPHS = 1000  # one graph per resident batch: batch sizes that leave more batches are refused


@dataclass(frozen=True)
class Options:
    """ONNX Runtime's settings of a row, each a `--runtime-option NAME=VALUE`. The defaults are what
    every ONNX Runtime row ran with before options existed. LeNet5 is a chain of ops with nothing to
    run side by side, so inter-op parallelism could only add scheduling noise: one inter-op thread,
    sequential execution."""

    ep: str = ""  # the execution provider; "" = the row's provider's own (ORT_PROVIDERS)
    ep_options: str = ""  # the EP's provider options, KEY=VALUE;KEY=VALUE (CUDA: use_tf32=1 unless given)
    graph_optimization: str = "all"  # from GRAPH_OPTIMIZATIONS
    inter_op_threads: int = 1
    execution_mode: str = "sequential"  # from EXECUTION_MODES

    def __post_init__(self) -> None:
        choice("--runtime-option graph_optimization", self.graph_optimization, tuple(GRAPH_OPTIMIZATIONS))
        choice("--runtime-option execution_mode", self.execution_mode, tuple(EXECUTION_MODES))
        in_range("--runtime-option inter_op_threads", self.inter_op_threads, 0, max_threads())
        self.provider_options("cpu")  # a malformed ep_options fails now, not in a row

    def ep_of(self, provider: str) -> str:
        return self.ep or ORT_PROVIDERS[provider]

    def provider_options(self, provider: str, graph: bool = False) -> dict[str, str]:
        """The EP's options: ep_options over the defaults crossrt sets for CUDA (TF32 explicitly
        on, as cuDNN runs PyTorch's convolutions, so both CUDA rows use the same math)."""
        given = dict(pairs("--runtime-option ep_options", tuple(filter(None, self.ep_options.split(";"))), str))
        cuda = {"use_tf32": "1", **({"enable_cuda_graph": "1"} if graph else {})}
        return {**(cuda if self.ep_of(provider) == ORT_PROVIDERS["cuda"] else {}), **given}


def _ort():
    import onnxruntime as ort

    ort.set_default_logger_severity(4)  # ORT's default logger writes to stderr; we report failures ourselves
    return ort


def session_options(
    threads: int,
    spin: bool = True,
    options: Options = Options(),
    profile: str | None = None,
    *,
    own_ep: bool = True,
    graph: bool = False,
):
    """Explicit settings: N intra-op threads and the options' inter-op threads, execution mode and
    graph optimisation. Spinning keeps idle intra-op threads busy-waiting between ops (ORT's
    default): lower latency, at the price of burning CPU. On any EP but the CPU's, ORT places on
    the CPU what that EP has no kernel for and the shape computations it keeps there on purpose
    (#13590); the runner records where every node ran (placement). Only a session captured as a
    CUDA graph must have every node on its EP (graph), as ORT's capture requires."""
    ort = _ort()
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads  # 0 = ORT's default (one per physical core)
    so.inter_op_num_threads = options.inter_op_threads
    so.execution_mode = getattr(ort.ExecutionMode, EXECUTION_MODES[options.execution_mode])
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, GRAPH_OPTIMIZATIONS[options.graph_optimization])
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    if not own_ep and graph:
        so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    if profile:
        so.enable_profiling, so.profile_file_prefix = True, profile
    so.log_severity_level = 4
    return so


def preload_cuda(ort) -> str:
    """Let the CUDA provider find the CUDA/cuDNN libraries that come with pip packages (the
    nvidia-* wheels, or a CUDA build of torch); what could not be loaded, in a few words."""
    if not hasattr(ort, "preload_dlls"):
        return ""
    with contextlib.suppress(ImportError):
        import torch  # noqa: F401  a CUDA build of torch loads its CUDA libraries
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):  # it prints each library it cannot load
        ort.preload_dlls()
    missing = [
        ln.split(":")[0].removeprefix("Failed to load ")
        for ln in printed.getvalue().splitlines()
        if ln.startswith("Failed to load")
    ]
    return f"cannot load {', '.join(missing)}" if missing else ""


def _model_error(ort, e: Exception) -> bool:
    state = ort.capi.onnxruntime_pybind11_state
    return isinstance(e, tuple(getattr(state, name) for name in MODEL_ERRORS if hasattr(state, name)))


def create_session(
    path,
    provider: str = "cpu",
    threads: int = 0,
    spin: bool = True,
    graph: bool = False,
    profile: str | None = None,
    options: Options = Options(),
):
    """An InferenceSession on exactly the EP asked for: a CPU fallback or a model ORT cannot load
    is a one-line error."""
    ort = _ort()
    path = regular_file(path, "model", missing="run `make train` first to create it")
    wanted, why = options.ep_of(provider), ""
    own_ep = wanted == ORT_PROVIDERS["cpu"]
    if not own_ep:
        if wanted not in ort.get_available_providers():
            cause = f"this onnxruntime build ({ort.__version__}) has no {wanted}"
            fix = "install onnxruntime-gpu (make setup on a GPU machine)" if provider == "cuda" else "install its build"
            raise ProviderError(f"--provider {provider}: {cause}; {fix}", cause)
        if provider == "cuda":
            why = preload_cuda(ort)
    so = session_options(threads, spin, options, profile, own_ep=own_ep, graph=graph)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):  # ORT prints an EP's failure to start
            providers = [(wanted, options.provider_options(provider, graph))]
            # Without enable_fallback=0, ORT's Python retries a failed CUDA session (an old driver, a GPU
            # in exclusive use) on the CPU EP, which then fails on its own settings instead of the cause.
            session = ort.InferenceSession(str(path), so, providers=providers, enable_fallback=0)
    except Exception as e:  # ORT raises its own pybind exception types (InvalidProtobuf, Fail, ...)
        reason = ort_reason(e)
        if own_ep or _model_error(ort, e):
            raise ModelError(f"{path}: ONNX Runtime cannot load it: {reason}") from None
        placed = "CPU EP" in reason or "partitioned" in reason  # a node that must be on the GPU is not
        needs = (
            f"; no usable GPU, or the CUDA 13 / cuDNN 9 libraries onnxruntime {ort.__version__} needs are "
            f"missing: make setup on a GPU machine"
            if provider == "cuda" and not placed
            else ""
        )
        message = f"--provider {provider}: {wanted} could not run {path} ({why or reason}{needs})"
        raise ProviderError(message, why or reason) from None
    active = session.get_providers()
    if not active or active[0] != wanted:
        cause = f"ONNX Runtime fell back to {', '.join(active)} ({why or wanted} could not start)"
        fix = "; no usable GPU, or its libraries are missing: make setup on a GPU machine" if provider == "cuda" else ""
        raise ProviderError(f"--provider {provider}: {cause}{fix}", cause)
    return session


_LOCATION = re.compile(r"\S+\.(?:cc|cpp|h|hpp):\d+ ")  # ORT's `core/graph/model.cc:256 ` before a C++ signature
_PREFIX = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : (?:Load model from .+? failed: ?)?")


def ort_reason(e: BaseException, limit: int = 240) -> str:
    """ONNX Runtime's error as a reader wants it: its code prefix, the model path it repeats, and
    every C++ source location and signature dropped (they stood 300 characters before the cause),
    on one line of at most `limit` characters."""
    text = _PREFIX.sub("", " ".join(str(e).split())) or type(e).__name__
    while found := _LOCATION.search(text):
        text = text[: found.start()] + text[_signature_end(text, found.end()) :]
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _signature_end(text: str, start: int) -> int:
    """Where a C++ signature that starts at `start` ends: after its argument list's closing
    parenthesis (and a ` const`), the space after it too; `start` when there is none."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")" and depth:
            depth -= 1
            if not depth:
                end = i + 1 + 6 * text.startswith(" const", i + 1)
                return end + (text[end : end + 1] == " ")
    return start


_RUNS = weakref.WeakSet()  # every RunOptions handed out, for a Ctrl-C to terminate
_RUNS_LOCK = threading.Lock()  # the watcher thread reads the set while the main thread adds to it


def run_options(**entries: str):
    """RunOptions (with these run config entries) whose runs a Ctrl-C or SIGTERM terminates."""
    options = _ort().RunOptions()
    for key, value in entries.items():
        options.add_run_config_entry(key, value)
    with _RUNS_LOCK:
        _RUNS.add(options)
    return options


def _terminate() -> None:
    with _RUNS_LOCK:
        for options in _RUNS:
            options.log_severity_level = 4  # the run's failure is the interrupt: not logged as an error
            options.terminate = True


stopping.on_signal(_terminate)


def no_capture():
    """RunOptions for a plain run on a CUDA-graph session: graph id -1, no capture and no replay.
    ORT captures only runs through IO binding on device memory; host arrays must never be in one."""
    return run_options(gpu_graph_id="-1")


def host_inputs(session) -> list[str]:
    """The inputs ONNX Runtime reads on the host (its memory info for them is the CPU's): on a CUDA
    session, those a CPU-placed node takes (a Reshape's shape, a scalar), whose copy to the host
    and wait cannot be inside a captured CUDA graph (CUDA error 900/901)."""
    infos = session.get_input_memory_infos()
    return [i.name for i, info in zip(session.get_inputs(), infos) if info.name == "Cpu"]


def capturable(session) -> None:
    """A ProviderError (the cuda-graph row is skipped, with why) when a graph of this session
    would have to read an input on the host."""
    if host := host_inputs(session):
        raise ProviderError(
            f"cuda-graph: ONNX Runtime reads input(s) {', '.join(host)} on the host (a shape or scalar a CPU "
            f"node takes), which no captured CUDA graph can do; the device-resident row times this model"
        )


def placement(path, provider: str, feed: dict, options: Options = Options()) -> dict[str, int]:
    """{execution provider: nodes} as ONNX Runtime's profiler saw it place the nodes of the
    optimised graph (after fusions such as Conv+Relu) when they ran on feed."""
    with tempfile.TemporaryDirectory() as tmp:
        session = create_session(path, provider, profile=os.path.join(tmp, "profile"), options=options)
        session.run(None, feed, run_options())
        events = json.loads(Path(session.end_profiling()).read_text())
    where = {
        e["name"]: e["args"]["provider"]
        for e in events  # a node per name, however many runs
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")
    }
    return dict(Counter(where.values()))


def unavailable(provider: str, options: Options) -> str | None:
    """A registry line's EP that this onnxruntime build lacks. The provider's own EP is never
    unavailable: a missing CUDA provider is a ProviderError from check(), the user asked for it."""
    ort = _ort()
    if options.ep and options.ep not in ort.get_available_providers():
        return f"this onnxruntime build ({ort.__version__}) has no {options.ep}"
    return None


def precisions(options: Options) -> tuple[str, ...]:
    return ("fp32",)  # an int8 model is another file (the registry's onnxruntime-int8)


def check(model, provider: str, feed: dict, options: Options) -> None:
    """The model loads on provider and runs one batch: a file can load and still fail to run (a
    damaged weight shape, an operator without a kernel), and that is the model's fault, not a row's."""
    session = create_session(model, provider, 1, options=options)
    try:
        session.run(None, feed, run_options())
    except Exception as e:
        raise ModelError(f"{model}: ONNX Runtime loads it but cannot run it: {ort_reason(e)}") from None


def runner(model, row, feeds: list[dict], options: Options) -> Runner:
    return ort_runner(model, row.provider, row.threads, row.io, feeds, row.spin, options)


def ort_runner(
    model, provider: str, threads: int, io_path: str, feeds: list[dict], spin: bool = True, options: Options = Options()
) -> Runner:
    """`host` (CPU), `end-to-end` (host arrays in and out, through CUDA), `device-resident`
    (inputs on the GPU, outputs preallocated there) or `cuda-graph` (device-resident, every
    batch's run captured as a CUDA graph of its own, annotated by gpu_graph_id). On any EP but
    the CPU's, the runner reports where ORT's profiler saw every node run."""
    ort = _ort()
    graph = io_path == "cuda-graph"
    if graph and len(feeds) > MAX_GRAPHS:
        samples = sum(len(next(iter(f.values()), ())) for f in feeds)
        raise ProviderError(
            f"cuda-graph: one graph per resident batch, at most {MAX_GRAPHS} ({len(feeds)} "
            f"batches here: use a batch size of {-(-samples // MAX_GRAPHS)} or more)"
        )
    session, create_s = timed(lambda: create_session(model, provider, threads, spin, graph, options=options))
    if graph:
        capturable(session)
    out_names = [o.name for o in session.get_outputs()]
    providers = session.get_providers()
    threads_effective = threads or None  # ORT does not report the size of its default pool
    plain = no_capture() if graph else run_options()
    own_ep = options.ep_of(provider) == ORT_PROVIDERS["cpu"]
    placed = None if own_ep else partial(placement, model, provider, feeds[0], options)

    def host(i):
        return session.run(out_names, feeds[i], plain)

    if io_path == "host":
        return Runner(host, host, create_s, providers, threads_effective, placement=placed)

    def to_gpu(feed):
        return {name: ort.OrtValue.ortvalue_from_numpy(a, "cuda", 0) for name, a in feed.items()}

    def bind(i, dev):
        """An IO binding of batch i's device inputs to preallocated device outputs of the shapes a
        host run of batch i gives."""
        binding = session.io_binding()
        for name, value in dev.items():
            binding.bind_ortvalue_input(name, value)
        for name, out in zip(out_names, host(i)):
            binding.bind_ortvalue_output(
                name, ort.OrtValue.ortvalue_from_shape_and_type(out.shape, out.dtype, "cuda", 0)
            )
        return binding

    if io_path == "end-to-end":

        def split():
            binding, n = bind(0, to_gpu(feeds[0])), len(feeds)
            nosync = run_options(disable_synchronize_execution_providers="1")  # returns once queued: the enqueue time
            return {
                "h2d": mean_ms(lambda i: to_gpu(feeds[i]), n),
                "enqueue": enqueue_ms(
                    lambda i: session.run_with_iobinding(binding, nosync), binding.synchronize_outputs, n
                ),
                "compute": mean_ms(lambda i: session.run_with_iobinding(binding, plain), n),
                "d2h": mean_ms(lambda i: [o.numpy() for o in binding.get_outputs()], n),
            }

        return Runner(host, host, create_s, providers, threads_effective, split, placed)

    # Device-resident: inputs copied to the GPU once, outputs preallocated there, one IO
    # binding per batch, so the timed call is the model and nothing else. ORT's CUDA provider
    # synchronises its stream at the end of run(), so the clock read after it covers the GPU.
    bindings = [bind(i, to_gpu(f)) for i, f in enumerate(feeds)]
    # One graph id per batch when capturing (0 is ORT's own, -1 means none).
    options = [run_options(gpu_graph_id=str(i + 1)) if graph else plain for i in range(len(bindings))]
    if graph:

        def capture():
            for i, binding in enumerate(bindings):
                for _ in range(GRAPH_WARMUP):
                    session.run_with_iobinding(binding, options[i])

        create_s += timed(capture)[1]  # capturing the graphs is part of the cold cost

    def resident(i):
        session.run_with_iobinding(bindings[i], options[i])

    def outputs(i):
        resident(i)
        return [o.numpy() for o in bindings[i].get_outputs()]

    return Runner(resident, outputs, create_s, providers, threads_effective, placement=placed)
