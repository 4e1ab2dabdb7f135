"""One rule, for every engine, for the columns a model uses.

:func:`model_columns` picks the columns a model reads out of the user's frame, refuses
what no engine can fit with a :class:`~pylme_alliance.errors.PylmeError` that names the
column and the problem, and returns a new frame (the caller's frame is never touched).

The rule (the same for lme4, nlme, glmmTMB and statsmodels):

- a used column must exist exactly once under a string label (duplicated labels,
  or labels that are not strings such as ``0`` or ``("a", "b")``, are refused);
- numbers must be finite and at most ``1e150`` in absolute value: ``inf`` would reach R as
  "NA/NaN/Inf in foreign function call", and squares of larger values overflow doubles;
- an ``object`` column of only strings is categorical, of only numbers is numeric, of
  only booleans is logical; a MIX of numbers and strings (or any other mix) is refused;
- complex numbers, timedeltas, periods, intervals and sparse columns are refused (no
  engine has a counterpart; convert them to numbers first);
- integers must be at most 2^53 in absolute value: R holds integers beyond 32 bits as
  doubles, which are exact only that far (a session number of 1e19 would not survive);
- a used column may not be named ``(Intercept)`` (its row would be indistinguishable from
  the intercept's), nor share its Unicode NFKC form with another column (``ｘ`` beside
  ``x``: Python reads the full-width letter as ``x``, so patsy would fit the wrong one);
- text and category levels must not contain NUL (R's strings end at it), named by column;
- categories that no row holds are dropped, as lme4 does (they are not "collinear");
- nullable ``Int64``/``Float64``/``boolean`` and pyarrow-backed columns are accepted and
  become plain numpy/object columns; tz-aware and naive datetimes stay datetimes for the R
  engines (R's POSIXct).

For ``target="statsmodels"`` the clean frame is also laid out as patsy needs it and as
the R engines see the same data: datetimes become seconds since 1970-01-01 UTC (what
R's POSIXct holds), ``datetime.date`` values days since then (R's Date), nullable
numbers float64 with NaN, strings object, logicals with missing values object (the
rows with a missing value are dropped before the fit either way).
"""
from __future__ import annotations

import datetime as _dt
import unicodedata
from collections.abc import Iterable

import numpy as np
import pandas as pd

from ..errors import PylmeError

#: Largest absolute value a used numeric column may hold (see the module docstring).
MAX_ABS_VALUE = 1e150
#: Largest absolute integer a double holds exactly (R keeps integers beyond 32 bits as doubles).
MAX_EXACT_INTEGER = 2**53
TARGETS = ("r", "statsmodels")


def model_columns(data: pd.DataFrame, columns: Iterable[str], *, target: str = "r") -> pd.DataFrame:
    """The columns a model uses, checked and converted; a new frame with a fresh index.

    Parameters
    ----------
    data : pandas.DataFrame
        The user's frame; never modified.
    columns : iterable of str
        Names of the columns the model reads (each must be a column of ``data``; a name
        that is not gives the usual missing-column error upstream, not here).
    target : {"r", "statsmodels"}
        ``"r"`` leaves datetimes and categoricals for the R bridge; ``"statsmodels"``
        also converts them as described in the module docstring.

    Returns
    -------
    pandas.DataFrame
        Columns in the order given, index ``0..n-1``.

    Raises
    ------
    PylmeError
        Naming the column and the problem, for every case in the module docstring.
    """
    if target not in TARGETS:
        raise PylmeError(f"target must be one of {TARGETS}, got {target!r}")
    used = list(dict.fromkeys(columns))
    labels = list(data.columns)
    by_name: dict[str, list[int]] = {}
    for j, label in enumerate(labels):
        by_name.setdefault(str(label), []).append(j)
    _refuse_confusable_names(used, labels)
    positions: list[int] = []
    for name in used:
        where = by_name.get(name, [])
        if len(where) > 1:
            raise PylmeError(f"column {name!r} appears {len(where)} times in the data (duplicated column "
                             "name); rename the copies so that each name is unique")
        if not where:
            raise PylmeError(f"column {name!r} is not in the data")
        label = labels[where[0]]
        if not isinstance(label, str):
            raise PylmeError(f"column {label!r} has a {type(label).__name__} label, not a string; "
                             f"rename it first, e.g. data.rename(columns={{{label!r}: {str(label)!r}}})")
        positions.append(where[0])
    out = {}
    for name, j in zip(used, positions):
        out[name] = _clean(data.iloc[:, j], name, target)
    return pd.DataFrame(out, index=pd.RangeIndex(len(data)))


