"""fit_many(): many fits, serially or in worker processes, each coming back detached.

R is single-threaded and one R lives in each process, so parallel fitting means
processes: each worker of a ``concurrent.futures.ProcessPoolExecutor`` (or a Dask
``Client``) starts its own R on its first fit and returns the fit detached from R.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

from .errors import PylmeError
from .progress import progress_bar
from .results import MixedFit

Job = Callable[[], MixedFit] | tuple


def run_job(job: Job) -> MixedFit:
    """Run one job in this process and detach its fit (so it pickles)."""
    if callable(job):
        fit = job()
    elif isinstance(job, tuple) and job and callable(job[0]):
        func, args, kwargs = (tuple(job) + ((), {}))[:3]
        fit = func(*args, **dict(kwargs))
    else:
        raise PylmeError("a job is a callable returning a fit, or a tuple (function, args, kwargs)")
    if not isinstance(fit, MixedFit):
        raise PylmeError(f"a job returned {type(fit).__name__}, not a fit")
    return fit.detach()


def fit_many(jobs: Iterable[Job], executor: Any = None, progress: bool = True) -> list[MixedFit]:
    """Run fitting jobs and return their (detached) fits in the order of ``jobs``.

    Parameters
    ----------
    jobs : iterable
        Each a picklable callable returning a MixedFit, e.g.
        ``functools.partial(pa.lmer, formula, data)`` or ``functools.partial(model.fit, panel)``,
        or a tuple ``(function, args, kwargs)``.
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Where to run them; ``None`` runs them here, one after another. Use a process
        pool (``ProcessPoolExecutor(mp_context=multiprocessing.get_context("spawn"))``):
        threads would only queue behind the one R of this process.
    progress : bool
        Show a progress bar.

    Returns
    -------
    list of MixedFit
        Detached fits (tables and flags, no R object).
    """
    jobs = list(jobs)
    if executor is None:
        return [run_job(job) for job in progress_bar(jobs, enabled=progress, desc="fits")]
    futures: Sequence[Any] = [executor.submit(run_job, job) for job in jobs]
    return [future.result() for future in progress_bar(futures, enabled=progress, desc="fits", total=len(futures))]
