"""Full-scene tiled prediction: backends agree, nodata, seams, TTA, MC dropout, errors."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import rasterio
from affine import Affine

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
from standins import BrightStandIn  # noqa: E402

from glacierkit.dl.bundle import (  # noqa: E402
    ModelBundle,
    bundle_from_model,
    load_bundle,
    register_arch,
    save_bundle,
)
from glacierkit.dl.export import check_onnx, export_onnx  # noqa: E402
from glacierkit.dl.predict import predict_scene  # noqa: E402
from glacierkit.dl.sources import (  # noqa: E402
    BandSource,
    NormStats,
    SourceGroup,
    SourceLayout,
    prepare_channels,
)
from glacierkit.errors import (  # noqa: E402
    GridMismatchError,
    InputError,
    ModelFileError,
    OutputExistsError,
)

H, W = 160, 208  # tiles of 64 px with 16 px overlap start at multiples of 48 on both axes
RES = 30.0
TRANSFORM = Affine(RES, 0, 500000.0, 0, -RES, 3100000.0)
CRS = "EPSG:32645"
NODATA_BLOCK = (slice(0, 70), slice(0, 70))  # covers tile (0, 0) entirely
LAYOUT = SourceLayout.standard(("red", "green", "blue", "nir"), dem=True)


register_arch("bright-standin", BrightStandIn)


def _write(path, data, nodata=np.nan, transform=TRANSFORM):
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
                       count=data.shape[0], dtype=data.dtype, crs=CRS, transform=transform,
                       nodata=nodata) as ds:
        ds.write(data)
    return path


def _scene_arrays(seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    elev = 3000 + 6 * yy + 4 * xx + 80 * np.sin(xx / 13) * np.cos(yy / 17)
    ice = (elev > 4300).astype(np.float32)
    opt = np.stack([0.15 + 0.5 * ice + 0.03 * rng.standard_normal((H, W)) for _ in range(4)])
    return opt.astype(np.float32), elev[None].astype(np.float32)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    d = tmp_path_factory.mktemp("scene")
    opt, dem = _scene_arrays()
    opt_nd, dem_nd = opt.copy(), dem.copy()
    opt_nd[(slice(None), *NODATA_BLOCK)] = np.nan
    dem_nd[(slice(None), *NODATA_BLOCK)] = -9999.0
    return {"clean": {"optical": _write(d / "opt.tif", opt), "dem": _write(d / "dem.tif", dem)},
            "holes": {"optical": _write(d / "opt_nd.tif", opt_nd),
                      "dem": _write(d / "dem_nd.tif", dem_nd, nodata=-9999.0)},
            "arrays": (opt, dem), "dir": d}


def _norm(opt, dem):
    x = prepare_channels(LAYOUT, [opt, dem], pixel_size=(RES, RES))
    return NormStats.fit([x], names=LAYOUT.names)


@pytest.fixture(scope="module")
def standin(scene):
    torch.manual_seed(0)
    model = BrightStandIn().eval()
    norm = _norm(*scene["arrays"])
    onnx_bytes = export_onnx(model, group_channels=(4, 2), cond_dim=0, example_size=(32, 32))
    bundle = bundle_from_model(
        model, layout=LAYOUT.to_dict(), norm=norm.to_dict(), classes=["background", "glacier"],
        tile={"size": 64, "overlap": 16}, training={"group_dropout": 0.0},
        model_kwargs={"group_channels": [4, 2], "n_classes": 2, "cond_dim": 0},
        onnx_bytes=onnx_bytes)
    path = save_bundle(scene["dir"] / "standin.gkm", bundle)
    return model, norm, path


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(), ds.profile, ds.tags(), ds


def _run(bundle, sources, tmp_path, name, **kw):
    out = tmp_path / name
    out.mkdir()
    kw.setdefault("progress", False)
    return predict_scene(bundle, sources, out, **kw)


# ---------------------------------------------------------------------------- products
def test_onnx_and_torch_agree_and_products(scene, standin, tmp_path):
    _, _, gkm = standin
    src = scene["holes"]
    r_onnx = _run(gkm, src, tmp_path, "onnx", backend="onnx", write_probabilities=True)
    r_torch = _run(gkm, src, tmp_path, "torch", backend="torch", write_probabilities=True)
    assert (r_onnx.backend, r_torch.backend) == ("onnx", "torch")
    p_onnx, _, _, _ = _read(r_onnx.probabilities)
    p_torch, _, _, _ = _read(r_torch.probabilities)
    assert np.array_equal(np.isnan(p_onnx), np.isnan(p_torch))
    assert np.nanmax(np.abs(p_onnx - p_torch)) < 1e-4
    c_onnx, prof, tags, _ = _read(r_onnx.classes)
    c_torch, _, _, _ = _read(r_torch.classes)
    assert np.mean(c_onnx != c_torch) <= 1e-3
    # classes.tif: uint8, nodata 255, colour table, class names, georeferencing of the sources
    assert prof["dtype"] == "uint8" and prof["nodata"] == 255
    assert prof["crs"] == CRS and prof["transform"] == TRANSFORM
    assert json.loads(tags["CLASS_NAMES"]) == ["background", "glacier"]
    with rasterio.open(r_onnx.classes) as ds:
        assert ds.colormap(1)[255][3] == 0 and ds.descriptions == ("class",)
    # probabilities sum to one; classes are their argmax; confidence = max probability
    valid = ~np.isnan(p_onnx[0])
    assert np.allclose(p_onnx[:, valid].sum(0), 1.0, atol=1e-5)
    assert np.array_equal(c_onnx[0][valid], np.argmax(p_onnx[:, valid], axis=0))
    conf, cprof, _, _ = _read(r_onnx.confidence)
    assert cprof["dtype"] == "float32"
    assert np.allclose(conf[0][valid], p_onnx[:, valid].max(0), atol=1e-6)
    # the stand-in finds the bright "ice": the classes match it on most pixels
    _, dem = scene["arrays"]
    ice = (dem[0] > 4300)
    assert np.mean(c_onnx[0][valid] == ice[valid]) > 0.95
    assert r_onnx.model_seconds > 0 and r_onnx.total_seconds >= r_onnx.model_seconds
    assert set(r_onnx.paths) == {"classes", "confidence", "probabilities", "outlines", "report"}
    rep = json.loads(r_onnx.report.read_text())
    assert rep["model"]["arch"] and rep["tiles_run"] == r_onnx.tiles_run
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == [
        "classes.tif", "confidence.tif", "outlines.gpkg", "probabilities.tif", "report.json"]


def test_onnx_prediction_without_torch(scene, standin, tmp_path):
    """ONNX Runtime inference needs no torch: predict with torch made unimportable."""
    import subprocess
    import sys

    _, _, gkm = standin
    src = {k: str(v) for k, v in scene["holes"].items()}
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from glacierkit.dl.predict import predict_scene\n"
        f"r = predict_scene({str(gkm)!r}, {src!r}, {str(tmp_path)!r}, progress=False)\n"
        "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
        "print(r.backend, r.tiles_run)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["onnx", "11"]
    ref = _run(gkm, scene["holes"], tmp_path, "ref", backend="onnx")
    assert np.array_equal(_read(tmp_path / "classes.tif")[0], _read(ref.classes)[0])


def test_nodata_region_gives_nodata(scene, standin, tmp_path):
    _, _, gkm = standin
    r = _run(gkm, scene["holes"], tmp_path, "nd", backend="onnx")
    assert r.tiles == 12 and r.tiles_skipped >= 1 and r.tiles_run == r.tiles - r.tiles_skipped
    cls, _, _, _ = _read(r.classes)
    conf, _, _, _ = _read(r.confidence)
    hole = np.zeros((H, W), bool)
    hole[NODATA_BLOCK] = True
    assert np.all(cls[0][hole] == 255) and np.all(np.isnan(conf[0][hole]))
    assert np.all(cls[0][~hole] < 2) and np.all(np.isfinite(conf[0][~hole]))
    assert np.all((conf[0][~hole] >= 0.5) & (conf[0][~hole] <= 1.0))


def test_no_seams_tiled_equals_whole_scene_forward(scene, standin, tmp_path):
    model, norm, gkm = standin
    r = _run(gkm, scene["clean"], tmp_path, "seams", backend="torch",
             write_probabilities=True, outlines=False)
    tiled, _, _, _ = _read(r.probabilities)
    opt, dem = scene["arrays"]
    x = norm.apply(prepare_channels(LAYOUT, [opt, dem], pixel_size=(RES, RES)))
    with torch.no_grad():
        whole = torch.softmax(model(torch.from_numpy(x[None]), torch.ones(1, 2)), 1)[0].numpy()
    diff = np.abs(tiled - whole).max(axis=0)
    # Tile borders lie at multiples of 48 (+16) px; the stand-in's context is ~5 px, inside the
    # 16 px overlap, so the cosine blend hides every tile edge.
    assert diff.max() < 1e-3, diff.max()
    assert np.median(diff) < 1e-6
    # The same tiling without overlap shows seams: the check above is sensitive to them.
    r0 = _run(gkm, scene["clean"], tmp_path, "seams0", backend="torch", overlap=0,
              write_probabilities=True, outlines=False)
    assert np.abs(_read(r0.probabilities)[0] - whole).max() > 1e-2


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_batched_threads_equal_serial(scene, standin, tmp_path, backend):
    """batch_size > 1 (worker threads gathering batches) gives the serial run's result."""
    _, _, gkm = standin
    kw = {"backend": backend, "write_probabilities": True, "outlines": False}
    serial = _run(gkm, scene["holes"], tmp_path, f"s_{backend}", batch_size=1, **kw)
    batched = _run(gkm, scene["holes"], tmp_path, f"b_{backend}", batch_size=3, **kw)
    assert batched.tiles_run == serial.tiles_run == 11
    a, b = _read(serial.probabilities)[0], _read(batched.probabilities)[0]
    assert np.array_equal(np.isnan(a), np.isnan(b)) and np.nanmax(np.abs(a - b)) < 1e-5


