"""From fitted parts to the report's tables, figures, notes and settings.

:func:`main_tables` reads the main fit; :func:`collect` gathers what the independent parts
returned (in the report's order, wherever they ran); :func:`result_tables` and
:func:`result_figures` turn both into the tables and figures :class:`~.report.Report`
shows; :func:`closing_notes` and :func:`settings` say what was fitted and what to watch.
Nothing here fits a model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..analyses.duration import lead_rows
from ..analyses.duration_total import LEAD_REGRESSION_BIAS
from ..analyses.moderation import adjust
from ..canvas import plain_text
from ..models import diagnostics
from ..models.diagnostics import fit_status
from . import figures, wording
from . import tables as report_tables
from .parts import flag_rows, flags_table, reciprocal_status
from .plan import Plan
from .report import SECTIONS

__all__ = ["MainFit", "Collected", "main_fit", "fit_main_tables", "collect", "ar1_comparison", "autocorrelation",
           "result_tables", "duration_tables", "reciprocal_tables", "result_figures", "closing_notes", "settings", "ordered"]


@dataclass(frozen=True)
class MainFit:
    """The main model's fit, what it shows and how it was reached."""

    fit: Any
    fits: dict[str, Any]        # every fit made for it, by name (the degenerate slope fit too)
    slope_note: str             # why the random slope was dropped ("" when kept)
    rows: pd.DataFrame          # its within/between rows for the effects table
    duration_rows: pd.DataFrame  # its total effect at the main lead, for the duration table
    tables: dict[str, pd.DataFrame]


@dataclass
class Collected:
    """What the parts returned, gathered in the report's order."""

    notes: list[str] = field(default_factory=list)
    fit_rows: list[Any] = field(default_factory=list)
    timings: list[dict[str, Any]] = field(default_factory=list)
    level: Any = None
    durations: list[pd.DataFrame] = field(default_factory=list)
    moderators: list[pd.DataFrame] = field(default_factory=list)
    drawings: list[dict[str, Any]] = field(default_factory=list)
    jn: list[pd.DataFrame] = field(default_factory=list)
    het: Any = None
    het_tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    het_drawing: dict[str, Any] | None = None
    ar1_rows: list[dict[str, Any]] = field(default_factory=list)
    reciprocal: Any = None                 # the detached ReciprocalFit (None: not fitted)
    dynamics: pd.DataFrame | None = None   # its impulse responses as the duration table's total rows


def fit_main_tables(fit: Any) -> dict[str, pd.DataFrame]:
    """The main fit's own tables: fixed effects, variance parameters, fit statistics."""
    stats_table = report_tables.mark_status(fit.glance(), fit_status(fit))
    stats_table["estimand"] = "fit statistics of the main model (likelihood, information criteria, flags)"
    return {"fixed_effects": report_tables.fixed_table(fit),
            "variance_parameters": report_tables.variance_table(fit),
            "fit_statistics": stats_table}


def main_fit(fit: Any, fits: dict[str, Any], slope_note: str, name: str) -> MainFit:
    """The main fit with its rows and tables."""
    rows = lead_rows(fit)  # the duration rows of the main lead's total effect
    rows["status"] = diagnostics.term_statuses(fit, rows["term"])
    within = report_tables.within_rows(fit, name)
    for column in ("n", "n_patients"):  # the sessions and patients behind the headline numbers
        if column in rows and len(rows):
            within[column] = rows[column].iloc[0]
    return MainFit(fit=fit, fits=fits, slope_note=slope_note, rows=within, duration_rows=rows,
                   tables=fit_main_tables(fit))


