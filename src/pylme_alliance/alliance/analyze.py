"""analyze(): the whole alliance-outcome analysis (objectives a, b, c, heterogeneity and
diagnostics) in one call, returned as a :class:`~pylme_alliance.alliance.report.Report`."""
from __future__ import annotations

import inspect
import warnings as _warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from ..errors import PylmeError
from ..progress import progress_bar
from . import design, diagnostics, figures, provenance, report_tables, wording
from .between import between_effect
from .diagnostics import fit_status
from .duration import check_leads, lead_model, lead_rows
from .model import AllianceModel
from .moderation import adjust, moderator_rows
from .prepare import AlliancePanel
from .report import SECTIONS, Report

__all__ = ["analyze", "planned_files"]

GRID_POINTS = 41
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


def _quiet(func: Callable[[], Any]) -> Any:
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")
        return func()


def _moderator_grid(panel: AlliancePanel, info: Any) -> tuple[np.ndarray, np.ndarray]:
    """Observed patient-level values (original scale) and an even grid over their range."""
    data = panel.data
    values = data[info.column].astype(float) + float(info.mean)
    per_patient = values.groupby(data[panel.roles["patient"]], observed=True).first().to_numpy(dtype=float)
    per_patient = per_patient[np.isfinite(per_patient)]
    low, high = float(per_patient.min()), float(per_patient.max())
    if high <= low:
        high = low + 1.0
    return per_patient, np.linspace(low, high, GRID_POINTS)


def _main_lead(leads: tuple[int, ...]) -> int:
    if 1 in leads:
        return 1
    ahead = [k for k in leads if k > 0]
    return ahead[0] if ahead else leads[0]


