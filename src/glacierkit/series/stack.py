"""Image time series on one grid: which files, when, which pass, and windowed reads.

:func:`open_series` turns a folder, a glob pattern, a list of files or a CSV table into a
:class:`SeriesStack`: the files sorted by acquisition time, their common grid, the value scale
(``"power"``, ``"amplitude"`` or ``"db"``, always stated by the caller), the orbit pass of each
date and the nodata value. Opening checks everything that can be checked cheaply (dates, grids,
passes, a decimated sample of every file) and reads no full raster; :meth:`SeriesStack.read`
then reads one window of every date at a time, so that a large stack is processed tile by tile.

Values stay in the files' own units when read; :func:`to_db` converts linear power or
amplitude to dB the way :mod:`glacierkit.dl.sources` does for SAR channels
(``10·log10(max(p, SAR_FLOOR))``).

Torch-free.
"""

from __future__ import annotations

import csv
import datetime as _dt
import glob as _glob
import logging
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from glacierkit.dl.sources import SAR_FLOOR
from glacierkit.errors import DatasetNotFoundError, InputError, RasterReadError
from glacierkit.io.grid import Grid, check_same_grid, check_window
from glacierkit.io.raster import RasterReader, read_grid
from glacierkit.series.dates import (
    Direction,
    normalize_pass,
    parse_acquisition_details,
    parse_date_text,
    pass_direction,
    to_naive_utc,
)

__all__ = [
    "SCALES",
    "Scale",
    "SeriesFile",
    "SeriesStack",
    "guess_scale_hint",
    "open_series",
    "to_db",
]

log = logging.getLogger(__name__)

Scale = Literal["power", "amplitude", "db"]
SCALES: tuple[str, ...] = ("power", "amplitude", "db")
"""Value scales: linear power (γ⁰/σ⁰), linear amplitude (√power), or dB (10·log10 power)."""

RASTER_SUFFIXES = (".tif", ".tiff")
"""File suffixes taken from a folder (case-insensitive)."""

SAMPLE_SIZE = 256
"""Largest side (px) of the decimated sample read from every file by :func:`open_series`."""

_NEG_FRACTION = 0.05  # more negative sampled values than this: not linear power/amplitude
_LIST = 8  # files named in an error message at most


# ---------------------------------------------------------------------------- values
def to_db(a: np.ndarray, scale: str) -> np.ndarray:
    """Backscatter in dB, float32, same shape as ``a``; NaN stays NaN.

    * ``"power"``: ``10·log10(max(a, SAR_FLOOR))`` (``SAR_FLOOR`` = 1e-6, i.e. −60 dB, as
      :mod:`glacierkit.dl.sources`), so zero or negative power stays finite.
    * ``"amplitude"``: ``20·log10(max(a, √SAR_FLOOR))`` (the same floor in power).
    * ``"db"``: unchanged (as float32; no copy when ``a`` is float32 already).

    Args:
        a: Values in ``scale`` units, any shape.
        scale: One of :data:`SCALES`.

    Returns:
        A new float32 array in dB (``a`` itself for ``"db"`` float32 input).
    """
    scale = _check_scale(scale)
    x = np.asarray(a, dtype=np.float32)
    if scale == "db":
        return x
    floor = np.float32(SAR_FLOOR if scale == "power" else math.sqrt(SAR_FLOOR))
    out = np.maximum(x, floor)  # NaN propagates
    with np.errstate(invalid="ignore"):
        np.log10(out, out=out)
    out *= np.float32(10.0 if scale == "power" else 20.0)
    return out


