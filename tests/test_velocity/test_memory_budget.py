"""Memory budget of offset tracking: parsing, batch sizing, the per-node model, refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from velocity_synth import REFERENCE_TIF, SECONDARY_TIF, fourier_shift

from glacierkit import memory
from glacierkit.cli.main import main
from glacierkit.errors import InputError, MemoryBudgetError
from glacierkit.velocity import kernels, pipeline
from glacierkit.velocity._level import prepare_level
from glacierkit.velocity._surface import _corner_dft
from glacierkit.velocity.kernels import batch_plan, match, node_bytes, radius_bytes
from glacierkit.velocity.pipeline import TrackingParams, run_velocity


# ------------------------------------------------------------------------- glacierkit.memory
@pytest.mark.parametrize(("text", "expected"), [
    ("4GB", 4 * 10**9), ("512MiB", 512 * 2**20), ("2.5 GB", 2_500_000_000), ("1 kib", 1024),
    ("300", 300), (1000, 1000), (2.5e9, 2_500_000_000), ("1e9", 10**9), (" 64 MB ", 64 * 10**6),
])
def test_parse_memory__units(text, expected):
    assert memory.parse_memory(text) == expected


@pytest.mark.parametrize("bad", ["4G", "lots", "GB", "-1GB", "0", 0, -5, "4 GBs", True, None,
                                 "nan GB"])
def test_parse_memory__bad_text_says_what_is_expected(bad):
    with pytest.raises(InputError, match="max_memory") as err:
        memory.parse_memory(bad)
    assert "GB" in str(err.value)


def test_default_budget__half_of_available(monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda: 8_000_000_000)
    budget = memory.resolve_budget(None)
    assert budget.bytes == 4_000_000_000
    assert "50 %" in budget.source and "8 GB" in budget.source
    assert memory.resolve_budget("1GB").bytes == 10**9


def test_items_per_batch__fits_and_refuses():
    assert memory.items_per_batch(100, 1050) == 10
    assert memory.items_per_batch(100, 1050, fixed_bytes=60) == 9
    assert memory.items_per_batch(100, 10**6, limit=7) == 7
    with pytest.raises(MemoryBudgetError, match="reduce --tile-size") as err:
        memory.items_per_batch(100, 150, fixed_bytes=60, what="One tile",
                               fix="Use a smaller tile: reduce --tile-size.")
    assert isinstance(err.value, MemoryError)
    assert "One tile needs about 160 B" in str(err.value)


# --------------------------------------------------------------------- per-node memory model
def _level(textured, method: str = "ncc", chip: int = 32):
    img = textured(300, 420, margin=0, origin=(300, 300))
    return prepare_level(img[:-3, 2:], img[3:, :-2], chip=chip, taper=0.1, method=method)


def _measure_batch(level, radius: int, n: int, chunk: int) -> int:
    """tracemalloc peak (bytes) of one _match_batch of n nodes."""
    size = level.chip + 2 * radius
    rng = np.random.default_rng(3)
    h, w = level.shape
    tl_r = rng.integers(radius, h - size + radius + 1, n)
    tl_c = rng.integers(radius, w - size + radius + 1, n)
    zero = np.zeros(n, dtype=np.intp)
    out = kernels._LevelOut.empty(n)
    q = kernels._Quality(0.0, 0.0, 0.0, 2, 0.2)
    _corner_dft.cache_clear()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        kernels._match_batch(level, out, np.arange(n), (tl_r, tl_c, zero, zero), radius, q=q,
                             subpixel=True, chunk=chunk)
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(("method", "chip", "radius", "n", "chunk"), [
    ("ncc", 32, 4, 300, 256), ("ncc", 32, 17, 120, 40), ("ncc", 32, 60, 12, 12),
    ("ncc", 32, 100, 6, 2), ("ncc", 16, 36, 40, 40), ("oc", 32, 12, 80, 80),
])
def test_node_bytes__bounds_measured_peak(textured, method, chip, radius, n, chunk):
    level = _level(textured, method, chip)
    measured = _measure_batch(level, radius, n, chunk)
    per_batch, per_chunk = node_bytes(chip, radius, method)
    model = n * per_batch + chunk * per_chunk + radius_bytes(chip, radius)
    assert measured <= model, (measured, model)
    assert model <= 1.6 * measured, (measured, model)  # not a uselessly loose bound


def test_batch_plan__within_budget_and_capped():
    per_batch, per_chunk = node_bytes(32, 200, "ncc")
    extra = radius_bytes(32, 200)
    for budget in (10**8, 5 * 10**8, 3 * 10**9, 10**11):
        for workers in (1, 2):
            n, chunk = batch_plan(budget, 32, 200, "ncc", limit=1024, workers=workers)
            share = min((budget - extra) // workers, kernels.MAX_BATCH_BYTES)
            assert 1 <= chunk <= n <= 1024
            assert n * per_batch + chunk * per_chunk <= share
            # one more node would not fit
            assert (n + 1) * per_batch + min(n + 1, 256) * per_chunk > share
    assert batch_plan(10**12, 32, 4, "ncc", limit=1024) == (1024, 256)
    # A node larger than the batch cap still runs alone when the budget allows it.
    assert sum(node_bytes(32, 3000, "ncc")) > kernels.MAX_BATCH_BYTES
    assert batch_plan(10**11, 32, 3000, "ncc", limit=1024) == (1, 1)
    with pytest.raises(MemoryBudgetError, match="--search"):
        batch_plan(10**6, 32, 200, "ncc", limit=1024)


def test_match__default_budget_from_available_memory(textured, monkeypatch):
    img = textured(160, 160, margin=0)
    monkeypatch.setattr(memory, "available_memory", lambda: 10**9 + 10**9)
    res = match(img, img, search_px=8, levels=0)
    mem = res.settings["memory"]
    assert mem["bytes"] == 10**9 and "50 %" in mem["source"]
    assert mem["image_bytes"] == kernels.image_bytes(img.shape, "ncc")
    (full,) = mem["searches"]
    assert full["radius_px"] == res.settings["final_radius_px"]
    assert full["batch_size"] == 1024  # a small search is not held back by the budget


def test_match__tracemalloc_peak_within_max_memory(textured):
    """The documented contract: match's own allocations stay within max_memory."""
    big = textured(240, 330, margin=64)
    ref, sec = big[64:-64, 64:-64], fourier_shift(big, 1.3, -0.6)
    budget = kernels.image_bytes(ref.shape, "ncc") + 60 * 10**6
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        res = match(ref, sec, search_px=70, levels=0, edge_research=True, max_memory=budget)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    plan = res.settings["memory"]["searches"]
    nodes = int((res.status != kernels.Status.EDGE).sum())
    assert plan[0]["batch_size"] < nodes  # the budget did bind
    assert peak <= budget, (peak, budget, plan)
    assert res.ok.sum() > 50


