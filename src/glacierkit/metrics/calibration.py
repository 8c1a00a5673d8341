"""Confidence calibration: ECE, reliability bins and calibration maps (numpy/scipy/sklearn).

Axis conventions (everywhere in this module): the class axis of logits and probabilities is
axis 1 for per-sample arrays ``(N, K)`` and for batches of maps ``(B, K, H, W)``, and axis 0
for one map ``(K, H, W)``. Labels have the shape without the class axis (``(N,)``,
``(B, H, W)`` or ``(H, W)``); labels equal to 255 (ignore/nodata) are skipped when fitting and
scoring.

Calibration maps share one small interface so the pipeline can store the fitted map in a
model file's metadata and apply it at inference without sklearn:

* ``fit(logits, labels)`` → the map (fitted in place);
* ``apply(logits)`` → calibrated probabilities, same shape as ``logits``;
* ``confidence(logits, kind="max")`` → calibrated confidence (shape of ``logits`` without the
  class axis);
* ``to_dict()`` / ``from_dict(d)``: JSON-serialisable parameters; :func:`calibration_from_dict`
  builds the right class from a dict.

Maps take logits; when only probabilities are available, pass
``logits_from_probabilities(p)`` (``log p``, whose softmax is ``p`` again). No map changes
the predicted class: temperature scaling keeps the order of the logits, and the isotonic map
recalibrates the top-class probability only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from scipy import optimize, special

from glacierkit.errors import InputError
from glacierkit.metrics.segmentation import IGNORE_INDEX

log = logging.getLogger(__name__)

DEFAULT_BINS = 15
"""Number of equal-width confidence bins of the ECE and reliability diagrams."""


# ---------------------------------------------------------------------------- helpers
def class_axis(ndim: int) -> int:
    """Class axis of an array with ``ndim`` dimensions: 1 for (N,K) / (B,K,H,W), 0 for (K,H,W)."""
    if ndim in (2, 4):
        return 1
    if ndim == 3:
        return 0
    raise InputError(f"logits/probabilities must be (N, K), (K, H, W) or (B, K, H, W); got "
                     f"{ndim} dimension(s).")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the class axis (see :func:`class_axis`), float64."""
    z = np.asarray(logits, dtype=np.float64)
    return special.softmax(z, axis=class_axis(z.ndim))


def logits_from_probabilities(p: np.ndarray, *, eps: float = 1e-12) -> np.ndarray:
    """``log(max(p, eps))``: logits whose softmax is ``p`` (up to ``eps``)."""
    return np.log(np.maximum(np.asarray(p, dtype=np.float64), eps))


def confidence_from_probabilities(p: np.ndarray, kind: str = "max") -> np.ndarray:
    """Confidence of each sample/pixel from class probabilities.

    Args:
        p: Probabilities ``(N, K)``, ``(K, H, W)`` or ``(B, K, H, W)`` (class axis per
            :func:`class_axis`), summing to 1 over classes.
        kind: ``"max"``: the top-class probability (in ``[1/K, 1]``); ``"entropy"``:
            ``1 − H(p) / log K`` with ``H(p) = −Σ p log p`` (natural log, ``0 log 0 = 0``),
            1 for a one-hot and 0 for a uniform distribution.

    Returns:
        float64 array, the shape of ``p`` without the class axis.
    """
    a = np.asarray(p, dtype=np.float64)
    ax = class_axis(a.ndim)
    k = a.shape[ax]
    if k < 2:
        raise InputError(f"need at least 2 classes along axis {ax}; got shape {a.shape}.")
    if kind == "max":
        return a.max(axis=ax)
    if kind == "entropy":
        h = -special.xlogy(a, a).sum(axis=ax)
        return np.clip(1.0 - h / np.log(k), 0.0, 1.0)
    raise InputError(f"kind must be 'max' or 'entropy'; got {kind!r}.")


def _flatten(logits: np.ndarray, labels: np.ndarray | None = None,
             ) -> tuple[np.ndarray, np.ndarray | None]:
    """``(N, K)`` logits and ``(N,)`` labels with ignore-labelled samples removed."""
    z = np.asarray(logits, dtype=np.float64)
    ax = class_axis(z.ndim)
    k = z.shape[ax]
    flat = np.moveaxis(z, ax, -1).reshape(-1, k)
    if labels is None:
        return flat, None
    y = np.asarray(labels)
    expect = tuple(s for i, s in enumerate(z.shape) if i != ax)
    if y.shape != expect:
        raise InputError(f"labels shape {y.shape} does not match logits {z.shape} without the "
                         f"class axis {ax} ({expect}).")
    y = y.reshape(-1)
    keep = y != IGNORE_INDEX
    flat, y = flat[keep], y[keep].astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= k):
        raise InputError(f"labels must be classes 0..{k - 1} (or {IGNORE_INDEX} = ignore); "
                         f"got values {y.min()}..{y.max()}.")
    return flat, y


