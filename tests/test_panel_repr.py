"""Notebook display of AlliancePanel and Report (issue 11, Jupyter)."""
import pandas as pd

import pylme_alliance as pa
from pylme_alliance.report.report import Report


def _panel():
    sim = pa.simulate(n_patients=60, seed=1)
    data = sim.data if hasattr(sim, "data") else sim
    return pa.prepare(data, patient="patient", session="session", alliance="alliance", outcome="outcome")


def test_panel_html_shows_escaped_summary():
    panel = _panel()
    out = panel._repr_html_()
    assert "<table" in out
    assert "sessions kept" in out
    assert "AlliancePanel:" in out
    assert len(repr(panel).splitlines()) < 10  # short, not a dataclass dump


def test_report_html_escapes_and_has_tables():
    report = Report(tables={"data_summary": pd.DataFrame({"value": [1.0]}, index=["<script>x</script>"])},
                    figures={})
    out = report._repr_html_()
    assert "<table" in out
    assert "<script>x</script>" not in out
