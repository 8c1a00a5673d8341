"""Area deviation, boundary distances and evaluate_outlines against analytical answers."""

from __future__ import annotations

import json
import logging
import math

import geopandas as gpd
import numpy as np
import pytest
from affine import Affine
from shapely.geometry import box

from glacierkit.errors import CRSError, GridMismatchError, InputError
from glacierkit.io import Grid
from glacierkit.metrics import (
    area_deviation,
    evaluate_outlines,
    mask_boundary,
    polygon_boundary_distances,
    raster_boundary_distances,
    summarize_boundary_distances,
)

X0, Y0 = 500000.0, 3100000.0
CRS = "EPSG:32645"


def _grid(shape=(100, 100), sx=10.0, sy=10.0, crs=CRS) -> Grid:
    return Grid(crs=crs, transform=Affine(sx, 0, X0, 0, -sy, Y0), shape=shape)


def _square(shape, r0, c0, n, m=None) -> np.ndarray:
    a = np.zeros(shape, np.uint8)
    a[r0:r0 + n, c0:c0 + (n if m is None else m)] = 1
    return a


# ---------------------------------------------------------------------------- raster


def test_mask_boundary_excludes_raster_edge_and_nodata():
    m = np.zeros((6, 6), bool)
    m[:, :3] = True  # touches the left raster edge
    b = mask_boundary(m)
    # Only the column next to the off-glacier pixels is boundary (the edge is not).
    assert b.sum() == 6 and b[:, 2].all()
    valid = np.ones((6, 6), bool)
    valid[:, 3] = False  # nodata between glacier and rock: no boundary known
    assert not mask_boundary(m, valid).any()


def test_raster_shifted_squares_mean_is_half_the_offset():
    # Two n×n squares offset by k columns. Boundary pixels of A (4(n-1)) and their distances
    # to B's boundary: left column n·k; right column Σ_r min(r, n-1-r, k) = kn - k² - k;
    # top+bottom rows 2·Σ_{c=1}^{k-1}(k-c) = k(k-1). Sum 2k(n-1) → mean k/2 pixels, in both
    # directions, so the pooled mean is d/2 with d = k·10 m. Max (Hausdorff) = d, and 45 %
    # of the points are at exactly d, so the 95th percentile is d too.
    n, k = 40, 6
    shape = (100, 100)
    ref = _square(shape, 20, 20, n)
    pred = _square(shape, 20, 20 + k, n)
    res = evaluate_outlines((pred, _grid(shape)), (ref, _grid(shape)))
    d = k * 10.0
    assert res["boundary_mean_m"] == pytest.approx(d / 2, abs=1e-9)
    assert res["boundary_p95_m"] == pytest.approx(d)
    assert res["boundary_hausdorff_m"] == pytest.approx(d)
    assert res["n_boundary_pred"] == res["n_boundary_ref"] == 4 * (n - 1)
    assert res["iou"] == pytest.approx((n - k) / (n + k))
    assert res["f1"] == pytest.approx((n - k) / n)
    assert res["area_ref_km2"] == pytest.approx(n * n * 100 / 1e6)
    assert res["area_dev_km2"] == pytest.approx(0.0) and res["area_dev_pct"] == pytest.approx(0)
    assert res["pixel_size_m"] == 10.0 and res["n_pixels"] == 100 * 100
    assert res["mode"] == "raster/raster" and res["crs"] == "EPSG:32645"
    json.dumps(res)
    assert all(type(v) in (float, int, str, list) for v in res.values())


def test_raster_shift_with_anisotropic_pixels():
    # Pixels 20 m wide (x) and 10 m tall (y); shift k columns (d = 20k m) along x.
    # Per direction: left column n·20k; right column Σ_r 10·min(r, n-1-r, 2k)
    # = 10(2kn - 4k² - 2k); top+bottom 2·20·k(k-1)/2. Sum 20k(2n - k - 2) over 4(n-1) points.
    n, k = 40, 3
    shape = (80, 80)
    g = _grid(shape, sx=20.0, sy=10.0)
    ref, pred = _square(shape, 20, 20, n), _square(shape, 20, 20 + k, n)
    d_pred, d_ref = raster_boundary_distances(pred.astype(bool), ref.astype(bool),
                                              sampling=(10.0, 20.0))
    expected = 20 * k * (2 * n - k - 2) / (4 * (n - 1))
    assert d_pred.mean() == pytest.approx(expected) and d_ref.mean() == pytest.approx(expected)
    res = evaluate_outlines((pred, g), (ref, g))
    assert res["boundary_mean_m"] == pytest.approx(expected)
    assert res["boundary_hausdorff_m"] == pytest.approx(20.0 * k)
    assert res["pixel_size_xy_m"] == [20.0, 10.0]
    assert res["area_ref_km2"] == pytest.approx(n * n * 200 / 1e6)


