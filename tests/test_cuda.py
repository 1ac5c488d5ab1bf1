"""The CUDA paths, on a real GPU only (the `cuda` marker skips them elsewhere; `ort_cuda` also
needs onnxruntime-gpu's CUDA provider, so the torch-only tests run where it is missing)."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import run_cli

pytestmark = pytest.mark.cuda


@pytest.fixture(scope="module")
def cuda_trained(tiny_data, tmp_path_factory):
    work = tmp_path_factory.mktemp("cuda")
    out = run_cli(
        "train",
        "--device",
        "cuda",
        "--data-dir",
        str(tiny_data),
        "--epochs",
        "2",
        "--batch-size",
        "60",
        "--json",
        "run.json",
        cwd=work,
    )
    assert out.returncode == 0, out.stderr
    run = json.loads((work / "run.json").read_text())
    assert run["device"] == "cuda" and run["environment"]["gpu"]["name"]
    assert run["tuning"]["cudnn_benchmark"] is True and run["setup_s"] > 0
    return work


def _bench(work, tiny_data, *args) -> list[dict]:
    out = run_cli(
        "bench-infer",
        "--data-dir",
        str(tiny_data),
        "--threads",
        "1",
        "--warmup",
        "2",
        "--min-time",
        "0",
        "--min-repeats",
        "2",
        "--json",
        "bench.json",
        *args,
        cwd=work,
    )
    assert out.returncode == 0, out.stderr
    runs = json.loads((work / "bench.json").read_text())["runs"]
    cuda = [r for r in runs if r["provider"] == "cuda"]
    assert {r["io"] for r in cuda} == {"end-to-end", "device-resident", "cuda-graph"}
    assert all(r["parity_ok"] is True and r["math"] == "tf32" for r in cuda)
    assert all(set(r["split_ms"]) == {"h2d", "enqueue", "compute", "d2h"} for r in cuda if r["io"] == "end-to-end")
    return cuda


def test_pytorch_rows_on_cuda_need_no_onnxruntime_gpu(cuda_trained, tiny_data):
    cuda = _bench(cuda_trained, tiny_data, "--provider", "cuda", "--runtimes", "pytorch")
    assert {r["runtime"] for r in cuda} == {"pytorch"} and cuda[0]["providers"][0].startswith("cuda:0 ")


@pytest.mark.ort_cuda
def test_onnxruntime_rows_on_cuda(cuda_trained, tiny_data):
    cuda = _bench(cuda_trained, tiny_data, "--provider", "cuda,cpu")
    for r in (r for r in cuda if r["runtime"] == "onnxruntime"):
        assert r["providers"][0] == "CUDAExecutionProvider"
        assert set(r["placement"]) == {"CUDAExecutionProvider"}  # every node on the GPU
    assert {r["runtime"] for r in cuda} == {"onnxruntime", "pytorch"}


def _train(tmp_path, data, name, *args):
    # cuDNN's heuristics instead of its timing search: the same algorithms in every process, so that
    # separate runs differ only by float nondeterminism, not by a different choice of kernels.
    out = run_cli(
        "train",
        "--device",
        "cuda",
        "--data-dir",
        str(data),
        "--batch-size",
        "60",
        "--no-export",
        "--no-cudnn-benchmark",
        "--out",
        name,
        "--json",
        f"{name}.json",
        *args,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    return json.loads((tmp_path / f"{name}.json").read_text())


def _weight_gap(tmp_path, a, b) -> float:
    """The mean absolute weight difference between two runs' checkpoints: a maximum is one weight
    whose near-zero gradient took the other sign in one run (Adam then moves it by about lr for
    good), so one or two such flips could decide a comparison of maxima; a mean over all weights
    is not moved by them."""
    import torch

    from crossrt import checkpoint

    wa, wb = (checkpoint.load(tmp_path / n / "lenet5.pt")["model"] for n in (a, b))
    return float(torch.cat([(wa[k] - wb[k]).abs().flatten().double() for k in wa]).mean())


def _same_training(a: dict, b: dict) -> None:
    """Two runs of one recipe agree in what they learn. Not in the weights to 1e-3: Adam's first
    steps move each weight by about +-lr*sign(gradient), so a near-zero gradient of the other sign
    in one run leaves a 2e-3 gap for good; losses and accuracy do agree."""
    assert [e["train_loss"] for e in a["epochs"]] == pytest.approx([e["train_loss"] for e in b["epochs"]], rel=2e-2)
    assert abs(a["final_accuracy"] - b["final_accuracy"]) <= 0.03


def test_cuda_graphs_train_like_eager_steps(tmp_path):
    """630 images in batches of 60: a last batch of 30 gets its own graph; a learning-rate step
    every epoch must reach the captured Adam step."""
    from conftest import write_dataset

    data = write_dataset(tmp_path / "data", n_train=630, n_test=150)
    lr = ("--epochs", "3", "--lr-step", "1", "--lr-gamma", "0.5", "--valid-batch-size", "100")
    graph = _train(tmp_path, data, "graph", *lr)
    eager = _train(tmp_path, data, "eager", "--no-cuda-graph", *lr)
    assert graph["tuning"]["cuda_graph"] is True and eager["tuning"]["cuda_graph"] is False
    assert graph["tuning"]["cudnn_benchmark"] is False
    assert graph["setup_s"] > 0 and eager["setup_s"] == 0
    assert graph["total_s"] == pytest.approx(graph["train_s"] + graph["valid_s"] + graph["setup_s"])
    assert graph["total_without_setup_s"] == pytest.approx(graph["train_s"] + graph["valid_s"])
    assert [e["lr"] for e in graph["epochs"]] == pytest.approx([1e-3, 5e-4, 2.5e-4])
    _same_training(graph, eager)
    # The schedule reached the graph: a constant-lr run ends much farther away than the eager twin.
    _train(tmp_path, data, "constant", "--epochs", "3", "--valid-batch-size", "100")
    assert _weight_gap(tmp_path, "graph", "constant") > 5 * _weight_gap(tmp_path, "graph", "eager")


def test_cuda_graphs_resume_and_bf16(tiny_data, tmp_path):
    straight = _train(tmp_path, tiny_data, "straight", "--epochs", "2")
    _train(tmp_path, tiny_data, "resumed", "--epochs", "1")
    resumed = _train(tmp_path, tiny_data, "resumed", "--epochs", "2", "--resume")
    assert [e["epoch"] for e in resumed["epochs"]] == [1, 2]
    _same_training(straight, resumed)
    bf16 = _train(tmp_path, tiny_data, "bf16", "--epochs", "2", "--precision", "bf16")
    assert bf16["math"] == "bf16" and bf16["tuning"]["cuda_graph"] is True
    assert abs(bf16["final_accuracy"] - straight["final_accuracy"]) <= 0.05


def test_resume_across_modes_on_a_gpu(tiny_data, tmp_path):
    """An eager checkpoint resumes with CUDA graphs, and a CUDA-graph one eagerly and on the CPU."""
    _train(tmp_path, tiny_data, "eager-first", "--epochs", "1", "--no-cuda-graph")
    graphs = _train(tmp_path, tiny_data, "eager-first", "--epochs", "2", "--resume")
    assert graphs["tuning"]["cuda_graph"] is True and len(graphs["epochs"]) == 2
    _train(tmp_path, tiny_data, "graph-first", "--epochs", "1")
    eager = _train(tmp_path, tiny_data, "graph-first", "--epochs", "2", "--resume", "--no-cuda-graph")
    assert eager["tuning"]["cuda_graph"] is False
    out = run_cli(
        "train",
        "--device",
        "cpu",
        "--data-dir",
        str(tiny_data),
        "--batch-size",
        "60",
        "--no-export",
        "--out",
        "graph-first",
        "--epochs",
        "3",
        "--resume",
        "--threads",
        "1",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr


def test_one_rank_under_torchrun_uses_nccl(tiny_data, tmp_path):
    """One GPU cannot host two NCCL ranks, but one rank still runs the process group, the barrier
    and the all-reduce on CUDA."""
    import os
    import sys

    from conftest import python_path

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "1",
            "-m",
            "crossrt",
            "train",
            "--device",
            "cuda",
            "--epochs",
            "2",
            "--data-dir",
            str(tiny_data),
            "--batch-size",
            "60",
            "--no-export",
            "--out",
            "ranked",
            "--json",
            "ranked.json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": python_path()},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    run = json.loads((tmp_path / "ranked.json").read_text())
    assert run["backend"] == "nccl" and run["world_size"] == 1 and len(run["epochs"]) == 2


@pytest.mark.ort_cuda
def test_doctor_on_a_gpu_machine(tmp_path):
    out = run_cli("doctor", "--device", "cuda", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert any(
        ln.startswith("ok   ONNX Runtime CUDA session") and ln.endswith("node(s) on CUDAExecutionProvider")
        for ln in lines
    ), out.stdout
    assert any(ln.startswith("ok   CUDA tensor op: runs on ") for ln in lines)
    assert lines[-1] == "ready for the cuda mode"
