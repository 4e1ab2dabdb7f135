"""Run chunks of work here, in a process pool, or on a Dask cluster, one way for all.

R is single-threaded and one R lives in each process, so parallel fitting means
processes. :func:`run_chunks` sends work in chunks (one future per chunk, not per fit),
streams results back as they finish, starts R once in each worker and keeps it, and
owns the one rule for lost workers: a worker that dies mid-batch (a crash inside R,
``os._exit``, a kill, a Dask worker restart) loses only the chunks it was running, and
each of those is retried once elsewhere. A chunk lost twice is given up (see ``on_lost``).

Executors
---------
``None``
    Serially, in this process.
``concurrent.futures.ProcessPoolExecutor``
    Use the spawn context (:func:`process_pool` makes one that also warms R up in each
    worker as it starts). A dead worker breaks the whole pool; the unfinished chunks are
    rerun in fresh pools made like it (the given pool is left broken: shut it down as
    usual). The chunks that were running when it died are retried in a one-worker pool,
    so a second death is known to be that chunk's own.
other ``concurrent.futures.Executor`` (``ThreadPoolExecutor``)
    Works, but threads only queue behind this process's one R: no speed-up.
``dask.distributed.Client``
    Recognised by duck typing; dask is imported only when one is given. Dask itself
    reschedules a task whose worker died (up to the scheduler's
    ``distributed.scheduler.allowed-failures``); when Dask gives up on a chunk
    (``KilledWorker``), it is resubmitted once more. R is warmed up on every worker,
    also on workers that join or restart later (a worker plugin).
"""
from __future__ import annotations

import math
import multiprocessing
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Executor, Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from .errors import PylmeError
from .progress import Counter
from .warmup import WARM_PACKAGES, warm_worker  # noqa: F401 (public here: pools' initializer)

try:  # BrokenExecutor (3.8+) covers BrokenProcessPool and BrokenThreadPool
    from concurrent.futures import BrokenExecutor
except ImportError:  # pragma: no cover
    BrokenExecutor = BrokenProcessPool  # type: ignore[misc,assignment]

__all__ = ["run_chunks", "warm_worker", "process_pool", "fresh_pool", "worker_count", "chunked",
           "chunk_size_for", "is_dask_client", "WorkerLostError"]

#: Fresh pools that break before anything runs in them, in a row, before the rest is given up.
MAX_STALLS = 3


class WorkerLostError(PylmeError):
    """Chunks whose worker died twice while running them (after the batch).

    Attributes
    ----------
    lost : list of int
        The chunks' positions in ``chunks``.
    results : list
        The whole batch's results in chunk order, ``None`` where a chunk was lost.
    """

    def __init__(self, message: str, lost: list[int], results: list[Any]) -> None:
        super().__init__(message)
        self.lost = lost
        self.results = results


def process_pool(max_workers: int | None = None) -> ProcessPoolExecutor:
    """A spawn-context process pool whose workers start R as they start.

    Parameters
    ----------
    max_workers : int, optional
        Number of worker processes (default: the CPU count).

    Returns
    -------
    concurrent.futures.ProcessPoolExecutor
        Reusable across calls (each worker keeps its R); shut it down when done
        (``with process_pool(2) as pool: ...``).
    """
    return ProcessPoolExecutor(max_workers=max_workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=warm_worker)


def fresh_pool(template: ProcessPoolExecutor, workers: int | None = None) -> ProcessPoolExecutor:
    """A new process pool made like ``template`` (workers, start method, initializer).

    ``workers`` overrides the number of workers.
    """
    # The template's settings are private attributes (stable since Python 3.7); fall back
    # to the defaults when a subclass lacks them.
    return ProcessPoolExecutor(max_workers=workers or getattr(template, "_max_workers", None),
                               mp_context=getattr(template, "_mp_context", None),
                               initializer=getattr(template, "_initializer", None),
                               initargs=getattr(template, "_initargs", ()))


def is_dask_client(executor: Any) -> bool:
    """Whether ``executor`` is a ``dask.distributed.Client`` (without importing dask)."""
    module = type(executor).__module__ or ""
    return module.split(".")[0] == "distributed" and hasattr(executor, "submit") and hasattr(executor, "gather")


