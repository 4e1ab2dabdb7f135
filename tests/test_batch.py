"""fit_many(): serial and in worker processes (each with its own R), fits come back detached."""
from __future__ import annotations

import functools
import multiprocessing
import pickle
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
import pytest

import pylme_alliance as pa
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
    with pytest.raises(PylmeError, match="callable"):
        pa.fit_many([42], progress=False)
    with pytest.raises(PylmeError, match="not a fit"):
        pa.fit_many([lambda: 3], progress=False)
