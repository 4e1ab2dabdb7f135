"""analyze(): the whole alliance-outcome analysis (objectives a, b, c, heterogeneity and
diagnostics) in one call, returned as a :class:`~pylme_alliance.report.report.Report`."""
from __future__ import annotations

import time
import warnings as _warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from ..analyses.duration import check_leads, lead_model, lead_rows, lead_step_names
from ..analyses.moderation import adjust
from ..errors import PylmeError
from ..models import design, diagnostics, feasibility
from ..models.diagnostics import fit_status
from ..models.model import AllianceModel
from ..panel.prepare import AlliancePanel
from ..progress import Counter
from . import figures, provenance, wording
from . import tables as report_tables
from .parts import COST, GRID_POINTS, Part, flag_rows, flags_table, run_part  # noqa: F401
from .parts import heterogeneity_of as _heterogeneity  # noqa: F401 (its former home)
from .report import SECTIONS, Report

__all__ = ["analyze", "planned_files"]

CHECKS = ("ar1",)
FIGURES = ("duration", "duration_direct", "patient_slopes", "residual_acf")


def planned_files(moderators: Iterable[Any] = ()) -> list[str]:
    """The files a report of :func:`analyze` with these moderators may write (for checking
    an output directory before the work)."""
    tables = {name: None for _, _, names, _ in SECTIONS for name in names}
    figs = {name: None for name in FIGURES}
    figs.update({f"simple_slopes_{m}": None for m in moderators})
    return Report(tables=tables, figures=figs).file_names()  # type: ignore[arg-type]


def _plain(name: Any) -> str:
    """A name for a figure label: matplotlib reads text between $ signs as mathtext and
    fails while drawing on what it cannot parse (after every fit is done)."""
    return str(name).replace("$", r"\$")


def _choose_therapist(panel: AlliancePanel, therapist: str | None) -> tuple[str, str | None]:
    if therapist is not None:
        return therapist, None
    if panel.roles.get("therapist") is None:
        return "none", "No therapist column: the models have no therapist term (therapist='none')."
    multi = len(panel.multi_therapist_patients)
    if multi:
        return "crossed", (f"{multi} patient(s) saw more than one therapist, so therapists are crossed with "
                           "patients (therapist='crossed').")
    return "nested", "Every patient saw one therapist: patients nested in therapists (therapist='nested')."


def _fit(model: AllianceModel, panel: AlliancePanel) -> Any:
    # R's warnings are kept on the fit (fit.warnings) and reported in the fits table;
    # do not also print them while the report is built.
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")
        return model.fit(panel)


def _main_lead(leads: tuple[int, ...]) -> int:
    if 1 in leads:
        return 1
    ahead = [k for k in leads if k > 0]
    return ahead[0] if ahead else leads[0]


