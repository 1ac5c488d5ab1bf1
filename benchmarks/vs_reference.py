"""`make bench`: crossrt against the reference's PyTorch recipe, side by side, on this machine.

Runs, one after the other in fresh processes on the same data: the reference recipe
(benchmarks/reference_recipe.py) and `crossrt train` at 1 thread and at all cores, crossrt in
bf16 (threads, and data-parallel ranks of 1 thread), the step as it was before the lean step
(`--no-lean-step`, torch's allocator as it comes: THP_MEM_ALLOC_ENABLE=0) in fp32 and bf16, then
`crossrt bench-infer` on the model crossrt just trained, and the floor under a step
(benchmarks/kernel_floor.py: its convolutions, GEMMs and max-pools alone); prints the ratios
against the targets, the old step's beside the new, the fp32 epoch against its same-run limit (a
training image costs 3 forward passes: 3 x the training images at ONNX Runtime's fp32 validation
pace, batch 100, same threads), and the floor beside each training row it applies to; writes
them into BENCHMARKS.md with the command, machine, date and commit.

    .venv/bin/python benchmarks/vs_reference.py [--epochs 2] [--accuracy-epochs 10] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from crossrt.files import atomic_write, load_result
from crossrt.system import cpu_count, cpu_model, source_commit

from common import ENV, ROOT, run

PY = sys.executable
START, END = "<!-- make-bench:start -->", "<!-- make-bench:end -->"


def steady(epochs: list[dict], key: str) -> float:
    """Mean over epochs 2..N (epoch 1 carries warm-up), or epoch 1 when that is all there is."""
    values = [e[key] for e in epochs]
    return statistics.mean(values[1:] if len(values) > 1 else values)


def help_seconds(repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([PY, "-m", "crossrt", "--help"], capture_output=True, check=True, env=ENV)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=2, help="epochs of each timing run (default: 2)")
    p.add_argument(
        "--accuracy-epochs",
        type=int,
        default=10,
        help="epochs of the fp32 and bf16 crossrt runs compared for accuracy (default: 10)",
    )
    p.add_argument("--dataset", default="auto")
    p.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    a = p.parse_args()
    n = cpu_count()
    work = Path(tempfile.mkdtemp(prefix="crossrt-bench-"))
    crossrt = [PY, "-m", "crossrt"]
    ref = [PY, str(ROOT / "benchmarks" / "reference_recipe.py"), "--dataset", a.dataset]
    train = [*crossrt, "train", "--dataset", a.dataset]
    steps = {
        "ref-1": [*ref, "--epochs", str(a.epochs), "--threads", "1", "--json", "ref-1.json"],
        "crossrt-1": [
            *train,
            "--epochs",
            str(a.epochs),
            "--threads",
            "1",
            "--no-export",
            "--out",
            "x1",
            "--json",
            "crossrt-1.json",
        ],
        f"ref-{n}": [*ref, "--epochs", str(a.epochs), "--threads", str(n), "--json", f"ref-{n}.json"],
        f"crossrt-{n}": [
            *train,
            "--epochs",
            str(a.accuracy_epochs),
            "--threads",
            str(n),
            "--out",
            "fp32",
            "--json",
            f"crossrt-{n}.json",
        ],
        f"crossrt-bf16-{n}": [
            *train,
            "--epochs",
            str(a.accuracy_epochs),
            "--threads",
            str(n),
            "--precision",
            "bf16",
            "--no-export",
            "--out",
            "bf16",
            "--json",
            f"crossrt-bf16-{n}.json",
        ],
        f"crossrt-bf16-ranks-{n}": [
            *train,
            "--epochs",
            str(a.epochs),
            "--nproc",
            str(n),
            "--threads",
            "1",
            "--precision",
            "bf16",
            "--no-export",
            "--out",
            "bf16r",
            "--json",
            f"crossrt-bf16-ranks-{n}.json",
        ],
        f"old-{n}": [
            *train,
            "--epochs",
            str(a.epochs),
            "--threads",
            str(n),
            "--no-lean-step",
            "--no-export",
            "--out",
            "old",
            "--json",
            f"old-{n}.json",
        ],
        f"old-bf16-{n}": [
            *train,
            "--epochs",
            str(a.epochs),
            "--threads",
            str(n),
            "--no-lean-step",
            "--precision",
            "bf16",
            "--no-export",
            "--out",
            "oldbf16",
            "--json",
            f"old-bf16-{n}.json",
        ],
        f"floor-{n}": [
            PY,
            str(ROOT / "benchmarks" / "kernel_floor.py"),
            "--threads",
            str(n),
            "--json",
            f"floor-{n}.json",
        ],
        "bench-infer": [
            *crossrt,
            "bench-infer",
            "--model",
            "fp32/lenet5.onnx",
            "--threads",
            f"1,{n}",
            "--min-time",
            "2",
            "--json",
            "bench.json",
        ],
    }
    console = Console(width=None if sys.stdout.isatty() else 140)
    t0 = time.time()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("", total=len(steps) + 1)
        for name, cmd in steps.items():
            bar.update(task, description=f"{name}: {' '.join(cmd[1:])}")
            # The reference and the old step run with torch's allocator as it comes.
            run(
                cmd,
                work,
                work / f"{name}.log",
                {"THP_MEM_ALLOC_ENABLE": "0"} if name.startswith(("ref", "old")) else {},
            )
            bar.advance(task)
        bar.update(task, description="crossrt --help")
        help_s = help_seconds()
        bar.advance(task)
    wall = time.time() - t0
    res = {name: json.loads((work / f"{name}.json").read_text()) for name in steps if name != "bench-infer"}
    floor = res.pop(f"floor-{n}")
    bench = load_result(work / "bench.json", ("bench-infer",))
    runs = bench.runs
    ort_n = next(r for r in runs if r.runtime == "onnxruntime" and r.threads == n)
    pt_n = next(r for r in runs if r.runtime == "pytorch" and r.threads == n)
    fp32, bf16 = res[f"crossrt-{n}"], res[f"crossrt-bf16-{n}"]
    # The floor under an epoch, in seconds: the step's convolutions and GEMMs, and its max-pools,
    # alone (benchmarks/kernel_floor.py), in ms per step, times the steps of an epoch.
    ms_to_epoch_s = fp32["train_images"] / floor.pop("batch_size") / 1000
    compute = {p: f["compute_ms"] * ms_to_epoch_s for p, f in floor.items()}
    floor_s = {p: compute[p] + f["pool_ms"] * ms_to_epoch_s for p, f in floor.items()}
    floors = {f"crossrt-{n}": floor_s["fp32"], f"crossrt-bf16-{n}": floor_s["bf16"]}  # the modes it applies to

    table = Table(
        title=f"crossrt vs the reference's PyTorch recipe ({fp32['dataset']}, steady epochs, same run)",
        title_justify="left",
    )
    for col in (
        "phase",
        "reference recipe",
        "crossrt",
        "ratio",
        "old step, same run",
        "floor",
        "target",
        "met",
        "% of peak",
    ):
        table.add_column(col, justify="left" if col == "phase" else "right")
    verdicts = []

    def row(phase, base, ours, ratio, target, ok, peak="", unit="s", old="", low=None):
        """target: text, a ratio not to exceed, or None; low: the floor as a ratio to base, marked over the target."""
        verdicts.append(ok)
        fmt = lambda v: f"{v:.2f} {unit}" if isinstance(v, float) else (v or "—")
        goal = target if isinstance(target, float) else None
        lows = "" if low is None else (f"[yellow]{low:.2f}x, over[/]" if goal and low > goal else f"{low:.2f}x")
        shown = "—" if target is None else target if goal is None else f"<= {goal:.2f}x"
        table.add_row(
            phase,
            fmt(base),
            fmt(ours),
            ratio,
            old,
            lows,
            shown,
            "—" if ok is None else ("[green]yes[/]" if ok else "[bold red]NO[/]"),
            peak,
        )

    def pct(result):
        return f"{result['percent_of_peak']:.0f}%" if result.get("percent_of_peak") else ""

    epoch = {name: steady(r["epochs"], "train_s") for name, r in res.items()}
    ref_n = epoch[f"ref-{n}"]
    for label, base, ours, old, target in (
        ("training epoch, fp32, 1 thread", "ref-1", "crossrt-1", None, 0.60),
        (f"training epoch, fp32, {n} threads", f"ref-{n}", f"crossrt-{n}", f"old-{n}", 0.35),
        (f"training epoch, bf16, {n} threads", f"ref-{n}", f"crossrt-bf16-{n}", f"old-bf16-{n}", 0.35),
        (f"training epoch, bf16, {n} ranks x 1 thread", f"ref-{n}", f"crossrt-bf16-ranks-{n}", None, None),
    ):
        b, o = epoch[base], epoch[ours]
        row(
            label,
            b,
            o,
            f"{o / b:.2f}x",
            target,
            None if target is None else o / b <= target,
            pct(res[ours]),
            old=f"{epoch[old]:.2f} s, {epoch[old] / b:.2f}x" if old else "",
            low=floors[ours] / b if ours in floors else None,
        )
    best = min((f"crossrt-bf16-{n}", f"crossrt-bf16-ranks-{n}", f"crossrt-{n}"), key=epoch.get)
    row(
        f"best {n}-core mode: {best.removeprefix('crossrt-')}",
        ref_n,
        epoch[best],
        f"{epoch[best] / ref_n:.2f}x",
        0.20,
        epoch[best] / ref_n <= 0.20,
        low=floors[best] / ref_n if best in floors else None,
    )
    limit = 3 * fp32["train_images"] / ort_n.samples_per_s
    row(
        f"fp32 epoch, {n} threads, vs same-run limit (3 x {fp32['train_images']:,} img at ORT's pace)",
        limit,
        epoch[f"crossrt-{n}"],
        f"{epoch[f'crossrt-{n}'] / limit:.2f}x",
        1.15,
        epoch[f"crossrt-{n}"] / limit <= 1.15,
        old=f"{epoch[f'old-{n}'] / limit:.2f}x",
        low=floor_s["fp32"] / limit,
    )
    ref_valid = steady(res[f"ref-{n}"]["epochs"], "valid_s")
    for r, target in ((ort_n, 0.30), (pt_n, None)):
        o = r.seconds_per_pass
        row(
            f"validation pass, {r.runtime}, {n} threads",
            ref_valid,
            o,
            f"{o / ref_valid:.2f}x",
            target,
            None if target is None else o / ref_valid <= target,
            f"{r.percent_of_peak:.0f}%",
        )
    row(
        f"onnxruntime validation vs peak ({ort_n.peak_gflops:.0f} GFLOP/s)",
        "",
        f"{ort_n.percent_of_peak:.0f}%",
        "",
        ">= 75%",
        ort_n.percent_of_peak >= 75,
    )
    acc32, acc16 = fp32["final_accuracy"], bf16["final_accuracy"]
    row(
        f"bf16 accuracy, epoch {a.accuracy_epochs} (fp32: {100 * acc32:.2f}%)",
        "",
        f"{100 * acc16:.2f}%",
        f"{100 * (acc16 - acc32):+.2f} pt",
        "within 0.5 pt",
        abs(acc16 - acc32) <= 0.005,
    )
    mem = max(fp32["peak_rss_mb"], bf16["peak_rss_mb"], res["crossrt-1"]["peak_rss_mb"])
    base_mem = max(res[k]["peak_rss_mb"] for k in ("ref-1", f"ref-{n}"))
    row("peak memory, training", f"{base_mem:,.0f} MiB", f"{mem:,.0f} MiB", "", "< 1.5 GB", mem * 2**20 < 1.5e9)
    row("peak memory, bench-infer", "", f"{bench.peak_rss_mb:,.0f} MiB", "", "", None)
    row("crossrt --help", "", help_s, "", "< 0.50 s", help_s < 0.5)

    acc = Table(
        title="Validation accuracy per epoch (the reference's double softmax slows its learning)", title_justify="left"
    )
    for col in ("epoch", f"reference recipe, {n} thr", f"crossrt fp32, {n} thr", f"crossrt bf16, {n} thr"):
        acc.add_column(col, justify="right")
    for i in range(a.accuracy_epochs):
        cells = [res[f"ref-{n}"]["epochs"], fp32["epochs"], bf16["epochs"]]
        acc.add_row(str(i + 1), *[f"{100 * c[i]['valid_accuracy']:.2f}%" if i < len(c) else "" for c in cells])

    record = Console(record=True, width=140, file=open(os.devnull, "w"))
    for t in (table, acc):
        console.print(t)
        record.print(t)
    machine = f"{cpu_model()}, {n} cores, {platform.system()} {platform.machine()}"
    notes = (
        f"floor: what the step's convolutions, GEMMs and max-pools take alone, {n} threads "
        f'(benchmarks/kernel_floor.py), as a ratio like\nthe row\'s; "over": over the target, '
        f"so a step made of these kernels must beat their sum to meet it. Without the max-pools:\nfp32 "
        f"{compute['fp32'] / ref_n:.2f}x and bf16 {compute['bf16'] / ref_n:.2f}x the reference, fp32 "
        f"{compute['fp32'] / limit:.2f}x the same-run limit."
    )
    console.print(notes)
    summary = (
        f"{sum(v is True for v in verdicts)} of {sum(v is not None for v in verdicts)} targets met; "
        f"wall time {wall / 60:.1f} min; logs and JSON in {work}"
    )
    console.print(summary)
    if not a.no_write:
        commit, dirty = source_commit()
        commit = f"{commit}{' with uncommitted changes' if dirty else ''}" if commit else "an unknown commit"
        section = (
            f"{START}\n## `make bench`: crossrt against the reference's PyTorch recipe\n\n"
            f"Command: `make bench` (= `{Path(PY).name} benchmarks/vs_reference.py --epochs {a.epochs} "
            f"--accuracy-epochs {a.accuracy_epochs}`)  \nMachine: {machine}  \n"
            f"Date: {time.strftime('%Y-%m-%d %H:%M %Z')}; {summary.split(';')[0]}; "
            f"wall time {wall / 60:.1f} min; crossrt at {commit}.\n\n"
            f"```\n{record.export_text().rstrip()}\n{notes}\n```\n{END}"
        )
        path = ROOT / "BENCHMARKS.md"
        text = path.read_text()
        if START in text:
            text = text[: text.index(START)] + section + text[text.index(END) + len(END) :]
        else:
            text = text.rstrip() + "\n\n" + section + "\n"
        atomic_write(path, text)
        console.print(f"written to {path}")
    return 0 if all(v is not False for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
