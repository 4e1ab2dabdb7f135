"""MixedFit behaves the same whichever R engine fitted it (lme4, nlme, glmmTMB)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pylme_alliance as pa

GOLDEN = Path(__file__).parent / "golden" / "data"
TIDY = ["effect", "group", "term", "estimate", "std_error", "statistic", "df", "p_value"]
ENGINES = ["lmer", "lme", "glmmtmb"]


@pytest.fixture(scope="module")
def sleepstudy() -> pd.DataFrame:
    df = pd.read_csv(GOLDEN / "sleepstudy.csv")
    df["Subject"] = df["Subject"].astype(str).astype("category")
    return df


def fit_engine(engine: str, data: pd.DataFrame):
    if engine == "lmer":
        return pa.lmer("Reaction ~ Days + (Days | Subject)", data)
    if engine == "lme":
        return pa.lme("Reaction ~ Days", data, random="~ Days | Subject")
    return pa.glmmtmb("Reaction ~ Days + (Days | Subject)", data)


@pytest.fixture(scope="module", params=ENGINES)
def fitted(request, sleepstudy):
    return request.param, fit_engine(request.param, sleepstudy)


def test_tidy_all_effects_with_intervals(fitted):
    engine, fit = fitted
    table = fit.tidy(effects=["fixed", "ran_pars", "ran_vals", "ran_coefs"], conf_int=True)
    assert list(table.columns[:8]) == TIDY
    assert {"conf_low", "conf_high", "level"} <= set(table.columns)
    counts = table["effect"].value_counts()
    assert counts["fixed"] == 2
    assert counts["ran_vals"] == 18 * 2
    assert counts["ran_coefs"] == 18 * 2
    assert counts["ran_pars"] >= 3
    fixed = table[table["effect"] == "fixed"]
    assert fixed["term"].tolist() == ["(Intercept)", "Days"]
    assert (fixed["conf_low"] < fixed["estimate"]).all() and (fixed["estimate"] < fixed["conf_high"]).all()
    np.testing.assert_allclose(fixed["estimate"], [251.405, 10.467], rtol=1e-3)
    ran_pars = table[table["effect"] == "ran_pars"]
    assert "sd__(Intercept)" in ran_pars["term"].tolist()
    assert ((ran_pars["group"] == "Residual") & (ran_pars["term"] == "sd__Observation")).any()


def test_ran_vals_and_ran_coefs_rows(fitted, sleepstudy):
    _, fit = fitted
    vals = fit.tidy("ran_vals")
    coefs = fit.tidy("ran_coefs")
    subjects = set(sleepstudy["Subject"].astype(str))
    for table in (vals, coefs):
        assert set(table["group"]) == {"Subject"}
        assert set(table["level"].astype(str)) == subjects
        assert set(table["term"]) == {"(Intercept)", "Days"}
    # ran_coefs = fixed effect + conditional mode, level by level
    fixef = fit.fixef()
    merged = coefs.merge(vals, on=["group", "level", "term"], suffixes=("_coef", "_val"))
    expected = merged["estimate_val"] + merged["term"].map(fixef)
    np.testing.assert_allclose(merged["estimate_coef"], expected, rtol=1e-6)


def _predict_newdata(engine, fit, sleepstudy):
    newdata = pd.DataFrame({"Days": [0.0, 2.5, 9.0],
                            "Subject": pd.Categorical(["308", "new subject", "372"])})
    got = fit.predict(newdata, include_random=False)
    by_hand = fit.fixef()["(Intercept)"] + fit.fixef()["Days"] * newdata["Days"].to_numpy()
    np.testing.assert_allclose(got, by_hand, rtol=1e-10)


@pytest.mark.parametrize("engine", ["lmer", "glmmtmb", "lme"])
def test_predict_fixed_only_equals_fixef_by_hand(engine, sleepstudy):
    _predict_newdata(engine, fit_engine(engine, sleepstudy), sleepstudy)


def test_predict_equals_augment_fitted(fitted):
    _, fit = fitted
    aug = fit.augment()
    np.testing.assert_allclose(fit.predict(), aug["fitted"].to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(aug["fitted"] + aug["resid"], aug["Reaction"], rtol=1e-8)
    assert len(aug) == fit.nobs == 180


def test_glance_columns(fitted):
    engine, fit = fitted
    g = fit.glance()
    assert len(g) == 1
    for col in ["nobs", "sigma", "logLik", "AIC", "BIC", "reml", "converged", "singular", "ngrps_Subject"]:
        assert col in g.columns, col
    assert g["nobs"].iloc[0] == 180 and g["ngrps_Subject"].iloc[0] == 18
    assert bool(g["reml"].iloc[0]) is (engine != "glmmtmb")
    assert bool(g["converged"].iloc[0]) and not bool(g["singular"].iloc[0])


def test_print_and_html(fitted):
    engine, fit = fitted
    text = str(fit)
    assert "Reaction" in text and "Fixed effects" in text and "Days" in text
    assert repr(fit).startswith("<MixedFit")
    html = fit._repr_html_()
    assert html.startswith("<div>") and "<table" in html and "Days" in html


@pytest.mark.parametrize("engine", ENGINES)
def test_n_dropped_counts_rows_missing_a_model_column(engine, sleepstudy):
    df = sleepstudy.copy()
    df.loc[[0, 17, 55, 100], "Reaction"] = np.nan
    df["unused"] = np.nan  # not a model column: must not drop anything
    fit = fit_engine(engine, df)
    assert fit.n_dropped == 4
    assert fit.nobs == 176
    assert len(fit.augment()) == 176
    assert not fit.augment().index.isin([0, 17, 55, 100]).any()
