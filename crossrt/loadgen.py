"""`crossrt loadgen`: MLPerf LoadGen's serving scenarios over the runners bench-infer uses.

bench-infer times full passes with the next batch always ready. A service sees requests one at a
time, or at random moments, and is judged on a latency percentile. MLPerf Inference's LoadGen
(the real library, `mlcommons-loadgen`) issues the queries of its scenarios and judges each test
VALID or INVALID by its rules (minimum duration and query count, the latency bound, early
stopping); crossrt.sut is the system under test, on the runners of crossrt.runtimes, so every
runtime bench-infer has serves here too, built by the same code (OpenVINO with a dynamic batch).

- SingleStream: one sample per query, the next when it is done: LoadGen's 90th-percentile latency.
- MultiStream: 8 samples per query (MULTI_STREAM_SAMPLES), one query at a time: the 99th-percentile
  query latency.
- Offline: every sample in one query, run in batches of --max-batch: samples per second.
- Server: Poisson arrivals at a target QPS; VALID when the 99th-percentile latency stays within
  --latency-bound. crossrt searches the highest such QPS over LoadGen runs (widening, then
  halving the interval, each test a full LoadGen run), rather than LoadGen's FindPeakPerformance
  mode, so that every QPS tried is a run of its own with LoadGen's verdict and reasons, and the
  whole trail is kept.

A separate command, not a bench-infer flag: it asks another question (the rate a latency bound
allows, not the rate of a loop), with settings of its own (scenarios, bound, batching, durations).
Any LoadGen setting can also come from a user.conf file (`--user-conf FILE`, MLPerf's form
`MODEL.SCENARIO.KEY = VALUE`, MODEL the ONNX file's stem or *), read by LoadGen's own
TestSettings.FromConfig; what it sets wins over crossrt's settings and is recorded with each test.
Each runtime's configuration runs in a process of its own (crossrt.isolate), so that Ctrl-C ends
the LoadGen test under way at once and the configurations that finished are kept.
"""

from __future__ import annotations

import functools
import pickle
import shutil
import tempfile
import time
from contextlib import suppress
from dataclasses import asdict
from functools import partial
from pathlib import Path

import numpy as np

from . import inputs
from .bench_infer import score
from .config import LoadgenConfig
from .data import normalize
from .errors import Interrupted, ModelError
from .files import RESULTS_DIR, atomic_write, result_name
from .isolate import isolated
from .plan import one_line, plan, run_planned, skipped
from .results import LoadgenResult, LoadgenRun, SearchStep, Skipped
from .runtimes.registry import RUNTIMES
from .scenarios import (
    EARLY_STOPPING_QUERIES,
    MAX_QUERIES,
    MLPERF_MIN_QUERIES,
    MULTI_STREAM_SAMPLES,
    SCENARIOS,
    SEARCH_STEPS,
    SEEDS,
)
from .schema import plain
from .sut import SUT, accuracy_log
from .system import environment, peak_rss_mb

# Runtimes the SUT does not serve, and why (they are listed with the runtimes that cannot run here).
PROGRESS = "crossrt-progress.pickle"  # a configuration's finished tests, while it runs (interrupted)
NOT_SERVED = {
    "torch-compile": "compiles a graph per batch shape, and a server's batches come in every size up "
    "to --max-batch; bench-infer times it"
}


