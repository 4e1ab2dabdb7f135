"""The within-alliance coefficient of the decomposed model IS the fixed-effects estimate
(issue 18, item 4): every time-varying control enters with its own patient mean over the
fitted rows (Mundlak), so the coefficient equals OLS with one dummy per patient and the
same controls, to 1e-6, with and without the outcome of the session before, on
unbalanced series with gaps and dropout."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import pylme_alliance as pa


def gappy_trial(seed: int) -> pd.DataFrame:
    """Patients who improve at their own rates, outcome deviations carried over, feedback,
    missed sessions and dropout: unbalanced series where a wrong Mundlak term shows."""
    rng = np.random.default_rng(seed)
    rows = []
    for patient in range(120):
        length = int(rng.integers(5, 16))
        level, rate = rng.normal(70, 12), rng.normal(-1.0, 0.8)
        alliance_level = rng.normal(5.5, 0.8)
        y_dev, a_prev = 0.0, alliance_level
        for session in range(1, length + 1):
            a = alliance_level + 0.4 * (a_prev - alliance_level) - 0.03 * y_dev + rng.normal(0, 0.4)
            y_dev = 0.4 * y_dev - 2.0 * (a_prev - alliance_level) + rng.normal(0, 4)
            a_prev = a
            if rng.random() < 0.12:
                continue  # a missed session: a gap in the session numbers
            rows.append({"patient": patient, "session": session, "alliance": a,
                         "outcome": level + rate * session + y_dev})
    return pd.DataFrame(rows)


def ols_with_patient_dummies(frame: pd.DataFrame, response: str, controls: list[str]) -> float:
    """The within coefficient by OLS on the model's own rows with a dummy per patient."""
    rows = frame.dropna(subset=[response, "alliance", *controls])
    dummies = pd.get_dummies(rows["patient"].astype(str), dtype=float)
    x = np.column_stack([rows[["alliance", *controls]].to_numpy(dtype=float), dummies.to_numpy()])
    coef, *_ = np.linalg.lstsq(x, rows[response].to_numpy(dtype=float), rcond=None)
    return float(coef[0])


@pytest.mark.parametrize("seed", [3, 11])
@pytest.mark.parametrize("prior_outcome", [True, False])
def test_within_effect_equals_the_fixed_effects_estimate(seed, prior_outcome):
    panel = pa.prepare(gappy_trial(seed), patient="patient", session="session", alliance="alliance",
                       outcome="outcome", leads=(1,))
    model = pa.AllianceModel(therapist="none", random_slope=False, prior_outcome=prior_outcome)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit(panel)
    frame = model.model_frame(panel)
    data = frame.assign(alliance=frame["alliance_within"] + frame["alliance_between"])
    controls = ["outcome", "session"] + (["outcome_before"] if prior_outcome else [])
    expected = ols_with_patient_dummies(data, "outcome_lead1", controls)
    assert fit.fixef()["alliance_within"] == pytest.approx(expected, rel=1e-6, abs=1e-8)


def test_the_outcome_before_enters_with_its_own_patient_mean():
    panel = pa.prepare(gappy_trial(5), patient="patient", session="session", alliance="alliance",
                       outcome="outcome", leads=(1,))
    model = pa.AllianceModel(therapist="none", random_slope=False, prior_outcome=True)
    frame = model.model_frame(panel).dropna(subset=["outcome_before_within"])
    means = frame.groupby("patient", observed=True)["outcome_before_within"].mean()
    assert np.abs(means.to_numpy()).max() < 1e-9  # deviations from its own mean over the fitted rows
    assert "outcome_before_between" in model.formula(panel)
