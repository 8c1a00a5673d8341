"""Figures: quicklook PNGs of rasters with outline overlays (matplotlib, Agg backend)."""

from glacierkit.viz.quicklook import quicklook, stretch

__all__ = ["quicklook", "stretch"]
