"""Results side by side: `report` merges any runs and machines into rows, `compare` holds B against A.

`report`: each training run, bench-infer configuration and LoadGen test becomes a row keyed by the
columns crossrt.columns declares, grouped by machine; rows go out as Markdown or CSV here, or as a
rich table (crossrt.ui).

`compare`: a row matches when dataset, runtime, precision and setting (provider, data path,
threads, batch size) and spinning are the same, or, for training, device, threads, precision and
batch size. The ratio is B's throughput over A's; its 95% interval comes from resampling both
runs' repeats (passes, or steady epochs). The verdict is asv's: "faster" or "slower" only when the
two runs' repeats differ beyond their own noise (a Mann-Whitney U test at p < 0.002, or 99%
intervals of their means apart) and the ratio lies beyond a run-to-run noise band (`--noise`,
default NOISE): two runs of one build in two processes differ by more than each run's own noise,
on the shared 2-core test machine by 5-11% (once 30%) while each run's own cv was 1-5%
(BENCHMARKS.md). Anything else is "inconclusive".
"""

from __future__ import annotations

import csv
import io
import itertools
import math
from pathlib import Path

import numpy as np

from .columns import FILE, loadgen_rate, report_columns
from .files import load_result
from .results import BenchResult, InferRun, LoadgenResult, Result, TrainResult, parts
from .text import printable
from .timing import bootstrap_means

NOISE = 0.10  # run-to-run noise band: B/A within 1 +- NOISE is never called faster or slower
SIGNIFICANCE = 0.002  # asv's: a Mann-Whitney U p-value below this says two runs differ
# ---------------------------------------------------------------------------- labels


def train_setup(r: TrainResult) -> str:
    """A training run's setting in a few words: "cpu 2x1 thr bf16"."""
    ranks = f"{r.world_size}x" if r.world_size > 1 else ""
    return f"{r.device} {ranks}{r.threads} thr {r.precision}"


def cost_rows(train: TrainResult, runs: list[InferRun]) -> list[tuple[str, float, float]]:
    """The reference's split, (label, training s, validation s): PyTorch inside `train`, then
    the same epochs' validation priced with each bench-infer configuration."""
    s, n = train.summary(), len(train.epochs)
    return [("PyTorch inside `train`", s["train_s"], s["valid_s"])] + [
        (run.label, s["train_s"], n * run.seconds_per_pass) for run in runs
    ]


# ---------------------------------------------------------------------------- report


def model_of(part) -> tuple[str, str]:
    """(key, label) of the model a train or bench-infer result measured: its weights' fingerprint
    where crossrt knows it (a LeNet5 and the ONNX file exported from it share it), else the ONNX
    file's SHA-256, else (a file from before schema 10) its file name."""
    if isinstance(part, TrainResult):
        fp = part.weights_sha256
        return fp or f"train {part.arch}", f"{part.arch} {fp[:8]}" if fp else part.arch
    info = part.model_info or {}
    fp, name = info.get("weights_sha256") or info.get("sha256"), info.get("name") or Path(part.model).name
    return fp or f"file {name}", f"{name} {fp[:8]}" if fp else name


def feed_of(part) -> str:
    """What a result fed a model that has no dataset, in words: each input's bound shape (batch left
    out) and where its values came from, the --inputs file by its digest (crossrt.inputs.identity;
    for an older file, the flags as given); "" for a dataset's images. The feed is part of a
    configuration's identity: a conv net at 16x16 and at 256x256 are two configurations, never one row."""
    if getattr(part, "dataset", None) is not None or not isinstance(part, (BenchResult, LoadgenResult)):
        return ""
    if fed := (part.model_info or {}).get("feed"):  # the tensors as bound (inputs.identity)
        return fed
    feed = (part.config or {}).get("feed") or {}  # a file from before that: the flags as given
    words = [*sorted(feed.get("dims") or ()), *sorted(feed.get("shapes") or ()), *sorted(feed.get("values") or ())]
    ranges = feed.get("input_range") or ()
    words += sorted(r for r in ranges if "=" in r) + [r for r in ranges if "=" not in r and r != "uniform"]
    if feed.get("inputs"):
        digest = (part.model_info or {}).get("inputs_sha256")
        words.append(f"inputs {digest[:12]}" if digest else f"inputs {Path(feed['inputs']).name}")
    return "; ".join(words) or "generated"


