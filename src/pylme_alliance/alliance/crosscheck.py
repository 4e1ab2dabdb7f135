"""crosscheck(): the same alliance model in R and in statsmodels, side by side."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import PylmeError
from .model import AllianceModel
from .prepare import AlliancePanel


def crosscheck(panel: AlliancePanel, *, model: AllianceModel | None = None, se_fraction: float = 0.05,
               rel_tolerance: float = 1e-3) -> pd.DataFrame:
    """Fit ``model`` with its R engine and with statsmodels MixedLM and compare.

    Parameters
    ----------
    panel : AlliancePanel
    model : AllianceModel, optional
        Default ``AllianceModel(therapist="none")``: patient random intercept and
        within slope, which both engines express the same way. Its engine must be an R
        engine and its residual "iid" (statsmodels has no residual correlation).
    se_fraction, rel_tolerance : float
        Two estimates agree when they differ by less than ``se_fraction`` of R's SE or
        by less than ``rel_tolerance`` relative (optimisers stop at slightly different
        points; larger differences mean the two programs fitted different models).

    Returns
    -------
    pandas.DataFrame
        term, effect ("fixed" or "ran_pars"), group, estimate_r, estimate_statsmodels,
        difference, relative_difference, std_error_r, difference_in_se, agree.
    """
    model = model or AllianceModel(therapist="none")
    if model.engine == "statsmodels":
        raise PylmeError("crosscheck compares an R engine with statsmodels; give model an R engine")
    r_fit = model.fit(panel)
    sm_fit = model.replace(engine="statsmodels").fit(panel)
    r_tab = pd.concat([r_fit.tidy("fixed"), r_fit.tidy("ran_pars")], ignore_index=True)
    sm_tab = pd.concat([sm_fit.tidy("fixed"), sm_fit.tidy("ran_pars")], ignore_index=True)
    for tab in (r_tab, sm_tab):
        tab["group"] = tab["group"].fillna("")
    merged = r_tab.merge(sm_tab, on=["effect", "group", "term"], suffixes=("_r", "_statsmodels"))
    out = pd.DataFrame({
        "term": merged["term"], "effect": merged["effect"], "group": merged["group"],
        "estimate_r": merged["estimate_r"], "estimate_statsmodels": merged["estimate_statsmodels"],
    })
    out["difference"] = out["estimate_statsmodels"] - out["estimate_r"]
    out["relative_difference"] = out["difference"].abs() / out["estimate_r"].abs().clip(lower=1e-12)
    out["std_error_r"] = merged["std_error_r"]
    out["difference_in_se"] = out["difference"].abs() / out["std_error_r"]
    within_se = np.where(np.isfinite(out["difference_in_se"]), out["difference_in_se"] <= se_fraction, False)
    out["agree"] = within_se | (out["relative_difference"] <= rel_tolerance)
    return out
