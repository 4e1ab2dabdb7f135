"""results.json: a saved report's tables, settings, versions, notes and warnings, as
JSON a reader (or :meth:`Report.load`) takes back without pickles or code.

Each table is stored as records plus its column order and dtypes, so that reading it
back gives the same frame: non-finite numbers are written as the strings ``"NaN"``,
``"Infinity"`` and ``"-Infinity"`` inside float columns (strict JSON has no such
numbers), missing values elsewhere as ``null``. Figures are not stored.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..errors import PylmeError

FILE_NAME = "results.json"
FORMAT = "pylme_alliance report results"
FORMAT_VERSION = 1


def plain(value: Any) -> Any:
    """``value`` as JSON-ready Python (dicts, lists, str, int, float, bool, None);
    non-finite floats become None and what JSON cannot hold becomes its ``str``."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset, np.ndarray, pd.Index, pd.Series)):
        return [plain(v) for v in (sorted(value, key=str) if isinstance(value, (set, frozenset)) else value)]
    if isinstance(value, pd.DataFrame):
        return table_record(value)
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (pd.Timestamp, _dt.datetime, _dt.date)):
        return value.isoformat()
    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)


def _cell(value: Any, floating: bool) -> Any:
    if floating:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "NaN"
        if isinstance(value, (float, np.floating)) and math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return float(value)
    if isinstance(value, (float, np.floating)) and not math.isfinite(value):
        return None if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):  # a list or array in a cell
        pass
    return plain(value)


def table_record(table: pd.DataFrame) -> dict[str, Any]:
    """A table as ``{"columns", "dtypes", "categories", "records"}``."""
    columns = [str(c) for c in table.columns]
    if len(set(columns)) != len(columns):
        raise PylmeError(f"cannot save a table with repeated column names: {columns}")
    dtypes = {c: str(t) for c, t in zip(columns, table.dtypes)}
    floating = {c: pd.api.types.is_float_dtype(t) for c, t in zip(columns, table.dtypes)}
    categories = {c: plain(list(table.iloc[:, i].cat.categories)) for i, c in enumerate(columns)
                  if isinstance(table.dtypes.iloc[i], pd.CategoricalDtype)}
    records = [{c: _cell(v, floating[c]) for c, v in zip(columns, row)}
               for row in table.itertuples(index=False, name=None)]
    return {"columns": columns, "dtypes": dtypes, "categories": categories, "records": records}


def read_table(record: Mapping[str, Any]) -> pd.DataFrame:
    """The frame :func:`table_record` stored."""
    columns = list(record["columns"])
    table = pd.DataFrame.from_records(list(record["records"]), columns=columns)
    if not len(table):
        table = pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})
    for column in columns:
        dtype = record["dtypes"].get(column, "object")
        if column in record.get("categories", {}):
            table[column] = pd.Categorical(table[column], categories=record["categories"][column])
        else:  # "object" too: pandas may otherwise infer a string dtype from the records
            try:
                table[column] = table[column].astype(object if dtype == "object" else dtype)
            except (TypeError, ValueError):
                pass  # kept as read: the values are right, only the dtype differs
    return table


def dumps(report: Any) -> str:
    """The report's results.json text."""
    warnings_by_fit: dict[str, Any] = {}
    fits = report.tables.get("fits")
    if fits is not None and {"model", "warnings"} <= set(fits.columns):
        warnings_by_fit = {str(m): plain(w) for m, w in zip(fits["model"], fits["warnings"])}
    document = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "provenance": plain(getattr(report, "provenance", {})),
        "settings": plain(report.settings),
        "notes": [str(n) for n in report.notes],
        "warnings": warnings_by_fit,
        "tables": {str(name): table_record(table) for name, table in report.tables.items()},
        "figures": [str(name) for name in report.figures],
    }
    return json.dumps(document, indent=1, ensure_ascii=False, allow_nan=False)


def loads(text: str) -> dict[str, Any]:
    """The parts of a report read from results.json text: tables (frames), settings,
    notes, provenance."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PylmeError(f"{FILE_NAME} is not valid JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise PylmeError(f"{FILE_NAME} was not written by Report.save (no {FORMAT!r} format mark)")
    if document.get("format_version") != FORMAT_VERSION:
        raise PylmeError(f"{FILE_NAME} has format version {document.get('format_version')!r}; "
                         f"this version of pylme_alliance reads version {FORMAT_VERSION}")
    return {"tables": {name: read_table(rec) for name, rec in document["tables"].items()},
            "settings": document.get("settings") or {}, "notes": list(document.get("notes") or []),
            "provenance": document.get("provenance") or {},
            "figures": [f for f in document.get("figures") or [] if isinstance(f, str)]}
