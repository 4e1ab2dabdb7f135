"""Random terms at the boundary: which are expected by design, which are real problems.

With the decomposed outcome control (the default model) the patient's mean outcome, a
fixed effect, carries each patient's level, and with it each therapist's: the patient
and therapist random intercepts are then estimated at 0 by construction, not because
something went wrong. Such a term is removed and the model refitted without it (a
parsimonious random structure: Bates et al. 2015, Matuschek et al. 2017). A variance at
exactly 0 contributes nothing to the likelihood, so the refit has the same fixed
effects and log-likelihood; the removal is said once (``AllianceFit.notes``) and the
fit is no longer flagged singular. A random SLOPE at the boundary is a real problem and
is never removed here (heterogeneity is then "not estimated").

Done for the engines whose random part is a formula (lme4 and glmmTMB); nlme and
statsmodels fits keep the terms and their boundary flag (``fit_status`` says it is
expected).
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ..engines.flags import DEGENERATE_COR, boundary_parameters
from ..errors import PylmeError
from .mixture import mixture_p_value
from .second_opinion import same_optimum
from .spec import ModelSpec

WITHIN = "alliance_within"
INTERCEPT = "(Intercept)"
# a random term of the formulas AllianceModel.spec writes (an ar1() term is a residual structure)
_RANDOM_TERM = re.compile(r"(?<!ar1)\((?:1|[01] \+ [^|()]+) \| [^)]+\)")


def boundary_terms(fit: Any) -> list[str]:
    """The variance parameters at (or next to) the boundary, in words: SDs ~ 0 relative
    to the residual SD and correlations beyond +/-0.99 (the rule of
    :mod:`pylme_alliance.engines.flags`). A correlation is worded by the bound it is
    beyond, not its digits: where on that flat ridge the optimizer stops is noise (the
    same data mirrored stopped at -0.9997 and at -0.9951), and the variance-parameter
    table has the value."""
    try:
        pars = fit.ran_pars_table
    except Exception:  # a fit without a ran_pars table has no boundary to name
        return []
    sigma = float((getattr(fit, "stats", None) or {}).get("sigma", np.nan) or np.nan)
    return [f"SD of the random {name} over {group} ~ 0" if kind == "sd"
            else f"correlation {name} over {group} beyond {'-' if value < 0 else '+'}{DEGENERATE_COR:g}"
            for kind, group, name, value in boundary_parameters(pars, sigma)]


def slope_degenerate(fit: Any, term: str = WITHIN) -> bool:
    """Whether the random slope of ``term`` is at the boundary: its SD ~ 0 or its
    correlation with another random term beyond +/-0.99 (other parameters at the
    boundary, e.g. a patient intercept absorbed by the patient's mean outcome, do not
    make the slope unidentified). The one rule for analyze()'s random_slope="auto" and
    for :meth:`AllianceFit.heterogeneity`."""
    return any(term in text for text in boundary_terms(fit))


def slope_not_identified(fit: Any) -> str:
    """Why the between-patient variation of the within effect is not estimated from
    ``fit`` ("" when it is): the model has no random slope, or the slope is at the
    boundary."""
    model = getattr(fit, "model", None)
    if model is not None and not getattr(model, "random_slope", True):
        return "the model has no random slope (random_slope=False)."
    if not slope_degenerate(fit):
        return ""
    return ("in the fit with a random slope " + ", ".join(t for t in boundary_terms(fit) if WITHIN in t)
            + ", so the variation of the within effect between patients is not identified in these data.")


#: An intercept SD below this fraction of the residual SD (a variance under 1e-4 of the
#: residual's) is a candidate for removal, whether or not it is below the boundary
#: tolerance of :mod:`pylme_alliance.engines.flags`. On this flat stretch of the likelihood
#: where the optimizer stops is floating-point noise: the same data with the outcome
#: mirrored (y -> c - y) stopped one fit at an SD of 2e-4 x sigma and the other at 0, and
#: a boundary rule alone then removed the intercept in one direction only. The likelihood
#: decides instead (:func:`drop_absorbed_intercepts`: the same optimum, or the data do not
#: support the term).
CANDIDATE_SD = 1e-2


def absorbed_intercepts(fit: Any, model: Any) -> list[str]:
    """The groups whose random intercept the fixed part may carry (decomposed outcome
    control with the patient's mean outcome in the model): an intercept SD below
    ``CANDIDATE_SD`` of the residual SD, or an intercept correlated with a slope beyond
    +/-0.99. Empty for another model. Whether other parameters (the slope's SD) are at
    the boundary too does not matter: the slope is judged in the fit that is kept, so the
    intercepts are removed the same way wherever the optimizer left the slope."""
    if getattr(model, "control_outcome", None) != "decomposed" or "outcome_between" not in fit.fixef_values.index:
        return []
    table = fit.ran_pars_table
    table = table[table["group"].astype(str) != "Residual"]
    terms = table["term"].astype(str)
    values = pd.to_numeric(table["estimate"], errors="coerce")
    sds = values[terms.str.startswith("sd__")]
    sigma = float(fit.stats.get("sigma", np.nan) or np.nan)
    # as engines/flags.py: without a residual SD (glmmTMB dispformula ~0) the largest SD
    scale = sigma if np.isfinite(sigma) and sigma > 0 else float(sds.max() if sds.notna().any() else np.nan)
    groups = []
    for group, term, value in zip(table["group"].astype(str), terms, values):
        if not np.isfinite(value):
            continue
        small = term == f"sd__{INTERCEPT}" and (value <= 0 or value < CANDIDATE_SD * scale)
        # an intercept perfectly correlated with a slope (the alliance's, the patient's
        # session slope) is the same absorption seen from the other side (a rank-one
        # patient covariance: the intercept only rides on the slope)
        tied = term.startswith(f"cor__{INTERCEPT}.") and abs(value) > DEGENERATE_COR
        if (small or tied) and group not in groups:
            groups.append(group)
    return groups


def without_intercepts(spec: ModelSpec, groups: list[str]) -> ModelSpec | None:
    """``spec`` without the random intercepts of ``groups`` (None when the engine's
    random part is not a formula, or nothing random would remain)."""
    if spec.engine not in ("lme4", "glmmtmb"):
        return None
    formula = spec.formula
    for group in groups:
        # the group's block with slopes (the alliance slope, the patient's session slope)
        with_slopes = re.search(r"(?<!ar1)\(1 \+ ([^|()]+) \| " + re.escape(group) + r"\)", formula)
        alone = f" + (1 | {group})"
        if with_slopes:
            formula = formula.replace(with_slopes.group(0), f"(0 + {with_slopes.group(1)} | {group})")
        elif alone in formula:
            formula = formula.replace(alone, "")
        else:
            return None
    if not _RANDOM_TERM.search(formula.split("~", 1)[1]):  # no variance component left
        return None
    return dataclasses.replace(spec, formula=formula)


#: A random intercept that is not exactly at 0 (e.g. perfectly correlated with the slope)
#: is removed only when the data do not support it: likelihood-ratio p above this, the
#: criterion of Matuschek et al. (2017) for a parsimonious random structure.
KEEP_ALPHA = 0.2


def removal_note(groups: list[str], p_value: float | None = None) -> str:
    """The sentence that says what was removed and why (once, in the methods)."""
    named = " and ".join(f"the {g} random intercept" for g in groups)
    many = len(groups) > 1
    was, it = ("were", "them") if many else ("was", "it")
    carried = ("(the patient's mean outcome, a fixed effect of the decomposed outcome control, carries the "
               "patients' and therapists' levels)")
    if p_value is None:
        return (f"{named[0].upper()}{named[1:]} {was} estimated at 0 {carried} and {was} removed: the model was "
                f"refitted without {it}, with the same fixed effects and log-likelihood (parsimonious random "
                "structure, Bates et al. 2015; Matuschek et al. 2017).")
    return (f"{named[0].upper()}{named[1:]} {was} at the boundary {carried} and the data do not support "
            f"{it} (likelihood-ratio p = {p_value:.2g} > {KEEP_ALPHA}): {'they were' if many else 'it was'} removed "
            f"and the model refitted without {it} (parsimonious random structure, Matuschek et al. 2017).")


def _not_supported(fit: Any, other: Any) -> float | None:
    """The likelihood-ratio p of the removed intercept parameters when the data do not
    support them (p > KEEP_ALPHA), else None."""
    ll, ll_other = float(fit.stats.get("logLik", np.nan)), float(other.stats.get("logLik", np.nan))
    q = int(fit.stats.get("df", 0) or 0) - int(other.stats.get("df", 0) or 0)
    if not (np.isfinite(ll) and np.isfinite(ll_other)) or q < 1:
        return None
    p = mixture_p_value(max(2.0 * (ll - ll_other), 0.0), q)
    return p if p > KEEP_ALPHA else None


def drop_absorbed_intercepts(fit: Any, refit: Callable[[ModelSpec], Any]) -> Any:
    """``fit`` (an AllianceFit) refitted without the random intercepts its fixed part
    carries, or ``fit`` itself when there are none, the engine cannot drop them, or the
    refit does not reach the same optimum (log-likelihood and fixed effects; then the
    boundary flag stays).

    ``refit(spec)`` fits the reduced spec and returns an AllianceFit. The result records
    ``removed_terms`` ("group: (Intercept)"), the sentence in ``notes``, and in
    ``stats["df_specified"]`` the parameter count of the model as specified (the
    random-slope test compares models as specified).
    """
    current, removed, tested = fit, [], False
    # removing one intercept can leave another at 0 (the therapist's, then the patient's)
    for _ in range(3):
        groups = absorbed_intercepts(current, fit.model)
        reduced = without_intercepts(current.spec, groups) if groups else None
        if reduced is None:
            break
        try:
            other = refit(reduced)
        except PylmeError:
            break
        if not other.converged:
            break
        if not same_optimum(fit, other):  # the optimum of the model as specified, or else...
            if _not_supported(current, other) is None:  # ...terms the data do not support
                break
            tested = True
        current, removed = other, [*removed, *groups]
    if current is fit:
        return fit
    # the note gives the p of everything removed against the model as specified
    p_value = _not_supported(fit, current) if tested else None
    stats = {**current.stats, "df_specified": fit.stats.get("df")}
    return dataclasses.replace(current, stats=stats, removed_terms=tuple(f"{g}: (Intercept)" for g in removed),
                               notes=(*fit.notes, removal_note(removed, p_value)))


def specified_ran_pars(fit: Any) -> set[tuple[str, str]]:
    """The (group, term) rows of ``fit``'s ran_pars table as the model was specified:
    with the random intercepts removed by :func:`drop_absorbed_intercepts` put back (an
    intercept SD, and its correlation with a slope of the same group)."""
    table = fit.ran_pars_table
    rows = set(zip(table["group"].astype(str), table["term"].astype(str)))
    for removed in getattr(fit, "removed_terms", ()):
        group = removed.split(": ", 1)[0]
        slopes = [term[4:] for g, term in rows if g == group and term.startswith("sd__")]
        rows.add((group, f"sd__{INTERCEPT}"))
        rows.update((group, f"cor__{INTERCEPT}.{slope}") for slope in slopes)
    return rows
