from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from affine import Affine
from shapely.geometry import box

from glacierkit.errors import (
    CRSError,
    DatasetNotFoundError,
    InputError,
    OutputExistsError,
    VectorReadError,
)
from glacierkit.io import (
    Grid,
    area_km2,
    open_raster,
    polygonize,
    rasterize,
    read_vector,
    write_vector,
)

GRID = Grid(crs=32607, transform=Affine(10, 0, 500000, 0, -10, 6700000), shape=(100, 100))


def _square_gdf(crs="EPSG:32607") -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"id": [1]}, geometry=[box(500100, 6699100, 500300, 6699300)],
                            crs=crs)


@pytest.mark.parametrize("suffix", [".shp", ".gpkg", ".geojson"])
def test_read_formats(tmp_path: Path, suffix: str):
    p = tmp_path / f"sq{suffix}"
    _square_gdf().to_file(p)
    g = read_vector(p)
    assert len(g) == 1 and g.crs.to_epsg() == 32607


def test_vector_without_crs(tmp_path: Path):
    p = tmp_path / "nocrs.shp"
    with pytest.warns(UserWarning, match="crs"):
        _square_gdf(crs=None).to_file(p)
    with pytest.raises(CRSError, match="no CRS"):
        read_vector(p)
    assert read_vector(p, crs=32607).crs.to_epsg() == 32607


def test_missing_and_corrupt(tmp_path: Path):
    with pytest.raises(DatasetNotFoundError):
        read_vector(tmp_path / "none.gpkg")
    bad = tmp_path / "bad.gpkg"
    bad.write_bytes(b"not a geopackage")
    with pytest.raises(VectorReadError):
        read_vector(bad)


def test_rasterize_known_square():
    m = rasterize(_square_gdf(), GRID)
    assert m.sum() == 20 * 20
    assert m[70:90, 10:30].all()


def test_rasterize_reprojects_vector(caplog):
    sq = _square_gdf().to_crs(4326)
    with caplog.at_level("INFO"):
        m = rasterize(sq, GRID)
    assert "reprojecting" in caplog.text
    assert abs(int(m.sum()) - 400) <= 4


def test_rasterize_all_touched():
    g = gpd.GeoDataFrame(geometry=[box(500107, 6699107, 500193, 6699193)], crs=32607)
    assert rasterize(g, GRID).sum() == 64
    assert rasterize(g, GRID, all_touched=True).sum() == 100


def test_rasterize_no_overlap():
    far = gpd.GeoDataFrame(geometry=[box(0, 0, 10, 10)], crs=32607)
    with pytest.raises(InputError, match="does not overlap"):
        rasterize(far, GRID)


def test_polygonize_area_and_classes():
    cls = np.zeros(GRID.shape, np.uint8)
    cls[0:10, 0:20] = 1  # 200 px * 100 m² = 0.02 km²
    cls[50:60, 50:60] = 2
    gdf = polygonize(cls, GRID, class_names={1: "ice", 2: "debris"})
    assert sorted(gdf["class_name"]) == ["debris", "ice"]
    ice = gdf[gdf["class"] == 1]
    assert ice["area_km2"].iloc[0] == pytest.approx(0.02)
    assert gdf.crs.to_epsg() == 32607


def test_area_geodesic_matches_projected():
    sq = _square_gdf()
    projected = area_km2(sq)[0]
    geodesic = area_km2(sq.to_crs(4326))[0]
    assert projected == pytest.approx(0.04)
    # UTM scale factor near the central meridian ~0.9996 → ~0.08 % area difference.
    assert geodesic == pytest.approx(projected, rel=2e-3)


def test_write_vector_atomic_and_no_overwrite(tmp_path: Path):
    out = write_vector(_square_gdf(), tmp_path / "o.gpkg")
    assert len(read_vector(out)) == 1
    with pytest.raises(OutputExistsError):
        write_vector(_square_gdf(), out)
    with pytest.raises(InputError, match="single-file"):
        write_vector(_square_gdf(), tmp_path / "o.shp")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.gpkg"]


def test_everest_rgi_outlines_on_landsat(shared_data: Path):
    d = shared_data / "geoutils_everest_exploradores" / "Everest_Landsat"
    img = open_raster(d / "LE71400412000304SGS00_B4.tif")
    rgi = read_vector(d / "15_rgi60_glacier_outlines.gpkg")
    assert rgi.crs.to_epsg() == 4326 and len(rgi) == 86
    mask = rasterize(rgi, img.grid)
    share = mask.mean()
    assert 0.2 < share < 0.8  # glaciers cover a large part of the crop
    polys = polygonize(mask, img.grid, class_names={1: "glacier"})
    total = polys["area_km2"].sum()
    assert total == pytest.approx(mask.sum() * 30 * 30 / 1e6, rel=1e-6)
