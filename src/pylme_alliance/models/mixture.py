"""The null distribution of a likelihood-ratio test of variance parameters.

Testing a variance at 0 puts the null on the boundary of the parameter space: the LR
statistic follows a 50:50 mixture of chi2(q - 1) and chi2(q) (Self & Liang 1987; Stram
& Lee 1994), not chi2(q). Used by the random-slope test and by the removal of random
intercepts the data do not support (:mod:`.boundary`).
"""
from __future__ import annotations

import numpy as np
from scipy import stats


def mixture_p_value(statistic: float, q: int) -> float:
    """p-value of an LR statistic under 0.5*chi2(q-1) + 0.5*chi2(q) (chi2(0): mass at 0)."""
    if not np.isfinite(statistic) or q < 1:
        return float("nan")
    low = (1.0 if statistic <= 0 else 0.0) if q == 1 else float(stats.chi2.sf(statistic, q - 1))
    return float(0.5 * low + 0.5 * stats.chi2.sf(statistic, q))


def mixture_text(q: int) -> str:
    """The mixture in words, e.g. ``0.5*chi2(1) + 0.5*chi2(2)``."""
    return f"0.5*chi2({q - 1}) + 0.5*chi2({q})"
