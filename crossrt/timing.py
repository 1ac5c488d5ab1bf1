"""Warm-up, repeat, statistics. Pure Python and numpy: measurement never imports rich.

A configuration is timed as whole validation passes (every test batch once, in order), so
the figures answer the reference's question "how long does a validation pass take". Each
batch is also timed on its own for the latency distribution. Passes repeat until both
``min_time`` seconds and ``min_repeats`` passes are reached, so fast configurations get
enough samples and slow ones do not run for ever.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

clock = time.perf_counter


@dataclass
class Latency:
    """Per-batch latency statistics in milliseconds, derived from the raw samples in one place."""

    mean: float
    p50: float
    p90: float
    p99: float
    std: float
    n: int

    @classmethod
    def from_values(cls, seconds) -> "Latency":
        ms = np.asarray(seconds, dtype=np.float64) * 1e3
        if ms.size == 0:
            raise ValueError("no latency samples")
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return cls(float(ms.mean()), float(p50), float(p90), float(p99), float(ms.std()), int(ms.size))


@dataclass
class Passes:
    """Raw timings of the timed passes: per-batch seconds and per-pass wall seconds."""

    batch_s: list[float]
    pass_s: list[float]

    @property
    def total_s(self) -> float:
        return float(sum(self.pass_s))


def call_times(fn: Callable[[int], object], n: int) -> list[float]:
    """Seconds each of fn(0), fn(1), ..., fn(n-1) took, called in order.

    fn must return only when its work is finished (a CUDA runner synchronises the device
    itself), because the clock is read right after it returns.
    """
    out = []
    for i in range(n):
        t0 = clock()
        fn(i)
        out.append(clock() - t0)
    return out


def time_passes(run_batch: Callable[[int], object], n_batches: int, *, warmup: int,
                min_time: float, min_repeats: int) -> Passes:
    """Run `warmup` batches untimed, then full passes of run_batch(0..n_batches-1) until
    at least `min_time` seconds and `min_repeats` passes are timed."""
    for i in range(warmup):
        run_batch(i % n_batches)
    batch_s: list[float] = []
    pass_s: list[float] = []
    while len(pass_s) < min_repeats or sum(pass_s) < min_time:
        start = clock()
        batch_s += call_times(run_batch, n_batches)
        pass_s.append(clock() - start)
    return Passes(batch_s, pass_s)


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    """(fn(), seconds it took): for the one-off cold costs (session creation, first run)."""
    t0 = clock()
    out = fn()
    return out, clock() - t0
