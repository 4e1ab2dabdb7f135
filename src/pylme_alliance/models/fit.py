"""AllianceFit: a MixedFit that knows which terms are the alliance effects, and what
"one size does not fit all" means in numbers."""
from __future__ import annotations

import html
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from ..errors import PylmeError
from ..panel.prepare import AlliancePanel
from ..results import MixedFit, wald_interval
from . import estimands
from .heterogeneity import Heterogeneity
from .heterogeneity import heterogeneity as _heterogeneity
from .johnson_neyman import johnson_neyman as _johnson_neyman
from .protocols import AllianceModelLike
from .spec import ModelSpec

WITHIN, BETWEEN = "alliance_within", "alliance_between"


@dataclass(frozen=True, repr=False)
class AllianceFit(MixedFit):
    """The fitted alliance-outcome model (a :class:`~pylme_alliance.MixedFit`).

    Besides the MixedFit fields: ``model`` (with every "auto" option decided), ``spec``
    (as the engine was given it), ``panel``, ``notes`` (sentences on what the fit chose
    or changed: the therapist term chosen, random intercepts removed) and
    ``removed_terms`` (random terms removed because the fixed part carries them,
    "group: (Intercept)"; see :mod:`.boundary`).
    """

    model: AllianceModelLike | None = None
    spec: ModelSpec | None = None
    panel: AlliancePanel | None = None
    notes: tuple[str, ...] = ()
    removed_terms: tuple[str, ...] = ()

    @classmethod
    def from_fit(cls, fit: MixedFit, *, model: AllianceModelLike, spec: ModelSpec,
                 panel: AlliancePanel, notes: tuple[str, ...] = ()) -> AllianceFit:
        values = {f.name: getattr(fit, f.name) for f in fields(MixedFit)}
        renames = {k: str(v) for k, v in spec.moderator_names.items() if k != str(v)}
        if renames:
            values["fixed_table"] = _rename_terms(values["fixed_table"], renames)
            values["fixef_values"] = values["fixef_values"].rename(index=lambda t: _rename(t, renames))
            if values["vcov_matrix"] is not None:
                vc = values["vcov_matrix"]
                values["vcov_matrix"] = vc.rename(index=lambda t: _rename(t, renames),
                                                  columns=lambda t: _rename(t, renames))
        values["formula"] = spec.describe()
        return cls(**values, model=model, spec=spec, panel=panel, notes=tuple(notes))

    # ------------------------------------------------------------------ effects
    def alliance_effects(self, *, conf_level: float = 0.95) -> pd.DataFrame:
        """The within- and between-patient alliance rows, with what each estimates.

        Columns: ``lead``, ``term``, the tidy() columns with a Wald interval, and

        - ``estimand``: the estimand in words (:func:`.estimands.for_term`). With the
          outcome controlled (the default), the between coefficient is a CONDITIONAL
          change coefficient, not a difference in outcome level; the level
          difference is :func:`~.between.between_effect`.
        - ``predictor_sd``, ``outcome_sd``, ``std_estimate``: the standardised estimate
          ``std = b * SD(alliance component) / SD(outcome component)``, each component
          measured at its own level (``panel.scales``, over the panel's kept sessions):

          * within: ``SD(alliance_within) / SD(outcome_within)``, both pooled
            within-patient SDs, sqrt(sum of squared deviations from the patient's level /
            (sessions - patients)); the outcome's deviation is from the patient's mean
            outcome. One within-patient SD more alliance than usual for this patient
            goes with ``std_estimate`` within-patient SDs of the outcome.
          * between: ``SD(alliance level) / SD(outcome person mean)``, SDs over patients
            (each patient once, ddof = 1) of the patient's alliance level (the person
            mean or early alliance the panel used) and of the patient's mean outcome.

          Not the total outcome SD: that mixes the two levels and understates the within
          effect (METHODS.md; issue 9, item 9).
        """
        table = self.tidy(conf_int=True, conf_level=conf_level)
        table = table[table["term"].isin([WITHIN, BETWEEN])].copy()
        scales = dict(self.panel.scales) if self.panel is not None else {}
        predictor = {WITHIN: scales.get("alliance_within", np.nan), BETWEEN: scales.get("alliance_between", np.nan)}
        outcome = {WITHIN: scales.get("outcome_within", np.nan), BETWEEN: scales.get("outcome_between", np.nan)}
        table["predictor_sd"] = table["term"].map(predictor).astype(float)
        table["outcome_sd"] = table["term"].map(outcome).astype(float)
        table["std_estimate"] = table["estimate"] * table["predictor_sd"] / table["outcome_sd"]
        table["estimand"] = table["term"].map(lambda t: estimands.for_term(str(t), self.model)
                                              if self.model is not None else "")
        table.insert(0, "lead", self.model.lead if self.model is not None else np.nan)
        return table.drop(columns=["effect", "group"]).reset_index(drop=True)

    def summary(self) -> str:
        """The MixedFit summary followed by the alliance effects and their estimands."""
        effects = self.alliance_effects()
        lines = [super().summary(), "", "Alliance effects (std_estimate: b * SD(alliance) / SD(outcome), "
                 "each at its own level):",
                 effects[["term", "estimate", "std_error", "p_value", "conf_low", "conf_high", "std_estimate"]]
                 .to_string(index=False, float_format="{:.4g}".format)]
        lines += [f"  {row.term}: {row.estimand}" for row in effects.itertuples() if row.estimand]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        effects = self.alliance_effects()
        shown = effects[["term", "estimate", "std_error", "p_value", "conf_low", "conf_high", "std_estimate"]]
        estimand = "".join(f"<li><b>{html.escape(str(r.term))}</b>: {html.escape(str(r.estimand))}</li>"
                           for r in effects.itertuples() if r.estimand)
        return (super()._repr_html_() + "<div><p>Alliance effects</p>"
                + shown.to_html(index=False, float_format="{:.4g}".format)
                + (f"<ul>{estimand}</ul>" if estimand else "") + "</div>")

    # ------------------------------------------------------------------ heterogeneity
    def heterogeneity(self, *, conf_level: float = 0.95, alpha: float = 0.05, interval: bool = True,
                      test: bool = True, beneficial: str | None = None, trend: bool = True,
                      method: str = "auto", draws: int = 199, seed: int = 20150579, executor: Any = None,
                      progress: bool = False) -> Heterogeneity:
        """"One size does not fit all", tested before it is claimed.

        Parameters
        ----------
        conf_level : float
            Level of every interval (mean effect, slope SD, prediction interval, share,
            patients' intervals).
        alpha : float
            Level of the likelihood-ratio test of the random slope (``verdict``).
        interval : bool
            Compute the interval of the slope SD (lme4: profile likelihood, a few refits;
            nlme: ``intervals``; glmmTMB: Wald on the log scale) and from it the share's
            interval. Its warnings are kept in ``.warnings``.
        test : bool
            Run the likelihood-ratio test of the random slope: one refit without it, same
            engine and criterion (REML for lme4/nlme/statsmodels by default, valid because
            the fixed effects are the same), calibrated by ``method``.
        trend : bool
            Read heterogeneity from the model with each patient's own session slope
            (``random_trend=True``; one refit when this fit's model has none). Without it
            the random alliance slope soaks up patients' different rates of improvement and
            the test rejects far too often (issue 18).
        method : {"auto", "bootstrap", "mixture"}
            The test's null distribution: a parametric bootstrap of the likelihood ratio
            (``draws`` draws simulated from the model without the slope, both models
            refitted; lme4 only; "auto" takes it for lme4) or the asymptotic 50:50 mixture
            of chi2(q-1) and chi2(q), which rejects too often on session data.
        draws, seed : int
            Bootstrap draws (at least 19) and the seed of the first chunk of 40 draws
            (chunk i uses seed + i, here or on an executor, so the p-value is the same).
        executor : None, concurrent.futures.Executor or dask.distributed.Client
            Where the bootstrap chunks run (:func:`pylme_alliance.executors.run_chunks`);
            each worker refits the two models once per chunk.
        progress : bool
            A progress bar over bootstrap chunks run on an executor.

        Returns
        -------
        Heterogeneity
            ``verdict``, ``test``, ``degenerate``, the slope SD with its interval, the
            model-implied share Phi(+-beta/tau) with its interval, the BLUPs' shrinkage and
            per-patient interval categories (see :class:`.heterogeneity.Heterogeneity`).
            Without an outcome direction nothing is called beneficial: the share is the
            share of patients with a negative own effect.
        """
        better = self.panel.outcome_better if self.panel is not None else None
        if beneficial is not None:
            if beneficial not in ("negative", "positive"):
                raise PylmeError("beneficial must be 'negative' or 'positive'")
            warnings.warn("heterogeneity(beneficial=...) is deprecated: give prepare(outcome_better="
                          "'lower'|'higher')", FutureWarning, stacklevel=2)
            better = "lower" if beneficial == "negative" else "higher"
        return _heterogeneity(self, conf_level=conf_level, alpha=alpha, interval=interval, test=test,
                              outcome_better=better, trend=trend, method=method, draws=draws, seed=seed,
                              executor=executor, progress=progress)

    # ------------------------------------------------------------------ moderation
    def _moderator(self, moderator: Any) -> tuple[str, Any]:
        names = {str(v): k for k, v in self.spec.moderator_names.items()}
        if str(moderator) not in names:
            raise PylmeError(f"{moderator!r} is not a moderator of this model; its moderators are "
                             f"{list(names)}")
        column = names[str(moderator)]
        info = self.panel.moderators[self.spec.moderator_names[column]]
        return str(moderator), info

    def simple_slopes(self, moderator: Any, at: Sequence[Any] | None = None, *,
                      conf_level: float = 0.95) -> pd.DataFrame:
        """The within and between alliance effects at values of a moderator.

        Parameters
        ----------
        moderator : str
            A moderator of the model, by its original column name.
        at : sequence, optional
            Moderator values on the ORIGINAL scale (default: mean and +/- 1 SD over
            patients) or, for a categorical moderator, levels (default: each level).

        Returns
        -------
        pandas.DataFrame
            moderator, at, label, term, estimate, std_error, df, statistic, p_value,
            conf_low, conf_high. lme4 fits use lmerTest's Satterthwaite df for each
            combination. Other moderators of the model stay at their centre (numeric) or
            reference level (categorical); emmeans' emtrends would instead average over
            the levels of other categorical moderators.
        """
        name, info = self._moderator(moderator)
        rows = []
        if info.kind == "numeric":
            mean, sd = float(info.mean), float(info.sd)
            values = [mean - sd, mean, mean + sd] if at is None else [float(v) for v in at]
            labels = (["-1 SD", "mean", "+1 SD"] if at is None else [f"{v:g}" for v in values])
            for value, label in zip(values, labels):
                for term in (WITHIN, BETWEEN):
                    weights = {term: 1.0, f"{term}:{name}": value - mean}
                    rows.append({"moderator": name, "at": value, "label": label, "term": term,
                                 **self.contrast(weights)})
        else:
            levels = list(info.levels) if at is None else list(at)
            fixef = self.fixef_values.index
            for level in levels:
                for term in (WITHIN, BETWEEN):
                    weights = {term: 1.0}
                    if level != info.reference:
                        inter = f"{term}:{name}{level}"
                        if inter not in fixef:
                            raise PylmeError(f"level {level!r} of {name!r} has no interaction term in the model")
                        weights[inter] = 1.0
                    rows.append({"moderator": name, "at": level, "label": str(level), "term": term,
                                 **self.contrast(weights)})
        table = pd.DataFrame(rows)
        table["conf_low"], table["conf_high"] = wald_interval(table["estimate"], table["std_error"],
                                                              table["df"], conf_level)
        return table

    def johnson_neyman(self, moderator: Any, *, alpha: float = 0.05, term: str = WITHIN) -> pd.DataFrame:
        """Regions of the moderator (original scale) where the alliance effect is significant.

        Boundaries solve ``(b + c*m)^2 = t^2 * (V_bb + 2 m V_bc + m^2 V_cc)`` for the centred
        moderator m, with the df :meth:`simple_slopes` uses at that m (lme4: Satterthwaite
        df, found at each boundary by iteration; other engines: the df of ``term``, or a
        normal quantile), so a simple slope at a boundary has p = alpha. No multiplicity
        correction is applied here: see ``interaction_p`` and :func:`~.moderation.moderators`.

        Returns
        -------
        pandas.DataFrame
            One row per region, regions split at the observed range of the moderator:
            ``from``, ``to`` (original scale; -inf/inf when open), ``significant``,
            ``sign`` of the effect there ("negative", "positive", or "changes sign" in a
            non-significant region that contains the zero crossing), ``effect`` (in words),
            ``extrapolated`` (True for parts outside the observed range),
            ``estimate_from``/``estimate_to`` (the effect at finite edges),
            ``observed_min``/``observed_max``, ``alpha``, ``interaction_estimate``,
            ``interaction_p`` (unadjusted), ``df_method``.
        """
        return _johnson_neyman(self, moderator, alpha=alpha, term=term)

def _rename(term: str, renames: dict[str, str]) -> str:
    parts = term.split(":")
    return ":".join(next((renames[k] + p[len(k):] for k in renames if p.startswith(k)), p) for p in parts)


def _rename_terms(table: pd.DataFrame, renames: dict[str, str]) -> pd.DataFrame:
    out = table.copy()
    out["term"] = out["term"].map(lambda t: _rename(str(t), renames))
    return out
