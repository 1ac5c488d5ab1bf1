"""`crossrt report`: result files from any runs and machines as one flat table.

Each training run and each bench-infer configuration becomes a row with the COLUMNS keys,
grouped by machine; rows go out as Markdown or CSV here, or as a rich table (render.py).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from .results import Result, TrainResult, machine_of, parts
from .schema import load_result

COLUMNS = ("machine", "kind", "dataset", "device", "runtime", "threads", "batch_size", "epochs", "train_s",
           "valid_s", "total_s", "images_per_s", "accuracy", "stable", "complete", "created", "source")


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
                         "images_per_s": s["images_per_s"], "accuracy": s["final_accuracy"],
                         "stable": s["train_stable"] if part.schema_version >= 3 else None})
            continue
        rows += [{**run_of, "machine": machine_of(part.environment, run.provider), "kind": "bench-infer",
                  "device": run.where, "runtime": run.runtime_label, "threads": run.threads,
                  "batch_size": run.batch_size, "epochs": None, "train_s": None, "valid_s": run.pass_s,
                  "total_s": None, "images_per_s": run.images_per_s, "accuracy": run.accuracy, "stable": run.stable}
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
