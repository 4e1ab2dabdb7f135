"""Boundary flags of a fit, computed the same way for every engine from its ran_pars table.

Rule (:func:`boundary_flags`):

``singular``
    lme4's ``isSingular`` rule, applied to the reported parameters. Each random-effect
    block (the ``sd__``/``cor__`` rows of one ``group``) is turned into its covariance
    matrix relative to the residual SD ``sigma``; the fit is singular when a diagonal
    element of that matrix's Cholesky factor (lme4's ``theta`` on the diagonal) is below
    ``SINGULAR_TOL = 1e-4``, lme4's default tolerance. That covers an SD of about zero
    (``sd / sigma < 1e-4``) and a term that the others in its block explain perfectly
    (a correlation of ±1). Because nlme and glmmTMB estimate correlations on an
    unbounded scale that never reaches ±1 exactly, a reported ``|cor| >= 1 - 1e-6``
    (±1 to six digits) also counts as singular.
``degenerate``
    ``singular``, or any reported ``|cor| > 0.99``: the parameters are so close to the
    boundary that the variance components are not separately identified, whatever the
    optimizer reported. This is the flag that answers "should I trust the random
    slope?" for every engine.

For lme4 fits the package keeps ``singular`` exactly as ``lme4::isSingular`` computes it
(from ``theta``) and adds ``degenerate``; for nlme, glmmTMB and statsmodels both flags
come from this rule. Rows of group ``"Residual"`` (the residual SD, nlme's residual
correlation parameters) are not random effects and are ignored. A glmmTMB ``ar1`` block
counts its correlation (``cor__ar1``) in the correlation checks only.

Caveat: nlme and glmmTMB approach a boundary only asymptotically, so their SDs stop at
a small positive value (often ``sd / sigma`` of 1e-5 to 1e-2) where lme4 lands on zero
exactly. With lme4's tolerance their ``singular`` is therefore conservative (it fires
less often than lme4's for the same data); ``degenerate`` catches most of these fits
through their near-±1 correlations.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

#: lme4::isSingular's default tolerance on the relative Cholesky factor's diagonal.
SINGULAR_TOL = 1e-4
#: A reported correlation this close to ±1 counts as ±1 (singular).
SINGULAR_COR = 1 - 1e-6
#: A correlation beyond this makes a fit degenerate.
DEGENERATE_COR = 0.99


def _blocks(ran_pars: pd.DataFrame) -> list[tuple[list[float], dict[tuple[int, int], float], list[float]]]:
    """Per group: SDs, correlations by (i, j), and correlations that match no SD pair."""
    out = []
    table = ran_pars[ran_pars["group"].astype(str) != "Residual"]
    for _, rows in table.groupby(table["group"].astype(str), sort=False):
        names, sds, cors, loose = [], [], {}, []
        for term, value in zip(rows["term"].astype(str), rows["estimate"]):
            if term.startswith("sd__"):
                names.append(term[4:])
                sds.append(float(value))
        for term, value in zip(rows["term"].astype(str), rows["estimate"]):
            if not term.startswith("cor__"):
                continue
            pair = next(((i, j) for i in range(len(names)) for j in range(i + 1, len(names))
                         if f"{names[i]}.{names[j]}" == term[5:]), None)
            if pair is None:
                loose.append(float(value))
            else:
                cors[pair] = float(value)
        out.append((sds, cors, loose))
    return out


def _cholesky_diagonal(sd: np.ndarray, cor: np.ndarray) -> np.ndarray:
    """Diagonal of the lower Cholesky factor of diag(sd) cor diag(sd), in term order (as
    lme4 orders theta); a semidefinite matrix gives zeros instead of failing."""
    cov = cor * np.outer(sd, sd)
    k = len(sd)
    low = np.zeros((k, k))
    diag = np.zeros(k)
    for j in range(k):
        rest = cov[j, j] - low[j, :j] @ low[j, :j]
        diag[j] = math.sqrt(rest) if rest > 0 else 0.0
        low[j, j] = diag[j]
        for i in range(j + 1, k):
            low[i, j] = (cov[i, j] - low[i, :j] @ low[j, :j]) / diag[j] if diag[j] > 0 else 0.0
    return diag


def boundary_flags(ran_pars: pd.DataFrame, sigma: float) -> dict[str, Any]:
    """``singular`` and ``degenerate`` of a fit from its variance parameters.

    Parameters
    ----------
    ran_pars : pandas.DataFrame
        The fit's ran_pars table (columns ``group``, ``term``, ``estimate``; terms
        ``sd__<term>`` and ``cor__<term1>.<term2>`` as broom.mixed names them).
    sigma : float
        The residual SD the SDs are measured against. When it is not a positive finite
        number (glmmTMB with ``dispformula="~0"`` has no residual), the largest
        random-effect SD is used instead.

    Returns
    -------
    dict
        ``{"singular": bool, "degenerate": bool}``; see the module docstring for the rule.
    """
    blocks = _blocks(ran_pars)
    scale = float(sigma) if sigma is not None and np.isfinite(sigma) and sigma > 0 else float("nan")
    if not np.isfinite(scale):
        every_sd = [s for sds, _, _ in blocks for s in sds if np.isfinite(s)]
        scale = max(every_sd) if every_sd and max(every_sd) > 0 else 1.0
    singular = degenerate = False
    for sds, cors, loose in blocks:
        all_cors = [c for c in [*cors.values(), *loose] if np.isfinite(c)]
        if any(abs(c) >= SINGULAR_COR for c in all_cors):
            singular = True
        if any(abs(c) > DEGENERATE_COR for c in all_cors):
            degenerate = True
        keep = [i for i, s in enumerate(sds) if np.isfinite(s)]  # an NaN SD cannot be judged
        if not keep:
            continue
        sd = np.array([max(sds[i], 0.0) for i in keep]) / scale
        cor = np.eye(len(keep))
        for a, i in enumerate(keep):
            for b, j in enumerate(keep):
                if i < j and np.isfinite(cors.get((i, j), np.nan)):
                    cor[a, b] = cor[b, a] = float(np.clip(cors[(i, j)], -1.0, 1.0))
        if np.any(_cholesky_diagonal(sd, cor) < SINGULAR_TOL):
            singular = True
    return {"singular": bool(singular), "degenerate": bool(singular or degenerate)}


def residual_sd(ran_pars: pd.DataFrame) -> float:
    """The table's ``Residual``/``sd__Observation`` estimate; NaN when the model has no
    residual term (glmmTMB with ``dispformula="~0"``)."""
    residual = ran_pars[(ran_pars["group"].astype(str) == "Residual")
                        & (ran_pars["term"].astype(str) == "sd__Observation")]["estimate"]
    return float(residual.iloc[0]) if len(residual) else float("nan")


def fit_flags(engine: str, engine_singular: bool, ran_pars: pd.DataFrame) -> dict[str, Any]:
    """The flags :func:`~pylme_alliance.engines._common.make_fit` stores for an R fit.

    lme4 keeps its own ``singular`` (``lme4::isSingular`` from ``theta``); nlme and
    glmmTMB, which do not compute one, get :func:`boundary_flags`'s, or the engine's own
    report of a singular stop (``engine_singular``: nlminb's "singular convergence"). ``degenerate``
    comes from :func:`boundary_flags` for every engine (and is True whenever
    ``singular`` is). The residual SD is the table's ``Residual``/``sd__Observation``
    row (absent for glmmTMB with ``dispformula="~0"``).
    """
    flags = boundary_flags(ran_pars, residual_sd(ran_pars))
    singular = bool(engine_singular) if engine == "lme4" else flags["singular"] or bool(engine_singular)
    return {"singular": singular, "degenerate": bool(flags["degenerate"] or singular)}


def boundary_parameters(ran_pars: pd.DataFrame, sigma: float) -> list[tuple[str, str, str, float]]:
    """The random-effect parameters at or next to the boundary, one rule for every
    caller that words them: ``(kind, group, name, value)`` with kind ``"sd"`` (an SD
    below ``SINGULAR_TOL`` relative to ``sigma``, or to the largest SD when there is
    no residual SD) or ``"cor"`` (a correlation beyond ``DEGENERATE_COR``)."""
    table = ran_pars[ran_pars["group"].astype(str) != "Residual"]
    terms = table["term"].astype(str)
    values = pd.to_numeric(table["estimate"], errors="coerce")
    sds = values[terms.str.startswith("sd__")]
    scale = sigma if np.isfinite(sigma) and sigma > 0 else float(sds.max() if sds.notna().any() and sds.max() > 0 else 1.0)
    out = []
    for group, term, value in zip(table["group"].astype(str), terms, values):
        if not np.isfinite(value):
            continue
        if term.startswith("sd__") and value / scale < SINGULAR_TOL:
            out.append(("sd", group, term[4:], float(value)))
        elif term.startswith("cor__") and abs(value) > DEGENERATE_COR:
            out.append(("cor", group, term[5:], float(value)))
    return out
