"""U-TAE: U-Net with a lightweight temporal attention encoder, for image time series.

After Garnot and Landrieu (ICCV 2021), "Panoptic segmentation of satellite image time series
with convolutional temporal attention networks" (U-TAE, ~1.1 M parameters). Layout
(``L = len(encoder_widths)``, default 4)::

    series (B, T, S, H, W), masked dates zeroed, dates folded into the batch
      shared 2D encoder per date: 2 convs (e_0), then L-1 × [strided conv 4×4/2, conv,
      residual conv], each normalised over a sample's observed dates (GroupNorm over
      channel group × T × H × W) → features (B, T, e_i, H/2^i, W/2^i)
      L-TAE at the lowest resolution → (B, d_{L-1}, H/2^(L-1), W/2^(L-1)) and attention
          maps (B, n_head, T, h, w)
      skips i < L-1: attention maps upsampled (bilinear) to H/2^i, each head's weights
          collapse one group of e_i / n_head channels over the dates → (B, e_i, H/2^i, W/2^i)
      decoder: per scale transposed conv 4×4/2, 1×1 conv of the skip, concatenation, conv,
          Dropout2d, residual conv → conv 3×3 → 1×1 head      (B, K, H, W) logits

L-TAE (lightweight temporal attention encoder), per pixel over the dates:

1. GroupNorm per pixel over each group's channels and the observed dates (``n_head``
   groups, as the paper's over channels × ``T``; padded dates are left out of the
   statistics), linear projection to ``d_model``;
2. plus a sinusoidal encoding of the acquisition date (days, period ``pe_period = 1000`` as in
   the paper; ``d_model / n_head`` frequencies repeated for every head);
3. keys ``Linear(d_model → n_head·d_k)``; one learned master query per head; scores
   ``q·k / √d_k``; masked dates get ``-1e4`` (finite, so the exported graph and an all-masked
   sample stay finite; their weight underflows to exactly 0 otherwise); softmax over ``T``;
4. per head the attention-weighted sum of its ``d_model / n_head`` channels, concatenated,
   then ``1×1 conv → GN → ReLU``, dropout and an output GroupNorm (``n_head`` groups).

Differences from the reference: GroupNorm everywhere instead of BatchNorm; the encoder's
normalisation statistics span all observed dates of a sample instead of one date (a per-date
normalisation removes a whole patch's seasonal darkening, the signal of wet snow: with it a
tiny U-TAE did not learn the synthetic glacier series at all, val IoU ≈ 0.39 after 64 steps,
against 0.98 with it; the 3D-conv model reached 0.65); masked input normalisation in the
L-TAE (observed dates only); zero padding instead of reflection (any tile size works); no
dropout on the attention weights; Dropout2d in the decoder (Monte-Carlo dropout) and
auxiliary heads at strides 4 and 8. Any ``T >= 1`` (``time_steps = None``), also in the
exported ONNX graph; ``date_aware = True``; ``multiple = 2**(L-1)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from glacierkit.dl.models.blocks import norm2d, seg_head
from glacierkit.dl.models.icemapper import MaskedGroupNorm3d
from glacierkit.dl.models.series_base import (
    SeriesSegmentationModel,
    _int_tuple,
    _pos_int,
    resolve_config,
)
from glacierkit.errors import InputError

__all__ = ["UTAE", "UTAE_SIZES", "LTAE2d"]

#: Size presets. "base" is the paper's configuration (encoder 64-64-64-128, decoder
#: 32-32-64-128, 16 heads, d_model 256, d_k 4).
UTAE_SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"encoder_widths": (16, 16, 16, 32), "decoder_widths": (16, 16, 16, 32),
             "n_head": 4, "d_model": 32, "d_k": 4, "pe_period": 1000},
    "small": {"encoder_widths": (32, 32, 32, 64), "decoder_widths": (16, 16, 32, 64),
              "n_head": 8, "d_model": 128, "d_k": 4, "pe_period": 1000},
    "base": {"encoder_widths": (64, 64, 64, 128), "decoder_widths": (32, 32, 64, 128),
             "n_head": 16, "d_model": 256, "d_k": 4, "pe_period": 1000},
}

#: Attention score of a masked date (finite: see the module docstring).
_MASKED_SCORE = -1.0e4


def _conv(c_in: int, c_out: int, kernel: int = 3, stride: int = 1,
          padding: int = 1) -> nn.Sequential:
    """Conv → GroupNorm → ReLU: ``(B, c_in, H, W) -> (B, c_out, H / stride, W / stride)``."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding,
                                   bias=False),
                         norm2d(c_out), nn.ReLU())


