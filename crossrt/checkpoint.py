"""The checkpoint format: what `train` saves after every epoch and what --resume, export and
bench-infer load back.

A checkpoint holds the model, optimizer, scheduler and shuffle-generator states, the settings
and the completed epochs, so a resumed run continues exactly where it stopped. It is loaded
with weights_only=True: no code from the file ever runs.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch

from .data import Dataset
from .errors import ConfigError, CrossrtError, ModelError
from .files import atomic_write, regular_file
from .model import ARCH_CHANNELS, LeNet5
from .results import EpochResult
from .schema import dict_has, plain

FORMAT = "crossrt-checkpoint-1"
# Settings that must match for --resume to continue the same run.
RESUME_KEYS = ("arch", "batch_size", "lr", "lr_step", "lr_gamma", "seed", "precision")
# What export, bench-infer and --resume read from a checkpoint, checked when it is loaded.
FIELDS = {
    "config": dict,
    "dataset": str,
    "data_dir": str | None,
    "model": dict,
    "epochs": list[EpochResult],
    "weights_sha256": str | None,
}


def weights(model) -> dict:
    """The model's tensors as saved: on the CPU, in the standard memory layout."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def fingerprint(tensors: dict) -> str:
    """SHA-256 of the weights, the same for a checkpoint and the .onnx exported from it."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].float().numpy().tobytes())
    return digest.hexdigest()


def save(path: Path, cfg, data: Dataset, model, optimizer, scheduler, shuffle, epochs: list[dict]) -> None:
    """Write the whole training state (cfg: the run's TrainConfig) atomically: the previous checkpoint
    stays until this one is complete."""
    tensors = weights(model)
    state = {
        "format": FORMAT,
        "config": plain(cfg),
        "dataset": data.name,
        "data_dir": data.source,
        "model": tensors,
        "weights_sha256": fingerprint(tensors),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "shuffle": shuffle.get_state(),
        "epochs": epochs,
        "torch_version": str(torch.__version__),
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write(path, buf.getvalue())


def load(path: Path) -> dict:
    """A crossrt checkpoint, loaded with weights_only=True (no code runs from the file)."""
    path = regular_file(path, "checkpoint", missing="run `make train` first")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and torch errors alike
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()] or [type(e).__name__]
        why = next((ln for ln in lines if "Unpickler error" in ln), lines[0])
        raise ModelError(f"{path}: not a loadable checkpoint ({why[:200]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ModelError(f"{path}: not a crossrt checkpoint (format {FORMAT})")
    try:
        dict_has(state, FIELDS, "the checkpoint")
        dict_has(state["config"], {"arch": str}, "its config")
    except (ValueError, TypeError) as e:
        raise ModelError(f"{path}: a damaged crossrt checkpoint: {e}") from None
    if state["config"]["arch"] not in ARCH_CHANNELS:
        raise ModelError(
            f"{path}: a checkpoint of an unknown arch {state['config']['arch']!r:.40} "
            f"(this crossrt knows {', '.join(ARCH_CHANNELS)})"
        )
    return state


def load_weights(module, weights, path) -> None:
    """module.load_state_dict(weights), or a ModelError naming the file and the first mismatch
    (a checkpoint of another shape, or with tensors missing)."""
    try:
        module.load_state_dict(weights)
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        why = next((ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()), str(e).splitlines()[0])
        raise ModelError(
            f"{path}: its weights do not fit this {getattr(module, 'arch', 'model')!s} ({why[:200]})"
        ) from None


def build_model(state: dict, path: Path | str = "the checkpoint") -> LeNet5:
    """The checkpoint's network, in eval mode on the CPU."""
    model = LeNet5(state["config"]["arch"])
    load_weights(model, state["model"], path)
    return model.eval()


def epochs_kept(path: Path, epochs: list[dict]) -> int:
    """How many of a run's epochs (as it saves them) the checkpoint on disk holds: 0 when there is
    none, it cannot be read, or it is another run's (its epochs are not the first of `epochs`)."""
    try:
        saved = load(path)["epochs"]
    except CrossrtError:
        return 0
    ours = len(saved) <= len(epochs) and all(all(e.get(k) == v for k, v in s.items()) for s, e in zip(saved, epochs))
    return len(saved) if ours else 0


def suit_mode(optimizer, capturable: list[bool]) -> None:
    """Put a loaded Adam back into the mode this run built it for.

    load_state_dict takes the saved param groups whole, and a checkpoint may come from the other
    mode: a CUDA-graph run saves capturable=True with its step counters on the GPU; an eager run,
    capturable=False with them on the CPU. Each mode refuses the other's (torch's adam.py: "If
    capturable=True, params and state_steps must be on supported devices"). So each group gets
    back its own capturable flag and each step counter moves where that flag wants it: beside its
    parameter (capturable) or on the CPU. The learning rate's type (a float, or a device tensor
    that a captured step reads) is set afterwards, by train.place_lr.
    """
    for group, flag in zip(optimizer.param_groups, capturable):
        group["capturable"] = flag
        for p in group["params"]:
            step = optimizer.state.get(p, {}).get("step")
            if step is not None:
                optimizer.state[p]["step"] = torch.as_tensor(step, dtype=torch.float32).to(p.device if flag else "cpu")


def restore(path: Path, cfg, dataset: str, model, optimizer, scheduler, shuffle) -> list[dict]:
    """Load the checkpoint for --resume into the live objects; return its completed epochs.

    Refuses a checkpoint of another recipe or dataset, or one that already has cfg.epochs.
    """
    state = load(path)
    for key in RESUME_KEYS:
        if state["config"].get(key) != getattr(cfg, key):
            raise ConfigError(
                f"--resume: {path} was trained with {key}={state['config'].get(key)!r:.40}, not {getattr(cfg, key)!r}"
            )
    if state["dataset"] != dataset:
        raise ConfigError(f"--resume: {path} was trained on {state['dataset']}, not {dataset}")
    if len(state["epochs"]) >= cfg.epochs:
        raise ConfigError(f"--resume: {path} already has {len(state['epochs'])} epochs; ask for more with --epochs")
    load_weights(model, state["model"], path)
    capturable = [group["capturable"] for group in optimizer.param_groups]  # this run's mode, not the saved one
    try:  # a damaged file: optimizer state of other shapes, a generator state that is not one
        optimizer.load_state_dict(state["optimizer"])
        suit_mode(optimizer, capturable)
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        shuffle.set_state(state["shuffle"])
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        raise ModelError(f"{path}: its training state cannot be resumed ({str(e).splitlines()[0][:200]})") from None
    return state["epochs"]
