"""Diagnostics of alliance-outcome fits: convergence flags, residual autocorrelation by
session number, and the AR(1) alternative to independent residuals."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..errors import PylmeError
from ..panel.prepare import AlliancePanel
from .boundary import boundary_terms, slope_degenerate
from .model import AllianceModel
from .reliability import within_reliability

__all__ = ["boundary_terms", "slope_degenerate", "degenerate", "fit_status", "term_statuses", "fit_flags", "residual_acf", "ar1_engine",
           "ar1_row", "ar1_alternative", "ar1_table"]

FIT_COLUMNS = ["model", "engine", "lead", "moderator", "nobs", "converged", "singular", "degenerate", "status",
               "n_warnings", "warnings"]
AR1_COLUMNS = ["model", "engine", "residual", "AIC", "BIC", "logLik", "phi", "preferred", "note"]


def degenerate(fit: Any) -> bool:
    """The fit's ``degenerate`` flag (an SD ~ 0 or a correlation beyond +/-0.99; see
    :mod:`pylme_alliance.engines.flags`), falling back to ``singular``."""
    stats = getattr(fit, "stats", None) or {}
    return bool(stats.get("degenerate", fit.singular))



def fit_status(fit: Any, *, term: str | None = None) -> str:
    """"" for a fit that converged and is neither singular nor degenerate; otherwise
    what is wrong, naming the parameters at the boundary ("singular: SD of the random
    (Intercept) over therapist:patient ~ 0"), for marking the numbers from the fit.

    Where the recovery study measured the within effect off by more than 10% or covered
    less than 90% on the design closest to the fit's data, the status also says
    "unreliable here: ..." with the measured figures (:mod:`.reliability`). That part
    belongs to the within effect: with ``term`` given (a table row's term), it is kept
    only for ``alliance_within``; without it (the fit as a whole) it is always kept.
    """
    problems = []
    if not fit.converged:
        problems.append("did not converge")
    if fit.singular or degenerate(fit):
        label = "singular" if fit.singular else "degenerate"
        terms = boundary_terms(fit)
        if terms and _levels_in_fixed_part(fit) and all("random (Intercept)" in t for t in terms):
            terms.append("expected with the decomposed outcome control: the patient's mean outcome, a fixed "
                         "effect, carries the patients' and therapists' levels")
        problems.append(f"{label} ({', '.join(terms)})" if terms else label)
    if term is None or term == "alliance_within":
        problems.append(within_reliability(fit))
    return "; ".join(p for p in problems if p)


def term_statuses(fit: Any, terms: Iterable[Any]) -> list[str]:
    """:func:`fit_status` for each row of a table of the fit's terms (each status worked
    out once: the reliability rule reads the panel's summary)."""
    within, other = fit_status(fit), fit_status(fit, term="")
    return [within if str(term) == "alliance_within" else other for term in terms]


def _levels_in_fixed_part(fit: Any) -> bool:
    """The model carries the patient level as a fixed effect (the Mundlak outcome mean)."""
    model = getattr(fit, "model", None)
    return getattr(model, "control_outcome", None) == "decomposed" and "outcome_between" in fit.fixef_values.index


def fit_flags(fits: Mapping[str, Any]) -> pd.DataFrame:
    """One row per fit: name, engine, lead, moderator, nobs, converged, singular,
    degenerate, ``status`` (:func:`fit_status`) and R's warnings (joined with " | ")."""
    rows = []
    for name, fit in fits.items():
        model = getattr(fit, "model", None)
        warnings = [" ".join(str(w).split()) for w in (fit.warnings or ())]
        rows.append({
            "model": name, "engine": fit.engine,
            "lead": getattr(model, "lead", np.nan),
            "moderator": ", ".join(map(str, getattr(model, "moderators", ()) or ())),
            "nobs": fit.nobs, "converged": bool(fit.converged), "singular": bool(fit.singular),
            "degenerate": degenerate(fit), "status": fit_status(fit) or "ok",
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


def ar1_engine(model: AllianceModel) -> str:
    """The engine of the AR(1) check: glmmTMB for crossed therapists, else nlme."""
    return "glmmtmb" if model.therapist == "crossed" else "nlme"


def ar1_row(panel: AlliancePanel, model: AllianceModel, residual: str, *,
            fit: Any = None) -> tuple[dict[str, Any], list[str], dict[str, Any]]:
    """One row of the AR(1) comparison: ``model`` with ``residual`` residuals on the check's
    engine (:func:`ar1_engine`), fitted here unless ``fit`` (that very model, already
    fitted) is given. A fit that fails becomes the row's ``note`` and never raises.

    Returns
    -------
    (row, notes, fits)
    """
    engine = ar1_engine(model)
    name = f"{engine} {residual}"
    notes: list[str] = []
    fits: dict[str, Any] = {}
    row = {"model": name, "engine": engine, "residual": residual, "AIC": np.nan, "BIC": np.nan,
           "logLik": np.nan, "phi": np.nan, "preferred": False, "note": ""}
    try:
        if fit is None:
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
        elif degenerate(fit):
            row["note"] = "degenerate random effects (an SD ~ 0 or a correlation at +/-1)"
        elif not np.isfinite(row["AIC"]):
            row["note"] = "no likelihood reported"
    return row, notes, fits


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
    rows, notes, fits = [], [], {}
    for residual in ("iid", "ar1"):
        row, row_notes, row_fits = ar1_row(panel, model, residual)
        rows.append(row)
        notes.extend(row_notes)
        fits.update(row_fits)
    table, compared = ar1_table(rows, model)
    return table, notes + compared, fits


def ar1_table(rows: list[dict[str, Any]], model: AllianceModel) -> tuple[pd.DataFrame, list[str]]:
    """The AR(1) comparison table from its two rows (:func:`ar1_row`, iid then ar1) and
    the notes that compare them."""
    engine = ar1_engine(model)
    notes: list[str] = []
    table = pd.DataFrame(rows, columns=AR1_COLUMNS)
    aic = table["AIC"].to_numpy(dtype=float)
    unusable = [f"the {r.model} fit {r.note}" for r in table.itertuples()
                if r.note and not r.note.startswith("degenerate")]
    if unusable:
        # an AIC from a fit that did not converge (or failed) says nothing about the residuals
        notes.append("AR(1) check: the comparison could not be made, because " + " and ".join(unusable)
                     + f" (model: {_describe(model)}).")
    elif np.isfinite(aic).all():
        table.loc[int(np.argmin(aic)), "preferred"] = True
        best = table.loc[table["preferred"], "residual"].iloc[0]
        diff = abs(aic[0] - aic[1])
        if best == "ar1":
            notes.append(f"AR(1) check ({_describe(model)}, both fits converged): AR(1) residuals fit better "
                         f"(AIC lower by {diff:.1f}, phi = {table['phi'].iloc[1]:.2f}); consider residual='ar1' "
                         f"with engine={engine!r}.")
        else:
            notes.append(f"AR(1) check ({_describe(model)}, both fits converged): independent residuals are "
                         f"adequate (AR(1) does not lower AIC; difference {diff:.1f}).")
        if table["note"].str.startswith("degenerate").any():
            notes[-1] += (" Caution: a fit has degenerate random effects; the residual comparison stands, "
                          "its variance components do not.")
    else:
        notes.append("AR(1) check: the two models could not be compared by AIC (see the table's notes).")
    return table, notes


def _describe(model: AllianceModel) -> str:
    control = getattr(model, "control_outcome", None)
    text = {"decomposed": "lagged outcome decomposed", "raw": "raw lagged outcome",
            False: "no outcome control"}.get(control, f"control_outcome={control!r}")
    return f"{text}, lead {model.lead}"