def guess_scale_hint(values: np.ndarray) -> str | None:
    """What scale sampled values look like; only to word error messages, never to decide.

    Args:
        values: Sampled pixel values (any shape; NaN ignored).

    Returns:
        ``"db"`` (more than 5 % negative values), ``"power"`` (non-negative, median < 0.1),
        ``"linear"`` (non-negative, median 0.1–1: linear power or amplitude, cannot tell),
        ``"amplitude"`` (non-negative, median 1–10, rarely power), or None (no finite value,
        or nothing typical).
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None
    if np.mean(v < 0) > _NEG_FRACTION:
        return "db"
    med = float(np.median(v))
    if med < 0.1:
        return "power"
    if med < 1.0:
        return "linear"
    if med < 10.0:
        return "amplitude"
    return None


def _check_scale(scale: object) -> str:
    if scale not in SCALES:
        raise InputError(f"scale={scale!r}; choose 'power' (linear γ⁰/σ⁰ power), 'amplitude' "
                         f"(linear amplitude, √power) or 'db'. glacierkit does not guess the "
                         f"scale: check the product's documentation (ASF HyP3 RTC: 'power' "
                         f"unless the product name says dB/amp).")
    return str(scale)


# ---------------------------------------------------------------------------- the stack
@dataclass(frozen=True)
class SeriesFile:
    """One date of a series.

    Attributes:
        path: The raster file.
        acquired: Acquisition time, naive UTC (midnight when only the date is known).
        direction: ``"ascending"``, ``"descending"`` or None (unknown: no time of day and no
            explicit pass).
        has_time: Whether ``acquired`` includes a known time of day.
        grid: The file's own grid (differs from the stack's grid only for an aligned stack).
    """

    path: Path
    acquired: _dt.datetime
    direction: Direction | None
    has_time: bool = True
    grid: Grid | None = None


@dataclass(frozen=True)
class SeriesStack:
    """Image time series on one grid (see :func:`open_series`, which builds and checks it).

    Attributes:
        files: One :class:`SeriesFile` per date, sorted by acquisition time.
        grid: The common grid (rows × cols = H × W).
        scale: ``"power"``, ``"amplitude"`` or ``"db"``: the units of the files' values.
        bands: Bands per file (B; the same for every file).
        nodata: Extra value read as nodata besides each file's own nodata (None: only the
            files' own nodata and non-finite values).
        dropped: Dates left out because they held no valid pixel (``drop_empty=True``).
        resampling: How files not on ``grid`` are warped when read (aligned stacks only).
    """

    files: tuple[SeriesFile, ...]
    grid: Grid
    scale: Scale
    bands: int
    nodata: float | None = None
    dropped: tuple[SeriesFile, ...] = field(default=())
    resampling: str = "bilinear"

    def __post_init__(self) -> None:
        if not self.files:
            raise InputError("a SeriesStack needs at least one file.")
        _check_scale(self.scale)

    # ------------------------------------------------------------------ description
    def __len__(self) -> int:
        return len(self.files)

    @property
    def n_dates(self) -> int:
        """Number of dates T."""
        return len(self.files)

    @property
    def paths(self) -> tuple[Path, ...]:
        """The files, shape (T,)."""
        return tuple(f.path for f in self.files)

    @property
    def dates(self) -> np.ndarray:
        """Acquisition times (UTC), ``datetime64[s]``, shape (T,)."""
        return np.array([np.datetime64(f.acquired, "s") for f in self.files],
                        dtype="datetime64[s]")

    @property
    def directions(self) -> tuple[Direction | None, ...]:
        """Pass of each date (``"ascending"``, ``"descending"`` or None), shape (T,)."""
        return tuple(f.direction for f in self.files)

    @property
    def aligned(self) -> bool:
        """Whether some file is not on :attr:`grid` (and is warped when read)."""
        return any(f.grid is not None and not f.grid.almost_equals(self.grid)
                   for f in self.files)

    def days_since(self, reference: _dt.date | _dt.datetime | str | np.datetime64
                   ) -> np.ndarray:
        """Days from ``reference`` to each date (fractional, negative before it).

        Args:
            reference: A date (midnight UTC), a datetime (naive = UTC), an ISO string or a
                ``numpy.datetime64``.

        Returns:
            float32, shape (T,), in days.
        """
        ref = _as_datetime64(reference, what="reference")
        secs = (self.dates - ref).astype("timedelta64[s]").astype(np.float64)
        return (secs / 86400.0).astype(np.float32)

    def __str__(self) -> str:
        d = self.dates
        dirs = Counter(str(x) for x in self.directions)
        return (f"SeriesStack({self.n_dates} dates {str(d[0])[:10]} … {str(d[-1])[:10]}, "
                f"{self.bands} band(s), scale={self.scale}, "
                f"passes {dict(sorted(dirs.items()))}, {self.grid.describe()})")

    # ------------------------------------------------------------------ selection
    def subset(self, indices: Sequence[int] | np.ndarray) -> SeriesStack:
        """A stack of some dates (kept in time order).

        Args:
            indices: Integer positions (negative count from the end; order and repeats do
                not matter) or a boolean mask of shape (T,).

        Returns:
            A new :class:`SeriesStack` (same grid, scale, bands, nodata).

        Raises:
            InputError: out-of-range positions, a mask of the wrong length, or no date left.
        """
        idx = np.asarray(indices)
        n = self.n_dates
        if idx.dtype == bool:
            if idx.shape != (n,):
                raise InputError(f"a boolean date mask must have shape ({n},); got "
                                 f"{idx.shape}.")
            idx = np.flatnonzero(idx)
        elif idx.size and not np.issubdtype(idx.dtype, np.integer):
            raise InputError(f"indices must be integers or a boolean mask; got dtype "
                             f"{idx.dtype}.")
        idx = idx.astype(np.int64).ravel()
        bad = idx[(idx < -n) | (idx >= n)]
        if bad.size:
            raise InputError(f"date indices {bad[:_LIST].tolist()} are out of range for a "
                             f"stack of {n} dates.")
        idx = np.unique(np.where(idx < 0, idx + n, idx))
        if idx.size == 0:
            raise InputError("the selection holds no date; select at least one.")
        return replace(self, files=tuple(self.files[i] for i in idx))

    # ------------------------------------------------------------------ reading
    def to_db(self, a: np.ndarray) -> np.ndarray:
        """:func:`to_db` with this stack's scale."""
        return to_db(a, self.scale)

    def read(self, window: Window | None = None, *, bands: Sequence[int] | None = None
             ) -> np.ndarray:
        """Read one window of every date.

        Each file is opened in turn and only ``window`` is read from it (files not on the
        stack's grid, in an aligned stack, are read around the window and warped onto it
        with :attr:`resampling`, logged).

        Args:
            window: Pixel window on :attr:`grid` (integer offsets/sizes inside it); None
                reads everything.
            bands: 1-based band indexes (default: all :attr:`bands`).

        Returns:
            float32 array (T, B, h, w) in the files' units (:attr:`scale`), NaN where a file
            has nodata (its own nodata value, :attr:`nodata`, or a non-finite value). Memory:
            4·T·B·h·w bytes.

        Raises:
            WindowError: the window is empty or outside the grid.
            InputError: a band index that does not exist.
            RasterReadError: a file cannot be read (changed or removed since opening).
        """
        win = Window(0, 0, self.grid.width, self.grid.height) if window is None else window
        check_window(win, self.grid.shape)
        idx = list(range(1, self.bands + 1)) if bands is None else [int(b) for b in bands]
        bad = [b for b in idx if not 1 <= b <= self.bands]
        if bad or not idx:
            raise InputError(f"bands={list(idx)}: the stack has {self.bands} band(s) per file "
                             f"(1-based indexes 1..{self.bands}).")
        h, w = int(win.height), int(win.width)
        out = np.empty((self.n_dates, len(idx), h, w), dtype=np.float32)
        for t, f in enumerate(self.files):
            if f.grid is None or f.grid.almost_equals(self.grid):
                with RasterReader(f.path) as r:
                    data, _ = r.read_arrays(win, bands=idx)
                out[t] = data
            else:
                out[t] = self._read_warped(f, win, idx)
        if self.nodata is not None and not np.isnan(self.nodata):
            out[out == np.float32(self.nodata)] = np.nan
        out[~np.isfinite(out)] = np.nan
        return out

    def _read_warped(self, f: SeriesFile, win: Window, idx: list[int]) -> np.ndarray:
        """A window of a file that is not on the stack's grid, warped onto it."""
        from rasterio.warp import transform_bounds

        from glacierkit.io.reproject import reproject

        target = self.grid.window_grid(win)
        src_grid = f.grid
        assert src_grid is not None
        out = np.full((len(idx), *target.shape), np.nan, dtype=np.float32)
        left, bottom, right, top = transform_bounds(self.grid.crs, src_grid.crs,
                                                    *target.bounds, densify_pts=21)
        pad = 2 * max(src_grid.res)  # resampling kernels reach beyond the window's edge
        sl, sb, sr, st = src_grid.bounds
        left, bottom = max(left - pad, sl), max(bottom - pad, sb)
        right, top = min(right + pad, sr), min(top + pad, st)
        if not (right > left and top > bottom):
            return out  # the file does not cover this window
        swin = src_grid.bounds_window((left, bottom, right, top))
        c0, r0 = max(0, swin.col_off), max(0, swin.row_off)
        c1 = min(src_grid.width, swin.col_off + swin.width)
        r1 = min(src_grid.height, swin.row_off + swin.height)
        with RasterReader(f.path) as r:
            raster = r.read(Window(c0, r0, c1 - c0, r1 - r0), bands=idx)
        if self.nodata is not None and not np.isnan(self.nodata):
            raster.data[raster.data == self.nodata] = np.nan
            raster.valid &= np.isfinite(raster.data)
        warped = reproject(raster, target, resampling=self.resampling)
        out[...] = warped.data
        return out


