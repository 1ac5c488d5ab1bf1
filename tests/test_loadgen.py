"""`crossrt loadgen`: MLPerf LoadGen's scenarios through the real library (mlcommons-loadgen), on
the session's trained LeNet5, for a fraction of a second per test; bad input; Ctrl-C.

No test asserts VALID: LoadGen's verdict depends on the machine's load. The tests check what
LoadGen was asked and what it wrote: its logs, its figures, the batches that ran, the search."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from crossrt.cli import main
from crossrt.loadgen import search

from conftest import Ran, canned, python_path, run_main

QUICK = ["--duration", "0.3", "--threads", "1"]


def _loadgen(trained, tiny_data, work: Path, runtimes: str, bounds: str) -> tuple[Path, dict, Ran]:
    """Every scenario, with LoadGen's accuracy test, in work: (work, the result, what it printed)."""
    out = run_main(
        "loadgen",
        "--model",
        str(trained / "lenet5.onnx"),
        "--data-dir",
        str(tiny_data),
        *QUICK,
        "--runtimes",
        runtimes,
        "--scenarios",
        "single-stream,multi-stream,offline,server",
        "--latency-bound",
        bounds,
        "--max-batch",
        "16",
        "--accuracy",
        "--json",
        "l.json",
        cwd=work,
    )
    assert out.code == 0, out.err
    return work, json.loads((work / "l.json").read_text()), out


@pytest.fixture(scope="module")
def served(trained, tiny_data, tmp_path_factory) -> tuple[Path, dict, Ran]:
    """Every scenario through the real LoadGen, on the null runtime: what LoadGen was asked, what it
    wrote and how crossrt reads it, without a model's time in each of its tests."""
    return _loadgen(trained, tiny_data, tmp_path_factory.mktemp("loadgen"), "null", "20")


@pytest.fixture(scope="module")
def served_for_real(trained, tiny_data, tmp_path_factory) -> tuple[Path, dict, Ran]:
    """The same under ONNX Runtime and PyTorch, at two latency bounds."""
    return _loadgen(trained, tiny_data, tmp_path_factory.mktemp("loadgen-real"), "onnxruntime,pytorch", "20,50")


def _every_scenario_ran(served, runtimes: tuple[str, ...], bounds: tuple[float, ...]) -> None:
    work, result, out = served
    assert result["kind"] == "loadgen" and result["complete"] and not result["failed"]
    runs = result["runs"]
    got = {(r["runtime"], r["scenario"], r["mode"], r["latency_bound_ms"]) for r in runs}
    for runtime in runtimes:
        for scenario in ("single-stream", "multi-stream", "offline"):
            assert (runtime, scenario, "performance", None) in got
        assert {(runtime, "server", "performance", b) for b in bounds} <= got
        assert (runtime, "offline", "accuracy", None) in got
    for r in runs:
        log = Path(work / r["log_dir"])
        assert (log / "mlperf_log_summary.txt").is_file() and (log / "mlperf_log_detail.txt").is_file()
        if r["mode"] == "performance":
            assert isinstance(r["valid"], bool) and (r["valid"] or r["reasons"]), r  # INVALID always says why
        else:
            assert r["valid"] is None  # LoadGen judges no accuracy test
        assert (r["queries"] >= 1 or r["mode"] == "accuracy") and sum(r["batches"].values()) >= 1
        assert all(1 <= int(size) <= 16 for size in r["batches"])
    for r in (r for r in runs if r["mode"] == "performance"):
        if r["scenario"] in ("single-stream", "multi-stream"):
            assert r["samples_per_s"] is None and 0 < r["latency_ms"]["p90"] <= r["latency_ms"]["max"]
            assert set(r["batches"]) == {"1" if r["scenario"] == "single-stream" else "8"}  # a query is a batch
        if r["scenario"] == "offline":
            assert r["samples_per_s"] > 0 and max(map(int, r["batches"])) == 16
        if r["scenario"] == "server":  # the row is the highest QPS found valid, else the last one tried
            valid = [t["qps"] for t in r["search"] if t["valid"]]
            assert r["search"] and r["target_qps"] == (max(valid) if valid else r["search"][-1]["qps"])
            assert r["valid"] == bool(valid) and all(t["qps"] > 0 for t in r["search"])
            offline = {(o["runtime"], o["scenario"], o["mode"]): o for o in runs}[
                r["runtime"], "offline", "performance"
            ]
            assert r["search"][0]["qps"] <= offline["samples_per_s"]  # no start above what Offline sustained


