"""Removal of high-frequency noise from offset fields on the node grid.

Every function takes the two components ``dx, dy`` (2-D float arrays of one shape, NaN =
invalid) and the ``uint8`` status band (:class:`~glacierkit.velocity.status.Status`), and
returns a :class:`FilterResult` with **new** arrays. The functions are agnostic to what the
components are (raw pixel offsets ``dx_px``/``dy_px``, or map components); thresholds named
``*_px`` are in the units of ``dx, dy`` — pixels for raw offsets, which is where the
pipeline filters. Sizes named ``*_nodes`` count nodes of the grid.

A node is **valid** when its status is ``OK`` or ``FILLED`` and both components are finite.
Each step either keeps a valid node, invalidates it (NaN + ``FILTERED``, or ``LOW_QUALITY``
for the quality thresholds), or — gap filling only — turns an invalid node into a valid one
flagged ``FILLED``. Optional smoothing changes the values of valid nodes and nothing else.
Inputs are normalised first: a node whose status is not valid gets NaN offsets, and a node
with a valid status but a NaN component becomes ``FILTERED`` (counted in the log).

Rules (``N(p)`` is the ``size × size`` window of nodes centred on ``p``, clipped at the grid
border, counting only valid nodes, ``p`` itself included):

* **Quality** (:func:`quality_filter`): ``LOW_QUALITY`` where peak correlation, SNR or peak
  ratio is below its threshold, or is NaN.
* **NDC** (:func:`ndc_filter`), after autoRIFT's normalised displacement coherence
  (Gardner et al. 2018, doi:10.5194/tc-12-521-2018; ``autoRIFT.DISP_FILT.filtDisp``): for each
  component ``c`` count ``k_c(p) = #{q ∈ N(p) : |c_q − c_p| ≤ tolerance_px}``; ``p`` is kept when
  ``k_dx(p) ≥ f · size²`` **and** ``k_dy(p) ≥ f · size²`` with ``f = min_coherent_fraction``
  (autoRIFT: 8/25 with a 5 × 5 window and a tolerance of 0.2 × the search range, which is
  what "normalised" refers to; here the tolerance is given directly). Rejected nodes are
  removed and the test is repeated ``iterations`` times. Because the count is absolute, it
  also removes isolated nodes with too few valid neighbours.
* **Median / MAD** (:func:`mad_filter`): with ``m_c`` the median and
  ``s_c = 1.4826 · median|c_q − m_c|`` (NMAD) of component ``c`` over ``N(p)``, ``p`` is
  removed when ``|c_p − m_c| > max(n_nmad · s_c, min_threshold_px)`` for either component.
  Nodes with fewer than ``min_valid_nodes`` valid nodes in ``N(p)`` are kept (no judgement
  possible). Repeated ``iterations`` times (autoRIFT: MAD scalar 4 on the raw MAD).
* **Small clumps** (:func:`remove_small_clumps`): connected components of valid nodes
  (4- or 8-connectivity) with fewer than ``min_size_nodes`` nodes are removed.
* **Smoothing** (:func:`smooth`): NaN-aware median over ``N(p)``, or Gaussian normalised
  convolution ``Σ G·v / Σ G`` over valid nodes; evaluated at valid nodes only.
* **Gap filling** (:func:`fill_gaps`): each 4-connected component of invalid nodes (a hole)
  is filled when every node lies within ``max_distance_nodes`` (Euclidean) of a valid node,
  it has at most ``max_hole_nodes`` nodes, it touches a valid node, and (unless
  ``fill_edges``) it does not touch the grid border. Values solve the discrete Laplace
  equation inside the hole with the surrounding valid nodes as boundary values (harmonic
  inpainting: linear fields are reproduced exactly); filled nodes are flagged ``FILLED``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.ndimage as ndi
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from glacierkit.errors import InputError
from glacierkit.velocity.corrections.base import NMAD_FACTOR
from glacierkit.velocity.status import STATUS_DTYPE, Status

log = logging.getLogger(__name__)

_VALID = (int(Status.OK), int(Status.FILLED))
#: Nodes processed at once by the moving-window filters (bounds memory: ~50 MB).
_CHUNK_NODES = 1 << 18


# ----------------------------------------------------------------------------- configs
def _check_int(name: str, v: Any, lo: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < lo:
        raise InputError(f"{name} must be an integer ≥ {lo}, got {v!r}.")


def _check_pos(name: str, v: Any, *, allow_zero: bool = False) -> None:
    ok = isinstance(v, int | float | np.number) and not isinstance(v, bool) \
        and math.isfinite(v) and (v >= 0 if allow_zero else v > 0)
    if not ok:
        what = "≥ 0" if allow_zero else "> 0"
        raise InputError(f"{name} must be a finite number {what}, got {v!r}.")


def _check_window(name: str, v: Any) -> None:
    _check_int(name, v, 1)
    if v % 2 == 0:
        raise InputError(f"{name} must be odd (a window centred on the node), got {v}.")


@dataclass(frozen=True)
class QualityThresholds:
    """Per-node quality thresholds (None = not applied).

    Attributes:
        min_peak_corr: Lowest peak correlation (unitless, ``[-1, 1]``).
        min_snr: Lowest SNR, peak / mean |correlation| (unitless).
        min_peak_ratio: Lowest ratio of the first to the second peak (unitless).
    """

    min_peak_corr: float | None = None
    min_snr: float | None = None
    min_peak_ratio: float | None = None

    def __post_init__(self) -> None:
        for name in ("min_peak_corr", "min_snr", "min_peak_ratio"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int | float | np.number)
                                      and not isinstance(v, bool) and math.isfinite(v)):
                raise InputError(f"{name} must be a finite number or None, got {v!r}.")


@dataclass(frozen=True)
class NDCConfig:
    """Neighbour-consistency (NDC) filter settings; see :func:`ndc_filter`.

    Attributes:
        size_nodes: Window side (nodes, odd).
        tolerance_px: Largest difference to the centre node that counts as coherent (units
            of ``dx, dy``; px for raw offsets). Scale it with the velocity gradients
            expected between neighbouring nodes.
        min_coherent_fraction: Fraction of ``size_nodes²`` that must be coherent, ``(0, 1]``.
        iterations: Passes (rejected nodes are removed between passes).
    """

    size_nodes: int = 5
    tolerance_px: float = 2.0
    min_coherent_fraction: float = 8 / 25
    iterations: int = 3

    def __post_init__(self) -> None:
        _check_window("size_nodes", self.size_nodes)
        _check_pos("tolerance_px", self.tolerance_px)
        _check_pos("min_coherent_fraction", self.min_coherent_fraction)
        if self.min_coherent_fraction > 1:
            raise InputError("min_coherent_fraction must be ≤ 1, got "
                             f"{self.min_coherent_fraction}.")
        _check_int("iterations", self.iterations, 1)


@dataclass(frozen=True)
class MADConfig:
    """Moving-window median / MAD outlier filter settings; see :func:`mad_filter`.

    Attributes:
        size_nodes: Window side (nodes, odd).
        n_nmad: Rejection threshold in NMADs of the window (unitless).
        min_threshold_px: Floor of the threshold (units of ``dx, dy``), so a locally
            noise-free field does not reject sub-pixel noise.
        min_valid_nodes: Fewest valid nodes in the window (centre included) to judge.
        iterations: Passes.
    """

    size_nodes: int = 5
    n_nmad: float = 4.0
    min_threshold_px: float = 0.1
    min_valid_nodes: int = 5
    iterations: int = 2

    def __post_init__(self) -> None:
        _check_window("size_nodes", self.size_nodes)
        _check_pos("n_nmad", self.n_nmad)
        _check_pos("min_threshold_px", self.min_threshold_px, allow_zero=True)
        _check_int("min_valid_nodes", self.min_valid_nodes, 2)
        _check_int("iterations", self.iterations, 1)


@dataclass(frozen=True)
class ClumpConfig:
    """Small-clump removal settings; see :func:`remove_small_clumps`.

    Attributes:
        min_size_nodes: Clumps with fewer valid nodes than this are removed.
        connectivity: 4 (edges) or 8 (edges and corners).
    """

    min_size_nodes: int = 10
    connectivity: Literal[4, 8] = 8

    def __post_init__(self) -> None:
        _check_int("min_size_nodes", self.min_size_nodes, 1)
        if self.connectivity not in (4, 8):
            raise InputError(f"connectivity must be 4 or 8, got {self.connectivity!r}.")


@dataclass(frozen=True)
class SmoothConfig:
    """Smoothing settings; see :func:`smooth`.

    Attributes:
        method: ``"median"`` (window ``size_nodes``) or ``"gaussian"`` (``sigma_nodes``).
        size_nodes: Median window side (nodes, odd).
        sigma_nodes: Gaussian standard deviation (nodes); truncated at 4 σ.
    """

    method: Literal["median", "gaussian"] = "median"
    size_nodes: int = 3
    sigma_nodes: float = 1.0

    def __post_init__(self) -> None:
        if self.method not in ("median", "gaussian"):
            raise InputError(f"method must be 'median' or 'gaussian', got {self.method!r}.")
        _check_window("size_nodes", self.size_nodes)
        _check_pos("sigma_nodes", self.sigma_nodes)


@dataclass(frozen=True)
class FillConfig:
    """Gap-filling settings; see :func:`fill_gaps`.

    Attributes:
        max_distance_nodes: A hole is filled only if all its nodes are within this
            Euclidean distance (nodes) of a valid node.
        max_hole_nodes: Largest hole filled (nodes); None = no limit beyond the distance.
        fill_edges: Also fill holes that touch the grid border.
    """

    max_distance_nodes: float = 2.0
    max_hole_nodes: int | None = None
    fill_edges: bool = False

    def __post_init__(self) -> None:
        _check_pos("max_distance_nodes", self.max_distance_nodes)
        if self.max_hole_nodes is not None:
            _check_int("max_hole_nodes", self.max_hole_nodes, 1)


@dataclass(frozen=True)
class FilterConfig:
    """The filter chain of :func:`filter_field`; a step set to None is skipped.

    Steps run in this order: quality → ndc → mad → clumps → smooth → fill.
    Defaults: no quality thresholds (the matcher applies its own), NDC, MAD and clump removal
    on, smoothing and gap filling off.
    """

    quality: QualityThresholds | None = None
    ndc: NDCConfig | None = field(default_factory=NDCConfig)
    mad: MADConfig | None = field(default_factory=MADConfig)
    clumps: ClumpConfig | None = field(default_factory=ClumpConfig)
    smooth: SmoothConfig | None = None
    fill: FillConfig | None = None

    def __post_init__(self) -> None:
        kinds = {"quality": QualityThresholds, "ndc": NDCConfig, "mad": MADConfig,
                 "clumps": ClumpConfig, "smooth": SmoothConfig, "fill": FillConfig}
        for name, kind in kinds.items():
            v = getattr(self, name)
            if v is not None and not isinstance(v, kind):
                raise InputError(f"FilterConfig.{name} must be a {kind.__name__} or None, "
                                 f"got {type(v).__name__}.")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly dict (None for skipped steps)."""
        return asdict(self)