def analyze(panel: AlliancePanel, *, leads: Iterable[int] = (1, 2, 3), moderators: Iterable[Any] = (),
            engine: str = "lme4", residual: str = "iid", therapist: str | None = None,
            random_slope: Any = "auto", control_outcome: Any = "decomposed", prior_outcome: Any = "auto",
            progress: bool = True, source: str | Path | None = None,
            command: Sequence[str] | None = None, executor: Any = None,
            checks: Iterable[str] = CHECKS) -> Report:
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
    if not isinstance(panel, AlliancePanel):
        raise PylmeError("analyze() takes the AlliancePanel made by prepare()")
    # iterables may be one-shot generators: read each once, here
    leads = leads if isinstance(leads, (int, str)) else list(leads)
    moderators = moderators if isinstance(moderators, str) else list(moderators)
    checks = _check_checks(checks)
    arguments = {"leads": leads, "moderators": moderators, "engine": engine, "residual": residual,
                 "therapist": therapist, "random_slope": random_slope,
                 "control_outcome": control_outcome, "prior_outcome": prior_outcome, "progress": progress,
                 "checks": list(checks), "executor": _executor_name(executor)}
    random_slope = design.check_random_slope(random_slope)
    control_outcome, prior_outcome = design.check_control(control_outcome, prior_outcome)
    leads = check_leads(panel, leads, "analyze()")
    moderators = [m for m in ([moderators] if isinstance(moderators, str) else list(moderators))]
    unknown = [m for m in moderators if m not in panel.moderators]
    if unknown:
        raise PylmeError(f"{unknown} were not prepared as moderators; call prepare(..., moderators={moderators!r})")

    notes = list(panel.notes)
    short = design.short_series(panel)
    if short:
        _warnings.warn(short, UserWarning, stacklevel=2)
        notes.append("Warning: " + short)
    leads, skipped = design.usable_leads(panel, leads)
    notes.extend(skipped)
    if not leads:
        raise PylmeError("no requested lead has at least 2 rows for most patients: " + " ".join(skipped))
    therapist, why = _choose_therapist(panel, therapist)
    if why:
        notes.append(why)
    main_lead = _main_lead(leads)
    slope = random_slope
    slope_note = ""
    if random_slope == "auto":
        capable, reason = design.slope_capacity(panel, main_lead, therapist)
        slope = capable
        if not capable:
            slope_note = f"Random slope dropped (random_slope='auto'): {reason}."
    main_model = lead_model(main_lead, therapist=therapist, residual=residual, engine=engine,
                            random_slope=bool(slope), control_outcome=control_outcome,
                            prior_outcome=prior_outcome)
    outcome_better = panel.outcome_better
    tables: dict[str, pd.DataFrame] = {"data_summary": panel.summary().reset_index()}
    figs: dict[str, Any] = {}
    fits: dict[str, Any] = {}
    words = {"outcome_label": panel.outcome_name, "outcome_better": outcome_better}
    state: dict[str, Any] = {"slope_note": slope_note}
    main_name = f"main (lead {main_lead})"

    def main() -> None:
        fit = _fit(main_model, panel)
        if random_slope == "auto" and slope and diagnostics.slope_degenerate(fit):
            fits[f"{main_name}, random slope (dropped: degenerate)"] = fit
            state["slope_fit"] = fit
            state["slope_note"] = ("Random slope dropped (random_slope='auto'): in the fit with a random slope "
                                   + ", ".join(t for t in diagnostics.boundary_terms(fit) if "alliance_within" in t)
                                   + ", so the variation of the within effect between patients is not identified "
                                   "in these data.")
            fit = _fit(main_model.replace(random_slope=False), panel)
        fits[main_name] = fit
        state["main"] = fit
        state["main_rows"] = report_tables.within_rows(fit, main_name)
        rows = lead_rows(fit)  # the duration rows of the main lead's total effect
        rows["status"] = fit_status(fit)
        state["main_rows_duration"] = rows
        tables["fixed_effects"] = report_tables.fixed_table(fit)
        tables["variance_parameters"] = report_tables.variance_table(fit)
        stats_table = report_tables.mark_status(fit.glance(), fit_status(fit))
        stats_table["estimand"] = "fit statistics of the main model (likelihood, information criteria, flags)"
        tables["fit_statistics"] = stats_table

    def autocorrelation() -> None:
        acf = diagnostics.residual_acf(state["main"].augment())
        acf["estimand"] = "residual autocorrelation at this lag, pairs matched by session number within patient"
        tables["residual_acf"] = acf
        figs["residual_acf"] = _caution(figures.acf_plot(acf), fit_status(state["main"]))

    lead_names = dict(zip(leads, lead_step_names(leads)))
    ar1_engine = diagnostics.ar1_engine(main_model)
    run_ar1 = "ar1" in checks and residual == "iid"
    ar1_names = {r: f"AR(1) check: {ar1_engine} {r}" for r in ("iid", "ar1")}
    # every step of the bar, named as it runs; after the main model they are independent
    names = ["main model", "between level", *(lead_names[k] for k in leads if k != main_lead),
             *(f"{lead_names[k]} (direct)" for k in leads if k > 1), *(f"moderator {m}" for m in moderators),
             "heterogeneity", *(ar1_names.values() if run_ar1 else ()),
             "autocorrelation"]
    if residual != "iid":
        notes.append(f"The main model already has {residual} residuals; no AR(1) comparison was run.")
    elif not run_ar1:
        notes.append("The AR(1) comparison of the residuals was skipped (checks=()).")
    # said before the first fit: how long the fits will take, from rows x engine
    n_fits = len([n for n in names if not n.startswith(("AR(1)", "autocorrelation"))]) + int(bool(slope))
    feasibility.warn_if_slow(len(panel.data), engine=main_model.engine, n_fits=n_fits,
                             ar1_engine=ar1_engine if run_ar1 else None)
    timings: list[dict[str, Any]] = []
    started = time.perf_counter()
    with Counter(len(names), enabled=progress, desc="analyze") as bar:
        bar.describe("main model")
        clock, cpu = time.perf_counter(), time.process_time()
        main()
        timings.append(_timing("main model", clock, cpu))
        bar.advance()
        main_fit = state["main"]
        base = main_fit.model
        options = _options(base, control_outcome, prior_outcome)
        fit_rows = flag_rows(fits)
        # (part, result): a part runs in run_part (here or on the executor); a step done
        # here already has its result
        steps: list[tuple[Part | None, dict[str, Any] | None]] = [
            (Part("level", "between level", panel, detail=(therapist, engine)), None)]
        steps += [(Part("lead", lead_names[k], panel, detail=(k, "total", options)), None)
                  for k in leads if k != main_lead]
        steps += [(Part("lead", f"{lead_names[k]} (direct)", panel, detail=(k, "direct", options)), None)
                  for k in leads if k > 1]  # the direct effect is the total effect at leads 0 and 1
        steps += [(Part("moderator", f"moderator {m}", panel, base, m), None) for m in moderators]
        if base.random_slope:
            steps.append((Part("heterogeneity", "heterogeneity", panel, base, (outcome_better, main_name),
                               fit=main_fit), None))
        else:
            state["het_absent"] = state["slope_note"] or "the model has no random slope (random_slope=False)."
            steps.append((None, {"name": "heterogeneity", "notes": [], "fits": [], "seconds": 0.0,
                                 "cpu_seconds": 0.0}))
        if run_ar1:
            if base == base.replace(engine=ar1_engine, residual="iid"):
                # the main model is the check's independent-residual model: reuse its fit
                row, row_notes, row_fits = diagnostics.ar1_row(panel, base, "iid", fit=main_fit)
                steps.append((None, {"name": ar1_names["iid"], "row": row, "notes": row_notes,
                                     "fits": flag_rows(row_fits), "seconds": 0.0, "cpu_seconds": 0.0}))
            else:
                steps.append((Part("ar1", ar1_names["iid"], panel, base, "iid"), None))
            steps.append((Part("ar1", ar1_names["ar1"], panel, base, "ar1"), None))
        for index in range(len(steps)):
            if steps[index][1] is not None:
                bar.advance()
        outcomes = _run_parts(steps, executor, bar)

        durations = [state["main_rows_duration"]]
        ar1_rows: list[dict[str, Any]] = []
        for result in outcomes:
            notes.extend(result["notes"])
            fit_rows.extend(result["fits"])
            timings.append({"part": result["name"], "seconds": round(result["seconds"], 3),
                            "cpu_seconds": round(result["cpu_seconds"], 3)})
            if "level" in result:
                state["level"] = result["level"]
            if "rows" in result and "drawing" not in result:
                durations.append(result["rows"])
            if "drawing" in result:
                state.setdefault("moderators", []).append(result["rows"])
                state.setdefault("drawings", []).append(result["drawing"])
                if "jn" in result["drawing"]:
                    state.setdefault("jn", []).append(result["drawing"]["jn"])
            if "het" in result:
                state["het"] = result["het"]
                tables.update(result["tables"])
                if len(result["patients"]):
                    figs["patient_slopes"] = _caution(
                        figures.caterpillar_plot(result["patients"], result["summary"], **words), result["status"])
            if "row" in result:
                ar1_rows.append(result["row"])
        if run_ar1:
            table, compared = diagnostics.ar1_table(ar1_rows, base)
            table["estimand"] = "model comparison by AIC: independent vs AR(1) residuals (lower AIC preferred)"
            tables["ar1_comparison"] = table
            notes.extend(compared)
        bar.describe("autocorrelation")
        clock, cpu = time.perf_counter(), time.process_time()
        autocorrelation()
        timings.append(_timing("autocorrelation", clock, cpu))
        bar.advance()
    state["durations"] = durations
    clock, cpu = time.perf_counter(), time.process_time()

    notes.insert(len(panel.notes), f"Main model: lead {main_lead}, engine {main_model.engine}, residual {residual}, "
                 f"therapist {therapist}, lagged outcome {main_fit.model.control_outcome} "
                 f"({main_fit.model.control_bias()}), "
                 + ("random within-patient slope." if main_fit.model.random_slope else "no random slope."))
    if state["slope_note"]:
        notes.append(state["slope_note"])
    tables["alliance_effects"] = report_tables.effects_table(
        state["main_rows"], report_tables.level_row(state["level"]) if "level" in state else None)
    duration_table = _duration_table(state["durations"], leads)
    tables["duration"] = duration_table
    for effect in ("total", "direct"):
        rows = duration_table[duration_table["effect"] == effect]
        if len(rows):
            fig = figures.duration_plot(rows, **words)
            what = ("direct effect (controls the most recent earlier outcome and the alliance in between)"
                    if effect == "direct" else
                    "total effect (includes what is carried through the outcomes in between)")
            title = fig.get_suptitle()
            first, _, rest = title.partition("\n")
            fig.suptitle(f"{first}\n{what}" + (f"\n{rest}" if rest else ""))
            bad = "; ".join(sorted({s for s in rows["status"] if s}))
            figs["duration" if effect == "total" else "duration_direct"] = _caution(fig, bad)
    if state.get("moderators"):
        mods = adjust(pd.concat(state["moderators"], ignore_index=True))
        status = pd.concat(state["moderators"], ignore_index=True)["status"].to_numpy()
        mods["status"] = status
        mods["estimand"] = [_moderator_estimand(r) for r in mods.itertuples()]
        tables["moderators"] = mods
    for drawing in state.get("drawings", ()):
        figs[f"simple_slopes_{drawing['name']}"] = _caution(_moderator_figure(drawing, tables.get("moderators"), words),
                                                            drawing["status"])
    if state.get("jn"):
        jn = pd.concat(state["jn"], ignore_index=True)
        jn["estimand"] = ("range of the moderator (original scale) where the within-patient effect has this sign "
                          "and is (or is not) significant at alpha, without multiplicity correction; "
                          "extrapolated parts lie outside the observed range")
        tables["johnson_neyman"] = jn
    tables["fits"] = flags_table(fit_rows)

    flagged = tables["fits"][tables["fits"]["status"] != "ok"]
    for row in flagged.itertuples():
        notes.append(f"Fit '{row.model}': {row.status}.")
    for w in dict.fromkeys(" ".join(str(x).split()) for x in main_fit.warnings or ()):
        notes.append(f"Main model warning from {main_fit.engine}: {w}")

    # order the tables as the report reads
    order = [t for _, _, names, _ in SECTIONS for t in names]
    tables = {k: tables[k] for k in order if k in tables}
    settings = {"leads": leads, "main_lead": main_lead, "moderators": [str(m) for m in moderators],
                "engine": main_model.engine, "residual": residual, "therapist": therapist,
                "random_slope": bool(main_fit.model.random_slope), "random_slope_requested": random_slope,
                "control_outcome": main_fit.model.control_outcome,
                "prior_outcome": main_fit.model.prior_outcome, "outcome_better": outcome_better,
                "outcome_name": panel.outcome_name, "heterogeneity": state.get("het"),
                "heterogeneity_absent": state.get("het_absent"), "main_status": fit_status(main_fit)}
    timings.append(_timing("tables and figures", clock, cpu))
    made = provenance.collect(arguments=arguments, source=source, command=command,
                              timings={"parts": timings, "total_seconds": round(time.perf_counter() - started, 3),
                                       "executor": _executor_name(executor)})
    return Report(tables=tables, figures=figs, notes=notes, settings=settings, provenance=made)


