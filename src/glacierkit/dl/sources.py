"""Source groups, channel layouts, scene stacks and normalisation statistics.

A scene is a stack of *source groups* (:class:`SourceGroup`): optical bands, a DEM, SAR
backscatter, interferometric coherence, anything else. A :class:`SourceLayout` is the ordered
tuple of groups; the model input is the channels of all groups concatenated in layout order.

Raw bands and channels differ for derived groups:

========== ============================== ==========================================
kind       raw bands (``group.bands``)    channels (``group.channels``)
========== ============================== ==========================================
optical    one per channel                unchanged (reflectance or DN), float32
dem        ``("elevation",)`` (metres)    ``elevation`` (m), ``slope`` (degrees),
                                          optional ``hillshade`` (0–1)
sar        e.g. ``("vv", "vh")``          ``vv_db``, ``vh_db``: 10·log10(max(v, 1e-6))
                                          of linear power (or passed through when the
                                          group declares ``db_input=True``)
coherence  one per channel                clipped to [0, 1]
other      one per channel                unchanged
========== ============================== ==========================================

:func:`prepare_group` turns raw bands into channels; :func:`prepare_channels` does it for a
whole layout (this is what tiled inference calls per tile). :func:`open_scene` reads a
scene's files through :mod:`glacierkit.io` into a :class:`SceneStack`. :class:`NormStats` holds
the per-channel training mean and standard deviation.

Torch-free.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pyproj import CRS as ProjCRS
from rasterio.windows import Window

from glacierkit.errors import InputError
from glacierkit.io.grid import Grid
from glacierkit.io.raster import Raster, open_raster
from glacierkit.io.reproject import check_or_align

KINDS = ("optical", "dem", "sar", "coherence", "other")
"""Known source-group kinds."""

DEM_CHANNELS = ("elevation", "slope", "hillshade")
"""Channels a ``dem`` group may produce (any subset, any order, ``elevation`` not required)."""

SAR_FLOOR = 1e-6
"""Linear-power floor before the dB conversion (−60 dB): zero/negative power stays finite."""

SAR_SCALES = ("power", "amplitude", "db")
"""What a SAR group's raw bands hold: linear power (γ⁰/σ⁰), linear amplitude, or dB."""

Kind = Literal["optical", "dem", "sar", "coherence", "other"]