# ----------------------------------------------------------------------------- result
@dataclass(frozen=True)
class FilterResult:
    """Filtered field (new arrays) and what each step did.

    Attributes:
        dx: First component ``(n_rows, n_cols)``, input float dtype, NaN where not valid.
        dy: Second component, same.
        status: Status codes ``(n_rows, n_cols)``, uint8.
        log: One dict per step: ``step``, ``removed`` (nodes invalidated), ``filled``,
            ``valid`` (valid nodes after the step) and the step's settings.
    """

    dx: np.ndarray
    dy: np.ndarray
    status: np.ndarray
    log: tuple[dict[str, Any], ...] = ()

    @property
    def valid(self) -> np.ndarray:
        """Boolean mask of valid nodes (status OK or FILLED)."""
        return np.isin(self.status, _VALID)


# ----------------------------------------------------------------------------- helpers
def _prepare(dx: Any, dy: Any, status: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                     int, np.dtype]:
    """Validated float64 copies, uint8 status, inconsistent count, output dtype."""
    dx, dy, st = np.asarray(dx), np.asarray(dy), np.asarray(status)
    for name, a in (("dx", dx), ("dy", dy), ("status", st)):
        if a.ndim != 2 or a.size == 0:
            raise InputError(f"{name} must be a non-empty 2-D array, got shape {a.shape}.")
    if not dx.shape == dy.shape == st.shape:
        raise InputError(f"dx, dy and status must have one shape, got {dx.shape}, {dy.shape} "
                         f"and {st.shape}.")
    for name, a in (("dx", dx), ("dy", dy)):
        if not np.issubdtype(a.dtype, np.floating):
            raise InputError(f"{name} must be a float array (NaN = invalid), got {a.dtype}.")
    if not np.issubdtype(st.dtype, np.integer) or st.min() < 0 or st.max() > max(Status):
        raise InputError("status must hold integer Status codes 0–"
                         f"{int(max(Status))}, got dtype {st.dtype}.")
    out_dtype = np.result_type(dx.dtype, dy.dtype)
    st = st.astype(STATUS_DTYPE)
    x, y = dx.astype(np.float64), dy.astype(np.float64)
    claimed = np.isin(st, _VALID)
    finite = np.isfinite(x) & np.isfinite(y)
    bad = claimed & ~finite
    st[bad] = Status.FILTERED
    x[~(claimed & finite)] = np.nan
    y[~(claimed & finite)] = np.nan
    return x, y, st, int(bad.sum()), out_dtype