def settings(
    cfg: LoadgenConfig,
    scenario: str,
    hints: dict,
    qps: float | None = None,
    bound_ms: float | None = None,
    samples: int = 0,
    user: dict | None = None,
) -> dict:
    """LoadGen TestSettings for one test: the durations, the scenario's own fields, and hints from
    a probe of the runner (LoadGen pre-generates its queries from them: too few, from too low a
    rate or too high a latency, end a test before its minimum duration); then `user` (what
    --user-conf sets for the scenario) over them."""
    s = {**SEEDS, "min_duration_ms": int(1000 * cfg.min_duration_s()), "performance_sample_count_override": samples}
    if cfg.mlperf_durations and scenario in MLPERF_MIN_QUERIES:
        s["min_query_count"] = MLPERF_MIN_QUERIES[scenario]
    if scenario == "single-stream":
        s["single_stream_expected_latency_ns"] = max(1, int(hints["latency_1_s"] * 1e9))
    elif scenario == "multi-stream":
        s["multi_stream_expected_latency_ns"] = max(1, int(hints["latency_query_s"] * 1e9))
        s["multi_stream_samples_per_query"] = MULTI_STREAM_SAMPLES
    elif scenario == "offline":  # LoadGen makes one query of hint x duration x 1.1 samples: twice the
        # probe's rate, so that a runner faster in the test than in the probe still fills the duration
        s["offline_expected_qps"] = min(2 * hints["samples_per_s"], MAX_QUERIES / cfg.min_duration_s())
    else:
        s.update(
            server_target_qps=qps, server_target_latency_ns=int(bound_ms * 1e6), server_target_latency_percentile=0.99
        )
    return {**s, **(user or {})}


