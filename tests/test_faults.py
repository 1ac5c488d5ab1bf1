"""Nothing lost, nothing silent: bad input everywhere, interruption, concurrency, numerical faults.

Every bad input must give one line on stderr naming the input and the problem, exit code 2,
no traceback, and nothing written (no results/, no output folder).
"""

from __future__ import annotations

import gzip
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import crossrt.export
from crossrt import checkpoint, fetch
from crossrt.cli import main
from crossrt.errors import DataError
from crossrt.files import FolderLock
from crossrt.model import LeNet5
from crossrt.steps import Lean

from conftest import has_cuda, idx_bytes, python_path, write_dataset, write_idx


def one_line_exit_2(capsys, argv, cwd: Path) -> str:
    before = set(cwd.iterdir())
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert set(cwd.iterdir()) == before, "a failed command wrote files"
    return err


# ---------------------------------------------------------------------------- flags


@pytest.mark.parametrize(
    "argv,needle",
    [
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
        (["suite", "--sweep-threads", "0"], "--sweep-threads: must be a number >= 1, got 0"),
    ],
)
def test_bad_flags(capsys, workdir, argv, needle):
    assert needle in one_line_exit_2(capsys, argv, workdir)


@pytest.mark.skipif(has_cuda(), reason="this machine has a GPU")
def test_cuda_without_gpu(capsys, workdir, tiny_data, trained):
    err = one_line_exit_2(
        capsys, ["train", "--device", "cuda", "--data-dir", str(tiny_data), "--out", str(workdir / "out")], workdir
    )
    assert "--device cuda: no usable CUDA GPU" in err
    err = one_line_exit_2(
        capsys, ["bench-infer", "--model", str(trained / "lenet5.onnx"), "--provider", "cuda"], workdir
    )
    # CPU nodes are allowed in a CUDA session now: without a GPU, ORT starts it on the CPU EP alone
    assert "--provider cuda: ONNX Runtime fell back to CPUExecutionProvider" in err
    assert "make setup on a GPU machine" in err


# ---------------------------------------------------------------------------- data folders


def _folder(tmp_path: Path, damage) -> Path:
    folder = write_dataset(tmp_path / "data", n_train=30, n_test=20)
    damage(folder)
    return folder


def _truncate(f):
    p = f / "train-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:-7])


def _unreadable(f):
    # /proc/self/mem is a regular file whose read fails with EIO: an unreadable file even for root.
    (f / "train-labels-idx1-ubyte").unlink()
    os.symlink("/proc/self/mem", f / "train-labels-idx1-ubyte")


DATA_FAULTS = {
    "missing folder": (lambda f: shutil.rmtree(f), "data: no such folder"),
    "empty folder": (lambda f: [p.unlink() for p in f.iterdir()], "missing train-images"),
    "unreadable file": (_unreadable, "train-labels-idx1-ubyte: cannot read (Input/output error)"),
    "truncated IDX": (_truncate, "train-images-idx3-ubyte: truncated: header promises 23520 bytes"),
    "wrong magic": (
        lambda f: write_idx(f / "t10k-labels-idx1-ubyte", np.zeros(20, np.uint8), magic=0x0901),
        "t10k-labels-idx1-ubyte: wrong magic number 0x00000901",
    ),
    "wrong dimensions": (
        lambda f: write_idx(f / "t10k-images-idx3-ubyte", np.zeros((20, 28, 27), np.uint8)),
        "t10k-images-idx3-ubyte: images are 28x27, expected 28x28",
    ),
    "count mismatch": (
        lambda f: write_idx(f / "train-labels-idx1-ubyte", np.zeros(29, np.uint8)),
        "train-labels-idx1-ubyte: 29 labels for 30 images",
    ),
    "label out of range": (
        lambda f: write_idx(f / "t10k-labels-idx1-ubyte", np.full(20, 255, np.uint8)),
        "t10k-labels-idx1-ubyte: label 255 out of range 0..9",
    ),
    "gzip that is not gzip": (
        lambda f: os.rename(f / "t10k-labels-idx1-ubyte", f / "t10k-labels-idx1-ubyte.gz"),
        "t10k-labels-idx1-ubyte.gz: not a valid gzip file",
    ),
}


@pytest.mark.parametrize("fault", DATA_FAULTS)
@pytest.mark.parametrize("command", ["train", "bench-infer"])
def test_bad_data_folder(capsys, workdir, trained, fault, command):
    damage, needle = DATA_FAULTS[fault]
    folder = _folder(workdir / "in", damage)
    argv = {
        "train": ["train", "--data-dir", str(folder), "--epochs", "1", "--out", str(workdir / "out")],
        "bench-infer": ["bench-infer", "--data-dir", str(folder), "--model", str(trained / "lenet5.onnx")],
    }
    err = one_line_exit_2(capsys, argv[command], workdir)
    assert needle in err


