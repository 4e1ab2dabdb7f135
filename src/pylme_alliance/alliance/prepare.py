"""Prepare session-by-session therapy data for alliance-outcome models.

``prepare()`` turns a long table (one row per patient session, any order, any
column names) into an :class:`AlliancePanel`: the usable sessions sorted by
patient and session, alliance split into a between-patient level and a
within-patient deviation, the outcome at later sessions found by session
number, patient-level moderators centred, and every dropped row kept with the
reason it was dropped (METHODS.md, best practices 1-4 and 7).

It is pure pandas/numpy and never starts R.
"""
from __future__ import annotations

import difflib
import numbers
import warnings
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from ..errors import PylmeError
from . import _centering
from ._leads import outcome_leads

__all__ = ["prepare", "AlliancePanel", "ModeratorInfo"]

WITHIN_METHODS = ("person_mean", "early", "detrend")

# The lagged-outcome autocorrelation used in the Nickell-bias warning, as in
# METHODS.md (best practice 4: rho = .7 gives -.19 at T = 10 and -.43 at T = 5).
_NICKELL_RHO = 0.7
# Below this median series length the Nickell bias is large enough to warn.
_NICKELL_MIN_T = 20

# Reasons a row is dropped, in the order they are checked: a row gets the first
# that applies.
REASON_PATIENT = "missing patient id"
REASON_SESSION = "missing session number"
REASON_THERAPIST = "missing therapist id"
REASON_TIME = "missing time"
REASON_BOTH = "missing alliance and outcome"
REASON_ALLIANCE = "missing alliance"
REASON_OUTCOME = "missing outcome"
_REASON_ORDER = (
    REASON_PATIENT, REASON_SESSION, REASON_THERAPIST, REASON_TIME,
    REASON_BOTH, REASON_ALLIANCE, REASON_OUTCOME,
)


def _reason_counts(reasons: pd.Series) -> list[tuple[str, int]]:
    """Rows per drop reason, in the order the reasons are checked (stable for any row order)."""
    counts = reasons.value_counts(sort=False).to_dict()
    rank = {reason: i for i, reason in enumerate(_REASON_ORDER)}
    ordered = sorted(counts, key=lambda reason: (rank.get(reason, len(rank)), str(reason)))
    return [(str(reason), int(counts[reason])) for reason in ordered]


@dataclass(frozen=True)
class ModeratorInfo:
    """How one moderator was prepared.

    Attributes
    ----------
    name : Hashable
        The moderator's column in the input.
    kind : {"numeric", "categorical"}
        Numeric moderators are grand-mean centred; categorical ones are a pandas
        Categorical whose first category is the reference level.
    column : Hashable
        The column of ``panel.data`` to use in models: ``"<name>_c"`` for numeric,
        ``name`` itself for categorical.
    reference : object or None
        The reference level (categorical only).
    levels : tuple or None
        The observed levels, reference first (categorical only).
    time_varying : bool
        True when the moderator may change across a patient's sessions (listed in
        ``time_varying=``); it is then centred on the mean over rows.
    mean : float or None
        The value subtracted when centring (numeric only): the mean over patients,
        each once, or over rows when time-varying.
    sd : float or None
        Standard deviation (numeric only): over patients, each once, or over rows
        when time-varying.
    """

    name: Hashable
    kind: Literal["numeric", "categorical"]
    column: Hashable
    reference: Any = None
    levels: tuple | None = None
    time_varying: bool = False
    mean: float | None = None
    sd: float | None = None


