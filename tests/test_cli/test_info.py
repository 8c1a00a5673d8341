from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from glacierkit import __version__
from glacierkit.cli.main import main


def test_version(capsys):
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out


def test_help_lists_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for cmd in ("info", "data", "demo"):
        assert cmd in out


def test_info_yahtse_json(yahtse: Path, capsys):
    path = yahtse / "LC80630182016200LGN00_B8_yahtse.TIF"
    assert main(["info", str(path), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["crs"] == "EPSG:32607" and d["epsg"] == 32607
    assert (d["width"], d["height"]) == (1698, 1087)
    assert d["resolution"] == [15.0, 15.0]
    assert d["dtypes"] == ["uint16"] and d["band_count"] == 1
    band = d["bands"][0]
    assert 0 < band["min"] < band["mean"] < band["max"] <= 65535
    assert band["valid_share"] == 1.0


def test_info_stats_are_exact(tif_factory, capsys):
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    data[0, 0] = -9999
    p = tif_factory("s.tif", data, nodata=-9999)
    assert main(["info", str(p), "--json"]) == 0
    b = json.loads(capsys.readouterr().out)["bands"][0]
    assert (b["min"], b["max"], b["mean"]) == (1.0, 11.0, 6.0)
    assert b["valid_share"] == 11 / 12


def test_info_vector(yahtse: Path, capsys):
    assert main(["info", str(yahtse / "yahtse_stable_rock.shp"), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["kind"] == "vector" and d["feature_count"] == 42
    assert d["epsg"] == 32607 and d["geometry_types"] == ["Polygon"]


def test_info_human_readable(yahtse: Path, capsys):
    assert main(["info", str(yahtse / "yahtse_srtm_dem.tif")]) == 0
    out = capsys.readouterr().out
    assert "EPSG:32607" in out and "509 × 326" in out


def test_errors_are_one_line_and_nonzero(tmp_path: Path, capsys):
    assert main(["info", str(tmp_path / "missing.tif")]) == 1
    err = capsys.readouterr().err
    assert "error" in err and "does not exist" in err
    assert "Traceback" not in err


def test_verbose_shows_traceback(tmp_path: Path, capsys):
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00junk")
    assert main(["--verbose", "info", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "RasterReadError" in err


def test_usage_error_exit_2(capsys):
    assert main(["info"]) == 2
