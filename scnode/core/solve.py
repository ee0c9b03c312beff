"""The one place that calls the ODE solvers (scnode's own ``dopri5``, torchdiffeq for the others).

Several trajectories with their own time grids are solved in **one batched call**: each grid is
shifted to start at zero (the fields are autonomous), all initial states are stepped at once, and
each trajectory's own times are read from the solution (the default ``dopri5`` evaluates its dense
output at exactly those times; torchdiffeq's solvers solve on the union of the grids, which is
gathered).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torchdiffeq
from torch import nn

from .dopri5 import dopri5

ADAPTIVE = ("dopri5", "dopri8", "bosh3", "adaptive_heun", "fehlberg2")
FIXED = ("rk4", "euler", "midpoint", "explicit_adams", "implicit_adams")


@dataclass(frozen=True)
class SolverOptions:
    """How to integrate.

    Parameters
    ----------
    method
        Adaptive (``"dopri5"``, default, :func:`scnode.core.dopri5.dopri5` unless ``adjoint``; the
        others through torchdiffeq) or fixed-step (``"rk4"``, ``"euler"``, ...; torchdiffeq).
    rtol, atol
        Tolerances of adaptive solvers.
    step_size
        Step of fixed-step solvers; ``None`` steps from one output time to the next.
    adjoint
        Backpropagate with the adjoint method (memory ``O(1)`` in the number of steps).
    dense_points
        torchdiffeq's adaptive solvers only (scnode's ``dopri5`` evaluates its own interpolant at
        every output time at the cost of a few operations in all): when there are more output
        times than this, solve at this many evenly
        spaced times and interpolate the others with cubic Hermite polynomials through the solved
        states and the field's derivatives there. The solver's own steps do not depend on the output
        times, so only the interpolant changes (torchdiffeq's own is also a polynomial between steps),
        while the cost per output time — a copy in the forward and in the backward pass — goes from
        every cell to ``dense_points``. ``None``: solve at every output time.
    """

    method: str = "dopri5"
    rtol: float = 1e-3
    atol: float = 1e-3
    step_size: float | None = None
    adjoint: bool = False
    dense_points: int | None = 128

    def __post_init__(self) -> None:
        if self.method not in ADAPTIVE + FIXED:
            raise ValueError(f"Unknown solver {self.method!r}; choose one of {list(ADAPTIVE + FIXED)}.")
        if self.rtol <= 0 or self.atol <= 0:
            raise ValueError(f"rtol and atol must be positive, got rtol={self.rtol}, atol={self.atol}.")
        if self.step_size is not None and self.step_size <= 0:
            raise ValueError(f"step_size must be positive, got {self.step_size}.")
        if self.dense_points is not None and self.dense_points < 2:
            raise ValueError(f"dense_points must be >= 2 (or None), got {self.dense_points}.")


def odeint(func: nn.Module, y0: torch.Tensor, t: torch.Tensor, options: SolverOptions) -> torch.Tensor:
    """Integrate ``dy/dt = func(t, y)`` from ``y0`` and return ``y`` at times ``t``: ``(len(t), *y0.shape)``."""
    kwargs: dict = {"method": options.method}
    if options.method in ADAPTIVE:
        kwargs.update(rtol=options.rtol, atol=options.atol)
    elif options.step_size is not None:
        kwargs["options"] = {"step_size": options.step_size}
    if options.adjoint:
        params = tuple(p for p in func.parameters() if p.requires_grad)
        return torchdiffeq.odeint_adjoint(func, y0, t, adjoint_params=params, **kwargs)
    return torchdiffeq.odeint(func, y0, t, **kwargs)


@dataclass
class TimeGrid:
    """Union of several shifted time grids and the indices to gather each one back.

    Attributes
    ----------
    union
        Sorted distinct times, starting at 0, ``(U,)``.
    index
        ``(B, T_max)`` positions in ``union`` of each trajectory's times (padded with 0).
    mask
        ``(B, T_max)``, True at real (non-padded) entries.
    """

    union: torch.Tensor
    index: torch.Tensor
    mask: torch.Tensor

    @classmethod
    def from_times(cls, times: Sequence[torch.Tensor]) -> TimeGrid:
        """Build the grid for trajectories whose times start at ``times[b][0]``."""
        shifted = [t - t[0] for t in times]
        union = torch.unique(torch.cat(shifted))
        if union[0] != 0:  # pragma: no cover - the shift makes 0 present
            union = torch.cat([union.new_zeros(1), union])
        t_max = max(len(t) for t in shifted)
        index = torch.zeros(len(times), t_max, dtype=torch.long, device=union.device)
        mask = torch.zeros(len(times), t_max, dtype=torch.bool, device=union.device)
        for b, t in enumerate(shifted):
            index[b, : len(t)] = torch.searchsorted(union, t)
            mask[b, : len(t)] = True
        return cls(union, index, mask)

    def gather(self, solution: torch.Tensor) -> torch.Tensor:
        """``(U, B, D)`` solution on the union -> ``(B, T_max, D)`` on each trajectory's grid."""
        batch = torch.arange(self.index.shape[0], device=solution.device)[:, None]
        return solution[self.index, batch]


def hermite(knots: torch.Tensor, values: torch.Tensor, slopes: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Cubic Hermite interpolation between knots, per trajectory.

    ``values`` and ``slopes`` are ``(K, B, D)`` at the ``(K,)`` knots; ``t`` is ``(B, T)``, each
    trajectory's own query times (within the knots). Returns ``(B, T, D)``.
    """
    k = torch.searchsorted(knots, t.contiguous(), right=True).clamp(1, len(knots) - 1) - 1
    h = (knots[k + 1] - knots[k]).unsqueeze(-1)
    s = (t - knots[k]).unsqueeze(-1) / h
    b = torch.arange(t.shape[0], device=t.device)[:, None]
    s2 = s * s
    s3 = s2 * s
    return (
        (2 * s3 - 3 * s2 + 1) * values[k, b]
        + (s3 - 2 * s2 + s) * h * slopes[k, b]
        + (3 * s2 - 2 * s3) * values[k + 1, b]
        + (s3 - s2) * h * slopes[k + 1, b]
    )


def solve_batched(func: nn.Module, y0: torch.Tensor, grid: TimeGrid, options: SolverOptions) -> torch.Tensor:
    """Solve all trajectories (initial states ``(B, D)``) in one call; returns ``(B, T_max, D)``.

    ``dopri5`` (without the adjoint) returns its dense output at every trajectory's own times. With
    many output times and another adaptive solver, the solution is computed at
    ``options.dense_points`` evenly spaced times and interpolated (see :class:`SolverOptions`).
    """
    if grid.union.numel() == 1:
        return y0[:, None, :].expand(-1, grid.index.shape[1], -1)
    if options.method == "dopri5" and not options.adjoint:
        times = grid.union.to(y0.device)[grid.index]  # (B, T_max); padding reads time 0
        return dopri5(func, y0, times, rtol=options.rtol, atol=options.atol)
    union = grid.union.to(y0)
    dense = options.dense_points
    if dense is None or options.method not in ADAPTIVE or union.numel() <= dense:
        return grid.gather(odeint(func, y0, union, options))
    knots = torch.linspace(0.0, float(union[-1]), dense, dtype=y0.dtype, device=y0.device)
    states = odeint(func, y0, knots, options)  # (K, B, D)
    slopes = func(knots[0], states)  # autonomous field; (K, B, D) states, one row of a batched intervention per B
    return hermite(knots, states, slopes, union[grid.index])  # each trajectory at its own times only
