"""The sentences of the alliance-outcome report, written from its tables and settings.

Rules (issue 9): the direction words come from the user's ``outcome_better`` ("lower"
or "higher" is better; None keeps them neutral and claims no benefit); the outcome is
called by its own name; every headline names the estimand it reports and carries a
caution when its fit did not converge or is singular/degenerate; heterogeneity is
claimed only when the likelihood-ratio test supports it; "how long it lasts" is read
from the total effect of the fitted dynamics (the RI-CLPM's impulse responses, issue 19)
or, without them, from the direct effect.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from . import dynamics_words
from .tables import direction_words
from .words import ALPHA, caution, direction, effect_row, p_digits, p_text, short_status, sig, when_words  # noqa: F401

_caution, _direction, _sig = caution, direction, sig  # the names this module's sentences use


def within_sentence(report: Any) -> str | None:
    row = effect_row(report, "alliance_within")
    if row is None:
        return None
    better = report.settings.get("outcome_better")
    name = report.settings.get("outcome_name", "the outcome")
    when = when_words(int(row["lead"]))
    before = f" and the same {name} of the session before" if report.settings.get("prior_outcome") else ""
    control = {"decomposed": f"at the same current {name}{before} (controlled as the patient's mean plus the "
                             "deviation from it)",
               "raw": f"at the same current {name}{before} (raw lagged outcome)",
               False: "without controlling the current outcome"}.get(report.settings.get("control_outcome"), "")
    return (f"Within patients: in sessions where a patient's alliance was one point above the patient's own "
            f"level, {name} {when} was {abs(row['estimate']):.2f} points {_direction(row['estimate'], better)} "
            f"(95% CI {row['conf_low']:.2f} to {row['conf_high']:.2f}; {p_text(row['p_value'])}; "
            f"{_sig(row['p_value'])}), {control}." + _caution(row.get("status")))


def between_sentence(report: Any) -> str | None:
    row = effect_row(report, "alliance_level")
    better = report.settings.get("outcome_better")
    name = report.settings.get("outcome_name", "the outcome")
    if row is None:
        if effect_row(report, "alliance_between") is not None:
            return ("Between patients: the between-patient level model could not be fitted (see the methods); the "
                    "main model's between-patient coefficient is a change at the same current outcome, not a "
                    "difference in outcome level, and is not interpreted here.")
        return None
    early = "early alliance" if "early" in str(row.get("model", "")) else "average alliance"
    return (f"Between patients (the between-patient level model): patients whose {early} was one point higher "
            f"had {name} levels {abs(row['estimate']):.2f} points {_direction(row['estimate'], better)} "
            f"(95% CI {row['conf_low']:.2f} to {row['conf_high']:.2f}; {p_text(row['p_value'])}), at the same "
            f"intake {name}. The main model's between-patient coefficient answers another question (the change "
            "at the same current outcome; see the glossary) and is not this level difference."
            + _caution(row.get("status")))


def _leads_words(leads: list[int]) -> str:
    """"1 session later", "1 and 2 sessions later", "1, 2 and 3 sessions later"."""
    if not leads:
        return ""
    listed = ", ".join(map(str, leads[:-1])) + (f" and {leads[-1]}" if len(leads) > 1 else str(leads[-1]))
    return f"{listed} session{'s' if leads != [1] else ''} later"


def _lasting_words(report: Any) -> tuple[str, str] | None:
    """(kind, verdict): how long it lasts, read from the total effect of the fitted
    dynamics (issue 19) or, without them, from the direct effect; None without a table."""
    table = report.tables.get("duration")
    if table is None or not len(table):
        return None
    if "effect" not in table:  # a table made before duration had total/direct
        table = table.assign(effect="total")
    kind = "total" if dynamics_words.from_dynamics(report) else "direct"
    rows = table[(table["term"] == "alliance_within") & (table["effect"] == kind)].sort_values("lead")
    found, where = dynamics_words.lasting(rows, report.settings.get("outcome_better"),
                                          direction_words(report.settings.get("outcome_better"))["good_sign"])
    what = "the total within-patient effect (from the fitted dynamics)" if kind == "total" else \
        "the direct within-patient effect"
    if not found:
        return kind, f"at no lead is {what} distinguishable from zero"
    verdict = f"{what} is distinguishable from zero {_leads_words(found)}" + (f" ({where})" if where else "")
    beyond = [int(k) for k in rows["lead"] if k > max(found)]
    verdict += f"; not {_leads_words(beyond)}" if beyond else f"; {_leads_words([max(found)])} is the longest lead analysed"
    return kind, verdict


def duration_text(report: Any) -> str | None:
    table = report.tables.get("duration")
    if table is None or not len(table):
        return None
    if "effect" not in table:  # a table made before duration had total/direct
        table = table.assign(effect="total")
    within = table[table["term"] == "alliance_within"]

    def listing(effect: str) -> str:
        rows = within[within["effect"] == effect].sort_values("lead")
        return "; ".join(f"{when_words(int(r.lead))}: {r.estimate:.2f} [{r.conf_low:.2f}, {r.conf_high:.2f}]"
                         + (f" (fit {short_status(r.status)})" if short_status(getattr(r, "status", "")) else "")
                         for r in rows.itertuples())

    total = ("Total effect (from the fitted dynamics: the RI-CLPM's impulse response, what a one-point "
             "within-patient alliance change at t does to the outcome k sessions later through every path in "
             "between). " if dynamics_words.from_dynamics(report) else
             "Total effect: controls the outcome at the rating; at later leads it includes what is carried through "
             "the outcomes in between. ")
    text = (total + "Direct effect (multilevel model): also controls the most recent earlier outcome and the "
            "alliance in between. Within patients, by lead: " + "; ".join(
                f"{kind} {listing(kind)}" for kind in ("total", "direct") if listing(kind)) + ". ")
    kind, verdict = _lasting_words(report)  # type: ignore[misc]
    return text + f"How long it lasts ({kind} effect): {verdict}. Points are estimates with 95% CIs; the dashed " \
        "line is zero."


def moderators_text(report: Any) -> str | None:
    mods = report.tables.get("moderators")
    if mods is None:
        return None
    better = report.settings.get("outcome_better")
    sign_hint = {"lower": "a negative interaction makes the within effect more negative "
                          "(stronger in the better direction) as the moderator increases",
                 "higher": "a positive interaction makes the within effect more positive "
                           "(stronger in the better direction) as the moderator increases"}.get(
        better, "a negative interaction makes the within effect more negative as the moderator increases")
    return ("Each moderator gets its own model, in which it may change the within- and the between-patient "
            "alliance effect (an interaction); p values are adjusted for testing many interactions "
            f"(Benjamini-Hochberg); {sign_hint}. " + moderators_result(report))


def moderators_result(report: Any) -> str:
    sig = report.significant_moderators()
    n = report.tables["moderators"]["moderator"].nunique()
    return (f"Moderators with an interaction significant after adjustment for multiple testing: {', '.join(sig)} "
            f"(of {n})." if sig else f"No interaction of the {n} moderator(s) is significant after "
            "adjustment for multiple testing.")


def _lrt_words(test: dict[str, Any]) -> str:
    p = float(test.get("p_value", np.nan))
    return (f"likelihood-ratio test of whether the effect varies between patients: "
            f"chi2 = {float(test.get('statistic', np.nan)):.2f}, {p_text(p)}")


def heterogeneity_head(report: Any) -> str | None:
    """The heterogeneity verdict in one sentence (that can stand alone)."""
    absent = report.settings.get("heterogeneity_absent")
    if absent:
        return f"Heterogeneity of the within-patient effect was not estimated: {absent}"
    info = report.settings.get("heterogeneity")
    if not info or report.tables.get("heterogeneity") is None:
        return None
    test = info["test"]
    p = float(test.get("p_value", np.nan))
    if info.get("degenerate"):
        return ("The random-slope fit is degenerate (the spread of the effect between patients, or its "
                "correlation, is at its boundary): the variation of the within effect between patients cannot be "
                f"assessed in these data ({_lrt_words(test)}).")
    measured = f" {'Measured' if test.get('calibrated') else 'Caution'}: {info['caveat']}." if info.get("caveat") else ""
    if _supported(info, p):
        head = f"The within-patient effect differs between patients ({_lrt_words(test)}).{measured}"
        if info.get("degenerate_other"):
            head += (" Other variance parameters of this fit are at the boundary ("
                     + ", ".join(info["degenerate_other"]) + "); the slope's are not.")
        return head
    return (f"The data cannot distinguish heterogeneity of the within-patient effect from none ({_lrt_words(test)}); "
            f"{_not_estimable(info)}.{measured}")


def _supported(info: dict[str, Any], p: float) -> bool:
    """The heterogeneity verdict: the result's own when it has one (a calibrated Monte
    Carlo p rejects at p <= alpha), else p < alpha."""
    if info.get("verdict") is not None:
        return info["verdict"] == "supported"
    return bool(np.isfinite(p) and p < ALPHA)


def _not_estimable(info: dict[str, Any]) -> str:
    sd = float(info.get("detectable_sd", np.nan))
    if not np.isfinite(sd):
        return "the spread of patients' effects is not estimable here and is not reported"
    return (f"the spread of patients' effects is not estimable here and is not reported: this design detects an SD "
            f"of about {sd:.2g} or more (80% power), smaller ones cannot be told from 0")


def heterogeneity_text(report: Any) -> str | None:
    head = heterogeneity_head(report)
    if head is None or report.settings.get("heterogeneity_absent"):
        return head
    info = report.settings["heterogeneity"]
    better = report.settings.get("outcome_better")
    stat = report.tables["heterogeneity"].set_index("statistic")
    parts = [head]
    if info.get("degenerate"):
        parts.append("Its SD, share and patient classifications are therefore not interpreted.")
        return " ".join(parts) + _caution(report.settings.get("main_status"))
    sd = next((r for name, r in stat.iterrows() if str(name).startswith("random-slope SD")), None)
    if sd is not None and np.isfinite(float(sd["estimate"])):
        interval = (f" (95% CI {sd['conf_low']:.2f} to {sd['conf_high']:.2f})"
                    if np.isfinite(float(sd["conf_low"])) else " (no interval)")
        parts.append(f"SD of the within effect over patients (random-slope SD) {float(sd['estimate']):.2f}{interval}"
                     + ("; its interval's likelihood profile had problems (see the appendix)"
                        if info.get("profile_warnings") else "") + ".")
    share = next((r for name, r in stat.iterrows() if str(name).startswith("share")), None)
    if share is not None and not np.isfinite(float(share["estimate"])):
        parts.append(f"The share of patients helped is {str(share.get('note', 'not shown')).split(';')[0]}.")
    elif share is not None:
        interval = (f" (95% CI {share['conf_low']:.0%} to {share['conf_high']:.0%})"
                    if np.isfinite(float(share["conf_low"])) else " (no interval available)")
        if better:
            what = f"an own within effect in the better direction ({better} {report.settings.get('outcome_name')})"
        else:
            what = "a negative own within effect (no direction of benefit was given)"
        parts.append(f"The model implies that {float(share['estimate']):.0%}{interval} of patients have {what}.")
    shrinkage = info.get("shrinkage", np.nan)
    spread = (f" (their SD is {shrinkage:.0%} of the model's)" if shrinkage is not None
              and np.isfinite(shrinkage) else "")
    parts.append(f"Each patient's own estimated effect is shrunken toward the mean effect{spread}: the estimates "
                 "spread less than the patients' true effects, and patients with few sessions are pulled in the most, "
                 "so patients are classified by their own 95% intervals, never by the sign of their estimate alone.")
    patients = report.tables.get("patient_slopes")
    if patients is not None and "category" in patients:
        counts = patients["category"].value_counts()
        parts.append("Patients by their interval: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + ".")
    return " ".join(parts) + _caution(report.settings.get("main_status"))


def lead_ins(report: Any) -> dict[str, str]:
    """The lead-in paragraph of each section."""
    text: dict[str, str] = {}
    a = [s for s in (within_sentence(report), dynamics_words.robustness_sentence(report),
                     dynamics_words.reverse_sentence(report), between_sentence(report)) if s]
    if a:
        text["a"] = " ".join(a)
    for key, func in (("b", duration_text), ("c", moderators_text), ("h", heterogeneity_text)):
        value = func(report)
        if value:
            text[key] = value
    text["d"] = ("Convergence and boundary checks of every fit, the main model's residual autocorrelation "
                 "(pairs matched by session number within patient), and a comparison with residuals correlated "
                 "from one session to the next (AR(1)) on converged fits of the same model.")
    return text


def headline(report: Any) -> list[str]:
    """The headline lines of ``str(report)``, each marked when its fit is flagged."""
    lines = []
    better = report.settings.get("outcome_better")
    for term, label in (("alliance_within", "within-patient effect"), ("alliance_level", "between-patient level"),
                        ("alliance_between", "between, conditional")):
        row = effect_row(report, term)
        if row is None:
            continue
        lead = "" if pd.isna(row["lead"]) else f" (lead {int(row['lead'])})"
        flag = f"  [fit {short_status(row['status'])}]" if short_status(row.get("status")) else ""
        lines.append(f"  {label}{lead}: {row['estimate']:.3f} [{row['conf_low']:.3f}, {row['conf_high']:.3f}], "
                     f"{p_text(row['p_value'])}{flag}")
    dur = report.tables.get("duration")
    if dur is not None and len(dur):
        if "effect" not in dur:
            dur = dur.assign(effect="total")
        flagged_any = False
        for effect in ("total", "direct"):
            rows = dur[(dur["term"] == "alliance_within") & (dur["effect"] == effect)]
            if len(rows):
                parts = []
                for r in rows.itertuples():
                    # a mark for a flagged fit, never "*" (which readers take for significance);
                    # a missing status (NaN) is not a flag
                    flagged = bool(short_status(getattr(r, "status", "")))
                    flagged_any |= flagged
                    parts.append(f"t+{int(r.lead)}: {r.estimate:.3f} [{r.conf_low:.3f}, {r.conf_high:.3f}]"
                                 + (" (flagged)" if flagged else ""))
                lines.append(f"  duration ({effect}, within): " + "; ".join(parts))
        if flagged_any:
            lines.append("  (flagged: from a fit that did not converge or is singular/degenerate; see the fits table)")
    if better is None:
        lines.append("  (no outcome direction given: estimates are described as lower/higher outcome)")
    return lines


def closing_note(report: Any) -> list[str]:
    """The report's headline sentences, quoted at its end so a reviewer can check each
    against the tables: the within effect, the between level, how long it lasts, the
    heterogeneity verdict and the moderators' result."""
    quotes = [within_sentence(report), dynamics_words.reverse_sentence(report), between_sentence(report)]
    duration = duration_text(report)
    if duration and "How long it lasts" in duration:
        quotes.append(duration[duration.index("How long it lasts"):].split(" Points are")[0])
    het = heterogeneity_head(report)
    if het:
        quotes.append((het + _caution(report.settings.get("main_status"))).strip())
    if report.tables.get("moderators") is not None:
        quotes.append(moderators_result(report))
    return [q for q in quotes if q]


