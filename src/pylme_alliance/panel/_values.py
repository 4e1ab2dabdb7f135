"""Values that cannot be right, caught by :func:`prepare` before any fit.

Three checks, in this order: codes the user declares missing (``na_values=``) become
missing; with the scales' bounds (``alliance_range=``, ``outcome_range=``) any value
outside them is refused; without bounds, typical missing-data codes (-99, 999, ...)
standing apart from the other values, and values far outside the bulk, are flagged
with a :class:`~pylme_alliance.errors.SentinelWarning`. A lab file that codes "not
rated" as -99 must never reach a model as a score of -99 (issue 20).
"""
from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from ..errors import PylmeError, SentinelWarning, user_stacklevel

#: Codes statistics packages and lab conventions use for "missing", "not rated",
#: "refused": flagged only where they stand apart from every other value of the column.
SENTINEL_CODES: tuple[float, ...] = (-9999.0, -8888.0, -999.0, -99.0, -9.0, 99.0, 999.0, 8888.0, 9999.0)
#: A sentinel code is flagged when it lies beyond the column's other values and more
#: than this many interquartile ranges outside the quartiles.
CODE_IQRS = 3.0
#: Any value more than this many interquartile ranges from the median is flagged: no
#: questionnaire score lies that far outside the bulk of its own column.
FAR_IQRS = 10.0
# the scan needs a bulk to compare with
_MIN_VALUES = 5


def file_labels(data: pd.DataFrame, columns: list[Hashable]) -> dict[Hashable, str]:
    """``{column: label}`` for the used columns that carry a variable label in
    ``data.attrs["labels"]`` (as :func:`read_data` leaves them); anything else is ignored."""
    labels = data.attrs.get("labels") if isinstance(data.attrs, dict) else None
    if not isinstance(labels, Mapping):
        return {}
    out: dict[Hashable, str] = {}
    for column in columns:
        try:
            label = labels.get(column)
        except TypeError:  # an unhashable name cannot be a key
            continue
        if isinstance(label, str) and label.strip():
            out[column] = " ".join(label.split())
    return out


def bounds(value: Any, argument: str) -> tuple[float, float] | None:
    """``(low, high)`` from ``alliance_range=``/``outcome_range=``; None stays None."""
    if value is None:
        return None
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise PylmeError(f"{argument} must be a pair (low, high) of numbers, got {value!r}")
    pair = tuple(value)
    ok = len(pair) == 2 and all(
        isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) and math.isfinite(v) for v in pair)
    if not ok:
        raise PylmeError(f"{argument} must be a pair (low, high) of finite numbers, got {value!r}")
    low, high = float(pair[0]), float(pair[1])
    if not low < high:
        raise PylmeError(f"{argument} must have low < high, got {value!r}")
    return low, high


def _code_tuple(codes: Any, argument: str) -> tuple:
    if isinstance(codes, (str, bytes)) or not isinstance(codes, Iterable):
        codes = (codes,)
    items = tuple(codes)
    if not items:
        raise PylmeError(f"{argument} is empty; give the codes that mean missing, e.g. [-99, 999]")
    for code in items:
        if isinstance(code, (bool, np.bool_)) or not isinstance(code, (numbers.Real, str)):
            raise PylmeError(f"{argument} must hold numbers or strings, got {code!r}")
        if isinstance(code, numbers.Real) and not math.isfinite(code):
            raise PylmeError(f"{argument} holds {code!r}; NaN is missing already and infinite "
                             "values are refused on their own")
    return items


def na_codes(na_values: Any, *, value_columns: Sequence[Hashable],
             used_columns: Sequence[Hashable]) -> dict[Hashable, tuple]:
    """``na_values=`` as ``{column: codes}``.

    A scalar or a sequence applies to ``value_columns`` (alliance, outcome and the
    moderators: never to ids or session numbers, where 99 is an ordinary value); a
    dict names its columns, which must be among ``used_columns``.
    """
    if na_values is None:
        return {}
    if isinstance(na_values, Mapping):
        out: dict[Hashable, tuple] = {}
        for column, codes in na_values.items():
            if column not in used_columns:
                raise PylmeError(f"na_values names column {column!r}, which prepare() does not use "
                                 f"(used: {', '.join(repr(c) for c in used_columns)})")
            out[column] = _code_tuple(codes, f"na_values[{column!r}]")
        return out
    codes = _code_tuple(na_values, "na_values")
    return {column: codes for column in value_columns}


def matches(series: pd.Series, codes: tuple) -> np.ndarray:
    """Rows of ``series`` holding one of ``codes`` (numbers compare by value: -99 == -99.0)."""
    numbers_ = [float(c) for c in codes if isinstance(c, numbers.Real)]
    if ptypes.is_numeric_dtype(series.dtype) and not ptypes.is_bool_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return np.isin(values, numbers_) if numbers_ else np.zeros(len(series), dtype=bool)
    return series.isin(list(codes)).to_numpy(dtype=bool)


