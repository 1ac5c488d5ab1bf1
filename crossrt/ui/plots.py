"""PNG figures of results, a figure per question: how throughput grows with threads (a row of
panels per model and what it was fed, a panel per runtime), where a training run's time goes
(training vs validation per epoch, validation priced by each runtime), how each run learned
(loss and accuracy per epoch).

matplotlib is an optional extra (`pip install crossrt[plots]`); without it, asking for plots is a
one-line error. Figures are written atomically like every other crossrt file. Repeated runs of one
configuration are one point (their median) with error bars over their 95% intervals; legends sit
inside their panel; every linear axis read as a ratio starts at 0, and values spanning more than
10x are on a log axis; epochs are whole numbers; titles say the
dataset, the machine and the epochs; every run is named by its run id, as `report` names it.
Names come from result files: they are drawn as they are, never read as mathtext ($...$), and
with their control characters made visible.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import numpy as np

from ..columns import hardware_of
from ..compare import cost_rows, feed_of, model_of, train_setup
from ..errors import ConfigError
from ..files import atomic_write
from ..results import BenchResult, TrainResult
from ..text import printable

# The files write_all may write into --plots, checked before any work (crossrt.commands).
PLOT_FILES = ("learning_curves.png", "throughput_vs_threads.png", "train_vs_valid.png")


def pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ConfigError(
            "--plots needs matplotlib: pip install 'crossrt[plots]' (or: .venv/bin/pip install matplotlib)"
        ) from None
    matplotlib.use("Agg")  # files only, no display needed
    matplotlib.rcParams["text.parse_math"] = False  # a "$" in a run's name is a dollar sign
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    atomic_write(path, buf.getvalue())
    return path


def _about(results: list) -> str:
    """What the results have in common, for a title: their datasets and machines."""
    datasets = sorted({r.dataset or "generated inputs" for r in results})
    machines = sorted({hardware_of(r.environment) for r in results})
    return printable(f"{', '.join(datasets)}; {', '.join(machines)}")


def run_name(r: TrainResult) -> str:
    """A training run as a legend names it: its setting, epochs and run id."""
    return printable(f"{train_setup(r)}, {len(r.epochs)} ep, run {r.run_id}")


def learning_curves(trains: list[TrainResult], path: Path) -> Path:
    """Loss (training and validation) and validation accuracy per epoch, a line per run."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.2))
    for r in trains:
        epochs = [e.epoch for e in r.epochs]
        (line,) = ax_loss.plot(epochs, [e.train_loss for e in r.epochs], "o-", ms=3, label=f"{run_name(r)}: training")
        ax_loss.plot(
            epochs,
            [e.valid_loss for e in r.epochs],
            "s--",
            ms=3,
            color=line.get_color(),
            label=f"{run_name(r)}: validation",
        )
        ax_acc.plot(
            epochs, [100 * e.valid_accuracy for e in r.epochs], "o-", ms=3, color=line.get_color(), label=run_name(r)
        )
    from matplotlib.lines import Line2D

    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="Loss per epoch", ylim=(0, None))
    ax_loss.legend(
        [Line2D([], [], color="gray"), Line2D([], [], color="gray", ls="--")], ["training", "validation"], fontsize=7
    )
    low = min((100 * e.valid_accuracy for r in trains for e in r.epochs), default=0)
    ax_acc.set(
        xlabel="epoch", ylabel="validation accuracy (%)", title="Accuracy per epoch", ylim=(max(0, low - 5), 100.5)
    )
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    ax_acc.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(
        f"Learning curves: {_about(trains)}; {', '.join(sorted({str(len(r.epochs)) for r in trains}))} epoch(s)",
        fontsize=10,
    )
    return _save(fig, path)


def thread_series(benches: list[BenchResult]) -> dict[str, dict[str, dict[int, list]]]:
    """{runtime: {series: {threads: [runs]}}} of the CPU rows: a series is one configuration (its
    batch, spinning and precision, its model and machine where the results hold several), every run
    of it merged."""
    models = len({model_of(b)[0] for b in benches}) > 1
    machines = len({hardware_of(b.environment) for b in benches}) > 1
    out: dict = {}
    for b in benches:
        where = (f", {model_of(b)[1]}" if models else "") + (f", {hardware_of(b.environment)}" if machines else "")
        for run in (x for x in b.runs if x.provider == "cpu"):
            series = printable(f"batch {run.batch_size}{' no-spin' if run.spin is False else ''}{where}")
            out.setdefault(printable(run.runtime_label.removesuffix(" no-spin")), {}).setdefault(series, {}).setdefault(
                run.threads_effective or run.threads, []
            ).append(run)
    return out


def model_groups(benches: list[BenchResult]) -> dict[tuple, tuple[str, list[BenchResult]]]:
    """{(model key, feed): (label, its results)}: one row of panels per model and what it was fed,
    the label naming both (the inputs as bound, or the dataset)."""
    out: dict = {}
    for b in benches:
        fed = b.dataset or "; ".join(i.split(" (")[0] for i in b.model_info.get("inputs", [])) or "generated inputs"
        label = printable(f"{model_of(b)[1]}: {fed}")
        out.setdefault((model_of(b)[0], feed_of(b)), (label, []))[1].append(b)
    return out