# ---------------------------------------------------------------------------- opening
@dataclass
class _Entry:
    path: Path
    date_text: str | None = None
    pass_text: str | None = None
    where: str = ""


def _as_datetime64(value: object, *, what: str) -> np.datetime64:
    if isinstance(value, np.datetime64):
        return value.astype("datetime64[s]")
    if isinstance(value, _dt.date):  # datetime is a date too
        return np.datetime64(to_naive_utc(value), "s")
    t, _ = parse_date_text(str(value), what=what)
    return np.datetime64(t, "s")


def _explicit_date(value: object, i: int) -> tuple[_dt.datetime, bool]:
    what = f"dates[{i}]"
    if isinstance(value, np.datetime64):
        t = value.astype("datetime64[s]").item()
        if not isinstance(t, _dt.datetime):
            raise InputError(f"{what}: {value!r} is not a date.")
        return t, str(value.dtype) not in ("datetime64[D]", "datetime64[M]", "datetime64[Y]")
    if isinstance(value, _dt.datetime):
        return to_naive_utc(value), True
    if isinstance(value, _dt.date):
        return to_naive_utc(value), False
    return parse_date_text(str(value), what=what)


def _read_csv(path: Path) -> list[_Entry]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise DatasetNotFoundError(f"cannot read the series table {path} ({e}).") from e
    rows = list(csv.reader(text.splitlines()))
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise InputError(f"{path} is empty; a series table has the header 'path,date[,pass]' "
                         f"and one row per file.")
    header = [c.strip().lower() for c in rows[0]]
    if "path" not in header or "date" not in header:
        raise InputError(f"{path}: the header is {rows[0]}; a series table needs the columns "
                         f"'path' and 'date' (and optionally 'pass'), e.g. "
                         f"'path,date,pass' then 'vv_20210122.tif,2021-01-22T00:11:30,desc'.")
    ip, idt = header.index("path"), header.index("date")
    ipass = header.index("pass") if "pass" in header else None
    out = []
    for n, row in enumerate(rows[1:], start=2):
        cells = [c.strip() for c in row] + [""] * len(header)
        if not cells[ip]:
            raise InputError(f"{path}, line {n}: the path is empty.")
        p = Path(cells[ip]).expanduser()
        out.append(_Entry(path=p if p.is_absolute() else path.parent / p,
                          date_text=cells[idt] or None,
                          pass_text=cells[ipass] if ipass is not None else None,
                          where=f"{path.name}, line {n}"))
    return out


