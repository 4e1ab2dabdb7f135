"""pylme_alliance: alliance-outcome mixed models in R (lme4, nlme, glmmTMB) from pandas.

Importing the package is cheap: rpy2 and R start on the first fit, never here.
Public names are resolved lazily from the modules listed in ``_EXPORTS``.
"""
from __future__ import annotations

import importlib
from typing import Any

from .errors import EngineCannotExpress, PylmeError, RError, RWarning, SentinelWarning  # noqa: F401 (public)

__version__ = "0.1.0"

# public name -> module that defines it (relative to this package)
_EXPORTS: dict[str, str] = {
    # engines
    "lmer": ".engines.lme4",
    "lme": ".engines.nlme",
    "glmmtmb": ".engines.glmmtmb",
    "mixedlm": ".engines.statsmodels",
    "AR1": ".engines.correlation",
    "CAR1": ".engines.correlation",
    "ARMA": ".engines.correlation",
    "CompSymm": ".engines.correlation",
    "MixedFit": ".results",
    "compare": ".comparison",
    # alliance layer
    "prepare": ".panel.prepare",
    "AlliancePanel": ".panel.prepare",
    "AllianceModel": ".models.model",
    "AllianceFit": ".models.model",
    "duration": ".analyses.duration",
    "reciprocal": ".analyses.reciprocal",
    "ReciprocalFit": ".analyses.reciprocal_fit",
    "between_effect": ".analyses.between",
    "moderators": ".analyses.moderation",
    "analyze": ".report.analyze",
    "Report": ".report.report",
    "crosscheck": ".analyses.crosscheck",
    "from_statsmodels": ".sm_crosscheck",
    "Crosscheck": ".sm_crosscheck",
    "fit_many": ".batch",
    "simulate": ".simulation.simulate",
    "Simulation": ".simulation.simulate",
    "load_example": ".simulation.example",
    "power": ".simulation.power",
    "PowerResult": ".simulation.power_result",
    "read_data": ".readers",

}

__all__ = sorted([*_EXPORTS, "PylmeError", "RError", "RWarning", "EngineCannotExpress", "SentinelWarning", "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pylme_alliance' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
