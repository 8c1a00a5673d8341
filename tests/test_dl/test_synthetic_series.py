"""The synthetic Sentinel-1 RTC time-series generator (glacierkit.dl.synthetic_series)."""

from __future__ import annotations

import csv
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from glacierkit.dl.synthetic_series import (
    PASSES,
    PassGeometry,
    SeriesClass,
    SeriesParams,
    layover_shadow,
    melt_weight,
    real_grid_scene,
    sample_dates,
    synthetic_series,
    write_synthetic_series,
)
from glacierkit.errors import DatasetNotFoundError, InputError, OutputExistsError
from glacierkit.io import Grid

QUIET = SeriesParams(jitter_db=0.0, texture_db=0.0)   # class means exactly, speckle only


def _labels(h: int = 48, w: int = 64) -> np.ndarray:
    lab = np.zeros((h, w), np.uint8)
    lab[:, w // 2:] = 1
    lab[:4, :4] = 255
    return lab


def _cone(h: int = 48, w: int = 64, *, height: float = 3000.0) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    r = np.hypot(yy - h / 2, xx - w / 2)
    return np.maximum(height - r * 150.0, 0.0)          # 150 m per 20 m pixel: ~82° slopes


def _db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.nanmean(x)))


# ---------------------------------------------------------------------------- dates
def test_sample_dates_regular_follow_the_12_day_cycle():
    d = sample_dates(2021, per_year=15)
    assert len(d) == 30
    assert [t for t, _ in d] == sorted(t for t, _ in d)
    for ps in PASSES:
        ts = [t for t, p in d if p == ps]
        assert len(ts) == 15 and all(t.year == 2021 and t.tzinfo is not None for t in ts)
        gaps = np.diff([t.timestamp() / 86400 for t in ts])
        assert np.allclose(gaps % 12, 0) and gaps.min() >= 12
    # local solar time 18:08 / 05:57 at Tsho Rolpa = 12:22 / 00:11 UTC, as measured
    asc = {(t.hour, t.minute) for t, p in d if p == "ascending"}
    desc = {(t.hour, t.minute) for t, p in d if p == "descending"}
    assert asc == {(12, 22)} and desc == {(0, 11)}
    alps = sample_dates(2021, per_year=2, passes=("ascending",), longitude=10.9)
    assert {t.hour for t, _ in alps} == {17}


def test_sample_dates_irregular_missing_and_months_are_seeded():
    a = sample_dates((2021, 2022), mode="irregular", per_year=10, missing_fraction=0.2,
                     seed=3, months=range(1, 10))
    b = sample_dates((2021, 2022), mode="irregular", per_year=10, missing_fraction=0.2,
                     seed=3, months=range(1, 10))
    c = sample_dates((2021, 2022), mode="irregular", per_year=10, missing_fraction=0.2,
                     seed=4, months=range(1, 10))
    assert a == b and a != c
    assert len(a) == 40 - 8
    assert all(t.month <= 9 for t, _ in a)
    assert len(sample_dates((2021, 2023), n=7)) == 7


@pytest.mark.parametrize("kwargs", [
    {"years": (2022, 2021)}, {"years": 2021, "per_year": 40}, {"years": 2021, "mode": "x"},
    {"years": 2021, "passes": ("sideways",)}, {"years": 2021, "missing_fraction": 1.0},
    {"years": 2021, "months": [13]}, {"years": 2021, "n": 0},
])
def test_sample_dates_rejects_bad_arguments(kwargs):
    with pytest.raises(InputError):
        sample_dates(**kwargs)


def test_melt_weight_window_ramp_and_wrap():
    w = (152, 273)                                      # 1 June – 30 September
    assert melt_weight(date(2021, 5, 31), w, 10) == 0.0
    assert melt_weight(date(2021, 6, 1), w, 10) == pytest.approx(0.1)
    assert melt_weight(date(2021, 7, 15), w, 10) == 1.0
    assert melt_weight(date(2021, 9, 30), w, 10) == pytest.approx(0.1)
    assert melt_weight(date(2021, 10, 1), w, 10) == 0.0
    assert melt_weight(date(2021, 6, 1), w, 0) == 1.0
    south = (335, 60)                                   # December – February
    assert melt_weight(date(2021, 1, 15), south, 0) == 1.0
    assert melt_weight(date(2021, 7, 15), south, 0) == 0.0


# ---------------------------------------------------------------------------- series
def test_series_shapes_dtypes_and_reproducibility():
    d = sample_dates(2021, per_year=3)
    lab = _labels()
    r = synthetic_series(lab, d, dem=_cone(), seed=5)
    t = len(d)
    assert r.power.shape == (t, 48, 64) and r.power.dtype == np.float32
    assert r.valid.shape == (t, 48, 64) and r.valid.dtype == np.bool_
    assert r.coherence is not None and r.coherence.shape == (t, 48, 64)
    assert r.coherence.dtype == np.float32
    assert r.dates == [x for x, _ in d] and r.directions == [p for _, p in d]
    assert np.array_equal(np.isfinite(r.power), r.valid)
    assert np.all(r.power[r.valid] > 0)
    assert r.classes[0, 0] == 0                          # 255 (ignore) → default class
    again = synthetic_series(lab, d, dem=_cone(), seed=5)
    assert np.array_equal(r.power, again.power, equal_nan=True)
    assert np.array_equal(r.coherence, again.coherence, equal_nan=True)
    other = synthetic_series(lab, d, dem=_cone(), seed=6)
    assert not np.array_equal(r.power, other.power, equal_nan=True)


