"""The model file (``.gkm``): weights, metadata and an optional ONNX graph in one zip.

A ``.gkm`` file is a plain zip archive with three members:

* ``metadata.json`` (always): ``format`` (``"glacierkit-model"``), ``format_version``,
  ``glacierkit_version`` (the version that wrote it), ``arch`` and ``model_kwargs`` (enough
  to rebuild the network with :func:`glacierkit.dl.models.build_model`), ``layout`` (the
  source groups, :meth:`glacierkit.dl.sources.SourceLayout.to_dict`), ``norm`` (per-channel
  mean/std, :meth:`glacierkit.dl.sources.NormStats.to_dict`), ``classes`` (class names, index
  = class value), ``cond`` (``{"kind": "none" | "region" | "coords", "regions": [...]}``),
  ``calibration`` (a serialised calibration map or ``null``), ``tile`` (recommended
  ``{"size": px, "overlap": px}``) and ``training`` (free-form: configuration, metrics, seed,
  ``group_dropout``). Optional keys: ``task`` (what the model does: ``"mapping"``,
  ``"facies"``, ``"sar-series"``, ``"change"``; each predict command refuses the others) and
  ``domain`` (the training domain per channel: dtype, units/scale, robust percentiles; see
  :mod:`glacierkit.dl.domain`). Files written before these keys existed load with the task
  inferred where certain (:func:`infer_task`) and the domain unknown (``None``).
* ``weights.pt`` (always): the torch ``state_dict``, written with :func:`torch.save` and read
  back with ``torch.load(..., weights_only=True)`` (no pickled code is ever executed).
* ``model.onnx`` (optional): the same network exported with
  :func:`glacierkit.dl.export.export_onnx` (dynamic batch, height and width), so that
  inference runs with ONNX Runtime alone.

Reading the metadata and the ONNX graph needs no torch: :func:`load_bundle` reads only
``metadata.json``; the weights and the graph are read from the zip when first asked for.
Writing is atomic (a temporary file next to the target, then :func:`os.replace`), and an
existing file is never replaced unless ``overwrite=True``.

Architectures are resolved by name, never by an import path stored in the file (a model file
must not be able to run code): the name is looked up in the model registry
(:mod:`glacierkit.dl.registry`, one decorator per architecture).

Format 2 adds ``inputs`` (the model's named inputs with symbolic shapes) and ``series`` (for
time-series models: how dates are counted and selected); format-1 files still load, with
``inputs`` derived from ``model_kwargs``.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import pickle
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from glacierkit import __version__
from glacierkit.errors import DatasetNotFoundError, InputError, ModelFileError
from glacierkit.io.writer import check_output_path, publish_file

log = logging.getLogger(__name__)

FORMAT = "glacierkit-model"
"""Value of the ``format`` key of every model file."""

FORMAT_VERSION = 2
"""Model-file format version this glacierkit writes (2: adds ``task``, ``inputs`` and
``series``; format-1 files load with them derived)."""

SUPPORTED_FORMAT_VERSIONS: tuple[int, ...] = (1, 2)
"""Model-file format versions this glacierkit reads."""

METADATA = "metadata.json"
WEIGHTS = "weights.pt"
ONNX = "model.onnx"

_REQUIRED_KEYS = ("arch", "model_kwargs", "layout", "norm", "classes")

TASKS: dict[str, str] = {"mapping": "glacierkit map predict",
                         "facies": "glacierkit facies predict",
                         "change": "glacierkit change predict"}
"""Known model tasks and the command that applies each."""

MAPPING_CLASSES = ("off_glacier", "glacier")
"""Classes of the outline models written by ``glacierkit map train``."""

def register_arch(name: str, factory: Callable[..., Any], **spec: Any) -> None:
    """Register ``factory`` as architecture ``name`` (see :mod:`glacierkit.dl.registry`).

    A model file whose ``arch`` is ``name`` is then rebuilt with ``factory(**model_kwargs)``.
    ``spec`` takes the decorator's keywords (``sizes``, ``inputs``, ``family``).
    """
    from glacierkit.dl.registry import register_model

    register_model(name, **spec)(factory)


def _default_cond() -> dict[str, Any]:
    return {"kind": "none", "regions": []}


def _default_tile() -> dict[str, Any]:
    return {"size": 512, "overlap": 64}


@dataclass
class ModelBundle:
    """A trained model with everything needed to apply it to a scene.

    Attributes:
        arch: Architecture name (e.g. ``"glavitu"``, ``"resunet"``).
        model_kwargs: Keyword arguments that rebuild the network with
            ``build_model(arch, **model_kwargs)`` (``group_channels``, ``n_classes``,
            ``cond_dim``, ``size``, ...).
        layout: The source layout, ``SourceLayout.to_dict()``.
        norm: Per-channel normalisation statistics, ``NormStats.to_dict()``.
        classes: Class names; the index is the class value in ``classes.tif``.
        cond: Conditioning: ``{"kind": "none" | "region" | "coords", "regions": [...]}``
            (``CondSpec.to_dict()``).
        calibration: A serialised calibration map (``glacierkit.metrics.calibration``) or
            ``None`` (uncalibrated: confidence = maximum probability).
        tile: Recommended tiling ``{"size": px, "overlap": px}``.
        training: Free-form training record (config, metrics, seed, ``group_dropout``).
        task: What the model does (a key of :data:`TASKS`), or ``None`` when a file written
            before tasks were recorded does not say and it cannot be inferred for certain
            (:func:`infer_task`).
        domain: The training domain per channel (:func:`glacierkit.dl.domain.
            domain_from_channels`), or ``None`` (unknown: not recorded).
        inputs: The model's inputs in call order, ``[{"name", "shape"}]`` with symbolic
            axes (``"B"``, ``"T"``, ``"H"``, ``"W"``) and fixed channel counts, e.g.
            ``[{"name": "series", "shape": ["B", "T", 2, "H", "W"]}, ...]``. Derived from
            ``model_kwargs`` for format-1 files.
        series: For time-series models: ``{"reference": how dates are counted,
            "time_steps": fixed T or None, "date_aware": bool, "min_dates": int,
            "selection": {"mode": "per_year", "per_year": T} | {"mode": "all"},
            "direction": pass kept}``; ``None`` for single-date models.
        glacierkit_version: Version of glacierkit that wrote the file.
        format_version: Model-file format version.
        path: The file it was loaded from (``None`` for a bundle built in memory).
    """

    arch: str
    model_kwargs: dict[str, Any]
    layout: dict[str, Any]
    norm: dict[str, Any]
    classes: list[str]
    cond: dict[str, Any] = field(default_factory=_default_cond)
    calibration: dict[str, Any] | None = None
    tile: dict[str, Any] = field(default_factory=_default_tile)
    training: dict[str, Any] = field(default_factory=dict)
    task: str | None = None
    domain: dict[str, Any] | None = None
    inputs: list[dict[str, Any]] = field(default_factory=list)
    series: dict[str, Any] | None = None
    glacierkit_version: str = __version__
    format_version: int = FORMAT_VERSION
    path: Path | None = field(default=None, compare=False)
    _weights: bytes | None = field(default=None, repr=False, compare=False)
    _onnx: bytes | None = field(default=None, repr=False, compare=False)
    _has_onnx: bool | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.inputs and self.series is None:
            self.inputs = image_inputs(self.model_kwargs or {})

    # ------------------------------------------------------------------ metadata
    def metadata(self) -> dict[str, Any]:
        """The content of ``metadata.json`` (JSON-serialisable)."""
        meta: dict[str, Any] = {"format": FORMAT}
        for f in fields(self):
            if f.name == "path" or f.name.startswith("_"):
                continue
            meta[f.name] = getattr(self, f.name)
        return json.loads(json.dumps(meta))  # deep copy; fails early if not serialisable

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    @property
    def has_onnx(self) -> bool:
        """Whether the bundle holds an ONNX graph."""
        if self._has_onnx is None:
            self._has_onnx = self._onnx is not None or (
                self.path is not None and ONNX in _member_names(self.path))
        return self._has_onnx

    # ------------------------------------------------------------------ lazy members
    def weights_bytes(self) -> bytes:
        """The serialised state dict (``weights.pt``), read from the file on first use."""
        if self._weights is None:
            if self.path is None:
                raise ModelFileError("this model bundle holds no weights; build it with "
                                     "ModelBundle.with_weights(state_dict) or load a .gkm file.")
            self._weights = _read_member(self.path, WEIGHTS)
        return self._weights

    def onnx_bytes(self) -> bytes | None:
        """The ONNX graph (``model.onnx``), or ``None`` when the file has none."""
        if self._onnx is None and self.path is not None and self.has_onnx:
            self._onnx = _read_member(self.path, ONNX)
        return self._onnx

    def state_dict(self) -> dict[str, Any]:
        """The torch state dict (on CPU), loaded with ``weights_only=True``. Needs torch."""
        torch = _import_torch()
        try:
            sd = torch.load(io.BytesIO(self.weights_bytes()), map_location="cpu",
                            weights_only=True)
        except Exception as e:
            raise ModelFileError(f"cannot read the weights ({WEIGHTS}) of "
                                 f"{self.path or 'the bundle'}: {e}. The file is corrupt or was "
                                 f"not written by glacierkit; re-export the model.") from e
        if not isinstance(sd, Mapping):
            raise ModelFileError(f"{WEIGHTS} of {self.path or 'the bundle'} holds a "
                                 f"{type(sd).__name__}, not a state dict.")
        return dict(sd)

    def with_weights(self, state_dict: Mapping[str, Any] | None = None, *,
                     onnx_bytes: bytes | None = None) -> ModelBundle:
        """A copy holding ``state_dict`` (serialised now) and/or an ONNX graph in memory."""
        weights = _serialise_state_dict(state_dict) if state_dict is not None else self._weights
        if state_dict is None and weights is None and self.path is not None:
            weights = self.weights_bytes()
        onnx = onnx_bytes if onnx_bytes is not None else self.onnx_bytes()
        return replace(self, path=None, _weights=weights, _onnx=onnx,
                       _has_onnx=onnx is not None)

    def build_torch_model(self, device: Any = None) -> Any:
        """Rebuild the network, load the weights (strict) and return it in eval mode.

        Args:
            device: torch device (``"cpu"``, ``"cuda"``, ...); default CPU.

        Returns:
            The ``torch.nn.Module`` on ``device``, in eval mode.

        Raises:
            ModelFileError: the architecture is unknown or the weights do not fit it.
        """
        torch = _import_torch()
        from glacierkit.dl.registry import model_spec

        kwargs = {k: v for k, v in self.model_kwargs.items() if k != "arch"}
        try:
            factory = model_spec(self.arch).factory
        except InputError as e:
            raise ModelFileError(f"{self.path or 'the bundle'}: {e}") from e
        try:
            model = factory(**{k: tuple(v) if isinstance(v, list) else v
                               for k, v in kwargs.items()})
        except (TypeError, ValueError, KeyError) as e:
            raise ModelFileError(f"cannot build architecture {self.arch!r} with "
                                 f"model_kwargs={kwargs} from {self.path or 'the bundle'}: {e}. "
                                 f"The file may come from another glacierkit version "
                                 f"({self.glacierkit_version}; this is {__version__}).") from e
        try:
            model.load_state_dict(self.state_dict(), strict=True)
        except RuntimeError as e:
            raise ModelFileError(f"the weights in {self.path or 'the bundle'} do not fit "
                                 f"architecture {self.arch!r} ({kwargs}): {e}") from e
        return model.to(torch.device(device) if device is not None else "cpu").eval()


# ---------------------------------------------------------------------------- helpers
def _import_torch() -> Any:
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        from glacierkit.errors import DependencyNotFoundError

        raise DependencyNotFoundError("the model weights need torch; install the dl extra: "
                                      "pip install 'glacierkit[dl]'.") from e
    return torch


def _serialise_state_dict(state_dict: Mapping[str, Any]) -> bytes:
    torch = _import_torch()
    if not isinstance(state_dict, Mapping):
        raise InputError(f"state_dict must be a mapping of tensors (model.state_dict()); got "
                         f"{type(state_dict).__name__}.")
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() if hasattr(v, "detach") else v
                for k, v in state_dict.items()}, buf)
    return buf.getvalue()


def _open_zip(path: Path) -> zipfile.ZipFile:
    if not path.exists():
        raise DatasetNotFoundError(f"model file {path} does not exist.")
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise ModelFileError(f"{path} is not a glacierkit model file (not a readable zip "
                             f"archive: {e}); the file is truncated, corrupt or of another "
                             f"kind. Copy it again or re-export the model.") from e


def _member_names(path: Path) -> set[str]:
    with _open_zip(path) as zf:
        return set(zf.namelist())


def _read_member(path: Path, name: str) -> bytes:
    with _open_zip(path) as zf:
        if name not in zf.namelist():
            raise ModelFileError(f"{path} has no {name} member (it holds "
                                 f"{sorted(zf.namelist())}); the file is incomplete. "
                                 f"Re-export the model.")
        try:
            return zf.read(name)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:  # CRC error, truncation
            raise ModelFileError(f"cannot read {name} from {path}: {e}; the file is truncated "
                                 f"or corrupt. Copy it again or re-export the model.") from e


def _check_format(meta: Mapping[str, Any], path: Path | str) -> None:
    fmt = meta.get("format")
    writer = meta.get("glacierkit_version", "an unknown version")
    if fmt != FORMAT:
        raise ModelFileError(f"{path}: metadata.json has format={fmt!r}, not {FORMAT!r}; this "
                             f"is not a glacierkit model file.")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ModelFileError(f"{path}: metadata.json has no integer format_version (got "
                             f"{version!r}); the file is corrupt.")
    if version not in SUPPORTED_FORMAT_VERSIONS:
        reads = ", ".join(str(v) for v in SUPPORTED_FORMAT_VERSIONS)
        if version > max(SUPPORTED_FORMAT_VERSIONS):
            fix = "upgrade glacierkit (pip install -U glacierkit) to read it"
        else:
            fix = (f"re-save it with a glacierkit version that reads format {version} and "
                   f"writes format {FORMAT_VERSION}, or retrain with this version")
        raise ModelFileError(f"{path} is model-file format version {version}, written by "
                             f"glacierkit {writer}; this glacierkit ({__version__}) reads "
                             f"format version(s) {reads}. {fix.capitalize()}.")
    missing = [k for k in _REQUIRED_KEYS if k not in meta]
    if missing:
        raise ModelFileError(f"{path}: metadata.json lacks {missing}; the file is incomplete "
                             f"or corrupt. Re-export the model.")


def _from_metadata(meta: Mapping[str, Any], path: Path | None) -> ModelBundle:
    known = {f.name for f in fields(ModelBundle) if f.name != "path" and
             not f.name.startswith("_")}
    extra = sorted(set(meta) - known - {"format"})
    if extra:
        log.info("%s: ignoring unknown metadata keys %s", path, extra)
    kw = {k: meta[k] for k in known if k in meta}
    if meta.get("cond") is None:
        kw["cond"] = _default_cond()
    if meta.get("tile") is None:
        kw["tile"] = _default_tile()
    if meta.get("training") is None:
        kw["training"] = {}
    if meta.get("task") is None:
        kw["task"] = infer_task(kw)
    if not meta.get("inputs"):
        kw["inputs"] = image_inputs(kw.get("model_kwargs") or {})
    try:
        return ModelBundle(**kw, path=path)
    except TypeError as e:  # pragma: no cover - guarded by the key checks above
        raise ModelFileError(f"{path}: invalid metadata: {e}") from e


# ---------------------------------------------------------------------------- public API
def image_inputs(model_kwargs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``inputs`` entry of a single-date model: ``x``, ``present`` (and ``cond``)."""
    gc = [int(c) for c in model_kwargs.get("group_channels") or ()]
    out: list[dict[str, Any]] = [{"name": "x", "shape": ["B", sum(gc), "H", "W"]},
                                 {"name": "present", "shape": ["B", len(gc)]}]
    if int(model_kwargs.get("cond_dim", 0) or 0) > 0:
        out.append({"name": "cond", "shape": ["B", int(model_kwargs["cond_dim"])]})
    return out