def feeds(result: Result) -> dict[str, set[str]]:
    """{model key: the feeds it was given} in a result."""
    out: dict[str, set[str]] = {}
    for part in parts(result):
        out.setdefault(model_of(part)[0], set()).add(feed_of(part))
    return out


def rows_of(result: Result, source: str) -> list[dict]:
    """Flat rows, one per training run, bench configuration or LoadGen test, keyed by the report's
    columns (each read by its declaration, crossrt.columns), and the model's key for grouping: the
    model and what it was fed."""
    rows, columns = [], report_columns()
    for part in parts(result):
        key, label = model_of(part)
        if feed := feed_of(part):
            key, label = f"{key} fed {feed}", f"{label}, fed {feed}"
        if isinstance(part, TrainResult):
            kind, items = "train", [part.summary()]
        else:
            kind, items = ("loadgen" if isinstance(part, LoadgenResult) else "bench"), part.runs
        for item in items:
            row = {c.name: (read(item, part) if (read := getattr(c, kind)) else None) for c in columns}
            rows.append({**row, "model": label, "model_key": key, "source": source})
    return rows


def load_results(paths: list[Path]) -> list[tuple[Path, Result]]:
    """Each file with its checked, typed contents; any other kind or schema is a ResultError."""
    return [(Path(p), load_result(p)) for p in paths]


SAME = ("machine", "model_key", "kind", "dataset", "device", "scenario", "runtime", "threads", "batch_size", "epochs")


def merge(loaded: list[tuple[Path, Result]], group: bool = True) -> list[dict]:
    """Rows of every result, grouped by machine and model; with group, the repeated runs of one
    configuration (SAME) are one row: the median throughput, its spread ((max - min) / median) and n."""
    rows = [row for path, result in loaded for row in rows_of(result, str(path))]
    if group:
        by: dict[tuple, list[dict]] = {}
        for r in rows:
            by.setdefault(tuple(r[k] for k in SAME), []).append(r)
        rows = [_grouped(g) if len(g) > 1 else g[0] for g in by.values()]
    return sorted(rows, key=lambda r: (r["machine"], r["model_key"]))


def _grouped(rows: list[dict]) -> dict:
    """Repeated runs of one configuration as one row whose every figure is one statistic: the median
    of that column over the runs (never one run's training time beside the median throughput)."""
    rates = [r["samples_per_s"] for r in rows if r["samples_per_s"]]
    median = float(np.median(rates)) if rates else None
    middle = min(rows, key=lambda r: abs((r["samples_per_s"] or 0) - (median or 0)))  # the run nearest the median
    medians = {
        k: float(np.median(vs))
        for k in middle
        if len(vs := [r[k] for r in rows if _number(r[k])]) == len(rows) and len(set(vs)) > 1
    }
    return {
        **middle,
        **medians,
        "samples_per_s": median,
        "n": len(rows),
        "run": ",".join(r["run"] for r in rows),
        "spread": (max(rates) - min(rates)) / median if median else None,
        "ci95": None,
        "stable": all(r["stable"] for r in rows) if None not in [r["stable"] for r in rows] else None,
        "complete": all(r["complete"] for r in rows),
        "source": f"{len(rows)} files",
        "unstable_cause": "; ".join(sorted({r["unstable_cause"] for r in rows if r["unstable_cause"]})) or None,
    }


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _cell(v) -> str:
    """A value as text for Markdown, where its column declares no format of its own."""
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.0f}" if abs(v) >= 1000 else f"{v:.4g}"
    return printable(v)  # text from a result file: no control character reaches the terminal


