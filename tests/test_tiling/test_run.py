"""The scene runner: identity passes, blending, metadata, streaming, failures, bad input."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from glacierkit.errors import (
    GridMismatchError,
    InputError,
    OutputExistsError,
    TilingError,
)
from glacierkit.io import RasterWriter, open_raster
from glacierkit.tiling import (
    TILE_BLENDS,
    SerialExecutor,
    ThreadExecutor,
    TiledRun,
    TileExecutor,
    make_executor,
    run_tiled,
)

ROWS, COLS = 150, 190
TRANSFORM = Affine(15.0, 0, 465060.0, 0, -15.0, 6681585.0)


def _identity(arrays, tile):
    return arrays[0]


@pytest.fixture
def scene(tif_factory) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(42)
    data = rng.normal(100, 30, size=(2, ROWS, COLS)).astype(np.float32)
    data[:, :70, :80] = np.nan  # covers whole tiles: they are skipped
    data[1, 100:103, 150:160] = np.nan  # scattered nodata inside tiles
    return tif_factory("scene.tif", data, transform=TRANSFORM, nodata=float("nan")), data


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("reuse_buffers", [False, True])
@pytest.mark.parametrize("executor", ["serial", "threads"])
@pytest.mark.parametrize("blend", TILE_BLENDS)
def test_run_tiled__identity_is_exact(scene, tmp_path, blend, executor, reuse_buffers):
    # With reuse_buffers the identity function returns the read buffer itself, which the
    # next read overwrites: exact output shows the blend copied it first.
    src, data = scene
    out = tmp_path / "out.tif"
    res = run_tiled(src, out, _identity, tile_size=64, overlap=16, blend=blend,
                    executor=executor, max_workers=2, progress=False, blocksize=64,
                    reuse_buffers=reuse_buffers)
    assert isinstance(res, TiledRun) and res.path == out and res.tiles == 12
    assert res.skipped == 1  # the all-NaN tile at the top-left
    back = open_raster(out)
    assert back.data.dtype == np.float32
    np.testing.assert_array_equal(back.data, data)  # NaN positions equal too
    assert back.grid == open_raster(src).grid


@pytest.mark.parametrize("layout", [
    {"tiled": True, "blockxsize": 32, "blockysize": 48, "interleave": "pixel"},
    {"tiled": True, "blockxsize": 64, "blockysize": 32, "interleave": "band"},
    {"tiled": True, "blockxsize": 32, "blockysize": 32, "compress": "deflate"},
    {"blockysize": 7, "interleave": "band"},
])
def test_run_tiled__identity_for_file_layouts(scene, tif_factory, tmp_path, layout):
    # Uncompressed sources are read with GDAL's direct I/O (no block cache), compressed ones
    # through the cache: windows across block edges come back exactly either way.
    _, data = scene
    src = tif_factory("laid_out.tif", data, transform=TRANSFORM, nodata=float("nan"),
                      **layout)
    out = tmp_path / "out.tif"
    run_tiled(src, out, _identity, tile_size=(45, 58), overlap=(13, 21), progress=False,
              blocksize=32, reuse_buffers=True, blend="core")
    np.testing.assert_array_equal(open_raster(out).data, data)


@pytest.mark.parametrize("executor", ["serial", "threads"])
@pytest.mark.parametrize("blend", ["cosine", "core"])
def test_run_tiled__float32_accumulation(scene, tmp_path, blend, executor):
    # float32 sums: the identity comes back to float32 rounding (exactly for "core", one
    # tile per pixel), NaN exactly where the data are NaN, as a file and through a sink.
    src, data = scene
    out = tmp_path / "out.tif"
    run_tiled(src, out, _identity, tile_size=64, overlap=16, blend=blend, executor=executor,
              max_workers=2, progress=False, blocksize=64, reuse_buffers=True,
              accumulate="float32")
    back = open_raster(out).data
    np.testing.assert_array_equal(np.isnan(back), np.isnan(data))
    if blend == "core":
        np.testing.assert_array_equal(back, data)
    else:
        np.testing.assert_allclose(back, data, rtol=3e-7, atol=0)
        assert not np.array_equal(back, data)  # it did round: float64 sums are exact here
    got = []

    class Sink:
        def write(self, block, window):
            got.append(np.array(block))

    run_tiled(src, None, _identity, tile_size=64, overlap=16, blend=blend, progress=False,
              blocksize=64, sink=Sink(), accumulate="float32")
    np.testing.assert_array_equal(np.concatenate(got, axis=1), back)


@pytest.mark.parametrize("edge", ["clamp", "pad"])
@pytest.mark.parametrize("overlap", [0, 5, (20, 3)])
def test_run_tiled__identity_edges_and_tile_shapes(scene, tmp_path, edge, overlap):
    src, data = scene
    out = tmp_path / "out.tif"
    run_tiled(src, out, _identity, tile_size=(48, 40), overlap=overlap, edge=edge,
              progress=False, blocksize=32)
    np.testing.assert_array_equal(open_raster(out).data, data)


def test_run_tiled__padded_scene_smaller_than_tile(scene, tmp_path):
    src, data = scene
    seen = []

    def fn(arrays, tile):
        seen.append((arrays[0].shape, tile.pad))
        assert np.isnan(arrays[0][:, ROWS:, :]).all()  # pad_mode="nan"
        return arrays[0]

    run_tiled(src, tmp_path / "o.tif", fn, tile_size=256, edge="pad", progress=False)
    assert seen == [((2, 256, 256), (256 - ROWS, 256 - COLS))]
    np.testing.assert_array_equal(open_raster(tmp_path / "o.tif").data, data)


@pytest.mark.parametrize("pad_mode", ["reflect", "edge"])
def test_run_tiled__pad_modes(scene, tmp_path, pad_mode):
    src, data = scene

    def fn(arrays, tile):
        a = arrays[0]
        assert not np.isnan(a[1, -1, -1]) or np.isnan(data[1, -1, -1])
        if pad_mode == "edge" and tile.pad[1]:
            np.testing.assert_array_equal(a[:, :ROWS - tile.window.row_off, -1],
                                          a[:, :ROWS - tile.window.row_off,
                                            tile.read_window.width - 1])
        return a

    run_tiled(src, tmp_path / "o.tif", fn, tile_size=64, overlap=8, edge="pad",
              pad_mode=pad_mode, progress=False)
    np.testing.assert_array_equal(open_raster(tmp_path / "o.tif").data, data)


@pytest.mark.parametrize(("blend", "rtol"), [("core", 1e-6), ("cosine", 2e-3)])
def test_run_tiled__real_filter_close_to_whole_scene(tif_factory, tmp_path, blend, rtol):
    from scipy import ndimage

    rng = np.random.default_rng(3)
    img = ndimage.gaussian_filter(rng.normal(size=(200, 220)), 3).astype(np.float32)
    src = tif_factory("img.tif", img, transform=TRANSFORM)
    sigma = 2.0

    def smooth(arrays, tile):
        return ndimage.gaussian_filter(arrays[0][0].astype(np.float64), sigma, mode="nearest")

    run_tiled(src, tmp_path / "s.tif", smooth, tile_size=64, overlap=24, blend=blend,
              taper_px=24, executor="threads", progress=False)
    whole = ndimage.gaussian_filter(img.astype(np.float64), sigma, mode="nearest")
    got = open_raster(tmp_path / "s.tif").data[0]
    # "core" keeps >= 12 px (6 sigma) of context around every pixel: only float32 rounding
    # remains. Cross-fading also uses pixels near tile edges, with small weights.
    assert np.abs(got - whole).max() < rtol * np.abs(whole).max()


def test_run_tiled__two_sources_and_out_bands(scene, tif_factory, tmp_path):
    src, data = scene
    other = np.arange(ROWS * COLS, dtype=np.float32).reshape(ROWS, COLS)
    src2 = tif_factory("b.tif", other, transform=TRANSFORM)

    def fn(arrays, tile):
        assert [a.shape for a in arrays] == [(2, *tile.shape), (1, *tile.shape)]
        return np.concatenate([arrays[0][:1] + arrays[1], arrays[1] * 2])

    run_tiled([src, src2], tmp_path / "o.tif", fn, tile_size=50, overlap=10,
              band_names=["sum", "double"], progress=False, skip_nodata="never")
    back = open_raster(tmp_path / "o.tif")
    np.testing.assert_array_equal(back.data[0], data[0] + other)
    np.testing.assert_array_equal(back.data[1], other * 2)


def test_run_tiled__metadata_passed_to_writer(scene, tmp_path):
    src, data = scene
    out = tmp_path / "o.tif"
    run_tiled(src, out, lambda a, t: a[0][:1], tile_size=64, overlap=8, dtype="float64",
              nodata=-9999.0, band_names=["b1"], units="m", tags={"filter": "identity",
                                                                   "sigma_px": 2},
              compress="zstd", progress=False)
    with rasterio.open(out) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert ds.tags(ns="IMAGE_STRUCTURE").get("COMPRESSION") == "ZSTD"
        assert ds.dtypes == ("float64",) and ds.nodata == -9999.0
        assert ds.descriptions == ("b1",) and ds.units == ("m",)
        tags = ds.tags()
        assert ds.crs.to_epsg() == 32607 and ds.transform == TRANSFORM
        raw = ds.read(1)
    assert tags["filter"] == "identity" and tags["sigma_px"] == "2"
    tiling = json.loads(tags["TILING"])
    assert tiling["tile_size_px"] == [64, 64] and tiling["blend"] == "cosine"
    assert (raw[:64, :64][np.isnan(data[0, :64, :64])] == -9999.0).all()
    # float64 output: the weighted mean is exact to float64 rounding, not bit for bit.
    np.testing.assert_allclose(open_raster(out).data[0], data[0], rtol=1e-14)


def test_run_tiled__integer_output(tif_factory, tmp_path):
    dn = np.random.default_rng(1).integers(1, 60000, size=(90, 100)).astype(np.uint16)
    dn[:40, :40] = 0
    src = tif_factory("dn.tif", dn, transform=TRANSFORM, nodata=0)
    out = tmp_path / "dn_out.tif"
    run_tiled(src, out, _identity, tile_size=40, overlap=10, dtype="uint16", nodata=0,
              progress=False)
    back = open_raster(out, as_float=False)
    assert back.data.dtype == np.uint16
    np.testing.assert_array_equal(back.data[0], dn)
    with pytest.raises(InputError, match="needs nodata="):
        run_tiled(src, tmp_path / "x.tif", _identity, tile_size=40, dtype="uint8",
                  progress=False)
    with pytest.raises(InputError, match="outside the range"):
        run_tiled(src, tmp_path / "y.tif", _identity, tile_size=40, dtype="uint8", nodata=0,
                  progress=False)
    assert _files(tmp_path) == ["dn.tif", "dn_out.tif"]


def test_run_tiled__as_float_false_gives_file_dtype(tif_factory, tmp_path):
    dn = np.arange(60 * 70, dtype=np.int16).reshape(60, 70)
    src = tif_factory("i.tif", dn, transform=TRANSFORM)
    dtypes = set()

    def fn(arrays, tile):
        dtypes.add(arrays[0].dtype)
        return arrays[0]

    run_tiled(src, tmp_path / "o.tif", fn, tile_size=32, overlap=4, as_float=False,
              dtype="int16", nodata=-1, executor="threads", progress=False)
    assert dtypes == {np.dtype(np.int16)}
    np.testing.assert_array_equal(open_raster(tmp_path / "o.tif", as_float=False).data[0], dn)
    with pytest.raises(InputError, match="pad_mode='nan' needs as_float=True"):
        run_tiled(src, tmp_path / "p.tif", fn, tile_size=32, as_float=False, edge="pad",
                  dtype="int16", nodata=-1, progress=False)


def test_run_tiled__nodata_tiles_skipped(scene, tmp_path):
    src, _ = scene
    calls = []

    def fn(arrays, tile):
        calls.append(tile.index)
        return np.zeros_like(arrays[0])

    res = run_tiled(src, tmp_path / "o.tif", fn, tile_size=64, overlap=0, progress=False)
    assert (0, 0) not in calls and res.skipped == 1 and len(calls) == res.tiles - 1
    back = open_raster(tmp_path / "o.tif").data
    assert np.isnan(back[:, :64, :64]).all() and (back[:, 64:, :] == 0).all()


def test_run_tiled__all_tiles_skipped(tif_factory, tmp_path):
    src = tif_factory("nan.tif", np.full((40, 50), np.nan, np.float32), transform=TRANSFORM,
                      nodata=float("nan"))
    res = run_tiled(src, tmp_path / "o.tif", _identity, tile_size=20, progress=False)
    assert res.skipped == res.tiles == 6
    back = open_raster(tmp_path / "o.tif")
    assert back.data.shape == (1, 40, 50) and np.isnan(back.data).all()


def test_run_tiled__skip_any(scene, tif_factory, tmp_path):
    src, _ = scene
    src2 = tif_factory("ok.tif", np.ones((ROWS, COLS), np.float32), transform=TRANSFORM)
    calls = []

    def fn(arrays, tile):
        calls.append(tile.index)
        return arrays[1]

    run_tiled([src, src2], tmp_path / "all.tif", fn, tile_size=64, progress=False)
    assert (0, 0) in calls
    calls.clear()
    run_tiled([src, src2], tmp_path / "any.tif", fn, tile_size=64, skip_nodata="any",
              progress=False)
    assert (0, 0) not in calls


def test_run_tiled__streams_whole_blocks(scene, tmp_path, monkeypatch):
    """Rows reach the writer once each, in order, in whole blocks, never the whole scene."""
    src, _ = scene
    writes = []
    real = RasterWriter.write

    def spy(self, arr, window=None):
        writes.append((window.row_off, window.height, window.col_off, window.width))
        return real(self, arr, window)

    monkeypatch.setattr(RasterWriter, "write", spy)
    run_tiled(src, tmp_path / "o.tif", _identity, tile_size=32, overlap=8, blocksize=16,
              progress=False)
    assert len(writes) > 3
    row = 0
    for r0, h, c0, w in writes:
        assert (r0, c0, w) == (row, 0, COLS) and h <= 32 + 16
        assert r0 % 16 == 0
        row += h
    assert row == ROWS


def test_run_tiled__fn_error_leaves_nothing(scene, tmp_path):
    src, _ = scene
    for executor in ("serial", "threads"):
        n_threads = threading.active_count()

        def fn(arrays, tile):
            if tile.index == (2, 1):
                raise ZeroDivisionError("boom")
            return arrays[0]

        with pytest.raises(ZeroDivisionError, match="boom") as info:
            run_tiled(src, tmp_path / "o.tif", fn, tile_size=40, overlap=8, blocksize=16,
                      executor=executor, progress=False)
        assert any("tile (2, 1)" in n for n in info.value.__notes__)
        assert _files(tmp_path) == ["scene.tif"]
        assert threading.active_count() == n_threads  # the pool was shut down


def test_run_tiled__fn_error_keeps_existing_output(scene, tmp_path):
    src, _ = scene
    out = tmp_path / "o.tif"
    run_tiled(src, out, _identity, tile_size=64, progress=False)
    before = out.read_bytes()

    def fn(arrays, tile):
        if tile.index == (1, 1):
            raise RuntimeError("model crashed")
        return arrays[0] * 2

    with pytest.raises(RuntimeError, match="model crashed"):
        run_tiled(src, out, fn, tile_size=64, overwrite=True, executor="threads",
                  progress=False)
    assert out.read_bytes() == before and _files(tmp_path) == ["o.tif", "scene.tif"]


def test_run_tiled__existing_output_refused_before_work(scene, tmp_path):
    src, _ = scene
    out = tmp_path / "o.tif"
    out.write_bytes(b"x")

    def fn(arrays, tile):
        raise AssertionError("must not run")

    with pytest.raises(OutputExistsError, match="overwrite"):
        run_tiled(src, out, fn, tile_size=64, progress=False)
    assert out.read_bytes() == b"x"


def test_run_tiled__wrong_prediction_shape(scene, tmp_path):
    src, _ = scene
    with pytest.raises(InputError, match="returned shape"):
        run_tiled(src, tmp_path / "o.tif", lambda a, t: a[0][:, 1:], tile_size=64,
                  progress=False)
    with pytest.raises(InputError, match="expected 3"):
        run_tiled(src, tmp_path / "o.tif", _identity, tile_size=64, out_bands=3,
                  progress=False)
    with pytest.raises(InputError, match="same number of bands"):
        run_tiled(src, tmp_path / "o.tif",
                  lambda a, t: a[0][: 1 + (t.index[1] % 2)], tile_size=64, progress=False)
    assert _files(tmp_path) == ["scene.tif"]


def test_run_tiled__grid_mismatch(scene, tif_factory, tmp_path):
    src, _ = scene
    shifted = tif_factory("shifted.tif", np.ones((ROWS, COLS), np.float32),
                          transform=TRANSFORM @ Affine.translation(1, 0))
    with pytest.raises(GridMismatchError, match=r"shifted\.tif"):
        run_tiled([src, shifted], tmp_path / "o.tif", _identity, tile_size=64,
                  progress=False)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"tile_size": 512}, TilingError, "larger than the scene"),
    ({"tile_size": 64, "overlap": 64}, TilingError, "smaller than tile_size"),
    ({"tile_size": 0}, TilingError, "tile_size must be > 0"),
    ({"tile_size": 64, "blend": "max"}, TilingError, "blend must be one of"),
    ({"tile_size": 64, "executor": "processes"}, InputError, "executor must be"),
    ({"tile_size": 64, "pad_mode": "wrap"}, InputError, "pad_mode must be"),
    ({"tile_size": 64, "skip_nodata": "some"}, InputError, "skip_nodata must be"),
    ({"tile_size": 64, "dtype": "complex64"}, InputError, "float or integer dtype"),
    ({"tile_size": 64, "out_bands": 0}, InputError, "out_bands must be >= 1"),
    ({"tile_size": 64, "gdal_cache_mb": 0}, InputError, "gdal_cache_mb"),
    ({"tile_size": 64, "blocksize": 100}, InputError, "multiple of 16"),
    ({"tile_size": 64, "accumulate": "float16"}, InputError, "accumulate must be"),
])
def test_run_tiled__bad_options(scene, tmp_path, kwargs, error, match):
    src, _ = scene
    with pytest.raises(error, match=match):
        run_tiled(src, tmp_path / "o.tif", _identity, progress=False, **kwargs)
    assert _files(tmp_path) == ["scene.tif"]


def test_run_tiled__bad_sources_and_fn(scene, tmp_path):
    src, _ = scene
    with pytest.raises(InputError, match="at least one source"):
        run_tiled([], tmp_path / "o.tif", _identity, tile_size=8, progress=False)
    with pytest.raises(FileNotFoundError):
        run_tiled(tmp_path / "missing.tif", tmp_path / "o.tif", _identity, tile_size=8,
                  progress=False)
    with pytest.raises(InputError, match="fn must be callable"):
        run_tiled(src, tmp_path / "o.tif", "identity", tile_size=8, progress=False)


def test_run_tiled__progress_bar(scene, tmp_path):
    src, data = scene
    run_tiled(src, tmp_path / "o.tif", _identity, tile_size=64, progress=True)
    np.testing.assert_array_equal(open_raster(tmp_path / "o.tif").data, data)


def test_run_tiled__custom_executor_seam(scene, tmp_path):
    """Any object with an in-order map(fn, items) plugs in (the seam for Dask)."""
    src, data = scene

    class Recording:
        def __init__(self):
            self.n = 0

        def map(self, fn, items):
            for item in items:
                self.n += 1
                yield fn(item)

    ex = Recording()
    assert isinstance(ex, TileExecutor)
    res = run_tiled(src, tmp_path / "o.tif", _identity, tile_size=64, overlap=8, executor=ex,
                    progress=False)
    assert ex.n == res.tiles
    np.testing.assert_array_equal(open_raster(tmp_path / "o.tif").data, data)


def test_thread_executor__bounded_and_ordered():
    pulled = []
    consumed = []

    def items():
        for i in range(40):
            pulled.append(i)
            yield i

    ex = ThreadExecutor(max_workers=3, max_in_flight=4)
    for r in ex.map(lambda x: x * x, items()):
        consumed.append(r)
        assert len(pulled) - len(consumed) <= 4  # lazily consumed, bounded in flight
    assert consumed == [i * i for i in range(40)]


def test_thread_executor__error_cancels_pending():
    started = []

    def fn(x):
        started.append(x)
        if x == 2:
            raise KeyError(x)
        return x

    with pytest.raises(KeyError):
        list(ThreadExecutor(max_workers=1, max_in_flight=2).map(fn, range(100)))
    assert len(started) < 10


def test_make_executor():
    assert isinstance(make_executor("serial"), SerialExecutor)
    ex = make_executor("threads", max_workers=2)
    assert isinstance(ex, ThreadExecutor) and ex.max_in_flight == 4
    with pytest.raises(InputError, match="no map"):
        make_executor(object())  # type: ignore[arg-type]
    with pytest.raises(InputError, match="max_workers"):
        ThreadExecutor(max_workers=0)
    with pytest.raises(InputError, match="max_in_flight"):
        ThreadExecutor(max_in_flight=0)


def _masked_tif(path: Path) -> Path:
    data = np.arange(60 * 70, dtype=np.uint16).reshape(1, 60, 70)
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(path, "w", driver="GTiff", width=70, height=60, count=1,
                           dtype="uint16", crs="EPSG:32607", transform=TRANSFORM) as ds:
            ds.write(data)
            mask = np.full((60, 70), 255, np.uint8)
            mask[10:30, 5:25] = 0
            ds.write_mask(mask)
    return path


@pytest.mark.parametrize("kind", ["nan_nodata", "value_nodata", "uint16_nodata",
                                  "undeclared_nan", "int_no_nodata", "internal_mask",
                                  "float64_multiband"])
@pytest.mark.parametrize("as_float", [True, False])
@pytest.mark.parametrize("reuse", [False, True])
def test_window_reader__agrees_with_open_raster(tif_factory, tmp_path, kind, as_float, reuse):
    """The runner's persistent reader applies exactly open_raster's nodata policy."""
    from rasterio.windows import Window

    from glacierkit.tiling.run import _WindowReader

    rng = np.random.default_rng(5)
    f = rng.normal(size=(60, 70)).astype(np.float32)
    f[rng.random(f.shape) < 0.1] = np.nan
    if kind == "nan_nodata":
        path = tif_factory("a.tif", f, nodata=float("nan"))
    elif kind == "value_nodata":
        path = tif_factory("a.tif", np.where(np.isnan(f), -9999, f).astype(np.float32),
                           nodata=-9999.0)
    elif kind == "uint16_nodata":
        path = tif_factory("a.tif", rng.integers(0, 5, (60, 70)).astype(np.uint16), nodata=0)
    elif kind == "undeclared_nan":
        path = tif_factory("a.tif", f)
    elif kind == "int_no_nodata":
        path = tif_factory("a.tif", rng.integers(-5, 5, (60, 70)).astype(np.int16))
    elif kind == "internal_mask":
        path = _masked_tif(tmp_path / "a.tif")
    else:
        path = tif_factory("a.tif", rng.normal(size=(3, 60, 70)), nodata=float("nan"))
    reader = _WindowReader(reuse_buffers=reuse)
    n_invalid = 0
    try:
        for w in (Window(0, 0, 70, 60), Window(3, 7, 30, 20), Window(40, 35, 30, 25),
                  Window(35, 12, 30, 20), Window(3, 7, 30, 20)):  # shapes repeat
            ref = open_raster(path, window=w, as_float=as_float)
            data, valid = reader.read(path, w, as_float=as_float)
            assert data.dtype == ref.data.dtype
            np.testing.assert_array_equal(valid, ref.valid)
            np.testing.assert_array_equal(data, ref.data)
            n_invalid += int((~valid).sum())
    finally:
        reader.close()
    assert (n_invalid > 0) == (kind not in ("int_no_nodata", "float64_multiband"))


def test_window_reader__pickled_copy_reads_without_handles(scene):
    import pickle

    from rasterio.windows import Window

    from glacierkit.tiling.run import _WindowReader

    src, data = scene
    reader = _WindowReader()
    reader.read(src, Window(0, 0, 10, 10), as_float=True)
    copy = pickle.loads(pickle.dumps(reader))
    got, _ = copy.read(src, Window(5, 100, 20, 10), as_float=True)
    np.testing.assert_array_equal(got, data[:, 100:110, 5:25])
    assert copy._datasets == {}
    reader.close()


def test_run_tiled__sink_gets_each_row_once_and_no_file(scene, tmp_path):
    src, data = scene
    got = np.full(data.shape, -1.0, dtype=np.float32)
    windows = []

    class Sink:
        def write(self, block, window):
            assert block.dtype == np.float32 and window.width == COLS
            r0, n = int(window.row_off), int(window.height)
            assert (got[:, r0:r0 + n] == -1).all()  # every row exactly once
            got[:, r0:r0 + n] = block
            windows.append((r0, n))

    res = run_tiled(src, None, _identity, tile_size=64, overlap=16, progress=False,
                    blocksize=32, sink=Sink())
    assert res.path is None and res.tiles == 12 and res.skipped == 1
    np.testing.assert_array_equal(got, data)
    assert [w[0] for w in windows] == sorted(w[0] for w in windows)  # top to bottom
    assert _files(tmp_path) == ["scene.tif"]  # nothing written next to the source
    with pytest.raises(InputError, match="exactly one"):
        run_tiled(src, tmp_path / "x.tif", _identity, sink=Sink(), progress=False)
    with pytest.raises(InputError, match="exactly one"):
        run_tiled(src, None, _identity, progress=False)
