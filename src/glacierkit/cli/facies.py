"""``glacierkit facies``: glacier surface facies from point labels.

* ``facies train CONFIG`` — grouped cross-validation (spectral baseline and patch CNN),
  confident-learning label pruning, final model, calibration, ONNX model file, report
  (``facies train --template-config`` prints a commented template).
* ``facies clean LABELS …`` — confident-learning report and the pruned label table.
* ``facies predict MODEL SCENE --outlines OUTLINES -o OUT`` — ``facies.tif``,
  ``confidence.tif`` and the per-glacier area table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from glacierkit._json import jsonable
from glacierkit.cli.main import app, require
from glacierkit.errors import GridMismatchError, InputError
from glacierkit.io.writer import check_output_path

facies_app = typer.Typer(help="Glacier surface facies: train, clean labels, predict.",
                         no_args_is_help=True)
app.add_typer(facies_app, name="facies")


@facies_app.command("train")
def train(
    config: Path = typer.Argument(None, metavar="CONFIG",
                                  help="TOML config (see --template-config)."),
    out: Path = typer.Option(None, "--out", "-o",
                             help="Output folder (default: next to the config, 'facies_run')."),
    template_config: bool = typer.Option(False, "--template-config",
                                         help="Print a commented template config and exit."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Cross-validate, prune label noise, train, calibrate and export a facies model."""
    from glacierkit.facies.config import TEMPLATE, load_config
    from glacierkit.facies.pipeline import train_facies

    if template_config:
        typer.echo(TEMPLATE, nl=False)
        return
    if config is None:
        raise typer.BadParameter("give a CONFIG file (or --template-config to print a "
                                 "template).", param_hint="'CONFIG'")
    cfg = load_config(config)
    out_dir = out if out is not None else config.parent / "facies_run"
    report = train_facies(cfg, out_dir, overwrite=overwrite)
    if as_json:
        typer.echo(json.dumps(jsonable(report)))
        return
    _print_scores(report)
    Console().print(f"model: {out_dir / 'model.gkm'}  report: {out_dir / 'report.json'}")


def _print_scores(report: dict) -> None:
    table = Table(title="grouped-by-glacier cross-validation (out-of-fold)")
    table.add_column("model")
    table.add_column("macro-F1 (0–1)", justify="right")
    table.add_column("accuracy (0–1)", justify="right")
    for key in ("cv_baseline", "cv_cnn"):
        if key in report:
            sc = report[key]["scores"]
            table.add_row(str(report[key]["model"]), f"{sc['macro_f1']:.3f}",
                          f"{sc['accuracy']:.3f}")
    Console().print(table)
    cl = report.get("clean", {})
    if cl:
        t2 = Table(title=f"confident learning: {100 * cl['pruned_share']:.1f} % of labels pruned")
        for c in ("class", "labels", "flagged", "pruned", "share pruned"):
            t2.add_column(c, justify="right" if c != "class" else "left")
        for name, d in cl["per_class"].items():
            t2.add_row(name, str(d["n"]), str(d["flagged"]), str(d["pruned"]),
                       f"{100 * d['pruned_share']:.1f} %")
        Console().print(t2)
    for note in report.get("cv_cnn", {}).get("notes", []):
        Console().print(f"note: {note}")


