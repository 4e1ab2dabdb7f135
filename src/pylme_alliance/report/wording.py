"""The sentences of the alliance-outcome report, written from its tables and settings.

Rules (issue 9): the direction words come from the user's ``outcome_better`` ("lower"
or "higher" is better; None keeps them neutral and claims no benefit); the outcome is
called by its own name; every headline names the estimand it reports and carries a
caution when its fit did not converge or is singular/degenerate; heterogeneity is
claimed only when the likelihood-ratio test supports it; "how long it lasts" is read
from the direct effect.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .tables import direction_words

ALPHA = 0.05


def effect_row(report: Any, term: str) -> pd.Series | None:
    table = report.tables.get("alliance_effects")
    if table is None:
        return None
    rows = table[table["term"] == term]
    return rows.iloc[0] if len(rows) else None


def p_digits(value: float) -> str:
    """A p value for reading: ``< .001`` or three decimals (tables and sentences alike)."""
    return "< .001" if value < 0.001 else f"{value:.3f}"


def p_text(value: float) -> str:
    if value is None or not np.isfinite(value):
        return "p not available"
    digits = p_digits(value)
    return f"p {digits}" if digits.startswith("<") else f"p = {digits}"


def _caution(status: Any) -> str:
    status = "" if status is None or (isinstance(status, float) and np.isnan(status)) else str(status)
    return f" [Caution: this estimate comes from a fit that is flagged: {status}.]" if status else ""


def short_status(status: str) -> str:
    """"singular (SD of ... ~ 0)" -> "singular": the details are in the fits table."""
    out, depth = [], 0
    for char in str(status):
        depth += char == "("
        if depth == 0:
            out.append(char)
        depth -= char == ")" and depth > 0
    return " ".join("".join(out).split()).replace(" ;", ";")


def _direction(estimate: float, better: str | None) -> str:
    words = direction_words(better)
    return words["negative"] if estimate < 0 else words["positive"]


def _sig(p: float) -> str:
    return "distinguishable from zero" if p < ALPHA else "not distinguishable from zero"


def within_sentence(report: Any) -> str | None:
    row = effect_row(report, "alliance_within")
    if row is None:
        return None
    better = report.settings.get("outcome_better")
    name = report.settings.get("outcome_name", "the outcome")
    lead = int(row["lead"])
    when = "in the same session" if lead == 0 else f"{lead} session(s) later"
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
            return ("Between patients: the between-patient level model could not be fitted (see the notes); the "
                    "lagged model's alliance_between coefficient is a conditional change coefficient, not a "
                    "difference in outcome level, and is not interpreted here.")
        return None
    early = "early alliance" if "early" in str(row.get("model", "")) else "average alliance"
    return (f"Between patients (the between-patient level model): patients whose {early} was one point higher "
            f"had {name} levels {abs(row['estimate']):.2f} points {_direction(row['estimate'], better)} "
            f"(95% CI {row['conf_low']:.2f} to {row['conf_high']:.2f}; {p_text(row['p_value'])}). Estimand: "
            f"{row['estimand']}. The lagged model's alliance_between row is a conditional change coefficient "
            "(labelled so in the table), not this level difference." + _caution(row.get("status")))


def duration_text(report: Any) -> str | None:
    table = report.tables.get("duration")
    if table is None or not len(table):
        return None
    better = report.settings.get("outcome_better")
    if "effect" not in table:  # a table made before duration had total/direct
        table = table.assign(effect="total")
    within = table[table["term"] == "alliance_within"]

    def listing(effect: str) -> str:
        rows = within[within["effect"] == effect].sort_values("lead")
        return "; ".join(f"lead {int(r.lead)}: {r.estimate:.2f} [{r.conf_low:.2f}, {r.conf_high:.2f}]"
                         + (f" (fit {short_status(r.status)})" if getattr(r, "status", "") else "")
                         for r in rows.itertuples())

    direct = within[within["effect"] == "direct"].sort_values("lead")
    lasting = [int(r.lead) for r in direct.itertuples() if r.p_value < ALPHA and r.lead > 0]
    good = direction_words(better)["good_sign"]
    if good:
        lasting_good = [int(r.lead) for r in direct.itertuples()
                        if r.p_value < ALPHA and r.lead > 0 and (r.estimate < 0) == (good == "negative")]
    text = ("Total effect (controls the outcome at t; at later leads it includes what is carried through the "
            f"outcomes in between): {listing('total')}. Direct effect (controls the most recent earlier outcome "
            f"and the alliance in between): {listing('direct')}. ")
    if not lasting:
        text += "How long it lasts (direct effect): at no lead is the direct within-patient effect distinguishable from zero."
    else:
        last = max(lasting)
        text += (f"How long it lasts (direct effect): the direct within-patient effect is distinguishable from zero "
                 f"at lead(s) {', '.join(map(str, lasting))}")
        if good:
            text += (f" (in the better direction at {', '.join(map(str, lasting_good))})" if lasting_good
                     else " (none in the better direction)")
        beyond = [int(k) for k in direct["lead"] if k > last]
        text += (f"; not beyond lead {last} among the leads analysed." if beyond else
                 f"; lead {last} is the longest lead analysed.")
    return text + " Points are estimates with 95% CIs; the dashed line is zero."


def moderators_text(report: Any) -> str | None:
    mods = report.tables.get("moderators")
    if mods is None:
        return None
    better = report.settings.get("outcome_better")
    sign_hint = {"lower": "a negative interaction with alliance_within makes the within effect more negative "
                          "(stronger in the better direction) as the moderator increases",
                 "higher": "a positive interaction with alliance_within makes the within effect more positive "
                           "(stronger in the better direction) as the moderator increases"}.get(
        better, "a negative interaction with alliance_within makes the within effect more negative as the "
                "moderator increases")
    return ("Each moderator gets its own model with its interactions with the within and between alliance; p values "
            f"are Benjamini-Hochberg adjusted over all interaction terms; {sign_hint}. "
            + moderators_result(report))


def moderators_result(report: Any) -> str:
    sig = report.significant_moderators()
    n = report.tables["moderators"]["moderator"].nunique()
    return (f"Moderators with an interaction significant after Benjamini-Hochberg adjustment: {', '.join(sig)} "
            f"(of {n})." if sig else f"No interaction of the {n} moderator(s) is significant after "
            "Benjamini-Hochberg adjustment.")


def heterogeneity_text(report: Any) -> str | None:
    absent = report.settings.get("heterogeneity_absent")
    if absent:
        return f"Heterogeneity of the within-patient effect was not estimated: {absent}"
    info = report.settings.get("heterogeneity")
    table = report.tables.get("heterogeneity")
    if not info or table is None:
        return None
    better = report.settings.get("outcome_better")
    stat = table.set_index("statistic")
    test = info["test"]
    p = float(test.get("p_value", np.nan))
    lrt = (f"likelihood-ratio test of the random slope: chi2 = {float(test.get('statistic', np.nan)):.2f}, "
           f"{p_text(p)}, against the {test.get('reference', 'reference distribution')}")
    if info.get("degenerate"):
        head = ("The random-slope fit is degenerate (a random SD ~ 0 or a correlation at +/-1): the variation of "
                f"the within effect between patients cannot be assessed in these data ({lrt}).")
    elif np.isfinite(p) and p < ALPHA:
        head = f"The within-patient effect differs between patients ({lrt})."
        if info.get("caveat"):
            head += " Caution: " + info["caveat"] + "."
        if info.get("degenerate_other"):
            head += (" Other variance parameters of this fit are at the boundary ("
                     + ", ".join(info["degenerate_other"]) + "); the slope's are not.")
    else:
        head = (f"The data cannot distinguish heterogeneity of the within-patient effect from none ({lrt}); the SD "
                "and share below are model quantities, not evidence that patients differ.")
    parts = [head]
    if info.get("degenerate"):
        parts.append("Its SD, share and patient classifications are therefore not interpreted.")
        return " ".join(parts) + _caution(report.settings.get("main_status"))
    sd = next((r for name, r in stat.iterrows() if str(name).startswith("random-slope SD")), None)
    if sd is not None:
        interval = (f" (95% CI {sd['conf_low']:.2f} to {sd['conf_high']:.2f})"
                    if np.isfinite(float(sd["conf_low"])) else " (no interval)")
        parts.append(f"Random-slope SD {float(sd['estimate']):.2f}{interval}"
                     + (f"; profile warnings: {'; '.join(info['profile_warnings'])}" if info["profile_warnings"]
                        else "") + ".")
    share = next((r for name, r in stat.iterrows() if str(name).startswith("share")), None)
    if share is not None:
        interval = (f" (95% CI {share['conf_low']:.0%} to {share['conf_high']:.0%})"
                    if np.isfinite(float(share["conf_low"])) else " (no interval available)")
        if better:
            what = f"an own within effect in the better direction ({better} {report.settings.get('outcome_name')})"
        else:
            what = "a negative own within effect (no direction of benefit was given)"
        parts.append(f"The model implies that {float(share['estimate']):.0%}{interval} of patients have {what}.")
    shrinkage = info.get("shrinkage", np.nan)
    spread = (f" (their SD is {shrinkage:.0%} of the model's slope SD)" if shrinkage is not None
              and np.isfinite(shrinkage) else "")
    parts.append(f"Patient-specific slopes (BLUPs) are shrunken toward the mean effect{spread}: they spread less "
                 "than the patients' own effects and patients with few sessions are pulled in the most, so "
                 "patients are classified by their own 95% intervals, never by the sign of their BLUP alone.")
    patients = report.tables.get("patient_slopes")
    if patients is not None and "category" in patients:
        counts = patients["category"].value_counts()
        parts.append("Patients by their interval: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + ".")
    status = report.settings.get("main_status")
    return " ".join(parts) + _caution(status)


def lead_ins(report: Any) -> dict[str, str]:
    """The lead-in paragraph of each section."""
    text: dict[str, str] = {}
    a = [s for s in (within_sentence(report), between_sentence(report)) if s]
    if a:
        text["a"] = " ".join(a)
    for key, func in (("b", duration_text), ("c", moderators_text), ("h", heterogeneity_text)):
        value = func(report)
        if value:
            text[key] = value
    text["d"] = ("Convergence, singularity and degeneracy of every fit, the main model's residual autocorrelation "
                 "(pairs matched by session number within patient), and a comparison with AR(1) residuals on "
                 "converged fits of the same model.")
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
        flag = f"  [fit {short_status(row['status'])}]" if isinstance(row.get("status"), str) and row["status"] else ""
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
                    status = getattr(r, "status", "")
                    flagged = isinstance(status, str) and bool(status)
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
    quotes = [within_sentence(report), between_sentence(report)]
    duration = duration_text(report)
    if duration and "How long it lasts" in duration:
        quotes.append(duration[duration.index("How long it lasts"):].split(" Points are")[0])
    het = heterogeneity_text(report)
    if het:
        first = het.split(". ")[0].rstrip(".") + "."
        caution = het[het.index("[Caution"):] if "[Caution" in het else ""
        quotes.append(f"{first} {caution}".strip())
    if report.tables.get("moderators") is not None:
        quotes.append(moderators_result(report))
    return [q for q in quotes if q]