def _check_conf(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(confidence, dtype=np.float64).ravel()
    ok = np.asarray(correct).astype(np.float64).ravel()
    if c.shape != ok.shape:
        raise InputError(f"confidence ({c.size} values) and correct ({ok.size}) differ in size.")
    if c.size == 0:
        raise InputError("no samples: confidence is empty.")
    if not np.all(np.isfinite(c)) or c.min() < 0 or c.max() > 1:
        raise InputError("confidence must be finite and within [0, 1].")
    return c, ok


# ---------------------------------------------------------------------------- ECE / bins
@dataclass(frozen=True)
class ReliabilityBins:
    """Equal-width confidence bins of a sample.

    Attributes:
        edges: Bin edges ``(n_bins + 1,)`` from 0 to 1.
        confidence: Mean confidence per bin ``(n_bins,)``; NaN for empty bins.
        accuracy: Share of correct samples per bin ``(n_bins,)``; NaN for empty bins.
        counts: Samples per bin ``(n_bins,)``.
        ece: Expected calibration error of the sample (see :func:`expected_calibration_error`).
    """

    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    counts: np.ndarray
    ece: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (lists; NaN stays NaN)."""
        return {"edges": self.edges.tolist(), "confidence": self.confidence.tolist(),
                "accuracy": self.accuracy.tolist(), "counts": self.counts.tolist(),
                "ece": float(self.ece)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReliabilityBins:
        """Inverse of :meth:`to_dict`."""
        return cls(np.asarray(d["edges"], float), np.asarray(d["confidence"], float),
                   np.asarray(d["accuracy"], float), np.asarray(d["counts"], np.int64),
                   float(d["ece"]))


def reliability_bins(confidence: np.ndarray, correct: np.ndarray,
                     n_bins: int = DEFAULT_BINS) -> ReliabilityBins:
    """Bin samples by confidence into ``n_bins`` equal-width bins on [0, 1].

    Bin ``b`` holds confidences in ``[b/n, (b+1)/n)``; the last bin also holds 1.0.

    Args:
        confidence: Confidence per sample in [0, 1], any shape (flattened).
        correct: Whether each prediction is correct (bool or 0/1), same size.
        n_bins: Number of bins (≥ 1).
    """
    if int(n_bins) != n_bins or n_bins < 1:
        raise InputError(f"n_bins must be a positive integer; got {n_bins!r}.")
    c, ok = _check_conf(confidence, correct)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip((c * n_bins).astype(np.int64), 0, n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(idx, weights=c, minlength=n_bins) / counts
        acc = np.bincount(idx, weights=ok, minlength=n_bins) / counts
    conf[counts == 0] = np.nan
    acc[counts == 0] = np.nan
    filled = counts > 0
    ece = float(np.sum(counts[filled] / c.size * np.abs(acc[filled] - conf[filled])))
    return ReliabilityBins(edges, conf, acc, counts.astype(np.int64), ece)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray,
                               n_bins: int = DEFAULT_BINS) -> float:
    """Expected calibration error ``ECE = Σ_b (n_b / N) · |acc_b − conf_b|``.

    Equal-width bins on [0, 1] (see :func:`reliability_bins`); ``acc_b`` is the share of
    correct samples and ``conf_b`` the mean confidence in bin ``b``, weighted by the bin's
    share of the ``N`` samples; empty bins contribute 0. Unitless, in [0, 1].

    Args:
        confidence: Confidence per sample in [0, 1], any shape.
        correct: Bool or 0/1 per sample, same size.
        n_bins: Number of bins.
    """
    return reliability_bins(confidence, correct, n_bins=n_bins).ece


def nll(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood (nats) of ``labels`` under ``softmax(logits)``."""
    z, y = _flatten(logits, labels)
    if y.size == 0:
        raise InputError("no labelled samples (all labels are 255).")
    return float(-np.mean(special.log_softmax(z, axis=1)[np.arange(y.size), y]))


# ---------------------------------------------------------------------------- maps
class CalibrationMap:
    """Base class of the calibration maps (see the module docstring for the interface)."""

    kind: ClassVar[str] = ""

    def fit(self, logits: np.ndarray, labels: np.ndarray) -> CalibrationMap:
        """Fit on logits ``(N, K)``/``(K, H, W)``/``(B, K, H, W)`` and matching labels."""
        raise NotImplementedError

    def apply(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, the shape of ``logits`` (float64)."""
        raise NotImplementedError

    def confidence(self, logits: np.ndarray, kind: str = "max") -> np.ndarray:
        """Calibrated confidence, the shape of ``logits`` without the class axis."""
        return confidence_from_probabilities(self.apply(logits), kind)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable parameters, with ``kind``."""
        raise NotImplementedError

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CalibrationMap:
        """Rebuild a map from :meth:`to_dict` output."""
        raise NotImplementedError

    def _check_kind(self, d: dict[str, Any]) -> None:
        if d.get("kind") != self.kind:
            raise InputError(f"not a {self.kind!r} calibration: kind={d.get('kind')!r}.")


class IdentityCalibration(CalibrationMap):
    """No calibration: ``apply`` is the softmax."""

    kind = "none"

    def fit(self, logits: np.ndarray, labels: np.ndarray) -> IdentityCalibration:
        """Nothing to fit (validates the shapes only)."""
        _flatten(logits, labels)
        return self

    def apply(self, logits: np.ndarray) -> np.ndarray:
        """``softmax(logits)`` over the class axis."""
        return softmax(logits)

    def to_dict(self) -> dict[str, Any]:
        """``{"kind": "none"}``."""
        return {"kind": self.kind}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IdentityCalibration:
        """Rebuild from :meth:`to_dict` output."""
        if d.get("kind") not in ("none", "identity"):
            raise InputError(f"not an identity calibration: kind={d.get('kind')!r}.")
        return cls()


class TemperatureScaling(CalibrationMap):
    """Temperature scaling: ``p = softmax(z / T)`` with one temperature ``T > 0``.

    ``T`` minimises the mean negative log-likelihood of the validation labels; it is found by
    bounded scalar minimisation (:func:`scipy.optimize.minimize_scalar`) over ``log T`` in
    ``[log t_min, log t_max]``. ``T > 1`` softens over-confident logits.

    Args:
        temperature: Initial / known temperature (default 1).
        t_min, t_max: Search interval of ``T``.
    """

    kind = "temperature"

    def __init__(self, temperature: float = 1.0, *, t_min: float = 0.05,
                 t_max: float = 50.0) -> None:
        if not temperature > 0:
            raise InputError(f"temperature must be > 0; got {temperature}.")
        if not 0 < t_min < t_max:
            raise InputError(f"need 0 < t_min < t_max; got {t_min}, {t_max}.")
        self.temperature = float(temperature)
        self.t_min, self.t_max = float(t_min), float(t_max)

    def fit(self, logits: np.ndarray, labels: np.ndarray) -> TemperatureScaling:
        """Fit ``T`` by minimising the NLL over ``log T`` (ignore labels 255 skipped)."""
        z, y = _flatten(logits, labels)
        if y.size == 0:
            raise InputError("cannot fit a temperature: no labelled samples.")
        rows = np.arange(y.size)

        def loss(log_t: float) -> float:
            return float(-np.mean(special.log_softmax(z / np.exp(log_t), axis=1)[rows, y]))

        res = optimize.minimize_scalar(loss, bounds=(np.log(self.t_min), np.log(self.t_max)),
                                       method="bounded", options={"xatol": 1e-7})
        self.temperature = float(np.exp(res.x))
        if min(self.temperature / self.t_min, self.t_max / self.temperature) < 1.001:
            log.warning("fitted temperature %.4g is at the search bound [%g, %g]; the logits "
                        "may be degenerate (check labels and logits).", self.temperature,
                        self.t_min, self.t_max)
        return self

    def apply(self, logits: np.ndarray) -> np.ndarray:
        """``softmax(logits / T)`` over the class axis."""
        return softmax(np.asarray(logits, dtype=np.float64) / self.temperature)

    def to_dict(self) -> dict[str, Any]:
        """``{"kind": "temperature", "temperature": T}``."""
        return {"kind": self.kind, "temperature": self.temperature}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TemperatureScaling:
        """Rebuild from :meth:`to_dict` output."""
        cls()._check_kind(d)
        return cls(float(d["temperature"]))


class IsotonicCalibration(CalibrationMap):
    """Isotonic regression of correctness on the top-class probability.

    Fitting uses :class:`sklearn.isotonic.IsotonicRegression` (increasing, outputs clipped to
    ``[1/K, 1]``) of ``correct = (argmax = label)`` on ``c = max softmax(z)``; its
    breakpoints are stored, and applying is :func:`numpy.interp` on them (no sklearn needed),
    constant beyond the end points. ``apply`` sets the top class to the calibrated ``c'`` and
    scales the other classes by ``(1 − c') / (1 − c)`` so the probabilities still sum to 1
    (for two classes the predicted class never changes; use :meth:`confidence` and the argmax
    of the logits for class and confidence maps).
    """

    kind = "isotonic"

    def __init__(self, x: np.ndarray | None = None, y: np.ndarray | None = None,
                 n_classes: int | None = None) -> None:
        self.x = None if x is None else np.asarray(x, dtype=np.float64)
        self.y = None if y is None else np.asarray(y, dtype=np.float64)
        self.n_classes = n_classes
        if (self.x is None) != (self.y is None) or (
                self.x is not None and (self.x.shape != self.y.shape or self.x.size == 0)):
            raise InputError("isotonic breakpoints x and y must both be given, non-empty and of "
                             "equal length.")

    def fit(self, logits: np.ndarray, labels: np.ndarray) -> IsotonicCalibration:
        """Fit the isotonic map (ignore labels 255 skipped)."""
        from sklearn.isotonic import IsotonicRegression

        z, y = _flatten(logits, labels)
        if y.size == 0:
            raise InputError("cannot fit an isotonic map: no labelled samples.")
        p = special.softmax(z, axis=1)
        conf = p.max(axis=1)
        correct = (p.argmax(axis=1) == y).astype(np.float64)
        k = z.shape[1]
        iso = IsotonicRegression(y_min=1.0 / k, y_max=1.0, increasing=True,
                                 out_of_bounds="clip").fit(conf, correct)
        self.x = np.asarray(iso.X_thresholds_, dtype=np.float64)
        self.y = np.asarray(iso.y_thresholds_, dtype=np.float64)
        self.n_classes = k
        return self

    def _map(self, conf: np.ndarray) -> np.ndarray:
        if self.x is None:
            raise InputError("the isotonic calibration is not fitted; call fit() first.")
        return np.interp(conf, self.x, self.y)

    def confidence(self, logits: np.ndarray, kind: str = "max") -> np.ndarray:
        """Calibrated top-class probability (``kind="max"``) or entropy confidence."""
        if kind == "max":
            return self._map(softmax(logits).max(axis=class_axis(np.ndim(logits))))
        return super().confidence(logits, kind)

    def apply(self, logits: np.ndarray) -> np.ndarray:
        """Probabilities with the top class recalibrated (see the class docstring)."""
        p = softmax(logits)
        ax = class_axis(p.ndim)
        top = p.argmax(axis=ax)
        c = np.take_along_axis(p, np.expand_dims(top, ax), axis=ax)
        c_new = self._map(c)
        rest = 1.0 - c
        scale = np.divide(1.0 - c_new, rest, out=np.zeros_like(rest), where=rest > 0)
        out = p * scale
        np.put_along_axis(out, np.expand_dims(top, ax), c_new, axis=ax)
        return out

    def to_dict(self) -> dict[str, Any]:
        """``{"kind": "isotonic", "x": [...], "y": [...], "n_classes": K}``."""
        if self.x is None:
            raise InputError("the isotonic calibration is not fitted; nothing to serialise.")
        return {"kind": self.kind, "x": self.x.tolist(), "y": self.y.tolist(),
                "n_classes": self.n_classes}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IsotonicCalibration:
        """Rebuild from :meth:`to_dict` output."""
        cls()._check_kind(d)
        return cls(d["x"], d["y"], d.get("n_classes"))


CALIBRATION_MAPS: dict[str, type[CalibrationMap]] = {
    "none": IdentityCalibration,
    "temperature": TemperatureScaling,
    "isotonic": IsotonicCalibration,
}
"""Calibration map classes by ``kind`` (the names used in configs)."""


def calibration_from_dict(d: dict[str, Any]) -> CalibrationMap:
    """Build the calibration map a :meth:`CalibrationMap.to_dict` dict describes.

    Raises:
        InputError: ``d`` is not a dict with a known ``kind``.
    """
    if not isinstance(d, dict) or "kind" not in d:
        raise InputError(f"a calibration must be a dict with 'kind'; got {d!r:.80}.")
    kind = "none" if d["kind"] == "identity" else d["kind"]
    if kind not in CALIBRATION_MAPS:
        raise InputError(f"unknown calibration kind {d['kind']!r}; known: "
                         f"{sorted(CALIBRATION_MAPS)}.")
    return CALIBRATION_MAPS[kind].from_dict(d)


def compare_calibrations(logits_val: np.ndarray, y_val: np.ndarray, logits_test: np.ndarray,
                         y_test: np.ndarray, *, n_bins: int = DEFAULT_BINS,
                         methods: tuple[str, ...] = ("none", "temperature", "isotonic"),
                         ) -> dict[str, Any]:
    """Fit each calibration map on validation data and measure its ECE on test data.

    The ECE uses the top-class confidence and correctness of the argmax (which no map
    changes), see :func:`expected_calibration_error`.

    Args:
        logits_val, y_val: Validation logits and labels (shapes per the module docstring).
        logits_test, y_test: Test logits and labels.
        n_bins: ECE bins.
        methods: Map kinds to compare (keys of :data:`CALIBRATION_MAPS`).

    Returns:
        ``{"ece_before": float, "methods": {kind: {"ece_after", "nll_after", "params",
        "map"}}, "best": kind}``: ``best`` has the lowest test ECE (ties: earlier in
        ``methods``); ``map`` is the fitted :class:`CalibrationMap` (drop it before JSON).
    """
    zv, yv = _flatten(logits_val, y_val)
    zt, yt = _flatten(logits_test, y_test)
    if yt.size == 0 or yv.size == 0:
        raise InputError("validation and test sets must each hold labelled samples.")
    correct = zt.argmax(axis=1) == yt
    ece_before = expected_calibration_error(special.softmax(zt, axis=1).max(axis=1), correct,
                                            n_bins=n_bins)
    results: dict[str, Any] = {}
    for kind in methods:
        if kind not in CALIBRATION_MAPS:
            raise InputError(f"unknown calibration {kind!r}; known: {sorted(CALIBRATION_MAPS)}.")
        m = CALIBRATION_MAPS[kind]().fit(zv, yv)
        conf = m.confidence(zt, "max")
        p = m.apply(zt)
        results[kind] = {
            "ece_after": expected_calibration_error(conf, correct, n_bins=n_bins),
            "nll_after": float(-np.mean(np.log(np.maximum(p[np.arange(yt.size), yt], 1e-300)))),
            "params": m.to_dict(),
            "map": m,
        }
    best = min(results, key=lambda k: results[k]["ece_after"])
    return {"ece_before": ece_before, "methods": results, "best": best}


def choose_calibration(logits: np.ndarray, labels: np.ndarray, method: str = "auto", *,
                       seed: int = 0) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Fit a calibration map on held-out logits, choosing the kind by ECE when ``"auto"``.

    ``"auto"`` fits temperature scaling and isotonic regression (and the identity) on one
    random half of the samples, scores their ECE on the other half, and refits the winner on
    all samples. The data must be held out from training (validation pixels, or out-of-fold
    predictions); the test data are never used to choose.

    Args:
        logits: ``(N, K)`` raw logits.
        labels: ``(N,)`` labels.
        method: ``"auto"``, ``"none"`` or a key of :data:`CALIBRATION_MAPS`.
        seed: Seed of the random halves.

    Returns:
        ``(map.to_dict() or None, record)`` — the record states the method, the selection
        ECEs and the rule.
    """
    if method != "auto" and method != "none" and method not in CALIBRATION_MAPS:
        raise InputError(f"unknown calibration {method!r}; use 'auto', 'none' or one of "
                         f"{sorted(CALIBRATION_MAPS)}.")
    z = np.asarray(logits)
    y = np.asarray(labels)
    record: dict[str, Any] = {"n_pixels": int(y.size)}
    if method == "none":
        record["method"] = "none"
        return None, record
    chosen = method
    if method == "auto":
        idx = np.random.default_rng(seed).permutation(y.size)
        a, b = idx[: y.size // 2], idx[y.size // 2:]
        cmp = compare_calibrations(z[a], y[a], z[b], y[b],
                                   methods=("none", "temperature", "isotonic"))
        record["selection"] = {"ece_before": cmp["ece_before"],
                               **{k: v["ece_after"] for k, v in cmp["methods"].items()}}
        chosen = cmp["best"]
        record["selection_rule"] = ("lowest ECE on a held-out half of the samples "
                                    "(maps fitted on the other half)")
    record["method"] = chosen
    if chosen == "none":
        return None, record
    cmap = CALIBRATION_MAPS[chosen]()
    cmap.fit(z, y)
    record["params"] = cmap.to_dict()
    return cmap.to_dict(), record
