"""``glacierkit info PATH [--json]``: describe a raster or vector file."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from glacierkit.cli.main import app
from glacierkit.io.info import describe


def _fmt(v: object) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


@app.command()
def info(
    path: Path = typer.Argument(..., help="Raster (GeoTIFF, PNG, ...) or vector file."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Describe a raster (CRS, size, resolution, bands, statistics) or a vector file."""
    d = describe(path)
    if as_json:
        typer.echo(json.dumps(d, indent=2))
        return
    con = Console()
    t = Table(title=str(path), show_header=False, title_justify="left")
    if d["kind"] == "raster":
        rows = [("driver", d["driver"]), ("crs", d["crs"] or "none (not georeferenced)"),
                ("size", f"{d['width']} × {d['height']} px"),
                ("resolution", f"{d['resolution'][0]:g} × {d['resolution'][1]:g}"),
                ("bands", d["band_count"]), ("dtypes", ", ".join(d["dtypes"])),
                ("nodata", d["nodata"]), ("bounds", d["bounds"])]
    else:
        rows = [("driver", d["driver"]), ("crs", d["crs"]), ("features", d["feature_count"]),
                ("geometry", ", ".join(d["geometry_types"])),
                ("fields", ", ".join(f"{k} ({v})" for k, v in d["fields"].items())),
                ("bounds", d["bounds"])]
    for k, v in rows:
        t.add_row(k, _fmt(v))
    con.print(t)
    if d["kind"] == "raster":
        bt = Table("band", "name", "unit", "min", "max", "mean", "valid %")
        for b in d["bands"]:
            bt.add_row(str(b["index"]), b["name"], b["unit"] or "—", _fmt(b["min"]),
                       _fmt(b["max"]), _fmt(b["mean"]), f"{100 * b['valid_share']:.1f}")
        con.print(bt)
