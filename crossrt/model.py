"""LeNet5 as the seed builds it for 28x28 inputs. Only the network: no I/O, no prints.

The layer names follow the seed (C1, S2, C3, S4, C5, F6, OUT). The network ends at the
logits: the seed's PyTorch code adds a Softmax and then CrossEntropyLoss, which applies
log-softmax again (a double softmax that slows learning), so we train on logits.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

# Output channels of C1, C3, C5. The seed widens the classic 6/16/120 to 32/64/128
# because the classic net is too small to keep a GPU busy.
ARCH_CHANNELS = {"lenet5": (32, 64, 128), "lenet5-classic": (6, 16, 120)}


class LeNet5(nn.Sequential):
    """Conv5-ReLU-Pool2, Conv5-ReLU-Pool2, Conv4-ReLU (C5 as a 4x4 conv on 28x28 input), FC84, FC10."""

    def __init__(self, arch: str = "lenet5", num_classes: int = 10):
        c1, c3, c5 = ARCH_CHANNELS[arch]
        super().__init__(OrderedDict([
            ("C1", nn.Conv2d(1, c1, 5)), ("relu1", nn.ReLU()), ("S2", nn.MaxPool2d(2, 2)),
            ("C3", nn.Conv2d(c1, c3, 5)), ("relu2", nn.ReLU()), ("S4", nn.MaxPool2d(2, 2)),
            ("C5", nn.Conv2d(c3, c5, 4)), ("relu3", nn.ReLU()),
            ("flatten", nn.Flatten()),
            ("F6", nn.Linear(c5, 84)), ("relu4", nn.ReLU()),
            ("OUT", nn.Linear(84, num_classes)),
        ]))
        self.arch = arch


def forward_flops(model: nn.Module, image_shape=(1, 28, 28)) -> int:
    """Multiply-adds x 2 of one forward pass per image, counted on the convolutions and linears.

    Counted by running the model once on a zero input with hooks, so it follows the real
    layer shapes. ReLU and pooling are left out (well under 1% here), as is customary.
    """
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            per_out = module.in_channels // module.groups * kh * kw
            total += 2 * per_out * output.numel()
        elif isinstance(module, nn.Linear):
            total += 2 * module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            param = next(model.parameters())
            model(torch.zeros((1, *image_shape), device=param.device, dtype=param.dtype))
    finally:
        for h in handles:
            h.remove()
    return total
