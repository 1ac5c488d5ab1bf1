"""Statistics from known samples, the repeat rule, and that measurement never imports rich."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from crossrt.timing import MIN_REPEAT_S, Latency, time_passes


def test_latency_from_known_samples():
    lat = Latency.from_values([0.001, 0.002, 0.003, 0.004])  # seconds in, ms out
    assert lat.mean == pytest.approx(2.5)
    assert lat.p50 == pytest.approx(2.5)
    assert lat.p90 == pytest.approx(3.7)  # numpy's linear interpolation
    assert lat.p99 == pytest.approx(3.97)
    assert lat.std == pytest.approx(np.std([1, 2, 3, 4]))
    assert lat.n == 4
    with pytest.raises(ValueError):
        Latency.from_values([])


def test_passes_repeat_until_both_limits():
    calls = []
    passes = time_passes(calls.append, 5, warmup=3, min_time=0.0, min_repeats=4)
    k = passes.passes_per_repeat
    assert k > 1 and len(passes.pass_times_s) == 4 and len(passes.batch_times_s) == 20 * k
    assert calls[:3] == [0, 1, 2]  # warm-up batches, untimed
    assert calls[3:] == list(range(5)) * (len(calls[3:]) // 5)  # sizing rounds, then the timed: whole passes, in order
    assert all(k * t >= MIN_REPEAT_S / 2 for t in passes.pass_times_s)  # no repeat near a scheduler tick
    slow = time_passes(lambda i: time.sleep(MIN_REPEAT_S), 2, warmup=0, min_time=0.05, min_repeats=1)
    assert slow.passes_per_repeat == 1 and slow.total_s >= 0.05


def test_measurement_does_not_import_rich():
    code = (
        "import sys, crossrt.timing, crossrt.results, crossrt.bench_infer, crossrt.runtimes.pytorch, crossrt.train, "
        "crossrt.suite, crossrt.compare; print('rich' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_bottleneck_follows_trtexec_rules():
    from crossrt.results import CudaSplit
    from crossrt.ui.bench import bottleneck

    # The H200 split of the issue (ms per batch of 100): compute 0.212 beats h2d 0.089.
    assert bottleneck(CudaSplit(h2d=0.089, compute=0.212, d2h=0.021))[0] == "compute-bound"
    assert bottleneck(CudaSplit(h2d=0.089, enqueue=0.170, compute=0.212, d2h=0.021))[0] == "launch-bound"
    assert bottleneck(CudaSplit(h2d=0.089, enqueue=0.169, compute=0.212, d2h=0.021))[0] == "compute-bound"
    assert bottleneck(CudaSplit(h2d=0.3, enqueue=0.01, compute=0.3, d2h=0.0))[0] == "transfer-bound"
    assert "CUDA graphs" in bottleneck(CudaSplit(h2d=0.0, enqueue=1.0, compute=1.0, d2h=0.0))[1]
