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
from ..analyses.moderation import adjust
from ..models import diagnostics
from ..models.diagnostics import fit_status
from . import figures, wording
from . import tables as report_tables
from .parts import flag_rows, flags_table
from .plan import Plan
from .report import SECTIONS

__all__ = ["MainFit", "Collected", "main_fit", "fit_main_tables", "collect", "ar1_comparison", "autocorrelation",
           "result_tables", "result_figures", "closing_notes", "settings", "ordered"]


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
    rows["status"] = fit_status(fit)
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
              "duration": duration_table(collected.durations)}
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


def duration_table(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Every lead's total and direct effect, totals first, by lead."""
    table = pd.concat(parts, ignore_index=True)
    # at leads 0 and 1 the direct effect IS the total effect: show it under both
    same = table[(table["effect"] == "total") & (table["lead"] <= 1)].assign(effect="direct")
    table = pd.concat([table, same], ignore_index=True)
    table["order"] = table["effect"].map({"total": 0, "direct": 1})
    table = table.sort_values(["order", "lead"], kind="stable").drop(columns="order")
    return table.reset_index(drop=True)


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
    what = ("direct effect (controls the most recent earlier outcome and the alliance in between)"
            if effect == "direct" else
            "total effect (includes what is carried through the outcomes in between)")
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
            "main_status": fit_status(main.fit)}


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


def _plain(name: Any) -> str:
    """A name for a figure label: matplotlib reads text between $ signs as mathtext and
    fails while drawing on what it cannot parse (after every fit is done)."""
    return str(name).replace("$", r"\$")


def _moderator_figure(drawing: dict[str, Any], mods: pd.DataFrame | None, words: dict[str, Any]) -> Any:
    """The simple-slopes figure of one moderator; Johnson-Neyman regions are shaded only
    when its interaction with alliance_within survives the Benjamini-Hochberg correction."""
    adjusted = np.nan
    if mods is not None:
        rows = mods[(mods["kind"] == "interaction") & (mods["moderator"] == str(drawing["name"]))
                    & mods["term"].astype(str).str.startswith("alliance_within:")]
        if len(rows):
            adjusted = float(rows["p_adjusted"].min())
    name = _plain(drawing["name"])
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
