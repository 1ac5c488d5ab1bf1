"""`crossrt suite`."""

from __future__ import annotations

from ..fetch import resolve
from ..files import FolderLock, save_json
from ..suite import run_suite
from ..ui import console, suite
from .common import bench_verdict, check_outputs, write_plots


def cmd_suite(a, cfg) -> int:
    check_outputs(a, cfg)
    ds = resolve(cfg.data)
    console.dataset_line(ds)
    with FolderLock(cfg.out), console.SuiteProgress() as progress:
        result = run_suite(cfg, ds, progress)
    paths = save_json(result.to_dict(), cfg.json)
    suite.suite_tables(result)
    console.note(console.esc(f"results: {', '.join(map(str, paths))}"))
    # The sweep is the thread-scaling picture; without it, each mode's own validation rows.
    sweep = result.sweep.bench if result.sweep else None
    benches = [sweep] if sweep else [m.bench for m in result.modes if m.bench]
    write_plots(a, [(m.train, m.bench) for m in result.modes], benches)
    return bench_verdict([b for b in [*(m.bench for m in result.modes), sweep] if b])
