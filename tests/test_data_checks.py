"""One column rule for every engine (engines/datacheck.py): bad columns give a PylmeError
naming the column and the problem, before any engine runs; what one engine accepts,
every engine reads the same way."""
from __future__ import annotations

import datetime as dt
import warnings

import numpy as np
import pandas as pd
import pytest

import pylme_alliance as pa


@pytest.fixture(scope="module")
def base():
    rng = np.random.default_rng(11)
    n, t = 12, 6
    g = np.repeat(np.arange(n), t)
    x = rng.normal(size=n * t)
    return pd.DataFrame({"y": 2 + 0.7 * x + rng.normal(size=n)[g] + rng.normal(scale=0.5, size=n * t),
                         "x": x, "g": [f"p{i:02d}" for i in g]})


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# engine name -> fit of "y ~ <x>" with a random intercept per g; `x` is the formula text
# of the predictor (R engines quote odd names with backticks, statsmodels with Q())
def _lmer(d, x="x"):
    return _quiet(pa.lmer, f"y ~ {x} + (1 | g)", d)


def _mixedlm(d, x="x"):
    return _quiet(pa.mixedlm, f"y ~ {x}", d, groups="g")


def _lme(d, x="x"):
    return _quiet(pa.lme, f"y ~ {x}", d, random="~ 1 | g")


def _glmmtmb(d, x="x"):
    return _quiet(pa.glmmtmb, f"y ~ {x} + (1 | g)", d)


ENGINES = {"lmer": _lmer, "mixedlm": _mixedlm, "lme": _lme, "glmmtmb": _glmmtmb}
TWO = ["lmer", "mixedlm"]


def _refused(engine, data, match, x="x"):
    before = data.copy()
    with pytest.raises(pa.PylmeError, match=match) as info:
        ENGINES[engine](data, x)
    pd.testing.assert_frame_equal(data, before)  # nothing of the caller's touched
    text = str(info.value)
    assert "Traceback" not in text and "foreign function call" not in text
    return text


# ------------------------------------------------------------------ refusals
@pytest.mark.parametrize("engine", list(ENGINES))
def test_duplicated_column_name(base, engine):
    d = pd.concat([base, base[["x"]]], axis=1)
    _refused(engine, d, r"column 'x' appears 2 times.*duplicated")


@pytest.mark.parametrize("engine", TWO)
def test_non_string_column_label(base, engine):
    d = base.rename(columns={"x": 5})
    _refused(engine, d, r"column 5 has a int label, not a string", x="`5`" if engine == "lmer" else 'Q("5")')


@pytest.mark.parametrize("engine", list(ENGINES))
@pytest.mark.parametrize("bad", [np.inf, -np.inf, 1e200])
def test_infinite_or_huge_values(base, engine, bad):
    d = base.copy()
    d.loc[3, "x"] = bad
    _refused(engine, d, r"column 'x' has 1 value\(s\) that are infinite or beyond 1e\+150.*row 3")


@pytest.mark.parametrize("engine", TWO)
def test_infinite_response(base, engine):
    d = base.copy()
    d.loc[0, "y"] = -np.inf
    _refused(engine, d, r"column 'y' has 1 value")


@pytest.mark.parametrize("engine", list(ENGINES))
def test_object_column_mixing_numbers_and_strings(base, engine):
    d = base.copy()
    d["x"] = d["x"].astype(object)
    d.loc[4, "x"] = "n/a"
    text = _refused(engine, d, r"column 'x' \(object dtype\) holds a mix of value types")
    assert "1 string" in text and "pd.to_numeric" in text


@pytest.mark.parametrize("engine", TWO)
def test_complex_numbers(base, engine):
    d = base.assign(x=base["x"] + 1j)
    _refused(engine, d, r"column 'x' holds complex numbers")


@pytest.mark.parametrize("engine", TWO)
def test_object_complex_numbers(base, engine):
    d = base.assign(x=pd.Series([complex(v, 1) for v in base["x"]], dtype=object))
    _refused(engine, d, r"column 'x' holds complex numbers")


@pytest.mark.parametrize("engine", TWO)
def test_timedeltas(base, engine):
    d = base.assign(x=pd.to_timedelta(np.arange(len(base)), unit="D"))
    _refused(engine, d, r"column 'x' holds time spans \(timedelta\).*total_seconds")


