"""The real `crossrt` command: end to end in subprocesses, and one-line errors with exit 2."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from conftest import has_cuda, idx_bytes, run_cli, write_dataset

from crossrt.cli import main


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    """`crossrt train` run as a user would, in a fresh folder, on a tiny generated dataset."""
    work = tmp_path_factory.mktemp("e2e")
    data = write_dataset(work / "data", gz=True, seed_names=True)
    proc = run_cli("train", "--data-dir", str(data), "--epochs", "2", "--batch-size", "60",
                   "--threads", "1", "--json", "run.json", cwd=work)
    return work, data, proc


def test_train_end_to_end(e2e):
    work, _, proc = e2e
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "epoch   2" in proc.stdout and "training time" in proc.stdout and "ONNX Runtime parity" in proc.stdout
    for name in ("lenet5.pt", "lenet5.onnx", "lenet5.train.json"):
        assert (work / "exports" / name).is_file()
    run = json.loads((work / "run.json").read_text())
    assert run["kind"] == "train" and run["complete"] is True and run["schema_version"] == 1
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
    out = run_cli("bench-infer", "--data-dir", str(data), "--threads", "1,2", "--warmup", "2",
                  "--min-time", "0", "--min-repeats", "2", "--no-spin", "--json", "bench.json", cwd=work)
    assert out.returncode == 0, out.stderr
    assert "Validation of exports/lenet5.onnx" in out.stdout and "Training vs validation cost" in out.stdout
    result = json.loads((work / "bench.json").read_text())
    assert result["kind"] == "bench-infer" and result["complete"] is True
    runs = result["runs"]
    assert [(r["runtime"], r["threads"]) for r in runs] == [
        ("onnxruntime", 1), ("onnxruntime", 2), ("pytorch", 1), ("pytorch", 2)]
    for r in runs:
        assert r["batch_size"] == 100 and r["passes"] == 2 and r["images"] == 200
        assert set(r["latency_ms"]) >= {"mean", "p50", "p90", "p99", "std"}
        assert r["images_per_s"] > 0 and r["gflops"] > 0 and r["session_create_s"] > 0
        assert r["top1_agreement"] == 1.0 and r["parity_ok"] is True
        assert r["accuracy"] == runs[0]["accuracy"]
    assert runs[0]["providers"] == ["CPUExecutionProvider"]
    assert [r["threads_effective"] for r in runs[2:]] == [1, 2]  # torch.get_num_threads() read back
    s = result["settings"]
    assert s["spin"] is False and s["inter_op_threads"] == 1 and s["execution_mode"] == "sequential"


def _err(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize("argv,needle", [
    (["train", "--threads", "abc"], "--threads: invalid int value"),
    (["train", "--epochs", "0"], "--epochs: must be a number >= 1, got 0"),
    (["train", "--threads", "-1"], "--threads: must be a number >= 1"),
    (["train", "--batch-size", "0"], "--batch-size: must be a number >= 1"),
    (["train", "--device", "tpu"], "--device: invalid choice"),
    (["train", "--lr", "0"], "--lr: must be in (0, 10)"),
    (["bench-infer", "--threads", "1,x"], "expected comma-separated whole numbers, got '1,x'"),
    (["bench-infer", "--provider", "tpu"], "--provider: unknown value 'tpu'"),
    (["bench-infer", "--batch-size", "0"], "--batch-size: must be a number >= 1, got 0"),
    (["bench-infer", "--runtimes", "onnxruntime,tf"], "--runtimes: unknown value 'tf'"),
    (["bench-infer", "--threads", "2,2"], "--threads: lists a value twice"),
])
def test_bad_flags(capsys, argv, needle):
    assert needle in _err(capsys, argv)


def test_bad_data_dir(capsys, tmp_path):
    assert "no such data folder" in _err(capsys, ["train", "--data-dir", str(tmp_path / "nope")])
    folder = write_dataset(tmp_path / "d", n_train=30, n_test=20)
    (folder / "train-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((30, 28, 28), np.uint8))[:-5])
    err = _err(capsys, ["train", "--data-dir", str(folder), "--out", str(tmp_path / "o")])
    assert "train-images-idx3-ubyte: truncated" in err
    assert not (tmp_path / "o" / "lenet5.pt").exists()


@pytest.mark.skipif(has_cuda(), reason="this machine has a GPU")
def test_cuda_without_gpu(capsys, tiny_data, tmp_path):
    err = _err(capsys, ["train", "--device", "cuda", "--data-dir", str(tiny_data), "--out", str(tmp_path)])
    assert "--device cuda: no usable CUDA GPU" in err
    assert not (tmp_path / "lenet5.pt").exists()


def test_bench_without_model_says_to_train(capsys, tmp_path):
    err = _err(capsys, ["bench-infer", "--model", str(tmp_path / "lenet5.onnx")])
    assert "no such model file (run `make train` first" in err


def test_bench_bad_model_files(capsys, tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a protobuf")
    assert "ONNX Runtime cannot load it" in _err(capsys, ["bench-infer", "--model", str(junk)])
    for name, model, example in (
            ("channels", torch.nn.Sequential(torch.nn.Conv2d(3, 10, 28), torch.nn.Flatten()), (1, 3, 28, 28)),
            ("rank", torch.nn.Linear(28 * 28, 10), (1, 28 * 28))):
        path = tmp_path / f"{name}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (torch.zeros(example),), str(path), dynamo=False,
                              input_names=["input"], dynamic_axes={"input": {0: "n"}})
        assert "expected tensor(float) [N, 1, 28, 28]" in _err(capsys, ["bench-infer", "--model", str(path)])


@pytest.mark.skipif(has_cuda(), reason="this machine has a GPU")
def test_bench_cuda_provider_without_gpu(capsys, trained):
    err = _err(capsys, ["bench-infer", "--model", str(trained / "lenet5.onnx"), "--provider", "cuda"])
    assert "--provider cuda: ONNX Runtime fell back to CPUExecutionProvider" in err


def test_help_is_fast_and_lists_defaults():
    import subprocess
    import sys
    import time

    t0 = time.perf_counter()
    out = run_cli("train", "--help", cwd=".")
    assert out.returncode == 0
    assert "(default: 100)" in out.stdout and "(default: 600)" in out.stdout
    code = "import sys, crossrt.cli; print('torch' in sys.modules, 'onnxruntime' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False False"
    assert time.perf_counter() - t0 < 60  # a sanity bound only; the speed target lives in benchmarks/
