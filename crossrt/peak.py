"""The attainable fp32/bf16/int8 peak of this machine, measured and cached, so throughput can be shown as % of peak.

A datasheet peak (cores x clock x FMA width) is rarely reachable and often unknown (clock
boost, a VM's CPU model); instead we time the fastest dense kernels at hand, on the same threads
and in the same math mode (fp32, tf32, bf16, int8): a large matrix product under PyTorch (MKL or
oneDNN) and under ONNX Runtime (MLAS), and on the CPU also ONNX Runtime's direct convolution (its
NCHWc kernels), which on the 2-core AMD test machine ran 10-15% faster than ONNX Runtime's GEMM at
1 thread and about 1.5x at 2 threads (and MKL's GEMM at about half of MLAS's). The
peak is the best of them: a model that ran above a GEMM-only peak (LeNet5's validation under
ONNX Runtime did, at 1 and at 2 threads) measured the peak, not the model.

A busy moment depresses a measurement, and a depressed peak makes every "% of peak" too high.
So the peak is the best of several tries, and it is cached per machine and library versions
(every run divides by the same figure) only when it can be trusted: its tries agree within
MAX_SPREAD, and on the CPU the process had its threads to itself (its CPU time at least
MIN_CPU_SHARE of wall time x threads; another program takes that share away). A peak that fails
either is used for this run only, marked `cached: false` with why, and measured again next time.
A run that beats the cached peak triggers a new measurement, and the better of the two is kept;
`crossrt doctor --measure-peak` measures anew on request. CROSSRT_PEAK_TRUST=always caches every
measurement (the tests set it, so that none depends on the machine's load).

The cache is never trusted blindly: an entry that is not a positive, finite peak with its tries (a
damaged or edited peaks.json) is measured again, and a cache that cannot be read or written
(not a regular file, a full disk) costs a warning and a new measurement next time, never the run.
"""

from __future__ import annotations

import json
import os
import platform
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .errors import CrossrtError
from .files import atomic_write
from .results import Peak
from .system import cache_dir, cpu_count, cpu_model, now_iso, version_of
from .text import printable
from .timing import call_times

GEMM_N = 1024  # 2.1 GFLOP per product: long enough to time, short enough to cost ~0.2 s
PEAK_TRIES = 3  # the peak is the best of this many tries (5 when a run beat the cached one)
KERNELS = 2  # the kernel set a peak is the best of (2: ORT's convolution joined the GEMMs); part of its cache key
MAX_SPREAD = 0.05  # tries further apart than this did not measure one steady machine
MIN_CPU_SHARE = 0.9  # of wall time x threads: below it, another program had part of our cores


_HELD = [0.0, 0.0]  # wall and CPU seconds spent in the timed kernel calls of the measurement under way


def _min_seconds(fn, repeats: int) -> float:
    """The fastest of `repeats` calls of fn, after a warm-up call (thread pool start, packing
    buffers); the timed calls' wall and CPU time are added to _HELD."""
    fn()
    wall, cpu = time.perf_counter(), time.process_time()
    best = min(call_times(lambda i: fn(), repeats))
    _HELD[0] += time.perf_counter() - wall
    _HELD[1] += time.process_time() - cpu
    return best


def _best_gflops(fn, n: int, repeats: int) -> float:
    return 2 * n**3 / _min_seconds(fn, repeats) / 1e9


def _torch_mm(threads: int, n: int, repeats: int, dtype: str = "float32") -> float:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        kind = getattr(torch, dtype)
        a, b = torch.randn(n, n, dtype=kind), torch.randn(n, n, dtype=kind)
        c = torch.empty(n, n, dtype=kind)
        return _best_gflops(lambda: torch.mm(a, b, out=c), n, repeats)
    finally:
        torch.set_num_threads(before)


def _ort_matmul(threads: int, n: int, repeats: int, int8: bool = False) -> float:
    """ONNX Runtime's GEMM (MLAS): MatMul in fp32, or MatMulInteger (uint8 x int8 -> int32, the
    integer GEMM behind its int8 convolutions) for the int8 peak."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    kinds = (TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32) if int8 else (TensorProto.FLOAT,) * 3
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger" if int8 else "MatMul", ["A", "B"], ["C"])],
        "gemm",
        [helper.make_tensor_value_info(x, kind, [n, n]) for x, kind in zip("AB", kinds)],
        [helper.make_tensor_value_info("C", kinds[2], [n, n])],
    )
    from .export import OPSET

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = (
        {"A": rng.integers(0, 255, (n, n), dtype=np.uint8), "B": rng.integers(-127, 127, (n, n), dtype=np.int8)}
        if int8
        else {x: rng.standard_normal((n, n), dtype=np.float32) for x in "AB"}
    )
    return _best_gflops(lambda: session.run(None, feeds), n, repeats)


def _ort_conv(threads: int, repeats: int, batch: int = 4, channels: int = 128, size: int = 28) -> float:
    """ONNX Runtime's fp32 direct convolution: 3x3, 128 -> 128 channels on 28x28 (0.9 GFLOP per
    call), the kind of layer its NCHWc kernels run best."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from .export import OPSET

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((channels, channels, 3, 3), dtype=np.float32) / 30, "W")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["X", "W"], ["Y"], pads=[1, 1, 1, 1])],
        "conv",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [batch, channels, size, size])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [batch, channels, size, size])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feeds = {"X": rng.standard_normal((batch, channels, size, size), dtype=np.float32)}
    return (
        2
        * batch
        * channels
        * channels
        * 9
        * size
        * size
        / _min_seconds(lambda: session.run(None, feeds), repeats)
        / 1e9
    )


