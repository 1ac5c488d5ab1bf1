"""The training step and the validation batch, as functions over fixed buffers, run eagerly or
replayed as CUDA graphs.

On a fast GPU LeNet5's step is a few dozen small kernels, and launching them one by one from
Python costs more than running them. A CUDA graph records the kernels once and replays them
on the same memory. So every step reads its batch through a fixed index buffer (the batch's
indices are copied in first), validation reads through a fixed input buffer, the loss and
the correct count add up in device tensors, and the very same Python function that the CPU
path calls directly is captured once on CUDA and replayed.

By default the step runs LeNet5 through Lean: the same function, with less memory traffic
(`--no-lean-step` runs the module's own forward).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import distributed
from .system import WARMUP, graphed


class Lean(nn.Module):
    """LeNet5's forward computed with less memory traffic; the parameters are the network's own.

    Measured on the CPU (benchmarks/profile_step.py), the convolutions were not the only cost:
    ReLU's backward over C1's 600 x 32 x 24 x 24 output, and C5, a 4x4 convolution over a 4x4
    input that oneDNN runs at a fraction of a GEMM's speed. So:
    - each max-pool runs before its ReLU: max(relu(a)) = relu(max(a)) (ReLU is monotonic), so
      the function and its gradient are the same, with 4x fewer elements for ReLU both ways;
    - C5 is one GEMM: over a 4x4 input its 4x4 kernel is a fully connected layer whose weight is
      the kernel flattened in the order of the channels-last features.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        h = F.relu(F.max_pool2d(n.C1(x), 2))
        h = F.relu(F.max_pool2d(n.C3(h), 2))
        kernel = n.C5.weight  # [out, in, 4, 4]; h is [batch, in, 4, 4]
        h = F.linear(h.permute(0, 2, 3, 1).flatten(1), kernel.permute(0, 2, 3, 1).flatten(1), n.C5.bias)
        return n.OUT(F.relu(n.F6(F.relu(h))))


class Steps:
    """One epoch of training and one validation pass, for a model, optimizer and data on one device.

    With several data-parallel ranks, every rank takes its share of each batch and of the test
    images. graph=True captures the steps as CUDA graphs (after warm-up runs, whose training
    is undone: a captured run trains exactly as an eager one).
    """

    def __init__(
        self, model, net, optimizer, x, y, x_valid, y_valid, cfg, world: int = 1, me: int = 0, graph: bool = False
    ):
        self.model, self.net, self.optimizer, self.x, self.y, self.cfg = model, net, optimizer, x, y, cfg
        self.world, self.me = world, me
        self.valid_total = len(x_valid)
        self.xv, self.yv = x_valid.tensor_split(world)[me], y_valid.tensor_split(world)[me]
        device, bs, vbs = x.device, cfg.batch_size, cfg.valid_batch_size
        self.loss_sum = torch.zeros((), device=device)
        self.sums = torch.zeros(2, device=device, dtype=torch.float64)  # validation loss, correct
        self.idx, self.vin, self.vtarget = {}, {}, {}
        runs = {}
        for size in {bs, len(x) % bs} - {0}:  # a last, smaller batch gets its own buffers (and graph)
            self.idx[size] = torch.zeros(size, dtype=torch.long, device=device)
            runs["train", size] = self._step(size)
        for size in {min(vbs, len(self.xv)), len(self.xv) % vbs} - {0}:
            self.vin[size] = torch.zeros((size, *x_valid.shape[1:]), device=device, dtype=x_valid.dtype)
            self.vtarget[size] = torch.zeros(size, dtype=torch.long, device=device)
            runs["valid", size] = self._valid(size)
        self.runs = rehearse(runs, net, optimizer, capture=True) if graph else runs

    def _step(self, size: int):
        idx, cfg, world = self.idx[size], self.cfg, self.world

        def step():
            """Forward, loss, backward, Adam on the batch whose indices are in idx.

            With several ranks, each takes its share of the batch; its loss is the share's
            summed loss over the whole batch's size, times the ranks, so that DDP's averaged
            gradient is exactly the whole batch's mean-loss gradient, even for uneven shares.
            """
            mine = idx.tensor_split(world)[self.me] if world > 1 else idx
            with torch.autocast(self.x.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
                logits = self.model(self.x.index_select(0, mine))
            target = self.y.index_select(0, mine)
            loss = (
                F.cross_entropy(logits.float(), target)
                if world == 1
                else F.cross_entropy(logits.float(), target, reduction="sum") * world / size
            )
            self.optimizer.zero_grad(set_to_none=False)  # the gradients keep their memory: a graph writes there
            loss.backward()
            self.optimizer.step()
            self.loss_sum.add_(loss.detach())

        return step

    def _valid(self, size: int):
        vin, target = self.vin[size], self.vtarget[size]

        def valid():
            with (
                torch.no_grad(),
                torch.autocast(vin.device.type, dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16"),
            ):
                logits = self.net(vin).float()
            self.sums[0].add_(F.cross_entropy(logits, target, reduction="sum"))
            self.sums[1].add_((logits.argmax(1) == target).sum())

        return valid

    def epoch(self, order: torch.Tensor, progress) -> float:
        """One pass over the training set in the order given; the mean batch loss (read once, at the end)."""
        self.model.train()
        self.loss_sum.zero_()
        bs = self.cfg.batch_size
        batches = -(-len(self.x) // bs)
        for b in range(batches):
            batch = order[b * bs : (b + 1) * bs]
            self.idx[len(batch)].copy_(batch)
            self.runs["train", len(batch)]()
            progress.advance()
        return distributed.all_sum(self.loss_sum.clone()).item() / self.world / batches  # .item() syncs

    def evaluate(self) -> tuple[float, float]:
        """Mean cross-entropy and accuracy over all the test images (this rank's share, summed
        over the ranks); one host sync at the end."""
        self.net.eval()
        self.sums.zero_()
        vbs = self.cfg.valid_batch_size
        for i in range(0, len(self.xv), vbs):
            n = len(self.xv[i : i + vbs])
            self.vin[n].copy_(self.xv[i : i + vbs])
            self.vtarget[n].copy_(self.yv[i : i + vbs])
            self.runs["valid", n]()
        loss, correct = distributed.all_sum(self.sums.clone()).tolist()
        return loss / self.valid_total, correct / self.valid_total


def rehearse(runs: dict, net, optimizer, capture: bool) -> dict:
    """Run each function WARMUP times, then (capture=True) record each as a CUDA graph; return
    what to call for each: the graph's replay, or the function itself.

    Warm-up steps train, so the weights and the optimizer's state are put back in place
    afterwards (fresh Adam state is all zeros): a rehearsed run trains exactly as one that was
    not.
    """
    saved = [p.detach().clone() for p in net.parameters()]
    state = {id(t): t.clone() for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t)}
    if capture:
        replays = graphed(runs)
    else:
        for run in runs.values():
            for _ in range(WARMUP):
                run()
        replays = dict(runs)
    with torch.no_grad():
        for p, value in zip(net.parameters(), saved):
            p.copy_(value)
        for s in optimizer.state.values():
            for t in (t for t in s.values() if torch.is_tensor(t)):
                t.copy_(state[id(t)]) if id(t) in state else t.zero_()
    return replays
