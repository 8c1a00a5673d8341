"""Offset tracking on a regular node grid: NCC / orientation correlation, coarse to fine.

**Sign convention** (the only place it is defined; everything in :mod:`glacierkit.velocity`
follows it). Offsets are in array order and pixel units: ``dy_px`` along rows (down),
``dx_px`` along columns (right). They are the displacement of features *from the reference
to the secondary image*: a feature at ``(r, c)`` in ``reference`` is found at
``(r + dy_px, c + dx_px)`` in ``secondary``. Each offset belongs to the chip centred on its
node (``MatchResult.rows``, ``MatchResult.cols``, in pixel-index coordinates where pixel
centres are integers).

How a node is matched (:func:`match`):

1. **Pyramid.** With ``levels = L > 0`` both images are halved ``L`` times (NaN-aware 5-tap
   binomial low-pass). The coarsest level searches ``±ceil(search_px / 2^L) + 1`` level
   pixels around the initial offsets (zero by default) with the same chip size in level
   pixels, i.e. a chip ``2^L`` times larger on the ground; each finer level searches
   ``±refine_px`` around the cleaned, interpolated estimate of the level above. Coarse levels
   match a sparse subset of the nodes, spaced by about their chip size on the ground.
2. **Correlation.** For every node, the taper-weighted zero-mean NCC (or orientation
   correlation) over all integer shifts of its window, from one FFT product per node and
   sliding weighted sums for the normalisation, vectorised over batches of nodes
   (:mod:`glacierkit.velocity._surface`).
3. **Peak and quality.** Integer peak, peak correlation, SNR (peak / mean |score|) and peak
   ratio (peak / highest local maximum outside ``±exclusion_px``), all on the surface searched
   at the finest level (``±refine_px`` when ``levels > 0``, ``±search_px`` otherwise).
4. **Sub-pixel.** Maximisation of the band-limited interpolant of the normalised correlation
   (:mod:`glacierkit.velocity._subpixel`); it does not pixel-lock. For ``"oc"`` the integer
   peak of the orientation correlation is refined on the NCC of the images within ±1 px of it
   (orientation images are not band-limited, and their own interpolant pixel-locks).
5. **EDGE re-search** (``edge_research=True``). A node whose peak lies on the border of its
   finest search (EDGE) is
   searched again with twice the radius, centred on the median offset of its valid
   neighbours (or on the border peak when fewer than 3 are valid); the new match is kept
   only if its peak is interior and passes the quality thresholds
   (``MatchResult.settings["edge_research"]`` counts candidates and recoveries).

A node that fails gets NaN offsets and a :class:`~glacierkit.velocity.status.Status` code;
matching never raises because of the content of a chip. It raises
:class:`~glacierkit.errors.InputError` for invalid arguments (shapes, sizes, names).
"""

from __future__ import annotations

import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import scipy.fft as sfft

from glacierkit.errors import InputError, MemoryBudgetError
from glacierkit.memory import Budget, format_bytes, items_per_batch, resolve_budget
from glacierkit.velocity import _predict
from glacierkit.velocity._level import LevelImages, Method, bad_at, prepare_level, pyr_down
from glacierkit.velocity._peaks import Peaks, find_peaks
from glacierkit.velocity._subpixel import DEFAULT_STEPS, refine
from glacierkit.velocity._surface import (
    FFT_CHUNK,
    Surfaces,
    correlate,
    subset,
    uses_inverse_fft,
)
from glacierkit.velocity.status import STATUS_DTYPE, Status

log = logging.getLogger(__name__)

METHODS = ("ncc", "oc")

#: Auto pyramid depth keeps the coarsest search radius at or below this (level px).
_MAX_COARSE_RADIUS = 9

#: EDGE re-search radius as a multiple of the finest level's search radius.
EDGE_RESEARCH_FACTOR = 2

#: Fewest valid neighbours (of 8) whose median offset centres an EDGE re-search.
EDGE_MIN_NEIGHBOURS = 3

#: Share of refinable nodes in a batch above which the whole batch is refined in place.
_REFINE_ALL_SHARE = 0.8


@dataclass(frozen=True)
class MatchResult:
    """Offsets and quality on the node grid (all 2-D arrays have shape ``(n_rows, n_cols)``).

    Attributes:
        dy_px: Offset along rows (down), px, float32; NaN where ``status`` is not OK.
        dx_px: Offset along columns (right), px, float32; NaN where ``status`` is not OK.
        peak_corr: Correlation at the (sub-pixel) peak, in ``[-1, 1]``, float32.
        snr: Peak / mean |correlation| over the searched surface, float32.
        peak_ratio: Peak / second peak outside the exclusion zone, float32 (``inf`` when the
            second peak is ≤ 0).
        status: :class:`~glacierkit.velocity.status.Status` codes, uint8.
        rows: Node centre rows ``(n_rows,)`` in pixel-index coordinates, float64.
        cols: Node centre columns ``(n_cols,)``, float64.
        settings: Parameters used (including the pyramid depth actually run).
    """

    dy_px: np.ndarray
    dx_px: np.ndarray
    peak_corr: np.ndarray
    snr: np.ndarray
    peak_ratio: np.ndarray
    status: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        """Node grid shape ``(n_rows, n_cols)``."""
        return self.status.shape  # type: ignore[return-value]

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask of nodes with valid offsets (status OK or FILLED)."""
        return (self.status == Status.OK) | (self.status == Status.FILLED)


@dataclass(frozen=True)
class _Quality:
    """Thresholds that turn a found peak into OK / LOW_QUALITY / NODATA."""

    min_peak_corr: float
    min_snr: float
    min_peak_ratio: float
    exclusion_px: int
    max_nodata_frac: float


@dataclass
class _LevelOut:
    """Per-node results of one level (level pixels), arrays ``(n,)``."""

    dy: np.ndarray
    dx: np.ndarray
    peak: np.ndarray
    snr: np.ndarray
    ratio: np.ndarray
    status: np.ndarray
    #: The node's chip and search window lay inside the image (it was correlated).
    searched: np.ndarray
    #: Integer peak offsets (level px), whatever the status; NaN where not searched.
    peak_dy: np.ndarray
    peak_dx: np.ndarray

    @classmethod
    def empty(cls, n: int) -> _LevelOut:
        nan = np.full(n, np.nan)
        return cls(nan.copy(), nan.copy(), nan.copy(), nan.copy(), nan.copy(),
                   np.full(n, Status.EDGE, dtype=STATUS_DTYPE), np.zeros(n, dtype=bool),
                   nan.copy(), nan.copy())

    def take(self, other: _LevelOut, into: np.ndarray, frm: np.ndarray) -> None:
        """Copy ``other``'s nodes ``frm`` into this result's nodes ``into`` (in place)."""
        for name in ("dy", "dx", "peak", "snr", "ratio", "status", "searched", "peak_dy",
                     "peak_dx"):
            getattr(self, name)[into] = getattr(other, name)[frm]


def node_grid(shape: tuple[int, int], *, step_px: int,
              chip_size_px: int) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the chips of a regular node grid covering an image.

    Node ``(i, j)`` stands for the ``step_px × step_px`` block of pixels starting at
    ``(i · step_px, j · step_px)``; its chip is the ``chip_size_px`` square centred on that
    block (to the nearest pixel when ``chip_size_px - step_px`` is odd).

    Args:
        shape: Image shape ``(rows, cols)`` (px).
        step_px: Node spacing (px).
        chip_size_px: Chip size (px).

    Returns:
        ``(rows, cols)``: chip centre coordinates, float64 arrays of length
        ``ceil(shape[0] / step_px)`` and ``ceil(shape[1] / step_px)``; pixel centres are at
        integer coordinates.
    """
    offset = (step_px - chip_size_px) // 2 + (chip_size_px - 1) / 2.0
    rows = np.arange(math.ceil(shape[0] / step_px)) * step_px + offset
    cols = np.arange(math.ceil(shape[1] / step_px)) * step_px + offset
    return rows.astype(np.float64), cols.astype(np.float64)


