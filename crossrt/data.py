"""MNIST-format datasets on disk: IDX reading and checking, normalisation, batching.

Everything here is numpy only, so PyTorch and ONNX Runtime are fed the very same arrays.
Every problem with a file raises :class:`DataError` with one line naming the file. Finding
or downloading a named dataset is :mod:`crossrt.fetch`'s job.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError
from .system import host_memory

IMAGE_SIZE = 28
NUM_CLASSES = 10
IDX_UINT8 = 0x08

# (stem, IDX rank) of the four files, in the order they are returned.
PARTS = (("train-images", 3), ("train-labels", 1), ("t10k-images", 3), ("t10k-labels", 1))


@dataclass
class Dataset:
    """Raw uint8 images (N, 28, 28) and labels (N,) of both splits, and where they came from."""

    name: str
    source: str  # the absolute path of the folder the files were read from
    reason: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def _file_names(stem: str, rank: int) -> list[str]:
    """Both conventions: `train-images.idx3-ubyte` (the reference) and `train-images-idx3-ubyte` (.gz)."""
    names = [f"{stem}-idx{rank}-ubyte", f"{stem}.idx{rank}-ubyte"]
    return names + [n + ".gz" for n in names]


def _dims(path: Path, head: bytes, rank: int) -> list[int]:
    """The dimensions an IDX header gives, checked against what crossrt reads."""
    if len(head) < 4 + 4 * rank:
        raise DataError(f"{path}: truncated IDX header ({len(head)} bytes)")
    zero, dtype, ndim = int.from_bytes(head[0:2], "big"), head[2], head[3]
    if zero != 0 or dtype != IDX_UINT8 or ndim != rank:
        raise DataError(
            f"{path}: wrong magic number 0x{head[:4].hex()} "
            f"(expected 0x0000080{rank}: unsigned bytes, {rank} dimension(s))"
        )
    dims = [int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank)]
    if rank == 3 and dims[1:] != [IMAGE_SIZE, IMAGE_SIZE]:
        raise DataError(f"{path}: images are {dims[1]}x{dims[2]}, expected {IMAGE_SIZE}x{IMAGE_SIZE}")
    return dims


def read_idx(path: Path, rank: int) -> np.ndarray:
    """Read one IDX file of unsigned bytes, raw or gzip, checking its header against its size.

    The header says how many bytes follow; that must fit in the memory available before any is
    read, and a .gz is inflated no further than that (a gzip bomb of a few MB that would inflate
    to many GB stops at its header's claim), so a hostile file is refused in one line, never a
    MemoryError.
    """
    path = Path(path)
    header = 4 + 4 * rank
    try:
        with open(path, "rb") as raw:
            gz = path.suffix == ".gz" or raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            f = gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw
            dims = _dims(path, f.read(header), rank)
            expected = int(np.prod(dims, dtype=object))
            have = host_memory()
            if have is not None and expected > have:
                raise DataError(
                    f"{path}: its header claims {expected:,} bytes of data, more than the {have:,} bytes "
                    f"of memory available (a damaged or hostile file?)"
                )
            data = f.read(expected + 1)
            extra = len(data) - expected
            if extra > 0 and not gz:
                extra = os.fstat(raw.fileno()).st_size - header - expected
            while gz and 0 < extra < 2**26 and (more := f.read(2**20)):  # counted, within a bound
                extra += len(more)
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise DataError(f"{path}: not a valid gzip file ({e})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    if extra < 0:
        raise DataError(f"{path}: truncated: header promises {expected} bytes of data, file has {len(data)}")
    if extra > 0:
        raise DataError(f"{path}: {'more than ' * (extra >= 2**26)}{extra:,} unexpected bytes after the data")
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def find_files(folder: Path) -> list[Path]:
    """The four files of a folder, in PARTS order; DataError names the first one missing."""
    found = []
    for stem, rank in PARTS:
        hits = [folder / n for n in _file_names(stem, rank) if (folder / n).is_file()]
        if not hits:
            raise DataError(f"{folder}: missing {stem} (looked for {', '.join(_file_names(stem, rank))})")
        found.append(hits[0])
    return found


def has_files(folder: Path) -> bool:
    try:
        return bool(find_files(folder))
    except DataError:
        return False


def load_folder(folder: Path, name: str, reason: str) -> Dataset:
    """Load and check the four IDX files of a folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such data folder")
    paths = find_files(folder)
    arrays = [read_idx(p, rank) for p, (_, rank) in zip(paths, PARTS)]
    for images, labels, ip, lp in (
        (arrays[0], arrays[1], paths[0], paths[1]),
        (arrays[2], arrays[3], paths[2], paths[3]),
    ):
        if len(images) != len(labels):
            raise DataError(f"{lp}: {len(labels)} labels for {len(images)} images in {ip.name}")
        if len(images) == 0:
            raise DataError(f"{ip}: holds no images")
        if labels.max() >= NUM_CLASSES:
            raise DataError(f"{lp}: label {int(labels.max())} out of range 0..{NUM_CLASSES - 1}")
    return Dataset(name, os.path.abspath(folder), reason, *arrays)


def normalize(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28), each image to zero mean and unit std.

    As the reference does: statistics per image over its 784 pixels, with torch's default
    unbiased std (ddof=1). A blank image (std 0) stays all zeros instead of NaN.
    """
    x = images.reshape(len(images), -1).astype(np.float32)
    x -= x.mean(axis=1, keepdims=True)
    std = x.std(axis=1, ddof=1, keepdims=True)
    x /= np.where(std > 0, std, 1.0)
    return x.reshape(len(images), 1, IMAGE_SIZE, IMAGE_SIZE)


PREPROCESSING = (
    "uint8 28x28 -> float32 NCHW [N,1,28,28]; per image (x - mean(x)) / std(x), "
    "std with ddof=1 over the 784 pixels (the reference's normalisation)"
)


def in_batches(x: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """x in consecutive batches (views, no copies); the last one may be smaller."""
    return [x[i : i + batch_size] for i in range(0, len(x), batch_size)]
