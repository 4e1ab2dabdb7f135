"""from_statsmodels(): each design is fitted first in statsmodels by the test, then checked
in R. Expected R numbers come from the golden files (lme4 run directly by
tests/r/make_golden.R) and from the lme4 fits statsmodels ships with its own tests."""
from __future__ import annotations

import dataclasses
import importlib
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pylme_alliance as pa

from golden_cases import case, data_for

smf = pytest.importorskip("statsmodels.formula.api")
from statsmodels.regression.mixed_linear_model import MixedLM, MixedLMParams  # noqa: E402

FIXED_RTOL = 1e-4


def _quiet(fun, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fun(*args, **kwargs)


def _fixed(cc):
    return cc.table[cc.table.kind == "fixed"]


def _row(cc, term, group=""):
    rows = cc.table[(cc.table.term == term) & (cc.table.group == group)]
    assert len(rows) == 1, (term, group, cc.table)
    return rows.iloc[0]


def _assert_converged_agreement(cc):
    assert cc.statsmodels_result.converged
    np.testing.assert_allclose(_fixed(cc).estimate_statsmodels, _fixed(cc).estimate_r, rtol=FIXED_RTOL)
    assert cc.agree, str(cc)
    assert (cc.table.why == "").all()


@pytest.fixture(scope="module")
def sleep():
    return data_for("sleepstudy_slopes_reml")


@pytest.fixture(scope="module")
def trial():
    """Sessions of patients nested in therapists, with a three-level arm."""
    rng = np.random.default_rng(11)
    n_t, n_p, n_s = 12, 6, 7
    therapist = np.repeat(np.arange(n_t), n_p * n_s)
    patient = np.repeat(np.arange(n_t * n_p), n_s)
    session = np.tile(np.arange(n_s), n_t * n_p).astype(float)
    arm = np.array(["cbt", "pdt", "wait"])[patient % 3]
    y = (10 + 0.4 * session + (arm == "pdt") * 1.0 - (arm == "wait") * 0.5 * session
         + rng.normal(0, 1.0, n_t)[therapist] + rng.normal(0, 1.5, n_t * n_p)[patient]
         + rng.normal(0, 0.3, n_t * n_p)[patient] * session + rng.normal(0, 1, len(session)))
    return pd.DataFrame({"outcome": y, "session": session, "therapist": therapist,
                         "patient": [f"p{p}" for p in patient], "arm": arm})


# ----------------------------------------------------------------- designs
def test_random_intercept_matches_lme4_golden():
    data = data_for("sleepstudy_intercept_reml")
    sm = smf.mixedlm("Reaction ~ Days", data, groups="Subject").fit()
    cc = pa.from_statsmodels(sm)
    assert isinstance(cc, pa.Crosscheck)
    _assert_converged_agreement(cc)
    golden = case("sleepstudy_intercept_reml")
    np.testing.assert_allclose(_fixed(cc).estimate_r, [r["estimate"] for r in golden["fixed"]], rtol=1e-6)
    assert cc.loglik["r"] == pytest.approx(golden["glance"]["logLik"], rel=1e-8)
    assert cc.formula == "Reaction ~ Days + (1 | Subject)"
    assert cc.table.kind.tolist() == ["fixed", "fixed", "sd", "residual"]


def test_correlated_slope_converts_scaled_cov_re(sleep):
    sm = smf.mixedlm("Reaction ~ Days", sleep, groups="Subject", re_formula="~Days").fit()
    cc = pa.from_statsmodels(sm)
    _assert_converged_agreement(cc)
    assert cc.formula == "Reaction ~ Days + (1 + Days | Subject)"
    golden = {(r["group"], r["term"]): r["estimate"] for r in case("sleepstudy_slopes_reml")["ran_pars"]}
    # statsmodels' cov_re is already multiplied by scale: its SDs are lme4's SDs
    for (group, term), value in golden.items():
        row = _row(cc, term, group)
        assert row.estimate_statsmodels == pytest.approx(value, rel=1e-4)
        assert row.estimate_r == pytest.approx(value, rel=1e-6)
    assert _row(cc, "cor__(Intercept).Days", "Subject").kind == "cor"
    # the unscaled cov_re would give different SDs: the conversion is not a no-op
    assert np.sqrt(sm.cov_re_unscaled.iloc[0, 0] if hasattr(sm.cov_re_unscaled, "iloc")
                   else sm.cov_re_unscaled[0, 0]) != pytest.approx(golden[("Subject", "sd__(Intercept)")], rel=1e-2)


def test_random_slope_without_intercept(sleep):
    sm = _quiet(smf.mixedlm("Reaction ~ Days", sleep, groups="Subject", re_formula="0 + Days").fit)
    cc = pa.from_statsmodels(sm)
    assert cc.formula == "Reaction ~ Days + (0 + Days | Subject)"
    _assert_converged_agreement(cc)
    assert _row(cc, "sd__Days", "Subject").estimate_r > 0


def test_uncorrelated_slope_free_diagonal(trial):
    free = MixedLMParams.from_components(np.ones(2), np.eye(2))
    sm = smf.mixedlm("outcome ~ session", trial, groups="patient", re_formula="~session").fit(
        free=free, method=["lbfgs"])
    cc = pa.from_statsmodels(sm)
    assert cc.formula == "outcome ~ session + (1 | patient) + (0 + session | patient)"
    assert not (cc.table.kind == "cor").any()
    _assert_converged_agreement(cc)


def test_nested_variance_component_matches_golden():
    data = data_for("pastes_nested")
    sm = smf.mixedlm("strength ~ 1", data, groups="batch", re_formula="1",
                     vc_formula={"cask": "0 + C(cask)"}).fit()
    cc = pa.from_statsmodels(sm)
    assert cc.formula == "strength ~ 1 + (1 | batch) + (1 | batch:cask)"
    _assert_converged_agreement(cc)
    golden = {(r["group"], r["term"]): r["estimate"] for r in case("pastes_nested")["ran_pars"]}
    assert _row(cc, "sd__(Intercept)", "cask").estimate_r == pytest.approx(golden[("cask:batch", "sd__(Intercept)")], rel=1e-5)
    assert _row(cc, "sd__(Intercept)", "batch").estimate_r == pytest.approx(golden[("batch", "sd__(Intercept)")], rel=1e-5)
    assert cc.loglik["r"] == pytest.approx(case("pastes_nested")["glance"]["logLik"], rel=1e-8)


def test_crossed_through_one_group_matches_golden():
    data = data_for("penicillin_crossed").assign(one=1)
    sm = smf.mixedlm("diameter ~ 1", data, groups="one", re_formula="0",
                     vc_formula={"plate": "0 + C(plate)", "sample": "0 + C(sample)"}).fit()
    cc = pa.from_statsmodels(sm)
    assert cc.formula == "diameter ~ 1 + (1 | plate) + (1 | sample)"
    _assert_converged_agreement(cc)
    for r in case("penicillin_crossed")["ran_pars"]:
        if r["group"] != "Residual":
            assert _row(cc, "sd__(Intercept)", r["group"]).estimate_r == pytest.approx(r["estimate"], rel=1e-5)
            assert _row(cc, "sd__(Intercept)", r["group"]).estimate_statsmodels == pytest.approx(r["estimate"], rel=1e-3)


@pytest.mark.parametrize("reml", [True, False])
def test_ml_and_reml_follow_statsmodels(sleep, reml):
    sm = smf.mixedlm("Reaction ~ Days", sleep, groups="Subject", re_formula="~Days").fit(reml=reml)
    cc = pa.from_statsmodels(sm)
    assert cc.r_fit.stats["reml"] is reml
    _assert_converged_agreement(cc)
    golden = case("sleepstudy_slopes_reml" if reml else "sleepstudy_slopes_ml")["glance"]
    assert cc.loglik["r"] == pytest.approx(golden["logLik"], rel=1e-8)
    assert cc.loglik["statsmodels"] == pytest.approx(golden["logLik"], rel=1e-6)


def test_reml_override_is_explained(sleep):
    sm = smf.mixedlm("Reaction ~ Days", sleep, groups="Subject", re_formula="~Days").fit(reml=True)
    cc = pa.from_statsmodels(sm, reml=False)
    assert cc.r_fit.stats["reml"] is False
    assert not cc.agree
    bad = cc.disagreements
    assert bad.why.str.contains("statsmodels fitted by REML and R by ML").all()
    assert any("not comparable" in n for n in cc.notes)


def test_categorical_predictor_and_interaction(trial):
    sm = smf.mixedlm("outcome ~ session * C(arm)", trial, groups="patient", re_formula="~session").fit()
    cc = pa.from_statsmodels(sm)
    _assert_converged_agreement(cc)
    assert _fixed(cc).term.tolist() == ["(Intercept)", "C(arm)[T.pdt]", "C(arm)[T.wait]", "session",
                                        "session:C(arm)[T.pdt]", "session:C(arm)[T.wait]"]
    # a non-default coding travels as statsmodels' own columns: the estimates still agree
    sm2 = smf.mixedlm("outcome ~ session * C(arm, Treatment('wait'))", trial, groups="patient").fit()
    _assert_converged_agreement(pa.from_statsmodels(sm2))


def test_missing_rows_statsmodels_dropped_are_not_used(sleep):
    data = sleep.copy()
    data.loc[[3, 50, 51], "Days"] = np.nan
    before = data.copy()
    sm = smf.mixedlm("Reaction ~ Days", data, groups="Subject", missing="drop").fit()
    cc = pa.from_statsmodels(sm)
    assert cc.r_fit.nobs == sm.nobs == len(data) - 3
    assert any(f"fitted {len(data) - 3} rows" in n for n in cc.notes)
    _assert_converged_agreement(cc)
    pd.testing.assert_frame_equal(data, before)


# ----------------------------------------------------------------- explanations
def test_singular_fit_is_reported():
    data = data_for("singular_fit")
    sm = _quiet(smf.mixedlm("y ~ x", data, groups="group").fit)
    cc = pa.from_statsmodels(sm)
    assert cc.r_fit.stats["singular"]
    assert any("boundary" in n and "R" in n for n in cc.notes)
    sd = _row(cc, "sd__(Intercept)", "group")
    assert sd.estimate_r == pytest.approx(0, abs=1e-8)
    if not sd.agree:
        assert "boundary" in sd.why


def test_nonconverged_statsmodels_said_to_stop_early(trial):
    model = smf.mixedlm("outcome ~ session", trial, groups="therapist", re_formula="1",
                        vc_formula={"patient": "0 + C(patient)", "slope": "0 + C(patient):session"})
    sm = _quiet(model.fit, method=["bfgs"], maxiter=2)
    assert not sm.converged
    cc = pa.from_statsmodels(sm)
    assert cc.loglik["r"] > cc.loglik["statsmodels"] + 1e-3
    assert not cc.agree
    assert any("statsmodels stopped early" in n for n in cc.notes)
    for why in cc.disagreements.why:
        assert "statsmodels did not converge" in why and "R's log-likelihood is higher" in why
    text = str(cc)
    assert "Disagreements:" in text and "statsmodels stopped" in text
    assert len(cc.explain()) == len(cc.disagreements)


# ----------------------------------------------------------------- refusals
def test_refuses_arrays_without_names(sleep):
    y = sleep.Reaction.to_numpy()
    X = np.column_stack([np.ones(len(y)), sleep.Days.to_numpy(float)])
    sm = _quiet(MixedLM(y, X, groups=sleep.Subject.astype(str).to_numpy()).fit)
    with pytest.raises(pa.PylmeError, match="without column names"):
        pa.from_statsmodels(sm)


def test_refuses_custom_exog_re(sleep):
    y = sleep.Reaction
    X = pd.DataFrame({"const": 1.0, "Days": sleep.Days.astype(float)})
    Z = pd.DataFrame({"a": 1.0, "b": np.sin(sleep.Days.astype(float))})
    sm = _quiet(MixedLM(y, X, groups=sleep.Subject, exog_re=Z).fit)
    with pytest.raises(pa.PylmeError, match="custom exog_re"):
        pa.from_statsmodels(sm)
    # a pandas model with only a random intercept needs no exog_re and is translated
    plain = _quiet(MixedLM(y, X, groups=sleep.Subject).fit)
    _assert_converged_agreement(pa.from_statsmodels(plain))


def test_refuses_other_free_patterns(sleep):
    model = smf.mixedlm("Reaction ~ Days", sleep, groups="Subject", re_formula="~Days")
    held = MixedLMParams.from_components(np.ones(2), np.array([[1.0, 0.0], [0.0, 0.0]]))
    sm = _quiet(model.fit, free=held, method=["lbfgs"])
    with pytest.raises(pa.PylmeError, match="free= pattern"):
        pa.from_statsmodels(sm)
    fe_fixed = MixedLMParams.from_components(np.array([1.0, 0.0]), np.ones((2, 2)))
    sm = _quiet(model.fit, free=fe_fixed, method=["lbfgs"])
    with pytest.raises(pa.PylmeError, match="fixed effects"):
        pa.from_statsmodels(sm)


def test_refuses_negative_variance_from_use_sqrt_false(sleep):
    sm = _quiet(smf.mixedlm("Reaction ~ Days", sleep, groups="Subject", re_formula="~Days").fit)
    res = sm._results
    res.use_sqrt = False
    res.cov_re = pd.DataFrame(np.array([[600.0, 200.0], [200.0, -5.0]]))  # what use_sqrt=False can reach
    with pytest.raises(pa.PylmeError, match="use_sqrt=False.*not positive semi-definite"):
        pa.from_statsmodels(sm)


def test_refuses_penalised_fit(sleep):
    from statsmodels.base._penalties import L2

    model = smf.mixedlm("Reaction ~ Days", sleep, groups="Subject")
    sm = _quiet(model.fit, fe_pen=L2(weights=1.0))
    with pytest.raises(pa.PylmeError, match="penalised"):
        pa.from_statsmodels(sm)


def test_refuses_non_results_and_bad_options(sleep):
    with pytest.raises(pa.PylmeError, match="fitted statsmodels MixedLM"):
        pa.from_statsmodels("Reaction ~ Days")
    ols = smf.ols("Reaction ~ Days", sleep).fit()
    with pytest.raises(pa.PylmeError, match="MixedLM"):
        pa.from_statsmodels(ols)
    sm = smf.mixedlm("Reaction ~ Days", sleep, groups="Subject").fit()
    with pytest.raises(pa.PylmeError, match="engine"):
        pa.from_statsmodels(sm, engine="nlme")
    with pytest.raises(pa.PylmeError, match="reml"):
        pa.from_statsmodels(sm, reml="yes")


# ----------------------------------------------------------------- safety and display
def test_column_names_never_reach_r(sleep, tmp_path):
    marker = tmp_path / "pwned"
    evil = f'Days`) + system("touch {marker}") + (`'
    data = sleep.rename(columns={"Days": evil})
    sm = smf.mixedlm(f"Reaction ~ Q('{evil}')", data, groups="Subject", re_formula=f"~Q('{evil}')").fit()
    cc = pa.from_statsmodels(sm)
    assert not marker.exists()
    assert evil not in cc.r_fit.formula and "system" not in cc.r_fit.formula
    _assert_converged_agreement(cc)
    assert _fixed(cc).term.tolist() == ["(Intercept)", f"Q('{evil}')"]


def test_html_escapes_and_result_is_frozen(sleep):
    data = sleep.rename(columns={"Days": "<script>d</script>"})
    sm = smf.mixedlm("Reaction ~ Q('<script>d</script>')", data, groups="Subject").fit()
    cc = pa.from_statsmodels(sm)
    assert "<script>" not in cc._repr_html_()
    assert "&lt;script&gt;" in cc._repr_html_()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cc.notes = ()
    assert "Cross-check of statsmodels MixedLM against lme4" in str(cc)
    assert repr(cc).startswith("<Crosscheck")


def test_glmmtmb_engine(sleep):
    sm = smf.mixedlm("Reaction ~ Days", sleep, groups="Subject", re_formula="~Days").fit(reml=False)
    cc = _quiet(pa.from_statsmodels, sm, engine="glmmtmb")
    assert cc.r_fit.engine == "glmmTMB"
    np.testing.assert_allclose(_fixed(cc).estimate_statsmodels, _fixed(cc).estimate_r, rtol=FIXED_RTOL)


# ----------------------------------------------------------------- statsmodels' own lme4 fits
def _shipped():
    try:
        ref = importlib.import_module("statsmodels.regression.tests.results.lme_r_results")
    except ImportError:
        return None, None
    return ref, Path(ref.__file__).parent


REF, REF_DIR = _shipped()


@pytest.mark.skipif(REF is None, reason="statsmodels' test results are not installed")
@pytest.mark.parametrize("meth", ["ml", "reml"])
def test_statsmodels_shipped_lme4_fits(meth):
    """statsmodels' maintainers fitted lme*.csv in lme4; our R side must reproduce them."""
    checked = 0
    for path in sorted(REF_DIR.glob("lme[0-9][0-9].csv")):
        i = int(path.stem[3:])
        if not hasattr(REF, f"coef_{meth}_drf_{i}"):
            continue
        data = pd.read_csv(path)
        fe = [c for c in data if c.startswith("exog_fe")]
        re = [c for c in data if c.startswith("exog_re")]
        sm = _quiet(smf.mixedlm(f"endog ~ 0 + {' + '.join(fe)}", data, groups="groups",
                                re_formula=f"0 + {' + '.join(re)}").fit, reml=meth == "reml")
        cc = _quiet(pa.from_statsmodels, sm)
        np.testing.assert_allclose(_fixed(cc).estimate_r, getattr(REF, f"coef_{meth}_drf_{i}"), rtol=1e-4, atol=1e-6)
        sigma = _row(cc, "sd__Observation", "Residual").estimate_r
        assert sigma ** 2 == pytest.approx(float(getattr(REF, f"scale_{meth}_drf_{i}")[0]), rel=1e-3)
        assert cc.loglik["r"] == pytest.approx(float(getattr(REF, f"loglike_{meth}_drf_{i}")[0]), rel=1e-5)
        ref_cov = np.atleast_2d(getattr(REF, f"cov_re_{meth}_drf_{i}"))
        sds = cc.table[(cc.table.kind == "sd") & (cc.table.group == "groups")].estimate_r.to_numpy()
        np.testing.assert_allclose(sds ** 2, np.diag(ref_cov), rtol=1e-2, atol=1e-4)
        checked += 1
    assert checked >= 6


# ----------------------------------------------------------------- alliance crosscheck and CLI
@pytest.fixture(scope="module")
def trial_panel():
    data = pa.simulate(n_patients=80, n_therapists=10, seed=5).data
    return data, pa.prepare(data, patient="patient", session="session", alliance="alliance",
                            outcome="outcome", therapist="therapist")


def test_alliance_crosscheck_returns_crosscheck(trial_panel):
    _, panel = trial_panel
    cc = _quiet(pa.crosscheck, panel)
    assert isinstance(cc, pa.Crosscheck)
    assert "(1 + alliance_within | patient)" in cc.formula
    assert {"fixed", "sd", "cor", "residual"} <= set(cc.table.kind)
    assert "alliance_within" in set(_fixed(cc).term)
    assert any("every term of the R model is compared" in n for n in cc.notes)
    bad = cc.disagreements
    assert (bad.why != "").all()


def test_alliance_crosscheck_with_therapists_says_what_is_compared(trial_panel):
    _, panel = trial_panel
    cc = _quiet(pa.crosscheck, panel, model=pa.AllianceModel(therapist="nested"))
    assert "(1 | therapist) + (1 | therapist:patient) + (0 + alliance_within | therapist:patient)" in cc.formula
    assert any("correlation is not compared" in n for n in cc.notes)
    assert set(cc.table[cc.table.kind == "sd"].group) == {"therapist", "patient", "patient_slope"}
    assert not (cc.table.kind == "cor").any()
    with pytest.raises(pa.EngineCannotExpress, match="residual"):
        pa.crosscheck(panel, model=pa.AllianceModel(therapist="none", residual="ar1", engine="nlme"))


def test_cli_crosscheck_therapist_and_help(trial_panel, tmp_path, capsys):
    from pylme_alliance.cli import build_parser, main

    data, _ = trial_panel
    path = tmp_path / "trial.csv"
    data.to_csv(path, index=False)
    out = tmp_path / "table.csv"
    args = ["crosscheck", str(path), "--patient", "patient", "--session", "session", "--alliance",
            "alliance", "--outcome", "outcome", "--therapist", "therapist", "--out", str(out)]
    code = _quiet(main, args)
    text = capsys.readouterr().out
    assert code == 0
    assert "therapist:patient" in text and "Notes:" in text
    table = pd.read_csv(out)
    assert {"term", "kind", "agree", "why"} <= set(table.columns)
    assert "therapist" in set(table.group.dropna())
    for line in text.split("Disagreements:")[-1].split("Notes:")[0].strip().splitlines():
        assert " - " in line  # one line per disagreement, with its reason
    sub = next(a for a in build_parser()._actions if hasattr(a, "choices") and a.choices
               and "crosscheck" in a.choices).choices["crosscheck"]
    undocumented = [a.dest for a in sub._actions if not a.help and a.dest != "help"]
    assert undocumented == []
