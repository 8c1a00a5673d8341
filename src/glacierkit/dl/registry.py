"""The model registry: one decorator makes an architecture buildable and loadable.

Every architecture — the built-in ones in :mod:`glacierkit.dl.models` and any a user adds —
is registered once with :func:`register_model`; :func:`glacierkit.dl.models.build_model`,
the model file (:meth:`glacierkit.dl.bundle.ModelBundle.build_torch_model`), the ONNX
exporter and the CLI all look architectures up here. ::

    from glacierkit.dl.registry import register_model, SERIES_INPUTS

    @register_model("my_series_net", inputs=SERIES_INPUTS, family="series",
                    sizes={"tiny": {"width": 16}})
    class MySeriesNet(torch.nn.Module):
        def __init__(self, *, group_channels, n_classes, cond_dim=0, size="tiny",
                     dropout=0.1, width=16): ...
        def forward(self, series, dates, mask): ...   # (B, K, H, W) logits

A factory is called as ``factory(group_channels=..., n_classes=..., cond_dim=..., size=...,
dropout=..., **hyper_parameters)`` (the keyword arguments the model file stores).

Torch-free: registering and looking up names needs no torch; the built-in architectures
register when :mod:`glacierkit.dl.models` is imported (which :func:`model_spec` does on
demand).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from glacierkit.errors import InputError

__all__ = [
    "FAMILIES",
    "IMAGE_INPUTS",
    "SERIES_INPUTS",
    "ModelSpec",
    "model_spec",
    "register_model",
    "registered_models",
]

IMAGE_INPUTS: tuple[str, ...] = ("x", "present", "cond")
"""Inputs of single-date models: ``x`` ``(B, C, H, W)``, ``present`` ``(B, G)``, ``cond``."""

SERIES_INPUTS: tuple[str, ...] = ("series", "dates", "mask")
"""Inputs of time-axis models: ``series`` ``(B, T, C, H, W)``, ``dates`` ``(B, T)`` days since
the reference date, ``mask`` ``(B, T)`` 1 = observed date, 0 = padding."""

FAMILIES: dict[str, str] = {
    "segmentation": "dense per-pixel classes from single-date source groups",
    "patch": "a class per pixel from a small patch around it (point labels)",
    "series": "dense per-pixel classes from a time series (or, with T = 2, a pair)",
}
"""Model families: what a model's inputs and outputs are."""


@dataclass(frozen=True)
class ModelSpec:
    """A registered architecture.

    Attributes:
        name: The ``arch`` name stored in model files.
        factory: Class or function building the model from keyword arguments.
        sizes: Size presets ``{size: {hyper-parameter: value}}`` (``{}`` for a factory
            without presets).
        inputs: Names of the model's inputs, in call order (:data:`IMAGE_INPUTS` or
            :data:`SERIES_INPUTS`); the ONNX graph's input names.
        family: One of :data:`FAMILIES`.
        builtin: Shipped with glacierkit (as opposed to registered by a user).
    """

    name: str
    factory: Callable[..., Any]
    sizes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    inputs: tuple[str, ...] = IMAGE_INPUTS
    family: str = "segmentation"
    builtin: bool = False


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str, *, sizes: Mapping[str, Mapping[str, Any]] | None = None,
                   inputs: tuple[str, ...] = IMAGE_INPUTS, family: str = "segmentation",
                   builtin: bool = False) -> Callable[[Any], Any]:
    """Class (or function) decorator registering architecture ``name``.

    Registering a name again replaces the earlier entry (a user's architecture may shadow
    a built-in one, e.g. in tests).

    Args:
        name: Architecture name (stored in model files as ``arch``).
        sizes: Size presets (``build_model(..., size=...)``).
        inputs: The model's input names in call order.
        family: ``"segmentation"``, ``"patch"`` or ``"series"``.
        builtin: Set by glacierkit's own architectures.

    Raises:
        InputError: an empty name, an unknown family or input set, or a non-callable.
    """
    if not isinstance(name, str) or not name:
        raise InputError(f"architecture name must be a non-empty string; got {name!r}.")
    if family not in FAMILIES:
        raise InputError(f"family must be one of {list(FAMILIES)}; got {family!r}.")
    ins = tuple(inputs)
    if ins not in (IMAGE_INPUTS, IMAGE_INPUTS[:2], SERIES_INPUTS):
        raise InputError(f"inputs must be {IMAGE_INPUTS}, {IMAGE_INPUTS[:2]} or "
                         f"{SERIES_INPUTS}; got {ins}.")

    def decorate(obj: Any) -> Any:
        if not callable(obj):
            raise InputError(f"the factory of architecture {name!r} must be callable; got "
                             f"{obj!r}.")
        _REGISTRY[name] = ModelSpec(name=name, factory=obj, sizes=dict(sizes or {}),
                                    inputs=ins, family=family, builtin=builtin)
        return obj

    return decorate


def _load_builtins() -> None:
    import glacierkit.dl.models  # noqa: F401  (registers the built-in architectures)


def model_spec(name: str) -> ModelSpec:
    """The registered architecture ``name``.

    Raises:
        InputError: the name is not registered (the message lists the known ones).
    """
    if name not in _REGISTRY:
        _load_builtins()
    if name not in _REGISTRY:
        raise InputError(f"unknown arch {name!r}; choose one of "
                         f"{', '.join(sorted(_REGISTRY))} (or register it with "
                         f"glacierkit.dl.registry.register_model).")
    return _REGISTRY[name]


def registered_models(family: str | None = None, *, builtin_only: bool = False
                      ) -> tuple[str, ...]:
    """Names of the registered architectures (of one family), in registration order."""
    _load_builtins()
    return tuple(n for n, s in _REGISTRY.items()
                 if (family is None or s.family == family) and (s.builtin or not builtin_only))
