"""``glacierkit velocity-qa VX [VY] --stable POLY [--ice POLY] [--gps CSV] [--json]``.

Quality of a velocity map: stable-ground statistics, the GLAFT static-area and along-flow
strain-rate metrics (Zheng et al. 2023, https://doi.org/10.5194/tc-17-4063-2023) and a
comparison with GPS velocities. Units are always printed; ``--json`` prints one object (NaN
as ``null``) whose keys are those of :func:`glacierkit.velocity.quality.velocity_qa`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from glacierkit._json import jsonable
from glacierkit.cli.main import app, require
from glacierkit.errors import InputError
from glacierkit.velocity.quality import canonical_units
from glacierkit.velocity.quality import velocity_qa as run_velocity_qa


def _num(v: Any, fmt: str = ".4g") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if isinstance(v, float):
        return format(v, fmt)
    return str(v)


def _pct(v: Any) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{100 * v:.2f} %"


def _print_report(r: dict[str, Any]) -> None:
    con = Console()
    u = r["units"]
    t = Table(title="velocity QA", show_header=True, title_justify="left")
    t.add_column("quantity")
    t.add_column("x / normal", justify="right")
    t.add_column("y / shear", justify="right")
    t.add_column("units")
    t.add_row("invalid pixels (map)", _pct(r["invalid_share"]), "", f"of {r['n_pixels']} px")
    t.add_section()
    t.add_row("stable px (valid)", str(r["stable_n_pixels"]), str(r["stable_n_valid"]),
              f"invalid {_pct(r['stable_invalid_share'])}")
    for k in ("median", "nmad", "std", "rmse"):
        t.add_row(f"stable {k}", _num(r[f"stable_{k}_x"]), _num(r[f"stable_{k}_y"]), u)
    t.add_section()
    t.add_row("static-area δ", _num(r["sav_dx"]), _num(r["sav_dy"]), u)
    t.add_row("static-area peak", _num(r["sav_peak_x"]),
              _num(r["sav_peak_y"]), u)
    t.add_row("incorrect matches", _pct(r["sav_incorrect_share"]), "",
              f"of {r['sav_n']} px")
    if "strain_normal" in r:
        su = r["strain_units"]
        scale = " (GLAFT Sobel ×8)" if r["strain_scale"] == "glaft-sobel" else ""
        t.add_section()
        t.add_row("strain δx'x' / δx'y'", _num(r["strain_normal"]),
                  _num(r["strain_shear"]), su + scale)
        t.add_row("strain peak", _num(r["strain_peak_normal"]),
                  _num(r["strain_peak_shear"]), su)
        t.add_row("strain outside box", _pct(r["strain_incorrect_share"]), "",
                  f"of {r['strain_n']} px")
    if "gps_n" in r:
        t.add_section()
        t.add_row("GPS RMSE vx / vy", _num(r["gps_rmse_vx"]), _num(r["gps_rmse_vy"]), u)
        t.add_row("GPS RMSE speed", _num(r["gps_rmse_speed"]), "",
                  f"{u}, {r['gps_n']} of {r['gps_n_stations']} stations")
        t.add_row("GPS mean map − GPS", _num(r["gps_mean_dvx"]), _num(r["gps_mean_dvy"]), u)
    con.print(t)
    if r.get("gps_stations"):
        # Two narrow tables (velocities, then differences) instead of one of 9 columns.
        g = Table("station", f"map vx {u}", f"map vy {u}", f"GPS vx {u}", f"GPS vy {u}",
                  title="GPS stations: velocities", title_justify="left")
        d = Table("station", f"Δ vx {u}", f"Δ vy {u}", f"Δ speed {u}", "status",
                  title="GPS stations: map − GPS", title_justify="left")
        for s in r["gps_stations"]:
            g.add_row(str(s["station"]), *(_num(s[k], ".3g") for k in (
                "map_vx", "map_vy", "gps_vx", "gps_vy")))
            d.add_row(str(s["station"]), *(_num(s[k], ".3g") for k in (
                "d_vx", "d_vy", "d_speed")), str(s["status"]))
        con.print(g)
        con.print(d)


def _known_units(units: str) -> bool:
    try:
        canonical_units(units)
    except InputError:
        return False
    return True


@app.command("velocity-qa")
def velocity_qa(
    vx: Path = typer.Argument(..., metavar="VX", help="East velocity component (GeoTIFF; "
                              "or glacierkit's velocity.tif, band vx)."),
    vy: Path | None = typer.Argument(None, metavar="VY",
                                     help="North velocity component (same grid); not needed "
                                     "when VX is glacierkit's velocity.tif (bands vx, vy)."),
    stable: Path = typer.Option(..., "--stable", help="Stable-ground polygons."),
    ice: Path | None = typer.Option(None, "--ice", help="On-ice polygons (strain-rate metric)."),
    gps: Path | None = typer.Option(None, "--gps", help="GPS velocities or positions (CSV)."),
    units: str | None = typer.Option(None, "--units", help="m/day | m/yr (default: the "
                                     "rasters' unit tags)."),
    gps_crs: str | None = typer.Option(None, "--gps-crs", help="CRS of the GPS coordinates "
                                       "(default: the map's)."),
    gps_units: str | None = typer.Option(None, "--gps-units", help="Units of unlabelled GPS "
                                         "vx/vy columns."),
    gps_window: int = typer.Option(1, "--gps-window", help="GPS sampling window (px, odd)."),
    gps_debias: bool = typer.Option(False, "--gps-debias", help="Subtract the static-area "
                                    "KDE peak before comparing with GPS."),
    sigma: float = typer.Option(2.0, "--sigma", help="KDE threshold (standard deviations)."),
    gridsize: int = typer.Option(60, "--gridsize", min=3, help="KDE mesh vertices per side."),
    all_touched: bool = typer.Option(False, "--all-touched", help="Use every pixel a polygon "
                                     "touches (default: pixel centre inside)."),
    normalize_strain: bool = typer.Option(False, "--normalize-strain", help="True strain rates "
                                          "instead of GLAFT's Sobel scale (8×)."),
    align: bool = typer.Option(False, "--align", help="Resample VY onto the VX grid."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Stable-ground statistics, GLAFT metrics and GPS comparison of a velocity map."""
    for flag, value in (("--units", units), ("--gps-units", gps_units)):
        require(value is None or _known_units(value), flag,
                f"must be m/day or m/yr (also m/d, m/a, m yr-1); got {value!r}.")
    require(gps_window >= 1 and gps_window % 2 == 1, "--gps-window",
            f"the window must be an odd number of pixels (1, 3, 5, ...); got {gps_window}.")
    require(sigma > 0, "--sigma", f"the threshold must be > 0 standard deviations; got {sigma}.")
    r = run_velocity_qa(vx, vy, stable=stable, ice=ice, gps=gps, units=units,
                        align="vx" if align else None, sigma=sigma, gridsize=gridsize,
                        all_touched=all_touched, normalize_strain=normalize_strain,
                        gps_crs=gps_crs, gps_units=gps_units, gps_window_px=gps_window,
                        gps_debias=gps_debias)
    if as_json:
        typer.echo(json.dumps(jsonable(r), indent=2, allow_nan=False))
        return
    _print_report(r)