# ---------------------------------------------------------------------------- model files


def _future_opset(path, trained):
    m = onnx.load(str(trained / "lenet5.onnx"))
    m.opset_import[0].version = 99
    onnx.save(m, str(path))


MODEL_FAULTS = {
    "missing": (lambda p, t: None, "model.onnx: no such model"),
    "empty file": (lambda p, t: p.write_bytes(b""), "not an ONNX model (it holds no graph: 0 bytes)"),
    "not ONNX": (lambda p, t: p.write_bytes(b"\x00\x01 definitely not protobuf"), "not an ONNX model"),
    "opset ORT refuses": (_future_opset, "ONNX Runtime cannot load it"),
}


@pytest.mark.parametrize("fault", MODEL_FAULTS)
def test_bad_model_file(capsys, workdir, trained, fault):
    make, needle = MODEL_FAULTS[fault]
    path = workdir / "in" / "model.onnx"
    path.parent.mkdir()
    make(path, trained)
    err = one_line_exit_2(capsys, ["bench-infer", "--model", str(path)], workdir)
    assert str(path) in err and needle in err


# ---------------------------------------------------------------------------- result files

JSON_FAULTS = {
    "truncated": (lambda d: json.dumps(d)[:50], "not valid JSON (truncated?)"),
    "wrong kind": (lambda d: json.dumps({**d, "kind": "bench-infer"}), "is a 'bench-infer' result, expected 'train'"),
    "older schema": (lambda d: json.dumps({**d, "schema_version": 0}), "schema_version 0 is not supported"),
    "not a result": (lambda d: json.dumps([1, 2]), "not a crossrt result"),
}


@pytest.mark.parametrize("fault", JSON_FAULTS)
def test_bad_result_json(capsys, workdir, trained, fault):
    make, needle = JSON_FAULTS[fault]
    path = workdir / "in" / "train.json"
    path.parent.mkdir()
    path.write_text(make(json.loads((trained / "lenet5.train.json").read_text())))
    err = one_line_exit_2(
        capsys,
        [
            "bench-infer",
            "--model",
            str(trained / "lenet5.onnx"),
            "--train-json",
            str(path),
            "--runtimes",
            "onnxruntime",
        ],
        workdir,
    )
    assert str(path) in err and needle in err


def test_output_paths_checked_before_any_work(capsys, workdir, tiny_data):
    (workdir / "somedir").mkdir()
    (workdir / "afile").write_text("")
    err = one_line_exit_2(capsys, ["train", "--data-dir", str(tiny_data), "--json", str(workdir / "somedir")], workdir)
    assert f"--json {workdir / 'somedir'}: is a directory" in err
    err = one_line_exit_2(capsys, ["train", "--data-dir", str(tiny_data), "--out", str(workdir / "afile")], workdir)
    assert f"--out {workdir / 'afile'}: is a file" in err
    err = one_line_exit_2(capsys, ["bench-infer", "--json", str(workdir / "somedir")], workdir)
    assert "is a directory" in err


# ---------------------------------------------------------------------------- interruption


