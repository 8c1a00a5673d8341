"""Class × scene sample weights, the spectral baseline, and cross-validation grouped by glacier.

Known answers: hand-computed weights; folds that never share a glacier between training and
testing (recorded by a classifier that notes what it is fitted on and asked about); one
out-of-fold prediction per point; notes and errors for one-class glaciers and tiny folds.
"""

from __future__ import annotations

import numpy as np
import pytest
import sklearn.ensemble  # noqa: F401  (loads OpenMP now: threadpool_limits only limits
from threadpoolctl import threadpool_limits  # the thread pools already loaded)

from glacierkit.errors import InputError
from glacierkit.facies.cv import MIN_TRAIN, grouped_cv, scores
from glacierkit.facies.models import PatchNet, SpectralBaseline, make_classifier, sample_weights

NAMES = ["ice", "snow", "debris"]


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """One OpenMP/BLAS thread: gradient boosting on the shared 2-core machines stalls
    otherwise."""
    with threadpool_limits(1):
        yield


def _separable(seed=0, n_glaciers=5, per=30, k=3, dim=3):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n_glaciers * per)
    X = (np.eye(k, dim) * 6.0)[y] + rng.normal(0, 1, (y.size, dim))
    g = np.repeat([f"glacier{i}" for i in range(n_glaciers)], per)
    return X.astype(np.float32), y, g


# ------------------------------------------------------------------------------ weights
def test_sample_weights_known_answer():
    t = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    s = np.array(["A", "A", "A", "A", "B", "B", "A", "A"])
    # class_scene: w ∝ 1 / (m_c n_sc): A/0 1/8, B/0 1/4, A/1 1/2; mean 1/4
    w = sample_weights(t, s)
    np.testing.assert_allclose(w, [0.5] * 4 + [1.0] * 2 + [2.0] * 2)
    assert w.mean() == pytest.approx(1.0)
    assert w[t == 0].sum() == pytest.approx(w[t == 1].sum())            # classes equal
    assert w[(t == 0) & (s == "A")].sum() == pytest.approx(w[(t == 0) & (s == "B")].sum())
    # class only: 1/6 and 1/2, mean 1/4
    np.testing.assert_allclose(sample_weights(t, mode="class"), [2 / 3] * 6 + [2.0] * 2)
    np.testing.assert_array_equal(sample_weights(t, s, mode="none"), np.ones(8))


def test_sample_weights_balance_random_sets():
    rng = np.random.default_rng(1)
    t = rng.integers(0, 4, 400)
    s = rng.choice(["s1", "s2", "s3"], 400, p=[0.7, 0.2, 0.1])
    w = sample_weights(t, s, clip=1e9)
    totals = [w[t == c].sum() for c in range(4)]
    np.testing.assert_allclose(totals, totals[0])
    for c in range(4):
        per_scene = [w[(t == c) & (s == sc)].sum() for sc in np.unique(s[t == c])]
        np.testing.assert_allclose(per_scene, per_scene[0])
    # clipping bounds the extremes (before renormalising) and keeps mean 1
    rare = np.array([0] * 99 + [1])
    wc = sample_weights(rare, mode="class", clip=20.0)
    assert wc.mean() == pytest.approx(1.0)
    assert wc[-1] / wc[0] == pytest.approx(20.0 / (100 / 198))


def test_sample_weights_bad_input():
    t = np.array([0, 1, 1])
    with pytest.raises(InputError, match="'class_scene'"):
        sample_weights(t, mode="inverse")
    with pytest.raises(InputError, match="needs the scene"):
        sample_weights(t)
    with pytest.raises(InputError, match="one scene per point"):
        sample_weights(t, np.array(["a", "b"]))


# ------------------------------------------------------------------------------ baseline
def test_spectral_baseline_unseen_classes_and_patches():
    X, y, _ = _separable(per=20)
    keep = y != 1
    clf = SpectralBaseline(3, params={"max_iter": 10}).fit(X[keep], y[keep])
    logits = clf.predict_logits(X)
    assert logits.shape == (y.size, 3) and logits.dtype == np.float32
    np.testing.assert_allclose(logits[:, 1], np.log(1e-13), rtol=1e-5)   # never seen
    assert (logits[keep].argmax(1) == y[keep]).mean() > 0.95
    # patches: only the centre pixel counts
    rng = np.random.default_rng(0)
    P = rng.normal(0, 50, (y.size, 3, 3, 3)).astype(np.float32)
    P[:, :, 1, 1] = X
    on_p = SpectralBaseline(3, params={"max_iter": 10}).fit(P, y).predict_logits(P)
    on_x = SpectralBaseline(3, params={"max_iter": 10}).fit(X, y).predict_logits(X)
    np.testing.assert_array_equal(on_p, on_x)


