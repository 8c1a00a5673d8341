"""Building blocks shared by the segmentation models (plain PyTorch, ONNX-exportable).

Shapes: ``B`` batch, ``C`` channels, ``H``/``W`` rows/columns, ``N`` tokens, ``D`` token
width. Every block here keeps to ONNX-friendly operations (convolutions, GroupNorm,
LayerNorm, matrix products, softmax, nearest/bilinear resizing with shapes taken from
tensors) so that ``torch.onnx.export(..., dynamo=True)`` works with dynamic batch, height and
width.

Normalisation is **GroupNorm**, not BatchNorm, on purpose: CPU batches are small (1–4),
inference tiles differ in size from training patches, and GroupNorm behaves identically in
training and evaluation, so Monte-Carlo dropout (dropout layers in training mode, the rest in
evaluation mode) needs no care about running statistics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from glacierkit.errors import InputError

__all__ = [
    "FiLM",
    "PositionalEncodingGenerator",
    "ResBlock",
    "SegmentationModel",
    "SqueezeExcite",
    "TransformerBlock",
    "UpBlock",
    "checks_enabled",
    "conv_norm_act",
    "norm2d",
    "seg_head",
    "validate_inputs",
]


def norm2d(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 8 groups of at least 4 channels each (1 group for tiny widths)."""
    for groups in (8, 4, 2):
        if channels % groups == 0 and channels // groups >= 4:
            return nn.GroupNorm(groups, channels)
    return nn.GroupNorm(1, channels)


def conv_norm_act(c_in: int, c_out: int, kernel: int = 3) -> nn.Sequential:
    """Conv (same padding) → GroupNorm → SiLU: ``(B, c_in, H, W) -> (B, c_out, H, W)``."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
        norm2d(c_out),
        nn.SiLU(),
    )


class ResBlock(nn.Module):
    """Pre-activation residual block (He et al. 2016, "Identity mappings").

    ``GN → SiLU → conv3×3(stride) → GN → SiLU → [Dropout2d] → conv3×3`` plus a shortcut
    (identity, or 1×1 conv with the same stride when the width or the resolution changes).

    ``(B, c_in, H, W) -> (B, c_out, H / stride, W / stride)``.
    """

    def __init__(self, c_in: int, c_out: int, *, stride: int = 1, dropout: float = 0.0):
        super().__init__()
        self.norm1 = norm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.norm2 = norm2d(c_out)
        self.drop = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.act = nn.SiLU()
        self.shortcut: nn.Module
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """``(B, c_in, H, W) -> (B, c_out, H / stride, W / stride)``."""
        h = self.conv1(self.act(self.norm1(x)))
        h = self.conv2(self.drop(self.act(self.norm2(h))))
        return h + self.shortcut(x)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation channel gating (Hu et al. 2018): ``(B, C, H, W) -> same``."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: Tensor) -> Tensor:
        """Scale each channel of ``x`` ``(B, C, H, W)`` by a gate in (0, 1) from its mean."""
        s = x.mean(dim=(2, 3))
        g = torch.sigmoid(self.fc2(F.silu(self.fc1(s))))
        return x * g[:, :, None, None]


class FiLM(nn.Module):
    """Feature-wise linear modulation from a conditioning vector (Perez et al. 2018).

    ``x (B, C, H, W), cond (B, cond_dim) -> x * (1 + γ) + β`` with ``γ, β (B, C)`` from a
    two-layer MLP. The last layer starts at zero, so an untrained FiLM is the identity.
    """

    def __init__(self, cond_dim: int, channels: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or max(2 * cond_dim, 32)
        self.mlp = nn.Sequential(
            nn.Linear(cond_dim, hidden), nn.SiLU(), nn.Linear(hidden, 2 * channels)
        )
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        """Modulate ``x`` ``(B, C, H, W)`` with ``cond`` ``(B, cond_dim)``."""
        gamma, beta = self.mlp(cond).chunk(2, dim=1)
        return x * (1.0 + gamma[:, :, None, None]) + beta[:, :, None, None]


class UpBlock(nn.Module):
    """Decoder step: 2× transposed conv, concatenate the skip, residual block (with dropout).

    ``x (B, c_in, h, w), skip (B, c_skip, 2h, 2w) -> (B, c_out, 2h, 2w)``.
    """

    def __init__(self, c_in: int, c_skip: int, c_out: int, *, dropout: float = 0.0):
        super().__init__()
        self.up = nn.ConvTranspose2d(c_in, c_out, 2, stride=2)
        self.block = ResBlock(c_out + c_skip, c_out, dropout=dropout)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        """Upsample ``x`` to the skip's resolution and merge them."""
        return self.block(torch.cat([self.up(x), skip], dim=1))


