"""Data-parallel training on 2 local ranks (gloo): the launcher, torchrun's own entry point,
equivalence with one process, resume, Ctrl-C, a dead rank, and bad --nproc values."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from crossrt import checkpoint
from crossrt.cli import main

from conftest import python_path, run_cli, write_dataset

TRAIN = ["train", "--batch-size", "60", "--threads", "1", "--no-export"]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": python_path(), "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}


def _max_diff(a: Path, b: Path) -> float:
    wa, wb = checkpoint.load(a)["model"], checkpoint.load(b)["model"]
    return max((wa[k] - wb[k]).abs().max().item() for k in wa)


@pytest.fixture(scope="module")
def one_process(tiny_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one") / "exp"
    assert main([*TRAIN, "--data-dir", str(tiny_data), "--epochs", "2", "--out", str(out)]) == 0
    return out


def test_two_ranks_train_like_one_process(tiny_data, one_process, tmp_path):
    out = run_cli(
        *TRAIN,
        "--data-dir",
        str(tiny_data),
        "--epochs",
        "2",
        "--nproc",
        "2",
        "--out",
        "exp",
        "--json",
        "run.json",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("epoch   1") == 1 and "2 ranks (gloo) x 1 thread(s)" in out.stdout  # rank 0 speaks
    run = json.loads((tmp_path / "run.json").read_text())
    assert (run["world_size"], run["backend"], run["threads"], run["complete"]) == (2, "gloo", 1, True)
    single = json.loads((one_process / "lenet5.train.json").read_text())
    # The same shuffles and the same global-batch gradient: the same training, up to float order.
    assert [e["train_loss"] for e in run["epochs"]] == pytest.approx(
        [e["train_loss"] for e in single["epochs"]], rel=1e-4
    )
    assert abs(run["final_accuracy"] - single["final_accuracy"]) <= 0.005
    assert _max_diff(tmp_path / "exp" / "lenet5.pt", one_process / "lenet5.pt") < 1e-4
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == ["lenet5.pt", "lenet5.train.json"]


@pytest.mark.slow
def test_torchruns_own_entry_point_and_resume(tiny_data, one_process, tmp_path):
    """What README shows for many machines, here with --standalone: torchrun starts the ranks."""
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "crossrt",
        *TRAIN,
        "--data-dir",
        str(tiny_data),
        "--out",
        "exp",
    ]
    first = subprocess.run([*torchrun, "--epochs", "1"], cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    resumed = subprocess.run(
        [*torchrun, "--epochs", "2", "--resume", "--json", "run.json"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["world_size"] == 2 and [e["epoch"] for e in run["epochs"]] == [1, 2]
    assert _max_diff(tmp_path / "exp" / "lenet5.pt", one_process / "lenet5.pt") < 1e-4


def _ranks_of(launcher: int) -> dict[int, int]:
    """{rank: pid} of the processes crossrt's launcher started (read from their environment)."""
    ranks = {}
    for proc in Path("/proc").iterdir():
        try:
            env = dict(x.split("=", 1) for x in (proc / "environ").read_text().split("\0") if "=" in x)
        except OSError:
            continue
        if env.get("TORCHELASTIC_RUN_ID") == f"crossrt-{launcher}":
            ranks[int(env["RANK"])] = int(proc.name)
    return ranks


@pytest.fixture
def launched(tmp_path):
    """A 2-rank run long enough to be stopped half-way, once its first checkpoint is there."""
    data = write_dataset(tmp_path / "data", n_train=1200, n_test=200)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "crossrt",
            "train",
            "--data-dir",
            str(data),
            "--epochs",
            "30",
            "--batch-size",
            "20",
            "--threads",
            "1",
            "--nproc",
            "2",
            "--out",
            "exp",
        ],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    t0 = time.time()
    while not (tmp_path / "exp" / "lenet5.pt").exists():
        assert time.time() - t0 < 120 and proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    yield proc, tmp_path
    proc.kill()


@pytest.mark.slow  # the quick run launches two ranks once (test_two_ranks_train_like_one_process)
def test_ctrl_c_stops_every_rank_and_keeps_the_checkpoint(launched):
    proc, work = launched
    ranks = _ranks_of(proc.pid)
    assert sorted(ranks) == [0, 1]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Resume with: " in err and "--nproc 2" in err and "--resume" in err
    assert not _ranks_of(proc.pid)  # no rank left behind
    done = len(checkpoint.load(work / "exp" / "lenet5.pt")["epochs"])
    (partial,) = (work / "results").glob("train-*.json")
    result = json.loads(partial.read_text())
    assert result["complete"] is False and len(result["epochs"]) == done >= 1 and result["world_size"] == 2


@pytest.mark.slow
def test_a_rank_that_dies_is_named_and_nothing_hangs(launched):
    proc, work = launched
    os.kill(_ranks_of(proc.pid)[1], signal.SIGKILL)
    t0 = time.time()
    _, err = proc.communicate(timeout=60)
    assert time.time() - t0 < 30
    assert proc.returncode == 1 and "Traceback" not in err
    assert "rank 1" in err and "SIGKILL" in err
    assert not _ranks_of(proc.pid)
    assert len(checkpoint.load(work / "exp" / "lenet5.pt")["epochs"]) >= 1


@pytest.mark.parametrize(
    "value,needle",
    [
        ("0", "--nproc: must be a number >= 1"),
        ("-1", "--nproc: must be"),
        ("7", "--nproc 7: does not divide --batch-size 600"),
        ("1000", "--nproc: at most"),
        ("x", "--nproc: invalid int value"),
    ],
)
def test_bad_nproc(capsys, value, needle):
    assert main(["train", "--nproc", value]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.device_count() > 1, reason="this machine has several GPUs")
def test_more_gpu_ranks_than_gpus(capsys):
    if not torch.cuda.is_available():
        pytest.skip("no GPU: the check that comes first is the missing GPU (test_faults)")
    assert main(["train", "--device", "cuda", "--nproc", "2"]) == 2
    assert "one GPU per rank" in capsys.readouterr().err
