from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from PIL import Image
from shapely.geometry import box

from glacierkit.errors import OutputExistsError
from glacierkit.io import open_raster
from glacierkit.viz import quicklook, stretch


def test_stretch_range_and_nan():
    a = np.array([0.0, 1.0, 2.0, np.nan, 100.0])
    s = stretch(a, percentiles=(0, 100))
    assert s[0] == 0.0 and s[-1] == 1.0 and np.isnan(s[3])
    assert np.all(stretch(np.ones(4)) == 0.5)
    assert np.isnan(stretch(np.full(3, np.nan))).all()


def test_quicklook_with_outline(tif_factory, tmp_path: Path):
    data = np.random.default_rng(1).random((50, 80)).astype(np.float32)
    r = open_raster(tif_factory("img.tif", data))
    left, bottom, _, _ = r.grid.bounds
    poly = gpd.GeoDataFrame(geometry=[box(left + 300, bottom + 300, left + 900, bottom + 900)],
                            crs=32607)
    out = quicklook(r, tmp_path / "q.png", outlines=[(poly, "red", "test")], title="t")
    with Image.open(out) as im:
        img = np.asarray(im.convert("RGB"))
    assert img.shape[0] > 100 and img.shape[1] > 100
    # The red outline is drawn somewhere in the figure.
    red = (img[..., 0] > 200) & (img[..., 1] < 60) & (img[..., 2] < 60)
    assert red.sum() > 20
    with pytest.raises(OutputExistsError):
        quicklook(r, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.tif", "q.png"]
