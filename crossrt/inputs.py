"""What a model takes: its inputs read from the ONNX graph, bound to shapes by the flags, filled with data.

A model with an MNIST classifier's signature (crossrt's LeNet5 exports: one float input
[N, 1, 28, 28] and one output [N, 10]) is fed the dataset's test images, as the reference does,
and scored on their labels (crossrt.bench_infer). Any other model's inputs are read from its graph
(names, element types, shapes). Dynamic dimensions come in every form exporters write: a name
("batch", "height"), -1, "?", or nothing (a 0 is a dimension of length 0, as ONNX Runtime reads
it). The flags of crossrt.config.InputsConfig bind them:
--shape fixes one input, --dim binds a named dimension wherever it appears, the batch size binds
the first dimension of every input where it is dynamic (and only there), --inputs FILE.npz gives
the arrays themselves. A dimension still unknown is a one-line error naming the input, the
dimension and the flag to use. Generated inputs have a fixed seed: floats in [0, 1) or standard
normal; integers and booleans only from a value or a range the user gave, strings only from a
value, never garbage. A model with no inputs at all (a constant graph) is run as it is, one call a sample.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto

from .config import InputsConfig
from .data import IMAGE_SIZE, NUM_CLASSES, Dataset, in_batches, normalize
from .errors import ConfigError, ModelError
from .files import regular_file
from .system import available_memory

# The element types crossrt can feed and compare, as numpy dtypes.
DTYPES = {
    TensorProto.FLOAT: "float32",
    TensorProto.DOUBLE: "float64",
    TensorProto.FLOAT16: "float16",
    TensorProto.INT64: "int64",
    TensorProto.INT32: "int32",
    TensorProto.INT16: "int16",
    TensorProto.INT8: "int8",
    TensorProto.UINT8: "uint8",
    TensorProto.UINT16: "uint16",
    TensorProto.UINT32: "uint32",
    TensorProto.UINT64: "uint64",
    TensorProto.BOOL: "bool",
    TensorProto.STRING: "str",  # fed as numpy's unicode strings; ONNX Runtime hands back objects
}


@dataclass(frozen=True)
class Tensor:
    """An input or output as the graph declares it."""

    name: str
    dtype: str  # a numpy dtype name; "" for a type crossrt cannot feed (a string, a sequence, bfloat16)
    dims: tuple | None  # None: no shape in the graph; else per dimension an int, a name, or None (unknown)

    def shown(self, shape: tuple[int, ...] | None = None) -> str:
        """name dtype[dims], with the bound shape when given: `input float32[N=100, 1, 28, 28]`."""
        if self.dims is None and shape is None:
            return f"{self.name} {self.dtype or '?'}[no shape]"
        dims = self.dims if self.dims is not None else (None,) * len(shape)
        cells = [
            str(d) if isinstance(d, int) else f"{d or '?'}={shape[i]}" if shape else (d or "?")
            for i, d in enumerate(dims)
        ]
        return f"{self.name} {self.dtype or '?'}[{', '.join(cells)}]"


def _dims(t) -> tuple | None:
    if not t.HasField("shape"):
        return None
    return tuple(
        d.dim_value
        if d.HasField("dim_value") and d.dim_value >= 0
        # 0 is a dimension of length 0 (as ONNX Runtime reads it); -1 means unknown
        else (d.dim_param if d.HasField("dim_param") and d.dim_param not in ("?", "") else None)
        for d in t.shape.dim
    )


def load_model(path: Path) -> onnx.ModelProto:
    """The ONNX model at path, its weights left on disk; a file that is none is one line (protobuf
    reads an empty file as an empty model, which ONNX Runtime would call "no graph found")."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf's DecodeError, an OSError, ...
        raise ModelError(f"{path}: not an ONNX model ({type(e).__name__})") from None
    if not model.graph.node and not model.graph.output:
        raise ModelError(f"{path}: not an ONNX model (it holds no graph: {Path(path).stat().st_size:,} bytes)")
    return model


def signature(model: onnx.ModelProto) -> tuple[list[Tensor], list[Tensor]]:
    """The graph's inputs (initializers are weights, not inputs) and outputs."""
    weights = {init.name for init in model.graph.initializer}

    def tensor(vi) -> Tensor:
        t = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
        return Tensor(vi.name, DTYPES.get(t.elem_type, "") if t else "", _dims(t) if t else None)

    return [tensor(vi) for vi in model.graph.input if vi.name not in weights], [tensor(vi) for vi in model.graph.output]


