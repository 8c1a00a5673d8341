"""Patch datasets and augmentations for training (torch).

:class:`PatchDataset` cuts ``P×P`` patches out of :class:`~glacierkit.dl.sources.SceneStack`
objects and returns, per item, a dict::

    {"x": float32 (C, P, P)   normalised channels (NaN → 0, dropped groups 0),
     "present": float32 (G,)  1 where the group is available and not dropped,
     "cond": float32 (cond_dim,)  conditioning vector (an empty tensor when cond_dim is 0),
     "y": int64 (P, P)        class indexes, 255 = ignore,
     "scene": int, "row": int, "col": int}   scene index and window offsets (px)

:class:`UnlabelledPatchDataset` returns the same without ``"y"`` and with
``"valid": bool (P, P)`` (pixels where every present group has data), for adaptation by
entropy minimisation on unlabelled scenes.

**Reproducibility.** Every random choice of item ``i`` (which window, augmentation, group
dropout, unknown region) comes from ``numpy.random.default_rng([seed, epoch, i])`` and from
nothing else, so an item is the same whichever DataLoader worker draws it and in whatever
order. Call :meth:`PatchDataset.set_epoch` before each epoch to get new samples; the epoch
lives in a shared-memory tensor, so it reaches DataLoader workers, persistent ones included.

Order of operations per item: read raw patch → gamma on optical channels (raw units) →
normalise (NaN → 0) → Gaussian noise on valid pixels of present groups → flips/rot90 of ``x``
and ``y`` together → group dropout (channels 0, ``present`` 0) → conditioning vector.

**Time series.** For a layout with timed groups an item holds instead::

    {"series": float32 (T, C_s, P, P)  normalised channels per date (missing dates 0),
     "dates": float32 (T,)            days since the scene's reference date,
     "mask": float32 (T,)             1 observed, 0 missing/dropped/padding,
     "y", "scene", "row", "col"}       as above (plus "x", "present" for single-date groups)

``T`` is the largest number of dates of the dataset's scenes (shorter series are padded,
``mask`` 0). Order per item: read → normalise → Gaussian noise and one offset per date →
the same flip/rotation for every date and the labels → date jitter → date dropout. A date
without any data in the patch has ``mask`` 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from rasterio.windows import Window
from torch.utils.data import Dataset

from glacierkit.dl.cond import CondSpec
from glacierkit.dl.labels import IGNORE, mask_invalid
from glacierkit.dl.sources import NormStats, SceneStack
from glacierkit.dl.split import SplitMap
from glacierkit.errors import InputError


@dataclass(frozen=True)
class Augment:
    """Training augmentations (all drawn per item from the item's generator).

    Args:
        flips: Random horizontal and vertical flips (each with probability 1/2).
        rot90: Random rotation by 0/90/180/270 degrees. With ``flips`` this covers the 8
            symmetries of the square.
        noise_std: Standard deviation of Gaussian noise added to the *normalised* channels
            of present groups at valid pixels (0 disables).
        gamma: ``(low, high)`` range of a gamma ``g`` (log-uniform) applied to the optical
            channels before normalisation: ``v' = r · (max(v, 0) / r) ** g`` with the
            per-channel reference ``r = mean + 3·std`` of the normalisation statistics (≈ the
            top of the channel's range, so reflectances and DNs are treated alike). One ``g``
            per item for all optical channels. ``None`` disables.
        group_dropout: Probability of dropping each droppable present group (its channels
            set to 0 — the training mean — and its ``present`` flag to 0). The primary group
            and ``keep_groups`` are never dropped, and an item never loses all its groups.
        keep_groups: Names of groups that are never dropped.
        primary: Name of the primary group (default: the layout's first group).
        date_offset_std: Time series only: standard deviation of one offset per date added
            to that date's normalised channels at valid pixels (photometric change per date:
            calibration, moisture, incidence), drawn independently for every date.
        date_jitter_days: Time series only: each date value moves by a uniform
            ``[-j, +j]`` days (date-aware models learn seasons, not exact days).
        date_dropout: Time series only: probability of dropping each observed date (its
            channels 0 and its ``mask`` 0); an item always keeps at least one date. For
            models with a fixed number of dates the slot stays (zeroed), so ``T`` is kept.
    """

    flips: bool = True
    rot90: bool = True
    noise_std: float = 0.03
    gamma: tuple[float, float] | None = (0.8, 1.25)
    group_dropout: float = 0.2
    keep_groups: tuple[str, ...] = ()
    primary: str | None = None
    date_offset_std: float = 0.0
    date_jitter_days: float = 0.0
    date_dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.noise_std < 0:
            raise InputError(f"noise_std must be >= 0; got {self.noise_std}.")
        if self.date_offset_std < 0 or self.date_jitter_days < 0:
            raise InputError(f"date_offset_std and date_jitter_days must be >= 0; got "
                             f"{self.date_offset_std}, {self.date_jitter_days}.")
        if not 0 <= self.date_dropout < 1:
            raise InputError(f"date_dropout must be a probability in [0, 1); got "
                             f"{self.date_dropout}.")
        if self.gamma is not None:
            g = tuple(float(v) for v in self.gamma)
            if len(g) != 2 or not 0 < g[0] <= g[1]:
                raise InputError(f"gamma must be (low, high) with 0 < low <= high; got "
                                 f"{self.gamma}.")
            object.__setattr__(self, "gamma", g)
        if not 0 <= self.group_dropout <= 1:
            raise InputError(f"group_dropout must be a probability in [0, 1]; got "
                             f"{self.group_dropout}.")
        object.__setattr__(self, "keep_groups", tuple(self.keep_groups))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        d = asdict(self)
        d["gamma"] = None if self.gamma is None else list(self.gamma)
        d["keep_groups"] = list(self.keep_groups)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Augment:
        """Rebuild from :meth:`to_dict` (or a config ``[augment]`` table)."""
        kw = dict(d)
        if kw.get("gamma") is not None:
            kw["gamma"] = tuple(kw["gamma"])
        if "keep_groups" in kw:
            kw["keep_groups"] = tuple(kw["keep_groups"])
        return cls(**kw)


WindowsArg = SplitMap | Sequence[SplitMap] | Sequence[Sequence[Window]] | None


class _PatchBase(Dataset):
    """Shared machinery of the labelled and unlabelled patch datasets."""

    def __init__(self, scenes: Sequence[SceneStack], masks: Sequence[np.ndarray],
                 windows: WindowsArg, *, split: str | None, patch_size: int, norm: NormStats,
                 cond: CondSpec | None, augment: Augment | None,
                 samples_per_epoch: int | None, seed: int, stride: int | None,
                 min_fraction: float, p_unknown: float, what: str) -> None:
        if not scenes:
            raise InputError(f"{what} needs at least one scene.")
        self.scenes = list(scenes)
        layout = self.scenes[0].layout
        for s in self.scenes[1:]:
            if s.layout != layout:
                raise InputError(f"scene {s.name!r} has layout {list(s.layout.names)}, "
                                 f"scene {self.scenes[0].name!r} has {list(layout.names)}; all "
                                 f"scenes of a dataset must share one layout.")
        self.layout = layout
        if norm.n_channels != layout.n_channels:
            raise InputError(f"norm has {norm.n_channels} channels but the layout has "
                             f"{layout.n_channels} ({list(layout.names)}).")
        p = int(patch_size)
        if p < 1:
            raise InputError(f"patch_size must be >= 1; got {patch_size}.")
        for s in self.scenes:
            if p > min(s.shape):
                raise InputError(f"patch_size {p} exceeds scene {s.name!r} ({s.shape[0]}×"
                                 f"{s.shape[1]} px).")
        self.patch_size = p
        self.norm = norm
        self.cond = cond or CondSpec()
        self.augment = augment
        if samples_per_epoch is not None and int(samples_per_epoch) < 1:
            raise InputError(f"samples_per_epoch must be >= 1 or None; got "
                             f"{samples_per_epoch}.")
        self.samples_per_epoch = None if samples_per_epoch is None else int(samples_per_epoch)
        self.seed = int(seed)
        if not 0 <= min_fraction <= 1:
            raise InputError(f"the minimum labelled/valid fraction must be in [0, 1]; got "
                             f"{min_fraction}.")
        if not 0 <= p_unknown <= 1:
            raise InputError(f"p_unknown must be in [0, 1]; got {p_unknown}.")
        if p_unknown > 0 and self.cond.kind != "region":
            raise InputError("p_unknown only applies to region conditioning (cond kind "
                             "'region').")
        self.p_unknown = float(p_unknown)
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        ok_maps = [self._fraction_ok(m, p, min_fraction) for m in masks]
        self._origins = self._candidates(windows, split, ok_maps, stride)
        self._counts = np.array([len(o) for o in self._origins], dtype=np.int64)
        if self._counts.sum() == 0:
            raise InputError(f"{what}: no {p}×{p} window is available (split {split!r}, "
                             f"minimum fraction {min_fraction}); use a smaller patch_size, "
                             f"another split or a lower minimum fraction.")
        self._cum = np.concatenate([[0], np.cumsum(self._counts)])
        # Optical channels and their gamma reference.
        self._optical = layout.channel_mask("optical")
        self._gamma_ref = np.maximum(norm.mean + 3 * norm.std, 1e-6).astype(np.float32)
        self._slices = list(layout.slices.values())
        if augment is not None:
            names = set(layout.group_names)
            bad = [g for g in (*augment.keep_groups,
                               *(() if augment.primary is None else (augment.primary,)))
                   if g not in names]
            if bad:
                raise InputError(f"augment names group(s) {bad} that are not in the layout "
                                 f"{sorted(names)}.")
            keep = {augment.primary or layout.group_names[0], *augment.keep_groups}
            self._droppable = np.array([g not in keep for g in layout.group_names])
        self._cond_cache: dict[int, np.ndarray] = {}
        if layout.timed:
            tm = layout.time_mask
            self._series_norm = norm.select(tm)
            self._static_norm = norm.select(~tm) if (~tm).any() else None
            self._static_groups = np.array([not g.time for g in layout.groups])
            self.max_dates = max(s.n_dates for s in self.scenes)

    # ------------------------------------------------------------------ setup
    @staticmethod
    def _fraction_ok(mask: np.ndarray, p: int, frac: float) -> np.ndarray:
        """Boolean ``(H-P+1, W-P+1)``: window's share of True pixels >= frac."""
        h, w = mask.shape
        if frac <= 0:
            return np.ones((h - p + 1, w - p + 1), dtype=bool)
        s = np.zeros((h + 1, w + 1), dtype=np.int64)
        s[1:, 1:] = mask.astype(np.int64).cumsum(0).cumsum(1)
        tot = s[p:, p:] - s[:-p, p:] - s[p:, :-p] + s[:-p, :-p]
        return tot >= math.ceil(frac * p * p - 1e-9)

    def _candidates(self, windows: WindowsArg, split: str | None, ok_maps: list[np.ndarray],
                    stride: int | None) -> list[np.ndarray]:
        """Per scene: int64 ``(n, 2)`` window origins ``(row_off, col_off)``."""
        p, n = self.patch_size, len(self.scenes)
        random = self.samples_per_epoch is not None
        out: list[np.ndarray] = []
        if isinstance(windows, SplitMap):
            windows = [windows]
        if windows is None or (len(windows) and isinstance(windows[0], SplitMap)):
            if windows is not None and len(windows) != n:
                raise InputError(f"give one SplitMap per scene ({n}); got {len(windows)}.")
            if windows is not None and split is None:
                raise InputError("a SplitMap needs split='train', 'val' or 'test'.")
            for i, s in enumerate(self.scenes):
                if windows is None:
                    allowed = np.ones((s.shape[0] - p + 1, s.shape[1] - p + 1), dtype=bool)
                    sm = SplitMap(np.zeros(s.shape, dtype=np.int8))
                else:
                    sm = windows[i]
                    if sm.shape != s.shape:
                        raise InputError(f"split map {sm.shape} does not match scene "
                                         f"{s.name!r} {s.shape}.")
                    allowed = sm.valid_origins(split, p)
                allowed = allowed & ok_maps[i]
                if random:
                    r, c = np.nonzero(allowed)
                else:
                    wins = sm.windows(split if windows is not None else 0, p, stride)
                    rc = np.array([(int(w.row_off), int(w.col_off)) for w in wins],
                                  dtype=np.int64).reshape(-1, 2)
                    keep = allowed[rc[:, 0], rc[:, 1]] if len(rc) else np.zeros(0, bool)
                    r, c = rc[keep, 0], rc[keep, 1]
                out.append(np.stack([r, c], axis=1).astype(np.int64))
            return out
        if split is not None:
            raise InputError("split= is only used with SplitMap windows.")
        if len(windows) != n:
            raise InputError(f"give one list of windows per scene ({n}); got {len(windows)}.")
        for i, (s, wins) in enumerate(zip(self.scenes, windows, strict=True)):
            rc = []
            for w in wins:
                r0, c0 = int(w.row_off), int(w.col_off)
                if (int(w.width), int(w.height)) != (p, p) or r0 != w.row_off or \
                        c0 != w.col_off:
                    raise InputError(f"window {w} of scene {s.name!r} is not an integer "
                                     f"{p}×{p} window.")
                if r0 < 0 or c0 < 0 or r0 + p > s.shape[0] or c0 + p > s.shape[1]:
                    raise InputError(f"window {w} lies outside scene {s.name!r} "
                                     f"({s.shape[0]}×{s.shape[1]} px).")
                if ok_maps[i][r0, c0]:
                    rc.append((r0, c0))
            out.append(np.array(rc, dtype=np.int64).reshape(-1, 2))
        return out

    # ------------------------------------------------------------------ epochs
    @property
    def epoch(self) -> int:
        """Current epoch (shared with DataLoader workers)."""
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose samples/augmentations ``__getitem__`` returns."""
        self._epoch[0] = int(epoch)

    @property
    def n_windows(self) -> int:
        """Number of candidate windows (or origins, in random mode) over all scenes."""
        return int(self._cum[-1])

    def __len__(self) -> int:
        return self.samples_per_epoch if self.samples_per_epoch is not None else self.n_windows

    def _pick(self, index: int, rng: np.random.Generator) -> tuple[int, int, int]:
        if self.samples_per_epoch is None:
            if not 0 <= index < self.n_windows:
                raise IndexError(index)
            k = index
        else:
            if not 0 <= index < self.samples_per_epoch:
                raise IndexError(index)
            k = int(rng.integers(self.n_windows))
        si = int(np.searchsorted(self._cum, k, side="right") - 1)
        r0, c0 = self._origins[si][k - self._cum[si]]
        return si, int(r0), int(c0)

    # ------------------------------------------------------------------ items
    def _item(self, index: int, labels: list[np.ndarray] | None) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        if self.layout.timed:
            return self._series_item(index, labels, rng)
        si, r0, c0 = self._pick(int(index), rng)
        scene = self.scenes[si]
        p = self.patch_size
        raw = scene.data[:, r0:r0 + p, c0:c0 + p].astype(np.float32, copy=True)
        y = None if labels is None else labels[si][r0:r0 + p, c0:c0 + p].astype(np.int64)
        present = np.array(scene.present, dtype=np.float32)
        aug = self.augment
        # Draw every random number in a fixed order, whatever the options.
        u = rng.random(6)
        if aug is not None and aug.gamma is not None and self._optical.any():
            lo, hi = aug.gamma
            g = math.exp(math.log(lo) + u[0] * (math.log(hi) - math.log(lo)))
            ref = self._gamma_ref[self._optical][:, None, None]
            raw[self._optical] = ref * (np.maximum(raw[self._optical], 0) / ref) ** g
        valid = np.isfinite(raw)
        x = self.norm.apply(raw)
        noise = rng.standard_normal(x.shape, dtype=np.float32)
        if aug is not None and aug.noise_std > 0:
            x += aug.noise_std * noise * valid
        vmask = valid[np.repeat(present > 0, self.layout.group_channels)].all(axis=0) \
            if present.any() else np.zeros((p, p), dtype=bool)
        if aug is not None:
            k = int(u[1] * 4) if aug.rot90 else 0
            fh = aug.flips and u[2] < 0.5
            fv = aug.flips and u[3] < 0.5
            x, y, vmask = (_dihedral(a, k, fh, fv) if a is not None else None
                           for a in (x, y, vmask))
        drop_u = rng.random(self.layout.n_groups)
        if aug is not None and aug.group_dropout > 0:
            avail = present > 0
            drop = avail & self._droppable & (drop_u < aug.group_dropout)
            if drop.any() and not (avail & ~drop).any():
                cand = np.flatnonzero(drop)
                drop[cand[int(u[4] * len(cand))]] = False
            for gi in np.flatnonzero(drop):
                x[self._slices[gi]] = 0.0
                present[gi] = 0.0
        cond = self._cond(si, scene, r0, c0)
        if self.p_unknown > 0 and u[5] < self.p_unknown:
            cond = self.cond.unknown()
        out: dict[str, Any] = {
            "x": torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
            "present": torch.from_numpy(present),
            "cond": torch.from_numpy(np.ascontiguousarray(cond, dtype=np.float32)),
        }
        if y is not None:
            out["y"] = torch.from_numpy(np.ascontiguousarray(y))
        else:
            out["valid"] = torch.from_numpy(np.ascontiguousarray(vmask))
        out.update(scene=si, row=r0, col=c0)
        return out

    def _series_item(self, index: int, labels: list[np.ndarray] | None,
                     rng: np.random.Generator) -> dict[str, Any]:
        """An item of a layout with timed groups: ``series``, ``dates``, ``mask`` (+ ``x``)."""
        si, r0, c0 = self._pick(int(index), rng)
        scene = self.scenes[si]
        p = self.patch_size
        raw = scene.series[:, :, r0:r0 + p, c0:c0 + p].astype(np.float32, copy=True)
        t = raw.shape[0]
        y = None if labels is None else labels[si][r0:r0 + p, c0:c0 + p].astype(np.int64)
        aug = self.augment
        # Draw every random number in a fixed order, whatever the options.
        u = rng.random(4)
        valid = np.isfinite(raw)
        x = self._series_norm.apply(raw)  # (T, S, p, p): T plays the batch axis
        noise = rng.standard_normal(x.shape, dtype=np.float32)
        offsets = rng.standard_normal(t).astype(np.float32)
        jitter = rng.uniform(-1.0, 1.0, t)
        drop_u = rng.random(t)
        if aug is not None and aug.noise_std > 0:
            x += aug.noise_std * noise * valid
        if aug is not None and aug.date_offset_std > 0:
            x += aug.date_offset_std * offsets[:, None, None, None] * valid
        vmask = valid.all(axis=1).any(axis=0)
        static = None
        if self._static_norm is not None:
            static = self._static_norm.apply(scene.data[:, r0:r0 + p, c0:c0 + p])
        if aug is not None:
            k = int(u[0] * 4) if aug.rot90 else 0
            fh = aug.flips and u[1] < 0.5
            fv = aug.flips and u[2] < 0.5
            x, y, vmask, static = (_dihedral(a, k, fh, fv) if a is not None else None
                                   for a in (x, y, vmask, static))
        dates = np.asarray(scene.dates, dtype=np.float64).copy()
        mask = valid.any(axis=(1, 2, 3)).astype(np.float32)  # a date without data: missing
        if aug is not None and aug.date_jitter_days > 0:
            dates += aug.date_jitter_days * jitter
        if aug is not None and aug.date_dropout > 0:
            drop = (mask > 0) & (drop_u < aug.date_dropout)
            if drop.any() and not ((mask > 0) & ~drop).any():
                cand = np.flatnonzero(drop)
                drop[cand[int(u[3] * len(cand))]] = False
            x[drop] = 0.0
            mask[drop] = 0.0
        pad = self.max_dates - t
        series = np.zeros((self.max_dates, *x.shape[1:]), dtype=np.float32)
        series[:t] = x
        out: dict[str, Any] = {
            "series": torch.from_numpy(series),
            "dates": torch.from_numpy(np.concatenate([dates, np.full(pad, dates[-1])])
                                      .astype(np.float32)),
            "mask": torch.from_numpy(np.concatenate([mask, np.zeros(pad, np.float32)])),
        }
        if static is not None:
            out["x"] = torch.from_numpy(np.ascontiguousarray(static, dtype=np.float32))
            out["present"] = torch.from_numpy(
                np.array(scene.present, dtype=np.float32)[self._static_groups])
        if y is not None:
            out["y"] = torch.from_numpy(np.ascontiguousarray(y))
        else:
            out["valid"] = torch.from_numpy(np.ascontiguousarray(vmask))
        out.update(scene=si, row=r0, col=c0)
        return out

    def _cond(self, si: int, scene: SceneStack, r0: int, c0: int) -> np.ndarray:
        if self.cond.kind != "coords":
            if si not in self._cond_cache:
                self._cond_cache[si] = self.cond.vector(scene)
            return self._cond_cache[si].copy()
        return self.cond.vector(scene, Window(c0, r0, self.patch_size, self.patch_size))


def _dihedral(a: np.ndarray, k: int, fh: bool, fv: bool) -> np.ndarray:
    """Rotate by k·90° then flip, on the last two axes."""
    if k:
        a = np.rot90(a, k, axes=(-2, -1))
    if fh:
        a = a[..., :, ::-1]
    if fv:
        a = a[..., ::-1, :]
    return a


class PatchDataset(_PatchBase):
    """Labelled ``P×P`` training patches from one or more scenes.

    Args:
        scenes: Scene stacks sharing one layout.
        labels: One ``uint8 (H, W)`` label map per scene (255 ignore). Scene nodata (any NaN
            channel of a present group) is set to ignore here.
        windows: Where patches may come from: a :class:`~glacierkit.dl.split.SplitMap` (one
            scene) or one per scene, with ``split``; or one list of P×P windows per scene;
            or ``None`` for the whole scenes.
        split: ``"train"``, ``"val"`` or ``"test"`` with SplitMap windows.
        patch_size: Patch edge P (px).
        norm: Normalisation statistics (``C`` channels).
        cond: Conditioning (default none: ``"cond"`` is an empty tensor).
        augment: Augmentations, or ``None`` (evaluation).
        samples_per_epoch: ``None``: every window once per epoch, in order (SplitMap: the
            lattice of :meth:`SplitMap.windows` with ``stride``). An int: that many random
            windows per epoch, drawn with replacement (SplitMap: from every origin whose
            patch lies wholly in the split; window lists: from the lists).
        seed: Seed of all random choices (see the module docstring).
        stride: Lattice stride for ``samples_per_epoch=None`` with a SplitMap (default P).
        min_labelled: Skip windows whose share of labelled (non-ignore) pixels is below
            this (0 keeps all). Windows are filtered up front, so random sampling never
            returns one.
        p_unknown: Region conditioning only: probability of replacing an item's region
            code by the unknown slot (trains the model to work for unseen regions).

    Items: see the module docstring.
    """

    def __init__(self, scenes: Sequence[SceneStack], labels: Sequence[np.ndarray],
                 windows: WindowsArg = None, *, split: str | None = None, patch_size: int,
                 norm: NormStats, cond: CondSpec | None = None, augment: Augment | None = None,
                 samples_per_epoch: int | None = None, seed: int = 0,
                 stride: int | None = None, min_labelled: float = 0.0,
                 p_unknown: float = 0.0) -> None:
        if len(labels) != len(scenes):
            raise InputError(f"give one label map per scene ({len(scenes)}); got "
                             f"{len(labels)}.")
        self.labels = [mask_invalid(lab, s) for lab, s in zip(labels, scenes, strict=True)]
        super().__init__(scenes, [lab != IGNORE for lab in self.labels], windows, split=split,
                         patch_size=patch_size, norm=norm, cond=cond, augment=augment,
                         samples_per_epoch=samples_per_epoch, seed=seed, stride=stride,
                         min_fraction=min_labelled, p_unknown=p_unknown, what="PatchDataset")

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self._item(int(index), self.labels)


class UnlabelledPatchDataset(_PatchBase):
    """Unlabelled ``P×P`` patches (e.g. target-region scenes for entropy minimisation).

    Arguments as for :class:`PatchDataset`, without labels; ``min_valid`` skips windows whose
    share of valid pixels (every present group has data) is below it (default 0.5). Items
    have no ``"y"`` but ``"valid": bool (P, P)``.
    """

    def __init__(self, scenes: Sequence[SceneStack], windows: WindowsArg = None, *,
                 split: str | None = None, patch_size: int, norm: NormStats,
                 cond: CondSpec | None = None, augment: Augment | None = None,
                 samples_per_epoch: int | None = None, seed: int = 0,
                 stride: int | None = None, min_valid: float = 0.5,
                 p_unknown: float = 0.0) -> None:
        super().__init__(scenes, [s.valid_mask() for s in scenes], windows, split=split,
                         patch_size=patch_size, norm=norm, cond=cond, augment=augment,
                         samples_per_epoch=samples_per_epoch, seed=seed, stride=stride,
                         min_fraction=min_valid, p_unknown=p_unknown,
                         what="UnlabelledPatchDataset")

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self._item(int(index), None)
