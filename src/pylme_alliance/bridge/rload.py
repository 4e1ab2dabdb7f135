"""Loading rpy2 and starting the embedded R: the one guarded door to both.

Every path that first touches rpy2 (the session start, ``call_raw``, the converters,
``bridge.to_r``/``from_r``) goes through :func:`rinterface`, so whatever way rpy2 fails
to load (ImportError, OSError from a missing libR, cffi's ``ffi.error: symbol 'R_getVar'
not found`` from an rpy2 built for a newer R, ...) the user sees one paragraph that says
which rpy2 and which R were found, why they do not fit, and the command that fixes it,
instead of a 40-line traceback from inside rpy2.
"""
from __future__ import annotations

import os
import signal
import threading
from types import ModuleType
from typing import Any

from ..errors import RpyLoadError

_ri: ModuleType | None = None
_guard = threading.Lock()

#: Environment variables R's start-up may change that stay changed: R reads its own
#: ``R_*`` variables at run time (``R_HOME``, ``R_SESSION_TMPDIR``, ``R_LIBS_*``), and
#: they mean nothing to other programs. Everything else is put back (see
#: :func:`_restore_environment`).
_R_OWN_PREFIXES = ("R_", "_R_")


def _load_failure(exc: BaseException) -> RpyLoadError:
    # doctor knows the versions and the fix; it imports nothing heavy (no rpy2)
    from ..doctor import explain_rpy2_failure

    return RpyLoadError(explain_rpy2_failure(exc), exc)


def rinterface() -> ModuleType:
    """Import ``rpy2.rinterface`` (does not start R), or raise :class:`RpyLoadError`."""
    global _ri
    if _ri is not None:
        return _ri
    with _guard:
        if _ri is None:
            try:
                import rpy2.rinterface as ri
                from rpy2.rinterface_lib import bufferprotocol, openrlib  # noqa: F401 - used by convert

            except Exception as exc:  # noqa: BLE001 - any load failure gets the same advice
                # ``from None``: the fix is in the message; the original error stays on
                # ``load_error`` (and its text in the message) without the rpy2 traceback
                raise _load_failure(exc) from None
            _ri = ri
    return _ri


def start_r() -> ModuleType:
    """Start the embedded R once (idempotent) and return ``rpy2.rinterface``.

    Environment variables that R's start-up changed and that only matter to child
    processes are restored to what the user had (see :func:`_restore_environment`),
    and so is the SIGINT handler.
    """
    ri = rinterface()
    if ri.embedded.isinitialized():
        return ri
    before = dict(os.environ)
    in_main = threading.current_thread() is threading.main_thread()
    sigint = signal.getsignal(signal.SIGINT) if in_main else None
    # rpy2 prints R's console output itself; keep R from asking questions.
    os.environ.setdefault("R_INTERACTIVE", "FALSE")
    try:
        ri.initr_simple()
    except Exception as exc:  # noqa: BLE001 - e.g. R_HOME not found, libR missing symbols
        raise _load_failure(exc) from None
    finally:
        if in_main and sigint is not None:
            # rpy2's start-up sets SIGINT to Python's default handler, replacing one the
            # user (or Jupyter, or a CLI) installed; Ctrl-C during R calls is handled per
            # call (bridge/interrupt.py) on top of whatever handler the user has
            signal.signal(signal.SIGINT, sigint)
    _restore_environment(ri, before)
    return ri


def _restore_environment(ri: Any, before: dict[str, str]) -> None:
    """Undo R's start-up changes to the environment that children would inherit.

    rpy2 prepends R's ``ldpaths`` (R's lib directory, then the system library
    directory) to ``LD_LIBRARY_PATH``, and R's ``Renviron`` sets ``EDITOR``, ``PAGER``,
    ``MAKE``, ``TAR``, ... with C ``setenv`` (outside ``os.environ``). Neither helps this
    process: the dynamic loader reads ``LD_LIBRARY_PATH`` once, when the process starts,
    and R has already loaded libR and its libraries. But every child process inherits
    them, and a shared-libpython interpreter (pyenv and others) started with the system
    library directory first loads the system's libpython: ``import ssl`` fails with
    "undefined symbol", and so do spawn pools and Dask workers. So once R is up, every
    variable outside R's own ``R_*`` namespace goes back to the user's value (or is
    removed). R's own variables stay: R reads them at run time and other programs do not.
    Only R's package-building helpers (``untar``, ``R CMD INSTALL``) read ``TAR``/``MAKE``,
    and they fall back to their defaults.
    """
    getenv = ri.baseenv["Sys.getenv"]
    now_r = getenv()
    names = [str(n) for n in now_r.do_slot("names")]
    now = dict(zip(names, [str(v) for v in now_r]))
    for name in set(now) | set(before):
        if name.startswith(_R_OWN_PREFIXES) or now.get(name) == before.get(name):
            continue
        if name in before:
            os.environ[name] = before[name]  # also putenv()s it for children
        else:
            os.environ.pop(name, None)
            os.unsetenv(name)  # set by R in C only: not in os.environ