def worker_count(executor: Any) -> int:
    """How many chunks ``executor`` runs at once (1 for ``None``)."""
    if executor is None:
        return 1
    if is_dask_client(executor):
        workers = executor.scheduler_info().get("workers", {})
        return max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))
    return max(1, int(getattr(executor, "_max_workers", None) or os.cpu_count() or 1))


def chunk_size_for(n_items: int, executor: Any, *, per_worker: int = 4) -> int:
    """A chunk size giving each worker about ``per_worker`` chunks of ``n_items``.

    Few chunks per worker keep the per-future cost low; more than one lets a fast
    worker take over from a slow one and keeps the work a dead worker loses small.
    Serially every item is its own chunk (there is no per-future cost).
    """
    if executor is None or n_items <= 0:
        return 1
    return max(1, math.ceil(n_items / (worker_count(executor) * per_worker)))


def chunked(items: Sequence[Any], size: int) -> list[list[Any]]:
    """``items`` cut into consecutive lists of ``size`` (the last may be shorter)."""
    if size < 1:
        raise PylmeError(f"chunk_size must be a positive integer, got {size!r}")
    items = list(items)
    return [items[start:start + size] for start in range(0, len(items), size)]


# ---- in the worker ---------------------------------------------------------------------

def _touch(path: str | None) -> None:
    if path is None:
        return
    try:  # a remote worker may not see the directory: markers are best effort
        with open(path, "x"):
            pass
    except OSError:
        pass


def _call(task: Callable[[Any], Any], chunk: Any, markers: str | None, tag: str, warm: bool = True) -> Any:
    """Run ``task(chunk)`` in a worker: R warmed first, marker files around it.

    ``<tag>.started`` / ``<tag>.done`` let the parent tell, after a pool broke, which
    chunks were running in the worker that died (those, and only those, use up their retry).
    """
    _touch(None if markers is None else os.path.join(markers, tag + ".started"))
    try:
        if warm:
            warm_worker()
        return task(chunk)
    finally:
        _touch(None if markers is None else os.path.join(markers, tag + ".done"))


# ---- in the parent ---------------------------------------------------------------------

class _Batch:
    """The results of one run_chunks call and what to do as each chunk ends."""

    def __init__(self, chunks: Sequence[Any], bar: Counter, on_done: Callable[[int, Any], None] | None,
                 on_lost: Callable[[int, Any], Any] | None,
                 on_error: Callable[[int, Any, BaseException], Any] | None = None) -> None:
        self.chunks = chunks
        self.results: list[Any] = [None] * len(chunks)
        self.bar = bar
        self.on_done = on_done
        self.on_lost = on_lost
        self.on_error = on_error
        self.error: BaseException | None = None
        self.lost: list[int] = []

    def done(self, index: int, result: Any) -> None:
        self.results[index] = result
        self.bar.advance()
        if self.on_done is not None:
            self.on_done(index, result)

    def failed(self, exc: BaseException, index: int | None = None) -> None:
        if self.on_error is not None and index is not None:
            self.done(index, self.on_error(index, self.chunks[index], exc))
            return
        if self.error is None:  # the first one raised is the one re-raised
            self.error = exc
        self.bar.advance(failed=True)

    def give_up(self, index: int) -> None:
        if self.on_lost is not None:
            self.done(index, self.on_lost(index, self.chunks[index]))
            return
        self.lost.append(index)
        self.bar.advance(failed=True)

    def finish(self) -> list[Any]:
        if self.error is not None:
            raise self.error
        if self.lost:
            lost = sorted(self.lost)
            raise WorkerLostError(f"{len(lost)} of {len(self.chunks)} chunks were lost: the worker running "
                                  f"each died twice (chunks {lost[:20]}{' ...' if len(lost) > 20 else ''})",
                                  lost, self.results)
        return self.results


