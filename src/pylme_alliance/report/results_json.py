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
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import PylmeError

FILE_NAME = "results.json"
FORMAT = "pylme_alliance report results"
FORMAT_VERSION = 1
#: Largest results.json :func:`read_text` reads (a report's is a few hundred kB).
MAX_BYTES = 64 * 2**20
#: Deepest nesting of lists and objects :func:`loads` accepts (a saved report has 6).
MAX_DEPTH = 32
#: Largest integer a table cell, setting or note may hold (JSON allows any).
MAX_INTEGER = 2**63


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


def read_text(path: Path) -> str:
    """The text of ``path`` if it is a regular file of at most MAX_BYTES (UTF-8).

    Opened without blocking (a FIFO would wait for a writer forever) and checked on
    the open file, so a symlink to ``/dev/zero`` or a FIFO is refused, not read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise PylmeError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as stream:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise PylmeError(f"cannot read {str(path)!r}: it is not a regular file (a device, FIFO or "
                             "socket, or a link to one); Report.load reads only the results.json Report.save wrote")
        if info.st_size > MAX_BYTES:
            raise PylmeError(f"cannot read {str(path)!r}: it has {info.st_size:,} bytes, more than the "
                             f"{MAX_BYTES:,} a report's results.json may have")
        try:
            data = stream.read(MAX_BYTES + 1)
        except OSError as exc:
            raise PylmeError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:  # grew while being read
        raise PylmeError(f"cannot read {str(path)!r}: more than {MAX_BYTES:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PylmeError(f"{str(path)!r} is not UTF-8 text (byte {exc.start}); it was not written by "
                         "Report.save") from None


def _check_shape(document: Any) -> None:
    """Refuse JSON nested deeper than MAX_DEPTH or holding integers beyond MAX_INTEGER
    (an explicit stack: the walk itself cannot run out of stack)."""
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise PylmeError(f"{FILE_NAME} is nested more than {MAX_DEPTH} levels deep; it was not written "
                             "by Report.save (or was altered since)")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INTEGER:
            raise PylmeError(f"{FILE_NAME} holds an integer beyond 2^63 ({str(value)[:20]}...); it was not "
                             "written by Report.save (or was altered since)")


def _damaged(why: str) -> PylmeError:
    return PylmeError(f"{FILE_NAME} is damaged or was altered after Report.save wrote it: {why}")


def _parts(document: dict[str, Any]) -> dict[str, Any]:
    tables = document.get("tables")
    if not isinstance(tables, dict):
        raise _damaged("'tables' is not an object")
    out: dict[str, pd.DataFrame] = {}
    for name, rec in tables.items():
        ok = (isinstance(rec, dict) and isinstance(rec.get("columns"), list)
              and all(isinstance(c, str) for c in rec["columns"]) and isinstance(rec.get("records"), list)
              and all(isinstance(r, dict) for r in rec["records"]) and isinstance(rec.get("dtypes", {}), dict)
              and isinstance(rec.get("categories", {}), dict)
              and all(isinstance(v, list) for v in rec.get("categories", {}).values()))
        if not ok:
            raise _damaged(f"table {name!r} is not a table record (columns, dtypes, records)")
        try:
            out[name] = read_table(rec)
        except (TypeError, ValueError, KeyError, OverflowError) as exc:
            raise _damaged(f"table {name!r} cannot be read back ({type(exc).__name__}: {exc})") from None
    settings, notes, provenance = (document.get(k) for k in ("settings", "notes", "provenance"))
    if not isinstance(settings or {}, dict) or not isinstance(provenance or {}, dict):
        raise _damaged("'settings' and 'provenance' must be objects")
    if not isinstance(notes or [], list) or not all(isinstance(n, str) for n in notes or []):
        raise _damaged("'notes' must be a list of strings")
    figures = document.get("figures") or []
    if not isinstance(figures, list):
        raise _damaged("'figures' must be a list of names")
    return {"tables": out, "settings": settings or {}, "notes": list(notes or []), "provenance": provenance or {},
            "figures": [f for f in figures if isinstance(f, str)]}


def loads(text: str) -> dict[str, Any]:
    """The parts of a report read from results.json text: tables (frames), settings,
    notes, provenance. Anything else than what :func:`dumps` writes is refused with a
    sentence (wrong types, deep nesting, huge integers), never a traceback."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PylmeError(f"{FILE_NAME} is not valid JSON: {exc}") from None
    except RecursionError:
        raise PylmeError(f"{FILE_NAME} is nested too deeply to read (more than {MAX_DEPTH} levels)") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise PylmeError(f"{FILE_NAME} cannot be read: {exc}") from None
    _check_shape(document)
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise PylmeError(f"{FILE_NAME} was not written by Report.save (no {FORMAT!r} format mark)")
    if document.get("format_version") != FORMAT_VERSION:
        raise PylmeError(f"{FILE_NAME} has format version {document.get('format_version')!r}; "
                         f"this version of pylme_alliance reads version {FORMAT_VERSION}")
    return _parts(document)
