"""fit_many(): many fits, serially or in worker processes, each coming back detached.

Jobs go to workers in chunks through :func:`pylme_alliance.executors.run_chunks`, which
starts R once per worker and owns the rule for lost workers (a chunk whose worker died
is retried once, alone). A job that fails comes back in its place as a
:class:`FailedJob`; the others complete. When a chunk's worker dies a second time, the
chunk's log names the job that was running: that job alone becomes a FailedJob and the
chunk's other jobs are run again.
"""
from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from . import executors
from .errors import PylmeError, RError
from .progress import Counter
from .results import MixedFit

Job = Callable[[], MixedFit] | tuple

WORKER_DIED = ("the worker process died while running this job, twice (a crash in R or in compiled code, "
               "os._exit, or a kill); the batch's other jobs were rerun")
WORKER_DIED_TWICE = ("the worker died twice while running the chunk of jobs holding this job, and which "
                     "job was running could not be told (a worker on another machine)")


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


def failed_job(index: int, exc: BaseException, prefix: str = "") -> FailedJob:
    """The FailedJob for job ``index`` that raised ``exc`` (``prefix`` says where)."""
    return FailedJob(index=index, error_type=type(exc).__name__, message=prefix + _message(exc))


def _message(exc: BaseException) -> str:
    """``exc``'s message, even when its ``__str__``/``__repr__`` raise (a user's class):
    a job's failure must never sink the batch."""
    for show in ((lambda e: e.r_message) if isinstance(exc, RError) else str, repr):
        try:
            text = str(show(exc)).strip()
        except Exception:
            continue
        if text:
            return text
    return f"{type(exc).__name__} (its message could not be shown: its __str__ raised)"


@dataclass(frozen=True)
class _Chunk:
    """Jobs sent together: ``(index, job)`` pairs and the log their worker appends to."""

    jobs: list[tuple[int, Any]]
    log: str | None
    check_pickle: bool


_RERUN = "pylme-fit-many-rerun"  # a job lost with its chunk, not to blame for it


def _log(path: str | None, line: str) -> None:
    if path is None:
        return
    try:  # a remote worker (Dask) may not see the directory: the log is best effort
        with open(path, "a") as handle:
            handle.write(line + "\n")
    except OSError:
        pass


def _attempt(index: int, job: Job) -> MixedFit | FailedJob:
    """Run job ``index``; an exception becomes a FailedJob (made here, where the
    exception is, so unpicklable exceptions and R's messages survive the trip back)."""
    try:
        return run_job(job)
    except Exception as exc:  # KeyboardInterrupt/SystemExit are not a job's failure here
        return failed_job(index, exc)


def _fit_chunk(chunk: _Chunk) -> list[tuple[int, MixedFit | FailedJob]]:
    """Run a chunk's jobs one after another (in a worker).

    Each job's start and end go to the chunk's log, so after a worker died the parent
    can tell which job was running. In a worker (``check_pickle``) each result is
    pickled AND unpickled here: one that would not travel, or would not unpickle in
    the parent (which breaks a process pool), becomes a FailedJob that says so; and a
    job calling ``sys.exit()`` fails alone instead of exiting the parent.
    """
    out: list[tuple[int, MixedFit | FailedJob]] = []
    for index, job in chunk.jobs:
        _log(chunk.log, f"{index} started")
        if chunk.check_pickle:
            try:
                result = _attempt(index, job)
            except SystemExit as exc:
                result = failed_job(index, exc, f"the job called sys.exit({exc.code!r}) in its worker: ")
            result = _round_trip(index, result)
        else:
            result = _attempt(index, job)
        _log(chunk.log, f"{index} done")
        out.append((index, result))
    return out


def _round_trip(index: int, result: MixedFit | FailedJob) -> MixedFit | FailedJob:
    try:
        data = pickle.dumps(result)
    except Exception as exc:
        return failed_job(index, exc, "the fit could not be pickled to be sent back: ")
    try:
        pickle.loads(data)
    except Exception as exc:
        return failed_job(index, exc, "the fit was pickled but could not be unpickled, so it could not be "
                                      "sent back: ")
    return result


def _unreadable_chunk(chunk: _Chunk, exc: BaseException) -> list[tuple[int, FailedJob]]:
    """A chunk whose results reached this process but could not be read back (a Dask
    result that fails to deserialise, a SystemExit from a worker): its jobs fail, the
    batch's others are kept."""
    why = ("the chunk's results could not be received from the worker (they failed to unpickle "
           "here, or the worker raised outside the job): ")
    return [(index, failed_job(index, exc, why)) for index, _ in chunk.jobs]


def _culprit(chunk: _Chunk) -> int | None:
    """The job that was running when the chunk's worker died the second time (its last
    "started" line without a "done"), or None when the log does not say."""
    try:
        with open(chunk.log or "", encoding="utf-8") as handle:
            lines = handle.read().split()
    except OSError:
        return None
    if len(lines) >= 2 and lines[-1] == "started":
        return int(lines[-2])
    return None


def _lost_chunk(chunk: _Chunk) -> list[tuple[int, Any]]:
    """A chunk whose worker died twice: its culprit fails, the others run again.

    When the log cannot name a culprit (a worker on another machine), every job of the
    chunk fails, so the batch always ends.
    """
    culprit = _culprit(chunk)
    if culprit is None:
        return [(index, FailedJob(index, "BrokenProcessPool", WORKER_DIED_TWICE)) for index, _ in chunk.jobs]
    return [(index, FailedJob(index, "BrokenProcessPool", WORKER_DIED) if index == culprit else _RERUN)
            for index, _ in chunk.jobs]


