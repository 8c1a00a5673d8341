"""Every Python snippet in the README and the documentation runs, so the docs cannot rot.

Each fenced ``python`` block of ``README.md`` and ``docs/**/*.md`` is executed in a fresh
working folder. Snippets that use the example data need ``../shared/data`` (skipped without
it); the one that applies a trained model gets a tiny model file and scene made here (the
files it names: ``run/model.gkm``, ``rgb.tif``, ``nir.tif``).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _snippets() -> list[tuple[str, str]]:
    out = []
    for md in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        text = md.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            line = text[: m.start()].count("\n") + 1
            out.append((f"{md.relative_to(ROOT)}:{line}", m.group(1)))
    return out


SNIPPETS = _snippets()


def test_snippets_were_found():
    files = {name.split(":")[0] for name, _ in SNIPPETS}
    assert "README.md" in files and len(SNIPPETS) >= 6


def _tiny_model_and_scene(folder: Path) -> None:
    """``run/model.gkm`` (a stand-in for a trained optical model) and ``rgb.tif``/``nir.tif``."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    import rasterio
    from affine import Affine

    from glacierkit.dl.bundle import bundle_from_model, register_arch, save_bundle
    from glacierkit.dl.export import export_onnx
    from glacierkit.dl.sources import NormStats, SourceLayout, prepare_channels

    monkeypatch_path = str(ROOT / "tests" / "test_dl")
    if monkeypatch_path not in sys.path:
        sys.path.insert(0, monkeypatch_path)
    from standins import BrightStandIn

    register_arch("bright-standin", BrightStandIn)
    rng = np.random.default_rng(0)
    h, w = 96, 128
    yy, xx = np.mgrid[0:h, 0:w]
    ice = ((yy - 40) ** 2 + (xx - 60) ** 2 < 30**2).astype(np.float32)
    bands = np.stack([40 + 150 * ice + 8 * rng.standard_normal((h, w)) for _ in range(4)])
    bands = np.clip(bands, 0, 255).astype(np.uint8)
    profile = {"driver": "GTiff", "height": h, "width": w, "dtype": "uint8",
               "crs": "EPSG:32645", "transform": Affine(30, 0, 470000, 0, -30, 3100000)}
    with rasterio.open(folder / "rgb.tif", "w", count=3, **profile) as ds:
        ds.write(bands[:3])
    with rasterio.open(folder / "nir.tif", "w", count=1, **profile) as ds:
        ds.write(bands[3:])
    layout = SourceLayout.standard(("red", "green", "blue", "nir"))
    x = prepare_channels(layout, [bands.astype(np.float32)], pixel_size=(30.0, 30.0))
    norm = NormStats.fit([x], names=layout.names)
    torch.manual_seed(0)
    model = BrightStandIn(group_channels=(4,)).eval()
    onnx = export_onnx(model, group_channels=(4,), cond_dim=0, example_size=(32, 32))
    bundle = bundle_from_model(
        model, layout=layout.to_dict(), norm=norm.to_dict(), classes=["background", "glacier"],
        tile={"size": 64, "overlap": 16}, training={"group_dropout": 0.0},
        model_kwargs={"group_channels": [4], "n_classes": 2, "cond_dim": 0}, onnx_bytes=onnx)
    (folder / "run").mkdir()
    save_bundle(folder / "run" / "model.gkm", bundle)


@pytest.mark.parametrize(("where", "code"), SNIPPETS, ids=[n for n, _ in SNIPPETS])
def test_snippet_runs(where: str, code: str, tmp_path: Path, monkeypatch, request):
    if "examples.path(" in code:
        request.getfixturevalue("shared_data")  # skips when the example data are absent
    if "import torch" in code or "glacierkit.dl" in code:
        pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    if "run/model.gkm" in code:
        _tiny_model_and_scene(tmp_path)
    exec(compile(code, where, "exec"), {"__name__": "__snippet__"})
