"""The likelihood-ratio test of the random slope of ``alliance_within`` and the
``degenerate`` flag in words: the two checks before heterogeneity is claimed
(:mod:`.heterogeneity`)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..engines.flags import DEGENERATE_COR, boundary_flags, boundary_parameters, residual_sd
from ..errors import PylmeError
from .boundary import specified_ran_pars
from .calibration import DRAWS, Calibration, bootstrap_null
from .mixture import mixture_p_value, mixture_text  # noqa: F401 (the test's names live here too)
from .protocols import FittedAllianceModel


# ---------------------------------------------------------------------- the test
@dataclass(frozen=True)
class SlopeTest:
    """Likelihood-ratio test of the random slope of ``alliance_within``.

    Attributes
    ----------
    statistic : float
        2 * (logLik with the slope - logLik without it), floored at 0.
    df : int
        q, the number of variance parameters the reduced model drops (the slope's
        variance and its correlations with the other terms of its block).
    p_value : float
        The test's p-value: with ``method`` "parametric bootstrap" the Monte Carlo
        p-value of :mod:`.calibration` (the default, lme4); with "mixture"
        ``mixture_p``.
    mixture_p : float
        0.5 * P(chi2(q-1) > statistic) + 0.5 * P(chi2(q) > statistic), the asymptotic
        null when a variance lies on its boundary (chi2(0) is a point mass at 0). On
        session data it rejects too often (issue 18); it is kept for comparison.
    method : str
        "parametric bootstrap (N draws)" or "mixture".
    mixture : str
        The null distribution in words, e.g. "0.5*chi2(1) + 0.5*chi2(2)".
    criterion : str
        "REML" or "ML": both fits use the same criterion. REML likelihoods compare
        random parts validly because the fixed effects are the same in both models.
    loglik_full, loglik_reduced : float
    removed : tuple of str
        The ran_pars rows the reduced model does not have.
    notes : tuple of str
        What else the reader should know (warnings of the reduced fit, a floored
        statistic, rows that differ).
    """

    statistic: float
    df: int
    p_value: float
    mixture: str
    criterion: str
    loglik_full: float
    loglik_reduced: float
    removed: tuple[str, ...]
    notes: tuple[str, ...] = ()
    mixture_p: float = float("nan")
    method: str = "mixture"
    calibration: Calibration | None = None

    @property
    def calibrated(self) -> bool:
        """Whether the p-value comes from the bootstrap null, not the asymptotic mixture."""
        return self.calibration is not None

    def significant(self, alpha: float = 0.05) -> bool:
        """Whether the test rejects "no random slope" at level ``alpha``."""
        if self.calibrated:  # a Monte Carlo p: p <= alpha has size alpha when alpha * (draws + 1) is whole
            return bool(np.isfinite(self.p_value) and self.p_value <= alpha + 1e-12)
        return bool(np.isfinite(self.p_value) and self.p_value < alpha)

    def __str__(self) -> str:
        null = self.method if self.calibrated else self.mixture
        return (f"{self.criterion} likelihood-ratio test of the random slope: LR = {self.statistic:.3f}, "
                f"q = {self.df}, p = {self.p_value:.3g} (null: {null})")


METHODS = ("bootstrap", "mixture")


def slope_test(fit: FittedAllianceModel, *, method: str = "bootstrap", draws: int = DRAWS,
               seed: int = 20150579, executor: Any = None, progress: bool = False) -> SlopeTest:
    """Refit ``fit``'s model without the random slope and compare the two likelihoods.

    ``method="bootstrap"`` (default) calibrates the likelihood ratio by a parametric
    bootstrap of ``draws`` draws (:func:`.calibration.bootstrap_null`, lme4 fits; the
    draws split over ``executor``); ``"mixture"`` takes the asymptotic 50:50 mixture,
    which rejects too often on session data.
    """
    if method not in METHODS:
        raise PylmeError(f"method must be one of {METHODS}, got {method!r}")
    if fit.model is None or fit.panel is None:
        raise PylmeError("the slope test refits the model; this fit holds no model and panel")
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if method == "bootstrap" and bool(fit.stats.get("reml")) and fit.engine == "lme4":
            # lme4's refit() of a REML fit does not reproduce it (1.1-31: it lands near the ML
            # optimum, its REML log-likelihood off by units), so the calibrated test compares
            # ML fits, as pbkrtest's PBmodcomp does; the SD and its interval stay REML's
            fit = fit.model.replace(reml=False).fit(fit.panel)
        reduced = fit.model.replace(random_slope=False).fit(fit.panel)
    for w in caught:
        text = " ".join(str(w.message).split())
        if text not in notes:
            notes.append(f"reduced fit: {text}")
    if reduced.nobs != fit.nobs:
        raise PylmeError(f"the model without the random slope used {reduced.nobs} rows, the model with it "
                         f"{fit.nobs}: the likelihoods cannot be compared")
    full_reml, red_reml = bool(fit.stats.get("reml")), bool(reduced.stats.get("reml"))
    if full_reml != red_reml:  # same AllianceModel, so this cannot happen; guard the claim anyway
        raise PylmeError("the two fits use different criteria (REML and ML)")
    ll_full, ll_red = float(fit.stats.get("logLik", np.nan)), float(reduced.stats.get("logLik", np.nan))
    removed = tuple(sorted(f"{g}: {t}" for g, t in specified_ran_pars(fit) - specified_ran_pars(reduced)))
    # parameters of the models as specified: a random intercept removed from either fit
    # because the fixed part carries it (models/boundary.py) was at 0 and is counted
    df_full = float(fit.stats.get("df_specified") or fit.stats.get("df", np.nan))
    df_reduced = float(reduced.stats.get("df_specified") or reduced.stats.get("df", np.nan))
    q = int(round(df_full - df_reduced)) if np.isfinite(df_full) and np.isfinite(df_reduced) else len(removed)
    if q < 1:
        q = max(len(removed), 1)
        notes.append(f"parameter counts did not differ; q taken as {q} from the ran_pars rows removed")
    statistic = 2.0 * (ll_full - ll_red)
    if np.isfinite(statistic) and statistic < 0:
        if statistic < -1e-3:
            notes.append(f"the model with the slope fitted worse (LR = {statistic:.3g}): an optimizer "
                         "problem; the statistic is taken as 0")
        statistic = 0.0
    mixture_p = mixture_p_value(statistic, q)
    calibration = None
    if method == "bootstrap" and np.isfinite(statistic):
        calibration = bootstrap_null(fit, reduced, float(statistic), draws=draws, seed=seed, executor=executor,
                                     progress=progress)
        notes += list(calibration.notes)
    return SlopeTest(statistic=float(statistic), df=q,
                     p_value=calibration.p_value if calibration else mixture_p,
                     mixture=mixture_text(q), criterion="REML" if full_reml else "ML",
                     loglik_full=ll_full, loglik_reduced=ll_red, removed=removed, notes=tuple(notes),
                     mixture_p=mixture_p, method=calibration.method if calibration else "mixture",
                     calibration=calibration)


# ---------------------------------------------------------------------- degenerate
def degenerate_reasons(ran_pars: pd.DataFrame, sigma: float) -> list[str]:
    """The parameters that make a fit degenerate, in words (empty when it is not)."""
    # the largest-SD fallback of boundary_parameters applies only without a residual SD
    sigma = sigma if np.isfinite(sigma) and sigma > 0 else 1.0
    return [f"SD of {name} ({group}) is {value:.3g}, about 0" if kind == "sd"
            else f"correlation {name} ({group}) is {value:.6g}, beyond +-{DEGENERATE_COR}"
            for kind, group, name, value in boundary_parameters(ran_pars, sigma)]


def fit_degenerate(fit: Any) -> tuple[bool, str]:
    """``degenerate`` as glance() reports it (engines/flags.py), and why in words."""
    sigma = residual_sd(fit.ran_pars_table)
    flag = fit.stats.get("degenerate")
    if flag is None:  # a fit made before the flag existed
        flag = boundary_flags(fit.ran_pars_table, sigma)["degenerate"]
    flag = bool(flag) or bool(fit.stats.get("singular", False))
    reasons = degenerate_reasons(fit.ran_pars_table, sigma)
    if flag and not reasons:
        reasons = ["the random-effect covariance matrix is singular (lme4::isSingular)"]
    return flag, "; ".join(reasons) if flag else ""
