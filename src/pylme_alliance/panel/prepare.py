"""Prepare session-by-session therapy data for alliance-outcome models.

``prepare()`` turns a long table (one row per patient session, any order, any
column names) into an :class:`AlliancePanel`: the usable sessions sorted by
patient and session, alliance and the outcome each split into a between-patient
level and a within-patient deviation, the outcome at later sessions found by
session number, patient-level moderators centred, and every dropped row kept
with the reason it was dropped (METHODS.md, best practices 1-4 and 7).

It is pure pandas/numpy and never starts R. The panel itself lives in
:mod:`.panel`, the input checks in :mod:`._checks`, moderators in
:mod:`._moderators`; all public names stay importable from here.
"""
from __future__ import annotations

import warnings
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..errors import PylmeError
from . import _centering, _values
from ._checks import (
    _check_duplicates,
    _check_leads,
    _check_role_columns,
    _derived_name,
    _id_codes,
    _names,
    _numeric_values,
    _positive_int,
    _session_numbers,
    _time_in_days,
)
from ._columns import _set_checked, _with_columns
from ._leads import lead_positions, outcome_leads
from ._moderators import _prepare_moderator, moderator_kind
from .data import (
    REASON_ALLIANCE,
    REASON_BOTH,
    REASON_NA_ALLIANCE,
    REASON_NA_OUTCOME,
    REASON_OUTCOME,
    REASON_PATIENT,
    REASON_SESSION,
    REASON_THERAPIST,
    REASON_TIME,
    AlliancePanel,
    ModeratorInfo,
    _reason_counts,
)

__all__ = ["prepare", "AlliancePanel", "ModeratorInfo", "direct_columns"]

WITHIN_METHODS = ("person_mean", "early", "detrend")
OUTCOME_BETTER = ("lower", "higher")


#: The outcome at session t - 1 (before the alliance rating at t), by session number, from
#: every attended session: the sessions dropped for a missing alliance rating included.
OUTCOME_BEFORE = "outcome_before"


def direct_columns(lead: int) -> tuple[str | None, list[str]]:
    """The panel columns the DIRECT lead-``lead`` model needs besides ``outcome_lead<lead>``.

    Returns
    -------
    prior : str or None
        The most recent outcome before session t + lead: ``outcome_lead<lead-1>``, or
        None for lead 1 (the outcome at t itself).
    intermediate : list of str
        ``alliance_within_lead<j>`` for j = 1 .. lead-1: the alliance deviations between
        t and t + lead.
    """
    if lead <= 1:
        return None, []
    return f"outcome_lead{lead - 1}", [f"alliance_within_lead{j}" for j in range(1, lead)]


