"""The one embedded R session of this process.

R starts on first use, not at import. Every R call goes through :func:`call`, under
one re-entrant lock, because R is single-threaded. The package's ``r/*.R`` files are
sourced once into a private environment (child of R's global environment) so users'
own R objects and ours never meet.
"""
from __future__ import annotations

import threading
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import PylmeError, RError, RWarning, user_stacklevel
from . import _rpy2compat
from .interrupt import RInterruptible
from .rload import rinterface, start_r

#: The lock that serialises every R call in this process (re-entrant: an R call may
#: convert results, which allocates R objects, while holding it).
lock = threading.RLock()

_private_env: Any = None


def r_source_dir() -> Path:
    """Where the package's ``.R`` files are: inside the wheel, or the source checkout."""
    packaged = resources.files("pylme_alliance") / "r"
    if packaged.is_dir():
        return Path(str(packaged))
    # editable installs and PYTHONPATH=src runs see the top-level r/ of the checkout
    checkout = Path(__file__).resolve().parents[3] / "r"
    if checkout.is_dir():
        return checkout
    raise PylmeError(f"the package's R files are missing (looked in {packaged} and {checkout})")


def _start() -> Any:
    ri = start_r()  # the guarded import + R's start-up (see rload)
    base = ri.baseenv
    env = base["new.env"](parent=ri.globalenv)
    source = base["sys.source"]
    for path in sorted(r_source_dir().glob("*.R")):
        # the path is passed as a character vector, not pasted into code
        source(ri.StrSexpVector([str(path)]), envir=env, **{"keep.source": ri.BoolSexpVector([False])})
    return env


def private_env() -> Any:
    """The private R environment holding the ``r/*.R`` functions (starts R if needed)."""
    global _private_env
    with lock:
        if _private_env is None:
            _private_env = _start()
        return _private_env


def is_started() -> bool:
    """Whether this process has started R through the bridge."""
    return _private_env is not None


def call(function: str, /, *args: Any, **kwargs: Any) -> tuple[Any, list[str]]:
    """Call a function defined in ``r/*.R`` and convert its value.

    Parameters
    ----------
    function : str
        Name of a function in the private environment (one of ours, never user text).
    *args, **kwargs
        Python values (scalars, lists, dicts, DataFrames) or R objects.

    Returns
    -------
    value, conditions
        The converted value (see :func:`convert.to_python`) and the list of warning and
        message texts R raised during the call, each already re-raised as
        :class:`~pylme_alliance.errors.RWarning`.

    Raises
    ------
    RError
        When R signals an error; the session stays usable.
    """
    value, conditions = call_raw(function, *args, **kwargs)
    from .convert import to_python

    with lock:
        return to_python(value), conditions


def call_raw(function: str, /, *args: Any, **kwargs: Any) -> tuple[Any, list[str]]:
    """Like :func:`call` but return the R value unconverted."""
    ri = rinterface()

    from .convert import to_python, to_r_value

    with lock:
        env = private_env()
        fun = env.find(function)
        r_args = ri.ListSexpVector([to_r_value(a) for a in (*args, *kwargs.values())])
        names = [""] * len(args) + list(kwargs)
        r_args.do_slot_assign("names", ri.StrSexpVector(names))
        with RInterruptible(_rpy2compat.r_interrupt_flag()):
            result = env.find("pylme_call")(fun, r_args)
            fields = dict(zip([str(n) for n in result.do_slot("names")], result))
            if "interrupted" in fields:
                # R caught the interrupt and unwound; the session is fine
                raise KeyboardInterrupt
        conditions = [str(s) for s in fields["warnings"]] + [str(s) for s in fields["messages"]]
        if not to_python(fields["ok"]):
            message = to_python(fields["message"])
            r_call = to_python(fields.get("call", ri.NULL))
            raise RError(str(message), r_call)
        value = fields["value"]
    level = user_stacklevel()
    for text in conditions:
        warnings.warn(text, RWarning, stacklevel=level)
    return value, conditions


def new_env() -> Any:
    """A fresh R environment below the private one, for one fit's data."""
    with lock:
        env = private_env()
        return env.find("pylme_new_env")(env)


def assign(env: Any, name: str, value: Any) -> None:
    """Bind a Python value (converted) or R object to ``name`` in an R environment."""
    from .convert import to_r_value

    with lock:
        env[name] = to_r_value(value)
