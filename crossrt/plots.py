"""PNG figures of results: learning curves, throughput against threads, training vs validation time.

matplotlib is an optional extra (`pip install crossrt[plots]`); without it, asking for plots
is a one-line error. Figures are written atomically like every other crossrt file.
"""

from __future__ import annotations

import io
from pathlib import Path

from .errors import ConfigError
from .files import atomic_write
from .results import BenchResult, TrainResult, cost_rows, machine_of


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


def _label(r: TrainResult, machine: bool) -> str:
    base = f"{r.setup}, {r.dataset}"
    return f"{base} [{machine_of(r.environment, r.device).split(' @ ')[0]}]" if machine else base


def learning_curves(trains: list[TrainResult], path: Path) -> Path:
    """Loss (training and validation) and validation accuracy per epoch, every run on one chart."""
    plt = pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    machines = len({machine_of(r.environment, r.device) for r in trains}) > 1
    for r in trains:
        epochs = [e.epoch for e in r.epochs]
        line, = ax_loss.plot(epochs, [e.train_loss for e in r.epochs], label=f"{_label(r, machines)} train")
        ax_loss.plot(epochs, [e.valid_loss for e in r.epochs], "--", color=line.get_color(),
                     label=f"{_label(r, machines)} valid")
        ax_acc.plot(epochs, [100 * e.valid_accuracy for e in r.epochs], color=line.get_color(),
                    label=_label(r, machines))
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
    for b in benches:
        where = f" [{machine_of(b.environment).split(' @ ')[0]}]" if machines else ""
        for run in b.runs:
            if run.provider == "cpu":
                key = f"{run.runtime} batch {run.batch_size}{where}"
                lines.setdefault(key, {})[run.threads_effective or run.threads] = run.images_per_s
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
    costs = [(f"{t.setup}\n{label}", a, b) for t, bench in pairs
             for label, a, b in cost_rows(t, bench.runs if bench else [])]
    written = []
    if trains:
        written.append(learning_curves(trains, plot_dir / "learning_curves.png"))
    if any(r.provider == "cpu" for b in benches for r in b.runs):
        written.append(throughput_vs_threads(benches, plot_dir / "throughput_vs_threads.png"))
    if costs:
        written.append(train_vs_valid(costs, plot_dir / "train_vs_valid.png"))
    return written
