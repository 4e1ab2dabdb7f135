"""The work of one power() chunk: simulate, prepare, fit, test (see :mod:`.power`).

lme4 models go to R as one batch per model (``r/power.R``); other engines, and the
between-patient level model, are fitted one replicate at a time through the public API.
Every failure stays with its replicate.
"""
from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import PylmeError, RError
from ..models.model import AllianceModel
from ..models.slope_test import mixture_p_value, slope_test
from . import simulate as _simulator  # looked up at each call (tests stand in for it)

WITHIN = "alliance_within"
NAN = float("nan")


@dataclass
class _Numbers:
    """What one fit of one model variant gave (either path)."""

    error: str | None = None
    warnings: str = ""
    converged: bool | None = None
    singular: bool | None = None
    tests: list[tuple[float, float, float, int]] = field(default_factory=list)  # est, se, chisq, df
    loglik: float = NAN
    npar: float = NAN
    loglik_reduced: float = NAN
    npar_reduced: float = NAN
    reduced_error: str | None = None
    slope_sd: float = NAN
    lr: Any = None  # a SlopeTest, when the public path ran slope_test()


@dataclass
class _Replicate:
    replicate: int
    seed: int
    truth: dict[str, Any] | None = None
    panel: Any = None
    error: str | None = None


def _message(exc: BaseException) -> str:
    text = exc.r_message if isinstance(exc, RError) else str(exc)
    return f"{type(exc).__name__}: {' '.join(text.split()) or repr(exc)}"


def _prepare(data: pd.DataFrame, model: AllianceModel, moderators: tuple[str, ...]) -> Any:
    from ..panel.prepare import prepare

    leads = tuple(range(1, max(model.lead, 1) + 1))
    return prepare(data, patient="patient", session="session", alliance="alliance", outcome="outcome",
                   therapist="therapist", time="day", leads=leads, moderators=moderators,
                   outcome_better="lower")


def fit_chunk(chunk: Any) -> list[dict[str, Any]]:
    from ._generate import lean_truth

    model: AllianceModel = chunk.model
    kwargs = sim_kwargs(dict(chunk.design))
    wanted = [e.split(":", 1)[1] for e in chunk.effects if e.startswith("moderator:")]
    moderators = tuple(dict.fromkeys((*model.moderators, *wanted)))
    reps: list[_Replicate] = []
    for r, seed in zip(chunk.replicates, chunk.seeds):
        rep = _Replicate(replicate=r, seed=seed)
        try:
            # the truth parts power() reads (the between-level derivation only for "between")
            with lean_truth(between="between" in chunk.effects):
                sim = _simulator.simulate(**kwargs, seed=seed)
            rep.truth = sim.truth
            rep.panel = _prepare(sim.data, model, moderators)
        except Exception as exc:  # noqa: BLE001 - a failed replicate is recorded, never fatal
            rep.error = _message(exc)
        reps.append(rep)
    ok = [rep for rep in reps if rep.error is None]

    # model variants: the model itself (within, slope) and one per moderator tested
    variants: dict[str, tuple[AllianceModel, list[str]]] = {}
    if any(e in ("within", "slope") for e in chunk.effects):
        variants["base"] = (model, [])
    for name in wanted:
        variants[f"moderator:{name}"] = (model.replace(moderators=tuple(dict.fromkeys((*model.moderators, name)))),
                                         [name])
    numbers: dict[str, dict[int, _Numbers]] = {}
    for key, (variant, tested) in variants.items():
        slope = key == "base" and "slope" in chunk.effects
        if variant.engine == "lme4":
            numbers[key] = _batch(variant, ok, tested, slope)
        else:
            numbers[key] = {rep.replicate: _public(variant, rep.panel, tested, slope) for rep in ok}

    rows: list[dict[str, Any]] = []
    for rep in reps:
        for effect in chunk.effects:
            row = {"point": chunk.point, "replicate": rep.replicate, "seed": rep.seed, "effect": effect}
            if rep.error is not None:
                row.update(_failed(rep.error))
            elif effect == "between":
                row.update(_between(rep, chunk.alpha))
            elif effect == "slope":
                row.update(_slope_row(numbers["base"][rep.replicate], rep.truth, chunk.alpha))
            elif effect == "within":
                row.update(_wald_row(numbers["base"][rep.replicate], 0, _within_truth(model, rep.truth),
                                     chunk.alpha))
            else:
                name = effect.split(":", 1)[1]
                truth = NAN if name == "arm" else float(rep.truth.get("moderation", {}).get(name, 0.0))
                row.update(_wald_row(numbers[effect][rep.replicate], 1, truth, chunk.alpha))
            rows.append(row)
    return rows