def test_spectral_baseline_mlp_with_weights():
    X, y, _ = _separable(per=20)
    w = sample_weights(y, mode="class")
    clf = SpectralBaseline(3, kind="mlp", params={"hidden_layer_sizes": (8,), "max_iter": 2000})
    clf.fit(X, y, w)
    assert (clf.predict_logits(X).argmax(1) == y).mean() > 0.95


def test_baseline_and_factory_bad_input():
    with pytest.raises(InputError, match="fit the baseline"):
        SpectralBaseline(3).predict_logits(np.zeros((2, 3)))
    with pytest.raises(InputError, match="'hgb' or 'mlp'"):
        SpectralBaseline(3, kind="svm").fit(np.zeros((4, 2)), np.array([0, 1, 0, 1]))
    with pytest.raises(InputError, match="spectra or"):
        SpectralBaseline(3).fit(np.zeros((4, 2, 3)), np.array([0, 1, 0, 1]))
    clf = make_classifier({"model": "hgb", "max_iter": 5}, n_classes=3, group_channels=(4,))
    assert isinstance(clf, SpectralBaseline) and clf.params == {"max_iter": 5}
    net = make_classifier({"model": "cnn", "size": "pixel", "epochs": 1}, n_classes=3,
                          group_channels=(4,), seed=7)
    assert isinstance(net, PatchNet) and net.seed == 7 and net.epochs == 1
    with pytest.raises(InputError, match="unknown cnn setting"):
        make_classifier({"model": "cnn", "epoch": 1}, n_classes=3, group_channels=(4,))
    with pytest.raises(InputError, match="unknown facies model"):
        make_classifier({"model": "rf"}, n_classes=3, group_channels=(4,))


# ------------------------------------------------------------------------------ grouped CV
class _Recorder:
    """Classifier whose feature 0 is the glacier number; records the glaciers it sees."""

    def __init__(self, log, fold):
        self.log, self.fold = log, fold

    def fit(self, X, y, sample_weight=None):
        self.log.append(("fit", self.fold, set(X[:, 0].astype(int).tolist()),
                         None if sample_weight is None else np.asarray(sample_weight).copy()))
        self.means = {c: X[y == c, 1:].mean(axis=0) for c in np.unique(y)}
        return self

    def predict_logits(self, X):
        self.log.append(("predict", self.fold, set(X[:, 0].astype(int).tolist()), None))
        out = np.full((len(X), 3), -5.0, dtype=np.float32)
        for c, m in self.means.items():
            out[:, c] = -((X[:, 1:] - m) ** 2).sum(axis=1)
        return out


def test_grouped_cv_never_shares_a_glacier():
    X, y, g = _separable(n_glaciers=7, per=15)
    gid = np.array([int(s[-1]) for s in g])
    Xr = np.column_stack([gid, X]).astype(np.float32)
    log: list = []
    res = grouped_cv(Xr, y, g, lambda i: _Recorder(log, i), n_classes=3, n_splits=3,
                     names=NAMES)
    fits = {f: s for kind, f, s, _ in log if kind == "fit"}
    tests = {f: s for kind, f, s, _ in log if kind == "predict"}
    assert sorted(fits) == sorted(tests) == [0, 1, 2]
    for f in fits:
        assert not fits[f] & tests[f]                       # no glacier in train and test
        assert fits[f] | tests[f] == set(range(7))
    tested = [gl for f in tests for gl in tests[f]]
    assert sorted(tested) == list(range(7))                 # every glacier tested once
    for f, s in tests.items():
        assert set(np.unique(res.fold[np.isin(gid, list(s))])) == {f}
    assert res.logits.shape == (y.size, 3) and np.isfinite(res.logits).all()
    assert res.scores["n"] == y.size and res.scores["accuracy"] > 0.95
    assert sorted(res.per_glacier) == sorted(set(g))
    assert [sorted(f["test_glaciers"]) for f in res.folds] == [
        sorted(f"glacier{i}" for i in tests[k]) for k in range(3)]
    p = res.probabilities
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert set(res.summary()) == {"scores", "folds", "per_glacier", "notes"}


def test_grouped_cv_weights_per_fold():
    X, y, g = _separable(n_glaciers=4, per=15)
    gid = np.array([int(s[-1]) for s in g])
    Xr = np.column_stack([gid, X]).astype(np.float32)
    log: list = []
    w = np.arange(y.size, dtype=float)
    grouped_cv(Xr, y, g, lambda i: _Recorder(log, i), n_classes=3, n_splits=2, weights=w)
    fitted = [(s, wt) for kind, _, s, wt in log if kind == "fit"]
    for glaciers, wt in fitted:
        np.testing.assert_array_equal(wt, w[np.isin(gid, list(glaciers))])
    log.clear()
    seen = []
    grouped_cv(Xr, y, g, lambda i: _Recorder(log, i), n_classes=3, n_splits=2,
               weight_fn=lambda idx: (seen.append(idx.copy()), np.ones(idx.size))[1])
    fits = [s for kind, _, s, _ in log if kind == "fit"]
    assert len(seen) == len(fits) == 2
    for idx, glaciers in zip(seen, fits, strict=True):   # weight_fn gets the training indices
        np.testing.assert_array_equal(idx, np.flatnonzero(np.isin(gid, list(glaciers))))


