"""Outline mapping on the real Everest Landsat-7 scene: baseline vs ResU-Net vs GlaViTU.

Trains each model with ``glacierkit.mapping.pipeline.train_mapping`` on the same spatially
disjoint split of the scene (``LE71400412000304SGS00`` RGB + NIR, 800 × 655 px at 30 m; RGI 6.0
outlines as labels) and reports, on the **same test part** (never trained on, never used to
choose the calibration): IoU, F1, area deviation and boundary distances of

(a) the classic brightness threshold (no training; the scene has no SWIR band),
(b) a tiny ResU-Net,
(c) the tiny GlaViTU-class model,

plus the ECE before/after calibration and the training time. Usage::

    python benchmarks/everest_mapping.py --out /tmp/everest --epochs 12 --json everest.json

Honest numbers: RGI outlines include debris-covered tongues that look like rock in
RGB + NIR, so neither thresholds nor small models reach the paper's clean-ice accuracy here.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
import tomllib
from pathlib import Path

from glacierkit.mapping.config import TEMPLATE, parse_config
from glacierkit.mapping.pipeline import train_mapping


def run(arch: str, out: Path, args: argparse.Namespace) -> dict:
    raw = tomllib.loads(TEMPLATE)
    raw["output"] = {"dir": str(out / arch), "overwrite": True}
    raw["model"].update(arch=arch, size=args.size)
    raw["train"].update(epochs=args.epochs, samples_per_epoch=args.samples,
                        batch_size=args.batch, progress=False, seed=args.seed,
                        patch_size=args.patch)
    raw["split"].update(kind=args.split)
    cfg = parse_config(raw, base=out)
    t0 = time.perf_counter()
    rep = train_mapping(cfg)
    s = rep["scenes"]["everest"]
    keys = ("iou", "f1", "precision", "recall", "area_ref_km2", "area_pred_km2",
            "area_dev_km2", "area_dev_pct", "boundary_mean_m", "boundary_p95_m")
    return {"model": {k: s["model"][k] for k in keys},
            "baseline": {k: s["baseline"]["metrics"][k] for k in keys},
            "baseline_method": s["baseline"]["method"]["method"],
            "ece_before": s["calibration"]["ece_before"],
            "ece_after": s["calibration"]["ece_after"],
            "calibration": rep["models"]["model.gkm"]["calibration"]["method"],
            "calibration_selection": rep["models"]["model.gkm"]["calibration"].get("selection"),
            "train_seconds": rep["train_seconds"], "total_seconds": time.perf_counter() - t0,
            "reliability_png": s["reliability_png"],
            "test_fraction_of_scene": s["test_fraction_of_scene"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("everest-mapping"))
    ap.add_argument("--archs", nargs="+", default=["resunet", "glavitu"])
    ap.add_argument("--size", default="tiny")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--samples", type=int, default=512, help="patches per epoch")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--split", default="half", choices=("half", "blocks"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {a: run(a, args.out, args) for a in args.archs}
    first = next(iter(results.values()))
    rows = [("baseline (" + first["baseline_method"] + ")", first["baseline"], None)]
    rows += [(a, r["model"], r) for a, r in results.items()]
    print(f"Everest Landsat-7, test part = {100 * first['test_fraction_of_scene']:.0f} % of "
          f"the scene ({args.split} split), {args.epochs} epochs × {args.samples} patches")
    print(f"{'method':24s} {'IoU':>6s} {'F1':>6s} {'area dev':>10s} {'bnd mean':>9s} "
          f"{'bnd p95':>8s} {'ECE before→after':>18s} {'train s':>8s}")
    for name, m, r in rows:
        ece = f"{r['ece_before']:.3f}→{r['ece_after']:.3f}" if r else ""
        ts = f"{r['train_seconds']:.0f}" if r else "0"
        print(f"{name:24s} {m['iou']:6.3f} {m['f1']:6.3f} {m['area_dev_pct']:9.1f}% "
              f"{m['boundary_mean_m']:8.0f}m {m['boundary_p95_m']:7.0f}m {ece:>18s} {ts:>8s}")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "results": results}, indent=2))
    for a, r in results.items():
        png = Path(r["reliability_png"])
        if png.exists():
            shutil.copy(png, args.out / f"reliability_{a}.png")


if __name__ == "__main__":
    main()
