"""`crossrt compare A.json B.json`: every configuration both runs measured, B against A.

A row matches when dataset, runtime, provider, data path, threads, batch size and spinning
(or, for training, device, threads, precision and batch size) are the same. The ratio is B's
throughput over A's; its 95% interval comes from resampling both runs' repeats (passes, or
steady epochs).

That interval only knows the noise inside each run. Two runs of one build in two processes
differ by more: on the shared 2-core test machine by 5-11% (once 30%) while each run's own cv
was 1-5% (BENCHMARKS.md). So the verdict says "faster" or "slower" only when the interval lies
wholly beyond a run-to-run noise band (`--noise`, default NOISE); otherwise "same within noise".
"""

from __future__ import annotations

import numpy as np

from .results import Result, TrainResult, parts
from .timing import bootstrap_means

NOISE = 0.10  # run-to-run noise band: B/A within 1 +- NOISE is "same within noise"


def _repeats(result: Result) -> dict[tuple, tuple[str, float, list[float]]]:
    """key -> (label, items/s, repeat seconds) of every timed row in a result file."""
    rows: dict[tuple, tuple[str, float, list[float]]] = {}
    for part in parts(result):
        if isinstance(part, TrainResult):
            key = ("train", part.dataset, part.device, part.threads, part.precision, part.batch_size)
            rows.setdefault(key, (f"training, {part.setup}, batch {part.batch_size}",
                                  part.summary()["images_per_s"] or 0.0, [e.train_s for e in part.steady_epochs]))
            continue
        for run in part.runs:
            key = ("bench", part.dataset, run.runtime, run.precision, run.provider, run.io, run.threads,
                   run.batch_size, run.spin)
            rows.setdefault(key, (f"validation, {run.label}", run.images_per_s, run.pass_times_s))
    return rows


def ratio_ci(a: list[float], b: list[float]) -> list[float] | None:
    """95% interval of throughput(B) / throughput(A) = mean(A's repeat times) / mean(B's), bootstrapped."""
    if len(a) < 2 or len(b) < 2:
        return None
    rng = np.random.default_rng(0)
    low, high = np.percentile(bootstrap_means(a, rng) / bootstrap_means(b, rng), [2.5, 97.5])
    return [float(low), float(high)]


def verdict(ci: list[float] | None, noise: float = NOISE) -> str:
    if ci is None:
        return "no verdict: fewer than 2 repeats (or a file from before schema 3)"
    if ci[0] > 1 + noise:
        return "faster"
    if ci[1] < 1 - noise:
        return "slower"
    return "same within noise"


def compare(a: Result, b: Result, noise: float = NOISE) -> tuple[list[dict], int, int]:
    """Matching rows (what, a, b, ratio, ci95, verdict) and the counts of rows found in only A or only B."""
    ra, rb = _repeats(a), _repeats(b)
    rows = []
    for key in (k for k in ra if k in rb):
        (what, ips_a, rep_a), (_, ips_b, rep_b) = ra[key], rb[key]
        ratio = ips_b / ips_a if ips_a else float("nan")
        ci = ratio_ci(rep_a, rep_b)
        rows.append({"what": what, "a": ips_a, "b": ips_b, "ratio": ratio, "ci95": ci, "verdict": verdict(ci, noise)})
    return rows, len(ra.keys() - rb.keys()), len(rb.keys() - ra.keys())
