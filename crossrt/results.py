"""Every result as a dataclass: raw samples in, derived figures out, JSON both ways.

Each result keeps its samples and its own settings and environment, so files from different
machines can be merged. Every derived figure is computed here from the samples: a training run's
when read (TrainResult.summary), a bench row's when measured (InferRun.from_samples: a long run
keeps only a sample of its batch times). `to_dict` writes the JSON; crossrt.files.load_result
reads it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import ClassVar, Literal

from .scenarios import MULTI_STREAM_SAMPLES, SCENARIOS
from .schema import Record
from .timing import Latency, Passes, capped, stability

# ---------------------------------------------------------------------------- the peak


@dataclass
class Peak:
    """The measured peak a "% of peak" divides by (crossrt.peak): the fastest kernel's figure, in
    GFLOP/s (GOP/s for int8), how and when it was measured, and each kernel's own figure. Written
    without its empty fields, as the peak cache holds it."""

    peak: float
    device: str | None = None  # cpu or cuda
    threads: int | None = None  # the CPU threads it was measured on
    math: str | None = None  # fp32, tf32, bf16 or int8
    tries: list[float] | None = None  # every try's best (None in a result from before schema 3)
    spread: float | None = None  # of the tries: (max - min) / max
    measured: str | None = None  # when
    cpu_share: float | None = None  # of wall time x threads the process had while it timed (CPU)
    cached: bool | None = None  # False: measured for this run only, not trusted to be cached (why)
    why: str | None = None
    nodes: int | None = None  # data-parallel training: the nodes whose peaks it adds up
    gpu: str | None = None  # the GPU's name
    torch_mm: float | None = None  # the kernels it is the best of
    onnxruntime_matmul: float | None = None
    onnxruntime_conv: float | None = None
    onnxruntime_matmulinteger: float | None = None
    sparse: ClassVar[bool | tuple] = True

    @classmethod
    def of(cls, entry: dict) -> Peak:
        """A peak cache entry (crossrt.peak) as a Peak; a key that is no field is left out."""
        return cls(**{f.name: entry[f.name] for f in fields(cls) if f.name in entry})


# ---------------------------------------------------------------------------- train


@dataclass
class EpochResult:
    """One epoch as the reference logs it: training loss and time, validation loss, accuracy, time."""

    epoch: int
    train_loss: float
    train_s: float
    valid_loss: float
    valid_accuracy: float
    valid_s: float
    lr: float
    train_cpu_s: float | None = None  # process CPU seconds (all threads) of the training pass
    valid_cpu_s: float | None = None


@dataclass
class OnnxParity:
    """The exported model and how closely ONNX Runtime (CPU) reproduces PyTorch on the test set."""

    path: str
    opset: int
    max_abs_diff: float
    top1_agreement: float
    images: int
    export_s: float


@dataclass
class TrainResult(Record):
    dataset: str
    dataset_source: str
    device: str
    threads: int
    arch: str
    precision: str
    batch_size: int
    valid_batch_size: int
    train_images: int
    valid_images: int
    flops_per_image: int
    target_accuracy: float
    config: dict
    epochs: list[EpochResult] = field(default_factory=list)
    onnx: OnnxParity | None = None
    checkpoint: str | None = None
    peak: Peak | None = None  # measured GEMM peak in the same math mode, device and threads (crossrt.peak)
    math: str = "fp32"  # what the matrix math ran in: fp32, tf32 (CUDA default for convolutions) or bf16
    setup_s: float = 0.0  # CUDA graphs' warm-up and capture: counted in total_s
    setup_parts: dict = field(default_factory=dict)  # what happened before epoch 1, in seconds
    world_size: int = 1  # data-parallel ranks (threads is per rank)
    backend: str | None = None  # their torch.distributed backend: gloo (CPU) or nccl (CUDA)
    weights_sha256: str | None = None  # of the final weights; the exported .onnx carries the same
    tuning: dict = field(default_factory=dict)  # how the loop was made fast (no effect on the math)
    kind: str = "train"

    @property
    def steady_epochs(self) -> list[EpochResult]:
        """Epochs 2..N, the repeats of steady state (epoch 1 carries warm-up), or epoch 1 alone."""
        return self.epochs[1:] if len(self.epochs) > 1 else self.epochs

    def summary(self) -> dict:
        """Every derived figure, from the per-epoch samples."""
        eps = self.epochs
        train_s = sum(e.train_s for e in eps)
        valid_s = sum(e.valid_s for e in eps)
        best = max(eps, key=lambda e: e.valid_accuracy) if eps else None
        hit = next((e for e in eps if e.valid_accuracy >= self.target_accuracy), None)
        steady_s = [e.train_s for e in self.steady_epochs]
        steady = stability(steady_s, self.train_images, more="train 3 epochs or more")
        steady_ips = self.train_images * len(steady_s) / sum(steady_s) if steady_s and sum(steady_s) else None
        # Training costs about 3x the forward FLOPs (forward, and backward for inputs and weights).
        # Like the interval, GFLOP/s and % of peak are of the steady epochs: epoch 1 carries the warm-up.
        gflops = 3 * self.flops_per_image * steady_ips / 1e9 if steady_ips else None

        def cpu_per_1k(key, images):
            cpu = [getattr(e, key) for e in eps]
            return 1000 * sum(cpu) / (images * len(eps)) if eps and None not in cpu else None

        return {
            "train_s": train_s,
            "valid_s": valid_s,
            "total_s": train_s + valid_s + self.setup_s,
            "total_without_setup_s": train_s + valid_s,  # as a probe that starts its clock after capture counts
            "first_epoch_s": eps[0].train_s + eps[0].valid_s if eps else None,
            "steady_epoch_train_s": sum(steady_s) / len(steady_s) if eps else None,
            "images_per_s": self.train_images * len(eps) / train_s if train_s else None,  # every epoch
            "steady_images_per_s": steady_ips,  # epochs 2..N (epoch 1 alone for a 1-epoch run)
            "train_gflops": gflops,
            "percent_of_peak": 100 * gflops / self.peak.peak if gflops and self.peak else None,
            "final_accuracy": eps[-1].valid_accuracy if eps else None,
            "best_accuracy": best.valid_accuracy if best else None,
            "best_epoch": best.epoch if best else None,
            "target_epoch": hit.epoch if hit else None,
            "target_s": (sum(e.train_s + e.valid_s for e in eps if e.epoch <= hit.epoch) if hit else None),
            "train_cv": steady.cv,
            "train_ci95": steady.ci95,  # training images/s
            "train_stable": steady.stable,
            "train_unstable_cause": steady.cause,
            "train_cpu_s_per_1k": cpu_per_1k("train_cpu_s", self.train_images),
            "valid_cpu_s_per_1k": cpu_per_1k("valid_cpu_s", self.valid_images),
        }


# ---------------------------------------------------------------------------- bench-infer


def runtime_label(x) -> str:
    """A runtime, a precision other than fp32, and ORT's spinning when off (of a run or a plan row)."""
    label = x.runtime
    if x.precision not in ("fp32", "int8"):  # int8 is in the runtime's name already
        label += f" {x.precision}"
    if x.spin is False:
        label += " no-spin"
    return label


