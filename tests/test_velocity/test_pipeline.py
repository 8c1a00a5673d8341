"""End-to-end pipeline on georeferenced files made from a real Yahtse crop with a known shift."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from velocity_synth import fourier_shift

from glacierkit.cli.main import main
from glacierkit.errors import GridMismatchError, InputError, OutputExistsError
from glacierkit.io import Grid, open_raster, write_raster
from glacierkit.velocity.pipeline import TrackingParams, run_velocity

RES = 15.0
GRID = Grid(crs=32607, transform=Affine(RES, 0, 470000, 0, -RES, 6680000), shape=(256, 256))
PARAMS = TrackingParams(chip_size_px=32, search_px=8, step_px=16)


@pytest.fixture(scope="module")
def shifted_pair(tmp_path_factory, textured) -> tuple[Path, Path]:
    """Reference crop and a copy shifted by (dy, dx) = (1.25, -2.5) px, as GeoTIFFs."""
    d = tmp_path_factory.mktemp("pair")
    img = textured(256, 256, margin=64)
    sec = fourier_shift(img, 1.25, -2.5, margin=64)
    ref = img[64:-64, 64:-64]
    return (write_raster(d / "ref_20160718.tif", ref.astype(np.float32), GRID),
            write_raster(d / "sec_20160803.tif", sec.astype(np.float32), GRID))


def test_known_shift_end_to_end(shifted_pair, tmp_path: Path):
    ref, sec = shifted_pair
    res = run_velocity(ref, sec, tmp_path / "out", params=PARAMS, units="m/day")
    assert res.report["time"]["dt_days"] == 16.0
    vel = open_raster(tmp_path / "out" / "velocity.tif")
    disp = open_raster(tmp_path / "out" / "displacement.tif")
    assert vel.band_names == ("vx", "vy", "v") and vel.units == ("m/day",) * 3
    assert vel.grid.epsg == 32607 and vel.grid.res == (16 * RES, 16 * RES)
    inner = (slice(2, -2), slice(2, -2))  # nodes whose chips + search stay inside the crop
    dx = disp.band("dx")[inner]
    dy = disp.band("dy")[inner]
    # 2.5 px to the left = 37.5 m west; 1.25 px down = 18.75 m south.
    assert np.nanmedian(dx) == pytest.approx(-37.5, abs=0.02 * RES)
    assert np.nanmedian(dy) == pytest.approx(-18.75, abs=0.02 * RES)
    assert np.nanmedian(vel.band("vx")[inner]) == pytest.approx(-37.5 / 16, abs=0.02)
    with rasterio.open(tmp_path / "out" / "quality.tif") as ds:
        assert ds.descriptions == ("peak_corr", "snr", "peak_ratio", "status")
        assert '"0": "OK"' in ds.tags(4)["codes"]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["tracking"]["chip_size_px"] == 32 and report["status_counts"]["OK"] > 0
    assert (tmp_path / "out" / "quicklook.png").stat().st_size > 10_000


def test_node_centre_georeferencing(shifted_pair, tmp_path: Path):
    ref, sec = shifted_pair
    run_velocity(ref, sec, tmp_path, params=PARAMS, quicklook=False)
    g = open_raster(tmp_path / "velocity.tif").grid
    # Node (0, 0) is the centre of the chip covering pixels 0..31 when step 16, chip 32:
    # chip centre at pixel-index 7.5 (node_grid offset (16-32)//2 + 15.5).
    x, y = g.xy(0, 0)
    x_img, y_img = GRID.xy(7.5, 7.5)
    assert (float(x), float(y)) == pytest.approx((float(x_img), float(y_img)))


def test_swap_negates(shifted_pair, tmp_path: Path):
    ref, sec = shifted_pair
    run_velocity(ref, sec, tmp_path / "a", params=PARAMS, quicklook=False, dt_days=10)
    run_velocity(sec, ref, tmp_path / "b", params=PARAMS, quicklook=False, dt_days=10)
    a = open_raster(tmp_path / "a" / "displacement.tif").data[:, 2:-2, 2:-2]
    b = open_raster(tmp_path / "b" / "displacement.tif").data[:, 2:-2, 2:-2]
    ok = np.isfinite(a) & np.isfinite(b)
    assert ok.mean() > 0.9
    assert np.nanmedian(np.abs(a[ok] + b[ok])) < 0.05 * RES


def test_identical_images_zero_field(shifted_pair, tmp_path: Path):
    ref, _ = shifted_pair
    run_velocity(ref, ref, tmp_path, params=PARAMS, quicklook=False, dt_days=16)
    d = open_raster(tmp_path / "displacement.tif").data[:, 2:-2, 2:-2]
    assert np.isfinite(d).mean() > 0.9
    assert np.nanmax(np.abs(d)) < 1e-3 * RES


def test_grid_mismatch_and_align(shifted_pair, tmp_path: Path):
    ref, sec = shifted_pair
    moved = Grid(crs=32607, transform=Affine(RES, 0, 470000 + 3 * RES, 0, -RES, 6680000),
                 shape=(256, 256))
    other = write_raster(tmp_path / "moved.tif", open_raster(sec).data, moved)
    with pytest.raises(GridMismatchError, match=r"(?s)reference: .*secondary: "):
        run_velocity(ref, other, tmp_path / "x", params=PARAMS, dt_days=16)
    assert not (tmp_path / "x").exists()
    res = run_velocity(ref, other, tmp_path / "y", params=PARAMS, dt_days=16,
                       align="reference", quicklook=False)
    assert res.report["status_counts"]["OK"] > 0


def test_textureless_and_nodata_images_fail_clearly(tmp_path: Path):
    flat = write_raster(tmp_path / "flat.tif", np.full(GRID.shape, 5.0, np.float32), GRID)
    with pytest.raises(InputError, match="textureless"):
        run_velocity(flat, flat, tmp_path / "o", params=PARAMS, dt_days=1)
    empty = write_raster(tmp_path / "nan.tif", np.full(GRID.shape, np.nan, np.float32), GRID)
    with pytest.raises(InputError, match="entirely nodata"):
        run_velocity(empty, empty, tmp_path / "o", params=PARAMS, dt_days=1)
    assert not (tmp_path / "o").exists()


def test_existing_outputs_refused(shifted_pair, tmp_path: Path):
    ref, sec = shifted_pair
    run_velocity(ref, sec, tmp_path, params=PARAMS, quicklook=False)
    with pytest.raises(OutputExistsError):
        run_velocity(ref, sec, tmp_path, params=PARAMS, quicklook=False)


def test_chip_larger_than_image(shifted_pair, tmp_path: Path):
    ref, sec = shifted_pair
    with pytest.raises(InputError):
        run_velocity(ref, sec, tmp_path / "o", params=TrackingParams(chip_size_px=512))


def test_cli_velocity(shifted_pair, tmp_path: Path, capsys):
    ref, sec = shifted_pair
    rc = main(["velocity", str(ref), str(sec), "-o", str(tmp_path), "--chip", "32",
               "--search", "8", "--step", "16", "--units", "m/day", "--no-quicklook"])
    assert rc == 0
    assert "dt = 16.000 days" in capsys.readouterr().out
    # A bad option value is a usage error (exit code 2), found before any work.
    assert main(["velocity", str(ref), str(sec), "-o", str(tmp_path), "--dt-days", "-3"]) == 2
    assert "must be > 0" in capsys.readouterr().err


def _poly_file(path: Path, bounds) -> Path:
    import geopandas as gpd
    from shapely.geometry import box

    gpd.GeoDataFrame(geometry=[box(*bounds)], crs=32607).to_file(path)
    return path


def test_stable_ground_correction_removes_injected_shift(shifted_pair, tmp_path: Path):
    """The whole crop moved by (1.25, -2.5) px: on 'stable' ground that is a pure bias."""
    ref, sec = shifted_pair
    left, bottom, right, top = GRID.bounds
    rock = _poly_file(tmp_path / "rock.gpkg", (left, bottom, left + 0.6 * (right - left), top))
    res = run_velocity(ref, sec, tmp_path / "o", params=PARAMS, stable=rock, min_stable=10,
                       quicklook=False, units="m/day")
    corr = res.report["corrections"]
    shift = corr["steps"][0]["params"]
    assert shift["dx"]["terms"]["shift"]["value"] == pytest.approx(-2.5, abs=0.02)
    assert shift["dy"]["terms"]["shift"]["value"] == pytest.approx(1.25, abs=0.02)
    assert abs(corr["stable"]["after"]["dx"]["median"]) < 0.01
    d = open_raster(tmp_path / "o" / "displacement.tif").data[:, 2:-2, 2:-2]
    assert np.nanmax(np.abs(np.nanmedian(d, axis=(1, 2)))) < 0.02 * RES
    # The same with glacier outlines whose outside is stable ground.
    ice = _poly_file(tmp_path / "ice.gpkg", (left + 0.6 * (right - left), bottom, right, top))
    res2 = run_velocity(ref, sec, tmp_path / "o2", params=PARAMS, outlines=ice,
                        min_stable=10, quicklook=False)
    assert res2.report["corrections"]["stable_ground"] == "outside ice.gpkg"


def test_stable_polygons_missing_the_image(shifted_pair, tmp_path: Path):
    ref, sec = shifted_pair
    far = _poly_file(tmp_path / "far_rock.gpkg", (0, 0, 100, 100))
    with pytest.raises(InputError, match=r"far_rock\.gpkg.*does not overlap"):
        run_velocity(ref, sec, tmp_path / "o", params=PARAMS, stable=far, quicklook=False)
    few = _poly_file(tmp_path / "tiny_rock.gpkg", (470000, 6679900, 470100, 6680000))
    with pytest.raises(InputError, match=r"tiny_rock\.gpkg covers"):
        run_velocity(ref, sec, tmp_path / "o", params=PARAMS, stable=few, quicklook=False)
    assert not (tmp_path / "o").exists()


def test_yahtse_real_pair_with_rock_and_dem(yahtse: Path, tmp_path: Path):
    res = run_velocity(yahtse / "LC80630182016200LGN00_B8_yahtse.TIF",
                       yahtse / "LC80630182016216LGN00_B8_yahtse.TIF", tmp_path,
                       stable=yahtse / "yahtse_stable_rock.shp",
                       dem=yahtse / "yahtse_srtm_dem.tif", quicklook=False)
    assert res.report["time"]["dt_days"] == pytest.approx(16.0, abs=1e-4)
    corr = res.report["corrections"]
    before, after = corr["stable"]["before"], corr["stable"]["after"]
    assert after["n"] > 1000
    for c in ("dx", "dy"):
        assert abs(after[c]["median"]) < 0.01  # px
        assert after[c]["nmad"] <= before[c]["nmad"]
        assert after[c]["nmad"] < 0.1  # px (measured 0.068 / 0.064 with the default)
    assert "bilinear" in corr["dem"]["resampling"]
    counts = res.report["status_counts"]
    assert counts["OK"] / sum(counts.values()) > 0.8
    # EDGE re-search (measured: 1307 border-peak nodes, 1035 re-matched, most in Icy Bay
    # water and later filtered; 383 more valid nodes, at the fast termini).
    edges = res.report["tracking"]["edge_research"]
    assert edges["enabled"] and edges["radius_px"] == 8
    assert 0 < edges["recovered"] <= edges["candidates"]
