"""open_series / SeriesStack: sources, checks with helpful messages, windowed reads, dB."""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from rasterio.windows import Window
from series_synth import ASC, DSC, TRANSFORM, power_image, write_series, write_tif

from glacierkit.dl.sources import SAR_FLOOR
from glacierkit.errors import DatasetNotFoundError, GridMismatchError, InputError
from glacierkit.io import Grid
from glacierkit.series import SeriesStack, guess_scale_hint, open_series, to_db

DAYS = ["20210122", "20210203", "20210215", "20210227"]


# ---------------------------------------------------------------------------- real data
@pytest.mark.realdata
def test_tsho_rolpa_stack(tsho_dir):
    with pytest.raises(InputError, match="43 ascending and 23 descending") as err:
        open_series(tsho_dir, scale="power")
    assert "direction='ascending'" in str(err.value)
    stack = open_series(tsho_dir, scale="power", direction="all")
    assert stack.n_dates == len(stack) == 66 and stack.bands == 1
    assert Counter(stack.directions) == {"ascending": 43, "descending": 23}
    assert stack.grid.epsg == 32645 and stack.grid.shape == (135, 144)
    assert stack.grid.res == (20.0, 20.0)
    d = stack.dates
    assert d.dtype == np.dtype("datetime64[s]") and np.all(np.diff(d) > np.timedelta64(0, "s"))
    assert str(d[0]) == "2015-07-26T12:21:48" and str(d[-1]) == "2025-09-22T00:11:25"
    a = stack.read()
    assert a.shape == (66, 1, 135, 144) and a.dtype == np.float32
    # nodata 0 (layover/shadow) is NaN, nothing else is.
    assert 0.03 < np.isnan(a).mean() < 0.12 and not (a == 0).any() and np.nanmin(a) > 0
    db = stack.to_db(a)
    med = np.nanmedian(db, axis=(1, 2, 3))
    assert np.all((med > -10) & (med < -5.5))
    assert -9.0 < float(np.nanmedian(db)) < -7.0
    # Windowed read = the same pixels of the full read.
    win = Window(30, 40, 50, 20)
    np.testing.assert_array_equal(stack.read(win), a[:, :, 40:60, 30:80])
    asc = open_series(tsho_dir, scale="power", direction="ascending")
    dsc = open_series(tsho_dir, scale="power", direction="descending")
    assert (asc.n_dates, dsc.n_dates) == (43, 23)
    assert set(asc.directions) == {"ascending"} and set(dsc.directions) == {"descending"}
    days = dsc.days_since("2021-01-01")
    assert days.dtype == np.float32 and days.shape == (23,)
    assert days[1] == pytest.approx(21 + (11 * 60 + 30) / 86400, abs=1e-4)  # 2021-01-22 00:11:30
    with pytest.raises(InputError, match=r"looks? like linear|look like linear") as err:
        open_series(tsho_dir, scale="db", direction="all")
    assert "median of 0.1" in str(err.value) and "'power'" in str(err.value)


