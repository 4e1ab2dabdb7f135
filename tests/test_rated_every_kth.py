"""Alliance rated every k-th session (issue 18, item 3): the outcome of the session before
comes from every attended session, not only from the rated ones, and the data summary
tells attended-but-unrated sessions from missed ones."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import pylme_alliance as pa


@pytest.fixture(scope="module")
def every_other():
    data = pa.simulate(n_patients=60, n_therapists=6, sessions=10, missed=0, dropout=0, seed=3).data
    data = data.copy()
    data.loc[data["session"] % 2 == 0, "alliance"] = np.nan  # rated at odd sessions only
    data = data[~((data["patient"] == data["patient"].iloc[0]) & (data["session"] == 5))]  # one missed session
    return data


def test_outcome_before_comes_from_every_attended_session(every_other):
    panel = pa.prepare(every_other, patient="patient", session="session", alliance="alliance",
                       outcome="outcome", leads=(1,))
    by = every_other.set_index(["patient", "session"])["outcome"]
    kept = panel.data
    want = [by.get((p, s - 1), np.nan) for p, s in zip(kept["patient"], kept["session"])]
    np.testing.assert_array_equal(kept["outcome_before"].to_numpy(), np.asarray(want, dtype=float))
    # every kept row but each patient's first session has one (session 3's comes from
    # session 2, which had no alliance rating); on rated rows alone none would
    assert kept["outcome_before"].notna().sum() == len(kept) - 60
    model = pa.AllianceModel(therapist="none", random_slope=False, prior_outcome=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = model.model_frame(panel)
    assert frame["outcome_before"].notna().sum() == kept["outcome_before"].notna().sum()


def test_summary_tells_unrated_sessions_from_missed_ones(every_other):
    panel = pa.prepare(every_other, patient="patient", session="session", alliance="alliance",
                       outcome="outcome", leads=(1,))
    summary = panel.summary()["value"]
    # odd sessions 1..9 are kept: 2, 4, 6, 8 lie inside each patient's range, unrated
    assert summary["attended sessions without an alliance rating"] == 60 * 4
    assert summary["missing sessions (gaps)"] == 1  # the one session 5 nobody attended
