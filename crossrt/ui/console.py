"""The console: progress bars and one-line messages. With the rest of crossrt.ui, the only place rich loads.

Output goes to stdout; errors and warnings go to stderr through the CLI. The width is the
terminal's (rich asks stdin, stdout and stderr, so `| tee` keeps it), or $COLUMNS, or 80 with no
terminal at all; piped output has no colours.
"""

from __future__ import annotations

from rich.console import Console
from rich.errors import MarkupError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..columns import esc
from ..results import Configuration, EpochResult, Failed, InferRun
from ..text import printable

# No :emoji: codes: a name from a file is shown as it is. Below PLAIN_WIDTH columns (a narrow
# pane, COLUMNS=5, COLUMNS=0) tables are plain `name: value` lists (crossrt.ui.layout) and rich
# wraps nothing (the terminal does); rich, which prints nothing at all at 0 columns, is given 20.
PLAIN_WIDTH = 40
console = Console(emoji=False)


def set_width(columns: int) -> None:
    """Lay everything out for a terminal of `columns` columns (what crossrt does with the terminal's
    own width when it starts; a test in this process, with the width it checks)."""
    narrow = columns < PLAIN_WIDTH
    console.width, console.soft_wrap = (max(columns, 20) if narrow else columns), narrow


set_width(console.width)


def note(text: str, wrap: bool = False) -> None:
    """A line of plain output, never re-highlighted, and never broken by rich unless wrap says so:
    paths in it stay whole and copyable (the terminal wraps long lines); a sentence to read (a
    verdict, why a row is unstable) wraps at the console's width between words. Rich markup is
    allowed, so any text from outside (paths, names, reasons) goes in through esc(); should one
    slip through unescaped, it is shown as plain text, and no control character reaches the terminal."""
    text = printable(text, keep_newlines=True)
    try:
        console.print(text, highlight=False, soft_wrap=not wrap)
    except MarkupError:
        console.print(text, highlight=False, soft_wrap=not wrap, markup=False)


def dataset_line(ds) -> None:
    note(
        f"dataset: [bold]{esc(ds.name)}[/] ({len(ds.train_labels):,} train / {len(ds.test_labels):,} test images): "
        f"{esc(ds.reason)}"
    )


def export_line(path, parity, dataset: str) -> None:
    ok = parity.top1_agreement == 1.0
    note(
        f"exported {esc(str(path))} (opset {parity.opset}, {parity.export_s:.2f} s); ONNX Runtime vs PyTorch on "
        f"{parity.images:,} {esc(dataset)} test images: max |logit diff| {parity.max_abs_diff:.2e}, "
        f"top-1 agreement [{'green' if ok else 'red'}]{100 * parity.top1_agreement:.2f}%[/]"
    )


def bench_line(run: InferRun) -> None:
    """One line as each configuration finishes, so a long bench shows progress."""
    mark = "" if run.stable else " [yellow](unstable)[/]"
    scored = (
        f"acc {100 * run.accuracy:.2f}%"
        if run.accuracy is not None
        else "outputs " + ("agree" if all(o.ok for o in run.outputs or []) else "[red]disagree[/]")
    )
    unit = "img/s" if run.accuracy is not None else "samples/s"
    note(f"  {esc(run.label)}: {run.samples_per_s:,.0f} {unit}, {scored}{mark}")


def fail_line(failure: Failed) -> None:
    """One line as a configuration fails, so a long bench shows it at once."""
    note(f"  [red]failed[/] {esc(failure.line)}")


class _Bar:
    """A rich Progress as a context manager."""

    bar: Progress

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)


class TrainProgress(_Bar):
    """A bar per epoch (batches done, time left) and the reference's log line per epoch, readable."""

    def __init__(self, total_epochs: int):
        self.total = total_epochs
        # A low refresh rate: on a 2-core machine the redraw thread competes with training.
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("batches"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            refresh_per_second=4,
            transient=True,
        )
        self.task = None

    def start_epoch(self, epoch: int, batches: int) -> None:
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = self.bar.add_task(f"epoch {epoch}/{self.total} train", total=batches)

    def advance(self) -> None:
        self.bar.advance(self.task)

    def validating(self) -> None:
        self.bar.update(self.task, description=self.bar.tasks[-1].description.replace("train", "valid"))

    def end_epoch(self, e: EpochResult) -> None:
        note(
            f"epoch {e.epoch:>3}  train loss {e.train_loss:.4f}  [cyan]{e.train_s:6.2f} s[/]   "
            f"valid loss {e.valid_loss:.4f}  acc [bold]{100 * e.valid_accuracy:6.2f}%[/]  [cyan]{e.valid_s:5.2f} s[/]"
        )


class BenchProgress(_Bar):
    """bench-infer's bar: configurations done of the total, the one running now, the time left."""

    def __init__(self):
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("configurations"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            refresh_per_second=4,
            transient=True,
        )
        self.task = self.bar.add_task("bench-infer", total=None)

    def start(self, row: Configuration, done: int, total: int) -> None:
        self.bar.update(
            self.task,
            total=total,
            completed=done,
            description=esc(row.label),
        )

    def ran(self, run: InferRun) -> None:
        bench_line(run)
        self.bar.advance(self.task)

    def failed(self, failure: Failed) -> None:
        fail_line(failure)
        self.bar.advance(self.task)


class SuiteProgress(_Bar):
    """One bar across the whole suite (with the time left) and a line per finished epoch.

    It takes train()'s progress calls (start_epoch, advance, validating, end_epoch) directly.
    """

    def __init__(self):
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            console=console,
            refresh_per_second=4,
            transient=True,
        )
        self.task = self.bar.add_task("suite", total=1)

    def total(self, units: int) -> None:
        self.bar.update(self.task, total=units)

    def start(self, what: str) -> None:
        self.bar.update(self.task, description=what)
        note(f"[bold]{esc(what)}[/]")

    def describe(self, what: str) -> None:
        """What runs now, on the bar only (start also prints it)."""
        self.bar.update(self.task, description=esc(what))

    def start_epoch(self, epoch: int, batches: int) -> None: ...
    def validating(self) -> None: ...

    def advance(self) -> None:
        self.bar.advance(self.task)

    def advance_by(self, units: int) -> None:
        self.bar.advance(self.task, units)

    def end_epoch(self, e: EpochResult) -> None:
        note(
            f"  epoch {e.epoch:>3}  train {e.train_s:6.2f} s  valid {e.valid_s:5.2f} s  "
            f"acc {100 * e.valid_accuracy:6.2f}%"
        )
