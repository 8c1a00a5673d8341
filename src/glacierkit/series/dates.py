"""Acquisition dates from file names, and the orbit pass (ascending/descending) from the time.

Every time here is a **naive** :class:`datetime.datetime` **in UTC** (no ``tzinfo``): what
Sentinel-1 and most SAR/optical product names give. Time-zone-aware inputs are converted to
UTC and made naive.

File names understood by :func:`parse_acquisition` (only the file name counts, not its folders):

* Sentinel-1 SAFE/GRD/SLC product names, with a start/stop pair:
  ``S1A_IW_GRDH_1SDV_20210122T001130_20210122T001155_036262_044142_5E3C.SAFE`` → the start,
  2021-01-22 00:11:30.
* ASF HyP3 names: ``S1A_IW_20150726T122148_SVP_RTC20_G_gpufed_0BB8_VV.tif`` →
  2015-07-26 12:21:48.
* Any name with one ``YYYYMMDD``, ``YYYY-MM-DD`` or ``YYYY_MM_DD`` token, optionally followed
  by ``THHMMSS``: ``vv_2021-07-21.tif``, ``20200101.jpg``, ``scene_20210122T001130_vv.tif``.

A name with two different dates that are not a start/stop pair (an interferometric pair, a
Sentinel-2 product with its processing date, ...) is ambiguous; give the dates explicitly.

Torch-free.
"""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import PurePath
from typing import Literal

from glacierkit.errors import InputError

__all__ = [
    "PASS_ALIASES",
    "Direction",
    "normalize_pass",
    "parse_acquisition",
    "parse_acquisition_details",
    "parse_date_text",
    "pass_direction",
]

Direction = Literal["ascending", "descending"]

PASS_ALIASES: dict[str, Direction] = {
    "ascending": "ascending", "asc": "ascending", "a": "ascending",
    "descending": "descending", "desc": "descending", "d": "descending",
}
"""Accepted spellings of a pass (case-insensitive) and the direction each stands for."""

# A date token: YYYYMMDD, YYYY-MM-DD or YYYY_MM_DD (one separator used throughout), optionally
# followed by THHMMSS; not part of a longer run of digits.
_TOKEN = re.compile(
    r"(?<![0-9])(?P<y>\d{4})(?P<sep>[-_]?)(?P<m>\d{2})(?P=sep)(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2})(?P<M>\d{2})(?P<S>\d{2}))?(?![0-9])"
)
_YEARS = range(1950, 2101)  # a 4-digit run outside these years is not taken for a date
_MAX_PAIR_SPAN = _dt.timedelta(hours=1)  # start/stop of one product are seconds to minutes apart

_CSV_HINT = ("Give the dates explicitly: open_series(..., dates=[...]) or a CSV file with the "
             "header 'path,date[,pass]' (date as YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS, UTC).")


def _fmt(t: _dt.datetime, has_time: bool) -> str:
    return t.isoformat(sep="T") if has_time else t.date().isoformat()


def parse_acquisition_details(name: str) -> tuple[_dt.datetime, bool]:
    """The acquisition time in a file name, and whether the name gives a time of day.

    Args:
        name: A file name or path (only the last component is looked at).

    Returns:
        ``(acquired, has_time)``: naive UTC datetime (midnight when the name has only a date)
        and True when the name gives ``THHMMSS``.

    Raises:
        InputError: no date in the name, two different dates that are not a Sentinel-1
            start/stop pair, or an impossible calendar date (``20211345``).
    """
    base = PurePath(str(name)).name
    found: list[tuple[_dt.datetime, bool, str]] = []
    for m in _TOKEN.finditer(base):
        y, mo, d = int(m["y"]), int(m["m"]), int(m["d"])
        if y not in _YEARS:
            continue
        text = m.group(0)
        try:
            if m["H"] is not None:
                t = _dt.datetime(y, mo, d, int(m["H"]), int(m["M"]), int(m["S"]))
            else:
                t = _dt.datetime(y, mo, d)
        except ValueError as e:
            raise InputError(
                f"{base!r}: {text!r} looks like a date but is not a valid calendar date or "
                f"time ({e}).", hint=_CSV_HINT) from None
        found.append((t, m["H"] is not None, text))
    if not found:
        raise InputError(
            f"{base!r}: no acquisition date in the file name (looked for YYYYMMDD, YYYY-MM-DD "
            f"or YYYY_MM_DD, optionally followed by THHMMSS).", hint=_CSV_HINT)
    timed = sorted({t for t, has, _ in found if has})
    days = {t.date() for t, _, _ in found}
    if len(timed) == 2 and timed[1] - timed[0] <= _MAX_PAIR_SPAN:
        # A Sentinel-1 product's start/stop pair; date-only tokens must be one of its days.
        if days <= {timed[0].date(), timed[1].date()}:
            return timed[0], True
    elif len(timed) == 1 and days == {timed[0].date()}:
        return timed[0], True
    elif not timed and len(days) == 1:
        return found[0][0], False
    texts = ", ".join(dict.fromkeys(text for _, _, text in found))
    raise InputError(
        f"{base!r}: ambiguous acquisition date: the name holds several different dates "
        f"({texts}) that are not the start/stop pair of one Sentinel-1 product.",
        hint=_CSV_HINT)


