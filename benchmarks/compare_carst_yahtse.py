"""glacierkit's Yahtse velocity field against CARST's ampcor offset grids for the same pair.

Data (``../shared/data/carst_yahtse_landsat8_pair``): the Landsat-8 pan pair 2016-07-18 →
2016-08-03 and CARST's ``2016200_2016216_r32x32_s32x32_{east,north}xyz.tif`` (32 px chips,
search ±32 px, step 8 px = 120 m nodes, SNR cutoff 0, nodata −32768).

Protocol:

1. **Ours**: the demo's call (``glacierkit velocity REF SEC --stable yahtse_stable_rock.shp
   --dem yahtse_srtm_dem.tif``, chip 32 / search 32 / step 8 px): filtered, stable-ground
   corrected ``vx``, ``vy`` (m/yr), NaN where the status is not OK. ``--run-dir`` reuses a run.
2. **Theirs**: :func:`glacierkit.velocity.compare.read_carst_offsets`: metres of displacement
   over the pair → m/yr with the pair's dt, east sign flipped, node centres moved one node
   (120 m) south as CARST's ``getxyzs.py`` implies (``--registration file`` keeps the file's).
   How the units were established is printed (robust slopes against our displacement for
   every candidate unit).
3. **Common grid**: ours is *sampled at their node centres* (bilinear; their centres lie midway
   between four of ours, so this is the mean of those four nodes, all of which must be valid).
4. **Subsets**: (a) all nodes valid in both; (b) both plausible: ours OK and CARST within its
   own ``VEL_MAX`` (28 m/day, from CARST's parameter file) and not a local outlier
   (vector differs from the median of its 3 × 3 CARST neighbours by more than
   ``max(TOL · |median|, 1 px over dt)``, TOL = 0.3 from the parameter file; our analogue,
   not CARST's MATLAB cleaner); (c) (b) split into stable rock (inside the rock polygons) and
   off-rock land (outside them and SRTM ≥ 10 m: a glacier proxy, the ice outline is missing).
5. **Frames**: CARST removed an affine fit over *all* nodes, glacier included, so its rock is
   not at zero. "as delivered" compares the values as they are; "rock-referenced" first
   subtracts a robust plane in x, y fitted to CARST's own vx, vy on the (b) rock nodes (the
   same stable-ground step glacierkit applies; it never looks at our field).
6. **Numbers**: Pearson and Spearman correlation of speed, vx, vy; median and NMAD of
   ours − theirs (m/yr).

Usage::

    python benchmarks/compare_carst_yahtse.py
    python benchmarks/compare_carst_yahtse.py --run-dir demo_out/velocity_yahtse --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "carst_yahtse_landsat8_pair"
REFERENCE = "LC80630182016200LGN00_B8_yahtse.TIF"
SECONDARY = "LC80630182016216LGN00_B8_yahtse.TIF"
STABLE = "yahtse_stable_rock.shp"
DEM = "yahtse_srtm_dem.tif"
EAST = "2016200_2016216_r32x32_s32x32_eastxyz.tif"
NORTH = "2016200_2016216_r32x32_s32x32_northxyz.tif"
PARAMS = "CARST_original_params.txt"
PIXEL_M = 15.0
LAND_MIN_ELEVATION_M = 10.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path,
                   default=Path(os.environ.get("GLACIERKIT_DATA", DATA.parent)) / DATA.name,
                   help="folder of the Yahtse pair and the CARST grids")
    p.add_argument("--run-dir", type=Path,
                   help="existing glacierkit output folder of this pair (else run it now)")
    p.add_argument("--registration", choices=("code", "file"), default="code",
                   help="CARST node positions: corrected as getxyzs.py implies, or as in the file")
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    return p.parse_args(argv)


def carst_params(path: Path) -> dict[str, str]:
    """``KEY = VALUE`` lines of CARST's parameter file."""
    out = {}
    for line in path.read_text().splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def run_ours(data: Path, out: Path) -> Path:
    """The demo's velocity call (see glacierkit.demo VELOCITY_STEPS)."""
    from glacierkit.velocity.pipeline import TrackingParams, run_velocity

    run_velocity(data / REFERENCE, data / SECONDARY, out,
                 params=TrackingParams(chip_size_px=32, search_px=32, step_px=8),
                 stable=data / STABLE, dem=data / DEM, overwrite=True)
    return out


