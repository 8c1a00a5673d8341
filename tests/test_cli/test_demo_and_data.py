from __future__ import annotations

import json
from pathlib import Path

import pytest
import rasterio
from PIL import Image

from glacierkit.cli.main import main
from glacierkit.demo import FOUNDATION_STEPS, run_demo
from glacierkit.errors import OutputExistsError


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory, shared_data) -> Path:
    out = tmp_path_factory.mktemp("demo") / "out"
    run_demo(out, steps=list(FOUNDATION_STEPS))
    return out


def test_demo_writes_valid_cog_and_png(demo_dir: Path):
    cog = demo_dir / "yahtse_highpass_tiled.tif"
    with rasterio.open(cog) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert ds.crs.to_epsg() == 32607 and ds.shape == (1087, 1698)
        assert ds.res == (15.0, 15.0) and ds.descriptions == ("highpass_pan",)
    with Image.open(demo_dir / "yahtse_rock_polygons.png") as png:
        assert png.format == "PNG" and png.size[0] > 400
    assert (demo_dir / "index.html").read_text().count("<img") >= 3


def test_demo_numbers(demo_dir: Path):
    s = json.loads((demo_dir / "summary.json").read_text())
    steps = {st["name"]: st for st in s["steps"]}
    assert steps["info"]["numbers"]["reference_crs"] == "EPSG:32607"
    # Core blending with overlap = 2 × kernel radius reproduces the whole-scene filter.
    assert steps["tiling"]["numbers"]["max_abs_diff_tiled_vs_whole_DN"] < 0.01
    assert steps["outlines"]["numbers"]["rgi_outlines"] == 86


def test_demo_refuses_non_empty_folder(tmp_path: Path):
    (tmp_path / "mine.txt").write_text("keep")
    with pytest.raises(OutputExistsError):
        run_demo(tmp_path, steps=[])
    with pytest.raises(OutputExistsError, match="no previous demo"):
        run_demo(tmp_path, steps=[], overwrite=True)
    assert (tmp_path / "mine.txt").exists()


def test_data_list_json(shared_data, capsys):
    assert main(["data", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    for name in ("carst_yahtse_landsat8_pair", "glaft_kaskawulsh",
                 "geoutils_everest_exploradores", "aberle_snow_ice_training_points",
                 "oggm_sample_data"):
        assert rows[name]["found"] in ("shared", "GLACIERKIT_DATA")
        assert rows[name]["licence"] and rows[name]["citation"]
        assert rows[name]["size_bytes"] > 0


def test_data_path_unknown(capsys):
    assert main(["data", "path", "no_such_dataset"]) == 1
    assert "no_such_dataset" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_mapping_step(tmp_path: Path, shared_data, monkeypatch):
    """The mapping demo step on the real Everest scene (trains a tiny GlaViTU: ~1–2 min)."""
    from glacierkit.demo import MAPPING_STEPS

    monkeypatch.chdir(tmp_path)  # a relative output folder, as `make demo` passes
    (res,) = run_demo(Path("out"), steps=list(MAPPING_STEPS))
    n = res.numbers
    assert 0.25 < n["test_part_share"] < 0.4
    # a trained model must do clearly better than chance (glacier share of the test part
    # is about one half) and the calibrated ECE must be a probability gap
    assert n["glavitu_test_iou"] > 0.5 and 0 <= n["ece_after"] <= 1
    with rasterio.open(tmp_path / "out" / "mapping_everest" / "glavitu" / "test-everest" /
                       "classes.tif") as ds:
        assert ds.crs.to_epsg() == 32645 and ds.shape == (655, 800) and ds.nodata == 255


@pytest.mark.slow
def test_demo_facies_steps(tmp_path: Path, shared_data):
    """The two facies demo steps on the real labelled spectra and Sentinel-2 crops (~45 s)."""
    from glacierkit.demo import FACIES_STEPS

    spectra, scene = run_demo(tmp_path / "out", steps=list(FACIES_STEPS))
    n = spectra.numbers
    # four classes incl. water (unpredictable in its held-out glacier): well above chance
    assert n["cv_macro_f1_cnn"] > 0.5 and n["independent_snow_macro_f1"] > 0.8
    assert 0 <= n["pruned_pct"] < 50
    m = scene.numbers
    assert m["held_out_crop"] == "B7211_20150908" and m["snow_f1"] > 0.8
    with rasterio.open(tmp_path / "out" / "facies" / "snowicesen" / "predict_B7211_20150908" /
                       "facies.tif") as ds:
        assert ds.nodata == 255 and ds.colormap(1)[0][:3] == (8, 64, 129)  # facies "ice"


@pytest.mark.slow
def test_demo_series_step(tmp_path: Path, shared_data):
    """The SAR time-series demo step: synthetic training, the real Tsho Rolpa stack (~1–2 min)."""
    import json

    from glacierkit.demo import SERIES_STEPS

    (res,) = run_demo(tmp_path / "out", steps=list(SERIES_STEPS))
    n = res.numbers
    # The held-out synthetic strip: the date-aware model must be far above chance (about 40 %
    # of the strip is glacier) and its area interval a real interval around its estimate.
    assert n["synthetic_test_iou"] > 0.8 and 0 <= n["ece_after"] <= 1
    lo, hi = n["synthetic_test_area_95_km2"]
    assert lo <= n["synthetic_test_area_km2"] <= hi
    assert n["tsho_rolpa_dates"] == 7
    d = tmp_path / "out" / "series_tsho_rolpa" / "tsho_rolpa_2021"
    rep = json.loads((d / "report.json").read_text())
    assert rep["series"]["dates"] == 7 and rep["series"]["first"].startswith("2021-01-22")
    with rasterio.open(d / "classes.tif") as ds:
        assert ds.crs.to_epsg() == 32645 and ds.shape == (135, 144) and ds.nodata == 255
