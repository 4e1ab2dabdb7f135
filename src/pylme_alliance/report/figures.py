"""Figures of the alliance-outcome report (matplotlib object API only, never pyplot).

Every function returns a :class:`matplotlib.figure.Figure` with an Agg canvas attached,
so ``fig.savefig(...)`` works without touching pyplot's global state.

Outcome words are the user's: axis labels name ``outcome_label`` (default "outcome"),
and "beneficial"/"harmful" appear only when ``outcome_better`` ("lower" or "higher")
says which direction of the outcome is the better one.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..canvas import new_figure, plain_text

TERM_LABELS = {"alliance_within": "Within-patient alliance", "alliance_between": "Between-patient alliance"}
COLOURS = {"alliance_within": "#1f5fa8", "alliance_between": "#c0502b"}


def _units(outcome_label: str | None) -> str:
    return f"{plain_text(outcome_label or 'outcome')} points per alliance point"


def _sign_hint(outcome_label: str | None, outcome_better: str | None) -> str:
    """What a negative effect means, in the user's direction (neutral without one)."""
    name = plain_text(outcome_label or "outcome")
    if outcome_better == "lower":
        return f"below 0: higher alliance, lower (better) next {name}"
    if outcome_better == "higher":
        return f"above 0: higher alliance, higher (better) next {name}"
    return f"below 0: higher alliance, lower next {name}"


def _zero_line(ax: Any, horizontal: bool = True) -> None:
    if horizontal:
        ax.axhline(0.0, color="0.35", linewidth=0.9, linestyle="--", zorder=1)
    else:
        ax.axvline(0.0, color="0.35", linewidth=0.9, linestyle="--", zorder=1)


def duration_plot(table: pd.DataFrame, *, outcome_label: str | None = None,
                  outcome_better: str | None = None) -> Figure:
    """Within and between alliance effect with its CI by lead (two panels, zero line).

    ``table`` is the :func:`pylme_alliance.duration` table.
    """
    # the dynamics' total effects are within-patient only: one panel then
    terms = [t for t in ("alliance_within", "alliance_between") if (table["term"] == t).any()] or ["alliance_within"]
    fig = new_figure(4.5 * len(terms) + (1.0 if len(terms) == 1 else 0.0), 4.2)
    axes = np.atleast_1d(fig.subplots(1, len(terms), sharey=False))
    leads = sorted(int(k) for k in table["lead"].unique())
    for ax, term in zip(axes, terms):
        rows = table[table["term"] == term].sort_values("lead")
        x = rows["lead"].to_numpy(dtype=float)
        est = rows["estimate"].to_numpy(dtype=float)
        low, high = rows["conf_low"].to_numpy(dtype=float), rows["conf_high"].to_numpy(dtype=float)
        _zero_line(ax)
        ax.errorbar(x, est, yerr=[est - low, high - est], fmt="o-", color=COLOURS[term], capsize=4,
                    linewidth=1.5, markersize=6, label="estimate with 95% CI")
        ax.set_xticks(leads)
        ax.set_xticklabels([f"t+{k}" for k in leads])
        ax.set_xlim(min(leads) - 0.5, max(leads) + 0.5)
        ax.set_xlabel("Outcome k sessions after the alliance rating")
        # two short lines: one long label is taller than the panel and gets cut off
        ax.set_ylabel(f"Effect on {plain_text(outcome_label or 'outcome')}\n({_units(outcome_label)})")
        ax.set_title(TERM_LABELS[term])
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"(b) Duration: how long does the alliance effect last?\n"
                 f"({_sign_hint(outcome_label, outcome_better)})", fontsize=11)
    return fig


