"""pandas -> R data.frame handoff: pylme_alliance's bridge.to_r against rpy2's pandas2ri.

1,000,000 rows: three float columns (with some NaN), an integer session number, a
categorical patient (50,000 levels) and a categorical therapist (500 levels).
bridge.to_r is timed best of 3; pandas2ri once (it is slow). Both results are then
compared in R. Target: bridge at least 50x faster.

    PYTHONPATH=src .venv/bin/python benchmarks/handoff.py [--rows N]
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd


def make_frame(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_pat, n_ther = min(50_000, n), min(500, n)
    patient = pd.Categorical.from_codes(rng.integers(0, n_pat, n),
                                        categories=[f"P{i:05d}" for i in range(n_pat)])
    therapist = pd.Categorical.from_codes(rng.integers(0, n_ther, n),
                                          categories=[f"T{i:03d}" for i in range(n_ther)])
    df = pd.DataFrame({
        "alliance": rng.normal(5.5, 0.8, n),
        "outcome": rng.normal(60, 20, n),
        "alliance_within": rng.normal(0, 0.4, n),
        "session": rng.integers(1, 31, n).astype(np.int64),
        "patient": patient,
        "therapist": therapist,
    })
    df.loc[rng.random(n) < 0.03, "outcome"] = np.nan
    return df


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()

    from pylme_alliance import bridge

    df = make_frame(args.rows)
    print(f"frame: {len(df):,} rows; patient {df['patient'].cat.categories.size:,} levels, "
          f"therapist {df['therapist'].cat.categories.size:,} levels")
    bridge.to_r(df.head())  # start R outside the timing

    times = []
    for _ in range(3):
        t = time.perf_counter()
        ours = bridge.to_r(df)
        times.append(time.perf_counter() - t)
    fast = min(times)
    print(f"bridge.to_r        best of 3: {fast:8.3f} s   (all: {', '.join(f'{x:.3f}' for x in times)})")

    import rpy2.robjects as ro
    from rpy2.robjects import pandas2ri
    from rpy2.robjects.conversion import localconverter

    with bridge.lock:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            with localconverter(ro.default_converter + pandas2ri.converter):
                stock = ro.conversion.py2rpy(df)
            slow = time.perf_counter() - t
    print(f"rpy2 pandas2ri     once     : {slow:8.3f} s")
    print(f"speed-up: {slow / fast:.0f}x  (target >= 50x)")

    # Same data in R? Compare column classes, factor levels (identical) and a sample of rows.
    with bridge.lock:
        ro.globalenv[".pylme_ours"] = ours
        ro.globalenv[".pylme_stock"] = stock
        check = ro.r("""
            local({
              a <- .pylme_ours; b <- .pylme_stock
              set.seed(1); i <- sort(sample.int(nrow(a), min(nrow(a), 10000L)))
              out <- c(
                dims = identical(dim(a), dim(b)),
                names = identical(names(a), names(b)),
                patient_levels = identical(levels(a$patient), levels(b$patient)),
                therapist_levels = identical(levels(a$therapist), levels(b$therapist)),
                factors = is.factor(a$patient) && is.factor(b$patient),
                sample_equal = isTRUE(all.equal(a[i, ], b[i, ], check.attributes = FALSE)),
                na_same = identical(is.na(a$outcome), is.na(b$outcome)))
              rm(".pylme_ours", ".pylme_stock", envir = globalenv())
              out
            })
        """)
        names = list(check.names)
        values = [bool(v) for v in check]
    with bridge.lock:
        classes = ro.r("function(a) vapply(a, function(x) class(x)[1], '')")(ours)
        cls = dict(zip(classes.names, classes))
    print("column classes (bridge):", cls)
    print("equal in R:", dict(zip(names, values)))
    if not all(values):
        raise SystemExit("the two conversions differ")


if __name__ == "__main__":
    main()
