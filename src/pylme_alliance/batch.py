"""fit_many(): many fits, serially or in worker processes, each coming back detached.

R is single-threaded and one R lives in each process, so parallel fitting means
processes: each worker of a ``concurrent.futures.ProcessPoolExecutor`` (or a Dask
``Client``) starts its own R on its first fit and returns the fit detached from R.

A job that fails comes back in its place as a :class:`FailedJob`; the others complete.
A worker process that dies (a crash inside R, ``os._exit``) breaks a process pool and
takes every unfinished job with it. fit_many then reruns those jobs in a fresh pool: the
jobs that were running when the worker died are rerun one at a time in a one-worker pool,
so a second death names the job that caused it, and only that job becomes a FailedJob.
"""
from __future__ import annotations

import os
import tempfile
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Literal

from .errors import PylmeError, RError
from .progress import Counter
from .results import MixedFit

try:  # BrokenExecutor (3.8+) covers BrokenProcessPool and BrokenThreadPool
    from concurrent.futures import BrokenExecutor
except ImportError:  # pragma: no cover
    BrokenExecutor = BrokenProcessPool  # type: ignore[misc,assignment]

Job = Callable[[], MixedFit] | tuple

# Fresh pools that break before running anything, in a row, before the rest is given up.
MAX_STALLS = 3
WORKER_DIED = ("the worker process died while running this job (a crash in R or in compiled code, "
               "os._exit, or a kill); the batch's other jobs were rerun in a fresh pool")


@dataclass(frozen=True)
class FailedJob:
    """A job of :func:`fit_many` that did not return a fit.

    Attributes
    ----------
    index : int
        The job's position in ``jobs`` (and in the returned list).
    error_type : str
        The exception's class name (``"RError"``, ``"PylmeError"``, ``"BrokenProcessPool"``
        for a worker that died, ...).
    message : str
        The exception's message; for an :class:`~pylme_alliance.RError`, R's own message.
    """

    index: int
    error_type: str
    message: str

    def __str__(self) -> str:
        return f"job {self.index} failed: {self.error_type}: {self.message}"


class FitManyError(PylmeError):
    """Raised by ``fit_many(..., errors="raise")`` after the batch when jobs failed.

    ``.results`` holds the whole batch (fits and FailedJobs) so nothing is lost;
    ``.failed`` the FailedJobs.
    """

    def __init__(self, message: str, results: list[MixedFit | FailedJob]) -> None:
        super().__init__(message)
        self.results = results
        self.failed = [r for r in results if isinstance(r, FailedJob)]


def _check_job(index: int, job: Any) -> None:
    if callable(job) or (isinstance(job, tuple) and job and callable(job[0])):
        return
    raise PylmeError(f"job {index}: a job is a callable returning a fit, or a tuple (function, args, kwargs); "
                     f"got {type(job).__name__}")


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


def failed_job(index: int, exc: BaseException) -> FailedJob:
    """The FailedJob for job ``index`` that raised ``exc``."""
    message = exc.r_message if isinstance(exc, RError) else str(exc)
    return FailedJob(index=index, error_type=type(exc).__name__, message=message.strip() or repr(exc))


def _marker(markers: str | None, index: int, attempt: int, state: str) -> str | None:
    return None if markers is None else os.path.join(markers, f"{index}-{attempt}.{state}")


def _touch(path: str | None) -> None:
    if path is None:
        return
    try:  # a remote worker (Dask) may not see the directory: markers are best effort
        with open(path, "x"):
            pass
    except OSError:
        pass


def _attempt(index: int, job: Job, markers: str | None = None, attempt: int = 0) -> MixedFit | FailedJob:
    """Run job ``index``; an exception becomes a FailedJob (made here, where the
    exception is, so unpicklable exceptions and R's messages survive the trip back).

    The ``started``/``done`` marker files let the parent tell, after a worker died,
    which jobs were running in it.
    """
    _touch(_marker(markers, index, attempt, "started"))
    try:
        result: MixedFit | FailedJob = run_job(job)
    except Exception as exc:  # KeyboardInterrupt/SystemExit are not a job's failure
        result = failed_job(index, exc)
    _touch(_marker(markers, index, attempt, "done"))
    return result


