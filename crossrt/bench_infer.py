"""bench-infer: time full validation passes under every runtime asked for, on equal terms.

Every runtime gets the same normalised float32 batches (views of one contiguous array, made
before any clock starts), the same batch sizes and the same thread counts, and is timed by
the same loop (:func:`crossrt.timing.time_passes`). Per configuration we record the cold
costs on their own (session creation or compilation, first inference), then steady-state
per-batch latency and whole-pass throughput with their spread and CPU cost, and score the
outputs (loss, accuracy, agreement with PyTorch's top-1) from an untimed pass. Which runtimes
exist, where they run and how their runners are built is crossrt.runtimes.registry's to say.

With `isolate`, each configuration runs in a fresh spawned process, so no allocator or
thread-pool state carries over from the one before.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

import numpy as np

from . import checkpoint
from .checks import fits
from .config import BenchConfig
from .data import Dataset, in_batches, normalize
from .errors import CrossrtError, ModelError, ProviderError, Stopped
from .export import read_metadata
from .files import load_result, regular_file
from .flops import onnx_flops
from .isolate import isolated
from .peak import measured_peak, unbeaten
from .results import BenchResult, InferRun, TrainResult
from .runtimes.base import Row, all_logits
from .runtimes.onnxruntime import placement
from .runtimes.registry import RUNTIMES
from .schema import plain
from .system import cpu_count, environment, peak_rss_mb
from .timing import time_passes, timed

SPINS = {"on": (True,), "off": (False,), "both": (True, False)}
# bf16 and int8 rows may differ from PyTorch's fp32 accuracy by this much (fp32 rows: not at all).
LOW_PRECISION_TOLERANCE = 0.005


@dataclass
class Prepared:
    """What bench-infer checked before any data is read: the model loads under every runtime asked for."""

    flops_per_image: int
    metadata: dict  # the model's metadata_props (dataset, data_dir, weights_sha256, ...)
    training: TrainResult | None  # the run that made the model, for the training-vs-validation table
    torch_rows: bool  # a runtime of the PyTorch model was asked for: the checkpoint is needed and was checked

    @property
    def trained_on(self) -> tuple[str | None, str | None]:
        return self.metadata.get("dataset") or None, self.metadata.get("data_dir") or None


def skipped(cfg: BenchConfig) -> list[dict]:
    return [{"runtime": r, "provider": p, "reason": why} for p in cfg.providers for r in cfg.runtimes
            if (why := RUNTIMES[r].unavailable(p, cfg))]


def prepare(cfg: BenchConfig) -> Prepared:
    """Fail on a bad model, provider, checkpoint or training record before any work starts.
    Only the runtimes asked for are asked: PyTorch rows on CUDA need no ONNX Runtime CUDA session."""
    regular_file(cfg.model, "model", missing="run `make train` first to create it")
    for provider in cfg.providers:
        for name in cfg.runtimes:
            if not RUNTIMES[name].unavailable(provider, cfg):
                RUNTIMES[name].check(cfg, provider)
    meta = read_metadata(cfg.model)
    torch_rows = any(RUNTIMES[r].model == "torch" for r in cfg.runtimes)
    if torch_rows:
        state = checkpoint.load(cfg.checkpoint)
        ours, theirs = state.get("weights_sha256"), meta.get("weights_sha256")
        if ours and theirs and ours != theirs:
            raise ModelError(f"{cfg.model} holds other weights than {cfg.checkpoint} (an older export, e.g. after "
                             f"`train --no-export`): export this checkpoint with `crossrt export --checkpoint "
                             f"{cfg.checkpoint}`, or pass the matching --checkpoint")
    train_json = cfg.train_json or cfg.model.with_suffix(".train.json")
    training = None
    if cfg.train_json is not None or train_json.is_file():
        training = load_result(regular_file(train_json, "--train-json"), ("train",))
    return Prepared(onnx_flops(cfg.model), meta, training, torch_rows)


def score(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Mean cross-entropy, accuracy and top-1 predictions of a pass's logits."""
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    preds = logits.argmax(axis=1)
    return float(-logp[np.arange(len(labels)), labels].mean()), float((preds == labels).mean()), preds


def plan(cfg: BenchConfig) -> list[Row]:
    """Every configuration to run, in order: per batch size and provider, each runtime that can
    run there, in each of its precisions, thread counts, data paths and spin settings.

    For the CUDA provider the intra-op thread count only drives CPU-side glue, so CUDA
    rows run once per batch size, with the largest thread count asked for.
    """
    rows = []
    for batch in cfg.batch_sizes:
        for provider in cfg.providers:
            threads = cfg.threads if provider == "cpu" else (max(cfg.threads),)
            for rt in (RUNTIMES[r] for r in cfg.runtimes if not RUNTIMES[r].unavailable(provider, cfg)):
                spins = SPINS[cfg.spin] if rt.spins else (None,)
                rows += [Row(rt.name, provider, t, batch, io, spin, precision) for precision in rt.precisions()
                         for t in threads for io in rt.io_paths(provider) for spin in spins]
    return rows


def _noise_hint(row: Row) -> str | None:
    if row.provider == "cpu" and (row.threads or cpu_count()) > cpu_count():
        return f"{row.threads} threads on {cpu_count()} cores" + (", spinning" if row.spin else "")
    return None


