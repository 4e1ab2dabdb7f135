"""Which fit the heterogeneity of the within effect is read from, and where its random
slope sits in that fit's tables.

A random alliance slope soaks up what the model leaves out: where patients improve at
different rates, the patients' trajectories (issue 18: the slope test rejected a true SD
of 0 in 44% of trials). Heterogeneity is therefore read from the model with each
patient's own session slope (``AllianceModel(random_trend=True)``), where the alliance
slope is its own, uncorrelated random term.
"""
from __future__ import annotations

import re
import warnings
from typing import Any

import pandas as pd

from ..errors import PylmeError
from .protocols import FittedAllianceModel

WITHIN = "alliance_within"


def trend_model_fit(fit: FittedAllianceModel) -> tuple[FittedAllianceModel, list[str]]:
    """``fit`` refitted with each patient's own session slope (itself when its model has
    one already, or has no random alliance slope, or no session trend), and the notes
    that say so (the refit's warnings are kept in them)."""
    model = getattr(fit, "model", None)
    if model is None or fit.panel is None or model.random_trend or not model.random_slope \
            or not model.session_trend:
        return fit, []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            refit = model.replace(random_trend=True).fit(fit.panel)
        except PylmeError as exc:  # e.g. nlme's general 3 x 3 block does not converge: say so, go on
            return fit, [f"the model with each patient's own session slope could not be fitted "
                         f"({' '.join(str(exc).split())}); heterogeneity is read from the fit's own random "
                         "slope, which may take patients' different rates of change for differences in the "
                         "alliance effect"]
    notes = ["heterogeneity is read from the model with each patient's own session slope "
             "(random_trend=True), so that patients' different rates of change are not taken for "
             "differences in the alliance effect"]
    # the dynamic-panel caution is the main fit's to say (it says it once); intercepts at 0
    # are expected with the decomposed control (the methods say so)
    notes += list(dict.fromkeys(f"model with the patients' session slopes: {' '.join(str(w.message).split())}"
                                for w in caught if w.category.__name__ != "NickellWarning"
                                and "boundary (singular) fit" not in str(w.message)))
    return refit, notes


def slope_group(fit: FittedAllianceModel) -> str:
    """The ran_pars group of the random slope of ``alliance_within``."""
    rows = fit.ran_pars_table[fit.ran_pars_table["term"] == f"sd__{WITHIN}"]
    if rows.empty and (fit.ran_pars_table["group"].astype(str) == "patient_slope").any():
        raise PylmeError("statsmodels with a therapist term holds the slope as a variance component "
                         "(uncorrelated, without per-patient slopes); for heterogeneity() use "
                         "AllianceModel(engine='statsmodels', therapist='none') or an R engine")
    if rows.empty:
        raise PylmeError("this model has no random slope of alliance_within; fit it with "
                         "AllianceModel(random_slope=True) to study heterogeneity")
    return str(rows["group"].iloc[0])


def ran_vals_group(group: str, ran_vals: pd.DataFrame) -> str:
    """The ran_vals group of a ran_pars group: lme4 names a grouping factor's second and
    third terms "patient.1", "patient.2" (and "therapist:patient" as "therapist.patient")
    in its variance table, while the random effects keep the factor's own name."""
    known = set(ran_vals["group"].astype(str))
    if group in known:
        return group
    base = re.sub(r"\.\d+$", "", group)
    for candidate in (base, base.replace(".", ":")):
        if candidate in known:
            return candidate
    return group


def calibrated_alone(fit: FittedAllianceModel, test: Any) -> bool:
    """Whether the slope is its own (uncorrelated) random term and its test calibrated:
    then an SD at 0 means "no variation seen", not "not identified"."""
    model = getattr(fit, "model", None)
    return bool(getattr(model, "random_trend", False) and getattr(model, "random_slope", False)
                and test is not None and getattr(test, "calibrated", False))