def test_raster_concentric_squares_distance_is_the_margin():
    # Inner square's boundary is exactly the margin from the outer one, with anisotropic
    # pixels (margin 4 columns × 10 m = 2 rows × 20 m = 40 m). Swapped sampling would give
    # 20 m for some points.
    shape = (60, 60)
    g = _grid(shape, sx=10.0, sy=20.0)
    outer = _square(shape, 10, 10, 30, 40)
    inner = np.zeros(shape, np.uint8)
    inner[12:38, 14:46] = 1
    d_in, d_out = raster_boundary_distances(inner.astype(bool), outer.astype(bool),
                                            sampling=(20.0, 10.0))
    np.testing.assert_allclose(d_in, 40.0)
    # Outer boundary points: distance to the inner rectangle of pixel centres (geometry,
    # not a distance transform): dx = distance outside the inner column range, dy likewise.
    rr, cc = np.nonzero(mask_boundary(outer.astype(bool)))
    dx = np.maximum.reduce([14 - cc, cc - 45, np.zeros_like(cc)]) * 10.0
    dy = np.maximum.reduce([12 - rr, rr - 37, np.zeros_like(rr)]) * 20.0
    np.testing.assert_allclose(np.sort(d_out), np.sort(np.hypot(dx, dy)))
    res = evaluate_outlines((inner, g), (outer, g))
    assert res["boundary_mean_pred_to_ref_m"] == pytest.approx(40.0)
    assert res["boundary_hausdorff_m"] == pytest.approx(math.hypot(40.0, 40.0))
    assert res["boundary_median_m"] == pytest.approx(40.0)
    assert res["precision"] == 1.0 and res["recall"] == pytest.approx(26 * 32 / (30 * 40))


def test_identical_masks_zero_distance_and_perfect_scores():
    shape = (50, 50)
    m = _square(shape, 5, 5, 20)
    m[30:40, 30:45] = 1
    res = evaluate_outlines((m, _grid(shape)), (m.copy(), _grid(shape)))
    assert res["iou"] == res["f1"] == res["precision"] == res["recall"] == 1.0
    assert res["boundary_mean_m"] == res["boundary_p95_m"] == res["boundary_hausdorff_m"] == 0.0
    assert res["area_dev_km2"] == 0.0


def test_empty_prediction_and_empty_reference():
    shape = (30, 30)
    ref = _square(shape, 5, 5, 10)
    res = evaluate_outlines((np.zeros(shape, np.uint8), _grid(shape)), (ref, _grid(shape)))
    assert res["iou"] == 0.0 and res["recall"] == 0.0 and math.isnan(res["precision"])
    assert res["area_dev_pct"] == pytest.approx(-100.0)
    assert math.isnan(res["boundary_mean_m"])  # no predicted boundary: undefined
    with pytest.raises(InputError, match="no glacier pixel"):
        evaluate_outlines((ref, _grid(shape)), (np.zeros(shape, np.uint8), _grid(shape)))


def test_area_deviation_formula():
    assert area_deviation(12.0, 10.0) == {"area_dev_km2": 2.0, "area_dev_pct": 20.0}
    assert math.isnan(area_deviation(1.0, 0.0)["area_dev_pct"])
    assert all(math.isnan(v) for k, v in summarize_boundary_distances(
        np.empty(0), np.ones(3)).items() if k.startswith("boundary"))


# ---------------------------------------------------------------------------- vector


def _gdf(*geoms, crs=CRS) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(geometry=list(geoms), crs=crs)


