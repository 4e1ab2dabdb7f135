"""What every R engine does around its fit: check the formula and the data before R
runs anything, send only the columns the model uses, and turn R's answer into a
:class:`~pylme_alliance.results.MixedFit`."""
from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .. import bridge
from ..errors import PylmeError, RError
from ..results import MixedFit
from ._limits import MAX_FORMULA_TERMS, check_formula_size  # noqa: F401 (the limit, public here)
from ._names import NameMap
from .datacheck import model_columns
from .flags import fit_flags

#: Functions a formula may call without ``allow_calls=``. Anything else (``system``,
#: ``eval``, ``get``, ``::``) is refused before model.frame() could run it.
ALLOWED_CALLS: frozenset[str] = frozenset({
    "~", "+", "-", "*", "/", ":", "^", "|", "||", "(", "%in%",
    "I", "log", "log1p", "log2", "log10", "exp", "sqrt", "abs", "poly", "scale", "factor",
    "as.numeric", "as.factor", "offset", "sin", "cos", "tan", "ar1", "cs", "us", "diag",
    "ns", "bs",
})

#: Symbols R resolves by itself that may appear in a formula without being columns.
#: A symbol that IS a column of the data always means the column (it is renamed like any
#: other), so ``T``, ``F`` and ``pi`` mean R's values only when the data have no such
#: column. ``TRUE``, ``FALSE``, ``NULL``, ``NA``, ``Inf`` and ``NaN`` written without
#: backticks are not symbols but R's constants; when the data have a column of that name
#: the formula is refused as ambiguous (write ```TRUE``` to mean the column).
R_CONSTANTS: frozenset[str] = frozenset({"pi", "T", "F", "TRUE", "FALSE"})



def refuse_nul(value: Any, what: str) -> None:
    """Refuse a NUL character anywhere in ``value`` (strings, dict keys and values, lists).

    R's strings end at the first NUL, so ``"x\\x00 + s"`` would reach R as ``"x"`` while
    the fit's formula says otherwise.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise PylmeError(f"{what} contains a NUL character (\\x00), which R cannot hold: {item!r}")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


@dataclass(frozen=True)
class FormulaInfo:
    """What R's parser found in a formula (nothing was evaluated)."""

    text: str
    variables: tuple[str, ...]
    response: tuple[str, ...]
    groups: tuple[str, ...]
    calls: tuple[str, ...]
    constants: tuple[str, ...] = ()


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def parse_formula(text: str, *, allow_calls: Iterable[str] = ()) -> FormulaInfo:
    """Parse formula text in R (``str2lang``, no evaluation) and refuse unknown calls."""
    if not isinstance(text, str) or not text.strip():
        raise PylmeError(f"a formula must be a non-empty string, got {text!r}")
    refuse_nul(text, "the formula")
    info, _ = bridge.call("pylme_formula_info", text)
    bound = float(np.asarray(info.get("terms_bound", 0), dtype=float).ravel()[0])
    check_formula_size("formula", text, bound)
    calls = _as_tuple(info["calls"])
    allowed = ALLOWED_CALLS | set(allow_calls)
    refused = sorted(set(calls) - allowed)
    if refused:
        raise PylmeError(
            f"formula {text!r} calls {refused}, which are not on the list of functions a formula "
            f"may call; if you trust them, pass allow_calls={refused!r}"
        )
    return FormulaInfo(text, _as_tuple(info["vars"]), _as_tuple(info["response"]),
                       _as_tuple(info["groups"]), calls, _as_tuple(info["constants"]))


def require_response(info: FormulaInfo, what: str = "formula") -> None:
    """Refuse a one-sided formula (``"~ x + (1 | g)"``): a model needs a response."""
    if not info.response:
        raise PylmeError(f"the {what} {info.text!r} has no response: write it as 'outcome ~ ...' with "
                         "the response column on the left of '~'")


def missing_columns_error(missing: list[str], columns: list[str]) -> PylmeError:
    """The error for formula variables that are not columns, with close matches."""
    hints = []
    for var in missing:
        close = difflib.get_close_matches(var, columns, n=3, cutoff=0.6)
        hints.append(f"{var!r}" + (f" (did you mean {', '.join(map(repr, close))}?)" if close else ""))
    return PylmeError(f"column(s) not in the data: {', '.join(hints)}; the data have "
                      f"{len(columns)} columns: {columns[:20]}{' ...' if len(columns) > 20 else ''}")