# ----------------------------------------------------------------------- rows
def _failed(error: str) -> dict[str, Any]:
    return {"failed": True, "error": error, "estimate": NAN, "std_error": NAN, "statistic": NAN,
            "p_value": NAN, "ci_low": NAN, "ci_high": NAN, "detected": False, "truth": NAN,
            "converged": None, "singular": None, "test": "", "warnings": ""}


def _base(num: _Numbers) -> dict[str, Any]:
    return {"failed": False, "error": "", "converged": num.converged, "singular": num.singular,
            "warnings": num.warnings}


def _within_truth(model: AllianceModel, truth: dict[str, Any]) -> float:
    """The within coefficient's estimand: the direct or total effect at the model's lead."""
    if model.lead == 0:
        return NAN  # the concurrent association has no simulated counterpart
    table = truth["within_direct"] if model.effect == "direct" else truth["within_total"]
    return float(table.get(model.lead, 0.0))


def _wald_row(num: _Numbers, index: int, truth: float, alpha: float) -> dict[str, Any]:

    if num.error is not None:
        return _failed(num.error)
    estimate, se, chisq, df = num.tests[index]
    row = _base(num)
    row["truth"] = truth
    if df is not None and df > 1:  # joint test of a categorical moderator's interactions
        p = float(stats.chi2.sf(chisq, df)) if np.isfinite(chisq) else NAN
        row.update({"estimate": NAN, "std_error": NAN, "statistic": chisq, "p_value": p, "ci_low": NAN,
                    "ci_high": NAN, "test": f"joint Wald chi-square ({df} df)"})
    else:
        row.update({"estimate": estimate, "std_error": se, **wald(estimate, se, alpha), "test": "Wald z"})
    p = row["p_value"]
    row["detected"] = bool(np.isfinite(p) and p < alpha)
    if not np.isfinite(p):
        row.update(_failed("no test: the coefficient was not estimated (dropped or its SE is not finite)"))
        row["warnings"] = num.warnings
    return row


def _slope_row(num: _Numbers, truth: dict[str, Any], alpha: float) -> dict[str, Any]:
    if num.error is not None:
        return _failed(num.error)
    if num.reduced_error is not None:
        return _failed(f"the model without the random slope: {num.reduced_error}")
    if num.lr is not None:
        statistic, q = num.lr.statistic, num.lr.df
    else:
        statistic = 2.0 * (num.loglik - num.loglik_reduced)
        q = int(round(num.npar - num.npar_reduced)) if np.isfinite(num.npar - num.npar_reduced) else 0
    if not np.isfinite(statistic) or q < 1:
        return _failed("no likelihood-ratio test: the log-likelihoods or parameter counts are missing")
    statistic = max(statistic, 0.0)  # an optimizer shortfall, as slope_test() takes it
    p = mixture_p_value(statistic, q)
    row = _base(num)
    row.update({"estimate": num.slope_sd, "std_error": NAN, "statistic": statistic, "p_value": p,
                "ci_low": NAN, "ci_high": NAN, "detected": bool(np.isfinite(p) and p < alpha),
                "truth": float(truth["slope_sd"]),
                "test": f"REML likelihood ratio, 0.5*chi2({q - 1}) + 0.5*chi2({q})"})
    return row


