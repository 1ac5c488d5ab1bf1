"""The result file format: its versions, and reading any readable file back into a result.

Versions (written as `schema_version`):
  1  the first.
  2  a bench row's data path is `io` (it was `mode`, which now means only a suite's modes).
  3  samples, cv, ci95, stable and CPU cost on every timed row; spinning, isolation and math
     mode per bench row; the math mode and weights fingerprint of a training run; git_dirty.
  4  more runtimes: a bench row's precision and accuracy delta; the runtimes a bench skipped.
  5  data-parallel training: a training run's world_size and backend.
  6  CUDA graphs: a training run's setup_s (in total_s) and setup_parts.
  7  the cuda-graph data path of bench rows; a CUDA ORT row's node placement; enqueue in split_ms.
Every version is read; anything else (another kind, an unknown version, missing or malformed
fields) is refused in one line that names the file.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from pathlib import Path

from .errors import ResultError
from .files import load_json
from .results import BenchResult, Result, SuiteResult, TrainResult, parts

READABLE_SCHEMAS = (1, 2, 3, 4, 5, 6, 7)
KINDS = {"train": TrainResult, "bench-infer": BenchResult, "suite": SuiteResult}


KIND_OF = {"int": lambda v: isinstance(v, int) and not isinstance(v, bool),
           "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
           "str": lambda v: isinstance(v, str), "bool": lambda v: isinstance(v, bool),
           "dict": lambda v: isinstance(v, dict), "None": lambda v: v is None}


def _fits(value, annotation: str) -> bool:
    """Whether a loaded value is what the field's annotation says ("float | None", "list[str]", ...)."""
    for kind in annotation.split(" | "):
        if kind.startswith("list[") and isinstance(value, list):
            inner = kind[5:-1]
            if all(_fits(v, inner) if inner in KIND_OF else is_dataclass(v) for v in value):
                return True
        elif KIND_OF.get(kind, is_dataclass)(value):
            return True
    return False


def _typed(obj) -> None:
    """Every field of a result and of the dataclasses inside it holds a value of its annotated type."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        if not _fits(value, f.type):
            raise ValueError(f"{type(obj).__name__}.{f.name} is {value!r:.40}, expected {f.type}")
        for inner in value if isinstance(value, list) else [value]:
            if is_dataclass(inner):
                _typed(inner)


# The free-form dicts inside results, and what the tables read from them.
PEAK, PEAK_TRIES = {"peak": "float"}, {"tries": "list[float]", "spread": "float"}
SPLIT = {"h2d": "float", "compute": "float", "d2h": "float"}


def _dict_has(d: dict, spec: dict[str, str], where: str) -> None:
    for key, kind in spec.items():
        if key not in d or not _fits(d[key], kind):
            raise ValueError(f"{where}[{key!r}] is {d.get(key)!r:.40}, expected {kind}")


def _usable(result: Result) -> None:
    """Types checked, and every figure the tables use derived, so that a malformed file fails
    here, not half-way through a table."""
    _typed(result)
    for part in parts(result):
        if isinstance(part, TrainResult):
            if part.peak is not None:
                _dict_has(part.peak, {**PEAK, **(PEAK_TRIES if "tries" in part.peak else {})}, "peak")
            part.summary()
        for run in getattr(part, "runs", []):
            if run.split_ms is not None:
                _dict_has(run.split_ms, SPLIT, "split_ms")
            run.pass_s


def load_result(path: Path, kinds: tuple[str, ...] = tuple(KINDS)) -> Result:
    """A result file of one of `kinds`, typed; any other kind, schema or shape is a ResultError."""
    data = load_json(path)
    if "kind" not in data:
        raise ResultError(f"{path}: not a crossrt result (no 'kind' field)")
    if data["kind"] not in kinds:
        raise ResultError(f"{path}: is a {data['kind']!r} result, expected {' or '.join(map(repr, kinds))}")
    if data.get("schema_version") not in READABLE_SCHEMAS:
        raise ResultError(f"{path}: schema_version {data.get('schema_version')!r} is not supported "
                          f"(this crossrt reads versions {', '.join(map(str, READABLE_SCHEMAS))}); "
                          f"re-run to regenerate it")
    try:
        result = KINDS[data["kind"]].from_dict(data)
        _usable(result)
        return result
    except (TypeError, KeyError, ValueError, AttributeError, IndexError, ZeroDivisionError) as e:
        raise ResultError(f"{path}: a {data['kind']!r} result with missing or malformed fields "
                          f"({type(e).__name__}: {e})") from None
