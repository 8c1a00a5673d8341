"""Torch-free data side of the dl stack: sources, cond, labels, split, synthetic SAR."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys

import geopandas as gpd
import numpy as np
import pytest
import shapely
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.windows import Window
from scipy import ndimage

from glacierkit.dl.cond import CondSpec, coords_encoding, region_onehot
from glacierkit.dl.labels import (
    IGNORE,
    class_counts,
    labels_from_outlines,
    labels_from_raster,
    mask_invalid,
)
from glacierkit.dl.sources import (
    BandSource,
    NormStats,
    SourceGroup,
    SourceLayout,
    open_scene,
    pixel_size_m,
    prepare_channels,
    prepare_group,
    scene_from_arrays,
)
from glacierkit.dl.split import SPLITS, UNUSED, SplitMap, block_split, half_split, make_split
from glacierkit.dl.synthetic import SarClass, SarParams, synthetic_sar, write_synthetic_sar
from glacierkit.errors import CRSError, GridMismatchError, InputError
from glacierkit.io import Grid, open_raster, read_vector

EVEREST = "geoutils_everest_exploradores/Everest_Landsat"


# ---------------------------------------------------------------------------- torch-free
def test_modules_import_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import glacierkit.dl.sources, glacierkit.dl.cond, glacierkit.dl.labels, "
            "glacierkit.dl.split, glacierkit.dl.synthetic\n"
            "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------- layout
def test_standard_layout_channels_and_serialisation():
    lay = SourceLayout.standard(("red", "green", "blue", "nir"), dem=True, sar=("vv", "vh"),
                                coherence=True)
    assert lay.group_names == ("optical", "dem", "sar", "coherence")
    assert lay.group_channels == (4, 2, 2, 1)
    assert lay.n_channels == 9
    assert lay.names == ("red", "green", "blue", "nir", "elevation", "slope", "vv_db",
                         "vh_db", "coherence")
    assert lay.slices["sar"] == slice(6, 8)
    assert lay.index("slope") == 5
    assert lay.group("sar").bands == ("vv", "vh")
    assert lay.group("dem").bands == ("elevation",)
    again = SourceLayout.from_dict(json.loads(json.dumps(lay.to_dict())))
    assert again == lay
    assert SourceLayout.from_spec({"optical": ["red", "green", "blue", "nir"], "dem": True,
                                   "sar": ["vv", "vh"], "coherence": True}) == lay
    assert SourceLayout.standard(("r",), dem=True, hillshade=True).names == (
        "r", "elevation", "slope", "hillshade")


def test_layout_validation():
    with pytest.raises(InputError, match="at least one"):
        SourceLayout(())
    with pytest.raises(InputError, match="unique"):
        SourceLayout((SourceGroup("a", "optical", ("red",)), SourceGroup("a", "other", ("x",))))
    with pytest.raises(InputError, match=r"\['red'\]"):
        SourceLayout((SourceGroup("a", "optical", ("red",)), SourceGroup("b", "other", ("red",))))
    with pytest.raises(InputError, match="no channels"):
        SourceGroup("a", "optical", ())
    with pytest.raises(InputError, match="kind"):
        SourceGroup("a", "lidar", ("z",))
    with pytest.raises(InputError, match="cannot be derived"):
        SourceGroup("d", "dem", ("elevation", "curvature"))
    with pytest.raises(InputError, match="channel"):
        SourceLayout.standard().index("swir")


# ---------------------------------------------------------------------------- channels
def test_dem_slope_aspect_hillshade_of_a_plane():
    # Elevation rises 0.1 m per metre eastwards: slope atan(0.1), facing west (aspect 270).
    cols = np.arange(20, dtype=np.float32)
    dem = np.tile(0.1 * 30.0 * cols, (10, 1))[None]
    g = SourceGroup("dem", "dem", ("elevation", "slope", "hillshade"), hillshade_azimuth=270,
                    hillshade_altitude=45)
    out = prepare_group(g, dem, pixel_size=(30.0, 30.0))
    assert out.shape == (3, 10, 20) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0], dem[0])
    np.testing.assert_allclose(out[1], math.degrees(math.atan(0.1)), atol=1e-4)
    s = math.atan(0.1)
    # Sun in the west at 45°: cos(45°)cos(s) + sin(45°)sin(s).
    np.testing.assert_allclose(out[2], math.cos(math.pi / 4 - s), atol=1e-5)
    # Slope scales with the pixel size: 60 m pixels halve the gradient.
    half = prepare_group(SourceGroup("dem", "dem", ("slope",)), dem, pixel_size=(60.0, 60.0))
    np.testing.assert_allclose(half[0], math.degrees(math.atan(0.05)), atol=1e-4)
    # Nodata propagates to the neighbours' slope only.
    dem2 = dem.copy()
    dem2[0, 5, 10] = np.nan
    sl = prepare_group(SourceGroup("dem", "dem", ("slope",)), dem2, pixel_size=(30.0, 30.0))[0]
    assert np.isnan(sl[5, 10]) and np.isnan(sl[5, 9]) and np.isnan(sl[4, 10])
    assert np.isnan(sl).sum() == 5 and np.isfinite(sl[4, 9])
    with pytest.raises(InputError, match="pixel_size"):
        prepare_group(g, dem)


def test_sar_db_coherence_clip_and_band_count():
    sar = SourceGroup("sar", "sar", ("vv_db", "vh_db"))
    raw = np.array([[[0.01, 1.0, 0.0, np.nan]], [[0.1, -1.0, 1e-3, 2.0]]], dtype=np.float32)
    out = prepare_group(sar, raw)
    np.testing.assert_allclose(out[0, 0, :3], [-20.0, 0.0, -60.0], atol=1e-5)
    assert np.isnan(out[0, 0, 3])
    np.testing.assert_allclose(out[1, 0], [-10.0, -60.0, -30.0, 10 * math.log10(2)], atol=1e-5)
    db = SourceGroup("sar", "sar", ("vv_db",), db_input=True)
    np.testing.assert_array_equal(prepare_group(db, np.full((1, 2, 2), -12.5)), -12.5)
    coh = SourceGroup("coherence", "coherence", ("coherence",))
    np.testing.assert_array_equal(prepare_group(coh, np.array([[[-0.2, 0.5, 1.3]]]))[0, 0],
                                  [0.0, 0.5, 1.0])
    with pytest.raises(InputError, match=r"expects 2 raw band\(s\) \['vv', 'vh'\]"):
        prepare_group(sar, raw[:1])


def test_prepare_channels_missing_group_is_nan():
    lay = SourceLayout.standard(("red", "nir"), sar=("vv",))
    out = prepare_channels(lay, [np.ones((2, 3, 4)), None])
    assert out.shape == (3, 3, 4) and out.dtype == np.float32
    assert np.all(out[:2] == 1) and np.isnan(out[2]).all()
    with pytest.raises(InputError, match="every group is None"):
        prepare_channels(lay, [None, None])


def test_pixel_size_m_geographic_and_projected():
    utm = Grid("EPSG:32645", Affine(30, 0, 0, 0, -30, 0), (2, 2))
    assert pixel_size_m(utm) == (30.0, 30.0)
    geo = Grid("EPSG:4326", Affine(0.001, 0, 10, 0, -0.001, 60.001), (2, 2))
    px, py = pixel_size_m(geo)
    assert px == pytest.approx(0.001 * 111_320 * 0.5, rel=1e-4)
    assert py == pytest.approx(110.574)


# ---------------------------------------------------------------------------- scenes
def test_open_scene_reads_all_groups(dl_scene):
    s = dl_scene
    stack = open_scene(s.layout, s.sources, name="t", region="himalaya")
    assert stack.data.shape == (9, 64, 96) and stack.data.dtype == np.float32
    assert stack.present == (True, True, True, True)
    assert stack.grid == s.grid and stack.region == "himalaya"
    red = stack.data[s.layout.index("red")]
    np.testing.assert_array_equal(red > 0.4, s.labels == 1)
    np.testing.assert_array_equal(stack.data[s.layout.index("elevation")], s.dem)
    vv = open_raster(s.sources["sar"][0]).data[0]
    np.testing.assert_allclose(stack.data[s.layout.index("vv_db")],
                               10 * np.log10(np.maximum(vv, 1e-6)), atol=1e-4)
    assert stack.valid_mask().all()


def test_open_scene_missing_group_bandsource_and_errors(dl_scene, tif_factory):
    s = dl_scene
    part = {"optical": s.sources["optical"], "dem": s.sources["dem"]}
    stack = open_scene(s.layout, part)
    assert stack.present == (True, True, False, False)
    assert np.isnan(stack.group_data("sar")).all()
    assert stack.valid_mask().all()          # missing groups do not count as nodata
    # Explicit band choice: blue, green, red from rgb.tif, then nir.
    lay = SourceLayout.standard(("blue", "green", "red", "nir"))
    swapped = open_scene(lay, {"optical": [BandSource(s.sources["optical"][0], (3, 2, 1)),
                                           s.sources["optical"][1]]})
    np.testing.assert_array_equal(swapped.data[2], stack.data[0])
    with pytest.raises(InputError, match=r"\['red', 'green', 'blue', 'nir'\].*hold 3"):
        open_scene(s.layout, {"optical": s.sources["optical"][0]})
    with pytest.raises(InputError, match="not in the layout"):
        open_scene(s.layout, {"optics": s.sources["optical"]})
    # A DEM on another grid (60 m) is refused unless aligned explicitly.
    dem60 = tif_factory("dem60.tif", s.dem[::2, ::2].copy(), crs="EPSG:32645",
                        transform=Affine(60, 0, 480000, 0, -60, 3100000))
    with pytest.raises(GridMismatchError, match="align"):
        open_scene(s.layout, {"optical": s.sources["optical"], "dem": [dem60]})
    aligned = open_scene(s.layout, {"optical": s.sources["optical"], "dem": [dem60]},
                         align=True)
    assert aligned.grid == s.grid and aligned.present[:2] == (True, True)


def test_scene_from_arrays_and_valid_mask():
    lay = SourceLayout.standard(("red",), sar=("vv",))
    grid = Grid("EPSG:32645", Affine(30, 0, 0, 0, -30, 0), (4, 5))
    red = np.ones((1, 4, 5), np.float32)
    red[0, 1, 2] = np.nan
    stack = scene_from_arrays(lay, grid, {"optical": red})
    assert stack.present == (True, False)
    assert stack.valid_mask().sum() == 19 and not stack.valid_mask()[1, 2]


@pytest.mark.realdata
def test_everest_scene_and_rgi_labels_match_polygon_area(shared_data, caplog):
    d = shared_data / EVEREST
    lay = SourceLayout.standard(("red", "green", "blue", "nir"))
    stack = open_scene(lay, {"optical": [d / "LE71400412000304SGS00_RGB.tif",
                                         d / "LE71400412000304SGS00_B4.tif"]})
    assert stack.data.shape == (4, 655, 800) and stack.grid.epsg == 32645
    with caplog.at_level(logging.INFO, logger="glacierkit.io.vector"):
        lab = labels_from_outlines(d / "15_rgi60_glacier_outlines.gpkg", stack.grid)
    assert "reprojecting" in caplog.text          # RGI outlines are in EPSG:4326
    # Burnt glacier area equals the outlines' area inside the scene (UTM, km²).
    rgi = read_vector(d / "15_rgi60_glacier_outlines.gpkg").to_crs(32645)
    clipped = shapely.intersection(rgi.geometry.values, shapely.box(*stack.grid.bounds))
    area = shapely.area(shapely.union_all(clipped)) / 1e6
    assert area == pytest.approx(254.49, abs=0.01)
    assert class_counts(lab, 2)[1] * 900 / 1e6 == pytest.approx(area, rel=2e-3)


# ---------------------------------------------------------------------------- norm stats
def test_normstats_fit_masks_floor_and_apply():
    a = np.stack([np.arange(12, dtype=np.float32).reshape(3, 4),
                  np.full((3, 4), 7.0, np.float32),
                  np.full((3, 4), np.nan, np.float32)])
    a[0, 0, 0] = np.nan
    mask = np.zeros((3, 4), bool)
    mask[:2] = True                     # training rows only
    ns = NormStats.fit([a], [mask], names=("a", "b", "c"))
    v = np.arange(1, 8, dtype=np.float64)
    assert ns.mean[0] == pytest.approx(v.mean()) and ns.std[0] == pytest.approx(v.std())
    assert ns.mean[1] == 7.0 and ns.std[1] == 1e-3      # constant channel: floor
    assert ns.mean[2] == 0.0 and ns.std[2] == 1.0       # never observed
    x = ns.apply(a)
    assert x.dtype == np.float32 and x[0, 0, 0] == 0.0 and np.all(x[2] == 0)
    assert x[0, 2, 3] == pytest.approx((11 - v.mean()) / v.std(), rel=1e-6)
    assert ns.apply(a[None]).shape == (1, 3, 3, 4)
    again = NormStats.from_dict(json.loads(json.dumps(ns.to_dict())))
    np.testing.assert_array_equal(again.mean, ns.mean)
    assert again.names == ("a", "b", "c")
    sub = NormStats.fit([np.random.default_rng(0).normal(5, 2, (1, 300, 300))],
                        max_samples=5000, seed=3)
    assert sub.mean[0] == pytest.approx(5, abs=0.1) and sub.std[0] == pytest.approx(2, abs=0.1)
    big = np.random.default_rng(1).normal(0, 1, (2, 100, 100))
    half = np.zeros((100, 100), bool)
    half[:, :50] = True
    sub2 = NormStats.fit([big, big + 10], [half, None], max_samples=4000, seed=0)
    # A third of the pixels come from the first stack (mean 0), two thirds from the second.
    assert sub2.mean[0] == pytest.approx(10 * 2 / 3, abs=0.3)
    again2 = NormStats.fit([big, big + 10], [half, None], max_samples=4000, seed=0)
    np.testing.assert_array_equal(sub2.mean, again2.mean)
    with pytest.raises(InputError, match="C = 3"):
        ns.apply(np.zeros((2, 3, 3)))


# ---------------------------------------------------------------------------- cond
def test_region_onehot_and_condspec():
    np.testing.assert_array_equal(region_onehot("alps", ["alps", "himalaya"]), [1, 0, 0])
    np.testing.assert_array_equal(region_onehot(None, ["alps", "himalaya"]), [0, 0, 1])
    np.testing.assert_array_equal(region_onehot("andes", ["alps", "himalaya"]), [0, 0, 1])
    spec = CondSpec("region", ("alps", "himalaya"))
    assert spec.dim == 3 and CondSpec().dim == 0 and CondSpec("coords").dim == 4
    assert CondSpec.from_dict(spec.to_dict()) == spec
    grid = Grid("EPSG:32645", Affine(30, 0, 0, 0, -30, 0), (4, 4))
    assert CondSpec().vector(grid).shape == (0,)
    np.testing.assert_array_equal(spec.vector(grid, region="himalaya"), [0, 1, 0])
    with pytest.raises(InputError, match="regions"):
        CondSpec("region")


def test_coords_encoding_known_points():
    # UTM 45N: (500000 E, 0 N) is (87°E, 0°N), the zone's central meridian on the equator.
    grid = Grid("EPSG:32645", Affine(30, 0, 500000 - 60, 0, -30, 60), (4, 4))
    enc = coords_encoding(grid, Window(0, 0, 4, 4))
    lon = math.radians(87)
    np.testing.assert_allclose(enc, [0, 1, math.sin(lon), math.cos(lon)], atol=1e-6)
    # Geographic grid: window centred at (-70.5°, 45.25°).
    geo = Grid("EPSG:4326", Affine(0.5, 0, -72, 0, -0.5, 48), (10, 10))
    enc = CondSpec("coords").vector(geo, Window(2, 4, 2, 3))   # centre col 3, row 5.5
    la, lo = math.radians(48 - 5.5 * 0.5), math.radians(-72 + 3 * 0.5)
    np.testing.assert_allclose(enc, [math.sin(la), math.cos(la), math.sin(lo), math.cos(lo)],
                               atol=1e-6)
    with pytest.raises(CRSError, match="georeferenced"):
        coords_encoding(Grid.pixel_grid((4, 4)))


# ---------------------------------------------------------------------------- labels
def test_labels_from_outlines_reprojected_classes_and_aoi(dl_scene, caplog):
    s = dl_scene
    with caplog.at_level(logging.INFO, logger="glacierkit.io.vector"):
        lab = labels_from_outlines(s.outlines, s.grid)
    assert "reprojecting" in caplog.text
    assert lab.dtype == np.uint8
    np.testing.assert_array_equal(lab, s.labels)
    # Class column with names; two glacier classes.
    gdf = gpd.read_file(s.outlines)
    gdf["cls"] = ["debris", "clean"]
    lab3 = labels_from_outlines(gdf, s.grid, classes=("off", "clean", "debris"),
                                class_column="cls")
    assert set(np.unique(lab3)) == {0, 1, 2}
    assert class_counts(lab3, 3)[1:].sum() == class_counts(lab, 2)[1]
    with pytest.raises(InputError, match="not one of the classes"):
        labels_from_outlines(gdf, s.grid, class_column="cls")
    # Area of interest: left half only.
    x0, y0, x1, y1 = s.grid.bounds
    aoi = shapely.box(x0, y0, (x0 + x1) / 2, y1)
    lab_aoi = labels_from_outlines(s.outlines, s.grid, ignore_outside=aoi)
    assert np.all(lab_aoi[:, 48:] == IGNORE)
    np.testing.assert_array_equal(lab_aoi[:, :48], s.labels[:, :48])


def test_labels_from_outlines_not_overlapping(dl_scene):
    far = gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 1000, 1000)], crs="EPSG:32645")
    with pytest.raises(InputError, match=r"raster bounds \(480000"):
        labels_from_outlines(far, dl_scene.grid)


def test_labels_from_raster_and_mask_invalid(dl_scene, tif_factory, make_dl_scene):
    s = dl_scene
    raw = np.where(s.labels == 1, 7, 3).astype(np.uint8)
    raw[0, 0] = 9
    p = tif_factory("lab.tif", raw, crs="EPSG:32645", transform=s.grid.transform, nodata=9)
    lab = labels_from_raster(p, s.grid, mapping={3: 0, 7: 1})
    assert lab[0, 0] == IGNORE
    np.testing.assert_array_equal(lab.ravel()[1:], s.labels.ravel()[1:])
    with pytest.raises(InputError, match=r"\[3, 7\]"):
        labels_from_raster(p, s.grid, mapping={})
    with pytest.raises(InputError, match="class indexes"):
        labels_from_raster(p, s.grid, n_classes=2)
    other = Grid("EPSG:32645", Affine(30, 0, 480030, 0, -30, 3100000), s.grid.shape)
    with pytest.raises(GridMismatchError):
        labels_from_raster(p, other, mapping={3: 0, 7: 1})
    holes = make_dl_scene("holes", nodata_corner=True)
    stack = open_scene(holes.layout, holes.sources)
    masked = mask_invalid(holes.labels, stack)
    assert np.all(masked[:8, :8] == IGNORE)
    np.testing.assert_array_equal(masked[8:], holes.labels[8:])


# ---------------------------------------------------------------------------- split
def _gap_ok(sm: SplitMap, gap: int) -> bool:
    """No two pixels of different splits within Chebyshev distance ``gap``."""
    for a in range(3):
        ma = sm.mask(a)
        if not ma.any():
            continue
        near = ndimage.maximum_filter(ma.astype(np.uint8), size=2 * gap + 1) > 0
        for b in range(3):
            if b != a and np.any(near & sm.mask(b)):
                return False
    return True


def _windows_pure(sm: SplitMap, p: int) -> bool:
    for k in range(3):
        for w in sm.windows(k, p, stride=max(1, p // 3)):
            block = sm.map[w.row_off:w.row_off + p, w.col_off:w.col_off + p]
            if not np.all(block == k):
                return False
        rc = sm.valid_centres(k, p)
        for r, c in rc[:: max(1, len(rc) // 50)]:
            block = sm.map[r - p // 2:r - p // 2 + p, c - p // 2:c - p // 2 + p]
            if block.shape != (p, p) or not np.all(block == k):
                return False
    return True


@settings(max_examples=25, deadline=None)
@given(h=st.integers(20, 90), w=st.integers(20, 90), bs=st.integers(6, 40),
       p=st.integers(2, 12), buf=st.integers(0, 9), seed=st.integers(0, 10_000),
       strategy=st.sampled_from(["random", "stripes"]),
       axis=st.sampled_from(["rows", "cols"]))
def test_block_split_properties(h, w, bs, p, buf, seed, strategy, axis):
    try:
        sm = block_split((h, w), block_size=bs, seed=seed, buffer_px=buf, strategy=strategy,
                         axis=axis)
    except InputError:
        return                           # too few blocks for three parts
    assert sm.map.dtype == np.int8 and sm.shape == (h, w)
    assert set(np.unique(sm.map)) <= {UNUSED, 0, 1, 2}
    assert _gap_ok(sm, buf)
    assert _windows_pure(sm, p)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(10, 80), w=st.integers(10, 80), tf=st.floats(0.1, 0.5),
       vf=st.floats(0.0, 0.3), buf=st.integers(0, 8), p=st.integers(2, 10),
       axis=st.sampled_from(["rows", "cols"]))
def test_half_split_properties(h, w, tf, vf, buf, p, axis):
    sm = half_split((h, w), axis=axis, test_fraction=tf, val_fraction=vf, buffer_px=buf)
    assert _gap_ok(sm, buf)
    assert _windows_pure(sm, p)


def test_half_split_known_layout():
    sm = half_split((10, 100), axis="cols", test_fraction=0.4, val_fraction=0.2, buffer_px=4)
    row = sm.map[0]
    # train 0..39, val 40..59, test 60..99, each border eroded by 2 px on both sides.
    assert np.all(row[:38] == 0) and np.all(row[38:42] == UNUSED)
    assert np.all(row[42:58] == 1) and np.all(row[58:62] == UNUSED) and np.all(row[62:] == 2)
    assert np.all(sm.map == row)
    assert sm.fractions()["test"] == pytest.approx(0.38)
    # Default buffer: patch_size // 2.
    assert half_split((10, 100), test_fraction=0.4, patch_size=8).buffer_px == 4
    with pytest.raises(InputError, match="no 64×64 patch"):
        half_split((100, 100), test_fraction=0.3, patch_size=64)


def test_block_split_fractions_determinism_and_windows():
    a = block_split((256, 256), block_size=32, seed=7, patch_size=16)
    b = block_split((256, 256), block_size=32, seed=7, patch_size=16)
    c = block_split((256, 256), block_size=32, seed=8, patch_size=16)
    np.testing.assert_array_equal(a.map, b.map)
    assert not np.array_equal(a.map, c.map)
    assert a.buffer_px == 8
    # 64 blocks: 38 / 13 / 13 (largest remainder of 0.6/0.2/0.2); before the buffer.
    raw = block_split((256, 256), block_size=32, seed=7, buffer_px=0)
    counts = [int(np.count_nonzero(raw.map == k)) // 1024 for k in range(3)]
    assert counts == [38, 13, 13]
    wins = a.windows("train", 16)
    assert wins and all(w.width == 16 and w.height == 16 for w in wins)
    assert all(np.all(a.map[w.toslices()] == 0) for w in wins)
    explicit = block_split((64, 64), block_size=32, buffer_px=0,
                           assignment=np.array([[0, 0], [1, 2]]))
    assert np.all(explicit.map[:32] == 0) and np.all(explicit.map[32:, 32:] == 2)
    assert SPLITS == ("train", "val", "test")
    cfg = make_split((128, 256), kind="blocks", test_fraction=0.25, val_fraction=0.25,
                     block_size=32, seed=3, buffer_px=0)
    assert [int(np.count_nonzero(cfg.map == k)) // 1024 for k in range(3)] == [16, 8, 8]
    assert make_split((20, 100), patch_size=8).meta["kind"] == "half"


# ---------------------------------------------------------------------------- synthetic
def test_synthetic_sar_class_statistics():
    lab = np.zeros((200, 400), np.uint8)
    lab[:, 200:] = 1
    r = synthetic_sar(lab, seed=1)
    assert r.sar.shape == (2, 200, 400) and r.sar.dtype == np.float32
    assert r.coherence.shape == (1, 200, 400)
    inner = np.zeros_like(lab, bool)
    inner[:, 10:190] = True
    glac = np.zeros_like(lab, bool)
    glac[:, 210:390] = True
    for m, (vv, vh, coh) in ((inner, (-8, -15, 0.70)), (glac, (-14, -21, 0.25))):
        assert 10 * np.log10(r.sar[0][m].mean()) == pytest.approx(vv, abs=0.5)
        assert 10 * np.log10(r.sar[1][m].mean()) == pytest.approx(vh, abs=0.5)
        assert r.coherence[0][m].mean() == pytest.approx(coh, abs=0.05)
    # Mean of the dB values carries the log-speckle bias (L = 4: -0.57 dB) plus texture.
    mean_db = (10 * np.log10(r.sar[0][inner])).mean()
    assert -8 - 0.9 < mean_db < -8 - 0.4
    assert 0 <= r.coherence.min() and r.coherence.max() <= 1
    # Speckle: the L-look intensity has relative variance ≈ 1/L (texture off).
    flat = synthetic_sar(lab, seed=2, params=SarParams(texture_db=0))
    rel = flat.sar[0][inner] / 10 ** (-0.8)
    assert rel.var() == pytest.approx(1 / 4, rel=0.05)
    # Deterministic for a seed.
    np.testing.assert_array_equal(synthetic_sar(lab, seed=1).sar, r.sar)
    assert not np.array_equal(synthetic_sar(lab, seed=3).sar, r.sar)


def test_synthetic_sar_topography_and_geotiffs(dl_scene, tmp_path):
    # A ridge: the west-facing side faces a sensor looking east (φ = 90°).
    cols = np.arange(100, dtype=np.float64)
    dem = np.tile(np.where(cols < 50, cols, 100 - cols) * 15.0, (60, 1))   # slope 0.5 (26.6°)
    lab = np.zeros((60, 100), np.uint8)
    r = synthetic_sar(lab, dem=dem, seed=0, params=SarParams(texture_db=0))
    east_up = r.sigma0[0][:, 5:45].mean()
    east_down = r.sigma0[0][:, 55:95].mean()
    th = math.radians(35)
    expect_up = (math.sin(th) * 0.5 + math.cos(th)) / math.sqrt(1.25) / math.cos(th)
    expect_down = (-math.sin(th) * 0.5 + math.cos(th)) / math.sqrt(1.25) / math.cos(th)
    assert east_up / 10 ** (-0.8) == pytest.approx(expect_up, rel=1e-4)
    assert east_down / 10 ** (-0.8) == pytest.approx(expect_down, rel=1e-4)
    out = tmp_path / "sar"
    out.mkdir()
    paths = write_synthetic_sar(out, dl_scene.labels, dl_scene.grid, seed=4)
    sar = open_raster(paths["sar"])
    coh = open_raster(paths["coherence"])
    assert sar.grid == dl_scene.grid and sar.band_names == ("vv", "vh")
    assert coh.band_names == ("coherence",) and sar.tags["SYNTHETIC"] == "1"
    np.testing.assert_array_equal(sar.data, synthetic_sar(dl_scene.labels, seed=4,
                                                          pixel_size=(30, 30)).sar)
    custom = SarParams(classes={0: SarClass(-5, -12, 0.9), 1: SarClass(-20, -27, 0.1)})
    assert custom.to_dict()["classes"]["1"]["vv_db"] == -20
    with pytest.raises(InputError, match="default_class"):
        SarParams(classes={1: SarClass(-5, -12, 0.9)})
