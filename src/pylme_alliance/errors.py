"""Exceptions and warnings raised by pylme_alliance."""
from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Callable, Iterable
from typing import Any, TypeVar


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


#: Past this length a warning's text is not repeated when several fits of one call give it.
_SHORT_WARNING = 200
_F = TypeVar("_F", bound=Callable[..., Any])


def warnings_once(function: _F) -> _F:
    """Decorate a public function so that each warning class it raises reaches the
    caller once per call, with its full text.

    The fits of one call (a model per lead, per moderator, the refits of a test) raise
    the same caution again and again; the reader needs it once. The warnings raised
    inside are collected, grouped by class (in the order first seen) and emitted when
    the call ends, also when it ends with an exception: one warning per class, whose
    text is the first message, followed by the other distinct short messages (R's
    one-line warnings) or by how many similar long ones were folded in. The caller's
    own filters (``ignore``, ``error``) apply to what is emitted. Nested decorated calls
    fold again, so a call emits each class once however deep its fits are.
    """
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        collected: list[warnings.WarningMessage] = []
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    return function(*args, **kwargs)
                finally:
                    collected = list(caught)
        finally:
            for category, text in fold_warnings(collected):
                warnings.warn(text, category, stacklevel=user_stacklevel())
    return wrapper  # type: ignore[return-value]


def fold_warnings(caught: Iterable[Any]) -> list[tuple[type[Warning], str]]:
    """``(category, text)`` once per warning class of ``caught`` (``warnings.WarningMessage``
    records), in the order first seen; see :func:`warnings_once`."""
    by_class: dict[type[Warning], list[str]] = {}
    for record in caught:
        texts = by_class.setdefault(record.category, [])
        text = str(record.message)
        if text not in texts:
            texts.append(text)
    folded = []
    for category, texts in by_class.items():
        first, others = texts[0], texts[1:]
        if not others:
            folded.append((category, first))
        elif all(len(t) <= _SHORT_WARNING for t in texts):
            folded.append((category, " | ".join(texts)))
        else:
            folded.append((category, f"{first} (Said once for this call: {len(others)} more fit(s) gave the same "
                                     "warning with their own numbers, kept on each fit's .warnings.)"))
    return folded
