"""Acquisition dates from file names and the pass from the local solar time."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from glacierkit.errors import InputError
from glacierkit.series.dates import (
    normalize_pass,
    parse_acquisition,
    parse_acquisition_details,
    parse_date_text,
    pass_direction,
)


@pytest.mark.parametrize(("name", "expected", "has_time"), [
    # Sentinel-1 SAFE / GRD / SLC: the start of the start/stop pair.
    ("S1A_IW_GRDH_1SDV_20210122T001130_20210122T001155_036262_044142_5E3C.SAFE",
     dt.datetime(2021, 1, 22, 0, 11, 30), True),
    ("/data/2019/S1B_IW_SLC__1SDV_20190105T235950_20190106T000017_014359_01ABCD_9F2E.zip",
     dt.datetime(2019, 1, 5, 23, 59, 50), True),  # stop after midnight; folder date ignored
    # ASF HyP3.
    ("S1A_IW_20150726T122148_SVP_RTC20_G_gpufed_0BB8_VV.tif",
     dt.datetime(2015, 7, 26, 12, 21, 48), True),
    ("S1A_IW_20150726T122148_SVP_RTC20_G_gpufed_0BB8_VV_tshoRolpa.tif",
     dt.datetime(2015, 7, 26, 12, 21, 48), True),
    # Bare tokens.
    ("20200101.jpg", dt.datetime(2020, 1, 1), False),
    ("vv_2021-07-21.tif", dt.datetime(2021, 7, 21), False),
    ("vv_2021_07_21_gamma0.tif", dt.datetime(2021, 7, 21), False),
    ("scene_20210122T001130_vv.tif", dt.datetime(2021, 1, 22, 0, 11, 30), True),
    ("S1_20210122T001130_20210122.tif", dt.datetime(2021, 1, 22, 0, 11, 30), True),
    ("orbit_12345678_20210122.tif", dt.datetime(2021, 1, 22), False),  # 1234 is not a year
])
def test_parse_names(name, expected, has_time):
    assert parse_acquisition_details(name) == (expected, has_time)
    assert parse_acquisition(name) == expected


@pytest.mark.parametrize(("name", "match"), [
    ("glacier_vv.tif", "no acquisition date"),
    ("S1AA_20150504T120217_20150516T120220_VVP012_INT80_G_ueF_F7A5_amp.tif", "ambiguous"),
    ("S2B_MSIL2A_20210721T053649_N0301_R005_T45RVL_20210721T083255.tif", "ambiguous"),
    ("mosaic_20210101_20210131.tif", "ambiguous"),
    ("vv_20211345.tif", "not a valid calendar date"),
    ("vv_2021-02-30.tif", "not a valid calendar date"),
])
def test_bad_names(name, match):
    with pytest.raises(InputError, match=match) as err:
        parse_acquisition(name)
    msg = str(err.value)
    assert name.split("/")[-1] in msg
    assert "dates=" in msg and "path,date[,pass]" in msg  # says how to give dates explicitly


def test_date_text_and_passes():
    assert parse_date_text("2021-01-22") == (dt.datetime(2021, 1, 22), False)
    assert parse_date_text("2021-01-22T00:11:30") == (dt.datetime(2021, 1, 22, 0, 11, 30), True)
    assert parse_date_text("2021-01-22 05:56:30+05:45") == (
        dt.datetime(2021, 1, 22, 0, 11, 30), True)
    assert parse_date_text("20210122T001130")[0] == dt.datetime(2021, 1, 22, 0, 11, 30)
    with pytest.raises(InputError, match="row 3: 'January' is not a date"):
        parse_date_text("January", what="row 3")
    for text, d in (("A", "ascending"), ("desc", "descending"), (" Ascending ", "ascending"),
                    ("", None), (None, None)):
        assert normalize_pass(text) == d
    with pytest.raises(InputError, match="'north' is not a pass"):
        normalize_pass("north")


def test_pass_direction_rule():
    lon = 86.5  # local = UTC + 5.77 h
    assert pass_direction(dt.datetime(2021, 1, 22, 0, 11, 30), lon) == "descending"   # 05:57
    assert pass_direction(dt.datetime(2021, 3, 27, 12, 13, 49), lon) == "ascending"   # 17:59
    assert pass_direction(dt.datetime(2021, 3, 27, 18, 0), lon) == "ascending"        # 23:46
    assert pass_direction(dt.datetime(2021, 3, 27, 18, 30), lon) == "descending"      # 00:16
    assert pass_direction(dt.datetime(2021, 3, 27, 6, 14), lon) == "ascending"        # 12:00
    # Western longitudes: Alaska (−140°) ascending ≈ 03:00 UTC, descending ≈ 15:30 UTC.
    assert pass_direction(dt.datetime(2020, 6, 1, 3, 0), -140.0) == "ascending"
    assert pass_direction(dt.datetime(2020, 6, 1, 15, 30), -140.0) == "descending"
    aware = dt.datetime(2021, 1, 22, 5, 56, 30, tzinfo=dt.timezone(dt.timedelta(hours=5.75)))
    assert pass_direction(aware, lon) == "descending"


@pytest.mark.realdata
def test_tsho_rolpa_names_and_passes(tsho_dir):
    names = sorted(p.name for p in tsho_dir.glob("*.tif"))
    assert len(names) == 66
    times = [parse_acquisition(n) for n in names]
    assert len(set(times)) == 66
    assert min(times).date() == dt.date(2015, 7, 26) and max(times).date() == dt.date(2025, 9, 22)
    passes = Counter(pass_direction(t, 86.47) for t in times)
    assert passes == {"descending": 23, "ascending": 43}
