"""Typed settings for every crossrt command: the one source of defaults.

The CLI builds its flags from these dataclasses (each field's `metadata` holds its help
text, and the flag name where it is not the field's), so a default is written once, here.
They are also the Python API. Each one checks its values in ``__post_init__`` (with the
validators of crossrt.checks) and raises :class:`ConfigError` with a message that names the
flag, so a bad value never reaches the measurement code. Building one touches no file: the
paths a field names (its `path` metadata) are checked by crossrt.paths.check_paths when the
command runs, before any work.
"""

from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, field
from pathlib import Path

from . import checks
from .checks import between, choice, choices, in_range, nonempty_unique, number_text, pairs, range_text, shape_text
from .errors import ConfigError
from .runtimes.registry import ALL as ALL_RUNTIMES
from .runtimes.registry import DEFAULT as DEFAULT_RUNTIMES
from .runtimes.registry import RUNTIMES, option_items
from .system import cpu_count, even_rank_counts, max_ranks, max_threads, one_and_all_cores, thread_ladder

ARCHS = ("lenet5", "lenet5-classic")
DATASETS = ("auto", "mnist", "fashion-mnist")
DEVICES = ("cpu", "cuda")
PRECISIONS = ("fp32", "bf16")
PROVIDERS = ("cpu", "cuda")
SUITE_DEVICES = ("auto", "cpu", "cuda")
SPIN = ("on", "off", "both")
MAX_EPOCHS = 100_000
MAX_SEED = 2**63 - 1  # torch.manual_seed takes a signed 64-bit integer
MAX_SECONDS = 86_400  # --min-time: a day per configuration is already far beyond any need
MAX_REPEATS = 1_000_000  # --warmup and --min-repeats


def option(
    default=MISSING,
    *,
    help: str,
    factory=None,
    flag: str | None = None,
    metavar: str | None = None,
    choices: tuple | None = None,
    default_text: str | None = None,
    aliases: dict | None = None,
    path: str | None = None,
):
    """A field that is also a CLI flag. default_text replaces the shown default ({} = the value);
    aliases are extra flags that set a fixed value ({"--no-spin": "off"}); path: what the field's
    path is to the command ("in-file", "in-folder", "out-folder", "out-file"; crossrt.paths)."""
    meta = {
        "help": help,
        "flag": flag,
        "metavar": metavar,
        "choices": choices,
        "default_text": default_text,
        "aliases": aliases or {},
        "path": path,
    }
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


# ---------------------------------------------------------------------------- settings


@dataclass
class DataConfig:
    """Where the images come from: a named dataset, or any folder with the four IDX files."""

    dataset: str = option(
        "auto",
        choices=DATASETS,
        help=("auto = the dataset a trained model records, else MNIST when cached or downloadable, else Fashion-MNIST"),
    )
    data_dir: Path | None = option(
        None,
        metavar="DIR",
        default_text="none, use --dataset",
        path="in-folder",
        help="any folder with the four IDX files, raw or .gz",
    )

    def __post_init__(self) -> None:
        choice("--dataset", self.dataset, DATASETS)
        self.data_dir = self.data_dir and Path(self.data_dir)


