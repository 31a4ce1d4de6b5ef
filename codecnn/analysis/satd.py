"""SATD of residual blocks: VTM's Hadamard SATD, DCT-SATD and SSE, vectorised over frames.

Hadamard SATD follows VTM's `RdCost.cpp` (read, not copied): `xGetHADs` tiles a w×h block
into Hadamard kernels (16×8 when w > h, 8×16 when w < h, 8×4 / 4×8 for thinner blocks,
else 8×8, else 4×4, else 2×2), sums each kernel's |coefficients| of the unnormalised
Hadamard transform, counts the DC coefficient at a quarter (`JVET_R0164_MEAN_SCALED_SATD`,
`|dc| >> 2` in integers) and normalises per kernel:

    2×2   no normalisation             4×4   (s + 1) >> 1        8×8   (s + 2) >> 2
    16×8, 8×16   int(s / sqrt(128) * 2)           8×4, 4×8   int(s / sqrt(32) * 2)

Every kernel's normalisation is ≈ 2/sqrt(w·h), i.e. VTM's SATD is twice the L1 norm of the
orthonormal Hadamard coefficients. DCT-SATD here uses that same scale (2·Σ|c| of the
orthonormal DCT-II, DC at a quarter) so the two are directly comparable; the integer variant
uses VVC's DCT-2 core matrices (entries ≈ 64·sqrt(N)·orthonormal) rescaled to that scale.
VTM builds with FULL_NBIT, so no bit-depth shift is applied: a 10-bit residual gives a
10-bit-scale SATD.

All functions take residuals `orig − pred` as integer arrays [..., H, W] (NumPy or torch;
H, W multiples of the block size) and return one value per block [..., H/bh, W/bw].
The transforms run in torch float64 (exact for these integers) on `device` (CPU default).
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

from codecnn.errors import DataError

# VVC DCT-2 cosine magnitudes for angles m·π/128 (m = 1..64), as listed in the standard's
# 64-point transMatrix: odd m from the 64-point odd rows, m ≡ 2 (mod 4) from the 32-point
# odd rows, then 16-, 8-, 4-point. Every N-point core matrix (N = 2..64) is built from them.
_VVC_ODD64 = (91, 90, 90, 90, 88, 87, 86, 84, 83, 81, 79, 77, 73, 71, 69, 65,
              62, 59, 56, 52, 48, 44, 41, 37, 33, 28, 24, 20, 15, 11, 7, 2)
_VVC_ODD32 = (90, 90, 88, 85, 82, 78, 73, 67, 61, 54, 46, 38, 31, 22, 13, 4)
_VVC_ODD16 = (90, 87, 80, 70, 57, 43, 25, 9)
_VVC_ODD8 = (89, 75, 50, 18)
_VVC_ODD4 = (83, 36)


def _torch():
    import torch

    return torch


def hadamard_matrix(n: int) -> np.ndarray:
    """Sylvester Hadamard matrix of order n (a power of two), int64 entries ±1: VTM's
    xGetHADs uses this (natural) order, which is scipy.linalg.hadamard's."""
    from scipy.linalg import hadamard

    if n < 1 or n & (n - 1):
        raise ValueError(f"Hadamard order must be a power of two, got {n}")
    return hadamard(n, dtype=np.int64)


def vtm_kernel(width: int, height: int) -> tuple[int, int]:
    """The Hadamard kernel (kw, kh) VTM's xGetHADs tiles a width×height block with."""
    w, h = width, height
    if w > h and h % 8 == 0 and w % 16 == 0:
        return 16, 8
    if w < h and w % 8 == 0 and h % 16 == 0:
        return 8, 16
    if w > h and h % 4 == 0 and w % 8 == 0:
        return 8, 4
    if w < h and w % 4 == 0 and h % 8 == 0:
        return 4, 8
    if w % 8 == 0 and h % 8 == 0:
        return 8, 8
    if w % 4 == 0 and h % 4 == 0:
        return 4, 4
    if w % 2 == 0 and h % 2 == 0:
        return 2, 2
    raise ValueError(f"VTM has no Hadamard SATD for a {w}x{h} block (odd size)")


