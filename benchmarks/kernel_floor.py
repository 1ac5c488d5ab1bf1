"""The floor under a CPU training step: its convolutions, GEMMs and max-pools alone, as the libraries run them.

One LeNet5 training step (batch 600, channels-last, as crossrt's lean step computes it) does its
arithmetic in oneDNN's convolutions (C1 forward and weight-gradient, C3 forward, input- and
weight-gradient) and in GEMMs (C5 as a GEMM, F6, OUT: forward and both gradients), and moves
its largest tensors through ATen's max-pools. This script runs exactly those kernels, with the
step's shapes, layouts and precision, on fixed inputs (outputs are allocated per call, as in the
step; the forward GEMMs skip their bias add), and nothing else: no ReLU, loss, optimizer or
autograd. It times the convolutions and GEMMs, and the max-pools (forward and backward) apart.
A step made of these kernels takes about their sum, or a little less (in the step a kernel may
find its input still in cache from the kernel before it; measured apart, the floor has none of
that). tests/test_steps.py holds it to the step's own kernel calls.

Each figure is the least of several rounds of 10 steps (the least disturbed): a floor, so the
comparison errs on the side of leaving room.

    python benchmarks/kernel_floor.py --threads 2 [--precisions fp32,bf16] [--json floor.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

import crossrt  # noqa: F401  sets the allocator up as crossrt train runs with
from crossrt.files import atomic_write
from crossrt.system import keep_freed_memory
from crossrt.timing import call_times

BATCH = 600
CL = torch.channels_last


def kernels(dtype: torch.dtype):
    """(the step's convolutions and GEMMs, its max-pools), as functions over fixed tensors."""

    def t(*shape, cl=False):
        x = torch.randn(*shape).to(dtype)
        return x.contiguous(memory_format=CL) if cl else x

    x, w1, b1, g1 = t(BATCH, 1, 28, 28, cl=True), t(32, 1, 5, 5, cl=True), t(32), t(BATCH, 32, 24, 24, cl=True)
    h1, w3, b3, g3 = t(BATCH, 32, 12, 12, cl=True), t(64, 32, 5, 5, cl=True), t(64), t(BATCH, 64, 8, 8, cl=True)
    h3, w5, w6, w10 = t(BATCH, 1024), t(128, 1024), t(84, 128), t(10, 84)
    c5, f6 = t(BATCH, 128), t(BATCH, 84)  # C5's and F6's outputs
    g5, g6, g10 = t(BATCH, 128), t(BATCH, 84), t(BATCH, 10)  # the gradients reaching C5, F6 and OUT
    back = torch.ops.aten.convolution_backward

    def compute():
        F.conv2d(x, w1, b1)
        F.conv2d(h1, w3, b3)
        for a, w in ((h3, w5), (c5, w6), (f6, w10)):
            a @ w.t()
        for g, a, w in ((g10, f6, w10), (g6, c5, w6), (g5, h3, w5)):
            g.t() @ a, g @ w, g.sum(0)
        back(g3, h1, w3, [64], [1, 1], [0, 0], [1, 1], False, [0, 0], 1, [True, True, True])
        back(g1, x, w1, [32], [1, 1], [0, 0], [1, 1], False, [0, 0], 1, [False, True, True])

    p1, p3 = t(BATCH, 32, 24, 24, cl=True), t(BATCH, 64, 8, 8, cl=True)
    pooled = [(a, *F.max_pool2d_with_indices(a, 2)) for a in (p1, p3)]

    def pools():
        for a, out, idx in pooled:
            F.max_pool2d(a, 2)
            torch.ops.aten.max_pool2d_with_indices_backward(out, a, [2, 2], [], [0, 0], [1, 1], False, idx)

    return compute, pools


def least_ms(fn, rounds: int = 7, steps: int = 10) -> float:
    """ms per call of fn: the least over `rounds` rounds of `steps` calls, after 3 untimed."""
    for _ in range(3):
        fn()
    return min(call_times(lambda _: [fn() for _ in range(steps)], rounds)) / steps * 1000


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--json", help="write {batch_size, precision: {compute_ms, pool_ms}} per step here")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    keep_freed_memory()
    torch.manual_seed(0)
    out = {"batch_size": BATCH}
    with torch.no_grad():
        for precision in a.precisions.split(","):
            compute, pools = kernels({"fp32": torch.float32, "bf16": torch.bfloat16}[precision])
            out[precision] = {"compute_ms": least_ms(compute), "pool_ms": least_ms(pools)}
            print(
                f"{precision}, {a.threads} threads, ms per step of {BATCH}: convolutions and GEMMs "
                f"{out[precision]['compute_ms']:.2f}, max-pools forward and backward {out[precision]['pool_ms']:.2f}"
            )
    if a.json:
        atomic_write(Path(a.json), json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
