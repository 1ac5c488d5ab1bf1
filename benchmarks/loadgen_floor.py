"""LoadGen Server's latency floor on this machine: what p99 a 1 ms bound leaves for the model.

Three systems under test at the same QPS, none of which runs a model:
- inline: completes each query inside LoadGen's issue callback (LoadGen and Python alone);
- sut: crossrt's Server path (crossrt.sut.SUT: queue, worker thread, batch timeout) over a runner
  that returns a ready output;
- sut, no timeout: the same with a batch timeout of 0.

Prints a Markdown table. A few tens of seconds.

    python benchmarks/loadgen_floor.py [--qps 132,1000,5000] [--duration 5]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from crossrt.sut import SUT, figures, loadgen, run_test


class Ready:
    """A runner whose outputs are ready: no model runs."""

    def __init__(self, feeds):
        self.out = [np.zeros((len(feed["x"]), 10), np.float32) for feed in feeds]

    def outputs(self, i: int):
        return [self.out[i]]


def settings(qps: float, duration_s: float) -> dict:
    return {
        "server_target_qps": qps,
        "min_duration_ms": int(duration_s * 1000),
        "min_query_count": 662,
        "server_target_latency_ns": 1_000_000,
    }


def inline(qps: float, duration_s: float) -> dict:
    lg, out = loadgen(), np.zeros(10, np.float32)

    def issue(ids, indices):
        lg.QuerySamplesComplete([lg.QuerySampleResponse(i, out.ctypes.data, out.nbytes) for i in ids])

    with tempfile.TemporaryDirectory() as d:
        return figures(run_test(issue, "Server", settings(qps, duration_s), Path(d), 1000), "Server", {})


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--qps", default="132,1000,5000")
    p.add_argument("--duration", type=float, default=5.0)
    args = p.parse_args()
    x = np.zeros((1000, 1, 28, 28), np.float32)
    print("| system under test | QPS | p50 ms | p90 ms | p99 ms | max ms | LoadGen |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for qps in map(float, args.qps.split(",")):
        for name, timeout in (("inline", None), ("sut, batch timeout 0.1 ms", 1e-4), ("sut, batch timeout 0", 0.0)):
            if timeout is None:
                f = inline(qps, args.duration)
            else:
                with tempfile.TemporaryDirectory() as d:
                    sut = SUT(Ready, {"x": x}, 100)
                    f = sut.test("Server", settings(qps, args.duration), Path(d), timeout_s=timeout)
            ms = f["latency_ms"]
            print(
                f"| {name} | {qps:,.0f} | {ms['p50']:.3f} | {ms['p90']:.3f} | {ms['p99']:.3f} | {ms['max']:.3f} | "
                f"{'VALID' if f['valid'] else 'INVALID'} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
