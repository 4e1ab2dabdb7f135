"""lmer(): linear mixed models with lme4, inference by lmerTest (Satterthwaite) or
pbkrtest (Kenward-Roger)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from ..errors import PylmeError
from ..results import MixedFit
from ._common import RBackend, check_data, fit_in_r, make_fit, parse_formula, r_terms, refuse_nul, require_response
from ._control import check_control
from ._names import NameMap

DDF_METHODS = ("satterthwaite", "kenward-roger", "none")


def lmer(formula: str, data: pd.DataFrame, *, reml: bool = True, ddf: str = "satterthwaite",
         control: dict[str, Any] | None = None, allow_calls: Iterable[str] = ()) -> MixedFit:
    """Fit a linear mixed model with lme4 (through lmerTest for denominator df).

    Parameters
    ----------
    formula : str
        lme4 formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``; crossed effects as
        ``(1 | therapist) + (1 | patient)``, nested as ``(1 | therapist/patient)``.
        Any column name works (it reaches R as a generated name, see Notes); in the
        formula a name that is not a plain R name is written with backticks:
        ``"score ~ `dose (mg)` + `TRUE` + (1 | `site id`)"``.
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
        "optCtrl": {"maxfun": 1e5}}``. Accepted: ``optimizer`` (``"bobyqa"``,
        ``"Nelder_Mead"``, ``"nloptwrap"``, ``"nlminbwrap"``), ``optCtrl`` (dict of
        numbers), ``restart_edge``, ``calc.derivs``, ``use.last.params`` (bool),
        ``boundary.tol`` (number) and the ``check.conv.*`` / ``check.nobs.*`` /
        ``check.nlev.*`` actions (``"ignore"``, ``"warning"``, ``"message"``,
        ``"stop"``); any other key is an error.
    allow_calls : iterable of str
        Functions the formula may call beyond the built-in allow-list.

    Returns
    -------
    MixedFit
        Term and group names in the user's column names (no backticks).

    Raises
    ------
    PylmeError
        A one-sided formula, a NUL character in any text, an unknown control option, a
        fixed-effect column that is constant or collinear with the others (named), a
        formula of more than 20,000 parts or nested more than 200 deep.

    Notes
    -----
    The columns the model uses reach R as generated names (``v1_``, ``v2_``, ...): the
    formula is parsed by R and rewritten symbol by symbol, never pasted as text, and
    every name in the results is mapped back. A symbol that is a column means the
    column, also ``T``, ``F``, ``pi`` or ``C``; without such a column ``T``, ``F`` and
    ``pi`` keep R's meaning. ``TRUE``, ``FALSE``, ``NULL``, ``NA``, ``Inf`` and ``NaN``
    without backticks are R's constants; if the data have a column of that name the
    formula is refused as ambiguous.
    """
    if ddf not in DDF_METHODS:
        raise PylmeError(f"ddf must be one of {DDF_METHODS}, got {ddf!r}")
    if ddf == "kenward-roger" and not reml:
        raise PylmeError("Kenward-Roger df are defined for REML fits only; use reml=True or "
                         "ddf='satterthwaite'")
    refuse_nul(control, "control")
    r_control = check_control("lmer", control)
    info = parse_formula(formula, allow_calls=allow_calls)
    require_response(info)
    if not info.groups:
        raise PylmeError(f"formula {formula!r} has no random-effect term like (1 | group)")
    frame = check_data(data, [info])
    names = NameMap.of(frame)
    result, conditions = fit_in_r("pylme_fit_lmer", frame, names, formula=formula, reml=bool(reml), ddf=ddf,
                                  control=r_control)
    backend = RBackend("lmer", result["fit"], names, r_terms(result))
    return make_fit("lme4", formula, data, frame, result, conditions, backend,
                    {"formula": formula, "reml": bool(reml), "ddf": ddf, "control": control})
