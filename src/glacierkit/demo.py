"""``glacierkit demo``: every pipeline on the real example data, into one browsable folder.

Each pipeline contributes a :class:`DemoStep`; :func:`run_demo` runs them in order, records
their outputs, timings and key numbers in ``summary.json`` and writes ``index.html`` (open it
in a browser). A step that cannot find its data fails the demo with the data-registry error
(which says how to get the data); the library never downloads during the demo.

Foundation steps (this module): describe the Yahtse Landsat-8 pair; a tiled, blended
high-pass filter pass over the reference scene written as a COG (and checked against the same
filter applied to the whole scene at once); outline overlays (Yahtse rock polygons, Everest RGI
outlines) with a rasterized glacier mask and polygonized outlines with areas in km².
"""

from __future__ import annotations

import html
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from glacierkit import __version__, examples
from glacierkit.errors import OutputExistsError
from glacierkit.io import open_raster, polygonize, rasterize, read_vector, write_raster
from glacierkit.io.info import describe
from glacierkit.io.vector import footprint_frame, write_outlines, write_vector
from glacierkit.velocity.prefilter import gaussian_highpass
from glacierkit.viz import clip_to, quicklook

log = logging.getLogger(__name__)


@dataclass
class StepResult:
    """What one demo step produced."""

    name: str
    title: str
    seconds: float
    outputs: list[Path]
    numbers: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DemoStep:
    """A demo step: ``run(out_dir) -> (outputs, numbers, notes)``."""

    name: str
    title: str
    run: Callable[[Path], tuple[list[Path], dict[str, Any], list[str]]]


# ----------------------------------------------------------------------------- steps
def _step_info(out: Path) -> tuple[list[Path], dict[str, Any], list[str]]:
    d = examples.path("carst_yahtse_landsat8_pair")
    files = ["LC80630182016200LGN00_B8_yahtse.TIF", "LC80630182016216LGN00_B8_yahtse.TIF",
             "yahtse_srtm_dem.tif", "yahtse_stable_rock.shp"]
    info = {f: describe(d / f) for f in files}
    p = out / "yahtse_info.json"
    p.write_text(json.dumps(info, indent=2))
    ref = info[files[0]]
    numbers = {"reference_crs": ref["crs"], "width": ref["width"], "height": ref["height"],
               "resolution_m": ref["resolution"][0], "dtype": ref["dtypes"][0],
               "rock_polygons": info[files[3]]["feature_count"]}
    return [p], numbers, []


def _step_tiled(out: Path) -> tuple[list[Path], dict[str, Any], list[str]]:
    from glacierkit.tiling import run_tiled

    d = examples.path("carst_yahtse_landsat8_pair")
    src = d / "LC80630182016200LGN00_B8_yahtse.TIF"
    sigma = 8.0
    # The float Gaussian kernel reaches 4 σ: with "core" blending and overlap = 2 × 4 σ every
    # output pixel comes from a tile holding its whole kernel, so the tiled result must equal
    # the whole-scene filter up to float rounding.
    overlap = int(np.ceil(4 * sigma)) * 2

    def fn(arrays: list[np.ndarray], tile: Any) -> np.ndarray:
        return gaussian_highpass(arrays[0][0], sigma_px=sigma)[None]

    cog = out / "yahtse_highpass_tiled.tif"
    t0 = time.perf_counter()
    run_tiled([src], cog, fn, tile_size=256, overlap=overlap, blend="core",
              band_names=["highpass_pan"], units="DN",
              tags={"filter": "gaussian high-pass", "sigma_px": sigma, "tile_size_px": 256,
                    "overlap_px": overlap, "source": src.name},
              progress=False, overwrite=True)
    seconds = time.perf_counter() - t0
    tiled = open_raster(cog)
    whole = gaussian_highpass(open_raster(src).data[0], sigma_px=sigma)
    diff = np.nanmax(np.abs(tiled.data[0] - whole))
    png = quicklook(tiled, out / "yahtse_highpass_tiled.png", cmap="gray", overwrite=True,
                    title=f"Yahtse 2016-07-18 pan, Gaussian high-pass (σ={sigma:g} px), "
                          f"tiled 256 px / overlap {overlap} px")
    numbers = {"tiled_seconds": round(seconds, 2),
               "max_abs_diff_tiled_vs_whole_DN": float(diff),
               "tile_size_px": 256, "overlap_px": overlap}
    notes = [f"Tiled result (core blending, overlap {overlap} px = twice the kernel radius) "
             f"differs from the whole-scene filter by at most {diff:.3g} DN."]
    return [cog, png], numbers, notes


