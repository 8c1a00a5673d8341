"""Segmentation scores from one confusion matrix accumulated over all evaluated pixels.

The matrix ``M`` has shape ``(n_classes, n_classes)``; ``M[r, p]`` counts pixels whose
*reference* class is ``r`` and whose *predicted* class is ``p`` (rows = reference, columns =
prediction). It is accumulated over any number of tiles or scenes with
:meth:`ConfusionMatrix.update`, so scores are pooled over pixels (micro-averaged over tiles),
never averaged per tile.

Definitions, per class ``c`` (``TP = M[c, c]``, ``FP = Σ_r M[r, c] − TP``,
``FN = Σ_p M[c, p] − TP``):

* IoU (Jaccard) ``= TP / (TP + FP + FN)``
* precision ``= TP / (TP + FP)`` (user's accuracy)
* recall ``= TP / (TP + FN)`` (producer's accuracy)
* F1 (Dice) ``= 2 TP / (2 TP + FP + FN)`` (the harmonic mean of precision and recall)
* overall accuracy ``= Σ_c TP_c / N``
* macro-F1 ``=`` mean of the per-class F1 over the classes whose F1 is defined.

Zero division: a score whose denominator is 0 is ``NaN`` ("undefined"), never 0 and never an
exception. For example the precision of a class that is never predicted is NaN, and the IoU
and F1 of a class absent from both reference and prediction are NaN. Macro-F1 ignores NaN
classes (NaN only when every class is undefined); overall accuracy is NaN when no pixel was
counted.

Excluded pixels: those where ``valid`` is False, where the reference or the prediction equals
``ignore_index`` (255, the project-wide nodata/ignore value), and nothing else. Any other
value outside ``0 .. n_classes-1`` raises :class:`~glacierkit.errors.InputError`.
"""

from __future__ import annotations

import numpy as np

from glacierkit.errors import InputError

