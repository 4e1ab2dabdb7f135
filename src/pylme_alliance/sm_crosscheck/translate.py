"""A fitted statsmodels MixedLM, written as the same lme4 model.

The lme4 model is built from the design statsmodels itself used, not from the text the
user typed: the fixed-effect matrix (``model.exog``), the random-effect matrix
(``model.exog_re``), the variance-component matrices (``model.exog_vc``) and the
group labels, on exactly the rows statsmodels fitted. Every column gets a generated
name (``x1``, ``z1``, ``g1``, ...), so the formula sent to R holds no user text, and
patsy's codings, contrasts and stateful transforms (``C(c, Sum)``, ``center(x)``,
``np.log(x)``) come across as the numbers statsmodels used rather than as R's reading
of them. A human-readable lme4 formula in the user's names is kept for the notes.

What lme4 cannot fit identically (custom matrices, constrained or penalised fits,
negative variances) is refused with a :class:`~pylme_alliance.PylmeError`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import PylmeError

_INTERCEPT = "(Intercept)"
#: Relative size below which a variance is treated as zero (for the use_sqrt check).
_NEGATIVE_TOL = 1e-10


@dataclass(frozen=True)
class RandomTerm:
    """One random-effect term of the lme4 model.

    ``columns`` pairs generated design names with statsmodels' names (display);
    ``group`` is the generated grouping column and ``label`` the group shown to users.
    """

    group: str
    label: str
    columns: tuple[tuple[str, str], ...]
    correlated: bool
    kind: str  # "groups" (exog_re) or "vc" (a variance component)


@dataclass(frozen=True)
class Translation:
    """The lme4 model equivalent to one statsmodels fit."""

    frame: pd.DataFrame                      # generated column names, statsmodels' rows
    formula: str                             # sent to R: generated names only
    display_formula: str                     # for people: statsmodels' names
    fixed: tuple[tuple[str, str], ...]       # (generated, display) per fixed column
    random: tuple[RandomTerm, ...]
    reml: bool
    statsmodels_reml: bool
    nobs: int
    groups_label: str
    structure: str                           # "full" | "diagonal"
    notes: tuple[str, ...]


def _fixed_name(name: str) -> str:
    return _INTERCEPT if name in ("Intercept", "const") else str(name)


def _dense(mat: Any) -> np.ndarray:
    return np.asarray(mat.toarray() if hasattr(mat, "toarray") else mat, dtype=float)


def _check_result(result: Any) -> Any:
    """The MixedLMResults behind ``result`` (wrapped or not), or a PylmeError."""
    from statsmodels.regression.mixed_linear_model import MixedLM, MixedLMResults

    inner = getattr(result, "_results", result)
    if not isinstance(inner, MixedLMResults) or not isinstance(getattr(inner, "model", None), MixedLM):
        raise PylmeError(f"from_statsmodels() takes a fitted statsmodels MixedLM result "
                         f"(model.fit()), got {type(result).__name__}")
    return inner


def _free_structure(res: Any) -> str:
    """"full" or "diagonal" random-effect covariance; anything else is refused."""
    free = getattr(res, "freepat", None)
    if free is None:
        return "full"
    fe = np.asarray(free.fe_params, dtype=float)
    vc = np.asarray(free.vcomp, dtype=float)
    cov = np.asarray(free.cov_re, dtype=float)
    if fe.size and not np.all(fe == 1):
        raise PylmeError("the statsmodels fit held some fixed effects at their start values "
                         "(free= with zeros in fe_params); lme4 estimates every fixed effect, so the "
                         "two models would differ. Refit without free= or drop those terms")
    if vc.size and not np.all(vc == 1):
        raise PylmeError("the statsmodels fit held some variance components fixed (free= with zeros "
                         "in vcomp); lme4 cannot fix a variance at a chosen value")
    k = cov.shape[0]
    if np.all(cov == 1):
        return "full"
    if np.array_equal(cov, np.eye(k)):
        off = np.asarray(res.cov_re, dtype=float)[~np.eye(k, dtype=bool)]
        if off.size and np.max(np.abs(off)) > 1e-12 * max(1.0, float(np.max(np.abs(res.cov_re)))):
            raise PylmeError("the statsmodels fit held random-effect covariances fixed at non-zero "
                             "start values (free= diagonal with a start_params cov_re that is not "
                             "diagonal); lme4 can fix them at zero only")
        return "diagonal"
    raise PylmeError(f"the statsmodels fit constrained the random-effect covariance with the free= "
                     f"pattern {cov.astype(int).tolist()}; only all-free (correlated) or diagonal "
                     "(independent) patterns have an lme4 equivalent")


def _check_parameters(res: Any) -> None:
    model = res.model
    if getattr(res, "cov_pen", None) is not None or getattr(model, "fe_pen", None) is not None:
        raise PylmeError("the statsmodels fit is penalised (cov_pen= or fe_pen=); lme4 maximises the "
                         "unpenalised likelihood, so the estimates are not meant to agree")
    cov = np.asarray(res.cov_re, dtype=float)
    scale = float(res.scale)
    vcomp = np.asarray(res.vcomp, dtype=float)
    eig = np.linalg.eigvalsh(cov) if cov.size else np.array([])
    negative = (eig.size and eig.min() < -_NEGATIVE_TOL * scale) or (vcomp.size and vcomp.min() < -_NEGATIVE_TOL * scale)
    if negative:
        how = " (fitted with use_sqrt=False)" if not getattr(res, "use_sqrt", True) else ""
        raise PylmeError(f"the statsmodels fit{how} has a random-effect covariance that is not positive "
                         f"semi-definite (eigenvalues {np.round(eig, 6).tolist()}, variance components "
                         f"{np.round(vcomp, 6).tolist()}); a negative variance has no lme4 equivalent. "
                         "Refit with use_sqrt=True (the default)")


def _groups_label(model: Any) -> str:
    """The grouping column's name: the column of the model's frame holding the group
    labels, else the random intercept's name (statsmodels names it after the groups)."""
    frame = getattr(model.data, "frame", None)
    labels = pd.Series(np.asarray(model.groups)).astype(str).to_numpy()
    n_groups = len(model.group_labels)
    if isinstance(frame, pd.DataFrame) and len(frame) == len(labels):
        for column in frame.columns:
            values = frame[column]
            if values.nunique(dropna=False) == n_groups and np.array_equal(values.astype(str).to_numpy(), labels):
                return str(column)
    exog_re = model.exog_re
    names = list(model.data.exog_re_names or [])
    if exog_re is not None and names:
        for j in range(exog_re.shape[1]):
            if np.all(np.asarray(exog_re)[:, j] == 1):
                return str(names[j])
    return "Group"


