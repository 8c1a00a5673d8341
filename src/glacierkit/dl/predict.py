"""Full-scene tiled inference: sources → tiles → model → blended probabilities → products.

:func:`predict_scene` applies a model file (:mod:`glacierkit.dl.bundle`) to a scene whose
source groups (optical, DEM, SAR, ...) are given as GeoTIFFs on one grid::

    sources ──run_tiled──▶ per tile: prepare_channels → NormStats.apply → pad to a multiple
            ──▶ model (batched, ONNX Runtime or torch; optional TTA / MC dropout)
            ──▶ softmax probabilities (K, h, w) ──cosine blend──▶ probabilities (K, H, W)
            ──block by block──▶ argmax → classes.tif, confidence → confidence.tif
              (calibrated when the model file holds a calibration map, else the raw maximum
              probability, tagged ``CALIBRATION=uncalibrated``)
            ──▶ polygons of the glacier class(es) → outlines.gpkg

Only the first ``K − 1`` probabilities go through the blend; the last is ``1 − Σ`` of them,
which is exact because blending is a normalised weighted mean. For the usual two classes this
halves the blending memory. Finished rows of the blend go straight into the class and
confidence maps (no temporary probability raster).

Tiling, reading and blending are :func:`glacierkit.tiling.run_tiled` (memory bounded by the
tile size and the scene width, not the scene area): overlapping tiles' *probabilities* are
blended with a cosine window, so there are no seams as long as the overlap covers the model's
context (the model file recommends ``tile = {"size", "overlap"}``). On a GPU (or with
``batch_size > 1``) tiles are read and prepared in worker threads while the model runs, and
``batch_size`` tiles go through the model at once; on the CPU with one tile per call, tiles
run one after the other, because the model already keeps every core busy.

Nodata: a pixel gets a prediction where *every* given source group has data
(``nodata="all"``, default) or where *any* does (``nodata="any"``); elsewhere every product is
nodata (classes 255, confidence/probabilities NaN). Tiles without any such pixel are skipped
without running the model. A source group that is entirely nodata within a tile is passed to
the model as missing (``present = 0``).

Backends: ``"onnx"`` runs the model file's ONNX graph with ONNX Runtime on CPU (no torch
needed); ``"torch"`` rebuilds the network from the weights (CPU or CUDA); ``"auto"`` picks
torch on CUDA when a GPU is available, else ONNX Runtime (torch on CPU if the file has no
graph). Monte-Carlo dropout needs torch.

This module never imports torch at module level.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
from rasterio.windows import Window

from glacierkit import __version__
from glacierkit.errors import (
    DatasetNotFoundError,
    GridMismatchError,
    InputError,
)
from glacierkit.io.grid import Grid, check_same_grid
from glacierkit.io.products import ProductSet, reports_output
from glacierkit.io.raster import RasterReader, open_raster, read_grid
from glacierkit.io.vector import MIN_AREA_KM2  # the default of predict_scene(min_area_km2=)
from glacierkit.io.writer import open_writer
from glacierkit.memory import Budget, format_bytes, resolve_budget
from glacierkit.tiling.blend import sum_is_finite
from glacierkit.tiling.grid import Tile
from glacierkit.tiling.run import ThreadExecutor, run_tiled

from .bundle import ModelBundle, load_bundle

log = logging.getLogger(__name__)

Backend = Literal["auto", "onnx", "torch"]
NodataRule = Literal["all", "any"]

CLASS_NODATA = 255
"""Nodata value of ``classes.tif``."""

_BACKGROUND_NAMES = {"background", "bg", "other", "non-glacier", "non_glacier", "nonglacier",
                     "not_glacier", "no_glacier", "land", "terrain", "rock", "water", "sea",
                     "ocean", "nodata", "none", "unknown"}

_NAMED_COLOURS = {
    "background": (40, 40, 40, 255), "glacier": (120, 200, 255, 255),
    "ice": (120, 200, 255, 255), "clean_ice": (120, 200, 255, 255),
    "debris": (150, 110, 70, 255), "debris_covered": (150, 110, 70, 255),
    "snow": (245, 245, 250, 255), "firn": (200, 225, 245, 255),
    "water": (30, 80, 200, 255), "lake": (30, 80, 200, 255), "rock": (120, 120, 120, 255),
}
_PALETTE = [(31, 119, 180, 255), (255, 127, 14, 255), (44, 160, 44, 255), (214, 39, 40, 255),
            (148, 103, 189, 255), (140, 86, 75, 255), (227, 119, 194, 255),
            (127, 127, 127, 255), (188, 189, 34, 255), (23, 190, 207, 255)]

_OUTPUT_NAMES = ("classes", "confidence", "probabilities", "entropy", "outlines", "report")

_GDAL_CACHE_MB = 128  # as run_tiled's default: GDAL's own default is 5 % of the RAM


# ---------------------------------------------------------------------------- result
@dataclass(frozen=True)
class PredictResult:
    """What :func:`predict_scene` wrote and how long it took.

    Attributes:
        classes: ``classes.tif``: uint8 class index, nodata 255, colour table.
        confidence: ``confidence.tif``: float32 confidence 0–1 of the top class, NaN nodata:
            calibrated when the model file holds a calibration map, otherwise the
            uncalibrated maximum probability (tag ``CALIBRATION`` says which).
        probabilities: ``probabilities.tif`` (K float32 bands), or ``None``.
        entropy: ``entropy.tif``: predictive entropy (nats) of the MC-dropout mean, or
            ``None`` without MC dropout.
        outlines: ``outlines.gpkg`` (layer ``outlines``: polygons with ``class``,
            ``class_name``, ``area_km2``; layer ``footprint``: the classified area), or
            ``None``.
        backend: ``"onnx"`` or ``"torch"``.
        device: ``"cpu"`` or the torch device used.
        tiles: Number of tiles in the tile grid.
        tiles_run: Tiles that went through the model.
        tiles_skipped: Tiles skipped because they held no pixel to predict.
        model_seconds: Wall-clock seconds spent inside the model (ONNX Runtime session / torch
            forward, every TTA transform and MC sample, host transfers included).
        total_seconds: Wall-clock seconds of the whole call (reading, preparation, model,
            blending, writing, polygonizing).
        grid: Grid of the products.
        missing_groups: Source groups the model ran without (``present = 0``).
        n_outlines: Number of outline polygons written.
        stages: Wall-clock seconds per stage: ``setup`` (checks, model/session loading),
            ``tiles`` (the tiled run: read, prepare, model, blend, classes/confidence rows),
            ``finish`` (converting the products to COGs), ``outlines``.
        class_counts: Pixels per class name in ``classes.tif`` (nodata not counted).
        predicted_share: Share (0–1) of the scene's pixels that got a prediction.
        warnings: Messages about a nearly empty result (no pixel predicted; with outlines, no
            glacier pixel or no outline polygon); each was also logged as a warning.
        area: Glacier area (km²) of a glacier / off-glacier model: the expected area from the
            calibrated probabilities with 95 % intervals (:func:`_area_estimate`); ``None``
            for other models.
        report: ``report.json``: model, backend, timings, class counts, area, dates.
    """

    classes: Path
    confidence: Path
    probabilities: Path | None
    entropy: Path | None
    outlines: Path | None
    backend: str
    device: str
    tiles: int
    tiles_run: int
    tiles_skipped: int
    model_seconds: float
    total_seconds: float
    grid: Grid = field(repr=False)
    missing_groups: tuple[str, ...] = ()
    n_outlines: int = 0
    stages: dict[str, float] = field(default_factory=dict)
    class_counts: dict[str, int] = field(default_factory=dict)
    predicted_share: float = float("nan")
    warnings: tuple[str, ...] = ()
    area: dict[str, Any] | None = None
    report: Path | None = None

    @property
    def paths(self) -> dict[str, Path]:
        """``{product name: path}`` of every file written."""
        out = {"classes": self.classes, "confidence": self.confidence}
        for k in ("probabilities", "entropy", "outlines", "report"):
            p = getattr(self, k)
            if p is not None:
                out[k] = p
        return out

    @property
    def timing(self) -> dict[str, float]:
        """Seconds: ``model_s``, ``total_s``, ``overhead_s`` (total − model), ``overhead_share``.

        ``overhead_share`` is the overhead relative to the model time.
        """
        over = self.total_seconds - self.model_seconds
        share = over / self.model_seconds if self.model_seconds > 0 else float("nan")
        return {"model_s": self.model_seconds, "total_s": self.total_seconds,
                "overhead_s": over, "overhead_share": share}


# ---------------------------------------------------------------------------- helpers
def _softmax(logits: np.ndarray, axis: int = 1, *, inplace: bool = False) -> np.ndarray:
    """Softmax over ``axis`` in float32; ``inplace`` reuses ``logits`` when it is float32."""
    z = np.asarray(logits, dtype=np.float32)
    m = z.max(axis=axis, keepdims=True)
    if (inplace or z is not logits) and z.flags.writeable:
        z -= m
    else:
        z = z - m
    np.exp(z, out=z)
    z /= z.sum(axis=axis, keepdims=True)
    return z


def _pad_to_multiple(x: np.ndarray, multiple: int) -> np.ndarray:
    """Pad ``(..., h, w)`` at the bottom/right to multiples of ``multiple`` by reflection."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    width = [(0, 0)] * (x.ndim - 2) + [(0, ph), (0, pw)]
    mode = "reflect" if ph < h and pw < w else "symmetric"
    if ph >= 2 * h or pw >= 2 * w:
        mode = "edge"
    return np.pad(x, width, mode=mode)


