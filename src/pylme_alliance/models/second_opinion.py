"""A second optimizer for lme4 fits that stop on a boundary with a convergence warning.

The decomposed outcome control carries the patient's (and so the therapist's) level in a
fixed effect, so the intercept variances of the default model sit at 0 by construction.
At that boundary lme4's derivative checks ("failed to converge with 1 negative
eigenvalue", "max|grad|") fire although the optimum is fine: the Hessian there includes
a direction the optimizer may not move in. lme4's own advice is to refit with other
optimizers and compare (``allFit``). This does the same with one: a fit flagged
non-converged AND singular is refitted with bobyqa; when both reach the same optimum
(log-likelihood, and fixed effects in standard errors), the fit is marked converged and says how it was
checked; when bobyqa finds a better optimum, its fit is used; otherwise nothing changes.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pandas as pd

from ..results import MixedFit

#: the optima agree when the log-likelihoods differ by less than this (absolute) ...
LOGLIK_TOL = 1e-4
#: ... and every fixed effect by less than this many of its standard errors (a hundredth of
#: an SE: far above optimizer noise, far below what a reader would see). In SE units the
#: rule is free of the outcome's scale and of where its zero lies: a rule relative to
#: max(1, |estimate|) judged the intercept of a mirrored outcome (c - y) by another yardstick.
FIXEF_TOL = 1e-2


def confirm_boundary_optimum(fit: MixedFit, refit: Callable[[], MixedFit]) -> MixedFit:
    """``fit``, or a copy whose convergence verdict was checked by a second optimizer.

    Parameters
    ----------
    fit : MixedFit
        An lme4 fit.
    refit : callable
        Fits the same model with a different optimizer (bobyqa) and returns the fit.

    Returns
    -------
    MixedFit
        ``fit`` unchanged unless it was non-converged and singular. Then: marked
        converged with a note in ``warnings`` and ``stats["convergence_check"]`` when the
        second optimizer reached the same optimum; the second fit (with a note) when it
        reached a better converged one; else ``fit`` with a note that the check failed.
    """
    if fit.converged or not fit.singular:
        return fit
    try:
        other = refit()
    except Exception as exc:  # the check is a nicety: the original verdict stands
        return _noted(fit, f"convergence check with bobyqa could not be made ({type(exc).__name__})", False)
    ll, ll_other = float(fit.stats.get("logLik", np.nan)), float(other.stats.get("logLik", np.nan))
    if not (np.isfinite(ll) and np.isfinite(ll_other)):
        return _noted(fit, "convergence check with bobyqa gave no log-likelihood", False)
    if ll_other > ll + LOGLIK_TOL and other.converged:
        return _noted(other, f"the default optimizer stopped {ll_other - ll:.2g} log-likelihood units "
                             "short of the optimum bobyqa found; bobyqa's fit is used", True)
    gap = fixef_gap(fit, other)
    if same_optimum(fit, other):
        return _noted(fit, "lme4's convergence warning on this boundary (singular) fit was checked: bobyqa "
                           f"reached the same optimum (log-likelihood within {abs(ll_other - ll):.1g}, fixed "
                           f"effects within {gap:.1g} standard errors)", True)
    return _noted(fit, "convergence check with bobyqa: a different optimum (log-likelihood "
                       f"{ll_other:.6g} vs {ll:.6g}, fixed effects up to {gap:.2g} standard errors apart); treat the fit as "
                       "not converged", False)


def fixef_gap(fit: MixedFit, other: MixedFit) -> float:
    """The largest difference of the two fits' fixed effects in ``fit``'s standard errors
    (relative to max(1, |estimate|) for a term without a finite positive SE)."""
    a = fit.fixef_values
    if not len(a):
        return 0.0
    b = other.fixef_values.reindex(a.index).to_numpy(dtype=float)
    estimate = a.to_numpy(dtype=float)
    table = getattr(fit, "fixed_table", None)
    se = np.full(len(a), np.nan)
    if table is not None and {"term", "std_error"} <= set(table.columns):
        se = pd.to_numeric(table.set_index("term")["std_error"].reindex(a.index), errors="coerce").to_numpy(dtype=float)
    scale = np.where(np.isfinite(se) & (se > 0), se, np.maximum(1.0, np.abs(estimate)))
    return float(np.nanmax(np.abs(estimate - b) / scale))


def same_optimum(fit: MixedFit, other: MixedFit) -> bool:
    """The two fits reached the same optimum: log-likelihoods within ``LOGLIK_TOL`` and
    fixed effects within ``FIXEF_TOL`` (:func:`fixef_gap`), the same fixed terms."""
    ll, ll_other = float(fit.stats.get("logLik", np.nan)), float(other.stats.get("logLik", np.nan))
    if not (np.isfinite(ll) and np.isfinite(ll_other)) or set(fit.fixef_values.index) != set(other.fixef_values.index):
        return False
    return abs(ll_other - ll) <= LOGLIK_TOL and fixef_gap(fit, other) <= FIXEF_TOL


def _noted(fit: MixedFit, note: str, converged: bool) -> MixedFit:
    stats = {**fit.stats, "converged": bool(converged), "convergence_check": note}
    return dataclasses.replace(fit, stats=stats, warnings=tuple(fit.warnings) + (note,))
