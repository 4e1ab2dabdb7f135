"""The data-generating engine behind :func:`~pylme_alliance.simulation.simulate.simulate`.

Everything here is vectorised over patients; the only loops run over session
numbers (at most ``max_sessions`` steps). :func:`generate` takes the checked
arguments of ``simulate()`` and returns the data frame and the truth dict. The
process and the estimands are documented in ``simulate.py``; the derivation of
the between-patient level effect is in :func:`_between_level`.
"""
from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ._simchecks import ARMS, COLUMNS

__all__ = ["generate", "lean_truth"]

# Set by power(), which simulates thousands of trials and reads only some of the truth.
_LEAN: contextvars.ContextVar[dict[str, bool] | None] = contextvars.ContextVar("pylme_lean_truth", default=None)


@contextlib.contextmanager
def lean_truth(*, between: bool) -> Iterator[None]:
    """Within this block :func:`generate` leaves out the truth entries that take work
    and that power() does not read: ``within_expected`` always, ``between_level``
    unless ``between``. Every other entry, and the data, are unchanged (the truth uses
    no random numbers)."""
    token = _LEAN.set({"between": bool(between)})
    try:
        yield
    finally:
        _LEAN.reset(token)


# ----------------------------------------------------------------------------
# building blocks


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


def _expected_within(W: np.ndarray, obs: np.ndarray, part: np.ndarray, leads: int) -> dict[int, float]:
    """Within-patient (FE) regression of the alliance part of Y_{t+k} on W_t.

    ``part`` is the alliance-driven part of the outcome at every session (no
    outcome noise). This is what person-mean centring recovers in this sample
    before noise: it differs from the structural effect by the leak of the
    neighbouring lags through the person mean (order b / T).
    """
    n, T = W.shape
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


def _total_effects(b: Sequence[float], rho: float, feedback: float, leads: int) -> dict[int, float]:
    """Impulse response of the outcome to a one-off one-point alliance deviation.

    A deviation at t persists in the alliance (``rho``), moves the outcome
    (``b_k`` at lag k) and the outcome's deviation moves the next alliance
    (``feedback``): the total effect at lag k, to every order.
    """
    r = [1.0]          # alliance response at lag s
    y = [0.0]          # outcome response at lag s
    for s in range(1, leads + 1):
        y.append(sum(b[k - 1] * r[s - k] for k in range(1, min(s, len(b)) + 1)))
        r.append(rho * r[s - 1] + feedback * y[s - 1])
    return {k: float(y[k]) for k in range(1, leads + 1)}


def _share_beneficial(beta: float, tau: float) -> float:
    """Phi(-beta/tau): the share of normal slopes below 0 (lower outcome = better)."""
    if tau <= 0:
        return 1.0 if beta < 0 else (0.0 if beta > 0 else 0.5)
    return 0.5 * math.erfc(beta / tau / math.sqrt(2.0))


def _calibrate_dropout(z: np.ndarray, can_drop: np.ndarray, target: float, slope: float) -> float:
    """Hazard intercept giving an expected dropout share of ``target``.

    Bisection on the expected share ``mean(1 - prod(1 - h))`` over each
    patient's dropout opportunities; deterministic (uses no random numbers).
    """
    if target <= 0 or not can_drop.any():
        return -np.inf
    lo, hi = -20.0, 20.0
    # The hazards are computed only where a patient can drop out (elsewhere h = 0 and
    # log(1 - h) is -0.0): the same numbers as over the whole n x T grid, because each
    # element's value does not depend on the others and the row sums still run over the
    # full rows, but a quarter of the work (power() simulates thousands of trials).
    # tests/test_power_frames.py holds it to the whole-grid version bit for bit.
    slope_z = slope * z[can_drop]
    logs = np.full(can_drop.shape, -0.0)
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        h = 1.0 / (1.0 + np.exp(-(mid + slope_z)))
        logs[can_drop] = np.log1p(-np.minimum(h, 1 - 1e-12))
        share = float(np.mean(1.0 - np.exp(logs.sum(axis=1))))
        if share < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


