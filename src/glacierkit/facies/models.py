"""Facies classifiers on point labels: a spectral baseline (scikit-learn) and the patch CNN.

Both share one small interface so that cross-validation, confident learning and the
pipeline treat them alike::

    clf = make_classifier(spec, n_classes=K, ...)
    clf.fit(X, y, sample_weight)          # X (N, F) spectra or (N, C, P, P) patches
    logits = clf.predict_logits(X)        # (N, K) float32; softmax = class probabilities

``y`` holds *model class* indices ``0 … K − 1`` (the pipeline maps facies indices onto them);
a class missing from one training fold gets probability 0 from the sklearn models and simply
a low logit from the network.

* :class:`SpectralBaseline` — ``HistGradientBoostingClassifier`` (``kind="hgb"``, default) or
  ``MLPClassifier`` (``"mlp"``) on per-pixel band values (patches are reduced to their centre
  pixel). Sample weights are passed to the estimator (HGB) or realised by weighted
  resampling (MLP, which takes no weights).
* :class:`PatchNet` — :class:`glacierkit.dl.models.facies_cnn.FaciesCNN` trained with
  :func:`glacierkit.dl.train.fit` (Lightning, focal loss with optional label smoothing) on
  patches whose centre carries the label. Per-channel normalisation is fitted on the training
  patches; sample weights are realised by weighted resampling of every epoch (seeded by
  ``(seed, epoch)``). ``size="pixel"`` is the per-pixel MLP variant for sampled spectra.

Class imbalance: :func:`sample_weights` gives each point ``1 / (n_class × n_scene-class)``
style weights — "class × scene frequency" — normalised to mean 1.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from glacierkit.errors import InputError

log = logging.getLogger(__name__)

__all__ = ["PatchNet", "SpectralBaseline", "bundle_logits", "make_classifier",
           "patchnet_bundle",
           "sample_weights"]


def sample_weights(targets: np.ndarray, scenes: np.ndarray | None = None, *,
                   mode: str = "class_scene", clip: float = 20.0) -> np.ndarray:
    """Per-point weights against class (and scene) imbalance, mean 1.

    Args:
        targets: ``(N,)`` class indices.
        scenes: ``(N,)`` scene identifiers (for ``"class_scene"``).
        mode: ``"none"`` (all 1); ``"class"``: ``w ∝ 1 / n_c`` (each class weighs the same);
            ``"class_scene"``: ``w ∝ 1 / (m_c · n_{s,c})`` with ``m_c`` the number of scenes
            holding class ``c`` and ``n_{s,c}`` its points in scene ``s`` — each class weighs
            the same and, within a class, each scene contributing to it weighs the same (a
            scene with thousands of snow points does not drown the others).
        clip: Upper bound of a weight relative to the mean (before renormalising).
    """
    t = np.asarray(targets)
    n = t.size
    if mode == "none":
        return np.ones(n)
    if mode not in ("class", "class_scene"):
        raise InputError(f"class weighting must be 'none', 'class' or 'class_scene'; got "
                         f"{mode!r}.")
    _, inv_c, cnt_c = np.unique(t, return_inverse=True, return_counts=True)
    w = 1.0 / cnt_c[inv_c]
    if mode == "class_scene":
        if scenes is None:
            raise InputError("class_scene weighting needs the scene of every point.")
        s = np.asarray(scenes).astype(str)
        if s.shape != t.shape:
            raise InputError(f"class_scene weighting needs one scene per point: {t.size} "
                             f"targets but scenes of shape {s.shape}.")
        key = np.char.add(np.char.add(s, "|"), t.astype(str))
        _, inv_sc, cnt_sc = np.unique(key, return_inverse=True, return_counts=True)
        # class c with cells (scene, c): each class totals 1, each of its cells 1 / n_cells
        cells = np.zeros(cnt_c.size)
        np.add.at(cells, inv_c[np.unique(inv_sc, return_index=True)[1]], 1.0)
        w = 1.0 / (cells[inv_c] * cnt_sc[inv_sc])
    w = w / w.mean()
    w = np.minimum(w, clip)
    return w / w.mean()


def _centre_pixels(X: np.ndarray) -> np.ndarray:
    """``(N, F)`` from spectra ``(N, F)`` or the centre pixel of patches ``(N, C, P, P)``."""
    X = np.asarray(X, dtype=np.float32)
    if X.ndim == 2:
        return X
    if X.ndim == 4:
        return X[:, :, X.shape[2] // 2, X.shape[3] // 2]
    raise InputError(f"features must be (N, F) spectra or (N, C, P, P) patches; got "
                     f"{X.shape}.")


def _resample(weights: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    p = np.asarray(weights, dtype=np.float64)
    return rng.choice(p.size, size=n, replace=True, p=p / p.sum())


@dataclass
class SpectralBaseline:
    """Per-pixel spectral classifier (scikit-learn).

    Args:
        n_classes: ``K``; ``predict_logits`` returns ``(N, K)``.
        kind: ``"hgb"`` (gradient boosting) or ``"mlp"``.
        seed: Random state.
        params: Extra estimator parameters.
    """

    n_classes: int
    kind: str = "hgb"
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    estimator: Any = None

    def fit(self, X: np.ndarray, y: np.ndarray,
            sample_weight: np.ndarray | None = None) -> SpectralBaseline:
        """Fit on ``X`` (spectra or patches: centre pixels) and model-class labels ``y``."""
        F = _centre_pixels(X)
        y = np.asarray(y, dtype=np.int64)
        if self.kind == "hgb":
            from sklearn.ensemble import HistGradientBoostingClassifier

            est = HistGradientBoostingClassifier(
                **{"max_iter": 100, "learning_rate": 0.1, "random_state": self.seed,
                   "early_stopping": False, **self.params})
            est.fit(F, y, sample_weight=sample_weight)
        elif self.kind == "mlp":
            from sklearn.neural_network import MLPClassifier
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import StandardScaler

            if sample_weight is not None:
                idx = _resample(sample_weight, y.size, np.random.default_rng(self.seed))
                F, y = F[idx], y[idx]
            est = make_pipeline(StandardScaler(), MLPClassifier(
                **{"hidden_layer_sizes": (64, 64), "max_iter": 300, "random_state": self.seed,
                   **self.params}))
            est.fit(F, y)
        else:
            raise InputError(f"spectral baseline kind must be 'hgb' or 'mlp'; got "
                             f"{self.kind!r}.")
        self.estimator = est
        return self

    def predict_logits(self, X: np.ndarray) -> np.ndarray:
        """``(N, K)`` float32 log-probabilities (``-30`` for classes unseen in training)."""
        if self.estimator is None:
            raise InputError("fit the baseline before predicting.")
        proba = self.estimator.predict_proba(_centre_pixels(X))
        classes = np.asarray(self.estimator.classes_, dtype=np.int64)
        full = np.zeros((proba.shape[0], self.n_classes))
        full[:, classes] = proba
        return np.log(np.clip(full, 1e-13, None)).astype(np.float32)


class _PointDataset:
    """Torch dataset of labelled patches (centre label), weighted resampling per epoch.

    An epoch draws ``len(y)`` samples, or one more when ``len(y) % batch_size == 1``: the
    network's last layer has a 1 × 1 output per patch, and BatchNorm cannot train on a batch
    of one (the extra sample is a seeded random repeat).
    """

    def __init__(self, X: np.ndarray, y: np.ndarray, n_groups: int,
                 weights: np.ndarray | None, seed: int, augment: bool,
                 batch_size: int = 0) -> None:
        import torch

        self.torch = torch
        self.X = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
        self.y = torch.from_numpy(np.asarray(y, dtype=np.int64))
        self.present = torch.ones(n_groups)
        self.cond = torch.zeros(0)
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64)
        self.seed = int(seed)
        self.augment = augment and X.shape[-1] > 1
        n = len(self.y)
        self.n_draw = n + 1 if batch_size > 1 and n % batch_size == 1 else n
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        rng = np.random.default_rng([self.seed, self.epoch])
        n = len(self.y)
        if self.weights is not None:
            self.index = _resample(self.weights, self.n_draw, rng)
        else:
            self.index = np.concatenate([np.arange(n),
                                         rng.integers(0, n, size=self.n_draw - n)])
        self.ops = rng.integers(0, 8, size=self.n_draw) if self.augment else None

    def __len__(self) -> int:
        return self.n_draw

    def __getitem__(self, i: int) -> dict[str, Any]:
        j = int(self.index[i])
        x = self.X[j]
        if self.ops is not None:
            op = int(self.ops[i])
            if op & 4:
                x = x.flip(-1)
            x = self.torch.rot90(x, op & 3, dims=(-2, -1))
        return {"x": x, "present": self.present, "cond": self.cond,
                "y": self.y[j].reshape(1, 1)}


@dataclass
class PatchNet:
    """The compact patch CNN (or per-pixel network) trained on centre-labelled patches.

    Args:
        n_classes: ``K``.
        group_channels: Channels per source group (spectra: one group with ``F`` channels).
        size: FaciesCNN preset (``"tiny"`` rf 33 px, ``"small"``, ``"base"``, ``"pixel"``).
        epochs, batch_size, lr, weight_decay, focal_gamma, label_smoothing, dropout, seed:
            training settings (:class:`glacierkit.dl.train.TrainConfig`).
        augment: Random flips / 90° rotations of the patches.
        accelerator: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        overrides: FaciesCNN hyper-parameters replacing the preset (``widths``,
            ``dilations``, ``kernel``).

    After :meth:`fit`: ``model``, ``norm``, ``history`` and ``train_channels`` (a ``(C, n)``
    sample, at most 200 000 pixels, of the training inputs in channel units, for the
    training-domain record of :func:`patchnet_bundle`).
    """

    n_classes: int
    group_channels: Sequence[int]
    size: str = "tiny"
    epochs: int = 8
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    focal_gamma: float = 1.0
    label_smoothing: float = 0.05
    dropout: float = 0.1
    seed: int = 0
    augment: bool = True
    accelerator: str = "auto"
    overrides: dict[str, Any] = field(default_factory=dict)
    model: Any = None
    norm: Any = None
    history: list[dict[str, float]] = field(default_factory=list)
    train_channels: Any = None  # (C, n) sample of the training inputs, channel units

    def _as_patches(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim == 2:
            X = X[:, :, None, None]
        if X.ndim != 4 or X.shape[2] != X.shape[3]:
            raise InputError(f"PatchNet needs (N, F) spectra or square (N, C, P, P) patches; "
                             f"got {X.shape}.")
        if X.shape[1] != sum(self.group_channels):
            raise InputError(f"features have {X.shape[1]} channels; the network was built "
                             f"for {sum(self.group_channels)} ({list(self.group_channels)}).")
        return X

    def build(self) -> Any:
        """A fresh (seeded) FaciesCNN."""
        import torch

        from glacierkit.dl.models import build_model

        torch.manual_seed(self.seed)
        return build_model("facies_cnn", group_channels=self.group_channels,
                           n_classes=self.n_classes, size=self.size, dropout=self.dropout,
                           **self.overrides)

    def _crop(self, X: np.ndarray, rf: int) -> np.ndarray:
        p = X.shape[-1]
        if p < rf:
            raise InputError(f"patches of {p} px are smaller than the network's receptive "
                             f"field ({rf} px); cut patches of at least {rf} px or choose a "
                             f"smaller network.")
        c = (p - rf) // 2
        return X[:, :, c:c + rf, c:c + rf]

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None, *,
            out_dir: str | None = None, progress: bool = False) -> PatchNet:
        """Train on patches/spectra ``X`` and model-class labels ``y`` ``(N,)``."""
        from glacierkit.dl.sources import NormStats
        from glacierkit.dl.train import TrainConfig, fit

        X = self._as_patches(X)
        y = np.asarray(y, dtype=np.int64)
        if y.size != X.shape[0] or y.size < 2:
            raise InputError(f"need at least 2 labelled samples with one label each; got "
                             f"{X.shape[0]} samples and {y.size} labels.")
        model = self.build()
        X = self._crop(X, model.receptive_field)
        self.norm = NormStats.fit([X.transpose(1, 0, 2, 3).reshape(X.shape[1], X.shape[0], -1)])
        flat = X.transpose(1, 0, 2, 3).reshape(X.shape[1], -1)
        step = max(1, flat.shape[1] // 200_000)
        self.train_channels = np.ascontiguousarray(flat[:, ::step])  # for the domain record
        Xn = self.norm.apply(X)
        ds = _PointDataset(Xn, y, len(self.group_channels), sample_weight, self.seed,
                           self.augment, batch_size=self.batch_size)
        cfg = TrainConfig(arch="facies_cnn", size=self.size, dropout=self.dropout,
                          n_classes=self.n_classes, epochs=self.epochs,
                          batch_size=self.batch_size, lr=self.lr,
                          weight_decay=self.weight_decay, restart_epochs=self.epochs,
                          focal_gamma=self.focal_gamma, label_smoothing=self.label_smoothing,
                          aux_weights=(), seed=self.seed, accelerator=self.accelerator,
                          progress=progress)
        model.valid_padding = True
        # Cross-validation fits this network once per fold: the per-epoch lines of
        # glacierkit.dl.train (and its temporary checkpoint folder) only with DEBUG logging;
        # one line per fit here instead.
        train_log = logging.getLogger("glacierkit.dl.train")
        old_level = train_log.level
        if not train_log.isEnabledFor(logging.DEBUG):
            train_log.setLevel(logging.WARNING)
        try:
            with tempfile.TemporaryDirectory(prefix="glacierkit-facies-") as tmp:
                res = fit(model, ds, None, cfg, out_dir=out_dir or tmp, overwrite=True)
        finally:
            model.valid_padding = False
            train_log.setLevel(old_level)
        last = res.history[-1] if res.history else {}
        log.info("patch CNN (%s) trained on %d samples: %d epoch(s), final train loss %.4g, "
                 "%.1f s", self.size, y.size, res.epochs, last.get("train_loss", float("nan")),
                 res.wall_time_s)
        self.model = res.model.eval()
        self.history = res.history
        return self

    def predict_logits(self, X: np.ndarray, *, batch_size: int = 1024) -> np.ndarray:
        """``(N, K)`` float32 logits of the centre pixels."""
        import torch

        from glacierkit.dl.models.facies_cnn import center_logits

        if self.model is None:
            raise InputError("fit the network before predicting.")
        X = self._crop(self._as_patches(X), self.model.receptive_field)
        Xn = self.norm.apply(X)
        out = []
        with torch.inference_mode():
            for i in range(0, Xn.shape[0], batch_size):
                out.append(center_logits(self.model, torch.from_numpy(Xn[i:i + batch_size]))
                           .float().numpy())
        return np.concatenate(out).astype(np.float32)


def patchnet_bundle(net: PatchNet, *, layout: Any, classes: Sequence[str],
                    vocabulary: Mapping[str, Any] | None = None,
                    calibration: Mapping[str, Any] | None = None,
                    training: Mapping[str, Any] | None = None, onnx: bool = True,
                    tile_size: int = 512, domain: Mapping[str, Any] | None = None) -> Any:
    """A model file (:class:`glacierkit.dl.bundle.ModelBundle`) for a trained :class:`PatchNet`.

    Args:
        net: The trained network.
        layout: The :class:`glacierkit.dl.sources.SourceLayout` of the scenes (its channels
            are the network's input channels, in order).
        classes: The ``K`` model class names (facies).
        vocabulary: ``Vocabulary.to_dict()`` stored in ``training["vocabulary"]``.
        calibration: A calibration map's ``to_dict()`` (fitted on out-of-fold logits).
        training: Extra training record.
        onnx: Export the dense network to ONNX (for ONNX Runtime inference on the CPU).
        tile_size: Recommended tile size; the overlap is the receptive field's half-width
            rounded up to 8 px, so that every pixel sees a full receptive field once.
        domain: The training domain (:func:`glacierkit.dl.domain.domain_from_channels`);
            default: computed from the patches or spectra the network was fitted on
            (``net.domain``), with unknown source dtypes.
    """
    from glacierkit.dl.bundle import bundle_from_model

    if net.model is None or net.norm is None:
        raise InputError("train the network before building a model file.")
    if layout.n_channels != sum(net.group_channels):
        raise InputError(f"the layout has {layout.n_channels} channels {list(layout.names)} "
                         f"but the network {sum(net.group_channels)}.")
    norm = dataclasses.replace(net.norm, names=tuple(layout.names))
    rf = int(net.model.receptive_field)
    overlap = max(8, -(-(rf // 2 + 1) // 8) * 8)
    onnx_bytes = None
    model = net.model.eval()
    model.valid_padding = False
    if onnx:
        from glacierkit.dl.export import export_onnx

        onnx_bytes = export_onnx(model, group_channels=net.group_channels, cond_dim=0,
                                 example_size=(max(64, rf + 1), max(64, rf + 1)))
    record = {**dict(training or {}), "task": "facies", "vocabulary": dict(vocabulary or {}),
              "receptive_field_px": rf}
    if domain is None and net.train_channels is not None:
        from glacierkit.dl.domain import domain_from_channels

        domain = domain_from_channels(layout, [net.train_channels],
                                      source="the network's training samples")
    return bundle_from_model(model, layout=layout.to_dict(), norm=norm.to_dict(),
                             classes=[str(c) for c in classes], calibration=calibration,
                             tile={"size": int(tile_size), "overlap": overlap},
                             training=record, onnx_bytes=onnx_bytes, task="facies",
                             domain=domain)


def bundle_logits(bundle: Any, X: np.ndarray, *, batch_size: int = 4096,
                  threads: int | None = None) -> np.ndarray:
    """Logits ``(N, K)`` of a facies model file for spectra or patches, with ONNX Runtime.

    No torch needed. ``X`` is ``(N, F)`` sampled spectra in the band order of the model's
    layout (``F`` = its channels) or ``(N, C, P, P)`` patches with ``P >=`` the receptive
    field; the network runs densely and the centre pixel is taken. The model file's
    normalisation is applied (NaN → 0, the training mean).

    Raises:
        InputError: the model file has no ONNX graph, or the channel count differs.
    """
    from glacierkit.dl.predict import _OnnxRunner
    from glacierkit.dl.sources import NormStats

    onnx_bytes = bundle.onnx_bytes()
    if not onnx_bytes:
        raise InputError("this model file has no ONNX graph; re-export it (patchnet_bundle "
                         "with onnx=True).")
    X = np.asarray(X, dtype=np.float32)
    if X.ndim == 2:
        X = X[:, :, None, None]
    norm = NormStats.from_dict(bundle.norm)
    c = norm.n_channels
    if X.ndim != 4 or X.shape[1] != c:
        raise InputError(f"features have shape {X.shape}; the model expects (N, {c}) "
                         f"spectra or (N, {c}, P, P) patches (channels {norm.names}).")
    run = _OnnxRunner(onnx_bytes, threads=threads)
    n_groups = len(bundle.layout["groups"])
    out = []
    for i in range(0, X.shape[0], batch_size):
        x = norm.apply(X[i:i + batch_size])
        present = np.ones((x.shape[0], n_groups), dtype=np.float32)
        z = np.asarray(run({"x": x, "present": present}))
        out.append(z[:, :, z.shape[2] // 2, z.shape[3] // 2])
    return np.concatenate(out).astype(np.float32)


def make_classifier(spec: Mapping[str, Any], *, n_classes: int,
                    group_channels: Sequence[int], seed: int = 0
                    ) -> SpectralBaseline | PatchNet:
    """A classifier from a config mapping ``{"model": "hgb" | "mlp" | "cnn", ...}``.

    ``"hgb"`` / ``"mlp"``: :class:`SpectralBaseline` (extra keys → estimator params);
    ``"cnn"``: :class:`PatchNet` (keys = its fields: ``size``, ``epochs``, ``batch_size``, …).
    """
    spec = dict(spec)
    kind = str(spec.pop("model", "hgb"))
    if kind in ("hgb", "mlp"):
        return SpectralBaseline(n_classes=n_classes, kind=kind, seed=seed, params=spec)
    if kind == "cnn":
        known = {"size", "epochs", "batch_size", "lr", "weight_decay", "focal_gamma",
                 "label_smoothing", "dropout", "augment", "accelerator", "overrides"}
        unknown = set(spec) - known
        if unknown:
            raise InputError(f"unknown cnn setting(s) {sorted(unknown)}; valid: "
                             f"{sorted(known)}.")
        return PatchNet(n_classes=n_classes, group_channels=tuple(group_channels), seed=seed,
                        **spec)
    raise InputError(f"unknown facies model {kind!r}; choose 'hgb', 'mlp' (spectral "
                     f"baselines) or 'cnn' (patch network).")
