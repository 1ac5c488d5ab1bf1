"""The PyTorch runtimes: the network eager, through torch.compile, or replayed as CUDA graphs.

The network comes from a crossrt checkpoint (or, for export's parity check, a live model);
building it on the device, and compiling or capturing it, is the runner's cold cost.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from .. import checkpoint
from ..system import cpu_count, graphed, require_cuda, select_device, sync
from ..timing import timed
from .base import Runner, enqueue_ms, mean_ms


@dataclass(frozen=True)
class Options:
    """The PyTorch runtimes' settings: torch-compile is this module with compile on."""

    compile: bool = False  # run the network through torch.compile (inductor)


def unavailable(provider: str, options: Options) -> str | None:
    if options.compile and provider == "cpu" and not (shutil.which("c++") or shutil.which("g++")):
        return "torch.compile's CPU backend needs a C++ compiler (c++ or g++ on PATH)"
    return None


def precisions(options: Options) -> tuple[str, ...]:
    return ("fp32",)


def check(path: Path, provider: str, feed: dict, options: Options) -> None:
    if provider == "cuda":  # before any work, and without asking ONNX Runtime anything
        require_cuda("--provider cuda")


def runner(path: Path, row, feeds: list[dict], options: Options) -> Runner:
    build = partial(checkpoint.build_model, checkpoint.load(path))
    return torch_runner(
        build, row.provider, row.threads, row.io, [next(iter(f.values())) for f in feeds], compile=options.compile
    )


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
            compiled(x)
    return compiled


def torch_runner(
    build: Callable[[], object], provider: str, threads: int, io: str, batches: list[np.ndarray], compile: bool = False
) -> Runner:
    """build() returns the network (one input, one output) on the CPU; building it on the device
    (and compiling it, with compile=True) is the cold cost."""
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
        return Runner(
            lambda i: forward(host_x[i]),
            lambda i: [forward(host_x[i]).numpy()],
            create_s,
            label,
            torch.get_num_threads(),
        )

    def e2e(i):
        return forward(host_x[i].to(device)).cpu()  # .cpu() waits for the GPU

    if io == "end-to-end":

        def split():
            dev = host_x[0].to(device)
            out = forward(dev)

            def synced(fn):
                return lambda i: (fn(i), sync(device))

            return {
                "h2d": mean_ms(synced(lambda i: host_x[i].to(device)), len(batches)),
                "enqueue": enqueue_ms(lambda i: forward(dev), lambda: sync(device), len(batches)),
                "compute": mean_ms(synced(lambda i: forward(dev)), len(batches)),
                "d2h": mean_ms(lambda i: out.cpu(), len(batches)),
            }

        return Runner(e2e, lambda i: [e2e(i).numpy()], create_s, label, torch.get_num_threads(), split)

    dev_x = [x.to(device) for x in host_x]
    if io == "cuda-graph":
        replay, capture_s = timed(lambda: _graphed(model, dev_x))
        create_s += capture_s  # capturing is part of the cold cost

    def resident(i):
        out = replay(i) if io == "cuda-graph" else forward(dev_x[i])
        sync(device)
        return out

    return Runner(resident, lambda i: [resident(i).cpu().numpy()], create_s, label, torch.get_num_threads())


def _graphed(model, dev_x: list):
    """The forward pass as one CUDA graph per batch shape (crossrt.system.graphed), on a fixed
    input buffer: replay(i) copies resident batch i into the buffer (on the GPU) and replays;
    the output stays where the graph wrote it."""
    import torch

    static = {shape: x.clone() for shape, x in _one_per_shape(dev_x).items()}
    outs = {}

    def forward(shape):
        def run():
            with torch.no_grad():
                outs[shape] = model(static[shape])  # the last run is the capture: the graph's output

        return run

    replays = graphed({shape: forward(shape) for shape in static})

    def replay(i):
        shape = tuple(dev_x[i].shape)
        static[shape].copy_(dev_x[i])
        replays[shape]()
        return outs[shape]

    return replay


def _one_per_shape(xs: list) -> dict:
    """{shape: a tensor of that shape}, shapes in the order they come: one input per graph or
    per compiled shape."""
    return {tuple(x.shape): x for x in xs}


def copy_of(model) -> Callable[[], object]:
    """A build() for torch_runner from a live model, leaving the caller's model untouched."""
    return lambda: copy.deepcopy(model).float().cpu()
