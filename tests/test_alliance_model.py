"""AllianceModel: formulas per engine, refused combinations, odd column names, recovery."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import pylme_alliance as pa
from pylme_alliance import bridge
from pylme_alliance.errors import EngineCannotExpress, PylmeError


@pytest.fixture(scope="module")
def sim():
    return pa.simulate(n_patients=547, seed=11)


@pytest.fixture(scope="module")
def panel(sim):
    return pa.prepare(sim.data, patient="patient", session="session", alliance="alliance",
                      outcome="outcome", therapist="therapist", time="day", leads=(1, 2, 3),
                      moderators=["severity", "arm"])


@pytest.fixture(scope="module")
def small_panel():
    data = pa.simulate(n_patients=60, seed=5).data
    return pa.prepare(data, patient="patient", session="session", alliance="alliance",
                      outcome="outcome", therapist="therapist", time="day", leads=(1, 2))


def quiet(func, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return func(*args, **kwargs)


FIXED = ("outcome_lead1 ~ outcome_within + outcome_between + outcome_before_within + outcome_before_between + session + session_between"
         " + alliance_within + alliance_between")


@pytest.mark.parametrize("engine, therapist, residual, expected", [
    ("lme4", "nested", "iid", FIXED + " + (1 | therapist) + (1 + alliance_within | therapist:patient)"),
    ("lme4", "crossed", "iid", FIXED + " + (1 | therapist) + (1 + alliance_within | patient)"),
    ("lme4", "none", "iid", FIXED + " + (1 + alliance_within | patient)"),
    ("glmmtmb", "nested", "ar1", FIXED + " + (1 | therapist) + (1 + alliance_within | therapist:patient)"
     " + ar1(session_f + 0 | therapist:patient), dispformula = ~0"),
    ("glmmtmb", "crossed", "ar1", FIXED + " + (1 | therapist) + (1 + alliance_within | patient)"
     " + ar1(session_f + 0 | patient), dispformula = ~0"),
    ("glmmtmb", "none", "iid", FIXED + " + (1 + alliance_within | patient)"),
    ("nlme", "nested", "iid", f"lme(fixed = {FIXED}, random = list(therapist = ~ 1, patient = ~ 1 + alliance_within))"),
    ("nlme", "nested", "ar1", f"lme(fixed = {FIXED}, random = list(therapist = ~ 1, patient = ~ 1 + alliance_within), "
     "correlation = AR1('~ session | therapist/patient'))"),
    ("nlme", "none", "car1", f"lme(fixed = {FIXED}, random = ~ 1 + alliance_within | patient, "
     "correlation = CAR1('~ time_days | patient'))"),
    ("statsmodels", "none", "iid", FIXED + ", groups = patient, re_formula = '~alliance_within'"),
    ("statsmodels", "nested", "iid", FIXED + ", groups = therapist, re_formula = '~1', vc_formula = "
     "{'patient': '0 + C(patient)', 'patient_slope': '0 + C(patient):alliance_within'}"),
])
def test_formula_per_engine(small_panel, engine, therapist, residual, expected):
    model = pa.AllianceModel(engine=engine, therapist=therapist, residual=residual)
    assert model.formula(small_panel) == expected


def test_formula_options(panel):
    text = pa.AllianceModel(lead=2, random_slope=False, control_outcome=False, session_trend=False,
                            moderators=("severity",)).formula(panel)
    assert text == ("outcome_lead2 ~ alliance_within + alliance_between + severity_c + alliance_within:severity_c"
                    " + alliance_between:severity_c + (1 | therapist) + (1 | therapist:patient)")


RE = " + (1 | therapist) + (1 + alliance_within | therapist:patient)"


@pytest.mark.parametrize("options, fixed", [
    ({"control_outcome": "raw"}, "outcome_lead1 ~ outcome + outcome_before + session + alliance_within + alliance_between"),
    ({"control_outcome": "raw", "prior_outcome": False},
     "outcome_lead1 ~ outcome + session + alliance_within + alliance_between"),
    ({"prior_outcome": False},
     "outcome_lead1 ~ outcome_within + outcome_between + session + session_between + alliance_within + alliance_between"),
    ({"session_trend": False},
     "outcome_lead1 ~ outcome_within + outcome_between + outcome_before_within + outcome_before_between + alliance_within + alliance_between"),
    ({"control_outcome": False}, "outcome_lead1 ~ session + alliance_within + alliance_between"),
    # direct = total at lead 1: the most recent outcome before t + 1 is the outcome at t
    ({"effect": "direct"}, FIXED),
    ({"lead": 2, "effect": "direct", "prior_outcome": True}, "outcome_lead2 ~ outcome_within_lead1 + outcome_between"
     " + outcome_before_within + outcome_before_between + session + session_between + alliance_within + alliance_between + alliance_within_lead1"),
    ({"lead": 2, "effect": "direct", "control_outcome": "raw", "prior_outcome": True},
     "outcome_lead2 ~ outcome_lead1 + outcome_before + session + alliance_within + alliance_between"
     " + alliance_within_lead1"),
    ({"lead": 2, "prior_outcome": True}, "outcome_lead2 ~ outcome_within + outcome_between + outcome_before_within + outcome_before_between + session + session_between"
                  " + alliance_within + alliance_between"),
    ({"lead": 0, "control_outcome": False}, "outcome_lead0 ~ session + alliance_within + alliance_between"),
])
def test_outcome_control_and_effect_formulas(small_panel, options, fixed):
    assert pa.AllianceModel(**options).formula(small_panel) == fixed + RE


@pytest.mark.parametrize("engine, expected", [
    ("nlme", "lme(fixed = {f}, random = list(therapist = ~ 1, patient = ~ 1 + alliance_within))"),
    ("glmmtmb", "{f} + (1 | therapist) + (1 + alliance_within | therapist:patient)"),
    ("statsmodels", "{f}, groups = therapist, re_formula = '~1', vc_formula = "
     "{{'patient': '0 + C(patient)', 'patient_slope': '0 + C(patient):alliance_within'}}"),
])
def test_direct_formula_every_engine(small_panel, engine, expected):
    fixed = ("outcome_lead2 ~ outcome_within_lead1 + outcome_between + outcome_before_within + outcome_before_between + session"
             " + session_between + alliance_within + alliance_between + alliance_within_lead1")
    model = pa.AllianceModel(lead=2, effect="direct", engine=engine, prior_outcome=True)
    assert model.formula(small_panel) == expected.format(f=fixed)


def _before(data):
    by = dict(zip(zip(data["patient"], data["session"]), data["outcome"]))
    return np.array([by.get((p, s - 1), np.nan) for p, s in zip(data["patient"], data["session"])], dtype=float)


def test_direct_model_frame_decomposes_the_prior_outcome(small_panel):
    frame = pa.AllianceModel(lead=2, effect="direct", prior_outcome=True).model_frame(small_panel)
    data = small_panel.data
    kept = (data[["outcome_lead2", "outcome_lead1", "alliance_within_lead1"]].notna().all(axis=1)
            & np.isfinite(_before(data)))
    # the patient's mean over the rows the model fits (the fixed-effects estimator's rows)
    person_mean = data["outcome"].where(kept).groupby(data["patient"]).transform("mean").to_numpy()
    want = np.where(kept, data["outcome_lead1"] - person_mean, np.nan)
    np.testing.assert_allclose(frame["outcome_within_lead1"], want)
    # the outcome before is centred on its own patient mean (a Mundlak term of its own)
    before = pd.Series(_before(data), index=data.index)
    before_mean = before.where(kept).groupby(data["patient"]).transform("mean").to_numpy()
    np.testing.assert_allclose(frame["outcome_before_within"], np.where(kept, before - before_mean, np.nan))
    np.testing.assert_array_equal(frame["alliance_within_lead1"], data["alliance_within_lead1"])
    np.testing.assert_array_equal(frame["outcome_lead2"], data["outcome_lead2"])
    concurrent = pa.AllianceModel(lead=0, control_outcome=False).model_frame(small_panel)
    np.testing.assert_array_equal(concurrent["outcome_lead0"], data["outcome"])


def test_mundlak_terms_are_means_over_the_fitted_rows(small_panel):
    """The decomposed control equals the fixed-effects estimator's own demeaning: the
    deviations average zero within each patient over the rows the model fits, and the
    outcome before is the outcome at session t - 1 by number (NaN after a missed session)."""
    frame = pa.AllianceModel().model_frame(small_panel).dropna(subset=["outcome_within"])
    assert len(frame) > 0
    means = frame.groupby("patient", observed=True)[["outcome_within", "alliance_within"]].mean()
    np.testing.assert_allclose(means.to_numpy(), 0.0, atol=1e-9)
    # the alliance is split over the same rows: within + between is the alliance itself
    # (up to the grand mean), and the between part is constant within patient
    data = small_panel.data.loc[frame.index]
    total = frame["alliance_within"] + frame["alliance_between"]
    shift = data["alliance"] - total
    np.testing.assert_allclose(shift, shift.iloc[0], atol=1e-9)
    assert frame.groupby("patient", observed=True)["alliance_between"].nunique().max() == 1
    data = small_panel.data
    full = pa.AllianceModel().model_frame(small_panel)
    np.testing.assert_array_equal(np.isnan(full["outcome_before"]), np.isnan(_before(data)))
    if "session_between" in full:
        per = frame.groupby("patient", observed=True)["session"].mean()
        np.testing.assert_allclose(frame.groupby("patient", observed=True)["session_between"].first(),
                                   per - per.mean())


def test_prior_outcome_values():
    assert pa.AllianceModel().prior_outcome == "auto"
    for bad in ("yes", 1, None):
        with pytest.raises(PylmeError, match="prior_outcome"):
            pa.AllianceModel(prior_outcome=bad)


def test_prior_outcome_auto_is_decided_by_the_rows_it_would_leave():
    from pylme_alliance.models.model import PriorOutcomeWarning

    short = pa.simulate(n_patients=40, n_therapists=8, sessions=3, max_sessions=3, within_effect=(-2.0, -1.0),
                        seed=6).data
    panel = pa.prepare(short, patient="patient", session="session", alliance="alliance",
                       outcome="outcome", therapist="therapist")
    model = pa.AllianceModel(random_slope=False)
    assert model.resolve(panel).prior_outcome is False  # one row per patient would be left
    assert "outcome_before" not in model.formula(panel)
    with pytest.warns(PriorOutcomeWarning, match="fewer than 3"):
        fit = model.fit(panel)
    assert fit.model.prior_outcome is False
    with warnings.catch_warnings():
        warnings.simplefilter("error", PriorOutcomeWarning)
        quiet = pa.AllianceModel(random_slope=False, prior_outcome=False, therapist="nested")
        assert quiet.resolve(panel) is quiet  # nothing left to decide


def test_control_outcome_values():
    assert pa.AllianceModel().control_outcome == "decomposed"
    with pytest.warns(FutureWarning, match="'raw'"):
        assert pa.AllianceModel(control_outcome=True).control_outcome == "decomposed"
    for bad in ("mundlak", 0, None, "none"):
        with pytest.raises(PylmeError, match="control_outcome"):
            pa.AllianceModel(control_outcome=bad)
    with pytest.raises(PylmeError, match="effect"):
        pa.AllianceModel(effect="indirect")
    with pytest.raises(PylmeError, match="control_outcome=False"):
        pa.AllianceModel(lead=0)
    with pytest.raises(PylmeError, match="non-negative"):
        pa.AllianceModel(lead=-1)


def test_nickell_warning_is_on_the_fit_that_uses_the_decomposed_control(small_panel):
    from pylme_alliance.models.model import NickellWarning

    with pytest.warns(NickellWarning, match=r"outcome_within = .*-\(1\+rho\)/\(T-1\)") as record:
        fit = pa.AllianceModel(therapist="none").fit(small_panel)
    t = float(fit.data.groupby("patient", observed=True).size().median())
    message = next(str(w.message) for w in record if w.category is NickellWarning)
    assert f"T = {t:g}" in message
    assert message in fit.warnings
    # the number follows from the fitted slope: plim b = rho - (1+rho)/(T-1)
    b = fit.fixef()["outcome_within"]
    rho = (b * (t - 1) + 1) / (t - 2)
    assert f"about {-(1 + rho) / (t - 1):.2f}" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error", NickellWarning)
        raw = quiet(pa.AllianceModel(therapist="none", control_outcome="raw").fit, small_panel)
    assert not any("Nickell" in w for w in raw.warnings)


@pytest.mark.parametrize("engine, therapist, residual, names", [
    ("lme4", "nested", "ar1", ["nlme", "glmmtmb"]),
    ("lme4", "none", "car1", ["nlme"]),
    ("statsmodels", "none", "ar1", ["nlme", "glmmtmb"]),
    ("nlme", "crossed", "iid", ["glmmtmb"]),
    ("glmmtmb", "none", "car1", ["nlme"]),
])
def test_refused_combinations_name_the_engine_that_can(engine, therapist, residual, names):
    with pytest.raises(EngineCannotExpress) as err:
        pa.AllianceModel(engine=engine, therapist=therapist, residual=residual)
    for name in names:
        assert name in str(err.value)


def test_panel_dependent_refusals(small_panel):
    with pytest.raises(PylmeError, match="outcome_lead3"):
        pa.AllianceModel(lead=3).fit(small_panel)
    with pytest.raises(PylmeError, match="moderators="):
        pa.AllianceModel(moderators=("severity",)).fit(small_panel)
    data = pa.simulate(n_patients=30, n_therapists=6, seed=2).data
    no_therapist = pa.prepare(data, patient="patient", session="session", alliance="alliance", outcome="outcome")
    with pytest.raises(PylmeError, match="therapist='none'"):
        pa.AllianceModel(therapist="nested").fit(no_therapist)
    with pytest.raises(PylmeError, match="time="):
        pa.AllianceModel(engine="nlme", residual="car1", therapist="none").fit(no_therapist)
    # a patient seen by two therapists cannot be nested
    moved = data.copy()
    first = moved["patient"] == moved["patient"].value_counts().index[0]
    moved.loc[first & (moved["session"] > 2), "therapist"] = "T_other"
    crossed = pa.prepare(moved, patient="patient", session="session", alliance="alliance",
                         outcome="outcome", therapist="therapist")
    with pytest.raises(PylmeError, match="crossed"):
        pa.AllianceModel(therapist="nested").fit(crossed)
    assert quiet(pa.AllianceModel(therapist="crossed").fit, crossed).nobs > 0


def test_odd_column_names_fit_identically(small_panel):
    data = pa.simulate(n_patients=60, seed=5).data
    odd = data.rename(columns={"patient": "pat `id`", "session": "session no.", "alliance": "WAI \"total\"",
                               "outcome": "O'Q-45", "therapist": "ther apist", "severity": "sev`erity"})
    panel_odd = pa.prepare(odd, patient="pat `id`", session="session no.", alliance="WAI \"total\"",
                           outcome="O'Q-45", therapist="ther apist", leads=(1,), moderators=["sev`erity"])
    panel_plain = pa.prepare(data, patient="patient", session="session", alliance="alliance",
                             outcome="outcome", therapist="therapist", leads=(1,), moderators=["severity"])
    fit_odd = quiet(pa.AllianceModel(moderators=("sev`erity",)).fit, panel_odd)
    fit_plain = quiet(pa.AllianceModel(moderators=("severity",)).fit, panel_plain)
    np.testing.assert_allclose(fit_odd.fixef().to_numpy(), fit_plain.fixef().to_numpy(), rtol=1e-10)
    # moderators are named by their original column names everywhere
    assert "alliance_within:sev`erity" in list(fit_odd.tidy()["term"])
    assert len(fit_odd.simple_slopes("sev`erity")) == 6


def test_recovery_lme4_and_nlme_ar1(sim, panel):
    truth = sim.truth
    lead1 = quiet(pa.AllianceModel(therapist="nested").fit, panel).alliance_effects().set_index("term")
    est, se = lead1.loc["alliance_within", ["estimate", "std_error"]]
    assert abs(est - truth["within"][1]) < 3 * se
    ar1 = quiet(pa.AllianceModel(engine="nlme", residual="ar1").fit, panel)
    est, se = ar1.alliance_effects().set_index("term").loc["alliance_within", ["estimate", "std_error"]]
    assert abs(est - truth["within"][1]) < 3 * se
    phi = ar1.tidy("ran_pars").query("term == 'phi'")["estimate"].iloc[0]
    assert -1 < phi < 1  # with the lagged outcome controlled the residual AR can be negative
    between = quiet(pa.AllianceModel(control_outcome=False).fit, panel).alliance_effects().set_index("term")
    est, se = between.loc["alliance_between", ["estimate", "std_error"]]
    assert abs(est - truth["between"]) < 3 * se
    table = quiet(pa.duration, panel, leads=(1, 2), effect="lead_regression")
    within = table[table["term"] == "alliance_within"].set_index("lead")["estimate"]
    # the data say the lead-2 effect is half the lead-1 effect (both negative)
    assert abs(within[2]) < abs(within[1])
    est2, se2 = table.query("term == 'alliance_within' and lead == 2")[["estimate", "std_error"]].iloc[0]
    assert abs(est2 - truth["within"][2]) < 3 * se2


def test_alliance_effects_and_heterogeneity(panel):
    fit = quiet(pa.AllianceModel().fit, panel)
    eff = fit.alliance_effects()
    assert list(eff["term"]) == ["alliance_within", "alliance_between"]
    for column in ("estimate", "std_error", "df", "p_value", "conf_low", "conf_high", "std_estimate"):
        assert eff[column].notna().all()
    # the fit's own slope (the default reads the model with the patients' session slopes and
    # prints numbers only when its calibrated test supports them: test_heterogeneity_calibrated.py)
    het = quiet(fit.heterogeneity, trend=False, method="mixture")
    assert het.slope_sd == pytest.approx(fit.tidy("ran_pars").query("term == 'sd__alliance_within'")["estimate"].iloc[0])
    assert 0 <= het.share <= 1  # no direction given: no "beneficial"
    stats_ = het.summary.set_index("statistic")
    if het.verdict == "supported":
        low, high = stats_.loc["95% prediction interval", ["conf_low", "conf_high"]]
        assert low < stats_.loc["mean within effect", "estimate"] < high
    else:  # no spread printed that the test does not support
        assert np.isnan(stats_.loc["random-slope SD", "estimate"])
    patients = het.patients
    assert len(patients) == fit.data["patient"].nunique()
    assert patients["slope"].is_monotonic_increasing
    # the conditional slope is the fixed effect plus the patient's BLUP
    re = fit.ranef()["therapist:patient"]["alliance_within"]
    blup = dict(zip(re.index.str.split(":").str[-1], re.to_numpy()))
    expected = fit.fixef()["alliance_within"] + patients["patient"].map(blup)
    np.testing.assert_allclose(patients["slope"], expected, rtol=1e-8)


def test_simple_slopes_match_emmeans(panel):
    fit = quiet(pa.AllianceModel(moderators=("severity",)).fit, panel)
    slopes = fit.simple_slopes("severity")
    within = slopes[slopes["term"] == "alliance_within"]
    info = panel.moderators["severity"]
    centred = [v - info.mean for v in within["at"]]
    em, _ = bridge.call("pylme_emtrends", fit.r, "alliance_within", "severity_c", centred)
    np.testing.assert_allclose(within["estimate"], em["estimate"], rtol=1e-6)
    np.testing.assert_allclose(within["std_error"], em["std_error"], rtol=1e-4)
    np.testing.assert_allclose(within["df"], em["df"], rtol=1e-3)
    jn = fit.johnson_neyman("severity")
    assert {"from", "to", "significant"} <= set(jn.columns)
    fit = quiet(pa.AllianceModel(moderators=("arm",)).fit, panel)
    arm = fit.simple_slopes("arm")
    arm_within = arm[arm["term"] == "alliance_within"]
    em_arm, _ = bridge.call("pylme_emtrends", fit.r, "alliance_within", "arm", None)
    np.testing.assert_allclose(arm_within["estimate"], em_arm["estimate"], rtol=1e-6)
    np.testing.assert_allclose(arm_within["std_error"], em_arm["std_error"], rtol=1e-4)
    with pytest.raises(PylmeError, match="categorical"):
        fit.johnson_neyman("arm")


def test_moderators_table(panel):
    table = quiet(pa.moderators, panel, ["severity", "arm"])
    inter = table[table["kind"] == "interaction"]
    assert set(inter["moderator"]) == {"severity", "arm"}
    assert inter["p_adjusted"].ge(inter["p_value"]).all()
    assert (table[table["kind"] == "simple_slope"]["p_adjusted"].isna()).all()


def test_benjamini_hochberg_matches_r():
    from pylme_alliance.analyses.moderation import benjamini_hochberg

    p = [0.01, 0.04, 0.03, 0.2, np.nan, 0.001]
    got = benjamini_hochberg(p)
    r_value, _ = bridge.call("pylme_p_adjust_bh", [v for v in p if not np.isnan(v)])
    np.testing.assert_allclose(got[~np.isnan(got)], r_value, rtol=1e-12)
    assert np.isnan(got[4])


def test_benjamini_hochberg_is_never_below_p():
    """The largest p is adjusted by n / n, which rounded 0.9350724237877682 one ulp down."""
    from pylme_alliance.analyses.moderation import benjamini_hochberg

    p = np.array([0.6369616873214543, 0.2697867137638703, 0.04097352393619469, 0.016527635528529094,
                  0.8132702392002724, 0.9127555772777217, 0.6066357757671799, 0.7294965609839984,
                  0.5436249914654229, 0.9350724237877682])
    assert (benjamini_hochberg(p) >= p).all()


@pytest.mark.parametrize("engine, residual", [("nlme", "ar1"), ("glmmtmb", "iid"), ("statsmodels", "iid")])
def test_heterogeneity_other_engines(small_panel, engine, residual):
    therapist = "none" if engine == "statsmodels" else "nested"
    fit = quiet(pa.AllianceModel(engine=engine, residual=residual, therapist=therapist).fit, small_panel)
    het = quiet(fit.heterogeneity, interval=False, trend=False, method="mixture")
    assert len(het.patients) == fit.data["patient"].nunique()
    assert np.isfinite(het.patients["slope"]).all()
    # without moderators every patient's slope is the fixed effect plus the patient's BLUP
    blocks = [b for b in fit.ranef().values() if "alliance_within" in b.columns]
    assert len(blocks) == 1
    re = blocks[0]["alliance_within"]
    blup = dict(zip(re.index.astype(str).str.split(r"[:/]", regex=True).str[-1], re.to_numpy()))
    expected = fit.fixef()["alliance_within"] + het.patients["patient"].map(blup)
    np.testing.assert_allclose(het.patients["slope"], expected, rtol=1e-6, atol=1e-8)


def test_kept_means_equal_pandas_group_means():
    from pylme_alliance.models.frame import KeptMeans, patient_codes

    rng = np.random.default_rng(3)
    patient = pd.Series(pd.Categorical(rng.choice(["a", "b", "c", "d"], 200), categories=["a", "b", "c", "d", "e"]))
    values = rng.normal(50, 10, 200)
    kept = rng.random(200) < 0.7
    kept[patient.to_numpy() == "d"] = False  # a patient without kept rows, and "e" without rows
    per_row, grand = KeptMeans(patient_codes(patient), kept).of(values)
    series = pd.Series(values).where(kept)
    want = series.groupby(patient, observed=True).transform("mean").to_numpy()
    np.testing.assert_allclose(per_row[kept], want[kept], rtol=1e-13)
    assert np.isnan(per_row[patient.to_numpy() == "d"]).all()
    assert grand == pytest.approx(series[kept].groupby(patient[kept], observed=True).mean().mean(), rel=1e-13)
    plain = KeptMeans(patient_codes(pd.Series(patient.astype(str))), kept).of(values)[0]  # not categorical
    np.testing.assert_allclose(plain[kept], want[kept], rtol=1e-13)
