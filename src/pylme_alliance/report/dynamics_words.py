"""The report's sentences about the reciprocal dynamics (issue 19): the symptom -> alliance
path, the robustness line that sets the headline within effect beside the RI-CLPM's
alliance -> outcome path, and whether the duration table's total effects come from the
fitted dynamics.

Written from ``report.tables["reciprocal_effects"]`` (the RI-CLPM's lagged paths) and
``report.settings["reciprocal"]``; a report without them (``reciprocal=False``, a panel
too short for the waves, a report made before) gets none of these sentences.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .words import ALPHA, caution, ci_words, decimals, effect_row, p_text, sig, when_words

__all__ = ["path_row", "from_dynamics", "reverse_sentence", "robustness_sentence", "summary_reciprocal", "agree"]

#: what issue 19 measured on data with patients' own trajectories and feedback
MEASURED = ("issue 19 measured the multilevel within effect 21% short on such data, the RI-CLPM's 4% short")


def path_row(report: Any, direction_name: str) -> pd.Series | None:
    """One lagged path of the RI-CLPM ("alliance->outcome", "outcome->alliance"), or None."""
    table = report.tables.get("reciprocal_effects")
    if table is None or "direction" not in table:
        return None
    rows = table[table["direction"] == direction_name]
    return rows.iloc[0] if len(rows) else None


def from_dynamics(report: Any) -> bool:
    """Whether the duration table's total effects at leads >= 1 are the RI-CLPM's impulse responses."""
    table = report.tables.get("duration")
    if table is None or "estimand" not in table or "effect" not in table:
        return False
    total = table[(table["effect"] == "total") & (table["lead"] > 0)]
    return bool(len(total)) and total["estimand"].astype(str).str.contains("impulse response").all()


def _waves(report: Any) -> str:
    info = report.settings.get("reciprocal") or {}
    if not info:
        return "RI-CLPM"
    return f"RI-CLPM, sessions 1..{info.get('waves')} as waves, {info.get('n_patients')} patients"


def _ci(row: Any) -> str:
    d = decimals(row["estimate"], row["conf_low"], row["conf_high"])
    return f"{row['estimate']:.{d}f} [95% CI {row['conf_low']:.{d}f}, {row['conf_high']:.{d}f}]"


def reverse_sentence(report: Any) -> str | None:
    """Objective (a), the other direction: symptom -> alliance one session later."""
    row = path_row(report, "outcome->alliance")
    if row is None:
        return None
    name = report.settings.get("outcome_name", "the outcome")
    d = decimals(row["estimate"], row["conf_low"], row["conf_high"])
    words = "higher" if row["estimate"] > 0 else "lower"
    return (f"The other direction, {name} -> alliance ({_waves(report)}): in sessions where a patient's {name} "
            f"was one point above the patient's own level, the alliance {when_words(1)} was "
            f"{abs(row['estimate']):.{d}f} points {words} (95% CI {row['conf_low']:.{d}f} to "
            f"{row['conf_high']:.{d}f}; {p_text(row['p_value'])}; {sig(row['p_value'])}; standardised "
            f"{row['std_estimate']:.3f}), the alliance at that session held constant." + caution(row.get("status")))


def agree(first: Any, second: Any) -> bool:
    """Two estimates agree when each lies inside the other's 95% interval."""
    return bool(first["conf_low"] <= second["estimate"] <= first["conf_high"]
                and second["conf_low"] <= first["estimate"] <= second["conf_high"])


def robustness_sentence(report: Any) -> str | None:
    """The headline within effect beside the RI-CLPM's alliance -> outcome path, and what a
    difference would mean (only when the headline is the next session's outcome)."""
    within, path = effect_row(report, "alliance_within"), path_row(report, "alliance->outcome")
    if within is None or path is None or pd.isna(within.get("lead")) or int(within["lead"]) != 1:
        return None
    name = report.settings.get("outcome_name", "the outcome")
    text = (f"Robustness: the RI-CLPM (patients' stable levels set apart, both directions at once) puts "
            f"alliance -> {name} {when_words(1)} at {ci_words(path)}, the multilevel model at {ci_words(within)}: ")
    if agree(within, path):
        text += ("they agree (each inside the other's interval), so neither patients' own trajectories nor "
                 "symptom -> alliance feedback shows a bias of the multilevel estimate.")
    else:
        text += ("they differ (one outside the other's interval): patients' own trajectories over treatment or "
                 f"symptom -> alliance feedback bias the person-mean-centred multilevel model ({MEASURED}); "
                 "trust the RI-CLPM's (which also has waves by session number and no therapist level).")
    return text + caution(path.get("status"))


def summary_reciprocal(report: Any, figures: dict[str, int]) -> str | None:
    """The summary's line of both directions from the RI-CLPM."""
    back, forth = path_row(report, "outcome->alliance"), path_row(report, "alliance->outcome")
    if back is None or forth is None:
        return None
    name = report.settings.get("outcome_name", "the outcome")
    within = effect_row(report, "alliance_within")
    beside = ""
    if within is not None and not pd.isna(within.get("lead")) and int(within["lead"]) == 1:
        beside = ("; it agrees with the multilevel within effect" if agree(within, forth) else
                  "; it differs from the multilevel within effect (see (a): the RI-CLPM's is the one to trust)")
    return (f"(a) Both directions ({_waves(report)}): {name} -> alliance {when_words(1)} {_ci(back)}, "
            f"{p_text(back['p_value'])}; alliance -> {name} {_ci(forth)}, {p_text(forth['p_value'])}{beside}."
            + caution(forth.get("status")))


def lasting(rows: pd.DataFrame, better: str | None, good: str) -> tuple[list[int], str]:
    """The positive leads whose effect is distinguishable from zero, and their direction in
    words ("" when no direction of benefit is given)."""
    rows = rows[rows["lead"] > 0]
    found = [int(r.lead) for r in rows.itertuples() if np.isfinite(r.p_value) and r.p_value < ALPHA]
    if not good or not found:
        return found, ""
    estimates = dict(zip(rows["lead"].astype(int), rows["estimate"]))
    good_leads = [k for k in found if (estimates[k] < 0) == (good == "negative")]
    if good_leads == found:
        return found, "in the better direction"
    return found, ("in the worse direction" if not good_leads else
                   f"in the better direction at lead(s) {', '.join(map(str, good_leads))}")
