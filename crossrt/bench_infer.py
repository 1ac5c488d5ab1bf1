"""bench-infer: time full validation passes under ONNX Runtime and PyTorch on equal terms.

Both runtimes get the same normalised float32 batches (views of one contiguous array, made
before any clock starts), the same batch sizes and the same thread counts, and are timed by
the same loop (:func:`crossrt.timing.time_passes`). Per configuration we record the cold
costs on their own (session creation, first inference), then steady-state per-batch
latency and whole-pass throughput with their spread and CPU cost, and score the outputs
(loss, accuracy, agreement with PyTorch's top-1) from an untimed pass.

With `isolate`, each configuration runs in a fresh spawned process, so no allocator or
thread-pool state carries over from the one before.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from functools import partial
from typing import Callable, NamedTuple

import numpy as np

from . import checkpoint
from .checks import fits
from .config import BenchConfig, to_plain
from .data import Dataset, normalize, split
from .errors import ModelError, ProviderError, Stopped
from .export import read_metadata
from .files import regular_file
from .flops import onnx_flops
from .isolate import isolated
from .ort_runner import create_session, ort_runner, placement
from .peak import measured_peak
from .results import IO_PATHS, BenchResult, InferRun, TrainResult
from .runners import all_logits, torch_runner
from .schema import load_result
from .system import cpu_count, environment, peak_rss_mb
from .timing import Latency, capped, stability, time_passes, timed

SPINS = {"on": (True,), "off": (False,), "both": (True, False)}
# bf16 and int8 rows may differ from PyTorch's fp32 accuracy by this much (fp32 rows: not at all).
LOW_PRECISION_TOLERANCE = 0.005


@dataclass
class Prepared:
    """What bench-infer checked before any data is read: the model works on every provider."""

    flops_per_image: int
    metadata: dict  # the model's metadata_props (dataset, data_dir, weights_sha256, ...)
    training: TrainResult | None  # the run that made the model, for the training-vs-validation table
    has_checkpoint: bool  # the PyTorch rows need it

    @property
    def trained_on(self) -> tuple[str | None, str | None]:
        return self.metadata.get("dataset") or None, self.metadata.get("data_dir") or None


def unavailable(cfg: BenchConfig, runtime: str, provider: str) -> str | None:
    """Why a runtime cannot run here (one line for the table), or None."""
    if runtime == "openvino":
        try:
            import openvino  # noqa: F401
        except ImportError:
            return "not installed: pip install 'crossrt[openvino]'"
    if runtime in ("openvino", "onnxruntime-int8") and provider != "cpu":
        return f"crossrt runs {runtime} on the CPU only"
    if runtime == "torch-compile" and provider == "cpu" and not (shutil.which("c++") or shutil.which("g++")):
        return "torch.compile's CPU backend needs a C++ compiler (c++ or g++ on PATH)"
    if runtime == "onnxruntime-int8" and not cfg.int8_model.is_file():
        return f"no int8 model {cfg.int8_model}: make one with `crossrt quantize`"
    return None


def skipped(cfg: BenchConfig) -> list[dict]:
    return [{"runtime": r, "provider": p, "reason": why} for p in cfg.providers for r in cfg.runtimes
            if (why := unavailable(cfg, r, p))]


def prepare(cfg: BenchConfig) -> Prepared:
    """Fail on a bad model, provider, checkpoint or training record before any work starts."""
    for provider in cfg.providers:
        create_session(cfg.model, provider, 1)
    if "onnxruntime-int8" in cfg.runtimes and not unavailable(cfg, "onnxruntime-int8", "cpu"):
        create_session(cfg.int8_model, "cpu", 1)
    meta = read_metadata(cfg.model)
    torch_rows = bool({"pytorch", "torch-compile"} & set(cfg.runtimes))
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


class Row(NamedTuple):
    runtime: str
    provider: str
    threads: int
    batch: int
    io: str
    spin: bool | None  # ONNX Runtime only
    precision: str = "fp32"  # fp32; bf16 (OpenVINO, where the CPU has it); int8 (onnxruntime-int8)

    @property
    def math(self) -> str:
        # cuDNN convolutions (PyTorch's default) and ORT's CUDA provider (use_tf32=1, set in
        # crossrt.ort_runner) run fp32 models in TF32 on GPUs that have it.
        return self.precision if self.precision != "fp32" else "tf32" if self.provider == "cuda" else "fp32"


def precisions(runtime: str) -> tuple[str, ...]:
    if runtime == "openvino":
        from .ov_runner import openvino_precisions

        return openvino_precisions()
    return ("int8",) if runtime == "onnxruntime-int8" else ("fp32",)


def plan(cfg: BenchConfig) -> list[Row]:
    """Every configuration to run, in order.

    For the CUDA provider the intra-op thread count only drives CPU-side glue, so CUDA
    rows run once per batch size, with the largest thread count asked for.
    """
    rows = []
    for batch in cfg.batch_sizes:
        for provider in cfg.providers:
            threads = cfg.threads if provider == "cpu" else (max(cfg.threads),)
            for runtime in (r for r in cfg.runtimes if not unavailable(cfg, r, provider)):
                spins = SPINS[cfg.spin] if runtime.startswith("onnxruntime") else (None,)
                ios = [io for io in IO_PATHS[provider] if io != "cuda-graph" or runtime in ("onnxruntime", "pytorch")]
                rows += [Row(runtime, provider, t, batch, io, spin, precision) for precision in precisions(runtime)
                         for t in threads for io in ios for spin in spins]
    return rows


def _runner(cfg: BenchConfig, row: Row, batches: list[np.ndarray]):
    if row.runtime.startswith("onnxruntime"):
        model = cfg.model if row.runtime == "onnxruntime" else cfg.int8_model
        return ort_runner(model, row.provider, row.threads, row.io, batches, row.spin)
    if row.runtime == "openvino":
        from .ov_runner import openvino_runner

        return openvino_runner(cfg.model, row.threads, row.precision, batches)
    state = checkpoint.load(cfg.checkpoint)
    return torch_runner(partial(checkpoint.build_model, state), row.provider, row.threads, row.io, batches,
                        compile=row.runtime == "torch-compile")


def _noise_hint(row: Row) -> str | None:
    if row.provider == "cpu" and (row.threads or cpu_count()) > cpu_count():
        return f"{row.threads} threads on {cpu_count()} cores" + (", spinning" if row.spin else "")
    return None


def measure(cfg: BenchConfig, x: np.ndarray, labels: np.ndarray, row: Row, flops: int,
            peak: dict) -> tuple[InferRun, np.ndarray]:
    """Build one configuration's runner, score it untimed, time it; (row result, top-1 predictions).

    A top-level function of picklable arguments, so that it can run in a fresh process.
    """
    batches = split(x, row.batch)
    runner = _runner(cfg, row, batches)
    _, first_s = timed(partial(runner.run, 0))
    loss, accuracy, preds = score(all_logits(runner, len(batches)), labels)
    passes = time_passes(runner.run, len(batches), warmup=cfg.warmup, min_time=cfg.min_time,
                         min_repeats=cfg.min_repeats)
    ips = len(x) * len(passes.pass_s) / passes.total_s
    gflops = ips * flops / 1e9
    met = len(passes.pass_s) >= cfg.min_repeats and passes.total_s >= cfg.min_time
    st = stability(passes.pass_s, len(x), rules_met=met, noise_hint=_noise_hint(row))
    run = InferRun(runtime=row.runtime, provider=row.provider, io=row.io, threads=row.threads,
                   threads_effective=runner.threads_effective, batch_size=row.batch, images=len(x),
                   passes=len(passes.pass_s), images_per_s=ips, gflops=gflops, peak_gflops=peak["peak"],
                   percent_of_peak=100 * gflops / peak["peak"], latency_ms=Latency.from_values(passes.batch_s),
                   session_create_s=runner.create_s, first_run_s=first_s, accuracy=accuracy, loss=loss,
                   providers=runner.providers, split_ms=runner.split() if runner.split else None,
                   spin=row.spin, isolated=cfg.isolate, math=row.math, precision=row.precision,
                   pass_times_s=passes.pass_s,
                   batch_ms=[1e3 * s for s in capped(passes.batch_s)], cv=st.cv, ci95=st.ci95,
                   stable=st.stable, unstable_cause=st.cause,
                   cpu_s_per_1k=1000 * passes.cpu_s / (len(x) * len(passes.pass_s)))
    return run, preds


def run_bench(cfg: BenchConfig, data: Dataset, prepared: Prepared,
              on_run: Callable[[InferRun], None] | None = None) -> BenchResult:
    """Run every configuration of cfg on the test split of data; Stopped keeps finished rows."""
    fits("--batch-size", cfg.batch_sizes, len(data.test_labels), "test images")
    x = np.ascontiguousarray(normalize(data.test_images))
    labels = data.test_labels.astype(np.int64)
    result = BenchResult(
        model=str(cfg.model), checkpoint=str(cfg.checkpoint) if prepared.has_checkpoint else None,
        dataset=data.name, dataset_source=data.source, flops_per_image=prepared.flops_per_image,
        settings={**to_plain(cfg), "inter_op_threads": 1, "execution_mode": "sequential",
                  "graph_optimization": "all", "cpu_cores": cpu_count(),
                  "spin_note": "ORT session.intra_op.allow_spinning"}, skipped=skipped(cfg))
    preds: list[np.ndarray] = []
    cuda_nodes = None  # where ORT's CUDA provider ran each node of cfg.model: the same for every row
    try:
        for row in plan(cfg):
            peak = measured_peak(row.provider, row.threads, row.math)  # the providers were proven in prepare()
            job = partial(measure, cfg, x, labels, row, prepared.flops_per_image, peak)
            try:
                run, p = isolated(job) if cfg.isolate else job()
            except ProviderError as e:  # this configuration cannot run here (e.g. too many graphs): say so
                result.skipped.append({"runtime": row.runtime, "provider": row.provider, "reason": str(e)})
                continue
            if row.runtime == "onnxruntime" and row.provider == "cuda":  # where every node really ran
                run.placement = cuda_nodes = cuda_nodes or placement(cfg.model, "cuda")
            if run.percent_of_peak > 100:  # the cached peak was measured on a busier machine: measure again
                peak = measured_peak(row.provider, row.threads, row.math, again=True)
                run.peak_gflops, run.percent_of_peak = peak["peak"], 100 * run.gflops / peak["peak"]
            if peak not in result.peaks:
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
