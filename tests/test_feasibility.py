"""feasibility: seconds and GB from rows x engine, and analyze() saying so before it fits."""
from __future__ import annotations

import math
import warnings

import pytest

import pylme_alliance as pa
from pylme_alliance.errors import PylmeWarning
from pylme_alliance.models import feasibility
from pylme_alliance.models.model import AllianceModel


def test_estimate_follows_the_measured_power_law():
    a, b, base, per_row = feasibility.COEFFICIENTS["lme4"]
    one = feasibility.estimate(100_000, "lme4")
    assert one.seconds == pytest.approx(a * 100_000 ** b)
    assert one.gigabytes == pytest.approx(base + per_row * 100_000)
    # more rows never cost less, and glmmTMB needs more memory per row than lme4
    for engine in ("lme4", "nlme", "glmmtmb"):
        assert feasibility.estimate(10_000, engine).seconds < feasibility.estimate(1_000_000, engine).seconds
    assert feasibility.estimate(10 ** 6, "glmmTMB").gigabytes > feasibility.estimate(10 ** 6, "lme4").gigabytes
    assert math.isnan(feasibility.estimate(1000, "statsmodels").seconds)


def test_the_measured_table_says_lme4_fits_200k_patients_in_minutes():
    # 200,000 patients x ~9 kept rows: the README's feasibility statement, from the coefficients
    lme4 = feasibility.estimate(1_800_000, "lme4")
    assert lme4.seconds < 600 and lme4.gigabytes < 24
    nlme = feasibility.analyze_estimate(1_800_000, engine="lme4", n_fits=10, ar1_engine="nlme")
    assert nlme.seconds > 600  # the AR(1) check alone is over 10 minutes there


def test_warning_is_a_pylme_warning():
    assert issubclass(feasibility.FeasibilityWarning, PylmeWarning)
    assert issubclass(PylmeWarning, UserWarning)


@pytest.fixture(scope="module")
def small():
    data = pa.simulate(n_patients=40, seed=2).data
    return pa.prepare(data, patient="patient", session="session", alliance="alliance", outcome="outcome",
                      therapist="therapist", leads=(1,))


def test_analyze_warns_before_the_first_fit(small, monkeypatch):
    # coefficients that make every row cost a minute: the warning must come before any fit
    monkeypatch.setattr(feasibility, "COEFFICIENTS", {"lme4": (60.0, 1.0, 0.5, 1e-6), "nlme": (60.0, 1.0, 0.5, 1e-6),
                                                      "glmmtmb": (60.0, 1.0, 0.5, 1e-6)})

    def no_fit(self, panel):
        raise AssertionError("fitted before warning")

    monkeypatch.setattr(AllianceModel, "fit", no_fit)
    with pytest.warns(feasibility.FeasibilityWarning, match=r"minutes of CPU time .* GB of memory"):
        with pytest.raises(AssertionError, match="fitted before warning"):
            pa.analyze(small, leads=(1,), progress=False)


def test_analyze_is_silent_below_the_threshold(small, monkeypatch):
    monkeypatch.setattr(AllianceModel, "fit", lambda self, panel: (_ for _ in ()).throw(RuntimeError("stop")))
    with warnings.catch_warnings():
        warnings.simplefilter("error", feasibility.FeasibilityWarning)
        with pytest.raises(RuntimeError, match="stop"):
            pa.analyze(small, leads=(1,), progress=False)


def test_threshold_and_fits_counted(monkeypatch):
    coefficients = {"lme4": (1.0, 1.0, 0.0, 0.0), "nlme": (2.0, 1.0, 0.0, 0.0)}
    found = feasibility.analyze_estimate(10, engine="lme4", n_fits=3, ar1_engine="nlme", coefficients=coefficients)
    assert found.seconds == pytest.approx(3 * 10 + 2 * 20)
    with pytest.warns(feasibility.FeasibilityWarning):
        feasibility.warn_if_slow(10, engine="lme4", n_fits=3, ar1_engine="nlme", threshold=60,
                                 coefficients=coefficients)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        feasibility.warn_if_slow(10, engine="lme4", n_fits=3, ar1_engine=None, threshold=60,
                                 coefficients=coefficients)
