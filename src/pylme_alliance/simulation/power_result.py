"""PowerResult: the table, replicates, figure and files of :func:`~.power.power`."""
from __future__ import annotations

import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["PowerResult", "build_result", "wilson"]

FILES = ("power.csv", "replicates.csv", "power.png")
Z95 = 1.959963984540054
TABLE_COLUMNS = ["effect", "n_sims", "n_ok", "n_failed", "power", "power_lo", "power_hi", "mean_estimate",
                 "truth", "bias", "coverage", "nonconverged", "singular", "test"]
REPLICATE_COLUMNS = ["replicate", "seed", "effect", "test", "estimate", "std_error", "statistic", "p_value",
                     "ci_low", "ci_high", "detected", "truth", "converged", "singular", "failed", "error",
                     "warnings"]


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion (the Monte-Carlo interval of a power)."""
    if n <= 0:
        return float("nan"), float("nan")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # the ends are exact at 0 and n successes (not 1e-17 off by rounding)
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return float(low), float(high)


def _display(key: str, value: Any) -> Any:
    """A design value as a table cell: numbers and strings as they are, others as text."""
    if value is None or isinstance(value, (bool, int, float, str, np.integer, np.floating)):
        return value
    if isinstance(value, Mapping):
        return repr(dict(value))
    return repr(tuple(value)) if isinstance(value, (list, tuple)) else str(value)


def _rate(values: pd.Series) -> float:
    known = values.dropna()
    return float(known.astype(bool).mean()) if len(known) else float("nan")


def build_result(rows: list[dict[str, Any]], *, points: list[dict[str, Any]], swept: list[str],
                 effects: Sequence[str], n_sims: int, alpha: float, seed: Any, model: Any) -> PowerResult:
    """Assemble the replicate rows of every chunk into a :class:`PowerResult`."""
    reps = pd.DataFrame(rows)
    for key in reversed(swept):
        reps.insert(0, key, [_display(key, points[p][key]) for p in reps["point"]])
    order = {e: i for i, e in enumerate(effects)}
    reps["_effect"] = reps["effect"].map(order)
    reps = reps.sort_values(["point", "_effect", "replicate"], kind="stable").reset_index(drop=True)
    table_rows = []
    for (point, _), group in reps.groupby(["point", "_effect"], sort=True):
        ok = group[~group["failed"].astype(bool)]
        n_ok = len(ok)
        hits = int(ok["detected"].astype(bool).sum())
        low, high = wilson(hits, n_ok)
        est = ok["estimate"].astype(float)
        truth = ok["truth"].astype(float)
        diff = (est - truth).dropna()
        covered = ok[np.isfinite(ok["ci_low"].astype(float)) & np.isfinite(truth)]
        coverage = (float(((covered["ci_low"] <= covered["truth"]) & (covered["truth"] <= covered["ci_high"])).mean())
                    if len(covered) else float("nan"))
        tests = [t for t in dict.fromkeys(ok["test"]) if t]
        table_rows.append({
            **{key: _display(key, points[point][key]) for key in swept},
            "effect": group["effect"].iloc[0], "n_sims": len(group), "n_ok": n_ok,
            "n_failed": len(group) - n_ok, "power": hits / n_ok if n_ok else float("nan"),
            "power_lo": low, "power_hi": high,
            "mean_estimate": float(est.mean()) if est.notna().any() else float("nan"),
            "truth": float(truth.mean()) if truth.notna().any() else float("nan"),
            "bias": float(diff.mean()) if len(diff) else float("nan"),
            "coverage": coverage,
            "nonconverged": 1.0 - _rate(ok["converged"]) if n_ok else float("nan"),
            "singular": _rate(ok["singular"]) if n_ok else float("nan"),
            "test": "; ".join(tests),
        })
    table = pd.DataFrame(table_rows, columns=[*swept, *TABLE_COLUMNS])
    # counts are counts: integers in the table, its HTML and its CSV (never "522.0")
    table = table.astype({"n_sims": "int64", "n_ok": "int64", "n_failed": "int64"})
    replicates = reps[[*swept, *REPLICATE_COLUMNS]]
    settings = {"n_sims": n_sims, "alpha": alpha, "seed": seed, "effects": list(effects),
                "model": repr(model), "design_points": [dict(p) for p in points]}
    return PowerResult(table=table, replicates=replicates, design=tuple(swept), alpha=alpha, seed=seed,
                       settings=settings)


@dataclass(frozen=True)
class PowerResult:
    """The result of :func:`~pylme_alliance.power`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per design point and effect: the swept design columns, ``effect``,
        ``n_sims``, ``n_ok`` (replicates that gave a test), ``n_failed``, ``power``
        (detections / n_ok) with ``power_lo``/``power_hi`` (Wilson 95% Monte-Carlo
        interval), ``mean_estimate``, ``truth`` (mean of the simulator's truth),
        ``bias`` (mean of estimate - truth), ``coverage`` (share of the 1 - alpha
        intervals holding the truth; NaN for tests without an interval),
        ``nonconverged`` and ``singular`` (rates among n_ok) and ``test``.
    replicates : pandas.DataFrame
        One row per replicate and effect (seed, estimate, p_value, detected, failed,
        error, ...). ``simulate(**design, seed=row.seed)`` redraws a replicate's trial.
    design : tuple of str
        The swept simulate() keywords (columns of both tables).
    alpha : float
    seed : int
        The root seed (``numpy.random.SeedSequence`` entropy).
    settings : dict
        n_sims, alpha, seed, effects, the model and every design point.
    """

    table: pd.DataFrame
    replicates: pd.DataFrame
    design: tuple[str, ...] = ()
    alpha: float = 0.05
    seed: Any = None
    settings: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ text
    def __str__(self) -> str:
        shown = self.table[[*self.design, "effect", "n_ok", "power", "power_lo", "power_hi", "mean_estimate",
                            "truth", "coverage"]]
        failed = int(self.table["n_failed"].sum())
        lines = [f"Power by simulation: {self.settings.get('n_sims')} replicates per design point, "
                 f"alpha = {self.alpha:g}, seed = {self.seed}",
                 shown.to_string(index=False, float_format=lambda v: f"{v:.3g}")]
        if failed:
            lines.append(f"{failed} replicate fit(s) failed (see .replicates['error']); power is over n_ok.")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<PowerResult: {len(self.table)} rows, alpha={self.alpha:g}, seed={self.seed}>"

    def _repr_html_(self) -> str:
        caption = html.escape(f"Power by simulation ({self.settings.get('n_sims')} replicates per design point, "
                              f"alpha = {self.alpha:g}, seed = {self.seed}); power_lo/power_hi: Wilson 95% "
                              "Monte-Carlo interval")
        body = self.table.to_html(index=False, float_format=lambda v: f"{v:.3g}", escape=True)
        return f"<div><p>{caption}</p>{body}</div>"

    # ------------------------------------------------------------------ figure
    def figure(self) -> Any:
        """Power curves: power against n_patients, one panel per effect, one line per
        value of the other swept keywords, the Monte-Carlo interval as a band and alpha
        as a dashed line. A matplotlib Figure (no pyplot) that displays as an image in
        Jupyter (``_repr_png_``)."""
        from ..canvas import new_figure, plain_text  # matplotlib only when a figure is asked for

        effects = list(dict.fromkeys(self.table["effect"]))
        fig = new_figure(width=max(4.5 * len(effects), 5.0), height=4.0)
        axes = fig.subplots(1, len(effects), squeeze=False)[0]
        others = [k for k in self.design if k != "n_patients"]
        for ax, effect in zip(axes, effects):
            rows = self.table[self.table["effect"] == effect]
            groups = rows.groupby(others, sort=False, dropna=False) if others else [((), rows)]
            for key, part in groups:
                part = part.sort_values("n_patients")
                key = key if isinstance(key, tuple) else (key,)
                label = ", ".join(f"{k} = {v}" for k, v in zip(others, key)) or None
                x = part["n_patients"].astype(float)
                line, = ax.plot(x, part["power"], marker="o", label=plain_text(label) if label else None)
                ax.fill_between(x, part["power_lo"], part["power_hi"], color=line.get_color(), alpha=0.2)
            ax.axhline(self.alpha, color="grey", linestyle="--", linewidth=1, label=f"alpha = {self.alpha:g}")
            ax.set_xticks(sorted(set(rows["n_patients"].astype(float))))
            ax.set_ylim(0, 1.02)
            ax.set_xlabel("patients")
            ax.set_ylabel("power")
            ax.set_title(plain_text(effect))
            ax.legend(fontsize="small", loc="lower right")
        return fig

    # ------------------------------------------------------------------ files
    def save(self, directory: str | Path, *, overwrite: bool = False) -> Path:
        """Write power.csv, replicates.csv and power.png into ``directory``.

        As :meth:`Report.save <pylme_alliance.Report.save>` (:mod:`pylme_alliance.outfiles`):
        everything is rendered first, then each file is written whole (temporary file
        and rename); an existing file (a symlink counts) is refused unless
        ``overwrite``, and a symlink is then replaced, never written through. A
        ``directory`` that is a symlink or goes through one (``base/sub/x`` with ``sub``
        a link) is refused, naming the link. Files get the umask's mode (0644 under 022);
        a replaced file keeps its own.
        """
        from ..outfiles import check_directory, write_files

        path = Path(directory).expanduser()
        check_directory(path, files=FILES, overwrite=overwrite)
        buffer = io.BytesIO()
        self.figure().savefig(buffer, format="png", dpi=110)
        contents = {
            "power.csv": self.table.to_csv(index=False).encode("utf-8"),
            "replicates.csv": self.replicates.to_csv(index=False).encode("utf-8"),
            "power.png": buffer.getvalue(),
        }
        return write_files(path, contents, overwrite=overwrite)
