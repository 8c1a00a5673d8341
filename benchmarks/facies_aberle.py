"""Facies on real labelled spectra (Aberle et al.): grouped CV, label cleaning, independent test.

Data: ``../shared/data/aberle_snow_ice_training_points`` (or ``$GLACIERKIT_DATA``):

* training tables ``Sentinel-2_SR_training_data.csv`` (11 728 labelled pixels) and
  ``Landsat_training_data.csv`` (8 161), four glaciers (Gulkana, Wolverine, South Cascade,
  Sperry), classes 1 snow, 2 shadowed snow, 3 ice, 4 rock, 5 water, mapped with the ``aberle``
  preset: shadowed snow → snow, rock → debris (model classes: ice, snow, debris, water);
* independent tables ``*_manually_classified_points.csv`` (Lemon Creek, Emmons — glaciers not
  in the training tables), labelled 1 / 0. We read them as **snow / no snow** (the binary
  snow map the source repository validates); they are never used for training or pruning.

Bands: the bands present in both the training and the independent table (Sentinel-2: B1–B9,
B8A, B11 and NDSI — B12 is missing from the independent table; Landsat: SR_B1–SR_B7 and NDSI —
ST_B10 is missing there).

Per sensor:

1. **Grouped-by-glacier CV** (leave one glacier out, 4 folds): macro-F1 of the spectral
   baseline (gradient boosting, ``hgb``) and of the small network (``cnn`` size ``pixel``,
   a per-pixel network with the same training code as the patch CNN), on all training labels
   (out-of-fold). Water occurs at one glacier only, so its fold cannot predict it; macro-F1
   is reported over all four classes and, separately, over ice/snow/debris.
2. **Confident learning** (cleanlab, ``prune_by_noise_rate``) on the network's out-of-fold
   probabilities: share of labels pruned per class (water kept as trusted).
3. **Effect of pruning, nested** (:func:`glacierkit.facies.clean.evaluate_pruning`, model
   ``--nested-model``): pruning decided on the training glaciers of each outer fold only,
   macro-F1 before/after on the held-out glaciers' unpruned labels.
4. **Independent points**: the final models (trained on all labels, and on the labels kept by
   step 2) predict the manual points; snow vs no-snow macro-F1 and accuracy.

Usage::

    python benchmarks/facies_aberle.py                 # both sensors (~10 min on 2 cores)
    python benchmarks/facies_aberle.py --sensors s2 --json /tmp/aberle.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from glacierkit._json import jsonable
from glacierkit.facies.clean import evaluate_pruning, find_label_issues
from glacierkit.facies.cv import grouped_cv, scores
from glacierkit.facies.models import make_classifier, sample_weights
from glacierkit.facies.points import read_points
from glacierkit.facies.vocab import Vocabulary

SENSORS = {
    "s2": ("Sentinel-2_SR", ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9",
                             "B11", "NDSI"]),
    "landsat": ("Landsat", ["SR_B1", "SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B6", "SR_B7",
                            "NDSI"]),
}


def data_dir() -> Path:
    env = os.environ.get("GLACIERKIT_DATA")
    base = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    return base / "aberle_snow_ice_training_points"


def run_sensor(key: str, args: argparse.Namespace) -> dict:
    prefix, bands = SENSORS[key]
    d = data_dir()
    voc = Vocabulary.from_preset("aberle")
    pts = read_points(d / f"{prefix}_training_data.csv", vocabulary=voc, bands=bands)
    present = np.unique(pts.targets)
    names = [voc.classes[i] for i in present]
    y = np.searchsorted(present, pts.targets)
    X, g = pts.features_for(bands), pts.groups
    scenes = pts.frame["scene"].to_numpy(str)

    def wfn(idx: np.ndarray) -> np.ndarray:
        return sample_weights(y[idx], scenes[idx])

    specs = {"hgb": {"model": "hgb"},
             "cnn": {"model": "cnn", "size": "pixel", "epochs": args.epochs,
                     "batch_size": 256, "accelerator": "cpu"}}

    def factory(kind: str):
        return lambda fold: make_classifier(specs[kind], n_classes=len(names),
                                            group_channels=(X.shape[1],), seed=fold)

    out: dict = {"n_labels": int(y.size), "classes": names, "bands": bands,
                 "class_counts": pts.class_counts(), "glaciers": sorted(set(g.tolist())),
                 "vocabulary": voc.describe()}
    three = [i for i, c in enumerate(names) if c != "water"]
    cvs = {}
    for kind in ("hgb", "cnn"):
        t = time.perf_counter()
        cv = grouped_cv(X, y, g, factory(kind), n_classes=len(names), n_splits=5,
                        weight_fn=wfn, names=names)
        cvs[kind] = cv
        f1 = {c: v["f1"] for c, v in cv.scores["per_class"].items()}
        out[f"cv_{kind}"] = {"macro_f1": cv.scores["macro_f1"],
                             "macro_f1_ice_snow_debris": float(np.mean([f1[names[i]]
                                                                        for i in three])),
                             "per_class_f1": f1, "per_glacier": cv.per_glacier,
                             "notes": cv.notes, "seconds": time.perf_counter() - t}
    cl = find_label_issues(y, cvs["cnn"].probabilities, names=names)
    out["clean"] = cl.summary()
    t = time.perf_counter()
    nested_kind = args.nested_model
    out["pruning_nested"] = evaluate_pruning(X, y, g, factory(nested_kind), n_classes=len(names),
                                             names=names, weight_fn=wfn, n_splits=5,
                                             inner_splits=3, global_clean=cl)
    out["pruning_nested"]["model"] = nested_kind
    out["pruning_nested"]["seconds"] = time.perf_counter() - t

    # independent manually classified points: snow (1) / no snow (0)
    man = read_points(d / f"{prefix}_manually_classified_points.csv",
                      vocabulary=Vocabulary(table={"1": "snow", "0": "ice"}), bands=bands)
    truth_snow = (man.frame["label"].astype(int).to_numpy() == 1).astype(int)
    Xm = man.features_for(bands)
    snow = names.index("snow")
    indep = {"n_points": int(truth_snow.size), "snow_share": float(truth_snow.mean()),
             "glaciers": sorted(set(man.groups.tolist())),
             "reading": "label 1 = snow, 0 = no snow"}
    for kind in ("hgb", "cnn"):
        for which, idx in (("all_labels", np.arange(y.size)),
                           ("pruned_labels", np.flatnonzero(cl.keep))):
            clf = factory(kind)(0)
            clf.fit(X[idx], y[idx], wfn(idx))
            pred_snow = (clf.predict_logits(Xm).argmax(axis=1) == snow).astype(int)
            s = scores(truth_snow, pred_snow, 2, ["no_snow", "snow"])
            indep[f"{kind}_{which}"] = {"macro_f1": s["macro_f1"], "accuracy": s["accuracy"]}
    out["independent"] = indep
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sensors", nargs="+", default=["s2", "landsat"], choices=list(SENSORS))
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--nested-model", default="hgb", choices=["hgb", "cnn"])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    res = {}
    for key in args.sensors:
        r = run_sensor(key, args)
        res[key] = r
        print(f"\n== {key}: {r['n_labels']} labels, classes {r['class_counts']}")
        for kind in ("hgb", "cnn"):
            c = r[f"cv_{kind}"]
            print(f"grouped CV {kind:4s}: macro-F1 {c['macro_f1']:.3f} (4 classes), "
                  f"{c['macro_f1_ice_snow_debris']:.3f} (ice/snow/debris); per class "
                  + ", ".join(f"{k} {v:.3f}" for k, v in c["per_class_f1"].items())
                  + f"  [{c['seconds']:.0f} s]")
        cl = r["clean"]
        print(f"confident learning: {100 * cl['pruned_share']:.1f} % pruned; "
              + ", ".join(f"{k} {100 * v['pruned_share']:.1f} %"
                          for k, v in cl["per_class"].items()))
        pn = r["pruning_nested"]
        print(f"nested ({pn['model']}): macro-F1 all held-out labels "
              f"{pn['before']['macro_f1_all_test_labels']:.3f} → "
              f"{pn['after']['macro_f1_all_test_labels']:.3f}; clean held-out labels "
              f"{pn['before']['macro_f1_clean_test_labels']:.3f} → "
              f"{pn['after']['macro_f1_clean_test_labels']:.3f}")
        ind = r["independent"]
        print(f"independent points ({ind['n_points']}, {ind['glaciers']}, snow share "
              f"{ind['snow_share']:.2f}): " + "; ".join(
                  f"{k} macro-F1 {v['macro_f1']:.3f} acc {v['accuracy']:.3f}"
                  for k, v in ind.items() if isinstance(v, dict)))
    if args.json:
        args.json.write_text(json.dumps(jsonable(res), indent=1))


if __name__ == "__main__":
    main()