@dataclass
class TrainConfig:
    """train: LeNet5 with the reference recipe by default (100 epochs, batch 600, Adam 1e-3,
    validation batch 100), validated after every epoch, checkpointed, exported to ONNX."""

    device: str = option("cpu", choices=DEVICES, help="torch device")
    nproc: int = option(
        1,
        metavar="P",
        help="data-parallel ranks on this machine (torch.distributed: gloo on CPUs, "
        "NCCL on GPUs, one GPU per rank); the batch is split over them",
    )
    threads: int | None = option(
        None, default_text="the cores / the ranks on this machine", help="torch intra-op threads (per rank)"
    )
    cuda_graph: bool | None = option(
        None,
        flag="--cuda-graph/--no-cuda-graph",
        default_text="on with --device cuda",
        help="replay the training step and the validation batch as CUDA graphs",
    )
    cudnn_benchmark: bool = option(
        True,
        flag="--cudnn-benchmark/--no-cudnn-benchmark",
        help="with --device cuda: cuDNN times its convolution algorithms once and keeps "
        "the fastest (the search is part of the run's setup or first epoch)",
    )
    epochs: int = option(100, help="epochs")
    batch_size: int = option(600, help="training batch")
    valid_batch_size: int = option(100, help="validation batch")
    lr: float = option(1e-3, help="Adam learning rate")
    lr_step: int = option(0, metavar="EPOCHS", help="multiply the lr by --lr-gamma every EPOCHS epochs; 0 = off")
    lr_gamma: float = option(0.1, help="step decay factor")
    seed: int = option(2022, help="random seed for init and shuffling (the reference's MATLAB rng(2022))")
    arch: str = option(
        "lenet5", choices=ARCHS, help="lenet5 = the reference's 32/64/128 channels, lenet5-classic = 6/16/120"
    )
    precision: str = option("fp32", choices=PRECISIONS, help="bf16 = autocast; the exported model is fp32 either way")
    lean_step: bool = option(
        True,
        flag="--lean-step/--no-lean-step",
        help="the step computes LeNet5 with max-pool "
        "before ReLU and C5 as one GEMM: the same function, less memory traffic (crossrt.steps)",
    )
    target_accuracy: float | None = option(
        None, metavar="ACC", default_text="0.99, 0.90 for Fashion-MNIST", help="report epochs and time to reach ACC"
    )
    data: DataConfig = field(default_factory=DataConfig)
    out: Path = option(
        Path("exports"), metavar="DIR", path="out-folder", help="checkpoint, ONNX model and run record go here"
    )
    resume: bool = option(False, help="continue from DIR/lenet5.pt")
    export: bool = option(True, flag="--no-export", default_text="export", help="skip the ONNX export at the end")
    json: Path | None = option(
        None, metavar="PATH", default_text="only results/", path="out-file", help="also write the result JSON here"
    )

    def __post_init__(self) -> None:
        choice("--device", self.device, DEVICES)
        choice("--arch", self.arch, ARCHS)
        choice("--precision", self.precision, PRECISIONS)
        in_range("--nproc", self.nproc, 1, max_ranks())
        if self.cuda_graph and self.device != "cuda":
            raise ConfigError("--cuda-graph: needs --device cuda (on the CPU the same step runs eagerly)")
        if self.threads is None:  # a rank started by torchrun knows its neighbours from LOCAL_WORLD_SIZE
            self.threads = max(1, cpu_count() // int(os.environ.get("LOCAL_WORLD_SIZE", self.nproc)))
        in_range("--threads", self.threads, 1, max_threads())
        in_range("--epochs", self.epochs, 1, MAX_EPOCHS)
        in_range("--batch-size", self.batch_size, 1)
        if self.batch_size % self.nproc:
            raise ConfigError(
                f"--nproc {self.nproc}: does not divide --batch-size {self.batch_size}; every rank "
                f"takes an equal share of each batch"
            )
        in_range("--valid-batch-size", self.valid_batch_size, 1)
        in_range("--lr-step", self.lr_step, 0, MAX_EPOCHS)
        in_range("--seed", self.seed, 0, MAX_SEED)
        between("--lr", self.lr, 0, 10, high_inclusive=False)
        between("--lr-gamma", self.lr_gamma, 0, 1)
        if self.target_accuracy is not None:
            between("--target-accuracy", self.target_accuracy, 0, 1)
        self.out, self.json = Path(self.out), self.json and Path(self.json)

    @property
    def checkpoint(self) -> Path:
        return self.out / "lenet5.pt"

    @property
    def onnx_path(self) -> Path:
        return self.out / "lenet5.onnx"

    @property
    def run_json(self) -> Path:
        """The record of the run that made the model, beside it, for bench-infer to find."""
        return self.out / "lenet5.train.json"


@dataclass
class ExportConfig:
    """export: a checkpoint to ONNX, with ONNX Runtime checked against PyTorch on the test set."""

    checkpoint: Path = option(Path("exports/lenet5.pt"), path="in-file", help="checkpoint from `train`")
    out: Path | None = option(
        None,
        metavar="PATH",
        default_text="the checkpoint's path with .onnx",
        path="out-file",
        help="ONNX file to write",
    )
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self) -> None:
        self.checkpoint = Path(self.checkpoint)
        self.out = Path(self.out or self.checkpoint.with_suffix(".onnx"))


