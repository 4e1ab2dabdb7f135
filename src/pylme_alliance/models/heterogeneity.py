"""Heterogeneity of the within-patient alliance effect, tested before it is claimed.

"One size does not fit all" is a claim about the random slope of ``alliance_within``:
its SD tau over patients. This module computes, for an :class:`~.fit.AllianceFit`:

- a likelihood-ratio test of the random slope (the model refitted without it, same
  engine and same REML/ML criterion, same fixed effects) with the p-value from the
  50:50 mixture of chi-square distributions that a variance on its boundary needs
  (Self & Liang 1987; Stram & Lee 1994);
- the ``degenerate`` flag of the fit (:mod:`pylme_alliance.engines.flags`: any random
  SD about 0 or a correlation beyond +-0.99), with the reason in words;
- the model-implied share Phi(+-beta/tau) of patients whose own effect has a given
  sign, with an interval propagated from the Wald interval of beta and the interval of
  tau (see :func:`share_interval`);
- per-patient classifications from each patient's interval, never from the sign of a
  shrunken BLUP alone, and the shrinkage of the BLUPs (their SD against tau).
"""
from __future__ import annotations

import html
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import PylmeError
from .boundary import slope_not_identified
from .calibration import DRAWS, require_lme4
from .detectable import OVERSIZE, caveat_text, closest_record, detectable_sd, not_estimable_note, share_allowed
from .protocols import FittedAllianceModel
from .slope_group import calibrated_alone, ran_vals_group, slope_group, trend_model_fit
from .slope_test import (  # noqa: F401 (re-exported: the test's names belong with heterogeneity)
    METHODS,
    SlopeTest,
    degenerate_reasons,
    fit_degenerate,
    mixture_p_value,
    mixture_text,
    slope_test,
)

WITHIN = "alliance_within"
#: Monte Carlo draws for the share interval; a local generator keeps it reproducible.
SHARE_DRAWS = 20000


