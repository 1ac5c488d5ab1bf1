"""bench-infer: time full validation passes under ONNX Runtime and PyTorch on equal terms.

Both runtimes get the same normalised float32 batches (views of one contiguous array, made
before any clock starts), the same batch sizes and the same thread counts, and are timed by
the same loop (:func:`crossrt.timing.time_passes`). Per configuration we record the cold
costs on their own (session creation, first inference), then steady-state per-batch
latency and whole-pass throughput, and score the outputs (loss, accuracy, agreement with
PyTorch's top-1) from an untimed pass.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from typing import Callable

import numpy as np

from .config import BenchConfig, CrossrtError, cpu_count, to_plain
from .data import Dataset, normalize
from .report import BenchResult, InferRun, environment, peak_rss_mb
from .timing import Latency, time_passes, timed


class BenchInterrupted(CrossrtError):
    def __init__(self, result: BenchResult):
        super().__init__(f"interrupted after {len(result.runs)} configuration(s)")
        self.result = result


@dataclass
class Runner:
    """One ready-to-time configuration: run(i) processes batch i and returns when done;
    logits(i) runs batch i and returns host logits (for scoring, untimed)."""

    run: Callable[[int], object]
    logits: Callable[[int], np.ndarray]
    create_s: float
    providers: list[str]
    threads_effective: int | None
    split: Callable[[], dict] | None = None  # CUDA: per-batch copy/compute split in ms


def score(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Mean cross-entropy, accuracy and top-1 predictions of a pass's logits."""
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    preds = logits.argmax(axis=1)
    return float(-logp[np.arange(len(labels)), labels].mean()), float((preds == labels).mean()), preds


def modes(provider: str) -> tuple[str, ...]:
    """CPU runs on host arrays; CUDA is timed end-to-end and with data resident on the GPU."""
    return ("host",) if provider == "cpu" else ("end-to-end", "device-resident")


def _mean_ms(fn: Callable[[int], object], n: int) -> float:
    """Mean milliseconds of fn(0..n-1), for the CUDA copy/compute split."""
    total = 0.0
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        total += time.perf_counter() - t0
    return 1e3 * total / n


# ---------------------------------------------------------------------------- ONNX Runtime

def ort_runner(cfg: BenchConfig, provider: str, threads: int, mode: str, batches: list[np.ndarray]) -> Runner:
    import onnxruntime as ort

    from .runtime import create_session

    session, create_s = timed(lambda: create_session(cfg.model, provider, threads, cfg.spin))
    name, out_name = session.get_inputs()[0].name, session.get_outputs()[0].name
    providers = session.get_providers()
    threads_effective = threads or None  # ORT does not report the size of its default pool

    def bind(x_dev, rows):
        """An IO binding of one device input to a preallocated device output."""
        binding = session.io_binding()
        binding.bind_ortvalue_input(name, x_dev)
        y_dev = ort.OrtValue.ortvalue_from_shape_and_type((rows, 10), np.float32, "cuda", 0)
        binding.bind_ortvalue_output(out_name, y_dev)
        return binding

    def to_gpu(i):
        return ort.OrtValue.ortvalue_from_numpy(batches[i], "cuda", 0)

    def host(i):
        return session.run([out_name], {name: batches[i]})[0]

    if mode == "host":
        return Runner(host, host, create_s, providers, threads_effective)
    if mode == "end-to-end":
        def split():
            binding = bind(to_gpu(0), len(batches[0]))
            n = len(batches)
            return {"h2d": _mean_ms(to_gpu, n),
                    "compute": _mean_ms(lambda i: session.run_with_iobinding(binding), n),
                    "d2h": _mean_ms(lambda i: binding.get_outputs()[0].numpy(), n)}
        return Runner(host, host, create_s, providers, threads_effective, split)

    # Device-resident: inputs copied to the GPU once, outputs preallocated there, one
    # IO binding per batch, so the timed call is the model and nothing else.
    bindings = [bind(to_gpu(i), len(b)) for i, b in enumerate(batches)]

    def resident(i):
        # ORT's CUDA provider synchronises its stream at the end of run(), so the clock
        # read after this call covers the GPU work.
        session.run_with_iobinding(bindings[i])

    def logits(i):
        resident(i)
        return bindings[i].get_outputs()[0].numpy()

    return Runner(resident, logits, create_s, providers, threads_effective)


# ---------------------------------------------------------------------------- PyTorch

