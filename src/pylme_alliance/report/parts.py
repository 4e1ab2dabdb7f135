"""The independent parts of :func:`~pylme_alliance.report.analyze.analyze`.

After the main model, the report's other fits (the between-patient level model, each
lead, each moderator, the heterogeneity test and interval, each fit of the AR(1) check)
do not depend on each other. Each is a :class:`Part`, run by :func:`run_part` in this
process or in an executor's worker, and each returns plain tables, rows and notes
(never an R object), so the report is assembled from the same values wherever its
parts ran.
"""
from __future__ import annotations

import inspect
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..analyses.between import between_effect
from ..analyses.duration import COLUMNS as DURATION_COLUMNS
from ..analyses.duration import lead_model, lead_rows
from ..analyses.duration_total import impulse_rows, outcome_ratings
from ..analyses.moderation import moderator_rows
from ..analyses.reciprocal import reciprocal
from ..errors import PylmeError
from ..models import diagnostics
from ..models.diagnostics import fit_status
from ..models.model import AllianceModel
from ..panel.prepare import AlliancePanel
from . import tables as report_tables

__all__ = ["GRID_POINTS", "Part", "run_part", "moderator_grid", "heterogeneity_of", "flag_rows"]

GRID_POINTS = 41

# Rough relative cost of each kind of part on the bundled trial (seconds of R time):
# parts are handed to an executor longest first, so two workers finish together.
COST = {"ar1": 3.0, "reciprocal": 1.5, "heterogeneity": 1.0, "moderator": 0.6, "lead": 0.3, "level": 0.2}


