"""Recovery study: do the alliance models recover the simulator's truth?

For each design, ``--reps`` trials are drawn with :func:`simulate` (seeds 1..reps),
prepared, and fitted by each estimator on each engine. Per quantity (within effect,
between level effect, random-slope SD, model-implied share beneficial) the table gives
the mean truth, bias (absolute and % of the truth), the empirical SD of the estimates
against the mean reported SE, 95% Wald coverage of the truth, and the shares of
non-converged and singular fits.

    python benchmarks/recovery.py --reps 200 --designs default fb005_T8 --engines lme4 --workers 2
    python benchmarks/recovery.py --reps 20 --engines lme4 nlme --out table.csv

Estimators are pluggable: each is a function ``(panel, truth, engine) -> list of rows``
registered in :data:`ESTIMATORS`; a row names the quantity, its estimate, SE (NaN when
the method gives none) and truth, and the fit's convergence and singular flags.
Replications run in a process pool (each worker has its own R); one replication is one
task, so a replication's fits share one prepared panel.
"""
from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

#: name -> keyword arguments of simulate(), plus ``rated_every`` (k: the alliance is set
#: to NaN on all sessions but 1, 1 + k, 1 + 2k, ... after simulate(), before prepare(), as
#: a trial that rates the alliance every k-th session). The T designs are balanced: every
#: patient attends all T sessions (no missed sessions, no dropout).
DESIGNS: dict[str, dict[str, Any]] = {
    "default": {},
    # where the within effect may break (issue 18, item 2): very short series ...
    "T3": {"sessions": 3, "missed": 0.0, "dropout": 0.0, "within_effect": (-2.0, -1.0)},  # lags <= T - 1
    "T4": {"sessions": 4, "missed": 0.0, "dropout": 0.0},
    "T5": {"sessions": 5, "missed": 0.0, "dropout": 0.0},  # where the balanced break ends
    "T6": {"sessions": 6, "missed": 0.0, "dropout": 0.0},
    "short_med3": {"sessions_median": 3},  # unbalanced: missed sessions and dropout as by default
    "short_med4": {"sessions_median": 4},
    # ... and the alliance rated every k-th session on the default design
    "rated_k2": {"rated_every": 2},
    "rated_k3": {"rated_every": 3},
    # longer balanced series without feedback, for the rule's table (models/reliability.py)
    "T8": {"sessions": 8, "missed": 0.0, "dropout": 0.0},
    "T20": {"sessions": 20, "missed": 0.0, "dropout": 0.0},
    "fb005_T8": {"sessions": 8, "missed": 0.0, "dropout": 0.0, "feedback": -0.005},
    "fb015_T8": {"sessions": 8, "missed": 0.0, "dropout": 0.0, "feedback": -0.015},
    "fb005_T20": {"sessions": 20, "missed": 0.0, "dropout": 0.0, "feedback": -0.005},
    "fb015_T20": {"sessions": 20, "missed": 0.0, "dropout": 0.0, "feedback": -0.015},
    "noslope": {"slope_sd": 0.0},
    # heterogeneity the data can show: a slope SD of 3 on 20 sessions each (the default
    # SD of 1 is below what 547 patients x 7 sessions can resolve; see README)
    "hetero_T20": {"sessions": 20, "missed": 0.0, "dropout": 0.0, "slope_sd": 3.0},
    # the random-slope test's size on balanced series
    "noslope_T8": {"sessions": 8, "missed": 0.0, "dropout": 0.0, "slope_sd": 0.0},
    "noslope_T20": {"sessions": 20, "missed": 0.0, "dropout": 0.0, "slope_sd": 0.0},
}

Z95 = 1.959963984540054


def _row(estimator: str, quantity: str, estimate: float, se: float, truth: float, fit: Any) -> dict[str, Any]:
    return {"estimator": estimator, "quantity": quantity, "estimate": float(estimate),
            "se": float(se), "truth": float(truth), "converged": bool(fit.converged),
            "singular": bool(fit.singular)}


