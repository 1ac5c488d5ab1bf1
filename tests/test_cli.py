"""The real `crossrt` command, end to end in subprocesses, as a user runs it.

Bad input of every kind lives in test_faults.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import torch

from crossrt.cli import build, build_parser, main
from crossrt.config import BenchConfig, ExportConfig, LoadgenConfig, QuantizeConfig, SuiteConfig, TrainConfig
from crossrt.schema import SCHEMA_VERSION

from conftest import ROOT, python_path, run_cli, run_main, write_dataset


def python_env() -> dict:
    return {**os.environ, "PYTHONPATH": python_path()}


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    """`crossrt train` run as a user would, in a fresh folder, on a tiny generated dataset."""
    work = tmp_path_factory.mktemp("e2e")
    data = write_dataset(work / "data", gz=True, seed_names=True)
    proc = run_cli(
        "train",
        "--data-dir",
        str(data),
        "--epochs",
        "2",
        "--batch-size",
        "60",
        "--threads",
        "1",
        "--json",
        "run.json",
        cwd=work,
    )
    return work, data, proc


def test_train_end_to_end(e2e):
    work, _, proc = e2e
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "epoch   2" in proc.stdout and "training time" in proc.stdout and "ONNX Runtime parity" in proc.stdout
    for name in ("lenet5.pt", "lenet5.onnx", "lenet5.train.json"):
        assert (work / "exports" / name).is_file()
    run = json.loads((work / "run.json").read_text())
    assert run["kind"] == "train" and run["complete"] is True and run["schema_version"] == SCHEMA_VERSION
    assert run["device"] == "cpu" and run["threads"] == 1 and run["arch"] == "lenet5"
    assert [e["epoch"] for e in run["epochs"]] == [1, 2]
    assert set(run["epochs"][0]) >= {"epoch", "train_loss", "train_s", "valid_loss", "valid_accuracy", "valid_s"}
    assert run["train_s"] == pytest.approx(sum(e["train_s"] for e in run["epochs"]))
    assert run["total_s"] == pytest.approx(run["train_s"] + run["valid_s"])
    assert 0.5 < run["final_accuracy"] <= 1.0  # the tiny dataset is easy: this checks it learns
    assert run["epochs"][1]["train_loss"] < run["epochs"][0]["train_loss"]
    assert run["onnx"]["top1_agreement"] == 1.0 and run["onnx"]["max_abs_diff"] < 1e-4
    env = run["environment"]
    assert env["cpu_cores"] >= 1 and env["versions"]["torch"] and env["threads"]["torch_intra_op"] == 1
    assert len(list((work / "results").glob("train-*.json"))) == 1


def test_bench_infer_end_to_end(e2e):
    work, data, proc = e2e
    assert proc.returncode == 0
    out = run_cli(
        "bench-infer",
        "--data-dir",
        str(data),
        "--threads",
        "1,2",
        "--warmup",
        "2",
        "--min-time",
        "0",
        "--min-repeats",
        "2",
        "--no-spin",
        "--json",
        "bench.json",
        cwd=work,
    )
    assert out.returncode == 0, out.stderr
    assert "Validation of exports/lenet5.onnx" in out.stdout and "Training vs validation cost" in out.stdout
    result = json.loads((work / "bench.json").read_text())
    assert result["kind"] == "bench-infer" and result["complete"] is True
    runs = result["runs"]
    assert [(r["runtime"], r["threads"]) for r in runs] == [
        ("onnxruntime", 1),
        ("onnxruntime", 2),
        ("pytorch", 1),
        ("pytorch", 2),
    ]
    for r in runs:
        assert (
            r["batch_size"] == 100
            and len(r["pass_times_s"]) == 2
            and r["passes"] == 2 * r["passes_per_repeat"]
            and r["samples"] == 200
        )
        assert set(r["latency_ms"]) >= {"mean", "p50", "p90", "p99", "std"}
        assert r["samples_per_s"] > 0 and r["gflops"] > 0 and r["session_create_s"] > 0
        assert r["top1_agreement"] == 1.0 and r["parity_ok"] is True
        assert r["accuracy"] == runs[0]["accuracy"]
        # Trust: the samples, their spread, the verdict and the CPU cost travel with every row.
        assert len(r["pass_times_s"]) == 2 and len(r["batch_ms"]) == 4 * r["passes_per_repeat"] and r["cv"] >= 0
        assert r["ci95"][0] <= r["samples_per_s"] <= r["ci95"][1]
        assert isinstance(r["stable"], bool) and (r["stable"] or r["unstable_cause"])
        assert r["cpu_s_per_1k"] > 0 and r["isolated"] is False and r["math"] == "fp32"
    assert [r["spin"] for r in runs] == [False, False, None, None]
    assert runs[0]["providers"] == ["CPUExecutionProvider"]
    assert [r["threads_effective"] for r in runs[2:]] == [1, 2]  # torch.get_num_threads() read back
    s = result["config"]
    assert s["spin"] == "off" and s["inter_op_threads"] == 1 and s["execution_mode"] == "sequential"


def test_bench_infer_exits_1_when_runtimes_disagree(e2e, workdir, capsys):
    """A checkpoint that is not the model in the .onnx file: the accuracies differ, exit 1, in red."""
    work, data, _ = e2e
    shutil.copy(work / "exports" / "lenet5.onnx", workdir / "lenet5.onnx")
    state = torch.load(work / "exports" / "lenet5.pt", weights_only=True)
    state["model"]["OUT.bias"][0] += 1e4  # every image is now class 0 for PyTorch only
    torch.save(state, workdir / "lenet5.pt")
    argv = ["bench-infer", "--model", str(workdir / "lenet5.onnx"), "--data-dir", str(data), "--threads", "1"]
    assert main([*argv, "--min-time", "0", "--min-repeats", "1", "--json", "bench.json"]) == 1
    err = capsys.readouterr().err
    assert "2 configuration(s) disagree" in err and "Traceback" not in err
    runs = json.loads((workdir / "bench.json").read_text())["runs"]
    # Each is caught by its own check: ONNX Runtime's accuracy is not PyTorch's, and PyTorch's
    # outputs are not ONNX Runtime CPU's on the same inputs.
    assert [(r["runtime"], r["parity_ok"]) for r in runs] == [("onnxruntime", False), ("pytorch", False)]
    assert runs[0]["outputs"][0]["ok"] is True and runs[1]["outputs"][0]["ok"] is False
    assert runs[1]["accuracy"] == pytest.approx(0.1) and runs[0]["top1_agreement"] == pytest.approx(0.1)


@pytest.mark.parametrize(
    "command,cls",
    [
        ("train", TrainConfig),
        ("export", ExportConfig),
        ("bench-infer", BenchConfig),
        ("suite", SuiteConfig),
        ("loadgen", LoadgenConfig),
    ],
)
def test_flags_are_the_config_fields_with_their_defaults(command, cls):
    """One source of defaults: no flags given builds exactly the dataclass's defaults, and
    every flag's help states its default."""
    assert build(cls, build_parser().parse_args([command])) == cls()
    out = run_main(command, "--help")
    assert out.code == 0
    options = [ln for ln in out.out.splitlines() if ln.startswith("  -") and "--help" not in ln]
    text = " ".join(out.out.split())
    assert len(options) >= len(fields(cls)) and text.count("(default: ") == len(options)
    if command == "train":
        assert "--epochs EPOCHS epochs (default: 100)" in text and "training batch (default: 600)" in text


