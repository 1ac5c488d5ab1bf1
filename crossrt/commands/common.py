"""What the commands share: their inputs and outputs checked before any work, --plots, the
warning for more threads than cores, and the exit code of a bench."""

from __future__ import annotations

import sys

from ..checks import cache_folder, output_folder, writable_file
from ..errors import EXIT_FAILED, EXIT_OK
from ..files import RESULTS_DIR
from ..outcome import err
from ..paths import check_paths
from ..system import cache_dir, cpu_count
from ..ui.console import esc, note
from ..ui.plots import write_all


def check_inputs(cfg) -> None:
    """The paths of cfg, and the cache the data and the peaks come from."""
    check_paths(cfg)
    cache_folder(cache_dir())


def check_outputs(a, cfg=None, results: bool = True) -> None:
    """Fail before any work when a path of cfg is wrong, --plots cannot be drawn or written, or
    results/ cannot be written."""
    if cfg is not None:
        check_inputs(cfg)
    if getattr(a, "plots", None) is not None:  # the commands that draw take --plots
        from ..ui.plots import PLOT_FILES, pyplot

        pyplot()
        output_folder("--plots", a.plots)
        for name in PLOT_FILES:
            writable_file("--plots", a.plots / name)
    if results:
        output_folder("the results folder", RESULTS_DIR)


def write_plots(a, pairs, benches) -> None:
    if a.plots is not None and (paths := write_all(a.plots, pairs, benches)):
        note(esc(f"plots: {', '.join(map(str, paths))}"))


def warn_threads(threads) -> None:
    if over := [t for t in threads if t > cpu_count()]:
        print(
            f"crossrt: warning: --threads {','.join(map(str, over))}: more threads than the {cpu_count()} "
            f"cores this process may use; the threads will share cores",
            file=sys.stderr,
        )


def bench_verdict(benches) -> int:
    """EXIT_FAILED, said in one line each, when a configuration failed or disagrees with PyTorch."""
    code = EXIT_OK
    if failed := sum(len(b.failed) for b in benches):
        err(f"{failed} configuration(s) failed (their reasons are under the table); the others ran")
        code = EXIT_FAILED
    if bad := sum(len(b.disagreeing) for b in benches):
        err(
            f"{bad} configuration(s) disagree (outputs against ONNX Runtime CPU fp32, or accuracy against "
            f"PyTorch; shown in red)"
        )
        code = EXIT_FAILED
    return code
