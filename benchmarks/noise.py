"""Does crossrt notice a noisy machine? bench-infer at 2 threads, quiet and beside a CPU hog.

Runs `crossrt bench-infer --threads 2` three times in fresh processes on the same model: twice
on a quiet machine (A and B) and once while a hog process loads one core in bursts, the way
another tenant's jobs do (busy for 10-60 ms, idle for 0-60 ms, at random). Then shows each
row's spread and verdict side by side, and `crossrt compare` of the two quiet runs.
Targets: every row stable when quiet, rows unstable beside the hog, and the two quiet runs
"same within noise".

    .venv/bin/python benchmarks/noise.py [--model exports/lenet5.onnx] [--min-time 2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from crossrt.compare import compare
from crossrt.files import load_result
from crossrt.system import cpu_count

from common import run


def hog(core: int) -> None:
    """Load one core in random bursts until killed."""
    os.sched_setaffinity(0, {core})
    rng = random.Random(0)
    while True:
        end = time.perf_counter() + rng.uniform(0.010, 0.060)
        while time.perf_counter() < end:
            pass
        time.sleep(rng.uniform(0.0, 0.060))


def bench(model: Path, min_time: float, out: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "crossrt",
        "bench-infer",
        "--model",
        str(model),
        "--threads",
        "2",
        "--min-time",
        str(min_time),
        "--min-repeats",
        "5",
        "--json",
        str(out),
    ]
    run(cmd, out.parent)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=Path("exports/lenet5.onnx"))
    p.add_argument("--min-time", type=float, default=2.0)
    a = p.parse_args()
    if not a.model.is_file():
        print(f"{a.model}: no such model file (run `make train` first)", file=sys.stderr)
        return 2
    if cpu_count() < 2:
        print("needs 2 cores: one for the benchmark's second thread to share with the hog", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="crossrt-noise-"))
    model = a.model.resolve()
    bench(model, a.min_time, work / "quiet-a.json")
    bench(model, a.min_time, work / "quiet-b.json")
    noisy = multiprocessing.get_context("spawn").Process(target=hog, args=(cpu_count() - 1,), daemon=True)
    noisy.start()
    try:
        bench(model, a.min_time, work / "hog.json")
    finally:
        noisy.kill()
    quiet, quiet_b, loaded = (load_result(work / f"{n}.json") for n in ("quiet-a", "quiet-b", "hog"))

    console = Console(width=120)
    table = Table(
        title=f"bench-infer at 2 threads: quiet, and beside a bursty CPU hog on core {cpu_count() - 1}",
        title_justify="left",
    )
    for col in ("row", "quiet img/s", "quiet cv", "quiet stable", "hog img/s", "hog cv", "hog stable"):
        table.add_column(col, justify="left" if col == "row" else "right")
    for q, h in zip(quiet.runs, loaded.runs):
        table.add_row(
            q.label,
            f"{q.images_per_s:,.0f}",
            f"{100 * q.cv:.1f}%",
            str(q.stable),
            f"{h.images_per_s:,.0f}",
            f"{100 * h.cv:.1f}%",
            str(h.stable),
        )
    console.print(table)
    rows, _, _ = compare(quiet, quiet_b)
    for r in rows:
        console.print(
            f"compare quiet A, quiet B: {r['what']}: B/A {r['ratio']:.3f}, 95% CI "
            f"{r['ci95'][0]:.3f}-{r['ci95'][1]:.3f}: {r['verdict']}"
        )
    met = (
        all(r.stable for r in quiet.runs),
        not all(r.stable for r in loaded.runs),
        all(r["verdict"] == "same within noise" for r in rows),
    )
    console.print(
        f"quiet rows all stable: {met[0]}; some rows unstable beside the hog: {met[1]}; "
        f"quiet runs the same within noise: {met[2]}; files in {work}"
    )
    return 0 if all(met) else 1


if __name__ == "__main__":
    sys.exit(main())
