"""The seed's training recipe, made fast and measured honestly -> TrainResult.

What is timed is what the seed times: per epoch, the training pass (shuffle, 100 Adam steps
of batch 600) and the validation pass (10,000 test images in batches of 100), each
separately, with the device synchronised before every clock read. Checkpointing happens
between the timed phases.

Speed without changing the recipe: the whole dataset is one tensor already on the device
(batches are index_select slices, no DataLoader and no per-step host copies), the model runs
in channels_last (the faster oneDNN/cuDNN convolution layout), the loss is accumulated on
the device, so there is no host sync inside an epoch, and glibc is told to keep freed
activation buffers for reuse (see keep_freed_memory).
"""

from __future__ import annotations

import ctypes
import io
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .config import CrossrtError, TrainConfig, to_plain
from .data import Dataset, normalize
from .model import LeNet5, forward_flops
from .peak import cpu_peak, cuda_peak
from .report import EpochResult, TrainResult, atomic_write, environment, peak_rss_mb

CHECKPOINT_FORMAT = "crossrt-checkpoint-1"
# Settings that must match for --resume to continue the same run.
RESUME_KEYS = ("arch", "batch_size", "lr", "lr_step", "lr_gamma", "seed", "precision")


class TrainingStopped(CrossrtError):
    """Training ended early; .result holds the epochs completed so far."""

    def __init__(self, message: str, result: TrainResult):
        super().__init__(message)
        self.result = result


class Interrupted(TrainingStopped):
    """Ctrl-C or SIGTERM during training."""


class Diverged(TrainingStopped):
    """A NaN or infinite loss."""


class Progress:
    """Callbacks the training loop reports through; the CLI passes a rich implementation."""

    def start_epoch(self, epoch: int, batches: int) -> None: ...
    def advance(self) -> None: ...
    def validating(self) -> None: ...
    def end_epoch(self, result: EpochResult) -> None: ...


def keep_freed_memory() -> bool:
    """Stop glibc from handing large freed buffers back to the OS; True when it took effect.

    A training step allocates and frees activation buffers of tens of MB (600 x 32 x 24 x 24
    fp32 is 44 MB). Above glibc's mmap threshold (32 MB at most) each one is a fresh mmap whose
    pages the kernel zero-fills on first touch, every step: on the 2-core test machine that was
    about 45% of an fp32 epoch. Raising the mmap and trim thresholds keeps that memory in the
    heap for the next step. Linux/glibc only; elsewhere nothing changes.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from <malloc.h>
    return bool(libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, 1 << 30))


def select_device(device: str, threads: int) -> torch.device:
    """The torch device, or a ConfigError when CUDA is asked for and not usable."""
    if device == "cuda":
        if not torch.cuda.is_available():
            why = ("this torch build has no CUDA" if torch.version.cuda is None
                   else "torch sees no CUDA device")
            raise CrossrtError(f"--device cuda: no usable CUDA GPU ({why}; torch {torch.__version__})")
        # LeNet5's shapes never change, so let cuDNN benchmark and keep the fastest kernels.
        torch.backends.cudnn.benchmark = True
    torch.set_num_threads(threads)
    return torch.device(device)


def sync(device: torch.device) -> None:
    """Wait for queued device work, so that a clock read afterwards covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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


def save_checkpoint(path: Path, state: dict) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write(path, buf.getvalue())


