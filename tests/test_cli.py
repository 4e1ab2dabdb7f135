"""The pylme-alliance command end to end through pylme_alliance.cli.main([...])."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pylme_alliance as pa
from pylme_alliance.cli import main

COLUMN_ARGS = ["--patient", "patient", "--session", "session", "--alliance", "alliance",
               "--outcome", "outcome", "--therapist", "therapist", "--time", "day"]


@pytest.fixture(scope="module")
def trial_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "trial.csv"
    pa.simulate(n_patients=80, seed=2).data.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def cli_run(trial_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    code = main(["analyze", str(trial_csv), *COLUMN_ARGS, "--moderator", "severity", "--moderator", "arm",
                 "--random-slope", "true", "--out", str(out)])
    return code, out


def _error_line(capsys):
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert "Traceback" not in captured.err
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    return lines[0]


def test_analyze_writes_report(cli_run):
    code, out = cli_run
    assert code == 0
    assert (out / "report.html").exists() and (out / "report.md").exists()
    for name in ("duration", "duration_direct", "patient_slopes", "residual_acf", "simple_slopes_severity",
                 "simple_slopes_arm"):
        assert (out / f"{name}.png").stat().st_size > 1000
    assert "data:image/png;base64" in (out / "report.html").read_text()


def test_analyze_tables_match_the_api(cli_run, trial_csv):
    code, out = cli_run
    assert code == 0
    data = pd.read_csv(trial_csv)
    panel = pa.prepare(data, patient="patient", session="session", alliance="alliance", outcome="outcome",
                       therapist="therapist", time="day", leads=(1, 2, 3), moderators=["severity", "arm"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = pa.analyze(panel, leads=(1, 2, 3), moderators=["severity", "arm"], random_slope=True,
                            progress=False)
    for name, table in report.tables.items():
        written = pd.read_csv(out / f"{name}.csv")
        assert list(written.columns) == [str(c) for c in table.columns], name
        assert len(written) == len(table), name
        for column in table.columns:
            expected = pd.to_numeric(table[column], errors="coerce")
            if expected.notna().sum() == 0 or table[column].dtype == bool:
                continue
            got = pd.to_numeric(written[str(column)], errors="coerce").to_numpy(dtype=float)
            assert np.allclose(got, expected.to_numpy(dtype=float), rtol=1e-8, atol=1e-8, equal_nan=True), \
                (name, column)


def test_analyze_prints_summary(trial_csv, tmp_path, capsys):
    code = main(["analyze", str(trial_csv), *COLUMN_ARGS, "--leads", "1", "2", "--out", str(tmp_path / "r")])
    assert code == 0
    printed = capsys.readouterr().out
    assert "alliance_within" in printed and "duration" in printed
    assert f"Report written to {(tmp_path / 'r').resolve() / 'report.html'}" in printed
    # each result once (issue 11): no repeated BH line, no duration row repeating the main fit
    assert printed.lower().count("significant after") <= 1
    rows = [line.split() for line in printed.splitlines() if line.lstrip().startswith("duration")]
    main_row = next(line.split() for line in printed.splitlines() if line.lstrip().startswith("main"))
    assert all(row[3:6] != main_row[2:5] for row in rows)


def test_missing_column_is_one_line_error(trial_csv, tmp_path, capsys):
    args = ["analyze", str(trial_csv), *COLUMN_ARGS, "--out", str(tmp_path / "r")]
    args[args.index("alliance", args.index("--alliance"))] = "wai_total"
    assert main(args) == 1
    assert "wai_total" in _error_line(capsys)
    assert not (tmp_path / "r" / "report.html").exists()


def test_duplicate_sessions_is_one_line_error(trial_csv, tmp_path, capsys):
    data = pd.read_csv(trial_csv)
    path = tmp_path / "dups.csv"
    pd.concat([data, data.iloc[[3]]]).to_csv(path, index=False)
    assert main(["analyze", str(path), *COLUMN_ARGS, "--out", str(tmp_path / "r")]) == 1
    _error_line(capsys)


def test_missing_file_is_one_line_error(tmp_path, capsys):
    assert main(["analyze", str(tmp_path / "nope.csv"), *COLUMN_ARGS, "--out", str(tmp_path / "r")]) == 1
    assert "nope.csv" in _error_line(capsys)


def test_simulate_writes_csv(tmp_path, capsys):
    path = tmp_path / "sim.csv"
    assert main(["simulate", "--out", str(path), "--patients", "25", "--seed", "4"]) == 0
    data = pd.read_csv(path)
    assert data["patient"].nunique() == 25
    assert "Wrote" in capsys.readouterr().out
    big = tmp_path / "big.csv"
    assert main(["simulate", "--out", str(big), "--patients", "200", "--seed", "4"]) == 0
    assert pd.read_csv(big)["therapist"].nunique() == 40
    assert {"patient", "session", "alliance", "outcome"} <= set(data.columns)
    expected = pa.simulate(n_patients=25, n_therapists=5, seed=4).data
    assert np.allclose(data["outcome"], expected["outcome"])


def test_demo(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"Report written to {out.resolve() / 'report.html'}" in printed
    assert (out / "report.html").exists()
    for name in ("severity", "n_sessions", "integrative", "arm"):
        assert (out / f"simple_slopes_{name}.png").exists()


def test_read_data_by_extension(trial_csv, tmp_path):
    from pylme_alliance.cli_commands import read_data

    data = pd.read_csv(trial_csv).head(50)
    data.to_parquet(tmp_path / "t.parquet")
    data.to_excel(tmp_path / "t.xlsx", index=False)
    for name in ("t.parquet", "t.xlsx"):
        back = read_data(tmp_path / name)
        assert np.allclose(back["outcome"], data["outcome"]) and list(back.columns) == list(data.columns)
    with pytest.raises(FileNotFoundError):
        read_data(tmp_path / "missing.csv")


# ------------------------------------------------------------ output checked before the work

@pytest.fixture
def no_work(monkeypatch):
    """Record any attempt to read data or fit a model."""
    from pylme_alliance import cli_commands
    from pylme_alliance.models.model import AllianceModel

    calls = []
    monkeypatch.setattr(AllianceModel, "fit", lambda self, panel: calls.append("fit"))
    real_read = cli_commands.read_data
    monkeypatch.setattr(cli_commands, "read_data", lambda *a, **k: (calls.append("read"), real_read(*a, **k))[1])
    return calls


def test_bad_out_fails_before_reading_or_fitting(trial_csv, tmp_path, capsys, no_work):
    a_file = tmp_path / "file.txt"
    a_file.write_text("mine")
    for out, expected in ((a_file, "not a directory"), (a_file / "sub", "which is a file"),
                          (Path("/proc/pylme-cli-test/rep"), "cannot write")):
        assert main(["analyze", str(trial_csv), *COLUMN_ARGS, "--out", str(out)]) == 1
        assert expected in _error_line(capsys)
    assert no_work == []
    assert a_file.read_text() == "mine"


def test_existing_report_needs_overwrite(trial_csv, tmp_path, capsys, no_work, monkeypatch):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "report.html").write_text("an earlier report")
    assert main(["analyze", str(trial_csv), *COLUMN_ARGS, "--out", str(out)]) == 1
    line = _error_line(capsys)
    assert "report.html" in line and "--overwrite" in line
    assert no_work == [] and (out / "report.html").read_text() == "an earlier report"
    # with --overwrite the work runs and the report's own files are replaced
    from pylme_alliance.report import analyze as analyze_module

    monkeypatch.setattr(analyze_module, "analyze", lambda *a, **k: _tiny_report())
    assert main(["analyze", str(trial_csv), *COLUMN_ARGS, "--out", str(out), "--overwrite"]) == 0
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")


def _tiny_report():
    table = pd.DataFrame({"lead": [1], "term": ["alliance_within"], "estimate": [-0.5], "conf_low": [-0.9],
                          "conf_high": [-0.1], "p_value": [0.01]})
    return pa.Report(tables={"duration": table}, figures={}, notes=[])


def test_ctrl_c_exits_130_and_writes_nothing(trial_csv, tmp_path, capsys, monkeypatch):
    from pylme_alliance.report import analyze as analyze_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(analyze_module, "analyze", interrupted)
    out = tmp_path / "rep"
    assert main(["analyze", str(trial_csv), *COLUMN_ARGS, "--out", str(out)]) == 130
    assert not out.exists()
    # interrupted while the files are being written: no partial report either
    from pylme_alliance import outfiles

    monkeypatch.setattr(analyze_module, "analyze", lambda *a, **k: _tiny_report())
    monkeypatch.setattr(outfiles.os, "replace", interrupted)
    assert main(["analyze", str(trial_csv), *COLUMN_ARGS, "--out", str(out)]) == 130
    assert not out.exists()


def test_moderator_with_slash_in_its_name(trial_csv, tmp_path, capsys):
    data = pd.read_csv(trial_csv)
    data["cost/week"] = data["severity"]
    path = tmp_path / "slash.csv"
    data.to_csv(path, index=False)
    out = tmp_path / "rep"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["analyze", str(path), *COLUMN_ARGS, "--leads", "1", "--moderator", "cost/week",
                     "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert (out / "simple_slopes_cost_week.png").stat().st_size > 1000
    assert not (out / "simple_slopes_cost").exists()
    assert "Simple slopes by cost/week" in (out / "report.md").read_text()  # the name, in words


def test_real_sigint_during_the_fits_exits_130_without_a_report(tmp_path):
    """A real SIGINT while R is fitting: the CLI exits 130 and no report file exists."""
    import signal
    import subprocess
    import sys

    data_path = tmp_path / "big.csv"
    pa.simulate(n_patients=300, seed=5).data.to_csv(data_path, index=False)
    out = tmp_path / "rep"
    script = (
        "import sys, warnings\n"
        "warnings.simplefilter('ignore')\n"
        "import pylme_alliance as pa\n"
        "from pylme_alliance.cli import main\n"
        "pa.lmer('y ~ x + (1 | g)', pa.simulate(n_patients=40, seed=1).data.rename("
        "columns={'outcome': 'y', 'alliance': 'x', 'patient': 'g'}))  # R is up\n"
        "print('ready', flush=True)\n"
        f"sys.exit(main(['analyze', {str(data_path)!r}, *{COLUMN_ARGS!r}, '--moderator', 'severity',"
        f" '--moderator', 'arm', '--out', {str(out)!r}]))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        ready = proc.stdout.readline().strip()
        if ready != "ready":
            proc.wait(timeout=60)
            raise AssertionError(proc.stderr.read())
        import time

        time.sleep(2.0)  # into analyze()'s fits
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert not out.exists() or not any(out.iterdir())


def test_outcome_direction_and_random_slope_options_reach_the_analysis(trial_csv, tmp_path, monkeypatch):
    from pylme_alliance.report import analyze as analyze_module

    seen = {}

    def capture(panel, **kwargs):
        seen.update(kwargs, panel=panel)
        return _tiny_report()

    monkeypatch.setattr(analyze_module, "analyze", capture)
    assert main(["analyze", str(trial_csv), *COLUMN_ARGS, "--out", str(tmp_path / "r"), "--outcome-better",
                 "higher", "--outcome-label", "wellbeing", "--random-slope", "false", "--leads", "0", "1"]) == 0
    assert seen["panel"].outcome_better == "higher" and seen["panel"].outcome_name == "wellbeing"
    assert seen["random_slope"] == "false" and seen["leads"] == (0, 1)
    assert main(["analyze", str(trial_csv), *COLUMN_ARGS, "--out", str(tmp_path / "r2")]) == 0
    assert seen["panel"].outcome_better is None and seen["random_slope"] == "auto"
    assert seen["control_outcome"] == "decomposed" and seen["prior_outcome"] == "auto"
    assert main(["analyze", str(trial_csv), *COLUMN_ARGS, "--out", str(tmp_path / "r4"),
                 "--control-outcome", "none", "--prior-outcome", "false"]) == 0
    assert seen["control_outcome"] == "none" and seen["prior_outcome"] == "false"
    assert main(["analyze", str(trial_csv), *COLUMN_ARGS, "--out", str(tmp_path / "r3"),
                 "--outcome-better", "sideways"]) == 2


def test_moderators_gets_did_you_mean(tmp_path, capsys):
    code = main(["analyze", str(tmp_path / "x.csv"), "--patient", "p", "--session", "s", "--alliance", "a",
                 "--outcome", "o", "--out", str(tmp_path / "out"), "--moderators", "severity"])
    assert code == 2
    assert "unrecognized arguments: --moderators severity (did you mean --moderator?)" in capsys.readouterr().err


def test_warnings_print_as_one_plain_line_in_cli_words(capsys):
    from pylme_alliance.cli import _plain_warnings, build_parser
    from pylme_alliance.models.design import short_series

    class Short:  # a panel whose median patient has 3 sessions
        within = "person_mean"

        def median_sessions(self):
            return 3.0

    text = short_series(Short())
    assert "within='early'" in text  # the library's words ...
    parser = build_parser()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = _plain_warnings(parser, "analyze")
        warnings.warn(text, UserWarning)
    err = capsys.readouterr().err
    # ... the command's words: one line, no file name or source line
    assert err.count("\n") == 1 and err.startswith("warning: ")
    assert "Consider --within early, which" in err and "prepare(" not in err and ".py" not in err


def test_summary_lists_skipped_leads(capsys):
    from pylme_alliance.cli_commands import _print_summary

    class Finished:  # what _print_summary reads of a Report
        notes = ["Lead 3 skipped: 30 of 40 patients have fewer than 2 sessions with the outcome 3 session(s) later."]
        tables: dict = {}

        def summary_table(self):
            return pd.DataFrame()

        def significant_moderators(self):
            return []

        def __str__(self):
            return "headline"

    _print_summary(Finished())
    assert "Lead 3 skipped: 30 of 40 patients" in capsys.readouterr().out
