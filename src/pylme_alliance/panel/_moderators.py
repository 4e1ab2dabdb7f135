"""Patient-level moderators for :func:`prepare`: numeric ones grand-mean centred over
patients, categorical ones encoded with the reference level first."""
from __future__ import annotations

import numbers
from collections.abc import Hashable
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from ..errors import PylmeError
from . import _centering
from ._checks import _derived_name, _examples, _is_categorical_dtype, _numeric_values
from .data import ModeratorInfo


def moderator_kind(series: pd.Series, name: Hashable) -> str:
    """"numeric" or "categorical", by one rule for every dtype.

    A numeric dtype, or an object column holding only numbers, is numeric. A pandas
    Categorical or a bool column is categorical, whatever its levels. A text column is
    categorical only when none of its values reads as a number: numbers stored as text,
    or numbers with a stray text value ("n/a", "?", "missing"), are refused rather than
    turned into one factor level per distinct number.
    """
    dtype = series.dtype
    if ptypes.is_bool_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
        return "categorical"
    if ptypes.is_numeric_dtype(dtype):
        return "numeric"
    if not _is_categorical_dtype(dtype):
        return "other"
    present = series[series.notna()]
    if present.empty:
        return "categorical"
    first = present[~present.map(_hashable_key).duplicated()]  # one row per distinct value
    is_bool = first.map(lambda v: isinstance(v, (bool, np.bool_)))
    stripped = first.map(lambda v: v.strip() if isinstance(v, str) else v)
    parsed = pd.to_numeric(stripped.where(~is_bool, None), errors="coerce")
    number = parsed.notna() & ~is_bool
    if not number.any():
        return "categorical"
    if first.map(lambda v: isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))).all():
        return "numeric"  # an object column of Python numbers
    if number.all():
        raise PylmeError(
            f"moderator {name!r} holds numbers stored as text (e.g. {_examples(first, 3)}). "
            f"Convert it with pd.to_numeric for a numeric moderator, or pass it as a pandas "
            "Categorical (.astype('category')) if its values are category labels."
        )
    raise PylmeError(
        f"moderator {name!r} mixes numbers with {int((~number).sum())} non-numeric value(s): "
        f"{_examples(first[~number])}. A numeric moderator with stray text would become one "
        "factor level per distinct number; convert it with pd.to_numeric(..., errors='coerce') "
        "if those values mean missing, or pass a pandas Categorical if it is categorical."
    )


def _hashable_key(value: Any) -> Any:
    # distinct by type and value: "1" and 1 are different values
    try:
        hash(value)
    except TypeError:
        return (type(value).__name__, repr(value))
    return (type(value).__name__, value)


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
    kind = moderator_kind(series, name)

    def varies_error(low: np.ndarray, high: np.ndarray) -> PylmeError:
        varying = np.flatnonzero(high > low)
        shown = ", ".join(repr(p) for p in patient_ids[varying[:5]])
        return PylmeError(
            f"moderator {name!r} varies within {len(varying)} patient(s) (e.g. {shown}), "
            "but a moderator of the alliance effect is a patient-level variable. Fix the data, "
            f"or list it in time_varying=[{name!r}] to centre it on the mean over sessions."
        )

    if kind == "numeric":
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
