"""duration(): how long the alliance-outcome association lasts (objective b), as a total
effect (from the fitted dynamics), a direct effect, or the per-lead regression."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from ..errors import PylmeError, warnings_once
from ..models.estimands import for_term
from ..models.model import EFFECTS, AllianceModel
from ..panel.prepare import AlliancePanel
from ..progress import named_steps
from .duration_total import LEAD_REGRESSION_BIAS, dynamic_rows

TERMS = ("alliance_within", "alliance_between")
#: duration()'s effects: "lead_regression" is the per-lead AllianceModel with only Y_t
#: controlled (what "total" meant before issue 19), labelled with its measured bias.
DURATION_EFFECTS = (*EFFECTS, "lead_regression")
COLUMNS = ["lead", "effect", "term", "estimate", "std_error", "df", "statistic", "p_value", "conf_low",
           "conf_high", "std_estimate", "n", "n_patients", "converged", "singular", "estimand"]


@warnings_once
def duration(panel: AlliancePanel, leads: Iterable[int] = (1, 2, 3), *, effect: str = "total",
             progress: bool = False, **model: Any) -> pd.DataFrame:
    """Fit the same alliance model for the outcome 1, 2, 3, ... sessions ahead.

    "How long the effect lasts" is asked two ways: the TOTAL effect at lead k (what a
    one-point within-patient alliance change at t does to the outcome at t+k, through
    every path: the alliance and the outcome in between) and the DIRECT effect (what is
    left when the sessions in between are controlled; METHODS.md, best practice 4).

    Parameters
    ----------
    panel : AlliancePanel
        Prepared with ``leads`` covering the requested leads.
    leads : iterable of int
        Lead distances; 0 adds the concurrent association (fitted without an outcome
        control, since the outcome cannot control itself).
    effect : {"total", "direct", "lead_regression"}
        ``"total"`` (issue 19): the impulse response of the fitted within-person
        dynamics, alliance and outcome equations together
        (:func:`pylme_alliance.reciprocal`, RI-CLPM, one lavaan fit for all leads;
        rows for ``alliance_within`` only; ``**model`` applies to lead 0 only; the
        fit's notes in ``table.attrs["notes"]``). ``"lead_regression"``: the same
        :class:`AllianceModel` at every lead with only the outcome at t controlled
        (what "total" meant before): under person-mean centring it is NOT the total
        effect (37% short at lead 2, 71% at lead 3 in issue 19's check; its
        ``estimand`` says so). ``"direct"``: controls the most recent outcome before t + k and the alliance
        deviations at t + 1 .. t + k - 1 (:class:`AllianceModel` ``effect="direct"``);
        a lag-k effect that exists only through the outcomes in between comes out near
        0. Rows where an intermediate session is missing drop out of the direct model.
        "direct" and "lead_regression" are identical at lead 1.
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
    if effect not in DURATION_EFFECTS:
        raise PylmeError(f"effect must be 'total', 'direct' or 'lead_regression', got {effect!r}")
    leads = check_leads(panel, leads, "duration()")
    if effect == "total":
        return total_from_dynamics(panel, leads, **model)
    fit_effect = "total" if effect == "lead_regression" else effect
    fits = [lead_model(lead, effect=fit_effect, **model).fit(panel)
            for lead in named_steps(leads, lead_step_names(leads), enabled=progress,
                                    desc=f"duration ({effect})")]
    table = pd.concat([lead_rows(fit) for fit in fits], ignore_index=True)
    if effect == "lead_regression":
        table = table.assign(effect="lead_regression", estimand=table["estimand"] + "; " + LEAD_REGRESSION_BIAS)
    table.attrs["notes"] = fit_notes(fits)
    return table


def fit_notes(fits: Iterable[Any]) -> list[str]:
    """The fits' notes (the therapist term chosen, random intercepts removed), each once."""
    return list(dict.fromkeys(note for fit in fits for note in getattr(fit, "notes", ())))


def total_from_dynamics(panel: AlliancePanel, leads: tuple[int, ...], **model: Any) -> pd.DataFrame:
    """effect="total": the RI-CLPM impulse responses at the positive leads (one lavaan
    fit); lead 0, if asked, is the concurrent regression with the ``model`` options."""
    parts = []
    notes: list[str] = []
    if 0 in leads:
        concurrent = lead_model(0, **model).fit(panel)
        parts.append(lead_rows(concurrent))
        notes += fit_notes([concurrent])
    if any(k > 0 for k in leads):
        rows, fit = dynamic_rows(panel, leads, COLUMNS)
        parts.append(rows)
        notes += [*fit.notes, *fit.problems]
        if model:
            notes.append(f"the AllianceModel options {sorted(model)} do not apply to the dynamics (RI-CLPM)")
    order = {k: i for i, k in enumerate(leads)}
    table = pd.concat(parts, ignore_index=True)
    table = table.sort_values("lead", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    table.attrs["notes"] = notes
    return table


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
