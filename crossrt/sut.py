"""The system under test that MLPerf LoadGen drives: crossrt's runners behind LoadGen's callbacks.

LoadGen (mlcommons/inference `loadgen/`, the `mlcommons-loadgen` package) issues the queries, at
the times its scenario says, and measures each sample from its issue to its completion; the SUT
only runs them. This one runs them on a runner of crossrt.runtimes, built over one set of input
buffers per batch size (1..max_batch): a batch is gathered into the buffers of its size and run
there, so every runtime sees a plain batch of the model's inputs, as in bench-infer.

- SingleStream and MultiStream: LoadGen has one query out at a time; it runs at once, in LoadGen's
  own thread (one batch per query, unless max_batch is smaller than MultiStream's 8 samples), with
  no queue or thread switch to add to its latency.
- Offline: one query of every sample; it runs in batches of max_batch.
- Server: queries arrive at random (Poisson) times. They wait in a queue, and each of `workers`
  threads takes what waits, up to max_batch samples, once the oldest has waited at most
  batch_timeout since it arrived for others to join it (what Triton's dynamic batcher does; 0,
  Triton's default too, takes what waits at once).
  Each worker has a runner of its own (an ONNX Runtime session, a PyTorch model): ONNX Runtime and OpenVINO release
  the GIL while they run, so workers overlap; PyTorch releases it inside its kernels but holds it
  for the Python between them, so its workers overlap less.

LoadGen's "fast" SUT is used: it hands over plain lists of response ids and sample indices, not
a Python object per sample (less Python in every query's latency).
A LoadGen test's figures are LoadGen's own, read back from its detail log (`:::MLLOG` JSON lines).
"""

from __future__ import annotations

import collections
import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from .errors import ConfigError, CrossrtError, ModelError


def loadgen():
    """The mlperf_loadgen module, or a one-line error saying how to install it."""
    try:
        import mlperf_loadgen
    except ImportError:
        raise ConfigError(
            "crossrt loadgen needs MLPerf LoadGen: pip install mlcommons-loadgen (make setup installs it)"
        ) from None
    return mlperf_loadgen


class SUT:
    """Runners over per-size buffers of a model's inputs, fed from a pool of samples (pool[name][i]
    is input `name` of sample i, every input's first dimension the batch); make_runner(feeds)
    builds a runner over a list of feeds (crossrt.runtimes)."""

    def __init__(self, make_runner, pool: dict[str, np.ndarray], max_batch: int, workers: int = 1):
        self.lg, self.pool, self.max_batch = loadgen(), pool, max_batch
        self.n = len(next(iter(pool.values())))  # samples in the pool
        self.inputs, self.runners = [], []
        for _ in range(workers):  # each worker owns its buffers and its runner
            # Untouched until a batch of their size runs: memory only for the sizes used.
            feeds = [
                {name: np.empty((b, *x.shape[1:]), x.dtype) for name, x in pool.items()}
                for b in range(1, max_batch + 1)
            ]
            self.inputs.append(feeds)  # the same arrays, by batch size
            self.runners.append(make_runner(feeds))
        self.batches: collections.Counter = collections.Counter()
        self.counting = threading.Lock()  # workers count their batches at once
        self.error: BaseException | None = None  # the first batch that failed; the test still ends

    def load(self, worker: int, indices) -> int:
        """Gather the samples at indices into the worker's buffers of their count; that count."""
        n = len(indices)
        for name, buf in self.inputs[worker][n - 1].items():
            if n == 1:
                buf[0] = self.pool[name][indices[0]]
            else:
                np.take(self.pool[name], indices, axis=0, out=buf)
        return n

    def run(self, worker: int, ids: list[int], indices: list[int]) -> None:
        """Run the samples (LoadGen's response ids and sample indices) as one batch on a worker's
        runner; complete them. Kept lean: LoadGen's latency of a query includes all of it. A
        batch that fails is completed empty (so that LoadGen can end its test) and its error kept
        for test() to raise."""
        lg, n = self.lg, len(ids)
        try:
            if self.error is not None:
                raise self.error
            self.load(worker, indices)
            out = np.ascontiguousarray(self.runners[worker].outputs(n - 1)[0], dtype=np.float32)
            if out.ndim == 0 or out.shape[0] != n:  # each response points into its own row of out
                raise ModelError(
                    f"the model's first output is {list(out.shape)} for a batch of {n}: LoadGen needs a row per sample"
                )
        except Exception as e:
            self.error = self.error or e
            lg.QuerySamplesComplete([lg.QuerySampleResponse(i, 0, 0) for i in ids])
            return
        with self.counting:
            self.batches[n] += 1
        pointer, size = out.ctypes.data, out[0].nbytes  # LoadGen copies the bytes it logs before returning
        lg.QuerySamplesComplete([lg.QuerySampleResponse(i, pointer + k * size, size) for k, i in enumerate(ids)])

    # ------------------------------------------------------------------ one LoadGen test

    def test(
        self, scenario: str, settings: dict, log_dir: Path, timeout_s: float = 0.0, accuracy: bool = False
    ) -> dict:
        """One LoadGen test of scenario (LoadGen's name: SingleStream, MultiStream, Server,
        Offline) with TestSettings fields `settings`; its logs in log_dir; its figures (figures())
        with the batch sizes that ran."""
        self.batches.clear()
        self.error = None
        queue: collections.deque = collections.deque()  # (arrival time, response id, sample index), oldest first
        ready, stop = threading.Condition(), threading.Event()

        def issue(ids: list[int], indices: list[int]):  # LoadGen's fast SUT: plain lists, no objects
            if scenario == "Server":
                now = time.perf_counter()
                with ready:
                    queue.extend(zip((now,) * len(ids), ids, indices))
                    ready.notify()
            else:  # one query out at a time, or Offline's one query of everything: run it here
                for i in range(0, len(ids), self.max_batch):
                    self.run(0, ids[i : i + self.max_batch], indices[i : i + self.max_batch])

        def worker(k: int):
            """Take what waits once max_batch samples wait, or once the oldest has waited
            timeout_s since it arrived; every check is made again after each wait, since another
            worker may have taken the samples meanwhile."""
            while True:
                with ready:
                    while True:
                        if queue:
                            left = queue[0][0] + timeout_s - time.perf_counter()
                            if len(queue) >= self.max_batch or left <= 0:
                                break
                            ready.wait(left)
                        elif stop.is_set():
                            return
                        else:
                            ready.wait(0.05)
                    batch = [queue.popleft() for _ in range(min(self.max_batch, len(queue)))]
                self.run(k, [b[1] for b in batch], [b[2] for b in batch])

        threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(len(self.runners))]
        if scenario == "Server":
            for t in threads:
                t.start()

        def end():  # the workers stop before LoadGen's SUT goes
            stop.set()
            with ready:
                ready.notify_all()
            for t in threads if scenario == "Server" else ():
                t.join()

        detail = run_test(issue, scenario, settings, log_dir, self.n, accuracy, end)
        if self.error is not None:
            raise self.error
        return figures(detail, scenario, dict(sorted(self.batches.items())))


