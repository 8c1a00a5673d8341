"""Fixtures of the deep-learning tests: small synthetic georeferenced multi-source scenes.

``dl_scene`` (and the factory ``make_dl_scene``) write, in ``tmp_path``, a tiny scene in UTM
45N (EPSG:32645, 30 m pixels, near Everest):

* ``rgb.tif`` (3 bands: red, green, blue) + ``nir.tif`` (1 band): float32 reflectance. Glacier
  pixels have red 0.60 ± 0.02, off-glacier 0.20 ± 0.02, so ``labels == (red > 0.4)`` exactly;
* ``dem.tif``: a smooth mountain (elevation, metres);
* ``synthetic_sar.tif`` (VV, VH linear power) + ``synthetic_coherence.tif`` (0–1) from
  :mod:`glacierkit.dl.synthetic`;
* ``outlines.gpkg``: two elliptic glacier polygons in EPSG:4326 (to exercise reprojection).

``DLScene.labels`` is the truth rasterised from the UTM polygons. Optional corner nodata
(``nodata_corner=True``): the first 8×8 optical pixels are NaN (declared nodata).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from affine import Affine
from rasterio import features

from glacierkit.dl.sources import SourceLayout
from glacierkit.dl.synthetic import write_synthetic_sar
from glacierkit.io import Grid, write_raster

GLACIER_RED, ROCK_RED = 0.60, 0.20


@dataclass
class DLScene:
    """Paths and truth of a synthetic scene written by ``make_dl_scene``."""

    root: Path
    grid: Grid
    layout: SourceLayout
    sources: dict[str, list[Path]]   # {"optical": [rgb, nir], "dem": [...], "sar": [...], ...}
    outlines: Path                   # GeoPackage, EPSG:4326
    polygons: gpd.GeoDataFrame       # the outlines in the grid CRS
    labels: np.ndarray               # uint8 (H, W): 0 off-glacier, 1 glacier
    dem: np.ndarray                  # float32 (H, W) metres
    region: str
    name: str


def _scene(root: Path, *, name: str, shape: tuple[int, int], res: float,
           origin: tuple[float, float], crs: str, seed: int, nodata_corner: bool,
           region: str) -> DLScene:
    root.mkdir(parents=True, exist_ok=True)
    h, w = shape
    grid = Grid(crs=crs, transform=Affine(res, 0, origin[0], 0, -res, origin[1]), shape=shape)
    x0, y0 = origin
    # Two elliptic glaciers (map units), well inside the scene.
    e1 = shapely.affinity.scale(shapely.Point(x0 + 0.30 * w * res, y0 - 0.45 * h * res)
                                .buffer(1.0, quad_segs=32), 0.18 * w * res, 0.30 * h * res)
    e2 = shapely.affinity.scale(shapely.Point(x0 + 0.72 * w * res, y0 - 0.55 * h * res)
                                .buffer(1.0, quad_segs=32), 0.15 * w * res, 0.22 * h * res)
    polys = gpd.GeoDataFrame({"name": ["north", "south"], "kind": ["glacier", "glacier"]},
                             geometry=[e1, e2], crs=crs)
    labels = features.rasterize([(g, 1) for g in polys.geometry], out_shape=shape,
                                transform=grid.transform, fill=0, dtype="uint8")
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    dem = (5000.0 + 600.0 * np.exp(-(((rows - h / 2) / (0.6 * h)) ** 2
                                      + ((cols - w / 2) / (0.6 * w)) ** 2))
           + 2.0 * cols).astype(np.float32)
    glacier = labels == 1
    red = np.where(glacier, GLACIER_RED, ROCK_RED) + rng.uniform(-0.02, 0.02, shape)
    green = np.where(glacier, 0.62, 0.22) + rng.uniform(-0.02, 0.02, shape)
    blue = np.where(glacier, 0.66, 0.21) + rng.uniform(-0.02, 0.02, shape)
    nir = np.where(glacier, 0.50, 0.28) + rng.uniform(-0.02, 0.02, shape)
    rgb = np.stack([red, green, blue]).astype(np.float32)
    nir = nir[None].astype(np.float32)
    if nodata_corner:
        rgb[:, :8, :8] = np.nan
        nir[:, :8, :8] = np.nan
    paths = {
        "rgb": write_raster(root / "rgb.tif", rgb, grid, band_names=["red", "green", "blue"]),
        "nir": write_raster(root / "nir.tif", nir, grid, band_names=["nir"]),
        "dem": write_raster(root / "dem.tif", dem, grid, band_names=["elevation"], units="m"),
    }
    sar = write_synthetic_sar(root, labels, grid, dem=dem, seed=seed)
    outlines = root / "outlines.gpkg"
    polys.to_crs("EPSG:4326").to_file(outlines, engine="pyogrio")
    layout = SourceLayout.standard(("red", "green", "blue", "nir"), dem=True, sar=("vv", "vh"),
                                   coherence=True)
    sources = {"optical": [paths["rgb"], paths["nir"]], "dem": [paths["dem"]],
               "sar": [sar["sar"]], "coherence": [sar["coherence"]]}
    return DLScene(root=root, grid=grid, layout=layout, sources=sources, outlines=outlines,
                   polygons=polys, labels=labels, dem=dem, region=region, name=name)


@pytest.fixture
def make_dl_scene(tmp_path: Path):
    """Factory: ``make(name="scene", shape=(64, 96), res=30.0, origin=(480000, 3100000),
    crs="EPSG:32645", seed=0, nodata_corner=False, region="himalaya") -> DLScene``; each
    scene is written to ``tmp_path / name``.
    """
    def make(name: str = "scene", *, shape: tuple[int, int] = (64, 96), res: float = 30.0,
             origin: tuple[float, float] = (480000.0, 3100000.0), crs: str = "EPSG:32645",
             seed: int = 0, nodata_corner: bool = False, region: str = "himalaya") -> DLScene:
        return _scene(tmp_path / name, name=name, shape=shape, res=res, origin=origin, crs=crs,
                      seed=seed, nodata_corner=nodata_corner, region=region)

    return make


@pytest.fixture
def dl_scene(make_dl_scene) -> DLScene:
    """A 64×96 px four-group scene (optical 4, DEM, SAR VV/VH, coherence) + outlines."""
    return make_dl_scene()


@pytest.fixture
def one_thread():
    """One intra-op torch thread: the test machines' cores are shared, and OpenMP threads
    spinning against other processes make the small CPU workloads here stall (measured: a
    small fit took 2.3 s with one thread and 27 s with two on a loaded 2-core machine)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