# ----------------------------------------------------------------------------
# the between-patient level effect


def _rank(obs: np.ndarray) -> np.ndarray:
    """0-based rank of each attended session within its patient (-1 if not attended)."""
    return np.where(obs, np.cumsum(obs, axis=1) - 1, -1)


def _between_level(alliance: np.ndarray, obs: np.ndarray, signal: np.ndarray, intake_signal: np.ndarray, *,
                   early: int | None, adjust: bool, var_p: float, var_t: float, var_e: float, ar: float,
                   rho: float, feedback: float) -> float:
    """Population regression of the patient's outcome level on the alliance level.

    Derivation (linear part of the generator; rounding, clipping, the session
    covariate and the alliance-driven choice of sessions are ignored). For
    patient i let S_i be the sessions whose alliance defines the level (all
    attended sessions, or the first ``early`` attended ones) and R_i the
    sessions whose outcome defines the outcome level (those after the first
    ``early``; for the person mean all sessions, or all but the intake when
    the intake is adjusted for -- as ``between_effect()`` chooses its rows).
    With X_i = mean_{S_i} A and L_i = mean_{R_i} Y, the truth is the
    between-patient regression of L on X (and on the intake outcome Y1 when
    ``adjust``) over patients, each once.

    Split L_i = Ls_i + p_i + v_j + mean_{R_i} e and Y1_i = Ys_i + p_i + v_j + e_1,
    where ``Ls``/``Ys`` is what the alliance drives (the level term and the
    lagged within terms, realised in this sample). The realised parts enter
    through their sample (co)variances; the outcome noise enters only through its
    expectation, so the truth is never fitted to the noise:

    * Var(p + v + e_1) = var_p + var_t + var_e;
      Cov(L noise, Y1 noise) = var_p + var_t + var_e * mean_{t in R_i} ar^(t-1);
    * p and v are independent of the alliance; e is too, except under
      symptom->alliance feedback, where the alliance at s carries
      ``feedback * rho^(s-1-u) * e_u`` for every attended u < s (first order in
      the feedback), so that::

        E Cov(X_i, mean_{R_i} e) = feedback * var_e / (|S_i| |R_i|)
            * sum_{u attended} [sum_{s in S_i, s > u} rho^(s-1-u)] [sum_{t in R_i} ar^|u - t|]
        E Cov(X_i, e_1)          = feedback * var_e / |S_i| * sum_{s in S_i, s > 1} rho^(s-2)

    The coefficient on X is then the usual two-regressor formula
    ``(V_XL V_YY - V_YL V_XY) / (V_XX V_YY - V_XY^2)`` (one regressor: V_XL / V_XX).
    """
    rank = _rank(obs)
    if early is None:
        S = obs
        R = obs & (rank >= 1) if adjust else obs
    else:
        S = obs & (rank < early)
        R = obs & (rank >= early)
    keep = (S.sum(axis=1) > 0) & (R.sum(axis=1) > 0)
    if keep.sum() < 3:
        return float("nan")
    S, R, obs_k = S[keep], R[keep], obs[keep]
    nS, nR = S.sum(axis=1), R.sum(axis=1)
    X = _person_mean(alliance[keep], S)
    Ls = _person_mean(signal[keep], R)
    Ys = intake_signal[keep]

    def cov(u: np.ndarray, v: np.ndarray) -> float:
        return float(np.mean((u - u.mean()) * (v - v.mean())))

    T = obs.shape[1]
    idx = np.arange(T)
    lag = idx[:, None] - 1 - idx[None, :]                      # s - 1 - u
    rho_m = np.where(lag >= 0, float(rho) ** np.clip(lag, 0, None), 0.0)   # [s, u]
    c_xl = c_xy = 0.0
    if feedback != 0.0:
        phi_m = float(ar) ** np.abs(idx[:, None] - idx[None, :])           # [u, t]
        P = S.astype(float) @ rho_m                               # [i, u]
        Q = R.astype(float) @ phi_m                               # [i, u]
        c_xl = float(np.mean(feedback * var_e * (obs_k * P * Q).sum(axis=1) / (nS * nR)))
        c_xy = float(np.mean(feedback * var_e * P[:, 0] / nS))
    v_xx = cov(X, X)
    v_xl = cov(X, Ls) + c_xl
    if v_xx <= 0:
        return float("nan")
    if not adjust:
        return v_xl / v_xx
    phi_r = (R.astype(float) @ (float(ar) ** idx)) / nR          # mean_{t in R} ar^(t-1)
    v_xy = cov(X, Ys) + c_xy
    v_yy = cov(Ys, Ys) + var_p + var_t + var_e
    v_yl = cov(Ys, Ls) + var_p + var_t + var_e * float(np.mean(phi_r))
    return (v_xl * v_yy - v_yl * v_xy) / (v_xx * v_yy - v_xy**2)