def place(provider: str, io: str, threads: int, batch_size: int) -> str:
    """Where and how a configuration runs, whatever the runtime: "cuda end-to-end, 4 thr, batch 100"."""
    return f"{provider if io == 'host' else f'{provider} {io}'}, {threads or 'default'} thr, batch {batch_size}"


@dataclass(kw_only=True)
class Configuration:
    """One configuration of bench-infer, whatever became of it (measured, or failed): its label
    is made here and nowhere else."""

    runtime: str
    provider: str
    threads: int  # as asked; 0 = the runtime's default
    batch_size: int
    io: str = "host"  # where the data lives: "host" (CPU), "end-to-end", "device-resident" or "cuda-graph" (CUDA)
    precision: str = "fp32"  # of the model as it ran: fp32, bf16 (OpenVINO) or int8 (onnxruntime-int8)
    spin: bool | None = None  # ORT intra-op threads busy-wait between ops (None: PyTorch; a failure before 13)

    @property
    def where(self) -> str:
        """The provider and, for CUDA, the data path: "cpu", "cuda end-to-end"."""
        return self.provider if self.io == "host" else f"{self.provider} {self.io}"

    @property
    def runtime_label(self) -> str:
        return runtime_label(self)

    @property
    def label(self) -> str:
        return f"{self.runtime_label} {place(*self.setting)}"

    @property
    def setting(self) -> tuple:
        """Where and how it ran, whatever the runtime: provider, data path, threads, batch size.
        Rows of one setting are held against each other (vs PyTorch; A against B in compare)."""
        return self.provider, self.io, self.threads, self.batch_size


