"""Which dates of a series a method gets: a fixed number per year, or all in a period.

Time-series models with a fixed input length (ICEmapper, Maslov et al., IGARSS 2024: 15
Sentinel-1 dates per map) need a rule that picks T acquisitions per year; models that take
the acquisition dates as input can use every date (:func:`select_all`).

ICEmapper's public code (``apply.py``) takes exactly 15 backscatter scenes chosen by the user
and documents no selection rule, so :func:`select_per_year` is glacierkit's rule: T target
times spread evenly over the year (or over a season), each matched to a different
acquisition so that the summed distance is smallest.

Seasons (``season=``, also used by :mod:`glacierkit.series.baseline`) are ``(start, end)``
pairs, inclusive, each a month number (``7`` = from 1 July / to 31 July) or a ``"MM-DD"``
string (``"07-15"``). Day-of-year numbers are not used: they shift by one day in leap years.

Pass the dates of one orbit pass (``stack.dates`` of a single-pass stack): the functions
look at times only.

Torch-free.
"""

from __future__ import annotations

import calendar
import datetime as _dt
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from glacierkit.errors import InputError
from glacierkit.series.dates import parse_date_text, to_naive_utc

log = logging.getLogger(__name__)

__all__ = ["Season", "in_season", "parse_season", "select_all", "select_per_year"]

MonthDay = tuple[int, int]
Season = tuple[int | str, int | str]
"""A season ``(start, end)``: month numbers or ``"MM-DD"`` strings, both ends inclusive."""


def _month_day(value: int | str, *, end: bool, what: str) -> MonthDay:
    if isinstance(value, bool):
        raise InputError(f"{what}: {value!r} is not a month (1–12) or 'MM-DD'.")
    if isinstance(value, int | np.integer):
        m = int(value)
        if not 1 <= m <= 12:
            raise InputError(f"{what}: month {m} is not 1–12.")
        return (m, 31 if end else 1)
    s = str(value).strip()
    mt = re.fullmatch(r"(\d{1,2})-(\d{1,2})", s)
    if not mt:
        raise InputError(f"{what}: {value!r} is not a month (1–12) or 'MM-DD' (e.g. '07-15').")
    m, d = int(mt[1]), int(mt[2])
    try:
        _dt.date(2000, m, d)  # a leap year: 02-29 is allowed
    except ValueError:
        raise InputError(f"{what}: {value!r} is not a day of the year (MM-DD).") from None
    return (m, d)


def parse_season(season: Season, *, what: str = "season") -> tuple[MonthDay, MonthDay]:
    """``((start_month, start_day), (end_month, end_day))`` of a season, both inclusive.

    A month number as the end means the month's last day (``(8, 31)``; ``(2, 31)`` covers
    29 February). ``start`` after ``end`` wraps over the new year (``(11, 2)``: Nov–Feb).

    Raises:
        InputError: not a pair, a month outside 1–12 or an impossible ``"MM-DD"``.
    """
    if isinstance(season, str) or not isinstance(season, Sequence) or len(season) != 2:
        raise InputError(f"{what}={season!r}: give (start, end), each a month (1–12) or "
                         f"'MM-DD', e.g. (7, 8) for July–August or ('06-15', '09-15').")
    return (_month_day(season[0], end=False, what=f"{what} start"),
            _month_day(season[1], end=True, what=f"{what} end"))


def _as_dates(dates: object) -> np.ndarray:
    try:
        arr = np.asarray(dates)
        if arr.dtype.kind == "M":
            out = arr.astype("datetime64[s]")
        else:
            out = np.array([np.datetime64(to_naive_utc(d), "s") if isinstance(d, _dt.date)
                            else np.datetime64(parse_date_text(str(d), what="date")[0], "s")
                            for d in arr.ravel()], dtype="datetime64[s]")
    except (TypeError, ValueError) as e:
        raise InputError(f"dates must be datetimes, dates, ISO strings or datetime64; "
                         f"{e}") from None
    if out.ndim != 1:
        out = out.ravel()
    if np.isnat(out).any():
        raise InputError("dates hold NaT (not a time); give a time for every date.")
    return out


