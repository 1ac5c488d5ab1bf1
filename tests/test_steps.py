"""The step function a CUDA graph captures is the one the CPU path runs: on the CPU it trains
exactly like a plain training loop, and the warm-up that precedes capture leaves no trace."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from crossrt.config import TrainConfig
from crossrt.data import normalize
from crossrt.model import LeNet5
from crossrt.steps import Lean, Steps, rehearse
from crossrt.train import Progress, place_lr

from conftest import make_images


def _data(n_train=630, n_test=150):
    """630 training images in batches of 60 (a last batch of 30), 150 test images in 100 + 50."""
    rng = np.random.default_rng(0)
    ytr, yte = rng.integers(0, 10, n_train), rng.integers(0, 10, n_test)
    as_tensor = lambda labels: (torch.from_numpy(normalize(make_images(labels, rng))), torch.from_numpy(labels))
    return (*as_tensor(ytr), *as_tensor(yte))


def _fresh(lr_tensor=False):
    torch.manual_seed(0)
    net = LeNet5().to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    if lr_tensor:
        place_lr(optimizer, torch.device("cpu"))
    return net, optimizer


CFG = types.SimpleNamespace(batch_size=60, valid_batch_size=100, precision="fp32")


def _reference_epoch(net, optimizer, x, y, order, bs=60):
    """The plain loop: what training means, written independently of crossrt.steps."""
    losses = []
    for b in range(0, len(x), bs):
        idx = order[b : b + bs]
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x[idx]), y[idx])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return sum(losses) / len(losses)


def test_the_step_function_trains_like_a_plain_loop():
    x, y, xv, yv = _data()
    net_a, opt_a = _fresh()
    net_b, opt_b = _fresh()
    steps = Steps(net_b, net_b, opt_b, x, y, xv, yv, CFG)
    assert set(steps.runs) == {("train", 60), ("train", 30), ("valid", 100), ("valid", 50)}
    for epoch in range(2):
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
        loss_a = _reference_epoch(net_a, opt_a, x, y, order)
        loss_b = steps.epoch(order, Progress())
        assert loss_b == pytest.approx(loss_a, rel=1e-6)
    for a, b in zip(net_a.parameters(), net_b.parameters()):
        assert torch.equal(a, b)
    with torch.no_grad():
        logits = net_a(xv)
    assert steps.evaluate() == pytest.approx(
        (F.cross_entropy(logits, yv).item(), (logits.argmax(1) == yv).float().mean().item()), rel=1e-6
    )


@pytest.mark.parametrize("arch", ["lenet5", "lenet5-classic"])
def test_the_lean_step_computes_the_modules_function_and_gradients(arch):
    """Pool before ReLU and C5 as one GEMM: the module's own outputs and gradients, to float
    rounding, and two epochs of training that end with the same weights, loss and accuracy."""
    x, y, xv, yv = _data()
    torch.manual_seed(0)
    net = LeNet5(arch).to(memory_format=torch.channels_last)
    out = [F.cross_entropy(m(x[:60]), y[:60]) for m in (net, Lean(net))]
    grads = [torch.autograd.grad(o, list(net.parameters())) for o in out]
    assert out[1].item() == pytest.approx(out[0].item(), rel=1e-6)
    for a, b in zip(*grads):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
    trained = []
    for lean in (False, True):
        net, optimizer = _fresh()
        body = Lean(net) if lean else net
        steps = Steps(body, body, optimizer, x, y, xv, yv, CFG)
        losses = [
            steps.epoch(torch.randperm(len(x), generator=torch.Generator().manual_seed(e)), Progress())
            for e in range(2)
        ]
        trained.append((losses, steps.evaluate(), [p.detach().clone() for p in net.parameters()]))
    (loss_a, eval_a, w_a), (loss_b, eval_b, w_b) = trained
    assert loss_b == pytest.approx(loss_a, rel=1e-4) and eval_b == pytest.approx(eval_a, rel=1e-3)
    for a, b in zip(w_a, w_b):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-5)


def test_the_warm_up_before_capture_leaves_no_trace():
    """rehearse() without capture: the warm-up steps run (and train), then weights and Adam's
    state are put back; training then matches a run that had no warm-up at all."""
    x, y, xv, yv = _data()
    results = []
    for warm in (False, True):
        net, optimizer = _fresh(lr_tensor=True)
        steps = Steps(net, net, optimizer, x, y, xv, yv, CFG)
        if warm:
            before = [p.detach().clone() for p in net.parameters()]
            steps.runs = rehearse(steps.runs, net, optimizer, capture=False)
            assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
            assert all(int(s["step"]) == 0 for s in optimizer.state.values())
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(1))
        steps.epoch(order, Progress())
        results.append([p.detach().clone() for p in net.parameters()])
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_a_scheduled_learning_rate_is_the_same_tensor_the_step_reads():
    """A captured step reads the learning rate from one device tensor: the scheduler must change
    that tensor in place, never replace it."""
    net, optimizer = _fresh(lr_tensor=True)
    lr = optimizer.param_groups[0]["lr"]
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1, 0.5)
    net(torch.zeros(2, 1, 28, 28)).sum().backward()
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] is lr and float(lr) == pytest.approx(5e-4)


def test_cuda_graph_flags(capsys):
    from crossrt.cli import main

    assert main(["train", "--cuda-graph"]) == 2
    err = capsys.readouterr().err
    assert "--cuda-graph: needs --device cuda" in err and len(err.strip().splitlines()) == 1
    assert TrainConfig(device="cpu").cuda_graph is None and TrainConfig(cuda_graph=False).cuda_graph is False


def _kernel_calls(fn) -> list:
    """Every convolution, GEMM and max-pool call fn makes: op, its tensors' shapes, dtypes and
    strides, and its flags (a convolution's output mask: which gradients it computes), under whichever
    forward-convolution kernel this CPU has. A GEMM's
    bias is left out: the floor's forward GEMMs have none."""
    from torch.profiler import profile

    names = {
        "aten::mkldnn_convolution",
        "aten::_slow_conv2d_forward",  # a forward convolution where oneDNN has no kernel (bf16 without AVX-512)
        "aten::convolution_backward",
        "aten::mm",
        "aten::addmm",
        "aten::max_pool2d_with_indices",
        "aten::max_pool2d_with_indices_backward",
    }
    with profile(record_shapes=True) as prof:
        fn()
    calls = []
    for e in prof.events():
        if e.name in names:
            tensors = [
                (shape, dtype, [st for n, st in zip(shape, strides) if n > 1])  # a size-1 dim's stride is moot
                for shape, dtype, strides in zip(e.input_shapes, e.input_dtypes, e.structured_input_strides)
                if len(shape) > 1
            ]
            flags = [] if e.name == "aten::addmm" else [c for c in e.concrete_inputs if c is not None]
            calls.append(repr((e.name.replace("addmm", "mm"), tensors, flags)))
    return sorted(calls)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_kernel_floor_makes_exactly_the_steps_kernel_calls(precision):
    """benchmarks/kernel_floor.py is the floor make bench holds the training targets against: it
    must make the step's own convolution, GEMM and max-pool calls, no fewer and no more, with the
    same shapes, dtypes, layouts and flags (C1 computes no input gradient in either)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "kernel_floor.py"
    spec = importlib.util.spec_from_file_location("kernel_floor", path)
    floor = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(floor)
    x, y = torch.randn(floor.BATCH, 1, 28, 28), torch.randint(0, 10, (floor.BATCH,))
    net, optimizer = _fresh()
    body = Lean(net)
    cfg = types.SimpleNamespace(batch_size=floor.BATCH, valid_batch_size=100, precision=precision)
    steps = Steps(body, body, optimizer, x, y, x[:100], y[:100], cfg)
    steps.idx[floor.BATCH].copy_(torch.arange(floor.BATCH))
    compute, pools = floor.kernels({"fp32": torch.float32, "bf16": torch.bfloat16}[precision])
    with torch.no_grad():
        floors = _kernel_calls(lambda: (compute(), pools()))
    assert floors == _kernel_calls(steps.runs["train", floor.BATCH])
    assert len(floors) == 2 + 9 + 2 + 4  # C1, C3 forward; C5, F6, OUT x 3 GEMMs; C3, C1 backward; 2 pools x 2
