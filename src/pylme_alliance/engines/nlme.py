"""lme(): linear mixed models with nlme, including residual correlation structures."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

from ..errors import PylmeError
from ..results import MixedFit
from ._common import RBackend, check_data, fit_in_r, make_fit, parse_formula, r_terms, refuse_nul, require_response
from ._control import check_control
from ._names import NameMap
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
        Arguments of ``nlme::lmeControl`` (e.g. ``{"maxIter": 200, "msMaxIter": 200}``):
        ``maxIter``, ``msMaxIter``, ``msMaxEval`` (positive int), ``niterEM`` (int),
        ``tolerance``, ``msTol``, ``.relStep``, ``minAbsParApVar`` (number),
        ``msVerbose``, ``gradHess``, ``apVar``, ``natural``, ``allow.n.lt.q`` (bool),
        ``opt`` (``"nlminb"`` or ``"optim"``), ``optimMethod``. ``returnObject`` is
        always True (setting it False is an error); any other key is an error.

    Raises
    ------
    PylmeError
        A fixed formula without response, a NUL character in any text, an unknown
        control option, a fixed-effect column that is constant or collinear (named).

    Notes
    -----
    Column names reach R as generated names and every name in the results is mapped
    back (see :func:`~pylme_alliance.lmer`), so grouping columns whose names nlme would
    paste into R code (``random``'s groups, a dict's keys, a correlation's ``form``) are
    ordinary data there. ``predict(newdata)`` gives a row of a new group the prediction
    of its innermost known level (the population's for an unknown outermost group).
    Fitted with ``lmeControl(returnObject = TRUE)``: a fit that does not converge is
    returned with a warning and ``converged=False`` instead of an error. nlme cannot
    express crossed random effects; use :func:`glmmtmb` or :func:`lmer` for those.
    """
    if correlation is not None and not isinstance(correlation, Correlation):
        raise PylmeError("correlation must be AR1(form), CAR1(form), ARMA(p, q, form) or CompSymm(form)")
    refuse_nul(control, "control")
    r_control = check_control("lme", control)
    infos = [parse_formula(fixed, allow_calls=allow_calls)]
    group_columns: tuple[str, ...] = ()  # a dict's level names are grouping columns too
    require_response(infos[0], "fixed formula")
    if isinstance(random, str):
        infos.append(parse_formula(random, allow_calls=allow_calls))
        if not infos[-1].groups:
            raise PylmeError(f"random={random!r} has no grouping; write it as nlme does, e.g. '~ 1 | patient'")
        r_random: object = random
        random_text = random
    elif isinstance(random, Mapping) and random:
        refuse_nul(dict(random), "random")
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
    names = NameMap.of(frame)
    if isinstance(r_random, dict):  # list names, not formula text: renamed here
        r_random = {names.to_r.get(k, k): v for k, v in r_random.items()}
    result, conditions = fit_in_r("pylme_fit_lme", frame, names, fixed=fixed, random=r_random,
                                  correlation=None if correlation is None else correlation.spec(),
                                  reml=bool(reml), control=r_control)
    display = f"{fixed}; random: {random_text}" + (f"; correlation: {correlation}" if correlation else "")
    backend = RBackend("lme", result["fit"], names, r_terms(result))
    return make_fit("nlme", display, data, frame, result, conditions, backend,
                    {"fixed": fixed, "random": random, "correlation": correlation, "reml": bool(reml),
                     "control": control})
