"""Leads of the outcome by session NUMBER, not by row order.

The lead of session ``t`` at distance ``k`` is the outcome the same patient
reported at session ``t + k``. When that session is missing the lead is
missing: taking "the next row" instead would silently stretch the lag over a
gap (METHODS.md, best practice 1). Everything here is a vectorised reindex on
the key (patient, session + k); there is no loop over patients.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

# Packing (patient code, session) into one int64 key is the fast path; beyond
# this bound it could overflow, and the two-column merge is used instead.
_PACKED_KEY_LIMIT = 2**62


def packed_keys(patient: np.ndarray, session: np.ndarray, reach: int = 0) -> np.ndarray | None:
    """(patient, session) packed into one int64 key per row, or None when it could overflow.

    ``patient`` holds non-negative integer codes, ``session`` integer session numbers
    (at least one row). Each patient owns a block of keys wide enough that session
    ``t +- reach`` of a patient never lands in another patient's block, so ``key + k``
    (|k| <= reach) is the key of session ``t + k`` of the same patient.
    """
    patient = np.asarray(patient, dtype=np.int64)
    session = np.asarray(session, dtype=np.int64)
    low = int(session.min())
    span = int(session.max()) - low + abs(reach) + 1
    if (int(patient.max()) + 1) * span >= _PACKED_KEY_LIMIT:
        return None
    return patient * span + (session - low)


def lead_positions(patient: np.ndarray, session: np.ndarray, k: int) -> np.ndarray:
    """Row position of session ``t + k`` of the same patient, for every row.

    Parameters
    ----------
    patient : numpy.ndarray of int
        Non-negative integer patient codes, one per row.
    session : numpy.ndarray of int
        Positive integer session numbers; (patient, session) must be unique.
    k : int
        The lead distance in sessions (k >= 1).

    Returns
    -------
    numpy.ndarray of int64
        For each row, the position of the row holding (patient, session + k),
        or -1 when the patient has no such session.
    """
    n = len(patient)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    patient = np.asarray(patient, dtype=np.int64)
    session = np.asarray(session, dtype=np.int64)
    key = packed_keys(patient, session, k)
    if key is not None:
        # unique keys (duplicates are refused upstream), so get_indexer is a reindex
        return pd.Index(key).get_indexer(key + k).astype(np.int64, copy=False)
    # Sessions numbered so high that the packed key could overflow: merge on both columns.
    wanted = pd.DataFrame({"patient": patient, "session": session + k})
    present = pd.DataFrame({"patient": patient, "session": session, "position": np.arange(n)})
    found = wanted.merge(present, on=["patient", "session"], how="left", sort=False)
    return found["position"].fillna(-1).to_numpy(dtype=np.int64)


def outcome_leads(
    patient: np.ndarray,
    session: np.ndarray,
    outcome: np.ndarray,
    leads: Sequence[int],
) -> dict[int, np.ndarray]:
    """The outcome at session ``t + k`` for each lead ``k``.

    Call this on every row whose patient and session are known, before rows with
    a missing alliance or outcome are dropped: a session whose alliance is
    missing still carries the outcome that earlier sessions lead to.

    Parameters
    ----------
    patient, session : numpy.ndarray of int
        Patient codes and session numbers, one per row, (patient, session) unique.
    outcome : numpy.ndarray of float
        The outcome per row, NaN when missing.
    leads : sequence of int
        Lead distances (positive).

    Returns
    -------
    dict of int to numpy.ndarray of float
        ``k -> outcome at t + k`` aligned with the input rows, NaN where the
        session ``t + k`` is absent or its outcome is missing.
    """
    outcome = np.asarray(outcome, dtype=np.float64)
    result: dict[int, np.ndarray] = {}
    for k in leads:  # a handful of lead distances, not patients
        position = lead_positions(patient, session, k)
        found = position >= 0
        values = np.full(len(outcome), np.nan)
        values[found] = outcome[position[found]]
        result[k] = values
    return result


def previous_positions(patient: object, session: np.ndarray) -> np.ndarray | None:
    """Row position of session ``t - 1`` of the same patient, for every row (-1: none).

    ``patient`` may be any ids (a pandas Categorical uses its codes); ``session`` must
    hold integer session numbers. Returns None when this fast path does not apply
    (non-integer or missing session numbers, duplicated (patient, session) pairs, keys
    that would overflow): the caller then matches rows by a merge. Rows sorted by
    patient then session (a prepared panel) are matched to their neighbour, in O(n);
    any other order through a hash index on the packed key.
    """
    session = np.asarray(session)
    n = len(session)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    if session.dtype.kind == "f":
        if not (np.isfinite(session).all() and (session == np.floor(session)).all()):
            return None
    elif session.dtype.kind not in "iu":
        return None
    sessions = session.astype(np.int64)
    if isinstance(patient, (pd.Series, pd.Index)):
        patient = patient.array
    if isinstance(patient, pd.Categorical):
        codes = patient.codes.astype(np.int64) + 1  # -1 (missing) matches missing, as merge does
    else:
        codes = pd.factorize(np.asarray(patient) if isinstance(patient, (list, tuple)) else patient,
                             use_na_sentinel=False)[0].astype(np.int64)
    key = packed_keys(codes, sessions, 1)  # reach 1: session t - 1 of a first session stays unmatched
    if key is None:
        return None
    step = np.diff(key)
    if (step > 0).all():
        # sorted, unique keys: session t - 1 of the same patient can only be the row before
        found = np.r_[False, step == 1]
        return np.where(found, np.arange(n) - 1, -1)
    index = pd.Index(key)
    if not index.is_unique:
        return None
    return index.get_indexer(key - 1).astype(np.int64, copy=False)
