"""Training of segmentation models with Lightning: config, task, ``fit`` with checkpoints/resume.

* :class:`TrainConfig` — every training setting (model, schedule, loss, hardware), JSON
  round-trippable with :meth:`TrainConfig.to_dict` / :meth:`TrainConfig.from_dict`.
* :class:`SegmentationTask` — a :class:`lightning.LightningModule` around any model obeying the
  model contract of ``docs/design/dl.md``: deep-supervision focal loss for training, a confusion
  matrix for validation (``val_loss``, ``val_iou``, ``val_f1``, ``val_accuracy``), AdamW with
  cosine warm restarts.
* :func:`fit` — train with checkpoints in ``out_dir/checkpoints`` (``last.ckpt`` always, the best
  epoch by validation IoU as ``best-….ckpt``) and resume from ``last.ckpt``.
* :func:`evaluate` — scores of a model on a labelled patch dataset.
* :func:`predict_logits` — per-pixel logits and labels of the non-ignored pixels of a labelled
  dataset (sub-sampled), to fit a calibration map (temperature, isotonic).

Batches are the dicts of :class:`glacierkit.dl.data.PatchDataset`: ``x`` ``(B, C, P, P)``
float32, ``present`` ``(B, G)`` float32, ``cond`` ``(B, cond_dim)`` float32 (``(B, 0)`` when the
model is unconditioned), ``y`` ``(B, P, P)`` int64 with 255 = ignore.

Reproducibility: seeds go through :func:`lightning.seed_everything`; the shuffling order of
every epoch is a function of ``(seed, epoch)`` only and the torch generator is re-seeded from
``(seed, global step)`` before every training step, so a run resumed from an end-of-epoch
``last.ckpt`` continues exactly as the uninterrupted run would have (on CPU, or on CUDA with
``deterministic=True``), provided the dataset derives its own randomness (patch positions,
augmentations) from ``set_epoch(epoch)`` and the sample index, as ``PatchDataset`` does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import signal
import threading
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from glacierkit.dl.losses import FocalLoss, deep_supervision_loss
from glacierkit.errors import DatasetNotFoundError, InputError, OutputExistsError
from glacierkit.metrics.segmentation import ConfusionMatrix

log = logging.getLogger(__name__)

IGNORE_INDEX = 255
"""Label value excluded from the loss and the scores."""

CHECKPOINT_DIR = "checkpoints"
"""Sub-folder of ``out_dir`` holding the Lightning checkpoints."""

LAST_CHECKPOINT = "last.ckpt"
"""File name of the checkpoint that is always refreshed (the one ``resume="auto"`` uses)."""

ACCELERATORS = ("auto", "cpu", "cuda")
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")
MONITORS = ("val_iou", "val_loss")

Resume = bool | Literal["auto"] | str | Path


# ---------------------------------------------------------------------------------- config
@dataclass
class TrainConfig:
    """Settings of one training run.

    Attributes:
        arch: Model architecture for :func:`glacierkit.dl.models.build_model` (``"glavitu"`` or
            ``"resunet"``); used by the strategies, which build the models.
        size: Model size preset (``"tiny"``, ``"small"``, ``"base"``).
        dropout: Dropout probability of the model.
        overrides: Extra keyword arguments for ``build_model`` (width/depth overrides).
        n_classes: Number of classes ``K`` (2: off-glacier / glacier).
        epochs: Number of epochs (passes over the training dataset's ``len()`` samples).
        max_steps: Optional cap on optimizer steps; training stops at whichever of ``epochs``
            and ``max_steps`` comes first.
        batch_size: Patches per batch.
        lr: Peak learning rate of AdamW.
        weight_decay: AdamW decoupled weight decay.
        restart_epochs: ``T_0`` of :class:`torch.optim.lr_scheduler.CosineAnnealingWarmRestarts`,
            in **epochs**; the scheduler is stepped every optimizer step (``T_0`` is converted
            to ``restart_epochs × steps_per_epoch`` steps), so the learning rate follows a
            smooth cosine within an epoch.
        restart_mult: ``T_mult`` (each period is ``restart_mult`` times longer than the last).
        min_lr: ``eta_min``, the learning rate at the bottom of each cosine period.
        focal_gamma: Focusing parameter γ of the focal loss (0 = cross-entropy).
        label_smoothing: ε of the focal loss's label smoothing (0 = off; see
            :class:`glacierkit.dl.losses.FocalLoss`), e.g. for facies with fuzzy boundaries.
        class_weights: Per-class weights α of the focal loss (``K`` values), ``"auto"`` to
            derive them from the label frequencies of (up to 256) training samples
            (inverse frequency, normalised to mean 1, clipped to ``[0.1, 10]``), or None.
        aux_weights: Weights of the auxiliary (deep-supervision) outputs relative to the main
            output, first = finest.
        grad_clip: Gradient-norm clipping threshold (None: no clipping).
        p_unknown: Region-encoding only: probability that a training sample's region one-hot
            is replaced by the "unknown" slot (the last one) so that the model also works for
            unseen regions. Must stay 0 for other conditionings.
        seed: Global seed (weights initialisation is up to the caller; shuffling, dropout).
        accelerator: ``"auto"`` (CUDA when ``torch.cuda.is_available()``, else CPU), ``"cpu"``
            or ``"cuda"``.
        precision: Lightning precision: ``"32-true"``, ``"bf16-mixed"`` or ``"16-mixed"``
            (CUDA only).
        num_workers: DataLoader worker processes (0: load in the main process).
        checkpoint_every: Also refresh ``last.ckpt`` every this many optimizer steps (None:
            only at the end of each epoch). Resuming from such a mid-epoch checkpoint continues
            at the right step and skips the batches already seen in that epoch.
        patience: Early stopping after this many validations without improvement of
            ``monitor`` (None: off; needs a validation dataset).
        monitor: Metric for early stopping: ``"val_iou"`` (higher is better) or
            ``"val_loss"``. The best checkpoint is always chosen by ``val_iou``.
        progress: Show a progress bar of the steps of each epoch when stderr is a terminal
            (else, and with the bar off, one log line per epoch). Lightning's own messages
            and model summary are only logged at DEBUG level (``glacierkit --verbose``).
        deterministic: Ask torch for deterministic algorithms (``Trainer(deterministic=True)``;
            on CUDA ``"warn"``, since bilinear upsampling has no deterministic backward
            kernel there). The process-wide torch flags are restored after :func:`fit`.
    """

    arch: str = "glavitu"
    size: str = "tiny"
    dropout: float = 0.1
    overrides: dict[str, Any] = field(default_factory=dict)
    n_classes: int = 2
    epochs: int = 8
    max_steps: int | None = None
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    restart_epochs: int = 4
    restart_mult: int = 2
    min_lr: float = 1e-6
    focal_gamma: float = 2.0
    label_smoothing: float = 0.0
    class_weights: list[float] | Literal["auto"] | None = None
    aux_weights: tuple[float, ...] = (0.5, 0.25)
    grad_clip: float | None = 1.0
    p_unknown: float = 0.0
    seed: int = 0
    accelerator: str = "auto"
    precision: str = "32-true"
    num_workers: int = 0
    checkpoint_every: int | None = None
    patience: int | None = None
    monitor: str = "val_iou"
    progress: bool = True
    deterministic: bool = False

    def __post_init__(self) -> None:
        self.aux_weights = tuple(float(w) for w in self.aux_weights)
        if isinstance(self.class_weights, tuple):
            self.class_weights = list(self.class_weights)
        self.validate()

    def validate(self) -> None:
        """Check ranges and choices; raises :class:`~glacierkit.errors.InputError`."""
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise InputError(msg)

        need(self.n_classes >= 2, f"n_classes must be >= 2; got {self.n_classes}.")
        need(self.epochs >= 1, f"epochs must be >= 1; got {self.epochs}.")
        need(self.max_steps is None or self.max_steps >= 1,
             f"max_steps must be None or >= 1; got {self.max_steps}.")
        need(self.batch_size >= 1, f"batch_size must be >= 1; got {self.batch_size}.")
        need(self.lr > 0 and self.weight_decay >= 0 and self.min_lr >= 0,
             f"need lr > 0, weight_decay >= 0, min_lr >= 0; got lr={self.lr}, "
             f"weight_decay={self.weight_decay}, min_lr={self.min_lr}.")
        need(self.restart_epochs >= 1 and self.restart_mult >= 1,
             f"restart_epochs and restart_mult must be integers >= 1; got "
             f"{self.restart_epochs}, {self.restart_mult}.")
        need(self.focal_gamma >= 0, f"focal_gamma must be >= 0; got {self.focal_gamma}.")
        need(0.0 <= self.label_smoothing < 1.0,
             f"label_smoothing must be in [0, 1); got {self.label_smoothing}.")
        need(all(w >= 0 for w in self.aux_weights),
             f"aux_weights must be >= 0; got {self.aux_weights}.")
        need(self.grad_clip is None or self.grad_clip > 0,
             f"grad_clip must be None or > 0; got {self.grad_clip}.")
        need(0.0 <= self.p_unknown < 1.0, f"p_unknown must be in [0, 1); got {self.p_unknown}.")
        cw = self.class_weights
        need(cw is None or cw == "auto" or (isinstance(cw, list) and len(cw) == self.n_classes
                                            and all(float(w) >= 0 for w in cw)),
             f"class_weights must be None, 'auto' or {self.n_classes} non-negative numbers "
             f"(one per class); got {cw!r}.")
        need(self.accelerator in ACCELERATORS,
             f"accelerator={self.accelerator!r} is not one of {list(ACCELERATORS)}.")
        need(self.precision in PRECISIONS,
             f"precision={self.precision!r} is not one of {list(PRECISIONS)}.")
        need(self.num_workers >= 0, f"num_workers must be >= 0; got {self.num_workers}.")
        need(self.checkpoint_every is None or self.checkpoint_every >= 1,
             f"checkpoint_every must be None or >= 1 (steps); got {self.checkpoint_every}.")
        need(self.patience is None or self.patience >= 1,
             f"patience must be None or >= 1 (validations); got {self.patience}.")
        need(self.monitor in MONITORS, f"monitor={self.monitor!r} is not one of {list(MONITORS)}.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (tuples as lists)."""
        d = dataclasses.asdict(self)
        d["aux_weights"] = list(self.aux_weights)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build a config from :meth:`to_dict` output; unknown keys raise ``InputError``."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InputError(f"unknown TrainConfig key(s) {sorted(unknown)}; valid keys: "
                             f"{sorted(known)}.")
        return cls(**dict(data))

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)


