"""Help pages and result tables read well: no ``<bool>`` on flags, tables fit 80 columns."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import rasterio
import typer
from affine import Affine

from glacierkit.cli.main import _register_commands, app, main


def _command_paths() -> list[list[str]]:
    """Every command and group of the app, as argument lists (``[]`` is the app itself)."""
    _register_commands()
    root = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(cmd: Any, path: list[str]) -> None:
        paths.append(path)
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            walk(sub, [*path, name])

    walk(root, [])
    return paths


def _help(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main([*args, "--help"]) == 0
    return capsys.readouterr().out


def test_every_command_is_listed() -> None:
    names = {" ".join(p) for p in _command_paths()}
    assert {"", "velocity", "map predict", "facies train", "massbalance fit", "demo"} <= names


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p) or "glacierkit")
def test_help_shows_no_type_on_flags(path: list[str], capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    text = _help(path, capsys)
    assert "--help" in text
    assert "<bool>" not in text, text


def test_help_still_shows_value_types(capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    text = _help(["map", "predict"], capsys)
    line = next(ln for ln in text.splitlines() if "--tile-size" in ln)
    assert "<int" in line
    flag = next(ln for ln in text.splitlines() if "--overwrite" in ln)
    assert "<" not in flag


# ------------------------------------------------------------------------- tables at 80 cols
def _check_80(text: str) -> None:
    """No line wider than 80 characters and no cell cut short with an ellipsis."""
    assert text.strip()
    wide = [line for line in text.splitlines() if len(line) > 80]
    assert not wide, "\n".join(wide)
    assert "…" not in text, text


def _run(args: list[str], capsys, monkeypatch) -> str:
    monkeypatch.setenv("COLUMNS", "80")
    capsys.readouterr()
    assert main(["-q", *args]) == 0
    return capsys.readouterr().out


@pytest.mark.realdata
def test_info_raster_table_fits_80_columns_with_units(yahtse, capsys, monkeypatch) -> None:
    out = _run(["info", str(yahtse / "yahtse_srtm_dem.tif")], capsys, monkeypatch)
    _check_80(out)
    assert "50 × 50 m" in out and " m (left," in out
    assert "unknown" in out  # the DEM's band does not declare its unit: said, not guessed


@pytest.mark.realdata
def test_info_vector_bounds_have_units(yahtse, capsys, monkeypatch) -> None:
    vec = next(p for p in sorted(yahtse.iterdir()) if p.suffix in (".gpkg", ".shp", ".geojson"))
    out = _run(["info", str(vec)], capsys, monkeypatch)
    _check_80(out)
    assert " m (left," in out


@pytest.mark.realdata
def test_data_list_table_fits_80_columns(shared_data, capsys, monkeypatch) -> None:
    from glacierkit import examples

    out = _run(["data", "list"], capsys, monkeypatch)
    table = out.split("\n\n")[0]
    _check_80(table)
    for ds in examples.list_datasets():
        assert ds.name in table
    assert " MB " in table or " KB " in table


def _mass_balance_inputs(tmp_path: Path) -> tuple[Path, Path]:
    """Three WGMS glaciers, 2001–2010; balance falls 0.4 m w.e. per 100 m of ELA rise."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test_massbalance"))
    from mb_synth import write_wgms_mbdata

    rng = np.random.default_rng(0)
    folder, rows = tmp_path / "mbdata", []
    for wid in (1, 2, 3):
        years = list(range(2001, 2011))
        ela = rng.uniform(2800, 3300, 10)
        b = -0.004 * (ela - 3000) + rng.normal(0, 0.1, 10)  # m w.e.
        write_wgms_mbdata(folder, wid, f"GLACIER {wid}", years, (1000 * b).tolist())
        rows += [{"wgms_id": wid, "year": y, "ela_m": e, "aar": 0.6 - (e - 3000) / 1000}
                 for y, e in zip(years, ela, strict=True)]
    pd.DataFrame(rows).to_csv(tmp_path / "indicators.csv", index=False)
    return tmp_path / "indicators.csv", folder


def test_massbalance_fit_table_fits_80_columns_with_units(tmp_path, capsys,
                                                         monkeypatch) -> None:
    ind, mb = _mass_balance_inputs(tmp_path)
    out = _run(["massbalance", "fit", str(ind), str(mb)], capsys, monkeypatch)
    _check_80(out)
    r = json.loads(_run(["massbalance", "fit", str(ind), str(mb), "--json"], capsys,
                        monkeypatch))
    slope = r["indicators"]["ela_m"]["global"]["slope"]  # m w.e. per metre
    assert slope == pytest.approx(-0.004, rel=0.2)
    assert f"{100 * slope:.3g} m w.e. per 100 m" in out
    assert "m w.e. per unit aar" in out
    rmse = r["indicators"]["ela_m"]["global"]["rmse_m_we"]
    assert f"{rmse:.3g} m w.e." in out


def _print_80(renderables: list[Any]) -> str:
    from rich.console import Console

    con = Console(width=80, record=True, file=io.StringIO())
    for r in renderables:
        con.print(r)
    return con.export_text()


