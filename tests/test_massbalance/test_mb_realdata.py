"""Spot checks on the real WGMS and snowline tables (skipped without ../shared/data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from glacierkit.massbalance import (
    Hypsometry,
    ela_from_profile,
    read_mass_balance,
    read_profiles,
)
from glacierkit.massbalance.study import snowline_study

pytestmark = pytest.mark.realdata


def test_hintereisferner_tables(shared_data: Path):
    w = shared_data / "oggm_sample_data" / "wgms"
    mb = read_mass_balance(w / "mbdata" / "mbdata_WGMS-00491.csv")
    d = mb.data.set_index("year")
    assert d.loc[1953, "annual_balance_m_we"] == pytest.approx(-0.540)
    assert d.loc[1953, "rgi_id"] == "RGI60-11.00897"
    pr = read_profiles(w / "mb_profiles" / "profile_WGMS-00491.csv")
    z, b = next((z, b) for g, y, z, b in pr.glacier_years() if y == 1964)
    e = ela_from_profile(z, b)
    # 1964: −10 mm w.e. at 3175 m, +40 mm w.e. at 3225 m → ELA 3185 m.
    assert e.flag == "ok" and e.ela_m == pytest.approx(3185.0)
    h = Hypsometry.from_rgi_csv(shared_data / "oggm_sample_data" / "test-files"
                                / "Hintereisferner_V5_hypso.csv")
    assert h.total_km2 == pytest.approx(8.036) and (h.z_min_m, h.z_max_m) == (2400, 3700)


def test_snowlines_match_five_usgs_glaciers(shared_data: Path):
    mb = read_mass_balance([shared_data / "oggm_sample_data" / "wgms" / "mbdata"
                            / f"mbdata_WGMS-{w:05d}.csv" for w in (94, 90, 3334, 205, 218)])
    rep, _ = snowline_study(shared_data / "aberle_snow_ice_training_points"
                            / "USGS_ELA_comparison_stats.csv", mb)
    sites = {k: v["glacier_id"] for k, v in rep["matching"]["sites"].items()}
    assert sites == {"Wolverine": "94", "Gulkana": "90", "LemonCreek": "3334",
                     "SouthCascade": "205", "Sperry": "218"}
    assert rep["rows_in_table"] == 50 and rep["rows_with_snowlines"] == 32
    assert rep["matched_rows_with_snowlines"] == 22  # WGMS balances end in 2020
    assert rep["snowline_median_m"]["global"]["n"] == 22


def test_demo_step_writes_report_and_png(shared_data: Path, tmp_path: Path):
    import json

    from glacierkit.demo import MASSBALANCE_STEPS, run_demo

    res = run_demo(tmp_path / "demo", steps=list(MASSBALANCE_STEPS))
    assert [p.name for p in res[0].outputs] == ["report.json", "balance_vs_ela_aar.png"]
    rep = json.loads((tmp_path / "demo" / "massbalance" / "report.json").read_text())
    assert rep["glaciers_with_profiles"] == 170
    assert rep["ela"]["glacier_specific"]["cv_loyo_r"] > 0.8
    assert res[0].numbers["hintereis_aar_n"] == 57