def is_mnist_classifier(inputs: list[Tensor], outputs: list[Tensor]) -> bool:
    """One float input [N, 1, 28, 28] with a free N and one output [N, 10]: what the dataset's images feed."""
    if len(inputs) != 1 or len(outputs) != 1:
        return False
    x, y = inputs[0], outputs[0]
    return (
        x.dtype == "float32"
        and x.dims is not None
        and len(x.dims) == 4
        and not isinstance(x.dims[0], int)
        and tuple(x.dims[1:]) == (1, IMAGE_SIZE, IMAGE_SIZE)
        and y.dims is not None
        and len(y.dims) == 2
        and y.dims[1] == NUM_CLASSES
    )


def flags_given(cfg: InputsConfig) -> list[str]:
    """The flags set that only a model without a dataset takes."""
    return [
        flag
        for flag, v in (
            ("--dim", cfg.dims),
            ("--shape", cfg.shapes),
            ("--value", cfg.values),
            ("--inputs", cfg.inputs),
            ("--allow-non-finite", cfg.allow_non_finite),
        )
        if v
    ]


def check_flags(inputs: list[Tensor], cfg: InputsConfig) -> None:
    """Every input the flags name exists, and every named dimension appears somewhere."""
    if cfg.allow_non_finite and cfg.inputs is None:
        raise ConfigError("--allow-non-finite is for the values of an --inputs file; generated inputs are finite")
    names = {t.name for t in inputs}
    for flag, given in (("--shape", cfg.shape_map), ("--value", cfg.value_map), ("--input-range", cfg.range_map)):
        for name in given:
            if name not in names:
                raise ConfigError(
                    f"{flag} {name}: the model has no input {name!r} (its inputs: {', '.join(sorted(names))})"
                )
    dim_names = {d for t in inputs for d in (t.dims or ()) if isinstance(d, str)}
    for name in cfg.dim_map:
        if name not in dim_names:
            raise ConfigError(
                f"--dim {name}: no input has a dimension named {name!r} "
                f"(named: {', '.join(sorted(dim_names)) or 'none'})"
            )
    for t in inputs:
        if not t.dtype:
            raise ConfigError(
                f"input {t.name!r}: not a tensor of a type crossrt can feed (it feeds numbers, booleans and "
                f"strings; a sequence, a map or bfloat16 is not one)"
            )
        if t.name in cfg.value_map and (why := _unfit(cfg.value_map[t.name], np.dtype(t.dtype))):
            raise ConfigError(f"--value {t.name}={cfg.value_text[t.name]}: {why}")
        if t.name in cfg.range_map:
            low, high = cfg.range_map[t.name]
            dtype = np.dtype(t.dtype)
            if dtype.kind == "U":
                why = f"{t.name} takes strings, which have no range (give --value {t.name}=TEXT or --inputs)"
            elif dtype.kind in "iub":  # the integers n with LOW <= n < HIGH are drawn
                first, last = math.ceil(low), math.ceil(high) - 1
                why = f"holds no integer, and {t.name} is {t.dtype}" if first > last else None
                why = why or _unfit(first, dtype) or _unfit(last, dtype)
            else:
                why = _unfit(low, dtype) or _unfit(high, dtype)
                if not why and not math.isfinite(float(high) - float(low)):  # numpy draws low + (high - low) * u
                    why = "is wider than a float can hold (HIGH - LOW overflows)"
            if why:
                raise ConfigError(f"--input-range {t.name}={low}:{high}: {why}")
        if (
            t.dtype not in ("float32", "float64", "float16")
            and t.name not in cfg.value_map
            and t.name not in cfg.range_map
            and cfg.inputs is None
        ):
            give = (
                f"--value {t.name}=TEXT" if t.dtype == "str" else f"--value {t.name}=V, --input-range {t.name}=LOW:HIGH"
            )
            raise ConfigError(
                f"input {t.name!r} is {t.dtype}: crossrt does not make up {t.dtype} values; give them "
                f"with {give} or --inputs FILE.npz"
            )


