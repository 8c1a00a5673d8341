"""Documentation figures of the velocity pipeline on the real Yahtse pair (PNG, ≤ 200 KB each).

Writes into ``docs/figures/`` (``--out``):

* ``velocity_yahtse_speed.png`` — speed over the 2016-07-18 pan image with flow arrows (the
  pipeline's quicklook, smaller);
* ``velocity_yahtse_stable_residuals.png`` — histograms of the east / north velocity on the
  stable-rock nodes before (filtered, uncorrected) and after the stable-ground corrections;
* ``velocity_yahtse_carst_scatter.png`` — CARST's speed vs glacierkit's at CARST's nodes on
  the "both plausible" nodes of ``benchmarks/compare_carst_yahtse.py`` (CARST rock-referenced).

The pipeline runs as in the demo (``glacierkit velocity`` with the rock polygons and the SRTM
DEM, chip 32 / search 32 / step 8 px); the "before" histogram comes from the same call without
``--stable`` / ``--dem`` (same tracking and filtering, no corrections).

Usage::

    python benchmarks/make_velocity_figures.py [--out docs/figures] [--json numbers.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import compare_carst_yahtse as carst  # noqa: E402 - benchmarks/ is not a package

MAX_BYTES = 200_000


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path,
                   default=Path(os.environ.get("GLACIERKIT_DATA", carst.DATA.parent))
                   / carst.DATA.name, help="folder of the Yahtse pair")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "figures",
                   help="output folder of the PNGs")
    p.add_argument("--json", type=Path, help="also write the numbers shown to this file")
    return p.parse_args(argv)


def run_pair(data: Path, out: Path, *, corrected: bool):
    from glacierkit.velocity.pipeline import TrackingParams, run_velocity

    extra = {"stable": data / carst.STABLE, "dem": data / carst.DEM} if corrected else {}
    return run_velocity(data / carst.REFERENCE, data / carst.SECONDARY, out,
                        params=TrackingParams(chip_size_px=32, search_px=32, step_px=8),
                        overwrite=True, quicklook=False, **extra)


def speed_map(data: Path, run_dir: Path, path: Path) -> None:
    from glacierkit.io import open_raster
    from glacierkit.velocity.outputs import write_quicklook

    vel = open_raster(run_dir / "velocity.tif")
    ref = open_raster(data / carst.REFERENCE)
    write_quicklook(path, ref, vel.grid, vel.band("vx"), vel.band("vy"), vel.band("v"),
                    units="m/yr", title="Yahtse Glacier, Landsat-8 2016-07-18 → 08-03 (16 d)",
                    overwrite=True, arrows=24, width_in=6.5, dpi=72)


def stable_values(data: Path, run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """vx, vy (m/yr) of a run on the nodes inside the rock polygons."""
    from glacierkit.io import open_raster, rasterize, read_vector

    vel = open_raster(run_dir / "velocity.tif")
    rock = rasterize(read_vector(data / carst.STABLE), vel.grid).astype(bool)
    vx, vy = vel.band("vx"), vel.band("vy")
    ok = rock & np.isfinite(vx) & np.isfinite(vy)
    return vx[ok].astype(np.float64), vy[ok].astype(np.float64)


def nmad(x: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def residual_histograms(before, after, path: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from glacierkit.viz import save_png

    fig, axes = plt.subplots(1, 2, figsize=(7.0, 2.8), dpi=90, sharey=True)
    bins = np.linspace(-150, 150, 61)
    stats = {}
    for ax, comp, b, a in zip(axes, ("vx (east)", "vy (north)"), before, after, strict=True):
        key = comp.split()[0]
        stats[key] = {"before": {"median": float(np.median(b)), "nmad": nmad(b), "n": b.size},
                      "after": {"median": float(np.median(a)), "nmad": nmad(a), "n": a.size}}
        ax.hist(b, bins=bins, color="0.6", label=f"before: median {np.median(b):+.0f}, "
                f"NMAD {nmad(b):.0f}")
        ax.hist(a, bins=bins, histtype="step", color="C3", lw=1.5,
                label=f"after: median {np.median(a):+.0f}, NMAD {nmad(a):.0f}")
        ax.axvline(0, color="k", lw=0.5)
        ax.set_xlabel(f"{comp} on stable rock (m/yr)")
        ax.legend(fontsize=7, loc="upper left", frameon=False)
    axes[0].set_ylabel(f"nodes ({before[0].size} rock nodes)")
    fig.suptitle("Stable-ground velocity before / after corrections (shift + plane + "
                 "elevation)", fontsize=9)
    save_png(fig, path)
    plt.close(fig)
    return stats


def carst_scatter(f: dict, path: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    from glacierkit.velocity.compare import agreement
    from glacierkit.viz import save_png

    sel = f["plausible"]
    ours = np.hypot(f["ours_vx"], f["ours_vy"])[sel]
    theirs = np.hypot(f["rock_vx"], f["rock_vy"])[sel]
    a = agreement((f["ours_vx"], f["ours_vy"]), (f["rock_vx"], f["rock_vy"]), sel)
    fig, ax = plt.subplots(figsize=(4.2, 3.8), dpi=90)
    top = float(np.percentile(np.concatenate([ours, theirs]), 99.5))
    h = ax.hist2d(theirs, ours, bins=120, range=[[0, top], [0, top]], cmap="viridis",
                  norm=LogNorm(), rasterized=True)
    fig.colorbar(h[3], ax=ax, label="nodes")
    ax.plot([0, top], [0, top], color="w", lw=0.8, ls="--")
    ax.set_xlabel("CARST speed (m/yr, rock-referenced)")
    ax.set_ylabel("glacierkit speed (m/yr)")
    ax.set_title(f"{a['n']} nodes: Pearson {a['speed']['pearson']:.2f}, Spearman "
                 f"{a['speed']['spearman']:.2f}\nmedian Δ {a['speed']['median_diff']:+.0f}, "
                 f"NMAD Δ {a['speed']['nmad_diff']:.0f} m/yr", fontsize=8)
    save_png(fig, path)
    plt.close(fig)
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (args.data / carst.REFERENCE).is_file():
        print(f"data not found: {args.data} (set --data or GLACIERKIT_DATA)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    numbers: dict = {}
    with tempfile.TemporaryDirectory(prefix="gk_fig_") as tmp:
        after_dir, before_dir = Path(tmp) / "after", Path(tmp) / "before"
        res = run_pair(args.data, after_dir, corrected=True)
        run_pair(args.data, before_dir, corrected=False)
        speed_map(args.data, after_dir, args.out / "velocity_yahtse_speed.png")
        numbers["stable_m_per_yr"] = residual_histograms(
            stable_values(args.data, before_dir), stable_values(args.data, after_dir),
            args.out / "velocity_yahtse_stable_residuals.png")
        f = carst.paired_fields(args.data, after_dir)
        numbers["carst_speed_b_rock_referenced"] = carst_scatter(
            f, args.out / "velocity_yahtse_carst_scatter.png")
        numbers["status_counts"] = res.report["status_counts"]
        numbers["edge_research"] = res.report["tracking"]["edge_research"]
    for name in ("velocity_yahtse_speed.png", "velocity_yahtse_stable_residuals.png",
                 "velocity_yahtse_carst_scatter.png"):
        size = (args.out / name).stat().st_size
        numbers.setdefault("bytes", {})[name] = size
        flag = "" if size <= MAX_BYTES else f"  (over the {MAX_BYTES // 1000} KB budget)"
        print(f"wrote {args.out / name}: {size / 1000:.0f} KB{flag}")
    s = numbers["stable_m_per_yr"]
    print("stable rock (m/yr) median / NMAD before → after: " + "; ".join(
        f"{k} {s[k]['before']['median']:+.1f} / {s[k]['before']['nmad']:.1f} → "
        f"{s[k]['after']['median']:+.1f} / {s[k]['after']['nmad']:.1f} ({s[k]['after']['n']} "
        f"nodes)" for k in ("vx", "vy")))
    c = numbers["carst_speed_b_rock_referenced"]
    print(f"CARST scatter: {c['n']} nodes, speed Pearson {c['speed']['pearson']:.3f}, Spearman "
          f"{c['speed']['spearman']:.3f}, median Δ {c['speed']['median_diff']:+.1f}, NMAD Δ "
          f"{c['speed']['nmad_diff']:.1f} m/yr")
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