def _check_origin(model: Any) -> None:
    from statsmodels.base.data import PandasData

    if getattr(model, "formula", None) is not None:
        return
    if not isinstance(model.data, PandasData):
        raise PylmeError("the statsmodels model was built from arrays without column names (not by "
                         "MixedLM.from_formula / smf.mixedlm), so the lme4 terms could not be named "
                         "after your variables; refit with smf.mixedlm(formula, data, groups=...) or "
                         "pass pandas objects")
    exog_re = model.exog_re
    custom_re = not (exog_re is not None and exog_re.shape[1] == 1 and np.all(np.asarray(exog_re) == 1))
    if custom_re or model.k_vc:
        what = "exog_re" if custom_re else "exog_vc"
        raise PylmeError(f"the statsmodels model was given a custom {what} matrix rather than a "
                         "re_formula/vc_formula: its columns are not tied to variables of the data, so "
                         "which of them is the random intercept and what each slope is cannot be "
                         "checked; refit with MixedLM.from_formula(..., re_formula=..., vc_formula=...)")


def _vc_names(colnames: list[list[str]], vc: str) -> tuple[str, str]:
    """(factor, value) a variance component's columns stand for, for display:
    ``C(p)[1]:w`` -> ("p", "w"), ``C(c)[a]`` -> ("c", ""); the component's name when the
    columns do not share one pattern."""
    flat = [c for cols in colnames for c in cols]
    prefixes = {c.partition("[")[0] for c in flat}
    suffixes = {c.partition("]:")[2] for c in flat}
    factor = vc
    if len(prefixes) == 1:
        match = re.fullmatch(r"C\((\w+)\)", prefixes.pop())
        if match:
            factor = match.group(1)
    value = suffixes.pop() if len(suffixes) == 1 else vc
    return factor, value