def cpu_peak(threads: int, n: int = GEMM_N, repeats: int = 10) -> dict:
    """{"torch_mm", "onnxruntime_matmul", "onnxruntime_conv", "peak"} in GFLOP/s, fp32, on `threads` CPU threads."""
    kernels = {
        "torch_mm": _torch_mm(threads, n, repeats),
        "onnxruntime_matmul": _ort_matmul(threads, n, repeats),
        "onnxruntime_conv": _ort_conv(threads, repeats),
    }
    return {**kernels, "peak": max(kernels.values())}


def cpu_bf16_peak(threads: int, n: int = GEMM_N, repeats: int = 10) -> dict:
    """bf16 torch.mm on the CPU (ONNX Runtime's CPU provider has no bf16 MatMul to compare)."""
    gf = _torch_mm(threads, n, repeats, dtype="bfloat16")
    return {"torch_mm": gf, "peak": gf}


def cpu_int8_peak(threads: int, n: int = GEMM_N, repeats: int = 10) -> dict:
    """int8 GEMM on the CPU, in GOP/s (a multiply-add counts 2, as for FLOPs)."""
    gop = _ort_matmul(threads, n, repeats, int8=True)
    return {"onnxruntime_matmulinteger": gop, "peak": gop}


def cuda_peak(math: str = "fp32", n: int = 8192, repeats: int = 10) -> dict:
    """GEMM on the GPU in the given math mode: fp32 (TF32 off), tf32 or bf16."""
    import torch

    allow = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = math == "tf32"
    try:
        dtype = torch.bfloat16 if math == "bf16" else torch.float32
        a, b = (torch.randn(n, n, device="cuda", dtype=dtype) for _ in range(2))
        c = torch.empty(n, n, device="cuda", dtype=dtype)

        def mm():
            torch.mm(a, b, out=c)
            torch.cuda.synchronize()

        gf = _best_gflops(mm, n, repeats)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = allow
    return {"gpu": torch.cuda.get_device_name(0), "torch_mm": gf, "peak": gf}


def _peak_key(device: str, threads: int, math: str) -> str:
    """What a cached peak belongs to: this machine, these libraries, this device, threads and math."""
    if device == "cuda":
        import torch

        what = torch.cuda.get_device_name(0)
    else:
        what = f"{cpu_model()} x{cpu_count()}"
    libs = f"torch {version_of('torch')}, onnxruntime {version_of('onnxruntime-gpu', 'onnxruntime')}"
    return f"{device} {math} {threads} thr | {what} @ {platform.node()} | {libs} | kernels {KERNELS}"


def _peak_cache() -> Path:
    return cache_dir() / "peaks.json"


MAX_PEAK = 1e9  # GFLOP/s: an exaflop, a thousand times any GPU of today's
MAX_CACHE_BYTES = 16 * 2**20


def _number(x, low: float, high: float) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and low <= x <= high  # NaN is in no range


def sound(entry) -> bool:
    """A cached peak that can be divided by: a positive, finite peak, with its tries and spread."""
    return (
        isinstance(entry, dict)
        and _number(entry.get("peak"), 1e-9, MAX_PEAK)
        and isinstance(entry.get("tries"), list)
        and bool(entry["tries"])
        and all(_number(t, 0, MAX_PEAK) for t in entry["tries"])
        and _number(entry.get("spread"), 0, 1)
    )


def _load_peaks() -> dict:
    """The cached peaks that are sound; a damaged entry is dropped (measured again), a damaged
    or unreadable file is no cache. Only a regular file is read (a FIFO there would hang)."""
    path = _peak_cache()
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_CACHE_BYTES:
            return {}
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return {}  # no cache yet, or a damaged one: measure again
    return {k: v for k, v in data.items() if sound(v)} if isinstance(data, dict) else {}


