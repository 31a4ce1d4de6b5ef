"""PSNR-Y as JVET reports it: per frame, peak (1 << bit_depth) - 1, MSE over the whole frame.

Averages are taken over frames of a sequence (not over pixels of the whole sequence), then
over sequences, as the common test conditions do.
"""

from __future__ import annotations

import math

import numpy as np

# HM/VTM print 999.99 dB for a frame identical to the original; we keep the same convention
# so one lossless frame does not turn a sequence average into infinity.
PSNR_IDENTICAL = 999.99


def sse(a: np.ndarray, b: np.ndarray) -> float:
    """Sum of squared differences of two integer planes (exact, in int64)."""
    d = a.astype(np.int64) - b.astype(np.int64)
    d = d.ravel()
    return float(np.dot(d, d))


def mse_to_psnr(mse: float, bit_depth: int) -> float:
    """10·log10(peak² / MSE) with peak = (1 << bit_depth) - 1; 999.99 dB when MSE is 0."""
    if mse <= 0.0:
        return PSNR_IDENTICAL
    peak = (1 << bit_depth) - 1
    return 10.0 * math.log10(peak * peak / mse)


def psnr(reference: np.ndarray, test: np.ndarray, bit_depth: int) -> float:
    """PSNR of one frame (or plane) [H, W] of integer samples at `bit_depth` bits."""
    if reference.shape != test.shape:
        raise ValueError(f"shape mismatch {reference.shape} vs {test.shape}")
    return mse_to_psnr(sse(reference, test) / reference.size, bit_depth)
