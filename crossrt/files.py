"""Files that are never half-written: atomic writes, the output-folder lock, JSON and result files in and out.

Every file goes through a temp file in the same folder and a rename, so a crash, a full disk
or Ctrl-C leaves either the old file or the new one, never a mix. A write never goes through a
link or into something that is not a regular file (a device, a FIFO): it replaces regular files
only. A write that fails (a full disk, a file-size limit) says which file, how much it needed
and what was kept; a temp file left by a killed writer is removed by the next write to that
folder. A result file read back (load_result) is checked against its dataclasses' types
(crossrt.schema) before anything uses it, and bounded in size and depth.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import time
from contextlib import contextmanager
from pathlib import Path

from .checks import LOCK_FILE, file_kind
from .errors import Busy, CrossrtError, FieldError, ResultError, WriteError
from .results import BenchResult, LoadgenResult, Result, SuiteResult, TrainResult, parts
from .schema import build, check_header, dict_has

RESULTS_DIR = Path("results")
MAX_RESULT_BYTES = 256 * 2**20  # a suite with a full sweep is a few MB; anything near this is not a result
MAX_DEPTH = 64  # nesting of a result file (crossrt's own are 6 deep)
# A temp file: `.<name>.<writer pid>.<random>.tmp` (crossrt before 0.x: no pid).
_TEMP = re.compile(r"\..+?\.(?:(\d+)\.)?[0-9a-f]{8}\.tmp")
OLD_TEMP_S = 3600  # a temp without a pid is stale once this old (a write takes seconds)
DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def replaceable(path: Path, what: str | None = None) -> None:
    """Nothing at path, or a regular file: what a write may replace. Else a one-line error (a
    link, a device node or a FIFO is never replaced by a file, nor written through)."""
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return
    if not stat.S_ISREG(mode):
        raise WriteError(
            f"{what + ' ' if what else ''}{path}: is {file_kind(mode)}, not a regular file; crossrt "
            f"replaces only regular files (remove it or choose another path)",
            path,
            f"it is {file_kind(mode)}, not a regular file",
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid < 2**22  # another user's process (a pid too large is no process at all)
    return True


def remove_stale_temps(folder: Path) -> None:
    """Remove crossrt's own temp files in folder whose writer is gone (killed in the middle of a
    write): its pid is no live process, or, for a temp without a pid, it is over an hour old."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for e in entries:
        m = _TEMP.fullmatch(e.name)
        if not m or not e.is_file(follow_symlinks=False):
            continue
        with contextlib.suppress(OSError):
            if (m[1] and int(m[1]) != os.getpid() and not _alive(int(m[1]))) or (
                not m[1] and e.stat(follow_symlinks=False).st_mtime < time.time() - OLD_TEMP_S
            ):
                os.unlink(e.path)


def _size(n: int) -> str:
    return f"{n:,} bytes" if n < 2**20 else f"{n / 2**20:,.1f} MiB"


def _write_failed(path: Path, e: OSError, size: int) -> WriteError:
    """Which file could not be written, why, how much it needed (size < 0: at least -size; 0:
    unknown), and what was kept."""
    why = e.strerror or str(e)
    if e.errno == errno.EFBIG:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        room = "" if limit == resource.RLIM_INFINITY else f", the file size limit (ulimit -f) is {_size(limit)}"
    else:
        try:
            room = f", {_size(shutil.disk_usage(path.parent).free)} free there"
        except OSError:
            room = ""
    reason = why + (f"; it needs {'at least ' * (size < 0)}{_size(abs(size))}" if size else "") + room
    kept = f"the previous {path.name} is kept" if path.exists() else "nothing was written"
    return WriteError(f"{path}: could not be written ({reason}); {kept}", path, reason)


@contextmanager
def atomic_file(path: Path, size: int | None = None):
    """Yield a binary file that replaces `path` only when the block ends without an exception.
    size: the bytes that will be written, for the message should the disk be full."""
    path = Path(path)
    replaceable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    f, own = None, False
    try:
        # O_EXCL: never write through an existing file or link; mode 0o666 minus the umask, as open() would.
        f = os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb")
        try:
            yield f
        except OSError as e:
            own = e.errno not in DISK_FULL  # the block's own error (a download's network), not a write's
            raise
        f.flush()
        os.fsync(f.fileno())
        f.close()
        replaceable(path)  # again: the path may have changed while the file was written
        os.replace(tmp, path)
    except OSError as e:
        if own:
            raise
        written = size
        if written is None and f is not None:
            with contextlib.suppress(ValueError, OSError):
                written = -f.tell()  # what was written so far: it needs at least that
        raise _write_failed(path, e, written or 0) from None
    finally:
        if f is not None and not f.closed:
            with contextlib.suppress(OSError):  # flushing may fail again (a full disk): the temp goes anyway
                f.close()
        if os.path.lexists(tmp):
            os.unlink(tmp)


