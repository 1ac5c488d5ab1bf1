"""The result file format: its versions, what every result carries (Record), and the two
directions between dataclasses and JSON.

Versions (written as `schema_version`):
  1  the first.
  2  a bench row's data path is `io` (it was `mode`, which now means only a suite's modes).
  3  samples, cv, ci95, stable and CPU cost on every timed row; spinning, isolation and math
     mode per bench row; the math mode and weights fingerprint of a training run; git_dirty.
  4  more runtimes: a bench row's precision and accuracy delta; the runtimes a bench skipped.
  5  data-parallel training: a training run's world_size and backend.
  6  CUDA graphs: a training run's setup_s (in total_s) and setup_parts.
  7  the cuda-graph data path of bench rows; a CUDA ORT row's node placement; enqueue in split_ms.
  8  a bench-infer result's settings are `config`, as in train and suite results.
  9  a bench-infer result's `failed` rows (a configuration that raised: its reason; the rest ran).
  10 any ONNX model: a bench row counts `samples` (`samples_per_s`; `images` before), its `outputs`
     compared with ONNX Runtime CPU fp32; a bench result's `model_info`, `flops_per_sample`
     (`flops_per_image` before, null when not counted), and a null dataset for generated inputs.
  11 every result's `run_id` (also in its file name); a bench result's `verdicts`.
  12 a new kind, `loadgen` (crossrt loadgen: MLPerf LoadGen's scenarios).
  13 a bench row's runtime `options` (its runtime module's Options, with --runtime-option's values);
     placement recorded for every ONNX Runtime row on an EP but the CPU's; a LoadGen test's
     `samples_per_query` (MultiStream) and the `user_settings` a --user-conf file set; a failed
     configuration's `spin` and a LoadGen test's runtime `options` (added within 13: null in the
     files of 13 written before them); `model_info.inputs` names where each input came from, and
     `model_info.inputs_sha256` is the --inputs file's digest, and a bench row's `passes_per_repeat`
     says how many passes each of its `pass_times_s` averages, an output comparison's `cosine` and
     `tolerance` (within 13: absent before); `model_info.precision`, the narrowest float the
     model computes in, which its outputs' tolerances follow, and `model_info.random_outputs`,
     the outputs that depend on a random draw, not compared (within 13: absent before).
Every version is read (crossrt.files.load_result); anything else is refused in one line.

Both directions follow the dataclasses' own annotations (typing.get_type_hints): `plain` writes
any dataclass with the derived figures its `summary()` gives, `build` reads one back, checking
every value against its field's type, so a field added to a result needs no word here.
"""

from __future__ import annotations

import secrets
import types
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path

from .errors import FieldError, ResultError
from .system import now_iso

SCHEMA_VERSION = 13  # what new files are written as
READABLE_SCHEMAS = tuple(range(1, SCHEMA_VERSION + 1))
# No figure crossrt measures comes near these (1e15 s is 30 million years, 1e15 images/s a
# billion GPUs): a number beyond them is a damaged or forged file, and would overflow the tables'
# arithmetic (1e308 + 1e308 is inf).
MAX_FLOAT = 1e15
MAX_INT = 2**63


@dataclass(kw_only=True)
class Record:
    """What every saved result carries besides its figures: whether it ran to the end, the
    process's peak memory, the machine and software, when, and the schema."""

    complete: bool = False
    peak_rss_mb: float | None = None
    environment: dict = field(default_factory=dict)
    created: str = field(default_factory=now_iso)  # when the run started
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))  # also in the result file's name
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict:
        """The JSON of the result: its fields, and every derived figure beside them."""
        return plain(self)


def check_header(data: dict, path: Path, kinds: tuple[str, ...]) -> None:
    """A crossrt result of one of `kinds`, in a version this crossrt reads; else a ResultError."""
    if "kind" not in data:
        raise ResultError(f"{path}: not a crossrt result (no 'kind' field)")
    if data["kind"] not in kinds:
        raise ResultError(f"{path}: is a {data['kind']!r} result, expected {' or '.join(map(repr, kinds))}")
    if data.get("schema_version") not in READABLE_SCHEMAS:
        raise ResultError(
            f"{path}: schema_version {data.get('schema_version')!r} is not supported "
            f"(this crossrt reads versions {', '.join(map(str, READABLE_SCHEMAS))}); "
            f"re-run to regenerate it"
        )