# ------------------------------------------------------------------ batch-size independence
@pytest.mark.parametrize("kw", [
    {"search_px": 10, "levels": 0, "edge_research": True},
    {"search_px": 24, "method": "oc"},
])
def test_match__results_do_not_depend_on_batches(textured, kw):
    big = textured(120, 150, margin=40, origin=(420, 520))
    ref, sec = big[40:-40, 40:-40], fourier_shift(big, 2.4, -1.7, margin=40)
    base = match(ref, sec, step_px=6, **kw)
    assert base.ok.sum() > 50
    small = kernels.image_bytes(ref.shape, kw.get("method", "ncc")) + 4 * 10**6
    for extra in ({"batch_size": 1}, {"batch_size": 7}, {"max_memory": small},
                  {"batch_size": 7, "workers": 2}):
        other = match(ref, sec, step_px=6, **kw, **extra)
        # Statuses must be identical. The float fields come from complex64 GEMMs (inverse DFT
        # corner) whose blocking, and so summation order, depends on the number of rows (the
        # batch) with some BLAS kernels (OpenBLAS Haswell/Zen): ~K = 25 float32 products per
        # output, relative error ≲ 1e-6 (measured 4.8e-7 absolute on an SNR of 7.4). rtol 1e-5
        # covers it; offsets (px) move by ≲ 1e-4 px through the sub-pixel fit (see
        # test_kernels.py), while a wrong batch assignment moves them by ≫ 1e-2 px.
        np.testing.assert_array_equal(other.status, base.status, err_msg=f"status with {extra}")
        for name in ("dy_px", "dx_px"):
            np.testing.assert_allclose(getattr(other, name), getattr(base, name), rtol=0,
                                       atol=1e-4, err_msg=f"{name} with {extra}")
        for name in ("peak_corr", "snr", "peak_ratio"):
            np.testing.assert_allclose(getattr(other, name), getattr(base, name), rtol=1e-5,
                                       atol=0, err_msg=f"{name} with {extra}")
    chunked = match(ref, sec, step_px=6, **kw, max_memory=small).settings["memory"]
    assert max(s["chunk"] for s in chunked["searches"]) < 256  # small chunks were exercised


# ---------------------------------------------------------------------------- refusals
def test_match__refuses_before_matching(textured, monkeypatch):
    def fail(*a, **k):
        raise AssertionError("matched although the work cannot fit")

    monkeypatch.setattr(kernels, "_match_level", fail)
    img = textured(400, 400, margin=0)
    with pytest.raises(MemoryBudgetError) as err:
        match(img, img, search_px=150, levels=0, max_memory="20MB")
    msg = str(err.value)
    for name in ("search_px", "--search", "chip_size_px", "--chip", "--max-memory", "20 MB",
                 "±164 px"):
        assert name in msg, msg
    with pytest.raises(MemoryBudgetError, match="crop the images"):
        match(img, img, search_px=8, max_memory="1MB")