def _step_outlines(out: Path) -> tuple[list[Path], dict[str, Any], list[str]]:
    yd = examples.path("carst_yahtse_landsat8_pair")
    pan = open_raster(yd / "LC80630182016200LGN00_B8_yahtse.TIF")
    rock = read_vector(yd / "yahtse_stable_rock.shp")
    p1 = quicklook(pan, out / "yahtse_rock_polygons.png", overwrite=True,
                   outlines=[(rock, "orange", "stable rock polygons")],
                   title="Yahtse Glacier, Landsat-8 pan 2016-07-18, stable-rock polygons")
    ed = examples.path("geoutils_everest_exploradores") / "Everest_Landsat"
    rgb = open_raster(ed / "LE71400412000304SGS00_RGB.tif")
    rgi = read_vector(ed / "15_rgi60_glacier_outlines.gpkg")
    p2 = quicklook(rgb, out / "everest_rgi_outlines.png", overwrite=True,
                   outlines=[(rgi, "cyan", "RGI 6.0 outlines")],
                   title="Everest, Landsat-7 RGB 2000-10-30, RGI 6.0 outlines")
    mask = rasterize(rgi, rgb.grid, name="RGI outlines")
    p3 = write_raster(out / "everest_rgi_mask.tif", mask, rgb.grid, nodata=255,
                      band_names=["glacier"], units="class",
                      colormap={0: (40, 40, 40), 1: (120, 200, 255)},
                      band_tags=[{"class_names": {"0": "off-glacier", "1": "glacier"}}],
                      tags={"source": "RGI 6.0 outlines rasterized on the Landsat-7 grid"},
                      overview_resampling="nearest", overwrite=True)
    polys = polygonize(mask, rgb.grid, class_names={1: "glacier"})
    # With the scene footprint: the RGI outlines were cut to the Landsat scene.
    p4 = write_outlines(polys, out / "everest_glacier_polygons.gpkg", overwrite=True,
                        footprint=footprint_frame(rgb.valid.all(axis=0), rgb.grid))
    numbers = {"rock_polygons": len(rock), "rgi_outlines": len(rgi),
               "glacier_pixels": int(mask.sum()),
               "glacier_area_in_crop_km2": round(float(polys["area_km2"].sum()), 3),
               "polygons": len(polys)}
    return [p1, p2, p3, p4], numbers, []


def _step_velocity(out: Path) -> tuple[list[Path], dict[str, Any], list[str]]:
    from glacierkit.velocity.pipeline import TrackingParams, run_velocity

    d = examples.path("carst_yahtse_landsat8_pair")
    vout = out / "velocity_yahtse"
    res = run_velocity(d / "LC80630182016200LGN00_B8_yahtse.TIF",
                       d / "LC80630182016216LGN00_B8_yahtse.TIF", vout,
                       params=TrackingParams(chip_size_px=32, search_px=32, step_px=8),
                       stable=d / "yahtse_stable_rock.shp", dem=d / "yahtse_srtm_dem.tif",
                       overwrite=True)
    counts = res.report["status_counts"]
    corr = res.report["corrections"]
    total = sum(counts.values())
    v = open_raster(vout / "velocity.tif").band("v")
    numbers = {"dt_days": round(res.report["time"]["dt_days"], 4),
               "nodes": total, "valid_share": round(counts["OK"] / total, 3),
               "tracking_seconds": res.report["tracking"]["seconds"],
               "speed_p95_m_per_yr": round(float(np.nanpercentile(v, 95)), 1),
               "stable_nodes": corr["stable"]["after"]["n"]}
    for when in ("before", "after"):
        for c in ("dx", "dy"):
            numbers[f"stable_nmad_{c}_px_{when}"] = round(corr["stable"][when][c]["nmad"], 4)
    numbers["stable_nmad_vx_vy_m_per_yr_after"] = [
        round(corr["stable_after_m_per_unit"][c]["nmad"], 1) for c in ("dx", "dy")]
    notes = ["Outliers removed by the NDC, MAD and small-clump filters; constant shift, then a "
             "joint plane + elevation regression fitted on the 42 rock polygons with the SRTM "
             "DEM. Stable-ground quality (NMAD, GLAFT static-area metric) is in "
             "velocity_yahtse/report.json; `glacierkit velocity-qa` recomputes it."]
    return res.outputs, numbers, notes


FOUNDATION_STEPS: tuple[DemoStep, ...] = (
    DemoStep("info", "Yahtse Landsat-8 pair: file facts", _step_info),
    DemoStep("tiling", "Tiled, blended pass over a real scene → COG", _step_tiled),
    DemoStep("outlines", "Outlines on imagery: overlay, rasterize, polygonize", _step_outlines),
)


