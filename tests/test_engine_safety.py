"""The R engines never turn input into code, survive absurd formulas, and refuse what they
cannot fit with a PylmeError that names the problem (issue 8, engine side)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pylme_alliance as pa
from pylme_alliance import PylmeError
from pylme_alliance.engines._names import NameMap

SRC = Path(__file__).resolve().parents[1] / "src"
GOLDEN = Path(__file__).parent / "golden" / "data"


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    df = pd.read_csv(GOLDEN / "sleepstudy.csv")
    df["Subject"] = df["Subject"].astype(str).astype("category")
    return df


def renamed(sleep: pd.DataFrame, days: str, subject: str) -> pd.DataFrame:
    return sleep.rename(columns={"Days": days, "Subject": subject})


def bt(name: str) -> str:
    """A column name as a formula writes it: in backticks, R's escapes for ` and \\."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


# ---------------------------------------------------------------- the name map
def test_name_map_round_trip_of_built_terms():
    names = NameMap(["arm", "x", "a$b", "TRUE"])
    to = names.to_r
    assert names.to_user(f"{to['arm']}B") == "armB"
    assert names.to_user(f"{to['x']}:{to['a$b']}") == "x:a$b"
    assert names.to_user(f"I({to['x']}^2)") == "I(x^2)"
    assert names.to_user(f"sd__{to['x']}") == "sd__x"
    assert names.to_user(f"cor__(Intercept).{to['TRUE']}") == "cor__(Intercept).TRUE"
    # a level glued to a name is data: "v1_2" is level "2" of the first column
    assert names.to_user(f"{to['arm']}2") == "arm2"
    assert names.to_user("(Intercept)") == "(Intercept)"
    assert names.columns_in(f"{to['x']}:{to['arm']}B") == ["x", "arm"]


# ------------------------------------------------------ input never becomes code
MARKER_NAME = "system('touch {path}')"


@pytest.mark.parametrize("where", ["fixed", "random", "random_key", "ar1"])
def test_lme_does_not_run_a_column_name(where, sleep, tmp_path):
    marker = tmp_path / "marker"
    col = MARKER_NAME.format(path=marker)
    df = sleep.copy()
    df["t"] = df["Days"].astype(int)
    if where == "fixed":
        df[col] = df["Days"]
        fit = quiet(pa.lme, f"Reaction ~ {bt(col)}", df, random="~ 1 | Subject")
        assert col in fit.fixef().index
    elif where == "random":
        df[col] = df["Subject"]
        fit = quiet(pa.lme, "Reaction ~ Days", df, random=f"~ 1 | {bt(col)}")
        assert list(fit.ranef()) == [col]
    elif where == "random_key":
        df[col] = df["Subject"]
        fit = quiet(pa.lme, "Reaction ~ Days", df, random={col: "~ 1"})
        assert list(fit.ranef()) == [col]
        assert fit.glance()[f"ngrps_{col}"].iloc[0] == 18
    else:
        df[col] = df["Subject"]
        fit = quiet(pa.lme, "Reaction ~ Days", df, random=f"~ 1 | {bt(col)}",
                    correlation=pa.AR1(f"~ t | {bt(col)}"))
        assert "phi" in fit.tidy("ran_pars")["term"].tolist()
    assert not marker.exists()
    assert fit.nobs == 180


ODD = ["a$b", "dose (mg)", "it's", 'say "hi"', "back`tick", "größe_µ", "función", "1st",
       "TRUE", "NULL", "T", "F", "pi", "NA", "Inf", "NaN", "function", "C", "if", "..1"]


