"""The `crossrt` command: parse flags, build configs, call the library, render.

Heavy libraries (torch, onnxruntime) are imported inside the commands, so `crossrt --help`
answers at once. Errors the user can fix are one line on stderr and exit code 2; Ctrl-C and
SIGTERM exit with 130 after saving what was finished.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from .config import (ARCHS, DATASETS, DEVICES, PRECISIONS, PROVIDERS, RUNTIMES, BenchConfig,
                     CrossrtError, DataConfig, TrainConfig, cpu_count)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr (no usage dump), exit code 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def int_list(text: str) -> tuple[int, ...]:
    """Parse `1,2,18`; junk gives a one-line error (argparse names the flag)."""
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None


def str_list(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(","))


def err(message: str) -> None:
    print(f"crossrt: error: {message}", file=sys.stderr)


def warn(message: str) -> None:
    print(f"crossrt: warning: {message}", file=sys.stderr)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _data_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="auto", choices=DATASETS,
                   help="auto = MNIST when cached or downloadable, else Fashion-MNIST (default: %(default)s)")
    p.add_argument("--data-dir", type=Path, default=None, metavar="DIR",
                   help="any folder with the four IDX files, raw or .gz (default: none, use --dataset)")


def _output_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", type=Path, default=None, metavar="PATH",
                   help="also write the result JSON here (default: only results/)")
    _plot_flag(p)


def _plot_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plots", type=Path, default=None, metavar="DIR",
                   help="write PNG figures here; needs matplotlib, `pip install crossrt[plots]` (default: none)")


def _check_plots(a) -> None:
    """Fail before any work when --plots is asked for and matplotlib is missing."""
    if getattr(a, "plots", None) is not None:
        from .plots import _pyplot

        _pyplot()


def _show_plots(paths) -> None:
    from . import render

    if paths:
        render.console.print(f"plots: {', '.join(map(str, paths))}", highlight=False)


def build_parser() -> Parser:
    cores = cpu_count()
    p = Parser(prog="crossrt", description=(
        "Train LeNet5 on MNIST the seed's way in PyTorch, export it to ONNX, and time "
        "validation under ONNX Runtime (CPU/CUDA) beside PyTorch."))
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")

    t = sub.add_parser("train", help="train LeNet5, checkpoint every epoch, export to ONNX",
                       description="Train LeNet5 with the seed's recipe; validate after every epoch.")
    t.add_argument("--device", default="cpu", choices=DEVICES, help="torch device (default: %(default)s)")
    t.add_argument("--threads", type=int, default=cores,
                   help="torch intra-op threads (default: all %(default)s cores)")
    t.add_argument("--epochs", type=int, default=100, help="epochs (default: %(default)s)")
    t.add_argument("--batch-size", type=int, default=600, help="training batch (default: %(default)s)")
    t.add_argument("--valid-batch-size", type=int, default=100, help="validation batch (default: %(default)s)")
    t.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: %(default)s)")
    t.add_argument("--lr-step", type=int, default=0, metavar="EPOCHS",
                   help="multiply the lr by --lr-gamma every EPOCHS epochs; 0 = off (default: %(default)s)")
    t.add_argument("--lr-gamma", type=float, default=0.1, help="step decay factor (default: %(default)s)")
    t.add_argument("--seed", type=int, default=2022, help="seed for init and shuffling (default: %(default)s)")
    t.add_argument("--arch", default="lenet5", choices=ARCHS,
                   help="lenet5 = the seed's 32/64/128 channels, lenet5-classic = 6/16/120 (default: %(default)s)")
    t.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="bf16 = autocast; the exported model is fp32 either way (default: %(default)s)")
    t.add_argument("--target-accuracy", type=float, default=None, metavar="ACC",
                   help="report epochs and time to reach ACC (default: 0.99, 0.90 for Fashion-MNIST)")
    _data_flags(t)
    t.add_argument("--out", type=Path, default=Path("exports"), metavar="DIR",
                   help="checkpoint, ONNX model and run record go here (default: %(default)s)")
    t.add_argument("--resume", action="store_true", help="continue from DIR/lenet5.pt (default: off)")
    t.add_argument("--no-export", dest="export", action="store_false",
                   help="skip the ONNX export at the end (default: export)")
    _output_flags(t)

    e = sub.add_parser("export", help="export a checkpoint to ONNX and check parity",
                       description="Export a training checkpoint to ONNX; check ORT against PyTorch on the test set.")
    e.add_argument("--checkpoint", type=Path, default=Path("exports/lenet5.pt"),
                   help="checkpoint from `train` (default: %(default)s)")
    e.add_argument("--out", type=Path, default=None, metavar="PATH",
                   help="ONNX file to write (default: the checkpoint's path with .onnx)")
    _data_flags(e)

    b = sub.add_parser("bench-infer", help="time validation under ONNX Runtime and PyTorch",
                       description="Time full validation passes of the exported model under ONNX Runtime "
                                   "and PyTorch, per provider, thread count and batch size.")
    b.add_argument("--model", type=Path, default=Path("exports/lenet5.onnx"),
                   help="ONNX model (default: %(default)s)")
    b.add_argument("--checkpoint", type=Path, default=None,
                   help="checkpoint for the PyTorch rows (default: the model's path with .pt)")
    b.add_argument("--provider", type=str_list, default=("cpu",), metavar="P[,P]",
                   help=f"execution providers from {{{','.join(PROVIDERS)}}} (default: cpu)")
    b.add_argument("--threads", type=int_list, default=tuple(sorted({1, cores})), metavar="N[,N]",
                   help=f"intra-op threads; 0 = the runtime's default (default: 1,{cores})")
    b.add_argument("--batch-size", type=int_list, default=(100,), metavar="B[,B]",
                   help="validation batch sizes (default: 100, the seed's)")
    b.add_argument("--runtimes", type=str_list, default=RUNTIMES, metavar="R[,R]",
                   help=f"from {{{','.join(RUNTIMES)}}} (default: {','.join(RUNTIMES)})")
    b.add_argument("--warmup", type=int, default=10, help="untimed batches per configuration (default: %(default)s)")
    b.add_argument("--min-time", type=float, default=1.0, metavar="S",
                   help="time full passes for at least S seconds ... (default: %(default)s)")
    b.add_argument("--min-repeats", type=int, default=3, metavar="R",
                   help="... and at least R passes (default: %(default)s)")
    b.add_argument("--spin", action=argparse.BooleanOptionalAction, default=True,
                   help="ORT intra-op threads busy-wait between ops (default: on, ORT's default)")
    _data_flags(b)
    b.add_argument("--train-json", type=Path, default=None, metavar="PATH",
                   help="training record for the train-vs-validation table (default: <model>.train.json)")
    _output_flags(b)

    s = sub.add_parser("suite", help="the seed's table for this machine: every mode, train + validation",
                       description="Train and validate in every mode this machine has (CPU 1 thread, CPU all "
                                   "cores, CUDA), next to the seed's published figures; optional sweeps.")
    s.add_argument("--epochs", type=int, default=100, help="epochs per mode (default: %(default)s, the seed's)")
    s.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="auto = add the GPU mode when a GPU is usable; cpu = CPU modes only (default: %(default)s)")
    _data_flags(s)
    s.add_argument("--out", type=Path, default=Path("exports/suite"), metavar="DIR",
                   help="a subfolder per mode for checkpoints and models (default: %(default)s)")
    s.add_argument("--min-time", type=float, default=1.0, metavar="S",
                   help="seconds of timed validation passes per configuration (default: %(default)s)")
    s.add_argument("--sweep", action="store_true", help="also sweep threads and batch sizes (default: off)")
    s.add_argument("--sweep-threads", type=int_list, default=None, metavar="N[,N]",
                   help="(default: 1, 2, 4, ... and all cores)")
    s.add_argument("--sweep-train-batches", type=int_list, default=(100, 600, 2000),
                   metavar="B[,B]", help="(default: 100,600,2000)")
    s.add_argument("--sweep-valid-batches", type=int_list, default=(1, 10, 100, 1000),
                   metavar="B[,B]", help="(default: 1,10,100,1000)")
    s.add_argument("--sweep-epochs", type=int, default=1, help="epochs per sweep training run (default: %(default)s)")
    _output_flags(s)

    r = sub.add_parser("report", help="merge result files from any runs and machines into one table",
                       description="Merge train, bench-infer and suite JSON files into one table grouped by machine.")
    r.add_argument("files", nargs="+", type=Path, metavar="FILE", help="result JSON files")
    fmt = r.add_mutually_exclusive_group()
    fmt.add_argument("--markdown", action="store_true", help="print a Markdown table (default: a rich table)")
    fmt.add_argument("--csv", action="store_true", help="print CSV (default: a rich table)")
    _plot_flag(r)

    f = sub.add_parser("fetch", help="download a dataset into the cache, verifying SHA-256",
                       description="Download MNIST or Fashion-MNIST into the cache ($CROSSRT_CACHE).")
    f.add_argument("name", choices=DATASETS[1:], help="dataset to download")
    return p


# ---------------------------------------------------------------------------- commands

def cmd_train(a) -> int:
    from . import render
    from .data import resolve
    from .report import FolderLock, save_json

    cfg = TrainConfig(
        data=DataConfig(a.dataset, a.data_dir), device=a.device, threads=a.threads, epochs=a.epochs,
        batch_size=a.batch_size, valid_batch_size=a.valid_batch_size, lr=a.lr, lr_step=a.lr_step,
        lr_gamma=a.lr_gamma, seed=a.seed, arch=a.arch, precision=a.precision,
        target_accuracy=a.target_accuracy, out=a.out, json=a.json, resume=a.resume, export=a.export)
    if cfg.threads > cpu_count():
        warn(f"--threads {cfg.threads} is more than the {cpu_count()} cores this process may use")
    _check_plots(a)
    from .train import Diverged, Interrupted, select_device, train

    select_device(cfg.device, cfg.threads)  # a missing GPU fails here, before the data is read
    ds = resolve(cfg.data)
    render.console.print(f"dataset: [bold]{ds.name}[/] ({len(ds.train_labels):,} train / "
                         f"{len(ds.test_labels):,} test images): {ds.reason}", highlight=False)

    with FolderLock(cfg.out):
        try:
            with render.TrainProgress(cfg.epochs) as progress:
                result, model = train(cfg, ds, progress)
        except (Interrupted, Diverged) as stop:
            paths = save_json(stop.result.to_dict(), cfg.json)
            render.console.print(render.train_summary(stop.result))
            done = [str(p) for p in paths]
            if isinstance(stop, Diverged):
                err(f"{stop} (partial results: {', '.join(done)})")
                return EXIT_FAILED
            resume = " ".join(["crossrt", *[x for x in a.argv if x != "--resume"], "--resume"])
            print(f"crossrt: {stop}; checkpoint {cfg.checkpoint} and partial results "
                  f"({', '.join(done)}) saved. Resume with: {resume}", file=sys.stderr)
            return EXIT_INTERRUPTED
        if cfg.export:
            from .export import export_result

            try:
                result.onnx = export_result(model, result, cfg.onnx_path, ds.test_images)
            except BaseException as e:
                # Training is done and checkpointed: keep its results even when the export fails.
                result.complete = False
                paths = save_json(result.to_dict(), cfg.json)
                if not isinstance(e, KeyboardInterrupt):
                    raise
                print(f"crossrt: interrupted during the ONNX export; {cfg.checkpoint} holds the trained model and "
                      f"{cfg.onnx_path} is unchanged (export with: crossrt export --checkpoint {cfg.checkpoint}); "
                      f"results: {', '.join(map(str, paths))}", file=sys.stderr)
                return EXIT_INTERRUPTED
        data = result.to_dict()
        paths = save_json(data, cfg.json)
        save_json(data, cfg.run_json, results_dir=None)
    render.console.print(render.train_summary(result))
    render.console.print(f"results: {', '.join(map(str, [*paths, cfg.run_json]))}; "
                         f"checkpoint: {cfg.checkpoint}", highlight=False)
    if a.plots is not None:
        from .plots import cost_rows, write_all

        _show_plots(write_all(a.plots, [result], [], cost_rows(result, None)))
    return EXIT_OK


def cmd_export(a) -> int:
    from . import render
    from .data import normalize, resolve
    from .export import export_checked, onnx_metadata
    from .report import FolderLock
    from .train import load_checkpoint, model_from_checkpoint

    state = load_checkpoint(a.checkpoint)
    out = a.out or a.checkpoint.with_suffix(".onnx")
    dataset = a.dataset if (a.dataset != "auto" or a.data_dir) else state["dataset"]
    ds = resolve(DataConfig(dataset, a.data_dir))
    model = model_from_checkpoint(state)
    epochs = state["epochs"]
    meta = onnx_metadata(state["dataset"], state["config"]["arch"], state["config"]["precision"],
                         len(epochs), epochs[-1]["valid_accuracy"] if epochs else None)
    with FolderLock(out.parent):
        parity = export_checked(model, out, meta, normalize(ds.test_images))
    ok = parity.top1_agreement == 1.0
    render.console.print(f"exported {out} (opset {parity.opset}, {parity.export_s:.2f} s); ONNX Runtime vs PyTorch "
                         f"on {parity.images:,} {ds.name} test images: max |logit diff| {parity.max_abs_diff:.2e}, "
                         f"top-1 agreement [{'green' if ok else 'red'}]{100 * parity.top1_agreement:.2f}%[/]",
                         highlight=False)
    return EXIT_OK


def cmd_fetch(a) -> int:
    from .data import fetch

    print(f"{a.name}: {fetch(a.name)}")
    return EXIT_OK


def cmd_bench_infer(a) -> int:
    from . import render
    from .bench import BenchInterrupted, parity_failures, plan, run_bench
    from .data import resolve
    from .export import read_metadata
    from .report import TrainResult, load_json, save_json
    from .runtime import create_session, onnx_flops

    cfg = BenchConfig(
        data=DataConfig(a.dataset, a.data_dir), model=a.model, checkpoint=a.checkpoint,
        providers=a.provider, threads=a.threads, batch_sizes=a.batch_size, runtimes=a.runtimes,
        warmup=a.warmup, min_time=a.min_time, min_repeats=a.min_repeats, spin=a.spin,
        json=a.json, train_json=a.train_json)
    _check_plots(a)
    for provider in cfg.providers:  # a bad model or a provider that cannot run fails here, before any work
        create_session(cfg.model, provider, 1)
    over = [t for t in cfg.threads if t > cpu_count()]
    if over:
        warn(f"--threads {','.join(map(str, over))}: more threads than the {cpu_count()} cores this "
             f"process may use; the threads will share cores")
    train_json = cfg.train_json or cfg.model.with_suffix(".train.json")
    training = None
    if cfg.train_json is not None or train_json.is_file():
        training = TrainResult.from_dict(load_json(train_json, "train"))
    meta = read_metadata(cfg.model)
    dataset = cfg.data.dataset
    if dataset == "auto" and cfg.data.data_dir is None and meta.get("dataset") in ("mnist", "fashion-mnist"):
        dataset = meta["dataset"]  # validate on what the model was trained on
    ds = resolve(DataConfig(dataset, cfg.data.data_dir))
    render.console.print(f"model: {cfg.model}; dataset: [bold]{ds.name}[/] ({ds.reason}); "
                         f"{len(plan(cfg))} configuration(s)", highlight=False)

    def show(run):
        render.console.print(f"  {run.runtime:<11} {run.provider} {run.mode:<15} threads={run.threads:<3} "
                             f"batch={run.batch_size:<5} {run.images_per_s:>10,.0f} img/s  "
                             f"acc {100 * run.accuracy:.2f}%", highlight=False)

    try:
        result = run_bench(cfg, ds, onnx_flops(cfg.model), on_run=show)
    except BenchInterrupted as stop:
        paths = save_json(stop.result.to_dict(), cfg.json)
        print(f"crossrt: {stop}; partial results saved to {', '.join(map(str, paths))}", file=sys.stderr)
        return EXIT_INTERRUPTED
    data = result.to_dict()
    paths = save_json(data, cfg.json)
    render.console.print(render.bench_table(result))
    split = render.split_table(result)
    if split is not None:
        render.console.print(split)
    if training is not None:
        render.console.print(render.cost_table(result, training))
    render.console.print(f"results: {', '.join(map(str, paths))}", highlight=False)
    if a.plots is not None:
        from .plots import cost_rows, write_all

        _show_plots(write_all(a.plots, [training] if training else [], [data],
                              cost_rows(training, data) if training else []))
    bad = parity_failures(result)
    if bad:
        err(f"{len(bad)} configuration(s) disagree with PyTorch's accuracy (shown in red)")
        return EXIT_FAILED
    return EXIT_OK


def cmd_suite(a) -> int:
    from . import render
    from .data import resolve
    from .report import FolderLock, TrainResult, save_json
    from .suite import SuiteConfig, SuiteInterrupted, reference, run_suite, scaling

    kw = {"sweep_threads": a.sweep_threads} if a.sweep_threads else {}
    cfg = SuiteConfig(data=DataConfig(a.dataset, a.data_dir), epochs=a.epochs, device=a.device, out=a.out,
                      min_time=a.min_time, sweep=a.sweep, sweep_train_batches=a.sweep_train_batches,
                      sweep_valid_batches=a.sweep_valid_batches, sweep_epochs=a.sweep_epochs, json=a.json, **kw)
    _check_plots(a)
    ds = resolve(cfg.data)
    render.console.print(f"dataset: [bold]{ds.name}[/]: {ds.reason}", highlight=False)
    with FolderLock(cfg.out):
        try:
            with render.SuiteProgress() as progress:
                result = run_suite(cfg, ds, progress)
        except SuiteInterrupted as stop:
            paths = save_json(stop.result, cfg.json)
            print(f"crossrt: {stop}; partial results saved to {', '.join(map(str, paths))}", file=sys.stderr)
            return EXIT_INTERRUPTED
        paths = save_json(result, cfg.json)
    render.console.print(render.suite_table(result, reference()))
    rows = scaling(result)
    if rows:
        render.console.print(render.scaling_table(rows))
    render.console.print(f"results: {', '.join(map(str, paths))}", highlight=False)
    if a.plots is not None:
        from .plots import cost_rows, write_all

        trains = [TrainResult.from_dict(m["train"]) for m in result["modes"]]
        # The sweep is the thread-scaling picture; without it, each mode's own validation rows.
        benches = [result["sweep"]["bench"]] if result["sweep"] else [m["bench"] for m in result["modes"]]
        costs = [c for m, t in zip(result["modes"], trains) for c in cost_rows(t, m["bench"])]
        _show_plots(write_all(a.plots, trains, benches, costs))
    return EXIT_OK


def cmd_report(a) -> int:
    from . import render
    from .report import TrainResult, load_results, merge, parts, to_csv, to_markdown

    _check_plots(a)
    loaded = load_results(a.files)
    rows = merge(a.files, loaded)
    if a.markdown:
        sys.stdout.write(to_markdown(rows))
    elif a.csv:
        sys.stdout.write(to_csv(rows))
    else:
        render.console.print(render.report_table(rows))
    if a.plots is not None:
        from .plots import cost_rows, write_all

        found = [p for _, data in loaded for p in parts(data)]
        trains = [TrainResult.from_dict(p) for p in found if p["kind"] == "train"]
        benches = [p for p in found if p["kind"] == "bench-infer"]
        _show_plots(write_all(a.plots, trains, benches, [c for t in trains for c in cost_rows(t, None)]))
    return EXIT_OK


COMMANDS = {"train": cmd_train, "export": cmd_export, "bench-infer": cmd_bench_infer, "suite": cmd_suite,
            "report": cmd_report, "fetch": cmd_fetch}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, or a bad flag (already reported in one line)
        return int(e.code or 0)
    args.argv = argv
    # SIGTERM (a killed job, a closed terminal) stops as cleanly as Ctrl-C: same handling.
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if in_main else None
    try:
        return COMMANDS[args.command](args)
    except CrossrtError as e:
        err(str(e))
        return EXIT_USAGE
    except OSError as e:  # a folder that cannot be created, a full disk, a path that is a directory
        err(f"{e.filename2 or e.filename or ''}: {e.strerror or e}".lstrip(": "))
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("crossrt: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