# TTA: the 8 symmetries of the square (rotations by k·90°, optionally after a flip).
def _tta_forward(x: np.ndarray, k: int, flip: bool) -> np.ndarray:
    y = x[..., ::-1] if flip else x
    return np.ascontiguousarray(np.rot90(y, k, axes=(-2, -1)))


def _tta_inverse(p: np.ndarray, k: int, flip: bool) -> np.ndarray:
    y = np.rot90(p, -k, axes=(-2, -1))
    return y[..., ::-1] if flip else y


_TTA = [(k, f) for f in (False, True) for k in range(4)]


@dataclass(frozen=True)
class _GroupSource:
    """The file(s) of one source group and the bands to take from each."""

    name: str
    paths: tuple[Path, ...]
    bands: tuple[tuple[int, ...] | None, ...]
    acquired: np.ndarray | None = None  # timed groups: (T,) datetime64[s], one per file


def _normalise_sources(sources: Mapping[str, Any], layout: Any) -> dict[str, _GroupSource]:
    from .sources import BandSource

    if not isinstance(sources, Mapping):
        raise InputError(f"sources must map source-group names to raster paths, e.g. "
                         f"{{'optical': 'scene.tif', 'dem': 'dem.tif'}}; got "
                         f"{type(sources).__name__}. The model's groups are "
                         f"{list(layout.group_names)}.")
    unknown = [k for k in sources if k not in layout.group_names]
    if unknown:
        raise InputError(f"sources {unknown} are not source groups of this model; its layout "
                         f"is {_describe_layout(layout)}.")
    out = {}
    for name, spec in sources.items():
        if spec is None:
            continue
        group = layout.group(name)
        if group.time:
            from .sources import _timed_sources

            srcs, acquired = _timed_sources(spec, group)
            paths_t = tuple(Path(b.path) for b in srcs)
            for p in paths_t:
                if not p.exists():
                    raise DatasetNotFoundError(f"source {name!r}: {p} does not exist.")
            out[name] = _GroupSource(name, paths_t, tuple(None for _ in paths_t), acquired)
            continue
        if hasattr(spec, "paths") and hasattr(spec, "dates"):
            raise InputError(f"source group {name!r} is single-date in this model, but a "
                             f"series ({len(list(spec.paths))} dates) was given; give one "
                             f"raster, or use a model trained on series.")
        items = list(spec) if isinstance(spec, list | tuple) else [spec]
        if not items:
            raise InputError(f"source group {name!r} has an empty list of files; omit the "
                             f"group instead.")
        paths, bands = [], []
        for it in items:
            if isinstance(it, BandSource):
                paths.append(Path(it.path))
                bands.append(None if it.bands is None else tuple(int(b) for b in it.bands))
            elif isinstance(it, str | os.PathLike):
                paths.append(Path(it))
                bands.append(None)
            else:
                raise InputError(f"source group {name!r}: {it!r} is not a path or a "
                                 f"BandSource.")
        for p in paths:
            if not p.exists():
                raise DatasetNotFoundError(f"source {name!r}: {p} does not exist.")
        out[name] = _GroupSource(name, tuple(paths), tuple(bands))
    return out


def _describe_layout(layout: Any) -> str:
    return "; ".join(f"{g.name} ({g.kind}): raw bands {list(g.bands or ())} → channels "
                     f"{list(g.channels)}" for g in layout.groups)


def _band_counts(gs: _GroupSource) -> list[int]:
    """Bands each file of a group contributes (after band selection)."""
    counts = []
    for p, sel in zip(gs.paths, gs.bands, strict=True):
        with RasterReader(p) as r:
            n = int(r.count)
        if sel is not None:
            bad = [b for b in sel if not 1 <= b <= n]
            if bad:
                raise InputError(f"source {gs.name!r}: bands {bad} do not exist in {p} "
                                 f"({n} band(s), 1-based).")
        counts.append(n if sel is None else len(sel))
    return counts


def _outline_classes(classes: Sequence[str]) -> list[int]:
    """Class values outlined: the class(es) named glacier, else every non-background class."""
    low = [c.lower() for c in classes]
    exact = [i for i, c in enumerate(low) if c == "glacier"]
    if exact:
        return exact
    keep = [i for i, c in enumerate(low) if c not in _BACKGROUND_NAMES]
    return keep if len(keep) < len(classes) else [i for i in range(len(classes)) if i != 0]


def _colormap(classes: Sequence[str]) -> dict[int, tuple[int, int, int, int]]:
    cmap = {}
    for i, name in enumerate(classes):
        cmap[i] = _NAMED_COLOURS.get(name.lower(), _PALETTE[i % len(_PALETTE)])
    cmap[CLASS_NODATA] = (0, 0, 0, 0)
    return cmap


