"""The report reads like a journal's results section (issue 21) and its Markdown is inert
(issue 20): one-screen summary, compact tables with a marker whose text is a footnote
once under the table, each estimand once in the glossary, statuses the design explains
not flagged, plain words in the prose, responsive HTML, a folded notebook view, integer
counts, the data described, hostile names escaped in Markdown running text."""
from __future__ import annotations

import re
import types
import warnings

import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text

import pylme_alliance as pa
from pylme_alliance.report import glossary, layout, render, status, wording
from pylme_alliance.report.describe import data_description
from pylme_alliance.report.report import Report

EXPECTED = ("singular (SD of the random (Intercept) over therapist:patient ~ 0, SD of the random (Intercept) over "
            "therapist ~ 0, expected with the decomposed outcome control: the patient's mean outcome, a fixed "
            "effect, carries the patients' and therapists' levels)")
REAL = "singular (correlation (Intercept).alliance_within over therapist:patient = +1.000)"
LINK = "[click](javascript:alert(1))"
IMAGE = "![t](http://evil.example/x.png)"


def _duration(statuses: list[str]) -> pd.DataFrame:
    rows = []
    for i, st in enumerate(statuses):
        for term in ("alliance_within", "alliance_between"):
            rows.append({"lead": 1 + i % 3, "effect": "total" if i < 3 else "direct", "term": term,
                         "estimate": -1.5 + i / 10, "conf_low": -2.5, "conf_high": -0.5, "p_value": 0.004,
                         "n": 2529.0, "n_patients": 460.0, "status": st,
                         "estimand": f"within-patient, total: the difference in the outcome {1 + i % 3} session(s) "
                                     "later when the patient's alliance is one point above the patient's own level"
                         if term == "alliance_within" else "between-patient, conditional change"})
    return pd.DataFrame(rows)


def _hand_report(**settings) -> Report:
    duration = _duration([EXPECTED, REAL, EXPECTED, EXPECTED, REAL, ""])
    effects = duration[duration["lead"] == 1].iloc[:2].copy()
    summary = pd.DataFrame({"item": ["patients", "therapists", "sessions kept"], "value": [522.0, 40.0, 4090.0]})
    return Report(tables={"data_summary": summary, "alliance_effects": effects, "duration": duration},
                  figures={}, notes=["a note"],
                  settings={"outcome_better": "lower", "outcome_name": "score", "main_status": EXPECTED, **settings})


# ------------------------------------------------------------------ statuses

def test_status_classification():
    assert status.real(EXPECTED) == "" and status.has_expected(EXPECTED)
    assert status.real(f"did not converge; {EXPECTED}") == "did not converge"
    assert status.real(REAL) == REAL and status.short(REAL) == "singular"
    assert status.short("ok") == "" and status.short(np.nan) == ""
    markers = status.Markers()
    assert markers.mark(EXPECTED) == "" and markers.mark(REAL) == "\u26a01" and markers.mark("did not converge") == \
        "\u26a02" and markers.mark(REAL) == "\u26a01"
    notes = markers.footnotes([REAL, EXPECTED, REAL, "did not converge"])
    assert len(notes) == 2 and notes[0].startswith("\u26a01:") and "+1.000" in notes[0]


def test_expected_status_is_not_flagged_real_one_is():
    expected = types.SimpleNamespace(settings={}, tables={"alliance_effects": pd.DataFrame({
        "term": ["alliance_within"], "lead": [1], "estimate": [-1.8], "conf_low": [-3.0], "conf_high": [-0.6],
        "p_value": [0.003], "status": [EXPECTED]})})
    assert "[fit" not in wording.headline(expected)[0]
    real = types.SimpleNamespace(settings={}, tables={"alliance_effects": expected.tables["alliance_effects"].assign(
        status=f"did not converge; {EXPECTED}")})
    assert "[fit did not converge]" in wording.headline(real)[0]
    assert wording._caution(EXPECTED) == "" and "did not converge" in wording._caution("did not converge")


# ------------------------------------------------------------------ compact tables, footnotes, glossary