def _resolve_source(source: object) -> tuple[list[_Entry], str]:
    """The files of a source and a description of the source for messages."""
    if isinstance(source, str | os.PathLike):
        s = os.fspath(source)
        p = Path(s).expanduser()
        if isinstance(source, str) and any(ch in s for ch in "*?[") and not p.exists():
            found = sorted(Path(x) for x in _glob.glob(os.path.expanduser(s), recursive=True)
                           if Path(x).is_file())
            return [_Entry(x) for x in found], f"the pattern {s!r}"
        if p.is_dir():
            found = sorted(x for x in p.iterdir() if x.is_file() and not x.name.startswith(".")
                           and x.suffix.lower() in RASTER_SUFFIXES)
            return [_Entry(x) for x in found], f"the folder {p} (*.tif, *.tiff)"
        if p.suffix.lower() == ".csv":
            if not p.exists():
                raise DatasetNotFoundError(f"series table {p} does not exist.")
            return _read_csv(p), f"the table {p}"
        return [_Entry(p)], f"the file {p}"
    if isinstance(source, Sequence | np.ndarray):
        return [_Entry(Path(os.fspath(x)).expanduser()) for x in source], "the list of files"
    raise InputError(f"source={source!r}: give a folder, a glob pattern, a CSV table "
                     f"(path,date[,pass]) or a list of raster files.")


