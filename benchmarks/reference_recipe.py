"""The reference article's PyTorch recipe, re-implemented from the article: the baseline crossrt
is measured against. Not part of the package.

Kept as the article has it, on purpose: DataLoader with num_workers=1 and shuffle=True,
a Softmax inside the model followed by CrossEntropyLoss (the double softmax), Adam 1e-3,
batch 600, validation batch 100, per-image standardisation in torch, `loss.item()` after
every step, and the article's log lines. Only the data files are read with crossrt's IDX
reader, so both sides train on the same arrays.

    python benchmarks/reference_recipe.py --epochs 2 --threads 2 [--dataset auto] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections import OrderedDict
from pathlib import Path

import torch as th

from crossrt.config import DataConfig
from crossrt.fetch import resolve


class NewLeNet(th.nn.Module):
    def __init__(self, nclass=10):
        super().__init__()
        self.nclass = nclass
        self.net = th.nn.Sequential(
            OrderedDict(
                [
                    ("C1", th.nn.Conv2d(1, 32, (5, 5))),
                    ("relu1", th.nn.ReLU()),
                    ("S2", th.nn.MaxPool2d((2, 2), (2, 2))),
                    ("C3", th.nn.Conv2d(32, 64, (5, 5))),
                    ("relu2", th.nn.ReLU()),
                    ("S4", th.nn.MaxPool2d((2, 2), (2, 2))),
                    ("C5", th.nn.Conv2d(64, 128, (4, 4))),
                    ("relu3", th.nn.ReLU()),
                    ("flatten", th.nn.Flatten()),
                    ("F6", th.nn.Linear(128, 84)),
                    ("relu4", th.nn.ReLU()),
                    ("OUT", th.nn.Linear(84, self.nclass)),
                    ("softmax", th.nn.Softmax(dim=1)),
                ]
            )
        )

    def forward(self, x):
        return self.net(x)


def train(model, traindl, lossfn, optimizer, epoch, device):
    model.train()
    tstart = time.time()
    train_loss = 0.0
    for batch_idx, (data, target) in enumerate(traindl):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = lossfn(output, target)
        loss.backward()
        optimizer.step()
        train_loss += loss.item()
    train_loss /= len(traindl.dataset)
    tend = time.time()
    print("--->Train epoch %d, loss: %.4f, time: %.2f" % (epoch, train_loss, tend - tstart), flush=True)
    return train_loss, tend - tstart


def valid(model, validdl, lossfn, epoch, device):
    model.eval()
    tstart = time.time()
    valid_loss, correct = 0.0, 0.0
    with th.no_grad():
        for data, target in validdl:
            data, target = data.to(device), target.to(device)
            output = model(data)
            loss = lossfn(output, target)
            valid_loss += loss.item()
            pred = output.argmax(dim=1, keepdim=True)
            correct += pred.eq(target.view_as(pred)).sum().item()
    accuracy = correct / len(validdl.dataset)
    valid_loss /= len(validdl.dataset)
    tend = time.time()
    print(
        "--->Valid epoch %d, loss: %.4f, accuracy: %.4f, time: %.2f" % (epoch, valid_loss, accuracy, tend - tstart),
        flush=True,
    )
    return valid_loss, accuracy, tend - tstart


def main() -> int:
    p = argparse.ArgumentParser(description="The reference article's PyTorch LeNet5 recipe (the baseline).")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dataset", default="auto")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--seed", type=int, default=2022)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args()
    if a.threads:
        th.set_num_threads(a.threads)
    th.manual_seed(a.seed)
    device = a.device
    ds = resolve(DataConfig(a.dataset, a.data_dir))
    Xtrain = ds.train_images.reshape(-1, 1, 28, 28)
    Xvalid = ds.test_images.reshape(-1, 1, 28, 28)
    Xtrain, Ytrain = th.from_numpy(Xtrain.astype("float32")), th.from_numpy(ds.train_labels.astype("int64"))
    Xvalid, Yvalid = th.from_numpy(Xvalid.astype("float32")), th.from_numpy(ds.test_labels.astype("int64"))
    # normalization
    Xtrain = (Xtrain - Xtrain.mean(dim=(1, 2, 3), keepdim=True)) / Xtrain.std(dim=(1, 2, 3), keepdim=True)
    Xvalid = (Xvalid - Xvalid.mean(dim=(1, 2, 3), keepdim=True)) / Xvalid.std(dim=(1, 2, 3), keepdim=True)

    trainds = th.utils.data.TensorDataset(Xtrain, Ytrain)
    validds = th.utils.data.TensorDataset(Xvalid, Yvalid)
    traindl = th.utils.data.DataLoader(trainds, num_workers=1, batch_size=600, shuffle=True)
    validdl = th.utils.data.DataLoader(validds, num_workers=1, batch_size=100, shuffle=False)

    model = NewLeNet(nclass=10).to(device)
    optimizer = th.optim.Adam(model.parameters(), lr=0.001)
    lossfn = th.nn.CrossEntropyLoss()

    epochs = []
    total_time = time.time()
    for epoch in range(a.epochs):
        train_loss, train_s = train(model, traindl, lossfn, optimizer, epoch, device)
        valid_loss, accuracy, valid_s = valid(model, validdl, lossfn, epoch, device)
        epochs.append(
            {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                "train_s": train_s,
                "valid_loss": valid_loss,
                "valid_accuracy": accuracy,
                "valid_s": valid_s,
            }
        )
    total_time = time.time() - total_time
    train_time, valid_time = sum(e["train_s"] for e in epochs), sum(e["valid_s"] for e in epochs)
    print("--->Total time: %.2f, training time: %.2f, validation time: %.2f" % (total_time, train_time, valid_time))
    if a.json:
        a.json.write_text(
            json.dumps(
                {
                    "kind": "reference-baseline",
                    "dataset": ds.name,
                    "threads": th.get_num_threads(),
                    "epochs": epochs,
                    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
