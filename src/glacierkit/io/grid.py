"""The :class:`Grid` value object: where every pixel of a raster lies on the Earth.

A grid is a CRS, an affine transform (pixel → map coordinates of the pixel's *upper-left
corner*, GDAL convention) and a shape ``(rows, cols)``. ``pixel_is`` records whether a value
stands for the pixel's area (``"area"``, GDAL's default) or for the point at its centre
(``"point"``); the transform is always stored in the area convention so that two grids compare
equal exactly when their pixels coincide.

Non-georeferenced images (plain PNG/JPEG) get a grid with ``crs=None`` and a transform built
from a user-supplied pixel size; :attr:`Grid.is_georeferenced` is then ``False``.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field, replace
from typing import Literal

from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from glacierkit.errors import CRSError, GridMismatchError, InputError, WindowError

Bounds = tuple[float, float, float, float]
"""Map bounds ``(left, bottom, right, top)`` in CRS units."""

def _crs_or_none(crs: CRS | str | int | None) -> CRS | None:
    if crs is None or isinstance(crs, CRS):
        return crs
    try:
        if isinstance(crs, int):
            return CRS.from_epsg(crs)
        return CRS.from_user_input(crs)
    except Exception as e:  # rasterio raises its own CRSError subclasses
        raise CRSError(f"crs={crs!r} is not a CRS that PROJ understands: {e}") from e


@dataclass(frozen=True)
class Grid:
    """A raster grid: CRS, affine transform and shape. Immutable and hashable.

    Args:
        crs: Coordinate reference system (``rasterio.crs.CRS``, EPSG code or WKT/PROJ string),
            or ``None`` for a plain image that is not georeferenced.
        transform: Affine transform from ``(col, row)`` of a pixel's upper-left corner to map
            coordinates ``(x, y)``.
        shape: ``(rows, cols)``, both > 0.
        pixel_is: ``"area"`` (values represent the pixel's footprint) or ``"point"`` (values
            are samples at pixel centres). Stored as metadata; the transform is always in the
            area convention.
    """

    crs: CRS | None
    transform: Affine
    shape: tuple[int, int]
    pixel_is: Literal["area", "point"] = field(default="area")

    def __post_init__(self) -> None:
        object.__setattr__(self, "crs", _crs_or_none(self.crs))
        if not isinstance(self.transform, Affine):
            object.__setattr__(self, "transform", Affine(*tuple(self.transform)[:6]))
        rows, cols = (int(v) for v in self.shape)
        if rows <= 0 or cols <= 0:
            raise InputError(f"Grid shape must be positive (rows, cols); got {self.shape}.")
        object.__setattr__(self, "shape", (rows, cols))
        if self.pixel_is not in ("area", "point"):
            raise InputError(f"pixel_is must be 'area' or 'point'; got {self.pixel_is!r}.")
        if self.transform.determinant == 0:
            raise InputError(f"Grid transform is singular: {tuple(self.transform)[:6]}.")

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_dataset(cls, ds) -> Grid:
        """Build the grid of an open rasterio dataset."""
        tags = ds.tags()
        pixel_is = "point" if tags.get("AREA_OR_POINT", "Area").lower() == "point" else "area"
        return cls(crs=ds.crs, transform=ds.transform, shape=(ds.height, ds.width),
                   pixel_is=pixel_is)

    @classmethod
    def from_bounds(cls, bounds: Bounds, res: float | tuple[float, float],
                    crs: CRS | str | int | None) -> Grid:
        """North-up grid covering ``bounds`` with pixel size ``res`` (map units).

        The grid is snapped outwards so that it covers the bounds completely.
        """
        rx, ry = (res, res) if isinstance(res, int | float) else res
        left, bottom, right, top = bounds
        if rx <= 0 or ry <= 0:
            raise InputError(f"res must be positive; got {res}.")
        cols = max(1, math.ceil((right - left) / rx - 1e-9))
        rows = max(1, math.ceil((top - bottom) / ry - 1e-9))
        return cls(crs=crs, transform=Affine(rx, 0, left, 0, -ry, top), shape=(rows, cols))

    @classmethod
    def pixel_grid(cls, shape: tuple[int, int], pixel_size_m: float = 1.0) -> Grid:
        """Grid of a non-georeferenced image: origin at the top-left, ``pixel_size_m`` pixels."""
        if not pixel_size_m > 0:
            raise InputError(f"pixel_size_m must be > 0; got {pixel_size_m}.")
        return cls(crs=None, transform=Affine(pixel_size_m, 0, 0, 0, -pixel_size_m, 0),
                   shape=shape)

    # ------------------------------------------------------------------ properties
    @property
    def height(self) -> int:
        """Number of rows."""
        return self.shape[0]

    @property
    def width(self) -> int:
        """Number of columns."""
        return self.shape[1]

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size ``(x_res, y_res)`` in CRS units (both positive for a north-up grid)."""
        t = self.transform
        return (math.hypot(t.a, t.d), math.hypot(t.b, t.e))

    @property
    def is_north_up(self) -> bool:
        """True when the transform has no rotation and rows run north to south."""
        t = self.transform
        return t.b == 0 and t.d == 0 and t.a > 0 and t.e < 0

    @property
    def is_georeferenced(self) -> bool:
        """True when the grid has a CRS (plain images have none)."""
        return self.crs is not None

    @property
    def epsg(self) -> int | None:
        """EPSG code of the CRS when one is known, else ``None``."""
        if self.crs is None:
            return None
        return self.crs.to_epsg()

    @property
    def bounds(self) -> Bounds:
        """``(left, bottom, right, top)`` of the outer pixel edges, in CRS units."""
        return self.window_bounds(Window(0, 0, self.width, self.height))

    # ------------------------------------------------------------------ windows
    def window_bounds(self, window: Window) -> Bounds:
        """Map bounds ``(left, bottom, right, top)`` of a pixel window (outer edges)."""
        col0, row0 = window.col_off, window.row_off
        col1, row1 = col0 + window.width, row0 + window.height
        xs, ys = zip(*(self.transform @ (c, r) for c, r in
                       ((col0, row0), (col1, row0), (col0, row1), (col1, row1))), strict=True)
        return (min(xs), min(ys), max(xs), max(ys))

    def bounds_window(self, bounds: Bounds, *, snap: bool = True) -> Window:
        """Pixel window covering ``bounds`` (map units) on this grid.

        Args:
            bounds: ``(left, bottom, right, top)`` in CRS units.
            snap: Round outwards to whole pixels (default). With ``False`` the fractional
                window is returned.

        Raises:
            WindowError: if the bounds are empty or do not intersect the grid.
        """
        left, bottom, right, top = bounds
        if not (right > left and top > bottom):
            raise WindowError(f"bounds {bounds} are empty (need right > left and top > bottom).")
        inv = ~self.transform
        corners = [inv @ (x, y) for x, y in ((left, top), (right, top), (left, bottom),
                                               (right, bottom))]
        cols = [c for c, _ in corners]
        rows = [r for _, r in corners]
        c0, c1, r0, r1 = min(cols), max(cols), min(rows), max(rows)
        if snap:
            # Tolerance (px) against float round-off: coordinates far from the origin with
            # tiny pixels (degrees) lose more relative precision.
            mag = max(abs(v) for v in (*bounds, self.transform.c, self.transform.f))
            tol = max(1e-6, 64 * sys.float_info.epsilon * mag / min(self.res))
            c0, r0 = math.floor(c0 + tol), math.floor(r0 + tol)
            c1, r1 = math.ceil(c1 - tol), math.ceil(r1 - tol)
        if c1 <= 0 or r1 <= 0 or c0 >= self.width or r0 >= self.height:
            raise WindowError(
                f"bounds {bounds} do not intersect the grid (bounds {self.bounds})."
            )
        return Window(c0, r0, c1 - c0, r1 - r0)

    def window_grid(self, window: Window) -> Grid:
        """The sub-grid of a window (integer offsets and sizes).

        Raises:
            WindowError: for a zero-size window or one outside the grid.
        """
        check_window(window, self.shape)
        t = self.transform @ Affine.translation(window.col_off, window.row_off)
        return replace(self, transform=t, shape=(int(window.height), int(window.width)))

    def xy(self, row, col, *, offset: Literal["center", "ul"] = "center"):
        """Map coordinates of pixel ``(row, col)`` (scalars or arrays); centre by default."""
        d = 0.5 if offset == "center" else 0.0
        t = self.transform
        import numpy as np

        r = np.asarray(row, dtype="float64") + d
        c = np.asarray(col, dtype="float64") + d
        return (t.a * c + t.b * r + t.c, t.d * c + t.e * r + t.f)

    def rowcol(self, x, y):
        """Fractional ``(row, col)`` of map coordinates (pixel corners at integers)."""
        import numpy as np

        inv = ~self.transform
        x = np.asarray(x, dtype="float64")
        y = np.asarray(y, dtype="float64")
        return (inv.d * x + inv.e * y + inv.f, inv.a * x + inv.b * y + inv.c)

    # ------------------------------------------------------------------ comparison
    def almost_equals(self, other: Grid, *, tol_px: float = 1e-6) -> bool:
        """Same CRS and shape, and pixel corners coincide to within ``tol_px`` of a pixel."""
        if self.shape != other.shape or not _same_crs(self.crs, other.crs):
            return False
        px = max(min(self.res + other.res), 1e-12)
        a, b = tuple(self.transform)[:6], tuple(other.transform)[:6]
        # Compare the map position of the far grid corner as well as the origin, so that a
        # tiny pixel-size difference that accumulates over the grid is caught.
        far = (self.width, self.height)
        fa, fb = self.transform @ far, other.transform @ far
        return (all(abs(a[i] - b[i]) <= tol_px * px for i in (2, 5))
                and all(abs(p - q) <= tol_px * px for p, q in zip(fa, fb, strict=True)))

    def describe(self) -> str:
        """One-line human description used in error messages and logs."""
        crs = f"EPSG:{self.epsg}" if self.epsg else (self.crs.to_string()[:60] if self.crs
                                                     else "no CRS (pixel grid)")
        rx, ry = self.res
        b = self.bounds
        return (f"{crs}, {self.width}×{self.height} px, res {rx:g}×{ry:g}, "
                f"bounds ({b[0]:.10g}, {b[1]:.10g}, {b[2]:.10g}, {b[3]:.10g})")

    def __str__(self) -> str:
        return f"Grid({self.describe()})"


