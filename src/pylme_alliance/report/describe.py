"""The data the report analysed, described (issue 20, item 2): per variable used n,
missing, mean, SD, min and max; per patient the sessions and the rated sessions.

The numbers are :meth:`AlliancePanel.describe`'s (one implementation); this module only
names its rows as the report's table reads them (variable, role, unit).
"""
from __future__ import annotations

from typing import Any

import pandas as pd

COLUMNS = ["variable", "role", "unit", "n", "missing", "mean", "sd", "min", "max", "levels"]
_UNITS = {"sessions": "session", "patients": "patient"}


def _role(item: str) -> str:
    if item.startswith("moderator: "):
        return "moderator"
    if item.endswith("per patient"):
        return "count"
    return item  # alliance, outcome, time


def data_description(panel: Any) -> pd.DataFrame:
    """One row per variable the analysis used (alliance, outcome, time, each moderator)
    and the per-patient counts (sessions, rated sessions, analysed sessions), from
    :meth:`AlliancePanel.describe`; a categorical moderator gives its number of levels
    instead of a mean."""
    described = panel.describe()
    rows = []
    for item, record in described.iterrows():
        role = _role(str(item))
        label = record.get("label")
        name = str(item) if role == "count" else str(label if isinstance(label, str) and label else record["column"])
        levels = record.get("levels")
        rows.append({"variable": name, "role": role, "unit": _UNITS.get(str(record["unit"]), str(record["unit"])),
                     "n": int(record["n"]), "missing": int(record["missing"]), "mean": record["mean"],
                     "sd": record["sd"], "min": record["min"], "max": record["max"],
                     "levels": "" if pd.isna(levels) else f"{int(levels)} levels"})
    return pd.DataFrame(rows, columns=COLUMNS)
