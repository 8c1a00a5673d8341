from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.windows import Window

from glacierkit.errors import InputError, NodataError, OutputExistsError
from glacierkit.io import Grid, open_raster, open_writer, write_raster


@pytest.fixture
def grid() -> Grid:
    return Grid(crs=32607, transform=Affine(15, 0, 465060, 0, -15, 6681585), shape=(40, 60))


def _leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_write_cog_metadata(tmp_path: Path, grid: Grid):
    data = np.random.default_rng(0).normal(size=(2, 40, 60)).astype(np.float32)
    data[0, 0, 0] = np.nan
    out = write_raster(tmp_path / "v.tif", data, grid, band_names=["vx", "vy"], units="m/yr",
                       tags={"chip_size_px": 32, "method": "ncc"})
    with rasterio.open(out) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert ds.crs.to_epsg() == 32607 and ds.transform == grid.transform
        assert ds.descriptions == ("vx", "vy") and ds.units == ("m/yr", "m/yr")
        assert np.isnan(ds.nodata)
        assert ds.tags()["chip_size_px"] == "32" and ds.tags()["method"] == "ncc"
    back = open_raster(out)
    np.testing.assert_array_equal(back.data, data)
    assert _leftovers(tmp_path, {"v.tif"}) == []


def test_refuses_to_overwrite(tmp_path: Path, grid: Grid):
    data = np.zeros(grid.shape, np.float32)
    out = write_raster(tmp_path / "a.tif", data, grid)
    before = out.read_bytes()
    with pytest.raises(OutputExistsError, match="overwrite"):
        write_raster(out, data + 1, grid)
    assert out.read_bytes() == before
    write_raster(out, data + 1, grid, overwrite=True)
    assert open_raster(out).data.max() == 1.0
    assert _leftovers(tmp_path, {"a.tif"}) == []


def test_interrupted_write_leaves_nothing(tmp_path: Path, grid: Grid):
    target = tmp_path / "out.tif"
    with pytest.raises(KeyboardInterrupt):
        with open_writer(target, grid) as w:
            w.write(np.ones((20, 60), np.float32), Window(0, 0, 60, 20))
            raise KeyboardInterrupt  # simulated interruption mid-way
    assert list(tmp_path.iterdir()) == []


def test_failure_inside_cog_conversion_leaves_nothing(tmp_path: Path, grid: Grid, monkeypatch):
    def boom(*a, **kw):
        Path(a[1]).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr("rasterio.shutil.copy", boom)
    with pytest.raises(OSError, match="disk full"):
        write_raster(tmp_path / "out.tif", np.ones(grid.shape, np.float32), grid)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_overwrite_keeps_old_file(tmp_path: Path, grid: Grid):
    out = write_raster(tmp_path / "a.tif", np.zeros(grid.shape, np.float32), grid)
    before = out.read_bytes()
    with pytest.raises(RuntimeError):
        with open_writer(out, grid, overwrite=True) as w:
            w.write(np.ones(grid.shape, np.float32))
            raise RuntimeError("fail")
    assert out.read_bytes() == before
    assert _leftovers(tmp_path, {"a.tif"}) == []


def test_uint8_colormap_and_band_tags(tmp_path: Path, grid: Grid):
    cls = np.zeros(grid.shape, np.uint8)
    cls[10:20] = 1
    out = write_raster(tmp_path / "c.tif", cls, grid, nodata=255, band_names=["class"],
                       colormap={0: (0, 0, 0), 1: (0, 128, 255)},
                       band_tags=[{"class_names": {"0": "rock", "1": "ice"}}],
                       overview_resampling="nearest")
    with rasterio.open(out) as ds:
        assert ds.colormap(1)[1] == (0, 128, 255, 255)
        assert '"1": "ice"' in ds.tags(1)["class_names"]
        assert ds.nodata == 255


def test_nan_data_with_numeric_nodata_is_refused(tmp_path: Path, grid: Grid):
    data = np.zeros(grid.shape, np.float32)
    data[0, 0] = np.nan
    with pytest.raises(NodataError):
        write_raster(tmp_path / "x.tif", data, grid, nodata=-9999.0)
    assert list(tmp_path.iterdir()) == []


def test_shape_and_dtype_checks(tmp_path: Path, grid: Grid):
    with pytest.raises(InputError, match="does not match grid"):
        write_raster(tmp_path / "x.tif", np.zeros((3, 3), np.float32), grid)
    with pytest.raises(InputError, match="float data into a uint8"):
        with open_writer(tmp_path / "y.tif", grid, dtype="uint8") as w:
            w.write(np.zeros(grid.shape, np.float32))
    assert list(tmp_path.iterdir()) == []


def test_missing_output_folder(tmp_path: Path, grid: Grid):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_raster(tmp_path / "nope" / "x.tif", np.zeros(grid.shape, np.float32), grid)


def test_compression_level(tmp_path: Path):
    # A smooth field compresses: level 1 is lossless too and may only be larger than level 9.
    g = Grid(crs=32607, transform=Affine(15, 0, 465060, 0, -15, 6681585), shape=(512, 512))
    yy, xx = np.mgrid[0:512, 0:512]
    data = (np.sin(yy / 37.0) * np.cos(xx / 23.0)).astype(np.float32)
    sizes = {}
    for level in (1, 9):
        with open_writer(tmp_path / f"l{level}.tif", g, level=level) as w:
            w.write(data)
        with rasterio.open(tmp_path / f"l{level}.tif") as ds:
            assert ds.tags(ns="IMAGE_STRUCTURE")["COMPRESSION"] == "DEFLATE"
            np.testing.assert_array_equal(ds.read(1), data)
        sizes[level] = (tmp_path / f"l{level}.tif").stat().st_size
    assert sizes[1] >= sizes[9]
    with pytest.raises(InputError, match="compression level"):
        open_writer(tmp_path / "bad.tif", g, level=0)
    with pytest.raises(InputError, match="does not apply"):
        open_writer(tmp_path / "bad.tif", g, compress="lzw", level=3)
