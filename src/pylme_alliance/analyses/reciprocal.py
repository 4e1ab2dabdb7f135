"""reciprocal(): alliance -> outcome and outcome -> alliance in one dynamic model, and the
impulse responses that say how long a within-person alliance change lasts (issue 19).

The default is the random-intercept cross-lagged panel model (RI-CLPM; Hamaker,
Kuiper & Grasman 2015) fitted by lavaan with FIML on wide data by session number
(wave w = session w). ``method="dpm"`` is the ML-SEM dynamic panel model (Allison,
Williams & Moral-Benito 2017); ``method="mlm"`` the package's decomposed multilevel
model and its mirror, with the bias issue 19 measured for them. The lavaan syntax is
built in r/reciprocal.R from the wave count and fixed names (a1..aW, y1..yW): column
names never reach R source text.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .. import bridge
from ..errors import PylmeError
from ..panel.prepare import AlliancePanel
from .impulse import impulse_table
from .reciprocal_fit import ReciprocalFit, path_rows
from .reciprocal_mlm import fit_mlm, source_frame

__all__ = ["reciprocal", "ReciprocalFit", "choose_waves", "wide_ratings"]

METHODS = ("riclpm", "dpm", "mlm")
#: waves=None caps W here: lavaan's cost grows fast with W (20 waves ran past 4
#: CPU-minutes in the prototype; 10 waves take ~2 s CPU at 400 patients).
MAX_WAVES = 10
MIN_WAVES = 3
#: waves=None: the largest W at which at least this share of patients still has a rating
WAVE_SHARE = 0.5
#: a wave needs at least this many ratings of each series for FIML to estimate its mean
MIN_PER_WAVE = 3

_LABELS = ("pa", "pya", "py", "pay")  # r/reciprocal.R's labels, in PATHS order


def session_ratings(panel: AlliancePanel) -> pd.DataFrame:
    """patient (code 0..P-1), session, alliance, outcome: every session of the panel's
    patients with at least one rating (sessions with a missing alliance or outcome
    included, for FIML)."""
    frame = source_frame(panel)
    roles = panel.roles
    kept = pd.Index(panel.data[roles["patient"]].unique())
    frame = frame[frame[roles["patient"]].isin(kept)]
    out = pd.DataFrame({
        "patient": kept.get_indexer(frame[roles["patient"]]),
        "session": pd.to_numeric(frame[roles["session"]], errors="coerce").to_numpy(),
        "alliance": pd.to_numeric(frame[roles["alliance"]], errors="coerce").to_numpy(dtype=float),
        "outcome": pd.to_numeric(frame[roles["outcome"]], errors="coerce").to_numpy(dtype=float),
    })
    out = out[out["session"].notna()]
    out["session"] = out["session"].astype(np.int64)
    return out.sort_values(["patient", "session"], kind="stable").reset_index(drop=True)


def choose_waves(ratings: pd.DataFrame, waves: int | None, *, max_waves: int = MAX_WAVES) -> tuple[int, str]:
    """W and a note saying how it was chosen.

    ``waves=None``: the largest W <= ``max_waves`` at which at least half the patients
    still have a rating (alliance or outcome) at session W. A given W is checked: an
    integer between 3 and 40 whose every wave holds at least 3 ratings of each series.
    """
    n_patients = ratings["patient"].nunique()
    rated = ratings[ratings[["alliance", "outcome"]].notna().any(axis=1)]
    per_session = rated.groupby("session")["patient"].nunique()
    if waves is None:
        share = per_session.reindex(range(1, max_waves + 1), fill_value=0) / max(n_patients, 1)
        enough = [w for w, s in share.items() if s >= WAVE_SHARE]
        chosen = max(enough) if enough else MIN_WAVES
        chosen = max(chosen, MIN_WAVES)
        note = (f"waves=None: W = {chosen}, the largest session number (capped at {max_waves}) at which at least "
                f"{WAVE_SHARE:.0%} of the {n_patients} patients still have a rating "
                f"({int(per_session.get(chosen, 0))} do); pass waves= to choose")
    else:
        if isinstance(waves, bool) or not isinstance(waves, (int, np.integer)) or not 3 <= waves <= 40:
            raise PylmeError(f"waves must be an integer between 3 and 40 (or None), got {waves!r}")
        chosen = int(waves)
        note = f"waves={chosen}: sessions 1..{chosen} are the waves"
    counts = ratings[ratings["session"] <= chosen].groupby("session")[["alliance", "outcome"]].count()
    counts = counts.reindex(range(1, chosen + 1), fill_value=0)
    for series in ("alliance", "outcome"):
        thin = counts.index[counts[series] < MIN_PER_WAVE].tolist()
        if thin:
            raise PylmeError(f"wave(s) {thin} (session numbers) have fewer than {MIN_PER_WAVE} {series} ratings; "
                             f"choose fewer waves (waves=) or check the session column {'session'!r}")
    return chosen, note


def wide_ratings(ratings: pd.DataFrame, waves: int) -> tuple[pd.DataFrame, dict[str, int]]:
    """Raw wide data a1..aW, y1..yW (one row per patient with a rating in the waves) and
    what falls outside the waves."""
    inside = ratings[ratings["session"] <= waves]
    beyond = ratings[ratings["session"] > waves]
    wide = inside.pivot(index="patient", columns="session", values=["alliance", "outcome"])
    columns = {}
    for w in range(1, waves + 1):
        columns[f"a{w}"] = wide["alliance"][w] if w in wide["alliance"] else np.nan
    for w in range(1, waves + 1):
        columns[f"y{w}"] = wide["outcome"][w] if w in wide["outcome"] else np.nan
    frame = pd.DataFrame(columns, index=wide.index).astype(float)
    frame = frame[frame.notna().any(axis=1)]
    outside = {"sessions": int(len(beyond)), "patients_beyond": int(beyond["patient"].nunique()),
               "patients": int(ratings["patient"].nunique() - len(frame))}
    return frame.reset_index(drop=True), outside


def within_sds(ratings: pd.DataFrame) -> dict[str, float]:
    """Pooled within-person SDs of both series over ``ratings`` (each rating minus its
    patient's mean of that series; df = ratings - patients)."""
    out = {}
    for series in ("alliance", "outcome"):
        rated = ratings[["patient", series]].dropna()
        dev = rated[series] - rated.groupby("patient")[series].transform("mean")
        df = len(rated) - rated["patient"].nunique()
        out[series] = float(math.sqrt(float((dev ** 2).sum()) / df)) if df > 0 else float("nan")
    return out


def reciprocal(panel: AlliancePanel, *, method: str = "riclpm", waves: int | None = None, slopes: bool = False,
               leads: int = 3, conf_level: float = 0.95, max_waves: int = MAX_WAVES, fit_measures: bool = False,
               **mlm_options: Any) -> ReciprocalFit:
    """Fit alliance -> outcome and outcome -> alliance together.

    Parameters
    ----------
    panel : AlliancePanel
        From :func:`pylme_alliance.prepare`. Sessions dropped there for a missing
        alliance or outcome are used again here (FIML handles missing ratings).
    method : {"riclpm", "dpm", "mlm"}
        ``"riclpm"`` (default): random intercepts for both series (their variances and
        correlation), wave means free (the common trajectory), time-invariant lagged
        paths and innovation (co)variances; ``"dpm"``: the ML-SEM dynamic panel model
        (lags on the observed scores, patient fixed effects correlated with the first
        wave); ``"mlm"``: the decomposed multilevel model (:class:`AllianceModel`) and
        its mirror, biased as issue 19 measured (the ``estimand`` column says how).
    waves : int, optional
        W: wave w is session number w, w = 1..W. None: chosen from the data
        (:func:`choose_waves`) and said in ``notes``. Not used by "mlm".
    slopes : bool
        RI-CLPM only: add random linear slopes (session) for both series. A slope whose
        variance comes out negative is fixed at 0 (no variance, no covariances) and the
        model refitted; ``problems`` says so.
    leads : int
        K for :attr:`ReciprocalFit.impulse` (responses at t+1..t+K).
    conf_level : float
        Level of the Wald intervals.
    max_waves : int
        The cap of the automatic wave choice.
    fit_measures : bool
        Also compute chi-square, CFI, RMSEA, SRMR (lavaan then fits the saturated and
        baseline models: slower).
    **mlm_options
        ``method="mlm"`` only: options of :class:`AllianceModel` (therapist, engine, ...).

    Returns
    -------
    ReciprocalFit

    Notes
    -----
    Both series are centred and scaled inside (one mean and SD per series over the
    waves: lavaan converges in a fraction of the iterations) and every estimate is
    returned on the raw scale. lavaan runs with ``missing="ml"``; the saturated and
    baseline models are skipped unless ``fit_measures=True``. The therapist level is
    not modelled by "riclpm" and "dpm".
    """
    if method not in METHODS:
        raise PylmeError(f"method must be one of {', '.join(map(repr, METHODS))}; got {method!r}")
    if not isinstance(panel, AlliancePanel):
        raise PylmeError(f"reciprocal() needs an AlliancePanel from prepare(), got {type(panel).__name__}")
    if slopes and method != "riclpm":
        raise PylmeError("slopes=True is available for method='riclpm' only")
    if mlm_options and method != "mlm":
        raise PylmeError(f"options {sorted(mlm_options)} are AllianceModel options, used by method='mlm' only")
    units = {"alliance": str(panel.roles["alliance"]), "outcome": panel.outcome_name}
    ratings = session_ratings(panel)
    if method == "mlm":
        return _mlm_fit(panel, ratings, leads=leads, conf_level=conf_level, units=units, **mlm_options)
    W, wave_note = choose_waves(ratings, waves, max_waves=max_waves)
    wide, outside = wide_ratings(ratings, W)
    outside["patients_not_prepared"] = _unprepared_patients(panel)
    return _sem_fit(ratings, wide, W, method=method, slopes=slopes, leads=leads, conf_level=conf_level,
                    fit_measures=fit_measures, units=units, outside=outside,
                    notes=[wave_note, *_panel_notes(panel, method)])


def _unprepared_patients(panel: AlliancePanel) -> int:
    """Patients of the input that prepare() dropped entirely (e.g. too few usable sessions)."""
    column = panel.roles["patient"]
    if column not in panel.dropped:
        return 0
    ids = panel.dropped[column].dropna()
    return int(ids[~ids.isin(panel.data[column])].nunique())


def _panel_notes(panel: AlliancePanel, method: str) -> list[str]:
    notes = ["both series centred and scaled inside (one mean and SD per series over the waves); estimates "
             "on the raw scale"]
    if panel.roles.get("therapist") is not None:
        notes.append(f"the therapist level is not modelled by method={method!r} (patients are the units)")
    return notes


def _scale(wide: pd.DataFrame, waves: int) -> tuple[pd.DataFrame, dict[str, float]]:
    """Centre and scale each series by its mean and SD over all waves (one pair per series)."""
    scaled = wide.copy()
    scales: dict[str, float] = {}
    for series, prefix in (("alliance", "a"), ("outcome", "y")):
        cols = [f"{prefix}{w}" for w in range(1, waves + 1)]
        values = wide[cols].to_numpy()
        mean, sd = float(np.nanmean(values)), float(np.nanstd(values, ddof=1))
        if not sd > 0:
            raise PylmeError(f"the {series} ratings in waves 1..{waves} are constant; no dynamics to estimate")
        scaled[cols] = (values - mean) / sd
        scales[f"{series}_mean"], scales[f"{series}_sd"] = mean, sd
    return scaled, scales


def _estimands(method: str, units: dict[str, str]) -> dict[str, str]:
    a, y = units["alliance"], units["outcome"]
    base = ("patient's own level (random intercept) and the wave mean" if method == "riclpm"
            else "patient's fixed effect (DPM)")
    return {
        "alliance->outcome": f"change in {y} at session t+1 per one-point within-person {a} deviation at t "
                             f"(from the {base}), {y} at t held constant",
        "outcome->alliance": f"change in {a} at session t+1 per one-point within-person {y} deviation at t "
                             f"(from the {base}), {a} at t held constant",
        "alliance->alliance": f"carry-over of a within-person {a} deviation to the next session",
        "outcome->outcome": f"carry-over of a within-person {y} deviation to the next session",
    }


def _sem_fit(ratings: pd.DataFrame, wide: pd.DataFrame, waves: int, *, method: str, slopes: bool, leads: int, conf_level: float,
             fit_measures: bool, units: dict[str, str], outside: dict[str, int], notes: list[str]) -> ReciprocalFit:
    scaled, scales = _scale(wide, waves)
    value, conditions = bridge.call("pylme_reciprocal_fit", scaled, waves, method, slopes, [], fit_measures)
    problems: list[str] = []
    summary = value["summary"]
    if slopes:
        bad = [s for s in ("Sa", "Sy") if s in _strings(summary["negative"])]
        if bad:
            names = {"Sa": "alliance", "Sy": "outcome"}
            problems.append(f"random {' and '.join(names[s] for s in bad)} slope variance negative: refitted "
                            "with it fixed at 0 (no slope variance, no covariances)")
            value, more = bridge.call("pylme_reciprocal_fit", scaled, waves, method, slopes, bad, fit_measures)
            conditions = [*conditions, *more]
            summary = value["summary"]
    negative = _strings(summary["negative"])
    if negative:
        problems.append(f"inadmissible: negative variance estimate(s) for {negative}")
    min_eigen = summary["min_eigen_lv"]
    if min_eigen is not None and not math.isnan(min_eigen) and min_eigen <= 0:
        problems.append(f"inadmissible: the latent covariance matrix is not positive definite "
                        f"(smallest eigenvalue {min_eigen:.3g})")
    params = summary["params"]
    factor = np.array([1.0, scales["alliance_sd"] / scales["outcome_sd"], 1.0,
                       scales["outcome_sd"] / scales["alliance_sd"]])
    first = params.dropna(subset=["label"]).drop_duplicates("label").set_index("label")
    paths = first.loc[list(_LABELS), "est"].to_numpy(dtype=float) * factor
    vcov = np.asarray(summary["paths_vcov"], dtype=float).reshape(4, 4, order="F") * np.outer(factor, factor)
    sds = within_sds(ratings[ratings["session"] <= waves])
    measures = None
    if fit_measures:
        measures, more = bridge.call("pylme_reciprocal_fit_measures", value["fit"])
        conditions = [*conditions, *more]
    return ReciprocalFit(
        method=method, waves=waves,
        effects=path_rows(paths, vcov, sds, _estimands(method, units), conf_level=conf_level),
        impulse=impulse_table(paths, vcov, leads=leads, conf_level=conf_level, units=units),
        patient_level=_patient_level(params, method, scales, waves), within_sd=sds, outside=outside,
        converged=bool(summary["converged"]), admissible=not any(p.startswith("inadmissible") for p in problems),
        paths=paths, paths_vcov=vcov, n_patients=int(summary["n_used"]), problems=problems,
        notes=notes, warnings=list(conditions), parameters=params, syntax=str(value["syntax"]),
        iterations=summary["iterations"], fit_measures=measures, units=units, _r_fit=value["fit"])


def _strings(value: Any) -> list[str]:
    """An R character vector as a list (R's length-1 vectors arrive as a str)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _cov(params: pd.DataFrame, lhs: str, rhs: str) -> float:
    rows = params[(params["op"] == "~~") & (((params["lhs"] == lhs) & (params["rhs"] == rhs))
                                            | ((params["lhs"] == rhs) & (params["rhs"] == lhs)))]
    return float(rows["est"].iloc[0]) if len(rows) else float("nan")


def _patient_level(params: pd.DataFrame, method: str, scales: dict[str, float], waves: int) -> dict[str, float]:
    sa, sy = scales["alliance_sd"], scales["outcome_sd"]
    ra, ry = ("RIa", "RIy") if method == "riclpm" else ("Fa", "Fy")
    va, vy, c = _cov(params, ra, ra), _cov(params, ry, ry), _cov(params, ra, ry)
    if method == "riclpm":
        within = _cov(params, "wa2", "wy2") / math.sqrt(_cov(params, "wa2", "wa2") * _cov(params, "wy2", "wy2"))
    else:
        within = float(np.mean([_cov(params, f"a{w}", f"y{w}") / math.sqrt(_cov(params, f"a{w}", f"a{w}")
                                                                           * _cov(params, f"y{w}", f"y{w}"))
                                for w in range(2, waves + 1)]))
    return {"alliance_variance": va * sa ** 2, "outcome_variance": vy * sy ** 2,
            "correlation": c / math.sqrt(va * vy) if va > 0 and vy > 0 else float("nan"),
            "within_correlation": within}


def _mlm_fit(panel: AlliancePanel, ratings: pd.DataFrame, *, leads: int, conf_level: float,
             units: dict[str, str], **options: Any) -> ReciprocalFit:
    paths, vcov, fits, notes = fit_mlm(panel, **options)
    sds = within_sds(ratings)
    estimands = {
        "alliance->outcome": f"decomposed MLM: {units['outcome']} at t+1 per one-point {units['alliance']} "
                             f"deviation from the patient's mean at t, {units['outcome']} at t controlled; "
                             "biased when patients have their own trajectories (see notes)",
        "outcome->alliance": f"mirror MLM: {units['alliance']} at t+1 per one-point {units['outcome']} deviation "
                             f"from the patient's mean at t, {units['alliance']} at t controlled; "
                             "lagged-outcome bias (see notes)",
        "alliance->alliance": f"coefficient of the lagged {units['alliance']} deviation in the mirror model "
                              "(Nickell bias toward 0 in short series)",
        "outcome->outcome": f"coefficient of the lagged {units['outcome']} deviation in the alliance model "
                            "(Nickell bias toward 0 in short series)",
    }
    forward, mirror = fits
    problems = [f"{name} model singular" for name, fit in (("alliance->outcome", forward),
                                                           ("outcome->alliance", mirror)) if fit.singular]
    return ReciprocalFit(
        method="mlm", waves=int(ratings["session"].max()),
        effects=path_rows(paths, vcov, sds, estimands, conf_level=conf_level),
        impulse=impulse_table(paths, vcov, leads=leads, conf_level=conf_level, units=units),
        patient_level={}, within_sd=sds, outside={}, converged=bool(forward.converged and mirror.converged),
        admissible=True, paths=paths, paths_vcov=vcov, n_patients=int(panel.data[panel.roles["patient"]].nunique()),
        problems=problems, notes=notes, warnings=[*forward.warnings, *mirror.warnings], units=units,
        _mlm_fits=fits)

