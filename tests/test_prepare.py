"""Tests of prepare() and AlliancePanel (pure pandas, no R)."""
from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pylme_alliance.errors import PylmeError
from pylme_alliance.panel import _leads
from pylme_alliance.panel.prepare import AlliancePanel, ModeratorInfo, prepare

ROLES = dict(patient="patient", session="session", alliance="alliance", outcome="outcome")


def make_panel(
    n_patients: int = 30, max_sessions: int = 10, seed: int = 0, gap_rate: float = 0.15,
    missing_rate: float = 0.05,
) -> pd.DataFrame:
    """Shuffled long data with gaps, missing values, therapists and moderators."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):  # test data builder only
        n = int(rng.integers(1, max_sessions + 1))
        sessions = np.flatnonzero(rng.random(max_sessions) > gap_rate)[:n] + 1
        level = rng.normal(5.5, 0.8)
        for s in sessions:
            rows.append(
                {
                    "patient": f"P{p:03d}",
                    "session": int(s),
                    "alliance": level + 0.03 * s + rng.normal(0, 0.4),
                    "outcome": 80 - 1.5 * s + rng.normal(0, 8),
                    "therapist": f"T{p % 4}",
                    "severity": 60.0 + p,
                    "arm": ["control", "feedback"][p % 2],
                }
            )
    df = pd.DataFrame(rows)
    df.loc[rng.random(len(df)) < missing_rate, "alliance"] = np.nan
    df.loc[rng.random(len(df)) < missing_rate, "outcome"] = np.nan
    df = df.sample(frac=1.0, random_state=seed)
    df.index = pd.Index(rng.permutation(len(df)) * 10 + 7)  # a non-default original index
    return df


# -- leads ------------------------------------------------------------------------


def brute_force_leads(df: pd.DataFrame, k: int) -> dict[tuple, float]:
    """Reference: for each row, look up (patient, session + k) by scanning rows."""
    lookup = {}
    for _, row in df.iterrows():
        lookup[(row["patient"], row["session"])] = row["outcome"]
    return {
        (row["patient"], row["session"]): lookup.get((row["patient"], row["session"] + k), np.nan)
        for _, row in df.iterrows()
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_leads_match_brute_force_on_shuffled_data_with_gaps(seed):
    df = make_panel(seed=seed, gap_rate=0.3)
    panel = prepare(df, **ROLES, leads=(1, 2, 3))
    for k in (1, 2, 3):
        expected = brute_force_leads(df, k)
        got = panel.data[f"outcome_lead{k}"].to_numpy()
        want = np.array([expected[(p, s)] for p, s in zip(panel.data["patient"], panel.data["session"])])
        np.testing.assert_array_equal(got, want)


def test_lead_is_missing_across_a_gap_and_uses_rows_with_missing_alliance():
    df = pd.DataFrame(
        {
            "patient": [1, 1, 1, 1, 1],
            "session": [5, 1, 2, 3, 6],
            "alliance": [5.0, 5.0, np.nan, 6.0, 4.0],
            "outcome": [50.0, 10.0, 20.0, 30.0, 60.0],
        }
    )
    data = prepare(df, **ROLES, leads=(1, 2)).data
    assert data["session"].tolist() == [1, 3, 5, 6]
    # session 1 -> session 2 (alliance missing, outcome kept as lead target)
    assert data["outcome_lead1"].tolist()[0] == 20.0
    # session 3 -> session 4 does not exist: NA, never session 5's value
    assert math.isnan(data["outcome_lead1"].tolist()[1])
    assert data["outcome_lead2"].tolist()[1] == 50.0
    assert data["outcome_lead1"].tolist()[2] == 60.0


def test_lead_merge_fallback_matches_packed_key(monkeypatch):
    df = make_panel(seed=4, gap_rate=0.3)
    fast = prepare(df, **ROLES, leads=(1, 2)).data
    monkeypatch.setattr(_leads, "_PACKED_KEY_LIMIT", 0)
    slow = prepare(df, **ROLES, leads=(1, 2)).data
    pd.testing.assert_frame_equal(fast, slow)


# -- decomposition ------------------------------------------------------------------


def test_person_mean_identities():
    df = make_panel(seed=3)
    panel = prepare(df, **ROLES)
    d = panel.data
    total = d["alliance_between"] + d["alliance_within"]
    np.testing.assert_allclose(total, d["alliance"] - panel.alliance_grand_mean, atol=1e-12)
    np.testing.assert_allclose(d.groupby("patient")["alliance_within"].mean(), 0, atol=1e-12)
    # grand mean over patients, each once
    levels = d.groupby("patient")["alliance"].mean()
    assert panel.alliance_grand_mean == pytest.approx(levels.mean())
    np.testing.assert_allclose(d.groupby("patient")["alliance_between"].first().mean(), 0, atol=1e-12)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_early_between_is_mean_of_first_k_observed_sessions(k):
    df = make_panel(seed=5, missing_rate=0.2)
    panel = prepare(df, **ROLES, within="early", early_sessions=k)
    d = panel.data
    early = d.sort_values(["patient", "session"]).groupby("patient").head(k)
    levels = early.groupby("patient")["alliance"].mean()
    between = d.groupby("patient")["alliance_between"].first()
    np.testing.assert_allclose(between + levels.mean(), levels, atol=1e-12)
    np.testing.assert_allclose(
        d["alliance_between"] + d["alliance_within"], d["alliance"] - panel.alliance_grand_mean, atol=1e-12
    )


def test_detrend_residuals_have_zero_mean_and_zero_slope():
    df = make_panel(n_patients=60, seed=6)
    panel = prepare(df, **ROLES, within="detrend")
    d = panel.data
    n = d.groupby("patient")["session"].transform("size")
    long = d[n >= 3]
    assert len(long)
    np.testing.assert_allclose(long.groupby("patient")["alliance_within"].mean(), 0, atol=1e-10)
    slope_num = (long["session"] - long.groupby("patient")["session"].transform("mean")) * long["alliance_within"]
    np.testing.assert_allclose(slope_num.groupby(long["patient"]).sum(), 0, atol=1e-9)
    # short patients fall back to the person mean, and the notes say so
    short = d[n < 3]
    if len(short):
        np.testing.assert_allclose(short.groupby("patient")["alliance_within"].mean(), 0, atol=1e-12)
        assert any("1-2" in note for note in panel.notes)
    # level = fitted value at the grand-mean session, compared with numpy polyfit
    centre = d["session"].mean()
    levels = {}
    for pid, g in long.groupby("patient"):
        slope, intercept = np.polyfit(g["session"], g["alliance"], 1)
        levels[pid] = intercept + slope * centre
    between = long.groupby("patient")["alliance_between"].first()
    got = between + panel.alliance_grand_mean
    np.testing.assert_allclose(got, pd.Series(levels)[got.index], atol=1e-9)


def test_split_therapist_parts_add_to_between():
    df = make_panel(seed=7)
    panel = prepare(df, **ROLES, therapist="therapist", split_therapist=True)
    d = panel.data
    assert len(panel.multi_therapist_patients) == 0
    np.testing.assert_allclose(
        d["alliance_between_therapist"] + d["alliance_between_patient"], d["alliance_between"], atol=1e-12
    )
    # therapist mean of patient levels, each patient once
    per_patient = d.groupby("patient").agg(th=("therapist", "first"), b=("alliance_between", "first"))
    th_mean = per_patient.groupby("th")["b"].mean()
    np.testing.assert_allclose(
        d["alliance_between_therapist"], d["therapist"].map(th_mean).astype(float), atol=1e-12
    )


def test_multi_therapist_patients_listed():
    df = make_panel(seed=8)
    df.loc[df["patient"] == "P001", "therapist"] = np.where(
        df.loc[df["patient"] == "P001", "session"] % 2 == 0, "T9", "T8"
    )
    panel = prepare(df, **ROLES, therapist="therapist")
    assert list(panel.multi_therapist_patients) == ["P001"]
    assert any("crossed" in note for note in panel.notes)


# -- dropped accounting -------------------------------------------------------------


def test_dropped_accounting_and_reasons():
    df = pd.DataFrame(
        {
            "patient": ["a", "a", "a", None, "b", "c", "c", "c", "a"],
            "session": [1, 2, 3, 1, 1, 1, 2, np.nan, 4],
            "alliance": [5.0, np.nan, 6.0, 5.0, 4.0, np.nan, 4.0, 5.0, 5.5],
            "outcome": [70.0, 60.0, np.nan, 50.0, 40.0, np.nan, 30.0, 20.0, 65.0],
        },
        index=[10, 11, 12, 13, 14, 15, 16, 17, 18],
    )
    panel = prepare(df, **ROLES)
    assert len(panel.data) + len(panel.dropped) == len(df)
    assert panel.dropped["reason"].to_dict() == {
        11: "missing alliance",
        12: "missing outcome",
        13: "missing patient id",
        14: "fewer than 2 usable sessions",
        15: "missing alliance and outcome",
        16: "fewer than 2 usable sessions",
        17: "missing session number",
    }
    pd.testing.assert_frame_equal(panel.dropped.drop(columns="reason"), df.loc[panel.dropped.index])
    assert list(panel.data.index) == [0, 1]
    assert panel.data["outcome_lead1"].tolist()[0] == 60.0  # session 2: alliance missing, outcome kept
    summary = panel.summary()
    assert summary.loc["rows dropped", "value"] == 7
    assert summary.loc["rows dropped: missing alliance", "value"] == 1


def test_no_usable_rows_is_an_error():
    df = pd.DataFrame({"patient": [1, 2], "session": [1, 1], "alliance": [1.0, 2.0], "outcome": [1.0, 2.0]})
    with pytest.raises(PylmeError, match="no usable sessions"):
        prepare(df, **ROLES)


def test_data_sorted_index_reset_and_dtypes():
    df = make_panel(seed=9)
    d = prepare(df, **ROLES).data
    assert list(d.index) == list(range(len(d)))
    assert d.equals(d.sort_values(["patient", "session"]).reset_index(drop=True))
    assert d["session"].dtype == np.int64 and d["alliance"].dtype == np.float64
    assert list(d.columns[: len(df.columns)]) == list(df.columns)


# -- properties: order invariance and non-mutation -----------------------------------


@st.composite
def panels(draw):
    n_patients = draw(st.integers(1, 6))
    id_kind = draw(st.sampled_from(["str", "int", "category"]))
    rows = []
    for p in range(n_patients):
        sessions = draw(st.lists(st.integers(1, 9), min_size=1, max_size=7, unique=True))
        for s in sessions:
            value = st.one_of(st.none(), st.floats(1, 7, allow_nan=False))
            rows.append((p, s, draw(value), draw(value), draw(st.sampled_from(["t1", "t2"]))))
    df = pd.DataFrame(rows, columns=["patient", "session", "alliance", "outcome", "therapist"])
    df["alliance"] = df["alliance"].astype(float)
    df["outcome"] = df["outcome"].astype(float)
    df["severity"] = 50.0 + 3.0 * df["patient"]
    df["arm"] = np.where(df["patient"] % 2 == 0, "control", "feedback")
    df["day"] = 7.0 * df["session"] + df["patient"]
    if id_kind == "str":
        df["patient"] = "id" + df["patient"].astype(str)
    elif id_kind == "category":
        df["patient"] = pd.Categorical(df["patient"].map(lambda v: f"c{v}"))
    order = draw(st.permutations(range(len(df))))
    return df, list(order)


def _prepare_or_error(df, **options):
    try:
        return prepare(
            df, **ROLES, therapist="therapist", time="day", leads=(1, 2),
            moderators=["severity", "arm"], split_therapist=True, **options,
        )
    except PylmeError as error:
        return str(error)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(panels(), st.sampled_from(["person_mean", "early", "detrend"]))
def test_result_does_not_depend_on_row_order_and_input_is_not_mutated(case, within):
    df, order = case
    before = copy.deepcopy(df)
    shuffled = df.iloc[order]
    shuffled_before = copy.deepcopy(shuffled)
    a = _prepare_or_error(df, within=within)
    b = _prepare_or_error(shuffled, within=within)
    pd.testing.assert_frame_equal(df, before)
    pd.testing.assert_frame_equal(shuffled, shuffled_before)
    if isinstance(a, str):
        assert a == b
        return
    pd.testing.assert_frame_equal(a.data, b.data)
    pd.testing.assert_frame_equal(a.dropped.sort_index(), b.dropped.sort_index())
    assert len(a.data) + len(a.dropped) == len(df)
    assert a.notes == b.notes
    assert repr(a.moderators) == repr(b.moderators)  # repr: sd may be NaN (1 patient)
    pd.testing.assert_frame_equal(a.summary(), b.summary())
    assert repr(a) == repr(b)


# -- moderators ---------------------------------------------------------------------


def test_numeric_moderator_centred_over_patients():
    df = make_panel(seed=10)
    panel = prepare(df, **ROLES, moderators=["severity"])
    info = panel.moderators["severity"]
    per_patient = panel.data.groupby("patient")["severity"].first()
    assert info == ModeratorInfo(
        "severity", "numeric", "severity_c", None, None, False,
        pytest.approx(per_patient.mean()), pytest.approx(per_patient.std(ddof=1)),
    )
    np.testing.assert_allclose(panel.data.groupby("patient")["severity_c"].first().mean(), 0, atol=1e-9)


def test_moderator_varying_within_patient_is_an_error_unless_time_varying():
    df = make_panel(seed=11)
    df["mood"] = np.arange(len(df), dtype=float)
    with pytest.raises(PylmeError, match="'mood'.*varies within"):
        prepare(df, **ROLES, moderators=["mood"])
    panel = prepare(df, **ROLES, moderators=["mood"], time_varying=["mood"])
    info = panel.moderators["mood"]
    assert info.time_varying and info.column == "mood_c"
    assert panel.data["mood_c"].mean() == pytest.approx(0, abs=1e-9)
    assert any("time-varying" in note for note in panel.notes)


def test_moderator_recorded_at_intake_only_is_broadcast():
    df = make_panel(seed=12)
    df.loc[df["session"] > 1, "severity"] = np.nan
    panel = prepare(df, **ROLES, moderators=["severity"])
    first = panel.data.groupby("patient")["severity_c"].agg(["min", "max"])
    has = panel.data.groupby("patient")["severity"].count() > 0
    assert (first["min"] == first["max"])[has].all()


def test_categorical_moderator_reference_level():
    df = make_panel(seed=13)
    panel = prepare(df, **ROLES, moderators=["arm"])
    info = panel.moderators["arm"]
    assert (info.kind, info.column, info.reference, info.levels) == (
        "categorical", "arm", "control", ("control", "feedback"),
    )
    assert isinstance(panel.data["arm"].dtype, pd.CategoricalDtype)
    assert list(panel.data["arm"].cat.categories) == ["control", "feedback"]
    panel = prepare(df, **ROLES, moderators=["arm"], reference_levels={"arm": "feedback"})
    assert panel.moderators["arm"].reference == "feedback"
    assert list(panel.data["arm"].cat.categories) == ["feedback", "control"]
    with pytest.raises(PylmeError, match="'placebo'"):
        prepare(df, **ROLES, moderators=["arm"], reference_levels={"arm": "placebo"})


def test_bool_and_category_moderators():
    df = make_panel(seed=14)
    df["flag"] = df["arm"] == "feedback"
    df["grade"] = pd.Categorical(
        np.where(df["arm"] == "feedback", "high", "low"), categories=["low", "high"], ordered=True
    )
    panel = prepare(df, **ROLES, moderators=["flag", "grade"])
    assert panel.moderators["flag"].levels == (False, True)
    assert panel.moderators["grade"].reference == "low"  # the category order, not alphabetical


# -- the outcome, decomposed; the direct-model columns; scales -----------------------


def test_outcome_split_into_patient_mean_and_deviation():
    df = make_panel(seed=15)
    panel = prepare(df, **ROLES)
    data = panel.data
    person_mean = data.groupby("patient")["outcome"].transform("mean")
    np.testing.assert_allclose(data["outcome_within"], data["outcome"] - person_mean, atol=1e-9)
    np.testing.assert_allclose(data["outcome_between"] + panel.outcome_grand_mean, person_mean, atol=1e-9)
    # grand-mean centred over PATIENTS (each once), not over rows
    assert abs(data.groupby("patient")["outcome_between"].first().mean()) < 1e-9


def test_no_warning_from_prepare_and_center_outcome_is_deprecated(recwarn):
    df = make_panel(seed=16)
    prepare(df, **ROLES)
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]
    with pytest.warns(DeprecationWarning, match="center_outcome"):
        panel = prepare(df, **ROLES, center_outcome=True)
    # the Nickell caution belongs to the fit that uses the lagged outcome, not to prepare
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]
    assert not any("Nickell" in note for note in panel.notes)


@pytest.mark.parametrize("seed", [3, 4])
def test_direct_model_columns_match_by_session_number(seed):
    df = make_panel(seed=seed, gap_rate=0.3)
    panel = prepare(df, **ROLES, leads=(3,))
    data = panel.data
    # the direct lead-3 model needs the outcome at t+2 and the alliance deviations at t+1, t+2
    assert {"outcome_lead2", "alliance_within_lead1", "alliance_within_lead2"} <= set(data.columns)
    assert panel.lead_columns == ["outcome_lead3"]
    within = {(p, s): w for p, s, w in zip(data["patient"], data["session"], data["alliance_within"])}
    outcome = {(p, s): y for p, s, y in zip(df["patient"], df["session"], df["outcome"])}
    for j in (1, 2):
        expected = [within.get((p, s + j), np.nan) for p, s in zip(data["patient"], data["session"])]
        np.testing.assert_array_equal(data[f"alliance_within_lead{j}"].to_numpy(), np.array(expected))
    expected = [outcome.get((p, s + 2), np.nan) for p, s in zip(data["patient"], data["session"])]
    np.testing.assert_array_equal(data["outcome_lead2"].to_numpy(), np.array(expected, dtype=float))
    # a gap means a missing intermediate deviation, never the next row's value
    assert data["alliance_within_lead1"].isna().any()


def test_scales_for_standardised_effects():
    df = make_panel(seed=5)
    panel = prepare(df, **ROLES)
    data = panel.data
    n, p = len(data), data["patient"].nunique()
    dev_y = data["outcome"] - data.groupby("patient")["outcome"].transform("mean")
    dev_a = data["alliance"] - data.groupby("patient")["alliance"].transform("mean")
    assert panel.scales["outcome_within"] == pytest.approx(math.sqrt((dev_y ** 2).sum() / (n - p)))
    assert panel.scales["alliance_within"] == pytest.approx(math.sqrt((dev_a ** 2).sum() / (n - p)))
    assert panel.scales["outcome_between"] == pytest.approx(data.groupby("patient")["outcome"].mean().std())
    assert panel.scales["alliance_between"] == pytest.approx(data.groupby("patient")["alliance"].mean().std())
    assert panel.scales["outcome"] == pytest.approx(data["outcome"].std())
    assert panel.scales["outcome_within"] < panel.scales["outcome"]


def test_outcome_direction_and_label_are_stored():
    df = make_panel(seed=6)
    assert prepare(df, **ROLES).outcome_better is None
    panel = prepare(df, **ROLES, outcome_better="lower", outcome_label="OQ-45 total")
    assert panel.outcome_better == "lower" and panel.outcome_label == "OQ-45 total"
    assert panel.outcome_name == "OQ-45 total"
    assert prepare(df, **ROLES, outcome_better="higher").outcome_name == "outcome"
    with pytest.raises(PylmeError, match="outcome_better"):
        prepare(df, **ROLES, outcome_better="better")
    with pytest.raises(PylmeError, match="outcome_label"):
        prepare(df, **ROLES, outcome_label=3)


# -- moderators with stray text, constant alliance -------------------------------------


def test_numeric_moderator_with_stray_text_is_refused_naming_the_values():
    df = make_panel(seed=7)
    df["severity"] = df["severity"].astype(object)
    first = df["patient"] == df["patient"].iloc[0]
    df.loc[first, "severity"] = "n/a"
    with pytest.raises(PylmeError, match=r"'severity'.*'n/a'"):
        prepare(df, **ROLES, moderators=["severity"])
    # numbers read as text (a CSV column with one "?") are refused too
    as_text = make_panel(seed=7)
    as_text["severity"] = as_text["severity"].map("{:g}".format)
    with pytest.raises(PylmeError, match=r"'severity'.*numbers stored as text"):
        prepare(as_text, **ROLES, moderators=["severity"])
    # ... unless the user says they are categories
    as_text["severity"] = as_text["severity"].astype("category")
    assert prepare(as_text, **ROLES, moderators=["severity"]).moderators["severity"].kind == "categorical"
    # an object column holding only numbers is numeric
    numbers = make_panel(seed=7)
    numbers["severity"] = numbers["severity"].astype(object)
    info = prepare(numbers, **ROLES, moderators=["severity"]).moderators["severity"]
    assert info.kind == "numeric" and info.column == "severity_c"
    # a text moderator stays categorical
    assert prepare(numbers, **ROLES, moderators=["arm"]).moderators["arm"].kind == "categorical"


def test_constant_alliance_is_refused():
    df = make_panel(seed=8).assign(alliance=5.0)
    with pytest.raises(PylmeError, match=r"alliance column 'alliance' is constant"):
        prepare(df, **ROLES)


# -- errors --------------------------------------------------------------------------


def small():
    return pd.DataFrame(
        {"patient": [1, 1, 2, 2], "session": [1, 2, 1, 2], "alliance": [5.0, 6, 4, 5],
         "outcome": [70.0, 60, 80, 75]}
    )


def test_missing_column_lists_close_matches():
    with pytest.raises(PylmeError, match=r"'alliace'.*Did you mean 'alliance'.*Available columns"):
        prepare(small(), **{**ROLES, "alliance": "alliace"})


def test_duplicate_patient_session_rows():
    df = pd.concat([small(), small().iloc[[1]]])
    with pytest.raises(PylmeError, match=r"more than once.*patient=1, session=2"):
        prepare(df, **ROLES)


@pytest.mark.parametrize("column", ["alliance", "outcome"])
def test_non_numeric_values(column):
    df = small().astype({column: object})
    df.loc[2, column] = "n/a"
    with pytest.raises(PylmeError, match=rf"{column}.*'n/a'"):
        prepare(df, **ROLES)


@pytest.mark.parametrize("column", ["alliance", "outcome"])
def test_infinite_values(column):
    df = small()
    df.loc[1, column] = np.inf
    with pytest.raises(PylmeError, match=rf"{column}.*infinite"):
        prepare(df, **ROLES)


def test_missing_values_of_all_kinds_are_missing_not_errors():
    df = small().astype({"alliance": object, "outcome": "Float64"})
    df.loc[0, "alliance"] = None
    df.loc[1, "outcome"] = pd.NA
    panel = prepare(df, **ROLES, min_sessions=1)
    assert set(panel.dropped["reason"]) == {"missing alliance", "missing outcome"}


@pytest.mark.parametrize("value, problem", [(1.5, "integer"), (-2, ">= 0"), (-0.5, "integer")])
def test_bad_session_numbers(value, problem):
    df = small().astype({"session": float})
    df.loc[3, "session"] = value
    with pytest.raises(PylmeError, match=rf"'session'.*{problem}"):
        prepare(df, **ROLES)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"within": "grand"}, "within must be one of"),
        ({"leads": (0,)}, "lead"),
        ({"leads": (1.5,)}, "lead"),
        ({"leads": (1, 1)}, "duplicates"),
        ({"early_sessions": 0}, "early_sessions"),
        ({"min_sessions": 0}, "min_sessions"),
        ({"split_therapist": True}, "therapist"),
        ({"time_varying": ["x"]}, "time_varying"),
        ({"moderators": ["alliance"]}, "role column"),
    ],
)
def test_bad_options(options, match):
    with pytest.raises(PylmeError, match=match):
        prepare(small(), **ROLES, **options)


@pytest.mark.parametrize("existing", ["alliance_between", "alliance_within", "outcome_lead1", "severity_c"])
def test_derived_names_must_not_collide(existing):
    df = small().assign(severity=[1.0, 1.0, 2.0, 2.0])
    df[existing] = 0.0 if existing != "severity_c" else 1.0
    with pytest.raises(PylmeError, match=existing):
        prepare(df, **ROLES, moderators=["severity"])


# -- ids, names, time ---------------------------------------------------------------


def test_weird_column_names_and_integer_ids():
    df = small().rename(
        columns={"patient": "pat`ient id", "session": "sess ion", "alliance": "W.A.I (short)",
                 "outcome": "O'Q \"score\""}
    )
    df["inta`ke \"sev\""] = [10.0, 10.0, 30.0, 30.0]
    panel = prepare(
        df, patient="pat`ient id", session="sess ion", alliance="W.A.I (short)",
        outcome="O'Q \"score\"", moderators=["inta`ke \"sev\""],
    )
    assert panel.roles["patient"] == "pat`ient id" and panel.roles["therapist"] is None
    assert panel.data["outcome_lead1"].tolist()[0] == 60.0
    assert panel.moderators["inta`ke \"sev\""].column == "inta`ke \"sev\"_c"
    assert panel.data["inta`ke \"sev\"_c"].tolist() == [-10.0, -10.0, 10.0, 10.0]


def test_time_in_days_since_first_session():
    df = small()
    df["date"] = pd.to_datetime(["2024-03-01", "2024-03-09", "2024-02-01", "2024-02-04"]).tz_localize("UTC")
    panel = prepare(df, **ROLES, time="date")
    assert panel.data["time_days"].tolist() == [0.0, 8.0, 0.0, 3.0]
    assert panel.roles["time"] == "date"
    numeric = prepare(small().assign(day=[3.0, 10.0, 1.0, 2.5]), **ROLES, time="day")
    assert numeric.data["time_days"].tolist() == [0.0, 7.0, 0.0, 1.5]


# -- the panel object -------------------------------------------------------------------


def test_panel_is_frozen_and_readable():
    df = make_panel(seed=17)
    panel = prepare(df, **ROLES, therapist="therapist", leads=(1, 2), moderators=["arm"])
    assert isinstance(panel, AlliancePanel)
    with pytest.raises(dataclasses.FrozenInstanceError):
        panel.within = "early"  # type: ignore[misc]
    text = repr(panel)
    assert "AlliancePanel" in text and "patients" in text and len(text.splitlines()) <= 6
    assert str(panel) == text
    assert panel.leads == (1, 2) and panel.lead_columns == ["outcome_lead1", "outcome_lead2"]
    summary = panel.summary()
    for item in ["patients", "therapists", "sessions kept", "sessions per patient: median",
                 "missing sessions (gaps)", "rows dropped"]:
        assert item in summary.index
    assert summary.loc["sessions kept", "value"] == len(panel.data)
    per = panel.data.groupby("patient")["session"].agg(["min", "max", "size"])
    # every hole in a patient's kept range is either a missed session or an attended one
    # without an alliance rating (issue 18: those are not "gaps")
    holes = int((per["max"] - per["min"] + 1 - per["size"]).sum())
    assert (summary.loc["missing sessions (gaps)", "value"]
            + summary.loc["attended sessions without an alliance rating", "value"]) == holes


def test_other_input_problems():
    with pytest.raises(PylmeError, match="DataFrame"):
        prepare(small().to_dict(), **ROLES)
    with pytest.raises(PylmeError, match="'reason'"):
        prepare(small().assign(reason="x"), **ROLES)
    with pytest.raises(PylmeError, match="both as patient= and as session="):
        prepare(small(), **{**ROLES, "session": "patient"})
    with pytest.raises(PylmeError, match="'when'.*datetime"):
        prepare(small().assign(when="2024-01-01"), **ROLES, time="when")
