"""Matplotlib figures saved as PNG files on the Agg canvas: no pyplot, no global backend
switch, so plotting is safe inside workers and tests.

matplotlib is imported when the first figure is made, not with this module: a run that writes
no plots (a resume whose results are current) does not pay for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def new_figure(**options: Any) -> "Figure":
    """A ``matplotlib.figure.Figure`` with ``options`` (``figsize``, ``layout``, ...)."""
    from matplotlib.figure import Figure

    return Figure(**options)


def save_figure(figure: "Figure", path: str | Path) -> Path:
    """Write ``figure`` to ``path`` (folders made as needed); returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=110)
    return path
