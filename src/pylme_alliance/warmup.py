"""Warming a worker up: start R and load the engines' R packages, once per process.

The initializer of process-pool workers and the set-up of the Dask worker plugin
(:mod:`._dask_plugin`); both import it from here, so neither imports the other.
"""
from __future__ import annotations

import threading

from .bridge import session

#: The R packages a worker loads when it warms up (the engines the package calls).
WARM_PACKAGES = ("lme4", "lmerTest", "nlme", "glmmTMB")

_warm_lock = threading.Lock()
_warmed = False


def warm_worker() -> None:
    """Start R in this process and load lme4, lmerTest, nlme and glmmTMB (once).

    The initializer of worker processes: a worker pays R's start-up (3-4 s of CPU) once
    and keeps its R for every chunk it runs after. Idempotent and cheap after the first
    call.
    """
    global _warmed
    if _warmed:
        return
    with _warm_lock:
        if _warmed:
            return
        env = session.private_env()  # starts R and sources the package's r/*.R
        ri = session.rinterface()
        with session.lock:
            load = ri.baseenv["loadNamespace"]
            for name in WARM_PACKAGES:
                # a package name from our constant, passed as a value, never as code
                load(ri.StrSexpVector([name]))
        del env
        _warmed = True
