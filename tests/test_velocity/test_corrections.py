"""Correction estimators: known-answer recovery on synthetic stable ground, pipeline, errors.

Synthetic set-up shared by the recovery tests: a 120 × 160 node grid at 120 m spacing in
UTM coordinates; stable ground is everything outside an elliptical "glacier" (≈ 60 % of the
nodes); Gaussian noise of 0.05 px on both components; 3 % of the nodes NaN; and outliers on a
block of the stable mask (≈ 8 % of the stable nodes) plus scattered ones. Tolerance: 1 % of
each injected parameter.
"""

from __future__ import annotations

import itertools
import json
import logging

import numpy as np
import pytest

from glacierkit.errors import GridMismatchError, InputError
from glacierkit.io.grid import Grid
from glacierkit.velocity.corrections import (
    ConstantShift,
    CorrectionPipeline,
    ElevationRegression,
    Plane,
    Polynomial,
    grid_coordinates,
    robust_lstsq,
    slope_aspect,
    stable_stats,
)

H, W, RES = 120, 160, 120.0
X0, Y0 = 500_000.0, 6_700_000.0
NOISE = 0.05


def make_scene():
    rng = np.random.default_rng(42)
    x = X0 + RES * (np.arange(W) + 0.5)
    y = Y0 - RES * (np.arange(H) + 0.5)
    xx, yy = np.meshgrid(x, y)
    r, c = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    ice = ((r - 60) / 40.0) ** 2 + ((c - 85) / 55.0) ** 2 < 1.0
    stable = ~ice
    # Terrain independent of a plane in x, y: two bumps and a valley, 300–2600 m.
    dem = (300.0 + 1500.0 * np.exp(-(((r - 25) / 30.0) ** 2 + ((c - 30) / 25.0) ** 2))
           + 1200.0 * np.exp(-(((r - 95) / 20.0) ** 2 + ((c - 130) / 35.0) ** 2))
           + 300.0 * np.sin(c / 9.0) * np.cos(r / 13.0) + 300.0)
    noise = rng.normal(0.0, NOISE, (2, H, W))
    nan = rng.random((H, W)) < 0.03
    block = np.zeros((H, W), dtype=bool)
    block[100:120, 0:40] = True            # a block of stable ground with bad matches
    scattered = stable & (rng.random((H, W)) < 0.02)
    outl = (block | scattered) & stable
    sign = np.where(rng.random((H, W)) < 0.5, -1.0, 1.0)
    magnitude = rng.uniform(2.0, 8.0, (H, W))
    return {"x": xx, "y": yy, "stable": stable, "dem": dem, "noise": noise, "nan": nan,
            "outliers": outl, "sign": sign, "magnitude": magnitude}


@pytest.fixture(scope="module")
def scene():
    return make_scene()


def _field(s, bias_x, bias_y, *, one_sided=False):
    """Biases + noise + outliers (random sign, or all positive) + NaN holes."""
    out = []
    for k, bias in enumerate((bias_x, bias_y)):
        v = bias + s["noise"][k]
        sign = 1.0 if one_sided else s["sign"]
        v = np.where(s["outliers"], v + sign * s["magnitude"], v)
        v[s["nan"]] = np.nan
        out.append(v.astype(np.float32))
    return out


def _rel(got, want):
    return abs(got - want) / abs(want)


# ----------------------------------------------------------------------------- recovery
def test_constant_shift__recovers_injected_shift(scene):
    dx, dy = _field(scene, 1.5, -0.8)
    est = ConstantShift().fit(dx, dy, scene["stable"])
    p = est.params
    got = p["dx"]["terms"]["shift"]["value"], p["dy"]["terms"]["shift"]["value"]
    assert _rel(got[0], 1.5) < 0.01 and _rel(got[1], -0.8) < 0.01
    cx, cy = est.apply(dx, dy)
    after = stable_stats(cx, cy, scene["stable"] & ~scene["outliers"])
    assert abs(after["dx"]["median"]) < 0.01 and abs(after["dy"]["median"]) < 0.01
    assert cx.dtype == np.float32
    assert p["dx"]["terms"]["shift"]["unit"] == "px"