def _month_days(dates: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Year, month and day of datetime64 values (arrays of ints)."""
    d = dates.astype("datetime64[D]")
    y = d.astype("datetime64[Y]").astype(np.int64) + 1970
    m = d.astype("datetime64[M]").astype(np.int64) % 12 + 1
    day = (d - d.astype("datetime64[M]")).astype(np.int64) + 1
    return y, m, day


def in_season(dates: Sequence[object] | np.ndarray, season: Season) -> np.ndarray:
    """Which dates fall in a season (any year).

    Args:
        dates: Acquisition times, shape (T,) (``datetime64``, datetimes, dates or ISO strings).
        season: ``(start, end)`` (see :func:`parse_season`; may wrap over the new year).

    Returns:
        Boolean array, shape (T,).
    """
    (m0, d0), (m1, d1) = parse_season(season)
    _, m, d = _month_days(_as_dates(dates))
    key = m * 100 + d
    lo, hi = m0 * 100 + d0, m1 * 100 + d1
    return (key >= lo) & (key <= hi) if lo <= hi else (key >= lo) | (key <= hi)


def _season_span(year: int, season: tuple[MonthDay, MonthDay]) -> tuple[np.datetime64,
                                                                        np.datetime64]:
    """``[start, end)`` of a non-wrapping season in ``year`` (datetime64[s])."""
    (m0, d0), (m1, d1) = season
    d0 = min(d0, calendar.monthrange(year, m0)[1])
    d1 = min(d1, calendar.monthrange(year, m1)[1])
    start = np.datetime64(_dt.date(year, m0, d0), "s")
    end = np.datetime64(_dt.date(year, m1, d1), "s") + np.timedelta64(1, "D")
    return start, end


def select_per_year(dates: Sequence[object] | np.ndarray, per_year: int = 15, *,
                    year: int | None = None, season: Season | None = None) -> np.ndarray:
    """Pick ``per_year`` acquisitions in each year, spread evenly over the year or a season.

    For each year: the season ``[start, end]`` of that year (default: 1 January – 31
    December) is cut into ``per_year`` equal parts and the centre of each part is a target
    time; each target gets a different acquisition of that year's season, chosen so that the
    summed distance between targets and their acquisitions is smallest (an optimal
    assignment, :func:`scipy.optimize.linear_sum_assignment`). With dates every 12 days and
    ``per_year=15`` this takes about every second acquisition; clusters of dates give one
    date per target, not several near each other.

    Args:
        dates: Acquisition times, shape (T,) (``datetime64``, datetimes, dates or ISO
            strings; any order). Use the dates of one orbit pass.
        per_year: Dates per year (the model's input length; ICEmapper: 15).
        year: Only this year; None: every year with a date in the season.
        season: ``(start, end)``, month numbers or ``"MM-DD"``, both inclusive (see
            :func:`parse_season`); must not wrap over the new year here.

    Returns:
        Positions in ``dates`` (int64, sorted), ``per_year`` per year selected.

    Raises:
        InputError: a year with fewer acquisitions in the season than ``per_year`` ("fewer
            dates than the model needs", with the count found), no date at all in the
            season, ``per_year`` < 1, or a wrapping season.
    """
    from scipy.optimize import linear_sum_assignment

    if isinstance(per_year, bool) or int(per_year) != per_year or per_year < 1:
        raise InputError(f"per_year must be a positive whole number; got {per_year!r}.")
    per_year = int(per_year)
    season_md = parse_season(season if season is not None else (1, 12))
    if season_md[0] > season_md[1]:
        raise InputError(f"season={season!r} wraps over the new year; select_per_year needs "
                         f"a season within one calendar year (e.g. (1, 12) or "
                         f"('06-01', '09-30')).")
    t = _as_dates(dates)
    years_of, _, _ = _month_days(t)
    inside = in_season(t, season if season is not None else (1, 12))
    years = [int(year)] if year is not None else sorted({int(y) for y in years_of[inside]})
    label = "" if season is None else f" (season {season[0]}–{season[1]})"
    if not years:
        raise InputError(f"no date falls in the season{label}; the {t.size} dates run from "
                         f"{_day(t.min()) if t.size else '-'} to "
                         f"{_day(t.max()) if t.size else '-'}.")
    chosen: list[np.ndarray] = []
    short: list[str] = []
    for y in years:
        start, end = _season_span(y, season_md)
        cand = np.flatnonzero((t >= start) & (t < end))
        if cand.size < per_year:
            short.append(f"{cand.size} in {y}")
            continue
        span = float((end - start).astype(np.int64))
        targets = float(start.astype(np.int64)) + (np.arange(per_year) + 0.5) * span / per_year
        cost = np.abs(targets[:, None] - t[cand].astype(np.int64).astype(np.float64)[None, :])
        _, cols = linear_sum_assignment(cost)
        chosen.append(cand[cols])
    if short:
        raise InputError(
            f"fewer dates than the model needs: it takes {per_year} dates per year{label}, "
            f"but found only {', '.join(short)}.",
            hint="Add acquisitions for those years, choose another year (year=...), widen "
                 "the season, or use a model with fewer input dates.")
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def _day(v: np.datetime64) -> str:
    return str(v.astype("datetime64[D]"))


def _bound(value: object, *, what: str, end: bool) -> np.datetime64:
    if isinstance(value, np.datetime64):
        v = value.astype("datetime64[s]")
        has_time = value.dtype not in (np.dtype("datetime64[D]"), np.dtype("datetime64[M]"),
                                       np.dtype("datetime64[Y]"))
    elif isinstance(value, _dt.datetime):
        v, has_time = np.datetime64(to_naive_utc(value), "s"), True
    elif isinstance(value, _dt.date):
        v, has_time = np.datetime64(to_naive_utc(value), "s"), False
    else:
        t, has_time = parse_date_text(str(value), what=what)
        v = np.datetime64(t, "s")
    if end and not has_time:
        return v + np.timedelta64(1, "D") - np.timedelta64(1, "s")  # the whole end day
    return v


def select_all(dates: Sequence[object] | np.ndarray, *, start: object = None,
               end: object = None) -> np.ndarray:
    """Every date in ``[start, end]`` (for models that take the acquisition dates as input).

    Args:
        dates: Acquisition times, shape (T,).
        start: First time kept (date, datetime, ISO string or ``datetime64``); None: no bound.
        end: Last time kept, inclusive; a date without a time includes that whole day.

    Returns:
        Positions in ``dates`` (int64, sorted).

    Raises:
        InputError: no date in the period, or ``start`` after ``end``.
    """
    t = _as_dates(dates)
    lo = _bound(start, what="start", end=False) if start is not None else None
    hi = _bound(end, what="end", end=True) if end is not None else None
    if lo is not None and hi is not None and lo > hi:
        raise InputError(f"start {start} is after end {end}.")
    keep = np.ones(t.shape, dtype=bool)
    if lo is not None:
        keep &= t >= lo
    if hi is not None:
        keep &= t <= hi
    idx = np.flatnonzero(keep).astype(np.int64)
    if idx.size == 0:
        span = f"{_day(t.min())} to {_day(t.max())}" if t.size else "nothing"
        raise InputError(f"no date between start={start} and end={end}; the series runs "
                         f"from {span}.")
    return idx


@dataclass(frozen=True)
class SeriesSelection:
    """Which files of a series a model gets: the pass and the dates (one place for it).

    Args:
        direction: Orbit pass kept: ``"ascending"``, ``"descending"``, ``"all"`` (mixed
            passes grouped) or None (the files must share one pass; mixed passes are an
            error naming the choices).
        dates_per_year: A fixed number of dates per year (the ICEmapper protocol, for models
            with a fixed ``T``: :func:`select_per_year`); 0 takes every date (for the
            date-aware model: :func:`select_all`).
        year: Only this year (the mapped year); None: all years.
        season: ``(start, end)`` months or ``"MM-DD"`` limiting the dates within a year.
    """

    direction: str | None = None
    dates_per_year: int = 0
    year: int | None = None
    season: tuple[int | str, int | str] | None = None

    def __post_init__(self) -> None:
        if self.direction not in (None, "ascending", "descending", "all"):
            raise InputError(f"direction must be 'ascending', 'descending', 'all' or None; "
                             f"got {self.direction!r}.")
        if isinstance(self.dates_per_year, bool) or int(self.dates_per_year) < 0:
            raise InputError(f"dates_per_year must be >= 0 (0: every date); got "
                             f"{self.dates_per_year!r}.")
        if self.season is not None:
            parse_season(self.season)

    def to_dict(self) -> dict[str, object]:
        """JSON form (stored in model files as ``series.selection``)."""
        return {"direction": self.direction, "dates_per_year": int(self.dates_per_year),
                "year": self.year, "season": None if self.season is None else list(self.season)}

    @classmethod
    def from_dict(cls, d: Mapping[str, object] | None) -> SeriesSelection:
        """Rebuild from :meth:`to_dict` (or a config ``[series]`` table)."""
        d = dict(d or {})
        known = {"direction", "dates_per_year", "year", "season"}
        unknown = set(d) - known
        if unknown:
            raise InputError(f"unknown series selection key(s) {sorted(unknown)}; valid: "
                             f"{sorted(known)}.")
        season = d.get("season")
        return cls(direction=d.get("direction"),  # type: ignore[arg-type]
                   dates_per_year=int(d.get("dates_per_year") or 0),  # type: ignore[arg-type]
                   year=None if d.get("year") is None else int(d["year"]),  # type: ignore[arg-type]
                   season=None if season is None else tuple(season))  # type: ignore[arg-type]

    def indices(self, dates: Sequence[object] | np.ndarray) -> np.ndarray:
        """Positions of the selected dates (sorted)."""
        if self.dates_per_year:
            return select_per_year(dates, self.dates_per_year, year=self.year,
                                   season=self.season)
        idx = np.arange(len(_as_dates(dates)))
        if self.year is not None:
            idx = select_all(dates, start=f"{self.year}-01-01", end=f"{self.year}-12-31")
        if self.season is not None:
            idx = idx[in_season(_as_dates(dates)[idx], self.season)]
        if idx.size == 0:
            raise InputError(f"no date of the series is in the selection {self.to_dict()}.")
        return idx


def open_selected(source: object, *, scale: str, selection: SeriesSelection,
                  **kwargs: object) -> object:
    """:func:`~glacierkit.series.stack.open_series` then the selection's dates.

    Returns the :class:`~glacierkit.series.stack.SeriesStack` of the selected dates (logged).
    """
    from glacierkit.series.stack import open_series

    stack = open_series(source, scale=scale, direction=selection.direction,  # type: ignore[arg-type]
                        **kwargs)  # type: ignore[arg-type]
    idx = selection.indices(stack.dates)
    if len(idx) != stack.n_dates:
        log.info("series %s: %d of %d dates selected (%s)", source, len(idx), stack.n_dates,
                 selection.to_dict())
        stack = stack.subset(idx)
    return stack
