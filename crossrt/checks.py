"""Validators for settings: numbers in range, known choices, paths that can be read or written.

Each raises ConfigError with one line that names the flag and what is wrong, before any
work starts. crossrt.config calls the value checks from the settings' __post_init__; the path
checks touch the disk, so they run when a command starts (crossrt.paths.check_paths, one
PATH_CHECKS entry per path), not when a settings object is built.
"""

from __future__ import annotations

import math
import os
import stat
import tempfile
from pathlib import Path

from .errors import ConfigError

LOCK_FILE = ".crossrt.lock"  # in every folder a run writes: crossrt.files.FolderLock


def file_kind(mode: int) -> str:
    """What a file that is not a regular one is, from its st_mode."""
    return (
        "a symbolic link"
        if stat.S_ISLNK(mode)
        else "a folder"
        if stat.S_ISDIR(mode)
        else "a FIFO"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "a device"
    )


def choice(flag: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{flag}: unknown value {value!r} (choose from {', '.join(allowed)})")


def in_range(flag: str, value, low, high=None) -> None:
    """A finite number in [low, high]; high=None: no upper bound beyond finiteness."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < low:
        raise ConfigError(f"{flag}: must be a number >= {low}, got {value!r}")
    if high is not None and value > high:
        raise ConfigError(f"{flag}: at most {high:,} here, got {value:,}")


def between(flag: str, value, low, high, high_inclusive: bool = True) -> None:
    """A number in (low, high], or (low, high)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (number and (low < value <= high if high_inclusive else low < value < high)):
        raise ConfigError(f"{flag}: must be in ({low}, {high}{']' if high_inclusive else ')'}, got {value!r}")


def fits(flag: str, values, available: int, what: str) -> None:
    """Batch sizes no larger than the data they split (a batch of 20,000 from 10,000 images is not one)."""
    for v in values:
        if v > available:
            raise ConfigError(f"{flag} {v:,}: more than the {available:,} {what}")


def _can_create_in(flag: str, path: Path, folder: Path | None = None) -> None:
    """Whether path (a file in folder, or a folder) can be created: the nearest existing folder
    must take a new entry. Probed with a temp folder removed at once, before any work."""
    parent = path if folder is None else folder
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{flag} {path}: {parent} is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(dir=parent, prefix=".crossrt-probe-"))
    except OSError as e:
        raise ConfigError(f"{flag} {path}: cannot write there ({e.strerror or e})") from None


def writable_file(flag: str, path: Path | None) -> Path | None:
    """A path we will write a file to: checked now, not after an hour of training. A write
    replaces regular files only: never a link (it would be replaced, or written through), a
    device node or a FIFO."""
    if path is None:
        return None
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {path}: is a directory, expected a file path")
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        raise ConfigError(
            f"{flag} {path}: is {file_kind(mode)}, not a regular file; crossrt replaces only regular "
            f"files (remove it or choose another path)"
        )
    _can_create_in(flag, path, path.parent)
    return path


def output_folder(flag: str, path: Path) -> Path:
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path}: is a file, expected a folder")
    _can_create_in(flag, path)
    return path


def cache_folder(path: Path) -> Path:
    """The cache (datasets, measured peaks; created when first written): no file where it, or a
    folder above it, should be. A cache that cannot be written is said when it is written."""
    name = f"the cache {path}" + (" ($CROSSRT_CACHE)" if os.environ.get("CROSSRT_CACHE") else "")
    parent = Path(path)
    while not os.path.lexists(parent) and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        what = "a file" if parent.is_file() else "not a folder" if parent.exists() else "a broken link"
        raise ConfigError(f"{name}: {parent} is {what}, not a folder; point $CROSSRT_CACHE at a folder")
    return Path(path)


def readable_folder(flag: str, path: Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{flag} {path}: no such folder")
    if not path.is_dir():
        raise ConfigError(f"{flag} {path}: not a folder")
    if not os.access(path, os.R_OK | os.X_OK):
        raise ConfigError(f"{flag} {path}: cannot read this folder")
    return path


def nonempty_unique(flag: str, values: tuple) -> None:
    if not values:
        raise ConfigError(f"{flag}: needs at least one value")
    if len(set(values)) != len(values):
        raise ConfigError(f"{flag}: lists a value twice: {','.join(map(str, values))}")


def choices(flag: str, values: tuple, allowed: tuple[str, ...]) -> None:
    """A non-empty list of known values, none twice."""
    nonempty_unique(flag, values)
    for v in values:
        choice(flag, v, allowed)


class ItemError(ValueError):
    """What a value parser says is wrong with a value it could read (LOW not below HIGH): shown as
    it is. Any other ValueError of a parser means it could not read the value at all."""


def pairs(flag: str, items: tuple[str, ...], parse) -> dict:
    """NAME=VALUE items as {NAME: parse(VALUE)}; a malformed item, or a name given twice with two
    values, is one line (the same value twice is the same request)."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not (sep and name.strip()):
            raise ConfigError(f"{flag} {item!r}: expected NAME=VALUE")
        try:
            parsed = parse(value.strip())
        except ItemError as e:
            raise ConfigError(f"{flag} {item!r}: {e}") from None
        except ValueError:
            raise ConfigError(f"{flag} {item!r}: cannot read {value.strip()!r}") from None
        if name.strip() in out and out[name.strip()] != parsed:
            raise ConfigError(f"{flag}: {name.strip()!r} is given twice, as {out[name.strip()]} and {parsed}")
        out[name.strip()] = parsed
    return out


def shape_text(text: str) -> tuple[int, ...]:
    """`1x3x224x224` as (1, 3, 224, 224); `()` is a scalar's shape."""
    return tuple(int(d) for d in text.lower().split("x")) if text not in ("", "()") else ()


def number_text(text: str) -> float | int:
    """A finite number: an integer as an int (exact, however large), else a float; NaN and
    infinity are no input value."""
    if text.lstrip("+-").isdigit():
        return int(text)
    value = float(text)
    if not math.isfinite(value):
        raise ItemError(f"{text!r} is not a finite number")
    return value


def value_text(text: str) -> float | int | str:
    """--value's V: a finite number (number_text), or else the text itself, for a string input."""
    try:
        return number_text(text)
    except ItemError:
        raise
    except ValueError:
        return text


def range_text(text: str) -> tuple[float, float]:
    """`LOW:HIGH` with LOW below HIGH, both finite."""
    parts = text.split(":")
    if len(parts) != 2:
        raise ItemError("expected LOW:HIGH")
    low, high = (number_text(v) for v in parts)
    if not low < high:
        raise ItemError("LOW must be below HIGH")
    return low, high


def all_in_range(flag: str, values: tuple, low, high=None) -> None:
    for v in values:
        in_range(flag, v, low, high)


def _no_check(flag: str, path: Path) -> Path:
    return path  # an input file: the command that reads it says what is wrong with it


PATH_CHECKS = {
    "in-file": _no_check,
    "in-folder": readable_folder,
    "out-folder": output_folder,
    "out-file": writable_file,
    "named-file": writable_file,  # and its folder exists, or is one the run makes (paths.check_paths)
}
