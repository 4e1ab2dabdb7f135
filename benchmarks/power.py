"""Fits per CPU-second of power() against a plain-R loop over the same replicates.

One design (``--patients`` patients, 40 therapists or one per 5 patients, simulate()'s
defaults otherwise), ``--sims`` replicates, effect "within", the default alliance model:

  (a) power() serially in this process: CPU time of the whole call (simulate, prepare,
      the batched lme4 fits in R, the tests); R is started and warmed before timing.
  (b) power() on a 2-process spawn pool (executors.process_pool(2)): wall time, and CPU
      time of parent + workers (getrusage of the reaped children). "cold" includes the
      workers' start (R + packages); "warm" is a second call on the same pool.
  (c) plain R, one Rscript reading the exact model frames power() fitted (written to a
      CSV here) and timing with proc.time, start-up and reading excluded:
        lmer    lme4::lmer on each replicate's own frame (what power() must do: the
                lagged outcome and the alliance differ between replicates)
        refit   lme4::refit(first_fit, newresp) on replicate 1's design with the other
                replicates' responses (the issue's "plain-R refit loop"; REML fits, which
                lme4 1.1-31's refit does not reproduce: see r/power.R)
        lmerTest  lmerTest::lmer + summary() (Satterthwaite df) on each frame

Prints fits per CPU-second and the ratios the issue targets (>= 0.9x plain-R refit
serially; >= 1.8x serial on 2 workers, read here as wall-clock throughput).

    PYTHONPATH=src .venv/bin/python benchmarks/power.py [--patients 200] [--sims 40] [--seed 1]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd

R_SCRIPT = r"""
args <- commandArgs(trailingOnly = TRUE)
path <- args[[1]]; formula_text <- args[[2]]
suppressPackageStartupMessages({library(lme4); library(lmerTest)})
d <- utils::read.csv(path, stringsAsFactors = FALSE)
d$patient <- factor(d$patient); d$therapist <- factor(d$therapist)
frames <- split(d, d$replicate)
f <- stats::as.formula(formula_text)
response <- all.vars(f[[2L]])
cpu <- function(expr) { t <- proc.time(); force(expr); u <- proc.time() - t; unname(u[["user.self"]] + u[["sys.self"]]) }
# warm-up: loads the code paths, as power() is warmed before it is timed
m <- lme4::lmer(f, data = frames[[1]]); m2 <- lmerTest::lmer(f, data = frames[[1]])
n <- length(frames)
lmer_cpu <- cpu(for (k in seq_len(n)) m <- lme4::lmer(f, data = frames[[k]]))
first <- lme4::lmer(f, data = frames[[1]])
# the other replicates' observed responses, cut or recycled to replicate 1's complete rows
# (full length, missing where replicate 1's response is missing: refit drops those rows)
used <- !is.na(frames[[1]][[response]])
newresp <- lapply(frames, function(x) {
  y <- x[[response]]; out <- rep(NA_real_, length(used)); out[used] <- rep_len(y[!is.na(y)], sum(used)); out
})
refit_cpu <- cpu(for (k in seq_len(n)) r <- lme4::refit(first, newresp = newresp[[k]]))
lt_cpu <- cpu(for (k in seq_len(n)) { m <- lmerTest::lmer(f, data = frames[[k]]); co <- summary(m)$coefficients })
cat(sprintf('{"n": %d, "lmer": %.4f, "refit": %.4f, "lmerTest": %.4f}\n', n, lmer_cpu, refit_cpu, lt_cpu))
"""


def _cpu_self() -> float:
    return time.process_time()


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _design(patients: int) -> dict:
    return {"n_therapists": min(40, max(1, patients // 5))}


def _frames(result, patients: int) -> tuple[pd.DataFrame, str]:
    """The model frames power() fitted, one block per replicate, and the formula."""
    from pylme_alliance import simulate
    from pylme_alliance.models.model import AllianceModel
    from pylme_alliance.simulation._power_fit import _prepare

    model = AllianceModel()
    blocks, formula = [], ""
    reps = result.replicates
    for row in reps[reps["effect"] == "within"].itertuples():
        sim = simulate(n_patients=patients, **_design(patients), seed=int(row.seed))
        panel = _prepare(sim.data, model, ())
        spec = model.spec(panel)
        formula = spec.formula
        frame = model.model_frame(panel)
        columns = [c for c in frame.columns if c in formula.replace("(", " ").replace(")", " ").replace("|", " ")
                   .replace(":", " ").replace("+", " ").replace("~", " ").split()]
        frame = frame[columns].copy()
        frame.insert(0, "replicate", int(row.replicate))
        blocks.append(frame)
    return pd.concat(blocks, ignore_index=True), formula


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--sims", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-pool", action="store_true")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    import pylme_alliance as pa
    from pylme_alliance import executors

    common = dict(n_patients=args.patients, design=_design(args.patients), n_sims=args.sims, seed=args.seed,
                  progress=False)
    pa.power(**{**common, "n_sims": 2})  # warm R, lme4 and the code paths (not timed)

    cpu0, wall0 = _cpu_self(), time.perf_counter()
    serial = pa.power(**common)
    serial_cpu, serial_wall = _cpu_self() - cpu0, time.perf_counter() - wall0
    n_fits = int((~serial.replicates["failed"]).sum())
    print(f"design: {args.patients} patients, {args.sims} replicates, "
          f"{serial.replicates['n_patients'].iloc[0]} patients each; {n_fits} fits ok")
    print(f"(a) power() serial:   {serial_cpu:7.2f} s CPU  {serial_wall:7.2f} s wall  "
          f"{n_fits / serial_cpu:6.2f} fits/CPU-s")

    pool_line = {}
    if not args.skip_pool:
        child0, cpu0, wall0 = _cpu_children(), _cpu_self(), time.perf_counter()
        pool = executors.process_pool(2)
        try:
            cold = pa.power(**common, executor=pool)
            cold_wall = time.perf_counter() - wall0
            wall1 = time.perf_counter()
            warm = pa.power(**common, executor=pool)
            warm_wall = time.perf_counter() - wall1
        finally:
            pool.shutdown(wait=True)
        total_cpu = (_cpu_self() - cpu0) + (_cpu_children() - child0)
        same = serial.replicates.equals(cold.replicates) and serial.replicates.equals(warm.replicates)
        pool_line = {"cold": cold_wall, "warm": warm_wall}
        print(f"(b) power() 2 workers: cold {cold_wall:6.2f} s wall ({serial_wall / cold_wall:4.2f}x serial), "
              f"warm {warm_wall:6.2f} s wall ({serial_wall / warm_wall:4.2f}x serial); "
              f"CPU of both calls incl. workers {total_cpu:6.2f} s "
              f"({2 * n_fits / total_cpu:5.2f} fits/CPU-s); identical replicates: {same}")

    frames, formula = _frames(serial, args.patients)
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "frames.csv"
        frames.to_csv(csv, index=False)
        script = Path(tmp) / "loop.R"
        script.write_text(R_SCRIPT)
        out = subprocess.run(["Rscript", str(script), str(csv), formula], capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"Rscript failed:\n{out.stderr}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    n = r["n"]
    print(f"(c) plain R lmer:     {r['lmer']:7.2f} s CPU  {n / r['lmer']:6.2f} fits/CPU-s")
    print(f"    plain R refit:    {r['refit']:7.2f} s CPU  {n / r['refit']:6.2f} fits/CPU-s")
    print(f"    plain R lmerTest: {r['lmerTest']:7.2f} s CPU  {n / r['lmerTest']:6.2f} fits/CPU-s")
    ours = n_fits / serial_cpu
    print(f"ratios: power()/plain lmer {ours / (n / r['lmer']):.2f}x, power()/plain refit "
          f"{ours / (n / r['refit']):.2f}x, power()/plain lmerTest {ours / (n / r['lmerTest']):.2f}x"
          + (f"; 2 workers warm {serial_wall / pool_line['warm']:.2f}x serial wall" if pool_line else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
