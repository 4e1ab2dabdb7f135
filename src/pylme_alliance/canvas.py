"""A matplotlib Figure with its own Agg canvas: how the package makes every figure.

Only the object API, never pyplot: ``fig.savefig(...)`` works without pyplot's global
state, in a notebook, a worker or a server. The report's figures (:mod:`.report.figures`)
and the power curves (:mod:`.simulation.power_result`) both start here.
"""
from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def new_figure(width: float = 7.0, height: float = 4.5) -> Figure:
    """A Figure with its own Agg canvas (no pyplot)."""
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig
