"""Glacier mapping from Sentinel-1 time series: synthetic series over a real grid.

**Everything measured here is synthetic.** No labelled SAR time series of glaciers is in the
example data, so the series come from :mod:`glacierkit.dl.synthetic_series` (a first-order
generator whose defaults were measured on a real Sentinel-1 stack, see
``docs/validation/sar-series-data.md``) over a *real* grid: the Ötztal SRTM DEM and the RGI
outlines of the ``oggm_sample_data`` example data (:func:`real_grid_scene`, cropped to the
glacierised part, 60 m pixels). The labels are the RGI outlines; the "truth" is what the
generator was told.

What is run (one pass, descending, one year 2021):

* **split**: :func:`glacierkit.dl.split.make_split` ``half`` along the columns: train (west,
  45 %) | validation (20 %) | **test (east, 35 %)**, buffers of ``patch // 2`` pixels. Every
  number below is on the same test pixels (test part minus layover/shadow, which is nodata in
  every method).
* **protocols**: (a) ICEmapper's: a regular series of 15 dates in the year (every 24 days);
  (b) irregular dates with gaps: ``sample_dates(mode="irregular", per_year=k,
  missing_fraction=0.3)`` with ``k`` drawn from 10..20 per seed, so 7–14 dates.
* **training**: one series drawn with the generator seed 0 (protocol a) over the whole crop;
  ICEmapper3D, ConvLSTM and U-TAE (tiny presets) are trained on its training part with equal
  budgets (epochs, samples per epoch, patch, batch, augmentations, learning rate), on the CPU;
  the best epoch by validation IoU is kept. The same U-TAE is applied to protocol (b) (it was
  trained on protocol (a) with date dropout and date jitter).
* **calibration** (validation pixels only, never test pixels): the rule of
  :func:`glacierkit.mapping.pipeline.fit_calibration` (``auto``: none, temperature or
  isotonic, whichever has the lowest ECE on a held-out half of the pixels;
  :func:`~glacierkit.metrics.calibration.choose_calibration`) fitted on validation logits
  computed like the test logits (one forward pass over a window of the part, see below),
  on two sets of validation pixels: ``train-series``, the validation part of the seed-0
  series the model was trained on (what ``map train`` does), and ``new-series``, the
  validation parts of four new, validation-only series (seeds 1001–1004); and
  ``new-series-glacier``, an isotonic regression of the label on the glacier probability
  fitted on the same new-series pixels (class-wise, so that the expected area equals the
  glacier area on the fitting pixels). For comparison, ``fit_calibration`` itself on
  validation *patches* of the seed-0 series.
* **evaluation**: new series drawn with the generator seeds 1..N (new speckle, texture,
  radiometric jitter and, for protocol b, new dates) over the test part; each model runs once
  over a window of the scene holding the test part and ``2 × patch`` pixels around it (no
  tiling); per seed IoU, F1, area deviation, boundary distances
  (:func:`glacierkit.metrics.outlines.evaluate_outlines`), ECE before/after calibration; the
  tables give the mean ± std over the seeds.
* **baseline**: Nagler & Rott (2000), :func:`glacierkit.series.sar_ratio` on the dB series,
  −3 dB, with the library's default windows (melt July–August vs reference January–February)
  and with the windows the generator implies (full melt 11 June – 20 September, i.e. its melt
  window 1 June – 30 September without the 10-day ramps, vs the dry season 1 October –
  31 May).
* **area**: expected glacier area of the test region from the calibrated probabilities with
  95 % intervals (:func:`glacierkit.metrics.area.area_with_interval`, 3.2 km blocks):
  ``block-bootstrap`` (ICEmapper), ``bernoulli-blocks`` with ``pixels_per_sample = 1`` (the
  default), and ``bernoulli-blocks`` with ``pixels_per_sample`` estimated on the validation
  parts of four further validation-only series (seeds 1005–1008) in two ways: ``corr``, the
  error correlation area from the spatial autocorrelation of the residuals ``y − p``, and
  ``seeds``, the mean squared area error of the validation part across those series relative
  to its Bernoulli variance. Coverage: how often the interval holds the true area (label
  pixels × pixel area) over the N evaluation seeds (one trained model).
* **jitter ablation**: the expected area of the protocol-(a) models on the first 10 evaluation
  seeds drawn again without the generator's per-date scene-wide radiometric jitter
  (``jitter_db = 0``), to see how much of the seed-to-seed area spread it causes.
* **whole-scene path**: the U-TAE model file (bundle with ONNX graph and the ``new-series``
  calibration) applied with :func:`glacierkit.dl.predict.predict_scene` to the GeoTIFF series
  of the first evaluation seed (written by :func:`write_synthetic_series`, opened with
  :func:`glacierkit.series.open_series`), protocols (a) and (b), tile by tile (128 px tiles,
  and 64 and 256 px); its test IoU and class map are compared with the in-memory evaluation.

Usage::

    python benchmarks/sar_series_validation.py --json sar_series.json
    python benchmarks/sar_series_validation.py --quick
    python benchmarks/sar_series_validation.py --epochs 12 --seeds 30 --out /tmp/sar-series
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

SCENE = "oetztal"
BOUNDS = (628980.0, 5180580.0, 655380.0, 5200980.0)
"""The glacierised part of the Ötztal example grid (UTM 32N, metres): 26.4 × 20.4 km."""
PASS = "descending"
YEAR = 2021
TRAIN_SEED = 0
CAL_SEEDS = tuple(range(1001, 1005))
"""Validation-only generator seeds whose validation part fits the ``new-series`` calibration."""
HOLD_SEEDS = tuple(range(1005, 1009))
"""Validation-only generator seeds whose validation part gives ``pixels_per_sample``."""
CLASSES = ["off_glacier", "glacier"]
IGNORE = 255
BLOCK_M = 3200.0
"""Block edge of the area intervals (ICEmapper's 3.2 km)."""
BASELINE_WINDOWS = {
    "defaults": {"melt": (7, 8), "reference": (1, 2),
                 "label": "Jul–Aug vs Jan–Feb"},
    "generator": {"melt": ("06-11", "09-20"), "reference": ("10-01", "05-31"),
                  "label": "11 Jun–20 Sep vs 1 Oct–31 May"},
}


@dataclasses.dataclass
class Options:
    """Settings of one run (the command line fills them; the smoke test uses tiny ones)."""

    pixel_size_m: float = 60.0
    bounds: tuple[float, float, float, float] | None = BOUNDS
    patch: int = 32
    buffer_px: int | None = None
    batch: int = 8
    epochs: int = 12
    samples: int = 320
    lr: float = 2e-3
    seeds: int = 20
    cal_seeds: tuple[int, ...] = CAL_SEEDS
    hold_seeds: tuple[int, ...] = HOLD_SEEDS
    archs: tuple[str, ...] = ("icemapper3d", "convlstm", "utae")
    size: str = "tiny"
    whole_scene: bool = True
    tile: int = 128
    overlap: int = 32
    tile_sweep: tuple[int, ...] = (64, 256)
    jitter_ablation: bool = True
    n_resamples: int = 4000
    threads: int | None = 1
    out: str | None = None
    resume: bool = False


# ---------------------------------------------------------------------------- data
def load_scene(opts: Options) -> Any:
    from glacierkit.dl.synthetic_series import real_grid_scene

    return real_grid_scene(SCENE, pixel_size_m=opts.pixel_size_m, bounds=opts.bounds)


def dates_a() -> list[tuple[datetime, str]]:
    """Protocol (a): 15 regular dates in the year (every 24 days), one pass."""
    from glacierkit.dl.synthetic_series import sample_dates

    return sample_dates(YEAR, mode="regular", per_year=15, passes=(PASS,))


def dates_b(seed: int) -> list[tuple[datetime, str]]:
    """Protocol (b): irregular dates with gaps, 10..20 drawn dates minus 30 %."""
    from glacierkit.dl.synthetic_series import sample_dates

    rng = np.random.default_rng([seed, 7])
    k = int(rng.integers(10, 21))
    return sample_dates(YEAR, mode="irregular", per_year=k, missing_fraction=0.3,
                        seed=rng, passes=(PASS,))


def acquired(dates: list[tuple[datetime, str]]) -> np.ndarray:
    return np.array([np.datetime64(t.replace(tzinfo=None), "s") for t, _ in dates])


@dataclasses.dataclass
class Series:
    """One simulated series and what the models and the baseline read from it."""

    power: np.ndarray        # (T, H, W) linear, NaN layover/shadow
    acquired: np.ndarray     # (T,) datetime64[s]
    days: np.ndarray         # (T,) float32 days since 1 January
    stack: Any               # SceneStack


def simulate(sc: Any, layout: Any, dates: list[tuple[datetime, str]], seed: int,
             params: Any = None) -> Series:
    from glacierkit.dl.sources import pixel_size_m, scene_from_arrays, series_days
    from glacierkit.dl.synthetic_series import synthetic_series

    res = synthetic_series(sc.labels, dates, dem=sc.dem, pixel_size=pixel_size_m(sc.grid),
                           seed=seed, with_coherence=False, params=params)
    acq = acquired(dates)
    days, _ = series_days(acq)
    stack = scene_from_arrays(layout, sc.grid, {"s1": res.power[:, None]}, dates=days,
                              name=f"seed{seed}")
    return Series(res.power, acq, days.astype(np.float32), stack)


# ---------------------------------------------------------------------------- models
def window_of(mask: np.ndarray, margin: int) -> tuple[int, int, int, int]:
    """Bounding box ``(r0, r1, c0, c1)`` of ``mask`` grown by ``margin`` (clipped)."""
    r, c = np.nonzero(mask)
    h, w = mask.shape
    return (max(0, r.min() - margin), min(h, r.max() + 1 + margin),
            max(0, c.min() - margin), min(w, c.max() + 1 + margin))


def model_logits(model: Any, series: Series, norm_t: Any,
                 window: tuple[int, int, int, int]) -> np.ndarray:
    """Raw logits ``(K, h, w)`` of a series model on a window (one forward pass)."""
    import torch

    r0, r1, c0, c1 = window
    raw = series.stack.series[:, :, r0:r1, c0:c1]
    valid = np.isfinite(raw)
    x = norm_t.apply(raw)
    mask = valid.any(axis=(1, 2, 3)).astype(np.float32)
    h, w = x.shape[-2:]
    m = int(getattr(model, "multiple", 1))
    ph, pw = (-h) % m, (-w) % m
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="reflect")
    with torch.no_grad():
        out = model(torch.from_numpy(np.ascontiguousarray(x[None])),
                    torch.from_numpy(series.days[None]),
                    torch.from_numpy(mask[None]))
    return out[0, :, :h, :w].numpy().astype(np.float64)