def test_plane__recovers_injected_ramp_in_map_coordinates(scene):
    bx, by = 5e-5, -8e-5                     # px per m of easting / northing
    xc, yc = scene["x"].mean(), scene["y"].mean()
    ramp_x = 1.0 + bx * (scene["x"] - xc) + by * (scene["y"] - yc)
    ramp_y = -0.5 - 4e-5 * (scene["x"] - xc) + 8e-5 * (scene["y"] - yc)
    dx, dy = _field(scene, ramp_x, ramp_y, one_sided=True)
    est = Plane().fit(dx, dy, scene["stable"], x=scene["x"], y=scene["y"])
    p = est.params
    for comp, (cx_, cy_, c0) in {"dx": (bx, by, ramp_x), "dy": (-4e-5, 8e-5, ramp_y)}.items():
        t = p[comp]["terms"]
        assert t["x"]["unit"] == "px/m"
        assert _rel(t["x"]["value"], cx_) < 0.01
        assert _rel(t["y"]["value"], cy_) < 0.01
        # The raw intercept is an extrapolation to the CRS origin (x = 0, y = 0); check the
        # plane's value at the grid centre and everywhere on the grid instead.
        model = t["1"]["value"] + t["x"]["value"] * scene["x"] + t["y"]["value"] * scene["y"]
        amp = np.ptp(c0)
        assert np.max(np.abs(model - c0)) < 0.01 * amp
        centre = p["centre"]
        want = c0[0, 0] + cx_ * (centre["x"] - scene["x"][0, 0]) \
            + cy_ * (centre["y"] - scene["y"][0, 0])
        assert _rel(p[comp]["at_centre"]["value"], want) < 0.01
    mx, _my = est.predict((H, W), x=scene["x"], y=scene["y"])
    assert np.max(np.abs(mx - ramp_x)) < 0.01 * np.ptp(ramp_x)


def test_polynomial__order2_recovers_quadratic_in_node_indices(scene):
    r, c = np.meshgrid(np.arange(H, dtype=float), np.arange(W, dtype=float), indexing="ij")
    coef = {"1": 1.0, "x": 0.02, "y": -0.03, "x^2": 1.5e-4, "x*y": -1.2e-4, "y^2": 2e-4}
    surf = (coef["1"] + coef["x"] * c + coef["y"] * r + coef["x^2"] * c**2
            + coef["x*y"] * c * r + coef["y^2"] * r**2)
    dx, dy = _field(scene, surf, -surf, one_sided=True)
    est = Polynomial(order=2).fit(dx, dy, scene["stable"])
    p = est.params
    assert p["coordinates"] == "index"
    for name, want in coef.items():
        assert _rel(p["dx"]["terms"][name]["value"], want) < 0.01, name
        assert _rel(p["dy"]["terms"][name]["value"], -want) < 0.01, name
    assert p["dx"]["terms"]["x^2"]["unit"] == "px/node^2"


def test_elevation_regression__recovers_elevation_linear_bias(scene):
    z = scene["dem"]
    gx, gy = 6e-4, -4e-4                       # px per m of elevation
    bias_x = 0.4 + gx * (z - 1000.0)
    bias_y = -0.2 + gy * (z - 1000.0)
    dx, dy = _field(scene, bias_x, bias_y, one_sided=True)
    est = ElevationRegression().fit(dx, dy, scene["stable"], dem=z)
    p = est.params
    z_ref = p["reference_elevation"]["value"]
    for comp, (g, b) in {"dx": (gx, 0.4), "dy": (gy, -0.2)}.items():
        t = p[comp]["terms"]
        assert t["elevation"]["unit"] == "px/m"
        assert _rel(t["elevation"]["value"], g) < 0.01
        assert t["elevation"]["stderr"] < 0.01 * abs(g)
        assert _rel(t["intercept"]["value"], b + g * (z_ref - 1000.0)) < 0.01
    cx, cy = est.apply(dx, dy, dem=z)
    clean = scene["stable"] & ~scene["outliers"]
    after = stable_stats(cx, cy, clean)
    assert after["dx"]["nmad"] < 1.1 * NOISE and after["dy"]["nmad"] < 1.1 * NOISE


