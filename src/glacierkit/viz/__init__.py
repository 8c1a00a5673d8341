"""Figures: quicklook PNGs of rasters with outline overlays (matplotlib, Agg backend)."""

from glacierkit.viz.quicklook import finish_map_axes, quicklook, save_png, stretch

__all__ = ["finish_map_axes", "quicklook", "save_png", "stretch"]
