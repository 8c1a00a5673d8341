from __future__ import annotations

import numpy as np
import pytest
from affine import Affine

from glacierkit.errors import InputError
from glacierkit.io import Grid
from glacierkit.velocity.field import map_to_pixel, node_grid_georef, pixel_to_map, velocity
from glacierkit.velocity.kernels import node_grid

IMG = Grid(crs=32607, transform=Affine(15, 0, 465060, 0, -15, 6681585), shape=(1087, 1698))


def test_node_centres_are_chip_centres():
    rows, cols = node_grid(IMG.shape, step_px=8, chip_size_px=32)
    g = node_grid_georef(IMG, rows, cols, 8)
    assert g.res == (120.0, 120.0) and g.shape == (rows.size, cols.size)
    for i, j in [(0, 0), (5, 17), (rows.size - 1, cols.size - 1)]:
        x_node, y_node = g.xy(i, j)
        x_px, y_px = IMG.xy(rows[i], cols[j])
        assert (float(x_node), float(y_node)) == pytest.approx((float(x_px), float(y_px)))


def test_pixel_to_map_north_up_signs():
    dx_m, dy_m = pixel_to_map(np.array([2.0]), np.array([3.0]), IMG)  # 2 px down, 3 px right
    assert dx_m[0] == 45.0  # east
    assert dy_m[0] == -30.0  # down = south


def test_map_to_pixel_inverts_rotated_grid():
    rot = Grid(crs=32607, transform=Affine.rotation(30) @ Affine(10, 0, 0, 0, -10, 0),
               shape=(10, 10))
    dy, dx = np.array([1.5, -2.0]), np.array([0.25, 4.0])
    back = map_to_pixel(*pixel_to_map(dy, dx, rot), rot)
    np.testing.assert_allclose(back[0], dy, atol=1e-5)
    np.testing.assert_allclose(back[1], dx, atol=1e-5)


def test_velocity_units():
    vx, vy, v = velocity(np.array([16.0]), np.array([-12.0]), 16.0, units="m/day")
    assert (vx[0], vy[0], v[0]) == (1.0, -0.75, 1.25)
    vx, _, _ = velocity(np.array([16.0]), np.array([0.0]), 16.0)
    assert vx[0] == pytest.approx(365.25)
    with pytest.raises(InputError):
        velocity(np.array([1.0]), np.array([1.0]), 0.0)
    with pytest.raises(InputError):
        velocity(np.array([1.0]), np.array([1.0]), 1.0, units="km/h")  # type: ignore[arg-type]