def _names(paths: Sequence[object]) -> str:
    items = [str(p) for p in paths]
    more = f" and {len(items) - _LIST} more" if len(items) > _LIST else ""
    return ", ".join(items[:_LIST]) + more


def _centre_lon(grid: Grid) -> float | None:
    if grid.crs is None:
        return None
    from pyproj import Transformer

    x, y = grid.xy((grid.height - 1) / 2, (grid.width - 1) / 2)
    tr = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True)
    lon, _ = tr.transform(float(x), float(y))
    return float(lon)


@dataclass
class _Sample:
    count: int
    n_valid: int
    values: np.ndarray  # valid sampled values (float64, 1-D)


def _sample(path: Path, nodata: float | None) -> _Sample:
    """A decimated read (≤ SAMPLE_SIZE² px per band) of a file: its valid values."""
    try:
        with rasterio.open(path) as ds:
            f = max(1.0, max(ds.height, ds.width) / SAMPLE_SIZE)
            shape = (ds.count, max(1, round(ds.height / f)), max(1, round(ds.width / f)))
            arr = ds.read(out_shape=shape, resampling=Resampling.nearest).astype(np.float64)
            valid = ds.read_masks(out_shape=shape, resampling=Resampling.nearest) > 0
            if ds.nodata is not None:  # also for NaN nodata, which masks may not flag
                valid &= ~(np.isnan(arr) if np.isnan(ds.nodata) else arr == ds.nodata)
            count = int(ds.count)
    except RasterioIOError as e:
        raise RasterReadError(f"cannot read pixels of {path} ({e}); the file may be "
                              f"truncated or corrupt.") from e
    valid &= np.isfinite(arr)
    if nodata is not None and not np.isnan(nodata):
        valid &= arr != nodata
    return _Sample(count=count, n_valid=int(valid.sum()), values=arr[valid])


