"""The scene runner: stream tiles of co-registered rasters through a function into a COG.

:func:`run_tiled` reads each tile of one or more rasters on the same grid, calls a user
function on it, blends the overlapping predictions with a weight window and writes the result
atomically as a Cloud-Optimized GeoTIFF (:func:`glacierkit.io.open_writer`)::

    sources ──read window──▶ fn(arrays, tile) ──weigh──▶ strip accumulator ──rows──▶ writer

Memory is bounded by the tile size and the output block, not by the scene: the accumulator is a
*strip* of full scene width and ``tile_rows + block`` rows. Tiles are processed in row-major
order; when the first tile of tile row ``i + 1`` arrives, every tile that can touch rows above
``row_start[i + 1]`` is done, so those rows are final. They are normalised, written to the
writer in whole output blocks (rows up to the last multiple of the writer's ``blocksize``, so
no block of the temporary GeoTIFF is ever written twice) and shifted out of the strip. Peak
memory is about::

    16 B × out_bands × (tile_rows + blocksize) × scene_cols      (float64 sums and weights;
                                                                  8 B with accumulate="float32")
    + in_flight × (inputs + outputs of one tile)                  (executor queue)
    + gdal_cache_mb                                               (GDAL block cache)

e.g. about 330 MB of strip for one float band 20000 px wide with 512 px tiles and blocks
(``benchmarks/tiling_memory.py`` measures ~0.7 GB peak RSS for the whole process). Sources
stay open for the run, one dataset per thread, so that overlapping tiles reuse GDAL's cache.

Executors: ``"serial"`` runs tiles one by one in the calling thread; ``"threads"`` runs the
read + function + weighting step of up to ``max_in_flight`` tiles in a thread pool (NumPy and
GDAL release the GIL) while the calling thread accumulates and writes, in tile order; they pay
off when ``fn`` is compute-heavy (an identity pass is bound by I/O and the COG step). Any object
with a ``map(fn, items)`` method that yields results in input order (:class:`TileExecutor`) can
be passed instead; this is the seam for a Dask executor. The per-tile callable handed to it is a
picklable object, so process- or cluster-based executors can ship it.

Instead of a file, the finished rows can go to a :class:`RowSink` (``sink=``): an object with
``write(data, window)`` that receives whole-width row blocks top to bottom, each row once (what
:func:`glacierkit.dl.predict.predict_scene` uses to write class and confidence maps without a
temporary probability raster).

An exception anywhere (in ``fn``, reading, writing) propagates out of the writer's ``with``
block after the executor has been shut down, so no output and no temporary file remain.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

import numpy as np
import rasterio
from rasterio.windows import Window

from glacierkit.errors import InputError, TilingError
from glacierkit.io.grid import Grid, check_same_grid
from glacierkit.io.raster import RasterReader, open_raster, read_grid
from glacierkit.io.writer import RasterWriter, check_output_path, open_writer
from glacierkit.tiling.blend import TILE_BLENDS, TileBlend, blend_weights, weigh
from glacierkit.tiling.grid import EdgeMode, Tile, TileGrid

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

TileFunction = Callable[[list[np.ndarray], Tile], np.ndarray]
"""``fn(arrays, tile) -> prediction``: ``arrays`` holds one ``(bands, tile_rows, tile_cols)``
array per source; the prediction is ``(out_bands, tile_rows, tile_cols)`` (or 2-D for one band)
for the full tile. NaN in the prediction means "no prediction here"."""

PadMode = Literal["nan", "reflect", "edge"]
SkipNodata = Literal["all", "any", "never"]


# ---------------------------------------------------------------------------- executors
@runtime_checkable
class TileExecutor(Protocol):
    """What :func:`run_tiled` needs from an executor.

    ``map(fn, items)`` applies ``fn`` to every item and yields the results *in input order*.
    It should consume ``items`` lazily and keep a bounded number of items in flight, so that
    memory stays bounded, and when the returned iterator is closed early (an exception in the
    caller) it should cancel pending work and return only once nothing still runs.
    An exception raised by ``fn`` is re-raised from the iterator.
    """

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """Yield ``fn(item)`` for each item, in order."""
        ...


class SerialExecutor:
    """Run tiles one after the other in the calling thread (the reference executor)."""

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """Yield ``fn(item)`` for each item, in order."""
        for item in items:
            yield fn(item)

    def __repr__(self) -> str:
        return "SerialExecutor()"


class ThreadExecutor:
    """Run tiles in a thread pool with a bounded number in flight; results in input order.

    Args:
        max_workers: Worker threads (default: the number of CPUs, at most 8).
        max_in_flight: Most tiles submitted but not yet consumed (default ``2 * max_workers``).
            Bounds the memory held by finished-but-unconsumed tiles.
    """

    def __init__(self, *, max_workers: int | None = None,
                 max_in_flight: int | None = None) -> None:
        workers = max_workers if max_workers is not None else min(8, os.cpu_count() or 1)
        if workers < 1:
            raise InputError(f"max_workers must be >= 1; got {max_workers}.")
        in_flight = max_in_flight if max_in_flight is not None else 2 * workers
        if in_flight < 1:
            raise InputError(f"max_in_flight must be >= 1; got {max_in_flight}.")
        self.max_workers = workers
        self.max_in_flight = in_flight

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """Yield ``fn(item)`` for each item, in order, with at most ``max_in_flight`` pending."""
        pending: deque[Future[R]] = deque()
        with ThreadPoolExecutor(self.max_workers, thread_name_prefix="glacierkit-tile") as pool:
            try:
                for item in items:
                    pending.append(pool.submit(fn, item))
                    if len(pending) >= self.max_in_flight:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            finally:
                # Early close or an error: drop queued work; the pool's exit waits for the
                # tiles still running, so nothing touches the output after we return.
                for f in pending:
                    f.cancel()

    def __repr__(self) -> str:
        return f"ThreadExecutor(max_workers={self.max_workers}, " \
               f"max_in_flight={self.max_in_flight})"


def make_executor(executor: str | TileExecutor = "serial", *, max_workers: int | None = None,
                  max_in_flight: int | None = None) -> TileExecutor:
    """Resolve an executor name (``"serial"`` or ``"threads"``) or pass an executor through.

    Raises:
        InputError: for an unknown name or an object without a ``map`` method.
    """
    if isinstance(executor, str):
        if executor == "serial":
            return SerialExecutor()
        if executor == "threads":
            return ThreadExecutor(max_workers=max_workers, max_in_flight=max_in_flight)
        raise InputError(f"executor must be 'serial', 'threads' or an object with a "
                         f"map(fn, items) method; got {executor!r}.")
    if not isinstance(executor, TileExecutor):
        raise InputError(f"executor {executor!r} has no map(fn, items) method; see "
                         f"glacierkit.tiling.TileExecutor.")
    return executor


# ---------------------------------------------------------------------------- sinks
@runtime_checkable
class RowSink(Protocol):
    """Where :func:`run_tiled` puts finished rows instead of a file (its ``sink=``).

    ``write(data, window)`` receives the blended values of whole scene rows, top to bottom,
    each row exactly once: ``data`` is ``(bands, rows, cols)`` in the output dtype (nodata
    filled) and ``window`` spans the full scene width. ``data`` may be a view of the
    runner's accumulator, valid only during the call: copy what you keep.
    """

    def write(self, data: np.ndarray, window: Window) -> None:
        """Take the finished rows ``window`` of the scene."""
        ...


class _SinkWriter:
    """The parts of a :class:`RasterWriter` that the strip accumulator uses, for a sink."""

    def __init__(self, sink: RowSink, grid: Grid, dtype: np.dtype) -> None:
        self.sink, self.grid, self.dtype = sink, grid, dtype

    def write(self, data: np.ndarray, window: Window) -> None:
        self.sink.write(data, window)


# ---------------------------------------------------------------------------- reading
class _WindowReader:
    """Windowed reads that keep one open dataset per (thread, source) for the whole run.

    Opening a GeoTIFF per tile costs about a millisecond and throws away GDAL's block cache,
    which overlapping tiles would reuse; on a 20000 × 20000 scene that is about 40 % of the
    tile loop. The nodata policy is the one of :func:`glacierkit.io.open_raster`: the same
    (private) valid-mask function and mask rules, and ``tests/test_tiling`` checks that both
    agree. To be replaced by a public windowed reader in :mod:`glacierkit.io` when it exists.

    Not shipped to other processes: a pickled copy (a process or Dask executor) has no
    handles and reads each window with :func:`glacierkit.io.open_raster`.
    """

    def __init__(self, *, reuse_buffers: bool = False) -> None:
        self._datasets: dict[tuple[int, Path], Any] = {}
        self._buffers: dict[tuple[Any, ...], np.ndarray] = {}
        self._lock = threading.Lock()
        self._enabled = True
        self.reuse_buffers = reuse_buffers

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]
        self._enabled = False

    def _buffer(self, reader: RasterReader, window: Window) -> np.ndarray | None:
        """The calling thread's read buffer for ``reader``'s file and the window's shape."""
        dtypes = set(reader._ds.dtypes)
        if not self.reuse_buffers or len(dtypes) != 1:
            return None
        shape = (reader.count, int(window.height), int(window.width))
        key = (threading.get_ident(), reader.path, shape)
        buf = self._buffers.get(key)
        if buf is None:
            buf = np.empty(shape, dtype=dtypes.pop())
            with self._lock:
                self._buffers[key] = buf
        return buf

    def read(self, path: Path, window: Window, *, as_float: bool) -> tuple[np.ndarray,
                                                                          np.ndarray]:
        """``(data, valid)`` of ``window``, both ``(bands, rows, cols)``."""
        if not self._enabled:
            r = open_raster(path, window=window, as_float=as_float)
            return r.data, r.valid
        key = (threading.get_ident(), path)
        reader = self._datasets.get(key)
        if reader is None:
            reader = RasterReader(path)
            with self._lock:
                self._datasets[key] = reader
        return reader.read_arrays(window, as_float=as_float, out=self._buffer(reader, window))

    def close(self) -> None:
        """Close every dataset opened by any thread."""
        with self._lock:
            datasets, self._datasets = list(self._datasets.values()), {}
            self._buffers = {}
        for ds in datasets:
            ds.close()


