"""between_effect(): the between-patient alliance effect on the outcome LEVEL, with its
estimand stated.

With the current outcome controlled (the lagged alliance model), the alliance_between
coefficient is a conditional change coefficient: how much more the outcome CHANGES for patients with a
better alliance at the same current outcome, not how different their outcomes are
(METHODS.md, best practice 4; on the demo it was -0.96 at lead 1 and -4.97 at lead 2 for
the same patients). The study's between-patient sentence ("patients who reported a
better early alliance also reported a better outcome") is a level difference, so it
gets its own model, without the lagged outcome:

    outcome_it ~ alliance_level_i [+ intake_i] [+ session_t]
                 + patient intercept + therapist variance

fitted on the sessions AFTER those that define the alliance level (early alliance) or
after the intake (person mean), so that neither the level nor the intake is regressed
on itself.
"""
from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
import pandas as pd

from ..errors import PylmeError
from ..models.choices import choose_therapist
from ..models.estimands import BETWEEN_LEVEL_EARLY, BETWEEN_LEVEL_MEAN
from ..panel import _centering
from ..panel._checks import _numeric_values
from ..panel.data import AlliancePanel
from ..results import MixedFit

__all__ = ["between_effect", "between_fit", "LEVELS"]

LEVELS = ("auto", "early", "mean")
TERM = "alliance_level"
COLUMNS = ["term", "level", "estimate", "std_error", "df", "statistic", "p_value", "conf_low", "conf_high",
           "std_estimate", "n", "n_patients", "adjusted_for", "converged", "singular", "estimand"]
# "auto" takes the early alliance when the median patient has at least this many
# sessions after the early window (outcome rows the level can predict)
_AUTO_MIN_AFTER = 2


def between_fit(
    panel: AlliancePanel,
    *,
    level: str = "auto",
    early_sessions: int | None = None,
    adjust_intake: bool | Hashable = True,
    therapist: str = "auto",
    session_trend: bool = True,
    engine: str = "lme4",
) -> tuple[MixedFit, dict[str, Any]]:
    """Fit the between-patient level model; see :func:`between_effect` for the options.

    Returns
    -------
    fit : MixedFit
        The fitted model (term ``alliance_level``; ``intake`` when adjusted).
    info : dict
        ``level`` (the level used), ``early_sessions``, ``adjusted_for`` (text),
        ``estimand``, ``notes`` (list of str) and ``scales`` (SD over patients of the
        alliance level and of the patient mean outcome in the fitted rows).
    """
    if not isinstance(panel, AlliancePanel):
        raise PylmeError("between_effect() takes the AlliancePanel made by prepare()")
    if level not in LEVELS:
        raise PylmeError(f"level must be one of {LEVELS}, got {level!r}")
    k = panel.early_sessions if early_sessions is None else early_sessions
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise PylmeError(f"early_sessions must be a positive integer, got {early_sessions!r}")
    k = int(k)
    data, roles = panel.data, panel.roles
    notes: list[str] = []
    patient_codes = pd.factorize(data[roles["patient"]], sort=False)[0]
    # panel rows are sorted by patient then session: codes are dense and non-decreasing
    n_patients = int(patient_codes.max()) + 1
    starts = _centering.group_starts(patient_codes)
    rank = np.arange(len(data)) - starts[patient_codes]
    sizes = _centering.group_sizes(patient_codes, n_patients)

    if level == "auto":
        after = float(np.median(sizes)) - k
        level = "early" if after >= _AUTO_MIN_AFTER else "mean"
        notes.append(
            f"level='auto': {'early' if level == 'early' else 'mean'} alliance, as the median patient has "
            f"{np.median(sizes):g} sessions ({'enough' if level == 'early' else 'too few'} for sessions "
            f"after the first {k})")
    alliance = data[roles["alliance"]].to_numpy(dtype=float)
    outcome = data[roles["outcome"]].to_numpy(dtype=float)
    if level == "early":
        parts = _centering.early_mean(patient_codes, alliance, n_patients, k)
        keep = rank >= k
    else:
        parts = _centering.person_mean(patient_codes, alliance, n_patients)
        keep = np.ones(len(data), dtype=bool)

    intake, adjusted_for = _intake(panel, patient_codes, starts, n_patients, adjust_intake)
    if adjust_intake is True and level == "mean":
        keep &= rank >= 1  # the intake outcome is the covariate, not a response row
    keep &= np.isfinite(outcome)
    if intake is not None:
        keep &= np.isfinite(intake[patient_codes])
    rows = np.flatnonzero(keep)
    used = np.unique(patient_codes[rows])
    if len(used) < 3:
        raise PylmeError(f"between_effect(level={level!r}) has {len(used)} patient(s) with outcome rows "
                         f"to model; it needs several (early_sessions={k})")
    if len(used) < n_patients:
        why = f"no session after the first {k}" if level == "early" else "no outcome row to model"
        notes.append(f"{n_patients - len(used)} patient(s) with {why} do not enter the between model")

    # centred over the patients that enter the model, each once
    level_values = parts.level[used]
    centre = float(level_values.mean())
    code = patient_codes[rows]
    frame = pd.DataFrame({
        "patient": pd.Categorical(code),
        # centred: lme4's gradient check misfires on an uncentred session column
        # (max|grad| 0.005 on the bundled trial); only the intercept moves
        "session": _centred(data[roles["session"]].to_numpy(dtype=float)[rows]),
        "outcome": outcome[rows],
        TERM: parts.level[code] - centre,
    })
    if intake is not None:
        frame["intake"] = intake[code] - float(intake[used].mean())
    therapist = _therapist_design(panel, therapist)
    if therapist != "none":
        frame["therapist"] = pd.Categorical(data[roles["therapist"]].to_numpy()[rows].astype(str))
    fixed = [TERM] + (["intake"] if intake is not None else []) + (["session"] if session_trend else [])
    fit = _fit(frame, "outcome ~ " + " + ".join(fixed), therapist, engine)
    person_outcome = frame.groupby("patient", observed=True)["outcome"].mean()
    scales = {TERM: float(np.std(level_values, ddof=1)), "outcome_between": float(person_outcome.std(ddof=1))}
    adjusted = f", at the same {adjusted_for}" if adjusted_for else ""
    text = (BETWEEN_LEVEL_EARLY.format(k=k, adjusted=adjusted) if level == "early"
            else BETWEEN_LEVEL_MEAN.format(adjusted=adjusted))
    info = {"level": level, "early_sessions": k, "adjusted_for": adjusted_for or "",
            "estimand": text, "notes": notes, "scales": scales}
    return fit, info


