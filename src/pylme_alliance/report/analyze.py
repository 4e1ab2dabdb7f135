"""analyze(): the whole alliance-outcome analysis (objectives a, b, c, heterogeneity and
diagnostics) in one call, returned as a :class:`~pylme_alliance.report.report.Report`.

The pipeline, one named step each: :func:`~.plan.make_plan` (arguments -> what runs) ->
:func:`fit_main` (the main model) -> :func:`run_parts` (the independent fits, here or on
an executor) -> :mod:`.assemble` (tables, figures, notes) -> :class:`Report`.
"""
from __future__ import annotations

import time
import warnings as _warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .. import executors
from ..errors import warnings_once
from ..models import diagnostics, feasibility
from ..models.calibration import DRAWS
from ..panel.prepare import AlliancePanel
from ..progress import Counter
from . import assemble, describe, figures, provenance
from .parts import COST, run_part
from .plan import CHECKS, Plan, Step, executor_name, make_plan, part_steps
from .report import SECTIONS, Report

__all__ = ["analyze", "planned_files", "fit_main", "run_parts"]

FIGURES = ("duration", "duration_direct", "patient_slopes", "residual_acf")


def planned_files(moderators: Iterable[Any] = ()) -> list[str]:
    """The files a report of :func:`analyze` with these moderators may write (for checking
    an output directory before the work)."""
    tables = {name: None for _, _, names, _ in SECTIONS for name in names}
    figs = {name: None for name in FIGURES}
    figs.update({f"simple_slopes_{m}": None for m in moderators})
    return Report(tables=tables, figures=figs).file_names()  # type: ignore[arg-type]


