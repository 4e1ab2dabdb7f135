"""Results do not depend on the direction of the outcome scale (issue 18, item 5).

The same trial with the outcome mirrored (y -> 180 - y on the 0-180 scale) and
``outcome_better`` flipped must get the same verdicts and the same numbers up to sign.
What flips and what does not, for the default model:

- the alliance and session coefficients change sign (the outcome does);
- the outcome-control coefficients keep theirs: the lagged outcome is mirrored with the
  lead outcome, so ``c - y_lead = b (c - y) + ...`` has the same ``b``;
- the intercept becomes ``c`` minus itself (the outcome means in the model are centred);
- random-effect SDs are the same, and so are their correlations: a patient's random
  intercept and alliance slope both change sign with the outcome;
- the share of patients helped is computed in the helped direction, so it is EQUAL, and
  so are the counts of patients by category name ("clearly beneficial" is below 0 for a
  lower-is-better outcome and above 0 for the mirror).

The trials below were chosen where the package once gave different verdicts for the two
directions (the optimizer stops at different points of a flat likelihood: see
models/boundary.py's CANDIDATE_SD and models/second_opinion.py's FIXEF_TOL).
"""
from __future__ import annotations

import dataclasses
import json
import re
import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import pylme_alliance as pa
from pylme_alliance.models.boundary import absorbed_intercepts
from pylme_alliance.models.diagnostics import degenerate, fit_status
from pylme_alliance.models.heterogeneity import share_interval
from pylme_alliance.models.second_opinion import confirm_boundary_optimum
from pylme_alliance.report import results_json
from pylme_alliance.sm_crosscheck.table import agree

#: The top of the 0-180 outcome scale: the mirror of y is C - y.
C = 180.0
ROLES = dict(patient="patient", session="session", alliance="alliance", outcome="outcome", therapist="therapist")
#: (design, simulate() arguments, seed): before the fix each gave another verdict for the mirror
CASES = {
    "default-seed6": dict(seed=6),  # slope estimated; an intercept removed in one direction only
    "default-seed2": dict(seed=2),  # slope at the boundary; intercepts removed in one direction only
    "feedback-seed8": dict(feedback=-0.01, n_patients=300, n_therapists=30, seed=8),
    "short-seed15": dict(sessions_median=4, max_sessions=6, n_patients=300, n_therapists=30, seed=15),
}
SMALL = dict(n_patients=60, n_therapists=8, seed=1)
#: bootstrap draws of analyze()'s slope test here (its default, 199, takes 8 s more per side)
DRAWS = 39
FLIPPED = ("alliance_within", "alliance_between", "session", "session_between")


def quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


def both_panels(data: pd.DataFrame) -> tuple[pa.AlliancePanel, pa.AlliancePanel]:
    """The trial as it is (lower is better) and mirrored (higher is better)."""
    mirrored = data.assign(outcome=C - data["outcome"])
    return (quiet(pa.prepare, data, outcome_better="lower", **ROLES),
            quiet(pa.prepare, mirrored, outcome_better="higher", **ROLES))


def unsigned(text: str) -> str:
    """``text`` without the signs of its numbers and with sign words made neutral."""
    text = re.sub(r"[-+\u2212](?=\d|\.\d)", "", text)
    return re.sub(r"\b(negative|positive)\b", "SIGN", re.sub(r"\(([-+])beta", "(beta", text))


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    data = pa.simulate(**CASES[request.param]).data
    panel, mirror = both_panels(data)
    fit, fit_m = quiet(pa.AllianceModel().fit, panel), quiet(pa.AllianceModel().fit, mirror)
    # the fit's own model and the mixture null here (fast); the default path (the patients'
    # session slopes, the bootstrap null) is test_calibrated_heterogeneity_is_the_same
    het, het_m = (quiet(f.heterogeneity, trend=False, method="mixture") for f in (fit, fit_m))
    return SimpleNamespace(name=request.param, fit=fit, fit_m=fit_m, het=het, het_m=het_m)


