"""Batches that lost every result (issue 20, "Lost batches"): a job whose exception
cannot be shown, sys.exit() in a worker, a result that unpickles in the worker but not
here (Dask), a result that pickles but never unpickles (process pool). Each now fails
alone, with a message that says what happened, and the other jobs come back."""
from __future__ import annotations

import dataclasses
import functools
import multiprocessing
import os
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor

import pytest

import pylme_alliance as pa
from pylme_alliance.batch import FailedJob


@pytest.fixture(scope="module")
def sleep():
    from golden_cases import data_for

    return data_for("sleepstudy_slopes_reml")


FORMULA = "Reaction ~ Days + (1 | Subject)"


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no words")

    def __repr__(self) -> str:
        raise RuntimeError("no words either")


def raise_unprintable():
    raise Unprintable()


def call_exit(code):
    sys.exit(code)


def _explode_in(pid: int) -> str:
    if pid < 0 or os.getpid() == pid:
        raise ZeroDivisionError("division by zero while unpickling")
    return "fine"


class Bomb:
    """Unpickles everywhere except in the process ``pid`` (every process for ``pid=-1``)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def __reduce__(self):
        return _explode_in, (self.pid,)


def fit_with_bomb(data, pid):
    fit = pa.lmer(FORMULA, data)
    return dataclasses.replace(fit, call_args={**fit.call_args, "bomb": Bomb(pid)})


def quiet_many(jobs, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pa.fit_many(jobs, progress=False, **kwargs)


def test_an_exception_whose_str_raises_fails_its_job_alone(sleep):
    out = quiet_many([functools.partial(pa.lmer, FORMULA, sleep), raise_unprintable])
    assert isinstance(out[0], pa.MixedFit)
    assert isinstance(out[1], FailedJob) and out[1].error_type == "Unprintable"
    assert "could not be shown" in out[1].message
    str(out[1])  # and the FailedJob itself prints


def test_sys_exit_and_an_unpicklable_result_in_a_pool_fail_alone(sleep):
    jobs = [functools.partial(pa.lmer, FORMULA, sleep), functools.partial(call_exit, 3),
            functools.partial(fit_with_bomb, sleep, -1), functools.partial(pa.lmer, FORMULA, sleep)]
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        out = quiet_many(jobs, executor=pool, chunk_size=4)
    assert isinstance(out[0], pa.MixedFit) and isinstance(out[3], pa.MixedFit)
    assert out[1].error_type == "SystemExit" and "sys.exit(3)" in out[1].message
    assert out[2].error_type == "ZeroDivisionError"
    assert "could not be unpickled" in out[2].message and "died" not in out[2].message


def test_a_dask_result_that_fails_to_deserialise_fails_its_chunk_only(sleep):
    distributed = pytest.importorskip("distributed")
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with distributed.LocalCluster(n_workers=1, processes=True, threads_per_worker=1,
                                      dashboard_address=None) as cluster, distributed.Client(cluster) as client:
            jobs = [functools.partial(pa.lmer, FORMULA, sleep), functools.partial(fit_with_bomb, sleep, os.getpid()),
                    functools.partial(pa.lmer, FORMULA, sleep)]
            out = quiet_many(jobs, executor=client, chunk_size=1)
    assert isinstance(out[0], pa.MixedFit) and isinstance(out[2], pa.MixedFit)
    assert isinstance(out[1], FailedJob) and out[1].error_type == "ZeroDivisionError"
    assert "could not be received" in out[1].message