class _Attention(nn.Module):
    """Multi-head self-attention: ``(B, N, D) -> (B, N, D)``."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # each (B, heads, N, head_dim)
        attn = torch.softmax((q * (1.0 / math.sqrt(self.head_dim))) @ k.transpose(-2, -1), -1)
        out = (attn @ v).transpose(1, 2).reshape(b, n, d)
        return self.drop(self.proj(out))


class TransformerBlock(nn.Module):
    """Pre-norm transformer encoder block (ViT): ``x + MHSA(LN(x))``, then ``x + MLP(LN(x))``.

    ``(B, N, D) -> (B, N, D)``; dropout after the attention projection and in the MLP.
    """

    def __init__(self, dim: int, heads: int, *, mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = _Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        hidden = round(dim * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        """``(B, N, D) -> (B, N, D)``."""
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PositionalEncodingGenerator(nn.Module):
    """Conditional position encoding (PEG, Chu et al. 2021, "CPVT").

    A residual depthwise 3×3 convolution over the token grid. It derives positions from the
    neighbourhood, so it works for any grid size: the inference tile may differ from the
    training patch. ``(B, D, h, w) -> (B, D, h, w)``.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, grid: Tensor) -> Tensor:
        """``(B, D, h, w) -> (B, D, h, w)``."""
        return grid + self.conv(grid)


def checks_enabled(x: Tensor) -> bool:
    """Whether Python-side input checks may run (not while tracing, compiling or exporting).

    Shape checks on symbolic sizes would add guards (or fail) under ``torch.export`` /
    ``torch.onnx.export(dynamo=True)`` and are baked in as constants by the legacy tracer, so
    they are skipped there; exported graphs get their shapes from ``dynamic_shapes`` instead.
    """
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        return False
    compiler = getattr(torch, "compiler", None)
    if compiler is not None:
        if compiler.is_compiling():
            return False
        is_exporting = getattr(compiler, "is_exporting", None)
        if is_exporting is not None and is_exporting():
            return False
    return not any(isinstance(s, torch.SymInt) for s in x.shape)