def test_vector_shifted_squares_exact():
    # Continuous version: A = [0, L]², B shifted by d ≤ L/2. Along A's boundary the distance to
    # B's boundary is d on the left edge, min(d, y, L-y) on the right edge and max(0, d-x) on
    # top and bottom: ∫ = Ld + (Ld - d²) + d² = 2Ld over a perimeter 4L → mean d/2.
    L, d = 1000.0, 100.0
    a = box(X0, Y0, X0 + L, Y0 + L)
    b = box(X0 + d, Y0, X0 + L + d, Y0 + L)
    res = evaluate_outlines(_gdf(b), _gdf(a))
    assert res["mode"] == "vector/vector" and res["boundary_method"] == "polygons"
    assert res["boundary_mean_m"] == pytest.approx(d / 2, rel=1e-9)
    assert res["boundary_p95_m"] == pytest.approx(d)
    assert res["boundary_hausdorff_m"] == pytest.approx(d)
    assert res["area_ref_km2"] == pytest.approx(1.0) and res["area_dev_km2"] == pytest.approx(0)
    # On the derived 10 m grid the squares' edges fall on pixel edges: exact IoU.
    assert res["iou"] == pytest.approx((L - d) / (L + d))
    assert res["pixel_size_m"] == 10.0
    assert res["n_pixels"] == (L + d) / 10 * L / 10
    json.dumps(res)


def test_vector_concentric_squares():
    # Inner square [m, L+m]² in the outer [0, L+2m]²: every inner boundary point is exactly m
    # from the outer boundary. On the outer boundary, the middle L of each side is at m and the
    # two end pieces at sqrt(u² + m²), u ∈ [0, m]: ∫ = m²(√2 + asinh 1)/2 each. Pooled mean
    # = (2Lm + c m²) / (2L + 2m), c = √2 + asinh(1); Hausdorff = m√2 (corners).
    L, m = 1000.0, 50.0
    outer = box(X0, Y0, X0 + L + 2 * m, Y0 + L + 2 * m)
    inner = box(X0 + m, Y0 + m, X0 + L + m, Y0 + L + m)
    d_in, d_out = polygon_boundary_distances(inner, outer, spacing=1.0)
    np.testing.assert_allclose(d_in, m)
    c = math.sqrt(2) + math.asinh(1.0)
    assert d_out.mean() == pytest.approx((L * m + c * m * m) / (L + 2 * m), rel=1e-5)
    expected = (2 * L * m + c * m * m) / (2 * L + 2 * m)
    res = evaluate_outlines(_gdf(inner), _gdf(outer), spacing_m=1.0)
    assert res["boundary_mean_m"] == pytest.approx(expected, rel=1e-5)
    # Sampled at step midpoints: the nearest sample to a corner is 0.5 m (half a step) away.
    assert res["boundary_hausdorff_m"] == pytest.approx(math.hypot(m - 0.5, m))
    assert res["boundary_mean_pred_to_ref_m"] == pytest.approx(m)
    assert res["area_dev_km2"] == pytest.approx(L * L / 1e6 - (L + 2 * m) ** 2 / 1e6)


def test_vector_dissolves_shared_divides_and_overlaps():
    # Two adjacent glaciers sharing a divide = one square: the divide is not a boundary.
    L = 1000.0
    left = box(X0, Y0, X0 + L / 2, Y0 + L)
    right = box(X0 + L / 2, Y0, X0 + L, Y0 + L)
    whole = box(X0, Y0, X0 + L, Y0 + L)
    res = evaluate_outlines(_gdf(left, right), _gdf(whole, whole))  # ref duplicated: overlap
    assert res["boundary_hausdorff_m"] == pytest.approx(0.0, abs=1e-9)
    assert res["area_ref_km2"] == pytest.approx(1.0) and res["area_pred_km2"] == pytest.approx(1)
    assert res["iou"] == 1.0


def test_geographic_vectors_use_utm_and_log_it(caplog):
    L, d = 1000.0, 100.0
    a = _gdf(box(X0, Y0, X0 + L, Y0 + L)).to_crs(4326)
    b = _gdf(box(X0 + d, Y0, X0 + L + d, Y0 + L)).to_crs(4326)
    with caplog.at_level(logging.INFO, logger="glacierkit"):
        res = evaluate_outlines(b, a)
    assert "UTM" in caplog.text and res["crs"] == "EPSG:32645"
    # Geodesic areas of a 1 km² UTM square: within the UTM scale factor (≤ 0.1 %).
    assert res["area_ref_km2"] == pytest.approx(1.0, rel=2e-3)
    assert res["boundary_mean_m"] == pytest.approx(d / 2, rel=1e-2)


