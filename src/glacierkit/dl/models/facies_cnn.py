"""Compact patch CNN for point-labelled facies, fully convolutional.

A point label says what the *centre* pixel of a patch is. The network is a stack of dilated
3×3 convolutions without any down-sampling and without spatial normalisation, so its
receptive field is exactly ``rf = 1 + Σ (k − 1)·d`` pixels (33 for the default dilations
``(1, 2, 4, 8, 1)``) and:

* **training** runs with ``valid`` padding on ``rf × rf`` patches: one output pixel per patch,
  the centre's class (``(B, K, 1, 1)``); no compute is spent on unlabelled pixels;
* **inference** runs with ``same`` zero padding on whole tiles (``(B, K, H, W)``): every pixel
  gets the logits the network would give the ``rf × rf`` patch centred on it, exactly (up to
  float rounding), as long as the pixel is at least ``rf // 2`` from the tile edge — the
  tiled predictor's overlap covers that.

Layer: ``conv k×k (dilation d) → BatchNorm → SiLU`` with a residual connection when widths
match; then ``Dropout → 1×1 conv`` to ``K`` logits. BatchNorm (not GroupNorm) on purpose: in
evaluation mode it is a per-channel affine map that does not depend on the tile's content, so
dense and patch-wise predictions agree. Absent source groups are zeroed (``present``), as in
every glacierkit model. ``kernel=1`` gives a per-pixel network (an MLP on the spectrum) for
tables of sampled spectra.

Shapes: ``x`` ``(B, C, H, W)`` float32 normalised; ``present`` ``(B, G)``; no conditioning
(``cond_dim`` must be 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from glacierkit.dl.models.blocks import SegmentationModel
from glacierkit.dl.registry import register_model
from glacierkit.errors import InputError

__all__ = ["FACIES_CNN_SIZES", "FaciesCNN", "receptive_field"]

#: Size presets: ``widths`` per layer, ``dilations`` per layer, ``kernel``.
FACIES_CNN_SIZES: dict[str, dict] = {
    # receptive field 33 px (the reference's 33 × 33 patches)
    "tiny": {"widths": (32, 32, 32, 32, 32), "dilations": (1, 2, 4, 8, 1), "kernel": 3},
    "small": {"widths": (64, 64, 64, 64, 64), "dilations": (1, 2, 4, 8, 1), "kernel": 3},
    "base": {"widths": (96, 96, 96, 96, 96, 96), "dilations": (1, 2, 4, 8, 1, 1), "kernel": 3},
    # per-pixel MLP on the spectrum (receptive field 1 px)
    "pixel": {"widths": (64, 64, 64), "dilations": (1, 1, 1), "kernel": 1},
}


def receptive_field(kernel: int, dilations: Sequence[int]) -> int:
    """Receptive field in pixels of stacked ``kernel × kernel`` convolutions."""
    return 1 + sum((int(kernel) - 1) * int(d) for d in dilations)


@register_model("facies_cnn", sizes=FACIES_CNN_SIZES, builtin=True, family="patch")
class FaciesCNN(SegmentationModel):
    """Fully convolutional patch classifier; see the module docstring.

    Attributes (besides the contract's): ``receptive_field`` (px), ``valid_padding`` (bool:
    ``True`` while training on patches, ``False`` for dense inference and export).
    """

    arch = "facies_cnn"

    def __init__(self, *, group_channels: Sequence[int], n_classes: int, cond_dim: int = 0,
                 size: str = "tiny", dropout: float = 0.1, widths: Sequence[int],
                 dilations: Sequence[int], kernel: int):
        super().__init__(group_channels=group_channels, n_classes=n_classes, cond_dim=cond_dim,
                         size=size, multiple=1, dropout=dropout)
        if cond_dim:
            raise InputError("facies_cnn has no conditioning input; use cond_dim=0.")
        widths = tuple(int(w) for w in widths)
        dilations = tuple(int(d) for d in dilations)
        kernel = int(kernel)
        if len(widths) != len(dilations) or not widths:
            raise InputError(f"facies_cnn needs one dilation per layer width; got widths "
                             f"{widths} and dilations {dilations}.")
        if kernel < 1 or kernel % 2 == 0 or min(widths) < 1 or min(dilations) < 1:
            raise InputError(f"facies_cnn: kernel must be odd >= 1 and widths/dilations >= 1; "
                             f"got kernel={kernel}, widths={widths}, dilations={dilations}.")
        self.config = {"widths": widths, "dilations": dilations, "kernel": kernel}
        self.receptive_field = receptive_field(kernel, dilations)
        self.valid_padding = False
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        c_in = int(sum(self.group_channels))
        for w in widths:
            self.convs.append(nn.Conv2d(c_in, w, kernel, bias=False))
            self.norms.append(nn.BatchNorm2d(w))
            c_in = w
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Conv2d(c_in, int(n_classes), 1)
        self.act = nn.SiLU()

    def _run(self, x: Tensor, present: Tensor, cond: Tensor | None,
             with_aux: bool) -> tuple[Tensor, list[Tensor]]:
        mask = present.index_select(1, self._channel_group)[:, :, None, None]
        h = x * mask
        k = self.config["kernel"]
        for conv, norm, d in zip(self.convs, self.norms, self.config["dilations"], strict=True):
            pad = 0 if self.valid_padding else (k - 1) // 2 * d
            y = F.conv2d(h, conv.weight, None, padding=pad, dilation=d)
            y = self.act(norm(y))
            if y.shape[1] == h.shape[1]:
                cr = (h.shape[-2] - y.shape[-2]) // 2
                cc = (h.shape[-1] - y.shape[-1]) // 2
                if cr or cc:
                    h = h[:, :, cr:cr + y.shape[-2], cc:cc + y.shape[-1]]
                y = y + h
            h = y
        return self.head(self.drop(h)), []

    def extra_repr(self) -> str:
        """Receptive field, padding mode and layer settings in ``repr(model)``."""
        return (f"receptive_field={self.receptive_field}, valid_padding={self.valid_padding}, "
                f"widths={self.config['widths']}, dilations={self.config['dilations']}")


def center_logits(model: FaciesCNN, x: Tensor, present: Tensor | None = None) -> Tensor:
    """Logits ``(B, K)`` of the centre pixels of patches ``x`` ``(B, C, P, P)``, ``P >= rf``.

    Crops the patches to the receptive field and runs the network with valid padding.
    """
    rf = model.receptive_field
    p = x.shape[-1]
    if x.shape[-2] != p or p < rf or (p - rf) % 2:
        raise InputError(f"patches must be square, at least the receptive field ({rf} px) "
                         f"and centred (P − {rf} even); got {tuple(x.shape[-2:])}.")
    c = (p - rf) // 2
    x = x[:, :, c:c + rf, c:c + rf]
    old = model.valid_padding
    model.valid_padding = True
    try:
        out = model(x, present)
    finally:
        model.valid_padding = old
    return out[:, :, 0, 0]
