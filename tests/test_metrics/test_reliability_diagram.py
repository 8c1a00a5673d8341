"""Reliability diagram PNG: written atomically, one or two panels, refuses to overwrite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from glacierkit.errors import InputError, OutputExistsError
from glacierkit.metrics import reliability_bins
from glacierkit.viz.reliability import reliability_diagram


def test_reliability_diagram_before_after(tmp_path: Path):
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1.0, 5000)
    before = reliability_bins(conf, rng.random(5000) < conf**3)
    after = reliability_bins(conf, rng.random(5000) < conf)
    one = reliability_diagram(before, path=tmp_path / "one.png", title="t")
    two = reliability_diagram(before, after.to_dict(), path=tmp_path / "two.png")
    with Image.open(one) as a, Image.open(two) as b:
        w1, w2 = a.size[0], b.size[0]
        img = np.asarray(b.convert("RGB")).astype(int)
    assert w2 > 1.8 * w1  # side by side
    # Both bar colours (blue before, green after) are drawn.
    blue = (img[..., 2] > 150) & (img[..., 0] < 80) & (img[..., 1] < 150)
    green = (img[..., 1] > 120) & (img[..., 0] < 100) & (img[..., 2] < 100)
    assert blue.sum() > 500 and green.sum() > 500
    with pytest.raises(OutputExistsError):
        reliability_diagram(before, path=one)
    reliability_diagram(after, path=one, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.png", "two.png"]
    with pytest.raises(InputError, match="ReliabilityBins"):
        reliability_diagram([0.1, 0.2], path=tmp_path / "x.png")
