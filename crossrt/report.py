"""Result dataclasses, environment capture, and atomic JSON save/load.

Every result keeps its raw samples (per-epoch figures, per-batch latency statistics) and
its own settings and environment, so files from different machines can be merged. Derived
figures (totals, best accuracy, time to target) are computed in one place, ``summary()``,
and written beside the raw data. Every file goes through a temp file and a rename, so a
crash or Ctrl-C never leaves a half-written result or model.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

from .config import CrossrtError, cpu_count
from .timing import Latency

SCHEMA_VERSION = 1
RESULTS_DIR = Path("results")


class ResultError(CrossrtError):
    """A result JSON file that cannot be used."""


# ---------------------------------------------------------------------------- atomic files

_UMASK = os.umask(0o022)
os.umask(_UMASK)


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write to a temp file in the same folder, fsync, then rename over path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_json(data: dict, path: Path | None, results_dir: Path | None = RESULTS_DIR) -> list[Path]:
    """Write data to path (if given) and a timestamped copy under results_dir; return the paths."""
    text = json.dumps(data, indent=2) + "\n"
    written = []
    if results_dir is not None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        # The pid keeps two runs started in the same second from overwriting each other.
        written.append(Path(results_dir) / f"{data['kind']}-{stamp}-{os.getpid()}.json")
    if path is not None:
        written.append(Path(path))
    for p in written:
        atomic_write(p, text)
    return written


def load_json(path: Path, kind: str | tuple[str, ...]) -> dict:
    """Read a result file and check that it is a crossrt result of this kind (or kinds) and schema."""
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultError(f"{path}: no such file") from None
    except OSError as e:
        raise ResultError(f"{path}: cannot read ({e.strerror or e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ResultError(f"{path}: not valid JSON (truncated?): {e}") from None
    if not isinstance(data, dict) or "kind" not in data:
        raise ResultError(f"{path}: not a crossrt result (no 'kind' field)")
    if data["kind"] not in kinds:
        expected = " or ".join(repr(k) for k in kinds)
        raise ResultError(f"{path}: is a {data['kind']!r} result, expected {expected}")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ResultError(f"{path}: schema_version {data.get('schema_version')!r} is not supported "
                          f"(this crossrt reads version {SCHEMA_VERSION}); re-run to regenerate it")
    return data


# ---------------------------------------------------------------------------- environment

def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(*dists: str) -> str | None:
    for dist in dists:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "-uno"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def environment() -> dict:
    """What a result needs to be compared across machines. Imports nothing heavy itself:
    GPU and thread facts are read from torch only when the run already imported it."""
    env = {
        "hostname": platform.node(),
        "os": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_cores": cpu_count(),
        "cpu_logical": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "gpu": None,
        "python": platform.python_version(),
        "versions": {
            "crossrt": _version("crossrt"),
            "torch": _version("torch"),
            "onnx": _version("onnx"),
            "onnxruntime": _version("onnxruntime-gpu", "onnxruntime"),
            "numpy": _version("numpy"),
            "rich": _version("rich"),
        },
        "threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")},
        "git_commit": _git_commit(),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        env["threads"]["torch_intra_op"] = torch.get_num_threads()
        env["threads"]["torch_inter_op"] = torch.get_num_interop_threads()
        if torch.cuda.is_available():
            env["gpu"] = {"name": torch.cuda.get_device_name(0), "count": torch.cuda.device_count(),
                          "cuda": torch.version.cuda}
    ort = sys.modules.get("onnxruntime")
    if ort is not None:
        env["onnxruntime_providers"] = ort.get_available_providers()
    return env


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB, macOS bytes)."""
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (2**20 if sys.platform == "darwin" else 2**10)


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


# ---------------------------------------------------------------------------- train results

@dataclass
class EpochResult:
    """One epoch as the seed logs it: training loss and time, validation loss, accuracy, time."""

    epoch: int
    train_loss: float
    train_s: float
    valid_loss: float
    valid_accuracy: float
    valid_s: float
    lr: float


@dataclass
class OnnxParity:
    """The exported model and how closely ONNX Runtime (CPU) reproduces PyTorch on the test set."""

    path: str
    opset: int
    max_abs_diff: float
    top1_agreement: float
    images: int
    export_s: float


