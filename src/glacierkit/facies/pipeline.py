"""``facies train`` / ``facies clean`` glue: labels → CV → confident learning → model file.

:func:`load_dataset` reads the labels of a :class:`~glacierkit.facies.config.FaciesConfig`
(form a: sampled spectra; form b: patches cut from the configured scenes) and maps them onto
*model classes* (the facies that occur in the labels, in vocabulary order).

:func:`train_facies` then

1. cross-validates the spectral baseline and the network, grouped by glacier (out-of-fold
   logits for every label; scores on all labels);
2. runs confident learning on the network's out-of-fold probabilities, prunes the flagged
   labels (trusted classes kept) and writes ``labels_checked.csv`` (every label with
   ``label_issue`` / ``pruned`` flags);
3. optionally (``[clean] evaluate``) measures macro-F1 before/after pruning with pruning
   decided on training glaciers only (:func:`glacierkit.facies.clean.evaluate_pruning`);
4. trains the final network on the retained labels of all glaciers, fits the calibration map
   on the out-of-fold logits of the retained labels (held out from the models that produced
   them), and writes ``model.gkm`` (weights, ONNX graph, layout, normalisation, classes,
   vocabulary, calibration) and ``report.json``.

Everything stated in the report: vocabulary and mapping table, class counts, CV notes
(one-class glaciers, classes missing from folds), pruned share per class, what was evaluated
on what.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from glacierkit._json import jsonable
from glacierkit.errors import InputError
from glacierkit.facies.clean import evaluate_pruning, find_label_issues
from glacierkit.facies.config import FaciesConfig
from glacierkit.facies.cv import grouped_cv
from glacierkit.facies.models import make_classifier, sample_weights
from glacierkit.facies.points import PointLabels, cut_patches, read_points
from glacierkit.facies.vocab import Vocabulary
from glacierkit.io.writer import check_output_path

log = logging.getLogger(__name__)

__all__ = ["FaciesDataset", "checked_labels_table", "clean_labels", "load_dataset",
           "train_facies", "write_csv"]


@dataclass
class FaciesDataset:
    """Labels ready for training.

    Attributes:
        X: ``(N, F)`` spectra or ``(N, C, P, P)`` patches (NaN nodata).
        y: ``(N,)`` model-class indices.
        classes: The ``K`` model class names (facies present in the labels).
        points: The labels (rows aligned with ``X``).
        layout: The :class:`~glacierkit.dl.sources.SourceLayout` a model file records.
        vocabulary: The vocabulary.
        notes: What loading did (points outside scenes, dropped rows).
        band_info: Per source group, per raw band ``{"dtype", "units", "scale"}`` of the
            scene files the patches were cut from (form b; empty for spectra read from a
            table, whose file types are unknown).
    """

    X: np.ndarray
    y: np.ndarray
    classes: list[str]
    points: PointLabels
    layout: Any
    vocabulary: Vocabulary
    notes: dict[str, Any]
    band_info: dict[str, Any] = field(default_factory=dict)

    @property
    def group_channels(self) -> tuple[int, ...]:
        """Channels per source group of the layout."""
        return tuple(self.layout.group_channels)

    def weights_fn(self, mode: str) -> Any:
        """``fn(indices) -> weights`` of a set of points (see ``sample_weights``)."""
        scenes = self.points.frame["scene"].to_numpy(str)
        return lambda idx: sample_weights(self.y[idx], scenes[idx], mode=mode)


def _vocabulary(labels: dict[str, Any]) -> Vocabulary:
    spec: dict[str, Any] = {}
    voc = labels.get("vocabulary")
    if isinstance(voc, str):
        spec["preset"] = voc
    elif isinstance(voc, dict):
        spec.update(voc)
    if labels.get("table"):
        spec["table"] = {**dict(spec.get("table") or {}), **dict(labels["table"])}
    return Vocabulary.from_spec(spec or None)


def _read(labels: dict[str, Any], path: str, vocabulary: Vocabulary,
          bands: Any) -> PointLabels:
    return read_points(path, vocabulary=vocabulary, label=labels.get("label"),
                       glacier=labels.get("glacier"), scene=labels.get("scene"),
                       date=labels.get("date"), bands=bands, geometry=labels.get("geometry"),
                       x=labels.get("x"), y=labels.get("y"),
                       crs=labels.get("crs", "EPSG:4326"),
                       polygon_spacing=labels.get("polygon_spacing"))


def load_dataset(cfg: FaciesConfig) -> FaciesDataset:
    """Read the labels (and cut patches for form b) of a config."""
    from glacierkit.dl.sources import SourceGroup, SourceLayout

    voc = _vocabulary(cfg.labels)
    notes: dict[str, Any] = {"vocabulary": voc.describe()}
    band_info = {}
    if cfg.form == "spectra":
        pts = _read(cfg.labels, cfg.labels["path"], voc, list(cfg.labels["bands"]))
        X = pts.features
        assert X is not None
        layout = SourceLayout((SourceGroup("optical", "optical", tuple(pts.feature_names)),))
        notes["read"] = pts.report
    else:
        from glacierkit.dl.sources import open_scene

        bands = tuple(cfg.patches["optical_bands"])
        with_dem = any("dem" in s for s in cfg.scenes)
        if with_dem and not all("dem" in s for s in cfg.scenes):
            raise InputError("either every [[scenes]] entry has a dem or none has (the model "
                             "needs the same channels everywhere).")
        layout = SourceLayout.standard(bands, dem=with_dem, hillshade=with_dem)
        shared = (_read(cfg.labels, cfg.labels["path"], voc, None)
                  if "path" in cfg.labels else None)
        parts_x, parts_p = [], []
        band_info: dict[str, Any] = {}
        notes["scenes"] = {}
        for s in cfg.scenes:
            pts = _read(cfg.labels, s["labels"], voc, None) if "labels" in s else shared
            assert pts is not None
            if "labels" not in s:
                pts = pts.select(pts.frame["scene"].to_numpy(str) == s["name"])
                if len(pts) == 0:
                    raise InputError(f"no label has scene == {s['name']!r}; name the scenes "
                                     f"as in the labels' scene column or give `labels` per "
                                     f"scene.")
            paths = {"optical": s["optical"]}
            if with_dem:
                paths["dem"] = s["dem"]
            scene = open_scene(layout, paths, name=s["name"])
            for g, bands in (scene.meta.get("bands") or {}).items():
                band_info.setdefault(g, bands)
            X, keep, counts = cut_patches(pts, scene, int(cfg.patches["size"]))
            sel = pts.select(keep)
            sel.frame["scene"] = s["name"]
            parts_x.append(X)
            parts_p.append(sel)
            notes["scenes"][s["name"]] = counts
        X = np.concatenate(parts_x)
        frame = pd.concat([p.frame for p in parts_p], ignore_index=True)
        pts = PointLabels(frame=frame, features=None, feature_names=(), crs=parts_p[0].crs,
                          vocabulary=voc, source="scenes", report=notes["scenes"])
    cap = cfg.labels.get("max_per_scene_class")
    if cap is not None:
        keep = _cap_per_cell(pts.frame, int(cap), seed=int(cfg.cv.get("seed", 0)))
        notes["subsampled"] = {"max_per_scene_class": int(cap), "kept": int(keep.size),
                               "of": len(pts)}
        pts = pts.select(keep)
        X = X[keep]
    present = np.unique(pts.targets)
    if present.size < 2:
        raise InputError(f"the labels hold one facies only ({voc.classes[int(present[0])]}); "
                         f"a classifier needs at least two.")
    y = np.searchsorted(present, pts.targets).astype(np.int64)
    classes = [voc.classes[int(i)] for i in present]
    notes["class_counts"] = pts.class_counts()
    notes["glaciers"] = sorted(set(pts.groups.tolist()))
    return FaciesDataset(X=X, y=y, classes=classes, points=pts, layout=layout,
                         vocabulary=voc, notes=notes,
                         band_info=band_info if cfg.form != "spectra" else {})


def training_domain(ds: FaciesDataset, idx: np.ndarray | None = None) -> dict[str, Any]:
    """The training domain of the labels' spectra or patches (all pixels of the patches).

    See :func:`glacierkit.dl.domain.domain_from_channels`; ``idx`` selects the labels the
    final model is trained on (default: all).
    """
    from glacierkit.dl.domain import domain_from_channels

    X = ds.X if idx is None else ds.X[idx]
    chans = np.moveaxis(np.asarray(X), 1, 0).reshape(X.shape[1], -1)
    what = "sampled spectra" if X.ndim == 2 else f"{X.shape[-1]}×{X.shape[-1]} px patches"
    return domain_from_channels(ds.layout, [chans], band_info=ds.band_info,
                                source=f"{what} of {X.shape[0]} training labels")


def _cap_per_cell(frame: pd.DataFrame, cap: int, *, seed: int) -> np.ndarray:
    """Sorted indices keeping at most ``cap`` rows per (scene, target) cell (seeded)."""
    if cap < 1:
        raise InputError(f"max_per_scene_class must be >= 1; got {cap}.")
    rng = np.random.default_rng(seed)
    keep = []
    for _, idx in frame.groupby(["scene", "target"]).indices.items():
        keep.append(idx if idx.size <= cap else rng.choice(idx, cap, replace=False))
    return np.sort(np.concatenate(keep))


def _factory(cfg: FaciesConfig, ds: FaciesDataset, kind: str) -> Any:
    m = cfg.model
    seed = int(cfg.cv["seed"])
    if kind in ("hgb", "mlp"):
        spec: dict[str, Any] = {"model": kind}
    else:
        spec = {"model": "cnn", **{k: m[k] for k in ("size", "epochs", "batch_size", "lr",
                                                     "focal_gamma", "label_smoothing",
                                                     "accelerator", "dropout", "augment",
                                                     "overrides") if k in m}}
    return lambda fold: make_classifier(spec, n_classes=len(ds.classes),
                                        group_channels=ds.group_channels, seed=seed + fold)


def clean_labels(cfg: FaciesConfig, ds: FaciesDataset, *, model: str = "cnn"
                 ) -> tuple[Any, Any]:
    """Grouped CV of ``model`` then confident learning: ``(CVResult, CleanResult)``."""
    cv = grouped_cv(ds.X, ds.y, ds.points.groups, _factory(cfg, ds, model),
                    n_classes=len(ds.classes), n_splits=int(cfg.cv["folds"]),
                    weight_fn=ds.weights_fn(cfg.model["weighting"]), names=ds.classes)
    cl = find_label_issues(ds.y, cv.probabilities, names=ds.classes,
                           prune_classes=cfg.clean.get("prune_classes"),
                           keep_classes=tuple(cfg.clean.get("keep_classes") or ()),
                           filter_by=cfg.clean["filter_by"],
                           frac_noise=float(cfg.clean.get("frac_noise", 1.0)))
    return cv, cl


def checked_labels_table(ds: FaciesDataset, cv: Any, cl: Any) -> pd.DataFrame:
    """Every label with its facies, out-of-fold prediction and the confident-learning flags."""
    fr = ds.points.frame.copy()
    fr["facies"] = [ds.classes[i] for i in ds.y]
    pred = cv.logits.argmax(axis=1)
    fr["oof_prediction"] = [ds.classes[i] for i in pred]
    fr["oof_confidence"] = cv.probabilities.max(axis=1)
    fr["label_issue"] = cl.flagged
    fr["pruned"] = cl.pruned
    return fr


def write_csv(df: pd.DataFrame, path: Path, overwrite: bool) -> None:
    """Write a table as CSV atomically (temporary file, then rename); refuse to overwrite."""
    from glacierkit.io.writer import publish_file

    check_output_path(path, overwrite=overwrite)
    tmp = path.with_name(f".{path.name}.tmp")
    df.to_csv(tmp, index=False)
    publish_file(tmp, path)


def train_facies(cfg: FaciesConfig, out_dir: str | Path, *, overwrite: bool = False,
                 progress: bool = False) -> dict[str, Any]:
    """Run the whole facies training (see the module docstring); returns the report dict.

    Outputs in ``out_dir`` (created): ``model.gkm``, ``report.json``,
    ``labels_checked.csv``.

    Raises:
        OutputExistsError: an output exists and ``overwrite`` is False (checked first).
        InputError, DatasetNotFoundError: invalid labels or config.
    """
    from glacierkit.dl.bundle import save_bundle
    from glacierkit.facies.models import patchnet_bundle
    from glacierkit.metrics.calibration import choose_calibration

    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    targets = {"model": out / "model.gkm", "report": out / "report.json",
               "labels": out / "labels_checked.csv"}
    for p in targets.values():
        check_output_path(p, overwrite=overwrite)
    ds = load_dataset(cfg)
    log.info("facies training: %d labels, %d glaciers, classes %s (%s)", ds.y.size,
             len(ds.notes["glaciers"]), ds.classes, cfg.form)
    report: dict[str, Any] = {"form": cfg.form, "classes": ds.classes,
                              "vocabulary": ds.vocabulary.to_dict(), "data": ds.notes,
                              "config": cfg.to_dict()}
    wfn = ds.weights_fn(cfg.model["weighting"])
    base_kind = cfg.model["baseline"]
    if base_kind != "none":
        cvb = grouped_cv(ds.X, ds.y, ds.points.groups, _factory(cfg, ds, base_kind),
                         n_classes=len(ds.classes), n_splits=int(cfg.cv["folds"]),
                         weight_fn=wfn, names=ds.classes)
        report["cv_baseline"] = {"model": base_kind, **cvb.summary()}
    cv, cl = clean_labels(cfg, ds, model="cnn")
    report["cv_cnn"] = {"model": f"cnn/{cfg.model['size']}", **cv.summary()}
    keep = cl.keep if cfg.clean["enabled"] else np.ones(ds.y.size, bool)
    report["clean"] = {"enabled": bool(cfg.clean["enabled"]), **cl.summary(),
                       "on": "out-of-fold probabilities of the network (grouped CV)"}
    if cfg.clean["enabled"] and cfg.clean.get("evaluate"):
        report["clean"]["evaluation"] = evaluate_pruning(
            ds.X, ds.y, ds.points.groups, _factory(cfg, ds, "cnn"), n_classes=len(ds.classes),
            names=ds.classes, weight_fn=wfn, n_splits=int(cfg.cv["folds"]),
            clean_kwargs={"prune_classes": cfg.clean.get("prune_classes"),
                          "keep_classes": tuple(cfg.clean.get("keep_classes") or ()),
                          "filter_by": cfg.clean["filter_by"]}, global_clean=cl)
    idx = np.flatnonzero(keep)
    net = _factory(cfg, ds, "cnn")(0)
    net.fit(ds.X[idx], ds.y[idx], wfn(idx), progress=progress)
    cal, cal_record = choose_calibration(cv.logits[idx], ds.y[idx],
                                         str(cfg.calibration["method"]),
                                         seed=int(cfg.cv["seed"]))
    report["calibration"] = {**cal_record, "fitted_on": "out-of-fold logits of the retained "
                                                         "labels (grouped CV)"}
    bundle = patchnet_bundle(net, layout=ds.layout, classes=ds.classes,
                             vocabulary=ds.vocabulary.to_dict(), calibration=cal,
                             training={"n_labels": int(idx.size),
                                       "pruned": int((~keep).sum()),
                                       "cv_macro_f1": cv.scores["macro_f1"],
                                       "form": cfg.form},
                             domain=training_domain(ds, idx))
    report["final_model"] = {"n_labels": int(idx.size), "history": net.history[-1:]}
    report["wall_time_s"] = time.perf_counter() - t0
    write_csv(checked_labels_table(ds, cv, cl), targets["labels"], overwrite)
    save_bundle(targets["model"], bundle, overwrite=overwrite)
    tmp = targets["report"].with_name(".report.json.tmp")
    tmp.write_text(json.dumps(jsonable(report), indent=1))
    from glacierkit.io.writer import publish_file

    publish_file(tmp, targets["report"])
    log.info("facies model written to %s (%.0f s)", targets["model"], report["wall_time_s"])
    return report