def series_inputs(n_channels: int, time_steps: int | None) -> list[dict[str, Any]]:
    """The ``inputs`` entry of a time-series model with ``n_channels`` channels per date."""
    t: Any = "T" if time_steps is None else int(time_steps)
    return [{"name": "series", "shape": ["B", t, int(n_channels), "H", "W"]},
            {"name": "dates", "shape": ["B", t]}, {"name": "mask", "shape": ["B", t]}]


def infer_task(meta: Mapping[str, Any]) -> str | None:
    """The task of a model file's metadata, inferred only where certain.

    The ``task`` key when present; otherwise ``training["task"]`` (facies model files have
    always recorded it there); otherwise ``"mapping"`` for files written by
    ``glacierkit map train`` (a ``training["strategy"]`` record or the classes
    ``["off_glacier", "glacier"]``); otherwise ``None`` (unknown).
    """
    task = meta.get("task")
    if isinstance(task, str) and task:
        return task
    training = meta.get("training") or {}
    if isinstance(training, Mapping):
        t = training.get("task")
        if isinstance(t, str) and t:
            return t
        if "strategy" in training:
            return "mapping"
    if tuple(meta.get("classes") or ()) == MAPPING_CLASSES:
        return "mapping"
    return None


def check_task(bundle: ModelBundle, expected: str, *, command: str | None = None) -> None:
    """Refuse a model of another task than ``expected``.

    A model whose task is unknown (an old file that cannot be told apart) is accepted, with
    an info log line.

    Raises:
        ModelKindError: the model's task differs from ``expected``; the message names the
            command that applies it.
    """
    from glacierkit.errors import ModelKindError

    task = bundle.task
    name = bundle.path or "the model bundle"
    if task is None:
        log.info("%s does not state its task (written before tasks were recorded); "
                 "applying it as a %s model", name, expected)
        return
    if task != expected:
        right = TASKS.get(task)
        fix = (f"use `{right}`" if right else
               f"this glacierkit has no command for task {task!r}")
        here = command or TASKS.get(expected, expected)
        raise ModelKindError(f"{name} is a {task} model (classes {list(bundle.classes)}), but "
                             f"`{here}` applies {expected} models; {fix}.")


