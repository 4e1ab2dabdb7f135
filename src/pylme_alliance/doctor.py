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


def _pip_fix(requirement: str, uninstall: list[str] | None = None, rebuild: bool = False) -> str:
    py = shlex.quote(sys.executable)
    flags = "--force-reinstall --no-cache-dir " if rebuild else ""
    cmd = f"{py} -m pip install {flags}{shlex.quote(requirement)}"
    if uninstall:
        cmd = f"{py} -m pip uninstall -y {' '.join(uninstall)} && " + cmd
    return cmd


# --- the checks -------------------------------------------------------------------------------

def _check_python(report: DoctorReport) -> None:
    v = sys.version_info
    report.add("python", v >= (3, 10), f"Python {v.major}.{v.minor}.{v.micro} at {sys.executable}",
               "install Python >= 3.10")


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
    names = list(req["R_PACKAGES"])
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


def _check_rpy2(report: DoctorReport, req: dict) -> None:
    version = _dist_version("rpy2")
    if report.r_version is None:
        requirement = None
    else:
        requirement = req["rpy2_requirement"](report.r_version[:2])
    if version is None:
        report.add("rpy2", False, "not installed", _pip_fix(requirement or "rpy2"))
        return
    split = [n for n in req.get("RPY2_SPLIT_PACKAGES", ("rpy2-rinterface", "rpy2-robjects")) if _dist_version(n)]
    split_detail = ", ".join(f"{n} {_dist_version(n)}" for n in split)
    detail = f"rpy2 {version}" + (f" ({split_detail})" if split else "")
    if requirement is not None:
        if not _fits(requirement, version):
            report.add("rpy2 fits R", False, f"{detail}, but R {report.r_version[0]}.{report.r_version[1]} needs {requirement}",
                       _pip_fix(requirement, uninstall=["rpy2", *split] if split else None))
        elif split and _fits(requirement, "3.5.17"):
            # a 3.5 rpy2 with 3.6 split packages over it: their modules shadow 3.5's
            report.add("rpy2 fits R", False, f"{detail}: split packages left beside rpy2 {version}",
                       _pip_fix(requirement, uninstall=["rpy2", *split]))
        else:
            report.add("rpy2 fits R", True, f"{detail} fits {requirement}")
    # Does it actually load this R?  (catches "undefined symbol" and missing libR)
    probe = _run([sys.executable, "-c", "import rpy2.rinterface as ri; ri.initr(); print('ok')"], timeout=120)
    if probe is not None and probe.returncode == 0 and "ok" in probe.stdout:
        report.add("rpy2 loads R", True, "import rpy2.rinterface and start R: ok")
    else:
        err = (probe.stderr if probe else "could not run").strip().splitlines()
        last = err[-1] if err else "unknown error"
        fix = _pip_fix(requirement or "rpy2", uninstall=["rpy2", *split] if split else None, rebuild=not split)
        report.add("rpy2 loads R", False, f"import failed: {last}", fix)


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
        lines.append("(or run `make setup`, which does all of this.)")
    return "\n".join(lines)


def main() -> int:
    report = run_doctor()
    print(format_report(report))
    return 0 if report.ok else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
