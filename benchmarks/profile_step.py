"""Where each millisecond of a training step goes: LeNet5, batch 600, Adam, on the CPU.

For each setting (threads x precision x step: `lean`, crossrt's default, or `module`, the step
before it: the module's own forward, torch's allocator as it comes), a fresh process builds the
step exactly as `crossrt train` does (crossrt.steps.Steps), times it, then profiles it twice:
torch.profiler for every operator, and oneDNN's verbose mode for each convolution primitive
(forward, input-gradient, weight-gradient: oneDNN's own execution times) and the layout
reorders between them. The settings run in turn, `--rounds` times each (lean, module, lean,
module, ...), and each figure is the smallest a round measured: this machine's speed drifts
from minute to minute, and the least disturbed round is the closest to what the step costs.
Prints a Markdown table per thread count, each part in ms per step with its GFLOP/s and % of the
measured peak, and each setting's step time measured without a profiler.

    python benchmarks/profile_step.py [--threads 1,2] [--precisions fp32,bf16] [--steps lean,module] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from common import ENV

LAYERS = {(1, 32): ("C1", 5, 24), (32, 64): ("C3", 5, 8), (64, 128): ("C5", 4, 1)}  # (ic, oc): name, kernel, out
PROP = {
    "forward_training": "forward",
    "forward_inference": "forward",
    "backward_data": "input-gradient",
    "backward_weights": "weight-gradient",
}
BATCH = 600


def conv_flops(ic: int, oc: int) -> int:
    _, k, out = LAYERS[ic, oc]
    return 2 * BATCH * oc * ic * k * k * out * out


def operator_part(name: str) -> str:
    """The part of the step a torch operator (not a convolution) belongs to."""
    for pattern, part in (
        ("threshold_backward", "ReLU backward"),
        ("clamp_min|relu", "ReLU forward"),
        ("max_pool2d_with_indices_backward", "max-pool backward"),
        ("max_pool2d", "max-pool forward"),
        ("addmm|^aten::mm$|linear", "GEMMs (F6, OUT; C5 when lean)"),
        ("softmax|nll_loss", "loss"),
        ("Adam.step", "optimizer (Adam)"),
        ("zero_grad", "zero_grad"),
        ("fill_|zero_", "zero fills"),
        ("index_select", "batch gather"),
        ("copy_|_to_copy", "copies"),
        ("convolution", "convolution (torch's side)"),
    ):
        if re.search(pattern, name):
            return part
    return "autograd and the rest"


def child(threads: int, precision: str, lean: bool, out: Path) -> None:
    """In a fresh process: build the step as `crossrt train` does, time it, profile it."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    import crossrt  # noqa: F401  sets THP_MEM_ALLOC_ENABLE before torch loads (unless the parent set it)
    from crossrt.config import TrainConfig
    from crossrt.model import LeNet5
    from crossrt.steps import Lean, Steps
    from crossrt.system import keep_freed_memory, page_aligned_alloc

    torch.set_num_threads(threads)
    keep_freed_memory()
    torch.manual_seed(0)
    cfg = TrainConfig(threads=threads, precision=precision, lean_step=lean, epochs=1)
    net = LeNet5().to(memory_format=torch.channels_last)
    body = Lean(net) if lean else net
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    x, y = torch.randn(6000, 1, 28, 28), torch.randint(0, 10, (6000,))
    steps = Steps(body, body, optimizer, x, y, x[:1000], y[:1000], cfg)
    step, idx = steps.runs["train", BATCH], steps.idx[BATCH]
    idx.copy_(torch.randperm(6000)[:BATCH])

    for _ in range(5):
        step()
    chunks = []
    for _ in range(8):
        t0 = time.perf_counter()
        for _ in range(5):
            step()
        chunks.append((time.perf_counter() - t0) / 5 * 1000)
    n = 20
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(n):
            step()
    parts = defaultdict(float)
    for e in prof.key_averages():
        if e.key.startswith("Optimizer.step"):
            parts["optimizer (Adam)"] += e.cpu_time_total / 1000 / n  # its own children: the foreach kernels
        elif e.key.startswith("aten::") and not re.search("convolution|_foreach|lerp|addcdiv|sqrt", e.key):
            parts[operator_part(e.key)] += e.self_cpu_time_total / 1000 / n
    profiled = sum(e.self_cpu_time_total for e in prof.key_averages() if e.key.startswith(("aten::", "Optimizer")))

    # oneDNN's own times per primitive, printed on stdout: caught in a file for 10 steps.
    log = out.with_suffix(".onednn")
    saved = os.dup(1)
    with open(log, "w") as f:
        os.dup2(f.fileno(), 1)
        with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
            for _ in range(10):
                step()
        sys.stdout.flush()
        os.dup2(saved, 1)
    convs, flops = defaultdict(float), {}
    for line in log.read_text().splitlines():
        f = line.split(",")
        if len(f) < 6 or f[3] != "exec":
            continue
        ms = float(f[-1]) / 10
        if f[5] == "reorder":
            convs["layout reorders (oneDNN)"] += ms
        elif f[5] == "convolution" and (m := re.search(r"ic(\d+)oc(\d+)", line)):
            layer = LAYERS[int(m[1]), int(m[2])][0]
            part = f"{layer} {PROP[next(p for p in PROP if p in line)]}"
            convs[part] += ms
            flops[part] = conv_flops(int(m[1]), int(m[2]))
    out.write_text(
        json.dumps(
            {
                "step_ms": sorted(chunks)[len(chunks) // 2],
                "parts": {**convs, **parts},
                "flops": flops,
                "profiled_ms": profiled / 1000 / n,
                "page_aligned_alloc": page_aligned_alloc(),
            }
        )
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", default="1,2")
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--steps", default="lean,module", help="lean (crossrt's step) and/or module (the step before it)")
    p.add_argument("--rounds", type=int, default=2, help="times each setting runs, in turn; the least disturbed counts")
    p.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(int(a.child[0]), a.child[1], a.child[2] == "lean", Path(a.child[3]))
        return 0
    from crossrt.peak import measured_peak
    from crossrt.system import cpu_model

    work = Path(tempfile.mkdtemp(prefix="crossrt-profile-"))
    steps = a.steps.split(",")
    print(
        f"Machine: {cpu_model()}, {os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M %Z')}; "
        f"`python benchmarks/profile_step.py --threads {a.threads} --precisions {a.precisions} --steps {a.steps} "
        f"--rounds {a.rounds}`\n"
    )
    for threads in map(int, a.threads.split(",")):
        for precision in a.precisions.split(","):
            rounds = {s: [] for s in steps}
            for k in range(a.rounds):
                for s in steps:
                    out = work / f"{threads}-{precision}-{s}-{k}.json"
                    env = {**ENV, **({} if s == "lean" else {"THP_MEM_ALLOC_ENABLE": "0"})}
                    subprocess.run(
                        [sys.executable, __file__, "--child", str(threads), precision, s, str(out)], env=env, check=True
                    )
                    rounds[s].append(json.loads(out.read_text()))
            res = {
                s: {
                    "step_ms": min(r["step_ms"] for r in rs),
                    "flops": rs[0]["flops"],
                    "page_aligned_alloc": rs[0]["page_aligned_alloc"],
                    "parts": {
                        k: min(r["parts"].get(k, float("inf")) for r in rs)
                        for k in dict.fromkeys(k for r in rs for k in r["parts"])
                    },
                }
                for s, rs in rounds.items()
            }
            peak = measured_peak("cpu", threads, precision).peak
            names = list(
                dict.fromkeys(
                    k
                    for s in steps
                    for k in sorted(res[s]["parts"], key=lambda k: (k[:2] not in ("C1", "C3", "C5"), k))
                )
            )
            print(
                f"**{threads} thread(s), {precision}** (peak {peak:,.0f} GFLOP/s, the fastest {precision} kernel "
                f"measured on these threads); ms per step of batch {BATCH}, the least of {a.rounds} rounds\n"
            )
            print("| part | " + " | ".join(f"{s}: ms | GFLOP/s, % of peak" for s in steps) + " |")
            print("|---|" + "---:|---:|" * len(steps))
            for name in names:
                cells = []
                for s in steps:
                    ms, f = res[s]["parts"].get(name), res[s]["flops"].get(name)
                    cells += [
                        "" if ms is None else f"{ms:.2f}",
                        f"{f / ms / 1e6:,.0f}, {100 * f / ms / 1e6 / peak:.0f}%" if ms and f else "",
                    ]
                print(f"| {name} | " + " | ".join(cells) + " |")
            print(
                "| **step, timed without a profiler** | "
                + " | ".join(
                    f"**{res[s]['step_ms']:.1f}** | torch page-aligned alloc: {res[s]['page_aligned_alloc']}"
                    for s in steps
                )
                + " |\n"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
