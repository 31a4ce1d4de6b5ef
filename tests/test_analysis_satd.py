"""SATD against an independent reference: scipy.linalg.hadamard plus VTM's normalisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.fft
import scipy.linalg

from codecnn.analysis.satd import (
    dct_coefficients,
    dct_matrix,
    dct_satd,
    hadamard_satd,
    sse,
    vtm_kernel,
    vvc_dct2_matrix,
)


def _reference_kernel(blocks: np.ndarray) -> np.ndarray:
    """VTM's xCalcHADs<w>x<h> written out from RdCost.cpp: blocks int64 [N, h, w] → [N]."""
    n, h, w = blocks.shape
    coef = np.einsum("ij,njk,lk->nil", scipy.linalg.hadamard(h), blocks, scipy.linalg.hadamard(w))
    s = np.abs(coef).sum(axis=(1, 2))
    dc = np.abs(coef[:, 0, 0])
    s = s - dc + dc // 4
    out = []
    for v in s.tolist():  # plain Python integers: no vectorised shortcut in the reference
        if (w, h) == (4, 4):
            out.append((v + 1) // 2)
        elif (w, h) == (8, 8):
            out.append((v + 2) // 4)
        else:
            out.append(int(v / math.sqrt(w * h) * 2))
    return np.array(out, dtype=np.int64)


def _random_residuals(rng, n, h, w, bit_depth):
    peak = (1 << bit_depth) - 1
    r = rng.integers(-peak, peak + 1, size=(n, h, w))
    # a share of small, smooth and extreme residuals, where rounding edges live
    r[: n // 4] //= 37
    r[n // 4 : n // 4 + 4] = peak
    r[n // 4 + 4 : n // 4 + 8] = -peak
    r[n // 4 + 8 : n // 2] = rng.integers(-3, 4, size=(n // 2 - n // 4 - 8, 1, 1))
    return r


@pytest.mark.parametrize("bit_depth", [8, 10])
@pytest.mark.parametrize("w,h", [(4, 4), (8, 8), (8, 4), (4, 8), (16, 8), (8, 16)])
def test_hadamard_kernels_match_reference(w, h, bit_depth):
    rng = np.random.default_rng(w * 100 + h + bit_depth)
    r = _random_residuals(rng, 3000, h, w, bit_depth)
    got = hadamard_satd(r, (w, h))
    assert got.shape == (3000, 1, 1)
    np.testing.assert_array_equal(got[:, 0, 0], _reference_kernel(r))


@pytest.mark.parametrize("bit_depth", [8, 10])
def test_tiled_16x16_is_four_8x8(bit_depth):
    rng = np.random.default_rng(bit_depth)
    r = _random_residuals(rng, 2000, 16, 16, bit_depth)
    tiles = [r[:, y : y + 8, x : x + 8] for y in (0, 8) for x in (0, 8)]
    expected = sum(_reference_kernel(t) for t in tiles)
    np.testing.assert_array_equal(hadamard_satd(r, (16, 16))[:, 0, 0], expected)


def test_2x2_kernel_has_no_normalisation():
    # xCalcHADs2x2: |dc| >> 2 plus the three other |coefficients|, nothing else
    rng = np.random.default_rng(8)
    r = rng.integers(-1023, 1024, size=(500, 2, 2))
    coef = np.einsum("ij,njk,lk->nil", scipy.linalg.hadamard(2), r, scipy.linalg.hadamard(2))
    expected = np.abs(coef).sum((1, 2)) - np.abs(coef[:, 0, 0]) + np.abs(coef[:, 0, 0]) // 4
    np.testing.assert_array_equal(hadamard_satd(r, (2, 2))[:, 0, 0], expected)
    # a 6x6 block has no 4x4 tiling: nine 2x2 kernels
    r6 = rng.integers(-255, 256, size=(20, 6, 6))
    got = hadamard_satd(r6, (6, 6))[:, 0, 0]
    parts = [hadamard_satd(r6[:, y : y + 2, x : x + 2], (2, 2))[:, 0, 0]
             for y in (0, 2, 4) for x in (0, 2, 4)]
    np.testing.assert_array_equal(got, sum(parts))


def test_tiling_rules_follow_xgethads():
    assert vtm_kernel(16, 16) == (8, 8)
    assert vtm_kernel(32, 16) == (16, 8)
    assert vtm_kernel(16, 32) == (8, 16)
    assert vtm_kernel(16, 4) == (8, 4)
    assert vtm_kernel(4, 16) == (4, 8)
    assert vtm_kernel(4, 4) == (4, 4)
    assert vtm_kernel(12, 12) == (4, 4)
    with pytest.raises(ValueError):
        vtm_kernel(3, 3)
    # a 32x16 block is two 16x8 kernels side by side, twice
    rng = np.random.default_rng(3)
    r = rng.integers(-1023, 1024, size=(50, 16, 32))
    expected = sum(_reference_kernel(r[:, y : y + 8, x : x + 16]) for y in (0, 8) for x in (0, 16))
    np.testing.assert_array_equal(hadamard_satd(r, (32, 16))[:, 0, 0], expected)


def test_frame_is_vectorised_over_blocks_and_batches():
    rng = np.random.default_rng(4)
    frames = rng.integers(-1023, 1024, size=(2, 3, 32, 48))
    got = hadamard_satd(frames, (8, 8))
    assert got.shape == (2, 3, 4, 6)
    for b in range(2):
        for c in range(3):
            for by in range(4):
                for bx in range(6):
                    blk = frames[b, c, by * 8 : by * 8 + 8, bx * 8 : bx * 8 + 8]
                    assert got[b, c, by, bx] == _reference_kernel(blk[None])[0]
    s = sse(frames, (8, 8))
    assert s[1, 2, 3, 5] == int((frames[1, 2, 24:32, 40:48].astype(np.int64) ** 2).sum())


def test_torch_input_gives_same_result():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    r = rng.integers(-1023, 1024, size=(4, 16, 16))
    np.testing.assert_array_equal(hadamard_satd(torch.from_numpy(r), (8, 8)),
                                  hadamard_satd(r, (8, 8)))


def test_dct_matrices():
    for n in (4, 8, 16, 32):
        np.testing.assert_allclose(dct_matrix(n), scipy.fft.dct(np.eye(n), norm="ortho", axis=0),
                                   atol=1e-12)
    np.testing.assert_array_equal(vvc_dct2_matrix(4),
                                  [[64, 64, 64, 64], [83, 36, -36, -83],
                                   [64, -64, -64, 64], [36, -83, 83, -36]])
    assert list(vvc_dct2_matrix(8)[1]) == [89, 75, 50, 18, -18, -50, -75, -89]
    assert list(vvc_dct2_matrix(64)[1, :4]) == [91, 90, 90, 90]
    for n in (8, 16, 32, 64):  # integer matrices approximate the orthonormal ones × 64·sqrt(n)
        assert np.abs(vvc_dct2_matrix(n) - 64 * math.sqrt(n) * dct_matrix(n)).max() < 1.5


def test_dct_of_constant_block_is_all_dc():
    r = np.full((3, 8, 16), 400)
    for kind in ("float", "int"):
        c = dct_coefficients(r, (16, 8), kind=kind)
        assert c.shape == (3, 1, 1, 8, 16)
        np.testing.assert_allclose(c[..., 0, 0], 400 * math.sqrt(128))
        ac = c.copy()
        ac[..., 0, 0] = 0
        assert np.abs(ac).max() < 1e-9
    # Parseval on random residuals for the orthonormal DCT
    rng = np.random.default_rng(6)
    x = rng.integers(-1023, 1024, size=(10, 8, 8))
    c = dct_coefficients(x, (8, 8))
    energy = (x.astype(float) ** 2).sum((1, 2))
    np.testing.assert_allclose((c**2).sum(axis=(-1, -2))[:, 0, 0], energy)


def test_dct_satd_shares_vtm_scale_on_flat_blocks():
    r = np.full((1, 8, 8), 400)
    assert hadamard_satd(r, (8, 8))[0, 0, 0] == 1600
    assert dct_satd(r, (8, 8))[0, 0, 0] == pytest.approx(1600)
    assert dct_satd(r, (8, 8), dc_weight=1.0)[0, 0, 0] == pytest.approx(6400)
    assert dct_satd(r, (8, 8), kind="int")[0, 0, 0] == pytest.approx(1600)


def test_bad_residuals_are_data_errors():
    from codecnn.errors import DataError

    with pytest.raises(DataError, match="whole number"):
        hadamard_satd(np.zeros((10, 10), dtype=np.int64), (8, 8))
    with pytest.raises(DataError, match="integer"):
        hadamard_satd(np.full((8, 8), 0.5), (8, 8))
