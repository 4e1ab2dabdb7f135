"""moderators(): which patient and therapist characteristics change the alliance effect
(objective c), one model per candidate, Benjamini-Hochberg adjusted."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from ..errors import PylmeError, warnings_once
from ..models.model import AllianceModel
from ..panel.prepare import AlliancePanel
from ..progress import named_steps
from .duration import fit_notes

COLUMNS = ["moderator", "kind", "term", "at", "label", "estimate", "std_error", "df", "statistic",
           "p_value", "conf_low", "conf_high", "p_adjusted", "n"]


def benjamini_hochberg(p: Iterable[float]) -> np.ndarray:
    """Benjamini-Hochberg adjusted p values (as R's p.adjust(method = "BH"))."""
    p = np.asarray(list(p), dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    values = p[ok]
    n = len(values)
    if n == 0:
        return out
    order = np.argsort(values)[::-1]
    ranked = values[order] * n / np.arange(n, 0, -1)
    adjusted = np.minimum.accumulate(ranked)
    result = np.empty(n)
    result[order] = np.minimum(adjusted, 1.0)
    # never below p: p * n / n can round one ulp under p (the largest p, adjusted by n / n)
    out[ok] = np.maximum(result, values)
    return out


@warnings_once
def moderators(panel: AlliancePanel, candidates: Iterable[Any], *, simple_slopes: bool = True,
               progress: bool = False, **model: Any) -> pd.DataFrame:
    """Test each candidate moderator of the alliance-outcome association.

    Each candidate gets its own model: the main model plus the moderator and its
    interactions with alliance_within and alliance_between.

    Parameters
    ----------
    panel : AlliancePanel
        Prepared with ``moderators=`` including every candidate.
    candidates : iterable of str
        Moderator column names (severity, treatment length, therapist orientation,
        feedback arm, ...).
    simple_slopes : bool
        Add the within and between effects at moderator values (mean +/- 1 SD, or
        each level) as rows of kind "simple_slope".
    **model
        Options of :class:`AllianceModel` (lead, engine, therapist, ...).

    Returns
    -------
    pandas.DataFrame
        Rows of kind "interaction" (term ``alliance_within:<moderator>`` etc., with
        ``p_adjusted``: Benjamini-Hochberg over all interaction rows of the table) and,
        with ``simple_slopes``, rows of kind "simple_slope" (``at``/``label`` the
        moderator value, ``term`` the alliance component). ``table.attrs["notes"]`` says
        what the fits chose or changed (the therapist term chosen when ``therapist`` is
        "auto", the default; random intercepts removed).

    Warns
    -----
    Each warning class once per call, whatever the number of candidates.
    """
    candidates = list(candidates)
    if not candidates:
        raise PylmeError("moderators() needs at least one candidate")
    if "moderators" in model:
        raise PylmeError("moderators() fits one candidate at a time; pass them as candidates")
    unknown = [c for c in candidates if c not in panel.moderators]
    if unknown:
        raise PylmeError(f"{unknown} were not prepared as moderators; call prepare(..., moderators={candidates!r})")
    fits = {name: AllianceModel(moderators=(name,), **model).fit(panel)
            for name in named_steps(candidates, [f"moderator {c}" for c in candidates], enabled=progress,
                                    desc="moderators")}
    table = adjust(pd.concat([moderator_rows(fit, name, simple_slopes=simple_slopes) for name, fit in fits.items()],
                             ignore_index=True))
    table.attrs["notes"] = fit_notes(fits.values())
    return table


def moderator_rows(fit: Any, name: Any, *, simple_slopes: bool = True) -> pd.DataFrame:
    """The rows of one candidate's fit: its interaction terms and, optionally, the default
    simple slopes (``p_adjusted`` is left for :func:`adjust`)."""
    fixed = fit.tidy(conf_int=True)
    prefix = (f"alliance_within:{name}", f"alliance_between:{name}")
    inter = fixed[fixed["term"].astype(str).str.startswith(prefix)].copy()
    inter["moderator"] = str(name)
    inter["kind"] = "interaction"
    inter["at"] = None
    inter["label"] = None
    inter["n"] = fit.nobs
    parts = [inter]
    if simple_slopes:
        slopes = fit.simple_slopes(name)
        slopes["kind"] = "simple_slope"
        slopes["n"] = fit.nobs
        parts.append(slopes)
    return pd.concat(parts, ignore_index=True)


def adjust(table: pd.DataFrame) -> pd.DataFrame:
    """Benjamini-Hochberg over all interaction rows of a moderators table."""
    table = table.copy()
    table["p_adjusted"] = np.nan
    is_inter = table["kind"] == "interaction"
    table.loc[is_inter, "p_adjusted"] = benjamini_hochberg(table.loc[is_inter, "p_value"])
    # numbers in a numeric column: `at` is the moderator value of a numeric moderator's
    # simple slope; a category's slope has its level in `label` and `at` NaN
    table["at"] = pd.to_numeric(table["at"].where(table["kind"] != "interaction"), errors="coerce")
    return table[COLUMNS]
