"""bench-infer and quantize: the model, the runtimes and their options, the inputs of any model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .. import checks
from ..checks import choice, choices, in_range, nonempty_unique, pairs, range_text, shape_text, value_text
from ..errors import ConfigError
from ..runtimes.registry import RUNTIMES, option_items
from ..system import max_threads
from .common import (
    INPUT_RANGES,
    MAX_DIM,
    MAX_REPEATS,
    MAX_SECONDS,
    MAX_SEED,
    MNIST_BATCH,
    PROVIDERS,
    SPIN,
    DataConfig,
    all_runtimes,
    json_field,
    one_and_all_cores,
    option,
    runtime_option_field,
    runtimes_field,
    torch_model_field,
)

DEFAULT_MODEL = Path("exports/lenet5.onnx")  # what `make train` exports


def _share(text: str) -> float:
    """A tolerance: a finite number from 0 to 1e6."""
    value = float(text)
    if not 0 <= value <= 1e6:  # NaN fails this too
        raise ValueError(text)
    return value


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
        path="in-file",
        help="the inputs themselves: one array per input name (their shapes need no flags)",
    )
    allow_non_finite: bool = option(
        False, help="feed the NaN and infinity an --inputs file holds (a -inf attention mask, a model testing for NaN)"
    )
    batches_per_pass: int = option(10, metavar="K", help="distinct generated batches in one timed pass")
    input_seed: int = option(0, help="seed of the generated inputs")
    # Made from the flags above by __post_init__ (no flags, not written with the settings).
    dim_map: dict[str, int] = field(init=False, repr=False)  # --dim: dimension -> size
    shape_map: dict[str, tuple[int, ...]] = field(init=False, repr=False)  # --shape: input -> shape
    value_map: dict[str, float | int | str] = field(init=False, repr=False)  # --value: input -> value
    value_text: dict[str, str] = field(init=False, repr=False)  # --value: input -> the text given
    range_map: dict[str, tuple[float, float]] = field(init=False, repr=False)  # --input-range: input -> (low, high)
    distribution: str = field(init=False, repr=False)  # of the generated floats: uniform or normal
    from_graph: set[str] = field(init=False, repr=False)  # inputs whose range the graph gave (inputs.use_graph_ranges)

    def __post_init__(self) -> None:
        self.dims, self.shapes, self.values = tuple(self.dims), tuple(self.shapes), tuple(self.values)
        self.input_range = tuple(self.input_range)
        self.dim_map, self.shape_map, self.value_map = (
            pairs("--dim", self.dims, int),
            pairs("--shape", self.shapes, shape_text),
            pairs("--value", self.values, value_text),
        )
        self.value_text = pairs("--value", self.values, str)  # as given, for a string input
        for flag, sizes in (("--dim", self.dim_map.values()), *(("--shape", s) for s in self.shape_map.values())):
            checks.all_in_range(flag, tuple(sizes), 0, MAX_DIM)  # a 0: an input of no elements
        self.range_map = pairs("--input-range", tuple(r for r in self.input_range if "=" in r), range_text)
        kinds = [r for r in self.input_range if "=" not in r]
        if len(kinds) > 1:
            raise ConfigError(f"--input-range: one distribution for the float inputs, got {','.join(kinds)}")
        self.distribution = kinds[0] if kinds else "uniform"
        self.from_graph = set()
        choice("--input-range", self.distribution, INPUT_RANGES)
        in_range("--batches-per-pass", self.batches_per_pass, 1, 10_000)
        in_range("--input-seed", self.input_seed, 0, MAX_SEED)
        self.inputs = self.inputs and Path(self.inputs)


@dataclass
class BenchConfig:
    """bench-infer: full validation passes of the exported model under every runtime asked for (ONNX
    Runtime and PyTorch by default), for every combination of runtime x provider x threads x batch size."""

    model: Path = option(DEFAULT_MODEL, path="in-file", help="ONNX model")
    checkpoint: Path | None = option(
        None, default_text="the model's path with .pt", path="in-file", help="checkpoint for the PyTorch rows"
    )
    torch_model: Path | None = torch_model_field()
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
    runtimes: tuple[str, ...] = runtimes_field()
    runtime_options: tuple[str, ...] = runtime_option_field()
    tolerances: tuple[str, ...] = option(
        (),
        flag="--tolerance",
        metavar="[OUTPUT=]R[,...]",
        default_text="by the output's type and the row's precision (docs/methodology.md)",
        help="the largest |difference| / max |reference| an output may show against ONNX Runtime CPU fp32; "
        "OUTPUT= sets one output's",
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
    min_repeats: int = option(
        3, metavar="R", help="... and at least R repeats (a repeat: a pass, or as many as last 20 ms)"
    )
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
    json: Path | None = json_field()

    tolerance_map: dict[str, float] = field(init=False, repr=False)  # --tolerance: output ("" all) -> max_rel

    def __post_init__(self) -> None:
        self.model = Path(self.model)
        self.providers, self.threads = tuple(self.providers), tuple(self.threads)
        self.runtimes = all_runtimes(self.runtimes)
        choices("--provider", self.providers, PROVIDERS)
        nonempty_unique("--threads", self.threads)
        choices("--runtimes", self.runtimes, tuple(RUNTIMES))
        self.runtime_options, self.tolerances = tuple(self.runtime_options), tuple(self.tolerances)
        self.tolerance_map = pairs("--tolerance", tuple(t for t in self.tolerances if "=" in t), _share)
        if every := list(dict.fromkeys(t for t in self.tolerances if "=" not in t)):
            if len(every) > 1:
                raise ConfigError(f"--tolerance: one tolerance for every output, got {', '.join(every)}")
            try:
                self.tolerance_map[""] = _share(every[0])
            except ValueError:
                raise ConfigError(f"--tolerance {every[0]!r}: expected a number from 0 to 1e6") from None
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
        self.torch_model = self.torch_model and Path(self.torch_model)
        self.int8_model = Path(self.int8_model or self.model.with_suffix(".int8.onnx"))
        self.json = self.json and Path(self.json)
        self.train_json = self.train_json and Path(self.train_json)


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
