"""The PyTorch runtimes: the network eager, through torch.compile, or replayed as CUDA graphs.

The network comes from a crossrt checkpoint, from the user's own file (--torch-model: a
torch.export program or TorchScript, fed every input of the ONNX graph in its order), or, for
export's parity check, a live model; building it on the device, and compiling or capturing it,
is the runner's cold cost.
"""

from __future__ import annotations

import copy
import inspect
import os
import shutil
import sysconfig
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import numpy as np

from .. import checkpoint
from ..errors import ModelError
from ..plan import one_line
from ..system import cpu_count, graphed, require_cuda, select_device, sync
from ..timing import timed
from .base import Runner, enqueue_ms, mean_ms


@dataclass(frozen=True)
class Options:
    """The PyTorch runtimes' settings: torch-compile is this module with compile on."""

    compile: bool = False  # run the network through torch.compile (inductor)


def unavailable(provider: str, options: Options) -> str | None:
    """What torch.compile's backend needs on this device and the machine lacks: inductor's C++ on
    the CPU; on CUDA, what Triton builds its kernel launcher with (triton/runtime/build.py: $CC,
    else gcc, else clang, and Python's headers)."""
    if not options.compile:
        return None
    if provider == "cpu" and not (shutil.which("c++") or shutil.which("g++")):
        return "torch.compile's CPU backend needs a C++ compiler (c++ or g++ on PATH)"
    if provider == "cuda":
        if not (os.environ.get("CC") or shutil.which("gcc") or shutil.which("clang")):
            return (
                "torch.compile on CUDA builds Triton's kernel launcher, which needs a C compiler (gcc or clang, or $CC)"
            )
        if not (Path(sysconfig.get_paths()["include"]) / "Python.h").is_file():
            return "torch.compile on CUDA builds Triton's kernel launcher, which needs Python's headers (Python.h)"
    return None


def cannot_run(path: Path, options: Options) -> str | None:
    if options.compile and archive(path) == "torchscript":
        return f"torch.compile does not compile TorchScript ({path.name}): save the network with torch.export.save"
    return None


def precisions(options: Options) -> tuple[str, ...]:
    return ("fp32",)


def check(path: Path, provider: str, feed: dict, options: Options) -> None:
    if provider == "cuda":  # before any work, and without asking ONNX Runtime anything
        require_cuda("--provider cuda")


def runner(path: Path, row, feeds: list[dict], options: Options) -> Runner:
    """A crossrt checkpoint's LeNet5 fed its one input, or the user's own network (--torch-model)
    fed every input in the ONNX graph's order."""
    if is_checkpoint(path):
        build = partial(checkpoint.build_model, checkpoint.load(path))
        batches = [(next(iter(f.values())),) for f in feeds]
    else:
        build, batches = partial(load_network, path), [tuple(f.values()) for f in feeds]
    return torch_runner(build, row.provider, row.threads, row.io, batches, compile=options.compile)


def archive(path: Path) -> str:
    """What a torch file holds, by its members: "torchscript" (torch.jit.save's code), "export"
    (torch.export.save's program), else "checkpoint" (torch.save's dict, a crossrt checkpoint).
    Read once per version of the file: the plan asks for every configuration."""
    try:
        stat = os.stat(path)
    except OSError:
        return "checkpoint"
    return _archive(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=16)
def _archive(path: str, mtime_ns: int, size: int) -> str:
    try:
        with zipfile.ZipFile(path) as z:
            parts = {p for n in z.namelist() for p in n.split("/")[1:2]}
    except (OSError, zipfile.BadZipFile):
        return "checkpoint"
    return "torchscript" if "code" in parts else "export" if "archive_format" in parts else "checkpoint"


def is_checkpoint(path: Path) -> bool:
    """A crossrt checkpoint, not a network of the user's (--torch-model)."""
    return archive(path) == "checkpoint"


def load_network(path: Path):
    """The user's network on the CPU: a torch.export program (torch.export.save, .pt2) or TorchScript
    (torch.jit.save); anything else is one line naming the file."""
    import torch

    what = "not a torch.export program (torch.export.save, .pt2) or TorchScript (torch.jit.save)"
    kind = archive(path)
    if kind == "checkpoint":  # a state dict, a pickle, not a zip at all: torch would only log its own confusion
        raise ModelError(f"--torch-model {path}: {what}: it holds no network's code or program")
    try:
        with warnings.catch_warnings():  # torch 2.13 calls TorchScript deprecated; the user chose the format
            warnings.simplefilter("ignore", DeprecationWarning)
            if kind == "torchscript":
                return torch.jit.load(str(path), map_location="cpu")
            return torch.export.load(str(path)).module()
    except Exception as e:  # a file of another torch version, cut short, ...
        raise ModelError(f"--torch-model {path}: {what} that loads here ({one_line(e)})") from None


