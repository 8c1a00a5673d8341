"""Measure the real Sentinel-1 RTC γ⁰ VV stack over Tsho Rolpa (Rolwaling, Nepal).

Data: ``s1_rtc_tsho_rolpa_series`` (66 ASF HyP3 RTC products, ``RTC20_G_gpufed``: 20 m, γ⁰,
power scale, unmasked, speckle-filtered, clipped by the npSAR-dl project; EPSG:32645,
135 × 144 px; nodata 0 = layover/shadow and the clip border). Contains modified Copernicus
Sentinel data 2015–2025, processed by ASF DAAC HyP3 (GAMMA). The files are read with rasterio
directly.

What is measured (printed as tables, all of it written to ``--json``):

* **Dates and geometry.** The UTC acquisition time from each file name; the local solar time
  ``UTC + lon/15 h`` at the grid centre; the pass (ascending ≈ 18:00, descending ≈ 06:00 local
  solar time) and the *geometry* (one relative orbit = one UTC time of day within a few
  seconds). Date spacing per geometry.
* **Co-location.** Each date's dB image is correlated with the temporal-mean dB image of every
  geometry. A geometry whose dates agree with each other but not with the others (and that
  does not show the lake, which cannot move) is reported as *not co-located* and left out of
  the surface statistics.
* **Surfaces** (no labels exist; the masks are derived from the data, approximate):
  ``lake``: Tsho Rolpa, the darkest area in the monsoon mean (Otsu threshold of the monsoon
  mean dB of the co-located geometries, largest connected component, holes filled), eroded by
  ``--erode`` px for the interior; ``north_side`` / ``south_side``: the terrain on either side
  of the lake's principal axis, more than ``--buffer`` px from the lake (valley walls, lateral
  moraines, alpine meadow, bedrock, seasonal snow); ``off_lake``: both sides together.
  The Trakarding Glacier terminus lies at the crop's south-east corner, where the lake meets
  the edge: the crop holds no measurable glacier area.
* **Per geometry × surface × season** (winter Dec–Mar, pre-monsoon Apr–May, monsoon Jun–Sep):
  mean / median / std of γ⁰ dB over all valid pixel-dates; the linear-power mean in dB; the
  date-to-date std of the area-mean dB (an upper bound of a per-date radiometric jitter: it
  includes real surface change); the spatial std of the seasonal mean dB (texture plus
  topography).
* **Speckle.** The equivalent number of looks ``ENL = mean² / var`` of linear power per date:
  (a) over the whole lake interior, (b) the median over non-overlapping ``--enl-window``² px
  windows that lie wholly inside a surface (local ENL, robust to large-scale gradients).
* **Layover/shadow.** The nodata fraction per date and geometry, with and without the clip
  border (pixels that are nodata in every date of every geometry).
* **Seasonal contrast per pixel:** monsoon minus winter mean dB, per geometry and surface.

Usage::

    python benchmarks/tsho_rolpa_statistics.py --json /tmp/tsho_rolpa.json
    python benchmarks/tsho_rolpa_statistics.py --masks benchmarks/data/tsho_rolpa_surfaces.geojson
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from scipy import ndimage

DATASET = "s1_rtc_tsho_rolpa_series"
SEASONS = {"winter": (12, 1, 2, 3), "pre_monsoon": (4, 5), "monsoon": (6, 7, 8, 9)}
NAME_RE = re.compile(r"^(S1[AB])_IW_(\d{8}T\d{6})_([DS][VH])([PRO])_RTC(\d+)_G_(\w{6})_"
                     r"([0-9A-F]{4})_VV")
REPO = Path(__file__).resolve().parents[1]


def data_folder(arg: str | None) -> Path:
    """The dataset folder: ``--data``, ``$GLACIERKIT_DATA/<name>`` or ``../shared/data``."""
    cands = [Path(arg)] if arg else []
    if os.environ.get("GLACIERKIT_DATA"):
        cands.append(Path(os.environ["GLACIERKIT_DATA"]) / DATASET)
    cands.append(REPO.parent / "shared" / "data" / DATASET)
    for c in cands:
        if (c / "tif").is_dir():
            return c
    raise SystemExit(f"{DATASET} not found in {[str(c) for c in cands]}; pass --data FOLDER.")


def parse_name(path: Path, lon: float) -> dict[str, Any]:
    """Acquisition facts from a HyP3 RTC file name."""
    m = NAME_RE.match(path.name)
    if m is None:
        raise SystemExit(f"{path.name}: not a HyP3 RTC file name.")
    utc = datetime.strptime(m.group(2), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    local = utc + timedelta(hours=lon / 15.0)
    hour = local.hour + local.minute / 60 + local.second / 3600
    return {"file": path.name, "mission": m.group(1), "utc": utc, "local_solar": local,
            "local_solar_h": hour, "pol": m.group(3), "orbit_type": m.group(4),
            "pixel_m": int(m.group(5)), "options": m.group(6), "product_id": m.group(7),
            "pass": "ascending" if 12 <= hour < 24 else "descending"}


def geometry_label(utc: datetime) -> str:
    """One label per relative orbit: the pass and the UTC time of day to the minute."""
    return f"{'asc' if utc.hour >= 12 else 'desc'}-{utc:%H:%M}"


def group_geometries(meta: list[dict[str, Any]]) -> list[str]:
    """Cluster UTC times of day (seconds) with a 3-minute gap into geometries."""
    tod = np.array([m["utc"].hour * 3600 + m["utc"].minute * 60 + m["utc"].second
                    for m in meta])
    order = np.argsort(tod)
    labels = [""] * len(meta)
    start = 0
    for k in range(1, len(order) + 1):
        if k == len(order) or tod[order[k]] - tod[order[k - 1]] > 180:
            members = order[start:k]
            med = int(np.median(tod[members]))
            name = geometry_label(meta[members[0]]["utc"].replace(
                hour=med // 3600, minute=(med % 3600) // 60, second=0))
            for i in members:
                labels[i] = name
            start = k
    return labels


def season_of(month: int) -> str | None:
    for s, months in SEASONS.items():
        if month in months:
            return s
    return None


def otsu(values: np.ndarray, bins: int = 256) -> float:
    """Otsu threshold of a 1-D sample."""
    hist, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres) / np.maximum(w0, 1)
    m1 = (np.sum(hist * centres) - np.cumsum(hist * centres)) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    return float(centres[int(np.argmax(between))])


def db(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return 10.0 * np.log10(x)


def nanmean_stack(a: np.ndarray) -> np.ndarray:
    cnt = np.sum(np.isfinite(a), axis=0)
    s = np.nansum(a, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, s / np.maximum(cnt, 1), np.nan)


def surface_masks(power: np.ndarray, geoms: list[str], seasons: list[str | None],
                  colocated: list[str], *, erode: int, buffer: int
                  ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Lake (+ interior) and the two lake sides, from the monsoon mean of co-located dates."""
    sel = [i for i, (g, s) in enumerate(zip(geoms, seasons, strict=True))
           if g in colocated and s == "monsoon"]
    per_geom = [db(nanmean_stack(power[[i for i in sel if geoms[i] == g]])) for g in colocated]
    mean_db = nanmean_stack(np.stack(per_geom))
    ok = np.isfinite(mean_db)
    thr = otsu(mean_db[ok])
    dark = ok & (mean_db < thr)
    lab, n = ndimage.label(dark)
    sizes = ndimage.sum(dark, lab, index=np.arange(1, n + 1))
    lake = lab == (int(np.argmax(sizes)) + 1)
    lake = ndimage.binary_fill_holes(ndimage.binary_opening(lake, iterations=1))
    interior = ndimage.binary_erosion(lake, iterations=erode)
    near = ndimage.binary_dilation(lake, iterations=buffer)
    rr, cc = np.nonzero(lake)
    pts = np.stack([cc, -rr]).astype(float)            # x east, y north (pixel units)
    centre = pts.mean(axis=1, keepdims=True)
    _, vecs = np.linalg.eigh(np.cov(pts - centre))
    axis = vecs[:, -1]                                   # principal axis (unit vector)
    h, w = lake.shape
    yy, xx = np.mgrid[0:h, 0:w]
    rel = np.stack([xx - centre[0, 0], -yy - centre[1, 0]])
    cross = axis[0] * rel[1] - axis[1] * rel[0]          # > 0 left of the axis
    normal = np.array([-axis[1], axis[0]])               # left normal
    north_is_left = normal[1] > 0
    left = cross > 0
    north = (left if north_is_left else ~left) & ~near
    south = (~left if north_is_left else left) & ~near
    masks = {"lake": lake, "lake_interior": interior, "north_side": north,
             "south_side": south, "off_lake": north | south}
    bearing = float(np.degrees(np.arctan2(axis[0], axis[1])) % 180)
    info = {"otsu_threshold_db": thr, "lake_px": int(lake.sum()),
            "lake_area_km2": float(lake.sum() * 400 / 1e6),
            "lake_interior_px": int(interior.sum()), "axis_bearing_deg": bearing,
            "erode_px": erode, "buffer_px": buffer}
    return masks, info


