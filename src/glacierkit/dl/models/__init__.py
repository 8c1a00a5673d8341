"""Segmentation models: the ResU-Net baseline and the GlaViTU-class CNN–transformer.

Both follow the model contract of ``docs/design/dl.md``::

    model = build_model("glavitu", group_channels=(4, 2, 2, 1), n_classes=2)
    logits = model(x, present, cond)                  # (B, n_classes, H, W)
    main, aux = model.forward_aux(x, present, cond)   # aux: list of (B, n_classes, H, W)

``x`` is ``(B, sum(group_channels), H, W)`` float32 with ``H``, ``W`` multiples of
``model.multiple``; ``present`` ``(B, G)`` flags available source groups (default all);
``cond`` ``(B, cond_dim)`` or ``None``. :func:`model_kwargs` gives the JSON-serialisable
keyword arguments that rebuild the same model with :func:`build_model` (the model file stores
them). Both models export to ONNX with ``torch.onnx.export(..., dynamo=True)`` with dynamic
batch, height and width (see :func:`onnx_dynamic_shapes`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from glacierkit.errors import DependencyNotFoundError, InputError

try:
    import torch
    from torch import nn
except ImportError as exc:  # pragma: no cover - exercised only without the dl extra
    raise DependencyNotFoundError(
        "glacierkit.dl.models needs PyTorch; install the deep-learning extra with "
        "`pip install 'glacierkit[dl]'`."
    ) from exc

from glacierkit.dl.models.blocks import SegmentationModel, check_model_args
from glacierkit.dl.models.convlstm import CONVLSTM_SIZES, ConvLSTMUNet
from glacierkit.dl.models.facies_cnn import FaciesCNN
from glacierkit.dl.models.glavitu import GLAVITU_SIZES, GlaViTU
from glacierkit.dl.models.icemapper import ICEMAPPER3D_SIZES, ICEmapper3D
from glacierkit.dl.models.resunet import RESUNET_SIZES, ResUNet
from glacierkit.dl.models.utae import UTAE, UTAE_SIZES
from glacierkit.dl.registry import IMAGE_INPUTS, SERIES_INPUTS, model_spec, register_model

# The time-series models (their modules stay importable without the registry).
for _name, _cls, _sizes in (("icemapper3d", ICEmapper3D, ICEMAPPER3D_SIZES),
                            ("convlstm", ConvLSTMUNet, CONVLSTM_SIZES),
                            ("utae", UTAE, UTAE_SIZES)):
    register_model(_name, sizes=_sizes, inputs=SERIES_INPUTS, family="series",
                   builtin=True)(_cls)

__all__ = [
    "ARCHS",
    "PATCH_ARCHS",
    "SERIES_ARCHS",
    "SIZES",
    "FaciesCNN",
    "GlaViTU",
    "ResUNet",
    "SegmentationModel",
    "build_model",
    "call_model",
    "count_parameters",
    "enable_mc_dropout",
    "input_names",
    "model_inputs",
    "model_kwargs",
    "onnx_dynamic_shapes",
]

#: Single-date segmentation architectures (inputs ``x``, ``present``, ``cond``).
ARCHS: tuple[str, ...] = ("resunet", "glavitu")

#: Point-label patch classifiers (no conditioning, no down-sampling): the facies CNN.
PATCH_ARCHS: tuple[str, ...] = ("facies_cnn",)

#: Time-series architectures (inputs ``series``, ``dates``, ``mask``): the ICEmapper-class
#: 3D-conv model, its bidirectional ConvLSTM variant and the date-aware U-TAE-class model.
SERIES_ARCHS: tuple[str, ...] = ("icemapper3d", "convlstm", "utae")

#: Size presets per architecture (``size=`` of :func:`build_model`).
SIZES: dict[str, dict[str, dict]] = {"resunet": RESUNET_SIZES, "glavitu": GLAVITU_SIZES,
                                     "icemapper3d": ICEMAPPER3D_SIZES,
                                     "convlstm": CONVLSTM_SIZES, "utae": UTAE_SIZES}

_INT_SEQ = ("widths",)
_INTS = ("bottleneck", "depth", "dim", "n_blocks", "heads", "patch")


def build_model(arch: str, *, group_channels: Sequence[int], n_classes: int,
                cond_dim: int = 0, size: str = "tiny", dropout: float = 0.1,
                **overrides: Any) -> SegmentationModel:
    """Build a segmentation model.

    Args:
        arch: ``"resunet"``, ``"glavitu"`` or ``"facies_cnn"`` (the point-label patch
            classifier, :class:`~glacierkit.dl.models.facies_cnn.FaciesCNN`; see :data:`ARCHS`).
        group_channels: channels per source group, in layout order, e.g. ``(4, 2, 2, 1)``.
        n_classes: number of output classes ``K`` (logits ``(B, K, H, W)``), at least 2.
        cond_dim: length of the conditioning vector (0: unconditioned, ``cond=None``).
        size: ``"tiny"`` (tests, CPU), ``"small"`` or ``"base"`` (paper-sized, GPU); see
            :data:`SIZES`.
        dropout: dropout probability in the decoder (and the transformer), used for
            Monte-Carlo dropout too.
        **overrides: hyper-parameters replacing the size preset: ``widths`` (encoder widths
            per scale, at least 3), ``depth`` (residual blocks per scale); ResU-Net:
            ``bottleneck`` (width); GlaViTU: ``dim``, ``n_blocks``, ``heads``, ``mlp_ratio``,
            ``patch`` (token grid stride relative to the deepest CNN scale).

    Raises:
        InputError: unknown arch, size or override, or an invalid value.
    """
    spec = model_spec(arch)
    presets = spec.sizes
    if size not in presets:
        raise InputError(f"unknown size {size!r} for {arch}; choose one of "
                         f"{', '.join(presets)} or override widths etc. explicitly.")
    gc = check_model_args(group_channels, n_classes, dropout)
    if int(cond_dim) < 0:
        raise InputError(f"cond_dim must be >= 0 (0 for no conditioning); got {cond_dim}.")
    config = dict(presets[size])
    unknown = sorted(set(overrides) - set(config))
    if unknown:
        raise InputError(f"unknown override(s) {', '.join(unknown)} for {arch}; allowed: "
                         f"{', '.join(sorted(config))}.")
    config.update(overrides)
    config = _check_config(arch, config)
    return spec.factory(group_channels=gc, n_classes=int(n_classes), cond_dim=int(cond_dim),
                        size=size, dropout=float(dropout), **config)


def _check_config(arch: str, config: dict) -> dict:
    out = dict(config)
    if arch not in ("facies_cnn", "resunet", "glavitu"):
        # Other architectures validate their own hyper-parameters; JSON lists become tuples.
        return {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
    if arch == "facies_cnn":
        try:
            out["widths"] = tuple(int(w) for w in config["widths"])
            out["dilations"] = tuple(int(d) for d in config["dilations"])
            out["kernel"] = int(config["kernel"])
        except (TypeError, ValueError):
            raise InputError(f"invalid facies_cnn hyper-parameters {config!r}: widths and "
                             "dilations must be lists of ints, kernel an int.") from None
        return out
    try:
        out["widths"] = tuple(int(w) for w in config["widths"])
        for key in _INTS:
            if key in config:
                out[key] = int(config[key])
        if "mlp_ratio" in config:
            out["mlp_ratio"] = float(config["mlp_ratio"])
    except (TypeError, ValueError):
        raise InputError(f"invalid {arch} hyper-parameters {config!r}: widths must be a list "
                         "of ints, the others numbers.") from None
    if len(out["widths"]) < 3 or any(w < 4 for w in out["widths"]):
        raise InputError(f"widths must list at least 3 scales of >= 4 channels each; got "
                         f"{config['widths']!r}.")
    if any(out.get(k, 1) < 1 for k in _INTS) or out.get("mlp_ratio", 1.0) <= 0:
        raise InputError(f"{arch} hyper-parameters must be positive; got {config!r}.")
    if arch == "glavitu" and out["dim"] % out["heads"]:
        raise InputError(f"dim ({out['dim']}) must be divisible by heads ({out['heads']}); "
                         "choose e.g. dim=128, heads=4.")
    return out


def model_kwargs(model: nn.Module) -> dict[str, Any]:
    """JSON-serialisable keyword arguments that rebuild ``model`` with :func:`build_model`.

    All hyper-parameters are resolved (not just the overrides), so the model rebuilds
    identically even if the size presets change in a later version.
    """
    if not hasattr(model, "arch") or not hasattr(model, "config"):
        raise InputError(f"model_kwargs needs a model from build_model; got "
                         f"{type(model).__name__}.")
    return {
        "arch": model.arch,
        "group_channels": list(model.group_channels),
        "n_classes": model.n_classes,
        "cond_dim": model.cond_dim,
        "size": model.size,
        "dropout": model.dropout_p,
        **{k: (list(v) if isinstance(v, tuple | list) else v) for k, v in model.config.items()},
    }


def enable_mc_dropout(model: nn.Module) -> nn.Module:
    """Evaluation mode except the dropout layers (Monte-Carlo dropout); returns ``model``.

    Normalisation layers stay in evaluation mode (the models use GroupNorm, which is
    identical in both modes). Call ``model.eval()`` to switch Monte-Carlo dropout off again.
    """
    model.eval()
    n = 0
    for m in model.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.train()
            n += m.p > 0
    if n == 0:
        raise InputError(f"{type(model).__name__} has no dropout layers, so Monte-Carlo "
                         "dropout would repeat one prediction; build it with dropout > 0.")
    return model


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (elements) of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def input_names(model: nn.Module) -> tuple[str, ...]:
    """The inputs ``model`` takes, in call order (also the ONNX graph's input names).

    ``("x", "present"[, "cond"])`` for single-date models (``cond`` only when
    ``cond_dim > 0``), ``("series", "dates", "mask")`` for time-series models.
    """
    names = tuple(getattr(model, "inputs", IMAGE_INPUTS))
    if names == IMAGE_INPUTS and int(getattr(model, "cond_dim", 0)) == 0:
        names = names[:2]
    return names


def model_inputs(model: nn.Module, batch: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of a batch dict that ``model`` takes (see :func:`input_names`).

    Raises:
        InputError: the batch lacks an input, e.g. single-date inputs (``x``) given to a
            series model or a series (``series``) given to a single-date model.
    """
    names = input_names(model)
    missing = [n for n in names if n not in batch or batch[n] is None]
    if missing:
        kind = "a time series (series, dates, mask)" if names == SERIES_INPUTS else \
            "single-date inputs (x, present[, cond])"
        given = sorted(k for k in batch if k in (*IMAGE_INPUTS, *SERIES_INPUTS))
        raise InputError(f"{getattr(model, 'arch', type(model).__name__)} takes {kind}; the "
                         f"batch has {given} but lacks {missing}.")
    return {n: batch[n] for n in names}


def call_model(model: nn.Module, inputs: Mapping[str, Any], *, aux: bool = False) -> Any:
    """``model(**inputs)`` (logits ``(B, K, H, W)``), or ``(main, aux_list)`` with ``aux``.

    A model without ``forward_aux`` has no auxiliary outputs (empty list).
    """
    if aux:
        if hasattr(model, "forward_aux"):
            main, extra = model.forward_aux(**inputs)
            return main, list(extra)
        return model(**inputs), []
    return model(**inputs)


def onnx_dynamic_shapes(model: nn.Module, *, with_cond: bool | None = None) -> dict:
    """``dynamic_shapes`` for ``torch.onnx.export(model, inputs, dynamo=True)``.

    Batch is dynamic; height and width are dynamic multiples of ``model.multiple``
    (``multiple * Dim``), which lets the exporter prove the down/up-sampling shapes agree.
    Single-date models: ``x``, ``present`` and — when conditioned (``with_cond`` defaults to
    ``model.cond_dim > 0``) — ``cond``, else ``cond: None``. Series models: ``series``
    ``(B, T, C, H, W)``, ``dates`` and ``mask`` ``(B, T)``, with ``T`` dynamic unless the
    model needs a fixed number of dates (``model.time_steps``).
    """
    dim = torch.export.Dim
    batch = dim("batch", min=1, max=4096)
    h = model.multiple * dim("h_blocks", min=1, max=4096)
    w = model.multiple * dim("w_blocks", min=1, max=4096)
    if input_names(model) == SERIES_INPUTS:
        if getattr(model, "time_steps", None) is None:
            t = dim("dates", min=2, max=1024)
            return {"series": {0: batch, 1: t, 3: h, 4: w}, "dates": {0: batch, 1: t},
                    "mask": {0: batch, 1: t}}
        return {"series": {0: batch, 3: h, 4: w}, "dates": {0: batch}, "mask": {0: batch}}
    with_cond = model.cond_dim > 0 if with_cond is None else with_cond
    return {
        "x": {0: batch, 2: h, 3: w},
        "present": {0: batch},
        "cond": {0: batch} if with_cond else None,
    }
