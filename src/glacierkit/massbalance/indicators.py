"""Mass-balance indicators per glacier and date: ELA, AAR and snowline altitude.

From **elevation-band balance profiles** (glaciological, e.g. WGMS):

* :func:`ela_from_profile` — the equilibrium-line altitude, where the band balance crosses
  zero, by linear interpolation between band centres. A profile that changes sign more than
  once gets the crossing that best separates negative bands below from positive bands above
  (most bands on the right side; ties → the lowest) and the flag ``"multiple_crossings"``.
  Entirely negative (positive) profiles put the ELA above (below) the measured bands: the ELA
  is NaN with the flag ``"above_profile"`` (``"below_profile"``) — a censored value, not an
  extrapolation.
* :func:`aar_from_profile` — the accumulation-area ratio: the share of the glacier area where
  the balance is positive, with the profile interpolated linearly between band centres (held
  constant beyond the outermost bands) and area uniform inside each hypsometry band, so a
  crossing inside a band splits it exactly.

From a **facies map** (:func:`facies_indicators`): per glacier outline, the share of the observed
glacier area covered by accumulation facies (snow, firn) and the snowline altitude.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from scipy import ndimage

from glacierkit.errors import InputError
from glacierkit.massbalance.hypsometry import Hypsometry, pixel_areas_m2
from glacierkit.massbalance.wgms import ProfileTable

log = logging.getLogger(__name__)

FACIES_CLASSES: tuple[str, ...] = ("ice", "snow", "firn", "debris", "superimposed_ice",
                                   "shadow", "cloud", "water")
"""Default facies vocabulary: class index → name (index = position)."""

FACIES_NODATA = 255
"""Default nodata value of a facies raster."""


# ----------------------------------------------------------------------------- profiles
@dataclass(frozen=True)
class ElaResult:
    """An ELA estimate: ``ela_m`` (m a.s.l., NaN when outside the profile) and a ``flag``.

    Flags: ``"ok"``, ``"multiple_crossings"``, ``"above_profile"`` (all bands negative),
    ``"below_profile"`` (all bands positive), ``"too_few_bands"`` (< 2 finite bands).
    """

    ela_m: float
    flag: str


def ela_from_profile(z_m: Sequence[float] | np.ndarray,
                     balance_m_we: Sequence[float] | np.ndarray, *,
                     outside: Literal["nan", "clip"] = "nan") -> ElaResult:
    """Equilibrium-line altitude from an elevation-band balance profile.

    Args:
        z_m: Band-centre elevations (m), shape ``(n,)``; any order.
        balance_m_we: Band balances, shape ``(n,)`` (any unit: only the sign and the linear
            interpolation matter). NaN bands are ignored.
        outside: For a profile of one sign: ``"nan"`` (default) returns NaN; ``"clip"``
            returns the highest (all negative) or lowest (all positive) band centre, a bound
            on the true ELA. The flag says which in both cases.

    Returns:
        An :class:`ElaResult` (see the module docstring for the rules).

    Raises:
        InputError: the arrays differ in length.
    """
    z, b = _clean_profile(z_m, balance_m_we)
    if z.size < 2:
        return ElaResult(float("nan"), "too_few_bands")
    pos = b > 0
    if outside not in ("nan", "clip"):
        raise InputError(f"outside must be 'nan' or 'clip'; got {outside!r}.")
    if not pos.any():
        return ElaResult(float(z[-1]) if outside == "clip" else float("nan"), "above_profile")
    if pos.all():
        return ElaResult(float(z[0]) if outside == "clip" else float("nan"), "below_profile")
    idx = np.flatnonzero(pos[1:] != pos[:-1])
    cands = z[idx] + (z[idx + 1] - z[idx]) * (0.0 - b[idx]) / (b[idx + 1] - b[idx])
    if cands.size == 1:
        return ElaResult(float(cands[0]), "ok")
    # Score: bands on the right side (≤ 0 below the candidate, > 0 above it).
    scores = [int(np.sum(~pos[z < c]) + np.sum(pos[z > c])) for c in cands]
    best = int(np.argmax(scores))  # first maximum = lowest candidate among ties
    return ElaResult(float(cands[best]), "multiple_crossings")


def _clean_profile(z_m: Sequence[float] | np.ndarray, balance_m_we: Sequence[float] | np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``(z, b)`` of a balance profile: finite bands only, sorted by elevation (stable).

    Raises:
        InputError: the arrays differ in length.
    """
    z = np.asarray(z_m, dtype=float).ravel()
    b = np.asarray(balance_m_we, dtype=float).ravel()
    if z.shape != b.shape:
        raise InputError(f"z_m and balance_m_we differ in length ({z.size} vs {b.size}).")
    ok = np.isfinite(z) & np.isfinite(b)
    order = np.argsort(z[ok], kind="stable")
    return z[ok][order], b[ok][order]


