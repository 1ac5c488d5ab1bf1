"""Results side by side: `report` merges any runs and machines into rows, `compare` holds B against A.

`report`: each training run and each bench-infer configuration becomes a row with the COLUMNS
keys, grouped by machine; rows go out as Markdown or CSV here, or as a rich table (crossrt.ui).

`compare`: a row matches when dataset, runtime, precision and setting (provider, data path,
threads, batch size) and spinning are the same, or, for training, device, threads, precision and
batch size. The ratio is B's throughput over A's; its 95% interval comes from resampling both
runs' repeats (passes, or steady epochs). That interval only knows the noise inside each run. Two
runs of one build in two processes differ by more: on the shared 2-core test machine by 5-11%
(once 30%) while each run's own cv was 1-5% (BENCHMARKS.md). So the verdict says "faster" or
"slower" only when the interval lies wholly beyond a run-to-run noise band (`--noise`, default
NOISE); otherwise "same within noise".
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from .files import load_result
from .results import InferRun, Result, TrainResult, parts
from .timing import bootstrap_means

NOISE = 0.10  # run-to-run noise band: B/A within 1 +- NOISE is "same within noise"
COLUMNS = ("machine", "kind", "dataset", "device", "runtime", "threads", "batch_size", "epochs", "train_s",
           "valid_s", "total_s", "samples_per_s", "accuracy", "stable", "complete", "created", "source")


# ---------------------------------------------------------------------------- labels

def hardware_of(environment: dict, device: str = "cpu") -> str:
    """What a result ran on: its GPU for CUDA runs, else the CPU model and its core count."""
    env = environment or {}
    if device == "cuda" and env.get("gpu"):
        return env["gpu"]["name"]
    return f"{env.get('cpu_model', '?')} ({env.get('cpu_cores', '?')} cores)"


def machine_of(environment: dict, device: str = "cpu") -> str:
    """hardware_of, and for the CPU the host too: the machine results are grouped by."""
    env = environment or {}
    gpu = device == "cuda" and env.get("gpu")
    return hardware_of(env, device) + ("" if gpu else f" @ {env.get('hostname', '?')}")


def train_setup(r: TrainResult) -> str:
    """A training run's setting in a few words: "cpu 2x1 thr bf16"."""
    ranks = f"{r.world_size}x" if r.world_size > 1 else ""
    return f"{r.device} {ranks}{r.threads} thr {r.precision}"


def cost_rows(train: TrainResult, runs: list[InferRun]) -> list[tuple[str, float, float]]:
    """The reference's split, (label, training s, validation s): PyTorch inside `train`, then
    the same epochs' validation priced with each bench-infer configuration."""
    s, n = train.summary(), len(train.epochs)
    return [("PyTorch inside `train`", s["train_s"], s["valid_s"])] + \
        [(run.label, s["train_s"], n * run.seconds_per_pass) for run in runs]


# ---------------------------------------------------------------------------- report

def rows_of(result: Result, source: str) -> list[dict]:
    """Flat rows, one per training run or bench configuration, with COLUMNS as keys."""
    rows = []
    for part in parts(result):
        run_of = {"dataset": part.dataset, "complete": part.complete, "created": part.created, "source": source}
        if isinstance(part, TrainResult):
            s = part.summary()
            rows.append({**run_of, "machine": machine_of(part.environment, part.device), "kind": "train",
                         "device": f"{part.device} {part.precision}", "runtime": "pytorch",
                         "threads": part.threads if part.world_size == 1 else f"{part.world_size}x{part.threads}",
                         "batch_size": part.batch_size, "epochs": len(part.epochs),
                         "train_s": s["train_s"], "valid_s": s["valid_s"], "total_s": s["total_s"],
                         "samples_per_s": s["images_per_s"], "accuracy": s["final_accuracy"],
                         "stable": s["train_stable"] if part.schema_version >= 3 else None})
            continue
        rows += [{**run_of, "machine": machine_of(part.environment, run.provider), "kind": "bench-infer",
                  "device": run.where, "runtime": run.runtime_label, "threads": run.threads,
                  "batch_size": run.batch_size, "epochs": None, "train_s": None, "valid_s": run.seconds_per_pass,
                  "total_s": None, "samples_per_s": run.samples_per_s, "accuracy": run.accuracy, "stable": run.stable}
                 for run in part.runs]
    return rows


def load_results(paths: list[Path]) -> list[tuple[Path, Result]]:
    """Each file with its checked, typed contents; any other kind or schema is a ResultError."""
    return [(Path(p), load_result(p)) for p in paths]


def merge(loaded: list[tuple[Path, Result]]) -> list[dict]:
    """Rows of every result, grouped by machine (stable within a machine)."""
    rows = [row for path, result in loaded for row in rows_of(result, str(path))]
    return sorted(rows, key=lambda r: r["machine"])


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.0f}" if abs(v) >= 1000 else f"{v:.4g}"
    return str(v)


def to_markdown(rows: list[dict], columns=COLUMNS) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r[c]).replace("|", "/") for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict], columns=COLUMNS) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: "" if r[c] is None else r[c] for c in columns})
    return buf.getvalue()


# ---------------------------------------------------------------------------- compare

def _repeats(result: Result) -> dict[tuple, tuple[str, float, list[float]]]:
    """key -> (label, items/s, repeat seconds) of every timed row in a result file."""
    rows: dict[tuple, tuple[str, float, list[float]]] = {}
    for part in parts(result):
        if isinstance(part, TrainResult):
            key = ("train", part.dataset, part.device, part.threads, part.precision, part.batch_size)
            rows.setdefault(key, (f"training, {train_setup(part)}, batch {part.batch_size}",
                                  part.summary()["images_per_s"] or 0.0, [e.train_s for e in part.steady_epochs]))
            continue
        for run in part.runs:
            key = ("bench", part.dataset, run.runtime, run.precision, *run.setting, run.spin)
            rows.setdefault(key, (f"validation, {run.label}", run.samples_per_s, run.pass_times_s))
    return rows


def ratio_ci(a: list[float], b: list[float]) -> list[float] | None:
    """95% interval of throughput(B) / throughput(A) = mean(A's repeat times) / mean(B's), bootstrapped."""
    if len(a) < 2 or len(b) < 2:
        return None
    rng = np.random.default_rng(0)
    low, high = np.percentile(bootstrap_means(a, rng) / bootstrap_means(b, rng), [2.5, 97.5])
    return [float(low), float(high)]


def verdict(ci: list[float] | None, noise: float = NOISE) -> str:
    if ci is None:
        return "no verdict: fewer than 2 repeats (or a file from before schema 3)"
    if ci[0] > 1 + noise:
        return "faster"
    if ci[1] < 1 - noise:
        return "slower"
    return "same within noise"


def compare(a: Result, b: Result, noise: float = NOISE) -> tuple[list[dict], int, int]:
    """Matching rows (what, a, b, ratio, ci95, verdict) and the counts of rows found in only A or only B."""
    ra, rb = _repeats(a), _repeats(b)
    rows = []
    for key in (k for k in ra if k in rb):
        (what, ips_a, rep_a), (_, ips_b, rep_b) = ra[key], rb[key]
        ratio = ips_b / ips_a if ips_a else float("nan")
        ci = ratio_ci(rep_a, rep_b)
        rows.append({"what": what, "a": ips_a, "b": ips_b, "ratio": ratio, "ci95": ci, "verdict": verdict(ci, noise)})
    return rows, len(ra.keys() - rb.keys()), len(rb.keys() - ra.keys())
