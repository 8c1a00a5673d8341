"""Tiled inference over a SAR time series: speed (ONNX Runtime vs torch eager) and memory.

Writes synthetic Sentinel-1-like stacks (one float32 band per date, γ⁰ VV in linear power,
descending pass, EPSG:32645 at 10 m; smooth "terrain" with a glacier-like region, a seasonal
wet-snow drop, light speckle, values quantised to 1/4096 so that the tiled DEFLATE GeoTIFFs
compress to about a third) with a ``dates.csv`` table, and three series models of size
``tiny`` with **random weights** (seeded; untrained, which is fine for speed and memory, not
for the maps): ``utae`` (date-aware, any number of dates), ``icemapper3d`` and ``convlstm``
(exactly 15 dates). Each measurement runs in a fresh subprocess: the stack is opened with
:func:`glacierkit.series.open_series` (``scale="power"``, ``direction="descending"``) and
given to :func:`glacierkit.dl.predict.predict_scene` as ``{"s1": stack}`` (the dates are
streamed tile by tile), with the same tile size, overlap and thread count for every run.

1. **Speed**, ``--size`` × ``--size`` × 15 dates (default 4096²), per model, ONNX Runtime:
   total seconds, seconds inside the model (``PredictResult.model_seconds``), overhead
   ``(total − model) / model`` (target < 10 %) with the stages, and the throughput in
   Mpx·date/s (``size² × dates / total / 1e6``).
2. **ONNX Runtime vs torch eager** (CPU): the model time of both backends on the same stack
   and tiles, ``--compare-size`` × ``--compare-size`` (default 1024²: torch eager takes 5–10×
   longer per tile than ONNX Runtime here, so the full 4096² stack would take about an hour
   per backend and model on 2 cores; ``--compare-size 0`` compares on the speed stack).
   Ratio = torch model seconds / ONNX model seconds (target ≥ 1.3×).
3. **Memory**, ``--rss-size`` × ``--rss-size`` × 15 dates (default 10000²), ``utae``, ONNX:
   peak RSS of the child (``ru_maxrss`` and an RSS sampler, :mod:`_rss`), against ≤ 3 GB,
   with the child's RSS just before ``predict_scene`` (imports done, series opened) and the
   sizes of the known buffers (tile input ``T × C × tile²``, the model's activations as the
   memory model estimates them, the class map kept for the outlines, GDAL's cache limit).

   The memory run is repeated with ONNX Runtime's memory pattern switched off
   (``SessionOptions.enable_mem_pattern = False``, patched into that child only;
   ``--no-ort-variant`` skips it): the session, not the tiling, holds most of the memory.

``--profile`` runs the speed children under cProfile and prints where the time outside the
model goes.

Notes on the settings:

* ``--max-memory`` (default 64 GB) is passed to ``predict_scene``. Its memory model cannot
  infer the activation shapes of these series graphs (ONNX shape inference stops at a
  ``Reshape``), falls back to 6000 B per pixel and date, i.e. 23.6 GB for one 512² × 15
  tile, and with its default budget (half the available memory) refuses 512 px tiles on a
  24 GB machine. On the CPU it runs one tile per call either way, so the budget changes
  nothing else; the peak RSS measured is the real need. ``--max-memory ''`` uses the
  default budget.
* The torch backend's model check in ``predict_scene`` compares a series network's one
  input group with 0 groups and refuses it; the torch children patch that single
  comparison (recorded as ``workarounds`` in the JSON; nothing is patched once the check
  passes by itself).
* Model files are cached in ``--workdir`` under a hash of the network's source file and
  weight shapes; exporting takes about 2–3 minutes for the three models on 2 cores.

Usage::

    python benchmarks/series_inference.py --quick --workdir /tmp/gks  # 1024² stacks, minutes
    python benchmarks/series_inference.py --json out.json   # full sizes: 45 min on 2 cores
    python benchmarks/series_inference.py --models utae --skip-rss --skip-compare --profile
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from _rss import RssSampler

OVERHEAD_TARGET = 0.10
SPEEDUP_TARGET = 1.3
RSS_LIMIT_MB = 3072.0
MODELS = ("utae", "icemapper3d", "convlstm")
PIXEL_M = 10.0
QUANT = 4096.0  # power values are multiples of 1/QUANT: compressible low mantissa bits


# ---------------------------------------------------------------------------- setup
def stack_dates(n: int) -> list[date]:
    """``n`` dates 24 days apart from 5 January 2021 (a descending pass every other cycle)."""
    return [date(2021, 1, 5) + timedelta(days=24 * i) for i in range(n)]


def make_stack(folder: Path, size: int, n_dates: int, *, block: int = 512,
               seed: int = 0) -> dict:
    """Write ``n_dates`` one-band float32 power GeoTIFFs of ``size²`` px and ``dates.csv``.

    Returns the table's path, the seconds taken and the bytes on disk. An existing complete
    stack (``dates.csv`` written last) is reused.
    """
    import rasterio
    from affine import Affine

    csv = folder / "dates.csv"
    days = stack_dates(n_dates)
    names = [f"S1A_IW_{d:%Y%m%d}T001312_DVP_RTC10_VV.tif" for d in days]
    if csv.exists():
        return {"csv": str(csv), "seconds": 0.0, "reused": True,
                "disk_mb": sum((folder / n).stat().st_size for n in names) / 2**20}
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 1,
               "dtype": "float32", "crs": "EPSG:32645", "nodata": float("nan"),
               "transform": Affine(PIXEL_M, 0, 400000.0, 0, -PIXEL_M, 3200000.0),
               "tiled": True, "blockxsize": block, "blockysize": block,
               "compress": "deflate", "predictor": 3, "zlevel": 1,
               "NUM_THREADS": "ALL_CPUS", "BIGTIFF": "IF_SAFER"}
    doy = np.array([(d - date(d.year, 1, 1)).days for d in days], dtype=np.float32)
    # Wet snow from June to September: the glacier darkens by up to 10 dB.
    melt = np.clip(np.sin((doy - 150.0) / 120.0 * np.pi), 0.0, None).astype(np.float32)
    melt[(doy < 150) | (doy > 270)] = 0.0
    x = np.arange(size, dtype=np.float32)[None, :]
    files = [rasterio.open(folder / n, "w", **profile) for n in names]
    try:
        for r0 in range(0, size, block):
            h = min(block, size - r0)
            y = np.arange(r0, r0 + h, dtype=np.float32)[:, None]
            elev = 3500 + 900 * np.sin(x / 700) * np.cos(y / 900) + 0.05 * (x + y)
            ice = (elev > 4000).astype(np.float32)
            base = (-8.0 - 4.0 * ice + 1.5 * np.sin(x / 150) * np.cos(y / 230)).astype(
                np.float32)
            for i, ds in enumerate(files):
                db = base - (10.0 * melt[i]) * ice
                db += rng.standard_normal((h, size), dtype=np.float32) * np.float32(0.5)
                db *= np.float32(np.log(10.0) / 10.0)
                p = np.exp(db, out=db)  # linear power
                p *= np.float32(QUANT)
                np.rint(p, out=p)
                np.maximum(p, 1.0, out=p)
                p /= np.float32(QUANT)
                ds.write(p[None], window=((r0, r0 + h), (0, size)))
    finally:
        for ds in files:
            ds.close()
    csv.write_text("path,date,pass\n" + "".join(
        f"{n},{d:%Y-%m-%d}T00:13:12,descending\n" for n, d in zip(names, days, strict=True)))
    return {"csv": str(csv), "seconds": time.perf_counter() - t0, "reused": False,
            "disk_mb": sum((folder / n).stat().st_size for n in names) / 2**20}


def make_model(folder: Path, arch: str, n_dates: int, tile: int, overlap: int) -> dict:
    """Random-weight tiny series model → ONNX → ``{arch}.gkm``; returns the path and facts."""
    import torch

    from glacierkit.dl.bundle import bundle_from_model, save_bundle
    from glacierkit.dl.export import export_onnx
    from glacierkit.dl.models import build_model
    from glacierkit.dl.sources import NormStats, SourceGroup, SourceLayout
    from glacierkit.series.select import SeriesSelection

    torch.manual_seed(0)
    model = build_model(arch, group_channels=(1,), n_classes=2, size="tiny").eval()
    # A model file in --workdir is reused only for the same network code and weights' shapes.
    h = hashlib.sha256(Path(inspect.getfile(type(model))).read_bytes())
    h.update(repr([(k, tuple(v.shape)) for k, v in model.state_dict().items()]).encode())
    path = folder / f"{arch}-{h.hexdigest()[:12]}.gkm"
    t_steps = getattr(model, "time_steps", None)
    if t_steps is not None and t_steps != n_dates:
        raise SystemExit(f"{arch} takes exactly {t_steps} dates; --dates is {n_dates}.")
    n_params = sum(p.numel() for p in model.parameters())
    facts = {"arch": arch, "size": "tiny", "parameters": n_params,
             "multiple": int(model.multiple), "time_steps": t_steps, "path": str(path)}
    if path.exists():
        return facts | {"export_seconds": 0.0}
    layout = SourceLayout((SourceGroup("s1", "sar", ("vv_db",), bands=("vv",), time=True),))
    norm = NormStats(mean=[-11.0], std=[3.0], names=("vv_db",))
    t0 = time.perf_counter()
    onnx_bytes = export_onnx(model)
    facts["export_seconds"] = time.perf_counter() - t0
    selection = SeriesSelection(direction="descending",
                                dates_per_year=0 if t_steps is None else n_dates)
    bundle = bundle_from_model(model, layout=layout.to_dict(), norm=norm.to_dict(),
                               classes=["off_glacier", "glacier"],
                               tile={"size": tile, "overlap": overlap},
                               onnx_bytes=onnx_bytes, task="mapping",
                               series={"selection": selection.to_dict()})
    save_bundle(path, bundle)
    return facts


# ---------------------------------------------------------------------------- child
def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


_WORKAROUNDS: list[str] = []
STAGES = ("setup", "tiles", "finish", "outlines", "area")


class _TimedRssSampler(RssSampler):
    """:class:`_rss.RssSampler` that also keeps ``(seconds, rss)`` samples (peak per stage)."""

    def __init__(self, interval: float = 0.05) -> None:
        super().__init__(interval)
        self.samples: list[tuple[float, int]] = []

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = self._proc.memory_info().rss
            self.peak = max(self.peak, rss)
            self.samples.append((time.perf_counter(), rss))
            self._stop.wait(self._interval)

    def stage_peaks_mb(self, t0: float, stages: dict[str, float]) -> dict[str, float]:
        """Peak sampled RSS (MB) within each stage, the stages laid end to end from ``t0``."""
        out, start = {}, t0
        for name in STAGES:
            if name not in stages:
                continue
            end = start + stages[name]
            inside = [r for t, r in self.samples if start <= t <= end]
            out[name] = max(inside) / 2**20 if inside else float("nan")
            start = end
        return out


def _ort_without_mem_pattern() -> None:
    """Create ONNX Runtime sessions with ``enable_mem_pattern = False`` (benchmark variant)."""
    import onnxruntime as ort

    session = ort.InferenceSession

    def make(*args, **kwargs):  # type: ignore[no-untyped-def]
        opts = kwargs.get("sess_options")
        if opts is not None:
            opts.enable_mem_pattern = False
        return session(*args, **kwargs)

    ort.InferenceSession = make  # predict.py looks it up when it builds the runner


def _torch_series_check_workaround() -> None:
    """Let the torch backend's model check accept a series model (benchmark-only patch).

    ``predict_scene`` checks a series model's network with 0 groups, while the torch
    network of a series model reports its ``group_channels`` (one group): the check then
    refuses every series model on the torch backend. The wrapper repeats the check with the
    network's own group count only when that mismatch is the sole complaint, and notes that
    it did (``workarounds`` in the results).
    """
    import glacierkit.dl.predict as pred
    from glacierkit.errors import ModelFileError

    check = pred._check_model_io

    def checked(runner, k, channels, groups, bundle):  # type: ignore[no-untyped-def]
        try:
            return check(runner, k, channels, groups, bundle)
        except ModelFileError as e:
            m = getattr(runner, "model", None)
            series = tuple(getattr(m, "inputs", ())) == ("series", "dates", "mask")
            if not (series and groups == 0 and "groups: network" in str(e)
                    and "classes:" not in str(e) and "channels:" not in str(e)):
                raise
            _WORKAROUNDS.append("torch series model check: groups 0 vs "
                                f"{len(m.group_channels)}")
            return check(runner, k, channels, len(m.group_channels), bundle)

    pred._check_model_io = checked


def child_predict(a: argparse.Namespace) -> dict:
    """Open the series, then one ``predict_scene`` run; timings and memory as a dict."""
    from glacierkit.dl.predict import predict_scene
    from glacierkit.series import open_series

    if a.backend == "torch":
        _torch_series_check_workaround()
    if a.ort_mem_pattern == "off":
        _ort_without_mem_pattern()

    t0 = time.perf_counter()
    stack = open_series(a.csv, scale="power", direction="descending")
    open_s = time.perf_counter() - t0
    before_mb = _rss_mb()
    maxrss_before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out = Path(a.out)
    prof = None
    if a.profile_out:
        import cProfile

        prof = cProfile.Profile()
    cpu0 = _cpu_seconds()
    with _TimedRssSampler() as sampler:
        t_call = time.perf_counter()
        if prof is not None:
            prof.enable()
        r = predict_scene(a.bundle, {"s1": stack}, out, backend=a.backend, threads=a.threads,
                          tile_size=a.tile, overlap=a.overlap, overwrite=True,
                          progress=False, outlines=not a.no_outlines,
                          max_memory=a.max_memory or None)
        if prof is not None:
            prof.disable()
    cpu_s = _cpu_seconds() - cpu0
    if prof is not None:
        prof.dump_stats(a.profile_out)
    return {"backend": r.backend, "dates": len(stack.paths), "open_series_s": open_s,
            "total_s": r.total_seconds, "model_s": r.model_seconds, "cpu_s": cpu_s,
            "timing": r.timing, "stages": r.stages, "tiles": r.tiles,
            "tiles_run": r.tiles_run, "tiles_skipped": r.tiles_skipped,
            "n_outlines": r.n_outlines, "rss_before_mb": before_mb,
            "workarounds": _WORKAROUNDS,
            "maxrss_before_mb": maxrss_before_mb,
            "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "sampled_peak_rss_mb": sampler.peak / 2**20,
            "stage_peak_rss_mb": sampler.stage_peaks_mb(t_call, r.stages),
            "ort_mem_pattern": a.ort_mem_pattern}


def child_outlines(classes_path: str, variant: str) -> dict:
    """Polygonize a class map as ``predict_scene`` does, or with its small holes filled.

    Both variants first drop glacier regions under ``min_area_km2`` (``_drop_small_regions``,
    as ``predict_scene`` does). ``"filled"`` then also turns the non-glacier regions under
    the same area (4-connected; holes in the glacier and small notches) into glacier, with
    the same band-by-band filter, before polygonizing.
    """
    import rasterio
    import shapely

    from glacierkit.dl import predict as pred
    from glacierkit.io.raster import read_grid
    from glacierkit.io.vector import MIN_AREA_KM2, polygonize

    grid = read_grid(classes_path)
    with rasterio.open(classes_path) as ds:
        classes = ds.read(1)
    names = {0: "off_glacier", 1: "glacier"}
    pred._drop_small_regions(classes, grid, [1], MIN_AREA_KM2)
    before = _rss_mb()
    t0 = time.perf_counter()
    with RssSampler(0.02) as sampler:
        if variant == "filled":
            other = (classes == 1).astype(np.uint8)  # 0: another class, 1: glacier
            other[classes == pred.CLASS_NODATA] = 2
            pred._drop_small_regions(other, grid, [0], MIN_AREA_KM2)  # small ones → 255
            classes[other == pred.CLASS_NODATA] = 1
            del other
        gdf = polygonize(classes, grid, class_names=names, ignore=(0,),
                         nodata=pred.CLASS_NODATA)
    geoms = gdf.geometry.values
    return {"variant": variant, "seconds": time.perf_counter() - t0,
            "rss_before_mb": before, "peak_mb": sampler.peak / 2**20,
            "polygons": len(gdf), "vertices": int(shapely.get_num_coordinates(geoms).sum()),
            "holes": int(shapely.get_num_interior_rings(geoms).sum()),
            "glacier_km2": float(gdf["area_km2"].sum())}


def spawn(a: argparse.Namespace, *, bundle: str, csv: str, out: Path, backend: str,
          profile_out: Path | None = None, mem_pattern: str = "on") -> dict:
    """One ``predict`` child (fresh process, after ``sync``); its JSON."""
    cmd = [sys.executable, __file__, "--child", "--bundle", bundle, "--csv", csv,
           "--out", str(out), "--backend", backend, "--threads", str(a.threads),
           "--tile", str(a.tile), "--overlap", str(a.overlap), "--max-memory", a.max_memory,
           "--ort-mem-pattern", mem_pattern]
    if a.no_outlines:
        cmd.append("--no-outlines")
    if profile_out is not None:
        cmd += ["--profile-out", str(profile_out)]
    os.sync()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-5000:])
        raise SystemExit(f"predict child ({backend}, {bundle}) failed with exit code "
                         f"{proc.returncode}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["child_wall_s"] = time.perf_counter() - t0
    return res


def profile_summary(path: Path, n: int = 14) -> list[dict]:
    """The functions with the most own time outside the model call, from a cProfile dump."""
    import pstats

    st = pstats.Stats(str(path))
    rows = []
    for (file, line, func), (_cc, nc, tt, ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        rows.append({"function": f"{Path(file).name}:{line}({func})", "calls": nc,
                     "own_s": tt, "cumulative_s": ct})
    rows.sort(key=lambda r: r["own_s"], reverse=True)
    return rows[:n]


# ---------------------------------------------------------------------------- report
def machine() -> dict:
    model = platform.processor() or platform.machine()
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True,
                                   check=False).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        from glacierkit import __version__
    except ImportError:  # pragma: no cover
        __version__ = "?"
    import psutil

    return {"nproc": os.cpu_count(), "cpu": model, "glacierkit": __version__,
            "ram_gb": psutil.virtual_memory().total / 2**30,
            "load_avg_at_start": os.getloadavg()}


def buffer_sizes(bundle_path: str, size: int, n_dates: int, tile: int, overlap: int,
                 multiple: int) -> dict:
    """Known buffer sizes (MB) of a predict run on a ``size²`` series (estimates)."""
    from glacierkit.dl.bundle import load_bundle
    from glacierkit.dl.memory import model_bytes_per_tile
    from glacierkit.dl.predict import _GDAL_CACHE_MB

    t = -(-tile // multiple) * multiple
    act, how = model_bytes_per_tile(load_bundle(bundle_path).onnx_bytes(), n_channels=1,
                                    n_groups=1, cond_dim=0, tile_hw=(t, t), n_dates=n_dates)
    tile_in = n_dates * 1 * t * t * 4
    return {"tile_input_mb": tile_in / 2**20,
            "tile_input_copies_note": "read windows + np.stack (T, bands, h, w) + the "
                                      "reused model-input buffer: about 3 copies",
            "model_activations_mb": act / 2**20, "model_activations_how": how,
            # run_tiled keeps a float32 accumulation strip and its weights for the rows of
            # one tile row (tile + overlap rows) across the scene width; K − 1 = 1 band.
            "blend_strips_mb": 2 * (t + overlap) * size * 4 / 2**20,
            "classes_for_outlines_mb": size * size / 2**20,
            "gdal_cache_limit_mb": float(_GDAL_CACHE_MB)}


def print_report(res: dict) -> None:
    a, m = res["args"], res["machine"]
    print(f"\nmachine: {m['nproc']} CPUs ({m['cpu']}), {m['ram_gb']:.0f} GB RAM, load average "
          f"at start {m['load_avg_at_start'][0]:.1f}; glacierkit {m['glacierkit']}")
    print(f"tiles {a['tile']} px, overlap {a['overlap']} px, threads {a['threads']}, "
          f"{a['dates']} dates, outlines {'off' if a['no_outlines'] else 'on'}; "
          f"tiny models with random weights\n")
    sp = res.get("speed", {})
    if sp:
        size = a["size"]
        print(f"### {size}² × {a['dates']} dates, ONNX Runtime\n")
        print("| model | parameters | tiles | total s | model s | overhead (total − model) / "
              "model | same without outlines | Mpx·date/s | setup / tiles / finish / "
              "outlines / area s | peak RSS MB |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for arch, r in sp.items():
            st = r["stages"]
            stages = " / ".join(f"{st.get(k, 0.0):.1f}"
                                for k in ("setup", "tiles", "finish", "outlines", "area"))
            print(f"| {arch} | {res['models'][arch]['parameters']:,} | {r['tiles_run']} | "
                  f"{r['total_s']:.1f} | {r['model_s']:.1f} | **{100 * r['overhead']:.1f} %** | "
                  f"{100 * r['overhead_no_outlines']:.1f} % | "
                  f"{r['mpx_date_per_s']:.2f} | {stages} | "
                  f"{max(r['ru_maxrss_mb'], r['sampled_peak_rss_mb']):.0f} |")
    cmp_ = res.get("compare", {})
    if cmp_:
        cs = a["compare_size"] or a["size"]
        print(f"\n### ONNX Runtime vs torch eager (CPU), {cs}² × {a['dates']} dates, "
              f"same tiles\n")
        print("| model | tiles | ONNX model s | torch model s | ONNX s/tile | torch s/tile | "
              "torch / ONNX (model time) | torch total s |")
        print("|---|---|---|---|---|---|---|---|")
        for arch, r in cmp_.items():
            n = r["onnx"]["tiles_run"]
            print(f"| {arch} | {n} | {r['onnx']['model_s']:.1f} | {r['torch']['model_s']:.1f} | "
                  f"{r['onnx']['model_s'] / n:.2f} | {r['torch']['model_s'] / n:.2f} | "
                  f"**{r['ratio']:.2f}×** | {r['torch']['total_s']:.1f} |")
    rss = res.get("rss")
    if rss:
        runs, b = rss["runs"], rss["buffers"]
        print(f"\n### Memory, {a['rss_size']}² × {a['dates']} dates, utae, ONNX Runtime\n")
        print("| ONNX Runtime memory pattern | RSS before predict_scene | peak RSS "
              "(ru_maxrss / sampled) | peak per stage: setup / tiles / finish / outlines / "
              "area | tiles | total s | model s | overhead |")
        print("|---|---|---|---|---|---|---|---|")
        for pattern, r in runs.items():
            sp = " / ".join(f"{v:.0f}" for v in r["stage_peak_rss_mb"].values())
            label = "on (predict_scene as shipped)" if pattern == "on" else "off (variant)"
            print(f"| {label} | {r['rss_before_mb']:.0f} MB | **{r['peak_mb']:.0f} MB** "
                  f"({r['ru_maxrss_mb']:.0f} / {r['sampled_peak_rss_mb']:.0f}) | {sp} MB | "
                  f"{r['tiles_run']} | {r['total_s']:.0f} | {r['model_s']:.0f} | "
                  f"{100 * r['timing']['overhead_share']:.1f} % |")
        print(f"\nknown buffers: tile input T×C×tile² {b['tile_input_mb']:.0f} MB (about 3 "
              f"copies), blend strips {b['blend_strips_mb']:.0f} MB, class map for the "
              f"outlines {b['classes_for_outlines_mb']:.0f} MB, GDAL cache limit "
              f"{b['gdal_cache_limit_mb']:.0f} MB; predict_scene's memory model assumes "
              f"{b['model_activations_mb']:.0f} MB of activations per tile "
              f"({b['model_activations_how']})")
    oc = res.get("outlines_check")
    if oc:
        print(f"\n### Outlines of the {a['rss_size']}² class map (polygonize alone, fresh "
              f"process each)\n")
        print("| variant | seconds | RSS before | peak RSS | polygons | vertices | holes | "
              "glacier km² |")
        print("|---|---|---|---|---|---|---|---|")
        for v, o in oc.items():
            label = ("as predict_scene does" if v == "shipped"
                     else "non-glacier regions under min_area_km2 filled first")
            print(f"| {label} | {o['seconds']:.1f} | {o['rss_before_mb']:.0f} MB | "
                  f"**{o['peak_mb']:.0f} MB** | {o['polygons']} | {o['vertices']:,} | "
                  f"{o['holes']:,} | {o['glacier_km2']:.1f} |")
    print()
    for name, c in res["checks"].items():
        v = c["value"]
        shown = (f"{v:.2f}×" if name.startswith("speedup") else
                 f"{100 * v:.1f} %" if name.startswith("overhead") else f"{v:.0f} MB")
        print(f"{name:24} {shown:>10}  target {c['target']:>10}  "
              f"{'PASS' if c['ok'] else 'MISS'}")
    prof = res.get("profiles")
    if prof:
        for arch, rows in prof.items():
            print(f"\ncProfile, {arch} (ONNX): most own time")
            for row in rows:
                print(f"  {row['own_s']:8.2f} s own {row['cumulative_s']:8.2f} s cum "
                      f"{row['calls']:>8}  {row['function']}")


# ---------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="1024² speed and memory stacks, 512² comparison (development)")
    p.add_argument("--size", type=int, default=4096, help="speed stack side (px)")
    p.add_argument("--compare-size", type=int, default=1024,
                   help="ONNX vs torch stack side (px); 0: the speed stack")
    p.add_argument("--rss-size", type=int, default=10000, help="memory stack side (px)")
    p.add_argument("--dates", type=int, default=15)
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated")
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--overlap", type=int, default=64)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="ONNX Runtime intra-op threads and torch threads")
    p.add_argument("--no-outlines", action="store_true", help="skip outlines.gpkg")
    p.add_argument("--max-memory", default="64GB",
                   help="predict_scene(max_memory=...); '' for its default (see the notes)")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--skip-compare", action="store_true")
    p.add_argument("--skip-rss", action="store_true")
    p.add_argument("--no-ort-variant", action="store_true",
                   help="skip the memory run with ONNX Runtime's memory pattern off")
    p.add_argument("--skip-outlines-check", action="store_true",
                   help="skip polygonizing the memory run's class map as shipped and with "
                        "small holes filled (runs alone on a class map left in --workdir "
                        "by an earlier memory run when --skip-rss is given)")
    p.add_argument("--profile", action="store_true",
                   help="run the speed children under cProfile and print the top functions")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--workdir", type=Path,
                   help="keep stacks, models and outputs here (reused when present)")
    # child-only options
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--child-outlines", nargs=2, metavar=("CLASSES", "VARIANT"),
                   help=argparse.SUPPRESS)
    p.add_argument("--backend", help=argparse.SUPPRESS)
    p.add_argument("--bundle", help=argparse.SUPPRESS)
    p.add_argument("--csv", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--profile-out", help=argparse.SUPPRESS)
    p.add_argument("--ort-mem-pattern", choices=("on", "off"), default="on",
                   help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(child_predict(a)))
        return 0
    if a.child_outlines:
        print(json.dumps(child_outlines(*a.child_outlines)))
        return 0
    if a.quick:
        a.size, a.rss_size, a.compare_size = 1024, 1024, 512

    models = [m.strip() for m in a.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; choose from {MODELS}")
    tmp = None
    if a.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="gk-series-")
        work = Path(tmp.name)
    else:
        work = a.workdir
        work.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    res: dict = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()
                          if k not in ("child", "backend", "bundle", "csv", "out",
                                       "profile_out")},
                 "machine": machine(), "models": {}, "stacks": {}, "checks": {}}
    try:
        def stack(size: int) -> str:
            key = str(size)
            if key not in res["stacks"]:
                print(f"writing {size}² × {a.dates} dates ...", end="", flush=True)
                res["stacks"][key] = make_stack(work / f"s1_{size}", size, a.dates)
                s = res["stacks"][key]
                print(f" {s['seconds']:.0f} s, {s['disk_mb']:.0f} MB on disk", flush=True)
            return res["stacks"][key]["csv"]

        for arch in models:
            print(f"model {arch} (random weights) → ONNX ...", end="", flush=True)
            res["models"][arch] = make_model(work, arch, a.dates, a.tile, a.overlap)
            print(f" {res['models'][arch]['export_seconds']:.0f} s", flush=True)
        mpx_dates = a.size * a.size * a.dates / 1e6

        if not a.skip_speed:
            res["speed"] = {}
            csv = stack(a.size)
            for arch in models:
                print(f"  speed {arch} onnx {a.size}² ...", end="", flush=True)
                prof = work / f"profile_{arch}.pstats" if a.profile else None
                r = spawn(a, bundle=res["models"][arch]["path"], csv=csv,
                          out=work / f"out_{arch}_onnx_{a.size}", backend="onnx",
                          profile_out=prof)
                r["overhead"] = (r["total_s"] - r["model_s"]) / r["model_s"]
                r["overhead_no_outlines"] = (r["total_s"] - r["stages"].get("outlines", 0.0)
                                             - r["model_s"]) / r["model_s"]
                r["mpx_date_per_s"] = mpx_dates / r["total_s"]
                res["speed"][arch] = r
                print(f" total {r['total_s']:.1f} s, model {r['model_s']:.1f} s", flush=True)
                if prof is not None:
                    res.setdefault("profiles", {})[arch] = profile_summary(prof)
                res["checks"][f"overhead_{arch}"] = {
                    "value": r["overhead"], "target": f"< {OVERHEAD_TARGET:.0%}",
                    "ok": r["overhead"] < OVERHEAD_TARGET}

        if not a.skip_compare:
            res["compare"] = {}
            cs = a.compare_size or a.size
            csv = stack(cs)
            for arch in models:
                pair = {}
                for be in ("onnx", "torch"):
                    if be == "onnx" and cs == a.size and arch in res.get("speed", {}):
                        pair[be] = res["speed"][arch]
                        continue
                    print(f"  compare {arch} {be} {cs}² ...", end="", flush=True)
                    pair[be] = spawn(a, bundle=res["models"][arch]["path"], csv=csv,
                                     out=work / f"out_{arch}_{be}_{cs}", backend=be)
                    print(f" model {pair[be]['model_s']:.1f} s", flush=True)
                pair["ratio"] = pair["torch"]["model_s"] / pair["onnx"]["model_s"]
                res["compare"][arch] = pair
                res["checks"][f"speedup_{arch}"] = {
                    "value": pair["ratio"], "target": f">= {SPEEDUP_TARGET}",
                    "ok": pair["ratio"] >= SPEEDUP_TARGET}

        if not a.skip_rss:
            arch = "utae"
            if arch not in res["models"]:
                res["models"][arch] = make_model(work, arch, a.dates, a.tile, a.overlap)
            csv = stack(a.rss_size)
            runs = {}
            for pattern in ("on",) if a.no_ort_variant else ("on", "off"):
                print(f"  memory {arch} onnx {a.rss_size}², ORT memory pattern {pattern} ...",
                      end="", flush=True)
                r = spawn(a, bundle=res["models"][arch]["path"], csv=csv,
                          out=work / f"out_{arch}_onnx_{a.rss_size}", backend="onnx",
                          mem_pattern=pattern)
                r["peak_mb"] = max(r["ru_maxrss_mb"], r["sampled_peak_rss_mb"])
                runs[pattern] = r
                print(f" peak RSS {r['peak_mb']:.0f} MB, total {r['total_s']:.0f} s", flush=True)
            res["rss"] = {"runs": runs, "peak_mb": runs["on"]["peak_mb"],
                          "buffers": buffer_sizes(res["models"][arch]["path"], a.rss_size,
                                                  a.dates, a.tile, a.overlap,
                                                  res["models"][arch]["multiple"])}
            res["checks"]["rss_utae_mb"] = {"value": runs["on"]["peak_mb"],
                                            "target": f"<= {RSS_LIMIT_MB:.0f}",
                                            "ok": runs["on"]["peak_mb"] <= RSS_LIMIT_MB}
        classes_tif = work / f"out_utae_onnx_{a.rss_size}" / "classes.tif"
        if not a.skip_outlines_check and classes_tif.exists():
            res["outlines_check"] = {}
            for variant in ("filled", "shipped"):
                print(f"  outlines of {classes_tif.parent.name}, {variant} ...", end="",
                      flush=True)
                os.sync()
                proc = subprocess.run([sys.executable, __file__, "--child-outlines",
                                       str(classes_tif), variant],
                                      capture_output=True, text=True, check=False)
                if proc.returncode != 0:
                    sys.stderr.write(proc.stderr[-5000:])
                    raise SystemExit(f"outlines child failed with exit code {proc.returncode}")
                o = json.loads(proc.stdout.strip().splitlines()[-1])
                res["outlines_check"][variant] = o
                print(f" {o['seconds']:.1f} s, peak {o['peak_mb']:.0f} MB", flush=True)
    finally:
        if tmp is not None:
            tmp.cleanup()
    res["wall_s"] = time.perf_counter() - t_start
    print_report(res)
    print(f"\nwall time {res['wall_s']:.0f} s")
    if a.json:
        a.json.write_text(json.dumps(res, indent=2, default=lambda o: None
                                     if isinstance(o, float) and math.isnan(o) else str(o)))
        print(f"results written to {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
