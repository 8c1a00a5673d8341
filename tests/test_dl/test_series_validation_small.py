"""A small, fast run of ``benchmarks/sar_series_validation.py`` (synthetic SAR series).

The real experiment (Ötztal grid at 60 m, three series models, 20 seeds) takes minutes; this
runs the same code path on a coarse grid (90 m) with U-TAE only, a short schedule and three
seeds, and checks that every number is produced and that the trained date-aware model beats
chance on held-out (test-part) pixels under both protocols. The whole-scene check (model file,
ONNX export, ``predict_scene`` on GeoTIFFs) is the ``slow`` test: exporting U-TAE to ONNX
alone takes about a minute on two cores.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "sar_series_validation.py"


def _module():
    spec = importlib.util.spec_from_file_location("sar_series_validation", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules[spec.name] = mod     # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def _small_run(tmp: Path, *, whole_scene: bool) -> dict:
    from glacierkit.errors import DatasetNotFoundError

    mod = _module()
    opts = mod.Options(pixel_size_m=90.0, patch=32, buffer_px=8, batch=8, epochs=4,
                       samples=96, lr=3e-3, seeds=3, cal_seeds=(1001,), hold_seeds=(1002, 1003),
                       archs=("utae",),
                       whole_scene=whole_scene, tile=128, overlap=32, tile_sweep=(),
                       n_resamples=500, threads=1, out=str(tmp))
    try:
        rep = mod.run(opts)
    except DatasetNotFoundError:
        pytest.skip("oggm_sample_data not found")
    rep["_tables"] = mod.tables(rep)
    return rep


@pytest.fixture(scope="module")
def report(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _small_run(tmp_path_factory.mktemp("sar-series"), whole_scene=False)


def _finite(x: float) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def test_every_number_is_produced(report: dict) -> None:
    mod = _module()
    assert report["synthetic"] is True
    assert set(report["models"]) == {"utae-a", "utae-b"}
    assert set(report["baselines"]) == {"nr-defaults-a", "nr-defaults-b", "nr-generator-a",
                                        "nr-generator-b"}
    for name, r in report["models"].items():
        assert len(r["per_seed"]) == 3, name
        for key in ("iou", "f1", "area_dev_pct", "area_dev_km2", "boundary_mean_m",
                    "boundary_median_m", "ece_before", "ece_after_patches",
                    *(f"ece_after_{c}" for c in mod.CAL_SETS),
                    *(f"expected_area_km2_{c}" for c in mod.CAL_SETS)):
            assert _finite(r["metrics"][key]["mean"]), (name, key)
        assert r["calibration_patches"]["method"] in ("none", "temperature", "isotonic")
        assert r["calibration"]["new-series"]["series"] == ["seed1001"]
        for cal in ("train-series", "new-series"):
            assert r["calibration"][cal]["method"] in ("none", "temperature", "isotonic")
        assert r["calibration"]["new-series-glacier"]["series"] == ["seed1001"]
        for cal in mod.CAL_SETS:
            assert set(r["pixels_per_sample"][cal]) == {"corr", "seeds"}
            assert min(r["pixels_per_sample"][cal].values()) >= 1.0
            assert r["correlation"][cal]["n_pixels"] > 0
            assert _finite(r["correlation"][cal]["between_seeds_c"])
            assert _finite(r["area_error_km2"][cal]["rmse"])
            for key, _, _ in mod.INTERVALS:
                cov = r["coverage"][cal][key]
                assert cov["n"] == 3 and 0 <= cov["covered"] <= 3
                for s in r["per_seed"]:
                    a = s["areas"][cal][key]
                    assert a["lower_km2"] <= a["expected_km2"] <= a["upper_km2"]
    for r in report["models"].values():
        for i, s in enumerate(r["per_seed"], start=1):
            assert 0 <= s["n_melt_dates"] <= s["n_dates"]
            assert (s["n_melt_dates"] == 0) == (i in r["seeds_without_melt_date"])
    # protocol (a) is regular with 15 dates; (b) irregular with fewer
    assert report["models"]["utae-a"]["metrics"]["n_dates"]["mean"] == 15
    nb = [s["n_dates"] for s in report["models"]["utae-b"]["per_seed"]]
    assert all(5 <= n <= 14 for n in nb)
    # the regular-series baseline with the generator's windows is an easy case: near perfect
    assert report["baselines"]["nr-generator-a"]["metrics"]["iou"]["mean"] > 0.8
    assert report["training"]["utae"]["train_s"] > 0
    for k in ("jitter_db=0.4", "jitter_db=0.0"):
        ab = report["jitter_ablation"][k]["utae-a"]
        assert ab["n"] == 3 and _finite(ab["mean_km2"]) and _finite(ab["std_km2"])
    assert "| U-TAE | (b) irregular |" in report["_tables"]


def test_date_aware_model_beats_chance_on_test_pixels(report: dict) -> None:
    """IoU well above that of calling every test pixel glacier (= the glacier share)."""
    share = (report["scene"]["true_test_area_km2"] * 1e6
             / (report["scene"]["test_pixels"] * report["scene"]["pixel_m"] ** 2))
    assert 0.03 < share < 0.5
    for name in ("utae-a", "utae-b"):
        ious = [s["iou"] for s in report["models"][name]["per_seed"]]
        assert min(ious) > max(2 * share, 0.3), (name, ious, share)


def test_area_intervals(report: dict) -> None:
    mod = _module()
    true = report["scene"]["true_test_area_km2"]
    for name, r in report["models"].items():
        for s in r["per_seed"]:
            assert s["true_area_km2"] == pytest.approx(true)
            for cal in mod.CAL_SETS:
                # four short epochs: the expected area is biased, but of the right size
                assert abs(s[f"expected_area_km2_{cal}"] - true) < 0.4 * true, name
                a = s["areas"][cal]
                # c from validation >= 1: not narrower than the c = 1 interval (up to the
                # Monte-Carlo noise of 500 resamples)
                w1 = a["bernoulli c=1"]["upper_km2"] - a["bernoulli c=1"]["lower_km2"]
                for est in ("corr", "seeds"):
                    b = a[f"bernoulli c={est}"]
                    assert b["upper_km2"] - b["lower_km2"] >= 0.9 * w1
                for key, _, _ in mod.INTERVALS:
                    b = a[key]
                    assert b["covered"] == (b["lower_km2"] <= true <= b["upper_km2"])


@pytest.mark.slow
def test_whole_scene_matches_in_memory(shared_data: Path, tmp_path: Path) -> None:
    report = _small_run(tmp_path, whole_scene=True)
    checks = report["whole_scene"]
    assert {c["protocol"] for c in checks} == {"a", "b"}
    for c in checks:
        assert c["n_test_pixels_predicted"] == report["scene"]["test_pixels"]
        assert abs(c["iou_whole_scene"] - c["iou_in_memory"]) < 0.05, c
        assert c["agreement_with_in_memory"] > 0.95, c
        assert np.isfinite(c["glacier_probability_test_mean"])
