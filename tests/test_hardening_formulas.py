"""Formulas whose expansion is combinatorial are refused before anything expands them,
with the limit named (issue 20, "Hangs"). Each case runs in a child process with a
timeout, so a regression shows as a failure, not as a hung test run."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def run_bounded(code: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run ``code`` in a child Python with the package on the path; kill it after ``timeout``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=env)


PRELUDE = """
    import warnings
    import numpy as np, pandas as pd
    import pylme_alliance as pa
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(1)
    n = 200
    df = pd.DataFrame(rng.normal(size=(n, 22)), columns=[f"z{i}" for i in range(22)])
    df["y"] = rng.normal(size=n)
    df["x"] = rng.normal(size=n)
    df["g"] = np.repeat(np.arange(20), 10).astype(str)

    def refused(fn, *args, **kwargs):
        try:
            fn(*args, **kwargs)
        except pa.PylmeError as exc:
            print("REFUSED", str(exc).replace("\\n", " "))
        else:
            print("FITTED")
"""


def test_lmer_refuses_a_22_way_interaction_before_expanding_it():
    out = run_bounded(PRELUDE + """
    refused(pa.lmer, "y ~ " + "*".join(f"z{i}" for i in range(22)) + " + (1|g)", df)
    refused(pa.glmmtmb, "y ~ (" + "+".join(f"z{i}" for i in range(22)) + ")^22 + (1|g)", df)
    fit = pa.lmer("y ~ z0*z1*z2 + (1|g)", df)   # small interactions still fit
    print("TERMS", len(fit.fixef()))
    """)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert lines[0].startswith("REFUSED") and "4,194,30" in lines[0] and "limit of 2,000 terms" in lines[0]
    assert lines[1].startswith("REFUSED") and "limit of 2,000 terms" in lines[1]
    assert lines[2] == "TERMS 8"


def test_mixedlm_refuses_power_expansion_and_huge_constants():
    out = run_bounded(PRELUDE + """
    refused(pa.mixedlm, "y ~ (" + "+".join(f"z{i}" for i in range(22)) + ")**22", df, groups="g")
    refused(pa.mixedlm, "y ~ I(x + 9**9**9)", df, groups="g")
    refused(pa.mixedlm, "y ~ I(x ** 1000)", df, groups="g")
    fit = pa.mixedlm("y ~ I(x ** 2) + (z0 + z1)**2", df, groups="g")
    print("TERMS", len(fit.fixef()))
    """)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert lines[0].startswith("REFUSED") and "limit of 2,000 terms" in lines[0]
    assert lines[1].startswith("REFUSED") and "9**9**9" in lines[1] and "at most 100" in lines[1]
    assert lines[2].startswith("REFUSED") and "at most 100" in lines[2]
    assert lines[3] == "TERMS 5"


def test_terms_bound_is_exact_for_small_formulas():
    import ast

    from pylme_alliance.engines._sm_formula import _terms_bound

    def bound(text: str) -> float:
        return _terms_bound(ast.parse(text.replace(":", "@"), mode="eval").body)

    assert bound("a*b") == 3
    assert bound("(a+b+c)**2") == 6
    assert bound("a:b") == 1
    assert bound("x*x*x") <= 4  # one atom: at most a handful of terms, whatever the chain
