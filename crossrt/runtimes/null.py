"""The null runtime: no model runs. Its runner returns zeros of the model's output shapes at once.

What it times is crossrt's own harness: the loop, the clock reads, LoadGen's issue and response
path, the batching of the SUT. MLPerf's reference harness has a null backend for the same reason:
to measure and test the harness without a model's cost in it. Its outputs are not the model's,
so they are not compared with ONNX Runtime's, and it is never a verdict's pick; `--runtimes all`
leaves it out. The output shapes are learned at build time (a cold cost) by running ONNX
Runtime's CPU provider once per distinct input shape.
"""

from __future__ import annotations

import numpy as np

from ..timing import timed
from .base import Runner
from .options import NoOptions as Options


def unavailable(provider: str, options: Options) -> str | None:
    return None


def precisions(options: Options) -> tuple[str, ...]:
    return ("fp32",)


def _shapes(feed: dict) -> tuple:
    return tuple((name, np.shape(x)) for name, x in feed.items())


def runner(model, row, feeds: list[dict], options: Options) -> Runner:
    from .onnxruntime import create_session, run_options

    def zeros() -> dict:
        session, made = create_session(model, "cpu", 1), {}
        for feed in feeds:
            if (key := _shapes(feed)) not in made:
                made[key] = [np.zeros_like(np.asarray(o)) for o in session.run(None, feed, run_options())]
        return made

    made, create_s = timed(zeros)
    keys = [_shapes(f) for f in feeds]

    def outputs(i: int) -> list[np.ndarray]:
        return made[keys[i]]

    return Runner(lambda i: None, outputs, create_s, ["null (no model runs)"], row.threads or None)
