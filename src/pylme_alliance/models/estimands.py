"""What each number the alliance layer reports estimates, in words a methods reviewer
can check (issue 9). One text per estimand, so that tables, the report and figures
label a coefficient the same way.

Tables carry these texts in an ``estimand`` column. Use :func:`for_term` for a
coefficient of an :class:`~pylme_alliance.models.model.AllianceModel`; the constants
for everything else.
"""
from __future__ import annotations

from typing import Any

__all__ = [
    "WITHIN_TOTAL", "WITHIN_DIRECT", "CONCURRENT_WITHIN", "CONCURRENT_BETWEEN",
    "BETWEEN_CONDITIONAL", "BETWEEN_UNCONDITIONAL", "BETWEEN_LEVEL_EARLY", "BETWEEN_LEVEL_MEAN",
    "LAGGED_OUTCOME_WITHIN", "LAGGED_OUTCOME_BETWEEN", "LAGGED_OUTCOME_RAW",
    "SLOPE_SD", "SHARE_MODEL", "CONTROL_OUTCOME_BIAS", "for_term",
]

WITHIN_TOTAL = (
    "within-patient, total: the difference in the outcome {lead} session(s) later when the patient's "
    "alliance is one point above the patient's own level, at the same current outcome{before}; "
    "includes what is carried through the outcomes in between"
)
WITHIN_DIRECT = (
    "within-patient, direct: the difference in the outcome {lead} session(s) later when the patient's "
    "alliance is one point above the patient's own level, at the same most recent earlier outcome{before} "
    "and the same alliance deviations in between; excludes what is carried through the outcomes in between"
)
CONCURRENT_WITHIN = (
    "within-patient, concurrent: the outcome of the same session when the patient's alliance is one "
    "point above the patient's own level (an association, no temporal order)"
)
CONCURRENT_BETWEEN = (
    "between-patient, concurrent: the difference in the session outcome between patients whose alliance "
    "level differs by one point (an association)"
)
BETWEEN_CONDITIONAL = (
    "between-patient, conditional change: the difference in the outcome {lead} session(s) later between "
    "patients whose alliance level differs by one point AT THE SAME {held}, roughly how much faster the "
    "outcome changes for patients with a better alliance; not a difference in outcome level (see "
    "between_effect()) and not a fixed multiple of the within effect (it depends on how the outcome "
    "carries over and on the patients' own trajectories)"
)
BETWEEN_UNCONDITIONAL = (
    "between-patient: the difference in the outcome {lead} session(s) later between patients whose "
    "alliance level differs by one point (no outcome control)"
)
BETWEEN_LEVEL_EARLY = (
    "between-patient level: the difference in outcome level (sessions after the first {k}) between "
    "patients whose early alliance (mean of sessions 1-{k}) differs by one point{adjusted}"
)
BETWEEN_LEVEL_MEAN = (
    "between-patient level: the difference in outcome level between patients whose mean alliance over "
    "treatment differs by one point{adjusted}; the mean includes the same sessions' alliance, so this is "
    "an association, not a prospective effect"
)
LAGGED_OUTCOME_WITHIN = (
    "lagged outcome, within-patient: the outcome autoregression around the patient's mean; carries "
    "dynamic-panel (Nickell) bias of about -(1+rho)/(T-1) with T sessions per patient, so it is not "
    "the autocorrelation"
)
LAGGED_OUTCOME_BETWEEN = (
    "lagged outcome, between-patient: the patient's mean outcome (absorbs the patient level, the "
    "Mundlak term); not interpretable on its own"
)
OUTCOME_BEFORE = (
    "outcome of the session before the alliance rating (t - 1), a control: under symptom->alliance "
    "feedback it is what shaped that alliance; not interpretable on its own"
)
SESSION_BETWEEN = (
    "patient's mean session over the fitted rows (Mundlak term of the session trend), a control: keeps "
    "the trend within-patient when who stays in treatment depends on the patient; not interpretable on its own"
)
LAGGED_OUTCOME_RAW = (
    "lagged outcome, raw: beside a patient random intercept it absorbs part of the patient level "
    "(dynamic-panel bias), and biases the within-alliance effect under symptom->alliance feedback"
)
SLOPE_SD = (
    "SD over patients of the within-patient alliance effect (random slope), from the model; "
    "individual patients' slopes (BLUPs) are shrunken toward the mean and spread less"
)
SHARE_MODEL = (
    "model-implied share of patients whose within-patient effect has the better sign: "
    "Phi(+-beta/tau) for a normal random slope"
)

