"""What a design can say about the between-patient SD of the within effect.

Two things the heterogeneity answer needs beside the test itself:

- :func:`detectable_sd`: the smallest slope SD the random-slope test detects with 80%
  power at alpha = .05 in THIS fit's design (its patients, their session counts, the
  spread of their alliance deviations, the residual SD). From the score test of the
  slope variance at 0: with ``S_i`` the sum of squared alliance deviations of patient
  ``i`` (net of the patient's own session trend) and ``sigma`` the residual SD, the
  information about tau^2 at 0 is ``sum(S_i^2) / (2 sigma^4)``, and a one-sided test
  reaches power .8 when ``tau^2 * sqrt(information) = z_.95 + z_.8``. A local
  approximation: benchmarks/heterogeneity.py compares it with the power it measured.
- :func:`closest_record`: the recovery study's measurements (benchmarks/README.md,
  "Heterogeneity") on the design closest to the data, so that what is said about the
  test's size and the share's coverage was measured on data like the user's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..panel._leads import lead_positions

WITHIN = "alliance_within"
POWER = 0.8


def detectable_sd(fit: Any, *, alpha: float = 0.05, power: float = POWER) -> float:
    """Smallest slope SD detected with probability ``power`` at level ``alpha`` (NaN when
    the fit's data or residual SD are missing)."""
    data = getattr(fit, "data", None)
    sigma = float((getattr(fit, "stats", None) or {}).get("sigma", np.nan) or np.nan)
    if data is None or WITHIN not in data or "patient" not in data or not np.isfinite(sigma) or sigma <= 0:
        return float("nan")
    frame = pd.DataFrame({"patient": data["patient"].astype(str).to_numpy(),
                          "x": pd.to_numeric(data[WITHIN], errors="coerce").to_numpy(dtype=float),
                          "t": pd.to_numeric(data["session"], errors="coerce").to_numpy(dtype=float)
                          if "session" in data else 0.0}).dropna()
    if frame.empty:
        return float("nan")
    grouped = frame.groupby("patient", sort=False)
    x = frame["x"] - grouped["x"].transform("mean")
    t = frame["t"] - grouped["t"].transform("mean")
    # net of the patient's own session trend (the heterogeneity model's random session slope)
    stt = (t * t).groupby(frame["patient"]).transform("sum")
    sxt = (x * t).groupby(frame["patient"]).transform("sum")
    x = x - np.where(stt > 0, sxt / stt.where(stt > 0, 1.0), 0.0) * t
    s = (x * x).groupby(frame["patient"]).sum().to_numpy()
    information = float(np.sum(s ** 2)) / (2 * sigma ** 4)
    if information <= 0:
        return float("inf")
    shift = stats.norm.ppf(1 - alpha) + stats.norm.ppf(power)
    return math.sqrt(shift / math.sqrt(information))


@dataclass(frozen=True)
class Record:
    """The recovery study's figures for one design (benchmarks/heterogeneity.py)."""

    design: str
    words: str                 # the design in words
    sessions: float            # median fitted rows per patient
    feedback: float            # symptom -> alliance feedback of the generator (alliance per outcome point)
    size: float                # calibrated test, true SD 0
    size_mixture: float        # the 50:50 mixture p, true SD 0
    power: dict[float, float]  # true SD -> rejection rate of the calibrated test
    sd_bias: float             # relative bias of the SD estimate at a true SD of 3
    share_coverage: float      # coverage of the share interval when the test rejects
    trials: int


_OWN = "own improvement rates and alliance trends, AR(1) outcome and alliance, feedback"
#: From ``python benchmarks/heterogeneity.py --reps 100`` (benchmarks/README.md, "heterogeneity"):
#: 68-69 trials per design and true SD (the run was stopped there). ``power`` is size-adjusted
#: (the share of LRs above the 95% point of the design's LRs at SD 0); ``share_coverage`` is
#: the lowest coverage of the share interval over true SDs 1, 2 and 3.
RECORDS: tuple[Record, ...] = (
    Record(design="package", words="the package simulator: 547 patients, median 7 sessions, AR(1) outcome, "
           "no feedback", sessions=4.5, feedback=0.0, size=0.304,
           size_mixture=0.304, power={1.0: 0.101, 2.0: 0.159, 3.0: 0.290}, sd_bias=0.187, share_coverage=0.809,
           trials=69),
    Record(design="traj_T8", words=f"300 patients, 8 sessions, {_OWN}", sessions=4.0,
           feedback=-0.01, size=0.353, size_mixture=0.382, power={1.0: 0.074, 2.0: 0.132, 3.0: 0.206},
           sd_bias=0.643, share_coverage=0.618, trials=68),
    Record(design="traj_T20", words=f"300 patients, 20 sessions, {_OWN}", sessions=12.0,
           feedback=-0.01, size=0.412, size_mixture=0.529, power={1.0: 0.059, 2.0: 0.162, 3.0: 0.338},
           sd_bias=0.063, share_coverage=0.603, trials=68),
)


#: a measured size above this (twice alpha = .05) makes a rejection no evidence
OVERSIZE = 0.10
#: a feedback difference this large counts as much as a factor e in sessions per patient
FEEDBACK_SCALE = 0.01


def observed_feedback(data: pd.DataFrame) -> float:
    """The within-patient slope of the next session's alliance deviation on this session's
    outcome deviation (alliance points per outcome point; NaN without the columns): the
    symptom -> alliance feedback as the fit's rows show it (a plain regression, biased like
    any short-panel one, used only to pick the closest measured design)."""
    needed = {"patient", "session", WITHIN, "outcome_within"}
    if not needed <= set(data.columns):
        return float("nan")
    rows = data[list(needed)].dropna().reset_index(drop=True)
    codes, _ = pd.factorize(rows["patient"].astype(str))
    after = lead_positions(codes, rows["session"].to_numpy(), 1)  # the next session by number
    has = after >= 0
    if has.sum() < 10:
        return float("nan")
    pairs = pd.DataFrame({"patient": codes[has], "x": rows["outcome_within"].to_numpy()[has],
                          "y": rows[WITHIN].to_numpy()[after[has]]})
    x = pairs["x"] - pairs.groupby("patient")["x"].transform("mean")
    y = pairs["y"] - pairs.groupby("patient")["y"].transform("mean")
    sxx = float((x * x).sum())
    return float((x * y).sum() / sxx) if sxx > 0 else float("nan")


def closest_record(fit: Any) -> Record | None:
    """The measured design closest to the fit's data: median fitted rows per patient (log
    scale) and the size of the symptom -> alliance feedback (:func:`observed_feedback`, in
    units of :data:`FEEDBACK_SCALE`); None when nothing was measured."""
    if not RECORDS:
        return None
    data = getattr(fit, "data", None)
    if data is None or "patient" not in data or len(data) == 0:
        return None
    sessions = float(data.groupby("patient", observed=True).size().median())
    feedback = observed_feedback(data)

    def distance(record: Record) -> float:
        gap = abs(math.log(max(sessions, 1.0)) - math.log(record.sessions))
        # by size only: its sign turns with the direction of the outcome scale (mirrored
        # data must find the same design)
        size = abs(abs(feedback) - abs(record.feedback)) / FEEDBACK_SCALE if np.isfinite(feedback) else 0.0
        return gap + size

    return min(RECORDS, key=distance)


def caveat_text(record: Record | None, calibrated: bool) -> str:
    """What the recovery study measured about the test on the design closest to the data
    ("" when nothing was measured)."""
    if record is None:
        return ""
    if calibrated:
        power = ", ".join(f"SD {sd:g}: {p:.0%}" for sd, p in sorted(record.power.items()))
        text = (f"on simulated trials like these ({record.words}; {record.trials} trials) the calibrated test "
                f"rejected a true SD of 0 in {record.size:.0%} at alpha = .05; a test of the right size "
                f"would have detected {power}")
        if record.size > OVERSIZE:
            text += ", so a rejection here is not evidence that patients differ"
        return text
    return (f"this test's p comes from the asymptotic mixture, which on simulated trials like these "
            f"({record.words}; {record.trials} trials) rejected a true SD of 0 in {record.size_mixture:.0%} of trials "
            "at alpha = .05: read a significant test as suggestive (the calibrated test needs engine='lme4')")


def not_estimable_note(detectable: float) -> str:
    """The SD row's note when the test does not support variation."""
    if not np.isfinite(detectable):
        return "not estimable: the test does not support variation between patients"
    return (f"not estimable: the test does not support variation between patients, and this design detects an SD "
            f"of about {detectable:.2g} or more (80% power, alpha = .05); smaller SDs cannot be told from 0")


def share_allowed(record: Record | None, supported: bool, calibrated: bool) -> str:
    """"" when the share of patients helped may be printed, else why not: only with a
    calibrated test that supports variation and a share interval that covered the truth in
    at least 90% of the recovery study's trials on the closest design."""
    if not supported:
        return "not shown: the test does not support variation between patients"
    if not calibrated:
        return "not shown: the test is not calibrated (engine other than lme4, or method='mixture')"
    if record is None:
        return "not shown: its interval's coverage was not measured on a design like this one"
    if not record.share_coverage >= 0.90:
        return (f"not shown: on simulated trials like these its interval covered the truth in only "
                f"{record.share_coverage:.0%} of trials")
    return ""
