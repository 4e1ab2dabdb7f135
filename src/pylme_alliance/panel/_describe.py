"""The descriptives behind :meth:`AlliancePanel.describe`: what the analysed data hold,
variable by variable and patient by patient (issue 20: a -99 that reached the models
shows as a minimum of -99 here, where a reader sees it)."""
from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from ._values import matches

COLUMNS = ("column", "label", "unit", "n", "missing", "mean", "sd", "min", "median", "max", "levels")


def _numeric(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _input_missing(kept: pd.Series, dropped: pd.Series | None, codes: tuple | None) -> int:
    """Rows of the input (kept and dropped) where the column is missing or holds a code
    declared missing (``panel.dropped`` keeps the codes as they were in the file)."""
    count = int(kept.isna().sum())
    if dropped is not None and len(dropped):
        absent = dropped.isna().to_numpy().copy()
        if codes:
            absent |= matches(dropped, codes)
        count += int(absent.sum())
    return count


def _stats(values: np.ndarray) -> dict[str, float]:
    present = values[~np.isnan(values)]
    if not len(present):
        return {"mean": np.nan, "sd": np.nan, "min": np.nan, "median": np.nan, "max": np.nan}
    return {"mean": float(present.mean()),
            "sd": float(present.std(ddof=1)) if len(present) > 1 else np.nan,
            "min": float(present.min()), "median": float(np.median(present)), "max": float(present.max())}


def describe_panel(panel: Any) -> pd.DataFrame:
    """See :meth:`AlliancePanel.describe` (the table's columns are documented there)."""
    data, dropped, roles = panel.data, panel.dropped, panel.roles
    codes: Mapping[Hashable, tuple] = panel.na_values
    labels: Mapping[Hashable, str] = panel.labels
    patient = data[roles["patient"]]
    rows: dict[str, dict[str, Any]] = {}

    def dropped_column(name: Hashable) -> pd.Series | None:
        return dropped[name] if name in dropped.columns else None

    for role in ("alliance", "outcome"):
        name = roles[role]
        label = panel.alliance_label if role == "alliance" else panel.outcome_label
        values = _numeric(data[name])
        rows[role] = {"column": str(name), "label": label, "unit": "sessions",
                      "n": int((~np.isnan(values)).sum()),
                      "missing": _input_missing(data[name], dropped_column(name), codes.get(name)),
                      **_stats(values)}
    if roles.get("time") is not None:
        name = roles["time"]
        rows["time"] = {"column": str(name), "label": "days since the patient's first analysed session",
                        "unit": "sessions", "n": int(data["time_days"].notna().sum()),
                        "missing": _input_missing(data[name], dropped_column(name), codes.get(name)),
                        **_stats(data["time_days"].to_numpy(dtype=np.float64, na_value=np.nan))}
    for name, info in panel.moderators.items():
        rows[f"moderator: {name}"] = _moderator_row(data, patient, name, info, labels.get(name))
    rows.update(_patient_rows(panel, patient))
    table = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=list(COLUMNS))
    for column in ("n", "missing", "levels"):
        table[column] = table[column].astype("Int64")
    for column in ("mean", "sd", "min", "median", "max"):
        table[column] = table[column].astype(float)
    table.index.name = "item"
    return table


def _moderator_row(data: pd.DataFrame, patient: pd.Series, name: Hashable, info: Any,
                   label: str | None) -> dict[str, Any]:
    # a patient-level moderator is described once per patient (as it is centred);
    # a time-varying one once per session
    column = data[name]
    if not info.time_varying:
        column = column.groupby(patient, sort=False, observed=True).first()
    unit = "sessions" if info.time_varying else "patients"
    row: dict[str, Any] = {"column": str(name), "label": label, "unit": unit,
                           "n": int(column.notna().sum()), "missing": int(column.isna().sum())}
    if info.kind == "numeric":
        row.update(_stats(_numeric(column)))
    else:
        row["levels"] = len(info.levels or ())
    return row


def _patient_rows(panel: Any, patient: pd.Series) -> dict[str, dict[str, Any]]:
    """Sessions per analysed patient: in the input, with an alliance rating, analysed."""
    roles, dropped = panel.roles, panel.dropped
    p_name, a_name = roles["patient"], roles["alliance"]
    kept_ids = pd.Index(patient.unique())
    analysed = patient.value_counts(sort=False).reindex(kept_ids, fill_value=0)
    others = dropped[dropped[p_name].isin(kept_ids)] if len(dropped) else dropped
    extra = others[p_name].value_counts(sort=False).reindex(kept_ids, fill_value=0)
    rated_extra = np.zeros(len(kept_ids), dtype=np.int64)
    if len(others):
        rated = others[a_name].notna().to_numpy().copy()
        if a_name in panel.na_values:
            rated &= ~matches(others[a_name], panel.na_values[a_name])
        rated_extra = others[p_name][rated].value_counts(sort=False).reindex(kept_ids, fill_value=0).to_numpy()
    counts = {
        "sessions per patient": analysed.to_numpy() + extra.to_numpy(),
        "rated sessions per patient": analysed.to_numpy() + rated_extra,
        "analysed sessions per patient": analysed.to_numpy(),
    }
    return {item: {"column": str(p_name), "label": None, "unit": "patients", "n": len(kept_ids), "missing": 0,
                   **_stats(values.astype(np.float64))}
            for item, values in counts.items()}
