"""ResU-Net baseline: a residual U-Net on all source groups' channels concatenated.

Layout (``L = len(widths)``, default 4 scales)::

    x (B, C, H, W) ── zero absent groups ── conv3×3 → ResBlock×depth          s0 (w0, H)
      → [ResBlock stride 2, ResBlock×(depth-1)] per scale                     s1..s(L-1)
      → bottleneck: ResBlock stride 2 with Dropout2d (+ FiLM(cond))          (wb, H / 2^L)
      → decoder: UpBlock (transposed conv, skip concat, ResBlock + Dropout2d) per scale
      → GN, SiLU, 1×1 conv                                                    (B, K, H, W)

Deep supervision: 1×1 heads on the decoder features at strides 4 and 8.
``multiple = 2**L`` (16 for four scales).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from glacierkit.dl.models.blocks import FiLM, ResBlock, SegmentationModel, UpBlock, seg_head
from glacierkit.dl.registry import register_model

__all__ = ["RESUNET_SIZES", "ResUNet"]

#: Size presets. "base" follows the ResU-Net baseline of Maslov et al. (IGARSS 2023 code:
#: residual double-conv levels 64-128-256-512 and a 1024 bottleneck, ~3× GlaViTU's size).
RESUNET_SIZES: dict[str, dict] = {
    "tiny": {"widths": (16, 32, 64, 128), "bottleneck": 256, "depth": 1},
    "small": {"widths": (32, 64, 128, 256), "bottleneck": 512, "depth": 1},
    "base": {"widths": (64, 128, 256, 512), "bottleneck": 1024, "depth": 1},
}

#: Aux heads sit on the decoder features at these strides (finest first).
AUX_STRIDES = (4, 8)


@register_model("resunet", sizes=RESUNET_SIZES, builtin=True)
class ResUNet(SegmentationModel):
    """Residual U-Net baseline; see the module docstring for the layout.

    Input ``x`` ``(B, sum(group_channels), H, W)``, ``present`` ``(B, G)``, ``cond``
    ``(B, cond_dim)`` or ``None``; output logits ``(B, n_classes, H, W)``.
    """

    arch = "resunet"

    def __init__(self, *, group_channels: Sequence[int], n_classes: int, cond_dim: int = 0,
                 size: str = "tiny", dropout: float = 0.1, widths: Sequence[int],
                 bottleneck: int, depth: int = 1):
        widths = tuple(int(w) for w in widths)
        super().__init__(group_channels=group_channels, n_classes=n_classes,
                         cond_dim=cond_dim, size=size, dropout=dropout,
                         multiple=2 ** len(widths))
        self.config = {"widths": list(widths), "bottleneck": int(bottleneck),
                       "depth": int(depth)}
        c_in = sum(self.group_channels)
        self.stem = nn.Sequential(
            nn.Conv2d(c_in, widths[0], 3, padding=1),
            *[ResBlock(widths[0], widths[0]) for _ in range(depth)],
        )
        self.encoder = nn.ModuleList(
            nn.Sequential(
                ResBlock(widths[i - 1], widths[i], stride=2),
                *[ResBlock(widths[i], widths[i]) for _ in range(depth - 1)],
            )
            for i in range(1, len(widths))
        )
        self.bottleneck = ResBlock(widths[-1], bottleneck, stride=2, dropout=dropout)
        self.film = FiLM(cond_dim, bottleneck) if cond_dim > 0 else None
        dec_in = (bottleneck, *widths[:0:-1])  # e.g. 256, 128, 64, 32
        self.decoder = nn.ModuleList(
            UpBlock(c, w, w, dropout=dropout) for c, w in zip(dec_in, widths[::-1], strict=True)
        )
        self.head = seg_head(widths[0], self.n_classes)
        # feature strides: bottleneck 2^L, then the decoder outputs 2^(L-1) ... 1
        strides = [2 ** len(widths)] + [2 ** i for i in range(len(widths) - 1, -1, -1)]
        feat_widths = [bottleneck, *widths[::-1]]
        self._aux_index = [strides.index(s) for s in AUX_STRIDES]
        self.aux_heads = nn.ModuleList(seg_head(feat_widths[i], self.n_classes)
                                       for i in self._aux_index)

    def _run(self, x: Tensor, present: Tensor, cond: Tensor | None,
             with_aux: bool) -> tuple[Tensor, list[Tensor]]:
        h = self.stem(x * self.channel_mask(present))
        skips = [h]
        for stage in self.encoder:
            h = stage(h)
            skips.append(h)
        h = self.bottleneck(h)
        if self.film is not None and cond is not None:
            h = self.film(h, cond)
        feats = [h]
        for up, skip in zip(self.decoder, skips[::-1], strict=True):
            h = up(h, skip)
            feats.append(h)
        main = self.head(h)
        if not with_aux:
            return main, []
        return main, [head(feats[i]) for head, i in zip(self.aux_heads, self._aux_index,
                                                         strict=True)]