def table_rows(model: onnx.ModelProto, inputs: list[Tensor]) -> dict[str, int]:
    """{integer input: rows} for the inputs the graph bounds: indices into a Gather's table (an
    embedding's rows) must lie in [0, rows), the smallest table where one indexes several."""
    tables = {init.name: tuple(init.dims) for init in model.graph.initializer}
    ints = {t.name: np.iinfo(t.dtype).max for t in inputs if t.dtype and np.dtype(t.dtype).kind in "iu"}
    found: dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type == "Gather" and len(node.input) == 2 and node.input[1] in ints and node.input[0] in tables:
            dims, axis = tables[node.input[0]], next((a.i for a in node.attribute if a.name == "axis"), 0)
            if dims and -len(dims) <= axis < len(dims) and dims[axis] > 0:
                found[node.input[1]] = min(dims[axis], found.get(node.input[1], dims[axis]))
    return {name: n for name, n in found.items() if n - 1 <= ints[name]}  # a table its type can index


def use_graph_ranges(feed: InputsConfig, rows: dict[str, int]) -> None:
    """The integer inputs given no --value, --input-range or --inputs whose values the graph bounds
    (table_rows) are drawn from [0, rows): recorded in feed.range_map, named in feed.from_graph
    (described() says so)."""
    if feed.inputs is not None:
        return
    for name, n in rows.items():
        if name not in feed.value_map and name not in feed.range_map:
            feed.range_map[name] = (0, n)
            feed.from_graph.add(name)


def _unfit(value: float | int | str, dtype: np.dtype) -> str | None:
    """Why value cannot be held by an input of dtype (it would overflow or be cut), or None."""
    if dtype.kind == "U":
        return None  # any text is a string (--value's own text, not the number it may look like)
    if isinstance(value, str):
        return f"not a number, and the input is {dtype}"
    if dtype.kind == "b":
        return None if value in (0, 1) else f"a {dtype} input takes 0 or 1"
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if value != int(value):
            return f"not an integer, and the input is {dtype}"
        return None if info.min <= value <= info.max else f"outside {dtype}'s range {info.min}..{info.max}"
    limit = float(np.finfo(dtype).max)
    return None if abs(value) <= limit else f"beyond {dtype}'s largest value ({limit:g})"


def bind(inputs: list[Tensor], cfg: InputsConfig, batch: int | None) -> dict[str, tuple[int, ...]]:
    """Each input's shape with every dimension known. `batch` binds the first dimension of every
    input where it is dynamic; a named dimension is bound by --dim, a whole shape by --shape."""
    shapes, unbound = {}, []
    for t in inputs:
        if t.name in cfg.shape_map:
            shape = cfg.shape_map[t.name]
            if t.dims is not None and (
                len(t.dims) != len(shape) or any(isinstance(d, int) and d != s for d, s in zip(t.dims, shape))
            ):
                raise ConfigError(f"--shape {t.name}={'x'.join(map(str, shape))}: the graph says {t.shown()}")
            shapes[t.name] = shape
            continue
        if t.dims is None:
            raise ConfigError(f"input {t.name!r} has no shape in the graph: give it with --shape {t.name}=AxBx...")
        bound = []
        for i, d in enumerate(t.dims):
            if isinstance(d, int):
                bound.append(d)
            elif d in cfg.dim_map:
                bound.append(cfg.dim_map[d])
            elif i == 0 and batch is not None:
                bound.append(batch)
            else:
                unbound.append((t, i, d))
                bound.append(None)
        shapes[t.name] = tuple(bound)
    if unbound:  # every one at once, so that the next try binds them all
        named = list(dict.fromkeys(d for _, _, d in unbound if d))
        use = [f"--dim {','.join(f'{n}=N' for n in named)}"] if named else []
        use += dict.fromkeys(
            f"--shape {t.name}={'x'.join(str(x or 'N') for x in t.dims)}" for t, _, d in unbound if not d
        )
        where = "; ".join(dict.fromkeys(t.shown() for t, _, _ in unbound))
        what = ", ".join(named + [f"dimension {i} of {t.name}" for t, i, d in unbound if not d])
        raise ConfigError(f"not bound: {what} (of {where}): use {' and '.join(use)}")
    agree(inputs, shapes, "--shape", cfg.dim_map)
    return shapes


def samples_per_batch(inputs: list[Tensor], shapes: dict[str, tuple[int, ...]]) -> int:
    """A sample is one item of the batch dimension: the first dimension of the first input that has
    one. A batch of none (a dimension of 0, which ONNX Runtime runs) or a model with no inputs counts
    each call as one sample, so that its rate is its calls a second."""
    return next((shapes[t.name][0] for t in inputs if shapes[t.name]), 1) or 1