def apply_na_codes(data: pd.DataFrame, codes: Mapping[Hashable, tuple]
                   ) -> tuple[pd.DataFrame, dict[Hashable, np.ndarray]]:
    """``data`` with the declared codes set missing (a new frame; the caller's stays as
    it was) and, per column, the rows that were set missing."""
    if not codes:
        return data, {}
    work = data.copy(deep=False)
    masks: dict[Hashable, np.ndarray] = {}
    for column, column_codes in codes.items():
        mask = matches(data[column], column_codes)
        masks[column] = mask
        if mask.any():
            work[column] = data[column].mask(mask)
    return work, masks


def _value_counts(values: np.ndarray, limit: int = 5) -> str:
    found, counts = np.unique(values, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    shown = [f"{found[i]:g} ({counts[i]} row{'s' if counts[i] != 1 else ''})" for i in order[:limit]]
    more = f" and {len(found) - limit} other value(s)" if len(found) > limit else ""
    return ", ".join(shown) + more


def check_range(values: np.ndarray, series: pd.Series, name: Hashable, role: str,
                limits: tuple[float, float] | None) -> None:
    """Refuse values of ``role`` column ``name`` outside ``limits`` (NaN is missing, not outside)."""
    if limits is None:
        return
    low, high = limits
    outside = (values < low) | (values > high)  # False for NaN
    if not outside.any():
        return
    rows = ", ".join(repr(i) for i in series.index[outside][:5])
    codes = sorted({float(v) for v in values[outside]})[:5]
    raise PylmeError(
        f"{role} column {name!r} has {int(outside.sum())} value(s) outside {role}_range=({low:g}, {high:g}): "
        f"{_value_counts(values[outside])}; first rows: {rows}. If these are missing-data codes, "
        f"declare them missing with na_values=[{', '.join(f'{c:g}' for c in codes)}]; if the scale's "
        f"bounds are wider, widen {role}_range."
    )


def suspect_values(values: np.ndarray) -> dict[float, int]:
    """Values of one column that look like missing-data codes, with their row counts.

    A value is suspect when it is a :data:`SENTINEL_CODES` code lying beyond every other
    value of the column and more than :data:`CODE_IQRS` IQRs outside its quartiles, or
    any value more than :data:`FAR_IQRS` IQRs from the median. Quantiles come from the
    values that are not codes, so a few hundred -99s do not hide themselves.
    """
    present = values[~np.isnan(values)]
    if len(present) < _MIN_VALUES:
        return {}
    is_code = np.isin(present, SENTINEL_CODES)
    bulk = present[~is_code]
    if len(bulk) < _MIN_VALUES:
        return {}
    q1, median, q3 = np.percentile(bulk, [25.0, 50.0, 75.0])
    iqr = q3 - q1
    low, high = bulk.min(), bulk.max()
    # a column whose middle half is one value (a 0/1 moderator) spreads over its range
    spread = iqr if iqr > 0 else (high - low) / 2
    suspect = is_code & (((present < low) & (present < q1 - CODE_IQRS * spread))
                         | ((present > high) & (present > q3 + CODE_IQRS * spread)))
    if iqr > 0:
        suspect |= np.abs(present - median) > FAR_IQRS * iqr
    if not suspect.any():
        return {}
    found, counts = np.unique(present[suspect], return_counts=True)
    return {float(v): int(c) for v, c in zip(found, counts)}


def sentinel_message(found: Mapping[str, Mapping[float, int]]) -> str:
    """The warning for ``{"alliance column 'wai'": {-99.0: 12}, ...}``."""
    parts = []
    codes: list[float] = []
    for where, counts in found.items():
        shown = ", ".join(f"{v:g} ({c} row{'s' if c != 1 else ''})"
                          for v, c in sorted(counts.items(), key=lambda item: -item[1])[:5])
        more = f" and {len(counts) - 5} other value(s)" if len(counts) > 5 else ""
        parts.append(f"{where}: {shown}{more}")
        codes += [v for v in counts if v not in codes]
    listed = ", ".join(f"{v:g}" for v in sorted(codes)[:8])
    return (
        "values that look like missing-data codes, not scores, stand far outside the other values of "
        + "; ".join(parts)
        + f". They would be analysed as real values. If they mean 'not rated' or 'missing', declare "
        f"them: prepare(..., na_values=[{listed}]) (CLI: --na-values={listed.replace(', ', ',')}); "
        "or give the scales' bounds with alliance_range=/outcome_range= to refuse any value outside them."
    )


def flag_suspects(columns: Mapping[str, np.ndarray | None]) -> dict[str, dict[float, int]]:
    """Scan each column (None: not scanned, its bounds were given); warn once with a
    :class:`SentinelWarning` naming every suspect value; return what was found."""
    found = {where: suspect for where, values in columns.items() if values is not None
             for suspect in [suspect_values(values)] if suspect}
    if found:
        warnings.warn(sentinel_message(found), SentinelWarning, stacklevel=user_stacklevel())
    return found
