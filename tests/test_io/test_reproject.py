from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from glacierkit.errors import CRSError, GridMismatchError
from glacierkit.io import Grid, check_or_align, open_raster, reproject


def test_mismatched_grids_raise_naming_both(yahtse: Path):
    img = open_raster(yahtse / "LC80630182016200LGN00_B8_yahtse.TIF")
    dem = open_raster(yahtse / "yahtse_srtm_dem.tif")
    with pytest.raises(GridMismatchError) as ei:
        check_or_align({"image": img, "dem": dem})
    msg = str(ei.value)
    assert "image: EPSG:32607, 1698×1087" in msg and "dem: EPSG:32607, 509×326" in msg
    assert "align=" in msg


def test_align_to_named_input(yahtse: Path, caplog):
    img = open_raster(yahtse / "LC80630182016200LGN00_B8_yahtse.TIF")
    dem = open_raster(yahtse / "yahtse_srtm_dem.tif")
    with caplog.at_level("INFO"):
        out = check_or_align({"image": img, "dem": dem}, align="image")
    assert "reprojected" in caplog.text
    assert out["dem"].grid == img.grid
    assert out["image"] is img
    v = out["dem"].data[0]
    finite = v[np.isfinite(v)]
    assert finite.size > 0.5 * v.size
    # Bilinear resampling stays within the source range.
    assert finite.min() >= np.nanmin(dem.data) - 1e-3
    assert finite.max() <= np.nanmax(dem.data) + 1e-3


def test_reproject_to_other_crs_and_back_is_close(tif_factory):
    yy, xx = np.mgrid[0:60, 0:80]
    data = (xx * 2.0 + yy).astype(np.float32)  # linear field: bilinear reproduces it exactly
    p = tif_factory("lin.tif", data, transform=Affine(30, 0, 500000, 0, -30, 6700000))
    src = open_raster(p)
    target = Grid(crs=32607, transform=Affine(30, 0, 500000 + 45, 0, -30, 6700000 - 45),
                  shape=(50, 70))
    out = reproject(src, target)
    # Target pixel (0, 0) is centred 60 m east/south of the source origin = source index 1.5.
    expected = data[:50, :70] + 1.5 * 2 + 1.5 * 1
    np.testing.assert_allclose(out.data[0], expected, atol=1e-3)


def test_nearest_keeps_integer_classes(tif_factory):
    cls = np.zeros((20, 20), np.uint8)
    cls[5:15, 5:15] = 3
    src = open_raster(tif_factory("cls.tif", cls, nodata=255), as_float=False)
    target = Grid(crs=32607, transform=Affine(15, 0, 500000, 0, -15, 6700000), shape=(40, 40))
    out = reproject(src, target, resampling="nearest")
    assert out.data.dtype == np.uint8
    assert set(np.unique(out.data)) == {0, 3}


def test_pixel_grid_cannot_be_warped():
    from glacierkit.io.raster import Raster

    g = Grid.pixel_grid((4, 4), 10)
    r = Raster(data=np.zeros((1, 4, 4), np.float32), grid=g, band_names=("b",), units=("",),
               nodata=None, source_dtype="float32", valid=np.ones((1, 4, 4), bool))
    with pytest.raises(CRSError):
        reproject(r, Grid(crs=32607, transform=Affine(10, 0, 0, 0, -10, 0), shape=(4, 4)))
