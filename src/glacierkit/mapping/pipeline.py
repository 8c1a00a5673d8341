"""Glacier outline mapping end to end: config → scenes → training → calibration → test.

:func:`train_mapping` runs ``glacierkit map train CONFIG``:

1. open every scene's sources (:func:`glacierkit.dl.sources.open_scene`; grids checked),
   burn the reference outlines into labels (0 off-glacier, 1 glacier, 255 ignore),
2. cut each scene into spatially disjoint train / val / test parts
   (:func:`glacierkit.dl.split.make_split`; no training patch touches a test pixel),
3. fit the normalisation statistics and record the training domain (per channel: source
   dtype, units/scale, robust percentiles; :mod:`glacierkit.dl.domain`) on the training parts
   only,
4. train the configured GlaViTU strategy (:func:`glacierkit.dl.strategies.train_strategy`),
5. fit the calibration map on validation pixels (temperature scaling or isotonic regression;
   ``auto`` picks the one with the lower ECE on a held-out half of the validation pixels),
6. export ONNX, write one model file per trained model (``model.gkm`` or
   ``model-<region>.gkm``),
7. predict every scene in full (tiled, as ``map predict`` does) and evaluate on its **test
   part only** against the reference (IoU, F1, area and boundary deviation, ECE before and
   after calibration, reliability diagram), next to the classic threshold baseline on the
   same pixels,
8. write ``report.json``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from glacierkit import __version__
from glacierkit._json import jsonable
from glacierkit.errors import InputError, OutputExistsError
from glacierkit.io import Grid, open_raster
from glacierkit.mapping.baseline import baseline_classes
from glacierkit.mapping.config import MappingConfig
from glacierkit.metrics.calibration import (
    expected_calibration_error,
    reliability_bins,
)
from glacierkit.metrics.outlines import evaluate_outlines

log = logging.getLogger(__name__)

CLASSES = ["off_glacier", "glacier"]
IGNORE = 255


@dataclasses.dataclass
class PreparedScene:
    """A scene ready for training and evaluation."""

    stack: Any  # glacierkit.dl.sources.SceneStack
    labels: np.ndarray  # uint8 (H, W): 0/1, 255 ignore
    split: Any  # glacierkit.dl.split.SplitMap
    sources: dict[str, Any]  # paths per group; a SeriesStack for a time-series group


def prepare_scenes(cfg: MappingConfig) -> tuple[Any, list[PreparedScene]]:
    """Open the config's scenes, burn labels and cut the spatial split.

    Returns:
        ``(layout, scenes)``.
    """
    from glacierkit.dl.labels import labels_from_outlines, labels_from_raster, mask_invalid
    from glacierkit.dl.sources import SourceLayout, open_scene
    from glacierkit.dl.split import make_split

    layout = SourceLayout.from_spec(cfg.layout)
    out = []
    split_kw = {f.name: getattr(cfg.split, f.name) for f in dataclasses.fields(cfg.split)}
    for sc in cfg.scenes:
        sources: dict[str, Any] = {}
        for g, v in sc.sources.items():
            group = layout.group(g)
            if group.time:
                sources[g] = open_series_source(v, group, cfg.series.selection())
            else:
                sources[g] = [str(p) for p in v]
        stack = open_scene(layout, sources, align=sc.align, name=sc.name, region=sc.region)
        if sc.outlines is not None:
            labels = labels_from_outlines(sc.outlines, stack.grid)
        else:
            labels = labels_from_raster(sc.labels, stack.grid)  # type: ignore[arg-type]
        labels = mask_invalid(labels, stack)
        split = make_split(stack.shape, **split_kw, patch_size=cfg.train.patch_size)
        out.append(PreparedScene(stack, labels, split, sources))
        d = split.describe()
        parts = ", ".join(f"{k} {100 * v:.0f} %" for k, v in d["fractions"].items())
        how = " along ".join(str(d[k]) for k in ("kind", "axis") if d.get(k))
        log.info("scene %s: %d×%d px, glacier share %.1f %% of labelled pixels; split%s: %s "
                 "of the scene (buffer %s px)", sc.name, *stack.shape,
                 100 * float(np.mean(labels[labels != IGNORE] == 1)) if
                 np.any(labels != IGNORE) else 0.0, f" ({how})" if how else "", parts,
                 d["buffer_px"])
    return layout, out


def open_series_source(paths: Any, group: Any, selection: Any) -> Any:
    """The :class:`~glacierkit.series.stack.SeriesStack` of a time-series group's source.

    ``paths``: one folder, glob pattern or CSV table (``path,date[,pass]``), or a list of
    files; the files' scale is the group's (``scale``, never guessed); the selection picks
    the pass and the dates (:class:`glacierkit.series.select.SeriesSelection`).
    """
    from glacierkit.series.select import open_selected

    items = list(paths) if isinstance(paths, list | tuple) else [paths]
    source = str(items[0]) if len(items) == 1 else [str(p) for p in items]
    return open_selected(source, scale=group.scale or "power", selection=selection)


def _train_config(cfg: MappingConfig) -> Any:
    from glacierkit.dl.train import TrainConfig

    t = cfg.train
    return TrainConfig(arch=cfg.model.arch, size=cfg.model.size, dropout=cfg.model.dropout,
                       overrides=dict(cfg.model.overrides), n_classes=len(CLASSES),
                       epochs=t.epochs, max_steps=t.max_steps, batch_size=t.batch_size,
                       lr=t.lr, weight_decay=t.weight_decay, focal_gamma=t.focal_gamma,
                       seed=t.seed, accelerator=t.accelerator, progress=t.progress,
                       deterministic=t.deterministic,
                       p_unknown=t.p_unknown if t.strategy == "region_encoding" else 0.0,
                       restart_epochs=max(1, t.epochs // 2))


def _datasets(cfg: MappingConfig, scenes: list[PreparedScene], norm: Any):
    """The ``make_datasets(region, cond_spec)`` callable of the strategies."""
    from glacierkit.dl.data import Augment, PatchDataset

    a = cfg.augment
    augment = Augment(flips=a.flips, rot90=a.rot90, noise_std=a.noise_std, gamma=a.gamma,
                      group_dropout=a.group_dropout, date_offset_std=a.date_offset_std,
                      date_jitter_days=a.date_jitter_days, date_dropout=a.date_dropout)
    p = cfg.train.patch_size

    def make(region: str | None, cond: Any) -> tuple[Any, Any]:
        chosen = [s for s in scenes if region is None or s.stack.region == region]
        if not chosen:
            raise InputError(f"no scene of region {region!r}.")
        stacks = [s.stack for s in chosen]
        labels = [s.labels for s in chosen]
        splits = [s.split for s in chosen]
        train = PatchDataset(stacks, labels, splits, split="train", patch_size=p, norm=norm,
                             cond=cond, augment=augment,
                             samples_per_epoch=cfg.train.samples_per_epoch,
                             seed=cfg.train.seed, min_labelled=0.5)
        val = PatchDataset(stacks, labels, splits, split="val", patch_size=p, norm=norm,
                           cond=cond, stride=p // 2, seed=cfg.train.seed, min_labelled=0.25)
        return train, val

    return make


def _eval_dataset(scenes: list[PreparedScene], split: str, patch: int, norm: Any,
                  cond: Any) -> Any:
    from glacierkit.dl.data import PatchDataset

    return PatchDataset([s.stack for s in scenes], [s.labels for s in scenes],
                        [s.split for s in scenes], split=split, patch_size=patch, norm=norm,
                        cond=cond, stride=patch // 2, min_labelled=0.25)


def fit_calibration(model: Any, val_ds: Any, method: str, *, seed: int = 0
                    ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Fit the calibration map on validation pixels.

    ``auto`` fits temperature scaling and isotonic regression on one random half of the
    validation pixels, scores their ECE on the other half and refits the winner on all of
    them (the test part is never used to choose).

    Returns:
        ``(map.to_dict() or None, record)``.
    """
    from glacierkit.dl.train import predict_logits

    if method == "none":
        return None, {"method": "none"}
    z, y = predict_logits(model, val_ds, max_pixels=200_000, seed=seed)
    if y.size < 100:
        raise InputError(f"only {y.size} labelled validation pixels: too few to calibrate; "
                         f"enlarge val_fraction or set [calibration] method = \"none\".")
    from glacierkit.metrics.calibration import choose_calibration

    return choose_calibration(z, y, method, seed=seed)


