"""A documented synthetic Sentinel-1 RTC γ⁰ VV *time-series* generator on real grids.

No labelled SAR time series of glaciers is in the example data, so time-series models are
exercised with series simulated from a label map and a DEM. The model is first-order, like
:mod:`glacierkit.dl.synthetic` (single date), whose local-incidence and coherence code it
reuses. Its defaults come from the real Sentinel-1 stack ``s1_rtc_tsho_rolpa_series`` (66 ASF
HyP3 RTC γ⁰ VV products, 20 m, 2015–2025, Tsho Rolpa, Nepal), measured by
``benchmarks/tsho_rolpa_statistics.py`` and documented in ``docs/validation/sar-series-data.md``.
Two of the three geometries of that stack are co-located with the grid they claim (ascending
≈ 12:22 UTC, 22 dates; descending ≈ 00:11 UTC, 23 dates); the third (ascending ≈ 12:14 UTC,
21 dates) does not show the lake and was left out.

**Classes and season.** Each class has a mean γ⁰ (dB, mean *in linear power*) for the dry
season and for the melt season:

=============== ========= ========= =========== ============================================
class           dry (dB)  melt (dB) coherence   source
=============== ========= ========= =========== ============================================
0 off-glacier   −6.5      −5.6      0.60        **measured**: off-lake terrain, winter
                                                (Dec–Mar) −6.79 / −6.15 dB and monsoon
                                                (Jun–Sep) −5.25 / −5.86 dB (ascending /
                                                descending); coherence *assumed*
1 glacier       −6.5      −11.0     0.20        **assumed**: the Tsho Rolpa crop holds no
                                                measurable glacier (the Trakarding terminus
                                                is at its corner). Dry: as rock (dry snow,
                                                firn and debris are not separable from rock
                                                in C-band VV at this level); melt: −4.5 dB,
                                                the middle of the −3 … −6 dB wet-snow drop
                                                (Nagler & Rott 2000, threshold −3 dB)
2 water         −14.2     −16.0     0.00        **measured**: the lake, ice-covered in
                                                winter (−13.47 / −14.84 dB) and open in the
                                                monsoon (−13.49 / −18.60 dB: the evening
                                                ascending pass sees a wind-roughened lake)
=============== ========= ========= =========== ============================================

The 12-day coherences are *assumed*, typical of C-band over stable ground, glaciers and water
in coherence-based debris-covered glacier mapping (e.g. Frey et al. 2012; Lippl et al. 2018).
Labels 255 (ignore) and pixels of unknown class use ``default_class`` (0).

The *melt window* (day of year, inclusive, default 152–273 = 1 June – 30 September: the
monsoon months over which the stack was summarised; *assumed* as the melt season of the
glacier class) switches a class from its dry to its melt value, linearly in dB over
``melt_ramp_days`` at both ends of the window (inside it; outside the window the dry value
holds exactly). For water the "melt" value is open water, the "dry" value lake ice.

**One date.** For a date ``t`` of pass ``p`` the noise-free γ⁰ is::

    γ⁰(t) = class_mean(t) × texture × topo_p × 10^(j_t / 10)

* ``texture``: static (the same on every date) smooth log-normal field, ``texture_db`` std in
  dB, Gaussian correlation ``texture_scale_m`` (measured: the autocorrelation of the off-lake
  temporal-mean dB falls to 1/e at 80–100 m, i.e. a Gaussian σ of ≈ 45 m; the spatial std of
  that image is 2.9 / 3.5 dB, texture and topography together), mean exactly 1 in linear power;
* ``topo_p``: ``(max(cos θ_loc, shadow_floor) / cos θ) ** topo_exponent`` with ``cos θ_loc``
  from :func:`glacierkit.dl.synthetic.local_incidence_cos` for the pass's incidence θ and look
  azimuth (1 where the DEM is absent or NaN), divided by its mean over the pixels outside
  layover/shadow, so that the scene's class means stay the configured ones (the measured
  means are of terrain-corrected γ⁰ over rough terrain, topography included);
* ``j_t``: a scene-wide radiometric jitter per date, normal with std ``jitter_db`` (measured:
  the date-to-date std of the off-lake area mean within a season is 0.17–0.49 dB, median
  0.42 dB; an upper bound, as it includes real surface change).

The observed power is ``γ⁰(t) × Gamma(L, 1/L)`` speckle (mean 1, variance 1/L), independent
per pixel and date. ``L = looks`` is the measured equivalent number of looks: 20.5, the mean
of the median 7 × 7-window ENL over the lake interior of the two co-located geometries (25.4
ascending, 15.7 descending). The HyP3 products are speckle-filtered (``gpufed``: the *f*);
their speckle is spatially correlated (lag-1 correlation 0.58–0.68 on the lake), which this
model does not reproduce.

**Pass geometry.** Ascending: local solar time 18:08 (measured 18.14 h), look azimuth 77°;
descending: 05:58 (measured 5.96 h), look azimuth 283°. The look azimuths are computed from
Sentinel-1's orbit (inclination 98.18°, right-looking, ground track ≈ 12.6° off north at
28° N), not measured. Incidence 39° for both passes is *assumed* (IW swath 29–46°).

**Layover and shadow** (first-order, local rules, per pass): with ``α`` the terrain slope
along the horizontal look direction (positive where the terrain rises away from the sensor,
i.e. faces it), a pixel is in *layover* where ``α > θ`` and in *shadow* where ``−α > 90° − θ``.
Both are NaN in ``power`` and ``False`` in ``valid``, on every date of that pass (the real
stack: 15.1 % of the descending and 2.0 % of the ascending pixels, stable from date to date).
Shadows cast by distant ridges and passive layover (the area a fore-slope is mapped onto) are
not modelled, so real masks are larger, and a coarse DEM (e.g. SRTM 3″) has gentler slopes.

**Coherence** (optional): for each date, the coherence with the previous date of the same
pass, ``γ_class ** (Δt / 12 days)`` (exponential decorrelation from the 12-day value), drawn
and *estimated* with :func:`glacierkit.dl.synthetic.synthetic_sar` (two correlated
circular-Gaussian SLCs, ``coherence_window``² boxcar; the estimator's bias is real, about
0.13 for decorrelated pixels at 7 × 7). The first date of each pass has no pair: NaN.

References: Nagler, T., Rott, H. (2000): Retrieval of wet snow by means of multitemporal SAR
data, IEEE TGRS 38(2), 754–765. Frey, H., Paul, F., Strozzi, T. (2012): Compilation of a
glacier inventory for the western Himalayas from satellite data, Remote Sens. Environ. 124,
832–843. Lippl, S., Vijay, S., Braun, M. (2018): Automatic delineation of debris-covered
glaciers using InSAR coherence derived from X-, C- and L-band radar data: a case study of
Yazgyl Glacier, J. Glaciol. 64(247), 811–821.

Torch-free.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy import ndimage

from glacierkit.dl.synthetic import SarClass, SarParams, local_incidence_cos, synthetic_sar
from glacierkit.errors import InputError
from glacierkit.io.grid import Grid
from glacierkit.io.writer import check_output_path, write_raster

__all__ = [
    "DEFAULT_SERIES_CLASSES",
    "PASSES",
    "REAL_GRID_SCENES",
    "PassGeometry",
    "RealGridScene",
    "SeriesClass",
    "SeriesParams",
    "SyntheticSeries",
    "layover_shadow",
    "melt_weight",
    "real_grid_scene",
    "sample_dates",
    "synthetic_series",
    "write_synthetic_series",
]

PASSES = ("ascending", "descending")
"""The two Sentinel-1 pass directions."""

Pass = Literal["ascending", "descending"]

TSHO_ROLPA_LON = 86.4765
"""Longitude (°E) of the measured stack's centre: its UTC times are the default."""