IGNORE_INDEX = 255
"""Label / class value excluded from every score (nodata)."""


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` as float64 with NaN where ``den == 0``."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


class ConfusionMatrix:
    """A confusion matrix accumulated over pixels of any number of tiles or scenes.

    Args:
        n_classes: Number of classes ``K`` (class values ``0 .. K-1``), ≥ 2.
        ignore_index: Value excluded in the reference and the prediction (default 255).

    Attributes:
        matrix: ``(K, K)`` int64 counts, rows = reference class, columns = predicted class.

    Example:
        >>> cm = ConfusionMatrix(2)
        >>> cm.update(np.array([0, 1, 1]), np.array([0, 1, 0])).binary()["iou"]
        0.5
    """

    def __init__(self, n_classes: int = 2, *, ignore_index: int = IGNORE_INDEX) -> None:
        if int(n_classes) != n_classes or n_classes < 2:
            raise InputError(f"n_classes must be an integer ≥ 2; got {n_classes!r}.")
        if 0 <= ignore_index < n_classes:
            raise InputError(f"ignore_index={ignore_index} is one of the classes 0..{n_classes - 1}"
                             f"; use a value outside that range (default 255).")
        self.n_classes = int(n_classes)
        self.ignore_index = int(ignore_index)
        self.matrix = np.zeros((self.n_classes, self.n_classes), dtype=np.int64)

    # ------------------------------------------------------------------ accumulation
    def update(self, pred: np.ndarray, ref: np.ndarray,
               valid: np.ndarray | None = None) -> ConfusionMatrix:
        """Add the pixels of one tile or scene.

        Args:
            pred: Predicted classes, integer array of any shape (e.g. ``(H, W)``).
            ref: Reference classes, same shape.
            valid: Optional boolean mask, same shape; False pixels are skipped.

        Returns:
            ``self`` (so calls can be chained).

        Raises:
            InputError: shapes differ, arrays are not integer-valued, or a value is neither a
                class nor ``ignore_index``.
        """
        p = np.asarray(pred)
        r = np.asarray(ref)
        if p.shape != r.shape:
            raise InputError(f"pred shape {p.shape} differs from ref shape {r.shape}; both must "
                             f"be on the same grid.")
        keep = (p != self.ignore_index) & (r != self.ignore_index)
        if valid is not None:
            v = np.asarray(valid)
            if v.shape != p.shape:
                raise InputError(f"valid mask shape {v.shape} differs from pred shape {p.shape}.")
            keep &= v.astype(bool)
        p, r = p[keep], r[keep]
        for name, a in (("pred", p), ("ref", r)):
            if a.size == 0:
                continue
            if (a.dtype != np.bool_ and not np.issubdtype(a.dtype, np.integer)
                    and not np.array_equal(a, np.round(a))):
                raise InputError(f"{name} must hold integer class values; got non-integer "
                                 f"{a.dtype} values (threshold probabilities first).")
            lo, hi = a.min(), a.max()
            if lo < 0 or hi >= self.n_classes:
                raise InputError(
                    f"{name} holds value(s) outside the classes 0..{self.n_classes - 1} "
                    f"(min {lo}, max {hi}) that are not the ignore value {self.ignore_index}; "
                    f"raise n_classes or mark nodata with {self.ignore_index}."
                )
        idx = r.astype(np.int64) * self.n_classes + p.astype(np.int64)
        self.matrix += np.bincount(idx, minlength=self.n_classes**2).reshape(
            self.n_classes, self.n_classes)
        return self

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add another matrix's counts (same ``n_classes``) to this one; returns ``self``."""
        if other.n_classes != self.n_classes:
            raise InputError(f"cannot merge a {other.n_classes}-class confusion matrix into a "
                             f"{self.n_classes}-class one.")
        self.matrix += other.matrix
        return self

    # ------------------------------------------------------------------ counts
    @property
    def total(self) -> int:
        """Number of pixels counted."""
        return int(self.matrix.sum())

    @property
    def tp(self) -> np.ndarray:
        """True positives per class, ``(K,)``."""
        return np.diag(self.matrix).copy()

    @property
    def fp(self) -> np.ndarray:
        """False positives per class (predicted ``c``, reference not ``c``), ``(K,)``."""
        return self.matrix.sum(axis=0) - self.tp

    @property
    def fn(self) -> np.ndarray:
        """False negatives per class (reference ``c``, predicted not ``c``), ``(K,)``."""
        return self.matrix.sum(axis=1) - self.tp

    # ------------------------------------------------------------------ scores
    def per_class(self) -> dict[str, np.ndarray]:
        """Per-class scores, each a float64 array ``(K,)`` (NaN where undefined).

        Returns:
            ``{"iou", "precision", "recall", "f1", "support"}``; ``support`` is the number of
            reference pixels of each class.
        """
        tp, fp, fn = self.tp, self.fp, self.fn
        return {
            "iou": _safe_div(tp, tp + fp + fn),
            "precision": _safe_div(tp, tp + fp),
            "recall": _safe_div(tp, tp + fn),
            "f1": _safe_div(2 * tp, 2 * tp + fp + fn),
            "support": (tp + fn).astype(np.float64),
        }

    def overall_accuracy(self) -> float:
        """Share of counted pixels classified correctly (NaN when nothing was counted)."""
        return float(_safe_div(np.trace(self.matrix), self.total))

    def macro_f1(self) -> float:
        """Mean F1 over the classes whose F1 is defined (NaN when none is)."""
        f1 = self.per_class()["f1"]
        return float(np.mean(f1[~np.isnan(f1)])) if np.any(~np.isnan(f1)) else float("nan")

    def binary(self, positive: int = 1) -> dict[str, float]:
        """Scores of one class against all others (glacier = class 1 by default).

        Returns:
            Plain-float dict ``iou, precision, recall, f1, accuracy, tp, fp, fn, tn, n``
            (``accuracy`` is the overall accuracy over all classes).
        """
        if not 0 <= positive < self.n_classes:
            raise InputError(f"positive class {positive} is not one of 0..{self.n_classes - 1}.")
        pc = self.per_class()
        tp, fp, fn = (int(a[positive]) for a in (self.tp, self.fp, self.fn))
        return {
            "iou": float(pc["iou"][positive]),
            "precision": float(pc["precision"][positive]),
            "recall": float(pc["recall"][positive]),
            "f1": float(pc["f1"][positive]),
            "accuracy": self.overall_accuracy(),
            "tp": tp, "fp": fp, "fn": fn, "tn": self.total - tp - fp - fn, "n": self.total,
        }

    def scores(self, positive: int | None = 1) -> dict[str, object]:
        """All scores as a JSON-serialisable dict.

        Returns:
            ``overall_accuracy``, ``macro_f1``, ``per_class`` (lists, one entry per class),
            ``matrix`` (nested lists) and, when ``positive`` is not None, the
            :meth:`binary` scores under ``binary``.
        """
        out: dict[str, object] = {
            "overall_accuracy": self.overall_accuracy(),
            "macro_f1": self.macro_f1(),
            "per_class": {k: [float(x) for x in v] for k, v in self.per_class().items()},
            "matrix": self.matrix.tolist(),
            "n": self.total,
        }
        if positive is not None:
            out["binary"] = self.binary(positive)
        return out

    def __repr__(self) -> str:
        return f"ConfusionMatrix(n_classes={self.n_classes}, n={self.total})"


def segmentation_scores(pred: np.ndarray, ref: np.ndarray, *, n_classes: int = 2,
                        valid: np.ndarray | None = None, positive: int | None = 1,
                        ignore_index: int = IGNORE_INDEX) -> dict[str, object]:
    """Scores of one prediction against one reference (see :meth:`ConfusionMatrix.scores`).

    Args:
        pred: Predicted classes, integer array ``(H, W)`` (any shape).
        ref: Reference classes, same shape.
        n_classes: Number of classes.
        valid: Optional boolean mask of pixels to evaluate.
        positive: Class reported in ``binary`` (glacier = 1); None to omit.
        ignore_index: Excluded value (default 255).
    """
    cm = ConfusionMatrix(n_classes, ignore_index=ignore_index)
    return cm.update(pred, ref, valid).scores(positive)
