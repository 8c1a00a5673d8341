"""Map-figure conventions: axes with CRS, scale bar, colour bar caps, arrow key, clipping."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from affine import Affine
from shapely.geometry import LineString, box

from glacierkit.errors import CRSError, InputError
from glacierkit.io.grid import Grid
from glacierkit.io.raster import Raster
from glacierkit.viz import clip_to, raster_map, velocity_map
from glacierkit.viz.maps import add_colorbar, colour_extend, find_scale_bar, nice_number

UTM = Grid(crs=32607, transform=Affine(30.0, 0, 500000.0, 0, -30.0, 6700000.0), shape=(60, 90))


def _raster(data: np.ndarray, grid: Grid, *, units: tuple[str, ...] | None = None,
            names: tuple[str, ...] | None = None) -> Raster:
    data = data if data.ndim == 3 else data[None]
    n = data.shape[0]
    return Raster(data=data.astype(np.float32), grid=grid,
                  band_names=names or tuple(f"band_{i + 1}" for i in range(n)),
                  units=units or ("",) * n, nodata=None, source_dtype="float32",
                  valid=np.isfinite(data))


def _flow(grid: Grid, peak: float):
    """A smooth eastward flow of ~100–400 m/yr with one fast spot reaching ``peak``."""
    _, cols = np.mgrid[0:grid.height, 0:grid.width]
    vx = 100.0 + 300.0 * cols / (grid.width - 1)
    vx[5:7, 40:42] = peak
    vy = np.full(grid.shape, -50.0)
    vx[0:3, 0:3] = np.nan
    return vx, vy, np.hypot(vx, vy)


def _parts(fig):
    ax, cax = fig.axes[0], fig.axes[1]
    return ax, cax


def _artist(ax, gid: str):
    found = [a for a in ax.artists if a.get_gid() == gid]
    assert len(found) == 1, f"expected one {gid}, got {len(found)}"
    return found[0]


def test_velocity_map_marks_cap_and_carries_units_crs_key_and_scale():
    vx, vy, v = _flow(UTM, peak=3048.0)
    bg = _raster(np.random.default_rng(0).random(UTM.shape), UTM)
    fig = velocity_map(bg, UTM, vx, vy, v, units="m/yr", title="t", arrows=20)
    ax, cax = _parts(fig)
    p98 = float(np.percentile(v[np.isfinite(v)], 98))
    assert p98 < 3048 / 2
    cb = ax.images[1].colorbar
    assert cb.extend == "max"
    assert cb.norm.vmax == pytest.approx(p98)
    label = cax.get_ylabel()
    assert label.startswith("speed (m/yr)")
    assert f"capped at p98 = {p98:.4g} m/yr; max 3048" in label
    assert "m)" in ax.get_xlabel() and "EPSG:32607" in ax.get_xlabel()
    assert "UTM zone 7N" in ax.get_xlabel()
    assert ax.get_ylabel() == "northing (m)"
    key = _artist(ax, "arrow_key")
    assert key.text.get_text() == f"arrow: {key.U:g} m/yr"
    assert key.U == nice_number(p98) and str(int(key.U))[0] in "125"
    bar = _artist(ax, "scale_bar")
    assert bar is find_scale_bar(ax)
    text = bar.txt_label.get_text()
    # About a fifth of the 2.7 km width, rounded down to 1/2/5 × 10ⁿ: 500 m.
    assert text == "500 m"


def test_velocity_map_without_cap_has_no_extend_note():
    vx, vy, _ = _flow(UTM, peak=300.0)
    v = np.full(UTM.shape, 250.0)
    bg = _raster(np.ones(UTM.shape), UTM)
    fig = velocity_map(bg, UTM, vx, vy, v, units="m/day", cap_percentile=100)
    ax, cax = _parts(fig)
    assert ax.images[1].colorbar.extend == "neither"
    assert cax.get_ylabel() == "speed (m/day)"
    assert _artist(ax, "arrow_key").text.get_text().endswith(" m/day")


def test_velocity_map_rejects_mismatched_shapes_and_missing_units():
    vx, vy, v = _flow(UTM, peak=300.0)
    bg = _raster(np.ones(UTM.shape), UTM)
    with pytest.raises(InputError, match="expected the node grid"):
        velocity_map(bg, UTM, vx[:-1], vy, v, units="m/yr")
    with pytest.raises(InputError, match="units"):
        velocity_map(bg, UTM, vx, vy, v, units="")


def test_write_quicklook_draws_the_velocity_map(monkeypatch, tmp_path: Path):
    import glacierkit.viz as viz
    from glacierkit.velocity.outputs import write_quicklook

    seen = []
    monkeypatch.setattr(viz, "save_png", lambda fig, path: seen.append((fig, path)))
    vx, vy, v = _flow(UTM, peak=3048.0)
    bg = _raster(np.random.default_rng(0).random(UTM.shape), UTM)
    out = write_quicklook(tmp_path / "q.png", bg, UTM, vx, vy, v, units="m/yr", title="t",
                          overwrite=False)
    assert out == tmp_path / "q.png" and len(seen) == 1
    ax = seen[0][0].axes[0]
    assert ax.images[1].colorbar.extend == "max"
    _artist(ax, "arrow_key")
    _artist(ax, "scale_bar")


def test_write_quicklook_writes_png(tmp_path: Path):
    from PIL import Image

    from glacierkit.velocity.outputs import write_quicklook

    vx, vy, v = _flow(UTM, peak=3048.0)
    bg = _raster(np.random.default_rng(0).random(UTM.shape), UTM)
    out = write_quicklook(tmp_path / "q.png", bg, UTM, vx, vy, v, units="m/yr", title="t",
                          overwrite=False, width_in=5, dpi=60)
    with Image.open(out) as im:
        assert im.size[0] == 300


def test_pixel_grid_axes_say_not_georeferenced():
    grid = Grid.pixel_grid((40, 50), 10.0)
    fig = raster_map(_raster(np.random.default_rng(1).random(grid.shape), grid, units=("DN",)))
    ax = fig.axes[0]
    assert "pixels, not georeferenced" in ax.get_xlabel()
    assert "pixels, not georeferenced" in ax.get_ylabel()
    # Ticks count columns / rows, not metres from the corner.
    fmt = ax.xaxis.get_major_formatter()
    assert fmt(200.0, 0) == "20"
    assert ax.yaxis.get_major_formatter()(-100.0, 0) == "10"
    ticks = ax.get_xticks()
    assert ticks.min() >= 0 and ticks.max() <= 500
    # 500 m wide map: a 100 m bar (1/5 of the width).
    assert _artist(ax, "scale_bar").txt_label.get_text() == "100 m"


def test_geographic_axes_and_scale_bar_at_latitude():
    grid = Grid(crs=4326, transform=Affine(0.001, 0, 8.0, 0, -0.001, 46.9), shape=(50, 80))
    fig = raster_map(_raster(np.random.default_rng(2).random(grid.shape), grid, units=("1",)))
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("longitude (°) — EPSG:4326")
    assert ax.get_ylabel() == "latitude (°)"
    # 0.08° of longitude at 46.875° N ≈ 6.09 km → a 1 km bar.
    assert _artist(ax, "scale_bar").txt_label.get_text() == "1 km (at 46.88° lat.)"


def test_raster_map_single_band_colour_bar_units_and_stretch_caps():
    data = np.random.default_rng(3).normal(size=UTM.shape)
    fig = raster_map(_raster(data, UTM, units=("DN",), names=("pan",)))
    ax, cax = _parts(fig)
    cb = ax.images[0].colorbar
    assert cb.extend == "both"
    label = cax.get_ylabel()
    assert label.startswith("pan (DN)\ncapped at p98 = ")
    assert "floored at p2 = " in label
    # Explicit limits covering the data: no caps, no notes.
    fig = raster_map(_raster(data, UTM, units=("DN",)), vmin=-10, vmax=10,
                     colorbar_label="high-pass")
    assert fig.axes[0].images[0].colorbar.extend == "neither"
    assert fig.axes[1].get_ylabel() == "high-pass (DN)"
    # Units not recorded in the file are not guessed.
    fig = raster_map(_raster(data, UTM))
    assert "(units not recorded)" in fig.axes[1].get_ylabel()


def test_raster_map_rgb_legend_and_outline_reprojected():
    rgb = np.random.default_rng(4).random((3, *UTM.shape))
    left, bottom, _, _ = UTM.bounds
    poly = gpd.GeoDataFrame(geometry=[box(left + 300, bottom + 300, left + 900, bottom + 900)],
                            crs=32607).to_crs(4326)
    fig = raster_map(_raster(rgb, UTM, names=("red", "green", "blue")),
                     outlines=[(poly, "red", "glacier outline")])
    ax = fig.axes[0]
    assert len(fig.axes) == 1  # RGB: no colour bar
    leg = ax.get_legend()
    assert [t.get_text() for t in leg.get_texts()] == ["glacier outline (1)"]
    assert "red, green, blue" in leg.get_title().get_text()
    assert "stretched p2–p98" in leg.get_title().get_text()
    # The boundary was reprojected into the map's CRS (UTM metres, not degrees).
    xs = np.concatenate([c.get_paths()[0].vertices[:, 0] for c in ax.collections])
    assert xs.min() == pytest.approx(left + 300, abs=1) and xs.max() == pytest.approx(
        left + 900, abs=1)
    _artist(ax, "scale_bar")
    # Bands without names in the file are named by number; no outlines: the note stands alone.
    fig = raster_map(_raster(rgb, UTM))
    assert fig.axes[0].get_legend() is None
    assert [t.get_text() for t in fig.axes[0].texts] == [
        "RGB = bands 1, 2, 3, each stretched p2–p98"]


def test_colour_extend_and_colorbar_needs_units():
    from matplotlib.figure import Figure

    d = np.array([0.0, 5.0, 10.0, np.nan])
    assert colour_extend(d, 0, 10) == "neither"
    assert colour_extend(d, 1, 10) == "min"
    assert colour_extend(d, 0, 9) == "max"
    assert colour_extend(d, 1, 9) == "both"
    assert colour_extend(d, None, None) == "neither"
    fig = Figure()
    ax = fig.add_subplot()
    im = ax.imshow(d[:3].reshape(1, 3), vmin=0, vmax=10)
    with pytest.raises(InputError, match="needs units"):
        add_colorbar(fig, ax, im, d, label="speed", units="")


def test_nice_number():
    assert [nice_number(x) for x in (1463.0, 0.37, 7.0, 10.0, 2.0, 999.0)] == [
        1000.0, 0.2, 5.0, 10.0, 2.0, 500.0]
    with pytest.raises(InputError):
        nice_number(0.0)


def test_clip_to_outline_areas_exact():
    outline = gpd.GeoDataFrame(geometry=[box(0, 0, 10, 10), box(10, 0, 20, 5)], crs=2056)
    ann = gpd.GeoDataFrame({"id": [1, 2, 3, 4, 5]},
                           geometry=[box(5, 5, 15, 15),     # straddles: 5×5 + 0 = 25 kept
                                     box(1, 1, 3, 3),       # inside: 4
                                     box(30, 30, 40, 40),   # outside: dropped
                                     box(-5, 0, 0, 10),     # touches only: line, dropped
                                     box(15, -5, 25, 10)],  # second part: 5×5 = 25
                           crs=2056)
    out = clip_to(ann, outline, name="snow polygons", within="glacier outline")
    assert list(out["id"]) == [1, 2, 5]
    assert out.geometry.area.tolist() == [25.0, 4.0, 25.0]
    assert out.crs == ann.crs
    assert all(g.geom_type in ("Polygon", "MultiPolygon") for g in out.geometry)
    # The input is not modified.
    assert ann.geometry.area.sum() == 100 + 4 + 100 + 50 + 150


def test_clip_to_reprojects_and_checks_crs():
    outline = gpd.GeoDataFrame(geometry=[box(500000, 6700000, 501000, 6701000)], crs=32607)
    ann = gpd.GeoDataFrame(geometry=[box(500500, 6700500, 502000, 6702000)],
                           crs=32607).to_crs(4326)
    out = clip_to(ann, outline)
    assert out.crs == outline.crs
    assert out.geometry.area.iloc[0] == pytest.approx(500 * 500, rel=1e-4)
    with pytest.raises(CRSError, match="both have a CRS"):
        clip_to(gpd.GeoDataFrame(geometry=[box(0, 0, 1, 1)]), outline)
    # A shapely geometry is taken in the annotations' CRS.
    lines = gpd.GeoDataFrame(geometry=[LineString([(0, 0), (1, 1)]), box(0, 0, 2, 2)])
    out = clip_to(lines, box(0, 0, 1, 1))
    assert out.geometry.area.tolist() == [1.0]


def test_crs_name_of_unnamed_custom_crs():
    from glacierkit.viz import crs_name

    wkt = ('PROJCS["unnamed",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,'
           '298.257223563]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],'
           'PROJECTION["Transverse_Mercator"],PARAMETER["latitude_of_origin",0],'
           'PARAMETER["central_meridian",7.58],PARAMETER["scale_factor",0.9996],'
           'PARAMETER["false_easting",0],PARAMETER["false_northing",0],UNIT["metre",1]]')
    grid = Grid(crs=wkt, transform=Affine(10.0, 0, 0, 0, -10.0, 5e6), shape=(5, 5))
    assert crs_name(grid) == "custom CRS (Transverse Mercator, WGS 84)"
    assert crs_name(UTM) == "EPSG:32607, WGS 84 / UTM zone 7N"
    assert crs_name(Grid.pixel_grid((5, 5))) == "pixels, not georeferenced"


def test_velocity_map_on_plain_image_grid():
    grid = Grid.pixel_grid((60, 90), 15.0)
    vx, vy, v = _flow(grid, peak=3048.0)
    fig = velocity_map(_raster(np.ones(grid.shape), grid), grid, vx, vy, v, units="m/yr")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "column (pixels, not georeferenced)"
    assert ax.get_ylabel() == "row (pixels, not georeferenced)"
    # 90 px × 15 m = 1350 m wide: a 200 m bar.
    assert _artist(ax, "scale_bar").txt_label.get_text() == "200 m"
