"""The five GlaViTU training strategies over several regions, as configuration.

GlaViTU (Maslov et al.) compares five ways of training over a multi-region data set:

``global``
    One model on all regions, no conditioning.
``regional``
    One model per region, trained on that region only; predicting needs the region's model
    (an unknown region is an error).
``finetune``
    The global model, then one copy per region fine-tuned on that region (fewer epochs,
    learning rate × ``finetune_lr_factor``). An unknown region falls back to the global model.
``region_encoding``
    One model conditioned on the region one-hot plus an "unknown" slot
    (:func:`glacierkit.dl.cond.region_onehot`). During training a share ``p_unknown`` of the
    samples gets the unknown slot (:attr:`~glacierkit.dl.train.TrainConfig.p_unknown`, applied
    in the training step), so the model also works for unseen regions; for a new region the
    code can be adapted on unlabelled imagery with :func:`adapt_region_encoding`.
``coords_encoding``
    One model conditioned on ``[sin lat, cos lat, sin lon, cos lon]`` of the patch centre
    (radians, :func:`glacierkit.dl.cond.coords_encoding`), computed by the dataset in training
    and per tile in inference.

Datasets come from a callable the caller provides (the mapping pipeline builds them from its
scenes and split)::

    def make_datasets(region: str | None, cond: CondSpec) -> tuple[Dataset, Dataset | None]:
        ...  # (train, val) patch datasets of one region, or of all scenes when region is None,
             # whose items carry ``cond`` as ``cond.vector(scene, window)`` gives it

``region=None`` asks for all training scenes (the shared models); a region name for that
region's scenes only (regional and fine-tuned models, and the per-region validation scores).
Build the datasets with ``p_unknown=0``: the strategy applies ``p_unknown`` itself. For
ready-made datasets per region use :func:`datasets_from_mapping`.

:func:`train_strategy` returns a :class:`StrategyResult` whose :meth:`~StrategyResult.model_for`
and :meth:`~StrategyResult.cond_for` give inference and evaluation the right model and
conditioning vector for a region.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import cycle
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from rasterio.windows import Window
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset

from glacierkit.dl.cond import CondSpec, region_onehot
from glacierkit.dl.train import (
    FitResult,
    Resume,
    TrainConfig,
    _device,
    _eval_on,
    evaluate,
    fit,
    resolve_accelerator,
)
from glacierkit.errors import InputError

log = logging.getLogger(__name__)

Strategy = Literal["global", "regional", "finetune", "region_encoding", "coords_encoding"]
STRATEGIES: tuple[str, ...] = ("global", "regional", "finetune", "region_encoding",
                               "coords_encoding")

SHARED = "*"
"""Key of the model shared by all regions in :attr:`StrategyResult.models`."""

MakeDatasets = Callable[[str | None, CondSpec], tuple[Dataset, Dataset | None]]
"""``make_datasets(region or None, cond_spec) -> (train_ds, val_ds or None)``."""

ModelFactory = Callable[[int], nn.Module]
"""``model_factory(cond_dim) -> fresh model`` (default: ``build_model`` from the config)."""


def strategy_cond_spec(strategy: str, regions: Sequence[str]) -> CondSpec:
    """The conditioning a strategy's models take: none, region one-hot + unknown, or coords."""
    if strategy not in STRATEGIES:
        raise InputError(f"unknown strategy {strategy!r}; choose one of {list(STRATEGIES)}.")
    if strategy == "region_encoding":
        return CondSpec("region", tuple(regions))
    if strategy == "coords_encoding":
        return CondSpec("coords")
    return CondSpec("none")