def to_markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table of the columns that hold something in some row (a table of bench
    rows has no epochs; CSV keeps every column, for a spreadsheet's fixed layout)."""
    columns = [c for c in report_columns() if c.places & FILE and any(r[c.name] not in (None, "") for r in rows)]
    lines = ["| " + " | ".join(c.name for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join((c.md or _cell)(r[c.name]).replace("|", "/") for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _csv_value(v):
    """A CSV value: text without control characters, and never read as a formula by a spreadsheet
    (a cell of text starting with = + - @ is prefixed with ', as OWASP advises)."""
    if v is None:
        return ""
    if isinstance(v, str):
        v = printable(v)
        return "'" + v if v[:1] in ("=", "+", "-", "@") else v
    return v


def to_csv(rows: list[dict]) -> str:
    """CSV of the rows: values as they are (an interval as low-high), never a spreadsheet formula."""
    columns = [c for c in report_columns() if c.places & FILE]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[c.name for c in columns], lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({c.name: _csv_value(_joined(r[c.name])) for c in columns})
    return buf.getvalue()


def _joined(v):
    return "-".join(map(str, v)) if isinstance(v, list | tuple) and v else v


# ---------------------------------------------------------------------------- compare


def _repeats(result: Result, with_model: bool) -> dict[tuple, tuple[str, float, list[float]]]:
    """key -> (label, items/s, repeat seconds) of every timed row in a result file; the model is
    part of the key unless with_model is False."""
    rows: dict[tuple, tuple[str, float, list[float]]] = {}
    for part in parts(result):
        model = (model_of(part)[0], feed_of(part)) if with_model else ()
        if isinstance(part, TrainResult):
            key = (
                "train",
                *model,
                part.dataset,
                part.device,
                part.world_size,
                part.threads,
                part.precision,
                part.batch_size,
            )
            rows.setdefault(
                key,
                (
                    f"training, {train_setup(part)}, batch {part.batch_size}",
                    part.summary()["steady_images_per_s"] or 0.0,
                    [e.train_s for e in part.steady_epochs],
                ),
            )
            continue
        if isinstance(part, LoadgenResult):  # LoadGen keeps no repeats: the rows have no interval
            for run, rate in ((r, loadgen_rate(r)) for r in part.runs if r.mode == "performance"):
                if not rate:  # an INVALID Server search kept no rate
                    continue
                key = (
                    "loadgen",
                    *model,
                    part.dataset,
                    run.runtime,
                    run.precision,
                    run.provider,
                    run.threads,
                    run.spin,
                    run.scenario,
                    run.latency_bound_ms,
                )
                rows.setdefault(
                    key,
                    (
                        f"LoadGen {run.scenario}, {run.runtime} {run.provider}, {run.threads} thr"
                        + (f", p99 <= {run.latency_bound_ms:g} ms" if run.latency_bound_ms else ""),
                        rate,
                        [],
                    ),
                )
            continue
        for run in part.runs:
            key = ("bench", *model, part.dataset, run.runtime, run.precision, *run.setting, run.spin)
            rows.setdefault(key, (f"validation, {run.label}", run.samples_per_s, run.pass_times_s))
    return rows


def models(result: Result) -> dict[str, str]:
    """{key: label} of the models a result measured."""
    return dict(model_of(part) for part in parts(result))


def ratio_ci(a: list[float], b: list[float]) -> list[float] | None:
    """95% interval of throughput(B) / throughput(A) = mean(A's repeat times) / mean(B's), bootstrapped."""
    if len(a) < 2 or len(b) < 2 or min(a) <= 0 or min(b) <= 0:
        return None
    rng = np.random.default_rng(0)
    low, high = np.percentile(bootstrap_means(a, rng) / bootstrap_means(b, rng), [2.5, 97.5])
    return [float(low), float(high)]


def mann_whitney_p(a: list[float], b: list[float]) -> float:
    """Two-sided p-value of the Mann-Whitney U test of a against b: exact (every way of dealing the
    pooled ranks) for small samples, else the normal approximation with the tie correction."""
    x = np.concatenate([np.asarray(a, np.float64), np.asarray(b, np.float64)])
    n, m = len(a), len(b)
    values, which = np.unique(x, return_inverse=True)
    ties = np.bincount(which).astype(np.float64)
    ranks = (np.cumsum(ties) - (ties - 1) / 2)[which]  # ties share their mean rank
    u, mu = ranks[:n].sum() - n * (n + 1) / 2, n * m / 2
    if math.comb(n + m, n) <= 50_000:
        dealt = np.fromiter(itertools.chain.from_iterable(itertools.combinations(range(n + m), n)), np.intp)
        us = ranks[dealt.reshape(-1, n)].sum(axis=1) - n * (n + 1) / 2
        return float(np.mean(np.abs(us - mu) >= abs(u - mu) - 1e-9))
    sigma = math.sqrt(n * m / 12 * ((n + m + 1) - (ties**3 - ties).sum() / ((n + m) * (n + m - 1))))
    return float(math.erfc(max(abs(u - mu) - 0.5, 0) / sigma / math.sqrt(2))) if sigma else 1.0


# Student's t at 0.995 (a two-sided 99% interval) for 1..30 degrees of freedom; beyond, the normal's.
T_995 = (63.657, 9.925, 5.841, 4.604, 4.032, 3.707, 3.499, 3.355, 3.250, 3.169, 3.106, 3.055, 3.012, 2.977, 2.947)
T_995 += (2.921, 2.898, 2.878, 2.861, 2.845, 2.831, 2.819, 2.807, 2.797, 2.787, 2.779, 2.771, 2.763, 2.756, 2.750)


def mean_interval_99(v: list[float]) -> tuple[float, float]:
    """A 99% interval of the mean of v, Student's t (honest at 2 or 3 repeats, where a bootstrap's
    interval is only the samples' range)."""
    x = np.asarray(v, np.float64)
    t = T_995[len(x) - 2] if len(x) - 1 <= len(T_995) else 2.576
    half = t * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean() - half), float(x.mean() + half)


def apart(a: list[float], b: list[float]) -> bool:
    """Whether two runs' repeat times differ beyond their own noise, as asv decides: a Mann-Whitney
    U test at p < 0.002 where the samples are enough for it to reach that (2 / C(n+m, n) below it:
    7 and 7 repeats, or more), else 99% intervals of their means that do not overlap."""
    if 2 / math.comb(len(a) + len(b), len(a)) < SIGNIFICANCE:
        return mann_whitney_p(a, b) < SIGNIFICANCE
    (la, ha), (lb, hb) = mean_interval_99(a), mean_interval_99(b)
    return bool(ha < lb or hb < la)


def verdict(differ: bool | None, ratio: float, noise: float = NOISE) -> str:
    """faster or slower: the runs differ beyond their own noise (`apart`) and by more than the noise
    band between runs; otherwise inconclusive, and why when the test alone says they differ.
    differ None: there are no repeats to test."""
    if differ is None:
        return "no verdict: fewer than 2 repeats (LoadGen rows keep none; files before schema 3 neither)"
    if differ and abs(ratio - 1) > noise:
        return "faster" if ratio > 1 else "slower"
    if differ:
        way = "faster" if ratio > 1 else "slower"
        return f"inconclusive ({way} beyond each run's noise, within the ±{100 * noise:.0f}% band)"
    return "inconclusive"


def compare(a: Result, b: Result, noise: float = NOISE, different_models: bool = False) -> tuple[list[dict], int, int]:
    """Matching rows (what, a, b, ratio, ci95, apart, verdict) and the counts of rows found in only A or only B.
    Rows match only on the same model, unless different_models says to hold one model against another."""
    ra, rb = _repeats(a, not different_models), _repeats(b, not different_models)
    rows = []
    for key in (k for k in ra if k in rb):
        (what, ips_a, rep_a), (_, ips_b, rep_b) = ra[key], rb[key]
        ratio = ips_b / ips_a if ips_a else float("nan")
        ci = ratio_ci(rep_a, rep_b)
        differ = apart(rep_a, rep_b) if ci is not None else None
        rows.append(
            {
                "what": what,
                "a": ips_a,
                "b": ips_b,
                "ratio": ratio,
                "ci95": ci,
                "apart": differ,
                "verdict": verdict(differ, ratio, noise),
            }
        )
    return rows, len(ra.keys() - rb.keys()), len(rb.keys() - ra.keys())
