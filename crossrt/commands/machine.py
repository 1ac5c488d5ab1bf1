"""`crossrt doctor` and `crossrt fetch`: what this machine has, and the datasets it keeps."""

from __future__ import annotations

from ..checks import cache_folder
from ..doctor import checks, default_mode, line, ready
from ..errors import EXIT_FAILED, EXIT_OK
from ..fetch import SYSTEM_DIRS, fetch
from ..system import cache_dir
from ..ui.console import note


def cmd_doctor(a, cfg) -> int:
    mode = a.device or default_mode()
    found = checks(a.data_dir, a.measure_peak)
    for c in found:
        note(line(c, mode))
    if ready(found, mode):
        note(f"[green]ready for the {mode} mode[/]")
        return EXIT_OK
    note(f"[red]not ready for the {mode} mode[/]: fix the FAIL line(s) the {mode} mode needs")
    return EXIT_FAILED


def cmd_fetch(a, cfg) -> int:
    cache_folder(cache_dir())
    where = fetch(a.name)
    print(
        f"{a.name}: {where}"
        + (" (installed by the system: nothing to download)" if where in SYSTEM_DIRS[a.name] else "")
    )
    return EXIT_OK