def fit_many(jobs: Iterable[Job], executor: Any = None, *, progress: bool = True,
             errors: Literal["keep", "raise"] = "keep") -> list[MixedFit | FailedJob]:
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
        threads would only queue behind the one R of this process. When a worker of a
        ``ProcessPoolExecutor`` dies, the unfinished jobs are rerun in fresh pools made
        like it (``executor`` itself is left broken; shut it down as usual).
    progress : bool
        Show a progress bar (stderr) with the number of failed jobs; a line stays on
        stderr at the end when some failed.
    errors : {"keep", "raise"}
        ``"keep"`` (default): a failed job comes back in its place as a :class:`FailedJob`.
        ``"raise"``: after the whole batch has run, raise :class:`FitManyError` naming
        the failed jobs (its ``.results`` holds the batch).

    Returns
    -------
    list of MixedFit or FailedJob
        Detached fits (tables and flags, no R object), a FailedJob where a job failed.

    Raises
    ------
    PylmeError
        Before anything runs, when a job is neither a callable nor a
        ``(function, args, kwargs)`` tuple, or ``errors`` is unknown.
    """
    if errors not in ("keep", "raise"):
        raise PylmeError(f"errors must be 'keep' or 'raise', got {errors!r}")
    jobs = list(jobs)
    for index, job in enumerate(jobs):
        _check_job(index, job)
    results: list[Any] = [None] * len(jobs)
    with Counter(len(jobs), enabled=progress, desc="fits") as bar:
        if executor is None:
            for index, job in enumerate(jobs):
                results[index] = _attempt(index, job)
                bar.advance(failed=isinstance(results[index], FailedJob))
        else:
            _run_parallel(executor, jobs, results, bar)
    failed = [r for r in results if isinstance(r, FailedJob)]
    if failed and errors == "raise":
        named = "; ".join(f"job {f.index} ({f.error_type}: {_short(f.message)})" for f in failed[:10])
        more = f"; and {len(failed) - 10} more" if len(failed) > 10 else ""
        raise FitManyError(f"{len(failed)} of {len(jobs)} jobs failed: {named}{more}", results)
    return results


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _run_parallel(executor: Any, jobs: list[Job], results: list[Any], bar: Counter) -> None:
    attempts = [0] * len(jobs)  # submissions per job: names its marker files
    with tempfile.TemporaryDirectory(prefix="pylme-fit-many-") as markers:
        lost = _round(executor, list(range(len(jobs))), jobs, results, bar, markers, attempts)
        if not lost:
            return
        if not isinstance(executor, ProcessPoolExecutor):
            for index in lost:  # no way to make a fresh executor of an unknown kind
                _give_up(index, results, bar, "the executor broke before this job finished")
            return
        suspects, others = _split(lost, markers, attempts)
        stalls = 0
        while suspects or others:
            # Progress is certain unless a pool dies before any job starts (a broken
            # interpreter, say): jobs lost without being started never count against
            # themselves, and a round that neither finishes nor names anything is a stall.
            progressed = False
            if others:  # never started, or finished but lost: rerun at full width
                pool = _fresh_pool(executor)
                try:
                    lost = _round(pool, others, jobs, results, bar, markers, attempts)
                finally:
                    pool.shutdown(wait=True, cancel_futures=True)
                new_suspects, rest = _split(lost, markers, attempts)
                progressed |= len(lost) < len(others) or bool(new_suspects)
                suspects, others = suspects + new_suspects, rest
            if suspects:  # one worker: a death is the running job's doing
                pool = _fresh_pool(executor, workers=1)
                try:
                    lost = _round(pool, suspects, jobs, results, bar, markers, attempts)
                finally:
                    pool.shutdown(wait=True, cancel_futures=True)
                culprits, rest = _split(lost, markers, attempts)
                for index in culprits:
                    results[index] = FailedJob(index, "BrokenProcessPool", WORKER_DIED)
                    bar.advance(failed=True)
                progressed |= len(lost) < len(suspects) or bool(culprits)
                suspects = rest
            stalls = 0 if progressed else stalls + 1
            if stalls >= MAX_STALLS:
                for index in suspects + others:
                    _give_up(index, results, bar, f"the worker pool broke {MAX_STALLS} times before this job "
                                                  "could start")
                return


def _give_up(index: int, results: list[Any], bar: Counter, why: str) -> None:
    results[index] = FailedJob(index, "BrokenProcessPool", why)
    bar.advance(failed=True)


def _split(lost: list[int], markers: str, attempts: list[int]) -> tuple[list[int], list[int]]:
    """Lost jobs -> (running when the worker died, the others)."""
    running, others = [], []
    for index in lost:
        attempt = attempts[index] - 1
        started = os.path.exists(_marker(markers, index, attempt, "started") or "")
        done = os.path.exists(_marker(markers, index, attempt, "done") or "")
        (running if started and not done else others).append(index)
    return running, others


def _fresh_pool(template: ProcessPoolExecutor, workers: int | None = None) -> ProcessPoolExecutor:
    # The template's settings are private attributes (stable since Python 3.7); fall back
    # to the defaults when a subclass lacks them.
    options: dict[str, Any] = {
        "max_workers": workers or getattr(template, "_max_workers", None),
        "mp_context": getattr(template, "_mp_context", None),
        "initializer": getattr(template, "_initializer", None),
        "initargs": getattr(template, "_initargs", ()),
    }
    return ProcessPoolExecutor(**options)


def _round(pool: Any, indices: list[int], jobs: list[Job], results: list[Any], bar: Counter,
           markers: str, attempts: list[int]) -> list[int]:
    """Submit ``indices`` to ``pool``; store results and FailedJobs; return the jobs lost
    to a broken pool."""
    futures: dict[Any, int] = {}
    lost: list[int] = []
    for index in indices:
        try:
            futures[pool.submit(_attempt, index, jobs[index], markers, attempts[index])] = index
        except BrokenExecutor:
            lost.append(index)
            continue
        finally:
            attempts[index] += 1
    standard = all(isinstance(f, Future) for f in futures)
    # Dask futures are not concurrent.futures.Future: collect those in order.
    for future in (as_completed(futures) if standard else list(futures)):
        index = futures[future]
        try:
            result = future.result()
        except (BrokenExecutor, CancelledError):
            lost.append(index)
            continue
        except Exception as exc:  # e.g. the job or its fit could not be pickled
            result = failed_job(index, exc)
        results[index] = result
        bar.advance(failed=isinstance(result, FailedJob))
    return sorted(lost)
