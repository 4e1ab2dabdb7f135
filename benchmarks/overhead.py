"""What pylme_alliance adds on top of plain R for one lmer fit + tidy (Satterthwaite).

Model, on simulated alliance data prepared with ``pylme_alliance.prepare``:

    outcome_lead1 ~ outcome + session + alliance_within + alliance_between
                    + (1 + alliance_within | patient) + (1 | therapist)

For ~5,000 and ~50,000 rows, time per fit (median of N reps; N=5 / 3):
  (a) pylme_alliance.lmer(...).tidy()           (Python, embedded R)
  (b) plain R: one Rscript reads the same data from CSV and loops the identical
      lmerTest::lmer + summary(m)$coefficients, each rep timed with system.time
      (R start-up and reading excluded)
  (c) statsmodels MixedLM (median of --sm-reps, 3 / 1: it is slow) on the nested part (groups=patient,
      re_formula="~alliance_within", no therapist)
and report pylme/R (target <= 1.10) and statsmodels/R. The same Rscript also times
the package's own R fit function (r/lme4.R pylme_fit_lmer) and its parts, so any
overhead can be attributed to Python or to R-side extra work.

    PYTHONPATH=src .venv/bin/python benchmarks/overhead.py [--sizes 700,7000] [--reps 5,3] [--sm-reps 3,1]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
FORMULA = ("outcome_lead1 ~ outcome + session + alliance_within + alliance_between"
           " + (1 + alliance_within | patient) + (1 | therapist)")
COLUMNS = ["outcome_lead1", "outcome", "session", "alliance_within", "alliance_between",
           "patient", "therapist"]

R_SCRIPT = r"""
args <- commandArgs(trailingOnly = TRUE)
path <- args[[1]]; reps <- as.integer(args[[2]]); rdir <- args[[3]]
suppressPackageStartupMessages({library(lme4); library(lmerTest)})
d <- utils::read.csv(path, stringsAsFactors = FALSE)
d$patient <- factor(d$patient); d$therapist <- factor(d$therapist)
f <- outcome_lead1 ~ outcome + session + alliance_within + alliance_between +
  (1 + alliance_within | patient) + (1 | therapist)
el <- function(expr) unname(system.time(expr)[["elapsed"]])
# warm-up (loads lmerTest/Matrix code paths, as the Python side does on its first fit)
m <- lmerTest::lmer(f, data = d); co <- summary(m)$coefficients
plain <- numeric(reps)
for (k in seq_len(reps)) plain[k] <- el({m <- lmerTest::lmer(f, data = d); co <- summary(m)$coefficients})

# the package's own R fit function and its parts, on the same data
pkg <- new.env()
for (p in sort(list.files(rdir, pattern = "[.]R$", full.names = TRUE))) sys.source(p, envir = pkg)
pk <- numeric(reps)
for (k in seq_len(reps)) pk[k] <- el({
  env <- new.env(parent = pkg); env$data <- d
  r <- pkg$pylme_fit_lmer(env, formula = paste(deparse(f), collapse = " "), reml = TRUE,
                          ddf = "satterthwaite", control = NULL)
})
fit <- r$fit
parts <- c(
  lmer_only = el(lmerTest::lmer(f, data = d)),
  summary_satterthwaite = el(pkg$pylme_lmer_fixed(fit, "satterthwaite")),
  ran_pars = el(pkg$pylme_lmer_ran_pars(fit)),
  glance = el(pkg$pylme_lmer_glance(fit)),
  isSingular = el(lme4::isSingular(fit)),
  logLik_AIC_BIC = el({stats::logLik(fit); stats::AIC(fit); stats::BIC(fit)}),
  used_rows = el(pkg$pylme_used_rows(attr(stats::model.frame(fit), "na.action"), nrow(d))),
  fixef = el(lme4::fixef(fit))
)
cat(jsonlite_free <- paste0('{"plain":[', paste(plain, collapse = ","), '],',
  '"pkg_fit":[', paste(pk, collapse = ","), '],',
  '"parts":{', paste0('"', names(parts), '":', parts, collapse = ","), '},',
  '"nobs":', nobs(m), '}'), "\n")
