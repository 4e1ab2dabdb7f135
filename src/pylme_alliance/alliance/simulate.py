"""Simulate alliance-outcome trials with known truth, and the bundled example trial.

The simulator produces session-level data shaped like the trial in METHODS.md
(547 outpatients, 40 therapists, 5 feedback arms, weekly sessions with gaps and
early dropout) and a ``truth`` dict holding exactly the quantities the
package's analysis model estimates, so that recovery tests mean something.

The bundled example trial (``data/example_trial.csv``) is
``simulate(seed=2015, moderation=EXAMPLE_MODERATION)``. Regenerate it with::

    python -m pylme_alliance.alliance.simulate            # writes the package CSV
    python -m pylme_alliance.alliance.simulate out.csv    # or anywhere else

Data-generating process
-----------------------
For patient ``i`` (therapist ``j``) at session ``t = 1, 2, ...``:

Alliance (latent, then observed)::

    A*_it = mu_A + a_i + trend * (t - 1) + d_it,   a_i ~ N(0, alliance_between_sd)
                                                    d_it ~ N(0, alliance_within_sd) iid
    A_it  = round(clip(A*_it, 1, 7), 2)             (only attended sessions are observed)

Attendance: a planned treatment length (log-normal), sessions after the first
missed completely at random with probability ``missed``, and early dropout with
a per-session hazard that rises after a poor alliance (logistic in ``A*_it``),
calibrated so that a share ``dropout`` of patients drops out.

Outcome (OQ-45 total)::

    Y_it = mu_Y + g(t) + v_j + p_i + between_effect * B_i
           + b1_i * W_i,t-1 + b2 * W_i,t-2 + b3 * W_i,t-3 + e_it
    g(t)  = -improvement * (1 - exp(-(t - 1) / improvement_scale))
    e_it  = AR(1) over the session NUMBER with coefficient ``ar`` (missed
            sessions still advance the process)
    b1_i  = within_effect[0] + sum_m coef_m * (m_i - c_m) + u1_i,  u1_i ~ N(0, slope_sd)
    Y_it is then rounded and clipped to 0-180.

``W_it`` and ``B_i`` are the package's *person-mean decomposition of the
observed alliance*: ``B_i`` is the mean of the patient's observed alliance
minus the grand mean of those person means, and ``W_it = A_it - mean_i(A)``
(a term whose session was missed contributes nothing). Letting the outcome
depend on the decomposed, observed alliance (rather than on the latent
``d_it``) is what makes the analysis model's coefficients the true values:
clipping, rounding and the common upward trend then cannot attenuate or leak
into them. The assumptions this encodes, which the analysis inherits:

* the patient's own mean is the reference point ("better than usual for this
  patient"); the common linear trend ``trend * t`` enters ``W`` but, being
  linear in the session number, is absorbed by the ``session`` covariate;
* person-specific alliance trends are absent, so linear person detrending
  (``within="detrend"``) estimates the same effects, with a little more
  noise;
* the within deviations ``d_it`` are independent over sessions and of every
  other component, so adding the lagged outcome, session or the between term
  to the model does not bias the within coefficient.

One bias is inherent to person-mean centring and is not removed: the person
mean contains the other sessions' deviations, so ``W_it`` is slightly
negatively correlated (about ``-1/(T_i - 1)``) with the patient's other
``W`` values, and the effects at neighbouring lags leak into each lead by order
``b_(k +- 1) / T``. ``truth["within_expected"]`` gives, per lead, the
coefficient a within-patient regression of the noise-free alliance part of
the lead outcome on ``W`` yields in the simulated sample (it includes that
leak; at the defaults about -1.95, -0.9 and +0.05 for leads 1-3);
``truth["within"]`` is the structural effect. A second, smaller shift comes
from the lagged-outcome control in a random-intercept model: its slope absorbs
part of the patient level (dynamic-panel bias), and because ``Y_t`` carries the
earlier ``W`` values, which correlate with ``W_t`` through the person mean, the
lead-1 within coefficient moves by about -0.1 to -0.3 at the defaults
(measured with lme4 on 5000-patient samples). Both are well inside the
standard error at 547 patients (about 0.55).

Moderators ``m`` are the patient's intake severity (``severity``), treatment
length (``n_sessions``), the therapist's integrative orientation
(``integrative``) and the feedback arm (dummies per non-reference arm). Their
centring values ``c_m`` are the means weighted by each patient's number of
lead-1 rows, so that the average within effect that the model WITHOUT
moderators estimates (a row-weighted average of the ``b1_i``) is
``within_effect[0]``.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import PylmeError

__all__ = [
    "ARMS",
    "EXAMPLE_MODERATION",
    "EXAMPLE_SEED",
    "Simulation",
    "load_example",
    "simulate",
    "write_example",
]

#: Feedback arms of the trial, the reference ("none") first.
ARMS: tuple[str, ...] = ("none", "symptoms", "alliance", "both", "oq_report")

#: Seed of the bundled example trial.
EXAMPLE_SEED: int = 2015

#: Moderation built into the bundled example trial, in the directions METHODS.md
#: reports: a more negative (stronger) within effect for more severe patients,
#: longer treatments and more integrative therapists; alliance feedback
#: strengthens it a little, the OQ report weakens it a little.
EXAMPLE_MODERATION: dict[str, Any] = {
    "severity": -0.06,          # per OQ point of intake severity (SD ~23)
    "n_sessions": -0.20,        # per attended session (SD ~5)
    "integrative": -0.8,        # per point of integrative orientation (SD ~1.3)
    "arm": {"symptoms": 0.0, "alliance": -0.6, "both": -0.6, "oq_report": 0.3},
}

_MODERATORS = ("severity", "n_sessions", "integrative", "arm")
_COLUMNS = [
    "patient", "therapist", "arm", "session", "day", "alliance", "outcome",
    "severity", "n_sessions", "integrative",
]


@dataclass(frozen=True)
class Simulation:
    """A simulated trial and the truth behind it.

    Attributes
    ----------
    data : pandas.DataFrame
        One row per attended session, columns ``patient`` (str), ``therapist``
        (str), ``arm`` (categorical, "none" first), ``session`` (int),
        ``day`` (int), ``alliance`` (float, 1-7), ``outcome`` (float, 0-180,
        whole points), ``severity`` (float, intake outcome), ``n_sessions``
        (int), ``integrative`` (int, 1-7).
    truth : dict
        What the analysis model estimates; see :func:`simulate`.
    params : dict
        The arguments used (after defaults).
    """

    data: pd.DataFrame
    truth: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------
# argument checking


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise PylmeError(f"simulate(): {name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"between {low} and {high}"
        raise PylmeError(f"simulate(): {name} must be {bounds}, got {value}")
    return int(value)


def _check_float(name: str, value: Any, low: float | None = None, high: float | None = None,
                 *, open_low: bool = False, open_high: bool = False) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise PylmeError(f"simulate(): {name} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise PylmeError(f"simulate(): {name} must be finite, got {value!r}")
    if low is not None and (x < low or (open_low and x == low)):
        raise PylmeError(f"simulate(): {name} must be {'>' if open_low else '>='} {low}, got {x}")
    if high is not None and (x > high or (open_high and x == high)):
        raise PylmeError(f"simulate(): {name} must be {'<' if open_high else '<='} {high}, got {x}")
    return x


def _check_moderation(moderation: Mapping[str, Any] | None, arms: Sequence[str]) -> dict[str, Any]:
    if moderation is None:
        return {}
    if not isinstance(moderation, Mapping):
        raise PylmeError("simulate(): moderation must be a dict like {'severity': -0.05, 'arm': {...}}")
    out: dict[str, Any] = {}
    for key, coef in moderation.items():
        if key not in _MODERATORS:
            raise PylmeError(f"simulate(): unknown moderator {key!r}; choose from {list(_MODERATORS)}")
        if key == "arm":
            if not isinstance(coef, Mapping):
                raise PylmeError("simulate(): moderation['arm'] must be a dict arm -> coefficient")
            arm_coef: dict[str, float] = {}
            for level, c in coef.items():
                if level == arms[0]:
                    raise PylmeError(
                        f"simulate(): moderation['arm'] gives the reference arm {level!r}; "
                        "coefficients are relative to it, leave it out")
                if level not in arms:
                    raise PylmeError(f"simulate(): moderation['arm'] has unknown arm {level!r}; arms are {list(arms)}")
                arm_coef[str(level)] = _check_float(f"moderation['arm'][{level!r}]", c)
            out["arm"] = arm_coef
        else:
            out[key] = _check_float(f"moderation[{key!r}]", coef)
    return out


# ----------------------------------------------------------------------------
# building blocks (all vectorised over patients)


def _caseloads(rng: np.random.Generator, n_patients: int, n_therapists: int,
               low: int = 5, high: int = 25) -> np.ndarray:
    """Skewed caseloads summing to n_patients, within [low, high] when feasible."""
    if n_patients < low * n_therapists or n_patients > high * n_therapists:
        low, high = 1, n_patients  # bounds infeasible: keep only the skew
        low = min(low, n_patients // n_therapists)
    # Gamma(1) weights give the right-skew of real caseloads (few busy therapists).
    weights = rng.gamma(1.0, size=n_therapists)
    counts = low + rng.multinomial(n_patients - low * n_therapists, weights / weights.sum())
    # move any excess over the cap to therapists with room, deterministically given rng
    for _ in range(100):
        excess = np.clip(counts - high, 0, None)
        if not excess.any():
            break
        counts -= excess
        room = np.clip(high - counts, 0, None).astype(float)
        counts += rng.multinomial(int(excess.sum()), room / room.sum())
    return counts


def _person_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    n = mask.sum(axis=1)
    return np.where(mask, values, 0.0).sum(axis=1) / np.maximum(n, 1)


def _lagged(x: np.ndarray, k: int) -> np.ndarray:
    """x shifted k sessions later along axis 1 (zeros before session k+1)."""
    out = np.zeros_like(x)
    out[:, k:] = x[:, :-k]
    return out


def _expected_within(W: np.ndarray, obs: np.ndarray, b1_i: np.ndarray,
                     b_rest: Sequence[float], leads: int) -> dict[int, float]:
    """Within-patient (FE) regression of the noise-free alliance part of Y_{t+k} on W_t.

    This is what person-mean centring recovers in this sample, before outcome
    noise: it differs from the structural effect only by the leak of the
    neighbouring lags through the person mean (order b / T).
    """
    n, T = W.shape
    coefs = np.zeros((n, T, leads + 1))   # b_{k,i} for lag k
    coefs[:, :, 1] = b1_i[:, None]
    for k, b in enumerate(b_rest, start=2):
        if k <= leads:
            coefs[:, :, k] = b
    Wm = np.where(obs, W, 0.0)
    # alliance part of the outcome at every session
    part = np.zeros_like(W)
    for k in range(1, min(leads, T - 1) + 1):
        part += coefs[:, :, k] * _lagged(Wm, k)
    out: dict[int, float] = {}
    for k in range(1, leads + 1):
        if k >= T:
            out[k] = float("nan")
            continue
        rows = np.zeros_like(obs)
        rows[:, :-k] = obs[:, :-k] & obs[:, k:]
        y = np.zeros_like(W)
        y[:, :-k] = part[:, k:]
        nr = rows.sum(axis=1)
        x_c = np.where(rows, W - _person_mean(W, rows)[:, None], 0.0)
        y_c = np.where(rows, y - _person_mean(y, rows)[:, None], 0.0)
        keep = nr >= 2
        den = (x_c[keep] ** 2).sum()
        out[k] = float((x_c[keep] * y_c[keep]).sum() / den) if den > 0 else float("nan")
    return out


# ----------------------------------------------------------------------------
# the simulator


def simulate(
    *,
    n_patients: int = 547,
    n_therapists: int = 40,
    n_arms: int = 5,
    sessions_median: float = 7,
    max_sessions: int = 30,
    within_effect: Sequence[float] = (-2.0, -1.0, 0.0),
    between_effect: float = -6.0,
    slope_sd: float = 1.0,
    ar: float = 0.4,
    missed: float = 0.10,
    dropout: float = 0.3,
    moderation: Mapping[str, Any] | None = None,
    seed: int | np.random.Generator | None = None,
    alliance_mean: float = 5.45,
    alliance_between_sd: float = 0.8,
    alliance_within_sd: float = 0.4,
    alliance_trend: float = 0.03,
    intake_mean: float = 80.0,
    outcome_sd: float = 22.0,
    therapist_share: float = 0.05,
    patient_share: float = 0.70,
    improvement: float = 16.0,
    improvement_scale: float = 7.0,
    dropout_alliance: float = -0.8,
) -> Simulation:
    """Simulate an alliance-outcome trial with known truth.

    Parameters
    ----------
    n_patients, n_therapists : int
        Sample sizes. Caseloads are right-skewed, 5-25 patients per therapist
        when ``n_patients / n_therapists`` allows it.
    n_arms : int
        Number of feedback arms (1-5), taken from :data:`ARMS` in order;
        patients are randomised in balanced blocks.
    sessions_median : float
        Target median number of attended sessions per patient.
    max_sessions : int
        Largest session number.
    within_effect : sequence of float
        ``within_effect[k-1]`` is the effect of a one-point within-patient
        alliance deviation at session t on the outcome at session t+k (OQ points
        per alliance point). Up to ``max_sessions - 1`` lags.
    between_effect : float
        Effect of a one-point higher person-mean alliance on the outcome level.
    slope_sd : float
        SD over patients of the lag-1 within effect (random slope).
    ar : float
        AR(1) coefficient of the outcome residual over session numbers, in (-1, 1).
    missed : float
        Probability that a session after the first is missed, in [0, 1).
    dropout : float
        Target share of patients who end treatment early, in [0, 1).
    moderation : dict, optional
        Moderators of the lag-1 within effect: keys ``"severity"``,
        ``"n_sessions"``, ``"integrative"`` (coefficient per unit of the
        centred moderator) and ``"arm"`` (dict arm -> shift relative to
        ``"none"``). See :data:`EXAMPLE_MODERATION`.
    seed : int or numpy.random.Generator, optional
        Seed for ``numpy.random.default_rng``.
    alliance_mean, alliance_between_sd, alliance_within_sd, alliance_trend : float
        Latent alliance: mean at session 1, between-patient SD, within-patient
        SD, common trend per session (1-7 item-mean scale).
    intake_mean, outcome_sd : float
        Outcome mean at intake and its total SD (before the improvement).
    therapist_share, patient_share : float
        Shares of the time-adjusted outcome variance due to therapists and
        patients; the rest is the session-level residual.
    improvement, improvement_scale : float
        Mean improvement curve ``g(t) = -improvement * (1 - exp(-(t-1)/scale))``
        (about 2 points a session early, flattening).
    dropout_alliance : float
        Log-odds change of the per-session dropout hazard per latent-SD of
        alliance (negative: a poor alliance makes dropping out likelier).

    Returns
    -------
    Simulation
        ``data`` (see :class:`Simulation`) and ``truth``, a dict with:

        ``within`` : dict lead -> float
            The structural within effect ``within_effect[k-1]`` for leads
            1..len(within_effect): the alliance_within coefficient of
            ``outcome_lead_k ~ outcome + session + alliance_within +
            alliance_between + (1 + alliance_within | patient) + (1 | therapist)``
            (person-mean decomposition, outcome control raw). With moderation
            it is the (row-weighted) average effect the model without
            moderators estimates.
        ``within_expected`` : dict lead -> float
            The within coefficient of this sample before outcome noise: the
            within-patient regression of the alliance part of the lead
            outcome on ``W`` (rows with both sessions attended, no other
            controls), including the O(1/T) leak of neighbouring lags through
            the person mean (see the module docstring).
        ``between`` : float
            The alliance_between coefficient of the model WITHOUT the outcome
            control, ``outcome_lead1 ~ session + alliance_within +
            alliance_between + (1 + alliance_within | patient) + (1 | therapist)``.
            With the outcome control the between coefficient is the effect on
            the change from the current outcome, which also carries the
            patient's level through the lagged outcome (dynamic-panel bias,
            METHODS.md); it is not ``between_effect`` and is not given.
        ``slope_sd`` : float
            SD of the patients' lag-1 within effects beyond the moderators
            (the random slope SD of the moderated model; the unmoderated
            model's is ``slope_sd_total``).
        ``slope_sd_total`` : float
            SD over patients of the lag-1 within effect including moderation.
        ``ar`` : float
            Residual AR(1) coefficient over session numbers.
        ``therapist_share``, ``patient_share``, ``residual_share`` : float
            Shares of the time-adjusted outcome variance (therapist, patient
            incl. the between-alliance part, session residual).
        ``sd`` : dict
            Component SDs: ``therapist``, ``patient`` (intercept beyond the
            between-alliance term), ``residual`` (stationary SD of e).
        ``moderation`` : dict
            The coefficients used (empty when none); ``arm`` is a dict.
        ``moderator_centres`` : dict
            The row-weighted centring values ``c_m`` (``arm``: weighted shares).
        ``within_at_patient_means`` : float
            The lag-1 effect with moderators at their unweighted patient
            means (the main effect of a moderated model that grand-mean
            centres patient-level moderators).
        ``within_by_arm`` : dict arm -> float
            The lag-1 effect per arm, other moderators at their centres.
        ``within_std`` : float
            ``within[1] * SD(alliance_within) / SD(outcome - person mean)``.
        ``between_r`` : float
            Correlation over patients of mean alliance and mean outcome.
        ``dropout_rate``, ``missed_rate`` : float
            Realised shares of early-ending patients and of missed sessions.
        ``n_rows`` : int
            Number of attended sessions.
    """
    n_patients = _check_int("n_patients", n_patients, 1)
    n_therapists = _check_int("n_therapists", n_therapists, 1)
    if n_therapists > n_patients:
        raise PylmeError(f"simulate(): n_therapists ({n_therapists}) cannot exceed n_patients ({n_patients})")
    n_arms = _check_int("n_arms", n_arms, 1, len(ARMS))
    max_sessions = _check_int("max_sessions", max_sessions, 1)
    # a median above max_sessions is allowed: planned lengths are capped at max_sessions
    sessions_median = _check_float("sessions_median", sessions_median, 1)
    try:
        if isinstance(within_effect, (str, bytes)):
            raise TypeError
        b = [float(x) for x in within_effect]
    except (TypeError, ValueError):
        raise PylmeError("simulate(): within_effect must be a sequence of numbers, e.g. (-2, -1, 0)") from None
    if not b or not all(math.isfinite(x) for x in b):
        raise PylmeError("simulate(): within_effect must be a non-empty sequence of finite numbers")
    if len(b) >= max(max_sessions, 2):
        raise PylmeError(f"simulate(): within_effect has {len(b)} lags; at most max_sessions - 1 = {max_sessions - 1}")
    between_effect = _check_float("between_effect", between_effect)
    slope_sd = _check_float("slope_sd", slope_sd, 0)
    ar = _check_float("ar", ar, -1, 1, open_low=True, open_high=True)
    missed = _check_float("missed", missed, 0, 1, open_high=True)
    dropout = _check_float("dropout", dropout, 0, 1, open_high=True)
    alliance_mean = _check_float("alliance_mean", alliance_mean, 1, 7)
    alliance_between_sd = _check_float("alliance_between_sd", alliance_between_sd, 0)
    alliance_within_sd = _check_float("alliance_within_sd", alliance_within_sd, 0)
    alliance_trend = _check_float("alliance_trend", alliance_trend)
    intake_mean = _check_float("intake_mean", intake_mean, 0, 180)
    outcome_sd = _check_float("outcome_sd", outcome_sd, 0, open_low=True)
    therapist_share = _check_float("therapist_share", therapist_share, 0, 1)
    patient_share = _check_float("patient_share", patient_share, 0, 1)
    if therapist_share + patient_share >= 1:
        raise PylmeError("simulate(): therapist_share + patient_share must be < 1 (the rest is residual)")
    improvement = _check_float("improvement", improvement)
    improvement_scale = _check_float("improvement_scale", improvement_scale, 0, open_low=True)
    dropout_alliance = _check_float("dropout_alliance", dropout_alliance)
    arms = ARMS[:n_arms]
    mods = _check_moderation(moderation, arms)
    params = dict(
        n_patients=n_patients, n_therapists=n_therapists, n_arms=n_arms,
        sessions_median=sessions_median, max_sessions=max_sessions, within_effect=tuple(b),
        between_effect=between_effect, slope_sd=slope_sd, ar=ar, missed=missed, dropout=dropout,
        moderation=mods or None, seed=seed if not isinstance(seed, np.random.Generator) else "Generator",
        alliance_mean=alliance_mean, alliance_between_sd=alliance_between_sd,
        alliance_within_sd=alliance_within_sd, alliance_trend=alliance_trend,
        intake_mean=intake_mean, outcome_sd=outcome_sd, therapist_share=therapist_share,
        patient_share=patient_share, improvement=improvement, improvement_scale=improvement_scale,
        dropout_alliance=dropout_alliance,
    )

    rng = np.random.default_rng(seed)
    n, T = n_patients, max_sessions
    t = np.arange(1, T + 1, dtype=float)

    # --- structure: therapists, arms -------------------------------------------------
    caseload = _caseloads(rng, n, n_therapists)
    therapist_of = np.repeat(np.arange(n_therapists), caseload)
    # integrative orientation: therapist self-rating, integers 1-7
    integrative_t = np.clip(np.rint(rng.normal(4.2, 1.3, n_therapists)), 1, 7).astype(int)
    arm_of = rng.permutation(np.resize(np.arange(n_arms), n))  # balanced randomisation

    # --- latent alliance for every potential session ---------------------------------
    a_i = rng.normal(0.0, alliance_between_sd, n)
    d = rng.normal(0.0, alliance_within_sd, (n, T))
    latent = alliance_mean + a_i[:, None] + alliance_trend * (t - 1) + d
    alliance_obs = np.round(np.clip(latent, 1.0, 7.0), 2)

    # --- attendance: planned length, missed sessions, alliance-driven dropout ---------
    # Planned length is inflated so that, after misses and dropout, the median
    # number of ATTENDED sessions is near sessions_median (factor found by simulation).
    planned_median = sessions_median * (1.0 + 0.6 * dropout) / (1.0 - missed)
    planned = np.clip(np.rint(np.exp(rng.normal(math.log(planned_median), 0.55, n))), 1, T).astype(int)
    in_plan = t[None, :] <= planned[:, None]
    attend = in_plan & (rng.random((n, T)) >= missed)
    attend[:, 0] = True  # the intake session is always attended
    # per-session dropout hazard after session t (not after the last planned one)
    z = (latent - alliance_mean) / max(math.hypot(alliance_between_sd, alliance_within_sd), 1e-9)
    can_drop = attend & (t[None, :] < planned[:, None])
    offset = _calibrate_dropout(z, can_drop, dropout, dropout_alliance)
    hazard = 1.0 / (1.0 + np.exp(-(offset + dropout_alliance * z)))
    u_drop = rng.random((n, T))
    drop_at = can_drop & (u_drop < hazard)
    first_drop = np.where(drop_at.any(axis=1), drop_at.argmax(axis=1) + 1, T + 1)
    obs = attend & (t[None, :] <= first_drop[:, None])
    dropped = first_drop <= T
    n_sess = obs.sum(axis=1)
    last = T - np.argmax(obs[:, ::-1], axis=1)  # last attended session number

    # calendar days: roughly weekly, jittered, missed sessions still take their week
    gaps = np.clip(np.rint(rng.normal(7.0, 1.5, (n, T))), 3, None)
    gaps[:, 0] = 0
    day = np.cumsum(gaps, axis=1).astype(int)

    # --- the package's person-mean decomposition of the OBSERVED alliance ------------
    pmean = _person_mean(alliance_obs, obs)
    B = pmean - pmean.mean()
    W = np.where(obs, alliance_obs - pmean[:, None], 0.0)

    # --- outcome components ----------------------------------------------------------
    total_var = outcome_sd**2
    var_t = therapist_share * total_var
    var_between = between_effect**2 * float(B.var())
    var_p = max(patient_share * total_var - var_between, 0.0)
    var_e = (1.0 - therapist_share - patient_share) * total_var
    v_j = rng.normal(0.0, math.sqrt(var_t), n_therapists)
    p_i = rng.normal(0.0, math.sqrt(var_p), n)
    eps = rng.normal(0.0, 1.0, (n, T))
    e = np.empty((n, T))
    e[:, 0] = eps[:, 0] * math.sqrt(var_e)
    innov_sd = math.sqrt(var_e * (1.0 - ar**2))
    for s in range(1, T):  # AR(1) over session numbers: T steps, vectorised over patients
        e[:, s] = ar * e[:, s - 1] + innov_sd * eps[:, s]
    g = -improvement * (1.0 - np.exp(-(t - 1.0) / improvement_scale))
    base = intake_mean + g[None, :] + v_j[therapist_of][:, None] + p_i[:, None] + between_effect * B[:, None] + e

    severity = np.clip(np.rint(base[:, 0]), 0, 180)  # intake: no earlier alliance acts on it

    # --- patient-specific lag-1 effect and its moderators ----------------------------
    lead1_rows = (obs[:, :-1] & obs[:, 1:]).sum(axis=1) if T > 1 else np.zeros(n, int)
    w_row = lead1_rows.astype(float)
    if w_row.sum() <= 0:
        w_row = np.ones(n)

    def wmean(x: np.ndarray) -> float:
        return float(np.average(x, weights=w_row))

    mod_values: dict[str, np.ndarray] = {
        "severity": severity.astype(float),
        "n_sessions": n_sess.astype(float),
        "integrative": integrative_t[therapist_of].astype(float),
    }
    shift = np.zeros(n)
    centres: dict[str, Any] = {}
    at_pmeans = b[0]
    for key, coef in mods.items():
        if key == "arm":
            centres["arm"] = {}
            for level, c in coef.items():
                dummy = (arm_of == arms.index(level)).astype(float)
                centres["arm"][level] = wmean(dummy)
                shift += c * (dummy - centres["arm"][level])
                at_pmeans += c * (dummy.mean() - centres["arm"][level])
        else:
            centres[key] = wmean(mod_values[key])
            shift += coef * (mod_values[key] - centres[key])
            at_pmeans += coef * (mod_values[key].mean() - centres[key])
    b1_i = b[0] + shift + rng.normal(0.0, slope_sd, n)

    lagpart = b1_i[:, None] * _lagged(W, 1) if T > 1 else np.zeros((n, T))
    for k, bk in enumerate(b[1:], start=2):
        lagpart += bk * _lagged(W, k)
    outcome = np.clip(np.rint(base + lagpart), 0, 180)
    outcome[:, 0] = severity

    # --- assemble rows of attended sessions (patient-major, session order) ----------
    pi, si = np.nonzero(obs)
    width = max(4, len(str(n)))
    twidth = max(2, len(str(n_therapists)))
    patient_ids = np.array([f"P{k + 1:0{width}d}" for k in range(n)])
    therapist_ids = np.array([f"T{k + 1:0{twidth}d}" for k in range(n_therapists)])
    data = pd.DataFrame({
        "patient": patient_ids[pi],
        "therapist": therapist_ids[therapist_of[pi]],
        "arm": pd.Categorical.from_codes(arm_of[pi], categories=list(arms)),
        "session": (si + 1).astype(np.int64),
        "day": day[pi, si].astype(np.int64),
        "alliance": alliance_obs[pi, si],
        "outcome": outcome[pi, si].astype(float),
        "severity": severity[pi].astype(float),
        "n_sessions": n_sess[pi].astype(np.int64),
        "integrative": integrative_t[therapist_of[pi]].astype(np.int64),
    })

    # --- truth -----------------------------------------------------------------------
    arm_eff = {}
    for idx, level in enumerate(arms):
        val = b[0]
        for lv, c in mods.get("arm", {}).items():
            val += c * (float(idx == arms.index(lv)) - centres["arm"][lv])
        arm_eff[level] = val
    y_obs = np.where(obs, outcome, np.nan)
    y_c = y_obs - np.nanmean(y_obs, axis=1, keepdims=True)
    sd_w = float(np.sqrt(np.nanmean(np.where(obs, W, np.nan) ** 2)))
    sd_yw = float(np.sqrt(np.nanmean(y_c**2)))
    ybar = np.nanmean(y_obs, axis=1)
    truth: dict[str, Any] = {
        "within": {k: float(v) for k, v in enumerate(b, start=1)},
        "within_expected": _expected_within(W, obs, b1_i, b[1:], len(b)),
        "between": float(between_effect),
        "slope_sd": float(slope_sd),
        "slope_sd_total": float(np.std(b1_i)) if n > 1 else float(slope_sd),
        "ar": float(ar),
        "therapist_share": float(var_t / total_var),
        "patient_share": float((var_p + var_between) / total_var),
        "residual_share": float(var_e / total_var),
        "sd": {"therapist": math.sqrt(var_t), "patient": math.sqrt(var_p), "residual": math.sqrt(var_e)},
        "moderation": {k: (dict(v) if isinstance(v, dict) else v) for k, v in mods.items()},
        "moderator_centres": centres,
        "within_at_patient_means": float(at_pmeans),
        "within_by_arm": arm_eff,
        "within_std": float(b[0] * sd_w / sd_yw) if sd_yw > 0 else float("nan"),
        "between_r": float(np.corrcoef(pmean, ybar)[0, 1]) if n > 2 else float("nan"),
        "dropout_rate": float(dropped.mean()),
        "missed_rate": float(1.0 - obs.sum() / np.minimum(last, T).sum()),
        "n_rows": int(len(data)),
    }
    return Simulation(data=data, truth=truth, params=params)


def _calibrate_dropout(z: np.ndarray, can_drop: np.ndarray, target: float, slope: float) -> float:
    """Hazard intercept giving an expected dropout share of ``target``.

    Bisection on the expected share ``mean(1 - prod(1 - h))`` over each
    patient's dropout opportunities; deterministic (uses no random numbers).
    """
    if target <= 0 or not can_drop.any():
        return -np.inf
    lo, hi = -20.0, 20.0
    zz = np.where(can_drop, z, 0.0)
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        h = np.where(can_drop, 1.0 / (1.0 + np.exp(-(mid + slope * zz))), 0.0)
        share = float(np.mean(1.0 - np.exp(np.log1p(-np.minimum(h, 1 - 1e-12)).sum(axis=1))))
        if share < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


# ----------------------------------------------------------------------------
# the bundled example


def _example_path() -> Any:
    return resources.files("pylme_alliance") / "data" / "example_trial.csv"


def _example_simulation() -> Simulation:
    return simulate(seed=EXAMPLE_SEED, moderation=EXAMPLE_MODERATION)


def write_example(path: str | Path | None = None) -> Path:
    """Regenerate the example trial CSV.

    Parameters
    ----------
    path : str or Path, optional
        Where to write; by default the package's ``data/example_trial.csv``
        (needs a writable source checkout).

    Returns
    -------
    Path
        The file written.
    """
    target = Path(str(_example_path())) if path is None else Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = _example_simulation().data
    # fixed float format and "\n" line ends keep the file byte-stable across platforms
    data.to_csv(target, index=False, float_format="%.10g", lineterminator="\n")
    return target


def _coerce_example(df: pd.DataFrame) -> pd.DataFrame:
    df["arm"] = pd.Categorical(df["arm"], categories=list(ARMS))
    return df[_COLUMNS]


def _read_trial_csv(source: Any) -> pd.DataFrame:
    dtypes = {
        "patient": str, "therapist": str, "session": "int64", "day": "int64",
        "alliance": "float64", "outcome": "float64", "severity": "float64",
        "n_sessions": "int64", "integrative": "int64",
    }
    return _coerce_example(pd.read_csv(source, dtype=dtypes))


def load_example() -> pd.DataFrame:
    """The bundled example trial (547 patients, 40 therapists, 5 arms).

    It is ``simulate(seed=2015, moderation=EXAMPLE_MODERATION).data``; the truth
    behind it is ``simulate(seed=2015, moderation=EXAMPLE_MODERATION).truth``.

    Returns
    -------
    pandas.DataFrame
        Columns ``patient``, ``therapist`` (str), ``arm`` (categorical with
        "none" first), ``session``, ``day`` (int64), ``alliance``,
        ``outcome``, ``severity`` (float64), ``n_sessions``, ``integrative``
        (int64). One row per attended session.
    """
    path = _example_path()
    if not path.is_file():
        raise PylmeError(
            "the example trial data/example_trial.csv is missing from the installed package; "
            "regenerate it with `python -m pylme_alliance.alliance.simulate`")
    with path.open("r", encoding="utf-8") as fh:
        return _read_trial_csv(fh)


def _main(argv: Sequence[str]) -> int:
    out = write_example(argv[0] if argv else None)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
