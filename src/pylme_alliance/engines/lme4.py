"""lmer(): linear mixed models with lme4, inference by lmerTest (Satterthwaite) or
pbkrtest (Kenward-Roger)."""
from __future__ import annotations

from typing import Any, Iterable

import pandas as pd

from ..errors import PylmeError
from ..results import MixedFit
from ._common import RBackend, check_data, fit_in_r, make_fit, parse_formula

DDF_METHODS = ("satterthwaite", "kenward-roger", "none")


def lmer(formula: str, data: pd.DataFrame, *, reml: bool = True, ddf: str = "satterthwaite",
         control: dict[str, Any] | None = None, allow_calls: Iterable[str] = ()) -> MixedFit:
    """Fit a linear mixed model with lme4 (through lmerTest for denominator df).

    Parameters
    ----------
    formula : str
        lme4 formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``; crossed effects as
        ``(1 | therapist) + (1 | patient)``, nested as ``(1 | therapist/patient)``.
    data : pandas.DataFrame
        Not modified. Rows with a missing value in a model column are dropped
        (counted in ``fit.n_dropped``).
    reml : bool
        REML (default) or maximum likelihood.
    ddf : {"satterthwaite", "kenward-roger", "none"}
        Denominator df of the fixed-effect t tests: lmerTest's Satterthwaite,
        Kenward-Roger (pbkrtest; REML fits only), or lme4's own t without df or p.
    control : dict, optional
        Arguments of ``lme4::lmerControl``, e.g. ``{"optimizer": "bobyqa",
        "optCtrl": {"maxfun": 1e5}}``.
    allow_calls : iterable of str
        Functions the formula may call beyond the built-in allow-list.

    Returns
    -------
    MixedFit
    """
    if ddf not in DDF_METHODS:
        raise PylmeError(f"ddf must be one of {DDF_METHODS}, got {ddf!r}")
    if ddf == "kenward-roger" and not reml:
        raise PylmeError("Kenward-Roger df are defined for REML fits only; use reml=True or "
                         "ddf='satterthwaite'")
    if control is not None and not isinstance(control, dict):
        raise PylmeError("control must be a dict of lme4::lmerControl arguments")
    info = parse_formula(formula, allow_calls=allow_calls)
    if not info.groups:
        raise PylmeError(f"formula {formula!r} has no random-effect term like (1 | group)")
    frame = check_data(data, [info])
    result, conditions = fit_in_r("pylme_fit_lmer", frame, formula=formula, reml=bool(reml), ddf=ddf,
                                  control=control)
    return make_fit("lme4", formula, data, frame, result, conditions, RBackend("lmer", result["fit"]),
                    {"formula": formula, "reml": bool(reml), "ddf": ddf, "control": control})