def open_series(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *,
                scale: str, dates: Sequence[object] | None = None,
                passes: Sequence[str | None] | None = None, direction: str | None = None,
                align: bool | Grid = False, resampling: str = "bilinear",
                nodata: float | None = None, drop_empty: bool = False) -> SeriesStack:
    """Open and check an image time series (nothing but small decimated samples is read).

    Args:
        source: One of

            * a folder: every ``*.tif``/``*.tiff`` in it (not in sub-folders), by name;
            * a glob pattern (``"s1/*_VV*.tif"``, ``**`` allowed);
            * a list of raster paths;
            * a CSV table (``.csv``) with the header ``path,date[,pass]``: ``path`` relative
              to the table's folder or absolute; ``date`` ``YYYY-MM-DD`` or
              ``YYYY-MM-DDTHH:MM:SS`` (UTC; empty: from the file name); ``pass``
              ``ascending|descending|asc|desc|A|D`` (empty: from the time, see below).
        scale: The files' value scale, required (never guessed): ``"power"`` (linear γ⁰/σ⁰
            power, e.g. ASF HyP3 RTC default), ``"amplitude"`` (linear amplitude) or
            ``"db"``.
        dates: Acquisition times overriding the file names (and the table), one per file in
            the order the source lists them: ``datetime`` (naive = UTC), ``date``, ISO string
            or ``numpy.datetime64``.
        passes: Orbit pass per file in the source's order (as the table's ``pass`` column;
            None entries: from the time).
        direction: Which passes to keep: None (default: all files must share one known
            pass), ``"ascending"``, ``"descending"`` or ``"all"`` (keep mixed passes).
        align: False (default): all files must be on one grid. True: the stack's grid is the
            grid of the first date, and files on other grids are warped onto it *when read*
            (:meth:`SeriesStack.read`, with ``resampling``, logged); a :class:`Grid`: that grid.
            The files themselves are never changed.
        resampling: Resampling used for aligned files (``"bilinear"``, ``"nearest"``, ...;
            see :func:`glacierkit.io.reproject.reproject`).
        nodata: A value read as nodata in every file, besides each file's own nodata (e.g. 0
            for products that declare none). Non-finite values are always nodata.
        drop_empty: Leave out dates whose sample holds no valid pixel (logged as a warning
            and listed in :attr:`SeriesStack.dropped`) instead of raising.

    The pass of a date is, in order: ``passes``, the table's ``pass``, or
    :func:`~glacierkit.series.dates.pass_direction` of the acquisition time at the longitude
    of the grid's centre (a Sentinel-1 rule); a date known without a time of day has an
    unknown pass (None).

    Checks (before anything is returned): the source lists files; every file exists; every
    date parses; no two files have the same acquisition time and pass; the passes are not
    mixed unless ``direction`` says which to keep; the grids agree (CRS, transform, shape)
    unless aligned; every file has the same number of bands; no date is empty (in a
    decimated sample of at most 256 × 256 px per file, so a date with only a few valid
    pixels may count as empty); the sampled values fit ``scale`` (``"power"`` or
    ``"amplitude"`` with more than 5 % negative values looks like dB; ``"db"`` with no value
    ≤ 0 and a median below 1 looks like linear power).

    Returns:
        The :class:`SeriesStack`, dates in time order.

    Raises:
        InputError: an empty source, an unreadable date, duplicate dates, mixed or unknown
            passes, band counts that differ, an empty date, values that do not fit ``scale``.
        DatasetNotFoundError: a listed file does not exist.
        GridMismatchError: the files are not on one grid and ``align`` is False.
        RasterReadError, CRSError: a file cannot be read or has no CRS.
    """
    scale = _check_scale(scale)
    if direction not in (None, "ascending", "descending", "all"):
        raise InputError(f"direction={direction!r}; choose None (one pass only), "
                         f"'ascending', 'descending' or 'all'.")
    entries, what = _resolve_source(source)
    if not entries:
        raise InputError(f"{what} holds no raster file; give a folder of GeoTIFFs, a glob "
                         f"pattern that matches files, a list of files or a CSV table.")
    n = len(entries)
    for name, given in (("dates", dates), ("passes", passes)):
        if given is not None and len(given) != n:
            raise InputError(f"{name} has {len(given)} entries but {what} lists {n} file(s); "
                             f"give one per file, in the order the source lists them.")
    missing = [e.path for e in entries if not e.path.is_file()]
    if missing:
        raise DatasetNotFoundError(f"{len(missing)} file(s) of the series do not exist: "
                                   f"{_names(missing)}.")

    # Dates: explicit, then the table, then the file name.
    times: list[tuple[_dt.datetime, bool]] = []
    errors: list[str] = []
    for i, e in enumerate(entries):
        try:
            if dates is not None:
                times.append(_explicit_date(dates[i], i))
            elif e.date_text:
                times.append(parse_date_text(e.date_text, what=f"{e.where}, date"))
            else:
                times.append(parse_acquisition_details(e.path.name))
        except InputError as err:
            errors.append(err.message)
    if errors:
        more = f" (and {len(errors) - _LIST} more)" if len(errors) > _LIST else ""
        raise InputError(
            f"cannot tell the acquisition date of {len(errors)} file(s): "
            + "; ".join(errors[:_LIST]) + more + ".",
            hint="Give the dates explicitly: open_series(..., dates=[...]) or a CSV table with "
                 "the header 'path,date[,pass]' (date as YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS, "
                 "UTC).")

    grids = [read_grid(e.path) for e in entries]
    target = align if isinstance(align, Grid) else grids[0]
    lon = _centre_lon(target)

    files: list[SeriesFile] = []
    for i, (e, (t, has_time), g) in enumerate(zip(entries, times, grids, strict=True)):
        explicit = passes[i] if passes is not None else e.pass_text
        d = normalize_pass(explicit, what=f"pass of {e.path.name}")
        if d is None and has_time and lon is not None:
            d = pass_direction(t, lon)
        files.append(SeriesFile(path=e.path, acquired=t, direction=d, has_time=has_time,
                                grid=g))

    files = _select_direction(files, direction)
    files.sort(key=lambda f: (f.acquired, f.direction or "", str(f.path)))
    _check_duplicates(files)

    if align is False:
        check_same_grid({str(f.path): f.grid for f in files if f.grid is not None})
        target = files[0].grid or target
    elif align is True:
        target = files[0].grid or target
    elif not isinstance(align, Grid):
        raise InputError(f"align={align!r}; give False (files must share one grid), True "
                         f"(the first date's grid) or a glacierkit Grid.")
    if align is not False:
        if any(not f.grid.is_georeferenced for f in files if f.grid is not None) or \
                not target.is_georeferenced:
            raise InputError("align needs georeferenced files: plain images cannot be warped "
                             "onto one grid.")
        moved = [f.path.name for f in files if not f.grid.almost_equals(target)]
        if moved:
            log.info("series: %d of %d file(s) are not on the grid %s and are warped onto "
                     "it (%s) when read: %s", len(moved), len(files), target.describe(),
                     resampling, _names(moved))

    return _check_samples(files, target, scale, nodata, drop_empty, resampling)