def _between(rep: _Replicate, alpha: float) -> dict[str, Any]:
    from ..analyses.between import between_effect

    try:
        table = between_effect(rep.panel, conf_level=1 - alpha)
    except Exception as exc:  # noqa: BLE001
        return _failed(_message(exc))
    row = table.iloc[0]
    key = f"{row['level']}_adjusted" if row["adjusted_for"] else str(row["level"])
    p = float(row["p_value"])
    return {"failed": False, "error": "", "estimate": float(row["estimate"]),
            "std_error": float(row["std_error"]), "statistic": float(row["statistic"]), "p_value": p,
            "ci_low": float(row["conf_low"]), "ci_high": float(row["conf_high"]),
            "detected": bool(np.isfinite(p) and p < alpha),
            "truth": float(rep.truth["between_level"].get(key, NAN)),
            "converged": bool(row["converged"]), "singular": bool(row["singular"]),
            "test": "Satterthwaite t (between_effect)",
            "warnings": "\n".join(map(str, table.attrs.get("notes", [])))}


# ----------------------------------------------------------------------- lme4: batch in R
def _moderator_terms(spec: Any, panels: list[Any], name: str) -> tuple[str, list[str]]:
    """The model-frame column of moderator ``name`` and the suffixes of its interaction
    terms (``""`` for numeric, the non-reference levels for categorical)."""
    column = next(c for c, original in spec.moderator_names.items() if str(original) == name)
    suffixes: list[str] = []
    for panel in panels:
        info = panel.moderators[name]
        if info.kind == "numeric":
            return column, [""]
        suffixes += [str(level) for level in info.levels if level != info.reference]
    return column, list(dict.fromkeys(suffixes))


def _batch(model: AllianceModel, reps: list[_Replicate], tested: list[str], slope: bool) -> dict[int, _Numbers]:
    """Fit ``model`` to every replicate, one R call (r/power.R) per formula."""
    out: dict[int, _Numbers] = {}
    # the model's formula may depend on the data (a term dropped when it cannot vary):
    # one R call per distinct formula among the chunk's replicates
    groups: dict[str, tuple[Any, list[pd.DataFrame], list[_Replicate]]] = {}
    for rep in reps:
        try:
            # prior_outcome="auto" decided once: spec() and model_frame() would each decide it
            resolved = model.resolve(rep.panel)
            spec = resolved.spec(rep.panel)
            frame = _frame(resolved, spec, rep.panel)
        except Exception as exc:  # noqa: BLE001
            out[rep.replicate] = _Numbers(error=_message(exc))
            continue
        group = groups.setdefault(spec.formula, (spec, [], []))
        group[1].append(frame)
        group[2].append(rep)
    for spec, frames, kept in groups.values():
        out.update(_batch_call(model, spec, frames, kept, tested, slope))
    return out


def _frame(model: AllianceModel, spec: Any, panel: Any) -> pd.DataFrame:
    """``model.model_frame(panel)`` without writing the spec a second time (it can cost
    as much as the fit on small trials)."""
    try:
        from ..models.model import _model_frame
    except ImportError:  # pragma: no cover - the model module was reorganised
        return model.model_frame(panel)
    return _model_frame(panel, spec, model)


