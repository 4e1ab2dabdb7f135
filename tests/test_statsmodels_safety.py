"""mixedlm(): formula text is parsed against an allow-list, never evaluated as Python.

Every attack writes a marker file if it runs; the marker must never appear, and the
error must be a PylmeError naming the offending piece.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import pylme_alliance as pa


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    g = np.repeat(np.arange(12), 6)
    x = rng.normal(size=g.size)
    return pd.DataFrame({"y": 1 + 0.5 * x + rng.normal(size=12)[g] + rng.normal(size=g.size),
                         "x": x, "z": rng.normal(size=g.size), "g": [f"p{i}" for i in g],
                         "k": np.tile(["a", "b", "c"], g.size // 3)})


def _payloads(marker):
    path = str(marker)
    return [
        f"__import__('os').system('touch {path}')",
        f"open('{path}', 'w')",
        f"exec(\"open('{path}', 'w')\")",
        f"eval(\"open('{path}', 'w')\")",
        f"(lambda: open('{path}', 'w'))()",
        f"[open('{path}', 'w') for _ in [0]]",
        f"C(x, open('{path}', 'w'))",
        f"C(k, Treatment(open('{path}', 'w')))",
        f"I(open('{path}', 'w'))",
        f"np.log(open('{path}', 'w'))",
        f"np.lib.npyio.savetxt('{path}', x)",
        f"x.__class__.__init__.__globals__['open']('{path}', 'w')",
        f"getattr(__builtins__, 'open')('{path}', 'w')",
        f"I(x if open('{path}', 'w') else x)",
        f"x + np.log(x)[open('{path}', 'w')]",
        f"np.savetxt('{path}', x)",
    ]


@pytest.mark.parametrize("where", ["formula", "re_formula", "vc_formula"])
def test_code_in_formulas_is_refused_and_never_runs(data, tmp_path, where):
    marker = tmp_path / "marker"
    before = data.copy()
    for payload in _payloads(marker):
        args = {"groups": "g"}
        formula = "y ~ x"
        if where == "formula":
            formula = f"y ~ x + {payload}"
        elif where == "re_formula":
            args["re_formula"] = f"~ {payload}"
        else:
            args["vc_formula"] = {"k": f"0 + {payload}"}
        with pytest.raises(pa.PylmeError, match="not allowed in a statsmodels formula|cannot read") as info:
            pa.mixedlm(formula, data, **args)
        assert not marker.exists(), payload
        # the message names the piece (or the whole text, for what Python cannot parse)
        assert "open" in str(info.value) or "savetxt" in str(info.value) or "__" in str(info.value), payload
    pd.testing.assert_frame_equal(data, before)


def test_refusal_names_the_offending_piece(data):
    with pytest.raises(pa.PylmeError, match=r"'os\.system\(\"ls\"\)'.*attribute|'os\.system\(\"ls\"\)'.*called"):
        pa.mixedlm('y ~ x + os.system("ls")', data, groups="g")
    with pytest.raises(pa.PylmeError, match=r"'x\[0\]'.*subscripts"):
        pa.mixedlm("y ~ x[0]", data, groups="g")
    with pytest.raises(pa.PylmeError, match=r"'__builtins__'.*double underscore"):
        pa.mixedlm("y ~ __builtins__", data, groups="g")
    with pytest.raises(pa.PylmeError, match=r"'\|'.*groups= and re_formula="):
        pa.mixedlm("y ~ x + (1 | g)", data, groups="g")
    with pytest.raises(pa.PylmeError, match=r"\"'a'\".*strings are allowed only"):
        pa.mixedlm("y ~ x + 'a'", data, groups="g")
    with pytest.raises(pa.PylmeError, match=r"'print\(x\)'.*print\(\) is not on the list"):
        pa.mixedlm("y ~ print(x)", data, groups="g")


def test_the_error_type_is_the_r_engines_one(data):
    # one type to catch for every engine's refusals (lmer raises PylmeError too)
    with pytest.raises(pa.PylmeError):
        pa.mixedlm("y ~ eval('x')", data, groups="g")
    assert issubclass(pa.RError, pa.PylmeError)


@pytest.mark.parametrize("args", [
    {"formula": "y ~ x\x00 + z"},
    {"re_formula": "~ x\x00"},
    {"vc_formula": {"k": "0 + C(k)\x00"}},
    {"vc_formula": {"k\x00": "0 + C(k)"}},
    {"groups": "g\x00"},
])
def test_nul_is_refused(data, args):
    args = {"formula": "y ~ x", "groups": "g", **args}
    formula = args.pop("formula")
    with pytest.raises(pa.PylmeError, match="NUL"):
        pa.mixedlm(formula, data, **args)


def test_names_that_are_not_columns_are_refused_before_patsy(data):
    # a bare name patsy would look up in Python's namespaces (builtins, numpy, this module)
    for name in ("open", "np", "print", "warnings", "pd"):
        with pytest.raises(pa.PylmeError, match=f"'{name}'"):
            pa.mixedlm(f"y ~ x + {name}", data, groups="g")


def test_allowed_grammar_still_fits(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = pa.mixedlm("y ~ x * z + np.log(np.exp(z) + 1) + I(x**2 - 1) + C(k, Treatment('b')) - 1",
                         data, groups="g", re_formula="~ x", vc_formula={"kk": "0 + C(k):z"})
    terms = list(fit.fixef().index)
    assert "x:z" in terms and "I(x ** 2 - 1)" in terms and "np.log(np.exp(z) + 1)" in terms
    assert any(t.startswith("C(k, Treatment('b'))") for t in terms)
    assert np.isfinite(fit.fixef()).all()
    # predictions for new data use the same (restricted) environment
    np.testing.assert_allclose(fit.predict(data), fit.predict(), rtol=1e-8)


def test_a_column_named_like_code_is_only_data(data, tmp_path):
    marker = tmp_path / "marker"
    odd = f"__import__('os').system('touch {marker}')"
    frame = data.rename(columns={"z": odd})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = pa.mixedlm(f'y ~ x + Q("{odd}")', frame, groups="g")
    assert not marker.exists()
    assert np.isfinite(fit.fixef()).all() and len(fit.fixef()) == 3


@pytest.mark.parametrize("text, lhs, rhs", [
    ("y ~ x", ["y"], ["x"]),
    ("~ x + z - 1", [], ["x", "z"]),
    ("1", [], []),
    ("0 + C(patient):alliance_within", [], ["patient", "alliance_within"]),
    ('np.log(y) ~ Q("a b") * x + (x + z)**2', ["y"], ["a b", "x", "z"]),
    ("y ~ C(k, Treatment(reference='b'), levels=['b', 'a', 'c'])", ["y"], ["k"]),
    ("y ~ x\n + z", ["y"], ["x", "z"]),
])
def test_grammar_reads_variables(text, lhs, rhs):
    from pylme_alliance.engines._sm_formula import formula_variables

    assert formula_variables(text, what="formula") == (lhs, rhs)


@pytest.mark.parametrize("text", ["y ~ x ~ z", "y ~", "y ~ x + 1j", "y ~ x + True", "y ~ {x}", "y ~ x; z",
                                  "y ~ `x`", "y ~ x @ z", "y ~ x + f'{z}'", "y ~ (x := 1)", "y ~ I(x:z)",
                                  "y ~ np.log(x, out=z)", "y ~ numpy.log(x)", "y ~ x.real", ""])
def test_grammar_refuses(text):
    from pylme_alliance.engines._sm_formula import formula_variables

    with pytest.raises(pa.PylmeError):
        formula_variables(text, what="formula")


def test_long_formulas_give_clear_errors_not_crashes(data):
    from pylme_alliance.engines._sm_formula import formula_variables

    # the guard reads term by term: thousands of terms are no problem for it
    assert formula_variables("y ~ x" + " + z" * 5000, what="formula") == (["y"], ["x", "z"])
    for text in ("y ~ x" + " * z" * 20000, "y ~ " + "(" * 500 + "x" + ")" * 500, "y ~ I(" + "-" * 5000 + "x)"):
        with pytest.raises(pa.PylmeError):
            formula_variables(text, what="formula")
    with pytest.raises(pa.PylmeError, match="too long or nested too deeply"):
        pa.mixedlm("y ~ x" + " + z" * 2000, data, groups="g")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = pa.mixedlm("y ~ x" + " + z" * 200, data, groups="g")
    assert list(fit.fixef().index) == ["(Intercept)", "x", "z"]