@facies_app.command("clean")
def clean(
    labels: Path = typer.Argument(..., metavar="LABELS",
                                  help="Point labels with sampled band values (CSV, GPKG)."),
    bands: str = typer.Option(..., "--bands", help="Comma-separated band columns."),
    out: Path = typer.Option(..., "--out", "-o", help="Output CSV of the retained labels."),
    vocabulary: str = typer.Option(None, "--vocabulary",
                                   help="Label preset (aberle, aberle_shadow) or none."),
    label_table: Path | None = typer.Option(
        None, "--label-table", help="CSV with the columns label,facies mapping input labels "
        "onto facies (applied over --vocabulary; the form of [labels] table in facies train "
        "configs)."),
    glacier: str = typer.Option(None, "--glacier", help="Glacier id column."),
    model: Literal["hgb", "mlp", "cnn"] = typer.Option("hgb", "--model",
                              help="Model for the out-of-fold probabilities: hgb, mlp or cnn."),
    folds: int = typer.Option(5, "--folds", min=2, help="Folds, grouped by glacier."),
    keep: str = typer.Option("water,cloud,shadow", "--keep",
                             help="Classes never pruned (comma-separated)."),
    prune: str = typer.Option(None, "--prune",
                              help="Only these classes may be pruned (comma-separated)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Confident learning on grouped-CV probabilities: report and pruned labels.

    Writes OUT (the labels kept, input columns) and OUT with suffix ``_checked.csv`` (every
    label with its facies, out-of-fold prediction and the flags).
    """
    from glacierkit.facies.config import parse_config
    from glacierkit.facies.pipeline import (
        checked_labels_table,
        clean_labels,
        load_dataset,
        write_csv,
    )

    checked = out.with_name(out.stem + "_checked.csv")
    for p in (out, checked):
        check_output_path(p, overwrite=overwrite)
    lab: dict = {"path": str(labels.resolve()),
                 "bands": [b.strip() for b in bands.split(",") if b.strip()]}
    if vocabulary:
        lab["vocabulary"] = vocabulary
    if label_table is not None:
        lab["table"] = str(label_table.resolve())
    if glacier:
        lab["glacier"] = glacier
    cfg = parse_config({"labels": lab, "cv": {"folds": folds},
                        "clean": {"keep_classes": [k for k in keep.split(",") if k],
                                  "prune_classes": None if not prune else
                                  [k for k in prune.split(",") if k]}})
    ds = load_dataset(cfg)
    cv, cl = clean_labels(cfg, ds, model=model)
    table = checked_labels_table(ds, cv, cl)
    src = read_table(labels)
    kept_rows = table.loc[~table["pruned"], "row"].unique()
    write_csv(src.iloc[np.sort(kept_rows)], out, overwrite)
    write_csv(table, checked, overwrite)
    report = {"labels": str(labels), "model": model, "vocabulary": ds.vocabulary.describe(),
              "cv_macro_f1": cv.scores["macro_f1"], "cv_notes": cv.notes, **cl.summary(),
              "outputs": {"kept": str(out), "checked": str(checked)}}
    if as_json:
        typer.echo(json.dumps(jsonable(report)))
        return
    _print_scores({"cv_cnn": {"model": model, "scores": cv.scores, "notes": cv.notes},
                   "clean": cl.summary()})
    Console().print(f"kept labels: {out}  all labels with flags: {checked}")


def areas_table(areas: pd.DataFrame, classes: list[str] | tuple[str, ...], *,
                title: str) -> Table:
    """Per-glacier facies areas as a narrow table: one row per glacier and facies.

    Args:
        areas: ``classify_scene``'s table: ``id``, ``area_km2``, ``observed_pct`` and
            ``<class>_km2`` / ``<class>_pct`` per class.
        classes: The facies classes; those without area on any glacier are left out.
        title: Table title.
    """
    t = Table(title=title, title_justify="left")
    t.add_column("glacier")
    t.add_column("facies")
    t.add_column("area", justify="right")
    t.add_column("share", justify="right")
    shown = [c for c in classes if (areas[f"{c}_km2"] > 0).any()]
    for _, r in areas.iterrows():
        t.add_row(str(r["id"]), "glacier", f"{r['area_km2']:.3f} km²",
                  f"{r['observed_pct']:.1f} % observed")
        for c in shown:
            t.add_row("", c, f"{r[f'{c}_km2']:.3f} km²", f"{r[f'{c}_pct']:.1f} %")
        t.add_section()
    return t


def read_table(path: Path) -> pd.DataFrame:
    """The input label table as read (CSV or vector file attributes + WKT geometry)."""
    if path.suffix.lower() in (".csv", ".txt"):
        return pd.read_csv(path)
    from glacierkit.io.vector import read_vector

    gdf = read_vector(path)
    df = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    df["geometry"] = gdf.geometry.to_wkt()
    return df


@facies_app.command("predict")
def predict(
    model: Path = typer.Argument(..., metavar="MODEL",
                                 help="Facies model file (.gkm) from facies train."),
    scene: Path = typer.Argument(..., metavar="SCENE",
                                 help="Optical raster: the model's bands, in its order."),
    outlines: Path = typer.Option(None, "--outlines",
                                  help="Glacier outlines (any vector format and CRS); "
                                  "without them the whole valid scene is one glacier."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (created)."),
    dem: Path = typer.Option(None, "--dem",
                             help="DEM on the scene grid (required if the model uses one)."),
    majority: int = typer.Option(0, "--majority",
                                 help="Majority-filter window (odd px, e.g. 3 or 5; 0 = off)."),
    backend: Literal["auto", "onnx", "torch"] = typer.Option(
        "auto", "--backend", help="auto (torch on CUDA, else ONNX Runtime) | onnx | torch."),
    id_field: str = typer.Option(None, "--id-field",
                                 help="Outline attribute naming the glaciers."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing products."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    allow_domain_shift: bool = typer.Option(
        False, "--allow-domain-shift",
        help="Classify even when the scene's values lie far outside the model's training "
             "domain (see glacierkit info MODEL); logged as a warning."),
    max_memory: str | None = typer.Option(
        None, "--max-memory",
        help="Working-memory budget of the tiled inference, e.g. 4GB or 512MiB (default: "
             "half the available memory)."),
) -> None:
    """Map facies on a scene: facies.tif, confidence.tif, per-glacier areas.csv, report.json."""
    require(majority in (0, 1) or (majority > 1 and majority % 2 == 1), "--majority",
            f"the window must be 0 (off) or an odd number of pixels (3, 5, ...); got {majority}.")
    from glacierkit.dl.bundle import check_task, load_bundle
    from glacierkit.facies.apply import classify_scene

    bundle = load_bundle(model)
    check_task(bundle, "facies", command="glacierkit facies predict")
    groups = list(bundle.layout.get("groups") or [])
    dem_groups = [g["name"] for g in groups if g.get("kind") == "dem"]
    image_groups = [g["name"] for g in groups if g.get("kind") != "dem"]
    if len(image_groups) != 1 or len(dem_groups) > 1:
        raise InputError(f"this model's source groups {[g['name'] for g in groups]} do not fit "
                         f"SCENE [--dem DEM] (one image group and at most one DEM); use "
                         f"glacierkit.facies.apply.classify_scene from Python.")
    sources: dict[str, str] = {image_groups[0]: str(scene)}
    if dem_groups:
        if dem is None:
            raise InputError(f"the model uses a DEM (group {dem_groups[0]!r}); give --dem "
                             f"DEM on the scene grid.")
        sources[dem_groups[0]] = str(dem)
    elif dem is not None:
        raise InputError("--dem given but the model has no DEM group; leave it out.")
    try:
        res = classify_scene(bundle, sources, out, outlines=outlines, id_field=id_field,
                             majority=majority, backend=backend, overwrite=overwrite,
                             progress=True,
                             allow_domain_shift=allow_domain_shift, max_memory=max_memory)
    except GridMismatchError as e:  # this command has no --align
        e.cli_hint = "Fix: resample the DEM onto the scene grid beforehand (e.g. gdalwarp)."
        raise
    if as_json:
        typer.echo(json.dumps(jsonable({
            "paths": res.paths, "backend": res.backend, "classes": list(res.classes),
            "majority": res.majority, "seconds": res.seconds,
            "calibration": (bundle.calibration or {}).get("kind", "custom")
            if bundle.calibration is not None else "uncalibrated",
            "areas": res.areas.to_dict(orient="records")})))
        return
    majority_text = f", majority {res.majority}×{res.majority} px" if res.majority else ""
    con = Console()
    con.print(areas_table(res.areas, res.classes,
                          title=f"facies areas ({res.backend}{majority_text})"))
    if bundle.calibration is None:
        con.print("confidence.tif is uncalibrated (the model holds no calibration map)")
    con.print(f"→ {', '.join(p.name for p in res.paths.values())} in {out}")
