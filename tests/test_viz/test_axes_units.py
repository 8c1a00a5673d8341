"""Non-map figures name their units on every axis."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from glacierkit.errors import InputError

UNITS = re.compile(r"\(.+\)$")


def test_reliability_diagram_axes_have_units(monkeypatch, tmp_path: Path):
    import glacierkit.viz.reliability as rel
    from glacierkit.metrics.calibration import reliability_bins

    seen = []
    monkeypatch.setattr(rel, "save_png", lambda fig, path: seen.append(fig))
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1.0, 500)
    correct = rng.random(500) < conf
    bins = reliability_bins(conf, correct)
    rel.reliability_diagram(bins, bins, path=tmp_path / "r.png")
    (fig,) = seen
    assert len(fig.axes) == 2
    for ax in fig.axes:
        assert UNITS.search(ax.get_xlabel()) and "0–1" in ax.get_xlabel()
        assert UNITS.search(ax.get_ylabel()) and "0–1" in ax.get_ylabel()


def test_scatter_png_requires_units_on_axes(tmp_path: Path):
    from glacierkit.massbalance.study import scatter_png

    panel = {"x": [1.0, 2.0, 3.0], "y": [0.5, 0.1, -0.4], "xlabel": "AAR",
             "ylabel": "annual balance (m w.e.)"}
    with pytest.raises(InputError, match="names no units"):
        scatter_png(tmp_path / "s.png", [panel])
    assert not (tmp_path / "s.png").exists()
    panel["xlabel"] = "AAR (fraction, 0–1)"
    assert scatter_png(tmp_path / "s.png", [panel]).stat().st_size > 1000