def enl_whole(p: np.ndarray, m: np.ndarray) -> float:
    v = p[m & np.isfinite(p)]
    if v.size < 50:
        return float("nan")
    return float(v.mean() ** 2 / v.var(ddof=1))


def enl_local(p: np.ndarray, m: np.ndarray, win: int) -> tuple[float, int]:
    """Median ENL of non-overlapping win×win windows wholly inside ``m`` and valid."""
    h, w = p.shape
    hh, ww = h // win * win, w // win * win
    ok = (m & np.isfinite(p))[:hh, :ww].reshape(hh // win, win, ww // win, win)
    vals = p[:hh, :ww].reshape(hh // win, win, ww // win, win)
    full = ok.all(axis=(1, 3))
    if not full.any():
        return float("nan"), 0
    blocks = vals.transpose(0, 2, 1, 3)[full].reshape(-1, win * win)
    enl = blocks.mean(1) ** 2 / blocks.var(1, ddof=1)
    return float(np.median(enl)), int(full.sum())


def autocorrelation(img: np.ndarray, mask: np.ndarray, max_lag: int) -> list[float]:
    """Mean of the row- and column-wise autocorrelation of ``img`` inside ``mask``."""
    z = np.where(mask & np.isfinite(img), img, np.nan)
    z = z - np.nanmean(z)
    out = []
    for lag in range(1, max_lag + 1):
        cs = []
        for a, b in ((z[:, :-lag], z[:, lag:]), (z[:-lag], z[lag:])):
            ok = np.isfinite(a) & np.isfinite(b)
            cs.append(float(np.corrcoef(a[ok], b[ok])[0, 1]))
        out.append(float(np.mean(cs)))
    return out


def speckle_lag1(p: np.ndarray, mask: np.ndarray) -> float:
    """Lag-1 correlation of intensity / 9×9 local mean − 1 inside ``mask`` (rows and cols)."""
    fin = np.isfinite(p)
    num = ndimage.uniform_filter(np.where(fin, p, 0.0), 9)
    den = ndimage.uniform_filter(fin.astype(float), 9)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = p / (num / den) - 1.0
    cs = []
    for a, b, ma, mb in ((z[:, :-1], z[:, 1:], mask[:, :-1], mask[:, 1:]),
                         (z[:-1], z[1:], mask[:-1], mask[1:])):
        ok = ma & mb & np.isfinite(a) & np.isfinite(b)
        cs.append(float(np.corrcoef(a[ok], b[ok])[0, 1]))
    return float(np.mean(cs))


def generator_defaults(r: dict[str, Any]) -> dict[str, Any]:
    """The numbers :mod:`glacierkit.dl.synthetic_series` takes as defaults, from ``r``."""
    st, geo = r["stats"], r["colocated"]

    def avg(surf: str, season: str, key: str = "linear_mean_db") -> float:
        return float(np.mean([st[f"{g}|{surf}|{season}"][key] for g in geo]))

    enl = []
    jit = []
    for g in geo:
        enl.append(st[f"{g}|lake_interior|all"]["enl_local_median"]["median"])
        for s in ("winter", "monsoon"):
            jit.append(st[f"{g}|off_lake|{s}"]["date_to_date_std_db"])
    efold = [r["spatial"][g]["offlake_e_fold_px"] for g in geo]
    px = r["grid"]["pixel_m"][0]
    return {
        "rock_dry_db": avg("off_lake", "winter"), "rock_melt_db": avg("off_lake", "monsoon"),
        "water_dry_db": avg("lake_interior", "winter"),
        "water_melt_db": avg("lake_interior", "monsoon"),
        "looks_per_geometry": enl, "looks": float(np.mean(enl)),
        "jitter_db_samples": jit, "jitter_db": float(np.median(jit)),
        "texture_e_fold_m": float(np.mean(efold) * px),
        "texture_scale_m": float(np.mean(efold) * px / 2),
        "offlake_spatial_std_db": [st[f"{g}|off_lake|all"]["spatial_std_of_mean_db"]
                                   for g in geo],
        "layover_shadow_fraction": {g: r["geometries"][g]["layover_shadow_fraction"]["median"]
                                    for g in geo},
        "local_solar_h": {g: r["geometries"][g]["local_solar_h"]["median"] for g in geo},
    }


def summarise(x: list[float]) -> dict[str, float]:
    a = np.asarray([v for v in x if np.isfinite(v)], dtype=float)
    if a.size == 0:
        return {"n": 0}
    return {"n": int(a.size), "median": float(np.median(a)), "min": float(a.min()),
            "max": float(a.max()), "mean": float(a.mean())}


def spacing(dates: list[datetime]) -> dict[str, Any]:
    d = sorted(dates)
    gaps = np.diff([x.timestamp() / 86400 for x in d]) if len(d) > 1 else np.array([])
    yearly = [x for x in d if x.year >= 2021]
    gy = np.diff([x.timestamp() / 86400 for x in yearly]) if len(yearly) > 1 else np.array([])
    within = [g for g, a, b in zip(gy, yearly[:-1], yearly[1:], strict=True) if a.year == b.year]
    per_year = defaultdict(int)
    for x in d:
        per_year[x.year] += 1
    return {"n": len(d), "first": d[0].isoformat() if d else None,
            "last": d[-1].isoformat() if d else None,
            "gap_days_all": summarise(list(gaps)),
            "gap_days_within_year_2021_2025": summarise(within),
            "multiple_of_12_days": float(np.mean(np.isclose(np.round(np.asarray(within)) % 12, 0)))
            if within else None,
            "per_year": dict(sorted(per_year.items())),
            "months": sorted({x.month for x in d})}


def measure(folder: Path, *, erode: int, buffer: int, enl_window: int) -> dict[str, Any]:
    paths = sorted((folder / "tif").glob("*.tif"))
    with rasterio.open(paths[0]) as ds:
        transform, crs, shape = ds.transform, ds.crs, (ds.height, ds.width)
        nodata = ds.nodata
    from pyproj import Transformer
    cx, cy = transform * (shape[1] / 2, shape[0] / 2)
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(cx, cy)
    meta = [parse_name(p, lon) for p in paths]
    raw = np.empty((len(paths), *shape), dtype=np.float64)
    for i, p in enumerate(paths):
        with rasterio.open(p) as ds:
            if ds.transform != transform or ds.crs != crs or (ds.height, ds.width) != shape:
                raise SystemExit(f"{p.name} is not on the grid of {paths[0].name}.")
            raw[i] = ds.read(1)
    nod = (raw == nodata) | ~np.isfinite(raw)
    power = np.where(nod, np.nan, raw)
    geoms = group_geometries(meta)
    seasons = [season_of(m["utc"].month) for m in meta]
    gnames = sorted(set(geoms))
    dbs = db(power)

    # ---- co-location: correlation of each date with each geometry's temporal mean
    gmean = {g: nanmean_stack(dbs[[i for i, x in enumerate(geoms) if x == g]]) for g in gnames}

    def corr(a: np.ndarray, b: np.ndarray) -> float:
        ok = np.isfinite(a) & np.isfinite(b)
        return float(np.corrcoef(a[ok], b[ok])[0, 1])

    coloc: dict[str, dict[str, Any]] = {}
    for g in gnames:
        idx = [i for i, x in enumerate(geoms) if x == g]
        row = {}
        for h in gnames:
            vals = []
            for i in idx:
                if h == g:   # leave-one-out mean of its own geometry
                    others = [j for j in idx if j != i]
                    ref = nanmean_stack(dbs[others]) if others else gmean[g]
                else:
                    ref = gmean[h]
                vals.append(corr(dbs[i], ref))
            row[h] = summarise(vals)
        coloc[g] = row
    # The reference geometry: the one with most dates among those that agree with the others.
    pair = {(g, h): coloc[g][h]["median"] for g in gnames for h in gnames if g != h}
    colocated = [g for g in gnames
                 if max((pair[(g, h)] for h in gnames if h != g), default=1.0) > 0.35]

    masks, mask_info = surface_masks(power, geoms, seasons, colocated, erode=erode,
                                     buffer=buffer)
    # lake visibility per geometry: lake interior minus off-lake monsoon contrast
    for g in gnames:
        idx = [i for i, (x, s) in enumerate(zip(geoms, seasons, strict=True))
               if x == g and s == "monsoon"]
        m = db(nanmean_stack(power[idx]))
        coloc[g]["monsoon_lake_minus_offlake_db"] = float(
            np.nanmean(m[masks["lake_interior"]]) - np.nanmean(m[masks["off_lake"]]))
        coloc[g]["colocated"] = g in colocated

    border = nod.all(axis=0)
    out: dict[str, Any] = {
        "dataset": DATASET, "files": len(paths), "grid": {
            "crs": str(crs), "shape": list(shape), "pixel_m": [transform.a, -transform.e],
            "centre_lon_lat": [lon, lat]},
        "naming": {"options": sorted({m["options"] for m in meta}),
                   "pol": sorted({m["pol"] for m in meta}),
                   "orbit_type": sorted({m["orbit_type"] for m in meta})},
        "geometries": {}, "colocation": coloc, "colocated": colocated, "masks": mask_info,
        "clip_border_fraction": float(border.mean()),
    }
    for g in gnames:
        idx = [i for i, x in enumerate(geoms) if x == g]
        lt = [meta[i]["local_solar_h"] for i in idx]
        utc_tod = sorted({meta[i]["utc"].strftime("%H:%M:%S") for i in idx})
        nfr = [float(nod[i].mean()) for i in idx]
        nfr_ls = [float(nod[i][~border].mean()) for i in idx]
        # Is the layover/shadow mask the same on every date (geometry-driven)?
        stack = nod[idx][:, ~border]
        always, ever = stack.all(0), stack.any(0)
        out["geometries"][g] = {
            "pass": meta[idx[0]]["pass"], "n_dates": len(idx), "utc_times": utc_tod,
            "local_solar_h": summarise(lt), "spacing": spacing([meta[i]["utc"] for i in idx]),
            "nodata_fraction": summarise(nfr),
            "layover_shadow_fraction": summarise(nfr_ls),
            "layover_shadow_stable_jaccard": float(always.sum() / max(ever.sum(), 1)),
            "n_per_season": {s: sum(seasons[i] == s for i in idx) for s in SEASONS},
        }
    out["passes"] = {}
    for ps in ("ascending", "descending"):
        idx = [i for i, m in enumerate(meta) if m["pass"] == ps]
        out["passes"][ps] = {"n_dates": len(idx),
                             "spacing": spacing([meta[i]["utc"] for i in idx]),
                             "local_solar_h": summarise([meta[i]["local_solar_h"] for i in idx])}
    out["all_dates_spacing"] = spacing([m["utc"] for m in meta])

    # ---- statistics per geometry × surface × season
    stats: dict[str, Any] = {}
    surfaces = ("lake_interior", "north_side", "south_side", "off_lake")
    for g in gnames:
        for surf in surfaces:
            m = masks[surf]
            for s in (*SEASONS, "all"):
                idx = [i for i, (x, ss) in enumerate(zip(geoms, seasons, strict=True))
                       if x == g and (s == "all" or ss == s)]
                if not idx:
                    continue
                v = dbs[idx][:, m]
                lin = power[idx][:, m]
                fin = np.isfinite(v)
                if not fin.any():
                    continue
                per_date = [float(np.nanmean(db(np.nanmean(lin[k:k + 1], axis=1))))
                            for k in range(len(idx))]
                seas_mean = db(nanmean_stack(power[idx]))[m]
                enl_l = [enl_local(power[i], m, enl_window)[0] for i in idx]
                stats[f"{g}|{surf}|{s}"] = {
                    "geometry": g, "surface": surf, "season": s, "n_dates": len(idx),
                    "n_samples": int(fin.sum()),
                    "mean_db": float(np.nanmean(v)), "median_db": float(np.nanmedian(v)),
                    "std_db": float(np.nanstd(v)),
                    "linear_mean_db": float(db(np.nanmean(lin))),
                    "date_to_date_std_db": float(np.std(per_date)) if len(idx) > 1 else None,
                    "spatial_std_of_mean_db": float(np.nanstd(seas_mean)),
                    "enl_local_median": summarise(enl_l),
                    "enl_whole": summarise([enl_whole(power[i], m) for i in idx]),
                }
    out["stats"] = stats

    # ---- seasonal contrast: monsoon minus winter, per geometry and surface
    contrast = {}
    for g in gnames:
        mm = {s: db(nanmean_stack(power[[i for i, (x, ss) in enumerate(zip(geoms, seasons,
                                                                                strict=True))
                                             if x == g and ss == s]]))
              for s in ("winter", "monsoon")}
        d = mm["monsoon"] - mm["winter"]
        contrast[g] = {surf: {"median_db": float(np.nanmedian(d[masks[surf]])),
                              "p10_db": float(np.nanpercentile(d[masks[surf]], 10)),
                              "p90_db": float(np.nanpercentile(d[masks[surf]], 90)),
                              "frac_below_minus3db": float(np.nanmean(d[masks[surf]] < -3))}
                       for surf in surfaces}
    out["monsoon_minus_winter"] = contrast

    # ---- lake ice: per-date lake interior mean (seasonal cycle of the lake)
    out["lake_series"] = [
        {"utc": meta[i]["utc"].isoformat(), "geometry": geoms[i],
         "lake_db": float(db(np.nanmean(power[i][masks["lake_interior"]]))),
         "off_lake_db": float(db(np.nanmean(power[i][masks["off_lake"]])))}
        for i in range(len(meta)) if geoms[i] in colocated]
    # ---- spatial structure: texture correlation length; speckle correlation on the lake
    out["spatial"] = {}
    for g in colocated:
        idx = [i for i, x in enumerate(geoms) if x == g]
        acf = autocorrelation(db(nanmean_stack(power[idx])), masks["off_lake"], 12)
        e_fold = next((k for k, c in enumerate(acf, start=1) if c < np.exp(-1)), None)
        lag1 = [speckle_lag1(power[i], masks["lake_interior"]) for i in idx]
        out["spatial"][g] = {"offlake_mean_db_acf": acf, "offlake_e_fold_px": e_fold,
                             "lake_speckle_lag1_corr": summarise(lag1)}
    out["generator_defaults"] = generator_defaults(out)
    out["_masks"] = masks
    out["_grid"] = (transform, crs)
    return out


def write_masks(path: Path, masks: dict[str, np.ndarray], transform: Any, crs: Any) -> None:
    """Polygons of the derived surface masks as GeoJSON (EPSG:4326, rounded to 1e-6°)."""
    import geopandas as gpd
    import shapely
    from rasterio import features

    rows = []
    for name in ("lake", "north_side", "south_side"):
        shapes = [shapely.geometry.shape(s) for s, v in features.shapes(
            masks[name].astype(np.uint8), mask=masks[name], transform=transform) if v == 1]
        geom = shapely.unary_union(shapes).simplify(10.0)
        rows.append({"surface": name, "geometry": geom})
    gdf = gpd.GeoDataFrame(rows, crs=crs).to_crs("EPSG:4326")
    gdf["geometry"] = shapely.set_precision(gdf.geometry.values, 1e-6)
    gdf["note"] = ("approximate mask derived from the Sentinel-1 stack by "
                   "benchmarks/tsho_rolpa_statistics.py (glacierkit developers); not an "
                   "authoritative outline")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(gdf.to_json(drop_id=True, to_wgs84=False) + "\n")


def print_tables(r: dict[str, Any]) -> None:
    print(f"{r['files']} files, grid {r['grid']['shape']} px, centre lon/lat "
          f"{r['grid']['centre_lon_lat'][0]:.4f}/{r['grid']['centre_lon_lat'][1]:.4f}; "
          f"options {r['naming']}")
    print("\ngeometry   pass        n  UTC            local solar h  nodata  layover/shadow  "
          "gap(days, 2021-25 within year) median [min,max]  co-located  lake contrast")
    for g, v in r["geometries"].items():
        sp = v["spacing"]["gap_days_within_year_2021_2025"]
        c = r["colocation"][g]
        print(f"{g:10s} {v['pass']:10s} {v['n_dates']:3d}  {v['utc_times'][0]}-"
              f"{v['utc_times'][-1]}  {v['local_solar_h']['median']:6.2f}  "
              f"{v['nodata_fraction']['median']:.3f}  {v['layover_shadow_fraction']['median']:.3f}"
              f"  {sp.get('median', float('nan')):6.1f} [{sp.get('min', float('nan')):.0f},"
              f"{sp.get('max', float('nan')):.0f}]  {c['colocated']}  "
              f"{c['monsoon_lake_minus_offlake_db']:+.1f} dB")
    print("\nco-location (median correlation of a date's dB with each geometry's mean):")
    for g, row in r["colocation"].items():
        print(f"  {g}: " + ", ".join(f"{h} {row[h]['median']:.2f}"
                                      for h in r["geometries"]))
    print(f"\nmasks: {r['masks']}")
    for g, v in r["spatial"].items():
        print(f"spatial {g}: off-lake ACF {[round(c, 2) for c in v['offlake_mean_db_acf'][:6]]}"
              f" e-fold {v['offlake_e_fold_px']} px; lake speckle lag-1 correlation "
              f"{v['lake_speckle_lag1_corr']['median']:.2f}")
    print("\ngeometry   surface        season       n  mean dB  median  std  lin-mean  "
          "date-std  spatial-std  ENL local (whole)")
    for v in r["stats"].values():
        if v["geometry"] not in r["colocated"]:
            continue
        dd = v["date_to_date_std_db"]
        print(f"{v['geometry']:10s} {v['surface']:14s} {v['season']:11s} {v['n_dates']:3d}  "
              f"{v['mean_db']:7.2f} {v['median_db']:7.2f} {v['std_db']:5.2f} "
              f"{v['linear_mean_db']:7.2f}  {dd if dd is None else round(dd, 2)!s:>6}  "
              f"{v['spatial_std_of_mean_db']:6.2f}   "
              f"{v['enl_local_median'].get('median', float('nan')):6.1f} "
              f"({v['enl_whole'].get('median', float('nan')):.1f})")
    print("\nmonsoon minus winter (per pixel, dB): median [p10, p90], share < -3 dB")
    for g in r["colocated"]:
        for surf, c in r["monsoon_minus_winter"][g].items():
            print(f"  {g:10s} {surf:14s} {c['median_db']:+.2f} [{c['p10_db']:+.2f}, "
                  f"{c['p90_db']:+.2f}]  {c['frac_below_minus3db']:.2f}")
    print("\ngenerator defaults derived from these numbers:")
    for k, v in r["generator_defaults"].items():
        print(f"  {k}: {v}")


def synthetic_comparison(seed: int = 0, pixel_m: float = 20.0) -> dict[str, Any]:
    """The same statistics on a series of the generator on a real grid: 12 × 12 km of the
    Ötztal SRTM and RGI outlines around Hintereisferner, at the stack's 20 m."""
    from glacierkit.dl.synthetic_series import real_grid_scene, sample_dates, synthetic_series

    crop = (628000.0, 5180000.0, 640000.0, 5192000.0)           # EPSG:32632, metres
    sc = real_grid_scene("oetztal", pixel_size_m=pixel_m, bounds=crop)
    dates = sample_dates((2021, 2025), mode="irregular", per_year=6, months=range(1, 10),
                         seed=seed, longitude=10.9)
    r = synthetic_series(sc.labels, dates, dem=sc.dem, pixel_size=(pixel_m, pixel_m),
                         seed=seed, with_coherence=False)
    seasons = [season_of(t.month) for t in r.dates]
    masks = {"off_glacier": r.classes == 0, "glacier": r.classes == 1}
    out: dict[str, Any] = {"scene": "oetztal", "bounds_epsg32632": list(crop),
                           "shape": list(sc.grid.shape), "pixel_m": pixel_m,
                           "glacier_fraction": float(sc.labels.mean()),
                           "n_dates": len(dates), "passes": {}}
    for ps in ("ascending", "descending"):
        idx = [i for i, d in enumerate(r.directions) if d == ps]
        acf = autocorrelation(db(nanmean_stack(r.power[idx])), masks["off_glacier"], 6)
        row: dict[str, Any] = {
            "offglacier_mean_db_acf": acf,
            "layover_shadow_fraction": float((r.layover[ps] | r.shadow[ps]).mean()),
            "layover_fraction": float(r.layover[ps].mean()),
            "shadow_fraction": float(r.shadow[ps].mean())}
        for surf, m in masks.items():
            for sea in ("winter", "monsoon"):
                ii = [i for i in idx if seasons[i] == sea]
                per_date = [float(db(np.nanmean(r.power[i][m]))) for i in ii]
                row[f"{surf}|{sea}"] = {
                    "n_dates": len(ii),
                    "linear_mean_db": float(db(np.nanmean(r.power[ii][:, m]))),
                    "date_to_date_std_db": float(np.std(per_date)),
                    "spatial_std_of_mean_db": float(np.nanstd(
                        db(nanmean_stack(r.power[ii]))[m])),
                    "enl_local_median": float(np.nanmedian(
                        [enl_local(r.power[i].astype(float), m, 7)[0] for i in ii]))}
        out["passes"][ps] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", help=f"the {DATASET} folder (default: ../shared/data)")
    ap.add_argument("--json", type=Path, help="write all measurements to this JSON file")
    ap.add_argument("--masks", type=Path, help="write the derived surface masks (GeoJSON)")
    ap.add_argument("--erode", type=int, default=2, help="lake interior erosion (px)")
    ap.add_argument("--buffer", type=int, default=3, help="off-lake distance from the lake (px)")
    ap.add_argument("--enl-window", type=int, default=7, help="local ENL window edge (px)")
    ap.add_argument("--synthetic", action="store_true",
                    help="also run the generator on the Ötztal grid and print the same numbers")
    a = ap.parse_args()
    r = measure(data_folder(a.data), erode=a.erode, buffer=a.buffer, enl_window=a.enl_window)
    masks, (transform, crs) = r.pop("_masks"), r.pop("_grid")
    print_tables(r)
    if a.synthetic:
        syn = synthetic_comparison()
        r["synthetic_oetztal"] = syn
        print(f"\nsynthetic series on the Ötztal grid ({syn['shape']} px, {syn['pixel_m']} m, "
              f"glacier {syn['glacier_fraction']:.2f}, {syn['n_dates']} dates):")
        for ps, row in syn["passes"].items():
            print(f"  {ps}: layover {row['layover_fraction']:.3f}, shadow "
                  f"{row['shadow_fraction']:.4f}")
            for k, v in row.items():
                if isinstance(v, dict):
                    print(f"    {k:22s} n={v['n_dates']:2d} lin-mean {v['linear_mean_db']:6.2f}"
                          f"  date-std {v['date_to_date_std_db']:.2f}  spatial-std "
                          f"{v['spatial_std_of_mean_db']:.2f}  ENL local "
                          f"{v['enl_local_median']:.1f}")
    if a.masks:
        write_masks(a.masks, masks, transform, crs)
        print(f"\nwrote {a.masks}")
    if a.json:
        a.json.write_text(json.dumps(r, indent=1, default=str) + "\n")
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