@dataclass(frozen=True)
class Part:
    """One independent piece of analyze().

    Attributes
    ----------
    kind : {"level", "lead", "moderator", "heterogeneity", "ar1", "reciprocal"}
    name : str
        The step's name in the progress bar and the timings ("lead 2 of 3").
    panel : AlliancePanel
    model : AllianceModel, optional
        The model the part fits (for "heterogeneity": the main model; for "ar1": the
        main model, refitted on the check's engine).
    detail : object
        What the kind needs besides: lead -> (lead, effect, model options); moderator ->
        its name (``model`` is the main model);
        ar1 -> the residual structure; level -> (therapist, engine); heterogeneity ->
        (outcome_better, the main fit's name); reciprocal -> the leads of the duration
        table (the impulse responses go to the largest, at least 3).
    fit : MixedFit, optional
        The main fit itself, for "heterogeneity" run in this process; it holds an R
        object, so it is never pickled: a worker refits ``model`` instead (same data,
        same model, same numbers).
    """

    kind: str
    name: str
    panel: AlliancePanel
    model: AllianceModel | None = None
    detail: Any = None
    fit: Any = field(default=None, compare=False, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["fit"] = None  # an R object does not travel; the worker refits
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def run_part(part: Part) -> dict[str, Any]:
    """Run one part here and return its picklable result.

    Always present: ``name``, ``notes`` (list of str), ``fits`` (list of (name, row of
    the fits table)), ``seconds`` and ``cpu_seconds`` (time the part took in the process
    that ran it) and ``pid``. Kind-specific keys: level -> ``level``; lead -> ``rows``;
    moderator -> ``rows``, ``drawing``; heterogeneity -> ``het``, ``tables``,
    ``patients``, ``summary``; ar1 -> ``row``; reciprocal -> ``reciprocal`` (the
    :class:`~pylme_alliance.analyses.reciprocal.ReciprocalFit`, detached: no R object)
    and ``dynamics`` (the duration table's total rows from its impulse responses).
    """
    start, cpu = time.perf_counter(), time.process_time()
    # R's warnings are kept on each fit (the fits table); do not also print them
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = _RUNNERS[part.kind](part)
    out.setdefault("notes", [])
    out.setdefault("fits", [])
    out.update(name=part.name, seconds=time.perf_counter() - start, cpu_seconds=time.process_time() - cpu,
               pid=os.getpid())
    return out


def flag_rows(fits: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The fits-table rows of these fits (:func:`diagnostics.fit_flags`), as plain dicts."""
    table = diagnostics.fit_flags(fits)
    return [(str(name), row) for name, row in zip(fits, table.to_dict("records"))]


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _level(part: Part) -> dict[str, Any]:
    therapist, engine = part.detail
    try:
        level = between_effect(part.panel, therapist=therapist, engine=engine)
    except PylmeError as exc:
        return {"notes": [f"Between-patient level model not available: {_one_line(exc)}"]}
    return {"level": level, "notes": [f"Between-patient level model: {n}" for n in level.attrs.get("notes", ())]}


def _lead(part: Part) -> dict[str, Any]:
    k, effect, options = part.detail
    try:
        fit = lead_model(k, effect=effect, **options).fit(part.panel)
    except PylmeError as exc:  # one lead's failure must not lose the report
        return {"notes": [f"Duration ({effect} effect, lead {k}): the model failed ({_one_line(exc)})."]}
    rows = lead_rows(fit)
    rows["status"] = diagnostics.term_statuses(fit, rows["term"])
    return {"rows": rows, "fits": flag_rows({f"duration {effect} (lead {k})": fit})}


def moderator_grid(panel: AlliancePanel, info: Any) -> tuple[np.ndarray, np.ndarray]:
    """Observed patient-level values (original scale) and an even grid over their range."""
    data = panel.data
    values = data[info.column].astype(float) + float(info.mean)
    per_patient = values.groupby(data[panel.roles["patient"]], observed=True).first().to_numpy(dtype=float)
    per_patient = per_patient[np.isfinite(per_patient)]
    low, high = float(per_patient.min()), float(per_patient.max())
    if high <= low:
        high = low + 1.0
    return per_patient, np.linspace(low, high, GRID_POINTS)


def _moderator(part: Part) -> dict[str, Any]:
    name = part.detail
    try:
        fit = part.model.replace(moderators=(name,)).fit(part.panel)
    except PylmeError as exc:
        return {"notes": [f"Moderator {name}: the model failed ({_one_line(exc)})."]}
    notes: list[str] = []
    rows = moderator_rows(fit, name)
    rows["status"] = diagnostics.term_statuses(fit, rows["term"])
    info = part.panel.moderators[name]
    drawing: dict[str, Any] = {"name": name, "kind": info.kind, "status": fit_status(fit)}
    if info.kind == "numeric":
        observed, grid = moderator_grid(part.panel, info)
        drawing.update(slopes=fit.simple_slopes(name, at=grid), observed=observed)
        try:
            drawing["jn"] = fit.johnson_neyman(name)
        except PylmeError as exc:
            notes.append(f"Johnson-Neyman for {name} not available: {exc}")
    else:
        drawing["slopes"] = fit.simple_slopes(name)
    return {"rows": rows, "drawing": drawing, "notes": notes, "fits": flag_rows({f"moderator {name}": fit})}


def heterogeneity_of(fit: Any, outcome_better: str | None, draws: int | None = None) -> Any:
    """fit.heterogeneity() in the user's direction, whatever the version of its options."""
    parameters = inspect.signature(fit.heterogeneity).parameters
    options: dict[str, Any] = {}
    if draws is not None and "draws" in parameters:
        options["draws"] = draws
    if "outcome_better" in parameters:
        options["outcome_better"] = outcome_better
    elif "beneficial" in parameters and parameters["beneficial"].default is not None:
        # an older heterogeneity() that always names a direction: give the user's, or
        # "negative" for the report to relabel as neutral
        options["beneficial"] = "positive" if outcome_better == "higher" else "negative"
    return fit.heterogeneity(**options)


def _heterogeneity(part: Part) -> dict[str, Any]:
    outcome_better, main_name, draws = part.detail
    fit = part.fit if part.fit is not None else part.model.fit(part.panel)
    try:
        het = heterogeneity_of(fit, outcome_better, draws)
    except PylmeError as exc:
        return {"notes": [f"Heterogeneity not available: {exc}"]}
    fits: list[tuple[str, dict[str, Any]]] = []
    test = report_tables.read_test(het)
    if test is None:  # the fit's heterogeneity() has no test: compare with the no-slope fit
        null = fit.model.replace(random_slope=False).fit(part.panel)
        fits = flag_rows({f"{main_name}, no random slope (slope test)": null})
        test = report_tables.slope_lrt(fit, null)
    profile = [" ".join(str(w).split()) for w in getattr(het, "warnings", ()) or ()]
    # the slope's own boundary decides whether heterogeneity can be judged; other
    # parameters at the boundary (a patient intercept absorbed by the patient's mean
    # outcome) are reported beside it
    verdict = getattr(het, "verdict", None)
    slope_bad = verdict == "not estimated" if verdict is not None else diagnostics.slope_degenerate(fit)
    other = [t for t in diagnostics.boundary_terms(fit) if "alliance_within" not in t]
    state = {"test": test, "profile_warnings": [w for w in profile if report_tables._is_interval_warning(w)],
             "degenerate": slope_bad, "degenerate_other": other,
             "shrinkage": float(getattr(het, "shrinkage", np.nan)),
             "caveat": getattr(het, "caveat", ""), "verdict": verdict,
             "detectable_sd": float(getattr(het, "detectable_sd", np.nan)),
             "statement": het.statement() if hasattr(het, "statement") else ""}
    tables = {"heterogeneity": report_tables.heterogeneity_table(het, test, fit, outcome_better, profile),
              "patient_slopes": report_tables.patient_categories(het.patients, outcome_better,
                                                                 assessable=not slope_bad)}
    return {"het": state, "tables": tables, "patients": het.patients, "summary": het.summary,
            "status": fit_status(fit), "fits": fits}


def _ar1(part: Part) -> dict[str, Any]:
    row, notes, fits = diagnostics.ar1_row(part.panel, part.model, part.detail)
    return {"row": row, "notes": notes, "fits": flag_rows(fits)}


#: the name of the RI-CLPM fit in the fits table
RECIPROCAL_FIT = "reciprocal dynamics (RI-CLPM)"


def reciprocal_status(fit: Any) -> str:
    """A ReciprocalFit's state in the words of the fits' ``status`` ("" when fine)."""
    problems = [] if fit.converged else ["did not converge"]
    return "; ".join([*problems, *(" ".join(str(p).split()) for p in fit.problems)])


def _reciprocal(part: Part) -> dict[str, Any]:
    leads = [k for k in part.detail if k > 0]
    try:
        fit = reciprocal(part.panel, leads=max([3, *leads]))
    except PylmeError as exc:  # e.g. too few ratings per wave: the report goes on without it
        return {"notes": [f"Reciprocal dynamics (RI-CLPM) not fitted: {_one_line(exc)}"]}
    status = reciprocal_status(fit)
    rows = impulse_rows(fit, leads, DURATION_COLUMNS, n_ratings=outcome_ratings(part.panel, fit.waves))
    rows["status"] = status
    row = {"model": RECIPROCAL_FIT, "engine": "lavaan", "lead": np.nan, "moderator": None,
           "nobs": fit.n_patients, "converged": fit.converged, "singular": not fit.admissible,
           "degenerate": not fit.admissible, "status": status or "ok", "n_warnings": len(fit.warnings),
           "warnings": " | ".join(" ".join(str(w).split()) for w in fit.warnings)}
    chosen = "chosen by waves=None: the last session at least half the patients reach, at most 10"
    problems = "".join(f"; {' '.join(str(p).split())}" for p in fit.problems)
    note = (f"Reciprocal dynamics: an RI-CLPM (lavaan, FIML) of the alliance and the outcome in both directions, "
            f"{fit.n_patients} patients, sessions 1..{fit.waves} as waves ({chosen}); no therapist level{problems}.")
    return {"reciprocal": fit.detach(), "dynamics": rows, "fits": [(RECIPROCAL_FIT, row)], "notes": [note]}


_RUNNERS: dict[str, Callable[[Part], dict[str, Any]]] = {
    "level": _level, "lead": _lead, "moderator": _moderator, "heterogeneity": _heterogeneity, "ar1": _ar1,
    "reciprocal": _reciprocal}


def flags_table(rows: list[tuple[str, dict[str, Any]]]) -> pd.DataFrame:
    """The fits table from rows in report order."""
    return pd.DataFrame([row for _, row in rows], columns=diagnostics.FIT_COLUMNS)
