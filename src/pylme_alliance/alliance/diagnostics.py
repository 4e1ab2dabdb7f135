"""Diagnostics of alliance-outcome fits: convergence flags, residual autocorrelation by
session number, and the AR(1) alternative to independent residuals."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from ..errors import PylmeError
from .model import AllianceModel
from .prepare import AlliancePanel

FIT_COLUMNS = ["model", "engine", "lead", "moderator", "nobs", "converged", "singular", "n_warnings", "warnings"]
AR1_COLUMNS = ["model", "engine", "residual", "AIC", "BIC", "logLik", "phi", "preferred", "note"]


def fit_flags(fits: Mapping[str, Any]) -> pd.DataFrame:
    """One row per fit: name, engine, lead, moderator, nobs, converged, singular and
    R's warnings (joined with " | ")."""
    rows = []
    for name, fit in fits.items():
        model = getattr(fit, "model", None)
        warnings = [" ".join(str(w).split()) for w in (fit.warnings or ())]
        rows.append({
            "model": name, "engine": fit.engine,
            "lead": getattr(model, "lead", np.nan),
            "moderator": ", ".join(map(str, getattr(model, "moderators", ()) or ())),
            "nobs": fit.nobs, "converged": bool(fit.converged), "singular": bool(fit.singular),
            "n_warnings": len(warnings), "warnings": " | ".join(dict.fromkeys(warnings)),
        })
    return pd.DataFrame(rows, columns=FIT_COLUMNS)


def residual_acf(augmented: pd.DataFrame, lags: Iterable[int] = range(1, 6), *, patient: str = "patient",
                 session: str = "session", resid: str = "resid") -> pd.DataFrame:
    """Residual autocorrelation with pairs matched by SESSION NUMBER within patient.

    The pair at lag k is (session s, session s + k) of the same patient; when session
    s + k is missing (a missed session or a row the model dropped) there is no pair,
    whatever the row order. As nlme's ``ACF``: the mean product of the pairs divided by
    the mean square of all residuals (residuals centred at their overall mean).

    Returns
    -------
    pandas.DataFrame
        lag, acf, n_pairs.
    """
    for column in (patient, session, resid):
        if column not in augmented.columns:
            raise PylmeError(f"residual_acf needs a {column!r} column")
    frame = augmented[[patient, session, resid]].dropna()
    values = frame[resid].to_numpy(dtype=float)
    centred = values - values.mean() if len(values) else values
    base = pd.DataFrame({"p": frame[patient].astype(str).to_numpy(),
                         "s": pd.to_numeric(frame[session]).to_numpy(), "e": centred})
    base = base.drop_duplicates(["p", "s"])
    denominator = float(np.mean(base["e"] ** 2)) if len(base) else np.nan
    rows = []
    for k in lags:
        ahead = base.assign(s=base["s"] - int(k))  # session s+k re-labelled as s
        pairs = base.merge(ahead, on=["p", "s"], suffixes=("", "_k"))
        n = len(pairs)
        acf = float(np.mean(pairs["e"] * pairs["e_k"]) / denominator) if n and denominator > 0 else np.nan
        rows.append({"lag": int(k), "acf": acf, "n_pairs": n})
    return pd.DataFrame(rows, columns=["lag", "acf", "n_pairs"])


def _phi(fit: Any) -> float:
    pars = fit.tidy("ran_pars")
    rows = pars[pars["term"].astype(str).isin(["phi", "cor__ar1"])]
    return float(rows["estimate"].iloc[0]) if len(rows) else np.nan


def ar1_alternative(panel: AlliancePanel, model: AllianceModel) -> tuple[pd.DataFrame, list[str], dict[str, Any]]:
    """Fit ``model`` with independent and with AR(1) residuals and compare by AIC.

    The engine is nlme (therapist nested or none) or glmmTMB (crossed). Both fits use
    the same fixed effects, so the REML (nlme) or ML (glmmTMB) AICs are comparable.
    A fit that fails is reported in the table (``note``) and never raises.

    Returns
    -------
    (table, notes, fits)
        table columns: model, engine, residual, AIC, BIC, logLik, phi, preferred, note.
    """
    engine = "glmmtmb" if model.therapist == "crossed" else "nlme"
    notes: list[str] = []
    fits: dict[str, Any] = {}
    rows = []
    for residual in ("iid", "ar1"):
        name = f"{engine} {residual}"
        row = {"model": name, "engine": engine, "residual": residual, "AIC": np.nan, "BIC": np.nan,
               "logLik": np.nan, "phi": np.nan, "preferred": False, "note": ""}
        try:
            fit = model.replace(engine=engine, residual=residual).fit(panel)
        except Exception as exc:  # report, never crash: the alternative is a diagnostic
            message = " ".join(str(exc).split()) or type(exc).__name__
            row["note"] = f"fit failed: {message}"
            notes.append(f"AR(1) check: the {name} model failed to fit ({message}).")
        else:
            fits[f"AR(1) check: {name}"] = fit
            glance = fit.glance().iloc[0]
            row.update(AIC=float(glance["AIC"]), BIC=float(glance["BIC"]), logLik=float(glance["logLik"]),
                       phi=_phi(fit) if residual == "ar1" else np.nan)
            if not fit.converged:
                row["note"] = "did not converge"
            elif not np.isfinite(row["AIC"]):
                row["note"] = "no likelihood reported"
        rows.append(row)
    table = pd.DataFrame(rows, columns=AR1_COLUMNS)
    aic = table["AIC"].to_numpy(dtype=float)
    if np.isfinite(aic).all():
        table.loc[int(np.argmin(aic)), "preferred"] = True
        best = table.loc[table["preferred"], "residual"].iloc[0]
        diff = abs(aic[0] - aic[1])
        if best == "ar1":
            notes.append(f"AR(1) check: AR(1) residuals fit better (AIC lower by {diff:.1f}, "
                         f"phi = {table['phi'].iloc[1]:.2f}); consider residual='ar1' with engine={engine!r}.")
        else:
            notes.append(f"AR(1) check: independent residuals are adequate (AR(1) does not lower AIC; "
                         f"difference {diff:.1f}).")
        if (table["note"] == "did not converge").any():
            notes[-1] += " Caution: at least one of the two fits did not converge."
    elif not notes:
        notes.append("AR(1) check: the two models could not be compared by AIC (see the table's notes).")
    return table, notes, fits
