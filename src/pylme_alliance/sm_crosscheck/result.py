"""Crosscheck: statsmodels and R estimates of one model, side by side, with reasons."""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .table import AGREE_RULE


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


@dataclass(frozen=True)
class Crosscheck:
    """The same mixed model fitted by statsmodels and by R, compared parameter by parameter.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per parameter: ``term, kind`` (``fixed``/``sd``/``cor``/``residual``),
        ``group, estimate_statsmodels, estimate_r, abs_diff, rel_diff, se_statsmodels,
        se_r, agree, why`` (``why`` is empty where the estimates agree).
    notes : tuple of str
        What was fitted, on which rows, and every cause of disagreement found.
    loglik : dict
        ``{"statsmodels": ..., "r": ...}`` log-likelihoods (REML or ML, as fitted).
    r_fit : MixedFit
        The R fit, for further work.
    statsmodels_result : MixedLMResults
        The statsmodels result that was checked.
    formula : str
        The lme4 model in your variables' names (for reading; R was given the same
        model over generated column names).
    rule : str
        The agreement rule in words.
    """

    table: pd.DataFrame
    notes: tuple[str, ...]
    loglik: dict[str, float]
    r_fit: Any
    statsmodels_result: Any
    formula: str
    rule: str = AGREE_RULE
    engine: str = "lme4"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def agree(self) -> bool:
        """True when every parameter agrees."""
        return bool(self.table["agree"].all())

    @property
    def disagreements(self) -> pd.DataFrame:
        """The rows that do not agree."""
        return self.table.loc[~self.table["agree"]]

    def explain(self) -> list[str]:
        """One line per disagreeing row: the term, both estimates and why."""
        lines = []
        for row in self.disagreements.itertuples(index=False):
            where = f" ({row.kind}{', ' + row.group if row.group else ''})"
            lines.append(f"{row.term}{where}: statsmodels {_fmt(row.estimate_statsmodels)}, "
                         f"R {_fmt(row.estimate_r)} - {row.why}")
        return lines

    def __str__(self) -> str:
        n_bad = int((~self.table["agree"]).sum())
        head = [f"Cross-check of statsmodels MixedLM against {self.engine}: {self.formula}",
                f"log-likelihood: statsmodels {_fmt(self.loglik['statsmodels'])}, R {_fmt(self.loglik['r'])}",
                ("all parameters agree" if not n_bad else f"{n_bad} of {len(self.table)} parameters disagree")
                + f" ({self.rule})", ""]
        shown = self.table.drop(columns=["why"])
        body = shown.to_string(index=False, float_format=lambda v: f"{v:.6g}")
        tail = []
        if n_bad:
            tail += ["", "Disagreements:"] + [f"  {line}" for line in self.explain()]
        if self.notes:
            tail += ["", "Notes:"] + [f"  - {note}" for note in self.notes]
        return "\n".join(head + [body] + tail)

    def __repr__(self) -> str:
        n_bad = int((~self.table["agree"]).sum())
        return f"<Crosscheck {self.engine}: {len(self.table)} parameters, {n_bad} disagree>"

    def _repr_html_(self) -> str:
        n_bad = int((~self.table["agree"]).sum())
        verdict = "all parameters agree" if not n_bad else f"{n_bad} of {len(self.table)} parameters disagree"
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        table = self.table.to_html(index=False, float_format=lambda v: f"{v:.6g}", escape=True)
        return (f"<div><p><b>Cross-check of statsmodels MixedLM against {html.escape(self.engine)}</b>: "
                f"<code>{html.escape(self.formula)}</code></p>"
                f"<p>log-likelihood: statsmodels {_fmt(self.loglik['statsmodels'])}, "
                f"R {_fmt(self.loglik['r'])}; {html.escape(verdict)} ({html.escape(self.rule)})</p>"
                f"{table}" + (f"<ul>{notes}</ul>" if notes else "") + "</div>")