@dataclass(kw_only=True)
class Failed(Configuration):
    """A configuration that raised: why. The rows before and after it stand."""

    reason: str

    @property
    def line(self) -> str:
        return f"{self.label}: {self.reason}"


@dataclass
class Skipped:
    """A runtime asked for that cannot run on a provider here, and why."""

    runtime: str
    provider: str
    reason: str

    @property
    def line(self) -> str:
        return f"not run: {self.runtime} on {self.provider}: {self.reason}"


@dataclass
class OutputComparison:
    """One output of a row against ONNX Runtime CPU fp32 on the same inputs (bench_infer.compare_outputs)."""

    name: str
    max_abs: float | None  # None: the shapes differ, or the output is not numeric
    max_rel: float | None  # max |diff| / max |reference|
    top1: float | None  # agreement of the argmax over the last dimension, for scores
    ok: bool  # max_rel within the tolerance
    note: str | None = None  # why there is no figure
    cosine: float | None = None  # cosine similarity of all its values with the reference's
    tolerance: float | None = None  # the max_rel allowed: --tolerance, else by its dtype and the row's math
    sparse: ClassVar[tuple] = ("note", "cosine", "tolerance")  # written when there is one (files before had none)


@dataclass(kw_only=True)
class CudaSplit:
    """CUDA end-to-end: where one batch's time goes, in ms."""

    h2d: float
    enqueue: float | None = None  # the host's queueing of the work (None before schema 7)
    compute: float
    d2h: float


@dataclass
class Verdict:
    """Per setting with two runtimes or more: the one to pick, by how much, and how sure (crossrt.verdicts)."""

    provider: str
    io: str
    threads: int
    batch_size: int
    pick: str
    next: str | None
    ratio: float | None  # pick's samples/s over the next's
    sure: bool  # their 95% intervals apart
    unstable: list[str]  # the rows a ratio uses that were unstable
    text: str


