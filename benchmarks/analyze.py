"""analyze() on the bundled trial: CPU time against the same R work in plain R, and wall
time serially against a 2-process executor.

1. In a child process, one analyze() run is recorded (R wrappers around the package's R
   fit, interval, contrast and prediction functions save each fit's data frame, formula
   objects and options, and what was asked of each fit, in call order).
2. ``benchmarks/analyze_equivalent.R`` replays that work with the stock R functions
   (lmerTest::lmer + summary, nlme::lme + summary, confint profile, contest1D, ranef,
   predict) and reports its CPU time per rep (package loading and reading excluded).
3. Here: analyze() (serial, progress off) CPU time per rep, R included (it is embedded),
   after one warm-up run; then wall time serially and with
   ``executors.process_pool(2)`` (warmed: one analyze() on it first, pools are reusable).

Targets (issue 12): CPU analyze()/R <= 1.2; wall serial/pool >= 1.6.

    PYTHONPATH=src nice .venv/bin/python benchmarks/analyze.py [--reps 3] [--checks ar1|none]
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

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = dict(leads=(1, 2, 3), moderators=["severity", "arm"], progress=False)

RECORDER = r"""
function(e, dir) {
  counter <- 0L
  nxt <- function() { counter <<- counter + 1L; counter }
  path <- function(k) file.path(dir, sprintf("%04d.rds", k))
  tag <- function(fit, k) { attr(fit, "bench_id") <- k; fit }
  id <- function(fit) { k <- attr(fit, "bench_id"); if (is.null(k)) NA_integer_ else k }
  fit_lmer <- get("pylme_fit_lmer", envir = e)
  assign("pylme_fit_lmer", function(env, formula, reml, ddf, control, names = NULL) {
    out <- fit_lmer(env, formula, reml, ddf, control, names)
    if (!is.null(out$fit)) {
      k <- nxt(); out$fit <- tag(out$fit, k)
      saveRDS(list(kind = "lmer", id = k, data = env$data, reml = reml, ddf = ddf, control = as.list(control),
                   formula = get("pylme_formula", envir = e)(formula, env, names)), path(k))
    }
    out
  }, envir = e)
  fit_lme <- get("pylme_fit_lme", envir = e)
  assign("pylme_fit_lme", function(env, fixed, random, correlation, reml, control, names = NULL) {
    out <- fit_lme(env, fixed, random, correlation, reml, control, names)
    if (!is.null(out$fit)) {
      k <- nxt(); out$fit <- tag(out$fit, k)
      saveRDS(list(kind = "lme", id = k, data = env$data, control = as.list(control),
                   method = if (isTRUE(reml)) "REML" else "ML",
                   fixed = get("pylme_formula", envir = e)(fixed, env, names),
                   random = get("pylme_nlme_random", envir = e)(random, env, names),
                   correlation = get("pylme_nlme_correlation", envir = e)(correlation, env, names)), path(k))
    }
    out
  }, envir = e)
  wrap <- function(name, kind, record) {
    original <- get(name, envir = e)
    assign(name, function(fit, ...) {
      saveRDS(c(list(kind = kind, fit = id(fit)), record(...)), path(nxt()))
      original(fit, ...)
    }, envir = e)
  }
  wrap("pylme_lmer_sd_interval", "sd_interval",
       function(group, term, level) list(name = paste0("sd_", term, "|", group), level = level))
  wrap("pylme_lmer_contrast", "contrast", function(L, ddf) list(L = L, ddf = ddf))
  wrap("pylme_lmer_ran_vals", "ran_vals", function() list())
  wrap("pylme_lmer_predict", "predict", function(newdata, include_random)
    list(newdata = newdata, include_random = include_random))
  wrap("pylme_lmer_augment", "augment", function() list())
  invisible(NULL)
}
"""


def _panel():
    import pylme_alliance as pa

    data = pa.load_example()
    return pa.prepare(data, patient="patient", session="session", alliance="alliance", outcome="outcome",
                      therapist="therapist", time="day", leads=(1, 2, 3), moderators=["severity", "arm"],
                      outcome_better="lower")


def record(directory: str, checks: tuple[str, ...]) -> None:
    """Child process: one recorded analyze() run."""
    import rpy2.robjects as ro

    import pylme_alliance as pa
    from pylme_alliance.bridge import session

    warnings.simplefilter("ignore")
    panel = _panel()
    env = session.private_env()
    with session.lock:
        ro.r(RECORDER)(env, directory)
    pa.analyze(panel, **OPTIONS, checks=checks)


def r_equivalent(checks: tuple[str, ...], reps: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="pylme-analyze-bench-") as directory:
        env = {"PYTHONPATH": str(ROOT / "src")}
        import os

        subprocess.run([sys.executable, __file__, "--record", directory, "--checks", *(checks or ["none"])],
                       check=True, env={**os.environ, **env})
        out = subprocess.run(["Rscript", str(ROOT / "benchmarks" / "analyze_equivalent.R"), directory, str(reps)],
                             check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--checks", nargs="+", default=["ar1"], help="'ar1' (default) or 'none'")
    parser.add_argument("--record", help=argparse.SUPPRESS)
    parser.add_argument("--no-pool", action="store_true", help="skip the wall-time comparison")
    args = parser.parse_args()
    checks = tuple(c for c in args.checks if c != "none")
    if args.record:
        record(args.record, checks)
        return

    import pylme_alliance as pa
    from pylme_alliance import executors

    warnings.simplefilter("ignore")
    r = r_equivalent(checks, args.reps)
    r_cpu = [rep["total"] for rep in r["reps"]]
    print(f"plain R ({r['n_records']} recorded calls): CPU per rep {', '.join(f'{t:.2f}' for t in r_cpu)} s; "
          f"parts of the best: {min(r['reps'], key=lambda x: x['total'])}")

    panel = _panel()
    pa.analyze(panel, **OPTIONS, checks=checks)  # warm-up: R started, packages and code paths loaded
    py_cpu, serial_wall = [], []
    for _ in range(args.reps):
        wall, cpu = time.perf_counter(), time.process_time()
        report = pa.analyze(panel, **OPTIONS, checks=checks)
        py_cpu.append(time.process_time() - cpu)
        serial_wall.append(time.perf_counter() - wall)
    print(f"analyze() serial: CPU per rep {', '.join(f'{t:.2f}' for t in py_cpu)} s; wall "
          f"{', '.join(f'{t:.2f}' for t in serial_wall)} s")
    print("  parts of the last rep (s): " + ", ".join(f"{t['part']} {t['seconds']:.2f}"
                                                   for t in report.provenance["timings"]["parts"]))
    ratio = min(py_cpu) / min(r_cpu)
    print(f"CPU analyze()/R, best of {args.reps} each: {min(py_cpu):.2f} / {min(r_cpu):.2f} = {ratio:.2f} "
          f"(median {statistics.median(py_cpu) / statistics.median(r_cpu):.2f}; target <= 1.2)")
    if args.no_pool:
        return
    with executors.process_pool(2) as pool:
        pa.analyze(panel, **OPTIONS, checks=checks, executor=pool)  # warm the workers (reusable pool)
        pool_wall = []
        for _ in range(args.reps):
            wall = time.perf_counter()
            pooled = pa.analyze(panel, **OPTIONS, checks=checks, executor=pool)
            pool_wall.append(time.perf_counter() - wall)
    same = all(report.tables[k].equals(pooled.tables[k]) for k in report.tables) and list(report.tables) == list(
        pooled.tables)
    print(f"analyze() on process_pool(2): wall {', '.join(f'{t:.2f}' for t in pool_wall)} s; tables identical "
          f"to serial: {same}")
    print("  parts of the last rep (s, in the worker that ran each): "
          + ", ".join(f"{t['part']} {t['seconds']:.2f}" for t in pooled.provenance["timings"]["parts"]))
    print(f"wall serial/pool, best of {args.reps} each: {min(serial_wall):.2f} / {min(pool_wall):.2f} = "
          f"{min(serial_wall) / min(pool_wall):.2f} (median {statistics.median(serial_wall) / statistics.median(pool_wall):.2f};"
          " target >= 1.6)")


if __name__ == "__main__":
    main()
