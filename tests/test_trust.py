"""Numbers you can trust: stability, comparison, provenance, terminals, the peak, and what new
users ran into (an offline model, the resume hint, a stale model, paths, limits, the version)."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crossrt import __version__
from crossrt.cli import launcher, main
from crossrt.compare import compare, load_results, merge, to_markdown
from crossrt.files import load_result
from crossrt.outcome import resume_command
from crossrt.peak import measured_peak
from crossrt.system import cpu_count
from crossrt.timing import stability
from crossrt.ui.plots import run_name

from conftest import ROOT, python_path, run_cli, run_main, write_dataset


def one_line_2(capsys, argv) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and len(captured.err.strip().splitlines()) == 1, captured.err
    return captured.err


# ---------------------------------------------------------------------------- stability and comparison


def test_stability_rules():
    steady = stability([1.0, 1.01, 0.99, 1.0], 1000)
    assert steady.stable and steady.cv < 0.025 and steady.ci95[0] <= 1000 <= steady.ci95[1]
    noisy = stability([1.0, 1.3, 0.8, 1.1], 1000, noise_hint="4 threads on 2 cores")
    assert not noisy.stable and "4 threads on 2 cores" in noisy.cause and noisy.cv > 0.1
    assert "one repeat only" in stability([1.0], 1000).cause
    assert "stopped before" in stability([1.0, 1.0], 1000, rules_met=False).cause


@pytest.fixture
def bench_json(fresh_bench) -> Path:
    """The session's bench-infer run: 1 and 2 threads, spinning and not, at least 5 passes, at 80 columns."""
    return fresh_bench


def test_rows_carry_samples_spread_verdict_and_cpu_cost(bench_json):
    runs = json.loads(bench_json.read_text())["runs"]
    assert [(r["runtime"], r["threads"], r["spin"]) for r in runs] == [
        ("onnxruntime", 1, True),
        ("onnxruntime", 1, False),
        ("onnxruntime", 2, True),
        ("onnxruntime", 2, False),
        ("pytorch", 1, None),
        ("pytorch", 2, None),
    ]
    for r in runs:
        assert len(r["pass_times_s"]) * r["passes_per_repeat"] == r["passes"] and len(r["pass_times_s"]) >= 5
        assert r["ci95"][0] <= r["samples_per_s"] <= r["ci95"][1]
        assert isinstance(r["stable"], bool) and r["cpu_s_per_1k"] > 0


def test_compare_a_run_with_itself_and_with_a_faster_one(bench_json, tmp_path):
    result = load_result(bench_json)
    rows, only_a, only_b = compare(result, result)
    assert len(rows) == 6 and only_a == only_b == 0
    assert all(r["ratio"] == 1.0 and r["verdict"] == "inconclusive" for r in rows)
    # Twice as fast, on repeats that spread by 2% (the measured ones spread as much as the
    # machine's load makes them: the verdict's logic is checked here, not this machine's noise).
    steady, faster = json.loads(bench_json.read_text()), json.loads(bench_json.read_text())
    for r, f in zip(steady["runs"], faster["runs"]):
        mean = sum(r["pass_times_s"]) / len(r["pass_times_s"])
        r["pass_times_s"] = [mean * (1 + 0.01 * k) for k in (-2, -1, 0, 1, 2)]
        f["pass_times_s"] = [t / 2 for t in r["pass_times_s"]]
        f["samples_per_s"] = 2 * r["samples_per_s"]
    (tmp_path / "a.json").write_text(json.dumps(steady))
    (tmp_path / "b.json").write_text(json.dumps(faster))
    a, b = load_result(tmp_path / "a.json"), load_result(tmp_path / "b.json")
    rows, _, _ = compare(a, b)
    assert all(r["verdict"] == "faster" and r["ci95"][0] > 1.1 for r in rows)
    rows, _, _ = compare(b, a, noise=0.6)  # 2x slower, but a 60% band
    assert all(r["verdict"].startswith("inconclusive") for r in rows)


def test_compare_command(bench_json, capsys):
    assert main(["compare", str(bench_json), str(bench_json)]) == 0
    assert "inconclusive" in capsys.readouterr().out


# ---------------------------------------------------------------------------- terminals


def widest_table_line(text: str) -> int:
    """Tables are the lines drawn with box characters; messages may be longer (the terminal wraps them)."""
    return max(len(ln) for ln in text.splitlines() if set(ln) & set("┃│┏└┡━─"))


