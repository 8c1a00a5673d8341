"""Acquisition times of an image pair and their separation ``dt``.

Sources, in order of precedence (:func:`pair_time_separation`):

1. an explicit ``dt_days`` (> 0);
2. explicit dates/times (ISO 8601 strings or ``datetime``/``date`` objects);
3. Landsat MTL metadata (``*_MTL.txt`` beside the image, or given): ``DATE_ACQUIRED`` +
   ``SCENE_CENTER_TIME`` (UTC, sub-second);
4. the file names: Landsat scene IDs (``LC80630182016200LGN00``: year + day of year), Landsat
   Collection product IDs (``LC08_L1TP_063018_20160718_20170222_02_T1``: acquisition date),
   Sentinel-1/2 product or tile names (``..._20170517T103021_...``: sensing start, UTC), and
   a plain ``YYYYMMDD`` or ``YYYY-MM-DD`` in the name.

Dates without a time are taken at 00:00 UTC, so ``dt`` is a whole number of days; with times
(MTL, Sentinel) it is fractional. The chosen source is reported, so the report says where dt
came from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from glacierkit.errors import InputError

_LANDSAT_SCENE_ID = re.compile(r"L[COTEM]0?\d(?P<path>\d{3})(?P<row>\d{3})(?P<year>\d{4})"
                               r"(?P<doy>\d{3})[A-Z]{3}\d{2}")
_LANDSAT_PRODUCT_ID = re.compile(r"L[COTEM]\d{2}_L\d[A-Z]{2}_\d{6}_(?P<date>\d{8})_\d{8}_\d{2}")
_SENTINEL = re.compile(r"(?<!\d)(?P<date>20\d{6})T(?P<time>\d{6})(?!\d)")
_PLAIN_DATE = re.compile(r"(?<!\d)(?P<y>(?:19|20)\d{2})-?(?P<m>[01]\d)-?(?P<d>[0-3]\d)(?!\d)")


@dataclass(frozen=True)
class Acquisition:
    """An acquisition time (UTC) and where it was read from."""

    time: datetime
    source: str


@dataclass(frozen=True)
class TimeSeparation:
    """Time separation of a pair: ``dt_days`` = secondary − reference, in days (> 0)."""

    dt_days: float
    reference: Acquisition | None
    secondary: Acquisition | None
    source: str

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form for reports."""
        return {
            "dt_days": self.dt_days,
            "reference_time": self.reference.time.isoformat() if self.reference else None,
            "secondary_time": self.secondary.time.isoformat() if self.secondary else None,
            "source": self.source,
        }