"""


def make_data(n_patients: int, seed: int) -> pd.DataFrame:
    import pylme_alliance as pa

    sim = pa.simulate(n_patients=n_patients, seed=seed)
    panel = pa.prepare(sim.data, patient="patient", session="session", alliance="alliance",
                       outcome="outcome", therapist="therapist")
    return panel.data


def time_pylme(data: pd.DataFrame, reps: int) -> tuple[list[float], dict[str, float]]:
    import pylme_alliance as pa
    from pylme_alliance import bridge
    from pylme_alliance.engines import _common

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pa.lmer(FORMULA, data).tidy()  # warm-up: starts R, loads lme4/lmerTest
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            fit = pa.lmer(FORMULA, data)
            fit.tidy()
            times.append(time.perf_counter() - t)
        # where the Python side spends it, one more fit, stage by stage
        stages: dict[str, float] = {}
        t = time.perf_counter()
        info = _common.parse_formula(FORMULA)
        stages["parse_formula (R str2lang)"] = time.perf_counter() - t
        t = time.perf_counter()
        frame = _common.check_data(data, [info])
        stages["check_data (pandas)"] = time.perf_counter() - t
        t = time.perf_counter()
        bridge.to_r(frame)
        stages["to_r (conversion)"] = time.perf_counter() - t
        t = time.perf_counter()
        result, conditions = _common.fit_in_r("pylme_fit_lmer", frame, formula=FORMULA, reml=True,
                                              ddf="satterthwaite", control=None)
        stages["fit_in_r (convert + R fit + R tables + to_python)"] = time.perf_counter() - t
        t = time.perf_counter()
        fit = _common.make_fit("lme4", FORMULA, data, frame, result, conditions,
                               _common.RBackend("lmer", result["fit"]), {})
        stages["make_fit (pandas)"] = time.perf_counter() - t
        t = time.perf_counter()
        fit.tidy()
        stages["tidy()"] = time.perf_counter() - t
    return times, stages


def time_r(data: pd.DataFrame, reps: int, tmp: Path) -> dict:
    csv = tmp / "alliance.csv"
    script = tmp / "bench.R"
    data[COLUMNS].to_csv(csv, index=False)  # incomplete rows too: R drops them, as in pylme
    script.write_text(R_SCRIPT)
    out = subprocess.run(["Rscript", str(script), str(csv), str(reps), str(ROOT / "r")],
                         capture_output=True, text=True, check=True)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1]
    return json.loads(line)


def time_statsmodels(data: pd.DataFrame, reps: int) -> list[float]:
    import statsmodels.formula.api as smf

    complete = data[COLUMNS].dropna().reset_index(drop=True)
    complete["patient"] = complete["patient"].astype(str)
    times = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(reps):
            t = time.perf_counter()
            model = smf.mixedlm("outcome_lead1 ~ outcome + session + alliance_within + alliance_between",
                                complete, groups="patient", re_formula="~alliance_within")
            result = model.fit(reml=True)
            result.summary()
            times.append(time.perf_counter() - t)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="700,7000", help="n_patients per data set (~7.5 rows each)")
    parser.add_argument("--reps", default="5,3")
    parser.add_argument("--sm-reps", default="3,1", help="statsmodels reps per size (it is slow)")
    parser.add_argument("--no-statsmodels", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    reps = [int(r) for r in args.reps.split(",")]
    sm_reps = [int(r) for r in args.sm_reps.split(",")]

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for n_patients, n_reps, n_sm in zip(sizes, reps, sm_reps):
            data = make_data(n_patients, seed=2024)
            n_complete = len(data[COLUMNS].dropna())
            print(f"\n=== {n_patients} patients: {len(data):,} rows, {n_complete:,} complete "
                  f"(model rows), {n_reps} reps ===")
            py, stages = time_pylme(data, n_reps)
            r = time_r(data, n_reps, tmp)
            med_py = statistics.median(py)
            med_r = statistics.median(r["plain"])
            med_pkg = statistics.median(r["pkg_fit"])
            assert r["nobs"] == n_complete, (r["nobs"], n_complete)
            print(f"(a) pylme lmer+tidy  : {med_py:7.3f} s   reps {', '.join(f'{x:.3f}' for x in py)}")
            print(f"(b) plain R          : {med_r:7.3f} s   reps {', '.join(f'{x:.3f}' for x in r['plain'])}")
            print(f"    pylme_fit_lmer in Rscript: {med_pkg:7.3f} s  (the package's R side alone)")
            print(f"    pylme / R = {med_py / med_r:.2f}  (target <= 1.10)")
            if not args.no_statsmodels:
                sm = time_statsmodels(data, n_sm)
                med_sm = statistics.median(sm)
                print(f"(c) statsmodels      : {med_sm:7.3f} s   reps {', '.join(f'{x:.3f}' for x in sm)}")
                print(f"    statsmodels / R = {med_sm / med_r:.2f}")
            print("    Python stages of one pylme fit (s):")
            for name, value in stages.items():
                print(f"      {name:52s} {value:7.3f}")
            print("    R parts on the fitted model (Rscript, s):")
            for name, value in r["parts"].items():
                print(f"      {name:52s} {value:7.3f}")


if __name__ == "__main__":
    sys.exit(main())
