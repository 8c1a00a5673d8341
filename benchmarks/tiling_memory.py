"""Memory and throughput of the tiled scene runner against a plain windowed rasterio loop.

Creates a synthetic float32 scene on disk (default 20000 × 20000, uncompressed tiled GeoTIFF,
EPSG:32607), then, in the same run and each in a fresh subprocess so that peak memory is
measured honestly (``ru_maxrss`` of the child, cross-checked by sampling its RSS with psutil):

* ``runner``: :func:`glacierkit.tiling.run_tiled` with an identity tile function (read →
  fn → cosine-weighted accumulation → atomic COG: temporary GeoTIFF, COG conversion with
  overviews, ``os.replace``), exactly as shipped;
* ``baseline``: the same tiles (same :class:`~glacierkit.tiling.TileGrid`) read with
  ``rasterio`` and their core windows written with ``rasterio`` into a tiled GeoTIFF with the
  same compression as the runner's COG (DEFLATE, floating-point predictor, same level,
  ``NUM_THREADS=ALL_CPUS``): no blending, no overviews, no COG step.

The ratio is ``baseline seconds / runner seconds`` (the runner's throughput relative to the
plain loop); the target is >= 0.5 with a peak RSS under 1.5 GB. The COG conversion is part of
the product and is counted in the runner's time; its share is reported separately. Each
variant runs ``--repeat`` times, interleaved, after ``sync``, and the fastest run counts (the
disk's write-back makes single timings noisy).

The writer converts with ``COG_TMP_COMPRESSION=NONE`` (an uncompressed temporary overview
file): measured here, it took the COG step of the 20000² scene from 29.8 s to 21.3 s and the
ratio from 0.55 to 0.69. ``--cog-level N`` sets the
DEFLATE level of both the runner's COG and the baseline (patched into the child processes; the
writer has no such option yet).

Usage::

    python benchmarks/tiling_memory.py                  # full size (needs ~6 GB of disk)
    python benchmarks/tiling_memory.py --size 4000 --json results.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _rss import RssSampler

RSS_LIMIT_MB = 1500.0
RATIO_TARGET = 0.5


# ---------------------------------------------------------------------------- input scene
def make_scene(path: Path, size: int, *, block: int = 512) -> float:
    """Write a ``size × size`` float32 tiled GeoTIFF of smooth terrain plus noise; seconds."""
    import rasterio
    from affine import Affine

    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 1,
               "dtype": "float32", "crs": "EPSG:32607", "nodata": float("nan"),
               "transform": Affine(15.0, 0, 400000.0, 0, -15.0, 6800000.0), "tiled": True,
               "blockxsize": block, "blockysize": block, "compress": "none",
               "BIGTIFF": "IF_SAFER"}
    x = np.arange(size, dtype=np.float32)
    wave_x = np.sin(x / 900.0) * 300.0
    with rasterio.open(path, "w", **profile) as ds:
        for r0 in range(0, size, block):
            h = min(block, size - r0)
            y = np.arange(r0, r0 + h, dtype=np.float32)[:, None]
            strip = 1500.0 + wave_x[None, :] * np.cos(y / 1300.0) + 0.002 * (x[None, :] - y)
            strip += rng.normal(0.0, 0.5, size=(h, size)).astype(np.float32)
            ds.write(np.round(strip, 2).astype(np.float32)[None], window=((r0, r0 + h),
                                                                           (0, size)))
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------- variants
def _set_cog_level(level: int) -> None:
    """Benchmark-only: add ``LEVEL=level`` to the writer's COG conversion options."""
    import rasterio.shutil

    copy = rasterio.shutil.copy

    def copy_with_level(src, dst, driver=None, **opts):  # type: ignore[no-untyped-def]
        if driver == "COG":
            opts["LEVEL"] = level
        return copy(src, dst, driver=driver, **opts)

    rasterio.shutil.copy = copy_with_level  # the writer looks it up at call time


