"""The TOTAL effect of a within-person alliance change on the outcome k sessions later,
from the fitted dynamics (issue 19): the impulse responses of the RI-CLPM, in the shape
of :func:`pylme_alliance.duration`'s table."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..panel.prepare import AlliancePanel
from .reciprocal import reciprocal, session_ratings

#: What issue 19 measured for the per-lead regression with only Y_t controlled, under
#: person-mean centring, against the propagated total (independent generator with feedback).
LEAD_REGRESSION_BIAS = ("per-lead regression controlling the outcome at t: NOT the total effect under person-mean "
                        "centring; measured bias (issue 19) 37% short at lead 2 (coverage .74) and 71% short at "
                        "lead 3 (coverage .69) against the propagated total; duration(effect='total') gives the "
                        "total from the fitted dynamics")


def dynamic_rows(panel: AlliancePanel, leads: tuple[int, ...], columns: list[str],
                 **options: Any) -> tuple[pd.DataFrame, Any]:
    """Duration rows (term ``alliance_within``, effect ``total``) for the positive leads,
    from one RI-CLPM fit (:func:`reciprocal`, ``options`` passed on); and the fit.

    ``std_estimate`` divides by the within-person SDs of :attr:`ReciprocalFit.within_sd`;
    ``df`` is NaN (Wald, normal reference); ``singular`` is True when the fit is
    inadmissible; ``n`` counts the outcome ratings in the waves.
    """
    positive = [k for k in leads if k > 0]
    fit = reciprocal(panel, leads=max(positive), **options)
    table = fit.impulse[(fit.impulse["source"] == "alliance") & (fit.impulse["response"] == "outcome")]
    table = table.set_index("lead").loc[positive].reset_index()
    statistic = table["estimate"] / table["std_error"]
    sd = fit.within_sd
    ratings = session_ratings(panel)
    n_ratings = int(ratings.loc[ratings["session"] <= fit.waves, "outcome"].notna().sum())
    out = pd.DataFrame({
        "lead": table["lead"].astype(int), "effect": "total", "term": "alliance_within",
        "estimate": table["estimate"], "std_error": table["std_error"], "df": np.nan, "statistic": statistic,
        "p_value": 2 * stats.norm.sf(statistic.abs()), "conf_low": table["conf_low"],
        "conf_high": table["conf_high"], "std_estimate": table["estimate"] * sd["alliance"] / sd["outcome"],
        "n": n_ratings, "n_patients": fit.n_patients, "converged": fit.converged,
        "singular": not fit.admissible,
        "estimand": [f"within-patient, total: change in the outcome at session t+{k} per one-point within-patient "
                     f"alliance change at t, through every path of the fitted dynamics (RI-CLPM impulse response, "
                     f"waves 1..{fit.waves})" for k in table["lead"]],
    })
    return out[columns], fit

