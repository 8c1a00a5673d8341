"""EDGE re-search: nodes whose true shift exceeds the search range are recovered."""

from __future__ import annotations

import numpy as np
import pytest
from velocity_synth import chip_mean_flow, warp

from glacierkit.velocity import Status, match

CHIP = 32


def _flow(rr, cc):
    """1 px down on the left, 6.4 px down on the right (beyond a ±4 px search), smooth step."""
    step = 1.0 / (1.0 + np.exp(-(cc - 150.0) / 16.0))
    return 1.0 + 5.4 * step, 0.6 - 0.3 * step


@pytest.fixture(scope="module")
def pair(textured):
    big = textured(224, 320, 40)
    return big[40:-40, 40:-40], warp(big, _flow, margin=40, a=16)


@pytest.fixture(scope="module")
def runs(pair):
    kw = {"chip_size_px": CHIP, "search_px": 4, "step_px": 16, "levels": 0}
    return match(*pair, **kw), match(*pair, **kw, edge_research=True)


def test_edge_research__recovers_shifts_beyond_the_search(runs):
    off, on = runs
    true_dy, true_dx = chip_mean_flow(_flow, off.rows, off.cols, CHIP)
    beyond = (true_dy > 5.0) & ~np.isnan(off.peak_corr)  # searched nodes, shift > 4 px + 1
    assert beyond.sum() >= 20
    # Without re-search nearly all are EDGE (a few lock onto a false interior peak).
    edge = beyond & (off.status == Status.EDGE)
    assert edge.sum() >= 0.9 * beyond.sum()
    # Every one whose ±8 px window (+2 px slack for its centring) fits in the image is
    # recovered.
    shape = on.shape
    top = np.floor(on.rows - (CHIP - 1) / 2 + 0.5)[:, None] + np.rint(true_dy) - 10
    left = np.floor(on.cols - (CHIP - 1) / 2 + 0.5)[None, :] + np.rint(true_dx) - 10
    fits = (top >= 0) & (left >= 0) & (top + CHIP + 20 <= 224) & (left + CHIP + 20 <= 320)
    assert fits.shape == shape and (edge & fits).sum() >= 0.8 * edge.sum()
    edge &= fits
    assert (on.status[edge] == Status.OK).all()
    err = np.hypot(on.dy_px - true_dy, on.dx_px - true_dx)
    assert np.median(err[edge]) < 0.03, f"error median {np.median(err[edge]):.3f} px"
    # Where the flow is uniform over the chip (the 6.4 px plateau) they are accurate.
    plateau = edge & (true_dy > 6.2)
    assert plateau.sum() >= 10
    assert np.median(err[plateau]) < 0.02 and err[plateau].max() < 0.1, err[plateau].max()
    info = on.settings["edge_research"]
    assert info["enabled"] and info["radius_px"] == 8
    assert info["recovered"] >= edge.sum()
    assert info["centred_on_neighbours"] > 0  # both centring rules are exercised
    assert info["recovered"] <= info["candidates"] == int(((off.status == Status.EDGE)
                                                            & np.isfinite(off.peak_corr)).sum())
    assert off.settings["edge_research"] == {"enabled": False}


def test_edge_research__leaves_other_nodes_alone(runs):
    off, on = runs
    was_ok = off.status == Status.OK
    assert was_ok.sum() >= 20
    np.testing.assert_array_equal(on.dy_px[was_ok], off.dy_px[was_ok])
    np.testing.assert_array_equal(on.status[was_ok], off.status[was_ok])
    # Nodes whose chip or larger window leaves the image stay EDGE.
    unsearched = np.isnan(off.peak_corr)
    assert (on.status[unsearched] == Status.EDGE).all()
