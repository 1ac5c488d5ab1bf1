"""train and export: LeNet5 trained with the reference recipe, and a checkpoint to ONNX."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..checks import between, choice, in_range
from ..errors import ConfigError
from ..system import cpu_count, max_ranks, max_threads
from .common import (
    ARCHS,
    DEVICES,
    MAX_EPOCHS,
    MAX_SEED,
    PRECISIONS,
    DataConfig,
    json_field,
    option,
)


@dataclass
class TrainConfig:
    """train: LeNet5 with the reference recipe by default (100 epochs, batch 600, Adam 1e-3,
    validation batch 100), validated after every epoch, checkpointed, exported to ONNX."""

    device: str = option("cpu", choices=DEVICES, help="torch device")
    nproc: int = option(
        1,
        metavar="P",
        help="data-parallel ranks on this machine (torch.distributed: gloo on CPUs, "
        "NCCL on GPUs, one GPU per rank); the batch is split over them",
    )
    threads: int | None = option(
        None, default_text="the cores / the ranks on this machine", help="torch intra-op threads (per rank)"
    )
    cuda_graph: bool | None = option(
        None,
        flag="--cuda-graph/--no-cuda-graph",
        default_text="on with --device cuda",
        help="replay the training step and the validation batch as CUDA graphs",
    )
    cudnn_benchmark: bool = option(
        True,
        flag="--cudnn-benchmark/--no-cudnn-benchmark",
        help="with --device cuda: cuDNN times its convolution algorithms once and keeps "
        "the fastest (the search is part of the run's setup or first epoch)",
    )
    epochs: int = option(100, help="epochs")
    batch_size: int = option(600, help="training batch")
    valid_batch_size: int = option(100, help="validation batch")
    lr: float = option(1e-3, help="Adam learning rate")
    lr_step: int = option(0, metavar="EPOCHS", help="multiply the lr by --lr-gamma every EPOCHS epochs; 0 = off")
    lr_gamma: float = option(0.1, help="step decay factor")
    seed: int = option(2022, help="random seed for init and shuffling (the reference's MATLAB rng(2022))")
    arch: str = option(
        "lenet5", choices=ARCHS, help="lenet5 = the reference's 32/64/128 channels, lenet5-classic = 6/16/120"
    )
    precision: str = option("fp32", choices=PRECISIONS, help="bf16 = autocast; the exported model is fp32 either way")
    lean_step: bool = option(
        True,
        flag="--lean-step/--no-lean-step",
        help="the step computes LeNet5 with max-pool "
        "before ReLU and C5 as one GEMM: the same function, less memory traffic (crossrt.steps)",
    )
    target_accuracy: float | None = option(
        None, metavar="ACC", default_text="0.99, 0.90 for Fashion-MNIST", help="report epochs and time to reach ACC"
    )
    data: DataConfig = field(default_factory=DataConfig)
    out: Path = option(
        Path("exports"), metavar="DIR", path="out-folder", help="checkpoint, ONNX model and run record go here"
    )
    resume: bool = option(False, help="continue from DIR/lenet5.pt")
    export: bool = option(True, flag="--no-export", default_text="export", help="skip the ONNX export at the end")
    json: Path | None = json_field()

    def __post_init__(self) -> None:
        choice("--device", self.device, DEVICES)
        choice("--arch", self.arch, ARCHS)
        choice("--precision", self.precision, PRECISIONS)
        in_range("--nproc", self.nproc, 1, max_ranks())
        if self.cuda_graph and self.device != "cuda":
            raise ConfigError("--cuda-graph: needs --device cuda (on the CPU the same step runs eagerly)")
        if self.threads is None:  # a rank started by torchrun knows its neighbours from LOCAL_WORLD_SIZE
            self.threads = max(1, cpu_count() // int(os.environ.get("LOCAL_WORLD_SIZE", self.nproc)))
        in_range("--threads", self.threads, 1, max_threads())
        in_range("--epochs", self.epochs, 1, MAX_EPOCHS)
        in_range("--batch-size", self.batch_size, 1)
        if self.batch_size % self.nproc:
            raise ConfigError(
                f"--nproc {self.nproc}: does not divide --batch-size {self.batch_size}; every rank "
                f"takes an equal share of each batch"
            )
        in_range("--valid-batch-size", self.valid_batch_size, 1)
        in_range("--lr-step", self.lr_step, 0, MAX_EPOCHS)
        in_range("--seed", self.seed, 0, MAX_SEED)
        between("--lr", self.lr, 0, 10, high_inclusive=False)
        between("--lr-gamma", self.lr_gamma, 0, 1)
        if self.target_accuracy is not None:
            between("--target-accuracy", self.target_accuracy, 0, 1)
        self.out, self.json = Path(self.out), self.json and Path(self.json)

    @property
    def checkpoint(self) -> Path:
        return self.out / "lenet5.pt"

    @property
    def onnx_path(self) -> Path:
        return self.out / "lenet5.onnx"

    @property
    def run_json(self) -> Path:
        """The record of the run that made the model, beside it, for bench-infer to find."""
        return self.out / "lenet5.train.json"


@dataclass
class ExportConfig:
    """export: a checkpoint to ONNX, with ONNX Runtime checked against PyTorch on the test set."""

    checkpoint: Path = option(Path("exports/lenet5.pt"), path="in-file", help="checkpoint from `train`")
    out: Path | None = option(
        None,
        metavar="PATH",
        default_text="the checkpoint's path with .onnx",
        path="out-file",
        help="ONNX file to write",
    )
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self) -> None:
        self.checkpoint = Path(self.checkpoint)
        self.out = Path(self.out or self.checkpoint.with_suffix(".onnx"))
