"""mixedlm(): linear mixed models with statsmodels' MixedLM, returned as a
:class:`~pylme_alliance.results.MixedFit` laid out exactly like the R engines' fits, so
that lme4 and statsmodels estimates can be set side by side.

statsmodels reports variances (``cov_re``, ``vcomp``, ``scale``); here they become SDs
and correlations named as broom.mixed names them (``sd__(Intercept)``, ``sd__x``,
``cor__(Intercept).x``, group ``Residual`` / ``sd__Observation``). Fixed effects are
Wald z tests (df NaN). Nothing here starts R.
"""
from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import PylmeError
from ..results import MixedFit
from ._common import missing_columns_error
from ._sm_formula import formula_variables
from .datacheck import model_columns
from .flags import boundary_flags

_INTERCEPT = "(Intercept)"
_BOUNDARY = "on the boundary"


# ----------------------------------------------------------------- formula checks
#: The only name a formula can reach beyond the data columns and patsy's builtins
#: (C, I, Q, contrasts); the formula guard has already refused everything else.
_EVAL_ENV = {"np": np}


def _term_name(name: str, groups: str | None = None) -> str:
    """statsmodels/patsy term name -> lme4's (``Intercept`` -> ``(Intercept)``; the
    random intercept, which statsmodels names after the grouping column, likewise)."""
    if name == "Intercept" or (groups is not None and name == groups):
        return _INTERCEPT
    return name


_LEVEL = re.compile(r"\[(?:T\.)?([^\[\]]*)\]$")


def _vc_level(column: str) -> str:
    """``C(cask)[a]`` -> ``a``; other design column names unchanged."""
    match = _LEVEL.search(column)
    return match.group(1) if match else column


