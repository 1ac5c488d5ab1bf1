"""`crossrt loadgen`."""

from __future__ import annotations

import sys

from ..bench_infer import prepare
from ..errors import EXIT_FAILED, EXIT_OK, ConfigError
from ..fetch import resolve
from ..files import save_json
from ..loadgen import run_loadgen, unservable
from ..outcome import err
from ..sut import loadgen
from ..ui import console, serving
from .common import check_outputs


def cmd_loadgen(a, cfg) -> int:
    loadgen()  # LoadGen installed, or a one-line error before any work
    check_outputs(a, cfg)
    for scenario in cfg.scenarios:  # a user.conf LoadGen cannot read fails here, before any work
        user = cfg.user_settings(scenario)
        if scenario == "server" and (overrun := cfg.server_overrun(user)):
            print(f"crossrt: warning: {overrun}", file=sys.stderr)
    if why := unservable(cfg):
        raise ConfigError(why)
    prepared = prepare(cfg.bench())  # a bad model, binding, checkpoint or provider fails here, before any work
    if prepared.mnist:
        ds = resolve(cfg.data, trained_on=prepared.trained_on)
        console.dataset_line(ds)
    else:
        ds = None
        console.note(console.esc(f"model: {cfg.model}; inputs: {'; '.join(prepared.model_info['inputs'])}"))
    durations = (
        "MLPerf's"
        if cfg.mlperf_durations
        else f"at least {cfg.duration:g} s each; not MLPerf's 600 s, so not MLPerf-valid"
    )
    console.note(console.esc(f"LoadGen tests: {', '.join(cfg.scenarios)}; {durations}"))
    with serving.LoadgenProgress() as bar:
        result = run_loadgen(cfg, ds, prepared, on_run=bar.ran, on_start=bar.start, on_fail=bar.failed)
    paths = save_json(result.to_dict(), cfg.json)
    serving.show(result)
    console.note(console.esc(f"results: {', '.join(map(str, paths))}; LoadGen's logs: {result.log_dir}"))
    code = EXIT_OK
    if result.failed:
        err(f"{len(result.failed)} configuration(s) failed (their reasons are under the tables); the others ran")
        code = EXIT_FAILED
    if bad := [r for r in result.runs if r.mode == "accuracy" and not serving.accuracy_agrees(r, result.samples)]:
        err(f"{len(bad)} configuration(s): LoadGen's accuracy differs from bench-infer's scoring of the same runner")
        code = EXIT_FAILED
    return code
