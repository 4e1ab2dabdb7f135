"""The parameters of one model, read from statsmodels and from the R fit on a common scale.

statsmodels reports variances: ``result.cov_re`` and ``result.vcomp`` are already
multiplied by ``result.scale`` (MixedLM.fit computes ``cov_re = scale * cov_re_unscaled``;
the unscaled ones are in ``result.params``), and ``scale`` is the residual variance.
lme4 (through broom.mixed) reports standard deviations and correlations. Both are put
here as SDs (``sd__<term>``), correlations (``cor__<a>.<b>``) and the residual SD
(``sd__Observation``), named as broom.mixed names them.

Standard errors are compared for fixed effects only: lme4 gives none for SDs, and
statsmodels' SEs of variance parameters are on a different (variance) scale.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .translate import Translation

_INTERCEPT = "(Intercept)"


@dataclass(frozen=True)
class Param:
    """One row of the comparison: how to find it on either side."""

    term: str
    kind: str            # "fixed" | "sd" | "cor" | "residual"
    group: str
    r_group: str         # generated names as the R fit's tables show them
    r_term: str
    sm: tuple            # ("fe", i) | ("cov", i, j) | ("vc", j) | ("scale",)
    position: int        # position among this kind of row in its R group (name fallback)


def parameters(tr: Translation) -> list[Param]:
    """The rows to compare, in table order: fixed, then per random term, then residual."""
    out = [Param(disp, "fixed", "", "", gen, ("fe", i), i) for i, (gen, disp) in enumerate(tr.fixed)]
    re_index = {f"z{j + 1}": j for j in range(len(tr.frame.columns))}
    vc_index = 0
    for term in tr.random:
        gens = [g for g, _ in term.columns]
        shown = [d for _, d in term.columns]
        if term.kind == "vc":
            out.append(Param(f"sd__{shown[0]}", "sd", term.label, term.group, f"sd__{gens[0]}",
                             ("vc", vc_index), 0))
            vc_index += 1
            continue
        idx = [re_index[g] for g in gens]
        for k, (g, d) in enumerate(zip(gens, shown)):
            out.append(Param(f"sd__{d}", "sd", term.label, term.group, f"sd__{g}", ("cov", idx[k], idx[k]), k))
        if term.correlated:
            pos = 0
            for a in range(len(gens)):
                for b in range(a + 1, len(gens)):
                    out.append(Param(f"cor__{shown[a]}.{shown[b]}", "cor", term.label, term.group,
                                     f"cor__{gens[a]}.{gens[b]}", ("cov", idx[a], idx[b]), pos))
                    pos += 1
    out.append(Param("sd__Observation", "residual", "Residual", "Residual", "sd__Observation", ("scale",), 0))
    return out


def statsmodels_values(result: Any, params: list[Param]) -> tuple[np.ndarray, np.ndarray]:
    """(estimate, SE) per parameter from a MixedLMResults."""
    res = getattr(result, "_results", result)
    cov = np.asarray(res.cov_re, dtype=float)
    vcomp = np.asarray(res.vcomp, dtype=float)
    fe = np.asarray(res.fe_params, dtype=float)
    with np.errstate(invalid="ignore"):
        bse = np.asarray(res.bse_fe, dtype=float)
    est, se = np.full(len(params), np.nan), np.full(len(params), np.nan)
    for r, p in enumerate(params):
        where = p.sm
        if where[0] == "fe":
            est[r], se[r] = fe[where[1]], bse[where[1]]
        elif where[0] == "cov":
            i, j = where[1], where[2]
            if i == j:
                est[r] = np.sqrt(max(cov[i, i], 0.0))
            else:
                sd_i, sd_j = np.sqrt(max(cov[i, i], 0.0)), np.sqrt(max(cov[j, j], 0.0))
                est[r] = cov[i, j] / (sd_i * sd_j) if sd_i > 0 and sd_j > 0 else np.nan
        elif where[0] == "vc":
            est[r] = np.sqrt(max(vcomp[where[1]], 0.0))
        else:
            est[r] = np.sqrt(float(res.scale))
    return est, se


def _lookup(table: pd.DataFrame, p: Param, kind_prefix: str) -> pd.Series | None:
    rows = table[(table["group"] == p.r_group) & (table["term"] == p.r_term)]
    if len(rows):
        return rows.iloc[0]
    # the engine may show its own internal column names; fall back to the position
    # among this group's sd (or cor) rows, which follows the term's column order
    same = table[(table["group"] == p.r_group) & table["term"].str.startswith(kind_prefix)]
    if p.position < len(same):
        return same.iloc[p.position]
    return None


def r_values(fit: Any, params: list[Param]) -> tuple[np.ndarray, np.ndarray]:
    """(estimate, SE) per parameter from the R engine's MixedFit."""
    fixed = fit.tidy("fixed")
    ran = fit.tidy("ran_pars")
    fixed = fixed.assign(group=fixed["group"].fillna(""), term=fixed["term"].astype(str))
    ran = ran.assign(group=ran["group"].fillna("").astype(str), term=ran["term"].astype(str))
    n_fixed = sum(p.kind == "fixed" for p in params)
    est, se = np.full(len(params), np.nan), np.full(len(params), np.nan)
    for r, p in enumerate(params):
        if p.kind == "fixed":
            rows = fixed[fixed["term"] == p.r_term]
            if not len(rows) and len(fixed) == n_fixed:
                rows = fixed.iloc[[p.position]]
            if len(rows):
                est[r], se[r] = float(rows["estimate"].iloc[0]), float(rows["std_error"].iloc[0])
            continue
        row = _lookup(ran, p, "cor__" if p.kind == "cor" else "sd__")
        if row is not None:
            est[r] = float(row["estimate"])
    return est, se
