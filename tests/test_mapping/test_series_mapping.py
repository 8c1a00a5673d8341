"""Glacier mapping from a SAR time series through the one mapping front end.

``map train`` with a series group in ``[layout]`` (synthetic Sentinel-1 files written as
GeoTIFFs on a real grid: the Ötztal DEM and RGI outlines at 100 m), then ``map predict`` on
a folder of dates, and the bad inputs of the series path.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from glacierkit.cli.main import main
from glacierkit.dl.bundle import load_bundle
from glacierkit.dl.predict import predict_scene
from glacierkit.dl.synthetic_series import (
    real_grid_scene,
    sample_dates,
    write_synthetic_series,
)
from glacierkit.errors import DomainShiftError, InputError
from glacierkit.io import write_raster
from glacierkit.series import open_series

# A 128 × 128 px (12.8 km) crop of the Ötztal grid at 100 m, about a third glacier.
BOUNDS = (629000.0, 5183000.0, 641800.0, 5195800.0)


@pytest.fixture(scope="module")
def series_scene(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("series")
    scene = real_grid_scene("oetztal", pixel_size_m=100.0, bounds=BOUNDS)
    dates = sample_dates(2021, mode="regular", per_year=12, passes=("descending",))
    files = write_synthetic_series(root / "s1", scene.labels, scene.grid, dates,
                                   dem=scene.dem, seed=1)
    labels = write_raster(root / "labels.tif", scene.labels.astype(np.uint8), scene.grid,
                          nodata=255)
    return {"root": root, "scene": scene, "files": files, "labels": labels,
            "folder": root / "s1", "dates": dates}


CONFIG = """
[output]
dir = "run"

[layout.s1]
kind = "sar"
bands = ["vv"]
scale = "power"
time = true

[[scenes]]
name = "oetztal"
labels = "labels.tif"
[scenes.sources]
s1 = "s1/dates.csv"

[series]
direction = "descending"
dates_per_year = 0

[split]
kind = "half"
axis = "cols"
test_fraction = 0.3
val_fraction = 0.25

[model]
arch = "utae"
size = "tiny"

[train]
patch_size = 16
samples_per_epoch = 64
epochs = 2
batch_size = 8
lr = 0.003
progress = false

[augment]
date_offset_std = 0.05
date_jitter_days = 3.0
date_dropout = 0.1

[calibration]
method = "temperature"

