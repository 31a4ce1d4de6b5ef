import math

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio

from codecnn.io.metrics import mse, mse_to_psnr, psnr, psnr_frames


@pytest.mark.parametrize("bit_depth", [8, 10])
def test_psnr_equals_scikit_image(bit_depth):
    rng = np.random.default_rng(bit_depth)
    peak = (1 << bit_depth) - 1
    a = rng.integers(0, peak + 1, (3, 24, 40)).astype(np.uint16)
    b = np.clip(a.astype(np.int32) + rng.integers(-9, 10, a.shape), 0, peak).astype(np.uint16)
    ours = psnr_frames(a, b, bit_depth)
    for k in range(3):
        ref = peak_signal_noise_ratio(a[k], b[k], data_range=peak)
        assert ours[k] == pytest.approx(ref, abs=1e-9)
        assert psnr(a[k], b[k], bit_depth) == pytest.approx(ref, abs=1e-9)


def test_psnr_uses_bit_depth_peak_and_identical_is_999_99():
    a = np.full((4, 4), 100, np.uint16)
    b = a + 1
    assert mse(a, b) == 1.0
    assert psnr(a, b, 10) == pytest.approx(20 * math.log10(1023))
    assert psnr(a, b, 8) == pytest.approx(20 * math.log10(255))
    assert psnr(a, a, 10) == 999.99  # as HM/VTM print a lossless frame
    with pytest.raises(ValueError, match="not finite"):
        mse_to_psnr(math.nan, 10)
    with pytest.raises(ValueError):
        psnr(a, np.zeros((4, 5)), 10)


def test_accumulator_averages_picture_then_sequence_then_qp():
    """PSNR per picture from its summed SSE (parts add up), mean over a sequence's pictures,
    then over the sequences of a QP; the names every scorer shares."""
    from codecnn.io.metrics import PsnrAccumulator

    acc = PsnrAccumulator(bit_depth=10)
    acc.add("a", 32, poc=0, samples=50, rec=50.0, filt=25.0)  # a picture in two parts
    acc.add("a", 32, poc=0, samples=50, rec=50.0, filt=25.0)
    acc.add("a", 32, poc=1, samples=100, rec=400.0, filt=400.0)
    acc.add("b", 32, poc=0, samples=100, rec=100.0, filt=100.0)
    acc.add("b", 37, poc=0, samples=100, rec=900.0, filt=400.0)
    acc.add("b", 37, poc=1, samples=0, rec=0.0, filt=0.0)  # no samples in this set: left out

    def p(m):
        return mse_to_psnr(m, 10)

    seq = {(r["qp"], r["sequence"]): r for r in acc.sequence_rows()}
    assert seq[(32, "a")]["pictures"] == 2
    assert seq[(32, "a")]["psnr_rec"] == pytest.approx((p(1.0) + p(4.0)) / 2)
    assert seq[(32, "a")]["psnr_filt"] == pytest.approx((p(0.5) + p(4.0)) / 2)
    rows = acc.qp_rows(with_mean=True)
    assert [r["qp"] for r in rows] == [32, 37, "all"]
    r32 = rows[0]
    assert set(r32) == {"qp", "sequences", "pictures", "psnr_rec", "psnr_filt", "gain"}
    assert (r32["sequences"], r32["pictures"]) == (2, 3)
    assert r32["psnr_rec"] == pytest.approx(((p(1.0) + p(4.0)) / 2 + p(1.0)) / 2)
    assert r32["gain"] == pytest.approx(r32["psnr_filt"] - r32["psnr_rec"])
    assert rows[1]["gain"] == pytest.approx(p(4.0) - p(9.0))
    assert rows[2]["gain"] == pytest.approx((r32["gain"] + rows[1]["gain"]) / 2)
    assert (rows[2]["sequences"], rows[2]["pictures"]) == (2, 4)
    with pytest.raises(ValueError, match="not finite"):
        bad = PsnrAccumulator(10)
        bad.add("a", 22, 0, 10, rec=1.0, filt=float("nan"))
        bad.qp_rows()


def test_mean_per_qp_skips_missing_values():
    from codecnn.io.metrics import mean_per_qp

    rows = [{"qp": 27, "gain": 0.1}, {"qp": 22, "gain": None}, {"qp": 22, "gain": 0.3}]
    assert mean_per_qp(rows, ["gain"]) == [{"qp": 22, "sequences": 2, "gain": 0.3},
                                           {"qp": 27, "sequences": 1, "gain": 0.1}]
