"""pa.reciprocal() (issue 19): both directions in RI-CLPM / DPM / the MLM pair, impulse
responses, safety. The generator is tests/reciprocal_data.py (independent of simulate())."""
from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

import pylme_alliance as pa
from pylme_alliance import bridge
from pylme_alliance.analyses import impulse
from pylme_alliance.analyses.duration import lead_model
from pylme_alliance.analyses.reciprocal import choose_waves, session_ratings, wide_ratings

import reciprocal_data as rd

TRUTH = rd.Dynamics()
DIRECTIONS = ["alliance->outcome", "outcome->alliance", "alliance->alliance", "outcome->outcome"]


def prepared(data: pd.DataFrame, **names) -> pa.AlliancePanel:
    roles = {"patient": "patient", "session": "session", "alliance": "alliance", "outcome": "outcome", **names}
    return pa.prepare(data, **roles, leads=(1,))


@pytest.fixture(scope="module")
def riclpm_fits():
    """Three trials of 400 patients: RI-CLPM and DPM fits."""
    fits = []
    for seed in (11, 12, 13):
        panel = prepared(rd.generate(400, seed=seed))
        fits.append((pa.reciprocal(panel), pa.reciprocal(panel, method="dpm")))
    return fits


# --------------------------------------------------------------- impulse (numpy only)
def test_impulse_responses_are_powers_of_the_transition_matrix():
    paths = np.array([TRUTH.phi_a, TRUTH.c_ya, TRUTH.phi_y, TRUTH.c_ay])
    table = impulse.impulse_table(paths, np.zeros((4, 4)), leads=3)
    for lead in (1, 2, 3):
        for source in ("alliance", "outcome"):
            want_a, want_y = TRUTH.impulse(lead, source)
            rows = table[(table["source"] == source) & (table["lead"] == lead)].set_index("response")
            assert rows.loc["alliance", "estimate"] == pytest.approx(want_a, rel=1e-12)
            assert rows.loc["outcome", "estimate"] == pytest.approx(want_y, rel=1e-12)
    # lead 2 is NOT the lead-1 path again: it carries through both series
    assert TRUTH.impulse(2)[1] == pytest.approx(TRUTH.c_ay * (TRUTH.phi_a + TRUTH.phi_y))


def test_impulse_delta_method_matches_parametric_draws():
    paths = np.array([0.3, -0.004, 0.4, -3.2])
    sd = np.array([0.03, 0.0012, 0.03, 0.5])
    corr = np.full((4, 4), 0.1) + 0.9 * np.eye(4)
    vcov = corr * np.outer(sd, sd)
    table = impulse.impulse_table(paths, vcov, leads=3)
    draws = np.random.default_rng(3).multivariate_normal(paths, vcov, size=20000)
    for lead in (1, 2, 3):
        sims = np.array([impulse.responses(d, lead)[0, lead - 1, 1] for d in draws])
        row = table[(table["source"] == "alliance") & (table["lead"] == lead) & (table["response"] == "outcome")]
        assert float(row["std_error"].iloc[0]) == pytest.approx(sims.std(), rel=0.08)


# ------------------------------------------------------------------------ recovery
def test_riclpm_recovers_both_paths_and_the_impulse_responses(riclpm_fits):
    """Generous tolerance, but a sign flip or a swapped path fails: the two cross-lags
    differ by three orders of magnitude and both are negative."""
    est = pd.DataFrame([f.effects.set_index("direction")["estimate"] for f, _ in riclpm_fits])
    assert est["alliance->outcome"].mean() == pytest.approx(TRUTH.c_ay, rel=0.15)
    assert est["outcome->alliance"].mean() == pytest.approx(TRUTH.c_ya, rel=0.35)
    assert est["alliance->alliance"].mean() == pytest.approx(TRUTH.phi_a, abs=0.06)
    assert est["outcome->outcome"].mean() == pytest.approx(TRUTH.phi_y, abs=0.06)
    lead3 = [f.impulse.query("source == 'alliance' and lead == 3 and response == 'outcome'")["estimate"].iloc[0]
             for f, _ in riclpm_fits]
    assert np.mean(lead3) == pytest.approx(TRUTH.impulse(3)[1], rel=0.25)
    for fit, _ in riclpm_fits:
        row = fit.path("alliance->outcome")
        assert row["conf_low"] < row["estimate"] < row["conf_high"] < 0
        assert fit.converged and fit.admissible and fit.problems == []
        assert fit.patient_level["correlation"] < 0  # the generator's levels correlate -0.3
        assert fit.patient_level["within_correlation"] == pytest.approx(TRUTH.r_innovation, abs=0.12)


def test_dpm_recovers_both_paths(riclpm_fits):
    est = pd.DataFrame([d.effects.set_index("direction")["estimate"] for _, d in riclpm_fits])
    assert est["alliance->outcome"].mean() == pytest.approx(TRUTH.c_ay, rel=0.2)
    assert est["outcome->alliance"].mean() == pytest.approx(TRUTH.c_ya, rel=0.4)
    assert all(d.method == "dpm" and "Fa =~" in d.syntax for _, d in riclpm_fits)