def resolve_accelerator(accelerator: str) -> str:
    """``"auto"`` → ``"cuda"`` when available else ``"cpu"``; checks that CUDA exists if asked."""
    if accelerator not in ACCELERATORS:
        raise InputError(f"accelerator={accelerator!r} is not one of {list(ACCELERATORS)}.")
    if accelerator == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if accelerator == "cuda" and not torch.cuda.is_available():
        raise InputError("accelerator='cuda' but torch sees no CUDA device "
                         "(torch.cuda.is_available() is False); use accelerator='cpu' or "
                         "'auto', or install a CUDA build of torch.")
    return accelerator


# ---------------------------------------------------------------------------------- helpers
def _unpack(batch: Mapping[str, Any], model: nn.Module
            ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """``(model inputs by name, y or None)`` of a batch dict (see ``docs/design/dl.md``)."""
    from glacierkit.dl.models import model_inputs

    inputs = dict(batch)
    cond = inputs.get("cond")
    if cond is not None and (int(getattr(model, "cond_dim", 0)) == 0 or cond.shape[-1] == 0):
        inputs["cond"] = None
    return model_inputs(model, inputs), batch.get("y")


def _forward_aux(model: nn.Module, inputs: Mapping[str, torch.Tensor]
                 ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Main and auxiliary logits; a model without ``forward_aux`` has no auxiliary outputs."""
    from glacierkit.dl.models import call_model

    return call_model(model, inputs, aux=True)


def _batch_size(inputs: Mapping[str, torch.Tensor]) -> int:
    return int(next(iter(inputs.values())).shape[0])


def _confusion_counts(logits: torch.Tensor, y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """``(K, K)`` int64 counts (rows reference, columns prediction) of the non-ignored pixels."""
    pred = logits.argmax(dim=1)
    valid = y != IGNORE_INDEX
    idx = y[valid].long() * n_classes + pred[valid].long()
    return torch.bincount(idx, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def scores_from_matrix(matrix: np.ndarray) -> dict[str, float]:
    """Headline scores of a ``(K, K)`` confusion matrix (rows reference, columns prediction).

    Returns:
        ``iou`` and ``f1``: of the glacier class 1 when ``K == 2``, else the mean over the
        classes where they are defined; ``miou`` (mean IoU over defined classes), ``accuracy``
        (overall), ``n`` (pixels counted). Undefined scores are NaN (see
        :mod:`glacierkit.metrics.segmentation`).
    """
    cm = ConfusionMatrix(int(matrix.shape[0]))
    cm.matrix += np.asarray(matrix, dtype=np.int64)
    pc = cm.per_class()
    iou, f1 = pc["iou"], pc["f1"]

    def nanmean(a: np.ndarray) -> float:
        return float(np.mean(a[~np.isnan(a)])) if np.any(~np.isnan(a)) else float("nan")

    if cm.n_classes == 2:
        b = cm.binary(1)
        head_iou, head_f1 = b["iou"], b["f1"]
    else:
        head_iou, head_f1 = nanmean(iou), nanmean(f1)
    return {"iou": head_iou, "f1": head_f1, "miou": nanmean(iou),
            "accuracy": cm.overall_accuracy(), "n": float(cm.total)}


def _replace_with_unknown(cond: torch.Tensor, p: float) -> torch.Tensor:
    """Region one-hots ``(B, R+1)`` with each row set to the "unknown" slot with probability p."""
    drop = torch.rand(cond.shape[0], device=cond.device) < p
    if not bool(drop.any()):
        return cond
    unknown = torch.zeros_like(cond)
    unknown[:, -1] = 1.0
    return torch.where(drop[:, None], unknown, cond)


def _set_epoch(ds: Any, epoch: int) -> None:
    """Call ``set_epoch(epoch)`` on a dataset and on the datasets it wraps (concat, subset)."""
    if hasattr(ds, "set_epoch"):
        ds.set_epoch(epoch)
    for inner in getattr(ds, "datasets", ()) or ():
        _set_epoch(inner, epoch)
    if hasattr(ds, "dataset"):
        _set_epoch(ds.dataset, epoch)


def _step_seed(seed: int, step: int) -> int:
    """Seed of the torch generator before optimizer step ``step`` (a function of both only)."""
    return (int(seed) * 1_000_003 + int(step) * 7_919 + 12_345) % (2**63 - 1)


class EpochSampler(Sampler[int]):
    """Shuffled sample order that depends on ``(seed, epoch)`` only.

    Lightning calls :meth:`set_epoch` before every epoch. :meth:`skip_once` drops the first
    indices of one epoch (the batches already trained on before a mid-epoch checkpoint).
    """

    def __init__(self, n: int, seed: int, *, shuffle: bool = True) -> None:
        self.n = int(n)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.epoch = 0
        self._skip: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order :meth:`__iter__` yields."""
        self.epoch = int(epoch)

    def skip_once(self, epoch: int, n_indices: int) -> None:
        """Leave out the first ``n_indices`` indices the next time epoch ``epoch`` is iterated."""
        self._skip = (int(epoch), int(n_indices))

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(_step_seed(self.seed, 10**9 + self.epoch))
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        start = 0
        if self._skip is not None and self._skip[0] == self.epoch:
            start = min(self._skip[1], self.n)
            self._skip = None
        yield from order[start:]


def estimate_class_weights(dataset: Dataset, n_classes: int, *, max_samples: int = 256,
                           clip: tuple[float, float] = (0.1, 10.0)) -> list[float]:
    """Inverse-frequency class weights from the labels of up to ``max_samples`` samples.

    The samples are evenly spaced over the dataset. Weight ``w_c ∝ 1 / f_c`` (``f_c`` the
    share of labelled pixels in class ``c``), normalised to mean 1 and clipped to ``clip``; a
    class that never occurs gets the upper clip.

    Raises:
        InputError: the dataset has no samples or no labelled pixel.
    """
    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        raise InputError("cannot estimate class weights from an empty dataset.")
    counts = np.zeros(n_classes, dtype=np.float64)
    for i in np.unique(np.linspace(0, n - 1, min(n, max_samples)).round().astype(int)):
        y = np.asarray(dataset[int(i)]["y"]).ravel()
        y = y[y != IGNORE_INDEX]
        counts += np.bincount(y.astype(np.int64), minlength=n_classes)[:n_classes]
    if counts.sum() == 0:
        raise InputError("the training labels have no labelled pixel (all 255); check the "
                         "label rasters / outlines and the split.")
    freq = counts / counts.sum()
    with np.errstate(divide="ignore"):
        w = np.where(freq > 0, 1.0 / np.maximum(freq, 1e-12), np.inf)
    finite = np.isfinite(w)
    w[finite] = w[finite] / w[finite].mean()
    w = np.clip(w, *clip)
    return [float(v) for v in w]


# ---------------------------------------------------------------------------------- task
class SegmentationTask(L.LightningModule):
    """Lightning wrapper of a segmentation model (model contract of ``docs/design/dl.md``).

    Training step: deep-supervision focal loss (main + weighted auxiliary outputs), logged as
    ``train_loss``. Validation: focal loss of the main output (``val_loss``) and a confusion
    matrix over the non-ignored pixels giving ``val_iou``, ``val_f1``, ``val_miou``,
    ``val_accuracy`` (see :func:`scores_from_matrix`). Optimiser: AdamW with
    ``CosineAnnealingWarmRestarts`` stepped every optimizer step.

    Args:
        model: The network; ``model(**inputs) -> (B, K, H, W)`` logits with the inputs it
            names (``x, present[, cond]`` or ``series, dates, mask``).
        cfg: The training config.
        steps_per_epoch: Optimizer steps per epoch (converts ``restart_epochs`` to steps).
        class_weights: Per-class focal weights α (``K`` values) or None.

    Attributes:
        history: One dict per finished epoch: ``epoch``, ``step``, ``lr``, ``train_loss`` and,
            with validation, ``val_loss``, ``val_iou``, ``val_f1``, ``val_miou``,
            ``val_accuracy``. Saved in, and restored from, the checkpoints.
    """

    def __init__(self, model: nn.Module, cfg: TrainConfig, *, steps_per_epoch: int,
                 class_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        n_model = int(getattr(model, "n_classes", cfg.n_classes))
        if n_model != cfg.n_classes:
            raise InputError(f"the model predicts {n_model} classes but TrainConfig.n_classes is "
                             f"{cfg.n_classes}; build the model with n_classes={cfg.n_classes}.")
        self.model = model
        self.cfg = cfg
        self.steps_per_epoch = max(1, int(steps_per_epoch))
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]
        self.loss_fn = FocalLoss(gamma=cfg.focal_gamma, alpha=self.class_weights,
                                 ignore_index=IGNORE_INDEX, label_smoothing=cfg.label_smoothing)
        self.history: list[dict[str, float]] = []
        self._cm: torch.Tensor | None = None
        self._val_loss = [0.0, 0]
        self._train_loss = [0.0, 0]

    def forward(self, *args: Any, **inputs: Any) -> torch.Tensor:
        """Logits ``(B, K, H, W)`` of the wrapped model."""
        return self.model(*args, **inputs)

    # -- training
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Re-seed torch from ``(seed, global_step)`` so dropout does not depend on history."""
        torch.manual_seed(_step_seed(self.cfg.seed, self.global_step))

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        """Deep-supervision focal loss of one batch."""
        inputs, y = _unpack(batch, self.model)
        if y is None:
            raise InputError("training batches need labels 'y'; use a labelled PatchDataset.")
        if inputs.get("cond") is not None and self.cfg.p_unknown > 0:
            inputs["cond"] = _replace_with_unknown(inputs["cond"], self.cfg.p_unknown)
        main, aux = _forward_aux(self.model, inputs)
        n = _batch_size(inputs)
        weights = tuple(self.cfg.aux_weights[: len(aux)])
        total, _parts = deep_supervision_loss(main, aux[: len(weights)], y, self.loss_fn,
                                              aux_weights=weights)
        value = float(total.detach())
        if not math.isfinite(value):
            raise InputError(
                f"the training loss became {value} at step {self.global_step}; check the inputs "
                f"for NaN/inf (nodata must be 0 after normalisation) or lower lr ({self.cfg.lr})."
            )
        self._train_loss[0] += value * n
        self._train_loss[1] += n
        self.log("train_loss", total.detach(), prog_bar=True, batch_size=n)
        return total

    def on_train_epoch_start(self) -> None:
        """Reset the running training loss of the epoch."""
        self._train_loss = [0.0, 0]
        self._epoch_t0 = time.perf_counter()

    def on_train_epoch_end(self) -> None:
        """Record the epoch in :attr:`history` when there was no validation."""
        if not self._validated_this_epoch():
            self._record({})

    # -- validation
    def on_validation_epoch_start(self) -> None:
        """Reset the confusion matrix and the loss sum."""
        self._cm = torch.zeros(self.cfg.n_classes, self.cfg.n_classes, dtype=torch.long,
                               device=self.device)
        self._val_loss = [0.0, 0]

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        """Accumulate the confusion matrix and the focal loss of the main output."""
        inputs, y = _unpack(batch, self.model)
        if y is None:
            raise InputError("validation batches need labels 'y'; use a labelled PatchDataset.")
        logits = self.model(**inputs)
        if bool((y != IGNORE_INDEX).any()):
            loss = self.loss_fn(logits, y)
            self._val_loss[0] += float(loss) * _batch_size(inputs)
            self._val_loss[1] += _batch_size(inputs)
        assert self._cm is not None
        self._cm += _confusion_counts(logits.detach(), y, self.cfg.n_classes)

    def on_validation_epoch_end(self) -> None:
        """Log ``val_loss``, ``val_iou``, ``val_f1``, ``val_miou``, ``val_accuracy``."""
        if self._cm is None:
            return
        s = scores_from_matrix(self._cm.cpu().numpy())
        vl = self._val_loss[0] / self._val_loss[1] if self._val_loss[1] else float("nan")
        metrics = {"val_loss": vl, "val_iou": s["iou"], "val_f1": s["f1"],
                   "val_miou": s["miou"], "val_accuracy": s["accuracy"]}
        for k, v in metrics.items():
            self.log(k, v, prog_bar=k in ("val_loss", "val_iou"))
        if not self.trainer.sanity_checking:
            self._record(metrics)
            self._last_val_epoch = self.current_epoch

    def _validated_this_epoch(self) -> bool:
        return getattr(self, "_last_val_epoch", None) == self.current_epoch

    def _record(self, metrics: Mapping[str, float]) -> None:
        tl = self._train_loss[0] / self._train_loss[1] if self._train_loss[1] else float("nan")
        opt = self.trainer.optimizers[0] if self.trainer.optimizers else None
        entry = {"epoch": int(self.current_epoch), "step": int(self.global_step),
                 "lr": float(opt.param_groups[0]["lr"]) if opt is not None else float("nan"),
                 "train_loss": tl, **{k: float(v) for k, v in metrics.items()}}
        self.history = [h for h in self.history if h["epoch"] != entry["epoch"]] + [entry]
        self._log_epoch(entry)

    def _log_epoch(self, entry: Mapping[str, float]) -> None:
        """One line per finished epoch; DEBUG level while a progress bar shows the same."""
        total = self.trainer.max_epochs
        epoch = f"epoch {int(entry['epoch']) + 1}" + (f"/{total}" if total and total > 0 else "")
        parts = [f"train loss {entry['train_loss']:.4g}"]
        if "val_loss" in entry:
            parts.append(f"val loss {entry['val_loss']:.4g}")
        if "val_iou" in entry:
            parts.append(f"val IoU {entry['val_iou']:.3f}")
        t0 = getattr(self, "_epoch_t0", None)
        took = f" ({time.perf_counter() - t0:.1f} s)" if t0 is not None else ""
        level = logging.DEBUG if self.trainer.progress_bar_callback is not None else logging.INFO
        log.log(level, "%s: %s%s", epoch, ", ".join(parts), took)

    # -- optimiser
    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW + CosineAnnealingWarmRestarts (``T_0`` in steps), stepped every step."""
        opt = torch.optim.AdamW(self.model.parameters(), lr=self.cfg.lr,
                                weight_decay=self.cfg.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
            opt, T_0=self.cfg.restart_epochs * self.steps_per_epoch, T_mult=self.cfg.restart_mult,
            eta_min=self.cfg.min_lr)
        return {"optimizer": opt,
                "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}

    # -- checkpoint extras
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the config, the class weights and the history in the checkpoint."""
        checkpoint["glacierkit"] = {"config": self.cfg.to_dict(), "history": list(self.history),
                                    "class_weights": self.class_weights}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the history of the epochs before the checkpoint."""
        extra = checkpoint.get("glacierkit") or {}
        self.history = list(extra.get("history", []))


# ---------------------------------------------------------------------------------- fit
@dataclass
class FitResult:
    """Outcome of :func:`fit`.

    Attributes:
        model: The trained model with the best weights (by ``val_iou``; the last weights
            without validation), on the CPU, in eval mode.
        best_checkpoint: Checkpoint of the best epoch (``last_checkpoint`` without validation).
        last_checkpoint: ``out_dir/checkpoints/last.ckpt``.
        history: One dict per epoch (see :attr:`SegmentationTask.history`), including the
            epochs before a resume.
        steps: Optimizer steps done in total (the global step).
        epochs: Complete epochs done in total (``steps // steps_per_epoch``).
        wall_time_s: Wall-clock seconds of this call.
        best_val_iou: ``val_iou`` of the best epoch (None without validation).
        class_weights: The focal weights α used (None: unweighted).
        resumed_from: Checkpoint training resumed from (None: fresh start).
        stopped_early: Whether early stopping ended training.
    """

    model: nn.Module
    best_checkpoint: Path
    last_checkpoint: Path
    history: list[dict[str, float]]
    steps: int
    epochs: int
    wall_time_s: float
    best_val_iou: float | None = None
    class_weights: list[float] | None = None
    resumed_from: Path | None = None
    stopped_early: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (without the model)."""
        return {"best_checkpoint": str(self.best_checkpoint),
                "last_checkpoint": str(self.last_checkpoint), "history": self.history,
                "steps": self.steps, "epochs": self.epochs, "wall_time_s": self.wall_time_s,
                "best_val_iou": self.best_val_iou, "class_weights": self.class_weights,
                "resumed_from": None if self.resumed_from is None else str(self.resumed_from),
                "stopped_early": self.stopped_early}


class _EpochData(Callback):
    """Tell the training dataset (and its wrapped datasets) which epoch starts."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        _set_epoch(self.dataset, trainer.current_epoch)


def _resolve_resume(resume: Resume, ckpt_dir: Path) -> Path | None:
    last = ckpt_dir / LAST_CHECKPOINT
    if resume is False or resume is None:
        return None
    if resume == "auto":
        if last.is_file():
            return last
        log.info("resume='auto': no %s yet; starting from scratch.", last)
        return None
    path = last if resume is True else Path(resume)
    if not path.is_file():
        raise DatasetNotFoundError(
            f"cannot resume: checkpoint {path} does not exist; use resume='auto' to start from "
            f"scratch when there is none, or resume=False.")
    return path


def _load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt / truncated / foreign file
        raise InputError(f"cannot read checkpoint {path} ({type(e).__name__}: {e}); delete it "
                         f"and resume from another one, or train from scratch "
                         f"(resume=False, overwrite=True).") from e


def _check_compatible(ckpt: Mapping[str, Any], task: SegmentationTask, path: Path) -> None:
    saved = ckpt.get("state_dict", {})
    own = task.state_dict()
    missing = sorted(set(own) - set(saved))
    extra = sorted(set(saved) - set(own))
    shapes = [k for k in set(own) & set(saved) if tuple(own[k].shape) != tuple(saved[k].shape)]
    if missing or extra or shapes:
        detail = (f"missing {missing[:3]}" if missing else
                  f"unexpected {extra[:3]}" if extra else f"shape differs for {sorted(shapes)[:3]}")
        raise InputError(f"checkpoint {path} does not match this model ({detail}); resume with "
                         f"the same architecture/size/classes/conditioning, or start again with "
                         f"resume=False, overwrite=True.")


def _model_state(ckpt: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    return {k[len("model."):]: v for k, v in ckpt["state_dict"].items()
            if k.startswith("model.")}


@contextlib.contextmanager
def _expected_warnings(cfg: TrainConfig, accelerator: str, resuming: bool,
                       validating: bool) -> Iterator[None]:
    """Silence the Lightning warnings that are expected for the choices made here.

    * "does not have many workers": ``num_workers=0`` is the deliberate default (patch
      datasets are cheap; the machine may be shared) — the user raises ``num_workers``.
    * "GPU available but not used": only when ``accelerator="cpu"`` was asked explicitly.
    * "Checkpoint directory … exists and is not empty": only when resuming into it.
    * "resuming from a checkpoint that ended before the epoch ended": only when resuming
      from a ``checkpoint_every`` checkpoint; the sampler skips the batches already seen.
    * "You defined a `validation_step` but have no `val_dataloader`": only with
      ``val_ds=None``, which is allowed on purpose (validation is optional).
    * "`isinstance(treespec, LeafSpec)` is deprecated" (FutureWarning): Lightning 2.6's own
      pytree helper uses an API that torch >= 2.10 deprecates; nothing a caller can change.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is "
                                                  r"deprecated", category=FutureWarning)
        if cfg.num_workers == 0:
            warnings.filterwarnings("ignore", message=r".*does not have many workers")
        if cfg.accelerator == "cpu" and accelerator == "cpu":
            warnings.filterwarnings("ignore", message=r"GPU available but not used")
        if not validating:
            warnings.filterwarnings("ignore", message=r"You defined a `validation_step` but "
                                                      r"have no `val_dataloader`")
        if resuming:
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not")
            warnings.filterwarnings("ignore", message=r"You're resuming from a checkpoint that "
                                                      r"ended before the epoch ended")
        yield


@contextlib.contextmanager
def _restore_torch_flags() -> Iterator[None]:
    """Undo the process-wide flags ``Trainer(deterministic=...)`` sets, after training."""
    state = (torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(state[0], warn_only=state[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = state[2:]


_LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "lightning_utilities",
                      "pytorch_lightning", "lightning_fabric")
# Where Lightning's rank-zero utilities log (``rank_zero_info`` & co.).
_RANK_ZERO_LOGGERS = ("lightning.pytorch.utilities.rank_zero",
                      "lightning.fabric.utilities.rank_zero", "lightning_utilities.core.rank_zero")


class _NoAdverts(logging.Filter):
    """Drop Lightning's advertisements ("💡 Tip: ... try installing ...")."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).lstrip().startswith("💡")


@contextlib.contextmanager
def _lightning_logs(verbose: bool) -> Iterator[None]:
    """Send Lightning's log messages through the application's handlers, once, and quietly.

    The ``lightning`` package logger carries its own stderr handler (``INFO: ...``) *and*
    propagates to the root logger, so an application with logging set up saw every Lightning
    message twice. While this context is active: Lightning's own handlers are detached (its
    messages reach the root logger's handlers only), its advertisements are dropped, and
    unless ``verbose`` its loggers are raised to WARNING (no device banners, no
    "`Trainer.fit` stopped" line; :func:`fit` logs its own summary). Restored on exit.

    Args:
        verbose: Keep Lightning's INFO messages (e.g. ``glacierkit --verbose``).
    """
    loggers = {n: logging.getLogger(n) for n in _LIGHTNING_LOGGERS}
    old = {n: (lg.level, list(lg.handlers), lg.propagate) for n, lg in loggers.items()}
    advert_filter = _NoAdverts()
    for n, lg in loggers.items():
        for h in old[n][1]:
            lg.removeHandler(h)
        lg.propagate = True
        if not verbose:
            lg.setLevel(logging.WARNING)
    for n in _RANK_ZERO_LOGGERS:
        logging.getLogger(n).addFilter(advert_filter)
    try:
        yield
    finally:
        for n in _RANK_ZERO_LOGGERS:
            logging.getLogger(n).removeFilter(advert_filter)
        for n, lg in loggers.items():
            level, handlers, lg.propagate = old[n]
            lg.setLevel(level)
            for h in handlers:
                lg.addHandler(h)


def _show_progress_bar(cfg: TrainConfig) -> bool:
    """A step progress bar only where someone watches it: ``cfg.progress`` and a terminal."""
    import sys

    stream = sys.stderr
    return bool(cfg.progress and stream is not None and hasattr(stream, "isatty")
                and stream.isatty())


def _loader(ds: Dataset, cfg: TrainConfig, accelerator: str,
            sampler: Sampler[int] | None) -> DataLoader:
    return DataLoader(ds, batch_size=cfg.batch_size, sampler=sampler, shuffle=False,
                      num_workers=cfg.num_workers, pin_memory=accelerator == "cuda",
                      drop_last=False, persistent_workers=False)


def fit(model: nn.Module, train_ds: Dataset, val_ds: Dataset | None, cfg: TrainConfig, *,
        out_dir: str | Path, resume: Resume = False, overwrite: bool = False,
        callbacks: Sequence[Callback] = ()) -> FitResult:
    """Train ``model`` on ``train_ds`` (validating on ``val_ds``) with checkpoints and resume.

    Checkpoints go to ``out_dir/checkpoints``: ``last.ckpt`` (refreshed after every epoch and,
    with ``cfg.checkpoint_every``, every that many steps) and ``best-eEEEE-sSSSSSS.ckpt``, the
    epoch with the highest ``val_iou``. ``out_dir/history.json`` gets the per-epoch metrics.

    Args:
        model: A model obeying the model contract (trained in place).
        train_ds: Labelled patch dataset (items as :class:`glacierkit.dl.data.PatchDataset`);
            ``len()`` samples make one epoch; ``set_epoch(epoch)`` is called when present.
        val_ds: Labelled validation dataset, or None (no validation: the best checkpoint is the
            last one and early stopping is unavailable).
        cfg: Training settings.
        out_dir: Run folder (created).
        resume: ``False``: fresh start; ``"auto"``: continue from ``out_dir/checkpoints/last.ckpt``
            when it exists, else start fresh; ``True``: continue from that file (must exist); a
            path: continue from that checkpoint. Resuming restores the weights, the optimizer
            and scheduler state, the global step, the epoch and the history; ``cfg.epochs`` /
            ``cfg.max_steps`` are the totals to reach.
        overwrite: With ``resume`` False, delete existing checkpoints in ``out_dir/checkpoints``
            instead of refusing.
        callbacks: Extra Lightning callbacks (e.g. a custom progress reporter).

    Returns:
        :class:`FitResult`; its model has the best weights, on the CPU, in eval mode.

    Raises:
        InputError: empty dataset, incompatible checkpoint, CUDA asked but absent, loss NaN.
        OutputExistsError: checkpoints exist, ``resume`` is False and ``overwrite`` is False.
        KeyboardInterrupt: training was interrupted (Ctrl+C); ``last.ckpt`` holds the last
            completed epoch (or ``checkpoint_every`` step) — call again with ``resume="auto"``.
    """
    t0 = time.perf_counter()
    cfg.validate()
    accelerator = resolve_accelerator(cfg.accelerator)
    if accelerator == "cpu" and cfg.precision == "16-mixed":
        raise InputError("precision='16-mixed' needs CUDA; on the CPU use '32-true' or "
                         "'bf16-mixed'.")
    n_train = len(train_ds)  # type: ignore[arg-type]
    if n_train == 0:
        raise InputError("the training dataset is empty; check the split, the patch size and "
                         "samples_per_epoch.")
    if val_ds is not None and len(val_ds) == 0:  # type: ignore[arg-type]
        raise InputError("the validation dataset is empty; pass val_ds=None to train without "
                         "validation or enlarge the validation split.")
    if cfg.patience is not None and val_ds is None:
        raise InputError("early stopping (patience) needs a validation dataset; pass val_ds or "
                         "set patience=None.")
    out_dir = Path(out_dir)
    ckpt_dir = out_dir / CHECKPOINT_DIR
    resume_path = _resolve_resume(resume, ckpt_dir)
    if resume_path is None and ckpt_dir.is_dir() and any(ckpt_dir.glob("*.ckpt")):
        if not overwrite:
            raise OutputExistsError(
                f"{ckpt_dir} already holds checkpoints.",
                hint="Continue that run with resume='auto', or pass overwrite=True to start "
                     "again (deletes them).",
                cli_hint="Continue that run with --resume, or set [output] overwrite = true in "
                         "the config to start again (deletes them).")
        for p in ckpt_dir.glob("*.ckpt"):
            p.unlink()
    ckpt_dir.mkdir(parents=True, exist_ok=True)

    steps_per_epoch = math.ceil(n_train / cfg.batch_size)
    class_weights: list[float] | None
    if cfg.class_weights == "auto" and resume_path is None:
        class_weights = estimate_class_weights(train_ds, cfg.n_classes)
        log.info("class weights from the training labels: %s", class_weights)
    elif cfg.class_weights == "auto":
        class_weights = None  # taken from the checkpoint below
    else:
        class_weights = cfg.class_weights  # type: ignore[assignment]

    model.train()  # e.g. a model returned by an earlier fit (eval mode) being fine-tuned
    task = SegmentationTask(model, cfg, steps_per_epoch=steps_per_epoch,
                            class_weights=class_weights)
    start_epoch, skip = 0, 0
    if resume_path is not None:
        ckpt = _load_checkpoint(resume_path)
        saved_cw = (ckpt.get("glacierkit") or {}).get("class_weights")
        if saved_cw != class_weights:  # keep the loss of the interrupted run
            if cfg.class_weights != "auto":
                log.warning("resuming with the checkpoint's class weights %s instead of %s",
                            saved_cw, class_weights)
            class_weights = saved_cw
            task = SegmentationTask(model, cfg, steps_per_epoch=steps_per_epoch,
                                    class_weights=class_weights)
        _check_compatible(ckpt, task, resume_path)
        step = int(ckpt.get("global_step", 0))
        start_epoch, skip = divmod(step, steps_per_epoch)
        log.info("resuming from %s at step %d (epoch %d)", resume_path, step, start_epoch)
        del ckpt

    L.seed_everything(cfg.seed, workers=cfg.num_workers > 0, verbose=False)
    sampler = EpochSampler(n_train, cfg.seed)
    sampler.set_epoch(start_epoch)
    if skip:
        sampler.skip_once(start_epoch, skip * cfg.batch_size)
    _set_epoch(train_ds, start_epoch)
    train_dl = _loader(train_ds, cfg, accelerator, sampler)
    val_dl = None if val_ds is None else _loader(val_ds, cfg, accelerator, None)

    best_cb = ModelCheckpoint(
        dirpath=ckpt_dir, filename="best-e{epoch:04d}-s{step:06d}", auto_insert_metric_name=False,
        monitor="val_iou" if val_ds is not None else None, mode="max",
        save_top_k=1 if val_ds is not None else 0,
        save_last=True, enable_version_counter=False)
    all_callbacks: list[Callback] = [_EpochData(train_ds), best_cb, *callbacks]
    if cfg.checkpoint_every:
        all_callbacks.append(ModelCheckpoint(dirpath=ckpt_dir, save_top_k=0, save_last=True,
                                         every_n_train_steps=cfg.checkpoint_every,
                                         enable_version_counter=False))
    stopper = None
    if cfg.patience is not None:
        stopper = EarlyStopping(monitor=cfg.monitor,
                                mode="max" if cfg.monitor == "val_iou" else "min",
                                patience=cfg.patience, check_finite=False)
        all_callbacks.append(stopper)

    last = ckpt_dir / LAST_CHECKPOINT
    in_main = threading.current_thread() is threading.main_thread()
    old_sigint = signal.getsignal(signal.SIGINT) if in_main else None
    # CUDA has no deterministic kernel for some ops the models use (bilinear upsampling
    # backward): there, deterministic=True warns about those instead of failing mid-run.
    deterministic: bool | str = cfg.deterministic
    if deterministic and accelerator == "cuda":
        deterministic = "warn"
    verbose = log.isEnabledFor(logging.DEBUG)
    bar = _show_progress_bar(cfg)
    if bar:  # on stderr, with the log messages: stdout is for results
        from lightning.pytorch.callbacks import RichProgressBar

        all_callbacks.append(RichProgressBar(leave=True, console_kwargs={"stderr": True}))
    if verbose:  # logged (the rich summary would print to stdout)
        from lightning.pytorch.callbacks import ModelSummary

        all_callbacks.append(ModelSummary())
    log.info("training %s (%s) on %s: %s, %d step(s) of %d sample(s) per epoch%s", cfg.arch,
             cfg.size, accelerator, f"{cfg.epochs} epoch(s)" if cfg.max_steps is None
             else f"at most {cfg.epochs} epoch(s) or {cfg.max_steps} step(s)", steps_per_epoch,
             cfg.batch_size, "" if val_ds is not None else ", no validation")
    with _expected_warnings(cfg, accelerator, resume_path is not None, val_ds is not None), \
            _lightning_logs(verbose), _restore_torch_flags():
        trainer = L.Trainer(
            accelerator=accelerator, devices=1, precision=cfg.precision, max_epochs=cfg.epochs,
            max_steps=cfg.max_steps if cfg.max_steps is not None else -1,
            callbacks=all_callbacks,
            logger=False, enable_progress_bar=bar, enable_model_summary=verbose,
            deterministic=deterministic, num_sanity_val_steps=0, benchmark=False,
            gradient_clip_val=cfg.grad_clip, log_every_n_steps=max(1, min(50, steps_per_epoch)),
            default_root_dir=out_dir, enable_checkpointing=True)
        try:
            trainer.fit(task, train_dataloaders=train_dl, val_dataloaders=val_dl,
                        ckpt_path=resume_path)
        except SystemExit as e:  # Lightning turns Ctrl+C into a graceful shutdown + exit(1)
            if trainer.interrupted:
                raise KeyboardInterrupt(
                    f"training interrupted at step {trainer.global_step}; continue with "
                    f"fit(..., resume='auto') from {last}.") from e
            raise
        finally:
            if in_main and old_sigint is not None:
                signal.signal(signal.SIGINT, old_sigint)
        if not last.is_file():  # e.g. the resumed checkpoint had already reached the end
            trainer.save_checkpoint(last)

    best_val: float | None = None
    best = last
    if val_ds is not None and best_cb.best_model_path:
        best = Path(best_cb.best_model_path)
        score = best_cb.best_model_score
        best_val = None if score is None else float(score)
    model.load_state_dict(_model_state(_load_checkpoint(best)))
    model.cpu().eval()

    history = list(task.history)
    (out_dir / "history.json").write_text(json.dumps(history, indent=1))
    result = FitResult(
        model=model, best_checkpoint=best, last_checkpoint=last, history=history,
        steps=int(trainer.global_step), epochs=int(trainer.global_step) // steps_per_epoch,
        wall_time_s=time.perf_counter() - t0, best_val_iou=best_val,
        class_weights=class_weights, resumed_from=resume_path,
        stopped_early=bool(stopper is not None and stopper.stopped_epoch > 0))
    if result.stopped_early:
        why = f"stopped early ({cfg.monitor} did not improve for {cfg.patience} validations)"
    elif cfg.max_steps is not None and result.steps >= cfg.max_steps:
        why = f"max_steps = {cfg.max_steps} reached"
    else:
        why = f"epochs = {cfg.epochs} reached"
    best_text = "" if best_val is None else f", best val IoU {best_val:.3f}" + next(
        (f" (epoch {int(h['epoch']) + 1})" for h in history
         if h.get("val_iou") is not None and math.isclose(h["val_iou"], best_val,
                                                         rel_tol=1e-6)), "")
    log.info("training done, %s: %d step(s), %d epoch(s)%s in %.1f s; checkpoints in %s", why,
             result.steps, result.epochs, best_text, result.wall_time_s, ckpt_dir)
    return result


# ---------------------------------------------------------------------------------- inference
def _device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _batches(model: nn.Module, dataset: Dataset, batch_size: int, device: torch.device,
             cond: np.ndarray | torch.Tensor | None) -> Iterator[tuple[torch.Tensor, Any]]:
    """Yield ``(logits (B, K, P, P), batch)`` in eval mode without gradients."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    fixed = None if cond is None else torch.as_tensor(np.asarray(cond), dtype=torch.float32)
    with torch.inference_mode():
        for batch in loader:
            inputs, _ = _unpack(batch, model)
            inputs = {k: None if v is None else v.to(device) for k, v in inputs.items()}
            if fixed is not None and "cond" in inputs:
                inputs["cond"] = fixed.to(device).expand(_batch_size(inputs), -1)
            logits = model(**inputs)
            yield logits.float(), batch


@contextlib.contextmanager
def _eval_on(model: nn.Module, device: torch.device) -> Iterator[nn.Module]:
    """Run ``model`` in eval mode on ``device``; restore its mode and device afterwards."""
    was_training = model.training
    try:
        old = next(model.parameters()).device
    except StopIteration:
        old = torch.device("cpu")
    model.to(device).eval()
    try:
        yield model
    finally:
        model.to(old).train(was_training)


def evaluate(model: nn.Module, dataset: Dataset, *, batch_size: int = 16,
             device: str | torch.device | None = None,
             cond: np.ndarray | torch.Tensor | None = None) -> dict[str, float]:
    """Scores of ``model`` on a labelled patch dataset.

    Args:
        model: A contract model.
        dataset: Labelled patch dataset (items with ``x``, ``present``, ``cond``, ``y``).
        batch_size: Patches per forward pass.
        device: ``"cpu"``, ``"cuda"``, or None/``"auto"`` (CUDA when available).
        cond: Optional fixed ``(cond_dim,)`` vector used for every sample instead of the
            dataset's ``cond`` (e.g. the "unknown" region slot).

    Returns:
        :func:`scores_from_matrix` of the confusion matrix over all non-ignored pixels
        (``iou``, ``f1``, ``miou``, ``accuracy`` in [0, 1] or NaN; ``n`` pixels).
    """
    dev = _device(device)
    k = int(getattr(model, "n_classes", 2))
    cm = torch.zeros(k, k, dtype=torch.long)
    with _eval_on(model, dev):
        for logits, batch in _batches(model, dataset, batch_size, dev, cond):
            cm += _confusion_counts(logits.cpu(), batch["y"], k)
    return scores_from_matrix(cm.numpy())


def predict_logits(model: nn.Module, dataset: Dataset, *, batch_size: int = 16,
                   device: str | torch.device | None = None, max_pixels: int = 200_000,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of the non-ignored pixels of a labelled dataset, for calibration.

    Pixels are sub-sampled (seeded) to at most ``max_pixels``: each batch keeps a random
    share of its labelled pixels sized so that the whole dataset yields about
    ``2 × max_pixels``, and a final seeded draw trims to ``max_pixels``.

    Args:
        model: A contract model (run in eval mode; its mode and device are restored).
        dataset: Labelled patch dataset (``y`` with 255 = ignore), e.g. the validation set.
        batch_size: Patches per forward pass.
        device: ``"cpu"``, ``"cuda"``, or None/``"auto"``.
        max_pixels: Upper bound on the number of pixels returned.
        seed: Seed of the sub-sampling.

    Returns:
        ``(logits, labels)``: float32 ``(n, K)`` raw (uncalibrated) logits and int64 ``(n,)``
        labels in ``0 .. K-1``, ``n <= max_pixels``.

    Raises:
        InputError: the dataset has no labelled pixel.
    """
    if max_pixels < 1:
        raise InputError(f"max_pixels must be >= 1; got {max_pixels}.")
    dev = _device(device)
    rng = np.random.default_rng(seed)
    n = len(dataset)  # type: ignore[arg-type]
    out_l: list[np.ndarray] = []
    out_y: list[np.ndarray] = []
    with _eval_on(model, dev):
        keep_p = None
        for logits, batch in _batches(model, dataset, batch_size, dev, None):
            k = logits.shape[1]
            if keep_p is None:
                total = n * logits.shape[2] * logits.shape[3]
                keep_p = min(1.0, 2.0 * max_pixels / max(total, 1))
            y = batch["y"].reshape(-1).numpy()
            lg = logits.permute(0, 2, 3, 1).reshape(-1, k).cpu().numpy()
            idx = np.flatnonzero(y != IGNORE_INDEX)
            if keep_p < 1.0:
                idx = idx[rng.random(idx.size) < keep_p]
            out_l.append(lg[idx].astype(np.float32))
            out_y.append(y[idx].astype(np.int64))
    if not out_y or sum(a.size for a in out_y) == 0:
        raise InputError("the dataset has no labelled pixel (all labels are 255); calibration "
                         "needs labelled validation patches.")
    logits_np = np.concatenate(out_l)
    labels_np = np.concatenate(out_y)
    if labels_np.size > max_pixels:
        sel = np.sort(rng.choice(labels_np.size, size=max_pixels, replace=False))
        logits_np, labels_np = logits_np[sel], labels_np[sel]
    return logits_np, labels_np