@pytest.mark.parametrize("engine", TWO)
def test_unused_bad_columns_do_not_matter(base, engine):
    d = base.assign(junk=pd.Series([1, "a"] * (len(base) // 2), dtype=object), other=np.inf)
    fit = ENGINES[engine](d)
    assert np.isfinite(fit.fixef()).all()


# --------------------------------------------- the same reading in every engine
def _same_fit(engine, plain, odd, x="x"):
    a, b = ENGINES[engine](plain), ENGINES[engine](odd, x)
    assert list(a.fixef().index) == list(b.fixef().index)
    np.testing.assert_allclose(a.fixef().to_numpy(), b.fixef().to_numpy(), rtol=1e-6)
    assert np.isfinite(b.fixef()).all()
    assert a.nobs == b.nobs
    return b


@pytest.mark.parametrize("engine", TWO)
def test_object_of_numbers_is_numeric(base, engine):
    odd = base.assign(x=pd.Series(list(base["x"]), dtype=object))
    fit = _same_fit(engine, base, odd)
    assert list(fit.fixef().index) == ["(Intercept)", "x"]  # one slope, not a level per value


@pytest.mark.parametrize("engine", TWO)
def test_object_of_strings_is_categorical(base, engine):
    k = np.tile(["lo", "mid", "hi"], len(base) // 3)
    a = ENGINES[engine](base.assign(x=pd.Categorical(k, categories=["hi", "lo", "mid"])))
    b = ENGINES[engine](base.assign(x=pd.Series(k, dtype=object)))
    assert len(b.fixef()) == 3
    np.testing.assert_allclose(a.fixef().to_numpy(), b.fixef().to_numpy(), rtol=1e-6)


@pytest.mark.parametrize("engine", TWO)
def test_pyarrow_columns(base, engine):
    pytest.importorskip("pyarrow")
    odd = base.astype({"y": "float64[pyarrow]", "x": "float64[pyarrow]", "g": "string[pyarrow]"})
    odd.loc[5, "x"] = None
    plain = base.copy()
    plain.loc[5, "x"] = np.nan
    fit = _same_fit(engine, plain, odd)
    assert fit.n_dropped == 1


@pytest.mark.parametrize("engine", TWO)
def test_nullable_numbers(base, engine):
    odd = base.astype({"x": "Float64"})
    odd.loc[2, "x"] = pd.NA
    plain = base.copy()
    plain.loc[2, "x"] = np.nan
    assert _same_fit(engine, plain, odd).n_dropped == 1


@pytest.mark.parametrize("engine", TWO)
def test_nullable_boolean(base, engine):
    flag = pd.array(np.tile([True, False, True], len(base) // 3), dtype="boolean")
    flag[7] = pd.NA
    fit = ENGINES[engine](base.assign(x=flag))
    assert fit.n_dropped == 1 and fit.nobs == len(base) - 1
    assert len(fit.fixef()) == 2 and np.isfinite(fit.fixef()).all()
    plain = ENGINES[engine](base.assign(x=np.tile([True, False, True], len(base) // 3)).drop(index=7))
    np.testing.assert_allclose(fit.fixef().to_numpy(), plain.fixef().to_numpy(), rtol=1e-6)


@pytest.mark.parametrize("engine", TWO)
def test_tz_aware_datetimes_are_seconds_as_in_r(base, engine):
    # R's POSIXct holds seconds since 1970 UTC; statsmodels reads the column the same way
    start = pd.Timestamp("1970-01-02 00:00", tz="Europe/Berlin")
    stamps = start + pd.to_timedelta(np.round(base["x"] * 3600), unit="s")
    seconds = (stamps.dt.tz_convert("UTC") - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds()
    _same_fit(engine, base.assign(x=seconds.to_numpy()), base.assign(x=stamps))


def test_engines_agree_on_dates():
    d = pd.DataFrame({"y": np.arange(24.0) % 5 + np.repeat([0.0, 1.0, 3.0], 8),
                      "g": np.repeat(["a", "b", "c"], 8),
                      "x": [dt.date(1970, 1, 1) + dt.timedelta(days=int(i)) for i in range(24)]})
    sm = _quiet(pa.mixedlm, "y ~ x", d, groups="g")
    r = _quiet(pa.lmer, "y ~ x + (1 | g)", d)
    np.testing.assert_allclose(sm.fixef()["x"], r.fixef()["x"], rtol=1e-4)


def test_model_columns_never_mutates_and_copies(base):
    from pylme_alliance.engines.datacheck import model_columns

    d = base.assign(x=pd.Series(list(base["x"]), dtype=object)).set_index(np.arange(100, 100 + len(base)))
    before = d.copy()
    out = model_columns(d, ["y", "x"], target="statsmodels")
    out.loc[0, "y"] = -1.0
    pd.testing.assert_frame_equal(d, before)
    assert list(out.index) == list(range(len(base))) and out["x"].dtype == np.float64