def _options(model: AllianceModel, control_outcome: Any, prior_outcome: Any) -> dict[str, Any]:
    # the user's control, not the main model's: lead_model() drops it at lead 0 only, and
    # prior_outcome="auto" is decided again for each lead's own rows
    return {"therapist": model.therapist, "residual": model.residual, "engine": model.engine,
            "random_slope": model.random_slope, "control_outcome": control_outcome,
            "prior_outcome": prior_outcome}


def _check_checks(checks: Any) -> tuple[str, ...]:
    if isinstance(checks, str):
        checks = (checks,)
    try:
        checks = tuple(checks)
    except TypeError:
        raise PylmeError(f"checks must be a tuple of check names {CHECKS}, got {checks!r}") from None
    unknown = [c for c in checks if c not in CHECKS]
    if unknown:
        raise PylmeError(f"unknown check(s) {unknown}; the checks are {list(CHECKS)} (checks=() runs none)")
    return checks


def _timing(part: str, clock: float, cpu: float) -> dict[str, Any]:
    return {"part": part, "seconds": round(time.perf_counter() - clock, 3),
            "cpu_seconds": round(time.process_time() - cpu, 3)}


def _executor_name(executor: Any) -> str:
    if executor is None:
        return "none (this process)"
    workers = getattr(executor, "_max_workers", None)
    return type(executor).__name__ + (f" ({workers} workers)" if workers else "")


