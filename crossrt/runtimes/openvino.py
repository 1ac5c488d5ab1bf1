"""The OpenVINO runtime: it compiles the same .onnx file for the CPU.

Settings are explicit and recorded: INFERENCE_PRECISION_HINT (OpenVINO's CPU plugin defaults
to bf16 on CPUs that have it, so an fp32 row must ask for f32), INFERENCE_NUM_THREADS, and
the LATENCY hint (one stream: requests run one after another, as in every other row).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..timing import timed
from .base import Runner

PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16"}


def unavailable(provider: str) -> str | None:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return "not installed: pip install 'crossrt[openvino]'"
    return None


def runner(model: Path, row, batches: list[np.ndarray]) -> Runner:
    return openvino_runner(model, row.threads, row.precision, batches)


def precisions() -> tuple[str, ...]:
    """fp32 always; bf16 where the CPU plugin reports it (AVX-512 BF16, AMX)."""
    import openvino as ov

    caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return ("fp32", "bf16") if "BF16" in caps else ("fp32",)


def settings(threads: int, precision: str) -> dict:
    config = {"INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision], "PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    return config


def openvino_runner(model: Path, threads: int, precision: str, batches: list[np.ndarray]) -> Runner:
    import openvino as ov

    def compile_model():
        core = ov.Core()
        return core.compile_model(core.read_model(str(model)), "CPU", settings(threads, precision))

    compiled, create_s = timed(compile_model)
    request = compiled.create_infer_request()

    def run(i):
        request.infer({0: batches[i]})  # synchronous: returns when the results are there
        return request.get_output_tensor(0).data

    return Runner(run, lambda i: run(i).copy(), create_s, [f"OpenVINO CPU {ov.__version__}"],
                  int(compiled.get_property("INFERENCE_NUM_THREADS")))