def bundle_from_model(model: Any, *, layout: Mapping[str, Any], norm: Mapping[str, Any],
                      classes: list[str], cond: Mapping[str, Any] | None = None,
                      calibration: Mapping[str, Any] | None = None,
                      tile: Mapping[str, Any] | None = None,
                      training: Mapping[str, Any] | None = None,
                      model_kwargs: Mapping[str, Any] | None = None,
                      onnx_bytes: bytes | None = None, task: str | None = None,
                      domain: Mapping[str, Any] | None = None,
                      series: Mapping[str, Any] | None = None) -> ModelBundle:
    """A bundle holding ``model``'s weights and everything needed to apply it.

    Args:
        model: A model from :func:`glacierkit.dl.models.build_model` (or a registered
            architecture, then ``model_kwargs`` is required).
        layout: ``SourceLayout.to_dict()``.
        norm: ``NormStats.to_dict()``.
        classes: Class names (index = class value).
        cond: ``CondSpec.to_dict()`` (default: no conditioning).
        calibration: A calibration map's ``to_dict()`` or ``None``.
        tile: Recommended ``{"size", "overlap"}`` (default 512 / 64 px); the model's
            ``multiple`` is added so that the ONNX backend can pad tiles without torch.
        training: Free-form training record (e.g. ``group_dropout``, metrics, seed).
        model_kwargs: Keyword arguments rebuilding the model (default:
            :func:`glacierkit.dl.models.model_kwargs`).
        onnx_bytes: The exported graph (:func:`glacierkit.dl.export.export_onnx`), if any.
        task: What the model does (a key of :data:`TASKS`; default: ``training["task"]``
            when given, else ``None``).
        domain: The training domain (:func:`glacierkit.dl.domain.domain_from_channels`).
        series: Time-series models: how dates are counted and selected (see
            :class:`ModelBundle`); ``time_steps`` and ``date_aware`` are taken from the model.
    """
    if model_kwargs is None:
        from glacierkit.dl.models import model_kwargs as _kwargs

        model_kwargs = _kwargs(model)
    kw = dict(model_kwargs)
    arch = str(kw.pop("arch", getattr(model, "arch", "")))
    n_classes = int(getattr(model, "n_classes", len(classes)))
    if n_classes != len(classes):
        raise InputError(f"the model has {n_classes} classes but {len(classes)} class names "
                         f"were given ({list(classes)}).")
    tile_d = {**_default_tile(), **dict(tile or {})}
    tile_d["multiple"] = int(getattr(model, "multiple", tile_d.get("multiple", 1)) or 1)
    bundle = ModelBundle(arch=arch, model_kwargs=kw, layout=dict(layout), norm=dict(norm),
                         classes=[str(c) for c in classes],
                         cond=dict(cond) if cond is not None else _default_cond(),
                         calibration=None if calibration is None else dict(calibration),
                         tile=tile_d, training=dict(training or {}),
                         task=task or (training or {}).get("task"),
                         domain=None if domain is None else dict(domain))
    if tuple(getattr(model, "inputs", ())) == ("series", "dates", "mask"):
        ts = getattr(model, "time_steps", None)
        bundle.inputs = series_inputs(sum(int(c) for c in kw.get("group_channels") or ()), ts)
        bundle.series = {"reference": "days since 1 January of the first date's year",
                         "min_dates": 1, **dict(series or {}), "time_steps": ts,
                         "date_aware": bool(getattr(model, "date_aware", False))}
    else:
        if series:
            raise InputError("series= is only for time-series models (inputs series, dates, "
                             "mask).")
        bundle.inputs = image_inputs(kw)
    return bundle.with_weights(model.state_dict(), onnx_bytes=onnx_bytes)