CUT = "LoadGen's log ends before the test does: it was cut short (a full disk, or a file-size limit)"
# What LoadGen logs last in each mode's detail log: a log without it was cut short.
LAST_KEY = {False: "num_errors", True: "power_end"}  # accuracy: no summary of results is logged

# TestSettings fields a user.conf does not set: the test's own scenario and mode.
NOT_USER_SETTINGS = ("scenario", "mode")


def _from_config(text: str, model: str, scenario: str) -> tuple[dict, int]:
    """What LoadGen's TestSettings.FromConfig makes of a user.conf holding text: every field (but
    scenario and mode), and its return code (0: read)."""
    lg = loadgen()
    s = lg.TestSettings()
    s.scenario = getattr(lg.TestScenario, scenario)
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "user.conf"
        conf.write_text(text)
        code = s.FromConfig(str(conf), model, scenario, 1)  # 1: a user.conf
    names = (n for n in dir(s) if not n.startswith("_") and n not in NOT_USER_SETTINGS)
    return {n: v for n in names if not callable(v := getattr(s, n))}, code


def user_settings(path: Path, model: str, scenario: str) -> dict:
    """The TestSettings fields the user.conf at path sets for model and scenario (LoadGen's name),
    read by LoadGen's own FromConfig: the fields where what it makes of the file differs from what
    it makes of no user settings at all (FromConfig applies mlperf.conf's rules first, and those
    are crossrt's to set). A file FromConfig cannot read is a ConfigError; so is a line for this
    model and scenario that changes nothing, as a key LoadGen does not know does (it ignores it)."""
    text = path.read_text(errors="replace")
    # LoadGen applies its built-in mlperf.conf at the first FromConfig of a process only: a first,
    # empty read takes that, so that what the file sets is told apart from mlperf.conf's rules.
    _from_config("", model, scenario)
    base, _ = _from_config("", model, scenario)
    mine, code = _from_config(text, model, scenario)
    if code != 0:
        raise ConfigError(
            f"--user-conf {path}: LoadGen's FromConfig cannot read it (code {code}: a line that is not "
            f"MODEL.SCENARIO.KEY = VALUE, or a value that is not a number)"
        )
    for line in text.splitlines():
        target = line.split("#")[0].split("=")[0].strip().split(".")
        if len(target) == 3 and target[0] in ("*", model) and target[1] == scenario:
            alone, _ = _from_config(line + "\n", model, scenario)
            if alone == base:
                raise ConfigError(
                    f"--user-conf {path}: {line.strip()!r} sets nothing: LoadGen reads no such key for "
                    f"{scenario}, or it is the value LoadGen has already"
                )
    return {n: v for n, v in mine.items() if v != base[n]}


