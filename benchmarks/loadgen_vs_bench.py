"""The two harnesses checking each other, in one run: `crossrt loadgen` against `crossrt bench-infer`
on the same model, runtimes and threads, one after the other on this machine.

- LoadGen's SingleStream p90 latency against bench-infer's batch-1 p90 (both per sample);
- LoadGen's Offline samples/s (batches of --max-batch) against bench-infer's at that batch size;
- and the Server table: the highest QPS whose p99 stays within each bound, VALID or not, with the
  batch sizes that ran.

Prints Markdown for BENCHMARKS.md. Minutes on 2 cores.

    python benchmarks/loadgen_vs_bench.py --model exports/lenet5.onnx [--runtimes onnxruntime,pytorch]
        [--threads 1,2] [--bounds 5,1] [--duration 5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from crossrt.results import runtime_label

from common import ENV


def crossrt(args: list[str], cwd: Path) -> dict:
    """`python -m crossrt ARGS --json out.json` with this checkout; the result."""
    out = cwd / f"{args[0]}.json"
    proc = subprocess.run(
        [sys.executable, "-m", "crossrt", *args, "--json", str(out)], cwd=cwd, env=ENV, capture_output=True, text=True
    )
    if proc.returncode not in (0, 1):
        raise SystemExit(f"crossrt {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
    return json.loads(out.read_text())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True, help="a crossrt LeNet5 export")
    p.add_argument("--runtimes", default="onnxruntime,pytorch")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--bounds", default="5,1", help="Server latency bounds, ms")
    p.add_argument("--duration", default="5", help="seconds per LoadGen test")
    p.add_argument("--max-batch", default="100")
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="crossrt-loadgen-"))
    model = str(a.model.resolve())
    t0 = time.time()
    bench = crossrt(
        [
            "bench-infer",
            "--model",
            model,
            "--runtimes",
            a.runtimes,
            "--threads",
            a.threads,
            "--batch-size",
            f"1,{a.max_batch}",
            "--min-time",
            "2",
        ],
        work,
    )
    served = crossrt(
        [
            "loadgen",
            "--model",
            model,
            "--runtimes",
            a.runtimes,
            "--threads",
            a.threads,
            "--scenarios",
            "single-stream,offline,server",
            "--latency-bound",
            a.bounds,
            "--duration",
            a.duration,
            "--max-batch",
            a.max_batch,
        ],
        work,
    )
    env = bench["environment"]
    print(
        f"Machine: {env['cpu_model']}, {env['cpu_cores']} cores; {time.strftime('%Y-%m-%d %H:%M %Z')}; "
        f"{(time.time() - t0) / 60:.1f} min; LoadGen tests of {a.duration} s (not MLPerf-valid); work in {work}\n"
    )

    def bench_row(run, batch):
        return next(
            r
            for r in bench["runs"]
            if (r["runtime"], r["precision"], r["threads"], r["batch_size"])
            == (run["runtime"], run["precision"], run["threads"], batch)
            and r["spin"] is not False
        )

    def same(run, scenario):
        return next(
            r
            for r in served["runs"]
            if r["scenario"] == scenario
            and (r["runtime"], r["precision"], r["threads"]) == (run["runtime"], run["precision"], run["threads"])
        )

    def label(run):
        return runtime_label(SimpleNamespace(**run))

    def judged(run):
        """LoadGen's verdict, and its reasons when INVALID."""
        return "VALID" if run["valid"] else "INVALID: " + "; ".join(r.strip() for r in run["reasons"])

    print(
        "| runtime | threads | LoadGen SingleStream p90 ms | bench-infer batch-1 p90 ms | ratio | "
        f"LoadGen Offline samples/s | bench-infer batch-{a.max_batch} samples/s | ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for run in (r for r in served["runs"] if r["scenario"] == "single-stream"):
        off, b1, bb = same(run, "offline"), bench_row(run, 1), bench_row(run, int(a.max_batch))
        ss, ref = run["latency_ms"]["p90"], b1["latency_ms"]["p90"]
        print(
            f"| {label(run)} | {run['threads']} | {ss:.4f} ({judged(run)}) | {ref:.4f} | {ss / ref:.2f}x | "
            f"{off['samples_per_s']:,.0f} ({judged(off)}) | {bb['samples_per_s']:,.0f} | "
            f"{off['samples_per_s'] / bb['samples_per_s']:.2f}x |"
        )
    print(
        "\n| runtime | threads | p99 bound | highest QPS found | LoadGen | p99 ms | batch sizes that ran (count) | "
        "QPS tried |"
    )
    print("|---|---:|---:|---:|---|---:|---|---|")
    for run in (r for r in served["runs"] if r["scenario"] == "server"):
        ranked = sorted(run["batches"].items(), key=lambda kv: -kv[1])
        tried = ", ".join(f"{t['qps']:,.0f}{'' if t['valid'] else ' x'}" for t in run["search"])
        print(
            f"| {label(run)} | {run['threads']} | {run['latency_bound_ms']:g} ms | {run['target_qps']:,.0f} | "
            f"{judged(run)} | "
            f"{run['latency_ms'].get('p99', float('nan')):.3f} | "
            f"{', '.join(f'{s} ({c:,})' for s, c in ranked[:5])} | {tried} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
