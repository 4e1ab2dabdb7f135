"""from_statsmodels(): check a fitted statsmodels MixedLM against R's lme4.

Modules: :mod:`.translate` (the statsmodels model as an lme4 model), :mod:`.params`
(both sides' parameters as SDs and correlations), :mod:`.table` (the agreement rule and
the reasons for disagreement), :mod:`.result` (the :class:`Crosscheck` result).
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import PylmeError
from .params import parameters, r_values, statsmodels_values
from .result import Crosscheck
from .table import LOGLIK_TOL, build_table, diagnose
from .translate import Translation, translate

ENGINES = ("lme4", "glmmtmb")

__all__ = ["Crosscheck", "from_statsmodels", "ENGINES"]


def _fit_r(tr: Translation, engine: str) -> Any:
    if engine == "lme4":
        from ..engines.lme4 import lmer

        # lme4's own t tests: the comparison needs estimates and SEs, not Satterthwaite df
        return lmer(tr.formula, tr.frame, reml=tr.reml, ddf="none")
    from ..engines.glmmtmb import glmmtmb

    return glmmtmb(tr.formula, tr.frame, reml=tr.reml)


def from_statsmodels(result: Any, *, reml: bool | None = None, engine: str = "lme4") -> Crosscheck:
    """Fit a statsmodels MixedLM's model again in R and compare, parameter by parameter.

    Parameters
    ----------
    result : statsmodels MixedLMResults
        A fitted model from ``smf.mixedlm(...).fit()`` or ``MixedLM.from_formula(...).fit()``.
        Read from it: the design (fixed effects, ``re_formula``, ``vc_formula``), the
        groups, REML or ML, the rows statsmodels used (after its missing-data handling),
        and a ``free=`` diagonal covariance if one was fitted.
    reml : bool, optional
        Fit R by REML (True) or ML (False); default what statsmodels used. A different
        choice is reported as the reason variance parameters differ.
    engine : {"lme4", "glmmtmb"}
        The R engine.

    Returns
    -------
    Crosscheck
        ``.table`` (one row per parameter, ``agree`` and ``why``), ``.notes``,
        ``.loglik``, ``.r_fit``, ``.statsmodels_result``.

    Notes
    -----
    statsmodels' ``re_formula="~x"`` is lme4's ``(1 + x | g)``, ``"0 + x"`` is
    ``(0 + x | g)``, each variance component ``"0 + C(c)"`` is ``(1 | g:c)`` and a
    ``free=`` diagonal fit is ``(1 | g) + (0 + x | g)``. R is given statsmodels' own design
    columns under generated names (no formula text of yours reaches R), so codings and
    transforms match by construction. The agreement rule is in
    :data:`pylme_alliance.sm_crosscheck.table.AGREE_RULE`.

    Raises
    ------
    PylmeError
        For a model lme4 cannot fit identically: a custom ``exog_re``/``exog_vc`` matrix,
        arrays without column names, a ``free=`` pattern other than all-free or
        diagonal, a penalised fit, or a covariance that is not positive semi-definite
        (possible with ``use_sqrt=False``).

    Examples
    --------
    >>> import statsmodels.formula.api as smf
    >>> sm = smf.mixedlm("Reaction ~ Days", data, groups="Subject", re_formula="~Days").fit()
    >>> check = pa.from_statsmodels(sm)
    >>> print(check)          # table, disagreements explained, notes
    """
    return crosscheck_result(result, reml=reml, engine=engine)


def crosscheck_result(result: Any, *, reml: bool | None = None, engine: str = "lme4",
                      sm_warnings: Sequence[str] = (), notes: Sequence[str] = ()) -> Crosscheck:
    """:func:`from_statsmodels` with the warnings statsmodels raised while fitting (when the
    caller saw them) and extra notes; used by the alliance crosscheck."""
    engine = {"glmmTMB": "glmmtmb"}.get(engine, engine)
    if engine not in ENGINES:
        raise PylmeError(f"engine must be one of {ENGINES}, got {engine!r} (nlme cannot express "
                         "crossed variance components; lme4 and glmmTMB can express every model "
                         "statsmodels MixedLM fits)")
    if reml is not None and not isinstance(reml, (bool, np.bool_)):
        raise PylmeError(f"reml must be True, False or None, got {reml!r}")
    tr = translate(result, reml=None if reml is None else bool(reml))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r_fit = _fit_r(tr, engine)
    for w in caught:  # R's own warnings stay visible, as every engine raises them
        warnings.warn(str(w.message), w.category, stacklevel=2)
    res = getattr(result, "_results", result)
    params = parameters(tr)
    sm_values = statsmodels_values(res, params)
    r_vals = r_values(r_fit, params)
    ll_sm, ll_r = float(res.llf), float(r_fit.stats["logLik"])
    reasons = diagnose(sm_result=res, r_fit=r_fit, reml=tr.reml, sm_reml=tr.statsmodels_reml,
                       sm_warnings=tuple(sm_warnings), loglik_sm=ll_sm, loglik_r=ll_r)
    comparable = tr.reml == tr.statsmodels_reml and r_fit.nobs == tr.nobs
    same_ll = comparable and abs(ll_r - ll_sm) <= LOGLIK_TOL
    table = build_table(params, sm_values, r_vals, float(r_fit.stats["sigma"]), reasons, same_ll)
    all_notes = [*tr.notes, *notes]
    if comparable:
        gap = ll_r - ll_sm
        if gap > LOGLIK_TOL:
            all_notes.append(f"R reached a higher log-likelihood than statsmodels ({ll_r:.6g} vs "
                             f"{ll_sm:.6g}): statsmodels stopped early, before the best fit. Trust "
                             "R's estimates, or refit statsmodels with another method or more iterations")
        elif gap < -LOGLIK_TOL:
            all_notes.append(f"statsmodels reached a higher log-likelihood than R ({ll_sm:.6g} vs "
                             f"{ll_r:.6g}): R stopped early; see r_fit.warnings")
        else:
            all_notes.append(f"both reached the same log-likelihood ({ll_r:.8g}, difference {gap:.2g})")
    else:
        all_notes.append("the log-likelihoods are not comparable (different REML/ML or rows)")
    for reason in reasons:
        if reason.text not in all_notes:
            all_notes.append(reason.text)
    if sm_warnings:
        all_notes.append("statsmodels warned: " + " | ".join(dict.fromkeys(sm_warnings)))
    if r_fit.warnings:
        all_notes.append("R warned: " + " | ".join(r_fit.warnings))
    return Crosscheck(table=table, notes=tuple(dict.fromkeys(all_notes)),
                      loglik={"statsmodels": ll_sm, "r": ll_r}, r_fit=r_fit, statsmodels_result=result,
                      formula=tr.display_formula, engine=engine)
