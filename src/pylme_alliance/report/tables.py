"""The tables of :func:`analyze`'s report, each row with its ``estimand`` (what the
number means) and, where it comes from a fit, that fit's ``status`` ("" when the fit
converged and is neither singular nor degenerate)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..models import estimands
from ..models.diagnostics import fit_status, term_statuses

EFFECT_COLUMNS = ["lead", "term", "estimate", "std_error", "df", "statistic", "p_value", "conf_low", "conf_high",
                  "std_estimate", "std_definition", "n", "n_patients", "model", "status", "estimand"]
STD_WITHIN = "estimate x SD(alliance_within) / SD(outcome_within): within-patient SDs"
STD_BETWEEN = "estimate x SD over patients of the alliance level / SD over patients of their mean outcome"
HET_COLUMNS = ["statistic", "estimate", "conf_low", "conf_high", "p_value", "note", "estimand"]
LEVEL_TERM = "alliance_level"


def direction_words(outcome_better: str | None) -> dict[str, str]:
    """Words for the two directions of the outcome (``better``/``worse`` only when the
    user said which direction is better)."""
    if outcome_better == "lower":
        return {"negative": "lower (better)", "positive": "higher (worse)", "good_sign": "negative"}
    if outcome_better == "higher":
        return {"negative": "lower (worse)", "positive": "higher (better)", "good_sign": "positive"}
    return {"negative": "lower", "positive": "higher", "good_sign": ""}


def term_estimand(term: str, model: Any) -> str:
    """for_term's text, with plain descriptions for the terms it leaves empty."""
    text = estimands.for_term(term, model)
    if text:
        return text
    if term == "(Intercept)":
        return "expected outcome at the reference values of the other terms (centred predictors at 0)"
    if term == "session":
        return "linear change in the outcome per session, conditional on the other terms"
    if term.startswith("alliance_within_lead"):
        return "alliance deviation at an intermediate session (a control of the direct effect)"
    if ":" in term:
        left, right = term.split(":", 1)
        return (f"interaction: change in the {left} coefficient per unit (or level) of {right}, "
                "conditional on the other terms")
    return "fixed effect, conditional on the other terms"


def within_rows(fit: Any, name: str) -> pd.DataFrame:
    """The main model's alliance rows: within (its headline) and between, the latter
    labelled as the lagged model's conditional coefficient."""
    table = fit.alliance_effects()
    table["model"] = name
    table["status"] = term_statuses(fit, table["term"])  # "unreliable here" marks the within row only
    table["estimand"] = table["term"].map(lambda t: estimands.for_term(str(t), fit.model))
    if "std_estimate" not in table:
        table["std_estimate"] = np.nan
    table["std_definition"] = table["term"].map({"alliance_within": STD_WITHIN, "alliance_between": STD_BETWEEN})
    return table


def level_row(between: pd.DataFrame) -> pd.DataFrame:
    """The between-patient level row from :func:`~.between.between_effect`."""
    row = between.copy()
    row["lead"] = np.nan
    row["model"] = f"between-patient level model ({row['level'].iloc[0]} alliance)"
    row["std_definition"] = STD_BETWEEN
    status = []
    for converged, singular in zip(row["converged"], row["singular"]):
        status.append("; ".join(t for t, bad in (("did not converge", not converged), ("singular", singular)) if bad))
    row["status"] = status
    return row


def effects_table(main_rows: pd.DataFrame, level: pd.DataFrame | None) -> pd.DataFrame:
    """within (main model), between level (level model), between conditional (main model)."""
    parts = [main_rows[main_rows["term"] == "alliance_within"]]
    if level is not None:
        parts.append(level)
    parts.append(main_rows[main_rows["term"] == "alliance_between"])
    table = pd.concat([p.reindex(columns=EFFECT_COLUMNS) for p in parts], ignore_index=True)
    return table