@dataclass
class TrainResult:
    dataset: str
    dataset_source: str
    device: str
    threads: int
    arch: str
    precision: str
    batch_size: int
    valid_batch_size: int
    train_images: int
    valid_images: int
    flops_per_image: int
    target_accuracy: float
    config: dict
    epochs: list[EpochResult] = field(default_factory=list)
    complete: bool = False
    onnx: OnnxParity | None = None
    checkpoint: str | None = None
    peak: dict | None = None  # measured fp32 GEMM peak on the same device/threads (crossrt.peak)
    peak_rss_mb: float | None = None
    tuning: dict = field(default_factory=dict)  # how the loop was made fast (no effect on the math)
    environment: dict = field(default_factory=dict)
    created: str = field(default_factory=now_iso)
    kind: str = "train"
    schema_version: int = SCHEMA_VERSION

    def summary(self) -> dict:
        """Every derived figure, from the per-epoch samples."""
        eps = self.epochs
        train_s = sum(e.train_s for e in eps)
        valid_s = sum(e.valid_s for e in eps)
        best = max(eps, key=lambda e: e.valid_accuracy) if eps else None
        hit = next((e for e in eps if e.valid_accuracy >= self.target_accuracy), None)
        # Training costs about 3x the forward FLOPs (forward, and backward for inputs and weights).
        gflops = 3 * self.flops_per_image * self.train_images * len(eps) / train_s / 1e9 if train_s else None
        return {
            "train_s": train_s,
            "valid_s": valid_s,
            "total_s": train_s + valid_s,
            "first_epoch_s": eps[0].train_s + eps[0].valid_s if eps else None,
            "steady_epoch_train_s": (sum(e.train_s for e in eps[1:]) / (len(eps) - 1)
                                     if len(eps) > 1 else (eps[0].train_s if eps else None)),
            "images_per_s": self.train_images * len(eps) / train_s if train_s else None,
            "train_gflops": gflops,
            "percent_of_peak": 100 * gflops / self.peak["peak"] if gflops and self.peak else None,
            "final_accuracy": eps[-1].valid_accuracy if eps else None,
            "best_accuracy": best.valid_accuracy if best else None,
            "best_epoch": best.epoch if best else None,
            "target_epoch": hit.epoch if hit else None,
            "target_s": (sum(e.train_s + e.valid_s for e in eps if e.epoch <= hit.epoch)
                         if hit else None),
        }

    def to_dict(self) -> dict:
        return {**asdict(self), **self.summary()}

    @classmethod
    def from_dict(cls, d: dict) -> "TrainResult":
        names = set(cls.__dataclass_fields__)
        kw = {k: v for k, v in d.items() if k in names}
        kw["epochs"] = [EpochResult(**e) for e in d.get("epochs", [])]
        kw["onnx"] = OnnxParity(**d["onnx"]) if d.get("onnx") else None
        return cls(**kw)


# ---------------------------------------------------------------------------- bench results

@dataclass
class InferRun:
    """One configuration of bench-infer: runtime x provider x threads x batch size (x CUDA mode)."""

    runtime: str
    provider: str
    mode: str  # "host" (CPU), "end-to-end" or "device-resident" (CUDA)
    threads: int  # as asked; 0 = the runtime's default
    threads_effective: int | None  # what PyTorch reports it uses (None: ORT does not say)
    batch_size: int
    images: int
    passes: int
    images_per_s: float
    gflops: float
    latency_ms: Latency
    session_create_s: float
    first_run_s: float
    accuracy: float
    loss: float
    providers: list[str]  # what really ran, read back from the session / device
    peak_gflops: float | None = None  # measured fp32 GEMM peak for this provider and thread count
    percent_of_peak: float | None = None
    top1_agreement: float | None = None  # against the PyTorch reference predictions
    parity_ok: bool | None = None
    split_ms: dict | None = None  # CUDA: per-batch host-to-device / compute / device-to-host


@dataclass
class BenchResult:
    model: str
    checkpoint: str | None
    dataset: str
    dataset_source: str
    flops_per_image: int
    settings: dict
    runs: list[InferRun] = field(default_factory=list)
    peaks: list[dict] = field(default_factory=list)
    peak_rss_mb: float | None = None
    complete: bool = False
    environment: dict = field(default_factory=dict)
    created: str = field(default_factory=now_iso)
    kind: str = "bench-infer"
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------- locking

