"""The GPU mode's breaks that a CPU can show: a failing configuration does not end a bench, a
checkpoint resumes across the eager and CUDA-graph modes, PyTorch rows ask ONNX Runtime nothing,
and benchmarks/gpu_check.sh runs step by step (here with DEVICE=cpu)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from crossrt import checkpoint
from crossrt.cli import main
from crossrt.config import DataConfig, TrainConfig
from crossrt.fetch import resolve
from crossrt.model import LeNet5
from crossrt.train import place_lr, train

from conftest import ROOT, has_cuda, python_path, run_main, suite_whose_second_bench_raises


def batch_one_only(path):
    """A model that runs one image at a time and fails on more: it reshapes its input to [1, 784]
    (an exporter that traced batch 1 writes such graphs). Input [N, 1, 28, 28], output [N, 10]."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((784, 10), dtype=np.float32), "w")
    shape = numpy_helper.from_array(np.array([1, 784], dtype=np.int64), "shape")
    nodes = [
        helper.make_node("Reshape", ["input", "shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "batch-one",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        [w, shape],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


@pytest.mark.parametrize("isolate", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["in-process", "isolated"])
def test_a_failing_configuration_is_reported_and_the_others_run(workdir, tiny_data, isolate):
    model = batch_one_only(workdir / "batch-one.onnx")
    argv = ["bench-infer", "--model", str(model), "--data-dir", str(tiny_data), "--runtimes", "onnxruntime"]
    out = run_main(
        *argv,
        "--threads",
        "1",
        "--batch-size",
        "1,100,2",
        "--min-time",
        "0",
        "--min-repeats",
        "1",
        "--json",
        "b.json",
        *(["--isolate"] if isolate else []),
    )
    assert out.code == 1 and "Traceback" not in out.err, out.err
    assert "crossrt: error: 2 configuration(s) failed (their reasons are under the table); the others ran" in out.err
    result = json.loads((workdir / "b.json").read_text())
    assert [r["batch_size"] for r in result["runs"]] == [1] and result["complete"] is True
    assert [(f["batch_size"], f["runtime"], f["threads"]) for f in result["failed"]] == [
        (100, "onnxruntime", 1),
        (2, "onnxruntime", 1),
    ]
    assert all("Reshape" in f["reason"] and "\n" not in f["reason"] for f in result["failed"])
    shown = " ".join(out.out.split())
    assert "failed: onnxruntime cpu, 1 thr, batch 100:" in shown and "failed onnxruntime cpu, 1 thr, batch 2:" in shown


def _cfg(data, out, **kw) -> TrainConfig:
    return TrainConfig(data=DataConfig(data_dir=data), out=out, batch_size=60, threads=1, export=False, **kw)


def test_a_cuda_graph_runs_checkpoint_resumes_eagerly_on_the_cpu(tiny_data, tmp_path):
    """A CUDA-graph run saves Adam with capturable=True and the learning rate as a tensor. Resumed
    eagerly, Adam used to refuse it: 'If capturable=True, params and state_steps must be on
    supported devices'. Now it goes on, and trains exactly as an uninterrupted run."""
    data = resolve(DataConfig(data_dir=tiny_data))
    straight, _ = train(_cfg(tiny_data, tmp_path / "straight", epochs=2), data)
    train(_cfg(tiny_data, tmp_path / "resumed", epochs=1), data)
    path = tmp_path / "resumed" / "lenet5.pt"
    state = torch.load(path, weights_only=True)
    for group in state["optimizer"]["param_groups"]:  # what a CUDA-graph run writes (its tensors loaded on the CPU)
        group["capturable"], group["lr"] = True, torch.tensor(group["lr"])
    torch.save(state, path)
    resumed, _ = train(_cfg(tiny_data, tmp_path / "resumed", epochs=2, resume=True), data)
    # Not to the bit: the saved learning rate is a float32 tensor (1e-3 becomes 0.0010000000475).
    assert [e.train_loss for e in resumed.epochs] == pytest.approx([e.train_loss for e in straight.epochs], rel=1e-5)
    a, b = (checkpoint.load(tmp_path / n / "lenet5.pt")["model"] for n in ("straight", "resumed"))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_an_eager_checkpoint_is_put_into_the_cuda_graph_mode(tiny_data, tmp_path):
    """The other way: a CUDA-graph resume builds Adam with capturable=True; loading an eager
    checkpoint used to set it back to False (and the tensor learning rate then failed with 'lr as
    a Tensor is not supported for capturable=False and foreach=True'). A capturable step cannot run
    on a CPU, so this checks the state the step would get: the run's own flag, float32 step counters
    beside their parameters, the learning rate as a tensor."""
    data = resolve(DataConfig(data_dir=tiny_data))
    cfg = _cfg(tiny_data, tmp_path, epochs=1)
    train(cfg, data)
    net = LeNet5()
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr, capturable=True)
    checkpoint.restore(
        cfg.checkpoint, _cfg(tiny_data, tmp_path, epochs=2), data.name, net, optimizer, None, torch.Generator()
    )
    place_lr(optimizer, torch.device("cpu"))
    assert all(g["capturable"] for g in optimizer.param_groups) and torch.is_tensor(optimizer.param_groups[0]["lr"])
    steps = [optimizer.state[p]["step"] for p in net.parameters()]
    assert all(
        s.dtype == torch.float32 and s.device == p.device and float(s) == 10 for s, p in zip(steps, net.parameters())
    )


@pytest.mark.skipif(has_cuda(), reason="this machine has a GPU")
def test_pytorch_cuda_rows_ask_onnxruntime_for_no_cuda_session(trained, monkeypatch, capsys):
    """PyTorch's CUDA rows need torch's CUDA, not onnxruntime-gpu: no ONNX Runtime CUDA session is
    opened for them (ONNX Runtime's CPU provider still gives the reference outputs), and without a
    GPU the error is torch's, naming --provider cuda."""
    import onnxruntime

    asked = []

    class Counted(onnxruntime.InferenceSession):  # real sessions, their providers counted
        def __init__(self, path_or_bytes, *args, providers=None, **kwargs):
            asked.append(str(providers))
            super().__init__(path_or_bytes, *args, providers=providers, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", Counted)
    assert (
        main(["bench-infer", "--model", str(trained / "lenet5.onnx"), "--runtimes", "pytorch", "--provider", "cuda"])
        == 2
    )
    err = capsys.readouterr().err
    assert "--provider cuda: no usable CUDA GPU for torch" in err and "ExecutionProvider" not in err
    assert asked and not any("CUDA" in a for a in asked)


GPU_CHECK = ROOT / "benchmarks" / "gpu_check.sh"


def _gpu_check_env(tmp_path) -> dict:
    return {
        **os.environ,
        "DEVICE": "cpu",
        "EPOCHS": "1",
        "THREADS": "1",
        "BATCHES": "100",
        "PYTHON": sys.executable,
        "PYTHONPATH": python_path(),
        "PYTEST_ADDOPTS": f"-p no:cacheprovider --basetemp={tmp_path / 'inner'}",
    }


def test_gpu_check_parses_and_lists_its_steps(tmp_path, tiny_data):
    """The script's syntax, and its --dry-run: every step in order, nothing run or written."""
    assert subprocess.run(["bash", "-n", str(GPU_CHECK)]).returncode == 0
    dry = subprocess.run(
        ["bash", str(GPU_CHECK), "--dry-run", str(tiny_data), str(tmp_path / "dry"), "/nowhere.py"],
        capture_output=True,
        text=True,
        env=_gpu_check_env(tmp_path),
        cwd=ROOT,
    )
    assert dry.returncode == 0 and not (tmp_path / "dry").exists(), dry.stderr
    steps = [ln.split()[1] for ln in dry.stdout.splitlines() if ln.startswith("== ")]
    assert steps == [
        "train-fp32",
        "train-bf16",
        "reference-recipe",
        "probe",
        "torchrun-1-rank",
        "doctor",
        "bench-infer",
        "tests",
    ]


def test_gpu_check_started_elsewhere_with_relative_paths_gives_its_steps_absolute_ones(tmp_path, tiny_data):
    """Each step runs from the tree's root: MNIST_DIR, OUT_DIR and the probe given relative to
    where the script was started must reach the steps as those folders, not as ones under the root."""
    (tmp_path / "mnist").symlink_to(tiny_data)
    dry = subprocess.run(["bash", str(GPU_CHECK), "--dry-run", "mnist", "out", "probe.py"], capture_output=True,
                         text=True, env=_gpu_check_env(tmp_path), cwd=tmp_path)  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    commands = [ln.split() for ln in dry.stdout.splitlines() if ln.startswith("   ") and "-m" in ln]
    data = {c[c.index("--data-dir") + 1] for c in commands if "--data-dir" in c}
    assert data == {str(tmp_path / "mnist")}, data
    assert f"{tmp_path}/out/train-fp32.json" in dry.stdout and f"{tmp_path}/probe.py" in dry.stdout


@pytest.mark.slow
def test_gpu_check_runs_every_step_and_goes_on_after_a_failure(tmp_path, tiny_data):
    """The script, run for real with DEVICE=cpu on the tiny dataset: every step runs; the probe
    (a file that is not there) fails, and the steps after it still run; the last line names it."""
    out = subprocess.run(
        ["bash", str(GPU_CHECK), str(tiny_data), str(tmp_path / "out"), "/nowhere.py"],
        capture_output=True,
        text=True,
        env=_gpu_check_env(tmp_path),
        cwd=ROOT,
        timeout=900,
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stdout.strip().splitlines()[-1] == "failed steps: probe"
    for name in ("train-fp32", "train-bf16", "reference-recipe", "torchrun-1-rank", "bench-infer"):
        assert (tmp_path / "out" / f"{name}.log").is_file()
    assert json.loads((tmp_path / "out" / "train-bf16.json").read_text())["precision"] == "bf16"


@pytest.mark.skipif(has_cuda(), reason="this machine has a GPU")
def test_the_suite_asks_which_runtimes_run_on_the_gpu_before_training():
    """A real ONNX Runtime CUDA session on a tiny model, and torch's CUDA, asked up front: here
    neither runs, and each says why (on a GPU machine without onnxruntime-gpu, PyTorch alone is timed)."""
    from crossrt.suite import runtimes_on

    assert runtimes_on("cpu", ("onnxruntime", "pytorch")) == (("onnxruntime", "pytorch"), [])
    ok, cannot = runtimes_on("cuda", ("onnxruntime", "pytorch", "openvino"))
    assert ok == () and [c.runtime for c in cannot] == ["onnxruntime", "pytorch", "openvino"]
    assert cannot[0].reason.startswith("--provider cuda: ") and "for torch" in cannot[1].reason
    assert "crossrt runs openvino on CPU only" in cannot[2].reason


def test_a_suite_that_fails_late_keeps_the_modes_that_finished(capsys, workdir, tiny_data, monkeypatch):
    """An error in a later mode (here the second mode's bench, as a GPU mode's could) ends the suite
    with exit 1, and the first mode's results are saved, not lost."""
    from crossrt.errors import ProviderError
    from crossrt.files import load_result

    failure = ProviderError("--provider cuda: CUDAExecutionProvider could not run the model")
    assert suite_whose_second_bench_raises(failure, tiny_data, workdir / "s", monkeypatch) == 1
    err = capsys.readouterr().err
    assert "CUDAExecutionProvider could not run the model; stopped after 1 complete mode(s)" in err
    result = load_result(workdir / "suite.json")
    # The second mode trained before its bench failed: that training is kept, without a bench.
    assert result.complete is False and [m.mode for m in result.modes] == ["cpu 1 thread", "cpu 2 threads"]
    assert result.modes[1].bench is None and "kept as far as it got: cpu 2 threads" in err


@pytest.mark.parametrize(
    "ref_math, row_math, delta, agrees",
    [
        ("fp32", "fp32", 0.0001, False),  # both in fp32: one image of 10,000 is a disagreement
        ("tf32", "fp32", 0.0002, True),  # PyTorch on CUDA (cuDNN in TF32) beside a CPU row: two near ties
        ("fp32", "tf32", 0.0002, True),  # an ORT CUDA row (use_tf32) beside PyTorch on the CPU
        ("tf32", "tf32", 0.005, False),  # 50 images: more than TF32 flips
    ],
)
def test_an_fp32_row_beside_a_tf32_one_is_held_to_tf32_s_accuracy_not_to_equality(ref_math, row_math, delta, agrees):
    from crossrt.bench_infer import _finish
    from crossrt.files import load_result

    from conftest import canned

    result = load_result(canned("bench.json"))
    result.runs = [result.runs[4], result.runs[0]]  # PyTorch's row first: the reference, then ORT's
    (ref, row), preds = result.runs, [np.zeros(4, int), np.zeros(4, int)]
    ref.math, row.math, row.accuracy = ref_math, row_math, ref.accuracy - delta
    _finish(result, preds)
    assert row.parity_ok is agrees, (row.accuracy_delta, row.outputs)


def test_the_accuracy_reference_is_pytorch_s_fp32_row_when_there_is_one():
    from crossrt.bench_infer import _finish
    from crossrt.files import load_result

    from conftest import canned

    result = load_result(canned("bench.json"))
    result.runs = [result.runs[4], result.runs[5], result.runs[0]]  # PyTorch CUDA (tf32), PyTorch CPU, ORT CPU
    result.runs[0].math, result.runs[2].accuracy = "tf32", result.runs[1].accuracy  # ORT equals the CPU's
    result.runs[0].accuracy -= 0.0003
    _finish(result, [np.zeros(4, int)] * 3)
    assert result.runs[2].accuracy_delta == 0 and result.runs[2].parity_ok


def test_onnx_runtime_s_python_never_retries_a_failed_session_on_another_provider(tmp_path):
    """ORT's InferenceSession retries a session whose CUDA EP failed on the CPU EP (printing
    "Falling back to ... and retrying"), unless created with enable_fallback=0: then the real
    cause is what crossrt reports, in one line."""
    from crossrt.runtimes.onnxruntime import create_session

    path = tmp_path / "m.onnx"
    batch_one_only(path)
    assert create_session(path, "cpu", 1)._enable_fallback is False


def test_torch_compile_on_cuda_is_listed_as_not_run_without_triton_s_c_compiler_or_python_headers(
    tmp_path, monkeypatch
):
    """Triton compiles a C launcher per kernel ($CC, else gcc, else clang, with Python.h): on a bare
    GPU image without them, torch.compile's CUDA row is one line of why, like the CPU's C++ check."""
    import sysconfig

    from crossrt.runtimes.pytorch import Options, unavailable

    compiled = Options(compile=True)
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no compiler on it
    assert "needs a C compiler (gcc or clang, or $CC)" in unavailable("cuda", compiled)
    assert unavailable("cuda", Options()) is None  # eager PyTorch needs none
    monkeypatch.setenv("CC", "/usr/bin/cc")
    headers = sysconfig.get_paths()
    monkeypatch.setattr(sysconfig, "get_paths", lambda *a, **k: {**headers, "include": str(tmp_path)})
    assert "needs Python's headers (Python.h)" in unavailable("cuda", compiled)
    monkeypatch.setattr(sysconfig, "get_paths", lambda *a, **k: headers)
    here = (Path(headers["include"]) / "Python.h").is_file()  # this interpreter's own headers
    assert (unavailable("cuda", compiled) is None) == here


def test_a_cuda_graph_row_is_skipped_with_why_when_onnx_runtime_reads_an_input_on_the_host(tmp_path):
    """ORT's memory infos name the inputs it reads on the host; on a CUDA session those are the
    inputs of CPU-placed nodes, whose copy cannot be captured. A CPU session reads every input on
    the host: the same check, on real memory infos, names them all."""
    from crossrt.errors import ProviderError
    from crossrt.runtimes.onnxruntime import capturable, create_session, host_inputs

    path = tmp_path / "m.onnx"
    batch_one_only(path)
    session = create_session(path, "cpu", 1)
    assert host_inputs(session) == [i.name for i in session.get_inputs()]
    with pytest.raises(ProviderError, match=r"cuda-graph: ONNX Runtime reads input\(s\) \S+ on the host"):
        capturable(session)


def test_every_batch_size_a_server_can_form_is_run_before_loadgen_s_first_test(tmp_path):
    """A Server batch takes any size from 1 to --max-batch; cuDNN searches each new shape the first
    time it runs. Every size runs once on every worker's real ONNX Runtime runner before any test."""
    from dataclasses import replace

    from crossrt.loadgen import warm_every_size
    from crossrt.runtimes.onnxruntime import ort_runner
    from crossrt.sut import SUT

    path = tmp_path / "m.onnx"
    _any_batch_relu(path)
    ran: list[tuple[int, int]] = []

    def make_runner(feeds):
        runner = ort_runner(path, "cpu", 1, "host", feeds)

        def outputs(i):
            ran.append((id(feeds), len(feeds[i]["x"])))
            return runner.outputs(i)

        return replace(runner, outputs=outputs)

    sut = SUT(make_runner, {"x": np.ones((5, 4), np.float32)}, max_batch=6, workers=2)
    assert warm_every_size(sut) == [1, 2, 3, 4, 5, 6]
    by_worker = {}
    for feeds, size in ran:
        by_worker.setdefault(feeds, []).append(size)
    assert list(by_worker.values()) == [[1, 2, 3, 4, 5, 6]] * 2  # each worker's runner, every size


def _any_batch_relu(path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_a_cuda_session_may_place_nodes_on_the_cpu_and_says_where_they_ran(tmp_path, capsys):
    """ORT keeps shape computations on the CPU on purpose (#13590) and places there what CUDA has
    no kernel for: forbidding that (session.disable_cpu_ep_fallback) refused any such model whole,
    blaming the install. Only a session captured as a CUDA graph must have every node on the GPU;
    a row whose nodes ran elsewhere says how many, under the table."""
    from crossrt.files import load_result
    from crossrt.runtimes.onnxruntime import session_options
    from crossrt.ui.bench import bench_tables

    def forbids(**kw) -> bool:
        try:
            return session_options(1, **kw).get_session_config_entry("session.disable_cpu_ep_fallback") == "1"
        except RuntimeError:  # ORT: no such entry
            return False

    assert not forbids(own_ep=False) and forbids(own_ep=False, graph=True) and not forbids(own_ep=True)
    from conftest import canned

    result = load_result(canned("bench.json"))
    run = result.runs[0]
    run.providers, run.placement = ["CUDAExecutionProvider"], {"CUDAExecutionProvider": 37, "CPUExecutionProvider": 3}
    bench_tables(result, None)
    said = " ".join(capsys.readouterr().out.split())
    assert "3 on CPU of its 40 nodes (no kernel on CUDA, or shapes ONNX Runtime computes there)" in said, said