def _as_blocks(residual, block: tuple[int, int], device):
    """Residual → torch float64 [B, H, W] on device, plus the leading shape; checks sizes."""
    torch = _torch()
    x = residual if isinstance(residual, torch.Tensor) else torch.from_numpy(np.asarray(residual))
    if x.dtype == torch.bool or (x.dtype.is_floating_point and not torch.equal(x, x.round())):
        raise DataError("SATD needs integer residuals (orig - pred in sample units)")
    if x.ndim < 2:
        raise DataError(f"SATD needs residuals shaped [..., H, W], got shape {tuple(x.shape)}")
    bw, bh = block
    H, W = x.shape[-2:]
    if H % bh or W % bw:
        raise DataError(f"residual of {W}x{H} samples is not a whole number of {bw}x{bh} blocks")
    lead = tuple(x.shape[:-2])
    x = x.reshape(-1, H, W).to(device=device or x.device, dtype=torch.float64)
    return x, lead


def _transform_tiles(x, left, right, kh: int, kw: int):
    """x [B, H, W] → coefficients left · tile · rightᵀ of every kh×kw tile, laid out as
    [B, H/kh, kh, W/kw, kw] (coefficient (u, v) of tile (ty, tx) at [b, ty, u, tx, v]).

    Two large matrix products on contiguous views, no permutation copies: the left product
    runs over whole strips of kh rows, the right one over all rows of kw samples.
    """
    B, H, W = x.shape
    t = left @ x.reshape(B * (H // kh), kh, W)  # [B·ty, kh, W]
    t = t.reshape(-1, kw) @ right.T  # [B·ty·kh·tx, kw]
    return t.reshape(B, H // kh, kh, W // kw, kw)


def _hadamard_kernel_satd(x, kw: int, kh: int):
    """VTM's xCalcHADs<kw>x<kh> for every kernel tile: int64 [B, H/kh, W/kw]."""
    torch = _torch()
    hh = torch.from_numpy(hadamard_matrix(kh)).to(x.device, torch.float64)
    hw = torch.from_numpy(hadamard_matrix(kw)).to(x.device, torch.float64)
    c = _transform_tiles(x, hh, hw, kh, kw).abs_()
    # float64 sums of integers below 2**53 are exact; round guards the conversion only
    total = torch.round(c.sum(dim=(2, 4))).to(torch.int64)
    dc = torch.round(c[:, :, 0, :, 0]).to(torch.int64)
    s = total - dc + (dc >> 2)  # JVET_R0164: DC counted at a quarter
    if (kw, kh) == (2, 2):
        return s
    if (kw, kh) == (4, 4):
        return (s + 1) >> 1
    if (kw, kh) == (8, 8):
        return (s + 2) >> 2
    # 16x8 / 8x16 / 8x4 / 4x8: C's (int)(sad / sqrt(w*h) * 2) in IEEE double, truncated
    return torch.floor(s.to(torch.float64) / math.sqrt(kw * kh) * 2.0).to(torch.int64)


def _sum_tiles(per_tile, block: tuple[int, int], kernel: tuple[int, int]):
    """[B, H/kh, W/kw] per-kernel values → [B, H/bh, W/bw] per-block sums."""
    bw, bh = block
    kw, kh = kernel
    B, ty, tx = per_tile.shape
    ry, rx = bh // kh, bw // kw
    return per_tile.reshape(B, ty // ry, ry, tx // rx, rx).sum(dim=(2, 4))


def hadamard_satd(residual, block: tuple[int, int] = (8, 8), *, device=None) -> np.ndarray:
    """VTM's Hadamard SATD (xGetHADs) of every width×height block of the residuals.

    residual: integer [..., H, W], orig − pred in sample units (any bit depth; no shift).
    block: (width, height) of the blocks SATD is taken over; tiled into VTM's kernels.
    Returns int64 [..., H/height, W/width] on the CPU, equal to VTM's distortion value.
    """
    bw, bh = block
    kernel = vtm_kernel(bw, bh)
    x, lead = _as_blocks(residual, block, device)
    per_tile = _hadamard_kernel_satd(x, *kernel)
    out = _sum_tiles(per_tile, block, kernel)
    return out.reshape(*lead, *out.shape[1:]).cpu().numpy()


@cache
def dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix C (n×n float64): row k is basis k, C @ C.T = I."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    c = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    c[0] /= math.sqrt(2.0)
    c.flags.writeable = False  # cached: shared by every caller
    return c


def _vvc_cos_table() -> dict[int, int]:
    """VVC's integer cosine magnitude for angle m·π/128, m = 1..64."""
    table = {64: 0, 32: 64}
    for step, values in ((1, _VVC_ODD64), (2, _VVC_ODD32), (4, _VVC_ODD16), (8, _VVC_ODD8),
                         (16, _VVC_ODD4)):
        for j, v in enumerate(values):
            table[step * (2 * j + 1)] = v
    return table


@cache
def vvc_dct2_matrix(n: int) -> np.ndarray:
    """VVC's integer DCT-2 core matrix for n = 2..64 (int64 n×n, row 0 all 64).

    Entry [k, i] is the standard's magnitude for angle k·(2i+1)·π/(2n) with the sign of the
    cosine; these are ≈ 64·sqrt(n)·dct_matrix(n) (the rows of the 64-point matrix, subsampled).
    """
    if n < 2 or n > 64 or n & (n - 1):
        raise ValueError(f"VVC has DCT-2 core matrices for n = 2..64 (powers of two), got {n}")
    table = _vvc_cos_table()
    m = np.empty((n, n), dtype=np.int64)
    m[0] = 64
    for k in range(1, n):
        for i in range(n):
            a = (k * (2 * i + 1) * (64 // n)) % 256  # angle in units of π/128 over 2π
            a = 256 - a if a > 128 else a  # cos(2π − θ) = cos θ
            m[k, i] = -table[128 - a] if a > 64 else table[a]
    m.flags.writeable = False  # cached: shared by every caller
    return m


def _dct_tiles(residual, block: tuple[int, int], kind: str, device):
    """Orthonormal-scale DCT coefficients as a torch tensor [B, H/bh, bh, W/bw, bw]."""
    torch = _torch()
    bw, bh = block
    x, lead = _as_blocks(residual, block, device)
    if kind == "float":
        left, right, scale = dct_matrix(bh), dct_matrix(bw), 1.0
    elif kind == "int":
        left, right = vvc_dct2_matrix(bh), vvc_dct2_matrix(bw)
        scale = 1.0 / (4096.0 * math.sqrt(bw * bh))
    else:
        raise ValueError(f"DCT kind must be 'float' or 'int', got {kind!r}")
    lt = torch.tensor(np.asarray(left, dtype=np.float64), device=x.device)
    rt = torch.tensor(np.asarray(right, dtype=np.float64), device=x.device)
    return _transform_tiles(x, lt, rt, bh, bw) * scale, lead


def dct_coefficients(residual, block: tuple[int, int] = (8, 8), *, kind: str = "float",
                     device=None) -> np.ndarray:
    """2-D DCT-II of every width×height block: float64 [..., H/bh, W/bw, bh, bw].

    kind "float": orthonormal DCT-II (Parseval holds); "int": VVC's integer core matrices,
    rescaled by 1/(4096·sqrt(bw·bh)) to the orthonormal scale (before any VVC shift/rounding).
    """
    c, lead = _dct_tiles(residual, block, kind, device)
    c = c.permute(0, 1, 3, 2, 4)
    return c.reshape(*lead, *c.shape[1:]).cpu().numpy()


def dct_satd(residual, block: tuple[int, int] = (8, 8), *, kind: str = "float",
             dc_weight: float = 0.25, device=None) -> np.ndarray:
    """DCT-SATD on VTM's Hadamard scale: 2·Σ|c| of the orthonormal DCT, DC × dc_weight.

    residual: integer [..., H, W]; returns float64 [..., H/bh, W/bw].
    dc_weight 0.25 mirrors JVET_R0164's mean-scaled SATD; 1.0 gives the plain L1 norm.
    """
    c, lead = _dct_tiles(residual, block, kind, device)
    c = c.abs_()
    total = 2.0 * (c.sum(dim=(2, 4)) - (1.0 - dc_weight) * c[:, :, 0, :, 0])
    return total.reshape(*lead, *total.shape[1:]).cpu().numpy()


def sse(residual, block: tuple[int, int] = (8, 8)) -> np.ndarray:
    """Sum of squared residuals per width×height block: int64 [..., H/bh, W/bw]."""
    r = np.asarray(residual).astype(np.int64)
    bw, bh = block
    H, W = r.shape[-2:]
    if H % bh or W % bw:
        raise DataError(f"residual of {W}x{H} samples is not a whole number of {bw}x{bh} blocks")
    r = r.reshape(*r.shape[:-2], H // bh, bh, W // bw, bw)
    return (r * r).sum(axis=(-3, -1))
