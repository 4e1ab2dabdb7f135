"""AllianceModel: the alliance-outcome model of Zilcha-Mano & Errázuriz (2015), written
for each engine.

    outcome_lead{k} ~ outcome_within + outcome_between + outcome_before_within + outcome_before_between
                      + session + session_between + alliance_within + alliance_between
                      [+ moderator + alliance_within:moderator + alliance_between:moderator]
                      + patient intercept (+ alliance_within slope) + therapist variance

The lagged outcome enters as the patient's mean (``outcome_between``) and the deviation
from it (``outcome_within``), the Mundlak device, with the patient's mean session
(``session_between``) beside the session trend; the outcome of the session before the
alliance rating is controlled too, as its own deviation and patient mean
(``outcome_before_within``, ``outcome_before_between``), because under
symptom->alliance feedback it is what shaped that alliance (METHODS.md, best practice 4;
recovery numbers in benchmarks/README.md). Every mean is taken over the rows the model
fits, so the Mundlak terms are those of the fixed-effects estimator on the same rows; with
the panel's person-mean decomposition the alliance, too, is split over those rows (its
deviations average zero over them), so ``alliance_within`` is purely within-patient. ``control_outcome="raw"`` gives the former model
with the raw lagged ``outcome``; ``effect="direct"`` controls the outcome just before
t + k and the alliance deviations in between (see :func:`~.duration.duration`).

The engines see a model frame in the field's own names (patient, therapist, session,
outcome, ...), built from the panel's roles. The user's column names therefore never
have to be quoted into formula text, whatever characters they contain; moderators keep
their names when those are plain identifiers and are mapped back in every table when
they are not.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import pandas as pd

from ..errors import EngineCannotExpress, PylmeError, user_stacklevel, warnings_once
from ..panel.prepare import AlliancePanel, direct_columns
from .boundary import drop_absorbed_intercepts
from .choices import THERAPIST_CHOICES, choose_therapist
from .estimands import CONTROL_OUTCOME_BIAS
from .fit import AllianceFit
from .frame import BEFORE, KeptMeans, before_values
from .frame import model_frame as _model_frame
from .reliability import recovery_note
from .second_opinion import confirm_boundary_optimum
from .spec import ENGINES, RESIDUAL, SESSION_FACTOR, ModelSpec
from .spec import model_name as _model_name

__all__ = ["AllianceModel", "AllianceFit", "ModelSpec", "NickellWarning"]

NLME_CONTROL = {"maxIter": 200, "msMaxIter": 200, "niterEM": 50}
CONTROL_OUTCOME = ("decomposed", "raw", False)
EFFECTS = ("total", "direct")
# Below this median series length the Nickell bias of the lagged-outcome slope is worth a
# warning (-(1+rho)/(T-1) is about -0.09 at T = 20 for rho = 0.7).
NICKELL_MIN_T = 20
#: prior_outcome="auto" controls the outcome before when the median patient keeps this many rows.
PRIOR_MIN_ROWS = 3


def _patient_codes(panel: AlliancePanel) -> tuple[np.ndarray, int]:
    """Integer codes of the panel's patients in sorted-id order (-1: no id), and how many."""
    codes, uniques = pd.factorize(panel.data[panel.roles["patient"]], sort=True)
    return np.asarray(codes, dtype=np.int64), len(uniques)


class NickellWarning(UserWarning):
    """The lagged-outcome slope of a decomposed-control fit carries dynamic-panel bias."""


class PriorOutcomeWarning(UserWarning):
    """prior_outcome="auto" left the outcome of the session before uncontrolled."""


