"""FLOPs of one forward pass, counted twice independently: from the torch model (hooks on a real
forward pass) and from any ONNX graph (shape inference on the bound input shapes). A test holds
the two equal for LeNet5.

Multiply-adds count 2 (convolutions and matrix products); element-wise operations (ReLU, Add,
Mul, ...) count one per output element. Pooling, reshapes and the like are left out, as is
customary. A graph whose shapes inference cannot work out is "not counted" (None), never guessed.
"""

from __future__ import annotations

import copy

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
    if isinstance(module, nn.ReLU):
        return output.numel()
    return 0


def forward_flops(model: nn.Module) -> int:
    """FLOPs of one forward pass per image: multiply-adds x 2 of the convolutions and linears, and the ReLUs."""
    return _per_layer(model, _layer_flops)


def activations_per_image(model: nn.Module) -> int:
    """Floats every layer outputs for one image: what a forward pass keeps for the backward one."""
    return _per_layer(model, lambda module, output: output.numel())


ELEMENTWISE = {
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Pow",
    "Sqrt",
    "Exp",
    "Log",
    "Abs",
    "Neg",
    "Reciprocal",
    "Max",
    "Min",
    "Relu",
    "LeakyRelu",
    "PRelu",
    "Elu",
    "Selu",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "Tanh",
    "Erf",
    "Gelu",
    "Softplus",
    "Clip",
    "Where",
    "BatchNormalization",
}


def onnx_flops(model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]]) -> int | None:
    """FLOPs of one forward pass of the graph with its inputs bound to `shapes`, from ONNX shape
    inference; None when a counted node's shapes cannot be inferred."""
    model = copy.deepcopy(model)
    for vi in model.graph.input:
        if vi.name in shapes:
            dims = vi.type.tensor_type.shape.dim
            del dims[:]
            for size in shapes[vi.name]:
                dims.add().dim_value = size
    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception:  # an operator shape inference does not know, a malformed graph
        return None
    known = {}
    for vi in (*model.graph.input, *model.graph.value_info, *model.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if vi.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            known[vi.name] = [d.dim_value for d in dims]
    for init in model.graph.initializer:
        known[init.name] = list(init.dims)
    total = 0
    for node in model.graph.node:
        if node.op_type not in ELEMENTWISE | {"Conv", "Gemm", "MatMul"}:
            continue
        out = known.get(node.output[0])
        if out is None or (node.op_type != "Conv" and node.op_type not in ELEMENTWISE and node.input[0] not in known):
            return None
        if node.op_type == "Conv":
            if node.input[1] not in known:
                return None
            total += 2 * int(np.prod(out)) * int(np.prod(known[node.input[1]][1:]))
        elif node.op_type in ("Gemm", "MatMul"):
            a = known[node.input[0]]
            trans_a = any(at.name == "transA" and at.i for at in node.attribute)
            total += 2 * int(np.prod(out)) * (a[-2] if trans_a else a[-1])
        else:
            total += int(np.prod(out))
    return total
