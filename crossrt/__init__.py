"""crossrt: LeNet5 on MNIST, trained in PyTorch and timed under ONNX Runtime, PyTorch and more runtimes.

The Python API is the config dataclasses in :mod:`crossrt.config` and the functions
:func:`crossrt.train.train`, :func:`crossrt.export.export_checked`,
:func:`crossrt.bench_infer.run_bench` (after :func:`crossrt.bench_infer.prepare`) and
:func:`crossrt.suite.run_suite`, which return the result dataclasses of :mod:`crossrt.results`
(:func:`crossrt.files.load_result` reads a saved one back); the runtimes are named in
:mod:`crossrt.runtimes.registry`. The CLI is a thin layer over them (:func:`crossrt.cli.main`).
"""

__version__ = "0.1.0"