@dataclass(frozen=True)
class AllianceModel:
    """The alliance-outcome model, independent of any data.

    Parameters
    ----------
    lead : int
        Model the outcome ``lead`` sessions ahead (``outcome_lead{lead}`` of the panel).
        ``lead=0`` models the outcome of the same session: the concurrent association
        (it needs ``control_outcome=False``, as an outcome cannot control itself).
    therapist : {"auto", "nested", "crossed", "none"}
        Therapist variance: patients nested in therapists, crossed with them (patients
        who saw several therapists), or no therapist term. ``"auto"`` (default) chooses
        from the panel as :func:`~pylme_alliance.analyze` does
        (:func:`.choices.choose_therapist`: no therapist column -> "none", a patient with
        several therapists -> "crossed", else "nested"); the fit's ``model`` holds the
        choice and ``notes`` says it.
    residual : {"iid", "ar1", "car1"}
        Residual correlation within patient: independent, AR(1) on session number, or
        continuous-time AR(1) on the panel's ``time`` column (in days).
    random_slope : bool
        Let the within-patient alliance effect vary between patients ("one size does not
        fit all").
    moderators : tuple of str
        Moderators (prepared by :func:`prepare` with ``moderators=``) entering with
        their interactions with alliance_within and alliance_between.
    control_outcome : {"decomposed", "raw", False}
        How the current outcome (the previous symptom level of the lead) is controlled.

        - ``"decomposed"`` (default): as the patient's mean outcome (``outcome_between``)
          plus the deviation from it (``outcome_within``), the Mundlak device. How close
          the within-alliance coefficient comes to the truth depends on the design: the
          recovery study's figures per design are in :data:`.reliability.MEASURED`, and a
          fit quotes only the measured design closest to its data (in its Nickell note);
          its status says "unreliable here: ..." where that design's bias exceeded 10% or
          its coverage fell below .90 (very short series, sparse alliance ratings). The
          price is Nickell bias of about -(1+rho)/(T-1) on the
          ``outcome_within`` slope itself, which :meth:`fit` warns about
          (:class:`NickellWarning`) when the median series is shorter than 20 sessions.
        - ``"raw"``: the raw outcome beside the patient random intercept (the model
          before issue 9). Its slope absorbs part of the patient level, and under
          feedback the within-alliance effect is biased toward zero (benchmarks/README.md).
        - ``False``: no outcome control; the between coefficient is then a level
          difference at that lead, and the within coefficient also carries the
          outcome's own trajectory.

    prior_outcome : {"auto", True, False}
        Also control the outcome of the session before (t - 1, by session number), in
        the same form as ``control_outcome`` (ignored without outcome control).
        ``"auto"`` (default) does so when the median patient keeps at least
        ``PRIOR_MIN_ROWS`` (3) fitted rows with it, and otherwise fits without it and
        warns; the fit's ``model`` holds the choice made. Under symptom->alliance feedback (symptoms at t - 1 shape the alliance
        at t) it is the confounder the current outcome does not block (without it the
        within effect is biased toward zero; benchmarks/README.md). Rows whose session t - 1 was not attended (each patient's first
        session, sessions after a missed one) are left out.

        With the outcome controlled, the ``alliance_between`` coefficient is a
        conditional change coefficient, not a level difference; the
        between-patient level effect is :func:`~.between.between_effect`.
        ``True`` is accepted for older code and means ``"decomposed"`` (it meant the
        raw outcome before; a FutureWarning says so).
    effect : {"total", "direct"}
        ``"total"`` (default) controls the outcome at t; for lead k > 1 the effect
        includes what is carried through the outcomes in between. ``"direct"`` controls
        the most recent outcome before t + k (``outcome_lead<k-1>``, decomposed like the
        current outcome) and the alliance deviations at t + 1 .. t + k - 1, so an effect
        that exists only through Y_t+1 comes out near 0. Both are the same at lead 1.
    session_trend : bool
        Include the session number as a linear time trend.
    random_trend : bool
        Let each patient have their own rate of change: a random slope of the session
        number in the patient's block (``(1 + session + alliance_within | patient)``).
        Where patients improve at different rates and the alliance has a trend, a random
        alliance slope without it soaks up the patients' trajectories and the
        heterogeneity test rejects far too often (issue 18); :meth:`AllianceFit.heterogeneity`
        tests the alliance slope in this model. Needs ``session_trend=True``.
    engine : {"lme4", "nlme", "glmmtmb", "statsmodels"}
    reml : bool, optional
        REML (default for lme4, nlme, statsmodels) or ML (default for glmmTMB).
    """

    lead: int = 1
    therapist: str = "auto"
    residual: str = "iid"
    random_slope: bool = True
    moderators: tuple[str, ...] = ()
    control_outcome: str | bool = "decomposed"
    prior_outcome: bool | str = "auto"
    session_trend: bool = True
    random_trend: bool = False
    engine: str = "lme4"
    reml: bool | None = None
    effect: str = "total"

    def __post_init__(self) -> None:
        if isinstance(self.moderators, str):
            object.__setattr__(self, "moderators", (self.moderators,))
        else:
            object.__setattr__(self, "moderators", tuple(self.moderators))
        engine = {"glmmTMB": "glmmtmb"}.get(self.engine, self.engine)
        object.__setattr__(self, "engine", engine)
        if self.engine not in ENGINES:
            raise PylmeError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.therapist not in THERAPIST_CHOICES:
            raise PylmeError(f"therapist must be one of {THERAPIST_CHOICES}, got {self.therapist!r}")
        if self.residual not in RESIDUAL:
            raise PylmeError(f"residual must be one of {RESIDUAL}, got {self.residual!r}")
        if isinstance(self.lead, bool) or int(self.lead) != self.lead or self.lead < 0:
            raise PylmeError(f"lead must be a non-negative integer, got {self.lead!r}")
        object.__setattr__(self, "lead", int(self.lead))
        control = self.control_outcome
        if control is True:
            warnings.warn(
                "AllianceModel(control_outcome=True) now means 'decomposed' (the lagged outcome as "
                "patient mean + deviation); use control_outcome='raw' for the raw lagged outcome "
                "of earlier versions", FutureWarning, stacklevel=3)
            control = "decomposed"
        if control not in CONTROL_OUTCOME or (control == 0 and control is not False):
            raise PylmeError(f"control_outcome must be 'decomposed', 'raw' or False, got {self.control_outcome!r}")
        object.__setattr__(self, "control_outcome", control)
        if self.prior_outcome != "auto" or not isinstance(self.prior_outcome, str):
            if not isinstance(self.prior_outcome, (bool, np.bool_)):
                raise PylmeError(f"prior_outcome must be 'auto', True or False, got {self.prior_outcome!r}")
            object.__setattr__(self, "prior_outcome", bool(self.prior_outcome))
        if self.effect not in EFFECTS:
            raise PylmeError(f"effect must be 'total' or 'direct', got {self.effect!r}")
        if self.random_trend and not self.session_trend:
            raise PylmeError("random_trend=True gives each patient their own session slope around the common "
                             "trend; it needs session_trend=True")
        if self.lead == 0 and control is not False:
            raise PylmeError(
                "lead=0 models the outcome of the same session (the concurrent association), which "
                "cannot also be its own control: use AllianceModel(lead=0, control_outcome=False)")
        self._check_expressible()

    def replace(self, **changes: Any) -> AllianceModel:
        """A copy with some options changed."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return AllianceModel(**values)

    # ------------------------------------------------------------ what engines can do
    def _check_expressible(self) -> None:
        e, r, t = self.engine, self.residual, self.therapist
        if e == "lme4" and r != "iid":
            raise EngineCannotExpress(
                f"lme4 has no residual correlation structure, so residual={r!r} cannot be fitted with "
                f"engine='lme4'; use engine='nlme'" + (" or engine='glmmtmb'" if r == "ar1" else ""))
        if e == "statsmodels" and r != "iid":
            raise EngineCannotExpress(
                f"statsmodels MixedLM has no residual correlation structure (residual={r!r}); "
                "use engine='nlme' or engine='glmmtmb'")
        if e == "nlme" and t == "crossed":
            raise EngineCannotExpress(
                "nlme cannot express therapists crossed with patients; use engine='glmmtmb' "
                "(which also does AR(1) residuals) or engine='lme4'")
        if e == "glmmtmb" and r == "car1":
            raise EngineCannotExpress(
                "glmmTMB's ar1() needs equally spaced times; for CAR(1) on calendar days use engine='nlme'")

    def _direct_columns(self) -> tuple[str | None, list[str]]:
        """The prior outcome and intermediate alliance columns of a direct model."""
        if self.effect != "direct":
            return None, []
        return direct_columns(self.lead)

    def _outcome_terms(self) -> list[str]:
        """The outcome-control terms, by ``control_outcome`` and ``effect``."""
        prior, _ = self._direct_columns()
        if self.control_outcome is False:
            return []
        before = [BEFORE] if self.prior_outcome else []
        if self.control_outcome == "raw":
            return [prior or "outcome", *before]
        deviation = "outcome_within" if prior is None else prior.replace("outcome_", "outcome_within_")
        return [deviation, "outcome_between", *(f"{b}_{part}" for b in before for part in ("within", "between"))]

    def resolve(self, panel: AlliancePanel) -> AllianceModel:
        """This model with ``therapist="auto"`` and ``prior_outcome="auto"`` decided for
        ``panel`` (itself when neither is "auto")."""
        model = self
        if model.therapist == "auto":
            model = model.replace(therapist=choose_therapist(panel, "auto")[0])
        if model.prior_outcome == "auto":
            model = model.replace(prior_outcome=model._prior_rows(panel) >= PRIOR_MIN_ROWS)
        return model

    def _prior_rows(self, panel: AlliancePanel) -> float:
        """Median fitted rows per patient when the outcome before is controlled."""
        if self.control_outcome is False or self.lead == 0:
            return float("inf")
        kept = self.replace(prior_outcome=True)._kept_rows(panel)
        codes, n_patients = _patient_codes(panel)
        # every patient counts, those left with no row too (rows without an id: no group)
        counts = KeptMeans(codes, kept, n_patients).counts
        return float(np.median(counts)) if n_patients else 0.0

    def _kept_rows(self, panel: AlliancePanel) -> np.ndarray:
        """Rows the engine will fit (before moderators' own missing values)."""
        data, roles = panel.data, panel.roles
        outcome = data[roles["outcome"]].to_numpy(dtype=float)
        kept = np.isfinite(outcome) & data["alliance_within"].notna().to_numpy()
        response = f"outcome_lead{self.lead}"
        if response in data:
            kept &= data[response].notna().to_numpy()
        prior, between_sessions = self._direct_columns()
        for column in [prior, *between_sessions]:
            if column is not None and column in data:
                kept &= data[column].notna().to_numpy()
        if self.prior_outcome is True and self.control_outcome is not False:
            kept &= np.isfinite(before_values(panel))
        return kept

    def _session_terms(self, panel: AlliancePanel) -> list[str]:
        """The session trend and, with the decomposed control, the patient's mean session
        (the Mundlak term that keeps the trend a within-patient one when dropout depends
        on the patient: without it the within effect was 33% too large on the default
        simulated trial). In a balanced panel every patient has the same mean session and
        the term is left out (it would be collinear with the intercept)."""
        if not self.session_trend:
            return []
        if self.control_outcome == "decomposed" and self._mean_session_varies(panel):
            return ["session", "session_between"]
        return ["session"]

    def _mean_session_varies(self, panel: AlliancePanel) -> bool:
        data, roles = panel.data, panel.roles
        session = data[roles["session"]].to_numpy(dtype=float)
        kept = self._kept_rows(panel)
        codes, n_patients = _patient_codes(panel)
        by_patient = KeptMeans(codes, kept, n_patients)
        means = by_patient.per_patient(session)[by_patient.present]
        return bool(len(means) > 1 and means.max() - means.min() > 1e-9 * max(1.0, abs(means.mean())))

    def control_bias(self) -> str:
        """What is known about the bias of this model's outcome control (for notes)."""
        return CONTROL_OUTCOME_BIAS[self.control_outcome]

    # ------------------------------------------------------------ formula per engine
    def spec(self, panel: AlliancePanel) -> ModelSpec:
        """Write the model for this engine and panel (no fitting)."""
        if not isinstance(panel, AlliancePanel):
            raise PylmeError("fit() and formula() take the AlliancePanel made by prepare()")
        if self.prior_outcome == "auto" or self.therapist == "auto":
            return self.resolve(panel).spec(panel)
        if self.lead != 0 and self.lead not in panel.leads:
            raise PylmeError(f"the panel has no outcome_lead{self.lead}; prepare it with "
                             f"leads including {self.lead} (it has leads={panel.leads})")
        prior, between_sessions = self._direct_columns()
        missing = [c for c in [prior, *between_sessions] if c is not None and c not in panel.data]
        if missing:
            raise PylmeError(f"effect='direct' needs the panel columns {missing}; prepare the panel "
                             "again with this version of prepare()")
        therapist, _ = choose_therapist(panel, self.therapist)
        if self.residual == "car1" and panel.roles.get("time") is None:
            raise PylmeError("residual='car1' needs calendar time; give prepare(time=...) (e.g. days)")
        moderator_names = {}
        mod_terms: list[str] = []
        for i, name in enumerate(self.moderators):
            if name not in panel.moderators:
                raise PylmeError(f"moderator {name!r} was not prepared; call prepare(..., moderators=[{name!r}, ...])")
            column = _model_name(panel.moderators[name].column, i)
            moderator_names[column] = name
            mod_terms.append(column)
        response = f"outcome_lead{self.lead}"
        fixed = self._outcome_terms() + self._session_terms(panel)
        fixed += ["alliance_within", "alliance_between", *between_sessions]
        fixed += mod_terms + [f"alliance_within:{m}" for m in mod_terms] + [f"alliance_between:{m}" for m in mod_terms]
        rhs = " + ".join(fixed)
        fixed_formula = f"{response} ~ {rhs}"
        slope = "1 + alliance_within" if self.random_slope else "1"
        common = dict(engine=self.engine, response=response, fixed_terms=tuple(fixed),
                      moderator_names=moderator_names)
        if self.engine in ("lme4", "glmmtmb"):
            patient_group = "therapist:patient" if therapist == "nested" else "patient"
            re = [f"({slope} | {patient_group})"]
            if self.random_trend:
                # the patient's own rate of change, uncorrelated with the other terms: with the
                # patient's mean outcome in the fixed part, an intercept correlated with a session
                # slope is rank-deficient (correlation -1); the alliance slope alone is then
                # tested on one parameter (its variance)
                re = [f"(1 | {patient_group})", f"(0 + session | {patient_group})"]
                re += [f"(0 + alliance_within | {patient_group})"] if self.random_slope else []
            if therapist != "none":
                re.insert(0, "(1 | therapist)")
            dispformula = None
            if self.residual == "ar1":
                re.append(f"ar1({SESSION_FACTOR} + 0 | {patient_group})")
                dispformula = "~0"
            return ModelSpec(formula=f"{fixed_formula} + {' + '.join(re)}", dispformula=dispformula, **common)
        if self.engine == "nlme":
            from ..engines.correlation import AR1, CAR1

            if self.random_trend:
                slope = slope.replace("1", "1 + session", 1)
            if therapist == "nested":
                random: Any = {"therapist": "~ 1", "patient": f"~ {slope}"}
                grouping = "therapist/patient"
            else:
                random = f"~ {slope} | patient"
                grouping = "patient"
            correlation = None
            if self.residual == "ar1":
                correlation = AR1(f"~ session | {grouping}")
            elif self.residual == "car1":
                correlation = CAR1(f"~ time_days | {grouping}")
            return ModelSpec(formula=fixed_formula, random=random, correlation=correlation, **common)
        # statsmodels
        if therapist == "none":
            return ModelSpec(formula=fixed_formula, groups="patient",
                             re_formula="~" + " + ".join([*(["session"] if self.random_trend else []),
                                                          *(["alliance_within"] if self.random_slope else [])]
                                                         or ["1"]), **common)
        vc = {"patient": "0 + C(patient)"}
        if self.random_trend:
            vc["patient_trend"] = "0 + C(patient):session"
        if self.random_slope:
            # statsmodels cannot correlate a variance component's intercept and slope
            vc["patient_slope"] = "0 + C(patient):alliance_within"
        return ModelSpec(formula=fixed_formula, groups="therapist", re_formula="~1", vc_formula=vc, **common)

    def formula(self, panel: AlliancePanel) -> str:
        """The model as the engine is given it, in the field's names (see ``panel.roles``
        for which of your columns each name stands for)."""
        return self.spec(panel).describe()

    # ------------------------------------------------------------ data and fit
    def model_frame(self, panel: AlliancePanel) -> pd.DataFrame:
        """The columns the engine needs, renamed to the field's names (a new frame)."""
        model = self.resolve(panel)
        return _model_frame(panel, model.spec(panel), model)

    @warnings_once
    def fit(self, panel: AlliancePanel) -> AllianceFit:
        """Fit the model to a prepared panel.

        ``"auto"`` options are decided first (the fit's ``model`` holds the choices and
        ``notes`` says them). A random intercept estimated at 0 because the decomposed
        outcome control carries it (lme4, glmmTMB) is removed and the model refitted
        without it (:mod:`.boundary`; ``removed_terms`` and ``notes`` say so). Each
        warning class is raised once per call, with its full text.

        Returns
        -------
        AllianceFit
            A :class:`~pylme_alliance.MixedFit` with the alliance-specific summaries.
        """
        model = self.resolve(panel)
        notes = [choose_therapist(panel, "auto")[1]] if self.therapist == "auto" else []
        if self.prior_outcome == "auto" and model.prior_outcome is False and self.control_outcome is not False \
                and self.lead > 0:
            warnings.warn(
                f"the outcome of the session before (t - 1) is not controlled: with it the median patient "
                f"would keep {self._prior_rows(panel):g} fitted row(s) (fewer than {PRIOR_MIN_ROWS}), too few "
                "for within-patient estimates; under symptom->alliance feedback the within effect is then "
                "biased toward zero (set prior_outcome=False to silence this)", PriorOutcomeWarning,
                stacklevel=user_stacklevel())
        spec = model.spec(panel)
        frame = _model_frame(panel, spec, model)
        # R's warnings of the fit that is kept reach the caller; a fit replaced by its
        # refit without the absorbed intercepts ("boundary (singular) fit") does not
        with warnings.catch_warnings(record=True) as first_warnings:
            warnings.simplefilter("always")
            first = AllianceFit.from_fit(model._engine_fit(spec, frame), model=model, spec=spec, panel=panel,
                                         notes=tuple(notes))
        with warnings.catch_warnings(record=True) as refit_warnings:
            warnings.simplefilter("always")
            result = drop_absorbed_intercepts(first, lambda reduced: AllianceFit.from_fit(
                model._engine_fit(reduced, frame), model=model, spec=reduced, panel=panel, notes=tuple(notes)))
        for caught in (first_warnings if result is first else refit_warnings):
            warnings.warn(caught.message, caught.category, stacklevel=user_stacklevel())
        message = model._nickell_message(result)
        if message is not None:
            # kept on the fit (the report shows it next to the lagged-outcome slope) and raised
            warnings.warn(message, NickellWarning, stacklevel=user_stacklevel())
            result = replace(result, warnings=tuple(result.warnings) + (message,))
        return result

    def _engine_fit(self, spec: ModelSpec, frame: pd.DataFrame) -> Any:
        """The engine's fit of ``spec`` to the model frame (a MixedFit)."""
        reml = self.reml if self.reml is not None else self.engine != "glmmtmb"
        if self.engine == "lme4":
            from ..engines.lme4 import lmer

            fit = lmer(spec.formula, frame, reml=reml)
            return confirm_boundary_optimum(
                fit, lambda: lmer(spec.formula, frame, reml=reml, control={"optimizer": "bobyqa"}))
        if self.engine == "glmmtmb":
            from ..engines.glmmtmb import glmmtmb

            control = {"profile": True} if self.residual == "ar1" else None
            return glmmtmb(spec.formula, frame, reml=reml, dispformula=spec.dispformula, control=control)
        if self.engine == "nlme":
            from ..engines.nlme import lme

            # nlme's default of 50 iterations is often too few for a random slope plus AR(1)
            return lme(spec.formula, frame, random=spec.random, correlation=spec.correlation, reml=reml,
                       control=NLME_CONTROL)
        from ..engines.statsmodels import mixedlm

        return mixedlm(spec.formula, frame, groups=spec.groups, re_formula=spec.re_formula,
                       vc_formula=spec.vc_formula, reml=reml)

    def _nickell_message(self, fit: AllianceFit) -> str | None:
        """The dynamic-panel caution for the lagged-outcome deviation slope, when it applies.

        Nickell (1981): with T sessions per patient, a within (person-mean centred)
        autoregression is biased by about -(1+rho)/(T-1). The bias sits on the
        ``outcome_within`` slope; the alliance effects are not its subject.
        """
        if self.control_outcome != "decomposed":
            return None
        term = self._outcome_terms()[0]
        t = float(fit.data.groupby("patient", observed=True).size().median())
        if t >= NICKELL_MIN_T:
            return None
        estimate = float(fit.fixef_values.get(term, np.nan))
        # the within effect's recovery on the measured design closest to these data, never
        # a figure from another design (models/reliability.py)
        recovery = recovery_note(fit)
        if t > 2 and np.isfinite(estimate):
            # invert plim b = rho - (1 + rho) / (T - 1) for the rho the bias depends on
            rho = float(np.clip((estimate * (t - 1) + 1) / (t - 2), -0.99, 0.99))
            bias = -(1 + rho) / (t - 1)
            size = f"about {bias:.2f} (rho about {rho:.2f} once corrected)"
        elif t > 2:
            size = f"of order -{2 / (t - 1):.2f} (the slope was not estimated)"
        else:
            size = "unbounded (median T <= 2)"
        return (
            f"the lagged-outcome slope ({term} = {estimate:.3g}) carries dynamic-panel (Nickell) bias of "
            f"about -(1+rho)/(T-1): with a median of T = {t:g} sessions per patient in this fit, {size}. "
            "Read it as a control, not as the outcome's autocorrelation (with the outcome before also "
            "controlled the formula is approximate)." + (f" {recovery}" if recovery else "")
        )