#: The bias of each ``control_outcome`` option, for docstrings and notes. No recovery
#: figure here: a figure belongs to the design it was measured on, and a fit's notes and
#: status quote the measured design closest to its data (models/reliability.py).
CONTROL_OUTCOME_BIAS = {
    "decomposed": (
        "the lagged outcome (and the outcome of the session before the alliance rating) as deviations "
        "from the patient's mean, with the patient's mean outcome, mean session and mean alliance over the "
        "fitted rows (Mundlak): how close the within-alliance coefficient comes to the truth depends on the "
        "design (in the recovery study it broke on balanced series of 3 to 6 sessions per patient), and a fit's "
        "status says so with the figures measured on the design closest to its data; the lagged-outcome "
        "deviation slope carries Nickell bias of about -(1+rho)/(T-1)"
    ),
    "raw": (
        "the raw lagged outcome beside a patient random intercept (dynamic-panel trap): its slope "
        "absorbs part of the patient level and, when symptoms feed back into the next alliance, the "
        "within-alliance effect is biased toward zero"
    ),
    False: (
        "no outcome control: the within-alliance coefficient also carries the patient's outcome "
        "trajectory (e.g. a symptom level that shapes later alliance); the between coefficient is "
        "then a level difference"
    ),
}


def for_term(term: str, model: Any) -> str:
    """The estimand text of a fixed-effect term of an AllianceModel's fit.

    Parameters
    ----------
    term : str
        ``alliance_within``, ``alliance_between``, or an outcome-control term
        (``outcome_within``, ``outcome_between``, ``outcome``, ``outcome_lead<j>``,
        ``outcome_within_lead<j>``).
    model : AllianceModel
        The model (its ``lead``, ``effect`` and ``control_outcome`` decide the text).

    Returns
    -------
    str
        The text, or "" for a term without a stated estimand (session, moderators).
    """
    lead = int(getattr(model, "lead", 1))
    control = getattr(model, "control_outcome", "decomposed")
    effect = getattr(model, "effect", "total")
    before = " and the outcome of the session before" if getattr(model, "prior_outcome", False) and control else ""
    if term == "alliance_within":
        if lead == 0:
            return CONCURRENT_WITHIN
        # at lead 1 the most recent earlier outcome is the current one: direct = total
        text = WITHIN_DIRECT if effect == "direct" and lead > 1 else WITHIN_TOTAL
        if control is False:
            text = text.replace(", at the same current outcome{before}", "").replace(
                "at the same most recent earlier outcome{before} and ", "at ")
        return text.format(lead=lead, before=before)
    if term == "alliance_between":
        if lead == 0:
            return CONCURRENT_BETWEEN
        if control is False:
            return BETWEEN_UNCONDITIONAL.format(lead=lead)
        held = "current outcome" if control == "raw" else "mean outcome over the fitted sessions"
        return BETWEEN_CONDITIONAL.format(lead=lead, held=held)
    if term == "outcome_between":
        return LAGGED_OUTCOME_BETWEEN
    if term.startswith("outcome_before"):
        return OUTCOME_BEFORE
    if term == "session_between":
        return SESSION_BETWEEN
    if term.startswith("outcome_within"):
        return LAGGED_OUTCOME_WITHIN
    if term == "outcome" or term.startswith("outcome_lead"):
        return LAGGED_OUTCOME_RAW
    return ""