IGNORE = 255


@dataclass(frozen=True)
class SeriesClass:
    """Radar signature of one class through the year.

    Args:
        dry_db: Mean γ⁰ VV outside the melt window (dB, mean in linear power).
        melt_db: Mean γ⁰ VV inside the melt window (dB).
        coherence: True 12-day interferometric coherence (0–1).
    """

    dry_db: float
    melt_db: float
    coherence: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.coherence <= 1.0:
            raise InputError(f"coherence must be in [0, 1]; got {self.coherence}.")
        if not (math.isfinite(self.dry_db) and math.isfinite(self.melt_db)):
            raise InputError(f"dry_db and melt_db must be finite dB values; got "
                             f"{self.dry_db}, {self.melt_db}.")


DEFAULT_SERIES_CLASSES: dict[int, SeriesClass] = {
    0: SeriesClass(dry_db=-6.5, melt_db=-5.6, coherence=0.60),    # rock, moraine (measured dB)
    1: SeriesClass(dry_db=-6.5, melt_db=-11.0, coherence=0.20),   # glacier (assumed)
    2: SeriesClass(dry_db=-14.2, melt_db=-16.0, coherence=0.0),   # water: ice / open (measured)
}


@dataclass(frozen=True)
class PassGeometry:
    """Viewing geometry of one pass direction.

    Args:
        incidence_deg: Ellipsoid incidence angle θ (degrees).
        look_azimuth_deg: Horizontal direction from the sensor to the ground (degrees
            clockwise from north).
        local_solar_h: Local solar time of the acquisitions (hours, 0–24).
    """

    incidence_deg: float
    look_azimuth_deg: float
    local_solar_h: float

    def __post_init__(self) -> None:
        if not 0 < self.incidence_deg < 90:
            raise InputError(f"incidence_deg must be in (0, 90); got {self.incidence_deg}.")
        if not 0 <= self.local_solar_h < 24:
            raise InputError(f"local_solar_h must be in [0, 24); got {self.local_solar_h}.")