def _fast_radius(chip: int, radius: int) -> int:
    """Smallest radius ≥ ``radius`` whose window ``chip + 2 r`` is a fast FFT length."""
    r = radius
    while sfft.next_fast_len(chip + 2 * r, real=True) != chip + 2 * r:
        r += 1
    return r


def node_bytes(chip: int, radius: int, method: Method) -> tuple[int, int]:
    """Working memory of one node in a batch of :func:`_match_batch` (bytes).

    With ``M = C + 2 r`` (window), ``S = 2 r + 1`` (shifts) and ``K = M // 2 + 1`` spectrum
    columns for NCC (``K = M`` for orientation correlation), a batch of ``n`` nodes matched
    ``c`` nodes at a time (the FFT chunk) holds at its peak about
    ``n · per_batch + c · per_chunk`` bytes:

    * ``per_batch``: the arrays kept for the whole batch: the cross spectra
      (``M × K`` complex64, 8 B each), the surfaces (``S²`` float32) and ≈ 0.5 kB of
      per-node vectors (offsets, energies, peaks, positions, statuses);
    * ``per_chunk``: the largest of the temporaries of one chunk, which never coexist:
      the FFT pass (chips, windows and padded kernels as float32, or complex64 for
      orientation correlation, their spectra and scipy.fft's work arrays), the inverse
      transform to the integer shifts and the float64 numerators, the normalisation
      (float64 numerators, secondary energies, masks, quotients: ≈ 45 B per shift), the
      peak search (filled copy, 3 × 3 maxima, masks: ≈ 35 B per shift) and the sub-pixel
      refinement (copies of the surfaces and spectra of the refined nodes, twice in the
      worst case, and ``3 × K`` stencil kernels).

    The coefficients were checked against tracemalloc peaks of :func:`_match_batch` on the
    Yahtse pair (chip 16–64 px, radius 4–416 px, NCC and orientation correlation, batches
    1–1024 nodes, chunks 1–256): the model is 1.0–1.6 × the measured peak
    (``tests/test_velocity/test_memory_budget.py``).

    Args:
        chip: Chip size ``C`` (px).
        radius: Search radius ``r`` (px of the level).
        method: ``"ncc"`` or ``"oc"``.

    Returns:
        ``(per_batch, per_chunk)`` bytes per node.
    """
    m = chip + 2 * radius
    s = 2 * radius + 1
    k = m // 2 + 1 if method == "ncc" else m
    per_batch = 8 * m * k + 4 * s * s + 512
    if method == "ncc":
        fft = 4 * chip * chip + 8 * m * m + 24 * m * k
    else:
        fft = 8 * chip * chip + 8 * chip * m + 32 * m * m
    inverse = 8 * s * k + 16 * s * s + 8 * m * k
    if method == "ncc" and uses_inverse_fft(m, s):  # full inverse FFT: (M, M) output + copy
        inverse += 8 * m * k + 4 * m * m
    normalise = 47 * s * s
    peaks = 35 * s * s
    refine_ = 2 * (8 * m * k + 4 * s * s) + 96 * k + 256
    return per_batch, max(fft, inverse, normalise, peaks, refine_) + 1024


