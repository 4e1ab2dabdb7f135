"""Ctrl-C during long fits (issue 20, "Ctrl-C"): the fixed-effects rank check no longer
runs a dense qr() (20 s of LINPACK that never checks for Ctrl-C on a 12,000 x 1,500
design) and lme4's own copy of it is skipped; a user's SIGINT handler that does not
raise no longer aborts the fit."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pylme_alliance import bridge

SRC = Path(__file__).resolve().parents[1] / "src"

_WIDE = """
    import warnings
    warnings.simplefilter("ignore")
    import numpy as np, pandas as pd, pylme_alliance as pa
    rng = np.random.default_rng(1)
    n = 12000
    df = pd.DataFrame({"y": rng.normal(size=n), "x": rng.normal(size=n),
                       "f": [f"L{i:04d}" for i in rng.integers(0, 1500, n)],
                       "g": np.repeat(np.arange(400), 30).astype(str)})
    pa.lmer("y ~ x + (1|g)", df.iloc[:300])  # R and lme4 are up
    print("fitting", flush=True)
    try:
        pa.lmer("y ~ x + f + (1|g)", df)   # minutes uncut
        print("not interrupted", flush=True)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
"""


def _child(code: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    # a child of a background job inherits SIGINT ignored: give it the default
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def test_ctrl_c_during_the_rank_check_of_a_1500_level_factor():
    child = _child(_WIDE)
    try:
        assert child.stdout.readline().strip() == "fitting", child.stderr.read()
        time.sleep(3.0)  # in the rank check (before: ~20 s of CPU in LINPACK's qr)
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        line = child.stdout.readline().strip()
        waited = time.monotonic() - sent
        _, err = child.communicate(timeout=120)
    finally:
        child.kill()
    assert line == "interrupted", (line, err[-2000:])
    assert waited < 15, waited  # about a second when idle; generous for a loaded machine


def test_the_sparse_rank_check_finds_a_wide_factor_design_of_full_rank():
    rng = np.random.default_rng(2)
    n = 6000
    df = pd.DataFrame({"x": rng.normal(size=n), "f": [f"L{i:04d}" for i in rng.integers(0, 800, n)]})
    df["x2"] = 2 * df["x"]
    wide, _ = bridge.call_raw("as.formula", "~ x + f")
    frame, _ = bridge.call_raw("model.frame", wide, df)
    full, _ = bridge.call("pylme_sparse_full_rank", wide, frame)
    assert bool(np.asarray(full).ravel()[0]) is True
    deficient, _ = bridge.call_raw("as.formula", "~ x + f + x2")
    aliased, _ = bridge.call("pylme_check_fixed_rank", deficient, df)
    assert list(np.atleast_1d(aliased)) == ["x2"]  # named by the dense check, as before


def test_a_users_handler_that_does_not_raise_lets_the_fit_finish():
    out = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import os, signal, threading, warnings
        warnings.simplefilter("ignore")
        import numpy as np, pandas as pd, pylme_alliance as pa
        seen = []
        signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
        rng = np.random.default_rng(1)
        n = 4000
        df = pd.DataFrame({"y": rng.normal(size=n), "x": rng.normal(size=n),
                           "g": np.repeat(np.arange(400), 10).astype(str),
                           "h": rng.integers(0, 300, n).astype(str)})
        pa.lmer("y ~ x + (1|g)", df.iloc[:200])
        threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        fit = pa.lmer("y ~ x + (1 + x|g) + (1 + x|h)", df)
        print("finished", len(fit.fixef()), seen)
    """)], capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(SRC)},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "finished 2 [2]", (out.stdout, out.stderr[-2000:])
