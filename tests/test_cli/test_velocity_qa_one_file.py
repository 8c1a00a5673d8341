"""``glacierkit velocity-qa VELOCITY.tif``: glacierkit's own product needs no second path."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
from affine import Affine
from shapely.geometry import box

import glacierkit.cli.velocity_qa  # noqa: F401 - registers the command
from glacierkit.cli.main import main
from glacierkit.io import Grid, write_raster


def _velocity_tif(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(1)
    grid = Grid(crs="EPSG:32607", transform=Affine(60.0, 0, 600000.0, 0, -60.0, 6740000.0),
                shape=(30, 40))
    vx = (0.1 * rng.standard_normal((30, 40))).astype(np.float32)
    vy = (1.0 + 0.2 * rng.standard_normal((30, 40))).astype(np.float32)
    path = write_raster(tmp_path / "velocity.tif", np.stack([vx, vy, np.hypot(vx, vy)]), grid,
                        band_names=["vx", "vy", "v"], units="m/yr")
    poly = tmp_path / "rock.geojson"
    gpd.GeoDataFrame(geometry=[box(600000.0, 6738200.0, 602400.0, 6740000.0)],
                     crs="EPSG:32607").to_file(poly)
    return path, poly


def test_velocity_qa__velocity_tif_alone_equals_given_twice(tmp_path: Path, capsys):
    vel, poly = _velocity_tif(tmp_path)
    assert main(["velocity-qa", str(vel), "--stable", str(poly), "--json"]) == 0
    one = json.loads(capsys.readouterr().out)
    assert main(["velocity-qa", str(vel), str(vel), "--stable", str(poly), "--json"]) == 0
    two = json.loads(capsys.readouterr().out)
    assert one["units"] == "m/yr"
    # the north component is band vy (mean ≈ 1 m/yr), not band 1 again (mean ≈ 0)
    assert 0.8 < one["stable_median_y"] < 1.2 and abs(one["stable_median_x"]) < 0.1
    for k in ("stable_median_x", "stable_median_y", "stable_nmad_x", "stable_nmad_y",
              "sav_dx", "sav_dy"):
        assert one[k] == two[k]  # the same bands are read on the same code path


def test_velocity_qa__single_band_file_alone_asks_for_vy(tmp_path: Path, capsys):
    _, poly = _velocity_tif(tmp_path)
    grid = Grid(crs="EPSG:32607", transform=Affine(60.0, 0, 600000.0, 0, -60.0, 6740000.0),
                shape=(30, 40))
    single = write_raster(tmp_path / "vx.tif", np.zeros((30, 40), np.float32), grid,
                          units="m/yr")
    assert main(["velocity-qa", str(single), "--stable", str(poly)]) == 1
    err = capsys.readouterr().err
    assert "VY" in err and "vx.tif" in err