def radius_bytes(chip: int, radius: int) -> int:
    """Memory shared by all batches of one search radius (bytes).

    The inverse-DFT matrices of the correlation corner (``S × M`` and ``K × S`` complex64,
    cached per window size by :mod:`glacierkit.velocity._surface`; none where the corner
    comes from a full inverse FFT) and the taper.
    """
    m = chip + 2 * radius
    s = 2 * radius + 1
    if uses_inverse_fft(m, s):
        return 8 * chip * chip + 4096
    return 8 * s * (m + m // 2 + 1) + 8 * chip * chip + 4096


def batch_plan(budget: int, chip: int, radius: int, method: Method, *, limit: int,
               workers: int = 1) -> tuple[int, int]:
    """Nodes per batch and per FFT chunk that keep the batches within ``budget`` bytes.

    Args:
        budget: Working memory for the batches of all workers together (bytes).
        chip: Chip size (px).
        radius: Search radius (px of the level).
        method: ``"ncc"`` or ``"oc"``.
        limit: Largest batch wanted (``batch_size``).
        workers: Batches matched at the same time (each gets ``budget / workers``).

    Returns:
        ``(batch, chunk)``: ``1 ≤ chunk ≤ batch ≤ limit``, ``chunk ≤ FFT_CHUNK``, with
        ``batch · per_batch + chunk · per_chunk ≤ (budget − radius_bytes) / workers``
        (:func:`node_bytes`, :func:`radius_bytes`) and at most :data:`MAX_BATCH_BYTES`
        (unless one node needs more).

    Raises:
        MemoryBudgetError: Not even one node fits.
    """
    per_batch, per_chunk = node_bytes(chip, radius, method)
    share = (budget - radius_bytes(chip, radius)) // max(1, workers)
    # Larger batches than MAX_BATCH_BYTES are no faster; one node always gets what it needs.
    share = min(share, max(MAX_BATCH_BYTES, per_batch + per_chunk))
    n = items_per_batch(per_batch + per_chunk, share, limit=limit,
                        what=f"Matching one node with a {chip} px chip searched ±{radius} px "
                             f"(window {chip + 2 * radius} px)"
                             + (f", {workers} batches at a time (workers)" if workers > 1
                                else ""),
                        fix=_MEMORY_FIX)
    if n < FFT_CHUNK:
        return n, n
    n = max(FFT_CHUNK, min(limit, (share - FFT_CHUNK * per_chunk) // per_batch))
    return n, FFT_CHUNK


#: Largest working memory of one batch (bytes), whatever the budget. Batches beyond it are no
#: faster (Yahtse, ±416 px, 2 cores: 21 nodes per batch in 1 GB took 238 s, 632 nodes in
#: the default 12 GB budget 248 s) but take memory from everything else on the machine.
MAX_BATCH_BYTES = 1000**3

_MEMORY_FIX = ("Reduce search_px (--search) or chip_size_px (--chip), or raise max_memory "
               "(--max-memory).")


def _classify(out: _LevelOut, sel: np.ndarray, pk: Any, ref_energy: np.ndarray,
              bad: tuple[np.ndarray, np.ndarray], level: LevelImages, q: _Quality) -> None:
    """Set status, peak, SNR and peak ratio of the nodes ``sel`` of a batch (in place)."""
    status = np.full(sel.size, Status.OK, dtype=STATUS_DTYPE)
    low = ((pk.value < q.min_peak_corr) | (pk.snr < q.min_snr)
           | (pk.ratio < q.min_peak_ratio))
    status[low] = Status.LOW_QUALITY
    status[pk.on_border] = Status.EDGE
    status[~np.isfinite(pk.value) | (ref_energy <= level.texture_floor)] = Status.LOW_TEXTURE
    status[(bad[0] > q.max_nodata_frac) | (bad[1] > q.max_nodata_frac)] = Status.NODATA
    out.status[sel] = status
    out.peak[sel], out.snr[sel], out.ratio[sel] = pk.value, pk.snr, pk.ratio


def _match_batch(level: LevelImages, out: _LevelOut, sel: np.ndarray,
                 geom: tuple[np.ndarray, ...], radius: int, *, q: _Quality,
                 subpixel: bool, chunk: int = FFT_CHUNK) -> None:
    """Match the nodes ``sel`` (indices into the level's node arrays) and store results.

    The surfaces of the whole batch are computed first; FFTs, peaks and sub-pixel refinement
    run ``chunk`` nodes at a time (every node's result is independent of the others).
    """
    tl_r, tl_c, pred_r, pred_c = (a[sel] for a in geom)
    win_rc = (tl_r + pred_r - radius, tl_c + pred_c - radius)
    surf = correlate(level, (tl_r, tl_c), win_rc, radius, chunk=chunk)
    n = sel.size
    parts = [find_peaks(surf.score[i:i + chunk], exclusion_px=q.exclusion_px)
             for i in range(0, n, chunk)]
    pk = Peaks(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Peaks)))
    del parts
    # Only peaks that can become OK keep a refined position (a border peak is EDGE, no peak
    # is LOW_TEXTURE).
    refined = np.isfinite(pk.value) & ~pk.on_border
    pos_r, pos_c = pk.row.astype(np.float64), pk.col.astype(np.float64)
    steps = DEFAULT_STEPS if subpixel else ()
    for i in range(0, n, chunk):
        _refine_chunk(surf, level, win_rc, pk, refined, (pos_r, pos_c), slice(i, i + chunk),
                      steps)
    bad = (bad_at(level.ref_bad, tl_r, tl_c),
           bad_at(level.sec_bad, win_rc[0] + pk.row, win_rc[1] + pk.col))
    _classify(out, sel, pk, surf.ref_energy, bad, level, q)
    out.searched[sel] = True
    out.peak_dy[sel] = pred_r + pk.row - radius
    out.peak_dx[sel] = pred_c + pk.col - radius
    good = out.status[sel] == Status.OK
    out.dy[sel] = np.where(good, pred_r + pos_r - radius, np.nan)
    out.dx[sel] = np.where(good, pred_c + pos_c - radius, np.nan)


def _refine_chunk(surf: Surfaces, level: LevelImages, win_rc: tuple[np.ndarray, np.ndarray],
                  pk: Peaks, refined: np.ndarray, pos: tuple[np.ndarray, np.ndarray],
                  sl: slice, steps: tuple[float, ...]) -> None:
    """Sub-pixel peaks of the refinable nodes in the slice ``sl`` of a batch (in place).

    When most nodes of the slice qualify, the whole slice is refined on views of the
    surfaces (the others at a clipped stand-in position, results discarded), which is cheaper
    than copying the surfaces of the qualifying nodes.
    """
    idx = np.flatnonzero(refined[sl])
    if idx.size == 0:
        return
    start = sl.start
    n_here = refined[sl].size
    n_shift = surf.score.shape[1]
    if idx.size >= _REFINE_ALL_SHARE * n_here and n_shift >= 3:
        sub = subset(surf, sl)
        win = (win_rc[0][sl], win_rc[1][sl])
        at = np.arange(n_here)
        p_r, p_c = np.clip(pk.row[sl], 1, n_shift - 2), np.clip(pk.col[sl], 1, n_shift - 2)
    else:
        at = idx
        sub = subset(surf, idx + start)
        win = (win_rc[0][idx + start], win_rc[1][idx + start])
        p_r, p_c = pk.row[idx + start], pk.col[idx + start]
    r_i, c_i, peak = refine(sub, level, win, p_r, p_c, steps=steps)
    keep = refined[sl][at]
    node = at[keep] + start
    pos[0][node], pos[1][node] = r_i[keep], c_i[keep]
    pk.value[node] = np.clip(peak[keep], -1.0, 1.0)


def _match_level(level: LevelImages, centre_r: np.ndarray, centre_c: np.ndarray,
                 pred_r: np.ndarray, pred_c: np.ndarray, radius: int, *, q: _Quality,
                 subpixel: bool, batch_size: int, workers: int,
                 mask: np.ndarray | None = None, chunk: int = FFT_CHUNK) -> _LevelOut:
    """Match nodes on one level.

    Args:
        level: Prepared level images.
        centre_r: Chip centre rows ``(n,)`` (level px).
        centre_c: Chip centre columns ``(n,)`` (level px).
        pred_r: Predicted integer row offsets ``(n,)`` (level px).
        pred_c: Predicted integer column offsets ``(n,)`` (level px).
        radius: Search radius around the prediction (level px).
        q: Quality thresholds.
        subpixel: Refine to sub-pixel precision (else integer-grid quadratic fit).
        batch_size: Nodes per batch.
        workers: Threads; batches are processed in parallel.
        mask: Nodes to match ``(n,)`` bool (default: all); the others are NODATA.
        chunk: Nodes per FFT chunk within a batch (:func:`batch_plan`).

    Returns:
        Offsets in level px (NaN on failure), quality and status per node; nodes whose chip
        or search window leaves the image are EDGE, nodes outside ``mask`` or whose
        reference chip has more nodata than ``q.max_nodata_frac`` are NODATA (neither is
        correlated).
    """
    chip, (height, width) = level.chip, level.shape
    size = chip + 2 * radius
    tl_r = np.floor(centre_r - (chip - 1) / 2.0 + 0.5).astype(np.intp)
    tl_c = np.floor(centre_c - (chip - 1) / 2.0 + 0.5).astype(np.intp)
    win_r, win_c = tl_r + pred_r.astype(np.intp) - radius, tl_c + pred_c.astype(np.intp) - radius
    out = _LevelOut.empty(tl_r.size)
    inside = ((tl_r >= 0) & (tl_c >= 0) & (tl_r <= height - chip) & (tl_c <= width - chip)
              & (win_r >= 0) & (win_c >= 0) & (win_r <= height - size) & (win_c <= width - size))
    # Nodes left out by the caller, or whose reference chip is mostly nodata, are NODATA
    # without being correlated (their result could only be NODATA).
    skip = np.zeros(tl_r.size, dtype=bool) if mask is None else ~mask
    if level.ref_bad is not None:
        idx = np.flatnonzero(inside & ~skip)
        skip[idx[level.ref_bad[tl_r[idx], tl_c[idx]] > q.max_nodata_frac]] = True
    out.status[skip] = Status.NODATA
    active = np.flatnonzero(inside & ~skip)
    geom = (tl_r, tl_c, pred_r.astype(np.intp), pred_c.astype(np.intp))
    batches = [active[i:i + batch_size] for i in range(0, active.size, batch_size)]

    def run(sel: np.ndarray) -> None:
        _match_batch(level, out, sel, geom, radius, q=q, subpixel=subpixel, chunk=chunk)

    if workers > 1 and len(batches) > 1:
        # Batches write disjoint nodes; numpy and scipy.fft release the GIL in the heavy parts.
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(run, batches))
    else:
        for sel in batches:
            run(sel)
    return out


