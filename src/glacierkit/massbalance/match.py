"""Matching an indicator table to mass-balance records: glacier identifier and year.

Matching rules (applied to each identifier in order; the first that applies decides):

1. **Exact id**: the identifier equals a ``glacier_id`` of the balance table (for WGMS tables the
   WGMS id as text, e.g. ``"491"``; an integer-like value such as ``491.0`` counts as ``"491"``).
2. **RGI id** (text starting with ``RGI``): upper-cased, the divide suffix ``_dNN`` dropped
   (``RGI50-11.00719_d01`` → ``RGI50-11.00719``), then matched to the balance table's
   ``rgi_id`` column (RGI 6.0 ids in WGMS ``mbdata``) or, with a WGMS link table, to its
   ``RGI50_ID`` / ``RGI60_ID`` columns, which give the WGMS id.
3. **Name**: case-folded with every non-alphanumeric character removed (``"LemonCreek"``,
   ``"Lemon Creek"`` and ``"LEMON CREEK"`` all become ``"lemoncreek"``), then matched to the
   balance table's ``name`` column and, with a link table, its ``NAME`` column. A name that
   fits more than one glacier is not matched (reported as ambiguous).

Then indicator rows are joined to balances on glacier and ``year``. Identifiers that match no
glacier are listed in :attr:`MatchResult.unmatched` (with the reason); matched glacier-years
without a balance are counted in :attr:`MatchResult.no_balance`. Nothing is dropped silently.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from glacierkit.errors import InputError
from glacierkit.massbalance.wgms import MassBalanceTable

log = logging.getLogger(__name__)

ID_COLUMNS = ("glacier_id", "wgms_id", "rgi_id", "rgi60_id", "rgi50_id", "rgiid", "name",
              "glacier", "site", "site name", "site_name")
"""Identifier columns looked for in an indicator table (case-insensitive, first found)."""

MATCHING_RULES = (
    "glacier identifier: exact glacier id (WGMS id) first; else RGI id (upper-cased, divide "
    "suffix _dNN dropped) against the balance table's RGI ids or the WGMS link table's "
    "RGI50/RGI60 ids; else name, case-folded with non-alphanumerics removed ('LemonCreek' == "
    "'LEMON CREEK'), unique matches only; then joined on year (the balance year ending in it)."
)

_DIVIDE = re.compile(r"_d\d+$", re.IGNORECASE)
_NON_ALNUM = re.compile(r"[^0-9a-z]")


def normalise_name(name: Any) -> str:
    """Case-fold and drop non-alphanumeric characters (``"Lemon Creek"`` → ``"lemoncreek"``)."""
    return _NON_ALNUM.sub("", str(name).casefold())


def normalise_rgi(rgi: Any) -> str:
    """Upper-case an RGI id, drop a divide suffix (``rgi50-11.00719_d01`` → ``RGI50-11.00719``)."""
    return _DIVIDE.sub("", str(rgi).strip()).upper()


@dataclass
class MatchResult:
    """Indicator rows joined to annual balances.

    Attributes:
        data: Indicator columns plus ``glacier_id`` (of the balance table), ``name``,
            ``input_id`` (the identifier as given), ``year`` and ``annual_balance_m_we``.
        id_column: Indicator column used as identifier.
        unmatched: ``{identifier: reason}`` for identifiers matching no glacier.
        no_balance: Matched glacier-years without an annual balance in the tables.
        rules: The matching rules, as text.
        matched_by: ``{identifier: "id" | "rgi" | "name"}``.
    """

    data: pd.DataFrame
    id_column: str
    unmatched: dict[str, str] = field(default_factory=dict)
    no_balance: int = 0
    rules: str = MATCHING_RULES
    matched_by: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the data)."""
        return {"id_column": self.id_column, "n_matched_rows": len(self.data),
                "n_glaciers": int(self.data["glacier_id"].nunique()) if len(self.data) else 0,
                "unmatched": dict(self.unmatched), "no_balance_glacier_years": self.no_balance,
                "rules": self.rules}


def _lookup_tables(mb: MassBalanceTable, links: pd.DataFrame | None
                   ) -> tuple[set[str], dict[str, set[str]], dict[str, set[str]]]:
    d = mb.data
    ids = set(d["glacier_id"].astype(str))
    rgi: dict[str, set[str]] = {}
    names: dict[str, set[str]] = {}
    per_glacier = d.drop_duplicates("glacier_id")
    for gid, r, n in zip(per_glacier["glacier_id"], per_glacier["rgi_id"], per_glacier["name"],
                         strict=True):
        if pd.notna(r):
            rgi.setdefault(normalise_rgi(r), set()).add(str(gid))
        if pd.notna(n):
            names.setdefault(normalise_name(n), set()).add(str(gid))
    if links is not None:
        for _, row in links.iterrows():
            gid = str(int(row["wgms_id"]))
            if gid not in ids:
                continue
            for c in ("rgi50_id", "rgi60_id"):
                if c in row and pd.notna(row[c]):
                    rgi.setdefault(normalise_rgi(row[c]), set()).add(gid)
            if "name" in row and pd.notna(row["name"]):
                names.setdefault(normalise_name(row["name"]), set()).add(gid)
    return ids, rgi, names


