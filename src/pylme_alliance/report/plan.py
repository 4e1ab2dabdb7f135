"""The plan of :func:`~pylme_alliance.report.analyze.analyze`: its arguments checked and
turned into what will run, before any fit.

:func:`make_plan` decides the main model (lead, therapist term, random slope), the leads
that have enough rows, the progress bar's steps and the notes that say why; after the
main fit, :func:`part_steps` lists the independent parts (between level, each lead,
each moderator, heterogeneity, the AR(1) check). Nothing here fits a model.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..analyses.duration import check_leads, lead_model, lead_step_names
from ..analyses.reciprocal import choose_waves, session_ratings
from ..errors import PylmeError
from ..models import design, diagnostics
from ..models.calibration import DRAWS, check_draws
from ..models.choices import choose_therapist
from ..models.model import AllianceModel
from ..panel.prepare import AlliancePanel
from .parts import Part, flag_rows

__all__ = ["CHECKS", "Plan", "Step", "make_plan", "part_steps", "executor_name"]

CHECKS = ("ar1",)

#: One step after the main model: a Part to run (here or on an executor), or a result
#: already known (a step with nothing to fit, or a fit the main model already made).
Step = tuple[Part | None, dict[str, Any] | None]


@dataclass(frozen=True)
class Plan:
    """What analyze() will do, decided from its arguments and the panel."""

    panel: AlliancePanel
    leads: tuple[int, ...]
    moderators: list[Any]
    main_lead: int
    main_model: AllianceModel
    residual: str
    therapist: str
    random_slope: Any           # as asked: "auto", True or False
    control_outcome: Any
    prior_outcome: Any
    slope_note: str             # why "auto" dropped the slope before fitting ("" when kept)
    lead_names: dict[int, str]
    ar1_engine: str
    run_ar1: bool
    run_reciprocal: bool        # the RI-CLPM part (the total effects and the symptom -> alliance path)
    step_names: list[str]       # the progress bar's steps, in the report's order
    notes: tuple[str, ...]      # what the plan decided and why, in the report's order
    arguments: dict[str, Any] = field(default_factory=dict)  # as given, for provenance
    slope_draws: int = DRAWS    # bootstrap draws of the calibrated random-slope test

    @property
    def main_name(self) -> str:
        return f"main (lead {self.main_lead})"

    @property
    def ar1_names(self) -> dict[str, str]:
        return {r: f"AR(1) check: {self.ar1_engine} {r}" for r in ("iid", "ar1")}

    @property
    def words(self) -> dict[str, Any]:
        """The outcome's name and better direction, as every figure and sentence takes them."""
        return {"outcome_label": self.panel.outcome_name, "outcome_better": self.panel.outcome_better}

    def n_fits(self) -> int:
        """The model fits the plan asks for besides the AR(1) check (for the feasibility warning)."""
        fitted = [n for n in self.step_names if not n.startswith(("AR(1)", "autocorrelation"))]
        return len(fitted) + int(bool(self.main_model.random_slope))


