#!/usr/bin/env python3
"""A sanity baseline for few-shot image scores: logistic regression on raw pixels.

    /usr/bin/python3 benchmarks/pytorch/linear_baseline.py data/cache/mnist --per-class 10 --seeds 1,2,3,4

For each seed: 6,000 training images are set aside as the validation split,
PER_CLASS images of each class are drawn from the rest, a multinomial logistic
regression on the pixels (scaled to [0, 1]) is fitted to convergence (L-BFGS)
for each L2 penalty of a path, the penalty is chosen on the validation split,
and the test split is scored once with that model. Prints each seed's test
accuracy and the mean ± sample std. Needs python3-torch; one thread.
"""
import argparse
import gzip
import struct
from pathlib import Path

import torch


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return torch.frombuffer(bytearray(data[4 + 4 * ndim:]), dtype=torch.uint8).reshape(dims)


def fit(x, y, classes, l2):
    w = torch.zeros(x.shape[1], classes, requires_grad=True)
    b = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=500, tolerance_grad=1e-6, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ w + b, y) + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def accuracy(w, b, x, y):
    return ((x @ w + b).argmax(1) == y).float().mean().item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data", help="folder with MNIST-style IDX files (train-*, t10k-*)")
    ap.add_argument("--per-class", type=int, default=10)
    ap.add_argument("--seeds", default="1,2,3,4")
    ap.add_argument("--validation", type=int, default=6000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    d = Path(args.data)
    xtr = read_idx(d / "train-images-idx3-ubyte.gz").reshape(-1, 784).float() / 255
    ytr = read_idx(d / "train-labels-idx1-ubyte.gz").long()
    xte = read_idx(d / "t10k-images-idx3-ubyte.gz").reshape(-1, 784).float() / 255
    yte = read_idx(d / "t10k-labels-idx1-ubyte.gz").long()
    classes = int(ytr.max()) + 1
    scores = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(ytr), generator=g)
        val, rest = perm[:args.validation], perm[args.validation:]
        pick = torch.cat([rest[ytr[rest] == c][:args.per_class] for c in range(classes)])
        best = None
        for l2 in [1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 0.0]:
            w, b = fit(xtr[pick], ytr[pick], classes, l2)
            v = accuracy(w, b, xtr[val], ytr[val])
            if best is None or v > best[0]:
                best = (v, l2, w, b)
        v, l2, w, b = best
        t = accuracy(w, b, xte, yte)
        scores.append(t)
        print(f"seed {seed}: {len(pick)} training images, L2 {l2:g} chosen on validation ({100 * v:.2f}), test {100 * t:.2f}")
    m = sum(scores) / len(scores)
    s = (sum((x - m) ** 2 for x in scores) / max(1, len(scores) - 1)) ** 0.5
    print(f"raw-pixel logistic regression, {args.per_class} per class: test accuracy {100 * m:.2f} ± {100 * s:.2f} over {len(scores)} draws")


if __name__ == "__main__":
    main()