# ---------------------------------------------------------------------------- files & mixed


def test_raster_vs_vector_files_reprojected_and_logged(tif_factory, tmp_path, caplog):
    shape = (100, 100)
    t = Affine(10.0, 0, X0, 0, -10.0, Y0)
    pred = _square(shape, 20, 26, 40)
    pred[0:5, 0:5] = 255  # nodata in the prediction: excluded everywhere
    pred_tif = tif_factory("pred.tif", pred, crs=CRS, transform=t, nodata=255)
    # Reference square = rows 20..59, cols 20..59, given as a polygon in EPSG:4326.
    ref_poly = box(X0 + 200, Y0 - 600, X0 + 600, Y0 - 200)
    ref_path = tmp_path / "ref.gpkg"
    _gdf(ref_poly).to_crs(4326).to_file(ref_path)
    with caplog.at_level(logging.INFO, logger="glacierkit"):
        res = evaluate_outlines(pred_tif, ref_path)
    assert "reprojecting" in caplog.text
    assert res["mode"] == "raster/vector" and res["n_pixels"] == 100 * 100 - 25
    assert res["iou"] == pytest.approx(34 / 46, rel=1e-3)
    assert res["boundary_mean_m"] == pytest.approx(30.0, abs=0.5)
    # Vector as PRED, raster as REF works the same way round.
    ref_tif = tif_factory("ref.tif", _square(shape, 20, 20, 40), crs=CRS, transform=t)
    res2 = evaluate_outlines(ref_path, ref_tif)
    assert res2["mode"] == "vector/raster" and res2["iou"] == pytest.approx(1.0)


def test_positive_classes_and_grid_mismatch(tif_factory):
    shape = (40, 40)
    t = Affine(10.0, 0, X0, 0, -10.0, Y0)
    ref = _square(shape, 5, 5, 20)
    ref[5:15, 5:25] = 2  # debris class 2 in the upper half
    pred = _square(shape, 5, 5, 20)
    p = tif_factory("p.tif", pred, crs=CRS, transform=t)
    r = tif_factory("r.tif", ref, crs=CRS, transform=t)
    assert evaluate_outlines(p, r)["iou"] == pytest.approx(0.5)  # only class 1 is glacier
    assert evaluate_outlines(p, r, ref_positive=(1, 2))["iou"] == 1.0
    shifted = tif_factory("s.tif", pred, crs=CRS, transform=Affine(10.0, 0, X0 + 10, 0, -10, Y0))
    with pytest.raises(GridMismatchError, match="align"):
        evaluate_outlines(shifted, r)


def test_no_overlap_names_both_bounds(tif_factory, tmp_path):
    shape = (20, 20)
    p = tif_factory("p.tif", _square(shape, 2, 2, 10), crs=CRS,
                    transform=Affine(10.0, 0, X0, 0, -10.0, Y0))
    far = _gdf(box(X0 + 5000, Y0, X0 + 6000, Y0 + 1000))
    with pytest.raises(InputError, match=r"do not overlap.*PRED.*500000.*REF.*505000"):
        evaluate_outlines(p, far)
    with pytest.raises(InputError, match="do not overlap"):
        evaluate_outlines(_gdf(box(X0, Y0, X0 + 100, Y0 + 100)), far)


def test_bad_inputs():
    g = _grid((10, 10))
    with pytest.raises(InputError, match="non-integer"):
        evaluate_outlines((np.full((10, 10), 0.5), g), (np.ones((10, 10)), g))
    with pytest.raises(InputError, match="does not match its grid"):
        evaluate_outlines((np.ones((5, 5)), g), (np.ones((10, 10)), g))
    with pytest.raises(InputError, match="must be a class raster path"):
        evaluate_outlines(42, (np.ones((10, 10)), g))
    geo = Grid(crs="EPSG:4326", transform=Affine(0.001, 0, 86, 0, -0.001, 28), shape=(10, 10))
    m = _square((10, 10), 2, 2, 5)
    with pytest.raises(CRSError, match="geographic"):
        evaluate_outlines((m, geo), (m, geo))
