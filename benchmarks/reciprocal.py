"""Reciprocal dynamics (issue 19): CPU per fit and recovery of both paths and the
impulse responses by RI-CLPM, DPM and the MLM pair.

The generator is tests/reciprocal_data.py (patient-specific correlated trends in both
series, a common early drop, within-person VAR(1), gaps, missing alliance, symptom-driven
dropout), independent of pylme_alliance.simulate.

    PYTHONPATH=src:tests python benchmarks/reciprocal.py speed
    PYTHONPATH=src:tests nice python benchmarks/reciprocal.py recovery --reps 60 --out /tmp/rec.csv
    PYTHONPATH=src:tests python benchmarks/reciprocal.py table /tmp/rec.csv

``recovery`` appends one row per trial, method and quantity to ``--out`` as it goes (a
stopped run keeps what it finished; a restarted one skips finished trials); ``table``
prints bias, SD/SE, coverage and their Monte Carlo SEs.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import pylme_alliance as pa  # noqa: E402

import reciprocal_data as rd  # noqa: E402

DESIGNS = {"effects": rd.Dynamics(), "zero": replace(rd.Dynamics(), c_ay=0.0, c_ya=0.0)}
METHODS = ("riclpm", "dpm", "mlm")


def panel_of(data: pd.DataFrame) -> pa.AlliancePanel:
    return pa.prepare(data, patient="patient", session="session", alliance="alliance", outcome="outcome",
                      leads=(1,))


def speed(reps: int) -> None:
    """CPU per fit at 400 patients x 10 waves (sessions 1..10; more sessions fall outside)."""
    data = rd.generate(400, seed=2024, min_sessions=10, max_sessions=20)
    panel = panel_of(data)
    pa.reciprocal(panel, waves=10)  # warm-up: starts R, loads lavaan
    print(f"400 patients, {len(data)} sessions; waves = 10; CPU seconds per fit (process time, R in-process)")
    for method in METHODS:
        times = []
        for _ in range(reps):
            start = time.process_time()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = pa.reciprocal(panel, method=method, **({} if method == "mlm" else {"waves": 10}))
            times.append(time.process_time() - start)
        a = fit.path("alliance->outcome")
        print(f"{method:7s} median {np.median(times):.2f} s  (runs {', '.join(f'{t:.2f}' for t in times)}); "
              f"alliance->outcome {a['estimate']:.3f} (SE {a['std_error']:.3f}), iterations {fit.iterations}")


def trial_rows(design: str, seed: int, methods: tuple[str, ...]) -> list[dict]:
    truth = DESIGNS[design]
    panel = panel_of(rd.generate(400, seed=seed, dynamics=truth))
    rows = []
    for method in methods:
        start = time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = pa.reciprocal(panel, method=method)
        cpu = time.process_time() - start
        quantities = {
            "alliance->outcome": (fit.path("alliance->outcome"), truth.c_ay),
            "outcome->alliance": (fit.path("outcome->alliance"), truth.c_ya),
        }
        for lead in (1, 2, 3):
            for source, response, index in (("alliance", "outcome", 1), ("outcome", "alliance", 0)):
                row = fit.impulse[(fit.impulse["source"] == source) & (fit.impulse["lead"] == lead)
                                  & (fit.impulse["response"] == response)].iloc[0]
                quantities[f"IR {source}->{response} lead {lead}"] = (row, truth.impulse(lead, source)[index])
        for name, (row, true) in quantities.items():
            rows.append({"design": design, "seed": seed, "method": method, "quantity": name, "truth": true,
                         "estimate": row["estimate"], "std_error": row["std_error"], "conf_low": row["conf_low"],
                         "conf_high": row["conf_high"], "admissible": fit.admissible,
                         "converged": fit.converged, "waves": fit.waves, "cpu": cpu})
    return rows


def recovery(reps: int, designs: list[str], methods: tuple[str, ...], out: Path) -> None:
    done = set()
    if out.exists():
        old = pd.read_csv(out)
        done = set(zip(old["design"], old["seed"], old["method"]))
    for seed in range(1, reps + 1):
        for design in designs:
            todo = tuple(m for m in methods if (design, seed, m) not in done)
            if not todo:
                continue
            frame = pd.DataFrame(trial_rows(design, seed, todo))
            frame.to_csv(out, mode="a", header=not out.exists(), index=False)
            print(f"{design} seed {seed}: {', '.join(todo)} done", flush=True)


def table(path: Path) -> pd.DataFrame:
    """Bias, SD/SE and coverage with Monte Carlo SEs, per design, method and quantity."""
    raw = pd.read_csv(path)
    raw["covered"] = (raw["conf_low"] <= raw["truth"]) & (raw["truth"] <= raw["conf_high"])
    out = []
    for (design, method, quantity), g in raw.groupby(["design", "method", "quantity"], sort=False):
        n = len(g)
        truth = g["truth"].mean()
        err = g["estimate"] - g["truth"]
        sd = g["estimate"].std(ddof=1)
        cover = g["covered"].mean()
        out.append({
            "design": design, "method": method, "quantity": quantity, "trials": n, "truth": truth,
            "bias": err.mean(), "bias_mcse": sd / np.sqrt(n),
            "bias_pct": 100 * err.mean() / truth if truth != 0 else np.nan,
            "sd_over_se": sd / g["std_error"].mean(), "coverage": cover,
            "coverage_mcse": np.sqrt(cover * (1 - cover) / n),
            "inadmissible": 1 - g["admissible"].mean(), "cpu": g["cpu"].mean(),
        })
    return pd.DataFrame(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--reps", type=int, default=3)
    r = sub.add_parser("recovery")
    r.add_argument("--reps", type=int, default=50)
    r.add_argument("--designs", nargs="+", default=list(DESIGNS), choices=list(DESIGNS))
    r.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    r.add_argument("--out", type=Path, required=True)
    t = sub.add_parser("table")
    t.add_argument("path", type=Path)
    args = parser.parse_args()
    if args.command == "speed":
        speed(args.reps)
    elif args.command == "recovery":
        recovery(args.reps, args.designs, tuple(args.methods), args.out)
    else:
        with pd.option_context("display.width", 200, "display.max_rows", 500):
            print(table(args.path).to_string(index=False, float_format="{:.4g}".format))


if __name__ == "__main__":
    main()
