"""Files written and read (issue 20, "Files" and the results.json part of "Hangs" and
"Raw errors"): umask-respecting modes, all-or-nothing replacement, symlinks on the way
refused, the CLI's --out checked before the work, Report.load bounded."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

import pylme_alliance as pa
from pylme_alliance.canvas import new_figure
from pylme_alliance.cli import main
from pylme_alliance.report import results_json

SRC = Path(__file__).resolve().parents[1] / "src"


def _report() -> pa.Report:
    fig = new_figure(2, 2)
    fig.subplots().plot([0, 1], [0, 1])
    table = pd.DataFrame({"lead": [1], "term": ["alliance_within"], "estimate": [-0.5], "conf_low": [-0.9],
                          "conf_high": [-0.1], "p_value": [0.01]})
    return pa.Report(tables={"duration": table}, figures={"duration": fig}, notes=["a note"])


@pytest.fixture(scope="module")
def power_result():
    return pa.power(n_patients=(40,), design={"n_therapists": 8}, n_sims=2, progress=False, seed=3)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ------------------------------------------------------------------- modes
def test_saved_files_follow_the_umask_and_keep_an_existing_mode(tmp_path, umask_022, power_result):
    out = _report().save(tmp_path / "rep")
    assert {_mode(p) for p in out.iterdir()} == {0o644}
    os.chmod(out / "report.md", 0o640)
    _report().save(out, overwrite=True)
    assert _mode(out / "report.md") == 0o640 and _mode(out / "report.html") == 0o644
    os.umask(0o077)
    power_dir = power_result.save(tmp_path / "power")
    assert {_mode(p) for p in power_dir.iterdir()} == {0o600}


# ------------------------------------------------------------ all or nothing
def test_overwrite_replaces_nothing_when_one_target_is_a_directory(tmp_path):
    out = _report().save(tmp_path / "rep")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (out / "report.html").unlink()
    (out / "report.html").mkdir()
    before.pop("report.html")
    with pytest.raises(pa.PylmeError, match="report.html.*is a directory"):
        _report().save(out, overwrite=True)
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == before  # no file replaced, no temporary file left
    assert len(list(out.iterdir())) == len(before) + 1


# ----------------------------------------------------------------- symlinks
def test_a_symlinked_output_directory_is_refused_for_reports_and_power(tmp_path, power_result):
    real = tmp_path / "real"
    (real / "x").mkdir(parents=True)
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    with pytest.raises(pa.PylmeError, match="symlink.*link"):
        _report().save(tmp_path / "link")
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "sub").symlink_to(real, target_is_directory=True)
    with pytest.raises(pa.PylmeError, match="goes through the symlink"):
        power_result.save(tmp_path / "base" / "sub" / "x")
    with pytest.raises(pa.PylmeError, match="goes through the symlink"):
        _report().save(tmp_path / "base" / "sub" / "new")
    assert list((real / "x").iterdir()) == [] and sorted(p.name for p in real.iterdir()) == ["x"]


# ---------------------------------------------------------------------- CLI
def test_cli_simulate_refuses_to_overwrite_and_to_follow_a_symlink(tmp_path, capsys):
    out = tmp_path / "sim.csv"
    assert main(["simulate", "--out", str(out), "--patients", "20", "--seed", "1"]) == 0
    first = out.read_bytes()
    assert main(["simulate", "--out", str(out), "--patients", "25", "--seed", "2"]) == 1
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == first
    victim = tmp_path / "victim.csv"
    victim.write_text("precious")
    link = tmp_path / "link.csv"
    link.symlink_to(victim)
    assert main(["simulate", "--out", str(link), "--patients", "20", "--seed", "1"]) == 1
    assert main(["simulate", "--out", str(link), "--patients", "20", "--seed", "1", "--overwrite"]) == 0
    assert victim.read_text() == "precious" and not link.is_symlink()


def test_cli_crosscheck_out_is_checked_before_the_fit(tmp_path, capsys, monkeypatch):
    data = tmp_path / "trial.csv"
    pa.simulate(n_patients=40, n_therapists=8, seed=1).data.to_csv(data, index=False)
    import pylme_alliance.analyses.crosscheck as crosscheck_module

    def no_fit(*args, **kwargs):
        raise AssertionError("the fit ran before --out was checked")

    monkeypatch.setattr(crosscheck_module, "crosscheck", no_fit)
    base = ["crosscheck", str(data), "--patient", "patient", "--session", "session", "--alliance",
            "alliance", "--outcome", "outcome"]
    (tmp_path / "real").mkdir()
    (tmp_path / "linked").symlink_to(tmp_path / "real", target_is_directory=True)
    assert main([*base, "--out", str(tmp_path / "linked" / "c.csv")]) == 1
    assert "symlink" in capsys.readouterr().err
    (tmp_path / "c.csv").write_text("mine")
    assert main([*base, "--out", str(tmp_path / "c.csv")]) == 1
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "missing" / "c.csv")]) == 1


def test_cli_oserrors_and_a_bad_sep_are_one_line(tmp_path, capsys, monkeypatch):
    data = tmp_path / "trial.csv"
    pa.simulate(n_patients=40, n_therapists=8, seed=1).data.to_csv(data, index=False)
    assert main(["crosscheck", str(data), "--sep", "", "--patient", "patient", "--session", "session",
                 "--alliance", "alliance", "--outcome", "outcome"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --sep must be one character") and "Traceback" not in err
    # a disk that is full while the CSV is written: an OSError, one line, exit code 2
    import pylme_alliance.outfiles as outfiles

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outfiles.os, "fchmod", full)
    assert main(["simulate", "--out", str(tmp_path / "s.csv"), "--patients", "20"]) == 2
    assert capsys.readouterr().err.strip() == "error: No space left on device"
    assert not (tmp_path / "s.csv").exists()


def test_cli_unreachable_scheduler_is_one_line(tmp_path):
    code = textwrap.dedent(f"""
        import dask
        dask.config.set({{"distributed.comm.timeouts.connect": "2s"}})
        from pylme_alliance.cli import main
        raise SystemExit(main(["power", "--patients", "40", "--sims", "2", "--scheduler",
                               "tcp://127.0.0.1:9", "--out", {str(tmp_path / 'p')!r}]))
    """)
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, env=env)
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr and out.stderr.startswith("error:")


# ------------------------------------------------------------------- load
def _load_in_child(directory: Path) -> subprocess.CompletedProcess:
    code = f"import pylme_alliance as pa\ntry:\n    pa.Report.load({str(directory)!r})\nexcept pa.PylmeError as e:\n" \
           f"    print('REFUSED', e)\n"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)


def test_load_refuses_a_fifo_and_a_link_to_dev_zero_without_blocking(tmp_path):
    fifo_dir = tmp_path / "fifo"
    fifo_dir.mkdir()
    os.mkfifo(fifo_dir / "results.json")
    out = _load_in_child(fifo_dir)
    assert out.stdout.startswith("REFUSED") and "not a regular file" in out.stdout, out.stderr[-1000:]
    zero_dir = tmp_path / "zero"
    zero_dir.mkdir()
    (zero_dir / "results.json").symlink_to("/dev/zero")
    out = _load_in_child(zero_dir)
    assert out.stdout.startswith("REFUSED") and "not a regular file" in out.stdout, out.stderr[-1000:]


def _tampered(tmp_path: Path, edit) -> Path:
    out = _report().save(tmp_path / f"rep{len(list(tmp_path.iterdir()))}")
    document = json.loads((out / "results.json").read_text())
    text = edit(document)
    (out / "results.json").write_text(text if isinstance(text, str) else json.dumps(document))
    return out


@pytest.mark.parametrize("edit, words", [
    (lambda d: d.__setitem__("tables", []), "'tables' is not an object"),
    (lambda d: d["tables"]["duration"].__setitem__("records", "x"), "not a table record"),
    (lambda d: d["tables"]["duration"].__setitem__("columns", [1, 2]), "not a table record"),
    (lambda d: d["tables"]["duration"]["categories"].__setitem__("term", ["a", "a"]), "cannot be read back"),
    (lambda d: d.__setitem__("notes", [{"a": 1}]), "'notes' must be a list of strings"),
    (lambda d: d.__setitem__("settings", "x"), "must be objects"),
    (lambda d: d.__setitem__("extra", json.loads("[" * 40 + "]" * 40)), "nested more than 32"),
    (lambda d: json.dumps(d)[:-1] + ', "deep": ' + "[" * 100000 + "]" * 100000 + "}", "nested"),
    (lambda d: d["tables"]["duration"]["records"][0].__setitem__("lead", 10**30), r"beyond 2\^63"),
    (lambda d: json.dumps(d)[:-1] + ', "big": ' + "9" * 5000 + "}", "cannot be read"),
])
def test_tampered_results_json_gives_a_sentence(tmp_path, edit, words):
    out = _tampered(tmp_path, edit)
    with pytest.raises(pa.PylmeError, match=words):
        pa.Report.load(out)


def test_load_refuses_a_file_larger_than_the_limit(tmp_path, monkeypatch):
    out = _report().save(tmp_path / "rep")
    monkeypatch.setattr(results_json, "MAX_BYTES", 100)
    with pytest.raises(pa.PylmeError, match="more than the 100 a report's results.json may have"):
        pa.Report.load(out)
