"""Quicklook PNGs: a raster (grey, RGB or a colour map) with optional outline overlays.

Plotted in map coordinates of the raster's grid (axes in CRS units), so overlays land where
they belong; vectors are reprojected to the raster CRS (logged), the raster never is.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from glacierkit.io.raster import Raster
from glacierkit.io.vector import to_grid_crs
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
              colorbar_label: str | None = None, vmin: float | None = None,
              vmax: float | None = None, dpi: int = 110, overwrite: bool = False) -> Path:
    """Write a PNG quicklook of ``raster`` with optional outline overlays.

    Args:
        raster: The raster to show.
        path: Output ``.png`` (written atomically; refuses to overwrite unless asked).
        bands: 0-based band indexes: one (grey/colour map) or three (RGB). Default: first
            band, or the first three for a 3+ band raster.
        cmap: Matplotlib colour map for a single band.
        outlines: ``(GeoDataFrame, colour, label)`` triples drawn as polygon boundaries.
        title: Figure title.
        colorbar_label: Show a colour bar with this label (single band with ``vmin``/``vmax``
            or raw values; without it the image is percentile-stretched).
        vmin, vmax: Colour limits for a single band (raw values); default 2–98 % stretch.
        dpi: Resolution of the PNG.
        overwrite: Replace an existing file.

    Returns:
        The PNG path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = check_output_path(path, overwrite=overwrite)
    if bands is None:
        bands = [0, 1, 2] if raster.count >= 3 else [0]
    left, bottom, right, top = raster.grid.bounds
    aspect = raster.grid.height / raster.grid.width
    fig, ax = plt.subplots(figsize=(8, max(3.0, 8 * aspect)), dpi=dpi)
    try:
        if len(bands) == 3:
            rgb = np.dstack([stretch(raster.data[b]) for b in bands])
            alpha = np.all(np.isfinite(rgb), axis=2).astype(float)
            im = ax.imshow(np.dstack([np.nan_to_num(rgb), alpha]),
                           extent=(left, right, bottom, top), interpolation="nearest")
        else:
            band = raster.data[bands[0]].astype(np.float64)
            if colorbar_label is not None or vmin is not None or vmax is not None:
                im = ax.imshow(np.ma.masked_invalid(band), cmap=cmap, vmin=vmin, vmax=vmax,
                               extent=(left, right, bottom, top), interpolation="nearest")
                if colorbar_label:
                    fig.colorbar(im, ax=ax, shrink=0.8, label=colorbar_label)
            else:
                im = ax.imshow(np.ma.masked_invalid(stretch(band)), cmap=cmap, vmin=0, vmax=1,
                               extent=(left, right, bottom, top), interpolation="nearest")
        handles = []
        for gdf, colour, label in outlines:
            g = to_grid_crs(gdf, raster.grid, name=label) if raster.grid.is_georeferenced else gdf
            g.boundary.plot(ax=ax, color=colour, linewidth=0.8)
            from matplotlib.lines import Line2D

            handles.append(Line2D([], [], color=colour, label=f"{label} ({len(g)})"))
        if handles:
            ax.legend(handles=handles, loc="lower right", fontsize=8, framealpha=0.8)
        ax.set_xlim(left, right)
        ax.set_ylim(bottom, top)
        unit = "px" if not raster.grid.is_georeferenced else (
            raster.grid.crs.linear_units or "map units")
        crs = f"EPSG:{raster.grid.epsg}" if raster.grid.epsg else (
            "not georeferenced" if not raster.grid.is_georeferenced else "custom CRS")
        ax.set_xlabel(f"x ({unit}, {crs})")
        ax.set_ylabel(f"y ({unit})")
        finish_map_axes(ax, title)
        save_png(fig, out)
    finally:
        plt.close(fig)
    del im
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