def load_checkpoint(path: Path) -> dict:
    """A crossrt checkpoint, loaded with weights_only=True (no code runs from the file)."""
    path = Path(path)
    if not path.is_file():
        raise CrossrtError(f"{path}: no such checkpoint (run `make train` first)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and torch errors alike
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()] or [type(e).__name__]
        why = next((ln for ln in lines if "Unpickler error" in ln), lines[0])
        raise CrossrtError(f"{path}: not a loadable checkpoint ({why[:200]})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CrossrtError(f"{path}: not a crossrt checkpoint (format {CHECKPOINT_FORMAT})")
    return state


def model_from_checkpoint(state: dict) -> LeNet5:
    model = LeNet5(state["config"]["arch"])
    model.load_state_dict(state["model"])
    return model.eval()


def target_for(dataset: str, cfg: TrainConfig) -> float:
    if cfg.target_accuracy is not None:
        return cfg.target_accuracy
    return 0.90 if dataset == "fashion-mnist" else 0.99


def train(cfg: TrainConfig, data: Dataset, progress: Progress | None = None) -> tuple[TrainResult, LeNet5]:
    """Train (or resume) per cfg; checkpoint after every epoch; return the result and model.

    Raises Interrupted on KeyboardInterrupt and Diverged on a non-finite loss; both carry
    the result of the completed epochs, and the checkpoint on disk is the last good epoch.
    """
    progress = progress or Progress()
    device = select_device(cfg.device, cfg.threads)
    tuned_malloc = keep_freed_memory()
    torch.manual_seed(cfg.seed)
    model = LeNet5(cfg.arch)
    flops = forward_flops(model)
    model = model.to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = (torch.optim.lr_scheduler.StepLR(optimizer, cfg.lr_step, cfg.lr_gamma)
                 if cfg.lr_step else None)
    # Shuffling draws from its own CPU generator, saved in the checkpoint, so a resumed
    # run sees the same batches as an uninterrupted one, on any device.
    shuffle = torch.Generator().manual_seed(cfg.seed)

    result = TrainResult(
        dataset=data.name, dataset_source=data.source, device=cfg.device, threads=cfg.threads,
        arch=cfg.arch, precision=cfg.precision, batch_size=cfg.batch_size,
        valid_batch_size=cfg.valid_batch_size, train_images=len(data.train_labels),
        valid_images=len(data.test_labels), flops_per_image=flops,
        target_accuracy=target_for(data.name, cfg), config=to_plain(cfg),
        checkpoint=str(cfg.checkpoint), environment=environment(),
        peak=cuda_peak() if device.type == "cuda" else cpu_peak(cfg.threads),
        tuning={"channels_last": True, "glibc_keep_freed_memory": tuned_malloc,
                "loss_sync": "once per epoch"})

    if cfg.resume:
        state = load_checkpoint(cfg.checkpoint)
        for key in RESUME_KEYS:
            if state["config"][key] != getattr(cfg, key):
                raise CrossrtError(f"--resume: {cfg.checkpoint} was trained with {key}="
                                   f"{state['config'][key]!r}, not {getattr(cfg, key)!r}")
        if state["dataset"] != data.name:
            raise CrossrtError(f"--resume: {cfg.checkpoint} was trained on {state['dataset']}, not {data.name}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        shuffle.set_state(state["shuffle"])
        result.epochs = [EpochResult(**e) for e in state["epochs"]]
        if len(result.epochs) >= cfg.epochs:
            raise CrossrtError(f"--resume: {cfg.checkpoint} already has {len(result.epochs)} epochs; "
                               f"ask for more with --epochs")

    x_train, y_train = to_tensors(data.train_images, data.train_labels, device)
    x_valid, y_valid = to_tensors(data.test_images, data.test_labels, device)
    n, bs = len(x_train), cfg.batch_size
    batches = math.ceil(n / bs)
    use_bf16 = cfg.precision == "bf16"
    clock = time.perf_counter

    try:
        for epoch in range(len(result.epochs) + 1, cfg.epochs + 1):
            progress.start_epoch(epoch, batches)
            lr = optimizer.param_groups[0]["lr"]
            sync(device)
            t0 = clock()
            model.train()
            order = torch.randperm(n, generator=shuffle).to(device)
            loss_sum = torch.zeros((), device=device)
            for b in range(batches):
                idx = order[b * bs:(b + 1) * bs]
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                    logits = model(x_train.index_select(0, idx))
                loss = F.cross_entropy(logits.float(), y_train.index_select(0, idx))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach()
                progress.advance()
            train_loss = loss_sum.item() / batches  # .item() synchronises the device
            train_s = clock() - t0

            progress.validating()
            t0 = clock()
            valid_loss, valid_acc = evaluate(model, x_valid, y_valid, cfg.valid_batch_size)
            valid_s = clock() - t0

            if not (math.isfinite(train_loss) and math.isfinite(valid_loss)):
                raise Diverged(f"epoch {epoch}: loss is {train_loss} (training) / {valid_loss} "
                               f"(validation); stopped, {cfg.checkpoint} keeps the last good epoch "
                               f"({epoch - 1}); try a lower --lr", result)
            if scheduler is not None:
                scheduler.step()
            e = EpochResult(epoch, train_loss, train_s, valid_loss, valid_acc, valid_s, lr)
            result.epochs.append(e)
            save_checkpoint(cfg.checkpoint, {
                "format": CHECKPOINT_FORMAT, "config": to_plain(cfg), "dataset": data.name,
                "model": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "shuffle": shuffle.get_state(),
                "epochs": [vars(x).copy() for x in result.epochs],
                "torch_version": str(torch.__version__),
            })
            progress.end_epoch(e)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted after {len(result.epochs)} completed epoch(s)", result) from None
    finally:
        result.peak_rss_mb = peak_rss_mb()  # the process's peak so far: data, model, training

    result.complete = True
    return result, model.to(memory_format=torch.contiguous_format)
