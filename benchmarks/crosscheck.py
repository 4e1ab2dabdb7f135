"""What a cross-check costs: from_statsmodels() against the statsmodels fit it checks.

Data: sessions of patients (10 sessions each) with a random intercept and a correlated
random slope, ``y ~ x + C(arm)`` with ``re_formula="~x"``; 5,000 and 50,000 rows.
The statsmodels fit is timed as the user runs it; from_statsmodels() is timed after R
has started (one warm-up call), so the numbers are the per-check cost.

Run:  PYTHONPATH=src .venv/bin/python benchmarks/crosscheck.py [--rows 5000 50000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd


def make_data(n_rows: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_patients = n_rows // 10
    patient = np.repeat(np.arange(n_patients), 10)
    x = np.tile(np.arange(10), n_patients).astype(float)
    arm = np.array(["a", "b"])[patient % 2]
    y = (1 + 0.3 * x + 0.5 * (arm == "b") + rng.normal(0, 1, n_patients)[patient]
         + rng.normal(0, 0.2, n_patients)[patient] * x + rng.normal(0, 1, len(x)))
    return pd.DataFrame({"y": y, "x": x, "arm": arm, "patient": patient})


def best_of(repeat: int, fun, *args, **kwargs):
    times, value = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fun(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return min(times), value


def main() -> None:
    import statsmodels.formula.api as smf

    import pylme_alliance as pa

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[5000, 50000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    pa.from_statsmodels(smf.mixedlm("y ~ x", make_data(200), groups="patient").fit())  # start R
    print(f"{'rows':>7} {'statsmodels fit (s)':>20} {'from_statsmodels (s)':>21} {'ratio':>6}  agree")
    for n in args.rows:
        data = make_data(n)
        model = smf.mixedlm("y ~ x + C(arm)", data, groups="patient", re_formula="~x")
        t_sm, result = best_of(args.repeat, model.fit)
        t_cc, check = best_of(args.repeat, pa.from_statsmodels, result)
        print(f"{n:>7} {t_sm:>20.2f} {t_cc:>21.2f} {t_cc / t_sm:>6.2f}  {check.agree}")


if __name__ == "__main__":
    main()
