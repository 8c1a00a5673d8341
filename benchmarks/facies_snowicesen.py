"""Snow vs ice facies on real Sentinel-2 crops with human snow polygons (SnowIceSen data).

Data: ``snowicesen_swiss_s2_snow_polygons`` (L. Geibel, SnowIceSen, ETH Zürich 2019; GPL-3.0;
Copernicus Sentinel-2): four 10 m glacier crops (3 visible bands, reflectance × 10 000, local
transverse-Mercator CRS) with manually digitised snow polygons:

* ``A10G05`` Silvrettagletscher 2017-05-17 and 2017-08-15,
* ``A51D10`` 2015-09-08, ``B7211`` 2015-09-08.

Labels: a pixel is *glacier* where any band is non-zero (the crops are masked to the glacier
with **0**; the files declare nodata 65535, which never occurs); glacier pixels inside a snow
polygon (pixel centre) are ``snow``, the other glacier pixels ``ice`` (bare ice/firn).

Points (the rule): per crop and class, a seeded random subset of ``--per-class`` glacier
pixels (all of them when the class has fewer; seed ``--seed``) becomes a labelled point at the
pixel centre. A class with fewer than ``--min-class-px`` (200) pixels in a crop is not sampled
there: the 39 "ice" pixels of Silvretta 2017-05-17 are a sliver between the snow polygon and
the glacier mask at the glacier's edge (bright, snow-like), and "class × scene" weighting would
give them a third of the ice weight. They are still scored when the crop is held out.
:func:`glacierkit.facies.points.cut_patches` cuts 33 × 33 patches around the points from the
masked crop (NaN outside the glacier). Weights: "class × scene"
(:func:`glacierkit.facies.models.sample_weights`).

Model: :class:`glacierkit.facies.models.PatchNet` size ``tiny`` (receptive field 33 px), a
few epochs on the CPU. Evaluation: leave one crop out — train on three crops, build a model
file (:func:`~glacierkit.facies.models.patchnet_bundle`), run
:func:`glacierkit.facies.apply.classify_scene` (ONNX Runtime, tiled) on the fourth, and score
**every** glacier pixel of it against the human labels (macro-F1 of snow/ice, per-class F1,
accuracy). A per-pixel gradient-boosting classifier on the same points (spectral baseline)
and, for Silvretta 2017-05-17, SnowIceSen's own snow map
(``…_snowicesen_snow_map_SLA.nc``, same grid; its rows are stored south-up) are scored on the
same pixels for reference.

Writes the held-out facies maps of the two Silvretta scenes side by side with the RGB and the
human labels to ``--figure`` (default ``docs/figures/facies_silvretta.png``). Usage::

    python benchmarks/facies_snowicesen.py --out /tmp/facies_sis --json /tmp/facies_sis.json
    python benchmarks/facies_snowicesen.py --folds silvretta   # only the two Silvretta folds
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio

from glacierkit import examples
from glacierkit._json import jsonable
from glacierkit.dl.bundle import save_bundle
from glacierkit.dl.sources import SourceGroup, SourceLayout, open_scene
from glacierkit.facies.apply import classify_scene
from glacierkit.facies.cv import scores
from glacierkit.facies.models import PatchNet, SpectralBaseline, patchnet_bundle, sample_weights
from glacierkit.facies.points import cut_patches, read_points
from glacierkit.facies.vocab import FACIES_COLOURS, Vocabulary
from glacierkit.io.raster import read_grid
from glacierkit.io.vector import polygonize, rasterize, read_vector, write_vector
from glacierkit.io.writer import publish_file, write_raster

DATASET = "snowicesen_swiss_s2_snow_polygons"
CROPS = {
    "A10G05_20170517": "Silvretta 2017-05-17",
    "A10G05_20170815": "Silvretta 2017-08-15",
    "A51D10_20150908": "A51D10 2015-09-08",
    "B7211_20150908": "B7211 2015-09-08",
}
CLASSES = ("ice", "snow")
NODATA = 255
PATCH = 33
LAYOUT = SourceLayout((SourceGroup("optical", "optical", ("red", "green", "blue")),))


def prepare_crop(folder: Path, crop: str, out: Path) -> dict:
    """Masked float crop, label raster (0 ice, 1 snow, 255 off-glacier) and glacier outline."""
    tif, shp = folder / f"RGI50-11.{crop}.tif", folder / f"RGI50-11.{crop}.shp"
    with rasterio.open(tif) as ds:
        raw = ds.read()
    grid = read_grid(tif)
    valid = (raw != 0).any(axis=0) & (raw != 65535).all(axis=0)
    refl = np.where(valid, raw.astype(np.float32) / 10000.0, np.nan).astype(np.float32)
    masked = write_raster(out / f"{crop}_masked.tif", refl, grid,
                          band_names=list(LAYOUT.groups[0].bands or ()), units="1",
                          overwrite=True)
    snow = rasterize(read_vector(shp), grid, name="snow polygons") > 0
    truth = np.full(grid.shape, NODATA, dtype=np.uint8)
    truth[valid] = snow[valid].astype(np.uint8)
    gl = polygonize(valid.astype(np.uint8), grid, ignore=(0,))
    gl["rgi_id"] = f"RGI50-11.{crop.split('_')[0]}"
    outline = write_vector(gl[["rgi_id", "geometry"]], out / f"{crop}_outline.gpkg",
                           overwrite=True)
    return {"crop": crop, "grid": grid, "raw": raw, "valid": valid, "truth": truth,
            "masked": masked, "outline": outline, "refl": refl, "snow_polygons": shp}


def sample_points(c: dict, per_class: int, seed: int, min_px: int
                  ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Patches ``(n, 3, 33, 33)``, labels ``(n,)`` of the seeded per-class pixel subset, and
    the classes skipped as slivers (``{class: pixels}``)."""
    rng = np.random.default_rng([seed, int.from_bytes(c["crop"].encode()[:8], "little")])
    rows, cols, labels = [], [], []
    skipped = {}
    for k, name in enumerate(CLASSES):
        r, cc = np.nonzero(c["truth"] == k)
        if r.size < min_px:
            skipped[name] = int(r.size)
            continue
        take = rng.choice(r.size, size=min(per_class, r.size), replace=False)
        rows.append(r[take])
        cols.append(cc[take])
        labels += [name] * take.size
    r, cc = np.concatenate(rows), np.concatenate(cols)
    xs, ys = c["grid"].transform @ (cc + 0.5, r + 0.5)
    df = pd.DataFrame({"class": labels, "x": xs, "y": ys, "glacier": c["crop"][:6],
                       "scene": c["crop"]})
    pts = read_points(df, vocabulary=Vocabulary(classes=CLASSES), bands=None,
                      crs=c["grid"].crs.to_wkt())
    stack = open_scene(LAYOUT, {"optical": c["masked"]}, name=c["crop"])
    X, keep, _ = cut_patches(pts, stack, PATCH)
    return X, pts.targets[keep], skipped


