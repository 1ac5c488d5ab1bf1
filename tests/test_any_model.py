"""Any ONNX model through `crossrt bench-infer` (and `crossrt quantize`): inputs read from the graph,
bound by flags, generated or given, every runtime that can run it, outputs compared with ONNX
Runtime CPU fp32. The models are real ONNX files the tests make (torch exports, onnx.helper)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto as T
from onnx import helper, numpy_helper

from conftest import run_main


def _graph(path, nodes, ins, outs, inits=()):
    model = helper.make_model(
        helper.make_graph(nodes, path.stem, ins, outs, list(inits)),
        opset_imports=[helper.make_opsetid("", 17)],
        ir_version=8,
    )
    onnx.save(model, str(path))
    return path


def _weight(name, shape, seed=0):
    return numpy_helper.from_array(np.random.default_rng(seed).standard_normal(shape).astype(np.float32), name)


def _export(module, example, path, **axes):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), example, str(path), dynamo=False, opset_version=17, **axes)
    return path


class TwoHeads(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body, self.head = torch.nn.Linear(12, 8), torch.nn.Linear(8, 5)

    def forward(self, x):
        features = torch.relu(self.body(x))
        return self.head(features), features


def conv_net(path):
    """A conv net with a named dynamic batch and a dynamic height and width."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 4),
    )
    return _export(
        net,
        (torch.zeros(1, 3, 16, 16),),
        path,
        input_names=["image"],
        output_names=["scores"],
        dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}, "scores": {0: "batch"}},
    )


def scaled(path):
    """Two inputs, one of them an int64 scalar that must be given: y = x * k."""
    nodes = [helper.make_node("Cast", ["k"], ["kf"], to=T.FLOAT), helper.make_node("Mul", ["x", "kf"], ["y"])]
    return _graph(
        path,
        nodes,
        [helper.make_tensor_value_info("x", T.FLOAT, ["n", 6]), helper.make_tensor_value_info("k", T.INT64, [])],
        [helper.make_tensor_value_info("y", T.FLOAT, ["n", 6])],
    )


def two_outputs(path):
    return _export(
        TwoHeads(),
        (torch.zeros(1, 12),),
        path,
        input_names=["x"],
        output_names=["logits", "features"],
        dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}, "features": {0: "n"}},
    )


def minus_one_mlp(path):
    """An MLP whose batch dimension the graph writes as -1."""
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("MatMul", ["r", "w2"], ["y"]),
    ]
    return _graph(
        path,
        nodes,
        [helper.make_tensor_value_info("x", T.FLOAT, [-1, 16])],
        [helper.make_tensor_value_info("y", T.FLOAT, [-1, 3])],
        [_weight("w1", (16, 32)), _weight("w2", (32, 3), 1)],
    )


