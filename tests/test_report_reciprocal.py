"""The report takes up the reciprocal dynamics (issue 19, deliverables 2-4): objective (b)
from the RI-CLPM's impulse responses, objective (a) with the symptom -> alliance path and
a robustness line, the RI-CLPM as one more independent part (the same tables on an
executor), a note instead of a failure when the waves are too thin, the opt-out, the
saved tables, the glossary and the CLI flag."""
from __future__ import annotations

import types
import warnings

import numpy as np
import pandas as pd
import pytest

import pylme_alliance as pa
from pylme_alliance import executors
from pylme_alliance.report import dynamics_words, glossary, wording

COLUMNS = dict(patient="patient", session="session", alliance="alliance", outcome="outcome",
               therapist="therapist", time="day")


def _quiet(fun, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fun(*args, **kwargs)


def _analyze(panel, **options):
    return _quiet(pa.analyze, panel, leads=(1, 2, 3), random_slope=False, checks=(), progress=False, **options)


@pytest.fixture(scope="module")
def panel():
    data = pa.simulate(n_patients=80, seed=1).data
    return pa.prepare(data, **COLUMNS, leads=(1, 2, 3), outcome_better="lower", outcome_label="symptom score")


@pytest.fixture(scope="module")
def report(panel):
    return _analyze(panel)


@pytest.fixture(scope="module")
def fit(panel):
    return _quiet(pa.reciprocal, panel, leads=3)


def _impulse(fit):
    rows = fit.impulse[(fit.impulse["source"] == "alliance") & (fit.impulse["response"] == "outcome")]
    return rows.sort_values("lead").reset_index(drop=True)


def test_b_totals_are_the_reciprocal_fits_impulse_responses(report, fit):
    dur = report.tables["duration"]
    total = dur[(dur["effect"] == "total") & (dur["term"] == "alliance_within")].sort_values("lead")
    expected = _impulse(fit)
    assert list(total["lead"]) == [1, 2, 3]
    for column in ("estimate", "conf_low", "conf_high", "std_error"):
        np.testing.assert_allclose(total[column].to_numpy(), expected[column].to_numpy(), rtol=1e-8, err_msg=column)
    assert total["estimand"].str.contains("RI-CLPM impulse response").all()
    # the per-lead regression is not a total effect: not in the duration table, not fitted at all
    assert "duration_lead_regression" not in report.tables
    assert not any("duration total" in m for m in report.tables["fits"]["model"])
    # the summary's (b) sentence reads from them, each with its interval
    line = next(x for x in wording.summary_lines(report, {}) if x.startswith("(b)"))
    assert "RI-CLPM impulse responses" in line
    for r in expected.itertuples():
        assert f"{r.estimate:.2f} [95% CI {r.conf_low:.2f}, {r.conf_high:.2f}]" in line
    assert "How long it lasts (total effect)" in wording.lead_ins(report)["b"]


def test_direct_rows_keep_their_meaning(report, panel):
    dur = report.tables["duration"]
    direct = dur[dur["effect"] == "direct"].drop(columns="status").reset_index(drop=True)
    expected = _quiet(pa.duration, panel, leads=(1, 2, 3), therapist="nested", effect="direct",
                      random_slope=False)
    got = direct.set_index(["lead", "term"])[["estimate", "conf_low", "conf_high"]]
    want = expected.set_index(["lead", "term"])[["estimate", "conf_low", "conf_high"]].loc[got.index]
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-6)


def test_a_gains_outcome_to_alliance_and_the_robustness_line(report, fit):
    text = wording.lead_ins(report)["a"]
    back = fit.path("outcome->alliance")
    d = dynamics_words.decimals(back["estimate"], back["conf_low"], back["conf_high"])
    assert d >= 3  # a per-point symptom -> alliance path is small: never printed as "0.00"
    assert "The other direction, symptom score -> alliance (RI-CLPM" in text
    assert f"95% CI {back['conf_low']:.{d}f} to {back['conf_high']:.{d}f}" in text
    forth = fit.path("alliance->outcome")
    assert "Robustness:" in text and f"{forth['estimate']:.2f} (95% CI {forth['conf_low']:.2f}" in text
    within = wording.effect_row(report, "alliance_within")
    assert f"{within['estimate']:.2f} (95% CI {within['conf_low']:.2f}" in text.split("Robustness:")[1]
    summary = next(x for x in wording.summary_lines(report, {}) if x.startswith("(a) Both directions"))
    assert "symptom score -> alliance" in summary and f"{back['conf_low']:.{d}f}" in summary
    table = report.tables["reciprocal_effects"]
    assert list(table["direction"])[:2] == ["alliance->outcome", "outcome->alliance"]
    np.testing.assert_allclose(table["estimate"], fit.effects["estimate"], rtol=1e-8)
    assert report.settings["reciprocal"]["waves"] == fit.waves