def _test_ece(probabilities: np.ndarray, confidence: np.ndarray, ref: np.ndarray,
              test: np.ndarray) -> dict[str, Any]:
    """ECE of raw (max probability) and calibrated confidence on the test pixels."""
    valid = test & (ref != IGNORE) & np.isfinite(confidence) & np.all(
        np.isfinite(probabilities), axis=0)
    p = probabilities[:, valid]
    correct = p.argmax(axis=0) == ref[valid]
    raw = p.max(axis=0)
    cal = confidence[valid]
    before, after = reliability_bins(raw, correct), reliability_bins(cal, correct)
    return {"ece_before": expected_calibration_error(raw, correct),
            "ece_after": expected_calibration_error(cal, correct), "n_pixels": int(valid.sum()),
            "bins_before": before, "bins_after": after}


def _masked(classes: np.ndarray, keep: np.ndarray) -> np.ndarray:
    out = classes.astype(np.uint8, copy=True)
    out[~keep] = IGNORE
    return out


def evaluate_on_test(pred: np.ndarray, scene: PreparedScene) -> dict[str, Any]:
    """IoU, F1, area and boundary deviation of ``pred`` (H, W) on the scene's test part."""
    test = scene.split.mask("test") & (scene.labels != IGNORE)
    grid: Grid = scene.stack.grid
    return evaluate_outlines((_masked(pred, test), grid), (_masked(scene.labels, test), grid))


