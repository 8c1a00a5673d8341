"""Topography-related offset: regression of the stable-ground offsets on the DEM.

Offsets that correlate with elevation on stable ground come from uncorrected parallax
(optical images orthorectified with an imperfect DEM, or from slightly different viewing
geometries) or, for SAR, from the terrain-dependent range geometry. :class:`ElevationRegression`
fits, per component and robustly, ::

    offset = c0 + c_z · (z − z_ref) [+ c_s · slope] [+ c_sin · sin(aspect) + c_cos · cos(aspect)]
                [+ c_x · (x − x_c) + c_y · (y − y_c)]

on stable ground and subtracts the model everywhere (xDEM's ``TerrainBias`` in linear form;
CARST's elevation regression). ``z_ref`` is the median stable elevation, so ``c0`` is the
offset at that elevation. The fitted slope ``c_z`` is reported per component in
``units``/m with its standard error.

Where elevation on stable ground correlates with position (a coast-to-mountain scene), a
:class:`~glacierkit.velocity.corrections.stable.Plane` fitted *before* the regression absorbs
part of the elevation signal (and vice versa): sequential steps are not a joint fit. With
``xy_order=1`` the plane terms are fitted jointly with the elevation terms instead.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from glacierkit.errors import InputError
from glacierkit.velocity.corrections.base import (
    Covariates,
    LinearCorrection,
    centre_and_half_extent,
)


def slope_aspect(dem: np.ndarray, res_m: float | tuple[float, float]) -> tuple[np.ndarray,
                                                                                   np.ndarray]:
    """Terrain slope and aspect of a north-up DEM by central differences.

    Args:
        dem: Elevation (m) ``(n_rows, n_cols)``, rows running south, NaN = nodata.
        res_m: Cell size (m), one value or ``(x_res, y_res)``, both positive.

    Returns:
        ``(slope_deg, aspect_deg)``, each ``(n_rows, n_cols)`` float64: slope in degrees from
        horizontal; aspect the compass direction the slope faces (downhill), degrees clockwise
        from north in ``[0, 360)``, NaN on flat cells. NaN next to DEM holes.
    """
    z = np.asarray(dem, dtype=np.float64)
    if z.ndim != 2 or min(z.shape) < 2:
        raise InputError(f"dem must be 2-D with at least 2×2 cells, got shape {z.shape}.")
    rx, ry = (res_m, res_m) if np.isscalar(res_m) else res_m  # type: ignore[misc]
    if not (rx > 0 and ry > 0):
        raise InputError(f"res_m must be positive, got {res_m!r}.")
    dz_drow, dz_dcol = np.gradient(z)
    dz_de = dz_dcol / rx
    dz_dn = -dz_drow / ry
    grad = np.hypot(dz_de, dz_dn)
    slope = np.degrees(np.arctan(grad))
    aspect = np.degrees(np.arctan2(-dz_de, -dz_dn)) % 360.0
    aspect[~(grad > 0)] = np.nan
    return slope, aspect


class ElevationRegression(LinearCorrection):
    """Subtract the stable-ground regression of each component on elevation (and terrain).

    Terms (columns of the robust IRLS fit, see
    :func:`~glacierkit.velocity.corrections.base.robust_lstsq`):

    * ``intercept`` — offset at ``z_ref`` (median stable elevation), ``units``;
    * ``elevation`` — ``units`` per m of elevation;
    * ``slope`` (``slope=True``) — ``units`` per degree of terrain slope;
    * ``sin_aspect``, ``cos_aspect`` (``aspect=True``) — ``units``; aspect in degrees clockwise
      from north. Where the aspect is NaN but the given slope is exactly 0 (flat cells, for
      which most tools leave aspect undefined) both aspect terms are 0;
    * ``x``, ``y`` (``xy_order=1``) — ``units`` per ``xy_units`` (per node without ``x, y``),
      a plane fitted jointly; ``intercept`` is then the offset at ``z_ref`` and the centre of
      the stable nodes (``centre`` in the report).

    Nodes whose DEM (or requested slope / aspect) is NaN are not used in the fit and come out
    of :meth:`apply` as NaN. Elevation is centred and scaled internally for conditioning; the
    report is in raw units.

    Args:
        slope: Add a linear term in terrain slope (needs ``slope=`` in fit / apply).
        aspect: Add sin / cos aspect terms (needs ``aspect=`` in fit / apply).
        xy_order: 0 (none) or 1 (plane in the node coordinates, fitted jointly).
        min_stable: Fewest stable nodes with valid offsets and covariates to fit on.
    """

    name: ClassVar[str] = "ElevationRegression"

    def __init__(self, *, slope: bool = False, aspect: bool = False, xy_order: int = 0,
                 min_stable: int = 100) -> None:
        if xy_order not in (0, 1) or isinstance(xy_order, bool):
            raise InputError(f"xy_order must be 0 or 1, got {xy_order!r}.")
        super().__init__(min_stable=min_stable)
        self.use_slope = bool(slope)
        self.use_aspect = bool(aspect)
        self.xy_order = int(xy_order)
        self._z_ref = 0.0
        self._z_scale = 1.0
        self._centre = (0.0, 0.0)
        self._half = (1.0, 1.0)

    def _required(self) -> tuple[str, ...]:
        return ("dem",) + (("slope",) if self.use_slope else ()) + (
            ("aspect",) if self.use_aspect else ()) + (("xy",) if self.xy_order else ())

    @staticmethod
    def _aspect_terms(cov: Covariates) -> tuple[np.ndarray, np.ndarray]:
        a = np.radians(cov.aspect)
        s, c = np.sin(a), np.cos(a)
        if cov.slope is not None:
            flat = np.isnan(a) & (cov.slope == 0)
            s[flat] = 0.0
            c[flat] = 0.0
        return s, c

    def _usable(self, cov: Covariates) -> np.ndarray:
        ok = np.isfinite(cov.dem)
        if self.use_slope:
            ok &= np.isfinite(cov.slope)
        if self.use_aspect:
            s, c = self._aspect_terms(cov)
            ok &= np.isfinite(s) & np.isfinite(c)
        return ok

    def _prepare(self, cov: Covariates, sel: np.ndarray) -> None:
        z = cov.dem[sel]
        self._z_ref = float(np.median(z))
        spread = float(np.std(z))
        if spread <= 1e-9 * max(1.0, abs(self._z_ref)):
            raise InputError(f"{self.name}.fit: the stable nodes all lie at one elevation "
                             f"({self._z_ref:g} m); an elevation slope cannot be fitted.")
        self._z_scale = spread
        if self.xy_order:
            self._centre, self._half = centre_and_half_extent(cov, sel, self.name)

    def _design(self, cov: Covariates, where: np.ndarray | None = None) -> np.ndarray:
        def take(a: np.ndarray) -> np.ndarray:
            return a[where] if where is not None else a.ravel()

        cols = [np.ones(take(cov.dem).shape), (take(cov.dem) - self._z_ref) / self._z_scale]
        if self.use_slope:
            cols.append(take(cov.slope))
        if self.use_aspect:
            s, c = self._aspect_terms(cov)
            cols += [take(s), take(c)]
        if self.xy_order:
            cols += [(take(cov.x) - self._centre[0]) / self._half[0],
                     (take(cov.y) - self._centre[1]) / self._half[1]]
        return np.stack(cols, axis=1)

    def _terms(self) -> list[tuple[str, str]]:
        u = self._units
        terms = [("intercept", u), ("elevation", f"{u}/m")]
        if self.use_slope:
            terms.append(("slope", f"{u}/deg"))
        if self.use_aspect:
            terms += [("sin_aspect", u), ("cos_aspect", u)]
        if self.xy_order:
            terms += [("x", f"{u}/{self._xy_units}"), ("y", f"{u}/{self._xy_units}")]
        return terms

    def _coefficients(self, comp: str) -> tuple[np.ndarray, np.ndarray]:
        f = self._fits[comp]
        scale = np.ones_like(f.coef)
        scale[1] = 1.0 / self._z_scale
        if self.xy_order:
            scale[-2:] = 1.0 / np.asarray(self._half)
        return f.coef * scale, f.stderr * scale

    def _params(self) -> dict[str, Any]:
        out = super()._params()
        out["reference_elevation"] = {"value": self._z_ref, "unit": "m"}
        out["terms"] = [name for name, _ in self._terms()]
        if self.xy_order:
            out["coordinates"] = self._xy_kind
            out["centre"] = {"x": self._centre[0], "y": self._centre[1],
                             "unit": self._xy_units}
        return out