def batch_bytes(inputs: list[Tensor], shapes: dict[str, tuple[int, ...]]) -> int:
    return sum(int(np.prod(shapes[t.name], dtype=np.float64)) * np.dtype(t.dtype).itemsize for t in inputs)


def generate(
    inputs: list[Tensor], shapes: dict[str, tuple[int, ...]], cfg: InputsConfig, n: int
) -> list[dict[str, np.ndarray]]:
    """n batches of inputs from a fixed seed: --value, --input-range, else floats in [0, 1) or normal."""
    return list(generated(inputs, shapes, cfg, n))


def generated(inputs: list[Tensor], shapes: dict[str, tuple[int, ...]], cfg: InputsConfig, n: int):
    """generate()'s batches one at a time, for a consumer that needs only one in memory (calibration)."""
    rng = np.random.default_rng(cfg.input_seed)
    for _ in range(n):
        feed = {}
        for t in inputs:
            shape, dtype = shapes[t.name], np.dtype(t.dtype)
            if t.name in cfg.value_map and dtype.kind == "U":
                feed[t.name] = np.full(shape, cfg.value_text[t.name])
            elif t.name in cfg.value_map:
                feed[t.name] = np.full(shape, cfg.value_map[t.name], dtype=dtype)
            elif t.name in cfg.range_map:
                low, high = cfg.range_map[t.name]
                values = (
                    rng.integers(math.ceil(low), math.ceil(high), shape)  # the integers in [LOW, HIGH)
                    if dtype.kind in "iub"
                    else rng.uniform(low, high, shape)
                )
                feed[t.name] = values.astype(dtype)
            else:
                values = rng.standard_normal(shape) if cfg.distribution == "normal" else rng.random(shape)
                feed[t.name] = values.astype(dtype)
        yield feed


def _header(z: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[str, tuple, np.dtype]:
    """An .npz member's array name, shape and dtype, from its .npy header alone."""
    with z.open(info) as member:
        version = np.lib.format.read_magic(member)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(member)
    return info.filename.removesuffix(".npy"), shape, dtype


def stored_dtypes(path: Path) -> dict[str, str]:
    """{array name: dtype} of an .npz file read by read_npz, from the headers alone."""
    with zipfile.ZipFile(path) as z:
        return {name: str(dtype) for name, _, dtype in (_header(z, info) for info in z.infolist())}


def read_npz(path: Path, non_finite: bool = False) -> dict[str, np.ndarray]:
    """The arrays of an .npz file (a zip of .npy members, as numpy.savez writes), each member's
    header checked against the bytes it holds before anything is allocated; every fault of the
    file (not a zip, a plain .npy, cut short, a bad CRC, a header that claims more than the
    member holds, NaN or infinity unless non_finite) is one line naming it."""
    where = f"--inputs {path}"
    try:
        with open(path, "rb") as f:
            if f.read(6) == b"\x93NUMPY":
                raise ConfigError(
                    f"{where}: a single .npy array; crossrt reads an .npz, one array per input name "
                    f"(numpy.savez(FILE, NAME=array, ...))"
                )
        with zipfile.ZipFile(path) as z:
            arrays = {}
            for info in z.infolist():
                name, shape, dtype = _header(z, info)
                claims = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if dtype.hasobject or claims > info.file_size:
                    why = (
                        "holds Python objects"
                        if dtype.hasobject
                        else (f"its header claims {claims:,} bytes, the file holds {info.file_size:,}")
                    )
                    raise ConfigError(f"{where}: array {name!r} {why}; not an array crossrt can feed")
                if (have := available_memory("cpu")) is not None and claims > have:
                    raise ConfigError(
                        f"{where}: array {name!r} needs {claims / 2**30:,.1f} GiB, more than the "
                        f"{have / 2**30:,.1f} GiB of memory available"
                    )
                with z.open(info) as member:  # from its start again, now that its size is known
                    arrays[name] = np.lib.format.read_array(member, allow_pickle=False)
    except ConfigError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile) as e:
        raise ConfigError(f"{where}: not a readable .npz file ({type(e).__name__}: {str(e)[:160]})") from None
    for name, a in arrays.items():
        if not non_finite and a.dtype.kind in "fc" and not np.isfinite(a).all():
            raise ConfigError(
                f"{where}: array {name!r} holds NaN or infinity; crossrt feeds finite values "
                f"(--allow-non-finite if the model is meant to take them)"
            )
    return arrays