def _valid(x: np.ndarray, st: np.ndarray) -> np.ndarray:
    return np.isin(st, _VALID) & np.isfinite(x)


def _result(x: np.ndarray, y: np.ndarray, st: np.ndarray, dtype: np.dtype, step: str,
            *, removed: int = 0, filled: int = 0, inconsistent: int = 0,
            settings: dict[str, Any] | None = None) -> FilterResult:
    entry: dict[str, Any] = {"step": step, "removed": removed, "filled": filled,
                             "valid": int(np.isin(st, _VALID).sum())}
    if inconsistent:
        entry["inconsistent_input"] = inconsistent
    entry.update(settings or {})
    log.debug("filter %s: %s", step, entry)
    return FilterResult(x.astype(dtype), y.astype(dtype), st, (entry,))


def _remove(x: np.ndarray, y: np.ndarray, st: np.ndarray, reject: np.ndarray,
            code: Status = Status.FILTERED) -> int:
    """Invalidate ``reject`` in place (these are the function's own copies)."""
    x[reject] = np.nan
    y[reject] = np.nan
    st[reject] = code
    return int(reject.sum())


def _gather(a: np.ndarray, size: int, sel: np.ndarray) -> Iterator[tuple[slice, np.ndarray,
                                                                    np.ndarray]]:
    """Windows of ``a`` around the nodes ``sel``, in chunks.

    Yields ``(chunk, centres, windows)``: ``chunk`` slices the flat list of selected nodes
    (``np.nonzero(sel)`` order), ``centres`` ``(n,)`` and ``windows`` ``(n, size²)``, with NaN
    outside the grid.
    """
    h = size // 2
    p = np.pad(a, h, mode="constant", constant_values=np.nan)
    wp = p.shape[1]
    flat = p.ravel()
    centre_idx = np.flatnonzero(sel)
    rr, cc = np.divmod(centre_idx, a.shape[1])
    start = rr * wp + cc                      # top-left of each window in the padded array
    offsets = (np.arange(size)[:, None] * wp + np.arange(size)[None, :]).ravel()
    a_flat = a.ravel()
    for i0 in range(0, start.size, _CHUNK_NODES):
        i1 = min(start.size, i0 + _CHUNK_NODES)
        w = np.take(flat, start[i0:i1, None] + offsets[None, :])
        yield slice(i0, i1), a_flat[centre_idx[i0:i1]], w


