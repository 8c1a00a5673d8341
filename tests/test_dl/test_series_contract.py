"""The time axis of the deep-learning contract: several timed groups (backscatter and
coherence) share one date axis; items, normalisation and a model call follow it."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from affine import Affine  # noqa: E402

from glacierkit.dl.data import Augment, PatchDataset  # noqa: E402
from glacierkit.dl.models import build_model, call_model, model_inputs  # noqa: E402
from glacierkit.dl.sources import (  # noqa: E402
    NormStats,
    SourceGroup,
    SourceLayout,
    scene_from_arrays,
    series_days,
)
from glacierkit.errors import InputError  # noqa: E402
from glacierkit.io.grid import Grid  # noqa: E402

LAYOUT = SourceLayout((SourceGroup("s1", "sar", ("vv_db",), bands=("vv",), time=True),
                       SourceGroup("coh", "coherence", ("coherence",), time=True)))
GRID = Grid(crs="EPSG:32632", transform=Affine(20, 0, 600000, 0, -20, 5200000), shape=(48, 48))


def _scene(t: int = 6):
    rng = np.random.default_rng(0)
    power = rng.gamma(4, 0.1 / 4, (t, 1, 48, 48)).astype(np.float32)
    power[2, 0, :10, :10] = np.nan  # layover/shadow on one date
    coh = rng.uniform(0.1, 0.9, (t, 1, 48, 48)).astype(np.float32)
    acquired = np.datetime64("2021-01-10") + np.arange(t) * np.timedelta64(24, "D")
    days, ref = series_days(acquired)
    assert ref == "2021-01-01" and days[0] == 9.0
    return scene_from_arrays(LAYOUT, GRID, {"s1": power, "coh": coh}, dates=days), power


def test_two_timed_groups_share_the_date_axis():
    scene, power = _scene()
    assert scene.series.shape == (6, 2, 48, 48) and scene.data.shape == (0, 48, 48)
    # power → dB for the SAR group, coherence as is; NaN kept as nodata
    assert np.allclose(scene.series[0, 0], 10 * np.log10(power[0, 0]), atol=1e-5)
    assert np.isnan(scene.series[2, 0, 0, 0]) and scene.valid_mask()[0, 0]
    norm = NormStats.fit([scene])
    assert norm.n_channels == 2 and -20 < norm.mean[0] < -5 and 0.3 < norm.mean[1] < 0.7
    ds = PatchDataset([scene], [np.ones((48, 48), np.uint8)], patch_size=16, norm=norm,
                      augment=Augment(date_dropout=0.5, date_jitter_days=2.0),
                      samples_per_epoch=8)
    item = ds[0]
    assert item["series"].shape == (6, 2, 16, 16) and item["dates"].shape == (6,)
    assert 1 <= int(item["mask"].sum()) <= 6
    # a dropped date is zero in every channel
    dropped = item["mask"] == 0
    assert torch.all(item["series"][dropped] == 0)
    model = build_model("utae", group_channels=(1, 1), n_classes=2, size="tiny").eval()
    batch = {k: v[None] for k, v in item.items() if k in ("series", "dates", "mask")}
    with torch.inference_mode():
        assert call_model(model, model_inputs(model, batch)).shape == (1, 2, 16, 16)


def test_a_series_model_refuses_single_date_batches_and_the_reverse():
    utae = build_model("utae", group_channels=(1,), n_classes=2, size="tiny")
    glavitu = build_model("glavitu", group_channels=(4,), n_classes=2, size="tiny")
    with pytest.raises(InputError, match=r"takes a time series"):
        model_inputs(utae, {"x": torch.zeros(1, 4, 32, 32), "present": torch.ones(1, 1)})
    with pytest.raises(InputError, match=r"takes single-date inputs"):
        model_inputs(glavitu, {"series": torch.zeros(1, 3, 1, 32, 32),
                               "dates": torch.zeros(1, 3), "mask": torch.ones(1, 3)})


def test_scene_checks_of_the_time_axis():
    _, power = _scene()
    with pytest.raises(InputError, match="dates="):
        scene_from_arrays(LAYOUT, GRID, {"s1": power})
    with pytest.raises(InputError, match="sorted"):
        scene_from_arrays(LAYOUT, GRID, {"s1": power}, dates=[5, 4, 3, 2, 1, 0])
    with pytest.raises(InputError, match="cannot carry a time axis"):
        SourceGroup("dem", "dem", ("elevation",), time=True)
    with pytest.raises(InputError, match="scale"):
        SourceGroup("s1", "sar", ("vv_db",), scale="decibel")