def test_top_level_help_lists_every_command():
    """argparse %-formats help texts: a bare % in one of them broke `crossrt --help` once."""
    out = run_main("--help")
    assert out.code == 0 and out.err == "", out.err
    listed = {ln.split()[0] for ln in out.out.splitlines() if ln.startswith("    ") and ln.split()}
    from crossrt.cli import COMMANDS

    assert set(COMMANDS) <= listed
    assert "its 95% interval" in out.out


def test_help_does_not_load_torch_or_onnxruntime():
    code = "import sys, crossrt.cli; print('torch' in sys.modules, 'onnxruntime' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=python_env())
    assert out.stdout.strip() == "False False", out.stderr


def test_flag_types_come_from_the_type_hints_in_any_spelling():
    """Optional[int], int | None and tuple[int, ...] all parse: types are read with
    typing.get_type_hints, not matched as annotation text."""
    import argparse
    from dataclasses import dataclass

    from crossrt.cli import add_options
    from crossrt.config import option

    @dataclass
    class Demo:
        old: int | None = option(None, help="an Optional[int]")
        new: int | None = option(None, help="an int | None")
        many: tuple[int, ...] = option((1,), help="a list")
        on: bool = option(False, help="a switch")

    p = argparse.ArgumentParser()
    add_options(p, Demo)
    assert build(Demo, p.parse_args(["--old", "3", "--new", "4", "--many", "5,6", "--on"])) == Demo(3, 4, (5, 6), True)
    assert build(Demo, p.parse_args([])) == Demo()


def test_building_a_config_touches_no_file(tmp_path, monkeypatch):
    """Settings are checked as values when built; their paths only when a command runs."""
    monkeypatch.chdir(tmp_path)
    seen, watching = [], [True]
    sys.addaudithook(
        lambda event, args: (
            watching[0] and event in ("open", "os.mkdir", "os.rmdir", "os.remove") and seen.append((event, args))
        )
    )
    try:
        for cls in (TrainConfig, ExportConfig, BenchConfig, SuiteConfig, QuantizeConfig):
            cls()
    finally:
        watching[0] = False
    assert seen == [] and list(tmp_path.iterdir()) == []


def test_the_wheel_holds_every_subpackage(tmp_path):
    """pyproject finds the packages: a wheel built from this checkout holds crossrt.runtimes and crossrt.ui."""
    import zipfile

    src = tmp_path / "src"  # a copy, so that the build leaves nothing in the checkout
    shutil.copytree(ROOT / "crossrt", src / "crossrt", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(src),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    (wheel,) = tmp_path.glob("crossrt-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {str(p.relative_to(ROOT)) for p in (ROOT / "crossrt").rglob("*.py")} | {"crossrt/reference.json"}
    assert packages <= names, packages - names


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "benchmarks").glob("*.py") if p.name != "common.py"))
def test_benchmark_scripts_import_and_answer_help(script, monkeypatch, capsys):
    """The benchmark scripts are not run in CI (minutes each), but they must still import this
    crossrt and build their flags: each is loaded here and asked for --help through its own main()."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # as `python benchmarks/SCRIPT` puts its folder first
    spec = importlib.util.spec_from_file_location(f"benchmark_{Path(script).stem}", ROOT / "benchmarks" / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, "argv", [script, "--help"])
    with pytest.raises(SystemExit) as end:
        module.main()
    assert end.value.code == 0 and capsys.readouterr().out.startswith("usage:")
