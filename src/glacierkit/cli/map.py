"""``glacierkit map``: glacier outline mapping (train, predict, evaluate, classic baseline).

* ``map train CONFIG`` — train, calibrate, export and test a model from a TOML config
  (``map train --template-config`` prints a commented template).
* ``map predict MODEL SOURCES… -o OUT`` — full-scene tiled prediction: ``classes.tif``,
  ``confidence.tif``, ``outlines.gpkg``.
* ``map evaluate PRED REF [--extent FILE] [--json]`` — IoU, precision, recall, F1, area and
  boundary deviation where both are defined (area outside it reported).
* ``map baseline SOURCES… -o OUT`` — the classic band-ratio / NDSI / brightness threshold.

SOURCES are ``GROUP=FILE[,FILE…]`` (e.g. ``optical=rgb.tif,nir.tif dem=dem.tif``); with a
one-group model plain file names are taken for that group.
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

map_app = typer.Typer(help="Glacier outline mapping: train, predict, evaluate, baseline.",
                      no_args_is_help=True)
app.add_typer(map_app, name="map")


def parse_sources(items: list[str], groups: list[str]) -> dict[str, list[str]]:
    """``["optical=a.tif,b.tif", "dem=d.tif"]`` → ``{"optical": [...], "dem": [...]}``.

    Plain paths (no ``=``) are allowed when ``groups`` has exactly one group.
    """
    out: dict[str, list[str]] = {}
    plain: list[str] = []
    for it in items:
        if "=" in it and not Path(it).exists():
            g, _, files = it.partition("=")
            if g not in groups:
                raise InputError(f"source group {g!r} is not one of the model's groups "
                                 f"{groups}.")
            out.setdefault(g, []).extend(f for f in files.split(",") if f)
        else:
            plain.append(it)
    if plain:
        if len(groups) != 1:
            raise InputError(f"the model has several source groups {groups}: give sources as "
                             f"GROUP=FILE[,FILE...], e.g. {groups[0]}={plain[0]}.")
        out.setdefault(groups[0], []).extend(plain)
    if not out:
        raise InputError("give at least one source (GROUP=FILE[,FILE...]).")
    return out


@map_app.command("train")
def train(
    config: Path | None = typer.Argument(None, metavar="CONFIG",
                                         help="TOML config (see --template-config)."),
    template_config: bool = typer.Option(False, "--template-config",
                                         help="Print a commented template config and exit."),
    out: Path | None = typer.Option(None, "--out", "-o",
                                    help="Run folder (default: the config's [output] dir)."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Replace an earlier run's products in the run folder "
                                        "(default: the config's [output] overwrite)."),
    resume: bool = typer.Option(False, "--resume",
                                help="Continue interrupted training from the last checkpoint."),
    as_json: bool = typer.Option(False, "--json", help="Print the report (as report.json) "
                                 "instead of the tables."),
) -> None:
    """Train, calibrate and test an outline model; write model.gkm and report.json.

    A run folder that holds products of an earlier run is refused before any work unless
    --overwrite or --resume is given.
    """
    from glacierkit.mapping.config import TEMPLATE, load_config

    if template_config:
        typer.echo(TEMPLATE, nl=False)
        return
    if config is None:
        raise typer.BadParameter("give CONFIG or --template-config.")
    from glacierkit.mapping.pipeline import train_mapping

    cfg = load_config(config, out_dir=out, overwrite=True if overwrite else None)
    report = train_mapping(cfg, resume=resume)
    if as_json:
        typer.echo(json.dumps(jsonable(report)))
        return
    con = Console()
    for t in train_tables(report, arch=cfg.model.arch, size=cfg.model.size,
                          strategy=cfg.train.strategy):
        con.print(t)
    con.print(f"model file(s) and report.json in {cfg.out_dir}")


def _fmt(v: Any, spec: str, units: str = "") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:{spec}}{units}"


def train_tables(report: dict[str, Any], *, arch: str, size: str, strategy: str) -> list[Table]:
    """One table per test scene of ``map train``'s report: the model against the baseline.

    Rows are the scores with their units (IoU, F1 and ECE are fractions 0–1); columns the
    model and the threshold baseline, so that the table stays narrow (80 columns).
    """
    tables = []
    for name, s in report["scenes"].items():
        m, b = s["model"], s["baseline"]["metrics"]
        cal = s.get("calibration") or {}
        t = Table(title=f"test part of scene {name} ({strategy} strategy)",
                  title_justify="left")
        t.add_column("score")
        t.add_column(f"{arch} ({size})", justify="right")
        t.add_column("threshold baseline", justify="right")
        for label, key, spec, units in (("IoU (0–1)", "iou", ".3f", ""),
                                        ("F1 (0–1)", "f1", ".3f", ""),
                                        ("area deviation", "area_dev_pct", "+.1f", " %"),
                                        ("boundary deviation, mean", "boundary_mean_m", ".0f",
                                         " m"),
                                        ("boundary deviation, p95", "boundary_p95_m", ".0f",
                                         " m")):
            t.add_row(label, _fmt(m.get(key), spec, units), _fmt(b.get(key), spec, units))
        if cal:
            t.add_row("calibration error (ECE, 0–1)",
                      f"{_fmt(cal.get('ece_before'), '.3f')} → "
                      f"{_fmt(cal.get('ece_after'), '.3f')}", "—")
        tables.append(t)
    return tables


@map_app.command("predict")
def predict(
    model: Path = typer.Argument(..., metavar="MODEL", help="Model file (.gkm) from map train."),
    sources: list[str] = typer.Argument(..., metavar="SOURCES",
                                        help="GROUP=FILE[,FILE...] per source group."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (created)."),
    backend: Literal["auto", "onnx", "torch"] = typer.Option(
        "auto", "--backend", help="auto (torch on CUDA, else ONNX Runtime) | onnx | torch."),
    tile_size: int | None = typer.Option(None, "--tile-size", min=1, help="Tile size (px)."),
    overlap: int | None = typer.Option(None, "--overlap", min=0, help="Tile overlap (px)."),
    tta: bool = typer.Option(False, "--tta", help="8-way flip/rot90 test-time augmentation."),
    mc_samples: int = typer.Option(0, "--mc-samples", min=0,
                                   help="Monte-Carlo dropout samples (torch backend)."),
    region: str | None = typer.Option(None, "--region",
                                      help="Region name for region-conditioned models."),
    probabilities: bool = typer.Option(False, "--probabilities",
                                       help="Also write probabilities.tif."),
    min_area: float = typer.Option(0.01, "--min-area-km2", min=0.0,  # = MIN_AREA_KM2
                                   help="Drop outline polygons smaller than this (km²; "
                                        "default: the RGI's minimum glacier size; 0 keeps "
                                        "all)."),
    align: bool = typer.Option(False, "--align",
                               help="Resample all sources onto the first group's grid."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing products."),
    as_json: bool = typer.Option(False, "--json", help="Print the product paths, backend, "
                                 "tile counts and seconds as one JSON object."),
    allow_domain_shift: bool = typer.Option(
        False, "--allow-domain-shift",
        help="Predict even when the scene's values lie far outside the model's training "
             "domain (see glacierkit info MODEL); logged as a warning."),
    max_memory: str | None = typer.Option(
        None, "--max-memory",
        help="Working-memory budget of the tiles, e.g. 4GB or 512MiB (default: half the "
             "available memory); fewer tiles per model call, or a refusal naming --tile-size."),
    direction: str | None = typer.Option(
        None, "--direction", help="Series: orbit pass kept (ascending | descending | all); "
        "default: the model's."),
    dates_per_year: int | None = typer.Option(
        None, "--dates-per-year", min=0, help="Series: dates per year (default: the model's "
        "protocol; 0 = every date)."),
    year: int | None = typer.Option(None, "--year", help="Series: the mapped year (default: "
                                    "every date of the files)."),
    area_block_m: float = typer.Option(3200.0, "--interval-block-m", min=1.0,
                                       help="Block edge (m) of the area interval in "
                                            "report.json (ICEmapper: 3200)."),
) -> None:
    """Predict glacier classes, confidence (calibrated if the model is) and outlines.

    A time-series group takes one folder, glob pattern or CSV table (path,date[,pass]) of
    files, one per date, e.g. s1=s1_2022/.
    """
    if tile_size is not None and overlap is not None:
        require(overlap < tile_size, "--overlap",
                f"the overlap must be smaller than --tile-size ({tile_size} px); got {overlap}.")
    from glacierkit.dl.bundle import check_task, load_bundle
    from glacierkit.dl.predict import predict_scene

    bundle = load_bundle(model)
    check_task(bundle, "mapping", command="glacierkit map predict")
    groups = [g["name"] for g in bundle.layout["groups"]]
    src: dict[str, Any] = dict(parse_sources(sources, groups))
    timed = [g for g in bundle.layout["groups"] if g.get("time")]
    if not timed:
        require(direction is None and dates_per_year is None and year is None,
                "--direction/--dates-per-year/--year", "this model takes single-date "
                "sources; these options are for time-series models.")
    else:
        from glacierkit.dl.sources import SourceGroup
        from glacierkit.mapping.pipeline import open_series_source
        from glacierkit.series.select import SeriesSelection

        sel = SeriesSelection.from_dict((bundle.series or {}).get("selection") or {})
        sel = SeriesSelection(
            direction=direction if direction is not None else sel.direction,
            dates_per_year=dates_per_year if dates_per_year is not None else sel.dates_per_year,
            year=year if year is not None else sel.year, season=sel.season)
        for g in timed:
            if g["name"] in src:
                src[g["name"]] = open_series_source(src[g["name"]], SourceGroup.from_dict(g),
                                                    sel)
    res = predict_scene(bundle, src, out, backend=backend,  # type: ignore[arg-type]
                        tile_size=tile_size, overlap=overlap, tta=tta, mc_samples=mc_samples,
                        region=region, write_probabilities=probabilities,
                        min_area_km2=min_area, align=align, overwrite=overwrite,
                        allow_domain_shift=allow_domain_shift, max_memory=max_memory,
                        area_block_m=area_block_m)
    if as_json:
        typer.echo(json.dumps(jsonable({
            "paths": res.paths, "backend": res.backend, "device": res.device,
            "tiles": res.tiles, "tiles_run": res.tiles_run, "tiles_skipped": res.tiles_skipped,
            "n_outlines": res.n_outlines, "model_seconds": res.model_seconds,
            "total_seconds": res.total_seconds, "missing_groups": list(res.missing_groups),
            "area": res.area,
            "calibration": None if bundle.calibration is None
            else bundle.calibration.get("kind", "custom")})))
        return
    conf = ("confidence uncalibrated (the model holds no calibration map)"
            if bundle.calibration is None else
            f"confidence calibrated ({bundle.calibration.get('kind', 'custom')})")
    Console().print(f"{res.backend} ({res.device}): {res.tiles_run} tiles, "
                    f"{res.tiles_skipped} skipped, {res.total_seconds:.1f} s, {conf} → "
                    + ", ".join(p.name for p in res.paths.values()))
    if res.area is not None:
        b = res.area["block_bootstrap_95"]
        Console().print(f"glacier area {res.area['expected_km2']:.2f} km² (block bootstrap "
                        f"95 %: {b['lower_km2']:.2f}–{b['upper_km2']:.2f} km²)")


@map_app.command("evaluate")
def evaluate(
    pred: Path = typer.Argument(..., metavar="PRED",
                                help="Predicted classes (GeoTIFF) or outlines (GPKG/SHP)."),
    ref: Path = typer.Argument(..., metavar="REF", help="Reference classes or outlines."),
    positive: int = typer.Option(1, "--positive", help="Glacier class value in rasters."),
    resolution: float = typer.Option(10.0, "--resolution",
                                     help="Grid (m) for two outline files (> 0)."),
    extent: Path | None = typer.Option(
        None, "--extent", help="Evaluate only inside this area: a polygon file (its footprint "
        "layer if it has one) or a raster whose valid pixels are the area. Default: the "
        "rasters' valid pixels and the footprint layer glacierkit writes into outlines.gpkg."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Compare predicted with reference outlines: IoU, F1, area and boundary deviation.

    Only ground where both are defined is compared; reference (and predicted) glacier area
    outside it is reported as ref_area_outside_km2 (pred_area_outside_km2), not scored.
    """
    require(resolution > 0, "--resolution", f"the grid must be > 0 m; got {resolution}.")
    from glacierkit.metrics.outlines import evaluate_outlines

    r = evaluate_outlines(pred, ref, positive=positive, resolution_m=resolution,
                          extent=extent)
    if as_json:
        typer.echo(json.dumps(jsonable(r)))
        return
    t = Table(title=f"outline evaluation ({r['mode']}) over {r['extent']}",
              title_justify="left")
    t.add_column("quantity")
    t.add_column("value", justify="right")
    t.add_column("units")
    for k, u in (("iou", "0–1"), ("precision", "0–1"), ("recall", "0–1"), ("f1", "0–1"),
                 ("area_ref_km2", "km²"), ("area_pred_km2", "km²"), ("area_dev_km2", "km²"),
                 ("area_dev_pct", "% of reference"),
                 ("ref_area_outside_km2", "km², not scored"),
                 ("pred_area_outside_km2", "km², not scored"), ("boundary_mean_m", "m"),
                 ("boundary_p95_m", "m"), ("boundary_hausdorff_m", "m"),
                 ("n_pixels", "px")):
        v = r.get(k)
        t.add_row(k, "—" if v is None or (isinstance(v, float) and not math.isfinite(v))
                  else (f"{v:.4g}" if isinstance(v, float) else str(v)), u)
    Console().print(t)