def simple_slopes_plot(slopes: pd.DataFrame, moderator: str, kind: str, *,
                       observed: np.ndarray | None = None,
                       jn: pd.DataFrame | None = None,
                       adjusted_p: float | None = None,
                       significant: bool | None = None,
                       alpha: float = 0.05,
                       outcome_label: str | None = None,
                       outcome_better: str | None = None) -> Figure:
    """The within-patient alliance effect across a moderator.

    Continuous moderators: ``slopes`` holds a grid of values (``at``) over the observed
    range; draws the effect line and its 95% CI band, a rug of the patients' values and
    shades the Johnson-Neyman region(s) (``jn``, from
    :meth:`~pylme_alliance.models.fit.AllianceFit.johnson_neyman`) where the effect is
    significant, each labelled with its sign; extrapolated parts are never shaded.
    Categorical moderators: one point with a 95% error bar per level.

    Parameters
    ----------
    adjusted_p, significant, alpha
        Whether the interaction survives the multiplicity correction: ``significant``,
        or ``adjusted_p < alpha`` (e.g. the Benjamini-Hochberg ``p_adjusted`` of
        :func:`~pylme_alliance.moderators`). When it does not, no region is shaded and
        the figure says so. When neither is given, the regions are shaded and the
        figure says they are not corrected for multiplicity.
    outcome_label, outcome_better
        The outcome's name for the axis, and its better direction (words only).
    """
    if significant is None and adjusted_p is not None and np.isfinite(adjusted_p):
        significant = bool(adjusted_p < alpha)
    rows = slopes[slopes["term"] == "alliance_within"]
    fig = new_figure(6.0, 3.7)
    ax = fig.subplots()
    remark = None
    if kind == "numeric":
        remark = _numeric_slopes(ax, rows, moderator, observed=observed, jn=jn, significant=significant,
                                 adjusted_p=adjusted_p, outcome_better=outcome_better)
    else:
        _categorical_slopes(ax, rows, moderator)
    if remark:
        ax.text(0.01, 0.99, remark, transform=ax.transAxes, ha="left", va="top", fontsize=8, color="#8c2d04")
    ax.set_ylabel(f"Within-patient effect\n({_units(outcome_label)})")
    ax.set_title(f"(c) Within-patient alliance effect by {moderator}\n({_sign_hint(outcome_label, outcome_better)})",
                 fontsize=11)
    ax.grid(axis="y", alpha=0.3)
    return fig


def _numeric_slopes(ax: Any, rows: pd.DataFrame, moderator: str, *, observed: np.ndarray | None,
                    jn: pd.DataFrame | None, significant: bool | None, adjusted_p: float | None,
                    outcome_better: str | None) -> str | None:
    """The effect line with its CI band over a numeric moderator, the Johnson-Neyman
    shading and a rug of the patients' values; returns the remark to print, if any."""
    colour = COLOURS["alliance_within"]
    x = rows["at"].to_numpy(dtype=float)
    order = np.argsort(x)
    x = x[order]
    est = rows["estimate"].to_numpy(dtype=float)[order]
    low = rows["conf_low"].to_numpy(dtype=float)[order]
    high = rows["conf_high"].to_numpy(dtype=float)[order]
    _zero_line(ax)
    ax.fill_between(x, low, high, color=colour, alpha=0.2, linewidth=0, label="95% CI")
    ax.plot(x, est, color=colour, linewidth=2, label="within-patient effect")
    remark = None
    if jn is not None and len(jn):
        if significant is False:
            p_text = f" (adjusted p = {adjusted_p:.3g})" if adjusted_p is not None else ""
            remark = ("Interaction not significant after\nthe multiplicity correction"
                      f"{p_text}:\nno Johnson-Neyman region is shown.")
        else:
            remark = _shade_regions(ax, jn, x, significant, outcome_better)
    if observed is not None and len(observed):
        ymin = float(np.nanmin(low))
        ax.plot(observed, np.full(len(observed), ymin), "|", color="0.3", markersize=8, alpha=0.4,
                label="patients' values")
    ax.set_xlim(x.min(), x.max())
    ax.set_xlabel(f"{moderator} (moderator, observed range)")
    ax.legend(loc="upper right", fontsize=8, frameon=False)  # the remark sits upper left
    return remark


