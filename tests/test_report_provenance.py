"""How a report was made (provenance), results.json and Report.load, readable headings."""
from __future__ import annotations

import hashlib
import subprocess
import sys
import warnings

import pandas as pd
import pytest

import pylme_alliance as pa
from pylme_alliance.cli import main
from pylme_alliance.report import provenance

COLUMNS = dict(patient="patient", session="session", alliance="alliance", outcome="outcome",
               therapist="therapist", time="day")
COLUMN_ARGS = ["--patient", "patient", "--session", "session", "--alliance", "alliance",
               "--outcome", "outcome", "--therapist", "therapist", "--time", "day"]


def _rscript_version(package: str) -> str:
    code = "cat(utils::packageDescription(commandArgs(TRUE)[1], fields = 'Version'))"
    return subprocess.run(["Rscript", "-e", code, package], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def panel():
    data = pa.simulate(n_patients=40, seed=3).data
    return pa.prepare(data, **COLUMNS, leads=(1, 2), moderators=["arm"])


@pytest.fixture(scope="module")
def report(panel, tmp_path_factory):
    source = tmp_path_factory.mktemp("data") / "trial <1>.csv"
    source.write_bytes(b"patient,session\n1,1\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pa.analyze(panel, leads=(1, 2), moderators=["arm"], random_slope=False, progress=False,
                          source=source, command=["pylme-alliance", "analyze", "x y.csv", "--leads", "1", "2"])


def test_provenance_record(report):
    made = report.provenance
    versions = made["versions"]
    assert versions["pylme_alliance"] == pa.__version__
    assert versions["python"] == ".".join(map(str, sys.version_info[:3]))
    # the versions R itself reports, not guesses
    for name in ("lme4", "nlme", "glmmTMB", "lmerTest", "emmeans", "pbkrtest"):
        assert versions[name] == _rscript_version(name)
    from importlib import metadata

    for name in ("rpy2", "statsmodels"):  # issue 21: the Python side that shapes the numbers
        assert versions[name] == metadata.version(name)
    line = next(x for x in provenance.lines(made) if x.startswith("Python "))
    assert f"lmerTest {versions['lmerTest']}" in line and f"rpy2 {versions['rpy2']}" in line
    r_version = subprocess.run(["Rscript", "-e", "cat(R.version$major, R.version$minor, sep='.')"],
                               capture_output=True, text=True, check=True).stdout
    assert versions["R"] == r_version
    assert made["source"] == {"file": "trial <1>.csv",
                              "sha256": hashlib.sha256(b"patient,session\n1,1\n").hexdigest()}
    assert made["arguments"] == {"leads": [1, 2], "moderators": ["arm"], "engine": "lme4", "residual": "iid",
                                 "therapist": None, "random_slope": False, "control_outcome": "decomposed",
                                 "prior_outcome": "auto", "progress": False,
                                 "checks": ["ar1"], "executor": "none (this process)",
                                 "reciprocal": True, "slope_draws": 199}
    assert made["command"][-3:] == ["--leads", "1", "2"]
    assert pd.Timestamp(made["date"]).tzinfo is not None


def test_documents_say_how_they_were_made(report):
    # issue 21: the documents open with the summary; how they were made is an appendix
    md = report.to_markdown()
    html = report.to_html()
    sha = report.provenance["source"]["sha256"]
    assert md.index("## Summary") < md.index("## How this report was made")
    head_md = md[md.index("## How this report was made"):]
    assert sha in head_md
    assert f"lme4 {report.provenance['versions']['lme4']}" in head_md
    assert "trial <1>.csv" in head_md
    assert "'x y.csv'" in head_md  # the command line, shell-quoted
    assert "random_slope=False" in head_md and "engine='lme4'" in head_md
    head_html = html[html.index("<h2>How this report was made</h2>"):]
    assert sha in head_html
    assert "trial &lt;1&gt;.csv" in head_html


def test_unreadable_source_is_said(tmp_path):
    made = provenance.collect(arguments={}, source=tmp_path / "gone.csv")
    assert made["source"] == {"file": "gone.csv", "sha256": None}
    assert any("unavailable" in line for line in provenance.lines(made))


def test_cli_records_input_and_command(tmp_path, monkeypatch):
    data = tmp_path / "trial.csv"
    pa.simulate(n_patients=40, seed=3).data.to_csv(data, index=False)
    argv = ["pylme-alliance", "analyze", str(data), *COLUMN_ARGS, "--leads", "1", "--out", str(tmp_path / "r")]
    monkeypatch.setattr(sys, "argv", argv)
    assert main(argv[1:]) == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert hashlib.sha256(data.read_bytes()).hexdigest() in md
    assert "Input file: trial.csv" in md
    assert "Command line: pylme-alliance analyze" in md


def test_results_json_round_trip(report, tmp_path):
    import json

    from pandas.testing import assert_frame_equal

    out = report.save(tmp_path / "r")
    document = json.loads((out / "results.json").read_text())  # strict JSON: no NaN literals
    assert document["provenance"]["source"]["sha256"] == report.provenance["source"]["sha256"]
    assert document["notes"] == report.notes and document["warnings"]
    loaded = pa_report().load(out)
    assert list(loaded.tables) == list(report.tables)
    for name, table in report.tables.items():
        assert_frame_equal(loaded.tables[name], table.reset_index(drop=True), check_exact=True, obj=name)
    # the figures come back as the PNGs save wrote, and a second save keeps them
    assert set(loaded.figures) == set(report.figures) and loaded.notes == report.notes
    stems = report.file_stems()["figures"]
    for name, data in loaded.figures.items():
        assert data == (out / f"{stems[name]}.png").read_bytes()
    again = loaded.save(tmp_path / "again")
    assert (again / "report.html").read_text().count("data:image/png;base64") == len(report.figures)
    assert all((again / f"{s}.png").read_bytes() == (out / f"{s}.png").read_bytes() for s in stems.values())
    assert loaded.settings["engine"] == report.settings["engine"]
    assert "How this report was made" in loaded.to_markdown()
    with pytest.raises(pa.PylmeError, match="overwrite"):
        report.save(out)  # results.json is one of the report's own files


def test_load_refuses_foreign_json(tmp_path):
    (tmp_path / "results.json").write_text('{"tables": {}}')
    with pytest.raises(pa.PylmeError, match="not written by Report.save"):
        pa_report().load(tmp_path)


def pa_report():
    from pylme_alliance.report.report import Report

    return Report


def test_headings_are_words(report):
    from pylme_alliance.report.render import heading

    assert heading("data_summary") == "Data summary"
    assert heading("simple_slopes_arm") == "Simple slopes by arm"
    md, html = report.to_markdown(), report.to_html()
    assert "### Data summary" in md and "### data_summary" not in md
    assert "Simple slopes by arm*" in md  # "*Figure 3. Simple slopes by arm*"
    assert "<h3>Data summary</h3>" in html and "<h3>data_summary</h3>" not in html
    assert "Simple slopes by arm</figcaption>" in html