def run_chunks(task: Callable[[Any], Any], chunks: Sequence[Any], *, executor: Any = None,
               progress: bool = True, desc: str = "", on_done: Callable[[int, Any], None] | None = None,
               on_lost: Callable[[int, Any], Any] | None = None, warm: bool = True,
               on_error: Callable[[int, Any, BaseException], Any] | None = None) -> list[Any]:
    """Run ``task(chunk)`` for every chunk; return the results in chunk order.

    Parameters
    ----------
    task : callable
        A picklable top-level function taking one chunk and returning a picklable
        result (never an R object).
    chunks : sequence
        Picklable chunks (cut a list with :func:`chunked`, sized with :func:`chunk_size_for`).
    executor : None, concurrent.futures.Executor or dask.distributed.Client
        ``None`` runs the chunks here, one after another. See the module docstring for
        each kind; a ``ThreadPoolExecutor`` only queues behind this process's one R.
    progress : bool
        A progress bar over chunks (done / failed), named ``desc``.
    desc : str
        Name of the bar.
    on_done : callable, optional
        ``on_done(index, result)``, called here as each chunk finishes (streaming).
    on_lost : callable, optional
        ``on_lost(index, chunk)``, called here for a chunk whose worker died twice while
        running it; its return value becomes that chunk's result. Without it such
        chunks make :class:`WorkerLostError` raise after the batch.
    warm : bool
        Start R and load all the engines' packages in each worker before its first
        chunk, once per worker. ``False``: R starts on a task's first R call and loads
        only what it uses (for tasks that need one engine, or no R at all).
    on_error : callable, optional
        ``on_error(index, chunk, exc)``, called here for a chunk whose result came back
        as an exception (the task's own, a result that failed to unpickle here, a
        ``SystemExit`` raised in a worker); its return value becomes that chunk's
        result and the batch goes on. Without it the first such exception is raised
        after the batch.

    Returns
    -------
    list
        ``task(chunk)`` for each chunk, in the order of ``chunks``.

    Raises
    ------
    Exception
        The first exception raised by ``task`` itself, as it was raised (not retried),
        after the other chunks have finished. Catch inside ``task`` to keep going.
    WorkerLostError
        When chunks were lost twice to dead workers and ``on_lost`` is not given.
    """
    chunks = list(chunks)
    with Counter(len(chunks), enabled=progress, desc=desc) as bar:
        batch = _Batch(chunks, bar, on_done, on_lost, on_error)
        if not chunks:
            pass
        elif executor is None:
            for index, chunk in enumerate(chunks):
                try:
                    result = task(chunk)
                except Exception as exc:  # KeyboardInterrupt/SystemExit stop the batch
                    batch.failed(exc, index)
                else:
                    batch.done(index, result)
        elif is_dask_client(executor):
            _run_dask(task, executor, batch, warm)
        elif isinstance(executor, Executor):
            _run_futures(task, executor, batch, warm)
        else:
            raise PylmeError("executor must be None, a concurrent.futures.Executor or a dask.distributed.Client; "
                             f"got {type(executor).__name__}")
    return batch.finish()


def _run_futures(task: Callable[[Any], Any], executor: Executor, batch: _Batch, warm: bool) -> None:
    if not isinstance(executor, ProcessPoolExecutor):
        # threads share this process's R: start it here, in the caller's thread (R taken
        # over by a worker thread could no longer be interrupted with Ctrl-C)
        from .bridge import session

        warm_worker() if warm else session.private_env()
    n = len(batch.chunks)
    deaths = [0] * n  # times a worker died while running the chunk
    attempts = [0] * n  # submissions: names the marker files
    todo = list(range(n))
    stalls = 0
    first = True
    # a worker still running after an interrupt may write a marker while this is removed
    with tempfile.TemporaryDirectory(prefix="pylme-chunks-", ignore_cleanup_errors=True) as markers:
        while todo:
            # Chunks never yet running when a worker died go at full width; chunks that
            # were, one at a time in a one-worker pool, so a second death is their own.
            groups = [([i for i in todo if deaths[i] == 0], None), ([i for i in todo if deaths[i] > 0], 1)]
            todo, progressed = [], False
            for group, width in groups:
                if not group:
                    continue
                if first:
                    pool, own, first = executor, False, False
                elif isinstance(executor, ProcessPoolExecutor):
                    pool, own = fresh_pool(executor, workers=width), True
                else:  # no way to make a fresh executor of an unknown kind
                    for index in group:
                        batch.give_up(index)
                    continue
                lost = _round(task, pool, own, group, batch, markers, attempts, warm)
                running = [i for i in lost if _was_running(markers, i, attempts[i] - 1)]
                progressed |= len(lost) < len(group) or bool(running)
                for index in lost:
                    if index in running:
                        deaths[index] += 1
                        if deaths[index] >= 2:
                            batch.give_up(index)
                            continue
                    todo.append(index)
            # A pool that dies before running anything (a broken interpreter) would loop
            # forever: chunks that never start never use up their retry.
            stalls = 0 if progressed else stalls + 1
            if stalls >= MAX_STALLS:
                for index in todo:
                    batch.give_up(index)
                return