# ---------------------------------------------------------------- the one-screen summary

def _ci(row: Any, estimate: str = "estimate") -> str:
    return f"{row[estimate]:.2f} [95% CI {row['conf_low']:.2f}, {row['conf_high']:.2f}]"


def _n_words(row: Any) -> str:
    n, patients = row.get("n"), row.get("n_patients")
    parts = []
    if n is not None and np.isfinite(float(n)):
        parts.append(f"{int(n)} sessions")
    if patients is not None and np.isfinite(float(patients)):
        parts.append(f"{int(patients)} patients")
    return f", n = {' of '.join(parts)}" if parts else ""


def _figure_ref(figures: dict[str, int], *names: str) -> str:
    numbers = [figures[n] for n in names if n in figures]
    if not numbers:
        return ""
    return f" (Figure {numbers[0]})" if len(numbers) == 1 else f" (Figures {min(numbers)}-{max(numbers)})"


def _within_figure(report: Any) -> str:
    """The figure that shows the headline within effect: the direct effect's (lead 1 is
    the main model's fit) when the total figure draws the dynamics."""
    return "duration_direct" if dynamics_words.from_dynamics(report) else "duration"


def summary_within(report: Any, figures: dict[str, int]) -> str | None:
    row = effect_row(report, "alliance_within")
    if row is None:
        return None
    name = report.settings.get("outcome_name", "the outcome")
    direction = _direction(row["estimate"], report.settings.get("outcome_better"))
    return (f"(a) Within patients: in sessions where a patient's alliance was one point above the patient's own "
            f"level, {name} {when_words(int(row['lead']))} was {abs(row['estimate']):.2f} points {direction}: "
            f"{_ci(row)}, {p_text(row['p_value'])}{_n_words(row)}{_figure_ref(figures, _within_figure(report))}."
            + _caution(row.get("status")))