def area_of_test_part(classes: np.ndarray, confidence: np.ndarray, scene: PreparedScene, *,
              block_m: float = 3200.0) -> dict[str, Any]:
    """Glacier area of the scene's test part (km²), next to the reference's.

    Expected from the calibrated probabilities, with ICEmapper's block-bootstrap 95 %
    interval (blocks of ``block_m``, at most the test part's bounding size).
    """
    from glacierkit.metrics.area import area_with_interval
    from glacierkit.metrics.outlines import pixel_area_m2

    test = scene.split.mask("test") & (scene.labels != IGNORE)
    p = np.where(classes == 1, confidence, 1.0 - confidence).astype(np.float64)
    p[~test | (classes == IGNORE) | ~np.isfinite(p)] = np.nan
    px = pixel_area_m2(scene.stack.grid)
    out: dict[str, Any] = {"reference_km2": float((scene.labels[test] == 1).sum()) * px / 1e6}
    if not np.isfinite(p).any():
        return out
    block = max(1, min(round(block_m / np.sqrt(px)), min(p.shape)))
    out.update(area_with_interval(p, pixel_area_m2=px, block_px=block,
                                  method="block-bootstrap"))
    return out


def baseline_on_scene(scene: PreparedScene) -> tuple[np.ndarray, dict[str, Any]]:
    """The classic baseline without training on the scene's raw values.

    Optical scenes: the band-ratio / NDSI / brightness threshold
    (:func:`glacierkit.mapping.baseline.baseline_classes`). Time series: the Nagler–Rott
    backscatter ratio (:func:`glacierkit.series.baseline.sar_ratio`, melt July–August over
    January–February, −3 dB) on the first backscatter channel in dB.
    """
    layout = scene.stack.layout
    if layout.timed:
        from glacierkit.series.baseline import sar_ratio

        sar = [g for g in layout.groups if g.time and g.kind == "sar"]
        if not sar:
            raise InputError("the classic series baseline needs a SAR backscatter series.")
        db = scene.stack.group_data(sar[0].name)[:, 0]
        res = sar_ratio(db, np.asarray(scene.stack.meta["acquired"], dtype="datetime64[s]"))
        info = {"method": "sar-ratio", "threshold_db": res.threshold_db,
                "melt_dates": len(res.melt_index),
                "reference_dates": len(res.reference_index)}
        return res.classes, info
    names = [g for g in layout.group_names if layout.group(g).kind == "optical"]
    if not names:
        raise InputError("the classic baseline needs an optical source group.")
    g = layout.group(names[0])
    data = scene.stack.data[layout.slices[names[0]]]
    bands = dict(zip(g.channels, data, strict=True))
    valid = np.all(np.isfinite(data), axis=0)
    return baseline_classes(bands, valid=valid)