def _lagged_model(control: str, prior: Any = "auto", name: str | None = None,
                  slope_lrt: bool = False, slope: Any = True) -> Callable[..., list[dict[str, Any]]]:
    """Within effect, slope SD and share from AllianceModel(control_outcome=control), and
    the design as :mod:`pylme_alliance.models.reliability` describes it (median fitted rows
    per patient, share of attended sessions rated).

    ``slope="auto"`` decides the random slope as analyze(random_slope="auto") does before
    fitting (:func:`~pylme_alliance.models.design.slope_capacity`: no slope when the
    observations do not exceed the random effects, e.g. 2 fitted rows per patient).

    With ``slope_lrt`` also the random-slope likelihood-ratio test at alpha = 0.05 (the
    test the report states heterogeneity by): its row's estimate is 1 when it rejects, so
    the table's mean estimate is the rejection rate (power when the truth is 1, size when
    the design has no slope variance, truth 0).
    """

    def run(panel: Any, truth: dict[str, Any], engine: str) -> list[dict[str, Any]]:
        from pylme_alliance.models.model import AllianceModel
        from pylme_alliance.models.reliability import (
            fit_sessions_mean,
            fit_sessions_median,
            fit_sessions_spread,
            rated_share,
        )

        residual = "ar1" if engine == "nlme" else "iid"
        random_slope = slope
        if slope == "auto":
            from pylme_alliance.models.choices import choose_therapist
            from pylme_alliance.models.design import slope_capacity

            random_slope = slope_capacity(panel, 1, choose_therapist(panel, "auto")[0])[0]
        fit = AllianceModel(control_outcome=control, prior_outcome=prior, engine=engine,
                            residual=residual, random_slope=random_slope).fit(panel)
        fixed = fit.fixed_table.set_index("term").loc["alliance_within"]
        beta, se = float(fixed["estimate"]), float(fixed["std_error"])
        pars = fit.ran_pars_table
        tau_rows = pars[pars["term"] == "sd__alliance_within"]["estimate"]
        tau = float(tau_rows.iloc[0]) if len(tau_rows) else float("nan")
        share = (0.5 * math.erfc(beta / tau / math.sqrt(2.0)) if tau > 0
                 else float(beta < 0))
        rows = [
            _row(name or control, "within", beta, se, truth["within"][1], fit),
            # the design as the reliability rule (models/reliability.py) describes it
            _row(name or control, "fit_sessions_median", fit_sessions_median(fit), float("nan"),
                 float("nan"), fit),
            _row(name or control, "fit_sessions_mean", fit_sessions_mean(fit), float("nan"), float("nan"), fit),
            _row(name or control, "fit_sessions_spread", fit_sessions_spread(fit), float("nan"), float("nan"), fit),
            _row(name or control, "rated_share", rated_share(panel), float("nan"), float("nan"), fit),
            _row(name or control, "prior_controlled", float(fit.model.prior_outcome is True), float("nan"),
                 float("nan"), fit),
            _row(name or control, "slope_sd", tau, float("nan"), truth["slope_sd"], fit),
            _row(name or control, "share", share, float("nan"), truth["share_beneficial"], fit),
        ]
        if slope_lrt:
            from pylme_alliance.models.slope_test import slope_test

            rejected = slope_test(fit).significant(0.05)
            rows.append(_row(name or control, "slope_lrt_rejects", float(rejected), float("nan"),
                             float(truth["slope_sd"] > 0), fit))
        return rows

    return run


def _between(adjust: bool) -> Callable[..., list[dict[str, Any]]]:
    """Between level effect from between_effect() (H5), unadjusted or intake-adjusted."""

    def run(panel: Any, truth: dict[str, Any], engine: str) -> list[dict[str, Any]]:
        from pylme_alliance.analyses.between import between_fit

        fit, info = between_fit(panel, adjust_intake=adjust, engine=engine)
        row = fit.fixed_table.set_index("term").loc["alliance_level"]
        key = info["level"] + ("_adjusted" if adjust else "")
        name = "between_adj" if adjust else "between"
        return [_row(name, f"between_{info['level']}", row["estimate"], row["std_error"],
                     truth["between_level"][key], fit)]

    return run


#: Pluggable estimators: name -> function(panel, truth, engine) -> rows.
ESTIMATORS: dict[str, Callable[..., list[dict[str, Any]]]] = {
    "decomposed": _lagged_model("decomposed", slope_lrt=True),  # the default model
    "decomposed_nolrt": _lagged_model("decomposed", name="decomposed"),  # same, without the LRT refit
    # same, the random slope decided as analyze() does (dropped where it cannot be estimated)
    "decomposed_auto": _lagged_model("decomposed", name="decomposed", slope="auto"),
    "decomposed_t": _lagged_model("decomposed", False, "decomposed_t"),  # without the outcome before
    "raw": _lagged_model("raw", False),                         # the model before issue 9
    "raw_lrt": _lagged_model("raw", False, "raw", slope_lrt=True),  # same, with the slope LRT
    "between": _between(False),
    "between_adj": _between(True),
}


def thin_alliance(data: pd.DataFrame, every: int) -> pd.DataFrame:
    """A copy of ``data`` with the alliance rated only at sessions 1, 1 + k, 1 + 2k, ...
    (NaN elsewhere; the outcome is kept: the sessions are attended, not rated)."""
    out = data.copy()
    out.loc[(out["session"] - 1) % every != 0, "alliance"] = np.nan
    return out