def test_match__refuses_edge_research_radius(textured, monkeypatch):
    img = textured(400, 400, margin=0)
    monkeypatch.setattr(kernels, "_match_level",
                        lambda *a, **k: pytest.fail("matched although the work cannot fit"))
    per = sum(node_bytes(32, kernels._fast_radius(32, 40), "ncc"))
    budget = kernels.image_bytes(img.shape, "ncc") + 2 * per  # fits ±40, not the ±80 re-search
    kernels.check_memory(img.shape, search_px=40, levels=0, max_memory=budget)
    with pytest.raises(MemoryBudgetError, match="EDGE re-search"):
        match(img, img, search_px=40, levels=0, edge_research=True, max_memory=budget)


def test_check_memory__edge_research_that_cannot_fit_the_image_is_not_planned():
    # A ±2 r re-search window larger than the image leaves every candidate EDGE: no batches.
    plan = kernels.check_memory((300, 300), search_px=100, levels=0, edge_research=True,
                                max_memory="2GB")
    assert [s["search"] for s in plan["searches"]] == ["full resolution"]
    plan = kernels.check_memory((600, 600), search_px=100, levels=0, edge_research=True,
                                max_memory="2GB")
    assert [s["search"] for s in plan["searches"]] == ["full resolution", "EDGE re-search"]


@pytest.mark.parametrize(("kw", "name"), [
    ({"units": "km/h"}, "units"), ({"kind": "radar"}, "kind"), ({"band": 0}, "band"),
    ({"params": TrackingParams(method="xcorr")}, "method"),  # type: ignore[arg-type]
    ({"params": TrackingParams(prefilter="sobel")}, "prefilter"),  # type: ignore[arg-type]
    ({"params": TrackingParams(chip_size_px=2)}, "chip_size_px"),
    ({"params": TrackingParams(step_px=0)}, "step_px"),
    ({"params": TrackingParams(levels=-1)}, "levels"),
    ({"align": "secondary"}, "align"), ({"workers": 0}, "workers"),
    ({"dt_days": -3.0}, "dt_days"), ({"max_memory": "4G"}, "max_memory"),
])
def test_run_velocity__validates_before_reading(tmp_path, monkeypatch, kw, name):
    def fail(*a, **k):
        raise AssertionError("read or tracked before validating the arguments")

    monkeypatch.setattr(pipeline, "track_pair", fail)
    monkeypatch.setattr(pipeline, "read_pair", fail)
    monkeypatch.setattr(pipeline, "pair_time_separation", fail)
    with pytest.raises(InputError, match=name):
        run_velocity(tmp_path / "missing_a.tif", tmp_path / "missing_b.tif", tmp_path / "o",
                     **kw)


def test_run_velocity__refuses_before_tracking(yahtse: Path, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "track_pair",
                        lambda *a, **k: pytest.fail("tracked although the work cannot fit"))
    with pytest.raises(MemoryBudgetError, match="--max-memory"):
        run_velocity(yahtse / REFERENCE_TIF, yahtse / SECONDARY_TIF, tmp_path / "o",
                     params=TrackingParams(search_px=400), max_memory="200MB")
    assert not (tmp_path / "o").exists()


def test_cli_velocity__max_memory_refusal(yahtse: Path, tmp_path, capsys):
    rc = main(["velocity", str(yahtse / REFERENCE_TIF), str(yahtse / SECONDARY_TIF), "-o",
               str(tmp_path / "o"), "--search", "400", "--max-memory", "200MB"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "--search" in err and "--max-memory" in err and "±416 px" in err


# ------------------------------------------------------------------ the reported use case
@pytest.mark.slow
@pytest.mark.realdata
def test_cli_velocity__search_400_stays_within_budget(yahtse: Path, tmp_path):
    """``--search 400`` (one exhaustive ±416 px search: the pyramid cannot help) ran out of
    memory at > 24 GB; with a budget its peak RSS stays below RSS at start + budget."""
    budget = 10**9
    out = tmp_path / "out"
    cmd = [sys.executable, "-c", "from glacierkit.cli.main import run; run()", "velocity",
           str(yahtse / REFERENCE_TIF), str(yahtse / SECONDARY_TIF), "-o", str(out),
           "--search", "400", "--max-memory", "1GB", "--no-quicklook"]
    log = tmp_path / "log.txt"
    with log.open("wb") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # the child's own rusage
        proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, log.read_text()
    peak = usage.ru_maxrss * 1024  # kB on Linux
    report = json.loads((out / "report.json").read_text())
    mem = report["tracking"]["memory"]
    assert mem["bytes"] == budget
    assert report["tracking"]["levels"] == 0
    assert mem["searches"][0]["radius_px"] == 416 and mem["searches"][0]["batch_size"] < 64
    assert peak <= mem["process_rss_at_start_bytes"] + budget, (peak, mem)
    counts = report["status_counts"]
    assert counts["OK"] + counts["FILLED"] > 1000