def throughput_vs_threads(benches: list[BenchResult], path: Path) -> Path:
    """Samples/s against intra-op threads: a row of panels per model (and feed), each row on a scale
    of its own (a log scale where its values span more than 10x), a panel per runtime, a line per
    configuration; the median of its runs, error bars over their 95% intervals; threads on a log2
    axis where they span 4x or more, so that 2 and 64 threads are not one long straight line."""
    plt = pyplot()
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    groups = model_groups(benches)
    rows = [(label, thread_series(group)) for label, group in groups.values()]
    runtimes = sorted({rt for _, series in rows for rt in series})
    fig, axes = plt.subplots(
        len(rows), len(runtimes), figsize=(4.2 * len(runtimes) + 1, 3.6 * len(rows) + 0.6), squeeze=False
    )
    for (label, series), panels in zip(rows, axes):
        values = [
            r.samples_per_s
            for lines in series.values()
            for pts in lines.values()
            for runs in pts.values()
            for r in runs
        ]
        spans = bool(values) and max(values) > 10 * min(values)
        top = 0.0
        for ax, runtime in zip(panels, runtimes):
            if runtime not in series:
                ax.axis("off")
                continue
            for name, points in sorted(series[runtime].items()):
                threads = sorted(points)
                median = [float(np.median([r.samples_per_s for r in points[t]])) for t in threads]
                low = [min((r.ci95 or [r.samples_per_s])[0] for r in points[t]) for t in threads]
                high = [max((r.ci95 or [0, r.samples_per_s])[-1] for r in points[t]) for t in threads]
                ax.errorbar(
                    threads,
                    median,
                    yerr=[np.subtract(median, low), np.subtract(high, median)],
                    fmt="o-",
                    capsize=3,
                    label=name,
                )
                top = max(top, *high)
            ticks = sorted({t for points in series[runtime].values() for t in points})
            if ticks and max(ticks) >= 4 * max(min(ticks), 1):
                ax.set_xscale("log", base=2)
            ax.set_xticks(ticks, [str(t) for t in ticks])
            ax.set_title(textwrap.fill(f"{runtime}: {label}", 48), fontsize=8)
            ax.set(xlabel="intra-op threads")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="best")
        unit = "images" if all(b.dataset for b in benches) else "samples"
        for ax in panels:
            if ax.axison:
                if spans:  # ticks at 1, 2, 5 x 10^k in plain figures (mathtext is off: names are drawn as they are)
                    ax.set_yscale("log")
                    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
                    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
                    ax.yaxis.set_minor_formatter(NullFormatter())
                else:
                    ax.set_ylim(0, 1.08 * top or 1)
        panels[0].set(ylabel=("validation images/s" if unit == "images" else "samples/s") + (" (log)" if spans else ""))
    fig.suptitle(f"Throughput against threads (CPU): {_about(benches)}", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))  # the figure's title above the panels' own, not over them
    return _save(fig, path)


def train_vs_valid(pairs: list[tuple[TrainResult, BenchResult | None]], path: Path) -> Path:
    """Seconds per epoch, training and validation stacked, per training run and per runtime that
    priced its validation: runs of different lengths side by side, fairly."""
    plt = pyplot()
    bars = []
    for train, bench in pairs:
        n = len(train.epochs) or 1
        for label, t, v in cost_rows(train, bench.runs if bench else []):
            label = label.replace("PyTorch inside `train`", "PyTorch\n(train's own loop)")
            bars.append(
                (printable(f"run {train.run_id}\n{label.replace(', ', chr(10), 1)}", keep_newlines=True), t / n, v / n)
            )
    # Each bar's label is a few short lines: about 1.6 inches of width each keeps them apart.
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(bars) + 1.5), 5))
    labels = [b[0] for b in bars]
    train_s, valid_s = [b[1] for b in bars], [b[2] for b in bars]
    ax.bar(labels, train_s, label="training")
    ax.bar(labels, valid_s, bottom=train_s, label="validation")
    ax.set(ylabel="seconds per epoch")
    ax.tick_params(axis="x", labelsize=7)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    trains = [t for t, _ in pairs]
    ax.set_title(
        f"Training vs validation per epoch: {_about(trains)}; "
        f"{', '.join(sorted({str(len(t.epochs)) for t in trains}))} epoch(s)",
        fontsize=10,
    )
    return _save(fig, path)


def write_all(
    plot_dir: Path, pairs: list[tuple[TrainResult, BenchResult | None]], benches: list[BenchResult]
) -> list[Path]:
    """Every figure the results allow; returns the paths."""
    plot_dir = Path(plot_dir)
    written = []
    if pairs:
        written.append(learning_curves([t for t, _ in pairs], plot_dir / PLOT_FILES[0]))
    if any(r.provider == "cpu" for b in benches for r in b.runs):
        written.append(throughput_vs_threads(benches, plot_dir / PLOT_FILES[1]))
    if pairs:
        written.append(train_vs_valid(pairs, plot_dir / PLOT_FILES[2]))
    return written
