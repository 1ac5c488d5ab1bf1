"""A training run's table: its figures, its cost, the peak it is held against.
Measurement never imports this module.
"""

from __future__ import annotations

from rich.table import Table

from ..columns import ci, num, pct, peak_pct, secs
from ..results import Peak, TrainResult
from ..system import ago
from .console import esc
from .layout import Col, fitted


def train_summary(r: TrainResult) -> Table:
    s, n = r.summary(), len(r.epochs)
    per = (lambda x: secs(x / n)) if n else (lambda x: "—")
    steadiness = "stable" if s["train_stable"] else f"[yellow]unstable: {esc(s['train_unstable_cause'])}[/]"
    rows = [
        ["training time", secs(s["train_s"]), f"{per(s['train_s'])} per epoch"],
        [
            "validation time",
            secs(s["valid_s"]),
            f"{per(s['valid_s'])} per pass ({r.valid_images:,} images, batch {r.valid_batch_size})",
        ],
        [
            "total",
            secs(s["total_s"]),
            "training + validation, as the reference adds them"
            + (f" + setup; without the setup {secs(s['total_without_setup_s'])}" if r.setup_s else ""),
        ],
        *(
            [
                [
                    "setup (CUDA graphs)",
                    secs(r.setup_s),
                    "warm-up (cuDNN's algorithm search "
                    + ("on" if r.tuning.get("cudnn_benchmark") else "off")
                    + ") and capture; before it, not counted: "
                    + ", ".join(
                        esc(f"{k.removesuffix('_s').replace('_', ' ')} {v:.2f} s")
                        for k, v in r.setup_parts.items()
                        if k != "warmup_and_capture_s"
                    ),
                ]
            ]
            if r.setup_s
            else []
        ),
        ["first epoch", secs(s["first_epoch_s"]), "train + valid; includes warm-up cost"],
        [
            "steady epoch (training)",
            secs(s["steady_epoch_train_s"]),
            f"mean of epochs 2..{n}; {steadiness}"
            if n > 1
            else "epoch 1 only, warm-up included: train 2 epochs or more for a steady state",
        ],
        [
            "training throughput",
            f"{num(s['steady_images_per_s'])} img/s",
            f"{'steady epochs' if n > 1 else 'epoch 1'}: 95% CI {ci(s['train_ci95'])}; {num(s['train_gflops'], 1)} "
            f"GFLOP/s (3 x {r.flops_per_image / 1e6:.2f} MFLOP/img); every epoch, warm-up too: "
            f"{num(s['images_per_s'])} img/s",
        ],
    ]
    if s["percent_of_peak"] is not None:
        rows.append([f"% of {esc(r.math)} peak", peak_pct(s["percent_of_peak"]), peak_note(r.peak)])
    if s["train_cpu_s_per_1k"] is not None:
        rows.append(
            [
                "CPU cost",
                f"{s['train_cpu_s_per_1k']:.2f} s / 1k img",
                "process CPU seconds per 1,000 training images, all threads" + (" of all ranks" * (r.world_size > 1)),
            ]
        )
    if r.peak_rss_mb is not None:
        rows.append(
            [
                "peak memory",
                f"{r.peak_rss_mb:,.0f} MiB",
                "resident set of the process" + (" of rank 0 (each rank has its own)" if r.world_size > 1 else ""),
            ]
        )
    rows += [
        ["final accuracy", pct(s["final_accuracy"]), f"epoch {n}"],
        ["best accuracy", pct(s["best_accuracy"]), f"epoch {s['best_epoch']}"],
        [
            f"reached {pct(r.target_accuracy)}",
            "not reached" if s["target_epoch"] is None else f"epoch {s['target_epoch']}",
            f"in {n} epoch(s)" if s["target_epoch"] is None else f"after {secs(s['target_s'])} (train + valid)",
        ],
    ]
    if r.onnx is not None:
        o = r.onnx
        ok = "green" if o.top1_agreement == 1.0 and o.max_abs_diff < 1e-3 else "red"
        rows += [
            ["ONNX export", f"opset {o.opset}", f"{esc(o.path)}, {secs(o.export_s)}"],
            [
                "ONNX Runtime parity",
                f"[{ok}]{pct(o.top1_agreement)} top-1[/]",
                f"max |logit diff| {o.max_abs_diff:.2e} on {o.images:,} images",
            ],
        ]
    ranks = f"{r.world_size} ranks ({r.backend}) x " if r.world_size > 1 else ""
    title = esc(
        f"LeNet5 ({r.arch}) on {r.dataset}: {n} epoch(s), {r.device}, {ranks}{r.threads} thread(s), {r.precision}"
    )
    if not r.complete:
        title += " [yellow](stopped early)[/]"
    return fitted(title, [Col("measure", left=True, key=True), Col("value"), Col("note", left=True, wrap=True)], rows)


def peak_note(p: Peak) -> str:
    """What a "% of peak" divides by: the figure, how it was measured, its spread and age, and
    whether it is the machine's cached peak or one measured for this run only (and why)."""
    how = (
        f"best of {len(p.tries)}, spread {100 * p.spread:.0f}%, measured {ago(p.measured)}"
        if p.tries is not None
        else ""
    )
    where = f"{p.threads or 'all'} cpu thread(s)" if p.device == "cpu" else "the GPU"
    text = esc(
        f"of {p.peak:,.0f} GFLOP/s, the fastest {p.math or ''} kernel measured on {where}"
        + (f" ({how})" if how else "")
    )
    if p.cached is False:
        text += f" [yellow]for this run only, not cached: {esc(p.why or '')}[/]"
    return text