def save_bundle(path: str | os.PathLike[str], bundle: ModelBundle, *,
                state_dict: Mapping[str, Any] | None = None, onnx_bytes: bytes | None = None,
                overwrite: bool = False) -> Path:
    """Write a model file atomically.

    Args:
        path: Target ``.gkm`` file; its folder must exist.
        bundle: Metadata (and, if it holds them, weights and ONNX graph).
        state_dict: ``model.state_dict()``; default: the weights the bundle holds.
        onnx_bytes: Serialised ONNX graph (:func:`glacierkit.dl.export.export_onnx`); default:
            the bundle's graph if it has one.
        overwrite: Replace an existing file (default False).

    Returns:
        The written path.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
        ModelFileError: neither ``state_dict`` nor the bundle provides weights.
    """
    p = check_output_path(path, overwrite=overwrite)
    if p.suffix.lower() != ".gkm":
        log.warning("model file %s does not end in .gkm", p)
    meta = bundle.metadata()
    meta["glacierkit_version"] = __version__
    meta["format_version"] = FORMAT_VERSION
    weights = (_serialise_state_dict(state_dict) if state_dict is not None
               else bundle.weights_bytes())
    onnx = onnx_bytes if onnx_bytes is not None else bundle.onnx_bytes()
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".part", dir=p.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        with zipfile.ZipFile(tmp_path, "w") as zf:
            zf.writestr(METADATA, json.dumps(meta, indent=2, sort_keys=True),
                        compress_type=zipfile.ZIP_DEFLATED)
            # torch.save writes a zip itself: stored raw, its end record would let a truncated
            # .gkm open as that inner archive. Fast deflate hides it (tensors barely compress).
            zf.writestr(WEIGHTS, weights, compress_type=zipfile.ZIP_DEFLATED, compresslevel=1)
            if onnx is not None:
                zf.writestr(ONNX, onnx, compress_type=zipfile.ZIP_STORED)
        check_output_path(p, overwrite=overwrite)
        publish_file(tmp_path, p)
    finally:
        tmp_path.unlink(missing_ok=True)
    log.info("wrote model file %s (%s, %d classes, onnx: %s)", p, bundle.arch,
             len(bundle.classes), onnx is not None)
    return p