# ---------------------------------------------------------------------------------- result
@dataclass
class StrategyResult:
    """Trained models of one strategy and how to use them per region.

    Attributes:
        strategy: The strategy name.
        regions: The training regions, in the order of the region one-hot.
        models: ``{SHARED: model}`` for the shared model (global, finetune base, the two
            encodings) and ``{region: model}`` for per-region models (regional, finetune);
            all on the CPU in eval mode with their best weights.
        cond_specs: The :class:`~glacierkit.dl.cond.CondSpec` of each model (same keys).
        metrics: ``{region: scores}``: validation scores of the model used for that region
            (:func:`glacierkit.dl.train.evaluate`: ``iou``, ``f1``, ``miou``, ``accuracy``,
            ``n``); region encoding adds ``iou_unknown`` / ``f1_unknown`` (the same model with
            the "unknown" slot, i.e. how it would do on an unseen region). Empty for a region
            without validation data.
        fits: The :class:`~glacierkit.dl.train.FitResult` of every training run, keyed
            ``SHARED``, ``region`` (regional) or ``"finetune:" + region``.
        adapted: Region codes found by :func:`adapt_region_encoding` for new regions
            (``{region: (R+1,) float32}``), used by :meth:`cond_for`.
    """

    strategy: str
    regions: tuple[str, ...]
    models: dict[str, nn.Module]
    cond_specs: dict[str, CondSpec]
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    fits: dict[str, FitResult] = field(default_factory=dict)
    adapted: dict[str, np.ndarray] = field(default_factory=dict)

    def model_key(self, region: str | None) -> str:
        """Key in :attr:`models` of the model that predicts ``region``.

        Raises:
            InputError: strategy ``regional`` and a region without a model.
        """
        if region is not None and region in self.models:
            return region
        if SHARED in self.models:
            if self.strategy == "finetune" and region is not None:
                log.info("no fine-tuned model for region %r; using the global model", region)
            return SHARED
        raise InputError(f"strategy {self.strategy!r} has no model for region {region!r}; "
                         f"known regions: {sorted(k for k in self.models if k != SHARED)}. "
                         f"Give the scene one of these regions, or train with a strategy "
                         f"that handles new regions (global, finetune, region_encoding, "
                         f"coords_encoding).")

    def model_for(self, region: str | None) -> nn.Module:
        """The model to use for a scene of ``region`` (None: no region known)."""
        return self.models[self.model_key(region)]

    def cond_spec_for(self, region: str | None) -> CondSpec:
        """The conditioning spec of :meth:`model_for` ``(region)``."""
        return self.cond_specs[self.model_key(region)]

    def cond_for(self, region: str | None, scene: Any = None,
                 window: Window | None = None) -> np.ndarray | None:
        """The conditioning vector for a window of a scene of ``region``.

        Args:
            region: Region name (None or unseen: the "unknown" slot, or the adapted code when
                :func:`adapt_region_encoding` was run for it).
            scene: A ``SceneStack`` or ``Grid``; needed for coordinate conditioning only.
            window: Pixel window on ``scene`` (coordinate conditioning; default whole scene).

        Returns:
            float32 ``(cond_dim,)``, or None when the model takes no conditioning.

        Raises:
            InputError: coordinate conditioning without ``scene``.
        """
        spec = self.cond_spec_for(region)
        if spec.kind == "none":
            return None
        if spec.kind == "region":
            if region is not None and region in self.adapted:
                return np.asarray(self.adapted[region], dtype=np.float32).copy()
            return region_onehot(region, spec.regions)
        if scene is None:
            raise InputError("coordinate conditioning varies per window: pass the scene (or "
                             "its grid) and the window, e.g. result.cond_for(region, scene, "
                             "window).")
        return spec.vector(scene, window)

    def set_adapted(self, region: str, vector: np.ndarray) -> None:
        """Use ``vector`` (from :func:`adapt_region_encoding`) as the code of ``region``."""
        spec = self.cond_specs.get(SHARED)
        if self.strategy != "region_encoding" or spec is None:
            raise InputError("adapted region codes only apply to strategy 'region_encoding'.")
        v = np.asarray(vector, dtype=np.float32).reshape(-1)
        if v.size != spec.dim:
            raise InputError(f"an adapted region code needs {spec.dim} values (regions "
                             f"{list(spec.regions)} + unknown); got {v.size}.")
        self.adapted[region] = v

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (no weights)."""
        return {"strategy": self.strategy, "regions": list(self.regions),
                "cond": {k: s.to_dict() for k, s in self.cond_specs.items()},
                "metrics": self.metrics, "fits": {k: f.to_dict() for k, f in self.fits.items()},
                "adapted": {k: [float(x) for x in v] for k, v in self.adapted.items()}}


# ---------------------------------------------------------------------------------- datasets
class CondOverride(Dataset):
    """A patch dataset whose items get a fixed ``cond`` vector (``(0,)`` for none)."""

    def __init__(self, dataset: Dataset, cond: np.ndarray) -> None:
        self.dataset = dataset
        self.cond = torch.as_tensor(np.asarray(cond, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = dict(self.dataset[index])
        item["cond"] = self.cond.clone()
        return item

    def set_epoch(self, epoch: int) -> None:
        """Forward to the wrapped dataset."""
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)


def datasets_from_mapping(datasets: Mapping[str, tuple[Dataset, Dataset | None]]
                          ) -> MakeDatasets:
    """A ``make_datasets`` callable over ready-made ``{region: (train_ds, val_ds)}``.

    Region and none conditioning are written into the items (:class:`CondOverride`); for
    coordinate conditioning the datasets must already carry the ``(4,)`` coords vectors
    (built with ``cond=CondSpec("coords")``). ``region=None`` concatenates all regions.
    """
    names = list(datasets)
    if not names:
        raise InputError("datasets_from_mapping needs at least one region.")

    def wrap(ds: Dataset | None, region: str, spec: CondSpec) -> Dataset | None:
        if ds is None or spec.kind == "coords":
            return ds
        return CondOverride(ds, region_onehot(region, spec.regions) if spec.kind == "region"
                            else np.zeros(0, np.float32))

    def make(region: str | None, spec: CondSpec) -> tuple[Dataset, Dataset | None]:
        chosen = names if region is None else [region]
        unknown = [r for r in chosen if r not in datasets]
        if unknown:
            raise InputError(f"no datasets for region(s) {unknown}; known: {names}.")
        trains = [wrap(datasets[r][0], r, spec) for r in chosen]
        vals = [v for r in chosen if (v := wrap(datasets[r][1], r, spec)) is not None]
        train = trains[0] if len(trains) == 1 else ConcatDataset(trains)
        val = None if not vals else vals[0] if len(vals) == 1 else ConcatDataset(vals)
        return train, val  # type: ignore[return-value]

    return make


# ---------------------------------------------------------------------------------- training
def _slug(region: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", region) or "_"


def _default_factory(cfg: TrainConfig, group_channels: Sequence[int] | None) -> ModelFactory:
    if group_channels is None:
        raise InputError("train_strategy needs group_channels (channels per source group, "
                         "e.g. layout.group_channels) or a model_factory.")
    from glacierkit.dl.models import build_model

    def factory(cond_dim: int) -> nn.Module:
        return build_model(cfg.arch, group_channels=tuple(group_channels),
                           n_classes=cfg.n_classes, cond_dim=cond_dim, size=cfg.size,
                           dropout=cfg.dropout, **cfg.overrides)

    return factory


def train_strategy(strategy: Strategy | str, make_datasets: MakeDatasets, *,
                   regions: Sequence[str], cfg: TrainConfig, out_dir: str | Path,
                   group_channels: Sequence[int] | None = None,
                   model_factory: ModelFactory | None = None, finetune_epochs: int = 2,
                   finetune_lr_factor: float = 0.1, p_unknown: float = 0.1,
                   resume: Resume = False, overwrite: bool = False) -> StrategyResult:
    """Train the model(s) of one GlaViTU strategy and score them per region.

    Args:
        strategy: One of :data:`STRATEGIES`.
        make_datasets: ``(region or None, cond_spec) -> (train_ds, val_ds or None)`` (see the
            module docstring).
        regions: The training regions (unique names). ``regional``, ``finetune`` and
            ``region_encoding`` need at least one; ``global`` and ``coords_encoding`` may get
            ``()`` (no per-region scores then).
        cfg: Training settings of the main runs (the model is built from ``cfg.arch``,
            ``cfg.size``, ``cfg.dropout``, ``cfg.overrides`` unless ``model_factory`` is given).
        out_dir: Folder; each run gets a sub-folder (``shared``, ``regional-<region>``,
            ``finetune-<region>``) with its checkpoints.
        group_channels: Channels per source group (for the default model factory).
        model_factory: ``cond_dim -> fresh model`` instead of ``build_model``.
        finetune_epochs: Epochs of each regional fine-tuning (``finetune``).
        finetune_lr_factor: Learning-rate factor of the fine-tuning (``finetune``).
        p_unknown: Share of training samples given the "unknown" region slot
            (``region_encoding``).
        resume: Passed to every :func:`~glacierkit.dl.train.fit` (``"auto"`` continues an
            interrupted strategy; finished runs are just reloaded).
        overwrite: Passed to every :func:`~glacierkit.dl.train.fit`.

    Returns:
        A :class:`StrategyResult`.
    """
    if strategy not in STRATEGIES:
        raise InputError(f"unknown strategy {strategy!r}; choose one of {list(STRATEGIES)}.")
    regions = tuple(str(r) for r in regions)
    if len(set(regions)) != len(regions) or SHARED in regions:
        raise InputError(f"regions must be unique names other than {SHARED!r}; got "
                         f"{list(regions)}.")
    if not regions and strategy in ("regional", "finetune", "region_encoding"):
        raise InputError(f"strategy {strategy!r} needs the training regions (regions=...); "
                         f"give every scene a region.")
    if finetune_epochs < 1 or not finetune_lr_factor > 0:
        raise InputError(f"finetune_epochs must be >= 1 and finetune_lr_factor > 0; got "
                         f"{finetune_epochs}, {finetune_lr_factor}.")
    factory = model_factory or _default_factory(cfg, group_channels)
    spec = strategy_cond_spec(strategy, regions)
    out = Path(out_dir)
    cache: dict[str | None, tuple[Dataset, Dataset | None]] = {}

    def datasets(region: str | None) -> tuple[Dataset, Dataset | None]:
        if region not in cache:
            cache[region] = make_datasets(region, spec)
        return cache[region]

    def new_model() -> nn.Module:
        torch.manual_seed(cfg.seed)
        model = factory(spec.dim)
        got = int(getattr(model, "cond_dim", 0))
        if got != spec.dim:
            raise InputError(f"the model factory built a model with cond_dim={got}, but "
                             f"strategy {strategy!r} needs {spec.dim} ({spec.kind}).")
        return model

    def run(model: nn.Module, region: str | None, run_cfg: TrainConfig,
            folder: str) -> FitResult:
        train_ds, val_ds = datasets(region)
        log.info("strategy %s: training %s (%s)", strategy, folder,
                 "all regions" if region is None else f"region {region!r}")
        return fit(model, train_ds, val_ds, run_cfg, out_dir=out / folder, resume=resume,
                   overwrite=overwrite)

    models: dict[str, nn.Module] = {}
    fits: dict[str, FitResult] = {}
    if strategy == "regional":
        for r in regions:
            fits[r] = run(new_model(), r, cfg, f"regional-{_slug(r)}")
            models[r] = fits[r].model
    else:
        shared_cfg = cfg.replace(p_unknown=p_unknown) if strategy == "region_encoding" else cfg
        fits[SHARED] = run(new_model(), None, shared_cfg, "shared")
        models[SHARED] = fits[SHARED].model
        if strategy == "finetune":
            ft_cfg = cfg.replace(epochs=finetune_epochs, lr=cfg.lr * finetune_lr_factor,
                                 max_steps=None)
            for r in regions:
                key = f"finetune:{r}"
                fits[key] = run(copy.deepcopy(models[SHARED]), r, ft_cfg, f"finetune-{_slug(r)}")
                models[r] = fits[key].model

    result = StrategyResult(strategy=strategy, regions=regions, models=models,
                            cond_specs={k: spec for k in models}, fits=fits)
    device = resolve_accelerator(cfg.accelerator)
    for r in regions:
        _, val_ds = datasets(r)
        if val_ds is None:
            log.warning("region %r has no validation data; no per-region scores", r)
            result.metrics[r] = {}
            continue
        model = result.model_for(r)
        scores = evaluate(model, val_ds, batch_size=cfg.batch_size, device=device)
        if strategy == "region_encoding":
            unk = evaluate(model, val_ds, batch_size=cfg.batch_size, device=device,
                           cond=spec.unknown())
            scores.update(iou_unknown=unk["iou"], f1_unknown=unk["f1"])
        result.metrics[r] = scores
        log.info("strategy %s, region %r: val IoU %.3f", strategy, r, scores["iou"])
    return result


# ---------------------------------------------------------------------------------- adaptation
@dataclass
class Adaptation:
    """Outcome of :func:`adapt_region_encoding`.

    Attributes:
        cond: float32 ``(R+1,)`` adapted region code (non-negative, sums to 1): a mixture over
            the training regions and the "unknown" slot. Equal to the unknown one-hot when
            the optimisation did not lower the entropy.
        entropy_before: Mean predictive entropy (nats per pixel) with the unknown slot.
        entropy_after: Mean predictive entropy with :attr:`cond`.
        history: Mean entropy of the optimisation batch at every step.
    """

    cond: np.ndarray
    entropy_before: float
    entropy_after: float
    history: list[float]


def _pixel_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Predictive entropy ``-Σ_k p_k log p_k`` (nats) per pixel: ``(B, K, H, W) -> (B, H, W)``."""
    logp = torch.log_softmax(logits.float(), dim=1)
    return -(logp.exp() * logp).sum(dim=1)