@dataclass(kw_only=True)
class InferRun(Configuration):
    """One configuration of bench-infer as measured: runtime x provider x threads x batch size (x data path)."""

    threads_effective: int | None  # what PyTorch reports it uses (None: ORT does not say)
    samples: int  # in one timed pass; a sample is one item of the batch dimension (an image, for LeNet5)
    passes: int
    samples_per_s: float
    gflops: float | None  # None: the graph's FLOPs are not counted (crossrt.flops)
    latency_ms: Latency
    session_create_s: float
    first_run_s: float
    accuracy: float | None  # on the dataset's labels; None for a model without a dataset
    loss: float | None
    providers: list[str]  # what really ran, read back from the session / device
    peak_gflops: float | None = None  # measured GEMM peak for this provider, thread count and math mode
    top1_agreement: float | None = None  # against the PyTorch reference predictions
    parity_ok: bool | None = None
    split_ms: CudaSplit | None = None  # CUDA end-to-end
    placement: dict | None = None  # ORT rows on an EP but the CPU's: {execution provider: nodes}, from ORT's profiler
    isolated: bool = False  # timed in a fresh process of its own
    math: str = "fp32"
    pass_times_s: list[float] = field(default_factory=list)  # per timed repeat, the seconds of one pass
    passes_per_repeat: int = 1  # a repeat of a short pass is several (timing.MIN_REPEAT_S)
    batch_ms: list[float] = field(default_factory=list)  # per-batch latencies, at most timing.SAMPLES_CAP
    cv: float | None = None  # of the repeats' times (each the mean of passes_per_repeat passes)
    ci95: list[float] | None = None  # [low, high] images/s, bootstrap over passes
    stable: bool | None = None  # None: a result from before schema 3
    unstable_cause: str | None = None
    cpu_s_per_1k: float | None = None  # process CPU seconds per 1,000 images
    accuracy_delta: float | None = None  # accuracy - PyTorch's, on the same images
    outputs: list[OutputComparison] | None = None  # per output, against ONNX Runtime CPU fp32
    options: dict | None = None  # the runtime's Options as the row ran (crossrt.runtimes.registry)
    # schema 1 called the data path "mode"; schemas before 10 counted images, not samples
    renamed: ClassVar[dict] = {"mode": "io", "images": "samples", "images_per_s": "samples_per_s"}

    @classmethod
    def from_samples(
        cls,
        passes: Passes,
        *,
        samples: int,
        flops_per_sample: int | None,
        rules_met: bool,
        noise_hint: str | None,
        **facts,
    ) -> InferRun:
        """A row from its timed passes: throughput, GFLOP/s, latency, spread and CPU cost derived here."""
        n, k = len(passes.pass_times_s), passes.passes_per_repeat
        per_s = samples * n * k / passes.total_s
        st = stability(passes.pass_times_s, samples, rules_met=rules_met, noise_hint=noise_hint)
        return cls(
            samples=samples,
            passes=n * k,
            passes_per_repeat=k,
            samples_per_s=per_s,
            gflops=per_s * flops_per_sample / 1e9 if flops_per_sample else None,
            latency_ms=Latency.from_values(passes.batch_times_s),
            pass_times_s=passes.pass_times_s,
            batch_ms=[1e3 * t for t in capped(passes.batch_times_s)],
            cv=st.cv,
            ci95=st.ci95,
            stable=st.stable,
            unstable_cause=st.cause,
            cpu_s_per_1k=1000 * passes.cpu_s / (samples * n * k),
            **facts,
        )

    @property
    def percent_of_peak(self) -> float | None:
        return 100 * self.gflops / self.peak_gflops if self.peak_gflops and self.gflops else None

    @property
    def seconds_per_pass(self) -> float:
        """Seconds one validation pass takes (from the steady-state samples/s)."""
        return self.samples / self.samples_per_s

    def summary(self) -> dict:
        return {"percent_of_peak": self.percent_of_peak}


@dataclass
class BenchResult(Record):
    model: str
    checkpoint: str | None
    dataset: str | None  # None: a model without a dataset, fed generated inputs or --inputs
    dataset_source: str | None
    flops_per_sample: int | None  # None: not counted
    config: dict
    runs: list[InferRun] = field(default_factory=list)
    peaks: list[Peak] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)  # asked for, cannot run here
    failed: list[Failed] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)  # per setting, the runtime to pick
    model_info: dict = field(default_factory=dict)  # name, sha256, bytes, parameters, inputs as bound, outputs, arch
    kind: str = "bench-infer"
    renamed: ClassVar[dict] = {"settings": "config", "flops_per_image": "flops_per_sample"}  # names before 8 / 10

    @property
    def disagreeing(self) -> list[InferRun]:
        """The rows whose outputs or accuracy disagree (bench_infer's parity rules)."""
        return [r for r in self.runs if r.parity_ok is False]


# ---------------------------------------------------------------------------- suite


@dataclass
class ModeResult:
    """One of the reference's modes on this machine ("cpu 1 thread", "gpu"): training, then validation."""

    mode: str
    device: str
    threads: int
    train: TrainResult | None = None
    bench: BenchResult | None = None


