"""Names and values that came back wrong without a word (issue 20, "Silently wrong",
engine side): each is now exact or refused with the column named."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import pylme_alliance as pa
from pylme_alliance import PylmeError
from pylme_alliance.engines._names import NameMap
from pylme_alliance.engines.datacheck import model_columns


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    n = 240
    out = pd.DataFrame({
        "g": np.repeat([f"p{i}" for i in range(24)], 10),
        "x": rng.normal(size=n),
        "arm": np.tile(["v1_hi", "lo"], n // 2),
    })
    out["y"] = out["x"] + (out["arm"] == "v1_hi") * 1.0 + rng.normal(size=n)
    return out


def test_a_level_that_looks_like_a_generated_name_comes_back_exactly(df):
    for fit in (quiet(pa.lmer, "y ~ x + arm + (1|g)", df), quiet(pa.lme, "y ~ x + arm", df, random="~ 1 | g"),
                quiet(pa.glmmtmb, "y ~ x + arm + (1|g)", df)):
        assert list(fit.fixef().index) == ["(Intercept)", "x", "armv1_hi"], fit.engine
        assert "armv1_hi" in fit.tidy()["term"].tolist()
        assert list(fit.vcov().columns)[-1] == "armv1_hi"


def test_spss_style_labels_in_categories_come_back_exactly(df):
    cat = df.assign(arm=pd.Categorical(df["arm"], categories=["lo", "v1_hi"]))
    fit = quiet(pa.lmer, "y ~ x + arm + (1 + x|g)", cat)
    assert fit.fixef().index[-1] == "armv1_hi"


def test_name_map_keeps_glued_levels_and_finds_their_columns():
    names = NameMap.of(pd.DataFrame({"y": [1.0], "arm": ["v1_hi"], "x": [0.5]}))
    assert names.to_user("v2_v1_hi:v3_") == "armv1_hi:x"
    assert names.columns_in("v2_v1_hi:v3_") == ["arm", "x"]
    assert names.to_user("v1_") == "y"


def test_a_column_named_intercept_is_refused(df):
    data = df.assign(**{"(Intercept)": df["x"] * 2 + 1})
    with pytest.raises(PylmeError, match=r"'\(Intercept\)' is used in the model"):
        pa.lmer("y ~ `(Intercept)` + (1|g)", data)
    with pytest.raises(PylmeError, match="'Intercept' is used as a predictor"):
        pa.mixedlm("y ~ Intercept", df.assign(Intercept=df["x"]), groups="g")


def test_full_width_name_beside_its_ascii_twin_is_refused(df):
    data = df.assign(**{"ｘ": -df["x"]})
    with pytest.raises(PylmeError, match="Unicode compatibility"):
        pa.lmer("y ~ ｘ + (1|g)", data)
    with pytest.raises(PylmeError, match="NFKC"):
        pa.mixedlm("y ~ ｘ", data, groups="g")
    # alone, the full-width column is fitted under its own name (Q() for patsy)
    alone = df.rename(columns={"x": "ｘ"})
    assert quiet(pa.mixedlm, 'y ~ Q("ｘ")', alone, groups="g").fixef().index[-1] == 'Q("ｘ")'


@pytest.mark.parametrize("name", ["g", "Residual"])
def test_vc_formula_names_that_clash_with_other_rows_are_refused(df, name):
    with pytest.raises(PylmeError, match="two rows would share it"):
        pa.mixedlm("y ~ x", df, groups="g", vc_formula={name: "0 + C(arm)"})


def test_integers_beyond_double_precision_are_refused():
    data = pd.DataFrame({"session": np.array([1, 10**19], dtype=np.uint64)})
    with pytest.raises(PylmeError, match=r"'session' has 1 integer\(s\) beyond 2\^53"):
        model_columns(data, ["session"])
    nullable = pd.DataFrame({"session": pd.array([1, None, 10**19], dtype="UInt64")})
    with pytest.raises(PylmeError, match="beyond 2\\^53"):
        model_columns(nullable, ["session"])
    with pytest.raises(PylmeError, match="beyond 2\\^53"):
        model_columns(pd.DataFrame({"session": [1, -(2**62)]}), ["session"])
    ok = pd.DataFrame({"session": np.array([1, 2**53], dtype=np.int64)})
    assert model_columns(ok, ["session"])["session"].tolist() == [1, 2**53]


def test_nul_in_a_grouping_level_names_the_users_column(df):
    data = df.assign(therapist=np.where(np.arange(len(df)) % 2, "a\x00b", "c"))
    with pytest.raises(PylmeError, match="column 'therapist'") as info:
        pa.lmer("y ~ x + (1|therapist)", data)
    assert "v" not in str(info.value).split("column")[1].split()[0].strip("'")


def test_an_unused_category_is_dropped_not_called_collinear(df):
    cat = df.assign(arm=pd.Categorical(df["arm"], categories=["lo", "v1_hi", "never"]))
    fit = quiet(pa.lmer, "y ~ x + arm + (1|g)", cat)
    assert list(fit.fixef().index) == ["(Intercept)", "x", "armv1_hi"]
    # a level held only by rows the model drops (missing x) is unused among the complete rows too
    partial = df.assign(arm=np.where(np.arange(len(df)) == 0, "rare", df["arm"]),
                        x=np.where(np.arange(len(df)) == 0, np.nan, df["x"]))
    assert len(quiet(pa.lmer, "y ~ x + arm + (1|g)", partial).fixef()) == 3


def test_from_statsmodels_on_a_result_without_its_data_says_so():
    import statsmodels.formula.api as smf

    from golden_cases import data_for

    sleep = data_for("sleepstudy_slopes_reml")
    result = quiet(smf.mixedlm("Reaction ~ Days", sleep, groups="Subject").fit)
    result.model.endog = None  # what a result saved with remove_data=True holds
    result.model.exog = None
    with pytest.raises(PylmeError, match=r"does not hold its data \(model.endog, model.exog is empty"):
        pa.from_statsmodels(result)