def probe(sut, max_batch: int, per_query: int = MULTI_STREAM_SAMPLES) -> dict:
    """The runner's latency of a MultiStream query (per_query samples) and of one sample, and its
    samples/s at max_batch, on real samples: LoadGen's hints."""

    def seconds(n: int) -> float:
        """The median of batches over a quarter of a second, after a few warm-up batches: the
        gather into the SUT's buffer and the run, as the SUT does them (for a runner that costs
        nothing, the null runtime's, the gather is what there is)."""
        indices = np.arange(n) % sut.n
        run = sut.runners[0].outputs
        for _ in range(3):
            sut.load(0, indices)
            run(n - 1)
        times, end = [], time.perf_counter() + 0.25
        while time.perf_counter() < end or len(times) < 5:
            t0 = time.perf_counter()
            sut.load(0, indices)
            run(n - 1)
            times.append(time.perf_counter() - t0)
        return sorted(times)[len(times) // 2]

    part = min(per_query, max_batch)  # a query larger than a batch runs as several
    return {
        "latency_1_s": seconds(1),
        "latency_query_s": seconds(part) * -(-per_query // part),
        "samples_per_s": max_batch / seconds(max_batch),
    }


def warm_every_size(sut) -> list[int]:
    """Run every batch size a Server test can form (1..max_batch) once on every worker's runner,
    before any test: cuDNN's search (cudnn.benchmark, ORT's EXHAUSTIVE) and a compiler's first
    call happen per shape, and inside the first Server test they would make it INVALID and cap the
    QPS search at its start. The sizes run, in order."""
    sizes = list(range(1, sut.max_batch + 1))
    for worker, runner in enumerate(sut.runners):
        for n in sizes:
            sut.load(worker, np.arange(n) % sut.n)
            runner.outputs(n - 1)
    return sizes


def offline_rate(sut, probed: float) -> float:
    """Samples/s of a short LoadGen Offline test (a tenth of a second at the probe's rate, of at
    most 110,000 samples): the probe leaves out LoadGen's own cost per sample, which for a tiny
    model is most of it (20x here for a ReLU), and Offline's one query is sized from the rate, so
    a test asked for 0.3 s would run 14 s."""
    with tempfile.TemporaryDirectory() as tmp:
        qps = min(probed, 1e6)
        short = {"min_duration_ms": 100, "offline_expected_qps": qps, "performance_sample_count_override": sut.n}
        return sut.test("Offline", {**SEEDS, **short}, Path(tmp))["samples_per_s"] or probed


def search(test, start_qps: float, cap: float = float("inf"), floor: float = 0.1) -> tuple[dict | None, list[dict]]:
    """The highest QPS from floor to cap whose LoadGen Server test is VALID: widen from start_qps
    (x1.5 up while valid, /2 down while not, or straight down to the rate the test completed
    samples at when that is lower still: a start far above what the system sustains costs one test,
    not one per halving), then halve the interval to 5%, at most SEARCH_STEPS more tests.
    test(qps) runs one and returns its figures (samples_per_s: the rate it completed samples at,
    when known); (the best valid test, every test in order)."""
    trail, best, low, high = [], None, None, None
    qps = min(max(start_qps, floor), cap)  # below the floor no test can be VALID
    for _ in range(SEARCH_STEPS + 1):
        fig = {**test(qps), "target_qps": qps}
        trail.append(fig)
        if fig["valid"]:
            best, low = fig, qps
        else:
            high = qps
        if low is None:
            if qps <= floor:  # not even the lowest rate a test can judge keeps the bound
                break
            qps = max(min(qps / 2, fig.get("samples_per_s") or qps), floor)
        elif high is None:
            if qps >= cap:  # valid at the cap: as far as LoadGen is asked to go
                break
            qps = min(qps * 1.5, cap)
        elif high / low <= 1.05:
            break
        else:
            qps = (low + high) / 2
    return best, trail


def measure_config(cfg: LoadgenConfig, row, pool, labels, logs: Path) -> tuple[list[dict], str]:
    """Every scenario asked for, on one runtime configuration (row), in this process: the runs as
    dicts (crossrt.results.LoadgenRun's fields), and why the tests stopped early ("" when all
    ran): a test that fails keeps the tests that finished before it. A top-level function of
    picklable arguments, so that it runs in a fresh process of its own."""

    runs = []
    try:
        _measure(cfg, row, pool, labels, logs, runs)
    except Exception as e:  # a runtime's error in one test
        if not runs:
            raise
        return runs, one_line(e)
    finally:
        (logs / PROGRESS).unlink(missing_ok=True)  # read only when this process is killed
    return runs, ""


def _progress(logs: Path, runs: list[dict], tests: list[str]) -> None:
    """What of a configuration has finished (its runs, its tests' log folders), for the parent to
    keep if it has to kill this process at a Ctrl-C (interrupted): a pickle, read only by the
    crossrt that started this process, in the log folder it has just made for it."""
    atomic_write(logs / PROGRESS, pickle.dumps((runs, tests)))


def interrupted(logs: Path) -> Interrupted:
    """A Ctrl-C during a configuration whose tests log under logs: the runs that finished before
    it, and no half-written LoadGen log (the folder of the test it cut short is removed)."""
    try:
        runs, tests = pickle.loads((logs / PROGRESS).read_bytes())
    except (OSError, EOFError, pickle.UnpicklingError):  # stopped before a test finished
        runs, tests = [], []
    (logs / PROGRESS).unlink(missing_ok=True)
    for folder in logs.glob("*/*"):
        if str(folder) not in tests:
            shutil.rmtree(folder, ignore_errors=True)
            with suppress(OSError):  # a scenario's folder that is now empty
                folder.parent.rmdir()
    return Interrupted(runs)


def _measure(cfg: LoadgenConfig, row, pool, labels, logs: Path, runs: list[dict]) -> None:
    """measure_config's tests, each appended to runs as it ends."""

    bench = cfg.bench()
    sut = SUT(
        lambda feeds: RUNTIMES[row.runtime].runner(bench, row, feeds),
        pool,
        cfg.max_batch,
        cfg.workers if "server" in cfg.scenarios else 1,
    )
    user = functools.cache(cfg.user_settings)  # LoadGen reads the user.conf once per scenario, not per test
    per_query = user("multi-stream").get("multi_stream_samples_per_query", MULTI_STREAM_SAMPLES)
    if "server" in cfg.scenarios and row.provider != "cpu":  # cuDNN's search is per shape; the CPU's is not
        warm_every_size(sut)
    hints = probe(sut, cfg.max_batch, per_query)
    if "offline" in cfg.scenarios:
        hints["samples_per_s"] = min(hints["samples_per_s"], offline_rate(sut, hints["samples_per_s"]))

    tests, done = iter(range(1, 1000)), []  # done: the log folders of the tests that finished

    def test(scenario: str, qps=None, bound=None, accuracy=False) -> dict:
        """One LoadGen test, its logs in a folder of its own (numbered: two QPS may print alike)."""
        kind = f"{bound:g}ms-{qps:.6g}qps" if qps else "accuracy" if accuracy else "performance"
        where = logs / scenario / f"{next(tests):02d}-{kind}"
        s = settings(cfg, scenario, hints, qps, bound, sut.n, user(scenario))
        figures = sut.test(SCENARIOS[scenario], s, where, cfg.batch_timeout_ms / 1e3, accuracy)
        done.append(str(where))
        _progress(logs, runs, done)
        return figures | {
            "log_dir": str(where),
            "user_settings": user(scenario) or None,
            "samples_per_query": per_query if scenario == "multi-stream" else None,
        }

    def keep(run: dict) -> None:
        runs.append(run)
        _progress(logs, runs, done)

    start = hints["samples_per_s"] / 2
    for scenario in (s for s in SCENARIOS if s in cfg.scenarios):
        if scenario != "server":
            keep({**test(scenario), "scenario": scenario})
            if scenario == "offline" and runs[-1]["samples_per_s"]:  # what the whole SUT sustains under
                start = min(start, runs[-1]["samples_per_s"])  # LoadGen: a Server keeps no more
            continue
        for bound in cfg.latency_bound:
            if cfg.qps:  # one test at the QPS asked for
                keep(
                    {
                        **test(scenario, cfg.qps, bound),
                        "scenario": scenario,
                        "target_qps": cfg.qps,
                        "latency_bound_ms": bound,
                    }
                )
                continue
            # The search starts at half of what the probe's max_batch batches ran (more than a Server keeps),
            # or at Offline's rate when that test ran and is lower (a fast runner's probe leaves out
            # LoadGen's and the SUT's own cost per sample), and never asks LoadGen to schedule more
            # than MAX_QUERIES in one test.
            # Below `floor`, a test has too few queries for LoadGen's early stopping to judge a p99.
            cap, floor = MAX_QUERIES / cfg.min_duration_s(), EARLY_STOPPING_QUERIES / cfg.min_duration_s()
            best, trail = search(partial(test, scenario, bound=bound), start, cap, floor)
            found = best or trail[-1]
            keep(
                {
                    **found,
                    "scenario": scenario,
                    "latency_bound_ms": bound,
                    "search": [
                        SearchStep(t["target_qps"], t["valid"], t["latency_ms"].get("p99"), t["reasons"]) for t in trail
                    ],
                }
            )
    if cfg.accuracy:
        run = test("offline", accuracy=True)
        direct = np.concatenate([sut.runners[0].outputs(n - 1)[0] for n in _batches(sut, cfg.max_batch)])
        keep(
            {
                **run,
                "scenario": "offline",
                "mode": "accuracy",
                "accuracy": accuracy_log(Path(run["log_dir"]) / "mlperf_log_accuracy.json", labels, 10),
                "bench_accuracy": score(direct, labels)[1],
            }
        )


def _batches(sut, size: int):
    """The whole pool in order, each batch in the runner's buffer of its size (as bench-infer batches): its size."""

    for i in range(0, sut.n, size):
        yield sut.load(0, np.arange(i, min(i + size, sut.n)))


def pool_of(cfg: LoadgenConfig, data, prepared) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """The samples LoadGen's queries index, by input name, and their labels: an MNIST classifier's
    test images; any other model's --inputs file, or --batches-per-pass batches of --max-batch
    samples made as bench-infer makes them, without labels."""
    if prepared.mnist:
        return {prepared.signature[0][0].name: normalize(data.test_images)}, data.test_labels.astype("int64")
    batch = prepared.batch_sizes[0]
    made = inputs.feeds(cfg.feed, prepared.signature, prepared.shapes, batch, 1 if cfg.feed.inputs else None)
    return {name: np.concatenate([f[name] for f in made.feeds]) for name in made.feeds[0]}, None


def unservable(cfg: LoadgenConfig) -> str | None:
    """Why LoadGen cannot serve this model with these settings, in one line, or None; said before
    bench-infer's checks, whose words (--batch-size) are not this command's. A file that is no ONNX
    model is left to them."""
    try:
        sig = inputs.signature(inputs.load_model(cfg.model))
    except (OSError, ModelError):  # no file, or not a model: bench-infer's checks say so
        return None
    if inputs.is_mnist_classifier(*sig):
        return None
    if not sig[0]:
        return (
            f"{cfg.model.name} has no inputs (a graph of constants): LoadGen's queries are samples to feed, "
            f"and it takes none (time it with bench-infer)"
        )
    if cfg.accuracy:
        return f"--accuracy: {cfg.model.name} has no dataset, so no labels to score LoadGen's accuracy on"
    fixed = [t for t in sig[0] if not t.dims or isinstance(t.dims[0], int)]
    if fixed:
        return (
            f"input {fixed[0].shown()}: LoadGen's queries are batched along the first dimension of every input, "
            f"and this one has {'none' if not fixed[0].dims else 'a fixed one'}"
        )
    return None


def run_loadgen(cfg: LoadgenConfig, data, prepared, on_run=None, on_start=None, on_fail=None) -> LoadgenResult:
    """Every runtime configuration of cfg (runtime x threads x spin), each in a process of its own,
    on data's test images (or the model's own inputs: pool_of), through bench-infer's loop
    (crossrt.plan.run_planned); Stopped keeps the
    configurations that finished. A configuration that fails is listed in `failed` with its reason
    (its tests that finished before are kept), one that cannot run here (a ProviderError, such as
    an execution provider that would not really run it) in `skipped`, as bench-infer lists it; the
    others still run."""
    bench = cfg.bench()
    pool, labels = pool_of(cfg, data, prepared)
    result = LoadgenResult(
        model=str(cfg.model),
        dataset=data.name if data else None,
        samples=len(next(iter(pool.values()))),
        config=plain(cfg),
        skipped=skipped(bench),
        model_info=prepared.model_info,
    )
    result.skipped += [Skipped(r, cfg.provider, why) for r, why in NOT_SERVED.items() if r in cfg.runtimes]
    logs = RESULTS_DIR / f"{result_name(plain(result))}-logs"  # beside the result's own file
    result.log_dir = str(logs)
    rows = [r for r in plan(bench, (cfg.max_batch,)) if r.io in ("host", "end-to-end") and r.runtime not in NOT_SERVED]

    def tests(row) -> tuple[list[dict], str]:  # a failure keeps the tests that finished before it
        where = (
            logs / f"{row.runtime}-{row.precision}-{row.provider}-{row.threads}thr"
            f"{'' if row.spin is not False else '-no-spin'}"
        )
        try:
            return isolated(partial(measure_config, cfg, row, pool, labels, where))
        except KeyboardInterrupt:
            raise interrupted(where) from None

    def keep(row, test: dict) -> LoadgenRun:
        of_row = {k: getattr(row, k) for k in ("runtime", "provider", "threads", "spin", "precision")}
        return LoadgenRun(**of_row, **test, options=asdict(RUNTIMES[row.runtime].settings(bench)))

    def finish() -> None:
        result.environment, result.peak_rss_mb = environment(), peak_rss_mb()

    # A failed row's batch_size is --max-batch (the plan's one batch size).
    run_planned(
        result,
        rows,
        tests,
        keep,
        noun="LoadGen test(s)",
        finish=finish,
        on_start=on_start,
        on_run=on_run,
        on_fail=on_fail,
    )
    return result