def points_in_polygons(x: np.ndarray, y: np.ndarray, path: Path, crs) -> np.ndarray:
    import geopandas as gpd
    import shapely

    poly = gpd.read_file(path).to_crs(crs).union_all()
    shapely.prepare(poly)
    return shapely.contains_xy(poly, x.ravel(), y.ravel()).reshape(x.shape)


def sample_raster(path: Path, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear sample of a (fine) raster's first band at map points."""
    from scipy.ndimage import map_coordinates

    from glacierkit.io import open_raster

    r = open_raster(path, bands=[1])
    rows, cols = r.grid.rowcol(x, y)
    return map_coordinates(r.data[0].astype(np.float64), [rows - 0.5, cols - 0.5], order=1,
                           mode="nearest")


def units_check(theirs_e_m: np.ndarray, theirs_n_m: np.ndarray, ours_e_m: np.ndarray,
                ours_n_m: np.ndarray, sel: np.ndarray, dt_days: float) -> dict:
    """Robust slopes of CARST's raw values on our displacement (m), and per candidate unit."""
    from glacierkit.velocity.compare import robust_slope

    slope_e = robust_slope(ours_e_m[sel], theirs_e_m[sel])
    slope_n = robust_slope(ours_n_m[sel], theirs_n_m[sel])
    # If the file held unit U, our displacement in metres × factor[U] would equal the values.
    factors = {"m over the pair": 1.0, "px over the pair": 1.0 / PIXEL_M,
               "m/day": 1.0 / dt_days, "m/yr": 365.25 / dt_days}
    return {"slope_east_vs_our_east_m": slope_e, "slope_north_vs_our_north_m": slope_n,
            "n": int(sel.sum()),
            "expected_slope_by_unit": factors,
            "best_unit": min(factors, key=lambda k: abs(np.log(abs(slope_n) / factors[k]))
                             + abs(np.log(abs(slope_e) / factors[k])))}


def rock_reference(field_vx, field_vy, x, y, rock_mask):
    """Subtract a robust plane in x, y fitted to a field's own values on rock nodes."""
    from glacierkit.velocity.corrections import Plane

    plane = Plane(min_stable=50)
    plane.fit(field_vx, field_vy, rock_mask, x=x, y=y, units="m/yr", xy_units="m")
    vx, vy = plane.apply(field_vx, field_vy, x=x, y=y)
    return vx, vy, plane.report()


def paired_fields(data: Path, run_dir: Path, registration: str = "code") -> dict:
    """Both fields at CARST's nodes (m/yr) and the masks of the protocol, as arrays."""
    from glacierkit.io import open_raster
    from glacierkit.velocity.compare import local_outliers, read_carst_offsets, sample_nodes

    report = json.loads((run_dir / "report.json").read_text())
    dt = float(report["time"]["dt_days"])
    vel = open_raster(run_dir / "velocity.tif")
    disp = open_raster(run_dir / "displacement.tif")
    status = open_raster(run_dir / "quality.tif").band("status")
    grid = vel.grid
    ok = status == 0
    vx_o = np.where(ok, vel.band("vx"), np.nan).astype(np.float64)
    vy_o = np.where(ok, vel.band("vy"), np.nan).astype(np.float64)
    params = carst_params(data / PARAMS)
    vel_max = float(params.get("VEL_MAX", "nan")) * 365.25
    tol = float(params.get("TOL", "0.3"))
    carst = read_carst_offsets(data / EAST, data / NORTH, dt_days=dt, registration=registration)
    x, y = carst.x, carst.y
    out = {"report": report, "dt": dt, "params": params, "vel_max": vel_max, "carst": carst,
           "x": x, "y": y, "ours_vx": sample_nodes(vx_o, grid, x, y),
           "ours_vy": sample_nodes(vy_o, grid, x, y),
           "ours_e_m": sample_nodes(np.where(ok, disp.band("dx"), np.nan), grid, x, y),
           "ours_n_m": sample_nodes(np.where(ok, disp.band("dy"), np.nan), grid, x, y),
           "rock": points_in_polygons(x, y, data / STABLE, grid.crs),
           "land": sample_raster(data / DEM, x, y) >= LAND_MIN_ELEVATION_M,
           "outlier": local_outliers(carst.vx, carst.vy, tol=tol,
                                     floor=PIXEL_M * 365.25 / dt)}
    out["common"] = np.isfinite(carst.vx) & np.isfinite(out["ours_vx"])
    out["within_vmax"] = carst.speed <= vel_max
    out["plausible"] = out["common"] & out["within_vmax"] & ~out["outlier"]
    rvx, rvy, plane = rock_reference(carst.vx, carst.vy, x, y, out["plausible"] & out["rock"])
    out.update(rock_vx=rvx, rock_vy=rvy, plane=plane)
    return out


def run(args: argparse.Namespace) -> dict:
    from glacierkit.velocity.compare import agreement

    data = args.data
    if args.run_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="gk_carst_")
        run_dir = run_ours(data, Path(tmp.name) / "velocity_yahtse")
    else:
        tmp, run_dir = None, args.run_dir
    f = paired_fields(data, run_dir, args.registration)
    carst, dt = f["carst"], f["dt"]
    ours = (f["ours_vx"], f["ours_vy"])
    # Units: CARST raw values (metres, east negated) vs our displacement (m) at the same nodes.
    raw_e = -carst.vx * dt / 365.25  # back to the file's values (m)
    raw_n = carst.vy * dt / 365.25
    fast = (f["common"] & (np.hypot(f["ours_e_m"], f["ours_n_m"]) > 2 * PIXEL_M)
            & f["within_vmax"])
    units = units_check(raw_e, raw_n, f["ours_e_m"], f["ours_n_m"], fast, dt)
    common, plausible, rock = f["common"], f["plausible"], f["rock"]
    subsets = {"(a) all common valid": common,
               "(b) both plausible": plausible,
               "(c) (b) on stable rock": plausible & rock,
               "(c) (b) off-rock land (glacier proxy)": plausible & ~rock & f["land"]}
    frames = {"as delivered": (carst.vx, carst.vy), "rock-referenced": (f["rock_vx"], f["rock_vy"])}
    results = {frame: {name: agreement(ours, theirs, mask) for name, mask in subsets.items()}
               for frame, theirs in frames.items()}

    # Where do they disagree? Large differences (rock-referenced frame, > 3 NMAD of (b)).
    d = np.hypot(ours[0] - f["rock_vx"], ours[1] - f["rock_vy"])
    b = results["rock-referenced"]["(b) both plausible"]
    threshold = 3 * max(b["vx"]["nmad_diff"], b["vy"]["nmad_diff"]) * np.sqrt(2)
    big = common & (d > threshold)
    outlier, within = f["outlier"], f["within_vmax"]
    carst_valid = np.isfinite(carst.vx)
    explain = {
        "threshold_m_per_yr": float(threshold),
        "n_large": int(big.sum()), "n_common": int(common.sum()),
        "large_and_carst_local_outlier": int((big & outlier).sum()),
        "large_and_carst_over_vel_max": int((big & ~within).sum()),
        "large_and_carst_plausible": int((big & within & ~outlier).sum()),
        "carst_local_outliers_among_common": int((common & outlier).sum()),
        "carst_over_vel_max_among_common": int((common & ~within).sum()),
        "carst_valid_ours_invalid": int((carst_valid & ~np.isfinite(ours[0])).sum()),
        "median_abs_diff_outliers_m_per_yr": float(np.median(d[common & outlier]))
        if (common & outlier).any() else float("nan"),
        "median_abs_diff_plausible_m_per_yr": float(np.median(d[plausible])),
    }
    other = "file" if args.registration == "code" else "code"
    g = paired_fields(data, run_dir, other)
    alt_res = agreement((g["ours_vx"], g["ours_vy"]), (g["rock_vx"], g["rock_vy"]),
                        g["plausible"])
    if tmp is not None:
        tmp.cleanup()
    return {
        "data": str(data), "run_dir": str(run_dir) if args.run_dir else "(temporary)",
        "dt_days": dt, "units": "m/yr", "registration": args.registration,
        "sampling": "ours bilinear at CARST node centres (= mean of the 4 surrounding 120 m "
                    "nodes, all valid)",
        "carst_conventions": carst.notes,
        "carst_params": {k: f["params"].get(k) for k in ("SNR_CUTOFF", "VEL_MAX", "TOL",
                                                         "NUMDIF", "REF_X", "SEARCH_X", "STEP",
                                                         "PREFILTER")},
        "vel_max_m_per_yr": f["vel_max"], "units_check": units,
        "carst_nodes": int(carst.vx.size), "carst_valid": int(carst_valid.sum()),
        "rock_plane_fitted_to_carst": f["plane"],
        "results": results, "disagreements": explain,
        f"speed_(b)_rock_referenced_with_registration_{other}": {
            "n": alt_res["n"], "pearson": alt_res["speed"]["pearson"],
            "spearman": alt_res["speed"]["spearman"],
            "nmad_diff": alt_res["speed"]["nmad_diff"]},
        "our_status_counts": f["report"].get("status_counts"),
        "our_edge_research": f["report"].get("tracking", {}).get("edge_research"),
    }