def _popen(args, cwd):
    env = {**os.environ, "PYTHONPATH": python_path(), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "crossrt", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(pred, timeout=60):
    t0 = time.time()
    while not pred():
        assert time.time() - t0 < timeout, "timed out"
        time.sleep(0.05)


# Real processes trained, stopped and resumed: slow. The quick run keeps a real signal to bench-infer
# (test_sigterm_during_bench_keeps_partial_results) and Ctrl-C in training (test_ctrl_c_during_export_...).
@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_training_then_resume(tmp_path, sig):
    data = write_dataset(tmp_path / "data", n_train=1200, n_test=200)
    args = ["train", "--data-dir", str(data), "--epochs", "6", "--batch-size", "20", "--threads", "1"]
    exports = tmp_path / "exports"
    exports.mkdir()
    (exports / "lenet5.onnx").write_bytes(b"yesterday's model")
    proc = _popen(args, tmp_path)
    _wait_for(lambda: (exports / "lenet5.pt").exists())
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Resume with: " in err
    assert (exports / "lenet5.onnx").read_bytes() == b"yesterday's model"
    done = len(checkpoint.load(exports / "lenet5.pt")["epochs"])
    assert 1 <= done < 6
    (partial,) = (tmp_path / "results").glob("train-*.json")
    result = json.loads(partial.read_text())
    assert result["complete"] is False and len(result["epochs"]) == done
    assert not [p for p in exports.iterdir() if p.name.endswith(".tmp")]

    # The hint is run exactly as printed (python -m crossrt here: how this run was started).
    hint = shlex.split(err.split("Resume with: ")[1].strip())
    assert hint[:3] == [sys.executable, "-m", "crossrt"] and hint[-1] == "--resume"
    resumed = subprocess.run(
        hint, cwd=tmp_path, env={**os.environ, "PYTHONPATH": python_path()}, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    straight = tmp_path / "straight"
    assert main([*args, "--out", str(straight), "--no-export"]) == 0
    a, b = checkpoint.load(exports / "lenet5.pt"), checkpoint.load(straight / "lenet5.pt")
    assert len(a["epochs"]) == 6
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


def test_sigterm_during_bench_keeps_partial_results(tmp_path, trained, tiny_data):
    proc = _popen(
        [
            "bench-infer",
            "--model",
            str(trained / "lenet5.onnx"),
            "--data-dir",
            str(tiny_data),
            "--threads",
            "1",
            "--min-time",
            "60",
        ],
        tmp_path,
    )
    _wait_for(lambda: proc.stdout.readline().startswith("model:"))
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    assert "partial results saved" in err
    (partial,) = (tmp_path / "results").glob("bench-infer-*.json")
    assert json.loads(partial.read_text())["complete"] is False


def test_crash_during_export_leaves_previous_model(tmp_path, trained, monkeypatch):
    target = tmp_path / "lenet5.onnx"
    target.write_bytes(b"previous")

    def broken(*a, **k):
        raise RuntimeError("checker exploded")

    monkeypatch.setattr(onnx.checker, "check_model", broken)
    model = checkpoint.build_model(checkpoint.load(trained / "lenet5.pt"))
    with pytest.raises(RuntimeError, match="checker exploded"):
        crossrt.export.export_onnx(model, target, {})
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["lenet5.onnx"]


def test_ctrl_c_during_export_keeps_training_results(capsys, workdir, tiny_data, monkeypatch):
    out = workdir / "exports"
    out.mkdir()
    (out / "lenet5.onnx").write_bytes(b"previous")

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx.checker, "check_model", interrupted)  # Ctrl-C while ONNX checks the model
    assert (
        main(["train", "--data-dir", str(tiny_data), "--epochs", "1", "--batch-size", "60", "--out", str(out)]) == 130
    )
    err = capsys.readouterr().err
    assert "interrupted during the ONNX export" in err and "crossrt export --checkpoint" in err
    assert (out / "lenet5.onnx").read_bytes() == b"previous"
    (saved,) = (workdir / "results").glob("train-*.json")
    result = json.loads(saved.read_text())
    assert result["complete"] is False and len(result["epochs"]) == 1


# ---------------------------------------------------------------------------- concurrency


def test_second_run_on_the_same_folder_is_refused(capsys, workdir, tiny_data):
    out = workdir / "exports"
    with FolderLock(out):
        assert main(["train", "--data-dir", str(tiny_data), "--epochs", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out}: in use by another crossrt run (pid {os.getpid()})" in err
    assert sorted(p.name for p in out.iterdir()) == []  # the refused run wrote nothing; the lock went with its holder


# ---------------------------------------------------------------------------- numerical faults


def test_nan_loss_stops_and_keeps_last_good_checkpoint(capsys, workdir, tiny_data):
    """Logits turn NaN from the 11th training step on, through PyTorch's public global forward
    hook: 600 images / batch 60 = 10 steps make epoch 1, so epoch 2 goes NaN. Only passes with
    gradients count as steps (validation and the FLOP count run without). The lean step
    (steps.Lean) calls the network's layers but not LeNet5.forward, so the hook watches both."""
    steps = []

    def nan_after_10_steps(module, inputs, output):
        if isinstance(module, (LeNet5, Lean)) and torch.is_grad_enabled():
            steps.append(1)
            return output * float("nan") if len(steps) > 10 else output

    hook = torch.nn.modules.module.register_module_forward_hook(nan_after_10_steps)
    out = workdir / "exports"
    try:
        code = main(["train", "--data-dir", str(tiny_data), "--epochs", "3", "--batch-size", "60", "--out", str(out)])
    finally:
        hook.remove()
    assert code == 1
    err = capsys.readouterr().err
    assert "epoch 2: loss is nan" in err and "lenet5.pt keeps 1 epoch(s)" in err and "Resume with" not in err
    state = checkpoint.load(out / "lenet5.pt")
    assert len(state["epochs"]) == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert not (out / "lenet5.onnx").exists()


# ---------------------------------------------------------------------------- untrusted downloads


def test_corrupt_cached_file_is_not_trusted(tmp_path, monkeypatch):
    # The HTTP server tests live in test_download.py; here: a corrupt file already in the
    # cache is deleted and downloaded again, never used.
    cache = tmp_path / "mnist"
    cache.mkdir()
    (cache / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(3, np.uint8))))
    monkeypatch.setitem(fetch.SHA256, "mnist", {"t10k-labels-idx1-ubyte.gz": "f" * 64})
    with pytest.raises(DataError, match="could not download"):
        fetch.fetch("mnist", cache, urls=("http://127.0.0.1:9/",))
    assert list(cache.iterdir()) == []
