"""Learning-rate schedule: linear warm-up, then cosine decay to `floor`·lr at the last step."""

from __future__ import annotations

import math


def warmup_cosine(step: int, warmup: int, total: int, floor: float = 0.01) -> float:
    """Multiplier of the base lr for optimizer step `step` (0-based).

    Warm-up keeps Adam's first updates small while its moment estimates are still noisy;
    cosine decay then anneals to floor·lr at `total`.
    """
    if step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    t = min(1.0, (step - warmup) / span)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))


def make_scheduler(optimizer, warmup: int, total: int):
    """A LambdaLR over `warmup_cosine` (its state dict is just the step counter)."""
    import torch

    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, warmup, total)
    )