def test_effects_table_columns_and_std_estimate(riclpm_fits):
    fit = riclpm_fits[0][0]
    assert list(fit.effects["direction"]) == DIRECTIONS
    assert list(fit.effects.columns) == ["direction", "estimate", "std_estimate", "std_error", "conf_low",
                                         "conf_high", "p_value", "estimand"]
    row = fit.path("alliance->outcome")
    sd = fit.within_sd
    assert row["std_estimate"] == pytest.approx(row["estimate"] * sd["alliance"] / sd["outcome"])
    assert fit.path("outcome->outcome")["std_estimate"] == fit.path("outcome->outcome")["estimate"]
    assert set(fit.impulse["lead"]) == {1, 2, 3}
    lead1 = fit.impulse.query("source == 'alliance' and lead == 1 and response == 'outcome'").iloc[0]
    assert lead1["estimate"] == pytest.approx(row["estimate"])
    assert lead1["std_error"] == pytest.approx(row["std_error"], rel=1e-5)


def test_detach_is_picklable_and_keeps_the_tables(riclpm_fits):
    fit = riclpm_fits[0][0]
    assert fit.lavaan is not None
    detached = pickle.loads(pickle.dumps(fit.detach()))
    pd.testing.assert_frame_equal(detached.effects, fit.effects)
    with pytest.raises(pa.PylmeError, match="detached"):
        detached.lavaan
    assert "alliance->outcome" in repr(detached) and "Lagged paths" in detached.summary()
    assert "<table" in detached._repr_html_()


# ------------------------------------------------------------------ waves and data
def test_waves_none_picks_w_where_half_the_patients_remain_and_says_so():
    data = rd.generate(120, seed=5)
    ratings = session_ratings(prepared(data))
    W, note = choose_waves(ratings, None, max_waves=10)
    share = data.groupby("session")["patient"].nunique() / data["patient"].nunique()
    assert share[W] >= 0.5 and (W == 10 or share.get(W + 1, 0) < 0.5)
    assert f"W = {W}" in note
    W4, _ = choose_waves(ratings, None, max_waves=4)
    assert W4 == 4
    wide, outside = wide_ratings(ratings, W)
    assert list(wide.columns) == [f"a{w}" for w in range(1, W + 1)] + [f"y{w}" for w in range(1, W + 1)]
    assert outside["sessions"] == int((data["session"] > W).sum())


def test_missing_alliance_sessions_are_used_by_fiml():
    data = rd.generate(60, seed=6)
    panel = prepared(data)
    ratings = session_ratings(panel)
    assert ratings["alliance"].isna().sum() == data["alliance"].isna().sum() > 0
    assert len(ratings) == len(data)


def test_bad_waves_and_methods_are_refused():
    panel = prepared(rd.generate(60, seed=7))
    with pytest.raises(pa.PylmeError, match="between 3 and 40"):
        pa.reciprocal(panel, waves=2)
    with pytest.raises(pa.PylmeError, match=r"wave\(s\) \[.*\] .*fewer than 3"):
        pa.reciprocal(panel, waves=30)
    with pytest.raises(pa.PylmeError, match="method must be"):
        pa.reciprocal(panel, method="clpm")
    with pytest.raises(pa.PylmeError, match="riclpm"):
        pa.reciprocal(panel, method="dpm", slopes=True)


# ------------------------------------------------------------------------- safety
def test_hostile_column_names_never_reach_lavaan_and_the_caller_frame_is_unchanged():
    data = rd.generate(150, seed=8)
    hostile = {"patient": 'y1 ~~ 0*y1"); system("touch /tmp/pwned', "session": "a1",
               "alliance": "RIa =~ 1*a1\nwa2 ~ 9*wa1", "outcome": "`y1`; quit('no')"}
    renamed = data.rename(columns=hostile)
    before = renamed.copy()
    fit = pa.reciprocal(prepared(renamed, **hostile), waves=6)
    pd.testing.assert_frame_equal(renamed, before)
    plain = pa.reciprocal(prepared(data), waves=6)
    # "a1" (the session column) is also one of the fixed names; the rest must be absent
    for role in ("patient", "alliance", "outcome"):
        assert hostile[role] not in fit.syntax
    np.testing.assert_allclose(fit.paths, plain.paths, rtol=1e-10)
    assert fit.syntax == plain.syntax


def test_r_errors_become_rerror_with_r_message():
    with pytest.raises(pa.RError, match="exactly the columns a1..aW"):
        bridge.call("pylme_reciprocal_fit", pd.DataFrame({"a1": [1.0, 2.0], "b": [1.0, 3.0]}), 3)
    with pytest.raises(pa.RError, match="between 3 and 40"):
        bridge.call("pylme_reciprocal_riclpm_syntax", 1000)


# ------------------------------------------------------------------ mlm and example
def test_mlm_pair_is_labelled_with_its_bias():
    panel = prepared(rd.generate(200, seed=9))
    fit = pa.reciprocal(panel, method="mlm")
    assert list(fit.effects["direction"]) == DIRECTIONS
    assert fit.path("alliance->outcome")["estimate"] < 0
    assert "decomposed MLM" in fit.path("alliance->outcome")["estimand"]
    assert any("measured bias" in note for note in fit.notes)
    assert len(fit.mlm_fits) == 2 and fit.lavaan is None