# ---------------------------------------------------------------------- the fit
def test_fit_verdicts_are_the_same(case):
    fit, fit_m = case.fit, case.fit_m
    assert fit.converged == fit_m.converged
    assert fit.singular == fit_m.singular
    assert degenerate(fit) == degenerate(fit_m)
    assert fit.removed_terms == fit_m.removed_terms
    assert fit_status(fit) == fit_status(fit_m)
    assert [unsigned(n) for n in fit.notes] == [unsigned(n) for n in fit_m.notes]
    assert fit.formula == fit_m.formula


def test_fixed_effects_flip_where_the_outcome_does(case):
    a, b = case.fit.fixef_values, case.fit_m.fixef_values
    assert list(a.index) == list(b.index)
    for term in a.index:
        if term == "(Intercept)":
            expected = C - a[term]
        elif term in FLIPPED or term.startswith("alliance_"):
            expected = -a[term]
        else:  # the outcome controls: mirrored with the lead outcome, same coefficient
            assert term.startswith("outcome_"), term
            expected = a[term]
        assert b[term] == pytest.approx(expected, rel=1e-6, abs=1e-8), term
    se = case.fit.fixed_table.set_index("term")["std_error"]
    se_m = case.fit_m.fixed_table.set_index("term")["std_error"]
    np.testing.assert_allclose(se_m[se.index], se, rtol=1e-5)


def test_random_effects_are_the_same(case):
    sigma = case.fit.stats["sigma"]
    a = case.fit.ran_pars_table.set_index(["group", "term"])["estimate"]
    b = case.fit_m.ran_pars_table.set_index(["group", "term"])["estimate"]
    assert list(a.index) == list(b.index)
    for key in a.index:
        if key[1].startswith("cor__"):
            # intercept and slope both change sign with the outcome: their correlation does not
            assert b[key] == pytest.approx(a[key], abs=1e-4) or (np.isnan(a[key]) and np.isnan(b[key])), key
        else:  # an SD at the boundary is anywhere in [0, 1e-4 sigma] on either side
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-4 * sigma), key


# ---------------------------------------------------------------------- heterogeneity
def test_heterogeneity_is_the_same_in_the_helped_direction(case):
    het, het_m = case.het, case.het_m
    assert het.verdict == het_m.verdict
    assert het.degenerate == het_m.degenerate
    assert het.test.df == het_m.test.df
    assert het_m.test.statistic == pytest.approx(het.test.statistic, abs=1e-5)
    assert het_m.test.p_value == pytest.approx(het.test.p_value, abs=1e-5)
    # the share of patients helped: Phi(-beta/tau) for lower-is-better, Phi(+beta/tau) mirrored
    assert het_m.share == pytest.approx(het.share, abs=1e-6)
    assert het_m.share_label == het.share_label
    for mine, theirs in ((het.share_low, het_m.share_low), (het.share_high, het_m.share_high)):
        assert theirs == pytest.approx(mine, abs=1e-4) or (np.isnan(mine) and np.isnan(theirs))
    assert het_m.slope_sd == pytest.approx(het.slope_sd, rel=1e-5, abs=1e-4 * case.fit.stats["sigma"])
    assert het_m.mean == pytest.approx(-het.mean, rel=1e-6, abs=1e-8)
    # "clearly beneficial" is below 0 one way and above 0 the other: same patients, same count
    assert het.categories == het_m.categories
    assert set(het.categories) >= {"clearly beneficial", "uncertain", "clearly harmful"}


