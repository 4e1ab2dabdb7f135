"""Compact tables for reading (issue 21, item 1): estimate [95% CI], p, n and one short
marker per row whose text is a footnote under the table, instead of the full status
and estimand on every row.

Each builder takes a table of :attr:`Report.tables` and returns a :class:`Shown`: text
cells (escaped later by the renderer) and the statuses its markers stand for. A table
without the columns a builder needs (a hand-made report) is shown whole, as before
(:func:`generic`). ``Report.tables`` -- the CSVs and results.json -- keep everything.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from . import status as fit_statuses
from .wording import p_digits

NOTE = "Note"


@dataclass
class Shown:
    """A table as it is shown: text cells, the statuses behind its markers, a remark."""

    table: pd.DataFrame
    statuses: list[Any] = field(default_factory=list)
    remark: str = ""


def number(value: Any, digits: int = 2) -> str:
    """An estimate for reading: 2 decimals (3 significant digits for small values),
    whole numbers as integers, nothing for a missing value."""
    if value is None or isinstance(value, str):
        return "" if value is None else value
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(value):
        return ""
    if math.isinf(value):
        return "-inf" if value < 0 else "inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if abs(value) >= 1000:
        return f"{value:.1f}"
    if abs(value) < 0.1:
        return f"{value:.{digits + 1}g}" if value else "0"
    return f"{value:.{digits}f}"


def count(value: Any) -> str:
    """A count: an integer ("522", never "522.0"); nothing when missing."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "" if value is None else str(value)
    return "" if math.isnan(value) else str(int(round(value)))


def _decimals(*values: Any) -> int:
    """Decimals for an estimate and its interval, from the largest of them: 2 for
    effects of a point or more, more for small per-unit effects (one rule per cell)."""
    sizes = [abs(float(v)) for v in values if isinstance(v, (int, float)) and math.isfinite(float(v))]
    largest = max(sizes, default=1.0)
    return 2 if largest >= 0.1 else 3 if largest >= 0.01 else 4


def est_ci(row: Any, estimate: str = "estimate") -> str:
    """"-1.85 [-3.09, -0.62]": the estimate and its 95% interval with the same decimals."""
    values = [_get(row, estimate), _get(row, "conf_low"), _get(row, "conf_high")]
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        return number(values[0])
    if math.isnan(numbers[0]):
        return ""
    digits = _decimals(*numbers)
    text = [f"{v:.{digits}f}" if math.isfinite(v) else number(v) for v in numbers]
    return f"{text[0]} [{text[1]}, {text[2]}]" if not any(math.isnan(v) for v in numbers[1:]) else text[0]


def p_cell(value: Any) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return ""
    return "" if math.isnan(value) else p_digits(value)


def _get(row: Any, name: str) -> Any:
    return row.get(name) if hasattr(row, "get") else getattr(row, name, None)


def n_cell(row: Any) -> str:
    """"2529 / 460" (sessions / patients), or what of it is known."""
    n, patients = count(_get(row, "n")), count(_get(row, "n_patients"))
    return f"{n} / {patients}" if n and patients else n or patients


TERM_WORDS = {"alliance_within": "Within patients", "alliance_level": "Between patients (level)",
              "alliance_between": "Between patients (conditional)"}


def _frame(rows: list[dict[str, str]], columns: list[str]) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=columns)
    if NOTE in table and not table[NOTE].astype(bool).any():
        table = table.drop(columns=NOTE)  # no marker on any row: no empty column
    return table


def effects(table: pd.DataFrame, markers: fit_statuses.Markers) -> Shown:
    rows = []
    for row in table.to_dict("records"):
        rows.append({"Effect": TERM_WORDS.get(str(row["term"]), str(row["term"])),
                     "Lead": count(row.get("lead")), "Estimate [95% CI]": est_ci(row), "p": p_cell(row["p_value"]),
                     "Standardised": number(row.get("std_estimate")), "n (sessions / patients)": n_cell(row),
                     NOTE: markers.mark(row.get("status"))})
    return Shown(_frame(rows, ["Effect", "Lead", "Estimate [95% CI]", "p", "Standardised",
                               "n (sessions / patients)", NOTE]), list(table.get("status", [])))


