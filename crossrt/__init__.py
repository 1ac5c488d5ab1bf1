"""crossrt: LeNet5 on MNIST, trained in PyTorch and timed under PyTorch and ONNX Runtime.

The Python API is the config dataclasses in :mod:`crossrt.config` and the functions of
:mod:`crossrt.train`, :mod:`crossrt.export` and :mod:`crossrt.bench`; the CLI is a thin
layer over them (:func:`crossrt.cli.main`).
"""

__version__ = "0.1.0"
