"""The reference's training recipe, made fast and measured honestly -> TrainResult.

What is timed is what the reference times: per epoch, the training pass (shuffle, 100 Adam
steps of batch 600) and the validation pass (10,000 test images in batches of 100), each
separately, with the device synchronised before every clock read. Checkpointing happens
between the timed phases.

Speed without changing the recipe: the whole dataset is one tensor already on the device
(batches are index_select slices, no DataLoader and no per-step host copies), the model runs
in channels_last (the faster oneDNN/cuDNN convolution layout), the loss is accumulated on
the device, so there is no host sync inside an epoch, and glibc is told to keep freed
activation buffers for reuse (crossrt.system.keep_freed_memory).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from . import checkpoint
from .checks import fits
from .config import TrainConfig, to_plain
from .data import Dataset, normalize
from .errors import ConfigError, Stopped
from .flops import activations_per_image, forward_flops
from .model import LeNet5
from .peak import measured_peak, remeasure_peak
from .results import EpochResult, TrainResult
from .system import available_memory, environment, keep_freed_memory, peak_rss_mb, select_device, sync

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


def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over (x, y), in batches; one host sync at the end."""
    model.eval()
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.int64)
    with torch.inference_mode():
        for i in range(0, len(x), batch_size):
            logits = model(x[i:i + batch_size])
            target = y[i:i + batch_size]
            loss_sum += F.cross_entropy(logits, target, reduction="sum")
            correct += (logits.argmax(1) == target).sum()
    return loss_sum.item() / len(x), correct.item() / len(x)


def target_for(dataset: str, cfg: TrainConfig) -> float:
    if cfg.target_accuracy is not None:
        return cfg.target_accuracy
    return 0.90 if dataset == "fashion-mnist" else 0.99


def train_epoch(model, optimizer, x: torch.Tensor, y: torch.Tensor, order: torch.Tensor, cfg: TrainConfig,
                progress: Progress) -> float:
    """One pass over the shuffled training set; the mean batch loss (read once, at the end)."""
    model.train()
    bs, batches = cfg.batch_size, math.ceil(len(x) / cfg.batch_size)
    loss_sum = torch.zeros((), device=x.device)
    for b in range(batches):
        idx = order[b * bs:(b + 1) * bs]
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
            logits = model(x.index_select(0, idx))
        loss = F.cross_entropy(logits.float(), y.index_select(0, idx))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach()
        progress.advance()
    return loss_sum.item() / batches  # .item() synchronises the device


def math_mode(cfg: TrainConfig, device: torch.device) -> str:
    """What the matrix math runs in: bf16 under autocast; on CUDA, cuDNN convolutions run fp32
    models in TF32 unless that is switched off (torch.backends.cudnn.allow_tf32)."""
    if cfg.precision == "bf16":
        return "bf16"
    return "tf32" if device.type == "cuda" and torch.backends.cudnn.allow_tf32 else "fp32"


def check_fits(cfg: TrainConfig, data: Dataset, model: LeNet5, device: torch.device) -> None:
    """Batch sizes the data and the memory can take, checked before anything is allocated."""
    fits("--batch-size", (cfg.batch_size,), len(data.train_labels), "training images")
    fits("--valid-batch-size", (cfg.valid_batch_size,), len(data.test_labels), "test images")
    # Activations, their gradients and what autograd keeps: about 3x the forward activations.
    need = 3 * 4 * activations_per_image(model) * cfg.batch_size
    have = available_memory(device)
    if have is not None and need > have:
        raise ConfigError(f"--batch-size {cfg.batch_size}: a training step needs about {need / 2**30:.1f} GiB, "
                          f"{have / 2**30:.1f} GiB is available on {device.type}")


def _new_result(cfg: TrainConfig, data: Dataset, device: torch.device, flops: int, tuned_malloc: bool) -> TrainResult:
    mode = math_mode(cfg, device)
    return TrainResult(
        dataset=data.name, dataset_source=data.source, device=cfg.device, threads=cfg.threads,
        arch=cfg.arch, precision=cfg.precision, batch_size=cfg.batch_size,
        valid_batch_size=cfg.valid_batch_size, train_images=len(data.train_labels),
        valid_images=len(data.test_labels), flops_per_image=flops,
        target_accuracy=target_for(data.name, cfg), config=to_plain(cfg),
        checkpoint=str(cfg.checkpoint), environment=environment(),
        peak=measured_peak(device.type, cfg.threads, mode), math=mode,
        tuning={"channels_last": True, "glibc_keep_freed_memory": tuned_malloc,
                "loss_sync": "once per epoch"})


