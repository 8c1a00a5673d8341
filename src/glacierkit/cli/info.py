"""``glacierkit info PATH [--json]``: describe a raster, vector or model (``.gkm``) file."""

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


def _fmt4(v: object) -> str:
    return f"{v:.4g}" if isinstance(v, float) else _fmt(v)


def _crs_units(crs: str | None) -> str:
    """Units of a CRS's first axis, short (``"m"``, ``"°"``, ``"ft"``); ``"px"`` without a CRS."""
    if not crs:
        return "px"
    try:
        from pyproj import CRS

        name = CRS.from_user_input(crs).axis_info[0].unit_name
    except Exception:  # an unusual CRS string: say so rather than guess
        return "CRS units"
    return {"metre": "m", "meter": "m", "degree": "°", "foot": "ft",
            "US survey foot": "US ft"}.get(name, name)


@app.command()
def info(
    path: Path = typer.Argument(..., metavar="PATH",
                                help="Raster (GeoTIFF, PNG, ...), vector or model "
                                "(.gkm) file."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Describe a raster (CRS, size, resolution, bands, statistics), a vector or a model file.

    For a model file: task, architecture and size, source groups and bands, classes, the
    training domain per channel, calibration, normalisation, tiling and format version.
    """
    d = describe(path)
    if as_json:
        typer.echo(json.dumps(d, indent=2))
        return
    con = Console()
    if d["kind"] == "model":
        _print_model(con, path, d)
        return
    t = Table(title=str(path), show_header=False, title_justify="left")
    cu = _crs_units(d.get("crs"))
    bounds = ("—" if d.get("bounds") is None else
              ", ".join(f"{v:.10g}" for v in d["bounds"]) + f" {cu} (left, bottom, right, top)")
    if d["kind"] == "raster":
        rows = [("driver", d["driver"]), ("crs", d["crs"] or "none (not georeferenced)"),
                ("size", f"{d['width']} × {d['height']} px"),
                ("resolution", f"{d['resolution'][0]:g} × {d['resolution'][1]:g} {cu}"),
                ("bands", d["band_count"]), ("dtypes", ", ".join(d["dtypes"])),
                ("nodata", d["nodata"]), ("bounds", bounds)]
    else:
        rows = [("driver", d["driver"]), ("crs", d["crs"]), ("features", d["feature_count"]),
                ("geometry", ", ".join(d["geometry_types"])),
                ("fields", ", ".join(f"{k} ({v})" for k, v in d["fields"].items())),
                ("bounds", bounds)]
    for k, v in rows:
        t.add_row(k, _fmt(v))
    con.print(t)
    if d["kind"] == "raster":
        bt = Table("band", "name", "unit", "min", "max", "mean", "valid %",
                   title="bands (min, max, mean in the band's unit)", title_justify="left")
        for b in d["bands"]:
            bt.add_row(str(b["index"]), b["name"], b["unit"] or "unknown", _fmt4(b["min"]),
                       _fmt4(b["max"]), _fmt4(b["mean"]), f"{100 * b['valid_share']:.1f}")
        con.print(bt)


def _size(n: int | None) -> str:
    if n is None:
        return "—"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)  # pragma: no cover


def _print_model(con: Console, path: Path, d: dict) -> None:
    """Model-file tables, each at most 80 columns wide."""
    kw = d.get("model_kwargs") or {}
    arch = (d["arch"] or "—") + (f" (size {kw['size']})" if kw.get("size") else "")
    params = d.get("parameters")
    cal = d["calibration"]
    cal_text = cal["method"]
    if cal["values"]:
        cal_text += " (" + ", ".join(f"{k}={_fmt4(v)}" for k, v in cal["values"].items()) + ")"
    cond = d.get("cond") or {}
    cond_text = cond.get("kind", "none") + (f" {cond['regions']}" if cond.get("regions") else "")
    tile = d.get("tile") or {}
    rows = [("task", d["task"] or "unknown (not recorded)"), ("architecture", arch),
            ("parameters", f"{params:,}" if params is not None else "—"),
            ("file size", _size(d.get("file_size_bytes"))),
            ("ONNX graph", "yes" if d.get("onnx") else "no"),
            ("classes", ", ".join(f"{i} {c}" for i, c in enumerate(d["classes"]))),
            ("calibration", cal_text),
            ("conditioning", cond_text),
            ("tile", f"{tile.get('size', '—')} px, overlap {tile.get('overlap', '—')} px"),
            ("inputs", "; ".join(f"{i['name']} ({', '.join(str(a) for a in i['shape'])})"
                                 for i in d.get("inputs") or [])),
            ("format version", str(d["format_version"])),
            ("written by", f"glacierkit {d['glacierkit_version']}")]
    ser = d.get("series")
    if ser:
        ts = ser.get("time_steps")
        rows.append(("dates", (f"exactly {ts}" if ts else "any number") +
                     (", date-aware" if ser.get("date_aware") else ", order only")))
        sel = ser.get("selection") or {}
        if sel:
            rows.append(("date selection", ", ".join(f"{k}={v}" for k, v in sel.items())))
    for k, v in (d.get("training") or {}).items():
        if isinstance(v, int | float | str) and not isinstance(v, bool):
            rows.append((f"training {k}", _fmt4(v)))
    t = Table(title=str(path), show_header=False, title_justify="left")
    for k, v in rows:
        t.add_row(k, v)
    con.print(t)
    g = Table("group", "kind", "raw bands", "channels", title="source groups (input order)",
              title_justify="left")
    for grp in d["groups"]:
        kind = grp["kind"] + (" series" if grp.get("time") else "")
        g.add_row(grp["name"], kind, ", ".join(grp["bands"]), ", ".join(grp["channels"]))
    con.print(g)
    dom = d["domain"]
    if dom == "unknown":
        con.print("training domain: unknown (the model file predates domain records; scenes "
                  "are not checked against it)")
    else:
        title = "training domain" + (f" ({d['domain_source']})" if d.get("domain_source")
                                     else "")
        dt = Table("channel", "file dtype", "units", "p0.5", "p50", "p99.5", "valid %",
                   title=title, title_justify="left")
        for r in dom:
            share = r.get("valid_share")
            dt.add_row(r["channel"], r.get("dtype") or "—", r.get("units") or "unknown",
                       _fmt4(r.get("p0_5")), _fmt4(r.get("p50")), _fmt4(r.get("p99_5")),
                       "—" if share is None else f"{100 * share:.1f}")
        con.print(dt)
    nt = Table("channel", "mean", "std", title="normalisation",
               title_justify="left")
    for r in d.get("norm") or []:
        nt.add_row(str(r["channel"]), _fmt4(r["mean"]), _fmt4(r["std"]))
    con.print(nt)