def fixed_table(fit: Any) -> pd.DataFrame:
    table = fit.tidy("fixed", conf_int=True)
    table["status"] = term_statuses(fit, table["term"])
    table["estimand"] = table["term"].map(lambda t: term_estimand(str(t), fit.model))
    return table


def variance_table(fit: Any) -> pd.DataFrame:
    table = fit.tidy("ran_pars").copy()

    def text(group: str, term: str) -> str:
        if group == "Residual":
            return "residual SD (within patient, after the model)" if term.startswith("sd") else \
                f"residual correlation parameter ({term})"
        if term.startswith("sd__"):
            return f"SD over {group} of the random {term[4:]}"
        if term.startswith("cor__"):
            return f"correlation over {group} of the random {term[5:].replace('.', ' and ')}"
        return f"variance parameter of {group}"

    table["estimand"] = [text(str(g), str(t)) for g, t in zip(table["group"], table["term"])]
    table["status"] = fit_status(fit)
    return table


def mark_status(table: pd.DataFrame, status: str) -> pd.DataFrame:
    out = table.copy()
    out["status"] = status
    return out


def slope_lrt(with_slope: Any, without_slope: Any) -> dict[str, float | str]:
    """Likelihood-ratio test of the random slope (its variance and its correlation with
    the intercept) from two fits with the same fixed effects. The variance sits on the
    boundary under the null, so the reference is the 50:50 mixture of chi2(1) and
    chi2(2) (Self & Liang 1987), not chi2(2)."""
    l1 = float(with_slope.glance()["logLik"].iloc[0])
    l0 = float(without_slope.glance()["logLik"].iloc[0])
    stat = max(0.0, 2.0 * (l1 - l0))
    p = 0.5 * stats.chi2.sf(stat, 1) + 0.5 * stats.chi2.sf(stat, 2)
    reml = bool(with_slope.glance().get("reml", pd.Series([True])).iloc[0])
    return {"statistic": stat, "p_value": float(p),
            "reference": "50:50 mixture of chi2(1) and chi2(2) (variance on the boundary)",
            "likelihood": "REML" if reml else "ML"}


def read_test(het: Any) -> dict[str, Any] | None:
    """The heterogeneity object's own LRT (``.test``, a SlopeTest) as a dict with
    statistic, p_value, reference and notes; None when it has none."""
    test = getattr(het, "test", None)
    if test is None:
        return None
    if isinstance(test, dict):
        return dict(test)
    mixture = getattr(test, "mixture", "")
    criterion = getattr(test, "criterion", "")
    if getattr(test, "calibrated", False):
        reference = (f"{test.method} of the {criterion} likelihood ratio, simulated from the model without the "
                     "slope (both models refitted to each draw)")
    else:
        reference = f"{mixture} ({criterion} likelihoods; the variance is on its boundary under the null)" \
            if mixture else ""
    return {"statistic": float(getattr(test, "statistic", np.nan)), "p_value": float(getattr(test, "p_value", np.nan)),
            "reference": reference, "calibrated": bool(getattr(test, "calibrated", False)),
            "notes": [" ".join(str(n).split()) for n in getattr(test, "notes", ()) or ()]}


def _is_interval_warning(text: str) -> bool:
    lowered = text.lower()
    return any(key in lowered for key in ("interval", "profile", "spline", "monoton"))