def from_file(
    inputs: list[Tensor], path: Path, rows: dict[str, int] | None = None, non_finite: bool = False
) -> dict[str, np.ndarray]:
    """The arrays of --inputs FILE.npz, one per input name, of the input's type; an index into a
    table of the graph (rows: table_rows) that lies outside it is refused here, not by the runtime."""
    arrays = read_npz(path, non_finite)
    names = [t.name for t in inputs]
    if missing := [n for n in names if n not in arrays]:
        raise ConfigError(
            f"--inputs {path}: no array for input(s) {', '.join(missing)} (it holds "
            f"{', '.join(sorted(arrays)) or 'none'})"
        )
    if extra := sorted(set(arrays) - set(names)):
        raise ConfigError(f"--inputs {path}: the model has no input(s) {', '.join(extra)}")
    for t in inputs:
        a = arrays[t.name]
        if t.dims is not None and (
            len(t.dims) != a.ndim or any(isinstance(d, int) and d != s for d, s in zip(t.dims, a.shape))
        ):
            raise ConfigError(f"--inputs {path}: {t.name} is {a.dtype}{list(a.shape)}, the graph says {t.shown()}")
        if np.dtype(t.dtype).kind != a.dtype.kind and not (np.dtype(t.dtype).kind == "f" and a.dtype.kind in "iu"):
            raise ConfigError(f"--inputs {path}: {t.name} is {a.dtype}, the model takes {t.dtype}")
        arrays[t.name] = a.astype(t.dtype, copy=False)
        if t.name in (rows or {}) and a.size and (a.min() < -rows[t.name] or a.max() >= rows[t.name]):
            raise ConfigError(  # Gather takes -rows..rows-1, counting from the end below 0
                f"--inputs {path}: {t.name} holds values from {a.min()} to {a.max()}, and the table of the "
                f"graph it indexes (Gather) has {rows[t.name]:,} rows (-{rows[t.name]} to {rows[t.name] - 1})"
            )
    agree(inputs, {n: a.shape for n, a in arrays.items()}, f"--inputs {path}")
    return {t.name: arrays[t.name] for t in inputs}  # in the graph's order, whatever the file's


def agree(inputs: list[Tensor], shapes: dict[str, tuple], where: str, dims: dict[str, int] | None = None) -> None:
    """A dimension the graph names alike in several inputs has one size in all of them (and the
    size --dim gives it), checked before any runtime turns a mismatch into a broadcast error."""
    seen = {d: ("--dim", n) for d, n in (dims or {}).items()}
    for t in inputs:
        for i, d in enumerate(t.dims or ()):
            if isinstance(d, str) and i < len(shapes.get(t.name, ())):
                who, size = seen.setdefault(d, (t.name, shapes[t.name][i]))
                if size != shapes[t.name][i]:
                    raise ConfigError(
                        f"{where}: {who} gives {d}={size} but {t.name} has {d}={shapes[t.name][i]}; the graph "
                        f"names both dimensions {d!r}, so they must agree"
                    )


def described(inputs: list[Tensor], feed: InputsConfig, shapes: list[dict[str, tuple]]) -> list[str]:
    """Each input as bound (a dim bound to several sizes, one per batch size, shows them all) and
    where its values come from: the --inputs file (and any conversion to the input's type), --value,
    --input-range, or the generator and its seed."""
    stored = stored_dtypes(feed.inputs) if feed.inputs is not None else {}
    out = []
    for t in inputs:
        sizes = [s[t.name] for s in shapes if t.name in s]
        bound = tuple(",".join(map(str, dict.fromkeys(d))) for d in zip(*sizes)) if sizes else None
        source = _source(t, feed, stored)
        if t.name in feed.from_graph:
            source += "; the range of the table it indexes (Gather), from the graph"
        out.append(f"{t.shown(bound)} ({source})")
    return out


