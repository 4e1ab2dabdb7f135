"""The bridge keeps the process alive: no reference leak, Ctrl-C works, children work,
and a broken rpy2 gives one paragraph that says how to fix it.

Most checks run in a child process: the failures they guard against kill or hang the
interpreter (none_dealloc abort, a fit that ignores Ctrl-C), and the environment and
import checks need an interpreter whose R has not started yet.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pylme_alliance as pa
from pylme_alliance import bridge

SRC = str(Path(pa.__file__).resolve().parents[1])
CLI = [sys.executable, "-c", "import sys; from pylme_alliance.cli import main; sys.exit(main())"]


def _child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([SRC, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def _run_child(code: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=_child_env(**env))


def _small_data(seed: int = 1, n_groups: int = 20, per_group: int = 8) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per_group)
    x = rng.normal(size=g.size)
    y = 1 + 0.5 * x + rng.normal(size=n_groups)[g] + rng.normal(size=g.size)
    return pd.DataFrame({"g": [f"p{i}" for i in g], "x": x, "y": y})


# ------------------------------------------------------------------ reference leak

def test_20000_round_trips_keep_none_alive():
    # rpy2 3.5's memoryview() dropped a reference to None per numeric column read:
    # ~6,000 reads here and the child aborted with "Fatal Python error: none_dealloc"
    out = _run_child("""
        import sys
        import numpy as np, pandas as pd
        from pylme_alliance import bridge
        frame = pd.DataFrame({"y": [1.5, np.nan], "n": [1, 2], "b": [True, False]})
        back = bridge.from_r(bridge.to_r(frame))
        before = sys.getrefcount(None)
        for _ in range(20_000):
            back = bridge.from_r(bridge.to_r(frame))
        after = sys.getrefcount(None)
        assert back["y"].iloc[0] == 1.5 and np.isnan(back["y"].iloc[1])
        assert back["n"].tolist() == [1, 2] and back["b"].tolist() == [True, False]
        print(before, after)
    """)
    assert out.returncode == 0, out.stderr[-2000:]
    before, after = map(int, out.stdout.split())
    assert after >= before - 50, (before, after)  # the old code fell by 60,000


def test_reading_r_vectors_keeps_none_in_process():
    frame = pd.DataFrame({"y": [1.0, 2.0, np.nan], "n": [1, 2, 3], "b": [True, False, True]})
    r_frame = bridge.to_r(frame)
    bridge.from_r(r_frame)
    before = sys.getrefcount(None)
    for _ in range(500):
        bridge.from_r(r_frame)
    assert sys.getrefcount(None) >= before - 50  # the old code: -1,500


def test_matrix_values_keep_their_shape():
    from pylme_alliance.bridge import convert

    bridge.private_env()  # R is up
    with bridge.lock:
        ri = convert.ri
        m = ri.baseenv["matrix"](ri.FloatSexpVector([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), nrow=2)
        values = convert._numeric_array(m, np.float64)
    np.testing.assert_array_equal(values, [[1.0, 3.0, 5.0], [2.0, 4.0, 6.0]])


# ------------------------------------------------------------------ Ctrl-C

_LONG_FIT = """
    import os, sys, time
    import numpy as np, pandas as pd
    import pylme_alliance as pa
    rng = np.random.default_rng(1)
    n = 60_000
    df = pd.DataFrame({"g": rng.integers(0, 2000, n).astype(str), "h": rng.integers(0, 300, n).astype(str),
                       "x": rng.normal(size=n)})
    df["y"] = df.x + rng.normal(size=n)
    small = df.iloc[:400]
    pa.lmer("y ~ x + (1|g)", data=small)   # R is up before the signal
    print("fitting", flush=True)
    try:
        # uncut, this takes minutes (104 s on a busy 2-core machine)
        pa.lmer("y ~ x + (1 + x|g) + (1 + x|h)", data=df)
        print("not interrupted", flush=True)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    again = pa.lmer("y ~ x + (1|g)", data=small)
    print("second fit", round(float(again.fixef()["x"]), 6), flush=True)