def _check_image(arr: Any, name: str) -> np.ndarray:
    """A 2-D real array as float64 (NaN = nodata), or :class:`InputError`."""
    img = np.asarray(arr)
    if img.ndim != 2:
        raise InputError(f"{name} must be a 2-D array (rows, cols); got shape {img.shape}. "
                         "Pass a single band, e.g. data[0].")
    if np.iscomplexobj(img) or not np.issubdtype(img.dtype, np.number):
        raise InputError(f"{name} must hold real numbers; got dtype {img.dtype}. Apply "
                         "pre-filters other than 'orientation' beforehand; method='oc' computes "
                         "orientations itself.")
    return img.astype(np.float64)


def _check_sizes(shape: tuple[int, int], chip: int, search: int, step: int,
                 refine_px: int) -> None:
    """Validate chip, search, step and refine sizes against the image shape."""
    for name, val, low in (("chip_size_px", chip, 4), ("step_px", step, 1),
                           ("search_px", search, 0), ("refine_px", refine_px, 1)):
        if not isinstance(val, (int, np.integer)) or val < low:
            raise InputError(f"{name} must be an integer ≥ {low}; got {val!r}.")
    if chip > min(shape):
        raise InputError(f"chip_size_px={chip} is larger than the image ({shape[0]} × "
                         f"{shape[1]} px); use a chip no larger than {min(shape)} px.")
    if chip + 2 * search > min(shape):
        raise InputError(f"the search window chip_size_px + 2 × search_px = {chip + 2 * search}"
                         f" px does not fit in the image ({shape[0]} × {shape[1]} px).",
                         hint="Reduce search_px (use initial_offsets for a known large motion).",
                         cli_hint="Reduce --search (or --chip).")


def _check_tuning(taper: float, exclusion_px: int, max_nodata_frac: float, batch_size: int,
                  workers: int) -> None:
    """Validate the keyword tuning parameters of :func:`match`."""
    if not 0.0 <= taper <= 1.0:
        raise InputError(f"taper must lie in [0, 1] (fraction of the chip); got {taper}.")
    if not 0.0 <= max_nodata_frac <= 1.0:
        raise InputError(f"max_nodata_frac must lie in [0, 1]; got {max_nodata_frac}.")
    for name, val, low in (("exclusion_px", exclusion_px, 0), ("batch_size", batch_size, 1),
                           ("workers", workers, 1)):
        if not isinstance(val, (int, np.integer)) or val < low:
            raise InputError(f"{name} must be an integer ≥ {low}; got {val!r}.")


def _level_radius(lev: int, levels: int, chip: int, search_px: int, refine_px: int) -> int:
    """Search radius (level px, FFT-friendly) of pyramid level ``lev`` (0 = full resolution)."""
    if lev == levels:
        radius = math.ceil(search_px / 2**lev) + 1 if lev else search_px
    else:
        radius = refine_px
    return _fast_radius(chip, radius)


