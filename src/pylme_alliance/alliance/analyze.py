"""analyze(): the whole alliance-outcome analysis (objectives a, b, c, heterogeneity and
diagnostics) in one call, returned as a :class:`~pylme_alliance.alliance.report.Report`."""
from __future__ import annotations

import warnings as _warnings
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from ..errors import PylmeError
from ..progress import progress_bar
from . import diagnostics, figures
from .duration import check_leads, lead_rows
from .model import AllianceModel
from .moderation import adjust, moderator_rows
from .prepare import AlliancePanel
from .report import SECTIONS, Report

__all__ = ["analyze", "planned_files"]

GRID_POINTS = 41
FIGURES = ("duration", "patient_slopes", "residual_acf")


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


def _main_lead(leads: tuple[int, ...]) -> int:
    return 1 if 1 in leads else leads[0]


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


def analyze(panel: AlliancePanel, *, leads: Iterable[int] = (1, 2, 3), moderators: Iterable[Any] = (),
            engine: str = "lme4", residual: str = "iid", therapist: str | None = None,
            progress: bool = True) -> Report:
    """Run the alliance-outcome analysis and return a :class:`Report`.

    Parameters
    ----------
    panel : AlliancePanel
        From :func:`pylme_alliance.prepare`, with ``leads`` covering ``leads`` and
        ``moderators`` covering ``moderators``.
    leads : iterable of int
        Leads for the duration analysis; the main model uses lead 1 (or the first lead).
    moderators : iterable of str
        Moderators to test, one model each.
    engine, residual : str
        As in :class:`AllianceModel`.
    therapist : {"nested", "crossed", "none"}, optional
        Default: "none" without a therapist column, "crossed" when some patient saw
        several therapists, else "nested". An engine that cannot express the choice
        raises :class:`~pylme_alliance.EngineCannotExpress`.
    progress : bool
        A progress bar over the fits (stderr).
    """
    if not isinstance(panel, AlliancePanel):
        raise PylmeError("analyze() takes the AlliancePanel made by prepare()")
    leads = check_leads(panel, leads, "analyze()")
    moderators = [m for m in ([moderators] if isinstance(moderators, str) else list(moderators))]
    unknown = [m for m in moderators if m not in panel.moderators]
    if unknown:
        raise PylmeError(f"{unknown} were not prepared as moderators; call prepare(..., moderators={moderators!r})")

    notes = list(panel.notes)
    therapist, why = _choose_therapist(panel, therapist)
    if why:
        notes.append(why)
    main_lead = _main_lead(leads)
    main_model = AllianceModel(lead=main_lead, therapist=therapist, residual=residual, engine=engine)
    notes.append(f"Main model: lead {main_lead}, engine {main_model.engine}, residual {residual}, "
                 f"therapist {therapist}, random within-patient slope.")

    tables: dict[str, pd.DataFrame] = {"data_summary": panel.summary().reset_index()}
    figs: dict[str, Any] = {}
    fits: dict[str, Any] = {}
    state: dict[str, Any] = {}

    def main() -> None:
        fit = _fit(main_model, panel)
        fits[f"main (lead {main_lead})"] = fit
        state["main"] = fit
        tables["alliance_effects"] = fit.alliance_effects()
        tables["fixed_effects"] = fit.tidy("fixed", conf_int=True)
        tables["variance_parameters"] = fit.tidy("ran_pars")
        tables["fit_statistics"] = fit.glance()

    def lead_fit(k: int) -> Callable[[], None]:
        def run() -> None:
            fit = state["main"] if k == main_lead else _fit(main_model.replace(lead=k), panel)
            if k != main_lead:
                fits[f"duration (lead {k})"] = fit
            state.setdefault("durations", []).append(lead_rows(fit))
        return run

    def moderator_fit(name: Any) -> Callable[[], None]:
        def run() -> None:
            try:
                fit = _fit(main_model.replace(moderators=(name,)), panel)
            except PylmeError as exc:
                notes.append(f"Moderator {name}: the model failed ({' '.join(str(exc).split())}).")
                return
            fits[f"moderator {name}"] = fit
            state.setdefault("moderators", []).append(_quiet(lambda: moderator_rows(fit, name)))
            info = panel.moderators[name]
            if info.kind == "numeric":
                observed, grid = _moderator_grid(panel, info)
                slopes = _quiet(lambda: fit.simple_slopes(name, at=grid))
                jn = None
                try:
                    jn = _quiet(lambda: fit.johnson_neyman(name))
                    state.setdefault("jn", []).append(jn)
                except PylmeError as exc:
                    notes.append(f"Johnson-Neyman for {name} not available: {exc}")
                figs[f"simple_slopes_{name}"] = figures.simple_slopes_plot(slopes, _plain(name), "numeric",
                                                                           observed=observed, jn=jn)
            else:
                slopes = _quiet(lambda: fit.simple_slopes(name))
                figs[f"simple_slopes_{name}"] = figures.simple_slopes_plot(slopes, _plain(name), "categorical")
        return run

    def heterogeneity() -> None:
        try:
            het = _quiet(lambda: state["main"].heterogeneity())
        except PylmeError as exc:
            notes.append(f"Heterogeneity not available: {exc}")
            return
        tables["heterogeneity"] = het.summary
        tables["patient_slopes"] = het.patients
        if len(het.patients):
            figs["patient_slopes"] = figures.caterpillar_plot(het.patients, het.summary)

    def autocorrelation() -> None:
        acf = diagnostics.residual_acf(state["main"].augment())
        tables["residual_acf"] = acf
        figs["residual_acf"] = figures.acf_plot(acf)

    def ar1_check() -> None:
        table, ar_notes, ar_fits = _quiet(lambda: diagnostics.ar1_alternative(panel, main_model))
        tables["ar1_comparison"] = table
        notes.extend(ar_notes)
        fits.update(ar_fits)

    steps: list[tuple[str, Callable[[], None]]] = [("main model", main)]
    steps += [(f"lead {k}", lead_fit(k)) for k in leads]
    steps += [(f"moderator {m}", moderator_fit(m)) for m in moderators]
    steps += [("heterogeneity", heterogeneity), ("autocorrelation", autocorrelation)]
    if residual == "iid":
        steps.append(("AR(1) check", ar1_check))
    else:
        notes.append(f"The main model already has {residual} residuals; no AR(1) comparison was run.")

    for _label, step in progress_bar(steps, enabled=progress, desc="analyze", total=len(steps)):
        step()

    duration_table = pd.concat(state["durations"], ignore_index=True)
    duration_table = duration_table.sort_values(["lead"], kind="stable").reset_index(drop=True)
    tables["duration"] = duration_table
    figs["duration"] = figures.duration_plot(duration_table)
    if state.get("moderators"):
        tables["moderators"] = adjust(pd.concat(state["moderators"], ignore_index=True))
    if state.get("jn"):
        tables["johnson_neyman"] = pd.concat(state["jn"], ignore_index=True)
    tables["fits"] = diagnostics.fit_flags(fits)

    flagged = tables["fits"][(~tables["fits"]["converged"]) | tables["fits"]["singular"]]
    for row in flagged.itertuples():
        notes.append(f"Fit '{row.model}': " + ", ".join(
            x for x, bad in (("did not converge", not row.converged), ("singular", row.singular)) if bad) + ".")
    main_warnings = state["main"].warnings
    for w in dict.fromkeys(" ".join(str(x).split()) for x in main_warnings or ()):
        notes.append(f"Main model warning from {state['main'].engine}: {w}")

    # order the tables as the report reads
    order = [t for _, _, names, _ in SECTIONS for t in names]
    tables = {k: tables[k] for k in order if k in tables}
    settings = {"leads": leads, "main_lead": main_lead, "moderators": [str(m) for m in moderators],
                "engine": main_model.engine, "residual": residual, "therapist": therapist}
    return Report(tables=tables, figures=figs, notes=notes, settings=settings)
