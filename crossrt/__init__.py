"""crossrt: LeNet5 on MNIST, trained in PyTorch and timed under PyTorch and ONNX Runtime.

The Python API is the config dataclasses in :mod:`crossrt.config` and the functions
:func:`crossrt.train.train`, :func:`crossrt.export.export_checked`,
:func:`crossrt.bench_infer.run_bench` and :func:`crossrt.suite.run_suite`, which return the
result dataclasses of :mod:`crossrt.results`; the CLI is a thin layer over them
(:func:`crossrt.cli.main`).
"""

__version__ = "0.1.0"
