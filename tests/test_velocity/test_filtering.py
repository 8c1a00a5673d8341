"""Filtering of offset fields: outliers removed, smooth fields kept, clumps, smoothing, gap fill.

The smooth test field (``smooth_field``) is a glacier-like flow on a 100 × 140 node grid:
a Gaussian "tongue" of up to 12 px along columns and 4 px along rows plus a gentle ramp,
with 0.05 px Gaussian noise. Its largest change between neighbouring nodes is ≈ 0.8 px.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from glacierkit.errors import InputError
from glacierkit.velocity.filtering import (
    FillConfig,
    FilterConfig,
    MADConfig,
    NDCConfig,
    QualityThresholds,
    SmoothConfig,
    fill_gaps,
    filter_field,
    mad_filter,
    ndc_filter,
    quality_filter,
    remove_small_clumps,
    smooth,
    sync_status,
)
from glacierkit.velocity.status import Status

H, W = 100, 140
NOISE = 0.05


def _truth():
    r, c = np.meshgrid(np.arange(H, dtype=float), np.arange(W, dtype=float), indexing="ij")
    tongue = np.exp(-(((r - 50) / 22.0) ** 2) - ((c - 60) / 45.0) ** 2)
    return 12.0 * tongue + 0.01 * c, 4.0 * tongue - 0.005 * r


@pytest.fixture()
def smooth_field():
    rng = np.random.default_rng(7)
    tx, ty = _truth()
    dx = (tx + rng.normal(0, NOISE, (H, W))).astype(np.float32)
    dy = (ty + rng.normal(0, NOISE, (H, W))).astype(np.float32)
    return dx, dy, np.zeros((H, W), dtype=np.uint8)


@pytest.fixture()
def with_outliers(smooth_field):
    dx, dy, st = (a.copy() for a in smooth_field)
    rng = np.random.default_rng(11)
    out = rng.random((H, W)) < 0.02
    n = int(out.sum())
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    dx[out] += (sign * rng.uniform(2.0, 10.0, n)).astype(np.float32)
    dy[out] -= (sign * rng.uniform(1.0, 6.0, n)).astype(np.float32)
    return dx, dy, st, out


def _check_invariant(res):
    finite = np.isfinite(res.dx) & np.isfinite(res.dy)
    valid = np.isin(res.status, (Status.OK, Status.FILLED))
    np.testing.assert_array_equal(finite, valid)
    assert res.status.dtype == np.uint8


# ----------------------------------------------------------------------------- smooth field
@pytest.mark.parametrize("fn", [ndc_filter, mad_filter, filter_field])
def test_filters__smooth_field_keeps_99_percent(smooth_field, fn):
    dx, dy, st = smooth_field
    res = fn(dx, dy, st)
    kept = np.isfinite(res.dx).mean()
    assert kept >= 0.99, kept
    ok = np.isfinite(res.dx)
    np.testing.assert_array_equal(res.dx[ok], dx[ok])       # kept nodes are unchanged
    assert res.dx.dtype == np.float32
    _check_invariant(res)


@pytest.mark.parametrize("fn", [ndc_filter, mad_filter])
def test_filters__remove_injected_outliers(with_outliers, fn):
    dx, dy, st, out = with_outliers
    before = (dx.copy(), dy.copy(), st.copy())
    res = fn(dx, dy, st)
    removed = ~np.isfinite(res.dx)
    assert removed[out].all(), int((~removed[out]).sum())  # every outlier removed
    assert (~removed[~out]).mean() >= 0.99                   # clean nodes kept
    assert (res.status[removed] == Status.FILTERED).all()
    for a, b in zip(before, (dx, dy, st), strict=True):       # inputs untouched
        np.testing.assert_array_equal(a, b)
    _check_invariant(res)
    assert res.log[0]["removed"] == int(removed.sum())


def test_ndc__rule_counts_coherent_neighbours():
    dx = np.zeros((7, 7))
    dy = np.zeros((7, 7))
    dx[3, 3] = 3.0                                  # differs by 3 > tolerance from all 24
    st = np.zeros((7, 7), dtype=np.uint8)
    res = ndc_filter(dx, dy, st, tolerance_px=2.0)
    assert np.isnan(res.dx[3, 3]) and np.isfinite(res.dx).sum() == 48
    res = ndc_filter(dx, dy, st, tolerance_px=3.5)   # within tolerance: kept
    assert np.isfinite(res.dx).all()
    # A corner node of a 3 × 3 island sees 9 valid nodes ≥ 8 = 8/25 · 25: kept; a 2 × 2
    # island sees 4: removed.
    island = np.full((9, 9), np.nan)
    island[:3, :3] = 0.0
    island[6:8, 6:8] = 0.0
    st = np.where(np.isfinite(island), Status.OK, Status.EDGE).astype(np.uint8)
    res = ndc_filter(island, island, st)
    assert np.isfinite(res.dx[:3, :3]).all() and np.isnan(res.dx[6:8, 6:8]).all()


def test_mad__keeps_nodes_it_cannot_judge():
    dx = np.full((9, 9), np.nan)
    dx[4, 4] = 50.0                                  # alone: no neighbourhood to judge
    dx[0, :3] = [0.0, 0.1, 30.0]
    st = np.where(np.isfinite(dx), Status.OK, Status.NODATA).astype(np.uint8)
    res = mad_filter(dx, dx, st, min_valid_nodes=5)
    np.testing.assert_array_equal(np.isfinite(res.dx), np.isfinite(dx))


# ----------------------------------------------------------------------------- quality
def test_quality_filter__thresholds():
    dx = np.zeros((4, 4), dtype=np.float32)
    st = np.zeros((4, 4), dtype=np.uint8)
    corr = np.full((4, 4), 0.8)
    corr[0, 0] = 0.1
    snr = np.full((4, 4), 5.0)
    snr[1, 1] = np.nan
    ratio = np.full((4, 4), 2.0)
    ratio[2, 2] = 1.05
    res = quality_filter(dx, dx, st, peak_corr=corr, snr=snr, peak_ratio=ratio,
                         min_peak_corr=0.2, min_snr=2.0, min_peak_ratio=1.1)
    bad = np.zeros((4, 4), dtype=bool)
    bad[0, 0] = bad[1, 1] = bad[2, 2] = True
    assert (res.status[bad] == Status.LOW_QUALITY).all() and (res.status[~bad] == 0).all()
    assert np.isnan(res.dx[bad]).all()
    with pytest.raises(InputError, match="no snr array"):
        quality_filter(dx, dx, st, min_snr=2.0)


# ----------------------------------------------------------------------------- clumps
def test_remove_small_clumps():
    dx = np.zeros((20, 20))
    dx[9:14, 1:6] = np.nan
    dx[10:12, 2:5] = 0.5                  # 2 × 3 island inside a 1-node NaN ring
    island = np.zeros((20, 20), dtype=bool)
    island[10:12, 2:5] = True
    dx[15:19, 7:20] = np.nan
    dx[16:18, 8:19] = 1.0                 # 2 × 11 = 22-node clump, also ringed
    st = np.where(np.isfinite(dx), Status.OK, Status.NODATA).astype(np.uint8)
    for connectivity in (4, 8):
        res = remove_small_clumps(dx, dx, st, min_size_nodes=10, connectivity=connectivity)
        assert np.isnan(res.dx[island]).all()
        assert (res.status[island] == Status.FILTERED).all()
        assert np.isfinite(res.dx[16:18, 8:19]).all()
        assert res.log[0]["removed"] == 6
        _check_invariant(res)
    # Touching the main area diagonally only: separate with 4-, joined with 8-connectivity.
    dx2 = dx.copy()
    dx2[9, 1] = 0.0
    dx2[10, 1] = 0.0                      # bridge from the island to (9, 1) ... (8, 0)
    dx2[9, 0] = dx2[8, 1] = dx2[10, 0] = np.nan
    st2 = np.where(np.isfinite(dx2), Status.OK, Status.NODATA).astype(np.uint8)
    n4 = remove_small_clumps(dx2, dx2, st2, min_size_nodes=10, connectivity=4).log[0]
    n8 = remove_small_clumps(dx2, dx2, st2, min_size_nodes=10, connectivity=8).log[0]
    assert n4["removed"] == 8 and n8["removed"] == 0


# ----------------------------------------------------------------------------- smoothing
@pytest.mark.parametrize("method", ["median", "gaussian"])
def test_smooth__reduces_noise_keeps_nans(smooth_field, method):
    dx, dy, st = smooth_field
    dx = dx.copy()
    dx[40:43, 40:43] = np.nan
    st = st.copy()
    st[40:43, 40:43] = Status.LOW_TEXTURE
    res = smooth(dx, dy, st, method=method, size_nodes=3, sigma_nodes=1.0)
    tx, _ = _truth()
    inner = np.zeros((H, W), dtype=bool)
    inner[5:-5, 5:-5] = True
    inner[35:48, 35:48] = False
    err_before = np.std((dx - tx)[inner])
    err_after = np.std((res.dx - tx)[inner])
    assert err_after < 0.7 * err_before
    assert np.isnan(res.dx[40:43, 40:43]).all()
    np.testing.assert_array_equal(res.status, st)
    _check_invariant(res)


# ----------------------------------------------------------------------------- gap filling
def test_fill_gaps__small_holes_reproduce_smooth_field(smooth_field):
    dx, dy, st = (a.copy() for a in smooth_field)
    tx, ty = _truth()
    holes = np.zeros((H, W), dtype=bool)
    r, c = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    for r0, c0, rad in ((20, 30, 2.0), (50, 60, 2.5), (70, 100, 1.5), (48, 20, 1.0)):
        holes |= (r - r0) ** 2 + (c - c0) ** 2 <= rad**2
    big = (r >= 80) & (r < 92) & (c >= 10) & (c < 22)       # 12 × 12: too far from data
    edge = (r < 3) & (c >= 60) & (c < 64)                   # touches the border
    for m, code in ((holes, Status.LOW_QUALITY), (big, Status.NODATA),
                    (edge, Status.EDGE)):
        dx[m] = np.nan
        dy[m] = np.nan
        st[m] = code
    res = fill_gaps(dx, dy, st, max_distance_nodes=3.0)
    assert (res.status[holes] == Status.FILLED).all()
    assert (res.status[big] == Status.NODATA).all() and np.isnan(res.dx[big]).all()
    assert (res.status[edge] == Status.EDGE).all()
    assert (res.status[~(holes | big | edge)] == Status.OK).all()
    ex, ey = res.dx[holes] - tx[holes], res.dy[holes] - ty[holes]
    err_max = max(np.max(np.abs(ex)), np.max(np.abs(ey)))
    err_rms = np.sqrt(np.mean(np.concatenate([ex, ey]) ** 2))
    # px, on a 12 px tongue with 0.05 px noise; the largest error is at the hole on the
    # tongue's crest, where harmonic filling flattens the peak (maximum principle).
    assert err_max < 0.2 and err_rms < 0.08, (err_max, err_rms)
    assert res.log[0]["filled"] == int(holes.sum())
    _check_invariant(res)
    # Edge holes are filled on request; an excluded node never is.
    excl = np.zeros((H, W), dtype=bool)
    excl[50, 60] = True
    res2 = fill_gaps(dx, dy, st, max_distance_nodes=3.0, fill_edges=True, exclude=excl)
    assert (res2.status[edge] == Status.FILLED).all()
    assert res2.status[50, 60] == Status.LOW_QUALITY and np.isnan(res2.dx[50, 60])


def test_fill_gaps__linear_field_exact_and_hole_size_limit():
    r, c = np.meshgrid(np.arange(30.0), np.arange(30.0), indexing="ij")
    lin = 0.3 * c - 0.2 * r + 1.0
    dx = lin.copy()
    st = np.zeros((30, 30), dtype=np.uint8)
    dx[10:14, 10:14] = np.nan
    dx[20, 20] = np.nan
    st[np.isnan(dx)] = Status.FILTERED
    res = fill_gaps(dx, dx, st, max_distance_nodes=2.0)
    np.testing.assert_allclose(res.dx, lin, atol=1e-9)
    res = fill_gaps(dx, dx, st, max_distance_nodes=2.0, max_hole_nodes=4)
    assert np.isnan(res.dx[10:14, 10:14]).all() and res.status[20, 20] == Status.FILLED


# ----------------------------------------------------------------------------- chain, config
def test_filter_field__chain_log_and_config(with_outliers):
    dx, dy, st, out = with_outliers
    corr = np.full((H, W), 0.9)
    corr[:2] = 0.05
    cfg = FilterConfig(quality=QualityThresholds(min_peak_corr=0.1),
                       ndc=NDCConfig(tolerance_px=1.5), mad=MADConfig(),
                       smooth=SmoothConfig(method="gaussian"), fill=FillConfig())
    res = filter_field(dx, dy, st, config=cfg, peak_corr=corr)
    assert [e["step"] for e in res.log] == ["quality", "ndc", "mad", "clumps", "smooth",
                                            "fill"]
    assert (res.status[:2] == Status.LOW_QUALITY).all()
    assert res.log[0]["removed"] == 2 * W
    assert res.log[-1]["filled"] > 0 and (res.status == Status.FILLED).sum() == \
        res.log[-1]["filled"]
    # Outliers either removed or filled from their neighbours (never left as they were).
    tx, _ = _truth()
    left = out & np.isfinite(res.dx)
    assert np.all(np.abs(res.dx[left] - tx[left]) < 0.5)
    json.dumps(cfg.to_dict())
    json.dumps(list(res.log))
    _check_invariant(res)


def test_inputs__normalised_and_validated():
    dx = np.zeros((5, 5))
    dx[0, 0] = np.nan                                # status says OK but value is NaN
    st = np.zeros((5, 5), dtype=np.uint8)
    st[1, 1] = Status.EDGE                           # status says failed, value finite
    res = filter_field(dx, dx, st, config=FilterConfig(ndc=None, mad=None, clumps=None))
    assert res.status[0, 0] == Status.FILTERED and np.isnan(res.dx[1, 1])
    assert res.log[0]["step"] == "input" and res.log[0]["removed"] == 1
    np.testing.assert_array_equal(sync_status(st, dx, dx)[0, 0], Status.FILTERED)
    with pytest.raises(InputError, match="one shape"):
        ndc_filter(dx, dx[:3], st)
    with pytest.raises(InputError, match="float"):
        mad_filter(np.zeros((5, 5), dtype=int), dx, st)
    with pytest.raises(InputError, match="Status codes"):
        mad_filter(dx, dx, np.full((5, 5), 9, dtype=np.uint8))
    with pytest.raises(InputError, match="odd"):
        NDCConfig(size_nodes=4)
    with pytest.raises(InputError, match="tolerance_px"):
        ndc_filter(dx, dx, st, tolerance_px=-1.0)
    with pytest.raises(InputError, match="connectivity"):
        remove_small_clumps(dx, dx, st, connectivity=6)
    with pytest.raises(InputError, match="method"):
        SmoothConfig(method="mean")
    with pytest.raises(InputError, match=r"FilterConfig\.mad"):
        FilterConfig(mad=NDCConfig())
    with pytest.raises(InputError, match="exclude"):
        fill_gaps(dx, dx, st, exclude=np.zeros((5, 5)))


def test_all_nan_field_does_not_warn():
    nan = np.full((12, 12), np.nan, dtype=np.float32)
    st = np.full((12, 12), Status.NODATA, dtype=np.uint8)
    cfg = FilterConfig(smooth=SmoothConfig(), fill=FillConfig())
    res = filter_field(nan, nan, st, config=cfg)     # filterwarnings = error
    assert np.isnan(res.dx).all() and (res.status == Status.NODATA).all()