def _sorted_median(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median along the last axis of ``s`` (NaNs sorted last) and the finite count."""
    n = np.count_nonzero(np.isfinite(s), axis=-1)
    lo = np.clip((n - 1) // 2, 0, None)[..., None]
    hi = np.clip(n // 2, 0, s.shape[-1] - 1)[..., None]
    med = 0.5 * (np.take_along_axis(s, lo, -1) + np.take_along_axis(s, hi, -1))[..., 0]
    med[n == 0] = np.nan
    return med, n


def _median_nmad_at(a: np.ndarray, size: int,
                    sel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Window median, NMAD and finite count of ``a`` at the nodes ``sel`` (flat, ``(n,)``)."""
    n_sel = int(sel.sum())
    med, nmad = np.full(n_sel, np.nan), np.full(n_sel, np.nan)
    cnt = np.zeros(n_sel, dtype=np.int64)
    for chunk, _, w in _gather(a, size, sel):
        m, n = _sorted_median(np.sort(w, axis=-1))
        mad, _ = _sorted_median(np.sort(np.abs(w - m[:, None]), axis=-1))
        med[chunk], nmad[chunk], cnt[chunk] = m, NMAD_FACTOR * mad, n
    return med, nmad, cnt


def _count_within_at(a: np.ndarray, size: int, tol: float, sel: np.ndarray) -> np.ndarray:
    """Number of window values within ``tol`` of the centre (centre included), ``(n,)``."""
    h = size // 2
    p = np.pad(a, h, mode="constant", constant_values=np.nan)
    count = np.zeros(a.shape, dtype=np.int32)
    for dr in range(size):
        for dc in range(size):
            shifted = p[dr:dr + a.shape[0], dc:dc + a.shape[1]]
            count += np.abs(shifted - a) <= tol
    return count[sel]


def _affected(removed: np.ndarray, size: int) -> np.ndarray:
    """Nodes whose ``size`` window contains a node of ``removed``."""
    return ndi.binary_dilation(removed, structure=np.ones((size, size), dtype=bool))


# ----------------------------------------------------------------------------- steps
def quality_filter(dx: Any, dy: Any, status: Any, *, peak_corr: Any = None, snr: Any = None,
                   peak_ratio: Any = None, min_peak_corr: float | None = None,
                   min_snr: float | None = None,
                   min_peak_ratio: float | None = None) -> FilterResult:
    """Flag valid nodes whose matching quality is below a threshold as ``LOW_QUALITY``.

    Args:
        dx: First component ``(n_rows, n_cols)``, float, NaN = invalid.
        dy: Second component, same shape.
        status: Status codes, same shape.
        peak_corr: Peak correlation per node (needed with ``min_peak_corr``).
        snr: SNR per node (needed with ``min_snr``).
        peak_ratio: First / second peak per node (needed with ``min_peak_ratio``).
        min_peak_corr: Lowest accepted peak correlation; None = no test.
        min_snr: Lowest accepted SNR; None = no test.
        min_peak_ratio: Lowest accepted peak ratio; None = no test.

    A NaN quality value fails its test.
    """
    cfg = QualityThresholds(min_peak_corr=min_peak_corr, min_snr=min_snr,
                            min_peak_ratio=min_peak_ratio)
    x, y, st, bad, dtype = _prepare(dx, dy, status)
    fail = np.zeros(x.shape, dtype=bool)
    for name, arr, thr in (("peak_corr", peak_corr, cfg.min_peak_corr),
                           ("snr", snr, cfg.min_snr), ("peak_ratio", peak_ratio,
                                                       cfg.min_peak_ratio)):
        if thr is None:
            continue
        if arr is None:
            raise InputError(f"min_{name} is set but no {name} array was given.")
        q = np.asarray(arr, dtype=np.float64)
        if q.shape != x.shape:
            raise InputError(f"{name} has shape {q.shape}, the field has {x.shape}.")
        with np.errstate(invalid="ignore"):
            fail |= ~(q >= thr)
    n = _remove(x, y, st, fail & _valid(x, st), Status.LOW_QUALITY)
    return _result(x, y, st, dtype, "quality", removed=n, inconsistent=bad,
                   settings=asdict(cfg))


def ndc_filter(dx: Any, dy: Any, status: Any, *, size_nodes: int = 5,
               tolerance_px: float = 2.0, min_coherent_fraction: float = 8 / 25,
               iterations: int = 3) -> FilterResult:
    """Neighbour-consistency filter after autoRIFT's NDC (rule in the module docstring).

    Args:
        dx: First component ``(n_rows, n_cols)``, float, NaN = invalid.
        dy: Second component, same shape.
        status: Status codes, same shape.
        size_nodes: Window side (nodes, odd).
        tolerance_px: Coherence tolerance (units of ``dx, dy``).
        min_coherent_fraction: Fraction of ``size_nodes²`` that must be coherent.
        iterations: Passes.
    """
    cfg = NDCConfig(size_nodes=size_nodes, tolerance_px=tolerance_px,
                    min_coherent_fraction=min_coherent_fraction, iterations=iterations)
    x, y, st, bad, dtype = _prepare(dx, dy, status)
    need = cfg.min_coherent_fraction * cfg.size_nodes**2 - 1e-9
    removed = 0
    check = _valid(x, st)
    for _ in range(cfg.iterations):
        sel = check & _valid(x, st)
        bad_nodes = ((_count_within_at(x, cfg.size_nodes, cfg.tolerance_px, sel) < need)
                     | (_count_within_at(y, cfg.size_nodes, cfg.tolerance_px, sel) < need))
        reject = np.zeros(x.shape, dtype=bool)
        reject[sel] = bad_nodes
        if not reject.any():
            break
        removed += _remove(x, y, st, reject)
        check = _affected(reject, cfg.size_nodes)   # only their counts can have changed
    return _result(x, y, st, dtype, "ndc", removed=removed, inconsistent=bad,
                   settings=asdict(cfg))


def mad_filter(dx: Any, dy: Any, status: Any, *, size_nodes: int = 5, n_nmad: float = 4.0,
               min_threshold_px: float = 0.1, min_valid_nodes: int = 5,
               iterations: int = 2) -> FilterResult:
    """Moving-window median / MAD outlier removal (rule in the module docstring).

    Args:
        dx: First component ``(n_rows, n_cols)``, float, NaN = invalid.
        dy: Second component, same shape.
        status: Status codes, same shape.
        size_nodes: Window side (nodes, odd).
        n_nmad: Threshold in window NMADs.
        min_threshold_px: Threshold floor (units of ``dx, dy``).
        min_valid_nodes: Fewest valid window nodes (centre included) to judge a node.
        iterations: Passes.
    """
    cfg = MADConfig(size_nodes=size_nodes, n_nmad=n_nmad, min_threshold_px=min_threshold_px,
                    min_valid_nodes=min_valid_nodes, iterations=iterations)
    x, y, st, bad, dtype = _prepare(dx, dy, status)
    removed = 0
    check = _valid(x, st)
    for _ in range(cfg.iterations):
        sel = check & _valid(x, st)
        bad_nodes = np.zeros(int(sel.sum()), dtype=bool)
        for comp in (x, y):
            med, nmad, cnt = _median_nmad_at(comp, cfg.size_nodes, sel)
            thr = np.maximum(cfg.n_nmad * nmad, cfg.min_threshold_px)
            bad_nodes |= (cnt >= cfg.min_valid_nodes) & (np.abs(comp[sel] - med) > thr)
        reject = np.zeros(x.shape, dtype=bool)
        reject[sel] = bad_nodes
        if not reject.any():
            break
        removed += _remove(x, y, st, reject)
        check = _affected(reject, cfg.size_nodes)   # only their statistics have changed
    return _result(x, y, st, dtype, "mad", removed=removed, inconsistent=bad,
                   settings=asdict(cfg))


def remove_small_clumps(dx: Any, dy: Any, status: Any, *, min_size_nodes: int = 10,
                        connectivity: Literal[4, 8] = 8) -> FilterResult:
    """Remove connected groups of valid nodes smaller than ``min_size_nodes`` (→ FILTERED).

    Args:
        dx: First component ``(n_rows, n_cols)``, float, NaN = invalid.
        dy: Second component, same shape.
        status: Status codes, same shape.
        min_size_nodes: Smallest clump kept (nodes).
        connectivity: 4 or 8.
    """
    cfg = ClumpConfig(min_size_nodes=min_size_nodes, connectivity=connectivity)
    x, y, st, bad, dtype = _prepare(dx, dy, status)
    valid = _valid(x, st)
    structure = ndi.generate_binary_structure(2, 1 if cfg.connectivity == 4 else 2)
    labels, _ = ndi.label(valid, structure=structure)
    sizes = np.bincount(labels.ravel())
    small = sizes < cfg.min_size_nodes
    small[0] = False
    n = _remove(x, y, st, small[labels])
    return _result(x, y, st, dtype, "clumps", removed=n, inconsistent=bad,
                   settings=asdict(cfg))


def smooth(dx: Any, dy: Any, status: Any, *, method: Literal["median", "gaussian"] = "median",
           size_nodes: int = 3, sigma_nodes: float = 1.0) -> FilterResult:
    """Smooth the valid nodes (NaN-aware); invalid nodes stay invalid, statuses unchanged.

    Args:
        dx: First component ``(n_rows, n_cols)``, float, NaN = invalid.
        dy: Second component, same shape.
        status: Status codes, same shape.
        method: ``"median"`` over the ``size_nodes`` window of valid nodes, or
            ``"gaussian"`` normalised convolution ``Σ G·v / Σ G`` over valid nodes.
        size_nodes: Median window side (nodes, odd).
        sigma_nodes: Gaussian standard deviation (nodes).
    """
    cfg = SmoothConfig(method=method, size_nodes=size_nodes, sigma_nodes=sigma_nodes)
    x, y, st, bad, dtype = _prepare(dx, dy, status)
    valid = _valid(x, st)
    out = []
    for comp in (x, y):
        if cfg.method == "median":
            val = np.full(comp.shape, np.nan)
            val[valid] = _median_nmad_at(comp, cfg.size_nodes, valid)[0]
        else:
            w = valid.astype(np.float64)
            num = ndi.gaussian_filter(np.where(valid, comp, 0.0), cfg.sigma_nodes,
                                      mode="constant", cval=0.0, truncate=4.0)
            den = ndi.gaussian_filter(w, cfg.sigma_nodes, mode="constant", cval=0.0,
                                      truncate=4.0)
            val = num / np.where(den > 0, den, 1.0)
        out.append(np.where(valid, val, np.nan))
    settings = {k: v for k, v in asdict(cfg).items()
                if k == "method" or (k == "size_nodes") == (cfg.method == "median")}
    return _result(out[0], out[1], st, dtype, "smooth", inconsistent=bad, settings=settings)


def _fillable(valid: np.ndarray, exclude: np.ndarray, cfg: FillConfig) -> np.ndarray:
    """Boolean mask of the invalid nodes that belong to a fillable hole."""
    cand = ~valid & ~exclude
    labels, n = ndi.label(cand, structure=ndi.generate_binary_structure(2, 1))
    if n == 0:
        return cand
    idx = np.arange(1, n + 1)
    dist = ndi.distance_transform_edt(~valid) if valid.any() else np.full(valid.shape, np.inf)
    ok = np.asarray(ndi.maximum(dist, labels, idx)) <= cfg.max_distance_nodes + 1e-9
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    if cfg.max_hole_nodes is not None:
        ok &= sizes <= cfg.max_hole_nodes
    touches_valid = np.zeros(n + 1, dtype=bool)
    touches_valid[np.unique(labels[ndi.binary_dilation(valid) & cand])] = True
    ok &= touches_valid[1:]
    if not cfg.fill_edges:
        border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0],
                                           labels[:, -1]]))
        on_edge = np.zeros(n + 1, dtype=bool)
        on_edge[border] = True
        ok &= ~on_edge[1:]
    keep = np.concatenate([[False], ok])
    return keep[labels]


