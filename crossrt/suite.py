"""`crossrt suite`: the reference's table for this machine, built only from `train` and `bench-infer`.

For each of the reference's modes the machine has (CPU on 1 thread, CPU on all cores, CUDA
when present) it trains with :func:`crossrt.train.train`, exports and checks the model, and
times validation with :func:`crossrt.bench_infer.run_bench` (the runtimes asked for, ONNX
Runtime and PyTorch by default, on that mode's provider and threads). Optional sweeps repeat
both over thread counts and batch sizes for a scaling table. There is no second way of timing anything here.
"""

from __future__ import annotations

import json
import sys
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np

from . import distributed, train
from .bench_infer import prepare, run_bench
from .checks import fits
from .config import BenchConfig, SuiteConfig, TrainConfig
from .data import Dataset
from .errors import CrossrtError, ProviderError, Stopped
from .export import INPUT_NAME, export_trained, tiny_model
from .files import load_result
from .plan import plan
from .results import ModeResult, Skipped, SuiteResult, Sweep, TrainResult
from .runtimes.registry import RUNTIMES
from .schema import plain
from .system import cpu_count, environment, peak_rss_mb

REFERENCE_BATCH = 600  # the reference's training batch, used by every mode
BENCH_UNITS = 50  # a bench configuration's share of the progress bar, in training batches


class Progress(train.Progress):
    """What run_suite reports through, besides training's epochs and batches: the units of work
    planned, the part that starts, and work done in bulk. The CLI passes a rich bar; this one
    says nothing."""

    def total(self, units: int) -> None: ...
    def start(self, what: str) -> None: ...
    def describe(self, what: str) -> None: ...
    def advance_by(self, units: int) -> None: ...


def runtimes_on(provider: str, runtimes: tuple[str, ...]) -> tuple[tuple[str, ...], list[Skipped]]:
    """The runtimes that really run on provider here, and why each other does not: asked with a
    session on a tiny model (crossrt doctor's), before any training, so that a GPU mode whose
    onnxruntime has no working CUDA provider times PyTorch alone instead of failing at the end."""
    if provider == "cpu":
        return runtimes, []  # what cannot run on the CPU (not installed, no compiler) the plan lists itself
    with tempfile.TemporaryDirectory() as tmp:
        tiny_model(Path(tmp) / "tiny.onnx")
        probe = BenchConfig(model=Path(tmp) / "tiny.onnx", providers=(provider,), runtimes=runtimes)
        ok, cannot = [], []
        for name in runtimes:
            try:
                why = RUNTIMES[name].unavailable(provider, probe)
                if why is None:
                    RUNTIMES[name].check(probe, provider, {INPUT_NAME: np.zeros((1, 1, 28, 28), np.float32)})
            except CrossrtError as e:
                why = str(e)
            if why is None:
                ok.append(name)
            else:
                cannot.append(Skipped(name, provider, why))
    return tuple(ok), cannot


def modes(cfg: SuiteConfig) -> list[tuple[str, str, int]]:
    """(name, device, threads) of the reference's modes that this machine has."""
    import torch

    n = cpu_count()
    out = [("cpu 1 thread", "cpu", 1)] + ([(f"cpu {n} threads", "cpu", n)] if n > 1 else [])
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ProviderError("--device cuda: no usable CUDA GPU for the suite's GPU mode")
    if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()):
        out.append(("gpu", "cuda", n))
    return out


def reference() -> dict:
    """The reference article's published 100-epoch figures (another machine: see 'machine')."""
    return json.loads(resources.files("crossrt").joinpath("reference.json").read_text())


def _bench(bcfg: BenchConfig, ds: Dataset, progress, what: str):
    def started(row, done: int, total: int) -> None:
        progress.describe(f"{what}: validation {done + 1}/{total}, {row.label}")

    return run_bench(
        bcfg,
        ds,
        prepare(bcfg),
        on_run=lambda r: progress.advance_by(BENCH_UNITS),
        on_fail=lambda f: progress.advance_by(BENCH_UNITS),
        on_start=started,
    )