def run_runner(src: Path, out: Path, tile: int, overlap: int, executor: str,
               level: int | None) -> dict:
    """Identity pass with the runner; times the COG conversion separately."""
    import glacierkit.io.writer as writer_mod
    from glacierkit.tiling import run_tiled

    if level is not None:
        _set_cog_level(level)
    publish = writer_mod.RasterWriter._publish
    spent = {"cog_seconds": 0.0}

    def timed_publish(self):  # type: ignore[no-untyped-def]  # instrumentation only
        t = time.perf_counter()
        try:
            return publish(self)
        finally:
            spent["cog_seconds"] += time.perf_counter() - t

    writer_mod.RasterWriter._publish = timed_publish  # type: ignore[method-assign]
    t0 = time.perf_counter()
    res = run_tiled(src, out, lambda arrays, t: arrays[0], tile_size=tile, overlap=overlap,
                    blend="cosine", executor=executor, progress=False, overwrite=True)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "tiles": res.tiles, "cog_seconds": spent["cog_seconds"],
            "tile_loop_seconds": seconds - spent["cog_seconds"]}


def run_baseline(src: Path, out: Path, tile: int, overlap: int, level: int | None) -> dict:
    """Plain rasterio loop over the same tiles: read the tile, write its core window."""
    import rasterio

    from glacierkit.tiling import TileGrid

    t0 = time.perf_counter()
    with rasterio.open(src) as s:
        tiles = TileGrid(s.shape, tile_size=tile, overlap=overlap)
        profile = s.profile | {"compress": "deflate", "predictor": 3, "tiled": True,
                               "blockxsize": 512, "blockysize": 512,
                               "NUM_THREADS": "ALL_CPUS", "BIGTIFF": "IF_SAFER"}
        if level is not None:
            profile["ZLEVEL"] = level
        with rasterio.open(out, "w", **profile) as d:
            for t in tiles:
                a = s.read(window=t.read_window)
                rs, cs = t.core_slices
                d.write(a[:, rs, cs], window=t.core)
    return {"seconds": time.perf_counter() - t0, "tiles": len(tiles)}