# ---------------------------------------------------------------------- the rules, one by one
def test_removal_candidates_do_not_depend_on_where_the_slope_stopped():
    """default-seed2 mirrored: the intercepts at 0 and the slope stopped at 6e-4 (below the
    boundary tolerance of 1e-4 sigma); the original direction's slope stopped just above
    it. The intercepts are candidates either way."""
    table = pd.DataFrame({
        "group": ["therapist:patient"] * 3 + ["therapist", "Residual"],
        "term": ["sd__(Intercept)", "cor__(Intercept).alliance_within", "sd__alliance_within",
                 "sd__(Intercept)", "sd__Observation"],
        "estimate": [0.0, np.nan, 6.4e-4, 0.0, 9.49]})
    model = SimpleNamespace(control_outcome="decomposed")
    fixef = pd.Series(0.0, index=["(Intercept)", "outcome_within", "outcome_between", "alliance_within"])
    for slope in (6.4e-4, 2.5e-3):
        fit = SimpleNamespace(ran_pars_table=table.assign(estimate=table["estimate"].where(
            table["term"] != "sd__alliance_within", slope)), stats={"sigma": 9.49}, fixef_values=fixef)
        assert absorbed_intercepts(fit, model) == ["therapist:patient", "therapist"]
    # default-seed6: the patient intercept stopped at 2e-4 sigma, not at 0
    near = table.assign(estimate=[2e-3, 0.12, 2.78, 0.0, 9.57])
    fit = SimpleNamespace(ran_pars_table=near, stats={"sigma": 9.57}, fixef_values=fixef)
    assert absorbed_intercepts(fit, model) == ["therapist:patient", "therapist"]
    # a patient intercept the data carry is no candidate
    real = table.assign(estimate=[3.0, 0.12, 2.78, 0.0, 9.57])
    assert absorbed_intercepts(SimpleNamespace(ran_pars_table=real, stats={"sigma": 9.57}, fixef_values=fixef),
                               model) == ["therapist"]


def test_boundary_correlation_is_worded_by_its_bound():
    """short design, seed 18: the same degenerate fit stopped its intercept-slope
    correlation at -0.9997 one way and -0.9951 the other; the status says the same."""
    texts = []
    for cor in (-0.9996932, -0.9951408):
        table = pd.DataFrame({"group": ["therapist:patient"] * 3 + ["Residual"],
                              "term": ["sd__(Intercept)", "cor__(Intercept).alliance_within",
                                       "sd__alliance_within", "sd__Observation"],
                              "estimate": [0.0131, cor, 1.0097, 9.818]})
        fit = SimpleNamespace(ran_pars_table=table, stats={"sigma": 9.818, "degenerate": True}, singular=False,
                              converged=True, fixef_values=pd.Series(dtype=float), model=None)
        texts.append(fit_status(fit))
    assert texts[0] == texts[1] == ("degenerate (correlation (Intercept).alliance_within over therapist:patient "
                                    "beyond -0.99)")


def test_second_opinion_judges_the_intercept_free_of_the_scale_origin():
    """The bobyqa check of a boundary fit gives the same verdict for the mirror: an
    intercept 0.09 apart was 'the same optimum' at 106 and 'different' at 74 when fixed
    effects were compared relative to max(1, |estimate|)."""
    rng = np.random.default_rng(3)
    data = pd.DataFrame({"g": np.repeat(np.arange(20), 5), "x": rng.normal(size=100)})
    data["y"] = 74.0 + 0.5 * data["x"] + rng.normal(size=100)
    verdicts = []
    for y, shift in ((data["y"], 0.09), (C - data["y"], -0.09)):
        fit = quiet(pa.lmer, "y ~ x + (1 | g)", data.assign(y=y))
        flagged = dataclasses.replace(fit, stats={**fit.stats, "converged": False, "singular": True})
        other = dataclasses.replace(flagged, stats={**flagged.stats, "converged": True},
                                    fixef_values=flagged.fixef_values + pd.Series({"(Intercept)": shift, "x": 0.0}))
        verdicts.append(confirm_boundary_optimum(flagged, lambda other=other: other).converged)
    assert verdicts[0] == verdicts[1]


def test_crosscheck_rule_judges_the_intercept_free_of_the_scale_origin():
    kind = np.array(["fixed", "fixed"], dtype=object)
    intercept = np.array([True, False])
    se = np.array([1.0, 0.1])
    as_is = agree(kind, np.array([74.09, -2.0]), np.array([74.0, -2.0]), se, 9.5, intercept)
    mirrored = agree(kind, np.array([C - 74.09, 2.0]), np.array([C - 74.0, 2.0]), se, 9.5, intercept)
    assert list(as_is) == list(mirrored) == [False, True]


def test_share_interval_is_drawn_in_the_helped_direction():
    as_is = share_interval(-0.74, 0.5, 2.1, 1.0, 3.5, sign=-1.0)
    mirrored = share_interval(0.74, 0.5, 2.1, 1.0, 3.5, sign=1.0)
    assert as_is == mirrored and as_is[0] < as_is[1]


