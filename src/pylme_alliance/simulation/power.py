"""power(): simulation-based power of the alliance-outcome analyses.

For each design point (a combination of :func:`~.simulate.simulate` keywords), each
replicate is simulated with its own seed, prepared with :func:`~.prepare.prepare`, and
fitted; every requested effect is then tested and compared with the simulator's truth.
The table and figure are made by :mod:`.power_result`.

How the replicates are fitted
-----------------------------
* The default alliance model (``AllianceModel()``; any lme4 ``model=``) is fitted in
  batches inside R: one R call (``r/power.R``) fits every replicate of a chunk with
  ``lme4::lmer`` and returns the numbers the tests need. The formula and model frame
  come from the model's public ``spec()`` and ``model_frame()``, so power follows the
  package's default model when it changes. The columns reach R under generated names
  (:class:`~pylme_alliance.engines._names.NameMap`): no name becomes R code.
* ``lme4::refit(fit, newresp)`` reuses a fitted model's structure when only the
  response changes. :func:`simulate` draws the alliance, the attendance and (for the
  default model) the lagged outcome afresh in every replicate, so the design matrices
  differ between replicates and power() fits each one in full. The refit path is taken
  only when a chunk's designs are identical except for the response AND the model is
  fitted by ML (``AllianceModel(reml=False)``): with lme4 1.1-31, ``refit()`` of a REML
  fit does not reproduce it (it lands near the ML optimum).
* Tests: ``within`` and numeric moderators by the Wald z test (no Satterthwaite df:
  with tens of patients or more the normal reference is what a power study needs, and
  lmerTest costs 2-3x per fit); a categorical moderator (``arm``) by the joint Wald
  chi-square test of its interactions; ``slope`` by the REML likelihood-ratio test of
  the random slope with the 50:50 chi-square mixture (``slope_test(method="mixture")``: a
  bootstrap per replicate would cost hundreds of refits; the mixture rejects too often on
  session data, see benchmarks/README.md "Heterogeneity", so slope power is optimistic);
  ``between`` through :func:`~.between.between_effect` (the report's level model,
  lmerTest's Satterthwaite t), one fit per replicate. Engines other than lme4 are
  fitted one replicate at a time through ``model.fit()``.
* Convergence: as :class:`AllianceModel` judges it, including its bobyqa check of a
  boundary fit that lme4 flags (:mod:`.second_opinion`). A boundary fit that only
  lmerTest's Hessian check would flag (the batch does not run lmerTest) keeps lme4's
  optimum, which ``model.fit()`` may replace by a slightly better bobyqa optimum.

Reproducibility: ``numpy.random.SeedSequence(seed).spawn(total)`` gives every
(design point, replicate) its seed before the work is cut into chunks, so serial runs,
process pools and Dask give the same detections.
"""
from __future__ import annotations

import inspect
import itertools
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import PylmeError
from ..models.model import AllianceModel
from . import simulate as _simulator  # looked up at each call (tests stand in for it)
from ._power_fit import _failed, fit_chunk, sim_kwargs
from ._simchecks import MODERATORS, check_point_count, check_power_size
from .power_result import PowerResult

__all__ = ["power", "PowerResult", "EFFECTS", "CHUNK_MAX"]

#: Effects power() can test; a moderator is written ``"moderator:<name>"``.
EFFECTS = ("within", "between", "slope")
#: Replicates per chunk at most (a chunk is one task and, for lme4, one R call).
CHUNK_MAX = 20

_SIM_KEYWORDS = tuple(inspect.signature(_simulator.simulate).parameters)
# keywords whose single value is itself a sequence / mapping: a list of them is a sweep
_SEQUENCE_VALUED = {"within_effect"}
_MAPPING_VALUED = {"moderation"}
WITHIN, BETWEEN = "alliance_within", "alliance_between"


