"""Every difference between the rpy2 3.5 and 3.6 series, and nothing else.

The package supports both series (3.5 for R < 4.5, 3.6 for R >= 4.5; see
``requirements.py``). Nothing outside this module asks which one is installed: the
rest of the bridge calls the functions below, which behave the same on both.

What differs, and what each function here does about it:

start-up (:func:`start_embedded_r`)
    3.5 has ``rinterface.initr_simple()``: it starts R without first running
    ``Rscript`` to read R's environment variables. 3.6 removed it; its one public
    start is ``rinterface.initr()``, which runs ``Rscript`` once and puts R's
    variables (``LD_LIBRARY_PATH`` with R's ``ldpaths``, ``EDITOR``, ...) into
    ``os.environ``, plus ``RPY2_PY_SESSION_INITIALIZED``. Both set SIGINT to Python's
    default handler. :func:`start_embedded_r` starts R the way each series offers and
    then puts back the SIGINT handler and every non-``R_*`` variable (see
    :func:`restore_environment`), so children started afterwards (subprocess, spawn
    pools, Dask workers) see the user's environment on both series.
numeric data (:func:`vector_bytes`)
    ``vector.memoryview()`` dropped a reference to Python's ``None`` per call in 3.5
    (its C helper ``memoryview_swapstrides`` returns ``None`` without a reference;
    ``Fatal Python error: none_dealloc`` after ~20,000 reads). 3.6 keeps that helper.
    Both expose a vector's data pointer (``_R_GET_PTR``) and ``bufferprotocol.getshape``,
    so we read through a plain cffi buffer on both and never call ``memoryview()``.
interrupts (:func:`r_interrupt_flag`)
    Both series expose R's C global ``R_interrupts_pending`` on ``openrlib.rlib`` (API
    and ABI mode alike); :mod:`.interrupt` sets it from a Python signal handler.
warnings
    Nothing differs that we depend on: R warnings and messages are caught in R
    (``pylme_call`` in ``r/bridge.R``, withCallingHandlers), never through rpy2's
    console callbacks, whose deferred-warning printing changed between the series.
"""
from __future__ import annotations

import os
import signal
import threading
from types import ModuleType
from typing import Any, NamedTuple

#: Environment variables R's start-up may set that stay set: R reads its own ``R_*``
#: variables at run time (``R_HOME``, ``R_SESSION_TMPDIR``, ``R_LIBS_*``, ...), and they
#: mean nothing to other programs.
_R_OWN_PREFIXES = ("R_", "_R_")


class RBuffer(NamedTuple):
    """The raw bytes of an R atomic vector (valid while the vector lives) and its dim."""

    data: Any
    shape: tuple[int, ...]


def series(ri: ModuleType) -> str:
    """``"3.5"`` or ``"3.6"``: which rpy2 API series ``rpy2.rinterface`` is.

    Told by what the module offers (the self-contained 3.5 series has ``initr_simple``),
    not by version strings: the 3.6 meta package ``rpy2`` and the ``rpy2-rinterface``
    it pulls have versions of their own.
    """
    return "3.5" if hasattr(ri, "initr_simple") else "3.6"


def start_embedded_r(ri: ModuleType) -> None:
    """Start the embedded R in this process (once), leaving the process as it was.

    The SIGINT handler and every environment variable outside R's ``R_*`` namespace
    are what they were before (see :func:`restore_environment`). Raises whatever
    rpy2 raises when R cannot start; the caller turns that into advice.
    """
    before = dict(os.environ)
    in_main = threading.current_thread() is threading.main_thread()
    sigint = signal.getsignal(signal.SIGINT) if in_main else None
    # rpy2 prints R's console output itself; keep R from asking questions.
    os.environ.setdefault("R_INTERACTIVE", "FALSE")
    try:
        if series(ri) == "3.5":
            # no Rscript subprocess for R's environment: we would undo it anyway
            ri.initr_simple()
        else:
            ri.initr()
    finally:
        if in_main and sigint is not None:
            # rpy2's start-up sets SIGINT to Python's default handler, replacing one the
            # user (or Jupyter, or a CLI) installed; Ctrl-C during R calls is handled per
            # call (bridge/interrupt.py) on top of whatever handler the user has
            signal.signal(signal.SIGINT, sigint)
    if ri.embedded.isinitialized():
        restore_environment(ri, before)


def restore_environment(ri: ModuleType, before: dict[str, str]) -> None:
    """Undo R's start-up changes to the environment that children would inherit.

    Both series prepend R's ``ldpaths`` (R's lib directory, then the system library
    directory) to ``LD_LIBRARY_PATH``; 3.6 also copies every variable R's front-end
    script sets into ``os.environ`` and adds ``RPY2_PY_SESSION_INITIALIZED``, and R's
    ``Renviron`` sets ``EDITOR``, ``PAGER``, ``MAKE``, ``TAR``, ... with C ``setenv``
    (outside ``os.environ``). None of it helps this process: the dynamic loader reads
    ``LD_LIBRARY_PATH`` once, at process start, and libR is loaded already. But every
    child inherits them, and a shared-libpython interpreter (pyenv and others) started
    with the system library directory first loads the system's libpython: ``import
    ssl`` fails with "undefined symbol", and so do spawn pools and Dask workers. So
    every variable outside R's own ``R_*`` namespace goes back to the user's value (or
    is removed). R's own variables stay: R reads them at run time, other programs do
    not.
    """
    getenv = ri.baseenv["Sys.getenv"]
    now_r = getenv()
    names = [str(n) for n in now_r.do_slot("names")]
    now = dict(zip(names, [str(v) for v in now_r]))
    now.update(os.environ)  # what rpy2 put in os.environ is also in C's environ; be sure
    for name in set(now) | set(before):
        if name.startswith(_R_OWN_PREFIXES) or now.get(name) == before.get(name):
            continue
        if name in before:
            os.environ[name] = before[name]  # also putenv()s it for children
        else:
            os.environ.pop(name, None)
            os.unsetenv(name)  # set by R in C only: not in os.environ


def vector_bytes(vec: Any, itemsize: int) -> RBuffer:
    """The data of an R integer/logical/double vector as a cffi buffer, and its dim.

    Copy it at once (``numpy.frombuffer(...).copy()``): the buffer points into memory
    R owns. Never goes through ``vector.memoryview()`` (the ``None`` leak of 3.5).
    """
    from rpy2.rinterface_lib import bufferprotocol, openrlib

    cdata = vec.__sexp__._cdata
    raw = openrlib.ffi.buffer(vec._R_GET_PTR(cdata), itemsize * len(vec))
    return RBuffer(raw, tuple(bufferprotocol.getshape(cdata)))


def r_interrupt_flag() -> Any:
    """The object whose ``R_interrupts_pending`` attribute is R's C flag of that name."""
    from rpy2.rinterface_lib import openrlib

    return openrlib.rlib
