"""Johnson-Neyman regions of an alliance effect across a continuous moderator.

Each region says the sign of the effect there and whether it lies inside the observed
range of the moderator; boundaries use the same df as :meth:`~.fit.AllianceFit.simple_slopes`
(the fit's :meth:`~pylme_alliance.MixedFit.contrast`), so a simple slope evaluated at a
boundary has p = alpha exactly.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import PylmeError
from .protocols import FittedAllianceModel

#: Iterations of the boundary search when the df change with the moderator (Satterthwaite).
MAX_DF_ITERATIONS = 8


def _critical(df: float, alpha: float) -> float:
    return float(stats.t.ppf(1 - alpha / 2, df) if np.isfinite(df) and df > 0 else stats.norm.ppf(1 - alpha / 2))


def _roots(b: float, c: float, vbb: float, vbc: float, vcc: float, t2: float) -> np.ndarray:
    """Real m with (b + c m)^2 = t2 (vbb + 2 m vbc + m^2 vcc), sorted."""
    A, B, C = c * c - t2 * vcc, 2 * (b * c - t2 * vbc), b * b - t2 * vbb
    scale = max(abs(A), abs(B), abs(C), 1e-300)
    if abs(A) <= 1e-12 * scale:
        return np.array([-C / B]) if abs(B) > 1e-12 * scale else np.array([])
    disc = B * B - 4 * A * C
    if disc < 0:
        return np.array([])
    root = np.sqrt(disc)
    return np.sort(np.array([(-B - root) / (2 * A), (-B + root) / (2 * A)]))


def johnson_neyman(fit: FittedAllianceModel, moderator: Any, *, alpha: float = 0.05,
                   term: str = "alliance_within") -> pd.DataFrame:
    """See :meth:`~.fit.AllianceFit.johnson_neyman`."""
    if not 0 < alpha < 1:
        raise PylmeError("alpha must be between 0 and 1")
    name, info = fit._moderator(moderator)
    if info.kind != "numeric":
        raise PylmeError(f"Johnson-Neyman intervals need a continuous moderator; {name!r} is categorical")
    inter = f"{term}:{name}"
    if inter not in fit.fixef_values.index:
        raise PylmeError(f"the model has no interaction {inter!r}")
    V = fit.vcov()
    b, c = float(fit.fixef_values[term]), float(fit.fixef_values[inter])
    vbb, vbc, vcc = float(V.loc[term, term]), float(V.loc[term, inter]), float(V.loc[inter, inter])

    def slope_at(m: float) -> dict[str, float]:
        return fit.contrast({term: 1.0, inter: float(m)})

    # df of the simple slope (as simple_slopes() computes it) at the centre; for lme4 the
    # Satterthwaite df vary with m, so each boundary is refined with the df found there.
    df0 = slope_at(0.0)["df"]
    roots = []
    for root in _roots(b, c, vbb, vbc, vcc, _critical(df0, alpha) ** 2):
        for _ in range(MAX_DF_ITERATIONS):
            candidates = _roots(b, c, vbb, vbc, vcc, _critical(slope_at(root)["df"], alpha) ** 2)
            if not len(candidates):
                break
            new = float(candidates[np.argmin(np.abs(candidates - root))])
            done = abs(new - root) <= 1e-9 * max(1.0, abs(root))
            root = new
            if done:
                break
        roots.append(float(root))
    roots = sorted(roots)
    mean = float(info.mean)
    values = fit.panel.data[info.column].astype(float) + mean
    lo_obs, hi_obs = float(values.min()), float(values.max())
    spread = max(float(info.sd) if np.isfinite(info.sd) and info.sd > 0 else 1.0, 1e-12)
    zero = -b / c if c != 0 else np.nan  # centred moderator value where the effect is 0
    interaction = fit.fixed_table.set_index("term").loc[inter]
    method = ("Satterthwaite df at each boundary (as simple_slopes())" if fit.engine == "lme4"
              else f"df {df0:g} of {term} (as simple_slopes())" if np.isfinite(df0) else "normal (Wald z)")

    edges = [-np.inf, *[r + mean for r in roots], np.inf]
    cuts = [lo_obs, hi_obs]
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        # split each region at the observed range: parts outside are extrapolation
        points = [lo, *[x for x in cuts if lo < x < hi], hi]
        for a, z in zip(points[:-1], points[1:]):
            if not a < z:
                continue
            extrapolated = bool(z <= lo_obs or a >= hi_obs)
            mid = (a + z) / 2 if np.isfinite(a) and np.isfinite(z) else (z - spread if np.isfinite(z) else
                                                                      a + spread if np.isfinite(a) else mean)
            at = slope_at(mid - mean)
            significant = bool(at["p_value"] < alpha)
            crosses = bool(np.isfinite(zero) and a < zero + mean < z)
            if significant or not crosses:
                sign = "negative" if at["estimate"] < 0 else "positive"
            else:
                sign = "changes sign"
            effect = (f"significantly {sign}" if significant else
                      "not significant" + ("" if sign == "changes sign" else f" ({sign})"))
            rows.append({
                "moderator": name, "term": term, "from": a, "to": z, "significant": significant,
                "sign": sign, "effect": effect, "extrapolated": extrapolated,
                "estimate_from": b + c * (a - mean) if np.isfinite(a) else np.nan,
                "estimate_to": b + c * (z - mean) if np.isfinite(z) else np.nan,
                "observed_min": lo_obs, "observed_max": hi_obs, "alpha": alpha,
                "interaction_estimate": float(interaction["estimate"]),
                "interaction_p": float(interaction["p_value"]), "df_method": method,
            })
    return pd.DataFrame(rows)
