"""Products of the velocity pipeline, written atomically on the node grid.

* ``velocity.tif`` — bands ``vx`` (east), ``vy`` (north), ``v`` (speed), float32, NaN nodata,
  in m/yr (default) or m/day.
* ``displacement.tif`` — bands ``dx`` (east), ``dy`` (north), metres over the pair.
* ``quality.tif`` — bands ``peak_corr``, ``snr``, ``peak_ratio``, ``status`` (float32; the
  status band holds the :class:`~glacierkit.velocity.status.Status` codes, also listed in its
  band tags).
* ``report.json`` — inputs, dates, dt, parameters, corrections and fitted values, stable-ground
  statistics.
* ``quicklook.png`` — speed over the reference image with flow arrows.

All rasters use node-centre georeferencing (:mod:`glacierkit.velocity.field`). The products
are staged and published together (:func:`product_set`): an interrupted or failed run leaves
none of them.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from glacierkit.io import Grid, Raster, write_raster
from glacierkit.io.products import ProductSet
from glacierkit.io.writer import check_output_path, publish_file
from glacierkit.velocity.status import Status

log = logging.getLogger(__name__)

PRODUCTS = ("velocity.tif", "displacement.tif", "quality.tif", "report.json", "quicklook.png")

#: Below this share of valid nodes (finite speed) the run logs a warning and says so in the
#: report: the products are written, but are nearly or entirely empty.
MIN_VALID_SHARE = 0.01


def check_outputs(out_dir: Path, *, overwrite: bool) -> None:
    """Refuse to start when a product exists (unless ``overwrite``); creates nothing.

    Call it before the work (fail fast), and create ``out_dir`` only when writing.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"output folder {out_dir} exists and is not a folder.")
    if out_dir.exists():
        for name in PRODUCTS:
            check_output_path(out_dir / name, overwrite=overwrite)


def product_set(out_dir: Path, *, quicklook: bool, overwrite: bool) -> ProductSet:
    """The products of one run as a :class:`~glacierkit.io.products.ProductSet` (report last).

    Checks the targets (existing products refused unless ``overwrite``); creates nothing.
    """
    names = ["velocity.tif", "displacement.tif", "quality.tif"]
    if quicklook:
        names.append("quicklook.png")
    names.append("report.json")
    return ProductSet(out_dir, names, overwrite=overwrite)


def note_valid_share(report: dict[str, Any], v: np.ndarray) -> float:
    """Put ``valid_share`` (and a warning if it is below 1 %) into ``report``; return it.

    Args:
        report: The run's report; gets ``valid_share`` (0–1, nodes with a finite speed) and
            ``warnings`` (a list of messages, empty when all is well).
        v: Speed on the node grid ``(rows, cols)``; NaN = no valid offset.
    """
    total = int(v.size)
    n = int(np.isfinite(v).sum())
    share = n / total if total else 0.0
    report["valid_share"] = share
    warnings = report.setdefault("warnings", [])
    if share < MIN_VALID_SHARE:
        msg = (f"{n} of {total} nodes ({100 * share:.2f} %) have a valid velocity: the "
               f"products are {'empty' if n == 0 else 'nearly empty'}. Check that the images "
               f"overlap and show the same surface, the time separation, and the chip/search "
               f"sizes (status counts in report.json say why nodes failed).")
        log.warning("%s", msg)
        warnings.append(msg)
    return share


def write_products(out_dir: Path, grid: Grid, *, vx: np.ndarray, vy: np.ndarray,
                   v: np.ndarray, dx_m: np.ndarray, dy_m: np.ndarray, peak_corr: np.ndarray,
                   snr: np.ndarray, peak_ratio: np.ndarray, status: np.ndarray, units: str,
                   tags: dict[str, Any], overwrite: bool) -> list[Path]:
    """Write the three rasters (see module docstring); returns their paths."""
    common = {"tags": tags, "overwrite": overwrite}
    p1 = write_raster(out_dir / "velocity.tif", np.stack([vx, vy, v]).astype(np.float32), grid,
                      band_names=["vx", "vy", "v"], units=units, **common)
    p2 = write_raster(out_dir / "displacement.tif", np.stack([dx_m, dy_m]).astype(np.float32),
                      grid, band_names=["dx", "dy"], units="m", **common)
    codes = {str(int(s)): s.name for s in Status}
    q = np.stack([peak_corr, snr, np.where(np.isinf(peak_ratio), np.nan, peak_ratio),
                  status.astype(np.float32)]).astype(np.float32)
    p3 = write_raster(out_dir / "quality.tif", q, grid,
                      band_names=["peak_corr", "snr", "peak_ratio", "status"],
                      units=["1", "1", "1", "code"],
                      band_tags=[{}, {}, {"note": "inf (no second peak) written as NaN"},
                                 {"codes": codes}], **common)
    return [p1, p2, p3]


def write_report(path: Path, report: dict[str, Any], *, overwrite: bool) -> Path:
    """Write ``report.json`` atomically."""
    check_output_path(path, overwrite=overwrite)
    tmp = path.with_name(f".{path.name}.part")
    try:
        tmp.write_text(json.dumps(report, indent=2, default=_json_default))
        publish_file(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path | os.PathLike):
        return str(o)
    return str(o)


def write_quicklook(path: Path, background: Raster, grid: Grid, vx: np.ndarray,
                    vy: np.ndarray, v: np.ndarray, *, units: str, title: str,
                    overwrite: bool, arrows: int = 28, width_in: float = 9.0,
                    dpi: int = 110) -> Path:
    """Speed (colour, semi-transparent) over the reference image (grey) with flow arrows.

    Drawn by :func:`glacierkit.viz.velocity_map`: axes in map units with the CRS named, a
    scale bar, a colour bar in ``units`` capped at the 98th percentile (the cap marked when
    the map reaches beyond it) and an arrow-scale key. ``vx``, ``vy``, ``v`` have the shape
    of ``grid`` (the node grid). ``width_in`` (inches) and ``dpi`` set the figure size
    (smaller for documentation).
    """
    from glacierkit.viz import save_png, velocity_map

    check_output_path(path, overwrite=overwrite)
    fig = velocity_map(background, grid, vx, vy, v, units=units, title=title, arrows=arrows,
                       width_in=width_in, dpi=dpi)
    save_png(fig, path)
    return path