# ------------------------------------------------------------------------ backend
@dataclass(frozen=True)
class StatsmodelsBackend:
    """On-demand tables of a statsmodels MixedLM fit (the Backend protocol of results.py).

    ``model_result`` is the statsmodels ``MixedLMResults``.
    """

    model_result: Any
    groups: str
    frame: pd.DataFrame
    re_design: Any          # patsy DesignInfo of re_formula (None: random intercept only)
    vc_designs: dict         # vc name -> patsy DesignInfo built on the model rows
    fixef_values: pd.Series

    # random effects, split into the `groups` block and one block per variance component
    def _blocks(self) -> dict[str, dict[str, Any]]:
        res = self.model_result
        re_names = list(res.model.data.exog_re_names)
        terms = [_term_name(n, self.groups) for n in re_names]
        k_re = len(re_names)
        blocks: dict[str, dict[str, Any]] = {}
        main_rows, main_se = {}, {}
        vc_rows: dict[str, dict[str, float]] = {n: {} for n in res.model.exog_vc.names}
        vc_se: dict[str, dict[str, float]] = {n: {} for n in res.model.exog_vc.names}
        covs = res.random_effects_cov
        for label, values in res.random_effects.items():
            se = np.sqrt(np.clip(np.diag(np.asarray(covs[label], dtype=float)), 0, None))
            if k_re:
                main_rows[str(label)] = np.asarray(values.iloc[:k_re], dtype=float)
                main_se[str(label)] = se[:k_re]
            for j, name in enumerate(values.index[k_re:], start=k_re):
                vc, _, column = name.partition("[")
                level = f"{_vc_level(column[:-1])}:{label}"
                vc_rows[vc][level] = float(values.iloc[j])
                vc_se[vc][level] = float(se[j])
        if k_re:
            blocks[self.groups] = {
                "ranef": pd.DataFrame.from_dict(main_rows, orient="index", columns=terms),
                "se": pd.DataFrame.from_dict(main_se, orient="index", columns=terms)}
        for vc in vc_rows:
            blocks[vc] = {"ranef": pd.DataFrame({_INTERCEPT: pd.Series(vc_rows[vc], dtype=float)}),
                          "se": pd.DataFrame({_INTERCEPT: pd.Series(vc_se[vc], dtype=float)})}
        for block in blocks.values():
            for frame in block.values():
                frame.index.name = "level"
        return blocks

    def ranef(self) -> dict[str, pd.DataFrame]:
        return {g: b["ranef"].copy() for g, b in self._blocks().items()}

    def ran_vals(self) -> pd.DataFrame:
        rows = []
        for group, block in self._blocks().items():
            est = block["ranef"].reset_index().melt(id_vars="level", var_name="term", value_name="estimate")
            se = block["se"].reset_index().melt(id_vars="level", var_name="term", value_name="std_error")
            long = est.merge(se, on=["level", "term"], how="left")
            long.insert(0, "group", group)
            rows.append(long)
        if not rows:
            return pd.DataFrame(columns=["group", "level", "term", "estimate", "std_error"])
        return pd.concat(rows, ignore_index=True)

    def ran_coefs(self) -> pd.DataFrame:
        rows = []
        for group, block in self._blocks().items():
            ranef = block["ranef"]
            coef = pd.DataFrame({t: np.full(len(ranef), v) for t, v in self.fixef_values.items()},
                                index=ranef.index)
            for term in ranef.columns:
                base = coef[term] if term in coef else 0.0
                coef[term] = base + ranef[term]
            long = coef.reset_index().melt(id_vars="level", var_name="term", value_name="estimate")
            long.insert(0, "group", group)
            rows.append(long)
        if not rows:
            return pd.DataFrame(columns=["group", "level", "term", "estimate"])
        return pd.concat(rows, ignore_index=True)

    def fitted_resid(self) -> tuple[np.ndarray, np.ndarray]:
        res = self.model_result
        return np.asarray(res.fittedvalues, dtype=float), np.asarray(res.resid, dtype=float)

    def predict(self, newdata: pd.DataFrame | None, include_random: bool) -> np.ndarray:
        res = self.model_result
        if newdata is None:
            if include_random:
                return np.asarray(res.fittedvalues, dtype=float)
            return np.asarray(res.model.exog, dtype=float) @ np.asarray(res.fe_params, dtype=float)
        fixed = _design(res.model.data.model_spec, newdata)
        out = fixed @ np.asarray(res.fe_params, dtype=float)
        if not include_random:
            return out
        if self.groups not in newdata.columns:
            raise PylmeError(f"newdata has no grouping column {self.groups!r}; pass "
                             "include_random=False for population-level predictions")
        effects = {str(k): v for k, v in res.random_effects.items()}
        labels = [str(v) for v in newdata[self.groups].to_numpy(dtype=object)]
        k_re = len(res.model.data.exog_re_names)
        if k_re:
            z = (np.ones((len(newdata), 1)) if self.re_design is None
                 else _design(self.re_design, newdata))
            for i, label in enumerate(labels):
                if label in effects:
                    out[i] += float(z[i] @ np.asarray(effects[label].iloc[:k_re], dtype=float))
        for vc, design in self.vc_designs.items():
            z = _design(design, newdata)
            names = [f"{vc}[{c}]" for c in design.column_names]
            for i, label in enumerate(labels):
                if label not in effects:
                    continue
                values = effects[label]
                b = np.array([float(values[n]) if n in values.index else 0.0 for n in names])
                out[i] += float(z[i] @ b)
        return out

    @property
    def r(self) -> Any:
        raise PylmeError("statsmodels fit has no R object")


def _design(spec: Any, newdata: pd.DataFrame) -> np.ndarray:
    """Design matrix of ``newdata`` with a fitted design's stateful transforms and levels;
    rows with missing values give NaN (not dropped)."""
    import patsy

    try:
        if isinstance(spec, patsy.DesignInfo):
            (mat,) = patsy.build_design_matrices([spec], newdata, NA_action=patsy.NAAction(NA_types=[]))
        else:  # statsmodels on the formulaic engine
            from statsmodels.formula._manager import FormulaManager

            mat = FormulaManager().get_matrices(spec, newdata, pandas=True)
    except Exception as exc:  # patsy raises PatsyError, missing columns KeyError/NameError
        raise PylmeError(f"cannot build the model's design for newdata: {exc}") from None
    return np.asarray(mat, dtype=float)