# ---------------------------------------------------------------------- share
def share_interval(beta: float, se: float, tau: float, tau_low: float, tau_high: float, *,
                   sign: float, conf_level: float = 0.95, draws: int = SHARE_DRAWS,
                   seed: int = 20150579) -> tuple[float, float]:
    """Interval of the model-implied share Phi(sign * beta / tau), by propagation.

    beta is drawn from its Wald distribution N(beta, se^2); tau from a split normal with
    the point estimate as its mode and the interval ``(tau_low, tau_high)`` as its
    ``conf_level`` quantiles (so a profile interval's asymmetry is kept), floored at 0.
    The two are drawn independently (fixed effects and variance parameters of a linear
    mixed model are asymptotically uncorrelated). The interval is the central
    ``conf_level`` range of the drawn shares.
    """
    values = (beta, se, tau, tau_low, tau_high)
    if not all(np.isfinite(v) for v in values) or se < 0 or not tau_low <= tau <= tau_high:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    z = stats.norm.ppf(0.5 + conf_level / 2)
    # drawn on the helped side (sign * beta), so a mirrored outcome gets the same draws
    b = sign * beta + se * rng.standard_normal(draws)
    u = rng.standard_normal(draws)
    t = np.where(u < 0, tau + u * (tau - tau_low) / z, tau + u * (tau_high - tau) / z)
    t = np.maximum(t, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(t > 0, stats.norm.cdf(b / np.where(t > 0, t, 1.0)), (b > 0).astype(float))
    low, high = np.quantile(share, [0.5 - conf_level / 2, 0.5 + conf_level / 2])
    return float(low), float(high)


def model_share(beta: float, tau: float, sign: float) -> float:
    """Phi(sign * beta / tau); with tau = 0 every patient has the mean effect."""
    if not (np.isfinite(beta) and np.isfinite(tau)):
        return float("nan")
    return float(stats.norm.cdf(sign * beta / tau)) if tau > 0 else float(sign * beta > 0)


# ---------------------------------------------------------------------- wording
def direction_words(outcome_better: str | None) -> dict[str, str]:
    """Words for the two signs of the within effect, by the user's outcome direction.

    With ``outcome_better=None`` nothing is called beneficial: the words are neutral.
    """
    if outcome_better == "lower":
        return {"negative": "beneficial", "positive": "harmful", "share": "share beneficial (model)",
                "share_sign": "negative"}
    if outcome_better == "higher":
        return {"negative": "harmful", "positive": "beneficial", "share": "share beneficial (model)",
                "share_sign": "positive"}
    return {"negative": "negative", "positive": "positive", "share": "share with a negative effect (model)",
            "share_sign": "negative"}


def category_names(outcome_better: str | None) -> tuple[str, str, str]:
    """(interval below 0, interval covering 0, interval above 0) category names."""
    words = direction_words(outcome_better)
    return f"clearly {words['negative']}", "uncertain", f"clearly {words['positive']}"


def _shown_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary as text cells: numbers to 3 decimals, counts of patients as integers."""
    shown = summary.copy()
    counts = shown["note"].astype(str).str.startswith("count")
    for column in ("estimate", "conf_low", "conf_high"):
        shown[column] = [("" if not np.isfinite(v) else f"{v:.0f}" if is_count else f"{v:.3f}")
                         for v, is_count in zip(pd.to_numeric(shown[column]), counts)]
    return shown


# ---------------------------------------------------------------------- result
@dataclass(frozen=True)
class Heterogeneity:
    """Between-patient variation of the within-patient alliance effect.

    Read ``verdict`` first: heterogeneity is claimed only when the likelihood-ratio test
    of the random slope (``test``) supports it and the fit is not ``degenerate``.

    Attributes
    ----------
    summary : pandas.DataFrame
        One row per statistic (``statistic``, ``estimate``, ``conf_low``, ``conf_high``,
        ``note``), the fields below as a table.
    patients : pandas.DataFrame
        One row per patient: ``patient``, ``slope`` (the conditional within effect: the
        fixed part at the patient's moderator values plus the patient's BLUP),
        ``std_error`` (conditional SD of the BLUP combined with the SE of the fixed part;
        their covariance is ignored), ``conf_low``, ``conf_high``, ``category``
        (``category_names``: the interval below 0, covering 0, above 0; "no interval"
        when the engine gives no conditional variances) and ``n_sessions``.
    test : SlopeTest or None
        The likelihood-ratio test of the random slope (None when not run; see
        ``notes``).
    degenerate : bool
        The fit's ``degenerate`` flag (glance(); any random SD about 0 or a correlation
        beyond +-0.99, every engine). ``degenerate_reason`` says which parameter(s).
        Only a degenerate SLOPE (its SD about 0 or its correlation beyond +-0.99) makes
        the verdict "not estimated": a patient-intercept SD of
        about 0, common once the outcome's person mean is controlled, leaves the slope
        variance identified (the reason is still stated).
    mean, mean_se : float
        The fixed within effect (at the moderators' centres) and its SE.
    slope_sd, slope_sd_low, slope_sd_high : float
        tau, the model's SD of patients' within effects, and its interval
        (``slope_sd_method``).
    share, share_low, share_high : float
        The model-implied share Phi(s * beta / tau) of patients whose own effect has the
        sign ``share_sign`` ("negative" or "positive"); ``share_label`` names it
        ("share beneficial (model)" only when the outcome direction is known).
        ``share_method`` says how the interval was made.
    blup_sd, shrinkage : float
        The SD over patients of their estimated random slopes (BLUPs), and its ratio to
        tau: BLUPs are shrunken toward the mean, so a count of their signs overstates
        agreement with the mean (``shrinkage`` well below 1 says how much).
    categories : dict
        Category -> number of patients.
    outcome_better : {"lower", "higher"} or None
        The outcome direction the words use (from the panel).
    verdict : str
        "supported" (test p < alpha, slope not at the boundary), "not supported" (the
        data cannot distinguish heterogeneity from none), "not estimated" (the random
        slope is at the boundary: its SD ~ 0 or a correlation beyond +-0.99, so the
        variation is not identified, whatever the test says; analyze() with
        ``random_slope="auto"`` drops such a slope by the same rule,
        :func:`.boundary.slope_not_identified`) or "not tested" (test not run, or a
        log-likelihood missing, e.g. a non-converged fit).
    caveat : str
        What the recovery study measured about this test on the design closest to the
        data (:func:`.detectable.closest_record`: its size at a true SD of 0, its power);
        "" when nothing was measured. :meth:`statement` says it.
    detectable_sd : float
        The smallest slope SD this design detects with 80% power at ``alpha``
        (:func:`.detectable.detectable_sd`). Unless the verdict is "supported", the
        summary prints no SD, prediction interval or share, but this.
    share_shown : bool
        Whether the share of patients helped is printed: only with a calibrated test that
        supports variation and a share interval measured to cover >= 90% on the closest
        design (:func:`.detectable.share_allowed`).
    trend : bool
        Whether the numbers come from the model with each patient's own session slope.
    warnings : tuple of str
        Warnings met while computing this (the profile of tau: "non-monotonic profile",
        "bad spline fit", ...; the refit of the test), kept here so they are not lost.
    """

    summary: pd.DataFrame
    patients: pd.DataFrame
    test: SlopeTest | None = None
    degenerate: bool = False
    degenerate_reason: str = ""
    mean: float = float("nan")
    mean_se: float = float("nan")
    slope_sd: float = float("nan")
    slope_sd_low: float = float("nan")
    slope_sd_high: float = float("nan")
    slope_sd_method: str = ""
    share: float = float("nan")
    share_low: float = float("nan")
    share_high: float = float("nan")
    share_sign: str = "negative"
    share_label: str = ""
    share_method: str = ""
    blup_sd: float = float("nan")
    shrinkage: float = float("nan")
    categories: dict[str, int] = field(default_factory=dict)
    outcome_better: str | None = None
    conf_level: float = 0.95
    alpha: float = 0.05
    verdict: str = "not tested"
    warnings: tuple[str, ...] = ()
    caveat: str = ""
    detectable_sd: float = float("nan")
    share_shown: bool = False
    trend: bool = False

    @property
    def supported(self) -> bool:
        """Heterogeneity may be claimed: the test rejects "no random slope" at ``alpha``
        and the fit is not degenerate."""
        return self.verdict == "supported"

    def statement(self) -> str:
        """One sentence on what the data say about heterogeneity (plain text)."""
        if self.verdict == "not tested":
            return "Heterogeneity of the within-patient effect was not tested."
        if self.verdict == "not estimated":
            return next((n for n in self.warnings if n.startswith("Heterogeneity of the within-patient effect was "
                                                              "not estimated")),
                        "Heterogeneity of the within-patient effect was not estimated.")
        null = self.test.method if self.test.calibrated else self.test.mixture
        p = f"p = {self.test.p_value:.3g}, {self.test.criterion} likelihood-ratio test, {null}"
        if self.verdict == "not supported":
            text = ("The data cannot distinguish between-patient variation of the within-patient effect from "
                    f"none ({p}); its SD is " + not_estimable_note(self.detectable_sd) + ".")
        else:
            text = (f"The within-patient effect varies between patients ({p}): model SD {self.slope_sd:.3g}"
                    + (f" ({self.conf_level:.0%} CI {self.slope_sd_low:.3g} to {self.slope_sd_high:.3g})"
                       if np.isfinite(self.slope_sd_low) else "") + ".")
        if self.caveat:
            text += " Caution: " + self.caveat + "." if not self.test.calibrated else " Measured: " + self.caveat + "."
        return text

    def __str__(self) -> str:
        lines = ["Heterogeneity of the within-patient alliance effect", "  " + self.statement()]
        if self.test is not None:
            lines.append(f"  {self.test}")
        if self.degenerate:
            lines.append(f"  Degenerate fit: {self.degenerate_reason}")
        lines += ["", _shown_summary(self.summary).to_string(index=False, formatters={"note": lambda s: str(s)[:90]})]
        if self.categories:
            lines += ["", "Patients by their interval: " + ", ".join(f"{k}: {v}" for k, v in self.categories.items())]
        if self.warnings:
            lines += ["", "Warnings:"] + [f"  - {w}" for w in self.warnings]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"<Heterogeneity: {self.verdict}; slope SD {self.slope_sd:.3g}, "
                f"{self.share_label} {self.share:.3g}, {len(self.patients)} patients>")

    def _repr_html_(self) -> str:
        parts = [f"<div><p><b>Heterogeneity of the within-patient alliance effect</b>: "
                 f"{html.escape(self.verdict)}</p><p>{html.escape(self.statement())}</p>"]
        if self.test is not None:
            parts.append(f"<p>{html.escape(str(self.test))}</p>")
        parts.append(_shown_summary(self.summary).to_html(index=False))
        if self.warnings:
            parts.append("<ul>" + "".join(f"<li>{html.escape(w)}</li>" for w in self.warnings) + "</ul>")
        return "".join(parts) + "</div>"


# ---------------------------------------------------------------------- computation
def _tau_interval(fit: FittedAllianceModel, group: str, conf_level: float) -> tuple[float, float, str, list[str]]:
    """The interval of tau with the engine's warnings kept (they are raised too)."""
    method = {"lme4": "profile likelihood (lme4 confint)", "nlme": "nlme intervals() (Wald on log SD)",
              "glmmTMB": "Wald on the log SD (glmmTMB confint)"}.get(fit.engine, "")
    sd_interval = getattr(fit.backend, "sd_interval", None)
    if sd_interval is None:
        return float("nan"), float("nan"), "", [f"{fit.engine} gives no interval of the slope SD"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            low, high = sd_interval(group, WITHIN, conf_level)
            failure = None
        except PylmeError as exc:  # a failed profile must not lose the rest
            low = high = float("nan")
            failure = f"interval of the slope SD not available: {' '.join(str(exc).split())}"
    found = list(dict.fromkeys(" ".join(str(w.message).split()) for w in caught))
    for text in found:  # raised again outside the capture, so a caller still sees them
        warnings.warn(f"slope SD interval: {text}", UserWarning, stacklevel=4)
    found = [f"slope SD interval: {t}" for t in found]
    if failure:
        found.append(failure)
    elif not (np.isfinite(low) and np.isfinite(high)):
        found.append("interval of the slope SD not available from the engine")
    return float(low), float(high), method, found


def _fixed_slope_se(fit: FittedAllianceModel, first: pd.DataFrame) -> np.ndarray:
    """SE of the fixed part of each patient's slope (beta plus moderator interactions)."""
    try:
        V = fit.vcov()
    except PylmeError:
        return np.full(len(first), np.nan)
    names = list(fit.fixef_values.index)
    L = np.zeros((len(first), len(names)))
    L[:, names.index(WITHIN)] = 1.0
    originals = {str(v): k for k, v in fit.spec.moderator_names.items()} if fit.spec else {}
    for j, term in enumerate(names):
        if not term.startswith(f"{WITHIN}:"):
            continue
        rest = term[len(WITHIN) + 1:]
        column = originals.get(rest)
        if column is not None and column in first:
            L[:, j] = pd.to_numeric(first[column], errors="coerce").to_numpy(dtype=float)
            continue
        match = next(((c, rest[len(o):]) for o, c in originals.items() if rest.startswith(o) and c in first), None)
        if match is None:
            return np.full(len(first), np.nan)
        L[:, j] = (first[match[0]].astype(str) == match[1]).to_numpy(dtype=float)
    Vm = V.loc[names, names].to_numpy()
    return np.sqrt(np.einsum("ij,jk,ik->i", L, Vm, L))


def patient_slopes(fit: FittedAllianceModel, group: str, z: float, outcome_better: str | None) -> pd.DataFrame:
    data = fit.data
    first = data.drop_duplicates("patient").reset_index(drop=True)
    # The conditional slope is the change in the prediction when alliance_within moves by
    # one, at the patient's own covariates: moderator interactions and BLUP, any engine.
    at0, at1 = first.copy(), first.copy()
    at0[WITHIN] = 0.0
    at1[WITHIN] = 1.0
    slope = fit.predict(at1) - fit.predict(at0)
    out = pd.DataFrame({"patient": first["patient"].astype(str).to_numpy(), "slope": slope})
    vals = fit.tidy("ran_vals")
    rows = vals[(vals["group"] == ran_vals_group(group, vals)) & (vals["term"] == WITHIN)]
    # nested levels read "therapist:patient" (lme4) or "therapist/patient" (nlme)
    level = rows["level"].astype(str).str.split(r"[:/]", regex=True).str[-1]
    cond_se = out["patient"].map(dict(zip(level, pd.to_numeric(rows["std_error"])))).to_numpy(dtype=float)
    se = np.sqrt(cond_se ** 2 + _fixed_slope_se(fit, first) ** 2)
    out["std_error"] = se
    out["conf_low"] = out["slope"] - z * se
    out["conf_high"] = out["slope"] + z * se
    below, unsure, above = category_names(outcome_better)
    category = np.where(out["conf_high"] < 0, below, np.where(out["conf_low"] > 0, above, unsure))
    out["category"] = np.where(np.isfinite(se), category, "no interval")
    counts = data.groupby("patient", observed=True).size()
    out["n_sessions"] = out["patient"].map(dict(zip(counts.index.astype(str), counts.to_numpy())))
    return out.sort_values("slope").reset_index(drop=True)


def heterogeneity(fit: FittedAllianceModel, *, conf_level: float = 0.95, alpha: float = 0.05,
                  interval: bool = True, test: bool = True, outcome_better: str | None = None,
                  trend: bool = True, method: str = "auto", draws: int = DRAWS, seed: int = 20150579,
                  executor: Any = None, progress: bool = False) -> Heterogeneity:
    """See :meth:`~.fit.AllianceFit.heterogeneity`."""
    if not 0 < conf_level < 1:
        raise PylmeError("conf_level must be between 0 and 1")
    if outcome_better not in (None, "lower", "higher"):
        raise PylmeError(f"outcome_better must be 'lower', 'higher' or None; got {outcome_better!r}")
    if method not in ("auto", *METHODS):
        raise PylmeError(f"method must be 'auto', 'bootstrap' or 'mixture', got {method!r}")
    test_method = method
    if method == "bootstrap" and test:  # before the session-slope refit, not after it
        require_lme4(fit.engine)
    notes: list[str] = []
    if trend:
        fit, found = trend_model_fit(fit)
        notes += found
    if test_method == "auto":
        test_method = "bootstrap" if fit.engine == "lme4" else "mixture"
    group = slope_group(fit)
    pars = fit.ran_pars_table.set_index(["group", "term"])["estimate"]
    tau = float(pars[(group, f"sd__{WITHIN}")])
    fixed = fit.fixed_table.set_index("term").loc[WITHIN]
    mean, se = float(fixed["estimate"]), float(fixed["std_error"])
    z = float(stats.norm.ppf(0.5 + conf_level / 2))

    low = high = float("nan")
    method = ""
    if interval:
        low, high, method, found = _tau_interval(fit, group, conf_level)
        notes += found

    slope_test_result = None
    if test:
        try:
            slope_test_result = slope_test(fit, method=test_method, draws=draws, seed=seed, executor=executor,
                                           progress=progress)
            notes += list(slope_test_result.notes)
        except PylmeError as exc:
            notes.append(f"random-slope test not available: {' '.join(str(exc).split())}")
    degenerate, reason = fit_degenerate(fit)

    words = direction_words(outcome_better)
    sign = -1.0 if words["share_sign"] == "negative" else 1.0
    share = model_share(mean, tau, sign)
    share_low, share_high = share_interval(mean, se, tau, low, high, sign=sign, conf_level=conf_level)
    share_method = ("Monte Carlo propagation: beta ~ N(estimate, SE^2) (Wald), tau ~ split normal matching its "
                    f"{method or 'interval'}, independent") if np.isfinite(share_low) else \
        "no interval: the slope SD has no interval"

    patients = patient_slopes(fit, group, z, outcome_better)
    vals = fit.tidy("ran_vals")
    blups = pd.to_numeric(vals[(vals["group"] == ran_vals_group(group, vals)) & (vals["term"] == WITHIN)]["estimate"])
    blup_sd = float(blups.std(ddof=1)) if len(blups) > 1 else float("nan")
    shrinkage = blup_sd / tau if tau > 0 else float("nan")
    order = [*category_names(outcome_better), "no interval"]
    counts = patients["category"].value_counts()
    categories = {c: int(counts.get(c, 0)) for c in order if c != "no interval" or counts.get(c, 0)}

    if slope_test_result is not None and not np.isfinite(slope_test_result.p_value):
        notes.append("random-slope test not available: a log-likelihood is missing "
                     f"(full fit converged: {fit.converged})")
    # A degenerate intercept or therapist SD (common once the outcome's person mean is
    # controlled) leaves the slope variance identified; a SLOPE at the boundary (its SD
    # about 0, or its correlation beyond +-0.99) does not: then nothing is claimed,
    # whatever the test says, by the same rule as analyze()'s random_slope="auto".
    absent = slope_not_identified(fit)
    if absent and calibrated_alone(fit, slope_test_result):
        # an uncorrelated slope at SD 0 is no identification problem: the calibrated
        # test's LR is 0 and its p 1, "not supported" says what the data show
        absent = ""
    if absent:
        verdict = "not estimated"
        notes.append("Heterogeneity of the within-patient effect was not estimated: " + absent)
    elif slope_test_result is None or not np.isfinite(slope_test_result.p_value):
        verdict = "not tested"
    elif not slope_test_result.significant(alpha):
        verdict = "not supported"
    else:
        verdict = "supported"

    calibrated = slope_test_result is not None and slope_test_result.calibrated
    record = closest_record(fit)
    size = (record.size if calibrated else record.size_mixture) if record is not None else float("nan")
    if verdict == "supported" and size > OVERSIZE:
        # a test that rejects a true SD of 0 this often on data like these is no evidence
        verdict = "not supported"
        notes.append(f"the slope test rejects (p = {slope_test_result.p_value:.3g}), but on simulated trials like "
                     f"these it rejected a true SD of 0 in {size:.0%} of trials: not taken as support")
    caveat = caveat_text(record, calibrated) if slope_test_result is not None else ""
    detectable = detectable_sd(fit, alpha=alpha)
    share_hidden = share_allowed(record, verdict == "supported", calibrated)
    spread = np.sqrt(tau ** 2 + se ** 2)
    pct = f"{conf_level:.0%}"
    rows = [
        {"statistic": "mean within effect", "estimate": mean, "conf_low": mean - z * se,
         "conf_high": mean + z * se, "note": "fixed effect of alliance_within (Wald interval)"},
        {"statistic": "random-slope SD", "estimate": tau, "conf_low": low, "conf_high": high,
         "note": f"tau: SD over patients of the within effect ({fit.engine}; interval: "
                 f"{method or 'not computed'})" + ("; degenerate fit" if degenerate else "")},
        {"statistic": "random-slope test", "estimate": slope_test_result.statistic if slope_test_result else np.nan,
         "conf_low": np.nan, "conf_high": np.nan,
         "note": (f"{slope_test_result.criterion} LR, q = {slope_test_result.df}, "
                  f"p = {slope_test_result.p_value:.3g}, null {slope_test_result.method if calibrated else slope_test_result.mixture}; "
                  f"heterogeneity {verdict}") if slope_test_result else "not run"},
        {"statistic": f"{pct} prediction interval", "estimate": mean, "conf_low": mean - z * spread,
         "conf_high": mean + z * spread, "note": "range of patient-specific within effects (model)"},
        {"statistic": words["share"], "estimate": share, "conf_low": share_low, "conf_high": share_high,
         "note": f"Phi({'-' if sign < 0 else '+'}beta/tau): model-implied share with a "
                 f"{words['share_sign']} own effect; interval by {share_method.split(':')[0]}"},
        {"statistic": "SD of patients' BLUP slopes", "estimate": blup_sd, "conf_low": np.nan,
         "conf_high": np.nan, "note": f"shrunken toward the mean: {shrinkage:.2f} of tau"
         if np.isfinite(shrinkage) else "shrinkage not defined (tau = 0)"},
    ]
    rows += [{"statistic": f"patients {name}", "estimate": float(n), "conf_low": np.nan, "conf_high": np.nan,
              "note": f"count; patient's {pct} interval "
                      + {"uncertain": "covers 0", "no interval": "not available"}.get(
                          name, "below 0" if name == category_names(outcome_better)[0] else "above 0")}
             for name, n in categories.items()]
    if verdict != "supported":  # no number for a spread the data do not show (issue 18)
        rows[1].update(estimate=np.nan, conf_low=np.nan, conf_high=np.nan, note=not_estimable_note(detectable))
        rows[3].update(estimate=np.nan, conf_low=np.nan, conf_high=np.nan, note="not shown: the SD is not estimable")
    if share_hidden:
        rows[4].update(estimate=np.nan, conf_low=np.nan, conf_high=np.nan, note=share_hidden)
    return Heterogeneity(
        summary=pd.DataFrame(rows), patients=patients, test=slope_test_result, degenerate=degenerate,
        degenerate_reason=reason, mean=mean, mean_se=se, slope_sd=tau, slope_sd_low=low, slope_sd_high=high,
        slope_sd_method=method, share=share, share_low=share_low, share_high=share_high,
        share_sign=words["share_sign"], share_label=words["share"], share_method=share_method,
        blup_sd=blup_sd, shrinkage=shrinkage, categories=categories, outcome_better=outcome_better,
        conf_level=conf_level, alpha=alpha, verdict=verdict, warnings=tuple(notes), caveat=caveat,
        detectable_sd=detectable, share_shown=not share_hidden, trend=bool(getattr(fit.model, "random_trend", False)))