VELOCITY_STEPS: tuple[DemoStep, ...] = (
    DemoStep("velocity", "Surface velocity, Yahtse Glacier, Landsat-8 2016-07-18 → 08-03",
             _step_velocity),
)


def _step_mapping(out: Path) -> tuple[list[Path], dict[str, Any], list[str]]:
    import tomllib

    from glacierkit.mapping.baseline import run_baseline
    from glacierkit.mapping.config import TEMPLATE, parse_config
    from glacierkit.mapping.pipeline import train_mapping

    ed = examples.path("geoutils_everest_exploradores") / "Everest_Landsat"
    mout = out / "mapping_everest"
    bdir = mout / "baseline"
    bdir.mkdir(parents=True, exist_ok=True)
    base = run_baseline([ed / "LE71400412000304SGS00_RGB.tif", ed / "LE71400412000304SGS00_B4.tif"],
                        [["red", "green", "blue"], ["nir"]], bdir, overwrite=True)
    raw = tomllib.loads(TEMPLATE)
    # Relative to the config's base (mout): a relative --out must not be joined twice.
    raw["output"] = {"dir": "glavitu", "overwrite": True}
    # A short schedule for the demo; benchmarks/everest_mapping.py trains longer.
    raw["train"].update(epochs=4, samples_per_epoch=256, progress=False)
    rep = train_mapping(parse_config(raw, base=mout))
    s = rep["scenes"]["everest"]
    tdir = mout / "glavitu" / "test-everest"
    rgb = open_raster(ed / "LE71400412000304SGS00_RGB.tif")
    pred = read_vector(tdir / "outlines.gpkg")
    rgi = read_vector(ed / "15_rgi60_glacier_outlines.gpkg")
    png = quicklook(rgb, mout / "everest_glavitu_vs_rgi.png", overwrite=True,
                    outlines=[(rgi, "cyan", "RGI 6.0"), (pred, "magenta", "GlaViTU (tiny)")],
                    title="Everest: tiny GlaViTU outlines (magenta) vs RGI 6.0 (cyan)")
    m, b = s["model"], s["baseline"]["metrics"]
    numbers = {"test_part_share": round(s["test_fraction_of_scene"], 3),
               "glavitu_test_iou": round(m["iou"], 3), "glavitu_test_f1": round(m["f1"], 3),
               "glavitu_area_dev_pct": round(m["area_dev_pct"], 1),
               "glavitu_boundary_mean_m": round(m["boundary_mean_m"], 0),
               "baseline_test_iou": round(b["iou"], 3),
               "baseline_method": base["method"],
               "ece_before": round(s["calibration"]["ece_before"], 3),
               "ece_after": round(s["calibration"]["ece_after"], 3),
               "calibration": rep["models"]["model.gkm"]["calibration"]["method"],
               "train_seconds": round(rep["train_seconds"], 1)}
    outputs = [mout / "glavitu" / "model.gkm", mout / "glavitu" / "report.json",
               tdir / "classes.tif", tdir / "confidence.tif", tdir / "outlines.gpkg",
               tdir / "reliability.png", png, bdir / "classes.tif", bdir / "outlines.gpkg"]
    notes = ["Trained on the western part of the scene, tested on the eastern part (never "
             "trained on; calibration chosen on the validation strip between them). A short "
             "demo schedule: the Everest validation page of the documentation has the longer "
             "benchmark and the ResU-Net."]
    return outputs, numbers, notes


MAPPING_STEPS: tuple[DemoStep, ...] = (
    DemoStep("mapping", "Glacier outlines, Everest Landsat-7: GlaViTU (tiny) vs threshold "
             "baseline", _step_mapping),
)


SERIES_CONFIG = {
    "output": {"dir": "utae", "overwrite": True},
    "layout": {"s1": {"kind": "sar", "bands": ["vv"], "scale": "power", "time": True}},
    "scenes": [{"name": "oetztal_synthetic", "labels": "labels.tif",
                "sources": {"s1": "s1_synthetic/dates.csv"}}],
    "series": {"direction": "descending", "dates_per_year": 0},
    "split": {"kind": "half", "axis": "cols", "test_fraction": 0.3, "val_fraction": 0.2},
    "model": {"arch": "utae", "size": "tiny"},
    "train": {"patch_size": 32, "samples_per_epoch": 128, "epochs": 8, "batch_size": 8,
              "lr": 0.003, "progress": False},
    "augment": {"date_jitter_days": 3.0, "date_dropout": 0.1},
    "calibration": {"method": "temperature"},
    "inference": {"tile_size": 128, "overlap": 32},
}
"""``map train`` config of the demo's SAR time-series step (a short schedule)."""


