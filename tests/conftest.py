"""Shared fixtures: the real data folder and small synthetic rasters with real CRSs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from hypothesis import settings

REPO = Path(__file__).resolve().parents[1]


def _shared_data() -> Path | None:
    env = os.environ.get("GLACIERKIT_DATA")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "data"]:
        if cand.is_dir():
            return cand
    return None


SHARED = _shared_data()

# Property tests explore random examples locally; CI (HYPOTHESIS_PROFILE=ci, set by .ci/run)
# runs a fixed, reproducible set so that a result never depends on the run's luck.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real example data folder; tests using it skip when it is absent."""
    if SHARED is None:
        pytest.skip("../shared/data (or GLACIERKIT_DATA) not available")
    return SHARED


@pytest.fixture(scope="session")
def yahtse(shared_data: Path) -> Path:
    return shared_data / "carst_yahtse_landsat8_pair"


def write_tif(path: Path, data: np.ndarray, *, crs: str | None = "EPSG:32607",
              transform: Affine | None = None, nodata: float | int | None = None,
              **extra) -> Path:
    """Write a small plain GeoTIFF (not through glacierkit) for reader tests."""
    arr = data if data.ndim == 3 else data[None]
    transform = transform or Affine(30.0, 0, 500000.0, 0, -30.0, 6700000.0)
    with rasterio.open(path, "w", driver="GTiff", width=arr.shape[2], height=arr.shape[1],
                       count=arr.shape[0], dtype=arr.dtype, crs=crs, transform=transform,
                       nodata=nodata, **extra) as ds:
        ds.write(arr)
    return path


def write_optical_scene(folder: Path, h: int = 96, w: int = 128) -> tuple[Path, Path]:
    """A 4-band uint8 optical scene (a bright disc of ice) as ``rgb.tif`` + ``nir.tif``.

    Returns the two paths, in ``folder``; EPSG:32645, 30 m pixels.
    """
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    ice = ((yy - 40) ** 2 + (xx - 60) ** 2 < 30**2).astype(np.float32)
    bands = np.clip(np.stack([40 + 150 * ice + 8 * rng.standard_normal((h, w))
                              for _ in range(4)]), 0, 255).astype(np.uint8)
    profile = {"driver": "GTiff", "height": h, "width": w, "dtype": "uint8",
               "crs": "EPSG:32645", "transform": Affine(30, 0, 470000, 0, -30, 3100000)}
    with rasterio.open(folder / "rgb.tif", "w", count=3, **profile) as ds:
        ds.write(bands[:3])
    with rasterio.open(folder / "nir.tif", "w", count=1, **profile) as ds:
        ds.write(bands[3:])
    return folder / "rgb.tif", folder / "nir.tif"


@pytest.fixture
def optical_scene(tmp_path: Path) -> tuple[Path, Path]:
    """:func:`write_optical_scene` in ``tmp_path``: ``(rgb.tif, nir.tif)``."""
    return write_optical_scene(tmp_path)


@pytest.fixture
def tif_factory(tmp_path: Path):
    def make(name: str, data: np.ndarray, **kw) -> Path:
        return write_tif(tmp_path / name, data, **kw)

    return make


_BLOCK_TORCH = """
import sys

class _BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name == 'torch' or name.startswith('torch.'):
            raise ImportError(f'{name} is blocked in this test')
        return None

sys.meta_path.insert(0, _BlockTorch())
try:
    import torch  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit('torch was not blocked')
"""

_TORCH_ABSENT = """
assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules)
print('ok')
"""


@pytest.fixture
def run_without_torch():
    """``run(code)``: run ``code`` in a fresh interpreter with torch blocked; assert it ends
    with torch still unimported and prints ``ok`` last."""
    import os
    import subprocess
    import sys

    def run(code: str) -> None:
        res = subprocess.run([sys.executable, "-c", _BLOCK_TORCH + code + _TORCH_ABSENT],
                             capture_output=True, text=True, timeout=120,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip().splitlines()[-1] == "ok"

    return run
