"""Glacier area with an interval (glacierkit.metrics.area)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import ndimage

from glacierkit.errors import InputError
from glacierkit.metrics import area_with_interval
from glacierkit.metrics.area import block_sums

PX = 100.0  # m² (10 m pixels)


def _smooth_probability(shape=(120, 120), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = ndimage.gaussian_filter(rng.standard_normal(shape), 6)
    z /= z.std()
    return 1.0 / (1.0 + np.exp(-1.5 * z))               # calibrated-looking, spread over (0, 1)


def test_all_ones_is_the_valid_area_with_a_degenerate_interval():
    p = np.ones((53, 71))
    p[:5, :7] = np.nan                                   # nodata is not area
    n_valid = 53 * 71 - 35
    for method in ("bernoulli-blocks", "block-bootstrap"):
        r = area_with_interval(p, pixel_area_m2=PX, block_px=10, method=method,
                               n_resamples=500)
        assert r["expected_km2"] == pytest.approx(n_valid * PX / 1e6, rel=1e-12)
        assert r["lower_km2"] == r["upper_km2"] == r["expected_km2"]
        assert r["valid_area_km2"] == pytest.approx(n_valid * PX / 1e6)
        assert r["n_blocks"] == 6 * 8 and r["block_px"] == 10 and r["method"] == method
    z = area_with_interval(np.zeros((40, 40)), pixel_area_m2=np.float32(PX), block_px=8,
                           n_resamples=100)
    assert z["expected_km2"] == z["lower_km2"] == z["upper_km2"] == 0.0


def test_block_sums_counts_partial_blocks_and_drops_empty_ones():
    p = np.full((5, 5), 0.5)
    p[:, 4] = np.nan
    p[4, :] = np.nan
    s, v, n = block_sums(p, 2)
    assert s.size == 4 and n.tolist() == [4, 4, 4, 4]   # the last row/column blocks are empty
    assert s.sum() == pytest.approx(8.0) and v.sum() == pytest.approx(4.0)


def test_bernoulli_blocks_covers_independent_truth_at_the_nominal_rate():
    p = _smooth_probability()
    r = area_with_interval(p, pixel_area_m2=PX, block_px=12, n_resamples=4000, seed=1)
    rng = np.random.default_rng(7)
    truth = np.array([(rng.random(p.shape) < p).sum() * PX / 1e6 for _ in range(200)])
    cover = np.mean((truth >= r["lower_km2"]) & (truth <= r["upper_km2"]))
    assert 0.90 <= cover <= 0.99
    # the interval's std is the analytic one: sqrt(Σ p(1−p)) pixels
    assert r["std_km2"] == pytest.approx(np.sqrt(np.sum(p * (1 - p))) * PX / 1e6, rel=0.05)
    assert r["expected_km2"] == pytest.approx(p.sum() * PX / 1e6)


def test_correlated_errors_need_pixels_per_sample():
    cell = 4                                            # errors shared by 4 × 4 px cells
    pc = _smooth_probability((30, 30), seed=2)
    p = np.kron(pc, np.ones((cell, cell)))
    rng = np.random.default_rng(3)
    truth = np.array([np.kron(rng.random(pc.shape) < pc, np.ones((cell, cell))).sum()
                      * PX / 1e6 for _ in range(200)])

    def coverage(c: float) -> float:
        r = area_with_interval(p, pixel_area_m2=PX, block_px=12, pixels_per_sample=c,
                               n_resamples=4000, seed=4)
        return float(np.mean((truth >= r["lower_km2"]) & (truth <= r["upper_km2"])))

    assert 0.90 <= coverage(cell * cell) <= 0.99
    assert coverage(1.0) < 0.6                          # independence is far too optimistic


def test_block_bootstrap_measures_heterogeneity_not_classification_error():
    half = np.zeros((64, 64))
    half[:, :32] = 1.0                                  # certain map: the area is known exactly
    flat = np.full((64, 64), 0.5)                       # uncertain everywhere
    kw = {"pixel_area_m2": PX, "block_px": 8, "n_resamples": 2000}
    bh = area_with_interval(half, method="block-bootstrap", **kw)
    bf = area_with_interval(flat, method="block-bootstrap", **kw)
    eh = area_with_interval(half, method="bernoulli-blocks", **kw)
    ef = area_with_interval(flat, method="bernoulli-blocks", **kw)
    assert bh["upper_km2"] - bh["lower_km2"] > 0.05     # wide although nothing is uncertain
    assert bf["upper_km2"] == bf["lower_km2"]           # zero width although all is uncertain
    assert eh["upper_km2"] == eh["lower_km2"] == eh["expected_km2"]
    assert ef["upper_km2"] - ef["lower_km2"] > 0.0
    assert bh["pixels_per_sample"] is None and eh["pixels_per_sample"] == 1.0


def test_block_bootstrap_centre_and_block_m():
    p = _smooth_probability((96, 96))
    r = area_with_interval(p, pixel_area_m2=PX, block_m=120.0, method="block-bootstrap",
                           n_resamples=3000, seed=0)
    assert r["block_px"] == 12 and r["n_blocks"] == 64
    assert r["lower_km2"] < r["expected_km2"] < r["upper_km2"]
    r2 = area_with_interval(p, pixel_area_m2=PX, block_m=3200.0, pixel_size_m=40.0,
                            method="block-bootstrap", n_resamples=100)
    assert r2["block_px"] == 80


def test_reproducible_and_level_orders_intervals():
    p = _smooth_probability((60, 60))
    a = area_with_interval(p, pixel_area_m2=PX, block_px=6, seed=5, n_resamples=2000)
    b = area_with_interval(p, pixel_area_m2=PX, block_px=6, seed=5, n_resamples=2000)
    assert a == b
    narrow = area_with_interval(p, pixel_area_m2=PX, block_px=6, seed=5, n_resamples=2000,
                                level=0.5)
    assert a["lower_km2"] < narrow["lower_km2"] < narrow["upper_km2"] < a["upper_km2"]


def test_fast_for_10000_resamples_on_thousands_of_blocks():
    p = _smooth_probability((500, 500), seed=9)
    t0 = time.perf_counter()
    for method in ("block-bootstrap", "bernoulli-blocks"):
        r = area_with_interval(p, pixel_area_m2=PX, block_px=10, method=method,
                               n_resamples=10_000)
        assert r["n_blocks"] == 2500 and r["n_resamples"] == 10_000
    assert time.perf_counter() - t0 < 20


@pytest.mark.parametrize("kwargs", [
    {"probability": np.full((10, 10), 1.2)},
    {"probability": np.full((10, 10), -0.1)},
    {"probability": np.full((10, 10), np.inf)},
    {"probability": np.full((10, 10), np.nan)},
    {"probability": np.ones((10, 10), dtype=np.uint8)},
    {"probability": np.ones(10)},
    {"block_px": 11},
    {"block_px": 0},
    {"block_px": None},
    {"block_px": 2, "block_m": 20.0},
    {"level": 0.0}, {"level": 1.0}, {"level": 1.5},
    {"n_resamples": 10},
    {"method": "jackknife"},
    {"pixels_per_sample": 0.5}, {"pixels_per_sample": 50.0},
    {"pixel_area_m2": 0.0}, {"pixel_area_m2": "100"[:0]},
])
def test_invalid_inputs_raise_input_error(kwargs):
    kw = {"probability": np.full((10, 10), 0.3), "pixel_area_m2": PX, "block_px": 5,
          "n_resamples": 100, **kwargs}
    with pytest.raises(InputError):
        area_with_interval(kw.pop("probability"), **kw)