def _shade_regions(ax: Any, jn: pd.DataFrame, x: np.ndarray, significant: bool | None,
                   outcome_better: str | None) -> str | None:
    """Shade the observed (never extrapolated) Johnson-Neyman regions where the effect is
    significant, each sign labelled once; returns the remark to print, if any."""
    shown = jn[jn["significant"]]
    if "extrapolated" in shown:
        shown = shown[~shown["extrapolated"].astype(bool)]
    labelled: set[str] = set()
    for _, region in shown.iterrows():
        lo, hi = max(float(region["from"]), x.min()), min(float(region["to"]), x.max())
        sign = str(region.get("sign", ""))
        if hi > lo:
            words = _region_words(sign, outcome_better)
            ax.axvspan(lo, hi, color=_REGION_COLOURS.get(sign, "0.85"), alpha=0.35, zorder=0,
                       label=f"effect significantly {words} (Johnson-Neyman)"
                       if words not in labelled else None)
            labelled.add(words)
    if significant is None:
        return "Johnson-Neyman regions not corrected for multiplicity."
    if not len(shown):
        return "No region of the observed range where the effect is significant."
    return None


def _categorical_slopes(ax: Any, rows: pd.DataFrame, moderator: str) -> None:
    """One point with its 95% error bar per level of a categorical moderator."""
    labels = rows["label"].astype(str).tolist()
    pos = np.arange(len(labels))
    est = rows["estimate"].to_numpy(dtype=float)
    low, high = rows["conf_low"].to_numpy(dtype=float), rows["conf_high"].to_numpy(dtype=float)
    _zero_line(ax)
    ax.errorbar(pos, est, yerr=[est - low, high - est], fmt="o", color=COLOURS["alliance_within"], capsize=5,
                markersize=7)
    ax.set_xticks(pos)
    ax.set_xticklabels(labels)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.set_xlabel(f"{moderator} (level)")


_REGION_COLOURS = {"negative": "#c6dbef", "positive": "#fdd0a2"}


def _region_words(sign: str, outcome_better: str | None) -> str:
    """"negative"/"positive", with "(beneficial)"/"(harmful)" when the direction is known."""
    good = {"lower": "negative", "higher": "positive"}.get(outcome_better or "")
    if sign not in ("negative", "positive"):
        return "different from 0"
    if good is None:
        return sign
    return f"{sign} ({'beneficial' if sign == good else 'harmful'})"


_CATEGORY_COLOURS = {"clearly negative": "#1f5fa8", "clearly positive": "#c0502b",
                     "clearly beneficial": "#1f5fa8", "clearly harmful": "#c0502b",
                     "uncertain": "0.45", "no interval": "0.45"}


