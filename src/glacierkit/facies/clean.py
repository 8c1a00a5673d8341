"""Confident learning (cleanlab) on out-of-fold probabilities: find and prune label issues.

:func:`find_label_issues` runs :func:`cleanlab.filter.find_label_issues` on out-of-fold
probabilities (from :func:`glacierkit.facies.cv.grouped_cv`) and prunes the flagged labels,
optionally only within chosen classes (trusted classes such as water, cloud and shadow are
kept whatever the model thinks).

:func:`evaluate_pruning` measures what pruning buys **without evaluating on pruned data**:
for every outer fold (grouped by glacier), confident learning runs on the training glaciers
only (their own inner grouped cross-validation gives the out-of-fold probabilities), the model
is trained once on all training labels ("before") and once on the retained ones ("after"), and
both predict the test glaciers, whose labels are never pruned. The report gives macro-F1
before/after on (a) all test labels and (b) the test labels that a global confident-learning
pass considers clean (the protocol of the reference paper, reported for comparison only).

No torch at module level.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from glacierkit.errors import InputError
from glacierkit.facies.cv import grouped_cv, scores

log = logging.getLogger(__name__)

__all__ = ["CleanResult", "evaluate_pruning", "find_label_issues"]

#: Classes kept by default (a confident model is more often wrong there than the labeller).
TRUSTED = ("water", "cloud", "shadow")

FILTERS = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning",
           "predicted_neq_given")


@dataclass
class CleanResult:
    """Outcome of :func:`find_label_issues`.

    Attributes:
        flagged: ``(N,)`` bool: cleanlab flags the label as an issue.
        pruned: ``(N,)`` bool: flagged and in a prunable class (removed from training).
        per_class: ``{class: {"n", "flagged", "pruned", "pruned_share"}}``.
        pruned_share: Share of all labels pruned (0–1).
        settings: The method, the prunable and kept classes.
    """

    flagged: np.ndarray
    pruned: np.ndarray
    per_class: dict[str, dict[str, float]]
    pruned_share: float
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def keep(self) -> np.ndarray:
        """``(N,)`` bool: labels retained."""
        return ~self.pruned

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable summary."""
        return {"pruned_share": self.pruned_share, "n": int(self.pruned.size),
                "n_pruned": int(self.pruned.sum()), "n_flagged": int(self.flagged.sum()),
                "per_class": self.per_class, "settings": self.settings}


def find_label_issues(y: np.ndarray, probabilities: np.ndarray, *, names: Sequence[str],
                      prune_classes: Sequence[str] | None = None,
                      keep_classes: Sequence[str] = TRUSTED,
                      filter_by: str = "prune_by_noise_rate",
                      frac_noise: float = 1.0) -> CleanResult:
    """Flag label issues with confident learning and decide which labels to prune.

    Args:
        y: ``(N,)`` model-class labels ``0 … K − 1``.
        probabilities: ``(N, K)`` out-of-fold predicted probabilities (rows sum to 1).
        names: The ``K`` class names.
        prune_classes: Only labels of these classes may be pruned (default: all but
            ``keep_classes``).
        keep_classes: Classes never pruned (default water, cloud, shadow).
        filter_by: cleanlab's ``filter_by`` (default ``prune_by_noise_rate``).
        frac_noise: cleanlab's ``frac_noise`` (1.0: prune as many as estimated).

    Raises:
        InputError: shapes disagree, probabilities are not finite, a class name is unknown,
            or an unknown ``filter_by``.
    """
    from cleanlab.filter import find_label_issues as _cl

    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(probabilities, dtype=np.float64)
    names = [str(c) for c in names]
    if p.ndim != 2 or p.shape[0] != y.size or p.shape[1] != len(names):
        raise InputError(f"probabilities must be (N={y.size}, K={len(names)}); got {p.shape}.")
    if not np.isfinite(p).all():
        raise InputError("probabilities contain NaN/inf; every label needs an out-of-fold "
                         "prediction.")
    if filter_by not in FILTERS:
        raise InputError(f"filter_by must be one of {list(FILTERS)}; got {filter_by!r}.")
    for c in list(prune_classes or ()) + list(keep_classes):
        if c not in names and c not in TRUSTED:
            raise InputError(f"class {c!r} is not one of the model classes {names}.")
    prunable = set(prune_classes) if prune_classes is not None else set(names)
    prunable -= set(keep_classes)
    p = np.clip(p, 1e-12, None)
    p = p / p.sum(axis=1, keepdims=True)
    flagged = np.asarray(_cl(labels=y, pred_probs=p, filter_by=filter_by,
                             frac_noise=frac_noise, n_jobs=1), dtype=bool)
    can = np.isin(y, [i for i, c in enumerate(names) if c in prunable])
    pruned = flagged & can
    per_class: dict[str, dict[str, float]] = {}
    for i, c in enumerate(names):
        m = y == i
        if not m.any():
            continue
        per_class[c] = {"n": int(m.sum()), "flagged": int(flagged[m].sum()),
                        "pruned": int(pruned[m].sum()),
                        "pruned_share": float(pruned[m].mean())}
    share = float(pruned.mean()) if pruned.size else 0.0
    log.info("confident learning: %d of %d labels flagged, %d pruned (%.1f %%)",
             int(flagged.sum()), y.size, int(pruned.sum()), 100 * share)
    return CleanResult(flagged=flagged, pruned=pruned, per_class=per_class, pruned_share=share,
                       settings={"filter_by": filter_by, "frac_noise": frac_noise,
                                 "prunable": sorted(prunable),
                                 "kept": sorted(set(names) - prunable)})


