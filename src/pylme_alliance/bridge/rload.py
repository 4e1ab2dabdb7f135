"""Loading rpy2 and starting the embedded R: the one guarded door to both.

Every path that first touches rpy2 (the session start, ``call_raw``, the converters,
``bridge.to_r``/``from_r``) goes through :func:`rinterface`, so whatever way rpy2 fails
to load (ImportError, OSError from a missing libR, cffi's ``ffi.error: symbol 'R_getVar'
not found`` from an rpy2 built for a newer R, ...) the user sees one paragraph that says
which rpy2 and which R were found, why they do not fit, and the command that fixes it,
instead of a 40-line traceback from inside rpy2.
"""
from __future__ import annotations

import threading
from types import ModuleType

from ..errors import RpyLoadError
from . import _rpy2compat

_ri: ModuleType | None = None
_guard = threading.Lock()


def _load_failure(exc: BaseException, *, starting: bool = False) -> RpyLoadError:
    # doctor knows the versions and the fix; it imports nothing heavy (no rpy2)
    from ..doctor import explain_rpy2_failure

    return RpyLoadError(explain_rpy2_failure(exc, starting=starting), exc)


def rinterface() -> ModuleType:
    """Import ``rpy2.rinterface`` (does not start R), or raise :class:`RpyLoadError`."""
    global _ri
    if _ri is not None:
        return _ri
    with _guard:
        if _ri is None:
            try:
                import rpy2.rinterface as ri
                from rpy2.rinterface_lib import bufferprotocol, openrlib  # noqa: F401 - used by _rpy2compat
            except Exception as exc:  # noqa: BLE001 - any load failure gets the same advice
                # ``from None``: the fix is in the message; the original error stays on
                # ``load_error`` (and its text in the message) without the rpy2 traceback
                raise _load_failure(exc) from None
            _ri = ri
    return _ri


def start_r() -> ModuleType:
    """Start the embedded R once (idempotent) and return ``rpy2.rinterface``.

    How R starts differs between the rpy2 series; :mod:`._rpy2compat` does it and
    leaves the process environment and the SIGINT handler as the user had them.
    """
    ri = rinterface()
    if ri.embedded.isinitialized():
        return ri
    try:
        _rpy2compat.start_embedded_r(ri)
    except Exception as exc:  # noqa: BLE001 - e.g. R_HOME not found, libR missing symbols
        raise _load_failure(exc, starting=True) from None
    return ri
