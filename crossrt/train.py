"""The reference's training recipe, made fast and measured honestly -> TrainResult.

What is timed is what the reference times: per epoch, the training pass (shuffle, 100 Adam
steps of batch 600) and the validation pass (10,000 test images in batches of 100), each
separately, with the device synchronised before every clock read. Checkpointing happens
between the timed phases.

Speed without changing the recipe: the whole dataset is one tensor already on the device
(batches are index_select slices, no DataLoader and no per-step host copies), the model runs
in channels_last (the faster oneDNN/cuDNN convolution layout), the loss is accumulated on
the device, so there is no host sync inside an epoch, and glibc is told to keep freed
activation buffers for reuse (crossrt.system.keep_freed_memory). On CUDA the step and the
validation batch are replayed as CUDA graphs (crossrt.steps); their warm-up and capture are
timed as the run's setup and counted in its total.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import replace

import numpy as np
import torch

from . import checkpoint, distributed
from .checks import fits
from .config import TrainConfig
from .data import Dataset, normalize
from .errors import ConfigError, Stopped, WriteError
from .flops import activations_per_image, forward_flops
from .model import LeNet5
from .peak import measured_peak, unbeaten
from .results import EpochResult, Peak, TrainResult
from .schema import plain
from .steps import Lean, Steps
from .system import (
    available_memory,
    environment,
    keep_freed_memory,
    page_aligned_alloc,
    peak_rss_mb,
    select_device,
    sync,
)

clock = time.perf_counter


class Progress:
    """Callbacks the training loop reports through; the CLI passes a rich implementation."""

    def start_epoch(self, epoch: int, batches: int) -> None: ...
    def advance(self) -> None: ...
    def validating(self) -> None: ...
    def end_epoch(self, result: EpochResult) -> None: ...


def to_tensors(images: np.ndarray, labels: np.ndarray, device: torch.device):
    x = torch.from_numpy(normalize(images)).to(device)
    y = torch.from_numpy(labels.astype(np.int64)).to(device)
    return x, y


def target_for(dataset: str, cfg: TrainConfig) -> float:
    if cfg.target_accuracy is not None:
        return cfg.target_accuracy
    return 0.90 if dataset == "fashion-mnist" else 0.99


def math_mode(cfg: TrainConfig, device: torch.device) -> str:
    """What the matrix math runs in: bf16 under autocast; on CUDA, cuDNN convolutions run fp32
    models in TF32 unless that is switched off (torch.backends.cudnn.allow_tf32)."""
    if cfg.precision == "bf16":
        return "bf16"
    return "tf32" if device.type == "cuda" and torch.backends.cudnn.allow_tf32 else "fp32"


def check_fits(cfg: TrainConfig, data: Dataset, model: LeNet5, device: torch.device, world: int) -> None:
    """Batch sizes the data and the memory can take, checked before anything is allocated."""
    fits("--batch-size", (cfg.batch_size,), len(data.train_labels), "training images")
    fits("--valid-batch-size", (cfg.valid_batch_size,), len(data.test_labels), "test images")
    if cfg.batch_size % world:  # under torchrun: --nproc was not there to check it
        raise ConfigError(f"{world} ranks do not divide --batch-size {cfg.batch_size}")
    # Activations, their gradients and what autograd keeps: about 3x the forward activations.
    need = 3 * 4 * activations_per_image(model) * cfg.batch_size // world
    have = available_memory(device)
    if have is not None and need > have:
        raise ConfigError(
            f"--batch-size {cfg.batch_size}: a training step needs about {need / 2**30:.1f} GiB, "
            f"{have / 2**30:.1f} GiB is available on {device.type}"
        )


def _peak(
    cfg: TrainConfig, device: torch.device, mode: str, rank: distributed.Rank | None, again: bool = False
) -> Peak | None:
    """The peak of every core (or GPU) the job trains on; measured by rank 0 alone.
    again: measured anew (a run beat the cached figure), the better one kept."""
    if rank is None:
        return measured_peak(device.type, cfg.threads, mode, again=again)
    if not rank.main:
        return None
    node = measured_peak(device.type, cfg.threads * rank.local_world_size, mode, again=again)
    per_gpu = rank.local_world_size if device.type == "cuda" else 1
    return replace(node, peak=node.peak * rank.nodes * per_gpu, nodes=rank.nodes)


def _new_result(
    cfg: TrainConfig, data: Dataset, device: torch.device, flops: int, tuned_malloc: bool, rank: distributed.Rank | None
) -> TrainResult:
    mode = math_mode(cfg, device)
    return TrainResult(
        dataset=data.name,
        dataset_source=data.source,
        device=cfg.device,
        threads=cfg.threads,
        arch=cfg.arch,
        precision=cfg.precision,
        batch_size=cfg.batch_size,
        valid_batch_size=cfg.valid_batch_size,
        train_images=len(data.train_labels),
        valid_images=len(data.test_labels),
        flops_per_image=flops,
        target_accuracy=target_for(data.name, cfg),
        config=plain(cfg),
        checkpoint=str(cfg.checkpoint),
        environment=environment(),
        peak=_peak(cfg, device, mode, rank),
        math=mode,
        world_size=rank.world_size if rank else 1,
        backend=distributed.backend(cfg.device) if rank else None,
        tuning={
            "channels_last": True,
            "glibc_keep_freed_memory": tuned_malloc,
            "lean_step": cfg.lean_step,
            "torch_page_aligned_alloc": page_aligned_alloc(),
            "loss_sync": "once per epoch",
        },
    )


def place_lr(optimizer, on: torch.device | None) -> None:
    """The learning rate as a device tensor that a captured step reads (a scheduler updates it in
    place), or, on=None, as a plain float (a checkpoint may hold either)."""
    for group in optimizer.param_groups:
        lr = float(group["lr"])
        group["lr"] = torch.tensor(lr, device=on) if on is not None else lr


def uses_graphs(cfg: TrainConfig, device: torch.device, world: int) -> bool:
    """CUDA graphs by default on CUDA with one process; --cuda-graph asks, --no-cuda-graph declines."""
    if cfg.cuda_graph and world > 1:
        raise ConfigError("--cuda-graph: with one process only (data-parallel ranks run their steps eagerly)")
    return cfg.cuda_graph if cfg.cuda_graph is not None else (device.type == "cuda" and world == 1)


def on_disk(cfg: TrainConfig, result: TrainResult) -> tuple[int, str]:
    """How many of this run's epochs its checkpoint really holds, read back from the file (a
    signal may have come in the middle of writing it), and that in words, with what to do next."""
    n = checkpoint.epochs_kept(cfg.checkpoint, [vars(e) for e in result.epochs])
    if n == cfg.epochs:
        return n, (
            f"{cfg.checkpoint} holds all {n} epoch(s) (export it with: crossrt export --checkpoint {cfg.checkpoint})"
        )
    if n:
        kept = f"{cfg.checkpoint} keeps {n} epoch(s)"
        if cfg.export and cfg.onnx_path.is_file():  # not this run's export: say which file holds what
            kept += (
                f", and {cfg.onnx_path} is still the model of an earlier run (resume to finish and export "
                f"this one, or `crossrt export --checkpoint {cfg.checkpoint}` to export these {n} epoch(s))"
            )
        return n, kept
    earlier = f" ({cfg.checkpoint} is from an earlier run)" if cfg.checkpoint.exists() else ""
    return 0, f"no checkpoint of this run was written{earlier}"


def _stop(cfg: TrainConfig, result: TrainResult, why: str, me: int, interrupted: bool) -> Stopped:
    """Stopped with what the checkpoint on disk holds (rank 0 writes it and says it); resumable
    only when --resume would continue from it."""
    n, kept = on_disk(cfg, result) if me == 0 else (0, "")
    return Stopped(f"{why}; {kept}" if kept else why, result, interrupted=interrupted, resumable=0 < n < cfg.epochs)


def train(
    cfg: TrainConfig, data: Dataset, progress: Progress | None = None, rank: distributed.Rank | None = None
) -> tuple[TrainResult, LeNet5]:
    """Train (or resume) per cfg; checkpoint after every epoch; return the result and model.

    With a rank (crossrt.distributed), this process is one of several data-parallel ranks:
    all train, rank 0 alone measures the peak and writes the checkpoint.
    Raises Stopped on Ctrl-C (resumable) and on a non-finite loss or a failed rank (failed);
    both carry the result of the completed epochs, and the checkpoint is the last good epoch.
    """
    progress = progress or Progress()
    world, me = (rank.world_size, rank.rank) if rank else (1, 0)
    t_setup = clock()
    device = select_device(cfg.device, cfg.threads, cfg.cudnn_benchmark)
    if rank:
        device = distributed.init(rank, cfg.device)
    graph = uses_graphs(cfg, device, world)
    torch.zeros(1, device=device).add_(1)  # the device context, created now rather than in epoch 1
    sync(device)
    parts = {"device_init_s": clock() - t_setup}
    tuned_malloc = keep_freed_memory()
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    net = LeNet5(cfg.arch)
    check_fits(cfg, data, net, device, world)
    result = _new_result(cfg, data, device, forward_flops(net), tuned_malloc, rank)
    net = net.to(device, memory_format=torch.channels_last)
    body = Lean(net) if cfg.lean_step else net  # what the steps call: the same function either way
    model = torch.nn.parallel.DistributedDataParallel(body) if world > 1 else body
    # capturable: Adam's step counter lives on the GPU, so that a captured step can advance it.
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr, capturable=graph)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, cfg.lr_step, cfg.lr_gamma) if cfg.lr_step else None
    # Shuffling draws from its own CPU generator, saved in the checkpoint, so a resumed
    # run sees the same batches as an uninterrupted one, on any device.
    shuffle = torch.Generator().manual_seed(cfg.seed)
    state = (net, optimizer, scheduler, shuffle)
    if cfg.resume:
        done = checkpoint.restore(cfg.checkpoint, cfg, data.name, *state)
        result.epochs = [EpochResult(**e) for e in done]
    place_lr(optimizer, device if graph else None)

    t0 = clock()
    x_train, y_train = to_tensors(data.train_images, data.train_labels, device)
    x_valid, y_valid = to_tensors(data.test_images, data.test_labels, device)
    sync(device)
    parts["data_to_device_s"] = clock() - t0
    t0 = clock()
    with warnings.catch_warnings():  # the warm-up steps before the capture run uncaptured, by design
        warnings.filterwarnings("ignore", "This instance was constructed with capturable=True", UserWarning)
        steps = Steps(model, body, optimizer, x_train, y_train, x_valid, y_valid, cfg, world, me, graph)
    sync(device)
    if graph:  # warm-up and capture: a cost of this run, counted in its total
        result.setup_s = parts["warmup_and_capture_s"] = clock() - t0
    result.setup_parts = parts
    result.tuning["cuda_graph"] = graph
    result.tuning["cudnn_benchmark"] = cfg.cudnn_benchmark if device.type == "cuda" else None
    try:
        for epoch in range(len(result.epochs) + 1, cfg.epochs + 1):
            progress.start_epoch(epoch, math.ceil(len(x_train) / cfg.batch_size))
            lr = float(optimizer.param_groups[0]["lr"])
            sync(device)
            distributed.barrier()  # every rank starts the timed epoch together
            t0, cpu0 = clock(), time.process_time()
            order = torch.randperm(len(x_train), generator=shuffle).to(device)
            train_loss = steps.epoch(order, progress)
            train_s, train_cpu_s = clock() - t0, time.process_time() - cpu0

            progress.validating()
            t0, cpu0 = clock(), time.process_time()
            valid_loss, valid_acc = steps.evaluate()
            valid_s, valid_cpu_s = clock() - t0, time.process_time() - cpu0
            if world > 1:  # the CPU every rank spent, not rank 0's alone
                cpu = distributed.all_sum(torch.tensor([train_cpu_s, valid_cpu_s], dtype=torch.float64, device=device))
                train_cpu_s, valid_cpu_s = cpu.tolist()

            if not (math.isfinite(train_loss) and math.isfinite(valid_loss)):
                stop = _stop(
                    cfg,
                    result,
                    f"epoch {epoch}: loss is {train_loss} (training) / {valid_loss} "
                    f"(validation); stopped (try a lower --lr)",
                    me,
                    interrupted=False,
                )
                stop.resumable = False  # the same settings would diverge again
                raise stop
            if scheduler is not None:
                scheduler.step()
            e = EpochResult(epoch, train_loss, train_s, valid_loss, valid_acc, valid_s, lr, train_cpu_s, valid_cpu_s)
            result.epochs.append(e)
            if me == 0:
                try:
                    checkpoint.save(cfg.checkpoint, cfg, data, *state, [vars(x).copy() for x in result.epochs])
                except WriteError as full:  # a full disk: the previous checkpoint is whole; say what it holds
                    raise _stop(
                        cfg,
                        result,
                        f"epoch {epoch}: {full.path} could not be written ({full.reason})",
                        me,
                        interrupted=False,
                    ) from None
            progress.end_epoch(e)
    except KeyboardInterrupt:
        raise _stop(cfg, result, f"interrupted after {len(result.epochs)} completed epoch(s)", me, True) from None
    except RuntimeError as e:  # with ranks: another one died or stopped (gloo raises plain RuntimeErrors)
        if world == 1:
            raise
        why = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise _stop(
            cfg,
            result,
            f"rank {me}: the ranks lost each other after {len(result.epochs)} epoch(s) ({why})",
            me,
            interrupted=False,
        ) from None
    finally:
        result.peak_rss_mb = peak_rss_mb()  # the process's peak so far: data, model, training
        distributed.leave()

    result.weights_sha256 = checkpoint.fingerprint(checkpoint.weights(net))
    if me == 0:
        result.peak = unbeaten(
            result.peak, result.summary()["train_gflops"], lambda: _peak(cfg, device, result.math, rank, again=True)
        )
    result.complete = True
    return result, net.to(memory_format=torch.contiguous_format)
