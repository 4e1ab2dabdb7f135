"""Within/between decomposition of alliance and patient-level centring.

All functions take rows already sorted by patient then session, with dense
patient codes ``group`` (0..P-1, non-decreasing). Group sums are ``bincount``
calls, so the cost is linear in rows and there is no loop over patients.

The between component is always centred on the grand mean over PATIENTS (each
patient weighted once, however many sessions it has), so that it is a clean
level-2 predictor (METHODS.md, best practice 3).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Decomposition:
    """A patient level per patient and a within-patient deviation per row.

    Attributes
    ----------
    level : numpy.ndarray
        The patient's alliance level, shape (P,), not yet grand-mean centred.
    within : numpy.ndarray
        The session's deviation from the patient's level (or trend), shape (n,).
    fallback : numpy.ndarray of bool
        Patients for which the method fell back to the person mean, shape (P,).
    """

    level: np.ndarray
    within: np.ndarray
    fallback: np.ndarray


def group_starts(group: np.ndarray) -> np.ndarray:
    """Position of each patient's first row in sorted rows."""
    if len(group) == 0:
        return np.empty(0, dtype=np.int64)
    return np.flatnonzero(np.r_[True, group[1:] != group[:-1]])


def group_sizes(group: np.ndarray, n_groups: int) -> np.ndarray:
    """Number of rows per patient."""
    return np.bincount(group, minlength=n_groups)


def group_mean(group: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Mean of ``values`` per patient (values must be observed on every row)."""
    sums = np.bincount(group, weights=values, minlength=n_groups)
    return sums / np.bincount(group, minlength=n_groups)


def person_mean(group: np.ndarray, alliance: np.ndarray, n_groups: int) -> Decomposition:
    """Level = the patient's mean alliance; within = alliance minus that mean."""
    level = group_mean(group, alliance, n_groups)
    return Decomposition(level, alliance - level[group], np.zeros(n_groups, dtype=bool))


def early_mean(
    group: np.ndarray, alliance: np.ndarray, n_groups: int, early_sessions: int
) -> Decomposition:
    """Level = mean of the first ``early_sessions`` sessions ("early alliance").

    Patients with fewer sessions than ``early_sessions`` use all they have;
    they are flagged in ``fallback`` so the caller can say so.
    """
    starts = group_starts(group)
    rank = np.arange(len(group)) - starts[group]  # 0 for the patient's first session
    early = rank < early_sessions
    level = group_mean(group[early], alliance[early], n_groups)
    fallback = group_sizes(group, n_groups) < early_sessions
    return Decomposition(level, alliance - level[group], fallback)


def detrend(
    group: np.ndarray, session: np.ndarray, alliance: np.ndarray, n_groups: int
) -> tuple[Decomposition, np.ndarray, float]:
    """Person-specific linear detrending on session number.

    Each patient's alliance is regressed on session number (OLS, slope =
    Sxy / Sxx from group sums). The level is the fitted value at the grand-mean
    session, the within part is the residual, which has zero mean and zero
    slope on session for each patient: a shared or personal time trend no
    longer leaks into the within effect (Curran & Bauer 2011; Wang & Maxwell
    2015). Patients with fewer than 3 sessions cannot be detrended
    meaningfully (2 points fit exactly) and fall back to the person mean.

    Returns
    -------
    Decomposition
        Levels, residuals and the fallback flags.
    slope : numpy.ndarray
        Each patient's alliance slope per session (0 for fallback patients).
    centre_session : float
        The grand-mean session (mean over rows) at which levels are evaluated.
    """
    x = session.astype(np.float64)
    size = group_sizes(group, n_groups)
    x_mean = np.bincount(group, weights=x, minlength=n_groups) / size
    y_mean = np.bincount(group, weights=alliance, minlength=n_groups) / size
    # centre first (two-pass) so Sxx and Sxy do not lose digits on long series
    dx = x - x_mean[group]
    dy = alliance - y_mean[group]
    sxx = np.bincount(group, weights=dx * dx, minlength=n_groups)
    sxy = np.bincount(group, weights=dx * dy, minlength=n_groups)
    fallback = size < 3
    slope = np.zeros(n_groups)
    fit = ~fallback & (sxx > 0)
    slope[fit] = sxy[fit] / sxx[fit]
    centre_session = float(x.mean()) if len(x) else 0.0
    level = y_mean + slope * (centre_session - x_mean)
    within = dy - slope[group] * dx
    return Decomposition(level, within, fallback), slope, centre_session


def patient_value_range(
    group: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and largest observed value per patient, ignoring NaN.

    Used to tell a patient-level variable (one value per patient) from one that
    varies across a patient's sessions. All-missing patients give NaN.
    """
    starts = group_starts(group)
    if len(starts) == 0:
        return np.empty(0), np.empty(0)
    with np.errstate(invalid="ignore"):
        # fmin/fmax skip NaN, so a value recorded only at intake still counts
        low = np.fmin.reduceat(values, starts)
        high = np.fmax.reduceat(values, starts)
    return low, high


def scales(n_rows: int, n_patients: int, alliance_within: np.ndarray, outcome_within: np.ndarray,
           alliance_level: np.ndarray, outcome_level: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """The SDs that standardise effects (see ``AlliancePanel.scales``).

    Within-patient SDs are pooled: root of the sum of squared deviations from the
    patient's level over (sessions - patients), the df left after one mean per patient.
    The same denominator for alliance and outcome keeps their ratio the ratio of
    root-mean-square deviations, which is how ``simulate()`` defines ``within_std``.
    """
    df_within = n_rows - n_patients

    def pooled(values: np.ndarray) -> float:
        return float(np.sqrt(np.sum(values ** 2) / df_within)) if df_within > 0 else float("nan")

    def sd(values: np.ndarray) -> float:
        return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")

    return {
        "alliance_within": pooled(alliance_within.astype(np.float64, copy=False)),
        "alliance_between": sd(alliance_level),
        "outcome_within": pooled(outcome_within.astype(np.float64, copy=False)),
        "outcome_between": sd(outcome_level),
        "outcome": sd(y),
    }
