"""More runtimes on the same batches: OpenVINO, torch.compile and the int8 model, each run for
real on the tiny dataset, and a runtime that cannot run here reported in one line."""

from __future__ import annotations

import json
import shutil
import sys

import onnx
import pytest

from crossrt.bench_infer import LOW_PRECISION_TOLERANCE
from crossrt.cli import main

from conftest import run_cli, run_main


@pytest.fixture(scope="module")
def quantized(trained, tiny_data, tmp_path_factory):
    """A copy of the trained exports with an int8 model made by `crossrt quantize` (in this process)."""
    out = tmp_path_factory.mktemp("runtimes") / "exports"
    shutil.copytree(trained, out)
    ran = run_main(
        "quantize",
        "--model",
        str(out / "lenet5.onnx"),
        "--data-dir",
        str(tiny_data),
        "--calibration-images",
        "300",
        cwd=out.parent,
    )
    assert ran.code == 0, ran.err
    assert "top-1 agreement" in ran.out and "300 data training images" in ran.out
    return out


def test_quantize_writes_a_checked_int8_model(quantized):
    model = onnx.load(str(quantized / "lenet5.int8.onnx"))
    onnx.checker.check_model(model)
    meta = {p.key: p.value for p in model.metadata_props}
    assert "static QDQ, per-channel" in meta["quantization"] and meta["calibration_images"] == "300"
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in model.graph.node}
    assert (quantized / "lenet5.int8.onnx").stat().st_size < (quantized / "lenet5.onnx").stat().st_size / 2


