"""MNIST-format datasets: IDX reading, dataset resolution (folder, cache, download), normalisation.

Everything here is numpy only, so PyTorch and ONNX Runtime are fed the very same arrays.
Every problem with a file raises :class:`DataError` with one line naming the file.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import CrossrtError, DataConfig

IMAGE_SIZE = 28
NUM_CLASSES = 10
IDX_UINT8 = 0x08

# (stem, IDX rank) of the four files, in the order they are returned.
PARTS = (("train-images", 3), ("train-labels", 1), ("t10k-images", 3), ("t10k-labels", 1))

# SHA-256 of the files as the public mirrors serve them (gzip-compressed).
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}
MIRRORS = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/"),
    "fashion-mnist": ("https://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                      "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"),
}
# Debian's package dataset-fashion-mnist (installed by `make setup`) puts the files here.
SYSTEM_DIRS = {"fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),), "mnist": ()}
PRETTY = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}


class DataError(CrossrtError):
    """A dataset file or folder that cannot be used."""


@dataclass
class Dataset:
    """Raw uint8 images (N, 28, 28) and labels (N,) of both splits, and where they came from."""

    name: str
    source: str
    reason: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def _file_names(stem: str, rank: int) -> list[str]:
    """Both conventions: `train-images.idx3-ubyte` (the seed) and `train-images-idx3-ubyte` (.gz)."""
    names = [f"{stem}-idx{rank}-ubyte", f"{stem}.idx{rank}-ubyte"]
    return names + [n + ".gz" for n in names]


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    if path.suffix == ".gz" or raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: not a valid gzip file ({e})") from None
    return raw


def read_idx(path: Path, rank: int) -> np.ndarray:
    """Read one IDX file of unsigned bytes, raw or gzip, checking its header against its size."""
    path = Path(path)
    raw = _read_bytes(path)
    header = 4 + 4 * rank
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes)")
    zero, dtype, ndim = int.from_bytes(raw[0:2], "big"), raw[2], raw[3]
    if zero != 0 or dtype != IDX_UINT8 or ndim != rank:
        raise DataError(f"{path}: wrong magic number 0x{raw[:4].hex()} "
                        f"(expected 0x0000080{rank}: unsigned bytes, {rank} dimension(s))")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank)]
    if rank == 3 and dims[1:] != [IMAGE_SIZE, IMAGE_SIZE]:
        raise DataError(f"{path}: images are {dims[1]}x{dims[2]}, expected {IMAGE_SIZE}x{IMAGE_SIZE}")
    expected = int(np.prod(dims))
    found = len(raw) - header
    if found < expected:
        raise DataError(f"{path}: truncated: header promises {expected} bytes of data, file has {found}")
    if found > expected:
        raise DataError(f"{path}: {found - expected} unexpected bytes after the data")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


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
    for images, labels, ip, lp in ((arrays[0], arrays[1], paths[0], paths[1]),
                                   (arrays[2], arrays[3], paths[2], paths[3])):
        if len(images) != len(labels):
            raise DataError(f"{lp}: {len(labels)} labels for {len(images)} images in {ip.name}")
        if len(images) == 0:
            raise DataError(f"{ip}: holds no images")
        if labels.max() >= NUM_CLASSES:
            raise DataError(f"{lp}: label {int(labels.max())} out of range 0..{NUM_CLASSES - 1}")
    return Dataset(name, str(folder), reason, *arrays)


def cache_dir() -> Path:
    """$CROSSRT_CACHE, else $XDG_CACHE_HOME/crossrt, else ~/.cache/crossrt."""
    if os.environ.get("CROSSRT_CACHE"):
        return Path(os.environ["CROSSRT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "crossrt"


def mirrors(name: str) -> tuple[str, ...]:
    """$CROSSRT_MIRROR (one base URL, for a local mirror or a test server), else the public ones."""
    override = os.environ.get("CROSSRT_MIRROR")
    return (override,) if override else MIRRORS[name]


def _download(url: str, dest: Path, sha256: str, timeout: float) -> None:
    """Stream url into a temp file beside dest; rename it into place only if the hash matches."""
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            raise DataError(f"{url}: SHA-256 mismatch (got {digest.hexdigest()[:16]}..., "
                            f"expected {sha256[:16]}...)")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def fetch(name: str, dest: Path | None = None, urls: tuple[str, ...] | None = None,
          timeout: float = 30.0) -> Path:
    """Download a named dataset into dest (default: the cache), verifying every file's SHA-256.

    Files already present with the right hash are kept, others are deleted and fetched again;
    a download only lands in dest once it has matched its hash, so an interrupted or tampered
    download leaves nothing behind.
    """
    dest = Path(dest) if dest is not None else cache_dir() / name
    urls = urls or mirrors(name)
    dest.mkdir(parents=True, exist_ok=True)
    for filename, sha256 in SHA256[name].items():
        target = dest / filename
        if target.is_file():
            if _sha256(target) == sha256:
                continue
            target.unlink()  # corrupt or tampered: never kept, fetched again
        errors = []
        for base in urls:
            url = base.rstrip("/") + "/" + filename
            try:
                _download(url, target, sha256, timeout)
                break
            except DataError as e:
                errors.append(str(e))
            except OSError as e:  # URLError, HTTPError, timeouts, refused connections
                errors.append(f"{url}: {getattr(e, 'reason', None) or e}")
        else:
            raise DataError(f"could not download {PRETTY[name]} {filename}: {'; '.join(errors)}")
    return dest


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verified(name: str, folder: Path) -> bool:
    """Whether folder holds every file of the named dataset with its published SHA-256."""
    return all((folder / f).is_file() and _sha256(folder / f) == h for f, h in SHA256[name].items())


def _named(name: str, download: bool) -> Dataset:
    for folder in SYSTEM_DIRS[name]:
        if has_files(folder):
            return load_folder(folder, name, f"{PRETTY[name]} from {folder}")
    cached = cache_dir() / name
    if verified(name, cached):
        return load_folder(cached, name, f"{PRETTY[name]} from the cache {cached}")
    if not download:
        raise DataError(f"{PRETTY[name]} is not in {cached} and downloading is off")
    return load_folder(fetch(name, cached), name, f"{PRETTY[name]} downloaded to {cached}")


def resolve(cfg: DataConfig, download: bool = True) -> Dataset:
    """Find the dataset the settings ask for; `auto` is MNIST when it can be had, else Fashion-MNIST."""
    if cfg.data_dir is not None:
        name = cfg.dataset if cfg.dataset != "auto" else cfg.data_dir.resolve().name
        return load_folder(cfg.data_dir, name, f"--data-dir {cfg.data_dir}")
    if cfg.dataset != "auto":
        return _named(cfg.dataset, download)
    try:
        return _named("mnist", download)
    except DataError as mnist_error:
        try:
            ds = _named("fashion-mnist", download)
        except DataError as fashion_error:
            raise DataError(f"--dataset auto: neither dataset is available. MNIST: {mnist_error}. "
                            f"Fashion-MNIST: {fashion_error}. Give a folder with --data-dir") from None
        why = str(mnist_error).split(": ")[-1].rstrip(")")[:80]
        ds.reason += f" (auto: MNIST is not cached and could not be downloaded: {why})"
        return ds


def normalize(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28), each image to zero mean and unit std.

    As the seed does: statistics per image over its 784 pixels, with torch's default
    unbiased std (ddof=1). A blank image (std 0) stays all zeros instead of NaN.
    """
    x = images.reshape(len(images), -1).astype(np.float32)
    x -= x.mean(axis=1, keepdims=True)
    std = x.std(axis=1, ddof=1, keepdims=True)
    x /= np.where(std > 0, std, 1.0)
    return x.reshape(len(images), 1, IMAGE_SIZE, IMAGE_SIZE)


PREPROCESSING = ("uint8 28x28 -> float32 NCHW [N,1,28,28]; per image (x - mean(x)) / std(x), "
                 "std with ddof=1 over the 784 pixels (the seed's normalisation)")