INPUT_RANGES, MAX_DIM = ("uniform", "normal"), 2**31 - 1
MNIST_BATCH = 100  # the reference's validation batch: bench-infer's default for an MNIST classifier


@dataclass
class InputsConfig:
    """What a model that is not an MNIST classifier is fed: its inputs are read from the graph and
    bound to shapes by these flags (crossrt.inputs), then generated, or read from --inputs."""

    dims: tuple[str, ...] = option(
        (),
        flag="--dim",
        metavar="NAME=N[,NAME=N]",
        default_text="none",
        help="bind a named dynamic dimension wherever it appears (batch=8, height=224)",
    )
    shapes: tuple[str, ...] = option(
        (),
        flag="--shape",
        metavar="INPUT=AxB[,...]",
        default_text="none",
        help="fix one input's whole shape, e.g. pixel_values=1x3x224x224",
    )
    values: tuple[str, ...] = option(
        (),
        flag="--value",
        metavar="INPUT=V[,...]",
        default_text="none",
        help="fill an input with one value (a scalar input too), e.g. sample_rate=16000",
    )
    input_range: tuple[str, ...] = option(
        ("uniform",),
        metavar="R[,INPUT=LOW:HIGH]",
        help="generated floats: uniform in [0, 1) or normal; INPUT=LOW:HIGH draws "
        "that input uniformly in [LOW, HIGH), integers too",
    )
    inputs: Path | None = option(
        None,
        metavar="FILE.npz",
        default_text="generated",
        help="the inputs themselves: one array per input name (their shapes need no flags)",
    )
    batches_per_pass: int = option(10, metavar="K", help="distinct generated batches in one timed pass")
    input_seed: int = option(0, help="seed of the generated inputs")

    def __post_init__(self) -> None:
        self.dims, self.shapes, self.values = tuple(self.dims), tuple(self.shapes), tuple(self.values)
        self.input_range = tuple(self.input_range)
        self.dim_map, self.shape_map, self.value_map = (
            pairs("--dim", self.dims, int),
            pairs("--shape", self.shapes, shape_text),
            pairs("--value", self.values, number_text),
        )
        for flag, sizes in (("--dim", self.dim_map.values()), *(("--shape", s) for s in self.shape_map.values())):
            checks.all_in_range(flag, tuple(sizes), 1, MAX_DIM)
        self.range_map = pairs("--input-range", tuple(r for r in self.input_range if "=" in r), range_text)
        kinds = [r for r in self.input_range if "=" not in r]
        if len(kinds) > 1:
            raise ConfigError(f"--input-range: one distribution for the float inputs, got {','.join(kinds)}")
        self.distribution = kinds[0] if kinds else "uniform"
        choice("--input-range", self.distribution, INPUT_RANGES)
        in_range("--batches-per-pass", self.batches_per_pass, 1, 10_000)
        in_range("--input-seed", self.input_seed, 0, MAX_SEED)
        self.inputs = self.inputs and Path(self.inputs)