def train(cfg: TrainConfig, data: Dataset, progress: Progress | None = None) -> tuple[TrainResult, LeNet5]:
    """Train (or resume) per cfg; checkpoint after every epoch; return the result and model.

    Raises Stopped on Ctrl-C (resumable) and on a non-finite loss (failed); both carry the
    result of the completed epochs, and the checkpoint on disk is the last good epoch.
    """
    progress = progress or Progress()
    device = select_device(cfg.device, cfg.threads)
    tuned_malloc = keep_freed_memory()
    torch.manual_seed(cfg.seed)
    model = LeNet5(cfg.arch)
    check_fits(cfg, data, model, device)
    result = _new_result(cfg, data, device, forward_flops(model), tuned_malloc)
    model = model.to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = (torch.optim.lr_scheduler.StepLR(optimizer, cfg.lr_step, cfg.lr_gamma)
                 if cfg.lr_step else None)
    # Shuffling draws from its own CPU generator, saved in the checkpoint, so a resumed
    # run sees the same batches as an uninterrupted one, on any device.
    shuffle = torch.Generator().manual_seed(cfg.seed)
    state = (model, optimizer, scheduler, shuffle)
    if cfg.resume:
        done = checkpoint.restore(cfg.checkpoint, cfg, data.name, *state)
        result.epochs = [EpochResult(**e) for e in done]

    x_train, y_train = to_tensors(data.train_images, data.train_labels, device)
    x_valid, y_valid = to_tensors(data.test_images, data.test_labels, device)
    try:
        for epoch in range(len(result.epochs) + 1, cfg.epochs + 1):
            progress.start_epoch(epoch, math.ceil(len(x_train) / cfg.batch_size))
            lr = optimizer.param_groups[0]["lr"]
            sync(device)
            t0, cpu0 = clock(), time.process_time()
            order = torch.randperm(len(x_train), generator=shuffle).to(device)
            train_loss = train_epoch(model, optimizer, x_train, y_train, order, cfg, progress)
            train_s, train_cpu_s = clock() - t0, time.process_time() - cpu0

            progress.validating()
            t0, cpu0 = clock(), time.process_time()
            valid_loss, valid_acc = evaluate(model, x_valid, y_valid, cfg.valid_batch_size)
            valid_s, valid_cpu_s = clock() - t0, time.process_time() - cpu0

            if not (math.isfinite(train_loss) and math.isfinite(valid_loss)):
                raise Stopped(f"epoch {epoch}: loss is {train_loss} (training) / {valid_loss} (validation); "
                              f"stopped, {cfg.checkpoint} keeps the last good epoch ({epoch - 1}); "
                              f"try a lower --lr", result, interrupted=False)
            if scheduler is not None:
                scheduler.step()
            e = EpochResult(epoch, train_loss, train_s, valid_loss, valid_acc, valid_s, lr, train_cpu_s, valid_cpu_s)
            result.epochs.append(e)
            checkpoint.save(cfg.checkpoint, cfg, data, *state, [vars(x).copy() for x in result.epochs])
            progress.end_epoch(e)
    except KeyboardInterrupt:
        raise Stopped(f"interrupted after {len(result.epochs)} completed epoch(s); checkpoint "
                      f"{cfg.checkpoint} keeps them", result, resumable=True) from None
    finally:
        result.peak_rss_mb = peak_rss_mb()  # the process's peak so far: data, model, training

    result.weights_sha256 = checkpoint.fingerprint(checkpoint.weights(model))
    if (result.summary()["percent_of_peak"] or 0) > 100:  # the cached peak was measured on a busier machine
        result.peak = remeasure_peak(device.type, cfg.threads, result.math)
    result.complete = True
    return result, model.to(memory_format=torch.contiguous_format)