def analyze(panel: AlliancePanel, *, leads: Iterable[int] = (1, 2, 3), moderators: Iterable[Any] = (),
            engine: str = "lme4", residual: str = "iid", therapist: str | None = None,
            random_slope: Any = "auto", progress: bool = True, source: str | Path | None = None,
            command: Sequence[str] | None = None) -> Report:
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
    progress : bool
        A progress bar over the fits (stderr).
    source : str or Path, optional
        The data file the panel was read from: its name and SHA-256 head the report
        (``Report.provenance``).
    command : sequence of str, optional
        The command line that ran the analysis (the CLI passes ``sys.argv``).

    Warns
    -----
    UserWarning
        When the median patient has fewer than 4 sessions (the person mean then holds
        the outcome's future alliance; ``within="early"`` is recommended).
    """
    if not isinstance(panel, AlliancePanel):
        raise PylmeError("analyze() takes the AlliancePanel made by prepare()")
    # iterables may be one-shot generators: read each once, here
    leads = leads if isinstance(leads, (int, str)) else list(leads)
    moderators = moderators if isinstance(moderators, str) else list(moderators)
    arguments = {"leads": leads, "moderators": moderators, "engine": engine, "residual": residual,
                 "therapist": therapist, "random_slope": random_slope, "progress": progress}
    random_slope = design.check_random_slope(random_slope)
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
                            random_slope=bool(slope))
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
        tables["fixed_effects"] = report_tables.fixed_table(fit)
        tables["variance_parameters"] = report_tables.variance_table(fit)
        stats_table = report_tables.mark_status(fit.glance(), fit_status(fit))
        stats_table["estimand"] = "fit statistics of the main model (likelihood, information criteria, flags)"
        tables["fit_statistics"] = stats_table

    def level() -> None:
        try:
            state["level"] = _quiet(lambda: between_effect(panel, therapist=therapist, engine=engine))
        except PylmeError as exc:
            notes.append(f"Between-patient level model not available: {' '.join(str(exc).split())}")
            return
        notes.extend(f"Between-patient level model: {n}" for n in state["level"].attrs.get("notes", ()))

    def lead_fit(k: int, effect: str) -> Callable[[], None]:
        def run() -> None:
            if k == main_lead and effect == "total":
                fit = state["main"]
            elif effect == "direct" and k <= 1:
                return  # the direct effect is the total effect at leads 0 and 1
            else:
                try:
                    fit = _fit(lead_model(k, effect=effect, **_options(state["main"].model)), panel)
                except PylmeError as exc:  # one lead's failure must not lose the report
                    notes.append(f"Duration ({effect} effect, lead {k}): the model failed "
                                 f"({' '.join(str(exc).split())}).")
                    return
                fits[f"duration {effect} (lead {k})"] = fit
            rows = lead_rows(fit)
            rows["status"] = fit_status(fit)
            state.setdefault("durations", []).append(rows)
        return run

    def moderator_fit(name: Any) -> Callable[[], None]:
        def run() -> None:
            try:
                fit = _fit(state["main"].model.replace(moderators=(name,)), panel)
            except PylmeError as exc:
                notes.append(f"Moderator {name}: the model failed ({' '.join(str(exc).split())}).")
                return
            fits[f"moderator {name}"] = fit
            rows = _quiet(lambda: moderator_rows(fit, name))
            rows["status"] = fit_status(fit)
            state.setdefault("moderators", []).append(rows)
            info = panel.moderators[name]
            drawing: dict[str, Any] = {"name": name, "kind": info.kind, "status": fit_status(fit)}
            if info.kind == "numeric":
                observed, grid = _moderator_grid(panel, info)
                drawing.update(slopes=_quiet(lambda: fit.simple_slopes(name, at=grid)), observed=observed)
                try:
                    drawing["jn"] = _quiet(lambda: fit.johnson_neyman(name))
                    state.setdefault("jn", []).append(drawing["jn"])
                except PylmeError as exc:
                    notes.append(f"Johnson-Neyman for {name} not available: {exc}")
            else:
                drawing["slopes"] = _quiet(lambda: fit.simple_slopes(name))
            # drawn after the Benjamini-Hochberg adjustment over all moderators
            state.setdefault("drawings", []).append(drawing)
        return run

    def heterogeneity() -> None:
        fit = state["main"]
        if not fit.model.random_slope:
            state["het_absent"] = state["slope_note"] or "the model has no random slope (random_slope=False)."
            return
        try:
            het = _quiet(lambda: _heterogeneity(fit, outcome_better))
        except PylmeError as exc:
            notes.append(f"Heterogeneity not available: {exc}")
            return
        test = report_tables.read_test(het)
        if test is None:  # the fit's heterogeneity() has no test: compare with the no-slope fit
            null = _fit(fit.model.replace(random_slope=False), panel)
            fits[f"{main_name}, no random slope (slope test)"] = null
            test = report_tables.slope_lrt(fit, null)
        profile = [" ".join(str(w).split()) for w in getattr(het, "warnings", ()) or ()]
        # the slope's own boundary decides whether heterogeneity can be judged; other
        # parameters at the boundary (a patient intercept absorbed by the patient's mean
        # outcome) are reported beside it
        slope_bad = diagnostics.slope_degenerate(fit)
        other = [t for t in diagnostics.boundary_terms(fit) if "alliance_within" not in t]
        state["het"] = {"test": test, "profile_warnings": [w for w in profile if report_tables._is_interval_warning(w)],
                        "degenerate": slope_bad, "degenerate_other": other,
                        "shrinkage": float(getattr(het, "shrinkage", np.nan))}
        tables["heterogeneity"] = report_tables.heterogeneity_table(het, test, fit, outcome_better, profile)
        tables["patient_slopes"] = report_tables.patient_categories(het.patients, outcome_better,
                                                                    assessable=not state["het"]["degenerate"])
        if len(het.patients):
            figs["patient_slopes"] = _caution(figures.caterpillar_plot(het.patients, het.summary, **words),
                                              fit_status(fit))

    def autocorrelation() -> None:
        acf = diagnostics.residual_acf(state["main"].augment())
        acf["estimand"] = "residual autocorrelation at this lag, pairs matched by session number within patient"
        tables["residual_acf"] = acf
        figs["residual_acf"] = _caution(figures.acf_plot(acf), fit_status(state["main"]))

    def ar1_check() -> None:
        table, ar_notes, ar_fits = _quiet(lambda: diagnostics.ar1_alternative(panel, state["main"].model))
        table["estimand"] = "model comparison by AIC: independent vs AR(1) residuals (lower AIC preferred)"
        tables["ar1_comparison"] = table
        notes.extend(ar_notes)
        fits.update(ar_fits)

    steps: list[tuple[str, Callable[[], None]]] = [("main model", main), ("between level", level)]
    steps += [(f"lead {k} {e}", lead_fit(k, e)) for e in ("total", "direct") for k in leads]
    steps += [(f"moderator {m}", moderator_fit(m)) for m in moderators]
    steps += [("heterogeneity", heterogeneity), ("autocorrelation", autocorrelation)]
    if residual == "iid":
        steps.append(("AR(1) check", ar1_check))
    else:
        notes.append(f"The main model already has {residual} residuals; no AR(1) comparison was run.")

    for _label, step in progress_bar(steps, enabled=progress, desc="analyze", total=len(steps)):
        step()

    main_fit = state["main"]
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
    tables["fits"] = diagnostics.fit_flags(fits)

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
                "control_outcome": main_fit.model.control_outcome, "outcome_better": outcome_better,
                "outcome_name": panel.outcome_name, "heterogeneity": state.get("het"),
                "heterogeneity_absent": state.get("het_absent"), "main_status": fit_status(main_fit)}
    made = provenance.collect(arguments=arguments, source=source, command=command)
    return Report(tables=tables, figures=figs, notes=notes, settings=settings, provenance=made)


def _options(model: AllianceModel) -> dict[str, Any]:
    # not control_outcome: lead_model() drops the control at lead 0 only, whatever the main lead
    return {"therapist": model.therapist, "residual": model.residual, "engine": model.engine,
            "random_slope": model.random_slope}


def _heterogeneity(fit: Any, outcome_better: str | None) -> Any:
    """fit.heterogeneity() in the user's direction, whatever the version of its options."""
    parameters = inspect.signature(fit.heterogeneity).parameters
    options: dict[str, Any] = {}
    if "outcome_better" in parameters:
        options["outcome_better"] = outcome_better
    elif "beneficial" in parameters and parameters["beneficial"].default is not None:
        # an older heterogeneity() that always names a direction: give the user's, or
        # "negative" for the report to relabel as neutral
        options["beneficial"] = "positive" if outcome_better == "higher" else "negative"
    return fit.heterogeneity(**options)


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
