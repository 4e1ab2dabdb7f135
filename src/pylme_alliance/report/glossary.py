"""The report's glossary: what each number estimates (once per term, from the tables'
``estimand`` columns) and the statistical words the tables and the appendix use.

The tables keep an ``estimand`` on every row (CSV, results.json); the documents show it
here, once, under the short name the compact tables use (:mod:`.compact`).
"""
from __future__ import annotations

import re
from typing import Any

import pandas as pd

from .compact import TERM_WORDS

#: statistical words, in plain language (the prose avoids them; tables and the appendix
#: may use them)
WORDS: list[tuple[str, str]] = [
    ("Lead", "how many sessions after the alliance rating the outcome was measured (lead 1: the next session; "
             "lead 0: the same session)."),
    ("95% CI, p", "the 95% confidence interval of an estimate and its two-sided p value; \"p adjusted\" is "
                  "adjusted for testing many interactions (Benjamini-Hochberg)."),
    ("n (sessions / patients)", "the sessions (rows) and patients the estimate comes from."),
    ("Standardised", "the estimate in standard deviations: within-patient SDs for within effects, SDs over "
                     "patients for between effects."),
    ("Benjamini-Hochberg", "an adjustment of p values over many tests that keeps the expected share of false "
                           "findings among the significant ones at 5%."),
    ("Johnson-Neyman region", "the moderator values at which the within-patient effect is significantly different "
                              "from zero (not adjusted for multiple testing)."),
    ("Random slope (tau)", "lets each patient have an own within-patient effect; tau, its SD over patients, says "
                           "how much patients differ."),
    ("BLUP, shrinkage", "a patient's own effect as the model predicts it: pulled toward the mean effect (shrunken), "
                        "the more so the fewer sessions the patient has."),
    ("Phi(-beta/tau)", "the model's share of patients whose own effect lies below 0, for a normal spread of effects "
                       "with mean beta and SD tau (Phi: the normal distribution function)."),
    ("Likelihood-ratio test of a variance", "compares the fits with and without the random slope; as a variance "
                                            "cannot be below 0, its p value uses a 50:50 mixture of chi-square "
                                            "distributions; REML: the restricted likelihood lme4 fits by default."),
    ("Singular (boundary) fit", "a fit with a random-effect SD estimated at 0 or a correlation at +/-1; the fixed "
                                "effects stand, the variance components at the boundary are not interpretable."),
    ("Nickell bias", "with few sessions per patient, the slope of the lagged outcome (a control) is biased "
                     "downward by about -(1+rho)/(T-1) (T sessions, rho the outcome's autocorrelation); it is read as "
                     "a control, not as the autocorrelation."),
    ("Mundlak term", "a patient's mean of a time-varying control, entered as a fixed effect, so that the control "
                     "works within patients."),
    ("Satterthwaite df", "approximate degrees of freedom of a mixed-model t test (lmerTest)."),
    ("AIC, BIC", "information criteria: lower is better when comparing fits of the same data."),
    ("AR(1) residuals", "residuals correlated from one session to the next (correlation phi)."),
]


def general(text: Any) -> str:
    """An estimand with its lead generalised ("2 session(s) later" -> "k sessions later")."""
    text = " ".join(str(text).split())
    return re.sub(r"\b\d+ session\(s\) later", "k sessions later (k: the lead)", text)


def effect_entries(tables: dict[str, pd.DataFrame]) -> list[tuple[str, str]]:
    """One entry per effect the results tables show, with its estimand."""
    entries: dict[str, str] = {}
    effects = tables.get("alliance_effects")
    if effects is not None and {"term", "estimand"} <= set(effects.columns):
        for term, estimand in zip(effects["term"], effects["estimand"]):
            if isinstance(estimand, str) and estimand:
                entries.setdefault(TERM_WORDS.get(str(term), str(term)), general(estimand))
    duration = tables.get("duration")
    if duration is not None and {"term", "effect", "estimand", "lead"} <= set(duration.columns):
        within = duration[duration["term"] == "alliance_within"].sort_values("lead", ascending=False)
        for kind in ("total", "direct"):
            rows = within[within["effect"] == kind]
            if len(rows):  # the longest lead says most (at lead 1 direct and total coincide)
                entries.setdefault(f"{kind.capitalize()} effect (duration table)", general(rows["estimand"].iloc[0]))
    if tables.get("moderators") is not None:
        entries["Interaction (moderators table)"] = (
            "change in the within- (or between-) patient effect per unit of the moderator (or for this level "
            "against the reference level), conditional on the other terms.")
        entries["Simple slope"] = ("the within- (or between-) patient effect at the moderator value shown (-1 SD, "
                                   "mean, +1 SD, or a level), other moderators at their centre or reference.")
    for name, label in (("johnson_neyman", "Johnson-Neyman table"), ("patient_slopes", "Own within effect"),
                        ("residual_acf", "Residual autocorrelation"), ("ar1_comparison", "AR(1) check")):
        table = tables.get(name)
        if table is not None and "estimand" in table.columns and len(table):
            entries.setdefault(label, general(table["estimand"].iloc[0]))
    return list(entries.items())


def statistic_entries(tables: dict[str, pd.DataFrame]) -> list[tuple[str, str]]:
    """The heterogeneity statistics, each with its estimand."""
    table = tables.get("heterogeneity")
    if table is None or not {"statistic", "estimand"} <= set(table.columns):
        return []
    out: dict[str, str] = {}
    for name, estimand in zip(table["statistic"], table["estimand"]):
        name = re.sub(r"^patients (clearly \w+|uncertain|no interval).*", "patients <category>", str(name))
        if isinstance(estimand, str) and estimand:
            out.setdefault(name, general(estimand))
    return list(out.items())


def term_entries(tables: dict[str, pd.DataFrame]) -> list[tuple[str, str]]:
    """The main model's fixed-effect terms (appendix A), each with its estimand."""
    table = tables.get("fixed_effects")
    if table is None or not {"term", "estimand"} <= set(table.columns):
        return []
    return list({str(t): general(e) for t, e in zip(table["term"], table["estimand"]) if isinstance(e, str)}.items())


def entries(report: Any) -> list[tuple[str, list[tuple[str, str]]]]:
    """(group title, [(term, definition)]) for the glossary, each term once."""
    groups = [("What the results estimate", effect_entries(report.tables)),
              ("Heterogeneity statistics", statistic_entries(report.tables)),
              ("Model terms (appendix)", term_entries(report.tables)),
              ("Statistical words", WORDS)]
    seen: dict[str, str] = {}
    out = []
    for title, items in groups:
        kept = []
        for term, words in items:
            if words in seen:  # said once: a model term that is a results effect points to it
                if seen[words] != term:
                    kept.append((term, f"see \"{seen[words]}\"."))
                continue
            seen[words] = term
            kept.append((term, words))
        if kept:
            out.append((title, kept))
    return out
