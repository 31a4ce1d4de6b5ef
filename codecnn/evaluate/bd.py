"""Bjøntegaard delta rate and PSNR (VCEG-M33), as the JVET common test conditions compute them.

Default interpolation is the piecewise cubic Hermite interpolation (PCHIP) of the JCT-VC/JVET
CTC Excel sheet (JCTVC-L1100), through SciPy's PchipInterpolator (the same slopes). The
classic VCEG-M33 fit (one cubic polynomial through all points by least squares) is kept as
`method="cubic"`.

Rates enter as log10(rate); BD-rate is (10^mean(Δlog10 R) − 1)·100 in percent (negative =
saving), BD-PSNR the mean PSNR difference in dB, both over the overlap of the two curves.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

METHODS = ("pchip", "cubic")


def format_bd_rate(x: float | None) -> str:
    """A BD-rate as every table and message prints it: "-1.37 %", or "n/a" when missing."""
    return "n/a" if x is None else f"{x:+.2f} %"


def _pchip_integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """∫_lo^hi of the PCHIP interpolant (lo, hi inside [x0, xn]).

    SciPy's PchipInterpolator computes exactly the CTC sheet's curve: Fritsch–Carlson
    interior slopes (weighted harmonic mean, zero at a local extremum) and the three-point
    end slopes with the shape-preserving clamps; its integral is exact piece by piece.
    """
    from scipy.interpolate import PchipInterpolator

    return float(PchipInterpolator(x, y).integrate(lo, hi))


def _cubic_integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """∫_lo^hi of the least-squares cubic through (x, y) (VCEG-M33)."""
    p = np.polyint(np.polyfit(x, y, 3))
    return float(np.polyval(p, hi) - np.polyval(p, lo))


def _mean_delta(xa, ya, xt, yt, method: str) -> float:
    """Mean of f_test − f_anchor over the overlap of the x ranges."""
    if method not in METHODS:
        raise ValueError(f"BD method must be one of {METHODS}, got {method!r}")
    xa, ya, xt, yt = (np.asarray(v, dtype=np.float64) for v in (xa, ya, xt, yt))
    if len(xa) != len(ya) or len(xt) != len(yt):
        raise ValueError("rate and quality lists differ in length")
    if min(len(xa), len(xt)) < (4 if method == "cubic" else 2):
        raise ValueError(f"too few RD points for BD ({method})")
    oa, ot = np.argsort(xa), np.argsort(xt)
    xa, ya, xt, yt = xa[oa], ya[oa], xt[ot], yt[ot]
    if np.any(np.diff(xa) <= 0) or np.any(np.diff(xt) <= 0):
        raise ValueError("RD points must have distinct values along the integration axis")
    lo, hi = max(xa[0], xt[0]), min(xa[-1], xt[-1])
    if hi <= lo:
        return float("nan")
    integral = _pchip_integral if method == "pchip" else _cubic_integral
    return (integral(xt, yt, lo, hi) - integral(xa, ya, lo, hi)) / (hi - lo)


def bd_rate(rate_anchor: Sequence[float], psnr_anchor: Sequence[float],
            rate_test: Sequence[float], psnr_test: Sequence[float],
            method: str = "pchip") -> float:
    """BD-rate in percent of test vs anchor (negative: test needs fewer bits); NaN if the
    PSNR ranges do not overlap."""
    m = _mean_delta(psnr_anchor, np.log10(rate_anchor), psnr_test, np.log10(rate_test), method)
    return float((10.0**m - 1.0) * 100.0)


def bd_psnr(rate_anchor: Sequence[float], psnr_anchor: Sequence[float],
            rate_test: Sequence[float], psnr_test: Sequence[float],
            method: str = "pchip") -> float:
    """BD-PSNR in dB of test vs anchor (positive: test is better at equal rate)."""
    return float(_mean_delta(np.log10(rate_anchor), psnr_anchor, np.log10(rate_test),
                             psnr_test, method))