# ---------------------------------------------------------------------------- groups
@dataclass(frozen=True)
class SourceGroup:
    """One source group: a name, a kind, its output channels and its raw input bands.

    Args:
        name: Group name (``"optical"``, ``"dem"``, ...), unique within a layout.
        kind: ``"optical"``, ``"dem"``, ``"sar"``, ``"coherence"`` or ``"other"``.
        channels: Names of the channels the group contributes to the model input.
        bands: Names of the raw bands read from the files, in file order. Default:
            ``("elevation",)`` for a DEM, the channel names without ``_db`` for SAR, the
            channel names otherwise. Optical, coherence and other groups need one raw band per
            channel; a DEM needs exactly one.
        db_input: SAR only: the raw bands are already in dB (passed through unchanged);
            the same as ``scale="db"``.
        scale: SAR only: what the raw bands hold: ``"power"`` (linear γ⁰/σ⁰ power, → dB by
            ``10·log10``), ``"amplitude"`` (linear amplitude, → dB by ``20·log10``) or
            ``"db"`` (passed through). Default ``"power"`` (or ``"db"`` with ``db_input``).
        time: The group carries a time axis: its files are the dates of a series, stacked
            as ``(T, C, H, W)`` (the model input ``series``; see ``docs/design/dl.md``).
        hillshade_azimuth: DEM only: sun azimuth for ``hillshade`` (degrees clockwise from
            north).
        hillshade_altitude: DEM only: sun altitude above the horizon (degrees).

    Raises:
        InputError: unknown kind, empty or duplicate channels, channels that the kind cannot
            produce, or a raw band count that does not fit.
    """

    name: str
    kind: Kind
    channels: tuple[str, ...]
    bands: tuple[str, ...] | None = None
    db_input: bool = False
    hillshade_azimuth: float = 315.0
    hillshade_altitude: float = 45.0
    scale: str | None = None
    time: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InputError(f"a source group needs a non-empty name; got {self.name!r}.")
        if self.kind not in KINDS:
            raise InputError(f"group {self.name!r}: kind={self.kind!r} is not one of "
                             f"{list(KINDS)}.")
        chans = (self.channels,) if isinstance(self.channels, str) else tuple(self.channels)
        chans = tuple(str(c) for c in chans)
        object.__setattr__(self, "channels", chans)
        if not chans:
            raise InputError(f"group {self.name!r} has no channels; name at least one.")
        if len(set(chans)) != len(chans):
            raise InputError(f"group {self.name!r} has duplicate channel names {list(chans)}.")
        if self.kind == "dem":
            bad = [c for c in chans if c not in DEM_CHANNELS]
            if bad:
                raise InputError(f"dem group {self.name!r}: channels {bad} cannot be derived "
                                 f"from a DEM; choose from {list(DEM_CHANNELS)}.")
        if self.db_input and self.kind != "sar":
            raise InputError(f"group {self.name!r}: db_input=True only applies to kind 'sar'.")
        if self.kind == "sar":
            scale = self.scale or ("db" if self.db_input else "power")
            if scale not in SAR_SCALES:
                raise InputError(f"sar group {self.name!r}: scale={self.scale!r} is not one of "
                                 f"{list(SAR_SCALES)} (linear power, linear amplitude, dB).")
            if self.db_input and scale != "db":
                raise InputError(f"sar group {self.name!r}: db_input=True contradicts "
                                 f"scale={scale!r}; give one of them.")
            object.__setattr__(self, "scale", scale)
            object.__setattr__(self, "db_input", scale == "db")
        elif self.scale is not None:
            raise InputError(f"group {self.name!r}: scale= only applies to kind 'sar'.")
        object.__setattr__(self, "time", bool(self.time))
        if self.time and self.kind == "dem":
            raise InputError(f"dem group {self.name!r} cannot carry a time axis (time=True); "
                             f"a DEM is single-date.")
        bands = self.bands
        if bands is None:
            if self.kind == "dem":
                bands = ("elevation",)
            elif self.kind == "sar":
                bands = tuple(c[:-3] if c.endswith("_db") else c for c in chans)
            else:
                bands = chans
        bands = (bands,) if isinstance(bands, str) else tuple(str(b) for b in bands)
        object.__setattr__(self, "bands", bands)
        if self.kind == "dem" and len(bands) != 1:
            raise InputError(f"dem group {self.name!r} reads exactly one raw band (elevation, "
                             f"metres); got bands={list(bands)}.")
        if self.kind != "dem" and len(bands) != len(chans):
            raise InputError(f"group {self.name!r} ({self.kind}) needs one raw band per channel; "
                             f"got {len(bands)} band(s) {list(bands)} for channels "
                             f"{list(chans)}.")

    @property
    def n_bands(self) -> int:
        """Number of raw bands read from the group's file(s)."""
        return len(self.bands or ())

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (see :meth:`from_dict`)."""
        d: dict[str, Any] = {"name": self.name, "kind": self.kind,
                             "channels": list(self.channels), "bands": list(self.bands or ())}
        if self.kind == "sar":
            d["db_input"] = self.db_input
            if self.scale == "amplitude":  # power and dB are what db_input says
                d["scale"] = self.scale
        if self.time:
            d["time"] = True
        if self.kind == "dem":
            d["hillshade_azimuth"] = self.hillshade_azimuth
            d["hillshade_altitude"] = self.hillshade_altitude
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SourceGroup:
        """Rebuild a group written by :meth:`to_dict`."""
        known = {"name", "kind", "channels", "bands", "db_input", "hillshade_azimuth",
                 "hillshade_altitude", "scale", "time"}
        unknown = set(d) - known
        if unknown or not {"name", "kind", "channels"} <= set(d):
            raise InputError(f"source group entry {dict(d)!r} must have name, kind and "
                             f"channels (optional: bands, db_input, hillshade_*); unknown keys "
                             f"{sorted(unknown)}.")
        kw = dict(d)
        kw["channels"] = tuple(kw["channels"])
        if kw.get("bands") is not None:
            kw["bands"] = tuple(kw["bands"])
        return cls(**kw)


# ---------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class SourceLayout:
    """The ordered source groups of a model input.

    Args:
        groups: The groups, in model input order. Group names and channel names must be
            unique across the layout.

    Attributes:
        n_channels: Total number of channels ``C``.
        group_channels: Channels per group, e.g. ``(4, 2, 2, 1)`` (the models' argument).
        names: All channel names in input order (length ``C``).
        group_names: Group names in order (length ``G``).
        slices: ``{group name: slice}`` of each group's channels in the input.
    """

    groups: tuple[SourceGroup, ...]

    def __post_init__(self) -> None:
        groups = tuple(self.groups)
        object.__setattr__(self, "groups", groups)
        if not groups:
            raise InputError("a SourceLayout needs at least one source group.")
        if not all(isinstance(g, SourceGroup) for g in groups):
            raise InputError("SourceLayout groups must be SourceGroup objects.")
        names = [g.name for g in groups]
        if len(set(names)) != len(names):
            raise InputError(f"source group names must be unique; got {names}.")
        chans = [c for g in groups for c in g.channels]
        dup = sorted({c for c in chans if chans.count(c) > 1})
        if dup:
            raise InputError(f"channel names must be unique across the layout; {dup} appear in "
                             f"more than one group (rename them, e.g. 'red_s2').")

    # ------------------------------------------------------------------ constructors
    @classmethod
    def standard(cls, optical: Sequence[str] | None = ("red", "green", "blue", "nir"), *,
                 dem: bool = False, hillshade: bool = False, sar: Sequence[str] | None = None,
                 sar_db_input: bool = False, coherence: bool = False) -> SourceLayout:
        """The usual layout: optical, dem, sar, coherence (in that order; omitted groups left out).

        Args:
            optical: Optical band names (``None`` or empty: no optical group).
            dem: Add a ``dem`` group → channels ``elevation`` (m), ``slope`` (degrees).
            hillshade: Add a ``hillshade`` channel to the DEM group.
            sar: SAR polarisations, e.g. ``("vv", "vh")`` → channels ``vv_db``, ``vh_db``.
            sar_db_input: The SAR files are already in dB.
            coherence: Add a ``coherence`` group (one channel, 0–1).
        """
        groups: list[SourceGroup] = []
        if optical:
            groups.append(SourceGroup("optical", "optical", tuple(optical)))
        if dem:
            chans = ("elevation", "slope", "hillshade") if hillshade else ("elevation", "slope")
            groups.append(SourceGroup("dem", "dem", chans))
        if sar:
            groups.append(SourceGroup("sar", "sar", tuple(f"{p}_db" for p in sar),
                                      bands=tuple(sar), db_input=sar_db_input))
        if coherence:
            groups.append(SourceGroup("coherence", "coherence", ("coherence",)))
        return cls(tuple(groups))

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> SourceLayout:
        """Layout from a config ``[layout]`` table, keeping its order.

        Keys ``optical`` (list of band names), ``dem`` (true, or a list of DEM channels),
        ``sar`` (list of polarisations), ``coherence`` (true); any other key with a list of
        band names becomes an ``"other"`` group of that name. ``false``/empty entries are
        skipped. A table (mapping) describes a group explicitly: ``kind``, ``bands`` (raw
        bands per date for a series), optional ``channels``, ``scale`` (SAR: ``"power"``,
        ``"amplitude"``, ``"db"``) and ``time`` (``true``: a time series, one file per
        date), e.g. ``s1 = {kind = "sar", bands = ["vv"], scale = "power", time = true}``.
        """
        groups: list[SourceGroup] = []
        for key, val in spec.items():
            if val is False or val is None or (isinstance(val, list | tuple) and not val):
                continue
            if isinstance(val, Mapping):
                groups.append(_group_from_table(key, val))
                continue
            if key == "dem":
                chans = ("elevation", "slope") if val is True else tuple(val)
                groups.append(SourceGroup("dem", "dem", chans))
            elif key == "coherence":
                chans = ("coherence",) if val is True else tuple(val)
                groups.append(SourceGroup("coherence", "coherence", chans))
            elif key == "sar":
                if not isinstance(val, list | tuple):
                    raise InputError(f"[layout] sar must list polarisations, e.g. "
                                     f"[\"vv\", \"vh\"]; got {val!r}.")
                groups.append(SourceGroup("sar", "sar", tuple(f"{p}_db" for p in val),
                                          bands=tuple(val)))
            else:
                if not isinstance(val, list | tuple):
                    raise InputError(f"[layout] {key} must list band names; got {val!r}.")
                kind = "optical" if key == "optical" else "other"
                groups.append(SourceGroup(key, kind, tuple(val)))
        return cls(tuple(groups))

    # ------------------------------------------------------------------ properties
    @property
    def n_groups(self) -> int:
        """Number of groups ``G``."""
        return len(self.groups)

    @property
    def n_channels(self) -> int:
        """Total number of channels ``C``."""
        return sum(len(g.channels) for g in self.groups)

    @property
    def group_channels(self) -> tuple[int, ...]:
        """Channels per group, in layout order."""
        return tuple(len(g.channels) for g in self.groups)

    @property
    def names(self) -> tuple[str, ...]:
        """All channel names in input order."""
        return tuple(c for g in self.groups for c in g.channels)

    @property
    def group_names(self) -> tuple[str, ...]:
        """Group names in input order."""
        return tuple(g.name for g in self.groups)

    @property
    def slices(self) -> dict[str, slice]:
        """``{group name: slice of its channels in the input}``."""
        out, start = {}, 0
        for g in self.groups:
            out[g.name] = slice(start, start + len(g.channels))
            start += len(g.channels)
        return out

    def index(self, name: str) -> int:
        """Input index of a channel (``"nir"``, ``"slope"``, ...)."""
        names = self.names
        if name not in names:
            raise InputError(f"no channel named {name!r}; channels are {list(names)}.")
        return names.index(name)

    def group_index(self, name: str) -> int:
        """Position of a group in the layout."""
        if name not in self.group_names:
            raise InputError(f"no source group named {name!r}; groups are "
                             f"{list(self.group_names)}.")
        return self.group_names.index(name)

    def group(self, name: str) -> SourceGroup:
        """The group called ``name``."""
        return self.groups[self.group_index(name)]

    def channel_mask(self, kind: str) -> np.ndarray:
        """Boolean ``(C,)``: True for the channels of groups of this kind."""
        return np.array([g.kind == kind for g in self.groups for _ in g.channels], dtype=bool)

    # ------------------------------------------------------------------ time axis
    @property
    def timed(self) -> bool:
        """Whether any group carries a time axis (the model input ``series``)."""
        return any(g.time for g in self.groups)

    @property
    def time_mask(self) -> np.ndarray:
        """Boolean ``(C,)``: True for the channels of timed groups."""
        return np.array([g.time for g in self.groups for _ in g.channels], dtype=bool)

    def part(self, timed: bool) -> SourceLayout | None:
        """The sub-layout of the timed (``True``) or single-date (``False``) groups, or None.

        The single-date part is the model input ``x`` ``(C_x, H, W)`` (with ``present`` over
        its groups); the timed part is ``series`` ``(T, C_s, H, W)`` per sample.
        """
        groups = tuple(g for g in self.groups if g.time == timed)
        return SourceLayout(groups) if groups else None

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form ``{"groups": [...]}`` (stored in the model file)."""
        return {"groups": [g.to_dict() for g in self.groups]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SourceLayout:
        """Rebuild a layout written by :meth:`to_dict`."""
        if not isinstance(d, Mapping) or "groups" not in d:
            raise InputError(f"a serialised layout is {{'groups': [...]}}; got {d!r:.200}.")
        return cls(tuple(SourceGroup.from_dict(g) for g in d["groups"]))


def _group_from_table(name: str, table: Mapping[str, Any]) -> SourceGroup:
    """A source group from a config ``[layout.NAME]`` table (see ``SourceLayout.from_spec``)."""
    known = {"kind", "bands", "channels", "scale", "time"}
    unknown = set(table) - known
    if unknown or "kind" not in table:
        raise InputError(f"[layout] {name} = {{...}} needs kind (and optionally bands, "
                         f"channels, scale, time); unknown keys {sorted(unknown)}.")
    kind = str(table["kind"])
    bands = table.get("bands")
    chans = table.get("channels")
    if isinstance(bands, str):
        bands = [bands]
    if isinstance(chans, str):
        chans = [chans]
    if chans is None:
        if bands is None:
            raise InputError(f"[layout] {name}: give bands (raw band names in file order), "
                             f"e.g. bands = [\"vv\"].")
        chans = [f"{b}_db" for b in bands] if kind == "sar" else list(bands)
    return SourceGroup(name, kind, tuple(chans),  # type: ignore[arg-type]
                       bands=None if bands is None else tuple(bands),
                       scale=None if table.get("scale") is None else str(table["scale"]),
                       time=bool(table.get("time", False)))


# ---------------------------------------------------------------------------- channels
def pixel_size_m(grid: Grid) -> tuple[float, float]:
    """Pixel size ``(x, y)`` in metres.

    Projected CRSs: the resolution times the CRS's linear unit. Geographic CRSs: degrees
    converted at the grid centre's latitude (111 320 m·cos(lat) per degree of longitude,
    110 574 m per degree of latitude). Pixel grids (no CRS): the grid's units, which are
    metres by construction.
    """
    rx, ry = grid.res
    if grid.crs is None:
        return (rx, ry)
    crs = ProjCRS.from_user_input(grid.crs.to_wkt())
    if crs.is_geographic:
        _, bottom, _, top = grid.bounds
        lat = math.radians((bottom + top) / 2)
        return (rx * 111_320.0 * math.cos(lat), ry * 110_574.0)
    unit = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    return (rx * unit, ry * unit)


def _gradients(elevation: np.ndarray, pixel_size: tuple[float, float], *,
               gx_out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(z, dz/d(east), dz/d(north))`` of a north-up DEM, all ``(h, w)`` float32.

    Central differences inside, one-sided at the edges (as :func:`numpy.gradient`), computed
    in float32: differences of neighbouring float32 elevations are exact or nearly so, and
    this is several times faster than float64 per tile. ``gx_out``: an ``(h, w)`` float32
    array for ``dz/d(east)`` (e.g. the slope channel that will overwrite it).
    """
    z = np.asarray(elevation, dtype=np.float32)
    if z.ndim != 2 or min(z.shape) < 2:
        raise InputError(f"slope needs a 2-D DEM of at least 2×2 pixels; got shape {z.shape}.")
    xres, yres = (float(v) for v in pixel_size)
    if not (xres > 0 and yres > 0):
        raise InputError(f"pixel_size must be positive (x, y) metres; got {pixel_size}.")
    gx = np.empty(z.shape, dtype=np.float32) if gx_out is None else gx_out
    gy = np.empty(z.shape, dtype=np.float32)
    np.subtract(z[:, 2:], z[:, :-2], out=gx[:, 1:-1])
    gx[:, 1:-1] *= np.float32(0.5 / xres)
    np.subtract(z[:, 1], z[:, 0], out=gx[:, 0])
    np.subtract(z[:, -1], z[:, -2], out=gx[:, -1])
    gx[:, ::gx.shape[1] - 1] *= np.float32(1.0 / xres)
    # Rows run south: dz/d(north) = -(dz/d(row)).
    np.subtract(z[:-2], z[2:], out=gy[1:-1])
    gy[1:-1] *= np.float32(0.5 / yres)
    np.subtract(z[0], z[1], out=gy[0])
    np.subtract(z[-2], z[-1], out=gy[-1])
    gy[::gy.shape[0] - 1] *= np.float32(1.0 / yres)
    return z, gx, gy


def _slope_from(gx: np.ndarray, gy: np.ndarray, z: np.ndarray, *,
                out: np.ndarray | None = None) -> np.ndarray:
    """Slope in degrees (float32) from the gradients; NaN where ``z`` is not finite.

    ``gy`` is overwritten (scratch). ``sqrt(gx² + gy²)`` rather than :func:`numpy.hypot`,
    which is not vectorised for float32 (1.0 vs 0.2 ms per 512² tile); DEM gradients are far
    from float32 overflow or underflow, and the two agree to an ulp.
    """
    s = np.multiply(gx, gx, out=out)
    s += np.multiply(gy, gy, out=gy)
    np.sqrt(s, out=s)
    np.arctan(s, out=s)
    s *= np.float32(180.0 / math.pi)
    s[~np.isfinite(z)] = np.nan
    return s


def slope_aspect(elevation: np.ndarray, pixel_size: tuple[float, float]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Slope and aspect of a north-up DEM.

    Args:
        elevation: ``(h, w)`` elevation in metres, NaN nodata; ``h, w >= 2``.
        pixel_size: ``(x, y)`` pixel size in metres (both positive).

    Returns:
        ``(slope, aspect)``, both ``(h, w)`` float32 in degrees (computed in float32; within
        about 1e-5° of a float64 computation). Slope from central differences (as
        :func:`numpy.gradient`, one-sided at the edges); aspect is the downslope direction,
        clockwise from north (0 = north-facing, 90 = east-facing). Nodata pixels and their
        four neighbours are NaN.
    """
    z, gx, gy = _gradients(elevation, pixel_size)
    aspect = np.arctan2(-gx, -gy)
    aspect *= np.float32(180.0 / math.pi)
    np.remainder(aspect, np.float32(360.0), out=aspect)
    slope = _slope_from(gx, gy, z)
    aspect[~np.isfinite(z)] = np.nan
    return slope, aspect


def slope_deg(elevation: np.ndarray, pixel_size: tuple[float, float]) -> np.ndarray:
    """The slope of :func:`slope_aspect` alone (float32 degrees), without computing aspect."""
    z, gx, gy = _gradients(elevation, pixel_size)
    return _slope_from(gx, gy, z, out=gx)


def _hillshade(slope_deg: np.ndarray, aspect_deg: np.ndarray, azimuth: float,
               altitude: float) -> np.ndarray:
    zen = math.radians(90.0 - altitude)
    s = np.radians(slope_deg)
    a = np.radians(aspect_deg)
    hs = math.cos(zen) * np.cos(s) + math.sin(zen) * np.sin(s) * np.cos(math.radians(azimuth) - a)
    return np.clip(hs, 0.0, 1.0)


def prepare_group(group: SourceGroup, raw: np.ndarray, *,
                  pixel_size: tuple[float, float] | None = None) -> np.ndarray:
    """Turn a group's raw bands into its channels.

    Args:
        group: The source group.
        raw: ``(group.n_bands, h, w)`` float raw bands, NaN for nodata (a ``(h, w)`` array is
            accepted for one-band groups).
        pixel_size: ``(x, y)`` pixel size in metres; required for DEM slope/hillshade.

    Returns:
        ``(len(group.channels), h, w)`` float32, NaN where the input is nodata (and, for
        slope/hillshade, next to nodata).

    Raises:
        InputError: wrong number of raw bands, or a DEM without ``pixel_size``.
    """
    a = np.asarray(raw)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise InputError(f"group {group.name!r}: raw bands must be (bands, h, w); got shape "
                         f"{np.shape(raw)}.")
    if a.shape[0] != group.n_bands:
        raise InputError(f"group {group.name!r} ({group.kind}) expects {group.n_bands} raw "
                         f"band(s) {list(group.bands or ())} giving channels "
                         f"{list(group.channels)}; got {a.shape[0]}.")
    a = a.astype(np.float32, copy=False)
    if group.kind == "dem" and pixel_size is None:
        raise InputError(f"dem group {group.name!r} needs pixel_size=(x, y) in metres to "
                         f"compute slope.")
    out = np.empty((len(group.channels), *a.shape[1:]), dtype=np.float32)
    _group_into(group, a, out, pixel_size)
    return out


def _group_into(group: SourceGroup, a: np.ndarray, out: np.ndarray,
                pixel_size: tuple[float, float] | None) -> None:
    """Write the channels of checked float32 raw bands ``a`` into ``out`` (no extra copies)."""
    if group.kind == "dem":
        assert pixel_size is not None
        elev = a[0]
        slope = aspect = None
        in_place = False
        if "hillshade" in group.channels:
            slope, aspect = slope_aspect(elev, pixel_size)
        elif "slope" in group.channels:  # straight into its channel
            s_out = out[group.channels.index("slope")]
            z, gx, gy = _gradients(elev, pixel_size, gx_out=s_out)
            slope = _slope_from(gx, gy, z, out=s_out)
            in_place = True
        for i, c in enumerate(group.channels):
            if c == "elevation":
                out[i] = elev
            elif c == "slope":
                if not in_place:
                    out[i] = slope
            else:
                out[i] = _hillshade(slope, aspect, group.hillshade_azimuth,
                                    group.hillshade_altitude)
    elif group.kind == "sar" and not group.db_input:
        amplitude = group.scale == "amplitude"
        floor = math.sqrt(SAR_FLOOR) if amplitude else SAR_FLOOR
        np.maximum(a, np.float32(floor), out=out)
        with np.errstate(invalid="ignore"):
            np.log10(out, out=out)
        out *= np.float32(20.0 if amplitude else 10.0)
    elif group.kind == "coherence":
        np.clip(a, 0.0, 1.0, out=out)
    else:
        out[...] = a


def prepare_channels(layout: SourceLayout, raws: Sequence[np.ndarray | None], *,
                     pixel_size: tuple[float, float] | None = None,
                     out: np.ndarray | None = None) -> np.ndarray:
    """Channels of a whole layout from the raw bands of each group.

    Args:
        layout: The layout.
        raws: One entry per group in layout order: ``(n_bands, h, w)`` raw float bands (NaN
            nodata), or ``None`` for a missing group (its channels are all NaN).
        pixel_size: ``(x, y)`` pixel size in metres (needed when a DEM group is given).
        out: Optional ``(C, h, w)`` C-contiguous float32 array to write into (a buffer reused
            tile after tile: writing into freshly allocated memory page-faults, which measured
            0.35 vs 0.09 s for the 25 tiles of a 2048² scene next to an ONNX Runtime session).

    Returns:
        ``(C, h, w)`` float32, NaN nodata (``out`` when given).
    """
    if len(raws) != layout.n_groups:
        raise InputError(f"prepare_channels needs one raw array (or None) per group "
                         f"{list(layout.group_names)}; got {len(raws)}.")
    shapes = {np.shape(r)[-2:] for r in raws if r is not None}
    if not shapes:
        raise InputError("prepare_channels: every group is None; give at least one.")
    if len(shapes) > 1:
        raise InputError(f"raw groups have different sizes {sorted(shapes)}; all must cover "
                         f"the same window.")
    (h, w), = shapes
    if out is None:
        out = np.empty((layout.n_channels, h, w), dtype=np.float32)
    elif (out.shape != (layout.n_channels, h, w) or out.dtype != np.float32
          or not out.flags.c_contiguous):
        raise InputError(f"out must be a C-contiguous float32 array of shape "
                         f"{(layout.n_channels, h, w)}; got {out.dtype} {out.shape}.")
    for g, raw, sl in zip(layout.groups, raws, layout.slices.values(), strict=True):
        if raw is None:
            out[sl] = np.nan
        elif g.kind == "dem" and pixel_size is None:
            out[sl] = prepare_group(g, raw, pixel_size=pixel_size)  # raises the usual error
        else:
            a = np.asarray(raw)
            if a.ndim == 3 and a.shape[0] == g.n_bands:
                _group_into(g, a.astype(np.float32, copy=False), out[sl], pixel_size)
            else:
                out[sl] = prepare_group(g, raw, pixel_size=pixel_size)  # checks, or raises
    return out


# ---------------------------------------------------------------------------- scene stacks
@dataclass(eq=False)
class SceneStack:
    """A scene's channels on one grid.

    Attributes:
        layout: The layout the channels follow.
        grid: The scene grid (``data.shape[1:] == grid.shape``).
        data: ``(C, H, W)`` float32 channels, NaN nodata (a missing group is all NaN).
        present: One bool per group: False when the group's sources were not given.
        name: Scene name (messages, reports).
        region: Region name for region conditioning, or ``None``.
        meta: Free-form provenance: ``sources`` (paths per group), ``aligned``, ``bands``
            (per group, per raw band ``{"dtype", "units", "scale"}`` of its file).
    """

    layout: SourceLayout
    grid: Grid
    data: np.ndarray
    present: tuple[bool, ...]
    name: str = "scene"
    region: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    series: np.ndarray | None = None
    dates: np.ndarray | None = None

    def __post_init__(self) -> None:
        static = self.layout.part(False)
        n_static = 0 if static is None else static.n_channels
        names = [] if static is None else list(static.names)
        d = np.asarray(self.data)
        if d.ndim != 3 or d.shape[0] != n_static:
            raise InputError(f"scene {self.name!r}: data must be ({n_static}, H, W) for the "
                             f"single-date channels {names}; got {d.shape}.")
        if d.shape[1:] != self.grid.shape:
            raise InputError(f"scene {self.name!r}: data shape {d.shape[1:]} differs from the "
                             f"grid shape {self.grid.shape}.")
        self.data = d.astype(np.float32, copy=False)
        self.present = tuple(bool(p) for p in self.present)
        if len(self.present) != self.layout.n_groups:
            raise InputError(f"scene {self.name!r}: present needs one flag per group "
                             f"{list(self.layout.group_names)}; got {self.present}.")
        timed = self.layout.part(True)
        if timed is None:
            if self.series is not None or self.dates is not None:
                raise InputError(f"scene {self.name!r}: series/dates given but the layout has "
                                 f"no timed group (time=True).")
            return
        if self.series is None or self.dates is None:
            raise InputError(f"scene {self.name!r}: the layout has timed group(s) "
                             f"{list(timed.group_names)}; give series (T, C, H, W) and dates "
                             f"(T,).")
        a = np.asarray(self.series)
        if a.ndim != 4 or a.shape[1] != timed.n_channels or a.shape[2:] != self.grid.shape:
            raise InputError(f"scene {self.name!r}: series must be (T, {timed.n_channels}, "
                             f"{self.grid.height}, {self.grid.width}) for channels "
                             f"{list(timed.names)}; got {a.shape}.")
        t = np.asarray(self.dates, dtype=np.float64).reshape(-1)
        if t.size != a.shape[0] or a.shape[0] < 1:
            raise InputError(f"scene {self.name!r}: {a.shape[0]} dates in series but "
                             f"{t.size} date values.")
        if not np.all(np.isfinite(t)) or np.any(np.diff(t) < 0):
            raise InputError(f"scene {self.name!r}: dates must be finite and sorted "
                             f"ascending; got {t.tolist()}.")
        self.series = a.astype(np.float32, copy=False)
        self.dates = t

    @property
    def n_dates(self) -> int:
        """Number of dates ``T`` of the timed groups (1 for a single-date scene)."""
        return 1 if self.series is None else int(self.series.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)``."""
        return self.grid.shape

    def group_data(self, name: str) -> np.ndarray:
        """One group's channels: ``(n, H, W)`` (single-date) or ``(T, n, H, W)`` (timed) view."""
        g = self.layout.group(name)
        part = self.layout.part(g.time)
        assert part is not None
        sl = part.slices[g.name]
        return self.series[:, sl] if g.time else self.data[sl]  # type: ignore[index]

    def present_channels(self) -> np.ndarray:
        """Boolean ``(C,)``: True for channels of present groups (all groups, layout order)."""
        return np.repeat(np.array(self.present, dtype=bool),
                         np.array(self.layout.group_channels))

    def valid_mask(self) -> np.ndarray:
        """Boolean ``(H, W)``: where the scene has data.

        True where every present single-date channel is finite and, with timed groups, at
        least one date has every timed channel finite.
        """
        pc = self.present_channels()
        if not pc.any():
            return np.zeros(self.shape, dtype=bool)
        tm = self.layout.time_mask
        out = np.ones(self.shape, dtype=bool)
        static = pc[~tm]
        if static.any():
            out &= np.isfinite(self.data[static]).all(axis=0)
        if self.series is not None and pc[tm].any():
            out &= np.isfinite(self.series[:, pc[tm]]).all(axis=1).any(axis=0)
        return out

    def read(self, window: Window) -> np.ndarray:
        """``(C, h, w)`` single-date channels of an integer pixel window (a view)."""
        r0, c0 = int(window.row_off), int(window.col_off)
        return self.data[:, r0:r0 + int(window.height), c0:c0 + int(window.width)]


@dataclass(frozen=True)
class BandSource:
    """Explicit choice of bands from one file for :func:`open_scene`.

    Args:
        path: Raster file.
        bands: 1-based band indexes to take, in order (default: all bands).
    """

    path: str | os.PathLike[str]
    bands: tuple[int, ...] | None = None


SourceSpec = str | os.PathLike[str] | BandSource | Sequence[str | os.PathLike[str] | BandSource]
"""Sources of one group: a file, a :class:`BandSource`, or a list of them."""


def _as_sources(spec: SourceSpec, group: str) -> list[BandSource]:
    if isinstance(spec, str | os.PathLike | BandSource):
        items: list[Any] = [spec]
    elif isinstance(spec, Sequence):
        items = list(spec)
    else:
        raise InputError(f"sources of group {group!r} must be a path, a BandSource or a list "
                         f"of them; got {type(spec).__name__}.")
    if not items:
        raise InputError(f"group {group!r} has an empty list of sources; omit the group to "
                         f"mark it missing.")
    out = []
    for it in items:
        if isinstance(it, BandSource):
            out.append(BandSource(it.path, None if it.bands is None else tuple(it.bands)))
        elif isinstance(it, str | os.PathLike):
            out.append(BandSource(it))
        else:
            raise InputError(f"group {group!r}: source {it!r} is not a path or BandSource.")
    return out


def open_scene(layout: SourceLayout,
               paths: Mapping[str, SourceSpec], *,
               align: bool | str | Grid = False, resampling: str = "bilinear",
               name: str | None = None, region: str | None = None) -> SceneStack:
    """Read a scene's source files into a :class:`SceneStack`.

    Each group maps to one file, a :class:`BandSource`, or a list of them; the selected bands
    of the files, concatenated in order, are the group's raw bands. Example for the Everest
    Landsat scene (``RGB.tif`` holds red, green, blue; ``B4.tif`` holds near-infrared)::

        layout = SourceLayout.standard(("red", "green", "blue", "nir"))
        open_scene(layout, {"optical": ["..._RGB.tif", "..._B4.tif"]})
        # or pick bands: {"optical": [BandSource("stack.tif", (3, 2, 1)), "nir.tif"]}

    Groups of the layout missing from ``paths`` are marked absent (``present`` False, NaN
    channels). Files are read whole with :func:`glacierkit.io.open_raster` (NaN nodata).

    Args:
        layout: The layout.
        paths: ``{group name: sources}``.
        align: ``False`` (default): all files must be on one grid, else
            :class:`~glacierkit.errors.GridMismatchError`. ``True``: resample everything onto
            the grid of the first given group's first file (logged); a group name: onto that
            group's first file; a :class:`~glacierkit.io.grid.Grid`: onto that grid.
        resampling: Resampling used when aligning (see :func:`glacierkit.io.reproject`).
        name: Scene name (default: the first file's stem).
        region: Region name for region conditioning.

    Returns:
        The scene stack.

    Raises:
        InputError: an unknown group in ``paths``, or a group whose files give another number
            of bands than it needs (the message names the expected channels).
        GridMismatchError: grids differ and ``align`` is False.
        DatasetNotFoundError, RasterReadError, CRSError: from reading the files.
    """
    unknown = [k for k in paths if k not in layout.group_names]
    if unknown:
        raise InputError(f"sources given for group(s) {unknown} that are not in the layout "
                         f"{list(layout.group_names)}.")
    given = [g for g in layout.groups if g.name in paths]
    if not given:
        raise InputError(f"open_scene needs sources for at least one group of "
                         f"{list(layout.group_names)}.")
    rasters: dict[str, Raster] = {}
    per_group: dict[str, list[str]] = {}
    acquired = None
    for g in given:
        keys = []
        if g.time:
            srcs, acq = _timed_sources(paths[g.name], g)
            if acquired is None:
                acquired = acq
            elif not np.array_equal(acquired, acq):
                raise InputError(f"timed group {g.name!r} has other dates than the first "
                                 f"timed group; timed groups share one date axis.")
        else:
            srcs = _as_sources(paths[g.name], g.name)
        for i, src in enumerate(srcs):
            key = f"{g.name}[{i}]:{Path(src.path).name}"
            rasters[key] = open_raster(src.path, bands=src.bands)
            keys.append(key)
        per_group[g.name] = keys
    if align is False or align is None:
        target = None
    elif align is True:
        target = per_group[given[0].name][0]
    elif isinstance(align, str):
        if align not in per_group:
            raise InputError(f"align={align!r} must be True, a Grid or the name of a given "
                             f"group {list(per_group)}.")
        target = per_group[align][0]
    elif isinstance(align, Grid):
        target = align
    else:
        raise InputError(f"align must be False, True, a group name or a Grid; got {align!r}.")
    rasters = check_or_align(rasters, target, resampling=resampling)
    grid = next(iter(rasters.values())).grid
    raws: dict[str, np.ndarray] = {}
    for g in given:
        if g.time:
            per_date = [rasters[k].data for k in per_group[g.name]]
            bad = sorted({a.shape[0] for a in per_date if a.shape[0] != g.n_bands})
            if bad:
                raise InputError(f"timed group {g.name!r} needs {g.n_bands} band(s) "
                                 f"{list(g.bands or ())} per date; some dates' files hold "
                                 f"{bad}.")
            raws[g.name] = np.stack(per_date)
            continue
        raw = np.concatenate([rasters[k].data for k in per_group[g.name]], axis=0)
        if raw.shape[0] != g.n_bands:
            files = [str(rasters[k].path) for k in per_group[g.name]]
            raise InputError(
                f"group {g.name!r} needs {g.n_bands} raw band(s) {list(g.bands or ())} (giving "
                f"channels {list(g.channels)}) but its file(s) {files} hold {raw.shape[0]}.",
                hint="List the files whose bands, in order, give these bands, or pick bands "
                     "with BandSource(path, bands=(...)).",
                cli_hint="List the files whose bands, in order, give these bands (in the "
                         "config's [scenes.sources]; extract bands beforehand if a file holds "
                         "others, e.g. gdal_translate -b).")
        raws[g.name] = raw
    first = rasters[per_group[given[0].name][0]].path
    from glacierkit.dl.domain import file_band_info

    bands_info = {}
    for g in given:
        srcs = _timed_sources(paths[g.name], g)[0][:1] if g.time else \
            _as_sources(paths[g.name], g.name)
        bands_info[g.name] = [bi for src in srcs for bi in file_band_info(src.path, src.bands)]
    meta: dict[str, Any] = {
        "sources": {g: [str(rasters[k].path) for k in keys] for g, keys in per_group.items()},
        "aligned": target is not None, "bands": bands_info}
    dates = None
    if layout.timed:
        if acquired is None:
            raise InputError(f"the layout's timed group(s) {list(layout.part(True).group_names)}"
                             f" have no sources; a series model needs its series.")
        dates, ref = series_days(acquired)
        meta["acquired"] = [str(a) for a in acquired]
        meta["reference"] = ref
    return scene_from_arrays(layout, grid, raws, dates=dates, meta=meta,
                             name=name or (Path(first).stem if first else "scene"),
                             region=region)


def _timed_sources(spec: Any, group: SourceGroup) -> tuple[list[BandSource], np.ndarray]:
    """The per-date files and acquisition times of a timed group's source.

    ``spec`` is a series stack (an object with ``paths`` and ``dates``, e.g. from
    :func:`glacierkit.series.open_series`) or ``(paths, acquired)``.
    """
    if hasattr(spec, "paths") and hasattr(spec, "dates"):
        files, acquired = list(spec.paths), spec.dates
        scale = getattr(spec, "scale", None)
        if group.kind == "sar" and scale is not None and scale != group.scale:
            raise InputError(f"timed group {group.name!r} expects SAR {group.scale} values but "
                             f"the series was opened as {scale!r}.",
                             hint="Open the series with the scale the model was trained on, "
                                  "or convert the files.")
    elif isinstance(spec, tuple) and len(spec) == 2:
        files, acquired = list(spec[0]), spec[1]
    else:
        raise InputError(f"timed group {group.name!r} needs a series: a stack from "
                         f"glacierkit.series.open_series (files with acquisition dates) or "
                         f"(paths, dates); got {type(spec).__name__}.")
    acq = np.asarray(acquired, dtype="datetime64[s]").reshape(-1)
    if len(files) != acq.size or not files:
        raise InputError(f"timed group {group.name!r}: {len(files)} file(s) but {acq.size} "
                         f"date(s); give one date per file.")
    if np.any(np.diff(acq) <= np.timedelta64(0, "s")):
        raise InputError(f"timed group {group.name!r}: dates must be strictly increasing "
                         f"(no duplicates); got {[str(a) for a in acq]}.")
    return [BandSource(f) for f in files], acq


def scene_from_arrays(layout: SourceLayout, grid: Grid, raws: Mapping[str, np.ndarray], *,
                      name: str = "scene", region: str | None = None,
                      dates: Sequence[float] | np.ndarray | None = None,
                      meta: Mapping[str, Any] | None = None) -> SceneStack:
    """A :class:`SceneStack` from in-memory raw bands on ``grid``.

    Args:
        layout: The layout.
        grid: The scene grid.
        raws: ``{group: (n_bands, H, W)}`` for single-date groups and
            ``{group: (T, n_bands, H, W)}`` for timed groups (NaN nodata). Groups not in
            ``raws`` are absent. Raw bands are converted with :func:`prepare_group`.
        dates: ``(T,)`` days since the series' reference date (see
            :func:`series_days`); required when the layout has timed groups.
        meta: Provenance stored in :attr:`SceneStack.meta`.
    """
    unknown = [k for k in raws if k not in layout.group_names]
    if unknown:
        raise InputError(f"raw arrays given for group(s) {unknown} that are not in the layout "
                         f"{list(layout.group_names)}.")
    psize = pixel_size_m(grid) if grid.crs is not None else grid.res
    for k, v in raws.items():
        if np.shape(v)[-2:] != grid.shape:
            raise InputError(f"raw group {k!r} has shape {np.shape(v)}; expected (bands, "
                             f"{grid.height}, {grid.width}) on the grid.")
    static, timed = layout.part(False), layout.part(True)
    if static is not None and any(g in raws for g in static.group_names):
        data = prepare_channels(static, [raws.get(g) for g in static.group_names],
                                pixel_size=psize)
    else:
        n = 0 if static is None else static.n_channels
        data = np.full((n, *grid.shape), np.nan, dtype=np.float32)
    series = None
    if timed is not None:
        if dates is None:
            raise InputError(f"the layout has timed group(s) {list(timed.group_names)}; give "
                             f"dates= (days since the reference date, one per date).")
        t = len(np.atleast_1d(dates))
        for g in timed.group_names:
            if g in raws and (np.ndim(raws[g]) != 4 or np.shape(raws[g])[0] != t):
                raise InputError(f"timed group {g!r} needs raw bands (T={t}, bands, H, W); "
                                 f"got {np.shape(raws[g])}.")
        series = np.empty((t, timed.n_channels, *grid.shape), dtype=np.float32)
        for i in range(t):
            series[i] = prepare_channels(
                timed, [None if g not in raws else raws[g][i] for g in timed.group_names],
                pixel_size=psize)
    return SceneStack(layout=layout, grid=grid, data=data,
                      present=tuple(g in raws for g in layout.group_names), name=name,
                      region=region, series=series,
                      dates=None if dates is None else np.asarray(dates, dtype=np.float64),
                      meta=dict(meta or {}))


def series_days(acquired: Sequence[Any] | np.ndarray, reference: Any = None
                ) -> tuple[np.ndarray, str]:
    """Acquisition times → ``(days (T,) float64, reference ISO date)``.

    ``dates`` of the model contract are days (fractional) since a reference date: by
    default 1 January of the year of the first acquisition, so that the same season gives
    the same values every year (a date-aware model learns seasons, not calendar years).

    Args:
        acquired: ``(T,)`` acquisition times (``datetime``, ``date``, ISO strings or
            ``numpy.datetime64``), sorted ascending.
        reference: The reference date (default: 1 January of the first acquisition's year).
    """
    t = np.asarray(acquired, dtype="datetime64[s]").reshape(-1)
    if t.size == 0:
        raise InputError("a series needs at least one acquisition date.")
    if reference is None:
        ref = np.datetime64(str(t[0].astype("datetime64[Y]")) + "-01-01", "s")
    else:
        ref = np.datetime64(reference, "s")
    days = (t - ref).astype(np.float64) / 86400.0
    return days, str(ref.astype("datetime64[D]"))


# ---------------------------------------------------------------------------- normalisation
@dataclass(eq=False)
class NormStats:
    """Per-channel normalisation statistics: ``x' = (x - mean) / std``, NaN → 0.

    Args:
        mean: ``(C,)`` training mean per channel, in channel units.
        std: ``(C,)`` training standard deviation per channel (already floored, > 0).
        names: Optional channel names (checked against a layout by callers).
    """

    mean: np.ndarray
    std: np.ndarray
    names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.mean, dtype=np.float64).reshape(-1)
        self.std = np.asarray(self.std, dtype=np.float64).reshape(-1)
        if self.mean.shape != self.std.shape:
            raise InputError(f"mean {self.mean.shape} and std {self.std.shape} must both be "
                             f"(C,).")
        if not (np.all(np.isfinite(self.mean)) and np.all(self.std > 0)):
            raise InputError("NormStats needs finite means and positive standard deviations.")
        if self.names is not None:
            self.names = tuple(self.names)
            if len(self.names) != self.mean.size:
                raise InputError(f"NormStats has {self.mean.size} channels but "
                                 f"{len(self.names)} names.")

    @property
    def n_channels(self) -> int:
        """``C``."""
        return int(self.mean.size)

    @classmethod
    def fit(cls, stacks: Sequence[SceneStack | np.ndarray],
            masks: Sequence[np.ndarray | None] | None = None, *,
            max_samples: int = 2_000_000, min_std: float = 1e-3, seed: int = 0,
            names: Sequence[str] | None = None) -> NormStats:
        """Per-channel mean and standard deviation over the valid training pixels.

        Args:
            stacks: Scene stacks or ``(C, H, W)`` arrays (NaN nodata).
            masks: One boolean ``(H, W)`` per stack selecting the pixels to use (e.g. the
                training part of a split: ``split_map.mask("train")``), or ``None`` for all
                pixels. Only the training parts should be given, so that nothing is learnt
                from validation or test pixels.
            max_samples: At most this many pixels (over all stacks) enter the statistics; a
                seeded uniform random subset is used beyond that.
            min_std: Floor on the standard deviation (channel units), so that a constant
                channel normalises to 0 instead of dividing by zero.
            seed: Seed of the subsampling.
            names: Channel names (default: the first stack's layout names, when a SceneStack).

        Returns:
            Statistics in float64. Each channel uses its own finite pixels; a channel with no
            finite pixel at all (a group missing from every training scene) gets mean 0, std 1.
        """
        if not stacks:
            raise InputError("NormStats.fit needs at least one stack.")
        if masks is not None and len(masks) != len(stacks):
            raise InputError(f"NormStats.fit: {len(masks)} masks for {len(stacks)} stacks.")
        if isinstance(stacks[0], SceneStack) and stacks[0].layout.timed:
            return cls._fit_timed(stacks, masks, max_samples=max_samples, min_std=min_std,
                                  seed=seed)
        arrays = [s.data if isinstance(s, SceneStack) else np.asarray(s) for s in stacks]
        c = arrays[0].shape[0]
        if any(a.ndim != 3 or a.shape[0] != c for a in arrays):
            raise InputError(f"all stacks must be (C={c}, H, W); got "
                             f"{[a.shape for a in arrays]}.")
        if names is None and isinstance(stacks[0], SceneStack):
            names = stacks[0].layout.names
        flat_idx = []
        for i, a in enumerate(arrays):
            m = None if masks is None else masks[i]
            if m is None:
                flat_idx.append(np.arange(a.shape[1] * a.shape[2]))
            else:
                m = np.asarray(m, dtype=bool)
                if m.shape != a.shape[1:]:
                    raise InputError(f"mask {i} has shape {m.shape}; stack is {a.shape[1:]}.")
                flat_idx.append(np.flatnonzero(m))
        sizes = np.array([len(ix) for ix in flat_idx])
        total = int(sizes.sum())
        if total > max_samples:
            # One uniform subset over all stacks, drawn before gathering any pixel.
            rng = np.random.default_rng(seed)
            pick = np.sort(rng.choice(total, size=max_samples, replace=False))
            bounds = np.concatenate([[0], np.cumsum(sizes)])
            flat_idx = [ix[pick[(pick >= lo) & (pick < hi)] - lo]
                        for ix, lo, hi in zip(flat_idx, bounds[:-1], bounds[1:], strict=True)]
        allpx = np.concatenate([a.reshape(c, -1)[:, ix] for a, ix in
                                zip(arrays, flat_idx, strict=True)], axis=1)
        mean = np.zeros(c)
        std = np.ones(c)
        for k in range(c):
            v = allpx[k][np.isfinite(allpx[k])].astype(np.float64)
            if v.size:
                mean[k] = v.mean()
                std[k] = max(float(v.std()), min_std)
        return cls(mean=mean, std=std, names=None if names is None else tuple(names))

    @classmethod
    def _fit_timed(cls, stacks: Sequence[Any], masks: Sequence[np.ndarray | None] | None, *,
                   max_samples: int, min_std: float, seed: int) -> NormStats:
        """Statistics of a layout with timed groups.

        Single-date channels over the scenes' pixels, timed channels over every date's
        pixels; merged in layout order.
        """
        layout = stacks[0].layout
        if any(not isinstance(s, SceneStack) or s.layout != layout for s in stacks):
            raise InputError("NormStats.fit with timed groups needs SceneStacks sharing one "
                             "layout.")
        ms = list(masks) if masks is not None else [None] * len(stacks)
        tm = layout.time_mask
        mean, std = np.zeros(layout.n_channels), np.ones(layout.n_channels)
        if (~tm).any():
            st = cls.fit([s.data for s in stacks], ms, max_samples=max_samples,
                         min_std=min_std, seed=seed)
            mean[~tm], std[~tm] = st.mean, st.std
        per_date = [s.series[t] for s in stacks for t in range(s.n_dates)]
        date_masks = [m for s, m in zip(stacks, ms, strict=True) for _ in range(s.n_dates)]
        st = cls.fit(per_date, date_masks, max_samples=max_samples, min_std=min_std, seed=seed)
        mean[tm], std[tm] = st.mean, st.std
        return cls(mean=mean, std=std, names=layout.names)

    def select(self, mask: np.ndarray) -> NormStats:
        """The statistics of the channels where boolean ``mask`` ``(C,)`` is True."""
        m = np.asarray(mask, dtype=bool)
        if m.shape != self.mean.shape:
            raise InputError(f"select needs a ({self.n_channels},) mask; got {m.shape}.")
        names = None if self.names is None else tuple(n for n, k in zip(self.names, m,
                                                                         strict=True) if k)
        return NormStats(mean=self.mean[m], std=self.std[m], names=names)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Normalise ``(C, h, w)`` or ``(B, C, h, w)``; returns float32 with NaN → 0."""
        a = np.asarray(x)
        if a.ndim not in (3, 4) or a.shape[-3] != self.n_channels:
            raise InputError(f"apply expects (C, h, w) or (B, C, h, w) with C = "
                             f"{self.n_channels}; got {a.shape}.")
        m = self.mean.astype(np.float32)[:, None, None]
        s = self.std.astype(np.float32)[:, None, None]
        out = (a.astype(np.float32, copy=False) - m) / s
        return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32,
                                                                          copy=False)

    def to_dict(self) -> dict[str, Any]:
        """``{"mean": [...], "std": [...], "names": [...] | None}`` (stored in the model file)."""
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std],
                "names": None if self.names is None else list(self.names)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NormStats:
        """Rebuild statistics written by :meth:`to_dict`."""
        if "mean" not in d or "std" not in d:
            raise InputError(f"serialised NormStats needs 'mean' and 'std'; got keys "
                             f"{sorted(d)}.")
        return cls(mean=np.asarray(d["mean"]), std=np.asarray(d["std"]),
                   names=d.get("names"))

