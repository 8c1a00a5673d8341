"""Classic threshold baseline: synthetic known answers and the real Everest Landsat-7 scene."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from glacierkit.errors import InputError
from glacierkit.mapping import baseline_classes


def test_ndsi_known_answer_and_auto_choice():
    green = np.array([[0.8, 0.3, np.nan], [0.5, 0.6, 0.0]])
    swir = np.array([[0.1, 0.2, 0.1], [0.2142, 0.2143, 0.0]])
    # NDSI: 0.7/0.9 = .778 ✓, 0.1/0.5 = .2 ✗, NaN → nodata, .2858/.7142 = .4002 ✓,
    # .3857/.8143 = .4737 ✓, 0/0 → 0 ✗.
    cls, info = baseline_classes({"green": green, "swir1": swir, "red": green})
    assert cls.tolist() == [[1, 0, 255], [1, 1, 0]] and cls.dtype == np.uint8
    assert info["method"] == "ndsi" and info["threshold"] == 0.4
    assert info["threshold_source"] == "default" and info["bands_used"] == ["green", "swir1"]
    assert (info["n_glacier_px"], info["n_valid_px"], info["n_nodata_px"]) == (3, 5, 1)
    json.dumps(info)
    cls2, _ = baseline_classes({"green": green, "swir1": swir}, threshold=0.45)
    assert cls2.tolist() == [[1, 0, 255], [0, 1, 0]]


def test_ratio_red_or_nir_over_swir():
    red = np.array([[3.0, 1.5, 2.0, 5.0, 0.0]])
    swir = np.array([[1.0, 1.0, 1.0, 0.0, 0.0]])
    cls, info = baseline_classes({"red": red, "swir1": swir})
    # 3 > 2 ✓, 1.5 ✗, 2.0 is not > 2 ✗, 5/0 = +inf ✓, 0/0 → 0 ✗
    assert cls.tolist() == [[1, 0, 0, 1, 0]]
    assert info["method"] == "ratio" and info["index"] == "red/swir1"
    _, info = baseline_classes({"nir": red, "swir2": swir})
    assert info["method"] == "ratio" and info["index"] == "nir/swir2"
    cls, info = baseline_classes({"red": red, "swir1": swir, "green": red}, method="ratio",
                                 threshold=1.0)
    assert cls.tolist() == [[1, 1, 1, 1, 0]] and info["threshold_source"] == "given"


def test_brightness_otsu_splits_a_bimodal_scene():
    rng = np.random.default_rng(0)
    truth = np.zeros((60, 80), bool)
    truth[10:40, 30:70] = True
    bands = {b: np.where(truth, 200.0, 60.0) + rng.normal(0, 10, truth.shape)
             for b in ("red", "green", "blue", "nir")}
    bands["red"][0, 0] = np.nan
    cls, info = baseline_classes(bands)
    assert info["method"] == "brightness" and info["threshold_source"] == "otsu"
    assert info["index"] == "mean(blue, green, red, nir)"
    # Means of 4 bands: 200 ± 5 vs 60 ± 5, fully separated; every threshold in the gap is
    # Otsu-optimal (equal between-class variance), so it must lie in the gap.
    bright = np.mean([bands[b] for b in ("blue", "green", "red", "nir")], axis=0)
    off = bright[~truth & np.isfinite(bright)]
    assert off.max() <= info["threshold"] < bright[truth].min()
    assert cls[0, 0] == 255
    expect = truth.astype(np.uint8)
    expect[0, 0] = 255
    np.testing.assert_array_equal(cls, expect)
    cls, info = baseline_classes(bands, threshold=250.0)
    assert info["n_glacier_px"] == 0
    valid = np.ones(truth.shape, bool)
    valid[:, :5] = False
    cls, info = baseline_classes(bands, valid=valid)
    assert (cls[:, :5] == 255).all() and info["n_nodata_px"] == 60 * 5  # (0, 0) is in there


def test_min_area_and_hole_filling():
    img = np.zeros((20, 20))
    img[2:9, 2:9] = 1.0          # 7×7 block with a 2×2 hole (45 px)
    img[4:6, 4:6] = 0.0
    img[15, 15] = 1.0            # single pixel
    img[15:17, 2:4] = 1.0        # 4-pixel clump
    bands = {"nir": img}
    cls, info = baseline_classes(bands, threshold=0.5)
    assert info["n_glacier_px"] == 45 + 1 + 4
    cls, info = baseline_classes(bands, threshold=0.5, min_area_px=4)  # removes < 4 px
    assert cls[15, 15] == 0 and cls[15:17, 2:4].all() and info["removed_px"] == 1
    cls, info = baseline_classes(bands, threshold=0.5, min_area_px=5)
    assert not cls[15:17, 2:4].any() and info["removed_px"] == 5
    cls, info = baseline_classes(bands, threshold=0.5, fill_holes=4)  # holes < 4 px only
    assert info["filled_px"] == 0 and not cls[4:6, 4:6].any()
    cls, info = baseline_classes(bands, threshold=0.5, fill_holes=5)
    assert info["filled_px"] == 4 and cls[4:6, 4:6].all()
    cls, info = baseline_classes(bands, threshold=0.5, fill_holes=True)
    assert info["filled_px"] == 4


def test_bad_inputs():
    a = np.ones((3, 3))
    with pytest.raises(InputError, match="unknown band"):
        baseline_classes({"thermal": a})
    with pytest.raises(InputError, match="one shape"):
        baseline_classes({"red": a, "nir": np.ones((3, 4))})
    with pytest.raises(InputError, match="needs the bands"):
        baseline_classes({"red": a, "nir": a}, method="ndsi")
    with pytest.raises(InputError, match="constant"):
        baseline_classes({"red": a})
    with pytest.raises(InputError, match="no valid pixel"):
        baseline_classes({"red": np.full((2, 2), np.nan)})
    with pytest.raises(InputError, match="method must be"):
        baseline_classes({"red": a}, method="kmeans")
    with pytest.raises(InputError, match="no bands"):
        baseline_classes({})


@pytest.mark.realdata
def test_everest_landsat7_baseline_vs_rgi(shared_data: Path):
    from glacierkit.io import open_raster
    from glacierkit.metrics import evaluate_outlines

    d = shared_data / "geoutils_everest_exploradores" / "Everest_Landsat"
    rgb = open_raster(d / "LE71400412000304SGS00_RGB.tif")
    nir = open_raster(d / "LE71400412000304SGS00_B4.tif")
    bands = {"red": rgb.data[0], "green": rgb.data[1], "blue": rgb.data[2], "nir": nir.data[0]}
    cls, info = baseline_classes(bands)
    assert info["method"] == "brightness" and info["threshold_source"] == "otsu"
    # RGI outlines (EPSG:4326) are reprojected to the raster's EPSG:32645 and rasterized.
    res = evaluate_outlines((cls, rgb.grid), d / "15_rgi60_glacier_outlines.gpkg")
    assert res["mode"] == "raster/vector" and res["crs"] == "EPSG:32645"
    assert res["n_pixels"] == 655 * 800 and res["pixel_size_m"] == 30.0
    # Measured (2000-10-30 scene, Otsu threshold 168.6 on the 0–255 brightness):
    # IoU 0.535, F1 0.697, precision 0.723, recall 0.673, area 237.0 vs 254.5 km² (−6.9 %),
    # boundary mean 193 m, p95 666 m. Floors leave a margin for library version drift.
    assert 160 < info["threshold"] < 180
    assert res["iou"] > 0.50 and res["f1"] > 0.66
    assert res["area_ref_km2"] == pytest.approx(254.5, rel=0.01)
    assert abs(res["area_dev_pct"]) < 12
    assert res["boundary_mean_m"] < 230 and res["boundary_p95_m"] < 800