# ---------------------------------------------------------------------------- per-tile work
@dataclass(frozen=True)
class _Contribution:
    """One processed tile: its weighted prediction over the readable part, or a skip."""

    tile: Tile
    weighted: np.ndarray | None  # (bands, read_rows, read_cols) float64, None when skipped
    weight: np.ndarray | None  # (read_rows, read_cols) or (bands, read_rows, read_cols)


@functools.lru_cache(maxsize=16)
def _window_weights(shape: tuple[int, int], blend: str, taper_px: Any,
                    sigma_frac: float, dtype: str = "float64") -> np.ndarray:
    w = blend_weights(shape, blend, taper_px=taper_px, sigma_frac=sigma_frac)  # type: ignore[arg-type]
    w = w.astype(dtype, copy=False)
    w.flags.writeable = False
    return w


def _weights_for(tile: Tile, blend: str, taper_px: Any, sigma_frac: float,
                 dtype: str = "float64") -> np.ndarray:
    rs, cs = tile.read_slices
    if blend == "core":
        w = np.zeros(tile.shape, dtype=dtype)
        w[tile.core_slices] = 1.0
        return w[rs, cs]
    return _window_weights(tile.shape, blend, taper_px, sigma_frac, dtype)[rs, cs]


@dataclass(frozen=True)
class _TileTask:
    """Read one tile from every source, call the user function, weigh its prediction.

    A module-level, picklable callable so that any executor (threads, processes, Dask) can
    run it: it holds paths and settings, and a reader whose open datasets are not pickled.
    """

    paths: tuple[Path, ...]
    fn: TileFunction
    blend: str
    taper_px: Any
    sigma_frac: float
    as_float: bool
    pad_mode: str
    skip_nodata: str
    out_bands: int | None
    reader: _WindowReader
    accumulate: str = "float64"

    def __call__(self, tile: Tile) -> _Contribution:
        reads = [self.reader.read(p, tile.read_window, as_float=self.as_float)
                 for p in self.paths]
        if self._skip([valid for _, valid in reads]):
            return _Contribution(tile, None, None)
        arrays = [self._pad(data, tile) for data, _ in reads]
        try:
            pred = self.fn(arrays, tile)
        except Exception as e:
            e.add_note(f"raised by the tile function on tile {tile.index} "
                       f"(window {tile.window}).")
            raise
        pred = self._check(pred, tile)
        rs, cs = tile.read_slices
        weights = _weights_for(tile, self.blend, self.taper_px, self.sigma_frac, self.accumulate)
        weighted, weight = weigh(pred[:, rs, cs], weights, dtype=self.accumulate)
        return _Contribution(tile, weighted, weight)

    def _skip(self, valid: list[np.ndarray]) -> bool:
        if self.skip_nodata == "never":
            return False
        empty = [not v.any() for v in valid]
        return all(empty) if self.skip_nodata == "all" else any(empty)

    def _pad(self, data: np.ndarray, tile: Tile) -> np.ndarray:
        pad_rows, pad_cols = tile.pad
        if pad_rows == 0 and pad_cols == 0:
            return data
        width = ((0, 0), (0, pad_rows), (0, pad_cols))
        if self.pad_mode == "nan":
            return np.pad(data, width, mode="constant", constant_values=np.nan)
        return np.pad(data, width, mode="symmetric" if self.pad_mode == "reflect" else "edge")

    def _check(self, pred: Any, tile: Tile) -> np.ndarray:
        arr = np.asarray(pred)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3 or arr.shape[1:] != tile.shape:
            raise InputError(
                f"the tile function returned shape {np.shape(pred)} for tile {tile.index}; "
                f"expected (out_bands, {tile.shape[0]}, {tile.shape[1]}) (the full tile, "
                f"padding included) or ({tile.shape[0]}, {tile.shape[1]}) for one band."
            )
        if self.out_bands is not None and arr.shape[0] != self.out_bands:
            raise InputError(f"the tile function returned {arr.shape[0]} band(s) for tile "
                             f"{tile.index}; expected {self.out_bands} (out_bands/band_names).")
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_) \
                or np.iscomplexobj(arr):
            raise InputError(f"the tile function returned dtype {arr.dtype}; expected a real "
                             f"numeric array.")
        return arr


