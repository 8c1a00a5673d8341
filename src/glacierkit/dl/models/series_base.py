"""Common interface of the SAR image time-series segmentation models.

Every series model maps a stack of co-registered acquisitions to one segmentation map::

    model = ICEmapper3D(group_channels=(1, 1), n_classes=2, size="tiny")
    logits = model(series, dates, mask)                   # (B, n_classes, H, W)
    main, aux = model.forward_aux(series, dates, mask)    # aux: list of (B, n_classes, H, W)

Inputs (names fixed, also in the exported ONNX graph):

* ``series`` ``(B, T, S, H, W)`` float32: ``T`` dates, ``S = sum(group_channels)`` normalised
  channels per date (e.g. VV in dB and coherence), ``H``/``W`` multiples of
  ``model.multiple``. Missing dates and padding are all zero.
* ``dates`` ``(B, T)`` float32: acquisition dates in days since a reference date (e.g.
  1 January of the mapped year; negative or > 365 allowed), ascending, possibly irregular.
  Only date-aware models (``model.date_aware``) use the values; the others use the order.
* ``mask`` ``(B, T)`` float32: 1 for an observed date, 0 for padding or a dropped date.
  Masked dates do not influence the output (their data are never read). A sample without any
  observed date gives finite (meaningless) logits rather than NaN.

Models with a fixed number of dates (``model.time_steps`` an int) reject any other ``T``;
``time_steps is None`` accepts any ``T >= 1``, also in the exported graph
(:func:`series_dynamic_shapes`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from glacierkit.dl.models.blocks import UpBlock, check_model_args, checks_enabled, seg_head
from glacierkit.errors import InputError

__all__ = [
    "SERIES_INPUTS",
    "ResidualDecoder",
    "SeriesSegmentationModel",
    "resolve_config",
    "series_dynamic_shapes",
]

#: Input names of every series model (and of its ONNX graph), in call order.
SERIES_INPUTS: tuple[str, str, str] = ("series", "dates", "mask")


def resolve_config(arch: str, presets: Mapping[str, Mapping[str, Any]], size: str,
                   overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The size preset ``presets[size]`` updated with ``overrides`` (unknown keys rejected).

    Raises:
        InputError: unknown size or override key.
    """
    if size not in presets:
        raise InputError(f"unknown size {size!r} for {arch}; choose one of "
                         f"{', '.join(presets)}.")
    config = dict(presets[size])
    unknown = sorted(set(overrides) - set(config))
    if unknown:
        raise InputError(f"unknown hyper-parameter(s) {', '.join(unknown)} for {arch}; "
                         f"allowed: {', '.join(sorted(config))}.")
    config.update(overrides)
    return config


def _int_tuple(arch: str, key: str, value: Any, *, min_len: int, min_value: int) -> tuple:
    try:
        out = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"{arch}: {key} must be a list of integers; got {value!r}.") from None
    if len(out) < min_len or any(v < min_value for v in out):
        raise InputError(f"{arch}: {key} must list at least {min_len} values >= {min_value}; "
                         f"got {value!r}.")
    return out


def _pos_int(arch: str, key: str, value: Any) -> int:
    try:
        out = int(value)
    except (TypeError, ValueError):
        raise InputError(f"{arch}: {key} must be a positive integer; got {value!r}.") from None
    if out < 1 or out != value:
        raise InputError(f"{arch}: {key} must be a positive integer; got {value!r}.")
    return out


