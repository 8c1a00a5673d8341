"""Regressing annual mass balance on an indicator (AAR, ELA, snowline altitude).

The model is ordinary least squares ``b = a + s·x`` with ``b`` the annual balance (m w.e.)
and ``x`` the indicator; :class:`LinearFit` reports ``n``, Pearson ``r``, RMSE (m w.e.),
slope and intercept with 95 % confidence intervals (Student t, ``n − 2`` degrees of freedom) and
the two-sided p-value of ``s = 0``.

* :func:`fit_global` pools all glaciers into one line (the indicator must mean the same on
  every glacier: fine for the AAR, poor for an ELA, which depends on each glacier's altitude).
* :func:`fit_glacier_specific` fits one line per glacier (glaciers with fewer than
  ``min_years`` years are skipped and listed) and reports the pooled skill of those fits.
* :func:`cross_validate`: leave-one-year-out (LOYO: each year is predicted by a model fitted
  on every other year) and leave-one-glacier-out (LOGO: each glacier is predicted by the global
  model fitted on the other glaciers; glacier-specific models cannot predict an unseen
  glacier). Skill is ``r`` and RMSE of the pooled out-of-fold predictions.

Too few samples raise :class:`~glacierkit.errors.InputError` with the count: a fit needs at
least ``min_samples`` (default 3) finite pairs and a non-constant indicator.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from glacierkit.errors import InputError

log = logging.getLogger(__name__)

BALANCE = "annual_balance_m_we"
GROUP = "glacier_id"
YEAR = "year"


@dataclass(frozen=True)
class LinearFit:
    """An OLS line ``b = intercept + slope·x``.

    Attributes:
        x_name: Name of the indicator.
        n: Number of (x, b) pairs used.
        slope: m w.e. per indicator unit (e.g. per unit AAR, per metre of ELA).
        intercept: m w.e. (balance at ``x = 0``).
        slope_ci95, intercept_ci95: 95 % confidence intervals (t distribution, n − 2 dof).
        slope_se, intercept_se: Standard errors.
        r: Pearson correlation (NaN for constant balances).
        p_value: Two-sided p-value of ``slope = 0``.
        rmse_m_we: Root-mean-square residual of the fit itself (in-sample), m w.e.
    """

    x_name: str
    n: int
    slope: float
    intercept: float
    slope_ci95: tuple[float, float]
    intercept_ci95: tuple[float, float]
    slope_se: float
    intercept_se: float
    r: float
    p_value: float
    rmse_m_we: float

    def predict(self, x: np.ndarray | float) -> np.ndarray:
        """Balance (m w.e.) predicted for indicator values ``x``."""
        return self.intercept + self.slope * np.asarray(x, dtype=float)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (tuples → lists)."""
        return {"x": self.x_name, "n": self.n, "r": self.r, "rmse_m_we": self.rmse_m_we,
                "slope": self.slope, "slope_ci95": list(self.slope_ci95),
                "slope_se": self.slope_se, "intercept": self.intercept,
                "intercept_ci95": list(self.intercept_ci95), "intercept_se": self.intercept_se,
                "p_value": self.p_value}


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 2:
        return float("nan")
    da, db = a - a.mean(), b - b.mean()
    den = float(np.sqrt(np.sum(da * da) * np.sum(db * db)))
    return float(np.sum(da * db) / den) if den > 0 else float("nan")


def _ols(xa: np.ndarray, ya: np.ndarray, *, x_name: str, min_samples: int, what: str
         ) -> tuple[float, float]:
    """``(slope, intercept)`` of finite pairs; raises on too few pairs or a constant x."""
    n = int(xa.size)
    if n < min_samples:
        raise InputError(f"too few samples for the {what} of the balance on {x_name}: {n} "
                         f"finite pair(s), at least {min_samples} needed.")
    xm, ym = xa.mean(), ya.mean()
    dx = xa - xm
    sxx = float(np.dot(dx, dx))
    if sxx <= 1e-12 * max(1.0, float(np.dot(xa, xa))):
        raise InputError(f"{x_name} is constant ({xa[0]:g}) in the {what}; a slope cannot be "
                         f"fitted.")
    slope = float(np.dot(dx, ya - ym) / sxx)
    return slope, float(ym - slope * xm)