@dataclass
class Sweep:
    """The suite's sweep: training runs over threads, batch sizes and ranks; validation over threads and batches."""

    train: list[TrainResult] = field(default_factory=list)
    bench: BenchResult | None = None


@dataclass
class SuiteResult(Record):
    dataset: str
    dataset_source: str
    config: dict
    modes: list[ModeResult] = field(default_factory=list)
    sweep: Sweep | None = None
    kind: str = "suite"

    def parts(self) -> list[TrainResult | BenchResult]:
        """Every train and bench-infer result inside, modes first, then the sweep."""
        sweep = [*self.sweep.train, self.sweep.bench] if self.sweep else []
        return [p for p in [*(p for m in self.modes for p in (m.train, m.bench)), *sweep] if p is not None]


# ---------------------------------------------------------------------------- loadgen


@dataclass
class SearchStep:
    """One QPS the Server search asked LoadGen for, and LoadGen's judgement of it."""

    qps: float
    valid: bool
    p99_ms: float | None
    reasons: list[str]


Scenario = Literal[tuple(SCENARIOS)]  # a file's other names are refused as it is read, not left out of tables
LoadgenMode = Literal["performance", "accuracy"]


@dataclass
class LoadgenRun:
    """One LoadGen test (for Server: the highest valid QPS its search found) as LoadGen judged it."""

    runtime: str
    provider: str
    threads: int
    scenario: Scenario  # single-stream, multi-stream, offline, server
    valid: bool | None  # LoadGen's "Result is: VALID"; None for an accuracy test (LoadGen judges none)
    reasons: list[str]  # LoadGen's, when INVALID
    samples_per_s: float | None  # Offline and Server (completed samples/s); None for the stream scenarios
    latency_ms: dict  # LoadGen's mean, p50, p90, p99, max per sample (per query for multi-stream)
    queries: int
    batches: dict  # batch size -> batches of that size that ran
    log_dir: str  # LoadGen's summary and detail logs
    mode: LoadgenMode = "performance"  # or accuracy
    spin: bool | None = None
    precision: str = "fp32"
    target_qps: float | None = None  # Server
    latency_bound_ms: float | None = None  # Server
    search: list[SearchStep] = field(default_factory=list)  # Server: every QPS tried, valid or not, in order
    early_stopping: str | None = None  # LoadGen's early-stopping estimate, in its words
    accuracy: float | None = None  # accuracy mode: LoadGen's accuracy log scored on the labels
    bench_accuracy: float | None = None  # ... and the same runner scored as bench-infer scores it
    samples_per_query: int | None = None  # MultiStream's (None in files before schema 13: MULTI_STREAM_SAMPLES)
    user_settings: dict | None = None  # the TestSettings fields --user-conf set for this test
    options: dict | None = None  # the runtime's Options as it ran (crossrt.runtimes.registry); None before 13

    @property
    def per_query(self) -> int:
        """Samples in one of its queries: MultiStream's samples per query; 1 for SingleStream."""
        if self.scenario != "multi-stream":
            return 1
        return self.samples_per_query or MULTI_STREAM_SAMPLES


@dataclass
class LoadgenResult(Record):
    model: str
    dataset: str | None  # None: a model without a dataset, fed generated inputs or --inputs
    samples: int  # LoadGen's sample library: the test images, or the model's own samples
    config: dict
    runs: list[LoadgenRun] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    failed: list[Failed] = field(default_factory=list)  # batch_size: its --max-batch
    model_info: dict = field(default_factory=dict)
    log_dir: str = ""
    kind: str = "loadgen"


Result = TrainResult | BenchResult | SuiteResult | LoadgenResult


def parts(result: Result) -> list[TrainResult | BenchResult | LoadgenResult]:
    """The train, bench-infer and loadgen results in a result (a suite holds several)."""
    return result.parts() if isinstance(result, SuiteResult) else [result]
