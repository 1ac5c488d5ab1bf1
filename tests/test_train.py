"""Training: checkpoints, resume, interruption, learning-rate steps, untrusted checkpoints."""

from __future__ import annotations

import pytest
import torch

from crossrt import checkpoint
from crossrt.cli import main
from crossrt.config import DataConfig, TrainConfig
from crossrt.errors import CrossrtError, Stopped
from crossrt.fetch import resolve
from crossrt.train import Progress, train


def _cfg(tiny_data, out, **kw) -> TrainConfig:
    return TrainConfig(data=DataConfig(data_dir=tiny_data), out=out, threads=1, batch_size=60, export=False, **kw)


def test_resume_matches_an_uninterrupted_run(tiny_data, tmp_path):
    data = resolve(DataConfig(data_dir=tiny_data))
    straight, _ = train(_cfg(tiny_data, tmp_path / "a", epochs=3), data)
    train(_cfg(tiny_data, tmp_path / "b", epochs=1), data)
    resumed, _ = train(_cfg(tiny_data, tmp_path / "b", epochs=3, resume=True), data)
    a, b = checkpoint.load(tmp_path / "a" / "lenet5.pt"), checkpoint.load(tmp_path / "b" / "lenet5.pt")
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert [e.valid_accuracy for e in straight.epochs] == [e.valid_accuracy for e in resumed.epochs]


def test_resume_refuses_other_settings(tiny_data, tmp_path):
    data = resolve(DataConfig(data_dir=tiny_data))
    train(_cfg(tiny_data, tmp_path, epochs=1), data)
    with pytest.raises(CrossrtError, match="trained with batch_size=60, not 30"):
        train(
            TrainConfig(
                data=DataConfig(data_dir=tiny_data),
                out=tmp_path,
                threads=1,
                batch_size=30,
                epochs=2,
                resume=True,
                export=False,
            ),
            data,
        )
    with pytest.raises(CrossrtError, match="already has 1 epochs"):
        train(_cfg(tiny_data, tmp_path, epochs=1, resume=True), data)


class StopAt(Progress):
    def __init__(self, epoch):
        self.stop = epoch

    def start_epoch(self, epoch, batches):
        self.epoch = epoch

    def advance(self):
        if self.epoch == self.stop:
            raise KeyboardInterrupt


def test_interrupt_keeps_last_good_epoch(tiny_data, tmp_path):
    data = resolve(DataConfig(data_dir=tiny_data))
    with pytest.raises(Stopped) as info:
        train(_cfg(tiny_data, tmp_path, epochs=3), data, StopAt(2))
    assert info.value.interrupted and info.value.resumable
    assert len(info.value.result.epochs) == 1 and info.value.result.complete is False
    assert len(checkpoint.load(tmp_path / "lenet5.pt")["epochs"]) == 1


def test_lr_step_decay(tiny_data, tmp_path):
    data = resolve(DataConfig(data_dir=tiny_data))
    result, _ = train(_cfg(tiny_data, tmp_path, epochs=3, lr_step=1, lr_gamma=0.5), data)
    assert [e.lr for e in result.epochs] == pytest.approx([1e-3, 5e-4, 2.5e-4])


class Payload:
    """Unpickling it would run `touch <marker>`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_with_code_is_refused(tmp_path, capsys):
    evil, marker = tmp_path / "lenet5.pt", tmp_path / "pwned"
    torch.save({"format": "crossrt-checkpoint-1", "x": Payload(marker)}, evil)
    with pytest.raises(CrossrtError, match="not a loadable checkpoint"):
        checkpoint.load(evil)
    assert not marker.exists()
    assert main(["export", "--checkpoint", str(evil)]) == 2
    assert "not a loadable checkpoint" in capsys.readouterr().err