# ----------------------------------------------------------------------------
# the generator


def generate(p: dict[str, Any], mods: dict[str, Any], rng: np.random.Generator
             ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Draw one trial from the checked arguments ``p`` of ``simulate()``."""
    n, n_therapists, n_arms = p["n_patients"], p["n_therapists"], p["n_arms"]
    T = p["max_sessions"]
    b = list(p["within_effect"])
    beta = p["between_effect"]
    rho, feedback = p["alliance_ar"], p["feedback"]
    dynamic = p["process"] == "dynamic"
    mu_a, sd_ab, sd_aw = p["alliance_mean"], p["alliance_between_sd"], p["alliance_within_sd"]
    trend = p["alliance_trend"]
    arms = ARMS[:n_arms]
    t = np.arange(1, T + 1, dtype=float)

    # --- structure: therapists, arms -------------------------------------------------
    caseload = _caseloads(rng, n, n_therapists)
    therapist_of = np.repeat(np.arange(n_therapists), caseload)
    # integrative orientation: therapist self-rating, integers 1-7
    integrative_t = np.clip(np.rint(rng.normal(4.2, 1.3, n_therapists)), 1, 7).astype(int)
    arm_of = rng.permutation(np.resize(np.arange(n_arms), n))  # balanced randomisation

    # --- latent alliance without feedback -----------------------------------------------
    a_i = rng.normal(0.0, sd_ab, n)
    d = rng.normal(0.0, sd_aw, (n, T))
    if rho != 0.0:  # AR(1) with stationary SD alliance_within_sd, from the same draws
        scale = math.sqrt(1.0 - rho**2)
        for s in range(1, T):
            d[:, s] = rho * d[:, s - 1] + scale * d[:, s]
    level = mu_a + a_i[:, None] + trend * (t - 1)          # the patient's latent level
    if p["alliance_trend_sd"] > 0:  # patients' own alliance trends (no draw without them)
        level = level + rng.normal(0.0, p["alliance_trend_sd"], n)[:, None] * (t - 1)
    latent = level + d
    alliance_obs = np.round(np.clip(latent, 1.0, 7.0), 2)

    # --- attendance: planned length, missed sessions, alliance-driven dropout ---------
    # Planned length is inflated so that, after misses and dropout, the median
    # number of ATTENDED sessions is near sessions_median (factor found by simulation).
    planned_median = p["sessions_median"] * (1.0 + 0.6 * p["dropout"]) / (1.0 - p["missed"])
    planned = np.clip(np.rint(np.exp(rng.normal(math.log(planned_median), 0.55, n))), 1, T).astype(int)
    if p["sessions"] is not None:
        planned[:] = T  # fixed design: every patient is offered all T sessions
    in_plan = t[None, :] <= planned[:, None]
    attend = in_plan & (rng.random((n, T)) >= p["missed"])
    attend[:, 0] = True  # the intake session is always attended
    # per-session dropout hazard after session t (not after the last planned one);
    # it responds to the alliance without its feedback part (see simulate())
    z = (latent - mu_a) / max(math.hypot(sd_ab, sd_aw), 1e-9)
    can_drop = attend & (t[None, :] < planned[:, None])
    offset = _calibrate_dropout(z, can_drop, p["dropout"], p["dropout_alliance"])
    hazard = 1.0 / (1.0 + np.exp(-(offset + p["dropout_alliance"] * z)))
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

    # --- the patient's alliance level as the outcome sees it --------------------------
    if dynamic:
        level_term = a_i                                   # latent level
    else:
        pmean = _person_mean(alliance_obs, obs)
        level_term = pmean - pmean.mean()                  # observed person mean (B_i)

    # --- outcome components ----------------------------------------------------------
    total_var = p["outcome_sd"] ** 2
    var_t = p["therapist_share"] * total_var
    var_between = beta**2 * float(level_term.var())
    var_p = max(p["patient_share"] * total_var - var_between, 0.0)
    var_e = (1.0 - p["therapist_share"] - p["patient_share"]) * total_var
    ar = p["ar"]
    v_j = rng.normal(0.0, math.sqrt(var_t), n_therapists)
    p_i = rng.normal(0.0, math.sqrt(var_p), n)
    eps = rng.normal(0.0, 1.0, (n, T))
    e = np.empty((n, T))
    e[:, 0] = eps[:, 0] * math.sqrt(var_e)
    innov_sd = math.sqrt(var_e * (1.0 - ar**2))
    for s in range(1, T):  # AR(1) over session numbers: T steps, vectorised over patients
        e[:, s] = ar * e[:, s - 1] + innov_sd * eps[:, s]
    improvement = np.full(n, p["improvement"])
    if p["improvement_sd"] > 0:  # patients who improve at different rates (no draw without them)
        improvement = improvement + rng.normal(0.0, p["improvement_sd"], n)
    g = -improvement[:, None] * (1.0 - np.exp(-(t[None, :] - 1.0) / p["improvement_scale"]))
    expected = (p["intake_mean"] + g + v_j[therapist_of][:, None] + p_i[:, None]
                + beta * level_term[:, None])
    base = expected + e

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
            for lv, c in coef.items():
                dummy = (arm_of == arms.index(lv)).astype(float)
                centres["arm"][lv] = wmean(dummy)
                shift += c * (dummy - centres["arm"][lv])
                at_pmeans += c * (dummy.mean() - centres["arm"][lv])
        else:
            centres[key] = wmean(mod_values[key])
            shift += coef * (mod_values[key] - centres[key])
            at_pmeans += coef * (mod_values[key].mean() - centres[key])
    b1_i = b[0] + shift + rng.normal(0.0, p["slope_sd"], n)
    coefs = [b1_i] + [np.full(n, bk) for bk in b[1:]]

    # --- the alliance part of the outcome ----------------------------------------------
    if not dynamic:
        # deviations from the person mean of the observed alliance (W_it)
        dev_a = np.where(obs, alliance_obs - pmean[:, None], 0.0)
        lagpart = np.zeros((n, T))
        for k, bk in enumerate(coefs, start=1):
            if k < T:
                lagpart += bk[:, None] * _lagged(dev_a, k)
    else:
        # sequential: the outcome's deviation at s feeds the alliance at s+1
        dev_a = np.zeros((n, T))       # D_it: observed alliance minus latent level
        lagpart = np.zeros((n, T))
        carry = np.zeros(n)            # feedback accumulated in the alliance deviation
        for s in range(T):
            if s > 0:
                y_dev = np.where(obs[:, s - 1], lagpart[:, s - 1] + e[:, s - 1], 0.0)
                carry = rho * carry + feedback * y_dev
            latent[:, s] = level[:, s] + d[:, s] + carry
            alliance_obs[:, s] = np.round(np.clip(latent[:, s], 1.0, 7.0), 2)
            dev_a[:, s] = np.where(obs[:, s], alliance_obs[:, s] - level[:, s], 0.0)
            for k in range(1, min(s, len(coefs)) + 1):
                lagpart[:, s] += coefs[k - 1] * dev_a[:, s - k]
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
    })[COLUMNS]

    # --- truth -----------------------------------------------------------------------
    pm_obs = _person_mean(alliance_obs, obs)
    W = np.where(obs, alliance_obs - pm_obs[:, None], 0.0)
    arm_eff = {}
    for idx, lv in enumerate(arms):
        val = b[0]
        for lv2, c in mods.get("arm", {}).items():
            val += c * (float(idx == arms.index(lv2)) - centres["arm"][lv2])
        arm_eff[lv] = val
    y_obs = np.where(obs, outcome, np.nan)
    y_c = y_obs - np.nanmean(y_obs, axis=1, keepdims=True)
    sd_w = float(np.sqrt(np.nanmean(np.where(obs, W, np.nan) ** 2)))
    sd_yw = float(np.sqrt(np.nanmean(y_c**2)))
    ybar = np.nanmean(y_obs, axis=1)
    signal = beta * level_term[:, None] + lagpart
    level_kw = dict(var_p=var_p, var_t=var_t, var_e=var_e, ar=ar, rho=rho,
                    feedback=feedback if dynamic else 0.0)
    intake_signal = beta * level_term
    early_k = p["early_sessions"]
    slope_sd = p["slope_sd"]
    lean = _LEAN.get()
    truth: dict[str, Any] = {
        "within": {k: float(v) for k, v in enumerate(b, start=1)},
        "within_direct": {k: float(v) for k, v in enumerate(b, start=1)},
        "within_total": _total_effects(b, rho, feedback if dynamic else 0.0, len(b)),
        "lag2_direct": float(b[1]) if len(b) > 1 else 0.0,
        "within_expected": None if lean else _expected_within(W, obs, lagpart, len(b)),
        "between": float(beta),
        "between_level": None if lean and not lean["between"] else {
            "mean": _between_level(alliance_obs, obs, signal, intake_signal, early=None, adjust=False,
                                   **level_kw),
            "early": _between_level(alliance_obs, obs, signal, intake_signal, early=early_k, adjust=False,
                                    **level_kw),
            "mean_adjusted": _between_level(alliance_obs, obs, signal, intake_signal, early=None,
                                            adjust=True, **level_kw),
            "early_adjusted": _between_level(alliance_obs, obs, signal, intake_signal, early=early_k,
                                             adjust=True, **level_kw),
            "early_sessions": early_k,
        },
        "slope_sd": float(slope_sd),
        "slope_sd_total": float(np.std(b1_i)) if n > 1 else float(slope_sd),
        "share_beneficial": _share_beneficial(b[0], slope_sd),
        "ar": float(ar),
        "alliance_ar": float(rho),
        "feedback": float(feedback if dynamic else 0.0),
        "process": p["process"],
        "therapist_share": float(var_t / total_var),
        "patient_share": float((var_p + var_between) / total_var),
        "residual_share": float(var_e / total_var),
        "sd": {"therapist": math.sqrt(var_t), "patient": math.sqrt(var_p), "residual": math.sqrt(var_e)},
        "moderation": {k: (dict(v) if isinstance(v, dict) else v) for k, v in mods.items()},
        "moderator_centres": centres,
        "within_at_patient_means": float(at_pmeans),
        "within_by_arm": arm_eff,
        "within_std": float(b[0] * sd_w / sd_yw) if sd_yw > 0 else float("nan"),
        "between_r": float(np.corrcoef(pm_obs, ybar)[0, 1]) if n > 2 else float("nan"),
        "dropout_rate": float(dropped.mean()),
        "missed_rate": float(1.0 - obs.sum() / np.minimum(last, T).sum()),
        "n_rows": int(len(data)),
    }
    if lean:
        for key in ("within_expected", "between_level"):
            if truth[key] is None:
                del truth[key]
    return data, truth
