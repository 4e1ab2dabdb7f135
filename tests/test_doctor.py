"""doctor and the CLI around it: works without importing rpy2, explains problems, exits 0 when fine."""
from __future__ import annotations

import subprocess
import sys

import pytest

from pylme_alliance import cli, doctor
from pylme_alliance.requirements import R_PACKAGES, rpy2_requirement


@pytest.fixture(scope="module")
def report():
    return doctor.run_doctor()


def test_report_is_healthy_after_setup(report):
    text = doctor.format_report(report)
    assert report.ok, text
    assert "All good." in text


def test_report_names_every_piece(report):
    names = [c.name for c in report.checks]
    for pkg in R_PACKAGES:
        assert f"R package {pkg}" in names
    assert {"python", "R", "rpy2 fits R", "rpy2 loads R"} <= set(names)
    assert report.r_version is not None and report.r_home
    for c in report.checks:
        assert len(c) == 4  # (name, ok, detail, fix)


def test_doctor_does_not_import_rpy2_in_process():
    code = "import sys; from pylme_alliance import doctor; doctor.run_doctor(); print('rpy2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_cli_doctor_exit_code(capsys):
    assert cli.main(["doctor"]) == 0
    assert "rpy2" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("req", "version", "fits"),
    [
        ("rpy2>=3.5.11,<3.6", "3.5.17", True),
        ("rpy2>=3.5.11,<3.6", "3.6.5", False),
        ("rpy2>=3.5.11,<3.6", "3.5.10", False),
        ("rpy2>=3.6.7", "3.6.7", True),
        ("rpy2>=3.6.7", "3.5.17", False),
    ],
)
def test_version_fit(req, version, fits):
    assert doctor._fits(req, version) is fits


def test_rpy2_requirement_follows_r():
    assert doctor._fits(rpy2_requirement((4, 5)), "3.6.7")
    assert not doctor._fits(rpy2_requirement((4, 2)), "3.6.7")


def test_missing_r_is_reported_with_a_fix(monkeypatch):
    monkeypatch.setattr(doctor.shutil, "which", lambda name: None)
    rep = doctor.run_doctor()
    assert not rep.ok
    bad = {c.name: c for c in rep.checks if not c.ok}
    assert "R" in bad and bad["R"].fix
    assert all(DEB in bad["R"].fix for DEB in ("r-cran-lme4", "r-cran-glmmtmb"))
    assert "Problems found" in doctor.format_report(rep)


def test_mismatched_rpy2_gets_a_pip_fix(monkeypatch, report):
    monkeypatch.setattr(doctor, "_dist_version", lambda name: {"rpy2": "3.6.9", "rpy2-rinterface": "3.6.7"}.get(name))
    rep = doctor.DoctorReport(r_version=(4, 2, 2))
    doctor._check_rpy2(rep, doctor._requirements())
    fit = next(c for c in rep.checks if c.name == "rpy2 fits R")
    assert not fit.ok
    assert "pip install" in fit.fix and rpy2_requirement((4, 2)) in fit.fix
    assert "uninstall" in fit.fix and "rpy2-rinterface" in fit.fix


