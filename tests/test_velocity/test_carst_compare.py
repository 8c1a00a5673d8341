"""Reading CARST's offset grids: units, signs, nodata and node registration.

Expected values come from the files themselves (read with rasterio here) and from CARST's
``2016200_2016216_r32x32_s32x32_eastxyz.txt`` (first line ``465787.5 6680977.5 -322.2 ...``:
metres of east offset, stored negated).
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from glacierkit.errors import InputError
from glacierkit.io import Grid
from glacierkit.velocity.compare import agreement, read_carst_offsets, sample_nodes

EAST = "2016200_2016216_r32x32_s32x32_eastxyz.tif"
NORTH = "2016200_2016216_r32x32_s32x32_northxyz.tif"
DT = 16.0


@pytest.fixture(scope="module")
def raw(yahtse):
    with rasterio.open(yahtse / EAST) as e, rasterio.open(yahtse / NORTH) as n:
        return e.read(1).astype(np.float64), n.read(1).astype(np.float64)


def test_read_carst__metres_over_the_pair_to_m_per_yr_east_negated(yahtse, raw):
    f = read_carst_offsets(yahtse / EAST, yahtse / NORTH, dt_days=DT)
    e, n = raw
    assert e[0, 0] == pytest.approx(-322.2, abs=1e-4)  # the .txt's first line
    assert f.units == "m/yr"
    assert f.vx[0, 0] == pytest.approx(322.2 * 365.25 / DT, rel=1e-6)
    ok = (e != -32768) & (n != -32768)
    np.testing.assert_allclose(f.vx[ok], -e[ok] * 365.25 / DT)
    np.testing.assert_allclose(f.vy[ok], n[ok] * 365.25 / DT)
    assert np.isnan(f.vx[~ok]).all() and np.isnan(f.vy[~ok]).all()
    assert int(ok.sum()) == 24428 and int(np.isfinite(f.vx).sum()) == 24428


def test_read_carst__m_per_day(yahtse, raw):
    f = read_carst_offsets(yahtse / EAST, yahtse / NORTH, dt_days=DT, units="m/day")
    assert f.vx[0, 0] == pytest.approx(322.2 / DT, rel=1e-6)
    assert f.vy[0, 0] == pytest.approx(raw[1][0, 0] / DT, rel=1e-6)


def test_read_carst__registration(yahtse):
    code = read_carst_offsets(yahtse / EAST, yahtse / NORTH, dt_days=DT)
    file = read_carst_offsets(yahtse / EAST, yahtse / NORTH, dt_days=DT, registration="file")
    assert file.x[0, 0] == pytest.approx(465787.5) and file.y[0, 0] == pytest.approx(6680977.5)
    # getxyzs.py writes every node one node spacing (8 px × 15 m) too far north.
    assert code.x[0, 0] == pytest.approx(465787.5) and code.y[0, 0] == pytest.approx(6680857.5)
    np.testing.assert_allclose(file.y - code.y, 120.0)


def test_read_carst__bad_arguments(yahtse):
    with pytest.raises(InputError, match="dt_days"):
        read_carst_offsets(yahtse / EAST, yahtse / NORTH, dt_days=0.0)
    with pytest.raises(InputError, match="units"):
        read_carst_offsets(yahtse / EAST, yahtse / NORTH, dt_days=DT, units="px")
    with pytest.raises(InputError, match="registration"):
        read_carst_offsets(yahtse / EAST, yahtse / NORTH, dt_days=DT,
                           registration="centre")  # type: ignore[arg-type]


def test_sample_nodes__bilinear_and_nan_rules():
    from rasterio.transform import Affine

    grid = Grid(crs="EPSG:32607", transform=Affine(120, 0, 1000, 0, -120, 5000), shape=(4, 5))
    rows, cols = np.meshgrid(np.arange(4), np.arange(5), indexing="ij")
    x, y = grid.xy(rows, cols)
    field = 2.0 * x - 3.0 * y
    # Midway between four nodes: the mean of the four (= the linear field there).
    xm, ym = x[1, 1] + 60.0, y[1, 1] - 60.0
    assert sample_nodes(field, grid, xm, ym) == pytest.approx(2.0 * xm - 3.0 * ym)
    holed = field.copy()
    holed[2, 2] = np.nan
    assert np.isnan(sample_nodes(holed, grid, xm, ym))
    assert np.isnan(sample_nodes(field, grid, x[0, 0] - 1.0, y[0, 0]))  # outside the hull


def test_agreement__identical_and_offset():
    rng = np.random.default_rng(0)
    vx, vy = rng.normal(size=(2, 50, 40)) * 100
    same = agreement((vx, vy), (vx, vy))
    assert same["n"] == 2000 and same["vx"]["pearson"] == pytest.approx(1.0)
    assert same["speed"]["spearman"] == pytest.approx(1.0) and same["vy"]["nmad_diff"] == 0
    shifted = agreement((vx + 5.0, vy), (vx, vy))
    assert shifted["vx"]["median_diff"] == pytest.approx(5.0)
