"""``control=`` of the R engines: only documented options, with checked values.

A control value reaches R as an argument of ``lmerControl``, ``lmeControl`` or
``glmmTMBControl``; some of those name an R function (lme4 looks its ``optimizer`` up
by name, glmmTMB calls whatever ``optimizer`` is). So each engine accepts the options
listed here, each with its type; optimizers are chosen from a fixed set (glmmTMB's are
turned into the R function by a fixed table in ``r/glmmtmb.R``); an unknown option is
an error that lists the accepted ones.
"""
from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import PylmeError


@dataclass(frozen=True)
class Option:
    """One accepted option: a checker returning the value to send, and its description."""

    check: Callable[[str, Any], Any]
    doc: str


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise PylmeError(f"control option {name!r} must be True or False, got {value!r}")
    return value


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise PylmeError(f"control option {name!r} must be a finite number, got {value!r}")
    return float(value)


def _whole(value: Any) -> bool:
    return (not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
            and value == int(value))


def _positive_int(name: str, value: Any) -> int:
    if not _whole(value) or value < 1:
        raise PylmeError(f"control option {name!r} must be a positive whole number, got {value!r}")
    return int(value)


def _count(name: str, value: Any) -> int:
    if not _whole(value) or value < 0:
        raise PylmeError(f"control option {name!r} must be a whole number >= 0, got {value!r}")
    return int(value)


def _choice(*allowed: str) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str) or value not in allowed:
            raise PylmeError(f"control option {name!r} must be one of {list(allowed)}, got {value!r}")
        return value
    return check


_OPTION_NAME = re.compile(r"[A-Za-z.][A-Za-z0-9._]*")


def _key(name: str, key: Any) -> str:
    if not isinstance(key, str) or not _OPTION_NAME.fullmatch(key):
        raise PylmeError(f"control option {name!r}: keys must be option names like 'maxfun', got {key!r}")
    return key


def _numbers(name: str, value: Any) -> dict[str, float]:
    """A dict of optimizer settings, all numbers (e.g. ``{"maxfun": 1e5}``)."""
    if not isinstance(value, Mapping):
        raise PylmeError(f"control option {name!r} must be a dict of numbers, got {value!r}")
    return {_key(name, k): _number(f"{name}[{k!r}]", v) for k, v in value.items()}


OPTIM_METHODS = ("Nelder-Mead", "BFGS", "CG", "L-BFGS-B")


def _opt_args(name: str, value: Any) -> dict[str, Any]:
    """Extra arguments of glmmTMB's optimizer: numbers, or optim's ``method``."""
    if not isinstance(value, Mapping):
        raise PylmeError(f"control option {name!r} must be a dict, got {value!r}")
    out: dict[str, Any] = {}
    for k, v in value.items():
        _key(name, k)
        if k == "method":
            out[k] = _choice(*OPTIM_METHODS)(f"{name}['method']", v)
        elif k == "control":
            out[k] = _numbers(f"{name}['control']", v)
        else:
            out[k] = _number(f"{name}[{k!r}]", v)
    return out


_ACTION = _choice("ignore", "warning", "message", "stop")

LMER: dict[str, Option] = {
    "optimizer": Option(_choice("bobyqa", "Nelder_Mead", "nloptwrap", "nlminbwrap"),
                        "one of 'bobyqa', 'Nelder_Mead', 'nloptwrap', 'nlminbwrap'"),
    "optCtrl": Option(_numbers, "dict of numbers passed to the optimizer, e.g. {'maxfun': 1e5}"),
    "restart_edge": Option(_bool, "bool"),
    "boundary.tol": Option(_number, "number"),
    "calc.derivs": Option(_bool, "bool"),
    "use.last.params": Option(_bool, "bool"),
    "check.conv.grad": Option(_ACTION, "'ignore', 'warning', 'message' or 'stop'"),
    "check.conv.singular": Option(_ACTION, "'ignore', 'warning', 'message' or 'stop'"),
    "check.conv.hess": Option(_ACTION, "'ignore', 'warning', 'message' or 'stop'"),
    "check.nobs.vs.nlev": Option(_ACTION, "'ignore', 'warning', 'message' or 'stop'"),
    "check.nobs.vs.nRE": Option(_ACTION, "'ignore', 'warning', 'message' or 'stop'"),
    "check.nobs.vs.rankZ": Option(_ACTION, "'ignore', 'warning', 'message' or 'stop'"),
    "check.nlev.gtreq.5": Option(_ACTION, "'ignore', 'warning', 'message' or 'stop'"),
    "check.nlev.gtr.1": Option(_ACTION, "'ignore', 'warning', 'message' or 'stop'"),
}


