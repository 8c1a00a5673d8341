"""Annual mass balance vs ELA, AAR and imagery snowline altitude on real WGMS tables.

Data: ``oggm_sample_data`` (WGMS FoG ``mbdata`` for 290 glaciers, elevation-band ``profile``
tables for 170, the WGMS↔RGI link table, the Hintereisferner RGI hypsometry, the SRTM DEM and
20 RGI 5 outlines of the Ötztal Alps) and ``aberle_snow_ice_training_points``
(``USGS_ELA_comparison_stats.csv``: snowline altitudes measured on Sentinel-2/Landsat/Planet
images of five USGS benchmark glaciers, 2013–2022, next to the USGS ELAs).

Protocol:

1. **Balances**: WGMS ``mbdata`` in mm w.e. (FoG convention) → m w.e.; glacier-years without
   annual balance dropped, gaps listed, nothing filled.
2. **ELA** per glacier-year from the profile: the zero crossing of the band balance, linear
   between band centres (band labels read as centres). One-signed profiles (ELA above or
   below every band) are excluded (``nan``) — and, as a sensitivity run, set to the top/bottom
   band centre (``clip``).
3. **AAR** where a hypsometry exists: the four Ötztal glaciers with WGMS profiles whose RGI 5
   outlines are in ``rgi_oetztal`` (Hintereis 491, Kesselwand 507, Langtaler 510, Vernagt 489
   with its two divides merged), hypsometry from the SRTM DEM (EPSG:4326; pixel areas geodesic
   per row) in 50 m bands; for Hintereisferner also from the RGI hypsometry CSV (consistency).
   The SRTM surface (~2000) is used for every year: glacier thinning is ignored.
4. **Regressions**: balance = a + s · indicator, global (pooled) and glacier-specific (≥ 3
   years), with leave-one-year-out (LOYO) and, for the global model, leave-one-glacier-out
   (LOGO) cross-validation. Baseline in the same run: each glacier-year predicted by the mean
   balance of the same glacier's other years (glacier climatology) and by the mean of all
   other glacier-years' balances of other years (global climatology).
5. **Snowlines**: sites matched to WGMS glaciers by name (case-folded, non-alphanumerics
   removed: ``LemonCreek`` ↔ ``LEMON CREEK``), years joined on the WGMS balance year; WGMS
   balances end in 2020, so 2021–2022 snowlines have no balance. The snowline altitude is the
   table's "Median snowline median elevations [m]" of the images with ``N`` > 0.

Profile-derived ELA/AAR and the glacier-wide balance come from the same stake network, so
steps 2–4 measure how well one indicator summarises the balance; step 5 is independent.

Usage::

    python benchmarks/massbalance_wgms.py [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from glacierkit import examples
from glacierkit._json import jsonable
from glacierkit.massbalance import (
    Hypsometry,
    hypsometry_from_dem,
    read_links,
    read_mass_balance,
    read_profiles,
)
from glacierkit.massbalance.study import hypsometries_by_wgms_id, profile_study, snowline_study


def climatology_baseline(table: pd.DataFrame) -> dict[str, float]:
    """LOYO RMSE/r of predicting each glacier-year by climatological means (no indicator)."""
    t = table[["glacier_id", "year", "annual_balance_m_we"]].dropna()
    y = t["annual_balance_m_we"].to_numpy()
    g = t.groupby("glacier_id")["annual_balance_m_we"]
    s, n = g.transform("sum").to_numpy(), g.transform("count").to_numpy()
    ok = n > 1
    pred_g = np.where(ok, (s - y) / np.maximum(n - 1, 1), np.nan)
    ys = t.groupby("year")["annual_balance_m_we"]
    tot, cnt = y.sum(), y.size
    pred_all = (tot - ys.transform("sum").to_numpy()) / (cnt - ys.transform("count").to_numpy())

    def skill(p: np.ndarray) -> tuple[float, float, int]:
        m = np.isfinite(p)
        e = y[m] - p[m]
        r = float(np.corrcoef(y[m], p[m])[0, 1]) if m.sum() > 2 and np.std(p[m]) > 0 else np.nan
        return float(np.sqrt(np.mean(e * e))), r, int(m.sum())

    rg, cg, ng = skill(pred_g)
    ra, ca, na = skill(pred_all)
    return {"glacier_climatology_loyo_rmse_m_we": rg, "glacier_climatology_loyo_r": cg,
            "glacier_climatology_n": ng, "global_climatology_loyo_rmse_m_we": ra,
            "global_climatology_loyo_r": ca, "global_climatology_n": na,
            "balance_std_m_we": float(np.std(y))}


def _row(label: str, res: dict[str, Any]) -> list[str]:
    out = []
    for key in ("global", "glacier_specific"):
        g = res[key]
        if "error" in g:
            out.append(f"  {label:34s} {key:16s} {g['error']}")
            continue

        def f(v: Any, fmt: str = ".3f") -> str:
            return "—" if v is None or (isinstance(v, float) and not np.isfinite(v)) else \
                format(v, fmt)
        ci = g.get("slope_ci95")
        ci_txt = f" [{f(ci[0], '.4g')}, {f(ci[1], '.4g')}]" if ci else " (median)"
        out.append(f"  {label:34s} {key:16s} n={g['n']:5d} gl={g['n_glaciers']:3d} "
                   f"r={f(g['r'])} RMSE={f(g['rmse_m_we'])} slope={f(g['slope'], '.4g')}"
                   f"{ci_txt} | LOYO r={f(g['cv_loyo_r'])} RMSE={f(g['cv_loyo_rmse_m_we'])} "
                   f"n={g['cv_loyo_n']} | LOGO r={f(g['cv_logo_r'])} "
                   f"RMSE={f(g['cv_logo_rmse_m_we'])}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", type=Path, default=None, help="Also write the numbers here.")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(name)s: %(message)s")
    t0 = time.perf_counter()
    oggm = examples.path("oggm_sample_data")
    snow = examples.path("aberle_snow_ice_training_points", "USGS_ELA_comparison_stats.csv")
    w = oggm / "wgms"
    mb = read_mass_balance(w / "mbdata")
    profiles = read_profiles(w / "mb_profiles")
    links = read_links(w / "rgi_wgms_links_20220112.csv")

    dem_h = hypsometries_by_wgms_id(
        hypsometry_from_dem(oggm / "test-workflow" / "srtm_oetztal.tif",
                            oggm / "test-workflow" / "rgi" / "rgi_oetztal.shp"), links)
    prof_ids = set(profiles.data["glacier_id"].unique())
    dem_h = {k: v for k, v in dem_h.items() if k in prof_ids}
    hef_csv = Hypsometry.from_rgi_csv(oggm / "test-files" / "Hintereisferner_V5_hypso.csv")

    report: dict[str, Any] = {}
    rep, table = profile_study(mb, profiles, hypsometries=dem_h)
    report["profiles"] = rep
    report["profiles"]["baseline"] = climatology_baseline(table[table["ela_m"].notna()])
    report["profiles"]["aar_hypsometry_km2"] = {
        k: {"name": str(table.loc[table["glacier_id"] == k, "name"].iloc[0]),
            "dem_km2": round(v.total_km2, 3)} for k, v in sorted(dem_h.items())}
    aar_t = table[table["aar"].notna()]
    report["profiles"]["aar_baseline"] = climatology_baseline(aar_t)
    rep_clip, _ = profile_study(mb, profiles, hypsometries=dem_h, ela_outside="clip")
    report["profiles_ela_clipped"] = {"ela": rep_clip["ela"], "ela_flags": rep_clip["ela_flags"]}
    rep_csv, t_csv = profile_study(mb, profiles, hypsometries={"491": hef_csv})
    both = t_csv[["year", "aar"]].merge(
        table.loc[table["glacier_id"] == "491", ["year", "aar"]], on="year",
        suffixes=("_csv", "_dem")).dropna()
    report["hintereis_aar_csv_vs_dem"] = {
        "n": len(both), "csv_km2": hef_csv.total_km2, "dem_km2": dem_h["491"].total_km2,
        "mean_abs_diff": float(np.mean(np.abs(both["aar_csv"] - both["aar_dem"]))),
        "max_abs_diff": float(np.max(np.abs(both["aar_csv"] - both["aar_dem"]))),
        "aar_fit_with_csv_hypsometry": rep_csv["aar"]["global"]}
    srep, st = snowline_study(snow, mb, links=links)
    report["snowlines"] = srep
    report["snowlines"]["pairs"] = st[["input_id", "glacier_id", "year", "snowline_median_m",
                                       "usgs_ela_m", "n_snowlines",
                                       "annual_balance_m_we"]].to_dict(orient="records")
    report["seconds"] = round(time.perf_counter() - t0, 1)

    p = report["profiles"]
    print("WGMS profiles → ELA / AAR → annual balance (m w.e.)")
    print(f"  balances: {'; '.join(mb.units_notes)}; {mb.gaps_summary()}")
    print(f"  profiles: {p['glaciers_with_profiles']} glaciers, {p['profile_glacier_years']} "
          f"glacier-years; with balance {p['glacier_years']}; ELA flags {p['ela_flags']}")
    for line in _row("ELA (one-signed excluded)", p["ela"]):
        print(line)
    for line in _row("ELA (one-signed clipped)", report["profiles_ela_clipped"]["ela"]):
        print(line)
    b = p["baseline"]
    print(f"  baseline (no indicator, LOYO): glacier climatology RMSE "
          f"{b['glacier_climatology_loyo_rmse_m_we']:.3f} (n={b['glacier_climatology_n']}), "
          f"global climatology RMSE {b['global_climatology_loyo_rmse_m_we']:.3f}, "
          f"std {b['balance_std_m_we']:.3f}")
    print(f"  AAR glaciers (DEM hypsometry): {p['aar_hypsometry_km2']}")
    for line in _row("AAR (SRTM + RGI5 hypsometry)", p["aar"]):
        print(line)
    b = p["aar_baseline"]
    print(f"  baseline AAR glacier-years: glacier climatology RMSE "
          f"{b['glacier_climatology_loyo_rmse_m_we']:.3f}, std {b['balance_std_m_we']:.3f}")
    h = report["hintereis_aar_csv_vs_dem"]
    print(f"  Hintereisferner AAR, RGI CSV vs DEM hypsometry: n={h['n']}, mean |Δ| "
          f"{h['mean_abs_diff']:.4f}, max |Δ| {h['max_abs_diff']:.4f} (areas "
          f"{h['csv_km2']:.3f} vs {h['dem_km2']:.3f} km²); fit with CSV: r="
          f"{h['aar_fit_with_csv_hypsometry']['r']:.3f} RMSE="
          f"{h['aar_fit_with_csv_hypsometry']['rmse_m_we']:.3f}")
    s = report["snowlines"]
    print("Imagery snowline altitude (USGS_ELA_comparison_stats.csv) vs WGMS annual balance")
    print(f"  sites: {s['matching']['sites']}; unmatched {s['matching']['unmatched']}; "
          f"rows with snowlines {s['rows_with_snowlines']}, matched to a WGMS balance "
          f"{s['matched_rows_with_snowlines']}")
    for key, label in (("snowline_median_m", "snowline median altitude"),
                       ("usgs_ela_m_same_years", "USGS ELA (same glacier-years)"),
                       ("usgs_ela_m", "USGS ELA (all matched years)")):
        for line in _row(label, s[key]):
            print(line)
    print(f"  ({report['seconds']} s)")
    if args.json:
        args.json.write_text(json.dumps(jsonable(report), indent=2))


if __name__ == "__main__":
    main()