@dataclass(frozen=True)
class _Chunk:
    """Replicates of one design point, run by one task (picklable, no R objects)."""

    point: int
    design: tuple[tuple[str, Any], ...]   # simulate() keywords of the design point
    replicates: tuple[int, ...]
    seeds: tuple[int, ...]
    model: AllianceModel
    effects: tuple[str, ...]
    alpha: float


# ----------------------------------------------------------------------- arguments
def _as_values(key: str, value: Any) -> list[Any]:
    """The values a design keyword takes (a list is a sweep, anything else one value)."""
    if key in _MAPPING_VALUED:
        if value is None or isinstance(value, Mapping):
            return [value]
        if isinstance(value, (list, tuple)) and all(v is None or isinstance(v, Mapping) for v in value):
            return list(value)
        raise PylmeError(f"power(): design[{key!r}] must be a dict or a list of dicts, got {value!r}")
    if key in _SEQUENCE_VALUED:
        # a number is the lag-1 effect (later lags as simulate()'s default); a tuple is one
        # full within_effect; a list of numbers or tuples is a sweep
        if isinstance(value, list):
            return list(value)
        return [value]
    if isinstance(value, (list, tuple, range, np.ndarray, pd.Series)):
        check_point_count([len(value)])  # before list(): range(10**12) is cheap until listed
        values = list(value)
        if not values:
            raise PylmeError(f"power(): design[{key!r}] is an empty list")
        return values
    return [value]


