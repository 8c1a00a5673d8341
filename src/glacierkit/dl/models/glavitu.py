"""GlaViTU-class model: a hybrid CNN–transformer U-Net for multi-source glacier mapping.

Per-source stems, gated fusion, a residual CNN encoder, a ViT bottleneck and a residual U-Net
decoder with deep supervision.

After GlaViTU (Glacier-VisionTransformer-U-Net; Maslov, Persello, Schellenberger & Stein,
"Towards global glacier mapping with deep learning and open earth observation data", and the
IGARSS 2023 GlaViTU paper). This is a re-implementation of the idea, not a port: the paper's
model runs a SETR-style ViT beside a ResU-Net on the fused features; here the ViT sits at the
bottleneck of the U-Net (TransUNet-style), which keeps the token count small (stride 16) and
works for any tile size. Layout (``L = len(widths)``, default 4)::

    per group g: x_g (B, c_g, H, W) → conv-GN-SiLU ×2 → squeeze-excitation  F_g (B, w0, H, W)
    fusion:  Σ_g p_g σ(a_g) F_g / (Σ_g p_g σ(a_g) + ε) + Linear(present)   (B, w0, H, W)
             (a_g = 1×1 conv gate per pixel, p_g = present flag; absent groups get weight 0
              and the rest are re-normalised, so a missing source degrades gracefully)
    encoder: ResBlock×depth at full resolution, then per scale ResBlock stride 2 (+×(depth-1))
                                                                         s0..s(L-1), stride 2^(L-1)
    ViT:     patch embedding (patch×patch conv) → tokens (B, N, D), N = H W / multiple²
             [+ cond token] → pre-norm transformer blocks (MHSA + MLP, dropout),
             PEG (depthwise-conv position encoding) after the first block → LayerNorm
             → transposed conv back to s(L-1)'s grid, added residually, FiLM(cond)
    decoder: UpBlock (transposed conv, skip concat, ResBlock + Dropout2d) per scale
    head:    GN, SiLU, 1×1 conv → logits (B, K, H, W)
    aux:     1×1 heads at strides 4 and 8 (the ViT output) for deep supervision.

``multiple = 2**(L-1) * patch`` (16 by default).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from glacierkit.dl.models.blocks import (
    FiLM,
    PositionalEncodingGenerator,
    ResBlock,
    SegmentationModel,
    SqueezeExcite,
    TransformerBlock,
    UpBlock,
    conv_norm_act,
    seg_head,
)
from glacierkit.dl.registry import register_model

__all__ = ["GLAVITU_SIZES", "GlaViTU"]

#: Size presets. "base" approximates the paper's GlaViTU (IGARSS 2023 code: 64-channel fusion
#: stems, a 12-block ViT with 4 heads and MLP ratio 4, a ResU-Net with 64-128-256 levels;
#: roughly 10× smaller than SETR-B/16, i.e. about 9–10 M parameters): 64-channel stems, CNN
#: 64-128-256-256, 12 transformer blocks of width 192 with 4 heads and MLP ratio 2.
GLAVITU_SIZES: dict[str, dict] = {
    "tiny": {"widths": (16, 32, 64, 128), "depth": 1, "dim": 128, "n_blocks": 2,
             "heads": 4, "mlp_ratio": 2.0, "patch": 2},
    "small": {"widths": (32, 64, 128, 192), "depth": 1, "dim": 192, "n_blocks": 6,
              "heads": 6, "mlp_ratio": 2.0, "patch": 2},
    "base": {"widths": (64, 128, 256, 256), "depth": 1, "dim": 192, "n_blocks": 12,
             "heads": 4, "mlp_ratio": 2.0, "patch": 2},
}

#: Aux heads sit on the features at these strides (finest first).
AUX_STRIDES = (4, 8)
_EPS = 1e-6


@register_model("glavitu", sizes=GLAVITU_SIZES, builtin=True)
class GlaViTU(SegmentationModel):
    """GlaViTU-class hybrid CNN–transformer; see the module docstring for the layout.

    Input ``x`` ``(B, sum(group_channels), H, W)``, ``present`` ``(B, G)``, ``cond``
    ``(B, cond_dim)`` or ``None``; output logits ``(B, n_classes, H, W)``.
    """

    arch = "glavitu"

    def __init__(self, *, group_channels: Sequence[int], n_classes: int, cond_dim: int = 0,
                 size: str = "tiny", dropout: float = 0.1, widths: Sequence[int],
                 depth: int = 1, dim: int = 128, n_blocks: int = 2, heads: int = 4,
                 mlp_ratio: float = 2.0, patch: int = 2):
        widths = tuple(int(w) for w in widths)
        super().__init__(group_channels=group_channels, n_classes=n_classes,
                         cond_dim=cond_dim, size=size, dropout=dropout,
                         multiple=2 ** (len(widths) - 1) * int(patch))
        self.config = {"widths": list(widths), "depth": int(depth), "dim": int(dim),
                       "n_blocks": int(n_blocks), "heads": int(heads),
                       "mlp_ratio": float(mlp_ratio), "patch": int(patch)}
        w0 = widths[0]
        self.stems = nn.ModuleList(
            nn.Sequential(conv_norm_act(c, w0), conv_norm_act(w0, w0), SqueezeExcite(w0))
            for c in self.group_channels
        )
        self.gates = nn.ModuleList(nn.Conv2d(w0, 1, 1) for _ in self.group_channels)
        self.presence = nn.Linear(len(self.group_channels), w0)
        self.enc0 = nn.Sequential(*[ResBlock(w0, w0) for _ in range(depth)])
        self.encoder = nn.ModuleList(
            nn.Sequential(
                ResBlock(widths[i - 1], widths[i], stride=2),
                *[ResBlock(widths[i], widths[i]) for _ in range(depth - 1)],
            )
            for i in range(1, len(widths))
        )
        self.patch_embed = nn.Conv2d(widths[-1], dim, patch, stride=patch)
        self.cond_token = (
            nn.Sequential(nn.Linear(cond_dim, dim), nn.GELU(), nn.Linear(dim, dim))
            if cond_dim > 0 else None
        )
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, heads, mlp_ratio=mlp_ratio, dropout=dropout)
            for _ in range(n_blocks)
        )
        self.peg = PositionalEncodingGenerator(dim)
        self.token_norm = nn.LayerNorm(dim)
        self.unpatch = nn.ConvTranspose2d(dim, widths[-1], patch, stride=patch)
        self.film = FiLM(cond_dim, widths[-1]) if cond_dim > 0 else None
        self.decoder = nn.ModuleList(
            UpBlock(widths[i], widths[i - 1], widths[i - 1], dropout=dropout)
            for i in range(len(widths) - 1, 0, -1)
        )
        self.head = seg_head(w0, self.n_classes)
        # feature strides: ViT output 2^(L-1), decoder outputs 2^(L-2) ... 1
        strides = [2 ** i for i in range(len(widths) - 1, -1, -1)]
        self._aux_index = [strides.index(s) for s in AUX_STRIDES]
        self.aux_heads = nn.ModuleList(seg_head(widths[::-1][i], self.n_classes)
                                       for i in self._aux_index)
        self.apply(_init_transformer_linear)

    def fuse(self, x: Tensor, present: Tensor) -> Tensor:
        """Per-group stems and gated fusion: ``(B, C, H, W), (B, G) -> (B, w0, H, W)``."""
        num = None
        den = None
        start = 0
        for g, (stem, gate) in enumerate(zip(self.stems, self.gates, strict=True)):
            c = self.group_channels[g]
            p = present[:, g, None, None, None]
            f = stem(x[:, start:start + c] * p)
            start += c
            w = torch.sigmoid(gate(f)) * p
            num = w * f if num is None else num + w * f
            den = w if den is None else den + w
        assert num is not None and den is not None
        return num / (den + _EPS) + self.presence(present)[:, :, None, None]

    def _vit(self, h: Tensor, cond: Tensor | None) -> Tensor:
        """Transformer over patch tokens: ``(B, w_last, h, w) -> (B, w_last, h, w)``."""
        grid = self.patch_embed(h)  # (B, D, h/p, w/p)
        b, d, gh, gw = grid.shape
        tokens = grid.flatten(2).transpose(1, 2)  # (B, N, D)
        n_extra = 0
        if self.cond_token is not None and cond is not None:
            tokens = torch.cat([self.cond_token(cond)[:, None, :], tokens], dim=1)
            n_extra = 1
        for i, block in enumerate(self.blocks):
            tokens = block(tokens)
            if i == 0:
                patch_tokens = tokens[:, n_extra:]
                pos = self.peg(patch_tokens.transpose(1, 2).reshape(b, d, gh, gw))
                patch_tokens = pos.flatten(2).transpose(1, 2)
                tokens = (torch.cat([tokens[:, :n_extra], patch_tokens], dim=1)
                          if n_extra else patch_tokens)
        tokens = self.token_norm(tokens[:, n_extra:])
        out = self.unpatch(tokens.transpose(1, 2).reshape(b, d, gh, gw))
        return h + out

    def _run(self, x: Tensor, present: Tensor, cond: Tensor | None,
             with_aux: bool) -> tuple[Tensor, list[Tensor]]:
        h = self.enc0(self.fuse(x, present))
        skips = [h]
        for stage in self.encoder:
            h = stage(h)
            skips.append(h)
        h = self._vit(h, cond)
        if self.film is not None and cond is not None:
            h = self.film(h, cond)
        feats = [h]
        for up, skip in zip(self.decoder, skips[-2::-1], strict=True):
            h = up(h, skip)
            feats.append(h)
        main = self.head(h)
        if not with_aux:
            return main, []
        return main, [head(feats[i]) for head, i in zip(self.aux_heads, self._aux_index,
                                                         strict=True)]


def _init_transformer_linear(m: nn.Module) -> None:
    """ViT-style initialisation for the transformer's linear layers."""
    if isinstance(m, TransformerBlock):
        for sub in m.modules():
            if isinstance(sub, nn.Linear):
                nn.init.trunc_normal_(sub.weight, std=0.02)
                nn.init.zeros_(sub.bias)
