from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mb_synth import write_wgms_mbdata

from glacierkit.errors import DatasetNotFoundError, InputError
from glacierkit.massbalance import (
    MassBalanceTable,
    detect_units,
    match_indicators,
    normalise_name,
    normalise_rgi,
    read_mass_balance,
    read_profiles,
)


def test_wgms_mbdata__mm_converted_and_stated(tmp_path: Path, caplog):
    p = write_wgms_mbdata(tmp_path, 491, "HINTEREIS F.", [1953, 1954], [-540.0, 76.0],
                          "RGI60-11.00897")
    with caplog.at_level(logging.INFO):
        t = read_mass_balance(p)
    np.testing.assert_allclose(t.data["annual_balance_m_we"], [-0.54, 0.076])
    assert t.data["glacier_id"].tolist() == ["491", "491"]
    assert t.data["rgi_id"].iloc[0] == "RGI60-11.00897"
    assert t.units_notes == ["1 file(s): mm w.e. → m w.e. (÷ 1000); WGMS FoG convention"]
    assert "mm w.e. → m w.e." in caplog.text


def test_wgms_mbdata__small_values_keep_convention_unless_clearly_metres(tmp_path: Path):
    # WGMS 830 style: multi-annual 50 mm spread over 5 years → 10 mm each, still mm.
    p = write_wgms_mbdata(tmp_path / "a", 830, "MALYY", range(1963, 1968), [10.0] * 5)
    assert read_mass_balance(p).data["annual_balance_m_we"].iloc[0] == pytest.approx(0.01)
    # A WGMS-format table already in m w.e. (all |b| ≤ 5 over ≥ 3 years) is detected.
    q = write_wgms_mbdata(tmp_path / "b", 5, "X", [2001, 2002, 2003], [-0.8, -1.2, 0.3])
    t = read_mass_balance(q)
    np.testing.assert_allclose(t.data["annual_balance_m_we"], [-0.8, -1.2, 0.3])
    assert "against the format convention" in t.units_notes[0]
    # Explicit units win.
    assert read_mass_balance(q, units="mm").data["annual_balance_m_we"].iloc[0] == -0.0008


def test_generic_table__mm_detected_m_kept_ambiguous_refused(tmp_path: Path):
    mm = tmp_path / "mm.csv"
    pd.DataFrame({"Glacier": ["A"] * 3, "Year": [2001, 2002, 2003],
                  "Annual_Balance": [-850, -1200, 300]}).to_csv(mm, index=False)
    t = read_mass_balance(mm)
    np.testing.assert_allclose(t.data["annual_balance_m_we"], [-0.85, -1.2, 0.3])
    assert "so mm w.e." in t.units_notes[0]
    m = tmp_path / "m.csv"
    pd.DataFrame({"glacier_id": ["A"] * 3, "year": [2001, 2002, 2003],
                  "ba": [-0.85, -1.2, 0.3]}).to_csv(m, index=False)
    t = read_mass_balance(m)
    np.testing.assert_allclose(t.data["annual_balance_m_we"], [-0.85, -1.2, 0.3])
    assert "so m w.e." in t.units_notes[0]
    amb = tmp_path / "amb.csv"
    pd.DataFrame({"glacier_id": ["A"] * 2, "year": [2001, 2002],
                  "ba": [-12.0, 3.0]}).to_csv(amb, index=False)
    with pytest.raises(InputError, match="units='mm' or units='m'"):
        read_mass_balance(amb)
    assert read_mass_balance(amb, units="mm").data["annual_balance_m_we"].iloc[0] == -0.012


def test_missing_years_reported_not_filled(tmp_path: Path):
    p = write_wgms_mbdata(tmp_path, 1, "A", [2000, 2001, 2002, 2004, 2005],
                          [-100.0, -200.0, float("nan"), -400.0, -500.0])
    t = read_mass_balance(p)
    assert t.data["year"].tolist() == [2000, 2001, 2004, 2005]
    assert t.gaps == {"1": [2002, 2003]}
    assert t.gaps_summary() == "1 glacier(s) with 2 missing year(s) inside their record"


def test_conflicting_duplicates_and_bad_inputs(tmp_path: Path):
    write_wgms_mbdata(tmp_path / "a", 1, "A", [2000, 2001], [-100.0, -200.0])
    write_wgms_mbdata(tmp_path / "b", 1, "A", [2001, 2002], [-300.0, -200.0])
    with pytest.raises(InputError, match="conflicting"):
        read_mass_balance([tmp_path / "a", tmp_path / "b"])
    with pytest.raises(DatasetNotFoundError):
        read_mass_balance(tmp_path / "missing")
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,2\n")
    with pytest.raises(InputError, match="annual balance"):
        read_mass_balance(bad)