def _searches(shape: tuple[int, int], levels: int, chip: int, search_px: int, refine_px: int,
              *, method: str, subpixel: bool,
              edge_research: bool) -> list[tuple[str, int, str]]:
    """Every search :func:`match` runs: ``(what, radius in level px, method)``."""
    out = [(f"pyramid level {lev}", _level_radius(lev, levels, chip, search_px, refine_px),
            method) for lev in range(levels, 0, -1)]
    radius = _level_radius(0, levels, chip, search_px, refine_px)
    out.append(("full resolution", radius, method))
    big = _fast_radius(chip, EDGE_RESEARCH_FACTOR * radius)
    if edge_research and chip + 2 * big <= min(shape):  # else every candidate stays EDGE
        out.append(("EDGE re-search", big, method))
    if subpixel and method == "oc":
        out.append(("NCC sub-pixel refinement", _fast_radius(chip, 1), "ncc"))
    return out


#: Peak working memory per image pixel of the image-sized arrays of :func:`match` (bytes):
#: float64 copies of the pair, the pyramid and the prepared levels with their temporaries
#: (tracemalloc on the Yahtse pair: 58 B/px NCC, 83 with nodata; orientation correlation
#: 91 and 116, with the NCC level for its sub-pixel step), with a margin.
IMAGE_BYTES_PER_PX = {"ncc": 90, "oc": 125}


def image_bytes(shape: tuple[int, int], method: str) -> int:
    """Working memory of :func:`match` that scales with the image, not the batch (bytes)."""
    return IMAGE_BYTES_PER_PX[method] * int(shape[0]) * int(shape[1])


def _plan_memory(shape: tuple[int, int], searches: list[tuple[str, int, str]], run: _Run,
                 budget: Budget) -> dict[str, Any]:
    """Size every search's batches from the budget, or refuse up front; return the report."""
    fixed = image_bytes(shape, run.prep["method"])
    if fixed >= budget.bytes:
        raise MemoryBudgetError(
            f"the prepared {shape[0]} × {shape[1]} px images alone need about "
            f"{format_bytes(fixed)} of working memory, more than the memory budget of "
            f"{format_bytes(budget.bytes)} ({budget.source}). Raise max_memory "
            "(--max-memory) or crop the images.")
    report: list[dict[str, Any]] = []
    chip = run.prep["chip"]
    for what, radius, method in searches:
        per_batch, per_chunk = node_bytes(chip, radius, method)  # type: ignore[arg-type]
        one = radius_bytes(chip, radius) + run.workers * (per_batch + per_chunk)
        if one > run.memory:
            par = f" ({run.workers} batches at a time: workers)" if run.workers > 1 else ""
            raise MemoryBudgetError(
                f"matching does not fit the memory budget of {format_bytes(budget.bytes)} "
                f"({budget.source}): the {what} search with a {chip} px chip ±{radius} px "
                f"(window {chip + 2 * radius} px) needs about {format_bytes(one)} for a "
                f"single node{par} on top of {format_bytes(fixed)} for the {shape[0]} × "
                f"{shape[1]} px images, {format_bytes(fixed + one)} in all. {_MEMORY_FIX}")
        plan = run.batching(radius, method)
        peak = (radius_bytes(chip, radius)
                + run.workers * (plan["batch_size"] * per_batch + plan["chunk"] * per_chunk))
        report.append({"search": what, "radius_px": radius, **plan,
                       "estimated_bytes": fixed + peak})
    return {**budget.as_dict(), "image_bytes": fixed, "searches": report}


def check_memory(shape: tuple[int, int], *, chip_size_px: int = 32, search_px: int = 32,
                 method: Method = "ncc", levels: int | None = None, refine_px: int = 4,
                 subpixel: bool = True, edge_research: bool = False, batch_size: int = 1024,
                 workers: int = 1, max_memory: str | int | Budget | None = None
                 ) -> dict[str, Any]:
    """Check, without matching, that :func:`match` on images of ``shape`` fits ``max_memory``.

    The arguments are those of :func:`match` (same defaults). Cheap: callers run it before
    reading or pre-filtering whole images, so that work that cannot fit is refused at once.

    Args:
        shape: Image shape ``(rows, cols)`` (px).
        chip_size_px: See :func:`match`.
        search_px: See :func:`match`.
        method: See :func:`match`.
        levels: See :func:`match`.
        refine_px: See :func:`match`.
        subpixel: See :func:`match`.
        edge_research: See :func:`match`.
        batch_size: See :func:`match`.
        workers: See :func:`match`.
        max_memory: See :func:`match`.

    Returns:
        The memory plan that :func:`match` reports in ``settings["memory"]`` (budget, image
        bytes, batch and chunk sizes per search).

    Raises:
        InputError: Invalid sizes or names.
        MemoryBudgetError: Some search cannot fit one node.
    """
    budget = resolve_budget(max_memory)
    if method not in METHODS:
        raise InputError(f"method must be one of {METHODS}; got {method!r}.")
    _check_sizes(shape, chip_size_px, search_px, 1, refine_px)
    _check_tuning(0.0, 0, 0.0, batch_size, workers)
    if levels is None:
        levels = _auto_levels(shape, chip_size_px, search_px, refine_px)
    if not isinstance(levels, (int, np.integer)) or levels < 0:
        raise InputError(f"levels must be an integer ≥ 0; got {levels!r}.")
    run = _Run(q=_Quality(0.0, 0.0, 0.0, 0, 0.0), prep={"chip": chip_size_px, "method": method},
               batch_size=batch_size, workers=workers,
               memory=budget.bytes - image_bytes(shape, method))
    return _plan_memory(shape, _searches(shape, levels, chip_size_px, search_px, refine_px,
                                         method=method, subpixel=subpixel,
                                         edge_research=edge_research), run, budget)


def _auto_levels(shape: tuple[int, int], chip: int, search: int, refine_px: int) -> int:
    """Pyramid depth: coarsest radius ≤ ~9 level px, its window ≤ 3/4 of the level image."""
    if search <= max(2 * refine_px, 8):
        return 0
    levels = max(1, math.ceil(math.log2(search / (_MAX_COARSE_RADIUS - 1))))
    while levels > 0:
        radius = _fast_radius(chip, math.ceil(search / 2**levels) + 1)
        if chip + 2 * radius <= 0.75 * min(shape) / 2**levels:
            break
        levels -= 1
    return levels


