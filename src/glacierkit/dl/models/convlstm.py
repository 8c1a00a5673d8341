"""ConvLSTM U-Net: ICEmapper's recurrent variant for SAR image time series.

After the ConvLSTM variant in Maslov et al. (IGARSS 2024), "Glacier mapping from Sentinel-1
SAR time series with deep learning in Svalbard". Layout (``L = len(widths)``)::

    series (B, T, S, H, W), masked dates zeroed
      per scale i < L: bidirectional ConvLSTM, widths[i] / 2 hidden channels per direction
          skip_i = [forward final h, backward final h]          (B, w_i, H/2^i, W/2^i)
          sequence of [forward h_t, backward h_t], 2×2 max pooling per date (time kept)
      bottleneck: bidirectional ConvLSTM (bottleneck / 2 per direction), final states
                                                                (B, w_b, H/2^L, W/2^L)
      2D residual U-Net decoder (transposed conv, skip, ResBlock + Dropout2d) → 1×1 head
                                                                (B, K, H, W) logits

ConvLSTM cell (Shi et al. 2015): gates ``i, f, o, g`` from ``GN(conv3×3(x_t) + conv3×3(h))``
(the input convolution runs on all dates at once; both directions share one loop over the
dates), ``c' = σ(f) c + σ(i) tanh(g)``, ``h' = σ(o) tanh(c')``; the forget-gate bias starts
at 1. A masked date does not update the state: ``h, c ← m h' + (1 − m) h, m c' + (1 − m) c``,
so padding and dropped dates leave no trace, and the final states summarise the observed
dates only.

**Number of dates.** The recurrence is a Python loop over ``T``, so an exported ONNX graph
is unrolled for the ``T`` of the example input. The config key ``time_steps`` (default 15)
fixes that ``T``: inputs with another ``T`` are rejected, in eager mode too, so a model
trained, validated and exported with the same ``time_steps`` behaves the same everywhere.
Pad shorter series with masked dates. Build another ``time_steps`` for other series lengths
(the weights do not depend on it). The unrolled graph grows with ``T`` and the number of
scales, and so does the export time (about 20–60 s on a CPU for the tiny preset's 15 dates).
The model uses the order of the dates, not their values (``date_aware = False``).
``multiple = 2**L``.
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
from glacierkit.errors import InputError

__all__ = ["CONVLSTM_SIZES", "ConvLSTMUNet"]

#: Size presets; "base" matches ICEmapper's widths 32-64-128 and bottleneck 256.
CONVLSTM_SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"widths": (8, 16, 32), "bottleneck": 64, "time_steps": 15},
    "small": {"widths": (16, 32, 64), "bottleneck": 128, "time_steps": 15},
    "base": {"widths": (32, 64, 128), "bottleneck": 256, "time_steps": 15},
}


class BiConvLSTM(nn.Module):
    """Bidirectional ConvLSTM layer over a masked sequence, ``hidden`` channels per direction.

    Both directions run in one loop over the dates (at step ``k`` the forward direction reads
    date ``k``, the backward one date ``T - 1 - k``): a grouped 3×3 convolution keeps their
    recurrent weights apart, GroupNorm groups never straddle the two directions, and the state
    is ``[forward, backward]`` along the channels, so the gate arithmetic runs once for both
    (half the operations of two separate loops in an unrolled ONNX graph).

    ``xs`` ``(B, T, c_in, h, w)``, ``mask`` ``(B, T)`` → the sequence of concatenated states
    after each date ``(B, T, 2 hidden, h, w)`` (``None`` unless ``with_seq``) and the final
    states (forward after the last date, backward after the first) ``(B, 2 hidden, h, w)``.
    A masked date repeats the previous state.
    """

    def __init__(self, c_in: int, hidden: int):
        super().__init__()
        self.hidden = int(hidden)
        # gate channels from the convolutions: [forward i, f, o, g | backward i, f, o, g]
        self.conv_x = nn.Conv2d(c_in, 8 * hidden, 3, padding=1, bias=False)
        self.conv_h = nn.Conv2d(2 * hidden, 8 * hidden, 3, padding=1, groups=2, bias=False)
        self.norm = nn.GroupNorm(2 * norm2d(4 * hidden).num_groups, 8 * hidden)
        with torch.no_grad():  # forget gates open at the start
            for d in (0, 1):
                self.norm.bias[(4 * d + 1) * hidden:(4 * d + 2) * hidden] = 1.0
        # reorder to [i_fwd, i_bwd, f_fwd, f_bwd, o_fwd, o_bwd, g_fwd, g_bwd] to match the state
        order = [4 * hidden * d + hidden * gate + j
                 for gate in range(4) for d in range(2) for j in range(hidden)]
        self.register_buffer("_gate_order", torch.tensor(order, dtype=torch.long),
                             persistent=False)

    def forward(self, xs: Tensor, mask: Tensor,
                with_seq: bool = True) -> tuple[Tensor | None, Tensor]:
        """``(B, T, c_in, h, w), (B, T) -> (seq or None, final)``; see the class docstring."""
        hid = self.hidden
        b, t = xs.shape[0], xs.shape[1]
        gx = self.conv_x(xs.flatten(0, 1)).unflatten(0, (b, t))  # (B, T, 8 hid, h, w)
        # step k: forward input gates of date k, backward ones of date T - 1 - k
        g_in = torch.cat([gx[:, :, :4 * hid], gx[:, :, 4 * hid:].flip(1)], dim=2).unbind(1)
        m_dir = torch.stack([mask, mask.flip(1)], dim=2).repeat_interleave(hid, dim=2)
        ms = m_dir[:, :, :, None, None].unbind(1)  # per step (B, 2 hid, 1, 1)
        h = g_in[0][:, :2 * hid] * 0.0  # zero state (B, 2 hid, h, w), shape from the tensor
        c = h
        states: list[Tensor] = []
        for k in range(t):
            gates = self.norm(g_in[k] + self.conv_h(h)).index_select(1, self._gate_order)
            i, f, o, g = gates.chunk(4, dim=1)  # each (B, 2 hid, h, w)
            c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h_new = torch.sigmoid(o) * torch.tanh(c_new)
            c = c + ms[k] * (c_new - c)  # a masked date (m = 0) keeps the state
            h = h + ms[k] * (h_new - h)
            if with_seq:
                states.append(h)
        if not with_seq:
            return None, h
        seq = torch.stack(states, dim=1)  # step order; the backward half runs T-1 … 0
        return torch.cat([seq[:, :, :hid], seq[:, :, hid:].flip(1)], dim=2), h


class ConvLSTMUNet(SeriesSegmentationModel):
    """Bidirectional-ConvLSTM encoder + 2D residual U-Net decoder; see the module docstring.

    Args:
        group_channels: channels per date of each source group (``S = sum``).
        n_classes: classes ``K`` of the logits ``(B, K, H, W)``.
        cond_dim: must be 0.
        size: ``"tiny"``, ``"small"`` or ``"base"``; see :data:`CONVLSTM_SIZES`.
        dropout: Dropout2d probability in the decoder's residual blocks.
        **config: overrides of the preset: ``widths`` (skip widths per scale, even, at least
            2 scales; half of each is the hidden width per direction), ``bottleneck`` (even),
            ``time_steps`` (the fixed number of dates ``T``; see the module docstring).

    Inputs ``series`` ``(B, time_steps, S, H, W)``, ``dates`` ``(B, T)`` (unused),
    ``mask`` ``(B, T)``; ``H``, ``W`` multiples of ``2**len(widths)``.
    """

    arch = "convlstm"
    date_aware = False

    def __init__(self, *, group_channels: Sequence[int], n_classes: int, cond_dim: int = 0,
                 size: str = "tiny", dropout: float = 0.1, **config: Any):
        cfg = resolve_config(self.arch, CONVLSTM_SIZES, size, config)
        widths = _int_tuple(self.arch, "widths", cfg["widths"], min_len=2, min_value=4)
        bottleneck = _pos_int(self.arch, "bottleneck", cfg["bottleneck"])
        time_steps = _pos_int(self.arch, "time_steps", cfg["time_steps"])
        if any(w % 2 for w in (*widths, bottleneck)):
            raise InputError(f"convlstm: widths and bottleneck must be even (two directions); "
                             f"got widths {cfg['widths']!r}, bottleneck {bottleneck}.")
        super().__init__(group_channels=group_channels, n_classes=n_classes, cond_dim=cond_dim,
                         size=size, multiple=2 ** len(widths), dropout=dropout,
                         time_steps=time_steps)
        self.config = {"widths": list(widths), "bottleneck": bottleneck,
                       "time_steps": time_steps}
        c_in = (self.n_channels, *widths)
        outs = (*widths, bottleneck)
        self.layers = nn.ModuleList(BiConvLSTM(c, w // 2) for c, w in zip(c_in, outs,
                                                                         strict=True))
        self.decoder = ResidualDecoder(bottleneck, widths, self.n_classes, self.dropout_p)

    def _run(self, series: Tensor, dates: Tensor, mask: Tensor,
             with_aux: bool) -> tuple[Tensor, list[Tensor]]:
        xs = series
        skips: list[Tensor] = []
        last = xs[:, 0]
        n = len(self.layers)
        for i, layer in enumerate(self.layers):
            if i:
                xs = F.max_pool2d(xs.flatten(0, 1), 2).unflatten(0, (xs.shape[0], xs.shape[1]))
            seq, last = layer(xs, mask, with_seq=i < n - 1)
            if seq is not None:
                skips.append(last)
                xs = seq
        return self.decoder(last, skips, with_aux)