def _source(t: Tensor, feed: InputsConfig, stored: dict[str, str]) -> str:
    """Where an input's values come from, in words."""
    if feed.inputs is not None:
        was = stored.get(t.name, t.dtype)
        return f"from {feed.inputs.name}" + (f", {was} converted to {t.dtype}" if was != t.dtype else "")
    if t.name in feed.value_map:
        return f"all {feed.value_text[t.name]!r}" if t.dtype == "str" else f"all {feed.value_map[t.name]}"
    if t.name in feed.range_map:
        low, high = feed.range_map[t.name]
        kind = "uniform integers" if np.dtype(t.dtype).kind in "iub" else "uniform"
        return f"{kind} in [{low:g}, {high:g}), seed {feed.input_seed}"
    return f"{'normal' if feed.distribution == 'normal' else 'uniform in [0, 1)'}, seed {feed.input_seed}"


def identity(inputs: list[Tensor], feed: InputsConfig, shapes: dict[str, tuple], digest: str | None) -> str:
    """What a model was fed, as compare and report tell configurations apart: each input's shape
    as bound, its batch dimension left out (the batch size is a column of its own), and where its
    values come from (an --inputs file by its digest). The same for the same tensors however the
    flags said it (`--dim batch=8` or `--batch-size 8`)."""
    words = []
    for t in inputs:
        shape = shapes[t.name]
        dims = ["B" if i == 0 and t.dims and not isinstance(t.dims[0], int) else str(d) for i, d in enumerate(shape)]
        source = f"file {digest[:12]}" if feed.inputs is not None and digest else _source(t, feed, {})
        words.append(f"{t.name}[{'x'.join(dims)}] {source}")
    return "; ".join(words)


def graphs(graph: onnx.GraphProto):
    """A graph and every subgraph of its nodes (If, Loop, Scan), depth first."""
    yield graph
    for node in graph.node:
        for a in node.attribute:
            for g in (a.g,) if a.HasField("g") else a.graphs:
                yield from graphs(g)


def _tensors(graph: onnx.GraphProto):
    """(what, tensor) for every tensor a graph holds: its weights, sparse weights' parts, and the
    values of its nodes' attributes (a Constant's)."""
    for t in graph.initializer:
        yield f"weight {t.name!r}", t
    for s in graph.sparse_initializer:
        yield f"sparse weight {s.values.name!r}", s.values
        yield f"sparse weight {s.values.name!r}", s.indices
    for node in graph.node:
        for a in node.attribute:
            for t in (a.t,) * a.HasField("t") + tuple(a.tensors):
                yield f"attribute {a.name!r} of node {node.name or node.op_type!r}", t


def check_external_data(model_path: Path, model: onnx.ModelProto) -> None:
    """An external-data file outside the model's folder is refused, for every tensor of the model
    (weights, sparse weights, a Constant's value, in subgraphs too): a model file must not read
    whatever it names on this machine."""
    folder = model_path.resolve().parent
    for graph in graphs(model.graph):
        for what, t in _tensors(graph):
            if t.data_location == TensorProto.EXTERNAL:
                where = next((e.value for e in t.external_data if e.key == "location"), "")
                target = (folder / where).resolve()
                if folder not in target.parents:
                    raise ModelError(f"{model_path}: {what} names external data {where!r}, outside the model's folder")


@dataclass
class Workload:
    """What one batch size's timed pass runs: its batches, its samples and, for a dataset, the labels."""

    feeds: list[dict[str, np.ndarray]]
    samples: int
    labels: np.ndarray | None = None


