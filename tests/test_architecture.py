"""The architecture contracts (pyproject.toml, ``make lint``) hold on this tree and bite:
an upward import or a cycle planted in a copy of the package breaks them."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")
pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is in the test extra")


def _lint(src: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(src)}  # the copy shadows the installed package
    return subprocess.run([str(LINT), "--no-cache"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture()
def copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "src" / "pylme_alliance", tmp_path / "pylme_alliance",
                    ignore=shutil.ignore_patterns("__pycache__", "data"))
    return tmp_path


def test_the_tree_keeps_its_contracts(copy):
    result = _lint(copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize("module, planted, broken", [
    ("models/spec.py", "from ..report import wording", "pylme_alliance.models is not allowed to import "
                                                       "pylme_alliance.report"),
    ("panel/_leads.py", "from . import prepare", "No cycles are allowed in pylme_alliance.panel"),
    ("simulation/power_result.py", "from ..report import figures", "pylme_alliance.simulation is not "
                                                                   "allowed to import pylme_alliance.report"),
])
def test_a_planted_violation_breaks_them(copy, module, planted, broken):
    path = copy / "pylme_alliance" / module
    path.write_text(path.read_text() + f"\n{planted}  # planted\n")
    result = _lint(copy)
    assert result.returncode != 0
    assert broken in result.stdout, result.stdout