def training_domain(scenes: list[PreparedScene]) -> dict[str, Any]:
    """The training domain of the scenes' channels on their training parts.

    Per channel: source dtype and units of the files (``stack.meta["bands"]``), percentiles
    0.5 / 50 / 99.5 and the valid share (:func:`glacierkit.dl.domain.domain_from_channels`).
    """
    from glacierkit.dl.domain import domain_from_channels

    info: dict[str, list[dict[str, Any]]] = {}
    for s in scenes:
        for g, bands in (s.stack.meta.get("bands") or {}).items():
            info.setdefault(g, list(bands))
    layout = scenes[0].stack.layout
    names = [s.stack.name for s in scenes]
    if layout.timed:
        if layout.part(False) is not None:
            raise InputError("mixing single-date and time-series groups in one layout is not "
                             "supported by the mapping models; make every group a series.")
        # Every date of every scene: the dates are stacked along the rows.
        arrays = [np.concatenate(list(s.stack.series), axis=1) for s in scenes]
        masks = [np.tile(s.split.mask("train"), (s.stack.n_dates, 1)) for s in scenes]
        return domain_from_channels(layout, arrays, masks=masks, band_info=info,
                                    source=f"every date of the training parts of {names}")
    return domain_from_channels(layout, [s.stack.data for s in scenes],
                                masks=[s.split.mask("train") for s in scenes],
                                band_info=info, source=f"training parts of {names}")