@map_app.command("baseline")
def baseline(
    sources: list[str] = typer.Argument(..., metavar="SOURCES",
                                        help="Raster files on one grid, their bands named "
                                        "by --bands or by their band descriptions."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (created)."),
    bands: list[str] | None = typer.Option(
        None, "--bands", help="Comma-separated band names per file: blue, green, red, nir, "
        "swir1, swir2 (or _ to skip); 'auto' for a file whose band descriptions name its "
        "bands. Default: every file's band descriptions."),
    method: Literal["auto", "ndsi", "ratio", "brightness", "sar-ratio"] = typer.Option(
        "auto", "--method", help="auto | ndsi | ratio | brightness (optical bands), or "
        "sar-ratio (Nagler–Rott melt/reference backscatter ratio of a SAR time series)."),
    scale: str | None = typer.Option(
        None, "--scale", help="sar-ratio: what the files hold: power (γ⁰/σ⁰), amplitude or "
        "db (required; never guessed)."),
    direction: str | None = typer.Option(
        None, "--direction", help="sar-ratio: orbit pass kept (ascending | descending); "
        "needed when the files mix passes."),
    melt: str = typer.Option("7,8", "--melt", help="sar-ratio: melt season, months or "
                             "MM-DD, e.g. 7,8 or 07-01,08-31."),
    reference: str = typer.Option("1,2", "--reference", help="sar-ratio: reference (dry) "
                                  "season, e.g. 1,2."),
    threshold: float | None = typer.Option(None, "--threshold",
                                           help="Threshold (default: method's; Otsu for "
                                           "brightness)."),
    min_area_km2: float = typer.Option(0.01, "--min-area-km2", min=0.0,  # = MIN_AREA_KM2
                                       help="Drop outline polygons smaller than this (km²; "
                                            "default: the RGI's minimum glacier size, as map "
                                            "predict; 0 keeps all)."),
    min_area_px: int = typer.Option(0, "--min-area-px", min=0,
                                    help="Also remove glacier clumps below this from "
                                         "classes.tif itself (px, 8-connected; 0 keeps all)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing products."),
    as_json: bool = typer.Option(False, "--json", help="Print the method, threshold, glacier "
                                 "area and product paths as one JSON object."),
) -> None:
    """Classic glacier mapping without training.

    Optical: band ratio / NDSI / brightness threshold. SAR time series (--method
    sar-ratio): wet snow / melting glacier where the melt-season backscatter is below the
    reference season's by more than --threshold dB (default −3; Nagler & Rott 2000); SOURCES
    is one folder, glob pattern or CSV table (path,date[,pass]) of files, one per date.
    """
    if method == "sar-ratio":
        _sar_ratio_cli(sources, out, scale=scale, direction=direction, melt=melt,
                       reference=reference, threshold=threshold, min_area_km2=min_area_km2,
                       overwrite=overwrite, as_json=as_json)
        return
    require(scale is None and direction is None, "--scale/--direction",
            "these options are for --method sar-ratio.")
    from glacierkit.mapping.baseline import run_baseline

    require(not bands or len(bands) == len(sources), "--bands",
            f"give one --bands per source file ({len(sources)}; 'auto' for a file whose band "
            f"descriptions name its bands), or none to use every file's descriptions; got "
            f"{len(bands or [])}.")
    res = run_baseline([Path(s) for s in sources], list(bands) if bands else None, out,
                       method=method, threshold=threshold, min_area_px=min_area_px,
                       min_area_km2=min_area_km2, overwrite=overwrite)
    if as_json:
        typer.echo(json.dumps(jsonable(res)))
        return
    dropped = (f", {res['n_small_dropped']} polygon(s) < {min_area_km2:g} km² dropped"
               if res["n_small_dropped"] else "")
    Console().print(f"{res['method']} threshold {res['threshold']:.4g}: glacier "
                    f"{res['glacier_km2']:.2f} km² in {res['n_outlines']} polygon(s){dropped} → "
                    f"classes.tif, outlines.gpkg")


def _season(text: str, option: str) -> tuple[int | str, int | str]:
    parts = [p.strip() for p in text.split(",")]
    require(len(parts) == 2 and all(parts), option,
            f"give the season as START,END (months or MM-DD), e.g. 7,8; got {text!r}.")
    return tuple(int(p) if p.isdigit() else p for p in parts)  # type: ignore[return-value]


def _sar_ratio_cli(sources: list[str], out: Path, *, scale: str | None, direction: str | None,
                   melt: str, reference: str, threshold: float | None, min_area_km2: float,
                   overwrite: bool, as_json: bool) -> None:
    from glacierkit.series.baseline import run_sar_ratio
    from glacierkit.series.stack import SCALES, open_series

    require(scale is not None, "--scale",
            f"say what the files hold: one of {', '.join(SCALES)} (linear power such as "
            f"HyP3 RTC γ⁰, linear amplitude, or dB); glacierkit never guesses it.")
    source: Any = sources[0] if len(sources) == 1 else sources
    stack = open_series(source, scale=scale, direction=direction)  # type: ignore[arg-type]
    kw: dict[str, Any] = {"melt": _season(melt, "--melt"),
                          "reference": _season(reference, "--reference")}
    if threshold is not None:
        kw["threshold_db"] = threshold
    res = run_sar_ratio(stack, out, min_area_km2=min_area_km2, overwrite=overwrite, **kw)
    if as_json:
        typer.echo(json.dumps(jsonable(res)))
        return
    Console().print(f"sar-ratio: {len(res['melt_dates'])} melt and "
                    f"{len(res['reference_dates'])} reference date(s), threshold "
                    f"{res['threshold_db']:g} dB: wet snow / glacier {res['glacier_km2']:.2f} km² "
                    f"in {res['n_outlines']} polygon(s) → classes.tif, ratio_db.tif, "
                    f"outlines.gpkg, sar_ratio.json")
