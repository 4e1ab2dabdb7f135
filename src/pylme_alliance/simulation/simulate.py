"""Simulate alliance-outcome trials with known truth, and the bundled example trial.

The simulator produces session-level data shaped like the trial in METHODS.md
(547 outpatients, 40 therapists, 5 feedback arms, weekly sessions with gaps and
early dropout) and a ``truth`` dict naming each estimand the package reports,
so that recovery studies (``benchmarks/recovery.py``) mean something. The
engine is in ``_generate.py``; the bundled example trial, made by this simulator, in
``example.py``.

Data-generating process
-----------------------
For patient ``i`` (therapist ``j``) at session ``t = 1, 2, ...``:

Alliance (latent, then observed)::

    A*_it = mu_A + a_i + trend * (t - 1) + d_it + c_it,   a_i ~ N(0, alliance_between_sd)
    d_it  = alliance_ar * d_i,t-1 + innovation            (stationary SD alliance_within_sd)
    c_it  = alliance_ar * c_i,t-1 + feedback * (Y_i,t-1 - E_i,t-1)    (dynamic process only)
    A_it  = round(clip(A*_it, 1, 7), 2)             (only attended sessions are observed)

``E_it`` is the patient's expected outcome trajectory (everything below except
the alliance lag terms and ``e``), so the feedback is the session's symptom
deviation -- a worse-than-usual week lowers next week's alliance -- and carries
no patient level into the alliance (the patient level of the alliance stays
``a_i``). A missed session gives no feedback.

Attendance: a planned treatment length (log-normal; all ``sessions`` with a
fixed design), sessions after the first missed completely at random with
probability ``missed``, and early dropout with a per-session hazard that rises
after a poor alliance (logistic in the alliance without its feedback part,
``A*_it - c_it``), calibrated so that a share ``dropout`` of patients drops out.

Outcome (OQ-45 total)::

    Y_it = mu_Y + g(t) + v_j + p_i + between_effect * B_i
           + b1_i * W_i,t-1 + b2 * W_i,t-2 + b3 * W_i,t-3 + e_it
    g(t)  = -improvement * (1 - exp(-(t - 1) / improvement_scale))
    e_it  = AR(1) over the session NUMBER with coefficient ``ar`` (missed
            sessions still advance the process)
    b1_i  = within_effect[0] + sum_m coef_m * (m_i - c_m) + u1_i,  u1_i ~ N(0, slope_sd)
    Y_it is then rounded and clipped to 0-180.

What ``B`` and ``W`` are depends on ``process``:

* ``"static"`` (the default without feedback, and the bundled example): the
  package's *person-mean decomposition of the observed alliance*: ``B_i`` is
  the mean of the patient's observed alliance minus the grand mean of those
  person means, and ``W_it = A_it - mean_i(A)`` (a missed session contributes
  nothing). The analysis model's coefficients are then the true values:
  clipping, rounding and the common trend cannot attenuate or leak into them.
  But the outcome at t then depends on the person mean, i.e. on later
  alliance, so no outcome can feed back into the alliance.
* ``"dynamic"`` (chosen automatically when ``feedback != 0``): generated
  session by session, ``B_i = a_i`` (the latent level) and
  ``W_it = A_it - (mu_A + a_i + trend * (t - 1))``, the observed alliance's
  deviation from the patient's latent level at t. Every term is known at t, so
  the outcome at t can shape the alliance at t+1. The person-mean deviation an
  analysis uses differs from this ``W`` by a patient constant (absorbed by the
  intercept) and by the sampling error of the person mean, which is where the
  O(1/T) bias of within estimators under feedback comes from.

Realistic values (METHODS.md, best practice 4 and "Realistic magnitudes")
---------------------------------------------------------------------------
* ``feedback``: -0.005 (modest) to -0.015 (strong) alliance points per outcome
  point on the 0-180 scale. With the default residual SD (11 points) that is a
  within-patient standardised path of about -.14 to -.4 of an alliance SD per
  outcome SD, the range reported for symptom->alliance paths (Falkenström et
  al. 2017; Flückiger et al. 2020). Default 0 (no feedback), so the example
  trial is unchanged.
* ``alliance_ar``: session-to-session autocorrelation of the within-patient
  alliance deviations, about .2-.4 in session-level alliance data; default 0
  (independent deviations) for backward compatibility. With ``alliance_ar``
  and a lag-2 effect, the lead-1 model that controls only Y_t estimates a
  total association (``truth["within_total"]``), not the direct effect.
* ``slope_sd = 0`` gives a design with no random slope (share 0 or 1).
* ``sessions=8`` or ``sessions=20`` (with ``missed=0, dropout=0``) gives the
  balanced T = 8 / T = 20 designs of the recovery study.

Known small biases of the estimators (not of the truth)
-------------------------------------------------------
Person-mean centring leaks neighbouring lags into each lead by order b/T
(``truth["within_expected"]`` is the sample's noise-free within regression,
about -1.95 for the true -2 at the defaults). Under feedback the within
(fixed-effects) estimate has an O(1/T) bias; the raw lagged outcome beside a
patient random intercept has a much larger one (benchmarks/README.md).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import PylmeError
from ._generate import generate
from ._simchecks import ARMS, PROCESSES, check_effects, check_float, check_int, check_moderation

__all__ = ["ARMS", "Simulation", "simulate"]


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
        The estimands; see :func:`simulate`.
    params : dict
        The arguments used (after defaults).
    """

    data: pd.DataFrame
    truth: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)