def _batch_call(model: AllianceModel, spec: Any, frames: list[pd.DataFrame], kept: list[_Replicate],
                tested: list[str], slope: bool) -> dict[int, _Numbers]:
    """One R call (``pylme_power_fits``) for replicates that share ``spec.formula``."""
    from .. import bridge
    from ..engines._common import parse_formula
    from ..engines._names import NameMap
    from ..engines.datacheck import model_columns
    from ..models.second_opinion import FIXEF_TOL, LOGLIK_TOL

    out: dict[int, _Numbers] = {}
    try:
        info = parse_formula(spec.formula)
        columns = [c for c in frames[0].columns if c in info.variables]
        names = NameMap(columns)
        r = names.to_r
        tests = [[r[WITHIN]]]
        for name in tested:
            column, suffixes = _moderator_terms(spec, [rep.panel for rep in kept], name)
            tests.append([f"{r[WITHIN]}:{r[column]}{s}" for s in suffixes])
        reml = True if model.reml is None else bool(model.reml)
        # refit needs the designs compared; a REML batch never refits (see r/power.R)
        refit = not reml and same_design([model_columns(f, columns) for f in frames], spec.response)
        r_frames = _frames_to_r(frames, columns, names)
        reduced = model.replace(random_slope=False).spec(kept[0].panel).formula if slope else None
        group = None
        if slope:
            group = (f"{r['therapist']}:{r['patient']}" if model.therapist == "nested" else r["patient"])
        value, _ = bridge.call("pylme_power_fits", r_frames, spec.formula,
                               names.r_names(), reml, tests, reduced=reduced,
                               refit=refit,
                               slope=r[WITHIN] if slope else None,
                               slope_group=group,
                               check={"loglik": LOGLIK_TOL, "fixef": FIXEF_TOL})
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - the whole batch failed: every replicate says why
        message = _message(exc)
        out.update({rep.replicate: _Numbers(error=message) for rep in kept})
        return out
    n, k = len(kept), len(tests)
    vec = lambda key: np.atleast_1d(np.asarray(value[key], dtype=object)).ravel()  # noqa: E731
    num = lambda key: np.asarray(value[key], dtype=float).reshape(n, -1)  # noqa: E731
    est, se, chisq = num("estimate").reshape(n, k), num("std_error").reshape(n, k), num("chisq").reshape(n, k)
    chisq_df = num("chisq_df").reshape(n, k)
    errors, warns = vec("error"), vec("warnings")
    converged, singular = vec("converged"), vec("singular")
    red_errors = vec("reduced_error")
    scalars = {key: np.atleast_1d(np.asarray(value[key], dtype=float)).ravel()
               for key in ("loglik", "npar", "loglik_reduced", "npar_reduced", "slope_sd")}
    for i, rep in enumerate(kept):
        error = errors[i]
        text = names.to_user(str(warns[i] or ""))
        if error is not None and error is not pd.NA:
            out[rep.replicate] = _Numbers(error=f"RError: {names.to_user(str(error))}", warnings=text)
            continue
        red = red_errors[i]
        out[rep.replicate] = _Numbers(
            warnings=text, converged=bool(converged[i]), singular=bool(singular[i]),
            tests=[(float(est[i, j]), float(se[i, j]), float(chisq[i, j]),
                    None if not np.isfinite(chisq_df[i, j]) else int(chisq_df[i, j])) for j in range(k)],
            loglik=float(scalars["loglik"][i]), npar=float(scalars["npar"][i]),
            loglik_reduced=float(scalars["loglik_reduced"][i]), npar_reduced=float(scalars["npar_reduced"][i]),
            reduced_error=None if red is None or red is pd.NA else names.to_user(str(red)),
            slope_sd=float(scalars["slope_sd"][i]))
    return out


def _frames_to_r(frames: list[pd.DataFrame], columns: list[str], names: Any) -> list[Any]:
    """The model frames as R data.frames under their generated names.

    The same R objects as ``bridge.to_r(names.frame_to_r(model_columns(f, columns)))``:
    when every used column is a numpy number or a categorical (what ``model_frame``
    makes), ``model_columns`` would only check the numbers and copy, so the columns go
    to R directly after that check (the two pandas copies cost as much as the
    conversion). Anything else, or a number it would refuse, takes that general path
    (which raises its error).
    """
    from .. import bridge
    from ..bridge import convert
    from ..engines.datacheck import MAX_ABS_VALUE, model_columns

    out = []
    with bridge.lock:
        bridge.private_env()  # R started before R vectors are made
        for frame in frames:
            vectors = _direct_vectors(frame, columns, names, convert, MAX_ABS_VALUE)
            if vectors is None:
                out.append(convert.to_r(names.frame_to_r(model_columns(frame, columns))))
            else:
                out.append(convert.data_frame(vectors, len(frame)))
    return out


def _direct_vectors(frame: pd.DataFrame, columns: list[str], names: Any, convert: Any,
                    limit: float) -> dict[str, Any] | None:
    if not frame.columns.is_unique or any(c not in frame.columns for c in columns):
        return None
    vectors: dict[str, Any] = {}
    for column in columns:
        series = frame[column]
        dtype = series.dtype
        name = names.to_r[column]
        if dtype == np.float64:
            values = series.to_numpy()
            missing = np.isnan(values)
            if (~missing & ~(np.abs(values) <= limit)).any():
                return None
            # what _column_to_r does with a float64 column, without the Series round trips
            vectors[name] = convert._float_vector(convert._na_float(values, missing))
        elif isinstance(dtype, pd.CategoricalDtype) or (isinstance(dtype, np.dtype) and dtype.kind in "iu"):
            vectors[name] = convert._column_to_r(series, name)
        else:
            return None
    return vectors