@dataclass(frozen=True, eq=False, repr=False)
class AlliancePanel:
    """Session-level alliance data ready for alliance-outcome models.

    Build it with :func:`prepare`. The fields cannot be reassigned; the data
    frames are the contents.

    Attributes
    ----------
    data : pandas.DataFrame
        One row per kept (patient, session), sorted by patient then session,
        index 0..n-1: the input columns plus ``alliance_between``,
        ``alliance_within``, ``outcome_lead1..K``, ``<moderator>_c`` and, when
        asked for, ``alliance_between_therapist``, ``alliance_between_patient``,
        ``outcome_within`` and ``time_days``.
    dropped : pandas.DataFrame
        Every input row not kept, under its original index, with the input
        columns and a ``reason`` column.
    roles : dict
        ``patient``, ``session``, ``alliance``, ``outcome``, ``therapist``,
        ``time`` -> column name (None when absent).
    within : str
        The decomposition used: "person_mean", "early" or "detrend".
    leads : tuple of int
        Lead distances k; ``outcome_lead<k>`` is the outcome at session t + k.
    lead_columns : list of str
        The lead column names, in the order of ``leads``.
    moderators : dict
        Moderator name -> :class:`ModeratorInfo`.
    multi_therapist_patients : pandas.Index
        Patients seen by more than one therapist in the kept rows (empty if none
        or no therapist column). A nested therapist/patient model cannot hold
        them; use a crossed design.
    notes : list of str
        Everything ``prepare`` decided on the user's behalf.
    alliance_grand_mean : float
        The grand mean over patients of the patient alliance levels: the constant
        removed from ``alliance_between``.
    """

    data: pd.DataFrame
    dropped: pd.DataFrame
    roles: dict[str, Hashable | None]
    within: str
    leads: tuple[int, ...]
    lead_columns: list[str]
    moderators: dict[Hashable, ModeratorInfo]
    multi_therapist_patients: pd.Index
    notes: list[str] = field(default_factory=list)
    alliance_grand_mean: float = float("nan")

    # -- summaries -------------------------------------------------------------

    def _sessions_per_patient(self) -> pd.DataFrame:
        data = self.data
        session = data[self.roles["session"]]
        grouped = session.groupby(data[self.roles["patient"]], sort=False, observed=True)
        return pd.DataFrame({"n": grouped.size(), "low": grouped.min(), "high": grouped.max()})

    def summary(self) -> pd.DataFrame:
        """Counts a methods section needs: patients, sessions, gaps and drops.

        Returns
        -------
        pandas.DataFrame
            One column ``value`` indexed by ``item``: patients, therapists,
            sessions kept, sessions per patient (min, 25%, median, 75%, max),
            missing sessions (gaps in session numbers inside each patient's
            kept range), rows dropped in total and by reason, and rows whose
            ``outcome_lead<k>`` is missing (they drop out of that lead's model).
        """
        per = self._sessions_per_patient()
        quantiles = per["n"].quantile([0.0, 0.25, 0.5, 0.75, 1.0]).to_numpy()
        therapist = self.roles.get("therapist")
        items: list[tuple[str, Any]] = [
            ("patients", len(per)),
            ("therapists", int(self.data[therapist].nunique()) if therapist is not None else None),
            ("sessions kept", len(self.data)),
            ("sessions per patient: min", float(quantiles[0])),
            ("sessions per patient: 25%", float(quantiles[1])),
            ("sessions per patient: median", float(quantiles[2])),
            ("sessions per patient: 75%", float(quantiles[3])),
            ("sessions per patient: max", float(quantiles[4])),
            ("missing sessions (gaps)", int((per["high"] - per["low"] + 1 - per["n"]).sum())),
            ("rows dropped", len(self.dropped)),
        ]
        for reason, count in _reason_counts(self.dropped["reason"]):
            items.append((f"rows dropped: {reason}", count))
        for column in self.lead_columns:
            items.append((f"rows with missing {column}", int(self.data[column].isna().sum())))
        return pd.DataFrame(
            {"value": pd.Series([value for _, value in items], dtype=object)},
        ).set_axis(pd.Index([name for name, _ in items], name="item"))

    def __repr__(self) -> str:
        per = self._sessions_per_patient()
        therapist = self.roles.get("therapist")
        who = f"{len(per):,} patients"
        if therapist is not None:
            who += f", {self.data[therapist].nunique():,} therapists"
        lines = [
            f"AlliancePanel: {who}, {len(self.data):,} sessions "
            f"(median {per['n'].median():g} per patient)",
            f"  within={self.within!r}, leads={self.leads}, "
            f"moderators={list(self.moderators) or 'none'}",
        ]
        if len(self.dropped):
            detail = ", ".join(f"{reason}: {count:,}" for reason, count in _reason_counts(self.dropped["reason"]))
            lines.append(f"  dropped {len(self.dropped):,} rows ({detail})")
        else:
            lines.append("  dropped 0 rows")
        if len(self.notes):
            lines.append(f"  {len(self.notes)} note(s): see .notes")
        return "\n".join(lines)

    __str__ = __repr__