def _laplace_fill(x: np.ndarray, y: np.ndarray, valid: np.ndarray,
                  fill: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Harmonic values of both components on ``fill`` (Dirichlet on valid 4-neighbours)."""
    h, w = fill.shape
    rr, cc = np.nonzero(fill)
    n = rr.size
    index = np.full(fill.shape, -1, dtype=np.int64)
    index[rr, cc] = np.arange(n)
    diag = np.zeros(n)
    rhs = np.zeros((n, 2))
    rows, cols = [], []
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        r2, c2 = rr + dr, cc + dc
        inside = (r2 >= 0) & (r2 < h) & (c2 >= 0) & (c2 < w)
        r2c, c2c = np.clip(r2, 0, h - 1), np.clip(c2, 0, w - 1)
        nb_fill = inside & fill[r2c, c2c]
        nb_valid = inside & valid[r2c, c2c]
        diag += nb_fill | nb_valid
        rows.append(np.nonzero(nb_fill)[0])
        cols.append(index[r2c, c2c][nb_fill])
        rhs[nb_valid, 0] += x[r2c, c2c][nb_valid]
        rhs[nb_valid, 1] += y[r2c, c2c][nb_valid]
    r_all, c_all = np.concatenate(rows), np.concatenate(cols)
    a = sp.csc_matrix((np.concatenate([diag, -np.ones(r_all.size)]),
                       (np.concatenate([np.arange(n), r_all]),
                        np.concatenate([np.arange(n), c_all]))), shape=(n, n))
    sol = spla.splu(a).solve(rhs)
    return sol[:, 0], sol[:, 1]


def fill_gaps(dx: Any, dy: Any, status: Any, *, max_distance_nodes: float = 2.0,
              max_hole_nodes: int | None = None, fill_edges: bool = False,
              exclude: Any = None) -> FilterResult:
    """Fill small holes by harmonic (Laplace) inpainting; filled nodes are flagged FILLED.

    Args:
        dx: First component ``(n_rows, n_cols)``, float, NaN = invalid.
        dy: Second component, same shape.
        status: Status codes, same shape.
        max_distance_nodes: Every node of a filled hole is within this Euclidean distance
            (nodes) of a valid node.
        max_hole_nodes: Largest hole filled (nodes); None = limited by distance only.
        fill_edges: Also fill holes touching the grid border (extrapolation).
        exclude: Boolean mask of nodes never filled (e.g. ocean, ignore mask); they also
            break holes apart and act as free (zero-flux) boundaries.

    Holes are 4-connected groups of invalid nodes; see the module docstring for the rule.
    """
    cfg = FillConfig(max_distance_nodes=max_distance_nodes, max_hole_nodes=max_hole_nodes,
                     fill_edges=fill_edges)
    x, y, st, bad, dtype = _prepare(dx, dy, status)
    if exclude is None:
        excl = np.zeros(x.shape, dtype=bool)
    else:
        excl = np.asarray(exclude)
        if excl.shape != x.shape or excl.dtype != bool:
            raise InputError(f"exclude must be a boolean array of shape {x.shape}, got "
                             f"{excl.dtype} {excl.shape}.")
    valid = _valid(x, st)
    fill = _fillable(valid, excl, cfg)
    n = int(fill.sum())
    if n:
        fx, fy = _laplace_fill(x, y, valid, fill)
        x[fill], y[fill] = fx, fy
        st[fill] = Status.FILLED
    return _result(x, y, st, dtype, "fill", filled=n, inconsistent=bad,
                   settings=asdict(cfg))


def sync_status(status: Any, dx: Any, dy: Any) -> np.ndarray:
    """A copy of ``status`` with FILTERED where it says valid but ``dx`` or ``dy`` is NaN.

    Use after a correction whose covariates (e.g. a DEM) were missing at some nodes.
    """
    st = np.asarray(status).astype(STATUS_DTYPE)
    bad = np.isin(st, _VALID) & ~(np.isfinite(dx) & np.isfinite(dy))
    st[bad] = Status.FILTERED
    return st


# ----------------------------------------------------------------------------- chain
def filter_field(dx: Any, dy: Any, status: Any, *, config: FilterConfig | None = None,
                 peak_corr: Any = None, snr: Any = None, peak_ratio: Any = None,
                 exclude: Any = None) -> FilterResult:
    """Run the filter chain of ``config`` (quality → ndc → mad → clumps → smooth → fill).

    Args:
        dx: First component ``(n_rows, n_cols)``, float, NaN = invalid.
        dy: Second component, same shape.
        status: Status codes, same shape.
        config: Steps and settings; ``FilterConfig()`` by default.
        peak_corr: Peak correlation per node (for quality thresholds).
        snr: SNR per node.
        peak_ratio: Peak ratio per node.
        exclude: Nodes never gap-filled (see :func:`fill_gaps`).

    Returns:
        The result of the last step, with the logs of all steps.
    """
    cfg = FilterConfig() if config is None else config
    if not isinstance(cfg, FilterConfig):
        raise InputError(f"config must be a FilterConfig, got {type(cfg).__name__}.")
    x, y, st, bad, out_dtype = _prepare(dx, dy, status)
    res = FilterResult(x, y, st)
    logs: list[dict[str, Any]] = []
    if bad:
        logs.append({"step": "input", "removed": bad, "filled": 0,
                     "valid": int(np.isin(st, _VALID).sum())})

    def run(fn: Any, **kw: Any) -> None:
        nonlocal res
        res = fn(res.dx, res.dy, res.status, **kw)
        logs.extend(res.log)

    if cfg.quality is not None:
        run(quality_filter, peak_corr=peak_corr, snr=snr, peak_ratio=peak_ratio,
            **asdict(cfg.quality))
    steps = (("ndc", ndc_filter), ("mad", mad_filter), ("clumps", remove_small_clumps),
             ("smooth", smooth))
    for name, fn in steps:
        sub = getattr(cfg, name)
        if sub is not None:
            run(fn, **asdict(sub))
    if cfg.fill is not None:
        run(fill_gaps, exclude=exclude, **asdict(cfg.fill))
    log.info("filter chain: %s", ", ".join(f"{e['step']} −{e['removed']} +{e['filled']}"
                                           for e in logs))
    return FilterResult(res.dx.astype(out_dtype), res.dy.astype(out_dtype), res.status,
                        tuple(logs))
