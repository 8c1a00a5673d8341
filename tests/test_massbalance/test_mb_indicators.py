from __future__ import annotations

import json
import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from affine import Affine
from mb_synth import CRS, OUTLINE, dem_array, facies_array, write_tif

from glacierkit.errors import GridMismatchError, InputError
from glacierkit.massbalance import (
    FACIES_CLASSES,
    Hypsometry,
    ProfileTable,
    aar_from_profile,
    ela_from_profile,
    facies_class_names,
    facies_indicators,
    profile_indicators,
)

# ----------------------------------------------------------------------------- profiles


def test_ela__zero_crossing_of_linear_profile():
    z = np.arange(2025.0, 3000.0, 50.0)  # band centres
    b = 0.007 * (z - 2634.0)  # gradient 0.7 m w.e. / 100 m, ELA 2634 m
    e = ela_from_profile(z, b)
    assert e.flag == "ok" and e.ela_m == pytest.approx(2634.0, abs=1e-9)
    # Order and NaN bands do not matter.
    b2 = b.copy()
    b2[3] = np.nan
    assert ela_from_profile(z[::-1], b2[::-1]).ela_m == pytest.approx(2634.0)


def test_ela__one_signed_profiles_are_flagged():
    z = np.array([2000.0, 2100.0, 2200.0])
    e = ela_from_profile(z, [-3.0, -2.0, -0.5])
    assert np.isnan(e.ela_m) and e.flag == "above_profile"
    assert ela_from_profile(z, [-3.0, -2.0, -0.5], outside="clip").ela_m == 2200.0
    e = ela_from_profile(z, [0.1, 0.5, 1.0])
    assert np.isnan(e.ela_m) and e.flag == "below_profile"
    assert ela_from_profile(z, [0.1, 0.5, 1.0], outside="clip").ela_m == 2000.0
    assert ela_from_profile([2000.0], [1.0]).flag == "too_few_bands"


def test_ela__multiple_crossings_best_separation():
    z = np.array([1000.0, 1100.0, 1200.0, 1300.0, 1400.0, 1500.0, 1600.0])
    b = np.array([-3.0, 0.2, -0.2, -0.1, 0.5, 0.8, 1.0])  # blip at 1100; real ELA 1300–1400
    e = ela_from_profile(z, b)
    assert e.flag == "multiple_crossings"
    assert e.ela_m == pytest.approx(1300.0 + 100.0 * 0.1 / 0.6)


def test_aar__synthetic_glacier_exact():
    # Uniform glacier 2000–3000 m; linear profile with ELA 2634 m → AAR = 366 / 1000.
    h = Hypsometry.uniform(2000.0, 3000.0, 5.0, band_m=50.0)
    z = np.arange(2025.0, 3000.0, 50.0)
    b = 0.006 * (z - 2634.0)
    aar, cov = aar_from_profile(z, b, h)
    assert aar == pytest.approx(0.366, abs=1e-6)
    assert aar == pytest.approx(h.aar_from_ela(ela_from_profile(z, b).ela_m), abs=1e-12)
    assert cov == pytest.approx(950.0 / 1000.0)  # centres 2025…2975 cover 95 % of the range


def test_aar__non_monotonic_profile_counts_every_positive_part():
    h = Hypsometry.uniform(0.0, 400.0, 4.0, band_m=100.0)
    z = np.array([50.0, 150.0, 250.0, 350.0])
    b = np.array([1.0, -1.0, -1.0, 1.0])  # positive at both ends
    aar, _ = aar_from_profile(z, b, h)
    # Positive: [0, 100] (constant 1 below 50, crossing at 100) and [300, 400].
    assert aar == pytest.approx(0.5)


def test_profile_indicators__table():
    z = np.arange(2025.0, 3000.0, 50.0)
    rows = []
    for year, ela in ((2001, 2500.0), (2002, 2800.0)):
        rows += [{"glacier_id": "7", "year": year, "z_m": zz, "balance_m_we": 0.005 * (zz - ela)}
                 for zz in z]
    rows += [{"glacier_id": "8", "year": 2001, "z_m": zz, "balance_m_we": -1.0} for zz in z]
    pt = ProfileTable(pd.DataFrame(rows))
    h = Hypsometry.uniform(2000.0, 3000.0, 2.0)
    t = profile_indicators(pt, {"7": h})
    r = t.set_index(["glacier_id", "year"])
    assert r.loc[("7", 2001), "ela_m"] == pytest.approx(2500.0)
    assert r.loc[("7", 2002), "aar"] == pytest.approx(0.2)
    assert r.loc[("8", 2001), "ela_flag"] == "above_profile"
    assert np.isnan(r.loc[("8", 2001), "aar"])  # no hypsometry for glacier 8


