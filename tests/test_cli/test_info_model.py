"""``glacierkit info MODEL.gkm [--json]``: what a model file expects and what it holds."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from glacierkit import __version__
from glacierkit.cli.main import main
from glacierkit.dl.domain import domain_from_channels
from glacierkit.dl.sources import NormStats, SourceLayout

torch = pytest.importorskip("torch")

LAYOUT = SourceLayout.standard(("red", "green", "blue", "nir"), dem=True)


def _model_file(path: Path, *, calibration=None, task="mapping") -> tuple[Path, int]:
    from glacierkit.dl.bundle import bundle_from_model, save_bundle

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.integers(10, 250, (4, 32, 32)),
                        rng.uniform(3000, 6000, (1, 32, 32)),
                        rng.uniform(0, 50, (1, 32, 32))]).astype(np.float32)
    info = {"optical": [{"dtype": "uint8", "units": "", "scale": 1.0}] * 4,
            "dem": [{"dtype": "float32", "units": "", "scale": 1.0}]}
    dom = domain_from_channels(LAYOUT, [x], band_info=info, source="a test scene")
    net = torch.nn.Conv2d(6, 2, 3)
    b = bundle_from_model(net, layout=LAYOUT.to_dict(), norm=NormStats.fit([x]).to_dict(),
                          classes=["off_glacier", "glacier"], calibration=calibration,
                          model_kwargs={"group_channels": [4, 2], "n_classes": 2},
                          training={"strategy": "shared", "group_dropout": 0.2},
                          task=task, domain=dom)
    return save_bundle(path, b), sum(p.numel() for p in net.state_dict().values())


def test_info_model_json(tmp_path: Path, capsys) -> None:
    gkm, n = _model_file(tmp_path / "m.gkm",
                         calibration={"kind": "temperature", "temperature": 1.7})
    assert main(["info", str(gkm), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["kind"] == "model" and d["task"] == "mapping"
    assert d["parameters"] == n and d["file_size_bytes"] == gkm.stat().st_size
    assert [g["name"] for g in d["groups"]] == ["optical", "dem"]
    assert d["groups"][0]["bands"] == ["red", "green", "blue", "nir"]
    assert d["groups"][1]["bands"] == ["elevation"]
    assert d["groups"][1]["channels"] == ["elevation", "slope"]
    assert d["classes"] == ["off_glacier", "glacier"]
    dom = {r["channel"]: r for r in d["domain"]}
    assert list(dom) == ["red", "green", "blue", "nir", "elevation", "slope"]
    assert dom["red"]["units"] == "DN 0–255" and dom["red"]["dtype"] == "uint8"
    assert dom["elevation"]["units"] == "m" and dom["slope"]["units"] == "degrees"
    assert 3000 <= dom["elevation"]["p0_5"] < dom["elevation"]["p50"] < dom["elevation"][
        "p99_5"] <= 6000
    assert d["calibration"] == {"method": "temperature", "values": {"temperature": 1.7}}
    assert [r["channel"] for r in d["norm"]][:2] == ["red", "green"]
    assert d["format_version"] == 2 and d["glacierkit_version"] == __version__
    assert [i["name"] for i in d["inputs"]] == ["x", "present"]
    assert d["training"]["group_dropout"] == 0.2


def test_info_model_table_fits_80_columns(tmp_path: Path, capsys) -> None:
    gkm, n = _model_file(tmp_path / "m.gkm")
    assert main(["info", str(gkm)]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    for text in ("mapping", "uncalibrated", "training domain", "DN 0–255", "elevation",
                 "off_glacier", f"{n:,}", "source groups", "normalisation", __version__):
        assert text in out


def test_info_old_model_file(tmp_path: Path, capsys) -> None:
    gkm, _ = _model_file(tmp_path / "m.gkm", task=None)
    old = tmp_path / "old.gkm"
    with zipfile.ZipFile(gkm) as zin, zipfile.ZipFile(old, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "metadata.json":
                meta = json.loads(data)
                del meta["domain"], meta["task"]
                meta["training"].pop("strategy")
                meta["classes"] = ["rock", "ice"]
                data = json.dumps(meta).encode()
            zout.writestr(item, data)
    assert main(["info", str(old), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["domain"] == "unknown" and d["task"] is None
    assert main(["info", str(old)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "training domain: unknown" in out and "unknown (not recorded)" in out
