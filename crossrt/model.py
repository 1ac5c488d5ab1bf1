"""LeNet5 as the reference builds it for 28x28 inputs. Only the network: no I/O, no prints.

The layer names follow the reference (C1, S2, C3, S4, C5, F6, OUT). The network ends at the
logits: the reference's PyTorch code adds a Softmax and then CrossEntropyLoss, which applies
log-softmax again (a double softmax that slows learning), so we train on logits.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

# Output channels of C1, C3, C5. The reference widens the classic 6/16/120 to 32/64/128
# because the classic net is too small to keep a GPU busy.
ARCH_CHANNELS = {"lenet5": (32, 64, 128), "lenet5-classic": (6, 16, 120)}


class LeNet5(nn.Sequential):
    """Conv5-ReLU-Pool2, Conv5-ReLU-Pool2, Conv4-ReLU (C5 as a 4x4 conv on 28x28 input), FC84, FC10."""

    def __init__(self, arch: str = "lenet5", num_classes: int = 10):
        c1, c3, c5 = ARCH_CHANNELS[arch]
        super().__init__(
            OrderedDict(
                [
                    ("C1", nn.Conv2d(1, c1, 5)),
                    ("relu1", nn.ReLU()),
                    ("S2", nn.MaxPool2d(2, 2)),
                    ("C3", nn.Conv2d(c1, c3, 5)),
                    ("relu2", nn.ReLU()),
                    ("S4", nn.MaxPool2d(2, 2)),
                    ("C5", nn.Conv2d(c3, c5, 4)),
                    ("relu3", nn.ReLU()),
                    ("flatten", nn.Flatten()),
                    ("F6", nn.Linear(c5, 84)),
                    ("relu4", nn.ReLU()),
                    ("OUT", nn.Linear(84, num_classes)),
                ]
            )
        )
        self.arch = arch