@dataclass
class BenchConfig:
    """bench-infer: full validation passes of the exported model under every runtime asked for (ONNX
    Runtime and PyTorch by default), for every combination of runtime x provider x threads x batch size."""

    model: Path = option(Path("exports/lenet5.onnx"), path="in-file", help="ONNX model")
    checkpoint: Path | None = option(
        None, default_text="the model's path with .pt", path="in-file", help="checkpoint for the PyTorch rows"
    )
    providers: tuple[str, ...] = option(
        ("cpu",), flag="--provider", metavar="P[,P]", help=f"execution providers from {{{','.join(PROVIDERS)}}}"
    )
    threads: tuple[int, ...] = option(
        factory=one_and_all_cores, metavar="N[,N]", help="intra-op threads; 0 = the runtime's default"
    )
    batch_sizes: tuple[int, ...] | None = option(
        None,
        flag="--batch-size",
        metavar="B[,B]",
        default_text=(f"{MNIST_BATCH} (the reference's) for an MNIST classifier, else 1"),
        help="batch sizes; for another model, the first dimension of every input where it is dynamic",
    )
    runtimes: tuple[str, ...] = option(
        DEFAULT_RUNTIMES, metavar="R[,R]", help=f"from {{{','.join(RUNTIMES)}}}, or all (those that can run here)"
    )
    runtime_options: tuple[str, ...] = option(
        (),
        flag="--runtime-option",
        metavar="[R.]NAME=VALUE[,...]",
        default_text="none",
        help="a runtime's own option, recorded in every row (onnxruntime.graph_optimization=basic; "
        "without R., every runtime asked for that has NAME); docs/extending.md lists them",
    )
    int8_model: Path | None = option(
        None,
        default_text="the model's path with .int8.onnx (`crossrt quantize`)",
        path="in-file",
        help="int8 ONNX model for the onnxruntime-int8 rows",
    )
    # Warm-up runs pay for allocator growth, kernel selection and cache misses: cold costs,
    # reported apart (first_run_s), not steady state.
    warmup: int = option(10, help="untimed batches per configuration")
    min_time: float = option(1.0, metavar="S", help="time full passes for at least S seconds ...")
    min_repeats: int = option(3, metavar="R", help="... and at least R passes")
    spin: str = option(
        "on",
        choices=SPIN,
        default_text="{}, ORT's default",
        aliases={"--no-spin": "off"},
        help="ORT intra-op threads busy-wait between ops; both = a row each way",
    )
    isolate: bool = option(False, help="time each configuration in a fresh process of its own")
    data: DataConfig = field(default_factory=DataConfig)
    feed: InputsConfig = field(default_factory=InputsConfig)
    train_json: Path | None = option(
        None,
        metavar="PATH",
        default_text="<model>.train.json when it exists",
        path="in-file",
        help="training record for the train-vs-validation table",
    )
    json: Path | None = option(
        None, metavar="PATH", default_text="only results/", path="out-file", help="also write the result JSON here"
    )

    def __post_init__(self) -> None:
        self.model = Path(self.model)
        self.providers, self.threads = tuple(self.providers), tuple(self.threads)
        self.runtimes = all_runtimes(self.runtimes)
        choices("--provider", self.providers, PROVIDERS)
        nonempty_unique("--threads", self.threads)
        choices("--runtimes", self.runtimes, tuple(RUNTIMES))
        self.runtime_options = tuple(self.runtime_options)
        option_items(self.runtime_options)  # the form here; what each runtime takes, when the command runs
        checks.all_in_range("--threads", self.threads, 0, max_threads())
        if self.batch_sizes is not None:
            self.batch_sizes = tuple(self.batch_sizes)
            nonempty_unique("--batch-size", self.batch_sizes)
            checks.all_in_range("--batch-size", self.batch_sizes, 1, MAX_DIM)
        in_range("--warmup", self.warmup, 0, MAX_REPEATS)
        in_range("--min-time", self.min_time, 0, MAX_SECONDS)
        in_range("--min-repeats", self.min_repeats, 1, MAX_REPEATS)
        if isinstance(self.spin, bool):  # the Python API may say spin=True/False
            self.spin = "on" if self.spin else "off"
        choice("--spin", self.spin, SPIN)
        self.checkpoint = Path(self.checkpoint or self.model.with_suffix(".pt"))
        self.int8_model = Path(self.int8_model or self.model.with_suffix(".int8.onnx"))
        self.json = self.json and Path(self.json)
        self.train_json = self.train_json and Path(self.train_json)


def all_runtimes(runtimes) -> tuple[str, ...]:
    """`all` stands for every runtime that runs the model (those that cannot run here are reported,
    not run); the null runtime, which runs none, only when named."""
    return ALL_RUNTIMES if tuple(runtimes) == ("all",) else tuple(runtimes)