# ---------------------------------------------------------------------------- sources
def test_folder_glob_list_and_csv(tmp_path):
    paths = write_series(tmp_path / "s1", [DSC.format(d) for d in DAYS])
    write_tif(tmp_path / "s1" / "notes.txt.tif.aux", np.ones((2, 2)))  # not a .tif
    (tmp_path / "s1" / "readme.txt").write_text("x")
    folder = open_series(tmp_path / "s1", scale="power")
    assert folder.paths == tuple(paths)
    assert folder.directions == ("descending",) * 4
    assert folder.grid.shape == (12, 10) and folder.nodata is None
    glob = open_series(str(tmp_path / "s1" / "*_VV.tif"), scale="power")
    assert glob.paths == folder.paths
    listed = open_series(list(reversed(paths)), scale="power")
    assert listed.paths == folder.paths  # sorted by time, not by the given order
    assert str(listed).startswith("SeriesStack(4 dates 2021-01-22 … 2021-02-27")

    # CSV: relative paths, explicit dates (overriding the names) and passes.
    (tmp_path / "plain").mkdir()
    for i, p in enumerate(paths):
        (tmp_path / "plain" / f"img{i}.tif").write_bytes(p.read_bytes())
    table = tmp_path / "plain" / "series.csv"
    table.write_text("path,date,pass\n"
                     "img1.tif,2021-02-03,A\n"
                     "img0.tif,2021-01-22T00:11:30,\n"
                     f"{tmp_path / 'plain' / 'img2.tif'},2021-02-15,asc\n")
    st = open_series(table, scale="power", direction="all")
    assert [p.name for p in st.paths] == ["img0.tif", "img1.tif", "img2.tif"]
    assert st.directions == ("descending", "ascending", "ascending")  # row 2: from its time
    assert [f.has_time for f in st.files] == [True, False, False]
    assert str(st.dates[1]) == "2021-02-03T00:00:00"
    # Explicit dates: a bare date has an unknown pass.
    plain = sorted((tmp_path / "plain").glob("img*.tif"))
    ex = open_series(plain, scale="power",
                     dates=["2021-03-01", dt.date(2021, 2, 1), np.datetime64("2021-01-01"),
                            dt.datetime(2021, 4, 1, 12, 20)])
    assert [str(x)[:10] for x in ex.dates] == ["2021-01-01", "2021-02-01", "2021-03-01",
                                               "2021-04-01"]
    assert ex.directions == (None, None, None, "ascending")
    assert [p.name for p in ex.paths] == ["img2.tif", "img1.tif", "img0.tif", "img3.tif"]


