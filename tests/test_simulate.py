"""Tests of the trial simulator and the bundled example (fast, no R)."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from pylme_alliance.errors import PylmeError
from pylme_alliance.simulation.example import EXAMPLE_MODERATION, EXAMPLE_SEED, load_example, write_example
from pylme_alliance.simulation.simulate import ARMS, Simulation, simulate

COLUMNS = ["patient", "therapist", "arm", "session", "day", "alliance", "outcome",
           "severity", "n_sessions", "integrative"]


@pytest.fixture(scope="module")
def default_sim() -> Simulation:
    return simulate(seed=7)


@pytest.fixture(scope="module")
def big_sim() -> Simulation:
    return simulate(n_patients=6000, n_therapists=400, seed=11)


def _decompose(d: pd.DataFrame, lead: int = 1) -> pd.DataFrame:
    """Person-mean decomposition and lead by session NUMBER, done here by hand."""
    d = d.copy()
    pm = d.groupby("patient")["alliance"].transform("mean")
    d["alliance_within"] = d["alliance"] - pm
    d["alliance_between"] = pm - d.groupby("patient")["alliance"].mean().mean()
    nxt = d[["patient", "session", "outcome"]].copy()
    nxt["session"] -= lead
    d = d.merge(nxt.rename(columns={"outcome": "lead"}), on=["patient", "session"], how="left")
    return d


def test_columns_types_ranges(default_sim: Simulation) -> None:
    d = default_sim.data
    assert list(d.columns) == COLUMNS
    assert d["patient"].nunique() == 547
    assert d["therapist"].nunique() == 40
    assert list(d["arm"].cat.categories) == list(ARMS)
    assert d["patient"].str.fullmatch(r"P\d{4}").all()
    assert d["therapist"].str.fullmatch(r"T\d{2}").all()
    assert d["outcome"].between(0, 180).all()
    assert d["alliance"].between(1, 7).all()
    assert d["integrative"].between(1, 7).all()
    assert not d.isna().any().any()
    assert d["session"].min() == 1 and d["session"].max() <= 30
    # constants within patient / therapist
    per_patient = d.groupby("patient").agg(
        sev=("severity", "nunique"), n=("n_sessions", "nunique"), rows=("session", "size"),
        nval=("n_sessions", "first"), arm=("arm", "nunique"), th=("therapist", "nunique"))
    assert (per_patient[["sev", "n", "arm", "th"]] == 1).all().all()
    assert (per_patient["rows"] == per_patient["nval"]).all()
    assert d.groupby("therapist")["integrative"].nunique().eq(1).all()
    # severity is the intake outcome
    first = d[d["session"] == 1]
    assert (first["severity"] == first["outcome"]).all()
    # caseloads 5-25
    caseload = d.groupby("therapist")["patient"].nunique()
    assert caseload.min() >= 5 and caseload.max() <= 25
    # one row per patient-session; days increase with session
    assert not d.duplicated(["patient", "session"]).any()
    assert (d.sort_values(["patient", "session"]).groupby("patient")["day"].diff().dropna() > 0).all()


def test_gaps_dropout_and_lengths(default_sim: Simulation) -> None:
    d, truth = default_sim.data, default_sim.truth
    last = d.groupby("patient")["session"].max()
    n = d.groupby("patient")["session"].size()
    assert (last > n).sum() > 50          # many patients with at least one missed session
    assert 0.05 <= truth["missed_rate"] <= 0.15
    assert 0.2 <= truth["dropout_rate"] <= 0.4
    assert 5 <= n.median() <= 9
    assert (n <= 2).sum() >= 5            # a few very short treatments
    assert n.max() > 15


def test_determinism() -> None:
    a = simulate(seed=3, n_patients=80, n_therapists=8)
    b = simulate(seed=3, n_patients=80, n_therapists=8)
    c = simulate(seed=4, n_patients=80, n_therapists=8)
    pd.testing.assert_frame_equal(a.data, b.data)
    assert a.truth == b.truth or str(a.truth) == str(b.truth)
    assert not a.data["outcome"].equals(c.data["outcome"])


def test_magnitudes(big_sim: Simulation) -> None:
    d, truth = big_sim.data, big_sim.truth
    per = d.groupby("patient").agg(a=("alliance", "mean"), y=("outcome", "mean"), sev=("severity", "first"))
    r = np.corrcoef(per["a"], per["y"])[0, 1]
    assert -0.38 <= r <= -0.18
    assert 5.5 <= d["alliance"].mean() <= 6.0
    assert 0.65 <= per["a"].std() <= 0.95
    within_sd = (d["alliance"] - d.groupby("patient")["alliance"].transform("mean")).std()
    assert 0.28 <= within_sd <= 0.5
    assert 75 <= per["sev"].mean() <= 85 and 18 <= per["sev"].std() <= 27
    means = d.groupby("session")["outcome"].mean()
    early = (means.loc[1] - means.loc[5]) / 4
    late = (means.loc[10] - means.loc[20]) / 10
    assert 1.0 <= early <= 2.5 and late < early
    trend = np.polyfit(d["session"].clip(upper=15), d["alliance"], 1)[0]
    assert 0.01 <= trend <= 0.05
    assert -0.20 <= truth["within_std"] <= -0.05
    assert truth["therapist_share"] == pytest.approx(0.05)
    assert 0.6 <= truth["patient_share"] <= 0.75


def test_within_lag1_recovered_by_fixed_effects(big_sim: Simulation) -> None:
    """Within-patient OLS with lagged-outcome control and session recovers within[1]."""
    import statsmodels.formula.api as smf

    d = _decompose(big_sim.data).dropna(subset=["lead"])
    # demean everything within patient (the within estimator the mixed model approaches)
    cols = ["lead", "outcome", "session", "alliance_within"]
    dm = d[cols] - d.groupby("patient")[cols].transform("mean")
    dm["patient"] = d["patient"]
    fit = smf.ols("lead ~ 0 + outcome + session + alliance_within", data=dm).fit(
        cov_type="cluster", cov_kwds={"groups": pd.factorize(dm["patient"])[0]})
    est, se = fit.params["alliance_within"], fit.bse["alliance_within"]
    truth = big_sim.truth["within"][1]
    assert abs(est - truth) < 3 * se, (est, se, truth)
    # and it is no fluke of the noise: the sample's noise-free estimand is close to the truth
    assert abs(big_sim.truth["within_expected"][1] - truth) < 0.2


def test_between_recovered_without_outcome_control(big_sim: Simulation) -> None:
    import statsmodels.formula.api as smf

    d = _decompose(big_sim.data).dropna(subset=["lead"])
    fit = smf.ols("lead ~ session + alliance_within + alliance_between", data=d).fit(
        cov_type="cluster", cov_kwds={"groups": pd.factorize(d["patient"])[0]})
    est, se = fit.params["alliance_between"], fit.bse["alliance_between"]
    assert abs(est - big_sim.truth["between"]) < 3 * se, (est, se)


def test_moderation_truth() -> None:
    sim = simulate(seed=5, moderation=EXAMPLE_MODERATION)
    t = sim.truth
    assert t["moderation"]["severity"] == EXAMPLE_MODERATION["severity"]
    assert set(t["moderator_centres"]) == {"severity", "n_sessions", "integrative", "arm"}
    # the row-weighted centre keeps the unmoderated estimand at within_effect[0]
    assert t["within"][1] == -2.0
    assert t["within_by_arm"]["alliance"] < t["within_by_arm"]["none"] < t["within_by_arm"]["oq_report"]
    assert t["slope_sd_total"] > t["slope_sd"]
    # moderators appear in the directions METHODS.md reports
    for key in ("severity", "n_sessions", "integrative"):
        assert EXAMPLE_MODERATION[key] < 0


def test_speed() -> None:
    t0 = time.perf_counter()
    sim = simulate(n_patients=5000, seed=1)
    assert time.perf_counter() - t0 < 2.0
    assert sim.data["patient"].nunique() == 5000


def test_small_and_edge_cases() -> None:
    sim = simulate(n_patients=1, n_therapists=1, seed=0)
    assert sim.data["patient"].nunique() == 1
    sim = simulate(n_patients=30, n_therapists=3, n_arms=2, max_sessions=5, missed=0, dropout=0, seed=0,
                   within_effect=(-1.0,))
    assert set(sim.data["arm"].cat.categories) == {"none", "symptoms"}
    assert sim.data["session"].max() <= 5
    assert sim.truth["within"] == {1: -1.0}


@pytest.mark.parametrize("kwargs, match", [
    ({"n_patients": 0}, "n_patients"),
    ({"n_patients": 2.5}, "n_patients"),
    ({"n_therapists": 0}, "n_therapists"),
    ({"n_patients": 5, "n_therapists": 6}, "cannot exceed"),
    ({"n_arms": 6}, "n_arms"),
    ({"ar": 1.0}, "ar"),
    ({"ar": -1.2}, "ar"),
    ({"missed": 1.0}, "missed"),
    ({"dropout": -0.1}, "dropout"),
    ({"slope_sd": -1}, "slope_sd"),
    ({"within_effect": ()}, "within_effect"),
    ({"within_effect": "abc"}, "within_effect"),
    ({"max_sessions": 3, "within_effect": (-2, -1, 0)}, "lags"),
    ({"moderation": {"age": 1.0}}, "unknown moderator"),
    ({"moderation": {"arm": {"none": 1.0}}}, "reference arm"),
    ({"moderation": {"arm": {"nonsense": 1.0}}}, "unknown arm"),
    ({"therapist_share": 0.5, "patient_share": 0.6}, "share"),
])
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(PylmeError, match=match):
        simulate(**kwargs)


def test_keyword_only() -> None:
    with pytest.raises(TypeError):
        simulate(100)  # type: ignore[misc]


def test_example_matches_regeneration(tmp_path) -> None:
    ex = load_example()
    assert list(ex.columns) == COLUMNS
    assert list(ex["arm"].cat.categories) == list(ARMS)
    assert ex["patient"].map(type).eq(str).all()
    assert str(ex["session"].dtype) == "int64"
    path = write_example(tmp_path / "ex.csv")
    assert path.stat().st_size < 3_000_000
    from pylme_alliance.simulation.example import _read_trial_csv

    regenerated = _read_trial_csv(path)
    pd.testing.assert_frame_equal(ex, regenerated, check_exact=False, atol=1e-9, rtol=0)
    direct = simulate(seed=EXAMPLE_SEED, moderation=EXAMPLE_MODERATION).data
    pd.testing.assert_frame_equal(ex, direct, check_exact=False, atol=1e-9, rtol=0)


# ---------------------------------------------------------------------------
# feedback, AR(1) alliance, fixed designs and the named estimands (issue 9, item 10)


def _fe_slope(d: pd.DataFrame, y: str, x: str) -> float:
    """Within-patient (demeaned) OLS slope of y on x."""
    dm = d[[y, x]] - d.groupby("patient")[[y, x]].transform("mean")
    return float((dm[x] * dm[y]).sum() / (dm[x] ** 2).sum())


def _next_alliance(d: pd.DataFrame) -> pd.DataFrame:
    nxt = d[["patient", "session", "alliance"]].copy()
    nxt["session"] -= 1
    return d.merge(nxt.rename(columns={"alliance": "alliance_next"}), on=["patient", "session"]).dropna()


def test_feedback_moves_next_alliance() -> None:
    """The outcome at t shapes the alliance at t+1 by about ``feedback`` per outcome point."""
    slopes = {}
    for feedback in (0.0, -0.015):
        sim = simulate(n_patients=3000, n_therapists=150, sessions=20, missed=0, dropout=0, seed=4,
                       feedback=feedback, process="dynamic", slope_sd=0.0, improvement=0.0)
        assert sim.truth["feedback"] == feedback and sim.truth["process"] == "dynamic"
        slopes[feedback] = _fe_slope(_next_alliance(sim.data), "alliance_next", "outcome")
    # no improvement curve: the within-patient outcome variation is the symptom deviation the
    # feedback acts on. Within-patient OLS carries the same O(1/T) bias in both runs.
    assert -0.018 < slopes[-0.015] - slopes[0.0] < -0.012, slopes
    assert abs(slopes[0.0]) < 0.007, slopes


def test_feedback_selects_dynamic_and_static_refuses_it() -> None:
    assert simulate(n_patients=40, n_therapists=4, seed=1, feedback=-0.01).truth["process"] == "dynamic"
    assert simulate(n_patients=40, n_therapists=4, seed=1).truth["process"] == "static"
    with pytest.raises(PylmeError, match="dynamic"):
        simulate(n_patients=40, n_therapists=4, feedback=-0.01, process="static")
    with pytest.raises(PylmeError, match="process"):
        simulate(process="later")
    with pytest.raises(PylmeError, match="alliance_ar"):
        simulate(alliance_ar=1.0)
    with pytest.raises(PylmeError, match="feedback"):
        simulate(feedback="strong")
    with pytest.raises(PylmeError, match="sessions"):
        simulate(sessions=0)


@pytest.mark.parametrize("rho", [0.0, 0.3])
def test_alliance_ar(rho: float) -> None:
    sim = simulate(n_patients=3000, n_therapists=150, sessions=20, missed=0, dropout=0, seed=5,
                   alliance_ar=rho, alliance_trend=0.0)
    d = sim.data.copy()
    nxt = _next_alliance(d)
    r = _fe_slope(nxt, "alliance_next", "alliance")
    # the within-patient lag-1 autocorrelation has Nickell bias -(1 + rho)/(T - 1)
    assert abs(r - (rho - (1 + rho) / 19)) < 0.04, r
    assert sim.truth["alliance_ar"] == rho


def test_fixed_sessions_design() -> None:
    sim = simulate(n_patients=200, n_therapists=20, sessions=8, missed=0, dropout=0, seed=2)
    n = sim.data.groupby("patient")["session"].agg(["size", "max"])
    assert (n["size"] == 8).all() and (n["max"] == 8).all()
    assert sim.params["max_sessions"] == 8 and sim.truth["dropout_rate"] == 0


def test_named_estimands() -> None:
    t = simulate(n_patients=100, n_therapists=10, seed=1).truth
    assert t["within_direct"] == {1: -2.0, 2: -1.0, 3: 0.0}
    assert t["lag2_direct"] == -1.0
    assert t["within_total"] == {1: -2.0, 2: -1.0, 3: 0.0}   # no persistence, no feedback
    assert t["share_beneficial"] == pytest.approx(0.97725, abs=1e-5)   # Phi(2 / 1)
    assert t["slope_sd"] == 1.0
    assert simulate(n_patients=50, n_therapists=5, seed=1, slope_sd=0).truth["share_beneficial"] == 1.0
    assert simulate(n_patients=50, n_therapists=5, seed=1, within_effect=(1.0,),
                    slope_sd=2).truth["share_beneficial"] == pytest.approx(0.30854, abs=1e-5)
    assert simulate(n_patients=50, n_therapists=5, seed=1, within_effect=(-2.0,)).truth["lag2_direct"] == 0.0
    # a persisting alliance deviation carries the lag-1 effect into lag 2: total = b2 + rho*b1
    t = simulate(n_patients=50, n_therapists=5, seed=1, alliance_ar=0.3).truth
    assert t["within_total"][2] == pytest.approx(-1.0 + 0.3 * -2.0)
    assert t["lag2_direct"] == -1.0


def _patient_ols(y: pd.Series, x: pd.Series) -> float:
    x, y = x.loc[y.index], y
    return float(np.polyfit(x.to_numpy(), y.to_numpy(), 1)[0])


def test_between_level_truth_matches_patient_regression() -> None:
    """truth['between_level'] is what a between-patient regression of the outcome level on the
    alliance level recovers, including the reverse association the feedback adds."""
    est: dict[str, list[float]] = {"mean": [], "early": []}
    tru: dict[str, list[float]] = {"mean": [], "early": []}
    for seed in range(4):
        sim = simulate(n_patients=5000, n_therapists=250, sessions=8, missed=0, dropout=0, seed=seed,
                       feedback=-0.015)
        d = sim.data.assign(rank=sim.data.groupby("patient").cumcount())
        by = d.groupby("patient")
        est["mean"].append(_patient_ols(by["outcome"].mean(), by["alliance"].mean()))
        early = d[d["rank"] < 3].groupby("patient")["alliance"].mean()
        est["early"].append(_patient_ols(d[d["rank"] >= 3].groupby("patient")["outcome"].mean(), early))
        for k in est:
            tru[k].append(sim.truth["between_level"][k])
    for k in est:
        mc = np.std(est[k], ddof=1) / 2 + 0.05
        assert abs(np.mean(est[k]) - np.mean(tru[k])) < 3 * mc, (k, est[k], tru[k])
    # the feedback's reverse association is in the truth (person mean: about -0.7 beyond -6)
    assert np.mean(tru["mean"]) < sim.truth["between"] - 0.4
    # the structural coefficient alone would be rejected by the same regression
    assert abs(np.mean(est["mean"]) - sim.truth["between"]) > 3 * (np.std(est["mean"], ddof=1) / 2)