def measure(cfg: BenchConfig, x: np.ndarray, labels: np.ndarray, row: Row, flops: int) -> tuple[InferRun, np.ndarray]:
    """Build one configuration's runner, score it untimed, time it; (row result, top-1 predictions).

    A top-level function of picklable arguments, so that it can run in a fresh process.
    """
    batches = in_batches(x, row.batch)
    runner = RUNTIMES[row.runtime].runner(cfg, row, batches)
    _, first_s = timed(partial(runner.run, 0))
    loss, accuracy, preds = score(all_logits(runner, len(batches)), labels)
    passes = time_passes(runner.run, len(batches), warmup=cfg.warmup, min_time=cfg.min_time,
                         min_repeats=cfg.min_repeats)
    met = len(passes.pass_times_s) >= cfg.min_repeats and passes.total_s >= cfg.min_time
    run = InferRun.from_samples(
        passes, images=len(x), flops_per_image=flops, rules_met=met, noise_hint=_noise_hint(row),
        runtime=row.runtime, provider=row.provider, io=row.io, threads=row.threads,
        threads_effective=runner.threads_effective, batch_size=row.batch, session_create_s=runner.create_s,
        first_run_s=first_s, accuracy=accuracy, loss=loss, providers=runner.providers,
        split_ms=runner.split() if runner.split else None, spin=row.spin, isolated=cfg.isolate, math=row.math,
        precision=row.precision)
    return run, preds


def one_line(e: BaseException) -> str:
    """An exception as one line: crossrt's own message, or another library's type and first line."""
    text = (str(e).strip().splitlines() or [""])[0][:300]
    return text if isinstance(e, CrossrtError) else f"{type(e).__name__}: {text}".rstrip(": ")


def run_bench(cfg: BenchConfig, data: Dataset, prepared: Prepared,
              on_run: Callable[[InferRun], None] | None = None,
              on_fail: Callable[[dict], None] | None = None) -> BenchResult:
    """Run every configuration of cfg on the test split of data; Stopped keeps finished rows.

    A configuration that cannot run here (ProviderError) is listed in `skipped`; one that fails
    (a model error, an ONNX Runtime or CUDA error in that configuration alone) in `failed` with
    its reason, and the others still run."""
    fits("--batch-size", cfg.batch_sizes, len(data.test_labels), "test images")
    x = np.ascontiguousarray(normalize(data.test_images))
    labels = data.test_labels.astype(np.int64)
    result = BenchResult(
        model=str(cfg.model), checkpoint=str(cfg.checkpoint) if prepared.torch_rows else None,
        dataset=data.name, dataset_source=data.source, flops_per_image=prepared.flops_per_image,
        config={**plain(cfg), "inter_op_threads": 1, "execution_mode": "sequential",
                "graph_optimization": "all", "cpu_cores": cpu_count(),
                "spin_note": "ORT session.intra_op.allow_spinning"}, skipped=skipped(cfg))
    preds: list[np.ndarray] = []
    cuda_nodes = None  # where ORT's CUDA provider ran each node of cfg.model: the same for every row
    try:
        for row in plan(cfg):
            job = partial(measure, cfg, x, labels, row, prepared.flops_per_image)
            try:
                run, p = isolated(job) if cfg.isolate else job()
            except ProviderError as e:  # this configuration cannot run here (e.g. too many graphs): say so
                result.skipped.append({"runtime": row.runtime, "provider": row.provider, "reason": str(e)})
                continue
            except Exception as e:  # this configuration failed; the rows measured and the rows to come stand
                failure = {"runtime": row.runtime, "provider": row.provider, "threads": row.threads,
                           "batch_size": row.batch, "io": row.io, "precision": row.precision, "reason": one_line(e)}
                result.failed.append(failure)
                if on_fail:
                    on_fail(failure)
                continue
            if row.runtime == "onnxruntime" and row.provider == "cuda":  # where every node really ran
                run.placement = cuda_nodes = cuda_nodes or placement(cfg.model, "cuda")
            # The peak (measured once per machine and cached) in this process, not in an isolated child.
            peak = unbeaten(measured_peak(row.provider, row.threads, row.math), run.gflops,
                            lambda: measured_peak(row.provider, row.threads, row.math, again=True))
            run.peak_gflops = peak and peak["peak"]
            if peak and peak not in result.peaks:
                result.peaks.append(peak)
            preds.append(p)
            result.runs.append(run)
            if on_run:
                on_run(run)
    except KeyboardInterrupt:
        _finish(result, preds)
        raise Stopped(f"interrupted after {len(result.runs)} configuration(s)", result) from None
    _finish(result, preds)
    result.complete = True
    return result


def _finish(result: BenchResult, preds: list[np.ndarray]) -> None:
    """Top-1 agreement of every run with the first PyTorch run: fp32 accuracies must be equal,
    bf16 and int8 ones within LOW_PRECISION_TOLERANCE."""
    ref = next((i for i, r in enumerate(result.runs) if r.runtime == "pytorch"), None)
    if ref is not None:
        for i, r in enumerate(result.runs):
            r.top1_agreement = float((preds[i] == preds[ref]).mean())
            r.accuracy_delta = r.accuracy - result.runs[ref].accuracy
            r.parity_ok = (r.accuracy_delta == 0 if r.precision == "fp32"
                           else abs(r.accuracy_delta) <= LOW_PRECISION_TOLERANCE)
    result.environment = environment()
    result.peak_rss_mb = peak_rss_mb()


def parity_failures(result: BenchResult) -> list[InferRun]:
    return [r for r in result.runs if r.parity_ok is False]
