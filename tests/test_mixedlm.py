"""mixedlm(): statsmodels MixedLM behind MixedFit, checked against lme4's numbers in
tests/golden (written by R directly, see tests/golden/README.md)."""
from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest

import pylme_alliance as pa
from pylme_alliance.results import TIDY_COLUMNS

from golden_cases import case, data_for


def _fit(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pa.mixedlm(*args, **kwargs)


@pytest.fixture(scope="module")
def sleep():
    return data_for("sleepstudy_slopes_ml")


@pytest.fixture(scope="module")
def slopes_ml(sleep):
    return _fit("Reaction ~ Days", sleep, groups="Subject", re_formula="~Days", reml=False)


@pytest.fixture(scope="module")
def slopes_reml(sleep):
    return _fit("Reaction ~ Days", sleep, groups="Subject", re_formula="~Days", reml=True)


def _rel(a, b):
    return abs(a - b) / max(abs(b), 1e-12)


def _ran_pars(fit, rename=None):
    table = fit.tidy("ran_pars")
    rename = rename or {}
    return {(rename.get(g, g), t): e for g, t, e in zip(table.group, table.term, table.estimate)}


def _check_against(fit, name, *, est_tol, sd_tol, rename=None):
    gold = case(name)
    fixed = fit.tidy("fixed").set_index("term")
    for row in gold["fixed"]:
        assert _rel(fixed.loc[row["term"], "estimate"], row["estimate"]) < est_tol, row["term"]
        assert _rel(fixed.loc[row["term"], "std_error"], row["std_error"]) < sd_tol, row["term"]
    mine = _ran_pars(fit, rename)
    assert set(mine) == {(r["group"], r["term"]) for r in gold["ran_pars"]}
    for row in gold["ran_pars"]:
        got = mine[(row["group"], row["term"])]
        if row["term"].startswith("cor__"):
            assert abs(got - row["estimate"]) < sd_tol, row
        else:
            assert _rel(got, row["estimate"]) < sd_tol, row
    assert _rel(fit.stats["logLik"], gold["glance"]["logLik"]) < est_tol
    assert fit.nobs == gold["glance"]["nobs"]
    assert fit.stats["df"] == gold["glance"]["df"]


def test_ml_slopes_match_lme4(slopes_ml):
    _check_against(slopes_ml, "sleepstudy_slopes_ml", est_tol=1e-4, sd_tol=1e-3)
    gold = case("sleepstudy_slopes_ml")["glance"]
    assert _rel(slopes_ml.stats["AIC"], gold["AIC"]) < 1e-6
    assert _rel(slopes_ml.stats["BIC"], gold["BIC"]) < 1e-6
    assert slopes_ml.stats["ngrps"] == {"Subject": 18}
    assert slopes_ml.stats["reml"] is False
    assert slopes_ml.converged and not slopes_ml.singular and not slopes_ml.stats["degenerate"]


def test_reml_slopes_match_lme4(slopes_reml):
    _check_against(slopes_reml, "sleepstudy_slopes_reml", est_tol=1e-4, sd_tol=1e-3)
    g = slopes_reml.glance().iloc[0]
    assert np.isnan(g["AIC"]) and np.isnan(g["BIC"]) and bool(g["reml"])
    assert g["ngrps_Subject"] == 18


def test_ranef_fitted_predict_match_lme4(slopes_ml, sleep):
    gold = case("sleepstudy_slopes_ml")
    re = slopes_ml.ranef()["Subject"]
    assert list(re.columns) == ["(Intercept)", "Days"]
    head = gold["ranef"]["Subject"]
    for term in ("(Intercept)", "Days"):
        got = re.loc[head["levels"], term].to_numpy()
        np.testing.assert_allclose(got, head[term], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(slopes_ml.predict()[:10], gold["fitted_head"], rtol=1e-5)
    aug = slopes_ml.augment()
    np.testing.assert_allclose(aug["resid"].to_numpy()[:10], gold["resid_head"], atol=1e-3)
    np.testing.assert_allclose(aug["fitted"] + aug["resid"], sleep["Reaction"], rtol=1e-12)
    # newdata: same rows give the same predictions; fixed part only; unknown subject
    np.testing.assert_allclose(slopes_ml.predict(sleep), slopes_ml.predict(), rtol=1e-10)
    fe = slopes_ml.fixef()
    np.testing.assert_allclose(slopes_ml.predict(sleep, include_random=False),
                               fe["(Intercept)"] + fe["Days"] * sleep["Days"], rtol=1e-12)
    new = pd.DataFrame({"Days": [0.0, 5.0], "Subject": ["308", "nobody"]})
    pred = slopes_ml.predict(new)
    assert pred[1] == pytest.approx(fe["(Intercept)"] + 5 * fe["Days"])
    assert pred[0] == pytest.approx(fe["(Intercept)"] + re.loc["308", "(Intercept)"])


def test_tidy_layout(slopes_ml):
    fixed = slopes_ml.tidy("fixed")
    assert list(fixed.columns) == TIDY_COLUMNS
    assert fixed.term.tolist() == ["(Intercept)", "Days"]
    assert fixed.df.isna().all()
    z = fixed.estimate / fixed.std_error
    np.testing.assert_allclose(fixed.statistic, z, rtol=1e-10)
    assert _ran_pars(slopes_ml).keys() == {("Subject", "sd__(Intercept)"), ("Subject", "sd__Days"),
                                           ("Subject", "cor__(Intercept).Days"),
                                           ("Residual", "sd__Observation")}
    vals = slopes_ml.tidy("ran_vals")
    assert len(vals) == 36 and vals.std_error.gt(0).all()
    coefs = slopes_ml.tidy("ran_coefs")
    re = slopes_ml.ranef()["Subject"]
    row = coefs[(coefs.level == "309") & (coefs.term == "Days")].estimate.item()
    assert row == pytest.approx(slopes_ml.fixef()["Days"] + re.loc["309", "Days"])
    assert slopes_ml.tidy("fixed", conf_int=True).conf_low.notna().all()
    np.testing.assert_allclose(np.sqrt(np.diag(slopes_ml.vcov())), fixed.std_error, rtol=1e-10)
    assert slopes_ml.contrast({"Days": 1.0})["estimate"] == pytest.approx(slopes_ml.fixef()["Days"])
    assert slopes_ml.backend.model_result.converged
    with pytest.raises(pa.PylmeError, match="no R object"):
        _ = slopes_ml.r
    assert "statsmodels" in slopes_ml.summary()
    detached = pickle.loads(pickle.dumps(slopes_ml.detach()))
    np.testing.assert_allclose(detached.predict(), slopes_ml.predict())


def test_nested_variance_component_matches_lme4():
    data = data_for("pastes_nested")
    fit = _fit("strength ~ 1", data, groups="batch", vc_formula={"cask": "0 + C(cask)"})
    _check_against(fit, "pastes_nested", est_tol=1e-3, sd_tol=1e-3, rename={"cask": "cask:batch"})
    gold = case("pastes_nested")
    assert fit.stats["ngrps"] == {"batch": 10, "cask": 30}
    re = fit.ranef()
    head = gold["ranef"]["cask:batch"]
    np.testing.assert_allclose(re["cask"].loc[head["levels"], "(Intercept)"], head["(Intercept)"],
                               atol=1e-3)
    np.testing.assert_allclose(re["batch"].loc[gold["ranef"]["batch"]["levels"], "(Intercept)"],
                               gold["ranef"]["batch"]["(Intercept)"], atol=1e-3)
    np.testing.assert_allclose(fit.predict()[:10], gold["fitted_head"], atol=1e-3)
    np.testing.assert_allclose(fit.predict(data), fit.predict(), rtol=1e-10)


def test_missing_rows_dropped_and_input_untouched(sleep):
    data = sleep.copy()
    data["extra"] = "x"
    data.loc[[0, 5], "Reaction"] = np.nan
    data.loc[7, "Days"] = np.nan
    data.loc[9, "extra"] = None  # not a model column: must not drop the row
    before = data.copy()
    fit = _fit("Reaction ~ Days", data, groups="Subject")
    pd.testing.assert_frame_equal(data, before)
    assert fit.nobs == 177 and fit.n_dropped == 3
    assert list(fit.data.index) == [i for i in range(180) if i not in (0, 5, 7)]
    assert len(fit.predict()) == 177


def test_q_quoted_column_names(sleep):
    data = sleep.rename(columns={"Days": "days of sleep"})
    fit = _fit('Reaction ~ Q("days of sleep")', data, groups="Subject", re_formula='~Q("days of sleep")',
               reml=False)
    ref = case("sleepstudy_slopes_ml")
    assert _rel(fit.stats["logLik"], ref["glance"]["logLik"]) < 1e-4
    assert ("Subject", 'sd__Q("days of sleep")') in _ran_pars(fit)


@pytest.mark.parametrize("kwargs, match", [
    ({"formula": "Reaction ~ Dayz"}, r"'Dayz' \(did you mean 'Days'\?\)"),
    ({"formula": "Reaction ~ Days", "groups": "Subjekt"}, r"'Subjekt' \(did you mean 'Subject'\?\)"),
    ({"formula": "Reaction ~ Days", "re_formula": "~ np.log(Dais + 1)"}, "'Dais'"),
    ({"formula": "Subject ~ Days"}, "response column 'Subject' must be numeric"),
    ({"formula": "~ Days"}, "no response"),
    ({"formula": "Reaction ~ Days", "groups": "one"}, "'one' has 1 level"),
    ({"formula": "Reaction ~ Days + empty"}, "no row of the data is complete"),
    ({"formula": "Reaction ~ Days", "vc_formula": ["0 + C(Subject)"]}, "vc_formula must be"),
])
def test_validation(sleep, kwargs, match):
    data = sleep.assign(one="a", empty=np.nan)
    args = {"groups": "Subject", **kwargs}
    formula = args.pop("formula")
    with pytest.raises(pa.PylmeError, match=match):
        pa.mixedlm(formula, data, **args)


def test_statsmodels_warnings_kept_and_reemitted():
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    data = data_for("singular_fit")  # lme4 finds a zero group variance here
    with pytest.warns(ConvergenceWarning) as record:
        fit = pa.mixedlm("y ~ x", data, groups="group")
    texts = [str(w.message) for w in record if issubclass(w.category, ConvergenceWarning)]
    assert texts and set(texts) <= set(fit.warnings)
    assert fit.singular and fit.stats["degenerate"]
    assert fit.tidy("ran_pars").set_index("term").loc["sd__(Intercept)", "estimate"] < 1e-3


def test_package_import_does_not_start_r():
    import subprocess
    import sys

    code = ("import pylme_alliance as pa, pandas as pd, numpy as np\n"
            "d = pd.DataFrame({'y': np.arange(20.0) % 7, 'x': np.arange(20.0), 'g': list('ab') * 10})\n"
            "pa.mixedlm('y ~ x', d, groups='g')\n"
            "from pylme_alliance import bridge\nassert not bridge.is_started()\n")
    subprocess.run([sys.executable, "-W", "ignore", "-c", code], check=True)
