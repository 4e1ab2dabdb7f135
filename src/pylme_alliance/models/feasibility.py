"""How long a fit will take and how much memory it needs, from rows x engine.

The coefficients come from ``benchmarks/scale.py`` (benchmarks/README.md, "scale"):
prepare() + the default alliance model (lead 1, therapist nested, random slope, iid
residuals) on simulated trials of 2,500 to 50,000 patients with 12 sessions each, one
child process per size, on this project's 2-CPU machine (shared, so times are on the
high side). Per engine, the fit's CPU time is ``a * rows ** b`` (log-log least squares
over the measured sizes; rows = the panel's session rows) and its peak memory
``base + per_row * rows`` (R and Python included). Measured on 22,000 to 451,000 rows;
beyond that the numbers are extrapolations, and the benchmarks README says which.

Not measured, so not modelled: correlated residuals (the issue's single measurements at
124k rows suggest glmmTMB AR(1) takes about 1.6x its iid fit, nlme AR(1) about the
same as iid), crossed therapists, moderators, other data shapes.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import PylmeWarning

__all__ = ["COEFFICIENTS", "FeasibilityWarning", "Estimate", "estimate", "analyze_estimate", "warn_if_slow",
           "WARN_SECONDS"]

#: engine -> (a, b, base GB, GB per row): seconds = a * rows ** b, GB = base + per_row * rows.
#: From benchmarks/scale.py (2-CPU machine, R 4.2.2, lme4 1.1-31): 2,500-50,000 patients
#: (22k-451k rows) for every engine.
COEFFICIENTS: dict[str, tuple[float, float, float, float]] = {
    "lme4": (3.905e-05, 1.071, 0.412, 1.634e-06),
    "nlme": (2.578e-04, 1.047, 0.434, 1.187e-06),
    "glmmtmb": (1.851e-04, 1.062, 0.462, 4.339e-06),
}
#: analyze() warns before it starts when its fits are estimated to take longer than this.
WARN_SECONDS = 600.0


class FeasibilityWarning(PylmeWarning):
    """The analysis is estimated to take long (or more memory than the machine may have)."""


@dataclass(frozen=True)
class Estimate:
    """Estimated CPU seconds and peak memory (GB) of one fit or a set of fits."""

    seconds: float
    gigabytes: float
    detail: str = ""


def estimate(rows: int, engine: str, *, coefficients: Mapping[str, tuple[float, float, float, float]] | None = None
             ) -> Estimate:
    """CPU seconds and peak GB of one default-model fit of ``rows`` session rows.

    Parameters
    ----------
    rows : int
        Session rows of the panel.
    engine : {"lme4", "nlme", "glmmtmb"}
        Other engines (statsmodels) have no measured coefficients: the estimate is NaN.
    coefficients : mapping, optional
        Replaces :data:`COEFFICIENTS` (for another machine's measurements).
    """
    table = COEFFICIENTS if coefficients is None else coefficients
    key = str(engine).lower()
    if key not in table or rows <= 0:
        return Estimate(float("nan"), float("nan"), f"no measured coefficients for {engine}")
    a, b, base, per_row = table[key]
    return Estimate(a * float(rows) ** b, base + per_row * float(rows), f"{key}, {rows:,} rows")


def analyze_estimate(rows: int, *, engine: str, n_fits: int, ar1_engine: str | None,
                     coefficients: Mapping[str, tuple[float, float, float, float]] | None = None) -> Estimate:
    """The fits of one analyze(): ``n_fits`` on ``engine`` plus, with the AR(1) check, two
    on ``ar1_engine``. Memory is the largest single fit's (they run one at a time per
    process)."""
    one = estimate(rows, engine, coefficients=coefficients)
    parts = [(f"{n_fits} {engine} fit(s)", n_fits * one.seconds, one.gigabytes)]
    if ar1_engine is not None:
        check = estimate(rows, ar1_engine, coefficients=coefficients)
        parts.append((f"2 {ar1_engine} fits of the AR(1) check", 2 * check.seconds, check.gigabytes))
    seconds = sum(s for _, s, _ in parts)
    gigabytes = max(g for _, _, g in parts)
    detail = "; ".join(f"{name} ~{s / 60:.0f} min" for name, s, _ in parts)
    return Estimate(seconds, gigabytes, detail)


def warn_if_slow(rows: int, *, engine: str, n_fits: int, ar1_engine: str | None, threshold: float = WARN_SECONDS,
                 coefficients: Any = None, stacklevel: int = 3) -> Estimate:
    """Warn (:class:`FeasibilityWarning`) when :func:`analyze_estimate` exceeds ``threshold`` seconds."""
    found = analyze_estimate(rows, engine=engine, n_fits=n_fits, ar1_engine=ar1_engine, coefficients=coefficients)
    if found.seconds > threshold:
        warnings.warn(
            f"this analysis of {rows:,} session rows is estimated to take about {found.seconds / 60:.0f} minutes of "
            f"CPU time and {found.gigabytes:.1f} GB of memory ({found.detail}; measured coefficients, see "
            "pylme_alliance.models.feasibility and benchmarks/README.md 'scale'). An executor= runs the fits "
            "in parallel; checks=() skips the AR(1) check.",
            FeasibilityWarning, stacklevel=stacklevel)
    return found
