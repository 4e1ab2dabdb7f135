"""The report says what its numbers mean (issue 9, report side): estimands on every row,
the between association from the between-level model, the user's outcome direction
(and neutral words without one), duration total and direct, flagged fits marked where
the number is, designs the data cannot support, and a reversed outcome that flips every
reported sign while the shares and the words of benefit stay."""
from __future__ import annotations

import dataclasses
import re
import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text

import pylme_alliance as pa
from pylme_alliance.models import diagnostics
from pylme_alliance.models.fit import AllianceFit
from pylme_alliance.models.model import AllianceModel

COLUMNS = dict(patient="patient", session="session", alliance="alliance", therapist="therapist", time="day")
ESTIMATE_TABLES = ("alliance_effects", "fixed_effects", "variance_parameters", "fit_statistics", "duration",
                   "reciprocal_effects", "impulse_responses", "moderators", "johnson_neyman", "heterogeneity", "residual_acf", "ar1_comparison")


def _quiet(fun, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fun(*args, **kwargs)


@pytest.fixture(scope="module")
def trial():
    data = pa.simulate(n_patients=80, seed=11).data
    data["score"] = data["outcome"]
    data["reversed"] = 180 - data["outcome"]
    return data


def _analyze(data, outcome, better, **options):
    panel = pa.prepare(data, **COLUMNS, outcome=outcome, leads=(1, 2), moderators=["severity"],
                       outcome_better=better)
    options.setdefault("slope_draws", 39)  # the calibrated slope test: enough draws to reject at .05
    return _quiet(pa.analyze, panel, leads=(1, 2), moderators=["severity"], random_slope=True, progress=False,
                  **options)


@pytest.fixture(scope="module")
def lower(trial):
    return _analyze(trial, "score", "lower")


@pytest.fixture(scope="module")
def higher(trial):
    return _analyze(trial, "reversed", "higher")


@pytest.fixture(scope="module")
def neutral(trial):
    return _analyze(trial, "score", None)


def _all_text(report) -> str:
    texts = [report.to_markdown(), str(report)]
    for fig in report.figures.values():
        texts += [t.get_text() for t in fig.findobj(Text)]
    return "\n".join(texts)


# ------------------------------------------------------------------ the reversal

def test_reversed_outcome_flips_every_sign_and_keeps_every_share(lower, higher):
    for name, keys in (("alliance_effects", ["term"]), ("duration", ["effect", "lead", "term"])):
        a = lower.tables[name].set_index(keys)
        b = higher.tables[name].set_index(keys).loc[a.index]
        np.testing.assert_allclose(b["estimate"], -a["estimate"], rtol=1e-4, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(b["conf_low"], -a["conf_high"], rtol=1e-4, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(b["p_value"], a["p_value"], rtol=1e-3, atol=1e-8, err_msg=name)
    mods_a, mods_b = lower.tables["moderators"], higher.tables["moderators"]
    np.testing.assert_allclose(mods_b["estimate"], -mods_a["estimate"], rtol=1e-4, atol=1e-6)
    fixed_a = lower.tables["fixed_effects"].set_index("term")
    fixed_b = higher.tables["fixed_effects"].set_index("term")
    for term in ("alliance_within", "alliance_between", "session"):
        assert fixed_b.loc[term, "estimate"] == pytest.approx(-fixed_a.loc[term, "estimate"], rel=1e-4)
    # heterogeneity: the mean flips; the SD, the test and the share of patients whose own
    # effect is in the BETTER direction are the same
    het_a = lower.tables["heterogeneity"].set_index("statistic")
    het_b = higher.tables["heterogeneity"].set_index("statistic")
    assert het_b.loc["mean within effect", "estimate"] == pytest.approx(-het_a.loc["mean within effect", "estimate"],
                                                                       rel=1e-4)
    # (no number at all when the test does not support variation: then on both sides)
    sd_a, sd_b = het_a.loc["random-slope SD", "estimate"], het_b.loc["random-slope SD", "estimate"]
    assert np.isnan(sd_a) == np.isnan(sd_b) and (np.isnan(sd_a) or sd_b == pytest.approx(sd_a, rel=1e-2))
    assert het_a.loc["random-slope SD", "note"] == het_b.loc["random-slope SD", "note"]
    share_a = [n for n in het_a.index if n.startswith("share")]
    share_b = [n for n in het_b.index if n.startswith("share")]
    assert share_a == share_b and len(share_a) == 1
    share_a, share_b = het_a.loc[share_a[0], "estimate"], het_b.loc[share_b[0], "estimate"]
    assert np.isnan(share_a) == np.isnan(share_b) and (np.isnan(share_a) or share_b == pytest.approx(share_a, abs=1e-3))
    cats_a = lower.tables["patient_slopes"].set_index("patient")["category"].sort_index()
    cats_b = higher.tables["patient_slopes"].set_index("patient")["category"].sort_index()
    pd.testing.assert_series_equal(cats_a, cats_b)
    # the sentences say the same thing: only "lower"/"higher" swap, "(better)"/"(worse)" stay
    swap = {"lower": "higher", "higher": "lower"}
    for key in ("a", "b", "h"):
        from pylme_alliance.report.wording import lead_ins

        text_a, text_b = lead_ins(lower)[key], lead_ins(higher)[key]
        flipped = re.sub(r"(points |direction \()(lower|higher)", lambda m: m.group(1) + swap[m.group(2)], text_a)
        numbers_a = re.findall(r"\d+\.\d+", text_a)
        numbers_b = re.findall(r"\d+\.\d+", text_b)
        assert len(numbers_a) == len(numbers_b), key
        # fit flags may differ between the two (an optimizer's luck): compare the claims
        # the share's interval is a Monte Carlo interval: its whole percents may differ by a draw
        strip = lambda t: re.sub(r"-?\d+\.\d+|\d+%", "#", re.sub(r" ?\[Caution[^\]]*\]| \(fit [^;)]*(;[^)]*)?\)", "", t)
                                 ).replace("score", "Y").replace("reversed", "Y")  # noqa: E731
        assert strip(flipped) == strip(text_b), key
    assert "(better)" in lead_ins(lower)["a"] or "(worse)" in lead_ins(lower)["a"]


def test_outcome_name_and_direction_in_every_text(lower, neutral):
    text = _all_text(lower)
    assert "OQ" not in text and "distress" not in text
    assert "score points per alliance point" in text
    neutral_text = _all_text(neutral)
    for word in ("beneficial", "(better)", "(worse)", "OQ", "distress", "harmful"):
        assert word not in neutral_text, word
    assert "no outcome direction given" in str(neutral)


# ------------------------------------------------------------------ estimands and the between effect

def test_every_estimate_row_carries_an_estimand(lower):
    assert set(lower.tables) - set(ESTIMATE_TABLES) <= {"data_description", "data_summary", "fits", "patient_slopes"}
    assert lower.tables["patient_slopes"]["estimand"].str.contains("BLUP").all()
    for name in ESTIMATE_TABLES:
        if name not in lower.tables:
            continue
        table = lower.tables[name]
        assert "estimand" in table.columns, name
        assert table["estimand"].astype(str).str.len().gt(10).all(), name
    effects = lower.tables["alliance_effects"].set_index("term")
    assert "within-patient SDs" in effects.loc["alliance_within", "std_definition"]
    assert "over patients" in effects.loc["alliance_level", "std_definition"]
    assert "conditional" in effects.loc["alliance_between", "estimand"]
    assert "level" in effects.loc["alliance_level", "estimand"]


def test_between_association_comes_from_the_level_model(lower, trial):
    panel = pa.prepare(trial, **COLUMNS, outcome="score", leads=(1, 2), moderators=["severity"],
                       outcome_better="lower")
    from pylme_alliance.analyses.between import between_effect

    expected = _quiet(between_effect, panel, therapist="nested")
    row = lower.tables["alliance_effects"].set_index("term").loc["alliance_level"]
    assert row["estimate"] == pytest.approx(float(expected["estimate"].iloc[0]), rel=1e-8)
    text = lower.to_markdown()
    sentence = next(line for line in text.splitlines() if "Between patients" in line)
    assert f"{abs(row['estimate']):.2f}" in sentence
    conditional = lower.tables["alliance_effects"].set_index("term").loc["alliance_between", "estimate"]
    assert f"{abs(conditional):.2f} points" not in sentence


# ------------------------------------------------------------------ duration, heterogeneity wording

def test_duration_total_and_direct_and_how_long_from_direct(lower):
    dur = lower.tables["duration"]
    assert set(zip(dur["effect"], dur["lead"])) >= {("total", 1), ("total", 2), ("direct", 1), ("direct", 2)}
    from pylme_alliance.report.wording import lead_ins

    text = lead_ins(lower)["b"]
    # how long it lasts: from the total effect of the fitted dynamics (issue 19), no longer the direct effect
    assert "Total effect" in text and "Direct effect" in text and "How long it lasts (total effect)" in text
    assert {"duration", "duration_direct"} <= set(lower.figures)


def test_heterogeneity_claimed_only_when_the_test_supports_it(lower):
    from pylme_alliance.report.wording import heterogeneity_text

    info = lower.settings["heterogeneity"]
    text = heterogeneity_text(lower)
    if info["degenerate"]:
        assert "cannot be assessed" in text
    elif info["verdict"] == "supported":
        assert "differs between patients" in text
    else:
        assert "cannot distinguish heterogeneity" in text
    # the opposite verdict, same report: the wording follows the test, not the SD
    for p_new, verdict, expected in ((0.001, "supported", "differs between patients"),
                                     (0.4, "not supported", "cannot distinguish heterogeneity")):
        fake = dataclasses.replace(lower, settings={**lower.settings, "heterogeneity": {
            **info, "degenerate": False, "verdict": verdict, "test": {**info["test"], "p_value": p_new}}})
        assert expected in heterogeneity_text(fake)
        # BLUPs are described as shrunken whenever the slopes are interpreted at all
        assert "shrunken" in heterogeneity_text(fake)
    if info["degenerate"]:
        assert "not interpreted" in text and "shrunken" not in text
    else:
        assert "shrunken" in text


def test_profile_warnings_sit_beside_the_interval(panel_small, monkeypatch):
    real = AllianceFit.heterogeneity

    def with_warnings(self, **kwargs):
        het = real(self, **kwargs)
        fields = {f.name: getattr(het, f.name) for f in dataclasses.fields(het)} if dataclasses.is_dataclass(het) \
            else {"summary": het.summary, "patients": het.patients}
        fields["warnings"] = ("slope SD interval: non-monotonic profile for sd_alliance_within",
                              "slope SD interval: bad spline fit for sd_alliance_within")
        return SimpleNamespace(**{**fields, "test": getattr(het, "test", None)})

    monkeypatch.setattr(AllianceFit, "heterogeneity", with_warnings)
    report = _quiet(pa.analyze, panel_small, leads=(1,), random_slope=True, progress=False)
    het = report.tables["heterogeneity"].set_index("statistic")
    note = het.loc["random-slope SD", "note"]
    assert "non-monotonic profile" in note and "bad spline fit" in note
    from pylme_alliance.report.wording import heterogeneity_text

    if not report.settings["heterogeneity"]["degenerate"] and np.isfinite(het.loc["random-slope SD", "estimate"]):
        assert "non-monotonic profile" in heterogeneity_text(report)


# ------------------------------------------------------------------ flags where the number is

@pytest.fixture(scope="module")
def panel_small():
    data = pa.simulate(n_patients=60, seed=4).data
    return pa.prepare(data, **COLUMNS, outcome="outcome", leads=(1, 2), outcome_better="lower")


def test_non_converged_fit_is_marked_where_the_number_is(panel_small, monkeypatch):
    real = AllianceModel.fit

    def unconverged(self, panel):
        fit = real(self, panel)
        return dataclasses.replace(fit, stats={**fit.stats, "converged": False}) if self.lead == 1 else fit

    monkeypatch.setattr(AllianceModel, "fit", unconverged)
    report = _quiet(pa.analyze, panel_small, leads=(1, 2), random_slope=False, progress=False)
    effects = report.tables["alliance_effects"].set_index("term")
    assert "did not converge" in effects.loc["alliance_within", "status"]
    assert "did not converge" in str(report).splitlines()[1]
    from pylme_alliance.report.wording import lead_ins

    assert "Caution" in lead_ins(report)["a"] and "did not converge" in lead_ins(report)["a"]
    dur = report.tables["duration"]
    # the main fit is lead 1's direct effect; the total effect there is the RI-CLPM's (its own fit)
    direct = dur[dur["effect"] == "direct"]
    assert direct.loc[direct["lead"] == 1, "status"].str.contains("did not converge").all()
    caution = [t.get_text() for t in report.figures["duration_direct"].findobj(Text) if "Caution" in t.get_text()]
    assert caution and "did not converge" in caution[0]


def test_ar1_check_refuses_non_converged_fits(panel_small, monkeypatch):
    real = AllianceModel.fit

    def ar1_unconverged(self, panel):
        fit = real(self, panel)
        return dataclasses.replace(fit, stats={**fit.stats, "converged": False}) if self.residual == "ar1" else fit

    monkeypatch.setattr(AllianceModel, "fit", ar1_unconverged)
    table, notes, _ = _quiet(diagnostics.ar1_alternative, panel_small, AllianceModel(therapist="nested",
                                                                                     random_slope=False))
    assert not table["preferred"].any()
    assert any("could not be made" in n and "did not converge" in n for n in notes)
    assert not any("adequate" in n or "fit better" in n for n in notes)


# ------------------------------------------------------------------ designs the data cannot support

def test_short_series_drop_slope_skip_leads_and_warn():
    data = pa.simulate(n_patients=60, sessions=3, max_sessions=3, within_effect=(-2.0, -1.0), seed=6).data
    panel = pa.prepare(data, **COLUMNS, outcome="outcome", leads=(1, 2))
    with pytest.warns(UserWarning, match="within='early'"):
        report = pa.analyze(panel, leads=(1, 2), progress=False)
    notes = " ".join(report.notes)
    assert "Lead 2 skipped" in notes  # one row per patient left at lead 2
    assert report.settings["leads"] == (1,)
    assert "Random slope dropped" in notes and "observations" in notes
    assert report.settings["random_slope"] is False
    assert "not estimated" in report.to_markdown()
    assert "sd__alliance_within" not in set(report.tables["variance_parameters"]["term"])


def test_auto_drops_a_degenerate_slope_and_says_why(panel_small, monkeypatch):
    monkeypatch.setattr(diagnostics, "slope_degenerate", lambda fit, term="alliance_within": True)
    report = _quiet(pa.analyze, panel_small, leads=(1,), progress=False)
    assert report.settings["random_slope"] is False
    assert any("Random slope dropped" in n for n in report.notes)
    assert any("dropped: degenerate" in m for m in report.tables["fits"]["model"])
    forced = _quiet(pa.analyze, panel_small, leads=(1,), random_slope=True, progress=False)
    assert forced.settings["random_slope"] is True
    off = _quiet(pa.analyze, panel_small, leads=(1,), random_slope=False, progress=False)
    assert "random_slope=False" in off.settings["heterogeneity_absent"]
    with pytest.raises(pa.PylmeError, match="random_slope"):
        pa.analyze(panel_small, random_slope="sometimes", progress=False)


def test_concurrent_lead_zero(panel_small):
    report = _quiet(pa.analyze, panel_small, leads=(0, 1), random_slope=False, progress=False)
    dur = report.tables["duration"]
    assert set(dur["lead"]) == {0, 1}
    assert dur.loc[dur["lead"] == 0, "estimand"].str.contains("concurrent").all()


def test_closing_note_quotes_the_headline_sentences(lower):
    from pylme_alliance.report import wording
    from pylme_alliance.report.render import md_text

    md, page = lower.to_markdown(), lower.to_html()
    closing = md[md.index("## Closing note"):]
    for sentence in (wording.within_sentence(lower), wording.between_sentence(lower)):
        assert sentence and md_text(sentence) in closing  # as Markdown text: brackets escaped
    assert "How long it lasts" in closing
    assert page.count("<blockquote>") == len(wording.closing_note(lower))


def test_concurrent_main_lead_does_not_drop_the_control_at_later_leads(panel_small):
    report = _quiet(pa.analyze, panel_small, leads=(0, 2), random_slope=False, progress=False)
    assert report.settings["main_lead"] == 2
    fixed = report.tables["fixed_effects"]
    assert {"outcome_within", "outcome_between"} <= set(fixed["term"])


def test_a_failing_duration_fit_is_a_note_not_a_crash(panel_small, monkeypatch):
    real = AllianceModel.fit

    def failing(self, panel):
        if self.effect == "direct":
            raise pa.RError("false convergence (8)")
        return real(self, panel)

    monkeypatch.setattr(AllianceModel, "fit", failing)
    report = _quiet(pa.analyze, panel_small, leads=(1, 2), random_slope=False, progress=False)
    assert any("Duration (direct effect, lead 2): the model failed (false convergence" in n for n in report.notes)
    dur = report.tables["duration"]
    assert set(dur.loc[dur["effect"] == "direct", "lead"]) == {1}


def test_duration_headline_marks_flagged_fits_in_words_not_with_a_star():
    """The printed summary marked flagged fits with "*", which readers take for significance,
    and a missing status (NaN) counted as a flag."""
    import types

    from pylme_alliance.report.wording import headline

    duration = pd.DataFrame({
        "lead": [1, 2, 3], "effect": "direct", "term": "alliance_within",
        "estimate": [-1.6, -1.0, 0.2], "conf_low": [-2.8, -2.3, -1.1], "conf_high": [-0.5, 0.2, 1.5],
        "status": ["singular (SD ~ 0)", "", np.nan]})
    report = types.SimpleNamespace(settings={}, tables={"duration": duration})
    lines = headline(report)
    line = next(x for x in lines if x.startswith("  duration (direct"))
    assert "*" not in line
    assert line.count("(flagged)") == 1 and "t+1: -1.600 [-2.800, -0.500] (flagged)" in line
    assert any("flagged: from a fit that did not converge" in x for x in lines)


def test_control_options_reach_every_lagged_model(panel_small, monkeypatch):
    seen = []
    real = AllianceModel.fit

    def recording(self, panel):
        seen.append(self)
        return real(self, panel)

    monkeypatch.setattr(AllianceModel, "fit", recording)
    report = _quiet(pa.analyze, panel_small, leads=(0, 1, 2), random_slope=False, progress=False, checks=(),
                    control_outcome="raw", prior_outcome="false")
    assert report.settings["control_outcome"] == "raw" and report.settings["prior_outcome"] is False
    assert "outcome" in set(report.tables["fixed_effects"]["term"])
    lagged = [m for m in seen if m.lead > 0]
    assert {m.lead for m in lagged} == {1, 2}
    assert all(m.control_outcome == "raw" and m.prior_outcome is False for m in lagged)
    assert all(m.control_outcome is False for m in seen if m.lead == 0)  # nothing to control at lead 0
    assert report.provenance["arguments"]["control_outcome"] == "raw"


def test_control_options_are_checked_before_any_fit(panel_small):
    with pytest.raises(pa.PylmeError, match="control_outcome"):
        pa.analyze(panel_small, control_outcome="lagged", progress=False)
    with pytest.raises(pa.PylmeError, match="prior_outcome"):
        pa.analyze(panel_small, prior_outcome="maybe", progress=False)


def test_heterogeneity_statement_carries_the_measured_caveat(lower):
    """The report states heterogeneity from the calibrated test, with what the recovery
    study measured on the closest design, and prints no SD when the test does not
    support variation (issue 18)."""
    from pylme_alliance.report.wording import heterogeneity_text

    info = lower.settings["heterogeneity"]
    assert info["test"]["calibrated"] and "parametric bootstrap" in info["test"]["reference"]
    not_supported = dataclasses.replace(lower, settings={**lower.settings, "heterogeneity": {
        **info, "degenerate": False, "verdict": "not supported", "caveat": "measured X",
        "detectable_sd": 4.2}})
    text = heterogeneity_text(not_supported)
    assert "not estimable" in text and "about 4.2 or more" in text and "Measured: measured X" in text
    supported = dataclasses.replace(lower, settings={**lower.settings, "heterogeneity": {
        **info, "degenerate": False, "verdict": "supported", "caveat": "measured X",
        "test": {**info["test"], "p_value": 0.025}}})
    assert "differs between patients" in heterogeneity_text(supported)
