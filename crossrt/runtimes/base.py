"""What every runtime hands to bench-infer: a Runner over a list of batches, and its timing hooks.

A runner is built over a list of batches, each a feed {input name: array}. Its ``run(i)``
processes batch i and returns only when the work is done (the clock is read right after it
returns); ``outputs(i)`` does the same and returns every output on the host, for scoring and for
comparing runtimes.
Each runtime module (crossrt.runtimes.onnxruntime, .pytorch, .openvino) builds its runners;
crossrt.runtimes.registry says which runtime runs where.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import numpy as np

from ..timing import call_times, timed


class Row(NamedTuple):
    """One configuration to time: what bench-infer plans and a runtime builds its runner for."""

    runtime: str
    provider: str
    threads: int  # intra-op threads; 0 = the runtime's default
    batch: int
    io: str  # the data path (crossrt.runtimes.registry.IO_PATHS)
    spin: bool | None  # ONNX Runtime's intra-op spinning; None for the runtimes without it
    precision: str = "fp32"  # fp32; bf16 (OpenVINO, where the CPU has it); int8 (onnxruntime-int8)

    @property
    def math(self) -> str:
        # cuDNN convolutions (PyTorch's default) and ORT's CUDA provider (use_tf32=1, set in
        # crossrt.runtimes.onnxruntime) run fp32 models in TF32 on GPUs that have it.
        return self.precision if self.precision != "fp32" else "tf32" if self.provider == "cuda" else "fp32"


@dataclass
class Runner:
    run: Callable[[int], object]
    outputs: Callable[[int], list[np.ndarray]]
    create_s: float  # cold cost: session creation, compilation, or building the model on the device
    providers: list[str]  # what really runs it, read back from the session or device
    threads_effective: int | None
    split: Callable[[], dict] | None = None  # CUDA end-to-end: {h2d, enqueue, compute, d2h} ms (results.CudaSplit)
    placement: Callable[[], dict] | None = None  # where it can fall back: {where a node ran: nodes}, read back


def all_logits(runner: Runner, n_batches: int) -> np.ndarray:
    """The first output of every batch, in order: an MNIST classifier's logits (untimed: for scoring)."""
    return np.concatenate([runner.outputs(i)[0] for i in range(n_batches)])


def mean_ms(fn: Callable[[int], object], n: int) -> float:
    """Mean milliseconds of fn(0..n-1), for the CUDA split of a batch's time."""
    return 1e3 * sum(call_times(fn, n)) / n


def enqueue_ms(enqueue: Callable[[int], object], wait: Callable[[], object], n: int) -> float:
    """Mean milliseconds for the host to queue a batch's GPU work (not to finish it), waiting
    for the GPU between batches: trtexec's enqueue time."""
    total = 0.0
    for i in range(n):
        total += timed(partial(enqueue, i))[1]
        wait()
    return 1e3 * total / n