def _train_mode(
    name: str, device: str, threads: int, epochs: int, batch: int, cfg: SuiteConfig, ds: Dataset, progress, export: bool
) -> tuple[TrainResult, Path]:
    tcfg = TrainConfig(
        data=cfg.data,
        device=device,
        threads=threads,
        epochs=epochs,
        batch_size=batch,
        out=cfg.out / name.replace(" ", "-"),
        export=export,
    )
    progress.start(f"{name}: training, {epochs} epoch(s), batch {batch}")
    result, model = train.train(tcfg, ds, progress)  # the suite's bar takes train's progress calls
    if export:
        export_trained(model, result, tcfg.onnx_path, ds.test_images)
    return result, tcfg.onnx_path


def _train_ranks(ranks: int, batch: int, cfg: SuiteConfig, ds: Dataset, progress) -> TrainResult:
    """A data-parallel sweep run: `crossrt train --nproc P` through the same launcher, with
    cores / P threads per rank; rank 0's result file is read back."""
    threads = max(1, cpu_count() // ranks)
    name = f"sweep {ranks}x{threads} thr batch {batch}"
    progress.start(f"{name}: training, {cfg.sweep_epochs} epoch(s), {ranks} ranks")
    data = ["--dataset", cfg.data.dataset] + (["--data-dir", str(cfg.data.data_dir)] if cfg.data.data_dir else [])
    with tempfile.TemporaryDirectory() as tmp:
        argv = [
            "train",
            "--nproc",
            str(ranks),
            "--threads",
            str(threads),
            "--epochs",
            str(cfg.sweep_epochs),
            "--batch-size",
            str(batch),
            "--no-export",
            "--out",
            str(cfg.out / name.replace(" ", "-")),
            "--json",
            f"{tmp}/run.json",
            *data,
        ]
        code = distributed.launch([sys.executable, "-m", "crossrt"], argv, ranks)
        if code == 130:
            raise KeyboardInterrupt
        if code:
            raise CrossrtError(f"{name}: the data-parallel run failed (exit code {code})")
        result = load_result(Path(tmp) / "run.json", ("train",))
    progress.advance_by(cfg.sweep_epochs * -(-len(ds.train_labels) // batch))
    return result


def plan_units(cfg: SuiteConfig, ds: Dataset, mode_list, usable: dict) -> int:
    """Work units for the progress bar: one per training batch, BENCH_UNITS per bench configuration
    (counted by bench-infer's own plan)."""
    n = len(ds.train_labels)

    def configs(device: str, threads, batches) -> int:
        return (
            len(
                plan(
                    BenchConfig(
                        providers=(device,),
                        threads=threads,
                        runtimes=usable[device][0] or ("onnxruntime",),
                        batch_sizes=batches,
                    )
                )
            )
            if usable[device][0]
            else 0
        )

    units = sum(
        cfg.epochs * -(-n // REFERENCE_BATCH) + BENCH_UNITS * configs(device, (threads,), None)
        for _, device, threads in mode_list
    )
    if cfg.sweep:
        units += sum(cfg.sweep_epochs * -(-n // b) for b in cfg.sweep_train_batches) * len(cfg.sweep_threads)
        units += sum(
            cfg.sweep_epochs * -(-n // b) for b in cfg.sweep_train_batches for p in cfg.sweep_ranks if b % p == 0
        )
        units += BENCH_UNITS * configs("cpu", cfg.sweep_threads, cfg.sweep_valid_batches)
    return units


def run_suite(cfg: SuiteConfig, ds: Dataset, progress: Progress | None = None) -> SuiteResult:
    """Every mode, then the sweeps; Stopped keeps the modes already finished."""
    progress = progress or Progress()
    mode_list = modes(cfg)
    if cfg.sweep:  # checked now, not after the modes have trained for an hour
        fits("--sweep-train-batches", cfg.sweep_train_batches, len(ds.train_labels), "training images")
        fits("--sweep-valid-batches", cfg.sweep_valid_batches, len(ds.test_labels), "test images")
    usable = {device: runtimes_on(device, cfg.runtimes) for device in {m[1] for m in mode_list}}
    progress.total(plan_units(cfg, ds, mode_list, usable))
    result = SuiteResult(dataset=ds.name, dataset_source=ds.source, config=plain(cfg))
    unfinished: list[str] = []  # a mode stopped part-way, kept as far as it got
    try:
        for name, device, threads in mode_list:
            mode = ModeResult(name, device, threads)
            try:
                mode.train, onnx_path = _train_mode(
                    name, device, threads, cfg.epochs, REFERENCE_BATCH, cfg, ds, progress, export=True
                )
                runtimes, cannot = usable[device]
                progress.start(f"{name}: validation under {', '.join(runtimes)}")
                if runtimes:
                    bcfg = BenchConfig(
                        data=cfg.data,
                        model=onnx_path,
                        providers=(device,),
                        threads=(threads,),
                        runtimes=runtimes,
                        min_time=cfg.min_time,
                        isolate=cfg.isolate,
                    )
                    mode.bench = _bench(bcfg, ds, progress, name)
                    mode.bench.skipped += cannot
            except (KeyboardInterrupt, CrossrtError) as stop:  # the mode as far as it got is kept
                kept = getattr(stop, "result", None)
                if isinstance(kept, TrainResult):
                    mode.train = kept
                elif kept is not None:
                    mode.bench = kept
                if mode.train is not None:
                    result.modes.append(mode)
                    unfinished.append(name)
                raise
            result.modes.append(mode)
        if cfg.sweep:
            result.sweep = sweep = Sweep()
            sweep.train = [
                _train_mode(f"sweep {t} thr batch {b}", "cpu", t, cfg.sweep_epochs, b, cfg, ds, progress, export=False)[
                    0
                ]
                for t in cfg.sweep_threads
                for b in cfg.sweep_train_batches
            ]
            sweep.train += [
                _train_ranks(p, b, cfg, ds, progress)
                for p in cfg.sweep_ranks
                for b in cfg.sweep_train_batches
                if b % p == 0
            ]
            progress.start("sweep: validation over threads and batch sizes")
            model = Path([m for m in result.modes if m.device == "cpu"][-1].train.onnx.path)  # all cores
            bcfg = BenchConfig(
                data=cfg.data,
                model=model,
                threads=cfg.sweep_threads,
                runtimes=cfg.runtimes,
                batch_sizes=cfg.sweep_valid_batches,
                min_time=cfg.min_time,
                isolate=cfg.isolate,
            )
            sweep.bench = _bench(bcfg, ds, progress, "sweep")
        result.complete = True
    except (KeyboardInterrupt, CrossrtError) as e:  # the modes that finished are saved all the same
        failed = isinstance(e, CrossrtError) and not getattr(e, "interrupted", False)
        what = f"{e}; stopped" if failed else "interrupted"
        kept = f" (kept as far as it got: {', '.join(unfinished)})" if unfinished else ""
        raise Stopped(
            f"{what} after {len(result.modes) - len(unfinished)} complete mode(s){kept}", result, interrupted=not failed
        ) from None
    finally:
        result.environment = environment()
        result.peak_rss_mb = peak_rss_mb()
    return result


def rank_scaling(result: SuiteResult) -> list[dict]:
    """Data-parallel runs of the sweep against one process on the same total cores."""
    trains = result.sweep.train if result.sweep else []
    one = {(r.batch_size, r.threads): r.summary()["images_per_s"] for r in trains if r.world_size == 1}
    rows = []
    for r in (r for r in trains if r.world_size > 1):
        ips, base = r.summary()["images_per_s"], one.get((r.batch_size, r.world_size * r.threads))
        rows.append(
            {
                "batch_size": r.batch_size,
                "ranks": r.world_size,
                "threads": r.threads,
                "images_per_s": ips,
                "one_process": base,
                "ratio": ips / base if base else None,
                "final_accuracy": r.summary()["final_accuracy"],
            }
        )
    return rows


def scaling(result: SuiteResult) -> list[dict]:
    """Speed-up and parallel efficiency against 1 thread, per phase, runtime and batch size."""
    series: dict[tuple[str, int], dict[int, float]] = {}
    sweep = result.sweep or Sweep()
    for r in (r for r in sweep.train if r.world_size == 1):
        series.setdefault(("training (pytorch)", r.batch_size), {})[r.threads] = r.summary()["images_per_s"]
    for run in sweep.bench.runs if sweep.bench else []:
        series.setdefault((f"validation ({run.runtime})", run.batch_size), {})[run.threads] = run.samples_per_s
    rows = []
    for (phase, batch), by_threads in series.items():
        base = by_threads.get(1)
        for threads, ips in sorted(by_threads.items()):
            speedup = ips / base if base else None
            rows.append(
                {
                    "phase": phase,
                    "batch_size": batch,
                    "threads": threads,
                    "images_per_s": ips,
                    "speedup": speedup,
                    "efficiency": speedup / threads if speedup else None,
                }
            )
    return rows
