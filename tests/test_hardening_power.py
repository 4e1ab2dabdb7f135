"""power() refuses sizes it cannot finish before any seed or trial is made, naming
the limit (issue 20, "Hangs"). Each call runs in a child with a timeout: today's code
spent minutes making a billion seeds or simulating 1e8 patients."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def _power_in_child(arguments: str) -> str:
    code = textwrap.dedent(f"""
        import pylme_alliance as pa
        try:
            pa.power({arguments}, progress=False)
        except pa.PylmeError as exc:
            print("REFUSED", exc)
        else:
            print("RAN")
    """)
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


@pytest.mark.parametrize("arguments, limit", [
    ("n_patients=(40,), n_sims=10**9", "limit of 100,000 replicates per design point"),
    ("n_patients=(40, 60, 80, 100, 120, 140, 160, 180, 200, 220, 240), n_sims=100_000",
     "more than the limit of 1,000,000"),
    ("n_patients=(10**8,), n_sims=2", "limit of 100,000 patients"),
    ("n_patients=(90_000,), design={'max_sessions': 60}, n_sims=2", "limit of 3,000,000 rows"),
    ("n_patients=(40,), design={'n_therapists': range(10**12)}, n_sims=2", "limit of 10,000 design points"),
])
def test_power_refuses_sizes_beyond_its_limits_before_any_work(arguments, limit):
    out = _power_in_child(arguments)
    assert out.startswith("REFUSED") and limit in out, out
