"""fit_many(): serial and in worker processes (each with its own R), fits come back detached."""
from __future__ import annotations

import ctypes
import dataclasses
import functools
import multiprocessing
import os
import pickle
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
import pytest

import pylme_alliance as pa
from pylme_alliance.batch import FailedJob, FitManyError
from pylme_alliance.errors import PylmeError

FORMULAS = ["Reaction ~ Days + (1 | Subject)", "Reaction ~ Days + (Days | Subject)"]


@pytest.fixture(scope="module")
def sleep():
    from golden_cases import data_for

    return data_for("sleepstudy_slopes_reml")


def test_serial_and_process_pool_agree(sleep):
    jobs = [functools.partial(pa.lmer, f, sleep) for f in FORMULAS]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        serial = pa.fit_many(jobs, progress=False)
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        parallel = pa.fit_many(jobs, executor=pool, progress=False)
    for a, b in zip(serial, parallel):
        pd.testing.assert_frame_equal(a.tidy(), b.tidy())
        np.testing.assert_allclose(a.fixef(), b.fixef(), rtol=1e-12)
        assert pickle.loads(pickle.dumps(b)).glance().equals(b.glance())
    with pytest.raises(PylmeError, match="detached"):
        parallel[0].r


def test_bad_jobs():
    # a job that is not a job at all is the caller's mistake: refused before anything runs
    with pytest.raises(PylmeError, match="job 1.*callable"):
        pa.fit_many([lambda: 3, 42], progress=False)
    with pytest.raises(PylmeError, match="errors"):
        pa.fit_many([], progress=False, errors="ignore")
    # a job that runs and returns something else is that job's failure
    (failed,) = pa.fit_many([lambda: 3], progress=False)
    assert isinstance(failed, FailedJob) and "not a fit" in failed.message
    with pytest.raises(PylmeError, match="not a fit"):
        pa.fit_many([lambda: 3], progress=False, errors="raise")


def _jobs_with_failures(sleep):
    return [functools.partial(pa.lmer, FORMULAS[0], sleep),
            functools.partial(pa.lmer, "Reaction ~ Days + nosuchcolumn + (1 | Subject)", sleep),
            functools.partial(pa.lmer, FORMULAS[1], sleep),
            functools.partial(pa.lmer, "Reaction ~ Days + (1 | Subject)", sleep, control={"optimizer": "nope"})]