def caterpillar_plot(patients: pd.DataFrame, summary: pd.DataFrame, *, outcome_label: str | None = None,
                     outcome_better: str | None = None) -> Figure:
    """Patient-specific within effects, sorted, with intervals; zero line, the mean
    effect line and the prediction interval shaded. Points are coloured by the
    patient's interval category (``category`` of
    :meth:`~pylme_alliance.models.fit.AllianceFit.heterogeneity`), never by the sign
    of a shrunken estimate alone."""
    fig = new_figure(10.5, 3.3)
    ax = fig.subplots()
    rows = patients.sort_values("slope").reset_index(drop=True)
    rank = np.arange(1, len(rows) + 1)
    slope = rows["slope"].to_numpy(dtype=float)
    stat = summary.set_index("statistic")
    mean = float(stat.loc["mean within effect", "estimate"])
    pi = summary[summary["statistic"].str.contains("prediction interval")]
    if len(pi):
        lo, hi = float(pi["conf_low"].iloc[0]), float(pi["conf_high"].iloc[0])
        ax.axhspan(lo, hi, color="#9ecae1", alpha=0.35, linewidth=0, zorder=0,
                   label=f"95% prediction interval ({lo:.2f} to {hi:.2f})")
        for bound in (lo, hi):  # the bounds stay visible above the patients' intervals
            ax.axhline(bound, color="#3182bd", linestyle=":", linewidth=1.6, zorder=4)
    _zero_line(ax)
    low, high = rows["conf_low"].to_numpy(dtype=float), rows["conf_high"].to_numpy(dtype=float)
    if np.isfinite(low).any():
        if len(rows) > 150:  # hundreds of bars turn into a grey wall: draw the intervals as a band
            ax.fill_between(rank, low, high, step="mid", color="0.55", alpha=0.22, linewidth=0,
                            label="patient 95% intervals")
        else:
            ax.vlines(rank, low, high, color="0.55", linewidth=1.0, alpha=0.8, label="patient 95% interval")
    remarks = []
    if not np.isfinite(low).any():
        remarks.append("No patient intervals: they need the\nconditional variances of lme4's\nBLUPs (not available for this engine).")
    if "random-slope SD" in stat.index:
        sd = float(stat.loc["random-slope SD", "estimate"])
        if np.isfinite(sd) and sd < 0.05 * max(abs(mean), 1e-12):
            remarks.append(f"Random-slope SD = {sd:.3g}: the model\nfinds almost no variation between\npatients.")
    if "SD of patients' BLUP slopes" in stat.index and "random-slope SD" in stat.index:
        blup, sd = float(stat.loc["SD of patients' BLUP slopes", "estimate"]), float(stat.loc["random-slope SD", "estimate"])
        if np.isfinite(blup) and np.isfinite(sd) and sd > 0:
            remarks.append(f"Patients' estimates are shrunken:\ntheir SD is {blup:.3g}, the model's\n{sd:.3g}.")
    if remarks:  # in the right margin, under the legend
        ax.text(1.02, 0.45, "\n\n".join(remarks), transform=ax.transAxes, ha="left", va="top",
                fontsize=8, color="#8c2d04")
    category = (rows["category"].astype(str) if "category" in rows
                else pd.Series(np.where(np.isfinite(low), "uncertain", "no interval")))
    size = 6 if len(rows) > 150 else 14
    for name in dict.fromkeys(category):
        mask = (category == name).to_numpy()
        ax.scatter(rank[mask], slope[mask], s=size, color=_CATEGORY_COLOURS.get(name, "0.45"), zorder=3,
                   label=f"{name} (interval)" if name not in ("no interval",) else "no interval")
    ax.axhline(mean, color="black", linewidth=1.5, label=f"mean within effect ({mean:.2f})")
    ax.set_xlim(0, len(rows) + 1)
    ax.set_xlabel("Patients, sorted by their own within-patient effect")
    ax.set_ylabel(f"Patient's within effect\n({_units(outcome_label)})")
    ax.set_title(f"Patient-specific alliance effects ({_sign_hint(outcome_label, outcome_better)})")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return fig


def acf_plot(table: pd.DataFrame) -> Figure:
    """Residual autocorrelation by session lag, with +/-1.96/sqrt(n_pairs) bands."""
    fig = new_figure(6.0, 3.3)
    ax = fig.subplots()
    lags = table["lag"].to_numpy(dtype=float)
    acf = table["acf"].to_numpy(dtype=float)
    n = table["n_pairs"].to_numpy(dtype=float)
    band = np.where(n > 0, 1.96 / np.sqrt(np.where(n > 0, n, 1)), np.nan)
    ax.bar(lags, acf, width=0.5, color="#1f5fa8", label="autocorrelation")
    ax.step(np.r_[lags - 0.4, lags[-1:] + 0.4], np.r_[band, band[-1:]], where="post", color="#c0502b",
            linestyle="--", linewidth=1, label="±1.96/√n")
    ax.step(np.r_[lags - 0.4, lags[-1:] + 0.4], -np.r_[band, band[-1:]], where="post", color="#c0502b",
            linestyle="--", linewidth=1)
    ax.axhline(0.0, color="0.3", linewidth=0.8)
    ax.set_xticks(lags)
    ax.set_xlabel("Lag (sessions apart, by session number within patient)")
    ax.set_ylabel("Residual autocorrelation (correlation, -1 to 1)")
    ax.set_title("Residual autocorrelation of the main model")
    ax.legend(fontsize=8, frameon=False)
    lim = max(0.25, float(np.nanmax(np.abs(np.r_[acf, band]))) * 1.2)
    ax.set_ylim(-lim, lim)
    ax.grid(axis="y", alpha=0.3)
    return fig