def _save_peaks(cache: dict) -> None:
    try:
        atomic_write(_peak_cache(), json.dumps(cache, indent=1))
    except (OSError, CrossrtError) as e:  # the peak is measured; only the next run measures it again
        print(
            f"crossrt: warning: the peak cache cannot be written ({printable(e)}); the next run measures "
            f"the peak again",
            file=sys.stderr,
        )


def _measure_peak(device: str, threads: int, math: str, tries: int) -> dict:
    def once():
        if device == "cuda":
            return cuda_peak(math)
        return {"bf16": cpu_bf16_peak, "int8": cpu_int8_peak}.get(math, cpu_peak)(threads)

    _HELD[:] = [0.0, 0.0]
    runs = [once() for _ in range(tries)]
    wall, cpu = _HELD
    peaks = [r["peak"] for r in runs]
    entry = {
        **max(runs, key=lambda r: r["peak"]),
        "device": device,
        "threads": threads,
        "math": math,
        "tries": peaks,
        "spread": (max(peaks) - min(peaks)) / max(peaks),
        "measured": now_iso(),
    }
    if device == "cpu" and wall > 0:  # how much of its threads' time the process got while it timed
        entry["cpu_share"] = min(1.0, cpu / (wall * threads))
    return entry


def distrust(entry: dict) -> str | None:
    """Why a fresh measurement must not be cached (it was not one steady machine's), or None."""
    if os.environ.get("CROSSRT_PEAK_TRUST") == "always":
        return None
    if entry["spread"] > MAX_SPREAD:
        spread, most = 100 * entry["spread"], 100 * MAX_SPREAD
        return f"its {len(entry['tries'])} tries differ by {spread:.0f}% (more than {most:.0f}%)"
    if entry.get("cpu_share", 1.0) < MIN_CPU_SHARE:
        return (
            f"it had {100 * entry['cpu_share']:.0f}% of the CPU time its {entry['threads']} thread(s) asked for "
            f"(another program was running)"
        )
    return None


def measured_peak(device: str, threads: int, math: str = "fp32", *, again: bool | str = False) -> Peak | None:
    """The peak for a device, thread count (0 = all cores) and math mode, in GFLOP/s.

    Measured once per machine (the best of PEAK_TRIES tries, with their spread) and cached in
    cache_dir()/peaks.json when it can be trusted (distrust), so that every run divides by the
    same figure; otherwise kept for this process only, marked cached: false with why. More
    threads than cores add no compute, so the peak for N threads is that of min(N, cores).
    again=True measures anew and keeps the better of the new and the cached peak; "replace"
    (doctor --measure-peak) keeps the new one. None for a GPU that torch cannot use (ONNX
    Runtime's CUDA rows beside a CPU build of torch): no GEMM to measure it with.
    """
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            return None
    threads, key = _resolve(device, threads, math)
    cache = _load_peaks()
    if key in cache and not again:
        return Peak.of(cache[key])
    memo = (str(_peak_cache()), key)
    if memo in _THIS_RUN and not again:  # measured in this process, not trusted enough to cache
        return _THIS_RUN[memo]
    entry = _measure_peak(device, threads, math, PEAK_TRIES + 2 * bool(again))
    # A peak never goes down within a run, unless replaced.
    known = Peak.of(cache[key]) if key in cache else _THIS_RUN.get(memo)
    if known and known.peak >= entry["peak"] and again != "replace":
        return known
    why = distrust(entry)
    if why:
        _THIS_RUN[memo] = Peak.of({**entry, "cached": False, "why": why})
        return _THIS_RUN[memo]
    cache[key] = entry
    _save_peaks(cache)
    return Peak.of(entry)


_THIS_RUN: dict[tuple[str, str], Peak] = {}  # peaks this process measured but did not cache, by cache and key


def _resolve(device: str, threads: int, math: str) -> tuple[int, str]:
    """The thread count a peak is measured on (more than the cores add no compute) and its cache key."""
    threads = 0 if device == "cuda" else min(threads or cpu_count(), cpu_count())
    return threads, _peak_key(device, threads, math)


def cached_peak(device: str, threads: int, math: str = "fp32") -> Peak | None:
    """The peak the cache holds for this machine, or None: nothing is measured."""
    entry = _load_peaks().get(_resolve(device, threads, math)[1])
    return Peak.of(entry) if entry else None


def unbeaten(peak: Peak | None, gflops: float | None, measure_again: Callable[[], Peak]) -> Peak | None:
    """The peak a run's "% of peak" divides by: the cached one, or, when the run beat it (so the
    cached figure was measured on a busier moment), measure_again() (the better one is kept)."""
    if peak is None or gflops is None or gflops <= peak.peak:
        return peak
    return measure_again()