def load_bundle(path: str | os.PathLike[str]) -> ModelBundle:
    """Read a model file's metadata and check its format; weights and graph load lazily.

    Needs no torch. The weights (:meth:`ModelBundle.state_dict`) and the ONNX graph
    (:meth:`ModelBundle.onnx_bytes`) are read from the file when first asked for.

    Raises:
        DatasetNotFoundError: the file does not exist.
        ModelFileError: not a zip, truncated or corrupt, ``metadata.json`` or ``weights.pt``
            missing, another ``format``, or a ``format_version`` this glacierkit cannot read.
    """
    p = Path(path)
    with _open_zip(p) as zf:
        names = set(zf.namelist())
        if METADATA not in names:
            raise ModelFileError(f"{p} has no {METADATA} (zip members: {sorted(names)[:5]}); "
                                 f"it is not a glacierkit model file, or it is truncated. Copy "
                                 f"it again or re-export the model.")
        try:
            meta = json.loads(zf.read(METADATA).decode("utf-8"))
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise ModelFileError(f"cannot read {METADATA} of {p}: {e}; the file is corrupt. "
                                 f"Copy it again or re-export the model.") from e
        if not isinstance(meta, dict):
            raise ModelFileError(f"{p}: {METADATA} is not a JSON object.")
        _check_format(meta, p)
        if WEIGHTS not in names:
            raise ModelFileError(f"{p} has no {WEIGHTS} member; the file is incomplete. "
                                 f"Re-export the model.")
        bad = zf.testzip()
        if bad is not None:
            raise ModelFileError(f"{p}: member {bad} fails its CRC check; the file is "
                                 f"corrupt. Copy it again or re-export the model.")
    bundle = _from_metadata(meta, p)
    bundle._has_onnx = ONNX in names
    return bundle