def collect(results: list[dict[str, Any]], main: MainFit) -> Collected:
    """Gather the parts' results (in the report's order) after the main fit."""
    out = Collected(fit_rows=flag_rows(main.fits), durations=[main.duration_rows])
    for result in results:
        out.notes.extend(result["notes"])
        out.fit_rows.extend(result["fits"])
        out.timings.append({"part": result["name"], "seconds": round(result["seconds"], 3),
                            "cpu_seconds": round(result["cpu_seconds"], 3)})
        if "level" in result:
            out.level = result["level"]
        if "rows" in result and "drawing" not in result:
            out.durations.append(result["rows"])
        if "drawing" in result:
            out.moderators.append(result["rows"])
            out.drawings.append(result["drawing"])
            if "jn" in result["drawing"]:
                out.jn.append(result["drawing"]["jn"])
        if "het" in result:
            out.het = result["het"]
            out.het_tables.update(result["tables"])
            if len(result["patients"]):
                out.het_drawing = result
        if "row" in result:
            out.ar1_rows.append(result["row"])
        if "reciprocal" in result:
            out.reciprocal, out.dynamics = result["reciprocal"], result["dynamics"]
    return out


def ar1_comparison(collected: Collected, base: Any) -> tuple[pd.DataFrame, list[str]]:
    """The AR(1) check's table (independent vs AR(1) residuals) and what it concluded."""
    table, compared = diagnostics.ar1_table(collected.ar1_rows, base)
    table["estimand"] = "model comparison by AIC: independent vs AR(1) residuals (lower AIC preferred)"
    return table, compared


def autocorrelation(fit: Any) -> pd.DataFrame:
    """The main fit's residual autocorrelation by session number."""
    acf = diagnostics.residual_acf(fit.augment())
    acf["estimand"] = "residual autocorrelation at this lag, pairs matched by session number within patient"
    return acf


def result_tables(plan: Plan, main: MainFit, collected: Collected) -> dict[str, pd.DataFrame]:
    """The tables that combine the parts: effects, duration, moderators, Johnson-Neyman, fits."""
    level = report_tables.level_row(collected.level) if collected.level is not None else None
    tables = {"alliance_effects": report_tables.effects_table(main.rows, level),
              **duration_tables(collected.durations, collected.dynamics),
              **reciprocal_tables(collected.reciprocal)}
    if collected.moderators:
        tables["moderators"] = moderator_table(collected.moderators)
    if collected.jn:
        jn = pd.concat(collected.jn, ignore_index=True)
        jn["estimand"] = ("range of the moderator (original scale) where the within-patient effect has this sign "
                          "and is (or is not) significant at alpha, without multiplicity correction; "
                          "extrapolated parts lie outside the observed range")
        tables["johnson_neyman"] = jn
    tables["fits"] = flags_table(collected.fit_rows)
    return tables


