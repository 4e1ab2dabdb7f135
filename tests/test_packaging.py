"""Packaging: environment.yml covers every dependency, and the wheel carries r/*.R and the CLI."""
from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

from pylme_alliance.requirements import CONDA_PACKAGES, R_PACKAGES

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    """Normalised distribution name of a requirement string ('dask[distributed]>=1' -> 'dask')."""
    return re.split(r"[\s<>=!~;\[]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _conda_dependencies(text: str) -> tuple[set[str], list[str]]:
    """(conda package names, pip entries) from environment.yml, with a tiny line parser (no pyyaml)."""
    conda, pip, section, in_pip = set(), [], None, False
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if not line.startswith(" "):
            section, in_pip = line.split(":", 1)[0].strip(), False
            continue
        if section != "dependencies":
            continue
        item = line.strip()
        if not item.startswith("-"):
            continue
        value = item[1:].strip().strip("'\"")
        indent = len(line) - len(line.lstrip())
        if value.rstrip(":") == "pip" and value.endswith(":"):
            in_pip, pip_indent = True, indent
            continue
        if in_pip and indent > pip_indent:
            pip.append(value)
        else:
            in_pip = False
            conda.add(_name(value))
    return conda, pip


@pytest.fixture(scope="module")
def pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def environment():
    return _conda_dependencies((ROOT / "environment.yml").read_text())


def test_environment_has_every_r_package(environment):
    conda, _ = environment
    assert "r-base" in conda
    for pkg in R_PACKAGES:
        assert CONDA_PACKAGES[pkg] in conda, f"environment.yml lacks {CONDA_PACKAGES[pkg]} (R package {pkg})"


def test_environment_has_every_python_dependency(environment, pyproject):
    conda, pip = environment
    wanted = pyproject["project"]["dependencies"] + pyproject["project"]["optional-dependencies"]["test"]
    missing = sorted({_name(r) for r in wanted} - conda)
    assert not missing, f"environment.yml lacks {missing}"
    assert "python" in conda and "pip" in conda
    assert "-e ." in pip, "environment.yml should install the package itself (pip: -e .)"


def test_parser_reads_pip_section():
    conda, pip = _conda_dependencies("name: x\ndependencies:\n  - r-base\n  - pip\n  - pip:\n      - -e .\n  - numpy>=1\n")
    assert conda == {"r-base", "pip", "numpy"} and pip == ["-e ."]


def test_entry_point_declared(pyproject):
    assert pyproject["project"]["scripts"]["pylme-alliance"] == "pylme_alliance.cli:main"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)]
    try:
        import hatchling  # noqa: F401  (installed by setup: build offline, fast)
        cmd.insert(5, "--no-build-isolation")
    except ImportError:
        pass
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (path,) = out.glob("pylme_alliance-*.whl")
    return path


def test_wheel_ships_r_sources(wheel):
    r_files = sorted(p.relative_to(ROOT / "r").as_posix() for p in (ROOT / "r").rglob("*") if p.is_file())
    assert any(f.endswith(".R") for f in r_files), "r/ holds no .R files"
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [f for f in r_files if f"pylme_alliance/r/{f}" not in names]
    assert not missing, f"not in the wheel: {missing}"


def test_wheel_declares_console_script(wheel):
    with zipfile.ZipFile(wheel) as zf:
        entry = next(n for n in zf.namelist() if n.endswith(".dist-info/entry_points.txt"))
        text = zf.read(entry).decode()
    assert re.search(r"^pylme-alliance\s*=\s*pylme_alliance\.cli:main\s*$", text, re.M), text
