"""Correction estimators for offset / velocity fields: base class, pipeline, robust solver.

A correction removes a systematic error from a two-component field given as two 2-D arrays
of the same shape (NaN = invalid). It is *agnostic* to what the components are: raw pixel
offsets (pass ``dx=dx_px``, ``dy=dy_px``), map displacement in metres (east, north) or
velocity; it models and subtracts each component separately and reports its parameters in
the units you name (``units=``). The same estimator instance is used in three stages, as in
xDEM's ``Coreg`` (`xdem/coreg/base.py`):

* :meth:`Correction.fit` on **stable ground** (``stable_mask``): the base class validates
  the inputs once (shapes, empty mask, all-NaN field, too few valid stable nodes, covariates
  such as a DEM on a different grid), records stable-ground statistics before and after,
  and hands the selected values to a narrow subclass hook;
* :meth:`Correction.apply` **everywhere**: returns new arrays ``(dx - model_x, dy - model_y)``;
* :meth:`Correction.fit_apply` both at once; ``a + b`` builds a :class:`CorrectionPipeline`
  that fits ``b`` on the output of ``a``.

Covariates are given per node, on the same grid as the field: map coordinates ``x, y``
(1-D per column / row, or 2-D; when omitted the node column and row *indices* are used),
``dem`` elevation (m), terrain ``slope`` (degrees) and ``aspect`` (degrees clockwise from
north). Nothing here resamples: a DEM must already be on the node grid.
"""

from __future__ import annotations

import copy
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np

from glacierkit.errors import GridMismatchError, InputError
from glacierkit.io.grid import Grid
from glacierkit.velocity.quality import NMAD_FACTOR, component_stats

log = logging.getLogger(__name__)

#: Covariate names a correction may require.
COVARIATES = ("xy", "dem", "slope", "aspect")


# ----------------------------------------------------------------------------- statistics
def _stats(values: np.ndarray) -> dict[str, float]:
    """Median, NMAD, std, RMSE of a sample (see ``quality.component_stats``)."""
    return {k: v for k, v in component_stats(values).as_dict().items() if k != "n"}


def stable_stats(dx: np.ndarray, dy: np.ndarray, mask: np.ndarray, *,
                 units: str = "px") -> dict[str, Any]:
    """Stable-ground statistics of both components over ``mask`` (nodes with NaN are skipped).

    Args:
        dx: First component, any shape.
        dy: Second component, same shape.
        mask: Boolean stable-ground mask, same shape.
        units: Units of ``dx``/``dy``, copied into the result.

    Returns:
        ``{"n": int, "units": str, "dx": {median, nmad, std, rmse}, "dy": {...}}`` where ``n``
        counts the nodes of ``mask`` with both components finite; NMAD is
        ``1.4826 · median(|v − median(v)|)``, RMSE is ``sqrt(mean(v²))`` (about zero).
    """
    sel = mask & np.isfinite(dx) & np.isfinite(dy)
    return {
        "n": int(sel.sum()),
        "units": units,
        "dx": _stats(dx[sel]),
        "dy": _stats(dy[sel]),
    }


# ----------------------------------------------------------------------------- robust solver
@dataclass(frozen=True)
class RobustFit:
    """Result of :func:`robust_lstsq` (``p`` coefficients).

    Attributes:
        coef: Coefficients ``(p,)``.
        cov: Approximate covariance of ``coef`` ``(p, p)``: ``s_w² (Aᵀ W A)⁻¹`` with the final
            weights ``W`` and ``s_w² = Σ w r² / (Σ w − p)``.
        scale: Robust residual scale (NMAD of the residuals).
        n_inliers: Nodes with a final weight > 0.
        iterations: Reweighting iterations run.
    """

    coef: np.ndarray
    cov: np.ndarray
    scale: float
    n_inliers: int
    iterations: int

    @property
    def stderr(self) -> np.ndarray:
        """Standard errors ``(p,)``."""
        return np.sqrt(np.clip(np.diag(self.cov), 0.0, None))


def _weighted_solve(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, int]:
    sw = np.sqrt(w)
    coef, _, rank, _ = np.linalg.lstsq(a * sw[:, None], b * sw, rcond=None)
    return coef, int(rank)