class SeriesSegmentationModel(nn.Module):
    """Base class of the time-series segmentation models (see the module docstring).

    Subclasses implement :meth:`_run` ``(series, dates, mask, with_aux) -> (main, aux)`` with
    ``main`` ``(B, K, H, W)`` and ``aux`` a list of logits at their own resolution; this class
    validates and casts the inputs, zeroes the data of masked dates and upsamples ``aux`` to
    ``(H, W)``.

    Attributes:
        arch: architecture name (``"icemapper3d"``, ``"convlstm"``, ``"utae"``).
        size: the size preset the model was built from.
        n_classes: number of classes ``K`` of the logits.
        group_channels: channels per date of each source group (``S = sum``).
        cond_dim: always 0 (the series models take no conditioning vector).
        multiple: ``H`` and ``W`` must be multiples of it.
        dropout_p: dropout probability of the decoder (Monte-Carlo dropout uses it).
        config: the resolved hyper-parameters (JSON-serialisable values).
        inputs: ``("series", "dates", "mask")``.
        time_steps: the fixed number of dates ``T`` the model needs, or ``None`` (any).
        date_aware: whether the values of ``dates`` are used (else only their order).
    """

    arch: str = ""
    inputs: tuple[str, ...] = SERIES_INPUTS
    date_aware: bool = False

    def __init__(self, *, group_channels: Sequence[int], n_classes: int, cond_dim: int,
                 size: str, multiple: int, dropout: float, time_steps: int | None):
        super().__init__()
        gc = check_model_args(group_channels, n_classes, dropout,
                              what="channels per date per source group", example="(1, 1)")
        if int(cond_dim) != 0:
            raise InputError(f"the {self.arch} series model takes no conditioning vector; "
                             f"cond_dim must be 0, got {cond_dim}.")
        if time_steps is not None and int(time_steps) < 1:
            raise InputError(f"time_steps must be >= 1 (or None for any); got {time_steps}.")
        self.group_channels = gc
        self.n_classes = int(n_classes)
        self.cond_dim = 0
        self.size = str(size)
        self.multiple = int(multiple)
        self.dropout_p = float(dropout)
        self.time_steps = None if time_steps is None else int(time_steps)
        self.config: dict[str, Any] = {}

    @property
    def n_channels(self) -> int:
        """Channels per date ``S = sum(group_channels)``."""
        return int(sum(self.group_channels))

    # -- inputs ---------------------------------------------------------------------------

    def _prepare(self, series: Tensor, dates: Tensor | None,
                 mask: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """Validate (eager mode only) and return ``(series * mask, dates, mask)``."""
        if checks_enabled(series):
            self._check(series, dates, mask)
        b, t = series.shape[0], series.shape[1]
        if mask is None:
            mask = series.new_ones((b, t))
        else:
            mask = mask.to(dtype=series.dtype)
        if dates is None:
            dates = torch.arange(t, dtype=series.dtype, device=series.device)[None].expand(b, t)
        else:
            dates = dates.to(dtype=series.dtype)
        # masked dates are never read: their data become the all-zero padding
        series = series * mask[:, :, None, None, None]
        return series, dates, mask

    def _check(self, series: Tensor, dates: Tensor | None, mask: Tensor | None) -> None:
        if series.ndim != 5:
            raise InputError(
                f"series must be a (B, T, S, H, W) batch (dates, channels per date, rows, "
                f"columns); got shape {tuple(series.shape)}. Add a batch axis (series[None]) "
                "for a single tile.")
        if not series.is_floating_point():
            raise InputError(f"series must be floating point (float32, normalised); got "
                             f"{series.dtype}.")
        b, t, s, h, w = series.shape
        if s != self.n_channels:
            raise InputError(
                f"series has {s} channels per date but the model expects {self.n_channels} "
                f"= sum of group_channels {self.group_channels}; stack the source groups of "
                "each date in the layout order used for training.")
        if t < 1:
            raise InputError("series has no dates (T = 0); at least one date is needed.")
        if self.time_steps is not None and t != self.time_steps:
            raise InputError(
                f"{type(self).__name__} was built for exactly {self.time_steps} dates "
                f"(time_steps) but series has T = {t}; pad with all-zero dates (mask 0) or "
                f"drop dates to {self.time_steps}, or rebuild with time_steps={t}.")
        if h % self.multiple or w % self.multiple:
            m = self.multiple
            raise InputError(
                f"tile size {h}×{w} px is not a multiple of {m} px (model.multiple); pad the "
                f"tile to {-(-h // m) * m}×{-(-w // m) * m} px and crop the output back.")
        for name, v in (("dates", dates), ("mask", mask)):
            if v is None:
                if name == "dates" and self.date_aware:
                    raise InputError(f"{type(self).__name__} uses the acquisition dates; pass "
                                     "dates (B, T) in days since the reference date.")
                continue
            if tuple(v.shape) != (b, t):
                raise InputError(f"{name} must have shape (B, T) = ({b}, {t}) (one value per "
                                 f"sample and date); got {tuple(v.shape)}.")
            if not v.is_floating_point():
                raise InputError(f"{name} must be float32; got {v.dtype}.")
            if not bool(torch.isfinite(v).all()):
                raise InputError(f"{name} has NaN or infinite values; use 0 (mask) and any "
                                 "finite date for padded dates.")
        if mask is not None and not bool(((mask == 0) | (mask == 1)).all()):
            raise InputError("mask must be 1 (observed date) or 0 (padding / dropped date); "
                             "got other values.")

    # -- forward --------------------------------------------------------------------------

    def _run(self, series: Tensor, dates: Tensor, mask: Tensor,
             with_aux: bool) -> tuple[Tensor, list[Tensor]]:
        raise NotImplementedError

    def forward(self, series: Tensor, dates: Tensor | None = None,
                mask: Tensor | None = None) -> Tensor:
        """Logits ``(B, n_classes, H, W)`` for ``series`` ``(B, T, S, H, W)``.

        ``dates`` ``(B, T)`` days since the reference date (required when ``date_aware``;
        default for the others: ``0, 1, …, T-1``); ``mask`` ``(B, T)`` 1 = observed date,
        0 = padding (default: all observed).
        """
        series, dates, mask = self._prepare(series, dates, mask)
        main, _ = self._run(series, dates, mask, False)
        return main

    def forward_aux(self, series: Tensor, dates: Tensor | None = None,
                    mask: Tensor | None = None) -> tuple[Tensor, list[Tensor]]:
        """Main logits and the deep-supervision logits, all ``(B, n_classes, H, W)``.

        The auxiliary list is ordered finest first (decoder strides 4 and 8), matching the
        default weights of :func:`glacierkit.dl.losses.deep_supervision_loss`.
        """
        series, dates, mask = self._prepare(series, dates, mask)
        main, aux = self._run(series, dates, mask, True)
        size = (series.shape[3], series.shape[4])
        aux = [F.interpolate(a, size=size, mode="bilinear", align_corners=False) for a in aux]
        return main, aux


def series_dynamic_shapes(model: SeriesSegmentationModel) -> dict[str, dict[int, Any]]:
    """``dynamic_shapes`` for ``torch.onnx.export(model, (series, dates, mask), dynamo=True)``.

    Batch is dynamic; ``H`` and ``W`` are dynamic multiples of ``model.multiple``; the number
    of dates ``T`` is dynamic when ``model.time_steps is None`` and fixed (the example's
    ``T``) otherwise. Export with a batch of at least 2 and, for a dynamic ``T``, at least 2
    dates (``torch.export`` specialises dimensions of size 0 and 1).
    """
    dim = torch.export.Dim
    batch = dim("batch", min=1, max=4096)
    h = model.multiple * dim("h_blocks", min=1, max=4096)
    w = model.multiple * dim("w_blocks", min=1, max=4096)
    series: dict[int, Any] = {0: batch, 3: h, 4: w}
    per_date: dict[int, Any] = {0: batch}
    if model.time_steps is None:
        t = dim("time", min=1, max=4096)
        series[1] = t
        per_date[1] = t
    return {"series": series, "dates": dict(per_date), "mask": dict(per_date)}


class ResidualDecoder(nn.Module):
    """2D residual U-Net decoder shared by the 3D-conv and ConvLSTM series models.

    ``bottom`` ``(B, c_bottom, H / 2^L, W / 2^L)`` and ``skips`` (finest first,
    ``(B, widths[i], H / 2^i, W / 2^i)``) → logits ``(B, K, H, W)``: per scale an
    :class:`~glacierkit.dl.models.blocks.UpBlock` (2× transposed conv, skip concatenation,
    residual block with Dropout2d), then a 1×1 head. Auxiliary heads sit on the decoder
    features at strides 4 and 8 (finest first), where the depth allows.
    """

    def __init__(self, c_bottom: int, widths: Sequence[int], n_classes: int, dropout: float):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        dec_in = (c_bottom, *widths[:0:-1])
        self.ups = nn.ModuleList(UpBlock(c, w, w, dropout=dropout)
                                 for c, w in zip(dec_in, widths[::-1], strict=True))
        self.head = seg_head(widths[0], n_classes)
        n = len(widths)
        strides = [2 ** n] + [2 ** i for i in range(n - 1, -1, -1)]
        feat_widths = [c_bottom, *widths[::-1]]
        self._aux_index = [strides.index(s) for s in (4, 8) if s in strides]
        self.aux_heads = nn.ModuleList(seg_head(feat_widths[i], n_classes)
                                       for i in self._aux_index)

    def forward(self, bottom: Tensor, skips: Sequence[Tensor],
                with_aux: bool) -> tuple[Tensor, list[Tensor]]:
        """``(main (B, K, H, W), aux at strides 4, 8)``; ``aux`` empty unless ``with_aux``."""
        h = bottom
        feats = [h]
        for up, skip in zip(self.ups, list(skips)[::-1], strict=True):
            h = up(h, skip)
            feats.append(h)
        main = self.head(h)
        if not with_aux:
            return main, []
        return main, [head(feats[i]) for head, i in zip(self.aux_heads, self._aux_index,
                                                         strict=True)]
