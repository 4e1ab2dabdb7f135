"""The R bridge: the only part of pylme_alliance that imports rpy2.

``to_r``/``from_r`` convert data frames column-wise; ``call`` runs a function of the
package's ``r/*.R`` files in the single embedded R session, under ``lock``, and maps R
errors to :class:`~pylme_alliance.errors.RError` and R warnings/messages to
:class:`~pylme_alliance.errors.RWarning`. Importing this module does not start R;
converting or calling does.
"""
from __future__ import annotations

from typing import Any

from .session import assign, call, call_raw, is_started, lock, new_env, private_env, r_source_dir

__all__ = ["to_r", "from_r", "call", "call_raw", "new_env", "assign", "lock",
           "is_started", "private_env", "r_source_dir"]


def to_r(df: Any) -> Any:
    """Convert a pandas DataFrame to an R data.frame (see :func:`convert.to_r`)."""
    with lock:
        private_env()  # start R (idempotent) before allocating R vectors
        from .convert import to_r as _to_r

        return _to_r(df)


def from_r(obj: Any) -> Any:
    """Convert an R data.frame to pandas (see :func:`convert.from_r`)."""
    with lock:
        from .convert import from_r as _from_r

        return _from_r(obj)
