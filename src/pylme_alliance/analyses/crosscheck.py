"""crosscheck(): an alliance model fitted by statsmodels and by R, compared term by term.

statsmodels fits the model first (as :class:`AllianceModel` writes it for statsmodels);
:func:`~pylme_alliance.from_statsmodels` then fits that same model in R and explains
every disagreement. Where statsmodels cannot express the requested model, both programs
fit the closest model it can, and the notes say which terms are comparable.
"""
from __future__ import annotations

import warnings
from typing import Any

from ..errors import EngineCannotExpress, PylmeError
from ..models.choices import choose_therapist
from ..models.model import AllianceModel
from ..panel.prepare import AlliancePanel
from ..sm_crosscheck import Crosscheck, crosscheck_result

#: The constant grouping column statsmodels needs to cross therapists with patients.
_ONE_GROUP = "crosscheck_all"


def _statsmodels_design(model: AllianceModel, spec: Any) -> tuple[str, str, dict[str, str] | None, list[str]]:
    """(groups, re_formula, vc_formula, notes) of the closest model statsmodels expresses."""
    slope = model.random_slope
    if model.therapist == "none":
        return ("patient", "~alliance_within" if slope else "~1", None,
                ["patient random intercept" + (" and alliance_within slope (correlated)" if slope else "")
                 + " in both programs: every term of the R model is compared"])
    vc = {"patient": "0 + C(patient)"}
    if slope:
        vc["patient_slope"] = "0 + C(patient):alliance_within"
    lost = ("statsmodels' variance components are independent, so both programs fit the patient "
            "intercept and alliance_within slope uncorrelated; the R model's patient intercept-slope "
            "correlation is not compared. " if slope else "")
    if model.therapist == "nested":
        return ("therapist", "1", vc,
                [lost + "Compared: fixed effects, therapist SD, patient-within-therapist SD"
                 + (", patient slope SD" if slope else "") + " and residual SD (lme4: (1 | therapist) + "
                 "(1 | therapist:patient)" + (" + (0 + alliance_within | therapist:patient)" if slope else "") + ")"])
    crossed = {"therapist": "0 + C(therapist)", **vc}
    return (_ONE_GROUP, "0", crossed,
            [lost + "Therapists are crossed with patients: statsmodels fits them as variance components of "
             "one all-sessions group (slow on large data). Compared: fixed effects, therapist SD, patient SD"
             + (", patient slope SD" if slope else "") + " and residual SD"])


def crosscheck(panel: AlliancePanel, *, model: AllianceModel | None = None) -> Crosscheck:
    """Fit an alliance model with statsmodels MixedLM and with R, and compare.

    Parameters
    ----------
    panel : AlliancePanel
    model : AllianceModel, optional
        Default ``AllianceModel(therapist="none")``: patient random intercept and
        within slope, which both programs express the same way. With therapists
        (``"nested"`` or ``"crossed"``) both fit the closest model statsmodels can express
        (patient intercept and slope uncorrelated) and the notes say which terms are
        compared. Its residual must be ``"iid"`` (statsmodels has no residual
        correlation). Engine ``"glmmtmb"`` is compared through glmmTMB; ``"lme4"`` and
        ``"nlme"`` through lme4 (the same model).

    Returns
    -------
    Crosscheck
        As :func:`~pylme_alliance.from_statsmodels`: ``.table`` with ``agree``/``why``,
        ``.notes``, ``.loglik``, ``.r_fit``, ``.statsmodels_result``.
    """
    from statsmodels.regression.mixed_linear_model import MixedLM

    if not isinstance(panel, AlliancePanel):
        raise PylmeError("crosscheck() takes the AlliancePanel made by prepare()")
    model = model or AllianceModel(therapist="none")
    if not isinstance(model, AllianceModel):
        raise PylmeError(f"model must be an AllianceModel, got {type(model).__name__}")
    model = model.replace(therapist=choose_therapist(panel, model.therapist)[0])
    if model.residual != "iid":
        raise EngineCannotExpress(f"statsmodels MixedLM has no residual correlation structure, so "
                                  f"residual={model.residual!r} cannot be cross-checked; use residual='iid'")
    engine = "glmmtmb" if model.engine == "glmmtmb" else "lme4"
    if model.therapist == "crossed":
        # AllianceModel writes no crossed statsmodels model: take its fixed part and the
        # lme4 model's frame (which has the therapist column)
        spec = model.replace(engine="statsmodels", therapist="none").spec(panel)
        frame = model.replace(engine="lme4").model_frame(panel)
    else:
        sm_model = model.replace(engine="statsmodels")
        spec = sm_model.spec(panel)
        frame = sm_model.model_frame(panel)
    groups, re_formula, vc_formula, notes = _statsmodels_design(model, spec)
    if groups == _ONE_GROUP:
        frame = frame.assign(**{_ONE_GROUP: 1})
    reml = model.reml if model.reml is not None else model.engine != "glmmtmb"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            sm_model_obj = MixedLM.from_formula(spec.formula, frame, groups=groups, re_formula=re_formula,
                                                vc_formula=vc_formula, missing="drop")
            result = sm_model_obj.fit(reml=bool(reml))
        except (ValueError, ArithmeticError) as exc:
            raise PylmeError(f"statsmodels MixedLM failed on the alliance model: {exc}") from exc
    sm_warnings = tuple(dict.fromkeys(str(w.message) for w in caught))
    if model.engine == "nlme":
        notes.append("nlme was asked for; the comparison uses lme4, which fits the same model")
    return crosscheck_result(result, engine=engine, sm_warnings=sm_warnings, notes=notes)