def check_network(path: Path, feed: dict) -> None:
    """The user's network loads and runs one batch, fed the ONNX graph's inputs in its order, before
    any work: a program exported for other shapes fails here in one line, not mid-run."""
    import torch

    net = load_network(path)
    takes = argument_names(net)
    if takes is not None and len(takes) != len(feed):  # another network than the ONNX file's, most likely
        raise ModelError(
            f"--torch-model {path}: the network takes {len(takes)} input(s) ({', '.join(takes)}), the ONNX "
            f"graph has {len(feed)} ({', '.join(feed)}): is it the same model?"
        )
    try:
        with torch.inference_mode():
            out = arrays(net(*(torch.from_numpy(a) for a in feed.values())))
    except Exception as e:
        named = f"; the network's inputs are ({', '.join(takes)})" if takes and takes != list(feed) else ""
        raise ModelError(
            f"--torch-model {path}: fails on one batch of {', '.join(feed)} "
            f"({', '.join(f'{a.dtype}{list(a.shape)}' for a in feed.values())}, in the ONNX graph's order{named}): "
            f"{one_line(e)}"
        ) from None
    if not out:
        raise ModelError(f"--torch-model {path}: returns no tensor")


def argument_names(net) -> list[str] | None:
    """The names of the inputs a loaded network takes, where it says: a TorchScript module's schema,
    a torch.export module's forward(); None when neither tells (*args)."""
    try:
        if hasattr(net.forward, "schema"):
            return [a.name for a in net.forward.schema.arguments][1:]  # without self
        params = inspect.signature(net.forward).parameters.values()
    except (TypeError, ValueError, RuntimeError):
        return None
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        return None
    return [p.name for p in params]


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
        for x in _one_per_shape(inputs).values():
            compiled(*x)
    return compiled


def arrays(out) -> list[np.ndarray]:
    """A network's output (a tensor, or a tuple, list or dict of them) as its arrays, in order, on the host."""
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (tuple, list)):
        return [a for o in out for a in arrays(o)]
    return [out.detach().cpu().numpy()]


def torch_runner(
    build: Callable[[], object], provider: str, threads: int, io: str, batches: list, compile: bool = False
) -> Runner:
    """build() returns the network on the CPU; each batch is its input array, or a tuple of its
    input arrays in the order the network takes them. Building the network on the device (and
    compiling it, with compile=True) is the cold cost."""
    import torch

    device = select_device(provider, threads or cpu_count())

    host_x = [tuple(torch.from_numpy(a) for a in (b if isinstance(b, tuple) else (b,))) for b in batches]

    def on(xs: tuple, where) -> tuple:
        return tuple(x.to(where) for x in xs)

    def make():
        model = build().to(device, memory_format=torch.channels_last)
        try:
            model.eval()
        except NotImplementedError:  # a torch.export program's module is in eval mode already, and says so
            pass
        return _compiled(model, [on(x, device) for x in host_x]) if compile else model

    model, create_s = timed(make)
    label = ["cuda:0 " + torch.cuda.get_device_name(0)] if provider == "cuda" else ["cpu"]

    def forward(xs: tuple):
        with torch.inference_mode():
            return model(*xs)

    if io == "host":
        return Runner(
            lambda i: forward(host_x[i]),
            lambda i: arrays(forward(host_x[i])),
            create_s,
            label,
            torch.get_num_threads(),
        )

    def e2e(i):
        return arrays(forward(on(host_x[i], device)))  # to the host: waits for the GPU

    if io == "end-to-end":

        def split():
            dev = on(host_x[0], device)
            out = forward(dev)

            def synced(fn):
                return lambda i: (fn(i), sync(device))

            return {
                "h2d": mean_ms(synced(lambda i: on(host_x[i], device)), len(batches)),
                "enqueue": enqueue_ms(lambda i: forward(dev), lambda: sync(device), len(batches)),
                "compute": mean_ms(synced(lambda i: forward(dev)), len(batches)),
                "d2h": mean_ms(lambda i: arrays(out), len(batches)),
            }

        return Runner(e2e, e2e, create_s, label, torch.get_num_threads(), split)

    dev_x = [on(x, device) for x in host_x]
    if io == "cuda-graph":
        replay, capture_s = timed(lambda: _graphed(model, dev_x))
        create_s += capture_s  # capturing is part of the cold cost

    def resident(i):
        out = replay(i) if io == "cuda-graph" else forward(dev_x[i])
        sync(device)
        return out

    return Runner(resident, lambda i: arrays(resident(i)), create_s, label, torch.get_num_threads())


def _graphed(model, dev_x: list):
    """The forward pass as one CUDA graph per batch shape (crossrt.system.graphed), on a fixed
    input buffer: replay(i) copies resident batch i into the buffer (on the GPU) and replays;
    the output stays where the graph wrote it."""
    import torch

    static = {shape: tuple(x.clone() for x in xs) for shape, xs in _one_per_shape(dev_x).items()}
    outs = {}

    def forward(shape):
        def run():
            with torch.no_grad():
                outs[shape] = model(*static[shape])  # the last run is the capture: the graph's output

        return run

    replays = graphed({shape: forward(shape) for shape in static})

    def replay(i):
        shape = tuple(tuple(x.shape) for x in dev_x[i])
        for buffer, x in zip(static[shape], dev_x[i]):
            buffer.copy_(x)
        replays[shape]()
        return outs[shape]

    return replay


def _one_per_shape(xs: list) -> dict:
    """{shapes: the inputs of those shapes}, in the order they come: one input per graph or per
    compiled shape."""
    return {tuple(tuple(x.shape) for x in inputs): inputs for inputs in xs}


def copy_of(model) -> Callable[[], object]:
    """A build() for torch_runner from a live model, leaving the caller's model untouched."""
    return lambda: copy.deepcopy(model).float().cpu()