def test_map_train_tables_fit_80_columns_with_units() -> None:
    from glacierkit.cli.map import train_tables

    scores = {"iou": 0.9287, "f1": 0.9630, "area_dev_pct": 7.62, "boundary_mean_m": 161.7,
              "boundary_p95_m": 1613.9}
    base = {"iou": 0.9991, "f1": 0.9995, "area_dev_pct": -0.11, "boundary_mean_m": 13.2,
            "boundary_p95_m": float("nan")}
    report = {"scenes": {"everest_2009_landsat7_east": {
        "model": scores, "baseline": {"metrics": base},
        "calibration": {"ece_before": 0.2671, "ece_after": 0.0031}}}}
    text = _print_80(train_tables(report, arch="glavitu", size="tiny",
                                  strategy="region_encoding"))
    _check_80(text)
    assert "everest_2009_landsat7_east" in text and "glavitu (tiny)" in text
    for cell in ("0.929", "+7.6 %", "-0.1 %", "162 m", "1614 m", "13 m", "0.267 → 0.003"):
        assert cell in text, cell
    assert "—" in text  # the baseline's undefined p95 is shown as missing, not as nan


def _optical(path: Path) -> Path:
    """Green, red, NIR, SWIR1 reflectance (4 bands): snow/ice in the left half."""
    data = np.full((4, 40, 60), 0.2, np.float32)
    data[0, :, :30], data[3, :, :30] = 0.8, 0.05  # bright green, dark SWIR: NDSI ≈ 0.88
    with rasterio.open(path, "w", driver="GTiff", width=60, height=40, count=4, dtype="float32",
                       crs="EPSG:32607", transform=Affine(30, 0, 500000, 0, -30, 6700000)) as ds:
        ds.write(data)
    return path


def test_map_baseline_json_and_evaluate_table(tmp_path, capsys, monkeypatch) -> None:
    src = _optical(tmp_path / "scene.tif")
    r = json.loads(_run(["map", "baseline", str(src), "--bands", "green,red,nir,swir1",
                         "--method", "ndsi", "-o", str(tmp_path / "b"), "--min-area-km2", "0",
                         "--json"], capsys, monkeypatch))
    assert r["method"] == "ndsi" and r["glacier_km2"] == pytest.approx(40 * 30 * 0.0009)
    assert Path(r["paths"]["classes"]).is_file()
    out = _run(["map", "evaluate", r["paths"]["classes"], r["paths"]["classes"]], capsys,
               monkeypatch)
    _check_80(out)
    assert "km²" in out and "px" in out and "0–1" in out


def test_facies_tables_fit_80_columns_with_units(capsys, monkeypatch) -> None:
    from glacierkit.cli.facies import _print_scores, areas_table

    classes = ["snow", "firn", "clean_ice", "debris_covered_ice", "water", "shadow"]
    rows = []
    for gid, total in (("RGI60-11.01450", 82.4171), ("RGI60-11.01238", 3.2)):
        row = {"id": gid, "area_km2": total, "observed_pct": 97.31}
        for i, c in enumerate(classes):
            row[f"{c}_km2"] = total * (i + 1) / 21
            row[f"{c}_pct"] = 100 * (i + 1) / 21
        rows.append(row)
    text = _print_80([areas_table(pd.DataFrame(rows), classes, title="facies areas (onnx)")])
    _check_80(text)
    assert "debris_covered_ice" in text and "82.417 km²" in text and "97.3 % observed" in text
    assert "23.548 km²" in text and "28.6 %" in text  # debris: 5/21 of the glacier

    monkeypatch.setenv("COLUMNS", "80")
    capsys.readouterr()
    _print_scores({"cv_baseline": {"model": "hgb", "scores": {"macro_f1": 0.8123,
                                                              "accuracy": 0.9011}},
                   "clean": {"pruned_share": 0.042, "per_class": {
                       c: {"n": 1500, "flagged": 80, "pruned": 61, "pruned_share": 0.0407}
                       for c in classes}}})
    out = capsys.readouterr().out
    _check_80(out)
    assert "(0–1)" in out and "4.1 %" in out and "4.2 % of labels pruned" in out


@pytest.mark.realdata
def test_velocity_qa_tables_fit_80_columns_with_units(shared_data, capsys, monkeypatch) -> None:
    kask = shared_data / "glaft_kaskawulsh"
    out = _run(["velocity-qa", str(kask / "20180304-20180405_velo-raw_vx.tif"),
                str(kask / "20180304-20180405_velo-raw_vy.tif"),
                "--stable", str(kask / "bedrock_V2.shp"),
                "--gps", str(kask / "gps" / "Kaskawulsh_2018-04-05_to_2018-03-04_GPS.csv"),
                "--units", "m/day"], capsys, monkeypatch)
    _check_80(out)
    assert "GPS stations: map − GPS" in out and "Δ speed m/day" in out and "map vx m/day" in out


RESULT_COMMANDS = ["info", "velocity", "velocity-qa", "demo", "data list", "map train",
                   "map predict", "map evaluate", "map baseline", "facies train",
                   "facies clean", "facies predict", "massbalance fit",
                   "massbalance indicators"]


@pytest.mark.parametrize("command", RESULT_COMMANDS)
def test_every_result_command_has_json(command: str, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    assert "--json" in _help(command.split(), capsys)


def test_massbalance_indicators_json(tmp_path, capsys, monkeypatch) -> None:
    prof = tmp_path / "profile_WGMS-00007.csv"
    prof.write_text(",2025,2075,2125\n2001,-500,100,700\n2002,-900,-400,-100\n")
    r = json.loads(_run(["massbalance", "indicators", str(prof), "-o", str(tmp_path / "i.csv"),
                         "--json"], capsys, monkeypatch))
    assert r == {"out": str(tmp_path / "i.csv"), "glacier_years": 2, "glaciers": 1,
                 "with_aar": 0, "with_ela": 1}
