"""bench-infer: scoring, the run plan, and ORT-vs-PyTorch output parity."""

from __future__ import annotations

import numpy as np
import pytest

from crossrt import checkpoint
from crossrt.bench_infer import score
from crossrt.config import BenchConfig
from crossrt.data import in_batches, load_folder, normalize
from crossrt.errors import ConfigError
from crossrt.plan import plan
from crossrt.runtimes.base import all_logits
from crossrt.runtimes.onnxruntime import ort_runner
from crossrt.runtimes.pytorch import torch_runner


def test_score_known_logits():
    logits = np.log(np.array([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]], dtype=np.float32))
    loss, acc, preds = score(logits, np.array([0, 2]))
    assert loss == pytest.approx(-(np.log(0.5) + np.log(0.1)) / 2, rel=1e-6)
    assert acc == 0.5 and preds.tolist() == [0, 1]


def test_plan_runs_cuda_once_per_batch_with_the_most_threads():
    cfg = BenchConfig(providers=("cpu", "cuda"), threads=(1, 4), batch_sizes=(100, 1000))
    rows = plan(cfg)
    cuda = [r for r in rows if r.provider == "cuda"]
    assert {r.threads for r in cuda} == {4}
    assert {r.io for r in cuda} == {"end-to-end", "device-resident", "cuda-graph"}
    assert len(rows) == 2 * (2 * 2 + 2 * 3)  # batches x (cpu: runtimes x threads + cuda: runtimes x data paths)


def test_spin_both_doubles_the_cpu_rows_only():
    """Spinning is how ORT's idle CPU threads wait: --spin both times each CPU row both ways, and
    each CUDA row once (it doubled them, for no difference the GPU makes)."""
    rows = plan(BenchConfig(providers=("cpu", "cuda"), runtimes=("onnxruntime",), threads=(1,), spin="both"))
    assert sorted(r.spin for r in rows if r.provider == "cpu") == [False, True]
    assert [r.spin for r in rows if r.provider == "cuda"] == [True, True, True]  # one per data path


def test_config_rejects_junk():
    with pytest.raises(ConfigError, match="--threads: must be a number >= 0"):
        BenchConfig(threads=(-1,))
    with pytest.raises(ConfigError, match="--provider: needs at least one value"):
        BenchConfig(providers=())


def test_onnxruntime_and_pytorch_agree_on_logits(trained, tiny_data):
    data = load_folder(tiny_data, "tiny", "test")
    x = normalize(data.test_images)
    batches = in_batches(x, 64)
    ort = ort_runner(trained / "lenet5.onnx", "cpu", 1, "host", [{"input": b} for b in batches])
    state = checkpoint.load(trained / "lenet5.pt")
    pt = torch_runner(lambda: checkpoint.build_model(state), "cpu", 1, "host", batches)
    a, b = all_logits(ort, len(batches)), all_logits(pt, len(batches))
    np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)
    assert ort.providers == ["CPUExecutionProvider"]