def _refuse_confusable_names(used: list[str], labels: list[object]) -> None:
    """Refuse a used column named ``(Intercept)`` or whose NFKC form another column shares."""
    if "(Intercept)" in used:
        raise PylmeError("column '(Intercept)' is used in the model, but every fit already has a term "
                         "named '(Intercept)' (the intercept), so the two rows could not be told apart; "
                         "rename the column, e.g. data.rename(columns={'(Intercept)': 'intercept_col'})")
    by_form: dict[str, list[str]] = {}
    for label in labels:
        if isinstance(label, str):
            by_form.setdefault(unicodedata.normalize("NFKC", label), []).append(label)
    for name in used:
        same = list(dict.fromkeys(by_form.get(unicodedata.normalize("NFKC", name), [name])))
        if len(same) > 1:
            raise PylmeError(f"columns {same!r} differ only in Unicode compatibility forms (e.g. full-width "
                             "letters); Python and patsy read them as the same name (NFKC), so a fit could "
                             "use one and label it with the other; rename one of them")


def _clean(series: pd.Series, name: str, target: str) -> pd.Series:
    series = series.reset_index(drop=True).rename(name)
    dtype = series.dtype
    if isinstance(dtype, pd.ArrowDtype):
        series = _from_arrow(series, name)
        dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        _refuse_nul_levels(series.cat.categories, name)
        # a category no row holds is not data (lme4 drops it; the rank check would call it collinear)
        return series.cat.remove_unused_categories()
    if isinstance(dtype, pd.SparseDtype) or isinstance(dtype, (pd.PeriodDtype, pd.IntervalDtype)):
        raise PylmeError(f"column {name!r} has dtype {dtype}, which no engine can fit; convert it to "
                         "numbers or strings first")
    if pd.api.types.is_complex_dtype(dtype):
        raise PylmeError(f"column {name!r} holds complex numbers, which no engine can fit; use the real "
                         "and imaginary parts (or the modulus) as separate real columns")
    if pd.api.types.is_timedelta64_dtype(dtype):
        raise PylmeError(f"column {name!r} holds time spans (timedelta), which no engine can fit; convert "
                         f"them to numbers first, e.g. data[{name!r}].dt.total_seconds() / 86400 for days")
    if pd.api.types.is_bool_dtype(dtype):
        return _logical(series, target)
    if pd.api.types.is_numeric_dtype(dtype):
        return _numbers(series, name, target)
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return _seconds(series) if target == "statsmodels" else series
    if isinstance(dtype, pd.StringDtype) or pd.api.types.is_string_dtype(dtype) and dtype != object:  # noqa: E721
        return _strings(series, target)
    if dtype == object:  # noqa: E721 (a numpy dtype equals the type object)
        return _object(series, name, target)
    raise PylmeError(f"column {name!r} has dtype {dtype}, which no engine can fit; convert it to "
                     "numbers or strings first")


def _from_arrow(series: pd.Series, name: str) -> pd.Series:
    """pyarrow-backed column -> the numpy/pandas column the R bridge already handles."""
    import pyarrow as pa

    kind = series.dtype.pyarrow_dtype
    missing = series.isna().to_numpy()
    if pa.types.is_boolean(kind):
        return series.astype("boolean")
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        values = series.astype("float64[pyarrow]").to_numpy(dtype=np.float64, na_value=np.nan)
        if pa.types.is_integer(kind) and not missing.any():
            return pd.Series(series.to_numpy(dtype=np.int64), name=name)
        return pd.Series(values, name=name)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return pd.Series(np.where(missing, None, series.astype(object).to_numpy()), dtype=object, name=name)
    if pa.types.is_timestamp(kind):
        unit_tz = f"datetime64[ns, {kind.tz}]" if kind.tz else "datetime64[ns]"
        return series.astype(unit_tz)
    if pa.types.is_date(kind):
        return pd.Series(series.astype(object).to_numpy(), dtype=object, name=name)
    if pa.types.is_dictionary(kind):
        return series.astype(object).astype("category")
    if pa.types.is_duration(kind):
        raise PylmeError(f"column {name!r} holds time spans (duration[pyarrow]), which no engine can fit; "
                         "convert them to numbers first")
    raise PylmeError(f"column {name!r} has dtype {series.dtype}, which no engine can fit; convert it to "
                     "numbers or strings first")