# -------------------------------------------------------------------------- fit
def mixedlm(formula: str, data: pd.DataFrame, *, groups: str, re_formula: str | None = None,
            vc_formula: Mapping[str, str] | None = None, reml: bool = True) -> MixedFit:
    """Fit a linear mixed model with statsmodels ``MixedLM`` and return a MixedFit.

    Parameters
    ----------
    formula : str
        Fixed part in patsy syntax, e.g. ``"Reaction ~ Days"``; odd column names as
        ``Q("weird name")``. Formula text is parsed, never run: only column names,
        numbers, ``+ - * / : ** ^``, parentheses, ``C(col[, Treatment("ref")])``,
        ``I(arithmetic)``, ``Q("name")`` and ``np.log/np.exp/np.sqrt(arithmetic)`` are
        accepted (the full grammar is in :mod:`pylme_alliance.engines._sm_formula`);
        anything else (attribute access, subscripts, strings outside ``Q``/contrasts,
        other calls, ``__`` names, NUL) raises :class:`PylmeError` naming the piece.
        The same rule applies to ``re_formula`` and every ``vc_formula`` value.
    data : pandas.DataFrame
        Not modified. Rows with a missing value in a used column are dropped
        (counted in ``fit.n_dropped``). The used columns obey the rule every engine
        applies (:func:`~pylme_alliance.engines.datacheck.model_columns`): unique string
        labels, finite numbers up to 1e150, object columns of only numbers (numeric) or
        only strings (categorical); datetimes are read as R reads them (seconds since
        1970 UTC).
    groups : str
        Column of the (outer) grouping factor.
    re_formula : str, optional
        Random part within ``groups``, e.g. ``"~Days"`` (lme4's ``(Days | g)``);
        default ``"1"``, a random intercept per group. Unlike statsmodels' own
        default, the intercept is kept when ``vc_formula`` is given, so that
        ``groups="batch", vc_formula={"cask": "0 + C(cask)"}`` is lme4's
        ``(1 | batch/cask)``.
    vc_formula : dict, optional
        Variance components, e.g. ``{"patient": "0 + C(patient)"}`` for patients
        nested in ``groups``. Their ran_pars rows have group = the dict key.
    reml : bool
        REML (default) or maximum likelihood.

    Returns
    -------
    MixedFit
        engine ``"statsmodels"``; ``fit.backend.model_result`` is the statsmodels result.
        Warnings statsmodels raised (e.g. ConvergenceWarning) are re-emitted and kept
        on ``fit.warnings``.
    """
    import patsy
    from statsmodels.regression.mixed_linear_model import MixedLM
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    if not isinstance(data, pd.DataFrame):
        raise PylmeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if not isinstance(groups, str) or not groups:
        raise PylmeError("groups must be the name of a column of the data")
    if "\x00" in groups:
        raise PylmeError(f"groups {groups!r} contains a NUL character (\\x00); remove it")
    if vc_formula is not None:
        if not isinstance(vc_formula, Mapping) or not vc_formula:
            raise PylmeError("vc_formula must be a non-empty dict {name: formula}")
        bad = {k: v for k, v in vc_formula.items() if not isinstance(k, str) or not isinstance(v, str)
               or not k or "\x00" in k or "[" in k}
        if bad:
            raise PylmeError(f"vc_formula must map names (non-empty, without '[' or NUL) to formula "
                             f"strings, got {bad!r}")
        vc_formula = dict(vc_formula)
        # the variance-component rows are named after the keys: a key equal to the grouping
        # column or to "Residual" would give two rows under one name
        clash = [k for k in vc_formula if k in (groups, "Residual")]
        if clash:
            raise PylmeError(f"vc_formula name {clash[0]!r} is also the name of the "
                             f"{'grouping factor' if clash[0] == groups else 'residual variance'} in the "
                             "table of variance parameters, so two rows would share it; rename it")

    # the guard parses every formula (nothing is evaluated) before patsy may see it
    response, fixed_vars = formula_variables(formula, what="formula")
    if not response:
        raise PylmeError(f"formula {formula!r} has no response (write 'y ~ x')")
    re_vars: list[str] = []
    if re_formula is not None:
        re_lhs, re_vars = formula_variables(re_formula, what="re_formula")
        if re_lhs:
            raise PylmeError(f"re_formula {re_formula!r} must be one-sided, e.g. '~ x'")
    if re_formula is None:
        re_formula = "1"
    vc_vars: list[str] = []
    for name, text in (vc_formula or {}).items():
        vc_lhs, part = formula_variables(text, what=f"vc_formula[{name!r}]")
        if vc_lhs:
            raise PylmeError(f"vc_formula[{name!r}] = {text!r} must be one-sided, e.g. '0 + C(patient)'")
        vc_vars += part

    columns = [str(c) for c in data.columns]
    wanted = list(dict.fromkeys([*response, *fixed_vars, *re_vars, *vc_vars, groups]))
    missing = [v for v in wanted if v not in columns]
    if missing:
        raise missing_columns_error(missing, columns)
    if "Intercept" in [*fixed_vars, *re_vars]:
        raise PylmeError("column 'Intercept' is used as a predictor, but patsy names the intercept "
                         "'Intercept' too, so the two rows could not be told apart; rename the column")
    frame = model_columns(data, wanted, target="statsmodels")
    for var in response:
        if not (pd.api.types.is_numeric_dtype(frame[var]) and not pd.api.types.is_bool_dtype(frame[var])):
            raise PylmeError(f"the response column {var!r} must be numeric, not {frame[var].dtype}")
    complete = frame.notna().all(axis=1).to_numpy()
    if not complete.any():
        raise PylmeError(f"no row of the data is complete for the model's columns {wanted}; "
                         "every row has a missing value in at least one of them")
    n_levels = frame.loc[complete, groups].nunique()
    if n_levels < 2:
        raise PylmeError(f"the grouping factor {groups!r} has {n_levels} level(s) among the complete "
                         "rows; a random effect needs at least 2")
    frame = frame.loc[complete].reset_index(drop=True)
    for var in frame.columns:  # logicals that held missing values: plain bool once those rows are gone
        if frame[var].dtype == object and pd.api.types.infer_dtype(frame[var]) == "boolean":
            frame[var] = frame[var].astype(bool)
    if isinstance(frame[groups].dtype, pd.CategoricalDtype):
        frame[groups] = frame[groups].cat.remove_unused_categories()
    used = np.flatnonzero(complete)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            # eval_env: names resolve to the data, patsy's builtins and np only
            model = MixedLM.from_formula(formula, data=frame, groups=groups, re_formula=re_formula,
                                         vc_formula=vc_formula, missing="none", eval_env=dict(_EVAL_ENV))
            result = model.fit(reml=bool(reml))
        except RecursionError:
            raise PylmeError("the formulas are too long or nested too deeply for patsy's parser; "
                             "shorten them (e.g. build fewer, combined columns)") from None
        except (ValueError, TypeError, KeyError, np.linalg.LinAlgError, patsy.PatsyError) as exc:
            raise PylmeError(f"statsmodels MixedLM failed: {exc}") from exc
    texts = []
    categories: list[type[Warning]] = []
    for w in caught:
        text = str(w.message)
        if text not in texts:
            texts.append(text)
            categories.append(w.category)
    for text, category in zip(texts, categories):
        warnings.warn(text, category, stacklevel=2)

    # ---- fixed effects: Wald z
    k_fe = int(result.k_fe)
    names = list(result.fe_params.index)
    fixed_table = pd.DataFrame({
        "term": [_term_name(n) for n in names],
        "estimate": np.asarray(result.fe_params, dtype=float),
        "std_error": np.asarray(result.bse_fe, dtype=float),
        "statistic": np.asarray(result.tvalues, dtype=float)[:k_fe],
        "df": np.nan,
        "p_value": np.asarray(result.pvalues, dtype=float)[:k_fe],
    })
    fixef = pd.Series(fixed_table["estimate"].to_numpy(), index=fixed_table["term"].tolist(), dtype=float)
    terms = fixed_table["term"].tolist()
    vcov = pd.DataFrame(np.asarray(result.cov_params(), dtype=float)[:k_fe, :k_fe], index=terms, columns=terms)

    # ---- variance parameters: SDs and correlations
    scale = float(result.scale)
    cov = np.asarray(result.cov_re, dtype=float)
    re_terms = [_term_name(n, groups) for n in model.data.exog_re_names]
    rows: list[tuple[str, str, float]] = []
    if len(re_terms):
        sd = np.sqrt(np.clip(np.diag(cov), 0, None))
        for i, term in enumerate(re_terms):
            rows.append((groups, f"sd__{term}", float(sd[i])))
        for i in range(len(re_terms)):
            for j in range(i + 1, len(re_terms)):
                cor = cov[i, j] / (sd[i] * sd[j]) if sd[i] > 0 and sd[j] > 0 else np.nan
                rows.append((groups, f"cor__{re_terms[i]}.{re_terms[j]}", float(cor)))
    vcomp = np.asarray(result.vcomp, dtype=float)
    for name, var in zip(model.exog_vc.names, vcomp):
        rows.append((name, "sd__(Intercept)", float(np.sqrt(max(var, 0.0)))))
    rows.append(("Residual", "sd__Observation", float(np.sqrt(scale))))
    ran_pars = pd.DataFrame(rows, columns=["group", "term", "estimate"])

    # ---- fit statistics
    n = int(result.nobs)
    k_cov = int(result.k_re2) + int(result.k_vc)
    npar = k_fe + k_cov + 1
    llf = float(result.llf)
    if reml:
        aic = bic = float("nan")
    else:
        aic = -2 * llf + 2 * npar
        bic = -2 * llf + npar * np.log(n)
    not_converged = [t for t, c in zip(texts, categories)
                     if issubclass(c, ConvergenceWarning) and _BOUNDARY not in t]
    ngrps = {groups: int(len(model.group_labels))}
    for j, name in enumerate(model.exog_vc.names):
        ngrps[name] = int(sum(np.count_nonzero(np.any(np.asarray(_dense(m)) != 0, axis=0))
                              for m in model.exog_vc.mats[j]))
    stats = {"nobs": n, "sigma": float(np.sqrt(scale)), "logLik": llf, "AIC": aic, "BIC": float(bic),
             "reml": bool(reml), "converged": bool(result.converged) and not not_converged,
             **boundary_flags(ran_pars, float(np.sqrt(scale))), "df": float(npar), "ngrps": ngrps}

    re_design = None
    if re_formula.strip().lstrip("~").strip() != "1":
        re_design = patsy.dmatrix(re_formula, frame, eval_env=patsy.EvalEnvironment([_EVAL_ENV])).design_info
    vc_designs = {name: patsy.dmatrix(text, frame, eval_env=patsy.EvalEnvironment([_EVAL_ENV])).design_info
                  for name, text in (vc_formula or {}).items()}
    backend = StatsmodelsBackend(result, groups, frame, re_design, vc_designs, fixef)
    shown = formula + (f" | groups={groups}" + (f", re_formula={re_formula}" if re_formula else "")
                       + (f", vc_formula={vc_formula}" if vc_formula else ""))
    return MixedFit(
        engine="statsmodels", formula=shown, nobs=n, n_dropped=int(len(data) - len(used)),
        warnings=tuple(texts), data=data.iloc[used].copy(), fixed_table=fixed_table,
        ran_pars_table=ran_pars, stats=stats, fixef_values=fixef, backend=backend, vcov_matrix=vcov,
        call_args={"formula": formula, "groups": groups, "re_formula": re_formula,
                   "vc_formula": vc_formula, "reml": bool(reml)},
    )


def _dense(mat: Any) -> Any:
    return mat.toarray() if hasattr(mat, "toarray") else mat