def fit_linear(x: np.ndarray | pd.Series, y: np.ndarray | pd.Series, *, x_name: str = "x",
               min_samples: int = 3, what: str = "regression") -> LinearFit:
    """Fit ``y = intercept + slope·x`` by ordinary least squares.

    Args:
        x: Indicator values, shape ``(n,)``.
        y: Annual balances (m w.e.), shape ``(n,)``. Pairs with a non-finite value are dropped.
        x_name: Indicator name for reports.
        min_samples: Fewest pairs accepted (≥ 3: a line through 2 points has no error estimate).
        what: Describes the fit in error messages (e.g. ``"glacier 491"``).

    Raises:
        InputError: fewer than ``min_samples`` finite pairs, or a constant indicator.
    """
    if min_samples < 3:
        raise InputError(f"min_samples must be ≥ 3; got {min_samples}.")
    xa = np.asarray(x, dtype=float).ravel()
    ya = np.asarray(y, dtype=float).ravel()
    if xa.shape != ya.shape:
        raise InputError(f"x and y differ in length ({xa.size} vs {ya.size}).")
    ok = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[ok], ya[ok]
    n = int(xa.size)
    slope, intercept = _ols(xa, ya, x_name=x_name, min_samples=min_samples, what=what)
    xm = xa.mean()
    sxx = float(np.sum((xa - xm) ** 2))
    resid = ya - (intercept + slope * xa)
    sse = float(np.sum(resid * resid))
    dof = n - 2
    s2 = sse / dof
    se_s = float(np.sqrt(s2 / sxx))
    se_i = float(np.sqrt(s2 * (1.0 / n + xm * xm / sxx)))
    tq = float(stats.t.ppf(0.975, dof))
    if se_s > 0:
        p = float(2 * stats.t.sf(abs(slope / se_s), dof))
    else:
        p = 0.0
    return LinearFit(x_name=x_name, n=n, slope=slope, intercept=intercept,
                     slope_ci95=(slope - tq * se_s, slope + tq * se_s),
                     intercept_ci95=(intercept - tq * se_i, intercept + tq * se_i),
                     slope_se=se_s, intercept_se=se_i, r=_pearson(xa, ya), p_value=p,
                     rmse_m_we=float(np.sqrt(sse / n)))