def test_grouped_cv_with_the_baseline_and_evaluate_mask():
    X, y, g = _separable(n_glaciers=5, per=24)
    fac = lambda i: SpectralBaseline(3, seed=i, params={"max_iter": 10})  # noqa: E731
    res = grouped_cv(X, y, g, fac, n_classes=3, n_splits=5, names=NAMES)
    assert np.isfinite(res.logits).all() and (res.fold >= 0).all()
    assert res.scores["macro_f1"] > 0.95
    assert set(res.scores["per_class"]) == set(NAMES)
    mask = (np.arange(y.size) % 2).astype(int)              # a 0/1 mask works as a bool mask
    masked = grouped_cv(X, y, g, fac, n_classes=3, n_splits=5, evaluate_mask=mask)
    assert masked.scores["n"] == int(mask.sum())
    assert sum(f["n_scored"] for f in masked.folds) == int(mask.sum())
    np.testing.assert_array_equal(masked.logits, res.logits)  # all points still predicted
    with pytest.raises(InputError, match="evaluate_mask"):
        grouped_cv(X, y, g, fac, n_classes=3, evaluate_mask=np.ones(3, bool))


def test_one_class_glacier_is_handled_and_stated():
    X, y, g = _separable(n_glaciers=4, per=20)
    lone = g == "glacier2"
    y = y.copy()
    y[lone] = 1
    X[lone] = np.eye(3, 3)[1] * 6.0 + np.random.default_rng(5).normal(0, 1, (lone.sum(), 3))
    fac = lambda i: SpectralBaseline(3, seed=i, params={"max_iter": 10})  # noqa: E731
    res = grouped_cv(X, y, g, fac, n_classes=3, n_splits=4, names=NAMES)
    notes = [n for n in res.notes if "glacier2" in n]
    assert len(notes) == 1 and "one class only" in notes[0] and "snow" in notes[0]
    assert np.isfinite(res.logits).all()
    assert "glacier2" in res.per_glacier and res.per_glacier["glacier2"] > 0.9


def test_class_missing_from_a_training_fold_is_noted():
    X, y, g = _separable(n_glaciers=3, per=20)
    y = y.copy()
    y[(g == "glacier0") & (y == 2)] = 2
    y[(g != "glacier0") & (y == 2)] = 0                     # debris only on glacier0
    fac = lambda i: SpectralBaseline(3, seed=i, params={"max_iter": 5})  # noqa: E731
    res = grouped_cv(X, y, g, fac, n_classes=3, n_splits=3, names=NAMES)
    fold0 = res.fold[g == "glacier0"][0]
    assert res.folds[fold0]["missing_train_classes"] == [2]
    assert any("['debris'] absent" in n and "glacier0" in n for n in res.notes)
    assert np.isfinite(res.logits).all()


def test_grouped_cv_bad_input():
    fac = lambda i: SpectralBaseline(3, params={"max_iter": 5})  # noqa: E731
    X, y, g = _separable(n_glaciers=2, per=4)
    assert 4 < MIN_TRAIN
    with pytest.raises(InputError, match="only 4 training samples"):
        grouped_cv(X, y, g, fac, n_classes=3)
    X, y, g = _separable(n_glaciers=3, per=20)
    with pytest.raises(InputError, match="at least 2 glaciers"):
        grouped_cv(X, y, np.full(y.size, "solo"), fac, n_classes=3)
    with pytest.raises(InputError, match="one entry per point"):
        grouped_cv(X, y[:-1], g, fac, n_classes=3)
    one = np.where(g == "glacier0", y, 0)
    one[g == "glacier0"] = 1
    with pytest.raises(InputError, match="only one class"):
        grouped_cv(X, one, g, fac, n_classes=3, n_splits=3)


def test_scores_known_answer():
    s = scores(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 2, ["a", "b"])
    assert s["accuracy"] == pytest.approx(0.75)
    assert s["per_class"]["a"] == {"f1": pytest.approx(2 / 3), "precision": 1.0,
                                   "recall": 0.5, "support": 2}
    assert s["per_class"]["b"]["f1"] == pytest.approx(0.8)
    assert s["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert s["confusion"] in ([[1, 1], [0, 2]], [[1, 0], [1, 2]])
