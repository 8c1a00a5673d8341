"""Each GlaViTU strategy end to end through ``train_mapping`` on a tiny two-region config.

Two synthetic scenes (``conftest._scene``): ``a`` in the Alps region (UTM 45N, the factory's
default position) and ``b`` in the Andes region (UTM 19S, far away, so coordinate
conditioning sees distinct positions). Optical-only layout, a tiny GlaViTU, one short epoch:
the test checks the plumbing (model files, stored conditioning, test-part metrics), not skill.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from glacierkit.dl.bundle import load_bundle
from glacierkit.mapping.config import parse_config
from glacierkit.mapping.pipeline import train_mapping

SLOW = pytest.mark.slow

# (strategy, every model file the run writes, expected cond kind)
CASES = [
    # global also runs unmarked through the CLI in test_mapping_pipeline.py
    pytest.param("global", ["model.gkm"], "none", id="global", marks=SLOW),
    pytest.param("regional", ["model-alps.gkm", "model-andes.gkm"], "none", id="regional"),
    # finetune also keeps the shared pre-trained model (model.gkm) next to the fine-tuned ones
    pytest.param("finetune", ["model.gkm", "model-alps.gkm", "model-andes.gkm"], "none",
                 id="finetune", marks=SLOW),
    pytest.param("region_encoding", ["model.gkm"], "region", id="region_encoding"),
    pytest.param("coords_encoding", ["model.gkm"], "coords", id="coords_encoding",
                 marks=SLOW),
]


@pytest.fixture
def two_scenes(make_dl_scene):
    a = make_dl_scene("a", shape=(128, 256), region="alps", seed=1)
    b = make_dl_scene("b", shape=(128, 256), region="andes", seed=2, crs="EPSG:32719",
                      origin=(350000.0, 4600000.0))
    return a, b


def _raw_config(scenes, out: Path, strategy: str) -> dict:
    return {
        "output": {"dir": str(out)},
        "layout": {"optical": ["red", "green", "blue", "nir"]},
        "scenes": [{"name": s.name, "region": s.region, "outlines": str(s.outlines),
                    "sources": {"optical": [str(p) for p in s.sources["optical"]]}}
                   for s in scenes],
        "split": {"kind": "half", "test_fraction": 0.3, "val_fraction": 0.25},
        "model": {"arch": "glavitu", "size": "tiny"},
        "train": {"strategy": strategy, "patch_size": 32, "samples_per_epoch": 16,
                  "epochs": 1, "batch_size": 8, "lr": 0.003, "progress": False,
                  "accelerator": "cpu", "finetune_epochs": 1, "p_unknown": 0.2},
        "calibration": {"method": "none"},
        "inference": {"tile_size": 64, "overlap": 16},
    }


@pytest.mark.parametrize(("strategy", "files", "cond_kind"), CASES)
def test_strategy_end_to_end(two_scenes, tmp_path: Path, strategy: str, files: list[str],
                             cond_kind: str) -> None:
    out = tmp_path / "run"
    cfg = parse_config(_raw_config(two_scenes, out, strategy), base=tmp_path)
    t0 = time.perf_counter()
    report = train_mapping(cfg)
    print(f"strategy {strategy}: {time.perf_counter() - t0:.1f} s")

    assert report["strategy"] == strategy
    for name in ("a", "b"):
        iou = report["scenes"][name]["model"]["iou"]
        assert 0.0 <= iou <= 1.0, (name, iou)
    per_scene = {n: report["scenes"][n]["model_file"] for n in ("a", "b")}
    if "model-alps.gkm" in files:
        assert per_scene == {"a": "model-alps.gkm", "b": "model-andes.gkm"}
    else:
        assert per_scene == {"a": "model.gkm", "b": "model.gkm"}
    assert sorted(p.name for p in out.glob("model*.gkm")) == sorted(files)
    assert sorted(report["models"]) == sorted(files)
    for f in files:
        cond = load_bundle(out / f).cond
        assert cond["kind"] == cond_kind, (f, cond)
        if cond_kind == "region":
            assert sorted(cond["regions"]) == ["alps", "andes"]
