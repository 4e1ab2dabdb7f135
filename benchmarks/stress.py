"""Stress the R bridge the way simulation studies and bootstraps do.

Three phases, each reporting wall time, ``sys.getrefcount(None)`` before/after (it
must not fall: rpy2 3.5's ``memoryview()`` used to drop one reference per numeric
column read, which ends in "Fatal Python error: none_dealloc") and resident memory:

1. ``--round-trips`` (20,000) ``bridge.from_r(bridge.to_r(frame))`` on a small mixed
   frame (float with NaN, int, bool, categorical, string), checked equal each time;
2. ``--fits`` (3,000) ``lmer`` fits on small simulated data (160 rows);
3. ``--threads`` (8) threads fitting ``--thread-fits`` (25) models each at the same
   time; every estimate must equal the same fit done serially (R is serialised by
   the bridge lock, so concurrency must change nothing).

    PYTHONPATH=src nice .venv/bin/python benchmarks/stress.py
    PYTHONPATH=src .venv/bin/python benchmarks/stress.py --round-trips 2000 --fits 300   # quick

Exits 1 if a check fails.
"""
from __future__ import annotations

import argparse
import gc
import resource
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd


def _rss_mb() -> float:
    """Current resident set size (MB): /proc on Linux, else the peak from getrusage."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def _data(seed: int, n_groups: int = 20, per_group: int = 8) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per_group)
    x = rng.normal(size=g.size)
    y = 1 + 0.5 * x + rng.normal(scale=0.8, size=n_groups)[g] + rng.normal(size=g.size)
    return pd.DataFrame({"patient": [f"p{i:02d}" for i in g], "x": x, "y": y})


class Phase:
    """Times a phase and prints refcount(None) and RSS around it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ok = True

    def __enter__(self) -> Phase:
        gc.collect()
        self.none0, self.rss0, self.t0 = sys.getrefcount(None), _rss_mb(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        seconds = time.perf_counter() - self.t0
        gc.collect()
        none1, rss1 = sys.getrefcount(None), _rss_mb()
        held = none1 >= self.none0 - 50
        self.ok = self.ok and held
        print(f"{self.name:<34} {seconds:8.1f} s   refcount(None) {self.none0} -> {none1}"
              f"{'' if held else '  FELL'}   RSS {self.rss0:.0f} -> {rss1:.0f} MB", flush=True)


def round_trips(n: int) -> bool:
    from pylme_alliance import bridge

    frame = pd.DataFrame({
        "y": [1.5, np.nan, -2.25], "n": [1, 2, 3], "b": [True, False, True],
        "arm": pd.Categorical(["cbt", "tau", "cbt"]), "site": ["a b", None, "c"],
    })
    expected = bridge.from_r(bridge.to_r(frame))
    with Phase(f"{n:,} round trips") as phase:
        for i in range(n):
            back = bridge.from_r(bridge.to_r(frame))
            if i % 1000 == 0 and not back.equals(expected):
                print(f"round trip {i} changed the data", flush=True)
                phase.ok = False
    return phase.ok


def _slope(seed: int) -> float:
    import pylme_alliance as pa

    return float(pa.lmer("y ~ x + (1 | patient)", data=_data(seed)).fixef()["x"])


def fits(n: int) -> bool:
    with Phase(f"{n:,} lmer fits (160 rows)") as phase:
        slopes = [_slope(seed) for seed in range(n)]
    if not all(np.isfinite(slopes)):
        phase.ok = False
    print(f"{'':34} {1000 * (time.perf_counter() - phase.t0) / max(n, 1):8.1f} ms per fit", flush=True)
    return phase.ok


def threads(n_threads: int, per_thread: int) -> bool:
    seeds = list(range(10_000, 10_000 + n_threads * per_thread))
    serial = {s: _slope(s) for s in seeds}
    results: dict[int, float] = {}
    errors: list[BaseException] = []

    def work(mine: list[int]) -> None:
        try:
            for s in mine:
                results[s] = _slope(s)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    with Phase(f"{n_threads} threads x {per_thread} fits") as phase:
        pool = [threading.Thread(target=work, args=(seeds[k::n_threads],)) for k in range(n_threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
    same = not errors and len(results) == len(seeds) and all(results[s] == serial[s] for s in seeds)
    print(f"{'':34} threaded == serial: {same}" + (f" ({errors[0]!r})" if errors else ""), flush=True)
    return phase.ok and same


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--round-trips", type=int, default=20_000)
    parser.add_argument("--fits", type=int, default=3_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--thread-fits", type=int, default=25, help="fits per thread")
    args = parser.parse_args(argv)

    import pylme_alliance as pa

    warnings.simplefilter("ignore", pa.RWarning)  # singular fits on tiny data are expected
    t0 = time.perf_counter()
    _slope(0)  # start R outside the timed phases
    print(f"R started in {time.perf_counter() - t0:.1f} s; RSS {_rss_mb():.0f} MB", flush=True)
    ok = round_trips(args.round_trips)
    ok = fits(args.fits) and ok
    ok = threads(args.threads, args.thread_fits) and ok
    print("all checks passed" if ok else "SOME CHECKS FAILED", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
