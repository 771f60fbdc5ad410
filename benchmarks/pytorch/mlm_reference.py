#!/usr/bin/env python3
"""An independent PyTorch MLM of the tiny size, to tell a defect from the scale.

The tiny reproduction's text models stay near the unigram entropy of their
corpus. This script trains the same shape of model written from scratch in
PyTorch -- 2 pre-LN blocks, D=128, 4 heads, MLP 512, learned positions, an MLM
head (dense, GELU, LayerNorm) tied to the word embeddings, 15% of positions
masked 80/10/10, AdamW with weight decay 0.01, gradient clipping at 1, warm-up
over 10% of the steps then cosine decay -- on the same documents
(State of the Union + Moby Dick, every 20th document held out), and prints the
held-out MLM loss beside the held-out unigram cross-entropy.

It is a reference, not a replica: the text is split into lower-cased words,
digit runs and punctuation with the 7,995 most frequent training words kept
(the rest one [UNK]), not vitbert's WordPiece, and a training example is a
random 62-token window of running text instead of packed paragraphs. The
question it answers is whether a model of this size leaves the unigram
plateau in this many steps; the numbers are not comparable to vitbert's to
the decimal.

    python3 mlm_reference.py --data ../../data/cache --steps 1500 --batch 16 --lr 2e-3

Needs PyTorch (Debian: python3-torch) and `vitbert data fetch sotu moby-dick`.
"""
import argparse
import collections
import glob
import math
import os
import random
import re

import torch

SPECIAL, UNK, CLS, SEP, MASK = 5, 1, 2, 3, 4


def words(path):
    with open(path, errors="ignore") as f:
        return re.findall(r"[a-z]+|[0-9]+|[^\sa-z0-9]", f.read().lower())


class Block(torch.nn.Module):
    def __init__(self, d, heads, mlp):
        super().__init__()
        self.ln1, self.ln2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
        self.att = torch.nn.MultiheadAttention(d, heads, batch_first=True)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(d, mlp), torch.nn.GELU(), torch.nn.Linear(mlp, d))

    def forward(self, x):
        h = self.ln1(x)
        x = x + self.att(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class MLM(torch.nn.Module):
    def __init__(self, vocab, length, d=128, heads=4, mlp=512, layers=2, std=0.02):
        super().__init__()
        self.tok = torch.nn.Embedding(vocab, d)
        self.pos = torch.nn.Parameter(torch.randn(length, d) * std)
        self.blocks = torch.nn.ModuleList([Block(d, heads, mlp) for _ in range(layers)])
        self.ln = torch.nn.LayerNorm(d)
        self.head = torch.nn.Sequential(torch.nn.Linear(d, d), torch.nn.GELU(), torch.nn.LayerNorm(d))
        self.bias = torch.nn.Parameter(torch.zeros(vocab))
        for m in self.modules():  # BERT's initialisation, as vitbert's
            if isinstance(m, torch.nn.Linear):
                torch.nn.init.normal_(m.weight, std=std)
                torch.nn.init.zeros_(m.bias)
            elif isinstance(m, torch.nn.Embedding):
                torch.nn.init.normal_(m.weight, std=std)
        for b in self.blocks:
            torch.nn.init.normal_(b.att.in_proj_weight, std=std)
            torch.nn.init.normal_(b.att.out_proj.weight, std=std)

    def forward(self, ids):
        x = self.tok(ids) + self.pos[None, : ids.shape[1]]
        for b in self.blocks:
            x = b(x)
        return self.head(self.ln(x)) @ self.tok.weight.T + self.bias


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="data/cache", help="folder with sotu/ and moby-dick/")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--length", type=int, default=64)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init-std", type=float, default=0.02, help="standard deviation of the normal initialisation (BERT: 0.02)")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    rng = random.Random(a.seed)

    files = sorted(glob.glob(os.path.join(a.data, "sotu", "*.txt")) + glob.glob(os.path.join(a.data, "moby-dick", "*.txt")))
    if not files:
        raise SystemExit(f"no documents under {a.data}/sotu and {a.data}/moby-dick: run vitbert data fetch sotu moby-dick")
    held = set(files[::20])
    train = [w for f in files if f not in held for w in words(f)]
    test = [w for f in sorted(held) for w in words(f)]
    keep = [w for w, _ in collections.Counter(train).most_common(8000 - SPECIAL)]
    index = {w: i + SPECIAL for i, w in enumerate(keep)}
    train = [index.get(w, UNK) for w in train]
    test = [index.get(w, UNK) for w in test]
    vocab = len(keep) + SPECIAL
    counts, n = collections.Counter(train), len(train)
    p = {k: v / n for k, v in counts.items()}
    entropy = -sum(q * math.log(q) for q in p.values())
    cross = -sum(math.log(p.get(t, 1 / n)) for t in test) / len(test)
    print(f"{n} training tokens, {len(test)} held-out; vocabulary {vocab}; "
          f"unigram entropy {entropy:.3f} nats, held-out unigram cross-entropy {cross:.3f}", flush=True)

    inner = a.length - 2

    def batch(data, size, r):
        rows = []
        for _ in range(size):
            i = r.randrange(len(data) - inner)
            rows.append([CLS] + data[i : i + inner] + [SEP])
        return torch.tensor(rows)

    def masked(ids, g):
        target, inp = ids.clone(), ids.clone()
        chosen = torch.rand(ids.shape, generator=g) < 0.15
        chosen[:, 0] = chosen[:, -1] = False
        r = torch.rand(ids.shape, generator=g)
        inp[chosen & (r < 0.8)] = MASK
        rand = chosen & (r >= 0.8) & (r < 0.9)
        inp[rand] = torch.randint(SPECIAL, vocab, (int(rand.sum()),), generator=g)
        return inp, target, chosen

    g = torch.Generator().manual_seed(a.seed + 1)
    held_batches = [masked(batch(test, 64, random.Random(100 + k)), g) for k in range(4)]
    model = MLM(vocab, a.length, std=a.init_std)
    decay = [q for q in model.parameters() if q.dim() > 1]
    no_decay = [q for q in model.parameters() if q.dim() <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0}], lr=a.lr)
    warm = max(1, a.steps // 10)
    for step in range(a.steps):
        lr = a.lr * ((step + 1) / warm if step < warm else 0.5 * (1 + math.cos(math.pi * (step - warm) / (a.steps - warm))))
        for group in opt.param_groups:
            group["lr"] = lr
        inp, target, chosen = masked(batch(train, a.batch, rng), g)
        loss = torch.nn.functional.cross_entropy(model(inp)[chosen], target[chosen])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (step + 1) % a.eval_every == 0 or step + 1 == a.steps:
            with torch.no_grad():
                hl = sum(torch.nn.functional.cross_entropy(model(i)[c], t[c]).item() for i, t, c in held_batches) / len(held_batches)
            print(f"step {step + 1}: held-out MLM loss {hl:.3f}, unigram reference minus loss {cross - hl:+.3f} nats", flush=True)


if __name__ == "__main__":
    main()
