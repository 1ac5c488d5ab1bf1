"""Every column of bench-infer's table and of `report` (console, Markdown and CSV), declared once.

A column names its key (the CSV and Markdown header), its heading in a console table, how it
reads its value from each kind of row, how a console cell shows that value (rich markup allowed)
and its layout rule: `fold` (said once in the title when every row has the same value), `drop`
(its place when the width splits a table: 0 in the first part, higher ones later), `key` (labels
a row, repeated in every part). A new result field is its dataclass field and one column here:

    Column("watts", "W", bench=lambda run, result: run.watts, shown=num, drop=3, places=BENCH | FILE)

in BENCH_COLUMNS: bench-infer's table shows it, and `report --csv` and `--markdown` carry it.

This module loads no rich (measurement imports crossrt.compare, which reads REPORT_COLUMNS).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .results import OutputComparison
from .text import printable

BENCH, REPORT, FILE = 1, 2, 4  # bench-infer's console table; report's console table; report's CSV and Markdown
MAX_RATE = 1e15  # samples/s: beyond any machine (crossrt.schema.MAX_FLOAT); a rate above it is no figure


# ---------------------------------------------------------------------------- cell formats


def secs(seconds: float | None) -> str:
    """Seconds with their digits kept: 12.34 s, or 0.17 ms for what takes less than 10 ms."""
    if seconds is None:
        return "—"
    return f"{seconds * 1e3:.2f} ms" if seconds < 0.01 else f"{seconds:,.2f} s"


def pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}%"


def num(x: float | None, digits: int = 0) -> str:
    return "—" if x is None else f"{x:,.{digits}f}"


def num1(x: float | None) -> str:
    return num(x, 1)


def peak_pct(p: float | None) -> str:
    """% of peak; over 100% (a peak measured on a busier moment) is never shown as if normal."""
    return "—" if p is None else f"{p:.0f}%" if p <= 100 else f"[yellow]{p:.0f}%![/]"


def cold(seconds: float) -> str:
    """A cold cost: milliseconds, or seconds once it is long (a compile)."""
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:,.2f} s"


def stable(ok: bool | None) -> str:
    return "—" if ok is None else "yes" if ok else "[yellow]no[/]"


def ci(ci: list[float] | None) -> str:
    return "—" if not ci else f"{ci[0]:,.0f}–{ci[1]:,.0f}"


def esc(text) -> str:
    """Text from outside (a path, a name, a field of a file) as rich markup that shows it as it
    is: markup escaped, control characters made visible (crossrt.text.printable). Called only when
    a console table is drawn, so rich loads only then."""
    from rich.markup import escape

    return escape(printable(str(text)))


def md_pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.2f}%"


def md_ci(ci: list[float] | None) -> str:
    return "" if ci is None else f"{ci[0]:,.0f}-{ci[1]:,.0f}"


def plain_text(v) -> str:
    return "—" if v is None else str(v)


# ---------------------------------------------------------------------------- the declaration


@dataclass(frozen=True)
class Column:
    """One column: see the module's docstring. A value reader takes (row, result): a bench-infer
    row (InferRun) and its BenchResult; a training run's summary() and its TrainResult; a LoadGen
    test and its LoadgenResult. A kind without a reader has no value there (None)."""

    name: str  # the key of a report row, the CSV and Markdown header
    heading: str | None = None  # in a console table ({unit}: img or samples); None: the name
    bench: Callable | None = None
    train: Callable | None = None
    loadgen: Callable | None = None
    shown: Callable[[object], str] = plain_text  # a console cell from the value
    md: Callable[[object], str] | None = None  # a Markdown cell from the value; None: crossrt.compare's default
    places: int = BENCH  # where it appears: BENCH, REPORT, FILE, or several (BENCH | FILE)
    when: Callable | None = None  # bench-infer: only when when(result) (the accuracy columns need labels)
    red: bool = False  # bench-infer: shown in red on a row whose outputs disagree (parity_ok false)
    left: bool = False
    drop: int | Callable = 0  # or drop(result), for a bench-infer column whose place depends on the result
    fold: bool = False
    wrap: bool = False
    key: bool = False

    def title(self, unit: str = "") -> str:
        return (self.heading if self.heading is not None else self.name).format(unit=unit)


def _ratio(run, result) -> str:
    """Throughput over the PyTorch row of the same setting; over an unstable PyTorch row, marked
    (`?`, yellow), as the caption says."""
    base = next((y for y in result.runs if y.runtime == "pytorch" and run.setting == y.setting), None)
    if base is None:
        return "—"
    text = f"{run.samples_per_s / base.samples_per_s:.2f}x"
    return f"[yellow]{text}?[/]" if base.stable is False else text


def worst_output(run) -> OutputComparison | None:
    """The output that differs most from ONNX Runtime CPU fp32 (a failed one first)."""
    return max(run.outputs or [], key=lambda o: (not o.ok, o.max_rel or 0), default=None)


def _diff(run, result) -> str:
    w = worst_output(run)
    text = "—" if w is None or w.max_rel is None else str(w.note or f"{w.max_rel:.1e}")
    return f"[bold red]{text}[/]" if w and not w.ok else text


def _top1_of_output(run, result) -> str:
    """The lowest top-1 agreement over the outputs that have one (those that look like class scores)."""
    top = [o.top1 for o in run.outputs or [] if o.top1 is not None]
    return pct(min(top)) if top else "—"


def _labelled(result) -> bool:
    return result.dataset is not None


def _torch_rows(result) -> bool:
    return any(x.runtime == "pytorch" for x in result.runs)


# Below this many FLOPs a batch is mostly the call's overhead: its GFLOP/s and % of the GEMM peak
# say nothing about the kernels (a 2 kFLOP text model at 60,000 calls/s is "0%" of any peak).
MEANINGFUL_FLOPS = 1e6


def flops_matter(result) -> bool:
    """Whether GFLOP/s and % of peak mean something here: FLOPs counted, and a batch of the
    smallest size does at least MEANINGFUL_FLOPS of them."""
    batches = [x.batch_size for x in result.runs]
    return bool(result.flops_per_sample and batches and result.flops_per_sample * min(batches) >= MEANINGFUL_FLOPS)


def _latency(fmt: str) -> Callable:
    return lambda run, result: fmt.format(lat=run.latency_ms)


def _attr(name: str) -> Callable:
    return lambda row, result: getattr(row, name)


def _key(name: str) -> Callable:
    return lambda summary, result: summary[name]


# bench-infer's columns, per sample of the model (an image for LeNet5). `drop` orders them when the
# width splits the table: throughput, stability, the ratio, accuracy or output agreement, % of peak
# and CPU cost (README's --spin both) first; the latency percentiles next; the spread, the
# intervals, GFLOP/s and the cold costs last.
BENCH_COLUMNS = (
    Column("runtime", bench=lambda run, result: esc(run.runtime_label), left=True, key=True),
    Column("provider", bench=lambda run, result: esc(run.where), left=True, fold=True, key=True),
    Column("threads", bench=lambda run, result: str(run.threads or "auto"), fold=True, key=True),
    Column("batch", bench=lambda run, result: str(run.batch_size), fold=True, key=True),
    Column("samples_per_s", "{unit}/s", bench=_attr("samples_per_s"), shown=num),
    Column("vs_pytorch", "vs\nPyTorch", bench=_ratio, when=_torch_rows, drop=1),
    Column("cv", bench=lambda run, result: "—" if run.cv is None else f"{100 * run.cv:.1f}%", drop=5),
    Column("stable", bench=_attr("stable"), shown=stable),
    Column("ci95", "95% CI\n{unit}/s", bench=_attr("ci95"), shown=ci, drop=4),
    Column("gflops", "GFLOP/s", bench=_attr("gflops"), shown=num1, when=flops_matter, drop=6),
    Column("percent_of_peak", "% peak", bench=_attr("percent_of_peak"), shown=peak_pct, when=flops_matter, drop=2),
    Column(
        "cpu_s_per_1k",
        "CPU s /\n1k {unit}",
        bench=lambda run, result: "—" if run.cpu_s_per_1k is None else f"{run.cpu_s_per_1k:.3f}",
        drop=2,
    ),
    Column("latency_mean_std", "ms/batch\nmean±std", bench=_latency("{lat.mean:.3f} ± {lat.std:.3f}"), drop=5),
    Column(
        "latency_p50_p90_p99", "p50/p90/p99\nms", bench=_latency("{lat.p50:.3f}/{lat.p90:.3f}/{lat.p99:.3f}"), drop=3
    ),
    Column("session_create_s", "create", bench=_attr("session_create_s"), shown=cold, drop=6),
    Column("first_run_s", "1st run", bench=_attr("first_run_s"), shown=cold, drop=6),
    # Without labels to score, the outputs' agreement is the row's correctness: it goes first.
    Column("output_diff", "vs ORT CPU\nfp32 diff", bench=_diff, drop=lambda r: 2 if _labelled(r) else 1),
    Column("accuracy", bench=_attr("accuracy"), shown=pct, red=True, when=_labelled, drop=1),
    Column(
        "accuracy_delta",
        "vs PyTorch\naccuracy",
        bench=lambda run, result: "—" if run.accuracy_delta is None else f"{100 * run.accuracy_delta:+.2f} pt",
        red=True,
        when=_labelled,
        drop=4,
    ),
    Column(
        "top1_agreement",
        "top-1 =\nPyTorch",
        bench=lambda run, result: "—" if run.top1_agreement is None else pct(run.top1_agreement),
        red=True,
        when=_labelled,
        drop=4,
    ),
    Column("top1_of_output", "top-1 =\nORT CPU", bench=_top1_of_output, when=lambda r: not _labelled(r), drop=1),
)


# ---------------------------------------------------------------------------- report


def _every(f: Callable) -> dict:
    """Readers for every kind of row from what the whole result says (f(result))."""
    return {kind: (lambda row, result: f(result)) for kind in ("bench", "train", "loadgen")}


def _loadgen_scenario(run, result) -> str:
    bound = f" p99<={run.latency_bound_ms:g} ms" if run.latency_bound_ms else ""
    return f"{run.scenario}{bound}" + (" accuracy" if run.mode == "accuracy" else "")


def _loadgen_verdict(run, result) -> str | None:
    return {True: "VALID", False: "INVALID", None: None}[run.valid]


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


def loadgen_rate(run) -> float | None:
    """A LoadGen test's samples/s: Offline's own; Server's QPS only when VALID (an INVALID search
    kept no rate); SingleStream and MultiStream one query at a time, at its p90 / p99 latency
    (a MultiStream query holds run.per_query samples)."""
    if run.scenario == "server":
        return run.target_qps if run.valid else None
    ms = run.latency_ms.get("p99" if run.scenario == "multi-stream" else "p90")
    if run.samples_per_s or not ms:
        return run.samples_per_s
    rate = run.per_query * 1e3 / ms
    return rate if rate < MAX_RATE else None  # a latency of 5e-324 ms is a damaged file, not a rate


def _machine(device_of: Callable) -> Callable:
    return lambda row, result: machine_of(result.environment, device_of(row, result))


def _loadgen_rate(run, result):
    return loadgen_rate(run)


def _train_threads(s, r):
    return r.threads if r.world_size == 1 else f"{r.world_size}x{r.threads}"


def _train_stable(s, r):
    return s["train_stable"] if r.schema_version >= 3 else None


# One row per training run, bench-infer configuration or LoadGen test (crossrt.compare.rows_of), in
# the order of the CSV; a console table of `report` shows those with REPORT (a wrapping one last).
REPORT_COLUMNS = (
    Column(
        "machine",
        bench=_machine(lambda run, r: run.provider),
        train=_machine(lambda s, r: r.device),
        loadgen=_machine(lambda run, r: run.provider),
        places=FILE,
    ),
    Column("model", places=FILE),  # rows_of: the model's label (crossrt.compare.model_of)
    Column(
        "run",
        **_every(lambda r: r.run_id),
        shown=lambda v: esc(v.replace(",", ", ")),
        left=True,
        drop=1,
        wrap=True,
        places=REPORT | FILE,
    ),
    Column(
        "kind",
        bench=lambda run, r: "bench-infer",
        train=lambda s, r: "train",
        loadgen=lambda run, r: "loadgen",
        left=True,
        key=True,
        fold=True,
        places=REPORT | FILE,
    ),
    Column(
        "dataset",
        **_every(lambda r: r.dataset or "generated"),
        shown=esc,
        left=True,
        fold=True,
        key=True,
        places=REPORT | FILE,
    ),
    Column(
        "device",
        bench=lambda run, r: run.where,
        train=lambda s, r: f"{r.device} {r.precision}",
        loadgen=_attr("provider"),
        shown=esc,
        left=True,
        fold=True,
        key=True,
        places=REPORT | FILE,
    ),
    Column(
        "scenario",
        loadgen=_loadgen_scenario,
        shown=lambda v: "" if v is None else esc(v),
        left=True,
        fold=True,
        key=True,
        places=REPORT | FILE,
    ),
    Column(
        "loadgen",
        "LoadGen",
        loadgen=_loadgen_verdict,
        shown=lambda v: "" if v is None else esc(v),
        left=True,
        places=REPORT | FILE,
    ),
    Column(
        "runtime",
        bench=lambda run, r: run.runtime_label,
        train=lambda s, r: "pytorch",
        loadgen=_attr("runtime"),
        shown=esc,
        left=True,
        key=True,
        places=REPORT | FILE,
    ),
    Column(
        "threads",
        bench=_attr("threads"),
        train=_train_threads,
        loadgen=_attr("threads"),
        shown=esc,
        fold=True,
        key=True,
        places=REPORT | FILE,
    ),
    Column(
        "batch_size",
        "batch",
        bench=_attr("batch_size"),
        train=lambda s, r: r.batch_size,
        shown=lambda v: "" if v is None else str(v),  # a LoadGen test has none: its batches vary
        fold=True,
        key=True,
        places=REPORT | FILE,
    ),
    Column(
        "epochs",
        train=lambda s, r: len(r.epochs),
        shown=lambda v: "" if v is None else str(v),
        fold=True,
        key=True,
        places=REPORT | FILE,
    ),
    Column("train_s", "training", train=_key("train_s"), shown=secs, drop=2, places=REPORT | FILE),
    Column(
        "valid_s",
        "validation",
        bench=_attr("seconds_per_pass"),
        train=_key("valid_s"),
        shown=secs,
        drop=2,
        places=REPORT | FILE,
    ),
    Column("total_s", "total", train=_key("total_s"), shown=secs, drop=3, places=REPORT | FILE),
    Column(
        "samples_per_s",
        "samples/s",
        bench=_attr("samples_per_s"),
        train=_key("steady_images_per_s"),
        loadgen=_loadgen_rate,
        shown=num,
        places=REPORT | FILE,
    ),
    Column("ci95", bench=_attr("ci95"), train=_key("train_ci95"), md=md_ci, places=FILE),
    Column("n", **_every(lambda r: 1), shown=str, drop=1, places=REPORT | FILE),
    Column("spread", shown=lambda v: "—" if v is None else f"{100 * v:.1f}%", md=md_pct, drop=1, places=REPORT | FILE),
    Column(
        "accuracy",
        bench=_attr("accuracy"),
        train=_key("final_accuracy"),
        loadgen=_attr("accuracy"),
        shown=pct,
        drop=1,
        md=md_pct,
        places=REPORT | FILE,
    ),
    Column("stable", bench=_attr("stable"), train=_train_stable, shown=stable, places=REPORT | FILE),
    Column(
        "unstable_cause",
        bench=_attr("unstable_cause"),
        train=_key("train_unstable_cause"),
        loadgen=lambda run, r: "; ".join(run.reasons) or None,
        places=FILE,
    ),
    Column("complete", **_every(lambda r: r.complete), places=FILE),
    Column("created", **_every(lambda r: r.created), places=FILE),
    Column("source", places=FILE),  # rows_of: the file it came from
)


def report_columns() -> list[Column]:
    """What `report` reads from every row: its own columns, then those of bench-infer's that a
    report shows too (places REPORT or FILE), read from bench rows alone. A name is one column."""
    cols = [*REPORT_COLUMNS, *(c for c in BENCH_COLUMNS if c.places & (REPORT | FILE))]
    names = [c.name for c in cols]
    assert len(set(names)) == len(names), f"a column is declared twice: {names}"
    return cols