def _step_series(out: Path) -> tuple[list[Path], dict[str, Any], list[str]]:
    from glacierkit.dl.predict import predict_scene
    from glacierkit.dl.synthetic_series import (
        real_grid_scene,
        sample_dates,
        write_synthetic_series,
    )
    from glacierkit.mapping.config import parse_config
    from glacierkit.mapping.pipeline import train_mapping
    from glacierkit.series import open_series, run_sar_ratio
    from glacierkit.series.select import SeriesSelection

    sout = out / "series_tsho_rolpa"
    sout.mkdir(parents=True, exist_ok=True)
    # 1. Synthetic Sentinel-1 series (descending, irregular, 40 % of dates missing) on a
    #    real grid: the Ötztal DEM and RGI outlines at 20 m, a 7.7 km square.
    scene = real_grid_scene("oetztal", pixel_size_m=20.0,
                            bounds=(630000.0, 5186000.0, 637680.0, 5193680.0))
    dates = sample_dates(2021, mode="irregular", per_year=12, missing_fraction=0.4,
                         passes=("descending",), seed=3)
    write_synthetic_series(sout / "s1_synthetic", scene.labels, scene.grid, dates,
                           dem=scene.dem, seed=3, overwrite=True)
    write_raster(sout / "labels.tif", scene.labels.astype(np.uint8), scene.grid, nodata=255,
                 overwrite=True)
    # 2. A short training of the date-aware model (U-TAE class), tested on a held-out strip
    #    next to the Nagler–Rott backscatter-ratio baseline on the same pixels.
    rep = train_mapping(parse_config(json.loads(json.dumps(SERIES_CONFIG)), base=sout))
    s = rep["scenes"]["oetztal_synthetic"]
    model = sout / "utae" / "model.gkm"
    # 3. The real Sentinel-1 RTC stack of Tsho Rolpa, 2021, descending pass (7 dates).
    tif = examples.path("s1_rtc_tsho_rolpa_series") / "tif"
    sel = SeriesSelection(direction="descending", year=2021)
    stack = open_series(tif, scale="power", direction="descending")
    stack = stack.subset(sel.indices(stack.dates))
    pdir = sout / "tsho_rolpa_2021"
    pr = predict_scene(model, {"s1": stack}, pdir, overwrite=True, progress=False)
    bdir = sout / "tsho_rolpa_2021_sar_ratio"
    base = run_sar_ratio(stack, bdir, overwrite=True)
    # Figure: the temporal mean backscatter (dB) with both results.
    db = stack.to_db(stack.read())[:, 0]
    valid = np.isfinite(db)
    mean_db = np.full(db.shape[1:], np.nan, dtype=np.float32)
    some = valid.any(axis=0)
    mean_db[some] = (np.where(valid, db, 0.0).sum(axis=0)[some] / valid.sum(axis=0)[some])
    mpath = write_raster(pdir.parent / "tsho_rolpa_2021_mean_db.tif", mean_db[None],
                         stack.grid, nodata=float("nan"), overwrite=True)
    pred = read_vector(pdir / "outlines.gpkg")
    ratio = read_vector(bdir / "outlines.gpkg")
    png = quicklook(open_raster(mpath), sout / "tsho_rolpa_2021_utae.png", overwrite=True,
                    outlines=[(pred, "magenta", "U-TAE (tiny, synthetic training)"),
                              (ratio, "cyan", "Nagler–Rott ratio < −3 dB")],
                    colorbar_label="mean γ⁰ VV 2021", units="dB",
                    title="Tsho Rolpa, Sentinel-1 RTC 2021 (7 descending dates)")
    m, b = s["model"], s["baseline"]["metrics"]
    area = s["area"]
    numbers = {"synthetic_test_iou": round(m["iou"], 3),
               "sar_ratio_test_iou": round(b["iou"], 3),
               "synthetic_test_area_km2": round(area["expected_km2"], 2),
               "synthetic_test_area_95_km2": [round(area["lower_km2"], 2),
                                              round(area["upper_km2"], 2)],
               "synthetic_test_reference_km2": round(area["reference_km2"], 2),
               "ece_before": round(s["calibration"]["ece_before"], 3),
               "ece_after": round(s["calibration"]["ece_after"], 3),
               "train_seconds": round(rep["train_seconds"], 1),
               "tsho_rolpa_dates": stack.n_dates,
               "tsho_rolpa_glacier_km2": round(pr.area["expected_km2"], 2) if pr.area else None,
               "tsho_rolpa_sar_ratio_km2": round(base["glacier_km2"], 2)}
    outputs = [model, sout / "utae" / "report.json", pdir / "classes.tif",
               pdir / "confidence.tif", pdir / "outlines.gpkg", pdir / "report.json",
               bdir / "classes.tif", bdir / "ratio_db.tif", mpath, png]
    notes = ["Synthetic training: the generator's parameters come from the Tsho Rolpa stack "
             "where it can show them (lake and terrain backscatter, looks, date spacing) and "
             "from the literature where it cannot (the melt-season drop of wet snow); the "
             "test-strip numbers above are synthetic.",
             "Tsho Rolpa has no glacier labels, so its prediction cannot be scored. The crop "
             "holds the lake, moraines, valley walls and seasonal snow; the Trakarding "
             "terminus lies just beyond its south-eastern corner (see the validation page of "
             "the stack). What either method calls glacier here is wet snow or a false "
             "positive, not a validated outline. Both methods mark the lake: it is darker "
             "in summer (open water) than in winter (ice), which is the wet-snow signature "
             "they look for, and the synthetic training scene has no lake. Masking water "
             "(e.g. with a lake inventory) is needed before using either on such a valley."]
    return outputs, numbers, notes


