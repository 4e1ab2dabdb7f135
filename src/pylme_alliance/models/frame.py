"""The model frame an AllianceModel hands to an engine: the panel's columns under the
field's names, with the Mundlak terms of the decomposed outcome control computed over the
rows the model fits (one idea: which numbers the engine sees)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..panel.prepare import OUTCOME_BEFORE, AlliancePanel
from .spec import SESSION_FACTOR, ModelSpec

#: The outcome at session t - 1 (before the alliance rating at t), by session number.
BEFORE = OUTCOME_BEFORE


def model_frame(panel: AlliancePanel, spec: ModelSpec, model: Any) -> pd.DataFrame:
    if getattr(model, "prior_outcome", None) == "auto":
        # the columns (and the rows the Mundlak means use) follow the decided model, as spec does
        model = model.resolve(panel)
    data = panel.data
    roles = panel.roles
    outcome = data[roles["outcome"]].to_numpy(dtype=float)
    response = outcome if model.lead == 0 else data[spec.response].to_numpy(dtype=float)
    columns: dict[str, Any] = {
        "patient": _as_category(data[roles["patient"]]),
        "session": data[roles["session"]].to_numpy(),
        "outcome": outcome,
        spec.response: response,
        "alliance_within": data["alliance_within"].to_numpy(dtype=float),
        "alliance_between": data["alliance_between"].to_numpy(dtype=float),
    }
    prior, between_sessions = model._direct_columns()
    if prior is not None:
        columns[prior] = data[prior].to_numpy(dtype=float)
    for term in between_sessions:
        columns[term] = data[term].to_numpy(dtype=float)
    if BEFORE in model._outcome_terms() or f"{BEFORE}_within" in model._outcome_terms():
        columns[BEFORE] = before_values(panel)
    if roles.get("therapist") is not None:
        columns["therapist"] = _as_category(data[roles["therapist"]])
    if roles.get("time") is not None and "time_days" in data:
        columns["time_days"] = data["time_days"].to_numpy(dtype=float)
    for column, original in spec.moderator_names.items():
        source = data[panel.moderators[original].column]
        columns[column] = source.array if isinstance(source.dtype, pd.CategoricalDtype) else source.to_numpy()
    frame = pd.DataFrame(columns)
    if model.control_outcome == "decomposed":
        frame = _decompose(frame, spec, model, prior, recentre_alliance=panel.within == "person_mean")
    if model.residual == "ar1" and model.engine == "glmmtmb":
        # glmmTMB's ar1() needs a factor of ALL equally spaced times, attended or not
        last = int(frame["session"].max())
        frame[SESSION_FACTOR] = pd.Categorical(frame["session"], categories=list(range(1, last + 1)))
    return frame


def before_values(panel: AlliancePanel) -> np.ndarray:
    """The outcome at session t - 1 for every panel row: prepare()'s column, taken from
    every attended session (also those without an alliance rating), or, for a panel
    made before that column existed, looked up among the panel's own rows."""
    data, roles = panel.data, panel.roles
    if BEFORE in data:
        return data[BEFORE].to_numpy(dtype=float)
    return outcome_before(data[roles["patient"]], data[roles["session"]].to_numpy(),
                          data[roles["outcome"]].to_numpy(dtype=float))


def outcome_before(patient: Any, session: np.ndarray, outcome: np.ndarray) -> np.ndarray:
    """The outcome at session t - 1 of the same patient (by session NUMBER; NaN when that
    session was not attended), as METHODS.md requires of every lag."""
    from ..panel._leads import previous_positions

    position = previous_positions(patient, session)
    if position is not None:
        values = np.asarray(outcome, dtype=float)
        return np.where(position >= 0, values[np.maximum(position, 0)], np.nan)
    return _outcome_before_merge(patient, session, outcome)


def _outcome_before_merge(patient: Any, session: np.ndarray, outcome: np.ndarray) -> np.ndarray:
    """:func:`outcome_before` by a merge on (patient, session + 1): any ids and session
    numbers, and the reference the fast path is tested against."""
    rows = pd.DataFrame({"patient": patient, "session": session, "outcome": outcome})
    earlier = rows.assign(session=rows["session"] + 1)
    merged = rows[["patient", "session"]].merge(earlier, on=["patient", "session"], how="left",
                                                 validate="many_to_one")
    return merged["outcome"].to_numpy(dtype=float)