class _TConv(nn.Module):
    """Shared per-date conv → GroupNorm over a sample's observed dates → ReLU.

    ``x`` ``(B·T, c_in, H, W)`` (dates folded into the batch), ``m`` ``(B, T)`` →
    ``(B·T, c_out, H / stride, W / stride)``. The normalisation statistics are taken over a
    channel group, every observed date and the tile (:class:`MaskedGroupNorm3d`), not per
    date: a per-date GroupNorm would remove what changes between dates at the scale of a
    patch (a glacier that darkens as a whole in the melt season).
    """

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1,
                 padding: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False)
        self.norm = MaskedGroupNorm3d(c_out)

    def forward(self, x: Tensor, m: Tensor) -> Tensor:
        """``(B·T, c_in, H, W), (B, T) -> (B·T, c_out, H', W')``."""
        y = self.conv(x)
        y5 = y.unflatten(0, (m.shape[0], m.shape[1])).transpose(1, 2)  # (B, C, T, H, W)
        y5 = self.norm(y5, m[:, None, :, None, None])
        return F.relu(y5.transpose(1, 2).flatten(0, 1))


class _Down(nn.Module):
    """Encoder step: strided 4×4 conv, conv, residual conv (each a :class:`_TConv`).

    ``(B·T, c_in, H, W), (B, T) -> (B·T, c_out, H/2, W/2)``.
    """

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.down = _TConv(c_in, c_in, 4, 2, 1)
        self.conv1 = _TConv(c_in, c_out)
        self.conv2 = _TConv(c_out, c_out)

    def forward(self, x: Tensor, m: Tensor) -> Tensor:
        """``(B·T, c_in, H, W), (B, T) -> (B·T, c_out, H/2, W/2)``."""
        h = self.conv1(self.down(x, m), m)
        return h + self.conv2(h, m)


class _Up(nn.Module):
    """Decoder step: ``x (B, c_in, h, w), skip (B, c_skip, 2h, 2w) -> (B, c_out, 2h, 2w)``."""

    def __init__(self, c_in: int, c_skip: int, c_out: int, dropout: float):
        super().__init__()
        self.up = nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1),
                                norm2d(c_out), nn.ReLU())
        self.skip = _conv(c_skip, c_skip, 1, 1, 0)
        self.conv1 = _conv(c_out + c_skip, c_out)
        self.drop = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = _conv(c_out, c_out)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        """Upsample ``x`` to the skip's resolution and merge them."""
        h = self.drop(self.conv1(torch.cat([self.up(x), self.skip(skip)], dim=1)))
        return h + self.conv2(h)


