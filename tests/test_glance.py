"""The answer at a glance: a verdict per setting, results that know their model and run, report and
compare that keep models apart and can gate CI, `show` at any width, nothing dropped at 80 columns,
honest training figures, fetch that says what it did, plots that merge runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from crossrt import fetch as fetch_module
from crossrt.bench_infer import prepare, run_bench
from crossrt.cli import main
from crossrt.config import BenchConfig, DataConfig
from crossrt.fetch import resolve
from crossrt.files import load_result
from crossrt.ui.plots import thread_series

from conftest import canned, run_main


@pytest.fixture
def bench(fresh_bench):
    """The session's bench-infer run at 1 and 2 threads, printed at 80 columns: (work folder, stdout, result file)."""
    return fresh_bench.parent, (fresh_bench.parent / "stdout.txt").read_text(), fresh_bench


def test_a_verdict_per_setting_in_words_and_in_the_json(bench):
    work, stdout, path = bench
    result = json.loads(path.read_text())
    assert [(v["threads"], v["batch_size"]) for v in result["verdicts"]] == [(1, 100), (2, 100)]
    for v in result["verdicts"]:
        fast = max((r for r in result["runs"] if r["threads"] == v["threads"]), key=lambda r: r["samples_per_s"])
        label = fast["runtime"] + (" no-spin" if fast["spin"] is False else "")
        assert v["pick"] == label and v["ratio"] >= 1 and isinstance(v["sure"], bool)
        assert ("beyond this run's noise" if v["sure"] else "within this run's noise") in v["text"]
        assert f"verdict: {v['text']}" in " ".join(stdout.split())


def test_results_name_their_model_and_run_and_the_file_carries_the_run(bench, trained):
    work, _, path = bench
    result = json.loads(path.read_text())
    train = json.loads((trained / "lenet5.train.json").read_text())
    assert result["model_info"]["weights_sha256"] == train["weights_sha256"]  # one model, known both ways
    assert re.fullmatch(r"[0-9a-f]{8}", result["run_id"])
    (saved,) = (work / "results").glob("bench-infer-*.json")
    assert saved.name.endswith(f"-{result['run_id']}.json") and saved.name[12:27] == result["created"][:19].replace(
        "-", ""
    ).replace(":", "").replace("T", "-")


def test_nothing_is_dropped_at_80_columns(bench):
    _, stdout, _ = bench
    lines = [ln for ln in stdout.splitlines() if set(ln) & set("┃│┏└┡━─")]
    assert max(map(len, lines)) <= 80
    text = " ".join(stdout.split())
    for heading in (
        "img/s",
        "% peak",
        "CPU s /",
        "p50/p90/p99",
        "95% CI",
        "GFLOP/s",
        "create",
        "1st run",
        "accuracy",
        "vs PyTorch",
    ):
        assert heading in text, heading  # in one part of the table or the next (continued)


def test_show_lays_a_result_out_again_wide_or_with_some_columns(bench):
    work, _, path = bench
    wide = run_main("show", str(path), "--wide", columns=80)
    assert wide.code == 0 and "(continued)" not in wide.out and "verdict:" in wide.out
    assert max(len(ln) for ln in wide.out.splitlines()) > 120  # as wide as it needs
    some = run_main("show", str(path), "--columns", "img/s,cpu s / 1k img", columns=80)
    header = " ".join(ln for ln in some.out.splitlines() if ln.startswith("┃"))
    assert "img/s" in header and "CPU s /" in header and "% peak" not in header and "p50" not in header
    unknown = run_main("show", str(path), "--columns", "img/s,nosuch", columns=80)
    assert unknown.code == 2 and unknown.out == "" and len(unknown.err.strip().splitlines()) == 1, unknown
    assert "--columns nosuch: no table of" in unknown.err and "img/s" in unknown.err


def _copy(path: Path, tmp_path: Path, name: str, speed: float = 1.0, **change) -> Path:
    data = json.loads(path.read_text())
    for r in data["runs"]:
        r["pass_times_s"] = [t / speed for t in r["pass_times_s"]]
        r["samples_per_s"] *= speed
        r["ci95"] = [c * speed for c in r["ci95"]]
    data.update(change)
    (tmp_path / name).write_text(json.dumps(data))
    return tmp_path / name


