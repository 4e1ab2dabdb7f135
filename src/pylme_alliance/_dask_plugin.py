"""The Dask worker plugin that warms R up (imported only when a Dask client is used)."""
from __future__ import annotations

import asyncio
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from .warmup import warm_worker


class WarmR(WorkerPlugin):
    """Start R and load the engines' packages on each worker, including workers that
    join or restart later.

    R is started on the worker's task thread (not its event loop), where the chunks'
    R calls will run; the plugin's set-up waits for it, so a registered client's workers
    are warm.
    """

    idempotent = True  # registering again (a reused client) does not warm twice

    def setup(self, worker: Any) -> Any:
        executor = getattr(worker, "executors", {}).get("default")
        if executor is None:
            warm_worker()
            return None
        return asyncio.wrap_future(executor.submit(warm_worker))