def check_data(data: Any, formulas: Iterable[FormulaInfo], *, extra: Iterable[str] = ()) -> pd.DataFrame:
    """Validate ``data`` against the parsed formulas; return the columns the model uses.

    Raises a :class:`PylmeError` naming the column for: a variable missing from the data
    (with close matches), a non-numeric response, a grouping factor with fewer than two
    levels, or no complete rows at all. The caller's frame is never modified: the
    returned frame is a new one.
    """
    if not isinstance(data, pd.DataFrame):
        raise PylmeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    formulas = list(formulas)
    columns = [str(c) for c in data.columns]
    wanted: list[str] = []
    for info in formulas:
        for var in (*info.variables, *extra):
            if var not in wanted:
                wanted.append(var)
    missing = [v for v in wanted if v not in columns and v not in R_CONSTANTS]
    if missing:
        raise missing_columns_error(missing, columns)
    for info in formulas:
        clash = [c for c in info.constants if c in columns]
        if clash:
            raise PylmeError(f"in {info.text!r}, {clash[0]} is R's constant, but the data also have a column "
                             f"named {clash[0]!r}; write `{clash[0]}` (with backticks) to use the column")
    used = [v for v in wanted if v in columns]
    frame = model_columns(data, used)  # one column rule for every engine (datacheck.py)
    for info in formulas:
        for var in info.response:
            if var in frame and not (pd.api.types.is_numeric_dtype(frame[var])
                                     and not pd.api.types.is_bool_dtype(frame[var])):
                raise PylmeError(f"the response column {var!r} must be numeric, not {frame[var].dtype}")
    complete = frame.notna().all(axis=1)
    if not complete.any():
        raise PylmeError(f"no row of the data is complete for the model's columns {used}; "
                         "every row has a missing value in at least one of them")
    for info in formulas:
        for var in info.groups:
            if var in frame:
                levels = frame.loc[complete, var].nunique()
                if levels < 2:
                    raise PylmeError(f"the grouping factor {var!r} has {levels} level(s) among the "
                                     "complete rows; a random effect needs at least 2")
    return frame


@dataclass(frozen=True)
class RBackend:
    """On-demand tables of an R fit: calls ``pylme_<prefix>_...`` functions in r/."""

    prefix: str
    fit: Any
    names: NameMap = NameMap(())
    r_terms: tuple[str, ...] = ()

    def _call(self, what: str, *args: Any) -> Any:
        try:
            value, _ = bridge.call(f"pylme_{self.prefix}_{what}", self.fit, *args)
        except RError as exc:
            raise RError(self.names.to_user(exc.r_message), exc.r_call) from None
        return value

    def ran_vals(self) -> pd.DataFrame:
        return self.names.table(self._call("ran_vals"))

    def ran_coefs(self) -> pd.DataFrame:
        frames = self._call("coef")
        return _long_table(self.names.wide(frames))

    def ranef(self) -> dict[str, pd.DataFrame]:
        return {g: d.set_index("level") for g, d in self.names.wide(self._call("ranef")).items()}

    def fitted_resid(self) -> tuple[np.ndarray, np.ndarray]:
        out = self._call("augment")
        return np.asarray(out["fitted"], dtype=float), np.asarray(out["resid"], dtype=float)

    def contrast(self, L: np.ndarray, ddf: str) -> dict[str, float] | None:
        return self._call("contrast", list(map(float, L)), ddf)

    def sd_interval(self, group: str, term: str, level: float) -> tuple[float, float]:
        group_r = self.names.term_to_r(group, self.r_terms)
        term_r = self.names.term_to_r(term, self.r_terms)
        low, high = np.asarray(self._call("sd_interval", group_r, term_r, float(level)), dtype=float)
        return float(low), float(high)

    def bootstrap_lr(self, reduced: RBackend, draws: int, seed: int) -> dict[str, Any]:
        """Parametric bootstrap of the likelihood ratio against the nested ``reduced`` fit:
        ``draws`` responses simulated from ``reduced``, both models refitted (lme4 only)."""
        if self.prefix != "lmer" or getattr(reduced, "prefix", None) != "lmer":
            raise PylmeError("the parametric bootstrap of the likelihood ratio is available for lme4 fits")
        try:
            value, _ = bridge.call("pylme_lmer_pb_lr", self.fit, reduced.fit, int(draws), int(seed))
        except RError as exc:
            raise RError(self.names.to_user(exc.r_message), exc.r_call) from None
        return value

    def predict(self, newdata: pd.DataFrame | None, include_random: bool) -> np.ndarray:
        if newdata is not None:
            # the model's columns under their R names; other columns stay behind
            newdata = self.names.frame_to_r(newdata.reset_index(drop=True))
        return np.atleast_1d(np.asarray(self._call("predict", newdata, bool(include_random)), dtype=float))

    @property
    def r(self) -> Any:
        return self.fit


def _long_table(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """{group: wide frame with a level column} -> long rows (group, level, term, estimate)."""
    rows = []
    for group, wide in frames.items():
        long = wide.melt(id_vars="level", var_name="term", value_name="estimate")
        long.insert(0, "group", group)
        rows.append(long)
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["group", "level", "term", "estimate"])