def test_cli_help_is_light():
    code = "import sys; from pylme_alliance import cli; print(sorted({'pandas', 'rpy2'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_cli_usage_and_errors(capsys, monkeypatch):
    assert cli.main(["--help"]) == 0
    assert cli.main(["analyze"]) == 2  # missing required arguments
    capsys.readouterr()

    def boom(args):
        raise ValueError("column 'wai' not found\nin data")

    monkeypatch.setattr(cli, "_command", lambda name: boom)
    assert cli.main(["simulate", "--out", "x.csv"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_cli_analyze_arguments():
    args = cli.build_parser().parse_args(
        ["analyze", "d.csv", "--patient", "id", "--session", "s", "--alliance", "a", "--outcome", "y",
         "--moderator", "m1", "--moderator", "m2", "--within", "early", "--engine", "nlme",
         "--residual", "ar1", "--leads", "1", "2", "3", "--out", "rep"]
    )
    assert args.data == "d.csv" and args.moderator == ["m1", "m2"] and args.leads == [1, 2, 3]
    assert (args.within, args.engine, args.residual, args.out, args.therapist) == ("early", "nlme", "ar1", "rep", None)
    demo = cli.build_parser().parse_args(["demo"])
    assert demo.out == "demo-report"


# --- one guarded rpy2 import, --fix, advice outside a checkout -------------------------------

def _mismatched_report(monkeypatch):
    monkeypatch.setattr(doctor, "_dist_version", lambda name: {"rpy2": "3.6.9", "rpy2-rinterface": "3.6.7"}.get(name))
    monkeypatch.setattr(doctor, "_run", lambda cmd, timeout=60: subprocess.CompletedProcess(
        cmd, 1, "", "ffi.error: symbol 'R_getVar' not found"))
    rep = doctor.DoctorReport(r_version=(4, 2, 2))
    doctor._check_rpy2(rep, doctor._requirements())
    return rep


def test_mismatch_plan_is_pip_for_this_python(monkeypatch):
    rep = _mismatched_report(monkeypatch)
    assert rep.pip_plan == [
        [sys.executable, "-m", "pip", "uninstall", "-y", "rpy2", "rpy2-rinterface"],
        [sys.executable, "-m", "pip", "install", rpy2_requirement((4, 2))],
    ]
    assert "doctor --fix" in doctor.format_report(rep)


def test_fix_asks_first_and_runs_only_on_yes(monkeypatch, capsys):
    rep = _mismatched_report(monkeypatch)
    ran = []
    monkeypatch.setattr(doctor.subprocess, "run", lambda cmd, **kw: ran.append(cmd) or subprocess.CompletedProcess(cmd, 0))
    questions = []
    assert doctor.apply_fix(rep, ask=lambda q: questions.append(q) or "n") == 1
    assert ran == [] and "pip install" in questions[0]

    def no_terminal(question):
        raise EOFError

    assert doctor.apply_fix(rep, ask=no_terminal) == 1 and ran == []
    assert doctor.apply_fix(rep, ask=lambda q: "y") == 0 and ran == rep.pip_plan
    ran.clear()
    assert doctor.apply_fix(rep, assume_yes=True, ask=no_terminal) == 0 and ran == rep.pip_plan


def test_cli_doctor_fix_yes_runs_the_plan(monkeypatch, capsys):
    plan = [[sys.executable, "-c", "pass"]]
    monkeypatch.setattr(doctor, "run_doctor", lambda: doctor.DoctorReport(
        checks=[doctor.Check("rpy2 loads R", False, "import failed", "x")], pip_plan=plan))
    ran = []
    monkeypatch.setattr(doctor.subprocess, "run", lambda cmd, **kw: ran.append(cmd) or subprocess.CompletedProcess(cmd, 0))
    assert cli.main(["doctor", "--fix", "--yes"]) == 0
    assert ran == plan
    assert "running:" in capsys.readouterr().out


def test_make_setup_is_advised_only_from_a_checkout(monkeypatch):
    rep = doctor.DoctorReport(checks=[doctor.Check("R", False, "missing", "apt-get install r-base-core")])
    monkeypatch.setattr(doctor, "_source_checkout", lambda: None)
    assert "make setup" not in doctor.format_report(rep)
    monkeypatch.setattr(doctor, "_source_checkout", lambda: doctor.Path("/src/pylme"))
    assert "make setup` in /src/pylme" in doctor.format_report(rep)


def test_source_checkout_is_found_only_beside_a_makefile(tmp_path, monkeypatch):
    pkg = tmp_path / "site-packages" / "pylme_alliance"
    pkg.mkdir(parents=True)
    monkeypatch.setattr(doctor, "__file__", str(pkg / "doctor.py"))
    assert doctor._source_checkout() is None  # an installed wheel
    root = tmp_path / "checkout"
    (root / "src" / "pylme_alliance").mkdir(parents=True)
    (root / "pyproject.toml").write_text("")
    (root / "Makefile").write_text("setup:\n\ttrue\n")
    monkeypatch.setattr(doctor, "__file__", str(root / "src" / "pylme_alliance" / "doctor.py"))
    assert doctor._source_checkout() == root


def _pretend_r(monkeypatch, version):
    """explain_rpy2_failure sees R ``version`` whatever R this machine has (both lanes)."""
    def check_r(report, req):
        report.r_version, report.r_home = version, "/usr/lib/R"
        return True
    monkeypatch.setattr(doctor, "_check_r", check_r)


@pytest.mark.parametrize(("r_version", "installed", "want", "uninstall"), [
    # rpy2 3.6 on Debian 12's R 4.2: back to the 3.5 series, split packages removed first
    ((4, 2, 2), {"rpy2": "3.6.9", "rpy2-rinterface": "3.6.7"}, "rpy2>=3.5.11,<3.6", "rpy2 rpy2-rinterface"),
    # rpy2 3.5 left over after R was upgraded to 4.5 (Debian 13): up to 3.6, 3.5 removed first
    ((4, 5, 0), {"rpy2": "3.5.17"}, "rpy2>=3.6.7", "rpy2"),
    # an rpy2 3.6 meta package that pulled an rpy2-rinterface too old for R 4.5
    ((4, 5, 0), {"rpy2": "3.6.9", "rpy2-rinterface": "3.6.5"}, "rpy2>=3.6.7", "rpy2 rpy2-rinterface"),
])
def test_explanation_is_one_paragraph_with_versions_and_the_fix(monkeypatch, r_version, installed, want,
                                                                 uninstall):
    _pretend_r(monkeypatch, r_version)
    monkeypatch.setattr(doctor, "_dist_version", lambda name: installed.get(name))
    text = doctor.explain_rpy2_failure(RuntimeError("symbol 'R_getVar' not found"))
    assert "\n" not in text
    assert f"rpy2 {installed['rpy2']}" in text and f"R {'.'.join(map(str, r_version))}" in text
    assert f"needs {want}" in text and "needs R >= 4.5" in text
    assert f"{sys.executable} -m pip uninstall -y {uninstall} && " in text
    assert f"{sys.executable} -m pip install '{want}'" in text
    assert "R_getVar" in text


def test_a_working_installation_is_not_told_to_reinstall(monkeypatch):
    # rpy2 3.6 fits R 4.5 and starts it in a fresh process, but the bridge's own start-up
    # failed (rpy2 3.6 has no initr_simple): reinstalling rpy2 would not help, so no pip advice
    _pretend_r(monkeypatch, (4, 5, 0))
    monkeypatch.setattr(doctor, "_dist_version",
                        lambda name: {"rpy2": "3.6.9", "rpy2-rinterface": "3.6.7"}.get(name))
    monkeypatch.setattr(doctor, "_probe_rpy2", lambda: (True, ""))
    text = doctor.explain_rpy2_failure(AttributeError("module 'rpy2.rinterface' has no attribute 'initr_simple'"),
                                       starting=True)
    assert "\n" not in text and "pip install" not in text and "will not help" in text
    assert "rpy2 3.6.9 (rpy2-rinterface 3.6.7) fits R 4.5" in text and "initr_simple" in text


def test_a_broken_build_is_told_to_rebuild(monkeypatch):
    _pretend_r(monkeypatch, (4, 5, 0))
    monkeypatch.setattr(doctor, "_dist_version",
                        lambda name: {"rpy2": "3.6.9", "rpy2-rinterface": "3.6.7"}.get(name))
    monkeypatch.setattr(doctor, "_probe_rpy2", lambda: (False, "undefined symbol: R_ParentEnv"))
    text = doctor.explain_rpy2_failure(ImportError("undefined symbol: R_ParentEnv"), starting=True)
    assert "compiled against another R" in text
    assert "--force-reinstall --no-cache-dir 'rpy2>=3.6.7'" in text


def test_explanation_without_r_says_install_r(monkeypatch):
    monkeypatch.setattr(doctor.shutil, "which", lambda name: None)
    text = doctor.explain_rpy2_failure(OSError("libR.so: cannot open shared object file"))
    assert "R was not found" in text and "r-base-core" in text and "libR.so" in text


def test_optional_r_packages_are_listed_as_optional(report):
    from pylme_alliance.requirements import R_PACKAGES_OPTIONAL

    optional = {c.name: c for c in report.checks if c.name.endswith("(optional)")}
    assert set(optional) == {f"R package {name} (optional)" for name in R_PACKAGES_OPTIONAL}
    assert all(c.ok for c in optional.values())
    assert "golden" in optional["R package jsonlite (optional)"].detail
    assert not set(R_PACKAGES_OPTIONAL) & set(R_PACKAGES)