def test_failing_job_comes_back_in_its_place(sleep, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = pa.fit_many(_jobs_with_failures(sleep), progress=True)
    assert [type(r).__name__ for r in results] == ["MixedFit", "FailedJob", "MixedFit", "FailedJob"] or (
        isinstance(results[0], pa.MixedFit) and isinstance(results[2], pa.MixedFit))
    failed = [r for r in results if isinstance(r, FailedJob)]
    assert [f.index for f in failed] == [1, 3]
    assert "nosuchcolumn" in failed[0].message and failed[0].error_type.endswith("Error")
    assert "job 1" in str(failed[0]) and "FailedJob(index=1" in repr(failed[0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        failed[0].index = 5
    assert "2 failed" in capsys.readouterr().err  # the failure count at the end of the bar


def test_r_error_message_is_rs_own(sleep):
    # one level per row: lme4 itself refuses ("number of levels ... < number of observations")
    data = sleep.assign(row=[f"r{i}" for i in range(len(sleep))])
    formula = "Reaction ~ Days + (1 | row)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(pa.RError) as info:
            pa.lmer(formula, data)
        (failed,) = pa.fit_many([functools.partial(pa.lmer, formula, data)], progress=False)
    assert failed.error_type == "RError" and failed.message == info.value.r_message.strip()
    assert "(in R:" not in failed.message


def test_errors_raise_after_the_batch_naming_the_jobs(sleep):
    ran = []

    def counted(i):
        def job():
            ran.append(i)
            if i in (1, 3):
                raise pa.PylmeError(f"boom {i}")
            return pa.lmer(FORMULAS[0], sleep)
        return job

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(FitManyError, match=r"2 of 5 jobs failed: job 1 .*boom 1.*job 3 .*boom 3") as info:
            pa.fit_many([counted(i) for i in range(5)], progress=False, errors="raise")
    assert ran == [0, 1, 2, 3, 4]  # the batch ran to its end before raising
    assert [type(r).__name__ for r in info.value.results] == ["MixedFit", "FailedJob", "MixedFit",
                                                               "FailedJob", "MixedFit"]
    assert [f.index for f in info.value.failed] == [1, 3]


def test_dead_worker_fails_only_its_own_job(sleep):
    """A segfault and an os._exit inside jobs: only those two jobs fail, the rest are fits
    equal to the serial ones (the jobs lost with the broken pool were rerun)."""
    good = [functools.partial(pa.lmer, f, sleep) for f in FORMULAS]
    jobs = [good[0], functools.partial(ctypes.string_at, 0), good[1], good[0],
            functools.partial(os._exit, 3), good[1]]
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = pa.fit_many(jobs, executor=pool, progress=False)
    assert [isinstance(r, FailedJob) for r in results] == [False, True, False, False, True, False]
    assert all(r.error_type == "BrokenProcessPool" and "died" in r.message for r in (results[1], results[4]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        serial = pa.fit_many(good, progress=False)
    for k, r in ((0, results[0]), (1, results[2]), (0, results[3]), (1, results[5])):
        pd.testing.assert_frame_equal(r.tidy(), serial[k].tidy())


def test_failing_job_in_a_pool(sleep):
    jobs = _jobs_with_failures(sleep)[:2]
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = pa.fit_many(jobs, executor=pool, progress=False)
    assert isinstance(results[0], pa.MixedFit)
    assert isinstance(results[1], FailedJob) and "nosuchcolumn" in results[1].message


def test_many_dead_workers_blame_only_the_killers():
    """Three killers among cheap jobs (no R): each killer, and only each killer, is
    reported as the job whose worker died; the others run to their own end (here a
    "not a fit" failure, which tells them apart from a death)."""
    import time

    killers = {1, 4, 7}
    jobs = [functools.partial(os._exit, 3) if i in killers else functools.partial(time.sleep, 0.2)
            for i in range(10)]
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = pa.fit_many(jobs, executor=pool, progress=False)
    kinds = [r.error_type for r in results]
    assert [i for i, k in enumerate(kinds) if k == "BrokenProcessPool"] == sorted(killers)
    assert all(k == "PylmeError" and "not a fit" in r.message
               for i, (k, r) in enumerate(zip(kinds, results)) if i not in killers)


def _report_pid():
    raise PylmeError(f"pid {os.getpid()}")


def test_jobs_go_in_chunks_and_unsendable_jobs_fail_alone(capsys):
    """chunk_size=3: jobs 0-2 share one worker call, 3-5 another (one process each);
    a job that cannot be pickled for the pool fails by itself before anything is sent."""
    import time

    jobs = [_report_pid] * 6
    with pytest.raises(PylmeError, match="chunk_size"):
        pa.fit_many(jobs, progress=False, chunk_size=0)
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = pa.fit_many(jobs, executor=pool, chunk_size=3, progress=True)
        pids = [r.message for r in results]
        assert len(set(pids[:3])) == 1 and len(set(pids[3:])) == 1 and str(os.getpid()) not in pids[0]
        assert "fits: 6 of 6 done, 6 failed" in capsys.readouterr().err
        mixed = pa.fit_many([lambda: 3, functools.partial(time.sleep, 0)], executor=pool, progress=False)
    assert "pickle" in mixed[0].message.lower() and "not a fit" in mixed[1].message


def test_killer_inside_a_chunk_fails_alone():
    """The worker dies in the middle of a chunk (twice): the job that was running fails,
    the chunk's other jobs, before and after it, are rerun and finish."""
    import time

    jobs = [functools.partial(time.sleep, 0.01)] * 5
    jobs[2] = functools.partial(os._exit, 5)
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = pa.fit_many(jobs, executor=pool, chunk_size=5, progress=False)
    assert [r.error_type for r in results] == ["PylmeError", "PylmeError", "BrokenProcessPool",
                                               "PylmeError", "PylmeError"]
    assert "died" in results[2].message and all("not a fit" in results[i].message for i in (0, 1, 3, 4))
