"""What a bench runs, and the one loop every configuration goes through, bench-infer's timed passes
and LoadGen's scenarios alike: its plan (runtime x provider x precision x threads x data path x
spin x batch size), progress as each starts, its measurement (isolated in a fresh process where
asked), what became of it (runs, a failure with its reason, or skipped: it cannot run here), and
Ctrl-C, which keeps what finished.
"""

from __future__ import annotations

from collections.abc import Callable

from .config import MNIST_BATCH, BenchConfig
from .errors import CrossrtError, Interrupted, ProviderError, Stopped
from .results import Configuration, Failed, Skipped
from .runtimes.base import Row
from .runtimes.onnxruntime import ort_reason
from .runtimes.registry import RUNTIMES

SPINS = {"on": (True,), "off": (False,), "both": (True, False)}


def plan(cfg: BenchConfig, batch_sizes: tuple[int, ...] | None = None) -> list[Row]:
    """Every configuration to run, in order: per batch size and provider, each runtime that can
    run there, in each of its precisions, thread counts, data paths and spin settings.

    For the CUDA provider the intra-op thread count only drives CPU-side glue, so CUDA
    rows run once per batch size, with the largest thread count asked for, and with one spin
    setting (the first asked for): spinning is how idle CPU threads wait, not what the GPU does.
    """
    rows = []
    for batch in batch_sizes or cfg.batch_sizes or (MNIST_BATCH,):
        for provider in cfg.providers:
            threads = cfg.threads if provider == "cpu" else (max(cfg.threads),)
            for rt in (RUNTIMES[r] for r in cfg.runtimes if not RUNTIMES[r].unavailable(provider, cfg)):
                spins = (SPINS[cfg.spin] if provider == "cpu" else SPINS[cfg.spin][:1]) if rt.spins else (None,)
                rows += [
                    Row(rt.name, provider, t, batch, io, spin, precision)
                    for precision in rt.precisions(cfg)
                    for t in threads
                    for io in rt.io_paths(provider)
                    for spin in spins
                ]
    return rows


def skipped(cfg: BenchConfig) -> list[Skipped]:
    return [Skipped(r, p, why) for p in cfg.providers for r in cfg.runtimes if (why := RUNTIMES[r].unavailable(p, cfg))]


def one_line(e: BaseException) -> str:
    """An exception as one line: crossrt's own message, or another library's type and its telling
    line: the first, unless that only says where (OpenVINO's "Exception from src/...cpp:84:"), then
    the last (OpenVINO's "No conversion rule found for operations: Det-17")."""
    lines = [ln.strip(" -") for ln in str(e).splitlines() if ln.strip(" -")] or [""]
    text = (lines[-1] if lines[0].endswith(":") else lines[0])[:300]
    if text.startswith("[ONNXRuntimeError]"):  # its cause after a C++ signature: said without it
        text = ort_reason(e)
    return text if isinstance(e, CrossrtError) else f"{type(e).__name__}: {text}".rstrip(": ")


def configuration_of(row: Row) -> dict:
    """A plan row as the fields of the Configuration it becomes (an InferRun, or a Failed)."""
    return {
        "runtime": row.runtime,
        "provider": row.provider,
        "threads": row.threads,
        "batch_size": row.batch,
        "io": row.io,
        "precision": row.precision,
        "spin": row.spin,
    }


def failure_of(row: Row, reason: str) -> Failed:
    """A configuration that failed, as a result's `failed` lists it."""
    return Failed(**configuration_of(row), reason=reason)


def run_planned(
    result,
    rows: list[Row],
    measure: Callable[[Row], tuple[list, str]],
    keep: Callable[[Row, object], object],
    *,
    noun: str,
    finish: Callable[[], None],
    ready: Callable[[Row], None] | None = None,
    on_start: Callable[[Configuration, int, int], None] | None = None,
    on_run: Callable[[object], None] | None = None,
    on_fail: Callable[[Failed], None] | None = None,
) -> None:
    """Every planned row in turn: on_start; ready(row), what the row needs made first (its errors
    are no row's: they end the run); measure(row) -> (what it made, why it stopped early or
    ""); keep(row, each made) -> the run appended to result.runs and told to on_run; then, when it
    stopped early or raised, a Failed row with the reason (to result.failed and on_fail), or, for
    a ProviderError (it cannot run here), a Skipped one. The rows before and after stand. Ctrl-C
    raises Stopped with the runs that finished, those of the row under way too when measure
    raises Interrupted with them; finish() runs before that, and at the end."""
    try:
        for k, row in enumerate(rows):
            if on_start:
                on_start(Configuration(**configuration_of(row)), k, len(rows))
            if ready:
                ready(row)
            stop = None
            try:
                made, why = measure(row)
            except Interrupted as e:  # what of this configuration finished is kept, then the run stops
                made, why, stop = e.made, "", e
            except ProviderError as e:  # this configuration cannot run here (e.g. too many graphs): say so
                result.skipped.append(Skipped(row.runtime, row.provider, str(e)))
                continue
            except Exception as e:  # this configuration failed; the rows measured and the rows to come stand
                made, why = [], one_line(e)
            for m in made:  # outside the try: an error in keeping a measured row is crossrt's own, not the row's
                run = keep(row, m)
                result.runs.append(run)
                if on_run:
                    on_run(run)
            if stop:
                raise stop
            if why:
                failure = failure_of(row, why)
                result.failed.append(failure)
                if on_fail:
                    on_fail(failure)
        finish()  # a Ctrl-C while it runs (its git and system calls) still keeps every row
    except KeyboardInterrupt:
        finish()
        raise Stopped(f"interrupted after {len(result.runs)} {noun}", result) from None
    result.complete = True