def plain(obj):
    """obj as JSON-ready values: a dataclass as a dict of its fields and of the derived figures its
    summary() gives (not the fields its __post_init__ makes, init=False; not a None in a field its
    class's `sparse` names, or in any field when `sparse` is True), tuples as lists, paths as strings."""
    if is_dataclass(obj) and not isinstance(obj, type):
        sparse = getattr(obj, "sparse", ())  # the fields a class leaves out when they are None
        d = {
            f.name: plain(getattr(obj, f.name))
            for f in fields(obj)
            if f.init  # init=False: derived, made again
            and not ((sparse is True or f.name in sparse) and getattr(obj, f.name) is None)
        }
        return {**d, **plain(obj.summary())} if hasattr(obj, "summary") else d
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return str(obj) if isinstance(obj, Path) else obj


def _wrong(where: str, value, hint) -> FieldError:
    shown = getattr(hint, "__name__", str(hint))
    return FieldError(f"{where} is {value!r:.40}, expected {shown}")


def _is_duration(name: str) -> bool:
    """A field in seconds or milliseconds (units are in the names: train_s, latency_ms): never negative."""
    return name.endswith(("_s", "_ms"))


def build(hint, value, where: str, duration: bool = False):
    """value (loaded JSON) as the type hint says: dataclasses built from dicts (keys that are not
    fields, such as derived figures, dropped; the old names in a class's `renamed` read as the new
    ones), every value checked: a Literal's one of its values, numbers finite and within
    MAX_FLOAT / MAX_INT, durations (fields named *_s, *_ms, and what they hold) not negative.
    FieldError names the first that does not fit, or a missing field."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for a in options[:-1]:
            try:
                return build(a, value, where, duration)
            except FieldError:
                continue
        return build(options[-1], value, where, duration)
    if origin is typing.Literal:
        if value not in args:
            raise FieldError(f"{where} is {value!r:.40}, expected one of {', '.join(map(repr, args))}")
        return value
    if is_dataclass(hint):
        if not isinstance(value, dict):
            raise _wrong(where, value, hint)
        value = {**{new: value[old] for old, new in getattr(hint, "renamed", {}).items() if old in value}, **value}
        hints, names = typing.get_type_hints(hint), {f.name for f in fields(hint) if f.init}
        required = [f.name for f in fields(hint) if f.init and f.default is MISSING and f.default_factory is MISSING]
        if missing := [k for k in required if k not in value]:
            raise FieldError(f"{where} has no {missing[0]!r}")
        return hint(
            **{
                k: build(hints[k], v, f"{where}.{k}", duration or _is_duration(k))
                for k, v in value.items()
                if k in names
            }
        )
    if origin is list:
        if not isinstance(value, list):
            raise _wrong(where, value, hint)
        return [build(args[0], v, f"{where}[{i}]", duration) for i, v in enumerate(value)]
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise _wrong(where, value, hint)
        return value
    ok = {
        float: lambda v: isinstance(v, (int, float)),  # JSON writes 2.0 as 2
        int: lambda v: isinstance(v, int),
        str: lambda v: isinstance(v, str),
        bool: lambda v: isinstance(v, bool),
        type(None): lambda v: v is None,
    }[hint]
    if not ok(value) or (hint is not bool and isinstance(value, bool)):
        raise _wrong(where, value, hint)
    if hint in (int, float):
        if not abs(value) <= (MAX_INT if hint is int else MAX_FLOAT):  # NaN and inf fail this too
            raise FieldError(f"{where} is {value!r:.40}, beyond any figure crossrt measures")
        if duration and value < 0:
            raise FieldError(f"{where} is {value!r:.40}: a duration cannot be negative")
    return value


def dict_has(d: dict, spec: dict[str, type], where: str) -> None:
    """A free-form dict inside a result holds the keys (of the types) that the tables read."""
    for key, hint in spec.items():
        build(hint, d.get(key), f"{where}[{key!r}]", _is_duration(key) or _is_duration(where))
