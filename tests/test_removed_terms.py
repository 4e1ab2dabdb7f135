"""Random intercepts absorbed by the decomposed outcome control are removed, not flagged
(issue 21, item 2): the refit has the same fixed effects and log-likelihood."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import pylme_alliance as pa
from pylme_alliance.models import diagnostics


def quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


@pytest.fixture(scope="module")
def panel():
    data = pa.simulate(n_patients=80, n_therapists=10, sessions=8, slope_sd=3.0, seed=5).data
    return pa.prepare(data, patient="patient", session="session", alliance="alliance", outcome="outcome",
                      therapist="therapist")


def test_absorbed_intercepts_are_removed_with_the_same_optimum(panel):
    model = pa.AllianceModel()
    fit = quiet(model.fit, panel)
    # the therapist intercept at 0 first, then (refitted without it) the patient's
    assert set(fit.removed_terms) == {"therapist:patient: (Intercept)", "therapist: (Intercept)"}
    assert "(0 + alliance_within | therapist:patient)" in fit.formula and "(1 | therapist)" not in fit.formula
    assert not fit.singular and diagnostics.fit_status(fit) == ""
    assert sum("removed" in note for note in fit.notes) == 1
    # the model as specified, fitted as it is: intercept SDs at 0, flagged singular
    resolved = model.resolve(panel)
    full = quiet(pa.lmer, resolved.spec(panel).formula, resolved.model_frame(panel))
    assert full.singular
    assert fit.stats["logLik"] == pytest.approx(full.stats["logLik"], abs=1e-4)
    np.testing.assert_allclose(fit.fixef_values[full.fixef_values.index], full.fixef_values, rtol=1e-3, atol=1e-4)
    # the slope test still counts the parameters of the model as specified
    het = quiet(fit.heterogeneity, interval=False, trend=False, method="mixture")
    assert het.test.df == 2 and not het.degenerate


def test_raw_control_keeps_its_random_terms(panel):
    fit = quiet(pa.AllianceModel(control_outcome="raw").fit, panel)
    assert fit.removed_terms == () and "(1 + alliance_within | therapist:patient)" in fit.formula
