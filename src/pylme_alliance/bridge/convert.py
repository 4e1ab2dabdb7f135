"""Column-wise conversion between pandas and R vectors.

Every column crosses as one buffer copy: numbers via raw data buffers, categoricals and
strings as integer codes plus a levels vector (an R factor), missing values as R's NA
sentinels. Nothing is converted row by row in Python, and no value ever becomes R
source text: names and levels travel as character vectors.

Call these only with the R lock held (``session.lock``): they allocate R objects.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import PylmeError
from . import _rpy2compat
from .rload import rinterface

# the guarded import: a broken rpy2 raises one PylmeError that says how to fix it
ri = rinterface()

_NA_INT = np.iinfo(np.int32).min  # R's NA_integer_ and NA (logical) bit pattern
_INT32_MAX = np.iinfo(np.int32).max
_SECONDS_PER_DAY = 86400.0


# ---------------------------------------------------------------- pandas -> R

def _float_vector(values: np.ndarray) -> ri.FloatSexpVector:
    buf = np.ascontiguousarray(values, dtype=np.float64)
    return ri.FloatSexpVector.from_memoryview(memoryview(buf))


def _int_vector(values: np.ndarray) -> ri.IntSexpVector:
    buf = np.ascontiguousarray(values, dtype=np.int32)
    return ri.IntSexpVector.from_memoryview(memoryview(buf))


def _set_attr(vec: Any, name: str, value: Any) -> None:
    if name == "class":
        # the rclass setter goes through R's classgets, which also sets the OBJECT bit
        # that S3 dispatch (factor printing, dim.data.frame, ...) relies on
        vec.rclass = value
    else:
        vec.do_slot_assign(name, value)


def _na_float(values: np.ndarray, missing: np.ndarray) -> np.ndarray:
    # R tells NA from NaN by the payload; NaN is "missing" to lme4 either way, but a
    # true NA_real_ keeps is.na() and printing honest.
    out = np.array(values, dtype=np.float64, copy=True)
    if missing.any():
        out[missing] = float(ri.NA_Real)
    return out


def _refuse_nul(texts: list[str], what: str) -> None:
    # R strings cannot hold NUL: R would silently cut the text at it
    bad = [t for t in texts if "\x00" in t]
    if bad:
        raise PylmeError(f"{what} {bad[0]!r} contains a NUL character (\\x00), which R strings "
                         "cannot hold; remove it first")
    # R takes text as UTF-8; a lone surrogate (e.g. from a mis-decoded file) has none
    for t in texts:
        try:
            t.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise PylmeError(f"{what} {t!r} holds {t[exc.start]!r}, which is not valid text (a lone "
                             "surrogate, usually from a file read with the wrong encoding); "
                             "re-read the file with its real encoding") from None


def _factor(codes: np.ndarray, levels: list[str], column: str) -> ri.IntSexpVector:
    _refuse_nul(levels, f"column {column!r}: the level")
    if len(set(levels)) != len(levels):
        raise PylmeError(
            f"column {column!r}: categories become R factor levels as text, and two of "
            "them have the same text; make the categories distinct strings first"
        )
    r_codes = np.where(codes < 0, _NA_INT, codes.astype(np.int64) + 1)
    vec = _int_vector(r_codes)
    _set_attr(vec, "levels", ri.StrSexpVector(levels))
    _set_attr(vec, "class", ri.StrSexpVector(["factor"]))
    return vec


def _categorical_to_r(values: pd.Categorical, column: str) -> ri.IntSexpVector:
    levels = [str(c) for c in values.categories]
    vec = _factor(np.asarray(values.codes), levels, column)
    if values.ordered:
        _set_attr(vec, "class", ri.StrSexpVector(["ordered", "factor"]))
    return vec


def _strings_to_r(series: pd.Series, column: str) -> ri.IntSexpVector:
    # factorize is vectorised in C; R gets the codes and each distinct string once
    codes, uniques = pd.factorize(series, sort=True, use_na_sentinel=True)
    return _factor(codes, [str(u) for u in uniques], column)


def _datetime_to_r(series: pd.Series) -> ri.FloatSexpVector:
    tz = getattr(series.dt, "tz", None)
    values = series.dt.tz_convert("UTC") if tz is not None else series
    ns = values.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    seconds = ns / 1e9
    vec = _float_vector(_na_float(seconds, series.isna().to_numpy()))
    _set_attr(vec, "class", ri.StrSexpVector(["POSIXct", "POSIXt"]))
    _set_attr(vec, "tzone", ri.StrSexpVector([str(tz) if tz is not None else "UTC"]))
    return vec


def _dates_to_r(series: pd.Series) -> ri.FloatSexpVector:
    stamps = pd.to_datetime(series)
    days = (stamps.to_numpy(dtype="datetime64[ns]").astype(np.int64) // 10**9) / _SECONDS_PER_DAY
    vec = _float_vector(_na_float(days, series.isna().to_numpy()))
    _set_attr(vec, "class", ri.StrSexpVector(["Date"]))
    return vec


def _integers_to_r(values: np.ndarray, missing: np.ndarray) -> ri.SexpVector:
    present = values[~missing]
    if present.size and (present.min() <= _NA_INT or present.max() > _INT32_MAX):
        # does not fit R's 32-bit integer (whose minimum is NA): R would use double too
        return _float_vector(_na_float(values.astype(np.float64), missing))
    out = np.where(missing, _NA_INT, values).astype(np.int32)
    return _int_vector(out)


def _column_to_r(series: pd.Series, column: str) -> ri.SexpVector:
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return _categorical_to_r(series.array, column)
    if pd.api.types.is_bool_dtype(dtype):
        missing = series.isna().to_numpy()
        raw = series.to_numpy(dtype=object if missing.any() else bool)
        flags = np.where(missing, _NA_INT, np.where(missing, 0, raw).astype(bool).astype(np.int32))
        return ri.BoolSexpVector.from_memoryview(memoryview(np.ascontiguousarray(flags, dtype=np.int32)))
    if pd.api.types.is_integer_dtype(dtype):
        missing = series.isna().to_numpy()
        values = series.to_numpy(dtype=np.int64, na_value=0)
        return _integers_to_r(values, missing)
    if pd.api.types.is_float_dtype(dtype):
        missing = series.isna().to_numpy()
        return _float_vector(_na_float(series.to_numpy(dtype=np.float64, na_value=np.nan), missing))
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return _datetime_to_r(series)
    if pd.api.types.is_string_dtype(dtype) or dtype == object:  # noqa: E721 (a numpy dtype equals the type)
        kind = pd.api.types.infer_dtype(series, skipna=True)
        if kind in ("string", "empty", "unicode"):
            return _strings_to_r(series, column)
        if kind == "boolean":
            return _column_to_r(series.astype("boolean"), column)
        if kind in ("integer", "floating", "mixed-integer-float", "decimal"):
            return _column_to_r(pd.to_numeric(series), column)
        if kind == "date":
            return _dates_to_r(series)
        if kind == "datetime":
            return _datetime_to_r(pd.to_datetime(series))
        raise PylmeError(
            f"column {column!r} holds a mix of value types ({kind}); "
            "convert it to one type (e.g. .astype(str) or pd.to_numeric) before fitting"
        )
    raise PylmeError(f"column {column!r} has dtype {dtype}, which has no R counterpart here")


def data_frame(columns: dict[str, ri.SexpVector], nrow: int) -> ri.ListSexpVector:
    """Assemble R vectors into an R data.frame without R's copying constructors."""
    frame = ri.ListSexpVector(list(columns.values()))
    _set_attr(frame, "names", ri.StrSexpVector(list(columns.keys())))
    # compact row names c(NA, -n): what R itself stores for automatic row names
    rownames = _int_vector(np.array([_NA_INT, -nrow])) if nrow else _int_vector(np.array([], dtype=np.int32))
    _set_attr(frame, "row.names", rownames)
    _set_attr(frame, "class", ri.StrSexpVector(["data.frame"]))
    return frame


