from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from glacierkit.errors import InputError
from glacierkit.massbalance import (
    cross_validate,
    fit_glacier_specific,
    fit_global,
    fit_indicator,
    fit_linear,
)


def synthetic(n_glaciers: int = 4, years=range(2000, 2012), noise: float = 0.0,
              seed: int = 1) -> pd.DataFrame:
    """b = 0.5 − 2·x (+ noise) for every glacier-year."""
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(n_glaciers):
        for y in years:
            x = rng.uniform(0, 1)
            rows.append({"glacier_id": str(100 + g), "year": y, "aar": x,
                         "annual_balance_m_we": 0.5 - 2.0 * x + noise * rng.normal()})
    return pd.DataFrame(rows)


def test_fit_linear__recovers_known_relation():
    rng = np.random.default_rng(7)
    x = rng.uniform(0, 1, 400)
    y = -1.7 + 2.6 * x + rng.normal(0, 0.2, 400)
    f = fit_linear(x, y, x_name="aar")
    assert f.n == 400
    assert abs(f.slope - 2.6) < 4 * f.slope_se and f.slope_se < 0.04
    assert abs(f.intercept + 1.7) < 4 * f.intercept_se and f.intercept_se < 0.03
    assert f.rmse_m_we == pytest.approx(0.2, abs=0.02)
    assert 0.9 < f.r < 1 and f.p_value < 1e-20
    np.testing.assert_allclose(f.predict([0, 1]), [f.intercept, f.intercept + f.slope])


def test_fit_linear__ci95_covers_truth_95_percent_of_the_time():
    rng = np.random.default_rng(3)
    x = np.linspace(0, 1, 12)
    hits_s = hits_i = 0
    reps = 1000
    for _ in range(reps):
        f = fit_linear(x, 0.4 - 1.5 * x + rng.normal(0, 0.3, x.size))
        hits_s += f.slope_ci95[0] < -1.5 < f.slope_ci95[1]
        hits_i += f.intercept_ci95[0] < 0.4 < f.intercept_ci95[1]
    # Binomial sd of the coverage over 1000 replicates is 0.007.
    assert 0.93 < hits_s / reps < 0.97 and 0.93 < hits_i / reps < 0.97


def test_fit_linear__exact_line_and_ci_width_matches_scipy():
    from scipy import stats

    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    y = np.array([2.1, 3.9, 6.2, 7.8, 10.1])
    f = fit_linear(x, y)
    ref = stats.linregress(x, y)
    assert f.slope == pytest.approx(ref.slope) and f.intercept == pytest.approx(ref.intercept)
    assert f.r == pytest.approx(ref.rvalue) and f.p_value == pytest.approx(ref.pvalue)
    t = stats.t.ppf(0.975, 3)
    assert f.slope_ci95[1] - f.slope == pytest.approx(t * ref.stderr)
    assert f.intercept_se == pytest.approx(ref.intercept_stderr)


def test_fit_linear__nan_pairs_dropped():
    f = fit_linear([0, 1, np.nan, 2, 3], [1, 3, 5, np.nan, 7])
    assert f.n == 3 and f.slope == pytest.approx(2.0)


def test_fit_linear__too_few_samples():
    with pytest.raises(InputError, match=r"too few samples.*2 finite pair"):
        fit_linear([0, 1, np.nan], [1, 2, 3], x_name="aar")


def test_fit_linear__constant_indicator():
    with pytest.raises(InputError, match="constant"):
        fit_linear([0.5, 0.5, 0.5, 0.5], [1, 2, 3, 4], x_name="aar")


def test_cross_validation__exact_relation_predicted_exactly():
    d = synthetic()
    for scheme in ("loyo", "logo"):
        cv = cross_validate(d, "aar", scheme=scheme)
        assert cv.n == len(d) and cv.rmse_m_we < 1e-10 and cv.r == pytest.approx(1.0)
    assert cross_validate(d, "aar", scheme="loyo").n_folds == 12
    assert cross_validate(d, "aar", scheme="logo").n_folds == 4
    cvg = cross_validate(d, "aar", scheme="loyo", model="glacier")
    assert cvg.n_folds == 48 and cvg.rmse_m_we < 1e-10


def test_cross_validation__out_of_fold_is_worse_than_in_sample():
    d = synthetic(noise=0.3)
    g = fit_global(d, "aar")
    assert g.cv_loyo is not None and g.cv_logo is not None
    assert g.cv_loyo.rmse_m_we > g.fit.rmse_m_we
    assert g.cv_logo.rmse_m_we > g.fit.rmse_m_we
    # Each fold's prediction equals a fit made without that fold.
    year = 2005
    train = d[d["year"] != year]
    f = fit_linear(train["aar"], train["annual_balance_m_we"])
    p = g.cv_loyo.predictions
    sub = p[p["year"] == year]
    np.testing.assert_allclose(sub["predicted_m_we"],
                               f.predict(d.loc[d["year"] == year, "aar"].to_numpy()))


def test_cross_validation__small_fold_error_and_skip():
    d = synthetic(n_glaciers=1, years=range(2000, 2004))  # 4 years: LOYO trains on 3
    d = d[d["year"] != 2003]  # 3 years: LOYO trains on 2 → too few
    with pytest.raises(InputError, match=r"too few samples.*LOYO fold year 2000"):
        cross_validate(d, "aar", scheme="loyo")
    with pytest.raises(InputError, match="no LOYO fold"):
        cross_validate(d, "aar", scheme="loyo", on_small_fold="skip")
    with pytest.raises(InputError, match="≥ 2 glaciers"):
        cross_validate(d, "aar", scheme="logo")
    with pytest.raises(InputError, match="global model"):
        cross_validate(synthetic(), "aar", scheme="logo", model="glacier")


def test_glacier_specific__skips_short_records_and_states_it():
    d = synthetic(n_glaciers=3, noise=0.1)
    short = pd.DataFrame({"glacier_id": "999", "year": [2000, 2001], "aar": [0.2, 0.6],
                          "annual_balance_m_we": [0.1, -0.7]})
    gs = fit_glacier_specific(pd.concat([d, short]), "aar")
    assert set(gs.fits) == {"100", "101", "102"}
    assert "999" in gs.skipped and "too few samples" in gs.skipped["999"]
    assert any("skipped" in n for n in gs.notes)
    assert gs.n == len(d) and gs.median_slope == pytest.approx(-2.0, abs=0.15)
    assert gs.cv_loyo is not None and gs.cv_loyo.n == len(d)
    with pytest.raises(InputError, match="no glacier has ≥ 3"):
        fit_glacier_specific(short, "aar")


def test_fit_indicator__report_keys_and_errors_kept_per_part():
    r = fit_indicator(synthetic(noise=0.2), "aar")
    for part in ("global", "glacier_specific"):
        for k in ("n", "r", "rmse_m_we", "slope", "slope_ci95", "intercept", "cv_loyo_r",
                  "cv_loyo_rmse_m_we", "cv_logo_r", "cv_logo_rmse_m_we"):
            assert k in r[part], (part, k)
    assert r["global"]["cv_logo_n"] == 48 and r["glacier_specific"]["cv_logo_r"] is None
    tiny = synthetic(n_glaciers=1, years=[2000, 2001])
    r2 = fit_indicator(tiny, "aar")
    assert "too few samples" in r2["global"]["error"]
    assert "too few samples" in r2["glacier_specific"]["error"]
