"""In-situ GPS velocities: read them, bring them onto a velocity map, compare.

Two CSV layouts are understood (:func:`gps_table`):

* **Positions** (GLAFT's Kaskawulsh files, ``Kaskawulsh_<date1>_to_<date2>_GPS.csv``): one row
  per station with ``date1, date2, start_easting, start_northing, end_easting, end_northing``;
  ``start_*`` is the position at ``date1`` and ``end_*`` at ``date2`` (in those files ``date1``
  is the *later* date). The velocity is ``(position at the later date − position at the
  earlier date) / days between them`` in m/day, east and north; the station is placed at its
  position on the *earlier* date (``position="first"``, the reference image's date, as GLAFT's
  ``extract_gnss-pos_velocity`` notebook does). A station with a missing position has no
  velocity (NaN) and is reported but not compared.
* **Velocities**: columns ``x``/``y`` (or ``easting``/``northing``, or ``lon``/``lat`` in
  degrees, WGS 84) and ``vx``/``vy`` (east, north), with the units in the column name, e.g.
  ``vx (m/d)`` or ``vx (m/yr)``, or given as ``units=``.

Coordinates without a CRS are taken to be in the velocity map's CRS, and every station must
then lie inside the map, else :class:`~glacierkit.errors.CRSError` asks for ``crs=``;
``lon``/``lat`` columns are EPSG:4326. Stations are reprojected to the map's CRS when their
CRS differs (vectors may be reprojected; the map never is).

:func:`compare_gps` samples the map at each station — the pixel that contains the station
(nearest neighbour, as ``rasterio.sample``), or the NaN-mean of a ``window_px`` square around
it — and reports per-station differences ``map − GPS`` and their RMSE.
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pyproj import CRS as ProjCRS
from pyproj import Transformer

from glacierkit.errors import CRSError, DatasetNotFoundError, InputError
from glacierkit.io.grid import Grid
from glacierkit.velocity.field import DAYS_PER_YEAR
from glacierkit.velocity.quality import canonical_units

log = logging.getLogger(__name__)

Position = Literal["first", "second", "mid"]

_POSITION_COLS = ("date1", "date2", "start_easting", "start_northing", "end_easting",
                  "end_northing")
_ALIASES = {
    "x": ("x", "easting", "east"),
    "y": ("y", "northing", "north"),
    "lon": ("lon", "longitude", "long"),
    "lat": ("lat", "latitude"),
    "vx": ("vx", "v_x", "ve", "v_east", "velocity_east"),
    "vy": ("vy", "v_y", "vn", "v_north", "velocity_north"),
    "station": ("station", "name", "site", "id", "station_id"),
}
_UNIT_RE = re.compile(r"^\s*([^()\[\]]+?)\s*[\(\[]\s*([^()\[\]]+?)\s*[\)\]]\s*$")


def _split_unit(col: str) -> tuple[str, str | None]:
    m = _UNIT_RE.match(str(col))
    if m:
        return m.group(1).strip().lower(), m.group(2).strip()
    return str(col).strip().lower(), None


def _find(cols: dict[str, tuple[str, str | None]], key: str) -> str | None:
    for orig, (base, _) in cols.items():
        if base in _ALIASES[key]:
            return orig
    return None


def _station_names(df: pd.DataFrame, cols: dict[str, tuple[str, str | None]]) -> list[str]:
    c = _find(cols, "station")
    if c is None:
        unnamed = [k for k in df.columns if str(k).startswith("Unnamed") or str(k) == ""]
        c = unnamed[0] if unnamed else None
    values = df[c] if c is not None else pd.Series(range(len(df)), index=df.index)
    return [str(v) for v in values]


def _convert(v: np.ndarray, src: str, dst: str) -> np.ndarray:
    if src == dst:
        return v
    return v * DAYS_PER_YEAR if (src, dst) == ("m/day", "m/yr") else v / DAYS_PER_YEAR


def _from_positions(df: pd.DataFrame, position: Position) -> pd.DataFrame:
    d1 = pd.to_datetime(df["date1"])
    d2 = pd.to_datetime(df["date2"])
    days = (d1 - d2).dt.total_seconds().to_numpy() / 86400.0
    if np.any(days == 0):
        raise InputError("GPS rows with date1 == date2: no time separation to compute a "
                         "velocity from positions.")
    e1, n1 = df["start_easting"].to_numpy(float), df["start_northing"].to_numpy(float)
    e2, n2 = df["end_easting"].to_numpy(float), df["end_northing"].to_numpy(float)
    # Velocity from the earlier to the later position; (p1 − p2) / (t1 − t2) either way.
    vx, vy = (e1 - e2) / days, (n1 - n2) / days
    later_is_1 = days > 0
    ef, nf = np.where(later_is_1, e2, e1), np.where(later_is_1, n2, n1)   # earlier position
    es, ns = np.where(later_is_1, e1, e2), np.where(later_is_1, n1, n2)   # later position
    if position == "first":
        x, y = ef, nf
    elif position == "second":
        x, y = es, ns
    else:
        x, y = 0.5 * (ef + es), 0.5 * (nf + ns)
    first = np.where(later_is_1, d2, d1)
    second = np.where(later_is_1, d1, d2)
    return pd.DataFrame({"x": x, "y": y, "vx": vx, "vy": vy,
                         "date_first": pd.to_datetime(first).strftime("%Y-%m-%d"),
                         "date_second": pd.to_datetime(second).strftime("%Y-%m-%d"),
                         "dt_days": np.abs(days)})


def gps_table(df: pd.DataFrame, *, crs: Any = None, units: str | None = None,
              position: Position = "first") -> pd.DataFrame:
    """Normalise a GPS table (either layout, see the module docstring).

    Args:
        df: The table as read from a CSV.
        crs: CRS of projected coordinates (EPSG code, WKT, ...). Default: none stated (the
            map's CRS is assumed and checked later); ``lon``/``lat`` columns are EPSG:4326.
        units: Units of unlabelled ``vx``/``vy`` columns (``m/day`` or ``m/yr``). Positions
            tables are always m/day.
        position: Where a positions-table station is placed: its position on the earlier
            (``first``, default) or later (``second``) date, or the midpoint (``mid``).

    Returns:
        A DataFrame with columns ``station, x, y, vx, vy, speed`` (plus ``date_first``,
        ``date_second``, ``dt_days`` for positions tables), and ``attrs`` ``units`` (canonical
        ``"m/day"`` or ``"m/yr"``), ``crs`` (a string or None) and ``layout``.

    Raises:
        InputError: the columns match neither layout, units are missing, or ``position`` is
            unknown.
    """
    if position not in ("first", "second", "mid"):
        raise InputError(f"position must be 'first', 'second' or 'mid'; got {position!r}.")
    if len(df) == 0:
        raise InputError("the GPS table has no rows.")
    cols = {c: _split_unit(c) for c in df.columns}
    bases = {b for b, _ in cols.values()}
    stations = _station_names(df, cols)
    if all(c in bases for c in _POSITION_COLS):
        renamed = df.rename(columns={c: b for c, (b, _) in cols.items()})
        out = _from_positions(renamed, position)
        out_units, layout, out_crs = "m/day", "positions", crs
    else:
        cvx, cvy = _find(cols, "vx"), _find(cols, "vy")
        cx, cy = _find(cols, "x"), _find(cols, "y")
        clon, clat = _find(cols, "lon"), _find(cols, "lat")
        if cvx is None or cvy is None or not ((cx and cy) or (clon and clat)):
            raise InputError(
                f"GPS table columns {list(df.columns)} match neither layout: expected "
                f"{', '.join(_POSITION_COLS)} (positions), or x/y (easting/northing, lon/lat) "
                f"with vx/vy (velocities).")
        col_units = {cols[cvx][1], cols[cvy][1]} - {None}
        if len(col_units) > 1:
            raise InputError(f"vx and vy columns have different units: {sorted(col_units)}.")
        label = col_units.pop() if col_units else units
        if label is None:
            raise InputError("the GPS vx/vy columns carry no units (e.g. 'vx (m/d)').",
                             hint="Pass units='m/day' or 'm/yr'.",
                             cli_hint="Pass --gps-units m/day or --gps-units m/yr.")
        out_units = canonical_units(label)
        if cx and cy:
            xs, ys, out_crs = df[cx].to_numpy(float), df[cy].to_numpy(float), crs
        else:
            xs, ys, out_crs = df[clon].to_numpy(float), df[clat].to_numpy(float), "EPSG:4326"
        out = pd.DataFrame({"x": xs, "y": ys, "vx": df[cvx].to_numpy(float),
                            "vy": df[cvy].to_numpy(float)})
        layout = "velocities"
    out.insert(0, "station", stations)
    out["speed"] = np.hypot(out["vx"], out["vy"])
    try:
        crs_wkt = None if out_crs is None else ProjCRS.from_user_input(out_crs).to_wkt()
    except Exception as e:  # pyproj raises its own CRSError
        raise CRSError(f"the GPS coordinates' CRS {out_crs!r} is not a CRS that PROJ "
                       f"understands ({e}).",
                       hint="Pass crs= as an EPSG code (e.g. 'EPSG:32607') or WKT.",
                       cli_hint="Pass --gps-crs as an EPSG code (e.g. EPSG:32607) or WKT.",
                       ) from e
    out.attrs.update(units=out_units, layout=layout, crs=crs_wkt)
    return out


def read_gps_csv(path: str | os.PathLike[str], *, crs: Any = None, units: str | None = None,
                 position: Position = "first") -> pd.DataFrame:
    """Read a GPS CSV and normalise it with :func:`gps_table` (arguments as there).

    Raises:
        DatasetNotFoundError: the file does not exist.
        InputError: the file is not a CSV of either layout.
    """
    p = Path(path)
    if not p.exists():
        raise DatasetNotFoundError(f"GPS file {p} does not exist.")
    try:
        df = pd.read_csv(p)
    except Exception as e:  # pandas raises several parser errors
        raise InputError(f"cannot read {p} as CSV: {e}") from e
    out = gps_table(df, crs=crs, units=units, position=position)
    out.attrs["source"] = str(p)
    return out


def _to_grid_crs(gps: pd.DataFrame, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    x, y = gps["x"].to_numpy(float), gps["y"].to_numpy(float)
    src = gps.attrs.get("crs")
    if src is None:
        left, bottom, right, top = grid.bounds
        ok = np.isfinite(x) & np.isfinite(y)
        inside = (x >= left) & (x <= right) & (y >= bottom) & (y <= top)
        if not np.all(inside[ok]):
            raise CRSError(
                f"GPS coordinates have no CRS, so they are taken in the map's CRS, but "
                f"{int((~inside & ok).sum())} of {int(ok.sum())} stations fall outside the map "
                f"(x {np.nanmin(x):.1f}..{np.nanmax(x):.1f}, y {np.nanmin(y):.1f}.."
                f"{np.nanmax(y):.1f}; map bounds {tuple(round(v, 1) for v in grid.bounds)}).",
                hint="Pass the coordinates' CRS (crs=).",
                cli_hint="Pass the coordinates' CRS (--gps-crs).")
        return x, y
    if grid.crs is None:
        raise CRSError("the GPS coordinates have a CRS but the velocity map is not "
                       "georeferenced.")
    dst = ProjCRS.from_user_input(grid.crs.to_wkt())
    s = ProjCRS.from_user_input(src)
    if s == dst:
        return x, y
    log.info("reprojecting %d GPS stations to the map CRS", len(x))
    tx, ty = Transformer.from_crs(s, dst, always_xy=True).transform(x, y)
    return np.asarray(tx, dtype=float), np.asarray(ty, dtype=float)


@dataclass(frozen=True)
class GPSComparison:
    """Map-versus-GPS comparison (all velocities in ``units``).

    Attributes:
        table: One row per station: ``station, x, y`` (map CRS), ``row, col`` (pixel
            containing the station, −1 outside), ``map_vx, map_vy, map_speed``,
            ``gps_vx, gps_vy, gps_speed``, ``d_vx, d_vy, d_speed`` (map − GPS) and ``status``
            (``ok``, ``outside map``, ``map nodata``, ``no GPS velocity``).
        n: Stations compared (status ``ok``).
        rmse_vx: ``sqrt(mean(d_vx²))`` over compared stations (NaN when none).
        rmse_vy: The same for ``vy``.
        rmse_speed: The same for the speed difference.
        mean_d_vx: Mean difference (bias) in ``vx``.
        mean_d_vy: Mean difference in ``vy``.
        mean_d_speed: Mean speed difference.
        units: Velocity units.
        bias_removed: ``(bx, by)`` subtracted from the map before comparing.
        window_px: Sampling window (1 = the pixel containing the station).
    """

    table: pd.DataFrame
    n: int
    rmse_vx: float
    rmse_vy: float
    rmse_speed: float
    mean_d_vx: float
    mean_d_vy: float
    mean_d_speed: float
    units: str
    bias_removed: tuple[float, float] = (0.0, 0.0)
    window_px: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


def _sample(arr: np.ndarray, rows: np.ndarray, cols: np.ndarray, window_px: int) -> np.ndarray:
    out = np.full(rows.size, np.nan)
    r = window_px // 2
    for i, (rr, cc) in enumerate(zip(rows, cols, strict=True)):
        if rr < 0:
            continue
        win = arr[max(rr - r, 0):rr + r + 1, max(cc - r, 0):cc + r + 1]
        vals = win[np.isfinite(win)]
        if window_px == 1:
            out[i] = arr[rr, cc]
        elif vals.size:
            out[i] = float(vals.mean())
    return out


def compare_gps(vx: Any, vy: Any, grid: Grid, gps: pd.DataFrame, *, units: str,
                bias: tuple[float, float] = (0.0, 0.0), window_px: int = 1) -> GPSComparison:
    """Compare a velocity map with GPS station velocities.

    Args:
        vx: East component ``(rows, cols)`` on ``grid``, NaN = invalid, in ``units``.
        vy: North component, same shape.
        grid: Grid of the map.
        gps: A table from :func:`gps_table` / :func:`read_gps_csv` (its velocities are
            converted from ``gps.attrs["units"]`` to ``units``).
        units: Units of the map (``m/day`` or ``m/yr``).
        bias: ``(bx, by)`` subtracted from the map values first (e.g. the static-area KDE
            peak, as GLAFT's notebook does). Default: none.
        window_px: Odd sampling window: 1 = the pixel containing the station; 3 = the
            NaN-mean of the 3 × 3 pixels around it.

    Returns:
        A :class:`GPSComparison`.

    Raises:
        InputError: bad ``window_px`` or a table without the normalised columns.
        CRSError: coordinates without CRS that fall outside the map.
    """
    u = canonical_units(units)
    x_map, y_map = np.asarray(vx, dtype=float), np.asarray(vy, dtype=float)
    if x_map.shape != grid.shape or y_map.shape != grid.shape:
        raise InputError(f"vx {x_map.shape} / vy {y_map.shape} do not match the grid "
                         f"{grid.shape}.")
    if window_px < 1 or window_px % 2 == 0:
        raise InputError(f"window_px must be a positive odd integer; got {window_px}.")
    missing = {"station", "x", "y", "vx", "vy"} - set(gps.columns)
    if missing or "units" not in gps.attrs:
        raise InputError("gps must be a table from gps_table()/read_gps_csv() (columns "
                         "station, x, y, vx, vy and attrs['units']).")
    gu = canonical_units(gps.attrs["units"])
    x, y = _to_grid_crs(gps, grid)
    fr, fc = grid.rowcol(x, y)
    with np.errstate(invalid="ignore"):
        rows = np.floor(fr)
        cols = np.floor(fc)
    inside = (np.isfinite(rows) & np.isfinite(cols) & (rows >= 0) & (cols >= 0)
              & (rows < grid.height) & (cols < grid.width))
    rows = np.where(inside, rows, -1).astype(int)
    cols = np.where(inside, cols, -1).astype(int)
    mvx = _sample(x_map, rows, cols, window_px) - bias[0]
    mvy = _sample(y_map, rows, cols, window_px) - bias[1]
    gvx = _convert(gps["vx"].to_numpy(float), gu, u)
    gvy = _convert(gps["vy"].to_numpy(float), gu, u)
    gvalid = np.isfinite(gvx) & np.isfinite(gvy)
    mvalid = np.isfinite(mvx) & np.isfinite(mvy)
    status = np.where(~inside, "outside map",
                      np.where(~gvalid, "no GPS velocity", np.where(~mvalid, "map nodata", "ok")))
    table = pd.DataFrame({
        "station": gps["station"].astype(str).to_numpy(), "x": x, "y": y,
        "row": rows, "col": cols,
        "map_vx": mvx, "map_vy": mvy, "map_speed": np.hypot(mvx, mvy),
        "gps_vx": gvx, "gps_vy": gvy, "gps_speed": np.hypot(gvx, gvy),
    })
    table["d_vx"] = table["map_vx"] - table["gps_vx"]
    table["d_vy"] = table["map_vy"] - table["gps_vy"]
    table["d_speed"] = table["map_speed"] - table["gps_speed"]
    table["status"] = status
    ok = status == "ok"

    def rms(c: str) -> float:
        v = table.loc[ok, c].to_numpy(float)
        return float(np.sqrt(np.mean(v * v))) if v.size else math.nan

    def mean(c: str) -> float:
        v = table.loc[ok, c].to_numpy(float)
        return float(v.mean()) if v.size else math.nan

    extra = {k: gps[k].iloc[0] for k in ("date_first", "date_second") if k in gps.columns}
    return GPSComparison(table=table, n=int(ok.sum()), rmse_vx=rms("d_vx"), rmse_vy=rms("d_vy"),
                         rmse_speed=rms("d_speed"), mean_d_vx=mean("d_vx"),
                         mean_d_vy=mean("d_vy"), mean_d_speed=mean("d_speed"), units=u,
                         bias_removed=(float(bias[0]), float(bias[1])), window_px=window_px,
                         extra=extra)
