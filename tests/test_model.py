"""The network: shapes, FLOP count, and that a training step learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from crossrt.data import normalize
from crossrt.flops import forward_flops
from crossrt.model import LeNet5

from conftest import make_images


# By hand: C1 32*25+32, C3 64*32*25+64, C5 128*64*16+128, F6 128*84+84, OUT 84*10+10 = 194,982;
# classic: 6*25+6, 16*6*25+16, 120*16*16+120, 120*84+84, 850 = 44,426.
@pytest.mark.parametrize("arch,params", [("lenet5", 194_982), ("lenet5-classic", 44_426)])
def test_output_shapes_and_size(arch, params):
    model = LeNet5(arch)
    for n in (1, 7):
        assert model(torch.zeros(n, 1, 28, 28)).shape == (n, 10)
    assert sum(p.numel() for p in model.parameters()) == params


def test_outputs_are_logits_not_probabilities():
    torch.manual_seed(0)
    out = LeNet5()(torch.randn(4, 1, 28, 28))
    assert not torch.allclose(out.sum(1), torch.ones(4))  # no softmax inside (the reference's bug)


def test_forward_flops_by_hand():
    # C1 2*32*25*24*24, C3 2*64*32*25*8*8, C5 2*128*64*16, F6 2*128*84, OUT 2*84*10; one per ReLU
    # output: 32*24*24 + 64*8*8 + 128 + 84
    expected = 921_600 + 6_553_600 + 262_144 + 21_504 + 1_680 + 18_432 + 4_096 + 128 + 84
    assert forward_flops(LeNet5()) == expected == 7_783_268


def test_a_training_step_lowers_the_loss():
    torch.manual_seed(0)
    labels = np.arange(60) % 10
    x = torch.from_numpy(normalize(make_images(labels, np.random.default_rng(0))))
    y = torch.from_numpy(labels)
    model = LeNet5()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = F.cross_entropy(model(x), y).item()
    for _ in range(5):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    after = F.cross_entropy(model(x), y).item()
    assert after < before - 0.1, (before, after)
