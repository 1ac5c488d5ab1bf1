"""Typed settings for every crossrt command.

The CLI only fills these dataclasses; they are also the Python API. Each one checks
itself in ``__post_init__`` and raises :class:`ConfigError` with a message that names
the flag, so a bad value never reaches the measurement code.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

ARCHS = ("lenet5", "lenet5-classic")
DATASETS = ("auto", "mnist", "fashion-mnist")
DEVICES = ("cpu", "cuda")
PRECISIONS = ("fp32", "bf16")
PROVIDERS = ("cpu", "cuda")
RUNTIMES = ("onnxruntime", "pytorch")


class CrossrtError(Exception):
    """An error the user can fix: the CLI prints it as one line and exits with code 2."""


class ConfigError(CrossrtError):
    """A flag or setting with a bad value."""


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask, not the host's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _choice(flag: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{flag}: unknown value {value!r} (choose from {', '.join(allowed)})")


def _at_least(flag: str, value, low) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low:
        raise ConfigError(f"{flag}: must be a number >= {low}, got {value!r}")


def _writable_file(flag: str, path: Path | None) -> Path | None:
    """A path we will write a file to: checked now, not after an hour of training."""
    if path is None:
        return None
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {path}: is a directory, expected a file path")
    return path


def _nonempty_unique(flag: str, values: tuple) -> None:
    if not values:
        raise ConfigError(f"{flag}: needs at least one value")
    if len(set(values)) != len(values):
        raise ConfigError(f"{flag}: lists a value twice: {','.join(map(str, values))}")


@dataclass
class DataConfig:
    """Where the images come from: a named dataset, or any folder with the four IDX files."""

    dataset: str = "auto"
    data_dir: Path | None = None

    def __post_init__(self) -> None:
        _choice("--dataset", self.dataset, DATASETS)
        if self.data_dir is not None:
            self.data_dir = Path(self.data_dir)


@dataclass
class TrainConfig:
    """The seed's recipe by default: 100 epochs, batch 600, Adam 1e-3, validation batch 100."""

    data: DataConfig = field(default_factory=DataConfig)
    device: str = "cpu"
    threads: int = field(default_factory=cpu_count)
    epochs: int = 100
    batch_size: int = 600
    valid_batch_size: int = 100
    lr: float = 1e-3
    lr_step: int = 0  # 0 = constant learning rate, as in the seed's code
    lr_gamma: float = 0.1
    seed: int = 2022  # the seed's MATLAB rng(2022)
    arch: str = "lenet5"
    precision: str = "fp32"
    target_accuracy: float | None = None  # None = 0.99 (0.90 for Fashion-MNIST)
    out: Path = Path("exports")
    json: Path | None = None
    resume: bool = False
    export: bool = True

    def __post_init__(self) -> None:
        _choice("--device", self.device, DEVICES)
        _choice("--arch", self.arch, ARCHS)
        _choice("--precision", self.precision, PRECISIONS)
        _at_least("--threads", self.threads, 1)
        _at_least("--epochs", self.epochs, 1)
        _at_least("--batch-size", self.batch_size, 1)
        _at_least("--valid-batch-size", self.valid_batch_size, 1)
        _at_least("--lr-step", self.lr_step, 0)
        _at_least("--seed", self.seed, 0)
        if not (isinstance(self.lr, (int, float)) and 0 < self.lr < 10):
            raise ConfigError(f"--lr: must be in (0, 10), got {self.lr!r}")
        if not (isinstance(self.lr_gamma, (int, float)) and 0 < self.lr_gamma <= 1):
            raise ConfigError(f"--lr-gamma: must be in (0, 1], got {self.lr_gamma!r}")
        if self.target_accuracy is not None and not 0 < self.target_accuracy <= 1:
            raise ConfigError(f"--target-accuracy: must be in (0, 1], got {self.target_accuracy!r}")
        self.out = Path(self.out)
        if self.out.exists() and not self.out.is_dir():
            raise ConfigError(f"--out {self.out}: is a file, expected a folder")
        self.json = _writable_file("--json", self.json)

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
class BenchConfig:
    """bench-infer: every combination of runtime x provider x threads x batch size."""

    data: DataConfig = field(default_factory=DataConfig)
    model: Path = Path("exports/lenet5.onnx")
    checkpoint: Path | None = None  # None = the model's path with .pt (what `train` writes)
    providers: tuple[str, ...] = ("cpu",)
    threads: tuple[int, ...] = field(default_factory=lambda: tuple(sorted({1, cpu_count()})))
    batch_sizes: tuple[int, ...] = (100,)
    runtimes: tuple[str, ...] = RUNTIMES
    warmup: int = 10  # batches run before timing, per configuration
    min_time: float = 1.0  # seconds of timed full passes, at least ...
    min_repeats: int = 3  # ... and at least this many passes
    spin: bool = True  # ORT's own default: intra-op threads busy-wait between ops
    json: Path | None = None
    train_json: Path | None = None  # None = <model>.train.json when it exists

    def __post_init__(self) -> None:
        self.model = Path(self.model)
        self.providers, self.threads = tuple(self.providers), tuple(self.threads)
        self.batch_sizes, self.runtimes = tuple(self.batch_sizes), tuple(self.runtimes)
        for flag, values in (("--provider", self.providers), ("--threads", self.threads),
                             ("--batch-size", self.batch_sizes), ("--runtimes", self.runtimes)):
            _nonempty_unique(flag, values)
        for p in self.providers:
            _choice("--provider", p, PROVIDERS)
        for r in self.runtimes:
            _choice("--runtimes", r, RUNTIMES)
        for t in self.threads:
            _at_least("--threads", t, 0)
        for b in self.batch_sizes:
            _at_least("--batch-size", b, 1)
        _at_least("--warmup", self.warmup, 0)
        _at_least("--min-time", self.min_time, 0)
        _at_least("--min-repeats", self.min_repeats, 1)
        if self.checkpoint is None:
            self.checkpoint = self.model.with_suffix(".pt")
        self.checkpoint = Path(self.checkpoint)
        self.json = _writable_file("--json", self.json)
        if self.train_json is not None:
            self.train_json = Path(self.train_json)


def to_plain(cfg) -> dict:
    """A settings dataclass as JSON-ready values (paths as strings), for results and checkpoints."""
    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return str(v) if isinstance(v, Path) else v

    return plain(asdict(cfg))
