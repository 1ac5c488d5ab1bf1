"""The machine: cores, device choice and sync, allocator tuning, facts for results, the fp32 peak.

torch and onnxruntime are imported inside the functions that need them, so that the CLI's
`--help` and the config module stay light.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from .errors import ProviderError

GEMM_N = 1024  # 2.1 GFLOP per product: long enough to time, short enough to cost ~0.2 s


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask, not the host's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


# ---------------------------------------------------------------------------- devices

def select_device(device: str, threads: int):
    """The torch device, or a ProviderError when CUDA is asked for and not usable."""
    import torch

    if device == "cuda":
        if not torch.cuda.is_available():
            why = ("this torch build has no CUDA" if torch.version.cuda is None
                   else "torch sees no CUDA device")
            raise ProviderError(f"--device cuda: no usable CUDA GPU ({why}; torch {torch.__version__})")
        # LeNet5's shapes never change, so let cuDNN benchmark and keep the fastest kernels.
        torch.backends.cudnn.benchmark = True
    torch.set_num_threads(threads)
    return torch.device(device)


def sync(device) -> None:
    """Wait for queued device work, so that a clock read afterwards covers it."""
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def keep_freed_memory() -> bool:
    """Stop glibc from handing large freed buffers back to the OS; True when it took effect.

    A training step allocates and frees activation buffers of tens of MB (600 x 32 x 24 x 24
    fp32 is 44 MB). Above glibc's mmap threshold (32 MB at most) each one is a fresh mmap whose
    pages the kernel zero-fills on first touch, every step: on the 2-core test machine that was
    about 45% of an fp32 epoch. Raising the mmap and trim thresholds keeps that memory in the
    heap for the next step. Linux/glibc only; elsewhere nothing changes.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from <malloc.h>
    return bool(libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, 1 << 30))


# ---------------------------------------------------------------------------- machine facts

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(*dists: str) -> str | None:
    for dist in dists:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "-uno"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def environment() -> dict:
    """What a result needs to be compared across machines. Imports nothing heavy itself:
    GPU and thread facts are read from torch only when the run already imported it."""
    env = {
        "hostname": platform.node(),
        "os": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_cores": cpu_count(),
        "cpu_logical": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "gpu": None,
        "python": platform.python_version(),
        "versions": {
            "crossrt": _version("crossrt"),
            "torch": _version("torch"),
            "onnx": _version("onnx"),
            "onnxruntime": _version("onnxruntime-gpu", "onnxruntime"),
            "numpy": _version("numpy"),
            "rich": _version("rich"),
        },
        "threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")},
        "git_commit": _git_commit(),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        env["threads"]["torch_intra_op"] = torch.get_num_threads()
        env["threads"]["torch_inter_op"] = torch.get_num_interop_threads()
        if torch.cuda.is_available():
            env["gpu"] = {"name": torch.cuda.get_device_name(0), "count": torch.cuda.device_count(),
                          "cuda": torch.version.cuda}
    ort = sys.modules.get("onnxruntime")
    if ort is not None:
        env["onnxruntime_providers"] = ort.get_available_providers()
    return env


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB, macOS bytes)."""
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (2**20 if sys.platform == "darwin" else 2**10)


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


# ---------------------------------------------------------------------------- the fp32 peak
#
# A datasheet peak (cores x clock x FMA width) is rarely reachable and often unknown (clock
# boost, a VM's CPU model); instead we time a large fp32 matrix product, the best case for any
# library, on the same threads, with both GEMMs at hand: PyTorch's (MKL/oneDNN) and ONNX
# Runtime's (MLAS). They differ a lot on some CPUs (MKL takes a slower path on AMD), so the
# peak is the better of the two.

def _best_gflops(fn, n: int, repeats: int) -> float:
    from .timing import call_times

    fn()  # warm-up: thread pool start, packing buffers
    return 2 * n ** 3 / min(call_times(lambda i: fn(), repeats)) / 1e9


def _torch_mm(threads: int, n: int, repeats: int) -> float:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        c = torch.empty(n, n)
        return _best_gflops(lambda: torch.mm(a, b, out=c), n, repeats)
    finally:
        torch.set_num_threads(before)


def _ort_matmul(threads: int, n: int, repeats: int) -> float:
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["A", "B"], ["C"])], "gemm",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in "AB"],
        [helper.make_tensor_value_info("C", TensorProto.FLOAT, [n, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feeds = {x: np.random.default_rng(0).standard_normal((n, n), dtype=np.float32) for x in "AB"}
    return _best_gflops(lambda: session.run(None, feeds), n, repeats)


def cpu_peak(threads: int, n: int = GEMM_N, repeats: int = 5) -> dict:
    """{"threads", "torch_mm", "onnxruntime_matmul", "peak"} in GFLOP/s on `threads` CPU threads.

    More threads than cores add no compute (and oversubscribed GEMMs only slow down), so
    the peak for N threads is measured on min(N, cores) threads.
    """
    threads = min(threads, cpu_count())
    torch_gf, ort_gf = _torch_mm(threads, n, repeats), _ort_matmul(threads, n, repeats)
    return {"threads": threads, "torch_mm": torch_gf, "onnxruntime_matmul": ort_gf, "peak": max(torch_gf, ort_gf)}


def cuda_peak(n: int = 8192, repeats: int = 10) -> dict:
    """fp32 GEMM on the GPU, TF32 off (the model runs in true fp32)."""
    import torch

    allow = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        a, b = torch.randn(n, n, device="cuda"), torch.randn(n, n, device="cuda")
        c = torch.empty(n, n, device="cuda")

        def mm():
            torch.mm(a, b, out=c)
            torch.cuda.synchronize()

        gf = _best_gflops(mm, n, repeats)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = allow
    return {"device": torch.cuda.get_device_name(0), "torch_mm": gf, "peak": gf}


def measured_peak(device: str, threads: int) -> dict:
    """The peak for a device and thread count (0 = all cores), measured once per process."""
    return _peak(device, 0 if device == "cuda" else min(threads or cpu_count(), cpu_count()))


@functools.lru_cache(maxsize=None)
def _peak(device: str, threads: int) -> dict:
    return cuda_peak() if device == "cuda" else cpu_peak(threads)
