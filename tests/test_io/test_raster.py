from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.windows import Window

from glacierkit.errors import (
    CRSError,
    DatasetNotFoundError,
    InputError,
    NodataError,
    RasterReadError,
    WindowError,
)
from glacierkit.io import open_raster, read_grid


def test_yahtse_reference_scene(yahtse: Path):
    r = open_raster(yahtse / "LC80630182016200LGN00_B8_yahtse.TIF")
    assert r.grid.epsg == 32607
    assert (r.grid.width, r.grid.height) == (1698, 1087)
    assert r.grid.res == (15.0, 15.0)
    assert r.source_dtype == "uint16"
    assert r.data.dtype == np.float32 and r.data.shape == (1, 1087, 1698)


def test_windowed_read_matches_full(yahtse: Path):
    path = yahtse / "LC80630182016200LGN00_B8_yahtse.TIF"
    full = open_raster(path)
    w = Window(100, 200, 64, 32)
    part = open_raster(path, window=w)
    np.testing.assert_array_equal(part.data, full.data[:, 200:232, 100:164])
    assert part.grid == full.grid.window_grid(w)
    by_bounds = open_raster(path, bounds=full.grid.window_bounds(w))
    np.testing.assert_array_equal(by_bounds.data, part.data)


def test_windowed_read_reads_only_the_window(yahtse: Path, monkeypatch):
    seen = {}
    orig = rasterio.io.DatasetReader.read

    def spy(self, *a, **kw):
        seen["window"] = kw.get("window")
        return orig(self, *a, **kw)

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", spy)
    open_raster(yahtse / "yahtse_srtm_dem.tif", window=Window(5, 6, 7, 8))
    assert seen["window"] == Window(5, 6, 7, 8)


def test_nodata_to_nan_and_mask(tif_factory):
    data = np.array([[1, 2], [-9999, 4]], dtype=np.int16)
    p = tif_factory("n.tif", data, nodata=-9999)
    r = open_raster(p)
    assert np.isnan(r.data[0, 1, 0]) and r.data[0, 0, 0] == 1.0
    raw = open_raster(p, as_float=False)
    assert raw.data.dtype == np.int16
    np.testing.assert_array_equal(raw.valid[0], [[True, True], [False, True]])


def test_multiband_names_and_band_selection(tif_factory, tmp_path):
    data = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    p = tif_factory("rgb.tif", data)
    with rasterio.open(p, "r+") as ds:
        ds.descriptions = ("red", "green", "blue")
    r = open_raster(p, bands=[3, 1])
    assert r.band_names == ("blue", "red")
    np.testing.assert_array_equal(r.band("red"), data[0].astype(np.float32))
    with pytest.raises(InputError, match="do not exist"):
        open_raster(p, bands=[4])


def test_nan_without_nodata(tif_factory):
    data = np.array([[1.0, np.nan]], dtype=np.float32)
    p = tif_factory("nan.tif", data)
    r = open_raster(p)
    assert not r.valid[0, 0, 1]
    with pytest.raises(NodataError, match="declares no nodata"):
        open_raster(p, nan_nodata="error")


def test_missing_file():
    with pytest.raises(DatasetNotFoundError):
        open_raster("/nonexistent/scene.tif")


def test_truncated_geotiff(yahtse: Path, tmp_path: Path):
    src = (yahtse / "LC80630182016200LGN00_B8_yahtse.TIF").read_bytes()
    bad = tmp_path / "truncated.tif"
    bad.write_bytes(src[: len(src) // 3])
    with pytest.raises(RasterReadError, match="truncated or corrupt"):
        open_raster(bad)


def test_corrupt_file(tmp_path: Path):
    bad = tmp_path / "corrupt.tif"
    bad.write_bytes(b"II*\x00" + b"garbage" * 100)
    with pytest.raises(RasterReadError):
        open_raster(bad)


def test_unknown_crs_needs_explicit_crs(tif_factory, tmp_path):
    p = tif_factory("nocrs.tif", np.ones((4, 4), np.float32), crs=None)
    with pytest.raises(CRSError, match="no CRS"):
        open_raster(p)
    r = open_raster(p, crs=32633)
    assert r.grid.epsg == 32633
    prj = tmp_path / "x.prj"
    prj.write_text(rasterio.crs.CRS.from_epsg(32607).to_wkt())
    assert open_raster(p, crs=prj).grid.epsg == 32607


def test_plain_png_needs_pixel_size(tmp_path: Path, caplog):
    p = tmp_path / "img.png"
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(p)
    with pytest.raises(CRSError, match="pixel_size_m"):
        open_raster(p)
    with caplog.at_level("WARNING"):
        r = open_raster(p, pixel_size_m=10.0)
    assert "not be georeferenced" in caplog.text
    assert not r.grid.is_georeferenced and r.grid.res == (10.0, 10.0)
    assert r.data.shape == (1, 8, 8)


def test_zero_size_window(yahtse: Path):
    with pytest.raises(WindowError, match="zero size"):
        open_raster(yahtse / "yahtse_srtm_dem.tif", window=Window(0, 0, 0, 10))


def test_read_grid_does_not_read_pixels(yahtse: Path):
    g = read_grid(yahtse / "yahtse_srtm_dem.tif")
    assert g.res == (50.0, 50.0) and g.shape == (326, 509)


def test_to_xarray_keeps_georeferencing(tif_factory):
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    r = open_raster(tif_factory("x.tif", data))
    da = r.to_xarray()
    assert da.dims == ("band", "y", "x") and da.shape == (1, 3, 4)
    assert da.rio.crs.to_epsg() == 32607
    assert da.rio.transform() == r.grid.transform
    assert float(da.x[0]) == 500000.0 + 15.0 and float(da.y[0]) == 6700000.0 - 15.0