def regular_file(path: Path, what: str, missing: str | None = None) -> Path:
    """path, if it is a file crossrt can read (not a folder, FIFO or device, which would hang or
    mislead); else a one-line error naming it."""
    path = Path(path)
    if not path.exists():
        raise CrossrtError(f"{path}: no such {what}" + (f" ({missing})" if missing else ""))
    if path.is_dir():
        raise CrossrtError(f"{path}: is a folder, expected a {what} file")
    if not path.is_file():
        raise CrossrtError(f"{path}: not a regular file (a FIFO, socket or device?), expected a {what} file")
    return path


def atomic_write(path: Path, data: bytes | str) -> None:
    data = data.encode() if isinstance(data, str) else data
    with atomic_file(path, len(data)) as f:
        f.write(data)


def result_name(data: dict) -> str:
    """What a result's file under results/ is named (without .json): kind, start, run id."""
    stamp = data["created"][:19].replace("-", "").replace(":", "").replace("T", "-")
    return f"{data['kind']}-{stamp}-{data['run_id']}"


def save_json(data: dict, path: Path | None, results_dir: Path | None = RESULTS_DIR) -> list[Path]:
    """Write data to path (if given) and a copy under results_dir named by the run's start and its
    run id (`bench-infer-20261201-201500-3fa9c2d1.json`), as `report` shows them; return the paths."""
    text = json.dumps(data, indent=2) + "\n"
    written = []
    if results_dir is not None:
        written.append(Path(results_dir) / f"{result_name(data)}.json")
    if path is not None:
        written.append(Path(path))
    for p in written:
        atomic_write(p, text)
    return written


def _no_constant(name: str):
    raise ValueError(f"{name} is no JSON number")  # Python's json reads NaN and Infinity; a result holds neither


def _depth(data) -> int:
    """How deeply data nests (iteratively: a deep file must not exhaust the stack here either)."""
    deepest, todo = 0, [(data, 1)]
    while todo:
        value, depth = todo.pop()
        if isinstance(value, (dict, list)):
            deepest = max(deepest, depth)
            if depth <= MAX_DEPTH:
                todo += [(v, depth + 1) for v in (value.values() if isinstance(value, dict) else value)]
    return deepest