def _vc_columns(model: Any, j: int) -> tuple[np.ndarray, np.ndarray]:
    """(level code per row, design value per row) of variance component ``j``.

    statsmodels gives each group its own matrix; each of its columns is one random effect
    with the component's variance. lme4 can fit that as ``(0 + value | level)`` when every
    row has at most one non-zero entry (the usual ``0 + C(c)`` and ``0 + C(c):x``).
    """
    name = model.exog_vc.names[j]
    n = len(model.endog)
    level = np.zeros(n, dtype=np.int64)
    value = np.zeros(n, dtype=float)
    offset = 0
    for gi, label in enumerate(model.group_labels):
        rows = np.asarray(model.row_indices[label])
        mat = _dense(model.exog_vc.mats[j][gi])
        if mat.shape[0] != len(rows):
            raise PylmeError(f"variance component {name!r}: its design for group {label!r} has "
                             f"{mat.shape[0]} rows, the group has {len(rows)}")
        nonzero = mat != 0
        if np.any(nonzero.sum(axis=1) > 1):
            raise PylmeError(f"variance component {name!r} has rows with more than one non-zero design "
                             "column in the same group (e.g. '0 + x1 + x2'); lme4 cannot give several "
                             "columns one shared variance. Split it into one component per column")
        col = np.where(nonzero.any(axis=1), nonzero.argmax(axis=1), 0)
        level[rows] = offset + col
        value[rows] = mat[np.arange(len(rows)), col]
        offset += max(mat.shape[1], 1)
    return level, value


def _check_has_data(model: Any) -> None:
    """R refits the model from the rows statsmodels used: a result that no longer holds
    them (``save(remove_data=True)``, data deleted by hand) cannot be cross-checked."""
    missing = [name for name in ("endog", "exog", "groups")
               if getattr(model, name, None) is None or np.size(getattr(model, name)) == 0]
    if missing:
        raise PylmeError(f"the statsmodels result does not hold its data (model.{', model.'.join(missing)} "
                         "is empty, e.g. after saving it with remove_data=True); fit it again with the data "
                         "and pass that result")
    try:
        np.asarray(model.endog, dtype=float)
        np.asarray(model.exog, dtype=float)
    except (TypeError, ValueError):
        raise PylmeError("the statsmodels result's data (model.endog, model.exog) are not numeric arrays; "
                         "fit it again with the data and pass that result") from None


