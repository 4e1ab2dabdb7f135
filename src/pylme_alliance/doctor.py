"""Check the installation: Python, R, the R packages, and an rpy2 that fits this R.

Everything here works when rpy2 is broken or R is absent: R is asked through ``Rscript``
subprocesses and rpy2 is imported in a child process, never in this one.

>>> report = run_doctor()
>>> print(format_report(report))      # doctest: +SKIP
"""
from __future__ import annotations

import importlib.metadata
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

_TIMEOUT = 60

# Prints "<package>\t<version or MISSING>" per package; names arrive as arguments.
_R_PACKAGES_SCRIPT = (
    "for (p in commandArgs(trailingOnly = TRUE)) {"
    " v <- suppressWarnings(utils::packageDescription(p, fields = 'Version'));"
    " if (length(v) != 1L || is.na(v)) v <- 'MISSING';"
    " cat(p, '\\t', v, '\\n', sep = '') }"
)


class Check(NamedTuple):
    """One line of the report: what, whether it is fine, what was found, how to fix it."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


@dataclass
class DoctorReport:
    """All checks; ``ok`` is true only when every check passed."""

    checks: list[Check] = field(default_factory=list)
    r_version: tuple[int, int, int] | None = None
    r_home: str | None = None
    #: the pip commands (argument lists, for this Python) that fix rpy2; ``--fix`` runs them
    pip_plan: list[list[str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str, fix: str = "") -> None:
        self.checks.append(Check(name, ok, detail, "" if ok else fix))


def _requirements() -> dict:
    """The single source of R needs (``requirements.py``), read without importing the package."""
    return runpy.run_path(str(Path(__file__).with_name("requirements.py")))


def _run(cmd: list[str], timeout: float = _TIMEOUT) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None


# --- version comparison (packaging when available, else a tiny comparator) -----------------

def _version_key(text: str) -> tuple:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:4])


def _fits(requirement: str, version: str) -> bool:
    """Whether ``version`` satisfies the specifiers of a requirement like ``rpy2>=3.5,<3.6``."""
    spec = requirement.split(";")[0]
    spec = re.sub(r"^[A-Za-z0-9_.\-\[\]]+", "", spec).strip()
    for module in ("packaging.specifiers", "pip._vendor.packaging.specifiers"):
        try:
            mod = __import__(module, fromlist=["SpecifierSet"])
            return mod.SpecifierSet(spec).contains(version, prereleases=True)
        except ImportError:
            continue
        except Exception:  # an unparsable version: fall back to the comparator
            break
    have = _version_key(version)
    ops = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, "==": lambda a, b: a == b,
           "!=": lambda a, b: a != b, ">": lambda a, b: a > b, "<": lambda a, b: a < b}
    for clause in filter(None, (c.strip() for c in spec.split(","))):
        m = re.match(r"(>=|<=|==|!=|>|<)\s*(.+)", clause)
        if not m:
            continue
        want = _version_key(m.group(2))
        n = max(len(have), len(want))
        if not ops[m.group(1)](have + (0,) * (n - len(have)), want + (0,) * (n - len(want))):
            return False
    return True


def _r_version_at_least(have: str, minimum: str) -> bool:
    a, b = _version_key(have), _version_key(minimum)
    n = max(len(a), len(b))
    return a + (0,) * (n - len(a)) >= b + (0,) * (n - len(b))


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


# --- fix commands -----------------------------------------------------------------------------

def _in_conda() -> bool:
    prefix = os.environ.get("CONDA_PREFIX")
    rscript = shutil.which("Rscript") or ""
    return bool(prefix) and rscript.startswith(prefix)


def _sudo() -> str:
    return "" if hasattr(os, "geteuid") and os.geteuid() == 0 else "sudo "


def _r_fix(req: dict, packages: list[str], with_r: bool = False) -> str:
    """The install command for R (optionally) and the given R packages."""
    if _in_conda() or (not shutil.which("apt-get") and (shutil.which("conda") or shutil.which("mamba"))):
        names = (["r-base"] if with_r else []) + [req["CONDA_PACKAGES"][p] for p in packages]
        return "conda install -c conda-forge " + " ".join(names)
    if shutil.which("apt-get") or not shutil.which("Rscript"):
        names = (["r-base-core", "r-base-dev"] if with_r else []) + [req["DEBIAN_PACKAGES"][p] for p in packages]
        return f"{_sudo()}apt-get install -y --no-install-recommends " + " ".join(names)
    vec = ", ".join(f'"{p}"' for p in packages)
    return f"Rscript -e 'install.packages(c({vec}))'"


def _pip_plan(requirement: str, uninstall: list[str] | None = None, rebuild: bool = False) -> list[list[str]]:
    """The pip commands for *this* interpreter, as argument lists (what ``--fix`` runs)."""
    pip = [sys.executable, "-m", "pip"]
    flags = ["--force-reinstall", "--no-cache-dir"] if rebuild else []
    plan = [[*pip, "install", *flags, requirement]]
    if uninstall:
        plan.insert(0, [*pip, "uninstall", "-y", *uninstall])
    return plan


def _pip_fix(requirement: str, uninstall: list[str] | None = None, rebuild: bool = False) -> str:
    return " && ".join(shlex.join(cmd) for cmd in _pip_plan(requirement, uninstall, rebuild))


def _source_checkout() -> Path | None:
    """The source checkout this package runs from (``make setup`` works there), if any."""
    root = Path(__file__).resolve().parents[2]
    makefile = root / "Makefile"
    try:
        ok = (root / "pyproject.toml").is_file() and "setup:" in makefile.read_text(errors="replace")
    except OSError:
        return None
    return root if ok else None


# --- the checks -------------------------------------------------------------------------------

def _check_python(report: DoctorReport) -> None:
    v = sys.version_info
    report.add("python", v >= (3, 11), f"Python {v.major}.{v.minor}.{v.micro} at {sys.executable}",
               "install Python >= 3.11 (tested: 3.11 and 3.13)")


def _check_r(report: DoctorReport, req: dict) -> bool:
    rscript = shutil.which("Rscript")
    if rscript is None:
        report.add("R", False, "Rscript not found on PATH", _r_fix(req, list(req["R_PACKAGES"]), with_r=True))
        return False
    out = _run([rscript, "--version"])
    text = (out.stdout + out.stderr) if out else ""
    m = re.search(r"version (\d+)\.(\d+)\.(\d+)", text)
    if not m:
        report.add("R", False, f"{rscript} --version failed: {text.strip()[:200]}",
                   _r_fix(req, list(req["R_PACKAGES"]), with_r=True))
        return False
    report.r_version = tuple(int(g) for g in m.groups())  # type: ignore[assignment]
    r_bin = shutil.which("R")
    home = _run([r_bin, "RHOME"]) if r_bin else None
    if home is None or home.returncode != 0:
        home = _run([rscript, "-e", "cat(R.home())"])
    report.r_home = home.stdout.strip() if home and home.returncode == 0 else None
    report.add("R", True, f"R {'.'.join(map(str, report.r_version))} (R_HOME {report.r_home or 'unknown'})")
    return True


def _check_r_packages(report: DoctorReport, req: dict) -> None:
    optional = req.get("R_PACKAGES_OPTIONAL", {})
    names = [*req["R_PACKAGES"], *optional]
    out = _run([shutil.which("Rscript") or "Rscript", "--vanilla", "-e", _R_PACKAGES_SCRIPT, *names], timeout=120)
    found: dict[str, str] = {}
    if out and out.returncode == 0:
        for line in out.stdout.splitlines():
            if "\t" in line:
                name, version = line.split("\t", 1)
                found[name.strip()] = version.strip()
    bad = [n for n, m in req["R_PACKAGES"].items()
           if found.get(n, "MISSING") == "MISSING" or not _r_version_at_least(found[n], m)]
    fix = _r_fix(req, bad) if bad else ""  # one command for all of them
    for name, minimum in req["R_PACKAGES"].items():
        version = found.get(name, "MISSING")
        if version == "MISSING":
            report.add(f"R package {name}", False, "MISSING", fix)
        elif not _r_version_at_least(version, minimum):
            report.add(f"R package {name}", False, f"{version} (need >= {minimum})", fix)
        else:
            report.add(f"R package {name}", True, version)
    for name, (_minimum, purpose) in optional.items():
        version = found.get(name, "MISSING")
        state = version if version != "MISSING" else "not installed"
        # optional: never a failed check, but say what it would be for
        report.add(f"R package {name} (optional)", True, f"{state}; {purpose}")
    if found.get("glmmTMB", "MISSING") != "MISSING":
        _check_glmmtmb_build(report)


_TMB_SCRIPT = 'cat(as.character(glmmTMB:::.TMB.build.version), as.character(utils::packageVersion("TMB")))'


def glmmtmb_tmb_versions() -> tuple[str, str] | None:
    """(the TMB version glmmTMB was built with, the installed TMB version), asked of
    ``Rscript``; None when R, glmmTMB or the build record is not there."""
    out = _run([shutil.which("Rscript") or "Rscript", "--vanilla", "-e", _TMB_SCRIPT], timeout=120)
    parts = out.stdout.split() if out and out.returncode == 0 else []
    return (parts[0], parts[1]) if len(parts) == 2 else None


def _check_glmmtmb_build(report: DoctorReport) -> None:
    """glmmTMB compiled against another TMB than the installed one (Debian 13 ships glmmTMB
    1.1.10 built with TMB 1.9.16 beside TMB 1.9.17): its fits may fail. Advisory, not a
    failed check: lme4 and nlme, and many glmmTMB models, are unaffected."""
    versions = glmmtmb_tmb_versions()
    if versions is None:
        return
    built, installed = versions
    if built == installed:
        report.add("glmmTMB and TMB", True, f"glmmTMB built with the installed TMB {installed}")
        return
    report.add("glmmTMB and TMB", True,
               f"warning: glmmTMB was built with TMB {built} but TMB {installed} is installed; glmmTMB fits may "
               "fail here (a non-positive-definite Hessian, no log-likelihood) where lme4 fits cleanly. Fix: "
               "Rscript -e 'install.packages(\"glmmTMB\", type = \"source\")' (needs a compiler), or use "
               "engine='lme4'/'nlme'")


class _Rpy2Fit(NamedTuple):
    """What doctor knows about rpy2 against this R, without importing rpy2."""

    version: str | None       # rpy2's version, None when not installed
    detail: str               # "rpy2 3.6.9 (rpy2-rinterface 3.6.7)"
    requirement: str | None   # what this R needs; None when R's version is unknown
    problem: str              # why they do not fit ("" when they do, on paper)
    split: list[str]          # rpy2 3.6 split packages present


def _rpy2_fit(r_version: tuple[int, ...] | None, req: dict) -> _Rpy2Fit:
    version = _dist_version("rpy2")
    requirement = req["rpy2_requirement"](tuple(r_version[:2])) if r_version else None
    split = [n for n in req.get("RPY2_SPLIT_PACKAGES", ("rpy2-rinterface", "rpy2-robjects")) if _dist_version(n)]
    split_detail = ", ".join(f"{n} {_dist_version(n)}" for n in split)
    detail = f"rpy2 {version}" + (f" ({split_detail})" if split else "") if version else "rpy2 (not installed)"
    problem = ""
    if version is None:
        problem = "rpy2 is not installed in this Python"
    elif requirement is not None and r_version is not None:
        r_text = f"R {r_version[0]}.{r_version[1]}"
        new_r = ".".join(map(str, req.get("R_VERSION_FOR_NEW_RPY2", (4, 5))))
        why = f"({req.get('RPY2_FOR_NEW_R', 'rpy2>=3.6.7')} needs R >= {new_r}, older R needs the 3.5 series)"
        # From 3.6 on, the compiled part is rpy2-rinterface, whose version floats apart from
        # the rpy2 meta package's: both must fit (rpy2 3.6.5 pulls rpy2-rinterface 3.6.7).
        compiled = _dist_version("rpy2-rinterface") if split else None
        if not _fits(requirement, version):
            problem = f"{r_text} needs {requirement} {why}"
        elif compiled is not None and not _fits(requirement, compiled):
            problem = f"{r_text} needs {requirement} and rpy2-rinterface is {compiled} {why}"
        elif split and _fits(requirement, "3.5.17"):
            problem = f"rpy2 3.6's split packages left beside rpy2 {version} shadow its modules"
    return _Rpy2Fit(version, detail, requirement, problem, split)


def _rpy2_plan(fit: _Rpy2Fit, rebuild: bool = False) -> list[list[str]]:
    uninstall = ["rpy2", *fit.split] if fit.split else None
    if uninstall is None and fit.version and fit.requirement and not _fits(fit.requirement, fit.version):
        # 3.5 -> 3.6: the split packages write into the rpy2/ that 3.5 owns; remove it first
        uninstall = ["rpy2"]
    # a rebuild must not reuse pip's cached wheel (built against the old R): --no-cache-dir
    return _pip_plan(fit.requirement or "rpy2", uninstall=uninstall, rebuild=rebuild)


_PROBE = "import rpy2.rinterface as ri; ri.initr(); print('ok')"


def _probe_rpy2() -> tuple[bool, str]:
    """Import rpy2 and start R in a fresh child process: (worked, last line of its error).

    ``rinterface.initr()`` is the start-up both rpy2 series offer, so this asks the
    installation itself, independent of how the bridge starts R.
    """
    probe = _run([sys.executable, "-c", _PROBE], timeout=120)
    if probe is not None and probe.returncode == 0 and "ok" in probe.stdout:
        return True, ""
    err = (probe.stderr if probe else "could not run").strip().splitlines()
    return False, err[-1] if err else "unknown error"


def _check_rpy2(report: DoctorReport, req: dict) -> None:
    fit = _rpy2_fit(report.r_version, req)
    if fit.version is None:
        report.pip_plan = _rpy2_plan(fit)
        report.add("rpy2", False, "not installed", _pip_fix(fit.requirement or "rpy2"))
        return
    if fit.requirement is not None:
        if fit.problem:
            report.pip_plan = _rpy2_plan(fit)
            report.add("rpy2 fits R", False, f"{fit.detail}, but {fit.problem}",
                       _pip_fix(fit.requirement, uninstall=["rpy2", *fit.split] if fit.split else None))
        else:
            report.add("rpy2 fits R", True, f"{fit.detail} fits {fit.requirement}")
    # Does it actually load this R?  (catches "undefined symbol" and missing libR)
    loads, last = _probe_rpy2()
    if loads:
        report.add("rpy2 loads R", True, "import rpy2.rinterface and start R: ok")
    else:
        if not report.pip_plan:
            report.pip_plan = _rpy2_plan(fit, rebuild=True)
        fix = " && ".join(shlex.join(c) for c in report.pip_plan)
        report.add("rpy2 loads R", False, f"import failed: {last}", fix)


def explain_rpy2_failure(exc: BaseException, *, starting: bool = False) -> str:
    """One paragraph for a failed rpy2 load: what was found, why it fails, the fix.

    Used by the bridge's guarded import and start (``bridge/rload.py``); asks R for its
    version through ``Rscript``, never through rpy2. ``starting``: rpy2 imported fine and
    starting R failed; if rpy2 then starts R in a fresh process, the installation is not
    the problem and the paragraph says so instead of advising a reinstall.
    """
    req = _requirements()
    probe = DoctorReport()
    have_r = _check_r(probe, req)
    fit = _rpy2_fit(probe.r_version, req)
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    error = f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins.")
    error = f"{error}: {first}" if first else error
    if not have_r:
        r_fix = _r_fix(req, list(req["R_PACKAGES"]), with_r=True)
        return (f"rpy2 cannot start R: R was not found (no working Rscript on PATH; {fit.detail}). "
                f"Install R and the R packages with `{r_fix}`, then run `pylme-alliance doctor`. "
                f"(The error was {error}.)")
    r_text = f"R {'.'.join(map(str, probe.r_version))} at {probe.r_home or 'unknown R_HOME'}"
    if fit.problem:
        why = fit.problem
        cmd = " && ".join(shlex.join(c) for c in _rpy2_plan(fit))
    elif starting and fit.version is not None and _probe_rpy2()[0]:
        # The installation is fine: rpy2 starts this R in a fresh process. Reinstalling
        # would not help (rpy2 3.6 once failed here on pylme_alliance's own start-up call).
        return (f"pylme_alliance could not start R in this Python ({sys.executable}), although "
                f"{fit.detail} fits {r_text} and starts it in a fresh process (checked just now), "
                f"so rpy2 and R are installed correctly and reinstalling them will not help. "
                f"The problem is in pylme_alliance's start-up of R or in this process (R started "
                f"another way before, a changed R_HOME): try a fresh Python; if it persists, report "
                f"it with this message and the output of `pylme-alliance doctor`. (The error was {error}.)")
    else:
        why = (f"rpy2 {fit.version} should fit this R ({fit.requirement}) but does not load it, "
               "usually because it was compiled against another R: rebuild it against this one")
        cmd = " && ".join(shlex.join(c) for c in _rpy2_plan(fit, rebuild=True))
    return (f"rpy2 cannot be loaded in this Python ({sys.executable}): found {fit.detail} and {r_text}. "
            f"The problem: {why}. To fix it, run `{cmd}` (or `pylme-alliance doctor --fix`). "
            f"(The error was {error}.)")


def run_doctor() -> DoctorReport:
    """Run every check and return the report (never raises for a broken installation)."""
    report = DoctorReport()
    req = _requirements()
    _check_python(report)
    if _check_r(report, req):
        _check_r_packages(report, req)
    else:
        fix = _r_fix(req, list(req["R_PACKAGES"]), with_r=True)
        for name in req["R_PACKAGES"]:
            report.add(f"R package {name}", False, "MISSING (no R)", fix)
    _check_rpy2(report, req)
    return report


def format_report(report: DoctorReport) -> str:
    """A readable report: one line per check, then the commands that fix the problems."""
    lines = ["pylme-alliance doctor", ""]
    width = max((len(c.name) for c in report.checks), default=10)
    for c in report.checks:
        lines.append(f"  [{'ok' if c.ok else 'XX'}] {c.name:<{width}}  {c.detail}")
    fixes = []
    for c in report.checks:
        if not c.ok and c.fix and c.fix not in fixes:
            fixes.append(c.fix)
    lines.append("")
    if report.ok:
        lines.append("All good.")
    else:
        lines.append("Problems found. To fix, run:")
        lines.extend(f"  {f}" for f in fixes)
        if report.pip_plan:
            lines.append("(`pylme-alliance doctor --fix` runs the pip command for this Python.)")
        checkout = _source_checkout()
        if checkout is not None:  # only a source checkout has the Makefile
            lines.append(f"(or run `make setup` in {checkout}, which does all of this.)")
    return "\n".join(lines)


def apply_fix(report: DoctorReport, *, assume_yes: bool = False,
              ask: Callable[[str], str] = input) -> int:
    """Run the report's pip commands for this interpreter (``doctor --fix``).

    Asks before running unless ``assume_yes``; returns 0 when there was nothing to do
    or every command succeeded, else 1. R and its packages are not installed here
    (that needs the system's package manager): their commands are only printed.
    """
    if not report.pip_plan:
        print("doctor --fix: nothing that pip can fix"
              + ("." if report.ok else "; run the commands above for the rest."))
        return 0 if report.ok else 1
    shown = "\n".join(f"  {shlex.join(c)}" for c in report.pip_plan)
    if not assume_yes:
        try:
            answer = ask(f"Run these commands?\n{shown}\n[y/N] ")
        except EOFError:  # no terminal: never run without a yes
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("Not run. (Use --yes to run without asking.)")
            return 1
    for cmd in report.pip_plan:
        print(f"running: {shlex.join(cmd)}", flush=True)
        if subprocess.run(cmd).returncode != 0:
            print(f"failed: {shlex.join(cmd)}")
            return 1
    return 0


def main() -> int:
    report = run_doctor()
    print(format_report(report))
    return 0 if report.ok else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
