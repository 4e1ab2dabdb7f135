"""glmmtmb(): linear mixed models with glmmTMB, including ar1() residual structures."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from ..results import MixedFit
from ._common import RBackend, check_data, fit_in_r, make_fit, parse_formula, r_terms, refuse_nul, require_response
from ._control import check_control
from ._names import NameMap


def glmmtmb(formula: str, data: pd.DataFrame, *, reml: bool = False, dispformula: str | None = None,
            control: dict[str, Any] | None = None, allow_calls: Iterable[str] = ()) -> MixedFit:
    """Fit a Gaussian linear mixed model with glmmTMB.

    Parameters
    ----------
    formula : str
        lme4-style formula; may hold ``ar1(session_f + 0 | patient)`` where
        ``session_f`` is a categorical whose categories are ALL equally spaced times
        (include sessions nobody attended).
    data : pandas.DataFrame
        Not modified; rows with a missing value in a model column are dropped.
    reml : bool
        glmmTMB's default is maximum likelihood.
    dispformula : str, optional
        ``"~0"`` removes the residual term, so ``(1 | patient) + ar1(session_f + 0 |
        patient)`` is the pure residual-AR(1) model (nlme's corAR1).
    control : dict, optional
        Arguments of ``glmmTMB::glmmTMBControl``, e.g. ``{"profile": True}`` (which
        often cures "false convergence" in ar1 models) or ``{"optimizer": "optim",
        "optArgs": {"method": "BFGS"}}``. Accepted: ``optimizer`` (``"nlminb"`` or
        ``"optim"``, mapped to the R function by a fixed table), ``optArgs`` (numbers,
        optim's ``method``, ``control`` dict of numbers), ``optCtrl`` (dict of
        numbers), ``profile``, ``collect``, ``eigval_check`` (bool), ``parallel``
        (positive int), ``rank_check``, ``conv_check``; any other key is an error.

    Raises
    ------
    PylmeError
        A one-sided formula, a NUL character in any text, an unknown control option, a
        fixed-effect column that is constant or collinear with the others (named: glmmTMB
        itself would keep both halves of a split intercept and report convergence).

    Notes
    -----
    Column names reach R as generated names and every name in the results is mapped
    back (see :func:`~pylme_alliance.lmer`). Inference is Wald z (no df). ``converged``
    is False unless the optimizer reports success and the Hessian is positive definite.
    """
    refuse_nul(control, "control")
    r_control = check_control("glmmtmb", control)
    infos = [parse_formula(formula, allow_calls=allow_calls)]
    require_response(infos[0])
    if dispformula is not None:
        infos.append(parse_formula(dispformula, allow_calls=allow_calls))
    frame = check_data(data, infos)
    names = NameMap.of(frame)
    result, conditions = fit_in_r("pylme_fit_glmmtmb", frame, names, formula=formula, reml=bool(reml),
                                  dispformula=dispformula, control=r_control)
    display = formula + (f"; dispformula: {dispformula}" if dispformula else "")
    backend = RBackend("glmmtmb", result["fit"], names, r_terms(result))
    return make_fit("glmmTMB", display, data, frame, result, conditions, backend,
                    {"formula": formula, "reml": bool(reml), "dispformula": dispformula,
                     "control": control})
