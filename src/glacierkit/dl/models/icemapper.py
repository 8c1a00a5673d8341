"""ICEmapper: 3D-convolutional residual U-Net for SAR image time series.

After Maslov, Schellenberger, Persello and Stein (IGARSS 2024), "Glacier mapping from
Sentinel-1 SAR time series with deep learning in Svalbard". Layout (``L = len(widths)``,
default 3 scales, ``T = time_steps``, default 15)::

    series (B, T, S, H, W) → (B, S, T, H, W), masked dates zeroed
      per scale i < L: Res3D block → (B, w_i, T_i, H/2^i, W/2^i)
          skip_i = temporal weighting over T_i                    (B, w_i, H/2^i, W/2^i)
          masked max pooling (2, 2, 2), T_{i+1} = ceil(T_i / 2)    (T 15 → 8 → 4 → 2)
      bottleneck: Res3D block (w_b) + temporal weighting          (B, w_b, H/2^L, W/2^L)
      2D residual U-Net decoder (transposed conv, skip, ResBlock + Dropout2d) → 1×1 head
                                                                  (B, K, H, W) logits

* Res3D block: ``act(GN(conv3³(act(GN(conv3³ x)))))`` + a 1×1×1 projection of ``x``. The
  GroupNorm statistics come from observed dates only, and features of masked dates are reset
  to zero after every block, so padding looks the same at every depth.
* Temporal weighting (the paper's learned temporal pooling): per date the global average over
  the tile ``(B, C, T)``, two 1D convolutions over time (kernel 3, SiLU between), sigmoid →
  per-channel weights ``(B, C, T)``; multiplied by the stage's mask and normalised by their
  sum, they give a weighted mean over the dates. Masked dates get weight 0.
* Masked max pooling: masked dates are pushed to ``-1e4`` before a 2×2×2 max pooling (an odd
  ``T`` is padded by one masked date: ceil mode), a pooled date is observed if either of its
  two dates is, and fully masked pooled dates are reset to zero.

The model needs exactly ``time_steps`` dates (the pooling schedule depends on it); it uses
their order, not the date values (``date_aware = False``). ``multiple = 2**L``. The
reference implementation's softmax head is plain logits here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from glacierkit.dl.models.blocks import norm2d
from glacierkit.dl.models.series_base import (
    ResidualDecoder,
    SeriesSegmentationModel,
    _int_tuple,
    _pos_int,
    resolve_config,
)

__all__ = ["ICEMAPPER3D_SIZES", "ICEmapper3D"]

#: Size presets. "base" follows the paper (widths 32-64-128, bottleneck 256, 15 dates).
ICEMAPPER3D_SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"widths": (8, 16, 32), "bottleneck": 64, "time_steps": 15},
    "small": {"widths": (16, 32, 64), "bottleneck": 128, "time_steps": 15},
    "base": {"widths": (32, 64, 128), "bottleneck": 256, "time_steps": 15},
}

#: Value given to masked dates before max pooling (finite, so ONNX stays finite).
_MASKED = 1.0e4


class MaskedGroupNorm3d(nn.Module):
    """GroupNorm over ``(C / G, T, H, W)`` whose statistics use observed dates only.

    ``x`` ``(B, C, T, H, W)``, ``m`` ``(B, 1, T, 1, 1)`` (1 observed, 0 masked) → normalised
    ``x`` with per-channel affine, masked dates set to 0. ``G`` as in
    :func:`~glacierkit.dl.models.blocks.norm2d`.
    """

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.groups = norm2d(channels).num_groups
        self.channels = int(channels)
        self.eps = float(eps)
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor, m: Tensor) -> Tensor:
        """``(B, C, T, H, W), (B, 1, T, 1, 1) -> (B, C, T, H, W)``."""
        g = self.groups
        xg = x.unflatten(1, (g, self.channels // g))  # (B, G, C/G, T, H, W)
        mg = m.unsqueeze(1)  # (B, 1, 1, T, 1, 1)
        count = mg.sum(dim=3, keepdim=True).clamp_min(1.0)  # observed dates
        mean = (xg * mg).mean(dim=(2, 4, 5), keepdim=True).sum(dim=3, keepdim=True) / count
        d = (xg - mean) * mg
        var = (d * d).mean(dim=(2, 4, 5), keepdim=True).sum(dim=3, keepdim=True) / count
        y = (d * torch.rsqrt(var + self.eps)).flatten(1, 2)
        return y * self.weight[:, None, None, None] + self.bias[:, None, None, None] * m


class Res3DBlock(nn.Module):
    """Residual block of two 3×3×3 convolutions with masked GroupNorm and SiLU.

    ``x`` ``(B, c_in, T, H, W)``, ``m`` ``(B, 1, T, 1, 1)`` → ``(B, c_out, T, H, W)`` with
    masked dates zero.
    """

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        # All 3D convolutions keep their bias (as in the reference): onnxscript's conv3d
        # conversion (0.7) builds a wrongly shaped zero bias for bias-free 3D convolutions,
        # which ONNX Runtime rejects unless the graph optimiser happens to remove it.
        self.conv1 = nn.Conv3d(c_in, c_out, 3, padding=1)
        self.norm1 = MaskedGroupNorm3d(c_out)
        self.conv2 = nn.Conv3d(c_out, c_out, 3, padding=1)
        self.norm2 = MaskedGroupNorm3d(c_out)
        self.proj = nn.Conv3d(c_in, c_out, 1)
        self.act = nn.SiLU()

    def forward(self, x: Tensor, m: Tensor) -> Tensor:
        """``(B, c_in, T, H, W), (B, 1, T, 1, 1) -> (B, c_out, T, H, W)``."""
        h = self.act(self.norm1(self.conv1(x), m))
        h = self.act(self.norm2(self.conv2(h), m))
        return (h + self.proj(x)) * m


class TemporalWeighting(nn.Module):
    """Learned temporal weighting that collapses the dates of a feature map.

    ``x`` ``(B, C, T, H, W)``, ``m`` ``(B, 1, T, 1, 1)`` → ``(B, C, H, W)``: the weighted mean
    over the observed dates with per-channel weights ``sigmoid(conv1d(SiLU(conv1d(GAP(x)))))``
    (kernel 3 over time). A sample without observed dates gives zeros.
    """

    def __init__(self, channels: int):
        super().__init__()
        hidden = max(channels // 2, 4)
        self.conv1 = nn.Conv1d(channels, hidden, 3, padding=1)
        self.conv2 = nn.Conv1d(hidden, channels, 3, padding=1)

    def forward(self, x: Tensor, m: Tensor) -> Tensor:
        """``(B, C, T, H, W), (B, 1, T, 1, 1) -> (B, C, H, W)``."""
        g = x.mean(dim=(3, 4))  # (B, C, T)
        w = torch.sigmoid(self.conv2(F.silu(self.conv1(g))))[:, :, :, None, None] * m
        return (x * w).sum(dim=2) / w.sum(dim=2).clamp_min(1e-6)


def masked_max_pool(x: Tensor, m: Tensor) -> tuple[Tensor, Tensor]:
    """2×2×2 max pooling that ignores masked dates (ceil mode over time).

    ``x`` ``(B, C, T, H, W)``, ``m`` ``(B, 1, T, 1, 1)`` →
    ``(B, C, ceil(T/2), H/2, W/2), (B, 1, ceil(T/2), 1, 1)``. ``T`` must be a static size
    (the model's fixed number of dates).
    """
    x = x - (1.0 - m) * _MASKED
    if x.shape[2] % 2:
        x = F.pad(x, (0, 0, 0, 0, 0, 1), value=-_MASKED)
        m = F.pad(m, (0, 0, 0, 0, 0, 1), value=0.0)
    m = F.max_pool3d(m, (2, 1, 1))
    return F.max_pool3d(x, 2) * m, m


class ICEmapper3D(SeriesSegmentationModel):
    """ICEmapper 3D-conv residual U-Net; see the module docstring for the layout.

    Args:
        group_channels: channels per date of each source group (``S = sum``), e.g. ``(1,)``
            for VV dB or ``(1, 1)`` for VV dB and coherence.
        n_classes: classes ``K`` of the logits ``(B, K, H, W)``.
        cond_dim: must be 0.
        size: ``"tiny"`` (CPU, tests), ``"small"`` or ``"base"`` (paper); see
            :data:`ICEMAPPER3D_SIZES`.
        dropout: Dropout2d probability in the decoder's residual blocks.
        **config: overrides of the preset: ``widths`` (encoder widths per scale, at least 2),
            ``bottleneck`` (width), ``time_steps`` (the fixed number of dates ``T``).

    Inputs ``series`` ``(B, time_steps, S, H, W)``, ``dates`` ``(B, T)`` (unused),
    ``mask`` ``(B, T)``; ``H``, ``W`` multiples of ``2**len(widths)``.
    """

    arch = "icemapper3d"
    date_aware = False

    def __init__(self, *, group_channels: Sequence[int], n_classes: int, cond_dim: int = 0,
                 size: str = "tiny", dropout: float = 0.1, **config: Any):
        cfg = resolve_config(self.arch, ICEMAPPER3D_SIZES, size, config)
        widths = _int_tuple(self.arch, "widths", cfg["widths"], min_len=2, min_value=4)
        bottleneck = _pos_int(self.arch, "bottleneck", cfg["bottleneck"])
        time_steps = _pos_int(self.arch, "time_steps", cfg["time_steps"])
        super().__init__(group_channels=group_channels, n_classes=n_classes, cond_dim=cond_dim,
                         size=size, multiple=2 ** len(widths), dropout=dropout,
                         time_steps=time_steps)
        self.config = {"widths": list(widths), "bottleneck": bottleneck,
                       "time_steps": time_steps}
        c_in = (self.n_channels, *widths[:-1])
        self.stages = nn.ModuleList(Res3DBlock(c, w) for c, w in zip(c_in, widths, strict=True))
        self.bottleneck = Res3DBlock(widths[-1], bottleneck)
        self.collapse = nn.ModuleList(TemporalWeighting(w) for w in (*widths, bottleneck))
        self.decoder = ResidualDecoder(bottleneck, widths, self.n_classes, self.dropout_p)

    def _run(self, series: Tensor, dates: Tensor, mask: Tensor,
             with_aux: bool) -> tuple[Tensor, list[Tensor]]:
        x = series.transpose(1, 2)  # (B, S, T, H, W)
        m = mask[:, None, :, None, None]  # (B, 1, T, 1, 1)
        skips = []
        for stage, collapse in zip(self.stages, self.collapse, strict=False):
            x = stage(x, m)
            skips.append(collapse(x, m))
            x, m = masked_max_pool(x, m)
        x = self.bottleneck(x, m)
        bottom = self.collapse[-1](x, m)
        return self.decoder(bottom, skips, with_aux)
