"""Picture quality: PSNR with the peak of the bit depth, MSE per frame.

Every stage uses these, so PSNR means the same thing everywhere: per frame
10·log10(peak² / MSE) with peak = (1 << bit_depth) - 1 (1023 at 10 bit), then averaged over
frames by the caller (never a fixed 255, never an MSE pooled over a batch).
"""

from __future__ import annotations

import math

import numpy as np


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error of two equally shaped sample arrays (any integer/float dtype)."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    d = a.astype(np.float64) - b.astype(np.float64)
    return float(np.mean(d * d))


def psnr(a: np.ndarray, b: np.ndarray, bit_depth: int = 10) -> float:
    """PSNR in dB of one frame/plane [H, W] at `bit_depth`; inf when identical."""
    err = mse(a, b)
    peak = (1 << bit_depth) - 1
    return math.inf if err == 0 else 10.0 * math.log10(peak * peak / err)


def psnr_frames(a: np.ndarray, b: np.ndarray, bit_depth: int = 10) -> np.ndarray:
    """Per-frame PSNR of two stacks [N, H, W] → float64 [N]."""
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"expected two [N, H, W] stacks, got {a.shape} and {b.shape}")
    return np.array([psnr(x, y, bit_depth) for x, y in zip(a, b, strict=True)])
