"""Conditioning vectors: region one-hot codes and latitude/longitude encodings.

Models take an optional conditioning vector ``cond`` of length ``cond_dim`` (see
``docs/design/dl.md``). Two kinds exist:

* ``"region"``: a one-hot code over the training regions plus a last *unknown* slot
  (``len(regions) + 1`` values). A scene without a region, or from a region not seen in
  training, gets the unknown slot.
* ``"coords"``: ``[sin(lat), cos(lat), sin(lon), cos(lon)]`` of the window centre, with
  latitude and longitude in **radians** on WGS 84 (4 values). The sin/cos pair keeps
  longitude continuous across the antimeridian.

Torch-free.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pyproj import Transformer
from rasterio.windows import Window

from glacierkit.errors import CRSError, InputError
from glacierkit.io.grid import Grid

CondKind = Literal["none", "region", "coords"]
COND_KINDS = ("none", "region", "coords")


def region_onehot(region: str | None, regions: Sequence[str]) -> np.ndarray:
    """One-hot region code with a trailing "unknown" slot.

    Args:
        region: The scene's region, or ``None``.
        regions: The known (training) regions, in a fixed order.

    Returns:
        float32 ``(len(regions) + 1,)``: 1 at the region's position, or at the last slot
        when ``region`` is ``None`` or not in ``regions``.
    """
    regions = list(regions)
    out = np.zeros(len(regions) + 1, dtype=np.float32)
    out[regions.index(region) if region in regions else len(regions)] = 1.0
    return out


@functools.lru_cache(maxsize=32)
def _to_lonlat(wkt: str) -> Transformer:
    return Transformer.from_crs(wkt, "EPSG:4326", always_xy=True)


def window_centre_lonlat(grid: Grid, window: Window | None = None) -> tuple[float, float]:
    """Longitude and latitude (degrees, WGS 84) of a pixel window's centre on ``grid``.

    Raises:
        CRSError: the grid is not georeferenced.
    """
    if grid.crs is None:
        raise CRSError("coordinate conditioning needs a georeferenced grid; this scene is on a "
                       "plain pixel grid (no CRS). Use cond kind 'none' or 'region'.")
    if window is None:
        window = Window(0, 0, grid.width, grid.height)
    col = float(window.col_off) + float(window.width) / 2
    row = float(window.row_off) + float(window.height) / 2
    x, y = grid.transform @ (col, row)
    lon, lat = _to_lonlat(grid.crs.to_wkt()).transform(x, y)
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise CRSError(f"the window centre ({x:.3f}, {y:.3f}) cannot be converted to "
                       f"longitude/latitude from {grid.describe()}.")
    return float(lon), float(lat)


def coords_encoding(grid: Grid, window: Window | None = None) -> np.ndarray:
    """``[sin(lat), cos(lat), sin(lon), cos(lon)]`` of a window centre, angles in radians.

    Args:
        grid: The scene grid (any CRS; the centre is converted to WGS 84 with pyproj).
        window: Pixel window on ``grid`` (default: the whole grid).

    Returns:
        float32 ``(4,)``.
    """
    lon, lat = window_centre_lonlat(grid, window)
    la, lo = math.radians(lat), math.radians(lon)
    return np.array([math.sin(la), math.cos(la), math.sin(lo), math.cos(lo)], dtype=np.float32)


@dataclass(frozen=True)
class CondSpec:
    """What conditioning vector a model takes.

    Args:
        kind: ``"none"`` (no vector, ``dim == 0``), ``"region"`` (one-hot over ``regions``
            plus unknown) or ``"coords"`` (sin/cos of latitude and longitude, radians).
        regions: Known region names (kind ``"region"`` only), in a fixed order.
    """

    kind: CondKind = "none"
    regions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in COND_KINDS:
            raise InputError(f"cond kind {self.kind!r} is not one of {list(COND_KINDS)}.")
        regions = tuple(str(r) for r in self.regions)
        object.__setattr__(self, "regions", regions)
        if len(set(regions)) != len(regions):
            raise InputError(f"cond regions must be unique; got {list(regions)}.")
        if self.kind == "region" and not regions:
            raise InputError("cond kind 'region' needs the list of training regions.")
        if self.kind != "region" and regions:
            raise InputError(f"cond regions only apply to kind 'region' (kind is "
                             f"{self.kind!r}).")

    @property
    def dim(self) -> int:
        """Length of the vector: 0, ``len(regions) + 1`` or 4."""
        return {"none": 0, "region": len(self.regions) + 1, "coords": 4}[self.kind]

    def vector(self, scene_or_grid: Any, window: Window | None = None,
               region: str | None = None) -> np.ndarray:
        """The conditioning vector of a window.

        Args:
            scene_or_grid: A :class:`~glacierkit.dl.sources.SceneStack` (its grid and region
                are used) or a :class:`~glacierkit.io.grid.Grid`.
            window: Pixel window (coords kind; default: the whole scene).
            region: Region name; overrides the scene's region (region kind).

        Returns:
            float32 ``(dim,)`` (an empty array for kind ``"none"``).
        """
        if self.kind == "none":
            return np.zeros(0, dtype=np.float32)
        grid = scene_or_grid if isinstance(scene_or_grid, Grid) else scene_or_grid.grid
        if self.kind == "region":
            reg = region if region is not None else getattr(scene_or_grid, "region", None)
            return region_onehot(reg, self.regions)
        return coords_encoding(grid, window)

    def unknown(self) -> np.ndarray:
        """The region vector of an unknown region (kind ``"region"`` only)."""
        if self.kind != "region":
            raise InputError(f"unknown() only applies to cond kind 'region' (kind is "
                             f"{self.kind!r}).")
        return region_onehot(None, self.regions)

    def to_dict(self) -> dict[str, Any]:
        """``{"kind": ..., "regions": [...]}`` (stored in the model file)."""
        return {"kind": self.kind, "regions": list(self.regions)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> CondSpec:
        """Rebuild from :meth:`to_dict` (``None`` → kind ``"none"``)."""
        if d is None:
            return cls()
        if "kind" not in d:
            raise InputError(f"serialised CondSpec needs 'kind'; got {dict(d)!r}.")
        return cls(kind=d["kind"], regions=tuple(d.get("regions", ())))
