"""Shared fixtures: tiny real IDX datasets written to disk, and one tiny trained model."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent

# A shell starts a background job (`make test &`, a CI runner's script) with SIGINT ignored, and
# every process it starts inherits that: the tests that stop crossrt with a real SIGINT, as Ctrl-C
# does, need it at its default here and in the processes they start.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """An IDX file of unsigned bytes: magic 0x0000080<rank>, big-endian dims, then the data."""
    magic = 0x0800 + array.ndim if magic is None else magic
    return struct.pack(">I" + "I" * array.ndim, magic, *array.shape) + array.astype(np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray, **kw) -> Path:
    data = idx_bytes(array, **kw)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def make_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Learnable 28x28 images: a bright 6x6 block whose place encodes the class, on noise."""
    images = rng.integers(0, 60, size=(len(labels), 28, 28))
    for i, k in enumerate(labels):
        r, c = 2 + 12 * (k // 5), 1 + 5 * (k % 5)
        images[i, r : r + 6, c : c + 6] = 255
    return images.astype(np.uint8)


def write_dataset(
    folder: Path, n_train: int = 600, n_test: int = 200, gz: bool = False, seed_names: bool = False, seed: int = 0
) -> Path:
    """The four files; seed_names uses `train-images.idx3-ubyte` (the seed's) instead of `-idx3-`."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sep = "." if seed_names else "-"
    ext = ".gz" if gz else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        write_idx(folder / f"{split}-images{sep}idx3-ubyte{ext}", make_images(labels, rng))
        write_idx(folder / f"{split}-labels{sep}idx1-ubyte{ext}", labels)
    return folder


CANNED = ROOT / "tests" / "data"  # result files made by real runs (tests/data/make_canned.py says how)


class Ran(NamedTuple):
    code: int
    out: str
    err: str


def run_main(*argv: str, columns: int = 200, cwd: Path | None = None) -> Ran:
    """crossrt.cli.main(argv) in this process, as `crossrt ARGV` in a terminal of `columns` columns
    would run it (in the folder cwd, when given): its exit code, stdout and stderr. For the
    commands whose work is Python (the readers of result files, the checks of flags and paths,
    the runs on the tiny model): no interpreter, torch or ONNX Runtime to start. A test about the
    terminal itself (a reader that goes away, LC_ALL=C, bytes reaching a real stdout) runs the
    real command in a subprocess instead (run_cli)."""
    from crossrt.cli import main
    from crossrt.ui import console

    width, wrap, before = console.console.width, console.console.soft_wrap, os.getcwd()
    out, err = io.StringIO(), io.StringIO()
    console.set_width(columns)
    try:
        os.chdir(cwd or before)  # contextlib.chdir is Python 3.11's; crossrt runs on 3.10
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(argv))
    finally:
        os.chdir(before)
        console.console.width, console.console.soft_wrap = width, wrap
    return Ran(code, out.getvalue(), err.getvalue())


def canned(name: str, tmp: Path | None = None) -> Path:
    """tests/data/NAME, or a copy of it in tmp (for a test that edits it or writes beside it)."""
    path = CANNED / name
    return Path(shutil.copy(path, tmp / name)) if tmp is not None else path


# A peak no CPU of today reaches (100 TFLOP/s), so that no run beats it and measures it again.
SEEDED_PEAK = 1e5


def seed_peaks(cache: Path) -> None:
    """A peak cache with a trusted entry for every precision and thread count a CPU run of the
    tests can ask for: no test but those of the peak itself measures one (each measurement costs
    a second or more of the machine's full attention). The peak's own tests use a cache of their own."""
    from crossrt import peak
    from crossrt.files import atomic_write
    from crossrt.system import cpu_count, now_iso

    entries = {}
    for math in ("fp32", "bf16", "int8"):
        for threads in range(1, cpu_count() + 1):
            resolved, key = peak._resolve("cpu", threads, math)
            entries[key] = {
                "peak": SEEDED_PEAK,
                "tries": [SEEDED_PEAK] * peak.PEAK_TRIES,
                "spread": 0.0,
                "device": "cpu",
                "threads": resolved,
                "math": math,
                "measured": now_iso(),
                "seeded": "by tests/conftest.py",
            }
    atomic_write(cache / "peaks.json", json.dumps(entries, indent=1))


def python_path() -> str:
    """This checkout first, then whatever PYTHONPATH already holds (a GPU machine may keep
    onnxruntime-gpu there)."""
    import os

    return os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)


def run_cli(*args: str, cwd: Path, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """The real `crossrt` command in a subprocess (python -m crossrt with this checkout)."""
    import os

    full_env = {**os.environ, "PYTHONPATH": python_path(), "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "crossrt", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def suite_whose_second_bench_raises(error: BaseException, data: Path, out: Path, monkeypatch) -> int:
    """`crossrt suite` of two CPU modes (on any machine, 1 epoch) whose second bench-infer raises
    error, as a GPU mode's or a Ctrl-C could: its exit code; suite.json in the working folder."""
    import crossrt.suite
    from crossrt.cli import main

    real, calls = crossrt.suite.run_bench, []

    def second_raises(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise error
        return real(*a, **k)

    monkeypatch.setattr(crossrt.suite, "run_bench", second_raises)
    monkeypatch.setattr(crossrt.suite, "cpu_count", lambda: 2)
    return main(
        [
            "suite",
            "--data-dir",
            str(data),
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--out",
            str(out),
            "--min-time",
            "0",
            "--no-isolate",
            "--json",
            "suite.json",
        ]
    )


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("tiny") / "data")


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny_data) -> Path:
    """exports/ of a 2-epoch training run on the tiny dataset (checkpoint, ONNX, run record)."""
    from crossrt.cli import main

    out = tmp_path_factory.mktemp("trained") / "exports"
    code = main(
        [
            "train",
            "--data-dir",
            str(tiny_data),
            "--epochs",
            "2",
            "--batch-size",
            "60",
            "--threads",
            "1",
            "--out",
            str(out),
            "--json",
            str(out / "run.json"),
        ]
    )
    assert code == 0
    return out


@pytest.fixture(scope="session")
def fresh_bench(trained, tiny_data, tmp_path_factory) -> Path:
    """One real bench-infer run of the trained model, shared by every test of what such a run
    writes and prints: ONNX Runtime (spinning and not) and PyTorch at 1 and 2 threads, at least 5
    passes each, printed at 80 columns. Its folder holds bench.json, results/ and stdout.txt.
    The tests that only read a result use the canned files of tests/data instead."""
    work = tmp_path_factory.mktemp("fresh-bench")
    ran = run_main(
        "bench-infer",
        "--model",
        str(trained / "lenet5.onnx"),
        "--data-dir",
        str(tiny_data),
        "--threads",
        "1,2",
        "--spin",
        "both",
        "--min-time",
        "0.2",
        "--min-repeats",
        "5",
        "--json",
        "bench.json",
        columns=80,
        cwd=work,
    )
    assert ran.code == 0, ran.err
    (work / "stdout.txt").write_text(ran.out)
    return work / "bench.json"


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """A clean current directory, so results/ lands in tmp, never in the checkout."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True, scope="session")
def _results_outside_checkout(tmp_path_factory):
    """In-process runs write results/ under the cwd, and the measured peaks into the cache:
    keep both out of the checkout and the user's home (subprocesses inherit the variables)."""
    import os

    old = os.getcwd(), os.environ.get("CROSSRT_CACHE"), os.environ.get("CROSSRT_PEAK_TRUST")
    os.chdir(tmp_path_factory.mktemp("cwd"))
    os.environ["CROSSRT_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    seed_peaks(Path(os.environ["CROSSRT_CACHE"]))
    # A peak measured while other tests (or other programs) ran is cached all the same: no test may
    # depend on the machine's load. test_trust.py's CPU-hog test checks the rule that refuses it.
    os.environ["CROSSRT_PEAK_TRUST"] = "always"
    yield
    os.chdir(old[0])
    for name, value in zip(("CROSSRT_CACHE", "CROSSRT_PEAK_TRUST"), old[1:]):
        if value is None:
            os.environ.pop(name)
        else:
            os.environ[name] = value


def has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def has_ort_cuda() -> bool:
    try:
        import onnxruntime

        return "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    except ImportError:
        return False


def pytest_collection_modifyitems(config, items):
    gpu, ort_gpu = has_cuda(), has_ort_cuda()
    for item in items:  # the markers, not any keyword (a parameter id may say cuda)
        if item.get_closest_marker("cuda") and not gpu:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))
        elif item.get_closest_marker("ort_cuda") and not ort_gpu:
            item.add_marker(pytest.mark.skip(reason="needs onnxruntime-gpu's CUDAExecutionProvider"))
