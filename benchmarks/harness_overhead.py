"""Does bench-infer's harness cost anything? crossrt's ONNX Runtime images/s against a bare loop.

The bare loop is what a user would write by hand: one session with the same options
(crossrt.runtimes.onnxruntime.session_options), `session.run` over the same batches, one clock around
each pass. The two are interleaved round by round in one process, so machine noise hits
both alike, and the median of the rounds is compared. Target: within 3%.

    .venv/bin/python benchmarks/harness_overhead.py [--model exports/lenet5.onnx] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from rich.console import Console
from rich.table import Table

from crossrt.bench_infer import prepare, run_bench
from crossrt.config import BenchConfig, DataConfig
from crossrt.data import in_batches, normalize
from crossrt.export import read_metadata
from crossrt.fetch import resolve
from crossrt.runtimes.onnxruntime import session_options
from crossrt.system import cpu_count


def bare_loop(model: Path, threads: int, batches: list[np.ndarray], min_time: float) -> float:
    session = ort.InferenceSession(str(model), session_options(threads), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for b in batches[:10]:  # the same warm-up as crossrt's default
        session.run(None, {name: b})
    images, elapsed = 0, 0.0
    while elapsed < min_time:
        t0 = time.perf_counter()
        for b in batches:
            session.run(None, {name: b})
        elapsed += time.perf_counter() - t0
        images += sum(len(b) for b in batches)
    return images / elapsed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=Path("exports/lenet5.onnx"))
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--min-time", type=float, default=1.0)
    a = p.parse_args()
    if not a.model.is_file():
        print(f"{a.model}: no such model file (run `make train` first)", file=sys.stderr)
        return 2
    ds = resolve(DataConfig(read_metadata(a.model).get("dataset", "auto")))
    x = np.ascontiguousarray(normalize(ds.test_images))
    batches = in_batches(x, a.batch_size)
    console = Console()
    table = Table(
        title=f"Harness overhead: crossrt bench-infer vs a bare session.run loop "
        f"({ds.name}, batch {a.batch_size}, {a.rounds} interleaved rounds, median)"
    )
    for col in ("threads", "crossrt img/s", "bare loop img/s", "crossrt / bare", "rounds within 3%"):
        table.add_column(col, justify="right")
    worst = 0.0
    for threads in sorted({1, cpu_count()}):
        cfg = BenchConfig(
            data=DataConfig(ds.name),
            model=a.model,
            threads=(threads,),
            batch_sizes=(a.batch_size,),
            runtimes=("onnxruntime",),
            min_time=a.min_time,
            min_repeats=1,
        )
        ours, bare = [], []
        prepared = prepare(cfg)
        for _ in range(a.rounds):
            ours.append(run_bench(cfg, ds, prepared).runs[0].images_per_s)
            bare.append(bare_loop(a.model, threads, batches, a.min_time))
        ratios = [o / b for o, b in zip(ours, bare)]
        ratio = statistics.median(ours) / statistics.median(bare)
        worst = max(worst, abs(1 - ratio))
        table.add_row(
            str(threads),
            f"{statistics.median(ours):,.0f}",
            f"{statistics.median(bare):,.0f}",
            f"{ratio:.3f}",
            f"{sum(abs(1 - r) <= 0.03 for r in ratios)}/{len(ratios)}",
        )
    console.print(table)
    verdict = "met" if worst <= 0.03 else "NOT met"
    console.print(f"target |1 - crossrt/bare| <= 3%: {verdict} (worst {100 * worst:.1f}%)")
    return 0 if worst <= 0.03 else 1


if __name__ == "__main__":
    sys.exit(main())