def _select_direction(files: list[SeriesFile], direction: str | None) -> list[SeriesFile]:
    counts = Counter(f.direction for f in files)
    if direction == "all":
        return files
    if direction is None:
        known = sorted(d for d in counts if d is not None)
        if len(known) > 1:
            raise InputError(
                f"the series mixes passes: {counts['ascending']} ascending and "
                f"{counts['descending']} descending date(s) (from the acquisition times). "
                f"Backscatter of different viewing geometries is not comparable date to date.",
                hint="Choose open_series(..., direction='ascending'), direction='descending', "
                     "or direction='all' to keep both knowingly.",
                cli_hint="Choose --direction ascending or --direction descending (or "
                         "[series] direction in a map train config; 'all' keeps both "
                         "knowingly).")
        return files
    unknown = [f.path.name for f in files if f.direction is None]
    if unknown:
        raise InputError(
            f"direction={direction!r}, but the pass of {len(unknown)} file(s) is unknown (no "
            f"time of day in the name and no explicit pass): {_names(unknown)}.",
            hint="Give the pass of every file (CSV column 'pass' or passes=[...]), or use "
                 "direction='all'.")
    kept = [f for f in files if f.direction == direction]
    if not kept:
        raise InputError(f"direction={direction!r} leaves no file: the series has "
                         f"{counts['ascending']} ascending and {counts['descending']} "
                         f"descending date(s).")
    return kept


