"""Where the within effect breaks, the fit says so at the number (issue 18, item 2): the
measured design closest to the data decides, and no note quotes a figure measured on
another design."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import pylme_alliance as pa
from pylme_alliance.models import reliability
from pylme_alliance.models.diagnostics import fit_status, term_statuses
from pylme_alliance.report import status as statuses
from pylme_alliance.report import tables as report_tables
from pylme_alliance.report import wording


def _fit(data, **options):
    panel = pa.prepare(data, patient="patient", session="session", alliance="alliance", outcome="outcome",
                       therapist="therapist", leads=(1,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pa.AllianceModel(**options).fit(panel)


def _design(name):
    return next(d for d in reliability.MEASURED if d.name == name)


@pytest.fixture(scope="module")
def short_fit():
    # 3 sessions each: 2 fitted rows per patient, too few for a random slope (analyze()
    # drops it, as the recovery study did)
    data = pa.simulate(n_patients=150, n_therapists=15, sessions=3, missed=0, dropout=0,
                       within_effect=(-2.0, -1.0), seed=5).data
    return _fit(data, random_slope=False)


@pytest.fixture(scope="module")
def example_fit():
    return _fit(pa.load_example())


@pytest.fixture(scope="module")
def every_other_fit():
    data = pa.simulate(n_patients=150, n_therapists=15, seed=7).data.copy()
    data.loc[(data["session"] - 1) % 2 != 0, "alliance"] = np.nan  # rated at sessions 1, 3, 5, ...
    return _fit(data)


def test_the_table_holds_the_measured_designs():
    names = {d.name for d in reliability.MEASURED}
    assert {"default", "T3", "T4", "T5", "T6", "T8", "T20", "short_med3", "short_med4", "rated_k2",
            "rated_k3"} <= names
    for design in reliability.MEASURED:
        assert design.trials >= 200 and 0 < design.rated_share <= 1 and design.median_rows >= 1
        assert design.reliable == (abs(design.bias_pct) <= 10 and design.coverage >= 0.90)
    assert _design("default").reliable  # the reference design must not be flagged
    assert not _design("T3").reliable


def _closest(median, mean, spread, share, prior, table=None):
    return reliability.closest_design(median_rows=median, mean_rows=mean, spread=spread, share=share,
                                      prior_outcome=prior, table=table)


def test_the_rule_picks_the_closest_design():
    for design in reliability.MEASURED:
        assert _closest(design.median_rows, design.mean_rows, design.spread, design.rated_share,
                        design.prior_outcome) is design
    # a little off each measured point still lands on it
    t3, k2, default = _design("T3"), _design("rated_k2"), _design("default")
    assert _closest(2.0, 2.0, 0.0, 0.97, False) is t3
    assert _closest(k2.median_rows, k2.mean_rows + 0.1, k2.spread + 0.05, k2.rated_share - 0.03, False) is k2
    assert _closest(default.median_rows + 0.5, default.mean_rows, 0.7, 1.0, True) is default
    # the same median, balanced or not: the spread tells them apart (T = 3 broke, median 3 did not)
    assert _closest(2.0, 2.05, 0.05, 1.0, False) is t3
    assert _closest(2.0, 2.6, 0.7, 1.0, False) is _design("short_med3")
    # 3 fitted rows each: without the outcome before like T = 4, with it like T = 5
    assert _closest(3.0, 3.0, 0.0, 1.0, False) is _design("T4")
    assert _closest(3.0, 3.0, 0.0, 1.0, True) is _design("T5")
    # a balanced series of 7 sessions (5 rows each) is nearer T = 8 than the trial-like default
    assert _closest(5.0, 5.0, 0.0, 1.0, True) is _design("T8")
    # long series are nearest the longest measured one, never a short one
    longest = max(reliability.MEASURED, key=lambda d: d.median_rows)
    assert _closest(40.0, 40.0, 0.0, 1.0, True) is longest
    assert _closest(np.nan, 3.0, 0.0, 1.0, True) is None


def test_a_made_up_table_decides_the_flag():
    # the rule reads the table it is given: the same data flagged or not by the row only
    bad = reliability.MeasuredDesign("x", "made-up design", 2.0, 2.0, 0.0, 1.0, True, bias_pct=25.0, coverage=0.95,
                                     trials=200)
    good = reliability.MeasuredDesign("y", "other", 6.0, 6.0, 0.0, 1.0, True, bias_pct=1.0, coverage=0.95,
                                      trials=200)
    low = reliability.MeasuredDesign("z", "low coverage", 2.0, 2.0, 0.0, 1.0, True, bias_pct=1.0, coverage=0.85,
                                     trials=200)
    assert _closest(2.1, 2.2, 0.0, 1.0, True, (bad, good)) is bad
    assert _closest(5.0, 5.5, 0.0, 1.0, True, (bad, good)) is good
    assert not bad.reliable and good.reliable and not low.reliable
    assert bad.figures() == "+25% bias toward zero, coverage 0.950"
    assert reliability.fit_sessions_spread(type("F", (), {"data": _two_patients(2, 4)})()) == pytest.approx(1 / 3)


def _two_patients(a, b):
    return pd.DataFrame({"patient": ["p"] * a + ["q"] * b})


def test_short_series_are_flagged_with_the_measured_figures(short_fit):
    t3 = _design("T3")
    assert reliability.measured_for(short_fit) is t3
    status = fit_status(short_fit)
    assert "unreliable here: within effect measured at" in status
    assert t3.figures() in status and t3.label in status
    # a real problem, never one the design explains
    assert statuses.real(status) and "unreliable here" in statuses.real(status)
    assert "unreliable here" in wording.caution(status)


def test_the_flag_sits_at_the_within_number(short_fit):
    rows = report_tables.within_rows(short_fit, "main")
    by_term = dict(zip(rows["term"], rows["status"]))
    assert "unreliable here" in by_term["alliance_within"]
    assert "unreliable here" not in by_term["alliance_between"]
    fixed = report_tables.fixed_table(short_fit).set_index("term")["status"]
    assert "unreliable here" in fixed["alliance_within"] and "unreliable here" not in fixed["outcome_within"]
    assert term_statuses(short_fit, ["alliance_within", "session"])[1] == fit_status(short_fit, term="session")


def test_the_default_example_is_not_flagged(example_fit):
    design = reliability.measured_for(example_fit)
    assert design is _design("default")
    assert "unreliable" not in fit_status(example_fit)


def test_every_other_session_flagged_iff_its_row_breaks_the_thresholds(every_other_fit):
    k2 = _design("rated_k2")
    assert reliability.measured_for(every_other_fit) is k2
    assert 0.45 < reliability.rated_share(every_other_fit.panel) < 0.7
    assert ("unreliable here" in fit_status(every_other_fit)) == (not k2.reliable)


def test_notes_quote_only_the_design_closest_to_the_data(short_fit, example_fit):
    t3, default = _design("T3"), _design("default")
    for fit, design in ((short_fit, t3), (example_fit, default)):
        nickell = next(w for w in fit.warnings if "Nickell" in w)
        assert design.figures() in nickell and design.label in nickell
        others = [d for d in reliability.MEASURED if d.figures() != design.figures()]
        assert not any(d.figures() in nickell for d in others)
        # the fixed figures of earlier versions are gone
        assert "3.5%" not in nickell and "5.4%" not in nickell
    assert "unreliable on data like these" in next(w for w in short_fit.warnings if "Nickell" in w)
    assert "%" not in pa.AllianceModel().control_bias()  # a constant cannot know the data's design


def test_other_leads_and_controls_get_no_measured_figure(short_fit):
    # the study measured the lead-1 total effect with the decomposed control only
    class Other:
        model = pa.AllianceModel(control_outcome="raw")
        fixef_values = short_fit.fixef_values
        data = short_fit.data
        panel = short_fit.panel

    assert reliability.measured_for(Other()) is None
    assert reliability.within_reliability(Other()) == "" and reliability.recovery_note(Other()) == ""
    for model in (pa.AllianceModel(lead=2), pa.AllianceModel(random_trend=True)):
        Other.model = model
        assert reliability.measured_for(Other()) is None
    Other.model = pa.AllianceModel(random_slope=False)  # the short fit's own kind is measured
    assert reliability.measured_for(Other()) is _design("T3")


def test_the_report_flags_the_within_number_on_short_series():
    data = pa.simulate(n_patients=150, n_therapists=15, sessions=3, missed=0, dropout=0,
                       within_effect=(-2.0, -1.0), seed=5).data
    panel = pa.prepare(data, patient="patient", session="session", alliance="alliance", outcome="outcome",
                       therapist="therapist", leads=(1,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = pa.analyze(panel, leads=(1,), checks=(), reciprocal=False, progress=False)
    summary = report.summary_table().set_index("term")
    figures = _design("T3").figures()
    assert figures in summary.loc["alliance_within", "status"].iloc[0]
    assert "unreliable" not in " ".join(map(str, summary.loc["alliance_between", "status"]))
    assert figures in wording.within_sentence(report)
    assert "Caution" in wording.within_sentence(report)


def _recovery_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "recovery.py"
    spec = importlib.util.spec_from_file_location("recovery_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_table_names_designs_the_benchmark_runs():
    recovery = _recovery_module()
    assert {d.name for d in reliability.MEASURED} <= set(recovery.DESIGNS)
    data = pa.simulate(n_patients=20, n_therapists=4, sessions=7, missed=0, dropout=0, seed=1).data
    thinned = recovery.thin_alliance(data, 3)
    assert thinned["alliance"].notna().groupby(thinned["session"]).all().to_dict() == {
        s: s in (1, 4, 7) for s in range(1, 8)}
    assert thinned["outcome"].equals(data["outcome"]) and data["alliance"].notna().all()  # a copy, outcome kept