def make_plan(panel: AlliancePanel, *, leads: Any, moderators: Any, engine: str, residual: str,
              therapist: str | None, random_slope: Any, control_outcome: Any, prior_outcome: Any,
              progress: bool, checks: Any, executor: Any, reciprocal: bool = True,
              slope_draws: int = DRAWS) -> Plan:
    """Check analyze()'s arguments against the panel and decide what runs (no fit).

    Warns (UserWarning, at analyze()'s caller) when the series are too short for the
    person-mean decomposition.
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
                 "checks": list(checks), "executor": executor_name(executor), "reciprocal": reciprocal,
                 "slope_draws": slope_draws}
    slope_draws = check_draws(slope_draws, "slope_draws")  # before any fit
    random_slope = design.check_random_slope(random_slope)
    control_outcome, prior_outcome = design.check_control(control_outcome, prior_outcome)
    leads = check_leads(panel, leads, "analyze()")
    moderators = [moderators] if isinstance(moderators, str) else moderators
    unknown = [m for m in moderators if m not in panel.moderators]
    if unknown:
        raise PylmeError(f"{unknown} were not prepared as moderators; call prepare(..., moderators={moderators!r})")

    notes = list(panel.notes)
    short = design.short_series(panel)
    if short:
        warnings.warn(short, UserWarning, stacklevel=3)  # at analyze()'s caller
        notes.append("Warning: " + short)
    leads, skipped = design.usable_leads(panel, leads)
    notes.extend(skipped)
    if not leads:
        raise PylmeError("no requested lead has at least 2 rows for most patients: " + " ".join(skipped))
    therapist, why = choose_therapist(panel, therapist)
    if why:
        notes.append(why)
    main_lead = _main_lead(leads)
    slope, slope_note = _main_slope(panel, random_slope, main_lead, therapist)
    main_model = lead_model(main_lead, therapist=therapist, residual=residual, engine=engine,
                            random_slope=slope, control_outcome=control_outcome, prior_outcome=prior_outcome)
    lead_names = dict(zip(leads, lead_step_names(leads)))
    ar1_engine = diagnostics.ar1_engine(main_model)
    run_ar1 = "ar1" in checks and residual == "iid"
    if residual != "iid":
        notes.append(f"The main model already has {residual} residuals; no AR(1) comparison was run.")
    elif not run_ar1:
        notes.append("The AR(1) comparison of the residuals was skipped (checks=()).")
    run_reciprocal, why = _reciprocal_feasible(panel, reciprocal)
    if why:
        notes.append(why)
    plan = Plan(panel=panel, leads=leads, moderators=moderators, main_lead=main_lead, main_model=main_model,
                residual=residual, therapist=therapist, random_slope=random_slope,
                control_outcome=control_outcome, prior_outcome=prior_outcome, slope_note=slope_note,
                lead_names=lead_names, ar1_engine=ar1_engine, run_ar1=run_ar1, run_reciprocal=run_reciprocal,
                step_names=[], notes=tuple(notes), arguments=arguments, slope_draws=slope_draws)
    object.__setattr__(plan, "step_names", _step_names(plan))
    return plan


def _reciprocal_feasible(panel: AlliancePanel, reciprocal: Any) -> tuple[bool, str]:
    """Whether the RI-CLPM part runs, and why not (its refusal to fit said in words)."""
    if not isinstance(reciprocal, bool):
        raise PylmeError(f"reciprocal must be True or False, got {reciprocal!r}")
    if not reciprocal:
        return False, ("The reciprocal dynamics (RI-CLPM) were not fitted (reciprocal=False): no symptom -> "
                       "alliance estimate, and the total effects at later leads are not estimated.")
    try:  # the waves the fit would use, without fitting: the same check reciprocal() makes
        choose_waves(session_ratings(panel), None)
    except PylmeError as exc:
        return False, (f"The reciprocal dynamics (RI-CLPM) were not fitted: {' '.join(str(exc).split())}; "
                       "no symptom -> alliance estimate, and the total effects at later leads are not estimated.")
    return True, ""


def _regression_leads(plan: Plan) -> list[int]:
    """The leads whose per-lead regression ("total" in AllianceModel's sense) runs besides the
    main model: lead 0 always (the concurrent association); later leads only without the
    RI-CLPM, as the appendix's per-lead regression (biased: see its estimand)."""
    return [k for k in plan.leads if k != plan.main_lead and (k == 0 or not plan.run_reciprocal)]


def _step_names(plan: Plan) -> list[str]:
    """Every step of the bar, named as it runs; after the main model they are independent."""
    leads, names = plan.leads, plan.lead_names
    return ["main model", "between level", *(names[k] for k in _regression_leads(plan)),
            *(f"{names[k]} (direct)" for k in leads if k > 1), *(f"moderator {m}" for m in plan.moderators),
            "heterogeneity", *(plan.ar1_names.values() if plan.run_ar1 else ()),
            *(["reciprocal dynamics"] if plan.run_reciprocal else ()), "autocorrelation"]


def part_steps(plan: Plan, main_fit: Any) -> list[Step]:
    """The steps after the main model, in the report's order (a main model without a
    random slope leaves the heterogeneity step with nothing to run)."""
    base, panel = main_fit.model, plan.panel
    options = _options(base, plan.control_outcome, plan.prior_outcome)
    names = plan.lead_names
    steps: list[Step] = [(Part("level", "between level", panel, detail=(plan.therapist, base.engine)), None)]
    steps += [(Part("lead", names[k], panel, detail=(k, "total", options)), None) for k in _regression_leads(plan)]
    steps += [(Part("lead", f"{names[k]} (direct)", panel, detail=(k, "direct", options)), None)
              for k in plan.leads if k > 1]  # the direct effect is the total effect at leads 0 and 1
    steps += [(Part("moderator", f"moderator {m}", panel, base, m), None) for m in plan.moderators]
    if base.random_slope:
        steps.append((Part("heterogeneity", "heterogeneity", panel, base,
                           (panel.outcome_better, plan.main_name, plan.slope_draws), fit=main_fit), None))
    else:
        steps.append((None, _done("heterogeneity")))
    if plan.run_ar1:
        steps += _ar1_steps(plan, main_fit)
    if plan.run_reciprocal:
        steps.append((Part("reciprocal", "reciprocal dynamics", panel, detail=tuple(plan.leads)), None))
    return steps


def _ar1_steps(plan: Plan, main_fit: Any) -> list[Step]:
    base, names = main_fit.model, plan.ar1_names
    steps: list[Step] = []
    if base == base.replace(engine=plan.ar1_engine, residual="iid"):
        # the main model is the check's independent-residual model: reuse its fit
        row, row_notes, row_fits = diagnostics.ar1_row(plan.panel, base, "iid", fit=main_fit)
        steps.append((None, {**_done(names["iid"]), "row": row, "notes": row_notes, "fits": flag_rows(row_fits)}))
    else:
        steps.append((Part("ar1", names["iid"], plan.panel, base, "iid"), None))
    steps.append((Part("ar1", names["ar1"], plan.panel, base, "ar1"), None))
    return steps


def _done(name: str) -> dict[str, Any]:
    return {"name": name, "notes": [], "fits": [], "seconds": 0.0, "cpu_seconds": 0.0}


def _main_slope(panel: AlliancePanel, random_slope: Any, main_lead: int, therapist: str) -> tuple[bool, str]:
    if random_slope != "auto":
        return bool(random_slope), ""
    capable, reason = design.slope_capacity(panel, main_lead, therapist)
    return bool(capable), ("" if capable else f"Random slope dropped (random_slope='auto'): {reason}.")


def _main_lead(leads: Sequence[int]) -> int:
    if 1 in leads:
        return 1
    ahead = [k for k in leads if k > 0]
    return ahead[0] if ahead else leads[0]


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


def executor_name(executor: Any) -> str:
    """How the report names where its parts ran."""
    if executor is None:
        return "none (this process)"
    workers = getattr(executor, "_max_workers", None)
    return type(executor).__name__ + (f" ({workers} workers)" if workers else "")