def duration_tables(parts: list[pd.DataFrame], dynamics: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """``duration``: every lead's total and direct effect, totals first, by lead; and,
    when some total effect could come only from the per-lead regression,
    ``duration_lead_regression`` (for the appendix, its measured bias in the estimand).

    ``parts`` are the regressions' rows: ``effect`` "total" is the per-lead regression
    with the outcome at t controlled, which at leads 0 and 1 IS the direct effect (and at
    lead 0, the concurrent association, the total too). ``dynamics`` are the RI-CLPM's
    impulse responses: the total effects at leads >= 1 (issue 19: the per-lead regression
    falls short of them under person-mean centring).
    """
    table = pd.concat(parts, ignore_index=True)
    regression = table["effect"] == "total"
    direct = pd.concat([table[regression & (table["lead"] <= 1)].assign(effect="direct"), table[~regression]])
    first = 0 if dynamics is not None else 1  # the regression's totals kept: lead 0 (and 1 without dynamics)
    totals = [table[regression & (table["lead"] <= first)], *([dynamics] if dynamics is not None else [])]
    out = pd.concat([*totals, direct], ignore_index=True)
    out["order"] = out["effect"].map({"total": 0, "direct": 1})
    out = out.sort_values(["order", "lead"], kind="stable").drop(columns="order").reset_index(drop=True)
    later = table[regression & (table["lead"] > 1)]  # at lead 1 the regression is the direct effect
    if not len(later):
        return {"duration": out}
    later = later.assign(effect="lead_regression", estimand=later["estimand"] + "; " + LEAD_REGRESSION_BIAS)
    return {"duration": out, "duration_lead_regression": later.sort_values("lead", kind="stable")
            .reset_index(drop=True)}


def reciprocal_tables(fit: Any) -> dict[str, pd.DataFrame]:
    """The RI-CLPM's lagged paths and impulse responses, each row with the fit's status."""
    if fit is None:
        return {}
    status = reciprocal_status(fit)
    return {"reciprocal_effects": fit.effects.assign(waves=fit.waves, n_patients=fit.n_patients, status=status),
            "impulse_responses": fit.impulse.assign(status=status)}


def reciprocal_settings(fit: Any) -> dict[str, Any] | None:
    """What the texts say of the RI-CLPM fit (None: not fitted)."""
    if fit is None:
        return None
    return {"method": fit.method, "waves": fit.waves, "n_patients": fit.n_patients, "converged": fit.converged,
            "admissible": fit.admissible, "problems": list(fit.problems), "status": reciprocal_status(fit),
            "patient_level": dict(fit.patient_level), "within_sd": dict(fit.within_sd),
            "outside": dict(fit.outside)}


def moderator_table(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """The moderators' rows with Benjamini-Hochberg adjusted p, status and estimand."""
    mods = adjust(pd.concat(parts, ignore_index=True))
    mods["status"] = pd.concat(parts, ignore_index=True)["status"].to_numpy()
    mods["estimand"] = [_moderator_estimand(r) for r in mods.itertuples()]
    return mods


def result_figures(plan: Plan, tables: dict[str, pd.DataFrame], collected: Collected) -> dict[str, Any]:
    """The duration and simple-slopes figures, each with a caution when a fit behind it is flagged."""
    figs: dict[str, Any] = {}
    duration = tables["duration"]
    for effect in ("total", "direct"):
        rows = duration[duration["effect"] == effect]
        if len(rows):
            figs["duration" if effect == "total" else "duration_direct"] = _duration_figure(rows, effect, plan.words)
    for drawing in collected.drawings:
        figs[f"simple_slopes_{drawing['name']}"] = caution(
            _moderator_figure(drawing, tables.get("moderators"), plan.words), drawing["status"])
    return figs


def patient_slopes_figure(plan: Plan, collected: Collected) -> Any | None:
    """The caterpillar plot of the patients' own slopes (None when there is none)."""
    result = collected.het_drawing
    if result is None:
        return None
    return caution(figures.caterpillar_plot(result["patients"], result["summary"], **plan.words), result["status"])


def _duration_figure(rows: pd.DataFrame, effect: str, words: dict[str, Any]) -> Any:
    fig = figures.duration_plot(rows, **words)
    dynamics = rows["estimand"].astype(str).str.contains("impulse response").any()
    what = ("direct effect (controls the most recent earlier outcome and the alliance in between)"
            if effect == "direct" else
            "total effect from the fitted dynamics (RI-CLPM impulse response: every path in between)" if dynamics
            else "total effect (includes what is carried through the outcomes in between)")
    first, _, rest = fig.get_suptitle().partition("\n")
    fig.suptitle(f"{first}\n{what}" + (f"\n{rest}" if rest else ""))
    return caution(fig, "; ".join(sorted({s for s in rows["status"] if s})))


#: how the current outcome is controlled, in plain words (the model's own note names the
#: econometrics; the glossary defines those names)
CONTROL_WORDS = {
    "decomposed": "the current outcome controlled as the patient's mean outcome plus the session's deviation from "
                  "it, so the alliance effect compares each patient with themselves",
    "raw": "the current outcome controlled as it is (raw lagged outcome)",
    False: "no control of the current outcome",
}


def closing_notes(plan: Plan, main: MainFit, notes: list[str], fits_table: pd.DataFrame) -> list[str]:
    """The report's notes: the plan's, the main model in one plain sentence, the parts'.
    Every fit's status and R's warnings are in the fits table (the report's appendix),
    not repeated here."""
    model = main.fit.model
    out = list(notes)
    therapist = {"nested": "patients nested in therapists", "crossed": "patients crossed with therapists",
                 "none": "no therapist level"}.get(str(plan.therapist), str(plan.therapist))
    out.insert(len(plan.panel.notes), f"Main model: each alliance rating and the outcome "
               f"{wording.when_words(plan.main_lead)} (lead {plan.main_lead}), fitted with {plan.main_model.engine}; {CONTROL_WORDS.get(model.control_outcome, '')}; "
               f"{therapist}; residuals {'independent' if plan.residual == 'iid' else plan.residual}; "
               + ("a random within-patient slope (each patient may have an own effect)." if model.random_slope
                  else "no random slope (one within-patient effect for all patients)."))
    # what the fit itself chose (e.g. random intercepts removed as expected by design): once
    out.extend(n for n in dict.fromkeys(" ".join(str(x).split()) for x in getattr(main.fit, "notes", ()) or ())
               if n not in out)
    if main.slope_note:
        out.append(main.slope_note)
    return out


def settings(plan: Plan, main: MainFit, collected: Collected, het_absent: str | None) -> dict[str, Any]:
    """The settings the report records (what was asked and what was fitted)."""
    model = main.fit.model
    return {"leads": plan.leads, "main_lead": plan.main_lead, "moderators": [str(m) for m in plan.moderators],
            "engine": plan.main_model.engine, "residual": plan.residual, "therapist": plan.therapist,
            "random_slope": bool(model.random_slope), "random_slope_requested": plan.random_slope,
            "control_outcome": model.control_outcome, "prior_outcome": model.prior_outcome,
            "outcome_better": plan.panel.outcome_better, "outcome_name": plan.panel.outcome_name,
            "heterogeneity": collected.het, "heterogeneity_absent": het_absent,
            "main_status": fit_status(main.fit), "reciprocal": reciprocal_settings(collected.reciprocal)}


def ordered(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The tables in the order the report reads."""
    order = [t for _, _, names, _ in SECTIONS for t in names]
    return {k: tables[k] for k in order if k in tables}


def _moderator_estimand(row: Any) -> str:
    if row.kind == "interaction":
        component = str(row.term).split(":", 1)[0]
        return (f"change in the {component.replace('_', ' ')} effect per unit of {row.moderator} "
                "(or for this level against the reference), conditional on the other terms")
    return (f"{str(row.term).replace('_', ' ')} effect at {row.moderator} = {row.label} "
            "(other moderators at their centre or reference)")


def _moderator_figure(drawing: dict[str, Any], mods: pd.DataFrame | None, words: dict[str, Any]) -> Any:
    """The simple-slopes figure of one moderator; Johnson-Neyman regions are shaded only
    when its interaction with alliance_within survives the Benjamini-Hochberg correction."""
    adjusted = np.nan
    if mods is not None:
        rows = mods[(mods["kind"] == "interaction") & (mods["moderator"] == str(drawing["name"]))
                    & mods["term"].astype(str).str.startswith("alliance_within:")]
        if len(rows):
            adjusted = float(rows["p_adjusted"].min())
    name = plain_text(drawing["name"])
    if drawing["kind"] == "numeric":
        return figures.simple_slopes_plot(drawing["slopes"], name, "numeric", observed=drawing["observed"],
                                          jn=drawing.get("jn"), adjusted_p=adjusted, **words)
    return figures.simple_slopes_plot(drawing["slopes"], name, "categorical", adjusted_p=adjusted, **words)


def caution(fig: Any, status: str) -> Any:
    """Mark a figure drawn from a fit with a real problem (did not converge, a random
    slope or correlation at its boundary), in red under the plot (the figure-level x
    label, which the layout makes room for). A boundary the design explains is not
    marked (:mod:`.status`)."""
    # a figure may draw several fits: each problem once
    problems = "; ".join(dict.fromkeys(p for p in wording.short_status(status).split("; ") if p))
    if problems:
        fig.supxlabel(f"Caution: drawn from fit(s) flagged: {problems} (see the appendix)",
                      fontsize=8, color="#b30000")
    return fig