def summary_between(report: Any, figures: dict[str, int]) -> str | None:
    row = effect_row(report, "alliance_level")
    if row is None:
        return None
    name = report.settings.get("outcome_name", "the outcome")
    early = "early alliance" if "early" in str(row.get("model", "")) else "average alliance"
    direction = _direction(row["estimate"], report.settings.get("outcome_better"))
    return (f"(a) Between patients: patients whose {early} was one point higher had {name} levels "
            f"{abs(row['estimate']):.2f} points {direction}: {_ci(row)}, {p_text(row['p_value'])}{_n_words(row)}."
            + _caution(row.get("status")))


def summary_duration(report: Any, figures: dict[str, int]) -> str | None:
    said = _lasting_words(report)
    if said is None:
        return None
    kind, verdict = said
    table = report.tables["duration"]
    rows = table[(table["term"] == "alliance_within") & (table.get("effect", "total") == kind)
                 & (table["lead"] > 0)]
    listing = "; ".join(f"{when_words(int(r['lead']))} {_ci(r)}, {p_text(r['p_value'])}"
                        + (f" [{short_status(r.get('status'))}]" if short_status(r.get("status")) else "")
                        for r in rows.sort_values("lead").to_dict("records"))
    source = "RI-CLPM impulse responses" if kind == "total" else "direct effect"
    figure = "duration" if kind == "total" else "duration_direct"
    return f"(b) How long it lasts: {verdict} ({source}: {listing}){_figure_ref(figures, figure)}."