def _node_mask(nodes: Any, grid_shape: tuple[int, int]) -> np.ndarray | None:
    """The ``nodes`` argument of :func:`match` as a flat bool mask, or ``None`` for all."""
    if nodes is None:
        return None
    mask = np.asarray(nodes)
    if mask.dtype != bool or mask.shape != grid_shape:
        raise InputError(f"nodes must be a boolean mask of the node grid shape {grid_shape} "
                         f"(see node_grid); got {mask.dtype} {mask.shape}.")
    return mask.ravel()


def _initial(initial_offsets: Any, grid_shape: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Initial offsets (px) on the node grid, NaN filled; zeros when not given."""
    if initial_offsets is None:
        return np.zeros(grid_shape), np.zeros(grid_shape)
    try:
        dy0, dx0 = (np.asarray(a, dtype=np.float64) for a in initial_offsets)
    except (TypeError, ValueError) as err:
        raise InputError("initial_offsets must be a pair (dy_px, dx_px) of arrays on the node "
                         f"grid {grid_shape}.") from err
    if dy0.shape != grid_shape or dx0.shape != grid_shape:
        raise InputError(f"initial_offsets must have the node grid shape {grid_shape} (see "
                         f"node_grid); got {dy0.shape} and {dx0.shape}.")
    return _predict.fill_nearest(dy0), _predict.fill_nearest(dx0)


def _coarse_pass(level: LevelImages, scale: int, rows: np.ndarray, cols: np.ndarray,
                 pred: tuple[np.ndarray, np.ndarray], radius: int, stride: int, *,
                 run: _Run) -> tuple[np.ndarray, np.ndarray]:
    """Match a sparse node subset on a coarse level; return the new full-grid prediction."""
    ri = _predict.coarse_indices(rows.size, stride)
    ci = _predict.coarse_indices(cols.size, stride)
    cr, cc = np.meshgrid(rows[ri] / scale, cols[ci] / scale, indexing="ij")
    pr = np.rint(pred[0][np.ix_(ri, ci)] / scale)
    pc = np.rint(pred[1][np.ix_(ri, ci)] / scale)
    out = _match_level(level, cr.ravel(), cc.ravel(), pr.ravel(), pc.ravel(), radius, q=run.q,
                       subpixel=False, workers=run.workers, **run.batching(radius, level.method))
    n_ok = int((out.status == Status.OK).sum())
    log.debug("level scale %d: %d of %d coarse nodes matched", scale, n_ok, out.status.size)
    if n_ok == 0:
        return pred
    shape = (ri.size, ci.size)
    dy = _predict.clean(out.dy.reshape(shape) * scale)
    dx = _predict.clean(out.dx.reshape(shape) * scale)
    grid = (rows.size, cols.size)
    return _predict.to_fine(dy, ri, ci, grid), _predict.to_fine(dx, ri, ci, grid)


def _refine_with_ncc(out: _LevelOut, level: LevelImages,
                     centres: tuple[np.ndarray, np.ndarray], *, run: _Run) -> None:
    """Sub-pixel positions of orientation-correlation peaks from the NCC of the images.

    Unit orientation vectors are not band-limited (normalising the gradient is non-linear), so
    the interpolated orientation correlation pixel-locks (≈ 0.05 px bias on Landsat-8 pan).
    The integer peak found by orientation correlation is kept; its sub-pixel position comes
    from the NCC searched ±2 px around it, where that NCC peak is within 1 px (in place).
    """
    sel = np.flatnonzero(out.status == Status.OK)
    if sel.size == 0:
        return
    loose = _Quality(-np.inf, -np.inf, -np.inf, 1, np.inf)
    radius = _fast_radius(level.chip, 1)
    ncc = _match_level(level, centres[0][sel], centres[1][sel], np.rint(out.dy[sel]),
                       np.rint(out.dx[sel]), radius, q=loose, subpixel=True,
                       workers=run.workers, **run.batching(radius, "ncc"))
    near = ((ncc.status == Status.OK) & (np.abs(ncc.dy - out.dy[sel]) <= 1.0)
            & (np.abs(ncc.dx - out.dx[sel]) <= 1.0))
    out.dy[sel[near]] = ncc.dy[near]
    out.dx[sel[near]] = ncc.dx[near]


def match(reference: np.ndarray, secondary: np.ndarray, *, chip_size_px: int = 32,
          search_px: int = 32, step_px: int = 8, method: Method = "ncc",
          initial_offsets: tuple[np.ndarray, np.ndarray] | None = None,
          levels: int | None = None, refine_px: int = 4, taper: float = 0.1,
          subpixel: bool = True, min_peak_corr: float = 0.0, min_snr: float = 0.0,
          min_peak_ratio: float = 0.0, exclusion_px: int = 2, max_nodata_frac: float = 0.2,
          min_texture: float = 0.0, batch_size: int = 1024, workers: int = 1,
          edge_research: bool = False, nodes: np.ndarray | None = None,
          max_memory: str | int | Budget | None = None) -> MatchResult:
    """Match ``reference`` against ``secondary`` on a regular node grid.

    See the module docstring for the sign convention and the algorithm.

    Args:
        reference: ``(rows, cols)`` real array, NaN = nodata (pre-filtered as wanted).
        secondary: Same shape as ``reference``.
        chip_size_px: Chip (template) side ``C`` (px), 4 ≤ C ≤ min(image shape).
        search_px: Largest offset searched in each direction around the initial offsets (px).
        step_px: Node spacing (px); the grid is :func:`node_grid`.
        method: ``"ncc"`` (zero-mean normalised cross-correlation) or ``"oc"`` (orientation
            correlation; orientations are computed from the images at every level).
        initial_offsets: ``(dy_px, dx_px)`` arrays on the node grid (px, NaN allowed) around
            which to search; zeros by default.
        levels: Pyramid depth ``L`` (0 = one exhaustive search ``±search_px`` at full
            resolution); default: just enough halvings for a coarsest radius ≤ 9 px.
        refine_px: Search radius (px of each level) around the prediction on finer levels.
        taper: Fraction of the chip (per axis) in the cosine flanks of the Tukey weights
            (0 = box, 1 = Hann). A little taper keeps the band-limited sub-pixel interpolation
            accurate near the chip border (for a 32 px chip, 0.1 weights the outermost pixel
            ring by 0.66); more taper shrinks the effective chip and raises the noise on real
            pairs. 0.1 was chosen on the Yahtse Landsat-8 pair: stable-ground NMAD about
            0.10 / 0.086 px (dy / dx), and on real chips 90 % of nodes within 0.025 px of a
            direct per-chip NCC.
        subpixel: Refine peaks to sub-pixel precision (else integer offsets + quadratic fit).
        min_peak_corr: Peaks below this correlation are LOW_QUALITY.
        min_snr: Peaks with a lower SNR are LOW_QUALITY.
        min_peak_ratio: Peaks with a lower peak ratio are LOW_QUALITY.
        exclusion_px: Half-width (px) of the zone around the peak ignored when finding the
            second peak.
        max_nodata_frac: Largest nodata fraction in the reference chip or the matched secondary
            chip; above it the node is NODATA.
        min_texture: Chips whose weighted standard deviation (image units) is at or below
            this are LOW_TEXTURE (a floor of 1e-5 × the image scale always applies).
        batch_size: Largest number of nodes per vectorised batch; batches are smaller where
            ``max_memory`` needs it. The FFTs run on chunks of up to 256 nodes inside a batch.
            Statuses do not depend on it; offsets and scores only at float32 rounding level
            (≲ 1e-4 px; some BLAS kernels block the inverse-DFT products by row count).
        workers: Threads; batches of nodes are matched in parallel (results do not depend on
            it).
        edge_research: Re-search nodes whose peak lies on the border of the finest search
            with twice the radius, around the median offset of their valid neighbours (step
            5 of the module docstring; on by default in the pipeline, ``TrackingParams``);
            ``settings["edge_research"]`` reports how many were recovered. It costs about
            1.5 node matches per EDGE node (on the Yahtse pair 4–8 % of the nodes, +8–15 %
            time).
        nodes: Boolean ``(n_rows, n_cols)`` mask of the nodes to match (default: all), e.g.
            the glacier and a sample of stable ground; the others are NODATA with NaN offsets
            and cost nothing at the finest level (coarse levels still predict everywhere).
        max_memory: Budget for the working memory of matching (bytes, or a size such as
            ``"4GB"``, see :func:`glacierkit.memory.parse_memory`): what ``match`` allocates
            on top of what the process holds when it is called. The image-sized arrays
            (:func:`image_bytes`) are counted first; the rest sizes the batches and FFT
            chunks of every search (pyramid levels, EDGE re-search, ``workers`` batches at a
            time) from a per-node model (:func:`node_bytes`). Default: half the available
            memory (:func:`glacierkit.memory.default_budget`). Results depend on it only as
            on ``batch_size``.
            ``settings["memory"]`` reports the budget, the batch sizes and the process RSS
            when matching started.

    Returns:
        Offsets (px), quality and status on the node grid.

    Raises:
        InputError: Invalid arrays or parameters (e.g. chip or search window larger than the
            image). Chip content (nodata, no texture) never raises.
        MemoryBudgetError: Not even one node of some search fits ``max_memory`` (raised
            before any matching); the message names the parameters to change.
    """
    rss_start = _process_rss()
    budget = resolve_budget(max_memory)
    ref, sec = _check_pair(reference, secondary, method)
    _check_sizes(ref.shape, chip_size_px, search_px, step_px, refine_px)
    _check_tuning(taper, exclusion_px, max_nodata_frac, batch_size, workers)
    if levels is None:
        levels = _auto_levels(ref.shape, chip_size_px, search_px, refine_px)
    if not isinstance(levels, (int, np.integer)) or levels < 0:
        raise InputError(f"levels must be an integer ≥ 0; got {levels!r}.")
    rows, cols = node_grid(ref.shape, step_px=step_px, chip_size_px=chip_size_px)
    mask = _node_mask(nodes, (rows.size, cols.size))
    run = _Run(q=_Quality(min_peak_corr, min_snr, min_peak_ratio, exclusion_px,
                          max_nodata_frac),
               prep={"chip": chip_size_px, "taper": taper, "method": method,
                     "min_texture": min_texture},
               batch_size=batch_size, workers=workers, edge_research=edge_research,
               memory=budget.bytes - image_bytes(ref.shape, method))
    searches = _searches(ref.shape, levels, chip_size_px, search_px, refine_px, method=method,
                         subpixel=subpixel, edge_research=edge_research)
    memory = _plan_memory(ref.shape, searches, run, budget)
    memory["process_rss_at_start_bytes"] = rss_start
    pred = _coarse_to_fine(ref, sec, rows, cols, _initial(initial_offsets, (rows.size, cols.size)),
                           levels, run, search_px=search_px, refine_px=refine_px,
                           step_px=step_px)
    radius = _fast_radius(chip_size_px, refine_px if levels else search_px)
    out, edges = _finest_level(ref, sec, rows, cols, pred, radius, run, subpixel=subpixel,
                               mask=mask)
    settings = {"chip_size_px": chip_size_px, "search_px": search_px, "step_px": step_px,
                "method": method, "levels": levels, "refine_px": refine_px,
                "final_radius_px": radius, "taper": taper, "subpixel": subpixel,
                "min_peak_corr": min_peak_corr, "min_snr": min_snr,
                "min_peak_ratio": min_peak_ratio, "exclusion_px": exclusion_px,
                "max_nodata_frac": max_nodata_frac, "min_texture": min_texture,
                "edge_research": edges,
                "nodes_masked": 0 if mask is None else int(mask.size - mask.sum()),
                "memory": memory}
    return _result(out, rows, cols, settings)


def _process_rss() -> int:
    """Resident set size of the current process (bytes)."""
    import psutil

    return int(psutil.Process().memory_info().rss)


@dataclass(frozen=True)
class _Run:
    """Settings shared by every level of one :func:`match` call."""

    q: _Quality
    prep: dict[str, Any]
    batch_size: int
    workers: int
    edge_research: bool = False
    #: Working memory for the batches of all workers together (bytes).
    memory: int = 1 << 62
    #: ``(radius, method)`` → ``{"batch_size", "chunk"}``, filled by :meth:`batching`.
    plans: dict[tuple[int, str], dict[str, int]] = field(default_factory=dict)

    def batching(self, radius: int, method: str) -> dict[str, int]:
        """Batch and FFT-chunk sizes for a search radius within the budget (cached)."""
        key = (int(radius), method)
        if key not in self.plans:
            n, chunk = batch_plan(self.memory, self.prep["chip"], key[0], method,  # type: ignore[arg-type]
                                  limit=self.batch_size, workers=self.workers)
            self.plans[key] = {"batch_size": n, "chunk": chunk}
        return self.plans[key]


def _check_pair(reference: Any, secondary: Any, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate the image pair and the method name; return float64 arrays."""
    ref = _check_image(reference, "reference")
    sec = _check_image(secondary, "secondary")
    if ref.shape != sec.shape:
        raise InputError(f"reference and secondary must have the same shape; got {ref.shape} "
                         f"and {sec.shape}. Align them on one grid first.")
    if method not in METHODS:
        raise InputError(f"method must be one of {METHODS}; got {method!r}.")
    return ref, sec


def _coarse_to_fine(ref: np.ndarray, sec: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                    pred: tuple[np.ndarray, np.ndarray], levels: int, run: _Run, *,
                    search_px: int, refine_px: int,
                    step_px: int) -> tuple[np.ndarray, np.ndarray]:
    """Offsets predicted for every node by the pyramid levels ``levels .. 1`` (full-res px)."""
    pyramid = [(ref, sec)]
    for _ in range(levels):
        pyramid.append((pyr_down(pyramid[-1][0]), pyr_down(pyramid[-1][1])))
    chip = run.prep["chip"]
    for lev in range(levels, 0, -1):
        scale = 2**lev
        radius = _level_radius(lev, levels, chip, search_px, refine_px)
        stride = max(1, round(scale * chip / step_px))
        level = prepare_level(*pyramid[lev], **run.prep)
        pred = _coarse_pass(level, scale, rows, cols, pred, radius, stride, run=run)
    return pred


def _finest_level(ref: np.ndarray, sec: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                  pred: tuple[np.ndarray, np.ndarray], radius: int, run: _Run, *,
                  subpixel: bool, mask: np.ndarray | None = None
                  ) -> tuple[_LevelOut, dict[str, Any]]:
    """Match every node at full resolution ``±radius`` px around its predicted offset.

    Then re-search the nodes whose peak lay on the border (see :func:`_research_edges`).
    """
    method = run.prep["method"]
    level = prepare_level(ref, sec, **run.prep)
    cr, cc = np.meshgrid(rows, cols, indexing="ij")
    centres = (cr.ravel(), cc.ravel())
    sub = subpixel and method == "ncc"
    out = _match_level(level, *centres, np.rint(pred[0]).ravel(), np.rint(pred[1]).ravel(),
                       radius, q=run.q, subpixel=sub, workers=run.workers, mask=mask,
                       **run.batching(radius, method))
    edges: dict[str, Any] = {"enabled": run.edge_research}
    if run.edge_research:
        edges.update(_research_edges(level, out, centres, (rows.size, cols.size), radius, run,
                                     subpixel=sub))
    if subpixel and method == "oc":
        ncc_level = prepare_level(ref, sec, **{**run.prep, "method": "ncc"})
        _refine_with_ncc(out, ncc_level, centres, run=run)
    return out, edges


def _research_centres(out: _LevelOut, cand: np.ndarray,
                      grid_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre of the re-search of each candidate node (px) and whether neighbours gave it.

    The median of the valid offsets among the 8 neighbours when at least
    :data:`EDGE_MIN_NEIGHBOURS` are valid, otherwise the border peak itself.
    """
    dy = out.dy.reshape(grid_shape)
    dx = out.dx.reshape(grid_shape)
    valid = np.pad(np.isfinite(dy), 1).astype(np.int16)
    rows, cols = grid_shape
    count = sum(valid[i:i + rows, j:j + cols] for i in range(3) for j in range(3)).ravel()
    med_dy = _predict.nan_median3(dy).ravel()[cand]
    med_dx = _predict.nan_median3(dx).ravel()[cand]
    use = count[cand] >= EDGE_MIN_NEIGHBOURS
    return (np.where(use, med_dy, out.peak_dy[cand]), np.where(use, med_dx, out.peak_dx[cand]),
            use)


def _research_edges(level: LevelImages, out: _LevelOut, centres: tuple[np.ndarray, np.ndarray],
                    grid_shape: tuple[int, int], radius: int, run: _Run, *,
                    subpixel: bool) -> dict[str, Any]:
    """Re-search EDGE nodes with a larger radius; keep a result only if it is OK (in place).

    A node whose integer peak lay on the border of its ``±radius`` search is searched again
    ``±EDGE_RESEARCH_FACTOR · radius`` px around the median offset of its valid neighbours
    (or around the border peak when fewer than :data:`EDGE_MIN_NEIGHBOURS` are valid). The
    new match replaces the EDGE status only when its peak is interior and passes every
    quality threshold (status OK); nodes whose larger window leaves the image stay EDGE.

    Returns:
        ``{"candidates", "recovered", "centred_on_neighbours", "radius_px"}``.
    """
    cand = np.flatnonzero((out.status == Status.EDGE) & out.searched)
    big = _fast_radius(level.chip, EDGE_RESEARCH_FACTOR * radius)
    info: dict[str, Any] = {"candidates": int(cand.size), "recovered": 0,
                            "centred_on_neighbours": 0, "radius_px": big}
    if cand.size == 0 or level.chip + 2 * big > min(level.shape):
        return info  # no node to re-search, or no window of this size fits in the image
    c_dy, c_dx, use = _research_centres(out, cand, grid_shape)
    res = _match_level(level, centres[0][cand], centres[1][cand], np.rint(c_dy), np.rint(c_dx),
                       big, q=run.q, subpixel=subpixel, workers=run.workers,
                       **run.batching(big, level.method))
    ok = res.status == Status.OK
    out.take(res, cand[ok], np.flatnonzero(ok))
    info.update(recovered=int(ok.sum()), centred_on_neighbours=int(use.sum()))
    log.debug("EDGE re-search ±%d px: %d of %d nodes recovered", big, info["recovered"],
              cand.size)
    return info


def _result(out: _LevelOut, rows: np.ndarray, cols: np.ndarray,
            settings: dict[str, Any]) -> MatchResult:
    """Reshape per-node level results into a :class:`MatchResult`."""
    shape = (rows.size, cols.size)

    def grid(a: np.ndarray) -> np.ndarray:
        return a.reshape(shape).astype(np.float32)

    return MatchResult(grid(out.dy), grid(out.dx), grid(out.peak), grid(out.snr),
                       grid(out.ratio), out.status.reshape(shape), rows, cols, settings)