def test_elevation_regression__slope_and_aspect_terms(scene):
    z = scene["dem"]
    slope, aspect = slope_aspect(z, RES)
    a = np.radians(aspect)
    inj = {"elevation": 6e-4, "slope": 0.04, "sin_aspect": 0.5, "cos_aspect": -0.4}
    bias = (0.25 + inj["elevation"] * (z - 1000.0) + inj["slope"] * slope
            + inj["sin_aspect"] * np.sin(a) + inj["cos_aspect"] * np.cos(a))
    dx, dy = _field(scene, bias, 0.5 * bias, one_sided=True)
    est = ElevationRegression(slope=True, aspect=True)
    est.fit(dx, dy, scene["stable"], dem=z, slope=slope, aspect=aspect)
    for comp, k in (("dx", 1.0), ("dy", 0.5)):
        t = est.params[comp]["terms"]
        for name, want in inj.items():
            assert _rel(t[name]["value"], k * want) < 0.01, (comp, name)
    assert est.params["terms"] == ["intercept", "elevation", "slope", "sin_aspect",
                                   "cos_aspect"]
    assert est.params["dx"]["terms"]["slope"]["unit"] == "px/deg"


def test_elevation_regression__joint_plane_recovers_both(scene):
    z = scene["dem"]
    xc, yc = scene["x"].mean(), scene["y"].mean()
    bias_x = 2.0 + 4e-5 * (scene["x"] - xc) + 5e-4 * (z - 1000.0)
    bias_y = -1.0 - 6e-5 * (scene["y"] - yc) - 5e-4 * (z - 1000.0)
    dx, dy = _field(scene, bias_x, bias_y)
    est = ElevationRegression(xy_order=1).fit(dx, dy, scene["stable"], dem=z,
                                              x=scene["x"], y=scene["y"])
    tx, ty = est.params["dx"]["terms"], est.params["dy"]["terms"]
    assert _rel(tx["elevation"]["value"], 5e-4) < 0.01
    assert _rel(ty["elevation"]["value"], -5e-4) < 0.01
    assert _rel(tx["x"]["value"], 4e-5) < 0.01 and _rel(ty["y"]["value"], -6e-5) < 0.01
    assert abs(tx["y"]["value"]) < 4 * tx["y"]["stderr"]          # not injected: ~0
    assert abs(ty["x"]["value"]) < 4 * ty["x"]["stderr"]
    assert tx["x"]["unit"] == "px/m" and est.params["coordinates"] == "map"
    with pytest.raises(InputError, match="xy_order"):
        ElevationRegression(xy_order=2)


# ----------------------------------------------------------------------------- pipeline
def test_pipeline__applies_in_order_and_reports_each_step(scene):
    z = scene["dem"]
    xc, yc = scene["x"].mean(), scene["y"].mean()
    bias_x = 2.0 + 4e-5 * (scene["x"] - xc) + 3e-4 * (z - 1000.0)
    bias_y = -1.0 - 3e-5 * (scene["y"] - yc) - 2e-4 * (z - 1000.0)
    dx, dy = _field(scene, bias_x, bias_y)
    cov = {"x": scene["x"], "y": scene["y"], "dem": z}
    a, b, c = ConstantShift(), Plane(), ElevationRegression()
    pipe = a + b + c
    assert isinstance(pipe, CorrectionPipeline)
    assert [s.name for s in pipe.steps] == ["ConstantShift", "Plane", "ElevationRegression"]
    cx, cy = pipe.fit_apply(dx, dy, scene["stable"], **cov)
    assert not a.is_fitted                     # the pipeline holds copies

    # Same as fitting and applying the steps one after another by hand.
    ex, ey = dx, dy
    for est in (ConstantShift(), Plane(), ElevationRegression()):
        ex, ey = est.fit_apply(ex, ey, scene["stable"], **cov)
    np.testing.assert_allclose(cx, ex, rtol=0, atol=1e-6)
    np.testing.assert_allclose(cy, ey, rtol=0, atol=1e-6)

    rep = pipe.report()
    json.dumps(rep)                            # plain JSON
    steps = rep["steps"]
    assert [s["name"] for s in steps] == ["ConstantShift", "Plane", "ElevationRegression"]
    for prev, nxt in itertools.pairwise(steps):
        assert prev["stable"]["after"] == nxt["stable"]["before"]
    assert rep["stable"]["before"] == steps[0]["stable"]["before"]
    assert rep["stable"]["after"] == steps[-1]["stable"]["after"]
    for s in steps:
        assert set(s["stable"]["before"]) == {"n", "units", "dx", "dy"}
        assert set(s["stable"]["before"]["dx"]) == {"median", "nmad", "std", "rmse"}
    assert rep["stable"]["after"]["dx"]["nmad"] < rep["stable"]["before"]["dx"]["nmad"]
    assert abs(rep["stable"]["after"]["dx"]["median"]) < 0.01
    clean = scene["stable"] & ~scene["outliers"]
    resid = stable_stats(cx, cy, clean)
    assert resid["dx"]["nmad"] < 1.2 * NOISE and resid["dy"]["nmad"] < 1.2 * NOISE
    # apply reproduces fit_apply, and nested pipelines flatten.
    ax, _ = pipe.apply(dx, dy, **cov)
    np.testing.assert_array_equal(ax, cx)
    assert len(((a + b) + (c + ConstantShift())).steps) == 4
    mx, _ = pipe.predict((H, W), **cov)
    np.testing.assert_allclose(dx - mx, cx, atol=1e-5, equal_nan=True)