def calibration_summary(calibration: Mapping[str, Any] | None) -> dict[str, Any]:
    """``{"method": kind | "uncalibrated", "values": {...}}`` of a serialised calibration map.

    ``values`` holds the fitted scalars (e.g. the temperature) and, for list-valued maps such
    as isotonic regression, the number of knots instead of the lists.
    """
    if calibration is None:
        return {"method": "uncalibrated", "values": {}}
    values: dict[str, Any] = {}
    for k, v in calibration.items():
        if k == "kind":
            continue
        if isinstance(v, list | tuple):
            values[f"n_{k}"] = len(v)
        elif isinstance(v, int | float | str | bool) or v is None:
            values[k] = v
    return {"method": str(calibration.get("kind", "custom")), "values": values}


def bundle_summary(bundle: ModelBundle) -> dict[str, Any]:
    """A JSON-serialisable description (for ``glacierkit info`` and logs).

    Keys: ``path``, ``file_size_bytes``, ``task`` (``None``: unknown), ``arch``,
    ``model_kwargs``, ``parameters`` (values in the state dict, parameters and buffers, counted
    without torch; ``None`` when the weights cannot be read that way), ``groups`` (per source
    group: ``name``, ``kind``, ``bands``, ``channels``), ``classes``, ``domain`` (per
    channel, or ``"unknown"``), ``calibration`` (:func:`calibration_summary`), ``calibrated``,
    ``norm`` (per channel mean/std), ``cond``, ``tile``, ``onnx``, ``inputs`` (names and
    symbolic shapes), ``series`` (time-series models), ``format_version``,
    ``glacierkit_version``, ``training`` (a few scalar facts: strategy, group dropout,
    epochs).
    """
    from glacierkit.dl.domain import describe_domain

    groups = [{"name": g.get("name"), "kind": g.get("kind"), "bands": list(g.get("bands") or []),
               "channels": list(g.get("channels") or []), "time": bool(g.get("time"))}
              for g in (bundle.layout or {}).get("groups") or []]
    names = [c for g in groups for c in g["channels"]]
    norm = bundle.norm or {}
    norm_rows = [{"channel": c, "mean": m, "std": s} for c, m, s in
                 zip(norm.get("names") or names, norm.get("mean") or [], norm.get("std") or [],
                     strict=False)]
    size = None
    if bundle.path is not None and Path(bundle.path).exists():
        size = Path(bundle.path).stat().st_size
    training = bundle.training or {}
    facts = {k: training[k] for k in ("strategy", "group_dropout", "form", "n_labels",
                                       "receptive_field_px", "scenes")
             if k in training}
    cfg = training.get("config")
    if isinstance(cfg, Mapping):
        facts.update({k: cfg[k] for k in ("epochs", "max_steps", "seed", "size")
                      if k in cfg})
    return {"path": str(bundle.path) if bundle.path else None, "file_size_bytes": size,
            "task": bundle.task, "arch": bundle.arch, "model_kwargs": dict(bundle.model_kwargs),
            "parameters": _count_parameters(bundle), "groups": groups,
            "classes": list(bundle.classes),
            "domain": describe_domain(bundle.domain) if bundle.domain else "unknown",
            "domain_source": (bundle.domain or {}).get("source") if bundle.domain else None,
            "calibration": calibration_summary(bundle.calibration),
            "calibrated": bundle.calibration is not None, "norm": norm_rows,
            "cond": dict(bundle.cond), "tile": dict(bundle.tile), "onnx": bundle.has_onnx,
            "inputs": [dict(i) for i in bundle.inputs],
            "series": None if bundle.series is None else dict(bundle.series),
            "format_version": bundle.format_version,
            "glacierkit_version": bundle.glacierkit_version, "training": facts}


class _StateDictCounter(pickle.Unpickler):
    """Reads a ``torch.save``'d state dict's ``data.pkl`` without torch, tensors as sizes.

    Only the handful of globals a state dict uses resolve (to inert stand-ins); anything else
    raises, so no code from the file runs.
    """

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return dict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return lambda storage, offset, size, *a, **k: math.prod(size)
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return lambda data, *a, **k: data
        if module == "torch" and name.endswith("Storage"):
            return name
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a state dict")

    def persistent_load(self, pid: Any) -> Any:
        return None


def _count_parameters(bundle: ModelBundle) -> int | None:
    """Number of values in the state dict (parameters and buffers), read without torch.

    ``None`` when the weights member cannot be read this way.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(bundle.weights_bytes())) as zf:
            pkl = next(n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl")
            sd = _StateDictCounter(io.BytesIO(zf.read(pkl))).load()
    except Exception:  # an unreadable weights member is reported when the model is used
        return None
    if not isinstance(sd, dict):
        return None
    return int(sum(v for v in sd.values() if isinstance(v, int) and not isinstance(v, bool)))
