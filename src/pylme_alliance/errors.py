"""Exceptions and warnings raised by pylme_alliance."""
from __future__ import annotations

import os
import sys


class PylmeError(Exception):
    """Base class of every error this package raises on purpose."""


class RError(PylmeError):
    """An error raised inside R.

    Parameters
    ----------
    message : str
        R's own condition message.
    call : str, optional
        The deparsed R call that raised it, when R reports one.
    """

    def __init__(self, message: str, call: str | None = None) -> None:
        self.r_message = message
        self.r_call = call
        text = message if not call else f"{message}\n  (in R: {call})"
        super().__init__(text)


class RpyLoadError(PylmeError):
    """rpy2, or the R it should start, cannot be loaded in this Python.

    The message is one paragraph: the rpy2 and R found, why they do not fit, and the
    command that fixes it. ``load_error`` holds the original exception.
    """

    def __init__(self, message: str, load_error: BaseException) -> None:
        super().__init__(message)
        self.load_error = load_error


class PylmeWarning(UserWarning):
    """Base class of the warnings this package raises on purpose (not R's own)."""


class SentinelWarning(PylmeWarning):
    """Values of the alliance, the outcome or a moderator look like missing-data codes
    (-99, 999, ...) or stand far outside the other values; declare them with
    ``prepare(na_values=...)`` or give the scale's bounds (``alliance_range=``)."""


class RWarning(UserWarning):
    """A warning or message that R emitted while fitting (kept on the fit too)."""


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning point at the first line outside this
    package (the user's call), however deep inside the package it is raised.

    Call it in the function that calls :func:`warnings.warn`.
    """
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame = sys._getframe(1)  # the function about to warn: stacklevel 1
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame = frame.f_back
        level += 1
    return level


class EngineCannotExpress(PylmeError):
    """The requested model is not expressible in the chosen engine."""