@pytest.mark.parametrize("name", ODD)
def test_lmer_odd_names_fit_like_plain_ones(name, sleep):
    plain = quiet(pa.lmer, "Reaction ~ Days + (Days | Subject)", sleep)
    df = renamed(sleep, name, "Subject")
    fit = quiet(pa.lmer, f"Reaction ~ {bt(name)} + ({bt(name)} | Subject)", df)
    np.testing.assert_allclose(fit.fixef().to_numpy(), plain.fixef().to_numpy(), rtol=1e-10)
    # names come back without backticks, in every table
    assert list(fit.fixef().index) == ["(Intercept)", name]
    assert list(fit.vcov().columns) == ["(Intercept)", name]
    assert fit.tidy()["term"].tolist() == ["(Intercept)", name]
    assert f"sd__{name}" in fit.tidy("ran_pars")["term"].tolist()
    assert f"cor__(Intercept).{name}" in fit.tidy("ran_pars")["term"].tolist()
    assert list(fit.ranef()["Subject"].columns) == ["(Intercept)", name]
    assert set(fit.tidy("ran_vals")["term"]) == {"(Intercept)", name}
    assert set(fit.tidy("ran_coefs")["term"]) == {"(Intercept)", name}


@pytest.mark.parametrize("name", ["TRUE", "function", "a$b", "back`tick", "NA"])
def test_odd_grouping_names_in_every_engine(name, sleep):
    df = renamed(sleep, "Days", name)
    g = bt(name)
    fits = {
        "lmer": quiet(pa.lmer, f"Reaction ~ Days + (1 | {g})", df),
        "lme": quiet(pa.lme, "Reaction ~ Days", df, random=f"~ 1 | {g}"),
        "glmmtmb": quiet(pa.glmmtmb, f"Reaction ~ Days + (1 | {g})", df),
    }
    for engine, fit in fits.items():
        assert list(fit.ranef()) == [name], engine
        assert fit.glance()[f"ngrps_{name}"].iloc[0] == 18, engine
        assert (fit.tidy("ran_pars")["group"] == name).any(), engine
        assert set(fit.tidy("ran_vals")["group"]) == {name}, engine
        assert fit.tidy("ran_vals")["level"].astype(str).isin(df[name].astype(str)).all(), engine
        assert len(fit.predict(df.head(3))) == 3, engine


@pytest.mark.parametrize("engine", ["lme", "glmmtmb"])
@pytest.mark.parametrize("name", ["TRUE", "NULL", "pi", "a$b"])
def test_odd_predictor_names_in_lme_and_glmmtmb(engine, name, sleep):
    df = renamed(sleep, name, "Subject")
    if engine == "lme":
        fit = quiet(pa.lme, f"Reaction ~ {bt(name)}", df, random="~ 1 | Subject")
        plain = quiet(pa.lme, "Reaction ~ Days", sleep, random="~ 1 | Subject")
    else:
        fit = quiet(pa.glmmtmb, f"Reaction ~ {bt(name)} + (1 | Subject)", df)
        plain = quiet(pa.glmmtmb, "Reaction ~ Days + (1 | Subject)", sleep)
    assert list(fit.fixef().index) == ["(Intercept)", name]
    np.testing.assert_allclose(fit.fixef().to_numpy(), plain.fixef().to_numpy(), rtol=1e-6)


def test_factor_terms_interactions_and_transforms_come_back_named(sleep):
    df = sleep.copy()
    df["the arm"] = pd.Categorical(np.where(df["Subject"].cat.codes % 2 == 0, "A", "B"))
    df["d$y"] = df["Days"]
    fit = quiet(pa.lmer, "Reaction ~ `the arm` * `d$y` + I(`d$y`^2) + (1 | Subject)", df)
    assert list(fit.fixef().index) == ["(Intercept)", "the armB", "d$y", "I(d$y^2)", "the armB:d$y"]
    new = df.head(4).copy()
    np.testing.assert_allclose(fit.predict(new), fit.augment()["fitted"].to_numpy()[:4], rtol=1e-10)


def test_unquoted_constants_with_a_column_of_that_name_are_refused(sleep):
    df = renamed(sleep, "TRUE", "Subject")
    with pytest.raises(PylmeError, match="`TRUE`"):
        pa.lmer("Reaction ~ TRUE + (1 | Subject)", df)