def _return_object(name: str, value: Any) -> bool:
    if value is not True:
        raise PylmeError("lme() always fits with returnObject=True (a fit that does not converge comes "
                         f"back with converged=False and a warning); {name}={value!r} is not allowed")
    return True


LME: dict[str, Option] = {
    "maxIter": Option(_positive_int, "positive int"),
    "msMaxIter": Option(_positive_int, "positive int"),
    "niterEM": Option(_count, "int >= 0"),
    "msMaxEval": Option(_positive_int, "positive int"),
    "tolerance": Option(_number, "number"),
    "msTol": Option(_number, "number"),
    "msVerbose": Option(_bool, "bool"),
    "returnObject": Option(_return_object, "True only"),
    "gradHess": Option(_bool, "bool"),
    "apVar": Option(_bool, "bool"),
    ".relStep": Option(_number, "number"),
    "minAbsParApVar": Option(_number, "number"),
    "opt": Option(_choice("nlminb", "optim"), "'nlminb' or 'optim'"),
    "optimMethod": Option(_choice(*OPTIM_METHODS), f"one of {list(OPTIM_METHODS)}"),
    "natural": Option(_bool, "bool"),
    "allow.n.lt.q": Option(_bool, "bool"),
}

GLMMTMB: dict[str, Option] = {
    "optimizer": Option(_choice("nlminb", "optim"),
                        "'nlminb' or 'optim' (mapped to stats::nlminb / stats::optim in R)"),
    "optArgs": Option(_opt_args, "dict: numbers, 'method' (optim's), 'control' (dict of numbers)"),
    "optCtrl": Option(_numbers, "dict of numbers, e.g. {'iter.max': 1000, 'eval.max': 1000}"),
    "profile": Option(_bool, "bool"),
    "collect": Option(_bool, "bool"),
    "parallel": Option(_positive_int, "positive int"),
    "eigval_check": Option(_bool, "bool"),
    "rank_check": Option(_choice("warning", "adjust", "stop", "skip"), "'warning', 'adjust', 'stop' or 'skip'"),
    "conv_check": Option(_choice("warning", "skip"), "'warning' or 'skip'"),
}

ENGINES: dict[str, tuple[str, dict[str, Option]]] = {
    "lmer": ("lme4::lmerControl", LMER),
    "lme": ("nlme::lmeControl", LME),
    "glmmtmb": ("glmmTMB::glmmTMBControl", GLMMTMB),
}


def check_control(engine: str, control: Any) -> dict[str, Any]:
    """The checked control options of ``engine`` ("lmer", "lme", "glmmtmb") as a new dict.

    Raises
    ------
    PylmeError
        ``control`` is not a dict, names an option not accepted here (the message lists
        the accepted ones) or gives one a value of the wrong type or outside its set.
    """
    function, options = ENGINES[engine]
    if control is None:
        return {}
    if not isinstance(control, Mapping):
        raise PylmeError(f"control must be a dict of {function} arguments, got {type(control).__name__}")
    out: dict[str, Any] = {}
    for name, value in control.items():
        if name not in options:
            accepted = ", ".join(f"{k} ({o.doc})" for k, o in options.items())
            raise PylmeError(f"control option {name!r} is not accepted for {engine}(); the accepted "
                             f"{function} options are: {accepted}")
        out[name] = options[name].check(name, value)
    return out
