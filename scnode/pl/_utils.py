from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.axes import Axes


@dataclass
class PlotResult:
    """What a plot drew: its Axes and the data behind it."""

    ax: Axes
    data: Any


def get_ax(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    """``ax`` or a new one."""
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def finish(show: bool | None) -> None:
    """Show the figure when asked (default: only in interactive backends)."""
    if show is None:
        show = plt.isinteractive()
    if show:
        plt.show()