def to_r(df: pd.DataFrame) -> ri.ListSexpVector:
    """Convert a pandas DataFrame to an R data.frame, column by column.

    Parameters
    ----------
    df : pandas.DataFrame
        Any frame; column names must be unique strings (they become R names as data,
        never as code). The index is not transferred.

    Returns
    -------
    rpy2.rinterface.ListSexpVector
        An R ``data.frame``: numbers as double/integer vectors, bool as logical,
        categoricals and strings as factors with the same levels in the same order,
        datetimes as ``POSIXct`` (``Date`` for ``datetime.date`` values), missing
        values as ``NA``.
    """
    if not isinstance(df, pd.DataFrame):
        raise PylmeError(f"expected a pandas DataFrame, got {type(df).__name__}")
    names = [str(c) for c in df.columns]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise PylmeError(f"column names must be unique; repeated: {dup}")
    _refuse_nul(names, "the column name")
    columns = {name: _column_to_r(df.iloc[:, j], name) for j, name in enumerate(names)}
    return data_frame(columns, len(df))


# ---------------------------------------------------------------- R -> pandas

def _rclass(obj: Any) -> list[str]:
    try:
        return list(obj.rclass)
    except Exception:  # noqa: BLE001 - objects without a class attribute
        return []


def _attr(obj: Any, name: str) -> Any:
    value = obj.do_slot(name) if name in obj.list_attrs() else None
    return value


