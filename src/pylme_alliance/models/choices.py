"""Choices the models make from the panel when the caller leaves them open.

One implementation for every route (AllianceModel, duration(), moderators(),
between_effect(), analyze(), the CLI), so that the same data get the same model
whichever function fits it.
"""
from __future__ import annotations

from typing import Any

from ..errors import PylmeError

#: The therapist terms a model can have, and "auto" (decided from the panel).
THERAPIST_CHOICES = ("auto", "nested", "crossed", "none")


def choose_therapist(panel: Any, therapist: str | None = "auto") -> tuple[str, str]:
    """The therapist term for ``panel``, and the sentence that says why ("" when given).

    Parameters
    ----------
    panel : AlliancePanel
        The prepared panel (its roles say whether there is a therapist column).
    therapist : {"auto", "nested", "crossed", "none"} or None
        ``"auto"`` (or None) chooses: no therapist column -> ``"none"``; a patient who
        saw more than one therapist -> ``"crossed"``; otherwise ``"nested"``. Any other
        value is checked against the panel and returned.

    Returns
    -------
    tuple of (str, str)
        The therapist term and, when it was chosen here, the sentence saying so.

    Raises
    ------
    PylmeError
        For an unknown value, a therapist term without a therapist column, or
        ``"nested"`` when some patient saw more than one therapist.
    """
    if therapist is None:
        therapist = "auto"
    if therapist not in THERAPIST_CHOICES:
        raise PylmeError(f"therapist must be one of {THERAPIST_CHOICES}, got {therapist!r}")
    has_column = panel.roles.get("therapist") is not None
    multi = len(panel.multi_therapist_patients) if has_column else 0
    if therapist == "auto":
        if not has_column:
            return "none", "No therapist column: the models have no therapist term (therapist='none')."
        if multi:
            return "crossed", (f"{multi} patient(s) saw more than one therapist, so therapists are crossed with "
                               "patients (therapist='crossed').")
        return "nested", "Every patient saw one therapist: patients nested in therapists (therapist='nested')."
    if therapist != "none" and not has_column:
        raise PylmeError(f"therapist={therapist!r} needs a therapist column; give prepare(therapist=...) "
                         "or use therapist='none' (or 'auto', which chooses it)")
    if therapist == "nested" and multi:
        some = list(panel.multi_therapist_patients[:3])
        raise PylmeError(f"{multi} patients saw more than one therapist (e.g. {some}), so patients are not "
                         "nested in therapists; use therapist='crossed' (or 'auto', which chooses it)")
    return therapist, ""
