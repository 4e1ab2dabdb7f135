"""Impulse responses of a fitted within-person VAR(1): how a one-point alliance (or
outcome) change at session t carries over to sessions t+1 .. t+K (issue 19).

With the within-person state ordered (alliance, outcome) and the time-invariant lagged
paths of a reciprocal model,

    B = [[alliance->alliance, outcome->alliance],
         [alliance->outcome,  outcome->outcome ]]

a change of one raw point in alliance at t (outcome at t held as it was) moves the
state at t + k by ``B^k @ [1, 0]``: at lead 1 the cross-lagged path itself, at lead 2
also what travels through the outcome and the alliance at t + 1, and so on. This is the
TOTAL effect at lead k that a per-lead regression controlling the outcome at t misses
under person-mean centring (METHODS.md, best practice 4). Intervals come from the delta
method on the 4 x 4 covariance of the lagged paths.

Pure numpy: no R.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import PylmeError

#: The order of the lagged paths in ``paths`` and their covariance.
PATHS = ("alliance->alliance", "outcome->alliance", "outcome->outcome", "alliance->outcome")
SOURCES = ("alliance", "outcome")
COLUMNS = ["source", "lead", "response", "estimate", "std_error", "conf_low", "conf_high", "estimand"]


def transition(paths: np.ndarray) -> np.ndarray:
    """B from the lagged paths in :data:`PATHS` order."""
    aa, ya, yy, ay = (float(v) for v in paths)
    return np.array([[aa, ya], [ay, yy]])


def responses(paths: np.ndarray, leads: int) -> np.ndarray:
    """Array [source, lead-1, response]: the state at t + lead after a one-point change
    of ``source`` (0 alliance, 1 outcome) at t."""
    B = transition(paths)
    out = np.empty((2, leads, 2))
    power = np.eye(2)
    for k in range(leads):
        power = B @ power
        out[:, k, :] = power.T  # column j of B^k is the response to a change in j
    return out


def _jacobian(paths: np.ndarray, leads: int) -> np.ndarray:
    """d responses / d paths by central differences (the map is a polynomial of degree
    ``leads``, so a relative step of 1e-6 is accurate to ~1e-9)."""
    base = np.asarray(paths, dtype=float)
    jac = np.empty((2, leads, 2, len(base)))
    for j in range(len(base)):
        h = 1e-6 * max(1.0, abs(base[j]))
        up, down = base.copy(), base.copy()
        up[j] += h
        down[j] -= h
        jac[..., j] = (responses(up, leads) - responses(down, leads)) / (2 * h)
    return jac


def impulse_table(paths: np.ndarray, vcov: np.ndarray, *, leads: int = 3, conf_level: float = 0.95,
                  units: dict[str, str] | None = None) -> pd.DataFrame:
    """The impulse responses with delta-method standard errors and Wald intervals.

    Parameters
    ----------
    paths : array of 4
        Raw-scale lagged paths in :data:`PATHS` order.
    vcov : (4, 4) array
        Their covariance (NaN: no intervals).
    leads : int
        K: responses at t + 1 .. t + K.
    conf_level : float
        Interval level.
    units : dict, optional
        ``{"alliance": ..., "outcome": ...}`` names for the estimand texts.

    Returns
    -------
    pandas.DataFrame
        One row per source (alliance, outcome), lead and response (outcome, alliance):
        ``estimate`` (raw points of the response per raw point of the source),
        ``std_error``, ``conf_low``, ``conf_high`` and ``estimand`` in words.
    """
    leads = int(leads)
    if leads < 1:
        raise PylmeError(f"leads must be a positive integer, got {leads}")
    if not 0 < conf_level < 1:
        raise PylmeError(f"conf_level must be between 0 and 1, got {conf_level}")
    paths = np.asarray(paths, dtype=float)
    vcov = np.asarray(vcov, dtype=float)
    est = responses(paths, leads)
    jac = _jacobian(paths, leads)
    z = stats.norm.ppf(0.5 + conf_level / 2)
    names = units or {"alliance": "alliance", "outcome": "outcome"}
    rows = []
    for s, source in enumerate(SOURCES):
        for k in range(leads):
            # the other series first: the cross-series response is the one asked about
            for r in (1 - s, s):
                g = jac[s, k, r]
                se = float(np.sqrt(g @ vcov @ g)) if np.all(np.isfinite(vcov)) else float("nan")
                value = float(est[s, k, r])
                rows.append((source, k + 1, SOURCES[r], value, se, value - z * se, value + z * se,
                             f"total change in {names[SOURCES[r]]} at session t+{k + 1} per one-point "
                             f"within-person change in {names[source]} at session t (through every "
                             "path of the fitted dynamics)"))
    return pd.DataFrame(rows, columns=COLUMNS)