def test_every_scenario_runs_through_loadgen(served):
    _every_scenario_ran(served, ("null",), (20.0,))


@pytest.mark.slow
def test_every_scenario_runs_through_loadgen_for_every_runtime(served_for_real):
    _every_scenario_ran(served_for_real, ("onnxruntime", "pytorch"), (20.0, 50.0))


def test_server_workers_batch_together_and_torch_compile_is_not_served(trained, tiny_data, workdir):
    """Two workers share one queue: every batch they ran holds 1 to --max-batch samples (an empty
    one, taken after another worker emptied the queue, once crashed a worker and hung LoadGen)."""
    out = run_main(
        "loadgen",
        "--model",
        str(trained / "lenet5.onnx"),
        "--data-dir",
        str(tiny_data),
        *QUICK,
        "--runtimes",
        "null,torch-compile",
        "--scenarios",
        "server",
        "--workers",
        "2",
        "--max-batch",
        "4",
        "--batch-timeout-ms",
        "2",
        "--qps",
        "3000",
        "--latency-bound",
        "50",
        "--json",
        "w.json",
    )
    assert out.code == 0, out.err
    result = json.loads((workdir / "w.json").read_text())
    (run,) = result["runs"]
    assert run["target_qps"] == 3000 and run["search"] == [] and all(1 <= int(b) <= 4 for b in run["batches"])
    assert sum(int(b) * n for b, n in run["batches"].items()) == run["queries"]  # every query, in some batch
    assert [s["runtime"] for s in result["skipped"]] == ["torch-compile"] and "not run: torch-compile" in out.out


def _accuracy_is_the_runners(served, runtimes: int) -> None:
    _, result, out = served
    checks = [r for r in result["runs"] if r["mode"] == "accuracy"]
    assert len(checks) == runtimes
    for r in checks:
        assert 0 < r["accuracy"] <= 1 and r["accuracy"] == pytest.approx(r["bench_accuracy"], abs=1e-4)
    assert "LoadGen AccuracyOnly over the" in out.out


def test_loadgens_accuracy_is_bench_infers_scoring_of_the_same_runner(served):
    """LoadGen's accuracy log decoded and scored as bench-infer scores the same runner: the null
    runner's zeros pick class 0 for every image, so both are the share of class 0."""
    _accuracy_is_the_runners(served, 1)


@pytest.mark.slow
def test_loadgens_accuracy_is_bench_infers_scoring_for_every_runtime(served_for_real):
    _accuracy_is_the_runners(served_for_real, 2)


def test_what_loadgen_prints_names_its_tables_and_its_logs(served):
    _, _, out = served
    for words in (
        "LoadGen SingleStream on",
        "LoadGen Offline on",
        "the highest QPS whose p99 stays within",
        "every QPS the search tried",
        "not MLPerf-valid",
        "LoadGen's logs: results/loadgen-",
        "-logs",
    ):
        assert words in out.out, words


def test_the_tables_report_show_and_compare_read_a_loadgen_result():
    path = str(canned("loadgen.json"))
    report = run_main("report", path, "--markdown")
    assert report.code == 0 and "| loadgen |" in report.out and "server" in report.out, report.err
    assert "| cpu | offline accuracy |  |" in report.out  # not judged by LoadGen: not "INVALID"
    show = run_main("show", path)
    assert show.code == 0 and "LoadGen MultiStream on" in show.out and "LoadGen Server on" in show.out, show.err
    same = run_main("compare", path, path)
    assert same.code == 0 and "offline" in same.out, same.err