def bind_batches(
    feed: InputsConfig, batch_sizes: tuple[int, ...] | None, path, sig, rows: dict[str, int] | None = None
) -> dict[int, dict[str, tuple[int, ...]]]:
    """{batch size: {input: shape}} for a model without a dataset; errors name the input and the
    flag. rows: the graph's bounds on its integer inputs (table_rows), checked in an --inputs file."""
    ins = sig[0]
    if not ins:  # a constant graph: each call computes the same outputs, a sample each
        if given := flags_given(feed) + ["--batch-size"] * bool(batch_sizes):
            raise ConfigError(f"{given[0]}: {path} has no inputs (a graph of constants), so nothing to feed or batch")
        return {1: {}}
    check_flags(ins, feed)
    if feed.inputs is not None:
        ranged = ["--input-range"] * bool(feed.range_map or feed.distribution != "uniform")
        if shaped := [f for f in flags_given(feed) if f not in ("--inputs", "--allow-non-finite")] + ranged:
            raise ConfigError(
                f"{shaped[0]}: --inputs {feed.inputs} gives every input's shape and values; {shaped[0]} is for "
                f"generated inputs (drop one or the other)"
            )
        arrays = from_file(ins, regular_file(feed.inputs, "--inputs"), rows, feed.allow_non_finite)
        shapes = {t.name: arrays[t.name].shape for t in ins}
        size = samples_per_batch(ins, shapes)
        if batch_sizes and tuple(batch_sizes) != (size,):
            raise ConfigError(
                f"--batch-size {','.join(map(str, batch_sizes))}: --inputs {feed.inputs} holds batches of {size} "
                f"(drop --batch-size, or save the inputs at the batch size wanted)"
            )
        return {size: shapes}
    out = {}
    for batch in batch_sizes or (1,):
        shapes = bind(ins, feed, batch)
        size = samples_per_batch(ins, shapes)
        if batch_sizes and size != batch:
            first = next((t.dims[0] for t in ins if t.dims), None)
            if isinstance(first, str) and first in feed.dim_map:
                raise ConfigError(
                    f"--batch-size {batch}: --dim {first}={feed.dim_map[first]} binds the batch dimension too "
                    f"(give one of them)"
                )
            raise ConfigError(f"--batch-size {batch}: the first dimension of {ins[0].shown()} is fixed at {size}")
        need, have = feed.batches_per_pass * batch_bytes(ins, shapes), available_memory("cpu")
        if have is not None and need > have // 2:
            raise ConfigError(
                f"--batch-size {batch} with {', '.join(t.shown(shapes[t.name]) for t in ins)}: a pass "
                f"of {feed.batches_per_pass} batches needs {need / 2**30:.1f} GiB of inputs, "
                f"{have / 2**30:.1f} GiB is free (lower --batch-size, --dim or --batches-per-pass)"
            )
        out[size] = shapes
    return out


def _nbytes(output) -> int:
    return sum(map(_nbytes, output)) if isinstance(output, (list, tuple)) else np.asarray(output).nbytes


def check_pass_memory(feed: InputsConfig, inputs: list[Tensor], shapes: dict, first: list) -> None:
    """A pass keeps every batch's outputs twice (the reference's, and the row's being compared with
    them) beside its inputs: refused when that is more than half the free memory, as the inputs
    alone are in bind_batches. first: every output of one batch of the first batch size, whose
    size per sample is taken to scale with the batch."""
    have = available_memory("cpu")
    if have is None or not shapes:
        return
    batch0 = next(iter(shapes))
    per_sample = sum(map(_nbytes, first)) / max(1, samples_per_batch(inputs, shapes[batch0]))
    for batch, shape in shapes.items():
        size = samples_per_batch(inputs, shape)
        ins = 0 if feed.inputs is not None else batch_bytes(inputs, shape)  # a file's arrays are one copy
        need = feed.batches_per_pass * (ins + 2 * per_sample * size)
        if need > have // 2:
            raise ConfigError(
                f"--batch-size {batch}: a pass of {feed.batches_per_pass} batches keeps {need / 2**30:.1f} GiB of "
                f"outputs and inputs ({per_sample * size / 2**20:,.1f} MiB of outputs a batch, kept twice to "
                f"compare them), {have / 2**30:.1f} GiB is free (lower --batches-per-pass or --batch-size)"
            )


def feeds(feed: InputsConfig, sig, shapes: dict, batch: int, n: int | None = None) -> Workload:
    """A model without a dataset: n (or --batches-per-pass) batches of generated inputs, or --inputs."""
    ins = sig[0]
    n = n or feed.batches_per_pass
    if feed.inputs is not None:
        made = [from_file(ins, feed.inputs, non_finite=feed.allow_non_finite)] * n  # the same arrays, n batches
    else:
        made = generate(ins, shapes[batch], feed, n)
    return Workload(made, n * samples_per_batch(ins, shapes[batch]))


def workload(cfg, prepared, batch: int, data: Dataset | None) -> Workload:
    """The batches one batch size's pass runs: the dataset's test images, or the model's own inputs."""
    if not prepared.mnist:
        return feeds(cfg.feed, prepared.signature, prepared.shapes, batch)
    name = prepared.signature[0][0].name
    x = np.ascontiguousarray(normalize(data.test_images))
    return Workload([{name: b} for b in in_batches(x, batch)], len(x), data.test_labels.astype(np.int64))
