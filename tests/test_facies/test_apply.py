"""``classify_scene`` / ``facies predict`` on a tiny synthetic scene with a tiny patch CNN."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from affine import Affine

from glacierkit.cli.main import main
from glacierkit.errors import InputError, OutputExistsError
from glacierkit.facies.apply import FACIES_NODATA, classify_scene, majority_filter
from glacierkit.facies.vocab import FACIES_COLOURS, Vocabulary

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

H = W = 64
RES = 10.0
X0, Y0 = 500000.0, 5200000.0
TRANSFORM = Affine(RES, 0, X0, 0, -RES, Y0)
CRS = "EPSG:32632"
SPECTRA = {"ice": (0.3, 0.4, 0.5), "snow": (0.9, 0.9, 0.85)}
# Glaciers as pixel boxes (row0, row1, col0, col1), aligned to pixel edges.
BOXES = {"A": (5, 25, 5, 30), "B": (35, 60, 35, 60)}
PIXEL_KM2 = RES * RES / 1e6


def _truth() -> np.ndarray:
    cls = np.zeros((H, W), dtype=np.int64)  # ice
    cls[:, W // 2:] = 1  # snow on the right half
    return cls


def _write_scene(path: Path, *, bands: int = 3, descriptions=None, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    cls = _truth()
    spec = np.array([SPECTRA["ice"], SPECTRA["snow"]], dtype=np.float32)  # (2, 3)
    img = spec[cls].transpose(2, 0, 1) + rng.normal(0, 0.03, (3, H, W)).astype(np.float32)
    if bands > 3:
        img = np.concatenate([img, img[:1]], axis=0)
    img[:, :3, :3] = np.nan  # a nodata corner
    with rasterio.open(path, "w", driver="GTiff", width=W, height=H, count=bands,
                       dtype="float32", crs=CRS, transform=TRANSFORM, nodata=np.nan) as ds:
        ds.write(img.astype(np.float32))
        if descriptions:
            ds.descriptions = tuple(descriptions)
    return path


def _box(r0: int, r1: int, c0: int, c1: int) -> shapely.Polygon:
    x0, y0 = TRANSFORM @ (c0, r0)
    x1, y1 = TRANSFORM @ (c1, r1)
    return shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def _outlines(path: Path, crs: str = CRS, shift: float = 0.0) -> Path:
    gdf = gpd.GeoDataFrame({"rgi_id": list(BOXES)},
                           geometry=[shapely.affinity.translate(_box(*b), shift, 0)
                                     for b in BOXES.values()], crs=CRS)
    gdf.to_crs(crs).to_file(path, engine="pyogrio")
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from glacierkit.dl.bundle import save_bundle
    from glacierkit.dl.sources import SourceGroup, SourceLayout, open_scene
    from glacierkit.facies.models import PatchNet, patchnet_bundle
    from glacierkit.facies.points import cut_patches, read_points

    d = tmp_path_factory.mktemp("facies_apply")
    scene = _write_scene(d / "scene.tif")
    layout = SourceLayout((SourceGroup("optical", "optical", ("blue", "green", "red")),))
    stack = open_scene(layout, {"optical": scene})
    rng = np.random.default_rng(1)
    rr, cc = rng.integers(3, H, 300), rng.integers(3, W, 300)
    xs, ys = TRANSFORM @ (cc + 0.5, rr + 0.5)
    names = np.array(["ice", "snow"])[_truth()[rr, cc]]
    pts = read_points(pd.DataFrame({"class": names, "x": xs, "y": ys}),
                      vocabulary=Vocabulary(), bands=None, crs=CRS)
    X, keep, _ = cut_patches(pts, stack, 9)
    present = np.unique(pts.targets)
    y = np.searchsorted(present, pts.targets[keep])
    net = PatchNet(n_classes=2, group_channels=(3,), epochs=2, accelerator="cpu",
                   overrides={"widths": [8, 8], "dilations": [1, 2], "kernel": 3}).fit(X, y)
    classes = list(Vocabulary().subset(present))
    bundle = patchnet_bundle(net, layout=layout, classes=classes,
                             vocabulary=Vocabulary().to_dict(), tile_size=64)
    model = save_bundle(d / "model.gkm", bundle) or d / "model.gkm"
    outl = _outlines(d / "outlines.gpkg")
    return {"dir": d, "scene": scene, "model": Path(model), "outlines": outl,
            "classes": classes}


def test_products_colour_table_tags_nodata_and_areas(setup: dict, tmp_path: Path) -> None:
    res = classify_scene(setup["model"], {"optical": setup["scene"]}, tmp_path,
                         outlines=setup["outlines"])
    assert res.classes == ("ice", "snow")
    with rasterio.open(res.facies) as ds:
        f = ds.read(1)
        assert ds.dtypes[0] == "uint8" and ds.nodata == FACIES_NODATA
        assert ds.descriptions == ("facies",)
        assert json.loads(ds.tags()["CLASS_NAMES"]) == ["ice", "snow"]
        cmap = ds.colormap(1)
        assert cmap[0] == FACIES_COLOURS["ice"] and cmap[1] == FACIES_COLOURS["snow"]
    inside = np.zeros((H, W), dtype=bool)
    for r0, r1, c0, c1 in BOXES.values():
        inside[r0:r1, c0:c1] = True
    assert (f[~inside] == FACIES_NODATA).all()
    assert (f[inside] != FACIES_NODATA).all()
    # the synthetic facies are easy: most pixels right
    assert (f[inside] == _truth()[inside]).mean() > 0.8
    with rasterio.open(res.confidence) as ds:
        c = ds.read(1)
    assert np.isnan(c[~inside]).all() and np.isfinite(c[inside]).all()
    areas = pd.read_csv(res.areas_csv, dtype={"id": str}).set_index("id")
    for gid, (r0, r1, c0, c1) in BOXES.items():
        km2 = (r1 - r0) * (c1 - c0) * PIXEL_KM2
        assert areas.loc[gid, "area_km2"] == pytest.approx(km2, rel=1e-4)
        assert areas.loc[gid, ["ice_km2", "snow_km2"]].sum() == pytest.approx(km2, rel=1e-4)
        assert areas.loc[gid, ["ice_pct", "snow_pct"]].sum() == pytest.approx(100, abs=0.01)
    # glacier A lies on the ice half, B on the snow half
    assert areas.loc["A", "ice_pct"] > 80 and areas.loc["B", "snow_pct"] > 80
    rep = json.loads(res.report.read_text())
    assert rep["outlines"]["n_glaciers"] == 2 and rep["backend"] == "onnx"
    assert "facies" in rep["vocabulary"]
    assert not list(tmp_path.glob(".glacierkit-*"))  # no temporary folder left


def test_majority_filter_known_answer() -> None:
    a = np.zeros((7, 7), dtype=np.uint8)
    a[3, 3] = 1  # isolated pixel → removed
    a[0:3, 4:7] = 2  # 3×3 block → kept
    a[6, 0] = FACIES_NODATA  # nodata stays
    out = majority_filter(a, 3)
    want = a.copy()
    want[3, 3] = 0
    # (2, 4), the block's lower-left pixel, sees four 2s, four 0s and the 1: a tie with its
    # own class keeps it; the block's edges see fewer pixels (outside the image is not
    # counted) and stay 2.
    assert (out == want).all(), out
    # pixels outside the mask are neither counted nor changed
    m = np.ones_like(a, dtype=bool)
    m[3, 3] = False
    assert majority_filter(a, 3, mask=m)[3, 3] == 1
    with pytest.raises(InputError, match="odd"):
        majority_filter(a, 4)


def test_majority_option_recorded_and_checked(setup: dict, tmp_path: Path) -> None:
    res = classify_scene(setup["model"], {"optical": setup["scene"]}, tmp_path,
                         outlines=setup["outlines"], majority=5)
    rep = json.loads(res.report.read_text())
    assert rep["majority"]["window_px"] == 5 and rep["majority"]["pixels_changed"] >= 0
    with pytest.raises(InputError, match="odd"):
        classify_scene(setup["model"], {"optical": setup["scene"]}, tmp_path / "x",
                       majority=4)


def test_outlines_in_other_crs_and_not_overlapping(setup: dict, tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    ll = _outlines(tmp_path / "ll.gpkg", crs="EPSG:4326")
    with caplog.at_level(logging.INFO, logger="glacierkit"):
        res = classify_scene(setup["model"], {"optical": setup["scene"]}, tmp_path,
                             outlines=ll)
    assert "reprojecting" in caplog.text
    areas = res.areas.set_index("id")
    km2 = (BOXES["A"][1] - BOXES["A"][0]) * (BOXES["A"][3] - BOXES["A"][2]) * PIXEL_KM2
    assert areas.loc["A", "area_km2"] == pytest.approx(km2, rel=0.1)
    far = _outlines(tmp_path / "far.gpkg", shift=50_000)
    (tmp_path / "o2").mkdir()
    with pytest.raises(InputError, match="overlap"):
        classify_scene(setup["model"], {"optical": setup["scene"]}, tmp_path / "o2",
                       outlines=far)


def test_no_outlines_is_the_whole_valid_scene(setup: dict, tmp_path: Path) -> None:
    res = classify_scene(setup["model"], {"optical": setup["scene"]}, tmp_path)
    assert list(res.areas["id"]) == ["scene"]
    assert res.areas["area_km2"].iloc[0] == pytest.approx((H * W - 9) * PIXEL_KM2)
    assert "whole valid scene" in json.loads(res.report.read_text())["outlines"]["note"]


def test_not_a_facies_model(setup: dict, tmp_path: Path) -> None:
    from glacierkit.dl.bundle import load_bundle

    b = load_bundle(setup["model"])
    other = dataclasses.replace(b, task="mapping")
    with pytest.raises(InputError, match=r"is a mapping model.*use `glacierkit map predict`"):
        classify_scene(other, {"optical": setup["scene"]}, tmp_path)


def test_wrong_band_count_and_band_names(setup: dict, tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    four = _write_scene(tmp_path / "four.tif", bands=4)
    with pytest.raises(InputError, match=r"4 band\(s\).*expects 3"):
        classify_scene(setup["model"], {"optical": four}, tmp_path)
    named = _write_scene(tmp_path / "named.tif", descriptions=("red", "green", "blue"))
    with caplog.at_level(logging.WARNING, logger="glacierkit"):
        classify_scene(setup["model"], {"optical": named}, tmp_path)
    assert "band descriptions" in caplog.text and "another order" in caplog.text


def test_existing_outputs_refused(setup: dict, tmp_path: Path) -> None:
    src = {"optical": setup["scene"]}
    classify_scene(setup["model"], src, tmp_path, outlines=setup["outlines"])
    before = (tmp_path / "facies.tif").stat().st_mtime_ns
    with pytest.raises(OutputExistsError):
        classify_scene(setup["model"], src, tmp_path, outlines=setup["outlines"])
    assert (tmp_path / "facies.tif").stat().st_mtime_ns == before
    classify_scene(setup["model"], src, tmp_path, outlines=setup["outlines"], overwrite=True)


def test_cli_predict(setup: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    args = ["facies", "predict", str(setup["model"]), str(setup["scene"]), "--outlines",
            str(setup["outlines"]), "-o", str(out), "--majority", "3"]
    assert main([*args, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert {r["id"] for r in d["areas"]} == {"A", "B"} and d["majority"] == 3
    assert (out / "facies.tif").exists() and (out / "areas.csv").exists()
    assert main(args) == 1  # outputs exist
    assert "already exists" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    assert "glacier" in capsys.readouterr().out
    assert main([*args, "--overwrite", "--dem", str(setup["scene"])]) == 1
