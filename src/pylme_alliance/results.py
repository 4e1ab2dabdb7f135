"""MixedFit: one immutable result type for every engine (lme4, nlme, glmmTMB, statsmodels).

The tables every user needs (fixed effects, variance parameters, fit statistics) are
computed once, at fit time, in the engine. What can be large (conditional modes per
patient, fitted values) is computed on demand by the engine's backend, and copied in
by :meth:`MixedFit.detach` so that a fit can travel between processes without R.
"""
from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np
import pandas as pd

from .errors import PylmeError

TIDY_COLUMNS = ["effect", "group", "term", "estimate", "std_error", "statistic", "df", "p_value"]
EFFECTS = ("fixed", "ran_pars", "ran_vals", "ran_coefs")


class Backend(Protocol):
    """What an engine provides for the parts of a fit computed on demand."""

    def ran_vals(self) -> pd.DataFrame: ...
    def ran_coefs(self) -> pd.DataFrame: ...
    def ranef(self) -> dict[str, pd.DataFrame]: ...
    def fitted_resid(self) -> tuple[np.ndarray, np.ndarray]: ...
    def predict(self, newdata: pd.DataFrame | None, include_random: bool) -> np.ndarray: ...
    @property
    def r(self) -> Any: ...


@dataclass(frozen=True)
class DetachedBackend:
    """The on-demand tables of a fit, computed once and held without R."""

    tables: dict[str, Any]

    def ran_vals(self) -> pd.DataFrame:
        return self.tables["ran_vals"].copy()

    def ran_coefs(self) -> pd.DataFrame:
        return self.tables["ran_coefs"].copy()

    def ranef(self) -> dict[str, pd.DataFrame]:
        return {k: v.copy() for k, v in self.tables["ranef"].items()}

    def fitted_resid(self) -> tuple[np.ndarray, np.ndarray]:
        return self.tables["fitted"].copy(), self.tables["resid"].copy()

    def predict(self, newdata: pd.DataFrame | None, include_random: bool) -> np.ndarray:
        if newdata is None and include_random:
            return self.tables["fitted"].copy()
        raise PylmeError("a detached fit has no engine: predict() works only for the model rows "
                         "with include_random=True; refit to predict new data")

    @property
    def r(self) -> Any:
        raise PylmeError("this fit was detached from R (fit.detach()); it holds no R object")


def _as_tidy(frame: pd.DataFrame, effect: str) -> pd.DataFrame:
    out = frame.copy()
    out["effect"] = effect
    for col in TIDY_COLUMNS:
        if col not in out:
            out[col] = np.nan if col not in ("group", "term") else None
    # a missing group (fixed effects) is a missing string, not an object None
    out["group"] = pd.Series([np.nan if pd.isna(v) else str(v) for v in out["group"]],
                             index=out.index, dtype="str")
    extra = [c for c in out.columns if c not in TIDY_COLUMNS]
    return out[TIDY_COLUMNS + extra].reset_index(drop=True)


