"""Same results before and after a change of the deep-learning contract.

Trains a tiny GlaViTU for 2 epochs on a seeded synthetic optical + DEM scene (1 thread,
deterministic), exports it, saves a model file and predicts the scene with ONNX Runtime and
torch; prints hashes of the trained weights and of ``classes.tif`` / ``confidence.tif``.
Run it with two versions of glacierkit and compare the lines, e.g. against a git worktree of
an earlier commit::

    git worktree add /tmp/old <commit>
    OMP_NUM_THREADS=1 PYTHONPATH=/tmp/old/src python benchmarks/same_results_check.py /tmp/a
    OMP_NUM_THREADS=1 python benchmarks/same_results_check.py /tmp/b
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.transform import from_origin

import glacierkit
from glacierkit.dl.bundle import bundle_from_model, save_bundle
from glacierkit.dl.data import Augment, PatchDataset
from glacierkit.dl.export import export_onnx
from glacierkit.dl.models import build_model
from glacierkit.dl.predict import predict_scene
from glacierkit.dl.sources import NormStats, SourceLayout, scene_from_arrays
from glacierkit.dl.train import TrainConfig, fit
from glacierkit.io import write_raster
from glacierkit.io.grid import Grid


def main(out: Path) -> dict:
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    h = w = 128
    grid = Grid(crs="EPSG:32632", transform=from_origin(600000, 5200000, 30, 30), shape=(h, w))
    lab = np.zeros((h, w), np.uint8)
    lab[20:90, 30:100] = 1
    opt = (rng.normal(0.2, 0.05, (4, h, w)) + 0.5 * lab).astype(np.float32)
    dem = (3000 + 10 * np.arange(w)[None, :] + rng.normal(0, 5, (h, w))).astype(np.float32)[None]
    layout = SourceLayout.standard(("red", "green", "blue", "nir"), dem=True)
    scene = scene_from_arrays(layout, grid, {"optical": opt, "dem": dem})
    norm = NormStats.fit([scene])
    ds = PatchDataset([scene], [lab], patch_size=32, norm=norm, augment=Augment(),
                      samples_per_epoch=32)
    torch.manual_seed(0)
    model = build_model("glavitu", group_channels=layout.group_channels, n_classes=2,
                        size="tiny")
    cfg = TrainConfig(n_classes=2, epochs=2, batch_size=8, lr=1e-3, seed=0, progress=False,
                      deterministic=True)
    fit(model, ds, None, cfg, out_dir=out / "train", overwrite=True)
    weights = b"".join(v.detach().numpy().tobytes() for v in model.state_dict().values())
    onnx = export_onnx(model, group_channels=layout.group_channels, cond_dim=0,
                       example_size=(64, 64))
    bundle = bundle_from_model(model, layout=layout.to_dict(), norm=norm.to_dict(),
                               classes=["off_glacier", "glacier"], onnx_bytes=onnx,
                               task="mapping")
    save_bundle(out / "m.gkm", bundle, overwrite=True)
    p_opt = write_raster(out / "opt.tif", opt, grid, overwrite=True)
    p_dem = write_raster(out / "dem.tif", dem, grid, overwrite=True)
    res: dict = {"glacierkit": glacierkit.__file__,
                 "weights": hashlib.sha256(weights).hexdigest()[:16]}
    for backend in ("onnx", "torch"):
        r = predict_scene(out / "m.gkm", {"optical": str(p_opt), "dem": str(p_dem)},
                          out / f"pred_{backend}", backend=backend, overwrite=True,
                          progress=False, tile_size=64, overlap=16, threads=1)
        with rasterio.open(r.classes) as c, rasterio.open(r.confidence) as f:
            cls, conf = c.read(), f.read()
        res[backend] = {"classes": hashlib.sha256(cls.tobytes()).hexdigest()[:16],
                        "confidence": hashlib.sha256(conf.tobytes()).hexdigest()[:16],
                        "confidence_sum": float(np.nansum(conf))}
    return res


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1] if len(sys.argv) > 1 else "same-results"))))
