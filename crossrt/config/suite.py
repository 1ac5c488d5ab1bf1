"""suite: the reference's modes on this machine, and the sweep."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .. import checks
from ..checks import choice, choices, in_range
from ..runtimes.registry import DEFAULT as DEFAULT_RUNTIMES
from ..runtimes.registry import RUNTIMES
from ..system import max_ranks, max_threads
from .common import (
    MAX_EPOCHS,
    MAX_SECONDS,
    SUITE_DEVICES,
    DataConfig,
    all_runtimes,
    even_rank_counts,
    json_field,
    option,
    thread_ladder,
)


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
    json: Path | None = json_field()

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
