"""ONNX export: a real file that onnx.checker accepts, a dynamic batch, metadata, parity."""

from __future__ import annotations

import numpy as np
import onnx
import torch

from crossrt.data import normalize
from crossrt.export import check_parity, export_onnx, read_metadata
from crossrt.flops import forward_flops, onnx_flops
from crossrt.model import LeNet5
from crossrt.runtimes.onnxruntime import create_session

from conftest import make_images


def test_export_checker_metadata_parity(tmp_path):
    torch.manual_seed(0)
    model = LeNet5().eval()
    path = tmp_path / "m.onnx"
    export_onnx(model, path, {"dataset": "tiny", "epochs": "0"})
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version >= 17
    assert read_metadata(path) == {"dataset": "tiny", "epochs": "0"}
    assert not list(tmp_path.glob(".*.tmp"))

    session = create_session(path, "cpu", 1)
    for n in (1, 7, 100):  # the batch axis is dynamic
        assert session.run(None, {"input": np.zeros((n, 1, 28, 28), np.float32)})[0].shape == (n, 10)

    x = normalize(make_images(np.arange(300) % 10, np.random.default_rng(0)))
    parity = check_parity(model, path, x)
    assert parity.top1_agreement == 1.0
    assert parity.max_abs_diff < 1e-4
    assert parity.images == 300


def test_flops_from_onnx_match_flops_from_torch(tmp_path):
    for arch in ("lenet5", "lenet5-classic"):
        model = LeNet5(arch)
        export_onnx(model, tmp_path / f"{arch}.onnx", {})
        graph = onnx.load(str(tmp_path / f"{arch}.onnx"))
        assert onnx_flops(graph, {"input": (1, 1, 28, 28)}) == forward_flops(model)
        assert onnx_flops(graph, {"input": (8, 1, 28, 28)}) == 8 * forward_flops(model)
