"""``glacierkit massbalance``: regress glacier mass balance on facies-derived indicators.

* ``massbalance fit INDICATORS MB_TABLES… [--indicator NAME …] [--units auto|mm|m] [--json]``
  — INDICATORS is a CSV with a glacier identifier column (WGMS id, RGI id or name; matching
  rules in :mod:`glacierkit.massbalance.match`), a ``year`` column and indicator columns
  (e.g. ``aar``, ``ela_m``, ``snowline_altitude_m``); MB_TABLES are WGMS ``mbdata`` CSVs, generic
  balance CSVs, or folders of them. Prints, per indicator, the global (pooled) and the
  glacier-specific regressions: n, r, RMSE (m w.e.), slope with its 95 % interval, intercept,
  leave-one-year-out and leave-one-glacier-out skill; ``--json`` prints one JSON object.
* ``massbalance indicators PROFILES… -o TABLE.csv [--rgi-hypsometry CSV | --dem DEM --outlines
  SHP] [--links CSV]`` — ELA (and AAR where a hypsometry is given) per glacier-year from WGMS
  elevation-band profiles; the output table is a valid INDICATORS input.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

import typer
from rich.console import Console
from rich.table import Table

from glacierkit._json import jsonable
from glacierkit.cli.main import app, require
from glacierkit.errors import InputError

mb_app = typer.Typer(help="Glacier mass balance from facies indicators (AAR, ELA, snowline) "
                          "and WGMS tables.", no_args_is_help=True)
app.add_typer(mb_app, name="massbalance")

_NOT_INDICATORS = {"year", "date", "glacier_id", "wgms_id", "rgi_id", "rgi60_id", "rgi50_id",
                   "rgiid", "name", "glacier", "site", "site name", "site_name", "n_bands",
                   "z_min_m", "z_max_m", "aar_coverage", "observed_share", "area_km2",
                   "accumulation_km2", "snowline_iqr_m", "snowline_n_px",
                   "annual_balance_m_we", "winter_balance_m_we", "summer_balance_m_we"}


def _num(v: Any, fmt: str = ".3g") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return format(v, fmt) if isinstance(v, float) else str(v)


def _ci(v: Any) -> str:
    if not v:
        return "—"
    return f"[{_num(v[0])}, {_num(v[1])}]"


def slope_units(indicator: str) -> tuple[float, str]:
    """How to print a slope (m w.e. per indicator unit): ``(factor, units)``.

    Indicators named ``*_m`` are altitudes in metres: their slopes print per 100 m (the
    library's value × 100). Any other indicator prints per unit of its own values.

    Args:
        indicator: Indicator column name, e.g. ``"ela_m"`` or ``"aar"``.

    Returns:
        The factor to multiply the library's slope by, and the units of the result.
    """
    if indicator.lower().endswith("_m"):
        return 100.0, "m w.e. per 100 m"
    return 1.0, f"m w.e. per unit {indicator}"


def _scaled(v: Any, factor: float) -> Any:
    return v * factor if isinstance(v, int | float) and not isinstance(v, bool) else v


def _fit_table(name: str, res: dict[str, Any]) -> Table:
    """One indicator's regressions: quantities as rows, global / per glacier as columns."""
    factor, su = slope_units(name)
    mwe = "m w.e."
    t = Table(title=f"{name}: annual balance = intercept + slope · {name}",
              title_justify="left")
    t.add_column("")
    t.add_column("global (pooled)")
    t.add_column("per glacier")
    cols = [res.get("global", {}), res.get("glacier_specific", {})]
    if all("error" in g for g in cols):
        t.add_row("error", *(g["error"] for g in cols))
        return t

    def cells(fn: Any) -> list[str]:
        return ["—" if "error" in g else fn(g) for g in cols]

    def with_units(v: Any, units: str) -> str:
        s = _num(v)
        return s if s == "—" else f"{s} {units}"

    t.add_row("pairs, glaciers", *cells(lambda g: f"{g['n']}, {g['n_glaciers']}"))
    t.add_row("r", *cells(lambda g: _num(g["r"])))
    t.add_row("RMSE", *cells(lambda g: with_units(g["rmse_m_we"], mwe)))
    t.add_row("slope", *cells(lambda g: with_units(_scaled(g["slope"], factor), su)
                             + ("" if g.get("slope_ci95") else " (median)")))
    t.add_row("slope 95 % CI", *cells(lambda g: (
        f"{_ci([_scaled(v, factor) for v in g['slope_ci95']])} {su}"
        if g.get("slope_ci95") else "—")))
    t.add_row("intercept", *cells(lambda g: with_units(g.get("intercept"), mwe)))
    for cv in ("loyo", "logo"):
        t.add_row(f"{cv.upper()} r / RMSE", *cells(lambda g, cv=cv: (
            f"{_num(g.get(f'cv_{cv}_r'))} / {with_units(g.get(f'cv_{cv}_rmse_m_we'), mwe)}"
            if g.get(f"cv_{cv}_r") is not None or g.get(f"cv_{cv}_rmse_m_we") is not None
            else "—")))
    for i, g in enumerate(cols):
        if "error" in g:
            t.columns[i + 1].footer = g["error"]
    return t


def fit_report(indicators: Path, mb_tables: list[Path], *, indicator: list[str] | None = None,
               units: str = "auto", id_column: str | None = None, links: Path | None = None,
               min_samples: int = 3, per_glacier: bool = True) -> dict[str, Any]:
    """Everything ``massbalance fit`` prints, as one JSON-ready dict."""
    import pandas as pd

    from glacierkit.massbalance import fit_indicator, match_indicators, read_mass_balance
    from glacierkit.massbalance.wgms import read_links

    if not indicators.exists():
        raise InputError(f"indicator table {indicators} does not exist.")
    table = pd.read_csv(indicators)
    mb = read_mass_balance(mb_tables, units=units)  # type: ignore[arg-type]
    lk = read_links(links) if links is not None else None
    m = match_indicators(table, mb, id_column=id_column, links=lk)
    if indicator:
        names = list(indicator)
        missing = [n for n in names if n not in m.data.columns]
        if missing:
            raise InputError(f"indicator column(s) {missing} not in {indicators}; columns: "
                             f"{list(table.columns)}.")
    else:
        names = [c for c in table.columns if str(c).strip().lower() not in _NOT_INDICATORS
                 and c in m.data.columns and pd.api.types.is_numeric_dtype(m.data[c])]
        if not names:
            raise InputError(f"no numeric indicator column in {indicators}; name them with "
                             f"--indicator.")
    out: dict[str, Any] = {"indicators": {n: fit_indicator(m.data, n, min_samples=min_samples,
                                                            per_glacier=per_glacier)
                                          for n in names},
                           "matching": m.to_dict(), "unmatched": m.unmatched,
                           "units_note": mb.units_notes, "gaps": mb.gaps_summary(),
                           "balance_tables": len(mb.sources)}
    return out


@mb_app.command("fit")
def fit(
    indicators: Path = typer.Argument(..., metavar="INDICATORS",
                                      help="CSV: glacier id (WGMS/RGI id or name), year, "
                                      "indicator columns."),
    mb_tables: list[Path] = typer.Argument(..., metavar="MB_TABLES",
                                           help="WGMS mbdata CSVs, generic balance CSVs "
                                           "or folders."),
    indicator: list[str] = typer.Option(None, "--indicator", "-i",
                                        help="Indicator column(s) (default: every numeric one)."),
    units: Literal["auto", "mm", "m"] = typer.Option(
        "auto", "--units", help="Balance units of MB_TABLES: auto | mm | m (auto: WGMS mm "
        "convention, else by magnitude)."),
    id_column: str | None = typer.Option(None, "--id-column",
                                         help="Identifier column of INDICATORS."),
    links: Path | None = typer.Option(None, "--links", help="WGMS rgi_wgms_links CSV (RGI 5 "
                                      "ids and WGMS names)."),
    min_samples: int = typer.Option(3, "--min-samples", min=3,
                                    help="Fewest pairs per regression / years per glacier."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Regress annual mass balance on indicators: global and glacier-specific, with CV."""
    r = fit_report(indicators, mb_tables, indicator=indicator, units=units,
                   id_column=id_column, links=links, min_samples=min_samples,
                   per_glacier=as_json)
    if as_json:
        typer.echo(json.dumps(jsonable(r)))
        return
    con = Console()
    for name, res in r["indicators"].items():
        con.print(_fit_table(name, res))
    con.print("per glacier: one line per glacier; r, RMSE and LOYO of the pooled fits, the "
              "median slope. LOYO / LOGO: leave one year / glacier out.")
    for n in r["units_note"]:
        con.print(f"units: {n}")
    con.print(f"records: {r['gaps']}")
    mt = r["matching"]
    con.print(f"matched {mt['n_matched_rows']} indicator row(s) on {mt['n_glaciers']} "
              f"glacier(s) by column {mt['id_column']!r}; "
              f"{mt['no_balance_glacier_years']} matched glacier-year(s) without balance")
    if r["unmatched"]:
        con.print(f"[yellow]unmatched identifiers ({len(r['unmatched'])})[/]: "
                  + "; ".join(f"{k}: {v}" for k, v in list(r["unmatched"].items())[:10]))


@mb_app.command("indicators")
def indicators_cmd(
    profiles: list[Path] = typer.Argument(..., metavar="PROFILES",
                                          help="WGMS profile_*.csv files or folders."),
    out: Path = typer.Option(..., "--out", "-o", help="Output CSV."),
    rgi_hypsometry: Path | None = typer.Option(None, "--rgi-hypsometry",
                                               help="RGI *_hypso.csv (needs --links)."),
    dem: Path | None = typer.Option(None, "--dem", help="DEM for hypsometry (with --outlines "
                                    "and --links)."),
    outlines: Path | None = typer.Option(None, "--outlines", help="Glacier outlines (RGI)."),
    links: Path | None = typer.Option(None, "--links", help="WGMS rgi_wgms_links CSV."),
    units: Literal["auto", "mm", "m"] = typer.Option("auto", "--units", help="auto | mm | m."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUT."),
    as_json: bool = typer.Option(False, "--json", help="Print the counts and OUT as one JSON "
                                 "object."),
) -> None:
    """ELA (and AAR with a hypsometry) per glacier-year from elevation-band profiles."""
    from glacierkit.massbalance import (
        hypsometry_from_dem,
        profile_indicators,
        read_profiles,
        read_rgi_hypsometry,
    )
    from glacierkit.massbalance.study import hypsometries_by_wgms_id, write_csv
    from glacierkit.massbalance.wgms import read_links

    require((dem is None) == (outlines is None), "--dem" if outlines is None else "--outlines",
            "give --dem and --outlines together.")
    require(links is not None or (rgi_hypsometry is None and dem is None), "--links",
            "hypsometries are keyed by RGI id; give --links (the WGMS rgi_wgms_links CSV) to "
            "map them to WGMS ids.")
    hyps_rgi = {}
    if rgi_hypsometry is not None:
        hyps_rgi.update(read_rgi_hypsometry(rgi_hypsometry))
    if dem is not None and outlines is not None:
        hyps_rgi.update(hypsometry_from_dem(dem, outlines))
    hyps = {}
    if hyps_rgi:
        if links is None:
            raise InputError("hypsometries are keyed by RGI id; give --links (the WGMS "
                             "rgi_wgms_links CSV) to map them to WGMS ids.")
        hyps = hypsometries_by_wgms_id(hyps_rgi, read_links(links))
    pr = read_profiles(profiles, units=units)  # type: ignore[arg-type]
    table = profile_indicators(pr, hyps)
    write_csv(out, table, overwrite=overwrite)
    if as_json:
        typer.echo(json.dumps({"out": str(out), "glacier_years": len(table),
                               "glaciers": int(table["glacier_id"].nunique()),
                               "with_aar": int(table["aar"].notna().sum()),
                               "with_ela": int(table["ela_m"].notna().sum())}))
        return
    Console().print(f"{len(table)} glacier-year(s) of {table['glacier_id'].nunique()} "
                    f"glacier(s), AAR for {int(table['aar'].notna().sum())} → {out}")
