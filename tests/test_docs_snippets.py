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


def _tiny_model(folder: Path, rgb: Path, nir: Path) -> None:
    """``run/model.gkm``: a stand-in for a trained optical model of the scene rgb + nir."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    test_dl = str(ROOT / "tests" / "test_dl")
    if test_dl not in sys.path:
        sys.path.insert(0, test_dl)
    from standins import save_optical_standin

    (folder / "run").mkdir()
    save_optical_standin(folder / "run" / "model.gkm", rgb, nir, onnx=True)


@pytest.mark.parametrize(("where", "code"), SNIPPETS, ids=[n for n, _ in SNIPPETS])
def test_snippet_runs(where: str, code: str, tmp_path: Path, monkeypatch, request):
    if "examples.path(" in code:
        request.getfixturevalue("shared_data")  # skips when the example data are absent
    if "import torch" in code or "glacierkit.dl" in code:
        pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    if "run/model.gkm" in code:
        _tiny_model(tmp_path, *request.getfixturevalue("optical_scene"))
    exec(compile(code, where, "exec"), {"__name__": "__snippet__"})
