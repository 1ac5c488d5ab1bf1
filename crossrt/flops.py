"""FLOPs of one forward pass per image, counted twice independently: from the torch model
(hooks on a real forward pass) and from the ONNX graph (shape inference). A test holds them equal.

Multiply-adds count 2. Only convolutions and matrix products are counted; ReLU and pooling
are left out (well under 1% here), as is customary.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn


def _per_layer(model: nn.Module, count, image_shape=(1, 28, 28)) -> int:
    """The sum of count(module, output) over the model's leaf layers, on one zero image, so that
    it follows the real layer shapes."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        total += count(module, output)

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            param = next(model.parameters())
            model(torch.zeros((1, *image_shape), device=param.device, dtype=param.dtype))
    finally:
        for h in handles:
            h.remove()
    return total


def _layer_flops(module: nn.Module, output: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return 2 * module.in_channels // module.groups * kh * kw * output.numel()
    if isinstance(module, nn.Linear):
        return 2 * module.in_features * module.out_features
    return 0


def forward_flops(model: nn.Module) -> int:
    """Multiply-adds x 2 of one forward pass per image, counted on the convolutions and linears."""
    return _per_layer(model, _layer_flops)


def activations_per_image(model: nn.Module) -> int:
    """Floats every layer outputs for one image: what a forward pass keeps for the backward one."""
    return _per_layer(model, lambda module, output: output.numel())


def onnx_flops(path: Path) -> int:
    """FLOPs of one forward pass per image, counted from the ONNX graph (Conv, Gemm, MatMul).

    Shapes come from ONNX shape inference with the batch set to 1.
    """
    model = onnx.load(str(path))
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    dim.ClearField("dim_param")
    dim.dim_value = 1
    model = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for vi in (*model.graph.input, *model.graph.value_info, *model.graph.output):
        shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    total = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            w, out = shapes[node.input[1]], shapes[node.output[0]]
            total += 2 * int(np.prod(out)) * int(np.prod(w[1:]))
        elif node.op_type in ("Gemm", "MatMul"):
            a, out = shapes[node.input[0]], shapes[node.output[0]]
            trans_a = any(at.name == "transA" and at.i for at in node.attribute)
            k = a[-2] if trans_a else a[-1]
            total += 2 * int(np.prod(out)) * k
    return total
