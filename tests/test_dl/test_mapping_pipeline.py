"""``glacierkit map train / predict / evaluate / baseline`` end to end on a tiny synthetic scene.

The scene (``conftest._scene``) has optical, DEM, synthetic SAR and coherence groups and two
elliptical glaciers whose optical signature is unambiguous, so a tiny model trained for a few
steps must beat chance on the held-out test strip.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from glacierkit.cli.main import main
from glacierkit.dl.bundle import load_bundle
from glacierkit.errors import OutputExistsError
from glacierkit.mapping.config import load_config
from glacierkit.mapping.pipeline import train_mapping

CONFIG = """
[output]
dir = "run"

[layout]
optical = ["red", "green", "blue", "nir"]
dem = true
sar = ["vv", "vh"]
coherence = true

[[scenes]]
name = "synth"
region = "alps"
outlines = "{outlines}"
[scenes.sources]
optical = ["{rgb}", "{nir}"]
dem = "{dem}"
sar = "{sar}"
coherence = "{coh}"

[split]
kind = "half"
test_fraction = 0.3
val_fraction = 0.25

[model]
arch = "{arch}"
size = "tiny"

[train]
patch_size = 32
samples_per_epoch = 48
epochs = 2
batch_size = 8
lr = 0.003
progress = false
accelerator = "cpu"

[augment]
group_dropout = 0.3

[inference]
tile_size = 64
overlap = 16
"""


def _config(scene, tmp_path: Path, arch: str = "glavitu") -> Path:
    s = scene.sources
    p = tmp_path / "cfg.toml"
    p.write_text(CONFIG.format(outlines=scene.outlines, rgb=s["optical"][0],
                               nir=s["optical"][1], dem=s["dem"][0], sar=s["sar"][0],
                               coh=s["coherence"][0], arch=arch))
    return p


@pytest.fixture
def scene(make_dl_scene):
    return make_dl_scene("synth", shape=(128, 256))


def test_map_train_predict_evaluate_cli(scene, tmp_path: Path, capsys) -> None:
    cfg_path = _config(scene, tmp_path)
    assert main(["-q", "map", "train", str(cfg_path)]) == 0
    run = tmp_path / "run"
    report = json.loads((run / "report.json").read_text())
    s = report["scenes"]["synth"]
    m = s["model"]
    # Held-out test strip: the tiny model must beat the trivial all-glacier answer.
    glacier_share = float(np.mean(scene.labels == 1))
    assert 0 <= m["iou"] <= 1 and m["iou"] > glacier_share + 0.1
    assert s["test_fraction_of_scene"] == pytest.approx(0.3, abs=0.08)
    assert 0 <= s["calibration"]["ece_after"] <= 1
    assert (run / "test-synth" / "reliability.png").stat().st_size > 1000
    assert report["models"]["model.gkm"]["calibration"]["method"] in (
        "none", "temperature", "isotonic")
    bundle = load_bundle(run / "model.gkm")
    assert bundle.has_onnx and bundle.training["group_dropout"] == 0.3
    assert [g["name"] for g in bundle.layout["groups"]] == ["optical", "dem", "sar",
                                                            "coherence"]

    # predict the scene with the ONNX backend, then drop the SAR group (model trained with
    # group dropout: it must still run, and agree with the full prediction on most pixels).
    src = scene.sources
    full = [f"optical={src['optical'][0]},{src['optical'][1]}", f"dem={src['dem'][0]}",
            f"sar={src['sar'][0]}", f"coherence={src['coherence'][0]}"]
    assert main(["-q", "map", "predict", str(run / "model.gkm"), *full, "-o",
                 str(tmp_path / "p1"), "--backend", "onnx"]) == 0
    assert main(["-q", "map", "predict", str(run / "model.gkm"), *full[:2], full[3], "-o",
                 str(tmp_path / "p2"), "--backend", "onnx"]) == 0
    with rasterio.open(tmp_path / "p1" / "classes.tif") as a, \
            rasterio.open(tmp_path / "p2" / "classes.tif") as b:
        ca, cb = a.read(1), b.read(1)
        assert a.crs == b.crs and a.transform == b.transform
    assert set(np.unique(ca)) <= {0, 1, 255}
    assert np.mean(ca == cb) > 0.7

    capsys.readouterr()
    assert main(["map", "evaluate", str(tmp_path / "p1" / "classes.tif"),
                 str(scene.outlines), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    for k in ("iou", "precision", "recall", "f1", "area_ref_km2", "area_pred_km2",
              "area_dev_km2", "area_dev_pct", "boundary_mean_m", "boundary_p95_m"):
        assert k in r
    assert r["area_ref_km2"] == pytest.approx(float((scene.labels == 1).sum()) * 30 * 30 / 1e6,
                                              rel=1e-6)

    # a second run into the same folder is refused
    with pytest.raises(OutputExistsError):
        train_mapping(load_config(cfg_path))


def test_map_baseline_cli_and_template(scene, tmp_path: Path, capsys) -> None:
    src = scene.sources
    out = tmp_path / "bl"
    assert main(["-q", "map", "baseline", str(src["optical"][0]), str(src["optical"][1]),
                 "--bands", "red,green,blue", "--bands", "nir", "-o", str(out)]) == 0
    info = json.loads((out / "baseline.json").read_text())
    assert info["method"] == "brightness"
    with rasterio.open(out / "classes.tif") as ds:
        cls = ds.read(1)
        assert ds.nodata == 255 and ds.crs is not None
    # the synthetic glaciers are bright: the baseline recovers them almost exactly
    assert np.mean(cls == scene.labels) > 0.97
    assert main(["map", "baseline", str(src["optical"][0]), "--bands", "red,green",
                 "-o", str(out), "--overwrite"]) == 1
    capsys.readouterr()
    assert main(["map", "train", "--template-config"]) == 0
    assert "[[scenes]]" in capsys.readouterr().out


def test_predict_sources_parsing() -> None:
    from glacierkit.cli.map import parse_sources
    from glacierkit.errors import InputError

    assert parse_sources(["optical=a.tif,b.tif", "dem=d.tif"], ["optical", "dem"]) == {
        "optical": ["a.tif", "b.tif"], "dem": ["d.tif"]}
    assert parse_sources(["a.tif", "b.tif"], ["optical"]) == {"optical": ["a.tif", "b.tif"]}
    with pytest.raises(InputError, match="GROUP=FILE"):
        parse_sources(["a.tif"], ["optical", "dem"])
    with pytest.raises(InputError, match="not one of"):
        parse_sources(["sar=s.tif"], ["optical"])
