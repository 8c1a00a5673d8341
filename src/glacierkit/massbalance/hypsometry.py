"""Glacier hypsometry: how a glacier's area is distributed over elevation bands.

A :class:`Hypsometry` holds band edges (m a.s.l.) and the glacier area in each band (km²);
area is taken as uniformly distributed with elevation inside a band, so the area above any
altitude is piecewise linear. Sources:

* :meth:`Hypsometry.from_rgi_csv` — RGI ``*_hypso.csv`` tables (total ``Area`` in km² and the
  per-mille share of each band; band labels are band centres, e.g. ``25, 75, …`` for 50 m bands).
* :func:`hypsometry_from_dem` — a DEM and glacier outlines. Pixel areas are exact ground areas:
  constant for a projected CRS, per row on the WGS84 ellipsoid for a geographic CRS (logged);
  the DEM is never resampled.
* :meth:`Hypsometry.uniform` — a synthetic glacier with the same area in every band (a glacier
  of constant width on a constant slope).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pyproj import CRS as ProjCRS
from pyproj import Geod

from glacierkit.errors import CRSError, DatasetNotFoundError, InputError
from glacierkit.io.grid import Grid

log = logging.getLogger(__name__)

_DIVIDE = re.compile(r"_d\d+$")


@dataclass(frozen=True)
class Hypsometry:
    """Glacier area per elevation band.

    Attributes:
        lower_m: Lower band edges, shape ``(n,)``, m a.s.l., increasing.
        upper_m: Upper band edges, shape ``(n,)``, m; ``upper_m[i] > lower_m[i]``.
        area_km2: Glacier area in each band, shape ``(n,)``, km², ≥ 0.
        source: Where it came from (free text, for reports).
        glacier_id: Identifier of the glacier, if known.
    """

    lower_m: np.ndarray
    upper_m: np.ndarray
    area_km2: np.ndarray
    source: str = ""
    glacier_id: str | None = None

    def __post_init__(self) -> None:
        lo = np.asarray(self.lower_m, dtype=float).ravel()
        hi = np.asarray(self.upper_m, dtype=float).ravel()
        a = np.asarray(self.area_km2, dtype=float).ravel()
        if not (lo.size == hi.size == a.size) or lo.size == 0:
            raise InputError(f"Hypsometry needs equally long, non-empty lower_m, upper_m and "
                             f"area_km2; got sizes {lo.size}, {hi.size}, {a.size}.")
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(np.isfinite(a))):
            raise InputError("Hypsometry band edges and areas must be finite.")
        if np.any(hi <= lo):
            raise InputError("every band needs upper_m > lower_m.")
        if np.any(np.diff(lo) <= 0) or np.any(lo[1:] < hi[:-1] - 1e-9):
            raise InputError("Hypsometry bands must be sorted by elevation and not overlap.")
        if np.any(a < 0) or a.sum() <= 0:
            raise InputError("Hypsometry band areas must be ≥ 0 with a positive total.")
        object.__setattr__(self, "lower_m", lo)
        object.__setattr__(self, "upper_m", hi)
        object.__setattr__(self, "area_km2", a)

    # ------------------------------------------------------------------ properties
    @property
    def total_km2(self) -> float:
        """Total glacier area (km²)."""
        return float(self.area_km2.sum())

    @property
    def centres_m(self) -> np.ndarray:
        """Band centres (m), shape ``(n,)``."""
        return 0.5 * (self.lower_m + self.upper_m)

    @property
    def z_min_m(self) -> float:
        """Lowest edge of the lowest band holding area (m)."""
        return float(self.lower_m[np.flatnonzero(self.area_km2 > 0)[0]])

    @property
    def z_max_m(self) -> float:
        """Highest edge of the highest band holding area (m)."""
        return float(self.upper_m[np.flatnonzero(self.area_km2 > 0)[-1]])

    # ------------------------------------------------------------------ queries
    def area_above(self, z_m: float) -> float:
        """Glacier area above altitude ``z_m`` (km²), uniform within each band."""
        frac = np.clip((self.upper_m - z_m) / (self.upper_m - self.lower_m), 0.0, 1.0)
        return float(np.sum(self.area_km2 * frac))

    def aar_from_ela(self, ela_m: float) -> float:
        """Accumulation-area ratio for an equilibrium line at ``ela_m`` (area above / total).

        NaN for a NaN ELA.
        """
        if not np.isfinite(ela_m):
            return float("nan")
        return self.area_above(float(ela_m)) / self.total_km2

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"glacier_id": self.glacier_id, "source": self.source,
                "total_km2": self.total_km2, "lower_m": self.lower_m.tolist(),
                "upper_m": self.upper_m.tolist(), "area_km2": self.area_km2.tolist()}

    # ------------------------------------------------------------------ constructors
    @classmethod
    def uniform(cls, z_min_m: float, z_max_m: float, area_km2: float, *,
                band_m: float = 50.0, glacier_id: str | None = None) -> Hypsometry:
        """A synthetic glacier with its area spread evenly from ``z_min_m`` to ``z_max_m``.

        The last band is shortened to end exactly at ``z_max_m``; areas are proportional to
        band height, so the area above any altitude is exactly linear in it.
        """
        if not z_max_m > z_min_m or band_m <= 0 or area_km2 <= 0:
            raise InputError("uniform hypsometry needs z_max_m > z_min_m, band_m > 0 and "
                             "area_km2 > 0.")
        edges = np.arange(z_min_m, z_max_m, band_m, dtype=float)
        edges = np.append(edges, z_max_m)
        h = np.diff(edges)
        return cls(edges[:-1], edges[1:], area_km2 * h / h.sum(), source="uniform (synthetic)",
                   glacier_id=glacier_id)

    @classmethod
    def from_rgi_csv(cls, path: str | os.PathLike[str], rgi_id: str | None = None
                     ) -> Hypsometry:
        """Read one glacier from an RGI hypsometry CSV.

        Args:
            path: RGI ``*_hypso.csv`` (columns ``RGIId, GLIMSId, Area`` then one column per
                band, labelled by its centre in m; values in per mille of ``Area``).
            rgi_id: Which glacier (default: the file must hold exactly one).

        Raises:
            DatasetNotFoundError: the file does not exist.
            InputError: no such glacier, several glaciers and no ``rgi_id``, or the band
                labels are not evenly spaced.
        """
        table = read_rgi_hypsometry(path)
        if rgi_id is None:
            if len(table) != 1:
                raise InputError(f"{path} holds {len(table)} glaciers.",
                                 hint=f"Pass rgi_id= (one of {', '.join(list(table)[:5])} ...).")
            return next(iter(table.values()))
        key = _DIVIDE.sub("", rgi_id.strip())
        if key not in table:
            raise InputError(f"{rgi_id!r} is not in {path}; it holds "
                             f"{', '.join(list(table)[:5])}{' ...' if len(table) > 5 else ''}.")
        return table[key]


def read_rgi_hypsometry(path: str | os.PathLike[str]) -> dict[str, Hypsometry]:
    """Read every glacier of an RGI hypsometry CSV: ``{RGIId: Hypsometry}``.

    Band labels are centres (``25, 75, …`` for 50 m bands); the band width is their spacing.
    Per-mille shares are normalised by their sum (RGI rounds them to integers; a sum other
    than 1000 is logged) and multiplied by ``Area`` (km²). Rows with ``Area`` ≤ 0 or all-zero
    shares are skipped (logged).
    """
    p = Path(path)
    if not p.exists():
        raise DatasetNotFoundError(f"hypsometry table {p} does not exist.")
    raw = pd.read_csv(p, skipinitialspace=True)
    raw.columns = [str(c).strip() for c in raw.columns]
    if "RGIId" not in raw.columns or "Area" not in raw.columns:
        raise InputError(f"{p} is not an RGI hypsometry table (needs RGIId, Area and band "
                         f"columns).")
    bands = []
    for c in raw.columns:
        try:
            bands.append((c, float(c)))
        except ValueError:
            continue
    if len(bands) < 2:
        raise InputError(f"{p} has fewer than two band columns.")
    centres = np.array([b for _, b in bands])
    step = np.diff(centres)
    if not np.allclose(step, step[0]):
        raise InputError(f"{p}: band centres are not evenly spaced ({np.unique(step)[:5]}).")
    half = step[0] / 2
    out = {}
    for _, row in raw.iterrows():
        rid = str(row["RGIId"]).strip()
        area = float(row["Area"])
        share = np.array([float(row[c]) for c, _ in bands])
        share = np.where(np.isfinite(share) & (share > 0), share, 0.0)
        if area <= 0 or share.sum() <= 0:
            log.info("%s: %s has no area or no band shares; skipped", p.name, rid)
            continue
        if abs(share.sum() - 1000) > 0.5:
            log.info("%s: %s band shares sum to %g ‰, normalised to 1000 ‰", p.name, rid,
                     share.sum())
        keep = share > 0
        out[rid] = Hypsometry(centres[keep] - half, centres[keep] + half,
                              area * share[keep] / share.sum(), source=f"RGI table {p.name}",
                              glacier_id=rid)
    return out


# ----------------------------------------------------------------------------- pixel areas
def pixel_areas_m2(grid: Grid) -> np.ndarray:
    """Ground area of the pixels of each row, shape ``(rows, 1)`` (broadcasts over columns), m².

    Projected CRS: ``|det(transform)|`` × (metres per CRS unit)². Geographic CRS: the area of
    one pixel of each row on the WGS84 ellipsoid (exact for a north-up grid; logged).

    Raises:
        CRSError: the grid is not georeferenced, or geographic but rotated.
    """
    if grid.crs is None:
        raise CRSError("pixel areas need a georeferenced grid (a CRS).")
    pc = ProjCRS.from_user_input(grid.crs.to_wkt())
    rows = grid.height
    if not pc.is_geographic:
        unit = float(pc.axis_info[0].unit_conversion_factor) if pc.axis_info else 1.0
        return np.full((rows, 1), abs(grid.transform.determinant) * unit * unit)
    if not grid.is_north_up:
        raise CRSError("per-row geodesic pixel areas need a north-up geographic grid; "
                       "reproject the raster to an equal-area CRS first.")
    log.info("geographic grid (%s): pixel areas computed per row on the WGS84 ellipsoid",
             grid.crs.to_string()[:40])
    t = grid.transform
    dlon = abs(t.a)
    geod = Geod(ellps="WGS84")
    out = np.empty((rows, 1))
    for r in range(rows):
        y0 = t.f + r * t.e
        y1 = y0 + t.e
        area, _ = geod.polygon_area_perimeter([0.0, dlon, dlon, 0.0], [y0, y0, y1, y1])
        out[r, 0] = abs(area)
    return out


# ----------------------------------------------------------------------------- from DEM
def hypsometry_from_elevations(z_m: np.ndarray, area_m2: np.ndarray | float, *,
                               band_m: float = 50.0, glacier_id: str | None = None,
                               source: str = "") -> Hypsometry:
    """Bin glacier pixels by elevation into bands ``[k·band_m, (k+1)·band_m)``.

    Args:
        z_m: Elevations of the glacier pixels (m), any shape; NaNs are ignored.
        area_m2: Ground area of each pixel (m²), same shape or scalar.
        band_m: Band height (m).

    Raises:
        InputError: no finite elevation.
    """
    z = np.asarray(z_m, dtype=float).ravel()
    a = np.broadcast_to(np.asarray(area_m2, dtype=float), np.shape(z_m)).ravel()
    ok = np.isfinite(z)
    if not ok.any():
        raise InputError(f"glacier {glacier_id}: no finite DEM elevation inside the outline.")
    z, a = z[ok], a[ok]
    k = np.floor(z / band_m).astype(int)
    k0 = int(k.min())
    sums = np.bincount(k - k0, weights=a)
    keep = sums > 0
    lower = (np.arange(sums.size) + k0)[keep] * band_m
    return Hypsometry(lower, lower + band_m, sums[keep] / 1e6, source=source,
                      glacier_id=glacier_id)


def hypsometry_from_dem(dem: str | os.PathLike[str], outlines: str | os.PathLike[str], *,
                        id_field: str | None = "RGIId", band_m: float = 50.0,
                        merge_divides: bool = True) -> dict[str, Hypsometry]:
    """Hypsometry of every outline from a DEM: ``{glacier_id: Hypsometry}``.

    Pixels whose centre lies inside an outline count for that glacier (outlines are
    reprojected to the DEM's CRS, logged; the DEM is never resampled). Pixel areas come from
    :func:`pixel_areas_m2` (geodesic per row for a geographic DEM). DEM nodata inside an outline
    is left out and logged.

    Args:
        dem: DEM GeoTIFF (m a.s.l.).
        outlines: Glacier outlines (any vector format with a CRS).
        id_field: Attribute with the glacier id (default ``RGIId``); ``None`` uses the row
            number.
        band_m: Band height (m).
        merge_divides: Merge RGI divides (``RGI50-11.00719_d01``, ``_d02``) into one glacier
            under the id without the ``_dNN`` suffix (logged).

    Raises:
        InputError: ``id_field`` is not an attribute of the outlines.
    """
    from glacierkit.io.raster import open_raster
    from glacierkit.io.vector import rasterize, read_vector, to_grid_crs

    d = open_raster(dem, bands=[1])
    gdf = read_vector(outlines)
    if id_field is not None and id_field not in gdf.columns:
        raise InputError(f"id_field {id_field!r} is not an attribute of {outlines}; attributes: "
                         f"{', '.join(c for c in gdf.columns if c != 'geometry')}.")
    ids = (gdf[id_field].astype(str).str.strip() if id_field is not None
           else pd.Series([str(i) for i in range(len(gdf))], index=gdf.index))
    if merge_divides:
        merged = ids.str.replace(_DIVIDE, "", regex=True)
        n_div = int((merged != ids).sum())
        if n_div:
            log.info("merging %d glacier divide(s) into their parent glacier (%s)", n_div,
                     ", ".join(sorted(set(merged[merged != ids]))))
        ids = merged
    gdf = to_grid_crs(gdf, d.grid, name=str(outlines))
    areas = pixel_areas_m2(d.grid)
    z = d.data[0]
    out = {}
    for gid in dict.fromkeys(ids):
        sub = gdf[(ids == gid).to_numpy()]
        mask = rasterize(sub, d.grid, name=f"outline {gid}").astype(bool)
        if not mask.any():
            log.warning("outline %s covers no DEM pixel centre; skipped", gid)
            continue
        void = int(np.count_nonzero(mask & ~np.isfinite(z)))
        if void:
            log.info("glacier %s: %d DEM nodata pixel(s) inside the outline left out", gid,
                     void)
        rr, _ = np.nonzero(mask)
        out[gid] = hypsometry_from_elevations(z[mask], areas[rr, 0], band_m=band_m,
                                              glacier_id=gid,
                                              source=f"DEM {Path(dem).name} + "
                                                     f"{Path(outlines).name}")
    return out
