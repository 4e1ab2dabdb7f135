"""analyze() -> Report: tables, figures, markdown/html/save, diagnostics (ACF by session
number, the AR(1) alternative), therapist choice. Uses a small simulated trial."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import pylme_alliance as pa
from pylme_alliance.models import diagnostics
from pylme_alliance.models.choices import choose_therapist as _choose_therapist
from pylme_alliance.models.model import AllianceModel

COLUMNS = dict(patient="patient", session="session", alliance="alliance", outcome="outcome",
               therapist="therapist", time="day")
EXPECTED_TABLES = {"data_summary", "alliance_effects", "fixed_effects", "variance_parameters", "fit_statistics",
                   "duration", "moderators", "johnson_neyman", "heterogeneity", "patient_slopes", "fits",
                   "residual_acf", "ar1_comparison"}
EXPECTED_FIGURES = {"duration", "duration_direct", "simple_slopes_severity", "simple_slopes_arm", "patient_slopes",
                    "residual_acf"}


def _quiet(fun, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fun(*args, **kwargs)


@pytest.fixture(scope="module")
def panel():
    data = pa.simulate(n_patients=80, seed=1).data
    return pa.prepare(data, **COLUMNS, leads=(1, 2, 3), moderators=["severity", "arm"])


@pytest.fixture(scope="module")
def report(panel):
    return pa.analyze(panel, moderators=["severity", "arm"], random_slope=True, progress=False)


def test_tables_and_figures_present(report):
    assert EXPECTED_TABLES <= set(report.tables)
    assert EXPECTED_FIGURES <= set(report.figures)
    assert all(isinstance(f, Figure) for f in report.figures.values())
    assert all(isinstance(t, pd.DataFrame) and len(t) for t in report.tables.values())
    effects = report.tables["alliance_effects"]
    assert list(effects["term"]) == ["alliance_within", "alliance_level", "alliance_between"]
    assert (effects["lead"].dropna() == 1).all() and effects["lead"].isna().sum() == 1
    assert set(report.tables["duration"]["lead"]) == {1, 2, 3}
    assert set(report.tables["duration"]["effect"]) == {"total", "direct"}
    mods = report.tables["moderators"]
    inter = mods[mods["kind"] == "interaction"]
    assert inter["p_adjusted"].notna().all() and (inter["p_adjusted"] >= inter["p_value"] - 1e-12).all()
    assert set(mods["moderator"]) == {"severity", "arm"}
    assert set(report.tables["johnson_neyman"]["moderator"]) == {"severity"}  # continuous only
    assert {"model", "AIC", "BIC", "logLik", "phi", "preferred"} <= set(report.tables["ar1_comparison"].columns)
    assert list(report.tables["ar1_comparison"]["residual"]) == ["iid", "ar1"]
    fits = report.tables["fits"]
    assert {"converged", "singular", "warnings"} <= set(fits.columns)
    # main + 2 more leads (total) + 2 (direct; lead 1 is the same) + 2 moderators + iid/ar1 alternative
    names = set(fits["model"])
    assert {"main (lead 1)", "duration total (lead 2)", "duration total (lead 3)", "duration direct (lead 2)",
            "duration direct (lead 3)", "moderator severity", "moderator arm", "AR(1) check: nlme iid",
            "AR(1) check: nlme ar1"} <= names
    assert any("nested" in n for n in report.notes)


def test_duration_table_matches_duration_function(report, panel):
    got = report.tables["duration"].drop(columns="status")
    for effect in ("total", "direct"):
        # the report's "total" rows are still the per-lead regression (issue 19: the report
        # moves to the dynamics' impulse responses, duration(effect="total"), separately)
        fitted = "lead_regression" if effect == "total" else effect
        expected = _quiet(pa.duration, panel, leads=(1, 2, 3), therapist="nested", effect=fitted)
        if effect == "total":
            expected = expected.assign(effect="total", estimand=expected["estimand"].str.split("; per-lead").str[0])
        rows = got[got["effect"] == effect].reset_index(drop=True)
        if effect == "direct":  # lead 1: the direct effect is the total effect (the same fit)
            lead1 = expected[(expected["lead"] == 1) & (expected["term"] == "alliance_within")]
            assert lead1["estimand"].str.contains("total").all()
            expected = expected.assign(effect="direct")
        pd.testing.assert_frame_equal(rows, expected.reset_index(drop=True), check_dtype=False, rtol=1e-8)


def test_simple_slopes_figure_is_a_line_over_the_observed_range(report, panel):
    fig = report.figures["simple_slopes_severity"]
    ax = fig.axes[0]
    line = max(ax.get_lines(), key=lambda l: len(l.get_xdata()))
    x = np.asarray(line.get_xdata(), dtype=float)
    observed = panel.data.groupby("patient")["severity"].first()
    assert x.min() == pytest.approx(observed.min()) and x.max() == pytest.approx(observed.max())
    # no outcome direction or name was given: the column's name, no OQ-45
    assert "outcome points per alliance point" in ax.get_ylabel() and "OQ" not in ax.get_ylabel()


def test_markdown_headings_and_direction(report):
    md = report.to_markdown()
    # the journal layout (issue 21): summary, data, methods, results, glossary, appendices
    headings = ["# Alliance-outcome analysis", "## Summary", "## Data", "## Methods",
                "## (a) Within- and between-patient alliance effects", "## (b) Duration", "## (c) Moderators",
                "## Heterogeneity", "## Glossary", "## Appendix A: model details", "## Appendix B: diagnostics"]
    places = [md.index(h + ("\n" if h.startswith("# ") else "")) for h in headings]
    assert places == sorted(places)
    assert "Within patients: in sessions where a patient's alliance was one point above" in md
    assert "(better)" not in md and "beneficial" not in md.lower()  # no direction was given
    assert "![Figure 1. Duration: total effect by lead](duration.png)" in md  # alt text in words, not the key
    assert "| Term |" in md
    text = str(report)
    assert "within-patient" in text and "moderators significant after BH" in text


def test_save_writes_everything(report, tmp_path):
    out = report.save(tmp_path / "rep")
    assert (out / "report.md").read_text().startswith("# Alliance-outcome analysis")
    html = (out / "report.html").read_text()
    assert "data:image/png;base64" in html and "<table" in html
    assert html.count("data:image/png;base64") == len(report.figures)
    # every table sits in a horizontally scrollable box (wide tables are not cut off) and
    # every figure's alt text is its heading in words
    assert html.count('<div class="table-scroll"><table') == html.count("<table") > 0
    assert ".table-scroll { overflow-x: auto" in html
    assert 'alt="Duration: total effect by lead"' in html and 'alt="duration"' not in html
    for name in report.figures:
        assert (out / f"{name}.png").stat().st_size > 1000
    for name, table in report.tables.items():
        back = pd.read_csv(out / f"{name}.csv")
        assert list(back.columns) == [str(c) for c in table.columns]
        assert len(back) == len(table)


def test_acf_pairs_by_session_number_not_row_order():
    # patient A misses session 3; rows are shuffled. By row order (sorted) the pair
    # (2, 4) would count as lag 1; by session number it is lag 2.
    aug = pd.DataFrame({
        "patient": ["A", "A", "A", "A", "B", "B", "B"],
        "session": [5, 1, 4, 2, 1, 2, 3],
        "resid": [1.0, 2.0, -1.0, -2.0, 0.5, -0.5, 1.5],
    })
    acf = diagnostics.residual_acf(aug, lags=(1, 2))
    e = aug["resid"] - aug["resid"].mean()
    by = dict(zip(zip(aug["patient"], aug["session"]), e))
    denom = np.mean(e ** 2)
    lag1 = [(("A", 1), ("A", 2)), (("A", 4), ("A", 5)), (("B", 1), ("B", 2)), (("B", 2), ("B", 3))]
    lag2 = [(("A", 2), ("A", 4)), (("B", 1), ("B", 3))]
    expected1 = np.mean([by[a] * by[b] for a, b in lag1]) / denom
    expected2 = np.mean([by[a] * by[b] for a, b in lag2]) / denom
    assert list(acf["n_pairs"]) == [4, 2]
    assert acf["acf"].iloc[0] == pytest.approx(expected1)
    assert acf["acf"].iloc[1] == pytest.approx(expected2)
    # the row-order version (neighbouring rows after sorting) is different
    s = aug.sort_values(["patient", "session"])
    es = (s["resid"] - aug["resid"].mean()).to_numpy()
    same = (s["patient"].to_numpy()[1:] == s["patient"].to_numpy()[:-1])
    row_order = np.mean((es[1:] * es[:-1])[same]) / denom
    assert abs(row_order - acf["acf"].iloc[0]) > 0.05


def test_acf_on_real_fit_differs_from_row_order_with_gaps(report, panel):
    acf = report.tables["residual_acf"]
    assert list(acf["lag"]) == [1, 2, 3, 4, 5]
    assert (acf["n_pairs"].diff().dropna() <= 0).all()
    assert acf["acf"].abs().max() <= 1


def test_ar1_alternative_failure_is_reported_not_raised(panel, monkeypatch):
    real_fit = AllianceModel.fit

    def failing(self, p):
        if self.residual == "ar1":
            raise pa.RError("false convergence (8)")
        return real_fit(self, p)

    monkeypatch.setattr(AllianceModel, "fit", failing)
    table, notes, fits = _quiet(diagnostics.ar1_alternative, panel, AllianceModel(therapist="nested"))
    assert list(table["residual"]) == ["iid", "ar1"]
    assert "fit failed" in table["note"].iloc[1] and "false convergence" in table["note"].iloc[1]
    assert not table["preferred"].any()
    assert any("failed" in n for n in notes)
    assert len(fits) == 1


def test_therapist_choice(panel):
    assert _choose_therapist(panel, None)[0] == "nested"
    assert _choose_therapist(panel, "none")[0] == "none"
    data = pa.simulate(n_patients=40, n_therapists=8, seed=3).data
    no_t = pa.prepare(data, patient="patient", session="session", alliance="alliance", outcome="outcome")
    assert _choose_therapist(no_t, None)[0] == "none"
    # one patient switches therapist halfway: crossed; nlme cannot express it -> engine's error
    first = data["patient"].iloc[0]
    rows = data.index[data["patient"] == first]
    other = next(t for t in data["therapist"].unique() if t != data.loc[rows[0], "therapist"])
    data.loc[rows[len(rows) // 2:], "therapist"] = other
    crossed = pa.prepare(data, **COLUMNS)
    assert _choose_therapist(crossed, None)[0] == "crossed"
    with pytest.raises(pa.EngineCannotExpress):
        pa.analyze(crossed, leads=(1,), engine="nlme", progress=False)


def test_bad_arguments(panel):
    with pytest.raises(pa.PylmeError, match="lead"):
        pa.analyze(panel, leads=(4,), progress=False)
    with pytest.raises(pa.PylmeError, match="moderators"):
        pa.analyze(panel, moderators=["integrative"], progress=False)


def test_long_tables_are_shortened_in_documents_not_in_csv(report, tmp_path):
    long = pd.DataFrame({"patient": [f"P{i}" for i in range(250)], "slope": np.linspace(-1, 1, 250)})
    big = pa.Report(tables={**report.tables, "patient_slopes": long}, figures={}, notes=[])
    md = big.to_markdown()
    assert "first and last 5 of 250 rows" in md and "P100" not in md
    out = big.save(tmp_path / "big")
    assert len(pd.read_csv(out / "patient_slopes.csv")) == 250
