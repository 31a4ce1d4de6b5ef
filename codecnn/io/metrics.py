"""Picture quality: PSNR with the peak of the bit depth, MSE per frame.

Every stage uses these, so PSNR means the same thing everywhere: per frame
10·log10(peak² / MSE) with peak = (1 << bit_depth) - 1 (1023 at 10 bit), then averaged over
frames of a sequence and then over sequences by the caller, as the JVET common test
conditions do (never a fixed 255, never an MSE pooled over a batch).
"""

from __future__ import annotations

import math

import numpy as np

# HM/VTM print 999.99 dB for a frame identical to the original; we keep the same convention
# so one lossless frame does not turn a sequence average into infinity.
PSNR_IDENTICAL = 999.99


def sse(a: np.ndarray, b: np.ndarray) -> float:
    """Sum of squared differences of two integer planes (exact, in int64)."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    d = (a.astype(np.int64) - b.astype(np.int64)).ravel()
    return float(np.dot(d, d))


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error of two equally shaped sample arrays (any integer/float dtype)."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    d = a.astype(np.float64) - b.astype(np.float64)
    return float(np.mean(d * d))


def mse_to_psnr(mse_value: float, bit_depth: int) -> float:
    """10·log10(peak² / MSE) with peak = (1 << bit_depth) - 1; 999.99 dB when MSE is 0.

    A non-finite MSE (NaN/inf from a broken filter) is an error, never a number.
    """
    if not math.isfinite(mse_value):
        raise ValueError(f"MSE is {mse_value}: the filtered samples are not finite")
    if mse_value <= 0.0:
        return PSNR_IDENTICAL
    peak = (1 << bit_depth) - 1
    return 10.0 * math.log10(peak * peak / mse_value)


def psnr(a: np.ndarray, b: np.ndarray, bit_depth: int = 10) -> float:
    """PSNR in dB of one frame/plane [H, W] at `bit_depth`; 999.99 when identical."""
    return mse_to_psnr(mse(a, b), bit_depth)


def psnr_frames(a: np.ndarray, b: np.ndarray, bit_depth: int = 10) -> np.ndarray:
    """Per-frame PSNR of two stacks [N, H, W] → float64 [N]."""
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"expected two [N, H, W] stacks, got {a.shape} and {b.shape}")
    return np.array([psnr(x, y, bit_depth) for x, y in zip(a, b, strict=True)])
