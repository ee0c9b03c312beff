"""Plots (matplotlib). Each takes ``ax=`` and ``show=`` and returns what it drew."""

from ._adjacency import adjacency
from ._utils import PlotResult

__all__ = ["PlotResult", "adjacency"]
