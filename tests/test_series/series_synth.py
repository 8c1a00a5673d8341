"""Tiny synthetic Sentinel-1-like GeoTIFF series for the series tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

CRS = "EPSG:32645"
TRANSFORM = Affine(20.0, 0, 447000.0, 0, -20.0, 3083200.0)  # near Tsho Rolpa (86.47° E)


def write_tif(path: Path, data: np.ndarray, *, crs: str = CRS, transform: Affine = TRANSFORM,
              nodata: float | None = 0.0) -> Path:
    """A small float32 GeoTIFF, (rows, cols) or (bands, rows, cols)."""
    arr = np.asarray(data, dtype=np.float32)
    arr = arr if arr.ndim == 3 else arr[None]
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=arr.shape[2], height=arr.shape[1],
                       count=arr.shape[0], dtype="float32", crs=crs, transform=transform,
                       nodata=nodata) as ds:
        ds.write(arr)
    return path


def power_image(seed: int, shape: tuple[int, int] = (12, 10), level: float = 0.15) -> np.ndarray:
    """Speckled linear power (exponential), median about ``level``·ln 2."""
    rng = np.random.default_rng(seed)
    return (level * rng.exponential(1.0, shape)).astype(np.float32) + np.float32(1e-3)


def write_series(folder: Path, names: list[str], *, seed: int = 0, **kw) -> list[Path]:
    """One power image per name in ``folder``."""
    return [write_tif(folder / n, power_image(seed + i), **kw) for i, n in enumerate(names)]


ASC = "S1A_IW_{}T122148_DVP_RTC20_G_gpufed_0BB8_VV.tif"  # ≈18:08 local at 86.5° E
DSC = "S1A_IW_{}T001130_DVP_RTC20_G_gpufed_5E3C_VV.tif"  # ≈05:57 local