# -- argument checks --------------------------------------------------------------


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral,)):
        raise PylmeError(f"{name} must be a positive integer, got {value!r}")
    if int(value) < 1:
        raise PylmeError(f"{name} must be a positive integer (>= 1), got {value!r}")
    return int(value)


def _check_leads(leads: Any) -> tuple[int, ...]:
    if isinstance(leads, (numbers.Integral, np.integer)) and not isinstance(leads, bool):
        leads = (leads,)
    try:
        items = tuple(leads)
    except TypeError:
        raise PylmeError(f"leads must be a tuple of positive integers, got {leads!r}") from None
    checked = tuple(_positive_int(k, "each lead") for k in items)
    if len(set(checked)) != len(checked):
        raise PylmeError(f"leads contains duplicates: {items!r}")
    return checked


def _names(value: Any, argument: str) -> tuple[Hashable, ...]:
    """A single column name or an iterable of names, as a tuple."""
    if value is None:
        return ()
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        return (value,)
    names = tuple(value)
    if len(set(names)) != len(names):
        raise PylmeError(f"{argument} lists a column twice: {names!r}")
    return names


def _missing_column_error(data: pd.DataFrame, name: Hashable, role: str) -> PylmeError:
    available = [str(c) for c in data.columns]
    close = difflib.get_close_matches(str(name), available, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    shown = ", ".join(repr(c) for c in list(data.columns)[:30])
    more = f", ... ({len(available)} in all)" if len(available) > 30 else ""
    return PylmeError(
        f"column {name!r} (given as {role}) is not in the data.{hint} "
        f"Available columns: {shown}{more}"
    )


def _check_column(data: pd.DataFrame, name: Hashable, role: str) -> None:
    try:
        present = name in data.columns
    except TypeError:  # unhashable
        present = False
    if not present:
        raise _missing_column_error(data, name, role)
    if not isinstance(data.columns.get_loc(name), int):
        raise PylmeError(f"column {name!r} (given as {role}) appears more than once in the data")


def _derived_name(name: Hashable, suffix: str) -> str:
    return f"{name}{suffix}"


# -- value checks -----------------------------------------------------------------

_NUMERIC_KINDS = {"integer", "floating", "mixed-integer-float", "decimal", "empty"}


def _examples(values: pd.Series, limit: int = 5) -> str:
    shown = [f"{value!r} (row {index!r})" for index, value in values.head(limit).items()]
    more = f" and {len(values) - limit} more" if len(values) > limit else ""
    return ", ".join(shown) + more


def _numeric_values(series: pd.Series, name: Hashable, role: str) -> np.ndarray:
    """The column as float64 with NaN for missing; PylmeError if not numeric."""
    dtype = series.dtype
    if ptypes.is_bool_dtype(dtype):
        raise PylmeError(f"{role} column {name!r} is boolean; {role} must be numeric")
    if ptypes.is_numeric_dtype(dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    elif ptypes.is_object_dtype(dtype) and pd.api.types.infer_dtype(series, skipna=True) in _NUMERIC_KINDS:
        # object columns holding only numbers and None/NaN/pd.NA (e.g. built row by row)
        values = pd.to_numeric(series).to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        present = series[series.notna()]
        bad = present[~present.map(lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool))]
        raise PylmeError(
            f"{role} column {name!r} must be numeric but has dtype {dtype}; "
            f"non-numeric values: {_examples(bad if len(bad) else present)}. "
            "Convert it with pd.to_numeric (missing values may be NaN/None/pd.NA)."
        )
    infinite = np.isinf(values)
    if infinite.any():
        raise PylmeError(
            f"{role} column {name!r} has {int(infinite.sum())} infinite value(s): "
            f"{_examples(series[infinite])}. Use NaN for a missing value."
        )
    return values


def _session_numbers(series: pd.Series, name: Hashable) -> tuple[np.ndarray, np.ndarray]:
    """Session numbers as int64 and a missing mask; they must be positive integers."""
    values = _numeric_values(series, name, "session")
    missing = np.isnan(values)
    present = values[~missing]
    not_integer = present != np.floor(present)
    if not_integer.any():
        raise PylmeError(
            f"session column {name!r} must hold integer session numbers (1, 2, 3, ...); "
            f"non-integer values: {_examples(series[~missing][not_integer])}. "
            "Pass calendar time as time= instead."
        )
    not_positive = present < 1
    if not_positive.any():
        raise PylmeError(
            f"session column {name!r} must hold positive session numbers (>= 1); "
            f"found: {_examples(series[~missing][not_positive])}"
        )
    sessions = np.zeros(len(values), dtype=np.int64)
    sessions[~missing] = present.astype(np.int64)
    return sessions, missing


def _id_codes(series: pd.Series, name: Hashable, role: str) -> tuple[np.ndarray, pd.Index]:
    """Integer codes in sorted id order (-1 = missing) and the ids themselves."""
    try:
        # sort=True: codes follow the ids' order, so the result never depends on row order
        codes, uniques = pd.factorize(series, sort=True)
    except TypeError as error:
        raise PylmeError(
            f"{role} ids in column {name!r} cannot be ordered (mixed types?): {error}. "
            "Convert them to one type, e.g. data[col].astype(str)."
        ) from None
    return np.asarray(codes, dtype=np.int64), pd.Index(uniques)


def _time_in_days(series: pd.Series, name: Hashable) -> np.ndarray:
    """Calendar time as float days (absolute origin), NaN when missing."""
    dtype = series.dtype
    if ptypes.is_datetime64_any_dtype(dtype):
        missing = series.isna().to_numpy()
        # tz-aware stamps become naive UTC, so differences are true elapsed days
        stamps = series.dt.tz_convert(None) if getattr(series.dt, "tz", None) is not None else series
        nanoseconds = stamps.to_numpy(dtype="datetime64[ns]").astype(np.int64)
        days = nanoseconds / 86_400e9
        days[missing] = np.nan
        return days
    if ptypes.is_timedelta64_dtype(dtype):
        return series.dt.total_seconds().to_numpy(dtype=np.float64, na_value=np.nan) / 86_400.0
    if ptypes.is_numeric_dtype(dtype) and not ptypes.is_bool_dtype(dtype):
        return _numeric_values(series, name, "time")
    raise PylmeError(
        f"time column {name!r} has dtype {dtype}; time must be numeric (days) or datetime "
        "(convert text dates with pd.to_datetime)"
    )


def _is_categorical_dtype(dtype: Any) -> bool:
    return (
        isinstance(dtype, pd.CategoricalDtype)
        or ptypes.is_bool_dtype(dtype)
        or ptypes.is_object_dtype(dtype)
        or ptypes.is_string_dtype(dtype)
    )


# -- the steps --------------------------------------------------------------------


def _check_duplicates(
    data: pd.DataFrame, codes: np.ndarray, sessions: np.ndarray, valid: np.ndarray,
    patient: Hashable, session: Hashable,
) -> None:
    keys = pd.DataFrame({"p": codes[valid], "s": sessions[valid]})
    duplicated = keys.duplicated(keep=False).to_numpy()
    if duplicated.any():
        rows = data.iloc[np.flatnonzero(valid)[duplicated]][[patient, session]]
        rows = rows.sort_values([patient, session], kind="stable")
        n_pairs = int(keys[duplicated].drop_duplicates().shape[0])
        shown = "; ".join(
            f"{patient}={p!r}, {session}={s!r} (row {i!r})"
            for i, p, s in zip(rows.index[:6], rows[patient].iloc[:6], rows[session].iloc[:6])
        )
        raise PylmeError(
            f"{n_pairs} (patient, session) pair(s) occur more than once in columns "
            f"{patient!r}, {session!r}; each session of a patient must be one row. First: {shown}"
        )


def _prepare_moderator(
    out: pd.DataFrame,
    series: pd.Series,
    name: Hashable,
    *,
    group: np.ndarray,
    patient_ids: pd.Index,
    time_varying: bool,
    reference: Any,
    has_reference: bool,
    notes: list[str],
) -> ModeratorInfo:
    """Centre a numeric moderator or encode a categorical one, in ``out``."""
    dtype = series.dtype

    def varies_error(low: np.ndarray, high: np.ndarray) -> PylmeError:
        varying = np.flatnonzero(high > low)
        shown = ", ".join(repr(p) for p in patient_ids[varying[:5]])
        return PylmeError(
            f"moderator {name!r} varies within {len(varying)} patient(s) (e.g. {shown}), "
            "but a moderator of the alliance effect is a patient-level variable. Fix the data, "
            f"or list it in time_varying=[{name!r}] to centre it on the mean over sessions."
        )

    if ptypes.is_numeric_dtype(dtype) and not ptypes.is_bool_dtype(dtype):
        if has_reference:
            raise PylmeError(f"reference_levels gives a level for {name!r}, but it is numeric")
        values = _numeric_values(series, name, "moderator")
        if np.isnan(values).all():
            raise PylmeError(f"moderator {name!r} has no observed value in the kept sessions")
        column = _derived_name(name, "_c")
        if time_varying:
            mean = float(np.nanmean(values))
            sd = float(np.nanstd(values, ddof=1)) if np.isfinite(values).sum() > 1 else float("nan")
            out[column] = values - mean
            notes.append(
                f"moderator {name!r} is time-varying: centred on its mean over sessions "
                f"({mean:.4g}), not over patients"
            )
            return ModeratorInfo(name, "numeric", column, time_varying=True, mean=mean, sd=sd)
        low, high = _centering.patient_value_range(group, values)
        if (high > low).any():
            raise varies_error(low, high)
        patient_value = low  # one value per patient (NaN if never recorded)
        mean = float(np.nanmean(patient_value))
        observed = np.isfinite(patient_value)
        sd = float(np.nanstd(patient_value, ddof=1)) if observed.sum() > 1 else float("nan")
        filled = int((np.isnan(values) & observed[group]).sum())
        if filled:
            notes.append(
                f"moderator {name!r}: {filled} session row(s) without a value took their "
                f"patient's value in {column!r}"
            )
        if not observed.all():
            notes.append(f"moderator {name!r} is missing for {int((~observed).sum())} patient(s)")
        out[column] = patient_value[group] - mean
        return ModeratorInfo(name, "numeric", column, time_varying=False, mean=mean, sd=sd)

    if not _is_categorical_dtype(dtype):
        raise PylmeError(
            f"moderator {name!r} has dtype {dtype}; a moderator must be numeric or "
            "categorical (object, string, category or bool)"
        )
    if isinstance(dtype, pd.CategoricalDtype):
        # keep the user's category order, restricted to levels seen in kept sessions
        raw_codes = np.asarray(series.array.codes, dtype=np.int64)
        seen = np.unique(raw_codes[raw_codes >= 0])
        levels = list(dtype.categories[seen])
        lookup = np.full(len(dtype.categories), -1, dtype=np.int64)
        lookup[seen] = np.arange(len(seen))
        codes = np.where(raw_codes >= 0, lookup[np.maximum(raw_codes, 0)], -1)
    else:
        try:
            codes, uniques = pd.factorize(series, sort=True)
        except TypeError as error:
            raise PylmeError(
                f"levels of moderator {name!r} cannot be sorted (mixed types?): {error}"
            ) from None
        codes = np.asarray(codes, dtype=np.int64)
        levels = list(uniques)
    if not levels:
        raise PylmeError(f"moderator {name!r} has no observed value in the kept sessions")
    if has_reference:
        matches = [i for i, level in enumerate(levels) if level == reference]
        if not matches:
            raise PylmeError(
                f"reference level {reference!r} for moderator {name!r} is not among its "
                f"levels in the kept sessions: {levels!r}"
            )
        first = matches[0]
    else:
        first = 0
    # reference first, so treatment contrasts in R and statsmodels use it as baseline
    order = [first] + [i for i in range(len(levels)) if i != first]
    ordered = [levels[i] for i in order]
    remap = np.empty(len(levels), dtype=np.int64)
    remap[order] = np.arange(len(levels))
    codes = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1)
    if not time_varying:
        as_float = np.where(codes >= 0, codes, np.nan).astype(np.float64)
        low, high = _centering.patient_value_range(group, as_float)
        if (high > low).any():
            raise varies_error(low, high)
        filled = int(((codes < 0) & np.isfinite(low)[group]).sum())
        if filled:
            notes.append(
                f"moderator {name!r}: {filled} session row(s) without a value took their "
                "patient's level"
            )
        codes = np.where(np.isfinite(low), low, -1).astype(np.int64)[group]
    else:
        notes.append(f"moderator {name!r} is time-varying (categorical, kept per session)")
    out[name] = pd.Categorical.from_codes(codes, categories=pd.Index(ordered, dtype=object))
    return ModeratorInfo(
        name, "categorical", name, reference=ordered[0], levels=tuple(ordered),
        time_varying=bool(time_varying),
    )


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
    leads: Iterable[int] | int = (1,),
    moderators: Iterable[Hashable] | Hashable = (),
    min_sessions: int = 2,
    time_varying: Iterable[Hashable] | Hashable = (),
    split_therapist: bool = False,
    center_outcome: bool = False,
    reference_levels: Mapping[Hashable, Any] | None = None,
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
        found by session number (NA when that session is missing).
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
    center_outcome : bool
        Add ``outcome_within``, the person-mean-centred outcome control. This
        causes dynamic-panel (Nickell) bias on its slope with short series and
        warns when the median series is shorter than 20 sessions.
    reference_levels : dict, optional
        ``{moderator: level}`` overriding the default reference (first level in
        sorted order; the category order for a pandas Categorical).

    Returns
    -------
    AlliancePanel

    Raises
    ------
    PylmeError
        For a missing or duplicated column, duplicate (patient, session) rows,
        non-numeric or infinite alliance/outcome values, session numbers that are
        not positive integers, a moderator that varies within patients (unless
        time-varying), a derived column name already in the data, or invalid
        options.

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

    roles: dict[str, Hashable | None] = {
        "patient": patient, "session": session, "alliance": alliance,
        "outcome": outcome, "therapist": therapist, "time": time,
    }
    for role, name in roles.items():
        if name is not None:
            _check_column(data, name, f"{role}=")
    used = [(role, name) for role, name in roles.items() if name is not None]
    for i, (role, name) in enumerate(used):
        for other_role, other in used[i + 1:]:
            if name == other:
                raise PylmeError(f"column {name!r} is given both as {role}= and as {other_role}=")
    role_columns = {name for _, name in used}
    for name in moderator_names:
        _check_column(data, name, "a moderator")
        if name in role_columns:
            raise PylmeError(f"moderator {name!r} is also a role column (patient, session, ...)")
    for name in time_varying_names:
        if name not in moderator_names:
            raise PylmeError(f"time_varying lists {name!r}, which is not among moderators={moderator_names!r}")
    for name in reference_levels:
        if name not in moderator_names:
            raise PylmeError(f"reference_levels names {name!r}, which is not among moderators={moderator_names!r}")
    if split_therapist and therapist is None:
        raise PylmeError("split_therapist=True needs a therapist= column")

    lead_columns = [f"outcome_lead{k}" for k in leads]
    derived = ["alliance_between", "alliance_within", *lead_columns]
    if split_therapist:
        derived += ["alliance_between_therapist", "alliance_between_patient"]
    if center_outcome:
        derived.append("outcome_within")
    if time is not None:
        derived.append("time_days")
    derived += [
        _derived_name(name, "_c") for name in moderator_names
        if ptypes.is_numeric_dtype(data[name].dtype) and not ptypes.is_bool_dtype(data[name].dtype)
    ]
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
    alliance_values = _numeric_values(data[alliance], alliance, "alliance")
    outcome_values = _numeric_values(data[outcome], outcome, "outcome")

    # ---- leads, on the full input (before rows with missing alliance go) -----
    keyed_rows = np.flatnonzero(keyed)
    lead_values: dict[int, np.ndarray] = {}
    for k, values in outcome_leads(
        patient_codes[keyed_rows], sessions[keyed_rows], outcome_values[keyed_rows], leads
    ).items():
        lead_values[k] = np.full(n_rows, np.nan)
        lead_values[k][keyed_rows] = values

    # ---- usable sessions and patients -------------------------------------
    no_alliance = np.isnan(alliance_values)
    no_outcome = np.isnan(outcome_values)
    mark(no_alliance & no_outcome, REASON_BOTH)
    mark(no_alliance, REASON_ALLIANCE)
    mark(no_outcome, REASON_OUTCOME)
    usable = reason_code == 0
    usable_per_patient = np.bincount(patient_codes[usable], minlength=len(patient_ids))
    too_few = usable & (usable_per_patient[np.maximum(patient_codes, 0)] < min_sessions)
    mark(too_few, f"fewer than {min_sessions} usable sessions")

    kept = np.flatnonzero(reason_code == 0)
    dropped_rows = np.flatnonzero(reason_code > 0)
    dropped = data.iloc[dropped_rows].copy()
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
    sizes = _centering.group_sizes(group, n_patients)

    out = data.iloc[kept].reset_index(drop=True)
    out[session] = sessions[kept]
    a = alliance_values[kept]
    y = outcome_values[kept]
    out[alliance] = a
    out[outcome] = y
    notes: list[str] = []

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
    out["alliance_between"] = parts.level[group] - grand_mean
    out["alliance_within"] = parts.within

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
            out["alliance_between_therapist"] = th_mean[th] - grand_mean
            out["alliance_between_patient"] = parts.level[group] - th_mean[th]

    # ---- outcome control and leads ------------------------------------------
    if center_outcome:
        out["outcome_within"] = y - _centering.group_mean(group, y, n_patients)[group]
        median_t = float(np.median(sizes))
        if median_t < _NICKELL_MIN_T:
            if median_t > 1:
                bias = -(1 + _NICKELL_RHO) / (median_t - 1)
                size = f"about {bias:.2f}"
            else:
                size = "unbounded"
            message = (
                "center_outcome=True person-mean centres the lagged outcome control "
                "(outcome_within). With short series this causes dynamic-panel (Nickell) "
                f"bias of about -(1+rho)/(T-1) on its slope: with the panel's median T = "
                f"{median_t:g} sessions per patient and rho = {_NICKELL_RHO}, {size} "
                "(Falkenström et al. 2017). Keep the outcome control raw or grand-mean centred."
            )
            warnings.warn(message, UserWarning, stacklevel=2)
            notes.append(message)
    for k, column in zip(leads, lead_columns):
        out[column] = lead_values[k][kept]

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
        t = days[kept]
        starts = _centering.group_starts(group)
        out["time_days"] = t - t[starts][group]
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
    )
