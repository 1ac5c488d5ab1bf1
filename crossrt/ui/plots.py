"""PNG figures of results: learning curves, throughput against threads, training vs validation time.

matplotlib is an optional extra (`pip install crossrt[plots]`); without it, asking for plots
is a one-line error. Figures are written atomically like every other crossrt file. Runs stay
apart: every line and bar is named by its run (setup, dataset, epochs, and its start time
where two runs would otherwise share a name), and points are marked, so a one-epoch run shows.
"""

from __future__ import annotations

import io
from pathlib import Path

from ..compare import cost_rows, hardware_of, machine_of, train_setup
from ..errors import ConfigError
from ..files import atomic_write
from ..results import BenchResult, TrainResult


def pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("--plots needs matplotlib: pip install 'crossrt[plots]' "
                           "(or: .venv/bin/pip install matplotlib)") from None
    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    atomic_write(path, buf.getvalue())
    return path


def run_names(results: list, base) -> list[str]:
    """base(result) for each result, made unique: the run's start time is added where two
    share a name, and a number where even that is the same."""
    names = [base(r) for r in results]
    names = [f"{n} @{r.created[5:16].replace('T', ' ')}" if names.count(n) > 1 else n for n, r in zip(names, results)]
    return [f"{n} #{i + 1}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def train_names(trains: list[TrainResult]) -> list[str]:
    machines = len({machine_of(r.environment, r.device) for r in trains}) > 1

    def base(r):
        where = f" [{hardware_of(r.environment, r.device)}]" if machines else ""
        return f"{train_setup(r)}, {r.dataset}, {len(r.epochs)} ep{where}"

    return run_names(trains, base)


def learning_curves(trains: list[TrainResult], path: Path) -> Path:
    """Loss (training and validation) and validation accuracy per epoch, every run on one chart."""
    plt = pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for r, name in zip(trains, train_names(trains)):
        epochs = [e.epoch for e in r.epochs]
        line, = ax_loss.plot(epochs, [e.train_loss for e in r.epochs], "o-", ms=3, label=f"{name} train")
        ax_loss.plot(epochs, [e.valid_loss for e in r.epochs], "s--", ms=3, color=line.get_color(),
                     label=f"{name} valid")
        ax_acc.plot(epochs, [100 * e.valid_accuracy for e in r.epochs], "o-", ms=3, color=line.get_color(),
                    label=name)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="Loss per epoch")
    ax_acc.set(xlabel="epoch", ylabel="validation accuracy (%)", title="Accuracy per epoch")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)


def throughput_vs_threads(benches: list[BenchResult], path: Path) -> Path:
    """Validation images/s against intra-op threads, one line per runtime, provider and batch."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    lines: dict[str, dict[int, float]] = {}
    machines = len({machine_of(b.environment) for b in benches}) > 1
    names = run_names(benches, lambda b: b.dataset + (f" [{hardware_of(b.environment)}]" if machines else ""))
    for b, name in zip(benches, names):
        for run in b.runs:
            if run.provider == "cpu":
                key = f"{run.runtime_label} batch {run.batch_size}, {name}"
                lines.setdefault(key, {})[run.threads_effective or run.threads] = run.samples_per_s
    for key, points in sorted(lines.items()):
        threads = sorted(points)
        ax.plot(threads, [points[t] for t in threads], "o-", label=key)
    ax.set_xticks(sorted({t for points in lines.values() for t in points}))
    ax.set(xlabel="intra-op threads", ylabel="validation images/s", title="Throughput against threads (CPU)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def train_vs_valid(rows: list[tuple[str, float, float]], path: Path) -> Path:
    """Stacked bars per mode: training time and validation time (the reference's split)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(rows)), 4.5))
    labels = [r[0] for r in rows]
    train = [r[1] for r in rows]
    valid = [r[2] for r in rows]
    ax.bar(labels, train, label="training")
    ax.bar(labels, valid, bottom=train, label="validation")
    ax.set(ylabel="seconds", title="Training vs validation time per mode")
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    ax.legend()
    return _save(fig, path)


def write_all(plot_dir: Path, pairs: list[tuple[TrainResult, BenchResult | None]],
              benches: list[BenchResult]) -> list[Path]:
    """Every figure the results allow: learning curves and cost bars of each training run (priced
    with its bench-infer runs, when paired), throughput against threads; returns the paths."""
    plot_dir = Path(plot_dir)
    trains = [t for t, _ in pairs]
    costs = [(f"{name}\n{label}", a, b) for (t, bench), name in zip(pairs, train_names(trains))
             for label, a, b in cost_rows(t, bench.runs if bench else [])]
    written = []
    if trains:
        written.append(learning_curves(trains, plot_dir / "learning_curves.png"))
    if any(r.provider == "cpu" for b in benches for r in b.runs):
        written.append(throughput_vs_threads(benches, plot_dir / "throughput_vs_threads.png"))
    if costs:
        written.append(train_vs_valid(costs, plot_dir / "train_vs_valid.png"))
    return written
