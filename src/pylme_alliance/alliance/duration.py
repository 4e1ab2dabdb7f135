"""duration(): how long the alliance-outcome association lasts (objective b)."""
from __future__ import annotations

from typing import Any, Iterable

import pandas as pd

from ..errors import PylmeError
from ..progress import progress_bar
from .model import AllianceModel
from .prepare import AlliancePanel

TERMS = ("alliance_within", "alliance_between")
COLUMNS = ["lead", "term", "estimate", "std_error", "df", "statistic", "p_value", "conf_low",
           "conf_high", "std_estimate", "n", "n_patients", "converged", "singular"]


def duration(panel: AlliancePanel, leads: Iterable[int] = (1, 2, 3), *, progress: bool = False,
             **model: Any) -> pd.DataFrame:
    """Fit the same alliance model for the outcome 1, 2, 3, ... sessions ahead.

    Parameters
    ----------
    panel : AlliancePanel
        Prepared with ``leads`` covering the requested leads.
    leads : iterable of int
    progress : bool
        Show a progress bar over the leads.
    **model
        Options of :class:`AllianceModel` (engine, therapist, residual, ...); ``lead`` is
        set per row.

    Returns
    -------
    pandas.DataFrame
        One row per lead and term (alliance_within, alliance_between): lead, term,
        estimate, std_error, df, statistic, p_value, conf_low, conf_high, std_estimate,
        n (sessions used), n_patients, converged, singular. The duration figure is
        :func:`pylme_alliance.alliance.figures.duration_plot` of this table.
    """
    if "lead" in model:
        raise PylmeError("duration() sets the lead itself; pass leads=(...) instead of lead=")
    leads = check_leads(panel, leads, "duration()")
    rows = [lead_rows(AllianceModel(lead=lead, **model).fit(panel))
            for lead in progress_bar(leads, enabled=progress, desc="leads")]
    return pd.concat(rows, ignore_index=True)


def check_leads(panel: AlliancePanel, leads: Iterable[int], caller: str) -> tuple[int, ...]:
    """The requested leads as ints, each one prepared in the panel."""
    leads = tuple(int(k) for k in leads)
    if not leads:
        raise PylmeError(f"{caller} needs at least one lead")
    missing = [k for k in leads if k not in panel.leads]
    if missing:
        raise PylmeError(f"the panel has no outcome lead(s) {missing}; prepare it with leads={leads}")
    return leads


def lead_rows(fit: Any) -> pd.DataFrame:
    """The duration rows of one lead's fit: its alliance effects, n and fit flags."""
    effects = fit.alliance_effects()
    effects["n"] = fit.nobs
    effects["n_patients"] = fit.data["patient"].nunique()
    effects["converged"] = fit.converged
    effects["singular"] = fit.singular
    return effects[COLUMNS]