SERIES_STEPS: tuple[DemoStep, ...] = (
    DemoStep("sar_series", "Glacier outlines from a Sentinel-1 time series: date-aware model "
             "(synthetic training) on the real Tsho Rolpa stack, next to the Nagler–Rott "
             "ratio", _step_series),
)


def _step_massbalance(out: Path) -> tuple[list[Path], dict[str, Any], list[str]]:
    from glacierkit.massbalance import (
        Hypsometry,
        fit_glacier_specific,
        read_mass_balance,
        read_profiles,
    )
    from glacierkit.massbalance.study import profile_study, scatter_png, write_json

    w = examples.path("oggm_sample_data", "wgms")
    hef = Hypsometry.from_rgi_csv(examples.path("oggm_sample_data",
                                                "test-files/Hintereisferner_V5_hypso.csv"))
    mout = out / "massbalance"
    mout.mkdir(parents=True, exist_ok=True)
    mb = read_mass_balance(w / "mbdata")
    report, table = profile_study(mb, read_profiles(w / "mb_profiles"),
                                  hypsometries={"491": hef})
    p1 = write_json(mout / "report.json", report, overwrite=True)
    gs = fit_glacier_specific(table, "ela_m")
    h = table[table["glacier_id"] == "491"]
    fe, fa = gs.fits["491"], report["aar"]["global"]
    cv = gs.cv_loyo.predictions if gs.cv_loyo is not None else None
    panels = [{"x": h["ela_m"], "y": h["annual_balance_m_we"], "slope": fe.slope,
               "intercept": fe.intercept, "xlabel": "ELA from the balance profile (m a.s.l.)",
               "ylabel": "annual balance (m w.e.)",
               "title": f"Hintereisferner: r = {fe.r:.2f}, RMSE = {fe.rmse_m_we:.2f} m w.e."},
              {"x": h["aar"], "y": h["annual_balance_m_we"], "slope": fa["slope"],
               "intercept": fa["intercept"],
               "xlabel": "AAR, profile + RGI hypsometry (fraction, 0–1)",
               "ylabel": "annual balance (m w.e.)",
               "title": f"Hintereisferner: r = {fa['r']:.2f}, RMSE = {fa['rmse_m_we']:.2f}"}]
    if cv is not None:
        panels.append({"x": cv["predicted_m_we"], "y": cv["observed_m_we"], "one_to_one": True,
                       "xlabel": "predicted from ELA, leave-one-year-out (m w.e.)",
                       "ylabel": "observed (m w.e.)",
                       "title": f"{len(gs.fits)} glaciers, per-glacier lines: r = "
                                f"{gs.cv_loyo.r:.2f}, RMSE = {gs.cv_loyo.rmse_m_we:.2f}"})
    p2 = scatter_png(mout / "balance_vs_ela_aar.png", panels, overwrite=True,
                     title="WGMS annual balance vs profile ELA and AAR")
    g, s = report["ela"]["global"], report["ela"]["glacier_specific"]
    numbers = {"glacier_years": report["glacier_years"],
               "glaciers": report["glaciers_with_profiles"],
               "ela_global_r": round(g["r"], 3), "ela_global_rmse_m_we": round(g["rmse_m_we"], 3),
               "ela_glacier_specific_n": s["n"], "ela_glacier_specific_glaciers": s["n_glaciers"],
               "ela_glacier_specific_loyo_r": round(s["cv_loyo_r"], 3),
               "ela_glacier_specific_loyo_rmse_m_we": round(s["cv_loyo_rmse_m_we"], 3),
               "hintereis_aar_r": round(fa["r"], 3), "hintereis_aar_n": fa["n"]}
    notes = ["ELA = zero crossing of each year's WGMS elevation-band balance profile (band "
             "labels read as centres); one-signed profiles excluded. Balances: WGMS mm w.e. → "
             "m w.e. The profile and the glacier-wide balance come from the same stakes, so this "
             "measures how well the ELA summarises the balance. benchmarks/massbalance_wgms.py "
             "adds AAR from the Ötztal DEM and the imagery-snowline comparison."]
    return [p1, p2], numbers, notes