def _unsendable(index: int, job: Job, dumps: Callable[[Any], bytes]) -> FailedJob | None:
    try:
        dumps(job)
    except Exception as exc:  # a lambda for a process pool, an open connection, ...
        # say what failed in words: Python 3.13 reports a lambda as an AttributeError
        # ("Can't get local object"), earlier versions as a PicklingError
        return failed_job(index, exc, "the job could not be pickled to be sent to a worker: ")
    return None


def fit_many(jobs: Iterable[Job], executor: Any = None, *, chunk_size: int | None = None,
             progress: bool = True, errors: Literal["keep", "raise"] = "keep") -> list[MixedFit | FailedJob]:
    """Run fitting jobs and return their (detached) fits in the order of ``jobs``.

    Parameters
    ----------
    jobs : iterable
        Each a picklable callable returning a MixedFit, e.g.
        ``functools.partial(pa.lmer, formula, data)`` or ``functools.partial(model.fit, panel)``,
        or a tuple ``(function, args, kwargs)``.
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Where to run them (see :mod:`pylme_alliance.executors`); ``None`` runs them here,
        one after another. Use a process pool (:func:`pylme_alliance.executors.process_pool`,
        or any ``ProcessPoolExecutor`` with the spawn context) or a Dask client: threads
        would only queue behind the one R of this process. Each worker starts R once (on
        its first fit, or as it starts in a ``process_pool()``) and keeps it, so a pool or
        client is best reused across calls. When a worker dies,
        the unfinished jobs are rerun in fresh pools made like it (``executor`` itself is
        left broken; shut it down as usual).
    chunk_size : int, optional
        Jobs sent to a worker at once (default: about four chunks per worker).
    progress : bool
        Show a progress bar "fits" (stderr) with the number of failed jobs; a line stays
        on stderr at the end when some failed.
    errors : {"keep", "raise"}
        ``"keep"`` (default): a failed job comes back in its place as a :class:`FailedJob`.
        ``"raise"``: after the whole batch has run, raise :class:`FitManyError` naming
        the failed jobs (its ``.results`` holds the batch).

    Returns
    -------
    list of MixedFit or FailedJob
        Detached fits (tables and flags, no R object), a FailedJob where a job failed:
        it raised, its fit could not be sent back, or the worker died running it twice
        (the jobs that shared its worker are rerun, so only it fails).

    Raises
    ------
    PylmeError
        Before anything runs, when a job is neither a callable nor a
        ``(function, args, kwargs)`` tuple, ``errors`` is unknown or ``chunk_size`` is
        not a positive integer.
    """
    if errors not in ("keep", "raise"):
        raise PylmeError(f"errors must be 'keep' or 'raise', got {errors!r}")
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int)
                                   or chunk_size < 1):
        raise PylmeError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    jobs = list(jobs)
    for index, job in enumerate(jobs):
        _check_job(index, job)
    results: list[Any] = [None] * len(jobs)
    with Counter(len(jobs), enabled=progress, desc="fits") as bar:
        def finished(index: int, result: Any) -> None:
            results[index] = result
            bar.advance(failed=isinstance(result, FailedJob))

        pending = list(range(len(jobs)))
        if executor is not None:
            dumps = _dumps_for(executor)
            for index in list(pending):
                refused = _unsendable(index, jobs[index], dumps)
                if refused is not None:
                    pending.remove(index)
                    finished(index, refused)
        with tempfile.TemporaryDirectory(prefix="pylme-fit-many-", ignore_cleanup_errors=True) as logs:
            while pending:  # each round blames at least one job or ends: it terminates
                pending = _run_round(jobs, pending, executor, chunk_size, logs, finished)
    failed = [r for r in results if isinstance(r, FailedJob)]
    if failed and errors == "raise":
        named = "; ".join(f"job {f.index} ({f.error_type}: {_short(f.message)})" for f in failed[:10])
        more = f"; and {len(failed) - 10} more" if len(failed) > 10 else ""
        raise FitManyError(f"{len(failed)} of {len(jobs)} jobs failed: {named}{more}", results)
    return results


def _dumps_for(executor: Any) -> Callable[[Any], bytes]:
    """How ``executor`` will pickle a job (Dask uses cloudpickle, which takes lambdas)."""
    if executors.is_dask_client(executor):
        import cloudpickle  # a dependency of distributed

        return cloudpickle.dumps
    return pickle.dumps


def _run_round(jobs: list[Job], pending: list[int], executor: Any, chunk_size: int | None, logs: str,
               finished: Callable[[int, Any], None]) -> list[int]:
    """Run ``pending`` jobs in chunks; return the jobs to run again (lost with a chunk
    whose own culprit was found)."""
    size = chunk_size or executors.chunk_size_for(len(pending), executor)
    check = executor is not None
    chunks = []
    for part in executors.chunked(pending, size):
        log = None
        if executor is not None:
            handle, log = tempfile.mkstemp(dir=logs, suffix=".log")
            os.close(handle)
        chunks.append(_Chunk([(index, jobs[index]) for index in part], log, check))
    rerun: list[int] = []

    def done(_: int, pairs: list[tuple[int, Any]]) -> None:
        for index, result in pairs:
            if isinstance(result, str) and result == _RERUN:
                rerun.append(index)
            else:
                finished(index, result)

    # warm=False: a worker's first fit starts R and loads only the engine it needs (the
    # warm-up would load all four); R then stays for the worker's next chunks and calls.
    executors.run_chunks(_fit_chunk, chunks, executor=executor, progress=False, on_done=done,
                         on_lost=lambda _, chunk: _lost_chunk(chunk), warm=False,
                         on_error=lambda _, chunk, exc: _unreadable_chunk(chunk, exc))
    return sorted(rerun)


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