def _check_duplicates(files: list[SeriesFile]) -> None:
    groups: dict[tuple[_dt.datetime, str | None], list[Path]] = {}
    for f in files:
        groups.setdefault((f.acquired, f.direction), []).append(f.path)
    dups = {k: v for k, v in groups.items() if len(v) > 1}
    if dups:
        lines = "; ".join(f"{t.isoformat()} ({d or 'unknown pass'}): {_names(v)}"
                          for (t, d), v in list(dups.items())[:_LIST])
        raise InputError(
            f"{len(dups)} acquisition time(s) occur more than once in the series: {lines}.",
            hint="Keep one file per acquisition (e.g. drop copies or other polarisations "
                 "from the folder, or use a glob pattern such as '*_VV*.tif'), or give "
                 "distinct dates/passes in a CSV table.")


def _check_samples(files: list[SeriesFile], grid: Grid, scale: str, nodata: float | None,
                   drop_empty: bool, resampling: str) -> SeriesStack:
    counts: dict[int, list[str]] = {}
    kept: list[SeriesFile] = []
    empty: list[SeriesFile] = []
    pooled: list[np.ndarray] = []
    per_file_neg: list[tuple[str, float]] = []
    for f in files:
        s = _sample(f.path, nodata)
        counts.setdefault(s.count, []).append(f.path.name)
        if s.n_valid == 0:
            empty.append(f)
            continue
        kept.append(f)
        pooled.append(s.values)
        if scale != "db" and s.values.size:
            per_file_neg.append((f.path.name, float(np.mean(s.values < 0))))
    if len(counts) > 1:
        desc = "; ".join(f"{c} band(s): {_names(v)}" for c, v in sorted(counts.items()))
        raise InputError(f"the files of the series have different band counts ({desc}); "
                         f"every date must have the same bands in the same order.")
    if empty:
        names = _names([f.path for f in empty])
        if not drop_empty:
            raise InputError(
                f"{len(empty)} date(s) hold no valid pixel (all nodata in a decimated "
                f"sample): {names}.",
                hint="Remove them, or pass drop_empty=True to leave them out (listed in "
                     "stack.dropped).")
        log.warning("series: left out %d date(s) without a valid pixel: %s", len(empty),
                     names)
        if not kept:
            raise InputError(f"every date of the series is empty (all nodata): {names}.")
    values = np.concatenate(pooled) if pooled else np.zeros(0)
    _check_scale_values(values, scale, per_file_neg)
    return SeriesStack(files=tuple(kept), grid=grid, scale=scale,  # type: ignore[arg-type]
                       bands=next(iter(counts)), nodata=nodata, dropped=tuple(empty),
                       resampling=resampling)


def _check_scale_values(values: np.ndarray, scale: str,
                        per_file_neg: list[tuple[str, float]]) -> None:
    if values.size == 0:
        return
    med = float(np.median(values))
    hint = guess_scale_hint(values)
    likely = {"db": "'db'", "power": "'power'", "linear": "'power' or 'amplitude'",
              "amplitude": "'amplitude'"}.get(hint or "", "another scale")
    if scale in ("power", "amplitude"):
        neg = float(np.mean(values < 0))
        if neg > _NEG_FRACTION:
            worst = sorted(per_file_neg, key=lambda x: -x[1])[:3]
            where = ", ".join(f"{n} ({100 * v:.0f} %)" for n, v in worst)
            raise InputError(
                f"scale={scale!r} (linear), but {100 * neg:.0f} % of the sampled values are "
                f"negative (median {med:.3g}; e.g. {where}); linear {scale} is never "
                f"negative, so these look like dB values (likely scale {likely}).",
                hint="Pass scale='db' if the files hold dB.")
    else:
        nonpos = float(np.mean(values <= 0))
        if nonpos < 0.01 and 0 < med < 1:
            raise InputError(
                f"scale='db', but the sampled values are all positive with a median of "
                f"{med:.3g} (that would be {10 * math.log10(med):.1f} dB as linear power); "
                f"backscatter in dB is mostly negative, so these look like linear values "
                f"(likely scale {likely}).",
                hint="Pass scale='power' (or 'amplitude') if the files hold linear values.")