def translate(result: Any, *, reml: bool | None = None) -> Translation:
    """Write the lme4 model that a fitted statsmodels MixedLM is.

    Raises
    ------
    PylmeError
        For what lme4 cannot fit identically; the message says what and why.
    """
    res = _check_result(result)
    model = res.model
    _check_has_data(model)
    _check_origin(model)
    structure = _free_structure(res)
    _check_parameters(res)
    sm_reml = str(getattr(res, "method", "REML")).upper() == "REML"
    use_reml = sm_reml if reml is None else bool(reml)

    exog = np.asarray(model.exog, dtype=float)
    y = np.asarray(model.endog, dtype=float)
    n = len(y)
    cols: dict[str, Any] = {"y": y}
    fixed = []
    for i, name in enumerate(model.exog_names):
        gen = f"x{i + 1}"
        cols[gen] = exog[:, i]
        fixed.append((gen, _fixed_name(name)))

    labels = np.asarray(model.groups)
    group_levels = [str(g) for g in model.group_labels]
    codes = pd.Categorical([str(g) for g in labels], categories=group_levels)
    groups_label = _groups_label(model)

    random: list[RandomTerm] = []
    display: list[str] = []
    k_re = int(model.k_re)
    if k_re:
        exog_re = np.asarray(model.exog_re, dtype=float)
        names = list(model.data.exog_re_names)
        terms = []
        for j in range(k_re):
            gen = f"z{j + 1}"
            cols[gen] = exog_re[:, j]
            is_intercept = bool(np.all(exog_re[:, j] == 1))
            terms.append((gen, _INTERCEPT if is_intercept else str(names[j])))
        if structure == "diagonal" and k_re > 1:
            for j, term in enumerate(terms):
                gcol = f"g{j + 1}"
                cols[gcol] = codes
                random.append(RandomTerm(gcol, groups_label, (term,), False, "groups"))
        else:
            cols["g1"] = codes
            random.append(RandomTerm("g1", groups_label, tuple(terms), True, "groups"))
        for term in random:
            shown = [t[1] for t in term.columns]
            text = " + ".join("1" if s == _INTERCEPT else s for s in shown)
            if _INTERCEPT not in shown:
                text = "0 + " + text
            display.append(f"({text} | {groups_label})")
    elif structure == "diagonal":
        structure = "full"

    for j, vc in enumerate(model.exog_vc.names):
        level, value = _vc_columns(model, j)
        lcol, vcol = f"v{j + 1}", f"w{j + 1}"
        used_levels = np.unique(level)
        cols[lcol] = pd.Categorical(level, categories=used_levels)
        indicator = bool(np.all(value == 1))
        factor, shown = _vc_names(model.exog_vc.colnames[j], vc)
        # with one group (statsmodels' way to cross factors) the component is not nested
        where = factor if len(group_levels) == 1 else f"{groups_label}:{factor}"
        if indicator:
            term = ("(Intercept)", _INTERCEPT)
            display.append(f"(1 | {where})")
        else:
            cols[vcol] = value
            term = (vcol, shown)
            display.append(f"(0 + {shown} | {where})")
        random.append(RandomTerm(lcol, str(vc), (term,), False, "vc"))

    if not random:
        raise PylmeError("the statsmodels model has no random effects (k_re = 0 and no variance "
                         "components); there is no mixed model to compare")
    frame = pd.DataFrame(cols)
    if frame.isna().any().any():
        bad = [c for c in frame if frame[c].isna().any()]
        raise PylmeError(f"statsmodels fitted rows with missing values (model built with missing='none' "
                         f"from arrays; design columns {bad}); R would drop them and fit different rows. "
                         "Build the model with missing='drop'")

    parts = []
    for term in random:
        gens = [t[0] for t in term.columns]
        if gens == ["(Intercept)"]:
            parts.append(f"(1 | {term.group})")
        else:
            parts.append(f"(0 + {' + '.join(gens)} | {term.group})")
    fixed_text = " + ".join(g for g, _ in fixed) if fixed else ""
    formula = f"y ~ 0{' + ' + fixed_text if fixed_text else ''} + {' + '.join(parts)}"

    sm_formula = getattr(model, "formula", None)
    if isinstance(sm_formula, str) and "~" in sm_formula:
        lhs, _, rhs = sm_formula.partition("~")
        fixed_display = f"{lhs.strip()} ~ {rhs.strip()}"
    else:
        fixed_display = f"{model.endog_names} ~ 0 + " + " + ".join(d for _, d in fixed)
    display_formula = f"{fixed_display} + {' + '.join(display)}"

    notes = [f"statsmodels fitted {n} rows; R fits the same {n} rows with statsmodels' own design "
             "columns (its codings and transforms), so both fit one model"]
    if structure == "diagonal":
        notes.append("statsmodels fitted independent random effects (free= diagonal); lme4 fits them "
                     "as separate terms, so there is no correlation to compare")
    if not getattr(res, "use_sqrt", True):
        notes.append("statsmodels was fitted with use_sqrt=False; its covariance is positive "
                     "semi-definite, so lme4 can fit the same model")
    if use_reml != sm_reml:
        notes.append(f"statsmodels fitted by {'REML' if sm_reml else 'ML'}, R by "
                     f"{'REML' if use_reml else 'ML'} (reml={reml!r}): variance parameters, SEs and "
                     "log-likelihoods are not meant to agree")
    return Translation(frame=frame, formula=formula, display_formula=display_formula, fixed=tuple(fixed),
                       random=tuple(random), reml=use_reml, statsmodels_reml=sm_reml, nobs=n,
                       groups_label=groups_label, structure=structure, notes=tuple(notes))
