"""Figures of the alliance-outcome report (matplotlib object API only, never pyplot).

Every function returns a :class:`matplotlib.figure.Figure` with an Agg canvas attached,
so ``fig.savefig(...)`` works without touching pyplot's global state.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

EFFECT_UNITS = "OQ-45 points per alliance point"
TERM_LABELS = {"alliance_within": "Within-patient alliance", "alliance_between": "Between-patient alliance"}
COLOURS = {"alliance_within": "#1f5fa8", "alliance_between": "#c0502b"}


def new_figure(width: float = 7.0, height: float = 4.5) -> Figure:
    """A Figure with its own Agg canvas (no pyplot)."""
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _zero_line(ax: Any, horizontal: bool = True) -> None:
    if horizontal:
        ax.axhline(0.0, color="0.35", linewidth=0.9, linestyle="--", zorder=1)
    else:
        ax.axvline(0.0, color="0.35", linewidth=0.9, linestyle="--", zorder=1)


def duration_plot(table: pd.DataFrame) -> Figure:
    """Within and between alliance effect with its CI by lead (two panels, zero line).

    ``table`` is the :func:`pylme_alliance.duration` table.
    """
    fig = new_figure(9.0, 4.2)
    axes = fig.subplots(1, 2, sharey=False)
    leads = sorted(int(k) for k in table["lead"].unique())
    for ax, term in zip(axes, ("alliance_within", "alliance_between")):
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
        ax.set_xlabel("Outcome measured k sessions after the alliance rating")
        ax.set_ylabel(f"Effect on outcome ({EFFECT_UNITS})")
        ax.set_title(TERM_LABELS[term])
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("(b) Duration: how long does the alliance effect last?")
    return fig


def simple_slopes_plot(slopes: pd.DataFrame, moderator: str, kind: str, *,
                       observed: np.ndarray | None = None,
                       jn: pd.DataFrame | None = None) -> Figure:
    """The within-patient alliance effect across a moderator.

    Continuous moderators: ``slopes`` holds a grid of values (``at``) over the observed
    range; draws the effect line and its 95% CI band, a rug of the patients' values and
    shades the Johnson-Neyman region(s) where the effect is significant. Categorical
    moderators: one point with a 95% error bar per level.
    """
    rows = slopes[slopes["term"] == "alliance_within"]
    fig = new_figure(7.0, 4.5)
    ax = fig.subplots()
    colour = COLOURS["alliance_within"]
    if kind == "numeric":
        x = rows["at"].to_numpy(dtype=float)
        order = np.argsort(x)
        x = x[order]
        est = rows["estimate"].to_numpy(dtype=float)[order]
        low = rows["conf_low"].to_numpy(dtype=float)[order]
        high = rows["conf_high"].to_numpy(dtype=float)[order]
        _zero_line(ax)
        ax.fill_between(x, low, high, color=colour, alpha=0.2, linewidth=0, label="95% CI")
        ax.plot(x, est, color=colour, linewidth=2, label="within-patient effect")
        if jn is not None and len(jn):
            first = True
            for _, region in jn[jn["significant"]].iterrows():
                lo, hi = max(float(region["from"]), x.min()), min(float(region["to"]), x.max())
                if hi > lo:
                    ax.axvspan(lo, hi, color="0.85", alpha=0.5, zorder=0,
                               label="effect significant (Johnson-Neyman)" if first else None)
                    first = False
        if observed is not None and len(observed):
            ymin = float(np.nanmin(low))
            ax.plot(observed, np.full(len(observed), ymin), "|", color="0.3", markersize=8, alpha=0.4,
                    label="patients' values")
        ax.set_xlim(x.min(), x.max())
        ax.set_xlabel(f"{moderator} (moderator, observed range)")
        ax.legend(loc="best", fontsize=8, frameon=False)
    else:
        labels = rows["label"].astype(str).tolist()
        pos = np.arange(len(labels))
        est = rows["estimate"].to_numpy(dtype=float)
        low, high = rows["conf_low"].to_numpy(dtype=float), rows["conf_high"].to_numpy(dtype=float)
        _zero_line(ax)
        ax.errorbar(pos, est, yerr=[est - low, high - est], fmt="o", color=colour, capsize=5, markersize=7)
        ax.set_xticks(pos)
        ax.set_xticklabels(labels)
        ax.set_xlim(-0.6, len(labels) - 0.4)
        ax.set_xlabel(f"{moderator} (level)")
    ax.set_ylabel(f"Within-patient effect ({EFFECT_UNITS})")
    ax.set_title(f"(c) Within-patient alliance effect by {moderator}\n(negative = better alliance, lower next outcome)",
                 fontsize=11)
    ax.grid(axis="y", alpha=0.3)
    return fig


def caterpillar_plot(patients: pd.DataFrame, summary: pd.DataFrame) -> Figure:
    """Patient-specific within effects, sorted, with intervals; zero line, the mean
    effect line and the prediction interval shaded."""
    fig = new_figure(10.5, 4.8)
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
    if remarks:  # in the right margin, under the legend
        ax.text(1.02, 0.45, "\n\n".join(remarks), transform=ax.transAxes, ha="left", va="top",
                fontsize=8, color="#8c2d04")
    benefit = rows["beneficial"].to_numpy(dtype=bool)
    size = 6 if len(rows) > 150 else 14
    ax.scatter(rank[benefit], slope[benefit], s=size, color="#1f5fa8", zorder=3, label="beneficial (negative)")
    ax.scatter(rank[~benefit], slope[~benefit], s=size, color="#c0502b", zorder=3, label="not beneficial")
    ax.axhline(mean, color="black", linewidth=1.5, label=f"mean within effect ({mean:.2f})")
    ax.set_xlim(0, len(rows) + 1)
    ax.set_xlabel("Patients, sorted by their own within-patient effect")
    ax.set_ylabel(f"Patient's within effect ({EFFECT_UNITS})")
    ax.set_title("One size does not fit all: patient-specific alliance effects")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return fig


def acf_plot(table: pd.DataFrame) -> Figure:
    """Residual autocorrelation by session lag, with +/-1.96/sqrt(n_pairs) bands."""
    fig = new_figure(6.5, 4.0)
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
