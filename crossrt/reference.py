"""The reference every output is held against: ONNX Runtime's CPU execution provider, fp32, with
its default options and threads (untimed). Every runtime's outputs in bench-infer are compared with
its outputs on the same inputs; export's parity check and quantize's accuracy use its logits."""

from __future__ import annotations

import numpy as np

from .data import in_batches
from .errors import CrossrtError, ModelError
from .runtimes.base import all_logits
from .runtimes.onnxruntime import create_session, ort_reason, ort_runner

SCORING_BATCH = 1000  # batch of the untimed passes that score a model (parity, quantization)


def check(path) -> None:
    """The model loads on the reference: a file ONNX Runtime's CPU provider cannot load is a ModelError."""
    create_session(path, "cpu", 1)


def first_outputs(path, feed: dict) -> list:
    """Every output of one batch; a model that loads but cannot run it is a ModelError."""
    try:
        return outputs(path, [feed])[0]
    except CrossrtError:
        raise
    except Exception as e:  # ORT's own exception types
        raise ModelError(f"{path}: ONNX Runtime loads it but cannot run it: {ort_reason(e)}") from None


def outputs(path, feeds: list[dict]) -> list[list[np.ndarray]]:
    """Every output of every batch of feeds."""
    runner = ort_runner(path, "cpu", 0, "host", feeds)
    return [runner.outputs(i) for i in range(len(feeds))]


def logits(path, x: np.ndarray) -> np.ndarray:
    """The logits of x, an MNIST classifier's images, in batches of SCORING_BATCH."""
    name = create_session(path).get_inputs()[0].name
    feeds = [{name: b} for b in in_batches(x, SCORING_BATCH)]
    return all_logits(ort_runner(path, "cpu", 0, "host", feeds), len(feeds))