def test_symbols_t_f_pi_mean_the_column_when_there_is_one(sleep):
    df = renamed(sleep, "T", "Subject")
    fit = quiet(pa.lmer, "Reaction ~ T + (1 | Subject)", df)  # the column, not TRUE
    assert list(fit.fixef().index) == ["(Intercept)", "T"]
    plain = quiet(pa.lmer, "Reaction ~ Days + (1 | Subject)", sleep)
    np.testing.assert_allclose(fit.fixef().to_numpy(), plain.fixef().to_numpy(), rtol=1e-10)


# ------------------------------------------------------------------------ NUL
def test_nul_is_refused_everywhere(sleep):
    df = sleep.assign(s=1.0)
    with pytest.raises(PylmeError, match="NUL"):
        pa.lmer("Reaction ~ (1|Subject) + Days\x00 + s", df)
    with pytest.raises(PylmeError, match="NUL"):
        pa.lme("Reaction ~ Days", sleep, random="~ 1 | Subject\x00")
    with pytest.raises(PylmeError, match="NUL"):
        pa.lme("Reaction ~ Days", sleep, random={"Subject\x00": "~ 1"})
    with pytest.raises(PylmeError, match="NUL"):
        pa.lme("Reaction ~ Days", sleep, random="~ 1 | Subject", correlation=pa.AR1("~ 1 | Subject\x00"))
    with pytest.raises(PylmeError, match="NUL"):
        pa.glmmtmb("Reaction ~ Days + (1|Subject)", sleep, dispformula="~1\x00")
    with pytest.raises(PylmeError, match="NUL"):
        pa.lmer("Reaction ~ Days + (1|Subject)", sleep, control={"optimizer": "bobyqa\x00"})


# ------------------------------------------------------------------- control=
def test_glmmtmb_optimizer_cannot_name_an_r_function(sleep):
    with pytest.raises(PylmeError, match="optimizer"):
        pa.glmmtmb("Reaction ~ Days + (1 | Subject)", sleep, control={"optimizer": "system"})
    fit = quiet(pa.glmmtmb, "Reaction ~ Days + (1 | Subject)", sleep,
                control={"optimizer": "optim", "optArgs": {"method": "BFGS"}})
    plain = quiet(pa.glmmtmb, "Reaction ~ Days + (1 | Subject)", sleep)
    # optim's BFGS stops at a slightly different point than nlminb: same optimum, not same digits
    np.testing.assert_allclose(fit.fixef().to_numpy(), plain.fixef().to_numpy(), rtol=5e-3)
    fields = dict(zip([str(n) for n in fit.r.do_slot("names")], fit.r))
    assert "counts" in [str(n) for n in fields["fit"].do_slot("names")]  # optim's answer, not nlminb's
    with pytest.raises(PylmeError, match="method"):
        pa.glmmtmb("Reaction ~ Days + (1 | Subject)", sleep, control={"optArgs": {"method": "system"}})


@pytest.mark.parametrize("engine, control, match", [
    ("lmer", {"optimizer": "system"}, "optimizer"),
    ("lmer", {"optimizr": "bobyqa"}, "accepted"),
    ("lmer", {"optCtrl": {"maxfun": "1e5"}}, "number"),
    ("lmer", {"calc.derivs": "no"}, "True or False"),
    ("lme", {"returnObject": False}, "returnObject"),
    ("lme", {"maxIter": 2.5}, "whole number"),
    ("lme", {"opt": "system"}, "nlminb"),
    ("lme", {"unknown": 1}, "maxIter"),
    ("glmmtmb", {"parallel": 0}, "positive"),
    ("glmmtmb", {"foo": 1}, "profile"),
])
def test_control_allow_list(engine, control, match, sleep):
    with pytest.raises(PylmeError, match=match):
        if engine == "lmer":
            pa.lmer("Reaction ~ Days + (1 | Subject)", sleep, control=control)
        elif engine == "lme":
            pa.lme("Reaction ~ Days", sleep, random="~ 1 | Subject", control=control)
        else:
            pa.glmmtmb("Reaction ~ Days + (1 | Subject)", sleep, control=control)


