"""compare(): likelihood-ratio and information-criterion table for nested mixed models,
as R's ``anova(m0, m1)`` prints it for lme4 fits.

REML likelihoods depend on the fixed effects, so models that differ in their fixed
effects are compared by maximum likelihood: a REML fit is refitted with ML first (R
fits in R, through ``r/compare.R``; statsmodels fits with ``reml=False``), and the
table says so in its ``refit_ml`` column.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .errors import PylmeError
from .results import MixedFit

COLUMNS = ["npar", "logLik", "AIC", "BIC", "deviance", "chisq", "df", "p_value", "refit_ml"]

#: Engine -> likelihood family. All engines here fit Gaussian linear mixed models, so
#: their ML log-likelihoods are the same function of the data and can be compared.
_FAMILY = {"lme4": "gaussian", "nlme": "gaussian", "glmmTMB": "gaussian", "statsmodels": "gaussian"}
_R_ENGINES = ("lme4", "nlme", "glmmTMB")


def _family(fit: MixedFit) -> str:
    if fit.engine not in _FAMILY:
        raise PylmeError(f"compare() does not know the likelihood of engine {fit.engine!r}")
    family = fit.call_args.get("family") or _FAMILY[fit.engine]
    return str(family).lower()


def _ml_stats(fit: MixedFit) -> dict[str, Any]:
    """logLik, npar and nobs of ``fit`` refitted by maximum likelihood."""
    if fit.engine == "statsmodels":
        from .engines.statsmodels import mixedlm

        args = dict(fit.call_args)
        args["reml"] = False
        formula = args.pop("formula")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the refit's own notes; the original fit has them
            refit = mixedlm(formula, fit.data, **args)
        return {"logLik": refit.stats["logLik"], "npar": refit.stats["df"], "nobs": refit.nobs}
    if fit.engine in _R_ENGINES:
        from . import bridge

        value, _ = bridge.call("pylme_compare_loglik", fit.r, True)
        return {"logLik": float(np.asarray(value["logLik"]).ravel()[0]),
                "npar": float(np.asarray(value["df"]).ravel()[0]),
                "nobs": int(np.asarray(value["nobs"]).ravel()[0])}
    raise PylmeError(f"compare() cannot refit a fit of engine {fit.engine!r} by maximum likelihood")


def _labels(fits: Sequence[MixedFit], labels: Sequence[str] | None) -> list[str]:
    if labels is not None:
        labels = [str(x) for x in labels]
        if len(labels) != len(fits) or len(set(labels)) != len(labels):
            raise PylmeError("labels must be one distinct name per fit")
        return labels
    formulas = [f.formula for f in fits]
    if len(set(formulas)) == len(formulas):
        return formulas
    return [f"model{i + 1}" for i in range(len(fits))]


def compare(*fits: MixedFit, labels: Sequence[str] | None = None) -> pd.DataFrame:
    """Likelihood-ratio tests and AIC/BIC for two or more mixed models of the same rows.

    Parameters
    ----------
    *fits : MixedFit
        Two or more fits of the same response on the same rows, usually nested.
    labels : sequence of str, optional
        Row names; default the fits' formulas (``model1``, ``model2``, ... when two fits
        share a formula).

    Returns
    -------
    pandas.DataFrame
        One row per fit, ordered by number of parameters: ``npar, logLik, AIC, BIC,
        deviance, chisq, df, p_value, refit_ml``. ``chisq = 2 * (logLik - logLik of the
        row above)`` (floored at 0, as lme4 does), ``df`` the difference in ``npar`` and
        ``p_value`` the chi-square upper tail (NaN when df <= 0). AIC/BIC are computed
        from logLik and npar (BIC with log(nobs)), so REML rows have them too.

    Notes
    -----
    When any fit is REML and the fits differ in their fixed effects (or some are ML),
    every REML fit is refitted by maximum likelihood, ``refit_ml`` is True on its row,
    and a UserWarning says so. Fits of different rows (nobs), fewer than two fits, or
    engines with different likelihood families raise PylmeError. REML fits of different
    engines compared without refit give a warning: their REML criteria need not agree.
    """
    if len(fits) < 2:
        raise PylmeError(f"compare() needs at least two fits, got {len(fits)}")
    bad = [type(f).__name__ for f in fits if not isinstance(f, MixedFit)]
    if bad:
        raise PylmeError(f"compare() takes MixedFit objects, got {bad}")
    names = _labels(fits, labels)
    nobs = {f.nobs for f in fits}
    if len(nobs) > 1:
        raise PylmeError("the fits use different numbers of rows "
                         f"({', '.join(f'{n}: {f.nobs}' for n, f in zip(names, fits))}); likelihoods of "
                         "different data cannot be compared. Fit every model on the same complete rows "
                         "(drop the rows missing in any model first)")
    families = {_family(f) for f in fits}
    if len(families) > 1:
        raise PylmeError(f"the fits have different likelihood families {sorted(families)}; "
                         "their log-likelihoods cannot be compared")
    row_sets = [tuple(f.data.index) for f in fits]
    if any(r != row_sets[0] for r in row_sets[1:]):
        warnings.warn("the fits' model rows carry different row labels; make sure they are the same "
                      "rows of the same data", UserWarning, stacklevel=2)

    reml = [bool(f.stats.get("reml")) for f in fits]
    fixed_sets = {frozenset(f.fixef().index) for f in fits}
    need_refit = any(reml) and (len(fixed_sets) > 1 or not all(reml))
    engines = {f.engine for f in fits}

    rows = []
    for name, fit, is_reml in zip(names, fits, reml):
        refit = need_refit and is_reml
        if refit:
            ml = _ml_stats(fit)
            if ml["nobs"] != fit.nobs:
                raise PylmeError(f"the ML refit of {name!r} used {ml['nobs']} rows, not {fit.nobs}")
            ll, npar = ml["logLik"], ml["npar"]
        else:
            ll, npar = float(fit.stats["logLik"]), float(fit.stats["df"])
        rows.append({"model": name, "npar": int(round(npar)), "logLik": ll, "refit_ml": refit})

    if need_refit:
        which = [r["model"] for r in rows if r["refit_ml"]]
        warnings.warn(f"refitted with ML (not REML) to compare models that differ in their fixed "
                      f"effects: {', '.join(which)}", UserWarning, stacklevel=2)
    elif all(reml) and len(engines) > 1:
        warnings.warn(f"comparing REML likelihoods from different engines ({', '.join(sorted(engines))}): "
                      "their REML criteria need not be comparable; refit with reml=False to be sure",
                      UserWarning, stacklevel=2)

    n = fits[0].nobs
    table = pd.DataFrame(rows).set_index("model")
    table.index.name = None
    order = np.argsort(table["npar"].to_numpy(), kind="stable")
    table = table.iloc[order]
    ll = table["logLik"].to_numpy(dtype=float)
    k = table["npar"].to_numpy(dtype=float)
    table["AIC"] = -2 * ll + 2 * k
    table["BIC"] = -2 * ll + k * np.log(n)
    table["deviance"] = -2 * ll
    chisq = np.r_[np.nan, 2 * np.maximum(0.0, np.diff(ll))]
    ddf = np.r_[np.nan, np.diff(k)]
    with np.errstate(invalid="ignore"):
        p = np.where(ddf > 0, stats.chi2.sf(chisq, np.where(ddf > 0, ddf, 1)), np.nan)
    table["chisq"] = chisq
    table["df"] = ddf
    table["p_value"] = p
    return table[COLUMNS]