def _run_parts(steps: list[tuple[Part | None, dict[str, Any] | None]], executor: Any,
               bar: Counter) -> list[dict[str, Any]]:
    """The results of ``steps`` in their order: the parts run by run_part, here
    (``executor=None``) or on the executor, longest first so the workers finish together;
    the bar names the first step still running."""
    from .. import executors

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


def _duration_table(parts: list[pd.DataFrame], leads: tuple[int, ...]) -> pd.DataFrame:
    table = pd.concat(parts, ignore_index=True)
    # at leads 0 and 1 the direct effect IS the total effect: show it under both
    same = table[(table["effect"] == "total") & (table["lead"] <= 1)].assign(effect="direct")
    table = pd.concat([table, same], ignore_index=True)
    table["order"] = table["effect"].map({"total": 0, "direct": 1})
    table = table.sort_values(["order", "lead"], kind="stable").drop(columns="order")
    return table.reset_index(drop=True)


def _moderator_estimand(row: Any) -> str:
    if row.kind == "interaction":
        component = str(row.term).split(":", 1)[0]
        return (f"change in the {component.replace('_', ' ')} effect per unit of {row.moderator} "
                "(or for this level against the reference), conditional on the other terms")
    return (f"{str(row.term).replace('_', ' ')} effect at {row.moderator} = {row.label} "
            "(other moderators at their centre or reference)")


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


def _caution(fig: Any, status: str) -> Any:
    """Mark a figure drawn from a fit that did not converge or is singular/degenerate, in
    red under the plot (the figure-level x label, which the layout makes room for)."""
    if status:
        # a figure may draw several fits: each problem once
        problems = "; ".join(dict.fromkeys(p for p in wording.short_status(status).split("; ") if p))
        fig.supxlabel(f"Caution: drawn from fit(s) flagged: {problems} (see the fits table)",
                      fontsize=8, color="#b30000")
    return fig
