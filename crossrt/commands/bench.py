"""`crossrt bench-infer`."""

from __future__ import annotations

from ..bench_infer import prepare, run_bench
from ..errors import EXIT_FAILED
from ..fetch import resolve
from ..files import save_json
from ..outcome import err
from ..plan import plan, skipped
from ..ui import bench, console
from .common import bench_verdict, check_outputs, warn_threads, write_plots


def cmd_bench_infer(a, cfg) -> int:
    check_outputs(a, cfg)
    prepared = prepare(cfg)  # a bad model, binding, checkpoint or provider fails here, before any work
    warn_threads(cfg.threads)
    ds = resolve(cfg.data, trained_on=prepared.trained_on) if prepared.mnist else None
    fed = (
        f"dataset: [bold]{console.esc(ds.name)}[/] ({console.esc(ds.reason)})"
        if ds
        else f"inputs: {console.esc('; '.join(prepared.model_info['inputs']))}"
    )
    if not (rows := plan(cfg, prepared.batch_sizes)):  # no result file for a run that timed nothing
        err(
            f"nothing to run for {cfg.model}: "
            + "; ".join(f"{s.runtime} on {s.provider}: {s.reason}" for s in skipped(cfg))
        )
        return EXIT_FAILED
    console.note(f"model: {console.esc(str(cfg.model))}; {fed}; {len(rows)} configuration(s)")
    with console.BenchProgress() as bar:
        result = run_bench(cfg, ds, prepared, on_run=bar.ran, on_fail=bar.failed, on_start=bar.start)
    paths = save_json(result.to_dict(), cfg.json)
    bench.bench_tables(result, prepared.training)
    console.note(console.esc(f"results: {', '.join(map(str, paths))}"))
    write_plots(a, [(prepared.training, result)] if prepared.training else [], [result])
    return bench_verdict([result])
