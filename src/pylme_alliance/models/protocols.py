"""The fitted alliance model as the computations on it read it: structural types.

:class:`~.fit.AllianceFit` offers heterogeneity, the slope test and Johnson-Neyman
regions as methods, and those computations read the fit back. Naming the fit (and the
model it came from) by these protocols instead of by class keeps the imports one way:
``spec, protocols <- heterogeneity, slope_test, johnson_neyman <- fit <- model``.
"""
from __future__ import annotations

from typing import Any, Protocol

import pandas as pd

from ..panel.data import AlliancePanel
from .spec import ModelSpec


class AllianceModelLike(Protocol):
    """What a fit needs of the :class:`~.model.AllianceModel` it came from."""

    lead: int
    engine: str
    random_slope: bool
    control_outcome: str | bool
    prior_outcome: bool | str
    effect: str

    def replace(self, **changes: Any) -> AllianceModelLike: ...

    def fit(self, panel: AlliancePanel) -> Any: ...


class FittedAllianceModel(Protocol):
    """An :class:`~.fit.AllianceFit` as heterogeneity, slope test and Johnson-Neyman use it."""

    model: AllianceModelLike | None
    spec: ModelSpec | None
    panel: AlliancePanel | None
    engine: str
    nobs: int
    converged: bool
    fixed_table: pd.DataFrame
    ran_pars_table: pd.DataFrame
    fixef_values: pd.Series
    stats: dict[str, Any]
    data: pd.DataFrame
    backend: Any

    def tidy(self, effects: Any = "fixed", *, conf_int: bool = False, conf_level: float = 0.95) -> pd.DataFrame: ...

    def vcov(self) -> pd.DataFrame: ...

    def contrast(self, weights: dict[str, float]) -> dict[str, float]: ...

    def predict(self, newdata: Any = None, *, include_random: bool = True) -> Any: ...

    def _moderator(self, moderator: Any) -> tuple[str, Any]: ...