def test_detect_units__thresholds():
    assert detect_units(np.array([-3.2, 1.0]))[0] == "m"
    assert detect_units(np.array([-3200.0, 100.0]))[0] == "mm"
    assert detect_units(np.array([-15.0, 8.0]), kind="band")[0] == "m"
    with pytest.raises(InputError):
        detect_units(np.array([-30.0, 8.0]), kind="band")


def test_profiles__read_labels_as_centres_and_convert(tmp_path: Path):
    (tmp_path / "profile_WGMS-00491.csv").write_text(
        ",2425,2475,2476,2525\n1964,-6870.0,-5840.0,,-5140.0\n1965,,-3490.0,-3000.0,150.0\n")
    (tmp_path / "profile_WGMS-00077.csv").write_text(",1670\n")
    pt = read_profiles(tmp_path)
    assert pt.empty == [tmp_path / "profile_WGMS-00077.csv"]
    d = pt.data
    assert set(d["glacier_id"]) == {"491"} and len(d) == 6
    r = d[(d["year"] == 1965) & (d["z_m"] == 2525.0)]
    assert r["balance_m_we"].iloc[0] == pytest.approx(0.15)
    gy = list(pt.glacier_years())
    assert [(g, y) for g, y, _, _ in gy] == [("491", 1964), ("491", 1965)]
    np.testing.assert_allclose(gy[1][2], [2475, 2476, 2525])


# ----------------------------------------------------------------------------- matching


def _mb() -> MassBalanceTable:
    rows = []
    for gid, name, rgi in (("94", "WOLVERINE", "RGI60-01.09162"),
                           ("3334", "LEMON CREEK", "RGI60-01.01104"),
                           ("489", "VERNAGT F.", "RGI60-11.00719")):
        for y, b in ((2017, -1.0), (2018, -2.0)):
            rows.append({"glacier_id": gid, "name": name, "rgi_id": rgi, "year": y,
                         "annual_balance_m_we": b})
    return MassBalanceTable(pd.DataFrame(rows))


def test_normalisation():
    assert normalise_name("LemonCreek") == normalise_name("LEMON CREEK") == "lemoncreek"
    assert normalise_name("South-Cascade") == "southcascade"
    assert normalise_rgi(" rgi50-11.00719_d02") == "RGI50-11.00719"


def test_match__id_rgi_name_and_unknown_reported(caplog):
    ind = pd.DataFrame({"glacier": ["94", "RGI60-11.00719_d01", "LemonCreek", "Nowhere",
                                    "3334"],
                        "year": [2017, 2018, 2017, 2017, 2019], "aar": [0.3, 0.4, 0.5, 0.6, 0.2]})
    links = pd.DataFrame({"wgms_id": [489], "name": ["VERNAGT F."],
                          "rgi50_id": ["RGI50-11.00719"], "rgi60_id": ["RGI60-11.00719"]})
    with caplog.at_level(logging.WARNING):
        m = match_indicators(ind, _mb(), links=links)
    assert "Nowhere" in m.unmatched and "match no glacier" in caplog.text
    assert m.matched_by == {"94": "id", "RGI60-11.00719_d01": "rgi", "LemonCreek": "name",
                            "3334": "id"}
    assert m.no_balance == 1  # 3334 has no 2019 balance
    assert sorted(m.data["glacier_id"]) == ["3334", "489", "94"]
    assert m.data.set_index("glacier_id").loc["489", "annual_balance_m_we"] == -2.0
    rgi5 = pd.DataFrame({"rgi_id": ["RGI50-11.00719"], "year": [2017], "x": [1.0]})
    assert match_indicators(rgi5, _mb(), links=links).data["glacier_id"].tolist() == ["489"]
    with pytest.raises(InputError, match="no indicator row matched"):
        match_indicators(rgi5, _mb())  # RGI 5 id without the link table


def test_match__ambiguous_name_and_missing_columns():
    mb = _mb()
    mb.data.loc[mb.data["glacier_id"] == "94", "name"] = "LEMON-CREEK"
    ind = pd.DataFrame({"name": ["Lemon Creek", "94"], "year": [2017, 2017], "x": [1.0, 2.0]})
    m = match_indicators(ind, mb)
    assert "ambiguous" in m.unmatched["Lemon Creek"]
    with pytest.raises(InputError, match="identifier column"):
        match_indicators(pd.DataFrame({"year": [2017], "x": [1]}), mb)
    with pytest.raises(InputError, match="'year'"):
        match_indicators(pd.DataFrame({"name": ["94"], "x": [1]}), mb)
