"""The Nagler–Rott backscatter-ratio baseline: a known synthetic answer, products, real data."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from series_synth import ASC, DSC, write_tif

from glacierkit.errors import InputError, OutputExistsError
from glacierkit.series import open_series
from glacierkit.series.baseline import NODATA, run_sar_ratio, sar_ratio

DATES = ["20210110", "20210122", "20210203", "20210215", "20210410",
         "20210705", "20210717", "20210729", "20210810", "20210822"]


def _scene(i: int, h: int = 40, w: int = 30) -> np.ndarray:
    """Linear power, −8 dB ± speckle; the block rows 10–29, cols 5–19 drops 6 dB in Jul–Aug."""
    rng = np.random.default_rng(i)
    db = -8.0 + rng.normal(0.0, 0.5, (h, w))
    if DATES[i][4:6] in ("07", "08"):
        db[10:30, 5:20] -= 6.0
    return (10 ** (db / 10)).astype(np.float32)


def _expected(h: int = 40, w: int = 30) -> np.ndarray:
    cls = np.zeros((h, w), dtype=np.uint8)
    cls[10:30, 5:20] = 1
    return cls


def test_sar_ratio_known_answer():
    power = np.stack([_scene(i) for i in range(len(DATES))])
    db = 10 * np.log10(power)
    db[:, 0, 0] = np.nan  # never observed
    db[5:, 1, 1] = np.nan  # not observed in the melt season
    db[0, 2, 2] = np.nan  # missing once in the reference season: still classified
    dates = [f"{d[:4]}-{d[4:6]}-{d[6:]}" for d in DATES]
    r = sar_ratio(db, dates)
    assert r.melt_index.tolist() == [5, 6, 7, 8, 9] and r.reference_index.tolist() == [0, 1, 2, 3]
    expected = _expected()
    expected[0, 0] = expected[1, 1] = NODATA
    np.testing.assert_array_equal(r.classes, expected)
    assert r.classes.dtype == np.uint8 and r.ratio_db.dtype == np.float32
    inside = r.ratio_db[10:30, 5:20]
    assert abs(float(np.mean(inside)) + 6.0) < 0.2
    outside = r.ratio_db[30:, :]
    assert abs(float(np.mean(outside))) < 0.2
    assert np.isnan(r.ratio_db[0, 0]) and np.isnan(r.ratio_db[1, 1])
    assert np.isfinite(r.ratio_db[2, 2])
    # A stricter threshold than the 6 dB drop: nothing is wet.
    assert not (sar_ratio(db, dates, threshold_db=-8.0).classes == 1).any()
    # Southern-hemisphere style seasons: the drop is now "reference", nothing below −3 dB.
    south = sar_ratio(db, dates, melt=(1, 2), reference=(7, 8))
    assert not (south.classes == 1).any()


def test_sar_ratio_errors():
    db = np.zeros((3, 4, 4), dtype=np.float32)
    dates = ["2021-01-10", "2021-02-10", "2021-03-10"]
    with pytest.raises(InputError) as err:
        sar_ratio(db, dates)
    msg = str(err.value)
    assert "no date of the series falls in the melt season (7, 8)" in msg
    assert "months [1, 2, 3]" in msg and "melt=(start, end)" in msg
    with pytest.raises(InputError, match="reference season"):
        sar_ratio(db, dates, melt=(3, 3), reference=(11, 12))
    with pytest.raises(InputError, match="overlap"):
        sar_ratio(db, dates, melt=(2, 3), reference=(1, 2))
    with pytest.raises(InputError, match=r"\(T, H, W\)"):
        sar_ratio(db[:, None], dates)
    with pytest.raises(InputError, match="dates has 2 entries"):
        sar_ratio(db, dates[:2])
    with pytest.raises(InputError, match="finite"):
        sar_ratio(db, dates, melt=(3, 3), threshold_db=float("nan"))


def test_run_sar_ratio_products(tmp_path):
    for i, d in enumerate(DATES):
        img = _scene(i)
        img[:, -1] = 0.0  # a nodata column (layover/shadow)
        write_tif(tmp_path / "s1" / DSC.format(d), img)
    stack = open_series(tmp_path / "s1", scale="power")
    out = tmp_path / "out"
    # Tiny memory budget: several row blocks; same result as the whole-array function.
    info = run_sar_ratio(stack, out, max_memory="20kB", min_area_km2=0)
    whole = sar_ratio(stack.to_db(stack.read()[:, 0]), stack.dates)
    with rasterio.open(out / "classes.tif") as ds:
        classes = ds.read(1)
        assert ds.dtypes[0] == "uint8" and ds.nodata == NODATA
        assert ds.tags()["CLASSES"] == "0=off_glacier,1=glacier"
        assert ds.colormap(1)[1] == (80, 170, 255, 255)
        assert ds.crs.to_epsg() == 32645
    with rasterio.open(out / "ratio_db.tif") as ds:
        ratio = ds.read(1)
        assert ds.dtypes[0] == "float32" and np.isnan(ds.nodata) and ds.units == ("dB",)
    np.testing.assert_array_equal(classes, whole.classes)
    np.testing.assert_allclose(ratio, whole.ratio_db, atol=1e-5)
    expected = _expected()
    expected[:, -1] = NODATA
    np.testing.assert_array_equal(classes, expected)
    outlines = gpd.read_file(out / "outlines.gpkg", layer="outlines")
    assert len(outlines) == 1
    assert outlines["area_km2"].sum() == pytest.approx(20 * 15 * 400 / 1e6)
    assert len(gpd.read_file(out / "outlines.gpkg", layer="footprint")) == 1
    report = json.loads((out / "sar_ratio.json").read_text())
    assert report == info
    assert report["n_glacier_px"] == 300 and report["n_valid_px"] == 40 * 29
    assert len(report["melt_dates"]) == 5 and len(report["reference_dates"]) == 4
    assert report["passes"] == ["descending"] and report["warnings"] == []
    with pytest.raises(OutputExistsError):
        run_sar_ratio(stack, out)
    run_sar_ratio(stack, out, overwrite=True)


def test_run_sar_ratio_refuses_mixed_passes(tmp_path):
    for i, d in enumerate(DATES[:2] + DATES[5:7]):
        write_tif(tmp_path / (ASC if i % 2 else DSC).format(d), _scene(i))
    stack = open_series(tmp_path, scale="power", direction="all")
    with pytest.raises(InputError, match="mixes ascending and descending") as err:
        run_sar_ratio(stack, tmp_path / "out")
    assert "direction='ascending'" in str(err.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.realdata
def test_tsho_rolpa_descending(tsho_dir, tmp_path):
    stack = open_series(tsho_dir, scale="power", direction="descending")
    info = run_sar_ratio(stack, tmp_path / "out")
    assert len(info["melt_dates"]) == 8 and len(info["reference_dates"]) == 4
    # Mostly unchanged backscatter, a wet-snow / melting-surface share well below half.
    assert -2.0 < info["median_ratio_db"] < 1.0
    assert 0.05 < info["glacier_fraction"] < 0.4
    assert info["n_valid_px"] > 0.8 * 135 * 144