def validate_inputs(
    x: Tensor,
    present: Tensor | None,
    cond: Tensor | None,
    *,
    group_channels: Sequence[int],
    cond_dim: int,
    multiple: int,
) -> tuple[Tensor, Tensor | None]:
    """Check a model's inputs and return ``(present, cond)`` ready for use.

    ``present`` defaults to all groups available (``(B, G)`` ones) and is cast to ``x``'s
    dtype. The checks run only in eager mode (see :func:`checks_enabled`).
    """
    n_groups = len(group_channels)
    n_channels = int(sum(group_channels))
    if checks_enabled(x):
        if x.ndim != 4:
            raise InputError(
                f"x must be a (B, C, H, W) batch; got shape {tuple(x.shape)}. "
                "Add a batch axis (x[None]) for a single tile."
            )
        if not x.is_floating_point():
            raise InputError(
                f"x must be floating point (float32, normalised); got {x.dtype}. "
                "Convert with x.float() after normalising with the training statistics."
            )
        b, c, h, w = x.shape
        if c != n_channels:
            raise InputError(
                f"x has {c} channels but the model expects {n_channels} = sum of "
                f"group_channels {tuple(group_channels)}; stack the source groups in the "
                "layout order used for training (a missing group as zeros with present=0)."
            )
        if h % multiple or w % multiple:
            ph = -(-h // multiple) * multiple
            pw = -(-w // multiple) * multiple
            raise InputError(
                f"tile size {h}×{w} px is not a multiple of {multiple} px (model.multiple); "
                f"pad the tile to a multiple of {multiple} px (here {ph}×{pw}) and crop the "
                "output back."
            )
        if present is not None and tuple(present.shape) != (b, n_groups):
            raise InputError(
                f"present must have shape (B, G) = ({b}, {n_groups}) (one flag per source "
                f"group and sample); got {tuple(present.shape)}."
            )
        if cond_dim > 0:
            if cond is None:
                raise InputError(
                    f"this model is conditioned (cond_dim={cond_dim}) but cond is None; pass "
                    f"cond of shape ({b}, {cond_dim}) (region one-hot with its 'unknown' slot, "
                    "or sin/cos of latitude and longitude, as at training)."
                )
            if tuple(cond.shape) != (b, cond_dim):
                raise InputError(
                    f"cond must have shape (B, cond_dim) = ({b}, {cond_dim}); got "
                    f"{tuple(cond.shape)}."
                )
        elif cond is not None:
            raise InputError(
                "this model takes no conditioning vector (cond_dim=0); pass cond=None or "
                "rebuild the model with cond_dim > 0."
            )
    if present is None:
        present = x.new_ones((x.shape[0], n_groups))
    else:
        present = present.to(dtype=x.dtype)
    if cond is not None and cond_dim > 0:
        cond = cond.to(dtype=x.dtype)
    else:
        cond = None
    return present, cond


def check_model_args(group_channels: Sequence[int], n_classes: int, dropout: float, *,
                     what: str = "channel counts per source group",
                     example: str = "(4, 2, 2, 1)") -> tuple[int, ...]:
    """Check the arguments every model shares; returns ``group_channels`` as ints.

    Raises:
        InputError: ``group_channels`` not a non-empty sequence of counts >= 1,
            ``n_classes`` < 2, or ``dropout`` outside [0, 1).
    """
    try:
        gc = tuple(int(c) for c in group_channels)
    except (TypeError, ValueError):
        raise InputError(f"group_channels must be a sequence of {what}, e.g. {example}; got "
                         f"{group_channels!r}.") from None
    if not gc or any(c < 1 for c in gc):
        raise InputError(f"group_channels must list at least one group with >= 1 channel "
                         f"each; got {group_channels!r}.")
    if int(n_classes) < 2:
        raise InputError(f"n_classes must be >= 2 (use 2 for glacier / not glacier); "
                         f"got {n_classes}.")
    if not 0.0 <= float(dropout) < 1.0:
        raise InputError(f"dropout must be in [0, 1); got {dropout}.")
    return gc


class SegmentationModel(nn.Module):
    """Common interface of the glacierkit segmentation models (see ``docs/design/dl.md``).

    Subclasses implement :meth:`_run` returning the main logits ``(B, K, H, W)`` and, when
    asked, the auxiliary logits at their own resolution; this class validates inputs and
    upsamples the auxiliary logits to ``(H, W)``.

    Attributes: ``n_classes``, ``group_channels``, ``cond_dim``, ``multiple`` (H and W must be
    multiples of it), ``arch``, ``size``, ``dropout_p`` and ``config`` (the resolved
    hyper-parameters that :func:`glacierkit.dl.models.model_kwargs` stores).
    """

    arch: str = ""
    #: Input names in call order (the ONNX graph's inputs; ``cond`` only when conditioned).
    inputs: tuple[str, ...] = ("x", "present", "cond")
    #: Single-date models take no time axis.
    time_steps: int | None = None
    date_aware: bool = False

    def __init__(self, *, group_channels: Sequence[int], n_classes: int, cond_dim: int,
                 size: str, multiple: int, dropout: float):
        super().__init__()
        self.dropout_p = float(dropout)
        self.group_channels = tuple(int(c) for c in group_channels)
        self.n_classes = int(n_classes)
        self.cond_dim = int(cond_dim)
        self.size = size
        self.multiple = int(multiple)
        self.config: dict = {}
        # channel -> group index, to expand ``present`` (B, G) to channels (B, C)
        index = [g for g, c in enumerate(self.group_channels) for _ in range(c)]
        self.register_buffer("_channel_group", torch.tensor(index, dtype=torch.long),
                             persistent=False)

    def _run(self, x: Tensor, present: Tensor, cond: Tensor | None,
             with_aux: bool) -> tuple[Tensor, list[Tensor]]:
        raise NotImplementedError

    def _prepare(self, x: Tensor, present: Tensor | None,
                 cond: Tensor | None) -> tuple[Tensor, Tensor | None]:
        return validate_inputs(x, present, cond, group_channels=self.group_channels,
                               cond_dim=self.cond_dim, multiple=self.multiple)

    def forward(self, x: Tensor, present: Tensor | None = None,
                cond: Tensor | None = None) -> Tensor:
        """Logits ``(B, n_classes, H, W)`` for ``x`` ``(B, C, H, W)``.

        ``present`` ``(B, G)`` flags the available source groups (default: all);
        ``cond`` ``(B, cond_dim)`` is required when ``cond_dim > 0``, else ``None``.
        """
        present, cond = self._prepare(x, present, cond)
        main, _ = self._run(x, present, cond, False)
        return main

    def forward_aux(self, x: Tensor, present: Tensor | None = None,
                    cond: Tensor | None = None) -> tuple[Tensor, list[Tensor]]:
        """Main logits and the deep-supervision logits, all ``(B, n_classes, H, W)``.

        The auxiliary list is ordered finest first (stride 4, then stride 8), matching the
        default weights ``(0.5, 0.25)`` of :func:`glacierkit.dl.losses.deep_supervision_loss`.
        """
        present, cond = self._prepare(x, present, cond)
        main, aux = self._run(x, present, cond, True)
        size = (x.shape[2], x.shape[3])
        aux = [F.interpolate(a, size=size, mode="bilinear", align_corners=False) for a in aux]
        return main, aux

    def channel_mask(self, present: Tensor) -> Tensor:
        """``present`` ``(B, G)`` expanded to a channel mask ``(B, C, 1, 1)``."""
        return present.index_select(1, self._channel_group)[:, :, None, None]


def seg_head(channels: int, n_classes: int, dropout: float = 0.0) -> nn.Sequential:
    """Pre-activation 1×1 classifier: ``(B, C, H, W) -> (B, n_classes, H, W)`` logits."""
    layers: list[nn.Module] = [norm2d(channels), nn.SiLU()]
    if dropout > 0:
        layers.append(nn.Dropout2d(dropout))
    layers.append(nn.Conv2d(channels, n_classes, 1))
    return nn.Sequential(*layers)