def _as_id_text(v: Any) -> str:
    if isinstance(v, float | np.floating) and np.isfinite(v) and float(v).is_integer():
        return str(int(v))
    s = str(v).strip()
    try:
        f = float(s)
    except ValueError:
        return s
    return str(int(f)) if np.isfinite(f) and f.is_integer() else s


def match_indicators(indicators: pd.DataFrame, mb: MassBalanceTable, *,
                     id_column: str | None = None, year_column: str = "year",
                     links: pd.DataFrame | None = None) -> MatchResult:
    """Join an indicator table to annual balances by glacier identifier and year.

    Args:
        indicators: One row per glacier and year (or date) with an identifier column, a year
            column and indicator columns.
        mb: Balances (:func:`~glacierkit.massbalance.wgms.read_mass_balance`).
        id_column: Identifier column (default: the first of :data:`ID_COLUMNS` present,
            case-insensitive).
        year_column: Year column (case-insensitive).
        links: Optional WGMS link table (:func:`~glacierkit.massbalance.wgms.read_links`) for
            RGI 5 ids and WGMS names.

    Returns:
        A :class:`MatchResult`; see the module docstring for the rules.

    Raises:
        InputError: no identifier or year column, or nothing matched at all.
    """
    lower = {str(c).strip().lower(): c for c in indicators.columns}
    if id_column is None:
        id_col = next((lower[c] for c in ID_COLUMNS if c in lower), None)
        if id_col is None:
            raise InputError(f"indicator table has no glacier identifier column (one of "
                             f"{', '.join(ID_COLUMNS)}); columns: {list(indicators.columns)}.")
    else:
        id_col = lower.get(id_column.strip().lower())
        if id_col is None:
            raise InputError(f"id column {id_column!r} not in the indicator table "
                             f"({list(indicators.columns)}).")
    ycol = lower.get(year_column.strip().lower())
    if ycol is None:
        raise InputError(f"indicator table has no {year_column!r} column; columns: "
                         f"{list(indicators.columns)}.")
    ids, rgi, names = _lookup_tables(mb, links)
    resolved: dict[str, str] = {}
    unmatched: dict[str, str] = {}
    matched_by: dict[str, str] = {}
    for raw in dict.fromkeys(indicators[id_col].tolist()):
        if pd.isna(raw):
            continue
        key = _as_id_text(raw)
        if key in ids:
            resolved[key], matched_by[key] = key, "id"
            continue
        if key.upper().startswith("RGI"):
            hit = rgi.get(normalise_rgi(key), set())
            how = "rgi"
        else:
            hit = names.get(normalise_name(key), set())
            how = "name"
        if len(hit) == 1:
            resolved[key], matched_by[key] = next(iter(hit)), how
        elif len(hit) > 1:
            unmatched[key] = f"ambiguous {how}: fits glaciers {sorted(hit)}"
        else:
            unmatched[key] = f"no glacier with this {'id or ' if how == 'name' else ''}{how} " \
                             f"in the balance tables"
    ind = indicators.copy()
    ind["input_id"] = [None if pd.isna(v) else _as_id_text(v) for v in ind[id_col]]
    ind["glacier_id"] = ind["input_id"].map(resolved)
    ind["year"] = pd.to_numeric(ind[ycol], errors="coerce")
    if ycol != "year":
        ind = ind.drop(columns=[ycol])
    if id_col != "glacier_id":
        ind = ind.drop(columns=[id_col])
    matched = ind[ind["glacier_id"].notna() & ind["year"].notna()].copy()
    matched["year"] = matched["year"].astype(int)
    bal = mb.data[["glacier_id", "year", "name", "annual_balance_m_we"]]
    joined = matched.merge(bal, on=["glacier_id", "year"], how="left", suffixes=("_input", ""))
    no_bal = int(joined["annual_balance_m_we"].isna().sum())
    joined = joined[joined["annual_balance_m_we"].notna()].reset_index(drop=True)
    if unmatched:
        log.warning("%d identifier(s) in the indicator table match no glacier: %s",
                    len(unmatched), ", ".join(list(unmatched)[:8])
                    + (" ..." if len(unmatched) > 8 else ""))
    if no_bal:
        log.info("%d matched glacier-year(s) have no annual balance in the tables", no_bal)
    if joined.empty:
        raise InputError(f"no indicator row matched a glacier-year with an annual balance "
                         f"({len(unmatched)} identifier(s) unmatched, {no_bal} matched "
                         f"glacier-year(s) without balance). Rules: {MATCHING_RULES}")
    return MatchResult(data=joined, id_column=str(id_col), unmatched=unmatched,
                       no_balance=no_bal, matched_by=matched_by)
