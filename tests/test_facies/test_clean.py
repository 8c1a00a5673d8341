"""Confident learning finds deliberately flipped labels in a synthetic separable set.

Four well-separated Gaussian classes in 4-D (centres 6 σ apart on the axes), six "glaciers",
8 % of the labels flipped to another class at random (seeded). Out-of-fold probabilities come
from a grouped cross-validation of the gradient-boosting baseline.

Measured (seeds 0–7 of this generator, ``max_iter=20, max_depth=2``): recall of the flipped
labels 0.89–0.98, precision 0.93–1.00; seed 0 (used here): 36 flipped, recall 0.917,
precision 1.00. The thresholds (0.8 / 0.85) leave a margin below the worst seed.
"""

from __future__ import annotations

import numpy as np
import pytest
import sklearn.ensemble  # noqa: F401  (loads OpenMP now: threadpool_limits only limits
from threadpoolctl import threadpool_limits  # the thread pools already loaded)

from glacierkit.errors import InputError
from glacierkit.facies.clean import evaluate_pruning, find_label_issues
from glacierkit.facies.cv import grouped_cv
from glacierkit.facies.models import SpectralBaseline

NAMES = ["ice", "snow", "debris", "water"]
HGB = {"max_iter": 20, "max_depth": 2, "min_samples_leaf": 20}


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(1):
        yield


def _flipped_set(seed=0, n_glaciers=6, per=80, flip=0.08):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n_glaciers * per)
    X = (np.eye(4) * 6.0)[y] + rng.normal(0, 1, (y.size, 4))
    g = np.repeat([f"g{i}" for i in range(n_glaciers)], per)
    flipped = rng.random(y.size) < flip
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + rng.integers(1, 4, flipped.sum())) % 4
    return X.astype(np.float32), y, noisy, g, flipped


@pytest.fixture(scope="module")
def oof():
    X, _, noisy, g, flipped = _flipped_set()
    with threadpool_limits(1):
        cv = grouped_cv(X, noisy, g, lambda i: SpectralBaseline(4, seed=i, params=HGB),
                        n_classes=4, n_splits=3, names=NAMES)
    return noisy, flipped, cv.probabilities


def test_flipped_labels_are_found(oof):
    noisy, flipped, prob = oof
    assert flipped.sum() == 36
    res = find_label_issues(noisy, prob, names=NAMES, keep_classes=())
    hit = res.pruned & flipped
    recall = hit.sum() / flipped.sum()
    precision = hit.sum() / res.pruned.sum()
    assert recall >= 0.8, recall
    assert precision >= 0.85, precision
    np.testing.assert_array_equal(res.pruned, res.flagged)   # nothing kept
    assert res.keep.sum() == noisy.size - res.pruned.sum()
    assert res.pruned_share == pytest.approx(res.pruned.mean())
    s = res.summary()
    assert s["n_pruned"] == int(res.pruned.sum()) and s["settings"]["kept"] == []
    assert sum(v["pruned"] for v in s["per_class"].values()) == s["n_pruned"]


def test_kept_classes_are_never_pruned(oof):
    noisy, flipped, prob = oof
    water = noisy == NAMES.index("water")
    res = find_label_issues(noisy, prob, names=NAMES)          # default keeps water
    assert res.flagged[water & flipped].sum() >= 5             # found, yet …
    assert not res.pruned[water].any()                         # … never pruned
    assert res.per_class["water"]["pruned"] == 0
    assert res.settings["kept"] == ["water"]
    assert (res.pruned == (res.flagged & ~water)).all()
    # only the listed classes may be pruned
    ice_only = find_label_issues(noisy, prob, names=NAMES, prune_classes=["ice"])
    assert ice_only.pruned.any() and not ice_only.pruned[noisy != 0].any()
    assert ice_only.settings["prunable"] == ["ice"]


def test_find_label_issues_bad_input(oof):
    noisy, _, prob = oof
    with pytest.raises(InputError, match="probabilities must be"):
        find_label_issues(noisy, prob[:, :3], names=NAMES)
    with pytest.raises(InputError, match="probabilities must be"):
        find_label_issues(noisy[:-1], prob, names=NAMES)
    bad = prob.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        find_label_issues(noisy, bad, names=NAMES)
    with pytest.raises(InputError, match="'rock'"):
        find_label_issues(noisy, prob, names=NAMES, keep_classes=["rock"])
    with pytest.raises(InputError, match="filter_by"):
        find_label_issues(noisy, prob, names=NAMES, filter_by="vote")


def test_evaluate_pruning_protocol_and_gain():
    """With an over-fitting model (small leaves), pruning 15 % flipped labels helps.

    Measured (seeds 0–5, 6 glaciers × 50 points): macro-F1 on all held-out labels
    0.699–0.811 before, 0.797–0.875 after (gain +0.055 … +0.121); seed 0 (used here):
    0.774 → 0.832. The regularised model of the other tests is already robust to this noise
    (no gain there), so this is a property of the setting, not a universal claim.
    """
    X, _, noisy, g, flipped = _flipped_set(seed=0, per=50, flip=0.15)
    params = {"max_iter": 25, "max_leaf_nodes": 31, "min_samples_leaf": 2}
    out = evaluate_pruning(X, noisy, g, lambda i: SpectralBaseline(4, seed=i, params=params),
                           n_classes=4, names=NAMES, n_splits=3, inner_splits=2,
                           clean_kwargs={"keep_classes": ()})
    assert {"before", "after", "folds", "global_pruned_share", "protocol"} <= set(out)
    assert "never pruned" in out["protocol"]
    for which in ("before", "after"):
        assert {"macro_f1_all_test_labels", "macro_f1_clean_test_labels",
                "per_class_all"} <= set(out[which])
    before = out["before"]["macro_f1_all_test_labels"]
    after = out["after"]["macro_f1_all_test_labels"]
    assert after > before + 0.02, (before, after)
    assert len(out["folds"]) == 3
    tested = sorted(gl for f in out["folds"] for gl in f["test_glaciers"])
    assert tested == sorted(set(g))
    for f in out["folds"]:                                    # about the flipped share pruned
        assert 0.5 * flipped.mean() < f["pruned_share_train"] < 2 * flipped.mean()


def test_evaluate_pruning_needs_three_glaciers():
    X, _, noisy, g, _ = _flipped_set(n_glaciers=2, per=30)
    with pytest.raises(InputError, match="at least 3 glaciers"):
        evaluate_pruning(X, noisy, g, lambda i: SpectralBaseline(4, params=HGB), n_classes=4,
                         names=NAMES)
