"""What each `crossrt` command that runs something does: check its inputs and outputs, run, save,
render. (The commands that read saved results are in crossrt.reports.)

Each command takes the parsed flags and the config crossrt.cli built from them, and returns an
exit code (crossrt.errors). Every check that can fail runs before the long work starts. A run
that stops early (Ctrl-C, a diverged loss, a full disk) reaches crossrt.outcome.stopped, which
saves what finished and says how to resume.
"""

from __future__ import annotations

import contextlib
import sys

from .checks import cache_folder, output_folder, writable_file
from .errors import EXIT_FAILED, EXIT_OK, ConfigError, CrossrtError
from .outcome import err
from .paths import check_paths
from .system import cache_dir, cpu_count


def _check_inputs(cfg) -> None:
    """The paths of cfg, and the cache the data and the peaks come from."""
    check_paths(cfg)
    cache_folder(cache_dir())


def check_outputs(a, cfg=None, results: bool = True) -> None:
    """Fail before any work when a path of cfg is wrong, --plots cannot be drawn or written, or
    results/ cannot be written."""
    from .files import RESULTS_DIR

    if cfg is not None:
        _check_inputs(cfg)
    if getattr(a, "plots", None) is not None:  # the commands that draw take --plots
        from .ui.plots import PLOT_FILES, pyplot

        pyplot()
        output_folder("--plots", a.plots)
        for name in PLOT_FILES:
            writable_file("--plots", a.plots / name)
    if results:
        output_folder("the results folder", RESULTS_DIR)


def write_plots(a, pairs, benches) -> None:
    from .ui.console import esc, note
    from .ui.plots import write_all

    if a.plots is not None and (paths := write_all(a.plots, pairs, benches)):
        note(esc(f"plots: {', '.join(map(str, paths))}"))


def _warn_threads(threads) -> None:
    if over := [t for t in threads if t > cpu_count()]:
        print(
            f"crossrt: warning: --threads {','.join(map(str, over))}: more threads than the {cpu_count()} "
            f"cores this process may use; the threads will share cores",
            file=sys.stderr,
        )


def cmd_train(a, cfg) -> int:
    from . import distributed
    from .export import export_trained
    from .fetch import resolve
    from .files import FolderLock, save_json
    from .system import select_device
    from .train import train
    from .ui import console, tables

    rank = distributed.this_rank()
    main_rank = rank is None or rank.main
    if main_rank:
        _warn_threads((cfg.threads,))
        check_outputs(a, cfg)
    select_device(cfg.device, cfg.threads, cfg.cudnn_benchmark)  # a missing GPU fails here, before the data is read
    if cfg.nproc > 1 and rank is None:  # this process launches the ranks and waits for them
        import torch

        if cfg.device == "cuda" and (n := torch.cuda.device_count()) < cfg.nproc:
            raise ConfigError(f"--nproc {cfg.nproc}: one GPU per rank, and this machine has {n}")
        return distributed.launch(a.launcher, a.argv, cfg.nproc)
    console.console.quiet = not main_rank  # rank 0 speaks for the job
    ds = resolve(cfg.data)
    console.dataset_line(ds)
    with FolderLock(cfg.out) if main_rank else contextlib.nullcontext():
        with console.TrainProgress(cfg.epochs) as progress:
            result, model = train(cfg, ds, progress, rank)
        if not main_rank:
            return EXIT_OK
        if cfg.export:
            export_trained(model, result, cfg.onnx_path, ds.test_images)
        data = result.to_dict()
        try:
            paths = save_json(data, cfg.json)
            save_json(data, cfg.run_json, results_dir=None)
        except CrossrtError as e:  # a full disk: the training itself is safe on disk
            model = f" and {cfg.onnx_path} the exported model" if cfg.export else ""
            raise CrossrtError(
                f"{e}; the training is kept: {cfg.checkpoint} holds all {len(result.epochs)} epoch(s){model}"
            ) from None
    console.console.print(tables.train_summary(result))
    console.note(console.esc(f"results: {', '.join(map(str, [*paths, cfg.run_json]))}; checkpoint: {cfg.checkpoint}"))
    if not cfg.export and cfg.onnx_path.is_file():
        console.note(
            "[yellow]note:[/] "
            + console.esc(
                f"{cfg.onnx_path} is from an earlier training run (--no-export); bench-infer refuses it with this "
                f"checkpoint: export this one with `crossrt export --checkpoint {cfg.checkpoint}`"
            )
        )
    write_plots(a, [(result, None)], [])
    return EXIT_OK


def cmd_export(a, cfg) -> int:
    from . import checkpoint
    from .export import export_checkpoint
    from .fetch import resolve
    from .files import FolderLock
    from .ui import console

    _check_inputs(cfg)
    state = checkpoint.load(cfg.checkpoint)
    ds = resolve(cfg.data, trained_on=(state["dataset"], state.get("data_dir")))
    with FolderLock(cfg.out.parent):
        parity = export_checkpoint(state, checkpoint.build_model(state, cfg.checkpoint), cfg.out, ds.test_images)
    console.export_line(cfg.out, parity, ds.name)
    return EXIT_OK