def simulate(
    *,
    n_patients: int = 547,
    n_therapists: int = 40,
    n_arms: int = 5,
    sessions_median: float = 7,
    max_sessions: int = 30,
    sessions: int | None = None,
    within_effect: Sequence[float] = (-2.0, -1.0, 0.0),
    between_effect: float = -6.0,
    slope_sd: float = 1.0,
    ar: float = 0.4,
    feedback: float = 0.0,
    alliance_ar: float = 0.0,
    process: str = "auto",
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
    improvement_sd: float = 0.0,
    alliance_trend_sd: float = 0.0,
    dropout_alliance: float = -0.8,
    early_sessions: int = 3,
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
    sessions : int, optional
        Fixed design: every patient is offered exactly ``sessions`` sessions
        (``max_sessions`` is set to it and ``sessions_median`` is ignored);
        with ``missed=0, dropout=0`` every patient has T = ``sessions`` rows.
    within_effect : sequence of float
        ``within_effect[k-1]`` is the direct effect of a one-point within-patient
        alliance deviation at session t on the outcome at session t+k (OQ points
        per alliance point). Up to ``max_sessions - 1`` lags.
    between_effect : float
        Effect of a one-point higher patient alliance level on the outcome level
        (the person mean of the observed alliance in the static process, the
        latent level ``a_i`` in the dynamic one).
    slope_sd : float
        SD over patients of the lag-1 within effect (random slope); 0 for a
        design without a random slope.
    ar : float
        AR(1) coefficient of the outcome residual over session numbers, in (-1, 1).
    feedback : float
        Symptom->alliance feedback: alliance points at t+1 per outcome point of
        the session-t symptom deviation. Realistic: -0.005 (modest) to -0.015
        (strong); default 0. Non-zero values need the dynamic process.
    alliance_ar : float
        AR(1) coefficient of the within-patient alliance deviations over
        session numbers, in (-1, 1). Realistic about .2-.4; default 0.
    process : {"auto", "static", "dynamic"}
        How the outcome sees the alliance (module docstring). "auto" is
        "dynamic" when ``feedback != 0`` and "static" otherwise.
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
    improvement_sd : float
        SD over patients of their own total improvement (points): patients who improve
        at different rates, ``g_i(t) = -(improvement + r_i) * (1 - exp(-(t-1)/scale))``,
        ``r_i ~ N(0, improvement_sd)``. Default 0 (one curve for all). A random alliance
        slope soaks such trajectories up unless the model has a random session slope
        (``AllianceModel(random_trend=True)``).
    alliance_trend_sd : float
        SD over patients of their own alliance trend per session, added to the latent
        level (``trend + s_i``); default 0.
    dropout_alliance : float
        Log-odds change of the per-session dropout hazard per latent-SD of
        alliance (negative: a poor alliance makes dropping out likelier).
    early_sessions : int
        The k of the early-alliance level in ``truth["between_level"]["early"]``
        (``prepare(early_sessions=...)``).

    Returns
    -------
    Simulation
        ``data`` (see :class:`Simulation`) and ``truth``, a dict with:

        ``within``, ``within_direct`` : dict lag -> float
            The direct within effect ``within_effect[k-1]``: the population
            mean of the patients' within-patient slopes of the outcome k
            sessions later (lag 1 with moderation: the row-weighted average
            effect the model without moderators estimates).
        ``within_total`` : dict lag -> float
            The total effect of a one-off one-point alliance deviation on the
            outcome k sessions later, through the alliance's own persistence
            (``alliance_ar``) and the feedback loop; equals ``within`` when
            both are 0.
        ``lag2_direct`` : float
            The direct lag-2 effect (``within_effect[1]``, 0 if none).
        ``within_expected`` : dict lag -> float
            The sample's noise-free within-patient regression of the
            alliance part of the lead outcome on the person-mean deviation
            (includes the O(1/T) leak of neighbouring lags).
        ``between`` : float
            ``between_effect``, the structural level coefficient.
        ``between_level`` : dict
            The between-patient LEVEL effect: the regression over patients of
            the patient's outcome level on their alliance level, without the
            lagged outcome and unadjusted for intake. ``"mean"``: level = mean
            alliance over all attended sessions, outcome level = mean over the
            same sessions; ``"early"``: level = mean of the first
            ``early_sessions`` attended sessions, outcome level = mean over
            the later ones; ``"early_sessions"``: that k. Derivation in
            ``_generate._between_level``: the alliance-driven part is exact in
            the sample; symptom->alliance feedback adds its expected
            reverse association (so the level association exceeds
            ``between_effect`` in magnitude under feedback, by about 13% at
            T = 8 and 5% at T = 20 for feedback -0.015).
        ``slope_sd`` : float
            tau, the SD of the patients' lag-1 within effects beyond the
            moderators (the random slope SD of the moderated model).
        ``slope_sd_total`` : float
            SD over patients of the lag-1 within effect including moderation.
        ``share_beneficial`` : float
            The model-implied share of patients with a beneficial (negative:
            lower outcome = better) lag-1 effect, ``Phi(-within[1] / slope_sd)``.
        ``ar``, ``alliance_ar``, ``feedback``, ``process`` :
            The outcome residual AR(1), the alliance AR(1), the feedback
            coefficient in effect (0 in the static process) and the process.
        ``therapist_share``, ``patient_share``, ``residual_share`` : float
            Shares of the time-adjusted outcome variance (therapist, patient
            incl. the between-alliance part, session residual).
        ``sd`` : dict
            Component SDs: ``therapist``, ``patient`` (intercept beyond the
            between-alliance term), ``residual`` (stationary SD of e).
        ``moderation``, ``moderator_centres`` : dict
            The coefficients used and the row-weighted centring values.
        ``within_at_patient_means`` : float
            The lag-1 effect with moderators at their unweighted patient means.
        ``within_by_arm`` : dict arm -> float
            The lag-1 effect per arm, other moderators at their centres.
        ``within_std`` : float
            ``within[1] * SD(alliance_within) / SD(outcome - person mean)``:
            standardised by the within-patient SDs.
        ``between_r`` : float
            Correlation over patients of mean alliance and mean outcome.
        ``dropout_rate``, ``missed_rate`` : float
            Realised shares of early-ending patients and of missed sessions.
        ``n_rows`` : int
            Number of attended sessions.
    """
    n_patients = check_int("n_patients", n_patients, 1)
    n_therapists = check_int("n_therapists", n_therapists, 1)
    if n_therapists > n_patients:
        raise PylmeError(f"simulate(): n_therapists ({n_therapists}) cannot exceed n_patients ({n_patients})")
    n_arms = check_int("n_arms", n_arms, 1, len(ARMS))
    if sessions is not None:
        sessions = check_int("sessions", sessions, 1)
        max_sessions = sessions
    max_sessions = check_int("max_sessions", max_sessions, 1)
    # a median above max_sessions is allowed: planned lengths are capped at max_sessions
    sessions_median = check_float("sessions_median", sessions_median, 1)
    b = check_effects(within_effect, max_sessions)
    feedback = check_float("feedback", feedback, -1, 1)
    alliance_ar = check_float("alliance_ar", alliance_ar, -1, 1, open_low=True, open_high=True)
    if process not in PROCESSES:
        raise PylmeError(f"simulate(): process must be one of {list(PROCESSES)}, got {process!r}")
    if process == "auto":
        process = "dynamic" if feedback != 0.0 else "static"
    elif process == "static" and feedback != 0.0:
        raise PylmeError(
            "simulate(): feedback needs process='dynamic' (in the static process the outcome depends "
            "on the person mean, i.e. on later alliance, so no outcome can shape later alliance)")
    early_sessions = check_int("early_sessions", early_sessions, 1)
    arms = ARMS[:n_arms]
    params = dict(
        n_patients=n_patients, n_therapists=n_therapists, n_arms=n_arms,
        sessions_median=sessions_median, max_sessions=max_sessions, sessions=sessions,
        within_effect=tuple(b),
        between_effect=check_float("between_effect", between_effect),
        slope_sd=check_float("slope_sd", slope_sd, 0),
        ar=check_float("ar", ar, -1, 1, open_low=True, open_high=True),
        feedback=feedback, alliance_ar=alliance_ar, process=process,
        missed=check_float("missed", missed, 0, 1, open_high=True),
        dropout=check_float("dropout", dropout, 0, 1, open_high=True),
        moderation=None,
        seed=seed if not isinstance(seed, np.random.Generator) else "Generator",
        alliance_mean=check_float("alliance_mean", alliance_mean, 1, 7),
        alliance_between_sd=check_float("alliance_between_sd", alliance_between_sd, 0),
        alliance_within_sd=check_float("alliance_within_sd", alliance_within_sd, 0),
        alliance_trend=check_float("alliance_trend", alliance_trend),
        intake_mean=check_float("intake_mean", intake_mean, 0, 180),
        outcome_sd=check_float("outcome_sd", outcome_sd, 0, open_low=True),
        therapist_share=check_float("therapist_share", therapist_share, 0, 1),
        patient_share=check_float("patient_share", patient_share, 0, 1),
        improvement=check_float("improvement", improvement),
        improvement_scale=check_float("improvement_scale", improvement_scale, 0, open_low=True),
        improvement_sd=check_float("improvement_sd", improvement_sd, 0),
        alliance_trend_sd=check_float("alliance_trend_sd", alliance_trend_sd, 0),
        dropout_alliance=check_float("dropout_alliance", dropout_alliance),
        early_sessions=early_sessions,
    )
    if params["therapist_share"] + params["patient_share"] >= 1:
        raise PylmeError("simulate(): therapist_share + patient_share must be < 1 (the rest is residual)")
    mods = check_moderation(moderation, arms)
    params["moderation"] = mods or None
    data, truth = generate(params, mods, np.random.default_rng(seed))
    return Simulation(data=data, truth=truth, params=params)

