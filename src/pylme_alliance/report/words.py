"""The small words every sentence of the report uses: p values, "k sessions later",
the direction of an effect in the user's words, the caution of a flagged fit.

Shared by :mod:`.wording` (the objectives) and :mod:`.dynamics_words` (the reciprocal
dynamics), so neither imports the other's sentences.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from . import status as fit_statuses
from .tables import direction_words

__all__ = ["ALPHA", "effect_row", "p_digits", "p_text", "caution", "short_status", "when_words", "direction",
           "sig", "decimals", "ci_words"]

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


def caution(status: Any) -> str:
    """A short caution for a fit with a REAL problem; nothing for what the design
    explains (:mod:`.status`): that is said once in the methods."""
    words = fit_statuses.short(status)
    return f" [Caution: this estimate comes from a fit that is flagged: {words}; see the appendix.]" if words else ""


def short_status(status: Any) -> str:
    """"singular (SD of ... ~ 0)" -> "singular", real problems only ("" for a status the
    design explains): the details are in the fits table."""
    return fit_statuses.short(status)


def when_words(lead: int) -> str:
    """"in the same session", "1 session later", "3 sessions later"."""
    if lead == 0:
        return "in the same session"
    return f"{lead} session{'s' if lead != 1 else ''} later"


def direction(estimate: float, better: str | None) -> str:
    words = direction_words(better)
    return words["negative"] if estimate < 0 else words["positive"]


def sig(p: float) -> str:
    return "distinguishable from zero" if p < ALPHA else "not distinguishable from zero"


def decimals(*values: Any) -> int:
    """Decimals that show an estimate and its interval: 2 for effects of 0.1 or more, one
    more per decade below (a symptom -> alliance path of -0.0004 per point is not "-0.00")."""
    sizes = [abs(float(v)) for v in values if v is not None and np.isfinite(float(v)) and float(v) != 0]
    largest = max(sizes, default=1.0)
    return 2 if largest >= 0.1 else min(6, 1 - math.floor(math.log10(largest)))


def ci_words(row: Any) -> str:
    """"-1.40 (95% CI -2.67 to -0.12)" with decimals that show the interval."""
    d = decimals(row["estimate"], row["conf_low"], row["conf_high"])
    return f"{row['estimate']:.{d}f} (95% CI {row['conf_low']:.{d}f} to {row['conf_high']:.{d}f})"
