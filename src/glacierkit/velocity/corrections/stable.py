"""Corrections estimated from the stable-ground offsets alone: constant shift, plane, polynomial.

* :class:`ConstantShift` — the median of each component over stable ground (autoRIFT's and
  CARST's bedrock correction): co-registration error between the two images.
* :class:`Polynomial` / :class:`Plane` — a low-order polynomial surface in the node
  coordinates ("global deformation": residual orbit / attitude errors, a small rotation or
  scale difference between the images), fitted robustly (xDEM's ``Deramp``).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from glacierkit.errors import InputError
from glacierkit.velocity.corrections.base import (
    NMAD_FACTOR,
    Covariates,
    LinearCorrection,
    RobustFit,
    _num,
    centre_and_half_extent,
)


class ConstantShift(LinearCorrection):
    """Subtract the stable-ground median of each component.

    The reported standard error is that of a median of Gaussian noise,
    ``sqrt(π/2) · NMAD / sqrt(n)``.

    Args:
        min_stable: Fewest stable nodes with valid offsets to fit on.
    """

    name: ClassVar[str] = "ConstantShift"

    def _design(self, cov: Covariates, where: np.ndarray | None = None) -> np.ndarray:
        n = int(where.sum()) if where is not None else cov.x.size
        return np.ones((n, 1))

    def _terms(self) -> list[tuple[str, str]]:
        return [("shift", self._units)]

    def _solve(self, a: np.ndarray, b: np.ndarray) -> RobustFit:
        med = float(np.median(b))
        nmad = float(NMAD_FACTOR * np.median(np.abs(b - med)))
        se = math.sqrt(math.pi / 2.0) * nmad / math.sqrt(b.size)
        return RobustFit(coef=np.array([med]), cov=np.array([[se * se]]), scale=nmad,
                         n_inliers=int(b.size), iterations=0)


def _exponents(order: int) -> list[tuple[int, int]]:
    """``(i, j)`` powers of ``(x, y)`` for total degree ≤ ``order``, by degree."""
    return [(d - j, j) for d in range(order + 1) for j in range(d + 1)]


def _term_name(i: int, j: int) -> str:
    parts = [p for p, k in (("x", i), ("y", j)) if k]
    if not parts:
        return "1"
    pw = {"x": i, "y": j}
    return "*".join(p if pw[p] == 1 else f"{p}^{pw[p]}" for p in parts)


class Polynomial(LinearCorrection):
    """Subtract a polynomial surface in the node coordinates, of total degree ``order``.

    Model per component: ``Σ c_ij · x^i · y^j`` over ``i + j ≤ order`` (order 1: a plane,
    ``c_00 + c_10·x + c_01·y``; order 2 adds ``x², x·y, y²``). Fitted by robust IRLS
    (:func:`~glacierkit.velocity.corrections.base.robust_lstsq`) in coordinates centred on
    the middle of the stable nodes and scaled by their half-extent, for conditioning; the
    report gives the coefficients in the raw coordinates (``x, y`` in ``xy_units`` when
    given to :meth:`fit`, node column / row index otherwise), with standard errors, and the
    model value at the centre.

    Args:
        order: Total degree, 1 or 2.
        min_stable: Fewest stable nodes with valid offsets to fit on.
    """

    name: ClassVar[str] = "Polynomial"

    def __init__(self, order: int = 1, *, min_stable: int = 100) -> None:
        if order not in (1, 2) or isinstance(order, bool):
            raise InputError(f"order must be 1 (plane) or 2 (quadratic), got {order!r}; use "
                             "ConstantShift for order 0.")
        super().__init__(min_stable=min_stable)
        self.order = int(order)
        self._exp = _exponents(self.order)
        self._centre = (0.0, 0.0)
        self._half = (1.0, 1.0)

    def _required(self) -> tuple[str, ...]:
        return ("xy",)

    def _prepare(self, cov: Covariates, sel: np.ndarray) -> None:
        self._centre, self._half = centre_and_half_extent(cov, sel, self.name)

    def _design(self, cov: Covariates, where: np.ndarray | None = None) -> np.ndarray:
        x = cov.x[where] if where is not None else cov.x.ravel()
        y = cov.y[where] if where is not None else cov.y.ravel()
        u = (x - self._centre[0]) / self._half[0]
        v = (y - self._centre[1]) / self._half[1]
        return np.stack([u**i * v**j for i, j in self._exp], axis=1)

    def _terms(self) -> list[tuple[str, str]]:
        out = []
        for i, j in self._exp:
            d = i + j
            unit = self._units if d == 0 else (
                f"{self._units}/{self._xy_units}" + (f"^{d}" if d > 1 else ""))
            out.append((_term_name(i, j), unit))
        return out

    def _to_raw(self) -> np.ndarray:
        """Matrix mapping normalised coefficients to raw-coordinate coefficients."""
        (xc, yc), (sx, sy) = self._centre, self._half
        idx = {e: n for n, e in enumerate(self._exp)}
        t = np.zeros((len(self._exp), len(self._exp)))
        for (i, j), col in idx.items():
            for k in range(i + 1):
                for m in range(j + 1):
                    t[idx[(k, m)], col] += (math.comb(i, k) * (-xc) ** (i - k) / sx**i
                                            * math.comb(j, m) * (-yc) ** (j - m) / sy**j)
        return t

    def _coefficients(self, comp: str) -> tuple[np.ndarray, np.ndarray]:
        f = self._fits[comp]
        t = self._to_raw()
        cov = t @ f.cov @ t.T
        return t @ f.coef, np.sqrt(np.clip(np.diag(cov), 0.0, None))

    def _params(self) -> dict[str, Any]:
        out = super()._params()
        out["order"] = self.order
        out["coordinates"] = self._xy_kind
        out["centre"] = {"x": self._centre[0], "y": self._centre[1], "unit": self._xy_units}
        for comp in ("dx", "dy"):
            f = self._fits[comp]
            out[comp]["at_centre"] = {"value": float(f.coef[0]), "stderr": _num(f.stderr[0]),
                                      "unit": self._units}
        return out


class Plane(Polynomial):
    """A :class:`Polynomial` of order 1 (affine ramp in x, y)."""

    name: ClassVar[str] = "Plane"

    def __init__(self, *, min_stable: int = 100) -> None:
        super().__init__(1, min_stable=min_stable)