def test_speckle_enl_matches_looks():
    lab = np.zeros((256, 256), np.uint8)
    for looks in (4.0, 20.0):
        p = SeriesParams(jitter_db=0.0, texture_db=0.0, looks=looks)
        r = synthetic_series(lab, [(datetime(2021, 1, 10, 12), "ascending")], params=p,
                             seed=1, with_coherence=False)
        v = r.power[0].astype(np.float64).ravel()
        enl = v.mean() ** 2 / v.var(ddof=1)
        # 65 536 samples: relative std of the estimate ≈ sqrt((2 + 6/L) / n) < 1 %
        assert enl == pytest.approx(looks, rel=0.05)
        assert _db(v) == pytest.approx(-6.5, abs=0.05)


def test_melt_drop_only_on_glacier_and_only_in_the_window():
    d = [(datetime(2021, 1, 15, 12, 22), "ascending"), (datetime(2021, 7, 20, 12, 22),
                                                          "ascending"),
         (datetime(2021, 10, 20, 12, 22), "ascending")]
    r = synthetic_series(_labels(96, 128), d, params=QUIET, seed=2, with_coherence=False)
    assert list(r.melt) == [0.0, 1.0, 0.0]
    gl, rock = r.classes == 1, r.classes == 0
    g = [_db(r.power[i][gl]) for i in range(3)]
    k = [_db(r.power[i][rock]) for i in range(3)]
    assert g[1] - g[0] == pytest.approx(-4.5, abs=0.15)  # wet snow: −11.0 vs −6.5 dB
    assert g[2] == pytest.approx(g[0], abs=0.1)
    assert k[1] - k[0] == pytest.approx(0.9, abs=0.15)   # measured monsoon rise, no drop
    assert k[2] == pytest.approx(k[0], abs=0.1)


def test_water_mask_is_class_2():
    lab = np.zeros((64, 64), np.uint8)
    water = np.zeros((64, 64), bool)
    water[:32] = True
    r = synthetic_series(lab, [(datetime(2021, 8, 1), "descending")], water=water,
                         params=QUIET, seed=0, with_coherence=False)
    assert set(np.unique(r.classes[water])) == {2}
    assert _db(r.power[0][water]) == pytest.approx(-16.0, abs=0.1)   # open water


def test_layover_faces_the_sensor_shadow_faces_away():
    dem = _cone()
    h, w = dem.shape
    asc = SeriesParams().ascending                       # sensor in the west, looking east
    lay, sha = layover_shadow(dem, (20.0, 20.0), incidence_deg=asc.incidence_deg,
                              look_azimuth_deg=asc.look_azimuth_deg)
    assert lay.any() and sha.any()
    assert np.nonzero(lay)[1].mean() < w / 2 - 5          # mostly the west (sensor-facing)
    assert np.nonzero(sha)[1].mean() > w / 2 + 5          # and the east slope
    assert not (lay & sha).any()
    flat = layover_shadow(np.zeros((8, 8)), (20.0, 20.0), incidence_deg=39,
                          look_azimuth_deg=77)
    assert not flat[0].any() and not flat[1].any()
    r = synthetic_series(np.zeros((h, w), np.uint8),
                         [(datetime(2021, 1, 1, 12), "ascending"),
                          (datetime(2021, 1, 6), "descending")], dem=dem, seed=0)
    assert np.array_equal(~r.valid[0], r.layover["ascending"] | r.shadow["ascending"])
    assert np.array_equal(~r.valid[1], r.layover["descending"] | r.shadow["descending"])
    assert not np.array_equal(r.valid[0], r.valid[1])


def test_coherence_pairs_within_a_pass():
    d = [(datetime(2021, 1, 1, 12) + timedelta(days=12 * k), "ascending") for k in range(3)]
    d += [(datetime(2021, 1, 6, 0) + timedelta(days=12 * k), "descending") for k in range(2)]
    r = synthetic_series(_labels(64, 64), d, seed=3)
    coh = r.coherence
    first = [0, 3]                                       # first date of each pass: no pair
    assert np.isnan(coh[first]).all()
    rest = coh[[1, 2, 4]]
    assert np.nanmin(rest) >= 0 and np.nanmax(rest) <= 1
    rock, gl = r.classes == 0, r.classes == 1
    assert np.nanmean(rest[:, rock]) == pytest.approx(0.60, abs=0.06)
    assert np.nanmean(rest[:, gl]) < 0.35


