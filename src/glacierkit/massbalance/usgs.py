"""Snowline altitudes measured on classified imagery next to the USGS ELAs (Aberle et al.).

:func:`read_snowline_comparison` reads ``USGS_ELA_comparison_stats.csv`` from
github.com/RaineyAbe/glacier-snow-cover-mapping: per USGS benchmark glacier (``Site name``)
and year the USGS ELA (m) and the median of the snowline median elevations (m) measured on
Sentinel-2 / Landsat / PlanetScope images near the end of the melt season (``N`` images). The
file has multi-line quoted fields (lists of dates); pandas reads them as one field.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from glacierkit.errors import DatasetNotFoundError, InputError

_COLUMNS = {"Site name": "site", "Year": "year", "USGS ELA [m]": "usgs_ela_m",
            "Median snowline median elevations [m]": "snowline_median_m", "N": "n_snowlines",
            "USGS Ba Date": "usgs_ba_date"}


def read_snowline_comparison(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Per site and year: USGS ELA and median imagery snowline altitude.

    Summary rows (``"… AVERAGE"``) are excluded; rows without snowline measurements (``N`` = 0)
    keep a NaN ``snowline_median_m``.

    Returns:
        Columns ``site, year (int), usgs_ba_date, usgs_ela_m, snowline_median_m,
        n_snowlines``.

    Raises:
        DatasetNotFoundError: the file does not exist.
        InputError: expected columns are missing.
    """
    p = Path(path)
    if not p.exists():
        raise DatasetNotFoundError(f"snowline comparison table {p} does not exist.")
    raw = pd.read_csv(p)
    missing = [c for c in _COLUMNS if c not in raw.columns]
    if missing:
        raise InputError(f"{p} lacks column(s) {missing}; expected the "
                         f"USGS_ELA_comparison_stats.csv of glacier-snow-cover-mapping.")
    d = raw[list(_COLUMNS)].rename(columns=_COLUMNS)
    d = d[~d["site"].astype(str).str.upper().str.contains("AVERAGE") & d["year"].notna()]
    d = d.assign(year=d["year"].astype(int), site=d["site"].astype(str).str.strip(),
                 n_snowlines=pd.to_numeric(d["n_snowlines"], errors="coerce").fillna(0)
                 .astype(int))
    return d.reset_index(drop=True)
