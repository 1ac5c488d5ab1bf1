"""The OpenVINO runtime: it compiles the same .onnx file for the CPU.

Settings are explicit and recorded: INFERENCE_PRECISION_HINT (OpenVINO's CPU plugin defaults
to bf16 on CPUs that have it, so an fp32 row must ask for f32), INFERENCE_NUM_THREADS, and
the LATENCY hint (one stream: requests run one after another, as in every other row). The model
is reshaped to the shapes it will be fed before it is compiled, as benchmark_app's -shape does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..checks import choice
from ..timing import timed
from .base import Runner

PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16"}
PERFORMANCE_HINTS = ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")


@dataclass(frozen=True)
class Options:
    """OpenVINO's settings of a row, each a `--runtime-option NAME=VALUE`."""

    performance_hint: str = "LATENCY"  # LATENCY: one stream, requests one after another, as in every other row

    def __post_init__(self) -> None:
        choice("--runtime-option performance_hint", self.performance_hint, PERFORMANCE_HINTS)


def unavailable(provider: str, options: Options) -> str | None:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return "not installed: pip install 'crossrt[openvino]'"
    return None


def cannot_run(model: Path, options: Options) -> str | None:
    try:
        stat = os.stat(model)
    except OSError:
        return None  # the command says what is wrong with the file
    if _strings(str(model), stat.st_mtime_ns, stat.st_size):
        import openvino as ov

        return (
            f"OpenVINO {ov.__version__.split('-')[0]} aborts the process on a model's string tensors "
            f"(`double free` when a request that held one is freed), so {model.name} is not run"
        )
    return None


@lru_cache(maxsize=16)
def _strings(path: str, mtime_ns: int, size: int) -> bool:
    """Whether the graph's inputs or outputs hold strings: read once per version of the file."""
    import onnx

    graph = onnx.load(path, load_external_data=False).graph
    return any(vi.type.tensor_type.elem_type == onnx.TensorProto.STRING for vi in (*graph.input, *graph.output))


def runner(model: Path, row, feeds: list[dict], options: Options) -> Runner:
    return openvino_runner(model, row.threads, row.precision, feeds, options)


def precisions(options: Options) -> tuple[str, ...]:
    """fp32 always; bf16 where the CPU plugin reports it (AVX-512 BF16, AMX)."""
    import openvino as ov

    caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return ("fp32", "bf16") if "BF16" in caps else ("fp32",)


def settings(threads: int, precision: str, options: Options = Options()) -> dict:
    config = {"INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision], "PERFORMANCE_HINT": options.performance_hint}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    return config


def fed_shapes(feeds: list[dict]) -> dict:
    """Each input's shape over the batches it will get: a dimension that varies between them (a
    last, smaller batch) stays dynamic (-1), the rest are fixed. The CPU plugin compiles no input of
    unknown rank, and fixed shapes compile to faster code."""
    import openvino as ov

    shapes = {}
    for name in feeds[0]:
        seen = {np.shape(f[name]) for f in feeds}
        shapes[name] = ov.PartialShape([dims[0] if len(set(dims)) == 1 else -1 for dims in zip(*seen)])
    return shapes


def openvino_runner(
    model: Path, threads: int, precision: str, feeds: list[dict], options: Options = Options()
) -> Runner:
    import openvino as ov

    def compile_model():
        core = ov.Core()
        graph = core.read_model(str(model))
        graph.reshape(fed_shapes(feeds))  # as benchmark_app's -shape: compiled for what it will be fed
        return core.compile_model(graph, "CPU", settings(threads, precision, options))

    compiled, create_s = timed(compile_model)
    request = compiled.create_infer_request()
    n_out = len(compiled.outputs)

    def run(i):
        request.infer(feeds[i])  # synchronous: returns when the results are there (inputs by name)

    def outputs(i):
        run(i)
        return [request.get_output_tensor(k).data.copy() for k in range(n_out)]

    return Runner(
        run, outputs, create_s, [f"OpenVINO CPU {ov.__version__}"], int(compiled.get_property("INFERENCE_NUM_THREADS"))
    )