def test_source_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no raster file"):
        open_series(tmp_path / "empty", scale="power")
    with pytest.raises(InputError, match="holds no raster file"):
        open_series(str(tmp_path / "empty" / "*.tif"), scale="power")
    paths = write_series(tmp_path / "s1", [DSC.format(d) for d in DAYS[:2]])
    with pytest.raises(DatasetNotFoundError, match=r"1 file.*do not exist: .*gone.tif"):
        open_series([*paths, tmp_path / "gone.tif"], scale="power")
    with pytest.raises(InputError, match="dates has 1 entries but the list of files lists 2"):
        open_series(paths, scale="power", dates=["2021-01-01"])
    with pytest.raises(InputError, match=r"scale=None; choose 'power'"):
        open_series(paths, scale=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        open_series(paths)  # type: ignore[call-arg]  # scale is required
    with pytest.raises(InputError, match="direction='up'"):
        open_series(paths, scale="power", direction="up")
    bad = tmp_path / "bad.csv"
    bad.write_text("file,when\na.tif,2021-01-01\n")
    with pytest.raises(InputError, match="needs the columns 'path' and 'date'"):
        open_series(bad, scale="power")
    bad.write_text(f"path,date\n{paths[0]},22/01/2021\n")
    with pytest.raises(InputError, match=r"bad.csv, line 2, date: '22/01/2021' is not a date"):
        open_series(bad, scale="power")


def test_unparsable_and_duplicate_dates(tmp_path):
    p = write_series(tmp_path / "a", ["glacier_vv.tif", "vv_20211345.tif",
                                      DSC.format("20210122")])
    with pytest.raises(InputError) as err:
        open_series(tmp_path / "a", scale="power")
    msg = str(err.value)
    assert "2 file(s)" in msg and "glacier_vv.tif" in msg and "vv_20211345.tif" in msg
    assert "dates=[...]" in msg and "path,date[,pass]" in msg
    # Explicit dates repair it.
    assert open_series(p, scale="power", dates=["2021-01-01", "2021-01-02", "2021-01-22"])

    q = write_series(tmp_path / "b", ["vv_20210122.tif", "vh_20210122.tif", "x_20210203.tif"])
    with pytest.raises(InputError, match=r"occur more than once.*2021-01-22T00:00:00 \(unknown "
                                         r"pass\): .*vh_20210122.tif, .*vv_20210122.tif"):
        open_series(q, scale="power")
    # Same day, different passes: fine.
    ok = open_series(q, scale="power", passes=["A", "D", None], direction="all")
    assert ok.directions == ("ascending", "descending", None)
    # Same time, same pass twice: refused.
    r = write_series(tmp_path / "c", [ASC.format("20210122"),
                                      ASC.format("20210122").replace("0BB8", "0BB9")])
    with pytest.raises(InputError, match=r"2021-01-22T12:21:48 \(ascending\)"):
        open_series(r, scale="power")


def test_passes(tmp_path):
    paths = write_series(tmp_path, [DSC.format("20210122"), ASC.format("20210127"),
                                    DSC.format("20210203"), "vv_20210210.tif"])
    with pytest.raises(InputError, match="1 ascending and 2 descending") as err:
        open_series(paths, scale="power")
    assert "direction='ascending'" in str(err.value) and "direction='all'" in str(err.value)
    # Unknown passes do not count as mixed ...
    assert open_series([paths[0], paths[2], paths[3]], scale="power").n_dates == 3
    # ... but cannot be chosen.
    with pytest.raises(InputError, match=r"pass of 1 file.*unknown.*vv_20210210.tif"):
        open_series(paths, scale="power", direction="descending")
    dsc = open_series(paths[:3], scale="power", direction="descending")
    assert dsc.n_dates == 2 and dsc.directions == ("descending", "descending")
    with pytest.raises(InputError, match="leaves no file"):
        open_series(paths[:1], scale="power", direction="ascending")
    assert open_series(paths, scale="power", direction="all").n_dates == 4


# ---------------------------------------------------------------------------- grids
def test_different_grids(tmp_path):
    names = [DSC.format(d) for d in DAYS[:3]]
    write_tif(tmp_path / names[0], power_image(0))
    write_tif(tmp_path / names[1], power_image(1), transform=TRANSFORM @ Affine.translation(3, 0))
    write_tif(tmp_path / names[2], power_image(2))
    with pytest.raises(GridMismatchError, match="not on the same grid") as err:
        open_series(tmp_path, scale="power")
    assert names[1] in str(err.value) and "align" in str(err.value)
    write_tif(tmp_path / names[1], power_image(1), crs="EPSG:32644")
    with pytest.raises(GridMismatchError, match="CRS"):
        open_series(tmp_path, scale="power")

    # align=True: warped onto the first date's grid when read (logged), files untouched.
    write_tif(tmp_path / names[1], power_image(1), transform=TRANSFORM @ Affine.translation(3, 0))
    st = open_series(tmp_path, scale="power", align=True, resampling="nearest")
    assert st.aligned and st.grid.almost_equals(Grid(st.grid.crs, TRANSFORM, (12, 10)))
    a = st.read()
    assert a.shape == (3, 1, 12, 10)
    np.testing.assert_array_equal(a[1, 0, :, 3:], power_image(1)[:, :7])  # shifted 3 columns
    assert np.isnan(a[1, 0, :, :3]).all()
    np.testing.assert_array_equal(st.read(Window(4, 2, 5, 6))[1], a[1, :, 2:8, 4:9])


# ---------------------------------------------------------------------------- nodata, scale
def test_nodata_and_empty_dates(tmp_path, caplog):
    names = [DSC.format(d) for d in DAYS]
    img = power_image(0)
    img[:3] = 0.0  # nodata 0
    img[5, 5] = np.inf
    write_tif(tmp_path / names[0], img)
    write_tif(tmp_path / names[1], np.zeros((12, 10)))  # all nodata
    write_tif(tmp_path / names[2], np.where(power_image(2) > 0.2, -9999, power_image(2)),
              nodata=-9999)
    write_tif(tmp_path / names[3], power_image(3), nodata=None)
    with pytest.raises(InputError, match=r"1 date\(s\) hold no valid pixel.*" + names[1]) as e:
        open_series(tmp_path, scale="power")
    assert "drop_empty=True" in str(e.value)
    with caplog.at_level(logging.WARNING, logger="glacierkit.series.stack"):
        st = open_series(tmp_path, scale="power", drop_empty=True)
    assert names[1] in caplog.text
    assert st.n_dates == 3 and [f.path.name for f in st.dropped] == [names[1]]
    a = st.read()
    assert np.isnan(a[0, 0, :3]).all() and np.isnan(a[0, 0, 5, 5])
    assert np.isfinite(a[0, 0, 3:5]).all()
    assert np.isnan(a[1, 0][power_image(2) > 0.2]).all()
    assert np.isfinite(a[2]).all()
    # A user nodata value on top of the files' own.
    st2 = open_series(tmp_path, scale="power", drop_empty=True,
                      nodata=float(power_image(3)[0, 0]))
    assert np.isnan(st2.read()[2, 0, 0, 0])


def test_scale_checks(tmp_path):
    db_files = [write_tif(tmp_path / "db" / DSC.format(d),
                          10 * np.log10(power_image(i)), nodata=None)
                for i, d in enumerate(DAYS[:2])]
    with pytest.raises(InputError, match="negative") as err:
        open_series(db_files, scale="power")
    msg = str(err.value)
    assert "look like dB" in msg and "likely scale 'db'" in msg and "scale='db'" in msg
    assert "median -" in msg
    assert open_series(db_files, scale="db").scale == "db"
    with pytest.raises(InputError, match=r"amplitude.*negative"):
        open_series(db_files, scale="amplitude")
    lin = write_series(tmp_path / "lin", [DSC.format(d) for d in DAYS[:2]])
    with pytest.raises(InputError, match=r"scale='db', but .* median of 0.1") as err:
        open_series(lin, scale="db")
    assert "scale='power'" in str(err.value)
    assert guess_scale_hint(np.array([-12.0, -8.0, 1.0])) == "db"
    assert guess_scale_hint(np.array([0.01, 0.05, 0.08])) == "power"
    assert guess_scale_hint(np.array([0.3, 0.4, np.nan])) == "linear"
    assert guess_scale_hint(np.array([2.0, 3.0])) == "amplitude"
    assert guess_scale_hint(np.array([np.nan])) is None


def test_band_counts_must_agree(tmp_path):
    write_tif(tmp_path / DSC.format(DAYS[0]), np.stack([power_image(0), power_image(1)]))
    write_tif(tmp_path / DSC.format(DAYS[1]), power_image(2))
    with pytest.raises(InputError, match="different band counts"):
        open_series(tmp_path, scale="power")


# ---------------------------------------------------------------------------- the stack
def test_to_db_read_bands_subset(tmp_path):
    p = np.array([[1.0, 0.1, 0.0, np.nan]], dtype=np.float32)
    np.testing.assert_allclose(to_db(p, "power"), [[0.0, -10.0, 10 * np.log10(SAR_FLOOR),
                                                    np.nan]], atol=1e-5)
    np.testing.assert_allclose(to_db(np.sqrt(p), "amplitude"), to_db(p, "power"), atol=1e-4)
    x = np.array([-7.0], dtype=np.float32)
    assert to_db(x, "db") is x
    with pytest.raises(InputError, match="scale='linear'"):
        to_db(p, "linear")

    for i, d in enumerate(DAYS):
        write_tif(tmp_path / DSC.format(d), np.stack([power_image(i), power_image(10 + i)]))
    st = open_series(tmp_path, scale="power")
    assert st.bands == 2
    assert st.read(bands=[2]).shape == (4, 1, 12, 10)
    np.testing.assert_array_equal(st.read(bands=[2])[:, 0], st.read()[:, 1])
    with pytest.raises(InputError, match="bands=\\[3\\]"):
        st.read(bands=[3])
    sub = st.subset([3, -4, 1])
    assert isinstance(sub, SeriesStack) and sub.n_dates == 3
    assert list(sub.dates) == list(st.dates[[0, 1, 3]])
    assert st.subset(np.array([True, False, False, True])).n_dates == 2
    with pytest.raises(InputError, match="out of range"):
        st.subset([4])
    with pytest.raises(InputError, match="no date"):
        st.subset([])
    with pytest.raises(InputError, match="shape \\(4,\\)"):
        st.subset(np.array([True, False]))
    assert np.all(np.diff(st.days_since(dt.datetime(2021, 1, 22, 0, 11, 30))) == 12)
    assert st.days_since(np.datetime64("2021-01-22T00:11:30"))[0] == 0
    assert st.days_since(dt.date(2021, 1, 23))[0] < 0


def test_single_file_path(tmp_path: Path):
    p = write_series(tmp_path, [DSC.format(DAYS[0])])[0]
    st = open_series(p, scale="power")
    assert st.n_dates == 1 and st.paths == (p,)
