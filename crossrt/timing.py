"""Warm-up, repeat, statistics. Pure Python and numpy: measurement never imports rich.

A configuration is timed as whole validation passes (every test batch once, in order), so
the figures answer the reference's question "how long does a validation pass take". Each
batch is also timed on its own for the latency distribution. Passes repeat until both
``min_time`` seconds and ``min_repeats`` passes are reached, so fast configurations get
enough samples and slow ones do not run for ever.

Whether a figure can be trusted is judged on the figure itself (:func:`stability`): the
bootstrap 95% interval of the throughput, within +-3% of it, and LoadGen's rule (min-time and
min-repeats both met). The spread of single repeats (cv) is recorded beside it, but a figure
averaged over many repeats can be exact while each repeat varies. A repeat is long enough
(MIN_REPEAT_S) that one scheduler tick cannot dominate it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

clock = time.perf_counter
STABLE_CI = 0.03  # a figure whose 95% interval reaches beyond +-3% of it is not stable
# A timed repeat lasts at least this long: a pass of ten 15-us calls (0.15 ms) is shorter than one
# scheduler tick (1-4 ms), which alone would make it vary by 300%. perf_test and benchmark_app
# likewise run for a duration, not a count.
MIN_REPEAT_S = 0.02
BOOTSTRAP = 2000  # resamples for the confidence interval
SAMPLES_CAP = 2000  # per-batch samples kept in a result file (evenly spaced over the run)


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
    def from_values(cls, seconds) -> Latency:
        ms = np.asarray(seconds, dtype=np.float64) * 1e3
        if ms.size == 0:
            raise ValueError("no latency samples")
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return cls(float(ms.mean()), float(p50), float(p90), float(p99), float(ms.std()), int(ms.size))


@dataclass
class Passes:
    """Raw timings of the timed passes: per-batch seconds, per-pass wall seconds, and the
    process CPU seconds they cost (all threads: spinning shows up here, not in wall time)."""

    batch_times_s: list[float]
    pass_times_s: list[float]  # per repeat, the seconds of one pass (the repeat's time / passes_per_repeat)
    cpu_s: float = 0.0
    passes_per_repeat: int = 1  # a repeat is this many passes, so that it lasts at least MIN_REPEAT_S

    @property
    def total_s(self) -> float:
        """Seconds timed in all."""
        return float(sum(self.pass_times_s)) * self.passes_per_repeat


@dataclass
class Stability:
    """How far a throughput figure can be trusted, from its repeats (passes or epochs)."""

    cv: float | None  # std / mean of the repeat times (ddof=1); None with one repeat
    ci95: list[float] | None  # [low, high] items/s, bootstrap over the repeats
    stable: bool
    cause: str | None  # why not stable, in words


def bootstrap_means(values, rng: np.random.Generator) -> np.ndarray:
    """BOOTSTRAP means of values resampled with replacement: the spread of their mean."""
    v = np.asarray(values, dtype=np.float64)
    return v[rng.integers(0, v.size, (BOOTSTRAP, v.size))].mean(axis=1)


def stability(
    repeat_s,
    items_per_repeat: int,
    *,
    rules_met: bool = True,
    noise_hint: str | None = None,
    more: str = "raise --min-repeats",
) -> Stability:
    """cv, bootstrap 95% interval of items/s, and the verdict for repeats of equal work;
    `more` says how to get more repeats."""
    t = np.asarray(repeat_s, dtype=np.float64)
    if t.size < 2:
        return Stability(None, None, False, f"one repeat only: no spread to judge ({more})")
    if not (t > 0).all():  # only a damaged or forged file holds a repeat that took no time
        return Stability(None, None, False, "a repeat of 0 s or less: not a measurement")
    cv = float(t.std(ddof=1) / t.mean())
    low, high = np.percentile(items_per_repeat / bootstrap_means(t, np.random.default_rng(0)), [2.5, 97.5])
    figure = items_per_repeat / t.mean()
    below, above = (figure - low) / figure, (high - figure) / figure  # how far the figure itself may be off
    cause = None
    if not rules_met:
        cause = "stopped before --min-time and --min-repeats were both reached"
    elif max(below, above) > STABLE_CI:
        cause = f"its 95% interval is -{100 * below:.1f}%/+{100 * above:.1f}% (repeats vary by {100 * cv:.1f}%): " + (
            noise_hint or "other load on the machine? (raise --min-time for more repeats)"
        )
    return Stability(cv, [float(low), float(high)], cause is None, cause)


def capped(samples: list[float], cap: int = SAMPLES_CAP) -> list[float]:
    """At most `cap` samples, evenly spaced over the run, for result files."""
    step = -(-len(samples) // cap) if samples else 1
    return list(samples[::step])


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


def time_passes(
    run_batch: Callable[[int], object], n_batches: int, *, warmup: int, min_time: float, min_repeats: int
) -> Passes:
    """Run `warmup` batches untimed, then timed repeats of full passes of run_batch(0..n_batches-1)
    until at least `min_time` seconds and `min_repeats` repeats are timed. A repeat is as many
    passes as last MIN_REPEAT_S (sized as timeit's autorange does, on rounds of 1, 2, ... passes
    whose last, long enough, is the first repeat): one, for a pass that long."""
    for i in range(warmup):
        run_batch(i % n_batches)
    k = 1
    while True:  # timeit's autorange: rounds of k passes until k passes last MIN_REPEAT_S
        cpu0, start = time.process_time(), clock()
        batch_times_s = [t for _ in range(k) for t in call_times(run_batch, n_batches)]
        took = clock() - start
        if took >= MIN_REPEAT_S:  # the round that is long enough is the first timed repeat
            break
        k = max(2 * k, math.ceil(1.2 * k * MIN_REPEAT_S / max(took, 1e-9)))
    pass_times_s = [took / k]
    while len(pass_times_s) < min_repeats or k * sum(pass_times_s) < min_time:
        start = clock()
        for _ in range(k):
            batch_times_s += call_times(run_batch, n_batches)
        pass_times_s.append((clock() - start) / k)
    return Passes(batch_times_s, pass_times_s, time.process_time() - cpu0, k)


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    """(fn(), seconds it took): for the one-off cold costs (session creation, first run)."""
    t0 = clock()
    out = fn()
    return out, clock() - t0
