"""Synthetic mass-balance tables and a facies map + DEM with known answers (helpers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from shapely.geometry import box

CRS = "EPSG:32632"
TRANSFORM = Affine(10.0, 0, 500000.0, 0, -10.0, 5200000.0)
SHAPE = (40, 40)
# Outline covering pixel columns 5..34 and rows 2..37 (centres inside): 30 × 36 = 1080 px.
OUTLINE = box(500050.0, 5199620.0, 500350.0, 5199980.0)
SNOW_ROWS = range(2, 12)  # 10 rows of snow above row 12
SHADOW = (slice(30, 34), slice(5, 15))  # 40 px of shadow (on ice)
NODATA = (20, slice(5, 10))  # 5 px nodata (on ice)


def dem_array() -> np.ndarray:
    """Elevation 3000 m at row 0, 10 m lower per row (m a.s.l.)."""
    rows = np.arange(SHAPE[0], dtype=np.float32)[:, None]
    return np.broadcast_to(3000.0 - 10.0 * rows, SHAPE).astype(np.float32).copy()


def facies_array() -> np.ndarray:
    """ice (0) everywhere; snow (1) above row 12; shadow (5) and nodata (255) patches on ice."""
    f = np.zeros(SHAPE, dtype=np.uint8)
    f[: SNOW_ROWS.stop] = 1
    f[SHADOW] = 5
    f[NODATA] = 255
    return f


def write_tif(path: Path, arr: np.ndarray, *, transform: Affine = TRANSFORM, nodata=None,
              tags: dict | None = None, description: str | None = None) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=arr.shape[1], height=arr.shape[0],
                       count=1, dtype=arr.dtype, crs=CRS, transform=transform,
                       nodata=nodata) as ds:
        ds.write(arr, 1)
        if tags:
            ds.update_tags(**tags)
        if description:
            ds.set_band_description(1, description)
    return path


def write_wgms_mbdata(folder: Path, wgms_id: int, name: str, years, balances_mm,
                      rgi_id: str = "") -> Path:
    """A WGMS FoG ``mbdata`` CSV (balances in mm w.e.)."""
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / f"mbdata_WGMS-{wgms_id:05d}.csv"
    lines = ["YEAR,WGMS_ID,POLITICAL_UNIT,NAME,AREA,WINTER_BALANCE,SUMMER_BALANCE,"
             "ANNUAL_BALANCE,REMARKS,RGI_ID"]
    for y, b in zip(years, balances_mm, strict=True):
        bs = "" if b is None or (isinstance(b, float) and np.isnan(b)) else f"{b:.1f}"
        lines.append(f"{y},{wgms_id},XX,{name},1.5,,,{bs},,{rgi_id}")
    p.write_text("\n".join(lines) + "\n")
    return p