class LTAE2d(nn.Module):
    """Lightweight temporal attention encoder applied to every pixel of a feature map.

    ``x`` ``(B, T, C, h, w)``, ``dates`` ``(B, T)`` days, ``mask`` ``(B, T)`` → output
    ``(B, out_channels, h, w)`` and attention ``(B, n_head, T, h, w)`` (sums to 1 over ``T``;
    exactly 0 at masked dates when any date is observed). See the module docstring.
    """

    def __init__(self, in_channels: int, *, d_model: int, n_head: int, d_k: int,
                 out_channels: int, dropout: float, period: float = 1000.0):
        super().__init__()
        self.n_head, self.d_k, self.d_model = int(n_head), int(d_k), int(d_model)
        self.in_channels = int(in_channels)
        self.in_weight = nn.Parameter(torch.ones(in_channels))
        self.in_bias = nn.Parameter(torch.zeros(in_channels))
        self.in_proj = nn.Linear(in_channels, d_model)
        self.key = nn.Linear(d_model, n_head * d_k)
        self.query = nn.Parameter(torch.randn(n_head, d_k) * math.sqrt(2.0 / d_k))
        nn.init.normal_(self.key.weight, std=math.sqrt(2.0 / d_k))
        d = d_model // n_head
        i = torch.arange(d, dtype=torch.float32)
        exponent = 2.0 * torch.div(i, 2, rounding_mode="floor") / d
        denom = torch.pow(torch.tensor(float(period)), exponent)
        self.register_buffer("_pe_denom", denom.repeat(n_head), persistent=False)
        self.register_buffer("_pe_odd", (torch.arange(d) % 2 == 1).repeat(n_head),
                             persistent=False)
        self.mlp = _conv(d_model, out_channels, 1, 1, 0)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.out_norm = nn.GroupNorm(n_head, out_channels)

    def positional_encoding(self, dates: Tensor) -> Tensor:
        """Sinusoidal date encoding: ``(B, T)`` days -> ``(B, T, d_model)``."""
        angle = dates[:, :, None] / self._pe_denom
        return torch.where(self._pe_odd, torch.cos(angle), torch.sin(angle))

    def forward(self, x: Tensor, dates: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, T, C, h, w), (B, T), (B, T) -> ((B, out, h, w), (B, n_head, T, h, w))``."""
        v = x.permute(0, 3, 4, 1, 2)  # (B, h, w, T, C)
        g = v.unflatten(-1, (self.n_head, self.in_channels // self.n_head))
        # GroupNorm per pixel over a group's channels and the *observed* dates (as the
        # paper's, over channels × T): the differences between dates — the signal of a
        # season — survive; padded dates do not enter the statistics.
        m = (mask > 0.5).to(g.dtype)[:, None, None, :, None, None]  # (B, 1, 1, T, 1, 1)
        n = (m.sum(dim=3, keepdim=True) * g.shape[-1]).clamp(min=1.0)
        mean = (g * m).sum(dim=(3, 5), keepdim=True) / n
        var = ((g - mean) * m).pow(2).sum(dim=(3, 5), keepdim=True) / n
        v = ((g - mean) * torch.rsqrt(var + 1e-5)).flatten(-2) * self.in_weight + self.in_bias
        v = self.in_proj(v) + self.positional_encoding(dates)[:, None, None]  # (B,h,w,T,D)
        k = self.key(v).unflatten(-1, (self.n_head, self.d_k))  # (B, h, w, T, n_head, d_k)
        scores = (k * self.query).sum(dim=-1) * (1.0 / math.sqrt(self.d_k))  # (B,h,w,T,nh)
        observed = mask[:, None, None, :, None] > 0.5
        scores = torch.where(observed, scores, _MASKED_SCORE)
        attn = torch.softmax(scores, dim=3)
        heads = v.unflatten(-1, (self.n_head, self.d_model // self.n_head))
        out = (attn[..., None] * heads).sum(dim=3).flatten(-2)  # (B, h, w, D)
        out = self.out_norm(self.drop(self.mlp(out.permute(0, 3, 1, 2))))
        return out, attn.permute(0, 4, 3, 1, 2)


def aggregate_with_attention(x: Tensor, attn: Tensor) -> Tensor:
    """Collapse the dates of ``x`` with per-head attention maps ("att_group" of U-TAE).

    ``x`` ``(B, T, C, H, W)``, ``attn`` ``(B, n_head, T, h, w)`` (``h ≤ H``) →
    ``(B, C, H, W)``: the maps are upsampled bilinearly to ``(H, W)`` and head ``j`` weights
    channels ``[j C / n_head, (j + 1) C / n_head)``.
    """
    b, n_head, t = attn.shape[0], attn.shape[1], attn.shape[2]
    c, h, w = x.shape[2], x.shape[3], x.shape[4]
    a = F.interpolate(attn.flatten(1, 2), size=(h, w), mode="bilinear",
                      align_corners=False).reshape(b, n_head, t, h, w)
    groups = x.reshape(b, t, n_head, c // n_head, h, w)
    return (groups * a.transpose(1, 2)[:, :, :, None]).sum(dim=1).flatten(1, 2)


class UTAE(SeriesSegmentationModel):
    """U-TAE date-aware time-series segmentation model; see the module docstring.

    Args:
        group_channels: channels per date of each source group (``S = sum``).
        n_classes: classes ``K`` of the logits ``(B, K, H, W)``.
        cond_dim: must be 0.
        size: ``"tiny"``, ``"small"`` or ``"base"`` (paper); see :data:`UTAE_SIZES`.
        dropout: dropout probability after the L-TAE and in the decoder (Dropout2d).
        **config: overrides of the preset: ``encoder_widths`` / ``decoder_widths`` (same
            length ``L >= 2``; encoder widths divisible by ``n_head``), ``n_head``,
            ``d_model`` (divisible by ``n_head``), ``d_k``, ``pe_period`` (days).

    Inputs ``series`` ``(B, T, S, H, W)`` with any ``T >= 1``, ``dates`` ``(B, T)`` days since
    the reference date, ``mask`` ``(B, T)``; ``H``, ``W`` multiples of ``2**(L-1)``.
    """

    arch = "utae"
    date_aware = True

    def __init__(self, *, group_channels: Sequence[int], n_classes: int, cond_dim: int = 0,
                 size: str = "tiny", dropout: float = 0.1, **config: Any):
        cfg = resolve_config(self.arch, UTAE_SIZES, size, config)
        enc = _int_tuple(self.arch, "encoder_widths", cfg["encoder_widths"], min_len=2,
                         min_value=1)
        dec = _int_tuple(self.arch, "decoder_widths", cfg["decoder_widths"], min_len=2,
                         min_value=1)
        n_head = _pos_int(self.arch, "n_head", cfg["n_head"])
        d_model = _pos_int(self.arch, "d_model", cfg["d_model"])
        d_k = _pos_int(self.arch, "d_k", cfg["d_k"])
        try:
            period = float(cfg["pe_period"])
        except (TypeError, ValueError):
            period = float("nan")
        if not period > 0 or math.isinf(period):
            raise InputError(f"utae: pe_period must be a positive number of days; got "
                             f"{cfg['pe_period']!r}.")
        if len(enc) != len(dec):
            raise InputError(f"utae: encoder_widths and decoder_widths need the same length; "
                             f"got {list(enc)} and {list(dec)}.")
        bad = [w for w in (*enc, d_model, dec[-1]) if w % n_head]
        if bad:
            raise InputError(f"utae: encoder_widths, d_model and decoder_widths[-1] must be "
                             f"divisible by n_head={n_head}; got {bad}.")
        super().__init__(group_channels=group_channels, n_classes=n_classes, cond_dim=cond_dim,
                         size=size, multiple=2 ** (len(enc) - 1), dropout=dropout,
                         time_steps=None)
        self.config = {"encoder_widths": list(enc), "decoder_widths": list(dec),
                       "n_head": n_head, "d_model": d_model, "d_k": d_k,
                       "pe_period": period}
        self.in_conv = nn.ModuleList([_TConv(self.n_channels, enc[0]), _TConv(enc[0], enc[0])])
        self.down = nn.ModuleList(_Down(enc[i - 1], enc[i]) for i in range(1, len(enc)))
        self.ltae = LTAE2d(enc[-1], d_model=d_model, n_head=n_head, d_k=d_k,
                           out_channels=dec[-1], dropout=self.dropout_p, period=period)
        self.up = nn.ModuleList(_Up(dec[i], enc[i - 1], dec[i - 1], self.dropout_p)
                                for i in range(len(dec) - 1, 0, -1))
        self.out_conv = _conv(dec[0], dec[0])
        self.head = nn.Conv2d(dec[0], self.n_classes, 1)
        # decoder feature strides: L-TAE output 2^(L-1), then the up blocks 2^(L-2) ... 1
        n = len(enc)
        strides = [2 ** i for i in range(n - 1, -1, -1)]
        feat_widths = list(dec[::-1])
        self._aux_index = [strides.index(s) for s in (4, 8) if s in strides]
        self.aux_heads = nn.ModuleList(seg_head(feat_widths[i], self.n_classes)
                                       for i in self._aux_index)

    def _run(self, series: Tensor, dates: Tensor, mask: Tensor,
             with_aux: bool) -> tuple[Tensor, list[Tensor]]:
        b, t = series.shape[0], series.shape[1]
        h = series.flatten(0, 1)  # (B·T, S, H, W)
        for conv in self.in_conv:
            h = conv(h, mask)  # (B·T, e0, H, W)
        feats = [h]
        for down in self.down:
            h = down(h, mask)
            feats.append(h)
        out, attn = self.ltae(h.unflatten(0, (b, t)), dates, mask)
        dec = [out]
        for up, skip in zip(self.up, feats[-2::-1], strict=True):
            out = up(out, aggregate_with_attention(skip.unflatten(0, (b, t)), attn))
            dec.append(out)
        main = self.head(self.out_conv(out))
        if not with_aux:
            return main, []
        return main, [head(dec[i]) for head, i in zip(self.aux_heads, self._aux_index,
                                                       strict=True)]