def test_accepted_control_options_reach_r(sleep):
    fit = quiet(pa.lmer, "Reaction ~ Days + (Days | Subject)", sleep,
                control={"optimizer": "Nelder_Mead", "optCtrl": {"maxfun": 20000},
                         "check.conv.singular": "ignore", "calc.derivs": False})
    assert fit.converged
    lme_fit = quiet(pa.lme, "Reaction ~ Days", sleep, random="~ Days | Subject",
                    control={"maxIter": 200, "opt": "optim", "optimMethod": "BFGS", "returnObject": True})
    np.testing.assert_allclose(lme_fit.fixef().to_numpy(), fit.fixef().to_numpy(), rtol=1e-4)
    # an optimizer that stops at once shows the option was used
    short = quiet(pa.glmmtmb, "Reaction ~ Days + (Days | Subject)", sleep,
                  control={"optCtrl": {"iter.max": 1, "eval.max": 2}})
    assert not short.converged


# ----------------------------------------------------------- absurd formulas
def run_python(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, timeout=600)


def test_long_formulas_fit_without_killing_python():
    out = run_python("""
        import warnings
        import numpy as np, pandas as pd
        import pylme_alliance as pa
        warnings.simplefilter("ignore")
        rng = np.random.default_rng(1)
        n = 400
        df = pd.DataFrame({"y": rng.normal(size=n), "g": np.repeat(np.arange(40), 10).astype(str),
                           "x": rng.normal(size=n)})
        xs = pd.DataFrame(rng.normal(size=(n, 120)), columns=[f"x{i}" for i in range(120)])
        df = pd.concat([df, xs], axis=1)
        fit = pa.lmer("y ~ (1|g)" + " + x" * 400, df)
        assert list(fit.fixef().index) == ["(Intercept)", "x"], fit.fixef().index
        terms = " + ".join(f"x{i}" for i in range(120))
        wide = pa.lmer("y ~ (1|g) + " + terms, df)
        assert list(wide.fixef().index) == ["(Intercept)"] + [f"x{i}" for i in range(120)]
        for engine in (pa.glmmtmb,):
            assert list(engine("y ~ (1|g)" + " + x" * 400, df).fixef().index) == ["(Intercept)", "x"]
        lme = pa.lme("y ~ x" + " + x" * 400, df, random="~ 1 | g")
        assert list(lme.fixef().index) == ["(Intercept)", "x"]
        try:
            pa.lmer("y ~ (1|g)" + " + x" * 12000, df)
        except pa.PylmeError as exc:
            assert "too large" in str(exc), exc
        else:
            raise AssertionError("a 12000-term formula was not refused")
        try:
            pa.lmer("y ~ (1|g) + " + " * ".join(["x"] * 400), df)
        except pa.PylmeError as exc:
            assert "nested too deeply" in str(exc), exc
        else:
            raise AssertionError("a 400-deep formula was not refused")
        print("OK")
    """)
    assert out.returncode == 0, (out.returncode, out.stderr[-3000:])
    assert "OK" in out.stdout


def test_balanced_long_formula_gives_the_same_fit():
    rng = np.random.default_rng(3)
    n = 300
    df = pd.DataFrame(rng.normal(size=(n, 40)), columns=[f"x{i}" for i in range(40)])
    df["g"] = np.repeat(np.arange(30), 10).astype(str)
    df["y"] = df["x0"] + rng.normal(size=n)
    terms = " + ".join(f"x{i}" for i in range(40))  # 40 > the 32 above which R balances the chain
    fit = quiet(pa.lmer, f"y ~ {terms} + (1|g)", df)
    short = quiet(pa.lmer, "y ~ x0 + x1 + (1|g)", df)
    assert list(fit.fixef().index) == ["(Intercept)"] + [f"x{i}" for i in range(40)]
    X = np.column_stack([np.ones(n), df[[f"x{i}" for i in range(40)]].to_numpy()])
    ols = np.linalg.lstsq(X, df["y"].to_numpy(), rcond=None)[0]
    # singular random intercept or not, the fixed effects are close to OLS and ordered like it
    np.testing.assert_allclose(fit.fixef().to_numpy(), ols, atol=0.2)
    assert short.nobs == fit.nobs