def duration(table: pd.DataFrame, markers: fit_statuses.Markers) -> Shown:
    """One row per effect and lead: the within and the between estimate side by side."""
    rows, statuses = [], []
    effect = table["effect"] if "effect" in table else pd.Series("total", index=table.index)
    for (kind, lead), group in table.groupby([effect, table["lead"]], sort=False):
        by_term = {str(t): r for t, r in zip(group["term"], group.to_dict("records"))}
        within, between = by_term.get("alliance_within", {}), by_term.get("alliance_between", {})
        status = "; ".join(dict.fromkeys(str(r.get("status") or "") for r in (within, between) if r.get("status")))
        statuses.append(status)
        rows.append({"Effect": str(kind), "Lead": count(lead), "Within [95% CI]": est_ci(within) if within else "",
                     "p (within)": p_cell(within.get("p_value")), "Between [95% CI]": est_ci(between) if between else "",
                     "p (between)": p_cell(between.get("p_value")), "n (sessions / patients)": n_cell(within or between),
                     NOTE: markers.mark(status)})
    return Shown(_frame(rows, ["Effect", "Lead", "Within [95% CI]", "p (within)", "Between [95% CI]", "p (between)",
                               "n (sessions / patients)", NOTE]), statuses)


def _interaction_words(term: str, moderator: str) -> str:
    component, _, rest = term.partition(":")
    side = {"alliance_within": "within", "alliance_between": "between"}.get(component, component)
    if rest.startswith(moderator) and len(rest) > len(moderator):
        rest = f"{moderator} = {rest[len(moderator):]}"
    return f"{side} x {rest}"


def moderator_interactions(table: pd.DataFrame, markers: fit_statuses.Markers) -> Shown:
    """One row per moderator (or level): its interaction with the within and with the
    between effect side by side, each with p adjusted for multiple testing."""
    inter = table[table["kind"] == "interaction"]
    rows, statuses = [], []
    what = inter["term"].astype(str).str.partition(":")[2]
    for (moderator, level), group in inter.groupby([inter["moderator"].astype(str), what], sort=False):
        by_side = {str(t).partition(":")[0]: r for t, r in zip(group["term"], group.to_dict("records"))}
        within, between = by_side.get("alliance_within", {}), by_side.get("alliance_between", {})
        status = str((within or between).get("status") or "")
        statuses.append(status)
        label = _interaction_words(f"x:{level}", moderator).partition(" x ")[2]
        rows.append({"Moderator": label, "x Within [95% CI]": est_ci(within) if within else "",
                     "p adj. (within)": p_cell(within.get("p_adjusted")),
                     "x Between [95% CI]": est_ci(between) if between else "",
                     "p adj. (between)": p_cell(between.get("p_adjusted")), "n": count((within or between).get("n")),
                     NOTE: markers.mark(status)})
    return Shown(_frame(rows, ["Moderator", "x Within [95% CI]", "p adj. (within)", "x Between [95% CI]",
                               "p adj. (between)", "n", NOTE]), statuses,
                 remark="p adj.: Benjamini-Hochberg over all interactions; unadjusted p values are in moderators.csv.")


def simple_slopes(table: pd.DataFrame, markers: fit_statuses.Markers) -> Shown:
    """The within and between effect at each value of each moderator, side by side."""
    slopes = table[table["kind"] != "interaction"]
    rows, statuses = [], []
    keys = [slopes["moderator"].astype(str), slopes["label"].astype(str)]
    for (moderator, label), group in slopes.groupby(keys, sort=False):
        by_term = {str(t): r for t, r in zip(group["term"], group.to_dict("records"))}
        within, between = by_term.get("alliance_within", {}), by_term.get("alliance_between", {})
        at = number((within or between).get("at"))
        status = str((within or between).get("status") or "")
        statuses.append(status)
        rows.append({"Moderator": moderator, "At": f"{label} ({at})" if at and at != label else label,
                     "Within [95% CI]": est_ci(within) if within else "", "p (within)": p_cell(within.get("p_value")),
                     "Between [95% CI]": est_ci(between) if between else "",
                     "p (between)": p_cell(between.get("p_value")), NOTE: markers.mark(status)})
    return Shown(_frame(rows, ["Moderator", "At", "Within [95% CI]", "p (within)", "Between [95% CI]", "p (between)",
                               NOTE]), statuses)


def johnson_neyman(table: pd.DataFrame, markers: fit_statuses.Markers) -> Shown:
    """The regions inside the observed values (the extrapolated ones are in the CSV)."""
    observed = table[~table["extrapolated"].astype(bool)] if "extrapolated" in table else table
    rows = [{"Moderator": str(r["moderator"]), "From": number(r["from"]), "To": number(r["to"]),
             "Within-patient effect": str(r.get("effect", ""))} for r in observed.to_dict("records")]
    remark = (f"{len(table) - len(observed)} region(s) outside the observed values are left out here."
              if len(observed) < len(table) else "")
    return Shown(pd.DataFrame(rows, columns=["Moderator", "From", "To", "Within-patient effect"]), remark=remark)


