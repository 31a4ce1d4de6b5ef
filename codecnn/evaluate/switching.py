"""Encoder-side on/off switching of a filter, as real in-loop filters signal it.

With CTU switching the encoder keeps the filtered CTU only where its squared error against
the original is lower than the reconstruction's, and sends one flag bit per CTU; with
picture switching it decides once per picture and sends one bit per picture. The flag bits
are added to the bitrate, so a filter can never make a sequence worse than the anchor in
PSNR (at the price of those bits).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codecnn.io.grid import CtuGrid

MODES = ("none", "ctu", "frame")


@dataclass(frozen=True)
class Switched:
    """Result of switching one picture.

    picture: luma [H, W] after switching; on: bool [rows, cols] per CTU (all equal for
    "frame"); flag_bits: bits the decision costs; sse_rec/sse_filt: per CTU [rows, cols].
    """

    picture: np.ndarray
    on: np.ndarray
    flag_bits: int
    sse_rec: np.ndarray
    sse_filt: np.ndarray


def ctu_sse(a: np.ndarray, b: np.ndarray, ctu: int) -> np.ndarray:
    """Sum of squared differences per CTU, [rows, cols] float64 (exact integer sums)."""
    h, w = a.shape
    grid = CtuGrid(w, h, ctu)
    d = a.astype(np.int64) - b.astype(np.int64)
    d2 = d * d
    # Pad to whole CTUs with zeros (pixels outside the picture add nothing), then reduce.
    full = np.zeros((grid.rows * ctu, grid.cols * ctu), np.int64)
    full[:h, :w] = d2
    return full.reshape(grid.rows, ctu, grid.cols, ctu).sum(axis=(1, 3)).astype(np.float64)


def ctu_gain_db(sse_rec: np.ndarray, sse_filt: np.ndarray) -> np.ndarray:
    """Per-CTU gain 10·log10(SSE_rec / SSE_filtered) in dB, float64 [rows, cols]; a CTU
    where either error is zero (no finite ratio) counts 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        g = 10 * np.log10(sse_rec / sse_filt)
    return np.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)


def switch_picture(orig: np.ndarray, rec: np.ndarray, filtered: np.ndarray, mode: str,
                   ctu: int = 128) -> Switched:
    """Keep the filtered CTU/picture only where it lowers the error against `orig`.

    orig, rec, filtered: luma [H, W] at the same bit depth. mode: "none" (always on, no flag
    bits), "ctu" (one bit per CTU) or "frame" (one bit per picture).
    """
    if mode not in MODES:
        raise ValueError(f"switch mode must be one of {MODES}, got {mode!r}")
    s_rec, s_filt = ctu_sse(orig, rec, ctu), ctu_sse(orig, filtered, ctu)
    if mode == "none":
        on = np.ones_like(s_rec, bool)
        return Switched(filtered, on, 0, s_rec, s_filt)
    if mode == "frame":
        on = np.full(s_rec.shape, bool(s_filt.sum() < s_rec.sum()))
        bits = 1
    else:
        on = s_filt < s_rec
        bits = on.size
    mask = np.repeat(np.repeat(on, ctu, axis=0), ctu, axis=1)[: rec.shape[0], : rec.shape[1]]
    return Switched(np.where(mask, filtered, rec), on, bits, s_rec, s_filt)
