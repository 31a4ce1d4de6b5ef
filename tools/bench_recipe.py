#!/usr/bin/env python
"""What the CPU training recipe runs at: the zoo model on crops, by precision and layout,
and the cost of one training draw read from disk vs from memory.

    PYTHONPATH=. python tools/bench_recipe.py [--data SHARDS] [--crop 64] [--batch 16]

Rows are timed round robin (best of --repeat rounds), so load from other processes hits
every row alike; ratios are against eager fp32 in the same run. Optimizer steps are real
(forward, weighted masked MSE, backward, AdamW) on random data of the recipe's shape.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codecnn.models import build_model  # noqa: E402
from codecnn.train.loop import compute_loss  # noqa: E402

ROWS = {
    "eager fp32": {"cl": False, "bf16": False},
    "fp32 channels_last": {"cl": True, "bf16": False},
    "bf16 autocast (fp32 head)": {"cl": False, "bf16": True},
    "bf16 autocast, channels_last": {"cl": True, "bf16": True},
}


def make_step(preset: str, crop: int, batch: int, cl: bool, bf16: bool):
    torch.manual_seed(0)
    net = build_model(preset, planes=("rec", "qp"))
    torch.nn.init.normal_(net.tail.weight, std=0.01)
    opt = torch.optim.AdamW(net.parameters(), 1e-3)
    x = torch.rand(batch, 2, crop + 4, crop + 4)
    t = torch.randn(batch, 1, crop, crop) * 0.01
    v = torch.ones_like(t)
    w = torch.ones(batch)
    if cl:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            pred = net(x)
        loss = compute_loss(pred, t, v, "mse", w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def draw_ms(data: Path, crop: int, n: int = 200) -> list[tuple[str, float]]:
    from codecnn.datasets import ShardDataset

    out = []
    for label, mem in (("from disk (h5py + Blosc per patch)", False), ("in memory", True)):
        ds = ShardDataset(data, planes=("rec", "qp"), in_memory=mem)
        idx = np.random.default_rng(0).integers(0, len(ds), n)
        ds[(0, 0, 0, 0, crop)]  # open (and, in memory, load) before timing
        if mem:
            for i in idx:
                ds[(int(i), 0, 0, 0, crop)]
        t0 = time.perf_counter()
        for k, i in enumerate(idx):
            ds[(int(i), k % 8, 3, 5, crop)]
        out.append((label, (time.perf_counter() - t0) / n * 1e3))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="rdn-cpu")
    ap.add_argument("--crop", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=5, help="steps per round")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--data", default=None, help="shards for the draw timing")
    args = ap.parse_args()
    steps = {name: make_step(args.preset, args.crop, args.batch, **o) for name, o in ROWS.items()}
    for s in steps.values():  # warm-up
        s()
        s()
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(args.repeat):
        for name, s in steps.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                s()
            best[name] = min(best[name], (time.perf_counter() - t0) / args.steps)
    base = best["eager fp32"]
    print(f"{args.preset}, {args.crop}×{args.crop} crops (+4 border), batch {args.batch}, "
          f"CPU {torch.get_num_threads()} threads, torch {torch.__version__}; best of "
          f"{args.repeat} rounds of {args.steps} steps\n")
    print("| configuration | train patches/s | × eager fp32 |")
    print("|---|---:|---:|")
    for name, t in best.items():
        print(f"| {name} | {args.batch / t:.1f} | {base / t:.2f} |")
    if args.data:
        print("\n| one training draw (crop + symmetry + normalisation) | ms |")
        print("|---|---:|")
        for label, ms in draw_ms(Path(args.data), args.crop):
            print(f"| {label} | {ms:.2f} |")


if __name__ == "__main__":
    main()
