"""Every file a command reads and writes, checked when it starts: what each must be, and that
no output of a run is an input of it or another of its outputs, so nothing is overwritten that
was not asked for.

A path comes from a settings field whose `path` metadata says what it is (crossrt.config.option:
"in-file", "in-folder", "out-file", "named-file", "out-folder"), or is one a command reads or writes without a
flag of its own (READS, WRITES: the checkpoint, model, run record and lock file of `train`, the
IDX files of --data-dir, the training record beside bench-infer's model, the suite's mode
folders). Two paths are one file after symlinks, and as two names of one file (a hard link).
"""

from __future__ import annotations

import os
from dataclasses import fields, is_dataclass
from pathlib import Path
from types import SimpleNamespace

from .checks import LOCK_FILE, PATH_CHECKS
from .config import BenchConfig, DataConfig, LoadgenConfig, SuiteConfig, TrainConfig
from .errors import ConfigError

# The names of what `train` writes into --out, as TrainConfig's own properties give them.
TRAIN_FILES = tuple(
    getattr(TrainConfig, p).fget(SimpleNamespace(out=Path())).name for p in ("checkpoint", "onnx_path", "run_json")
)


def _data_reads(cfg: DataConfig) -> list[tuple[str, Path]]:
    """The IDX files --data-dir holds (none when it holds no usable set: reading it says why)."""
    from .data import find_files, has_files

    usable = cfg.data_dir is not None and has_files(cfg.data_dir)
    return [("a file of --data-dir", p) for p in find_files(cfg.data_dir)] if usable else []


def _train_writes(cfg: TrainConfig) -> list[tuple[str, Path]]:
    """The files the run writes into --out (its checkpoint is also its input with --resume)."""
    return [
        ("the checkpoint", cfg.checkpoint),
        *([("the ONNX model", cfg.onnx_path)] * cfg.export),
        ("the run record", cfg.run_json),
        ("the lock file", cfg.out / LOCK_FILE),
    ]


def _suite_writes(cfg: SuiteConfig) -> list[tuple[str, Path]]:
    """What the modes' training runs write: TRAIN_FILES in a subfolder of --out each: in those
    there already, and in --json's folder should it be one."""
    folders = [d for d in sorted(cfg.out.glob("*/")) if d.is_dir()]
    if cfg.json and os.path.realpath(cfg.json.parent.parent) == os.path.realpath(cfg.out):
        folders.append(cfg.json.parent)
    return [("the lock file", cfg.out / LOCK_FILE)] + [
        ("a file of --out", d / name) for d in dict.fromkeys(folders) for name in (*TRAIN_FILES, LOCK_FILE)
    ]


READS = {
    DataConfig: _data_reads,
    # With --no-export, the model already in --out: the run leaves it, and no output may take its place.
    TrainConfig: lambda cfg: [] if cfg.export else [("the model", cfg.onnx_path)],
    # The training record bench-infer reads beside the model when --train-json is not given.
    BenchConfig: lambda cfg: [] if cfg.train_json else [("the training record", cfg.model.with_suffix(".train.json"))],
    LoadgenConfig: lambda cfg: [("the training record", cfg.model.with_suffix(".train.json"))],  # as bench-infer's
}
WRITES = {TrainConfig: _train_writes, SuiteConfig: _suite_writes}


def paths_of(cfg) -> list[tuple[str, Path, str]]:
    """(flag, path, kind) of every path a settings dataclass names, nested settings too, and of
    the files it reads or writes without a flag of their own."""
    found = []
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if is_dataclass(value):
            found += paths_of(value)
        elif f.metadata.get("path") and value is not None:
            found.append((f.metadata["flag"] or "--" + f.name.replace("_", "-"), Path(value), f.metadata["path"]))
    none = lambda cfg: []  # noqa: E731
    found += [(what, Path(p), "in-file") for what, p in READS.get(type(cfg), none)(cfg)]
    return found + [(what, Path(p), "out-file") for what, p in WRITES.get(type(cfg), none)(cfg)]


def _same(a: Path, b: Path) -> bool:
    """Whether two paths name one file: after links, or as two names of one file (a hard link)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet
        return os.path.realpath(a) == os.path.realpath(b)


def no_overlap(paths: list[tuple[str, Path, str]]) -> None:
    """No output of a run is an input of it or another of its outputs: each would destroy the
    other. One item may be both (--resume's checkpoint)."""
    writes = ("out-file", "named-file")
    for i, (flag, out, kind) in enumerate(paths):
        if kind not in writes:
            continue
        for j, (other, path, other_kind) in enumerate(paths):
            if i == j or other_kind in ("out-folder", "in-folder") or (other_kind in writes and j < i):
                continue
            if _same(out, path):
                role = "an input" if other_kind == "in-file" else "another output"
                raise ConfigError(
                    f"{flag} {out}: is {other} {path}, {role} of this run; it would be overwritten "
                    f"(choose another path)"
                )


def check_paths(cfg) -> None:
    """Every path of cfg (paths_of) is what it must be: a folder that can be read, a folder or a
    file that can be written; and no output overwrites an input or another output."""
    paths = paths_of(cfg)
    for flag, path, kind in paths:
        PATH_CHECKS[kind](flag, path)
    made = {os.path.realpath(p) for _, p, kind in paths if kind == "out-folder"}  # the folders this run makes
    for flag, path, kind in paths:  # a typo in a folder's name is not quietly a new folder
        if kind == "named-file" and not path.parent.is_dir() and os.path.realpath(path.parent) not in made:
            raise ConfigError(f"{flag} {path}: no folder {path.parent} to write it in (create it first)")
    no_overlap(paths)
