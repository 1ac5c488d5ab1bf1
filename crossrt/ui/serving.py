"""What `crossrt loadgen` shows: a line per LoadGen test as it ends, then a table per scenario,
LoadGen's verdict and reasons on every row, and the Server search's trail."""

from __future__ import annotations

from pathlib import Path

from ..columns import num, pct
from ..results import Failed, LoadgenResult, LoadgenRun, runtime_label
from ..scenarios import MAX_QUERIES, MLPERF_MIN_DURATION_S, SCENARIOS
from .console import BenchProgress, console, esc, fail_line, note
from .layout import Col, fitted


def verdict(run: LoadgenRun) -> str:
    return "" if run.valid is None else "[green]VALID[/]" if run.valid else "[yellow]INVALID[/]"


def what(x) -> str:
    """The configuration in a few words: runtime, provider, threads."""
    return f"{runtime_label(x)} {x.provider}, {x.threads or 'default'} thr"


def batches(run: LoadgenRun) -> str:
    """The batch sizes that ran, most used first: `1 x2031, 2 x40`."""
    ranked = sorted(run.batches.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{size} x{count:,}" for size, count in ranked[:4]) + (" ..." if len(ranked) > 4 else "")


def run_line(run: LoadgenRun) -> None:
    lat = run.latency_ms
    if run.mode == "accuracy":
        figure = f"accuracy {pct(run.accuracy)} (bench-infer's scoring: {pct(run.bench_accuracy)})"
    elif run.scenario == "server" and not run.valid and run.search:  # no QPS is claimed that kept no bound
        lowest = min(run.search, key=lambda t: t.qps)
        p99 = "no p99" if lowest.p99_ms is None else f"p99 {lowest.p99_ms:.3f} ms"
        figure = (
            f"no rate tried kept p99 <= {run.latency_bound_ms:g} ms; the lowest, {num(lowest.qps, 1)} QPS, had {p99}"
        )
    elif run.scenario == "server":
        figure = f"{num(run.target_qps, 1)} QPS at p99 {lat.get('p99', 0):.3f} ms (bound {run.latency_bound_ms:g} ms)"
    elif run.samples_per_s is not None:
        figure = f"{num(run.samples_per_s)} samples/s"
    else:
        key = "p99" if run.scenario == "multi-stream" else "p90"
        figure = f"{key} {lat.get(key, 0):.3f} ms"
    note(f"{esc(what(run))} {SCENARIOS[run.scenario]}: {figure} {verdict(run)}")


class LoadgenProgress(BenchProgress):
    """bench-infer's bar, over LoadGen's runtime configurations: a line per test as it ends."""

    def start(self, row, done: int, total: int) -> None:
        self.bar.update(self.task, total=total, completed=done, description=esc(f"LoadGen: {what(row)}"))

    def ran(self, run: LoadgenRun) -> None:
        run_line(run)

    def failed(self, failure: Failed) -> None:
        fail_line(failure)


COLS = [
    Col("runtime", left=True, key=True),
    Col("provider", left=True, fold=True, key=True),
    Col("threads", fold=True, key=True),
    Col("LoadGen"),
    Col("samples/s"),
    Col("QPS\nasked", drop=1),
    Col("p50 ms", drop=2),
    Col("p90 ms"),
    Col("p99 ms"),
    Col("max ms", drop=3),
    Col("queries", drop=3),
    Col("batches that ran", left=True, wrap=True, drop=2),
    Col("why not VALID", left=True, drop=1),
]


class Reasons:
    """LoadGen's reasons, a number each in the table ("[1]") and said once in full under it: a
    sentence in a narrow column would take eight lines per row."""

    def __init__(self):
        self.seen: dict[str, int] = {}

    def ref(self, reasons: list[str]) -> str:
        if not reasons:
            return "—"
        return f"[{self.seen.setdefault('; '.join(reasons), len(self.seen) + 1)}]"

    def lines(self) -> list[str]:
        return [esc(f"[{n}] {text}") for text, n in self.seen.items()]


def loadgen_tables(result: LoadgenResult) -> list:
    """A table per scenario (Server: one row per bound, at the highest QPS found), and the
    Server search's trail."""
    tables = []
    for scenario in SCENARIOS:
        runs = [r for r in result.runs if r.scenario == scenario and r.mode == "performance"]
        if not runs:
            continue
        why = Reasons()
        rows = [
            [
                esc(runtime_label(r)),
                esc(r.provider),
                str(r.threads or "default"),
                verdict(r),
                num(r.samples_per_s),
                num(r.target_qps, 1),
                *(f"{r.latency_ms[k]:.3f}" if k in r.latency_ms else "—" for k in ("p50", "p90", "p99", "max")),
                f"{r.queries:,}",
                esc(batches(r)),
                esc(why.ref(r.reasons)),
            ]
            for r in runs
        ]
        fed = result.dataset or "its own inputs: " + "; ".join(result.model_info.get("inputs", []))
        title = f"LoadGen {SCENARIOS[scenario]} on {esc(Path(result.model).name)} ({esc(fed)})"
        if scenario == "server":
            bounds = ", ".join(f"{b:g} ms" for b in dict.fromkeys(r.latency_bound_ms for r in runs))
            title += f": the highest QPS whose p99 stays within {bounds}"
        caption = {
            "multi-stream": f"latencies per query of {'/'.join(sorted({str(r.per_query) for r in runs}))} samples, "
            "from LoadGen's issue to the last response",
            "offline": "latencies per sample from the issue of Offline's one query: they grow with the test",
        }.get(scenario, "latencies per sample, as LoadGen measured them from its issue to the response")
        tables.append(fitted(title, COLS, rows, caption="\n".join([caption, *why.lines()])))
    why = Reasons()
    trail = [
        [
            esc(what(r)),
            f"{r.latency_bound_ms:g}",
            num(t.qps, 1),
            "[green]VALID[/]" if t.valid else "[yellow]INVALID[/]",
            "—" if t.p99_ms is None else f"{t.p99_ms:.3f}",
            esc(why.ref(t.reasons)),
        ]
        for r in result.runs
        if r.search
        for t in r.search
    ]
    if trail:
        cols = [
            Col("configuration", left=True, key=True),
            Col("bound\nms", key=True),
            Col("QPS asked"),
            Col("LoadGen"),
            Col("p99 ms"),
            Col("why not VALID", left=True),
        ]
        caption = "\n".join(why.lines()) or None
        tables.append(fitted("Server: every QPS the search tried, in order", cols, trail, caption=caption))
    checks = [
        [
            esc(what(r)),
            pct(r.accuracy),
            pct(r.bench_accuracy),
            "[green]yes[/]" if accuracy_agrees(r, result.samples) else "[bold red]no[/]",
        ]
        for r in result.runs
        if r.mode == "accuracy"
    ]
    if checks:
        cols = [
            Col("configuration", left=True, key=True),
            Col("LoadGen accuracy"),
            Col("bench-infer's scoring"),
            Col("the same"),
        ]
        tables.append(fitted(f"LoadGen AccuracyOnly over the {esc(result.dataset)} test set", cols, checks))
    return tables


def accuracy_agrees(run: LoadgenRun, samples: int) -> bool:
    """LoadGen's accuracy and bench-infer's scoring of the same runner agree to one image of the
    `samples` scored: LoadGen batches other images together, and a logit tie may fall either way."""
    return (
        run.accuracy is not None
        and run.bench_accuracy is not None
        and abs(run.accuracy - run.bench_accuracy) * samples <= 1 + 1e-9
    )


def show(result: LoadgenResult) -> None:
    """Every table of a loadgen result, then the runtimes that did not run, and why."""
    for table in loadgen_tables(result):
        console.print(table)
    if given := result.config.get("runtime_options"):
        note(esc(f"runtime options: {', '.join(given)}"))
    for s in result.skipped:
        note(esc(s.line))
    for f in result.failed:
        note(f"[red]failed:[/] {esc(f.line)}")
    seconds = MLPERF_MIN_DURATION_S if result.config.get("mlperf_durations") else result.config.get("duration")
    if not isinstance(seconds, (int, float)) or not 0 < seconds < 1e9:  # a file from elsewhere: say nothing
        return
    limit = f"the {MAX_QUERIES:,} queries crossrt asks of one {seconds:g} s LoadGen test"
    for r in result.runs:  # where that limit, not the runtime, ended a figure
        if r.scenario == "server" and r.valid and (r.target_qps or 0) * seconds >= MAX_QUERIES * 0.999:
            note(f"[yellow]{esc(what(r))}: the search stopped at {limit}; the runtime may serve more[/]")
        if r.scenario == "offline" and (r.samples_per_s or 0) * seconds > MAX_QUERIES:
            note(f"[yellow]{esc(what(r))}: Offline's one query held about {limit}, so its test ended early[/]")
