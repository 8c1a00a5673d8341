"""Quality metrics: stable-ground statistics, GLAFT's KDE box and strain rates, GPS comparison.

Known answers are synthetic (Gaussian noise with a known bias and σ; linear flow fields) or
come from outside sources: GLAFT's published demo numbers and CARST's own log.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from affine import Affine
from scipy.signal import medfilt2d
from shapely.geometry import box
from sklearn.neighbors import KernelDensity

from glacierkit.errors import CRSError, GridMismatchError, InputError
from glacierkit.io import Grid, Raster, open_raster, rasterize, read_vector, write_raster
from glacierkit.velocity import gps as gpsmod
from glacierkit.velocity import quality as q

UTM7 = "EPSG:32607"


def make_raster(arr: np.ndarray, grid: Grid, name: str, units: str = "") -> Raster:
    data = np.asarray(arr, dtype=np.float32)[None]
    return Raster(data=data, grid=grid, band_names=(name,), units=(units,), nodata=None,
                  source_dtype="float32", valid=np.isfinite(data))


def utm_grid(shape=(60, 80), res=60.0, x0=600000.0, y0=6740000.0) -> Grid:
    return Grid(UTM7, Affine(res, 0, x0, 0, -res, y0), shape)


# ----------------------------------------------------------------------------- statistics
def test_stable_stats__gaussian_noise_with_bias():
    rng = np.random.default_rng(42)
    shape = (300, 300)
    bias, sig = (0.30, -0.20), (0.50, 1.00)
    vx = bias[0] + sig[0] * rng.standard_normal(shape)
    vy = bias[1] + sig[1] * rng.standard_normal(shape)
    # 2 % gross mismatches: the median and NMAD must not care, the std must.
    bad = rng.random(shape) < 0.02
    vx[bad] += rng.uniform(-20, 20, bad.sum())
    mask = np.zeros(shape, bool)
    mask[:, :200] = True
    holes = rng.random(shape) < 0.1
    vy[holes] = np.nan
    st = q.stable_ground_stats(vx, vy, mask, units="m/day")
    assert st.units == "m/day"
    assert st.n_mask == 60000
    assert st.n_valid == int((mask & ~holes).sum())
    assert st.invalid_share == pytest.approx((mask & holes).sum() / 60000)
    assert st.x.n == st.y.n == st.n_valid
    # median within ~4 standard errors (σ·sqrt(π/2)/sqrt(n) ≈ 0.0027 for x)
    assert st.x.median == pytest.approx(bias[0], abs=0.012)
    assert st.y.median == pytest.approx(bias[1], abs=0.02)
    assert st.x.nmad == pytest.approx(sig[0], rel=0.04)
    assert st.y.nmad == pytest.approx(sig[1], rel=0.03)
    assert st.x.std > 3 * st.x.nmad  # the outliers inflate the classical spread
    assert st.y.std == pytest.approx(sig[1], rel=0.02)
    assert st.y.rmse == pytest.approx(math.hypot(*[bias[1], sig[1]]), rel=0.02)


def test_component_stats__exact_small_sample():
    s = q.component_stats([1.0, 2.0, 4.0, np.nan, 10.0])
    assert s.n == 4 and s.median == 3.0
    assert s.nmad == pytest.approx(1.4826 * 1.5)  # |v − 3| = 2, 1, 1, 7 → median 1.5
    assert s.std == pytest.approx(np.std([1, 2, 4, 10]))
    assert s.rmse == pytest.approx(math.sqrt((1 + 4 + 16 + 100) / 4))
    empty = q.component_stats([np.nan])
    assert empty.n == 0 and math.isnan(empty.median)


def test_stable_stats__bad_inputs():
    a = np.zeros((4, 5))
    with pytest.raises(InputError, match="shape"):
        q.stable_ground_stats(a, a, np.ones((5, 4), bool), units="m/day")
    with pytest.raises(InputError, match="boolean"):
        q.stable_ground_stats(a, a, np.full((4, 5), 2), units="m/day")
    with pytest.raises(InputError, match="same shape"):
        q.stable_ground_stats(a, np.zeros((4, 4)), np.ones((4, 5), bool), units="m/day")
    st = q.stable_ground_stats(a, a, np.zeros((4, 5), bool), units="m/day")
    assert st.n_mask == 0 and math.isnan(st.invalid_share)


def test_invalid_share__whole_map_and_mask():
    vx = np.ones((4, 5))
    vy = np.ones((4, 5))
    vx[0, 0] = np.nan
    vy[0, 1] = np.nan
    vy[0, 0] = np.nan
    assert q.invalid_share(vx, vy) == pytest.approx(2 / 20)
    m = np.zeros((4, 5), bool)
    m[0, :4] = True
    assert q.invalid_share(vx, vy, m) == pytest.approx(2 / 4)


def test_canonical_units():
    assert q.canonical_units("m/d") == "m/day"
    assert q.canonical_units(" M/A ") == "m/yr"
    assert q.strain_rate_units("m/yr") == "1/yr"
    with pytest.raises(InputError, match="m/day or m/yr"):
        q.canonical_units("km/h")


# ----------------------------------------------------------------------------- KDE
def _sklearn_density(points, at, h):
    kde = KernelDensity(kernel="epanechnikov", bandwidth=h).fit(points)
    return np.exp(kde.score_samples(at))


def test_epanechnikov_kde__matches_sklearn_and_a_plain_loop():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(400, 2)) * [1.0, 0.4] + [2.0, -1.0]
    xe, ye = np.linspace(-1, 5, 23), np.linspace(-2.5, 0.5, 19)
    xg, yg = np.meshgrid(xe, ye)
    at = np.column_stack([xg.ravel(), yg.ravel()])
    h = 0.5
    loop = np.array([sum(max(0.0, 1 - ((zx - px) ** 2 + (zy - py) ** 2) / h ** 2)
                         for px, py in pts) for zx, zy in at]) * 2 / (math.pi * len(pts) * h * h)
    direct = q.epanechnikov_kde(pts, at, bandwidth=h)
    mesh = q.epanechnikov_kde_mesh(pts, xe, ye, bandwidth=h)
    assert mesh.shape == (ye.size, xe.size)
    np.testing.assert_allclose(direct, loop, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(direct, _sklearn_density(pts, at, h), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(mesh.ravel(), direct, rtol=1e-9, atol=1e-12)
    # the density integrates to 1
    step = 0.01
    gx, gy = np.meshgrid(np.arange(-2, 6, step), np.arange(-3.5, 1.5, step))
    dens = q.epanechnikov_kde_mesh(pts, gx[0], gy[:, 0], bandwidth=h)
    assert dens.sum() * step * step == pytest.approx(1.0, abs=2e-3)


def _glaft_box_with_sklearn(x, y, sigma=2.0, gs=60):
    """GLAFT's Velocity steps written out independently, with scikit-learn's KDE."""
    xy = np.vstack([x, y])
    cov = np.cov(xy)
    s = (cov[0, 0] * cov[1, 1]) ** 0.25
    h = 2.1991 * s * xy.shape[1] ** (-1 / 6)
    kde = KernelDensity(kernel="epanechnikov", bandwidth=h).fit(xy.T)
    mx, my = np.median(x), np.median(y)

    def mesh(hw):
        gx, gy = np.meshgrid(np.linspace(mx - hw, mx + hw, gs), np.linspace(my - hw, my + hw, gs))
        m = np.vstack([gx.ravel(), gy.ravel()]).T
        z = np.exp(kde.score_samples(m))
        return m, z, z >= max(z) / np.e ** (sigma ** 2 / 2)

    m, z, t = mesh((sigma + 1) * s)
    hw = ((m[t, 0].max() - m[t, 0].min()) + (m[t, 1].max() - m[t, 1].min())) / 2
    m, z, t = mesh(hw)
    lo_x, hi_x, lo_y, hi_y = m[t, 0].min(), m[t, 0].max(), m[t, 1].min(), m[t, 1].max()
    out = ((x < lo_x) | (x > hi_x) | (y < lo_y) | (y > hi_y)).sum() / x.size
    return (hi_x - lo_x) / 2, (hi_y - lo_y) / 2, m[np.argmax(z), 0], m[np.argmax(z), 1], out


def test_kde_box__bivariate_normal_known_answer():
    """Threshold at exp(−σ²/2)·peak of a normal density is the ±σ·std ellipse: δ ≈ 2·std."""
    rng = np.random.default_rng(7)
    n, sx, sy, bx, by = 20000, 0.25, 0.5, -0.1, 0.3
    x = bx + sx * rng.standard_normal(n)
    y = by + sy * rng.standard_normal(n)
    b = q.kde_threshold_box(x, y)
    spacing = 2 * b.mesh_half_width / 59
    # KDE smoothing widens by sqrt(1 + h²/(6 std²)) (≈ 1 %); the box is on mesh vertices.
    assert b.half_width_x == pytest.approx(2 * sx, abs=spacing + 0.05 * sx)
    assert b.half_width_y == pytest.approx(2 * sy, abs=spacing + 0.05 * sy)
    assert abs(b.peak_x - bx) < spacing + 0.1 * sx
    assert abs(b.peak_y - by) < spacing + 0.1 * sy
    # outside the ±2σ box: 1 − 0.9545² = 0.089
    assert b.outside_share == pytest.approx(1 - 0.9545 ** 2, abs=0.02)
    assert b.n == n and not b.degenerate
    assert b.spread == pytest.approx(math.sqrt(sx * sy), rel=0.02)
    assert b.bandwidth == pytest.approx(2.1991 * b.spread * n ** (-1 / 6))


def test_kde_box__equals_independent_glaft_reimplementation():
    rng = np.random.default_rng(3)
    x = np.concatenate([0.05 + 0.2 * rng.standard_normal(3000), rng.uniform(-3, 3, 150)])
    y = np.concatenate([-0.02 + 0.3 * rng.standard_normal(3000), rng.uniform(-3, 3, 150)])
    b = q.kde_threshold_box(x, y)
    ref = _glaft_box_with_sklearn(x, y)
    got = (b.half_width_x, b.half_width_y, b.peak_x, b.peak_y, b.outside_share)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-14)


def test_kde_box__degenerate_and_too_small():
    b = q.kde_threshold_box(np.full(50, 0.5), np.full(50, -0.25))
    assert b.degenerate and b.half_width_x == 0 and b.half_width_y == 0
    assert (b.peak_x, b.peak_y, b.outside_share) == (0.5, -0.25, 0.0)
    with pytest.raises(InputError, match="at least 3"):
        q.kde_threshold_box([0.0, 1.0], [0.0, 1.0])
    with pytest.raises(InputError, match="sigma"):
        q.kde_threshold_box(np.arange(10.0), np.arange(10.0), sigma=0)


# ----------------------------------------------------------------------------- strain rates
def linear_flow(grid: Grid, theta: float, u0: float, stretch: float, shear: float):
    """Velocity along ``theta`` with ∂v'/∂x' = stretch and ∂v'/∂y' = shear (flow axes)."""
    rows, cols = np.mgrid[0:grid.height, 0:grid.width]
    x, y = grid.xy(rows, cols)
    x = x - x.mean()
    y = y - y.mean()
    xp = x * math.cos(theta) + y * math.sin(theta)
    yp = -x * math.sin(theta) + y * math.cos(theta)
    speed = u0 + stretch * xp + shear * yp
    assert speed.min() > 0
    return speed * math.cos(theta), speed * math.sin(theta)


@pytest.mark.parametrize("theta_deg", [30.0, -60.0, 120.0])
def test_strain_rates__rotated_linear_shear_and_stretch(theta_deg):
    grid = utm_grid((50, 70))
    theta = math.radians(theta_deg)
    stretch, shear = 2e-4, -6e-4  # 1/day
    vx, vy = linear_flow(grid, theta, 3.0, stretch, shear)
    exx, eyy, exy = q.strain_rates(vx, vy, grid, normalize=True)
    nrm, lat, shr = q.rotate_strain_rates(exx, eyy, exy, theta)
    inner = (slice(1, -1), slice(1, -1))
    np.testing.assert_allclose(nrm[inner], stretch, atol=1e-12)
    np.testing.assert_allclose(lat[inner], 0.0, atol=1e-12)
    np.testing.assert_allclose(shr[inner], shear / 2, atol=1e-12)  # tensor shear = ½ γ̇
    assert np.isnan(exx[0]).all() and np.isnan(exx[:, -1]).all()
    # GLAFT's scale: unnormalised Sobel / pixel size = 8 × the gradient
    gx = q.strain_rates(vx, vy, grid)[0]
    np.testing.assert_allclose(gx[inner], 8 * exx[inner], rtol=1e-12)
    # along flow, with the median-filtered direction (exactly theta away from the zero pad)
    k = 5
    normal, sh = q.along_flow_strain_rates(vx, vy, grid, kernel_px=k, normalize=True)
    core = (slice(k, -k), slice(k, -k))
    np.testing.assert_allclose(normal[core], stretch, atol=1e-12)
    np.testing.assert_allclose(sh[core], shear / 2, atol=1e-12)


def test_along_flow_strain__ice_mask_and_margins():
    grid = utm_grid((40, 50))
    vx, vy = linear_flow(grid, 0.3, 1.0, 1e-4, 3e-4)
    ice = np.zeros(grid.shape, bool)
    ice[10:30, 12:40] = True
    normal, shear = q.along_flow_strain_rates(vx, vy, grid, ice, kernel_px=3, normalize=True)
    defined = np.isfinite(normal)
    assert not defined[~ice].any()
    assert defined[11:29, 13:39].all() and not defined[10].any()  # margin row is NaN
    np.testing.assert_allclose(normal[defined], 1e-4, atol=1e-12)
    np.testing.assert_allclose(shear[defined], 1.5e-4, atol=1e-12)
    box = q.strain_rate_metric(vx, vy, grid, ice, kernel_px=3, normalize=True)
    assert box.degenerate or box.half_width_x < 1e-12
    assert box.n == defined.sum()


def test_flow_direction__where_equals_full_median_filter():
    rng = np.random.default_rng(5)
    vx, vy = rng.normal(size=(2, 40, 55))
    vx[3:8, 10:20] = np.nan
    full = q.flow_direction(vx, vy, kernel_px=7)
    ref = medfilt2d(np.arctan2(np.where(np.isnan(vy), -9999.0, vy),
                               np.where(np.isnan(vx), -9999.0, vx)), 7)
    np.testing.assert_array_equal(full, ref)
    where = rng.random((40, 55)) < 0.3
    part = q.flow_direction(vx, vy, kernel_px=7, where=where)
    np.testing.assert_array_equal(part[where], full[where])
    assert np.isnan(part[~where]).all()
    with pytest.raises(InputError, match="odd"):
        q.flow_direction(vx, vy, kernel_px=4)


def test_flow_kernel_and_grid_checks():
    assert q.flow_kernel_px(utm_grid(res=60.0)) == 25
    assert q.flow_kernel_px(utm_grid(res=15.0)) == 35
    assert q.flow_kernel_px(utm_grid(res=100.0)) == 15
    a = np.ones((4, 5))
    rotated = Grid(UTM7, Affine(60, 5, 0, 5, -60, 0), (4, 5))
    with pytest.raises(InputError, match="rotation"):
        q.strain_rates(a, a, rotated)
    geo = Grid("EPSG:4326", Affine(0.01, 0, 10, 0, -0.01, 60), (4, 5))
    with pytest.raises(CRSError, match="projected"):
        q.strain_rates(a, a, geo)


# ----------------------------------------------------------------------------- velocity_qa
def _polys(*boxes, crs=UTM7) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(geometry=[box(*b) for b in boxes], crs=crs)


def _synthetic_map(seed=0):
    grid = utm_grid((80, 100))
    rng = np.random.default_rng(seed)
    vx, vy = linear_flow(grid, 0.4, 2.0, 1e-4, 2e-4)
    left, bottom, right, top = grid.bounds
    ice = np.zeros(grid.shape, bool)
    ice[20:60, 30:90] = True
    stable = ~ice
    vx = np.where(stable, 0.05 + 0.1 * rng.standard_normal(grid.shape), vx)
    vy = np.where(stable, -0.02 + 0.1 * rng.standard_normal(grid.shape), vy)
    vx[0:3, 0:5] = np.nan
    ice_poly = _polys((left + 30 * 60, top - 60 * 60, left + 90 * 60, top - 20 * 60))
    stable_poly = _polys((left, bottom, right, top - 62 * 60))
    return grid, vx, vy, stable_poly, ice_poly


def test_velocity_qa__synthetic_keys_and_values():
    grid, vx, vy, stable, ice = _synthetic_map()
    r = q.velocity_qa(make_raster(vx, grid, "vx", "m/day"), make_raster(vy, grid, "vy", "m/day"),
                      stable=stable, ice=ice)
    for k in ("sav_dx", "sav_dy", "sav_peak_x", "sav_peak_y", "sav_incorrect_share",
              "strain_normal", "strain_shear", "invalid_share", "stable_median_x",
              "stable_median_y", "stable_nmad_x", "stable_nmad_y", "units"):
        assert k in r
    assert r["units"] == "m/day" and r["strain_units"] == "1/day"
    assert r["invalid_share"] == pytest.approx(15 / 8000)
    assert r["stable_median_x"] == pytest.approx(0.05, abs=0.01)
    assert r["stable_nmad_y"] == pytest.approx(0.1, rel=0.1)
    assert r["sav_dx"] == pytest.approx(0.2, rel=0.2)  # ≈ 2σ
    assert 0 <= r["sav_incorrect_share"] <= 1
    assert r["strain_scale"] == "glaft-sobel"


def test_velocity_qa__glacierkit_velocity_tif_and_mask_arrays(tmp_path: Path):
    """A 3-band velocity.tif (vx, vy, v; unit tag m/yr) passed twice; masks as arrays."""
    grid, vx, vy, _, _ = _synthetic_map(seed=1)
    path = write_raster(tmp_path / "velocity.tif", np.stack([vx, vy, np.hypot(vx, vy)]
                                                            ).astype(np.float32) * 365.25,
                        grid, band_names=["vx", "vy", "v"], units="m/yr")
    stable = np.zeros(grid.shape, bool)
    stable[62:] = True
    ice = np.zeros(grid.shape, bool)
    ice[20:60, 30:90] = True
    r = q.velocity_qa(path, path, stable=stable, ice=ice)
    assert r["units"] == "m/yr" and r["strain_units"] == "1/yr"
    assert r["inputs"]["stable"] == "mask array"
    assert r["stable_n_pixels"] == 18 * 100
    assert r["stable_median_x"] == pytest.approx(0.05 * 365.25, rel=0.2)
    two = open_raster(path, bands=[1, 3])  # vx and v: no band named vy
    with pytest.raises(InputError, match="none is named 'vy'"):
        q.velocity_qa(path, two, stable=stable)


def test_velocity_qa__units_and_grid_errors(tmp_path: Path):
    grid, vx, vy, stable, _ = _synthetic_map()
    rx, ry = make_raster(vx, grid, "vx"), make_raster(vy, grid, "vy")
    with pytest.raises(InputError, match="units='m/day'") as err:
        q.velocity_qa(rx, ry, stable=stable)
    assert "--units m/day" in err.value.cli_message()  # the CLI's wording
    with pytest.raises(InputError, match="contradicts"):
        q.velocity_qa(make_raster(vx, grid, "vx", "m/yr"), ry, stable=stable, units="m/day")
    other = Grid(UTM7, Affine(60, 0, 600030.0, 0, -60, 6740000.0), grid.shape)
    with pytest.raises(GridMismatchError):
        q.velocity_qa(rx, make_raster(vy, other, "vy"), stable=stable, units="m/day")
    far = _polys((0, 0, 1000, 1000))
    with pytest.raises(InputError, match="does not overlap"):
        q.velocity_qa(rx, ry, stable=far, units="m/day")
    left, _, _, top = grid.bounds
    tiny = _polys((left + 5, top - 55, left + 20, top - 40))  # no pixel centre inside
    with pytest.raises(InputError, match=r"select 0 pixels"):
        q.velocity_qa(rx, ry, stable=tiny, units="m/day")


# ----------------------------------------------------------------------------- GPS
def test_gps__positions_layout_known_velocity():
    grid = utm_grid((50, 50))
    vx = np.full(grid.shape, 0.5)
    vy = np.full(grid.shape, -0.25)
    vx[10, 20] = 0.7
    x0, y0 = grid.xy(10, 20)
    df = pd.DataFrame({
        "Unnamed: 0": [0, 1],
        "date1": ["2018-04-05", "2018-04-05"], "date2": ["2018-03-04", "2018-03-04"],
        "start_easting": [x0 + 32 * 0.6, np.nan], "start_northing": [y0 - 32 * 0.2, np.nan],
        "end_easting": [x0, x0 + 600.0], "end_northing": [y0, y0],
    })
    t = gpsmod.gps_table(df)
    assert t.attrs["units"] == "m/day" and t.attrs["layout"] == "positions"
    assert t.loc[0, "vx"] == pytest.approx(0.6) and t.loc[0, "vy"] == pytest.approx(-0.2)
    assert (t.loc[0, "x"], t.loc[0, "y"]) == (x0, y0)  # placed at the earlier position
    cmp = gpsmod.compare_gps(vx, vy, grid, t, units="m/day")
    assert cmp.n == 1 and list(cmp.table["status"]) == ["ok", "no GPS velocity"]
    row = cmp.table.iloc[0]
    assert (row["row"], row["col"]) == (10, 20)
    assert row["d_vx"] == pytest.approx(0.1) and row["d_vy"] == pytest.approx(-0.05)
    assert cmp.rmse_vx == pytest.approx(0.1)
    yr = gpsmod.compare_gps(vx * 365.25, vy * 365.25, grid, t, units="m/yr")
    assert yr.table.loc[0, "d_vx"] == pytest.approx(0.1 * 365.25)
    avg = gpsmod.compare_gps(vx, vy, grid, t, units="m/day", window_px=3)
    assert avg.table.loc[0, "map_vx"] == pytest.approx((0.7 + 8 * 0.5) / 9)


def test_gps__lonlat_layout_is_reprojected_and_crs_checked():
    grid = utm_grid((50, 50))
    vx = np.arange(2500, dtype=float).reshape(50, 50)
    vy = np.zeros((50, 50))
    x, y = grid.xy(31, 17)
    from pyproj import Transformer

    lon, lat = Transformer.from_crs(UTM7, "EPSG:4326", always_xy=True).transform(x, y)
    df = pd.DataFrame({"station": ["A"], "lon": [lon], "lat": [lat], "vx (m/yr)": [365.25 * 3],
                       "vy (m/yr)": [0.0]})
    t = gpsmod.gps_table(df)
    cmp = gpsmod.compare_gps(vx, vy, grid, t, units="m/day")
    row = cmp.table.iloc[0]
    assert (row["row"], row["col"]) == (31, 17)
    assert row["gps_vx"] == pytest.approx(3.0)
    plain = pd.DataFrame({"x": [1.0], "y": [2.0], "vx": [0.1], "vy": [0.1]})
    with pytest.raises(InputError, match="units"):
        gpsmod.gps_table(plain)
    with pytest.raises(CRSError, match="crs=") as err:
        gpsmod.compare_gps(vx, vy, grid, gpsmod.gps_table(plain, units="m/day"), units="m/day")
    assert "--gps-crs" in err.value.cli_message()
    with pytest.raises(CRSError, match="not a CRS that PROJ understands") as err:
        gpsmod.gps_table(plain, units="m/day", crs="EPSG:nonsense")
    assert "--gps-crs" in err.value.cli_message() and "crs=" in str(err.value)
    with pytest.raises(InputError, match="neither layout"):
        gpsmod.gps_table(pd.DataFrame({"a": [1]}))


# ----------------------------------------------------------------------------- real data
KASK_VX = "20180304-20180405_velo-raw_vx.tif"
KASK_VY = "20180304-20180405_velo-raw_vy.tif"
KASK_GPS = "gps/Kaskawulsh_2018-04-05_to_2018-03-04_GPS.csv"


@pytest.fixture(scope="module")
def kaskawulsh(shared_data: Path) -> Path:
    return shared_data / "glaft_kaskawulsh"


@pytest.fixture(scope="module")
def kaskawulsh_qa(kaskawulsh: Path) -> dict:
    return q.velocity_qa(kaskawulsh / KASK_VX, kaskawulsh / KASK_VY,
                         stable=kaskawulsh / "bedrock_V2.shp",
                         ice=kaskawulsh / "glacier_V1_Kaskawulsh_s_inwardBuffer600m.shp",
                         gps=kaskawulsh / KASK_GPS, units="m/day")


@pytest.mark.realdata
def test_kaskawulsh__glaft_published_metrics(kaskawulsh_qa: dict):
    """GLAFT's demo map, polygons and defaults (σ = 2, 60 × 60 mesh).

    Expected values: GLAFT's quick start (``doc/quickstart.ipynb`` / ``quickstart.html`` in
    github.com/whyjz/GLAFT) prints, for exactly this map and these polygons,
    ``delta_x: 0.1501``, ``delta_y: 0.1598 (m/day)``, KDE peak ``-0.01949``, ``-0.02445``,
    ``Incorrect match percentage: 7.1%``, ``delta_x'x': 0.001755``, ``delta_x'y': 0.001646
    (1/day)`` — all reproduced to the printed digits. GLAFT's ``notebooks/results_2022.csv``
    (row LS8-20180304-20180405, CARST, 64 px template, 4 px skip, Gaussian prefilter — this
    map) gives the strain metrics and the invalid share at full precision; its static-area
    columns were computed with an older stable polygon (``bedrock_V1``), not this one.
    """
    r = kaskawulsh_qa
    assert format(r["sav_dx"], ".4") == "0.1501"
    assert format(r["sav_dy"], ".4") == "0.1598"
    assert format(r["sav_peak_x"], ".4") == "-0.01949"
    assert format(r["sav_peak_y"], ".4") == "-0.02445"
    assert format(100 * r["sav_incorrect_share"], ".2") == "7.1"
    assert format(r["strain_normal"], ".4") == "0.001755"
    assert format(r["strain_shear"], ".4") == "0.001646"
    assert r["strain_units"] == "1/day" and r["units"] == "m/day"
    assert r["strain_normal"] == pytest.approx(0.0017554284738473694, rel=1e-7)
    assert r["strain_shear"] == pytest.approx(0.0016457141942319087, rel=1e-7)
    assert 100 * r["invalid_share"] == pytest.approx(3.3577778893967554, rel=1e-12)
    assert r["sav_n"] == r["stable_n_valid"] == 46677
    # CARST's offsets are quantised (1/32 px → 0.0146484375 m/day steps)
    assert r["stable_median_x"] == -0.0146484375 and r["stable_median_y"] == -0.029296875
    assert 0.04 < r["stable_nmad_x"] < r["stable_std_x"]


@pytest.mark.realdata
def test_kaskawulsh__gps_comparison(kaskawulsh_qa: dict, kaskawulsh: Path):
    """GPS of the same dates (2018-03-04 → 2018-04-05): 2 of 3 stations have a velocity.

    The map is sampled in the pixel containing each station's 2018-03-04 position. GLAFT's
    ``results_2022.csv`` lists, for this map, ``pt0_velodiff = 0.08786909923056169`` and
    ``pt1_velodiff = 0.011441636803400546``: map speed minus GPS speed after removing that
    notebook's static-area peak (−0.018934702487439004, −0.033583139987439004 m/day);
    reproduced here with the same bias.
    """
    r = kaskawulsh_qa
    assert r["gps_n"] == 2 and r["gps_n_stations"] == 3
    assert r["gps_dates"] == ["2018-03-04", "2018-04-05"]
    s0 = r["gps_stations"][0]
    assert s0["gps_speed"] == pytest.approx(0.43772862514766286, rel=1e-12)  # 14.007 m / 32 d
    assert (s0["row"], s0["col"]) == (262, 597)
    assert r["gps_rmse_speed"] == pytest.approx(0.0359, abs=1e-4)
    assert r["gps_rmse_vx"] < 0.05 and r["gps_rmse_vy"] < 0.05  # m/day
    vx, vy = open_raster(kaskawulsh / KASK_VX), open_raster(kaskawulsh / KASK_VY)
    table = gpsmod.read_gps_csv(kaskawulsh / KASK_GPS)
    cmp = gpsmod.compare_gps(vx.data[0], vy.data[0], vx.grid, table, units="m/day",
                             bias=(-0.018934702487439004, -0.033583139987439004))
    d = cmp.table["d_speed"].to_numpy()
    np.testing.assert_allclose(d[:2], [0.08786909923056169, 0.011441636803400546], rtol=1e-9)
    assert np.isnan(d[2])


@pytest.mark.realdata
def test_vavilov__stable_medians_equal_carst_log(shared_data: Path):
    """Medians of the raw vx, vy inside ``bedrock.shp`` equal CARST's log to the printed digits.

    How CARST computed the log (``pixeltrack`` velocity correction, ``DuoZArray`` in
    ``UtilXYZ.py``): it takes the ampcor offset points (not the GeoTIFF) whose node
    coordinates — ``ulx + (cell − 1)·15 m`` of the 15 m input image, i.e. exactly the centres
    of the 150 m GeoTIFF pixels — fall *within* the polygon (a pixel-centre rule), keeps those
    passing the SNR threshold ("Total points over bedrock = 876"), drops 2-D Gaussian-KDE
    outliers (3σ) and prints median/std/mean of the rest in pixels and in velocity
    ``px · 15 m / 16 days`` (m/day), with ``{:6.3f}``.

    From the GeoTIFF (nodata −9999) the centre-inside rule gives 961 pixels, 846 valid: 30
    fewer than 876 because CARST's linear ``griddata`` step to the GeoTIFF turns valid nodes
    next to gaps into NaN, so the log's exact point set (hence its std and mean) cannot be
    rebuilt from the GeoTIFF. The medians can: offsets are quantised at 1/32 px
    (0.029296875 m/day), and the plain median of the 846 valid pixels is exactly −35/32 px =
    −1.025390625 m/day and 11/32 px = 0.322265625 m/day, printed −1.094 / 0.344 px and
    −1.025 / 0.322 m/day, as in the log. (Touching pixels give the same medians.)
    """
    folder = shared_data / "carst_vavilov_velocity"
    log_text = (folder / "reference_bedrock_offset_stats.txt").read_text()
    logged = dict(re.findall(r"^(\w+)\s*=\s*(\S+)\s*$", log_text, flags=re.M))
    vx = open_raster(folder / "20180401-20180417_velo-raw_vx.tif")
    vy = open_raster(folder / "20180401-20180417_velo-raw_vy.tif")
    assert vx.nodata == -9999
    vrt = (folder / "input_image1_grid.vrt").read_text()
    px_m = float(re.search(r"<GeoTransform>\s*[^,]+,\s*([^,]+),", vrt).group(1))
    dt_days = 16  # 2018-04-01 → 2018-04-17
    assert px_m == 15.0
    bedrock = read_vector(folder / "bedrock.shp")
    for all_touched in (False, True):
        mask = rasterize(bedrock, vx.grid, all_touched=all_touched).astype(bool)
        st = q.stable_ground_stats(vx.data[0], vy.data[0], mask, units="m/day")
        assert f"{st.x.median:6.3f}".strip() == logged["median_x"]
        assert f"{st.y.median:6.3f}".strip() == logged["median_y"]
        to_px = dt_days / px_m
        assert f"{st.x.median * to_px:6.3f}".strip() == logged["median_x_px"]
        assert f"{st.y.median * to_px:6.3f}".strip() == logged["median_y_px"]
        if not all_touched:
            assert (st.n_mask, st.n_valid) == (961, 846)
            assert (st.x.median, st.y.median) == (-1.025390625, 0.322265625)
    assert int(re.search(r"=\s*(\d+)", log_text).group(1)) == 876
