"""`crossrt train` and `crossrt export`."""

from __future__ import annotations

import contextlib

from .. import checkpoint, distributed
from ..errors import EXIT_OK, ConfigError, CrossrtError
from ..export import export_checkpoint, export_trained
from ..fetch import resolve
from ..files import FolderLock, save_json
from ..system import select_device
from ..train import train
from ..ui import console, training
from .common import check_inputs, check_outputs, warn_threads, write_plots


def cmd_train(a, cfg) -> int:
    rank = distributed.this_rank()
    main_rank = rank is None or rank.main
    if main_rank:
        warn_threads((cfg.threads,))
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
    console.console.print(training.train_summary(result))
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
    check_inputs(cfg)
    state = checkpoint.load(cfg.checkpoint)
    ds = resolve(cfg.data, trained_on=(state["dataset"], state.get("data_dir")))
    with FolderLock(cfg.out.parent):
        parity = export_checkpoint(state, checkpoint.build_model(state, cfg.checkpoint), cfg.out, ds.test_images)
    console.export_line(cfg.out, parity, ds.name)
    return EXIT_OK