def test_report__json_friendly_with_units(scene):
    dx, dy = _field(scene, 0.5, 0.5)
    est = Plane().fit(dx, dy, scene["stable"], x=scene["x"], y=scene["y"], units="m",
                      xy_units="m")
    rep = est.report()
    text = json.dumps(rep)
    assert "NaN" not in text
    assert rep["params"]["dx"]["terms"]["x"]["unit"] == "m/m"
    assert rep["stable"]["before"]["units"] == "m"
    assert rep["n_fit"] == int((scene["stable"] & ~scene["nan"]).sum())


# ----------------------------------------------------------------------------- bad input
def test_fit__too_few_stable_nodes(scene):
    dx, dy = _field(scene, 0.0, 0.0)
    mask = np.zeros((H, W), dtype=bool)
    mask[:5, :10] = True
    mask[0, 0] = True
    n = int((mask & ~scene["nan"]).sum())
    with pytest.raises(InputError, match=rf"only {n} stable nodes.*min_stable=100"):
        ConstantShift().fit(dx, dy, mask)
    ConstantShift(min_stable=10).fit(dx, dy, mask)      # configurable


def test_fit__empty_stable_mask_and_all_nan(scene):
    dx, dy = _field(scene, 0.0, 0.0)
    with pytest.raises(InputError, match="selects no node"):
        Plane().fit(dx, dy, np.zeros((H, W), dtype=bool))
    nan = np.full((H, W), np.nan)
    with pytest.raises(InputError, match="NaN everywhere"):
        ConstantShift().fit(nan, nan, scene["stable"])


def test_fit__dem_on_other_grid_and_missing_covariates(scene):
    dx, dy = _field(scene, 0.0, 0.0)
    with pytest.raises(GridMismatchError, match=r"dem has shape \(60, 80\).*Resample"):
        ElevationRegression().fit(dx, dy, scene["stable"], dem=np.zeros((60, 80)))
    with pytest.raises(InputError, match="needs dem"):
        ElevationRegression().fit(dx, dy, scene["stable"])
    with pytest.raises(InputError, match="needs slope"):
        ElevationRegression(slope=True).fit(dx, dy, scene["stable"], dem=scene["dem"])
    with pytest.raises(GridMismatchError, match="stable_mask"):
        ConstantShift().fit(dx, dy, scene["stable"][:10])
    with pytest.raises(InputError, match="both x and y"):
        Plane().fit(dx, dy, scene["stable"], x=scene["x"])
    with pytest.raises(InputError, match="same shape"):
        ConstantShift().fit(dx, dy[:10], scene["stable"])