def robust_lstsq(a: np.ndarray, b: np.ndarray, *, max_iter: int = 50,
                 tol: float = 1e-10) -> RobustFit:
    """Robust linear least squares ``a @ coef ≈ b`` by iteratively reweighted least squares.

    Two phases: Huber weights (``c = 1.345``; convex, so its result does not depend on the
    ordinary least-squares start even with many outliers) with the residual scale re-estimated
    as the NMAD of the residuals at every iteration; then Tukey bisquare weights
    (``c = 4.685``) with that scale held fixed, which gives gross outliers zero weight.
    Both constants give 95 % efficiency for Gaussian noise.

    Args:
        a: Design matrix ``(n, p)``, finite, ideally with columns of order one.
        b: Observations ``(n,)``, finite.
        max_iter: Iterations per phase.
        tol: Convergence on the largest coefficient change relative to ``1 + max|coef|``.

    Raises:
        InputError: ``a`` is rank deficient (the covariates do not vary enough).
    """
    n, p = a.shape
    w = np.ones(n)
    coef, rank = _weighted_solve(a, b, w)
    if rank < p:
        raise InputError(
            f"the regression design is rank deficient (rank {rank} < {p} terms): the stable "
            "nodes do not vary enough in the covariates (e.g. all at one elevation or on one "
            "line). Use more or wider stable ground, or a simpler correction.")
    scale = 0.0
    it_total = 0
    for phase, c in (("huber", 1.345), ("bisquare", 4.685)):
        for _ in range(max_iter):
            it_total += 1
            r = b - a @ coef
            if phase == "huber":
                scale = float(NMAD_FACTOR * np.median(np.abs(r - np.median(r))))
            if scale <= 1e-12 * (1.0 + float(np.max(np.abs(b)))):
                break  # (near) exact fit on most nodes: nothing to reweight
            u = np.abs(r) / (c * scale)
            if phase == "huber":
                w = np.where(u <= 1.0, 1.0, 1.0 / np.maximum(u, 1e-300))
            else:
                w = np.where(u < 1.0, (1.0 - u * u) ** 2, 0.0)
            if np.count_nonzero(w) <= p:
                break
            new, rank = _weighted_solve(a, b, w)
            if rank < p:
                break
            done = np.max(np.abs(new - coef)) <= tol * (1.0 + float(np.max(np.abs(coef))))
            coef = new
            if done:
                break
    r = b - a @ coef
    if scale > 0:
        u = np.abs(r) / (4.685 * scale)
        w = np.where(u < 1.0, (1.0 - u * u) ** 2, 0.0)
    else:
        w = np.ones(n)
    dof = max(float(w.sum()) - p, 1.0)
    s2 = float(np.sum(w * r * r)) / dof
    ata = (a * w[:, None]).T @ a
    try:
        cov = s2 * np.linalg.inv(ata)
    except np.linalg.LinAlgError:
        cov = np.full((p, p), np.nan)
    return RobustFit(coef=coef, cov=cov, scale=scale, n_inliers=int(np.count_nonzero(w)),
                     iterations=it_total)