MASSBALANCE_STEPS: tuple[DemoStep, ...] = (
    DemoStep("massbalance", "Mass balance vs ELA and AAR, WGMS profiles (170 glaciers)",
             _step_massbalance),
)


def _step_facies(out: Path) -> tuple[list[Path], dict[str, Any], list[str]]:
    from glacierkit.facies.config import parse_config
    from glacierkit.facies.cv import scores
    from glacierkit.facies.pipeline import train_facies
    from glacierkit.facies.points import read_points
    from glacierkit.facies.vocab import Vocabulary

    d = examples.path("aberle_snow_ice_training_points")
    fout = out / "facies"
    run = fout / "sentinel2_points"
    bands = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "NDSI"]
    cfg = parse_config({
        "labels": {"path": str(d / "Sentinel-2_SR_training_data.csv"), "vocabulary": "aberle",
                   "bands": bands, "max_per_scene_class": 80},
        "model": {"size": "pixel", "epochs": 4, "batch_size": 256},
        "cv": {"folds": 4}}, base=d)
    rep = train_facies(cfg, run, overwrite=True)
    # The independent, manually classified points (other glaciers; 1 = snow, 0 = no snow).
    from glacierkit.dl.bundle import load_bundle
    from glacierkit.facies.models import bundle_logits

    bundle = load_bundle(run / "model.gkm")
    man = read_points(d / "Sentinel-2_SR_manually_classified_points.csv",
                      vocabulary=Vocabulary(table={"1": "snow", "0": "ice"}), bands=bands)
    pred = bundle_logits(bundle, man.features_for(bands)).argmax(axis=1)
    truth = (man.frame["label"].astype(int).to_numpy() == 1).astype(int)
    snow = (pred == bundle.classes.index("snow")).astype(int)
    ind = scores(truth, snow, 2, ["no_snow", "snow"])
    numbers = {"labels_used": rep["data"]["subsampled"]["kept"],
               "cv_macro_f1_cnn": round(rep["cv_cnn"]["scores"]["macro_f1"], 3),
               "cv_macro_f1_hgb": round(rep["cv_baseline"]["scores"]["macro_f1"], 3),
               "pruned_pct": round(100 * rep["clean"]["pruned_share"], 1),
               "independent_snow_macro_f1": round(ind["macro_f1"], 3),
               "independent_points": int(truth.size),
               "calibration": rep["calibration"]["method"]}
    outputs = [run / "model.gkm", run / "report.json", run / "labels_checked.csv"]
    notes = ["Sentinel-2 labelled spectra of four glaciers (at most 80 labels per scene and "
             "class for the demo), cross-validated leaving one glacier out; confident learning "
             "on the network's out-of-fold probabilities; the independent points are from "
             "two other glaciers and never used for training or pruning. Water occurs at one "
             "glacier only, so its held-out fold cannot predict it (see report.json notes). "
             "benchmarks/facies_aberle.py runs the full tables."]
    return outputs, numbers, notes


def _snowicesen_crop(folder: Path, crop: str, out: Path) -> dict[str, Any]:
    """A SnowIceSen crop as reflectance (0–1, NaN off glacier), labels and glacier outline."""
    tif = folder / f"RGI50-11.{crop}.tif"
    raw = open_raster(tif, as_float=False)
    # The crops declare nodata 65535 but off-glacier pixels are 0 in all three bands.
    valid = (raw.data != 0).any(axis=0) & (raw.data != 65535).all(axis=0)
    refl = np.where(valid, raw.data.astype(np.float32) / 10000.0, np.nan).astype(np.float32)
    masked = write_raster(out / f"{crop}_reflectance.tif", refl, raw.grid,
                          band_names=["red", "green", "blue"], units="1", overwrite=True)
    snow = rasterize(read_vector(folder / f"RGI50-11.{crop}.shp"), raw.grid,
                     name="snow polygons") > 0
    truth = np.full(raw.grid.shape, 255, dtype=np.uint8)
    truth[valid] = snow[valid]
    gl = polygonize(valid.astype(np.uint8), raw.grid, ignore=(0,))
    gl["rgi_id"] = f"RGI50-11.{crop.split('_')[0]}"
    outline = write_vector(gl[["rgi_id", "geometry"]], out / f"{crop}_outline.gpkg",
                           overwrite=True)
    return {"grid": raw.grid, "valid": valid, "truth": truth, "masked": masked,
            "outline": outline}