def between_effect(
    panel: AlliancePanel,
    *,
    level: str = "auto",
    early_sessions: int | None = None,
    adjust_intake: bool | Hashable = True,
    therapist: str = "auto",
    session_trend: bool = True,
    engine: str = "lme4",
    conf_level: float = 0.95,
) -> pd.DataFrame:
    """The between-patient alliance effect on the outcome level.

    Parameters
    ----------
    panel : AlliancePanel
    level : {"auto", "early", "mean"}
        The patient's alliance level: ``"early"``, the mean of the first
        ``early_sessions`` sessions, predicting the outcome of the LATER sessions (as
        the study: "patients who reported a better early alliance ..."); ``"mean"``, the
        person mean over all sessions (an association: it contains the same sessions'
        alliance); ``"auto"`` (default) takes "early" when the median patient has at
        least 2 sessions after the early window, else "mean".
    early_sessions : int, optional
        Sessions that define early alliance (default: the panel's ``early_sessions``).
    adjust_intake : bool or column name
        ``True`` (default): adjust for the patient's first outcome (its intake score;
        that session is then not a response row); a column name: adjust for that
        patient-level column (its first observed value per patient); ``False``: no
        adjustment.
    therapist : {"auto", "nested", "crossed", "none"}
        Therapist variance; "auto" is nested, crossed when a patient saw several
        therapists, none without a therapist column.
    session_trend : bool
        Adjust for the session number (a common linear trend).
    engine : {"lme4", "nlme", "glmmtmb", "statsmodels"}
    conf_level : float

    Returns
    -------
    pandas.DataFrame
        One row, term ``alliance_level``: level ("early"/"mean"), estimate, std_error,
        df, statistic, p_value, conf_low, conf_high, ``std_estimate`` (estimate times
        the SD over patients of the alliance level, divided by the SD over patients of
        their mean outcome in the fitted rows: the between-patient SDs), n (sessions),
        n_patients, adjusted_for, converged, singular, and ``estimand``: what the number
        means, in words. ``table.attrs["notes"]`` lists what was decided.
    """
    fit, info = between_fit(panel, level=level, early_sessions=early_sessions, adjust_intake=adjust_intake,
                            therapist=therapist, session_trend=session_trend, engine=engine)
    table = fit.tidy(conf_int=True, conf_level=conf_level)
    row = table[table["term"] == TERM].copy()
    scales = info["scales"]
    row["std_estimate"] = row["estimate"] * scales[TERM] / scales["outcome_between"]
    row["level"] = info["level"]
    row["n"] = fit.nobs
    row["n_patients"] = fit.data["patient"].nunique()
    row["adjusted_for"] = info["adjusted_for"]
    row["converged"] = bool(fit.converged)
    row["singular"] = bool(fit.singular)
    row["estimand"] = info["estimand"]
    out = row[COLUMNS].reset_index(drop=True)
    out.attrs["notes"] = list(info["notes"]) + list(fit.warnings)
    return out


