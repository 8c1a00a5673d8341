"""Outline evaluation over the extent where both inputs are defined (footprints, ``extent=``).

Rasterisation tolerance used below. A polygon burned on a grid of pixel size ``s`` (pixel
centre inside) errs only in the pixels its boundary crosses: about ``P / s`` of them along a
boundary of length ``P``, each off by between ``-s²/2`` and ``+s²/2`` (roughly uniform,
variance ``s⁴/12``). Taken as independent, the pixel-count area has the standard error
``σ(s) = s² √(P / (12 s)) = s^1.5 √(P / 12)``. Two rasterisations of the same polygon (pixel
sizes ``s1``, ``s2``) differ by ``σ_D = √(σ(s1)² + σ(s2)²)`` in area, and an IoU computed from
them by at most ``(1 + IoU) σ_D / U`` (``U`` the union area: the intersection and the union
each move by at most ``σ_D``). The tests allow five of these standard errors; the inputs are
fixed, so they cannot flake.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from affine import Affine
from shapely.geometry import Point, box

from glacierkit.cli.main import main
from glacierkit.errors import CRSError, InputError
from glacierkit.io import Grid, polygonize, read_grid, read_vector, write_vector
from glacierkit.io.vector import (
    default_layer,
    footprint_frame,
    read_footprint,
    valid_footprint,
    write_outlines,
)
from glacierkit.metrics import evaluate_outlines

X0, Y0 = 500000.0, 3100000.0
CRS = "EPSG:32645"
RES = 10.0
SHAPE = (100, 100)  # the scene: x ∈ [X0, X0 + 1000], y ∈ [Y0 − 1000, Y0]
T = Affine(RES, 0, X0, 0, -RES, Y0)
GRID = Grid(crs=CRS, transform=T, shape=SHAPE)


def _gdf(*geoms, crs=CRS) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(geometry=list(geoms), crs=crs)


def _sigma_area_m2(s: float, perimeter: float) -> float:
    """Standard error (m²) of a pixel-count area (module docstring)."""
    return s ** 1.5 * math.sqrt(perimeter / 12)


def _pixel_centres(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.mgrid[0:grid.height, 0:grid.width]
    return grid.xy(rows, cols)


def _write_outlines_of(classes: np.ndarray, path: Path) -> Path:
    """``outlines.gpkg`` of a class raster as map baseline / map predict write it."""
    gdf = polygonize(classes, GRID, class_names={1: "glacier"}, ignore=(0,), nodata=255)
    return write_outlines(gdf, path, footprint=footprint_frame(classes != 255, GRID))


@pytest.fixture
def half_outside(tmp_path: Path, tif_factory):
    """A reference disk centred on the scene's right edge (half outside), a raster prediction
    and the same prediction as a glacierkit outline file."""
    R = 300.0
    disk = Point(X0 + 1000, Y0 - 500).buffer(R, quad_segs=64)
    ref = tmp_path / "ref.gpkg"
    _gdf(disk).to_crs(4326).to_file(ref)  # like RGI: geographic, reprojected on the way
    x, y = _pixel_centres(GRID)
    cls = (np.hypot(x - (X0 + 960), y - (Y0 - 480)) < 260).astype(np.uint8)
    cls[:10, :10] = 255  # nodata corner, far from the glacier: a notch in the footprint
    pred_tif = tif_factory("classes.tif", cls, crs=CRS, transform=T, nodata=255)
    pred_gpkg = _write_outlines_of(cls, tmp_path / "outlines.gpkg")
    # The disk's vertices are symmetric about the vertical line through its centre: exactly
    # half of the polygon lies inside the scene.
    return {"disk": disk, "ref": ref, "cls": cls, "tif": pred_tif, "gpkg": pred_gpkg,
            "inside_km2": disk.area / 2 / 1e6, "arc_m": math.pi * R}


def test_reference_half_outside_is_clipped_and_reported(half_outside, caplog):
    h = half_outside
    with caplog.at_level(logging.INFO, logger="glacierkit"):
        ras = evaluate_outlines(h["tif"], h["ref"])
        vec = evaluate_outlines(h["gpkg"], h["ref"], resolution_m=2.5)
    assert ras["mode"] == "raster/vector" and vec["mode"] == "vector/vector"
    assert "footprint layer" in vec["extent"] and "valid pixels" in ras["extent"]
    # Polygons clipped to the footprint: the inside half exactly, the outside half reported.
    assert vec["area_ref_km2"] == pytest.approx(h["inside_km2"], rel=1e-9)
    for res in (ras, vec):
        assert res["ref_area_outside_km2"] == pytest.approx(h["inside_km2"], rel=1e-9)
        assert res["pred_area_outside_km2"] == 0.0
    assert caplog.text.count("lies outside the evaluated extent") == 2
    assert "WARNING" in [r.levelname for r in caplog.records
                         if "outside the evaluated" in r.getMessage()]
    # Pixel-count area of the inside half on the 10 m scene grid: within 5 σ of the exact.
    tol_a = 5 * _sigma_area_m2(RES, h["arc_m"]) / 1e6
    assert abs(ras["area_ref_km2"] - h["inside_km2"]) <= tol_a
    # The prediction's outlines follow pixel edges: the same area both ways.
    n_gl = int((h["cls"] == 1).sum())
    assert ras["area_pred_km2"] == pytest.approx(n_gl * RES * RES / 1e6, rel=1e-12)
    assert vec["area_pred_km2"] == pytest.approx(n_gl * RES * RES / 1e6, rel=1e-9)
    # IoU from the raster (10 m) and the outline form (2.5 m grid): rasterisation tolerance.
    union_m2 = (ras["tp"] + ras["fp"] + ras["fn"]) * RES * RES
    sigma_d = math.hypot(_sigma_area_m2(RES, h["arc_m"]), _sigma_area_m2(2.5, h["arc_m"]))
    tol_iou = 5 * (1 + ras["iou"]) * sigma_d / union_m2
    assert 0.5 < ras["iou"] < 0.95
    assert abs(vec["iou"] - ras["iou"]) <= tol_iou
    # Both forms evaluate the same ground: the footprint (scene minus the nodata corner).
    assert ras["n_pixels"] == 100 * 100 - 100
    assert vec["n_pixels"] == (100 * 100 - 100) * 16
    json.dumps(vec)
    # Outline file against its own raster: the footprint and the valid pixels agree.
    own = evaluate_outlines(h["gpkg"], h["tif"])
    assert own["mode"] == "vector/raster" and own["iou"] == 1.0
    assert "footprint layer" in own["extent"] and own["n_pixels"] == 100 * 100 - 100


def test_clipped_edge_is_not_an_outline_boundary(tmp_path: Path):
    # Glacier running out of the scene (x ≥ X0 + 1000) in both: the scene edge they share is
    # where mapping stopped, not a glacier margin. On a 5 m boundary sampling each ring
    # loses the 80 points of its 400 m along the edge.
    ref = box(X0 + 200, Y0 - 600, X0 + 1400, Y0 - 200)
    pred = box(X0 + 300, Y0 - 600, X0 + 1300, Y0 - 200)
    res = evaluate_outlines(_gdf(pred), _gdf(ref), extent=_gdf(box(*GRID.bounds)))
    assert res["n_boundary_pred"] == (2 * 700 + 2 * 400) // 5 - 80
    assert res["n_boundary_ref"] == (2 * 800 + 2 * 400) // 5 - 80
    # PRED: left side (80 points) at min(100, distance to REF's top or bottom edge), i.e.
    # 40 points at 100 m and 40 at 2.5, 7.5, ..., 97.5 m (sum 2000); top and bottom (280) on
    # REF's. REF: left side (80) at 100 m, top and bottom x ∈ [200, 300] (40) at 300 − x
    # (sum 2000), the rest (280) 0. With the edge, 160 more points at 0 m: mean 16000 / 920.
    assert res["boundary_mean_m"] == pytest.approx((40 * 100 + 2000 + 80 * 100 + 2000) / 760)
    assert res["boundary_hausdorff_m"] == pytest.approx(100.0)
    assert res["area_ref_km2"] == pytest.approx(0.32) and res["area_pred_km2"] == 0.28
    assert res["ref_area_outside_km2"] == pytest.approx(0.16)
    assert res["pred_area_outside_km2"] == pytest.approx(0.12)
    assert res["iou"] == pytest.approx(0.28 / 0.32)


def test_extent_given_explicitly(tmp_path: Path, tif_factory, capsys):
    ref = write_vector(_gdf(box(X0 + 200, Y0 - 600, X0 + 1400, Y0 - 200)), tmp_path / "r.gpkg")
    pred = write_vector(_gdf(box(X0 + 300, Y0 - 600, X0 + 1300, Y0 - 200)),
                        tmp_path / "p.gpkg")
    # A raster extent: its valid pixels (columns 0..79, x < X0 + 800) are the extent.
    ext = np.ones(SHAPE, np.uint8)
    ext[:, 80:] = 255
    ext_tif = tif_factory("extent.tif", ext, crs=CRS, transform=T, nodata=255)
    # A polygon extent: the whole scene, in another CRS (reprojected like any vector).
    ext_gpkg = tmp_path / "extent.gpkg"
    _gdf(box(*GRID.bounds)).to_crs(4326).to_file(ext_gpkg)
    r1 = evaluate_outlines(pred, ref, extent=ext_tif)
    assert r1["extent"] == f"the valid pixels of {ext_tif}"
    assert r1["area_ref_km2"] == pytest.approx(0.24) and r1["area_pred_km2"] == 0.2
    assert r1["ref_area_outside_km2"] == pytest.approx(0.24)
    assert r1["pred_area_outside_km2"] == pytest.approx(0.2)
    assert r1["iou"] == pytest.approx(0.2 / 0.24)
    assert r1["n_pixels"] == 80 * 100
    # CLI: --extent, JSON with the clipped areas.
    assert main(["map", "evaluate", str(pred), str(ref), "--extent", str(ext_gpkg),
                 "--json"]) == 0
    r2 = json.loads(capsys.readouterr().out)
    # The scene box through EPSG:4326 and back: its edges bend by millimetres.
    assert r2["area_ref_km2"] == pytest.approx(0.32, rel=1e-5)
    assert r2["ref_area_outside_km2"] == pytest.approx(0.16, rel=1e-5)
    assert r2["iou"] == pytest.approx(0.28 / 0.32, rel=1e-4)
    # The table names the extent and the area left out.
    assert main(["map", "evaluate", str(pred), str(ref), "--extent", str(ext_tif)]) == 0
    out = capsys.readouterr().out
    assert "ref_area_outside_km2" in out and "0.24" in out and "extent.tif" in out
    # An extent outside the outlines: nothing left to compare.
    far = _gdf(box(X0 + 5000, Y0 - 600, X0 + 6000, Y0 - 200))
    with pytest.raises(InputError, match="zero area inside the evaluated extent"):
        evaluate_outlines(pred, ref, extent=far)
    with pytest.raises(InputError, match="extent must be"):
        evaluate_outlines(pred, ref, extent=42)


def test_extent_with_rasters(tif_factory):
    # raster/raster: pixels outside the extent are not scored; their glacier is reported.
    pred = np.zeros(SHAPE, np.uint8)
    pred[20:60, 20:90] = 1
    ref = np.zeros(SHAPE, np.uint8)
    ref[20:60, 10:80] = 1
    p = tif_factory("p.tif", pred, crs=CRS, transform=T)
    r = tif_factory("r.tif", ref, crs=CRS, transform=T)
    ext = _gdf(box(X0 + 300, Y0 - 1000, X0 + 700, Y0))  # columns 30..69
    res = evaluate_outlines(p, r, extent=ext)
    assert res["iou"] == 1.0 and res["n_pixels"] == 40 * 100
    assert res["ref_area_outside_km2"] == pytest.approx(40 * 30 * RES * RES / 1e6)
    assert res["pred_area_outside_km2"] == pytest.approx(40 * 30 * RES * RES / 1e6)
    # Without an extent both rasters are fully valid: nothing is left out.
    res0 = evaluate_outlines(p, r)
    assert res0["ref_area_outside_km2"] == 0.0 and res0["iou"] == pytest.approx(60 / 80)


def test_two_outline_files_without_footprint_warn(tmp_path: Path, caplog):
    ref = write_vector(_gdf(box(X0 + 200, Y0 - 600, X0 + 1400, Y0 - 200)), tmp_path / "r.gpkg")
    pred = write_vector(_gdf(box(X0 + 300, Y0 - 600, X0 + 1300, Y0 - 200)),
                        tmp_path / "p.gpkg")
    with caplog.at_level(logging.INFO, logger="glacierkit"):
        res = evaluate_outlines(pred, ref)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "--extent" in warnings[0] and "union" in warnings[0]
    assert res["extent"].startswith("none")
    assert res["area_ref_km2"] == pytest.approx(0.48) and res["ref_area_outside_km2"] == 0.0


def test_old_outline_files_without_footprint_layer(half_outside, tmp_path: Path, caplog):
    h = half_outside
    # An outline file as glacierkit wrote it before the footprint layer: one layer.
    gdf = polygonize(h["cls"], GRID, class_names={1: "glacier"}, ignore=(0,), nodata=255)
    old = write_vector(gdf, tmp_path / "old.gpkg", layer="outlines")
    assert read_footprint(old) is None and default_layer(old) is None
    assert len(read_vector(old)) == len(gdf)
    # With a raster on the other side the raster's valid pixels are the extent.
    res = evaluate_outlines(old, h["tif"])
    assert res["mode"] == "vector/raster" and res["iou"] == 1.0
    # Against outlines: the union, with the warning; a footprint given as extent fixes it,
    # here the footprint layer of the new file of the same prediction.
    with caplog.at_level(logging.WARNING, logger="glacierkit"):
        res_union = evaluate_outlines(old, h["ref"])
    assert "--extent" in caplog.text
    assert res_union["area_ref_km2"] == pytest.approx(2 * h["inside_km2"], rel=1e-9)
    res_ext = evaluate_outlines(old, h["ref"], extent=h["gpkg"])
    assert res_ext["extent"] == f"the footprint layer of {h['gpkg']}"
    assert res_ext["area_ref_km2"] == pytest.approx(h["inside_km2"], rel=1e-9)


def test_outline_file_layers(half_outside, tmp_path: Path, caplog):
    h = half_outside
    # Reading a glacierkit outline file gives its outlines only (pyogrio's "more than one
    # layer" warning would fail this test: warnings are errors).
    gdf = read_vector(h["gpkg"])
    assert default_layer(h["gpkg"]) == "outlines"
    assert set(gdf["class_name"]) == {"glacier"} and "n_valid_px" not in gdf.columns
    assert len(gdf) == len(polygonize(h["cls"], GRID, ignore=(0,), nodata=255))
    fp = read_footprint(h["gpkg"])
    assert len(fp) == 1 and fp.crs.to_epsg() == 32645
    assert fp["n_valid_px"][0] == 100 * 100 - 100
    assert (fp["width"][0], fp["height"][0]) == (100, 100)
    assert Affine(*map(float, fp["transform"][0].split(","))) == T
    assert fp.geometry[0].area == pytest.approx((100 * 100 - 100) * RES * RES)
    assert fp["area_km2"][0] == pytest.approx(0.99)
    # Another multi-layer file: the first layer, and a warning naming the others.
    multi = tmp_path / "multi.gpkg"
    _gdf(box(0, 0, 1, 1)).to_file(multi, layer="a")
    _gdf(box(0, 0, 2, 2), box(0, 0, 3, 3)).to_file(multi, layer="b")
    with caplog.at_level(logging.WARNING, logger="glacierkit"):
        assert len(read_vector(multi)) == 1
    assert "2 layers (a, b)" in caplog.text
    assert len(read_vector(multi, layer="b")) == 2


def test_valid_footprint_and_writer_checks(tmp_path: Path):
    v = np.ones(SHAPE, bool)
    full = valid_footprint(v, GRID)
    assert full.equals(box(*GRID.bounds))
    v[40:60, 40:60] = False  # an enclosed nodata hole
    v[:, 95:] = False  # and a nodata strip on the right
    fp = valid_footprint(v, GRID)
    assert fp.area == pytest.approx(v.sum() * RES * RES) and len(fp.interiors) == 1
    assert valid_footprint(np.zeros(SHAPE, bool), GRID).is_empty
    with pytest.raises(InputError, match="shape"):
        valid_footprint(v[:10], GRID)
    gdf = _gdf(box(X0, Y0 - 100, X0 + 100, Y0))
    with pytest.raises(CRSError, match="footprint's CRS"):
        write_outlines(gdf, tmp_path / "o.gpkg", footprint=footprint_frame(v, GRID).to_crs(4326))
    with pytest.raises(InputError, match="only GeoPackages"):
        write_vector(gdf, tmp_path / "o.geojson", extra_layers={"footprint": gdf})
    assert shapely.equals(read_footprint(write_outlines(
        gdf, tmp_path / "o.gpkg", footprint=footprint_frame(v, GRID))).geometry[0], fp)


@pytest.mark.realdata
@pytest.mark.slow
def test_everest_baseline_raster_and_outlines_agree(shared_data: Path, tmp_path: Path):
    """``map baseline`` on the Everest scene, evaluated against RGI 6.0 as classes.tif and as
    outlines.gpkg: the same ground, so the same scores within rasterisation tolerance.

    Without the footprint the outline form scored the RGI glaciers beyond the scene as
    missed: IoU 0.397 vs 0.535, area_ref 365.4 vs 254.5 km², Hausdorff 9956 vs 1546 m.
    """
    d = shared_data / "geoutils_everest_exploradores" / "Everest_Landsat"
    rgi = d / "15_rgi60_glacier_outlines.gpkg"
    out = tmp_path / "base"
    assert main(["-q", "map", "baseline", str(d / "LE71400412000304SGS00_RGB.tif"),
                 str(d / "LE71400412000304SGS00_B4.tif"), "--bands", "red,green,blue",
                 "--bands", "nir", "--out", str(out),
                 "--min-area-km2", "0"]) == 0  # every polygon: the ground of classes.tif
    ras = evaluate_outlines(out / "classes.tif", rgi)
    vec = evaluate_outlines(out / "outlines.gpkg", rgi)  # 10 m grid
    assert vec["extent"] == f"the footprint layer of {out / 'outlines.gpkg'}"
    # Measured: IoU 0.5355 (raster) vs 0.5351 (outlines); area_ref 254.52 vs 254.49 km²;
    # 110.92 km² of RGI outside the scene in both; Hausdorff 1546 vs 1567 m.
    assert ras["iou"] == pytest.approx(0.535, abs=0.01)
    # The RGI boundary inside the scene, without the scene edge: P ≈ 604 km.
    scene = box(*read_grid(out / "classes.tif").bounds)
    inside = shapely.intersection(
        shapely.union_all(shapely.make_valid(read_vector(rgi).to_crs(32645).geometry.values)),
        scene)
    perimeter = inside.boundary.difference(scene.boundary.buffer(1e-3)).length
    assert 5e5 < perimeter < 7e5
    # area_ref: 30 m pixel count vs exact polygon area.
    assert abs(ras["area_ref_km2"] - vec["area_ref_km2"]) <= 5 * _sigma_area_m2(
        30, perimeter) / 1e6
    assert vec["area_ref_km2"] == pytest.approx(inside.area / 1e6, rel=1e-9)
    # IoU: the prediction's pixel-edge outlines burn exactly on the aligned 10 m grid; RGI is
    # burned at 30 m and at 10 m.
    union_m2 = (ras["tp"] + ras["fp"] + ras["fn"]) * 900.0
    sigma_d = math.hypot(_sigma_area_m2(30, perimeter), _sigma_area_m2(10, perimeter))
    assert abs(vec["iou"] - ras["iou"]) <= 5 * (1 + ras["iou"]) * sigma_d / union_m2
    assert vec["area_pred_km2"] == pytest.approx(ras["area_pred_km2"], rel=1e-9)
    for res in (ras, vec):
        assert res["ref_area_outside_km2"] == pytest.approx(110.92, abs=0.05)
        assert res["pred_area_outside_km2"] == 0.0
    # Boundary points: pixel centres (raster) vs polygon edges move each point by at most
    # half a pixel diagonal on each side, s/√2 + s/√2 = √2 s.
    tol_b = math.sqrt(2) * 30
    assert abs(vec["boundary_hausdorff_m"] - ras["boundary_hausdorff_m"]) <= tol_b
    assert abs(vec["boundary_mean_m"] - ras["boundary_mean_m"]) <= tol_b
    assert vec["boundary_hausdorff_m"] < 2000


def test_outline_touching_the_extent_from_outside():
    # A glacier entirely outside the extent but sharing its edge: the cut leaves a line,
    # which is neither area nor boundary.
    inside = box(X0 + 500, Y0 - 600, X0 + 800, Y0 - 200)
    touching = box(X0 + 1000, Y0 - 900, X0 + 1200, Y0 - 700)
    ext = _gdf(box(*GRID.bounds))
    res = evaluate_outlines(_gdf(inside, touching), _gdf(inside), extent=ext)
    assert res["iou"] == 1.0 and res["boundary_hausdorff_m"] == 0.0
    assert res["area_pred_km2"] == pytest.approx(0.12)
    assert res["pred_area_outside_km2"] == pytest.approx(0.04)