def prepare(
    data: pd.DataFrame,
    *,
    patient: Hashable,
    session: Hashable,
    alliance: Hashable,
    outcome: Hashable,
    therapist: Hashable | None = None,
    time: Hashable | None = None,
    within: str = "person_mean",
    early_sessions: int = 3,
    leads: Iterable[int] | int = (1, 2, 3),
    moderators: Iterable[Hashable] | Hashable = (),
    min_sessions: int = 2,
    time_varying: Iterable[Hashable] | Hashable = (),
    split_therapist: bool = False,
    center_outcome: bool | None = None,
    reference_levels: Mapping[Hashable, Any] | None = None,
    outcome_better: str | None = None,
    outcome_label: str | None = None,
    alliance_label: str | None = None,
    alliance_range: tuple[float, float] | None = None,
    outcome_range: tuple[float, float] | None = None,
    na_values: Any = None,
) -> AlliancePanel:
    """Prepare session-level data for alliance-outcome mixed models.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per patient session, in any order. Never modified.
    patient, session, alliance, outcome : column names
        Patient id (string, integer or categorical), session number (positive
        integers; gaps allowed), alliance score and outcome score (numeric;
        NaN/None/pd.NA mean missing).
    therapist : column name, optional
        Therapist id; enables ``split_therapist`` and the multi-therapist check.
    time : column name, optional
        Calendar time of the session (numeric days, datetime or timedelta);
        stored as ``time_days``, days since the patient's first kept session,
        for a CAR(1) residual structure.
    within : {"person_mean", "early", "detrend"}
        How alliance is split into a between-patient level and a within-patient
        deviation: the person mean; the mean of the first ``early_sessions``
        sessions ("early alliance"); or person-specific linear detrending on
        session number (level at the grand-mean session, within = residual).
    early_sessions : int
        Number of first sessions averaged when ``within="early"``.
    leads : tuple of int
        Add ``outcome_lead<k>``: the outcome at session t + k of the same patient,
        found by session number (NA when that session is missing). The default
        (1, 2, 3) is the default of :func:`~pylme_alliance.analyze` and ``duration()``.
    moderators : column names
        Numeric moderators are grand-mean centred over patients into
        ``<name>_c``; categorical ones (object, string, category, bool) become a
        pandas Categorical with the reference level first.
    min_sessions : int
        Patients with fewer usable sessions than this are dropped.
    time_varying : column names
        Moderators allowed to vary within a patient (centred over rows).
    split_therapist : bool
        Also split the patient level into ``alliance_between_therapist`` (the
        therapist mean of patient levels, grand-mean centred) and
        ``alliance_between_patient`` (patient level minus its therapist mean).
        Requires ``therapist``.
    center_outcome : bool, optional
        Deprecated and without effect: ``outcome_within`` (outcome minus the
        patient's mean) and ``outcome_between`` (the patient's mean, grand-mean
        centred) are always added, because the default alliance model controls
        the lagged outcome as these two parts. The dynamic-panel (Nickell) bias
        this puts on the lagged-outcome slope is reported by the fit that uses
        it (:meth:`AllianceModel.fit`), not here.
    reference_levels : dict, optional
        ``{moderator: level}`` overriding the default reference (first level in
        sorted order; the category order for a pandas Categorical).
    outcome_better : {"lower", "higher"}, optional
        Which direction of the outcome is better (e.g. "lower" for a symptom
        score such as the OQ-45). Stored on the panel; texts, figures and shares
        of patients "helped" use it. None (default): neutral wording, no claims
        of benefit.
    outcome_label : str, optional
        The outcome's name in texts and axis labels (default: the column's variable
        label from :func:`~pylme_alliance.readers.read_data`, in
        ``data.attrs["labels"]``, else the column name).
    alliance_label : str, optional
        The alliance measure's name in texts (default: as for ``outcome_label``).
    alliance_range, outcome_range : (low, high), optional
        The scale's bounds (e.g. ``(1, 7)`` for a WAI mean score). A value outside
        them is refused before anything else, naming the column, the count and
        examples: a missing-data code such as -99 must be declared, never analysed.
        Without bounds, typical codes (-99, -9, 999, 9999, ...) standing apart from
        the other values, and values far outside the bulk, of the alliance, the
        outcome and numeric moderators raise a
        :class:`~pylme_alliance.errors.SentinelWarning` (also kept in ``notes``).
    na_values : scalar, sequence or dict, optional
        Codes that mean missing: a number or a list applies to the alliance, the
        outcome and the moderators (not to ids or session numbers); a dict
        ``{column: codes}`` names any column used. Their rows are dropped with the
        reason "... declared missing (na_values)"; ``panel.dropped`` keeps the code.

    Returns
    -------
    AlliancePanel

    Raises
    ------
    PylmeError
        For values outside ``alliance_range``/``outcome_range``, a missing or
        duplicated column, duplicate (patient, session) rows,
        non-numeric or infinite alliance/outcome values, a constant alliance
        column, session numbers that are not positive integers, a moderator that
        varies within patients (unless time-varying), a moderator mixing numbers
        with text (e.g. "n/a"), a derived column name already in the data, or
        invalid options.

    Notes
    -----
    A session is usable when its alliance and its outcome (the lagged-outcome
    control) are both observed; other rows go to ``panel.dropped`` with the
    reason. Leads are computed on every row with a patient and a session
    before anything is dropped, so a session with missing alliance still
    supplies the outcome that earlier sessions lead to. The decomposition,
    grand means and moderator centring use the kept sessions of kept patients.
    In ``panel.data`` the session column is int64 and alliance/outcome are
    float64. ``between + within == alliance - alliance_grand_mean`` for
    "person_mean" and "early"; for "detrend" the person's trend around the
    grand-mean session is removed as well.

    Examples
    --------
    >>> panel = prepare(df, patient="id", session="session", alliance="wai",
    ...                 outcome="oq", therapist="therapist", moderators=["intake"])
    >>> panel.data[["alliance_between", "alliance_within", "outcome_lead1"]]
    """
    # ---- options ----------------------------------------------------------
    if not isinstance(data, pd.DataFrame):
        raise PylmeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if within not in WITHIN_METHODS:
        raise PylmeError(f"within must be one of {', '.join(map(repr, WITHIN_METHODS))}; got {within!r}")
    early_sessions = _positive_int(early_sessions, "early_sessions")
    min_sessions = _positive_int(min_sessions, "min_sessions")
    leads = _check_leads(leads)
    moderator_names = _names(moderators, "moderators")
    time_varying_names = _names(time_varying, "time_varying")
    reference_levels = dict(reference_levels or {})
    if outcome_better is not None and outcome_better not in OUTCOME_BETTER:
        raise PylmeError(f"outcome_better must be 'lower', 'higher' or None; got {outcome_better!r}")
    for argument, label in (("outcome_label", outcome_label), ("alliance_label", alliance_label)):
        if label is not None and not isinstance(label, str):
            raise PylmeError(f"{argument} must be a string or None; got {type(label).__name__}")
    alliance_bounds = _values.bounds(alliance_range, "alliance_range")
    outcome_bounds = _values.bounds(outcome_range, "outcome_range")
    if center_outcome is not None:
        warnings.warn(
            "prepare(center_outcome=...) is deprecated and has no effect: outcome_within and "
            "outcome_between are always added, and the fit that uses them reports the "
            "dynamic-panel bias of the lagged-outcome slope", DeprecationWarning, stacklevel=2)

    roles: dict[str, Hashable | None] = {
        "patient": patient, "session": session, "alliance": alliance,
        "outcome": outcome, "therapist": therapist, "time": time,
    }
    used = _check_role_columns(data, roles, moderator_names)
    for name in time_varying_names:
        if name not in moderator_names:
            raise PylmeError(f"time_varying lists {name!r}, which is not among moderators={moderator_names!r}")
    for name in reference_levels:
        if name not in moderator_names:
            raise PylmeError(f"reference_levels names {name!r}, which is not among moderators={moderator_names!r}")
    if split_therapist and therapist is None:
        raise PylmeError("split_therapist=True needs a therapist= column")

    # variable labels read_data() kept from an SPSS/Stata file name the measures
    file_labels = _values.file_labels(data, [name for _, name in used] + list(moderator_names))

    # ---- values that cannot be right: declared codes, bounds, sentinels ------
    source = data
    na_by_column = _values.na_codes(na_values, value_columns=[alliance, outcome, *moderator_names],
                                    used_columns=[name for _, name in used] + list(moderator_names))
    data, declared = _values.apply_na_codes(source, na_by_column)
    alliance_values = _numeric_values(data[alliance], alliance, "alliance")
    outcome_values = _numeric_values(data[outcome], outcome, "outcome")
    _values.check_range(alliance_values, data[alliance], alliance, "alliance", alliance_bounds)
    _values.check_range(outcome_values, data[outcome], outcome, "outcome", outcome_bounds)

    lead_columns = [f"outcome_lead{k}" for k in leads]
    # the direct lead-k model also needs the outcome at t + k - 1 and the alliance
    # deviations at t + 1 .. t + k - 1 (see direct_columns)
    outcome_lead_distances = sorted(set(leads) | {k - 1 for k in leads if k > 1})
    alliance_lead_distances = list(range(1, max(leads))) if leads else []
    derived = ["alliance_between", "alliance_within", "outcome_between", "outcome_within", OUTCOME_BEFORE,
               *[f"outcome_lead{k}" for k in outcome_lead_distances],
               *[f"alliance_within_lead{j}" for j in alliance_lead_distances]]
    if split_therapist:
        derived += ["alliance_between_therapist", "alliance_between_patient"]
    if time is not None:
        derived.append("time_days")
    # refuses numbers with stray text ("n/a") before any work
    kinds = {name: moderator_kind(data[name], name) for name in moderator_names}
    # without bounds, codes such as -99 are flagged (a SentinelWarning), not refused
    suspects = _values.flag_suspects({
        f"alliance column {alliance!r}": alliance_values if alliance_bounds is None else None,
        f"outcome column {outcome!r}": outcome_values if outcome_bounds is None else None,
        **{f"moderator {name!r}": _numeric_values(data[name], name, "moderator")
           for name in moderator_names if kinds[name] == "numeric"}})
    derived += [_derived_name(name, "_c") for name in moderator_names if kinds[name] == "numeric"]
    taken = [name for name in derived if name in data.columns]
    if taken:
        raise PylmeError(
            f"the data already have column(s) {taken!r}, which prepare() creates; rename them first"
        )
    if "reason" in data.columns:
        raise PylmeError("the data already have a column 'reason', which panel.dropped uses; rename it first")

    # ---- ids, session numbers and values, checked on every row ---------------
    n_rows = len(data)
    # reason per row as a small integer (0 = still usable); a row keeps the first reason
    reason_code = np.zeros(n_rows, dtype=np.int8)
    reason_labels: list[str] = []

    def mark(mask: np.ndarray, why: str) -> None:
        reason_labels.append(why)
        reason_code[mask & (reason_code == 0)] = len(reason_labels)

    patient_codes, patient_ids = _id_codes(data[patient], patient, "patient")
    mark(patient_codes < 0, REASON_PATIENT)
    sessions, session_missing = _session_numbers(data[session], session)
    mark(session_missing, REASON_SESSION)
    keyed = (patient_codes >= 0) & ~session_missing
    _check_duplicates(data, patient_codes, sessions, keyed, patient, session)
    if therapist is not None:
        therapist_codes, therapist_ids = _id_codes(data[therapist], therapist, "therapist")
        mark(therapist_codes < 0, REASON_THERAPIST)
    if time is not None:
        days = _time_in_days(data[time], time)
        mark(np.isnan(days), REASON_TIME)

    # ---- leads, on the full input (before rows with missing alliance go) -----
    keyed_rows = np.flatnonzero(keyed)
    lead_values: dict[int, np.ndarray] = {}
    # k = -1: the outcome of the session before, from every attended session (an alliance
    # rated every other session must not leave the outcome before missing)
    for k, values in outcome_leads(
        patient_codes[keyed_rows], sessions[keyed_rows], outcome_values[keyed_rows], [-1, *outcome_lead_distances]
    ).items():
        lead_values[k] = np.full(n_rows, np.nan)
        lead_values[k][keyed_rows] = values

    # ---- usable sessions and patients -------------------------------------
    no_alliance = np.isnan(alliance_values)
    no_outcome = np.isnan(outcome_values)
    for reason, name in ((REASON_NA_ALLIANCE, alliance), (REASON_NA_OUTCOME, outcome)):
        if name in declared:
            mark(declared[name], reason)
    mark(no_alliance & no_outcome, REASON_BOTH)
    mark(no_alliance, REASON_ALLIANCE)
    mark(no_outcome, REASON_OUTCOME)
    usable = reason_code == 0
    usable_per_patient = np.bincount(patient_codes[usable], minlength=len(patient_ids))
    too_few = usable & (usable_per_patient[np.maximum(patient_codes, 0)] < min_sessions)
    mark(too_few, f"fewer than {min_sessions} usable sessions")

    kept = np.flatnonzero(reason_code == 0)
    dropped_rows = np.flatnonzero(reason_code > 0)
    dropped = source.iloc[dropped_rows].copy()  # as in the file: a declared -99 stays -99
    labels = np.array([None, *reason_labels], dtype=object)
    dropped["reason"] = pd.Series(labels[reason_code[dropped_rows]], index=dropped.index, dtype=object)
    if len(kept) == 0:
        detail = ", ".join(f"{r}: {c}" for r, c in _reason_counts(dropped["reason"]))
        raise PylmeError(f"no usable sessions remain out of {n_rows} rows ({detail})")

    # sorted by patient (codes follow id order) then session
    kept = kept[np.lexsort((sessions[kept], patient_codes[kept]))]
    kept_codes = patient_codes[kept]
    new_patient = np.r_[True, kept_codes[1:] != kept_codes[:-1]]
    group = np.cumsum(new_patient) - 1  # dense 0..P-1
    n_patients = int(group[-1]) + 1
    kept_patient_ids = patient_ids[kept_codes[new_patient]]

    out = data.iloc[kept].reset_index(drop=True)
    a = alliance_values[kept]
    y = outcome_values[kept]
    for name, values in ((session, sessions[kept]), (alliance, a), (outcome, y)):
        _set_checked(out, name, values)
    # the derived columns, added to ``out`` at once before the moderators (a pandas
    # column insert costs ~0.1 ms, which power() pays for every simulated trial)
    new: dict[str, np.ndarray] = {}
    notes: list[str] = [_values.sentinel_message(suspects)] if suspects else []
    if np.ptp(a) == 0:
        raise PylmeError(
            f"alliance column {alliance!r} is constant ({a[0]:g} in all {len(a)} kept sessions): "
            "an alliance effect cannot be estimated from it"
        )

    # ---- alliance: between and within ----------------------------------------
    if within == "person_mean":
        parts = _centering.person_mean(group, a, n_patients)
    elif within == "early":
        parts = _centering.early_mean(group, a, n_patients, early_sessions)
        if parts.fallback.any():
            notes.append(
                f"within='early': {int(parts.fallback.sum())} patient(s) have fewer than "
                f"{early_sessions} kept sessions; their early alliance is the mean of all they have"
            )
    else:
        parts, _slope, centre = _centering.detrend(group, sessions[kept], a, n_patients)
        notes.append(f"within='detrend': levels are fitted values at the grand-mean session {centre:.4g}")
        if parts.fallback.any():
            notes.append(
                f"within='detrend': {int(parts.fallback.sum())} patient(s) with 1-2 kept sessions "
                "cannot be detrended; the person mean is used for them"
            )
    grand_mean = float(parts.level.mean())
    new["alliance_between"] = parts.level[group] - grand_mean
    new["alliance_within"] = parts.within

    # ---- therapists ------------------------------------------------------------
    multi = pd.Index(kept_patient_ids[:0])
    if therapist is not None:
        th = therapist_codes[kept]
        pair_key = th * n_patients + group
        _, first_row = np.unique(pair_key, return_index=True)
        pair_therapist, pair_group = th[first_row], group[first_row]
        therapists_per_patient = np.bincount(pair_group, minlength=n_patients)
        multi = kept_patient_ids[therapists_per_patient > 1]
        if len(multi):
            notes.append(
                f"{len(multi)} patient(s) saw more than one therapist: a nested "
                "therapist/patient model cannot hold them; use a crossed design"
            )
        if split_therapist:
            # each (therapist, patient) pair counts once in its therapist's mean
            n_th = len(therapist_ids)
            per_th = np.bincount(pair_therapist, minlength=n_th)
            with np.errstate(invalid="ignore", divide="ignore"):
                th_mean = np.bincount(pair_therapist, weights=parts.level[pair_group], minlength=n_th) / per_th
            # centred on the same patient grand mean, so the two parts add up to
            # alliance_between for patients with one therapist
            new["alliance_between_therapist"] = th_mean[th] - grand_mean
            new["alliance_between_patient"] = parts.level[group] - th_mean[th]

    if not np.any(new["alliance_within"] != 0):
        notes.append(f"alliance {alliance!r} never varies within a patient: alliance_within is 0 "
                     "throughout, so no within-patient alliance effect can be estimated")

    # ---- outcome: between and within (the lagged-outcome control, decomposed) ----
    outcome_level = _centering.group_mean(group, y, n_patients)
    outcome_grand_mean = float(outcome_level.mean())
    new["outcome_between"] = outcome_level[group] - outcome_grand_mean
    new["outcome_within"] = y - outcome_level[group]

    # ---- leads, and what the direct lead models need ---------------------------
    new[OUTCOME_BEFORE] = lead_values[-1][kept]
    for k in outcome_lead_distances:
        new[f"outcome_lead{k}"] = lead_values[k][kept]
    kept_sessions = sessions[kept]
    within_values = new["alliance_within"].astype(np.float64, copy=False)
    for j in alliance_lead_distances:  # a few distances, not patients
        # among KEPT sessions: a session without alliance has no deviation to carry
        position = lead_positions(group, kept_sessions, j)
        values = np.full(len(kept), np.nan)
        values[position >= 0] = within_values[position[position >= 0]]
        new[f"alliance_within_lead{j}"] = values
    if time is not None:
        t = days[kept]
        time_days = t - t[_centering.group_starts(group)][group]
        if not moderator_names:  # the last column either way
            new["time_days"] = time_days
    out = _with_columns(out, new)
    scales = _centering.scales(len(out), n_patients, new["alliance_within"], new["outcome_within"], parts.level,
                     outcome_level, y)

    # ---- moderators ---------------------------------------------------------
    moderator_info: dict[Hashable, ModeratorInfo] = {}
    for name in moderator_names:  # a few named columns, not patients
        moderator_info[name] = _prepare_moderator(
            out, out[name], name,
            group=group, patient_ids=kept_patient_ids,
            time_varying=name in time_varying_names,
            reference=reference_levels.get(name), has_reference=name in reference_levels,
            notes=notes,
        )

    # ---- calendar time ---------------------------------------------------------
    if time is not None:
        if moderator_names:
            out["time_days"] = time_days
        backwards = np.r_[False, (np.diff(t) < 0) & ~new_patient[1:]]
        if backwards.any():
            n_back = len(np.unique(group[backwards]))
            notes.append(f"time {time!r} decreases while session increases for {n_back} patient(s)")

    return AlliancePanel(
        data=out,
        dropped=dropped,
        roles=roles,
        within=within,
        leads=leads,
        lead_columns=lead_columns,
        moderators=moderator_info,
        multi_therapist_patients=multi,
        notes=notes,
        alliance_grand_mean=grand_mean,
        outcome_grand_mean=outcome_grand_mean,
        scales=scales,
        outcome_better=outcome_better,
        outcome_label=outcome_label if outcome_label is not None else file_labels.get(outcome),
        alliance_label=alliance_label if alliance_label is not None else file_labels.get(alliance),
        early_sessions=early_sessions,
        alliance_range=alliance_bounds,
        outcome_range=outcome_bounds,
        na_values=na_by_column,
        na_counts={name: int(mask.sum()) for name, mask in declared.items()},
        suspect_values=suspects,
        labels=file_labels,
    )