def heterogeneity_table(het: Any, test: dict[str, Any], fit: Any, outcome_better: str | None,
                        warnings: list[str]) -> pd.DataFrame:
    """The report's heterogeneity rows, each with its estimand: the slope test, the
    model's statistics (the share named by the user's direction), the patients'
    interval-based categories. Warnings about the SD's interval (profile warnings) sit
    in the note beside that interval; other warnings beside the test. Rows that count
    the signs of shrunken patient slopes are left out."""
    summary = het.summary.copy()
    summary = summary[~summary["statistic"].astype(str).str.contains(r"\(patients\)")]
    interval_warnings = [w for w in warnings if _is_interval_warning(w)]
    other_warnings = [w for w in warnings if not _is_interval_warning(w)] + list(test.get("notes", ()))
    test_row = {"statistic": "random-slope test", "estimate": test.get("statistic"), "conf_low": np.nan,
                "conf_high": np.nan, "p_value": test.get("p_value"),
                "note": f"likelihood-ratio test; reference: {test.get('reference', '')}",
                "estimand": "whether the within-patient effect varies between patients (slope variance > 0)"}
    rows = []
    if not (summary["statistic"] == "random-slope test").any():
        rows.append(test_row)
    status = fit_status(fit)
    for record in summary.to_dict("records"):
        name = str(record.get("statistic", ""))
        note = " ".join(str(record.get("note", "") or "").split())
        p_value = np.nan
        estimand = ""
        if name == "random-slope test":
            p_value = test.get("p_value")
            estimand = test_row["estimand"]
            if other_warnings:
                note += "; warnings: " + "; ".join(dict.fromkeys(other_warnings))
        elif name.startswith("share"):
            if outcome_better is None and "beneficial" in name:  # a direction nobody gave
                name = "share with a negative effect (model)"
            estimand = (estimands.SHARE_MODEL if outcome_better else
                        "model-implied share of patients whose own within effect is negative: Phi(-beta/tau) for "
                        "a normal random slope")
            if not np.isfinite(float(record.get("conf_low", np.nan))):
                note = (note + "; " if note else "") + "no interval computed"
        elif name.startswith("random-slope SD"):
            estimand = estimands.SLOPE_SD
            if interval_warnings:
                note = (note + "; " if note else "") + "interval warnings: " + "; ".join(interval_warnings)
        elif "prediction interval" in name:
            estimand = "range expected to hold 95% of patients' own within effects (normal slopes)"
        elif name.startswith("mean"):
            estimand = "average within-patient effect over patients (the fixed effect)"
        elif "BLUP" in name:
            estimand = "SD over patients of their shrunken slope estimates (BLUPs); smaller than the model SD"
        elif name.startswith("patients "):
            estimand = "number of patients in this interval-based category (the patient's own 95% interval)"
        if status:
            note = (note + "; " if note else "") + f"fit {status}"
        rows.append({"statistic": name, "estimate": record.get("estimate"), "conf_low": record.get("conf_low"),
                     "conf_high": record.get("conf_high"), "p_value": p_value, "note": note, "estimand": estimand})
    return pd.DataFrame(rows, columns=HET_COLUMNS)


def patient_categories(patients: pd.DataFrame, outcome_better: str | None, *,
                       assessable: bool = True) -> pd.DataFrame:
    """Patients' slopes classified by their intervals (never by the sign alone):
    ``category`` is clearly better/worse (or clearly negative/positive when no direction
    was given), "uncertain" when the interval holds 0, "no interval" without one.
    The BLUP-sign column ``beneficial`` is dropped. With a degenerate slope fit
    (``assessable=False``) every patient is "not assessable": their intervals then only
    reflect the boundary."""
    out = patients.drop(columns=[c for c in ("beneficial",) if c in patients.columns]).copy()
    out["estimand"] = ("the patient's own within effect: fixed part at the patient's moderators plus the patient's "
                       "BLUP (shrunken toward the mean), with a 95% interval; the category comes from the interval")
    if not assessable:
        out["category"] = "not assessable (degenerate slope fit)"
        return out
    if "category" in patients.columns:
        return out
    words = direction_words(outcome_better)
    neg = "clearly better" if words["good_sign"] == "negative" else (
        "clearly worse" if words["good_sign"] == "positive" else "clearly negative")
    pos = "clearly better" if words["good_sign"] == "positive" else (
        "clearly worse" if words["good_sign"] == "negative" else "clearly positive")
    low, high = out["conf_low"].to_numpy(dtype=float), out["conf_high"].to_numpy(dtype=float)
    category = np.where(~np.isfinite(low) | ~np.isfinite(high), "no interval",
                        np.where(high < 0, neg, np.where(low > 0, pos, "uncertain")))
    out["category"] = category
    return out