[inference]
tile_size = 64
overlap = 16
"""


@pytest.fixture(scope="module")
def trained(series_scene) -> dict:
    from glacierkit.mapping.config import load_config
    from glacierkit.mapping.pipeline import train_mapping

    cfg_path = series_scene["root"] / "config.toml"
    cfg_path.write_text(CONFIG)
    report = train_mapping(load_config(cfg_path))
    return {"report": report, "model": series_scene["root"] / "run" / "model.gkm"}


def test_map_train_on_a_series_writes_a_series_model_and_reports(trained, series_scene):
    rep = trained["report"]
    scene = rep["scenes"]["oetztal"]
    # The Nagler–Rott baseline on the same test pixels, and the model's metrics.
    assert scene["baseline"]["method"]["method"] == "sar-ratio"
    assert 0.0 <= scene["model"]["iou"] <= 1.0 and 0.0 <= scene["baseline"]["metrics"]["iou"]
    # Area of the test part: expected from calibrated probabilities with an interval, and
    # the reference area from the labels of the same pixels.
    area = scene["area"]
    assert area["lower_km2"] <= area["expected_km2"] <= area["upper_km2"]
    assert area["reference_km2"] > 3.0 and area["method"] == "block-bootstrap"
    b = load_bundle(trained["model"])
    assert b.format_version == 2 and b.task == "mapping" and b.arch == "utae"
    assert [i["name"] for i in b.inputs] == ["series", "dates", "mask"]
    assert b.inputs[0]["shape"] == ["B", "T", 1, "H", "W"]
    assert b.series["date_aware"] is True and b.series["time_steps"] is None
    assert b.series["selection"]["direction"] == "descending"
    assert b.series["training_dates"] == [12]
    layout = b.layout["groups"]
    assert layout == [{"name": "s1", "kind": "sar", "channels": ["vv_db"], "bands": ["vv"],
                       "db_input": False, "time": True}]
    # The training domain is in dB of every training date.
    (ch,) = b.domain["channels"]
    assert ch["channel"] == "vv_db" and ch["units"] == "dB" and -30 < ch["p50"] < 0


def test_map_predict_on_a_folder_of_dates(trained, series_scene, tmp_path, capsys):
    out = tmp_path / "pred"
    capsys.readouterr()
    assert main(["-q", "map", "predict", str(trained["model"]), f"s1={series_scene['folder']}",
                 "-o", str(out), "--json"]) == 0
    d = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert d["area"]["expected_km2"] > 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["series"]["dates"] == 12 and rep["series"]["first"].startswith("2021-01")
    lo, hi = (rep["area"]["block_bootstrap_95"][k] for k in ("lower_km2", "upper_km2"))
    assert lo <= rep["area"]["expected_km2"] <= hi
    assert {p.name for p in out.iterdir()} == {"classes.tif", "confidence.tif",
                                               "outlines.gpkg", "report.json"}
    # The same area from the products themselves: Σ calibrated glacier probability × 1 ha.
    import rasterio

    with rasterio.open(out / "classes.tif") as c, rasterio.open(out / "confidence.tif") as f:
        cls, conf = c.read(1), f.read(1).astype(np.float64)
    ok = cls != 255
    p = np.where(cls == 1, conf, 1 - conf)[ok]
    assert rep["area"]["expected_km2"] == pytest.approx(p.sum() * 0.01, rel=1e-9)
    # glacierkit info names the inputs and the dates the model takes.
    capsys.readouterr()
    assert main(["-q", "info", str(trained["model"]), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert [i["name"] for i in info["inputs"]] == ["series", "dates", "mask"]
    assert info["series"]["date_aware"] and info["groups"][0]["time"]
    assert main(["-q", "info", str(trained["model"])]) == 0
    table = capsys.readouterr().out
    assert "any number, date-aware" in table and "sar series" in table
    # Dates per year from the CLI: 6 of the 12 dates.
    assert main(["-q", "map", "predict", str(trained["model"]), f"s1={series_scene['folder']}",
                 "-o", str(tmp_path / "p6"), "--dates-per-year", "6", "--interval-block-m",
                 "1000"]) == 0
    rep6 = json.loads((tmp_path / "p6" / "report.json").read_text())
    assert rep6["series"]["dates"] == 6 and rep6["area"]["block_m"] == pytest.approx(1000.0)
    assert rep6["area"]["block_bootstrap_95"]["n_blocks"] == 13 * 13  # 12.8 km / 1 km blocks


def test_series_bad_inputs_at_prediction(trained, series_scene, tmp_path):
    model = trained["model"]
    files = series_scene["files"]
    # A series model given a single raster instead of a series.
    with pytest.raises(InputError, match="needs a series"):
        predict_scene(model, {"s1": str(files[0])}, tmp_path / "a")
    # dB given where the model expects linear power: the scale check of the series.
    db_dir = tmp_path / "db"
    db_dir.mkdir()
    import rasterio

    acquired = []
    for f in files:
        with rasterio.open(f) as src:
            prof, a = src.profile, src.read(1)
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where(a > 0, 10 * np.log10(a), 0).astype(np.float32)
        with rasterio.open(db_dir / f.name, "w", **prof) as dst:
            dst.write(a, 1)
        acquired.append(open_series([f], scale="power").dates[0])
    with pytest.raises(InputError, match=r"look like dB|looks like dB|negative"):
        open_series(db_dir, scale="power")
    # Bypassing the series check (files and dates given directly): the domain guard.
    with pytest.raises(DomainShiftError):
        predict_scene(model, {"s1": (sorted(db_dir.glob("*.tif")), np.array(acquired))},
                      tmp_path / "b")
    # Duplicate dates.
    with pytest.raises(InputError, match=r"increasing|duplicate"):
        predict_scene(model, {"s1": (files[:2], np.array([acquired[0], acquired[0]]))},
                      tmp_path / "c")


def test_single_date_model_refuses_a_series(series_scene, tmp_path, optical_scene):
    test_dl = str(Path(__file__).resolve().parents[1] / "test_dl")
    if test_dl not in sys.path:
        sys.path.insert(0, test_dl)
    from standins import save_optical_standin

    model = save_optical_standin(tmp_path / "m.gkm", *optical_scene)
    stack = open_series(series_scene["folder"] / "dates.csv", scale="power")
    with pytest.raises(InputError, match="single-date"):
        predict_scene(model, {"optical": stack}, tmp_path / "o")


def test_config_errors_for_series(series_scene):
    import tomllib

    from glacierkit.mapping.config import parse_config

    raw = tomllib.loads(CONFIG)
    base = series_scene["root"]
    raw["model"]["arch"] = "icemapper3d"
    with pytest.raises(InputError, match="dates_per_year"):
        parse_config(raw, base=base)
    raw["model"]["arch"] = "glavitu"
    with pytest.raises(InputError, match="single-date"):
        parse_config(raw, base=base)
    raw["model"]["arch"] = "utae"
    raw["series"]["direction"] = "sideways"
    with pytest.raises(InputError, match="direction"):
        parse_config(raw, base=base)


def test_fixed_dates_model_refuses_another_number_of_dates(series_scene, tmp_path):
    """A model with a fixed number of dates (ICEmapper protocol) refuses 12 dates."""
    from glacierkit.dl.bundle import bundle_from_model, save_bundle
    from glacierkit.dl.models import build_model
    from glacierkit.dl.sources import NormStats, SourceGroup, SourceLayout

    layout = SourceLayout((SourceGroup("s1", "sar", ("vv_db",), bands=("vv",), time=True),))
    model = build_model("icemapper3d", group_channels=(1,), n_classes=2, size="tiny")
    assert model.time_steps == 15
    b = bundle_from_model(model, layout=layout.to_dict(),
                          norm=NormStats(mean=[-8.0], std=[3.0]).to_dict(),
                          classes=["off_glacier", "glacier"], task="mapping",
                          series={"selection": {"dates_per_year": 15}})
    assert b.series["time_steps"] == 15 and not b.series["date_aware"]
    path = save_bundle(tmp_path / "ice.gkm", b)
    stack = open_series(series_scene["folder"], scale="power")
    with pytest.raises(InputError, match="exactly 15 dates") as e:
        predict_scene(path, {"s1": stack}, tmp_path / "o", check_domain=False)
    assert "select_per_year" in str(e.value.hint) and "utae" in str(e.value.cli_hint)


def test_series_prediction_torch_and_onnx_agree(trained, series_scene, tmp_path):
    import rasterio

    stack = open_series(series_scene["folder"], scale="power")
    maps = {}
    for backend in ("onnx", "torch"):
        r = predict_scene(trained["model"], {"s1": stack}, tmp_path / backend, backend=backend,
                          progress=False)
        assert r.backend == backend
        with rasterio.open(r.confidence) as f:
            maps[backend] = f.read(1)
    ok = np.isfinite(maps["onnx"])
    assert ok.mean() > 0.9
    assert np.abs(maps["onnx"][ok] - maps["torch"][ok]).max() < 1e-3