def _design_points(design: Mapping[str, Any] | None, n_patients: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """Every combination of the swept simulate() keywords, and the swept keywords."""
    if design is None:
        design = {}
    if not isinstance(design, Mapping):
        raise PylmeError(f"power(): design must be a dict of simulate() keywords, got {type(design).__name__}")
    unknown = [k for k in design if k not in _SIM_KEYWORDS]
    if unknown:
        raise PylmeError(f"power(): design has unknown simulate() keyword(s) {unknown}; simulate() takes "
                         f"{[k for k in _SIM_KEYWORDS if k != 'seed']}")
    if "seed" in design:
        raise PylmeError("power(): design may not set seed; give power(seed=...) and every replicate gets "
                         "its own seed from it")
    if "n_patients" in design:
        raise PylmeError("power(): give the sample sizes as power(n_patients=...), not in design")
    keys = {"n_patients": _as_values("n_patients", n_patients)}
    keys.update({str(k): _as_values(str(k), v) for k, v in design.items()})
    swept = [k for k, v in keys.items() if len(v) > 1 or k == "n_patients"]
    check_point_count([len(v) for v in keys.values()])
    points = [dict(zip(keys, combo)) for combo in itertools.product(*keys.values())]
    return points, swept


def _check_effects(effects: Any, model: AllianceModel) -> tuple[str, ...]:
    if isinstance(effects, str):
        effects = (effects,)
    try:
        effects = tuple(dict.fromkeys(effects))
    except TypeError:
        raise PylmeError(f"power(): effects must be a list of effect names, got {effects!r}") from None
    if not effects:
        raise PylmeError("power(): effects is empty; choose from 'within', 'between', 'slope', "
                         "'moderator:<name>'")
    odd = [m for m in model.moderators if m not in MODERATORS]
    if odd:
        raise PylmeError(f"power(): the model's moderators {odd} are not columns the simulator makes; "
                         f"choose from {list(MODERATORS)}")
    for effect in effects:
        if not isinstance(effect, str):
            raise PylmeError(f"power(): effect {effect!r} is not a name")
        if effect.startswith("moderator:"):
            name = effect.split(":", 1)[1]
            if name not in MODERATORS:
                raise PylmeError(f"power(): {effect!r} names no moderator the simulator makes; choose "
                                 f"from {[f'moderator:{m}' for m in MODERATORS]}")
        elif effect not in EFFECTS:
            raise PylmeError(f"power(): unknown effect {effect!r}; choose from {list(EFFECTS)} or "
                             f"{[f'moderator:{m}' for m in MODERATORS]}")
        if effect == "slope" and not model.random_slope:
            raise PylmeError("power(): effect 'slope' tests the random slope, but the model has "
                             "random_slope=False")
    return effects


def _check_alpha(alpha: Any) -> float:
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise PylmeError(f"power(): alpha must be a number in (0, 1), got {alpha!r}") from None
    if not 0 < value < 1:
        raise PylmeError(f"power(): alpha must be in (0, 1), got {alpha!r}")
    return value


def _check_sims(n_sims: Any) -> int:
    if isinstance(n_sims, bool) or not isinstance(n_sims, (int, np.integer)) or n_sims < 1:
        raise PylmeError(f"power(): n_sims must be a positive integer, got {n_sims!r}")
    return int(n_sims)


def _check_points(points: list[dict[str, Any]]) -> None:
    """simulate() checks its arguments before it draws: run it once per design point on
    the smallest input so a bad keyword value fails here, not in every replicate."""
    for point in points:
        try:
            _simulator.simulate(**sim_kwargs(point), seed=0)
        except PylmeError as exc:
            raise PylmeError(f"power(): design point {point}: {exc}") from None
        except TypeError as exc:
            raise PylmeError(f"power(): design point {point}: {exc}") from None


def chunk_size(n_sims: int) -> int:
    """Replicates per chunk: at least two chunks per design point, at most CHUNK_MAX."""
    return max(1, min(CHUNK_MAX, math.ceil(n_sims / 2)))


# ----------------------------------------------------------------------- the call
def power(
    *,
    design: Mapping[str, Any] | None = None,
    n_patients: int | Sequence[int] = (100, 200, 400),
    n_sims: int = 500,
    model: AllianceModel | None = None,
    effects: Iterable[str] = ("within",),
    alpha: float = 0.05,
    seed: int | None = None,
    executor: Any = None,
    progress: bool = True,
) -> PowerResult:
    """Simulation-based power of the alliance-outcome model for planned designs.

    Parameters
    ----------
    design : dict, optional
        :func:`~pylme_alliance.simulate` keywords. A list value is swept (one design
        point per value; the points are every combination with ``n_patients``); any
        other value is fixed. ``within_effect``: a number is the lag-1 effect (later
        lags as simulate()'s default), a tuple one full value, a list of either a sweep.
        ``moderation``: a dict, or a list of dicts to sweep. ``seed`` and ``n_patients``
        are not accepted here.
    n_patients : int or sequence of int
        Patients per simulated trial (swept).
    n_sims : int
        Replicates per design point.
    model : AllianceModel, optional
        The model fitted to every replicate; default ``AllianceModel()``, the package's
        default alliance model.
    effects : iterable of str
        ``"within"`` (the model's within-patient alliance coefficient, Wald z),
        ``"between"`` (the between-patient level effect of
        :func:`~pylme_alliance.between_effect`, Satterthwaite t), ``"slope"`` (the
        likelihood-ratio test of the random slope; estimate = slope SD) and
        ``"moderator:<name>"`` for a simulated moderator (``severity``, ``n_sessions``,
        ``integrative``, ``arm``) of the within effect: its interaction in the model with
        that moderator added (Wald z; ``arm`` a joint Wald chi-square test, no estimate).
        Give ``design={"moderation": {...}}`` for a non-zero moderation.
    alpha : float
        Test level; intervals are at ``1 - alpha``.
    seed : int, optional
        Root of the per-replicate seeds (``numpy.random.SeedSequence(seed).spawn``);
        ``None`` draws fresh entropy (kept on the result as ``seed``).
    executor : None, concurrent.futures.Executor or dask.distributed.Client
        Where the chunks run (:func:`pylme_alliance.executors.run_chunks`); None runs
        them here. The results do not depend on it.
    progress : bool
        A progress bar over the chunks (design point, replicates, ETA).

    Returns
    -------
    PowerResult
        ``.table`` (one row per design point and effect: ``power`` with its Wilson 95%
        Monte-Carlo interval, mean estimate, truth, bias, coverage, non-convergence and
        singular rates, failures), ``.replicates``, ``.figure()``, ``.save(dir)``.

    Notes
    -----
    A replicate whose simulation or fit fails is recorded (``failed``, ``error``) and
    left out of the power; ``n_ok`` counts the replicates that gave a test. Fits that
    did not converge or are singular still count; their rates are in the table.
    """
    model = AllianceModel() if model is None else model
    if not isinstance(model, AllianceModel):
        raise PylmeError(f"power(): model must be an AllianceModel, got {type(model).__name__}")
    effects = _check_effects(effects, model)
    alpha = _check_alpha(alpha)
    n_sims = _check_sims(n_sims)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise PylmeError(f"power(): seed must be a non-negative integer or None, got {seed!r}")
    points, swept = _design_points(design, n_patients)
    check_power_size(points, n_sims)  # the limits, before any seed or trial is made
    _check_points(points)

    root = np.random.SeedSequence(seed)
    # every (design point, replicate) gets its seed here, before any chunking
    children = root.spawn(len(points) * n_sims)
    seeds = [int(c.generate_state(1, dtype=np.uint32)[0]) for c in children]
    size = chunk_size(n_sims)
    chunks = []
    for p, point in enumerate(points):
        frozen = tuple(sorted(point.items()))
        for start in range(0, n_sims, size):
            reps = tuple(range(start, min(start + size, n_sims)))
            chunks.append(_Chunk(point=p, design=frozen, replicates=reps,
                                 seeds=tuple(seeds[p * n_sims + r] for r in reps),
                                 model=model, effects=effects, alpha=alpha))
    desc = f"power: {len(points)} design point(s) x {n_sims} replicates"
    results = _run(chunks, executor=executor, progress=progress, desc=desc)
    rows = [row for chunk_rows in results for row in chunk_rows]
    from .power_result import build_result

    return build_result(rows, points=points, swept=swept, effects=effects, n_sims=n_sims, alpha=alpha,
                        seed=int(root.entropy) if isinstance(root.entropy, int) else root.entropy,
                        model=model)


def _run(chunks: list[_Chunk], *, executor: Any, progress: bool, desc: str) -> list[Any]:
    try:
        from ..executors import run_chunks
    except ImportError:  # the shared executors module is not in this tree yet
        return _run_local(chunks, executor=executor, progress=progress, desc=desc)
    return run_chunks(run_chunk, chunks, executor=executor, progress=progress, desc=desc, on_lost=_lost_chunk)


def _lost_chunk(index: int, chunk: _Chunk) -> list[dict[str, Any]]:
    """The rows of a chunk whose worker died twice running it: every replicate failed."""

    error = "WorkerLost: the worker process died twice while running this chunk of replicates"
    return [{"point": chunk.point, "replicate": r, "seed": s, "effect": e, **_failed(error)}
            for r, s in zip(chunk.replicates, chunk.seeds) for e in chunk.effects]


def _run_local(chunks: list[_Chunk], *, executor: Any, progress: bool, desc: str) -> list[Any]:
    """Serial, or one future per chunk on a concurrent.futures executor."""
    from ..progress import progress_bar

    if executor is None:
        return [run_chunk(c) for c in progress_bar(chunks, enabled=progress, desc=desc, total=len(chunks))]
    futures = [executor.submit(run_chunk, c) for c in chunks]
    return [f.result() for f in progress_bar(futures, enabled=progress, desc=desc, total=len(futures))]


# ----------------------------------------------------------------------- one chunk
def run_chunk(chunk: _Chunk) -> list[dict[str, Any]]:
    """Simulate, prepare and fit the replicates of one chunk; one row per replicate and
    effect (plain Python values: the result crosses process boundaries)."""

    with warnings.catch_warnings():
        # a power study fits thousands of models: their warnings are counted in the
        # table (converged/singular) and kept per replicate, not printed
        warnings.simplefilter("ignore")
        return fit_chunk(chunk)