# ----------------------------------------------------------------------------- facies


def test_facies_indicators__known_aar_and_snowline(facies_scene):
    t = facies_indicators(facies_scene["facies"], facies_scene["dem"], facies_scene["outlines"],
                          date="2019-09-12")
    assert len(t) == 1
    r = t.iloc[0]
    assert r["glacier_id"] == "RGI60-11.99999"
    # 1080 glacier px of 100 m²; 40 shadow px and 5 nodata px are not observed.
    assert r["area_km2"] == pytest.approx(0.108)
    assert r["observed_share"] == pytest.approx(1035 / 1080)
    assert r["aar"] == pytest.approx(300 / 1035)  # snow rows 2..11 × 30 columns
    # Boundary between rows 11 (2890 m) and 12 (2880 m), both sides → 2885 m.
    assert r["snowline_altitude_m"] == pytest.approx(2885.0)
    assert r["snowline_n_px"] == 60 and r["snowline_iqr_m"] == pytest.approx(10.0)
    assert r["flag"] == "ok" and r["year"] == 2019 and r["date"] == "2019-09-12"


def test_facies_indicators__superimposed_ice_as_accumulation(facies_scene, tmp_path: Path):
    f = facies_array()
    f[12:14][f[12:14] == 0] = 4  # two rows of superimposed ice below the snow
    p = write_tif(tmp_path / "f2.tif", f, nodata=255)  # no tag: default vocabulary
    t = facies_indicators(p, facies_scene["dem"], facies_scene["outlines"],
                          accumulation=("snow", "firn", "superimposed_ice"))
    assert t.iloc[0]["aar"] == pytest.approx(360 / 1035)
    assert t.iloc[0]["snowline_altitude_m"] == pytest.approx(2865.0)


def test_facies_indicators__outlines_in_another_crs(facies_scene, tmp_path: Path, caplog):
    out = tmp_path / "outline_ll.gpkg"
    gpd.GeoDataFrame({"name": ["G"]}, geometry=[OUTLINE], crs=CRS).to_crs(4326).to_file(out)
    with caplog.at_level(logging.INFO):
        t = facies_indicators(facies_scene["facies"], facies_scene["dem"], out, id_field="name")
    assert "reprojecting" in caplog.text
    assert t.iloc[0]["glacier_id"] == "G" and t.iloc[0]["aar"] == pytest.approx(300 / 1035)


def test_facies_indicators__grid_mismatch(facies_scene, tmp_path: Path):
    shifted = write_tif(tmp_path / "dem_shifted.tif", dem_array(),
                        transform=Affine(10.0, 0, 500005.0, 0, -10.0, 5200000.0))
    with pytest.raises(GridMismatchError, match="align"):
        facies_indicators(facies_scene["facies"], shifted, facies_scene["outlines"])


def test_facies_indicators__unknown_class_and_flags(facies_scene, tmp_path: Path):
    with pytest.raises(InputError, match="not in the facies raster"):
        facies_indicators(facies_scene["facies"], facies_scene["dem"],
                          facies_scene["outlines"], accumulation=("neve",))
    all_ice = write_tif(tmp_path / "ice.tif", np.zeros((40, 40), np.uint8), nodata=255)
    t = facies_indicators(all_ice, facies_scene["dem"], facies_scene["outlines"])
    assert t.iloc[0]["aar"] == 0 and t.iloc[0]["flag"] == "no_accumulation"
    assert np.isnan(t.iloc[0]["snowline_altitude_m"])
    with pytest.raises(InputError, match="id_field"):
        facies_indicators(facies_scene["facies"], facies_scene["dem"],
                          facies_scene["outlines"], id_field="nope")


def test_facies_class_names__sources():
    assert facies_class_names({}) == FACIES_CLASSES
    assert facies_class_names({}, json.dumps(["Snow", "Ice"])) == ("snow", "ice")
    assert facies_class_names({"CLASS_NAMES": '["a", "b"]'}) == ("a", "b")
    with pytest.raises(InputError, match="JSON"):
        facies_class_names({"CLASS_NAMES": "snow,ice"})
