"""Quicklook PNGs: a raster (grey, RGB or a colour map) with optional outline overlays.

Plotted in map coordinates of the raster's grid (axes in CRS units), so overlays land where
they belong; vectors are reprojected to the raster CRS (logged), the raster never is. The map
conventions (axes, scale bar, colour bar, arrow key, overlays) live in
:mod:`glacierkit.viz.maps`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from glacierkit.io.raster import Raster
from glacierkit.io.writer import check_output_path, publish_file

log = logging.getLogger(__name__)


def stretch(data: np.ndarray, *, percentiles: tuple[float, float] = (2.0, 98.0)) -> np.ndarray:
    """Linear percentile stretch of ``data`` (any shape, NaN = nodata) to 0–1 floats.

    NaNs stay NaN. A constant image maps to 0.5.
    """
    a = np.asarray(data, dtype=np.float64)
    finite = a[np.isfinite(a)]
    if finite.size == 0:
        return np.full(a.shape, np.nan)
    lo, hi = np.percentile(finite, percentiles)
    if hi <= lo:
        return np.where(np.isfinite(a), 0.5, np.nan)
    return np.clip((a - lo) / (hi - lo), 0.0, 1.0)


def quicklook(raster: Raster, path: str | os.PathLike[str], *,
              bands: Sequence[int] | None = None, cmap: str = "gray",
              outlines: Sequence[tuple[object, str, str]] = (), title: str | None = None,
              colorbar_label: str | None = None, units: str | None = None,
              vmin: float | None = None, vmax: float | None = None, dpi: int = 110,
              overwrite: bool = False) -> Path:
    """Write a PNG quicklook of ``raster`` with optional outline overlays.

    Drawn by :func:`glacierkit.viz.maps.raster_map`: axes in map units with the CRS named,
    a scale bar, a colour bar with units (single band; capped ends marked) or the RGB stretch
    noted, and a legend of the outlines.

    Args:
        raster: The raster to show, shape ``(bands, rows, cols)``.
        path: Output ``.png`` (written atomically; refuses to overwrite unless asked).
        bands: 0-based band indexes: one (grey/colour map) or three (RGB). Default: first
            band, or the first three for a 3+ band raster.
        cmap: Matplotlib colour map for a single band.
        outlines: ``(GeoDataFrame, colour, label)`` triples drawn as polygon boundaries
            (clip annotations to what they annotate first: :func:`glacierkit.viz.clip_to`).
        title: Figure title.
        colorbar_label: Quantity named on the colour bar (default: the band name).
        units: Units of the band values (default: the raster's own units of that band).
        vmin, vmax: Colour limits for a single band (raw values); default 2–98 % of the
            valid pixels.
        dpi: Resolution of the PNG.
        overwrite: Replace an existing file.

    Returns:
        The PNG path.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
    """
    from glacierkit.viz.maps import raster_map

    out = check_output_path(path, overwrite=overwrite)
    fig = raster_map(raster, bands=bands, cmap=cmap, outlines=outlines,  # type: ignore[arg-type]
                     title=title, colorbar_label=colorbar_label, units=units, vmin=vmin,
                     vmax=vmax, dpi=dpi)
    save_png(fig, out)
    log.info("wrote quicklook %s", out)
    return out


def finish_map_axes(ax, title: str | None) -> None:
    """Plain (not offset/scientific) map-coordinate ticks, small labels, title."""
    ax.ticklabel_format(style="plain", useOffset=False)
    ax.tick_params(labelsize=7)
    if title:
        ax.set_title(title, fontsize=10)


def save_png(fig, path: Path) -> None:
    """Save a figure as PNG atomically (temporary file, then rename)."""
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.part.png")
    try:
        fig.savefig(tmp, format="png")
        publish_file(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