def _step_facies_scene(out: Path) -> tuple[list[Path], dict[str, Any], list[str]]:
    import pandas as pd

    from glacierkit.dl.bundle import save_bundle
    from glacierkit.dl.sources import SourceGroup, SourceLayout, open_scene
    from glacierkit.facies.apply import classify_scene
    from glacierkit.facies.cv import scores
    from glacierkit.facies.models import PatchNet, patchnet_bundle, sample_weights
    from glacierkit.facies.points import cut_patches, read_points
    from glacierkit.facies.vocab import Vocabulary

    folder = examples.path("snowicesen_swiss_s2_snow_polygons")
    fout = out / "facies" / "snowicesen"
    fout.mkdir(parents=True, exist_ok=True)
    classes = ("ice", "snow")
    layout = SourceLayout((SourceGroup("optical", "optical", ("red", "green", "blue")),))
    train, test = ("A10G05_20170517", "A10G05_20170815", "A51D10_20150908"), "B7211_20150908"
    crops = {c: _snowicesen_crop(folder, c, fout) for c in (*train, test)}
    rng = np.random.default_rng(0)
    xs, ys, scenes = [], [], []
    for c in train:
        d = crops[c]
        rows, cols, labels = [], [], []
        for k, name in enumerate(classes):
            r, cc = np.nonzero(d["truth"] == k)
            if r.size < 200:  # slivers along the outline (e.g. 39 ice px in May)
                continue
            take = rng.choice(r.size, size=min(150, r.size), replace=False)
            rows.append(r[take])
            cols.append(cc[take])
            labels += [name] * take.size
        r, cc = np.concatenate(rows), np.concatenate(cols)
        x, y = d["grid"].xy(r, cc)
        pts = read_points(pd.DataFrame({"class": labels, "x": x, "y": y, "glacier": c[:6],
                                        "scene": c}),
                          vocabulary=Vocabulary(classes=classes), bands=None,
                          crs=d["grid"].crs.to_wkt())
        stack = open_scene(layout, {"optical": d["masked"]}, name=c)
        X, keep, _ = cut_patches(pts, stack, 33)
        xs.append(X)
        ys.append(pts.targets[keep])
        scenes += [c] * keep.size
    X, y = np.concatenate(xs), np.concatenate(ys)
    net = PatchNet(n_classes=2, group_channels=(3,), size="tiny", epochs=3, batch_size=128,
                   accelerator="cpu").fit(X, y, sample_weights(y, np.array(scenes)))
    model = save_bundle(fout / "model.gkm", patchnet_bundle(
        net, layout=layout, classes=classes, vocabulary=Vocabulary(classes=classes).to_dict(),
        training={"train_crops": list(train)}), overwrite=True)
    d = crops[test]
    pred_dir = fout / f"predict_{test}"
    pred_dir.mkdir(exist_ok=True)
    res = classify_scene(model, {"optical": d["masked"]}, pred_dir, outlines=d["outline"],
                         majority=3, overwrite=True)
    facies = open_raster(res.facies, as_float=False).data[0]
    v = d["valid"]
    s = scores(d["truth"][v].astype(np.int64), facies[v].astype(np.int64), 2, classes)
    snow_pred = polygonize((facies == 1).astype(np.uint8), d["grid"], ignore=(0,))
    # The human polygons extend past the glacier: clip them to the outline they annotate.
    glacier = read_vector(d["outline"])
    human = clip_to(read_vector(folder / f"RGI50-11.{test}.shp"), glacier,
                    name="human snow polygons", within="glacier outline")
    png = quicklook(open_raster(d["masked"]), fout / f"{test}_snow.png", overwrite=True,
                    outlines=[(glacier, "yellow", "glacier outline"),
                              (human, "cyan", "human snow polygons (clipped to the glacier)"),
                              (snow_pred, "magenta", "patch CNN snow")],
                    title=f"{test}: held-out crop, snow F1 {s['per_class']['snow']['f1']:.2f}")
    numbers = {"held_out_crop": test, "macro_f1": round(s["macro_f1"], 3),
               "snow_f1": round(s["per_class"]["snow"]["f1"], 3),
               "accuracy": round(s["accuracy"], 3),
               "cnn_snow_pct": round(float(res.areas["snow_pct"].iloc[0]), 1),
               "human_snow_pct": round(100 * float(d["truth"][v].mean()), 1),
               "train_points": int(y.size)}
    notes = ["Patch CNN (33 px receptive field) trained on three Sentinel-2 crops with human "
             "snow polygons (150 pixels per class and crop), applied with ONNX Runtime to a "
             "fourth crop it never saw, inside its glacier outline, with a 3 px majority "
             "filter. benchmarks/facies_snowicesen.py holds every crop out in turn."]
    return [model, res.facies, res.confidence, res.areas_csv, png], numbers, notes


