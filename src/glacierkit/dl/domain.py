"""Input domain of a model: what its channels looked like in training, and a check at prediction.

A network trained on ``uint8`` DN 0–255 that is given the same scene as float reflectance 0–1
sees every pixel near the darkest training value and answers with high confidence anyway; a
network trained on reflectance 0–1 given DN × 10 000 sees every pixel far above the brightest
snow. Nothing in the network's output reveals this. The model file therefore records, per
input channel, the **training domain** (:func:`domain_from_channels`):

* ``channel``, ``group``, ``kind`` (the source group's kind) and ``band`` (the raw band the
  channel is computed from; ``elevation`` for every DEM channel);
* ``dtype``: the pixel type of the file(s) the band came from (``None`` when unknown, e.g.
  spectra read from a table);
* ``units``: the units/scale, inferred only where certain (:func:`channel_units`): from the
  group kind (``m`` for DEM elevation, ``degrees`` for slope, ``0–1`` for hillshade and
  coherence, ``dB`` for SAR channels), from units declared in the file (``reflectance``,
  ``dB``, ...), from a declared scale factor of 0.0001 on an integer optical band
  (``reflectance × 10 000``) or from the dtype ``uint8`` (``DN 0–255``); otherwise
  ``"unknown"``;
* ``p0_5``, ``p50``, ``p99_5``: robust percentiles of the channel values (channel units, what
  the network sees before normalisation), ``valid_share`` (share of finite pixels) and
  ``n`` (pixels sampled).

At prediction, :func:`check_scene_domain` reads a bounded sample of the scene (up to
``4 × 4`` windows of 64 × 64 px spread evenly over the grid, full resolution so that DEM slope
is computed as in training), turns it into channels exactly as tiled inference does
(:func:`glacierkit.dl.sources.prepare_channels`) and compares every channel with its training
domain (:func:`compare_domain`). The decision rule, per channel with at least
:data:`MIN_SAMPLES` valid sampled pixels:

1. **scale** — ``mag = max(|p0.5|, |p99.5|)``; the channel is refused when the scene's
   ``mag`` is more than :data:`SCALE_FACTOR` (20) times larger or smaller than the training
   one. Scale-factor mix-ups (255, 257, 100, 10 000) and dtype changes land far beyond it;
   scenes of the same sensor differ by far less (a scene of bright snow against a training
   scene with rock and snow: < 2×).
2. **level** — the scene's median must lie inside the training ``[p0.5, p99.5]`` widened on
   each side by :data:`MARGIN` (0.5) times its width. This catches offsets and unit changes
   that keep the magnitude (dB given to a model that converts linear power to dB: every
   negative value floors at −60 dB).
3. **SAR sign** — for SAR channels of a group that takes dB input, a scene whose channel is
   never negative while the training median was negative is linear power given as dB.

A channel of a group that is not given, or that has too few valid sampled pixels, is not
judged (logged). Real cases checked (``tests/test_dl/test_domain.py``): a model trained on
the Everest Landsat-7 ``uint8`` RGB + NIR scene refuses the same scene as ``uint16`` (× 257)
and as float 0–1 (÷ 255), and accepts the identical scene and the separate Everest test
crop; a facies model trained on Sentinel-2 reflectance 0–1 (crops of the Swiss snow series,
``uint16`` ÷ 10 000) refuses the same data as DN (× 10 000) and accepts another date of the
series; synthetic SAR checks dB given as linear and linear given as dB.

:func:`check_scene_domain` raises :class:`~glacierkit.errors.DomainShiftError` naming the
channel, the training range, the scene's range and the likely cause, unless
``allow_domain_shift=True`` (then it logs a warning). Model files written before the domain
was recorded have ``domain`` ``None``: nothing is checked and the log says the domain is
unknown.

Numpy only (the scene sample is read through :mod:`glacierkit.io`); never imports torch.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from glacierkit.errors import DomainShiftError, InputError

log = logging.getLogger(__name__)

__all__ = ["DOMAIN_VERSION", "DomainIssue", "channel_units", "check_scene_domain",
           "compare_domain", "describe_domain", "domain_from_channels", "file_band_info",
           "sample_scene"]

DOMAIN_VERSION = 1
"""Version of the ``domain`` record in model files."""

PERCENTILES = (0.5, 50.0, 99.5)
"""Percentiles recorded per channel (``p0_5``, ``p50``, ``p99_5``)."""

SCALE_FACTOR = 20.0
"""Largest accepted ratio between the scene's and the training's value magnitude."""

MARGIN = 0.5
"""The training ``[p0.5, p99.5]`` is widened by this fraction of its width on each side."""

MIN_SAMPLES = 100
"""Fewest valid sampled pixels for a channel to be judged."""

SAR_FLOOR_DB = -59.9
"""Channel values at or below this are the −60 dB floor of the linear → dB conversion."""

_KNOWN_FACTORS = ((255.0, "a factor of 255 (DN 0–255 vs 0–1)"),
                  (257.0, "a factor of 257 (8-bit vs 16-bit DN)"),
                  (100.0, "a factor of 100 (percent vs fraction)"),
                  (10_000.0, "a factor of 10 000 (reflectance × 10 000 vs reflectance 0–1)"))


# ---------------------------------------------------------------------------- units
def channel_units(kind: str, channel: str, *, dtype: str | None = None,
                  file_units: str | None = None, scale: float | None = None,
                  db_input: bool = False) -> str:
    """Units/scale of a channel, inferred only where certain; otherwise ``"unknown"``.

    Args:
        kind: The source group's kind (``optical``, ``dem``, ``sar``, ``coherence``,
            ``other``).
        channel: Channel name (``elevation``, ``slope``, ``vv_db``, ``red``, ...).
        dtype: Pixel type of the band's file (``"uint8"``, ``"float32"``, ...), if known.
        file_units: Units string the file declares for the band (``""``/``None``: none).
        scale: Scale factor the file declares for the band (GDAL ``scale``), if any.
        db_input: SAR group whose raw bands are already in dB.

    Returns:
        e.g. ``"m"``, ``"degrees"``, ``"0–1"``, ``"dB"``, ``"DN 0–255"``,
        ``"reflectance × 10 000"``, the file's own units string, or ``"unknown"``.
    """
    if kind == "dem":
        return {"elevation": "m", "slope": "degrees", "hillshade": "0–1"}.get(channel,
                                                                              "unknown")
    if kind == "sar":
        return "dB"  # channels are dB after preparation (converted or passed through)
    if kind == "coherence":
        return "0–1"
    units = (file_units or "").strip()
    if units:
        return units
    integer = dtype is not None and np.issubdtype(np.dtype(dtype), np.integer)
    if kind == "optical" and integer and scale is not None and math.isclose(scale, 1e-4):
        return "reflectance × 10 000"
    if dtype == "uint8":
        return "DN 0–255"
    return "unknown"


# ---------------------------------------------------------------------------- statistics
def _stats(values: np.ndarray, n_total: int) -> dict[str, Any]:
    v = values[np.isfinite(values)].astype(np.float64, copy=False)
    share = float(v.size / n_total) if n_total else 0.0
    if not v.size:
        return {"p0_5": None, "p50": None, "p99_5": None, "valid_share": share, "n": 0}
    lo, mid, hi = (float(x) for x in np.percentile(v, PERCENTILES))
    return {"p0_5": lo, "p50": mid, "p99_5": hi, "valid_share": share, "n": int(v.size)}


def _flatten(arrays: Sequence[np.ndarray], masks: Sequence[np.ndarray | None] | None,
             c: int, max_samples: int, seed: int) -> tuple[np.ndarray, int]:
    """``(C, n)`` pixels of all arrays (masked, seeded subsample) and the pixel count."""
    parts = []
    for i, a in enumerate(arrays):
        a = np.asarray(a)
        flat = a.reshape(c, -1)
        m = None if masks is None else masks[i]
        if m is not None:
            flat = flat[:, np.asarray(m, dtype=bool).reshape(-1)]
        parts.append(flat)
    total = sum(p.shape[1] for p in parts)
    if total > max_samples:
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(total, size=max_samples, replace=False))
        allpx = np.concatenate(parts, axis=1)[:, pick]
    else:
        allpx = np.concatenate(parts, axis=1) if parts else np.empty((c, 0), np.float32)
    return allpx, allpx.shape[1]


def _band_of(group: Any, channel: str) -> str:
    if group.kind == "dem":
        return (group.bands or ("elevation",))[0]
    return (group.bands or group.channels)[group.channels.index(channel)]


def domain_from_channels(layout: Any, arrays: Sequence[np.ndarray], *,
                         masks: Sequence[np.ndarray | None] | None = None,
                         band_info: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
                         source: str = "", max_samples: int = 1_000_000,
                         seed: int = 0) -> dict[str, Any]:
    """The training-domain record of a model's channels.

    Args:
        layout: The :class:`~glacierkit.dl.sources.SourceLayout`.
        arrays: Training channels: ``(C, H, W)`` scene stacks' data or ``(C, N)`` /
            ``(N, C, P, P)``-transposed-to-``(C, ...)`` samples, channel units, NaN nodata.
        masks: Optional boolean masks, one per array (shape ``arrays[i].shape[1:]``), of the
            pixels used in training (e.g. the training part of a split).
        band_info: ``{group: [per raw band {"dtype", "units", "scale"}]}`` of the files the
            raw bands came from (:attr:`glacierkit.dl.sources.SceneStack.meta` ``["bands"]``);
            missing groups/bands: dtype ``None``.
        source: Free text saying what the statistics were computed on.
        max_samples: At most this many pixels (seeded uniform subsample) enter the
            percentiles.
        seed: Seed of the subsample.

    Returns:
        ``{"version", "percentiles", "source", "channels": [...]}`` (JSON-serialisable; see the
        module docstring for the per-channel keys).
    """
    c = layout.n_channels
    if not arrays:
        raise InputError("domain_from_channels needs at least one array of channels.")
    for a in arrays:
        if np.shape(a)[0] != c:
            raise InputError(f"training channels must be (C={c}, ...) for channels "
                             f"{list(layout.names)}; got shape {np.shape(a)}.")
    if masks is not None and len(masks) != len(arrays):
        raise InputError(f"{len(masks)} masks for {len(arrays)} arrays.")
    allpx, n = _flatten(arrays, masks, c, max_samples, seed)
    info = dict(band_info or {})
    channels = []
    k = 0
    for g in layout.groups:
        raw = list(info.get(g.name) or [])
        for ch in g.channels:
            band = _band_of(g, ch)
            bands = list(g.bands or ())
            bi = raw[bands.index(band)] if band in bands and len(raw) == len(bands) else {}
            dtype = bi.get("dtype")
            units = channel_units(g.kind, ch, dtype=dtype, file_units=bi.get("units"),
                                  scale=bi.get("scale"), db_input=bool(g.db_input))
            channels.append({"channel": ch, "group": g.name, "kind": g.kind, "band": band,
                             "dtype": dtype, "units": units, **_stats(allpx[k], n)})
            k += 1
    return {"version": DOMAIN_VERSION, "percentiles": list(PERCENTILES), "source": source,
            "channels": channels}


# ---------------------------------------------------------------------------- scene sample
def file_band_info(path: str | os.PathLike[str], bands: Sequence[int] | None = None
                   ) -> list[dict[str, Any]]:
    """``[{"dtype", "units", "scale"}]`` of a raster's bands (1-based ``bands``; default all).

    Only the file's metadata is read. A file that cannot be opened gives ``[]`` (reading its
    pixels reports the error).
    """
    import rasterio

    try:
        with rasterio.open(path) as ds:
            idx = list(bands) if bands is not None else list(range(1, ds.count + 1))
            return [{"dtype": str(ds.dtypes[b - 1]), "units": ds.units[b - 1] or "",
                     "scale": float(ds.scales[b - 1])} for b in idx]
    except Exception:
        return []


def _windows(height: int, width: int, n: int, size: int) -> list[tuple[int, int, int, int]]:
    """Up to ``n × n`` windows ``(row, col, h, w)`` of ``size`` px spread evenly over a grid."""
    h, w = min(size, height), min(size, width)
    rows = np.unique(np.linspace(0, height - h, n).round().astype(int))
    cols = np.unique(np.linspace(0, width - w, n).round().astype(int))
    return [(int(r), int(c), h, w) for r in rows for c in cols]


def sample_scene(layout: Any, groups: Mapping[str, Sequence[tuple[str | os.PathLike[str],
                                                                  Sequence[int] | None]]],
                 *, n_windows: int = 4, window_px: int = 64
                 ) -> tuple[np.ndarray, dict[str, list[dict[str, Any]]]]:
    """A bounded sample of a scene's channels, prepared as tiled inference prepares them.

    Args:
        layout: The model's :class:`~glacierkit.dl.sources.SourceLayout`.
        groups: ``{group: [(path, 1-based bands or None), ...]}`` of the given groups (files
            of one group on one grid; groups may lie on different grids: each is sampled on
            its own). A group whose files give another number of bands than it needs is left
            out (NaN), so that the caller's band-count check reports it.
        n_windows: Windows per axis (``n_windows²`` windows in all).
        window_px: Window size in pixels (full resolution).

    Returns:
        ``(channels, band_info)``: ``(C, n)`` float32 channel values (NaN nodata; NaN rows
        for groups not given; columns of different groups are not the same pixels) and
        ``{group: [per raw band {"dtype", "units", "scale"}]}``.
        At most ``n_windows² × window_px²`` pixels are read per band.
    """
    from rasterio.windows import Window

    from glacierkit.dl.sources import pixel_size_m, prepare_group
    from glacierkit.errors import WindowError
    from glacierkit.io.raster import RasterReader

    info: dict[str, list[dict[str, Any]]] = {}
    per_group: list[np.ndarray | None] = []
    for g in layout.groups:
        items = groups.get(g.name)
        if not items:
            per_group.append(None)
            continue
        info[g.name] = [bi for path, bands in items for bi in file_band_info(path, bands)]
        readers = [RasterReader(path) for path, _ in items]
        try:
            grid = readers[0].grid
            psize = pixel_size_m(grid) if grid.crs is not None else grid.res
            parts = []
            # Each group on its own grid: value ranges do not depend on alignment.
            for r0, c0, h, w in _windows(grid.height, grid.width, n_windows, window_px):
                win = Window(c0, r0, w, h)
                try:
                    raw = np.concatenate([rd.read_arrays(win, bands=None if sel is None
                                                         else list(sel))[0]
                                          for rd, (_, sel) in zip(readers, items, strict=True)],
                                         axis=0)
                except WindowError:  # files of one group on different grids (align=...)
                    continue
                if raw.shape[0] != g.n_bands:
                    break  # a wrong band count is the caller's error to report
                if g.kind == "dem" and min(h, w) < 2:
                    continue
                parts.append(prepare_group(g, raw, pixel_size=psize)
                             .reshape(len(g.channels), -1))
        finally:
            for rd in readers:
                rd.close()
        per_group.append(np.concatenate(parts, axis=1) if parts else None)
    n = max([p.shape[1] for p in per_group if p is not None] or [0])
    out = np.full((layout.n_channels, n), np.nan, dtype=np.float32)
    for p, sl in zip(per_group, layout.slices.values(), strict=True):
        if p is not None:
            out[sl, :p.shape[1]] = p
    return out, info


# ---------------------------------------------------------------------------- comparison
@dataclass(frozen=True)
class DomainIssue:
    """One channel of a scene outside its training domain.

    Attributes:
        channel: Channel name.
        group: Source group.
        rule: ``"scale"``, ``"level"`` or ``"sar-sign"``.
        train: Training ``(p0.5, p50, p99.5)``.
        scene: Scene ``(p0.5, p50, p99.5)``.
        cause: The likely cause, in words.
    """

    channel: str
    group: str
    rule: str
    train: tuple[float, float, float]
    scene: tuple[float, float, float]
    cause: str

    def describe(self, units: str = "unknown", train_dtype: str | None = None,
                 scene_dtype: str | None = None) -> str:
        """One sentence: channel, training range, scene range, likely cause."""
        t, s = self.train, self.scene
        tu = "" if units == "unknown" else f" {units}"
        td = f", {train_dtype}" if train_dtype else ""
        sd = f", {scene_dtype}" if scene_dtype else ""
        return (f"channel {self.channel!r} (group {self.group!r}): trained on "
                f"{_g(t[0])}–{_g(t[2])}{tu} (median {_g(t[1])}{td}), the scene has "
                f"{_g(s[0])}–{_g(s[2])} (median {_g(s[1])}{sd}); {self.cause}")


def _g(v: float) -> str:
    return f"{v:.4g}"


def _mag(lo: float, hi: float) -> float:
    return max(abs(lo), abs(hi))


def _scale_cause(ratio: float, train_dtype: str | None, scene_dtype: str | None) -> str:
    r = ratio if ratio >= 1 else 1 / ratio
    bigger = "larger" if ratio >= 1 else "smaller"
    named = [text for f, text in _KNOWN_FACTORS if abs(math.log(r / f)) < math.log(1.35)]
    text = (f"the scene's values are about {r:.3g}× {bigger}"
            + (f": likely {named[0]}" if named else ""))
    if train_dtype and scene_dtype and train_dtype != scene_dtype:
        text += f"; the data type changed ({train_dtype} in training, {scene_dtype} here)"
    return text + "."


def compare_domain(train: Mapping[str, Any], scene_channels: np.ndarray, layout: Any, *,
                   present: Sequence[bool] | None = None,
                   scene_band_info: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
                   ) -> tuple[list[DomainIssue], dict[str, Any]]:
    """Compare a scene sample with the training domain (rules in the module docstring).

    Args:
        train: The model file's ``domain`` record.
        scene_channels: ``(C, n)`` sampled scene channels (NaN nodata).
        layout: The model's layout.
        present: One flag per group: whether the scene gives it (default: all).
        scene_band_info: ``{group: [per raw band {"dtype", ...}]}`` of the scene's files.

    Returns:
        ``(issues, record)``: the channels outside the domain and, per channel, the scene's
        statistics and verdict (``"ok"``, ``"outside"``, ``"not given"``,
        ``"too few pixels"``, ``"no training record"``).
    """
    recs = {d["channel"]: d for d in train.get("channels") or []}
    flags = list(present) if present is not None else [True] * layout.n_groups
    info = dict(scene_band_info or {})
    issues: list[DomainIssue] = []
    record: dict[str, Any] = {}
    k = 0
    for gi, g in enumerate(layout.groups):
        for ch in g.channels:
            vals = np.asarray(scene_channels[k])
            k += 1
            if not flags[gi]:
                record[ch] = {"verdict": "not given"}
                continue
            st = _stats(vals, vals.size)
            t = recs.get(ch)
            if t is None or t.get("p50") is None:
                record[ch] = {**st, "verdict": "no training record"}
                continue
            if st["n"] < MIN_SAMPLES:
                record[ch] = {**st, "verdict": "too few pixels"}
                continue
            tr = (float(t["p0_5"]), float(t["p50"]), float(t["p99_5"]))
            sc = (st["p0_5"], st["p50"], st["p99_5"])
            band = _band_of(g, ch)
            bands = list(g.bands or ())
            raw = list(info.get(g.name) or [])
            sdtype = (raw[bands.index(band)].get("dtype")
                      if band in bands and len(raw) == len(bands) else None)
            tdtype = t.get("dtype")
            issue = _judge(ch, g, tr, sc, tdtype, sdtype)
            record[ch] = {**st, "verdict": "ok" if issue is None else "outside",
                          "dtype": sdtype}
            if issue is not None:
                record[ch]["rule"] = issue.rule
                issues.append(issue)
    return issues, record


def _judge(ch: str, g: Any, tr: tuple[float, float, float], sc: tuple[float, float, float],
           tdtype: str | None, sdtype: str | None) -> DomainIssue | None:
    tlo, tmid, thi = tr
    slo, smid, shi = sc
    # 3. SAR sign: dB groups pass values through; linear power is never negative.
    if g.kind == "sar" and g.db_input and tmid < 0 <= slo:
        return DomainIssue(ch, g.name, "sar-sign", tr, sc,
                           "the scene is never negative although the model was trained on dB "
                           "(median below 0): the file likely holds linear power while the "
                           "model expects dB; convert with 10·log10 or use a model trained on "
                           "linear power.")
    if g.kind == "sar" and not g.db_input and smid <= SAR_FLOOR_DB < tlo:
        return DomainIssue(ch, g.name, "level", tr, sc,
                           "most scene values hit the −60 dB floor of the linear → dB "
                           "conversion: the file is likely already in dB (negative values) "
                           "while the model expects linear power; give linear power "
                           "(10^(dB/10)).")
    # 1. scale
    tm, sm = _mag(tlo, thi), _mag(slo, shi)
    if tm > 0 and sm > 0:
        ratio = sm / tm
        if ratio > SCALE_FACTOR or ratio < 1 / SCALE_FACTOR:
            return DomainIssue(ch, g.name, "scale", tr, sc, _scale_cause(ratio, tdtype, sdtype))
    # 2. level
    width = thi - tlo
    margin = MARGIN * width + 1e-6 * max(1.0, abs(tmid))
    if not (tlo - margin <= smid <= thi + margin):
        cause = ("the scene's median lies outside the training range"
                 + (f" (data type {tdtype} in training, {sdtype} here)"
                    if tdtype and sdtype and tdtype != sdtype else "")
                 + ": another unit or offset, or terrain/surfaces the model never saw"
                 + (" (elevation in feet instead of metres?)" if g.kind == "dem" else "")
                 + ".")
        return DomainIssue(ch, g.name, "level", tr, sc, cause)
    return None


def check_scene_domain(domain: Mapping[str, Any] | None, layout: Any,
                       groups: Mapping[str, Sequence[tuple[str | os.PathLike[str],
                                                           Sequence[int] | None]]],
                       *, allow_domain_shift: bool = False, model_name: str = "the model",
                       n_windows: int = 4, window_px: int = 64) -> dict[str, Any]:
    """Refuse a scene whose channels lie far outside the model's training domain.

    Args:
        domain: The model file's ``domain`` record (``None``: unknown, nothing checked).
        layout: The model's layout.
        groups: ``{group: [(path, bands or None)]}`` of the scene's given groups.
        allow_domain_shift: Log a warning instead of raising.
        model_name: Used in messages.
        n_windows, window_px: Sample size (:func:`sample_scene`).

    Returns:
        ``{"status": "unknown" | "ok" | "outside (allowed)", "channels": {...},
        "issues": [...]}`` (JSON-serialisable; for reports).

    Raises:
        DomainShiftError: a channel is outside the domain and ``allow_domain_shift`` is
            False. The message names each such channel, both ranges and the likely cause.
    """
    if not domain or not domain.get("channels"):
        log.info("%s records no training domain (written before glacierkit recorded it): "
                 "the scene's value range is not checked", model_name)
        return {"status": "unknown", "channels": {}, "issues": []}
    sample, info = sample_scene(layout, groups, n_windows=n_windows, window_px=window_px)
    present = [g.name in groups for g in layout.groups]
    issues, record = compare_domain(domain, sample, layout, present=present,
                                    scene_band_info=info)
    units = {d["channel"]: d.get("units", "unknown") for d in domain["channels"]}
    dtypes = {d["channel"]: d.get("dtype") for d in domain["channels"]}
    texts = [i.describe(units.get(i.channel, "unknown"), dtypes.get(i.channel),
                        record[i.channel].get("dtype")) for i in issues]
    if not issues:
        judged = [c for c, r in record.items() if r.get("verdict") == "ok"]
        log.info("scene within the training domain of %s (%d channel(s) checked)",
                 model_name, len(judged))
        return {"status": "ok", "channels": record, "issues": []}
    if not allow_domain_shift:
        raise DomainShiftError(
            f"the scene lies far outside the value range {model_name} was trained on, so its "
            f"predictions would be meaningless: " + " ".join(texts)
            + " Give the scene in the units and scale the model was trained on (see "
            "'glacierkit info MODEL.gkm' for its training domain), or pass "
            "--allow-domain-shift (allow_domain_shift=True) to predict anyway.")
    log.warning("domain shift allowed: %s", " ".join(texts))
    return {"status": "outside (allowed)", "channels": record, "issues": texts}


# ---------------------------------------------------------------------------- display
def describe_domain(domain: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Rows ``{channel, group, band, dtype, units, p0_5, p50, p99_5, valid_share}`` or ``[]``."""
    if not domain:
        return []
    return [{k: d.get(k) for k in ("channel", "group", "band", "dtype", "units", "p0_5", "p50",
                                    "p99_5", "valid_share")} for d in domain.get("channels") or []]