def child(args: argparse.Namespace) -> None:
    """Run one variant in this (fresh) process and print its measurements as JSON."""
    with RssSampler() as sampler:
        if args.variant == "runner":
            res = run_runner(args.src, args.out, args.tile, args.overlap, args.executor,
                             args.cog_level)
        else:
            res = run_baseline(args.src, args.out, args.tile, args.overlap, args.cog_level)
    res["ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    res["sampled_peak_rss_mb"] = sampler.peak / 2**20
    res["output_mb"] = args.out.stat().st_size / 2**20
    print(json.dumps(res))


def spawn(variant: str, src: Path, out: Path, args: argparse.Namespace,
          env: dict[str, str] | None = None) -> dict:
    """Run one variant in a fresh Python process (after ``sync``) and return its numbers."""
    cmd = [sys.executable, __file__, "--child", variant, "--src", str(src), "--out", str(out),
           "--tile", str(args.tile), "--overlap", str(args.overlap),
           "--executor", args.executor]
    if args.cog_level is not None:
        cmd += ["--cog-level", str(args.cog_level)]
    os.sync()  # do not bill one variant for the write-back of the previous one's output
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                          env=os.environ | (env or {}))
    out.unlink(missing_ok=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"{variant} failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _best(runs: list[dict]) -> dict:
    best = dict(min(runs, key=lambda r: r["seconds"]))
    best["all_seconds"] = [round(r["seconds"], 2) for r in runs]
    best["ru_maxrss_mb"] = max(r["ru_maxrss_mb"] for r in runs)
    best["sampled_peak_rss_mb"] = max(r["sampled_peak_rss_mb"] for r in runs)
    return best


# ---------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=20000, help="scene side in pixels")
    ap.add_argument("--tile", type=int, default=512, help="tile size in pixels")
    ap.add_argument("--overlap", type=int, default=64, help="tile overlap in pixels")
    ap.add_argument("--executor", choices=["serial", "threads"], default="serial",
                    help="runner executor (default: serial, run_tiled's default)")
    ap.add_argument("--repeat", type=int, default=2, help="runs per variant (fastest counts)")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="folder for the scene and outputs (default: a temporary folder)")
    ap.add_argument("--json", type=Path, default=None, help="write results here")
    ap.add_argument("--keep", action="store_true", help="keep the scene in --workdir")
    ap.add_argument("--cog-level", type=int, default=None,
                    help="DEFLATE level for both the runner's COG and the baseline")
    ap.add_argument("--child", choices=["runner", "baseline"], dest="variant",
                    help=argparse.SUPPRESS)
    ap.add_argument("--src", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.variant:
        child(args)
        return 0

    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="glacierkit-bench-")
        work = Path(tmp.name)
    else:
        work = args.workdir
        work.mkdir(parents=True, exist_ok=True)
    src = work / f"synthetic_{args.size}.tif"
    try:
        make_seconds = 0.0
        if not src.exists():
            print(f"writing synthetic {args.size} × {args.size} float32 scene to {src} ...",
                  flush=True)
            make_seconds = make_scene(src, args.size)
        variants: dict[str, tuple[str, dict[str, str] | None]] = {
            "baseline": ("baseline", None), "runner": ("runner", None)}
        runs: dict[str, list[dict]] = {name: [] for name in variants}
        for _ in range(args.repeat):
            for name, (kind, env) in variants.items():
                print(f"  {name} ...", end="", flush=True)
                runs[name].append(spawn(kind, src, work / f"{kind}_out.tif", args, env))
                print(f" {runs[name][-1]['seconds']:.1f} s", flush=True)
        best = {name: _best(r) for name, r in runs.items()}
        base, run = best["baseline"], best["runner"]
        results: dict = {
            "size_px": args.size, "tile_px": args.tile, "overlap_px": args.overlap,
            "executor": args.executor, "cog_level": args.cog_level, "cpus": os.cpu_count(),
            "input_mb": src.stat().st_size / 2**20, "make_seconds": make_seconds,
            "variants": best,
            "throughput_ratio": base["seconds"] / run["seconds"],
            "runner_peak_rss_mb": max(run["ru_maxrss_mb"], run["sampled_peak_rss_mb"]),
        }
        results["rss_ok"] = results["runner_peak_rss_mb"] < RSS_LIMIT_MB
        results["ratio_ok"] = results["throughput_ratio"] >= RATIO_TARGET
        _table(results)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
            print(f"results written to {args.json}")
    finally:
        if tmp is not None:
            tmp.cleanup()
        elif not args.keep:
            src.unlink(missing_ok=True)
    return 0 if results["rss_ok"] and results["ratio_ok"] else 1


def _table(r: dict) -> None:
    v = r["variants"]
    level = r["cog_level"] if r["cog_level"] is not None else "default (6)"
    print(f"\nscene {r['size_px']} × {r['size_px']} float32 ({r['input_mb']:.0f} MB), "
          f"{v['runner']['tiles']} tiles of {r['tile_px']} px, overlap {r['overlap_px']} px, "
          f"{r['cpus']} CPUs, runner executor={r['executor']}, DEFLATE level {level}")
    print(f"{'variant':<10} {'seconds':>8} {'Mpx/s':>7} {'peak RSS MB':>12} "
          f"{'sampled MB':>11} {'output MB':>10}  {'loop s':>7} {'COG s':>6}  runs")
    mpx = r["size_px"] ** 2 / 1e6
    for name, x in v.items():
        split = (f"{x['tile_loop_seconds']:>7.1f} {x['cog_seconds']:>6.1f}"
                 if "cog_seconds" in x else f"{'':>7} {'':>6}")
        print(f"{name:<10} {x['seconds']:>8.1f} {mpx / x['seconds']:>7.2f} "
              f"{x['ru_maxrss_mb']:>12.0f} {x['sampled_peak_rss_mb']:>11.0f} "
              f"{x['output_mb']:>10.0f}  {split}  {x['all_seconds']}")
    print(f"throughput ratio runner/baseline = {r['throughput_ratio']:.2f} "
          f"(target >= {RATIO_TARGET}: {'OK' if r['ratio_ok'] else 'MISSED'}); "
          f"runner peak RSS {r['runner_peak_rss_mb']:.0f} MB "
          f"(limit {RSS_LIMIT_MB:.0f}: {'OK' if r['rss_ok'] else 'MISSED'})")


if __name__ == "__main__":
    sys.exit(main())
