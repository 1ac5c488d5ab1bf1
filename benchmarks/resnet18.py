"""A model of a known architecture that no one here wrote: ResNet-18 (He et al. 2015, torchvision's
layout: 7x7 stem, max-pool, four stages of two basic blocks with 64, 128, 256, 512 channels,
global average pool, 1000 classes), with random weights, exported to ONNX with a dynamic batch.

torchvision itself does not install beside the pinned torch 2.13 here, so the network is written
out; its parameter count is torchvision's resnet18 (11,689,512), which main() checks.

    python benchmarks/resnet18.py --out /tmp/resnet18.onnx
    crossrt bench-infer --model /tmp/resnet18.onnx --runtimes onnxruntime,openvino
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

TORCHVISION_RESNET18_PARAMETERS = 11_689_512


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.down = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.down(x))


def resnet18(classes: int = 1000) -> nn.Module:
    layers = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
        cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, classes))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Export a random-weight ResNet-18 to ONNX (dynamic batch).")
    p.add_argument("--out", type=Path, default=Path("resnet18.onnx"), help="ONNX file to write (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the weights (default: %(default)s)")
    a = p.parse_args(argv)
    torch.manual_seed(a.seed)
    model = resnet18().eval()
    params = sum(t.numel() for t in model.parameters())
    if params != TORCHVISION_RESNET18_PARAMETERS:
        raise SystemExit(f"{params:,} parameters, torchvision's resnet18 has {TORCHVISION_RESNET18_PARAMETERS:,}")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(1, 3, 224, 224),),
            str(a.out),
            dynamo=False,
            opset_version=17,
            input_names=["pixel_values"],
            output_names=["logits"],
            dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}},
        )
    print(f"{a.out}: ResNet-18, {params:,} parameters, random weights (seed {a.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
