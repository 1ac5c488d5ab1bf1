"""loadgen: MLPerf LoadGen's scenarios over every runtime asked for."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..checks import choices, in_range, nonempty_unique
from ..errors import ConfigError
from ..runtimes.registry import RUNTIMES, option_items
from ..scenarios import (
    DEFAULT_DURATION_S,
    LOADGEN_MIN_QUERIES,
    MAX_BATCH,
    MAX_QUERIES,
    MLPERF_MIN_DURATION_S,
    SCENARIOS,
)
from ..system import max_threads
from .bench import DEFAULT_MODEL, BenchConfig, InputsConfig
from .common import (
    PROVIDERS,
    DataConfig,
    all_runtimes,
    json_field,
    one_and_all_cores,
    option,
    runtime_option_field,
    runtimes_field,
    torch_model_field,
)


@dataclass
class LoadgenConfig:
    """loadgen: MLPerf LoadGen's scenarios (SingleStream, MultiStream, Offline, Server) over every
    runtime asked for, on crossrt's LeNet5 export and its test images, or on any ONNX model with a
    batch dimension, fed as bench-infer feeds it; LoadGen's logs are kept."""

    model: Path = option(
        DEFAULT_MODEL,
        path="in-file",
        help="ONNX model: a LeNet5 export serves the test images; any other, the inputs bench-infer's flags "
        "give it (a pool of --batches-per-pass x --max-batch samples)",
    )
    torch_model: Path | None = torch_model_field()
    runtimes: tuple[str, ...] = runtimes_field()
    provider: str = option("cpu", choices=PROVIDERS, help="execution provider (CUDA: host arrays in and out)")
    threads: tuple[int, ...] = option(
        factory=one_and_all_cores, metavar="N[,N]", help="intra-op threads of each runner; 0 = the runtime's default"
    )
    scenarios: tuple[str, ...] = option(
        ("single-stream", "offline", "server"),
        metavar="S[,S]",
        help=f"LoadGen scenarios from {{{','.join(SCENARIOS)}}}",
    )
    latency_bound: tuple[float, ...] = option(
        (5.0,),
        metavar="MS[,MS]",
        help="Server: the 99th-percentile latency bound, in ms; a search "
        "finds the highest QPS that keeps it, per bound",
    )
    max_batch: int = option(100, help="the most samples a batch runs: Offline's batch, Server's batching limit")
    batch_timeout_ms: float = option(
        0.0,
        metavar="MS",
        help="Server: how long a waiting sample waits for others "
        "to join its batch (0: none; batches form while a worker is busy)",
    )
    workers: int = option(1, help="Server: threads that run batches at once, each with a runner of its own")
    qps: float | None = option(
        None,
        metavar="Q",
        default_text="search",
        help="Server: one test at this QPS per bound instead of the search for the highest",
    )
    duration: float = option(
        DEFAULT_DURATION_S,
        metavar="S",
        help="minimum seconds of each LoadGen test (short: not MLPerf-valid; --mlperf-durations for MLPerf's)",
    )
    mlperf_durations: bool = option(False, help=f"MLPerf's minimum of {MLPERF_MIN_DURATION_S} s per test")
    accuracy: bool = option(
        False,
        help="also LoadGen's AccuracyOnly test over the test set, its accuracy held "
        "against the same runner's scored the way bench-infer scores it",
    )
    user_conf: Path | None = option(
        None,
        metavar="FILE",
        default_text="none",
        path="in-file",
        help="LoadGen settings in MLPerf's user.conf form (*.Server.target_latency = 10), read by "
        "LoadGen's FromConfig; they win over crossrt's and are recorded with each test",
    )
    runtime_options: tuple[str, ...] = runtime_option_field()
    data: DataConfig = field(default_factory=DataConfig)
    feed: InputsConfig = field(default_factory=InputsConfig)
    json: Path | None = json_field()

    def __post_init__(self) -> None:
        self.model, self.threads = Path(self.model), tuple(self.threads)
        self.torch_model = self.torch_model and Path(self.torch_model)
        self.user_conf = self.user_conf and Path(self.user_conf)
        self.runtimes, self.scenarios = all_runtimes(self.runtimes), tuple(self.scenarios)
        self.latency_bound, self.runtime_options = tuple(self.latency_bound), tuple(self.runtime_options)
        option_items(self.runtime_options)  # the form here; what each runtime takes, when the command runs
        choices("--runtimes", self.runtimes, tuple(RUNTIMES))
        nonempty_unique("--scenarios", self.scenarios)
        choices("--scenarios", self.scenarios, tuple(SCENARIOS))
        nonempty_unique("--threads", self.threads)
        for t in self.threads:
            in_range("--threads", t, 0, max_threads())
        nonempty_unique("--latency-bound", self.latency_bound)
        for bound in self.latency_bound:
            if not 0 < bound <= 60_000:
                raise ConfigError(f"--latency-bound: {bound:g} ms; a bound is above 0 and at most 60,000 ms")
        in_range("--max-batch", self.max_batch, 1, MAX_BATCH)
        in_range("--workers", self.workers, 1, 64)
        if not 0 <= self.batch_timeout_ms <= 10_000:
            raise ConfigError(f"--batch-timeout-ms: {self.batch_timeout_ms:g}; from 0 to 10,000 ms")
        if not 0.1 <= self.duration <= 86_400:
            raise ConfigError(f"--duration: {self.duration:g} s; from 0.1 s to a day")
        if self.mlperf_durations and self.duration != DEFAULT_DURATION_S:
            raise ConfigError(
                f"--duration {self.duration:g}: --mlperf-durations runs every test for MLPerf's "
                f"{MLPERF_MIN_DURATION_S} s; give one or the other"
            )
        if self.qps is not None and not 0 < self.qps * self.min_duration_s() <= MAX_QUERIES:
            raise ConfigError(
                f"--qps {self.qps:g}: LoadGen schedules every query of a test before it starts: "
                f"{self.qps:g} QPS for {self.min_duration_s():g} s is not 1 to {MAX_QUERIES:,} queries"
            )
        self.json = self.json and Path(self.json)

    def bench(self) -> BenchConfig:
        """The bench-infer settings of the same model, runtimes and threads: the runners, and the
        checks bench-infer makes before any work, come from there."""
        return BenchConfig(
            model=self.model,
            providers=(self.provider,),
            threads=self.threads,
            runtimes=self.runtimes,
            batch_sizes=None if self.feed.inputs else (self.max_batch,),  # a file's samples are the pool
            runtime_options=self.runtime_options,
            data=self.data,
            feed=self.feed,
            torch_model=self.torch_model,
        )

    def min_duration_s(self) -> float:
        return MLPERF_MIN_DURATION_S if self.mlperf_durations else self.duration

    def server_overrun(self, user: dict) -> str | None:
        """What to say when --qps for --duration is fewer queries than LoadGen runs a test for (its
        min_query_count, or what the user.conf sets): the test lasts longer than asked."""
        least = user.get("min_query_count", LOADGEN_MIN_QUERIES)
        if self.qps is None or self.qps * self.min_duration_s() >= least:
            return None
        return (
            f"--qps {self.qps:g}: LoadGen runs a Server test for at least {least} queries, so each test "
            f"lasts about {least / self.qps:,.1f} s at {self.qps:g} QPS, not the {self.min_duration_s():g} s asked"
        )

    def user_settings(self, scenario: str) -> dict:
        """The TestSettings fields --user-conf sets for scenario (crossrt's name); {} without one."""
        if self.user_conf is None:
            return {}
        from ..files import regular_file
        from ..sut import user_settings

        return user_settings(regular_file(self.user_conf, "--user-conf"), self.model.stem, SCENARIOS[scenario])
