"""Values that cannot be right are caught before any fit (issue 20): declared codes
(na_values=), scale bounds (alliance_range=/outcome_range=), the sentinel scan, labels
from the file, and AlliancePanel.describe()."""
from __future__ import annotations

import datetime as dt
import warnings

import numpy as np
import pandas as pd
import pytest

import pylme_alliance as pa
from pylme_alliance.errors import PylmeError, PylmeWarning, SentinelWarning
from pylme_alliance.panel.prepare import prepare

COLS = dict(patient="patient", session="session", alliance="alliance", outcome="outcome")


@pytest.fixture(scope="module")
def trial() -> pd.DataFrame:
    return pa.simulate(n_patients=60, seed=20).data


@pytest.fixture
def coded(trial) -> pd.DataFrame:
    """The trial with "not rated" coded -99 in every 9th alliance row and 999 in 3 outcomes."""
    data = trial.copy()
    data.loc[data.index[::9], "alliance"] = -99
    data.loc[data.index[[5, 50, 100]], "outcome"] = 999
    return data


def _no_sentinel_warning(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", SentinelWarning)
        return fn(*args, **kwargs)


def test_minus_99_without_bounds_warns_naming_column_values_counts_and_option(coded):
    before = coded.copy()
    with pytest.warns(SentinelWarning) as record:
        panel = prepare(coded, **COLS)
    message = str(record[0].message)
    n_alliance = int((coded["alliance"] == -99).sum())
    assert "alliance column 'alliance'" in message and f"-99 ({n_alliance} rows)" in message
    assert "outcome column 'outcome'" in message and "999 (3 rows)" in message
    assert "na_values=[-99, 999]" in message and "--na-values=-99,999" in message
    assert issubclass(SentinelWarning, PylmeWarning)
    # it stays on the panel for the report, and the caller's frame is untouched
    assert panel.suspect_values["alliance column 'alliance'"] == {-99.0: n_alliance}
    assert any("-99" in note for note in panel.notes)
    pd.testing.assert_frame_equal(coded, before)


def test_clean_simulated_trials_raise_no_sentinel_warning():
    for seed in range(8):
        data = pa.simulate(n_patients=80, seed=seed).data
        _no_sentinel_warning(prepare, data, **COLS, therapist="therapist", time="day",
                             moderators=["severity", "arm", "n_sessions", "integrative"])


def test_range_refuses_before_any_work_naming_column_count_examples(coded):
    n_bad = int((coded["alliance"] == -99).sum())
    # the same data also have a duplicate session: the range is checked first
    duplicated = pd.concat([coded, coded.iloc[[1]]])
    with pytest.raises(PylmeError) as info:
        prepare(duplicated, **COLS, alliance_range=(1, 7))
    text = str(info.value)
    assert f"alliance column 'alliance' has {n_bad} value(s) outside alliance_range=(1, 7)" in text
    assert f"-99 ({n_bad} rows)" in text and "first rows: 0, 9, 18" in text
    assert "na_values=[-99]" in text
    with pytest.raises(PylmeError, match=r"outcome column 'outcome' has 3 value\(s\) outside outcome_range=\(0, 200\)"):
        prepare(coded, **COLS, alliance_range=(1, 7), na_values={"alliance": -99}, outcome_range=(0, 200))


def test_range_with_declared_codes_passes_and_is_recorded(coded):
    panel = _no_sentinel_warning(prepare, coded, **COLS, alliance_range=(1, 7), outcome_range=(0, 200),
                                 na_values=[-99, 999])
    assert panel.alliance_range == (1.0, 7.0) and panel.outcome_range == (0.0, 200.0)
    assert panel.na_values == {"alliance": (-99, 999), "outcome": (-99, 999)}
    assert panel.na_counts == {"alliance": int((coded["alliance"] == -99).sum()), "outcome": 3}
    assert panel.data["alliance"].min() >= 1 and panel.data["outcome"].max() <= 200


def test_na_values_turn_codes_missing_and_the_log_says_why(coded, trial):
    panel = _no_sentinel_warning(prepare, coded, **COLS, na_values={"alliance": [-99], "outcome": 999})
    reasons = panel.dropped["reason"].value_counts()
    assert reasons["alliance declared missing (na_values)"] == (coded["alliance"] == -99).sum()
    # the dropped log keeps the code as it was in the file
    declared = panel.dropped[panel.dropped["reason"] == "alliance declared missing (na_values)"]
    assert (declared["alliance"] == -99).all()
    # same panel as with NaN in place of the codes
    as_nan = coded.replace({"alliance": {-99: np.nan}, "outcome": {999: np.nan}})
    plain = prepare(as_nan, **COLS)
    pd.testing.assert_frame_equal(panel.data, plain.data)
    assert "alliance declared missing (na_values)" in panel.summary().index.str.slice(len("rows dropped: ")).tolist()


def test_na_values_scalar_applies_to_moderators_not_ids(trial):
    data = trial.copy()
    data["severity"] = data["severity"].where(data["patient"] != data["patient"].iloc[0], -99)
    with pytest.warns(SentinelWarning, match="moderator 'severity': -99"):
        prepare(data, **COLS, moderators=["severity"])
    panel = _no_sentinel_warning(prepare, data, **COLS, moderators=["severity"], na_values=-99)
    kept = data[data["patient"].isin(panel.data["patient"]) & (data["severity"] != -99)]
    assert panel.moderators["severity"].mean == pytest.approx(
        kept.groupby("patient")["severity"].first().mean(), rel=1e-9)
    assert "moderator 'severity' is missing for 1 patient(s)" in panel.notes
    assert "session" not in panel.na_values and "patient" not in panel.na_values


def test_na_values_and_ranges_are_checked(trial):
    with pytest.raises(PylmeError, match="na_values names column 'wai'"):
        prepare(trial, **COLS, na_values={"wai": -99})
    with pytest.raises(PylmeError, match="NaN is missing already"):
        prepare(trial, **COLS, na_values=[np.nan])
    with pytest.raises(PylmeError, match="must have low < high"):
        prepare(trial, **COLS, alliance_range=(7, 1))
    with pytest.raises(PylmeError, match="pair"):
        prepare(trial, **COLS, outcome_range=5)


def test_far_outlier_that_is_no_known_code_is_flagged(trial):
    data = trial.copy()
    data.loc[data.index[3], "alliance"] = 555.0  # a typo, far outside a 1-7 scale
    with pytest.warns(SentinelWarning, match=r"alliance column 'alliance': 555 \(1 row\)"):
        prepare(data, **COLS)


def test_outcome_99_inside_its_range_is_not_a_code(trial):
    # on a 0-180 symptom scale 99 is an ordinary score: no warning
    data = trial.copy()
    data.loc[data.index[::20], "outcome"] = 99.0
    assert data["outcome"].max() > 99
    _no_sentinel_warning(prepare, data, **COLS)


def test_file_labels_name_the_measures_unless_the_user_did(trial):
    data = trial.copy()
    data.attrs["labels"] = {"alliance": "Working Alliance  Inventory", "outcome": "OQ-45 total"}
    panel = prepare(data, **COLS)
    assert panel.outcome_label == "OQ-45 total" and panel.outcome_name == "OQ-45 total"
    assert panel.alliance_label == "Working Alliance Inventory"
    assert panel.alliance_name == "Working Alliance Inventory"
    mine = prepare(data, **COLS, outcome_label="symptoms", alliance_label="WAI-SR")
    assert mine.outcome_name == "symptoms" and mine.alliance_name == "WAI-SR"
    assert prepare(trial, **COLS).alliance_name == "alliance"


def test_time_as_datetime_date_objects_is_taken(trial):
    data = trial.copy()
    start = dt.date(2021, 3, 1)
    data["visit"] = [start + dt.timedelta(days=int(d)) for d in data["day"]]
    assert data["visit"].dtype == object
    by_date = prepare(data, **COLS, time="visit")
    by_day = prepare(data, **COLS, time="day")
    np.testing.assert_allclose(by_date.data["time_days"], by_day.data["time_days"])


def test_describe_states_what_was_analysed(coded):
    panel = prepare(coded, **COLS, time="day", moderators=["severity", "arm"], na_values=[-99, 999])
    table = panel.describe()
    assert list(table.index) == ["alliance", "outcome", "time", "moderator: severity", "moderator: arm",
                                 "sessions per patient", "rated sessions per patient",
                                 "analysed sessions per patient"]
    assert list(table.columns) == ["column", "label", "unit", "n", "missing", "mean", "sd", "min", "median",
                                   "max", "levels"]
    kept = panel.data
    alliance = table.loc["alliance"]
    assert alliance["n"] == len(kept)
    assert alliance["missing"] == int(coded["alliance"].isna().sum() + (coded["alliance"] == -99).sum())
    assert alliance["mean"] == pytest.approx(kept["alliance"].mean())
    assert alliance["sd"] == pytest.approx(kept["alliance"].std())
    assert alliance["min"] == kept["alliance"].min() >= 1  # the -99s are not in it
    assert table.loc["outcome", "max"] == kept["outcome"].max() < 999
    patients = kept.groupby("patient")["severity"].first()
    assert table.loc["moderator: severity", "unit"] == "patients"
    assert table.loc["moderator: severity", "n"] == len(patients)
    assert table.loc["moderator: severity", "sd"] == pytest.approx(patients.std())
    assert table.loc["moderator: arm", "levels"] == len(panel.moderators["arm"].levels)
    assert np.isnan(table.loc["moderator: arm", "mean"])
    # per patient, over the analysed patients: rows in the file, rated, analysed
    ids = kept["patient"].unique()
    mine = coded[coded["patient"].isin(ids)]
    per = mine.groupby("patient").size()
    rated = mine[mine["alliance"].notna() & (mine["alliance"] != -99)].groupby("patient").size()
    assert table.loc["sessions per patient", "median"] == per.median()
    assert table.loc["sessions per patient", "max"] == per.max()
    assert table.loc["rated sessions per patient", "min"] == rated.min()
    assert table.loc["rated sessions per patient", "median"] == rated.median()
    assert table.loc["analysed sessions per patient", "n"] == len(ids)
    assert table.loc["analysed sessions per patient", "median"] == kept.groupby("patient").size().median()


def test_describe_shows_an_undeclared_code_as_an_impossible_minimum(coded):
    with pytest.warns(SentinelWarning):
        panel = prepare(coded, **COLS)
    assert panel.describe().loc["alliance", "min"] == -99


def test_huge_session_number_is_refused_not_wrapped(trial):
    data = trial.copy()
    data["session"] = data["session"].astype(float)
    data.loc[data.index[4], "session"] = 1e19  # became -9223372036854775808 in int64
    with pytest.raises(PylmeError, match=r"session column 'session' holds session numbers above 1,000,000,000: "
                                         r"1e\+19 \(row 4\)"):
        prepare(data, **COLS)