def test_a_loadgen_tests_rate_is_samples_per_second_and_none_for_a_server_that_kept_no_rate():
    """What report and compare hold one run against another by: a MultiStream query is 8 samples
    at its p99; an INVALID Server search found no rate (its last QPS tried is not one)."""
    from crossrt.columns import loadgen_rate
    from crossrt.results import LoadgenRun

    def run(scenario, valid=True, **kw):
        return LoadgenRun(
            **{
                "runtime": "onnxruntime",
                "provider": "cpu",
                "threads": 1,
                "scenario": scenario,
                "valid": valid,
                "reasons": [],
                "samples_per_s": None,
                "latency_ms": {"p90": 0.5, "p99": 2.0},
                "queries": 700,
                "batches": {},
                "log_dir": "",
                **kw,
            }
        )

    assert loadgen_rate(run("single-stream")) == 2000.0 and loadgen_rate(run("multi-stream")) == 4000.0
    assert loadgen_rate(run("offline", samples_per_s=9000.0)) == 9000.0
    assert loadgen_rate(run("server", target_qps=132.0)) == 132.0
    assert loadgen_rate(run("server", valid=False, target_qps=132.0)) is None


def test_a_figure_ended_by_crossrts_query_limit_says_so(capsys):
    """At MLPerf's 600 s, 10,000,000 queries are 16,667 QPS: a Server search valid there stopped at
    the limit, and a faster Offline runner's one query ran out before 600 s. Both are said."""
    from crossrt.results import LoadgenResult, LoadgenRun
    from crossrt.ui import serving

    def run(scenario, **kw):
        return LoadgenRun(
            **{
                "runtime": "onnxruntime",
                "provider": "cpu",
                "threads": 2,
                "scenario": scenario,
                "valid": True,
                "reasons": [],
                "latency_ms": {},
                "queries": 700,
                "batches": {},
                "log_dir": "",
                **kw,
            }
        )

    runs = [
        run("server", samples_per_s=16_600.0, target_qps=10_000_000 / 600, latency_bound_ms=5.0),
        run("offline", samples_per_s=41_000.0, valid=False),
    ]
    serving.show(LoadgenResult(model="m.onnx", dataset="d", samples=10, config={"mlperf_durations": True}, runs=runs))
    out = capsys.readouterr().out
    assert "the search stopped at the 10,000,000 queries crossrt asks of one 600 s LoadGen test" in out
    assert "Offline's one query held about the 10,000,000 queries" in out
    serving.show(LoadgenResult(model="m.onnx", dataset="d", samples=10, config={"duration": 5.0}, runs=runs))
    assert "10,000,000" not in capsys.readouterr().out  # at 5 s the limit is 2,000,000 QPS: not reached
    for config in ({"duration": "5"}, {"duration": -1}, {}):  # a file from elsewhere: shown, the note left out
        serving.show(LoadgenResult(model="m.onnx", dataset="d", samples=10, config=config, runs=runs))
        assert "LoadGen Server on m.onnx" in capsys.readouterr().out


@pytest.mark.parametrize(
    "field, value",
    [
        ("latency_ms", {"p90": -1.0}),
        ("batches", {"1": "many"}),
        ("search", [{"qps": 5.0, "valid": "yes", "p99_ms": 1.0, "reasons": []}]),
    ],
)
def test_a_damaged_loadgen_result_is_refused_in_one_line(tmp_path, field, value):
    result = json.loads(canned("loadgen.json").read_text())
    result["runs"][0][field] = value
    (tmp_path / "bad.json").write_text(json.dumps(result))
    out = run_main("show", str(tmp_path / "bad.json"))
    assert out.code == 2 and len(out.err.strip().splitlines()) == 1 and field in out.err, out.err