def _masked_mean(ent: torch.Tensor, batch: Mapping[str, Any]) -> tuple[torch.Tensor, int]:
    valid = batch.get("valid")
    if valid is None:
        return ent.mean(), ent.numel()
    v = valid.to(ent.device).bool()
    n = int(v.sum())
    if n == 0:
        return ent.sum() * 0.0, 0
    return ent[v].mean(), n


@torch.no_grad()
def _mean_entropy(model: nn.Module, loader: DataLoader, cond: torch.Tensor,
                  device: torch.device) -> float:
    total, count = 0.0, 0
    for batch in loader:
        x, present = batch["x"].to(device), batch["present"].to(device)
        ent = _pixel_entropy(model(x, present, cond.expand(x.shape[0], -1)))
        m, n = _masked_mean(ent, batch)
        total += float(m) * n
        count += n
    if count == 0:
        raise InputError("the unlabelled dataset has no valid pixel; adaptation needs imagery "
                         "of the new region.")
    return total / count


def adapt_region_encoding(model: nn.Module, unlabelled_ds: Dataset, *, steps: int = 50,
                          lr: float = 0.1, batch_size: int = 8,
                          device: str | torch.device | None = None, seed: int = 0,
                          init_logit: float = 4.0, eval_samples: int | None = 256
                          ) -> Adaptation:
    """Find a region code for a new region by entropy minimisation on unlabelled imagery.

    The code is ``softmax(θ)`` over the ``R + 1`` slots (training regions + unknown),
    initialised near the unknown slot (``θ = (0, …, 0, init_logit)``). With the model frozen
    (eval mode, no weight updates) ``θ`` is optimised with Adam to minimise the mean predictive
    entropy of the model over the valid pixels of ``unlabelled_ds``. The entropy before (exact
    unknown one-hot) and after is measured on the first ``eval_samples`` items; if it did not
    decrease the unknown one-hot is returned. Entropy minimisation favours *confident*
    predictions, not necessarily correct ones: check the adapted model on a few labelled
    patches when possible.

    Args:
        model: A region-encoding model (``cond_dim = R + 1``).
        unlabelled_ds: Patches of the new region (items ``x``, ``present``, optionally
            ``valid`` ``(P, P)``, as :class:`glacierkit.dl.data.UnlabelledPatchDataset`);
            their ``cond`` is ignored.
        steps: Optimisation steps (one batch each, cycling through the dataset).
        lr: Adam learning rate on ``θ``.
        batch_size: Patches per step.
        device: ``"cpu"``, ``"cuda"`` or None/``"auto"``.
        seed: Seed of the batch order.
        init_logit: Initial logit of the unknown slot (others 0).
        eval_samples: Items used to measure the entropy before/after (None: all).

    Returns:
        :class:`Adaptation`; use ``result.set_adapted(region, adaptation.cond)`` to keep it.
    """
    k = int(getattr(model, "cond_dim", 0))
    if k < 2:
        raise InputError(f"adapt_region_encoding needs a region-encoding model (cond_dim = "
                         f"number of regions + 1 >= 2); this model has cond_dim={k}.")
    if steps < 1 or not lr > 0 or batch_size < 1:
        raise InputError(f"need steps >= 1, lr > 0, batch_size >= 1; got {steps}, {lr}, "
                         f"{batch_size}.")
    n = len(unlabelled_ds)  # type: ignore[arg-type]
    if n == 0:
        raise InputError("the unlabelled dataset is empty; give patches of the new region.")
    dev = _device(device)
    eval_ds = unlabelled_ds if eval_samples is None or eval_samples >= n else \
        Subset(unlabelled_ds, range(eval_samples))
    eval_loader = DataLoader(eval_ds, batch_size=batch_size, shuffle=False, num_workers=0)
    train_loader = DataLoader(unlabelled_ds, batch_size=batch_size, shuffle=True,
                              num_workers=0, generator=torch.Generator().manual_seed(seed))
    flags = [p.requires_grad for p in model.parameters()]
    with _eval_on(model, dev):
        try:
            for p in model.parameters():
                p.requires_grad_(False)
            unknown = torch.zeros(k, device=dev)
            unknown[-1] = 1.0
            before = _mean_entropy(model, eval_loader, unknown, dev)
            theta = torch.zeros(k, device=dev)
            theta[-1] = float(init_logit)
            theta.requires_grad_(True)
            opt = torch.optim.Adam([theta], lr=lr)
            history: list[float] = []
            batches = cycle(train_loader)
            for _ in range(int(steps)):
                batch = next(batches)
                x, present = batch["x"].to(dev), batch["present"].to(dev)
                cond = torch.softmax(theta, dim=0).expand(x.shape[0], -1)
                loss, count = _masked_mean(_pixel_entropy(model(x, present, cond)), batch)
                if count == 0:
                    continue
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                history.append(float(loss.detach()))
            code = torch.softmax(theta.detach(), dim=0)
            after = _mean_entropy(model, eval_loader, code, dev)
        finally:
            for p, f in zip(model.parameters(), flags, strict=True):
                p.requires_grad_(f)
    vec = code.cpu().numpy().astype(np.float32)
    if not after < before:
        log.warning("region-code adaptation did not lower the entropy (%.4f -> %.4f); keeping "
                    "the unknown slot", before, after)
        vec, after = unknown.cpu().numpy().astype(np.float32), before
    log.info("region-code adaptation: entropy %.4f -> %.4f nats, code %s", before, after,
             np.round(vec, 3).tolist())
    return Adaptation(cond=vec, entropy_before=before, entropy_after=after, history=history)
