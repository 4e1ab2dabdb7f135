"""A matplotlib Figure with its own Agg canvas: how the package makes every figure.

Only the object API, never pyplot: ``fig.savefig(...)`` works without pyplot's global
state, in a notebook, a worker or a server. The report's figures (:mod:`.report.figures`)
and the power curves (:mod:`.simulation.power_result`) both start here.
"""
from __future__ import annotations

from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


class DisplayFigure(Figure):
    """A Figure that shows itself as an image in Jupyter whatever the backend.

    Without pyplot (and without ``%matplotlib inline``) IPython shows a plain Figure as
    ``<Figure size 900x400 with 2 Axes>``; ``_repr_png_`` gives it the picture.
    """

    def _repr_png_(self) -> bytes:
        import io

        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        return buffer.getvalue()


def new_figure(width: float = 7.0, height: float = 4.5) -> Figure:
    """A Figure with its own Agg canvas (no pyplot) that displays as an image in Jupyter."""
    fig = DisplayFigure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def plain_text(text: Any) -> str:
    """User text (a column, moderator or outcome name) for a figure: matplotlib reads text
    between $ signs as mathtext and fails while drawing on what it cannot parse."""
    return str(text).replace("$", r"\$")
