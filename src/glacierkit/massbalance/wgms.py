"""Glaciological mass-balance tables (WGMS Fluctuations-of-Glaciers format) → tidy frames in m w.e.

Two kinds of table are read:

* **Glacier-wide balances** (:func:`read_mass_balance`): WGMS ``mbdata_WGMS-XXXXX.csv`` files
  (columns ``YEAR, WGMS_ID, POLITICAL_UNIT, NAME, AREA, WINTER_BALANCE, SUMMER_BALANCE,
  ANNUAL_BALANCE, REMARKS, RGI_ID``; balances in mm w.e., ``AREA`` in km²) or generic CSVs with
  a glacier identifier, a ``year`` and an annual-balance column.
* **Elevation-band profiles** (:func:`read_profiles`): WGMS ``profile_WGMS-XXXXX.csv`` files,
  whose first row holds the band elevations (m a.s.l.), whose first column holds the years and
  whose cells hold the annual balance of each band (mm w.e.).

Band labels are read as **band centres**: the 50 m bands of e.g. Hintereisferner are labelled
2425, 2475, … (the midpoints of WGMS's 2400–2450, 2450–2500, … m bands), and irregular labels
such as 412/437/462 or 2476 are midpoints of 25 m or irregular bands truncated to whole metres;
lower bounds would be multiples of the band width.

Units: every balance leaves this module in **m w.e.** The conversion is decided per file and
stated (:attr:`MassBalanceTable.units_notes`, and logged):

* ``units="mm"`` or ``"m"``: as given.
* ``units="auto"``: WGMS-format files are mm w.e. by the FoG convention. The magnitude of the
  values is checked: a glacier-wide annual balance is never more than ~5 m w.e. in magnitude
  and a band balance never more than ~20 m w.e., so a file whose largest |value| exceeds 20
  (glacier-wide) or 50 (bands) is in mm w.e., and one whose largest |value| is at most 5
  (glacier-wide) or 20 (bands) is in m w.e. A WGMS-format file whose ≥ 3 values all look like
  m w.e. is taken as m w.e. with a warning; a generic file in the ambiguous range between the
  two limits raises :class:`~glacierkit.errors.InputError` asking for ``units``.

Missing years are never filled: rows without an annual balance are dropped and every year
missing inside a glacier's record is listed in :attr:`MassBalanceTable.gaps`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from glacierkit.errors import DatasetNotFoundError, InputError

log = logging.getLogger(__name__)

Units = Literal["auto", "mm", "m"]

BALANCE_COLUMNS = ("annual_balance_m_we", "winter_balance_m_we", "summer_balance_m_we")
"""Balance columns of :attr:`MassBalanceTable.data` (m w.e.)."""

_WGMS_COLUMNS = {"YEAR", "WGMS_ID", "ANNUAL_BALANCE"}
_WGMS_FILE = re.compile(r"(?:mbdata|profile)_WGMS-(\d+)\.csv$", re.IGNORECASE)

# Largest |value| (in the table's own units) that is still plausible in m w.e. / already
# implausible in m w.e.: glacier-wide annual balances, then band balances.
_LIMITS = {"glacier": (5.0, 20.0), "band": (20.0, 50.0)}

# Generic-table column aliases (lower-case; first match wins).
_ID_ALIASES = ("glacier_id", "wgms_id", "rgi_id", "rgi60_id", "rgi50_id", "name", "glacier")
_YEAR_ALIASES = ("year", "hydrological_year", "hydro_year")
_ANNUAL_ALIASES = ("annual_balance", "annual_balance_m_we", "annual_balance_mm_we", "ba",
                   "balance", "mb")


@dataclass
class MassBalanceTable:
    """Glacier-wide mass balances, one row per glacier and year.

    Attributes:
        data: Columns ``glacier_id`` (str; the WGMS id as text for WGMS files), ``wgms_id``
            (nullable int), ``name``, ``rgi_id``, ``year`` (int, the hydrological year in which
            the balance year ends), ``area_km2``, ``annual_balance_m_we``,
            ``winter_balance_m_we``, ``summer_balance_m_we`` (m w.e.; NaN where absent) and
            ``source`` (file name). Rows without an annual balance are dropped.
        units_notes: One sentence per kind of unit decision, with the number of files.
        gaps: ``{glacier_id: [years]}``: years missing (or without annual balance) inside each
            glacier's first–last record year. Not filled.
        sources: Files read.
    """

    data: pd.DataFrame
    units_notes: list[str] = field(default_factory=list)
    gaps: dict[str, list[int]] = field(default_factory=dict)
    sources: list[Path] = field(default_factory=list)

    @property
    def n_glaciers(self) -> int:
        """Number of glaciers with at least one annual balance."""
        return int(self.data["glacier_id"].nunique())

    def gaps_summary(self) -> str:
        """``"N glacier(s) with M missing year(s) inside their record"`` (or ``"no gaps"``)."""
        if not self.gaps:
            return "no gaps"
        n = sum(len(v) for v in self.gaps.values())
        return f"{len(self.gaps)} glacier(s) with {n} missing year(s) inside their record"


@dataclass
class ProfileTable:
    """Elevation-band annual balances, one row per glacier, year and band.

    Attributes:
        data: Columns ``glacier_id`` (str), ``year`` (int), ``z_m`` (band centre, m a.s.l.)
            and ``balance_m_we`` (m w.e.); only finite balances.
        units_notes: As in :class:`MassBalanceTable`.
        empty: Files that held no band balance (WGMS ships a few nearly empty profiles).
        sources: Files read.
    """

    data: pd.DataFrame
    units_notes: list[str] = field(default_factory=list)
    empty: list[Path] = field(default_factory=list)
    sources: list[Path] = field(default_factory=list)

    def glacier_years(self) -> Iterable[tuple[str, int, np.ndarray, np.ndarray]]:
        """Yield ``(glacier_id, year, z_m, balance_m_we)`` with bands sorted by elevation."""
        d = self.data.sort_values(["glacier_id", "year", "z_m"], kind="stable")
        gid = d["glacier_id"].astype(str).to_numpy()
        year = d["year"].to_numpy(int)
        z, b = d["z_m"].to_numpy(float), d["balance_m_we"].to_numpy(float)
        if not gid.size:
            return
        new = np.flatnonzero((gid[1:] != gid[:-1]) | (year[1:] != year[:-1])) + 1
        starts = np.concatenate([[0], new])
        ends = np.concatenate([new, [gid.size]])
        for s, e in zip(starts, ends, strict=True):
            yield str(gid[s]), int(year[s]), z[s:e], b[s:e]


# ----------------------------------------------------------------------------- file listing
def _list_files(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                pattern: str) -> list[Path]:
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    if not items:
        raise InputError("give at least one table file or folder.")
    files: list[Path] = []
    for it in items:
        p = Path(it)
        if not p.exists():
            raise DatasetNotFoundError(f"mass-balance table {p} does not exist.")
        if p.is_dir():
            found = sorted(p.glob(pattern)) or sorted(p.glob("*.csv"))
            if not found:
                raise DatasetNotFoundError(f"folder {p} holds no {pattern} (nor any *.csv) file.")
            files.extend(found)
        else:
            files.append(p)
    return files


def _wgms_id_from_name(p: Path) -> int | None:
    m = _WGMS_FILE.search(p.name)
    return int(m.group(1)) if m else None


# ----------------------------------------------------------------------------- units
def detect_units(values: np.ndarray, *, kind: Literal["glacier", "band"] = "glacier",
                 convention: Literal["mm", "m"] | None = None, units: Units = "auto",
                 what: str = "table") -> tuple[Literal["mm", "m"], str]:
    """Decide whether balances are in mm w.e. or m w.e.

    Args:
        values: The table's balance values (any shape; NaNs ignored).
        kind: ``"glacier"`` for glacier-wide balances (plausible m w.e. ≤ 5 in magnitude),
            ``"band"`` for elevation-band balances (≤ 20).
        convention: The units the table's format prescribes (``"mm"`` for WGMS FoG), if any.
        units: ``"mm"`` / ``"m"`` to force, ``"auto"`` to decide.
        what: Name of the table in messages.

    Returns:
        ``(units, reason)``; ``reason`` is a short phrase for the notes.

    Raises:
        InputError: ``units="auto"``, no convention and the magnitude is ambiguous.
    """
    if units in ("mm", "m"):
        return units, "given"
    if units != "auto":
        raise InputError(f"units must be 'auto', 'mm' or 'm'; got {units!r}.")
    v = np.abs(np.asarray(values, dtype=float))
    v = v[np.isfinite(v)]
    lo, hi = _LIMITS[kind]
    vmax = float(v.max()) if v.size else float("nan")
    if convention is not None:
        if convention == "mm" and v.size >= 3 and vmax <= lo:
            log.warning("%s: format convention is mm w.e. but all %d values are ≤ %g in "
                        "magnitude: read as m w.e.; pass units='mm' if that is wrong.", what,
                        v.size, lo)
            return "m", f"values all ≤ {lo:g} in magnitude, read as m w.e. against the format " \
                        f"convention"
        return convention, f"{'WGMS FoG' if convention == 'mm' else 'format'} convention"
    if not v.size:
        return "m", "no values"
    if vmax > hi:
        return "mm", f"largest |value| {vmax:g} > {hi:g}, so mm w.e."
    if vmax <= lo:
        return "m", f"largest |value| {vmax:g} ≤ {lo:g}, so m w.e."
    raise InputError(
        f"{what}: cannot tell whether the balances are in mm or m w.e. (largest |value| "
        f"{vmax:g} lies between {lo:g} and {hi:g}).",
        hint="Pass units='mm' or units='m'.", cli_hint="Pass --units mm or --units m.",
    )


def _summarise_units(decisions: list[tuple[str, str]]) -> list[str]:
    counts: dict[tuple[str, str], int] = {}
    for d in decisions:
        counts[d] = counts.get(d, 0) + 1
    notes = []
    for (u, reason), n in counts.items():
        conv = "mm w.e. → m w.e. (÷ 1000)" if u == "mm" else "m w.e. (kept)"
        notes.append(f"{n} file(s): {conv}; {reason}")
    return notes


# ----------------------------------------------------------------------------- glacier-wide
def _find_column(df: pd.DataFrame, aliases: Sequence[str]) -> str | None:
    lower = {c.strip().lower(): c for c in df.columns}
    for a in aliases:
        if a in lower:
            return lower[a]
    return None


def _read_one_mb(p: Path, units: Units) -> tuple[pd.DataFrame, tuple[str, str]]:
    try:
        raw = pd.read_csv(p)
    except Exception as e:
        raise InputError(f"cannot read {p} as a CSV table: {e}") from e
    raw.columns = [str(c).strip() for c in raw.columns]
    if _WGMS_COLUMNS <= set(raw.columns):
        n = len(raw)

        def num(col: str) -> np.ndarray:
            if col not in raw.columns:
                return np.full(n, np.nan)
            return pd.to_numeric(raw[col], errors="coerce").to_numpy(float)

        bal = {c: pd.Series(num(c.upper())) for c in ("annual_balance", "winter_balance",
                                                       "summer_balance")}
        u, reason = detect_units(np.concatenate([b.to_numpy(float) for b in bal.values()]),
                                 kind="glacier", convention="mm", units=units, what=str(p))
        wid = num("WGMS_ID")
        df = pd.DataFrame({
            "wgms_id": wid,
            "name": raw["NAME"].to_numpy(object) if "NAME" in raw else np.full(n, None),
            "rgi_id": raw["RGI_ID"].to_numpy(object) if "RGI_ID" in raw else np.full(n, None),
            "year": num("YEAR"),
            "area_km2": num("AREA"),
            "glacier_id": [str(int(v)) if np.isfinite(v) else None for v in wid],
        })
    else:
        id_col = _find_column(raw, _ID_ALIASES)
        year_col = _find_column(raw, _YEAR_ALIASES)
        ann_col = _find_column(raw, _ANNUAL_ALIASES)
        missing = [n for n, c in (("glacier identifier", id_col), ("year", year_col),
                                  ("annual balance", ann_col)) if c is None]
        if missing:
            raise InputError(
                f"{p}: not a WGMS mbdata table (needs YEAR, WGMS_ID, ANNUAL_BALANCE) and no "
                f"{', '.join(missing)} column found; a generic table needs a glacier identifier "
                f"({'/'.join(_ID_ALIASES)}), a year ({'/'.join(_YEAR_ALIASES)}) and an annual "
                f"balance ({'/'.join(_ANNUAL_ALIASES)}) column.")
        cols = {"annual_balance": ann_col,
                "winter_balance": _find_column(raw, ("winter_balance", "bw")),
                "summer_balance": _find_column(raw, ("summer_balance", "bs"))}
        bal = {k: (pd.to_numeric(raw[c], errors="coerce") if c is not None else None)
               for k, c in cols.items()}
        conv = "m" if ann_col.lower().endswith("_m_we") else (
            "mm" if ann_col.lower().endswith("_mm_we") else None)
        u, reason = detect_units(np.concatenate([b.to_numpy(float) for b in bal.values()
                                                 if b is not None]),
                                 kind="glacier", convention=conv, units=units, what=str(p))
        ident = raw[id_col].astype("string").str.strip()
        wid = pd.to_numeric(raw[id_col], errors="coerce") if id_col.lower() in (
            "wgms_id", "glacier_id") else pd.Series(np.nan, index=raw.index)
        rgi_col = _find_column(raw, ("rgi_id", "rgi60_id", "rgi50_id"))
        name_col = _find_column(raw, ("name", "glacier"))
        df = pd.DataFrame({
            "wgms_id": wid.to_numpy(float) if wid.notna().all() else np.nan,
            "name": raw[name_col].astype("string") if name_col else pd.NA,
            "rgi_id": raw[rgi_col].astype("string") if rgi_col else pd.NA,
            "year": pd.to_numeric(raw[year_col], errors="coerce"),
            "area_km2": pd.to_numeric(raw[_find_column(raw, ("area_km2", "area"))],
                                      errors="coerce")
            if _find_column(raw, ("area_km2", "area")) else np.nan,
        })
        df["glacier_id"] = ident
    factor = 1e-3 if u == "mm" else 1.0
    for k in ("annual_balance", "winter_balance", "summer_balance"):
        b = bal.get(k)
        df[f"{k}_m_we"] = b.to_numpy(float) * factor if b is not None else np.nan
    df["source"] = p.name
    return df, (u, reason)


def _gaps(df: pd.DataFrame) -> dict[str, list[int]]:
    out = {}
    for gid, g in df.groupby("glacier_id", sort=True):
        years = set(int(y) for y in g["year"])
        full = set(range(min(years), max(years) + 1))
        missing = sorted(full - years)
        if missing:
            out[str(gid)] = missing
    return out


def read_mass_balance(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *,
                      units: Units = "auto") -> MassBalanceTable:
    """Read glacier-wide annual (and seasonal) balances into one tidy table in m w.e.

    Args:
        paths: One CSV, a folder (its ``mbdata_*.csv`` files, else all ``*.csv``), or a list of
            files/folders. WGMS ``mbdata`` tables and generic tables (a glacier identifier,
            ``year`` and an annual-balance column; see the module docstring) are accepted.
        units: ``"auto"`` (decide per file; see the module docstring), ``"mm"`` or ``"m"``.

    Returns:
        A :class:`MassBalanceTable` (balances in m w.e.; units decisions and gaps stated).

    Raises:
        DatasetNotFoundError: a path does not exist, or a folder holds no CSV.
        InputError: a table lacks the needed columns, holds conflicting duplicate glacier-years,
            holds no annual balance at all, or its units are ambiguous under ``"auto"``.
    """
    files = _list_files(paths, "mbdata_*.csv")
    frames, decisions = [], []
    for p in files:
        df, dec = _read_one_mb(p, units)
        frames.append(df)
        decisions.append(dec)
    data = pd.concat(frames, ignore_index=True)
    data["wgms_id"] = pd.to_numeric(data["wgms_id"], errors="coerce").round().astype("Int64")
    for c in ("glacier_id", "name", "rgi_id"):
        data[c] = data[c].astype("string")
    bad_year = data["year"].isna()
    if bad_year.any():
        log.warning("dropping %d row(s) without a valid year", int(bad_year.sum()))
        data = data[~bad_year]
    data["year"] = data["year"].astype(int)
    no_id = data["glacier_id"].isna() | (data["glacier_id"].str.len() == 0)
    if no_id.any():
        raise InputError(f"{int(no_id.sum())} row(s) have no glacier identifier "
                         f"(first in {data.loc[no_id, 'source'].iloc[0]}).")
    n_nan = int(data["annual_balance_m_we"].isna().sum())
    data = data[data["annual_balance_m_we"].notna()]
    if data.empty:
        raise InputError(f"no annual balance in {len(files)} table(s) ({files[0]} ...).")
    dup = data.duplicated(["glacier_id", "year"], keep=False)
    if dup.any():
        d = data[dup]
        conflicting = d.groupby(["glacier_id", "year"])["annual_balance_m_we"].nunique() > 1
        if conflicting.any():
            gid, year = conflicting[conflicting].index[0]
            raise InputError(f"glacier {gid} has {int(conflicting.sum())} year(s) with "
                             f"conflicting annual balances (e.g. {year}) across the tables; "
                             f"give each glacier-year once.")
        data = data.drop_duplicates(["glacier_id", "year"])
    data = data.sort_values(["glacier_id", "year"]).reset_index(drop=True)
    gaps = _gaps(data)
    notes = _summarise_units(decisions)
    for n in notes:
        log.info("mass-balance units: %s", n)
    table = MassBalanceTable(data=data, units_notes=notes, gaps=gaps, sources=files)
    if n_nan:
        log.info("%d row(s) without annual balance dropped (counted as missing years)", n_nan)
    if gaps:
        log.info("mass-balance records: %s (not filled)", table.gaps_summary())
    return table


# ----------------------------------------------------------------------------- profiles
def _read_one_profile(p: Path, units: Units) -> tuple[pd.DataFrame, tuple[str, str] | None]:
    empty = pd.DataFrame(columns=["glacier_id", "year", "z_m", "balance_m_we"])
    try:
        raw = pd.read_csv(p, header=None, dtype=str, skip_blank_lines=True)
    except pd.errors.EmptyDataError:
        return empty, None
    except Exception as e:
        raise InputError(f"cannot read {p} as a profile table: {e}") from e
    wid = _wgms_id_from_name(p)
    gid = str(wid) if wid is not None else p.stem
    labels = raw.iloc[0, 1:].to_numpy(object)
    z = pd.to_numeric(pd.Series(labels, dtype=object), errors="coerce").to_numpy(float)
    if np.isnan(z).any():
        bad = labels[np.isnan(z)][0]
        raise InputError(f"{p}: band label {bad!r} is not an elevation (m); the first row of a "
                         f"profile table holds band-centre elevations.")
    body = raw.iloc[1:]
    if body.empty:
        return empty, None
    years = pd.to_numeric(body.iloc[:, 0], errors="coerce").to_numpy(float)
    vals = body.iloc[:, 1:].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    r, c = np.nonzero(np.isfinite(vals))
    if r.size == 0:
        return empty, None
    if np.isnan(years[r]).any():
        raise InputError(f"{p}: the first column must hold years; found "
                         f"{body.iloc[r[np.isnan(years[r])][0], 0]!r}.")
    b = vals[r, c]
    u, reason = detect_units(b, kind="band", convention="mm" if wid is not None else None,
                             units=units, what=str(p))
    factor = 1e-3 if u == "mm" else 1.0
    df = pd.DataFrame({"glacier_id": gid, "year": years[r].astype(int), "z_m": z[c],
                       "balance_m_we": b * factor})
    dup = df.duplicated(["year", "z_m"], keep=False)
    if dup.any():
        raise InputError(f"{p}: band {df.loc[dup, 'z_m'].iloc[0]:g} m appears twice for year "
                         f"{df.loc[dup, 'year'].iloc[0]}; give each band once.")
    return df, (u, reason)


def read_profiles(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *,
                  units: Units = "auto") -> ProfileTable:
    """Read elevation-band balance profiles (WGMS ``profile_*.csv``) into m w.e.

    Args:
        paths: One CSV, a folder (its ``profile_*.csv`` files, else all ``*.csv``), or a list.
            The glacier id is the WGMS id of ``profile_WGMS-XXXXX.csv`` files, else the file
            stem. First row: band-centre elevations (m); first column: years; cells: band
            balance.
        units: ``"auto"``, ``"mm"`` or ``"m"`` (see the module docstring; band limits).

    Returns:
        A :class:`ProfileTable`; files without any band balance are listed in ``empty``.

    Raises:
        DatasetNotFoundError: a path does not exist, or a folder holds no CSV.
        InputError: a band label is not a number, or the units are ambiguous under ``"auto"``.
    """
    files = _list_files(paths, "profile_*.csv")
    frames, decisions, empty = [], [], []
    for p in files:
        df, dec = _read_one_profile(p, units)
        if dec is None:
            empty.append(p)
            continue
        frames.append(df)
        decisions.append(dec)
    data = (pd.concat(frames, ignore_index=True) if frames else
            pd.DataFrame(columns=["glacier_id", "year", "z_m", "balance_m_we"]))
    data = data.sort_values(["glacier_id", "year", "z_m"]).reset_index(drop=True)
    notes = _summarise_units(decisions)
    for n in notes:
        log.info("profile units: %s", n)
    if empty:
        log.info("%d profile file(s) hold no band balance: %s", len(empty),
                 ", ".join(p.name for p in empty[:8]) + (" ..." if len(empty) > 8 else ""))
    return ProfileTable(data=data, units_notes=notes, empty=empty, sources=files)


# ----------------------------------------------------------------------------- links
def read_links(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read the WGMS ↔ RGI link table (``rgi_wgms_links_*.csv``).

    Returns:
        Columns ``wgms_id`` (int), ``name``, ``rgi50_id``, ``rgi60_id``, ``has_profile``
        (bool) and ``n_mb_years``, one row per WGMS glacier.

    Raises:
        DatasetNotFoundError: the file does not exist.
        InputError: it lacks the ``WGMS_ID`` column.
    """
    p = Path(path)
    if not p.exists():
        raise DatasetNotFoundError(f"link table {p} does not exist.")
    raw = pd.read_csv(p)
    if "WGMS_ID" not in raw.columns:
        raise InputError(f"{p} has no WGMS_ID column; expected the WGMS rgi_wgms_links table.")
    out = pd.DataFrame({"wgms_id": raw["WGMS_ID"].astype(int),
                        "name": raw.get("NAME"),
                        "rgi50_id": raw.get("RGI50_ID"),
                        "rgi60_id": raw.get("RGI60_ID"),
                        "has_profile": raw.get("HAS_PROFILE", False),
                        "n_mb_years": raw.get("N_MB_YRS")})
    return out
