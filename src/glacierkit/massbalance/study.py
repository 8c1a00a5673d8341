"""End-to-end studies on real tables: WGMS profiles → ELA/AAR → balance; snowlines → balance.

* :func:`profile_study`: ELA (and AAR where a hypsometry exists) of every glacier-year with an
  elevation-band profile, regressed against the glacier-wide annual balance of the same
  glacier-year (global and glacier-specific, LOYO/LOGO CV).
* :func:`snowline_study`: snowline altitudes measured on classified imagery (and, for
  comparison, the USGS ELAs) against the WGMS annual balance of the same glacier and year.
* :func:`write_json`, :func:`write_csv`, :func:`scatter_png`: atomic, no-overwrite outputs.

The profile-derived ELA/AAR and the annual balance come from the same stake network, so their
agreement measures how well one indicator summarises the balance, not an independent
validation; the snowline study is independent (satellite imagery vs glaciological balance).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from glacierkit._json import jsonable
from glacierkit.errors import InputError
from glacierkit.io.writer import check_output_path, publish_file
from glacierkit.massbalance.hypsometry import Hypsometry
from glacierkit.massbalance.indicators import profile_indicators
from glacierkit.massbalance.match import MATCHING_RULES, match_indicators, normalise_rgi
from glacierkit.massbalance.regress import fit_indicator
from glacierkit.massbalance.usgs import read_snowline_comparison
from glacierkit.massbalance.wgms import MassBalanceTable, ProfileTable

log = logging.getLogger(__name__)


def hypsometries_by_wgms_id(hypsometries: Mapping[str, Hypsometry], links: pd.DataFrame
                            ) -> dict[str, Hypsometry]:
    """Re-key ``{RGI id: Hypsometry}`` by WGMS id (text) through the WGMS link table.

    RGI ids are matched after :func:`~glacierkit.massbalance.match.normalise_rgi` against the
    link table's ``rgi50_id`` and ``rgi60_id``; ids without a WGMS glacier are left out.
    """
    lut: dict[str, str] = {}
    for _, row in links.iterrows():
        for c in ("rgi50_id", "rgi60_id"):
            if pd.notna(row.get(c)):
                lut[normalise_rgi(row[c])] = str(int(row["wgms_id"]))
    out = {}
    for rid, h in hypsometries.items():
        wid = lut.get(normalise_rgi(rid))
        if wid is not None:
            out[wid] = h
    return out


def profile_study(mb: MassBalanceTable, profiles: ProfileTable, *,
                  hypsometries: Mapping[str, Hypsometry] | None = None,
                  ela_outside: Literal["nan", "clip"] = "nan", min_samples: int = 3,
                  per_glacier: bool = False) -> tuple[dict[str, Any], pd.DataFrame]:
    """Regress the annual balance on profile-derived ELA and AAR.

    Args:
        mb: Glacier-wide balances.
        profiles: Band balances of the same glaciers (ids as in ``mb``: WGMS ids).
        hypsometries: ``{glacier_id: Hypsometry}`` for the AAR; others get none.
        ela_outside: ELA of one-signed profiles (``"nan"``: excluded; ``"clip"``: profile
            top/bottom).
        min_samples: Fewest pairs per regression (and years per glacier).
        per_glacier: Include every glacier's fit in the report.

    Returns:
        ``(report, table)``: the JSON-ready report and the glacier-year table (indicators and
        balance).
    """
    ind = profile_indicators(profiles, hypsometries, ela_outside=ela_outside)
    bal = mb.data[["glacier_id", "name", "year", "annual_balance_m_we"]]
    table = ind.merge(bal, on=["glacier_id", "year"], how="left")
    no_bal = int(table["annual_balance_m_we"].isna().sum())
    table = table[table["annual_balance_m_we"].notna()].reset_index(drop=True)
    flags = table["ela_flag"].value_counts().to_dict()
    report: dict[str, Any] = {
        "glaciers_with_profiles": int(ind["glacier_id"].nunique()),
        "profile_glacier_years": len(ind),
        "profile_glacier_years_without_balance": no_bal,
        "glacier_years": len(table),
        "ela_flags": flags,
        "ela_outside": ela_outside,
        "units_note": mb.units_notes + [f"profiles: {n}" for n in profiles.units_notes],
        "gaps": mb.gaps_summary(),
        "band_labels": "read as band centres (m a.s.l.)",
        "ela": fit_indicator(table, "ela_m", min_samples=min_samples, per_glacier=per_glacier),
    }
    if table["aar"].notna().any():
        report["aar"] = fit_indicator(table, "aar", min_samples=min_samples,
                                      per_glacier=per_glacier)
        report["aar_glaciers"] = sorted(table.loc[table["aar"].notna(), "glacier_id"].unique())
        report["aar_coverage_min"] = float(table["aar_coverage"].min())
    return report, table


def snowline_study(snowline_csv: str | os.PathLike[str], mb: MassBalanceTable, *,
                   links: pd.DataFrame | None = None, min_samples: int = 3
                   ) -> tuple[dict[str, Any], pd.DataFrame]:
    """Imagery snowline altitude (and USGS ELA) vs WGMS annual balance, matched by name/year.

    Sites are matched to WGMS glaciers with the name rule of
    :mod:`~glacierkit.massbalance.match` (``"LemonCreek"`` ↔ ``"LEMON CREEK"``); years with
    ``N`` = 0 snowlines have no snowline altitude and count only for the USGS-ELA fit.

    Returns:
        ``(report, table)``. The report holds the regressions on ``snowline_median_m`` (all
        matched years with snowlines), on ``usgs_ela_m`` (all matched years) and on
        ``usgs_ela_m`` restricted to the snowline years, with the matching summary.
    """
    s = read_snowline_comparison(snowline_csv)
    m = match_indicators(s, mb, id_column="site", links=links)
    t = m.data
    sub = t[t["snowline_median_m"].notna()]
    sites = dict(m.matched_by)
    ids = t.drop_duplicates("input_id").set_index("input_id")["glacier_id"].to_dict()
    report: dict[str, Any] = {
        "matching": {**m.to_dict(), "sites": {k: {"glacier_id": ids.get(k), "by": v}
                                              for k, v in sites.items()}},
        "rows_in_table": len(s),
        "rows_with_snowlines": int((s["n_snowlines"] > 0).sum()),
        "matched_rows_with_snowlines": len(sub),
        "matched_years": sorted({int(y) for y in t["year"]}),
        "units_note": mb.units_notes,
        "snowline_median_m": fit_indicator(sub, "snowline_median_m", min_samples=min_samples),
        "usgs_ela_m": fit_indicator(t, "usgs_ela_m", min_samples=min_samples),
        "usgs_ela_m_same_years": fit_indicator(sub, "usgs_ela_m", min_samples=min_samples),
        "rules": MATCHING_RULES,
    }
    return report, t


# ----------------------------------------------------------------------------- outputs
def _atomic_write(path: str | os.PathLike[str], write: Any, *, overwrite: bool) -> Path:
    p = check_output_path(path, overwrite=overwrite)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".part", dir=p.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        publish_file(tmp_path, p)
    finally:
        tmp_path.unlink(missing_ok=True)
    return p


def write_json(path: str | os.PathLike[str], obj: Any, *, overwrite: bool = False) -> Path:
    """Write ``obj`` as indented JSON (NaN → null) atomically; refuses to overwrite unless asked.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
    """
    text = json.dumps(jsonable(obj), indent=2)
    return _atomic_write(path, lambda p: p.write_text(text), overwrite=overwrite)


def write_csv(path: str | os.PathLike[str], df: pd.DataFrame, *, overwrite: bool = False
              ) -> Path:
    """Write a table as CSV atomically; refuses to overwrite unless asked."""
    return _atomic_write(path, lambda p: df.to_csv(p, index=False), overwrite=overwrite)


def scatter_png(path: str | os.PathLike[str], panels: list[dict[str, Any]], *,
                title: str = "", overwrite: bool = False) -> Path:
    """Scatter plots with fitted lines, one panel per dict, written atomically as PNG.

    Each panel: ``x``, ``y`` (arrays), ``xlabel``, ``ylabel``, optional ``title``, ``slope``,
    ``intercept`` (a line drawn over the x range) and ``one_to_one`` (draw y = x). Axis labels
    end with their units in parentheses, e.g. ``"annual balance (m w.e.)"``.

    Raises:
        InputError: no panels, or an axis label without units in parentheses.
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
    """
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    if not panels:
        raise InputError("scatter_png needs at least one panel.")
    for pnl in panels:
        for key in ("xlabel", "ylabel"):
            if not str(pnl[key]).rstrip().endswith(")"):
                raise InputError(f"scatter_png {key} {pnl[key]!r} names no units: end it with "
                                 f"the units in parentheses, e.g. 'annual balance (m w.e.)' "
                                 f"or 'AAR (fraction, 0–1)'.")
    fig = Figure(figsize=(5.2 * len(panels), 4.4), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, pnl in zip(axes, panels, strict=True):
        x = np.asarray(pnl["x"], float)
        y = np.asarray(pnl["y"], float)
        ax.scatter(x, y, s=10, alpha=0.6, edgecolors="none")
        if pnl.get("slope") is not None and x.size:
            xx = np.array([np.nanmin(x), np.nanmax(x)])
            ax.plot(xx, pnl["intercept"] + pnl["slope"] * xx, color="C3", lw=1.5)
        if pnl.get("one_to_one") and x.size:
            lo = float(np.nanmin([x.min(), y.min()]))
            hi = float(np.nanmax([x.max(), y.max()]))
            ax.plot([lo, hi], [lo, hi], color="0.4", lw=1, ls="--")
        ax.axhline(0, color="0.7", lw=0.8)
        ax.set_xlabel(pnl["xlabel"])
        ax.set_ylabel(pnl["ylabel"])
        ax.set_title(pnl.get("title", ""), fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11)
    return _atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=110),
                         overwrite=overwrite)