def test_tta_runs(scene, standin, tmp_path):
    _, _, gkm = standin
    r0 = _run(gkm, scene["clean"], tmp_path, "plain", backend="onnx", outlines=False,
              write_probabilities=True)
    r8 = _run(gkm, scene["clean"], tmp_path, "tta", backend="onnx", tta=True, outlines=False,
              write_probabilities=True)
    p0, _, _, _ = _read(r0.probabilities)
    p8, _, tags8, _ = _read(r8.probabilities)
    assert np.allclose(p8.sum(0), 1.0, atol=1e-5)
    assert not np.allclose(p0, p8, atol=1e-4)  # the stand-in is not rotation invariant
    c0, _, _, _ = _read(r0.classes)
    c8, _, _, _ = _read(r8.classes)
    assert np.mean(c0 == c8) > 0.95
    assert json.loads(tags8["PREDICTION"])["tta"] is True


def test_overwrite_refused(scene, standin, tmp_path):
    _, _, gkm = standin
    out = tmp_path / "ow"
    out.mkdir()
    predict_scene(gkm, scene["clean"], out, backend="onnx", progress=False)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    with pytest.raises(OutputExistsError, match=r"classes\.tif.*overwrite"):
        predict_scene(gkm, scene["clean"], out, backend="onnx", progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # nothing touched
    predict_scene(gkm, scene["clean"], out, backend="onnx", progress=False, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == sorted(before)  # no temporary left


# ---------------------------------------------------------------------------- inputs
def test_missing_group(scene, standin, tmp_path, caplog):
    _, _, gkm = standin
    only_optical = {"optical": scene["clean"]["optical"]}
    with pytest.raises(InputError, match=r"\['dem'\] missing.*group dropout.*dem \(dem\)"):
        _run(gkm, only_optical, tmp_path, "m1", backend="onnx")
    b = load_bundle(gkm)
    b.training = {"group_dropout": 0.3}
    with caplog.at_level(logging.WARNING, logger="glacierkit.dl.predict"):
        r = _run(b, only_optical, tmp_path, "m2", backend="onnx", outlines=False)
    assert r.missing_groups == ("dem",)
    assert any("present=0" in m for m in caplog.messages)
    cls, _, _, _ = _read(r.classes)
    assert np.all(cls < 2)


def test_wrong_band_count_and_unknown_group(scene, standin, tmp_path):
    _, _, gkm = standin
    three = {"optical": BandSource(scene["clean"]["optical"], (1, 2, 3)),
             "dem": scene["clean"]["dem"]}
    with pytest.raises(InputError, match=r"'optical' has 3 band\(s\).*expects 4 raw band"):
        _run(gkm, three, tmp_path, "b1", backend="onnx")
    with pytest.raises(InputError, match=r"'sar'.*not source groups.*optical"):
        _run(gkm, {**scene["clean"], "sar": scene["clean"]["dem"]}, tmp_path, "b2")
    # bands may also be picked and split over several files
    split = {"optical": [BandSource(scene["clean"]["optical"], (1, 2)),
                         BandSource(scene["clean"]["optical"], (3, 4))],
             "dem": scene["clean"]["dem"]}
    r = _run(gkm, split, tmp_path, "b3", backend="onnx", outlines=False)
    ref = _run(gkm, scene["clean"], tmp_path, "b4", backend="onnx", outlines=False)
    assert np.array_equal(_read(r.classes)[0], _read(ref.classes)[0])


def test_grid_mismatch_and_explicit_align(scene, standin, tmp_path):
    _, _, gkm = standin
    _, dem = scene["arrays"]
    shifted = _write(tmp_path / "dem_shift.tif", dem,
                     transform=TRANSFORM @ Affine.translation(5, 0))
    src = {"optical": scene["clean"]["optical"], "dem": shifted}
    with pytest.raises(GridMismatchError, match="align"):
        _run(gkm, src, tmp_path, "g1", backend="onnx")
    r = _run(gkm, src, tmp_path, "g2", backend="onnx", align="optical", outlines=False)
    with rasterio.open(r.classes) as ds:
        assert ds.transform == TRANSFORM and ds.shape == (H, W)


def test_mc_dropout(scene, standin, tmp_path):
    _, _, gkm = standin
    with pytest.raises(InputError, match="torch backend"):
        _run(gkm, scene["holes"], tmp_path, "mc0", backend="onnx", mc_samples=3)
    r = _run(gkm, scene["holes"], tmp_path, "mc", backend="torch", mc_samples=4,
             outlines=False)
    ent, prof, _, _ = _read(r.entropy)
    assert prof["dtype"] == "float32"
    hole = np.zeros((H, W), bool)
    hole[NODATA_BLOCK] = True
    e = ent[0][~hole]
    assert np.all(np.isnan(ent[0][hole])) and np.all((e >= 0) & (e <= math.log(2) + 1e-6))
    assert e.max() > 1e-3  # dropout makes the samples differ


def test_outlines_and_min_area(scene, standin, tmp_path):
    import geopandas as gpd

    _, _, gkm = standin
    from glacierkit.io.vector import read_footprint

    r = _run(gkm, scene["clean"], tmp_path, "o1", backend="onnx", min_area_km2=0.0)
    gdf = gpd.read_file(r.outlines, layer="outlines")
    cls, _, _, _ = _read(r.classes)
    assert len(gdf) == r.n_outlines > 0 and set(gdf["class_name"]) == {"glacier"}
    assert gdf.crs.to_epsg() == 32645
    # The footprint layer is the classified area (here the whole scene).
    fp = read_footprint(r.outlines)
    assert len(fp) == 1 and fp.crs.to_epsg() == 32645
    assert fp["n_valid_px"][0] == (cls != 255).sum()
    assert math.isclose(fp.geometry.area[0], (cls != 255).sum() * RES * RES, rel_tol=1e-9)
    assert math.isclose(gdf["area_km2"].sum(), (cls == 1).sum() * RES * RES / 1e6,
                        rel_tol=1e-9)
    big = gdf["area_km2"].max()
    r2 = _run(gkm, scene["clean"], tmp_path, "o2", backend="onnx", min_area_km2=big * 0.999)
    assert r2.n_outlines == 1


def test_default_min_area_is_the_rgi_minimum():
    # Speckle below 0.01 km² (11 px at 30 m) is dropped by default, in the library and the CLI.
    import inspect

    from glacierkit.cli.map import predict as cli_predict
    from glacierkit.dl.predict import MIN_AREA_KM2, _drop_small_regions
    from glacierkit.io.grid import Grid

    assert MIN_AREA_KM2 == 0.01
    assert inspect.signature(predict_scene).parameters["min_area_km2"].default == MIN_AREA_KM2
    assert inspect.signature(cli_predict).parameters["min_area"].default.default == MIN_AREA_KM2
    classes = np.zeros((40, 40), np.uint8)
    classes[2:5, 2:5] = 1  # 9 px = 0.0081 km²: dropped
    classes[20:24, 20:23] = 1  # 12 px = 0.0108 km²: kept
    _drop_small_regions(classes, Grid(CRS, TRANSFORM, classes.shape), [1], MIN_AREA_KM2)
    assert (classes[2:5, 2:5] == 255).all() and (classes[20:24, 20:23] == 1).all()


@pytest.mark.parametrize("band_rows", [1024, 9, 31])
@pytest.mark.parametrize("min_px", [2, 3, 7.5, 40])
def test_small_region_prefilter_equals_post_filter(min_px, band_rows):
    """Dropping small regions before polygonizing keeps exactly the polygons that are large."""
    from glacierkit.dl.predict import _drop_small_regions
    from glacierkit.io.grid import Grid
    from glacierkit.io.vector import polygonize

    rng = np.random.default_rng(0)
    classes = (rng.random((120, 90)) < 0.45).astype(np.uint8) * 2  # speckle of class 2
    classes[rng.random((120, 90)) < 0.1] = 1
    classes[:, :3] = 255
    grid = Grid(CRS, TRANSFORM, classes.shape)
    limit = min_px * RES * RES / 1e6
    names = {0: "background", 1: "clean_ice", 2: "debris"}
    ref = polygonize(classes, grid, class_names=names, nodata=255)
    ref = ref[ref["area_km2"] >= limit]
    pre = classes.copy()
    _drop_small_regions(pre, grid, [1, 2], limit, band_rows=band_rows)
    got = polygonize(pre, grid, class_names=names, nodata=255)
    got = got[got["area_km2"] >= limit]
    assert len(got) == len(ref) > 0
    assert sorted(got.geometry.area.round(3)) == sorted(ref.geometry.area.round(3))
    if min_px >= 3:  # below that nothing is worth pre-filtering
        assert (pre == 255).sum() > (classes == 255).sum()  # small regions were removed
    # Exactly the regions below the limit are gone (whole-scene labelling as the reference),
    # however the rows are cut into bands.
    from scipy import ndimage

    expect = classes.copy()
    for c in (1, 2):
        lab, _ = ndimage.label(classes == c)
        sizes = np.bincount(lab.ravel())
        small = sizes < math.floor(min_px * (1 - 1e-9))
        small[0] = False
        expect[small[lab]] = 255
    np.testing.assert_array_equal(pre, expect)


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_inconsistent_model_file(scene, standin, tmp_path, backend):
    _, _, gkm = standin
    b = load_bundle(gkm)
    b.classes = ["background", "glacier", "debris"]  # the network has two outputs
    with pytest.raises(ModelFileError, match="classes: network 2 vs file 3"):
        _run(b, scene["clean"], tmp_path, f"bad_{backend}", backend=backend)
    assert not list((tmp_path / f"bad_{backend}").iterdir())  # no temporary left


def test_calibration_applied(scene, standin, tmp_path):
    _, _, gkm = standin
    b = load_bundle(gkm)
    b.calibration = {"kind": "temperature", "temperature": 3.0}
    r = _run(b, scene["clean"], tmp_path, "cal", backend="onnx", outlines=False,
             write_probabilities=True)
    p, _, _, _ = _read(r.probabilities)
    conf, _, tags, _ = _read(r.confidence)
    z = np.log(p) / 3.0
    expect = np.exp(z).max(0) / np.exp(z).sum(0)
    assert np.allclose(conf[0], expect, atol=1e-5) and tags["CALIBRATION"] == "temperature"
    assert np.all(conf[0] <= p.max(0) + 1e-6)  # T > 1 softens


def _cond_bundle(scene, cond, cond_dim):
    torch.manual_seed(2)
    model = BrightStandIn(cond_dim=cond_dim).eval()
    with torch.no_grad():
        model.gate.weight[:, 2:] *= 20  # make the conditioning matter
    return bundle_from_model(
        model, layout=LAYOUT.to_dict(), norm=_norm(*scene["arrays"]).to_dict(),
        classes=["background", "glacier"], cond=cond, tile={"size": 64, "overlap": 16},
        model_kwargs={"group_channels": [4, 2], "n_classes": 2, "cond_dim": cond_dim})


def test_region_conditioning(scene, tmp_path, caplog):
    b = _cond_bundle(scene, {"kind": "region", "regions": ["alps", "himalaya"]}, 3)
    kw = {"backend": "torch", "write_probabilities": True, "outlines": False}
    alps = _read(_run(b, scene["clean"], tmp_path, "alps", region="alps", **kw).probabilities)
    with caplog.at_level(logging.WARNING, logger="glacierkit.dl.predict"):
        unk = _read(_run(b, scene["clean"], tmp_path, "unk", **kw).probabilities)
    assert any("unknown" in m for m in caplog.messages)
    assert np.abs(alps[0] - unk[0]).max() > 1e-3
    assert json.loads(alps[2]["PREDICTION"])["region"] == "alps"
    with pytest.raises(InputError, match="'andes' is not one this model knows"):
        _run(b, scene["clean"], tmp_path, "andes", region="andes", **kw)


def test_coords_conditioning_and_mismatch(scene, tmp_path):
    b = _cond_bundle(scene, {"kind": "coords", "regions": []}, 4)
    r = _run(b, scene["clean"], tmp_path, "coords", backend="torch", outlines=False)
    assert np.all(_read(r.classes)[0] < 2)
    bad = _cond_bundle(scene, {"kind": "region", "regions": ["alps"]}, 4)
    with pytest.raises(InputError, match="cond_dim=4"):
        _run(bad, scene["clean"], tmp_path, "bad", backend="torch")


def test_three_classes(scene, tmp_path):
    torch.manual_seed(3)
    model = BrightStandIn(n_classes=3).eval()
    b = bundle_from_model(
        model, layout=LAYOUT.to_dict(), norm=_norm(*scene["arrays"]).to_dict(),
        classes=["background", "clean_ice", "debris"], tile={"size": 64, "overlap": 16},
        model_kwargs={"group_channels": [4, 2], "n_classes": 3, "cond_dim": 0})
    r = _run(b, scene["holes"], tmp_path, "k3", backend="torch", write_probabilities=True)
    p = _read(r.probabilities)[0]
    cls = _read(r.classes)[0][0]
    valid = cls != 255
    assert p.shape[0] == 3 and np.allclose(p[:, valid].sum(0), 1, atol=1e-5)
    assert np.array_equal(cls[valid], p[:, valid].argmax(0)) and len(np.unique(cls)) > 2
    opt, dem = scene["arrays"]
    norm = NormStats.from_dict(b.norm)
    norm_x = norm.apply(prepare_channels(LAYOUT, [opt, dem], pixel_size=(RES, RES)))
    with torch.no_grad():
        whole = torch.softmax(model(torch.from_numpy(norm_x[None]), torch.ones(1, 2)), 1)[0]
    # the last class (1 − Σ of the blended others) matches a whole-scene forward away from the
    # nodata block (whose NaNs make the scene forward differ nearby)
    far = np.zeros((H, W), bool)
    far[100:, 100:] = True
    assert np.abs(p[2][far] - whole[2].numpy()[far]).max() < 1e-3
    import geopandas as gpd

    names = set(gpd.read_file(r.outlines, layer="outlines")["class_name"])
    assert names <= {"clean_ice", "debris"} and names  # background never outlined


def test_in_place_normalisation_matches_normstats():
    from glacierkit.dl.predict import _TileFunction

    norm = NormStats(mean=np.array([0.3, 3500.0, -11.0]), std=np.array([0.25, 700.0, 3.0]))
    layout = SourceLayout((SourceGroup("a", "other", ("c1",)),
                           SourceGroup("d", "dem", ("elevation",)),
                           SourceGroup("s", "sar", ("vv_db",))))
    fn = _TileFunction(layout=layout, norm=norm, groups=[], file_slices=[], band_sel=[],
                       pixel_size=(1.0, 1.0), multiple=1, n_classes=2, rule="all", cond=None,
                       runner=None, tta=False, mc_samples=0)
    mean, inv, part = fn._stats["x"]

    def normalise(a):
        return fn._normalise(a, mean, inv, part)

    rng = np.random.default_rng(0)
    x = (rng.standard_normal((3, 16, 16)) * [[[0.3]], [[900]], [[4]]]
         + [[[0.3]], [[3500]], [[-11]]]).astype(np.float32)
    clean = x.copy()  # all finite: the fast path (no mask)
    assert np.abs(norm.apply(clean.copy()) - normalise(clean.copy())).max() < 1e-5
    x[0, 0, :5] = np.nan
    x[1, 1, 1] = np.inf
    ref = norm.apply(x.copy())
    got = normalise(x.copy())
    assert np.abs(ref - got).max() < 1e-5 and np.isfinite(got).all()
    assert (got[0, 0, :5] == 0).all() and got[1, 1, 1] == 0


# ---------------------------------------------------------------------------- GlaViTU
@pytest.fixture(scope="module")
def glavitu(scene):
    models = pytest.importorskip("glacierkit.dl.models")
    torch.manual_seed(0)
    model = models.build_model("glavitu", group_channels=LAYOUT.group_channels, n_classes=2,
                               size="tiny").eval()
    onnx_bytes = export_onnx(model, group_channels=LAYOUT.group_channels, cond_dim=0,
                             example_size=(64, 64))
    norm = _norm(*scene["arrays"])
    bundle = bundle_from_model(model, layout=LAYOUT.to_dict(), norm=norm.to_dict(),
                               classes=["background", "glacier"],
                               tile={"size": 96, "overlap": 32}, onnx_bytes=onnx_bytes)
    return model, save_bundle(scene["dir"] / "glavitu.gkm", bundle)


def test_glavitu_torch_backend_without_onnx(scene, tmp_path):
    """The real model through the whole pipeline (no export: fast); auto picks torch."""
    models = pytest.importorskip("glacierkit.dl.models")
    torch.manual_seed(0)
    model = models.build_model("glavitu", group_channels=LAYOUT.group_channels, n_classes=2,
                               size="tiny").eval()
    b = bundle_from_model(model, layout=LAYOUT.to_dict(),
                          norm=_norm(*scene["arrays"]).to_dict(),
                          classes=["background", "glacier"], tile={"size": 88, "overlap": 24})
    assert b.tile["multiple"] == model.multiple == 16 and not b.has_onnx
    gkm = save_bundle(tmp_path / "g.gkm", b)
    r = _run(gkm, scene["holes"], tmp_path, "g", outlines=False, write_probabilities=True)
    assert r.backend == "torch" and r.tiles_run > 0  # 88 px tiles padded to 96 for the model
    p = _read(r.probabilities)[0]
    hole = np.zeros((H, W), bool)
    hole[NODATA_BLOCK] = True
    assert np.all(np.isnan(p[:, hole])) and np.allclose(p[:, ~hole].sum(0), 1, atol=1e-5)


@pytest.mark.slow  # the ONNX export of GlaViTU takes 15–25 s on a small CPU
def test_glavitu_export_and_backends_agree(glavitu, scene, tmp_path):
    model, gkm = glavitu
    b = load_bundle(gkm)
    assert b.arch == "glavitu" and b.tile["multiple"] == model.multiple
    rng = np.random.default_rng(3)
    inputs = {"x": rng.standard_normal((2, 6, 96, 160)).astype(np.float32),
              "present": np.array([[1, 1], [1, 0]], np.float32)}
    assert check_onnx(model, b.onnx_bytes(), inputs, 1e-4) <= 1e-4
    # predict on the scene with both backends: tile 96 ≠ export size, edge tiles clamped
    r_onnx = _run(gkm, scene["holes"], tmp_path, "go", backend="onnx", write_probabilities=True,
                  outlines=False, batch_size=2)
    r_torch = _run(gkm, scene["holes"], tmp_path, "gt", backend="torch",
                   write_probabilities=True, outlines=False, batch_size=2)
    p1, p2 = _read(r_onnx.probabilities)[0], _read(r_torch.probabilities)[0]
    assert np.nanmax(np.abs(p1 - p2)) < 1e-4
    assert np.mean(_read(r_onnx.classes)[0] != _read(r_torch.classes)[0]) <= 1e-3


def test_bundle_is_a_modelbundle(standin):
    assert isinstance(load_bundle(standin[2]), ModelBundle)




@pytest.mark.parametrize("k", [1, 2, 5])
def test_argmax_max__first_maximum_and_nan(k):
    from glacierkit.dl.predict import _argmax_max

    rng = np.random.default_rng(k)
    p = rng.random((k, 37, 41)).astype(np.float32)
    p[:, 3, :5] = 0.25  # ties: the first class wins
    p[:, 4, :6] = np.nan  # a pixel nothing was predicted for
    cls, top = _argmax_max(p)
    assert cls.dtype == np.uint8 and top.dtype == np.float32 and cls.shape == (37, 41)
    finite = np.isfinite(p).all(axis=0)
    np.testing.assert_array_equal(cls[finite], np.argmax(p, axis=0)[finite])
    np.testing.assert_array_equal(top[finite], p.max(axis=0)[finite])
    assert (cls[3, :5] == 0).all()
    assert (cls[~finite] == 0).all() and np.isnan(top[~finite]).all()
