"""Cross-validation grouped by glacier, with out-of-fold logits for every label.

No glacier is ever in a training and a test fold at once (:class:`sklearn.model_selection.
GroupKFold`). Every point gets logits from the one model that did not see its glacier; those
out-of-fold logits feed confident learning (:mod:`glacierkit.facies.clean`) and the
calibration map of the final model.

Scores are computed on the pooled out-of-fold predictions (one confusion matrix over all
points, :class:`glacierkit.metrics.segmentation.ConfusionMatrix`) and per fold / per glacier.
Macro-F1 is the mean F1 over the classes whose F1 is defined (present in the reference or the
prediction).

No torch at module level (the patch network is built by the factory).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from glacierkit.errors import InputError
from glacierkit.metrics.segmentation import ConfusionMatrix

log = logging.getLogger(__name__)

__all__ = ["CVResult", "grouped_cv", "scores"]

#: Fewest training samples per fold before the fold is refused.
MIN_TRAIN = 10


def scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int,
           names: Sequence[str] | None = None) -> dict[str, Any]:
    """Macro-F1, overall accuracy, per-class F1/precision/recall/support and the matrix."""
    cm = ConfusionMatrix(max(2, int(n_classes)))
    cm.update(np.asarray(y_pred, dtype=np.int64), np.asarray(y_true, dtype=np.int64))
    pc = cm.per_class()
    names = list(names) if names is not None else [str(i) for i in range(cm.n_classes)]
    per = {names[i]: {"f1": float(pc["f1"][i]), "precision": float(pc["precision"][i]),
                      "recall": float(pc["recall"][i]), "support": int(pc["support"][i])}
           for i in range(min(len(names), cm.n_classes))}
    return {"macro_f1": cm.macro_f1(), "accuracy": cm.overall_accuracy(), "n": int(cm.total),
            "per_class": per, "confusion": cm.matrix.tolist()}


@dataclass
class CVResult:
    """Outcome of :func:`grouped_cv`.

    Attributes:
        logits: ``(N, K)`` float32 out-of-fold logits (softmax = probabilities).
        fold: ``(N,)`` fold index of every point (its glacier's test fold).
        scores: Pooled out-of-fold scores (:func:`scores`).
        folds: Per fold: test glaciers, sizes, macro-F1, classes missing from its training
            part.
        per_glacier: ``{glacier: macro-F1 of its points}`` (one-class glaciers: F1 of that
            class only, see ``notes``).
        notes: What was handled on the way (one-class glaciers, classes missing in a fold).
    """

    logits: np.ndarray
    fold: np.ndarray
    scores: dict[str, Any]
    folds: list[dict[str, Any]]
    per_glacier: dict[str, float]
    notes: list[str] = field(default_factory=list)

    @property
    def probabilities(self) -> np.ndarray:
        """``(N, K)`` float64 softmax of :attr:`logits`."""
        z = self.logits.astype(np.float64)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable summary (no per-point arrays)."""
        return {"scores": self.scores, "folds": self.folds, "per_glacier": self.per_glacier,
                "notes": list(self.notes)}


def grouped_cv(X: np.ndarray, y: np.ndarray, groups: np.ndarray,
               factory: Callable[[int], Any], *, n_classes: int, n_splits: int = 5,
               weights: np.ndarray | None = None,
               weight_fn: Callable[[np.ndarray], np.ndarray] | None = None,
               names: Sequence[str] | None = None,
               evaluate_mask: np.ndarray | None = None) -> CVResult:
    """Cross-validate a classifier with folds grouped by glacier.

    Args:
        X: ``(N, F)`` spectra or ``(N, C, P, P)`` patches.
        y: ``(N,)`` model-class labels ``0 … K − 1``.
        groups: ``(N,)`` glacier identifiers.
        factory: ``factory(fold) -> classifier`` with ``fit(X, y, sample_weight)`` and
            ``predict_logits(X) -> (n, K)`` (see :mod:`glacierkit.facies.models`).
        n_classes: ``K``.
        n_splits: Folds (capped at the number of glaciers; at least 2 glaciers needed).
        weights: ``(N,)`` training sample weights (subset per fold), or None.
        weight_fn: Alternatively ``weight_fn(train_indices) -> weights`` computed per fold
            (so the class × scene balance reflects the fold's own training points).
        names: Class names for the scores.
        evaluate_mask: ``(N,)`` bool: points that count in the scores (e.g. the points never
            pruned); all points get out-of-fold logits regardless. Default: all.

    Raises:
        InputError: fewer than 2 glaciers, mismatched lengths, or a fold with fewer than
            :data:`MIN_TRAIN` training samples or a single class.
    """
    from sklearn.model_selection import GroupKFold

    y = np.asarray(y, dtype=np.int64)
    g = np.asarray(groups).astype(str)
    n = y.size
    if len(X) != n or g.size != n:
        raise InputError(f"X ({len(X)}), y ({n}) and groups ({g.size}) must have one entry per "
                         f"point.")
    if evaluate_mask is not None:
        evaluate_mask = np.asarray(evaluate_mask).astype(bool)   # 0/1 masks index as bools
        if evaluate_mask.shape != (n,):
            raise InputError(f"evaluate_mask must be one bool per point ({n}); got shape "
                             f"{evaluate_mask.shape}.")
    uniq = np.unique(g)
    if uniq.size < 2:
        raise InputError(f"cross-validation grouped by glacier needs points from at least 2 "
                         f"glaciers; all {n} points are from {list(uniq)}.")
    k = min(int(n_splits), uniq.size)
    if k < int(n_splits):
        log.info("only %d glaciers: %d folds instead of %d", uniq.size, k, n_splits)
    notes: list[str] = []
    for gl in uniq:
        present = np.unique(y[g == gl])
        if present.size == 1:
            cname = names[int(present[0])] if names is not None else str(int(present[0]))
            notes.append(f"glacier {gl} has labels of one class only ({cname}); its per-glacier "
                         f"macro-F1 covers that class and any class wrongly predicted there.")
    logits = np.full((n, int(n_classes)), np.nan, dtype=np.float32)
    fold = np.full(n, -1, dtype=np.int64)
    folds: list[dict[str, Any]] = []
    splitter = GroupKFold(n_splits=k)
    for i, (tr, te) in enumerate(splitter.split(np.zeros(n), y, g)):
        if tr.size < MIN_TRAIN:
            raise InputError(f"fold {i} has only {tr.size} training samples (< {MIN_TRAIN}); "
                             f"add labelled points or use fewer folds.")
        present = np.unique(y[tr])
        if present.size < 2:
            raise InputError(f"fold {i}: the training glaciers hold only one class; "
                             f"cross-validation needs at least two classes per fold.")
        missing = sorted(set(range(int(n_classes))) - set(present.tolist()))
        if missing:
            mnames = [names[m] if names is not None else str(m) for m in missing]
            notes.append(f"fold {i}: class(es) {mnames} absent from the training glaciers "
                         f"(test: {sorted(set(g[te]))}); that fold cannot predict them.")
        w = weight_fn(tr) if weight_fn is not None else (
            None if weights is None else np.asarray(weights)[tr])
        clf = factory(i)
        clf.fit(X[tr], y[tr], w)
        logits[te] = clf.predict_logits(X[te])
        fold[te] = i
        ev = te if evaluate_mask is None else te[np.asarray(evaluate_mask)[te]]
        pred_ev = logits[ev].argmax(axis=1)
        fs = scores(y[ev], pred_ev, n_classes, names)
        folds.append({"fold": i, "test_glaciers": sorted(set(g[te].tolist())),
                      "n_train": int(tr.size), "n_test": int(te.size), "n_scored": int(ev.size),
                      "macro_f1": fs["macro_f1"], "accuracy": fs["accuracy"],
                      "missing_train_classes": missing})
        log.info("fold %d/%d (test %s): macro-F1 %.3f on %d points", i + 1, k,
                 sorted(set(g[te].tolist())), fs["macro_f1"], ev.size)
    mask = np.ones(n, bool) if evaluate_mask is None else np.asarray(evaluate_mask, bool)
    pred_all = logits.argmax(axis=1)
    pooled = scores(y[mask], pred_all[mask], n_classes, names)
    per_glacier = {str(gl): scores(y[(g == gl) & mask], pred_all[(g == gl) & mask],
                                   n_classes, names)["macro_f1"] for gl in uniq}
    return CVResult(logits=logits, fold=fold, scores=pooled, folds=folds,
                    per_glacier=per_glacier, notes=notes)