_WARNINGS_START = re.compile(r"^(warnings?|interval warnings): ")


def split_note(note: Any) -> tuple[str, list[str]]:
    """A heterogeneity note split into what it says and the warnings it quotes (those go
    to the appendix); the fit's status is dropped (it is the table's marker)."""
    kept, warned, in_warnings = [], [], False
    for part in fit_statuses.problems(str(note or "").replace("; ", ";")):
        if part.startswith("fit "):
            in_warnings = False
            continue
        start = _WARNINGS_START.match(part)
        if start:
            in_warnings = True
            part = part[start.end():]
        (warned if in_warnings else kept).append(part)
    return "; ".join(kept), warned


def _short_note(note: Any) -> str:
    return split_note(note)[0]


def heterogeneity(table: pd.DataFrame, markers: fit_statuses.Markers, main_status: Any = "") -> Shown:
    rows = []
    for r in table.to_dict("records"):
        name = str(r["statistic"])
        estimate = count(r["estimate"]) if name.startswith("patients ") else est_ci(r)
        rows.append({"Statistic": name, "Estimate [95% CI]": estimate, "p": p_cell(r.get("p_value")),
                     "Note": _short_note(r.get("note")), "Flag": markers.mark(main_status)})
    shown = pd.DataFrame(rows, columns=["Statistic", "Estimate [95% CI]", "p", "Note", "Flag"])
    if not shown["Flag"].astype(bool).any():
        shown = shown.drop(columns="Flag")
    return Shown(shown, [main_status] * len(rows))


def patient_slopes(table: pd.DataFrame, markers: fit_statuses.Markers) -> Shown:
    rows = [{"Patient": str(r["patient"]), "Own within effect [95% CI]": est_ci(r, "slope"),
             "Category": str(r.get("category", "")), "Sessions": count(r.get("n_sessions"))}
            for r in table.to_dict("records")]
    return Shown(pd.DataFrame(rows, columns=["Patient", "Own within effect [95% CI]", "Category", "Sessions"]))


def fixed_effects(table: pd.DataFrame, markers: fit_statuses.Markers) -> Shown:
    rows = [{"Term": str(r["term"]), "Estimate [95% CI]": est_ci(r), "SE": number(r.get("std_error")),
             "df": number(r.get("df"), 1), "p": p_cell(r.get("p_value")), NOTE: markers.mark(r.get("status"))}
            for r in table.to_dict("records")]
    return Shown(_frame(rows, ["Term", "Estimate [95% CI]", "SE", "df", "p", NOTE]), list(table.get("status", [])))


def variance_parameters(table: pd.DataFrame, markers: fit_statuses.Markers) -> Shown:
    rows = [{"Parameter": str(r.get("estimand") or r["term"]), "Estimate": number(r["estimate"], 3),
             NOTE: markers.mark(r.get("status"))} for r in table.to_dict("records")]
    return Shown(_frame(rows, ["Parameter", "Estimate", NOTE]), list(table.get("status", [])))


def fits(table: pd.DataFrame, markers: fit_statuses.Markers) -> Shown:
    """Every fit: its size, whether it converged, its boundary (real problems marked,
    the expected boundary said in words) and how many warnings (listed below it)."""
    rows = []
    for r in table.to_dict("records"):
        real = fit_statuses.real(r.get("status"))
        state = ("ok" if not real and not fit_statuses.has_expected(r.get("status"))
                 else "random intercepts at 0 (expected, see the methods)" if not real else fit_statuses.short(real))
        rows.append({"Fit": str(r["model"]), "Engine": str(r.get("engine", "")), "n": count(r.get("nobs")),
                     "Converged": "yes" if bool(r.get("converged")) else "no", "Status": state,
                     "Warnings": count(r.get("n_warnings")), NOTE: markers.mark(real)})
    return Shown(_frame(rows, ["Fit", "Engine", "n", "Converged", "Status", "Warnings", NOTE]),
                 list(table.get("status", [])))