def _check_run_dir(out: Path, overwrite: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    clash = [p.name for p in (out / "report.json", out / "model.gkm") if p.exists()]
    clash += [p.name for p in out.glob("model-*.gkm")]
    if clash and not overwrite:
        raise OutputExistsError(
            f"run folder {out} already holds {sorted(clash)} of an earlier run.",
            hint="Replace them with [output] overwrite = true (config.overwrite), write "
                 "elsewhere ([output] dir), or continue an interrupted run with resume=True.",
            cli_hint="Replace them with --overwrite ([output] overwrite = true), write "
                     "elsewhere with -o/--out DIR ([output] dir), or continue an interrupted "
                     "run with --resume.")


def train_mapping(cfg: MappingConfig, *, resume: bool = False) -> dict[str, Any]:
    """Run ``glacierkit map train``: train, calibrate, export and test (see module doc).

    Args:
        cfg: A validated config (:func:`glacierkit.mapping.config.load_config`).
        resume: Continue interrupted training from the run folder's last checkpoints.

    Returns:
        The report (also written to ``<out>/report.json``): per model file, the training
        history, calibration choice, and per scene the test-part metrics of the model and of
        the classic baseline.

    Raises:
        OutputExistsError: The run folder holds products of an earlier run and neither
            ``cfg.overwrite`` nor ``resume`` is set (checked before any work).
    """
    out = Path(cfg.out_dir)
    _check_run_dir(out, cfg.overwrite or resume)
    import torch

    from glacierkit.dl.bundle import bundle_from_model, save_bundle
    from glacierkit.dl.export import export_onnx
    from glacierkit.dl.predict import predict_scene
    from glacierkit.dl.sources import NormStats
    from glacierkit.dl.strategies import SHARED, train_strategy
    from glacierkit.viz.reliability import reliability_diagram

    t0 = time.perf_counter()
    torch.manual_seed(cfg.train.seed)
    layout, scenes = prepare_scenes(cfg)
    norm = NormStats.fit([s.stack for s in scenes], masks=[s.split.mask("train")
                                                          for s in scenes])
    domain = training_domain(scenes)
    tcfg = _train_config(cfg)
    series_meta = None
    if layout.timed:
        n_dates = sorted({s.stack.n_dates for s in scenes})
        if cfg.model.arch in ("icemapper3d", "convlstm"):
            if len(n_dates) > 1:
                raise InputError(f"{cfg.model.arch} takes a fixed number of dates but the "
                                 f"scenes' series have {n_dates}; select the same number per "
                                 f"scene ([series] dates_per_year, year).")
            tcfg = tcfg.replace(overrides={**tcfg.overrides, "time_steps": n_dates[0]})
        series_meta = {"selection": cfg.series.selection().to_dict(),
                       "reference": "days since 1 January of the first date's year",
                       "training_dates": n_dates}
    regions = sorted({s.stack.region for s in scenes if s.stack.region is not None})
    make = _datasets(cfg, scenes, norm)
    res = train_strategy(cfg.train.strategy, make, regions=regions, cfg=tcfg,
                         out_dir=out / "training", group_channels=layout.group_channels,
                         finetune_epochs=cfg.train.finetune_epochs,
                         p_unknown=cfg.train.p_unknown, resume="auto" if resume else False,
                         overwrite=cfg.overwrite)
    train_s = time.perf_counter() - t0
    report: dict[str, Any] = {
        "glacierkit_version": __version__, "config": cfg.to_dict(),
        "layout": layout.to_dict(), "norm": norm.to_dict(), "strategy": cfg.train.strategy,
        "strategy_metrics": res.metrics, "train_seconds": train_s, "models": {},
        "scenes": {}}
    model_files: dict[str, Path] = {}
    for key, model in res.models.items():
        name = "model.gkm" if key == SHARED else f"model-{key}.gkm"
        spec = res.cond_specs[key]
        regions_of = [s for s in scenes if key == SHARED or s.stack.region == key]
        _, val = make(None if key == SHARED else key, spec)
        cal, cal_record = fit_calibration(model, val, cfg.calibration.method,
                                          seed=cfg.train.seed)
        onnx = export_onnx(model, group_channels=layout.group_channels, cond_dim=spec.dim,
                           example_size=(cfg.train.patch_size, cfg.train.patch_size))
        fit = res.fits.get(key)
        training = {"config": tcfg.to_dict(), "strategy": cfg.train.strategy,
                    "group_dropout": cfg.augment.group_dropout,
                    "history": fit.history if fit is not None else None,
                    "scenes": [s.stack.name for s in regions_of],
                    "confidence": cfg.calibration.confidence}
        bundle = bundle_from_model(model, layout=layout.to_dict(), norm=norm.to_dict(),
                                   classes=CLASSES, cond=spec.to_dict(), calibration=cal,
                                   tile={"size": cfg.inference.tile_size,
                                         "overlap": cfg.inference.overlap},
                                   training=training, onnx_bytes=onnx, task="mapping",
                                   domain=domain, series=series_meta)
        path = save_bundle(out / name, bundle, overwrite=True)
        model_files[key] = path
        report["models"][name] = {"calibration": cal_record,
                                  "history": training["history"]}
    for scene in scenes:
        key = res.model_key(scene.stack.region)
        sdir = out / f"test-{scene.stack.name}"
        sdir.mkdir(exist_ok=True)
        pr = predict_scene(model_files[key], scene.sources, sdir, backend="auto",
                           region=(scene.stack.region if res.cond_specs[key].kind == "region"
                                   else None), write_probabilities=True,
                           tta=cfg.inference.tta, overwrite=True,
                           progress=cfg.train.progress)
        classes = open_raster(pr.paths["classes"]).data[0]
        classes = np.where(np.isfinite(classes), classes, IGNORE).astype(np.uint8)
        probs = open_raster(pr.paths["probabilities"]).data
        conf = open_raster(pr.paths["confidence"]).data[0]
        test = scene.split.mask("test")
        metrics = evaluate_on_test(classes, scene)
        ece = _test_ece(probs, conf, scene.labels, test)
        png = reliability_diagram(ece.pop("bins_before"), ece.pop("bins_after"),
                                  path=sdir / "reliability.png", overwrite=True,
                                  title=f"{scene.stack.name}: test part")
        area = area_of_test_part(classes, conf, scene)
        base, base_info = baseline_on_scene(scene)
        base_metrics = evaluate_on_test(base, scene)
        report["scenes"][scene.stack.name] = {
            "model_file": model_files[key].name, "predict": pr.timing,
            "test_fraction_of_scene": float(test.mean()),
            "model": metrics, "calibration": ece, "reliability_png": str(png),
            "area": area,
            "baseline": {"method": base_info, "metrics": base_metrics}}
        log.info("%s test part: IoU %.3f (baseline %.3f), ECE %.3f → %.3f",
                 scene.stack.name, metrics["iou"], base_metrics["iou"], ece["ece_before"],
                 ece["ece_after"])
    report["total_seconds"] = time.perf_counter() - t0
    (out / "report.json").write_text(json.dumps(jsonable(report), indent=2))
    return report