@dataclass(frozen=True, repr=False)
class MixedFit:
    """A fitted linear mixed model, whatever engine fitted it.

    Attributes
    ----------
    engine : str
        "lme4", "nlme", "glmmTMB" or "statsmodels".
    formula : str
        The model as the engine was given it (fixed and random parts).
    nobs : int
        Rows used in the fit.
    n_dropped : int
        Rows of the data the engine dropped for missing values.
    warnings : tuple of str
        Every warning and message the engine raised while fitting.
    data : pandas.DataFrame
        The model rows (a copy of the rows of the input the engine used).
    """

    engine: str
    formula: str
    nobs: int
    n_dropped: int
    warnings: tuple[str, ...]
    data: pd.DataFrame
    fixed_table: pd.DataFrame
    ran_pars_table: pd.DataFrame
    stats: dict[str, Any]
    fixef_values: pd.Series
    backend: Any
    call_args: dict[str, Any] = field(default_factory=dict)
    vcov_matrix: pd.DataFrame | None = None

    # ------------------------------------------------------------------ tables
    def tidy(self, effects: str | Sequence[str] = "fixed", *, conf_int: bool = False,
             conf_level: float = 0.95) -> pd.DataFrame:
        """Tidy table of estimates, as broom.mixed lays them out.

        Parameters
        ----------
        effects : {"fixed", "ran_pars", "ran_vals", "ran_coefs"} or list of them
        conf_int : bool
            Add ``conf_low``/``conf_high``: Wald intervals using the t distribution with
            the reported df where there are df (Satterthwaite, Kenward-Roger, nlme's
            containment df), the normal distribution otherwise. No intervals for
            variance parameters (they need profiling).
        conf_level : float
        """
        wanted = [effects] if isinstance(effects, str) else list(effects)
        unknown = [e for e in wanted if e not in EFFECTS]
        if unknown:
            raise PylmeError(f"unknown effects {unknown}; choose from {list(EFFECTS)}")
        parts = []
        for effect in wanted:
            if effect == "fixed":
                parts.append(_as_tidy(self.fixed_table, "fixed"))
            elif effect == "ran_pars":
                parts.append(_as_tidy(self.ran_pars_table, "ran_pars"))
            elif effect == "ran_vals":
                parts.append(_as_tidy(self.backend.ran_vals(), "ran_vals"))
            else:
                parts.append(_as_tidy(self.backend.ran_coefs(), "ran_coefs"))
        table = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        if conf_int:
            table = _add_wald_intervals(table, conf_level)
        return table

    def glance(self) -> pd.DataFrame:
        """One-row model summary: nobs, sigma, logLik, AIC, BIC, reml, converged, singular,
        degenerate, npar (number of parameters, as :func:`~pylme_alliance.compare` names it;
        R's ``attr(logLik(fit), "df")``) and ``ngrps_<factor>`` per grouping factor.
        ``singular``/``degenerate`` follow the rule of :mod:`pylme_alliance.engines.flags`."""
        # one name for one thing: "df" elsewhere in the package is degrees of freedom of a test
        row = {("npar" if k == "df" else k): v for k, v in self.stats.items() if k != "ngrps"}
        for name, n in self.stats.get("ngrps", {}).items():
            row[f"ngrps_{name}"] = int(n)
        return pd.DataFrame([row])

    def augment(self) -> pd.DataFrame:
        """The model rows plus ``fitted`` and ``resid`` (response scale, finest level)."""
        out = self.data.copy()
        clash = [name for name in ("fitted", "resid") if name in out.columns]
        if clash:
            # overwriting them would silently replace the user's own values
            raise PylmeError(f"the data already have column(s) {clash}, which augment() adds; rename "
                             "them before fitting, or use fit.predict() and the residuals from "
                             "fit.data[response] - fit.predict()")
        fitted, resid = self.backend.fitted_resid()
        out["fitted"] = fitted
        out["resid"] = resid
        return out

    def predict(self, newdata: pd.DataFrame | None = None, *, include_random: bool = True) -> np.ndarray:
        """Predictions for the model rows or ``newdata``; with ``include_random=False``
        the population-level (fixed-effects only) prediction. New levels of a grouping
        factor get the population prediction."""
        if newdata is not None and not isinstance(newdata, pd.DataFrame):
            raise PylmeError("newdata must be a pandas DataFrame")
        return np.asarray(self.backend.predict(newdata, include_random), dtype=float)

    def fixef(self) -> pd.Series:
        """Fixed-effect estimates, named by term (lme4's ``fixef``)."""
        return self.fixef_values.copy()

    def vcov(self) -> pd.DataFrame:
        """Covariance matrix of the fixed-effect estimates, rows and columns named by term."""
        if self.vcov_matrix is None:
            raise PylmeError(f"the {self.engine} fit holds no covariance matrix of the fixed effects")
        return self.vcov_matrix.copy()

    def contrast(self, weights: dict[str, float]) -> dict[str, float]:
        """Estimate a linear combination of fixed effects, e.g. a simple slope.

        Parameters
        ----------
        weights : dict
            Term -> weight (terms not named get weight 0).

        Returns
        -------
        dict
            estimate, std_error, df, statistic, p_value: with lmerTest's Satterthwaite
            (or Kenward-Roger) df for lme4 fits; for other engines the covariance of
            the fit with the df of the first weighted term (nlme's containment df) or,
            without df, a Wald z.
        """
        unknown = [t for t in weights if t not in self.fixef_values.index]
        if unknown:
            raise PylmeError(f"no fixed effect named {unknown}; the terms are {list(self.fixef_values.index)}")
        L = np.array([float(weights.get(t, 0.0)) for t in self.fixef_values.index])
        exact = getattr(self.backend, "contrast", None)
        result = exact(L, self.call_args.get("ddf", "satterthwaite")) if exact is not None else None
        if result is not None:
            return {k: float(result[k]) for k in ("estimate", "std_error", "df", "statistic", "p_value")}
        V = self.vcov().loc[self.fixef_values.index, self.fixef_values.index].to_numpy()
        estimate = float(L @ self.fixef_values.to_numpy())
        se = float(np.sqrt(L @ V @ L))
        first = next(t for t in self.fixef_values.index if weights.get(t, 0.0) != 0.0)
        df = float(self.fixed_table.set_index("term").loc[first, "df"])
        statistic = estimate / se
        from scipy import stats  # lazy: scipy.stats costs ~1 s to import (every worker paid it)

        p = 2 * (stats.t.sf(abs(statistic), df) if np.isfinite(df) else stats.norm.sf(abs(statistic)))
        return {"estimate": estimate, "std_error": se, "df": df, "statistic": statistic, "p_value": float(p)}

    def ranef(self) -> dict[str, pd.DataFrame]:
        """Conditional modes of the random effects (lme4's ``ranef``): one DataFrame per
        grouping factor, indexed by level, one column per term."""
        return self.backend.ranef()

    @property
    def r(self) -> Any:
        """The engine's own model object (an rpy2 object for the R engines)."""
        return self.backend.r

    @property
    def converged(self) -> bool:
        return bool(self.stats.get("converged", True))

    @property
    def singular(self) -> bool:
        return bool(self.stats.get("singular", False))

    def detach(self) -> MixedFit:
        """A copy that holds every table and flag but no engine object (picklable)."""
        if isinstance(self.backend, DetachedBackend):
            return self
        fitted, resid = self.backend.fitted_resid()
        tables = {"ran_vals": self.backend.ran_vals(), "ran_coefs": self.backend.ran_coefs(),
                  "ranef": self.backend.ranef(), "fitted": fitted, "resid": resid,
                  "sd_intervals": {}}
        return replace(self, backend=DetachedBackend(tables))

    def __getstate__(self) -> dict[str, Any]:
        if not isinstance(self.backend, DetachedBackend):
            raise PylmeError("an attached fit holds an R object that cannot be pickled; "
                             "call fit.detach() first")
        return self.__dict__.copy()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # --------------------------------------------------------------- display
    def summary(self) -> str:
        """A readable summary: the model, fit statistics, variance parameters, fixed effects."""
        g = self.stats
        lines = [f"Linear mixed model fit by {'REML' if g.get('reml') else 'maximum likelihood'}"
                 f" ({self.engine})", f"Formula: {self.formula}",
                 f"Observations: {self.nobs} (dropped for missing values: {self.n_dropped})"]
        groups = ", ".join(f"{k}: {v}" for k, v in g.get("ngrps", {}).items())
        if groups:
            lines.append(f"Groups: {groups}")
        fmt = lambda v: "NaN" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.2f}"  # noqa: E731
        lines.append(f"logLik {fmt(g.get('logLik'))}  AIC {fmt(g.get('AIC'))}  BIC {fmt(g.get('BIC'))}")
        lines += ["", "Random effects and residual:",
                  self.ran_pars_table[["group", "term", "estimate"]].to_string(index=False,
                                                                               float_format="{:.4f}".format),
                  "", "Fixed effects:",
                  self.fixed_table[["term", "estimate", "std_error", "statistic", "df", "p_value"]]
                  .to_string(index=False, float_format="{:.4g}".format)]
        flags = []
        if not self.converged:
            flags.append("did NOT converge")
        if self.singular:
            flags.append("singular fit (a variance at its boundary)")
        elif self.stats.get("degenerate"):
            flags.append("degenerate fit (a correlation beyond ±0.99)")
        if flags:
            lines += ["", "Warning: " + "; ".join(flags)]
        if self.warnings:
            lines += ["", "Engine messages:"] + [f"  - {w}" for w in self.warnings]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<MixedFit {self.engine}: {self.formula} (n={self.nobs})>"

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        head = html.escape(f"{self.engine}: {self.formula}  (n = {self.nobs})")
        notes = "".join(f"<li>{html.escape(w)}</li>" for w in self.warnings)
        return (f"<div><p><b>{head}</b></p>{self.glance().to_html(index=False)}"
                f"<p>Variance parameters</p>{self.ran_pars_table.to_html(index=False)}"
                f"<p>Fixed effects</p>{self.fixed_table.to_html(index=False)}"
                + (f"<ul>{notes}</ul>" if notes else "") + "</div>")


