"""Date selection: a fixed number per year (evenly spread targets) and all in a period."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from glacierkit.errors import InputError
from glacierkit.series.select import in_season, parse_season, select_all, select_per_year


def _every(days: int, start: str = "2020-01-03", end: str = "2022-01-01") -> np.ndarray:
    return np.arange(np.datetime64(start), np.datetime64(end),
                     np.timedelta64(days, "D")).astype("datetime64[s]")


def test_per_year_every_12_days():
    d = _every(12)  # 31 dates in 2020, 30 in 2021
    idx = select_per_year(d, 15)
    assert idx.dtype == np.int64 and np.all(np.diff(idx) > 0) and idx.size == 30
    years = d[idx].astype("datetime64[Y]").astype(int) + 1970
    assert np.bincount(years - 2020).tolist() == [15, 15]
    # Evenly spread: about every second date, gaps of 24 (± 12) days.
    gaps = np.diff(d[idx][:15]).astype("timedelta64[D]").astype(int)
    assert set(gaps) <= {12, 24, 36} and np.median(gaps) == 24
    # Each pick is the acquisition nearest its target (the centre of one of 15 equal parts).
    start = np.datetime64("2020-01-01T00:00:00")
    targets = start + ((np.arange(15) + 0.5) * 366 * 86400 / 15).astype("timedelta64[s]")
    assert np.all(np.abs(d[idx][:15] - targets) <= np.timedelta64(6 * 86400, "s"))
    assert select_per_year(d, 15, year=2021).tolist() == idx[15:].tolist()
    # Unsorted input: positions refer to the input.
    perm = np.random.default_rng(0).permutation(d.size)
    assert sorted(d[perm][select_per_year(d[perm], 15)].tolist()) == d[idx].tolist()


def test_per_year_clusters_and_season():
    # Three dates close together and two far apart: one date per target, not the cluster.
    d = np.array(["2021-01-10", "2021-06-01", "2021-06-02", "2021-06-03", "2021-12-20"],
                 dtype="datetime64[s]")
    assert select_per_year(d, 3).tolist() == [0, 3, 4]  # targets: 1 Mar, 2 Jul, 31 Oct
    summer = select_per_year(_every(6), 4, year=2021, season=(6, 9))
    sel = _every(6)[summer]
    assert sel.size == 4 and sel.min() >= np.datetime64("2021-06-01")
    assert sel.max() < np.datetime64("2021-10-01")
    assert select_per_year(_every(6), 2, year=2021, season=("07-01", "07-31")).size == 2


def test_per_year_errors():
    d = _every(12)
    with pytest.raises(InputError) as err:
        select_per_year(d, 31)
    msg = str(err.value)
    assert "fewer dates than the model needs" in msg and "31 dates per year" in msg
    assert "30 in 2021" in msg and "2020" not in msg.split("found only")[1]
    with pytest.raises(InputError, match="found only 0 in 2019"):
        select_per_year(d, 15, year=2019)
    with pytest.raises(InputError, match="positive whole number"):
        select_per_year(d, 0)
    with pytest.raises(InputError, match="wraps over the new year"):
        select_per_year(d, 3, season=(11, 2))
    with pytest.raises(InputError, match="no date falls in the season"):
        select_per_year(d[:3], 1, season=(7, 8))


def test_select_all_and_seasons():
    d = _every(12)
    assert select_all(d).tolist() == list(range(d.size))
    noon = d + np.timedelta64(12, "h")
    idx = select_all(noon, start="2021-12-01", end="2021-12-23")  # end: the whole day
    assert [str(x) for x in noon[idx]] == ["2021-12-11T12:00:00", "2021-12-23T12:00:00"]
    assert select_all(noon, start=dt.datetime(2021, 12, 23, 12)).tolist() == [d.size - 1]
    assert select_all(noon, end=np.datetime64("2020-01-03T12:00")).tolist() == [0]
    with pytest.raises(InputError, match="no date between"):
        select_all(d, start="2023-01-01")
    with pytest.raises(InputError, match="is after end"):
        select_all(d, start="2021-02-01", end="2021-01-01")
    assert parse_season((7, 8)) == ((7, 1), (8, 31))
    assert parse_season(("06-15", 9)) == ((6, 15), (9, 31))
    for bad in ((13, 1), ("02-30", 3), (7,), "7-8"):
        with pytest.raises(InputError):
            parse_season(bad)  # type: ignore[arg-type]
    dates = np.array(["2021-01-31", "2021-02-28", "2021-03-01", "2021-11-30", "2021-12-01"],
                     dtype="datetime64[D]")
    assert in_season(dates, (1, 2)).tolist() == [True, True, False, False, False]
    assert in_season(dates, (12, 2)).tolist() == [True, True, False, False, True]
    assert in_season(["2020-02-29"], (2, 2)).tolist() == [True]