@pytest.mark.parametrize("case", ["dem", "water", "empty", "float", "dup", "pair", "pass"])
def test_bad_inputs_raise_input_error(case):
    lab = _labels()
    d = [(datetime(2021, 1, 1), "ascending")]
    kw = {}
    if case == "dem":
        kw["dem"] = np.zeros((10, 10))
    elif case == "water":
        kw["water"] = np.zeros((10, 10), bool)
    elif case == "empty":
        d = []
    elif case == "float":
        lab = lab.astype(float)
    elif case == "dup":
        d = d * 2
    elif case == "pair":
        d = [datetime(2021, 1, 1)]
    elif case == "pass":
        d = [(datetime(2021, 1, 1), "left")]
    with pytest.raises(InputError):
        synthetic_series(lab, d, **kw)


def test_params_validate():
    with pytest.raises(InputError):
        SeriesClass(dry_db=-6, melt_db=-10, coherence=1.5)
    with pytest.raises(InputError):
        SeriesParams(looks=0.5)
    with pytest.raises(InputError):
        SeriesParams(melt_window_doy=(0, 400))
    with pytest.raises(InputError):
        PassGeometry(incidence_deg=95, look_azimuth_deg=77, local_solar_h=18)
    with pytest.raises(InputError):
        SeriesParams().geometry("sideways")
    assert SeriesParams().to_dict()["classes"]["1"]["melt_db"] == -11.0


# ---------------------------------------------------------------------------- writing
NAME = re.compile(r"^S1A_IW_(\d{8}T\d{6})_DVP_RTC60_G_gpufed_[0-9A-F]{4}_VV\.tif$")


def test_write_series_hyp3_names_nodata_and_csv(tmp_path: Path):
    grid = Grid(crs="EPSG:32632", transform=Affine(60, 0, 630000, 0, -60, 5190000),
                shape=(48, 64))
    d = sample_dates(2021, per_year=2)
    out = tmp_path / "series"
    paths = write_synthetic_series(out, _labels(), grid, d, dem=_cone(), seed=4)
    assert len(paths) == len(d)
    with open(out / "dates.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["path"] for r in rows] == [p.name for p in paths]
    for p, (t, ps), row in zip(paths, d, rows, strict=True):
        m = NAME.match(p.name)
        assert m and m.group(1) == t.strftime("%Y%m%dT%H%M%S")
        assert datetime.fromisoformat(row["date"].replace("Z", "+00:00")) == t
        assert row["pass"] == ps
        with rasterio.open(p) as ds:
            assert ds.crs.to_epsg() == 32632 and ds.nodata == 0.0 and ds.count == 1
            a = ds.read(1)
            assert a.dtype == np.float32 and ds.tags()["SYNTHETIC"] == "1"
            assert ds.tags()["pass"] == ps
        assert np.all(np.isfinite(a)) and (a == 0).any() and np.all(a >= 0)
    with pytest.raises(OutputExistsError):
        write_synthetic_series(out, _labels(), grid, d, seed=4)
    plain = write_synthetic_series(tmp_path / "plain", _labels(), grid, d[:1], seed=4,
                                   name_style="plain", nodata=float("nan"))
    assert plain[0].name == f"{d[0][0]:%Y%m%dT%H%M%S}_{d[0][1]}_VV.tif"
    with pytest.raises(InputError):
        write_synthetic_series(tmp_path / "bad", _labels(10, 10), grid, d, seed=4)


# ---------------------------------------------------------------------------- real grids
@pytest.mark.realdata
def test_real_grid_scene_steep_dem_has_layover(shared_data: Path):
    try:
        sc = real_grid_scene("hintereisferner", pixel_size_m=100.0)
    except DatasetNotFoundError:
        pytest.skip("oggm_sample_data not found")
    h, w = sc.grid.shape
    assert sc.labels.shape == sc.dem.shape == (h, w) and sc.labels.dtype == np.uint8
    assert sc.grid.crs.to_epsg() == 32632
    assert 0.005 < sc.labels.mean() < 0.05               # Hintereisferner ≈ 8 km²
    assert np.isfinite(sc.dem).all() and 1500 < np.nanmedian(sc.dem) < 3500
    r = synthetic_series(sc.labels, sample_dates(2021, per_year=1), dem=sc.dem,
                         pixel_size=(100.0, 100.0), seed=0, with_coherence=False)
    for ps in PASSES:
        assert r.layover[ps].any()
        assert (r.layover[ps] | r.shadow[ps]).mean() < 0.1
    assert not np.array_equal(r.layover["ascending"], r.layover["descending"])


def test_real_grid_scene_rejects_unknown_name():
    with pytest.raises(InputError):
        real_grid_scene("atlantis")
    with pytest.raises(InputError):
        real_grid_scene("oetztal", pixel_size_m=0)


def test_module_does_not_import_torch(run_without_torch):
    run_without_torch("import glacierkit.dl.synthetic_series\n")


def test_dates_accept_naive_and_plain_dates():
    r = synthetic_series(_labels(), [(date(2021, 1, 1), "ascending"),
                                     (datetime(2021, 1, 2, 1), "descending")], seed=0,
                         with_coherence=False)
    assert all(t.tzinfo == UTC for t in r.dates)