# ---------------------------------------------------------------------------- backends
class _OnnxRunner:
    """ONNX Runtime session on CPU: ``probabilities = run({input name: array})``."""

    name = "onnx"
    device = "cpu"

    def __init__(self, onnx_bytes: bytes, *, threads: int | None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:  # pragma: no cover - depends on the environment
            from glacierkit.errors import DependencyNotFoundError

            raise DependencyNotFoundError("backend='onnx' needs onnxruntime: pip install "
                                          "'glacierkit[dl]' (or onnxruntime).") from e
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads or os.cpu_count() or 1)
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        # Spinning worker threads compete with the tile-preparation threads (and with anything
        # else on the machine): measured 0.53 s vs 0.76 s per 512² GlaViTU-tiny tile on a
        # shared 2-core CPU (benchmarks/inference_speed.py).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # The memory pattern pre-plans one arena per input shape and keeps it: measured peak
        # RSS of a 10000² × 15-date U-TAE prediction 4.2 GB with it, 2.4 GB without, at the
        # same per-tile time (benchmarks/series_inference.py).
        opts.enable_mem_pattern = False
        self.session = ort.InferenceSession(onnx_bytes, sess_options=opts,
                                            providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def __call__(self, inputs: Mapping[str, np.ndarray | None]) -> np.ndarray:
        feeds = {n: inputs[n] for n in self.inputs}
        # The session returns a fresh array: the softmax may overwrite it.
        return _softmax(self.session.run(["logits"], feeds)[0], inplace=True)


class _TorchRunner:
    """The torch model on a device: ``probabilities = run({input name: array})``."""

    name = "torch"

    def __init__(self, bundle: ModelBundle, *, device: str, mc: bool,
                 threads: int | None) -> None:
        import torch

        self.torch = torch
        if threads:
            torch.set_num_threads(int(threads))
        self.device = str(device)
        self.model = bundle.build_torch_model(torch.device(device))
        from .models import input_names

        self.inputs = list(input_names(self.model))
        if mc:
            from .models import enable_mc_dropout

            enable_mc_dropout(self.model)

    def __call__(self, inputs: Mapping[str, np.ndarray | None]) -> np.ndarray:
        torch = self.torch
        dev = torch.device(self.device)
        with torch.inference_mode():
            feeds = {n: torch.from_numpy(inputs[n]).to(dev, non_blocking=True)
                     for n in self.inputs}
            logits = self.model(**feeds)
            return torch.softmax(logits.float(), dim=1).cpu().numpy()


def _check_model_io(runner: Any, k: int, channels: int, groups: int,
                    bundle: ModelBundle) -> None:
    """Raise when the network does not fit the file's classes / layout (an inconsistent file)."""
    from glacierkit.errors import ModelFileError

    if isinstance(runner, _OnnxRunner):
        ins = {i.name: i.shape for i in runner.session.get_inputs()}
        outs = runner.session.get_outputs()
        got = {"classes": outs[0].shape[1] if len(outs[0].shape) == 4 else None,
               "channels": (ins["series"][2] if "series" in ins
                            else ins.get("x", [None, None])[1]),
               "groups": None if "series" in ins else ins.get("present", [None, None])[1]}
    else:
        m = runner.model
        series = "series" in runner.inputs
        got = {"classes": getattr(m, "n_classes", None),
               "channels": sum(getattr(m, "group_channels", ())) or None,
               "groups": None if series else len(getattr(m, "group_channels", ())) or None}
    want = {"classes": k, "channels": channels, "groups": groups}
    bad = {key: (got[key], want[key]) for key in want
           if isinstance(got[key], int) and got[key] != want[key]}
    if bad:
        detail = ", ".join(f"{key}: network {g} vs file {w}" for key, (g, w) in bad.items())
        raise ModelFileError(f"the model file {bundle.path or ''} is inconsistent: its network "
                             f"does not match its metadata ({detail}). Re-export the model.")


def _cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def _pick_backend(bundle: ModelBundle, backend: str, device: str | None,
                  mc_samples: int) -> tuple[str, str]:
    if backend not in ("auto", "onnx", "torch"):
        raise InputError(f"backend must be 'auto', 'onnx' or 'torch'; got {backend!r}.")
    if backend == "onnx":
        if mc_samples > 0:
            raise InputError("Monte-Carlo dropout (mc_samples > 0) needs the torch backend: "
                             "the ONNX graph is exported in eval mode without dropout. Use "
                             "backend='torch' (or 'auto').")
        if not bundle.has_onnx:
            raise InputError(f"backend='onnx' but the model file {bundle.path or ''} holds no "
                             f"ONNX graph; export one (glacierkit.dl.export.export_onnx) or "
                             f"use backend='torch'.")
        if device not in (None, "cpu"):
            raise InputError(f"backend='onnx' runs on the CPU; device={device!r} needs "
                             f"backend='torch'.")
        return "onnx", "cpu"
    if backend == "torch":
        if importlib.util.find_spec("torch") is None:
            from glacierkit.errors import DependencyNotFoundError

            raise DependencyNotFoundError("backend='torch' needs torch: pip install "
                                          "'glacierkit[dl]'.")
        return "torch", device or ("cuda" if _cuda_available() else "cpu")
    # auto
    if device is not None and device != "cpu":
        return "torch", device
    if device is None and _cuda_available():
        return "torch", "cuda"
    if mc_samples > 0 or not bundle.has_onnx:
        why = "MC dropout needs torch" if mc_samples > 0 else "the model file has no ONNX graph"
        log.info("backend auto: torch on CPU (%s)", why)
        return "torch", "cpu"
    return "onnx", "cpu"


# ---------------------------------------------------------------------------- batching
class _Slot:
    __slots__ = ("done", "error", "item", "result")

    def __init__(self, item: Any) -> None:
        self.item = item
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None


class _Batcher:
    """Gather tiles from several worker threads into batches for one model call at a time.

    ``submit(item)`` blocks until the item's result is ready. The thread that gets the model
    lock takes up to ``batch_size`` waiting items (waiting up to ``wait_s`` for a batch to
    fill) and runs them together; items of different shapes go in separate calls.
    """

    def __init__(self, run: Callable[[list[Any]], list[Any]], batch_size: int,
                 wait_s: float = 0.05) -> None:
        self.run = run
        self.batch_size = batch_size
        self.wait_s = wait_s
        self._cv = threading.Condition()
        self._model = threading.Lock()
        self._pending: list[_Slot] = []

    def submit(self, item: Any) -> Any:
        slot = _Slot(item)
        with self._cv:
            self._pending.append(slot)
            self._cv.notify_all()
        while True:
            if self._model.acquire(timeout=0.01):
                try:
                    with self._cv:
                        if not slot.done and self.batch_size > 1:
                            self._cv.wait_for(lambda: slot.done or
                                              len(self._pending) >= self.batch_size,
                                              timeout=self.wait_s)
                        batch = self._pending[:self.batch_size]
                        del self._pending[:self.batch_size]
                    if batch:
                        self._run(batch)
                finally:
                    self._model.release()
            with self._cv:
                if not slot.done:
                    self._cv.wait_for(lambda: slot.done, timeout=0.01)
                if slot.done:
                    break
        if slot.error is not None:
            raise slot.error
        return slot.result

    def _run(self, batch: list[_Slot]) -> None:
        try:
            results = self.run([s.item for s in batch])
            errors: list[BaseException | None] = [None] * len(batch)
        except BaseException as e:
            results, errors = [None] * len(batch), [e] * len(batch)
        with self._cv:
            for s, r, e in zip(batch, results, errors, strict=True):
                s.result, s.error, s.done = r, e, True
            self._cv.notify_all()


# ---------------------------------------------------------------------------- tile work
@dataclass
class _Stats:
    model_seconds: float = 0.0
    tiles_run: int = 0
    tiles_empty: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class _TileFunction:
    """``fn(arrays, tile)`` for run_tiled: raw sources → blended-ready probabilities.

    Single-date groups become the model input ``x`` ``(C, h, w)`` with ``present``; the
    files of a timed group are its dates and become ``series`` ``(T, C_s, h, w)`` with
    ``dates`` and ``mask`` ``(T,)`` (``docs/design/dl.md``). The runner takes the inputs the
    model names.
    """

    layout: Any
    norm: Any
    groups: list[_GroupSource | None]  # layout order; None = missing group
    file_slices: list[slice | None]  # positions of each group's files in the source list
    band_sel: list[tuple[tuple[int, ...] | None, ...]]
    pixel_size: tuple[float, float]
    multiple: int
    n_classes: int
    rule: str
    cond: Callable[[Tile], np.ndarray | None]
    runner: Callable[[Mapping[str, np.ndarray | None]], np.ndarray]
    tta: bool
    mc_samples: int
    dates: np.ndarray | None = None  # (T,) float32 days since the reference (timed groups)
    batcher: _Batcher | None = None
    stats: _Stats = field(default_factory=_Stats)

    # The model call for a batch of prepared tiles (same shape): one input dict per tile.
    def run_batch(self, items: list[dict[str, np.ndarray | None]]) -> list[np.ndarray]:
        key = self._spatial
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, item in enumerate(items):
            by_shape.setdefault(item[key].shape, []).append(i)  # type: ignore[union-attr]
        out: list[np.ndarray] = [None] * len(items)  # type: ignore[list-item]
        for idx in by_shape.values():
            batch: dict[str, np.ndarray | None] = {}
            for name, first in items[idx[0]].items():
                if first is None:
                    batch[name] = None
                elif len(idx) == 1:  # one tile: a view, no copy
                    batch[name] = first[None]
                else:
                    batch[name] = np.stack([items[i][name] for i in idx])  # type: ignore[misc]
            if batch.get("cond") is not None:
                batch["cond"] = batch["cond"].astype(np.float32)  # type: ignore[union-attr]
            probs = self._probabilities(batch)
            for j, i in enumerate(idx):
                out[i] = probs[j]
        return out

    def _probabilities(self, inputs: dict[str, np.ndarray | None]) -> np.ndarray:
        transforms = _TTA if self.tta else [(0, False)]
        samples = max(1, self.mc_samples)
        acc: np.ndarray | None = None
        seconds = 0.0
        key = self._spatial
        x = inputs[key]
        assert x is not None
        for k, flip in transforms:
            feeds = inputs if not (k or flip) else {**inputs, key: _tta_forward(x, k, flip)}
            for _ in range(samples):
                t0 = time.perf_counter()
                p = self.runner(feeds)
                seconds += time.perf_counter() - t0
                p = _tta_inverse(p, k, flip) if (k or flip) else p
                if acc is None:
                    # The runner returns a fresh array: accumulate into it unless it is a view.
                    acc = p if p.flags.owndata and p.flags.writeable else np.array(p)
                else:
                    acc += p
        assert acc is not None
        n = len(transforms) * samples
        if n > 1:
            acc /= n
        with self.stats.lock:
            self.stats.model_seconds += seconds
        return acc

    def _normalise(self, x: np.ndarray, mean: np.ndarray, inv_std: np.ndarray,
                   norm: Any) -> np.ndarray:
        """``NormStats.apply`` in place on a fresh ``(..., C, h, w)`` float32 array (NaN → 0).

        Same values as :meth:`NormStats.apply` (up to one float32 rounding: it multiplies by
        the reciprocal of the standard deviation) at a third of its time and memory traffic.
        """
        if x.dtype != np.float32 or not x.flags.writeable:
            return norm.apply(x)
        x -= mean
        x *= inv_std
        # A finite sum proves every value finite (the usual case) without a mask; otherwise
        # one isfinite pass instead of nan_to_num's three (isnan, isposinf, isneginf).
        if sum_is_finite(x):
            return x
        bad = np.isfinite(x)
        np.logical_not(bad, out=bad)
        if bad.any():
            x[bad] = 0.0
        return x

    def _input_buffer(self, shape: tuple[int, ...]) -> np.ndarray | None:
        """A model-input array reused tile after tile when tiles run one at a time.

        Freshly allocated memory page-faults on first touch; next to an ONNX Runtime
        session that measured 0.35 s instead of 0.09 s of channel preparation for the 25
        tiles of a 2048² scene. With a batcher (threads) every tile gets its own array.
        """
        if self.batcher is not None:
            return None
        buf = self._buffers.get(shape)
        if buf is None:
            buf = self._buffers[shape] = np.empty(shape, np.float32)
        return buf

    def __post_init__(self) -> None:
        self._buffers: dict[tuple[int, ...], np.ndarray] = {}
        tm = self.layout.time_mask
        self._static = self.layout.part(False)
        self._timed = self.layout.part(True)
        self._spatial = "series" if self._timed is not None else "x"
        self._stats: dict[str, tuple[np.ndarray, np.ndarray, Any]] = {}
        for name, sel in (("x", ~tm), ("series", tm)):
            if sel.any():
                part = self.norm.select(sel)
                self._stats[name] = (
                    np.asarray(part.mean, dtype=np.float32)[:, None, None],
                    (1.0 / np.asarray(part.std, dtype=np.float64)).astype(
                        np.float32)[:, None, None], part)

    def __call__(self, arrays: list[np.ndarray], tile: Tile) -> np.ndarray:
        h, w = arrays[0].shape[-2:]
        raws: list[np.ndarray | None] = []
        series_raws: list[np.ndarray] = []
        valid_g: list[np.ndarray] = []
        present: list[float] = []
        for gi, sl in enumerate(self.file_slices):
            group = self.layout.groups[gi]
            if group.time:
                assert sl is not None  # predict_scene requires every timed group
                raw_t = np.stack(arrays[sl])  # (T, bands, h, w): one file per date
                series_raws.append(raw_t)
                valid_g.append(np.isfinite(raw_t).all(axis=1).any(axis=0))
                continue
            if sl is None:
                raws.append(None)
                present.append(0.0)
                continue
            parts = []
            for a, sel in zip(arrays[sl], self.band_sel[gi], strict=True):
                parts.append(a if sel is None else a[[b - 1 for b in sel]])
            raw = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
            complete = sum_is_finite(raw)  # no NaN anywhere: no mask needed
            v = np.ones((h, w), dtype=bool) if complete else np.isfinite(raw).any(axis=0)
            if complete or v.any():
                raws.append(raw)
                present.append(1.0)
            else:
                raws.append(None)
                present.append(0.0)
            valid_g.append(v)
        valid = (np.logical_and.reduce(valid_g) if self.rule == "all"
                 else np.logical_or.reduce(valid_g))
        has_input = (any(present) if self._static is not None else True)
        if not valid.any() or not has_input:
            with self.stats.lock:
                self.stats.tiles_empty += 1
            return np.full((_blend_bands(self.n_classes), h, w), np.nan, dtype=np.float32)
        item: dict[str, np.ndarray | None] = {"cond": self.cond(tile)}
        if self._static is not None:
            mean, inv, part = self._stats["x"]
            x = self._normalise(_prepare(self._static, raws, self.pixel_size,
                                         out=self._input_buffer((self._static.n_channels, h,
                                                                 w))), mean, inv, part)
            item["x"] = np.ascontiguousarray(_pad_to_multiple(x, self.multiple),
                                             dtype=np.float32)
            item["present"] = np.asarray(present, dtype=np.float32)
        if self._timed is not None:
            item.update(self._series_inputs(series_raws, h, w))
        if self.batcher is not None:
            probs = self.batcher.submit(item)
        else:
            probs = self.run_batch([item])[0]
        with self.stats.lock:
            self.stats.tiles_run += 1
        # Blend K - 1 probabilities (the last one is 1 - their sum): a view into this tile's
        # slot of the batch output.
        out = probs[:_blend_bands(self.n_classes), :h, :w]
        if not valid.all():
            out = out.copy()
            out[:, ~valid] = np.nan
        return out

    def _series_inputs(self, series_raws: list[np.ndarray], h: int, w: int
                       ) -> dict[str, np.ndarray]:
        """``series`` ``(T, C_s, h', w')``, ``dates`` and ``mask`` ``(T,)`` of one tile."""
        timed = self._timed
        assert timed is not None and self.dates is not None
        t = series_raws[0].shape[0]
        buf = self._input_buffer((t, timed.n_channels, h, w))
        if buf is None:
            buf = np.empty((t, timed.n_channels, h, w), np.float32)
        for i in range(t):
            _prepare(timed, [r[i] for r in series_raws], self.pixel_size, out=buf[i])
        # A date without any data in this tile (layover/shadow, edge of the swath) is a
        # missing observation for the model (mask 0).
        observed = np.isfinite(buf).any(axis=(1, 2, 3))
        mean, inv, part = self._stats["series"]
        s = self._normalise(buf, mean, inv, part)
        return {"series": np.ascontiguousarray(_pad_to_multiple(s, self.multiple),
                                               dtype=np.float32),
                "dates": np.asarray(self.dates, dtype=np.float32),
                "mask": observed.astype(np.float32)}


def _prepare(layout: Any, raws: list[np.ndarray | None], pixel_size: tuple[float, float],
             out: np.ndarray | None = None) -> np.ndarray:
    """Model channels ``(C, h, w)`` float32 (NaN nodata) from raw group arrays (or ``None``)."""
    from .sources import prepare_channels

    if all(r is None for r in raws):  # pragma: no cover - guarded by the caller
        raise InputError("no source group has data in this tile.")
    return prepare_channels(layout, raws, pixel_size=pixel_size, out=out)


# ---------------------------------------------------------------------------- finishing
def _calibrator(calibration: Mapping[str, Any] | None) -> Callable[[np.ndarray], np.ndarray]:
    """``confidence(probs (K, n)) -> (n,)``: the calibrated top-class confidence."""
    if calibration is None:
        return lambda p: p.max(axis=0)
    from glacierkit.metrics.calibration import calibration_from_dict, logits_from_probabilities

    cal = calibration_from_dict(dict(calibration))

    def calibrated(p: np.ndarray) -> np.ndarray:
        # Calibration maps take logits (N, K); log p is a logit vector whose softmax is p.
        conf = cal.confidence(logits_from_probabilities(p.T), "max")
        return np.clip(np.asarray(conf, dtype=np.float32), 0.0, 1.0)

    return calibrated


def _argmax_max(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class index (uint8, first maximum) and maximum over axis 0 of ``(K, ...)`` float32.

    One pass per class, with the class chosen by bitwise selection (``cls ^= (cls ^ c) &
    mask``) rather than a boolean-mask assignment, whose branches mispredict on noisy
    probabilities: 0.65 vs 6.8 ms for a ``(2, 512, 2048)`` block, and far faster than
    ``np.argmax(p, axis=0)`` plus ``max`` (argmax reduces along a strided axis). NaN pixels
    get class 0 and maximum NaN.
    """
    top = p[0].copy()
    cls = np.zeros(top.shape, dtype=np.uint8)
    if p.shape[0] > 1:
        better = np.empty(top.shape, dtype=bool)
        mask = np.empty(top.shape, dtype=np.uint8)
        change = np.empty(top.shape, dtype=np.uint8)
        for c in range(1, p.shape[0]):
            np.greater(p[c], top, out=better)
            np.multiply(better.view(np.uint8), np.uint8(255), out=mask)  # 0x00 or 0xFF
            np.bitwise_xor(cls, np.uint8(c), out=change)
            change &= mask
            cls ^= change  # c where better, unchanged elsewhere
            np.maximum(top, p[c], out=top)
    return cls, top


def _blend_bands(k: int) -> int:
    """Bands blended by the tiled run: the first ``K − 1`` probabilities (the last is 1 − Σ)."""
    return max(1, k - 1)


class _Finisher:
    """Classes, confidence (entropy, probabilities) from blended probability rows.

    The :class:`~glacierkit.tiling.run.RowSink` of the tiled run: ``write(q, window)`` gets
    the blended probabilities of the first ``K − 1`` classes for finished full-width rows;
    the last class is ``1 − Σ`` of them (blending is linear and the weights are normalised,
    so this is the blended probability of the last class up to float rounding). Rows are
    processed ``block_rows`` at a time, so memory is ``O(K × block_rows × width)`` plus, with
    ``keep_classes``, the uint8 class map for polygonizing. No temporary probability file is
    written. The product writers are entered on ``stack`` and publish when it closes without
    an exception.
    """

    def __init__(self, stack: contextlib.ExitStack, work: Path, grid: Grid,
                 classes: Sequence[str], *, calibration: Mapping[str, Any] | None,
                 entropy: bool, keep_classes: bool, probabilities: bool,
                 tags: Mapping[str, Any], block_rows: int = 512) -> None:
        k = len(classes)
        self.k, self.nb, self.grid, self.block_rows = k, _blend_bands(k), grid, block_rows
        self.calibration = calibration
        self.conf_fn = _calibrator(calibration)
        self.paths = {"classes": work / "classes.tif", "confidence": work / "confidence.tif"}
        if entropy:
            self.paths["entropy"] = work / "entropy.tif"
        if probabilities:
            self.paths["probabilities"] = work / "probabilities.tif"
        self.full = np.full(grid.shape, CLASS_NODATA, dtype=np.uint8) if keep_classes else None
        self.counts = np.zeros(CLASS_NODATA + 1, dtype=np.int64)  # pixels per class value
        self._p: np.ndarray | None = None  # (K, rows, W) probabilities of a block
        cls_tags = {**tags, "CLASS_NAMES": list(classes),
                    "CLASSES": {str(i): c for i, c in enumerate(classes)}}
        cal_kind = ("uncalibrated" if calibration is None
                    else str(calibration.get("kind", "custom")))
        self.wc = stack.enter_context(open_writer(
            self.paths["classes"], grid, count=1, dtype="uint8", nodata=CLASS_NODATA, level=1,
            band_names=["class"], units="", tags=cls_tags, colormap=_colormap(classes),
            overview_resampling="nearest"))
        self.wf = stack.enter_context(open_writer(
            self.paths["confidence"], grid, count=1, dtype="float32", level=1,
            band_names=["confidence"], units="1",
            tags={**tags, "CALIBRATION": cal_kind,
                  "CONFIDENCE": ("uncalibrated maximum class probability"
                                 if calibration is None else
                                 f"calibrated top-class probability ({cal_kind})")}))
        self.we = self.wp = None
        if entropy:
            self.we = stack.enter_context(open_writer(
                self.paths["entropy"], grid, count=1, dtype="float32", level=1,
                band_names=["predictive_entropy"], units="nats",
                tags={**tags, "MAX_ENTROPY_NATS": math.log(k)}))
        if probabilities:
            self.wp = stack.enter_context(open_writer(
                self.paths["probabilities"], grid, count=k, dtype="float32", level=1,
                band_names=[f"p_{c}" for c in classes], units="1", tags=cls_tags))

    def write(self, data: np.ndarray, window: Window) -> None:
        """Finish the full-width rows ``window`` from their ``(K − 1, rows, W)`` probabilities."""
        r0, rows = int(window.row_off), int(window.height)
        for i in range(0, rows, self.block_rows):
            n = min(self.block_rows, rows - i)
            self._block(data[:, i:i + n], r0 + i)

    def _block(self, q: np.ndarray, r0: int) -> None:
        k, nb, width = self.k, self.nb, self.grid.width
        n = q.shape[1]
        win = Window(0, r0, width, n)
        q = np.asarray(q, dtype=np.float32)  # NaN where nothing was predicted
        if k > 1:
            # One buffer for all blocks (fresh memory page-faults); written out before reuse.
            if self._p is None or self._p.shape[1] != n:
                self._p = np.empty((k, n, width), dtype=np.float32)
            p = self._p
            p[:nb] = q
            last = p[k - 1]
            np.subtract(np.float32(1.0), q[0] if nb == 1 else q.sum(axis=0, dtype=np.float32),
                        out=last)
            np.clip(last, 0.0, 1.0, out=last)
        else:
            p = q
        valid = np.isfinite(p[-1])
        all_valid = bool(valid.all())
        cls, top = _argmax_max(p)
        if self.calibration is None:
            conf = top  # NaN where nothing was predicted
        elif all_valid:
            conf = self.conf_fn(p.reshape(k, -1)).reshape(n, width)
        else:
            conf = np.full((n, width), np.nan, dtype=np.float32)
            if valid.any():
                conf[valid] = self.conf_fn(p[:, valid])
        if not all_valid:
            cls[~valid] = CLASS_NODATA
        self.counts += np.bincount(cls.ravel(), minlength=CLASS_NODATA + 1)
        self.wc.write(cls, win)
        self.wf.write(conf, win)
        if self.full is not None:
            self.full[r0:r0 + n] = cls
        if self.wp is not None:
            self.wp.write(p, win)
        if self.we is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                pc = np.clip(p, 1e-12, 1.0)
                ent = -(pc * np.log(pc)).sum(axis=0, dtype=np.float32)
            ent[~valid] = np.nan
            self.we.write(ent, win)


def _align_sources(groups: dict[str, _GroupSource], align: bool | str | Grid, work: Path
                   ) -> dict[str, _GroupSource]:
    """Resample every source onto one grid into ``work`` (explicit ``align``; logged)."""
    from glacierkit.io.reproject import reproject
    from glacierkit.io.writer import write_raster

    if isinstance(align, Grid):
        target = align
    else:
        ref = next(iter(groups)) if align is True else str(align)
        if ref not in groups:
            raise InputError(f"align={align!r}: not one of the given source groups "
                             f"{list(groups)}.")
        target = read_grid(groups[ref].paths[0])
    out = {}
    for name, gs in groups.items():
        new_paths = []
        for i, p in enumerate(gs.paths):
            if read_grid(p).almost_equals(target):
                new_paths.append(p)
                continue
            r = reproject(open_raster(p), target)
            dst = work / f"aligned_{name}_{i}.tif"
            write_raster(dst, r.data, target, band_names=list(r.band_names), compress="none")
            log.info("aligned source %s (%s) onto %s", name, p, target.describe())
            new_paths.append(dst)
        out[name] = _GroupSource(name, tuple(new_paths), gs.bands)
    return out


# ---------------------------------------------------------------------------- entry point
@reports_output("out_dir")
def predict_scene(bundle_or_path: ModelBundle | str | os.PathLike[str],
                  sources: Mapping[str, Any], out_dir: str | os.PathLike[str], *,
                  backend: Backend = "auto", device: str | None = None,
                  tile_size: int | None = None, overlap: int | None = None,
                  batch_size: int | None = None, tta: bool = False, mc_samples: int = 0,
                  region: str | None = None, write_probabilities: bool = False,
                  outlines: bool = True, min_area_km2: float = MIN_AREA_KM2,
                  overwrite: bool = False, progress: bool = True, align: bool | str | Grid = False,
                  nodata: NodataRule = "all", threads: int | None = None,
                  seed: int = 0, allow_domain_shift: bool = False,
                  task: str | None = "mapping", check_domain: bool = True,
                  max_memory: str | int | None = None,
                  area_block_m: float = 3200.0) -> PredictResult:
    """Apply a model to a whole scene, tile by tile, and write georeferenced products.

    Args:
        bundle_or_path: A :class:`~glacierkit.dl.bundle.ModelBundle` or the path of a
            ``.gkm`` model file.
        sources: ``{group name: raster}`` for the groups of the model's layout (a path, a
            :class:`~glacierkit.dl.sources.BandSource`, or a list of them whose bands are
            concatenated). Each group needs exactly the layout's raw bands (e.g. one
            elevation band for ``dem``; SAR in linear power unless the group says dB). All
            files must be on one grid. A group left out runs as missing (``present = 0``,
            logged) if the model was trained with group dropout; otherwise it is an error.
        out_dir: Folder for the products (created if needed). They are finished in a hidden
            staging folder inside it and appear all together, or not at all after an error
            or interrupt (:class:`~glacierkit.io.products.ProductSet`).
        backend: ``"auto"`` (torch on CUDA if available, else ONNX Runtime), ``"onnx"``
            (ONNX Runtime, CPU; needs the model file's ONNX graph) or ``"torch"``.
        device: torch device for the torch backend (default ``"cuda"`` if available).
        tile_size: Tile size in pixels (default: the model file's ``tile.size``); capped at
            the scene size. Tiles are padded (reflect) to a multiple of the model's
            ``multiple`` for the model and cropped back.
        overlap: Overlap of neighbouring tiles in pixels (default: the model file's
            ``tile.overlap``); it should cover the model's context for seamless results.
        batch_size: Tiles per model call; default 4 on a GPU and 1 on the CPU (measured with
            ``benchmarks/inference_speed.py``: on the CPU a batch of 4 tiles is no faster per
            tile but triples the model's activation memory).
        tta: Test-time augmentation: average the probabilities over the 8 flips/rotations
            (8× the model time).
        mc_samples: Monte-Carlo dropout samples (torch only; 0 = off). Probabilities are the
            mean over samples, and ``entropy.tif`` holds the predictive entropy (nats).
            Seeded with ``seed``; batch composition may vary between runs.
        region: Region name for region-conditioned models (``None``: the "unknown" slot).
        write_probabilities: Also keep ``probabilities.tif`` (K float32 bands).
        outlines: Write ``outlines.gpkg``: polygons of the glacier class(es).
        min_area_km2: Drop outline polygons smaller than this (km²; default 0.01 km², the
            RGI's minimum glacier size). Regions below it are removed from the class map
            before polygonizing, so a speckled map does not become millions of polygons
            (a random-weight model's 10000² map took more than 7 GB with 0). 0 keeps all.
        overwrite: Replace existing products (default False: refuse before any work).
        progress: Show a progress bar.
        align: ``False`` (default): the sources must share one grid
            (:class:`~glacierkit.errors.GridMismatchError` otherwise). ``True``, a group name
            or a :class:`~glacierkit.io.grid.Grid`: resample explicitly onto the first
            group's / that group's / that grid (bilinear; logged).
        nodata: ``"all"``: predict where every given group has data; ``"any"``: where at
            least one has.
        threads: CPU threads for the model (ONNX Runtime intra-op threads / torch threads);
            default: all cores for ONNX Runtime, torch's setting for torch.
        seed: Seed of the MC-dropout masks.
        allow_domain_shift: Predict even when the scene's values lie far outside the model's
            training domain (logged as a warning). By default such a scene is refused
            (:func:`glacierkit.dl.domain.check_scene_domain`: a sample of the scene is
            compared per channel with the range recorded in the model file).
        task: The task the caller applies (``"mapping"`` for ``map predict``); a model of
            another task is refused (:func:`glacierkit.dl.bundle.check_task`). ``None``
            skips the check.
        check_domain: Compare the scene with the training domain (callers that already
            did, e.g. :func:`glacierkit.facies.apply.classify_scene`, pass False).
        max_memory: Working-memory budget of the tiles (bytes or a size such as ``"4GB"``;
            default half the available memory, :mod:`glacierkit.memory`): the model's
            activations for a batch of tiles, the tiles' buffers in flight and the blend
            strips (:func:`glacierkit.dl.memory.tiles_per_call`). ``batch_size`` is lowered
            to fit; a tile size of which not even one tile fits is refused before any tile
            runs (:class:`~glacierkit.errors.MemoryBudgetError`).
        area_block_m: Block edge (m) of the area intervals in ``report.json`` (ICEmapper:
            3.2 km).

    Returns:
        A :class:`PredictResult` with the paths, the backend and the timings.

    Raises:
        OutputExistsError: a product exists and ``overwrite`` is False.
        InputError: unknown/missing source groups, wrong band counts, invalid options.
        GridMismatchError: the sources are not on one grid and ``align`` is False.
        ModelFileError: the model file is corrupt or of another format version.
    """
    t_start = time.perf_counter()
    bundle = bundle_or_path if isinstance(bundle_or_path, ModelBundle) \
        else load_bundle(bundle_or_path)
    if task is not None:
        from .bundle import check_task

        check_task(bundle, task)
    out = Path(out_dir)
    if batch_size is not None and batch_size < 1:
        raise InputError(f"batch_size must be >= 1; got {batch_size}.")
    budget = resolve_budget(max_memory)
    if mc_samples < 0:
        raise InputError(f"mc_samples must be >= 0; got {mc_samples}.")
    if nodata not in ("all", "any"):
        raise InputError(f"nodata must be 'all' or 'any'; got {nodata!r}.")
    if min_area_km2 < 0:
        raise InputError(f"min_area_km2 must be >= 0; got {min_area_km2}.")
    if not area_block_m > 0:
        raise InputError(f"area_block_m must be > 0 (metres); got {area_block_m}.")
    k = len(bundle.classes)
    if not 1 <= k < CLASS_NODATA:
        raise InputError(f"the model has {k} classes; classes.tif holds 1–254 classes.")
    targets = {"classes": out / "classes.tif", "confidence": out / "confidence.tif"}
    if write_probabilities:
        targets["probabilities"] = out / "probabilities.tif"
    if mc_samples > 0:
        targets["entropy"] = out / "entropy.tif"
    if outlines:
        targets["outlines"] = out / "outlines.gpkg"
    targets["report"] = out / "report.json"
    # Every product is finished in a staging folder inside ``out`` and published together.
    products = ProductSet(out, [targets[n].name for n in _OUTPUT_NAMES if n in targets],
                          overwrite=overwrite)

    from .sources import NormStats, SourceLayout, pixel_size_m

    layout = SourceLayout.from_dict(bundle.layout)
    norm = NormStats.from_dict(bundle.norm)
    if norm.n_channels != layout.n_channels:
        raise InputError(f"the model file's normalisation has {norm.n_channels} channels but "
                         f"its layout {layout.n_channels}; the file is inconsistent.")
    groups = _normalise_sources(sources, layout)
    missing = [g for g in layout.group_names if g not in groups]
    if not groups:
        raise InputError(f"no sources given; the model expects {_describe_layout(layout)}.")
    timed_missing = [g for g in missing if layout.group(g).time]
    if timed_missing:
        raise InputError(f"the model's time series group(s) {timed_missing} are missing; a "
                         f"series model needs its series. The model's layout is "
                         f"{_describe_layout(layout)}.")
    dates = _series_dates(bundle, layout, groups)
    if missing:
        dropout = float(bundle.training.get("group_dropout", 0) or 0)
        if dropout <= 0:
            raise InputError(f"source group(s) {missing} missing, and this model was not "
                             f"trained with group dropout, so it cannot run without them. "
                             f"Give {missing} in sources; the model's layout is "
                             f"{_describe_layout(layout)}.")
        log.warning("source group(s) %s missing: predicting with present=0 for them (the "
                    "model was trained with group dropout %.2f); expect lower accuracy.",
                    missing, dropout)
    for name, gs in groups.items():
        g = layout.group(name)
        counts = _band_counts(gs)
        if g.time:
            bad_t = [p.name for p, c in zip(gs.paths, counts, strict=True) if c != g.n_bands]
            if bad_t:
                raise InputError(f"series {name!r}: every date needs {g.n_bands} band(s) "
                                 f"{list(g.bands or ())}; {bad_t[:5]} hold another number.")
            continue
        if sum(counts) != g.n_bands:
            files = ", ".join(f"{p.name}: {c}" for p, c in zip(gs.paths, counts, strict=True))
            raise InputError(f"source {name!r} has {sum(counts)} band(s) ({files}); the model "
                             f"expects {g.n_bands} raw band(s) {list(g.bands or ())} for group "
                             f"{name!r} ({g.kind} → channels {list(g.channels)}).",
                             hint="Select bands with glacierkit.dl.sources.BandSource(path, "
                                  "bands=(...)).",
                             cli_hint=f"Give files holding exactly these {g.n_bands} band(s), "
                                      f"in this order, as {name}=FILE[,FILE...] (extract or "
                                      f"reorder bands beforehand, e.g. gdal_translate -b).")

    if check_domain:
        from .domain import check_scene_domain

        # A series is checked on its middle date (one file per date, the same units).
        check_scene_domain(bundle.domain, layout,
                           {n: (list(zip(gs.paths, gs.bands, strict=True))
                                if gs.acquired is None else
                                [(gs.paths[len(gs.paths) // 2], gs.bands[0])])
                            for n, gs in groups.items()},
                           allow_domain_shift=allow_domain_shift,
                           model_name=str(bundle.path or "the model"))
    runner_backend, runner_device = _pick_backend(bundle, backend, device, mc_samples)
    cond_spec, cond_fn = _conditioning(bundle, region)

    with products:
        work = products.staging
        if align is not False:
            groups = _align_sources(groups, align, work)
        else:
            grids = {f"{name}": read_grid(gs.paths[0]) for name, gs in groups.items()}
            grids.update({f"{name}[{i}]": read_grid(p) for name, gs in groups.items()
                          for i, p in enumerate(gs.paths) if i > 0})
            try:
                check_same_grid(grids)
            except GridMismatchError as e:
                raise GridMismatchError(
                    e.message, hint="(predict_scene: pass align=True or align='<group>' to "
                    "resample explicitly.)", cli_hint="Fix: pass --align to resample every "
                    "source onto the first group's grid explicitly, or resample the files onto "
                    "one grid beforehand (e.g. gdalwarp).") from None
        ordered = [groups.get(name) for name in layout.group_names]
        paths: list[Path] = []
        file_slices: list[slice | None] = []
        for gs in ordered:
            if gs is None:
                file_slices.append(None)
                continue
            file_slices.append(slice(len(paths), len(paths) + len(gs.paths)))
            paths.extend(gs.paths)
        grid = read_grid(paths[0])
        multiple = int(bundle.tile.get("multiple", 0) or 0)
        if runner_backend == "onnx":
            runner: Any = _OnnxRunner(bundle.onnx_bytes() or b"", threads=threads)
        else:
            runner = _TorchRunner(bundle, device=runner_device, mc=mc_samples > 0,
                                  threads=threads)
            multiple = int(getattr(runner.model, "multiple", 0) or 0) or multiple
        timed = layout.part(True)
        if timed is None:
            _check_model_io(runner, k, layout.n_channels, layout.n_groups, bundle)
        else:
            _check_model_io(runner, k, timed.n_channels, 0, bundle)
        if multiple < 1:
            multiple = 32
            log.info("the model file does not record the model's size multiple (tile "
                     "'multiple'); padding tiles to multiples of %d px", multiple)

        ts = int(tile_size if tile_size is not None else bundle.tile.get("size", 512))
        ov = int(overlap if overlap is not None else bundle.tile.get("overlap", 64))
        if ts < 1 or ov < 0 or ov >= ts:
            raise InputError(f"need tile_size >= 1 and 0 <= overlap < tile_size; got "
                             f"tile_size={ts}, overlap={ov} px.")
        tile_hw = (min(ts, grid.height), min(ts, grid.width))
        ov_hw = (min(ov, tile_hw[0] - 1), min(ov, tile_hw[1] - 1))
        if ts % multiple:
            log.info("tile_size %d is not a multiple of the model's %d: tiles are padded to "
                     "%d for the model", ts, multiple, -(-ts // multiple) * multiple)

        fn = _TileFunction(
            layout=layout, norm=norm, groups=ordered, file_slices=file_slices,
            band_sel=[gs.bands if gs is not None else () for gs in ordered],
            pixel_size=pixel_size_m(grid), multiple=multiple, n_classes=k, rule=nodata,
            cond=lambda tile: cond_fn(grid, tile), runner=runner, tta=tta,
            mc_samples=mc_samples, dates=dates)
        on_gpu = runner_device.startswith("cuda")
        wanted = batch_size if batch_size is not None else (4 if on_gpu else 1)
        batch_size = _tiles_per_call(bundle, budget, layout=layout, n_classes=k,
                                     tile_hw=tile_hw, multiple=multiple, width=grid.width,
                                     tta=tta, limit=wanted,
                                     threaded=wanted > 1 or on_gpu or dates is not None,
                                     n_dates=None if dates is None else len(dates))
        executor: Any
        # A series tile reads and decodes T windows: one worker thread reads the next tile
        # while the model runs on this one.
        if batch_size > 1 or on_gpu or dates is not None:
            # Worker threads read and prepare tiles while the model runs, and gather batches.
            workers = batch_size + 1
            fn.batcher = _Batcher(fn.run_batch, batch_size)
            executor = ThreadExecutor(max_workers=workers, max_in_flight=2 * workers)
        else:
            # On the CPU the model already uses every core: preparing tiles concurrently only
            # slows its threads down (measured 9.4 s of model time instead of 7.9 s for 25
            # tiles); one tile after the other is faster.
            executor = "serial"

        tags = {"MODEL": {"arch": bundle.arch, "file": bundle.path.name if bundle.path else None,
                          "format_version": bundle.format_version,
                          "trained_with": bundle.glacierkit_version},
                "PREDICTION": {"backend": runner_backend, "device": runner_device, "tta": tta,
                               "mc_samples": mc_samples, "region": region,
                               "cond": cond_spec, "missing_groups": missing,
                               "nodata_rule": nodata, "glacierkit": __version__}}
        if dates is not None:
            acq = next(gs.acquired for gs in groups.values() if gs.acquired is not None)
            tags["SERIES"] = {"dates": len(dates), "first": str(acq[0]), "last": str(acq[-1]),
                              "acquired": [str(a) for a in acq]}
        ctx = (_seeded(seed) if (runner_backend == "torch" and mc_samples > 0)
               else contextlib.nullcontext())
        log.info("predicting %s with %s on %s (%s): tiles of %s px, overlap %s px, "
                 "batch %d%s%s", grid.describe(), bundle.arch, runner_backend, runner_device,
                 tile_hw, ov_hw, batch_size, ", TTA ×8" if tta else "",
                 f", MC ×{mc_samples}" if mc_samples else "")
        if bundle.calibration is None:
            log.info("the model file holds no calibration map: confidence.tif is the "
                     "uncalibrated maximum class probability")
        stages = {"setup": time.perf_counter() - t_start}
        t = time.perf_counter()
        # The blended probabilities go straight from the tiled run's finished rows into the
        # products (no temporary probability raster). GDAL's default block cache (5 % of RAM)
        # would dominate the memory of the COG steps.
        # A series reads T files per tile: a larger block cache keeps the block rows that
        # neighbouring rows of tiles share (4096² × 15 dates: 3.8 s of window reads with
        # 128 MB, 2.1 s with 512 MB); capped so that it stays a small part of the budget.
        cache_mb = _GDAL_CACHE_MB if dates is None else _GDAL_CACHE_MB * 2
        with rasterio.Env(GDAL_CACHEMAX=cache_mb * 2**20), \
                contextlib.ExitStack() as products:
            finisher = _Finisher(products, work, grid, bundle.classes,
                                 calibration=bundle.calibration, entropy=mc_samples > 0,
                                 keep_classes=outlines, probabilities=write_probabilities,
                                 tags=tags)
            with ctx:
                run = run_tiled(paths, None, fn, tile_size=tile_hw, overlap=ov_hw,
                                edge="clamp", blend="cosine", out_bands=_blend_bands(k),
                                skip_nodata="any" if nodata == "all" else "all",
                                executor=executor, progress=progress, sink=finisher,
                                gdal_cache_mb=cache_mb, reuse_buffers=True,
                                accumulate="float32")
            stages["tiles"] = time.perf_counter() - t
            t = time.perf_counter()
        # Leaving the stack converted the products to COGs.
        written, classes_full, counts = finisher.paths, finisher.full, finisher.counts
        del finisher
        skipped = run.skipped + fn.stats.tiles_empty
        stages["finish"] = time.perf_counter() - t
        n_polys = 0
        t = time.perf_counter()
        if outlines:
            assert classes_full is not None
            written["outlines"], n_polys = _write_outlines(
                classes_full, grid, bundle.classes, work / "outlines.gpkg", min_area_km2)
            del classes_full
        stages["outlines"] = time.perf_counter() - t
        class_counts = {c: int(counts[i]) for i, c in enumerate(bundle.classes)}
        predicted_share = float(counts[:CLASS_NODATA].sum()) / max(grid.height * grid.width, 1)
        warnings = _empty_result_warnings(class_counts, bundle.classes, outlines=outlines,
                                          n_polys=n_polys, min_area_km2=min_area_km2)
        t = time.perf_counter()
        area = _area_estimate(written["classes"], written["confidence"], grid, bundle,
                              seed=seed, block_m=area_block_m)
        stages["area"] = time.perf_counter() - t
        total = time.perf_counter() - t_start
        res = PredictResult(
            classes=targets["classes"], confidence=targets["confidence"],
            probabilities=targets.get("probabilities"), entropy=targets.get("entropy"),
            outlines=targets.get("outlines"), backend=runner_backend, device=runner_device,
            tiles=run.tiles, tiles_run=fn.stats.tiles_run, tiles_skipped=skipped,
            model_seconds=fn.stats.model_seconds, total_seconds=total, grid=grid,
            missing_groups=tuple(missing), n_outlines=n_polys, stages=stages,
            class_counts=class_counts, predicted_share=predicted_share,
            warnings=tuple(warnings), area=area, report=targets["report"])
        (work / "report.json").write_text(predict_result_json(res, tags=tags))
        # Leaving the block publishes every product (all finished in ``work``) in one go.

    log.info("prediction done in %.1f s (model %.1f s): %d tiles run, %d skipped → %s",
             total, res.model_seconds, res.tiles_run, res.tiles_skipped, out)
    return res


def _empty_result_warnings(class_counts: Mapping[str, int], names: Sequence[str], *,
                           outlines: bool, n_polys: int, min_area_km2: float) -> list[str]:
    """Warnings (also logged) for a result without predictions, glacier pixels or polygons."""
    warnings = []
    if sum(class_counts.values()) == 0:
        warnings.append("no pixel was predicted: the sources have no pixel with data in every "
                        "given group (nodata='any' predicts where any group has data); the "
                        "products are empty. Check the sources' nodata and extents.")
    elif outlines:
        glacier = [names[i] for i in _outline_classes(names)]
        if sum(class_counts.get(c, 0) for c in glacier) == 0:
            warnings.append(f"no pixel was classified as {' or '.join(glacier)}: "
                            f"outlines.gpkg is empty. Check that the scene shows glaciers "
                            f"and matches the model's sources (bands, units, season).")
        elif n_polys == 0:
            warnings.append(f"no outline polygon: every glacier region is smaller than "
                            f"min_area_km2={min_area_km2:g} km², so outlines.gpkg is empty "
                            f"(lower min_area_km2 to keep them).")
    for w in warnings:
        log.warning("%s", w)
    return warnings


def _write_outlines(classes: np.ndarray, grid: Grid, names: Sequence[str], path: Path,
                    min_area_km2: float) -> tuple[Path, int]:
    from glacierkit.io.vector import (
        drop_small_outlines,
        footprint_frame,
        polygonize,
        write_outlines,
    )

    keep = _outline_classes(names)
    ignore = tuple(i for i in range(len(names)) if i not in keep)
    # Where the scene was classified, before small regions are set to nodata below.
    footprint = footprint_frame(classes != CLASS_NODATA, grid)
    if min_area_km2 > 0:
        _drop_small_regions(classes, grid, keep, min_area_km2)
        if len(keep) == 1:
            # Holes below the limit too (other classes inside the outlined class): a speckled
            # map otherwise becomes one polygon with millions of holes (a random-weight model's
            # 10000² map: 21.9 million vertices, 7.5 GB and 56 s to polygonize; 0.5 GB and
            # 2.3 s with its small holes filled). classes.tif keeps them.
            other = (classes == keep[0]).astype(np.uint8)
            other[classes == CLASS_NODATA] = 2
            _drop_small_regions(other, grid, [0], min_area_km2)
            classes[other == CLASS_NODATA] = keep[0]
            del other
    gdf = polygonize(classes, grid, class_names=dict(enumerate(names)), ignore=ignore,
                     nodata=CLASS_NODATA)
    gdf, _ = drop_small_outlines(gdf, min_area_km2)
    write_outlines(gdf, path, footprint=footprint)
    return path, len(gdf)


def _drop_small_regions(classes: np.ndarray, grid: Grid, keep: Sequence[int],
                        min_area_km2: float, *, band_rows: int = 1024) -> None:
    """Set 4-connected regions of the outlined classes below the area limit to nodata, in place.

    A pre-filter before polygonizing, so that a speckled class map does not turn into millions
    of polygons that are dropped afterwards anyway: each such region is exactly one polygon of
    :func:`~glacierkit.io.vector.polygonize` (4-connectivity), whose area is its pixel count
    times the pixel area. On geographic grids the pixel area varies with latitude, so the
    limit is loosened by 20 % here and the exact geodesic filter on ``area_km2`` follows.

    Works in bands of ``band_rows`` rows with a margin of ``min_px`` rows on each side: a
    region of fewer than ``min_px`` pixels spans fewer than ``min_px`` rows, so it lies whole
    inside the band of any of its pixels, and a band region that touches neither cut edge is
    a whole region of the scene. Labels exist for one band at a time (a whole 10000 × 10000
    speckled map labelled at once took 1.2 GB more).
    """
    from scipy import ndimage

    from .sources import pixel_size_m

    px, py = pixel_size_m(grid)
    pixel_km2 = px * py / 1e6
    slack = 0.8 if grid.crs is not None and grid.crs.is_geographic else 1.0
    min_px = math.floor(slack * min_area_km2 / pixel_km2 * (1 - 1e-9))
    if min_px < 2:
        return
    h = classes.shape[0]
    margin = min_px
    four = ndimage.generate_binary_structure(2, 1)
    for c in keep:
        for r0 in range(0, h, band_rows):
            r1 = min(h, r0 + band_rows)
            a0, a1 = max(0, r0 - margin), min(h, r1 + margin)
            labels, n = ndimage.label(classes[a0:a1] == c, structure=four)
            if n == 0:
                continue
            small = np.bincount(labels.ravel(), minlength=n + 1) < min_px
            if a0 > 0:  # cut edge above: a region touching it may continue outside
                small[labels[0]] = False
            if a1 < h:  # cut edge below
                small[labels[-1]] = False
            small[0] = False  # label 0: the pixels of other classes
            classes[r0:r1][small[labels[r0 - a0:r1 - a0]]] = CLASS_NODATA
            del labels


def _tiles_per_call(bundle: ModelBundle, budget: Budget, *, layout: Any, n_classes: int,
                    tile_hw: tuple[int, int], multiple: int, width: int, tta: bool,
                    limit: int, threaded: bool, n_dates: int | None = None) -> int:
    """Tiles per model call within the memory budget (see :mod:`glacierkit.dl.memory`)."""
    from .memory import model_bytes_per_tile, tiles_per_call

    padded = (-(-tile_hw[0] // multiple) * multiple, -(-tile_hw[1] // multiple) * multiple)
    timed = layout.part(True)
    n_ch = layout.n_channels if timed is None else timed.n_channels
    model_bytes, how = model_bytes_per_tile(
        bundle.onnx_bytes(), n_channels=n_ch, n_groups=layout.n_groups,
        cond_dim=int(bundle.model_kwargs.get("cond_dim", 0) or 0), tile_hw=padded,
        n_dates=n_dates)
    # A series tile's input holds every date: T × C channels of buffers.
    n = tiles_per_call(budget, model_bytes=model_bytes, tile_hw=padded,
                       n_channels=n_ch * (n_dates or 1), n_classes=n_classes,
                       scene_width=width, tta=tta, limit=limit, threaded=threaded)
    log.info("memory: about %s of activations per %d × %d px tile (%s); %d tile(s) per model "
             "call within %s (%s)", format_bytes(model_bytes), *padded, how, n,
             format_bytes(budget.bytes), budget.source)
    return n


def _series_dates(bundle: ModelBundle, layout: Any, groups: Mapping[str, _GroupSource]
                  ) -> np.ndarray | None:
    """``(T,)`` float32 days since the reference date of the timed groups (or ``None``).

    Checked against the model's needs (a fixed number of dates, or at least
    ``min_dates``); ``None`` for a single-date model.
    """
    from .sources import series_days

    timed = [gs for gs in groups.values() if gs.acquired is not None]
    if not timed:
        return None
    acq = timed[0].acquired
    assert acq is not None
    for gs in timed[1:]:
        if not np.array_equal(gs.acquired, acq):  # type: ignore[arg-type]
            raise InputError(f"time series groups {[g.name for g in timed]} have different "
                             f"dates; timed groups share one date axis.")
    info = bundle.series or {}
    n = len(acq)
    fixed = info.get("time_steps")
    if fixed is not None and n != int(fixed):
        sel = info.get("selection") or {}
        how = (f" (the model's protocol: {sel.get('per_year')} dates per year; "
               f"glacierkit.series.select_per_year picks them)" if sel.get("per_year") else "")
        raise InputError(f"the model needs exactly {fixed} dates{how}; the series has {n}.",
                         hint="Select the dates with glacierkit.series.select_per_year and "
                              "SeriesStack.subset, or use a date-aware model (any number).",
                         cli_hint="Pass --dates-per-year to select them, or use a "
                                  "date-aware model (arch utae), which takes any number.")
    need = int(info.get("min_dates", 1) or 1)
    if n < need:
        raise InputError(f"the model needs at least {need} dates; the series has {n}.")
    days, _ = series_days(acq)
    return days.astype(np.float32)


def _conditioning(bundle: ModelBundle, region: str | None
                  ) -> tuple[dict[str, Any], Callable[[Grid, Tile], np.ndarray | None]]:
    """The conditioning spec and ``cond(grid, tile) -> (D,) float32 | None``."""
    spec = dict(bundle.cond or {"kind": "none"})
    kind = spec.get("kind", "none")
    if kind == "none":
        if region is not None:
            log.warning("region=%r ignored: this model is not region-conditioned", region)
        return spec, lambda grid, tile: None
    from .cond import CondSpec

    cs = CondSpec.from_dict(spec)
    model_dim = int(bundle.model_kwargs.get("cond_dim", cs.dim) or 0)
    if model_dim != cs.dim:
        raise InputError(f"the model file is inconsistent: cond {spec} gives vectors of length "
                         f"{cs.dim} but the model takes cond_dim={model_dim}.")
    if kind == "region":
        regions = list(spec.get("regions") or [])
        if region is None:
            log.warning("region-conditioned model run without region=: using the 'unknown' "
                        "slot (known regions: %s)", regions)
        elif region not in regions:
            raise InputError(f"region={region!r} is not one this model knows: {regions}; pass "
                             f"one of them or region=None for the 'unknown' slot.")

        def region_vec(grid: Grid, tile: Tile) -> np.ndarray:
            return np.asarray(cs.vector(grid, tile.window, region=region), dtype=np.float32)

        return spec, region_vec
    if kind == "coords":
        def coords_vec(grid: Grid, tile: Tile) -> np.ndarray:
            return np.asarray(cs.vector(grid, tile.window), dtype=np.float32)

        return spec, coords_vec
    raise InputError(f"the model file's cond kind {kind!r} is unknown (expected 'none', "
                     f"'region' or 'coords').")


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch's RNG for MC dropout; restore the previous state afterwards."""
    import torch

    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def predict_result_json(res: PredictResult, *, tags: Mapping[str, Any] | None = None) -> str:
    """The result as JSON (paths as strings), for ``report.json``, the CLI and logs.

    ``tags`` (model, prediction settings, series dates) are added as ``model``,
    ``prediction`` and ``series``.
    """
    from glacierkit._json import jsonable

    d: dict[str, Any] = {
        "paths": {k: str(v) for k, v in res.paths.items()}, "backend": res.backend,
        "device": res.device, "tiles": res.tiles, "tiles_run": res.tiles_run,
        "tiles_skipped": res.tiles_skipped, "missing_groups": list(res.missing_groups),
        "n_outlines": res.n_outlines, "class_counts": res.class_counts,
        "predicted_share": res.predicted_share, "area": res.area,
        "warnings": list(res.warnings), **res.timing, "grid": res.grid.describe()}
    for key in ("MODEL", "PREDICTION", "SERIES"):
        if tags and key in tags:
            d[key.lower()] = tags[key]
    return json.dumps(jsonable(d), indent=2)


AREA_BLOCK_M = 3200.0
"""Block edge (m) of the area intervals: ICEmapper's 3.2 km."""


def _area_estimate(classes_path: Path, conf_path: Path, grid: Grid, bundle: ModelBundle, *,
                   seed: int = 0, block_m: float = AREA_BLOCK_M) -> dict[str, Any] | None:
    """Expected glacier area (km²) with 95 % intervals, read strip by strip.

    For glacier / off-glacier models (two classes, one outlined): the calibrated glacier
    probability is the confidence where the class is glacier, else 1 − confidence. Expected
    area = Σ p × pixel area; intervals from per-block sums over ``block_m`` blocks
    (:func:`glacierkit.metrics.area.area_from_blocks`): ICEmapper's block bootstrap (the
    spread of glacier cover between blocks) and, when the model file records the error
    correlation area (``training["error_correlation_px"]``), the Bernoulli-block interval of
    this region's area. ``None`` for other models.
    """
    from glacierkit.metrics.area import area_from_blocks, block_sums
    from glacierkit.metrics.outlines import pixel_area_m2

    names = list(bundle.classes)
    keep = _outline_classes(names)
    if len(names) != 2 or len(keep) != 1:
        return None
    g = keep[0]
    px_area = pixel_area_m2(grid)
    bpx = max(1, round(block_m / math.sqrt(px_area)))
    h, w = grid.shape
    parts = []
    with rasterio.open(classes_path) as rc, rasterio.open(conf_path) as rf:
        for r0 in range(0, h, bpx):  # one row of blocks at a time
            win = Window(0, r0, w, min(bpx, h - r0))
            c = rc.read(1, window=win)
            f = rf.read(1, window=win).astype(np.float64)
            p = np.where(c == g, f, 1.0 - f)
            p[c == CLASS_NODATA] = np.nan
            parts.append(block_sums(p, bpx))
    s_b, v_b, n_b = (np.concatenate(a) for a in zip(*parts, strict=True))
    if not n_b.size:
        return None
    boot = area_from_blocks(s_b, v_b, n_b, pixel_area_m2=px_area, block_px=bpx,
                            method="block-bootstrap", seed=seed)
    out: dict[str, Any] = {
        "class": names[g], "expected_km2": boot["expected_km2"],
        "valid_area_km2": boot["valid_area_km2"], "block_m": bpx * math.sqrt(px_area),
        "calibrated": bundle.calibration is not None,
        "block_bootstrap_95": {k: boot[k] for k in ("lower_km2", "upper_km2", "n_blocks",
                                                     "n_resamples")},
        "note": "expected area = sum of calibrated glacier probabilities × pixel area; "
                "block_bootstrap_95 is ICEmapper's interval (spread of glacier cover "
                "between blocks, not classification error)"}
    pps = (bundle.training or {}).get("error_correlation_px")
    if pps:
        pps = float(min(max(1.0, float(pps)), bpx * bpx))
        bern = area_from_blocks(s_b, v_b, n_b, pixel_area_m2=px_area, block_px=bpx,
                                method="bernoulli-blocks", pixels_per_sample=pps, seed=seed)
        out["bernoulli_blocks_95"] = {k: bern[k] for k in ("lower_km2", "upper_km2",
                                                             "pixels_per_sample")}
    return out
