"""The data the report analysed, described (issue 20, item 2): per variable used n,
missing, mean, SD, min and max; per patient the sessions and the rated sessions.

Computed here from the panel's rows (the kept rows plus the rows ``prepare`` dropped, so
the input is described as it came, sentinel codes included) until
``AlliancePanel.describe()`` is on main; then :func:`data_description` can return it.
"""
from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
import pandas as pd

COLUMNS = ["variable", "role", "unit", "n", "missing", "mean", "sd", "min", "max", "levels"]


def _input_rows(panel: Any, columns: list[Hashable]) -> pd.DataFrame:
    """The kept and dropped rows' values of ``columns`` (as the user gave them)."""
    parts = [panel.data[[c for c in columns if c in panel.data.columns]]]
    dropped = getattr(panel, "dropped", None)
    if dropped is not None and len(dropped):
        parts.append(dropped[[c for c in columns if c in dropped.columns]])
    return pd.concat(parts, ignore_index=True)


def _numeric_row(values: pd.Series) -> dict[str, Any]:
    numbers = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
    if not len(numbers):
        return {"mean": np.nan, "sd": np.nan, "min": np.nan, "max": np.nan}
    return {"mean": float(numbers.mean()), "sd": float(numbers.std(ddof=1)) if len(numbers) > 1 else np.nan,
            "min": float(numbers.min()), "max": float(numbers.max())}


def _row(name: Hashable, role: str, unit: str, values: pd.Series) -> dict[str, Any]:
    row: dict[str, Any] = {"variable": str(name), "role": role, "unit": unit, "n": int(values.notna().sum()),
                           "missing": int(values.isna().sum()), "levels": ""}
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        row.update(_numeric_row(values))
    elif pd.api.types.is_datetime64_any_dtype(values):
        present = values.dropna()
        row.update({"mean": np.nan, "sd": np.nan, "min": np.nan, "max": np.nan,
                    "levels": f"{present.min()} to {present.max()}" if len(present) else ""})
    else:
        counts = values.dropna().astype(str).value_counts()
        row.update({"mean": np.nan, "sd": np.nan, "min": np.nan, "max": np.nan,
                    "levels": ", ".join(f"{k} ({v})" for k, v in counts.head(12).items())
                    + (f", ... ({len(counts) - 12} more)" if len(counts) > 12 else "")})
    return row


def data_description(panel: Any) -> pd.DataFrame:
    """One row per variable the analysis used (alliance, outcome, time, each moderator)
    and two per-patient rows (sessions, rated sessions): n, missing, mean, SD, min, max;
    categorical variables list their levels with counts instead of a mean."""
    roles = panel.roles
    patient, alliance, outcome = roles["patient"], roles["alliance"], roles["outcome"]
    time = roles.get("time")
    moderators = list(getattr(panel, "moderators", {}) or {})
    used = [c for c in dict.fromkeys([patient, alliance, outcome, time, *moderators]) if c is not None]
    rows_in = _input_rows(panel, used)
    rows = [_row(alliance, "alliance", "session", rows_in[alliance]),
            _row(outcome, "outcome", "session", rows_in[outcome])]
    if time is not None and time in rows_in:
        rows.append(_row(time, "time", "session", rows_in[time]))
    for name in moderators:
        if name in rows_in:  # moderators describe patients: one value each
            first = rows_in.groupby(rows_in[patient], sort=False, observed=True)[name].first()
            rows.append(_row(name, "moderator", "patient", first))
    grouped = rows_in.groupby(rows_in[patient], sort=False, observed=True)
    sessions = grouped.size().astype(float)
    rated = grouped[alliance].count().astype(float)
    for what, counts in (("sessions per patient", sessions), ("rated sessions per patient", rated)):
        row = _row(what, "count", "patient", counts)
        row["variable"] = what
        rows.append(row)
    table = pd.DataFrame(rows, columns=COLUMNS)
    table["n"] = table["n"].astype("int64")
    table["missing"] = table["missing"].astype("int64")
    return table