def evaluate_pruning(X: np.ndarray, y: np.ndarray, groups: np.ndarray,
                     factory: Callable[[int], Any], *, n_classes: int, names: Sequence[str],
                     weight_fn: Callable[[np.ndarray], np.ndarray] | None = None,
                     n_splits: int = 5, inner_splits: int = 3,
                     clean_kwargs: dict[str, Any] | None = None,
                     global_clean: CleanResult | None = None) -> dict[str, Any]:
    """Macro-F1 before / after pruning, with pruning decided on training glaciers only.

    Args:
        X, y, groups: Points (spectra or patches), model-class labels, glacier ids.
        factory: Classifier factory (see :func:`glacierkit.facies.cv.grouped_cv`).
        n_classes, names: ``K`` and the class names.
        weight_fn: ``weight_fn(indices) -> weights`` for a set of training points.
        n_splits: Outer folds (grouped by glacier).
        inner_splits: Inner folds for the out-of-fold probabilities of the training glaciers.
        clean_kwargs: Passed to :func:`find_label_issues`.
        global_clean: A confident-learning pass over all labels (for score (b)); computed
            here from a plain grouped CV when None.

    Returns:
        ``{"before": {...}, "after": {...}}`` each with ``macro_f1_all_test_labels`` and
        ``macro_f1_clean_test_labels`` (pooled over folds), per-fold numbers, the share
        pruned per fold, and ``protocol`` (a sentence stating what was evaluated on what).
    """
    from sklearn.model_selection import GroupKFold

    y = np.asarray(y, dtype=np.int64)
    g = np.asarray(groups).astype(str)
    ck = dict(clean_kwargs or {})
    uniq = np.unique(g)
    if uniq.size < 3:
        raise InputError(f"evaluating pruning needs at least 3 glaciers (outer test glacier "
                         f"plus 2 for the inner cross-validation); got {list(uniq)}.")
    if global_clean is None:
        cv = grouped_cv(X, y, g, factory, n_classes=n_classes, n_splits=n_splits,
                        weight_fn=weight_fn, names=names)
        global_clean = find_label_issues(y, cv.probabilities, names=names, **ck)
    clean_ref = global_clean.keep
    k = min(n_splits, uniq.size)
    pred_before = np.full(y.size, -1, dtype=np.int64)
    pred_after = np.full(y.size, -1, dtype=np.int64)
    folds = []
    for i, (tr, te) in enumerate(GroupKFold(n_splits=k).split(np.zeros(y.size), y, g)):
        inner = grouped_cv(X[tr], y[tr], g[tr], factory, n_classes=n_classes,
                           n_splits=min(inner_splits, np.unique(g[tr]).size),
                           weight_fn=None if weight_fn is None else
                           (lambda idx, tr=tr: weight_fn(tr[idx])), names=names)
        cl = find_label_issues(y[tr], inner.probabilities, names=names, **ck)
        kept = tr[cl.keep]
        for _which, train_idx, pred in (("before", tr, pred_before),
                                       ("after", kept, pred_after)):
            clf = factory(100 + i)
            clf.fit(X[train_idx], y[train_idx],
                    None if weight_fn is None else weight_fn(train_idx))
            pred[te] = clf.predict_logits(X[te]).argmax(axis=1)
        folds.append({"fold": i, "test_glaciers": sorted(set(g[te].tolist())),
                      "pruned_share_train": cl.pruned_share,
                      "macro_f1_before": scores(y[te], pred_before[te], n_classes,
                                                names)["macro_f1"],
                      "macro_f1_after": scores(y[te], pred_after[te], n_classes,
                                               names)["macro_f1"]})
        log.info("pruning fold %d: pruned %.1f %% of training labels; macro-F1 %.3f → %.3f",
                 i, 100 * cl.pruned_share, folds[-1]["macro_f1_before"],
                 folds[-1]["macro_f1_after"])
    out: dict[str, Any] = {}
    for which, pred in (("before", pred_before), ("after", pred_after)):
        out[which] = {
            "macro_f1_all_test_labels": scores(y, pred, n_classes, names)["macro_f1"],
            "macro_f1_clean_test_labels": scores(y[clean_ref], pred[clean_ref], n_classes,
                                                 names)["macro_f1"],
            "per_class_all": scores(y, pred, n_classes, names)["per_class"],
        }
    out["folds"] = folds
    out["global_pruned_share"] = global_clean.pruned_share
    out["protocol"] = (
        "outer folds grouped by glacier; in each, confident learning uses out-of-fold "
        f"probabilities of an inner {inner_splits}-fold grouped CV on the training glaciers "
        "only; 'before' trains on all training labels, 'after' on the retained ones; both "
        "predict the held-out glaciers, whose labels are never pruned. "
        "'all_test_labels' scores every held-out label; 'clean_test_labels' scores only the "
        "held-out labels a global confident-learning pass keeps (for comparison with the "
        "reference paper; that subset depends on all labels).")
    return out
