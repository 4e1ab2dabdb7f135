"""glmmtmb(): linear mixed models with glmmTMB, including ar1() residual structures."""
from __future__ import annotations

from typing import Any, Iterable

import pandas as pd

from ..errors import PylmeError
from ..results import MixedFit
from ._common import RBackend, check_data, fit_in_r, make_fit, parse_formula


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
        often cures "false convergence" in ar1 models).

    Notes
    -----
    Inference is Wald z (no df). ``converged`` is False unless the optimizer reports
    success and the Hessian is positive definite.
    """
    if control is not None and not isinstance(control, dict):
        raise PylmeError("control must be a dict of glmmTMB::glmmTMBControl arguments")
    infos = [parse_formula(formula, allow_calls=allow_calls)]
    if dispformula is not None:
        infos.append(parse_formula(dispformula, allow_calls=allow_calls))
    frame = check_data(data, infos)
    result, conditions = fit_in_r("pylme_fit_glmmtmb", frame, formula=formula, reml=bool(reml),
                                  dispformula=dispformula, control=control)
    display = formula + (f"; dispformula: {dispformula}" if dispformula else "")
    return make_fit("glmmTMB", display, data, frame, result, conditions, RBackend("glmmtmb", result["fit"]),
                    {"formula": formula, "reml": bool(reml), "dispformula": dispformula, "control": control})
