"""Honest estimands (issue 9): the decomposed lagged outcome under symptom->alliance
feedback, direct vs total lead effects, the between-patient level effect, estimand texts.

The feedback and carry-over checks use a generator written here, independent of
``simulate()``: a dynamic panel in which the outcome truly depends on the previous
outcome (b_Y = rho), alliance truly depends on the previous outcome (feedback gamma),
and alliance acts only at lag 1, so the direct lag-2 effect is 0 while the total lag-2
effect is rho * beta. One large data set (800 patients, T = 20) stands in for many
replications.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import pylme_alliance as pa
from pylme_alliance.analyses.between import between_effect
from pylme_alliance.errors import PylmeError
from pylme_alliance.models import estimands

BETA, RHO, GAMMA = -2.0, 0.5, -0.05


def feedback_trial(n: int = 800, T: int = 20, *, rho: float = RHO, beta: float = BETA, gamma: float = GAMMA,
                   between: float = -4.0, sd_e: float = 4.0, sd_u: float = 10.0, seed: int = 1) -> pd.DataFrame:
    """Y_t+1 = c_i + rho*Y_t + beta*A_t + e;  A_t+1 = a_i + gamma*(Y_t - mu) + d  (all sessions)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 0.8, n)
    c = between * a + rng.normal(0, sd_u, n)
    mu = 60.0
    Y, A = np.empty((n, T)), np.empty((n, T))
    Y[:, 0] = mu + c / (1 - rho) + rng.normal(0, sd_e / np.sqrt(1 - rho ** 2), n)
    A[:, 0] = 5.5 + a + rng.normal(0, 0.4, n)
    for t in range(1, T):  # T steps, vectorised over patients
        Y[:, t] = mu * (1 - rho) + c + rho * Y[:, t - 1] + beta * (A[:, t - 1] - 5.5) + rng.normal(0, sd_e, n)
        A[:, t] = 5.5 + a + gamma * (Y[:, t - 1] - mu) + rng.normal(0, 0.4, n)
    p, s = np.meshgrid(np.arange(n), np.arange(1, T + 1), indexing="ij")
    return pd.DataFrame({"patient": p.ravel(), "session": s.ravel(), "alliance": A.ravel(), "outcome": Y.ravel()})


