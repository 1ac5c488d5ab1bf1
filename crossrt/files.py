"""Files that are never half-written: atomic writes, the output-folder lock, JSON and result files in and out.

Every file goes through a temp file in the same folder and a rename, so a crash, a full disk
or Ctrl-C leaves either the old file or the new one, never a mix. A result file read back
(load_result) is checked against its dataclasses' types (crossrt.schema) before anything uses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from contextlib import contextmanager
from pathlib import Path

from .errors import Busy, CrossrtError, ResultError
from .results import BenchResult, Result, SuiteResult, TrainResult, parts
from .schema import build, check_header, dict_has

RESULTS_DIR = Path("results")


@contextmanager
def atomic_file(path: Path):
    """Yield a binary file that replaces `path` only when the block ends without an exception."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    # O_EXCL: never write through an existing file or link; mode 0o666 minus the umask, as open() would.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
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
    with atomic_file(path) as f:
        f.write(data.encode() if isinstance(data, str) else data)


def save_json(data: dict, path: Path | None, results_dir: Path | None = RESULTS_DIR) -> list[Path]:
    """Write data to path (if given) and a copy under results_dir named by the run's start and its
    run id (`bench-infer-20261201-201500-3fa9c2d1.json`), as `report` shows them; return the paths."""
    text = json.dumps(data, indent=2) + "\n"
    written = []
    if results_dir is not None:
        stamp = data["created"][:19].replace("-", "").replace(":", "").replace("T", "-")
        written.append(Path(results_dir) / f"{data['kind']}-{stamp}-{data['run_id']}.json")
    if path is not None:
        written.append(Path(path))
    for p in written:
        atomic_write(p, text)
    return written


def load_json(path: Path) -> dict:
    """A JSON object from a file; ResultError names the file and what is wrong with it."""
    path = Path(path)
    try:
        data = json.loads(regular_file(path, "result").read_text())
    except CrossrtError as e:
        raise ResultError(str(e)) from None
    except OSError as e:
        raise ResultError(f"{path}: cannot read ({e.strerror or e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ResultError(f"{path}: not valid JSON (truncated?): {e}") from None
    if not isinstance(data, dict):
        raise ResultError(f"{path}: not a crossrt result (no 'kind' field)")
    return data


class FolderLock:
    """An exclusive, non-blocking lock on a folder, so two runs never write the same exports/.

    flock is released by the kernel when the process dies, so a crash never leaves a stale lock.
    """

    def __init__(self, folder: Path):
        self.path = Path(folder) / ".crossrt.lock"
        self.fd = None

    def __enter__(self) -> "FolderLock":
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(self.fd, 64).decode(errors="replace").strip() or "?"
            os.close(self.fd)
            raise Busy(f"{self.path.parent}: in use by another crossrt run (pid {owner}); wait for "
                       f"it or give this run its own folder with --out") from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, str(os.getpid()).encode())
        return self

    def __exit__(self, *exc) -> None:
        os.close(self.fd)  # closing releases the lock


# ---------------------------------------------------------------------------- result files

KINDS = {"train": TrainResult, "bench-infer": BenchResult, "suite": SuiteResult}
# What the tables read from the free-form dicts inside results.
PEAK, PEAK_TRIES = {"peak": float}, {"tries": list[float], "spread": float}
SPLIT = {"h2d": float, "compute": float, "d2h": float}
OUTPUT = {"name": str, "max_abs": float | None, "max_rel": float | None, "top1": float | None, "ok": bool}
SKIPPED = {"runtime": str, "provider": str, "reason": str}
FAILED = {**SKIPPED, "threads": int, "batch_size": int, "io": str, "precision": str}
VERDICT = {"pick": str, "sure": bool, "unstable": list[str], "text": str}


def load_result(path: Path, kinds: tuple[str, ...] = tuple(KINDS)) -> Result:
    """A result file of one of `kinds`, typed, every figure the tables use derived once (so that a
    malformed file fails here, not half-way through a table); else a ResultError naming the file."""
    data = load_json(path)
    check_header(data, path, kinds)
    # A file from before run ids gets a stable one from its contents, the same at every reading.
    data.setdefault("run_id", hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:8])
    try:
        result = build(KINDS[data["kind"]], data, data["kind"])
        for part in parts(result):
            if isinstance(part, TrainResult):
                if part.peak is not None:
                    dict_has(part.peak, {**PEAK, **(PEAK_TRIES if "tries" in part.peak else {})}, "peak")
                part.summary()
            for spec, key in ((SKIPPED, "skipped"), (FAILED, "failed"), (VERDICT, "verdicts")):
                for d in getattr(part, key, []):
                    dict_has(d, spec, key)
            for run in getattr(part, "runs", []):
                if run.split_ms is not None:
                    dict_has(run.split_ms, SPLIT, "split_ms")
                for o in run.outputs or []:
                    dict_has(o, OUTPUT, "outputs")
                run.seconds_per_pass
        return result
    except (TypeError, KeyError, ValueError, AttributeError, IndexError, ZeroDivisionError) as e:
        raise ResultError(f"{path}: a {data['kind']!r} result with missing or malformed fields "
                          f"({type(e).__name__}: {e})") from None