def print_report(rep: dict) -> None:
    u = rep["units_check"]
    print(f"CARST vs glacierkit, Yahtse 2016-07-18 → 08-03 (dt {rep['dt_days']:.4f} d); "
          f"CARST nodes {rep['carst_valid']} valid of {rep['carst_nodes']}; "
          f"registration {rep['registration']}")
    print(f"sampling: {rep['sampling']}")
    print(f"units check on {u['n']} fast nodes (ours > 2 px): slope of CARST values on our "
          f"displacement (m): east {u['slope_east_vs_our_east_m']:+.3f}, north "
          f"{u['slope_north_vs_our_north_m']:+.3f}; expected |slope| if the file held "
          + ", ".join(f"{k}: {v:.3g}" for k, v in u["expected_slope_by_unit"].items())
          + f" → {u['best_unit']} (east sign flipped)")
    hdr = (f"{'frame / subset':<46}{'n':>6} {'speed P/S':>11} {'vx P/S':>11} {'vy P/S':>11}"
           f" {'med Δvx':>8}{'med Δvy':>8}{'med Δv':>8} {'NMAD vx':>8}{'NMAD vy':>8}"
           f"{'NMAD v':>8}")
    print("\nPearson / Spearman; Δ = glacierkit − CARST, m/yr")
    print(hdr)
    for frame, subs in rep["results"].items():
        for name, r in subs.items():
            cells = " ".join(f"{r[c]['pearson']:>5.2f}/{r[c]['spearman']:<5.2f}"
                             for c in ("speed", "vx", "vy"))
            meds = "".join(f"{r[c]['median_diff']:>8.0f}" for c in ("vx", "vy", "speed"))
            nm = "".join(f"{r[c]['nmad_diff']:>8.0f}" for c in ("vx", "vy", "speed"))
            print(f"{(frame + ' ' + name)[:46]:<46}{r['n']:>6} {cells} {meds} {nm}")
    e = rep["disagreements"]
    print(f"\nlarge disagreements (|Δv| vector > {e['threshold_m_per_yr']:.0f} m/yr, rock-"
          f"referenced): {e['n_large']} of {e['n_common']} common nodes; of these CARST local "
          f"outliers {e['large_and_carst_local_outlier']}, over VEL_MAX "
          f"{e['large_and_carst_over_vel_max']}, CARST plausible "
          f"{e['large_and_carst_plausible']}")
    print(f"CARST local outliers among common nodes: {e['carst_local_outliers_among_common']} "
          f"(median |Δv| {e['median_abs_diff_outliers_m_per_yr']:.0f} m/yr vs "
          f"{e['median_abs_diff_plausible_m_per_yr']:.0f} m/yr on plausible nodes); CARST "
          f"valid where ours is not: {e['carst_valid_ours_invalid']}")
    alt = next(k for k in rep if k.startswith("speed_(b)_rock_referenced_with_registration"))
    a = rep[alt]
    print(f"{alt}: n {a['n']}, Pearson {a['pearson']:.3f}, Spearman {a['spearman']:.3f}, "
          f"NMAD Δv {a['nmad_diff']:.0f} m/yr")
    print(f"CARST parameters: {rep['carst_params']}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (args.data / EAST).is_file():
        print(f"data not found: {args.data / EAST} (set --data or GLACIERKIT_DATA)",
              file=sys.stderr)
        return 2
    rep = run(args)
    print_report(rep)
    if args.json:
        args.json.write_text(json.dumps(rep, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
