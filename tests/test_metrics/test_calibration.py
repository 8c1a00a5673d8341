"""ECE, reliability bins and calibration maps against known answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import special

from glacierkit.errors import InputError
from glacierkit.metrics import (
    IdentityCalibration,
    IsotonicCalibration,
    TemperatureScaling,
    calibration_from_dict,
    compare_calibrations,
    confidence_from_probabilities,
    expected_calibration_error,
    logits_from_probabilities,
    reliability_bins,
)


def test_reliability_bins_hand_computed():
    conf = np.array([0.05, 0.15, 0.95, 1.0])
    correct = np.array([True, False, True, True])
    b = reliability_bins(conf, correct, n_bins=10)
    assert b.counts.tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0, 2]  # 1.0 lands in the last bin
    assert b.confidence[9] == pytest.approx(0.975) and b.accuracy[1] == 0.0
    assert np.isnan(b.accuracy[5]) and np.isnan(b.confidence[5])
    # ECE = ¼·|1 − .05| + ¼·|0 − .15| + ½·|1 − .975|
    assert b.ece == pytest.approx(0.25 * 0.95 + 0.25 * 0.15 + 0.5 * 0.025)
    assert expected_calibration_error(conf, correct, n_bins=10) == b.ece
    d = json.loads(json.dumps(b.to_dict()).replace("NaN", "null").replace("null", "NaN"))
    assert type(b).from_dict(d).counts.tolist() == b.counts.tolist()
    with pytest.raises(InputError):
        reliability_bins(np.array([1.2]), np.array([1]))
    with pytest.raises(InputError):
        reliability_bins(np.array([]), np.array([]))


def test_ece_of_calibrated_and_overconfident_samples():
    rng = np.random.default_rng(42)
    n = 200_000
    conf = rng.random(n)
    correct = rng.random(n) < conf  # P(correct | c) = c: perfectly calibrated
    ece = expected_calibration_error(conf, correct)
    # Sampling noise: per bin |acc − conf| ≈ |N(0, σ²)|, σ² = mean c(1−c) / n_b, whose mean is
    # σ·sqrt(2/π); the ECE expectation is the count-weighted sum of these.
    b = reliability_bins(conf, correct)
    idx = np.clip((conf * 15).astype(int), 0, 14)
    var = np.bincount(idx, weights=conf * (1 - conf)) / b.counts
    noise = float(np.sum(b.counts / n * np.sqrt(var / b.counts) * math.sqrt(2 / math.pi)))
    assert noise < 0.004
    assert ece < 3 * noise
    # Over-confident: P(correct | c) = c². c − c² ≥ 0 everywhere, so no cancellation inside
    # bins: ECE = E[c − c²] = 1/2 − 1/3 = 1/6.
    over = rng.random(n) < conf**2
    assert expected_calibration_error(conf, over) == pytest.approx(1 / 6, abs=5 * noise)


def test_confidence_from_probabilities_and_axes():
    p = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    np.testing.assert_allclose(confidence_from_probabilities(p, "max"), [0.5, 1.0, 1 / 3])
    np.testing.assert_allclose(confidence_from_probabilities(p, "entropy"),
                               [1 - math.log(2) / math.log(3), 1.0, 0.0], atol=1e-12)
    maps = np.moveaxis(p.reshape(1, 3, 3), 2, 0)  # (K=3, H=1, W=3): class axis 0
    np.testing.assert_allclose(confidence_from_probabilities(maps, "entropy")[0],
                               confidence_from_probabilities(p, "entropy"), atol=1e-12)
    with pytest.raises(InputError, match="'max' or 'entropy'"):
        confidence_from_probabilities(p, "margin")
    with pytest.raises(InputError, match="dimension"):
        confidence_from_probabilities(np.ones(3))


def _overconfident(n: int, t_true: float, seed: int, k: int = 3):
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, (n, k))  # calibrated logits
    u = rng.random(n)[:, None]
    y = (u > np.cumsum(special.softmax(z, axis=1), axis=1)).sum(axis=1)  # y ~ softmax(z)
    return z * t_true, y  # logits t_true times too sharp


def test_temperature_scaling_recovers_true_temperature():
    logits, y = _overconfident(40_000, 2.5, seed=1)
    ts = TemperatureScaling().fit(logits, y)
    assert ts.temperature == pytest.approx(2.5, rel=0.05)
    lt, yt = _overconfident(40_000, 2.5, seed=2)
    correct = lt.argmax(1) == yt
    before = expected_calibration_error(special.softmax(lt, axis=1).max(1), correct)
    after = expected_calibration_error(ts.confidence(lt), correct)
    assert before > 0.1 and after < 0.02
    # Maps (K, H, W): class axis 0; same values as the (N, K) form.
    maps = lt[:12].T.reshape(3, 3, 4)
    np.testing.assert_allclose(ts.apply(maps).reshape(3, 12).T, ts.apply(lt[:12]))
    np.testing.assert_allclose(ts.apply(maps).sum(axis=0), 1.0)
    d = json.loads(json.dumps(ts.to_dict()))
    assert calibration_from_dict(d).temperature == ts.temperature
    # Ignore labels (255) are skipped when fitting.
    y_ign = y.copy()
    y_ign[:100] = 255
    assert TemperatureScaling().fit(logits, y_ign).temperature == pytest.approx(
        ts.temperature, rel=0.02)


def test_isotonic_round_trip_and_effect():
    logits, y = _overconfident(20_000, 3.0, seed=3, k=2)
    iso = IsotonicCalibration().fit(logits, y)
    again = calibration_from_dict(json.loads(json.dumps(iso.to_dict())))
    assert isinstance(again, IsotonicCalibration)
    lt, yt = _overconfident(20_000, 3.0, seed=4, k=2)
    np.testing.assert_array_equal(again.apply(lt), iso.apply(lt))
    np.testing.assert_array_equal(again.confidence(lt), iso.confidence(lt))
    p = iso.apply(lt)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    # Two classes: the predicted class keeps the largest probability (ties at 0.5 allowed).
    top = np.take_along_axis(p, lt.argmax(1)[:, None], axis=1)[:, 0]
    assert np.all(top >= p.max(axis=1) - 1e-12) and top.min() >= 0.5
    correct = lt.argmax(1) == yt
    before = expected_calibration_error(special.softmax(lt, axis=1).max(1), correct)
    assert expected_calibration_error(iso.confidence(lt), correct) < before / 3
    # Monotone in the raw confidence.
    c = special.softmax(lt, axis=1).max(1)
    order = np.argsort(c)
    assert np.all(np.diff(iso.confidence(lt)[order]) >= 0)
    with pytest.raises(InputError, match="not fitted"):
        IsotonicCalibration().apply(lt)


def test_identity_and_factory_errors():
    z = np.array([[2.0, 0.0], [0.0, 1.0]])
    ident = calibration_from_dict({"kind": "none"})
    assert isinstance(ident, IdentityCalibration)
    np.testing.assert_allclose(ident.apply(z), special.softmax(z, axis=1))
    assert isinstance(calibration_from_dict({"kind": "identity"}), IdentityCalibration)
    p = np.array([[0.7, 0.3]])
    np.testing.assert_allclose(ident.apply(logits_from_probabilities(p)), p)
    with pytest.raises(InputError, match="unknown calibration kind"):
        calibration_from_dict({"kind": "platt"})
    with pytest.raises(InputError, match="'kind'"):
        calibration_from_dict({"temperature": 2})
    with pytest.raises(InputError, match="labels shape"):
        TemperatureScaling().fit(z, np.array([0, 1, 1]))
    with pytest.raises(InputError, match=r"classes 0\.\.1"):
        TemperatureScaling().fit(z, np.array([0, 2]))


def test_compare_calibrations_picks_a_real_improvement():
    lv, yv = _overconfident(20_000, 2.0, seed=5)
    lt, yt = _overconfident(20_000, 2.0, seed=6)
    out = compare_calibrations(lv, yv, lt, yt)
    assert set(out["methods"]) == {"none", "temperature", "isotonic"}
    assert out["methods"]["none"]["ece_after"] == pytest.approx(out["ece_before"])
    assert out["best"] in ("temperature", "isotonic")
    best = out["methods"][out["best"]]
    assert best["ece_after"] < out["ece_before"] / 3
    assert out["methods"]["temperature"]["nll_after"] < out["methods"]["none"]["nll_after"]
    assert calibration_from_dict(best["params"]).to_dict() == best["params"]