def test_tables_fit_80_columns_and_piped_output_is_plain(bench_json, trained):
    text = (bench_json.parent / "stdout.txt").read_text()
    assert "\x1b[" not in text and "…" not in text
    assert widest_table_line(text) <= 80
    for r in json.loads(bench_json.read_text())["runs"]:
        assert f"{r['samples_per_s']:,.0f}" in text  # every figure whole
    report = run_main("report", str(bench_json), str(trained / "lenet5.train.json"), columns=80)
    assert report.code == 0 and widest_table_line(report.out) <= 80 and "…" not in report.out
    wide = run_main("report", str(bench_json), columns=200)
    assert widest_table_line(wide.out) > 80  # the width is honoured


# ---------------------------------------------------------------------------- the peak


def test_peak_is_cached_and_a_run_above_it_measures_again(trained, tiny_data, monkeypatch, tmp_path):
    """On a cache of its own: what other tests (or this machine's load) measured before must not count."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("CROSSRT_CACHE", str(cache))  # the bench-infer subprocess below inherits it
    first = measured_peak("cpu", 1)
    assert measured_peak("cpu", 1) == first and len(first.tries) == 3 and first.spread >= 0
    peaks = json.loads((cache / "peaks.json").read_text())
    assert len(peaks) == 1
    key = next(iter(peaks))
    peaks[key] = {**peaks[key], "peak": 1.0}  # as if measured on a very busy machine
    (cache / "peaks.json").write_text(json.dumps(peaks))
    monkeypatch.chdir(tmp_path)
    out = run_main(
        "bench-infer",
        "--model",
        str(trained / "lenet5.onnx"),
        "--data-dir",
        str(tiny_data),
        "--threads",
        "1",
        "--runtimes",
        "onnxruntime",
        "--min-time",
        "0",
        "--json",
        "b.json",
    )
    assert out.code == 0, out.err
    run = json.loads((tmp_path / "b.json").read_text())["runs"][0]
    assert run["peak_gflops"] > 1.0 and run["percent_of_peak"] == pytest.approx(
        100 * run["gflops"] / run["peak_gflops"]
    )
    healed = json.loads((cache / "peaks.json").read_text())[key]
    assert healed["peak"] == run["peak_gflops"] and len(healed["tries"]) == 5
    assert "% peak: of" in out.out and "spread" in out.out and "measured just now" in out.out  # age, spread


def test_a_peak_measured_beside_a_cpu_hog_is_not_cached(tmp_path, monkeypatch):
    """Real hogs, one per core, beside a real measurement on every core: the process cannot have
    its threads to itself, so the peak is this run's only, said why, and never written to the cache."""
    monkeypatch.setenv("CROSSRT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CROSSRT_PEAK_TRUST")  # the rule itself, as a user's run applies it
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cpu_count())]
    try:
        time.sleep(0.5)  # the hogs are spinning
        peak = measured_peak("cpu", cpu_count())
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert peak.cached is False and ("of the CPU time" in peak.why or "tries differ" in peak.why), peak
    assert peak.cpu_share < 0.9 or peak.spread > 0.05
    assert not (tmp_path / "cache" / "peaks.json").exists()
    assert measured_peak("cpu", cpu_count()) is peak  # kept for this process, not measured again


# ---------------------------------------------------------------------------- what new users ran into


