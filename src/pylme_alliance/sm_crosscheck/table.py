"""The comparison table: when two estimates agree, and why they may not.

The agreement rule (``AGREE_RULE`` in words):

- fixed effects agree when ``|difference| < 1e-3 * |R's estimate|`` or
  ``|difference| < 0.05 * SE`` (R's SE; statsmodels' when R has none); the intercept by
  its SE alone (its size depends on where the outcome's zero lies: with the outcome
  mirrored, c - y, it is c minus itself, and a relative rule would judge it by another
  yardstick);
- SDs (random effects and residual) agree when ``|difference| < 1e-2 * |R's SD|`` or
  ``|difference| < 0.01 * R's residual SD`` (an SD that both put near zero agrees);
- correlations agree when ``|difference| < 0.01``.

Two optimisers stop at slightly different points, so exact equality is not expected;
differences beyond these bounds mean the fits are not the same optimum, and the
``why`` column gives the causes found (see :func:`diagnose`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

FIXED_REL, FIXED_SE = 1e-3, 0.05
SD_REL, SD_SIGMA = 1e-2, 1e-2
COR_ABS = 1e-2
#: Log-likelihoods further apart than this mean different optima, not rounding.
LOGLIK_TOL = 1e-3
#: A variance below this fraction of the residual variance counts as zero (boundary).
BOUNDARY_TOL = 1e-6

AGREE_RULE = (f"fixed effects agree when |diff| < {FIXED_REL:g} x |R estimate| or < {FIXED_SE:g} SE "
              f"(the intercept: < {FIXED_SE:g} SE); "
              f"SDs when |diff| < {SD_REL:g} x |R SD| or < {SD_SIGMA:g} x residual SD; "
              f"correlations when |diff| < {COR_ABS:g}")

COLUMNS = ["term", "kind", "group", "estimate_statsmodels", "estimate_r", "abs_diff", "rel_diff",
           "se_statsmodels", "se_r", "agree", "why"]


@dataclass(frozen=True)
class Reason:
    """A cause of disagreement found in the two fits, and the rows it can explain."""

    text: str
    kinds: frozenset[str]


ALL_KINDS = frozenset({"fixed", "sd", "cor", "residual"})
VARIANCE_KINDS = frozenset({"sd", "cor", "residual"})


def agree(kind: np.ndarray, sm: np.ndarray, r: np.ndarray, se: np.ndarray, sigma: float,
          intercept: np.ndarray | None = None) -> np.ndarray:
    """The documented agreement rule, row by row (NaN on either side never agrees,
    except a correlation both sides leave undefined). ``intercept`` marks the rows judged
    by their SE alone."""
    diff = np.abs(sm - r)
    relative = np.ones(len(kind), dtype=bool) if intercept is None else ~np.asarray(intercept, dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.zeros(len(kind), dtype=bool)
        fixed = kind == "fixed"
        out[fixed] = ((diff[fixed] <= FIXED_REL * np.abs(r[fixed])) & relative[fixed]) \
            | (diff[fixed] < FIXED_SE * se[fixed])
        sds = (kind == "sd") | (kind == "residual")
        out[sds] = (diff[sds] <= SD_REL * np.abs(r[sds])) | (diff[sds] < SD_SIGMA * sigma)
        cor = kind == "cor"
        out[cor] = (diff[cor] < COR_ABS) | (np.isnan(sm[cor]) & np.isnan(r[cor]))
    return out


def diagnose(*, sm_result: Any, r_fit: Any, reml: bool, sm_reml: bool, sm_warnings: tuple[str, ...],
             loglik_sm: float, loglik_r: float) -> list[Reason]:
    """Every cause of disagreement that the two fits show."""
    res = getattr(sm_result, "_results", sm_result)
    reasons: list[Reason] = []
    if reml != sm_reml:
        reasons.append(Reason(f"statsmodels fitted by {'REML' if sm_reml else 'ML'} and R by "
                              f"{'REML' if reml else 'ML'}, so variance parameters and SEs differ by design",
                              ALL_KINDS))
    if r_fit.nobs != int(res.nobs):
        reasons.append(Reason(f"the fits used different rows (statsmodels {int(res.nobs)}, R {r_fit.nobs})",
                              ALL_KINDS))
    conv = [w for w in sm_warnings if "boundary" not in w.lower()]
    if not bool(getattr(res, "converged", True)):
        reasons.append(Reason("statsmodels did not converge (its optimiser gave up: ConvergenceWarning)",
                              ALL_KINDS))
    elif any("converg" in w.lower() or "hessian" in w.lower() for w in conv):
        reasons.append(Reason(f"statsmodels warned: {conv[0]}", ALL_KINDS))
    with np.errstate(invalid="ignore"):
        bse = np.asarray(res.bse_fe, dtype=float)
    if not np.all(np.isfinite(bse)):
        reasons.append(Reason("statsmodels' Hessian failed (fixed-effect SEs are not finite), so its SEs "
                              "cannot be trusted", frozenset({"fixed"})))
    scale = float(res.scale)
    cov = np.asarray(res.cov_re, dtype=float)
    small = [*np.diag(cov), *np.asarray(res.vcomp, dtype=float)] if cov.size or len(res.vcomp) else []
    sm_boundary = any(v < BOUNDARY_TOL * scale for v in small)
    if cov.shape[0] > 1:
        sd = np.sqrt(np.clip(np.diag(cov), 0, None))
        with np.errstate(invalid="ignore", divide="ignore"):
            cor = cov / np.outer(sd, sd)
        off = cor[~np.eye(len(sd), dtype=bool)]
        sm_boundary |= bool(np.any(np.abs(off[np.isfinite(off)]) > 1 - 1e-6))
    r_singular = bool(r_fit.stats.get("singular"))
    if sm_boundary or r_singular:
        who = " and ".join(w for w, f in (("statsmodels", sm_boundary), ("R", r_singular)) if f)
        reasons.append(Reason(f"the fit is on the boundary (singular: a variance near zero or a "
                              f"correlation near +-1) in {who}; the optimum is flat there, and the "
                              "programs may stop at different points", VARIANCE_KINDS | {"fixed"}))
    if not bool(r_fit.stats.get("converged", True)):
        messages = [w for w in r_fit.warnings if "converg" in w.lower()]
        reasons.append(Reason("R (lme4) reported a convergence problem" + (f": {messages[0]}" if messages else ""),
                              ALL_KINDS))
    if reml == sm_reml and r_fit.nobs == int(res.nobs) and np.isfinite(loglik_sm) and np.isfinite(loglik_r):
        gap = loglik_r - loglik_sm
        if gap > LOGLIK_TOL:
            reasons.append(Reason(f"R's log-likelihood is higher by {gap:.4g}: statsmodels stopped before "
                                  "the maximum, so its estimates are not the best fit; trust R's", ALL_KINDS))
        elif gap < -LOGLIK_TOL:
            reasons.append(Reason(f"statsmodels' log-likelihood is higher by {-gap:.4g}: R stopped before "
                                  "the maximum; check R's convergence warnings", ALL_KINDS))
    return reasons


FLAT = ("both fits reach the same log-likelihood, so the likelihood is flat along this parameter "
        "(weakly identified): the programs stopped at different points of the same optimum")
UNKNOWN = "no cause found: both converged; compare this parameter by hand"


def build_table(params: list[Any], sm: tuple[np.ndarray, np.ndarray], r: tuple[np.ndarray, np.ndarray],
                sigma: float, reasons: list[Reason], same_loglik: bool) -> pd.DataFrame:
    """The comparison table with ``agree`` and, on rows that disagree, ``why``."""
    kind = np.array([p.kind for p in params], dtype=object)
    est_sm, se_sm = sm
    est_r, se_r = r
    se = np.where(np.isfinite(se_r), se_r, se_sm)
    diff = np.abs(est_sm - est_r)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = diff / np.abs(est_r)
    intercept = np.array([p.kind == "fixed" and ("(Intercept)" in (p.term, p.r_term) or p.term == "Intercept")
                          for p in params], dtype=bool)
    ok = agree(kind, est_sm, est_r, se, sigma, intercept)
    why = []
    for k, good, missing in zip(kind, ok, np.isnan(est_r) | np.isnan(est_sm)):
        if good:
            why.append("")
            continue
        texts = [x.text for x in reasons if k in x.kinds]
        if missing and not texts:
            texts = ["one side has no estimate for this parameter (dropped or undefined)"]
        why.append("; ".join(texts) if texts else (FLAT if same_loglik else UNKNOWN))
    return pd.DataFrame({
        "term": [p.term for p in params], "kind": kind.astype(str), "group": [p.group for p in params],
        "estimate_statsmodels": est_sm, "estimate_r": est_r, "abs_diff": diff, "rel_diff": rel,
        "se_statsmodels": se_sm, "se_r": se_r, "agree": ok, "why": why,
    }, columns=COLUMNS)