def _positive_fraction(z: np.ndarray, b: np.ndarray, lo: float, hi: float) -> float:
    """Share of ``[lo, hi]`` where the piecewise-linear profile (constant beyond ends) > 0."""
    knots = z[(z > lo) & (z < hi)]
    pts = np.concatenate([[lo], knots, [hi]])
    vals = np.interp(pts, z, b)
    pos_len = 0.0
    for u, v, bu, bv in zip(pts[:-1], pts[1:], vals[:-1], vals[1:], strict=True):
        if bu > 0 and bv > 0:
            pos_len += v - u
        elif (bu > 0) != (bv > 0):
            zc = u + (v - u) * bu / (bu - bv)  # zero crossing
            pos_len += (v - zc) if bv > 0 else (zc - u)
    return pos_len / (hi - lo)


def aar_from_profile(z_m: Sequence[float] | np.ndarray, balance_m_we: Sequence[float] | np.ndarray,
                     hypsometry: Hypsometry) -> tuple[float, float]:
    """Accumulation-area ratio from a balance profile and the glacier's hypsometry.

    Args:
        z_m: Band-centre elevations of the profile (m), shape ``(n,)``.
        balance_m_we: Band balances, shape ``(n,)``; NaN bands are ignored.
        hypsometry: The glacier's area per elevation band.

    Returns:
        ``(aar, coverage)``: the area share (0–1) where the interpolated balance is > 0, and the
        share of the glacier area lying between the lowest and highest profile band centre
        (outside it the outermost band's balance is assumed). ``(nan, nan)`` with < 2 bands.
    """
    z, b = _clean_profile(z_m, balance_m_we)
    if z.size < 2:
        return float("nan"), float("nan")
    a = hypsometry.area_km2
    frac = np.array([_positive_fraction(z, b, lo, hi)
                     for lo, hi in zip(hypsometry.lower_m, hypsometry.upper_m, strict=True)])
    aar = float(np.sum(a * frac) / a.sum())
    inside = np.clip((np.minimum(hypsometry.upper_m, z[-1]) - np.maximum(hypsometry.lower_m, z[0]))
                     / (hypsometry.upper_m - hypsometry.lower_m), 0.0, 1.0)
    coverage = float(np.sum(a * inside) / a.sum())
    return aar, coverage


def profile_indicators(profiles: ProfileTable,
                       hypsometries: Mapping[str, Hypsometry] | None = None, *,
                       ela_outside: Literal["nan", "clip"] = "nan") -> pd.DataFrame:
    """ELA (and AAR where a hypsometry is given) for every glacier-year of a profile table.

    Args:
        profiles: Band balances (:func:`~glacierkit.massbalance.wgms.read_profiles`).
        hypsometries: ``{glacier_id: Hypsometry}`` (ids as in ``profiles``, e.g. WGMS ids as
            text); glaciers without one get NaN AAR.
        ela_outside: ELA of one-signed profiles (see :func:`ela_from_profile`).

    Returns:
        One row per glacier-year: ``glacier_id, year, n_bands, z_min_m, z_max_m, ela_m,
        ela_flag, aar, aar_coverage, hypsometry_source``.
    """
    hyps = dict(hypsometries or {})
    rows = []
    for gid, year, z, b in profiles.glacier_years():
        e = ela_from_profile(z, b, outside=ela_outside)
        h = hyps.get(gid)
        aar, cov = aar_from_profile(z, b, h) if h is not None else (float("nan"), float("nan"))
        rows.append({"glacier_id": gid, "year": year, "n_bands": int(z.size),
                     "z_min_m": float(z.min()), "z_max_m": float(z.max()), "ela_m": e.ela_m,
                     "ela_flag": e.flag, "aar": aar, "aar_coverage": cov,
                     "hypsometry_source": h.source if h is not None else None})
    cols = ["glacier_id", "year", "n_bands", "z_min_m", "z_max_m", "ela_m", "ela_flag", "aar",
            "aar_coverage", "hypsometry_source"]
    return pd.DataFrame(rows, columns=cols)