def parse_time(value: str | date | datetime) -> datetime:
    """Parse an ISO 8601 date or date-time (naive values are taken as UTC)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    text = str(value).strip()
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        m = _PLAIN_DATE.fullmatch(text)
        if not m:
            raise InputError(f"cannot parse {value!r} as a date; use ISO 8601, e.g. "
                             f"2016-07-18 or 2016-07-18T20:37:06Z.") from None
        try:
            t = datetime(int(m["y"]), int(m["m"]), int(m["d"]))
        except ValueError as e:  # no such day: month 13, 31 April, ...
            raise InputError(f"{value!r} is not a valid date ({e}); use ISO 8601, e.g. "
                             f"2016-07-18 or 2016-07-18T20:37:06Z.") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def read_mtl(path: str | Path) -> Acquisition:
    """Acquisition time from a Landsat ``*_MTL.txt`` (``DATE_ACQUIRED`` + ``SCENE_CENTER_TIME``)."""
    p = Path(path)
    fields: dict[str, str] = {}
    for line in p.read_text(errors="replace").splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            fields[k.strip()] = v.strip().strip('"')
    if "DATE_ACQUIRED" not in fields:
        raise InputError(f"{p} has no DATE_ACQUIRED; is it a Landsat MTL file?")
    day = date.fromisoformat(fields["DATE_ACQUIRED"])
    t = datetime(day.year, day.month, day.day, tzinfo=UTC)
    clock = fields.get("SCENE_CENTER_TIME", "").rstrip("Z")
    if clock:
        hh, mm, ss = clock.split(":")
        t += timedelta(hours=int(hh), minutes=int(mm), seconds=float(ss))
    return Acquisition(t, f"MTL {p.name}")


def _mtl_beside(image: Path) -> Path | None:
    stem = image.stem
    candidates = [image.with_name(f"{stem}_MTL.txt")]
    m = _LANDSAT_SCENE_ID.search(stem) or _LANDSAT_PRODUCT_ID.search(stem)
    if m:
        candidates.append(image.with_name(f"{m.group(0)}_MTL.txt"))
    for c in candidates:
        if c.exists():
            return c
    return None


def acquisition_from_name(name: str) -> Acquisition | None:
    """Acquisition time parsed from a file name, or ``None`` when no pattern matches."""
    m = _LANDSAT_SCENE_ID.search(name)
    if m:
        t = datetime(int(m["year"]), 1, 1, tzinfo=UTC) + timedelta(days=int(m["doy"]) - 1)
        return Acquisition(t, f"Landsat scene ID in {name}")
    m = _LANDSAT_PRODUCT_ID.search(name)
    if m:
        return Acquisition(parse_time(m["date"]), f"Landsat product ID in {name}")
    m = _SENTINEL.search(name)
    if m:
        t = datetime.strptime(m["date"] + m["time"], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        return Acquisition(t, f"Sentinel sensing time in {name}")
    m = _PLAIN_DATE.search(name)
    if m:
        try:
            return Acquisition(datetime(int(m["y"]), int(m["m"]), int(m["d"]), tzinfo=UTC),
                               f"date in {name}")
        except ValueError:
            return None
    return None


def acquisition_of(image: str | Path) -> Acquisition | None:
    """Acquisition time of an image file: MTL beside it first, then its file name."""
    p = Path(image)
    mtl = _mtl_beside(p)
    if mtl is not None:
        return read_mtl(mtl)
    return acquisition_from_name(p.name)


def pair_time_separation(reference: str | Path | None = None,
                         secondary: str | Path | None = None, *,
                         dt_days: float | None = None,
                         dates: tuple[str | date | datetime, str | date | datetime] | None = None
                         ) -> TimeSeparation:
    """Time separation of a pair (secondary − reference), from the first source available.

    Args:
        reference: Reference image path (for MTL / file-name parsing).
        secondary: Secondary image path.
        dt_days: Explicit separation in days; wins over everything else.
        dates: Explicit ``(reference, secondary)`` dates or times.

    Returns:
        A :class:`TimeSeparation` (``dt_days`` > 0).

    Raises:
        InputError: ``dt`` ≤ 0 (secondary not after reference), or no source gives a time
            (the message lists what was tried and how to pass ``--dt-days`` / ``--dates``).
    """
    if dt_days is not None:
        if not dt_days > 0:
            raise InputError(f"dt_days must be > 0; got {dt_days}. The secondary image must be "
                             f"acquired after the reference image.")
        return TimeSeparation(float(dt_days), None, None, "dt_days given")
    if dates is not None:
        ref = Acquisition(parse_time(dates[0]), "dates given")
        sec = Acquisition(parse_time(dates[1]), "dates given")
        return _separation(ref, sec, "dates given")
    if reference is None or secondary is None:
        raise InputError("no time separation: give dt_days, dates, or image paths whose "
                         "metadata or names carry the dates.")
    ref_a, sec_a = acquisition_of(reference), acquisition_of(secondary)
    if ref_a is None or sec_a is None:
        missing = [str(p) for p, a in ((reference, ref_a), (secondary, sec_a)) if a is None]
        raise InputError(
            f"cannot tell the acquisition date of {', '.join(missing)} (no *_MTL.txt beside it "
            f"and no Landsat/Sentinel ID or YYYYMMDD in the name). Pass --dt-days N or --dates "
            f"REF SEC (ISO dates)."
        )
    return _separation(ref_a, sec_a, f"{ref_a.source}; {sec_a.source}")


def _separation(ref: Acquisition, sec: Acquisition, source: str) -> TimeSeparation:
    dt = (sec.time - ref.time).total_seconds() / 86400.0
    if not dt > 0:
        raise InputError(
            f"time separation is {dt:g} days (reference {ref.time.isoformat()} from {ref.source}; "
            f"secondary {sec.time.isoformat()} from {sec.source}); the secondary image must be "
            f"acquired after the reference. Swap the images or pass --dt-days."
        )
    return TimeSeparation(dt, ref, sec, source)
