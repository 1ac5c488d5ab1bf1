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
    assert {r["mode"] for r in cuda} == {"end-to-end", "device-resident"}
    for r in cuda:
        if r["runtime"] == "onnxruntime":
            assert r["providers"][0] == "CUDAExecutionProvider"
        assert r["parity_ok"] is True
    assert all(set(r["split_ms"]) == {"h2d", "compute", "d2h"} for r in cuda if r["mode"] == "end-to-end")
