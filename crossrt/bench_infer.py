"""bench-infer: time full validation passes under ONNX Runtime and PyTorch on equal terms.

Both runtimes get the same normalised float32 batches (views of one contiguous array, made
before any clock starts), the same batch sizes and the same thread counts, and are timed by
the same loop (:func:`crossrt.timing.time_passes`). Per configuration we record the cold
costs on their own (session creation, first inference), then steady-state per-batch
latency and whole-pass throughput, and score the outputs (loss, accuracy, agreement with
PyTorch's top-1) from an untimed pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

import numpy as np

from . import checkpoint
from .config import BenchConfig, to_plain
from .data import Dataset, normalize, split
from .errors import Stopped
from .export import read_metadata
from .flops import onnx_flops
from .results import IO_PATHS, BenchResult, InferRun, TrainResult, load_result
from .runners import all_logits, create_session, ort_runner, torch_runner
from .system import cpu_count, environment, measured_peak, peak_rss_mb
from .timing import Latency, time_passes, timed


@dataclass
class Prepared:
    """What bench-infer checked before any data is read: the model works on every provider."""

    flops_per_image: int
    trained_on: str | None  # the dataset the model's metadata records
    training: TrainResult | None  # the run that made the model, for the training-vs-validation table
    state: dict | None  # the checkpoint, for the PyTorch rows


def prepare(cfg: BenchConfig) -> Prepared:
    """Fail on a bad model, provider, checkpoint or training record before any work starts."""
    for provider in cfg.providers:
        create_session(cfg.model, provider, 1)
    state = checkpoint.load(cfg.checkpoint) if "pytorch" in cfg.runtimes else None
    train_json = cfg.train_json or cfg.model.with_suffix(".train.json")
    training = None
    if cfg.train_json is not None or train_json.is_file():
        training = load_result(train_json, ("train",))
    return Prepared(onnx_flops(cfg.model), read_metadata(cfg.model).get("dataset"), training, state)


def score(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Mean cross-entropy, accuracy and top-1 predictions of a pass's logits."""
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    preds = logits.argmax(axis=1)
    return float(-logp[np.arange(len(labels)), labels].mean()), float((preds == labels).mean()), preds


def plan(cfg: BenchConfig) -> list[tuple[str, str, int, int, str]]:
    """Every (runtime, provider, threads, batch, io) to run, in order.

    For the CUDA provider the intra-op thread count only drives CPU-side glue, so CUDA
    rows run once per batch size, with the largest thread count asked for.
    """
    rows = []
    for batch in cfg.batch_sizes:
        for provider in cfg.providers:
            threads = cfg.threads if provider == "cpu" else (max(cfg.threads),)
            for runtime in cfg.runtimes:
                for t in threads:
                    for io in IO_PATHS[provider]:
                        rows.append((runtime, provider, t, batch, io))
    return rows


def run_bench(cfg: BenchConfig, data: Dataset, prepared: Prepared,
              on_run: Callable[[InferRun], None] | None = None) -> BenchResult:
    """Run every configuration of cfg on the test split of data; Stopped keeps finished rows."""
    x = np.ascontiguousarray(normalize(data.test_images))
    labels = data.test_labels.astype(np.int64)
    result = BenchResult(
        model=str(cfg.model), checkpoint=str(cfg.checkpoint) if prepared.state else None, dataset=data.name,
        dataset_source=data.source, flops_per_image=prepared.flops_per_image,
        settings={**to_plain(cfg), "inter_op_threads": 1, "execution_mode": "sequential",
                  "graph_optimization": "all", "cpu_cores": cpu_count(),
                  "spin_note": "ORT session.intra_op.allow_spinning"})
    preds: list[np.ndarray] = []
    try:
        for runtime, provider, threads, batch, io in plan(cfg):
            batches = split(x, batch)
            if runtime == "onnxruntime":
                runner = ort_runner(cfg.model, provider, threads, io, batches, cfg.spin)
            else:
                runner = torch_runner(partial(checkpoint.build_model, prepared.state), provider, threads, io, batches)
            peak = measured_peak(provider, threads)  # after the runner proved its provider works
            if peak not in result.peaks:
                result.peaks.append(peak)
            _, first_s = timed(partial(runner.run, 0))
            loss, accuracy, p = score(all_logits(runner, len(batches)), labels)
            passes = time_passes(runner.run, len(batches), warmup=cfg.warmup,
                                 min_time=cfg.min_time, min_repeats=cfg.min_repeats)
            ips = len(x) * len(passes.pass_s) / passes.total_s
            gflops = ips * prepared.flops_per_image / 1e9
            run = InferRun(runtime=runtime, provider=provider, io=io, threads=threads,
                           threads_effective=runner.threads_effective, batch_size=batch,
                           images=len(x), passes=len(passes.pass_s), images_per_s=ips,
                           gflops=gflops, peak_gflops=peak["peak"], percent_of_peak=100 * gflops / peak["peak"],
                           latency_ms=Latency.from_values(passes.batch_s),
                           session_create_s=runner.create_s, first_run_s=first_s,
                           accuracy=accuracy, loss=loss, providers=runner.providers,
                           split_ms=runner.split() if runner.split else None)
            del runner  # frees the session and its thread pool before the next configuration
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
    """Top-1 agreement of every run with the first PyTorch run (accuracies must be equal)."""
    ref = next((i for i, r in enumerate(result.runs) if r.runtime == "pytorch"), None)
    if ref is not None:
        for i, r in enumerate(result.runs):
            r.top1_agreement = float((preds[i] == preds[ref]).mean())
            r.parity_ok = r.accuracy == result.runs[ref].accuracy
    result.environment = environment()
    result.peak_rss_mb = peak_rss_mb()


def parity_failures(result: BenchResult) -> list[InferRun]:
    return [r for r in result.runs if r.parity_ok is False]
