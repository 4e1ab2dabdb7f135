"""The heterogeneity answer on realistic data (issue 18, items 1 and 6): patients who improve
at different rates in the generator, their own session slopes in the model, the random-slope
test calibrated by a parametric bootstrap, no SD or share printed where the data cannot
show them, and the measured caveat of the design closest to the data."""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest

import pylme_alliance as pa
from pylme_alliance.errors import PylmeError
from pylme_alliance.executors import process_pool
from pylme_alliance.models import detectable
from pylme_alliance.models.boundary import without_intercepts
from pylme_alliance.models.slope_group import ran_vals_group
from pylme_alliance.models.slope_test import slope_test
from pylme_alliance.models.spec import ModelSpec

COLUMNS = dict(patient="patient", session="session", alliance="alliance", outcome="outcome",
               therapist="therapist", leads=(1,))


def quiet(func, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return func(*args, **kwargs)


def _panel(data, **kwargs):
    return quiet(pa.prepare, data, **COLUMNS, outcome_better="lower", **kwargs)


@pytest.fixture(scope="module")
def null_fit():
    """No slope variance; patients improve at different rates; short, gappy, dropout."""
    sim = pa.simulate(n_patients=90, n_therapists=9, sessions=10, slope_sd=0.0, improvement_sd=15.0,
                      alliance_trend_sd=0.05, ar=0.4, alliance_ar=0.3, feedback=-0.01, dropout=0.2, seed=4)
    return quiet(pa.AllianceModel().fit, _panel(sim.data))


@pytest.fixture(scope="module")
def null_het(null_fit):
    return quiet(null_fit.heterogeneity, draws=39)


# ------------------------------------------------------------------ the generator
def test_patients_improve_at_different_rates():
    def own_rates(improvement_sd):
        sim = pa.simulate(n_patients=200, n_therapists=20, sessions=10, missed=0, dropout=0, slope_sd=0.0,
                          within_effect=(0.0, 0.0, 0.0), improvement_sd=improvement_sd, seed=8)
        return sim.data.groupby("patient").apply(
            lambda d: np.polyfit(d["session"], d["outcome"], 1)[0], include_groups=False)

    same, own = own_rates(0.0), own_rates(20.0)
    # the mean curve is the same; the patients' own rates spread out
    assert abs(own.mean() - same.mean()) < 0.5
    assert own.std() > 1.5 * same.std()
    # without them no extra draw is made: the bundled example's stream is unchanged
    a = pa.simulate(n_patients=50, n_therapists=5, seed=1).data
    b = pa.simulate(n_patients=50, n_therapists=5, seed=1, improvement_sd=0.0, alliance_trend_sd=0.0).data
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(PylmeError, match="improvement_sd"):
        pa.simulate(improvement_sd=-1.0)


# ------------------------------------------------------------------ the model
def test_heterogeneity_is_read_from_the_model_with_the_patients_session_slopes(null_fit, null_het):
    assert null_het.trend and not null_fit.model.random_trend
    assert any("own session slope" in w for w in null_het.warnings)
    # the patients' own session slopes beside (not correlated with) the alliance slope
    trend_fit = quiet(null_fit.model.replace(random_trend=True).fit, null_fit.panel)
    formula = trend_fit.spec.formula
    assert "(0 + session | therapist:patient)" in formula and "(0 + alliance_within | therapist:patient)" in formula
    assert {"sd__session", "sd__alliance_within"} <= set(trend_fit.ran_pars_table["term"])
    assert not trend_fit.ran_pars_table["term"].str.contains("cor__").any()
    with pytest.raises(PylmeError, match="session_trend"):
        pa.AllianceModel(random_trend=True, session_trend=False)


def test_without_intercepts_reads_every_random_block():
    spec = ModelSpec(engine="lme4", response="y", fixed_terms=("x",), formula="y ~ x + (1 | therapist) + (1 | therapist:patient) "
                     "+ (0 + session | therapist:patient) + (0 + alliance_within | therapist:patient)")
    reduced = without_intercepts(spec, ["therapist:patient"])
    assert reduced.formula == ("y ~ x + (1 | therapist) + (0 + session | therapist:patient) "
                               "+ (0 + alliance_within | therapist:patient)")
    block = dataclasses.replace(spec, formula="y ~ x + (1 + session + alliance_within | patient)")
    assert without_intercepts(block, ["patient"]).formula == "y ~ x + (0 + session + alliance_within | patient)"


def test_ran_vals_group_of_a_repeated_factor():
    vals = pd.DataFrame({"group": ["therapist:patient", "therapist"]})
    assert ran_vals_group("therapist.patient.2", vals) == "therapist:patient"
    assert ran_vals_group("therapist.patient", vals) == "therapist:patient"
    assert ran_vals_group("therapist", vals) == "therapist"
    assert ran_vals_group("patient.1", pd.DataFrame({"group": ["patient"]})) == "patient"


# ------------------------------------------------------------------ the calibrated test
def test_bootstrap_p_is_a_reproducible_monte_carlo_p(null_fit):
    fit = quiet(null_fit.model.replace(random_trend=True).fit, null_fit.panel)
    one = quiet(slope_test, fit, draws=19, seed=5)
    again = quiet(slope_test, fit, draws=19, seed=5)
    cal = one.calibration
    assert one.calibrated and one.method == "parametric bootstrap (19 draws)"
    assert cal.draws == 19 and len(cal.statistics) == 19 and (cal.statistics >= 0).all()
    assert one.p_value == pytest.approx((1 + cal.exceed) / 20) == again.p_value
    np.testing.assert_array_equal(cal.statistics, again.calibration.statistics)
    assert cal.exceed == int(np.sum(cal.statistics >= one.statistic - 1e-9))
    assert np.isfinite(one.mixture_p) and one.mixture_p != one.p_value or cal.exceed >= 0
    # p <= alpha rejects (exact size with alpha * (draws + 1) whole)
    assert one.significant(0.05) == (one.p_value <= 0.05)
    for bad in (5, 2.5, True):
        with pytest.raises(PylmeError, match="draws"):
            slope_test(fit, draws=bad)
    with pytest.raises(PylmeError, match="method"):
        slope_test(fit, method="exact")
    with pytest.raises(PylmeError, match="slope_draws must be an integer of at least 19"):  # before any fit
        pa.analyze(null_fit.panel, slope_draws=5, progress=False)


def test_bootstrap_is_the_same_on_an_executor(null_fit):
    fit = quiet(null_fit.model.replace(random_trend=True).fit, null_fit.panel)
    here = quiet(slope_test, fit, draws=45, seed=11)  # chunks of 40 and 5
    with process_pool(2) as pool:
        there = quiet(slope_test, fit, draws=45, seed=11, executor=pool)
    assert there.p_value == here.p_value
    np.testing.assert_allclose(there.calibration.statistics, here.calibration.statistics, rtol=1e-6, atol=1e-8)


def test_the_bootstrap_needs_lme4(null_fit):
    fit = quiet(pa.AllianceModel(engine="nlme").fit, null_fit.panel)
    with pytest.raises(PylmeError, match="lme4"):
        quiet(fit.heterogeneity, method="bootstrap", interval=False)
    het = quiet(fit.heterogeneity, interval=False)  # "auto": the mixture, said so
    assert not het.test.calibrated and het.test.method == "mixture" and not het.share_shown
    # nlme's general block with the session slope does not converge here: said, not fatal
    assert het.trend or any("could not be fitted" in w for w in het.warnings)


# ------------------------------------------------------------------ what is printed
def test_no_number_for_a_spread_the_data_do_not_show(null_het):
    assert null_het.test.calibrated and null_het.verdict == "not supported"
    rows = null_het.summary.set_index("statistic")
    sd = rows.loc["random-slope SD"]
    assert np.isnan(sd["estimate"]) and np.isnan(sd["conf_low"]) and "not estimable" in sd["note"]
    assert f"about {null_het.detectable_sd:.2g} or more" in sd["note"]
    assert np.isnan(rows.loc["95% prediction interval", "estimate"])
    share = rows.loc["share beneficial (model)"]
    assert np.isnan(share["estimate"]) and share["note"].startswith("not shown") and not null_het.share_shown
    assert "not estimable" in null_het.statement()
    # the raw values stay on the result for whoever asks
    assert np.isfinite(null_het.slope_sd)


def test_detectable_sd_follows_the_design(null_fit):
    full = detectable.detectable_sd(null_fit)
    keep = sorted(null_fit.data["patient"].unique())[: len(null_fit.data["patient"].unique()) // 4]
    quarter = dataclasses.replace(null_fit, data=null_fit.data[null_fit.data["patient"].isin(keep)])
    # information about tau^2 grows with the number of patients: a quarter of them, sqrt(2) x the SD
    assert detectable.detectable_sd(quarter) / full == pytest.approx(np.sqrt(2), rel=0.25)
    assert detectable.detectable_sd(null_fit, power=0.5) < full < detectable.detectable_sd(null_fit, power=0.95)
    assert np.isnan(detectable.detectable_sd(dataclasses.replace(null_fit, stats={})))


@pytest.fixture(scope="module")
def strong_fit():
    sim = pa.simulate(n_patients=160, n_therapists=16, sessions=12, missed=0, dropout=0, slope_sd=4.0,
                      within_effect=(-2.0, 0.0, 0.0), seed=21)
    return quiet(pa.AllianceModel().fit, _panel(sim.data))


def _record(sessions, coverage, words, feedback=0.0):
    return detectable.Record(design=words, words=words, sessions=sessions, feedback=feedback, size=0.05,
                             size_mixture=0.3,
                             power={1.0: 0.1, 3.0: 0.6}, sd_bias=0.05, share_coverage=coverage, trials=100)


def test_observed_feedback_picks_the_design(null_fit, strong_fit, monkeypatch):
    # the null trial has symptom -> alliance feedback (-0.01 per outcome point), the strong one none
    assert detectable.observed_feedback(null_fit.data) < detectable.observed_feedback(strong_fit.data)
    assert np.isnan(detectable.observed_feedback(null_fit.data.drop(columns="outcome_within")))
    monkeypatch.setattr(detectable, "RECORDS", (_record(4.0, 0.9, "no feedback"),
                                                _record(4.0, 0.9, "feedback", feedback=-0.01)))
    assert detectable.closest_record(strong_fit).words == "no feedback"
    # the mirrored outcome turns the feedback's sign, not the design it is closest to
    mirrored = dataclasses.replace(null_fit, data=null_fit.data.assign(outcome_within=-null_fit.data["outcome_within"]))
    assert detectable.observed_feedback(mirrored.data) == pytest.approx(-detectable.observed_feedback(null_fit.data))
    assert detectable.closest_record(mirrored) == detectable.closest_record(null_fit)


def test_share_and_caveat_come_from_the_closest_measured_design(strong_fit, monkeypatch):
    monkeypatch.setattr(detectable, "RECORDS", (_record(4.0, 0.5, "short"), _record(11.0, 0.95, "long")))
    het = quiet(strong_fit.heterogeneity, draws=39, interval=True)
    assert het.verdict == "supported" and het.test.calibrated
    assert "(long; 100 trials)" in het.caveat and "rejected a true SD of 0 in 5%" in het.caveat
    assert het.share_shown and np.isfinite(het.summary.set_index("statistic").loc["share beneficial (model)",
                                                                                  "estimate"])
    assert "Measured: " + het.caveat in het.statement()
    monkeypatch.setattr(detectable, "RECORDS", (_record(11.0, 0.8, "long"),))
    hidden = quiet(strong_fit.heterogeneity, draws=39, interval=True)
    row = hidden.summary.set_index("statistic").loc["share beneficial (model)"]
    assert np.isnan(row["estimate"]) and "only 80%" in row["note"] and not hidden.share_shown
    monkeypatch.setattr(detectable, "RECORDS", ())
    assert quiet(strong_fit.heterogeneity, draws=39, interval=False).caveat == ""


def test_a_test_that_rejects_too_often_on_such_data_is_no_support(strong_fit, monkeypatch):
    oversized = dataclasses.replace(_record(11.0, 0.95, "long"), size=0.3)
    monkeypatch.setattr(detectable, "RECORDS", (oversized,))
    het = quiet(strong_fit.heterogeneity, draws=39, interval=False)
    assert het.test.significant(0.05) and het.verdict == "not supported" and not het.share_shown
    assert any("not taken as support" in w for w in het.warnings)
    assert "not evidence that patients differ" in het.statement() and "not estimable" in het.statement()


def test_the_measured_designs_are_the_benchmarks():
    names = {r.design for r in detectable.RECORDS}
    assert names == {"package", "traj_T8", "traj_T20"}
    for record in detectable.RECORDS:
        assert 0 <= record.size <= 1 and record.trials >= 50 and set(record.power) == {1.0, 2.0, 3.0}
