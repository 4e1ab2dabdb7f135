"""AlliancePanel: the prepared session-level data, what was dropped and why, and the
scales (SDs) that standardised effects divide by.

Built by :func:`pylme_alliance.panel.prepare.prepare`; importable from there too.
"""
from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from ._describe import describe_panel

__all__ = ["AlliancePanel", "ModeratorInfo"]

# Reasons a row is dropped, in the order they are checked: a row gets the first
# that applies.
REASON_PATIENT = "missing patient id"
REASON_SESSION = "missing session number"
REASON_THERAPIST = "missing therapist id"
REASON_TIME = "missing time"
REASON_NA_ALLIANCE = "alliance declared missing (na_values)"
REASON_NA_OUTCOME = "outcome declared missing (na_values)"
REASON_BOTH = "missing alliance and outcome"
REASON_ALLIANCE = "missing alliance"
REASON_OUTCOME = "missing outcome"
_REASON_ORDER = (
    REASON_PATIENT, REASON_SESSION, REASON_THERAPIST, REASON_TIME,
    REASON_NA_ALLIANCE, REASON_NA_OUTCOME, REASON_BOTH, REASON_ALLIANCE, REASON_OUTCOME,
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
        ``alliance_within``, ``outcome_between`` (the patient's mean outcome,
        grand-mean centred over patients), ``outcome_within`` (outcome minus the
        patient's mean), ``outcome_lead<k>`` for each lead, the columns the
        direct duration model needs (``outcome_lead<k-1>`` and
        ``alliance_within_lead<j>``, j = 1..k-1: the alliance deviation at
        session t + j, found by session number), ``<moderator>_c`` and, when
        asked for, ``alliance_between_therapist``, ``alliance_between_patient``
        and ``time_days``.
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
    outcome_grand_mean : float
        The grand mean over patients of the patients' mean outcomes: the constant
        removed from ``outcome_between``.
    scales : dict of str to float
        Standard deviations that standardised effects divide or multiply by:
        ``alliance_within`` (SD over kept sessions of ``alliance_within``),
        ``alliance_between`` (SD over patients, each once, of the alliance level),
        ``outcome_within`` (the WITHIN-PATIENT outcome SD: SD over kept sessions
        of ``outcome_within``), ``outcome_between`` (SD over patients, each once,
        of the patient's mean outcome) and ``outcome`` (total SD over kept
        sessions). A within effect in SD units is ``b * alliance_within /
        outcome_within``; a between effect ``b * alliance_between /
        outcome_between`` (METHODS.md; issue 9, item 9).
    outcome_better : {"lower", "higher"} or None
        Which direction of the outcome is the better one, as the user said
        (``None``: not said; texts then stay neutral and claim no benefit).
    outcome_label : str or None
        The outcome's name for texts and axes: the user's ``outcome_label``, else the
        column's variable label from the file, else None (the column name).
    early_sessions : int
        The number of first sessions that define "early alliance".
    alliance_label : str or None
        The alliance measure's name, found as ``outcome_label`` is.
    alliance_range, outcome_range : (float, float) or None
        The scale bounds the values were checked against (None: not given).
    na_values : dict
        Column -> the codes declared missing with ``prepare(na_values=...)``.
    na_counts : dict
        Column -> how many input rows held one of those codes.
    suspect_values : dict
        Where ("alliance column 'wai'") -> {value: rows} for values that looked like
        missing-data codes and were analysed as they are (a SentinelWarning said so).
    labels : dict
        Used column -> its variable label from the file (``data.attrs["labels"]``).
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
    outcome_grand_mean: float = float("nan")
    scales: dict[str, float] = field(default_factory=dict)
    outcome_better: Literal["lower", "higher"] | None = None
    outcome_label: str | None = None
    early_sessions: int = 3
    alliance_label: str | None = None
    alliance_range: tuple[float, float] | None = None
    outcome_range: tuple[float, float] | None = None
    na_values: dict[Hashable, tuple] = field(default_factory=dict)
    na_counts: dict[Hashable, int] = field(default_factory=dict)
    suspect_values: dict[str, dict[float, int]] = field(default_factory=dict)
    labels: dict[Hashable, str] = field(default_factory=dict)

    @property
    def outcome_name(self) -> str:
        """The outcome's name for texts: ``outcome_label`` or the outcome column."""
        return self.outcome_label if self.outcome_label is not None else str(self.roles["outcome"])

    @property
    def alliance_name(self) -> str:
        """The alliance measure's name for texts: ``alliance_label`` or the alliance column."""
        return self.alliance_label if self.alliance_label is not None else str(self.roles["alliance"])

    def median_sessions(self) -> float:
        """Median number of kept sessions per patient (the T of dynamic-panel bias)."""
        return float(self._sessions_per_patient()["n"].median())

    # -- summaries -------------------------------------------------------------

    def _sessions_per_patient(self) -> pd.DataFrame:
        data = self.data
        session = data[self.roles["session"]]
        grouped = session.groupby(data[self.roles["patient"]], sort=False, observed=True)
        return pd.DataFrame({"n": grouped.size(), "low": grouped.min(), "high": grouped.max()})

    def _unrated_inside(self, per: pd.DataFrame) -> int:
        """Sessions attended (outcome given) without an alliance rating that lie inside a
        kept patient's range of sessions: dropped rows, but not missed sessions."""
        dropped = self.dropped
        if not len(dropped) or "reason" not in dropped:
            return 0
        patient, session = self.roles["patient"], self.roles["session"]
        unrated = dropped[dropped["reason"] == REASON_ALLIANCE]
        if not len(unrated) or patient not in unrated or session not in unrated:
            return 0
        ranges = per.reindex(unrated[patient].to_numpy())
        numbers = pd.to_numeric(unrated[session], errors="coerce").to_numpy(dtype=float)
        inside = (numbers >= ranges["low"].to_numpy(dtype=float)) & (numbers <= ranges["high"].to_numpy(dtype=float))
        return int(inside.sum())

    def summary(self) -> pd.DataFrame:
        """Counts a methods section needs: patients, sessions, gaps and drops.

        Returns
        -------
        pandas.DataFrame
            One column ``value`` indexed by ``item``: patients, therapists,
            sessions kept, sessions per patient (min, 25%, median, 75%, max),
            attended sessions without an alliance rating (inside a patient's kept
            range), missing sessions (gaps in session numbers inside each patient's
            kept range that were not attended), rows dropped in total and by reason,
            and rows whose
            ``outcome_lead<k>`` is missing (they drop out of that lead's model).
        """
        per = self._sessions_per_patient()
        unrated = self._unrated_inside(per)
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
            ("attended sessions without an alliance rating", unrated),
            ("missing sessions (gaps)", int((per["high"] - per["low"] + 1 - per["n"]).sum()) - unrated),
            ("rows dropped", len(self.dropped)),
        ]
        for reason, count in _reason_counts(self.dropped["reason"]):
            items.append((f"rows dropped: {reason}", count))
        for column in self.lead_columns:
            items.append((f"rows with missing {column}", int(self.data[column].isna().sum())))
        return pd.DataFrame(
            # numbers in a numeric column (no therapist -> NaN), so the table sorts and sums
            {"value": pd.Series([np.nan if value is None else value for _, value in items], dtype=float)},
        ).set_axis(pd.Index([name for name, _ in items], name="item"))

    def describe(self) -> pd.DataFrame:
        """The data analysed, variable by variable and patient by patient.

        A sanity table for the methods section: a missing-data code analysed as a
        score (a -99 alliance) shows here as an impossible minimum.

        Returns
        -------
        pandas.DataFrame
            Indexed by ``item``: ``alliance``, ``outcome``, ``time`` (when given),
            ``moderator: <name>`` for each moderator, then ``sessions per patient``
            (input rows of each analysed patient, dropped ones included), ``rated
            sessions per patient`` (those with an alliance rating) and ``analysed
            sessions per patient`` (kept). Columns:

            - ``column``: the data column; ``label``: its name for texts (the
              user's or the file's variable label; None when there is none);
            - ``unit``: what ``n`` counts: "sessions", or "patients" for a
              patient-level moderator (each patient once) and the per-patient rows;
            - ``n``: analysed sessions (patients) with a value;
            - ``missing``: for alliance, outcome and time, input rows without a
              value, including codes declared with ``na_values`` (those rows were
              dropped); for a moderator, analysed patients (sessions) without one;
              0 for the per-patient rows;
            - ``mean``, ``sd``, ``min``, ``median``, ``max``: over those values
              (time in days since the patient's first analysed session; for the
              per-patient rows, over patients); NaN for categorical moderators;
            - ``levels``: number of levels of a categorical moderator (else NA).
        """
        return describe_panel(self)

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

    def _repr_html_(self) -> str:
        """Notebook display: the first line of the text form and the summary table."""
        import html

        head = html.escape(repr(self).splitlines()[0])
        return f"<div><p>{head}</p>{self.summary().to_html(escape=True)}</div>"