def test_compare_refuses_two_models_unless_asked(bench, tmp_path, capsys):
    _, _, path = bench
    other = json.loads(path.read_text())
    other["model_info"].update(weights_sha256="f" * 64, name="mlp.onnx")
    (tmp_path / "other.json").write_text(json.dumps(other))
    assert main(["compare", str(path), str(tmp_path / "other.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "measured different models" in err and "--allow-different-models" in err
    assert main(["compare", str(path), str(tmp_path / "other.json"), "--allow-different-models"]) == 0


def test_compare_matches_a_row_only_with_the_same_models_row(tmp_path):
    """Within a suite each mode has its model: a suite against itself matches every row, and against
    a copy whose two modes' models are swapped (the same set of models, so no refusal) only the
    sweep's and ranks' rows, whose models are the same; the 1- and 2-rank rows never merge."""
    from crossrt.compare import compare
    from crossrt.files import load_result

    data = json.loads(canned("suite.json").read_text())
    one, two = data["modes"]
    for a, b in ((one["train"], two["train"]), (one["bench"]["model_info"], two["bench"]["model_info"])):
        a["weights_sha256"], b["weights_sha256"] = b["weights_sha256"], a["weights_sha256"]
    (tmp_path / "swapped.json").write_text(json.dumps(data))
    suite = load_result(canned("suite.json"))
    every = 2 * (1 + 2) + 3 + 4  # 2 modes x (training, 2 runtimes); 3 rank runs; the sweep: 2 runtimes x 2 threads
    assert len(compare(suite, suite)[0]) == every
    assert len(compare(suite, load_result(tmp_path / "swapped.json"))[0]) == every - 2 * 3


def test_fail_if_slower_gates_both_ways(bench, tmp_path, capsys):
    _, _, path = bench
    slower, same = _copy(path, tmp_path, "slower.json", 0.5), _copy(path, tmp_path, "same.json", 1.0)
    assert main(["compare", str(path), str(slower), "--fail-if-slower", "5"]) == 1
    assert "slower than A by more than 5% (beyond the noise" in capsys.readouterr().err
    assert main(["compare", str(path), str(same), "--fail-if-slower", "5"]) == 0
    assert main(["compare", str(path), str(slower), "--fail-if-slower", "60"]) == 0  # 0.5x is not 60% slower
    assert main(["compare", str(path), str(slower)]) == 0  # no gate asked: exit 0, the table says slower


def test_fail_if_slower_judges_loadgen_rows_on_their_ratio(tmp_path, capsys):
    """LoadGen keeps no repeats, so its rows have no interval: the gate holds their ratio to the
    threshold (a B 10x slower fails), says it did, and passes the same file."""
    data = json.loads(canned("loadgen.json").read_text())
    for r in data["runs"]:
        r["samples_per_s"] = r["samples_per_s"] and r["samples_per_s"] / 10
        r["target_qps"] = r["target_qps"] and r["target_qps"] / 10
        r["latency_ms"] = {k: 10 * v for k, v in r["latency_ms"].items()}
    (tmp_path / "slow.json").write_text(json.dumps(data))
    a, b = str(canned("loadgen.json")), str(tmp_path / "slow.json")
    assert main(["compare", a, b, "--fail-if-slower", "5"]) == 1
    said = capsys.readouterr()
    assert "without an interval: --fail-if-slower judges their ratio alone" in said.out
    assert "slower than A by more than 5%" in said.err and "LoadGen" in said.err and "0.100x" in said.err
    assert main(["compare", a, a, "--fail-if-slower", "5"]) == 0


def test_report_groups_repeated_runs_and_names_models_and_runs(bench, trained, tmp_path, capsys):
    _, _, path = bench
    again = _copy(path, tmp_path, "again.json", 2.0, run_id="0badc0de")
    assert main(["report", str(path), str(again), str(trained / "lenet5.train.json"), "--markdown"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [dict(zip(head, (c.strip() for c in ln.strip("|").split("|")))) for ln in lines[2:]]
    bench_rows = [r for r in rows if r["kind"] == "bench-infer"]
    assert len(bench_rows) == len(json.loads(path.read_text())["runs"]) and all(
        r["n"] == "2" and "0badc0de" in r["run"] for r in bench_rows
    )
    assert all(r["model"].startswith("lenet5.onnx ") for r in bench_rows)
    assert all(re.fullmatch(r"\d+\.\d\d%", r["accuracy"]) for r in rows)  # a percentage, not 0.8435
    (train,) = [r for r in rows if r["kind"] == "train"]
    # two epochs leave one steady epoch: its rate, with no interval, and the report says why
    assert train["n"] == "1" and "ci95" not in train and train["unstable_cause"].startswith("one repeat only")


def test_an_unstable_baseline_is_marked_where_a_ratio_uses_it(bench, tmp_path):
    _, _, path = bench
    data = json.loads(path.read_text())
    for r in data["runs"]:
        r["stable"], r["unstable_cause"] = (False, "repeats vary by 30%") if r["runtime"] == "pytorch" else (True, None)
    data["verdicts"] = []  # worked out again on reading
    (tmp_path / "shaky.json").write_text(json.dumps(data))
    out = run_main("show", str(tmp_path / "shaky.json"))
    text = " ".join(out.out.split())
    assert "x?" in text and "?: the PyTorch row it divides by is unstable" in text
    assert "unstable, so take the ratio with care: pytorch" in text


def test_training_figures_say_what_they_cover(tiny_data, workdir):
    quick = ("train", "--data-dir", str(tiny_data), "--batch-size", "60", "--threads", "1", "--no-export")
    one = run_main(*quick, "--epochs", "1", "--json", "one.json")
    assert one.code == 0, one.err
    assert "epoch 1 only, warm-up included" in " ".join(one.out.split())
    three = run_main(*quick, "--epochs", "3", "--out", "three", "--json", "three.json")
    run = json.loads((workdir / "three.json").read_text())
    low, high = run["train_ci95"]
    assert three.code == 0 and low <= run["steady_images_per_s"] <= high  # the figure inside its interval
    assert f"{run['steady_images_per_s']:,.0f} img/s" in three.out


def test_bench_reports_its_progress_configuration_by_configuration(trained, tiny_data, workdir):
    cfg = BenchConfig(
        model=trained / "lenet5.onnx", threads=(1, 2), min_time=0, min_repeats=1, data=DataConfig(data_dir=tiny_data)
    )
    seen = []
    run_bench(cfg, resolve(cfg.data), prepare(cfg), on_start=lambda row, k, n: seen.append((row.runtime, k, n)))
    assert seen == [("onnxruntime", 0, 4), ("onnxruntime", 1, 4), ("pytorch", 2, 4), ("pytorch", 3, 4)]


def test_fetch_says_what_the_system_has_and_leaves_no_empty_folder(tiny_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(fetch_module.SYSTEM_DIRS, "fashion-mnist", (tiny_data,))
    monkeypatch.setitem(fetch_module.SYSTEM_DIRS, "mnist", ())
    assert main(["fetch", "fashion-mnist"]) == 0
    assert (
        capsys.readouterr().out.strip() == f"fashion-mnist: {tiny_data} (installed by the system: nothing to download)"
    )
    monkeypatch.setenv("CROSSRT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CROSSRT_MIRROR", "http://127.0.0.1:9/")  # nothing listens there
    assert main(["fetch", "mnist"]) == 2
    err = capsys.readouterr().err
    assert (
        "(offline? train, export, quantize and bench-infer take any folder of the four IDX files: --data-dir DIR)"
        in " ".join(err.split())
    )
    assert not (tmp_path / "cache" / "mnist").exists()


def test_plots_merge_the_runs_of_one_configuration(bench, tmp_path):
    _, _, path = bench
    again = _copy(path, tmp_path, "again.json", 1.5, run_id="0badc0de")
    series = thread_series([load_result(path), load_result(again)])
    assert set(series) == {"onnxruntime", "pytorch"} and set(series["onnxruntime"]) == {
        "batch 100",
        "batch 100 no-spin",
    }
    assert {t: len(runs) for t, runs in series["onnxruntime"]["batch 100"].items()} == {1: 2, 2: 2}