def _same_crs(a: CRS | None, b: CRS | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a == b


def check_window(window: Window, shape: tuple[int, int]) -> None:
    """Raise :class:`WindowError` unless ``window`` is non-empty, integral and inside ``shape``."""
    vals = (window.col_off, window.row_off, window.width, window.height)
    if any(float(v) != int(v) for v in vals):
        raise WindowError(f"window {window} must have integer offsets and sizes.")
    if window.width <= 0 or window.height <= 0:
        raise WindowError(f"window {window} has zero size; width and height must be > 0.")
    rows, cols = shape
    if (window.col_off < 0 or window.row_off < 0 or window.col_off + window.width > cols
            or window.row_off + window.height > rows):
        raise WindowError(f"window {window} lies (partly) outside the raster of shape "
                          f"(rows={rows}, cols={cols}).")


def check_same_grid(named: dict[str, Grid]) -> None:
    """Raise :class:`GridMismatchError` unless all grids coincide.

    Args:
        named: ``{name: grid}``; names (file paths or argument names) appear in the message.
    """
    items = list(named.items())
    if len(items) < 2:
        return
    ref_name, ref = items[0]
    for name, g in items[1:]:
        if ref.almost_equals(g):
            continue
        diffs = []
        if not _same_crs(ref.crs, g.crs):
            diffs.append("CRS")
        if not all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(ref.res, g.res, strict=True)):
            diffs.append("resolution")
        if ref.shape != g.shape:
            diffs.append("shape")
        if not all(math.isclose(a, b, rel_tol=0, abs_tol=1e-6 * max(ref.res))
                   for a, b in zip(ref.bounds, g.bounds, strict=True)):
            diffs.append("bounds")
        raise GridMismatchError(
            f"rasters are not on the same grid (differ in {', '.join(diffs) or 'transform'}):\n"
            f"  {ref_name}: {ref.describe()}\n"
            f"  {name}: {g.describe()}\n",
            hint=f"Fix: pass align='{ref_name}' (or another reference) to resample onto one "
                 f"grid explicitly, or align beforehand with glacierkit.io.align(...).",
            cli_hint=f"Fix: pass --align to resample onto the {ref_name} grid explicitly, or "
                     f"resample the files onto one grid beforehand (e.g. gdalwarp).",
        )
