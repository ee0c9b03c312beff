"""Integrating a fitted :class:`~scnode.SparseODE`: trajectories, and interventions switched on at a time."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..core import Intervention, TimeGrid, Trajectories, solve_batched
from ..core.data import ArrayLike

if TYPE_CHECKING:
    from ._sparse_ode import SparseODE


def variable_index(model: SparseODE, key: int | str) -> int:
    """Index of a variable given by name (``var_names``) or position."""
    if isinstance(key, str):
        names = model.config.var_names or []
        if key not in names:
            raise KeyError(f"Unknown variable {key!r}; the model's variables are {names}.")
        return names.index(key)
    return int(key)


HeldLike = np.ndarray | Sequence[Sequence[int | str]]


def held_mask(model: SparseODE, held: HeldLike | None, n_trajectories: int) -> np.ndarray | None:
    """Return ``(B, n_vars)`` booleans from ``held``: such an array, or one list of variables per trajectory.

    An array is passed on as it is; :meth:`~scnode.core.Trajectories.with_held` checks its shape.
    """
    if held is None or (isinstance(held, np.ndarray) and held.dtype == bool):
        return held
    n_vars = model.config.n_vars
    rows = list(held)
    if len(rows) != n_trajectories:
        raise ValueError(f"held has {len(rows)} entries for {n_trajectories} trajectories (one list of genes each).")
    mask = np.zeros((n_trajectories, n_vars), bool)
    for b, row in enumerate(rows):
        for key in [row] if isinstance(row, str | int | np.integer) else row:
            i = variable_index(model, key)
            if not 0 <= i < n_vars:
                raise ValueError(f"held refers to variable {i}; the model has {n_vars} variables.")
            mask[b, i] = True
    return mask


def make_intervention(
    model: SparseODE,
    hold: Mapping[int | str, float] | None,
    replace: Mapping[int | str, Callable] | None,
    mask: torch.Tensor | None = None,
) -> Intervention | None:
    """Build the :class:`~scnode.core.Intervention` of ``hold``, ``replace`` and a per-trajectory mask (or ``None``)."""
    if not hold and not replace and mask is None:
        return None
    return Intervention(
        {variable_index(model, k): float(v) for k, v in (hold or {}).items()},
        {variable_index(model, k): fn for k, fn in (replace or {}).items()},
        mask,
    )


@torch.no_grad()
def predict(
    model: SparseODE,
    times: ArrayLike | Sequence[ArrayLike],
    x0: ArrayLike,
    *,
    v0: ArrayLike | None = None,
    hold: Mapping[int | str, float] | None = None,
    replace: Mapping[int | str, Callable] | None = None,
    start: float | None = None,
    return_velocity: bool = False,
    held: HeldLike | None = None,
) -> np.ndarray | list[np.ndarray]:
    """Integrate ``model`` from ``x0`` (see :meth:`scnode.SparseODE.predict`)."""
    single = np.ndim(x0) == 1
    x0_a = np.atleast_2d(np.asarray(x0, float))
    times_l = [times] if single else list(times)
    if len(times_l) != len(x0_a):
        raise ValueError(f"Got {len(times_l)} time grids for {len(x0_a)} initial states.")
    mask = held_mask(model, held, len(x0_a))
    if mask is not None and start is not None:
        raise ValueError("held= holds variables from each trajectory's start; it cannot be combined with start=.")
    data = Trajectories.from_arrays(
        times_l, [np.zeros((len(np.ravel(t)), x0_a.shape[1])) for t in times_l], x0=x0_a, v0=v0, held=mask
    ).to(model.device)
    intervention = make_intervention(model, hold, replace, data.held)
    system = model.system
    system.prepare(sample=False)
    if start is None or intervention is None:
        with system.intervene(intervention):
            y0 = system.initial_state(data.x0, data.v0)
            out = _solve(model, data.times, y0, return_velocity)
        arrays = [out[b, : len(t)].cpu().numpy() for b, t in enumerate(data.times)]
    else:
        y0 = system.initial_state(data.x0, data.v0)
        arrays = [
            _switch(model, t, y0[b : b + 1], float(start), intervention, return_velocity)
            for b, t in enumerate(data.times)
        ]
    return arrays[0] if single else arrays


def _solve(model: SparseODE, times: Sequence[torch.Tensor], y0: torch.Tensor, return_velocity: bool) -> torch.Tensor:
    """Solve from full states ``y0`` over each trajectory's times; states or observed values."""
    states = solve_batched(model.system, y0, TimeGrid.from_times(times), model.config.solver_options)
    return states if return_velocity else model.system.readout(states)


def _split(model: SparseODE, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    d = model.config.n_vars
    return (state[..., :d], state[..., d:]) if model.config.order == 2 else (state, None)


def _switch(
    model: SparseODE,
    t: torch.Tensor,
    y0: torch.Tensor,
    start: float,
    intervention: Intervention,
    return_velocity: bool,
) -> np.ndarray:
    """One trajectory that runs unchanged up to ``start`` and under ``intervention`` from then on."""
    system = model.system
    before = t[t < start]
    if len(before) == 0:
        with system.intervene(intervention):
            y0 = system.initial_state(*_split(model, y0))
            return _solve(model, [t], y0, return_velocity)[0].cpu().numpy()
    grid = torch.cat([before, t.new_tensor([start])])
    states = _solve(model, [grid], y0, True)[0]
    rest = t[t >= start]
    on_grid = bool(rest.numel()) and float(rest[0]) == start
    after = rest if on_grid else torch.cat([t.new_tensor([start]), rest])
    with system.intervene(intervention):
        y_on = system.initial_state(*_split(model, states[-1:]))
        out_after = _solve(model, [after], y_on, return_velocity)[0]
    out_before = states[:-1] if return_velocity else system.readout(states[:-1])
    return torch.cat([out_before, out_after if on_grid else out_after[1:]]).cpu().numpy()
