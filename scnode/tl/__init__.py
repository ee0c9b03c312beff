"""Tools on AnnData (scanpy style)."""

from ._consensus import consensus_network
from ._edges import edge_list, to_networkx
from ._evaluate import evaluate_grn
from ._fit import fit_sparse_ode
from ._intervene import simulate_intervention
from ._path import lambda_path
from ._predict import predict, score
from ._pseudotime import geodesic_pseudotime
from ._sweep import sweep

__all__ = [
    "consensus_network",
    "edge_list",
    "evaluate_grn",
    "fit_sparse_ode",
    "geodesic_pseudotime",
    "lambda_path",
    "predict",
    "score",
    "simulate_intervention",
    "sweep",
    "to_networkx",
]
