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
