"""The commands that read saved results: `report`, `compare`, `show`."""

from __future__ import annotations

import sys

from ..checks import in_range
from ..compare import compare, feeds, load_results, merge, models, to_csv, to_markdown
from ..errors import EXIT_FAILED, EXIT_OK, ConfigError, ResultError
from ..files import load_result
from ..outcome import err
from ..results import BenchResult, LoadgenResult, SuiteResult, TrainResult, parts
from ..ui import bench, layout, report, suite, training
from ..ui.console import console, note
from .common import check_outputs, write_plots


def cmd_report(a, cfg) -> int:
    check_outputs(a, results=False)
    loaded = load_results(a.files)
    rows = merge(loaded)
    if a.markdown:
        sys.stdout.write(to_markdown(rows))
    elif a.csv:
        sys.stdout.write(to_csv(rows))
    else:
        for table in report.report_tables(rows):
            console.print(table)
    found = [p for _, result in loaded for p in parts(result)]
    write_plots(
        a, [(p, None) for p in found if isinstance(p, TrainResult)], [p for p in found if isinstance(p, BenchResult)]
    )
    return EXIT_OK


def cmd_compare(a, cfg) -> int:
    in_range("--noise", a.noise, 0, 1)
    if a.fail_if_slower is not None:
        in_range("--fail-if-slower", a.fail_if_slower, 0, 100)
    ra, rb = load_result(a.a), load_result(a.b)
    if ra.kind != rb.kind and "suite" not in (ra.kind, rb.kind):  # a suite holds both kinds
        raise ResultError(
            f"{a.a} is a {ra.kind} result and {a.b} a {rb.kind} result: compare holds two results of one kind "
            f"(or a suite against either)"
        )
    ma, mb = models(ra), models(rb)
    if ma.keys() != mb.keys() and not a.allow_different_models:
        raise ResultError(
            f"{a.a} and {a.b} measured different models ({', '.join(ma.values())} against "
            f"{', '.join(mb.values())}): pass --allow-different-models to compare them anyway"
        )
    fa, fb = feeds(ra), feeds(rb)
    if fa != fb and not a.allow_different_models:
        key = next(k for k in fa if fa[k] != fb.get(k))
        raise ResultError(
            f"{a.a} and {a.b} fed {ma[key]} different inputs (A: {' | '.join(sorted(fa[key]))}; B: "
            f"{' | '.join(sorted(fb[key]))}): pass --allow-different-models to hold one against the other"
        )
    rows, only_a, only_b = compare(ra, rb, a.noise, a.allow_different_models)
    if fa != fb:
        note(f"inputs differ: A fed {_fed(fa)}; B fed {_fed(fb)}")
    if not rows:
        raise ResultError(
            f"{a.a} and {a.b}: no configuration in common (dataset, runtime, provider, threads, "
            f"batch size and spinning must match)"
        )
    console.print(report.compare_table(rows, str(a.a), str(a.b), a.noise))
    if only_a or only_b:
        note(f"not compared: {only_a} row(s) only in A, {only_b} only in B")
    if a.fail_if_slower is not None:
        # Slower by more than the threshold, where the test says the runs differ beyond their noise
        # (compare.apart), whatever the noise band. A row without repeats (LoadGen keeps none; files
        # before schema 3 neither) is judged on its ratio alone: never passed without a word.
        slower = [r for r in rows if r["ratio"] < 1 - a.fail_if_slower / 100 and r["apart"] is not False]
        if unjudged := sum(r["ci95"] is None for r in rows):
            note(f"{unjudged} row(s) without an interval: --fail-if-slower judges their ratio alone")
        if slower:
            err(
                f"{len(slower)} row(s) of B slower than A by more than {a.fail_if_slower:g}% (beyond the noise, "
                f"or without an interval): " + "; ".join(f"{r['what']} {r['ratio']:.3f}x" for r in slower)
            )
            return EXIT_FAILED
    return EXIT_OK


def _fed(by_model: dict[str, set[str]]) -> str:
    return " | ".join(sorted(f for fed in by_model.values() for f in fed if f)) or "a dataset's images"


def cmd_show(a, cfg) -> int:
    """A saved result laid out again: its tables, verdicts and notes, at the console's width, as wide
    as it needs (--wide), or with only the columns named (--columns)."""
    result = load_result(a.file)
    before = dict(layout.VIEW)
    named = [c.strip().lower() for c in a.columns.split(",")] if a.columns else []
    layout.VIEW.update(wide=a.wide, columns=set(named) or None, offered=set())
    width = console.width
    if a.wide:  # as wide as the tables need: rich lays a table out within the console's width
        console.width = layout.WIDE
    try:
        with console.capture() as shown:  # held back until every name in --columns is known to be a column
            _show(result)
        offered = layout.VIEW["offered"]
    finally:  # the view is this command's: a later table in the same process is laid out as usual
        layout.VIEW.update(before)
        console.width = width
    if unknown := [c for c in named if c not in offered]:
        raise ConfigError(
            f"--columns {unknown[0]}: no table of {a.file} has a column so headed (its columns: "
            f"{', '.join(sorted(offered))})"
        )
    sys.stdout.write(shown.get())
    return EXIT_OK


def _show(result) -> None:
    if isinstance(result, SuiteResult):
        suite.suite_tables(result)
    elif isinstance(result, BenchResult):
        bench.bench_tables(result, None)
    elif isinstance(result, LoadgenResult):
        from ..ui.serving import show

        show(result)
    else:
        console.print(training.train_summary(result))