def _numbers(series: pd.Series, name: str, target: str) -> pd.Series:
    missing = series.isna().to_numpy()
    if pd.api.types.is_integer_dtype(series.dtype):
        unsigned = pd.api.types.is_unsigned_integer_dtype(series.dtype)  # uint64 holds 1e19
        raw = series.dropna().to_numpy(dtype=np.uint64 if unsigned else np.int64)
        too_big = (raw > MAX_EXACT_INTEGER) if unsigned else (
            (raw > MAX_EXACT_INTEGER) | (raw < -MAX_EXACT_INTEGER))
        big = raw[too_big]
        if big.size:
            raise PylmeError(f"column {name!r} has {len(big)} integer(s) beyond 2^53 = {MAX_EXACT_INTEGER:,} in "
                             f"absolute value (e.g. {int(big[0])}), which R cannot hold exactly (it keeps "
                             "large integers as doubles); check the values, or rescale or recode the column")
        if target == "statsmodels" and missing.any():
            return pd.Series(series.to_numpy(dtype=np.float64, na_value=np.nan), name=name)
        return series  # integers are finite and at most 9.2e18
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~missing & ~(np.abs(values) <= MAX_ABS_VALUE)  # catches inf and huge, not NaN
    if bad.any():
        rows = np.flatnonzero(bad)
        first = values[rows[0]]
        what = "infinite" if np.isinf(first) else f"beyond {MAX_ABS_VALUE:g} in absolute value"
        raise PylmeError(f"column {name!r} has {len(rows)} value(s) that are infinite or beyond "
                         f"{MAX_ABS_VALUE:g} in absolute value (first at row {rows[0]}: {first!r}, {what}); "
                         "set them to NaN (missing) or rescale the column")
    if target == "statsmodels" or not isinstance(series.dtype, np.dtype):
        return pd.Series(values, name=name)
    return series


def _logical(series: pd.Series, target: str) -> pd.Series:
    if isinstance(series.dtype, np.dtype):
        return series
    missing = series.isna().to_numpy()
    if not missing.any():
        return pd.Series(series.to_numpy(dtype=bool), name=series.name)
    if target == "statsmodels":
        raw = series.astype(object).to_numpy()
        return pd.Series(np.where(missing, None, raw), dtype=object, name=series.name)
    return series.astype("boolean")


def _refuse_nul_levels(values: Iterable[object], name: str) -> None:
    for value in values:
        if isinstance(value, str) and "\x00" in value:
            raise PylmeError(f"column {name!r} has the value {value!r}, which contains a NUL character "
                             "(\\x00) that R strings cannot hold; remove it first")


def _strings(series: pd.Series, target: str) -> pd.Series:
    _refuse_nul_levels(series.dropna().unique(), str(series.name))
    if target == "r":
        return series
    missing = series.isna().to_numpy()
    return pd.Series(np.where(missing, None, series.astype(object).to_numpy()), dtype=object,
                     name=series.name)


def _seconds(series: pd.Series) -> pd.Series:
    # R's POSIXct: seconds since 1970-01-01 UTC, whatever the display time zone
    values = series.dt.tz_convert("UTC") if getattr(series.dt, "tz", None) is not None else series
    ns = values.to_numpy(dtype="datetime64[ns]").astype(np.int64).astype(np.float64)
    return pd.Series(np.where(series.isna().to_numpy(), np.nan, ns / 1e9), name=series.name)


def _object(series: pd.Series, name: str, target: str) -> pd.Series:
    kind = pd.api.types.infer_dtype(series, skipna=True)
    if kind in ("string", "empty"):
        _refuse_nul_levels(series.dropna().unique(), name)
        return series
    if kind == "boolean":
        return _logical(series.astype("boolean"), target)
    if kind in ("integer", "floating", "mixed-integer-float", "decimal"):
        try:
            values = np.array([np.nan if v is None or v is pd.NA else float(v) for v in series], dtype=np.float64)
        except OverflowError:
            raise PylmeError(f"column {name!r} has a number too large for a double; rescale it") from None
        return _numbers(pd.Series(values, name=name), name, target)
    if kind == "date":
        if target == "r":
            return series
        days = [np.nan if not isinstance(v, _dt.date) else float((v - _dt.date(1970, 1, 1)).days) for v in series]
        return pd.Series(days, dtype=np.float64, name=name)
    if kind == "datetime":
        converted = pd.to_datetime(series)
        return _seconds(converted) if target == "statsmodels" else converted
    if kind in ("mixed-integer", "mixed"):
        present = series.dropna()
        numbers = int(sum(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in present))
        texts = int(sum(isinstance(v, str) for v in present))
        sample = list(dict.fromkeys(present.tolist()))[:4]
        raise PylmeError(
            f"column {name!r} (object dtype) holds a mix of value types ({numbers} number(s), {texts} "
            f"string(s), {len(present) - numbers - texts} other), e.g. {sample!r}; an object column "
            "must hold only strings (categorical) or only numbers (numeric): convert it with "
            f"pd.to_numeric(data[{name!r}], errors='coerce') or data[{name!r}].astype(str)")
    if kind == "complex":
        raise PylmeError(f"column {name!r} holds complex numbers, which no engine can fit; use the real "
                         "and imaginary parts (or the modulus) as separate real columns")
    if kind in ("timedelta", "time", "period", "interval", "bytes"):
        raise PylmeError(f"column {name!r} holds {kind} values, which no engine can fit; convert them to "
                         "numbers or strings first")
    raise PylmeError(f"column {name!r} holds values of type {kind!r}, which no engine can fit; convert "
                     "them to numbers or strings first")