def replicate(design: str, seed: int, engine: str, estimators: tuple[str, ...]) -> list[dict[str, Any]]:
    """One replication: simulate, prepare, fit every estimator; failures become rows."""
    from pylme_alliance.panel.prepare import prepare
    from pylme_alliance.simulation.simulate import simulate

    options = dict(DESIGNS[design])
    every = options.pop("rated_every", None)
    sim = simulate(seed=seed, **options)
    data = sim.data if every is None else thin_alliance(sim.data, every)
    panel = prepare(data, patient="patient", session="session", alliance="alliance",
                    outcome="outcome", therapist="therapist", leads=(1,))
    rows: list[dict[str, Any]] = []
    for name in estimators:
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # flags are kept on the rows
                out = ESTIMATORS[name](panel, sim.truth, engine)
        except Exception as exc:  # one failed fit must not end the study
            out = [{"estimator": name, "quantity": "error", "estimate": float("nan"), "se": float("nan"),
                    "truth": float("nan"), "converged": False, "singular": False, "error": str(exc)[:200]}]
        seconds = time.perf_counter() - t0
        for r in out:
            r.update(design=design, seed=seed, engine=engine, seconds=seconds)
        rows.extend(out)
    return rows


def summarise(raw: pd.DataFrame) -> pd.DataFrame:
    """Bias, empirical SD vs mean SE, coverage and failure rates per cell."""
    raw = raw[raw["quantity"] != "error"]
    keys = ["design", "engine", "estimator", "quantity"]
    out = []
    for key, g in raw.groupby(keys, sort=False):
        ok = g[np.isfinite(g["estimate"])]
        truth = float(ok["truth"].mean()) if len(ok) else float("nan")
        err = ok["estimate"] - ok["truth"]
        bias = float(err.mean()) if len(ok) else float("nan")
        has_se = np.isfinite(ok["se"]).any()
        cover = ((ok["estimate"] - Z95 * ok["se"] <= ok["truth"]) & (ok["truth"] <= ok["estimate"] + Z95 * ok["se"]))
        out.append(dict(zip(keys, key)) | {
            "reps": len(g), "truth": truth, "mean_est": float(ok["estimate"].mean()),
            "bias": bias, "bias_pct": 100 * bias / abs(truth) if truth else float("nan"),
            "mc_se_bias": float(err.std(ddof=1) / math.sqrt(len(ok))) if len(ok) > 1 else float("nan"),
            "emp_sd": float(ok["estimate"].std(ddof=1)) if len(ok) > 1 else float("nan"),
            "mean_se": float(ok["se"].mean()) if has_se else float("nan"),
            "coverage": float(cover.mean()) if has_se else float("nan"),
            "nonconv": float(1 - g["converged"].mean()), "singular": float(g["singular"].mean()),
            "sec_per_fit": float(g["seconds"].mean()),
        })
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--designs", nargs="+", default=list(DESIGNS), choices=list(DESIGNS))
    parser.add_argument("--engines", nargs="+", default=["lme4"], choices=["lme4", "nlme"])
    parser.add_argument("--estimators", nargs="+", default=list(ESTIMATORS), choices=list(ESTIMATORS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed0", type=int, default=1, help="first seed")
    parser.add_argument("--out", help="write the summary table (CSV)")
    parser.add_argument("--raw", help="write every replication's rows (CSV)")
    args = parser.parse_args(argv)
    tasks = [(d, args.seed0 + r, e, tuple(args.estimators))
             for e in args.engines for d in args.designs for r in range(args.reps)]
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    if args.workers <= 1:
        for task in tasks:
            rows.extend(replicate(*task))
    else:
        ctx = multiprocessing.get_context("spawn")  # a fresh R per worker, never a forked one
        with ProcessPoolExecutor(max_workers=args.workers, mp_context=ctx) as pool:
            futures = [pool.submit(replicate, *task) for task in tasks]
            for i, fut in enumerate(futures, 1):
                rows.extend(fut.result())
                if i % max(1, len(futures) // 20) == 0:
                    print(f"  {i}/{len(futures)} replications, {time.perf_counter() - t0:.0f} s",
                          file=sys.stderr, flush=True)
    raw = pd.DataFrame(rows)
    if args.raw:
        raw.to_csv(args.raw, index=False)
    errors = raw[raw["quantity"] == "error"]
    table = summarise(raw)
    if args.out:
        table.to_csv(args.out, index=False)
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(table.drop(columns=["mc_se_bias"]).round(3).to_string(index=False))
    if len(errors):
        print(f"\n{len(errors)} failed fits, e.g. {errors['error'].iloc[0]}")
    print(f"\n{len(tasks)} replications in {time.perf_counter() - t0:.0f} s wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
