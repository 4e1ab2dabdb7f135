"""Argument and value checks of :func:`prepare` (pure pandas/numpy): every bad input
becomes a PylmeError naming the column and the problem."""
from __future__ import annotations

import datetime as dt
import difflib
import numbers
from collections.abc import Hashable, Iterable
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from ..errors import PylmeError
from ._leads import packed_keys

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


def _check_role_columns(data: pd.DataFrame, roles: dict[str, Hashable | None],
                        moderators: tuple[Hashable, ...]) -> list[tuple[str, Hashable]]:
    """Check the role and moderator columns exist once each and no column plays two
    parts; return the ``(role, column)`` pairs given."""
    used = [(role, name) for role, name in roles.items() if name is not None]
    for role, name in used:
        _check_column(data, name, f"{role}=")
    for i, (role, name) in enumerate(used):
        for other_role, other in used[i + 1:]:
            if name == other:
                raise PylmeError(f"column {name!r} is given both as {role}= and as {other_role}=")
    role_columns = {name for _, name in used}
    for name in moderators:
        _check_column(data, name, "a moderator")
        if name in role_columns:
            raise PylmeError(f"moderator {name!r} is also a role column (patient, session, ...)")
    return used


def _derived_name(name: Hashable, suffix: str) -> str:
    return f"{name}{suffix}"


# -- value checks -----------------------------------------------------------------

#: Session numbers above this are refused (a session number, not a date or a timestamp).
MAX_SESSION_NUMBER = 10**9

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
            f"session column {name!r} must hold integer session numbers (0 or 1, 2, 3, ...); "
            f"non-integer values: {_examples(series[~missing][not_integer])}. "
            "Pass calendar time as time= instead."
        )
    # many data sets count waves from 0 (intake = 0): any non-negative numbering works,
    # because leads and lags are matched by the number, not by its origin
    negative = present < 0
    if negative.any():
        raise PylmeError(
            f"session column {name!r} must hold session numbers >= 0; "
            f"found: {_examples(series[~missing][negative])}"
        )
    # 1e19 does not fit int64 (it became -9223372036854775808), and beyond 2**53 a float
    # no longer holds every integer: no therapy has a billion sessions
    too_large = present > MAX_SESSION_NUMBER
    if too_large.any():
        raise PylmeError(
            f"session column {name!r} holds session numbers above {MAX_SESSION_NUMBER:,}: "
            f"{_examples(series[~missing][too_large])}. Session numbers count sessions (1, 2, 3, ...); "
            "pass calendar time or timestamps as time= instead."
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
    if ptypes.is_object_dtype(dtype):
        present = series[series.notna()]
        # datetime.date / datetime.datetime objects (an SPSS or Stata date read without
        # conversion, or a frame built by hand) are calendar dates as much as datetime64
        if len(present) and present.map(lambda v: isinstance(v, (dt.date, pd.Timestamp))).all():
            try:
                return _time_in_days(pd.to_datetime(series, utc=True), name)
            except (ValueError, TypeError, OverflowError) as error:
                raise PylmeError(f"time column {name!r} holds dates that cannot be used: {error}") from None
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


def _check_duplicates(
    data: pd.DataFrame, codes: np.ndarray, sessions: np.ndarray, valid: np.ndarray,
    patient: Hashable, session: Hashable,
) -> None:
    p, s = codes[valid], sessions[valid]
    packed = packed_keys(p, s) if len(p) else None
    if packed is not None:
        # the usual case, no duplicates: one sort of packed keys says so
        packed = np.sort(packed)
        if not (packed[1:] == packed[:-1]).any():
            return
    keys = pd.DataFrame({"p": p, "s": s})
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
