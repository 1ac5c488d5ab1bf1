"""A user's own models, measured as a user would: three PyTorch networks written here (a text
classifier with int64 input_ids and attention_mask of dynamic batch and sequence, a model with two
float inputs and two outputs, a conv net of dynamic height and width), each exported to ONNX and
saved with torch.export.save (.pt2) for --torch-model; then bench-infer under every runtime that
runs them (int8 after `crossrt quantize`) at 1 and 2 threads, and `crossrt loadgen` on the text
model. Prints Markdown tables for BENCHMARKS.md, each under the command that made it. Minutes on 2 cores.

    python benchmarks/own_models.py [--out DIR] [--min-time S] [--duration S]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import warnings
from pathlib import Path

import torch

from common import ENV

# What each model is fed: bench-infer's and quantize's flags for it.
FLAGS = {
    "text": ["--value", "attention_mask=1", "--dim", "seq=128", "--batch-size", "8"],
    "twotwo": ["--batch-size", "32"],
    "conv": ["--dim", "height=64,width=64", "--batch-size", "8"],
}


class Text(torch.nn.Module):
    """Token embeddings, mean-pooled under the mask, a linear head: a text classifier's signature."""

    def __init__(self):
        super().__init__()
        self.emb, self.head = torch.nn.Embedding(1000, 64), torch.nn.Linear(64, 4)

    def forward(self, input_ids, attention_mask):
        m = attention_mask.unsqueeze(-1).to(torch.float32)
        return self.head((self.emb(input_ids) * m).sum(1) / m.sum(1).clamp(min=1.0))


class TwoTwo(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(256, 128), torch.nn.Linear(64, 128)

    def forward(self, feats, extra):
        h = torch.relu(self.a(feats)) + self.b(extra)
        return h.softmax(-1), h.sum(-1, keepdim=True)


class Conv(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.c2 = torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.Conv2d(16, 32, 3, padding=1)
        self.fc = torch.nn.Linear(32, 10)

    def forward(self, image):
        return self.fc(torch.relu(self.c2(torch.relu(self.c1(image)))).mean((2, 3)))


def make(out: Path) -> None:
    """Each model as name.onnx (its dynamic axes named) and name.pt2 (torch.export, dynamic shapes)."""
    torch.manual_seed(0)
    batch, seq = {0: "batch"}, {0: "batch", 1: "seq"}
    specs = {  # network, example inputs, input names and their dynamic axes, output names
        "text": (
            Text(),
            (torch.randint(0, 1000, (2, 7)), torch.ones(2, 7, dtype=torch.int64)),
            {"input_ids": seq, "attention_mask": seq},
            ["logits"],
        ),
        "twotwo": (
            TwoTwo(),
            (torch.randn(2, 256), torch.randn(2, 64)),
            {"feats": batch, "extra": batch},
            ["probs", "total"],
        ),
        "conv": (Conv(), (torch.randn(2, 3, 16, 16),), {"image": {0: "batch", 2: "height", 3: "width"}}, ["logits"]),
    }
    for name, (net, example, axes, outputs) in specs.items():
        net.eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net,
                example,
                str(out / f"{name}.onnx"),
                input_names=list(axes),
                output_names=outputs,
                dynamic_axes={**axes, **{o: batch for o in outputs}},
                opset_version=17,
                dynamo=False,
            )
        dims = {n: {d: torch.export.Dim.AUTO for d in a} for n, a in axes.items()}
        torch.export.save(torch.export.export(net, example, dynamic_shapes=dims), str(out / f"{name}.pt2"))


def crossrt(args: list[str], cwd: Path) -> None:
    cmd = [sys.executable, "-m", "crossrt", *args]
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        sys.exit(f"exit {proc.returncode}: crossrt {' '.join(args)}: {proc.stderr.strip()[-400:]}")


def bench_table(path: Path) -> str:
    r = json.loads(path.read_text())
    lines = ["| runtime | threads | samples/s | 95% CI | stable | worst output vs ORT CPU fp32 (max_rel, cosine) |"]
    lines.append("|---|---:|---:|---|---|---|")
    for run in r["runs"]:
        worst = max(run["outputs"] or [], key=lambda o: o["max_rel"] or 0, default=None)
        diff = (
            f"{worst['max_rel']:.1e}, {worst.get('cosine', 0):.6f}" if worst and worst["max_rel"] is not None else "—"
        )
        label = run["runtime"] + ("" if run["precision"] == "fp32" else f" {run['precision']}")
        low, high = run["ci95"] or [0, 0]
        stable = "yes" if run["stable"] else "no"
        lines.append(
            f"| {label} | {run['threads']} | {run['samples_per_s']:,.0f} | {low:,.0f}–{high:,.0f} | {stable} | {diff} |"
        )
    if r["skipped"]:
        lines.append("")
        lines += [f"not run: {s['runtime']}: {s['reason']}" for s in r["skipped"]]
    return "\n".join(lines)


def loadgen_table(path: Path) -> str:
    r = json.loads(path.read_text())
    lines = [
        "| runtime | scenario | LoadGen | samples/s (Server: QPS) | p90 ms | p99 ms |",
        "|---|---|---|---:|---:|---:|",
    ]
    for run in r["runs"]:
        lat = run["latency_ms"]
        # crossrt's rate of each (columns.loadgen_rate): Server's QPS, SingleStream's one sample per p90
        rate = run["target_qps"] if run["scenario"] == "server" else run["samples_per_s"] or 1e3 / lat["p90"]
        bound = f" p99<={run['latency_bound_ms']:g} ms" if run.get("latency_bound_ms") else ""
        verdict = "VALID" if run["valid"] else "INVALID"
        lines.append(
            f"| {run['runtime']} | {run['scenario']}{bound} | {verdict} | {rate or 0:,.0f} | "
            f"{lat.get('p90', 0):.3f} | {lat.get('p99', 0):.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("/tmp/crossrt-own-models"))
    p.add_argument("--min-time", default="1", help="bench-infer's --min-time (default: 1)")
    p.add_argument("--duration", default="2", help="loadgen's --duration (default: 2)")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    make(a.out)
    for name, flags in FLAGS.items():
        crossrt(["quantize", "--model", f"{name}.onnx", *flags[:-2]], a.out)  # calibrated on the same inputs
        bench = [
            "bench-infer",
            "--model",
            f"{name}.onnx",
            "--torch-model",
            f"{name}.pt2",
            "--runtimes",
            "all",
            "--threads",
            "1,2",
            "--min-time",
            a.min_time,
            *flags,
        ]
        crossrt([*bench, "--json", f"{name}.json"], a.out)
        print(f"\n`crossrt {' '.join(bench)}`\n\n{bench_table(a.out / f'{name}.json')}")
    serve = [
        "loadgen",
        "--model",
        "text.onnx",
        "--torch-model",
        "text.pt2",
        "--runtimes",
        "onnxruntime,pytorch,openvino",
        "--threads",
        "1",
        "--max-batch",
        "8",
        "--duration",
        a.duration,
        *FLAGS["text"][:-2],
    ]
    crossrt([*serve, "--json", "loadgen.json"], a.out)
    print(f"\n`crossrt {' '.join(serve)}`\n\n{loadgen_table(a.out / 'loadgen.json')}")


if __name__ == "__main__":
    main()