def _paths(within, path):
    effects = pd.DataFrame([{"term": "alliance_within", "lead": 1, **within}])
    paths = pd.DataFrame([{"direction": "alliance->outcome", "status": "", **path}])
    return types.SimpleNamespace(tables={"alliance_effects": effects, "reciprocal_effects": paths},
                                 settings={"outcome_name": "score"})


def test_robustness_line_says_what_a_difference_means():
    same = _paths({"estimate": -1.8, "conf_low": -3.0, "conf_high": -0.6},
                  {"estimate": -1.5, "conf_low": -2.7, "conf_high": -0.3})
    assert "they agree" in dynamics_words.robustness_sentence(same)
    apart = _paths({"estimate": -0.4, "conf_low": -0.9, "conf_high": 0.1},
                   {"estimate": -2.0, "conf_low": -2.9, "conf_high": -1.1})
    text = dynamics_words.robustness_sentence(apart)
    assert "they differ" in text and "trajectories" in text and "feedback" in text and "RI-CLPM" in text
    later = _paths({"estimate": -1.8, "conf_low": -3.0, "conf_high": -0.6},
                   {"estimate": -1.5, "conf_low": -2.7, "conf_high": -0.3})
    later.tables["alliance_effects"]["lead"] = 2  # a lead-2 headline is not the lagged path
    assert dynamics_words.robustness_sentence(later) is None


def test_reciprocal_part_is_timed_in_the_fits_and_glossary(report):
    parts = [t["part"] for t in report.provenance["timings"]["parts"]]
    assert "reciprocal dynamics" in parts
    fits = report.tables["fits"].set_index("model")
    assert fits.loc["reciprocal dynamics (RI-CLPM)", "engine"] == "lavaan"
    words = dict(item for _, items in glossary.entries(report) for item in items)
    assert "RI-CLPM" in words and "Impulse response" in words
    assert "stable level" in words["RI-CLPM"] and "total effect" in words["Impulse response"]
    md = report.to_markdown()
    assert "Impulse responses of the RI-CLPM" in md and "t+1: the lagged paths themselves" in md


def test_saved_report_keeps_the_reciprocal_tables(report, tmp_path):
    report.save(tmp_path)
    loaded = pa.Report.load(tmp_path)
    for name in ("reciprocal_effects", "impulse_responses", "duration"):
        pd.testing.assert_frame_equal(loaded.tables[name], report.tables[name], check_dtype=False, obj=name)
        assert (tmp_path / f"{name}.csv").exists()
    assert loaded.settings["reciprocal"]["waves"] == report.settings["reciprocal"]["waves"]


def test_executor_gives_the_same_reciprocal_tables(panel, report):
    with executors.process_pool(2) as pool:
        pooled = _analyze(panel, executor=pool)
    for name in ("reciprocal_effects", "impulse_responses", "duration"):
        pd.testing.assert_frame_equal(pooled.tables[name], report.tables[name], obj=name)
    assert pooled.settings["reciprocal"] == report.settings["reciprocal"]


def test_too_few_waves_is_a_note_not_a_failure(panel):
    data = pa.simulate(n_patients=80, seed=1).data
    data["session"] = data["session"] + 20  # session numbers that never start at 1: no wave 1..W
    shifted = pa.prepare(data, **COLUMNS, leads=(1, 2), outcome_better="lower")
    report = _quiet(pa.analyze, shifted, leads=(1, 2), random_slope=False, checks=(), progress=False)
    assert any(n.startswith("The reciprocal dynamics (RI-CLPM) were not fitted: wave(s)") for n in report.notes)
    assert "reciprocal_effects" not in report.tables and report.settings["reciprocal"] is None
    # the per-lead regression is kept, in the appendix, with its measured bias; (b) reads the direct effect
    lead_regression = report.tables["duration_lead_regression"]
    assert list(lead_regression["lead"].unique()) == [2]
    assert lead_regression["estimand"].str.contains("37% short at lead 2").all()
    assert "How long it lasts (direct effect)" in wording.lead_ins(report)["b"]
    assert "Appendix D" in report.to_markdown()


def test_opt_out(panel):
    report = _quiet(pa.analyze, panel, leads=(1, 2), random_slope=False, checks=(), progress=False,
                    reciprocal=False)
    assert any("(reciprocal=False)" in n for n in report.notes)
    assert "reciprocal_effects" not in report.tables
    assert "reciprocal dynamics" not in [t["part"] for t in report.provenance["timings"]["parts"]]
    assert report.provenance["arguments"]["reciprocal"] is False
    with pytest.raises(pa.PylmeError, match="reciprocal must be True or False"):
        pa.analyze(panel, reciprocal="yes", progress=False)


def test_cli_flag():
    from pylme_alliance.cli import build_parser

    base = ["analyze", "x.csv", "--patient", "p", "--session", "s", "--alliance", "a", "--outcome", "o",
            "--out", "dir"]
    assert build_parser().parse_args(base).reciprocal is True
    assert build_parser().parse_args([*base, "--no-reciprocal"]).reciprocal is False
    assert build_parser().parse_args([*base, "--reciprocal"]).reciprocal is True