@dataclass(frozen=True)
class SeriesParams:
    """Parameters of :func:`synthetic_series` (see the module docstring for the model).

    Args:
        classes: ``{label value: SeriesClass}`` (0 off-glacier, 1 glacier, 2 water).
        default_class: Class of labels 255 (ignore) and of values not in ``classes``.
        melt_window_doy: First and last day of year (1–366, inclusive) of the melt season; a
            window with first > last wraps over the new year (southern hemisphere).
        melt_ramp_days: Days over which a class moves from its dry to its melt value at both
            ends of the window (inside it); 0 is a step.
        looks: Equivalent number of looks L of the speckle (Gamma(L, 1/L)).
        jitter_db: Std (dB) of the scene-wide radiometric offset drawn for every date.
        texture_db: Std (dB) of the static log-normal texture; 0 disables it.
        texture_scale_m: Gaussian correlation scale (m) of the texture.
        topo_exponent: Exponent of the topographic gain (0 disables it).
        shadow_floor: Floor of ``cos θ_loc`` in the topographic gain.
        coherence_window: Boxcar edge (px) of the coherence estimator.
        ascending: Geometry of ascending passes.
        descending: Geometry of descending passes.
    """

    classes: Mapping[int, SeriesClass] = field(
        default_factory=lambda: dict(DEFAULT_SERIES_CLASSES))
    default_class: int = 0
    melt_window_doy: tuple[int, int] = (152, 273)
    melt_ramp_days: float = 10.0
    looks: float = 20.0
    jitter_db: float = 0.4
    texture_db: float = 2.5
    texture_scale_m: float = 45.0
    topo_exponent: float = 1.0
    shadow_floor: float = 0.05
    coherence_window: int = 7
    ascending: PassGeometry = PassGeometry(39.0, 77.0, 18.14)
    descending: PassGeometry = PassGeometry(39.0, 283.0, 5.96)

    def __post_init__(self) -> None:
        if not self.classes:
            raise InputError("classes must define at least one class.")
        if any(not isinstance(k, int | np.integer) or not 0 <= int(k) < IGNORE
               for k in self.classes):
            raise InputError(f"class keys must be label values 0..254; got "
                             f"{sorted(self.classes)}.")
        if self.default_class not in self.classes:
            raise InputError(f"default_class={self.default_class} is not among the configured "
                             f"classes {sorted(self.classes)}.")
        a, b = self.melt_window_doy
        if not (1 <= a <= 366 and 1 <= b <= 366):
            raise InputError(f"melt_window_doy must be two days of year in 1..366; got "
                             f"{self.melt_window_doy}.")
        if self.melt_ramp_days < 0:
            raise InputError(f"melt_ramp_days must be >= 0; got {self.melt_ramp_days}.")
        if not self.looks >= 1:
            raise InputError(f"looks must be >= 1; got {self.looks}.")
        if self.jitter_db < 0 or self.texture_db < 0 or self.texture_scale_m <= 0:
            raise InputError("jitter_db and texture_db must be >= 0 and texture_scale_m > 0.")
        if not 0 < self.shadow_floor <= 1:
            raise InputError(f"shadow_floor must be in (0, 1]; got {self.shadow_floor}.")
        if self.coherence_window < 1:
            raise InputError(f"coherence_window must be >= 1 px; got {self.coherence_window}.")

    def geometry(self, direction: str) -> PassGeometry:
        """The :class:`PassGeometry` of ``"ascending"`` or ``"descending"``."""
        if direction == "ascending":
            return self.ascending
        if direction == "descending":
            return self.descending
        raise InputError(f"pass must be one of {PASSES}; got {direction!r}.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (written as GeoTIFF tags)."""
        d = asdict(self)
        d["classes"] = {str(k): asdict(v) for k, v in self.classes.items()}
        return d


@dataclass(eq=False)
class SyntheticSeries:
    """Output of :func:`synthetic_series`; T dates of an ``(H, W)`` grid.

    Attributes:
        power: ``(T, H, W)`` float32 γ⁰ VV, **linear power**, NaN in layover/shadow.
        coherence: ``(T, H, W)`` float32 estimated coherence (0–1) of each date with the
            previous date of the same pass (NaN for the first date of a pass and where either
            date is invalid), or None when not simulated.
        dates: The T acquisition times (UTC, timezone-aware), in input order.
        directions: The T pass directions (``"ascending"`` / ``"descending"``).
        valid: ``(T, H, W)`` bool, False in layover/shadow.
        classes: ``(H, W)`` uint8 class per pixel as simulated (255 → ``default_class``,
            water mask → 2).
        melt: ``(T,)`` float64 melt weight in [0, 1] of each date (0 dry, 1 full melt).
        jitter_db: ``(T,)`` float64 radiometric offset (dB) of each date.
        layover: ``{pass: (H, W) bool}`` layover mask per pass direction.
        shadow: ``{pass: (H, W) bool}`` shadow mask per pass direction.
        params: The parameters used.
        seed: The seed used.
    """

    power: np.ndarray
    coherence: np.ndarray | None
    dates: list[datetime]
    directions: list[str]
    valid: np.ndarray
    classes: np.ndarray
    melt: np.ndarray
    jitter_db: np.ndarray
    layover: dict[str, np.ndarray]
    shadow: dict[str, np.ndarray]
    params: SeriesParams
    seed: int


# ---------------------------------------------------------------------------- dates
def _utc(d: datetime | date) -> datetime:
    if isinstance(d, datetime):
        return d.replace(tzinfo=UTC) if d.tzinfo is None else d.astimezone(UTC)
    if isinstance(d, date):
        return datetime(d.year, d.month, d.day, tzinfo=UTC)
    raise InputError(f"a date must be a datetime or date; got {type(d).__name__}.")


def melt_weight(when: datetime | date, window: tuple[int, int], ramp_days: float) -> float:
    """Melt weight in [0, 1] of a date: 0 outside the window, ramping to 1 inside it.

    Args:
        when: The date.
        window: First and last day of year of the melt season (inclusive; wraps when
            first > last).
        ramp_days: Length (days) of the linear ramp at each end, inside the window.

    Returns:
        ``min(1, (days from the window's first day + 1) / ramp, (days to its last day + 1)
        / ramp)`` inside the window, 0 outside.
    """
    doy = _utc(when).timetuple().tm_yday
    first, last = window
    length = (last - first) % 366 + 1
    into = (doy - first) % 366
    if into >= length:
        return 0.0
    if ramp_days <= 0:
        return 1.0
    return float(min(1.0, (into + 1) / ramp_days, (length - into) / ramp_days))


def sample_dates(years: int | tuple[int, int], *, mode: Literal["regular", "irregular"] =
                 "regular", per_year: int = 15, n: int | None = None,
                 missing_fraction: float = 0.0, seed: int | np.random.Generator = 0,
                 passes: Sequence[str] = PASSES, months: Sequence[int] | None = None,
                 longitude: float | None = None, params: SeriesParams | None = None
                 ) -> list[tuple[datetime, str]]:
    """Acquisition dates of a Sentinel-1-like series.

    Candidate days follow the 12-day repeat cycle of one Sentinel-1 satellite, one relative
    orbit per pass (descending 5 days after ascending). ``mode="regular"`` takes
    ``per_year`` candidates evenly spaced through each year (15 a year: every 24 days);
    ``"irregular"`` takes ``per_year`` random candidates a year (as in the measured stack:
    12 dates a year over both passes, 12–144 days apart). Then ``missing_fraction`` of all
    dates are dropped at random (gaps, as in a real archive).

    The time of day is the pass's local solar time (``params``) converted to UTC at
    ``longitude`` (UTC = local − longitude / 15 h); the default longitude is that of the
    measured Tsho Rolpa stack, giving ≈ 12:22 UTC ascending and 00:11 UTC descending.

    Args:
        years: One year or an inclusive ``(first, last)`` range.
        mode: ``"regular"`` or ``"irregular"``.
        per_year: Dates per year and pass.
        n: Total number of dates over the whole range and all passes instead of
            ``per_year`` (evenly spread for ``"regular"``, random for ``"irregular"``).
        missing_fraction: Share of the dates dropped at random, in [0, 1).
        seed: Seed or generator (irregular dates and dropped dates).
        passes: Pass directions to include.
        months: Only candidates in these months (1–12), e.g. ``range(1, 10)`` as in the
            measured stack (January–September).
        longitude: Longitude (°E) for the UTC time of day.
        params: For the passes' local solar times (default :class:`SeriesParams`).

    Returns:
        ``[(datetime UTC, pass), ...]`` sorted by time.

    Raises:
        InputError: an empty or reversed year range, an unknown pass or mode, ``per_year`` or
            ``n`` larger than the candidates, ``missing_fraction`` outside [0, 1), or no date
            left.
    """
    p = params or SeriesParams()
    first, last = (years, years) if isinstance(years, int | np.integer) else tuple(years)
    first, last = int(first), int(last)
    if last < first:
        raise InputError(f"years must be a year or (first, last) with first <= last; got "
                         f"{years!r}.")
    if mode not in ("regular", "irregular"):
        raise InputError(f"mode must be 'regular' or 'irregular'; got {mode!r}.")
    passes = tuple(passes)
    if not passes or any(ps not in PASSES for ps in passes) or len(set(passes)) != len(passes):
        raise InputError(f"passes must be distinct values of {PASSES}; got {passes!r}.")
    if not 0.0 <= missing_fraction < 1.0:
        raise InputError(f"missing_fraction must be in [0, 1); got {missing_fraction}.")
    mset = set(range(1, 13)) if months is None else {int(m) for m in months}
    if not mset or not mset <= set(range(1, 13)):
        raise InputError(f"months must be values 1..12; got {months!r}.")
    lon = TSHO_ROLPA_LON if longitude is None else float(longitude)
    if not -180 <= lon <= 360:
        raise InputError(f"longitude must be in degrees east; got {longitude}.")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    start = datetime(first, 1, 1, tzinfo=UTC)
    end = datetime(last + 1, 1, 1, tzinfo=UTC)
    cands: list[tuple[datetime, str]] = []
    for ps in passes:
        hours = p.geometry(ps).local_solar_h - lon / 15.0
        day = start + timedelta(days=5 * (ps == "descending"))
        while day < end:
            t = day + timedelta(seconds=round(hours * 3600))
            if t.month in mset and start <= t < end:
                cands.append((t, ps))
            day += timedelta(days=12)
    cands.sort()
    if n is not None:
        if not 1 <= n <= len(cands):
            raise InputError(f"n must be in 1..{len(cands)} (the 12-day candidates of "
                             f"{first}–{last}); got {n}.")
        pick = (np.unique(np.round(np.linspace(0, len(cands) - 1, n)).astype(int))
                if mode == "regular" else np.sort(rng.choice(len(cands), n, replace=False)))
        chosen = [cands[i] for i in pick]
    else:
        if per_year < 1:
            raise InputError(f"per_year must be >= 1; got {per_year}.")
        chosen = []
        for yr in range(first, last + 1):
            for ps in passes:
                c = [x for x in cands if x[0].year == yr and x[1] == ps]
                if per_year > len(c):
                    raise InputError(
                        f"per_year={per_year} exceeds the {len(c)} 12-day acquisitions of the "
                        f"{ps} pass in {yr}" + ("" if months is None else
                                               f" within months {sorted(mset)}")
                        + f"; use per_year <= {len(c)}.")
                pick = (np.round(np.linspace(0, len(c) - 1, per_year)).astype(int)
                        if mode == "regular"
                        else np.sort(rng.choice(len(c), per_year, replace=False)))
                chosen += [c[i] for i in pick]
    drop = round(missing_fraction * len(chosen))
    if drop:
        keep = np.sort(rng.choice(len(chosen), len(chosen) - drop, replace=False))
        chosen = [chosen[i] for i in keep]
    if not chosen:
        raise InputError("no date left; lower missing_fraction or ask for more dates.")
    return sorted(chosen)


def _check_dates(dates: Sequence[tuple[datetime | date, str]]
                 ) -> tuple[list[datetime], list[str]]:
    if isinstance(dates, str | bytes) or not isinstance(dates, Sequence) or len(dates) == 0:
        raise InputError("dates must be a non-empty list of (datetime, pass) pairs, e.g. from "
                         "sample_dates(2021).")
    times, dirs = [], []
    for i, item in enumerate(dates):
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise InputError(f"dates[{i}] must be a (datetime, pass) pair; got {item!r}.")
        t, ps = item
        if ps not in PASSES:
            raise InputError(f"dates[{i}]: pass must be one of {PASSES}; got {ps!r}.")
        times.append(_utc(t))
        dirs.append(str(ps))
    if len(set(times)) != len(times):
        dup = sorted({t for t in times if times.count(t) > 1})
        raise InputError(f"dates holds the same acquisition time more than once: "
                         f"{[d.isoformat() for d in dup[:3]]}.")
    return times, dirs


# ---------------------------------------------------------------------------- geometry
def layover_shadow(dem: np.ndarray, pixel_size: tuple[float, float], *,
                   incidence_deg: float, look_azimuth_deg: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """First-order layover and shadow masks of a north-up DEM for one viewing geometry.

    With ``α`` the terrain slope along the horizontal look direction (positive where the
    terrain rises away from the sensor, i.e. faces it): layover where ``α > θ``, shadow where
    ``−α > 90° − θ``. Local rules only: cast shadows of distant ridges and passive layover are
    not included.

    Args:
        dem: ``(H, W)`` elevation (m), NaN nodata (never masked).
        pixel_size: ``(x, y)`` pixel size (m).
        incidence_deg: Ellipsoid incidence θ (degrees).
        look_azimuth_deg: Sensor → ground horizontal direction (degrees from north).

    Returns:
        ``(layover, shadow)``, two ``(H, W)`` bool arrays.
    """
    z = np.asarray(dem, dtype=np.float64)
    if z.ndim != 2 or min(z.shape) < 2:
        raise InputError(f"dem must be 2-D, at least 2×2; got shape {z.shape}.")
    xres, yres = pixel_size
    if not (xres > 0 and yres > 0):
        raise InputError(f"pixel_size must be two positive sizes in metres; got {pixel_size}.")
    dz_drow, dz_dcol = np.gradient(z, yres, xres)
    gx, gy = dz_dcol, -dz_drow
    ph = math.radians(look_azimuth_deg)
    with np.errstate(invalid="ignore"):
        alpha = np.degrees(np.arctan(gx * math.sin(ph) + gy * math.cos(ph)))
        layover = alpha > incidence_deg
        shadow = -alpha > 90.0 - incidence_deg
    return layover, shadow


def _texture(shape: tuple[int, int], pixel_size: tuple[float, float], p: SeriesParams,
             rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal(shape)
    if p.texture_db <= 0:
        return np.ones(shape)
    sig = (p.texture_scale_m / pixel_size[1], p.texture_scale_m / pixel_size[0])
    noise = ndimage.gaussian_filter(noise, sig, mode="reflect")
    noise /= max(float(noise.std()), 1e-12)
    s = p.texture_db * math.log(10) / 10          # std of ln(texture)
    return np.exp(s * noise - s * s / 2)           # E[texture] = 1


def _class_map(labels: np.ndarray, water: np.ndarray | None, p: SeriesParams) -> np.ndarray:
    lab = np.asarray(labels)
    if lab.ndim != 2 or lab.size == 0:
        raise InputError(f"labels must be a non-empty 2-D array (H, W); got shape {lab.shape}.")
    if not (np.issubdtype(lab.dtype, np.integer) or lab.dtype == np.bool_):
        raise InputError(f"labels must be integers (0 off-glacier, 1 glacier, 255 ignore); got "
                         f"{lab.dtype}.")
    cls = np.full(lab.shape, p.default_class, dtype=np.uint8)
    for k in p.classes:
        cls[lab == k] = k
    if water is not None:
        w = np.asarray(water)
        if w.shape != lab.shape:
            raise InputError(f"water shape {w.shape} differs from labels shape {lab.shape}.")
        if w.dtype != np.bool_:
            raise InputError(f"water must be a bool mask (H, W); got {w.dtype}.")
        if 2 not in p.classes:
            raise InputError("a water mask needs class 2 (water) in params.classes.")
        cls[w] = 2
    return cls


def synthetic_series(labels: np.ndarray, dates: Sequence[tuple[datetime | date, str]], *,
                     dem: np.ndarray | None = None,
                     pixel_size: tuple[float, float] = (20.0, 20.0),
                     water: np.ndarray | None = None, params: SeriesParams | None = None,
                     seed: int = 0, with_coherence: bool = True) -> SyntheticSeries:
    """Simulate a Sentinel-1 RTC γ⁰ VV time series (and coherence) for a label map.

    Args:
        labels: ``(H, W)`` integer classes: 0 off-glacier, 1 glacier (2 water where
            configured); 255 and unknown values use ``params.default_class``.
        dates: ``[(datetime, pass), ...]`` (naive datetimes are UTC), e.g. from
            :func:`sample_dates`; no acquisition time twice.
        dem: Optional ``(H, W)`` elevation (m) on the same grid: topographic gain and
            layover/shadow per pass.
        pixel_size: ``(x, y)`` pixel size in metres (DEM gradients, texture scale).
        water: Optional ``(H, W)`` bool mask of water (class 2), overriding ``labels``.
        params: Model parameters (defaults: the module docstring).
        seed: Random seed; the same inputs and seed give identical outputs.
        with_coherence: Also simulate the coherence with the previous date of the same pass.

    Returns:
        A :class:`SyntheticSeries`.

    Raises:
        InputError: labels not 2-D integers, DEM or water mask of another shape, empty or
            malformed dates, a non-positive pixel size.
    """
    p = params or SeriesParams()
    cls = _class_map(labels, water, p)
    times, dirs = _check_dates(dates)
    if not (len(pixel_size) == 2 and pixel_size[0] > 0 and pixel_size[1] > 0):
        raise InputError(f"pixel_size must be two positive sizes (x, y) in metres; got "
                         f"{pixel_size}.")
    h, w = cls.shape
    rng = np.random.default_rng(seed)
    texture = _texture((h, w), pixel_size, p, rng)
    gain: dict[str, np.ndarray] = {}
    lay: dict[str, np.ndarray] = {}
    sha: dict[str, np.ndarray] = {}
    d = None
    if dem is not None:
        d = np.asarray(dem, dtype=np.float64)
        if d.shape != cls.shape:
            raise InputError(f"dem shape {d.shape} differs from labels shape {cls.shape}.")
    for ps in PASSES:
        g = p.geometry(ps)
        if d is None:
            gain[ps] = np.ones((h, w))
            lay[ps] = np.zeros((h, w), bool)
            sha[ps] = np.zeros((h, w), bool)
            continue
        lay[ps], sha[ps] = layover_shadow(d, pixel_size, incidence_deg=g.incidence_deg,
                                          look_azimuth_deg=g.look_azimuth_deg)
        if p.topo_exponent:
            cl = local_incidence_cos(d, pixel_size, incidence_deg=g.incidence_deg,
                                     look_azimuth_deg=g.look_azimuth_deg)
            topo = (np.maximum(cl, p.shadow_floor) / math.cos(math.radians(g.incidence_deg))
                    ) ** p.topo_exponent
            topo = np.where(np.isfinite(topo), topo, 1.0)
            ok = ~(lay[ps] | sha[ps])
            gain[ps] = topo / float(topo[ok].mean()) if ok.any() else topo
        else:
            gain[ps] = np.ones((h, w))
    keys = sorted(p.classes)
    lut_idx = np.searchsorted(np.array(keys), cls)
    dry = np.array([p.classes[k].dry_db for k in keys])
    wet = np.array([p.classes[k].melt_db for k in keys])
    melt = np.array([melt_weight(t, p.melt_window_doy, p.melt_ramp_days) for t in times])
    jitter = rng.normal(0.0, p.jitter_db, len(times)) if p.jitter_db > 0 else np.zeros(len(times))
    n_t = len(times)
    power = np.empty((n_t, h, w), dtype=np.float32)
    valid = np.empty((n_t, h, w), dtype=bool)
    for i in range(n_t):
        mean_db = dry + melt[i] * (wet - dry) + jitter[i]
        sigma = (10.0 ** (mean_db / 10.0))[lut_idx] * texture * gain[dirs[i]]
        speckle = rng.gamma(shape=p.looks, scale=1.0 / p.looks, size=(h, w))
        ok = ~(lay[dirs[i]] | sha[dirs[i]])
        valid[i] = ok
        power[i] = np.where(ok, sigma * speckle, np.nan)
    coherence = None
    if with_coherence:
        coherence = _series_coherence(cls, times, dirs, valid, melt, p, rng)
    return SyntheticSeries(power=power, coherence=coherence, dates=times, directions=dirs,
                           valid=valid, classes=cls, melt=melt, jitter_db=jitter,
                           layover=lay, shadow=sha, params=p, seed=seed)


def _series_coherence(cls: np.ndarray, times: list[datetime], dirs: list[str],
                      valid: np.ndarray, melt: np.ndarray, p: SeriesParams,
                      rng: np.random.Generator) -> np.ndarray:
    """Coherence of each date with the previous date of its pass (synthetic_sar's estimator)."""
    n_t = len(times)
    out = np.full((n_t, *cls.shape), np.nan, dtype=np.float32)
    seeds = rng.integers(0, 2**63 - 1, size=n_t)
    for ps in PASSES:
        idx = sorted((i for i in range(n_t) if dirs[i] == ps), key=lambda i: times[i])
        for prev, cur in itertools.pairwise(idx):
            days = (times[cur] - times[prev]).total_seconds() / 86400.0
            m = 0.5 * (melt[prev] + melt[cur])
            sar_classes = {}
            for k, c in p.classes.items():
                db_k = c.dry_db + m * (c.melt_db - c.dry_db)
                sar_classes[k] = SarClass(vv_db=db_k, vh_db=db_k - 7.0,
                                          coherence=float(c.coherence ** (days / 12.0)))
            sp = SarParams(classes=sar_classes, default_class=p.default_class,
                           looks=p.looks, coherence_window=p.coherence_window,
                           texture_db=0.0, topo_exponent=0.0)
            coh = synthetic_sar(cls, params=sp, seed=int(seeds[cur])).coherence[0]
            out[cur] = np.where(valid[cur] & valid[prev], coh, np.nan)
    return out


# ---------------------------------------------------------------------------- writing
def _product_name(t: datetime, i: int, seed: int, res_m: float, style: str, ps: str) -> str:
    stamp = t.strftime("%Y%m%dT%H%M%S")
    if style == "hyp3":
        pid = hashlib.sha1(f"{seed}:{i}:{stamp}".encode()).hexdigest()[:4].upper()
        return f"S1A_IW_{stamp}_DVP_RTC{round(res_m):02d}_G_gpufed_{pid}_VV.tif"
    return f"{stamp}_{ps}_VV.tif"


def write_synthetic_series(out_dir: str | os.PathLike[str], labels: np.ndarray, grid: Grid,
                           dates: Sequence[tuple[datetime | date, str]], *,
                           dem: np.ndarray | None = None, water: np.ndarray | None = None,
                           seed: int = 0, params: SeriesParams | None = None,
                           nodata: float = 0.0,
                           name_style: Literal["hyp3", "plain"] = "hyp3",
                           overwrite: bool = False) -> list[Path]:
    """Simulate a series on ``grid`` and write one GeoTIFF per date plus ``dates.csv``.

    Each file is a one-band float32 γ⁰ VV in linear power (Cloud-Optimized GeoTIFF via
    :func:`glacierkit.io.write_raster`) with ``nodata`` in layover/shadow, tagged
    ``SYNTHETIC=1`` with the generator parameters, seed, pass and acquisition time. Names:

    * ``name_style="hyp3"``: like ASF HyP3 RTC products,
      ``S1A_IW_YYYYMMDDTHHMMSS_DVP_RTC{pixel m}_G_gpufed_{4 hex}_VV.tif`` (the product id is
      a hash of seed, index and time);
    * ``"plain"``: ``YYYYMMDDTHHMMSS_{pass}_VV.tif``.

    ``dates.csv`` has the columns ``path`` (file name, relative to ``out_dir``), ``date``
    (ISO 8601 UTC, ``...Z``) and ``pass``, one row per file in input order.

    Args:
        out_dir: Output folder (created if missing).
        labels: ``(H, W)`` classes on ``grid``.
        grid: The scene grid (``grid.shape == labels.shape``).
        dates: As for :func:`synthetic_series`.
        dem: Optional ``(H, W)`` DEM (m) on ``grid``.
        water: Optional ``(H, W)`` bool water mask on ``grid``.
        seed, params: As for :func:`synthetic_series`.
        nodata: Value written for layover/shadow (0 like HyP3, or NaN).
        name_style: ``"hyp3"`` or ``"plain"``.
        overwrite: Replace existing files (otherwise an existing one raises
            :class:`~glacierkit.errors.OutputExistsError` before anything is written).

    Returns:
        The written GeoTIFF paths, in input order (``dates.csv`` is beside them).
    """
    from glacierkit.dl.sources import pixel_size_m

    if np.shape(labels) != grid.shape:
        raise InputError(f"labels shape {np.shape(labels)} differs from the grid shape "
                         f"{grid.shape}.")
    if name_style not in ("hyp3", "plain"):
        raise InputError(f"name_style must be 'hyp3' or 'plain'; got {name_style!r}.")
    times, dirs = _check_dates(dates)
    px = pixel_size_m(grid)
    out = Path(out_dir)
    names = [_product_name(t, i, seed, px[0], name_style, ps)
             for i, (t, ps) in enumerate(zip(times, dirs, strict=True))]
    paths = [out / nm for nm in names]
    csv_path = out / "dates.csv"
    out.mkdir(parents=True, exist_ok=True)
    for pth in [*paths, csv_path]:
        check_output_path(pth, overwrite=overwrite)
    res = synthetic_series(labels, list(zip(times, dirs, strict=True)), dem=dem,
                           pixel_size=px, water=water, params=params, seed=seed,
                           with_coherence=False)
    base = {"SYNTHETIC": "1", "generator": "glacierkit.dl.synthetic_series", "seed": seed,
            "params": res.params.to_dict(), "radiometry": "gamma0 VV, linear power"}
    for i, pth in enumerate(paths):
        band = res.power[i]
        if not math.isnan(nodata):
            band = np.where(np.isfinite(band), band, np.float32(nodata))
        tags = {**base, "pass": dirs[i], "ACQUISITION_TIME": times[i].strftime(
            "%Y-%m-%dT%H:%M:%SZ"), "melt_weight": float(res.melt[i])}
        write_raster(pth, band.astype(np.float32), grid, nodata=nodata, band_names=["VV"],
                     units="linear power", tags=tags, overwrite=overwrite)
    tmp = csv_path.with_name(csv_path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["path", "date", "pass"])
        for pth, t, ps in zip(paths, times, dirs, strict=True):
            wr.writerow([pth.name, t.strftime("%Y-%m-%dT%H:%M:%SZ"), ps])
    os.replace(tmp, csv_path)
    return paths


# ---------------------------------------------------------------------------- real grids
REAL_GRID_SCENES: dict[str, tuple[str, str]] = {
    "oetztal": ("test-workflow/srtm_oetztal.tif", "test-workflow/rgi/rgi_oetztal.shp"),
    "hintereisferner": ("test-files/hef_srtm.tif", "test-files/Hintereisferner_RGI6.shp"),
}
"""Scenes of :func:`real_grid_scene`: ``{name: (DEM, outlines)}`` in ``oggm_sample_data``."""


@dataclass(eq=False)
class RealGridScene:
    """A real DEM and real glacier outlines on one metric grid.

    Attributes:
        name: Scene name.
        labels: ``(H, W)`` uint8, 1 inside an RGI outline, 0 elsewhere.
        dem: ``(H, W)`` float32 elevation (m), bilinear from SRTM; NaN outside it.
        grid: The UTM grid.
        water: Always None (no lake outlines in the sample data).
        sources: The DEM and outline files used.
    """

    name: str
    labels: np.ndarray
    dem: np.ndarray
    grid: Grid
    water: np.ndarray | None
    sources: dict[str, Path]


def real_grid_scene(name: str = "oetztal", *, pixel_size_m: float = 60.0,
                    bounds: tuple[float, float, float, float] | None = None) -> RealGridScene:
    """Labels, DEM and grid of a real glacier area from the ``oggm_sample_data`` example data.

    * ``"oetztal"``: SRTM 3″ (≈ 64 × 93 m) over the Ötztal Alps with 20 RGI 5.0 outlines
      (Hintereisferner, Kesselwandferner, Gepatschferner, ...);
    * ``"hintereisferner"``: SRTM 3″ around Hintereisferner with its RGI 6.0 outline.

    The DEM (EPSG:4326) is warped bilinearly onto a north-up grid in the UTM zone of its
    centre, inside its footprint, and the outlines are burnt into it
    (:func:`glacierkit.dl.labels.labels_from_outlines`, pixel centres).

    Args:
        name: ``"oetztal"`` or ``"hintereisferner"``.
        pixel_size_m: Pixel size (m) of the UTM grid.
        bounds: Optional ``(left, bottom, right, top)`` crop in the UTM CRS (metres).

    Returns:
        A :class:`RealGridScene`.

    Raises:
        InputError: unknown name, a non-positive pixel size, bounds outside the DEM.
        DatasetNotFoundError: ``oggm_sample_data`` is not available (the message says where
            it was looked for and how to get it).
    """
    from pyproj import Transformer

    from glacierkit import examples
    from glacierkit.dl.labels import labels_from_outlines
    from glacierkit.io.raster import open_raster
    from glacierkit.io.reproject import reproject

    if name not in REAL_GRID_SCENES:
        raise InputError(f"unknown real grid scene {name!r}; choose one of "
                         f"{sorted(REAL_GRID_SCENES)}.")
    if not pixel_size_m > 0:
        raise InputError(f"pixel_size_m must be > 0; got {pixel_size_m}.")
    dem_rel, out_rel = REAL_GRID_SCENES[name]
    dem_path = examples.path("oggm_sample_data", dem_rel)
    out_path = examples.path("oggm_sample_data", out_rel)
    src = open_raster(dem_path)
    left, bottom, right, top = src.grid.bounds
    lon0, lat0 = (left + right) / 2, (bottom + top) / 2
    zone = int((lon0 + 180) // 6) + 1
    epsg = (32600 if lat0 >= 0 else 32700) + zone
    tr = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)
    s = np.linspace(0.0, 1.0, 65)
    west = tr.transform(np.full_like(s, left), bottom + s * (top - bottom))
    east = tr.transform(np.full_like(s, right), bottom + s * (top - bottom))
    south = tr.transform(left + s * (right - left), np.full_like(s, bottom))
    north = tr.transform(left + s * (right - left), np.full_like(s, top))
    inner = (float(np.max(west[0])), float(np.max(south[1])), float(np.min(east[0])),
             float(np.min(north[1])))
    if bounds is not None:
        b = tuple(float(v) for v in bounds)
        crop = (max(inner[0], b[0]), max(inner[1], b[1]), min(inner[2], b[2]),
                min(inner[3], b[3]))
        if crop[2] - crop[0] < 2 * pixel_size_m or crop[3] - crop[1] < 2 * pixel_size_m:
            raise InputError(f"bounds {b} do not overlap the {name} DEM footprint "
                             f"{tuple(round(v) for v in inner)} (EPSG:{epsg}, metres).")
        inner = crop
    l0 = math.ceil(inner[0] / pixel_size_m) * pixel_size_m
    t0 = math.floor(inner[3] / pixel_size_m) * pixel_size_m
    cols = int((inner[2] - l0) // pixel_size_m)
    rows = int((t0 - inner[1]) // pixel_size_m)
    if rows < 2 or cols < 2:
        raise InputError(f"pixel_size_m={pixel_size_m} leaves fewer than 2×2 pixels of the "
                         f"{name} DEM; use a smaller pixel size.")
    from affine import Affine

    grid = Grid(crs=f"EPSG:{epsg}", transform=Affine(pixel_size_m, 0, l0, 0, -pixel_size_m, t0),
                shape=(rows, cols))
    dem = reproject(src, grid, resampling="bilinear").data[0].astype(np.float32)
    labels = labels_from_outlines(out_path, grid)
    return RealGridScene(name=name, labels=labels, dem=dem, grid=grid, water=None,
                         sources={"dem": dem_path, "outlines": out_path})
