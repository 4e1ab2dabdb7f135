"""fit_many and run_chunks on a Dask LocalCluster (two worker processes, one thread each):
same fits as serial, R warm on every worker, a killed worker's chunk retried once.

Skipped when dask.distributed is not installed (it is in the test extra)."""
from __future__ import annotations

import functools
import os
import warnings

import numpy as np
import pandas as pd
import pytest

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")

import pylme_alliance as pa  # noqa: E402
from pylme_alliance import executors  # noqa: E402
from pylme_alliance.batch import FailedJob  # noqa: E402

FORMULAS = ["Reaction ~ Days + (1 | Subject)", "Reaction ~ Days + (Days | Subject)"]


@pytest.fixture(scope="module")
def client():
    # allowed-failures 0: Dask gives a chunk up (KilledWorker) at its first worker death,
    # so the retry seen here is run_chunks' own, not Dask's rescheduling
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                      dashboard_address=None) as cluster, distributed.Client(cluster) as c:
            yield c


@pytest.fixture(scope="module")
def sleep():
    from golden_cases import data_for

    return data_for("sleepstudy_slopes_reml")


def r_state(_chunk):
    from pylme_alliance.bridge import session

    return os.getpid(), session.is_started()


def fit_or_die_once(marker, formula, data):
    """Kill this worker process the first time it runs (the marker file remembers)."""
    if not os.path.exists(marker):
        open(marker, "x").close()
        os._exit(3)
    return pa.lmer(formula, data)


def raise_value_error(value):
    if value == 2:
        raise ValueError("chunk two is wrong")
    return value


def test_fit_many_on_dask_matches_serial(client, sleep):
    jobs = [functools.partial(pa.lmer, FORMULAS[i % 2], sleep) for i in range(4)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        serial = pa.fit_many(jobs, progress=False)
        on_dask = pa.fit_many(jobs, executor=client, progress=False)
    for a, b in zip(serial, on_dask):
        pd.testing.assert_frame_equal(a.tidy(), b.tidy())
        np.testing.assert_allclose(a.fixef(), b.fixef(), rtol=1e-12)
    assert executors.worker_count(client) == 2


def test_power_on_dask_gives_the_serial_table(client):
    small = dict(n_patients=(40,), design={"n_therapists": 8}, n_sims=4, progress=False, seed=11,
                 effects=("within", "slope"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        serial = pa.power(**small)
        on_dask = pa.power(**small, executor=client)
    pd.testing.assert_frame_equal(serial.replicates, on_dask.replicates)
    pd.testing.assert_frame_equal(serial.table, on_dask.table)


def test_killed_worker_chunk_is_retried(client, sleep, tmp_path):
    marker = str(tmp_path / "killed-once")
    jobs = [functools.partial(pa.lmer, FORMULAS[0], sleep),
            functools.partial(fit_or_die_once, marker, FORMULAS[1], sleep),
            functools.partial(pa.lmer, FORMULAS[1], sleep)]
    submitted = []
    submit = client.submit

    def counting_submit(*args, **kwargs):
        submitted.append(args[2])  # the chunk
        return submit(*args, **kwargs)

    client.submit = counting_submit
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = pa.fit_many(jobs, executor=client, chunk_size=1, progress=False)
    finally:
        del client.submit
    assert os.path.exists(marker)  # the worker did die once
    # Dask gave the chunk up (allowed-failures 0); run_chunks sent it again
    assert [c.jobs[0][0] for c in submitted].count(1) == 2
    assert all(isinstance(r, pa.MixedFit) for r in results)
    pd.testing.assert_frame_equal(results[1].tidy(), results[2].tidy())


def test_chunk_killing_its_worker_twice_is_given_up(client):
    # the killer alone fails (its chunk's log names it: same machine here); its
    # chunk-mate is rerun
    results = pa.fit_many([functools.partial(os._exit, 4), functools.partial(int, 5)], executor=client,
                          chunk_size=2, progress=False)
    assert isinstance(results[0], FailedJob) and results[0].error_type == "BrokenProcessPool"
    assert "not a fit" in results[1].message


def test_run_chunks_on_dask_warm_workers_and_task_errors(client):
    states = executors.run_chunks(r_state, range(4), executor=client, progress=False)
    assert all(started for _, started in states) and os.getpid() not in {pid for pid, _ in states}
    seen = []
    with pytest.raises(ValueError, match="chunk two is wrong"):  # as raised, after the others
        executors.run_chunks(raise_value_error, range(4), executor=client, progress=False,
                             on_done=lambda i, r: seen.append(i))
    assert sorted(seen) == [0, 1, 3]
