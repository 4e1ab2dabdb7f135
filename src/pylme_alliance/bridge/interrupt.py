"""Ctrl-C during an R call: interrupt R, then raise KeyboardInterrupt in Python.

While R computes, Python runs only inside rpy2's callbacks (R's ``R_ProcessEvents``,
console output). Python's default SIGINT handler raises KeyboardInterrupt there, cffi
swallows it ("Exception ignored from cffi callback _processevents") and R runs on to
the end. So for the length of one R call the main thread gets a handler that does not
raise: it only sets R's own ``R_interrupts_pending`` flag, which R acts on at its next
``R_CheckUserInterrupt`` (R's evaluator checks every ~1000 steps; lme4, nlme and TMB
call it in their loops) by signalling an ``interrupt`` condition. ``pylme_call`` in
``r/bridge.R`` catches that condition and returns a marker, so R unwinds cleanly and
stays usable; Python then raises KeyboardInterrupt.

The previous handler is put back when the call ends (nothing stays installed), and a
Ctrl-C that R never saw (it came after R's last check) is cleared from R so that it
cannot hit the next call, then raised in Python all the same.

A handler of the user's own (not Python's default) is called when the signal comes,
and decides: if it raises, R is interrupted and its exception is raised when the call
has unwound; if it returns, the R call goes on undisturbed (the user chose to handle
Ctrl-C some other way, e.g. to stop after the current fit).
"""
from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any


class RInterruptible:
    """Context manager around one R call (a no-op outside the main thread).

    Parameters
    ----------
    rlib : cffi library object
        rpy2's ``openrlib.rlib``, whose ``R_interrupts_pending`` is R's C global.
    """

    def __init__(self, rlib: Any) -> None:
        self._rlib = rlib
        self._previous: Any = None
        self._installed = False
        self.interrupted = False
        self._raised: BaseException | None = None

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self._previous is not signal.default_int_handler:
            try:  # the user's handler, now (inside R's callback, where its exception would be lost)
                self._previous(signum, frame)
            except BaseException as exc:
                self._raised = exc
            else:
                return  # handled by the user: R goes on
        self.interrupted = True
        self._rlib.R_interrupts_pending = 1

    def __enter__(self) -> RInterruptible:
        # Python runs signal handlers in the main thread only, and only it may set them.
        if threading.current_thread() is not threading.main_thread():
            return self
        previous = signal.getsignal(signal.SIGINT)
        # SIG_IGN / SIG_DFL / a handler set from C (None): the user chose; leave it alone
        if not callable(previous):
            return self
        self._previous = previous
        signal.signal(signal.SIGINT, self._handler)
        self._installed = True
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if not self._installed:
            return False
        signal.signal(signal.SIGINT, self._previous)
        self._installed = False
        if not self.interrupted:
            return False
        # R may not have reached a check since the flag was set: clear it, or the
        # next R call (maybe a user's rpy2 call) would be interrupted instead
        self._rlib.R_interrupts_pending = 0
        if self._raised is not None:  # the user's handler raised: its exception, not ours
            raise self._raised
        if isinstance(exc, KeyboardInterrupt):
            return False
        raise KeyboardInterrupt