def load_json(path: Path) -> dict:
    """A JSON object from a file; ResultError names the file and what is wrong with it: not a
    regular file, over MAX_RESULT_BYTES, not JSON, NaN or Infinity in it, nested deeper than
    MAX_DEPTH, or a number too long for Python to read."""
    path = Path(path)
    try:
        with open(regular_file(path, "result"), "rb") as f:
            raw = f.read(MAX_RESULT_BYTES + 1)
        if len(raw) > MAX_RESULT_BYTES:
            raise ResultError(f"{path}: over {_size(MAX_RESULT_BYTES)}, far larger than any crossrt result")
        if not raw.strip():
            raise ResultError(f"{path}: an empty file, not a result")
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except CrossrtError as e:
        raise ResultError(str(e)) from None
    except OSError as e:
        raise ResultError(f"{path}: cannot read ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise ResultError(f"{path}: not a result file (binary, not JSON text)") from None
    except json.JSONDecodeError as e:
        raise ResultError(f"{path}: not valid JSON (truncated?): {e}") from None
    except RecursionError:
        raise ResultError(f"{path}: nested too deeply to be a crossrt result") from None
    except ValueError as e:  # NaN/Infinity, an integer of thousands of digits
        raise ResultError(f"{path}: not a crossrt result: {str(e).split(';')[0]}") from None
    if not isinstance(data, dict):
        raise ResultError(f"{path}: not a crossrt result (no 'kind' field)")
    if _depth(data) > MAX_DEPTH:
        raise ResultError(f"{path}: nested more than {MAX_DEPTH} deep, not a crossrt result")
    return data


class FolderLock:
    """An exclusive, non-blocking lock on a folder, so two runs never write the same exports/.

    flock is released by the kernel when the process dies, so a crash never leaves a stale lock.
    The lock file is crossrt's own: a link (to a file elsewhere, which would be truncated), a
    hard link, a device or a FIFO in its place is refused, never opened for writing.
    """

    def __init__(self, folder: Path):
        self.path = Path(folder) / LOCK_FILE
        self.fd = None

    def __enter__(self) -> FolderLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        replaceable(self.path, "the lock file")
        try:  # O_NOFOLLOW and a check of what was opened: a link planted after the check is refused too
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
        except OSError as e:
            if e.errno != errno.ELOOP:
                raise
            raise WriteError(
                f"the lock file {self.path}: is a symbolic link; crossrt's lock must be a regular "
                f"file of its own (remove it)",
                self.path,
            ) from None
        st = os.fstat(self.fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            os.close(self.fd)
            what = (
                f"has {st.st_nlink} names (a hard link)" if stat.S_ISREG(st.st_mode) else f"is {file_kind(st.st_mode)}"
            )
            raise WriteError(
                f"the lock file {self.path}: {what}; crossrt's lock must be a regular file of its own (remove it)",
                self.path,
            )
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = "".join(c for c in os.read(self.fd, 64).decode(errors="replace") if c.isdigit()) or "?"
            os.close(self.fd)
            raise Busy(
                f"{self.path.parent}: in use by another crossrt run (pid {owner}); wait for "
                f"it or give this run its own folder with --out"
            ) from None
        try:  # the holder before may have removed the file between our open and our lock
            same = os.stat(self.path).st_ino == st.st_ino
        except FileNotFoundError:
            same = False
        if not same:  # our lock is on a file no longer there: take the lock of the one that is
            os.close(self.fd)
            return self.__enter__()
        os.ftruncate(self.fd, 0)
        os.write(self.fd, str(os.getpid()).encode())
        return self

    def __exit__(self, *exc) -> None:
        # Removed while still held (so that the folder keeps no file of ours), then released: a run
        # that opened it meanwhile finds it gone once it holds the lock, and takes the new one's.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self.fd)


# ---------------------------------------------------------------------------- result files

KINDS = {"train": TrainResult, "bench-infer": BenchResult, "suite": SuiteResult, "loadgen": LoadgenResult}
# What the tables read from the free-form dicts inside results.
ENVIRONMENT = {"cpu_model": str | None, "cpu_cores": int | None, "hostname": str | None, "gpu": dict | None}
GPU = {"name": str}


def load_result(path: Path, kinds: tuple[str, ...] = tuple(KINDS)) -> Result:
    """A result file of one of `kinds`, typed, with every field the tables use, and every value
    they divide by, checked (so that a malformed file fails here, not half-way through a table);
    else a ResultError naming the file."""
    data = load_json(path)
    check_header(data, path, kinds)
    # A file from before run ids gets a stable one from its contents, the same at every reading.
    data.setdefault("run_id", hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:8])
    try:
        result = build(KINDS[data["kind"]], data, data["kind"])
        for part in parts(result):
            dict_has(part.environment, ENVIRONMENT, "environment")
            if part.environment.get("gpu"):
                dict_has(part.environment["gpu"], GPU, "environment['gpu']")
            for peak in [p for p in getattr(part, "peaks", [getattr(part, "peak", None)]) if p is not None]:
                if peak.tries is not None and peak.spread is None:  # the tables show a peak's tries with their spread
                    raise FieldError("peak has tries but no 'spread'")
                if not peak.peak > 0:  # % of peak divides by it
                    raise FieldError(f"peak.peak is {peak.peak!r}: a peak is above 0")
            if isinstance(part, TrainResult):
                for name in ("train_images", "valid_images"):  # the summary divides by them
                    if not getattr(part, name) > 0:
                        raise FieldError(f"{name} is {getattr(part, name)!r}: a run of no image")
            for run in part.runs if isinstance(part, BenchResult) else []:
                if not run.samples_per_s > 0:  # the tables divide by it (seconds per pass)
                    raise FieldError(f"runs[].samples_per_s is {run.samples_per_s!r}: a row that ran no sample")
            for run in part.runs if isinstance(part, LoadgenResult) else []:
                dict_has(run.latency_ms, dict.fromkeys(run.latency_ms, float), "latency_ms")  # not negative either
                dict_has(run.batches, dict.fromkeys(run.batches, int), "batches")
    except FieldError as e:  # what bad data raises; anything else is crossrt's own bug, and says so
        raise ResultError(f"{path}: a {data['kind']!r} result with missing or malformed fields ({e})") from None
    return result