def torch_runner(state: dict, provider: str, threads: int, mode: str, batches: list[np.ndarray]) -> Runner:
    import torch

    from .train import model_from_checkpoint, select_device, sync

    device = select_device(provider, threads or cpu_count())

    def build():
        return model_from_checkpoint(state).to(device, memory_format=torch.channels_last)

    model, create_s = timed(build)
    host_x = [torch.from_numpy(b) for b in batches]
    label = ["cuda:0 " + torch.cuda.get_device_name(0)] if provider == "cuda" else ["cpu"]

    if mode == "host":
        def run(i):
            with torch.inference_mode():
                return model(host_x[i])
        return Runner(run, lambda i: run(i).numpy(), create_s, label, torch.get_num_threads())

    def e2e(i):
        with torch.inference_mode():
            return model(host_x[i].to(device)).cpu()  # .cpu() waits for the GPU

    if mode == "end-to-end":
        def split():
            dev = host_x[0].to(device)
            def h2d(i):
                host_x[i].to(device)
                sync(device)
            def compute(i):
                with torch.inference_mode():
                    model(dev)
                sync(device)
            with torch.inference_mode():
                out = model(dev)
            return {"h2d": _mean_ms(h2d, len(batches)), "compute": _mean_ms(compute, len(batches)),
                    "d2h": _mean_ms(lambda i: out.cpu(), len(batches))}
        return Runner(e2e, lambda i: e2e(i).numpy(), create_s, label, torch.get_num_threads(), split)

    dev_x = [x.to(device) for x in host_x]

    def resident(i):
        with torch.inference_mode():
            out = model(dev_x[i])
        sync(device)
        return out

    return Runner(resident, lambda i: resident(i).cpu().numpy(), create_s, label, torch.get_num_threads())


# ---------------------------------------------------------------------------- the benchmark

def plan(cfg: BenchConfig) -> list[tuple[str, str, int, int, str]]:
    """Every (runtime, provider, threads, batch, mode) to run, in order.

    For the CUDA provider the intra-op thread count only drives CPU-side glue, so CUDA
    rows run once per batch size, with the largest thread count asked for.
    """
    rows = []
    for batch in cfg.batch_sizes:
        for provider in cfg.providers:
            threads = cfg.threads if provider == "cpu" else (max(cfg.threads),)
            for runtime in cfg.runtimes:
                for t in threads:
                    for mode in modes(provider):
                        rows.append((runtime, provider, t, batch, mode))
    return rows


def run_bench(cfg: BenchConfig, data: Dataset, flops_per_image: int,
              on_run: Callable[[InferRun], None] | None = None) -> BenchResult:
    """Run every configuration of cfg on the test split of data."""
    state = None
    if "pytorch" in cfg.runtimes:
        from .train import load_checkpoint

        state = load_checkpoint(cfg.checkpoint)
    x = np.ascontiguousarray(normalize(data.test_images))
    labels = data.test_labels.astype(np.int64)
    result = BenchResult(
        model=str(cfg.model), checkpoint=str(cfg.checkpoint) if state else None, dataset=data.name,
        dataset_source=data.source, flops_per_image=flops_per_image,
        settings={**to_plain(cfg), "inter_op_threads": 1, "execution_mode": "sequential",
                  "graph_optimization": "all", "cpu_cores": cpu_count(),
                  "spin_note": "ORT session.intra_op.allow_spinning"})
    preds: list[np.ndarray] = []
    peaks: dict[tuple[str, int], dict] = {}

    def peak_for(provider: str, threads: int) -> dict:
        """Measured once per provider and thread count, before that configuration is timed."""
        from .peak import cpu_peak, cuda_peak

        key = (provider, min(threads or cpu_count(), cpu_count()))
        if key not in peaks:
            peaks[key] = cuda_peak() if provider == "cuda" else cpu_peak(key[1])
            result.peaks.append(peaks[key])
        return peaks[key]

    try:
        for runtime, provider, threads, batch, mode in plan(cfg):
            batches = [x[i:i + batch] for i in range(0, len(x), batch)]
            make = ort_runner if runtime == "onnxruntime" else torch_runner
            runner = make(cfg if runtime == "onnxruntime" else state, provider, threads, mode, batches)
            peak = peak_for(provider, threads)["peak"]  # after the runner proved its provider works
            _, first_s = timed(partial(runner.run, 0))
            logits = np.concatenate([runner.logits(i) for i in range(len(batches))])
            loss, accuracy, p = score(logits, labels)
            passes = time_passes(runner.run, len(batches), warmup=cfg.warmup,
                                 min_time=cfg.min_time, min_repeats=cfg.min_repeats)
            ips = len(x) * len(passes.pass_s) / passes.total_s
            gflops = ips * flops_per_image / 1e9
            run = InferRun(runtime=runtime, provider=provider, mode=mode, threads=threads,
                           threads_effective=runner.threads_effective, batch_size=batch,
                           images=len(x), passes=len(passes.pass_s), images_per_s=ips,
                           gflops=gflops, peak_gflops=peak, percent_of_peak=100 * gflops / peak,
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
        raise BenchInterrupted(result) from None
    _finish(result, preds)
    result.complete = True
    return result


def _finish(result: BenchResult, preds: list[np.ndarray]) -> None:
    _parity(result, preds)
    result.environment = environment()
    result.peak_rss_mb = peak_rss_mb()


def _parity(result: BenchResult, preds: list[np.ndarray]) -> None:
    """Top-1 agreement of every run with the first PyTorch run; accuracies must be equal."""
    ref = next((i for i, r in enumerate(result.runs) if r.runtime == "pytorch"), None)
    if ref is None:
        return
    for i, r in enumerate(result.runs):
        r.top1_agreement = float((preds[i] == preds[ref]).mean())
        r.parity_ok = r.accuracy == result.runs[ref].accuracy


def parity_failures(result: BenchResult) -> list[InferRun]:
    return [r for r in result.runs if r.parity_ok is False]

