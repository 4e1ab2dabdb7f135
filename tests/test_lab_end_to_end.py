"""Issue 20, done-when: a lab's SPSS file with dates, variable labels and user-missing
codes goes through read_data -> prepare(time=) -> analyze and the CLI without a hand
step; a Stata file with -99 codes gives a refusal or a warning before any fit."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

import pylme_alliance as pa
from pylme_alliance.cli import main
from pylme_alliance.errors import SentinelWarning
from pylme_alliance.readers import read_data

pyreadstat = pytest.importorskip("pyreadstat")

ARMS = {1: "control", 2: "feedback"}
START = dt.date(2022, 1, 10)


@pytest.fixture(scope="module")
def trial() -> pd.DataFrame:
    data = pa.simulate(n_patients=60, seed=7).data
    data = data.assign(arm=np.where(data["patient"].str[-1].astype(int) % 2 == 0, 1.0, 2.0))
    data["visit"] = [START + dt.timedelta(days=int(d)) for d in data["day"]]
    data["alliance"] = data["alliance"].where(np.arange(len(data)) % 10 != 3, -99.0)  # "not rated"
    return data[["patient", "session", "visit", "day", "alliance", "outcome", "arm"]]


@pytest.fixture(scope="module")
def sav_path(trial, tmp_path_factory):
    path = tmp_path_factory.mktemp("lab") / "trial.sav"
    pyreadstat.write_sav(
        trial.drop(columns="day"), str(path),
        column_labels={"alliance": "Working Alliance Inventory", "outcome": "OQ-45 total score"},
        missing_ranges={"alliance": [-99]}, variable_value_labels={"arm": ARMS})
    return path


def _fast_analyze(monkeypatch):
    """The CLI's analyze(), with the fits the test does not need left out (real fits)."""
    from pylme_alliance.report import analyze as analyze_module

    real = analyze_module.analyze
    seen = {}

    def fast(panel, **kwargs):
        seen["panel"] = panel
        seen["report"] = real(panel, **{**kwargs, "leads": (1,), "checks": (), "progress": False})
        return seen["report"]

    monkeypatch.setattr(analyze_module, "analyze", fast)
    return seen


def test_spss_file_goes_through_read_prepare_analyze_without_a_hand_step(trial, sav_path):
    data = read_data(sav_path)
    panel = pa.prepare(data, patient="patient", session="session", alliance="alliance", outcome="outcome",
                       time="visit", moderators=["arm"])
    # the user-missing -99s are missing, the dates are time, the labels name the measures
    assert panel.data["alliance"].min() > 0
    assert panel.dropped["reason"].value_counts()["missing alliance"] == int((trial["alliance"] == -99).sum())
    merged = panel.data[["patient", "session", "time_days"]].merge(trial[["patient", "session", "day"]])
    first_day = merged.groupby("patient")["day"].transform("min")
    np.testing.assert_allclose(merged["time_days"], merged["day"] - first_day)
    assert panel.outcome_name == "OQ-45 total score" and panel.alliance_name == "Working Alliance Inventory"
    assert panel.moderators["arm"].levels == ("control", "feedback")
    report = pa.analyze(panel, leads=(1,), checks=(), progress=False)
    within = report.summary_table().query("part == 'main' and term == 'alliance_within'")
    assert len(within) == 1 and np.isfinite(within["estimate"].iloc[0])
    assert report.settings["outcome_name"] == "OQ-45 total score"


def test_spss_file_goes_through_the_cli(sav_path, tmp_path, monkeypatch, capsys):
    seen = _fast_analyze(monkeypatch)
    out = tmp_path / "report"
    code = main(["analyze", str(sav_path), "--patient", "patient", "--session", "session", "--alliance", "alliance",
                 "--outcome", "outcome", "--time", "visit", "--leads", "1", "--alliance-range", "1", "7",
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert seen["panel"].roles["time"] == "visit" and seen["panel"].alliance_range == (1.0, 7.0)
    assert seen["panel"].outcome_name == "OQ-45 total score"
    assert (out / "report.html").exists()


@pytest.fixture(scope="module")
def dta_path(trial, tmp_path_factory):
    # Stata has no user-missing numbers: the lab's -99 is a plain value in the file
    path = tmp_path_factory.mktemp("lab") / "trial.dta"
    pyreadstat.write_dta(trial.drop(columns="visit"), str(path))
    return path


def test_stata_minus_99_is_refused_with_a_range_before_any_fit(dta_path, tmp_path, monkeypatch, capsys):
    seen = _fast_analyze(monkeypatch)
    columns = ["--patient", "patient", "--session", "session", "--alliance", "alliance", "--outcome", "outcome"]
    code = main(["analyze", str(dta_path), *columns, "--alliance-range", "1", "7", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 1 and not seen  # nothing fitted
    assert "alliance column 'alliance' has" in err and "outside --alliance-range 1 7" in err
    assert "--na-values=-99" in err
    code = main(["analyze", str(dta_path), *columns, "--alliance-range", "1", "7", "--na-values=-99",
                 "--leads", "1", "--out", str(tmp_path / "r2")])
    assert code == 0, capsys.readouterr().err
    assert seen["panel"].data["alliance"].min() > 0 and seen["panel"].na_values == {
        "alliance": (-99.0,), "outcome": (-99.0,)}


def test_stata_minus_99_without_bounds_warns_before_any_fit(dta_path):
    data = read_data(dta_path)
    with pytest.warns(SentinelWarning, match=r"alliance column 'alliance': -99 \(\d+ rows\)"):
        panel = pa.prepare(data, patient="patient", session="session", alliance="alliance", outcome="outcome")
    assert panel.describe().loc["alliance", "min"] == -99  # and the data table shows it