def test_the_server_search_finds_the_highest_valid_qps_within_five_percent():
    """search() against a system that keeps its bound up to 123 QPS and not beyond."""
    asked = []

    def test(qps):
        asked.append(qps)
        return {"valid": qps <= 123.0}

    best, trail = search(test, 40.0)
    assert 117 <= best["target_qps"] <= 123 and len(trail) == len(asked) <= 9
    best, trail = search(lambda q: {"valid": False}, 8.0)  # nothing keeps the bound
    assert best is None and trail[-1]["target_qps"] < 0.2
    # Not below the rate whose test has enough queries to judge (floor), nor above the cap.
    best, trail = search(lambda q: {"valid": False}, 800.0, floor=150.0)
    assert [t["target_qps"] for t in trail] == [800.0, 400.0, 200.0, 150.0] and best is None
    best, trail = search(lambda q: {"valid": True}, 100.0, cap=200.0)
    assert [t["target_qps"] for t in trail] == [100.0, 150.0, 200.0] and best["target_qps"] == 200.0
    # A start below the floor (a slow runner) starts at the floor, where a test can still be VALID.
    best, trail = search(lambda q: {"valid": q >= 150.0}, 20.0, floor=150.0)
    assert trail[0]["target_qps"] == 150.0 and best["target_qps"] >= 150.0
    # A start far above what the system completes goes straight down to the rate it completed at.
    best, trail = search(lambda q: {"valid": q <= 100.0, "samples_per_s": min(q, 110.0)}, 1e6)
    assert [t["target_qps"] for t in trail][:2] == [1e6, 110.0] and 95 <= best["target_qps"] <= 100


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--latency-bound", "0"], "--latency-bound: 0 ms; a bound is above 0"),
        (["--latency-bound", "-5"], "--latency-bound: -5 ms"),
        (["--qps", "1e9"], "LoadGen schedules every query of a test before it starts"),
        (["--qps", "0"], "--qps 0"),
        (["--scenarios", "stream"], "--scenarios"),
        (["--max-batch", "0"], "--max-batch"),
        (["--latency-bound", "fast"], "expected comma-separated numbers"),
    ],
)
def test_bad_input_is_one_line(capsys, trained, flags, words):
    assert main(["loadgen", "--model", str(trained / "lenet5.onnx"), *flags]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and words in err and "Traceback" not in err, err


def test_loadgen_not_installed_is_one_line(capsys, trained, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlperf_loadgen", None)  # what an environment without it imports
    assert main(["loadgen", "--model", str(trained / "lenet5.onnx")]) == 2
    err = capsys.readouterr().err
    assert "needs MLPerf LoadGen: pip install mlcommons-loadgen" in err and len(err.strip().splitlines()) == 1


def test_a_model_without_a_batch_dimension_is_refused_in_one_line(capsys, tmp_path):
    import onnx
    from onnx import TensorProto as T
    from onnx import helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", T.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", T.FLOAT, [1, 3])],
    )
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), tmp_path / "relu.onnx"
    )
    flags = ["--runtimes", "onnxruntime"]
    assert main(["loadgen", "--model", str(tmp_path / "relu.onnx"), *flags]) == 2
    err = capsys.readouterr().err
    assert "input x float32[1, 3]: LoadGen's queries are batched along the first dimension" in err, err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_ctrl_c_keeps_the_configurations_that_finished(trained, tiny_data, tmp_path):
    """A real SIGINT once the first configuration's tests are done: exit 130, and the partial
    result holds them; the LoadGen test under way (in a child process) ends at once."""
    cmd = [
        sys.executable,
        "-m",
        "crossrt",
        "loadgen",
        "--model",
        str(trained / "lenet5.onnx"),
        "--data-dir",
        str(tiny_data),
        "--threads",
        "1",
        "--runtimes",
        "onnxruntime,pytorch",
        "--scenarios",
        "single-stream",
        "--duration",
        "0.3",
        "--json",
        "l.json",
    ]
    env = {**os.environ, "PYTHONPATH": python_path(), "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if "SingleStream:" in line:  # the first configuration finished
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    result = json.loads((tmp_path / "l.json").read_text())
    assert result["complete"] is False and [r["runtime"] for r in result["runs"]][:1] == ["onnxruntime"]


def test_a_test_that_fails_keeps_the_tests_that_finished_before_it(capsys, trained, tiny_data, workdir, monkeypatch):
    """A runtime error in the Server test (injected; the configuration runs in this process so
    that the injection reaches it) ends that configuration with its reason, exit 1, and keeps its
    SingleStream test, which ran first through the real LoadGen."""
    import crossrt.loadgen
    from crossrt.sut import SUT

    real = SUT.test

    def server_fails(self, scenario, *a, **k):
        if scenario == "Server":
            raise RuntimeError("the runtime failed mid-test")
        return real(self, scenario, *a, **k)

    monkeypatch.setattr(SUT, "test", server_fails)
    monkeypatch.setattr(crossrt.loadgen, "isolated", lambda fn: fn())
    assert (
        main(
            [
                "loadgen",
                "--model",
                str(trained / "lenet5.onnx"),
                "--data-dir",
                str(tiny_data),
                *QUICK,
                "--runtimes",
                "onnxruntime",
                "--scenarios",
                "single-stream,server",
                "--qps",
                "100",
                "--json",
                "f.json",
            ]
        )
        == 1
    )
    out = capsys.readouterr()
    assert "1 configuration(s) failed" in out.err and "the runtime failed mid-test" in out.out
    result = json.loads((workdir / "f.json").read_text())
    assert [r["scenario"] for r in result["runs"]] == ["single-stream"] and result["runs"][0]["valid"] is not None
    assert [f["reason"] for f in result["failed"]] == ["RuntimeError: the runtime failed mid-test"]


def test_a_loadgen_setting_comes_from_a_user_conf(trained, tiny_data, tmp_path):
    """--user-conf is read by LoadGen's own FromConfig: a setting crossrt has no flag for (MultiStream's
    samples per query, SingleStream's query count) reaches the test, changes what runs (queries of
    4 samples, each one batch), and is recorded with the test; report's rate counts 4 per query."""
    from crossrt.columns import loadgen_rate
    from crossrt.files import load_result

    conf = tmp_path / "user.conf"
    conf.write_text("# MLPerf's form\n*.MultiStream.samples_per_query = 4\nlenet5.SingleStream.min_query_count = 300\n")
    out = run_main(
        "loadgen", "--model", str(trained / "lenet5.onnx"), "--data-dir", str(tiny_data), *QUICK,
        "--runtimes", "null", "--scenarios", "single-stream,multi-stream", "--max-batch", "16",
        "--user-conf", str(conf), "--json", "l.json", cwd=tmp_path,
    )  # fmt: skip
    assert out.code == 0, out.err
    saved = json.loads((tmp_path / "l.json").read_text())
    runs = {r["scenario"]: r for r in saved["runs"]}
    multi, single = runs["multi-stream"], runs["single-stream"]
    assert multi["user_settings"] == {"multi_stream_samples_per_query": 4} and multi["samples_per_query"] == 4
    assert set(multi["batches"]) == {"4"}  # LoadGen issued queries of 4 samples
    assert single["user_settings"]["min_query_count"] == 300 and single["queries"] >= 300
    assert saved["config"]["user_conf"] == str(conf) and "latencies per query of 4 samples" in out.out
    (run,) = [r for r in load_result(tmp_path / "l.json").runs if r.scenario == "multi-stream"]
    assert loadgen_rate(run) == pytest.approx(4 * 1e3 / run.latency_ms["p99"])


def test_a_runtime_option_reaches_every_loadgen_test_and_is_recorded(trained, tiny_data, tmp_path):
    """--runtime-option is bench-infer's: checked before any work, set on the runners LoadGen's
    tests drive, recorded with each test and said under the tables."""
    model, data = str(trained / "lenet5.onnx"), str(tiny_data)
    out = run_main(
        "loadgen", "--model", model, "--data-dir", data, *QUICK, "--runtimes", "onnxruntime",
        "--scenarios", "single-stream", "--runtime-option", "onnxruntime.graph_optimization=disabled",
        "--json", "l.json", cwd=tmp_path,
    )  # fmt: skip
    assert out.code == 0, out.err
    (run,) = json.loads((tmp_path / "l.json").read_text())["runs"]
    assert run["options"]["graph_optimization"] == "disabled" and run["options"]["inter_op_threads"] == 1
    assert "runtime options: onnxruntime.graph_optimization=disabled" in out.out
    bad = run_main("loadgen", "--model", model, "--runtime-option", "onnxruntime.nosuch=1", cwd=tmp_path)
    assert bad.code == 2 and "onnxruntime has no such option" in bad.err and "Traceback" not in bad.err, bad.err


@pytest.mark.parametrize(
    "text, says",
    [
        ("*.SingleStream.no_such_key = 5\n", "'*.SingleStream.no_such_key = 5' sets nothing: LoadGen reads no such"),
        ("not a setting at all\n", "LoadGen's FromConfig cannot read it (code"),
    ],
)
def test_a_user_conf_loadgen_cannot_read_is_one_line(trained, tmp_path, text, says):
    conf = tmp_path / "user.conf"
    conf.write_text(text)
    model = str(trained / "lenet5.onnx")
    out = run_main("loadgen", "--model", model, "--scenarios", "single-stream", "--user-conf", str(conf), cwd=tmp_path)
    assert out.code == 2 and f"--user-conf {conf}: {says}" in out.err and "Traceback" not in out.err, out.err
    missing = run_main("loadgen", "--model", str(trained / "lenet5.onnx"), "--user-conf", "nope.conf", cwd=tmp_path)
    assert missing.code == 2 and "nope.conf" in missing.err and len(missing.err.strip().splitlines()) == 1


def test_loadgen_says_when_a_test_will_run_longer_than_asked(trained, tmp_path):
    """LoadGen runs a Server test for at least its min_query_count (100) queries: at --qps 0.5 a
    --duration 1 test lasts about 200 s, which crossrt says (a user.conf's min_query_count counts);
    --mlperf-durations beside another --duration is refused, not silently replaced by 600 s."""
    from crossrt.config import LoadgenConfig

    cfg = LoadgenConfig(model=trained / "lenet5.onnx", qps=0.5, duration=1)
    assert "lasts about 200.0 s at 0.5 QPS, not the 1 s asked" in cfg.server_overrun({})
    ten = LoadgenConfig(model=trained / "lenet5.onnx", qps=0.5, duration=10)
    assert ten.server_overrun({"min_query_count": 5}) is None and "200.0 s" in ten.server_overrun({})
    assert LoadgenConfig(model=trained / "lenet5.onnx", qps=200, duration=1).server_overrun({}) is None
    out = run_main("loadgen", "--model", str(trained / "lenet5.onnx"), "--mlperf-durations", "--duration", "1")
    assert out.code == 2 and "--duration 1: --mlperf-durations runs every test for MLPerf's 600 s" in out.err


def test_an_output_without_a_row_per_sample_is_refused_not_read_past_its_end(tmp_path):
    """Each LoadGen response points into its sample's row of the batch's first output: a model whose
    output does not grow with the batch (one row for a batch of 8) would hand LoadGen pointers past
    the array. The SUT refuses it, and the test ends with that reason, through the real LoadGen."""
    from crossrt.errors import ModelError
    from crossrt.runtimes.base import Runner
    from crossrt.sut import SUT

    def one_row(feeds):
        return Runner(lambda i: None, lambda i: [np.zeros((1, 10), np.float32)], 0.0, ["fake"], 1)

    sut = SUT(one_row, {"input": np.zeros((64, 1, 28, 28), np.float32)}, max_batch=8)
    settings = {"min_duration_ms": 10, "offline_expected_qps": 100, "performance_sample_count_override": 64}
    with pytest.raises(ModelError, match=r"first output is \[1, 10\] for a batch of 8: LoadGen needs a row per sample"):
        sut.test("Offline", settings, tmp_path / "logs")
