"""Any ONNX model, measured: the six models the tests make (tests/test_any_model.py) and a ResNet-18
(benchmarks/resnet18.py), each quantized with `crossrt quantize` and timed under onnxruntime,
openvino and onnxruntime-int8 at 1 and 2 threads, every output compared with ONNX Runtime CPU fp32.
Prints Markdown tables for BENCHMARKS.md. Minutes on 2 cores.

    python benchmarks/any_models.py [--out DIR] [--skip-small]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import ENV, ROOT

sys.path.insert(0, str(ROOT / "tests"))
from test_any_model import MODELS  # noqa: E402  the builders of the test models

RUNTIMES = "onnxruntime,openvino,onnxruntime-int8"


def crossrt(args: list[str], cwd: Path) -> int:
    """`python -m crossrt ARGS` with this checkout; its exit code (1 is a row that failed or disagreed)."""
    proc = subprocess.run([sys.executable, "-m", "crossrt", *args], cwd=cwd, env=ENV, capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        print(f"exit {proc.returncode}: crossrt {' '.join(args)}: {proc.stderr.strip()[-300:]}", file=sys.stderr)
    return proc.returncode


def bench(model: Path, flags: list[str], out: Path, min_time: str) -> dict:
    binding = [f for i, f in enumerate(flags) if "--batch-size" not in flags[i - i % 2 : i - i % 2 + 1]]
    int8 = out / f"{model.stem}.int8.onnx"
    crossrt(["quantize", "--model", str(model), "--out", str(int8), *binding, "--calibration-images", "64"], out)
    crossrt(
        [
            "bench-infer",
            "--model",
            str(model),
            *flags,
            "--runtimes",
            RUNTIMES,
            "--threads",
            "1,2",
            "--int8-model",
            str(int8),
            "--min-time",
            min_time,
            "--json",
            str(out / f"{model.stem}.json"),
        ],
        out,
    )
    return json.loads((out / f"{model.stem}.json").read_text())


def table(results: dict[str, dict]) -> str:
    lines = [
        "| model | runtime | threads | batch | samples/s | % of peak | worst output: max abs diff, "
        "/ max abs ref | top-1 = ORT CPU | within tolerance |",
        "|" + "---|" * 9,
    ]
    for name, r in results.items():
        for x in r["runs"]:
            w = max(x["outputs"], key=lambda o: o["max_rel"] or 0)
            peak = "" if x["percent_of_peak"] is None else f"{x['percent_of_peak']:.0f}%"
            top1 = "" if w["top1"] is None else f"{100 * w['top1']:.2f}%"
            label = x["runtime"] + (f" {x['precision']}" if x["precision"] == "bf16" else "")
            lines.append(
                f"| {name} | {label} | {x['threads']} | {x['batch_size']} | {x['samples_per_s']:,.0f} | "
                f"{peak} | {w['max_abs']:.2e}, {w['max_rel']:.2e} | {top1} | "
                f"{'yes' if x['parity_ok'] else 'NO'} |"
            )
        for f in r["failed"]:
            label = f["runtime"] + (f" {f['precision']}" if f["precision"] == "bf16" else "")
            lines.append(
                f"| {name} | {label} | {f['threads']} | {f['batch_size']} | failed: {f['reason'][:70]} | | | | |"
            )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--out", type=Path, default=Path("/tmp/crossrt-any-models"), help="work folder (default: %(default)s)"
    )
    p.add_argument("--skip-small", action="store_true", help="only the ResNet-18")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    small = {}
    if not a.skip_small:
        for name, (make, flags, *_) in MODELS.items():
            small[name] = bench(make(a.out / f"{name}.onnx"), flags, a.out, "0.5")
    resnet = a.out / "resnet18.onnx"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "resnet18.py"), "--out", str(resnet)], check=True)
    big = {"ResNet-18": bench(resnet, ["--batch-size", "1,8"], a.out, "2")}
    env = big["ResNet-18"]["environment"]
    print(
        f"Machine: {env['cpu_model']}, {env['cpu_cores']} cores; onnxruntime {env['versions']['onnxruntime']}; "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}; {(time.time() - t0) / 60:.1f} min\n"
    )
    if small:
        print(table(small) + "\n")
    print(table(big))
    return 0


if __name__ == "__main__":
    sys.exit(main())
