"""Typed settings for every crossrt command: the one source of defaults.

The CLI builds its flags from these dataclasses (each field's `metadata` holds its help
text, and the flag name where it is not the field's), so a default is written once, here.
They are also the Python API. Each one checks its values in ``__post_init__`` (with the
validators of crossrt.checks) and raises :class:`ConfigError` with a message that names the
flag, so a bad value never reaches the measurement code. Building one touches no file: the
paths a field names (its `path` metadata) are checked by crossrt.paths.check_paths when the
command runs, before any work.

The settings are one module per command here (train and export, bench-infer and quantize,
loadgen, suite), on what they share (crossrt.config.common).
"""

from .bench import BenchConfig, InputsConfig, QuantizeConfig
from .common import (
    ARCHS,
    DATASETS,
    DEVICES,
    INPUT_RANGES,
    MAX_DIM,
    MAX_EPOCHS,
    MAX_REPEATS,
    MAX_SECONDS,
    MAX_SEED,
    MNIST_BATCH,
    PRECISIONS,
    PROVIDERS,
    SPIN,
    SUITE_DEVICES,
    DataConfig,
    all_runtimes,
    even_rank_counts,
    one_and_all_cores,
    option,
    thread_ladder,
)
from .loadgen import LoadgenConfig
from .suite import SuiteConfig
from .train import ExportConfig, TrainConfig

__all__ = [
    "ARCHS",
    "BenchConfig",
    "DATASETS",
    "DEVICES",
    "DataConfig",
    "ExportConfig",
    "INPUT_RANGES",
    "InputsConfig",
    "LoadgenConfig",
    "MAX_DIM",
    "MAX_EPOCHS",
    "MAX_REPEATS",
    "MAX_SECONDS",
    "MAX_SEED",
    "MNIST_BATCH",
    "PRECISIONS",
    "PROVIDERS",
    "QuantizeConfig",
    "SPIN",
    "SUITE_DEVICES",
    "SuiteConfig",
    "TrainConfig",
    "all_runtimes",
    "even_rank_counts",
    "one_and_all_cores",
    "option",
    "thread_ladder",
]