def fit_in_r(function: str, frame: pd.DataFrame, names: NameMap, **args: Any) -> tuple[dict[str, Any], list[str]]:
    """Bind ``frame``, its columns under their R names, as ``data`` in a fresh R
    environment and run ``function`` there with ``names`` (for ``pylme_formula``).

    R's errors come back with the user's names. A fit function that finds the fixed
    effects not identified returns ``aliased`` instead of a fit: that is refused here,
    naming the terms and the columns they are made of.
    """
    refuse_nul(args, "an argument")
    try:
        with bridge.lock:
            env = bridge.new_env()
            bridge.assign(env, "data", names.frame_to_r(frame))
            result, conditions = bridge.call(function, env, names=names.r_names(), **args)
    except RError as exc:
        raise RError(names.to_user(exc.r_message), exc.r_call) from None
    except PylmeError as exc:  # the bridge refusing a value: it knows the column by its R name
        raise PylmeError(names.to_user(str(exc))) from None
    aliased = texts(result.get("aliased"))
    if aliased:
        terms = [names.to_user(t) for t in aliased]
        used = list(dict.fromkeys(c for t in aliased for c in names.columns_in(t)))
        raise PylmeError(f"the fixed-effect term(s) {terms} (column(s) {used}) are constant or perfectly "
                         "collinear with the other fixed effects among the complete rows, so their "
                         "coefficients are not identified; remove them from the formula")
    return result, list(names.texts(conditions))


def _series(values: Any) -> pd.Series:
    if isinstance(values, pd.Series):
        return values.astype(float)
    return pd.Series(np.atleast_1d(np.asarray(values, dtype=float)))


def _stats(glance: dict[str, Any]) -> dict[str, Any]:
    ngrps = glance.get("ngrps") or {}
    if isinstance(ngrps, pd.Series):
        ngrps = ngrps.to_dict()
    out = {
        "nobs": int(glance["nobs"]), "sigma": _float(glance.get("sigma")),
        "logLik": _float(glance.get("logLik")), "AIC": _float(glance.get("AIC")),
        "BIC": _float(glance.get("BIC")), "reml": bool(glance.get("reml")),
        "converged": bool(glance.get("converged", True)), "singular": bool(glance.get("singular", False)),
        "df": _float(glance.get("df")),
        "ngrps": {str(k): int(np.asarray(v).ravel()[0]) for k, v in ngrps.items()},
    }
    return out


def r_terms(result: dict[str, Any]) -> tuple[str, ...]:
    """Term and group names as R gave them (for looking a user's term up in R)."""
    out = list(texts(result["fixed"]["term"])) + list(texts(result["ran_pars"]["group"]))
    for term in texts(result["ran_pars"]["term"]):
        out.extend(term.split("__", 1)[1].split(".") if term.startswith("cor__") else [term.split("__", 1)[-1]])
    return tuple(dict.fromkeys(out))


def texts(value: Any) -> list[str]:
    """An R character vector (None, one string or an array of them) as a list of str."""
    if value is None:
        return []
    return [str(v) for v in np.atleast_1d(np.asarray(value, dtype=object)) if v is not None]


def _float(value: Any) -> float:
    if value is None:
        return float("nan")
    return float(np.asarray(value, dtype=float).ravel()[0])


def make_fit(engine: str, formula: str, data: pd.DataFrame, frame: pd.DataFrame, result: dict[str, Any],
             conditions: list[str], backend: Any, call_args: dict[str, Any]) -> MixedFit:
    """Assemble a MixedFit from what an r/ fit function returned, every name R gave
    mapped back to the user's (``backend.names``)."""
    names: NameMap = getattr(backend, "names", NameMap(()))
    used = np.asarray(result["used_rows"], dtype=np.int64).ravel() - 1
    model_rows = data.iloc[used].copy()
    stats = _stats(result["glance"])
    messages = [names.to_user(m) for m in texts(result["glance"].get("conv_messages"))]
    warnings = tuple(dict.fromkeys([*conditions, *messages]))
    # the optimizer's own word counts too: nlminb's "singular convergence (7)" is glmmTMB
    # stopping at a boundary whose reported correlation stops short of +-1 (glmmTMB 1.1.10)
    stopped_singular = any("singular convergence" in w for w in warnings)
    stats.update(fit_flags(engine, bool(stats["singular"]) or stopped_singular, result["ran_pars"]))  # one rule
    stats["ngrps"] = names.keys(stats["ngrps"])
    if any("converge" in w.lower() for w in warnings):
        stats["converged"] = False
    fixef = names.series(_series(result["fixef"]))
    vcov = result.get("vcov")
    if isinstance(vcov, pd.DataFrame):
        vcov.index = list(vcov.columns)
        vcov = names.matrix(vcov)
    return MixedFit(
        engine=engine, formula=formula, nobs=stats["nobs"], n_dropped=len(frame) - len(used),
        warnings=warnings, data=model_rows,
        fixed_table=names.table(result["fixed"]).reset_index(drop=True),
        ran_pars_table=names.table(result["ran_pars"]).reset_index(drop=True), stats=stats, fixef_values=fixef,
        backend=backend, call_args=call_args, vcov_matrix=vcov,
    )
