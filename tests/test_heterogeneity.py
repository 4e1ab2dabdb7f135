"""Heterogeneity tested before it is claimed (issue 9, items 3, 4, 6, 9): the random-slope
LRT with its boundary mixture, the degenerate flag, the model-implied share and its
interval, interval-based patient categories, shrinkage, kept warnings, the standardised
estimate against a hand calculation, and a reversed outcome that flips every sign."""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import pylme_alliance as pa
from pylme_alliance.errors import PylmeError, RWarning
from pylme_alliance.models import detectable, estimands
from pylme_alliance.models.heterogeneity import degenerate_reasons, mixture_p_value, share_interval

from r_stack import glmmtmb_tmb_mismatch


def quiet(func, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return func(*args, **kwargs)


def _prepare(data, **kwargs):
    return quiet(pa.prepare, data, patient="patient", session="session", alliance="alliance",
                 outcome="outcome", therapist="therapist", leads=(1,), **kwargs)


@pytest.fixture(scope="module", autouse=True)
def no_measured_designs():
    """The mechanics of the test, not the verdict the recovery study's records would impose
    on data like these (a rejection is no support where the measured size is above .10:
    test_heterogeneity_calibrated.py)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(detectable, "RECORDS", ())
        yield


@pytest.fixture(scope="module")
def hetero_data():
    # strong heterogeneity, fixed T = 12: the slope SD is well identified
    return pa.simulate(n_patients=160, n_therapists=16, sessions=12, missed=0, dropout=0,
                       slope_sd=4.0, within_effect=(-2.0, 0.0, 0.0), seed=21).data


@pytest.fixture(scope="module")
def hetero_fit(hetero_data):
    panel = _prepare(hetero_data, outcome_better="lower")
    return quiet(pa.AllianceModel().fit, panel)


@pytest.fixture(scope="module")
def hetero(hetero_fit):
    # the mechanics of the test as such: this fit's own slope, the asymptotic mixture
    # (the calibrated default is tested in test_heterogeneity_calibrated.py)
    return quiet(hetero_fit.heterogeneity, interval=False, trend=False, method="mixture")


# ------------------------------------------------------------------ the LRT
def test_mixture_p_value_is_the_boundary_mixture():
    # q = 2 (slope variance + its correlation): 0.5 chi2(1) + 0.5 chi2(2)
    for lr in (0.5, 2.0, 3.84, 7.0):
        expected = 0.5 * stats.chi2.sf(lr, 1) + 0.5 * stats.chi2.sf(lr, 2)
        assert mixture_p_value(lr, 2) == pytest.approx(expected, rel=1e-12)
        assert mixture_p_value(lr, 2) < stats.chi2.sf(lr, 2)  # less conservative than naive chi2(2)
    # q = 1 (an uncorrelated variance): 0.5 chi2(0) + 0.5 chi2(1); chi2(0) is a point mass at 0
    assert mixture_p_value(2.706, 1) == pytest.approx(0.5 * stats.chi2.sf(2.706, 1), rel=1e-12)
    assert mixture_p_value(0.0, 1) == pytest.approx(1.0)
    assert mixture_p_value(0.0, 2) == pytest.approx(1.0)


def test_slope_test_is_the_refit_without_the_slope(hetero_fit, hetero):
    test = hetero.test
    assert test is not None
    reduced = quiet(hetero_fit.model.replace(random_slope=False).fit, hetero_fit.panel)
    lr = 2 * (hetero_fit.glance()["logLik"].iloc[0] - reduced.glance()["logLik"].iloc[0])
    assert test.statistic == pytest.approx(lr, rel=1e-6)
    assert test.df == 2 and test.mixture == "0.5*chi2(1) + 0.5*chi2(2)"
    assert test.criterion == "REML"  # lme4's default; both fits use it
    assert test.p_value == pytest.approx(0.5 * stats.chi2.sf(lr, 1) + 0.5 * stats.chi2.sf(lr, 2), rel=1e-9)
    assert {r.split(": ")[1] for r in test.removed} == {"sd__alliance_within",
                                                          "cor__(Intercept).alliance_within"}
    # slope SD 4 with 12 sessions each: the test finds it at the report's alpha, and the
    # verdict says so
    assert test.p_value < 0.05
    assert "varies between patients" in hetero.statement()
    # here the intercepts' SDs are ~0 (the patient and therapist levels are absorbed by
    # the outcome's person mean, the Mundlak term): they were removed from the fit, which
    # is then not degenerate, and the slope claim stands
    assert set(hetero_fit.removed_terms) == {"therapist:patient: (Intercept)", "therapist: (Intercept)"}
    assert not hetero.degenerate and hetero.degenerate_reason == ""
    assert hetero.verdict == "supported" and hetero.supported


def test_no_heterogeneity_is_not_claimed():
    data = pa.simulate(n_patients=120, n_therapists=12, sessions=8, missed=0, dropout=0, slope_sd=0.0,
                       seed=4).data
    fit = quiet(pa.AllianceModel().fit, _prepare(data))
    het = quiet(fit.heterogeneity, interval=False, draws=39)
    assert het.test.p_value > 0.05 and het.test.calibrated
    # no slope variance in the truth: the intercepts the fixed part absorbs (at the
    # boundary, perfectly correlated with the slope) are removed as unsupported, and the
    # test of the slope then does not reject
    assert fit.removed_terms and "do not support" in " ".join(fit.notes)
    assert het.verdict == "not supported" and not het.supported
    assert "cannot distinguish" in het.statement()
    assert "not supported" in het.summary.set_index("statistic").loc["random-slope test", "note"]


@pytest.mark.skipif(glmmtmb_tmb_mismatch() is not None, reason=str(glmmtmb_tmb_mismatch()))
def test_engines_agree_and_glmmtmb_uses_ml(hetero_data):
    # without the outcome control the patient intercept is well away from 0
    panel = _prepare(hetero_data)
    same = dict(interval=False, trend=False, method="mixture")  # the same test on each engine
    lme4 = quiet(quiet(pa.AllianceModel(control_outcome=False).fit, panel).heterogeneity, **same)
    nlme = quiet(quiet(pa.AllianceModel(engine="nlme", control_outcome=False).fit, panel).heterogeneity, **same)
    assert lme4.test.statistic == pytest.approx(nlme.test.statistic, rel=1e-3)  # both REML
    tmb = quiet(quiet(pa.AllianceModel(engine="glmmtmb", control_outcome=False).fit, panel).heterogeneity,
                **same)
    assert tmb.test.criterion == "ML" and tmb.test.df == 2
    assert tmb.test.p_value < 0.05 and tmb.verdict == "supported" and not tmb.degenerate


def test_missing_loglik_is_not_tested_not_unsupported(hetero_fit):
    stats_ = dict(hetero_fit.stats, logLik=float("nan"))
    fit = dataclasses.replace(hetero_fit, stats=stats_)
    het = quiet(fit.heterogeneity, interval=False, trend=False, method="mixture")
    assert het.verdict == "not tested"
    assert any("log-likelihood is missing" in w for w in het.warnings)


def test_statsmodels_variance_component_slope_is_refused_clearly(hetero_data):
    # a few therapists: statsmodels' variance-component fit is slow (minutes on all 16),
    # and the refusal concerns the model's structure, not its size
    few = hetero_data[hetero_data["therapist"].isin(sorted(hetero_data["therapist"].unique())[:3])]
    fit = quiet(pa.AllianceModel(engine="statsmodels").fit, _prepare(few))
    with pytest.raises(PylmeError, match="therapist='none'"):
        fit.heterogeneity(interval=False)


# ------------------------------------------------------------------ degenerate
def test_degenerate_follows_glance_and_says_why():
    data = pa.simulate(n_patients=120, seed=3).data  # gives a degenerate fit (patient SD ~ 0)
    fit = quiet(pa.AllianceModel().fit, _prepare(data))
    het = quiet(fit.heterogeneity, interval=False, test=False)
    assert het.degenerate == bool(fit.glance()["degenerate"].iloc[0]) is True
    assert "about 0" in het.degenerate_reason
    # the slope itself is at the boundary: not estimated (a test would not change that)
    assert "alliance_within" in het.degenerate_reason and het.verdict == "not estimated"
    table = pd.DataFrame({"group": ["p", "p", "p", "Residual"],
                          "term": ["sd__(Intercept)", "sd__alliance_within", "cor__(Intercept).alliance_within",
                                   "sd__Observation"],
                          "estimate": [3.0, 1.0, -0.999999, 9.0]})
    reasons = degenerate_reasons(table, 9.0)
    assert len(reasons) == 1 and "correlation" in reasons[0] and "-0.999999" in reasons[0]
    assert degenerate_reasons(table.assign(estimate=[3.0, 1.0, -0.5, 9.0]), 9.0) == []


# ------------------------------------------------------------------ share
def test_share_is_model_implied(hetero_fit, hetero):
    beta = hetero_fit.fixef()["alliance_within"]
    tau = hetero_fit.tidy("ran_pars").query("term == 'sd__alliance_within'")["estimate"].iloc[0]
    assert hetero.share == pytest.approx(stats.norm.cdf(-beta / tau), rel=1e-10)  # lower is better
    assert hetero.share_label == "share beneficial (model)"
    # the mixture test is not calibrated: the summary prints no share (issue 18)
    row = hetero.summary.set_index("statistic").loc["share beneficial (model)"]
    assert np.isnan(row["estimate"]) and "not calibrated" in row["note"] and not hetero.share_shown
    # no BLUP-sign count anywhere
    assert not hetero.summary["statistic"].str.contains("patients\\)").any()
    assert "beneficial" not in hetero.patients.columns


def test_share_interval_covers_in_an_ideal_sampling_model():
    """The propagation's coverage when beta-hat is normal and tau's interval is exact."""
    rng = np.random.default_rng(7)
    beta, se, tau, k = -2.0, 0.5, 2.5, 60
    truth = stats.norm.cdf(-beta / tau)
    hits = []
    for _ in range(300):
        b = beta + se * rng.standard_normal()
        t = tau * np.sqrt(rng.chisquare(k) / k)
        lo, hi = t * np.sqrt(k / stats.chi2.ppf(0.975, k)), t * np.sqrt(k / stats.chi2.ppf(0.025, k))
        low, high = share_interval(b, se, t, lo, hi, sign=-1.0, draws=4000)
        hits.append(low <= truth <= high)
    assert 0.91 <= np.mean(hits) <= 0.995


@pytest.mark.skipif(glmmtmb_tmb_mismatch() is not None, reason=str(glmmtmb_tmb_mismatch()))
def test_share_interval_from_a_real_engine(hetero_data):
    # glmmTMB's Wald interval of the log SD is cheap: the share interval exists
    fit = quiet(pa.AllianceModel(engine="glmmtmb", control_outcome=False).fit,
                _prepare(hetero_data, outcome_better="lower"))
    het = quiet(fit.heterogeneity, test=False, trend=False)
    assert np.isfinite(het.slope_sd_low) and het.slope_sd_low < het.slope_sd < het.slope_sd_high
    assert het.share_low <= het.share <= het.share_high
    assert "Monte Carlo propagation" in het.share_method
    truth = stats.norm.cdf(2.0 / 4.0)
    assert het.share_low - 0.1 < truth < het.share_high + 0.1


# ------------------------------------------------------------------ patients
def test_patient_categories_come_from_intervals(hetero_fit, hetero):
    p = hetero.patients
    assert set(p["category"]) <= {"clearly beneficial", "uncertain", "clearly harmful"}
    np.testing.assert_array_equal(p["category"] == "clearly beneficial", p["conf_high"] < 0)
    np.testing.assert_array_equal(p["category"] == "clearly harmful", p["conf_low"] > 0)
    # negative BLUP-based slopes whose interval covers 0 are NOT counted as beneficial
    unsure_negative = p[(p["slope"] < 0) & (p["conf_high"] >= 0)]
    assert len(unsure_negative) and (unsure_negative["category"] == "uncertain").all()
    # the interval adds the fixed effect's SE to the BLUP's conditional SD
    vals = hetero_fit.tidy("ran_vals").query("term == 'alliance_within'")
    cond = dict(zip(vals["level"].str.split(":").str[-1], vals["std_error"]))
    se_beta = hetero_fit.tidy().set_index("term").loc["alliance_within", "std_error"]
    np.testing.assert_allclose(p["std_error"], np.sqrt(p["patient"].map(cond) ** 2 + se_beta ** 2), rtol=1e-10)
    assert sum(hetero.categories.values()) == len(p)


def test_shrinkage_is_stated(hetero_fit, hetero):
    blups = hetero_fit.tidy("ran_vals").query("term == 'alliance_within'")["estimate"]
    assert hetero.blup_sd == pytest.approx(blups.std(ddof=1), rel=1e-10)
    assert hetero.shrinkage == pytest.approx(hetero.blup_sd / hetero.slope_sd, rel=1e-10)
    assert 0 < hetero.shrinkage < 1
    assert "shrunken" in hetero.summary.set_index("statistic").loc["SD of patients' BLUP slopes", "note"]


def test_neutral_words_without_a_direction(hetero_data):
    fit = quiet(pa.AllianceModel().fit, _prepare(hetero_data))
    het = quiet(fit.heterogeneity, interval=False, test=False)
    text = str(het) + het._repr_html_() + het.summary.to_string()
    assert "beneficial" not in text and "harmful" not in text
    assert set(het.patients["category"]) <= {"clearly negative", "uncertain", "clearly positive"}
    assert het.share_label == "share with a negative effect (model)"


# ------------------------------------------------------------------ warnings and display
class _WarningBackend:
    """Wraps a backend: its SD interval warns like lme4's profile does."""

    def __init__(self, inner, fail=False):
        self._inner, self._fail = inner, fail

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def sd_interval(self, group, term, level):
        warnings.warn("non-monotonic profile for .sig02", RWarning)
        warnings.warn("bad spline fit for .sig03: falling back to linear interpolation", RWarning)
        if self._fail:
            raise PylmeError("profiling failed")
        return 1.0, 6.0


def test_profile_warnings_are_kept_on_the_result(hetero_fit):
    for fail in (False, True):
        fit = dataclasses.replace(hetero_fit, backend=_WarningBackend(hetero_fit.backend, fail))
        with pytest.warns(UserWarning, match="non-monotonic profile"):
            het = fit.heterogeneity(test=False, trend=False)
        assert any("non-monotonic profile" in w for w in het.warnings)
        assert any("bad spline fit" in w for w in het.warnings)
        assert any("non-monotonic" in line for line in str(het).splitlines())
        if fail:
            assert any("profiling failed" in w for w in het.warnings)
            assert np.isnan(het.slope_sd_low) and np.isnan(het.share_low)
        else:
            assert (het.slope_sd_low, het.slope_sd_high) == (1.0, 6.0)


def test_readable_text_and_html(hetero):
    text = str(hetero)
    assert not text.startswith("Heterogeneity(") and "summary=" not in text
    assert "likelihood-ratio test" in text and "random-slope SD" in text
    page = hetero._repr_html_()
    assert "<table" in page and "summary=" not in page
    assert repr(hetero).startswith("<Heterogeneity:")


def test_alliance_fit_display_has_effects_and_estimands(hetero_fit):
    text = str(hetero_fit)
    assert "Alliance effects" in text and "conditional change" in text
    assert "conditional change" in hetero_fit._repr_html_()


# ------------------------------------------------------------------ effects table
def test_alliance_effects_estimand_and_standardised_by_hand(hetero_data):
    data = hetero_data.copy()
    panel = _prepare(data)
    fit = quiet(pa.AllianceModel().fit, panel)
    eff = fit.alliance_effects().set_index("term")
    assert eff.loc["alliance_between", "estimand"] == estimands.for_term("alliance_between", fit.model)
    # the formula beta*(1 - b_Y) is false on realistic data (issue 18): never stated
    assert "b_Y" not in eff.loc["alliance_between", "estimand"]
    assert fit.model.prior_outcome is True  # 12 sessions each: "auto" controls the outcome before
    assert eff.loc["alliance_within", "estimand"] == estimands.WITHIN_TOTAL.format(
        lead=1, before=" and the outcome of the session before")
    # hand calculation from the raw data (person-mean decomposition, every row kept)
    kept = data.dropna(subset=["alliance", "outcome"])
    n, m = len(kept), kept["patient"].nunique()
    dev_a = kept["alliance"] - kept.groupby("patient")["alliance"].transform("mean")
    dev_y = kept["outcome"] - kept.groupby("patient")["outcome"].transform("mean")
    sd_aw, sd_yw = np.sqrt((dev_a ** 2).sum() / (n - m)), np.sqrt((dev_y ** 2).sum() / (n - m))
    sd_ab = kept.groupby("patient")["alliance"].mean().std(ddof=1)
    sd_yb = kept.groupby("patient")["outcome"].mean().std(ddof=1)
    b_w, b_b = eff.loc["alliance_within", "estimate"], eff.loc["alliance_between", "estimate"]
    assert eff.loc["alliance_within", "std_estimate"] == pytest.approx(b_w * sd_aw / sd_yw, rel=1e-9)
    assert eff.loc["alliance_between", "std_estimate"] == pytest.approx(b_b * sd_ab / sd_yb, rel=1e-9)
    # not the total outcome SD (the old, undocumented definition)
    assert eff.loc["alliance_within", "std_estimate"] != pytest.approx(
        b_w * kept["alliance"].sub(kept.groupby("patient")["alliance"].transform("mean")).std()
        / kept["outcome"].std(), rel=1e-3)


# ------------------------------------------------------------------ reversed outcome
def test_reversed_outcome_flips_every_sign_and_share(hetero_data):
    flipped = hetero_data.assign(outcome=180 - hetero_data["outcome"])
    fit_low = quiet(pa.AllianceModel().fit, _prepare(hetero_data, outcome_better="lower"))
    fit_high = quiet(pa.AllianceModel().fit, _prepare(flipped, outcome_better="higher"))
    e_low, e_high = (f.alliance_effects().set_index("term") for f in (fit_low, fit_high))
    for column in ("estimate", "std_estimate", "conf_low", "conf_high"):
        other = {"conf_low": "conf_high", "conf_high": "conf_low"}.get(column, column)
        np.testing.assert_allclose(e_high[column], -e_low[other], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(e_high["p_value"], e_low["p_value"], rtol=1e-3)
    # the model with the patients' session slopes (the default) has flat directions (SDs at
    # 0) and a flat likelihood in tau: lme4 stops within 1e-4 log-likelihood units of the
    # optimum either way, which moves tau by 0.3% here (measured); the verdicts agree
    t_low, t_high = (quiet(f.heterogeneity, interval=False, draws=39) for f in (fit_low, fit_high))
    assert t_high.verdict == t_low.verdict and t_high.test.calibrated
    assert t_high.mean == pytest.approx(-t_low.mean, rel=1e-3)
    assert t_high.slope_sd == pytest.approx(t_low.slope_sd, rel=1e-2)
    # the fit's own slope: every number flips or stays to the optimizer's tolerance
    h_low, h_high = (quiet(f.heterogeneity, interval=False, trend=False, method="mixture")
                     for f in (fit_low, fit_high))
    assert h_high.mean == pytest.approx(-h_low.mean, rel=1e-4)
    assert h_high.slope_sd == pytest.approx(h_low.slope_sd, rel=1e-3)
    assert h_high.test.p_value == pytest.approx(h_low.test.p_value, rel=1e-3, abs=1e-12)
    # the beneficial share is the same patients: negative slopes there, positive here
    assert h_low.share_sign == "negative" and h_high.share_sign == "positive"
    assert h_high.share == pytest.approx(h_low.share, rel=1e-4)
    assert h_high.categories == h_low.categories
    lo = h_low.patients.set_index("patient")
    hi = h_high.patients.set_index("patient").loc[lo.index]
    np.testing.assert_allclose(hi["slope"], -lo["slope"], rtol=1e-3, atol=1e-3)  # optimizer tolerance
    assert (hi["category"] == lo["category"]).all()
    # with no direction the neutral share of negative effects becomes 1 - share
    fit_none = quiet(pa.AllianceModel().fit, _prepare(flipped))
    h_none = quiet(fit_none.heterogeneity, interval=False, test=False, trend=False)
    assert h_none.share == pytest.approx(1 - h_low.share, rel=1e-4)
    swap = {"clearly beneficial": "clearly positive", "clearly harmful": "clearly negative",
            "uncertain": "uncertain"}
    assert (h_none.patients.set_index("patient").loc[lo.index, "category"]
            == lo["category"].map(swap)).all()


def test_patient_interval_includes_the_moderated_fixed_part(hetero_data):
    panel = _prepare(hetero_data, moderators=["arm", "severity"])
    fit = quiet(pa.AllianceModel(moderators=("arm", "severity"), control_outcome=False).fit, panel)
    het = quiet(fit.heterogeneity, interval=False, test=False, trend=False)
    first = fit.data.drop_duplicates("patient").set_index(fit.data.drop_duplicates("patient")["patient"].astype(str))
    vals = fit.tidy("ran_vals").query("term == 'alliance_within'")
    cond = dict(zip(vals["level"].str.split(":").str[-1], vals["std_error"]))
    terms = set(fit.fixef().index)
    column = {str(v): k for k, v in fit.spec.moderator_names.items()}  # model-frame names
    for patient in het.patients["patient"].iloc[[0, 40, 100]]:
        row = first.loc[patient]
        weights = {"alliance_within": 1.0, "alliance_within:severity": float(row[column["severity"]])}
        level = f"alliance_within:arm{row[column['arm']]}"
        if level in terms:
            weights[level] = 1.0
        fixed_se = fit.contrast(weights)["std_error"]
        got = het.patients.set_index("patient").loc[patient, "std_error"]
        assert got == pytest.approx(np.sqrt(cond[patient] ** 2 + fixed_se ** 2), rel=1e-6)