def _decompose(frame: pd.DataFrame, spec: ModelSpec, model: Any, prior: str | None, *,
               recentre_alliance: bool = True) -> pd.DataFrame:
    """Mundlak terms over the rows the model fits.

    The patient's mean outcome and mean session are taken over the rows the engine keeps
    (every model column present), not over all sessions: a mean over other rows is not
    the fixed-effects estimator's, and its difference is what biased the within effect
    on short series.

    With ``recentre_alliance`` (the panel's person-mean decomposition) the alliance is
    split over the same rows. Centred on all attended sessions, the deviations of the
    fitted rows do not average zero (the last session, which has no next outcome, and
    sessions next to a missed one are left out), so the coefficient mixed in a
    between-patient contrast. The model's standard error undervalues that contrast
    (the patient's mean outcome, itself made of the responses, leaves patient-mean
    residuals far smaller than the model assumes), which made the intervals conservative
    (coverage 1.00 in the recovery study; .975 after), and under feedback with dropout it
    carried bias (+9% against +3%). Over the fitted rows the estimate is the fixed-effects
    one, at some cost in precision (empirical SD 0.46 -> 0.54 on the default design).
    An ``early`` or ``detrend`` decomposition is the user's choice and is kept.
    """
    needed = [spec.response, "outcome", "alliance_within", "alliance_between", "session"]
    needed += [c for c in frame.columns if c == prior or c == BEFORE or c.startswith("alliance_within_lead")]
    needed += list(spec.moderator_names)
    kept = frame[needed].notna().all(axis=1).to_numpy()
    means = KeptMeans(patient_codes(frame["patient"]), kept)
    out = frame.copy()
    level, grand = means.of(frame["outcome"].to_numpy(dtype=float))
    out["outcome_between"] = np.where(kept, level - grand, np.nan)
    source = frame[prior] if prior is not None else frame["outcome"]
    deviation = "outcome_within" if prior is None else prior.replace("outcome_", "outcome_within_")
    out[deviation] = np.where(kept, source.to_numpy(dtype=float) - level, np.nan)
    if BEFORE in frame:
        # its own patient mean, not the current outcome's: with every time-varying control
        # centred on its own mean (and that mean a term) the within-alliance coefficient is
        # the fixed-effects one; centred on the current outcome's mean it was not (a gap of
        # -0.13 on average, up to 0.29, against OLS with patient dummies; issue 18)
        before = frame[BEFORE].to_numpy(dtype=float)
        before_level, before_grand = means.of(before)
        out[f"{BEFORE}_within"] = np.where(kept, before - before_level, np.nan)
        out[f"{BEFORE}_between"] = np.where(kept, before_level - before_grand, np.nan)
    if recentre_alliance:
        alliance = frame["alliance_within"].to_numpy(dtype=float) + frame["alliance_between"].to_numpy(dtype=float)
        mean_alliance, grand_alliance = means.of(alliance)
        out["alliance_within"] = np.where(kept, alliance - mean_alliance, np.nan)
        out["alliance_between"] = np.where(kept, mean_alliance - grand_alliance, np.nan)
    if "session_between" in spec.fixed_terms:
        mean_session, grand_session = means.of(frame["session"].to_numpy(dtype=float))
        out["session_between"] = np.where(kept, mean_session - grand_session, np.nan)
    return out


def patient_codes(patient: Any) -> np.ndarray:
    """Integer patient codes for :class:`KeptMeans` (a categorical's own codes; -1: no id)."""
    if isinstance(patient.dtype, pd.CategoricalDtype):
        return np.asarray(patient.cat.codes, dtype=np.int64)
    return np.asarray(pd.factorize(patient)[0], dtype=np.int64)


class KeptMeans:
    """Each patient's mean over the kept rows, by integer group sums (this runs for every
    power replicate, where pandas' groupby was a tenth of the Python time).

    ``codes`` are integer patient codes (-1: no patient, never counted); ``n_patients``
    (default: the largest code + 1) sets how many patients the counts cover, those
    without kept rows included.
    """

    def __init__(self, codes: np.ndarray, kept: np.ndarray, n_patients: int | None = None) -> None:
        codes = np.asarray(codes, dtype=np.int64)
        self.kept = kept & (codes >= 0)
        self.codes = np.where(codes >= 0, codes, 0)
        if n_patients is None:
            n_patients = int(self.codes.max()) + 1 if len(self.codes) else 0
        self.size = n_patients
        self.counts = np.bincount(self.codes[self.kept], minlength=self.size)
        self.present = self.counts > 0

    def per_patient(self, values: np.ndarray) -> np.ndarray:
        """The mean of ``values`` over each patient's kept rows (NaN for none), by code."""
        sums = np.bincount(self.codes[self.kept], weights=values[self.kept], minlength=self.size)
        with np.errstate(invalid="ignore", divide="ignore"):
            return sums / self.counts

    def of(self, values: np.ndarray) -> tuple[np.ndarray, float]:
        """(the patient's mean on every row, the mean of the patients' means)."""
        per_patient = self.per_patient(values)
        grand = float(per_patient[self.present].mean()) if self.present.any() else 0.0
        return per_patient[self.codes], grand


def _as_category(values: pd.Series) -> pd.Categorical:
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.array.remove_unused_categories()
    return pd.Categorical(values.astype(str) if values.dtype == object else values)