# ----------------------------------------------------------------------------- cross-validation
@dataclass
class CrossValidation:
    """Out-of-fold skill.

    Attributes:
        scheme: ``"loyo"`` or ``"logo"``.
        model: ``"global"`` or ``"glacier"`` (glacier-specific).
        n: Number of out-of-fold predictions.
        r: Pearson r between observed and predicted balances.
        rmse_m_we: RMSE of the predictions (m w.e.).
        n_folds: Folds evaluated.
        skipped: ``{fold: reason}`` for folds that could not be fitted (``on_small_fold="skip"``).
        predictions: ``glacier_id, year, observed_m_we, predicted_m_we, fold``.
    """

    scheme: str
    model: str
    n: int
    r: float
    rmse_m_we: float
    n_folds: int
    skipped: dict[str, str] = field(default_factory=dict)
    predictions: pd.DataFrame = field(default_factory=pd.DataFrame)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the predictions)."""
        return {"scheme": self.scheme, "model": self.model, "n": self.n, "r": self.r,
                "rmse_m_we": self.rmse_m_we, "n_folds": self.n_folds,
                "n_skipped_folds": len(self.skipped)}


def _clean(df: pd.DataFrame, x: str, y: str, group: str, year: str) -> pd.DataFrame:
    missing = [c for c in (x, y, group, year) if c not in df.columns]
    if missing:
        raise InputError(f"table lacks column(s) {missing}; it has {list(df.columns)}.")
    d = df[[group, year, x, y]].copy()
    d[x] = pd.to_numeric(d[x], errors="coerce")
    d[y] = pd.to_numeric(d[y], errors="coerce")
    d = d[np.isfinite(d[x].to_numpy(float)) & np.isfinite(d[y].to_numpy(float))]
    d[group] = d[group].astype(str)
    return d.reset_index(drop=True)


def cross_validate(df: pd.DataFrame, x: str, *, y: str = BALANCE,
                   scheme: Literal["loyo", "logo"] = "loyo",
                   model: Literal["global", "glacier"] = "global", min_samples: int = 3,
                   group: str = GROUP, year: str = YEAR,
                   on_small_fold: Literal["error", "skip"] = "error") -> CrossValidation:
    """Leave-one-year-out or leave-one-glacier-out cross-validation.

    Args:
        df: One row per glacier-year with columns ``group``, ``year``, ``x`` and ``y``.
        x: Indicator column.
        y: Balance column (m w.e.).
        scheme: ``"loyo"``: every year is a fold; ``"logo"``: every glacier is a fold.
        model: ``"global"`` (one pooled line per fold) or ``"glacier"`` (a line per glacier,
            LOYO only: each glacier-year predicted from the same glacier's other years).
        min_samples: Fewest training pairs per fold.
        on_small_fold: ``"error"``: a fold with too few training pairs raises; ``"skip"``: it
            is left out and listed in :attr:`CrossValidation.skipped`.

    Raises:
        InputError: bad scheme/model, LOGO with < 2 glaciers, LOYO with < 2 years, a small
            fold under ``"error"``, or no fold could be evaluated.
    """
    if scheme not in ("loyo", "logo"):
        raise InputError(f"scheme must be 'loyo' or 'logo'; got {scheme!r}.")
    if model not in ("global", "glacier"):
        raise InputError(f"model must be 'global' or 'glacier'; got {model!r}.")
    if model == "glacier" and scheme == "logo":
        raise InputError("leave-one-glacier-out needs the global model: a glacier-specific "
                         "line cannot predict a glacier it was not fitted on.")
    d = _clean(df, x, y, group, year)
    fold_col = year if scheme == "loyo" else group
    if scheme == "logo" and d[group].nunique() < 2:
        raise InputError(f"leave-one-glacier-out needs ≥ 2 glaciers; the table has "
                         f"{d[group].nunique()}.")
    if scheme == "loyo" and d[year].nunique() < 2:
        raise InputError(f"leave-one-year-out needs ≥ 2 years; the table has "
                         f"{d[year].nunique()}.")
    parts: list[tuple[np.ndarray, ...]] = []
    skipped: dict[str, str] = {}
    groups = [("all", d)] if model == "global" else list(d.groupby(group, sort=True))
    n_folds = 0
    for gname, gd in groups:
        gx, gy = gd[x].to_numpy(float), gd[y].to_numpy(float)
        gk = gd[fold_col].to_numpy()
        gid, gyear = gd[group].to_numpy(), gd[year].to_numpy()
        for fold in np.unique(gk):
            test = gk == fold
            label = f"{fold_col} {fold}" if model == "global" else f"glacier {gname}, year {fold}"
            try:
                slope, intercept = _ols(gx[~test], gy[~test], x_name=x, min_samples=min_samples,
                                        what=f"training set of the {scheme.upper()} fold "
                                             f"{label}")
            except InputError as e:
                if on_small_fold == "error":
                    raise
                skipped[label] = str(e)
                continue
            n_folds += 1
            parts.append((gid[test], gyear[test], gy[test], intercept + slope * gx[test],
                          np.full(int(test.sum()), str(fold), dtype=object)))
    if not parts:
        raise InputError(f"no {scheme.upper()} fold could be fitted ({len(skipped)} skipped; "
                         f"each needs ≥ {min_samples} training pairs).")
    cols = [np.concatenate(c) for c in zip(*parts, strict=True)]
    pred = pd.DataFrame(dict(zip(("glacier_id", "year", "observed_m_we", "predicted_m_we",
                                  "fold"), cols, strict=True)))
    o, p = pred["observed_m_we"].to_numpy(), pred["predicted_m_we"].to_numpy()
    return CrossValidation(scheme=scheme, model=model, n=int(o.size), r=_pearson(o, p),
                           rmse_m_we=float(np.sqrt(np.mean((o - p) ** 2))), n_folds=n_folds,
                           skipped=skipped, predictions=pred)


# ----------------------------------------------------------------------------- models
def _cv_or_note(df: pd.DataFrame, x: str, notes: list[str], **kw: Any) -> CrossValidation | None:
    try:
        return cross_validate(df, x, on_small_fold="skip", **kw)
    except InputError as e:
        notes.append(f"{kw.get('scheme', 'loyo').upper()} not evaluated: {e}")
        return None


@dataclass
class GlobalModel:
    """One line pooled over all glaciers, with LOYO and LOGO cross-validation."""

    fit: LinearFit
    n_glaciers: int
    cv_loyo: CrossValidation | None
    cv_logo: CrossValidation | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary with the flat keys used by reports and ``--json``."""
        f = self.fit
        return {"n": f.n, "n_glaciers": self.n_glaciers, "r": f.r, "rmse_m_we": f.rmse_m_we,
                "slope": f.slope, "slope_ci95": list(f.slope_ci95), "intercept": f.intercept,
                "intercept_ci95": list(f.intercept_ci95), "p_value": f.p_value,
                **_cv_keys("loyo", self.cv_loyo), **_cv_keys("logo", self.cv_logo),
                "notes": self.notes}


def _cv_keys(scheme: str, cv: CrossValidation | None) -> dict[str, Any]:
    return {f"cv_{scheme}_r": cv.r if cv else None,
            f"cv_{scheme}_rmse_m_we": cv.rmse_m_we if cv else None,
            f"cv_{scheme}_n": cv.n if cv else 0}


def fit_global(df: pd.DataFrame, x: str, *, y: str = BALANCE, min_samples: int = 3,
               group: str = GROUP, year: str = YEAR, cross_validation: bool = True
               ) -> GlobalModel:
    """Pooled regression of the balance on ``x`` across all glaciers, with LOYO/LOGO CV.

    CV folds with too few training pairs are skipped and counted; a CV that cannot run at all
    (one year, one glacier) is reported as ``None`` with a note.

    Raises:
        InputError: fewer than ``min_samples`` finite pairs, or a constant ``x``.
    """
    d = _clean(df, x, y, group, year)
    fit = fit_linear(d[x], d[y], x_name=x, min_samples=min_samples, what="global regression")
    notes: list[str] = []
    loyo = logo = None
    if cross_validation:
        loyo = _cv_or_note(d, x, notes, y=y, scheme="loyo", model="global",
                           min_samples=min_samples, group=group, year=year)
        logo = _cv_or_note(d, x, notes, y=y, scheme="logo", model="global",
                           min_samples=min_samples, group=group, year=year)
        for cv in (loyo, logo):
            if cv is not None and cv.skipped:
                notes.append(f"{cv.scheme.upper()}: {len(cv.skipped)} fold(s) skipped (too "
                             f"few training pairs)")
    return GlobalModel(fit=fit, n_glaciers=int(d[group].nunique()), cv_loyo=loyo, cv_logo=logo,
                       notes=notes)


@dataclass
class GlacierSpecificModel:
    """One line per glacier; pooled in-sample skill and pooled glacier-wise LOYO skill.

    Attributes:
        fits: ``{glacier_id: LinearFit}``.
        skipped: ``{glacier_id: reason}`` for glaciers with too few years (or constant x).
        n: Glacier-years in the fitted glaciers.
        r, rmse_m_we: Pooled skill of the per-glacier fits (in-sample).
        cv_loyo: Each glacier-year predicted from the same glacier's other years (glaciers with
            fewer than ``min_years + 1`` years cannot be cross-validated; counted).
    """

    fits: dict[str, LinearFit]
    skipped: dict[str, str]
    n: int
    r: float
    rmse_m_we: float
    cv_loyo: CrossValidation | None
    notes: list[str] = field(default_factory=list)

    @property
    def median_slope(self) -> float:
        """Median of the per-glacier slopes."""
        return float(np.median([f.slope for f in self.fits.values()]))

    def to_dict(self, *, per_glacier: bool = True) -> dict[str, Any]:
        """JSON-ready summary.

        ``slope`` is the median of the per-glacier slopes; ``slope_ci95`` and ``intercept`` are
        ``None`` at the top level (each glacier's are under ``glaciers``).
        """
        out = {"n": self.n, "n_glaciers": len(self.fits), "r": self.r,
               "rmse_m_we": self.rmse_m_we, "slope": self.median_slope,
               "slope_ci95": None, "intercept": None,
               **_cv_keys("loyo", self.cv_loyo), "cv_logo_r": None, "cv_logo_rmse_m_we": None,
               "cv_logo_n": 0, "n_skipped_glaciers": len(self.skipped), "notes": self.notes}
        if per_glacier:
            out["glaciers"] = {g: f.to_dict() for g, f in self.fits.items()}
            out["skipped_glaciers"] = dict(self.skipped)
        return out


def fit_glacier_specific(df: pd.DataFrame, x: str, *, y: str = BALANCE, min_years: int = 3,
                         group: str = GROUP, year: str = YEAR, cross_validation: bool = True
                         ) -> GlacierSpecificModel:
    """One regression per glacier; glaciers with fewer than ``min_years`` pairs are skipped.

    Raises:
        InputError: no glacier has ``min_years`` usable pairs (the message gives the counts).
    """
    d = _clean(df, x, y, group, year)
    fits: dict[str, LinearFit] = {}
    skipped: dict[str, str] = {}
    pred, obs = [], []
    for gid, gd in d.groupby(group, sort=True):
        try:
            f = fit_linear(gd[x], gd[y], x_name=x, min_samples=min_years,
                           what=f"regression of glacier {gid}")
        except InputError as e:
            skipped[str(gid)] = str(e)
            continue
        fits[str(gid)] = f
        pred.append(f.predict(gd[x].to_numpy(float)))
        obs.append(gd[y].to_numpy(float))
    if not fits:
        counts = d.groupby(group).size()
        raise InputError(f"too few samples for glacier-specific regressions on {x}: no glacier "
                         f"has ≥ {min_years} usable years (largest: "
                         f"{int(counts.max()) if len(counts) else 0}).")
    notes = []
    if skipped:
        notes.append(f"{len(skipped)} glacier(s) skipped (fewer than {min_years} usable years "
                     f"or constant {x})")
        log.info("glacier-specific %s: %s", x, notes[-1])
    o, p = np.concatenate(obs), np.concatenate(pred)
    cv = None
    if cross_validation:
        dd = d[d[group].isin(list(fits))]
        cv = _cv_or_note(dd, x, notes, y=y, scheme="loyo", model="glacier",
                         min_samples=min_years, group=group, year=year)
        if cv is not None and cv.skipped:
            n_gl = len({k.split(",")[0] for k in cv.skipped})
            notes.append(f"LOYO: {len(cv.skipped)} fold(s) of {n_gl} glacier(s) skipped (a "
                         f"glacier needs ≥ {min_years + 1} years to be cross-validated)")
    return GlacierSpecificModel(fits=fits, skipped=skipped, n=int(o.size), r=_pearson(o, p),
                                rmse_m_we=float(np.sqrt(np.mean((o - p) ** 2))), cv_loyo=cv,
                                notes=notes)


def fit_indicator(df: pd.DataFrame, x: str, *, y: str = BALANCE, min_samples: int = 3,
                  group: str = GROUP, year: str = YEAR, per_glacier: bool = True
                  ) -> dict[str, Any]:
    """Global and glacier-specific regressions of the balance on ``x`` as one JSON-ready dict.

    Returns ``{"indicator", "global", "glacier_specific"}``; a part that cannot be fitted holds
    ``{"error": message}`` instead, so one indicator with few samples does not hide the other.
    """
    out: dict[str, Any] = {"indicator": x}
    try:
        out["global"] = fit_global(df, x, y=y, min_samples=min_samples, group=group,
                                   year=year).to_dict()
    except InputError as e:
        out["global"] = {"error": str(e)}
    try:
        out["glacier_specific"] = fit_glacier_specific(
            df, x, y=y, min_years=min_samples, group=group, year=year
        ).to_dict(per_glacier=per_glacier)
    except InputError as e:
        out["glacier_specific"] = {"error": str(e)}
    return out