def _numeric_array(vec: Any, dtype: Any) -> np.ndarray:
    """Copy an R integer/logical/double vector into a new numpy array.

    Through :func:`._rpy2compat.vector_bytes` (a plain cffi buffer on R's data pointer),
    never ``vec.memoryview()``, which leaks references to ``None`` in rpy2 3.5; the copy
    is made at once, so numpy never holds memory that R may free.
    """
    dtype = np.dtype(dtype)
    if len(vec) == 0:
        return np.array([], dtype=dtype)
    raw, shape = _rpy2compat.vector_bytes(vec, dtype.itemsize)
    values = np.frombuffer(raw, dtype=dtype).copy()
    # a matrix or array comes back with its dim, column-major as R stores it
    return values.reshape(shape, order="F") if len(shape) > 1 else values


def _vector_to_pandas(vec: Any) -> Any:
    """One R atomic vector -> numpy array / pandas extension array."""
    typ = vec.typeof
    cls = _rclass(vec)
    if typ == ri.RTYPES.INTSXP:
        codes = _numeric_array(vec, np.int32)
        missing = codes == _NA_INT
        if "factor" in cls:
            levels = list(_attr(vec, "levels") or [])
            return pd.Categorical.from_codes(
                np.where(missing, -1, codes - 1), categories=pd.Index(levels, dtype=object),
                ordered="ordered" in cls,
            )
        if missing.any():
            return pd.arrays.IntegerArray(np.where(missing, 0, codes).astype(np.int64), missing)
        return codes.astype(np.int64)
    if typ == ri.RTYPES.LGLSXP:
        flags = _numeric_array(vec, np.int32)
        missing = flags == _NA_INT
        if missing.any():
            return pd.arrays.BooleanArray(np.where(missing, 0, flags).astype(bool), missing)
        return flags.astype(bool)
    if typ == ri.RTYPES.REALSXP:
        values = _numeric_array(vec, np.float64)
        # R's NA_real_ is a signalling NaN (payload 1954): numpy arithmetic on it raises
        # "invalid value" RuntimeWarnings, so hand Python the ordinary quiet NaN
        missing = np.isnan(values)
        if missing.any():
            values[missing] = np.nan
        if "POSIXct" in cls:
            tz = _attr(vec, "tzone")
            stamps = pd.to_datetime(values, unit="s", utc=True)
            tzname = str(tz[0]) if tz is not None and len(tz) and str(tz[0]) else None
            if tzname in (None, "UTC"):
                return stamps.tz_localize(None).array
            return stamps.tz_convert(tzname).array
        if "Date" in cls:
            missing = np.isnan(values)
            days = np.where(missing, 0, values).astype(np.int64).astype("datetime64[D]")
            dates = days.astype(object)  # datetime.date objects, converted in C
            dates[missing] = None
            return dates
        return values
    if typ == ri.RTYPES.STRSXP:
        return np.array([None if s is ri.NA_Character else str(s) for s in vec], dtype=object)
    raise PylmeError(f"cannot convert an R vector of type {typ} to pandas")


