"""The demo's ``index.html`` in a real headless browser: it renders, and every figure loads.

Runs the fast foundation and velocity steps of the demo on the real example data, then opens
the page in headless Chromium (skipped where Chromium is not installed, e.g. on CI machines).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from glacierkit.demo import FOUNDATION_STEPS, VELOCITY_STEPS, run_demo

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


@pytest.mark.realdata
@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed")
def test_demo_index_renders_with_every_figure(tmp_path: Path, shared_data):
    out = tmp_path / "demo"
    run_demo(out, steps=[*FOUNDATION_STEPS, *VELOCITY_STEPS])
    page = (out / "index.html").resolve().as_uri()
    profile = ["--user-data-dir=" + str(tmp_path / "profile")]
    dom = subprocess.run([CHROMIUM, *FLAGS, *profile, "--dump-dom", page], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    images = re.findall(r'<img[^>]*src="([^"]+)"', dom)
    # one figure per foundation step with a figure, and the velocity quicklook
    assert len(images) >= 4 and "velocity_yahtse/quicklook.png" in images
    for src in images:
        assert (out / src).is_file() and (out / src).stat().st_size > 10_000, src
    shot = tmp_path / "page.png"
    subprocess.run([CHROMIUM, *FLAGS, *profile, "--window-size=1280,4000",
                    f"--screenshot={shot}", page], capture_output=True, timeout=120,
                   check=True)
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (4000, 1280)
    # a rendered page with figures: many non-white pixels, not a blank or error page
    assert (pixels < 200).mean() > 0.10
