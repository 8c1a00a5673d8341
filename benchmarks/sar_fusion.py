"""SAR fusion for glacier outlines: optical-only vs optical+SAR+coherence, and a dropped group.

Writes a synthetic scene (EPSG:32645, 30 m, ``--size ROWS COLS`` px, default 192 × 384) with
five elliptical glaciers spread along the columns, so that every part of the column-wise
"half" split (train | val | test strips) holds glacier. The lower (southern) ~30 % of each
glacier's area is a **debris-covered tongue**: its optical bands are drawn from the *rock*
distribution, so optically it cannot be told from the surroundings. The SAR backscatter
(VV, VH) and coherence come from :func:`glacierkit.dl.synthetic.write_synthetic_sar` on the
*true* labels, so they still separate glacier (dark, decorrelated) from rock everywhere,
debris included. (On real debris-covered ice the SAR contrast is weaker; this is the
favourable, idealised case in which fusion *can* help.)

Two models are trained with :func:`glacierkit.mapping.pipeline.train_mapping` (tiny GlaViTU,
a short CPU schedule, ``group_dropout = 0.3``, same split and seed):

* ``optical``: layout ``optical`` only;
* ``fused``: layout ``optical + sar + coherence``.

Rows of the printed table, all on the split's test strip:

1. optical-only model (IoU / F1 from the run's ``report.json``);
2. fused model with all groups (``report.json``);
3. fused model with the SAR and coherence groups *left out* at inference:
   :func:`glacierkit.dl.predict.predict_scene` with only the optical source, which runs the
   missing groups as absent (``present = 0``) because the model was trained with group
   dropout; IoU / F1 from :func:`glacierkit.mapping.pipeline.evaluate_on_test` on the split
   recomputed by :func:`~glacierkit.mapping.pipeline.prepare_scenes`.

For every row the script also predicts the full scene with ONNX Runtime itself and reports the
recall inside the debris zone of the test strip (all debris pixels are glacier, so the IoU of
the glacier class restricted to the zone equals its recall), and the recomputed test IoU as a
cross-check of ``report.json``.

Usage::

    python benchmarks/sar_fusion.py --out /tmp/sar-fusion
    python benchmarks/sar_fusion.py --out /tmp/sar-fusion --epochs 6 --samples 384 --json r.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

DEBRIS_SHARE = 0.30
RES = 30.0
ORIGIN = (480000.0, 3100000.0)
CRS = "EPSG:32645"


def make_scene(root: Path, shape: tuple[int, int], *, seed: int = 0) -> dict[str, Any]:
    """Write ``rgb.tif``, ``nir.tif``, ``labels.tif``, synthetic SAR and coherence; return
    the paths, the labels and the debris mask."""
    from affine import Affine

    from glacierkit.dl.synthetic import write_synthetic_sar
    from glacierkit.io import Grid, write_raster

    root.mkdir(parents=True, exist_ok=True)
    h, w = shape
    grid = Grid(crs=CRS, transform=Affine(RES, 0, ORIGIN[0], 0, -RES, ORIGIN[1]), shape=shape)
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint8)
    debris = np.zeros(shape, bool)
    n = 5
    for i in range(n):
        cx = (i + 0.5) * w / n + rng.uniform(-0.03, 0.03) * w
        cy = h * rng.uniform(0.42, 0.58)
        ax, ay = 0.07 * w * rng.uniform(0.85, 1.1), 0.32 * h * rng.uniform(0.85, 1.1)
        g = ((cols - cx) / ax) ** 2 + ((rows - cy) / ay) ** 2 <= 1.0
        labels[g] = 1
        # debris tongue: the southernmost DEBRIS_SHARE of this glacier's pixels
        cut = np.quantile(rows[g], 1.0 - DEBRIS_SHARE)
        debris |= g & (rows >= cut)
    clean = (labels == 1) & ~debris

    def band(ice: float, rock: float) -> np.ndarray:
        return (np.where(clean, ice, rock) + rng.uniform(-0.03, 0.03, shape)).astype(np.float32)

    rgb = np.stack([band(0.60, 0.20), band(0.62, 0.22), band(0.66, 0.21)])
    nir = band(0.50, 0.28)[None]
    dem = (5000.0 + 600.0 * np.exp(-(((rows - h / 2) / (0.6 * h)) ** 2
                                      + ((cols - w / 2) / (0.6 * w)) ** 2))
           + 2.0 * cols).astype(np.float32)
    paths = {
        "rgb": write_raster(root / "rgb.tif", rgb, grid, band_names=["red", "green", "blue"],
                            overwrite=True),
        "nir": write_raster(root / "nir.tif", nir, grid, band_names=["nir"], overwrite=True),
        "labels": write_raster(root / "labels.tif", labels, grid, band_names=["class"],
                               overwrite=True),
    }
    sar = write_synthetic_sar(root, labels, grid, dem=dem, seed=seed, overwrite=True)
    paths.update(sar)
    return {"paths": paths, "labels": labels, "debris": debris, "grid": grid}


def make_config(run: Path, scene: dict[str, Any], *, fused: bool, patch: int, samples: int,
                epochs: int, seed: int) -> Any:
    """A validated :class:`~glacierkit.mapping.config.MappingConfig` for one layout."""
    from glacierkit.mapping.config import parse_config

    p = scene["paths"]
    layout: dict[str, Any] = {"optical": ["red", "green", "blue", "nir"]}
    sources: dict[str, Any] = {"optical": [str(p["rgb"]), str(p["nir"])]}
    if fused:
        layout |= {"sar": ["vv", "vh"], "coherence": True}
        sources |= {"sar": str(p["sar"]), "coherence": str(p["coherence"])}
    raw = {
        "output": {"dir": str(run), "overwrite": True},
        "layout": layout,
        "scenes": [{"name": "synth", "region": "himalaya", "labels": str(p["labels"]),
                    "sources": sources}],
        "split": {"kind": "half", "axis": "cols", "test_fraction": 0.3,
                  "val_fraction": 0.2, "seed": seed},
        "model": {"arch": "glavitu", "size": "tiny"},
        "train": {"patch_size": patch, "samples_per_epoch": samples, "epochs": epochs,
                  "batch_size": 16, "lr": 0.002, "seed": seed, "accelerator": "cpu",
                  "progress": False},
        "augment": {"group_dropout": 0.3},
        "calibration": {"method": "auto"},
        "inference": {"tile_size": 128, "overlap": 32},
    }
    return parse_config(raw, base=run.parent)


def predict_and_score(model: Path, sources: dict[str, Any], out: Path, prepared: Any,
                      debris: np.ndarray) -> dict[str, Any]:
    """ONNX prediction of the whole scene, test-strip metrics and debris-zone recall."""
    from glacierkit.dl.predict import predict_scene
    from glacierkit.io import open_raster
    from glacierkit.mapping.pipeline import IGNORE, evaluate_on_test

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    pr = predict_scene(model, sources, out, backend="onnx", overwrite=True, progress=False,
                       outlines=False)
    seconds = time.perf_counter() - t0
    cls = open_raster(pr.paths["classes"]).data[0]
    cls = np.where(np.isfinite(cls), cls, IGNORE).astype(np.uint8)
    m = evaluate_on_test(cls, prepared)
    zone = debris & prepared.split.mask("test") & (prepared.labels != IGNORE)
    recall = float(np.mean(cls[zone] == 1)) if zone.any() else float("nan")
    return {"iou": float(m["iou"]), "f1": float(m["f1"]), "debris_recall": recall,
            "debris_test_px": int(zone.sum()), "predict_seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--out", type=Path, default=None,
                    help="work folder (default: a temporary folder, removed afterwards)")
    ap.add_argument("--size", type=int, nargs=2, default=(192, 384), metavar=("ROWS", "COLS"))
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--samples", type=int, default=384, help="patches per epoch")
    ap.add_argument("--patch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)

    from glacierkit.mapping.pipeline import prepare_scenes, train_mapping

    t_start = time.perf_counter()
    tmp = None
    if args.out is None:
        tmp = Path(tempfile.mkdtemp(prefix="sar-fusion-"))
    work = args.out or tmp
    try:
        scene = make_scene(work / "scene", tuple(args.size), seed=args.seed)
        lab, deb = scene["labels"], scene["debris"]
        print(f"scene {args.size[0]}×{args.size[1]} px: glacier {100 * lab.mean():.1f} % of "
              f"pixels, debris {100 * deb.sum() / max(lab.sum(), 1):.1f} % of glacier area")
        p = scene["paths"]
        optical = {"optical": [p["rgb"], p["nir"]]}
        fused_src = optical | {"sar": [p["sar"]], "coherence": [p["coherence"]]}
        rows: list[dict[str, Any]] = []
        for name, fused in (("optical", False), ("fused", True)):
            cfg = make_config(work / f"run-{name}", scene, fused=fused, patch=args.patch,
                              samples=args.samples, epochs=args.epochs, seed=args.seed)
            t0 = time.perf_counter()
            report = train_mapping(cfg)
            t_train = time.perf_counter() - t0
            rep = report["scenes"]["synth"]["model"]
            _, (prepared,) = prepare_scenes(cfg)
            model = cfg.out_dir / "model.gkm"
            variants = [("all groups", fused_src if fused else optical, True)]
            if fused:
                variants.append(("SAR+coherence dropped", optical, False))
            for label, src, from_report in variants:
                r = predict_and_score(model, src, work / f"pred-{name}-{len(rows)}",
                                      prepared, deb)
                row = {"model": name, "inputs": label, "train_seconds": t_train,
                       "iou_recomputed": r["iou"], **r}
                if from_report:  # the run's own test-part metrics
                    row["iou"], row["f1"] = float(rep["iou"]), float(rep["f1"])
                rows.append(row)
        total = time.perf_counter() - t_start

        print(f"\n{'model':<9} {'inputs at inference':<23} {'IoU':>6} {'F1':>6} "
              f"{'debris recall':>14} {'(IoU recomputed)':>17}")
        for r in rows:
            print(f"{r['model']:<9} {r['inputs']:<23} {r['iou']:6.3f} {r['f1']:6.3f} "
                  f"{r['debris_recall']:14.3f} {r['iou_recomputed']:17.3f}")
        print(f"\ntest strip: {rows[0]['debris_test_px']} debris px; training "
              f"{rows[0]['train_seconds']:.0f} s (optical), {rows[1]['train_seconds']:.0f} s "
              f"(fused); total {total:.0f} s")
        if args.json:
            args.json.write_text(json.dumps({"args": {k: (str(v) if isinstance(v, Path) else v)
                                                      for k, v in vars(args).items()},
                                             "rows": rows, "total_seconds": total}, indent=2))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