"""


def test_ctrl_c_interrupts_a_fit_and_r_stays_usable():
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(_LONG_FIT)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=_child_env())
    try:
        assert child.stdout.readline().strip() == "fitting", child.stderr.read()
        time.sleep(1.5)  # inside lmer's optimiser by now
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        line = child.stdout.readline().strip()
        waited = time.monotonic() - sent
        rest, err = child.communicate(timeout=120)
    finally:
        child.kill()
    assert line == "interrupted", (line, err[-2000:])
    assert waited < 15, waited  # about a second when idle; generous for a loaded machine
    assert rest.startswith("second fit 0.9"), (rest, err[-2000:])
    assert child.returncode == 0, err[-2000:]
    assert "Exception ignored" not in err


def test_handler_is_put_back_and_a_late_ctrl_c_does_not_hit_the_next_call():
    from pylme_alliance.bridge import convert
    from pylme_alliance.bridge.interrupt import RInterruptible

    data = _small_data()
    pa.lmer("y ~ x + (1|g)", data=data)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    rlib = convert.ri.openrlib.rlib
    with pytest.raises(KeyboardInterrupt):
        with RInterruptible(rlib):
            os.kill(os.getpid(), signal.SIGINT)  # arrives while R is not computing
            time.sleep(0.2)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert rlib.R_interrupts_pending == 0
    fit = pa.lmer("y ~ x + (1|g)", data=data)  # would be interrupted by a stale flag
    assert np.isfinite(fit.fixef()["x"])


def test_a_users_own_sigint_handler_is_kept_and_called():
    # rpy2's start-up replaced it with Python's default handler; so did each call
    out = _run_child("""
        import os, signal, time
        import pandas as pd
        import pylme_alliance as pa
        from pylme_alliance.bridge import convert
        from pylme_alliance.bridge.interrupt import RInterruptible
        seen = []
        def mine(signum, frame):
            seen.append(signum)
        signal.signal(signal.SIGINT, mine)
        data = pd.DataFrame({"g": list("aabbccdd"), "x": [1., 2, 3, 4, 5, 6, 7, 8], "y": [1., 3, 2, 5, 4, 6, 8, 7]})
        pa.lmer("y ~ x + (1|g)", data=data)   # starts R
        print(signal.getsignal(signal.SIGINT) is mine)
        try:
            with RInterruptible(convert.ri.openrlib.rlib):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.2)
            print("went on", [int(s) for s in seen])  # the handler did not raise: no interrupt
        except KeyboardInterrupt:
            print("KeyboardInterrupt", [int(s) for s in seen])
        def raising(signum, frame):
            raise RuntimeError("stop now")
        signal.signal(signal.SIGINT, raising)
        try:
            with RInterruptible(convert.ri.openrlib.rlib):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.2)
        except RuntimeError as exc:
            print("raised", exc, signal.getsignal(signal.SIGINT) is raising)
    """)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[:3] == ["True", "went on [2]", "raised stop now True"], out.stdout


# the CLI's exit 130 on a real SIGINT is tested in test_cli.py


# ------------------------------------------------------------------ child processes

def _import_ssl_and_fit(seed: int) -> float:
    import ssl  # noqa: F401 - failed with "undefined symbol _PyModule_Add" before

    import pylme_alliance as pa

    return float(pa.lmer("y ~ x + (1|g)", data=_small_data(seed)).fixef()["x"])


def test_children_work_after_r_started():
    pa.lmer("y ~ x + (1|g)", data=_small_data())
    assert bridge.is_started()
    out = subprocess.run([sys.executable, "-c", "import ssl"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-1000:]
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        slope = pool.submit(_import_ssl_and_fit, 1).result(timeout=300)
    assert slope == pytest.approx(float(pa.lmer("y ~ x + (1|g)", data=_small_data(1)).fixef()["x"]), rel=1e-8)


def test_start_restores_the_users_environment():
    out = _run_child("""
        import os, subprocess, sys
        import pylme_alliance as pa
        from pylme_alliance import bridge
        bridge.private_env()
        print(os.environ.get("LD_LIBRARY_PATH"), os.environ.get("EDITOR"), "R_HOME" in os.environ)
        child = subprocess.run(["sh", "-c", 'echo "$LD_LIBRARY_PATH|$EDITOR"'], capture_output=True, text=True)
        print(child.stdout.strip())
    """, LD_LIBRARY_PATH="/h3-user-dir", EDITOR="nano")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[:2] == ["/h3-user-dir nano True", "/h3-user-dir|nano"], out.stdout


# ------------------------------------------------------------------ guarded rpy2 import

def _r_version() -> tuple[int, int]:
    out = subprocess.run(["Rscript", "--vanilla", "-e", "cat(R.version$major, R.version$minor)"],
                         capture_output=True, text=True, timeout=60)
    major, minor = out.stdout.split()
    return int(major), int(minor.split(".")[0])


def _wrong_rpy2_for_this_r() -> dict:
    """The rpy2 series that does NOT fit this machine's R, and the advice doctor must give.

    R < 4.5 (Debian 12): rpy2 3.6.9 over rpy2-rinterface 3.6.7, which fails with
    "symbol 'R_getVar' not found"; the fix is the 3.5 series. R >= 4.5 (Debian 13): an
    rpy2 3.5.17 left from before the R upgrade; the fix is 3.6.7 or later.
    """
    from pylme_alliance.requirements import rpy2_requirement

    want = rpy2_requirement(_r_version())
    if want.startswith("rpy2>=3.6"):
        return {"dists": {"rpy2": "3.5.17"}, "shown": "rpy2 3.5.17", "want": want,
                # (+ the real rpy2-rinterface/-robjects, when their dist-info shows beside the fake)
                "uninstall": f"{sys.executable} -m pip uninstall -y rpy2"}
    return {"dists": {"rpy2": "3.6.9", "rpy2_rinterface": "3.6.7"},
            "shown": "rpy2 3.6.9 (rpy2-rinterface 3.6.7)", "want": want,
            "uninstall": f"{sys.executable} -m pip uninstall -y rpy2 rpy2-rinterface &&"}


def _fake_rpy2(root: Path, error: str) -> Path:
    """An rpy2 of the series that does not fit this R, whose import fails with ``error``."""
    pkg = root / "rpy2"
    pkg.mkdir()
    dists = _wrong_rpy2_for_this_r()["dists"]
    (pkg / "__init__.py").write_text(f"__version__ = '{dists['rpy2']}'\n")
    (pkg / "rinterface.py").write_text(error)
    for name, version in dists.items():
        info = root / f"{name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: {version}\n")
    return root


# the error rpy2-rinterface 3.6.7 raises on R 4.2 (cffi's compiled FFI error class)
_FFI_ERROR = ("import _cffi_backend\n"
              "raise _cffi_backend.FFI.error(\"symbol 'R_getVar' not found in library '/usr/lib/R/lib/libR.so'\")\n")


@pytest.mark.parametrize(("error", "shown"), [
    (_FFI_ERROR, "ffi.error: symbol 'R_getVar' not found"),
    ("raise OSError('libR.so: cannot open shared object file')\n", "OSError: libR.so: cannot open"),
    ("raise ImportError('undefined symbol: R_ParentEnv')\n", "ImportError: undefined symbol: R_ParentEnv"),
])
def test_a_broken_rpy2_gives_one_paragraph_with_the_fix(tmp_path, error, shown):
    fake = _fake_rpy2(tmp_path, error)
    wrong = _wrong_rpy2_for_this_r()
    out = _run_child("""
        import pandas as pd
        import pylme_alliance as pa
        from pylme_alliance.errors import PylmeError
        data = pd.DataFrame({"g": list("aabbcc"), "x": [1., 2, 3, 4, 5, 6], "y": [1., 3, 2, 5, 4, 6]})
        for attempt in range(2):   # the second try fails the same way, not half-loaded
            try:
                pa.lmer("y ~ x + (1|g)", data=data)
            except PylmeError as exc:
                print(str(exc))
    """, PYTHONPATH=os.pathsep.join([str(fake), SRC]))
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0] == lines[1], out.stdout
    text = lines[0]
    assert wrong["shown"] in text and "R 4." in text
    assert wrong["uninstall"] in text
    assert f"pip install '{wrong['want']}'" in text and "needs R >= 4.5" in text
    assert shown in text


def test_a_broken_rpy2_in_the_cli_is_one_line(tmp_path):
    fake = _fake_rpy2(tmp_path, _FFI_ERROR)
    out = subprocess.run([*CLI, "demo", "--out", str(tmp_path / "rep")], capture_output=True, text=True,
                         timeout=300, env=_child_env(PYTHONPATH=os.pathsep.join([str(fake), SRC])), cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr
    assert f"pip install '{_wrong_rpy2_for_this_r()['want']}'" in out.stderr


def test_every_bridge_entry_goes_through_the_guard(monkeypatch):
    from pylme_alliance.bridge import rload, session
    from pylme_alliance.errors import RpyLoadError

    monkeypatch.setattr(rload, "_ri", None)
    monkeypatch.setitem(sys.modules, "rpy2.rinterface", None)  # "import rpy2.rinterface" fails
    for entry in (rload.rinterface, lambda: session.call_raw("pylme_new_env")):
        with pytest.raises(RpyLoadError, match=r"To fix it, run `.*pip install"):
            entry()


# ------------------------------------------------------------------ text R cannot hold

@pytest.mark.parametrize("make", [
    lambda: pd.DataFrame({"site": pd.Series(["a", "\ud800b"], dtype=object)}),
    lambda: pd.DataFrame([[1.0]]).set_axis(pd.Index(["bad\udc80name"], dtype=object), axis=1),
], ids=["string", "column name"])
def test_lone_surrogates_are_refused_by_name(make):
    from pylme_alliance.errors import PylmeError

    with pytest.raises(PylmeError, match="not valid text"):
        bridge.to_r(make())