def summary_moderators(report: Any, figures: dict[str, int]) -> str | None:
    mods = report.tables.get("moderators")
    if mods is None or not len(mods) or not {"kind", "term", "moderator", "p_adjusted"} <= set(mods.columns):
        return None
    refs = _figure_ref(figures, *[f for f in figures if f.startswith("simple_slopes_")])
    inter = mods[(mods["kind"] == "interaction") & mods["term"].astype(str).str.startswith("alliance_within:")]
    n_mod = mods["moderator"].nunique()
    sig = report.significant_moderators()
    if not sig or not len(inter):
        best = inter.sort_values("p_adjusted").iloc[0] if len(inter) else None
        smallest = (f" (smallest adjusted p: {p_digits(best['p_adjusted'])}, {best['moderator']})"
                    if best is not None else "")
        return (f"(c) Moderators: none of the {n_mod} moderator(s) changes the within-patient effect after "
                f"adjustment for multiple testing{smallest}{refs}.")
    parts = []
    for name in sig:
        rows = inter[inter["moderator"].astype(str) == name].sort_values("p_adjusted")
        if len(rows):
            r = rows.iloc[0]
            parts.append(f"{name} ({_ci(r)} per unit, adjusted p {p_digits(r['p_adjusted'])}, n = {int(r['n'])} "
                         "sessions)" + _caution(r.get("status")))
    return (f"(c) Moderators: {len(sig)} of {n_mod} moderator(s) change the within-patient effect after "
            f"adjustment for multiple testing: {'; '.join(parts) or ', '.join(sig)}{refs}.")