@warnings_once
def analyze(panel: AlliancePanel, *, leads: Iterable[int] = (1, 2, 3), moderators: Iterable[Any] = (),
            engine: str = "lme4", residual: str = "iid", therapist: str | None = None,
            random_slope: Any = "auto", control_outcome: Any = "decomposed", prior_outcome: Any = "auto",
            progress: bool = True, source: str | Path | None = None,
            command: Sequence[str] | None = None, executor: Any = None,
            checks: Iterable[str] = CHECKS, reciprocal: bool = True, slope_draws: int = DRAWS) -> Report:
    """Run the alliance-outcome analysis and return a :class:`Report`.

    Every number the report states comes with what it estimates (an ``estimand`` column)
    and the state of the fit it comes from (``status``); the texts use the outcome
    direction given to :func:`prepare` (``outcome_better``) and stay neutral without it.

    Parameters
    ----------
    panel : AlliancePanel
        From :func:`pylme_alliance.prepare`, with ``leads`` covering ``leads`` and
        ``moderators`` covering ``moderators``.
    leads : iterable of int
        Leads for the duration analysis (0 = the concurrent association); the main model
        uses lead 1 (or the first positive lead). A lead where more than half of the
        patients keep fewer than 2 rows is skipped with a note.
    moderators : iterable of str
        Moderators to test, one model each.
    engine, residual : str
        As in :class:`AllianceModel`.
    therapist : {"nested", "crossed", "none"}, optional
        Default: "none" without a therapist column, "crossed" when some patient saw
        several therapists, else "nested". An engine that cannot express the choice
        raises :class:`~pylme_alliance.EngineCannotExpress`.
    random_slope : {"auto", True, False}
        The random within-patient alliance slope. ``"auto"`` (default) drops it, and
        says why, when the model has no more observations than random effects or when
        the slope fit is degenerate (a random SD ~ 0 or a correlation at +/-1).
    control_outcome : {"decomposed", "raw", False}
        How every lagged model controls the current outcome (:class:`AllianceModel`;
        "decomposed", the default, keeps the within effect the fixed-effects estimate
        under symptom->alliance feedback). The concurrent model (lead 0) has none.
    prior_outcome : {"auto", True, False}
        Whether the lagged models also control the outcome of the session before
        (:class:`AllianceModel`); "auto" decides per lead from the rows it would leave.
    progress : bool
        A progress bar over the steps, each named as it runs ("main model", "lead 2 of 3",
        "moderator severity", "AR(1) check: nlme ar1"); shown on a terminal or notebook.
    source : str or Path, optional
        The data file the panel was read from: its name and SHA-256 head the report
        (``Report.provenance``).
    command : sequence of str, optional
        The command line that ran the analysis (the CLI passes ``sys.argv``).
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Where the fits after the main model run (the between-patient level model, each
        lead, each moderator, the heterogeneity test and interval, each fit of the AR(1)
        check): ``None`` runs them here, one after another; a process pool
        (``ProcessPoolExecutor(mp_context=multiprocessing.get_context("spawn"))``) or a
        Dask client runs them in its workers (see
        :func:`pylme_alliance.executors.run_chunks`). The report is the same either way.
    checks : iterable of str
        Optional checks: ``"ar1"`` (default) compares the main model with independent
        and with AR(1) residuals (two nlme or glmmTMB fits, most of analyze()'s time on
        small data); ``checks=()`` skips it and the report says so. Ignored when the
        main model already has correlated residuals.
    reciprocal : bool
        True (default): fit the reciprocal dynamics (:func:`pylme_alliance.reciprocal`,
        RI-CLPM, one lavaan fit of ~1-3 s) as one more independent part. Its impulse
        responses are the duration table's total effects (objective b), its outcome ->
        alliance path and its alliance -> outcome path beside the headline within effect
        are said in objective (a). When the waves are too thin for it (or it fails) the
        report says why in a note and goes on without it. False skips it: the total
        effects beyond lead 1 then appear only as the per-lead regression, in an
        appendix, labelled with its measured bias.

    slope_draws : int
        Bootstrap draws of the calibrated random-slope test (heterogeneity; default 199,
        about 35 s of CPU on the bundled example; at least 19). See
        :meth:`~pylme_alliance.models.fit.AllianceFit.heterogeneity`.

    Warns
    -----
    FeasibilityWarning
        Before the first fit, when the fits are estimated to take more than 10 minutes
        of CPU time (:mod:`~pylme_alliance.models.feasibility`: measured coefficients
        of rows x engine).
    UserWarning
        When the median patient has fewer than 4 sessions (the person mean then holds
        the outcome's future alliance; ``within="early"`` is recommended).
    """
    plan = make_plan(panel, leads=leads, moderators=moderators, engine=engine, residual=residual,
                     therapist=therapist, random_slope=random_slope, control_outcome=control_outcome,
                     prior_outcome=prior_outcome, progress=progress, checks=checks, executor=executor,
                     reciprocal=reciprocal, slope_draws=slope_draws)
    # said before the first fit: how long the fits will take, from rows x engine
    feasibility.warn_if_slow(len(panel.data), engine=plan.main_model.engine, n_fits=plan.n_fits(),
                             ar1_engine=plan.ar1_engine if plan.run_ar1 else None)
    started = time.perf_counter()
    with Counter(len(plan.step_names), enabled=progress, desc="analyze") as bar:
        main, main_timing = _timed("main model", bar, lambda: fit_main(plan))
        het_absent = None if main.fit.model.random_slope else (
            main.slope_note or "the model has no random slope (random_slope=False).")
        collected = assemble.collect(run_parts(part_steps(plan, main.fit), executor, bar), main)
        notes = [*plan.notes, *collected.notes]
        tables = {"data_description": describe.data_description(panel), "data_summary": panel.summary().reset_index(),
                  **main.tables, **collected.het_tables}
        if plan.run_ar1:
            tables["ar1_comparison"], compared = assemble.ar1_comparison(collected, main.fit.model)
            notes.extend(compared)
        acf, acf_timing = _timed("autocorrelation", bar, lambda: assemble.autocorrelation(main.fit))
    clock, cpu = time.perf_counter(), time.process_time()
    tables.update({"residual_acf": acf, **assemble.result_tables(plan, main, collected)})
    figs = _figures(plan, tables, collected, main)
    notes = assemble.closing_notes(plan, main, notes, tables["fits"])
    timings = [main_timing, *collected.timings, acf_timing, _timing("tables and figures", clock, cpu)]
    made = provenance.collect(arguments=plan.arguments, source=source, command=command,
                              timings={"parts": timings, "total_seconds": round(time.perf_counter() - started, 3),
                                       "executor": executor_name(executor)})
    return Report(tables=assemble.ordered(tables), figures=figs, notes=notes,
                  settings=assemble.settings(plan, main, collected, het_absent), provenance=made)