def no_shape(path):
    """An input the graph gives no shape at all."""
    return _graph(
        path,
        [helper.make_node("Tanh", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", T.FLOAT, None)],
        [helper.make_tensor_value_info("y", T.FLOAT, None)],
    )


def with_det(path):
    """An operator OpenVINO has no conversion for (Det); ONNX Runtime runs it."""
    return _graph(
        path,
        [helper.make_node("Det", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", T.FLOAT, ["n", 3, 3])],
        [helper.make_tensor_value_info("y", T.FLOAT, ["n"])],
    )


# name: (maker, the flags it needs, outputs, a flag it cannot do without and the error's words)
MODELS = {
    "conv-dynamic-hw": (
        conv_net,
        ["--dim", "height=20,width=24", "--batch-size", "2"],
        ["scores"],
        "not bound: height, width (of image float32[batch, 3, height, width]): use --dim height=N,width=N",
    ),
    "int64-scalar": (scaled, ["--value", "k=3"], ["y"], "input 'k' is int64: crossrt does not make up int64 values"),
    "two-outputs": (two_outputs, [], ["logits", "features"], None),
    "minus-one-batch": (minus_one_mlp, ["--batch-size", "4"], ["y"], None),
    "no-shape": (no_shape, ["--shape", "x=2x5"], ["y"], "input 'x' has no shape in the graph: give it with --shape x="),
    "openvino-cannot": (with_det, [], ["y"], None),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    return {name: make(folder / f"{name}.onnx") for name, (make, *_) in MODELS.items()}


def _bench(model, *flags, cwd):
    out = run_main(
        "bench-infer",
        "--model",
        str(model),
        *flags,
        "--min-time",
        "0",
        "--min-repeats",
        "2",
        "--warmup",
        "1",
        "--batches-per-pass",
        "3",
        "--json",
        "b.json",
        cwd=cwd,
    )
    return out, json.loads((cwd / "b.json").read_text()) if (cwd / "b.json").exists() else None


@pytest.mark.parametrize("name", MODELS)
def test_any_model_under_every_runtime_that_can_run_it(models, name, tmp_path):
    """Each model: quantized with the same flags, then timed under onnxruntime, openvino and
    onnxruntime-int8 at 1 and 2 threads, every output compared with ONNX Runtime CPU fp32."""
    _, flags, outputs, _ = MODELS[name]
    binding = [f for i, f in enumerate(flags) if "--batch-size" not in flags[i - i % 2 : i - i % 2 + 1]]
    q = run_main(
        "quantize",
        "--model",
        str(models[name]),
        "--out",
        str(tmp_path / "q.int8.onnx"),
        *binding,
        "--calibration-images",
        "8",
        cwd=tmp_path,
    )
    int8 = q.code == 0
    assert int8 or name in ("int64-scalar", "openvino-cannot", "no-shape"), q.err  # nothing to quantize in those
    assert int8 or (q.code == 2 and "Traceback" not in q.err and len(q.err.strip().splitlines()) == 1), q.err
    out, result = _bench(
        models[name],
        *flags,
        "--runtimes",
        "onnxruntime,openvino,onnxruntime-int8",
        "--threads",
        "1,2",
        "--int8-model",
        str(tmp_path / "q.int8.onnx"),
        cwd=tmp_path,
    )
    assert "Traceback" not in out.err
    assert result["dataset"] is None and result["model_info"]["name"] == f"{name}.onnx"
    assert result["model_info"]["parameters"] >= 0 and len(result["model_info"]["sha256"]) == 64
    runs = result["runs"]
    for r in runs:
        assert [o["name"] for o in r["outputs"]] == outputs and r["samples"] > 0 and r["accuracy"] is None
        assert r["samples_per_s"] > 0 and len(r["pass_times_s"]) == 2
        if r["precision"] == "fp32":
            assert r["parity_ok"] is True and all(o["max_rel"] <= 1e-4 for o in r["outputs"]), r
    got = {(r["runtime"], r["threads"]) for r in runs}
    assert {("onnxruntime", 1), ("onnxruntime", 2)} <= got
    if name == "openvino-cannot":  # a failed row with OpenVINO's own reason; the run went on
        assert out.code == 1 and {f["runtime"] for f in result["failed"]} == {"openvino"}
        assert all("No conversion rule found for operations: Det" in f["reason"] for f in result["failed"])
    else:
        assert ("openvino", 1) in got and ("openvino", 2) in got, result["failed"]
    assert (("onnxruntime-int8", 1) in got) == int8
    assert out.code == (1 if result["failed"] or any(r["parity_ok"] is False for r in runs) else 0), out.err


@pytest.mark.parametrize("name", [n for n, m in MODELS.items() if m[3]])
def test_what_is_not_bound_is_one_line_naming_the_input_and_the_flag(models, name, tmp_path):
    out, _ = _bench(models[name], "--runtimes", "onnxruntime", cwd=tmp_path)
    assert out.code == 2 and len(out.err.strip().splitlines()) == 1 and "Traceback" not in out.err
    assert MODELS[name][3] in out.err, out.err
    assert not (tmp_path / "results").exists()


def test_a_model_s_table_names_it_and_its_bound_inputs(models, tmp_path):
    out, result = _bench(
        models["conv-dynamic-hw"],
        "--dim",
        "height=20,width=24",
        "--batch-size",
        "2",
        "--runtimes",
        "onnxruntime,pytorch",
        "--threads",
        "1",
        cwd=tmp_path,
    )
    assert out.code == 0, out.err
    text = " ".join(out.out.split())
    assert "conv-dynamic-hw.onnx" in text and "image float32[batch=2, 3, height=20, width=24]" in text
    assert "samples/s" in text and "kFLOP/sample" in text
    assert "not run: pytorch on cpu: needs the network in PyTorch: conv-dynamic-hw.onnx is not a crossrt" in text
    assert result["flops_per_sample"] > 2 * 3 * 8 * 9 * 20 * 24  # the convolution alone, per image


def test_inputs_from_a_file(models, tmp_path):
    """--inputs FILE.npz: one array per input; its shapes need no flags."""
    x = np.arange(30, dtype=np.float32).reshape(5, 6)
    np.savez(tmp_path / "in.npz", x=x, k=np.array(2, dtype=np.int64))
    out, result = _bench(
        models["int64-scalar"],
        "--inputs",
        str(tmp_path / "in.npz"),
        "--runtimes",
        "onnxruntime",
        "--threads",
        "1",
        cwd=tmp_path,
    )
    assert out.code == 0, out.err
    assert [r["batch_size"] for r in result["runs"]] == [5] and result["runs"][0]["samples"] == 5 * 3
    np.savez(tmp_path / "bad.npz", x=x)
    out, _ = _bench(models["int64-scalar"], "--inputs", str(tmp_path / "bad.npz"), cwd=tmp_path)
    assert out.code == 2 and "no array for input(s) k" in out.err


@pytest.mark.parametrize(
    "flags,needle",
    [
        (["--value", "nope=1"], "--value nope: the model has no input 'nope'"),
        (["--dim", "height=-1"], "--dim: must be a number >= 0, got -1"),
        (["--dim", "depth=3"], "--dim depth: no input has a dimension named 'depth'"),
        (["--shape", "image=1x3x8"], "--shape image=1x3x8: the graph says image float32[batch, 3, height, width]"),
        (["--dim", "height=100000,width=100000"], "GiB of inputs"),
        (["--batch-size", "3", "--shape", "image=2x3x4x4"], "--batch-size 3: the first dimension"),
    ],
)
def test_bad_bindings_are_one_line(models, tmp_path, flags, needle):
    out, _ = _bench(models["conv-dynamic-hw"], *flags, "--runtimes", "onnxruntime", cwd=tmp_path)
    assert out.code == 2 and "Traceback" not in out.err and needle in out.err, out.err


def test_external_data_outside_the_model_s_folder_is_refused(tmp_path):
    model = onnx.load(str(minus_one_mlp(tmp_path / "m.onnx")))
    w = model.graph.initializer[0]
    w.data_location, w.raw_data = T.EXTERNAL, b""
    del w.float_data[:]
    w.external_data.add(key="location", value="../../etc/passwd")
    (tmp_path / "inner").mkdir()
    (tmp_path / "inner" / "m.onnx").write_bytes(model.SerializeToString())  # onnx.save itself refuses to write it
    out, _ = _bench(tmp_path / "inner" / "m.onnx", cwd=tmp_path)
    assert out.code == 2 and "names external data '../../etc/passwd', outside the model's folder" in out.err
