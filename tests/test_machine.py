"""A machine made ready in one command: `make setup`'s CPU/GPU choice, `crossrt doctor`, and
ONNX Runtime CUDA sessions that say nothing of their own and refuse what they cannot do.

The doctor runs for real: a real ONNX Runtime session on a real tiny model, real nvidia-smi
(or its absence), the real dataset search pointed at a generated dataset.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import torch

from crossrt import fetch
from crossrt.cli import main
from crossrt.doctor import checks, ready
from crossrt.errors import ProviderError

from conftest import ROOT, run_cli

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks what a machine without a GPU says")


def plan(tmp_path, smi: str | None, *args: str) -> str:
    """`make setup-plan` with a fake nvidia-smi first on PATH: one that lists an H200, or one
    that fails the way it does when the driver is missing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    script = {"gpu": 'echo "GPU 0: NVIDIA H200 (UUID: GPU-0)"', "broken": "echo 'NVIDIA-SMI has failed'; exit 9"}[smi]
    (bin_dir / "nvidia-smi").write_text(f"#!/bin/sh\n{script}\n")
    (bin_dir / "nvidia-smi").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("GPU", "TORCH", "MAKEFLAGS")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    out = subprocess.run(
        ["make", "-s", "--no-print-directory", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.skipif(not shutil.which("make"), reason="needs make")
def test_setup_installs_the_gpu_set_only_where_nvidia_smi_lists_a_gpu(tmp_path):
    gpu = plan(tmp_path, "gpu", "setup-plan")
    assert gpu.startswith("GPU=1 (nvidia-smi lists a GPU): torch==2.14.1 and crossrt[test,plots,openvino,loadgen,gpu]")
    cpu = plan(tmp_path, "broken", "setup-plan")
    assert cpu.startswith("GPU=0 (nvidia-smi lists none): torch==2.13.0 and crossrt[test,plots,openvino,loadgen] ")
    assert plan(tmp_path, "gpu", "setup-plan", "GPU=0").startswith("GPU=0 (set by hand): torch==2.13.0")
    assert plan(tmp_path, "broken", "setup-plan", "GPU=1").startswith("GPU=1 (set by hand): torch==2.14.1")


@pytest.mark.skipif(not shutil.which("make"), reason="needs make")
def test_switching_sets_reinstalls(tmp_path):
    """Each set has its own stamp, so `make setup` after the other set installs, in this order:
    torch first (the pinned build), then crossrt with its extras."""
    venv = tmp_path / "venv"
    steps = plan(tmp_path, "gpu", "-n", "setup", f"VENV={venv}").splitlines()
    torch_step = steps.index(f'{venv}/bin/python -m pip install -q "torch==2.14.1"')
    assert steps[torch_step + 1] == f'{venv}/bin/python -m pip install -q -e ".[test,plots,openvino,loadgen,gpu]"'
    assert f"touch {venv}/.installed-gpu" in steps
    (venv / "bin").mkdir(parents=True)
    (venv / ".installed-gpu").touch()  # the GPU set is in; now ask for the CPU one
    steps = plan(tmp_path, "broken", "-n", "setup", f"VENV={venv}").splitlines()
    assert f'{venv}/bin/python -m pip install -q "torch==2.13.0"' in steps
    assert f"touch {venv}/.installed-cpu" in steps


@pytest.fixture
def dataset_here(monkeypatch, tmp_path, tiny_data):
    """`--dataset auto` finds the tiny dataset where Debian's Fashion-MNIST would be."""
    monkeypatch.setenv("CROSSRT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(fetch.SYSTEM_DIRS, "fashion-mnist", (tiny_data,))
    return tiny_data


def test_doctor_checks_a_real_session(dataset_here):
    found = {c.name: c for c in checks()}
    assert found["ONNX Runtime CPU session"].ok
    assert found["ONNX Runtime CPU session"].detail.endswith("node(s) on CPUExecutionProvider")
    assert str(dataset_here) in found["dataset"].detail and found["dataset"].ok
    assert found["torch"].detail.startswith(torch.__version__)
    assert ready(list(found.values()), "cpu")


@pytest.mark.parametrize("mode", ["cpu", "cuda"], ids=["cpu-mode", "gpu-mode"])
def test_doctor_no_dataset_is_information_and_a_bad_data_dir_fails(dataset_here, monkeypatch, capsys, tmp_path, mode):
    """No dataset installed says how to point crossrt at one and does not make a machine "not ready";
    a --data-dir that holds no IDX files does, in either mode."""
    monkeypatch.setitem(fetch.SYSTEM_DIRS, "fashion-mnist", ())  # no dataset anywhere
    found = {c.name: c for c in checks()}
    assert found["dataset"].ok is None and "--data-dir DIR" in found["dataset"].detail
    assert ready(list(found.values()), "cpu")
    if mode == "cpu":
        assert main(["doctor", "--device", "cpu"]) == 0
        assert "ready for the cpu mode" in capsys.readouterr().out
    good = {c.name: c for c in checks(dataset_here)}["dataset"]
    assert good.ok and "600 training and 200 test images" in good.detail
    (tmp_path / "empty").mkdir()
    bad = {c.name: c for c in checks(tmp_path / "empty")}["dataset"]
    assert bad.ok is False and mode in bad.needed_for and "missing train-images" in bad.detail
    assert main(["doctor", "--device", mode, "--data-dir", str(tmp_path / "empty")]) == 1
    out = capsys.readouterr().out
    assert [ln for ln in out.splitlines() if ln.startswith("FAIL dataset")][0].startswith(
        f"FAIL dataset: {tmp_path / 'empty'}: missing train-images"
    )


@no_gpu
def test_doctor_cuda_mode_on_a_machine_without_gpu(tmp_path):
    """Exit 1; every failing item is one line with its fix; nothing of ONNX Runtime's own output."""
    proc = run_cli("doctor", "--device", "cuda", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failing = [ln for ln in proc.stdout.splitlines() if ln.startswith("FAIL")]
    assert {ln.split(":")[0] for ln in failing} >= {"FAIL GPU", "FAIL CUDA tensor op", "FAIL ONNX Runtime CUDA session"}
    assert all(" -> fix: " in ln for ln in failing)
    assert "Failed to load" not in proc.stdout + proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.rstrip().endswith("not ready for the cuda mode: fix the FAIL line(s) the cuda mode needs")


@no_gpu
def test_ort_says_nothing_of_its_own_when_cuda_cannot_start(trained, capfd):
    """ONNX Runtime prints the libraries it cannot load (from C++ too): none of it may show."""
    from crossrt.runtimes.onnxruntime import create_session

    with pytest.raises(ProviderError) as e:
        create_session(trained / "lenet5.onnx", "cuda")
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    assert str(e.value).startswith("--provider cuda: ") and "\n" not in str(e.value)


def test_placement_of_every_lenet5_node(trained):
    import numpy as np

    from crossrt.runtimes.onnxruntime import placement

    nodes = placement(trained / "lenet5.onnx", "cpu", {"input": np.zeros((2, 1, 28, 28), np.float32)})
    assert list(nodes) == ["CPUExecutionProvider"] and nodes["CPUExecutionProvider"] >= 5


def test_ort_cuda_graph_refuses_more_batches_than_graphs(trained):
    """One captured graph per resident batch: a pass of 1,001 batches is refused up front, with
    the batch size that fits (checked before any session, so it holds on any machine)."""
    import numpy as np

    from crossrt.runtimes.onnxruntime import MAX_GRAPHS, ort_runner

    batches = [{"input": np.zeros((1, 1, 28, 28), np.float32)}] * (MAX_GRAPHS + 1)
    with pytest.raises(ProviderError, match=r"at most 1000 \(1001 batches here: use a batch size of 2 or more\)"):
        ort_runner(trained / "lenet5.onnx", "cuda", 0, "cuda-graph", batches)


def test_make_loadgen_passes_provider_on_as_make_bench_infer_does():
    for target in ("bench-infer", "loadgen"):
        out = subprocess.run(["make", "-n", "-s", "--no-print-directory", target, "PROVIDER=cuda", "THREADS=2"],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
        command = next(ln for ln in out.stdout.replace("\\\n", " ").splitlines() if "-m crossrt" in ln)
        assert "--provider cuda" in command and "--threads 2" in command, (target, out.stdout)


@pytest.mark.parametrize("driver, ok", [("535.104.05", False), ("580.82.07", True)])
def test_doctor_names_a_driver_too_old_for_cuda_13(tmp_path, monkeypatch, driver, ok):
    """A driver older than CUDA 13 needs fails every CUDA call with a CUDA-version message (and
    ONNX Runtime's CUDA session with it): the doctor names the driver and its fix in one line."""
    import torch

    from crossrt import doctor

    (tmp_path / "nvidia-smi").write_text(f'#!/bin/sh\necho "NVIDIA H200, {driver}, 143771 MiB"\n')
    (tmp_path / "nvidia-smi").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    (check,) = [c for c in doctor._gpu(torch) if c.name == "NVIDIA driver"]
    assert check.ok is ok and check.detail.startswith(driver)
    if not ok:
        assert "older than the 580 that CUDA 13 needs" in check.detail and "580 or newer" in check.fix
