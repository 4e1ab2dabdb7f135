"""Each warning class once per public call, with its full text (issue 21, item 2)."""
from __future__ import annotations

import warnings
from collections import Counter

import pytest

import pylme_alliance as pa
from pylme_alliance.errors import RWarning, warnings_once
from pylme_alliance.models.model import NickellWarning


class _Caution(UserWarning):
    pass


LONG = "a caution of several sentences. " * 10


@warnings_once
def _fits(n, *, fail=False):
    for i in range(n):
        warnings.warn(f"{LONG}fit {i}", _Caution, stacklevel=2)
        warnings.warn(f"R said {i % 2}", RWarning, stacklevel=2)
    if fail:
        raise ValueError("stopped")
    return n


def _classes(caught):
    return Counter(w.category for w in caught)


def test_each_class_once_with_the_full_first_text():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _fits(6) == 6
    assert _classes(caught) == {_Caution: 1, RWarning: 1}
    caution = next(str(w.message) for w in caught if w.category is _Caution)
    assert caution.startswith(LONG + "fit 0") and "5 more fit(s)" in caution
    r_text = next(str(w.message) for w in caught if w.category is RWarning)
    assert r_text == "R said 0 | R said 1"  # short distinct messages are all kept
    assert all(w.filename == __file__ for w in caught)  # pointed at the caller


def test_caller_filters_apply_and_an_error_keeps_its_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error", _Caution)
        with pytest.raises(_Caution):
            _fits(2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError):
            _fits(3, fail=True)
    assert _classes(caught) == {_Caution: 1, RWarning: 1}


@pytest.fixture(scope="module")
def panel():
    data = pa.simulate(n_patients=40, n_therapists=8, sessions=6, seed=3).data
    return pa.prepare(data, patient="patient", session="session", alliance="alliance", outcome="outcome",
                      therapist="therapist", moderators=["severity"])


def test_duration_warns_once_per_class(panel):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # the per-lead fits (effect="total" is one RI-CLPM fit since issue 19)
        table = pa.duration(panel, leads=(1, 2, 3), effect="lead_regression")
    assert set(table["lead"]) == {1, 2, 3}
    counts = _classes(caught)
    assert counts[NickellWarning] == 1 and max(counts.values()) == 1, counts
    nickell = next(str(w.message) for w in caught if w.category is NickellWarning)
    assert "Nickell" in nickell and "more fit(s)" in nickell  # the three leads each had one


def test_analyze_warns_once_per_class(panel):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pa.analyze(panel, leads=(1, 2), moderators=["severity"], progress=False, checks=())
    counts = _classes(caught)
    assert max(counts.values(), default=0) <= 1, counts