def fit_main(plan: Plan) -> assemble.MainFit:
    """Fit the main model; with ``random_slope="auto"``, refit without the slope when its
    fit is degenerate (and say why)."""
    model, name = plan.main_model, plan.main_name
    fit = _fit(model, plan.panel)
    fits: dict[str, Any] = {}
    slope_note = plan.slope_note
    if plan.random_slope == "auto" and model.random_slope and diagnostics.slope_degenerate(fit):
        fits[f"{name}, random slope (dropped: degenerate)"] = fit
        slope_note = ("Random slope dropped (random_slope='auto'): in the fit with a random slope "
                      + ", ".join(t for t in diagnostics.boundary_terms(fit) if "alliance_within" in t)
                      + ", so the variation of the within effect between patients is not identified "
                      "in these data.")
        fit = _fit(model.replace(random_slope=False), plan.panel)
    fits[name] = fit
    return assemble.main_fit(fit, fits, slope_note, name)


def run_parts(steps: list[Step], executor: Any, bar: Counter) -> list[dict[str, Any]]:
    """The results of ``steps`` in their order: the parts run by run_part, here
    (``executor=None``) or on the executor, longest first so the workers finish together;
    the bar names the first step still running."""
    for _, result in steps:
        if result is not None:
            bar.advance()
    todo = [i for i, (part, _) in enumerate(steps) if part is not None]
    if executor is not None:
        todo.sort(key=lambda i: -COST[steps[i][0].kind])  # stable: report order among equals
    results: list[dict[str, Any] | None] = [result for _, result in steps]
    waiting = list(todo)

    def on_done(index: int, result: Any) -> None:
        waiting.remove(todo[index])
        bar.advance()
        if waiting:
            bar.describe(steps[min(waiting)][0].name)

    if todo:
        bar.describe(steps[todo[0]][0].name)
        done = executors.run_chunks(run_part, [steps[i][0] for i in todo], executor=executor, progress=False,
                                    desc="analyze", on_done=on_done)
        for i, result in zip(todo, done):
            results[i] = result
    return results  # type: ignore[return-value]


def _figures(plan: Plan, tables: dict[str, Any], collected: assemble.Collected,
             main: assemble.MainFit) -> dict[str, Any]:
    figs: dict[str, Any] = {}
    slopes = assemble.patient_slopes_figure(plan, collected)
    if slopes is not None:
        figs["patient_slopes"] = slopes
    figs["residual_acf"] = assemble.caution(figures.acf_plot(tables["residual_acf"]), diagnostics.fit_status(main.fit))
    figs.update(assemble.result_figures(plan, tables, collected))
    return figs


def _fit(model: Any, panel: AlliancePanel) -> Any:
    # R's warnings are kept on the fit (fit.warnings) and reported in the fits table;
    # do not also print them while the report is built.
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")
        return model.fit(panel)


def _timed(name: str, bar: Counter, step: Any) -> tuple[Any, dict[str, Any]]:
    """Run one step of the bar in this process, and its timing."""
    bar.describe(name)
    clock, cpu = time.perf_counter(), time.process_time()
    value = step()
    timing = _timing(name, clock, cpu)
    bar.advance()
    return value, timing


def _timing(part: str, clock: float, cpu: float) -> dict[str, Any]:
    return {"part": part, "seconds": round(time.perf_counter() - clock, 3),
            "cpu_seconds": round(time.process_time() - cpu, 3)}
