"""``facies train`` / ``facies clean`` end to end on tiny synthetic labels (forms a and b)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine

from glacierkit.cli.main import main
from glacierkit.dl.bundle import load_bundle
from glacierkit.facies.config import TEMPLATE, load_config, parse_config

pytest.importorskip("torch")

SPECTRA = {"snow": [0.9, 0.85, 0.1], "ice": [0.5, 0.4, 0.05], "rock": [0.2, 0.25, 0.3]}


def _spectra_table(path: Path, n_per: int = 40, flip: float = 0.0, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    rows = []
    for gl in ("A", "B", "C"):
        for cls, mu in SPECTRA.items():
            for _ in range(n_per):
                v = np.asarray(mu) + rng.normal(0, 0.03, 3)
                lab = cls
                if rng.random() < flip:
                    lab = "rock" if cls == "snow" else lab
                rows.append({"site_name": gl, "image_date": "20210801", "class": lab,
                             "b1": v[0], "b2": v[1], "b3": v[2],
                             "geometry": f"POINT ({-145 + rng.random():.5f} 63.3)"})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _config(tmp: Path, extra: str = "") -> Path:
    cfg = tmp / "facies.toml"
    cfg.write_text(f"""
[labels]
path = "labels.csv"
bands = ["b1", "b2", "b3"]
[model]
size = "pixel"
epochs = 2
batch_size = 64
accelerator = "cpu"
[cv]
folds = 3
{extra}
""")
    return cfg


def test_template_config_parses(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("x\n")
    cfg = tmp_path / "t.toml"
    cfg.write_text(TEMPLATE)
    c = load_config(cfg)
    assert c.form == "spectra" and c.model["kind"] == "cnn" and c.cv["folds"] == 5


def test_config_errors(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("x\n")
    with pytest.raises(ValueError, match="unknown key"):
        parse_config({"labels": {"path": "labels.csv", "bands": ["a"], "colour": 1}}, tmp_path)
    with pytest.raises(ValueError, match="bands"):
        parse_config({"labels": {"path": "labels.csv"}}, tmp_path)
    with pytest.raises(FileNotFoundError):
        parse_config({"labels": {"path": "nope.csv", "bands": ["a"]}}, tmp_path)


def test_facies_train_and_clean_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _spectra_table(tmp_path / "labels.csv", flip=0.1)
    cfg = _config(tmp_path)
    text = cfg.read_text().replace('bands = ["b1", "b2", "b3"]',
                                   'bands = ["b1", "b2", "b3"]\ntable = { rock = "debris" }')
    cfg.write_text(text)
    out = tmp_path / "run"
    assert main(["facies", "train", str(cfg), "-o", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["classes"] == ["ice", "snow", "debris"]
    assert report["cv_cnn"]["scores"]["macro_f1"] > 0.8
    assert report["cv_baseline"]["scores"]["macro_f1"] > 0.8
    assert 0 < report["clean"]["per_class"]["debris"]["pruned"]
    bundle = load_bundle(out / "model.gkm")
    assert bundle.training["task"] == "facies" and bundle.has_onnx
    assert bundle.training["vocabulary"]["table"]["rock"] == "debris"
    checked = pd.read_csv(out / "labels_checked.csv")
    assert len(checked) == 360 and {"label_issue", "pruned", "oof_prediction"} <= set(checked)
    # a second run into the same folder is refused
    assert main(["facies", "train", str(cfg), "-o", str(out)]) == 1
    # clean: report + kept labels
    kept = tmp_path / "kept.csv"
    assert main(["facies", "clean", str(tmp_path / "labels.csv"), "--bands", "b1,b2,b3",
                 "--vocabulary", "aberle", "--folds", "3", "-o", str(kept), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    k = pd.read_csv(kept)
    assert len(k) == 360 - rep["n_pruned"] and rep["n_pruned"] > 0
    # flipped snow→rock labels are the ones found: most pruned rows carry the rock label
    allc = pd.read_csv(tmp_path / "kept_checked.csv")
    pruned = allc[allc["pruned"]]
    assert (pruned["label"] == "rock").mean() > 0.8


def test_unknown_label_names_vocabulary(tmp_path: Path) -> None:
    _spectra_table(tmp_path / "labels.csv")
    cfg = _config(tmp_path)  # no table: "rock" is not a facies name
    assert main(["facies", "train", str(cfg), "-o", str(tmp_path / "r")]) == 1


def test_form_b_patches_from_scene(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    h = w = 64
    cls = np.zeros((h, w), int)
    cls[:, 32:] = 1
    spec = np.array([[0.4, 0.3], [0.9, 0.8]], dtype="float32")
    img = spec[cls].transpose(2, 0, 1) + rng.normal(0, 0.03, (2, h, w)).astype("float32")
    tr = Affine(10, 0, 500000, 0, -10, 5200000)
    with rasterio.open(tmp_path / "s.tif", "w", driver="GTiff", width=w, height=h, count=2,
                       dtype="float32", crs="EPSG:32632", transform=tr) as ds:
        ds.write(img)
    rr, cc = rng.integers(0, h, 150), rng.integers(-3, w, 150)  # some points outside
    xs, ys = 500000 + 10 * (cc + 0.5), 5200000 - 10 * (rr + 0.5)
    names = np.where(cls[rr, np.clip(cc, 0, w - 1)] == 1, "snow", "ice")
    pd.DataFrame({"class": names, "x": xs, "y": ys, "glacier": np.where(rr < 32, "A", "B"),
                  "scene": "s1"}).to_csv(tmp_path / "pts.csv", index=False)
    (tmp_path / "b.toml").write_text("""
[labels]
path = "pts.csv"
crs = "EPSG:32632"
[[scenes]]
name = "s1"
optical = "s.tif"
[patches]
size = 9
optical_bands = ["red", "nir"]
[model]
size = "tiny"
overrides = { widths = [8, 8], dilations = [1, 2], kernel = 3 }
epochs = 2
batch_size = 32
baseline = "none"
accelerator = "cpu"
[cv]
folds = 2
[clean]
enabled = false
""")
    from glacierkit.facies.pipeline import train_facies

    rep = train_facies(load_config(tmp_path / "b.toml"), tmp_path / "run")
    counts = rep["data"]["scenes"]["s1"]
    assert counts["outside"] > 0 and counts["kept"] + counts["outside"] == 150
    assert rep["cv_cnn"]["scores"]["macro_f1"] > 0.8
    b = load_bundle(tmp_path / "run" / "model.gkm")
    assert b.training["receptive_field_px"] == 7 and b.tile["overlap"] >= 4
