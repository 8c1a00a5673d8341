"""``glacierkit velocity REFERENCE SECONDARY -o OUTDIR``: surface velocity by offset tracking."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import typer
from rich.console import Console

from glacierkit._json import jsonable
from glacierkit.cli.main import app, require
from glacierkit.errors import InputError
from glacierkit.velocity.dates import parse_time
from glacierkit.velocity.field import VelocityUnits
from glacierkit.velocity.filtering import FilterConfig
from glacierkit.velocity.inputs import ImageKind
from glacierkit.velocity.pipeline import TrackingParams, run_velocity
from glacierkit.velocity.prefilter import PrefilterName


def _is_date(text: str) -> bool:
    try:
        parse_time(text)
    except InputError:
        return False
    return True


@app.command()
def velocity(
    reference: Path = typer.Argument(..., metavar="REFERENCE",
                                     help="Earlier image (GeoTIFF; optical pan/NIR or "
                                     "SAR amplitude)."),
    secondary: Path = typer.Argument(..., metavar="SECONDARY",
                                     help="Later image on the same grid."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    chip: int = typer.Option(32, "--chip", min=4, help="Chip size (px)."),
    search: int = typer.Option(32, "--search", min=0, help="Search range ± (px)."),
    step: int = typer.Option(8, "--step", min=1, help="Node spacing (px)."),
    method: Literal["ncc", "oc"] = typer.Option("ncc", "--method",
                                                help="ncc | oc (orientation correlation)."),
    prefilter: PrefilterName = typer.Option(
        "highpass", "--prefilter", help="none | highpass | wallis | orientation (implies oc)."),
    kind: ImageKind = typer.Option("optical", "--kind", help="optical | sar (amplitude)."),
    speckle_filter: bool = typer.Option(False, "--speckle-filter",
                                        help="Lee-filter SAR amplitude before tracking."),
    dt_days: float | None = typer.Option(None, "--dt-days", help="Time separation (days)."),
    dates: tuple[str, str] | None = typer.Option(None, "--dates",
                                                 help="Reference and secondary ISO dates."),
    ignore: Path | None = typer.Option(None, "--ignore",
                                       help="Polygons to ignore (clouds, water)."),
    stable: Path | None = typer.Option(None, "--stable",
                                       help="Stable-ground polygons (corrections fit there)."),
    outlines: Path | None = typer.Option(None, "--outlines",
                                         help="Glacier outlines; outside = stable ground."),
    dem: Path | None = typer.Option(None, "--dem", help="DEM (any grid) for the "
                                    "topography-related correction."),
    no_filter: bool = typer.Option(False, "--no-filter",
                                   help="Keep raw offsets (no NDC/MAD/clump filtering)."),
    align: bool = typer.Option(False, "--align",
                               help="Resample the secondary onto the reference grid."),
    units: VelocityUnits = typer.Option("m/yr", "--units", help="m/yr | m/day."),
    band: int = typer.Option(1, "--band", min=1, help="Band to track (1-based)."),
    pixel_size: float | None = typer.Option(None, "--pixel-size",
                                            help="Pixel size (m) of non-georeferenced images."),
    no_quicklook: bool = typer.Option(False, "--no-quicklook", help="Skip quicklook.png."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing products."),
    max_memory: str | None = typer.Option(
        None, "--max-memory",
        help="Working-memory budget of the tracking, e.g. 4GB or 512MiB (default: half the "
             "available memory); larger searches run in smaller batches."),
    as_json: bool = typer.Option(False, "--json", help="Print the report (as report.json) "
                                 "and the written files as one JSON object."),
) -> None:
    """Track features between two images; write velocity, displacement, quality, report."""
    require(dt_days is None or dt_days > 0, "--dt-days",
            f"the time separation must be > 0 days; got {dt_days}.")
    require(pixel_size is None or pixel_size > 0, "--pixel-size",
            f"the pixel size must be > 0 m; got {pixel_size}.")
    for d in dates or ():
        require(_is_date(d), "--dates", f"{d!r} is not a valid ISO 8601 date (e.g. 2016-07-18).")
    params = TrackingParams(chip_size_px=chip, search_px=search, step_px=step,
                            method=method, prefilter=prefilter)  # type: ignore[arg-type]
    res = run_velocity(reference, secondary, out, params=params, kind=kind,  # type: ignore[arg-type]
                       speckle_filter=speckle_filter, dt_days=dt_days, dates=dates,
                       ignore=ignore, stable=stable, outlines=outlines, dem=dem,
                       filters=None if no_filter else FilterConfig(),
                       align="reference" if align else None,
                       units=units, band=band, pixel_size_m=pixel_size,  # type: ignore[arg-type]
                       quicklook=not no_quicklook, overwrite=overwrite, max_memory=max_memory)
    if as_json:
        typer.echo(json.dumps(jsonable({"outputs": [str(p) for p in res.outputs],
                                        "report": res.report})))
        return
    counts = res.report["status_counts"]
    total = sum(counts.values())
    con = Console()
    con.print(f"dt = {res.report['time']['dt_days']:.3f} days ({res.report['time']['source']})")
    con.print(f"nodes: {total}, valid {counts['OK'] + counts['FILLED']} "
              f"({100 * (counts['OK'] + counts['FILLED']) / max(total, 1):.1f} %)")
    corr = res.report.get("corrections")
    if corr:
        b, a = corr["stable"]["before"], corr["stable"]["after"]
        con.print(f"stable ground ({corr['stable_ground']}, {a['n']} nodes) NMAD dx/dy: "
                  f"{b['dx']['nmad']:.3f}/{b['dy']['nmad']:.3f} px before, "
                  f"{a['dx']['nmad']:.3f}/{a['dy']['nmad']:.3f} px after corrections")
    for p in res.outputs:
        con.print(f"  wrote {p}")