@dataclass
class QuantizeConfig:
    """quantize: an int8 copy of an ONNX model with ONNX Runtime's quantization tools (pre-processing,
    static QDQ, per-channel weights), calibrated on training images, or on the inputs bench-infer
    would give a model without a dataset (the same flags)."""

    model: Path = option(Path("exports/lenet5.onnx"), path="in-file", help="fp32 ONNX model")
    out: Path | None = option(
        None,
        metavar="PATH",
        default_text="the model's path with .int8.onnx",
        path="out-file",
        help="int8 ONNX file to write",
    )
    calibration_images: int = option(
        1000,
        metavar="N",
        help="samples the activation ranges are taken from: training images, or the inputs of another model",
    )
    data: DataConfig = field(default_factory=DataConfig)
    feed: InputsConfig = field(default_factory=InputsConfig)

    def __post_init__(self) -> None:
        self.model = Path(self.model)
        in_range("--calibration-images", self.calibration_images, 1, 1_000_000)
        self.out = Path(self.out or self.model.with_suffix(".int8.onnx"))


@dataclass
class SuiteConfig:
    """suite: the reference's modes on this machine (CPU 1 thread, all cores, GPU), optional sweeps."""

    epochs: int = option(100, default_text="{}, the reference's", help="epochs per mode")
    device: str = option(
        "auto", choices=SUITE_DEVICES, help="auto = add the GPU mode when a GPU is usable; cpu = CPU modes only"
    )
    data: DataConfig = field(default_factory=DataConfig)
    out: Path = option(
        Path("exports/suite"), metavar="DIR", path="out-folder", help="a subfolder per mode for checkpoints and models"
    )
    min_time: float = option(1.0, metavar="S", help="seconds of timed validation passes per configuration")
    isolate: bool = option(
        True, flag="--isolate/--no-isolate", help="time each validation configuration in a fresh process of its own"
    )
    runtimes: tuple[str, ...] = option(
        DEFAULT_RUNTIMES, metavar="R[,R]", help=f"validation runtimes from {{{','.join(RUNTIMES)}}}, or all"
    )
    sweep: bool = option(False, help="also sweep threads and batch sizes")
    sweep_threads: tuple[int, ...] = option(
        factory=thread_ladder, metavar="N[,N]", default_text="1, 2, 4, ... and all cores", help="threads of the sweep"
    )
    sweep_train_batches: tuple[int, ...] = option(
        (100, 600, 2000), metavar="B[,B]", help="training batch sizes of the sweep"
    )
    sweep_valid_batches: tuple[int, ...] = option(
        (1, 10, 100, 1000), metavar="B[,B]", help="validation batch sizes of the sweep"
    )
    sweep_ranks: tuple[int, ...] = option(
        factory=even_rank_counts,
        metavar="P[,P]",
        default_text="every P above 1 that divides the cores",
        help="data-parallel ranks of the sweep, each with cores / P threads",
    )
    sweep_epochs: int = option(1, help="epochs per sweep training run")
    json: Path | None = option(
        None, metavar="PATH", default_text="only results/", path="out-file", help="also write the result JSON here"
    )

    def __post_init__(self) -> None:
        choice("--device", self.device, SUITE_DEVICES)
        self.runtimes = all_runtimes(self.runtimes)
        choices("--runtimes", self.runtimes, tuple(RUNTIMES))
        in_range("--epochs", self.epochs, 1, MAX_EPOCHS)
        in_range("--sweep-epochs", self.sweep_epochs, 1, MAX_EPOCHS)
        in_range("--min-time", self.min_time, 0, MAX_SECONDS)
        checks.all_in_range("--sweep-threads", self.sweep_threads, 1, max_threads())
        checks.all_in_range("--sweep-ranks", self.sweep_ranks, 2, max_ranks())
        for flag in ("sweep_train_batches", "sweep_valid_batches"):
            checks.all_in_range("--" + flag.replace("_", "-"), getattr(self, flag), 1)
        self.out, self.json = Path(self.out), self.json and Path(self.json)
