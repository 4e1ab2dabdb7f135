"""fit_many(): serial against a 2-process spawn pool (and optionally a Dask LocalCluster).

16 jobs (``--jobs``), each ``pylme_alliance.lmer`` (Satterthwaite) + tidy of

    outcome_lead1 ~ outcome + session + alliance_within + alliance_between
                    + (1 + alliance_within | patient) + (1 | therapist)

on its own ``simulate(n_patients=700, seed=k)`` panel through ``prepare()``
(~5,200 rows, ~4,100 model rows). Wall time, best of ``--reps`` interleaved runs:

  serial        fit_many(jobs) here; R already started and lme4 loaded (one warm-up fit)
  pool cold     a new spawn ProcessPoolExecutor(2) per run: the workers start R and load
                lme4/lmerTest inside the timing (what a one-off call pays)
  pool cold/1   the same, one future per fit (chunk_size=1): how fit_many sent jobs before
  pool warm     the same pool's second call (workers keep their R: a reused pool)
  process_pool  executors.process_pool(2): workers warm R in the initializer as they
                start; timed from creation, cold
  dask warm     (--dask) a LocalCluster(2 processes, 1 thread), second call

CPU time is this process's plus the pool workers' (psutil, read before the pool shuts
down), so it counts the workers' R start-up in cold runs; "busiest" is the CPU of the
busiest process, the wall time the call would take with a free core per worker. On a
machine shared with other jobs, wall-time ratios understate the pool: read serial CPU /
busiest as the speed-up.

    PYTHONPATH=src .venv/bin/python benchmarks/batch.py [--jobs 16] [--patients 700] [--reps 3] [--dask]
"""
from __future__ import annotations

import argparse
import functools
import multiprocessing
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor

FORMULA = ("outcome_lead1 ~ outcome + session + alliance_within + alliance_between"
           " + (1 + alliance_within | patient) + (1 | therapist)")


def make_jobs(n_jobs: int, n_patients: int) -> list:
    import pylme_alliance as pa

    jobs = []
    for seed in range(n_jobs):
        sim = pa.simulate(n_patients=n_patients, seed=seed)
        panel = pa.prepare(sim.data, patient="patient", session="session", alliance="alliance",
                           outcome="outcome", therapist="therapist")
        jobs.append(functools.partial(pa.lmer, FORMULA, panel.data))
    return jobs


def per_worker_cpu(executor) -> dict[int, float]:
    """CPU seconds used so far by each live worker process of a process pool."""
    import psutil  # a dependency of distributed; only needed here

    out = {}
    for pid in list((getattr(executor, "_processes", None) or {}).keys()):
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        out[pid] = times.user + times.system
    return out


def workers_cpu(executor) -> float:
    """CPU seconds used so far by the executor's worker processes (NaN for Dask)."""
    if executor is None:
        return 0.0
    if not hasattr(executor, "_processes"):  # a Dask client: CPU not measured here
        return float("nan")
    return sum(per_worker_cpu(executor).values())


def spawn_pool() -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn"))


def run(jobs: list, executor=None, **options) -> tuple[float, float, float]:
    """(wall, CPU of this process + the workers, the busiest process's CPU) of one
    fit_many call. The last is the wall time on free cores (one per worker)."""
    import pylme_alliance as pa

    before = per_worker_cpu(executor)
    workers = workers_cpu(executor)
    cpu = time.process_time()
    start = time.perf_counter()
    fits = pa.fit_many(jobs, executor=executor, progress=False, **options)
    wall = time.perf_counter() - start
    own = time.process_time() - cpu
    after = per_worker_cpu(executor)
    busiest = max([after[p] - before.get(p, 0.0) for p in after] + [own]) if executor is not None else own
    if executor is not None and not hasattr(executor, "_processes"):
        busiest = float("nan")
    assert all(isinstance(f, pa.MixedFit) for f in fits), [f for f in fits if not isinstance(f, pa.MixedFit)]
    return wall, own + workers_cpu(executor) - workers, busiest


def cold(jobs: list, make_pool, **options) -> tuple[float, float, float]:
    """run() on a new pool, the workers' start-up included."""
    cpu = time.process_time()
    start = time.perf_counter()
    with make_pool() as pool:
        run(jobs, pool, **options)
        each = per_worker_cpu(pool)  # from the workers' birth: their R start-up counts
    own = time.process_time() - cpu
    return time.perf_counter() - start, own + sum(each.values()), max(list(each.values()) + [own])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--patients", type=int, default=700)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--dask", action="store_true", help="also time a Dask LocalCluster (warm)")
    args = parser.parse_args()

    from pylme_alliance import executors

    warnings.simplefilter("ignore")
    os.environ["PYTHONWARNINGS"] = "ignore"  # the workers' singular-fit warnings too
    jobs = make_jobs(args.jobs, args.patients)
    rows = len(jobs[0].args[1])
    print(f"{args.jobs} jobs, {rows:,} rows each (first), best of {args.reps} interleaved runs")
    run(jobs[:1])  # warm-up here: R started, lme4/lmerTest loaded
    runs: dict[str, list[tuple[float, float]]] = {}
    with spawn_pool() as warm_pool:
        run(jobs, warm_pool)  # the workers start R; later calls find it
        for _ in range(args.reps):
            runs.setdefault("serial", []).append(run(jobs))
            for name, make, options in (("pool cold", spawn_pool, {}),
                                        ("pool cold/1", spawn_pool, {"chunk_size": 1}),
                                        ("process_pool", lambda: executors.process_pool(2), {})):
                runs.setdefault(name, []).append(cold(jobs, make, **options))
            runs.setdefault("pool warm", []).append(run(jobs, warm_pool))
    if args.dask:
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            run(jobs, client)
            runs["dask warm"] = [run(jobs, client) for _ in range(args.reps)]

    serial_wall = min(v[0] for v in runs["serial"])
    serial_cpu = min(v[1] for v in runs["serial"])
    print("busiest = CPU of the busiest process (the wall time with a free core per worker)")
    print(f"{'':14s} {'wall (s)':>9s} {'serial/this':>11s} {'CPU (s)':>8s} {'CPU/serial':>10s} "
          f"{'busiest (s)':>11s} {'serial/busiest':>14s}   runs (wall/CPU/busiest)")
    for name, values in runs.items():
        wall, cpu, busiest = (min(v[k] for v in values) for k in range(3))
        print(f"{name:14s} {wall:9.2f} {serial_wall / wall:11.2f} {cpu:8.2f} {cpu / serial_cpu:10.2f} "
              f"{busiest:11.2f} {serial_cpu / busiest:14.2f}   "
              + ", ".join(f"{w:.1f}/{c:.1f}/{b:.1f}" for w, c, b in values))
    return 0


if __name__ == "__main__":
    sys.exit(main())
