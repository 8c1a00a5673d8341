"""Reading rasters: GeoTIFF (any dtype, 1..N bands) and plain images, whole or by window.

:func:`open_raster` returns a :class:`Raster`: the pixel array ``(bands, rows, cols)``, its
:class:`~glacierkit.io.grid.Grid`, band names, units and the nodata policy applied:

* ``as_float=True`` (default): data are float32 (float64 stays float64) and every nodata pixel
  is NaN. This is what the processing code works with.
* ``as_float=False``: data keep their dtype; :attr:`Raster.valid` is the boolean valid mask.

Plain PNG/JPEG/TIFF files without georeferencing open on a pixel grid only when the caller
passes ``pixel_size_m`` (the ground size of one pixel); products derived from them are not
georeferenced, and a log message says so. Files with a transform but no CRS can be given one
explicitly with ``crs=`` (an EPSG code, WKT, or the path of a ``.prj`` file).

Windowed reads (``window=`` or ``bounds=``) read only that window from disk.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from glacierkit.errors import (
    CRSError,
    DatasetNotFoundError,
    InputError,
    NodataError,
    RasterReadError,
)
from glacierkit.io.grid import Bounds, Grid, check_window

log = logging.getLogger(__name__)

_PLAIN_IMAGE_DRIVERS = {"PNG", "JPEG", "GIF", "BMP", "WEBP"}


@dataclass
class Raster:
    """A raster read into memory with its georeferencing.

    Attributes:
        data: Pixel values, shape ``(bands, rows, cols)``. Float with NaN for nodata when read
            with ``as_float=True``; the file's dtype otherwise.
        grid: Grid of ``data`` (the window's grid for a windowed read).
        band_names: One name per band (file descriptions, else ``"band_1"``, ...).
        units: One unit string per band (``""`` when the file gives none).
        nodata: The file's nodata value (``None`` when it declares none).
        source_dtype: dtype of the file's pixels.
        valid: Boolean mask ``(bands, rows, cols)``, True where the pixel holds data.
        path: Source file.
        tags: Dataset tags of the file.
    """

    data: np.ndarray
    grid: Grid
    band_names: tuple[str, ...]
    units: tuple[str, ...]
    nodata: float | int | None
    source_dtype: str
    valid: np.ndarray
    path: Path | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def count(self) -> int:
        """Number of bands."""
        return int(self.data.shape[0])

    def band(self, key: int | str) -> np.ndarray:
        """One band ``(rows, cols)`` by 0-based index or by name."""
        if isinstance(key, str):
            if key not in self.band_names:
                raise InputError(f"no band named {key!r}; bands are {list(self.band_names)}.")
            key = self.band_names.index(key)
        return self.data[key]

    def to_xarray(self):
        """An ``xarray.DataArray`` ``(band, y, x)`` with pixel-centre coordinates and the CRS.

        The CRS and transform are attached with rioxarray (``da.rio.crs``,
        ``da.rio.transform()``), so the array can be written or reprojected with it.
        """
        import rioxarray  # noqa: F401 - registers the .rio accessor
        import xarray as xr

        rows = np.arange(self.grid.height)
        cols = np.arange(self.grid.width)
        xs, _ = self.grid.xy(np.zeros_like(cols), cols)
        _, ys = self.grid.xy(rows, np.zeros_like(rows))
        da = xr.DataArray(self.data, dims=("band", "y", "x"),
                          coords={"band": list(self.band_names), "y": ys, "x": xs},
                          attrs={"units": list(self.units)})
        if self.grid.crs is not None:
            da = da.rio.write_crs(self.grid.crs).rio.write_transform(self.grid.transform)
        return da


def _resolve_crs(crs: CRS | str | int | os.PathLike[str]) -> CRS:
    if isinstance(crs, CRS):
        return crs
    if isinstance(crs, str | os.PathLike) and str(crs).lower().endswith(".prj"):
        p = Path(crs)
        if not p.exists():
            raise DatasetNotFoundError(f"crs file {p} does not exist.")
        crs = p.read_text()
    try:
        return CRS.from_epsg(crs) if isinstance(crs, int) else CRS.from_user_input(crs)
    except Exception as e:
        raise CRSError(f"crs={str(crs)[:80]!r} is not a CRS that PROJ understands: {e}") from e


def _open_dataset(path: Path) -> Any:
    if not path.exists():
        raise DatasetNotFoundError(f"raster {path} does not exist.")
    if path.is_dir():
        raise RasterReadError(f"{path} is a folder, not a raster file.")
    try:
        return rasterio.open(path)
    except RasterioIOError as e:
        raise RasterReadError(
            f"cannot read {path} as a raster ({e}); the file may be truncated, corrupt or in an "
            f"unsupported format."
        ) from e


def _dataset_grid(ds: Any, path: Path, crs: CRS | None,
                  pixel_size_m: float | None) -> Grid:
    has_transform = not ds.transform.is_identity
    if ds.crs is not None and crs is not None and ds.crs != crs:
        raise CRSError(f"{path} already has CRS {ds.crs.to_string()[:60]}; crs= may only be "
                       f"given for files without one (use glacierkit.io.reproject to warp).")
    if ds.crs is not None:
        return Grid.from_dataset(ds)
    if has_transform:
        if crs is None:
            raise CRSError(
                f"{path} has a geotransform but no CRS (unknown CRS); glacierkit never guesses "
                f"a CRS.",
                hint="Pass crs= with the correct CRS (EPSG code, WKT, or a .prj file such as a "
                     "companion shapefile's).",
                cli_hint="Assign the correct CRS to the file (e.g. gdal_edit.py -a_srs "
                         "EPSG:32607 FILE) and run again.",
            )
        return Grid(crs=crs, transform=ds.transform, shape=(ds.height, ds.width))
    # No georeferencing at all: a plain image.
    if pixel_size_m is None:
        raise CRSError(
            f"{path} ({ds.driver}) is not georeferenced.",
            hint="Pass pixel_size_m= (ground size of one pixel in metres) to open it on a pixel "
                 "grid; outputs will then not be georeferenced.",
            cli_hint="Georeference the file (e.g. gdal_translate -a_srs EPSG:32607 -a_ullr "
                     "...), or, with glacierkit velocity, pass --pixel-size (ground size of one "
                     "pixel in metres) to track on a pixel grid; outputs will then not be "
                     "georeferenced.",
        )
    log.warning("%s is not georeferenced: using a pixel grid of %g m; outputs derived from it "
                "will not be georeferenced.", path, pixel_size_m)
    return Grid.pixel_grid((ds.height, ds.width), pixel_size_m)


def _window_from(grid: Grid, window: Window | None, bounds: Bounds | None) -> Window:
    if window is not None and bounds is not None:
        raise InputError("give either window= or bounds=, not both.")
    if bounds is not None:
        window = grid.bounds_window(bounds)
        # Clip to the grid: a bounds request may extend past the edge.
        c0, r0 = max(0, window.col_off), max(0, window.row_off)
        c1 = min(grid.width, window.col_off + window.width)
        r1 = min(grid.height, window.row_off + window.height)
        window = Window(c0, r0, c1 - c0, r1 - r0)
    if window is None:
        return Window(0, 0, grid.width, grid.height)
    check_window(window, grid.shape)
    return window


class RasterReader:
    """An open raster for repeated windowed reads (use as a context manager).

    Opening a file costs far more than reading a small window, so code that reads many
    windows (the tiling runner) keeps one reader open. A rasterio dataset must not be shared
    between threads: open one reader per thread.

    Args:
        path, pixel_size_m, crs, nan_nodata: As for :func:`open_raster`.

    Attributes:
        path: The file.
        grid: Its full :class:`~glacierkit.io.grid.Grid`.
        count: Number of bands.
    """

    def __init__(self, path: str | os.PathLike[str], *, pixel_size_m: float | None = None,
                 crs: CRS | str | int | os.PathLike[str] | None = None,
                 nan_nodata: Literal["accept", "error"] = "accept") -> None:
        self.path = Path(path)
        assigned = _resolve_crs(crs) if crs is not None else None
        self._nan_nodata = nan_nodata
        self._ds = _open_dataset(self.path)
        try:
            self.grid = _dataset_grid(self._ds, self.path, assigned, pixel_size_m)
        except BaseException:
            self._ds.close()
            raise
        self.count = int(self._ds.count)

    def __enter__(self) -> RasterReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file."""
        self._ds.close()

    def _bands(self, bands: Sequence[int] | None) -> list[int]:
        idx = list(bands) if bands is not None else list(range(1, self.count + 1))
        bad = [b for b in idx if not 1 <= b <= self.count]
        if bad:
            raise InputError(f"bands {bad} do not exist in {self.path} ({self.count} band(s); "
                             f"1-based).")
        return idx

    def read_arrays(self, window: Window | None = None, *, bands: Sequence[int] | None = None,
                    as_float: bool = True, out: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
        """``(data, valid)`` of a window, both ``(bands, rows, cols)`` (see :func:`open_raster`).

        ``out``: an array of the window's ``(bands, rows, cols)`` shape and the file's dtype
        to read into (reused by callers that read many windows: reading into fresh memory
        page-faults); ``data`` is then ``out`` (or a float copy of it for integer files).

        Raises:
            WindowError: the window is empty or outside the raster.
            RasterReadError: the pixels cannot be read (truncated or corrupt file).
        """
        ds = self._ds
        win = _window_from(self.grid, window, None)
        idx = self._bands(bands)
        try:
            arr = ds.read(idx, window=win, out=out)
            msk = None
            if ds.nodata is None and ds.driver not in _PLAIN_IMAGE_DRIVERS:
                # Internal/external masks (e.g. GDAL .msk, alpha band) still count as nodata.
                flags = ds.mask_flag_enums[idx[0] - 1]
                if any(f.name in ("per_dataset", "alpha") for f in flags):
                    msk = ds.read_masks(idx, window=win) > 0
        except RasterioIOError as e:
            raise RasterReadError(f"cannot read pixels of {self.path} ({e}); the file may be "
                                  f"truncated or corrupt.") from e
        valid = _valid_mask(arr, ds.nodata, msk, self.path, self._nan_nodata)
        if not as_float:
            return arr, valid
        data = arr.astype(np.float64 if arr.dtype == np.float64 else np.float32, copy=False)
        if not valid.all():
            data = data.copy() if (data is arr and out is None) else data
            data[~valid] = np.nan
        return data, valid

    def read(self, window: Window | None = None, *, bands: Sequence[int] | None = None,
             as_float: bool = True) -> Raster:
        """A window (default: everything) as a :class:`Raster` with its sub-grid."""
        win = _window_from(self.grid, window, None)
        idx = self._bands(bands)
        data, valid = self.read_arrays(win, bands=idx, as_float=as_float)
        ds = self._ds
        full = (win.width, win.height) == (self.grid.width, self.grid.height)
        return Raster(data=data, grid=self.grid if full else self.grid.window_grid(win),
                      band_names=tuple(ds.descriptions[b - 1] or f"band_{b}" for b in idx),
                      units=tuple(ds.units[b - 1] or "" for b in idx), nodata=ds.nodata,
                      source_dtype=str(ds.dtypes[idx[0] - 1]), valid=valid, path=self.path,
                      tags=ds.tags())


def open_raster(path: str | os.PathLike[str], *, window: Window | None = None,
                bounds: Bounds | None = None, bands: Sequence[int] | None = None,
                as_float: bool = True, pixel_size_m: float | None = None,
                crs: CRS | str | int | os.PathLike[str] | None = None,
                nan_nodata: Literal["accept", "error"] = "accept") -> Raster:
    """Read a raster (or a window of it) with its grid and nodata handled.

    Args:
        path: GeoTIFF (any dtype, 1..N bands) or a plain PNG/JPEG/TIFF.
        window: Pixel window to read (integer offsets/sizes inside the raster). Only that
            window is read from disk.
        bounds: Map bounds ``(left, bottom, right, top)`` to read instead of ``window``;
            snapped outwards to whole pixels and clipped to the raster.
        bands: 1-based band indexes to read (default: all).
        as_float: Return float data with NaN for nodata (default) or the file's dtype.
        pixel_size_m: Ground size of one pixel (m) for a non-georeferenced image. Required to
            open such an image; ignored for georeferenced files.
        crs: CRS to assign to a file that has a geotransform but no CRS. Never reprojects.
        nan_nodata: For float files that declare no nodata but contain NaN: ``"accept"``
            treats NaN as nodata (logged); ``"error"`` raises :class:`NodataError`.

    Returns:
        A :class:`Raster` with ``data`` of shape ``(bands, rows, cols)``.

    Raises:
        DatasetNotFoundError: the file does not exist.
        RasterReadError: the file is corrupt, truncated or not a raster.
        CRSError: the file has no CRS (and none was given), or a plain image was opened
            without ``pixel_size_m``.
        WindowError: the window is empty or outside the raster.
        NodataError: NaNs without declared nodata and ``nan_nodata="error"``.
    """
    with RasterReader(path, pixel_size_m=pixel_size_m, crs=crs, nan_nodata=nan_nodata) as r:
        return r.read(_window_from(r.grid, window, bounds), bands=bands, as_float=as_float)


def _valid_mask(arr: np.ndarray, nodata: float | int | None, msk: np.ndarray | None,
                path: Path, nan_nodata: str) -> np.ndarray:
    is_float = np.issubdtype(arr.dtype, np.floating)
    nans = np.isnan(arr) if is_float else None
    if nodata is not None and not (is_float and np.isnan(nodata)):
        valid = arr != nodata
        if msk is not None:
            valid &= msk
    elif msk is not None:
        valid = msk.copy()
    else:  # NaN nodata (or none): the NaN test below is the whole test
        valid = None
    if nans is not None:
        if nodata is None and nans.any():
            if nan_nodata == "error":
                raise NodataError(
                    f"{path} contains {int(nans.sum())} NaN pixel(s) but declares no nodata. "
                    f"Use nan_nodata='accept' to treat NaN as nodata, or set it in the file "
                    f"(gdal_edit.py -a_nodata nan {path.name})."
                )
            log.info("%s: no nodata declared; %d NaN pixel(s) treated as nodata.", path,
                     int(nans.sum()))
        if valid is None:
            return np.logical_not(nans, out=nans)
        valid &= ~nans
    return valid if valid is not None else np.ones(arr.shape, dtype=bool)


def read_grid(path: str | os.PathLike[str], *, pixel_size_m: float | None = None,
              crs: CRS | str | int | os.PathLike[str] | None = None) -> Grid:
    """Grid of a raster file without reading its pixels."""
    p = Path(path)
    assigned = _resolve_crs(crs) if crs is not None else None
    with _open_dataset(p) as ds:
        return _dataset_grid(ds, p, assigned, pixel_size_m)
