"""Fixtures: a synthetic facies map + DEM + outline, and synthetic WGMS tables."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from mb_synth import CRS, OUTLINE, dem_array, facies_array, write_tif, write_wgms_mbdata


@pytest.fixture
def facies_scene(tmp_path: Path) -> dict[str, Path]:
    """Facies map (CLASS_NAMES tag), DEM on the same grid, outline as UTM GPKG."""
    names = ["ice", "snow", "firn", "debris", "superimposed_ice", "shadow", "cloud", "water"]
    fac = write_tif(tmp_path / "facies.tif", facies_array(), nodata=255,
                    tags={"CLASS_NAMES": json.dumps(names)})
    dem = write_tif(tmp_path / "dem.tif", dem_array())
    out = tmp_path / "outline.gpkg"
    gpd.GeoDataFrame({"RGIId": ["RGI60-11.99999"]}, geometry=[OUTLINE], crs=CRS).to_file(out)
    return {"facies": fac, "dem": dem, "outlines": out}


@pytest.fixture
def wgms_folder(tmp_path: Path) -> Path:
    """Three WGMS glaciers, 2001–2010, balance = −2 + 3·AAR (m w.e.) for a known AAR series."""
    folder = tmp_path / "mbdata"
    rng = np.random.default_rng(0)
    for wid, name, rgi in ((1, "ALPHA F.", "RGI60-11.00001"), (2, "BETA GLACIER", "RGI60-11.00002"),
                           (3, "LEMON CREEK", "RGI60-01.00003")):
        years = list(range(2001, 2011))
        aar = np.linspace(0.2, 0.7, 10)[rng.permutation(10)]
        b = (-2.0 + 3.0 * aar) * 1000.0
        write_wgms_mbdata(folder, wid, name, years, b.tolist(), rgi)
        np.save(folder.parent / f"aar_{wid}.npy", aar)
    return folder
