"""Heterogeneity recovery: is the calibrated random-slope test right on realistic data?

For each design and true slope SD (0, 1, 2, 3), ``--reps`` trials are simulated,
prepared, and read by ``AllianceFit.heterogeneity()`` in the model with each patient's
own session slope (``random_trend=True``):

- at a true SD of 0 (and the SDs in ``--bootstrap-at``): the bootstrap-calibrated test
  (``--draws`` draws: 19 gives an exact Monte Carlo test at .05, reject only when the
  observed LR beats every draw), its mixture p, and at SD 0 the
  model without the patients' session slopes (the test as it was);
- at SD 1, 2, 3: the SD estimate with its profile interval, the share of patients
  helped with its interval, the mixture p and the LR. Power is stated size-adjusted:
  the share of LRs above the 95% point of the same design's LRs at SD 0 (the null the
  bootstrap estimates trial by trial); the detectable SD (models/detectable.py) is
  printed beside it.

    python benchmarks/heterogeneity.py --reps 200 --workers 2
    python benchmarks/heterogeneity.py --reps 60 --truths 0 3 --bootstrap-at 0 3
    python benchmarks/heterogeneity.py --cost      # the calibrated test on the bundled example
    python benchmarks/heterogeneity.py --reps 20 --designs traj_T8 --out het.csv

Rows (one per trial) go to ``--out``; the summary table is printed.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

#: simulate() keywords. "package": the package simulator's defaults (547 patients, median 7
#: sessions, gaps, dropout). "traj_*": patients who improve at different rates and have their
#: own alliance trends, AR(1) outcome deviations and alliance, symptom->alliance feedback.
TRAJECTORIES = dict(n_patients=300, n_therapists=30, missed=0.1, dropout=0.2, improvement_sd=12.0,
                    alliance_trend_sd=0.04, ar=0.4, alliance_ar=0.3, feedback=-0.01)
DESIGNS: dict[str, dict[str, Any]] = {
    "package": {},
    "traj_T8": {**TRAJECTORIES, "sessions": 8},
    "traj_T20": {**TRAJECTORIES, "sessions": 20},
}
TRUTHS = (0.0, 1.0, 2.0, 3.0)


def one_trial(task: tuple[str, float, int, int, tuple[float, ...]]) -> dict[str, Any]:
    design, sd, seed, draws, bootstrap_at = task
    warnings.simplefilter("ignore")
    import pylme_alliance as pa
    from pylme_alliance.models.detectable import detectable_sd
    from pylme_alliance.models.model import AllianceModel

    sim = pa.simulate(**DESIGNS[design], slope_sd=sd, seed=seed)
    panel = pa.prepare(sim.data, patient="patient", therapist="therapist", session="session",
                       alliance="alliance", outcome="outcome", outcome_better="lower")
    start = time.process_time()
    fit = AllianceModel(random_trend=True).fit(panel)
    null = sd == 0.0
    calibrated = sd in bootstrap_at
    h = fit.heterogeneity(method="bootstrap" if calibrated else "mixture", draws=draws, interval=not null)
    row = {"design": design, "truth": sd, "seed": seed, "share_truth": sim.truth["share_beneficial"],
           "calibrated": calibrated,
           "sessions": float(fit.data.groupby("patient").size().median()),
           "lr": h.test.statistic if h.test else np.nan, "p": h.test.p_value if h.test else np.nan,
           "p_mixture": h.test.mixture_p if h.test else np.nan, "sd": h.slope_sd,
           "sd_low": h.slope_sd_low, "sd_high": h.slope_sd_high, "share": h.share,
           "share_low": h.share_low, "share_high": h.share_high, "verdict": h.verdict,
           "detectable": detectable_sd(fit), "cpu": time.process_time() - start}
    if null:  # the test as it was: no session slopes, the mixture
        old = AllianceModel().fit(panel).heterogeneity(trend=False, method="mixture", interval=False)
        row["p_old"] = old.test.p_value if old.test else np.nan
        row["sd_old"] = old.slope_sd
    return row


def summary(rows: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    out = []
    for design, d in rows.groupby("design", sort=False):
        null = d[d["truth"] == 0]
        critical = float(np.quantile(null["lr"].dropna(), 1 - alpha)) if len(null) else np.nan
        for truth, t in d.groupby("truth"):
            covered = (t["share_low"] <= t["share_truth"]) & (t["share_truth"] <= t["share_high"])
            rec = {"design": design, "truth SD": truth, "trials": len(t), "median rows/patient": t["sessions"].median(),
                   "SD mean": t["sd"].mean(), "SD bias %": 100 * (t["sd"].mean() - truth) / truth if truth else np.nan,
                   "detectable SD (80%)": t["detectable"].median(), "cpu s/trial": t["cpu"].mean()}
            if truth == 0:
                # a Monte Carlo p rejects at p <= alpha (exact size with alpha * (draws + 1) whole)
                rec["size (bootstrap)"] = float((t["p"] <= alpha + 1e-12).mean())
                rec["size (mixture)"] = float((t["p_mixture"] < alpha).mean())
                rec["size (old model)"] = float((t["p_old"] < alpha).mean())
                rec["old SD mean"] = t["sd_old"].mean()
            else:
                if t["calibrated"].any():
                    rec["power (bootstrap)"] = float((t.loc[t["calibrated"], "p"] <= alpha + 1e-12).mean())
                rec["power (size-adj.)"] = float((t["lr"] > critical).mean())
                rec["power (mixture)"] = float((t["p_mixture"] < alpha).mean())
                rec["share cover"] = float(covered[t["share_low"].notna()].mean())
                rec["share cover | reject"] = float(covered[(t["lr"] > critical) & t["share_low"].notna()].mean())
            out.append(rec)
    return pd.DataFrame(out)


def cost(draws: int) -> None:
    """CPU and wall time of heterogeneity() on the bundled example, here and split over a
    two-process pool (the workers' CPU is not in this process's figure: wall time shows it)."""
    warnings.simplefilter("ignore")
    import pylme_alliance as pa
    from pylme_alliance.executors import process_pool
    from pylme_alliance.simulation.example import load_example

    panel = pa.prepare(load_example(), patient="patient", therapist="therapist", session="session",
                       alliance="alliance", outcome="outcome", outcome_better="lower")
    fit = pa.AllianceModel().fit(panel)
    for label, pool in (("this process", None), ("process pool (2)", process_pool(2))):
        cpu, wall = time.process_time(), time.perf_counter()
        het = fit.heterogeneity(draws=draws, executor=pool)
        print(f"{label}: heterogeneity() {time.perf_counter() - wall:.1f} s wall, "
              f"{time.process_time() - cpu:.1f} s CPU here; {het.test}")
        if pool is not None:
            pool.shutdown()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--designs", nargs="+", default=list(DESIGNS), choices=list(DESIGNS))
    parser.add_argument("--truths", nargs="+", type=float, default=list(TRUTHS))
    parser.add_argument("--draws", type=int, default=19)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--bootstrap-at", nargs="+", type=float, default=[0.0], metavar="SD",
                        help="true SDs at which the calibrated test runs (default: 0, its size)")
    parser.add_argument("--out", default="heterogeneity_rows.csv")
    parser.add_argument("--cost", action="store_true", help="time heterogeneity() on the bundled example instead")
    args = parser.parse_args(argv)
    if args.cost:
        cost(199 if args.draws == 19 else args.draws)
        return
    tasks = [(d, sd, seed, args.draws, tuple(args.bootstrap_at)) for seed in range(1, args.reps + 1)
             for d in args.designs for sd in args.truths]
    rows = []
    with ProcessPoolExecutor(args.workers) as pool:
        for i, row in enumerate(pool.map(one_trial, tasks, chunksize=1)):
            rows.append(row)
            if (i + 1) % 20 == 0 or i + 1 == len(tasks):
                pd.DataFrame(rows).to_csv(args.out, index=False)  # partial results survive a stop
                print(f"{i + 1}/{len(tasks)} trials", file=sys.stderr, flush=True)
    table = summary(pd.DataFrame(rows))
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