# ------------------------------------------------------------ bad model input
@pytest.mark.parametrize("engine", ["lmer", "glmmtmb", "lme"])
def test_one_sided_formula_is_refused(engine, sleep):
    with pytest.raises(PylmeError, match="no response"):
        if engine == "lmer":
            pa.lmer("~ Days + (1 | Subject)", sleep)
        elif engine == "glmmtmb":
            pa.glmmtmb("~ Days + (1 | Subject)", sleep)
        else:
            pa.lme("~ Days", sleep, random="~ 1 | Subject")


@pytest.mark.parametrize("engine", ["lmer", "glmmtmb", "lme"])
def test_constant_or_collinear_predictor_is_refused_by_name(engine, sleep):
    df = sleep.copy()
    df["dose mg"] = 5.0
    df["days2"] = 2 * df["Days"] + 1
    for formula_rhs, culprit in [("Days + `dose mg`", "dose mg"), ("Days + days2", "days2")]:
        with pytest.raises(PylmeError, match=culprit.replace(" ", " ")) as err:
            if engine == "lmer":
                pa.lmer(f"Reaction ~ {formula_rhs} + (1 | Subject)", df)
            elif engine == "glmmtmb":
                pa.glmmtmb(f"Reaction ~ {formula_rhs} + (1 | Subject)", df)
            else:
                pa.lme(f"Reaction ~ {formula_rhs}", df, random="~ 1 | Subject")
        assert "collinear" in str(err.value)


def test_constant_only_among_complete_rows_is_refused(sleep):
    df = sleep.copy()
    df["z"] = np.where(df["Days"] < 5, 1.0, 2.0)
    df.loc[df["Days"] >= 5, "Reaction"] = np.nan  # z is constant on the rows the fit uses
    with pytest.raises(PylmeError, match="'z'"):
        pa.glmmtmb("Reaction ~ Days + z + (1 | Subject)", df)


@pytest.mark.parametrize("engine", ["lmer", "glmmtmb", "lme"])
def test_predict_new_group_gives_population_prediction(engine, sleep):
    if engine == "lmer":
        fit = quiet(pa.lmer, "Reaction ~ Days + (Days | Subject)", sleep)
    elif engine == "glmmtmb":
        fit = quiet(pa.glmmtmb, "Reaction ~ Days + (Days | Subject)", sleep)
    else:
        fit = quiet(pa.lme, "Reaction ~ Days", sleep, random="~ Days | Subject")
    new = pd.DataFrame({"Days": [1.0, 4.0], "Subject": pd.Categorical(["308", "nobody"])})
    got = fit.predict(new)
    population = fit.predict(new, include_random=False)
    assert np.isfinite(got).all()
    assert got[1] == pytest.approx(population[1], rel=1e-10)
    known = fit.predict(sleep[(sleep["Subject"] == "308") & (sleep["Days"] == 1)])
    assert got[0] == pytest.approx(known[0], rel=1e-10)


def test_lme_nested_new_inner_level_gets_the_outer_prediction():
    data = pa.simulate(n_patients=30, n_therapists=5, seed=4).data
    fit = quiet(pa.lme, "outcome ~ session", data, random="~ 1 | therapist/patient")
    row = data.iloc[[0]].copy()
    row["patient"] = "a new patient"
    got = fit.predict(row)[0]
    therapist = fit.ranef()["therapist"].loc[str(row["therapist"].iloc[0]), "(Intercept)"]
    population = fit.predict(row, include_random=False)[0]
    assert got == pytest.approx(population + therapist, rel=1e-10)