def test_a_model_finds_its_training_folder_offline(capsys, workdir, monkeypatch):
    monkeypatch.setenv("CROSSRT_MIRROR", "http://127.0.0.1:9/")  # offline: nothing listens there
    data = write_dataset(workdir / "mnist-files", n_train=120, n_test=100)
    out = workdir / "exp"
    assert (
        main(
            [
                "train",
                "--data-dir",
                str(data),
                "--dataset",
                "mnist",
                "--epochs",
                "1",
                "--batch-size",
                "60",
                "--threads",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    bench = [
        "bench-infer",
        "--model",
        str(out / "lenet5.onnx"),
        "--threads",
        "1",
        "--min-time",
        "0",
        "--min-repeats",
        "1",
    ]
    assert main(bench) == 0 and main(["export", "--checkpoint", str(out / "lenet5.pt")]) == 0
    assert f"{data}, where the model's training data was" in capsys.readouterr().out
    shutil.move(data, workdir / "elsewhere")
    err = one_line_2(capsys, bench)
    assert "could not download MNIST" in err and "--data-dir" in err


def test_report_shows_dataset_and_stopped_runs(trained, tmp_path):
    stopped = json.loads((trained / "lenet5.train.json").read_text())
    stopped.update(complete=False, epochs=stopped["epochs"][:1])
    (tmp_path / "stopped.json").write_text(json.dumps(stopped))
    rows = merge(load_results([trained / "lenet5.train.json", tmp_path / "stopped.json"]))
    assert [r["complete"] for r in rows] == [True, False] and {r["dataset"] for r in rows} == {"data"}
    header = to_markdown(rows).splitlines()[0]
    assert "| dataset |" in header and "| complete |" in header
    report = run_main("report", str(trained / "lenet5.train.json"), str(tmp_path / "stopped.json"))
    assert "train*" in report.out and "stopped before the end" in report.out
    a, b = (load_result(trained / "lenet5.train.json") for _ in range(2))
    names = [run_name(r) for r in (a, b, load_result(tmp_path / "stopped.json"))]
    assert names[0] == names[1] != names[2] and f"run {a.run_id}" in names[0]  # a run is named by its run id


def test_resume_hint_in_the_words_the_run_was_started_with(monkeypatch):
    monkeypatch.setattr(sys, "argv", [str(ROOT / "crossrt" / "__main__.py")])
    shell = argparse.Namespace(argv=["train", "--epochs", "3", "--lr", "0.01"], launcher=launcher(True))
    monkeypatch.setenv("CROSSRT_VIA_MAKE", r"train ARGS=--lr\ 0.01 EPOCHS=3")
    assert resume_command(shell) == "make train EPOCHS=3 'ARGS=--lr 0.01 --resume'"
    monkeypatch.delenv("CROSSRT_VIA_MAKE")
    assert resume_command(shell).startswith(f"{sys.executable} -m crossrt train --epochs 3")
    monkeypatch.setenv("CROSSRT_LAUNCHED_AS", "crossrt train --nproc 2 --epochs 3")  # a data-parallel rank
    assert resume_command(shell) == "crossrt train --nproc 2 --epochs 3 --resume"


def test_no_export_leaves_a_model_that_bench_infer_refuses_with_a_reason(capsys, workdir, tiny_data):
    args = ["train", "--data-dir", str(tiny_data), "--batch-size", "60", "--threads", "1", "--out", "exp"]
    assert main([*args, "--epochs", "1"]) == 0
    assert main([*args, "--epochs", "2", "--no-export"]) == 0
    assert "is from an earlier training run" in capsys.readouterr().out
    bench = [
        "bench-infer",
        "--model",
        "exp/lenet5.onnx",
        "--data-dir",
        str(tiny_data),
        "--threads",
        "1",
        "--min-time",
        "0",
        "--min-repeats",
        "1",
    ]
    err = one_line_2(capsys, bench)
    assert "holds other weights than exp/lenet5.pt" in err and "crossrt export --checkpoint exp/lenet5.pt" in err
    assert main(["export", "--checkpoint", "exp/lenet5.pt", "--data-dir", str(tiny_data)]) == 0
    assert main(bench) == 0


def test_output_paths_are_checked_before_any_data_is_read(capsys, workdir, trained):
    broken = write_dataset(workdir / "broken", n_train=30, n_test=20)
    (broken / "train-images-idx3-ubyte").write_bytes(b"not an IDX file")
    for flag, path in (("--out", "/proc/crossrt-out"), ("--json", "/proc/crossrt.json")):
        err = one_line_2(capsys, ["train", "--data-dir", str(broken), flag, path])
        assert f"{flag} {path}: cannot write there" in err
    assert main(["report", str(trained / "lenet5.train.json"), "--plots", "/proc/crossrt-plots"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "--plots /proc/crossrt-plots: cannot write there" in captured.err


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["train", "--threads", "100000"], "--threads: at most"),
        (["bench-infer", "--threads", "0,100000"], "--threads: at most"),
        (["bench-infer", "--min-time", "nan"], "--min-time: must be a number >= 0, got nan"),
        (["bench-infer", "--min-time", "inf"], "--min-time: must be a number >= 0, got inf"),
        (["train", "--seed", "99999999999999999999"], "--seed: at most"),
        (["train", "--epochs", "1000000000"], "--epochs: at most"),
    ],
)
def test_flag_values_beyond_the_machine(capsys, argv, needle):
    assert needle in one_line_2(capsys, argv)


def test_batches_larger_than_the_data(capsys, workdir, tiny_data, trained):
    err = one_line_2(capsys, ["train", "--data-dir", str(tiny_data), "--batch-size", "100000", "--out", "o"])
    assert "--batch-size 100,000: more than the 600 training images" in err
    err = one_line_2(
        capsys,
        ["bench-infer", "--model", str(trained / "lenet5.onnx"), "--data-dir", str(tiny_data), "--batch-size", "5000"],
    )
    assert "--batch-size 5,000: more than the 200 test images" in err


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


@pytest.mark.parametrize(
    "make,argv,needle",
    [
        (lambda w: _fifo(w / "fifo"), ["train", "--data-dir", "{}"], "not a folder"),
        (lambda w: (w / "loop").symlink_to(w / "loop") or w / "loop", ["train", "--data-dir", "{}"], "no such folder"),
        (lambda w: Path("/dev/zero"), ["train", "--data-dir", "{}"], "not a folder"),
        (lambda w: _fifo(w / "m.onnx"), ["bench-infer", "--model", "{}"], "not a regular file"),
        (lambda w: _fifo(w / "c.pt"), ["export", "--checkpoint", "{}"], "not a regular file"),
        (lambda w: _fifo(w / "r.json"), ["report", "{}"], "not a regular file"),
        (lambda w: w, ["report", "{}"], "is a folder"),
    ],
)
def test_unusual_filesystem_objects_fail_in_one_line_without_hanging(workdir, make, argv, needle):
    path = make(workdir)
    out = run_main(*[a.format(path) for a in argv])
    assert out.code == 2 and "Traceback" not in out.err, out.err
    assert needle in out.err and len(out.err.strip().splitlines()) == 1


def _environment_from(folder: Path) -> list[str]:
    code = "from crossrt.system import environment as e; v = e(); print(v['versions']['crossrt'], v['git_commit'])"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(folder)},
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_version_and_commit_are_crossrts_own(tmp_path):
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:  # a git checkout, as in CI
        assert _environment_from(ROOT) == [__version__, head.stdout.strip()]
    # A copy of the source inside some other git repository records that repository's commit nowhere.
    other = tmp_path / "other-repo"
    shutil.copytree(ROOT / "crossrt", other / "vendored" / "crossrt", ignore=shutil.ignore_patterns("__pycache__"))
    git = ["git", "-C", str(other), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    assert _environment_from(other / "vendored") == [__version__, "None"]


@pytest.mark.slow
def test_isolated_configurations_and_interrupting_them(trained, tiny_data, tmp_path):
    out = run_cli(
        "bench-infer",
        "--model",
        str(trained / "lenet5.onnx"),
        "--data-dir",
        str(tiny_data),
        "--threads",
        "1",
        "--isolate",
        "--min-time",
        "0",
        "--json",
        "iso.json",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    runs = json.loads((tmp_path / "iso.json").read_text())["runs"]
    assert [r["isolated"] for r in runs] == [True, True] and runs[0]["parity_ok"] is True
    env = {**os.environ, "PYTHONPATH": python_path(), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "crossrt",
            "bench-infer",
            "--model",
            str(trained / "lenet5.onnx"),
            "--data-dir",
            str(tiny_data),
            "--threads",
            "1,2",
            "--isolate",
            "--min-time",
            "60",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().startswith("model:")
    time.sleep(3)  # the first configuration is now running in its own process (for 60 s)
    proc.send_signal(2)  # SIGINT
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err and "partial results saved" in err
    assert not re.search(r"crossrt\.isolate|multiprocessing", err)


def test_names_with_brackets_print_as_they_are(capsys, workdir):
    """Paths and names reach the console whole, never read as rich markup."""
    data = write_dataset(workdir / "set[1]", n_train=60, n_test=20)
    assert (
        main(
            [
                "train",
                "--data-dir",
                str(data),
                "--epochs",
                "1",
                "--batch-size",
                "60",
                "--valid-batch-size",
                "20",
                "--threads",
                "1",
                "--no-export",
                "--out",
                str(workdir / "out[2]"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "dataset: set[1]" in out and "out[2]/lenet5.pt" in " ".join(out.split())
