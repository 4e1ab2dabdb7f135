"""The random-slope test calibrated by a parametric bootstrap of its likelihood ratio.

The 50:50 chi-square mixture (:mod:`.mixture`) is the asymptotic null of a variance on
its boundary. On session data it is not the null the test meets: short series, the
outcome control and the patients' own trajectories make the LR's null distribution
another (issue 18 measured a size of .44 at alpha = .05). A parametric bootstrap gets
the null from the model itself (as pbkrtest's ``PBmodcomp`` does): responses are
simulated from the fit WITHOUT the random slope, both models are refitted to each, and
the p-value is the Monte Carlo one, (1 + #{LR* >= LR}) / (1 + draws).

The draws run in R in chunks of :data:`CHUNK` (one R call each, ``lme4::refit`` starting
from the fitted values). Chunk ``i`` uses seed ``seed + i`` whether it runs here or on an
``executor=`` (where each worker refits both models first), so the p-value does not
depend on where it was computed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import PylmeError
from ..executors import run_chunks

#: draws per R call (and per executor task)
CHUNK = 40
#: default number of bootstrap draws: p-values on a grid of 1/200, Monte Carlo SE about
#: .015 at p = .05; about 35 s on the bundled example (benchmarks/README.md)
DRAWS = 199
#: a refit of the model with the slope that ends this far below the model without it is
#: an optimizer shortfall (the models are nested); it is counted and taken as 0
SHORTFALL = 1e-3


@dataclass(frozen=True)
class Calibration:
    """The bootstrap null distribution of the slope test's likelihood ratio.

    Attributes
    ----------
    p_value : float
        (1 + number of draws with LR* >= the observed LR) / (1 + draws).
    draws : int
        Bootstrap draws that gave a likelihood ratio.
    exceed : int
        Draws with LR* >= the observed LR.
    seed : int
        Seed of the first chunk (chunk i: seed + i).
    statistics : numpy.ndarray
        The draws' likelihood ratios (floored at 0).
    notes : tuple of str
        What the refits said (warnings, messages, optimizer shortfalls), counted.
    """

    p_value: float
    draws: int
    exceed: int
    seed: int
    statistics: np.ndarray
    notes: tuple[str, ...] = ()

    @property
    def method(self) -> str:
        return f"parametric bootstrap ({self.draws} draws)"


def check_draws(draws: Any, name: str = "draws") -> int:
    """``draws`` as an int, or a PylmeError naming ``name`` (19 is the least a test at .05
    needs)."""
    if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or draws < 19:
        raise PylmeError(f"{name} must be an integer of at least 19 (a test at .05 needs 19), got {draws!r}")
    return int(draws)


def require_lme4(engine: str) -> None:
    """The bootstrap refits with lme4's refit(); other engines get a clear error."""
    if engine != "lme4":
        raise PylmeError(f"the bootstrap-calibrated slope test is available for lme4 fits, not {engine}; "
                         "use method='mixture' (uncalibrated) or engine='lme4'")


def _chunks(draws: int, seed: int) -> list[tuple[int, int]]:
    sizes = [CHUNK] * (draws // CHUNK) + ([draws % CHUNK] if draws % CHUNK else [])
    return [(n, seed + i) for i, n in enumerate(sizes)]


def _draw(full: Any, reduced: Any, n: int, seed: int) -> dict[str, Any]:
    return dict(full.backend.bootstrap_lr(reduced.backend, n, seed))


def _remote_chunk(task: tuple[Any, Any, int, int]) -> dict[str, Any]:
    """One chunk on a worker: fit both models there, then draw (a top-level function, so
    it pickles)."""
    model, panel, n, seed = task
    full = model.fit(panel)
    reduced = model.replace(random_slope=False).fit(panel)
    return _draw(full, reduced, n, seed)


def bootstrap_null(full: Any, reduced: Any, statistic: float, *, draws: int = DRAWS, seed: int = 20150579,
                   executor: Any = None, progress: bool = False) -> Calibration:
    """Calibrate the observed ``statistic`` of ``full`` against ``reduced`` (two fits of
    the same AllianceModel with and without the random alliance slope) by a parametric
    bootstrap; see the module docstring."""
    require_lme4(full.engine)
    chunks = _chunks(check_draws(draws), int(seed))
    if executor is None:
        results = [_draw(full, reduced, n, s) for n, s in chunks]
    else:
        model, panel = full.model, full.panel
        results = run_chunks(_remote_chunk, [(model, panel, n, s) for n, s in chunks], executor=executor,
                             progress=progress, desc="slope test bootstrap")
    lr = np.concatenate([np.atleast_1d(np.asarray(r["lr"], dtype=float)) for r in results])
    lr = lr[np.isfinite(lr)]
    if len(lr) == 0:
        raise PylmeError("no bootstrap draw gave a likelihood ratio")
    notes = _notes(results, lr)
    floored = np.maximum(lr, 0.0)
    # the observed statistic is floored the same way (slope_test); a tiny tolerance keeps
    # a draw equal to the observed value (both 0) counted as at least as extreme
    exceed = int(np.sum(floored >= statistic - 1e-9))
    return Calibration(p_value=(1 + exceed) / (1 + len(floored)), draws=int(len(floored)), exceed=exceed,
                       seed=int(seed), statistics=floored, notes=notes)


def _notes(results: list[dict[str, Any]], lr: np.ndarray) -> tuple[str, ...]:
    """One sentence on what the refits said (R's boundary messages are expected here and
    only counted with the rest), or none."""
    total = sum(len(np.atleast_1d(r["lr"])) for r in results)
    warned = sum(int(np.asarray(r["warnings"]).ravel()[0]) for r in results)
    first = next((str(np.asarray(r["first_warning"]).ravel()[0]) for r in results
                  if int(np.asarray(r["warnings"]).ravel()[0]) > 0), "")
    short = int(np.sum(lr < -SHORTFALL))
    parts = []
    if warned:
        parts.append(f"{warned} of its {2 * total} or more refits warned (e.g. \"{first}\")")
    if short:
        parts.append(f"in {short} draw(s) the refit with the slope ended below the one without it, an optimizer "
                     "shortfall taken as LR = 0")
    return (f"slope test bootstrap ({total} draws): " + ", and ".join(parts),) if parts else ()