class Busy(CrossrtError):
    """Another crossrt run holds the output folder."""


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


# ---------------------------------------------------------------------------- merging (crossrt report)

MERGE_KINDS = ("train", "bench-infer", "suite")
COLUMNS = ("machine", "kind", "mode", "runtime", "threads", "batch_size", "epochs", "train_s", "valid_s",
           "total_s", "images_per_s", "accuracy", "source")


def machine_of(result: dict, device: str = "cpu") -> str:
    """The machine a result ran on: its GPU for CUDA runs, else CPU model and core count."""
    env = result.get("environment") or {}
    if device == "cuda" and env.get("gpu"):
        return env["gpu"]["name"]
    return f"{env.get('cpu_model', '?')} ({env.get('cpu_cores', '?')} cores) @ {env.get('hostname', '?')}"


def pass_s(run: dict) -> float:
    """Seconds one validation pass takes in a bench-infer run (from its steady-state images/s)."""
    return run["images"] / run["images_per_s"]


def cost_rows(train: TrainResult, runs: list[dict]) -> list[tuple[str, float, float]]:
    """The seed's split, (label, training s, validation s): PyTorch inside `train`, then the
    same epochs' validation priced with each bench-infer configuration."""
    s, n = train.summary(), len(train.epochs)
    rows = [("PyTorch inside `train`", s["train_s"], s["valid_s"])]
    for run in runs:
        mode = "" if run["mode"] == "host" else f" {run['mode']}"
        rows.append((f"{run['runtime']} {run['provider']}{mode}, {run['threads'] or 'default'} thr, "
                     f"batch {run['batch_size']}", s["train_s"], n * pass_s(run)))
    return rows


def parts(result: dict) -> list[dict]:
    """The train and bench-infer results in a result file (a suite holds several)."""
    if result["kind"] != "suite":
        return [result]
    sweep = result.get("sweep") or {}
    found = [p for m in result["modes"] for p in (m.get("train"), m.get("bench"))]
    found += [*sweep.get("train", []), sweep.get("bench")]
    return [p for p in found if p]


def rows_of(result: dict, source: str) -> list[dict]:
    """Flat rows, one per training run or bench configuration, with COLUMNS as keys."""
    if result["kind"] == "suite":
        return [row for part in parts(result) for row in rows_of(part, source)]
    if result["kind"] == "train":
        r = TrainResult.from_dict(result)
        s = r.summary()
        return [{"machine": machine_of(result, r.device), "kind": "train",
                 "mode": f"{r.device} {r.precision}", "runtime": "pytorch (train)", "threads": r.threads,
                 "batch_size": r.batch_size, "epochs": len(r.epochs), "train_s": s["train_s"],
                 "valid_s": s["valid_s"], "total_s": s["total_s"], "images_per_s": s["images_per_s"],
                 "accuracy": s["final_accuracy"], "source": source}]
    return [{"machine": machine_of(result, run["provider"]), "kind": "bench-infer",
             "mode": run["provider"] if run["mode"] == "host" else f"{run['provider']} {run['mode']}",
             "runtime": run["runtime"], "threads": run["threads"], "batch_size": run["batch_size"],
             "epochs": None, "train_s": None, "valid_s": pass_s(run), "total_s": None,
             "images_per_s": run["images_per_s"], "accuracy": run["accuracy"], "source": source}
            for run in result["runs"]]


def load_results(paths: list[Path]) -> list[tuple[Path, dict]]:
    """Each file with its checked contents; any other kind or schema is a ResultError."""
    return [(Path(p), load_json(p, MERGE_KINDS)) for p in paths]


def merge(paths: list[Path], loaded: list[tuple[Path, dict]] | None = None) -> list[dict]:
    """Rows of every file, grouped by machine (stable within a machine)."""
    rows = [row for path, data in (loaded or load_results(paths)) for row in rows_of(data, str(path))]
    return sorted(rows, key=lambda r: r["machine"])


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.0f}" if abs(v) >= 1000 else f"{v:.4g}"
    return str(v)


def to_markdown(rows: list[dict], columns=COLUMNS) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r[c]).replace("|", "/") for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict], columns=COLUMNS) -> str:
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: "" if r[c] is None else r[c] for c in columns})
    return buf.getvalue()
