"""Map-figure conventions shared by every glacierkit figure of a raster.

Every map figure drawn by glacierkit follows the same rules, implemented here once:

* **Axes in map units, CRS named**: :func:`map_axes` labels the axes with the unit and the CRS
  (``easting (m) — EPSG:32607, WGS 84 / UTM zone 7N``); a grid without a CRS is labelled
  ``pixels, not georeferenced`` and its ticks count columns and rows.
* **Scale bar** (:func:`add_scale_bar`): a round length (1, 2 or 5 × 10ⁿ m or km) of about a
  fifth of the map width.
* **Colour bar with units** (:func:`add_colorbar`): a colour range capped below the data
  maximum (or above its minimum) is marked with an extended end (``extend="max"``, ``"min"``
  or ``"both"``) and a note such as ``capped at p98 = 1463 m/yr; max 3048``.
* **Arrow key** for vector fields (:func:`add_arrow_key`): a round speed and its units.
* **Overlays**: outlines are drawn as boundaries with a legend (:func:`draw_outlines`);
  annotations are clipped to what they annotate (:func:`clip_to`) before drawing.

The figure builders (:func:`raster_map`, :func:`velocity_map`) return a
``matplotlib.figure.Figure`` (no pyplot state) so the figure can be inspected before it is
saved with :func:`glacierkit.viz.quicklook.save_png`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS as ProjCRS

from glacierkit.errors import CRSError, InputError
from glacierkit.io.grid import Grid
from glacierkit.io.raster import Raster
from glacierkit.io.vector import to_grid_crs

log = logging.getLogger(__name__)

NOT_GEOREFERENCED = "pixels, not georeferenced"

# Metres per degree (spherical approximation at the map centre, enough for a scale bar).
_M_PER_DEG_LAT = 110_574.0
_M_PER_DEG_LON_EQUATOR = 111_320.0
_UNIT_ABBREV = {"metre": "m", "meter": "m", "kilometre": "km", "foot": "ft",
                "US survey foot": "US ft", "degree": "°"}


# ---------------------------------------------------------------------------- numbers
def fmt(value: float) -> str:
    """A number with 4 significant digits and no exponent for everyday magnitudes.

    Args:
        value: Any finite float.

    Returns:
        E.g. ``"1463"``, ``"3048"``, ``"0.0125"``, ``"-12.5"``.
    """
    v = float(value)
    if v == 0 or 1e-3 <= abs(v) < 1e6:
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"
    return f"{v:.3g}"


def nice_number(value: float) -> float:
    """The largest 1, 2 or 5 × 10ⁿ not above ``value`` (> 0).

    Args:
        value: A positive finite number.

    Returns:
        E.g. 1463 → 1000, 0.37 → 0.2, 7 → 5.

    Raises:
        InputError: ``value`` is not positive and finite.
    """
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"nice_number needs a positive finite value; got {value!r}.")
    exp = math.floor(math.log10(value))
    base = 10.0 ** exp
    for m in (5.0, 2.0, 1.0):
        if m * base <= value * (1 + 1e-9):
            return m * base
    return base  # pragma: no cover - value ≥ base by construction


def _length_label(metres: float) -> str:
    if metres >= 1000:
        return f"{fmt(metres / 1000)} km"
    return f"{fmt(metres)} m"


# ---------------------------------------------------------------------------- CRS and units
def _proj(grid: Grid) -> ProjCRS | None:
    return None if grid.crs is None else ProjCRS.from_user_input(grid.crs.to_wkt())


def crs_name(grid: Grid) -> str:
    """How a figure names the grid's CRS.

    Args:
        grid: The grid of the map.

    Returns:
        ``"EPSG:32607, WGS 84 / UTM zone 7N"``; the CRS name alone for a CRS without an EPSG
        code (``"custom CRS (Transverse Mercator, WGS 84)"`` for an unnamed one);
        ``"pixels, not georeferenced"`` for a grid without a CRS.
    """
    crs = _proj(grid)
    if crs is None:
        return NOT_GEOREFERENCED
    if crs.name and crs.name.lower() not in ("unknown", "unnamed", "undefined"):
        name = crs.name
    else:
        # An unnamed CRS: say what it is (projection method, datum) rather than "unnamed".
        op = crs.coordinate_operation
        what = [op.method_name] if op is not None and op.method_name else []
        if crs.geodetic_crs is not None and crs.geodetic_crs.name:
            what.append(crs.geodetic_crs.name)
        name = f"custom CRS ({', '.join(what)})" if what else "custom CRS"
    return f"EPSG:{grid.epsg}, {name}" if grid.epsg else name


def axis_unit(grid: Grid) -> str:
    """Abbreviated unit of the grid's x/y coordinates.

    Args:
        grid: The grid of the map.

    Returns:
        ``"m"``, ``"US ft"``, ``"°"``, … ; ``"px"`` for a grid without a CRS.
    """
    crs = _proj(grid)
    if crs is None:
        return "px"
    if not crs.axis_info:
        return "map units"
    name = crs.axis_info[0].unit_name
    return _UNIT_ABBREV.get(name, name)


def metres_per_map_unit(grid: Grid) -> float:
    """Ground metres per unit of the x axis (for scale bars).

    Projected CRSs: the unit's conversion factor. Geographic CRSs: metres per degree of
    longitude at the grid centre's latitude (111 320 m·cos(lat), a spherical approximation).
    Grids without a CRS: 1 (their coordinates are metres from the top-left corner by
    construction, see :meth:`glacierkit.io.grid.Grid.pixel_grid`).

    Args:
        grid: The grid of the map.

    Returns:
        Metres per x-axis unit (> 0).
    """
    crs = _proj(grid)
    if crs is None:
        return 1.0
    if crs.is_geographic:
        _, bottom, _, top = grid.bounds
        lat = math.radians((bottom + top) / 2)
        return _M_PER_DEG_LON_EQUATOR * max(math.cos(lat), 1e-6)
    return float(crs.axis_info[0].unit_conversion_factor) if crs.axis_info else 1.0


def map_axes(ax: Any, grid: Grid, *, title: str | None = None) -> None:
    """Label a map's axes with units and CRS; plain ticks; equal aspect; optional title.

    Call after the axis limits are set. For a grid without a CRS the ticks show column and
    row numbers (pixels) and both labels say ``pixels, not georeferenced``.

    Args:
        ax: Matplotlib axes showing data in ``grid``'s map coordinates.
        grid: The grid whose coordinates the axes show.
        title: Optional axes title.
    """
    from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator

    ax.set_aspect("equal")
    ax.tick_params(labelsize=7)
    crs = _proj(grid)
    if crs is None:
        # Coordinates are metres from the top-left corner; show pixel columns / rows instead.
        left, _, _, top = grid.bounds
        rx, ry = grid.res
        for axis, origin, step, sign, n in ((ax.xaxis, left, rx, 1, grid.width),
                                            (ax.yaxis, top, ry, -1, grid.height)):
            px = MaxNLocator(nbins=6, integer=True).tick_values(0, n)
            px = px[(px >= 0) & (px <= n)]
            axis.set_major_locator(FixedLocator(origin + sign * px * step))
            axis.set_major_formatter(FuncFormatter(
                lambda v, _pos, o=origin, s=step, g=sign: f"{(v - o) * g / s:.0f}"))
        ax.set_xlabel(f"column ({NOT_GEOREFERENCED})", fontsize=8)
        ax.set_ylabel(f"row ({NOT_GEOREFERENCED})", fontsize=8)
    else:
        ax.ticklabel_format(style="plain", useOffset=False)
        unit = axis_unit(grid)
        if crs.is_geographic:
            xname, yname = "longitude", "latitude"
        else:
            xname, yname = "easting", "northing"
        ax.set_xlabel(f"{xname} ({unit}) — {crs_name(grid)}", fontsize=8)
        ax.set_ylabel(f"{yname} ({unit})", fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)


# ---------------------------------------------------------------------------- scale bar
def add_scale_bar(ax: Any, grid: Grid, *, fraction: float = 0.2,
                  loc: str = "lower left") -> Any:
    """Add a scale bar of a round ground length (1, 2 or 5 × 10ⁿ m) to a map's axes.

    The bar is about ``fraction`` of the current x-axis span long (set the limits first).
    Geographic CRSs use the metres per degree of longitude at the map centre (the label says
    so); grids without a CRS use their metre coordinates.

    Args:
        ax: Matplotlib axes in ``grid``'s map coordinates.
        grid: The grid whose coordinates the axes show.
        fraction: Target bar length as a share of the map width (0–1).
        loc: Matplotlib location code of the bar.

    Returns:
        The ``AnchoredSizeBar`` artist (gid ``"scale_bar"``).

    Raises:
        InputError: ``fraction`` is not in (0, 1) or the axes have no width.
    """
    from matplotlib.font_manager import FontProperties
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    if not 0 < fraction < 1:
        raise InputError(f"fraction must be in (0, 1) (share of the map width); got {fraction}.")
    x0, x1 = ax.get_xlim()
    span = abs(x1 - x0)
    if not span > 0:
        raise InputError("add_scale_bar needs axes with a positive x range; set the limits "
                         "before adding the scale bar.")
    m_per_unit = metres_per_map_unit(grid)
    metres = nice_number(span * m_per_unit * fraction)
    label = _length_label(metres)
    crs = _proj(grid)
    if crs is not None and crs.is_geographic:
        _, bottom, _, top = grid.bounds
        label += f" (at {fmt((bottom + top) / 2)}° lat.)"
    bar = AnchoredSizeBar(ax.transData, metres / m_per_unit, label, loc, pad=0.4,
                          borderpad=0.6, sep=3, color="black", frameon=True,
                          size_vertical=span * 0.006, fontproperties=FontProperties(size=7))
    bar.patch.set_alpha(0.75)
    bar.set_gid("scale_bar")
    ax.add_artist(bar)
    return bar


def find_scale_bar(ax: Any) -> Any | None:
    """The scale bar added by :func:`add_scale_bar` to ``ax``, or ``None``."""
    for a in ax.artists:
        if a.get_gid() == "scale_bar":
            return a
    return None


# ---------------------------------------------------------------------------- colour bar
def colour_extend(data: np.ndarray, vmin: float | None, vmax: float | None) -> str:
    """Matplotlib ``extend`` for a colour range: which ends cut off part of the data.

    Args:
        data: Values shown (any shape; NaN ignored).
        vmin, vmax: Colour limits (``None``: not limited on that side).

    Returns:
        ``"neither"``, ``"min"``, ``"max"`` or ``"both"``.
    """
    finite = np.asarray(data, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return "neither"
    low = vmin is not None and float(finite.min()) < vmin
    high = vmax is not None and float(finite.max()) > vmax
    return {(False, False): "neither", (True, False): "min", (False, True): "max",
            (True, True): "both"}[(low, high)]


def add_colorbar(fig: Any, ax: Any, im: Any, data: np.ndarray, *, label: str, units: str,
                 vmin_note: str | None = None, vmax_note: str | None = None,
                 shrink: float = 0.8) -> Any:
    """Colour bar with units whose capped ends are marked (extend arrow and a note).

    Args:
        fig: The figure.
        ax: The axes of ``im`` (the bar takes space from it).
        im: The mappable (``imshow`` result) with its ``norm`` limits set.
        data: The values shown by ``im`` (any shape, NaN = nodata), to detect capping.
        label: Quantity shown, e.g. ``"speed"``.
        units: Its units, e.g. ``"m/yr"``; ``"1"`` for dimensionless values. Required: a
            colour bar without units cannot be read.
        vmin_note, vmax_note: How the limits were chosen, e.g. ``"p2"``, ``"p98"`` (shown in
            the cap note).
        shrink: Colour bar length relative to the axes.

    Returns:
        The ``Colorbar``.

    Raises:
        InputError: ``units`` is empty.
    """
    if not units:
        raise InputError(f"colour bar {label!r} needs units (e.g. 'm/yr'; '1' for "
                         f"dimensionless values, 'DN' for raw digital numbers).")
    vmin, vmax = im.norm.vmin, im.norm.vmax
    extend = colour_extend(data, vmin, vmax)
    text = f"{label} ({units})"
    finite = np.asarray(data, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    notes = []
    if extend in ("max", "both"):
        how = f"{vmax_note} = " if vmax_note else ""
        notes.append(f"capped at {how}{fmt(vmax)} {units}; max {fmt(finite.max())}")
    if extend in ("min", "both"):
        how = f"{vmin_note} = " if vmin_note else ""
        notes.append(f"floored at {how}{fmt(vmin)} {units}; min {fmt(finite.min())}")
    if notes:
        text += "\n" + "\n".join(notes)
    cb = fig.colorbar(im, ax=ax, shrink=shrink, extend=extend)
    cb.set_label(text, fontsize=8)
    cb.ax.tick_params(labelsize=7)
    return cb


# ---------------------------------------------------------------------------- arrows
def add_arrow_key(ax: Any, quiver: Any, speed: float, units: str, *, x: float = 0.96,
                  y: float = 0.05, color: str = "white") -> Any:
    """Add an arrow-scale key (``quiverkey``) of a round speed to a quiver plot.

    Args:
        ax: Axes of the quiver.
        quiver: The ``Quiver`` returned by ``ax.quiver``.
        speed: A typical (or maximum shown) speed, in ``units``; the key shows the largest
            1, 2 or 5 × 10ⁿ not above it.
        units: Speed units, e.g. ``"m/yr"``.
        x, y: Arrow position in axes coordinates (default: inside the lower-right corner;
            the label sits left of the arrow on a white box, the arrow is outlined in black
            so it reads over any background).
        color: Key arrow colour (that of the arrows on the map).

    Returns:
        The ``QuiverKey`` (gid ``"arrow_key"``).

    Raises:
        InputError: ``units`` is empty or ``speed`` not positive.
    """
    if not units:
        raise InputError("an arrow key needs the speed units (e.g. 'm/yr').")
    value = nice_number(speed)
    key = ax.quiverkey(quiver, x, y, value, f"arrow: {fmt(value)} {units}", labelpos="W",
                       coordinates="axes", color=color, labelcolor="black",
                       fontproperties={"size": 7}, edgecolor="black", linewidth=0.5)
    key.text.set_bbox({"facecolor": "white", "alpha": 0.75, "linewidth": 0, "pad": 2})
    key.set_gid("arrow_key")
    return key


# ---------------------------------------------------------------------------- overlays
def clip_to(gdf: gpd.GeoDataFrame, outline: gpd.GeoDataFrame | shapely.Geometry, *,
            name: str = "annotations", within: str = "outline") -> gpd.GeoDataFrame:
    """Clip annotation polygons (e.g. hand-drawn snow polygons) to what they annotate.

    Parts outside ``outline`` are removed; features left empty are dropped; only polygonal
    parts are kept (slivers that degenerate into lines or points along the boundary go).
    A vector in another CRS than ``outline`` is reprojected to it (logged).

    Args:
        gdf: Polygons to clip.
        outline: The outline (GeoDataFrame: the union of its geometries; or a shapely
            geometry, taken to be in ``gdf``'s CRS).
        name: Name of ``gdf`` for messages.
        within: Name of ``outline`` for messages.

    Returns:
        A copy of ``gdf`` (same columns and CRS as ``outline``) with clipped geometries.

    Raises:
        CRSError: one of the two has a CRS and the other not.
    """
    if isinstance(outline, gpd.GeoDataFrame | gpd.GeoSeries):
        if (gdf.crs is None) != (outline.crs is None):
            raise CRSError(f"{name} and {within} must both have a CRS or both have none; got "
                           f"{gdf.crs!s:.60} and {outline.crs!s:.60}.")
        if gdf.crs is not None and not ProjCRS.from_user_input(gdf.crs).equals(
                ProjCRS.from_user_input(outline.crs)):
            log.info("reprojecting %s from %s to the CRS of %s (%s) before clipping", name,
                     gdf.crs.to_string()[:60], within, outline.crs.to_string()[:60])
            gdf = gdf.to_crs(outline.crs)
        mask = shapely.union_all(np.asarray(outline.geometry.values))
    else:
        mask = outline
    before = float(gdf.geometry.area.sum())
    clipped = shapely.intersection(np.asarray(gdf.geometry.values), mask)
    clipped = np.array([_polygonal(g) for g in clipped], dtype=object)
    keep = ~shapely.is_empty(clipped)
    out = gdf.iloc[np.flatnonzero(keep)].copy()
    out = out.set_geometry(gpd.GeoSeries(list(clipped[keep]), index=out.index, crs=gdf.crs))
    after = float(out.geometry.area.sum())
    log.info("clipped %s to the %s: %d of %d features kept, %.4g of %.4g area units² kept",
             name, within, len(out), len(gdf), after, before)
    return out


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    """The polygonal part of ``geom`` (empty polygon when none)."""
    if geom is None or geom.is_empty:
        return shapely.Polygon()
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in getattr(geom, "geoms", []) if g.geom_type in ("Polygon", "MultiPolygon")]
    if not parts:
        return shapely.Polygon()
    return shapely.union_all(parts)


def draw_outlines(ax: Any, outlines: Sequence[tuple[gpd.GeoDataFrame, str, str]], grid: Grid, *,
                  linewidth: float = 0.9, legend_loc: str = "lower right") -> list[Any]:
    """Draw polygon boundaries on a map and a legend naming each layer and its count.

    Vectors are reprojected to the grid's CRS when needed (logged), the raster never is.

    Args:
        ax: Axes in ``grid``'s map coordinates.
        outlines: ``(GeoDataFrame, colour, label)`` triples, drawn in order.
        grid: The grid of the map.
        linewidth: Line width (points).
        legend_loc: Matplotlib legend location.

    Returns:
        The legend handles (one ``Line2D`` per layer).

    Raises:
        CRSError: a vector and the grid disagree on being georeferenced.
    """
    from matplotlib.lines import Line2D

    handles = []
    for gdf, colour, label in outlines:
        if grid.is_georeferenced:
            g = to_grid_crs(gdf, grid, name=label)
        elif gdf.crs is not None:
            raise CRSError(f"{label} is georeferenced but the raster grid is not; outlines "
                           f"cannot be placed on a plain image.")
        else:
            g = gdf
        if len(g):
            g.boundary.plot(ax=ax, color=colour, linewidth=linewidth)
        handles.append(Line2D([], [], color=colour, label=f"{label} ({len(g)})"))
    if handles:
        ax.legend(handles=handles, loc=legend_loc, fontsize=7, framealpha=0.8)
    return handles


# ---------------------------------------------------------------------------- figures
def _figure(grid_or_bounds: tuple[float, float, float, float], width_in: float, dpi: int,
            colorbar: bool) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    left, bottom, right, top = grid_or_bounds
    aspect = (top - bottom) / (right - left)
    map_w = width_in * (0.78 if colorbar else 0.9)
    fig = Figure(figsize=(width_in, max(3.0, map_w * aspect + 1.3)), dpi=dpi)
    ax = fig.add_subplot()
    return fig, ax


def _stretch_limits(band: np.ndarray, percentiles: tuple[float, float]
                    ) -> tuple[float | None, float | None]:
    finite = band[np.isfinite(band)]
    if finite.size == 0:
        return None, None
    lo, hi = (float(v) for v in np.percentile(finite, percentiles))
    if hi <= lo:
        return lo - 0.5, hi + 0.5
    return lo, hi


def raster_map(raster: Raster, *, bands: Sequence[int] | None = None, cmap: str = "gray",
               outlines: Sequence[tuple[gpd.GeoDataFrame, str, str]] = (),
               title: str | None = None, colorbar_label: str | None = None,
               units: str | None = None, vmin: float | None = None, vmax: float | None = None,
               percentiles: tuple[float, float] = (2.0, 98.0), width_in: float = 8.0,
               dpi: int = 110) -> Any:
    """Map figure of a raster: axes with CRS, scale bar, colour bar or legend, outlines.

    A single band is shown with a colour bar in the band's units (``units`` or the raster's
    own; ``"units not recorded"`` when neither says); without ``vmin``/``vmax`` the colours
    span the ``percentiles`` of the valid pixels and the colour bar marks the capped ends.
    Three bands are shown as RGB, each stretched between its ``percentiles`` (noted in the
    legend title).

    Args:
        raster: The raster, shape ``(bands, rows, cols)``.
        bands: 0-based band indexes: one (colour map) or three (RGB). Default: first band, or
            the first three for a 3+ band raster.
        cmap: Matplotlib colour map of a single band.
        outlines: ``(GeoDataFrame, colour, label)`` triples drawn as polygon boundaries
            (clip annotations with :func:`clip_to` first).
        title: Figure title.
        colorbar_label: Quantity named on the colour bar (default: the band name).
        units: Units of the band values (default: the raster's units of that band).
        vmin, vmax: Colour limits of a single band (raw values).
        percentiles: Stretch percentiles where limits are not given.
        width_in: Figure width (inches).
        dpi: Resolution.

    Returns:
        The ``matplotlib.figure.Figure`` (not saved).

    Raises:
        InputError: ``bands`` has neither one nor three entries or indexes a missing band.
    """
    if bands is None:
        bands = [0, 1, 2] if raster.count >= 3 else [0]
    bands = [int(b) for b in bands]
    if len(bands) not in (1, 3) or not all(0 <= b < raster.count for b in bands):
        raise InputError(f"bands must be one or three 0-based indexes below {raster.count} "
                         f"(the raster's band count); got {bands}.")
    grid = raster.grid
    left, bottom, right, top = grid.bounds
    extent = (left, right, bottom, top)
    fig, ax = _figure(grid.bounds, width_in, dpi, colorbar=len(bands) == 1)
    legend_title = None
    if len(bands) == 3:
        from glacierkit.viz.quicklook import stretch

        rgb = np.dstack([stretch(raster.data[b], percentiles=percentiles) for b in bands])
        alpha = np.all(np.isfinite(rgb), axis=2).astype(float)
        ax.imshow(np.dstack([np.nan_to_num(rgb), alpha]), extent=extent,
                  interpolation="nearest")
        names = ", ".join(raster.band_names[b] for b in bands)
        if all(raster.band_names[b] == f"band_{b + 1}" for b in bands):
            names = "bands " + ", ".join(str(b + 1) for b in bands)  # unnamed in the file
        legend_title = (f"RGB = {names}, each stretched p{fmt(percentiles[0])}–"
                        f"p{fmt(percentiles[1])}")
    else:
        b = bands[0]
        band = raster.data[b].astype(np.float64)
        lo, hi = _stretch_limits(band, percentiles)
        notes = (None if vmin is not None else f"p{fmt(percentiles[0])}",
                 None if vmax is not None else f"p{fmt(percentiles[1])}")
        vmin = lo if vmin is None else vmin
        vmax = hi if vmax is None else vmax
        im = ax.imshow(np.ma.masked_invalid(band), cmap=cmap, vmin=vmin, vmax=vmax,
                       extent=extent, interpolation="nearest")
        unit = units or (raster.units[b] if b < len(raster.units) else "") or \
            "units not recorded"
        add_colorbar(fig, ax, im, band, label=colorbar_label or raster.band_names[b],
                     units=unit, vmin_note=notes[0], vmax_note=notes[1])
    draw_outlines(ax, outlines, grid)
    if legend_title:
        leg = ax.get_legend()
        if leg is not None:
            leg.set_title(legend_title, prop={"size": 7})
        else:
            ax.text(0.99, 0.01, legend_title, transform=ax.transAxes, ha="right", va="bottom",
                    fontsize=7, bbox={"facecolor": "white", "alpha": 0.8, "linewidth": 0})
    ax.set_xlim(left, right)
    ax.set_ylim(bottom, top)
    map_axes(ax, grid, title=title)
    add_scale_bar(ax, grid)
    return fig


def velocity_map(background: Raster, grid: Grid, vx: np.ndarray, vy: np.ndarray,
                 v: np.ndarray, *, units: str, title: str | None = None, arrows: int = 28,
                 cap_percentile: float = 98.0, width_in: float = 9.0, dpi: int = 110) -> Any:
    """Velocity map: speed (colour, semi-transparent) over a grey image, with flow arrows.

    The colour bar spans 0 to the ``cap_percentile`` of the speed; when the map reaches
    beyond, the bar is extended and says so (``capped at p98 = 1463 m/yr; max 3048``).
    Arrows (white, one per ``max(shape) // arrows`` nodes) share one scale; the key below
    the map gives a round speed in ``units``.

    Args:
        background: Image drawn in grey (its first band), percentile-stretched.
        grid: Grid of the velocity nodes (same CRS as ``background``).
        vx, vy: East and north velocity, shape ``grid.shape``, in ``units`` (NaN = none).
        v: Speed, shape ``grid.shape``, in ``units``.
        units: Velocity units, e.g. ``"m/yr"``.
        title: Figure title.
        arrows: About this many arrows along the longer side.
        cap_percentile: Upper colour limit as a percentile of the valid speeds.
        width_in: Figure width (inches).
        dpi: Resolution.

    Returns:
        The ``matplotlib.figure.Figure`` (not saved).

    Raises:
        InputError: an array's shape differs from ``grid.shape`` or ``units`` is empty.
    """
    from glacierkit.viz.quicklook import stretch

    for nm, a in (("vx", vx), ("vy", vy), ("v", v)):
        if np.shape(a) != grid.shape:
            raise InputError(f"{nm} has shape {np.shape(a)}; expected the node grid's "
                             f"{grid.shape}.")
    if not units:
        raise InputError("velocity_map needs the velocity units (e.g. 'm/yr').")
    left, bottom, right, top = background.grid.bounds
    nl, nb, nr, nt = grid.bounds
    fig, ax = _figure(background.grid.bounds, width_in, dpi, colorbar=True)
    ax.imshow(np.ma.masked_invalid(stretch(background.data[0])), cmap="gray",
              extent=(left, right, bottom, top), interpolation="nearest")
    finite = v[np.isfinite(v)]
    vmax = float(np.percentile(finite, cap_percentile)) if finite.size else 1.0
    vmax = vmax if vmax > 0 else 1.0
    im = ax.imshow(np.ma.masked_invalid(v), cmap="viridis", vmin=0, vmax=vmax, alpha=0.75,
                   extent=(nl, nr, nb, nt), interpolation="nearest")
    add_colorbar(fig, ax, im, v, label="speed", units=units,
                 vmax_note=f"p{fmt(cap_percentile)}")
    step = max(1, max(grid.shape) // arrows)
    rr, cc = np.mgrid[step // 2:grid.height:step, step // 2:grid.width:step]
    x, y = grid.xy(rr, cc)
    u, w = vx[rr, cc], vy[rr, cc]
    ok = np.isfinite(u) & np.isfinite(w)
    if ok.any():
        q = ax.quiver(np.asarray(x)[ok], np.asarray(y)[ok], u[ok], w[ok], color="white",
                      angles="xy", width=0.002, scale=vmax * arrows * 1.2, scale_units="width")
        add_arrow_key(ax, q, vmax, units)
    ax.set_xlim(left, right)
    ax.set_ylim(bottom, top)
    map_axes(ax, background.grid, title=title)
    add_scale_bar(ax, background.grid)
    return fig