def test_bundled_example_gives_both_paths_with_intervals():
    df = pa.load_example()
    before = df.copy()
    panel = pa.prepare(df, patient="patient", session="session", alliance="alliance", outcome="outcome",
                       therapist="therapist", time="day", within="person_mean",
                       leads=(1, 2, 3), moderators=["severity", "arm"], outcome_better="lower")
    fit = pa.reciprocal(panel)
    pd.testing.assert_frame_equal(df, before)
    for direction in ("alliance->outcome", "outcome->alliance"):
        row = fit.path(direction)
        assert np.isfinite([row["estimate"], row["conf_low"], row["conf_high"], row["p_value"]]).all()
        assert row["conf_low"] < row["estimate"] < row["conf_high"]
    assert fit.converged
    assert any("therapist level is not modelled" in note for note in fit.notes)
    assert any(note.startswith("waves=None") for note in fit.notes)


# ----------------------------------------------------------------------- duration
def test_duration_total_is_the_impulse_response_and_lead_regression_keeps_its_label():
    panel = pa.prepare(rd.generate(200, seed=14), patient="patient", session="session", alliance="alliance",
                       outcome="outcome", leads=(1, 2, 3))
    total = pa.duration(panel, leads=(1, 2, 3))
    fit = pa.reciprocal(panel)
    ir = fit.impulse.query("source == 'alliance' and response == 'outcome'")
    np.testing.assert_allclose(total["estimate"], ir["estimate"], rtol=1e-10)
    np.testing.assert_allclose(total["conf_low"], ir["conf_low"], rtol=1e-10)
    assert list(total["lead"]) == [1, 2, 3] and set(total["effect"]) == {"total"}
    assert total["estimand"].str.contains("impulse response").all()
    assert any(note.startswith("waves=None") for note in total.attrs["notes"])
    regression = pa.duration(panel, leads=(2,), effect="lead_regression", therapist="none")
    assert set(regression["effect"]) == {"lead_regression"}
    assert regression["estimand"].str.contains("71% short at lead 3").all()
    same = lead_model(2, therapist="none").fit(panel).fixef()["alliance_within"]
    assert regression.query("term == 'alliance_within'")["estimate"].iloc[0] == pytest.approx(same)
    with pytest.raises(pa.PylmeError, match="lead_regression"):
        pa.duration(panel, leads=(1,), effect="indirect")


# ------------------------------------------------------------------ random slopes
def test_slopes_refit_fixes_a_negative_slope_variance_at_zero_and_says_so():
    # no true alliance slope variance to speak of (SD 0.01 a session): its estimate comes out negative
    panel = prepared(rd.generate(400, seed=1))
    with pytest.warns(pa.RWarning, match="negative"):
        fit = pa.reciprocal(panel, slopes=True, waves=10)
    assert any("alliance slope variance negative: refitted with it fixed at 0" in p for p in fit.problems)
    assert "Sa ~~ 0*Sa" in fit.syntax and "RIa ~~ 0*Sa" in fit.syntax and "Sy ~~ Sy" in fit.syntax
    assert fit.admissible and fit.converged
    assert fit.path("alliance->outcome")["conf_low"] < TRUTH.c_ay < fit.path("alliance->outcome")["conf_high"]


def test_slope_syntax_frees_what_is_not_fixed():
    text, _ = bridge.call("pylme_reciprocal_riclpm_syntax", 4, True, ["Sy"])
    lines = text.splitlines()
    assert "Sy ~~ 0*Sy" in lines and "Sa ~~ Sa" in lines and "Sa ~~ 0*Sy" in lines and "RIa ~~ Sa" in lines
    plain, _ = bridge.call("pylme_reciprocal_riclpm_syntax", 4)
    assert "Sa" not in plain


# ---------------------------------------------------------------------------- CLI
def test_cli_reciprocal_writes_effects_impulse_and_summary(tmp_path, capsys):
    from pylme_alliance.cli import main

    data = rd.generate(150, seed=15).rename(columns={"outcome": "OQ total"})
    path = tmp_path / "trial.csv"
    data.to_csv(path, index=False)
    args = ["reciprocal", str(path), "--patient", "patient", "--session", "session", "--alliance", "alliance",
            "--outcome", "OQ total", "--waves", "6", "--out", str(tmp_path / "out")]
    assert main(args) == 0
    effects = pd.read_csv(tmp_path / "out" / "effects.csv")
    assert list(effects["direction"]) == DIRECTIONS
    assert len(pd.read_csv(tmp_path / "out" / "impulse.csv")) == 12
    assert "waves=6" in (tmp_path / "out" / "summary.txt").read_text()
    assert "Wrote effects.csv" in capsys.readouterr().out
    assert main(args) == 1  # the files exist: refused before fitting, without --overwrite
    assert "would overwrite" in capsys.readouterr().err
