"""Pre-filters: nodata stays nodata, units and the statistics each filter promises."""

from __future__ import annotations

import numpy as np
import pytest

from glacierkit.errors import InputError
from glacierkit.velocity import prefilter as pf


@pytest.fixture
def image():
    rng = np.random.default_rng(3)
    rr, cc = np.mgrid[0:96, 0:128]
    img = 5000.0 + 40.0 * rr + 25.0 * cc + 200.0 * rng.standard_normal((96, 128))
    img[10:20, 30:50] = np.nan
    return img


def test_no_filter__float32_copy(image):
    out = pf.no_filter(image)
    assert out.dtype == np.float32 and out.shape == image.shape
    assert np.array_equal(np.isnan(out), np.isnan(image))


def test_gaussian_highpass__removes_plane_keeps_texture(image):
    out = pf.gaussian_highpass(image, sigma_px=3.0)
    assert np.array_equal(np.isnan(out), np.isnan(image))
    inner = out[30:-30, 30:-30]
    assert abs(np.nanmean(inner)) < 20.0  # the 40 DN/px plane is gone
    assert 120.0 < np.nanstd(inner) < 230.0  # white texture (200 DN) mostly kept


@pytest.fixture
def uneven():
    """White texture whose contrast is 20× higher on the right than on the left."""
    rng = np.random.default_rng(4)
    amp = np.where(np.arange(128) < 64, 10.0, 200.0)
    return 3000.0 + amp * rng.standard_normal((96, 128))


def test_wallis__equalises_contrast(image, uneven):
    assert np.array_equal(np.isnan(pf.wallis(image)), np.isnan(image))
    out = pf.wallis(uneven, window_px=21)
    for half in (out[20:-20, 12:52], out[20:-20, 76:116]):
        assert abs(half.mean()) < 0.1
        assert 0.85 < half.std() < 1.1


def test_wallis__contrast_and_brightness_targets(uneven):
    out = pf.wallis(uneven, window_px=21, target_mean=100.0, target_std=10.0)
    inner = out[20:-20, 76:116]
    assert abs(inner.mean() - 100.0) < 1.0
    assert 8.5 < inner.std() < 11.0


def test_orientation__unit_vectors_zero_at_nodata(image):
    out = pf.orientation(image)
    assert out.dtype == np.complex64
    mod = np.abs(out)
    assert np.allclose(mod[mod > 0], 1.0, atol=1e-6)
    assert np.all(out[9:21, 30:50] == 0) and np.all(out[10:20, 29:51] == 0)  # touches nodata
    assert np.all(out[0, :] == 0) and np.all(out[:, -1] == 0)  # border


def test_orientation__gradient_direction():
    rr, cc = np.mgrid[0:16, 0:16].astype(float)
    np.testing.assert_allclose(pf.orientation(3.0 * cc)[5:-5, 5:-5], 1.0 + 0j, atol=1e-6)
    np.testing.assert_allclose(pf.orientation(-2.0 * rr)[5:-5, 5:-5], -1j, atol=1e-6)
    assert np.all(pf.orientation(np.ones((8, 8))) == 0)


def test_apply_prefilter__by_name(image):
    np.testing.assert_array_equal(pf.apply_prefilter(image, "highpass", sigma_px=2.0),
                                  pf.gaussian_highpass(image, sigma_px=2.0))
    with pytest.raises(InputError, match="unknown prefilter"):
        pf.apply_prefilter(image, "sobel")


@pytest.mark.parametrize(("func", "kwargs", "text"), [
    (pf.gaussian_highpass, {"sigma_px": 0.0}, "sigma_px"),
    (pf.wallis, {"window_px": 4}, "window_px"),
    (pf.wallis, {"contrast": 1.5}, "contrast"),
])
def test_prefilters__bad_arguments(image, func, kwargs, text):
    with pytest.raises(InputError, match=text):
        func(image, **kwargs)


def test_prefilters__reject_non_2d():
    with pytest.raises(InputError, match="2-D"):
        pf.gaussian_highpass(np.zeros((2, 8, 8)))


def test_wallis__all_nan_stays_nan():
    out = pf.wallis(np.full((16, 16), np.nan), window_px=5)
    assert np.all(np.isnan(out))