def from_r(obj: Any) -> pd.DataFrame:
    """Convert an R data.frame to a pandas DataFrame.

    Factors become pandas Categoricals with the same levels (NA kept), R integer and
    logical NA become ``pd.NA`` in nullable columns (never -2147483648), character NA
    becomes ``None``.
    """
    if "data.frame" not in _rclass(obj):
        raise PylmeError("from_r expects an R data.frame")
    names = [str(n) for n in (_attr(obj, "names") or [])]
    data = {name: _vector_to_pandas(obj[j]) for j, name in enumerate(names)}
    nrow = _data_frame_nrow(obj)
    frame = pd.DataFrame(data, index=pd.RangeIndex(nrow)) if data else pd.DataFrame(index=pd.RangeIndex(nrow))
    return frame


def _data_frame_nrow(obj: Any) -> int:
    rownames = _attr(obj, "row.names")
    if rownames is None or len(rownames) == 0:
        return len(obj[0]) if len(obj) else 0
    if rownames.typeof == ri.RTYPES.INTSXP and len(rownames) == 2 and rownames[0] is ri.NA_Integer:
        return abs(int(rownames[1]))
    return len(rownames)


def to_python(obj: Any) -> Any:
    """Convert what an r/ function returns: data.frames, plain lists, atomic vectors.

    Classed lists and S4 objects (fitted models) stay R objects; atomic vectors of
    length one become Python scalars; named plain lists become dicts.
    """
    if obj is ri.NULL or obj is None:
        return None
    cls = _rclass(obj)
    if "data.frame" in cls:
        return from_r(obj)
    typ = obj.typeof
    if typ == ri.RTYPES.VECSXP:
        if cls and cls != ["list"]:
            return obj
        names = _attr(obj, "names")
        items = [to_python(obj[j]) for j in range(len(obj))]
        if names is not None:
            return dict(zip([str(n) for n in names], items))
        return items
    if typ in (ri.RTYPES.INTSXP, ri.RTYPES.LGLSXP, ri.RTYPES.REALSXP, ri.RTYPES.STRSXP):
        values = _vector_to_pandas(obj)
        names = _attr(obj, "names")
        if names is not None and "factor" not in cls:
            return pd.Series(np.asarray(values), index=[str(n) for n in names])
        if len(obj) == 1 and "factor" not in cls:
            value = values[0]
            return None if value is pd.NA else (value.item() if hasattr(value, "item") else value)
        return values
    return obj


def to_r_value(value: Any) -> Any:
    """Python argument -> R object for a call into r/ (scalars, lists, dicts, frames)."""
    if value is None:
        return ri.NULL
    if isinstance(value, ri.Sexp):
        return value
    if isinstance(value, pd.DataFrame):
        return to_r(value)
    if isinstance(value, (bool, np.bool_)):
        return ri.BoolSexpVector([bool(value)])
    if isinstance(value, (int, np.integer)):
        return _integers_to_r(np.array([int(value)], dtype=np.int64), np.array([False]))
    if isinstance(value, (float, np.floating)):
        return ri.FloatSexpVector([float(value)])
    if isinstance(value, str):
        _refuse_nul([value], "the text")
        return ri.StrSexpVector([value])
    if isinstance(value, dict):
        out = ri.ListSexpVector([to_r_value(v) for v in value.values()])
        _set_attr(out, "names", ri.StrSexpVector([str(k) for k in value.keys()]))
        return out
    if isinstance(value, pd.Series):
        return _column_to_r(value, str(value.name))
    if isinstance(value, (list, tuple, np.ndarray)):
        items = list(value)
        if items and all(isinstance(v, str) for v in items):
            _refuse_nul(items, "the text")
            return ri.StrSexpVector(items)
        if not items:
            return ri.StrSexpVector([])
        if all(isinstance(v, (bool, np.bool_)) for v in items):
            return ri.BoolSexpVector([bool(v) for v in items])
        if all(isinstance(v, (int, float, np.integer, np.floating)) for v in items):
            return _float_vector(np.asarray(items, dtype=np.float64))
        return ri.ListSexpVector([to_r_value(v) for v in items])
    raise PylmeError(f"cannot pass a {type(value).__name__} to R")
