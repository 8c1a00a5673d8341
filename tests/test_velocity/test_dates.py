from __future__ import annotations

from pathlib import Path

import pytest

from glacierkit.errors import InputError
from glacierkit.velocity.dates import (
    acquisition_from_name,
    pair_time_separation,
    parse_time,
    read_mtl,
)


def test_yahtse_pair_from_mtl(yahtse: Path):
    ts = pair_time_separation(yahtse / "LC80630182016200LGN00_B8_yahtse.TIF",
                              yahtse / "LC80630182016216LGN00_B8_yahtse.TIF")
    assert ts.reference.time.isoformat().startswith("2016-07-18T20:37:06")
    assert ts.secondary.time.isoformat().startswith("2016-08-03T20:37:09")
    # 16 days plus 3.1245 s between scene centre times.
    assert ts.dt_days == pytest.approx(16 + 3.124455 / 86400, abs=1e-7)
    assert "MTL" in ts.source


def test_read_mtl(yahtse: Path):
    a = read_mtl(yahtse / "LC80630182016216LGN00_MTL.txt")
    assert (a.time.year, a.time.month, a.time.day, a.time.hour) == (2016, 8, 3, 20)


@pytest.mark.parametrize(("name", "iso"), [
    ("LC80630182016200LGN00_B8.TIF", "2016-07-18T00:00:00+00:00"),
    ("LC08_L1TP_063018_20160718_20200906_02_T1_B8.TIF", "2016-07-18T00:00:00+00:00"),
    ("S2A_MSIL1C_20170517T103021_N0205_R108_T32TNS_20170517T103021.tif",
     "2017-05-17T10:30:21+00:00"),
    ("T32TNS_20170815T102021_B08.jp2", "2017-08-15T10:20:21+00:00"),
    ("S1A_IW_GRDH_1SDV_20180101T054512_20180101T054537_019955_021FB1_1234.tif",
     "2018-01-01T05:45:12+00:00"),
    ("RGI50-11.A10G05_20170517.tif", "2017-05-17T00:00:00+00:00"),
    ("20200101.jpg", "2020-01-01T00:00:00+00:00"),
])
def test_names(name: str, iso: str):
    assert acquisition_from_name(name).time.isoformat() == iso


def test_unknown_name():
    assert acquisition_from_name("scene_a.tif") is None


def test_explicit_sources_win(tmp_path: Path):
    ts = pair_time_separation("a_20200101.tif", "b_20200111.tif", dt_days=3.5)
    assert ts.dt_days == 3.5 and ts.source == "dt_days given"
    ts = pair_time_separation(dates=("2020-01-01", "2020-01-17T12:00:00Z"))
    assert ts.dt_days == 16.5


@pytest.mark.parametrize("dt", [0, -1.0])
def test_dt_not_positive(dt):
    with pytest.raises(InputError, match="> 0"):
        pair_time_separation(dt_days=dt)


def test_secondary_before_reference():
    with pytest.raises(InputError, match="after the reference"):
        pair_time_separation("x_20200111.tif", "y_20200101.tif")
    with pytest.raises(InputError, match="after the reference"):
        pair_time_separation(dates=("2020-01-01", "2020-01-01"))


def test_missing_dates_message(tmp_path: Path):
    with pytest.raises(InputError, match="--dt-days"):
        pair_time_separation(tmp_path / "a.tif", tmp_path / "b.tif")


def test_parse_time_errors():
    with pytest.raises(InputError, match="ISO 8601"):
        parse_time("yesterday")