def train_models(opts: Options, train: Series, labels: np.ndarray, split: Any, norm: Any,
                 work: Path) -> dict[str, Any]:
    import torch

    from glacierkit.dl.data import Augment, PatchDataset
    from glacierkit.dl.models import build_model, count_parameters
    from glacierkit.dl.train import TrainConfig, fit

    augment = Augment(flips=True, rot90=True, noise_std=0.03, gamma=None, group_dropout=0.0,
                      date_offset_std=0.05, date_jitter_days=12.0, date_dropout=0.2)
    train_ds = PatchDataset([train.stack], [labels], split, split="train",
                            patch_size=opts.patch, norm=norm, augment=augment,
                            samples_per_epoch=opts.samples, seed=TRAIN_SEED, min_labelled=0.5)
    val_ds = PatchDataset([train.stack], [labels], split, split="val", patch_size=opts.patch,
                          norm=norm, stride=opts.patch // 2, min_labelled=0.25)
    cfg = TrainConfig(n_classes=2, epochs=opts.epochs, batch_size=opts.batch, lr=opts.lr,
                      restart_epochs=opts.epochs, seed=TRAIN_SEED, accelerator="cpu",
                      progress=False)
    out: dict[str, Any] = {}
    for arch in opts.archs:
        torch.manual_seed(TRAIN_SEED)
        model = build_model(arch, group_channels=(1,), n_classes=2, size=opts.size)
        t0 = time.perf_counter()
        res = fit(model, train_ds, val_ds, cfg, out_dir=work / f"train-{arch}",
                  resume="auto" if opts.resume else False, overwrite=not opts.resume)
        secs = time.perf_counter() - t0
        out[arch] = {"model": res.model.eval(), "train_s": secs, "steps": res.steps,
                     "epochs": res.epochs, "best_val_iou": res.best_val_iou,
                     "parameters": int(count_parameters(res.model)),
                     "history": res.history}
        print(f"  trained {arch}: {res.steps} steps in {secs:.0f} s, best val IoU "
              f"{res.best_val_iou:.3f}", flush=True)
    out["_config"] = {"train": {k: v for k, v in cfg.to_dict().items()
                                if k not in ("arch", "size", "overrides", "dropout")},
                      "model": {"size": opts.size, "dropout": 0.1},
                      "augment": augment.to_dict(),
                      "samples_per_epoch": opts.samples, "patch": opts.patch}
    return out


# ---------------------------------------------------------------------------- metrics
def masked(classes: np.ndarray, keep: np.ndarray) -> np.ndarray:
    out = classes.astype(np.uint8, copy=True)
    out[~keep] = IGNORE
    return out


def outline_scores(pred: np.ndarray, labels: np.ndarray, keep: np.ndarray, grid: Any
                   ) -> dict[str, float]:
    from glacierkit.metrics.outlines import evaluate_outlines

    r = evaluate_outlines((masked(pred, keep), grid), (masked(labels, keep), grid))
    return {k: float(r[k]) for k in ("iou", "f1", "precision", "recall", "area_ref_km2",
                                     "area_pred_km2", "area_dev_km2", "area_dev_pct",
                                     "boundary_mean_m", "boundary_median_m")}


def correlation_area(resid: list[np.ndarray], pq: list[np.ndarray], masks: list[np.ndarray],
                     max_lag: int) -> dict[str, Any]:
    """Error correlation area of validation residuals ``r = y − p``.

    The masked autocovariance ``C(h)`` of ``r`` is pooled over the maps (FFT, lags up to
    ``max_lag`` px); the radial mean of ``ρ(h) = C(h)/C(0)`` is cut at its first lag below
    0.02 (``L``), and

    * ``correlation_area_px = Σ_{|h| ≤ L} ρ(h)`` (pixels that share one error),
    * ``pixels_per_sample = Σ_{|h| ≤ L} C(h) / mean p(1 − p)``: the variance of a block's
      residual sum relative to the Bernoulli variance ``Σ p(1 − p)`` — what
      ``area_with_interval(pixels_per_sample=...)`` multiplies (it also absorbs a ``C(0)``
      that differs from ``p(1 − p)``).
    """
    num = den = None
    pq_sum = n_px = 0.0
    for r, q, m in zip(resid, pq, masks, strict=True):
        h, w = m.shape
        s = (h + max_lag, w + max_lag)
        rz = np.where(m, r, 0.0)
        mz = m.astype(np.float64)
        fr = np.fft.rfft2(rz, s)
        fm = np.fft.rfft2(mz, s)
        a = np.fft.irfft2(fr * np.conj(fr), s)
        b = np.fft.irfft2(fm * np.conj(fm), s)
        num = a if num is None else num + a
        den = b if den is None else den + b
        pq_sum += float(q[m].sum())
        n_px += float(m.sum())
    assert num is not None and den is not None
    lags = np.arange(-max_lag, max_lag + 1)
    idx = np.ix_(lags % num.shape[0], lags % num.shape[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = np.where(den[idx] > 50, num[idx] / den[idx], 0.0)
    c0 = float(cov[max_lag, max_lag])
    rho = cov / c0
    dist = np.hypot(*np.meshgrid(lags, lags, indexing="ij"))
    ring = np.rint(dist).astype(int)
    radial = np.array([rho[ring == d].mean() for d in range(max_lag + 1)])
    below = np.flatnonzero(radial < 0.02)
    cut = int(below[0]) if below.size else max_lag
    inside = dist <= cut
    mean_pq = pq_sum / max(n_px, 1.0)
    return {"c0": c0, "mean_p_1mp": mean_pq, "cut_lag_px": cut,
            "correlation_area_px": float(rho[inside].sum()),
            "pixels_per_sample": float(cov[inside].sum() / mean_pq),
            "radial_rho": [float(v) for v in radial[: min(len(radial), 33)]],
            "n_pixels": int(n_px)}


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson interval of a binomial share ``k / n``."""
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def summary(values: list[float]) -> dict[str, float]:
    a = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if a.size == 0:
        return {"mean": math.nan, "std": math.nan, "n": 0}
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if a.size > 1 else 0.0,
            "n": int(a.size)}


# ---------------------------------------------------------------------------- rows
CAL_SETS = ("train-series", "new-series", "new-series-glacier")
"""Calibrations: the pipeline's rule fitted on the validation part of the series the model was
trained on (seed 0; what ``map train`` does) or on the validation parts of new,
validation-only series (``CAL_SEEDS``); and, on the same new-series pixels, an isotonic
regression of the label on the glacier probability (class-wise: ``Σ p = Σ y`` on the fitting
pixels, which the top-label maps of the pipeline do not guarantee)."""

INTERVALS = (("block-bootstrap", "block-bootstrap", None),
             ("bernoulli c=1", "bernoulli-blocks", None),
             ("bernoulli c=corr", "bernoulli-blocks", "corr"),
             ("bernoulli c=seeds", "bernoulli-blocks", "seeds"))
"""(name, method of area_with_interval, which validation estimate of pixels_per_sample):
``corr`` the error correlation area within one realization (spatial autocorrelation of the
validation residuals), ``seeds`` the spread of the validation part's area error between
realizations; both from the validation parts of ``HOLD_SEEDS``."""


@dataclasses.dataclass
class CalSet:
    """One calibration of a model and the ``pixels_per_sample`` estimated for it."""

    calibration: dict[str, Any] | None
    record: dict[str, Any]
    glacier_iso: tuple[np.ndarray, np.ndarray] | None = None
    pixels_per_sample: dict[str, float] = dataclasses.field(default_factory=dict)
    correlation: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Learned:
    """A trained model applied under one protocol, with its calibrations.

    ``cals`` holds the pipeline's rule (``choose_calibration(..., "auto")``, what
    ``fit_calibration`` applies) fitted on validation logits computed like the test logits
    (one window over the part), per :data:`CAL_SETS`; ``calibration_patches`` is
    ``fit_calibration`` itself on validation *patches* of the training series, as
    ``map train`` does (for comparison of the test ECE).
    """

    name: str
    arch: str
    protocol: str
    model: Any
    cals: dict[str, CalSet] = dataclasses.field(default_factory=dict)
    calibration_patches: dict[str, Any] | None = None
    cal_record_patches: dict[str, Any] = dataclasses.field(default_factory=dict)


def _cal_map(d: dict[str, Any] | None) -> Any:
    from glacierkit.metrics.calibration import IdentityCalibration, calibration_from_dict

    return IdentityCalibration() if d is None else calibration_from_dict(dict(d))


def probabilities(row: Learned, logits: np.ndarray) -> dict[str, np.ndarray]:
    """Classes, raw and calibrated top-class confidence and glacier probability.

    Args:
        logits: ``(K, h, w)`` raw logits.

    Returns:
        ``classes``, ``raw`` (max softmax), ``conf_patches``, and per calibration set ``c``
        ``conf_c`` (calibrated top-class confidence) and ``p_c`` (glacier probability).
    """
    from glacierkit.metrics.calibration import softmax

    out = {"classes": logits.argmax(axis=0).astype(np.uint8),
           "raw": softmax(logits).max(axis=0),
           "conf_patches": _cal_map(row.calibration_patches).confidence(logits, "max")}
    for name, cs in row.cals.items():
        if cs.glacier_iso is not None:
            p = np.interp(softmax(logits)[1], *cs.glacier_iso)
            out[f"conf_{name}"] = np.maximum(p, 1.0 - p)
            out[f"p_{name}"] = p
        else:
            cal = _cal_map(cs.calibration)
            out[f"conf_{name}"] = cal.confidence(logits, "max")
            out[f"p_{name}"] = cal.apply(logits)[1]
    return out


def _val_pixels(row: Learned, s: Series, labels: np.ndarray, val: np.ndarray, norm_t: Any,
                win: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(logits (K, h, w), labels (h, w), validation mask (h, w))`` on the window."""
    r0, r1, c0, c1 = win
    lg = model_logits(row.model, s, norm_t, win)
    m = val[r0:r1, c0:c1] & s.stack.valid_mask()[r0:r1, c0:c1]
    return lg, labels[r0:r1, c0:c1], m


def calibrate(row: Learned, val_ds: Any, cal_series: dict[str, list[Series]],
              hold: list[Series], labels: np.ndarray, val: np.ndarray, norm_t: Any,
              block_px: int, margin: int) -> None:
    """Fit the calibrations and their ``pixels_per_sample`` on validation pixels only.

    ``cal_series[name]``: the series whose validation part fits calibration ``name``;
    ``hold``: validation-only series (seen by no calibration) for ``pixels_per_sample``:

    * ``corr``: :func:`correlation_area` of the residuals ``y − p`` (spatial correlation
      within one realization);
    * ``seeds``: ``Σ_k (Σ r)² / Σ_k Σ p(1 − p)`` over the validation part of the series
      ``k``: the mean squared area error of the validation part between realizations, bias
      included, relative to its Bernoulli variance. Used for the test part, it assumes that
      the error variance grows with the Bernoulli variance there as it does on the
      validation part.
    """
    from sklearn.isotonic import IsotonicRegression

    from glacierkit.mapping.pipeline import fit_calibration
    from glacierkit.metrics.calibration import choose_calibration, softmax

    row.calibration_patches, row.cal_record_patches = fit_calibration(
        row.model, val_ds, "auto", seed=TRAIN_SEED)
    win = window_of(val, margin)
    for name, series in cal_series.items():
        zs, ys = [], []
        for s in series:
            lg, y, m = _val_pixels(row, s, labels, val, norm_t, win)
            zs.append(lg[:, m].T)
            ys.append(y[m].astype(np.int64))
        z, y = np.concatenate(zs), np.concatenate(ys)
        cal, rec = choose_calibration(z, y, "auto", seed=TRAIN_SEED)
        rec["series"] = [s.stack.name for s in series]
        row.cals[name] = CalSet(cal, rec)
        if name == "new-series":
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True,
                                     out_of_bounds="clip").fit(softmax(z)[:, 1], y)
            xy = (np.asarray(iso.X_thresholds_, dtype=np.float64),
                  np.asarray(iso.y_thresholds_, dtype=np.float64))
            row.cals["new-series-glacier"] = CalSet(
                None, {"method": "isotonic on p(glacier)", "series": rec["series"],
                       "n_pixels": int(y.size), "n_breakpoints": int(xy[0].size)},
                glacier_iso=xy)
    parts: dict[str, tuple[list, list, list, list]] = {k: ([], [], [], []) for k in row.cals}
    r0, r1, c0, c1 = win
    for s in hold:
        lg, y, m = _val_pixels(row, s, labels, val, norm_t, win)
        pr = probabilities(row, lg)
        for k in row.cals:
            p = pr[f"p_{k}"]
            resid, pq, masks, sums = parts[k]
            resid.append(y - p)
            pq.append(p * (1 - p))
            masks.append(m)
            sums.append({"seed": s.stack.name, "y_minus_p_px": float((y - p)[m].sum()),
                         "bernoulli_var_px2": float((p * (1 - p))[m].sum())})
    max_lag = max(4, min(block_px // 2, min(r1 - r0, c1 - c0) // 2))
    for k, (resid, pq, masks, sums) in parts.items():
        corr = correlation_area(resid, pq, masks, max_lag)
        corr["validation_sums"] = sums
        corr["between_seeds_c"] = (sum(x["y_minus_p_px"] ** 2 for x in sums)
                                   / sum(x["bernoulli_var_px2"] for x in sums))
        cs = row.cals[k]
        cs.correlation = corr
        cs.pixels_per_sample = {
            "corr": float(np.clip(corr["pixels_per_sample"], 1.0, block_px ** 2)),
            "seeds": float(np.clip(corr["between_seeds_c"], 1.0, block_px ** 2))}


def evaluate_row(row: Learned, s: Series, labels: np.ndarray, keep: np.ndarray, grid: Any,
                 norm_t: Any, win: tuple[int, int, int, int], tbox: tuple[int, int, int, int],
                 px_area: float, block_px: int, n_resamples: int, seed: int
                 ) -> dict[str, Any]:
    from glacierkit.metrics.area import area_with_interval
    from glacierkit.metrics.calibration import expected_calibration_error

    r0, r1, c0, c1 = win
    pr = probabilities(row, model_logits(row.model, s, norm_t, win))
    h, w = labels.shape

    def full(a: np.ndarray, fill: float) -> np.ndarray:
        out = np.full((h, w), fill, dtype=np.float64)
        out[r0:r1, c0:c1] = a
        return out

    classes = full(pr["classes"], 0).astype(np.uint8)
    out: dict[str, Any] = outline_scores(classes, labels, keep, grid)
    correct = classes[keep] == labels[keep]
    out["ece_before"] = float(expected_calibration_error(full(pr["raw"], np.nan)[keep],
                                                        correct))
    out["ece_after_patches"] = float(expected_calibration_error(
        full(pr["conf_patches"], np.nan)[keep], correct))
    a0, a1, b0, b1 = tbox
    true_km2 = float((labels[keep] == 1).sum()) * px_area / 1e6
    out["true_area_km2"] = true_km2
    out["areas"] = {}
    for cal, cs in row.cals.items():
        out[f"ece_after_{cal}"] = float(expected_calibration_error(
            full(pr[f"conf_{cal}"], np.nan)[keep], correct))
        pg = np.where(keep, full(pr[f"p_{cal}"], np.nan), np.nan)[a0:a1, b0:b1]
        res = {}
        for key, method, est in INTERVALS:
            a = area_with_interval(pg, pixel_area_m2=px_area, block_px=block_px,
                                   method=method,
                                   pixels_per_sample=(1.0 if est is None else
                                                      cs.pixels_per_sample[est]),
                                   n_resamples=n_resamples, seed=seed)
            a["covered"] = bool(a["lower_km2"] <= true_km2 <= a["upper_km2"])
            res[key] = a
        out["areas"][cal] = res
        out[f"expected_area_km2_{cal}"] = res["bernoulli c=1"]["expected_km2"]
    out["n_dates"] = len(s.days)
    out["n_melt_dates"] = n_melt_dates(s)
    return out


def n_melt_dates(s: Series) -> int:
    """Dates inside the generator's melt window at full melt (weight 1)."""
    from glacierkit.dl.synthetic_series import SeriesParams, melt_weight

    p = SeriesParams()
    return int(sum(melt_weight(t.astype(datetime), p.melt_window_doy, p.melt_ramp_days) >= 1.0
                   for t in s.acquired))


def baseline_row(s: Series, labels: np.ndarray, keep: np.ndarray, grid: Any,
                 windows: dict[str, Any]) -> dict[str, Any] | None:
    from glacierkit.errors import InputError
    from glacierkit.series import sar_ratio, to_db

    try:
        res = sar_ratio(to_db(s.power, "power"), s.acquired, melt=windows["melt"],
                        reference=windows["reference"], threshold_db=-3.0)
    except InputError:
        return None   # a season without any date (protocol b)
    cls = res.classes.copy()
    cls[cls == 255] = 0     # never inside `keep` (layover/shadow), kept out of the scores
    out = outline_scores(cls, labels, keep, grid)
    out["n_dates"] = len(s.days)
    out["n_melt_dates"] = n_melt_dates(s)
    out["n_melt"], out["n_reference"] = int(res.melt_index.size), int(res.reference_index.size)
    return out


# ---------------------------------------------------------------------------- whole scene
def whole_scene(row: Learned, sc: Any, layout: Any, norm: Any, dates: list, series: Series,
                seed: int, opts: Options, work: Path, labels: np.ndarray, keep: np.ndarray,
                in_memory: dict[str, Any], win: tuple[int, int, int, int],
                onnx_cache: dict[str, tuple[bytes, float]]) -> dict[str, Any]:
    """Model file + predict_scene on the GeoTIFF series of one seed; test IoU vs in-memory.

    ``series`` is the in-memory series of the same seed and dates (what ``in_memory`` was
    computed from); the class maps are compared pixel by pixel on the test pixels. Tiles
    of ``opts.tile_sweep`` are run as well (overlap a quarter of the tile). The ONNX graph
    is exported once per architecture (``onnx_cache``: ``{arch: (bytes, seconds)}``).
    """
    from glacierkit.dl.bundle import bundle_from_model, save_bundle
    from glacierkit.dl.export import export_onnx
    from glacierkit.dl.predict import predict_scene
    from glacierkit.dl.synthetic_series import write_synthetic_series
    from glacierkit.io import open_raster
    from glacierkit.series import open_series

    if row.arch not in onnx_cache:
        t0 = time.perf_counter()
        onnx_cache[row.arch] = (export_onnx(row.model, example_size=(opts.patch, opts.patch)),
                                time.perf_counter() - t0)
    onnx, t_export = onnx_cache[row.arch]
    bundle = bundle_from_model(
        row.model, layout=layout.to_dict(), norm=norm.to_dict(), classes=CLASSES,
        calibration=row.cals["new-series"].calibration,
        tile={"size": opts.tile, "overlap": opts.overlap},
        training={"note": "synthetic Sentinel-1 series (glacierkit.dl.synthetic_series), "
                          "benchmarks/sar_series_validation.py"},
        onnx_bytes=onnx, task="mapping",
        series={"selection": {"protocol": row.protocol}})
    mfile = save_bundle(work / f"{row.name}.gkm", bundle, overwrite=True)
    sdir = work / f"series-{row.protocol}-seed{seed}"
    write_synthetic_series(sdir, sc.labels, sc.grid, dates, dem=sc.dem, seed=seed,
                           name_style="plain", overwrite=True)
    stack = open_series(sdir / "dates.csv", scale="power")
    r0, r1, c0, c1 = win
    mem = np.zeros(labels.shape, np.uint8)
    mem[r0:r1, c0:c1] = probabilities(row, model_logits(row.model, series,
                                                        norm.select(layout.time_mask),
                                                        win))["classes"]
    out: dict[str, Any] = {"model": row.name, "protocol": row.protocol, "seed": seed,
                           "n_dates": int(stack.n_dates), "iou_in_memory": in_memory["iou"],
                           "export_s": t_export, "tiles": []}
    for tile in (opts.tile, *opts.tile_sweep):
        overlap = opts.overlap if tile == opts.tile else tile // 4
        t1 = time.perf_counter()
        pr = predict_scene(mfile, {"s1": stack}, work / f"pred-{row.name}-{tile}",
                           backend="onnx", tile_size=tile, overlap=overlap,
                           write_probabilities=True, outlines=False, overwrite=True,
                           progress=False, threads=opts.threads)
        t_pred = time.perf_counter() - t1
        classes = open_raster(pr.paths["classes"]).data[0]
        classes = np.where(np.isfinite(classes), classes, IGNORE).astype(np.uint8)
        probs = open_raster(pr.paths["probabilities"]).data
        ok = keep & (classes != IGNORE)
        scores = outline_scores(np.where(classes == IGNORE, 0, classes).astype(np.uint8),
                                labels, ok, sc.grid)
        out["tiles"].append({
            "tile": tile, "overlap": overlap, "backend": pr.backend,
            "iou_whole_scene": scores["iou"], "f1_whole_scene": scores["f1"],
            "agreement_with_in_memory": float(np.mean(classes[ok] == mem[ok])),
            "glacier_probability_test_mean": float(np.nanmean(probs[1][keep])),
            "n_test_pixels_predicted": int(ok.sum()), "predict_s": t_pred})
    out.update(out["tiles"][0])
    return out


# ---------------------------------------------------------------------------- main
def run(opts: Options) -> dict[str, Any]:
    """The whole experiment; returns the report (also what ``--json`` writes).

    ``opts.threads`` sets torch's CPU threads for the run (restored afterwards) and ONNX
    Runtime's in the whole-scene check.
    """
    import torch

    threads = torch.get_num_threads()
    tmp = None
    if opts.out:
        work = Path(opts.out)
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="sar-series-")
        work = Path(tmp.name)
    try:
        if opts.threads:
            torch.set_num_threads(opts.threads)
        return _run(opts, work)
    finally:
        torch.set_num_threads(threads)
        if tmp is not None:
            tmp.cleanup()


def _run(opts: Options, work: Path) -> dict[str, Any]:
    import torch

    from glacierkit import __version__
    from glacierkit.dl.data import PatchDataset
    from glacierkit.dl.sources import NormStats, SourceGroup, SourceLayout, pixel_size_m
    from glacierkit.dl.split import make_split

    t_start = time.perf_counter()
    sc = load_scene(opts)
    grid = sc.grid
    labels = sc.labels.astype(np.uint8)
    px = pixel_size_m(grid)
    px_area = px[0] * px[1]
    block_px = max(1, round(BLOCK_M / px[0]))
    layout = SourceLayout((SourceGroup("s1", "sar", ("vv_db",), bands=("vv",), time=True),))
    split = make_split(labels.shape, kind="half", axis="cols", test_fraction=0.35,
                       val_fraction=0.2, patch_size=opts.patch, buffer_px=opts.buffer_px)
    print(f"scene {SCENE}: {labels.shape[0]} x {labels.shape[1]} px at {px[0]:.0f} m, glacier "
          f"{100 * labels.mean():.1f} %; split {split.describe()['fractions']}", flush=True)

    # -- training series (seed 0, protocol a) and the seed-0 protocol-b series (calibration)
    da = dates_a()
    train_a = simulate(sc, layout, da, TRAIN_SEED)
    train_b = simulate(sc, layout, dates_b(TRAIN_SEED), TRAIN_SEED)
    valid = train_a.stack.valid_mask()
    test = split.mask("test")
    keep = test & valid
    val = split.mask("val")
    norm = NormStats.fit([train_a.stack], masks=[split.mask("train")])
    norm_t = norm.select(layout.time_mask)
    t_data = time.perf_counter() - t_start

    print("training ...", flush=True)
    trained = train_models(opts, train_a, labels, split, norm, work)
    tconf = trained.pop("_config")
    t_train = time.perf_counter() - t_start - t_data

    # -- calibration on validation pixels, per model and protocol
    margin = 2 * opts.patch       # context around the evaluated part in window inference
    extra = {p: {k: [simulate(sc, layout, da if p == "a" else dates_b(sd), sd) for sd in seeds]
                 for k, seeds in (("cal", opts.cal_seeds), ("hold", opts.hold_seeds))}
             for p in ("a", "b")}
    rows: list[Learned] = []
    for arch in opts.archs:
        protos = ("a", "b") if arch == "utae" else ("a",)
        for proto in protos:
            cal_series = train_a if proto == "a" else train_b
            val_ds = PatchDataset([cal_series.stack], [labels], split, split="val",
                                  patch_size=opts.patch, norm=norm, stride=opts.patch // 2,
                                  min_labelled=0.25)
            row = Learned(f"{arch}-{proto}", arch, proto, trained[arch]["model"])
            calibrate(row, val_ds, {"train-series": [cal_series],
                                    "new-series": extra[proto]["cal"]},
                      extra[proto]["hold"], labels, val, norm_t, block_px, margin)
            rows.append(row)
    del extra
    t_cal = time.perf_counter() - t_start - t_data - t_train

    # -- evaluation seeds
    print(f"evaluating {opts.seeds} seeds ...", flush=True)
    win = window_of(test, margin)
    tbox = window_of(test, 0)
    per_seed: dict[str, list[dict[str, Any]]] = {r.name: [] for r in rows}
    base: dict[str, list[dict[str, Any] | None]] = {
        f"nr-{k}-{p}": [] for k in BASELINE_WINDOWS for p in ("a", "b")}
    first_series: dict[str, tuple[list, Series]] = {}
    t_eval0 = time.perf_counter()
    for seed in range(1, opts.seeds + 1):
        db = dates_b(seed)
        series = {"a": (da, simulate(sc, layout, da, seed)),
                  "b": (db, simulate(sc, layout, db, seed))}
        if seed == 1:
            first_series = series
        for row in rows:
            per_seed[row.name].append(evaluate_row(
                row, series[row.protocol][1], labels, keep, grid, norm_t, win, tbox,
                px_area, block_px, opts.n_resamples, seed))
        for k, wdw in BASELINE_WINDOWS.items():
            for p in ("a", "b"):
                base[f"nr-{k}-{p}"].append(baseline_row(series[p][1], labels, keep, grid, wdw))
    t_eval = time.perf_counter() - t_eval0

    # -- where the seed-to-seed area spread comes from: the same seeds without the per-date
    #    scene-wide radiometric jitter (protocol a; the generator's only scene-wide noise)
    ablation: dict[str, Any] = {}
    if opts.jitter_ablation:
        from glacierkit.dl.synthetic_series import SeriesParams

        n_ab = min(10, opts.seeds)
        pa = [r for r in rows if r.protocol == "a"]
        for jit in (SeriesParams().jitter_db, 0.0):
            params = SeriesParams(jitter_db=jit)
            errs: dict[str, list[float]] = {r.name: [] for r in pa}
            for seed in range(1, n_ab + 1):
                ser = simulate(sc, layout, da, seed, params)
                r0, r1, c0, c1 = win
                k = keep[r0:r1, c0:c1]
                for r in pa:
                    pg = probabilities(r, model_logits(r.model, ser, norm_t, win))
                    errs[r.name].append(float(pg["p_train-series"][k].sum()
                                              - (labels[r0:r1, c0:c1][k] == 1).sum())
                                        * px_area / 1e6)
            ablation[f"jitter_db={jit}"] = {
                name: {"mean_km2": float(np.mean(e)), "std_km2": float(np.std(e, ddof=1)),
                       "n": len(e)} for name, e in errs.items()}

    # -- whole-scene path (U-TAE model file, predict_scene on GeoTIFFs of seed 1)
    checks = []
    t_whole0 = time.perf_counter()
    if opts.whole_scene:
        print("whole-scene predict_scene check ...", flush=True)
        onnx_cache: dict[str, tuple[bytes, float]] = {}
        for row in rows:
            if row.arch != "utae":
                continue
            dates, ser = first_series[row.protocol]
            checks.append(whole_scene(row, sc, layout, norm, dates, ser, 1, opts, work,
                                      labels, keep, per_seed[row.name][0], win,
                                      onnx_cache))

    # -- report
    report: dict[str, Any] = {
        "synthetic": True,
        "glacierkit_version": __version__,
        "machine": {"cpus": os.cpu_count(), "processor": cpu_model(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads()},
        "options": dataclasses.asdict(opts),
        "scene": {"name": SCENE, "shape": list(labels.shape), "pixel_m": px[0],
                  "bounds": list(grid.bounds), "crs": str(grid.crs),
                  "glacier_share": float(labels.mean()), "pass": PASS, "year": YEAR,
                  "split": split.describe(),
                  "test_pixels": int(keep.sum()),
                  "test_layover_shadow_pixels": int((test & ~valid).sum()),
                  "true_test_area_km2": float((labels[keep] == 1).sum()) * px_area / 1e6,
                  "block_px": block_px},
        "protocol_a_dates": [str(d) for d in acquired(da)],
        "training": {**tconf, **{a: {k: v for k, v in trained[a].items() if k != "model"}
                                 for a in opts.archs}},
        "models": {}, "baselines": {}, "whole_scene": checks, "jitter_ablation": ablation,
        "timing_s": {"data": t_data, "training": t_train, "calibration_correlation": t_cal,
                     "evaluation": t_eval, "whole_scene": time.perf_counter() - t_whole0},
    }
    for row in rows:
        res = per_seed[row.name]
        rep: dict[str, Any] = {
            "arch": row.arch, "protocol": row.protocol,
            "train_s": trained[row.arch]["train_s"],
            "calibration": {k: cs.record for k, cs in row.cals.items()},
            "calibration_patches": row.cal_record_patches,
            "correlation": {k: cs.correlation for k, cs in row.cals.items()},
            "pixels_per_sample": {k: cs.pixels_per_sample for k, cs in row.cals.items()},
            "metrics": {k: summary([r[k] for r in res]) for k in
                        ("iou", "f1", "area_dev_pct", "area_dev_km2", "boundary_mean_m",
                         "boundary_median_m", "ece_before", "ece_after_patches", "n_dates",
                         *(f"ece_after_{c}" for c in CAL_SETS),
                         *(f"expected_area_km2_{c}" for c in CAL_SETS))},
            "coverage": {}, "area_error_km2": {}, "per_seed": res}
        melt = [r for r in res if r["n_melt_dates"] >= 1]
        rep["seeds_without_melt_date"] = [i + 1 for i, r in enumerate(res)
                                          if r["n_melt_dates"] == 0]
        rep["metrics_with_melt_date"] = {k: summary([r[k] for r in melt]) for k in
                                         ("iou", "f1", "area_dev_pct", "boundary_mean_m")}
        n = len(res)
        for cal in CAL_SETS:
            rep["coverage"][cal] = {}
            for key, _, _ in INTERVALS:
                a = [r["areas"][cal][key] for r in res]
                k = sum(x["covered"] for x in a)
                rep["coverage"][cal][key] = {
                    "covered": k, "n": n, "share": k / n, "wilson95": wilson(k, n),
                    "mean_width_km2": float(np.mean([x["upper_km2"] - x["lower_km2"]
                                                     for x in a])),
                    "mean_std_km2": float(np.mean([x["std_km2"] for x in a]))}
            err = np.array([r[f"expected_area_km2_{cal}"] - r["true_area_km2"] for r in res])
            rep["area_error_km2"][cal] = {
                "mean": float(err.mean()), "std": float(err.std(ddof=1)) if n > 1 else 0.0,
                "rmse": float(np.sqrt(np.mean(err ** 2)))}
        report["models"][row.name] = rep
    for key, res in base.items():
        ok = [r for r in res if r is not None]
        report["baselines"][key] = {
            "windows": BASELINE_WINDOWS[key.split("-")[1]]["label"],
            "protocol": key[-1], "n_failed": len(res) - len(ok),
            "metrics": {k: summary([r[k] for r in ok]) for k in
                        ("iou", "f1", "area_dev_pct", "area_dev_km2", "boundary_mean_m",
                         "boundary_median_m", "n_dates")} if ok else {},
            "per_seed": res}
    report["timing_s"]["total"] = time.perf_counter() - t_start
    return report


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# ---------------------------------------------------------------------------- tables
NAMES = {"icemapper3d": "ICEmapper3D", "convlstm": "ConvLSTM", "utae": "U-TAE"}


def _ms(m: dict[str, float], fmt: str = "{:.3f}") -> str:
    if not m or not m.get("n"):
        return "—"
    return (fmt + " ± " + fmt).format(m["mean"], m["std"])


def _short(method: str) -> str:
    return {"temperature": "T", "isotonic": "iso", "none": "none",
            "isotonic on p(glacier)": "iso-p"}.get(method, method)


def tables(rep: dict[str, Any]) -> str:
    lines = []
    n = rep["options"]["seeds"]
    lines.append(f"Test part: {rep['scene']['test_pixels']} px, true glacier area "
                 f"{rep['scene']['true_test_area_km2']:.2f} km²; mean ± std over {n} "
                 f"evaluation seeds (SYNTHETIC series).")
    lines.append("")
    lines.append("| method | protocol | dates | IoU | F1 | area dev. % | area dev. km² | "
                 "boundary mean m | boundary median m | ECE raw → calibrated: patches / "
                 "train series / new series / new series p(glacier) | train s |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for _key, b in rep["baselines"].items():
        m = b["metrics"]
        proto = "(a) regular" if b["protocol"] == "a" else "(b) irregular"
        fail = f" ({b['n_failed']}/{n} seeds without a date in a window)" if b["n_failed"] \
            else ""
        lines.append(
            f"| Nagler–Rott, {b['windows']}{fail} | {proto} | {_ms(m.get('n_dates'), '{:.1f}')}"
            f" | {_ms(m.get('iou'))} | {_ms(m.get('f1'))} | "
            f"{_ms(m.get('area_dev_pct'), '{:+.1f}')} | {_ms(m.get('area_dev_km2'), '{:+.2f}')}"
            f" | {_ms(m.get('boundary_mean_m'), '{:.0f}')} | "
            f"{_ms(m.get('boundary_median_m'), '{:.0f}')} | — | — |")
    for _key, r in rep["models"].items():
        m = r["metrics"]
        proto = "(a) regular" if r["protocol"] == "a" else "(b) irregular"
        lines.append(
            f"| {NAMES.get(r['arch'], r['arch'])} | {proto} | {_ms(m['n_dates'], '{:.1f}')} | "
            f"{_ms(m['iou'])} | {_ms(m['f1'])} | {_ms(m['area_dev_pct'], '{:+.1f}')} | "
            f"{_ms(m['area_dev_km2'], '{:+.2f}')} | {_ms(m['boundary_mean_m'], '{:.0f}')} | "
            f"{_ms(m['boundary_median_m'], '{:.0f}')} | {m['ece_before']['mean']:.3f} → "
            f"{m['ece_after_patches']['mean']:.3f} "
            f"({_short(r['calibration_patches']['method'])}) / "
            + " / ".join(f"{m[f'ece_after_{c}']['mean']:.3f} "
                         f"({_short(r['calibration'][c]['method'])})" for c in CAL_SETS)
            + f" | {r['train_s']:.0f} |")
    for _key, r in rep["models"].items():
        if r["seeds_without_melt_date"]:
            m = r["metrics_with_melt_date"]
            lines.append("")
            lines.append(f"{NAMES.get(r['arch'], r['arch'])} ({r['protocol']}): seeds "
                         f"{r['seeds_without_melt_date']} have no date in the melt window; "
                         f"over the {m['iou']['n']} others IoU {_ms(m['iou'])}, F1 "
                         f"{_ms(m['f1'])}, area dev. {_ms(m['area_dev_pct'], '{:+.1f}')} %.")
    lines.append("")
    lines.append("Area of the test part from calibrated glacier probabilities, 95 % intervals "
                 f"({rep['scene']['block_px']} px = {BLOCK_M / 1000:.1f} km blocks); coverage = "
                 "seeds whose interval holds the true area (Wilson 95 % range of the share), "
                 "and the mean interval width:")
    lines.append("")
    lines.append("| model | calibration | expected − true km² (mean ± std over seeds) | "
                 "c: corr / seeds | block-bootstrap | bernoulli-blocks c = 1 | "
                 "bernoulli-blocks c = corr | bernoulli-blocks c = seeds |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for _key, r in rep["models"].items():
        for cal in CAL_SETS:
            cov = r["coverage"][cal]
            cells = []
            for k, _, _ in INTERVALS:
                c = cov[k]
                lo, hi = c["wilson95"]
                cells.append(f"{c['covered']}/{c['n']} ({lo:.2f}–{hi:.2f}), "
                             f"{c['mean_width_km2']:.2f} km²")
            e = r["area_error_km2"][cal]
            pps = r["pixels_per_sample"][cal]
            name = f"{cal} ({r['calibration'][cal]['method']})"
            lines.append(f"| {NAMES.get(r['arch'], r['arch'])} ({r['protocol']}) | {name} | "
                         f"{e['mean']:+.2f} ± {e['std']:.2f} | "
                         f"{pps['corr']:.1f} / {pps['seeds']:.0f} | " + " | ".join(cells) + " |")
    if rep.get("jitter_ablation"):
        lines.append("")
        lines.append("Expected − true area of the test part (train-series calibration), mean ± "
                     "std over seeds, with and without the per-date radiometric jitter:")
        lines.append("")
        keys = list(rep["jitter_ablation"])
        lines.append("| model | " + " | ".join(keys) + " |")
        lines.append("|---|" + "---|" * len(keys))
        for name in rep["jitter_ablation"][keys[0]]:
            cells = [f"{rep['jitter_ablation'][k][name]['mean_km2']:+.2f} ± "
                     f"{rep['jitter_ablation'][k][name]['std_km2']:.2f} km² "
                     f"(n = {rep['jitter_ablation'][k][name]['n']})" for k in keys]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if rep["whole_scene"]:
        lines.append("")
        lines.append("| whole-scene check | protocol | dates | tile/overlap | IoU predict_scene | "
                     "IoU in memory | same class | predict s |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for c in rep["whole_scene"]:
            for t in c["tiles"]:
                lines.append(f"| {c['model']} (seed {c['seed']}) | ({c['protocol']}) | "
                             f"{c['n_dates']} | {t['tile']}/{t['overlap']} | "
                             f"{t['iou_whole_scene']:.4f} | {c['iou_in_memory']:.4f} | "
                             f"{100 * t['agreement_with_in_memory']:.2f} % | "
                             f"{t['predict_s']:.1f} |")
    lines.append("")
    t = rep["timing_s"]
    lines.append(f"Total {t['total']:.0f} s (evaluation {t['evaluation']:.0f} s) on "
                 f"{rep['machine']['cpus']} CPUs ({rep['machine']['processor']}), glacierkit "
                 f"{rep['glacierkit_version']}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="a ~2 min version: 3 epochs of 160 samples, 5 seeds, 2 + 2 "
                         "validation-only series, no tile sweep, no jitter ablation")
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (default 12)")
    ap.add_argument("--samples", type=int, default=None,
                    help="training patches per epoch (default 320)")
    ap.add_argument("--seeds", type=int, default=None,
                    help="evaluation / coverage seeds (default 20)")
    ap.add_argument("--no-whole-scene", action="store_true",
                    help="skip the predict_scene check")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch and ONNX Runtime CPU threads (default 1: on a shared 2-core "
                         "machine two intra-op threads ran up to 50x slower under load)")
    ap.add_argument("--out", default=None, help="keep checkpoints, model files and "
                    "GeoTIFFs here (default: a temporary folder)")
    ap.add_argument("--resume", action="store_true",
                    help="reuse (or continue) the training checkpoints in --out; the training "
                         "times then count this call only")
    ap.add_argument("--json", default=None, help="write the full report here")
    a = ap.parse_args(argv)
    opts = Options()
    if a.quick:
        opts = dataclasses.replace(opts, epochs=3, samples=160, seeds=5, n_resamples=2000,
                                   cal_seeds=CAL_SEEDS[:2], hold_seeds=HOLD_SEEDS[:2],
                                   tile_sweep=(), jitter_ablation=False)
    for name in ("epochs", "samples", "seeds", "threads", "out"):
        v = getattr(a, name)
        if v is not None:
            setattr(opts, name, v)
    opts.whole_scene = not a.no_whole_scene
    opts.resume = a.resume
    rep = run(opts)
    print()
    print(tables(rep))
    if a.json:
        Path(a.json).write_text(json.dumps(jsonable(rep), indent=1))
        print(f"\nwrote {a.json}")
    return rep


def jsonable(obj: Any) -> Any:
    from glacierkit._json import jsonable as _j

    return _j(obj)


if __name__ == "__main__":
    main()