def snowicesen_map(folder: Path, crop: str, valid: np.ndarray) -> np.ndarray:
    """SnowIceSen's binary snow map (1 snow, 0 not) on the crop grid (rows flipped north-up)."""
    nc = folder / f"RGI50-11.{crop}_snowicesen_snow_map_SLA.nc"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GDAL finds no geotransform in this file
        with rasterio.open(f"netcdf:{nc}:snow_map") as ds:
            s = ds.read(1) == 1
    # The netCDF stores y ascending (south-up) and GDAL does not flip it: check on the mask.
    flipped = s[::-1]
    inside = (flipped & valid).sum() / max(1, flipped.sum())
    if inside < 0.99:
        raise RuntimeError(f"SnowIceSen snow map does not fit the glacier mask ({inside:.3f}).")
    return flipped.astype(np.uint8)


def run_fold(test: str, crops: dict, data: dict, args: argparse.Namespace) -> dict:
    train = [k for k in crops if k != test]
    X = np.concatenate([data[k]["X"] for k in train])
    y = np.concatenate([data[k]["y"] for k in train])
    scenes = np.concatenate([[k] * data[k]["y"].size for k in train])
    w = sample_weights(y, scenes, mode="class_scene")
    t0 = time.perf_counter()
    net = PatchNet(n_classes=2, group_channels=(3,), size="tiny", epochs=args.epochs,
                   batch_size=128, accelerator="cpu", seed=args.seed).fit(X, y, w)
    train_s = time.perf_counter() - t0
    base = SpectralBaseline(n_classes=2, kind="hgb", seed=args.seed).fit(X, y, w)
    bundle = patchnet_bundle(
        net, layout=LAYOUT, classes=CLASSES, vocabulary=Vocabulary(classes=CLASSES).to_dict(),
        training={"data": DATASET, "train_crops": train, "points_per_class": args.per_class,
                  "epochs": args.epochs, "seed": args.seed})
    model = save_bundle(args.out / f"model_without_{test}.gkm", bundle, overwrite=True)
    c = crops[test]
    pred_dir = args.out / f"pred_{test}"
    pred_dir.mkdir(exist_ok=True)
    t1 = time.perf_counter()
    res = classify_scene(model, {"optical": c["masked"]}, pred_dir, outlines=c["outline"],
                         backend="onnx", overwrite=True)
    apply_s = time.perf_counter() - t1
    with rasterio.open(res.facies) as ds:
        facies = ds.read(1)
    v = c["valid"]
    truth = c["truth"][v].astype(np.int64)
    out = {"test": test, "train": train, "n_train_points": int(y.size),
           "train_points_per_class": {n: int((y == k).sum()) for k, n in enumerate(CLASSES)},
           "train_seconds": train_s, "classify_seconds": apply_s,
           "test_pixels": int(v.sum()),
           "human_snow_pct": 100.0 * float(truth.mean()),
           "cnn": scores(truth, facies[v].astype(np.int64), 2, CLASSES),
           "cnn_snow_pct": float(res.areas["snow_pct"].iloc[0]),
           "areas": res.areas.to_dict(orient="records")}
    px = c["refl"][:, v].T  # (n, 3) spectra of every glacier pixel
    out["spectral_hgb"] = scores(truth, np.argmax(base.predict_logits(px), axis=1), 2, CLASSES)
    if test == "A10G05_20170517":
        sis = snowicesen_map(args.data, test, v)[v].astype(np.int64)
        out["snowicesen"] = scores(truth, sis, 2, CLASSES)
        out["snowicesen_snow_pct"] = 100.0 * float(sis.mean())
    out["facies_tif"] = str(res.facies)
    return out


