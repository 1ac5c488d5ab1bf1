"""`crossrt suite`: the seed's table for this machine, built only from `train` and `bench-infer`.

For each mode the machine has (CPU on 1 thread, CPU on all cores, CUDA when present) it
trains with :func:`crossrt.train.train`, exports and checks the model, and times validation
with :func:`crossrt.bench.run_bench` (ONNX Runtime and PyTorch, on that mode's provider and
threads). Optional sweeps repeat both over thread counts and batch sizes for a scaling
table. There is no second way of timing anything here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .bench import BenchInterrupted, run_bench
from .config import (BenchConfig, ConfigError, CrossrtError, DataConfig, TrainConfig, _at_least,
                     _writable_file, cpu_count, to_plain)
from .data import Dataset
from .export import export_result
from .report import SCHEMA_VERSION, TrainResult, environment, now_iso, peak_rss_mb
from .runtime import onnx_flops
from .train import Interrupted, train

SEED_BATCH = 600  # the seed's training batch, used by every mode


class SuiteInterrupted(CrossrtError):
    def __init__(self, result: dict):
        super().__init__(f"interrupted after {len(result['modes'])} complete mode(s)")
        self.result = result


def default_sweep_threads() -> tuple[int, ...]:
    """1, 2, 4, ... up to the core count, and the core count itself."""
    n, t, out = cpu_count(), 1, []
    while t < n:
        out.append(t)
        t *= 2
    return tuple(out + [n])


@dataclass
class SuiteConfig:
    data: DataConfig = field(default_factory=DataConfig)
    epochs: int = 100
    device: str = "auto"  # auto = CUDA mode when a GPU is usable; cpu = CPU modes only; cuda = require it
    out: Path = Path("exports/suite")
    min_time: float = 1.0
    sweep: bool = False
    sweep_threads: tuple[int, ...] = field(default_factory=default_sweep_threads)
    sweep_train_batches: tuple[int, ...] = (100, 600, 2000)
    sweep_valid_batches: tuple[int, ...] = (1, 10, 100, 1000)
    sweep_epochs: int = 1
    json: Path | None = None

    def __post_init__(self) -> None:
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"--device: unknown value {self.device!r} (choose from auto, cpu, cuda)")
        _at_least("--epochs", self.epochs, 1)
        _at_least("--sweep-epochs", self.sweep_epochs, 1)
        _at_least("--min-time", self.min_time, 0)
        for flag, values in (("--sweep-threads", self.sweep_threads),
                             ("--sweep-train-batches", self.sweep_train_batches),
                             ("--sweep-valid-batches", self.sweep_valid_batches)):
            for v in values:
                _at_least(flag, v, 1)
        self.out = Path(self.out)
        self.json = _writable_file("--json", self.json)


def modes(cfg: SuiteConfig) -> list[tuple[str, str, int]]:
    """(name, device, threads) of the seed's modes that this machine has."""
    import torch

    n = cpu_count()
    out = [("cpu 1 thread", "cpu", 1)] + ([(f"cpu {n} threads", "cpu", n)] if n > 1 else [])
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no usable CUDA GPU for the suite's GPU mode")
    if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()):
        out.append(("gpu", "cuda", n))
    return out


def reference() -> dict:
    """The seed article's published 100-epoch figures (another machine: see 'machine')."""
    return json.loads(resources.files("crossrt").joinpath("seed_reference.json").read_text())


def _train_and_bench(name: str, device: str, threads: int, epochs: int, batch: int, cfg: SuiteConfig,
                     ds: Dataset, progress, bench: bool, export: bool) -> dict:
    tcfg = TrainConfig(data=cfg.data, device=device, threads=threads, epochs=epochs, batch_size=batch,
                       out=cfg.out / name.replace(" ", "-"), export=export)
    progress.start(f"{name}: training, {epochs} epoch(s), batch {batch}")
    result, model = train(tcfg, ds, progress)  # the suite's bar takes train's progress calls
    out = {"mode": name, "device": device, "threads": threads, "train": None, "bench": None}
    if export:
        result.onnx = export_result(model, result, tcfg.onnx_path, ds.test_images)
    out["train"] = result.to_dict()
    if bench:
        progress.start(f"{name}: validation under ONNX Runtime and PyTorch")
        bcfg = BenchConfig(data=cfg.data, model=tcfg.onnx_path, providers=(device,), threads=(threads,),
                           min_time=cfg.min_time)
        out["bench"] = run_bench(bcfg, ds, onnx_flops(tcfg.onnx_path), on_run=lambda r: progress.config()).to_dict()
    return out


