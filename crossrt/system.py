"""The machine: cores, device choice and sync, allocator tuning, the facts a result records.

torch and onnxruntime are imported inside the functions that need them, so that the CLI's
`--help` and the config module stay light.
"""

from __future__ import annotations

import ctypes
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from .errors import ProviderError


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask, not the host's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def max_threads() -> int:
    """The most threads crossrt will start: oversubscribing is a fair experiment (the reference ran
    18 threads), but 100,000 threads exhaust memory or crash the thread pools."""
    return max(64, 16 * cpu_count())


def max_ranks() -> int:
    """The most data-parallel ranks crossrt starts on one machine: one per core (at least 8,
    so a small machine can still try a few)."""
    return max(cpu_count(), 8)


def cache_dir() -> Path:
    """$CROSSRT_CACHE, else $XDG_CACHE_HOME/crossrt, else ~/.cache/crossrt."""
    if os.environ.get("CROSSRT_CACHE"):
        return Path(os.environ["CROSSRT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "crossrt"


# ---------------------------------------------------------------------------- devices


def no_cuda_reason() -> str:
    """Why torch cannot use CUDA here, in a few words."""
    import torch

    return "this torch is a CPU build" if torch.version.cuda is None else "torch sees no CUDA device"


def require_cuda(flag: str) -> None:
    """A ProviderError naming the flag when torch cannot use a CUDA GPU here."""
    import torch

    if not torch.cuda.is_available():
        raise ProviderError(f"{flag}: no usable CUDA GPU for torch ({no_cuda_reason()}; torch {torch.__version__})")


def select_device(device: str, threads: int, cudnn_benchmark: bool = True):
    """The torch device, or a ProviderError when CUDA is asked for and not usable.

    cudnn_benchmark: LeNet5's shapes never change, so cuDNN may time its algorithms for each
    convolution once and keep the fastest. The search is paid in the first steps (the warm-up
    before a CUDA graph capture, or the first epoch), which every total counts."""
    import torch

    if device == "cuda":
        require_cuda("--device cuda")
        torch.backends.cudnn.benchmark = cudnn_benchmark
    torch.set_num_threads(threads)
    return torch.device(device)


WARMUP = 3  # eager runs before a CUDA graph capture: cuDNN picks its kernels, Adam creates its state


def graphed(runs: dict) -> dict:
    """Each function run WARMUP times on a side stream (as capture requires: cuDNN picks its
    kernels, Adam creates its state), then recorded as a CUDA graph; the graphs' replays.
    The training step (crossrt.steps) and the PyTorch inference runner both capture through it."""
    import torch

    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for run in runs.values():
            for _ in range(WARMUP):
                run()
    torch.cuda.current_stream().wait_stream(stream)
    replays = {}
    for key, run in runs.items():
        graph = torch.cuda.CUDAGraph()
        # thread_local: what is unsafe during capture is refused in this thread only; other threads
        # (NCCL's watchdog under torchrun, which polls its events) go on while the step is captured.
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            run()
        replays[key] = graph.replay
    return replays


def available_memory(device="cpu") -> int | None:
    """Bytes free for a new allocation on the device, a torch.device or "cpu" (None when the platform does not say)."""
    if getattr(device, "type", device) == "cuda":
        import torch

        return torch.cuda.mem_get_info(device)[0]
    return host_memory()


def host_memory() -> int | None:
    """Bytes of RAM this process can still take: the kernel's MemAvailable (free, and what it can
    reclaim from caches), within the container's own limit (cgroup v2) where it has one."""
    have = None
    try:
        meminfo = dict(ln.split(":", 1) for ln in Path("/proc/meminfo").read_text().splitlines() if ":" in ln)
        have = int(meminfo["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError, IndexError):
        try:
            have = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            have = min(have, int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text()))
    except (OSError, ValueError):
        pass
    return have


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


def page_aligned_alloc() -> bool:
    """Whether torch's CPU allocator page-aligns its buffers, as THP_MEM_ALLOC_ENABLE=1 (set by
    crossrt/__init__.py before torch loads) makes it: read off real allocations, not the setting.
    With it, the step's buffers above glibc's mmap threshold were reused instead of faulted in
    anew every step (benchmarks/profile_step.py), which keep_freed_memory alone did not achieve."""
    import torch

    page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
    held = [torch.empty(2**20) for _ in range(4)]  # 4 MB each (torch aligns from 2 MB), four addresses
    return all(t.data_ptr() % page == 0 for t in held)


# ---------------------------------------------------------------------------- machine facts


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def version_of(*dists: str) -> str | None:
    for dist in dists:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def source_commit() -> tuple[str | None, bool | None]:
    """(commit, dirty) of crossrt's own source folder, or (None, None) when that folder is not the
    top of a git checkout (an installed copy inside some other repository records nothing)."""
    root = Path(__file__).resolve().parent.parent

    def git(*args) -> str | None:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else None

    try:
        top = git("rev-parse", "--show-toplevel")
        if top is None or Path(top).resolve() != root:
            return None, None
        return git("rev-parse", "--short=12", "HEAD"), bool(git("status", "--porcelain", "-uno"))
    except (OSError, subprocess.SubprocessError):
        return None, None


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def environment() -> dict:
    """What a result needs to be compared across machines. Imports nothing heavy itself:
    GPU and thread facts are read from torch only when the run already imported it."""
    from . import __version__

    commit, dirty = source_commit()
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
            "crossrt": __version__,  # the package's own, installed or run from a source tree
            "torch": version_of("torch"),
            "onnx": version_of("onnx"),
            "onnxruntime": version_of("onnxruntime-gpu", "onnxruntime"),
            "numpy": version_of("numpy"),
            "rich": version_of("rich"),
        },
        "threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")},
        "git_commit": commit,
        "git_dirty": dirty,
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        env["threads"]["torch_intra_op"] = torch.get_num_threads()
        env["threads"]["torch_inter_op"] = torch.get_num_interop_threads()
        if torch.cuda.is_available():
            env["gpu"] = {
                "name": torch.cuda.get_device_name(0),
                "count": torch.cuda.device_count(),
                "cuda": torch.version.cuda,
            }
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


def ago(iso: str | None) -> str:
    """How long ago a now_iso() time was, in words ('3 h ago')."""
    from datetime import datetime

    try:
        s = time.time() - datetime.fromisoformat(str(iso)).timestamp()
    except ValueError:
        return "at an unknown time"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s / size:.0f} {unit} ago"
    return "just now"