def same_design(frames: list[pd.DataFrame], response: str) -> bool:
    """Whether every frame has the same rows and predictors (and missing responses in
    the same rows), so only the response differs: then ``lme4::refit`` applies."""
    first = frames[0]
    others = first.drop(columns=[response])
    missing = first[response].isna().to_numpy()
    for frame in frames[1:]:
        if frame.shape != first.shape or list(frame.columns) != list(first.columns):
            return False
        if not np.array_equal(frame[response].isna().to_numpy(), missing):
            return False
        if not frame.drop(columns=[response]).equals(others):
            return False
    return len(frames) > 1


# ----------------------------------------------------------------------- other engines
def _public(model: AllianceModel, panel: Any, tested: list[str], slope: bool) -> _Numbers:
    """One replicate through ``model.fit()`` (nlme, glmmTMB, statsmodels)."""
    try:
        fit = model.fit(panel)
        beta, vcov = fit.fixef_values, fit.vcov_matrix
        table = fit.fixed_table.set_index("term")
        tests = [_one_test(table, [WITHIN], beta, vcov)]
        for name in tested:
            info = panel.moderators[name]
            terms = ([f"{WITHIN}:{name}"] if info.kind == "numeric"
                     else [f"{WITHIN}:{name}{level}" for level in info.levels if level != info.reference])
            tests.append(_one_test(table, terms, beta, vcov))
        num = _Numbers(warnings="\n".join(fit.warnings), converged=bool(fit.converged),
                       singular=bool(fit.singular), tests=tests,
                       loglik=float(fit.stats.get("logLik", NAN)), npar=float(fit.stats.get("df", NAN)))
        if slope:
            sd = fit.ran_pars_table
            rows = sd[sd["term"] == f"sd__{WITHIN}"]["estimate"]
            num.slope_sd = float(rows.iloc[0]) if len(rows) else NAN
            try:
                # the asymptotic mixture, as the R batch: a bootstrap per replicate would cost
                # 199 refits each (the report calibrates; power() states the mixture's size)
                num.lr = slope_test(fit, method="mixture")
            except Exception as exc:  # noqa: BLE001
                num.reduced_error = _message(exc)
        return num
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001
        return _Numbers(error=_message(exc))


def _one_test(table: pd.DataFrame, terms: list[str], beta: pd.Series,
              vcov: pd.DataFrame | None) -> tuple[float, float, float, int | None]:
    present = [t for t in terms if t in table.index]
    if not present:
        return NAN, NAN, NAN, None
    if len(terms) == 1:
        est, se = float(table.loc[present[0], "estimate"]), float(table.loc[present[0], "std_error"])
        return est, se, (est / se) ** 2 if se > 0 else NAN, 1
    if vcov is None:
        raise PylmeError("the joint test of a categorical moderator needs the fit's covariance matrix")
    b = beta[present].to_numpy(dtype=float)
    V = vcov.loc[present, present].to_numpy(dtype=float)
    return NAN, NAN, float(b @ np.linalg.solve(V, b)), len(present)


def _within_value(value: Any) -> tuple[float, ...]:
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        default = inspect.signature(_simulator.simulate).parameters["within_effect"].default
        return (float(value), *tuple(default)[1:])
    return tuple(value)


def sim_kwargs(design: Mapping[str, Any]) -> dict[str, Any]:
    """_simulator.simulate()'s keywords for a design point (a bare within effect fills the lag-2 default)."""
    kwargs = dict(design)
    if "within_effect" in kwargs:
        kwargs["within_effect"] = _within_value(kwargs["within_effect"])
    return kwargs


def wald(estimate: float, se: float, alpha: float) -> dict[str, float]:
    """Wald z test and the (1 - alpha) interval."""
    if not (np.isfinite(estimate) and np.isfinite(se) and se > 0):
        return {"statistic": np.nan, "p_value": np.nan, "ci_low": np.nan, "ci_high": np.nan}
    z = estimate / se
    q = float(stats.norm.ppf(1 - alpha / 2))
    return {"statistic": z, "p_value": float(2 * stats.norm.sf(abs(z))),
            "ci_low": estimate - q * se, "ci_high": estimate + q * se}