# ---------------------------------------------------------------------------- accumulation
class _StripAccumulator:
    """Weighted sums over a strip of full-width rows, flushed to the writer block by block.

    Holds scene rows ``[base, base + capacity)``; ``capacity = tile_rows + block_rows`` is
    enough because rows are flushed up to the last block boundary at or above the next tile
    row's start (see the module docstring).
    """

    def __init__(self, writer: RasterWriter | _SinkWriter, *, bands: int, capacity: int,
                 block_rows: int, fill: float, dtype: str = "float64") -> None:
        self.writer = writer
        self.height, self.width = writer.grid.shape
        self.block_rows = block_rows
        self.fill = fill
        self.capacity = min(capacity, self.height)
        self.acc = np.zeros((bands, self.capacity, self.width), dtype=dtype)
        self.wsum = np.zeros_like(self.acc)
        self.base = 0  # scene row of strip row 0
        self.used = 0  # strip rows [0, used) may hold contributions

    def add(self, c: _Contribution) -> None:
        """Add one tile's weighted prediction (a skipped tile adds nothing)."""
        if c.weighted is None or c.weight is None:
            return
        if c.weighted.shape[0] != self.acc.shape[0]:
            raise InputError(f"the tile function returned {c.weighted.shape[0]} band(s) for "
                             f"tile {c.tile.index} but {self.acc.shape[0]} before; every tile "
                             f"must return the same number of bands.")
        win = c.tile.read_window
        r0 = int(win.row_off) - self.base
        r1, c0 = r0 + int(win.height), int(win.col_off)
        if r0 < 0 or r1 > self.capacity:
            raise TilingError(f"internal: tile {c.tile.index} rows [{win.row_off}, "
                              f"{win.row_off + win.height}) fall outside the strip "
                              f"[{self.base}, {self.base + self.capacity}); tiles must arrive "
                              f"in row-major order.")
        sl = (slice(None), slice(r0, r1), slice(c0, c0 + int(win.width)))
        self.acc[sl] += c.weighted
        self.wsum[sl] += c.weight
        self.used = max(self.used, r1)

    def flush(self, upto: int, *, final: bool = False) -> None:
        """Write the finished rows ``[base, upto)`` (rounded down to whole blocks unless final)."""
        if not final:
            upto = (upto // self.block_rows) * self.block_rows
        while self.base < upto:
            n = min(upto - self.base, self.capacity)
            out, wsum = self.acc[:, :n], self.wsum[:, :n]
            covered = wsum > 0
            if covered.all():
                np.divide(out, wsum, out=out)
            else:
                np.divide(out, wsum, out=out, where=covered)
                out[~covered] = self.fill
            self.writer.write(self._cast(out), Window(0, self.base, self.width, n))
            keep = max(self.used - n, 0)
            if keep:
                self.acc[:, :keep] = self.acc[:, n:n + keep]
                self.wsum[:, :keep] = self.wsum[:, n:n + keep]
            self.acc[:, keep:max(self.used, n)] = 0.0
            self.wsum[:, keep:max(self.used, n)] = 0.0
            self.base, self.used = self.base + n, keep

    def _cast(self, out: np.ndarray) -> np.ndarray:
        dtype = self.writer.dtype
        if np.issubdtype(dtype, np.floating):
            # Same dtype: the strip rows themselves (written before the strip moves on).
            return out if out.dtype == dtype else out.astype(dtype)
        rounded = np.rint(out)
        info = np.iinfo(dtype)
        if rounded.min() < info.min or rounded.max() > info.max:
            raise InputError(f"blended values span [{rounded.min():g}, {rounded.max():g}], "
                             f"outside the range of the output dtype {dtype}; choose a wider "
                             f"dtype= or rescale in the tile function.")
        return rounded.astype(dtype)


# ---------------------------------------------------------------------------- runner
@dataclass(frozen=True)
class TiledRun:
    """Summary of a :func:`run_tiled` call.

    Attributes:
        path: The written COG (``None`` when the rows went to a ``sink``).
        grid: Its grid (that of the sources).
        tiles: Number of tiles in the tile grid.
        skipped: Tiles skipped because their inputs were nodata.
        seconds: Wall-clock time of the whole run, COG conversion included.
    """

    path: Path | None
    grid: Grid
    tiles: int
    skipped: int
    seconds: float


def _source_grid(paths: Sequence[Path]) -> Grid:
    if not paths:
        raise InputError("run_tiled needs at least one source raster.")
    grids = {str(p): read_grid(p) for p in paths}
    check_same_grid(grids)
    return next(iter(grids.values()))


def _check_output_options(dtype: np.dtype, nodata: float | int | None, as_float: bool,
                          edge: str, pad_mode: str, blend: str, skip_nodata: str) -> float:
    """Validate the options that do not depend on the data; return the fill of empty pixels."""
    if blend not in TILE_BLENDS:
        raise TilingError(f"blend must be one of {TILE_BLENDS}; got {blend!r}.")
    if pad_mode not in ("nan", "reflect", "edge"):
        raise InputError(f"pad_mode must be 'nan', 'reflect' or 'edge'; got {pad_mode!r}.")
    if edge == "pad" and pad_mode == "nan" and not as_float:
        raise InputError("pad_mode='nan' needs as_float=True (integer arrays cannot hold NaN); "
                         "use pad_mode='reflect' or 'edge'.")
    if skip_nodata not in ("all", "any", "never"):
        raise InputError(f"skip_nodata must be 'all', 'any' or 'never'; got {skip_nodata!r}.")
    if np.issubdtype(dtype, np.floating):
        return float("nan") if nodata is None else float(nodata)
    if not np.issubdtype(dtype, np.integer):
        raise InputError(f"dtype must be a float or integer dtype; got {dtype}.")
    if nodata is None:
        raise InputError(f"an integer output dtype ({dtype}) needs nodata= (written where no "
                         f"tile predicted a pixel); e.g. nodata=0 or use dtype='float32'.")
    return float(nodata)


def run_tiled(sources: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
              out: str | os.PathLike[str] | None, fn: TileFunction, *,
              tile_size: int | tuple[int, int] = 512, overlap: int | tuple[int, int] = 0,
              edge: EdgeMode = "clamp", blend: TileBlend = "cosine",
              taper_px: int | tuple[int, int] | None = None, sigma_frac: float = 0.125,
              out_bands: int | None = None, dtype: str | np.dtype = "float32",
              nodata: float | int | None = None, band_names: Sequence[str] | None = None,
              units: str | Sequence[str] | None = None, tags: Mapping[str, Any] | None = None,
              overwrite: bool = False, compress: str = "deflate", blocksize: int = 512,
              as_float: bool = True, pad_mode: PadMode = "nan",
              skip_nodata: SkipNodata = "all",
              executor: Literal["serial", "threads"] | TileExecutor = "serial",
              max_workers: int | None = None, max_in_flight: int | None = None,
              gdal_cache_mb: int = 128, progress: bool = True,
              sink: RowSink | None = None, reuse_buffers: bool = False,
              accumulate: Literal["float64", "float32"] = "float64") -> TiledRun:
    """Run ``fn`` tile by tile over co-registered rasters and write the blended result as a COG.

    Args:
        sources: One raster path or a sequence of paths on the same grid (checked:
            :class:`~glacierkit.errors.GridMismatchError` otherwise; align them first with
            :func:`glacierkit.io.align`).
        out: Output ``.tif`` path (written atomically as a COG; its folder must exist), or
            ``None`` with ``sink``.
        fn: ``fn(arrays, tile) -> prediction``. ``arrays`` is a list with one
            ``(bands, tile_rows, tile_cols)`` array per source (float with NaN for nodata when
            ``as_float``; padded tiles padded per ``pad_mode``); ``tile`` is the
            :class:`~glacierkit.tiling.grid.Tile`. Return ``(out_bands, tile_rows,
            tile_cols)`` (or 2-D for one band) for the full tile; NaN means no prediction. With
            ``executor="threads"`` it must be thread-safe.
        tile_size: Tile size in pixels, int or ``(rows, cols)``.
        overlap: Overlap between neighbouring tiles in pixels, int or ``(rows, cols)``; choose
            at least the receptive field (context) of ``fn``.
        edge: ``"clamp"`` (edge tiles shifted inwards; the scene must be at least one tile) or
            ``"pad"`` (edge tiles padded past the scene).
        blend: Weight window: ``"cosine"`` (default), ``"gaussian"``, ``"linear"``,
            ``"none"`` (plain mean) or ``"core"`` (each pixel from the one tile whose core
            holds it; use it for class labels).
        taper_px: Taper the weights only over this many pixels from each tile edge (e.g. the
            overlap); ``None`` for a window over the whole tile.
        sigma_frac: Gaussian window standard deviation as a fraction of its length.
        out_bands: Number of output bands; default ``len(band_names)``, else taken from the
            first prediction.
        dtype: Output dtype (float32 default). Integer outputs are rounded to nearest and need
            ``nodata``.
        nodata: Output nodata, written where no tile predicted (default NaN for floats).
        band_names: One name per output band (band descriptions).
        units: Unit string for all bands or one per band (e.g. ``"m/yr"``).
        tags: Dataset tags (processing parameters, provenance). A ``TILING`` tag with the
            tiling parameters is added unless ``tags`` has one.
        overwrite: Replace an existing output (default False: raise before any work).
        compress: COG compression (``"deflate"``, ``"zstd"``, ``"lzw"``, ``"none"``).
        blocksize: COG block size in pixels; rows are flushed in whole blocks.
        as_float: Give ``fn`` float arrays with NaN for nodata (default) or the files' dtypes.
        pad_mode: Fill of padded tiles: ``"nan"``, ``"reflect"`` (mirror) or ``"edge"``.
        skip_nodata: Skip a tile without calling ``fn`` when ``"all"`` (default) or ``"any"``
            of its source windows are entirely nodata; ``"never"`` to always call ``fn``. A
            skipped tile contributes nothing (its pixels stay nodata unless a neighbour covers
            them).
        executor: ``"serial"``, ``"threads"`` or a :class:`TileExecutor`.
        max_workers: Threads for ``executor="threads"`` (default: CPUs, at most 8).
        max_in_flight: Most tiles in flight for ``executor="threads"`` (default twice the
            workers).
        gdal_cache_mb: GDAL block cache during the run, MiB (GDAL's default is 5 % of RAM,
            which would otherwise dominate the memory use).
        progress: Show a rich progress bar (``False`` to silence it).
        sink: Instead of writing ``out``, hand each block of finished rows to
            ``sink.write(data, window)`` (a :class:`RowSink`; ``out`` must be ``None``):
            for callers that post-process the blended rows without a temporary raster
            (:func:`glacierkit.dl.predict.predict_scene` turns them into class and confidence
            maps). File options (``compress``, ``band_names``, ...) are then unused.
        reuse_buffers: Read every window into one buffer per (thread, source, tile shape)
            instead of fresh arrays (reading into freshly allocated memory page-faults: on a
            2048² scene next to an ONNX Runtime session, 0.17 s of reads became 0.08 s).
            Then ``fn`` must not keep references to ``arrays`` after it returns (what it
            returns is copied into the blend before the next read).
        accumulate: Precision of the weighted sums: ``"float64"`` (default; a constant field
            comes back exactly for any output dtype) or ``"float32"`` (half the memory and
            memory traffic of the blend; relative rounding about 1e-7, fine for
            probabilities; :func:`glacierkit.dl.predict.predict_scene` uses it).

    Returns:
        A :class:`TiledRun` summary.

    Raises:
        OutputExistsError: ``out`` exists and ``overwrite`` is False.
        GridMismatchError: the sources are not on one grid.
        TilingError: invalid tile size/overlap (e.g. ``overlap >= tile_size``, or a tile larger
            than the scene with ``edge="clamp"``).
        InputError: invalid options, or ``fn`` returned the wrong shape.
        Exception: whatever ``fn`` raises, with a note naming the tile; no output or temporary
            file is left behind.
    """
    t0 = time.perf_counter()
    paths = tuple(Path(p) for p in ([sources] if isinstance(sources, str | os.PathLike)
                                    else sources))
    if (sink is None) == (out is None):
        raise InputError("run_tiled needs exactly one of out= (a .tif path) and sink= (an "
                         "object with write(data, window)).")
    if sink is not None and not callable(getattr(sink, "write", None)):
        raise InputError(f"sink {sink!r} has no write(data, window) method.")
    out_path = None if out is None else check_output_path(out, overwrite=overwrite)
    if not callable(fn):
        raise InputError(f"fn must be callable fn(arrays, tile); got {fn!r}.")
    out_dtype = np.dtype(dtype)
    fill = _check_output_options(out_dtype, nodata, as_float, edge, pad_mode, blend,
                                 skip_nodata)
    if gdal_cache_mb < 1:
        raise InputError(f"gdal_cache_mb must be >= 1; got {gdal_cache_mb}.")
    if accumulate not in ("float64", "float32"):
        raise InputError(f"accumulate must be 'float64' or 'float32'; got {accumulate!r}.")
    if blocksize < 16 or blocksize % 16:
        raise InputError(f"blocksize must be a positive multiple of 16 px (GeoTIFF tiles); "
                         f"got {blocksize}.")
    grid = _source_grid(paths)
    tiles = TileGrid(grid.shape, tile_size, overlap=overlap, edge=edge)
    bands = out_bands if out_bands is not None else (len(band_names) if band_names else None)
    if bands is not None and bands < 1:
        raise InputError(f"out_bands must be >= 1; got {bands}.")
    run_tags = {"TILING": {"tile_size_px": list(tiles.tile_size),  # type: ignore[arg-type]
                           "overlap_px": list(tiles.overlap),  # type: ignore[arg-type]
                           "edge": edge, "blend": blend, "taper_px": taper_px},
                **(tags or {})}
    ex = make_executor(executor, max_workers=max_workers, max_in_flight=max_in_flight)
    reader = _WindowReader(reuse_buffers=reuse_buffers)
    task = _TileTask(paths, fn, blend, taper_px, sigma_frac, as_float, pad_mode, skip_nodata,
                     bands, reader, accumulate)

    def writer_for(count: int) -> Any:
        if sink is not None:
            return nullcontext(_SinkWriter(sink, grid, out_dtype))
        assert out_path is not None
        return open_writer(out_path, grid, count=count, dtype=out_dtype, nodata=nodata,
                           band_names=band_names, units=units, tags=run_tags,
                           overwrite=overwrite, compress=compress, blocksize=blocksize)

    row_starts = tiles.row_starts()
    capacity = tiles.tile_size[0] + blocksize  # type: ignore[index]
    skipped = 0
    strip: _StripAccumulator | None = None
    log.info("tiled run: %d tiles (%d × %d) of %s px, overlap %s px, %s blending, %s%s",
             len(tiles), *tiles.grid_shape, _hw(tiles.tile_size), _hw(tiles.overlap), blend,
             _describe_executor(ex), f" → {out_path}" if sink is None else "")
    # Uncompressed GeoTIFF sources are read straight from the file (GDAL's GTiff direct I/O)
    # instead of through the block cache: on a 2048² scene of three uncompressed sources next
    # to an ONNX Runtime session, window reads took 0.11–0.14 s instead of 0.17–0.29 s, and
    # the products' blocks no longer compete with the sources' for the cache. Compressed
    # sources are not affected (they are decoded through the cache, which keeps overlapping
    # tiles from decoding a block twice).
    with (rasterio.Env(GDAL_CACHEMAX=int(gdal_cache_mb) * 2**20, GTIFF_DIRECT_IO="YES"),
          ExitStack() as stack,
          _progress_bar(progress, len(tiles),
                        out_path.name if out_path is not None else "rows") as advance,
          _closing(ex.map(task, iter(tiles))) as results):
        # Exit order: results (executor shut down) → progress → writer (publish or clean up)
        # → source datasets closed.
        stack.callback(reader.close)
        for c in results:
            if c.weighted is None:
                skipped += 1
            if strip is None:
                count = bands if bands is not None else (
                    None if c.weighted is None else c.weighted.shape[0])
                if count is not None:
                    strip = _StripAccumulator(stack.enter_context(writer_for(count)),
                                              bands=count, capacity=capacity,
                                              block_rows=blocksize, fill=fill,
                                              dtype=accumulate)
            if strip is not None:
                # Tiles arrive in row-major order: every tile of earlier tile rows is done,
                # so scene rows above this tile row's start are final.
                strip.flush(row_starts[c.tile.index[0]])
                strip.add(c)
            advance()
        if strip is None:  # every tile skipped and the band count never became known
            strip = _StripAccumulator(stack.enter_context(writer_for(1)), bands=1,
                                      capacity=capacity, block_rows=blocksize, fill=fill,
                                      dtype=accumulate)
        strip.flush(grid.height, final=True)
    if skipped:
        log.info("%d of %d tiles skipped (nodata inputs)", skipped, len(tiles))
    return TiledRun(out_path, grid, len(tiles), skipped, time.perf_counter() - t0)


def _hw(size: Any) -> str:
    """``(64, 48)`` → ``"64×48"``; ``64`` → ``"64"``."""
    if isinstance(size, tuple | list):
        return "×".join(str(int(s)) for s in size)
    return str(size)


def _describe_executor(ex: Any) -> str:
    """Words for the log: ``"serial"``, ``"4 threads"`` or the executor's class name."""
    if isinstance(ex, SerialExecutor):
        return "serial"
    if isinstance(ex, ThreadExecutor):
        return f"{ex.max_workers} threads"
    return type(ex).__name__


#: Seconds between two plain progress lines (stderr not a terminal).
PROGRESS_LOG_INTERVAL_S = 10.0


@contextmanager
def _progress_bar(enabled: bool, total: int, name: str) -> Iterator[Callable[[], None]]:
    """Yield an ``advance()`` callable that reports the tiles done, on stderr.

    On a terminal a rich progress bar; otherwise (logs, pipes) an INFO line ``tiles → NAME:
    done/total (pct %), elapsed s`` at most every :data:`PROGRESS_LOG_INTERVAL_S` seconds.
    Nothing when not ``enabled``.
    """
    if not enabled:
        yield lambda: None
        return
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        t0 = last = time.perf_counter()
        done = 0

        def advance() -> None:
            nonlocal done, last
            done += 1
            now = time.perf_counter()
            if now - last >= PROGRESS_LOG_INTERVAL_S and done < total:
                last = now
                log.info("tiles → %s: %d/%d (%.0f %%), %.0f s", name, done, total,
                         100 * done / max(total, 1), now - t0)

        yield advance
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("[bold]tiles → {task.description}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=console) as bar:
        task_id = bar.add_task(name, total=total)
        yield lambda: bar.advance(task_id)


@contextmanager
def _closing(results: Iterator[R]) -> Iterator[Iterator[R]]:
    """Close an executor's result iterator on exit (if it can be closed): cancels its work."""
    try:
        yield results
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()
