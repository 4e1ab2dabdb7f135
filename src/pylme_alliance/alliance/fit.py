"""AllianceFit: a MixedFit that knows which terms are the alliance effects, and what
"one size does not fit all" means in numbers."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import PylmeError
from ..results import MixedFit, wald_interval
from .prepare import AlliancePanel
from .spec import ModelSpec

if TYPE_CHECKING:
    from .model import AllianceModel

WITHIN, BETWEEN = "alliance_within", "alliance_between"


@dataclass(frozen=True)
class Heterogeneity:
    """Between-patient variation of the within-patient alliance effect.

    Attributes
    ----------
    summary : pandas.DataFrame
        One row per statistic (``statistic``, ``estimate``, ``conf_low``, ``conf_high``,
        ``note``): the mean within effect, the random-slope SD with its interval, the 95%
        prediction interval of patient-specific effects, the share of patients whose own
        effect is beneficial (model-implied and among the patients' conditional slopes).
    patients : pandas.DataFrame
        One row per patient: ``patient``, ``slope`` (the patient's conditional within
        effect: fixed part at the patient's moderator values plus the patient's BLUP),
        ``conf_low``, ``conf_high`` (from the conditional variance of the BLUP, lme4
        only), ``beneficial``, ``n_sessions``.
    """

    summary: pd.DataFrame
    patients: pd.DataFrame

    def __str__(self) -> str:
        return self.summary.to_string(index=False, float_format="{:.3f}".format)


@dataclass(frozen=True, repr=False)
class AllianceFit(MixedFit):
    """The fitted alliance-outcome model (a :class:`~pylme_alliance.MixedFit`)."""

    model: AllianceModel | None = None
    spec: ModelSpec | None = None
    panel: AlliancePanel | None = None

    @classmethod
    def from_fit(cls, fit: MixedFit, *, model: AllianceModel, spec: ModelSpec,
                 panel: AlliancePanel) -> "AllianceFit":
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
        return cls(**values, model=model, spec=spec, panel=panel)

    # ------------------------------------------------------------------ effects
    def alliance_effects(self, *, conf_level: float = 0.95) -> pd.DataFrame:
        """The within- and between-patient alliance rows with a standardised estimate.

        ``std_estimate`` is the effect of one SD of the component in outcome SD units:
        the within SD is taken over sessions, the between SD over patients (each once),
        the outcome SD over the model's response values.
        """
        table = self.tidy(conf_int=True, conf_level=conf_level)
        table = table[table["term"].isin([WITHIN, BETWEEN])].copy()
        data = self.data
        outcome_sd = float(np.std(data[self.spec.response], ddof=1))
        between_sd = float(data.groupby("patient", observed=True)[BETWEEN].first().std(ddof=1))
        sds = {WITHIN: float(np.std(data[WITHIN], ddof=1)), BETWEEN: between_sd}
        table["predictor_sd"] = table["term"].map(sds)
        table["std_estimate"] = table["estimate"] * table["predictor_sd"] / outcome_sd
        table.insert(0, "lead", self.model.lead)
        return table.drop(columns=["effect", "group"]).reset_index(drop=True)

    # ------------------------------------------------------------------ heterogeneity
    def _slope_group(self) -> str:
        groups = self.ran_pars_table
        rows = groups[groups["term"] == f"sd__{WITHIN}"]
        if rows.empty:
            raise PylmeError("this model has no random slope of alliance_within; fit it with "
                             "AllianceModel(random_slope=True) to study heterogeneity")
        return str(rows["group"].iloc[0])

    def heterogeneity(self, *, conf_level: float = 0.95, beneficial: str = "negative",
                      interval: bool = True) -> Heterogeneity:
        """"One size does not fit all" as numbers.

        Parameters
        ----------
        conf_level : float
        beneficial : {"negative", "positive"}
            Direction of a beneficial alliance effect: "negative" when higher outcome
            scores mean more distress (the OQ-45), "positive" otherwise.
        interval : bool
            Compute the interval of the slope SD (lme4: profile likelihood, which costs
            a few refits; nlme: ``intervals``; glmmTMB: Wald on the log scale).
        """
        if beneficial not in ("negative", "positive"):
            raise PylmeError("beneficial must be 'negative' or 'positive'")
        group = self._slope_group()
        pars = self.ran_pars_table.set_index(["group", "term"])["estimate"]
        slope_sd = float(pars[(group, f"sd__{WITHIN}")])
        fixed = self.fixed_table.set_index("term").loc[WITHIN]
        mean, se = float(fixed["estimate"]), float(fixed["std_error"])
        low = high = float("nan")
        note = ""
        sd_interval = getattr(self.backend, "sd_interval", None)
        if interval and sd_interval is not None:
            try:
                low, high = sd_interval(group, WITHIN, conf_level)
            except PylmeError as exc:  # a failed profile must not lose the rest
                note = f"interval not available: {exc}"
        z = stats.norm.ppf(0.5 + conf_level / 2)
        spread = np.sqrt(slope_sd ** 2 + se ** 2)
        sign = -1.0 if beneficial == "negative" else 1.0
        share_model = float(stats.norm.cdf(sign * mean / slope_sd)) if slope_sd > 0 else float(sign * mean > 0)
        patients = self._patient_slopes(group, z, sign)
        share_blup = float(patients["beneficial"].mean()) if len(patients) else float("nan")
        summary = pd.DataFrame([
            {"statistic": "mean within effect", "estimate": mean, "conf_low": mean - z * se,
             "conf_high": mean + z * se, "note": "fixed effect of alliance_within"},
            {"statistic": "random-slope SD", "estimate": slope_sd, "conf_low": low, "conf_high": high,
             "note": note or f"SD of patients' within effects ({self.engine})"},
            {"statistic": f"{int(conf_level * 100)}% prediction interval", "estimate": mean,
             "conf_low": mean - z * spread, "conf_high": mean + z * spread,
             "note": "range of patient-specific within effects"},
            {"statistic": "share beneficial (model)", "estimate": share_model, "conf_low": np.nan,
             "conf_high": np.nan, "note": f"P(patient effect {'<' if sign < 0 else '>'} 0) under normal slopes"},
            {"statistic": "share beneficial (patients)", "estimate": share_blup, "conf_low": np.nan,
             "conf_high": np.nan, "note": "share of patients whose conditional slope is beneficial"},
        ])
        return Heterogeneity(summary=summary, patients=patients)

    def _patient_slopes(self, group: str, z: float, sign: float) -> pd.DataFrame:
        data = self.data
        first = data.drop_duplicates("patient").reset_index(drop=True)
        # The conditional slope is the change in the prediction when alliance_within
        # moves by one, at the patient's own covariates: this includes moderator
        # interactions and the BLUP whatever the engine.
        at0, at1 = first.copy(), first.copy()
        at0[WITHIN] = 0.0
        at1[WITHIN] = 1.0
        slope = self.predict(at1) - self.predict(at0)
        out = pd.DataFrame({"patient": first["patient"].astype(str).to_numpy(), "slope": slope})
        vals = self.tidy("ran_vals")
        rows = vals[(vals["group"] == group) & (vals["term"] == WITHIN)]
        # nested levels read "therapist:patient" (lme4) or "therapist/patient" (nlme)
        level = rows["level"].astype(str).str.split(r"[:/]", regex=True).str[-1]
        se = out["patient"].map(dict(zip(level, pd.to_numeric(rows["std_error"])))).to_numpy(dtype=float)
        out["conf_low"] = out["slope"] - z * se
        out["conf_high"] = out["slope"] + z * se
        out["beneficial"] = sign * out["slope"] > 0
        counts = data.groupby("patient", observed=True).size()
        out["n_sessions"] = out["patient"].map(dict(zip(counts.index.astype(str), counts.to_numpy())))
        return out.sort_values("slope").reset_index(drop=True)

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
        """Moderator values (original scale) where the alliance effect is significant.

        Solves ``(b + c*m)^2 = t^2 * (V_bb + 2 m V_bc + m^2 V_cc)`` for the centred
        moderator m, with the df of the interaction term (normal for Wald-z engines).

        Returns
        -------
        pandas.DataFrame
            One row per region: ``from``, ``to`` (original scale; -inf/inf when open),
            ``significant`` (bool), and ``observed_min``/``observed_max`` of the moderator.
        """
        name, info = self._moderator(moderator)
        if info.kind != "numeric":
            raise PylmeError(f"Johnson-Neyman intervals need a continuous moderator; {name!r} is categorical")
        inter = f"{term}:{name}"
        V = self.vcov()
        b, c = float(self.fixef_values[term]), float(self.fixef_values[inter])
        vbb, vbc, vcc = float(V.loc[term, term]), float(V.loc[term, inter]), float(V.loc[inter, inter])
        df = float(self.fixed_table.set_index("term").loc[inter, "df"])
        t2 = (stats.t.ppf(1 - alpha / 2, df) if np.isfinite(df) else stats.norm.ppf(1 - alpha / 2)) ** 2
        # quadratic in m: (c^2 - t2 vcc) m^2 + 2 (b c - t2 vbc) m + (b^2 - t2 vbb) = 0
        A, B, C = c * c - t2 * vcc, 2 * (b * c - t2 * vbc), b * b - t2 * vbb
        roots = np.sort(np.roots([A, B, C]).real[np.isreal(np.roots([A, B, C]))]) if abs(A) > 1e-300 else \
            (np.array([-C / B]) if abs(B) > 0 else np.array([]))
        edges = [-np.inf, *roots.tolist(), np.inf]
        mean = float(info.mean)
        values = self.panel.data[info.column].astype(float) + mean
        rows = []
        for lo, hi in zip(edges[:-1], edges[1:]):
            mid = (lo + hi) / 2 if np.isfinite(lo) and np.isfinite(hi) else (hi - 1 if np.isfinite(hi) else
                                                                            (lo + 1 if np.isfinite(lo) else 0.0))
            est = b + c * mid
            var = vbb + 2 * mid * vbc + mid * mid * vcc
            rows.append({"moderator": name, "term": term, "from": lo + mean, "to": hi + mean,
                         "significant": bool(est * est > t2 * var),
                         "observed_min": float(values.min()), "observed_max": float(values.max())})
        return pd.DataFrame(rows)


def _rename(term: str, renames: dict[str, str]) -> str:
    parts = term.split(":")
    return ":".join(next((renames[k] + p[len(k):] for k in renames if p.startswith(k)), p) for p in parts)


def _rename_terms(table: pd.DataFrame, renames: dict[str, str]) -> pd.DataFrame:
    out = table.copy()
    out["term"] = out["term"].map(lambda t: _rename(str(t), renames))
    return out