FACIES_STEPS: tuple[DemoStep, ...] = (
    DemoStep("facies", "Glacier facies from labelled Sentinel-2 spectra: grouped CV, "
             "confident learning, independent points", _step_facies),
    DemoStep("facies_scene", "Facies map of a held-out Sentinel-2 crop: patch CNN vs human "
             "snow polygons", _step_facies_scene),
)


def default_steps() -> list[DemoStep]:
    """All demo steps, foundation first, then each pipeline's."""
    return [*FOUNDATION_STEPS, *VELOCITY_STEPS, *MAPPING_STEPS, *SERIES_STEPS,
            *FACIES_STEPS, *MASSBALANCE_STEPS]


# ----------------------------------------------------------------------------- runner
def run_demo(out: str | Path, *, overwrite: bool = False,
             steps: list[DemoStep] | None = None) -> list[StepResult]:
    """Run the demo steps into ``out`` and write ``summary.json`` and ``index.html``.

    Args:
        out: Output folder; created. An existing non-empty folder needs ``overwrite``.
        overwrite: Replace the folder's previous demo outputs.
        steps: Steps to run (default: :func:`default_steps`).

    Returns:
        One :class:`StepResult` per step.

    Progress: an INFO log line when each step starts (``demo step 2/9 tiling: <title>``) and
    one when it ends, with its wall time in seconds (or the time after which it failed).
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise OutputExistsError(f"demo folder {out} is not empty; pass --overwrite or "
                                    f"choose another --out.")
        if not (out / "summary.json").exists():
            raise OutputExistsError(f"{out} is not empty and holds no previous demo "
                                    f"(summary.json); refusing to clear it.")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    todo = list(steps if steps is not None else default_steps())
    t_all = time.perf_counter()
    for i, step in enumerate(todo, 1):
        counter = f"{i}/{len(todo)}"
        log.info("demo step %s %s: %s", counter, step.name, step.title)
        t0 = time.perf_counter()
        try:
            outputs, numbers, notes = step.run(out)
        except BaseException:
            log.error("demo step %s %s failed after %.1f s", counter, step.name,
                      time.perf_counter() - t0)
            raise
        seconds = time.perf_counter() - t0
        log.info("demo step %s %s done in %.1f s (%d file(s))", counter, step.name, seconds,
                 len(outputs))
        results.append(StepResult(step.name, step.title, seconds, outputs, numbers, notes))
    _write_summary(out, results)
    log.info("demo done: %d step(s) in %.1f s → %s", len(results),
             time.perf_counter() - t_all, out / "index.html")
    return results


def _write_summary(out: Path, results: list[StepResult]) -> None:
    def rel(p: Path) -> str:
        return p.resolve().relative_to(out.resolve()).as_posix()

    summary = {"glacierkit_version": __version__, "steps": [
        {"name": r.name, "title": r.title, "seconds": round(r.seconds, 2),
         "outputs": [rel(p) for p in r.outputs], "numbers": r.numbers, "notes": r.notes}
        for r in results]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    parts = [f"<!doctype html><meta charset='utf-8'><title>glacierkit demo</title>"
             f"<style>body{{font-family:sans-serif;max-width:70em;margin:auto}}"
             f"img{{max-width:100%;border:1px solid #ccc}}td{{padding:2px 8px}}</style>"
             f"<h1>glacierkit {html.escape(__version__)} demo</h1>"
             f"<p>Real example data; every file below is in this folder. "
             f"Numbers also in <a href='summary.json'>summary.json</a>.</p>"]
    for r in results:
        parts.append(f"<h2>{html.escape(r.title)}</h2><p>{r.seconds:.1f} s</p>")
        if r.numbers:
            rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td>"
                           f"</tr>" for k, v in r.numbers.items())
            parts.append(f"<table>{rows}</table>")
        parts.extend(f"<p>{html.escape(n)}</p>" for n in r.notes)
        for p in r.outputs:
            if p.suffix == ".png":
                parts.append(f"<p><img src='{html.escape(rel(p))}' alt='{html.escape(rel(p))}'>"
                             f"</p>")
        links = " · ".join(f"<a href='{html.escape(rel(p))}'>{html.escape(rel(p))}</a>"
                           for p in r.outputs)
        parts.append(f"<p>Files: {links}</p>")
    (out / "index.html").write_text("\n".join(parts))