# ----------------------------------------------------------------------------- facies maps
def facies_class_names(tags: Mapping[str, str], band_description: str | None = None
                       ) -> tuple[str, ...]:
    """Class index → name of a facies raster.

    Read from the dataset tag ``CLASS_NAMES`` (a JSON list), else from the band description if
    it is a JSON list, else :data:`FACIES_CLASSES`.

    Raises:
        InputError: the tag is present but not a JSON list of strings.
    """
    for text, where in ((tags.get("CLASS_NAMES"), "tag CLASS_NAMES"),
                        (band_description, "band description")):
        if not text:
            continue
        try:
            names = json.loads(text)
        except json.JSONDecodeError as e:
            if where.startswith("tag"):
                raise InputError(f"facies raster {where} is not JSON ({text[:60]!r}): {e}") from e
            continue
        if isinstance(names, list) and all(isinstance(n, str) for n in names):
            return tuple(n.strip().lower() for n in names)
        if where.startswith("tag"):
            raise InputError(f"facies raster {where} must be a JSON list of class names; got "
                             f"{text[:60]!r}.")
    return FACIES_CLASSES


def _boundary_pixels(acc: np.ndarray, abl: np.ndarray) -> np.ndarray:
    """Pixels of ``acc`` with a 4-neighbour in ``abl`` and pixels of ``abl`` with one in ``acc``."""
    cross = ndimage.generate_binary_structure(2, 1)
    return (acc & ndimage.binary_dilation(abl, cross)) | (abl & ndimage.binary_dilation(acc, cross))