def quiet(func, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return func(*args, **kwargs)


@pytest.fixture(scope="module")
def feedback_panel():
    return pa.prepare(feedback_trial(), patient="patient", session="session", alliance="alliance",
                      outcome="outcome", leads=(1, 2))


def within(panel, **options):
    fit = quiet(pa.AllianceModel(therapist="none", random_slope=False, **options).fit, panel)
    row = fit.tidy().set_index("term").loc["alliance_within"]
    return float(row["estimate"]), float(row["std_error"]), fit


def test_decomposed_control_recovers_the_within_effect_under_feedback_and_raw_does_not(feedback_panel):
    est, se, fit = within(feedback_panel)
    assert fit.model.control_outcome == "decomposed"
    assert abs(est - BETA) < 3 * se and abs(est - BETA) < 0.05 * abs(BETA)
    raw, raw_se, raw_fit = within(feedback_panel, control_outcome="raw", prior_outcome=False)
    # the raw lagged outcome beside a random intercept: biased toward zero
    assert raw - BETA > 3 * raw_se
    # ... because its slope absorbs the patient level (above the true rho)
    assert raw_fit.fixef()["outcome"] > RHO
    # with one lag, the decomposed deviation slope is the one with Nickell bias: below rho,
    # about -(1+rho)/(T-1) (the formula the NickellWarning inverts)
    one_lag = within(feedback_panel, prior_outcome=False)[2]
    assert one_lag.fixef()["outcome_within"] == pytest.approx(RHO - (1 + RHO) / 19, abs=0.05)


def test_direct_lag2_effect_is_zero_when_only_carried_through_the_next_outcome(feedback_panel):
    total, total_se, _ = within(feedback_panel, lead=2)
    direct, direct_se, fit = within(feedback_panel, lead=2, effect="direct")
    assert abs(total - RHO * BETA) < 3 * total_se  # carried through Y_t+1
    assert total < -0.7
    assert abs(direct) < 3 * direct_se
    assert "alliance_within_lead1" in fit.fixef().index


def test_duration_tables_say_total_or_direct(feedback_panel):
    table = quiet(pa.duration, feedback_panel, leads=(1, 2), effect="direct", therapist="none",
                  random_slope=False)
    assert set(table["effect"]) == {"direct"}
    row = table.query("lead == 2 and term == 'alliance_within'").iloc[0]
    assert row["estimand"].startswith("within-patient, direct")
    between_row = table.query("lead == 1 and term == 'alliance_between'").iloc[0]
    assert "conditional change" in between_row["estimand"]
    with pytest.raises(PylmeError, match="effect"):
        pa.duration(feedback_panel, leads=(1,), effect="indirect")


# -- the between-patient level effect -------------------------------------------------


@pytest.fixture(scope="module")
def sim():
    return pa.simulate(n_patients=547, seed=11)


@pytest.fixture(scope="module")
def sim_panel(sim):
    return pa.prepare(sim.data, patient="patient", session="session", alliance="alliance",
                      outcome="outcome", therapist="therapist", leads=(1,))


def test_between_level_effect_recovered_where_the_conditional_coefficient_is_not(sim, sim_panel):
    table = quiet(between_effect, sim_panel, level="mean", adjust_intake=False)
    assert list(table["term"]) == ["alliance_level"]
    row = table.iloc[0]
    assert abs(row["estimate"] - sim.truth["between"]) < 3 * row["std_error"]
    assert row["estimand"].startswith("between-patient level")
    # the lagged model's between coefficient is a conditional change coefficient, far from it
    lagged = quiet(pa.AllianceModel().fit, sim_panel).fixef()["alliance_between"]
    assert abs(lagged - sim.truth["between"]) > 5 * row["std_error"]
    # the standardised value uses between-patient SDs
    assert -1 < row["std_estimate"] < 0


def test_between_level_engines_agree(sim_panel):
    lme4 = quiet(between_effect, sim_panel, level="mean", adjust_intake=False)
    nlme = quiet(between_effect, sim_panel, level="mean", adjust_intake=False, engine="nlme")
    np.testing.assert_allclose(nlme["estimate"], lme4["estimate"], rtol=1e-4)
    np.testing.assert_allclose(nlme["std_error"], lme4["std_error"], rtol=1e-3)


def test_between_level_early_by_default_with_intake(sim, sim_panel):
    table = quiet(between_effect, sim_panel)
    row = table.iloc[0]
    assert row["level"] == "early"  # the median patient has sessions after the first 3
    assert "early alliance (mean of sessions 1-3)" in row["estimand"]
    assert "intake" in row["estimand"] and "intake" in row["adjusted_for"]
    # the response rows are the sessions after the early window only
    data = sim_panel.data
    rank = data.groupby("patient").cumcount()
    assert row["n"] == int((rank >= 3).sum())
    # too short series: the person mean instead, said in the notes
    short = sim.data.sort_values(["patient", "session"]).groupby("patient").head(3)
    short_panel = pa.prepare(short, patient="patient", session="session", alliance="alliance",
                             outcome="outcome", therapist="therapist")
    table = quiet(between_effect, short_panel, adjust_intake=False)
    assert table["level"].iloc[0] == "mean"
    assert any("level='auto'" in note for note in table.attrs["notes"])
    by_column = quiet(between_effect, sim_panel, adjust_intake="severity")
    assert by_column["adjusted_for"].iloc[0] == "severity"


def test_between_effect_refusals(sim_panel):
    with pytest.raises(PylmeError, match="level"):
        between_effect(sim_panel, level="late")
    with pytest.raises(PylmeError, match="no_such"):
        between_effect(sim_panel, adjust_intake="no_such")
    with pytest.raises(PylmeError, match="early_sessions"):
        between_effect(sim_panel, early_sessions=0)
    with pytest.raises(PylmeError, match="AlliancePanel"):
        between_effect(sim_panel.data)


# -- estimand texts ----------------------------------------------------------------------


def test_estimand_texts_follow_the_model():
    m = pa.AllianceModel
    assert estimands.for_term("alliance_within", m(lead=2)).startswith("within-patient, total")
    assert estimands.for_term("alliance_within", m(lead=2, effect="direct")).startswith("within-patient, direct")
    # at lead 1 direct and total are the same model
    assert estimands.for_term("alliance_within", m(effect="direct")) == estimands.for_term("alliance_within", m())
    assert "conditional change" in estimands.for_term("alliance_between", m())
    assert "AT THE SAME current outcome" in estimands.for_term("alliance_between", m(control_outcome="raw"))
    assert "AT THE SAME mean outcome" in estimands.for_term("alliance_between", m())
    assert "b_Y" not in estimands.for_term("alliance_between", m())
    assert "conditional" not in estimands.for_term("alliance_between", m(control_outcome=False))
    assert "concurrent" in estimands.for_term("alliance_within", m(lead=0, control_outcome=False))
    assert "Nickell" in estimands.for_term("outcome_within", m())
    assert estimands.for_term("session", m()) == ""
    for option in ("decomposed", "raw", False):
        assert m(control_outcome=option).control_bias() == estimands.CONTROL_OUTCOME_BIAS[option]


def test_outcome_direction_on_the_panel(sim):
    panel = pa.prepare(sim.data, patient="patient", session="session", alliance="alliance",
                       outcome="outcome", outcome_better="lower", outcome_label="OQ-45")
    assert (panel.outcome_better, panel.outcome_name) == ("lower", "OQ-45")
    reversed_ = sim.data.assign(outcome=180 - sim.data["outcome"])
    flipped = pa.prepare(reversed_, patient="patient", session="session", alliance="alliance",
                         outcome="outcome", outcome_better="higher")
    assert flipped.outcome_better == "higher"
    np.testing.assert_allclose(flipped.data["outcome_within"], -panel.data["outcome_within"])
