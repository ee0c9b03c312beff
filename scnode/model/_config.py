"""The configuration of a :class:`~scnode.SparseODE`: defaults, checks, device resolution."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..core import SolverOptions, get_method

DEFAULT_LAM: dict[str, float] = {
    "base": 0.0,
    "l0": 21.5,
    "cnode": 464.0,
    "pathreg": 21.5,
    "lassonet_inner": 464.0,
    "lassonet_outer": 464.0,
    "grouplasso": 21.5,
}
"""Default penalty weight of each method: the values the validation rule of ``benchmarks/synthetic.py``
selected on seed 0 (see :mod:`scnode.core.penalties` for the normalisation). A starting point only: the
right value depends on the data; :func:`scnode.tl.fit_sparse_ode` chooses it along a validated path."""
DEFAULT_PATHREG_LAM1 = 464.0
"""Default weight of PathReg's weight-path term (C-NODE's selected weight in the same benchmark)."""


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is passed to :class:`torch.device`."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda' (optionally 'cuda:N'), got {device!r}.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but CUDA is not available; use device='auto' or 'cpu'.")
    return dev


@dataclass
class ModelConfig:
    """Everything that defines a :class:`~scnode.SparseODE` (saved next to its weights)."""

    n_vars: int
    method: str = "pathreg"
    order: int = 1
    hidden: tuple[int, ...] = (32, 32)
    activation: str = "elu"
    per_output: bool = False
    gates: str = "all"
    linear: bool = False
    decay: bool = False
    lam: float | None = None
    lam1: float | None = None
    M: float = 10.0
    init_keep: float = 0.999
    velocity_hidden: tuple[int, ...] = (16,)
    solver: str = "dopri5"
    rtol: float = 1e-3
    atol: float = 1e-3
    step_size: float | None = None
    adjoint: bool = False
    dense_points: int | None = 128
    random_state: int = 0
    var_names: list[str] | None = field(default=None)
    inputs: list[int] | None = field(default=None)
    self_inputs: bool | None = None
    penalty_weights: bool = False

    def __post_init__(self) -> None:
        get_method(self.method)
        self.hidden = tuple(int(h) for h in self.hidden)
        self.velocity_hidden = tuple(int(h) for h in self.velocity_hidden)
        if self.lam is None:
            self.lam = DEFAULT_LAM[self.method]
        if self.lam1 is None:
            self.lam1 = DEFAULT_PATHREG_LAM1 if self.method == "pathreg" else 0.0
        if self.lam < 0 or self.lam1 < 0:
            raise ValueError(f"Penalty weights must be >= 0, got lam={self.lam}, lam1={self.lam1}.")
        if self.n_vars < 1:
            raise ValueError(f"n_vars must be positive, got {self.n_vars}.")
        if self.per_output and get_method(self.method).skip is not None:
            raise ValueError(f"per_output=True is not available for {self.method!r} (its prox acts on a shared layer).")
        if self.gates in ("inputs", "pairs") and not get_method(self.method).gated:  # other values: the field's check
            raise ValueError(f"gates={self.gates!r} applies to the gated methods (l0, pathreg), not {self.method!r}.")
        if self.linear and get_method(self.method).prox is not None:
            raise ValueError(
                f"linear=True is not available for {self.method!r}: its proximal step would leave the linear term "
                "unpenalised (LassoNet's skip already is a linear term)."
            )
        if self.var_names is not None and len(self.var_names) != self.n_vars:
            raise ValueError(f"{len(self.var_names)} var_names for n_vars={self.n_vars}.")
        if self.inputs is not None:
            self.inputs = [int(i) for i in self.inputs]
            if not self.inputs or len(set(self.inputs)) != len(self.inputs):
                raise ValueError("inputs must name at least one variable, each once.")
            bad = [i for i in self.inputs if not 0 <= i < self.n_vars]
            if bad:
                raise ValueError(f"inputs {bad} are out of range for n_vars={self.n_vars}.")
        if self.self_inputs is None:  # default: a per-output field with regulators lets each output read itself
            grouped = self.per_output or get_method(self.method).grouped
            self.self_inputs = self.inputs is not None and grouped and self.order == 1 and bool(self.hidden)
        if self.penalty_weights and not (self.per_output or get_method(self.method).grouped):
            raise ValueError(
                "penalty_weights (a prior network) need one network per output: per_output=True (or grouplasso); "
                "a shared hidden layer has no weight that belongs to one (output, input) pair."
            )

    @property
    def penalty_kwargs(self) -> dict[str, float]:
        """Keyword arguments of the method's penalty and proximal step."""
        return {"lam": float(self.lam), "lam1": float(self.lam1), "M": float(self.M)}

    @property
    def solver_options(self) -> SolverOptions:
        """The solver settings."""
        return SolverOptions(self.solver, self.rtol, self.atol, self.step_size, self.adjoint, self.dense_points)

    def constructor_kwargs(self) -> dict[str, Any]:
        """Keyword arguments that rebuild a model with this configuration (all but ``n_vars``)."""
        kwargs = asdict(self)
        kwargs.pop("n_vars")
        return kwargs
