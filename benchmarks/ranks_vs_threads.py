"""Data-parallel ranks against intra-op threads on the same cores: which way should 2 cores train?

Runs `crossrt train` for 3 epochs as `--nproc 1 --threads 2` (one process, two threads) and as
`--nproc 2 --threads 1` (two gloo ranks, one thread each), alternating A B A B in fresh
processes on the same data, and prints per-epoch time, throughput and final accuracy of every
run, and the ratio of the medians. Accuracy must agree within 0.5 points.

    .venv/bin/python benchmarks/ranks_vs_threads.py [--epochs 3] [--rounds 2] [--dataset auto]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from crossrt.files import load_result
from crossrt.system import cpu_count

from common import run


def train(setup: tuple[int, int], epochs: int, dataset: str, work: Path, n: int):
    ranks, threads = setup
    out = work / f"{ranks}x{threads}-{n}"
    cmd = [
        sys.executable,
        "-m",
        "crossrt",
        "train",
        "--nproc",
        str(ranks),
        "--threads",
        str(threads),
        "--epochs",
        str(epochs),
        "--dataset",
        dataset,
        "--no-export",
        "--out",
        str(out),
        "--json",
        f"{out}.json",
    ]
    run(cmd, work)
    return load_result(Path(f"{out}.json"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--dataset", default="auto")
    a = p.parse_args()
    cores = cpu_count()
    if cores < 2:
        print("needs 2 cores or more", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="crossrt-ranks-"))
    setups = [(1, cores), (cores, 1)]
    runs = {s: [] for s in setups}
    for n in range(a.rounds):
        for s in setups:
            runs[s].append(train(s, a.epochs, a.dataset, work, n))

    console = Console(width=130)
    table = Table(
        title=f"{a.epochs} epochs, batch 600, {runs[setups[0]][0].dataset}: ranks x threads on "
        f"{cores} cores, alternated A B A B",
        title_justify="left",
    )
    for col in ("setup", "run", "epoch times (s)", "steady epoch", "images/s", "final accuracy"):
        table.add_column(col, justify="left" if col in ("setup", "epoch times (s)") else "right")
    for (ranks, threads), results in runs.items():
        for n, r in enumerate(results):
            s = r.summary()
            table.add_row(
                f"--nproc {ranks} --threads {threads}",
                str(n + 1),
                " ".join(f"{e.train_s:.2f}" for e in r.epochs),
                f"{s['steady_epoch_train_s']:.2f} s",
                f"{s['images_per_s']:,.0f}",
                f"{100 * s['final_accuracy']:.2f}%",
            )
    console.print(table)
    median = {k: statistics.median(r.summary()["images_per_s"] for r in v) for k, v in runs.items()}
    acc = {k: statistics.mean(r.summary()["final_accuracy"] for r in v) for k, v in runs.items()}
    ratio = median[setups[1]] / median[setups[0]]
    gap = abs(acc[setups[1]] - acc[setups[0]])
    console.print(
        f"{cores} ranks x 1 thread / 1 process x {cores} threads, median images/s: {ratio:.3f}x; "
        f"accuracy gap {100 * gap:.2f} points (target <= 0.5): {'met' if gap <= 0.005 else 'NOT met'}; "
        f"files in {work}"
    )
    return 0 if gap <= 0.005 else 1


if __name__ == "__main__":
    sys.exit(main())