# ----------------------------------------------------------------------------- inputs
def grid_coordinates(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Map coordinates ``(x, y)`` of every cell centre of ``grid``, each ``(height, width)``.

    For the node raster of a tracking run (``glacierkit.velocity.field.node_grid_georef``)
    these are the node positions to pass as ``x=``, ``y=``.
    """
    rows, cols = np.meshgrid(np.arange(grid.height), np.arange(grid.width), indexing="ij")
    x, y = grid.xy(rows, cols)
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)


def _as_field(arr: Any, name: str) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim != 2 or a.size == 0:
        raise InputError(f"{name} must be a non-empty 2-D array, got shape {a.shape}.")
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise InputError(f"{name} must be a real numeric array, got dtype {a.dtype}.")
    return a


def check_field(dx: Any, dy: Any) -> tuple[np.ndarray, np.ndarray]:
    """Both components as 2-D arrays of one shape, or :class:`InputError`."""
    dx, dy = _as_field(dx, "dx"), _as_field(dy, "dy")
    if dx.shape != dy.shape:
        raise InputError(f"dx and dy must have the same shape, got {dx.shape} and {dy.shape}.")
    return dx, dy


def _out_dtype(a: np.ndarray) -> np.dtype:
    return a.dtype if np.issubdtype(a.dtype, np.floating) else np.dtype(np.float64)


def check_stable_mask(stable_mask: Any, shape: tuple[int, int]) -> np.ndarray:
    """``stable_mask`` as a boolean array of ``shape``, or :class:`InputError`."""
    m = np.asarray(stable_mask)
    if m.shape != shape:
        raise GridMismatchError(
            f"stable_mask has shape {m.shape} but the offset field has shape {shape}; "
            "rasterize the stable-ground polygons onto the node grid first.")
    if m.dtype != bool:
        if not np.issubdtype(m.dtype, np.integer) or not np.isin(m, (0, 1)).all():
            raise InputError(f"stable_mask must be boolean (or 0/1 integers), got {m.dtype}.")
        m = m.astype(bool)
    return m


@dataclass(frozen=True)
class Covariates:
    """Per-node covariates on the field's grid, all ``(n_rows, n_cols)`` float64 or None.

    Attributes:
        x: Map x of each node, or the column index when no coordinates were given.
        y: Map y of each node, or the row index when no coordinates were given.
        xy_kind: ``"map"`` (given) or ``"index"`` (node column / row indices).
        dem: Elevation (m).
        slope: Terrain slope (degrees).
        aspect: Terrain aspect (degrees clockwise from north).
    """

    x: np.ndarray
    y: np.ndarray
    xy_kind: str
    dem: np.ndarray | None = None
    slope: np.ndarray | None = None
    aspect: np.ndarray | None = None

    @classmethod
    def build(cls, shape: tuple[int, int], *, x: Any = None, y: Any = None, dem: Any = None,
              slope: Any = None, aspect: Any = None) -> Covariates:
        """Validate and broadcast covariates to ``shape``.

        Raises:
            InputError: only one of ``x``, ``y`` given, or a coordinate vector of the wrong
                length.
            GridMismatchError: a 2-D covariate whose shape differs from the field's.
        """
        if (x is None) != (y is None):
            raise InputError("give both x and y (map coordinates of the nodes) or neither.")
        if x is None:
            yy, xx = np.meshgrid(np.arange(shape[0], dtype=np.float64),
                                 np.arange(shape[1], dtype=np.float64), indexing="ij")
            kind = "index"
        else:
            xx = cls._coord(x, "x", shape, axis=1)
            yy = cls._coord(y, "y", shape, axis=0)
            kind = "map"
        return cls(x=xx, y=yy, xy_kind=kind, dem=cls._grid(dem, "dem", shape),
                   slope=cls._grid(slope, "slope", shape),
                   aspect=cls._grid(aspect, "aspect", shape))

    @staticmethod
    def _coord(v: Any, name: str, shape: tuple[int, int], *, axis: int) -> np.ndarray:
        a = np.asarray(v, dtype=np.float64)
        if not np.isfinite(a).all():
            raise InputError(f"{name} (node coordinates) contains NaN or inf.")
        if a.ndim == 1:
            if a.size != shape[axis]:
                what = "columns" if axis == 1 else "rows"
                raise InputError(f"{name} has {a.size} values but the field has "
                                 f"{shape[axis]} {what}.")
            return np.broadcast_to(a[None, :] if axis == 1 else a[:, None], shape).copy()
        if a.shape != shape:
            raise GridMismatchError(f"{name} has shape {a.shape} but the offset field has "
                                    f"shape {shape}.")
        return a

    @staticmethod
    def _grid(v: Any, name: str, shape: tuple[int, int]) -> np.ndarray | None:
        if v is None:
            return None
        a = np.asarray(v, dtype=np.float64)
        if a.shape != shape:
            raise GridMismatchError(
                f"{name} has shape {a.shape} but the offset field has shape {shape}: they "
                f"are not on the same grid. Resample the {name} onto the node grid first "
                "(glacierkit.io.reproject; the velocity pipeline does this explicitly); "
                "corrections never resample.")
        return a

    def require(self, names: Sequence[str], who: str) -> None:
        """Raise :class:`InputError` naming every required covariate that is missing."""
        missing = [n for n in names if n != "xy" and getattr(self, n) is None]
        if missing:
            raise InputError(f"{who} needs {', '.join(missing)} on the node grid; pass "
                             f"{', '.join(m + '=' for m in missing)} to fit and apply.")


def centre_and_half_extent(cov: Covariates, sel: np.ndarray,
                           who: str) -> tuple[tuple[float, float], tuple[float, float]]:
    """Centre and half-extent of the nodes ``sel`` in ``x`` and ``y`` (for normalisation).

    Raises:
        InputError: the selected nodes share one ``x`` or one ``y``.
    """
    centre, half = [], []
    for name, v in (("x", cov.x[sel]), ("y", cov.y[sel])):
        lo, hi = float(v.min()), float(v.max())
        if hi - lo <= 1e-12 * max(1.0, abs(hi)):
            raise InputError(f"{who}.fit: all stable nodes share one {name} ({lo:g}); a "
                             "surface in x, y cannot be fitted.")
        centre.append(0.5 * (lo + hi))
        half.append(0.5 * (hi - lo))
    return (centre[0], centre[1]), (half[0], half[1])


# ----------------------------------------------------------------------------- estimators
class Correction(ABC):
    """Base of every correction estimator (``fit`` on stable ground, ``apply`` everywhere).

    Subclasses fill three hooks: :meth:`_required` (covariates needed), :meth:`_fit`
    (estimate from the selected stable nodes) and :meth:`_predict` (model on every node),
    plus :meth:`_params` for the report. Validation, node selection, the ``min_stable`` rule
    and the statistics live here, once.

    Args:
        min_stable: Fewest stable nodes with valid offsets (and covariates) to fit on.
    """

    #: Name shown in reports.
    name: ClassVar[str] = "Correction"

    def __init__(self, *, min_stable: int = 100) -> None:
        if isinstance(min_stable, bool) or not isinstance(min_stable, int | np.integer) \
                or min_stable < 1:
            raise InputError(f"min_stable must be an integer ≥ 1, got {min_stable!r}.")
        self.min_stable = int(min_stable)
        self._fitted = False
        self._units = "px"
        self._xy_kind: str | None = None
        self._xy_units = "node"
        self._n_fit = 0
        self._stats: dict[str, Any] = {}

    # ---- hooks
    def _required(self) -> tuple[str, ...]:
        """Covariates needed (subset of ``"xy", "dem", "slope", "aspect"``)."""
        return ()

    def _usable(self, cov: Covariates) -> np.ndarray:
        """Nodes where the model can be evaluated (all covariates finite)."""
        ok = np.ones(cov.x.shape, dtype=bool)
        for n in self._required():
            if n != "xy":
                ok &= np.isfinite(getattr(cov, n))
        return ok

    @abstractmethod
    def _fit(self, dx: np.ndarray, dy: np.ndarray, cov: Covariates, sel: np.ndarray) -> None:
        """Estimate the model from ``dx[sel]``, ``dy[sel]`` (float64, finite)."""

    @abstractmethod
    def _predict(self, cov: Covariates) -> tuple[np.ndarray, np.ndarray]:
        """Model of both components on every node (float64; NaN where not usable)."""

    @abstractmethod
    def _params(self) -> dict[str, Any]:
        """Fitted parameters as a JSON-friendly dict."""

    # ---- public API
    def fit(self, dx: Any, dy: Any, stable_mask: Any, *, x: Any = None, y: Any = None,
            dem: Any = None, slope: Any = None, aspect: Any = None, units: str = "px",
            xy_units: str = "m") -> Self:
        """Estimate the correction on stable ground.

        Args:
            dx: First component ``(n_rows, n_cols)``, NaN = invalid (e.g. ``dx_px`` along
                columns, or east displacement in m).
            dy: Second component, same shape (e.g. ``dy_px`` along rows, or north in m).
            stable_mask: Boolean ``(n_rows, n_cols)``, True on stable (non-moving) ground.
            x: Map x of the nodes: ``(n_cols,)`` or ``(n_rows, n_cols)``; default column index.
            y: Map y of the nodes: ``(n_rows,)`` or ``(n_rows, n_cols)``; default row index.
            dem: Elevation (m) on the node grid.
            slope: Terrain slope (degrees) on the node grid.
            aspect: Terrain aspect (degrees clockwise from north) on the node grid.
            units: Units of ``dx``, ``dy`` (reported with the parameters).
            xy_units: Units of ``x``, ``y`` when given (``"node"`` otherwise).

        Returns:
            ``self``, fitted.

        Raises:
            InputError: empty stable mask, all-NaN field, fewer than ``min_stable`` usable
                stable nodes, missing covariates, rank-deficient design.
            GridMismatchError: a mask or covariate on a different grid.
        """
        dx, dy = check_field(dx, dy)
        mask = check_stable_mask(stable_mask, dx.shape)
        cov = Covariates.build(dx.shape, x=x, y=y, dem=dem, slope=slope, aspect=aspect)
        cov.require(self._required(), self.name)
        dxf, dyf = dx.astype(np.float64), dy.astype(np.float64)
        sel = self._select(dxf, dyf, mask, cov)
        self._units, self._xy_kind = units, cov.xy_kind
        self._xy_units = xy_units if cov.xy_kind == "map" else "node"
        self._fit(dxf, dyf, cov, sel)
        self._fitted = True
        self._n_fit = int(sel.sum())
        cx, cy = self._corrected(dxf, dyf, cov)
        # Statistics of exactly what apply() returns (same dtype), so pipeline steps chain.
        cx, cy = cx.astype(_out_dtype(dx)), cy.astype(_out_dtype(dy))
        self._stats = {"before": stable_stats(dxf, dyf, mask, units=units),
                       "after": stable_stats(cx, cy, mask, units=units)}
        params = self._params()
        log.info("%s fitted on %d stable nodes: %s", self.name, self._n_fit,
                 _summarise_params(params))
        log.debug("%s parameters: %s", self.name, params)
        return self

    def _select(self, dx: np.ndarray, dy: np.ndarray, mask: np.ndarray,
                cov: Covariates) -> np.ndarray:
        """Stable nodes usable for fitting, or a clear :class:`InputError`."""
        n_mask = int(mask.sum())
        if n_mask == 0:
            raise InputError(
                f"{self.name}.fit: stable_mask selects no node of the {dx.shape} field. Check "
                "that the stable-ground polygons overlap the image and are in its CRS.")
        valid = np.isfinite(dx) & np.isfinite(dy)
        if not valid.any():
            raise InputError(f"{self.name}.fit: dx/dy are NaN everywhere; nothing to fit.")
        sel = mask & valid
        n_valid = int(sel.sum())
        sel &= self._usable(cov)
        n = int(sel.sum())
        if n < self.min_stable:
            extra = (f", {n} of them with finite covariates ({', '.join(self._required())})"
                     if n != n_valid else "")
            raise InputError(
                f"{self.name}.fit: only {n} stable nodes are usable (stable_mask: {n_mask} "
                f"nodes, {n_valid} with valid offsets{extra}); at least min_stable="
                f"{self.min_stable} are needed. Enlarge the stable-ground area, use a finer "
                "node step, relax the outlier filters, or lower min_stable.")
        return sel

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise InputError(f"{self.name} is not fitted; call fit(...) on stable ground first.")

    def _corrected(self, dx: np.ndarray, dy: np.ndarray,
                   cov: Covariates) -> tuple[np.ndarray, np.ndarray]:
        mx, my = self._predict(cov)
        return dx - mx, dy - my

    def _apply_cov(self, shape: tuple[int, int], **covariates: Any) -> Covariates:
        cov = Covariates.build(shape, **covariates)
        cov.require(self._required(), self.name)
        if "xy" in self._required() and cov.xy_kind != self._xy_kind:
            raise InputError(
                f"{self.name} was fitted with {self._xy_kind} coordinates but applied with "
                f"{cov.xy_kind} coordinates; pass x=, y= to both fit and apply, or to neither.")
        return cov

    def predict(self, shape: tuple[int, int], *, x: Any = None, y: Any = None, dem: Any = None,
                slope: Any = None, aspect: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """The fitted model (what :meth:`apply` subtracts) on a grid of ``shape``, float64."""
        self._check_fitted()
        cov = self._apply_cov(tuple(shape), x=x, y=y, dem=dem, slope=slope, aspect=aspect)
        return self._predict(cov)

    def apply(self, dx: Any, dy: Any, *, x: Any = None, y: Any = None, dem: Any = None,
              slope: Any = None, aspect: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Subtract the fitted model from the whole field; returns new ``(dx, dy)`` arrays.

        Same arguments as :meth:`fit` (without the mask). The output keeps a floating input
        dtype (float64 for integer input). NaN stays NaN; a node where a required covariate
        is NaN (e.g. a DEM hole) cannot be corrected and becomes NaN (logged) — mark it in the
        status band, e.g. with :func:`glacierkit.velocity.filtering.sync_status`.
        """
        self._check_fitted()
        dx, dy = check_field(dx, dy)
        cov = self._apply_cov(dx.shape, x=x, y=y, dem=dem, slope=slope, aspect=aspect)
        cx, cy = self._corrected(dx.astype(np.float64), dy.astype(np.float64), cov)
        lost = int((np.isfinite(dx) & np.isfinite(dy) & ~(np.isfinite(cx) & np.isfinite(cy)))
                   .sum())
        if lost:
            log.warning("%s: %d valid nodes have NaN covariates and became NaN.", self.name,
                        lost)
        return cx.astype(_out_dtype(dx)), cy.astype(_out_dtype(dy))

    def fit_apply(self, dx: Any, dy: Any, stable_mask: Any, *, x: Any = None, y: Any = None,
                  dem: Any = None, slope: Any = None, aspect: Any = None, units: str = "px",
                  xy_units: str = "m") -> tuple[np.ndarray, np.ndarray]:
        """:meth:`fit` on stable ground, then :meth:`apply` everywhere; returns ``(dx, dy)``."""
        cov = {"x": x, "y": y, "dem": dem, "slope": slope, "aspect": aspect}
        self.fit(dx, dy, stable_mask, units=units, xy_units=xy_units, **cov)
        return self.apply(dx, dy, **cov)

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` has run."""
        return self._fitted

    @property
    def params(self) -> dict[str, Any]:
        """Fitted parameters (JSON-friendly; each value with its unit)."""
        self._check_fitted()
        return self._params()

    def report(self) -> dict[str, Any]:
        """Name, settings, fitted parameters and stable-ground statistics before / after."""
        self._check_fitted()
        return {"name": self.name, "units": self._units, "n_fit": self._n_fit,
                "min_stable": self.min_stable, "params": self._params(),
                "stable": copy.deepcopy(self._stats)}

    def __add__(self, other: Correction) -> CorrectionPipeline:
        if not isinstance(other, Correction):
            return NotImplemented
        return CorrectionPipeline([self, other])

    def __repr__(self) -> str:
        state = "fitted" if self._fitted else "not fitted"
        return f"{self.name}(min_stable={self.min_stable}, {state})"


def _summarise_params(params: dict[str, Any]) -> str:
    """One readable line of fitted terms per component: ``dx: shift 0.101 ± 0.0024 px; ...``.

    The full parameter dict (for ``report.json``) is logged at DEBUG level.
    """
    parts = []
    for comp in ("dx", "dy"):
        p = params.get(comp)
        if not isinstance(p, dict) or not isinstance(p.get("terms"), dict):
            continue
        terms = ", ".join(
            f"{name} {t['value']:.3g} ± {t['stderr']:.2g} {t.get('unit', '')}".rstrip()
            for name, t in p["terms"].items()
            if isinstance(t, dict) and "value" in t and "stderr" in t)
        nmad = p.get("residual_nmad")
        tail = f" (residual NMAD {nmad:.3g})" if isinstance(nmad, float) else ""
        parts.append(f"{comp}: {terms}{tail}")
    return "; ".join(parts) if parts else "see report.json"


class CorrectionPipeline(Correction):
    """Corrections applied in sequence: each step is fitted on the output of the previous.

    Built by ``a + b + c`` (nested pipelines are flattened). The steps are *copies* of the
    estimators given, so one instance can appear in several pipelines; read the fitted steps
    from :attr:`steps`.

    Args:
        steps: The corrections, in order of application.
    """

    name: ClassVar[str] = "CorrectionPipeline"

    def __init__(self, steps: Sequence[Correction]) -> None:
        super().__init__()
        flat: list[Correction] = []
        for s in steps:
            if not isinstance(s, Correction):
                raise InputError(f"pipeline steps must be Correction estimators, got {s!r}.")
            flat.extend(s.steps if isinstance(s, CorrectionPipeline) else [s])
        if not flat:
            raise InputError("a CorrectionPipeline needs at least one step.")
        self.steps: list[Correction] = [copy.deepcopy(s) for s in flat]

    def _fit(self, dx, dy, cov, sel):  # pragma: no cover - fit is overridden
        raise NotImplementedError

    def _predict(self, cov):  # pragma: no cover - apply is overridden
        raise NotImplementedError

    def fit(self, dx: Any, dy: Any, stable_mask: Any, *, x: Any = None, y: Any = None,
            dem: Any = None, slope: Any = None, aspect: Any = None, units: str = "px",
            xy_units: str = "m") -> Self:
        """Fit every step in order, each on the previous step's corrected field."""
        dx, dy = check_field(dx, dy)
        cov = {"x": x, "y": y, "dem": dem, "slope": slope, "aspect": aspect}
        cx, cy = dx, dy
        for step in self.steps:
            cx, cy = step.fit_apply(cx, cy, stable_mask, units=units, xy_units=xy_units, **cov)
        self._fitted = True
        self._units = units
        self._n_fit = self.steps[0].report()["n_fit"]
        self._stats = {"before": self.steps[0].report()["stable"]["before"],
                       "after": self.steps[-1].report()["stable"]["after"]}
        return self

    def apply(self, dx: Any, dy: Any, *, x: Any = None, y: Any = None, dem: Any = None,
              slope: Any = None, aspect: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Apply every step in order; returns new ``(dx, dy)``."""
        self._check_fitted()
        cx, cy = check_field(dx, dy)
        for step in self.steps:
            cx, cy = step.apply(cx, cy, x=x, y=y, dem=dem, slope=slope, aspect=aspect)
        return cx, cy

    def predict(self, shape: tuple[int, int], **covariates: Any) -> tuple[np.ndarray, np.ndarray]:
        """Sum of the steps' models on a grid of ``shape``."""
        self._check_fitted()
        mx = np.zeros(shape)
        my = np.zeros(shape)
        for step in self.steps:
            px, py = step.predict(shape, **covariates)
            mx, my = mx + px, my + py
        return mx, my

    def _params(self) -> dict[str, Any]:
        return {"steps": [s.params for s in self.steps]}

    def report(self) -> dict[str, Any]:
        """Overall stable-ground statistics and one report per step, in order."""
        self._check_fitted()
        return {"name": self.name, "units": self._units,
                "steps": [s.report() for s in self.steps],
                "stable": copy.deepcopy(self._stats)}

    def __repr__(self) -> str:
        return " + ".join(repr(s) for s in self.steps)


# ----------------------------------------------------------------------------- linear models
class LinearCorrection(Correction):
    """A correction that is linear in its parameters: ``model = A(covariates) @ coef``.

    Subclasses give the design matrix (:meth:`_design`, evaluated on all nodes or on the
    selected stable nodes) and the term names and units (:meth:`_terms`); fitting is the
    robust IRLS of :func:`robust_lstsq`, separately per component.
    """

    def __init__(self, *, min_stable: int = 100) -> None:
        super().__init__(min_stable=min_stable)
        self._fits: dict[str, RobustFit] = {}

    def _prepare(self, cov: Covariates, sel: np.ndarray) -> None:
        """Set data-dependent normalisation from the stable nodes (called before fitting)."""

    @abstractmethod
    def _design(self, cov: Covariates, where: np.ndarray | None = None) -> np.ndarray:
        """Design matrix ``(n, p)`` on the nodes ``where`` (all nodes when None)."""

    @abstractmethod
    def _terms(self) -> list[tuple[str, str]]:
        """``(name, unit)`` of each coefficient, in design-column order."""

    def _solve(self, a: np.ndarray, b: np.ndarray) -> RobustFit:
        return robust_lstsq(a, b)

    def _fit(self, dx, dy, cov, sel):
        self._prepare(cov, sel)
        a = self._design(cov, sel)
        self._fits = {"dx": self._solve(a, dx[sel]), "dy": self._solve(a, dy[sel])}

    def _predict(self, cov):
        a = self._design(cov)
        shape = cov.x.shape
        ok = self._usable(cov).ravel()
        out = []
        for comp in ("dx", "dy"):
            m = np.full(ok.size, np.nan)
            m[ok] = a[ok] @ self._fits[comp].coef
            out.append(m.reshape(shape))
        return out[0], out[1]

    def _coefficients(self, comp: str) -> tuple[np.ndarray, np.ndarray]:
        """Reported coefficients and standard errors of one component."""
        f = self._fits[comp]
        return f.coef, f.stderr

    def _params(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for comp in ("dx", "dy"):
            coef, se = self._coefficients(comp)
            f = self._fits[comp]
            out[comp] = {
                "terms": {name: {"value": float(c), "stderr": _num(s), "unit": unit}
                          for (name, unit), c, s in zip(self._terms(), coef, se, strict=True)},
                "residual_nmad": float(f.scale),
                "n_inliers": f.n_inliers,
            }
        return out


def _num(v: float) -> float | None:
    """A float for JSON, None for NaN / inf."""
    v = float(v)
    return v if math.isfinite(v) else None