# ---------------------------------------------------------------------- crosscheck and analyze
@pytest.fixture(scope="module")
def small():
    return both_panels(pa.simulate(**SMALL).data)


def test_calibrated_heterogeneity_is_the_same(small):
    """The default heterogeneity(): the model with the patients' session slopes and the
    bootstrap null. The bootstrap's likelihood ratios depend on the simulated responses
    only through their residuals from the fixed part, which mirroring changes in sign
    only: the same draws give the same null distribution."""
    fits = [quiet(pa.AllianceModel().fit, panel) for panel in small]
    het, het_m = (quiet(f.heterogeneity, draws=19) for f in fits)
    assert het.test.calibrated and het_m.test.calibrated
    assert het.verdict == het_m.verdict
    assert het_m.test.statistic == pytest.approx(het.test.statistic, abs=1e-5)
    # each bootstrap draw refits both models on both sides; a draw whose LR* lies within
    # optimizer noise of the observed LR may count on one side only (analyze's 199 draws on
    # this trial: p = .39 and .385), so the p-values may differ by one draw, the verdict not
    assert het_m.test.p_value == pytest.approx(het.test.p_value, abs=1.01 / 20)
    # each draw's two refits stop within optimizer noise of each other (up to 3e-3 here)
    np.testing.assert_allclose(het_m.test.calibration.statistics, het.test.calibration.statistics, atol=1e-2)
    # the model with session slopes is refitted on each side: its slope SD agrees to the
    # optimizer's tolerance (relative 1e-5), and so does the share
    assert het_m.share == pytest.approx(het.share, abs=1e-4) or (np.isnan(het.share) and np.isnan(het_m.share))
    assert het.categories == het_m.categories


def test_crosscheck_verdicts_are_the_same(small):
    checks = [quiet(pa.crosscheck, panel) for panel in small]
    tables = [c.table.set_index(["kind", "group", "term"]) for c in checks]
    pd.testing.assert_series_equal(tables[0]["agree"], tables[1]["agree"])
    assert [unsigned(n) for n in checks[0].notes] == [unsigned(n) for n in checks[1].notes]


def test_analyze_gives_the_same_statuses(small):
    docs = [json.loads(results_json.dumps(quiet(pa.analyze, panel, leads=(1,), checks=(), reciprocal=False,
                                                progress=False, slope_draws=DRAWS))) for panel in small]
    a, b = docs
    assert [unsigned(n) for n in a["notes"]] == [unsigned(n) for n in b["notes"]]
    assert [unsigned(w) for w in a["warnings"]] == [unsigned(w) for w in b["warnings"]]
    assert a["tables"].keys() == b["tables"].keys()
    words = ("status", "converged", "singular", "degenerate", "estimand", "model", "term", "statistic")
    for name, record in a["tables"].items():
        mine, theirs = pd.DataFrame(record["records"]), pd.DataFrame(b["tables"][name]["records"])
        for column in (c for c in words if c in mine.columns and mine[c].dtype == object or c in
                       ("converged", "singular", "degenerate") and c in mine.columns):
            assert mine[column].tolist() == theirs[column].tolist(), (name, column)
    het, het_m = (pd.DataFrame(d["tables"]["heterogeneity"]["records"]).set_index("statistic") for d in docs)
    share = next(s for s in het.index if s.startswith("share"))
    assert het_m.loc[share, "estimate"] == pytest.approx(het.loc[share, "estimate"], abs=1e-4)  # as above
    verdict = [re.findall(r"heterogeneity (?:supported|not supported|not estimated|not tested)", n)
               for n in (het["note"].tolist(), het_m["note"].tolist()) for n in [" ".join(n)]]
    assert verdict[0] == verdict[1] and verdict[0]
    # the bootstrap p may differ by a draw or two (see test_calibrated_heterogeneity_is_the_same)
    np.testing.assert_allclose(het_m["p_value"].astype(float), het["p_value"].astype(float), atol=2.01 / (DRAWS + 1))
    counts = [s for s in het.index if s.startswith("patients ")]
    assert het_m.loc[counts, "estimate"].to_dict() == het.loc[counts, "estimate"].to_dict()