def parse_acquisition(name: str) -> _dt.datetime:
    """The acquisition time (naive, UTC) in a file name; midnight when only a date is given.

    See the module docstring for the names understood; :func:`parse_acquisition_details`
    also says whether the name gives a time of day.

    Raises:
        InputError: no date, ambiguous dates, or an impossible calendar date.
    """
    return parse_acquisition_details(name)[0]


def parse_date_text(text: str, *, what: str = "date") -> tuple[_dt.datetime, bool]:
    """An ISO date or date-time string (as in a CSV ``date`` column) as naive UTC.

    Args:
        text: ``YYYY-MM-DD``, ``YYYY-MM-DDTHH:MM[:SS]`` (also with a space instead of ``T``);
            a time-zone suffix (``Z``, ``+05:45``) is converted to UTC. ``YYYYMMDD`` and
            ``YYYYMMDDTHHMMSS`` are accepted too.
        what: How the value is named in the error message (e.g. ``"row 3 of dates.csv"``).

    Returns:
        ``(acquired, has_time)``.

    Raises:
        InputError: the text is not such a date.
    """
    s = str(text).strip()
    try:
        if re.fullmatch(r"\d{8}(T\d{6})?", s):
            s = f"{s[:4]}-{s[4:6]}-{s[6:]}" if len(s) == 8 else (
                f"{s[:4]}-{s[4:6]}-{s[6:8]}T{s[9:11]}:{s[11:13]}:{s[13:15]}")
        has_time = bool(re.search(r"\d[T ]\d", s))
        t = _dt.datetime.fromisoformat(s)
    except ValueError:
        raise InputError(f"{what}: {text!r} is not a date; use YYYY-MM-DD or "
                         f"YYYY-MM-DDTHH:MM:SS (UTC).") from None
    return to_naive_utc(t), has_time


def to_naive_utc(t: _dt.datetime | _dt.date) -> _dt.datetime:
    """A date or datetime as a naive UTC datetime (aware ones are converted to UTC)."""
    if not isinstance(t, _dt.datetime):
        return _dt.datetime(t.year, t.month, t.day)
    if t.tzinfo is not None:
        t = t.astimezone(_dt.UTC).replace(tzinfo=None)
    return t


def normalize_pass(value: str | None, *, what: str = "pass") -> Direction | None:
    """``"ascending"``/``"descending"`` from a spelling in :data:`PASS_ALIASES`.

    Empty or None gives None (unknown).

    Raises:
        InputError: an unknown spelling.
    """
    if value is None:
        return None
    key = str(value).strip().lower()
    if not key:
        return None
    try:
        return PASS_ALIASES[key]
    except KeyError:
        raise InputError(f"{what}: {value!r} is not a pass; use ascending or descending "
                         f"(asc/desc, A/D).") from None


def pass_direction(acquired_utc: _dt.datetime, lon_deg: float) -> Direction:
    """Orbit pass of a sun-synchronous dawn-dusk SAR (Sentinel-1) from the local solar time.

    Sentinel-1 flies a sun-synchronous orbit with its ascending node at about 18:00 local
    solar time: ascending passes image in the evening, descending passes in the morning (about
    06:00). The local solar time ``UTC + lon/15`` h then tells the pass: 12:00 ≤ local < 24:00
    is ascending, 00:00 ≤ local < 12:00 descending. Along the orbit the local time only
    reaches 12:00/24:00 at the orbit's turning latitudes (≈ 81.5° N/S), so the rule holds
    everywhere else. It is a rule for Sentinel-1-like orbits only (not for e.g. ALOS-2,
    noon/midnight), and an explicit pass (a CSV ``pass`` column) overrides it.

    Args:
        acquired_utc: Acquisition time in UTC (naive, or aware and converted).
        lon_deg: Longitude of the scene in degrees east (−180…360).

    Returns:
        ``"ascending"`` or ``"descending"``.
    """
    t = to_naive_utc(acquired_utc)
    hours = t.hour + t.minute / 60 + t.second / 3600 + t.microsecond / 3.6e9
    local = (hours + float(lon_deg) / 15.0) % 24.0
    return "ascending" if local >= 12.0 else "descending"
