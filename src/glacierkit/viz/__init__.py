"""Figures: map quicklooks of rasters and velocity fields, reliability diagrams (matplotlib).

Map conventions (axes with CRS, scale bar, colour bar with units and capped ends marked, arrow
key, clipped overlays) live in :mod:`glacierkit.viz.maps`.
"""

from glacierkit.viz.maps import (
    add_arrow_key,
    add_colorbar,
    add_scale_bar,
    clip_to,
    crs_name,
    draw_outlines,
    map_axes,
    raster_map,
    velocity_map,
)
from glacierkit.viz.quicklook import finish_map_axes, quicklook, save_png, stretch

__all__ = ["add_arrow_key", "add_colorbar", "add_scale_bar", "clip_to", "crs_name",
           "draw_outlines", "finish_map_axes", "map_axes", "quicklook", "raster_map",
           "save_png", "stretch", "velocity_map"]
