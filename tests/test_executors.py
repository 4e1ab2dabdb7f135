"""executors.run_chunks: serial and process pools; chunk order, streaming, task errors,
lost workers (retried once, then given up), warm workers."""
from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest

from pylme_alliance import executors
from pylme_alliance.errors import PylmeError


def _spawn_pool(workers: int = 2) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def square(x):
    if x == "boom":
        raise KeyError("boom chunk")
    return x * x


def die_once(chunk):
    """Kill the worker the first time this chunk runs (a marker file remembers it)."""
    value, marker = chunk
    if marker is not None and not os.path.exists(marker):
        open(marker, "x").close()
        os._exit(7)
    time.sleep(0.05)
    return value * 10


def die_always(chunk):
    value, kill = chunk
    if kill:
        os._exit(9)
    time.sleep(0.3)  # still running in the other worker when the killer's pool breaks
    return value


def r_state(_chunk):
    from pylme_alliance.bridge import session

    return os.getpid(), session.is_started()


def test_serial_order_streaming_and_task_errors():
    seen = []
    assert executors.run_chunks(square, [1, 2, 3], progress=False,
                                on_done=lambda i, r: seen.append((i, r))) == [1, 4, 9]
    assert seen == [(0, 1), (1, 4), (2, 9)]
    seen.clear()
    # the task's own exception is not retried, comes back as it was, after the others ran
    with pytest.raises(KeyError, match="boom chunk"):
        executors.run_chunks(square, [1, "boom", 3], progress=False, on_done=lambda i, r: seen.append(i))
    assert seen == [0, 2]
    assert executors.run_chunks(square, [], progress=False) == []
    with pytest.raises(PylmeError, match="executor must be"):
        executors.run_chunks(square, [1], executor="pool", progress=False)


def test_process_pool_matches_serial_and_raises_task_errors():
    chunks = list(range(9))
    with _spawn_pool() as pool:
        streamed = {}
        out = executors.run_chunks(square, chunks, executor=pool, progress=False, warm=False,
                                   on_done=lambda i, r: streamed.__setitem__(i, r))
        assert out == [c * c for c in chunks] and streamed == dict(enumerate(out))
        with pytest.raises(KeyError, match="boom chunk"):
            executors.run_chunks(square, [1, "boom", 2], executor=pool, progress=False, warm=False)
        # the pool is not broken by a task's exception: reusable across calls
        assert executors.run_chunks(square, [5], executor=pool, progress=False, warm=False) == [25]


def test_thread_pool_works():
    with ThreadPoolExecutor(2) as pool:
        assert executors.run_chunks(square, [1, 2], executor=pool, progress=False) == [1, 4]


def test_lost_worker_chunk_is_retried_once(tmp_path):
    chunks = [(i, str(tmp_path / f"kill-{i}") if i in (2, 5) else None) for i in range(8)]
    with _spawn_pool() as pool:
        out = executors.run_chunks(die_once, chunks, executor=pool, progress=False, warm=False)
    assert out == [i * 10 for i in range(8)]
    assert (tmp_path / "kill-2").exists() and (tmp_path / "kill-5").exists()


def test_chunk_lost_twice_is_given_up_alone(capsys):
    chunks = [(i, i == 1) for i in range(4)]
    with _spawn_pool() as pool:
        with pytest.raises(executors.WorkerLostError, match=r"1 of 4 chunks.*\[1\]") as info:
            executors.run_chunks(die_always, chunks, executor=pool, progress=True, desc="chunks", warm=False)
    assert info.value.lost == [1] and info.value.results == [0, None, 2, 3]
    assert "1 failed" in capsys.readouterr().err
    with _spawn_pool() as pool:
        out = executors.run_chunks(die_always, chunks, executor=pool, progress=False, warm=False,
                                   on_lost=lambda i, chunk: ("lost", i, chunk[0]))
    assert out == [0, ("lost", 1, 1), 2, 3]


def test_workers_are_warm_and_keep_their_r():
    # a plain pool: R is started before the task body runs, once per worker process
    with _spawn_pool() as pool:
        first = executors.run_chunks(r_state, range(4), executor=pool, progress=False)
        again = executors.run_chunks(r_state, range(4), executor=pool, progress=False)
    assert all(started for _, started in first + again)
    assert {pid for pid, _ in again} <= {pid for pid, _ in first} | {pid for pid, _ in again}
    # process_pool() warms in the initializer (before any task)
    with executors.process_pool(1) as pool:
        assert pool._initializer is executors.warm_worker
        ((pid, started),) = executors.run_chunks(r_state, [0], executor=pool, progress=False)
        assert started and pid != os.getpid()


def test_chunking_helpers():
    assert executors.chunked(range(7), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    with pytest.raises(PylmeError, match="chunk_size"):
        executors.chunked([1], 0)
    assert executors.chunk_size_for(100, None) == 1
    with ThreadPoolExecutor(2) as pool:
        assert executors.chunk_size_for(16, pool) == 2 and executors.worker_count(pool) == 2
    assert not executors.is_dask_client(ThreadPoolExecutor)


def test_interrupt_while_waiting_stops_the_batch_and_leaves_the_pool_usable():
    """Ctrl-C (here raised by on_done at the first result) propagates at once; the
    caller's pool is not shut down and takes the next batch."""
    def interrupt(index, result):
        raise KeyboardInterrupt

    with _spawn_pool() as pool:
        with pytest.raises(KeyboardInterrupt):
            executors.run_chunks(square, range(40), executor=pool, progress=False, warm=False, on_done=interrupt)
        assert executors.run_chunks(square, [3], executor=pool, progress=False, warm=False) == [9]
