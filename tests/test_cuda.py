"""The CUDA paths, on a real GPU only (the `cuda` marker skips them elsewhere)."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli

pytestmark = pytest.mark.cuda


def test_train_and_bench_on_cuda(tiny_data, tmp_path):
    out = run_cli("train", "--device", "cuda", "--data-dir", str(tiny_data), "--epochs", "2",
                  "--batch-size", "60", "--json", "run.json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["device"] == "cuda" and run["environment"]["gpu"]["name"]
    out = run_cli("bench-infer", "--data-dir", str(tiny_data), "--provider", "cuda,cpu", "--threads", "1",
                  "--warmup", "2", "--min-time", "0", "--min-repeats", "2", "--json", "bench.json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    runs = json.loads((tmp_path / "bench.json").read_text())["runs"]
    cuda = [r for r in runs if r["provider"] == "cuda"]
    assert {r["io"] for r in cuda} == {"end-to-end", "device-resident", "cuda-graph"}
    for r in cuda:
        if r["runtime"] == "onnxruntime":
            assert r["providers"][0] == "CUDAExecutionProvider"
            assert set(r["placement"]) == {"CUDAExecutionProvider"}  # every node on the GPU
        assert r["parity_ok"] is True and r["math"] == "tf32"
    assert all(set(r["split_ms"]) == {"h2d", "enqueue", "compute", "d2h"} for r in cuda if r["io"] == "end-to-end")


def _train(tmp_path, data, name, *args):
    out = run_cli("train", "--device", "cuda", "--data-dir", str(data), "--batch-size", "60", "--no-export",
                  "--out", name, "--json", f"{name}.json", *args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    return json.loads((tmp_path / f"{name}.json").read_text())


def _weights_close(tmp_path, a, b, atol=1e-3):
    import torch

    from crossrt import checkpoint

    wa, wb = (checkpoint.load(tmp_path / n / "lenet5.pt")["model"] for n in (a, b))
    return all(torch.allclose(wa[k], wb[k], atol=atol, rtol=1e-3) for k in wa)


def test_cuda_graphs_train_like_eager_steps(tmp_path):
    """630 images in batches of 60: a last batch of 30 gets its own graph; a learning-rate step
    every epoch must reach the captured Adam step."""
    from conftest import write_dataset

    data = write_dataset(tmp_path / "data", n_train=630, n_test=150)
    lr = ("--epochs", "3", "--lr-step", "1", "--lr-gamma", "0.5", "--valid-batch-size", "100")
    graph = _train(tmp_path, data, "graph", *lr)
    eager = _train(tmp_path, data, "eager", "--no-cuda-graph", *lr)
    assert graph["tuning"]["cuda_graph"] is True and eager["tuning"]["cuda_graph"] is False
    assert graph["setup_s"] > 0 and eager["setup_s"] == 0
    assert graph["total_s"] == pytest.approx(graph["train_s"] + graph["valid_s"] + graph["setup_s"])
    assert [e["lr"] for e in graph["epochs"]] == pytest.approx([1e-3, 5e-4, 2.5e-4])
    assert [e["train_loss"] for e in graph["epochs"]] == pytest.approx([e["train_loss"] for e in eager["epochs"]],
                                                                       rel=1e-3)
    assert _weights_close(tmp_path, "graph", "eager")
    _train(tmp_path, data, "constant", "--epochs", "3", "--valid-batch-size", "100")
    assert not _weights_close(tmp_path, "graph", "constant")  # so the schedule did reach the graph


def test_cuda_graphs_resume_and_bf16(tiny_data, tmp_path):
    straight = _train(tmp_path, tiny_data, "straight", "--epochs", "2")
    _train(tmp_path, tiny_data, "resumed", "--epochs", "1")
    resumed = _train(tmp_path, tiny_data, "resumed", "--epochs", "2", "--resume")
    assert [e["epoch"] for e in resumed["epochs"]] == [1, 2]
    assert _weights_close(tmp_path, "straight", "resumed")
    bf16 = _train(tmp_path, tiny_data, "bf16", "--epochs", "2", "--precision", "bf16")
    assert bf16["math"] == "bf16" and bf16["tuning"]["cuda_graph"] is True
    assert abs(bf16["final_accuracy"] - straight["final_accuracy"]) <= 0.05


def test_doctor_on_a_gpu_machine(tmp_path):
    out = run_cli("doctor", "--device", "cuda", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert any(ln.startswith("ok   ONNX Runtime CUDA session") and ln.endswith("node(s) on CUDAExecutionProvider")
               for ln in lines), out.stdout
    assert any(ln.startswith("ok   CUDA tensor op: runs on ") for ln in lines)
    assert lines[-1] == "ready for the cuda mode"