def wald_interval(estimate: Any, std_error: Any, df: Any, conf_level: float) -> tuple[np.ndarray, np.ndarray]:
    """Wald bounds: t quantiles where ``df`` is finite, normal quantiles where it is not."""
    if not 0 < conf_level < 1:
        raise PylmeError("conf_level must be between 0 and 1")
    from scipy import stats  # lazy, see contrast()

    df = pd.to_numeric(pd.Series(np.asarray(df, dtype=object)), errors="coerce").to_numpy(dtype=float)
    q = np.where(np.isfinite(df), stats.t.ppf(0.5 + conf_level / 2, np.where(np.isfinite(df), df, 1.0)),
                 stats.norm.ppf(0.5 + conf_level / 2))
    est = pd.to_numeric(pd.Series(np.asarray(estimate, dtype=object)), errors="coerce").to_numpy(dtype=float)
    se = pd.to_numeric(pd.Series(np.asarray(std_error, dtype=object)), errors="coerce").to_numpy(dtype=float)
    return est - q * se, est + q * se


def _add_wald_intervals(table: pd.DataFrame, conf_level: float) -> pd.DataFrame:
    out = table.copy()
    out["conf_low"], out["conf_high"] = wald_interval(out["estimate"], out["std_error"], out["df"], conf_level)
    # the intervals belong beside the estimates; engine extras (level, ...) go last
    extra = [c for c in out.columns if c not in TIDY_COLUMNS + ["conf_low", "conf_high"]]
    return out[TIDY_COLUMNS + ["conf_low", "conf_high"] + extra]