def test_status_text_is_a_footnote_once_not_repeated_per_row():
    report = _hand_report()
    md, page = report.to_markdown(), report.to_html()
    for text in (md, page):
        results = text[:text.index("Glossary")]
        assert EXPECTED not in results  # expected by design: said once in the methods, in words
        assert text.count(status.EXPECTED_METHODS.split(";")[0].replace("'", "&#x27;") if text is page
                          else status.EXPECTED_METHODS.split(";")[0]) == 1
    table = md[md.index("### Duration: total effect by lead"):]
    table = table[:table.index("\n## ")]
    rows = [line for line in table.splitlines() if line.startswith("| total") or line.startswith("| direct")]
    assert len(rows) == 6 and sum("\u26a01" in r for r in rows) == 2  # the real status, marked
    assert "+1.000" not in "\n".join(rows)  # its text is not in the rows...
    assert table.count("+1.000") == 1  # ...but once, in the footnote under the table
    assert max(len(r) for r in rows) < 160


def test_glossary_has_each_estimand_once():
    report = _hand_report()
    md = report.to_markdown()
    entries = glossary.entries(report)
    definitions = [words for _, items in entries for _, words in items if not words.startswith("see ")]
    assert len(definitions) == len(set(definitions))
    for words in definitions:
        assert md.count(render.md_text(words)) == 1, words
    assert "k sessions later" in md and "2 session(s) later" not in md  # generalised over leads


def test_html_is_responsive_and_notebook_view_is_folded():
    report = _hand_report()
    page = report.to_html()
    assert '<meta name=\'viewport\' content=\'width=device-width, initial-scale=1\'>' in page
    assert "white-space: pre-wrap" in page and ".table-scroll { overflow-x: auto" in page
    assert page.count('<div class="table-scroll"><table') == page.count("<table")
    note = report._repr_html_()
    assert "<!DOCTYPE" not in note and note.count("<details>") >= 2
    summary = note[:note.index("<details>")]
    assert "Summary" in summary and "(a) Within patients" in summary  # the summary is open
    assert "<details><summary>Data</summary>" in note


def test_counts_stay_integers():
    report = _hand_report()
    for text in (report.to_html(), report._repr_html_(), report.to_markdown()):
        assert "522" in text and "522.0" not in text and "4090.0" not in text


# ------------------------------------------------------------------ Markdown escaping (issue 20)

def _live_links(md: str, stems: set[str]) -> list[str]:
    """Unescaped link/image targets that are not the report's own figure files."""
    found = re.findall(r"(?<!\\)\]\(([^)]*)\)", md)
    return [target for target in found if target not in {f"{s}.png" for s in stems}]


def test_markdown_running_text_is_inert():
    report = _hand_report(outcome_name=f"score {LINK}")
    hostile = Report(tables={**report.tables, "moderators": pd.DataFrame({
        "moderator": [IMAGE, IMAGE], "kind": ["interaction", "interaction"],
        "term": [f"alliance_within:{IMAGE}", f"alliance_between:{IMAGE}"], "estimate": [0.1, 0.2],
        "conf_low": [0.0, 0.1], "conf_high": [0.2, 0.3], "p_value": [0.01, 0.5], "p_adjusted": [0.02, 0.5],
        "n": [100.0, 100.0], "status": ["", ""]})},
        figures={}, notes=[f"Moderator {LINK} and {IMAGE}"], settings=report.settings,
        provenance={"versions": {}, "source": {"file": f"{IMAGE}.csv", "sha256": "ab"},
                    "arguments": {"moderators": [LINK]}, "command": ["pylme-alliance", LINK]})
    md = hostile.to_markdown()
    assert _live_links(md, set()) == []
    assert "javascript:alert" in md and "evil.example" in md  # shown, as text
    assert not re.search(r"(?<!\\)!\[", md.replace("\\!", ""))  # no image syntax left open
    assert "<" not in re.sub(r"&lt;|<\s*\.\d", "", md.split("```")[0]).replace("->", "")  # no raw HTML


def test_md_text_escapes_link_syntax():
    assert render.md_text(LINK) == "\\[click\\](javascript:alert(1))"
    assert render.md_text("<img src=x>") == "&lt;img src=x>"
    assert render.md_text("p < .001 -> ok") == "p < .001 -> ok"


# ------------------------------------------------------------------ the data, described