def cmd_quantize(a, cfg) -> int:
    import onnx

    from . import reference
    from .fetch import resolve
    from .files import FolderLock
    from .inputs import is_mnist_classifier, signature
    from .quantize import quantize
    from .ui import console

    _check_inputs(cfg)
    reference.check(cfg.model)  # a bad model fails here, before any data is read
    model = onnx.load(str(cfg.model), load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    mnist = is_mnist_classifier(*signature(model))
    ds = resolve(cfg.data, trained_on=(meta.get("dataset") or None, meta.get("data_dir") or None)) if mnist else None
    with FolderLock(cfg.out.parent):
        q = quantize(cfg, ds)
    said = (
        f"On the {q['test_images']:,} test images: accuracy {100 * q['fp32_accuracy']:.2f}% -> "
        f"{100 * q['int8_accuracy']:.2f}% ({100 * (q['int8_accuracy'] - q['fp32_accuracy']):+.2f} points), "
        f"top-1 agreement {100 * q['top1_agreement']:.2f}%"
        if mnist
        else "Against the fp32 model on fresh inputs: "
        + "; ".join(
            f"{o.name} max |diff| / max |fp32| {o.max_rel:.2e}"
            + (f", top-1 agreement {100 * o.top1:.2f}%" if o.top1 is not None else "")
            for o in q["outputs"]
        )
    )
    console.note(
        console.esc(
            f"quantized {cfg.model} ({q['fp32_bytes']:,} bytes) to {cfg.out} ({q['int8_bytes']:,} "
            f"bytes): {q['method']} on {q['calibration']}. {said}"
        )
    )
    return EXIT_OK


def cmd_doctor(a, cfg) -> int:
    from .doctor import checks, default_mode, line, ready
    from .ui.console import note

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
    from .fetch import SYSTEM_DIRS, fetch

    cache_folder(cache_dir())
    where = fetch(a.name)
    print(
        f"{a.name}: {where}"
        + (" (installed by the system: nothing to download)" if where in SYSTEM_DIRS[a.name] else "")
    )
    return EXIT_OK


def cmd_bench_infer(a, cfg) -> int:
    from .bench_infer import plan, prepare, run_bench
    from .fetch import resolve
    from .files import save_json
    from .ui import console, tables

    check_outputs(a, cfg)
    prepared = prepare(cfg)  # a bad model, binding, checkpoint or provider fails here, before any work
    _warn_threads(cfg.threads)
    ds = resolve(cfg.data, trained_on=prepared.trained_on) if prepared.mnist else None
    fed = (
        f"dataset: [bold]{console.esc(ds.name)}[/] ({console.esc(ds.reason)})"
        if ds
        else f"inputs: {console.esc('; '.join(prepared.model_info['inputs']))} "
        f"({console.esc(str(cfg.feed.inputs) if cfg.feed.inputs else 'generated, seed ' + str(cfg.feed.input_seed))})"
    )
    console.note(
        f"model: {console.esc(str(cfg.model))}; {fed}; {len(plan(cfg, prepared.batch_sizes))} configuration(s)"
    )
    with console.BenchProgress() as bar:
        result = run_bench(cfg, ds, prepared, on_run=bar.ran, on_fail=bar.failed, on_start=bar.start)
    paths = save_json(result.to_dict(), cfg.json)
    tables.bench_tables(result, prepared.training)
    console.note(console.esc(f"results: {', '.join(map(str, paths))}"))
    write_plots(a, [(prepared.training, result)] if prepared.training else [], [result])
    return _bench_verdict([result])


def cmd_loadgen(a, cfg) -> int:
    from .bench_infer import prepare
    from .fetch import resolve
    from .files import save_json
    from .loadgen import run_loadgen
    from .sut import loadgen
    from .ui import console, serving

    loadgen()  # LoadGen installed, or a one-line error before any work
    check_outputs(a, cfg)
    for scenario in cfg.scenarios:  # a user.conf LoadGen cannot read fails here, before any work
        cfg.user_settings(scenario)
    prepared = prepare(cfg.bench())  # a bad model, checkpoint or provider fails here, before any work
    if not prepared.mnist:
        raise ConfigError(
            f"--model {cfg.model}: crossrt loadgen serves MNIST classifiers (crossrt's LeNet5 "
            f"exports) on their test images; bench-infer times any ONNX model"
        )
    ds = resolve(cfg.data, trained_on=prepared.trained_on)
    console.dataset_line(ds)
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


def _bench_verdict(benches) -> int:
    """EXIT_FAILED, said in one line each, when a configuration failed or disagrees with PyTorch."""
    from .bench_infer import parity_failures

    code = EXIT_OK
    if failed := sum(len(b.failed) for b in benches):
        err(f"{failed} configuration(s) failed (their reasons are under the table); the others ran")
        code = EXIT_FAILED
    if bad := sum(len(parity_failures(b)) for b in benches):
        err(
            f"{bad} configuration(s) disagree (outputs against ONNX Runtime CPU fp32, or accuracy against "
            f"PyTorch; shown in red)"
        )
        code = EXIT_FAILED
    return code


def cmd_suite(a, cfg) -> int:
    from .fetch import resolve
    from .files import FolderLock, save_json
    from .suite import run_suite
    from .ui import console, tables

    check_outputs(a, cfg)
    ds = resolve(cfg.data)
    console.dataset_line(ds)
    with FolderLock(cfg.out), console.SuiteProgress() as progress:
        result = run_suite(cfg, ds, progress)
    paths = save_json(result.to_dict(), cfg.json)
    tables.suite_tables(result)
    console.note(console.esc(f"results: {', '.join(map(str, paths))}"))
    # The sweep is the thread-scaling picture; without it, each mode's own validation rows.
    sweep = result.sweep.bench if result.sweep else None
    benches = [sweep] if sweep else [m.bench for m in result.modes if m.bench]
    write_plots(a, [(m.train, m.bench) for m in result.modes], benches)
    return _bench_verdict([b for b in [*(m.bench for m in result.modes), sweep] if b])