def _was_running(markers: str, index: int, attempt: int) -> bool:
    tag = os.path.join(markers, f"{index}-{attempt}")
    return os.path.exists(tag + ".started") and not os.path.exists(tag + ".done")


def _round(task: Callable[[Any], Any], pool: Executor, own: bool, indices: list[int], batch: _Batch,
           markers: str, attempts: list[int], warm: bool) -> list[int]:
    """Submit ``indices`` to ``pool``, record what finishes; return the chunks lost
    to a broken pool."""
    futures: dict[Future, int] = {}
    lost: list[int] = []
    try:
        for index in indices:
            try:
                future = pool.submit(_call, task, batch.chunks[index], markers, f"{index}-{attempts[index]}", warm)
            except BrokenExecutor:
                lost.append(index)
                continue
            finally:
                attempts[index] += 1
            futures[future] = index
        for future in as_completed(futures):
            index = futures[future]
            try:
                result = future.result()
            except (BrokenExecutor, CancelledError):
                lost.append(index)
            except (Exception, SystemExit) as exc:  # task's own (SystemExit is the worker's, not ours)
                batch.failed(exc, index)
            else:
                batch.done(index, result)
    except BaseException:  # Ctrl-C (or on_done raising): stop what has not started
        for future in futures:
            future.cancel()
        if own:
            pool.shutdown(wait=False, cancel_futures=True)
        raise
    if own:
        pool.shutdown(wait=True, cancel_futures=True)
    return sorted(lost)


# ---- Dask --------------------------------------------------------------------------------

def _run_dask(task: Callable[[Any], Any], client: Any, batch: _Batch, warm: bool) -> None:
    from distributed import as_completed as dask_completed

    try:
        from distributed import KilledWorker
    except ImportError:  # older distributed
        from distributed.scheduler import KilledWorker

    if warm:
        _warm_dask(client)
    killed = [0] * len(batch.chunks)

    def submit(index: int) -> Any:
        # pure=False: a resubmitted chunk is a new task, not Dask's memory of the lost one
        return client.submit(_call, task, batch.chunks[index], None, str(index), warm, pure=False)

    futures = {submit(i): i for i in range(len(batch.chunks))}
    pending = dask_completed(list(futures))
    try:
        for future in pending:
            index = futures.pop(future)
            try:
                result = future.result()
            except KilledWorker:
                killed[index] += 1
                if killed[index] >= 2:
                    batch.give_up(index)
                else:
                    retry = submit(index)
                    futures[retry] = index
                    pending.add(retry)
                continue
            except (Exception, SystemExit) as exc:  # the task's own, or a result that failed to deserialise
                batch.failed(exc, index)
                continue
            finally:
                future.release()
            batch.done(index, result)
    except BaseException:
        client.cancel(list(futures))
        raise


def _warm_dask(client: Any) -> None:
    """Warm R on every worker now and on each worker that starts later."""
    from ._dask_plugin import WarmR

    register = getattr(client, "register_plugin", None) or client.register_worker_plugin
    register(WarmR(), name="pylme-alliance-warm-r")
