"""Time prepare() on one million session rows, for each within= method.

Builds 50,000 patients x 20 attended sessions numbered within 1..22 (each
patient misses 2 of 22 scheduled sessions, so session numbers have gaps), shuffles the rows, adds a therapist column, a numeric
patient-level moderator (intake severity) and a categorical one (feedback arm),
with a few missing alliance and outcome values, then times ``prepare()``.

Run from the repository root::

    PYTHONPATH=src .venv/bin/python benchmarks/prepare.py
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd

from pylme_alliance.panel.prepare import prepare

N_PATIENTS = 50_000
N_SESSIONS = 20
N_SCHEDULED = 22
TARGET_SECONDS = 5.0


def build(seed: int = 1) -> pd.DataFrame:
    """Exactly N_PATIENTS * N_SESSIONS rows, shuffled, with gaps in session numbers."""
    rng = np.random.default_rng(seed)
    patient = np.repeat(np.arange(N_PATIENTS), N_SESSIONS)
    # each patient attends a random 20 of 22 scheduled sessions (vectorised: sort random keys)
    attended = np.sort(np.argsort(rng.random((N_PATIENTS, N_SCHEDULED)), axis=1)[:, :N_SESSIONS], axis=1)
    session = attended.ravel() + 1
    level = rng.normal(5.6, 0.8, N_PATIENTS)
    alliance = level[patient] + 0.03 * session + rng.normal(0, 0.4, patient.size)
    outcome = 80 - 1.2 * session + rng.normal(0, 10, patient.size)
    alliance[rng.random(patient.size) < 0.03] = np.nan
    outcome[rng.random(patient.size) < 0.03] = np.nan
    severity = rng.normal(80, 22, N_PATIENTS)
    arm = rng.choice(["none", "symptoms", "alliance", "both", "oq"], N_PATIENTS)
    therapist = rng.integers(0, 1_500, N_PATIENTS)
    df = pd.DataFrame(
        {
            "patient id": np.char.add("P", patient.astype(str)),
            "session": session,
            "alliance": alliance,
            "outcome": outcome,
            "therapist": therapist[patient],
            "severity": severity[patient],
            "arm": arm[patient],
        }
    )
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def main() -> None:
    start = time.perf_counter()
    df = build()
    print(f"built {len(df):,} rows, {df['patient id'].nunique():,} patients "
          f"in {time.perf_counter() - start:.1f} s")
    for within in ("person_mean", "early", "detrend"):
        start = time.perf_counter()
        panel = prepare(
            df, patient="patient id", session="session", alliance="alliance", outcome="outcome",
            therapist="therapist", within=within, leads=(1, 2, 3),
            moderators=["severity", "arm"], split_therapist=True,
        )
        seconds = time.perf_counter() - start
        flag = "ok" if seconds < TARGET_SECONDS else f"SLOWER than {TARGET_SECONDS:g} s"
        print(f"prepare(within={within!r:14}) {seconds:6.2f} s  "
              f"({len(panel.data):,} kept, {len(panel.dropped):,} dropped)  {flag}")


if __name__ == "__main__":
    main()
