"""Offset tracking kernel: known shifts and flows on real Landsat-8 texture, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from velocity_synth import chip_mean_flow, fourier_shift, nmad, warp

from glacierkit.errors import InputError
from glacierkit.velocity import MatchResult, Status, match, node_grid

CHIP = 32


def _errors(res: MatchResult, dy, dx) -> tuple[np.ndarray, np.ndarray]:
    ok = res.status == Status.OK
    assert ok.mean() > 0.5, np.bincount(res.status.ravel(), minlength=7)
    dy = np.broadcast_to(dy, res.shape)
    dx = np.broadcast_to(dx, res.shape)
    return res.dy_px[ok] - dy[ok], res.dx_px[ok] - dx[ok]


def _assert_recovered(ey, ex, *, bias=0.02, spread=0.05):
    for name, e in (("dy", ey), ("dx", ex)):
        assert abs(e.mean()) < bias, f"{name} bias {e.mean():.4f} px"
        assert nmad(e) < spread, f"{name} NMAD {nmad(e):.4f} px"


def test_node_grid__centres_blocks():
    rows, cols = node_grid((20, 33), step_px=8, chip_size_px=32)
    np.testing.assert_allclose(rows, [3.5, 11.5, 19.5])
    assert cols.size == 5 and cols[0] == 3.5
    rows, _ = node_grid((9, 9), step_px=4, chip_size_px=7)
    np.testing.assert_allclose(rows, [1.0, 5.0, 9.0])  # chips centred to the nearest pixel


@pytest.mark.parametrize("shift", [(3.0, -2.0), (0.0, 5.0)])
def test_match__integer_shift_exact(textured, shift):
    big = textured()
    res = match(big[64:-64, 64:-64], fourier_shift(big, *shift), chip_size_px=CHIP,
                search_px=8, step_px=8)
    ey, ex = _errors(res, *shift)
    _assert_recovered(ey, ex, bias=1e-3, spread=1e-3)


@pytest.mark.parametrize("shift", [(0.25, -0.4), (0.5, 0.5), (-0.1, 0.05), (1.3, -2.7),
                                   (-0.77, 0.61)])
def test_match__subpixel_shift(textured, shift):
    big = textured()
    res = match(big[64:-64, 64:-64], fourier_shift(big, *shift), chip_size_px=CHIP,
                search_px=8, step_px=8)
    _assert_recovered(*_errors(res, *shift), bias=0.02, spread=0.05)


def _periodic_amplitude(phase: np.ndarray, err: np.ndarray) -> float:
    """Largest value of the 1-px-periodic part (3 harmonics) of ``err`` vs ``phase``."""

    def design(p):
        cols = [np.ones_like(p)]
        for k in (1, 2, 3):
            cols += [np.cos(2 * np.pi * k * p), np.sin(2 * np.pi * k * p)]
        return np.column_stack(cols)

    coef, *_ = np.linalg.lstsq(design(phase), err, rcond=None)
    grid = np.linspace(0.0, 1.0, 201)
    return float(np.max(np.abs(design(grid)[:, 1:] @ coef[1:])))


@pytest.fixture(scope="module")
def ramp_pair(textured):
    """Displacement ramp dx = 0.1 + 2 c / 512 px (two full periods of the fractional part)."""
    big = textured(256, 512, 32, origin=(300, 200))

    def flow(rr, cc):
        return np.full_like(rr, 0.3), 0.1 + 2.0 * cc / 512.0

    return big[32:-32, 32:-32], warp(big, flow, margin=32, a=16), flow


def test_match__linear_ramp_has_no_pixel_locking(ramp_pair):
    ref, sec, flow = ramp_pair
    res = match(ref, sec, chip_size_px=CHIP, search_px=8, step_px=4)
    ok = res.status == Status.OK
    true_dy, true_dx = chip_mean_flow(flow, res.rows, res.cols, CHIP)
    err = res.dx_px[ok] - true_dx[ok]
    amplitude = _periodic_amplitude(true_dx[ok] % 1.0, err)
    assert amplitude < 0.02, f"periodic (pixel-locking) error {amplitude:.4f} px"
    assert abs(err.mean()) < 0.02
    assert abs(np.mean(res.dy_px[ok] - true_dy[ok])) < 0.02


def test_match__integer_quadratic_fit_pixel_locks(ramp_pair):
    """Control: the 3 × 3 paraboloid fit alone does pixel-lock, so the test above can see it."""
    ref, sec, flow = ramp_pair
    res = match(ref, sec, chip_size_px=CHIP, search_px=8, step_px=4, subpixel=False)
    ok = res.status == Status.OK
    _, true_dx = chip_mean_flow(flow, res.rows, res.cols, CHIP)
    assert _periodic_amplitude(true_dx[ok] % 1.0, res.dx_px[ok] - true_dx[ok]) > 0.02


def test_match__swap_negates_field(textured):
    big = textured()
    ref, sec = big[64:-64, 64:-64], fourier_shift(big, 0.4, -1.35)
    fwd = match(ref, sec, chip_size_px=CHIP, search_px=8, step_px=8)
    bwd = match(sec, ref, chip_size_px=CHIP, search_px=8, step_px=8)
    ok = (fwd.status == Status.OK) & (bwd.status == Status.OK)
    assert ok.mean() > 0.5
    for f, b in ((fwd.dy_px[ok], bwd.dy_px[ok]), (fwd.dx_px[ok], bwd.dx_px[ok])):
        gap = np.abs(f + b)  # node by node: same place, other chip texture, so small noise
        assert abs(np.mean(f + b)) < 0.005
        assert np.median(gap) < 0.01 and np.percentile(gap, 95) < 0.1


def _smooth_flow(rr, cc):
    dy = 1.2 * np.sin(2 * np.pi * (rr / 700.0 + 0.1)) + 0.3 * cc / 384.0
    dx = -2.1 + 1.5 * np.cos(2 * np.pi * (cc / 900.0 - rr / 1500.0))
    return dy, dx


@pytest.fixture(scope="module")
def smooth_pair(textured):
    big = textured(256, 384, 32)
    return big[32:-32, 32:-32], warp(big, _smooth_flow, margin=32, a=16)


def test_match__smooth_flow_recovered(smooth_pair):
    ref, sec = smooth_pair
    res = match(ref, sec, chip_size_px=CHIP, search_px=8, step_px=8)
    true_dy, true_dx = chip_mean_flow(_smooth_flow, res.rows, res.cols, CHIP)
    _assert_recovered(*_errors(res, true_dy, true_dx), bias=0.02, spread=0.05)


def test_match__large_shift_found_coarse_to_fine(textured):
    big = textured(384, 384, 64)
    shift = (31.3, -33.6)
    res = match(big[64:-64, 64:-64], fourier_shift(big, *shift), chip_size_px=CHIP,
                search_px=40, step_px=8)
    assert res.settings["levels"] >= 2
    ok = res.status == Status.OK
    inside = ((res.rows[:, None] > 16 + 36) & (res.rows[:, None] < 384 - 16 - 36)
              & (res.cols[None, :] > 16 + 38) & (res.cols[None, :] < 384 - 16 - 38))
    assert ok[inside].mean() > 0.95
    _assert_recovered(*_errors(res, *shift), bias=0.02, spread=0.05)


def test_match__identical_images_give_zero_field(textured):
    img = textured(128, 128, 0)
    res = match(img, img.copy(), chip_size_px=CHIP, search_px=4, step_px=8)
    ok = res.status == Status.OK
    assert ok.sum() > 0
    assert np.all(res.dy_px[ok] == 0.0) and np.all(res.dx_px[ok] == 0.0)
    np.testing.assert_allclose(res.peak_corr[ok], 1.0)


def test_match__textureless_and_nodata_chips_get_status(textured):
    ref = textured(192, 192, 0).copy()
    ref[:64, :64] = 1000.0  # no texture
    ref[128:, 128:] = np.nan  # nodata
    res = match(ref, ref.copy(), chip_size_px=CHIP, search_px=4, step_px=8)
    rows, cols = res.rows[:, None], res.cols[None, :]
    flat = (rows + 16 < 64) & (cols + 16 < 64) & (rows > 16) & (cols > 16)
    empty = (rows - 16 > 128) & (cols - 16 > 128) & (rows < 192 - 16) & (cols < 192 - 16)
    assert np.all(res.status[flat] == Status.LOW_TEXTURE)
    assert np.all(res.status[empty] == Status.NODATA)
    assert np.all(np.isnan(res.dy_px[flat | empty]))
    assert np.any(res.status == Status.OK)


@pytest.mark.parametrize("method", ["ncc", "oc"])
def test_match__all_nan_or_constant_image_gives_status_not_exception(method):
    nan = np.full((96, 96), np.nan)
    res = match(nan, nan, chip_size_px=CHIP, search_px=4, step_px=16, method=method)
    assert set(np.unique(res.status)) <= {Status.NODATA, Status.EDGE}
    assert np.all(np.isnan(res.dx_px))
    flat = np.full((96, 96), 7.0)
    res = match(flat, flat, chip_size_px=CHIP, search_px=4, step_px=16, method=method)
    assert set(np.unique(res.status)) <= {Status.LOW_TEXTURE, Status.EDGE}
    assert np.any(res.status == Status.LOW_TEXTURE)


def test_match__edge_status_near_border(textured):
    img = textured(128, 128, 0)
    res = match(img, img, chip_size_px=CHIP, search_px=4, step_px=8)
    assert np.all(res.status[0, :] == Status.EDGE)  # chip of the first row leaves the image
    assert np.all(np.isnan(res.dx_px[0, :]))


def test_match__orientation_correlation(textured):
    big = textured()
    ref = big[64:-64, 64:-64]
    res = match(ref, fourier_shift(big, 2.0, -3.0), chip_size_px=CHIP, search_px=8,
                step_px=8, method="oc")
    _assert_recovered(*_errors(res, 2.0, -3.0), bias=1e-3, spread=1e-3)
    res = match(ref, fourier_shift(big, 0.35, -0.6), chip_size_px=CHIP, search_px=8,
                step_px=8, method="oc")
    _assert_recovered(*_errors(res, 0.35, -0.6), bias=0.02, spread=0.05)


def test_match__initial_offsets_centre_the_search(textured):
    big = textured(256, 256, 64)
    ref, sec = big[64:-64, 64:-64], fourier_shift(big, 12.2, 9.7)
    rows, cols = node_grid(ref.shape, step_px=8, chip_size_px=CHIP)
    init = (np.full((rows.size, cols.size), 12.0), np.full((rows.size, cols.size), 10.0))
    res = match(ref, sec, chip_size_px=CHIP, search_px=3, step_px=8, initial_offsets=init)
    _assert_recovered(*_errors(res, 12.2, 9.7))


def test_match__node_mask_matches_only_chosen_nodes(textured):
    big = textured(256, 256, 64)
    ref, sec = big[64:-64, 64:-64], fourier_shift(big, 1.3, -2.6)
    full = match(ref, sec, chip_size_px=CHIP, search_px=8, step_px=8)
    nodes = np.zeros(full.shape, dtype=bool)
    nodes[::2, 1::3] = True
    part = match(ref, sec, chip_size_px=CHIP, search_px=8, step_px=8, nodes=nodes)
    # Chosen nodes get the full run's result; the others are NODATA, NaN. The offsets are not
    # bit-identical: the batches hold other nodes, and batched complex64 matmuls (BLAS) sum in
    # a batch- and thread-dependent order. Scores are sums over M² = 48² terms in float32
    # (u = 6e-8): error ≲ 3e-6; the sub-pixel vertex (stencil h = 0.3 px) divides it by the
    # stencil curvature (≥ ~0.01 on accepted peaks): ≲ 0.3 · 3e-6 / 0.01 ≈ 1e-4 px. Node-to-node
    # offset scatter is ~1e-2 px, so a mismatched node would still fail.
    np.testing.assert_array_equal(part.status[nodes], full.status[nodes])
    np.testing.assert_allclose(part.dx_px[nodes], full.dx_px[nodes], rtol=0, atol=1e-4)
    np.testing.assert_allclose(part.dy_px[nodes], full.dy_px[nodes], rtol=0, atol=1e-4)
    assert np.all(part.status[~nodes] == Status.NODATA)
    assert np.all(np.isnan(part.dx_px[~nodes]))
    assert part.settings["nodes_masked"] == int((~nodes).sum())
    assert (part.status[nodes] == Status.OK).sum() > 10
    with pytest.raises(InputError, match="boolean mask"):
        match(ref, sec, chip_size_px=CHIP, search_px=8, step_px=8, nodes=nodes.astype(int))
    with pytest.raises(InputError, match="node grid shape"):
        match(ref, sec, chip_size_px=CHIP, search_px=8, step_px=8, nodes=nodes[1:])


@pytest.mark.parametrize(("kwargs", "match_text"), [
    ({"chip_size_px": 200}, "larger than the image"),
    ({"search_px": 60}, "does not fit"),
    ({"method": "pc"}, "method"),
    ({"step_px": 0}, "step_px"),
    ({"levels": -1}, "levels"),
    ({"taper": 1.5}, "taper"),
    ({"workers": 0}, "workers"),
    ({"initial_offsets": (np.zeros((2, 2)), np.zeros((2, 2)))}, "node grid"),
])
def test_match__bad_arguments_raise_input_error(kwargs, match_text):
    img = np.random.default_rng(0).standard_normal((128, 128))
    with pytest.raises(InputError, match=match_text):
        match(img, img, **{"chip_size_px": 32, "search_px": 8, **kwargs})


def test_match__shape_mismatch_and_dimensions_raise():
    a = np.zeros((64, 64))
    with pytest.raises(InputError, match="same shape"):
        match(a, np.zeros((64, 65)), chip_size_px=16, search_px=2)
    with pytest.raises(InputError, match="2-D"):
        match(np.zeros((2, 64, 64)), np.zeros((2, 64, 64)), chip_size_px=16, search_px=2)
