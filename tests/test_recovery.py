"""A light recovery study (issue 9): the default alliance model against the simulator's truth.

The full study is benchmarks/recovery.py (table in benchmarks/README.md). Here a few
replications check the claims that must hold for the default model, with bounds loose
enough for 10-20 replications.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from pylme_alliance.models.model import AllianceModel
from pylme_alliance.panel.prepare import prepare
from pylme_alliance.simulation.simulate import simulate

pytestmark = pytest.mark.filterwarnings("ignore")

Z95 = 1.959963984540054


def _within(model: AllianceModel, seeds: range, **design) -> tuple[np.ndarray, np.ndarray, float]:
    est, se = [], []
    truth = float("nan")
    for seed in seeds:
        sim = simulate(seed=seed, **design)
        truth = sim.truth["within"][1]
        panel = prepare(sim.data, patient="patient", session="session", alliance="alliance",
                        outcome="outcome", therapist="therapist", leads=(1,))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = model.fit(panel)
        row = fit.fixed_table.set_index("term").loc["alliance_within"]
        est.append(float(row["estimate"]))
        se.append(float(row["std_error"]))
    return np.array(est), np.array(se), truth


def test_default_model_recovers_within_under_feedback_at_T20() -> None:
    """Modest symptom->alliance feedback, 20 sessions: the default (decomposed) model's within
    effect is close to the truth and its intervals cover it."""
    design = dict(sessions=20, missed=0.0, dropout=0.0, feedback=-0.005)
    est, se, truth = _within(AllianceModel(), range(1, 13), **design)
    bias = est.mean() - truth
    coverage = np.mean(np.abs(est - truth) <= Z95 * se)
    assert abs(bias) < 0.10 * abs(truth), (bias, est)
    assert coverage >= 0.8, coverage
    # the reported SE matches the spread of the estimates (within a factor)
    assert 0.6 < est.std(ddof=1) / se.mean() < 1.6


def test_default_model_recovers_within_on_the_default_trial() -> None:
    """simulate()'s defaults: short series (median 7 sessions), missed sessions and dropout
    that depends on the alliance. Before the patient's mean session entered the model (and
    the means were taken over the fitted rows) the within effect came out 31% too large
    here; the measured bias is now about -2% (benchmarks/README.md)."""
    est, se, truth = _within(AllianceModel(), range(1, 9))
    bias = est.mean() - truth
    # 8 replications: Monte-Carlo SE of the mean about 0.13 (6.5% of the truth)
    assert abs(bias) < 0.15 * abs(truth), (bias, est)
    assert np.mean(np.abs(est - truth) <= Z95 * se) >= 0.75


def test_raw_control_is_more_biased_than_the_default_under_strong_feedback() -> None:
    """Strong feedback at T = 8: the raw lagged outcome beside a patient intercept biases the
    within effect more than the default model does (fails if the default were raw)."""
    design = dict(sessions=8, missed=0.0, dropout=0.0, feedback=-0.015)
    seeds = range(1, 11)
    est_default, _, truth = _within(AllianceModel(), seeds, **design)
    est_raw, _, _ = _within(AllianceModel(control_outcome="raw"), seeds, **design)
    bias_default = abs(est_default.mean() - truth)
    bias_raw = abs(est_raw.mean() - truth)
    # measured (benchmarks/README.md): raw about -100%, decomposed about -75% at T = 8 with this
    # strong feedback; the paired difference is what is claimed
    assert bias_raw > bias_default + 0.1 * abs(truth), (bias_raw, bias_default)
    # replication by replication, not only on average
    assert np.mean(np.abs(est_raw - truth) > np.abs(est_default - truth)) >= 0.7
