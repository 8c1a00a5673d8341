"""``glacierkit velocity-qa``: JSON and table output on GLAFT's Kaskawulsh demo, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from affine import Affine
from shapely.geometry import box

import glacierkit.cli.velocity_qa  # noqa: F401 - registers the command
from glacierkit.cli.main import main

KEYS = ("sav_dx", "sav_dy", "sav_peak_x", "sav_peak_y", "sav_incorrect_share", "strain_normal",
        "strain_shear", "invalid_share", "stable_median_x", "stable_median_y", "stable_nmad_x",
        "stable_nmad_y", "units")


@pytest.fixture(scope="module")
def kask(shared_data: Path) -> Path:
    return shared_data / "glaft_kaskawulsh"


def _args(kask: Path) -> list[str]:
    return ["velocity-qa", str(kask / "20180304-20180405_velo-raw_vx.tif"),
            str(kask / "20180304-20180405_velo-raw_vy.tif"),
            "--stable", str(kask / "bedrock_V2.shp"),
            "--ice", str(kask / "glacier_V1_Kaskawulsh_s_inwardBuffer600m.shp"),
            "--gps", str(kask / "gps" / "Kaskawulsh_2018-04-05_to_2018-03-04_GPS.csv"),
            "--units", "m/day"]


@pytest.mark.realdata
def test_velocity_qa_json__kaskawulsh(kask: Path, capsys):
    assert main([*_args(kask), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)  # strict JSON: NaN is written as null
    for k in KEYS:
        assert k in d
    assert d["units"] == "m/day" and d["strain_units"] == "1/day"
    # GLAFT quick start, same map and polygons: 0.1501, 0.1598 m/day; 0.001755, 0.001646 1/day
    assert round(d["sav_dx"], 4) == 0.1501 and round(d["sav_dy"], 4) == 0.1598
    assert round(d["strain_normal"], 6) == 0.001755 and round(d["strain_shear"], 6) == 0.001646
    assert 0 <= d["sav_incorrect_share"] <= 1 and 0 <= d["invalid_share"] <= 1
    assert d["gps_n"] == 2
    assert d["gps_stations"][2]["gps_vx"] is None  # station without a 2018-04-05 position


@pytest.mark.realdata
def test_velocity_qa_table__kaskawulsh(kask: Path, capsys):
    assert main([*_args(kask)[:5], "--units", "m/day"]) == 0
    out = capsys.readouterr().out
    assert "m/day" in out and "static-area δ" in out and "0.1501" in out
    assert "strain" not in out  # no --ice


def _tiny(tmp_path: Path, tif_factory, *, nodata=None, units=True):
    rng = np.random.default_rng(0)
    t = Affine(60.0, 0, 600000.0, 0, -60.0, 6740000.0)
    vx = (0.1 * rng.standard_normal((30, 40))).astype(np.float32)
    vy = (0.1 * rng.standard_normal((30, 40))).astype(np.float32)
    px = tif_factory("vx.tif", vx, transform=t)
    py = tif_factory("vy.tif", vy, transform=t)
    poly = tmp_path / "rock.geojson"
    gpd.GeoDataFrame(geometry=[box(600000.0, 6738200.0, 602400.0, 6740000.0)],
                     crs="EPSG:32607").to_file(poly)
    return px, py, poly


def test_velocity_qa__synthetic_and_errors(tmp_path: Path, tif_factory, capsys):
    px, py, poly = _tiny(tmp_path, tif_factory)
    assert main(["velocity-qa", str(px), str(py), "--stable", str(poly), "--units", "m/yr",
                 "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["units"] == "m/yr" and d["stable_n_valid"] == 1200
    assert "strain_normal" not in d and "gps_n" not in d

    # units neither given nor tagged in the files
    assert main(["velocity-qa", str(px), str(py), "--stable", str(poly)]) == 1
    assert "--units" in capsys.readouterr().err

    # stable polygons that miss the map: the message names the file and both extents
    far = tmp_path / "far.geojson"
    gpd.GeoDataFrame(geometry=[box(0, 0, 100, 100)], crs="EPSG:32607").to_file(far)
    assert main(["velocity-qa", str(px), str(py), "--stable", str(far), "--units", "m/day"]) == 1
    err = capsys.readouterr().err
    assert "far.geojson" in err and "does not overlap" in err

    # different grids without --align
    shifted = tif_factory("vy2.tif", np.zeros((30, 40), np.float32),
                          transform=Affine(60.0, 0, 600030.0, 0, -60.0, 6740000.0))
    assert main(["velocity-qa", str(px), str(shifted), "--stable", str(poly),
                 "--units", "m/day"]) == 1
    assert "grid" in capsys.readouterr().err.lower()

    # a GPS file whose coordinates are not in the map's CRS and no --gps-crs
    gps = tmp_path / "gps.csv"
    gps.write_text("station,lon,lat,vx (m/d),vy (m/d)\nA,-138.6,60.7,0.1,0.2\n")
    assert main(["velocity-qa", str(px), str(py), "--stable", str(poly), "--units", "m/day",
                 "--gps", str(gps), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["gps_stations"][0]["status"] == "outside map"
    bad = tmp_path / "gps_xy.csv"
    bad.write_text("x,y,vx (m/d),vy (m/d)\n1,2,0.1,0.2\n")
    assert main(["velocity-qa", str(px), str(py), "--stable", str(poly), "--units", "m/day",
                 "--gps", str(bad)]) == 1
    assert "--gps-crs" in capsys.readouterr().err