def plan_units(cfg: SuiteConfig, ds: Dataset, mode_list) -> int:
    """Work units for the progress bar: one per training batch, 50 per bench configuration."""
    n = len(ds.train_labels)
    units = sum(cfg.epochs * -(-n // SEED_BATCH) + 2 * 50 for _ in mode_list)
    if cfg.sweep:
        units += sum(cfg.sweep_epochs * -(-n // b) for b in cfg.sweep_train_batches) * len(cfg.sweep_threads)
        units += 50 * 2 * len(cfg.sweep_threads) * len(cfg.sweep_valid_batches)
    return units


def run_suite(cfg: SuiteConfig, ds: Dataset, progress) -> dict:
    """Every mode, then the sweeps; returns the suite result (kind "suite")."""
    mode_list = modes(cfg)
    progress.total(plan_units(cfg, ds, mode_list))
    result = {"kind": "suite", "schema_version": SCHEMA_VERSION, "created": now_iso(), "complete": False,
              "dataset": ds.name, "dataset_source": ds.source, "config": to_plain(cfg), "modes": [],
              "sweep": None, "environment": {}}
    try:
        for name, device, threads in mode_list:
            result["modes"].append(_train_and_bench(name, device, threads, cfg.epochs, SEED_BATCH, cfg, ds, progress,
                                                    bench=True, export=True))
        if cfg.sweep:
            trains = [_train_and_bench(f"sweep {t} thr batch {b}", "cpu", t, cfg.sweep_epochs, b, cfg, ds,
                                       progress, bench=False, export=False)["train"]
                      for t in cfg.sweep_threads for b in cfg.sweep_train_batches]
            progress.start("sweep: validation over threads and batch sizes")
            cpu_mode = [m for m in result["modes"] if m["device"] == "cpu"][-1]  # the all-cores model
            model = Path(cpu_mode["train"]["onnx"]["path"])
            bcfg = BenchConfig(data=cfg.data, model=model, threads=cfg.sweep_threads,
                               batch_sizes=cfg.sweep_valid_batches, min_time=cfg.min_time)
            bench = run_bench(bcfg, ds, onnx_flops(bcfg.model), on_run=lambda r: progress.config())
            result["sweep"] = {"train": trains, "bench": bench.to_dict()}
        result["complete"] = True
    except (KeyboardInterrupt, Interrupted, BenchInterrupted):
        raise SuiteInterrupted(result) from None
    finally:
        result["environment"] = environment()
        result["peak_rss_mb"] = peak_rss_mb()
    return result


def scaling(result: dict) -> list[dict]:
    """Speed-up and parallel efficiency against 1 thread, per phase, runtime and batch size."""
    sweep = result.get("sweep") or {}
    series: dict[tuple[str, int], dict[int, float]] = {}
    for t in sweep.get("train", []):
        r = TrainResult.from_dict(t)
        series.setdefault(("training (pytorch)", r.batch_size), {})[r.threads] = r.summary()["images_per_s"]
    for run in (sweep.get("bench") or {}).get("runs", []):
        series.setdefault((f"validation ({run['runtime']})", run["batch_size"]), {})[run["threads"]] = \
            run["images_per_s"]
    rows = []
    for (phase, batch), by_threads in series.items():
        base = by_threads.get(1)
        for threads, ips in sorted(by_threads.items()):
            speedup = ips / base if base else None
            rows.append({"phase": phase, "batch_size": batch, "threads": threads, "images_per_s": ips,
                         "speedup": speedup, "efficiency": speedup / threads if speedup else None})
    return rows
