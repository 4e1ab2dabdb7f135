"""duration(): how long the alliance-outcome association lasts (objective b), as a total
or a direct effect."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from ..errors import PylmeError, warnings_once
from ..models.estimands import for_term
from ..models.model import EFFECTS, AllianceModel
from ..panel.prepare import AlliancePanel
from ..progress import named_steps

TERMS = ("alliance_within", "alliance_between")
COLUMNS = ["lead", "effect", "term", "estimate", "std_error", "df", "statistic", "p_value", "conf_low",
           "conf_high", "std_estimate", "n", "n_patients", "converged", "singular", "estimand"]


@warnings_once
def duration(panel: AlliancePanel, leads: Iterable[int] = (1, 2, 3), *, effect: str = "total",
             progress: bool = False, **model: Any) -> pd.DataFrame:
    """Fit the same alliance model for the outcome 1, 2, 3, ... sessions ahead.

    "How long the effect lasts" is a question about the DIRECT effect: with only the
    outcome at t controlled, the lead-k coefficient is the TOTAL effect, which includes
    what the lead-1 effect carries forward through Y_t+1, Y_t+2, ... (METHODS.md, best
    practice 4). Report both; word the duration from ``effect="direct"``.

    Parameters
    ----------
    panel : AlliancePanel
        Prepared with ``leads`` covering the requested leads.
    leads : iterable of int
        Lead distances; 0 adds the concurrent association (fitted without an outcome
        control, since the outcome cannot control itself).
    effect : {"total", "direct"}
        ``"total"``: controls the outcome at t (the same model at every lead).
        ``"direct"``: controls the most recent outcome before t + k and the alliance
        deviations at t + 1 .. t + k - 1 (:class:`AllianceModel` ``effect="direct"``);
        a lag-k effect that exists only through the outcomes in between comes out near
        0. Rows where an intermediate session is missing drop out of the direct model.
        Both are identical at lead 1.
    progress : bool
        Show a progress bar over the leads.
    **model
        Options of :class:`AllianceModel` (engine, therapist, residual, ...); ``lead`` is
        set per row.

    Returns
    -------
    pandas.DataFrame
        One row per lead and term (alliance_within, alliance_between): lead, effect,
        term, estimate, std_error, df, statistic, p_value, conf_low, conf_high,
        std_estimate, n (sessions used), n_patients, converged, singular, and
        ``estimand`` (what the row estimates, from :mod:`.estimands`). The duration figure is
        :func:`pylme_alliance.report.figures.duration_plot` of this table.
        ``table.attrs["notes"]`` says what the fits chose or changed (the therapist term
        chosen when ``therapist`` is "auto", the default; random intercepts removed).

    Warns
    -----
    Each warning class once per call (e.g. one NickellWarning for all the leads).
    """
    if "lead" in model:
        raise PylmeError("duration() sets the lead itself; pass leads=(...) instead of lead=")
    if effect not in EFFECTS:
        raise PylmeError(f"effect must be 'total' or 'direct', got {effect!r}")
    leads = check_leads(panel, leads, "duration()")
    fits = [lead_model(lead, effect=effect, **model).fit(panel)
            for lead in named_steps(leads, lead_step_names(leads), enabled=progress,
                                    desc=f"duration ({effect})")]
    table = pd.concat([lead_rows(fit) for fit in fits], ignore_index=True)
    table.attrs["notes"] = fit_notes(fits)
    return table


def fit_notes(fits: Iterable[Any]) -> list[str]:
    """The fits' notes (the therapist term chosen, random intercepts removed), each once."""
    return list(dict.fromkeys(note for fit in fits for note in getattr(fit, "notes", ())))


def lead_step_names(leads: tuple[int, ...]) -> list[str]:
    """Progress-bar names of the leads: "lead 2 of 3" when the leads are 1..n, else the
    lead and its place ("lead 0 (1 of 3)")."""
    n = len(leads)
    if tuple(leads) == tuple(range(1, n + 1)):
        return [f"lead {k} of {n}" for k in leads]
    return [f"lead {k} ({i} of {n})" for i, k in enumerate(leads, start=1)]


def lead_model(lead: int, *, effect: str = "total", **model: Any) -> AllianceModel:
    """The model of one lead: at lead 0 (concurrent) without the outcome control."""
    if lead == 0:
        model = {**model, "control_outcome": False}
    return AllianceModel(lead=lead, effect=effect, **model)


def check_leads(panel: AlliancePanel, leads: Iterable[int], caller: str) -> tuple[int, ...]:
    """The requested leads as ints, each one prepared in the panel."""
    leads = tuple(int(k) for k in leads)
    if not leads:
        raise PylmeError(f"{caller} needs at least one lead")
    missing = [k for k in leads if k != 0 and k not in panel.leads]
    if missing:
        raise PylmeError(f"the panel has no outcome lead(s) {missing}; prepare it with leads={leads}")
    return leads


def lead_rows(fit: Any) -> pd.DataFrame:
    """The duration rows of one lead's fit: its alliance effects, n and fit flags."""
    effects = fit.alliance_effects()
    model = fit.model
    effects["lead"] = model.lead
    effects["effect"] = model.effect
    effects["estimand"] = effects["term"].map(lambda term: for_term(str(term), model))
    effects["n"] = fit.nobs
    effects["n_patients"] = fit.data["patient"].nunique()
    effects["converged"] = fit.converged
    effects["singular"] = fit.singular
    return effects[COLUMNS]
