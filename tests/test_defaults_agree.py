"""Defaults that agree (issue 21, item 4): prepare()'s leads cover analyze()'s, every
route chooses the therapist term by one rule, and one heterogeneity verdict for the same
data whichever route computes it."""
from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest

import pylme_alliance as pa
from pylme_alliance.analyses.duration import duration
from pylme_alliance.models.choices import choose_therapist
from pylme_alliance.report.plan import make_plan


def quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


def _panel(data, **extra):
    return pa.prepare(data, patient="patient", session="session", alliance="alliance", outcome="outcome",
                      outcome_better="lower", **extra)


@pytest.fixture(scope="module")
def small():
    # a small trial whose full slope fit is at the boundary (intercept-slope correlation +1)
    return pa.simulate(n_patients=40, n_therapists=8, sessions=6, missed=0, dropout=0, slope_sd=0.0, seed=0).data


def test_prepare_default_leads_cover_analyze_and_duration(small):
    panel = _panel(small)
    for function in (pa.analyze, duration):
        default = inspect.signature(function).parameters["leads"].default
        assert set(default) <= set(panel.leads), function.__name__


def _plan(panel, therapist=None):
    return make_plan(panel, leads=(1,), moderators=(), engine="lme4", residual="iid", therapist=therapist,
                     random_slope="auto", control_outcome="decomposed", prior_outcome="auto", progress=False,
                     checks=(), executor=None)


def test_without_a_therapist_column_every_route_chooses_none(small):
    panel = _panel(small)  # no therapist column given
    chosen, sentence = choose_therapist(panel)
    assert chosen == "none" and "therapist='none'" in sentence
    plan = _plan(panel)
    assert plan.therapist == "none" and sentence in plan.notes
    formula = pa.AllianceModel().formula(panel)
    assert "therapist" not in formula and "| patient)" in formula
    fit = quiet(pa.AllianceModel().fit, panel)
    assert fit.model.therapist == "none" and sentence in fit.notes
    # the per-lead models (effect="total" is the RI-CLPM since issue 19: no therapist term)
    table = quiet(duration, panel, leads=(1, 2), effect="lead_regression")
    assert set(table["lead"]) == {1, 2} and sentence in table.attrs["notes"]
    mods = quiet(pa.moderators, _panel(small, moderators=["severity"]), ["severity"])
    assert len(mods) and sentence in mods.attrs["notes"]


def test_with_therapists_the_routes_agree(small):
    panel = _panel(small, therapist="therapist")
    assert _plan(panel).therapist == choose_therapist(panel)[0] == "nested"
    assert pa.AllianceModel().resolve(panel).therapist == "nested"
    # a therapist term asked for without the column names the fix
    with pytest.raises(pa.PylmeError, match="needs a therapist column"):
        pa.AllianceModel(therapist="nested").formula(_panel(small))


def small_removed(fit):
    return bool(fit.removed_terms)


def test_one_heterogeneity_verdict_whichever_route(small):
    panel = _panel(small, therapist="therapist")
    fit = quiet(pa.AllianceModel().fit, panel)
    het = quiet(fit.heterogeneity, interval=False)
    report = quiet(pa.analyze, panel, leads=(1,), progress=False, checks=())
    absent = report.settings.get("heterogeneity_absent")
    # whichever route: the same verdict from the same rule (here the intercepts the fixed
    # part absorbs are removed first, so the slope is identified and tested)
    assert absent is None and small_removed(fit)
    assert het.verdict == "not supported"
    in_report = report.tables["heterogeneity"].set_index("statistic").loc["random-slope test", "note"]
    # the same test and verdict (the report adds the refit's warnings after it)
    assert in_report.startswith(het.summary.set_index("statistic").loc["random-slope test", "note"])
    assert "heterogeneity not supported" in in_report
    assert np.isfinite(het.test.p_value)  # the test was run; its p is not read as a claim
