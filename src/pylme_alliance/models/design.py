"""What the data can support, decided before (or right after) the fits of :func:`analyze`:
which leads have enough rows, whether a random slope can be estimated, and whether the
series are long enough for the person-mean decomposition."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..panel.data import AlliancePanel

RANDOM_SLOPE = ("auto", True, False)
# fewer sessions than this at the median: the person mean holds a large share of each
# session's own (and future) alliance, so within = alliance - mean is contaminated
SHORT_SERIES = 4
# a lead needs at least this many modelled rows for most patients
MIN_ROWS_PER_PATIENT = 2


def rows_per_patient(panel: AlliancePanel, lead: int) -> pd.Series:
    """Rows per patient that a model of ``lead`` can use (outcome at t + lead observed)."""
    data = panel.data
    patient = data[panel.roles["patient"]]
    column = panel.roles["outcome"] if lead == 0 else f"outcome_lead{lead}"
    usable = data[column].notna() & data["alliance_within"].notna()
    return usable.groupby(patient, observed=True, sort=False).sum()


def usable_leads(panel: AlliancePanel, leads: tuple[int, ...]) -> tuple[tuple[int, ...], list[str]]:
    """The leads where most patients (more than half) keep at least 2 rows; a note for
    each lead skipped."""
    kept, notes = [], []
    for lead in leads:
        counts = rows_per_patient(panel, lead)
        short = int((counts < MIN_ROWS_PER_PATIENT).sum())
        if len(counts) and short * 2 > len(counts):
            notes.append(f"Lead {lead} skipped: {short} of {len(counts)} patients have fewer than "
                         f"{MIN_ROWS_PER_PATIENT} sessions with the outcome {lead} session(s) later, too few "
                         "to separate within-patient change from the patient's level.")
        else:
            kept.append(lead)
    return tuple(kept), notes


def short_series(panel: AlliancePanel) -> str | None:
    """The warning text when the median series is shorter than 4 sessions (None otherwise)."""
    median = panel.median_sessions()
    if median >= SHORT_SERIES:
        return None
    advice = ("" if panel.within == "early" else
              " Consider prepare(..., within='early'), which centres on the early sessions only.")
    return (f"The median patient has {median:g} sessions (fewer than {SHORT_SERIES}): the person mean of "
            "alliance then contains much of each session's own and later alliance, so the within-patient "
            "deviation is contaminated by the outcome's future." + advice)


def slope_capacity(panel: AlliancePanel, lead: int, therapist: str) -> tuple[bool, str]:
    """Whether a random within-patient slope is estimable: the model's observations must
    exceed its random effects (patients x 2, plus therapists)."""
    counts = rows_per_patient(panel, lead)
    nobs = int(counts.sum())
    n_patients = int((counts > 0).sum())
    n_therapists = 0
    if therapist != "none" and panel.roles.get("therapist") is not None:
        n_therapists = int(panel.data[panel.roles["therapist"]].nunique())
    n_random = 2 * n_patients + n_therapists
    if nobs <= n_random:
        return False, (f"the model has {nobs} observations and would have {n_random} random effects "
                       f"({n_patients} patients x intercept and slope"
                       + (f", {n_therapists} therapists" if n_therapists else "") + ")")
    return True, ""


def _word(value: Any, words: dict[str, bool]) -> Any:
    """The CLI's word for a boolean option (any case) as the bool; any other value as given."""
    return words[value.lower()] if isinstance(value, str) and value.lower() in words else value


_TRUE_FALSE = {"true": True, "false": False}


def check_random_slope(value: Any) -> Any:
    """``random_slope`` as given ("auto", True or False; strings "true"/"false" too)."""
    value = _word(value, _TRUE_FALSE)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if value == "auto":
        return "auto"
    from ..errors import PylmeError

    raise PylmeError(f"random_slope must be 'auto', True or False, got {value!r}")


def check_control(control_outcome: Any, prior_outcome: Any) -> tuple[Any, Any]:
    """``control_outcome`` and ``prior_outcome`` as AllianceModel takes them, the CLI's
    words ("none", "true", "false") included; AllianceModel refuses bad values."""
    from .model import AllianceModel

    control_outcome = _word(control_outcome, {"none": False, "false": False})
    prior_outcome = _word(prior_outcome, {"none": False, **_TRUE_FALSE})
    AllianceModel(control_outcome=control_outcome, prior_outcome=prior_outcome)
    return control_outcome, prior_outcome