def test_fit__dem_holes_reduce_usable_nodes_and_apply_gives_nan(scene, caplog):
    dx, dy = _field(scene, 0.0, 0.0)
    dem = np.full((H, W), np.nan)
    dem[:8, :8] = scene["dem"][:8, :8]            # stable corner: < 64 usable nodes
    with pytest.raises(InputError, match=r"only \d+ stable nodes.*with finite covariates"):
        ElevationRegression().fit(dx, dy, scene["stable"], dem=dem)
    dem = scene["dem"].copy()
    dem[:5] = np.nan
    est = ElevationRegression().fit(dx, dy, scene["stable"], dem=dem)
    with caplog.at_level(logging.WARNING):
        cx, _ = est.apply(dx, dy, dem=dem)
    assert np.isnan(cx[:5]).all() and "became NaN" in caplog.text


def test_fit__flat_dem_is_rank_deficient(scene):
    dx, dy = _field(scene, 0.0, 0.0)
    with pytest.raises(InputError, match="one elevation"):
        ElevationRegression().fit(dx, dy, scene["stable"], dem=np.full((H, W), 1000.0))


def test_apply__before_fit_and_coordinate_kind_mismatch(scene):
    dx, dy = _field(scene, 0.0, 0.0)
    with pytest.raises(InputError, match="not fitted"):
        Plane().apply(dx, dy)
    est = Plane().fit(dx, dy, scene["stable"], x=scene["x"], y=scene["y"])
    with pytest.raises(InputError, match="map coordinates but applied with index"):
        est.apply(dx, dy)


def test_constructor_validation():
    with pytest.raises(InputError, match="order"):
        Polynomial(order=3)
    with pytest.raises(InputError, match="min_stable"):
        ConstantShift(min_stable=0)
    with pytest.raises(InputError, match="Correction"):
        CorrectionPipeline([ConstantShift(), "plane"])


# ----------------------------------------------------------------------------- helpers
def test_robust_lstsq__ignores_gross_outliers():
    rng = np.random.default_rng(1)
    t = rng.uniform(-1, 1, 2000)
    a = np.stack([np.ones_like(t), t], axis=1)
    b = 2.0 + 3.0 * t + rng.normal(0, 0.05, t.size)
    b[:400] += 10.0                                  # 20 % one-sided outliers
    fit = robust_lstsq(a, b)
    np.testing.assert_allclose(fit.coef, [2.0, 3.0], atol=0.01)
    assert fit.n_inliers == 1600
    with pytest.raises(InputError, match="rank deficient"):
        robust_lstsq(np.ones((10, 2)), np.ones(10))


def test_slope_aspect__tilted_plane():
    east = np.arange(20.0)[None, :] * 30.0
    dem = np.broadcast_to(0.1 * east, (15, 20))      # rises to the east: faces west
    slope, aspect = slope_aspect(dem, 30.0)
    np.testing.assert_allclose(slope, np.degrees(np.arctan(0.1)))
    np.testing.assert_allclose(aspect, 270.0)
    north = np.arange(15.0)[::-1, None] * 30.0       # rows run south: rises to the north
    _, aspect = slope_aspect(np.broadcast_to(north, (15, 20)), 30.0)
    np.testing.assert_allclose(aspect, 180.0)
    _, aspect = slope_aspect(np.zeros((4, 4)), 30.0)
    assert np.isnan(aspect).all()


def test_grid_coordinates__node_centres():
    from affine import Affine

    g = Grid(crs="EPSG:32607", transform=Affine(120.0, 0, X0, 0, -120.0, Y0), shape=(3, 4))
    x, y = grid_coordinates(g)
    assert x.shape == (3, 4)
    assert x[0, 0] == X0 + 60.0 and y[0, 0] == Y0 - 60.0 and x[0, 3] == X0 + 3.5 * 120.0


def test_coordinates__1d_vectors_equal_2d_grids(scene):
    dx, dy = _field(scene, 0.3 + 5e-5 * (scene["x"] - X0), 0.0)
    a = Plane().fit(dx, dy, scene["stable"], x=scene["x"], y=scene["y"])
    b = Plane().fit(dx, dy, scene["stable"], x=scene["x"][0], y=scene["y"][:, 0])
    assert a.params == b.params
    with pytest.raises(InputError, match="has 10 values but the field has 160 columns"):
        Plane().fit(dx, dy, scene["stable"], x=scene["x"][0, :10], y=scene["y"][:, 0])
    bad = scene["x"].copy()
    bad[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        Plane().fit(dx, dy, scene["stable"], x=bad, y=scene["y"])
