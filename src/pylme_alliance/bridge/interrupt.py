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
        self._frame: FrameType | None = None

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.interrupted = True
        self._frame = frame
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
        if self._previous is not signal.default_int_handler:
            # a handler of the user's: it gets the signal it would have had
            self._previous(signal.SIGINT, self._frame)
        if isinstance(exc, KeyboardInterrupt):
            return False
        raise KeyboardInterrupt
