"""lme(): linear mixed models with nlme, including residual correlation structures."""
from __future__ import annotations

from typing import Iterable, Mapping

import pandas as pd

from ..errors import PylmeError
from ..results import MixedFit
from ._common import RBackend, check_data, fit_in_r, make_fit, parse_formula
from .correlation import Correlation


def lme(fixed: str, data: pd.DataFrame, *, random: str | Mapping[str, str],
        correlation: Correlation | None = None, reml: bool = True,
        control: Mapping[str, object] | None = None, allow_calls: Iterable[str] = ()) -> MixedFit:
    """Fit a linear mixed model with ``nlme::lme``.

    Parameters
    ----------
    fixed : str
        Fixed part with response, e.g. ``"outcome ~ session + alliance_within"``.
    data : pandas.DataFrame
        Not modified; rows with a missing value in a model column are dropped.
    random : str or dict
        As nlme writes it: ``"~ 1 | therapist/patient"``, ``"~ Time | Rat"``, or a dict
        ``{"therapist": "~ 1", "patient": "~ 1 + alliance_within"}`` (outermost first).
    correlation : AR1, CAR1, ARMA or CompSymm, optional
        Residual correlation within groups; its grouping must match ``random``'s.
    reml : bool
        REML (default) or ML.
    control : dict, optional
        Arguments of ``nlme::lmeControl`` (e.g. ``{"maxIter": 200, "msMaxIter": 200}``);
        ``returnObject = TRUE`` is always set.

    Notes
    -----
    Fitted with ``lmeControl(returnObject = TRUE)``: a fit that does not converge is
    returned with a warning and ``converged=False`` instead of an error. nlme cannot
    express crossed random effects; use :func:`glmmtmb` or :func:`lmer` for those.
    """
    if correlation is not None and not isinstance(correlation, Correlation):
        raise PylmeError("correlation must be AR1(form), CAR1(form), ARMA(p, q, form) or CompSymm(form)")
    infos = [parse_formula(fixed, allow_calls=allow_calls)]
    group_columns: tuple[str, ...] = ()  # a dict's level names are grouping columns too
    if not infos[0].response:
        raise PylmeError(f"the fixed formula {fixed!r} needs a response on the left of '~'")
    if isinstance(random, str):
        infos.append(parse_formula(random, allow_calls=allow_calls))
        if not infos[-1].groups:
            raise PylmeError(f"random={random!r} has no grouping; write it as nlme does, e.g. '~ 1 | patient'")
        r_random: object = random
        random_text = random
    elif isinstance(random, Mapping) and random:
        for text in random.values():
            infos.append(parse_formula(text, allow_calls=allow_calls))
        r_random = {str(k): str(v) for k, v in random.items()}
        random_text = ", ".join(f"{k} = {v}" for k, v in random.items())
        group_columns = tuple(r_random)
    else:
        raise PylmeError("random must be formula text like '~ 1 | patient' or a non-empty dict")
    if correlation is not None:
        infos.append(parse_formula(correlation.form, allow_calls=allow_calls))
    frame = check_data(data, infos, extra=group_columns)
    result, conditions = fit_in_r("pylme_fit_lme", frame, fixed=fixed, random=r_random,
                                  correlation=None if correlation is None else correlation.spec(),
                                  reml=bool(reml), control=dict(control or {}))
    display = f"{fixed}; random: {random_text}" + (f"; correlation: {correlation}" if correlation else "")
    return make_fit("nlme", display, data, frame, result, conditions, RBackend("lme", result["fit"]),
                    {"fixed": fixed, "random": random, "correlation": correlation, "reml": bool(reml),
                     "control": control})