def test_data_description_shows_sentinels_and_sessions():
    data = pa.simulate(n_patients=30, n_therapists=6, seed=2).data
    data.loc[data.index[:3], "alliance"] = -99.0  # a sentinel code that must be visible
    data.loc[data.index[5], "alliance"] = np.nan
    panel = pa.prepare(data, patient="patient", session="session", alliance="alliance", outcome="outcome",
                       therapist="therapist", time="day", leads=(1,), moderators=["severity", "arm"])
    table = data_description(panel).set_index("variable")
    assert list(table.loc["alliance", ["role", "unit"]]) == ["alliance", "session"]
    assert table.loc["alliance", "min"] == -99.0 and table.loc["alliance", "missing"] >= 1
    assert table.loc["alliance", "n"] + table.loc["alliance", "missing"] == len(data)
    assert table.loc["severity", "unit"] == "patient" and table.loc["severity", "n"] == data["patient"].nunique()
    assert "none" in table.loc["arm", "levels"] or table.loc["arm", "levels"]
    assert table.loc["sessions per patient", "max"] == data.groupby("patient").size().max()
    rated = data.groupby("patient")["alliance"].count()
    assert table.loc["rated sessions per patient", "min"] == rated.min()
    assert table["n"].dtype == np.int64


# ------------------------------------------------------------------ one real analysis

@pytest.fixture(scope="module")
def real_report():
    data = pa.simulate(n_patients=50, seed=5).data
    panel = pa.prepare(data, patient="patient", session="session", alliance="alliance", outcome="outcome",
                       therapist="therapist", time="day", leads=(1, 2), moderators=["arm"], outcome_better="lower",
                       outcome_label="symptom score")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pa.analyze(panel, leads=(1, 2), moderators=["arm"], random_slope=True, progress=False)


JARGON = ("Nickell", "Mundlak", "BLUP", "Phi(", "lead(s)", "session(s)", "parts ran on none", "benchmarks/README.md",
          "sdcor", "isSingular", "beta/tau")


def test_prose_is_plain_and_has_the_summary_first(real_report):
    md = real_report.to_markdown()
    # the running text before the glossary (tables may use the words the glossary defines)
    prose = "\n".join(x for x in md[:md.index("## Glossary")].splitlines() if not x.startswith("|"))
    for word in JARGON:
        assert word not in prose, word
    assert "benchmarks/README.md" not in md  # not in the appendix either: the wheel does not ship it
    first = md[:md.index("## Data")]
    for start in ("(a) Within patients", "(a) Between patients", "(b) How long it lasts", "(c) Moderators",
                  "Heterogeneity"):
        line = next(x for x in first.splitlines() if x.startswith(f"- {start}"))
        assert any(w in line for w in ("95% CI", "not estimated", "not estimable", "none of", "cannot be assessed")), line
        assert re.search(r"p [=<]", line) or "none of" in line, line
    assert "n = " in first and "(Figure 1)" in first
    assert "the SD and share below" not in md
    assert {"alliance", "outcome"} <= set(real_report.tables["data_description"]["role"])


def test_tables_keep_everything_the_documents_compact(real_report):
    # the data keeps the full status and estimand on every row
    assert {"status", "estimand"} <= set(real_report.tables["duration"].columns)
    assert {"n", "n_patients"} <= set(real_report.tables["alliance_effects"].columns)
    md = real_report.to_markdown()
    table_lines = [line for line in md.splitlines() if line.startswith("| ")]
    assert max(len(line) for line in table_lines) < 400
    assert not any("expected with the decomposed" in line for line in table_lines)


def test_figures_keep_their_labels_inside(real_report):
    for name in ("duration", "duration_direct", "simple_slopes_arm"):
        fig = real_report.figures[name]
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        box = fig.bbox
        for ax in fig.axes:
            for label in (ax.yaxis.label, ax.xaxis.label, ax.title):
                extent = label.get_window_extent(renderer)
                assert extent.x0 >= -1 and extent.y0 >= -1 and extent.x1 <= box.x1 + 1 and extent.y1 <= box.y1 + 1, \
                    (name, label.get_text())
        if fig._suptitle is not None:  # the panel label does not run into the panel titles
            top = fig._suptitle.get_window_extent(renderer)
            assert all(top.y0 >= ax.title.get_window_extent(renderer).y1 - 1 for ax in fig.axes), name
        texts = [t.get_text() for t in fig.findobj(Text)]
        assert not any("expected with the decomposed" in t for t in texts)


def test_layout_sections_in_order(real_report):
    keys = [s.key for s in layout.sections(real_report)]
    assert keys[:3] == ["summary", "data", "methods"]
    assert keys.index("glossary") < keys.index("model") < keys.index("d") < keys.index("made")
