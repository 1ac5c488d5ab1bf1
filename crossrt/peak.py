"""The attainable fp32 peak of this machine, measured, so throughput can be shown as % of peak.

A datasheet peak (cores x clock x FMA width) is rarely reachable and often unknown (clock
boost, a VM's CPU model); instead we time a large fp32 matrix product, the best case for any
library, on the same threads, with both GEMMs at hand: PyTorch's (MKL/oneDNN) and ONNX
Runtime's (MLAS). They differ a lot on some CPUs (MKL takes a slower path on AMD), so the
peak is the better of the two.
"""

from __future__ import annotations

import time

import numpy as np

from .config import cpu_count

GEMM_N = 1024  # 2.1 GFLOP per product: long enough to time, short enough to cost ~0.2 s


def _best_gflops(fn, n: int, repeats: int) -> float:
    fn()  # warm-up: thread pool start, packing buffers
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


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
