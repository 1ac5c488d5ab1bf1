"""crossrt: LeNet5 on MNIST, trained in PyTorch and timed under ONNX Runtime, PyTorch and more runtimes.

The Python API is the config dataclasses in :mod:`crossrt.config` and the functions
:func:`crossrt.train.train`, :func:`crossrt.export.export_checked`,
:func:`crossrt.bench_infer.run_bench` (after :func:`crossrt.bench_infer.prepare`) and
:func:`crossrt.suite.run_suite`, which return the result dataclasses of :mod:`crossrt.results`
(:func:`crossrt.files.load_result` reads a saved one back); the runtimes are named in
:mod:`crossrt.runtimes.registry`. The CLI is a thin layer over them (:func:`crossrt.cli.main`).
"""

import os
import sys

__version__ = "0.1.0"

# Read by torch once, when it loads: its CPU allocator then page-aligns its buffers and asks for
# huge pages for those of 2 MB and more. Measured on the training step (benchmarks/profile_step.py),
# the step's large activation buffers are then reused from one step to the next instead of being
# faulted in anew each time. Set THP_MEM_ALLOC_ENABLE=0 to opt out; crossrt.system says what held.
if "torch" not in sys.modules:
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
