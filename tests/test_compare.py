"""compare(): likelihood-ratio / AIC table. Expected numbers come from lme4 via the
golden files (R run directly by tests/r/make_golden.R), not from the fits under test."""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from scipy import stats

import pylme_alliance as pa
from pylme_alliance.comparison import COLUMNS

from golden_cases import case, data_for

ML_SLOPES = case("sleepstudy_slopes_ml")["glance"]        # Reaction ~ Days + (Days | Subject), ML
REML_SLOPES = case("sleepstudy_slopes_reml")["glance"]    # same, REML
REML_INTERCEPT = case("sleepstudy_intercept_reml")["glance"]  # Reaction ~ Days + (1 | Subject), REML


def _quiet(fun, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fun(*args, **kwargs)


@pytest.fixture(scope="module")
def sleep():
    return data_for("sleepstudy_slopes_ml")


@pytest.fixture(scope="module")
def lmer_fits(sleep):
    return {"m0": _quiet(pa.lmer, "Reaction ~ Days + (1 | Subject)", sleep),
            "m1": _quiet(pa.lmer, "Reaction ~ Days + (Days | Subject)", sleep),
            "m2": _quiet(pa.lmer, "Reaction ~ 1 + (Days | Subject)", sleep)}


def test_same_fixed_effects_no_refit(lmer_fits):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no refit warning
        table = pa.compare(lmer_fits["m1"], lmer_fits["m0"])  # given out of order
    assert list(table.columns) == COLUMNS
    assert callable(pa.compare)
    assert table.index.tolist() == ["Reaction ~ Days + (1 | Subject)", "Reaction ~ Days + (Days | Subject)"]
    assert table.npar.tolist() == [REML_INTERCEPT["df"], REML_SLOPES["df"]]
    assert not table.refit_ml.any()
    np.testing.assert_allclose(table.logLik, [REML_INTERCEPT["logLik"], REML_SLOPES["logLik"]], rtol=1e-8)
    chisq = 2 * (REML_SLOPES["logLik"] - REML_INTERCEPT["logLik"])
    df = REML_SLOPES["df"] - REML_INTERCEPT["df"]
    row = table.iloc[1]
    assert row.chisq == pytest.approx(chisq, rel=1e-6)
    assert row.df == df == 2
    assert row.p_value == pytest.approx(stats.chi2.sf(chisq, df), rel=1e-5)
    assert np.isnan(table.iloc[0].chisq) and np.isnan(table.iloc[0].p_value)
    np.testing.assert_allclose(table.AIC, [REML_INTERCEPT["AIC"], REML_SLOPES["AIC"]], rtol=1e-8)
    np.testing.assert_allclose(table.BIC, [REML_INTERCEPT["BIC"], REML_SLOPES["BIC"]], rtol=1e-8)
    np.testing.assert_allclose(table.deviance, -2 * table.logLik)


def _check_refit_table(table, ml_null):
    assert table.refit_ml.all()
    small, big = table.iloc[0], table.iloc[1]
    assert (small.npar, big.npar) == (5, ML_SLOPES["df"])
    assert big.logLik == pytest.approx(ML_SLOPES["logLik"], rel=1e-6)
    assert big.AIC == pytest.approx(ML_SLOPES["AIC"], rel=1e-6)
    assert big.BIC == pytest.approx(ML_SLOPES["BIC"], rel=1e-6)
    assert small.logLik == pytest.approx(ml_null, rel=1e-6)
    chisq = 2 * (ML_SLOPES["logLik"] - ml_null)
    assert big.chisq == pytest.approx(chisq, rel=1e-5)
    assert big.df == 1
    assert big.p_value == pytest.approx(stats.chi2.sf(chisq, 1), rel=1e-4)


@pytest.fixture(scope="module")
def ml_null(sleep):
    """lme4's ML logLik of Reaction ~ 1 + (Days | Subject), fitted directly with ML."""
    return _quiet(pa.lmer, "Reaction ~ 1 + (Days | Subject)", sleep, reml=False).stats["logLik"]


def test_different_fixed_effects_refit_lme4(lmer_fits, ml_null):
    with pytest.warns(UserWarning, match="refitted with ML"):
        table = pa.compare(lmer_fits["m1"], lmer_fits["m2"])
    _check_refit_table(table, ml_null)
    assert lmer_fits["m1"].stats["reml"]  # the caller's fit is not changed


def test_refit_nlme_and_glmmtmb(sleep, ml_null):
    l1 = _quiet(pa.lme, "Reaction ~ Days", sleep, random="~ Days | Subject")
    l2 = _quiet(pa.lme, "Reaction ~ 1", sleep, random="~ Days | Subject")
    with pytest.warns(UserWarning, match="refitted with ML"):
        _check_refit_table(pa.compare(l1, l2), ml_null)
    g1 = _quiet(pa.glmmtmb, "Reaction ~ Days + (Days | Subject)", sleep, reml=True)
    g2 = _quiet(pa.glmmtmb, "Reaction ~ 1 + (Days | Subject)", sleep, reml=True)
    with pytest.warns(UserWarning, match="refitted with ML"):
        _check_refit_table(pa.compare(g1, g2), ml_null)


def test_refit_statsmodels(sleep, ml_null):
    s1 = _quiet(pa.mixedlm, "Reaction ~ Days", sleep, groups="Subject", re_formula="~Days")
    s2 = _quiet(pa.mixedlm, "Reaction ~ 1", sleep, groups="Subject", re_formula="~Days")
    with pytest.warns(UserWarning, match="refitted with ML"):
        table = pa.compare(s1, s2)
    assert table.index.tolist() == [s2.formula, s1.formula]
    _check_refit_table(table, ml_null)


def test_ml_fits_are_not_refitted(sleep, lmer_fits, ml_null):
    m1 = _quiet(pa.lmer, "Reaction ~ Days + (Days | Subject)", sleep, reml=False)
    m2 = _quiet(pa.lmer, "Reaction ~ 1 + (Days | Subject)", sleep, reml=False)
    table = pa.compare(m2, m1)
    assert not table.refit_ml.any()
    assert table.iloc[1].logLik == pytest.approx(ML_SLOPES["logLik"], rel=1e-8)
    # mixing an ML fit with a REML fit of the same fixed effects refits the REML one
    with pytest.warns(UserWarning, match="refitted with ML"):
        mixed = pa.compare(lmer_fits["m0"], m1, labels=["reml", "ml"])
    assert mixed.refit_ml.to_dict() == {"reml": True, "ml": False}


def test_cross_engine_reml_warns(sleep, lmer_fits):
    s1 = _quiet(pa.mixedlm, "Reaction ~ Days", sleep, groups="Subject", re_formula="~Days")
    with pytest.warns(UserWarning, match="REML likelihoods from different engines"):
        table = pa.compare(s1, lmer_fits["m1"])
    assert table.logLik.iloc[0] == pytest.approx(table.logLik.iloc[1], rel=1e-6)
    assert table.iloc[1].chisq == 0 and np.isnan(table.iloc[1].p_value)


def test_duplicate_formulas_get_model_labels(lmer_fits):
    table = pa.compare(lmer_fits["m0"], lmer_fits["m0"])
    assert table.index.tolist() == ["model1", "model2"]


def test_refusals(sleep, lmer_fits):
    with pytest.raises(pa.PylmeError, match="at least two"):
        pa.compare(lmer_fits["m0"])
    with pytest.raises(pa.PylmeError, match="MixedFit"):
        pa.compare(lmer_fits["m0"], "m1")
    fewer = _quiet(pa.lmer, "Reaction ~ Days + (Days | Subject)", sleep.iloc[:170])
    with pytest.raises(pa.PylmeError, match="different numbers of rows"):
        pa.compare(lmer_fits["m0"], fewer)
    poisson = dataclasses.replace(lmer_fits["m1"], call_args={**lmer_fits["m1"].call_args,
                                                              "family": "poisson"})
    with pytest.raises(pa.PylmeError, match="likelihood families"):
        pa.compare(lmer_fits["m0"], poisson)
    alien = dataclasses.replace(lmer_fits["m1"], engine="brms")
    with pytest.raises(pa.PylmeError, match="brms"):
        pa.compare(lmer_fits["m0"], alien)
    with pytest.raises(pa.PylmeError, match="labels"):
        pa.compare(lmer_fits["m0"], lmer_fits["m1"], labels=["a"])
