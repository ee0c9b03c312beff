"""The engine: torch only, no AnnData. Everything here works on tensors."""

from . import gates, metrics
from .adjacency import ZERO_TOL, adjacency, feature_sparsity, weight_sparsity
from .data import Trajectories
from .fields import MLP, Intervention, ODESystem
from .layers import SparseLinear
from .penalties import METHODS, Method, get_method
from .solve import SolverOptions, TimeGrid, odeint, solve_batched
from .train import FitInterrupted, History, NonFiniteLossError, TrainConfig, train

__all__ = [
    "METHODS",
    "MLP",
    "ZERO_TOL",
    "FitInterrupted",
    "History",
    "Intervention",
    "Method",
    "NonFiniteLossError",
    "ODESystem",
    "SolverOptions",
    "SparseLinear",
    "TimeGrid",
    "TrainConfig",
    "Trajectories",
    "adjacency",
    "feature_sparsity",
    "gates",
    "get_method",
    "metrics",
    "odeint",
    "solve_batched",
    "train",
    "weight_sparsity",
]
