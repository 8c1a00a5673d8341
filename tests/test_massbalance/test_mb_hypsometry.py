from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from affine import Affine
from mb_synth import CRS, OUTLINE, dem_array, write_tif
from shapely.geometry import box

from glacierkit.errors import InputError
from glacierkit.io import Grid
from glacierkit.massbalance import (
    Hypsometry,
    hypsometry_from_dem,
    hypsometry_from_elevations,
    pixel_areas_m2,
    read_rgi_hypsometry,
)


def test_uniform_glacier__aar_is_linear_in_ela():
    # Constant width on a constant slope from 2000 to 3000 m: area above z ∝ (3000 − z).
    h = Hypsometry.uniform(2000.0, 3000.0, 4.0, band_m=50.0)
    assert h.total_km2 == pytest.approx(4.0)
    for ela in (2000.0, 2013.7, 2630.0, 2999.0):
        assert h.aar_from_ela(ela) == pytest.approx((3000.0 - ela) / 1000.0, abs=1e-9)
    assert h.aar_from_ela(1500.0) == pytest.approx(1.0)
    assert h.aar_from_ela(3500.0) == 0.0
    assert np.isnan(h.aar_from_ela(float("nan")))


def test_uniform__short_last_band():
    h = Hypsometry.uniform(100.0, 275.0, 1.75, band_m=50.0)
    np.testing.assert_allclose(h.upper_m, [150, 200, 250, 275])
    np.testing.assert_allclose(h.area_km2, [0.5, 0.5, 0.5, 0.25])


def test_hypsometry__validation():
    with pytest.raises(InputError, match="upper_m > lower_m"):
        Hypsometry([0, 50], [50, 40], [1, 1])
    with pytest.raises(InputError, match="sorted"):
        Hypsometry([50, 0], [100, 50], [1, 1])
    with pytest.raises(InputError, match="positive total"):
        Hypsometry([0], [50], [0.0])


def test_rgi_csv__bands_are_centres_and_per_mille(tmp_path: Path):
    p = tmp_path / "h_hypso.csv"
    p.write_text("RGIId   ,GLIMSId ,      Area,25,75,125,175\n"
                 "RGI50-11.00001,G1,2.0,0,250,750,0\n"
                 "RGI50-11.00002,G2,1.0,100,300,600,0\n")
    t = read_rgi_hypsometry(p)
    h = t["RGI50-11.00001"]
    np.testing.assert_allclose(h.lower_m, [50, 100])
    np.testing.assert_allclose(h.upper_m, [100, 150])
    np.testing.assert_allclose(h.area_km2, [0.5, 1.5])
    assert Hypsometry.from_rgi_csv(p, "RGI50-11.00002_d01").total_km2 == pytest.approx(1.0)
    with pytest.raises(InputError, match=r"[Pp]ass rgi_id"):
        Hypsometry.from_rgi_csv(p)
    with pytest.raises(InputError, match="not in"):
        Hypsometry.from_rgi_csv(p, "RGI50-11.99999")


def test_pixel_areas__projected_and_geographic():
    g = Grid(crs=CRS, transform=Affine(10, 0, 0, 0, -10, 0), shape=(3, 4))
    np.testing.assert_allclose(pixel_areas_m2(g), 100.0)
    # 1° × 1° cells from the equator northwards: spherical approximation (authalic radius).
    geo = Grid(crs=4326, transform=Affine(1, 0, 10, 0, -1, 3), shape=(3, 2))
    a = pixel_areas_m2(geo)[:, 0]
    r = 6371007.2
    lat = np.radians([3, 2, 1, 0])
    sph = r * r * np.radians(1) * (np.sin(lat[:-1]) - np.sin(lat[1:]))
    np.testing.assert_allclose(a, sph, rtol=5e-3)
    assert a[0] < a[1] < a[2]  # smaller towards the pole


def test_hypsometry_from_elevations__bins():
    h = hypsometry_from_elevations(np.array([2010, 2040, 2060, np.nan, 2160.0]), 1e6,
                                   band_m=50)
    np.testing.assert_allclose(h.lower_m, [2000, 2050, 2150])
    np.testing.assert_allclose(h.area_km2, [2, 1, 1])


def test_hypsometry_from_dem__synthetic_ramp(tmp_path: Path, caplog):
    dem = write_tif(tmp_path / "dem.tif", dem_array())
    out = tmp_path / "o.gpkg"
    gpd.GeoDataFrame({"RGIId": ["RGI50-11.00007_d01", "RGI50-11.00007_d02"]},
                     geometry=[box(500050, 5199800, 500350, 5199980),
                               box(500050, 5199620, 500350, 5199800)],
                     crs=CRS).to_crs(4326).to_file(out)
    with caplog.at_level(logging.INFO):
        h = hypsometry_from_dem(dem, out)
    assert "merging 2 glacier divide" in caplog.text and "reprojecting" in caplog.text
    hh = h["RGI50-11.00007"]
    assert hh.total_km2 == pytest.approx(1080 * 100 / 1e6, rel=1e-9)
    # Rows 2..37 hold elevations 2980 … 2630 (one row per 10 m): 5 rows per 50 m band.
    assert hh.z_min_m == 2600 and hh.z_max_m == 3000
    np.testing.assert_allclose(hh.area_km2 * 1e6 / 100 / 30, [4, 5, 5, 5, 5, 5, 5, 2][::-1])
    assert OUTLINE.area == pytest.approx(1080 * 100)
