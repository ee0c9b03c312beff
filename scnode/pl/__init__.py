"""Plots (matplotlib). Each takes ``ax=`` and ``show=`` and returns what it drew."""

from ._adjacency import adjacency
from ._gene_trends import gene_trends
from ._intervention import intervention
from ._lambda_path import lambda_path
from ._loss import loss
from ._network import network
from ._precision_recall import precision_recall
from ._skeleton import skeleton
from ._trajectory import trajectory
from ._utils import PlotResult

__all__ = [
    "PlotResult",
    "adjacency",
    "gene_trends",
    "intervention",
    "lambda_path",
    "loss",
    "network",
    "precision_recall",
    "skeleton",
    "trajectory",
]