def _intake(panel: AlliancePanel, codes: np.ndarray, starts: np.ndarray, n_patients: int,
            adjust: bool | Hashable) -> tuple[np.ndarray | None, str]:
    """Intake value per patient and its description (None when not adjusted)."""
    if adjust is False or adjust is None:
        return None, ""
    data = panel.data
    if adjust is True:
        outcome = data[panel.roles["outcome"]].to_numpy(dtype=float)
        return outcome[starts], f"intake (first) {panel.outcome_name}"
    if adjust not in data.columns:
        raise PylmeError(f"adjust_intake={adjust!r} is not a column of the panel's data; give True "
                         "(the first outcome), False, or a patient-level column")
    values = _numeric_values(data[adjust], adjust, "intake")
    # first observed value per patient (a value recorded only at intake still counts)
    first = pd.Series(values).groupby(codes).first().reindex(range(n_patients)).to_numpy(dtype=float)
    return first, f"{adjust}"


def _therapist_design(panel: AlliancePanel, therapist: str) -> str:
    return choose_therapist(panel, therapist)[0]


def _fit(frame: pd.DataFrame, fixed: str, therapist: str, engine: str) -> MixedFit:
    """The level model on each engine: patient intercept, therapist variance."""
    patient_group = "therapist:patient" if therapist == "nested" else "patient"
    if engine in ("lme4", "glmmtmb", "glmmTMB"):
        random = f" + (1 | {patient_group})" + (" + (1 | therapist)" if therapist != "none" else "")
        if engine == "lme4":
            from ..engines.lme4 import lmer

            # bobyqa: nloptwrap's loose stopping rule leaves max|grad| above lme4's own
            # check on the bundled trial (a false "failed to converge"); bobyqa reaches
            # the same optimum (logLik equal to 1e-8) and passes the check
            return lmer(fixed + random, frame, control={"optimizer": "bobyqa"})
        from ..engines.glmmtmb import glmmtmb

        return glmmtmb(fixed + random, frame)
    if engine == "nlme":
        from ..engines.nlme import lme

        if therapist == "crossed":
            raise PylmeError("nlme cannot express therapists crossed with patients; use engine='lme4'")
        random_nlme: Any = {"therapist": "~ 1", "patient": "~ 1"} if therapist == "nested" else "~ 1 | patient"
        return lme(fixed, frame, random=random_nlme)
    if engine == "statsmodels":
        from ..engines.statsmodels import mixedlm

        if therapist == "none":
            return mixedlm(fixed, frame, groups="patient")
        if therapist == "crossed":
            raise PylmeError("statsmodels cannot express therapists crossed with patients; use engine='lme4'")
        return mixedlm(fixed, frame, groups="therapist", re_formula="~1", vc_formula={"patient": "0 + C(patient)"})
    raise PylmeError(f"engine must be 'lme4', 'nlme', 'glmmtmb' or 'statsmodels', got {engine!r}")


def _centred(values: np.ndarray) -> np.ndarray:
    return values - float(np.mean(values))