@pytest.mark.parametrize(
    "runtimes",
    [
        "onnxruntime,pytorch,openvino,onnxruntime-int8",
        # torch.compile from a cold inductor cache: a C++ compile, tens of seconds
        pytest.param("all", marks=pytest.mark.slow),
    ],
)
def test_every_runtime_on_the_same_batches(quantized, tiny_data, runtimes):
    out = run_cli(
        "bench-infer",
        "--model",
        str(quantized / "lenet5.onnx"),
        "--data-dir",
        str(tiny_data),
        "--runtimes",
        runtimes,
        "--threads",
        "1",
        "--batch-size",
        "50",
        "--min-time",
        "0",
        "--min-repeats",
        "2",
        "--json",
        "all.json",
        cwd=quantized.parent,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads((quantized.parent / "all.json").read_text())
    runs = {(r["runtime"], r["precision"]): r for r in result["runs"]}
    every = {"onnxruntime", "pytorch", "openvino", "torch-compile", "onnxruntime-int8"}
    assert {k[0] for k in runs} == (every if runtimes == "all" else set(runtimes.split(",")))
    assert result["skipped"] == []
    for (runtime, precision), r in runs.items():
        assert (
            r["samples"] == 200
            and len(r["pass_times_s"]) == 2
            and r["passes"] == 2 * r["passes_per_repeat"]
            and r["session_create_s"] > 0
        ), runtime
        assert r["parity_ok"] is True, (runtime, precision, r["accuracy_delta"])
        if precision == "fp32":
            assert r["accuracy_delta"] == 0 and r["math"] == "fp32"
        else:
            assert abs(r["accuracy_delta"]) <= LOW_PRECISION_TOLERANCE and r["math"] == precision
    assert runs[("onnxruntime-int8", "int8")]["spin"] is True and runs[("openvino", "fp32")]["spin"] is None
    assert runs[("openvino", "fp32")]["providers"][0].startswith("OpenVINO CPU")


def test_a_runtime_that_cannot_run_here_is_one_line(capsys, trained, tiny_data, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if it were not installed
    assert (
        main(
            [
                "bench-infer",
                "--model",
                str(trained / "lenet5.onnx"),
                "--data-dir",
                str(tiny_data),
                "--runtimes",
                "onnxruntime,openvino,onnxruntime-int8",
                "--threads",
                "1",
                "--min-time",
                "0",
                "--min-repeats",
                "1",
                "--json",
                "b.json",
            ]
        )
        == 0
    )
    text = " ".join(capsys.readouterr().out.split())
    assert "not run: openvino on cpu: not installed: pip install 'crossrt[openvino]'" in text
    assert "not run: onnxruntime-int8 on cpu: no int8 model" in text and "crossrt quantize" in text
    result = json.loads((tmp_path / "b.json").read_text())
    assert [r["runtime"] for r in result["runs"]] == ["onnxruntime"]
    assert [s["runtime"] for s in result["skipped"]] == ["openvino", "onnxruntime-int8"]


def test_a_runtime_is_one_registry_line(trained, tiny_data, monkeypatch, tmp_path):
    """A runtime added to the registry alone is planned, timed, scored and saved like the others."""
    from crossrt.bench_infer import prepare, run_bench
    from crossrt.config import BenchConfig
    from crossrt.fetch import resolve
    from crossrt.plan import plan
    from crossrt.runtimes.registry import RUNTIMES, Runtime

    monkeypatch.setitem(
        RUNTIMES, "onnxruntime-again", Runtime("onnxruntime-again", "ONNX Runtime again", "onnxruntime", spins=True)
    )
    cfg = BenchConfig(
        model=trained / "lenet5.onnx",
        runtimes=("onnxruntime-again", "pytorch"),
        threads=(1,),
        spin="both",
        min_time=0,
        min_repeats=1,
    )
    assert [(r.runtime, r.spin) for r in plan(cfg)] == [
        ("onnxruntime-again", True),
        ("onnxruntime-again", False),
        ("pytorch", None),
    ]
    result = run_bench(cfg, resolve(cfg.data, trained_on=("data", str(tiny_data))), prepare(cfg))
    assert [r.runtime for r in result.runs] == ["onnxruntime-again"] * 2 + ["pytorch"]
    assert all(r.parity_ok for r in result.runs) and result.runs[0].providers == ["CPUExecutionProvider"]
    assert result.to_dict()["runs"][0]["runtime"] == "onnxruntime-again"


def test_the_null_runtime_times_the_harness_and_claims_nothing(trained, tiny_data, tmp_path, monkeypatch):
    """The null runtime runs no model: its row has a time, but no outputs compared, no FLOPs, no
    parity and no accuracy of its own to be judged by; it is never the fastest nor a verdict's pick,
    and `--runtimes all` leaves it out."""
    from crossrt.config import all_runtimes
    from crossrt.runtimes.registry import RUNTIMES

    monkeypatch.chdir(tmp_path)
    argv = ["bench-infer", "--model", str(trained / "lenet5.onnx"), "--data-dir", str(tiny_data)]
    out = run_main(
        *argv, "--runtimes", "onnxruntime,null", "--threads", "1", "--min-time", "0", "--min-repeats", "2",
        "--json", "b.json",
    )  # fmt: skip
    assert out.code == 0, out.err
    runs = {r["runtime"]: r for r in json.loads((tmp_path / "b.json").read_text())["runs"]}
    null, ort = runs["null"], runs["onnxruntime"]
    assert null["samples_per_s"] > 0 and null["outputs"] is None and null["parity_ok"] is None
    assert null["gflops"] is None and null["percent_of_peak"] is None and null["peak_gflops"] is None
    assert null["accuracy"] is None and null["loss"] is None and null["top1_agreement"] is None
    assert ort["gflops"] > 0 and ort["accuracy"] > 0.5
    assert ort["parity_ok"] is True and "null" not in all_runtimes(("all",))
    assert set(all_runtimes(("all",))) == set(RUNTIMES) - {"null"}
    for line in out.out.splitlines():
        assert not ("fastest" in line and "null" in line), line


def test_an_execution_provider_is_a_registry_line_with_options(trained, tiny_data, monkeypatch, tmp_path):
    """An ONNX Runtime EP is a registry line whose options name it (ORT's OpenVINO EP, as
    docs/extending.md writes it: this build lacks it, so a skipped row, one line why; it is not in
    crossrt's registry, since its wheel replaces onnxruntime-gpu). The mechanism, shown with an EP
    that is here: the CPU EP with the graph optimiser off, a line of the registry alone, timed,
    compared and saved with the options it ran with."""
    from crossrt.runtimes.registry import RUNTIMES, Runtime

    unfused = (("ep", "CPUExecutionProvider"), ("graph_optimization", "disabled"))
    line = Runtime("onnxruntime-unfused", "ONNX Runtime unfused", "onnxruntime", options=unfused)
    monkeypatch.setitem(RUNTIMES, "onnxruntime-unfused", line)
    openvino_ep = (("ep", "OpenVINOExecutionProvider"), ("ep_options", "device_type=CPU"))
    line = Runtime("onnxruntime-openvino", "ONNX Runtime OpenVINO EP", "onnxruntime", spins=True, options=openvino_ep)
    monkeypatch.setitem(RUNTIMES, "onnxruntime-openvino", line)
    out = run_main(
        "bench-infer", "--model", str(trained / "lenet5.onnx"), "--data-dir", str(tiny_data),
        "--runtimes", "onnxruntime,onnxruntime-unfused,onnxruntime-openvino", "--threads", "1",
        "--min-time", "0", "--min-repeats", "1", "--json", "b.json", cwd=tmp_path,
    )  # fmt: skip
    assert out.code == 0, out.err
    saved = json.loads((tmp_path / "b.json").read_text())
    runs = {r["runtime"]: r for r in saved["runs"]}
    assert runs["onnxruntime-unfused"]["options"]["graph_optimization"] == "disabled"
    assert runs["onnxruntime"]["options"]["graph_optimization"] == "all"
    assert all(r["parity_ok"] for r in runs.values()) and runs["onnxruntime-unfused"]["placement"] is None
    (skip,) = saved["skipped"]
    assert skip["runtime"] == "onnxruntime-openvino" and "has no OpenVINOExecutionProvider" in skip["reason"]


def test_a_runtime_option_reaches_the_session(trained):
    """Options are not only recorded: with the graph optimiser off ORT runs Conv and Relu as nodes
    of their own, with it on (the default) it fuses them, and its profiler sees fewer nodes."""
    import numpy as np

    from crossrt.runtimes.onnxruntime import Options, placement

    feed = {"input": np.zeros((2, 1, 28, 28), np.float32)}
    fused = sum(placement(trained / "lenet5.onnx", "cpu", feed).values())
    unfused = sum(placement(trained / "lenet5.onnx", "cpu", feed, Options(graph_optimization="disabled")).values())
    assert unfused > fused > 0


def test_runtime_option_flag_sets_recorded_options(trained, tiny_data, tmp_path):
    """--runtime-option NAME=VALUE reaches every runtime asked for that has NAME (not PyTorch), is
    recorded in the result's config and in every row's options, and the table says it was set."""
    out = run_main(
        "bench-infer", "--model", str(trained / "lenet5.onnx"), "--data-dir", str(tiny_data),
        "--runtimes", "onnxruntime,pytorch", "--threads", "1", "--min-time", "0", "--min-repeats", "1",
        "--runtime-option", "graph_optimization=basic,onnxruntime.inter_op_threads=2", "--json", "b.json",
        cwd=tmp_path,
    )  # fmt: skip
    assert out.code == 0, out.err
    saved = json.loads((tmp_path / "b.json").read_text())
    runs = {r["runtime"]: r for r in saved["runs"]}
    ort = runs["onnxruntime"]["options"]
    assert ort == {
        **ort,
        "ep": "",
        "graph_optimization": "basic",
        "inter_op_threads": 2,
        "execution_mode": "sequential",
    }
    assert runs["pytorch"]["options"] == {"compile": False}
    assert saved["config"]["runtime_options"] == ["graph_optimization=basic", "onnxruntime.inter_op_threads=2"]
    assert "runtime options: graph_optimization=basic, onnxruntime.inter_op_threads=2" in out.out


@pytest.mark.parametrize(
    "item, says",
    [
        ("nosuch=1", "--runtime-option nosuch=1: any of onnxruntime, pytorch takes no option 'nosuch'"),
        ("onnxruntime.nosuch=1", "--runtime-option onnxruntime.nosuch: onnxruntime has no such option (it has: ep,"),
        ("onnxruntime.inter_op_threads=two", "onnxruntime.inter_op_threads=two: expected a value of type int"),
        ("pytorch.compile=maybe", "--runtime-option pytorch.compile=maybe: expected on or off"),
        (
            "graph_optimization=fast",
            "--runtime-option graph_optimization: unknown value 'fast' (choose from disabled, basic",
        ),
        ("onnxruntime.ep_options=novalue", "--runtime-option ep_options 'novalue': expected NAME=VALUE"),
        ("tensorrt.x=1", "--runtime-option 'tensorrt.x=1': no runtime 'tensorrt'"),
        ("=1", "--runtime-option '=1': expected [RUNTIME.]NAME=VALUE"),
    ],
)
def test_a_bad_runtime_option_is_one_line(trained, tmp_path, item, says):
    out = run_main("bench-infer", "--model", str(trained / "lenet5.onnx"), "--runtime-option", item, cwd=tmp_path)
    assert out.code == 2 and says in out.err, out.err
    assert "Traceback" not in out.err and len(out.err.strip().splitlines()) == 1
