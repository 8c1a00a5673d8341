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
(the input convolution runs on all dates at once), ``c' = σ(f) c + σ(i) tanh(g)``,
``h' = σ(o) tanh(c')``; the forget-gate bias starts at 1. A masked date does not update the
state: ``h, c ← m h' + (1 − m) h, m c' + (1 − m) c``, so padding and dropped dates leave no
trace, and the final states summarise the observed dates only.

**Number of dates.** The recurrence is a Python loop over ``T``, so an exported ONNX graph
is unrolled for the ``T`` of the example input. The config key ``time_steps`` (default 15)
fixes that ``T``: inputs with another ``T`` are rejected, in eager mode too, so a model
trained, validated and exported with the same ``time_steps`` behaves the same everywhere.
Pad shorter series with masked dates. Build another ``time_steps`` for other series lengths
(the weights do not depend on it). The model uses the order of the dates, not their values
(``date_aware = False``). ``multiple = 2**L``.
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


class ConvLSTMDirection(nn.Module):
    """One direction of a ConvLSTM layer over a masked sequence.

    ``xs`` ``(B, T, c_in, h, w)``, ``mask`` ``(B, T)`` → hidden states ``(B, T, hidden, h, w)``
    (the state after each date; a masked date repeats the previous state) and the final
    hidden state ``(B, hidden, h, w)``.
    """

    def __init__(self, c_in: int, hidden: int, *, reverse: bool = False):
        super().__init__()
        self.hidden = int(hidden)
        self.reverse = bool(reverse)
        self.conv_x = nn.Conv2d(c_in, 4 * hidden, 3, padding=1, bias=False)
        self.conv_h = nn.Conv2d(hidden, 4 * hidden, 3, padding=1, bias=False)
        self.norm = norm2d(4 * hidden)
        with torch.no_grad():  # gate order i, f, o, g: forget gate open at the start
            self.norm.bias[hidden:2 * hidden] = 1.0

    def forward(self, xs: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, T, c_in, h, w), (B, T) -> ((B, T, hidden, h, w), (B, hidden, h, w))``."""
        t = xs.shape[1]
        gx = self.conv_x(xs.flatten(0, 1)).unflatten(0, (xs.shape[0], t))  # (B, T, 4h, h, w)
        h = gx[:, 0, :self.hidden] * 0.0  # zero state, shape taken from the tensor
        c = h
        outs: list[Tensor] = [h] * t
        order = range(t - 1, -1, -1) if self.reverse else range(t)
        for k in order:
            gates = self.norm(gx[:, k] + self.conv_h(h))
            i, f, o, g = gates.chunk(4, dim=1)
            c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h_new = torch.sigmoid(o) * torch.tanh(c_new)
            m = mask[:, k, None, None, None]
            c = m * c_new + (1.0 - m) * c
            h = m * h_new + (1.0 - m) * h
            outs[k] = h
        return torch.stack(outs, dim=1), h


class BiConvLSTM(nn.Module):
    """Bidirectional ConvLSTM layer: ``hidden`` channels per direction.

    ``xs`` ``(B, T, c_in, h, w)``, ``mask`` ``(B, T)`` → the sequence of concatenated
    forward/backward states ``(B, T, 2 hidden, h, w)`` and the concatenated final states
    (forward after the last date, backward after the first) ``(B, 2 hidden, h, w)``.
    """

    def __init__(self, c_in: int, hidden: int):
        super().__init__()
        self.fwd = ConvLSTMDirection(c_in, hidden)
        self.bwd = ConvLSTMDirection(c_in, hidden, reverse=True)

    def forward(self, xs: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, T, c_in, h, w), (B, T) -> ((B, T, 2 hidden, h, w), (B, 2 hidden, h, w))``."""
        seq_f, last_f = self.fwd(xs, mask)
        seq_b, last_b = self.bwd(xs, mask)
        return torch.cat([seq_f, seq_b], dim=2), torch.cat([last_f, last_b], dim=1)


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
        for i, layer in enumerate(self.layers):
            if i:
                xs = F.max_pool2d(xs.flatten(0, 1), 2).unflatten(0, (xs.shape[0], xs.shape[1]))
            seq, last = layer(xs, mask)
            if i < len(self.layers) - 1:
                skips.append(last)
            xs = seq
        return self.decoder(last, skips, with_aux)
