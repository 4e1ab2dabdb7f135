"""A generator for reciprocal alliance-outcome dynamics (issue 19), independent of
:func:`pylme_alliance.simulate`.

Each patient has their own level and linear trend in BOTH series (the two trends are
correlated), a common early drop in the outcome, and within-person VAR(1) dynamics
around those trajectories:

    w_a[t] = phi_a * w_a[t-1] + c_ya * w_y[t-1] + e_a[t]
    w_y[t] = phi_y * w_y[t-1] + c_ay * w_a[t-1] + e_y[t]

with correlated innovations. Sessions are numbered 1..n_i (6-20 planned), some are
missed (gaps), some alliance ratings are missing, and patients drop out more often after
a bad week (symptom-driven dropout). Used by tests/test_reciprocal.py and
benchmarks/reciprocal.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Dynamics:
    """The true within-person system. ``c_ay``: alliance -> next outcome (outcome points
    per alliance point); ``c_ya``: outcome -> next alliance (alliance points per outcome
    point)."""

    phi_a: float = 0.3
    phi_y: float = 0.4
    c_ay: float = -3.2
    c_ya: float = -0.004
    sd_a: float = 0.35
    sd_y: float = 7.0
    r_innovation: float = -0.2

    @property
    def matrix(self) -> np.ndarray:
        """B with the state ordered (alliance, outcome): w[t] = B w[t-1] + e[t]."""
        return np.array([[self.phi_a, self.c_ya], [self.c_ay, self.phi_y]])

    def impulse(self, lead: int, source: str = "alliance") -> tuple[float, float]:
        """(alliance, outcome) at t + lead after a one-point change of ``source`` at t."""
        start = np.array([1.0, 0.0]) if source == "alliance" else np.array([0.0, 1.0])
        response = np.linalg.matrix_power(self.matrix, lead) @ start
        return float(response[0]), float(response[1])


def generate(n_patients: int = 400, *, seed: int = 1, dynamics: Dynamics = Dynamics(),
             min_sessions: int = 6, max_sessions: int = 20, missed: float = 0.08,
             missing_alliance: float = 0.05, dropout: float = 0.04, dropout_symptom: float = 0.08,
             slope_sd_a: float = 0.01, slope_sd_y: float = 0.3, slope_r: float = -0.4,
             burn_in: int = 30) -> pd.DataFrame:
    """Long data: patient, session, alliance, outcome (one row per attended session)."""
    rng = np.random.default_rng(seed)
    d = dynamics
    B = d.matrix
    cov_e = np.array([[d.sd_a ** 2, d.r_innovation * d.sd_a * d.sd_y],
                      [d.r_innovation * d.sd_a * d.sd_y, d.sd_y ** 2]])
    chol_e = np.linalg.cholesky(cov_e)
    # patient levels (alliance 5.6 +- 0.7, outcome 75 +- 18, r = -0.3) and trends
    level_cov = np.array([[0.7 ** 2, -0.3 * 0.7 * 18], [-0.3 * 0.7 * 18, 18 ** 2]])
    slope_cov = np.array([[slope_sd_a ** 2, slope_r * slope_sd_a * slope_sd_y],
                          [slope_r * slope_sd_a * slope_sd_y, slope_sd_y ** 2]])
    levels = rng.multivariate_normal([5.6, 75.0], level_cov, size=n_patients)
    slopes = rng.multivariate_normal([0.03, -0.8], slope_cov, size=n_patients)
    planned = rng.integers(min_sessions, max_sessions + 1, size=n_patients)
    rows = []
    for i in range(n_patients):
        w = np.zeros(2)
        for _ in range(burn_in):
            w = B @ w + chol_e @ rng.standard_normal(2)
        for t in range(1, int(planned[i]) + 1):
            if t > 1:
                w = B @ w + chol_e @ rng.standard_normal(2)
            common = -6.0 * (1 - np.exp(-(t - 1) / 3.0))  # steep common early drop
            alliance = levels[i, 0] + slopes[i, 0] * (t - 1) + w[0]
            outcome = levels[i, 1] + common + slopes[i, 1] * (t - 1) + w[1]
            if t > 1 and rng.random() < missed:
                continue  # a missed session: a gap in the session numbers
            a_value = np.nan if rng.random() < missing_alliance else alliance
            rows.append((i + 1, t, a_value, outcome))
            # a worse week than usual (positive outcome deviation) makes dropout likelier
            hazard = dropout + dropout_symptom * max(w[1] / d.sd_y, 0.0)
            if t >= 3 and rng.random() < hazard:
                break
    return pd.DataFrame(rows, columns=["patient", "session", "alliance", "outcome"])