def facies_indicators(facies_path: str | os.PathLike[str], dem_path: str | os.PathLike[str],
                      outlines_path: str | os.PathLike[str], *,
                      accumulation: Sequence[str] = ("snow", "firn"),
                      obscured: Sequence[str] = ("shadow", "cloud"),
                      id_field: str | None = None, date: str | None = None) -> pd.DataFrame:
    """Accumulation-area proxy and snowline altitude per glacier from a facies map and a DEM.

    Inside each outline (pixels whose centre is inside; outlines reprojected to the raster CRS,
    logged), every pixel is one of: accumulation (``accumulation`` classes), obscured
    (``obscured`` classes), unobserved (nodata or a class index without a name), or other
    glacier surface (every other class: ice, debris, water, …). Areas are ground areas
    (geodesic per row for a geographic grid).

    * ``aar`` = accumulation area / observed area (accumulation + other glacier surface);
      obscured and unobserved pixels are excluded from the denominator.
    * ``observed_share`` = observed area / glacier area inside the raster.
    * ``snowline_altitude_m`` = median DEM elevation of the boundary pixels between
      accumulation and other glacier surface, taken on both sides of the boundary (accumulation
      pixels with a 4-neighbour of other surface, and vice versa), so that for a straight
      snowline between two rows it is the mean of the two rows' elevations. ``snowline_iqr_m``
      is the interquartile range of those elevations, ``snowline_n_px`` their number.

    Args:
        facies_path: uint8 facies raster; class names from the ``CLASS_NAMES`` tag (JSON list)
            or the band description, else :data:`FACIES_CLASSES`; nodata from the file, else 255.
        dem_path: DEM (m a.s.l.) on exactly the same grid as the facies raster.
        outlines_path: Glacier outlines (any CRS).
        accumulation: Class names counted as accumulation area.
        obscured: Class names that hide the surface.
        id_field: Outline attribute with the glacier id (default: ``RGIId`` if present, else
            the row number).
        date: Acquisition date to record in a ``date`` column (and ``year``), if given.

    Returns:
        One row per outline: ``glacier_id, area_km2, observed_share, accumulation_km2, aar,
        snowline_altitude_m, snowline_iqr_m, snowline_n_px, flag`` (+ ``date, year``). Flags:
        ``"ok"``, ``"no_observed_area"``, ``"no_accumulation"`` / ``"all_accumulation"`` (no
        boundary, snowline NaN), ``"outside_raster"``.

    Raises:
        GridMismatchError: the DEM is not on the facies grid (message says how to align).
        InputError: an accumulation/obscured name is not a class of the raster, or
            ``id_field`` is not an attribute of the outlines.
    """
    from glacierkit.io.grid import check_same_grid
    from glacierkit.io.raster import open_raster
    from glacierkit.io.vector import read_vector, to_grid_crs

    fac = open_raster(facies_path, bands=[1], as_float=False)
    dem = open_raster(dem_path, bands=[1])
    check_same_grid({"facies": fac.grid, "dem": dem.grid})
    names = facies_class_names(fac.tags, fac.band_names[0] if fac.band_names else None)
    unknown = [c for c in (*accumulation, *obscured) if c.lower() not in names]
    if unknown:
        raise InputError(f"class(es) {unknown} are not in the facies raster's classes "
                         f"{list(names)}; check accumulation=/obscured= or the CLASS_NAMES tag.")
    codes = fac.data[0].astype(np.int64)
    valid = fac.valid[0] & (codes >= 0) & (codes < len(names))
    if fac.nodata is None:
        valid &= codes != FACIES_NODATA
    idx = {n: i for i, n in enumerate(names)}
    acc_codes = [idx[c.lower()] for c in accumulation]
    obs_codes = [idx[c.lower()] for c in obscured]
    is_acc = valid & np.isin(codes, acc_codes)
    is_obscured = valid & np.isin(codes, obs_codes)
    is_other = valid & ~is_acc & ~is_obscured
    z = dem.data[0]
    px_area = np.broadcast_to(pixel_areas_m2(fac.grid), fac.grid.shape)

    gdf = read_vector(outlines_path)
    if id_field is None:
        id_field = "RGIId" if "RGIId" in gdf.columns else None
    elif id_field not in gdf.columns:
        raise InputError(f"id_field {id_field!r} is not an attribute of {outlines_path}; "
                         f"attributes: {', '.join(c for c in gdf.columns if c != 'geometry')}.")
    ids = (gdf[id_field].astype(str).str.strip().tolist() if id_field is not None
           else [str(i) for i in range(len(gdf))])
    gdf = to_grid_crs(gdf, fac.grid, name=str(outlines_path))
    from rasterio import features

    rows = []
    for gid, geom in zip(ids, gdf.geometry.values, strict=True):
        mask = (features.rasterize([(geom, 1)], out_shape=fac.grid.shape,
                                   transform=fac.grid.transform, fill=0, dtype="uint8")
                .astype(bool) if geom is not None and not geom.is_empty
                else np.zeros(fac.grid.shape, bool))
        row = {"glacier_id": gid, "area_km2": 0.0, "observed_share": np.nan,
               "accumulation_km2": np.nan, "aar": np.nan, "snowline_altitude_m": np.nan,
               "snowline_iqr_m": np.nan, "snowline_n_px": 0, "flag": "outside_raster"}
        if mask.any():
            glacier_m2 = float(px_area[mask].sum())
            acc = is_acc & mask
            other = is_other & mask
            acc_m2 = float(px_area[acc].sum())
            obs_m2 = acc_m2 + float(px_area[other].sum())
            row.update(area_km2=glacier_m2 / 1e6, observed_share=obs_m2 / glacier_m2,
                       accumulation_km2=acc_m2 / 1e6)
            if obs_m2 == 0:
                row["flag"] = "no_observed_area"
            else:
                row["aar"] = acc_m2 / obs_m2
                edge = _boundary_pixels(acc, other) & np.isfinite(z)
                if edge.any():
                    ze = z[edge]
                    q25, q50, q75 = np.percentile(ze, [25, 50, 75])
                    row.update(snowline_altitude_m=float(q50), snowline_iqr_m=float(q75 - q25),
                               snowline_n_px=int(edge.sum()), flag="ok")
                else:
                    row["flag"] = "no_accumulation" if acc_m2 == 0 else "all_accumulation"
        rows.append(row)
    out = pd.DataFrame(rows)
    if date is not None:
        ts = pd.Timestamp(date)
        out["date"] = ts.date().isoformat()
        out["year"] = ts.year
    log.info("facies indicators for %d outline(s) from %s", len(out), Path(facies_path).name)
    return out