def figure(crops: dict, results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from glacierkit.viz import add_scale_bar, clip_to, map_axes
    from glacierkit.viz.quicklook import stretch

    keys = [k for k in ("A10G05_20170517", "A10G05_20170815") if k in results]
    cmap = ListedColormap([np.array(FACIES_COLOURS[c][:3]) / 255 for c in CLASSES])
    fig, axes = plt.subplots(len(keys), 3, figsize=(11, 3.6 * len(keys)), squeeze=False)
    for row, k in zip(axes, keys, strict=True):
        c, r = crops[k], results[k]
        rgb = np.dstack([stretch(c["refl"][i]) for i in range(3)])
        rgb = np.where(np.isnan(rgb), 1.0, rgb)
        with rasterio.open(r["facies_tif"]) as ds:
            f = ds.read(1).astype(float)
        f[f == NODATA] = np.nan
        t = c["truth"].astype(float)
        t[t == NODATA] = np.nan
        sc = r["cnn"]
        left, bottom, right, top = c["grid"].bounds
        glacier = read_vector(c["outline"])
        # The hand-drawn polygons reach far past the glacier: draw them clipped to it.
        human = clip_to(read_vector(c["snow_polygons"]), glacier,
                        name="human snow polygons", within="glacier outline")
        panels = [(rgb, f"{CROPS[k]}: Sentinel-2 RGB", None),
                  (t, f"human snow polygons (snow {r['human_snow_pct']:.1f} %)", cmap),
                  (f, f"patch CNN, held out (snow {r['cnn_snow_pct']:.1f} %)\n"
                      f"snow F1 {sc['per_class']['snow']['f1']:.3f}, "
                      f"accuracy {sc['accuracy']:.3f}", cmap)]
        for j, (ax, (img, title, cm)) in enumerate(zip(row, panels, strict=True)):
            ax.set_facecolor("0.85")
            kw = {"extent": (left, right, bottom, top), "interpolation": "nearest"}
            if cm is None:
                ax.imshow(img, **kw)
            else:
                ax.imshow(img, cmap=cm, vmin=-0.5, vmax=1.5, **kw)
            glacier.boundary.plot(ax=ax, color="black", linewidth=0.6)
            if j == 1:
                human.boundary.plot(ax=ax, color="tab:red", linewidth=0.8)
            ax.set_xlim(left, right)
            ax.set_ylim(bottom, top)
            map_axes(ax, c["grid"])
            ax.set_title(title, fontsize=9)
            if j:
                ax.set_ylabel("")
            if j != 1:
                ax.set_xlabel("")
            if j == 0:
                add_scale_bar(ax, c["grid"])
    handles = [Patch(facecolor=np.array(FACIES_COLOURS[c][:3]) / 255, edgecolor="k", label=c)
               for c in CLASSES] + [Patch(facecolor="0.85", edgecolor="k",
                                          label="off glacier"),
                                    Line2D([], [], color="black", label="glacier outline"),
                                    Line2D([], [], color="tab:red",
                                           label="human snow polygons (clipped to the glacier)")]
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part.png")
    try:
        fig.savefig(tmp, format="png", dpi=90)
        publish_file(tmp, path)  # atomic
    finally:
        tmp.unlink(missing_ok=True)
        plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("facies-snowicesen"))
    ap.add_argument("--folds", choices=("all", "silvretta"), default="all",
                    help="test crops: all four (leave one out) or the two Silvretta dates")
    ap.add_argument("--per-class", type=int, default=250, help="points per class and crop")
    ap.add_argument("--min-class-px", type=int, default=200,
                    help="a class with fewer glacier pixels in a crop is not sampled there")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--figure", type=Path, default=Path("docs/figures/facies_silvretta.png"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    args.data = examples.path(DATASET)
    t0 = time.perf_counter()
    crops = {k: prepare_crop(args.data, k, args.out) for k in CROPS}
    data = {}
    for k, c in crops.items():
        X, y, skipped = sample_points(c, args.per_class, args.seed, args.min_class_px)
        data[k] = {"X": X, "y": y}
        for name, n in skipped.items():
            print(f"{CROPS[k]}: {name} covers only {n} px: not sampled for training "
                  f"(a digitising sliver along the outline; still scored when held out)")
    tests = list(CROPS) if args.folds == "all" else ["A10G05_20170815", "A10G05_20170517"]
    results = {k: run_fold(k, crops, data, args) for k in tests}

    print(f"SnowIceSen Sentinel-2 crops, leave one crop out: PatchNet tiny (rf {PATCH} px), "
          f"{args.epochs} epochs, ≤ {args.per_class} points per class and crop (seed "
          f"{args.seed}); scored on every glacier pixel of the held-out crop")
    print(f"{'test crop':22s} {'pixels':>7s} {'snow %':>13s} {'model':>13s} {'macro-F1':>8s} "
          f"{'F1 snow':>7s} {'F1 ice':>7s} {'acc':>6s} {'train s':>7s}")
    for k, r in results.items():
        rows = [("patch CNN", r["cnn"], f"{r['train_seconds']:.0f}"),
                ("spectral HGB", r["spectral_hgb"], "")]
        if "snowicesen" in r:
            rows.append(("SnowIceSen", r["snowicesen"], ""))
        for i, (name, sc, ts) in enumerate(rows):
            pc = sc["per_class"]
            snow_pct = (f"{r['human_snow_pct']:.1f}→{r['cnn_snow_pct']:.1f}" if i == 0 else "")
            print(f"{CROPS[k] if i == 0 else '':22s} {r['test_pixels'] if i == 0 else '':>7} "
                  f"{snow_pct:>13s} {name:>13s} {sc['macro_f1']:8.3f} "
                  f"{pc['snow']['f1']:7.3f} {pc['ice']['f1']:7.3f} {sc['accuracy']:6.3f} "
                  f"{ts:>7s}")
        if "snowicesen" in r:
            print(f"{'':22s} SnowIceSen snow cover {r['snowicesen_snow_pct']:.1f} % (human "
                  f"{r['human_snow_pct']:.1f} %)")
    figure(crops, results, args.figure)
    total = time.perf_counter() - t0
    print(f"figure: {args.figure}; total {total:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(jsonable({
            "args": {k: str(v) for k, v in vars(args).items()}, "results": results,
            "total_seconds": total}), indent=2))


if __name__ == "__main__":
    main()
