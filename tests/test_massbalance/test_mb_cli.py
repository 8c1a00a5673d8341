from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mb_synth import write_wgms_mbdata

from glacierkit.cli.main import main


def _indicators(tmp_path: Path, wgms_folder: Path) -> Path:
    rows = []
    names = {1: "Alpha F.", 2: "RGI60-11.00002", 3: "LemonCreek"}  # name, RGI id, name
    for wid in (1, 2, 3):
        aar = np.load(wgms_folder.parent / f"aar_{wid}.npy")
        for y, a in zip(range(2001, 2011), aar, strict=True):
            rows.append({"glacier": names[wid], "year": y, "aar": a, "date": f"{y}-09-01"})
    rows.append({"glacier": "Unknown Gl.", "year": 2005, "aar": 0.5, "date": "2005-09-01"})
    p = tmp_path / "indicators.csv"
    pd.DataFrame(rows).to_csv(p, index=False)
    return p


def test_cli_fit__json_keys_and_known_relation(tmp_path: Path, wgms_folder: Path, capsys):
    ind = _indicators(tmp_path, wgms_folder)
    assert main(["massbalance", "fit", str(ind), str(wgms_folder), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert list(r["indicators"]) == ["aar"]
    g = r["indicators"]["aar"]["global"]
    for k in ("n", "r", "rmse_m_we", "slope", "slope_ci95", "intercept", "cv_loyo_r",
              "cv_loyo_rmse_m_we", "cv_logo_r", "cv_logo_rmse_m_we"):
        assert k in g
    # Balances are written with 0.1 mm w.e. precision.
    assert g["n"] == 30 and g["slope"] == pytest.approx(3.0, abs=1e-3)
    assert g["intercept"] == pytest.approx(-2.0, abs=1e-3)
    assert g["rmse_m_we"] < 1e-4 and g["cv_logo_rmse_m_we"] < 1e-4
    gs = r["indicators"]["aar"]["glacier_specific"]
    assert gs["n_glaciers"] == 3 and set(gs["glaciers"]) == {"1", "2", "3"}
    assert r["unmatched"] == {"Unknown Gl.": "no glacier with this id or name in the balance "
                                             "tables"}
    assert r["units_note"] == ["3 file(s): mm w.e. → m w.e. (÷ 1000); WGMS FoG convention"]
    assert r["matching"]["n_glaciers"] == 3


def test_cli_fit__table_output_and_errors(tmp_path: Path, wgms_folder: Path, capsys):
    ind = _indicators(tmp_path, wgms_folder)
    assert main(["massbalance", "fit", str(ind), str(wgms_folder), "-i", "aar"]) == 0
    out = capsys.readouterr().out
    assert "aar" in out and "global" in out and "Unknown Gl." in out
    assert main(["massbalance", "fit", str(ind), str(wgms_folder), "-i", "ela_m"]) == 1
    err = capsys.readouterr().err
    assert "ela_m" in err and "Traceback" not in err
    assert main(["massbalance", "fit", str(ind), str(wgms_folder), "--units", "km"]) == 2


def test_cli_fit__too_few_samples_reported(tmp_path: Path, capsys):
    mb = tmp_path / "mb"
    write_wgms_mbdata(mb, 1, "A", [2001, 2002], [-500.0, 200.0])
    ind = tmp_path / "i.csv"
    pd.DataFrame({"wgms_id": [1, 1], "year": [2001, 2002], "aar": [0.2, 0.6]}).to_csv(ind)
    assert main(["massbalance", "fit", str(ind), str(mb), "--json", "-i", "aar"]) == 0
    r = json.loads(capsys.readouterr().out)["indicators"]["aar"]
    assert "too few samples" in r["global"]["error"]


def test_cli_indicators__profiles_to_table(tmp_path: Path, capsys):
    prof = tmp_path / "profile_WGMS-00007.csv"
    prof.write_text(",2025,2075,2125\n2001,-500,100,700\n2002,-900,-400,-100\n")
    out = tmp_path / "ind.csv"
    assert main(["massbalance", "indicators", str(prof), "-o", str(out)]) == 0
    t = pd.read_csv(out)
    assert t["ela_m"].iloc[0] == pytest.approx(2075 - 50 * 100 / 600)
    assert t["ela_flag"].tolist() == ["ok", "above_profile"]
    assert main(["massbalance", "indicators", str(prof), "-o", str(out)]) == 1
    assert "already exists" in capsys.readouterr().err
