"""ReciprocalFit: the immutable result of :func:`pylme_alliance.reciprocal` (issue 19)."""
from __future__ import annotations

import html
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import PylmeError
from .impulse import PATHS, impulse_table

METHOD_NAMES = {
    "riclpm": "random-intercept cross-lagged panel model (RI-CLPM, lavaan, FIML)",
    "dpm": "dynamic panel model, ML-SEM (Allison, Williams & Moral-Benito 2017; lavaan, FIML)",
    "mlm": "decomposed multilevel models (AllianceModel and its mirror)",
}


@dataclass(frozen=True)
class ReciprocalFit:
    """Both directions of the alliance-outcome dynamics, fitted together.

    Build it with :func:`pylme_alliance.reciprocal`. The fields cannot be reassigned.

    Attributes
    ----------
    method : str
        "riclpm", "dpm" or "mlm".
    waves : int
        W: wave w is session number w, w = 1..W (for "mlm": the sessions the panel kept).
    effects : pandas.DataFrame
        One row per lagged path: ``direction`` ("alliance->outcome", "outcome->alliance",
        "alliance->alliance", "outcome->outcome"), ``estimate`` (raw points of the
        response per raw point of the predictor, one session later), ``std_estimate``,
        ``std_error``, ``conf_low``, ``conf_high``, ``p_value``, ``estimand``.
        ``std_estimate = estimate * s_within(predictor) / s_within(response)``, where
        ``s_within`` is the pooled within-person SD of a series over the sessions used
        (waves 1..W; "mlm": all sessions): each rating minus its patient's mean of that
        series, df = ratings - patients (:attr:`within_sd`). One
        within-person SD more of the predictor than usual for this patient goes with
        ``std_estimate`` within-person SDs of the response at the next session. The
        same SDs for every method, so the methods' rows compare directly.
    impulse : pandas.DataFrame
        The total response at t+1..t+K to a one-point within-person change at t
        (:func:`.impulse.impulse_table`), delta-method intervals.
    patient_level : dict
        Random-intercept (RI-CLPM) or fixed-effect (DPM) variances of both series on the
        raw scale (``alliance_variance``, ``outcome_variance``), their ``correlation``,
        and ``within_correlation``: the correlation of the within-person innovations
        (RI-CLPM: equal over waves; DPM: the mean over waves 2..W).
    within_sd : dict
        ``alliance`` and ``outcome``: the within-person SDs ``std_estimate`` uses.
    outside : dict
        What the waves leave out: ``sessions`` (rows after wave W), ``patients`` (no
        rating in waves 1..W), ``patients_beyond`` (patients with sessions after W) and
        ``patients_not_prepared`` (input patients prepare() dropped entirely).
    converged, admissible : bool
        Optimiser convergence; admissibility (no negative variance, positive definite
        latent covariance).
    problems : list of str
        Why the fit is inadmissible, and what was refitted (``slopes=True``).
    notes : list of str
        Everything decided on the caller's behalf (wave choice, scaling, ...).
    warnings : list of str
        R's warnings during the fit (also raised as Python warnings).
    paths : numpy.ndarray
        The raw-scale lagged paths in :data:`.impulse.PATHS` order, and
        ``paths_vcov`` their covariance (for :meth:`impulse_responses`).
    parameters : pandas.DataFrame
        lavaan's parameter table of the scaled model (centred and scaled series), for
        reference; empty for "mlm".
    syntax : str
        The lavaan model syntax (fixed names a1..aW, y1..yW).
    """

    method: str
    waves: int
    effects: pd.DataFrame
    impulse: pd.DataFrame
    patient_level: dict[str, float]
    within_sd: dict[str, float]
    outside: dict[str, int]
    converged: bool
    admissible: bool
    paths: np.ndarray
    paths_vcov: np.ndarray
    n_patients: int
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    parameters: pd.DataFrame = field(default_factory=pd.DataFrame)
    syntax: str = ""
    iterations: int | None = None
    fit_measures: dict[str, float] | None = None
    units: dict[str, str] = field(default_factory=lambda: {"alliance": "alliance", "outcome": "outcome"})
    _r_fit: Any = field(default=None, repr=False, compare=False)
    _mlm_fits: tuple[Any, ...] = field(default=(), repr=False, compare=False)

    # ----------------------------------------------------------------- access
    @property
    def lavaan(self) -> Any:
        """The lavaan R object (None for method="mlm")."""
        if self.method == "mlm":
            return None
        if self._r_fit is None:
            raise PylmeError("this ReciprocalFit was detached from R (detach()); refit to get the lavaan object")
        return self._r_fit

    @property
    def mlm_fits(self) -> tuple[Any, ...]:
        """method="mlm": the (alliance->outcome, outcome->alliance) AllianceFits."""
        return self._mlm_fits

    def detach(self) -> ReciprocalFit:
        """A copy without R objects: picklable, usable after R is gone."""
        fits = tuple(f.detach() if hasattr(f, "detach") else f for f in self._mlm_fits)
        return replace(self, _r_fit=None, _mlm_fits=fits)

    def tidy(self) -> pd.DataFrame:
        """The lagged paths (a copy of :attr:`effects`)."""
        return self.effects.copy()

    def path(self, direction: str) -> pd.Series:
        """One row of :attr:`effects` by direction, e.g. ``"alliance->outcome"``."""
        rows = self.effects[self.effects["direction"] == direction]
        if rows.empty:
            raise PylmeError(f"no path {direction!r}; the paths are {list(self.effects['direction'])}")
        return rows.iloc[0]

    def impulse_responses(self, leads: int = 3, *, conf_level: float = 0.95) -> pd.DataFrame:
        """The impulse responses at t+1..t+``leads`` (recomputed; :attr:`impulse` holds
        the default)."""
        return impulse_table(self.paths, self.paths_vcov, leads=leads, conf_level=conf_level,
                             units=self.units)

    # ---------------------------------------------------------------- display
    def _headline(self) -> list[str]:
        status = "converged" if self.converged else "NOT converged"
        status += ", admissible" if self.admissible else ", INADMISSIBLE"
        lines = [f"ReciprocalFit: {METHOD_NAMES.get(self.method, self.method)}",
                 f"{self.n_patients} patients, waves = sessions 1..{self.waves}; {status}"]
        if self.outside:
            lines.append(f"outside the waves: {self.outside.get('sessions', 0)} sessions after wave "
                         f"{self.waves} (of {self.outside.get('patients_beyond', 0)} patients), "
                         f"{self.outside.get('patients', 0)} patients with no rating in the waves, "
                         f"{self.outside.get('patients_not_prepared', 0)} patients dropped by prepare()")
        return lines

    def summary(self) -> str:
        """A text summary: the paths, the impulse responses, the patient level, notes."""
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            paths = self.effects.drop(columns=["estimand"]).to_string(index=False, float_format="{:.4g}".format)
            imp = self.impulse[self.impulse["response"] != self.impulse["source"]]
            imp = imp.drop(columns=["estimand"]).to_string(index=False, float_format="{:.4g}".format)
        level = ", ".join(f"{k} {v:.4g}" for k, v in self.patient_level.items())
        parts = [*self._headline(), "", "Lagged paths (raw units per point of the predictor):", paths, "",
                 "Total responses to a one-point within-person change at t (cross-series):", imp, "",
                 f"Patient level: {level}"]
        for title, items in (("Problems", self.problems), ("Notes", self.notes), ("R warnings", self.warnings)):
            if items:
                parts += ["", f"{title}:", *[f"- {item}" for item in items]]
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        a = self.path("alliance->outcome")
        b = self.path("outcome->alliance")
        return (f"<ReciprocalFit {self.method}, W={self.waves}, {self.n_patients} patients: "
                f"alliance->outcome {a['estimate']:.4g} [{a['conf_low']:.4g}, {a['conf_high']:.4g}], "
                f"outcome->alliance {b['estimate']:.4g} [{b['conf_low']:.4g}, {b['conf_high']:.4g}]"
                f"{'' if self.admissible else ', INADMISSIBLE'}>")

    def _repr_html_(self) -> str:
        head = "<br>".join(html.escape(line) for line in self._headline())
        paths = self.effects.to_html(index=False, float_format="{:.4g}".format)
        imp = self.impulse.drop(columns=["estimand"]).to_html(index=False, float_format="{:.4g}".format)
        extra = "".join(f"<p><b>{html.escape(title)}:</b> {html.escape('; '.join(items))}</p>"
                        for title, items in (("Problems", self.problems), ("Notes", self.notes))
                        if items)
        return f"<div><p>{head}</p>{paths}<p>Impulse responses</p>{imp}{extra}</div>"


def path_rows(paths: np.ndarray, vcov: np.ndarray, within_sd: dict[str, float], estimands: dict[str, str],
              *, conf_level: float) -> pd.DataFrame:
    """The effects table from raw-scale paths (in :data:`PATHS` order) and their covariance."""
    z = stats.norm.ppf(0.5 + conf_level / 2)
    se = np.sqrt(np.clip(np.diag(vcov), 0, None)) if np.all(np.isfinite(np.diag(vcov))) else np.full(4, np.nan)
    rows = []
    for j, direction in enumerate(PATHS):
        predictor, response = direction.split("->")
        est = float(paths[j])
        ratio = within_sd[predictor] / within_sd[response]
        p = float(2 * stats.norm.sf(abs(est / se[j]))) if se[j] > 0 else float("nan")
        rows.append((direction, est, est * ratio, float(se[j]), est - z * se[j], est + z * se[j], p,
                     estimands[direction]))
    order = ["alliance->outcome", "outcome->alliance", "alliance->alliance", "outcome->outcome"]
    table = pd.DataFrame(rows, columns=["direction", "estimate", "std_estimate", "std_error", "conf_low",
                                        "conf_high", "p_value", "estimand"])
    return table.set_index("direction").loc[order].reset_index()