def summary_heterogeneity(report: Any, figures: dict[str, int]) -> str | None:
    absent = report.settings.get("heterogeneity_absent")
    if absent:
        return f"Heterogeneity: not estimated ({absent.rstrip('.')})."
    info = report.settings.get("heterogeneity")
    table = report.tables.get("heterogeneity")
    if not info or table is None:
        return None
    p = float(info["test"].get("p_value", np.nan))
    if info.get("degenerate"):
        verdict = "whether the within-patient effect differs between patients cannot be assessed (boundary fit)"
    elif _supported(info, p):
        verdict = "the within-patient effect differs between patients"
    else:
        verdict = "the data cannot tell whether the within-patient effect differs between patients"
    sd = table[table["statistic"].astype(str).str.startswith("random-slope SD")]
    spread = ""
    if len(sd) and not info.get("degenerate"):
        spread = (f"; SD of the effect over patients {_ci(sd.iloc[0])}" if np.isfinite(float(sd.iloc[0]["estimate"]))
                  else f"; {_not_estimable(info)}")
    patients = report.tables.get("patient_slopes")
    n = f", n = {len(patients)} patients" if patients is not None else ""
    return (f"Heterogeneity: {verdict} (test {p_text(p)}{spread}{n}){_figure_ref(figures, 'patient_slopes')}."
            + _caution(report.settings.get("main_status")))


def summary_lines(report: Any, figures: dict[str, int]) -> list[str]:
    """The one-screen summary: each objective in one sentence with estimate [95% CI], p,
    n and the figure that answers it."""
    makers = (summary_within, dynamics_words.summary_reciprocal, summary_between, summary_duration,
              summary_moderators, summary_heterogeneity)
    return [line for line in (make(report, figures) for make in makers) if line]