def run_test(
    issue, scenario: str, settings: dict, log_dir: Path, samples: int, accuracy: bool = False, end=lambda: None
) -> dict:
    """One LoadGen test of scenario (LoadGen's name) with TestSettings fields `settings` over a
    fast SUT whose issue(ids, indices) answers the queries, and a pool of `samples` samples held
    in memory; its logs in log_dir; its detail log (detail_log). end() runs when the test ends or
    fails, before LoadGen's SUT is destroyed."""
    lg = loadgen()
    s = lg.TestSettings()
    s.scenario = getattr(lg.TestScenario, scenario)
    s.mode = lg.TestMode.AccuracyOnly if accuracy else lg.TestMode.PerformanceOnly
    for key, value in settings.items():
        setattr(s, key, value)
    log = lg.LogSettings()
    log.log_output.outdir = str(log_dir)
    log.log_output.copy_summary_to_stdout = False
    log.enable_trace = False
    log_dir.mkdir(parents=True, exist_ok=True)
    sut = lg.ConstructFastSUT(issue, lambda: None)
    qsl = lg.ConstructQSL(samples, samples, lambda ids: None, lambda ids: None)
    try:
        lg.StartTestWithLogSettings(sut, qsl, s, log)
    finally:
        end()
        lg.DestroyQSL(qsl)
        lg.DestroyFastSUT(sut)
    path = log_dir / "mlperf_log_detail.txt"
    detail = detail_log(path)
    if LAST_KEY[accuracy] not in detail:  # LoadGen's writes fail without a word
        raise CrossrtError(f"{path}: {CUT}")
    return detail


def figures(detail: dict, scenario: str, batches: dict) -> dict:
    """A LoadGen test's figures as crossrt keeps them (crossrt.results.LoadgenRun's), from its
    detail log: LoadGen's verdict (None in accuracy mode: none is given), its reasons when
    INVALID, throughput, latency percentiles in ms (per query for MultiStream)."""
    q = scenario == "MultiStream"  # LoadGen's per-query figures: "mean_query", "99.00_percentile_per_query"
    ms = {
        name: detail.get(f"result_{key}{'_query' if q and len(key) < 5 else '_per_query' if q else ''}_latency_ns")
        for name, key in (
            ("mean", "mean"),
            ("p50", "50.00_percentile"),
            ("p90", "90.00_percentile"),
            ("p99", "99.00_percentile"),
            ("max", "max"),
        )
    }
    unmet = [
        why
        for key, why in (
            ("result_min_duration_met", "min duration not met"),
            ("result_min_queries_met", "min queries not met"),
            ("result_perf_constraints_met", "latency bound not met"),
            ("early_stopping_met", "early stopping not met"),
        )
        if detail.get(key) is False
    ]
    reason = detail.get("result_invalid_reason")
    rate = {"Offline": "result_samples_per_second", "Server": "result_completed_samples_per_sec"}.get(scenario)
    valid = detail["result_validity"] == "VALID" if "result_validity" in detail else None  # None: accuracy mode
    return {
        "valid": valid,
        "reasons": unmet + ([str(reason)] if reason else []),
        "samples_per_s": detail.get(rate) if rate else None,
        "latency_ms": {k: v / 1e6 for k, v in ms.items() if isinstance(v, (int, float))},
        "queries": int(detail.get("result_query_count") or 0),
        "early_stopping": detail.get("early_stopping_result"),
        "batches": {str(k): v for k, v in batches.items()},
    }


def detail_log(path: Path) -> dict:
    """LoadGen's detail log as {key: value} (a key logged twice keeps its last value)."""
    out = {}
    for line in Path(path).read_text(errors="replace").splitlines():
        if line.startswith(":::MLLOG "):
            try:
                entry = json.loads(line[len(":::MLLOG ") :])
            except ValueError:
                continue
            out[entry.get("key")] = entry.get("value")
    return out


def accuracy_log(path: Path, labels: np.ndarray, classes: int) -> float:
    """The accuracy of LoadGen's accuracy log (every sample's response, hex-encoded float32 logits)."""
    try:
        entries = json.loads(Path(path).read_text())
    except ValueError:
        raise CrossrtError(f"{path}: {CUT}") from None
    right = [
        int(np.frombuffer(bytes.fromhex(e["data"]), np.float32)[:classes].argmax() == labels[e["qsl_idx"]])
        for e in entries
    ]
    return sum(right) / len(right) if right else 0.0