def key_values(table: pd.DataFrame, pairs: int = 3) -> Shown:
    """A two-column item/value table laid out as ``pairs`` item/value pairs side by side."""
    items = [(str(i), count(v) if isinstance(v, (int, float)) else str(v)) for i, v in zip(table.iloc[:, 0],
                                                                                            table.iloc[:, 1])]
    per = math.ceil(len(items) / pairs) if items else 0
    rows = []
    for i in range(per):
        row: dict[str, str] = {}
        for j in range(pairs):
            k = i + j * per
            item, value = items[k] if k < len(items) else ("", "")
            # the same header over each pair (distinct keys: trailing spaces, invisible)
            row["Item" + " " * j], row["Value" + " " * j] = item, value
        rows.append(row)
    return Shown(pd.DataFrame(rows))


def fit_statistics(table: pd.DataFrame, markers: fit_statuses.Markers) -> Shown:
    keep = [c for c in table.columns if c not in ("status", "estimand", "convergence_check")]
    record = table.iloc[0]
    items = pd.DataFrame({"item": keep, "value": [number(record[c]) if not isinstance(record[c], (bool, str))
                                                  else str(record[c]) for c in keep]})
    return key_values(items, pairs=3)


def data_description(table: pd.DataFrame, markers: fit_statuses.Markers) -> Shown:
    rows = [{"Variable": str(r["variable"]), "Role": str(r["role"]), "Unit": str(r["unit"]), "n": count(r["n"]),
             "Missing": count(r["missing"]), "Mean": number(r["mean"]), "SD": number(r["sd"]),
             "Min": number(r["min"]), "Max": number(r["max"]), "Levels": str(r.get("levels") or "")}
            for r in table.to_dict("records")]
    shown = pd.DataFrame(rows)
    if "Levels" in shown and not shown["Levels"].astype(bool).any():
        shown = shown.drop(columns="Levels")
    return Shown(shown)


def residual_acf(table: pd.DataFrame, markers: fit_statuses.Markers) -> Shown:
    """Lags as columns: three rows instead of one per lag."""
    columns = {f"Lag {count(lag)}": [number(a, 3), count(n)] for lag, a, n in
               zip(table["lag"], table["acf"], table["n_pairs"])}
    return Shown(pd.DataFrame({"": ["Autocorrelation", "Pairs"], **columns}))


def ar1_comparison(table: pd.DataFrame, markers: fit_statuses.Markers) -> Shown:
    rows = [{"Fit": str(r["model"]), "Residuals": str(r.get("residual", "")), "AIC": number(r.get("AIC")),
             "BIC": number(r.get("BIC")), "phi": number(r.get("phi"), 3),
             "Preferred": "yes" if bool(r.get("preferred")) else "", "Note": str(r.get("note") or "")}
            for r in table.to_dict("records")]
    return Shown(pd.DataFrame(rows))


#: table name -> (builder, the columns it needs)
BUILDERS: dict[str, tuple[Callable[..., Shown], set[str]]] = {
    "alliance_effects": (effects, {"term", "estimate", "conf_low", "conf_high", "p_value"}),
    "duration": (duration, {"lead", "term", "estimate", "conf_low", "conf_high", "p_value"}),
    "moderators": (moderator_interactions, {"moderator", "kind", "term", "estimate", "conf_low", "conf_high",
                                            "p_value"}),
    "simple_slopes": (simple_slopes, {"moderator", "kind", "term", "label", "estimate", "conf_low", "conf_high",
                                      "p_value"}),
    "johnson_neyman": (johnson_neyman, {"moderator", "from", "to"}),
    "patient_slopes": (patient_slopes, {"patient", "slope", "conf_low", "conf_high"}),
    "fixed_effects": (fixed_effects, {"term", "estimate", "conf_low", "conf_high"}),
    "variance_parameters": (variance_parameters, {"term", "estimate"}),
    "fits": (fits, {"model", "status"}),
    "fit_statistics": (fit_statistics, set()),
    "data_description": (data_description, {"variable", "role", "unit", "n", "missing", "mean", "sd", "min",
                                            "max"}),
    "residual_acf": (residual_acf, {"lag", "acf", "n_pairs"}),
    "ar1_comparison": (ar1_comparison, {"model", "AIC", "BIC"}),
}


def build(name: str, table: pd.DataFrame, markers: fit_statuses.Markers, *, main_status: Any = "") -> Shown | None:
    """The compact form of table ``name`` (None: no builder, or it lacks a needed column)."""
    if name == "heterogeneity" and {"statistic", "estimate", "conf_low", "conf_high"} <= set(table.columns):
        return heterogeneity(table, markers, main_status)
    if name == "data_summary" and table.shape[1] == 2:
        return key_values(table)
    builder = BUILDERS.get(name)
    if builder is None or not builder[1] <= set(map(str, table.columns)) or not len(table):
        return None
    return builder[0](table, markers)
