"""What every command's settings share: the option() field that is also a CLI flag, the limits
and choices, the default factories that depend on this machine, and where the images come from."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field
from pathlib import Path

from ..checks import choice
from ..runtimes.registry import ALL as ALL_RUNTIMES
from ..runtimes.registry import DEFAULT as DEFAULT_RUNTIMES
from ..runtimes.registry import RUNTIMES
from ..system import cpu_count

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


INPUT_RANGES, MAX_DIM = ("uniform", "normal"), 2**31 - 1
MNIST_BATCH = 100  # the reference's validation batch: bench-infer's default for an MNIST classifier


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
    path is to the command ("in-file", "in-folder", "out-folder", "out-file", or "named-file": an
    output the user names, whose folder must exist; crossrt.paths)."""
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


def runtimes_field():
    """bench-infer's and loadgen's --runtimes field."""
    return option(
        DEFAULT_RUNTIMES, metavar="R[,R]", help=f"from {{{','.join(RUNTIMES)}}}, or all (those that can run here)"
    )


def runtime_option_field():
    """bench-infer's and loadgen's --runtime-option field (crossrt.runtimes.registry.check_options reads them)."""
    return option(
        (),
        flag="--runtime-option",
        metavar="[R.]NAME=VALUE[,...]",
        default_text="none",
        help="a runtime's own option, recorded in every row (onnxruntime.graph_optimization=basic; "
        "without R., every runtime asked for that has NAME); docs/extending.md lists them",
    )


def json_field():
    """Every command's --json: also write the result here (its folder must exist)."""
    return option(
        None, metavar="PATH", default_text="only results/", path="named-file", help="also write the result JSON here"
    )


def torch_model_field():
    """bench-infer's and loadgen's --torch-model field (crossrt.runtimes.pytorch.load_network reads it)."""
    return option(
        None,
        metavar="FILE",
        default_text="none: the PyTorch rows run --checkpoint's LeNet5",
        path="in-file",
        help="your own network for the pytorch and torch-compile rows, saved with torch.export.save (.pt2) "
        "or as TorchScript; fed the same inputs in the ONNX graph's input order, its outputs compared",
    )


def one_and_all_cores() -> tuple[int, ...]:
    """bench-infer's default threads: 1 and every core."""
    return tuple(sorted({1, cpu_count()}))


def thread_ladder() -> tuple[int, ...]:
    """1, 2, 4, ... up to the core count, and the core count itself (the suite's thread sweep)."""
    n, t, out = cpu_count(), 1, []
    while t < n:
        out.append(t)
        t *= 2
    return tuple(out + [n])


def even_rank_counts() -> tuple[int, ...]:
    """Every data-parallel rank count above 1 that shares this machine's cores evenly."""
    n = cpu_count()
    return tuple(p for p in range(2, n + 1) if n % p == 0)


def all_runtimes(runtimes) -> tuple[str, ...]:
    """`all` stands for every runtime that runs the model (those that cannot run here are reported,
    not run); the null runtime, which runs none, only when named."""
    return ALL_RUNTIMES if tuple(runtimes) == ("all",) else tuple(runtimes)


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
