"""How far each engine scales: prepare() + the default alliance model on large trials.

For each size (patients, 12 sessions each, one therapist per 20 patients) and engine
(lme4, nlme, glmmTMB), a fresh child process simulates the trial, runs prepare() and
fits ``AllianceModel(engine=...)`` (lead 1, therapist nested, random slope, iid
residuals: the package's default model). The parent reads the child's own resource
usage with ``os.wait4`` (CPU = user + system time, peak RSS = ru_maxrss, R included: it
lives in the child), so every measurement is one process and nothing else. A child that
exceeds ``--timeout`` seconds is killed and recorded as such.

Then, per engine, the growth exponent b of CPU time ~ a * rows^b and of peak RSS
(log-log least squares over the measured sizes), and the sizes not measured (or killed)
are extrapolated from it, marked "extrapolated" in the table.

    PYTHONPATH=src nice .venv/bin/python benchmarks/scale.py                     # 10k, 50k, 200k patients
    PYTHONPATH=src nice .venv/bin/python benchmarks/scale.py --sizes 1000 2500 5000 --engines lme4 nlme
    PYTHONPATH=src .venv/bin/python benchmarks/scale.py --json results.json     # also write the table as JSON
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SESSIONS = 12
PATIENTS_PER_THERAPIST = 20
ENGINES = ("lme4", "nlme", "glmmtmb")


def child(n_patients: int, engine: str) -> None:
    """Run in the child: simulate, prepare, fit; print one JSON line of stage times."""
    import warnings

    import pylme_alliance as pa
    from pylme_alliance.models.model import AllianceModel

    warnings.simplefilter("ignore")
    cpu = time.process_time
    t0 = cpu()
    data = pa.simulate(n_patients=n_patients, n_therapists=max(2, n_patients // PATIENTS_PER_THERAPIST),
                       sessions=SESSIONS, seed=12).data
    t1 = cpu()
    panel = pa.prepare(data, patient="patient", session="session", alliance="alliance", outcome="outcome",
                       therapist="therapist")
    t2 = cpu()
    pa.lmer("outcome_lead1 ~ 1 + (1 | patient)", panel.data.head(200))  # start R: not the engine's cost
    t3 = cpu()
    fit = AllianceModel(engine=engine).fit(panel)
    t4 = cpu()
    print(json.dumps({"rows": int(len(panel.data)), "model_rows": int(fit.nobs), "simulate_cpu": t1 - t0,
                      "prepare_cpu": t2 - t1, "r_start_cpu": t3 - t2, "fit_cpu": t4 - t3,
                      "converged": bool(fit.converged)}), flush=True)


def measure(n_patients: int, engine: str, timeout: float) -> dict:
    """One child process; its stage times and, from wait4, its CPU time and peak RSS."""
    command = [sys.executable, __file__, "--child", str(n_patients), engine]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                               preexec_fn=lambda: os.nice(10), start_new_session=True)
    killed = False
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() - started > timeout:
            os.killpg(process.pid, signal.SIGKILL)  # our own child's session only
            pid, status, usage = os.wait4(process.pid, 0)
            killed = True
            break
        time.sleep(0.5)
    process.returncode = os.waitstatus_to_exitcode(status)
    out, err = process.stdout.read().decode(), process.stderr.read().decode()
    row = {"patients": n_patients, "engine": engine, "wall_s": time.perf_counter() - started,
           "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_gb": usage.ru_maxrss / 1024 ** 2,
           "status": "killed (timeout)" if killed else ("ok" if process.returncode == 0 else "failed")}
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if lines:
        row.update(json.loads(lines[-1]))
    elif not killed:
        row["error"] = err.strip().splitlines()[-1] if err.strip() else f"exit code {process.returncode}"
    return row


def exponent(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """(a, b) of y = a * x^b by least squares on logs; None with fewer than 2 points."""
    points = [(x, y) for x, y in points if x > 0 and y > 0]
    if len(points) < 2:
        return None
    lx = [math.log(x) for x, _ in points]
    ly = [math.log(y) for _, y in points]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    sxx = sum((v - mx) ** 2 for v in lx)
    if sxx == 0:
        return None
    b = sum((u - mx) * (v - my) for u, v in zip(lx, ly)) / sxx
    return math.exp(my - b * mx), b


def linear(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """(c, d) of y = c + d * x by least squares; None with fewer than 2 points. Memory
    is extrapolated on this line: a fixed base (Python, R, the packages) plus a cost per
    row, where a power law through the base would bend the wrong way."""
    if len(points) < 2:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    d = sum((x - mx) * (y - my) for x, y in points) / sxx
    return my - d * mx, d


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 200_000],
                        help="numbers of patients to measure")
    parser.add_argument("--extrapolate", type=int, nargs="*", default=[10_000, 50_000, 200_000],
                        help="numbers of patients to report, extrapolated when not measured")
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds before a child is killed")
    parser.add_argument("--json", type=Path, help="write the measured and extrapolated rows here")
    parser.add_argument("--child", nargs=2, metavar=("PATIENTS", "ENGINE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(int(args.child[0]), args.child[1])
        return

    measured = []
    for engine in args.engines:
        for n in sorted(args.sizes):
            row = measure(n, engine, args.timeout)
            measured.append(row)
            print(json.dumps(row), flush=True)
            if row["status"] != "ok":
                break  # larger sizes of this engine would fail too: extrapolate them

    table = []
    for engine in args.engines:
        ok = [r for r in measured if r["engine"] == engine and r["status"] == "ok"]
        for r in ok:
            table.append({**r, "source": "measured"})
        if not ok:
            continue
        rows_per_patient = sum(r["rows"] / r["patients"] for r in ok) / len(ok)
        model_share = sum(r["model_rows"] / r["rows"] for r in ok) / len(ok)
        fit_cpu = exponent([(r["model_rows"], r["fit_cpu"]) for r in ok])
        rss_exp = exponent([(r["rows"], r["peak_rss_gb"]) for r in ok])
        rss_line = linear([(r["rows"], r["peak_rss_gb"]) for r in ok])
        start = sum(r["r_start_cpu"] for r in ok) / len(ok)
        largest = max(ok, key=lambda r: r["rows"])
        # the rest of the child (simulate, prepare, conversion) grows with the rows
        rest_per_row = max(0.0, largest["cpu_s"] - largest["fit_cpu"] - start) / largest["rows"]
        for n in args.extrapolate:
            if any(r["patients"] == n for r in ok):
                continue
            rows = n * rows_per_patient
            fit = fit_cpu[0] * (rows * model_share) ** fit_cpu[1] if fit_cpu else None
            table.append({"patients": n, "engine": engine, "rows": round(rows), "model_rows": round(rows * model_share),
                          "source": "extrapolated", "fit_cpu": fit,
                          "cpu_s": None if fit is None else fit + start + rest_per_row * rows,
                          "peak_rss_gb": rss_line[0] + rss_line[1] * rows if rss_line else None})
        print(f"{engine}: growth exponent of fit CPU time in model rows {fit_cpu[1] if fit_cpu else float('nan'):.2f}"
              f" (a = {fit_cpu[0] if fit_cpu else float('nan'):.3g}); peak RSS log-log exponent "
              f"{rss_exp[1] if rss_exp else float('nan'):.2f}, linear {rss_line[0] if rss_line else float('nan'):.3f}"
              f" GB + {rss_line[1] * 1e6 if rss_line else float('nan'):.3f} GB per million rows")

    print("\n| patients | engine | rows | model rows | child CPU (s) | fit CPU (s) | prepare CPU (s) | peak RSS (GB) "
          "| source |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in sorted(table, key=lambda r: (r["engine"], r["patients"])):
        fmt = lambda v, d=1: "" if v is None else f"{v:,.{d}f}"  # noqa: E731
        print(f"| {r['patients']:,} | {r['engine']} | {r['rows']:,} | {r.get('model_rows', 0):,} | {fmt(r.get('cpu_s'))} | "
              f"{fmt(r.get('fit_cpu'))} | {fmt(r.get('prepare_cpu'), 2)} | {fmt(r.get('peak_rss_gb'), 2)} | "
              f"{r['source']} |")
    if args.json:
        args.json.write_text(json.dumps({"measured": measured, "table": table}, indent=1))


if __name__ == "__main__":
    main()
