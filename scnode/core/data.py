"""Trajectories as tensors: the input of the training loop."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor | Sequence[float]


def _as_tensor(x: ArrayLike, dtype: torch.dtype, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x, dtype=np.float64) if not isinstance(x, torch.Tensor) else x)
    t = t.to(dtype)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    return t


@dataclass
class Trajectories:
    """Observed trajectories that share one vector field.

    Attributes
    ----------
    times
        One increasing 1-D tensor per trajectory.
    values
        One ``(len(times[b]), n_vars)`` tensor per trajectory.
    x0
        Initial positions, ``(B, n_vars)``.
    v0
        Initial velocities ``(B, n_vars)`` for second-order systems, or ``None`` (then predicted).
    held
        ``(B, n_vars)`` booleans, or ``None``: the variables perturbed in each trajectory, held at
        their initial value while it is integrated (a knockout or an over-expression; see
        :class:`~scnode.core.Intervention`).
    """

    times: list[torch.Tensor]
    values: list[torch.Tensor]
    x0: torch.Tensor
    v0: torch.Tensor | None = None
    held: torch.Tensor | None = None

    @classmethod
    def from_arrays(
        cls,
        times: ArrayLike | Sequence[ArrayLike],
        values: ArrayLike | Sequence[ArrayLike],
        *,
        x0: ArrayLike | None = None,
        v0: ArrayLike | None = None,
        held: ArrayLike | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Trajectories:
        """Validate and convert arrays.

        ``values`` is one ``(T, n_vars)`` array or a list of them; ``times`` is one ``(T,)`` array or
        a list of them, in the same order. ``x0`` defaults to each trajectory's first observation.
        ``held``: ``(B, n_vars)`` booleans, the variables held at their initial value in each trajectory.
        """
        single = np.ndim(values[0]) == 1 if isinstance(values, list | tuple) else np.ndim(values) == 2
        if single:
            times, values = [times], [values]
        if len(times) != len(values):
            raise ValueError(f"Got {len(times)} time grids for {len(values)} trajectories.")
        ts = [_as_tensor(t, dtype, f"times[{b}]") for b, t in enumerate(times)]
        ys = [_as_tensor(y, dtype, f"values[{b}]") for b, y in enumerate(values)]
        n_vars = ys[0].shape[-1] if ys[0].ndim == 2 else None
        for b, (t, y) in enumerate(zip(ts, ys, strict=True)):
            if t.ndim != 1:
                raise ValueError(f"times[{b}] must be 1-D, got shape {tuple(t.shape)}.")
            if y.ndim != 2 or y.shape[0] != t.shape[0]:
                raise ValueError(
                    f"values[{b}] must have shape (len(times[{b}]), n_vars) = ({len(t)}, n_vars), got {tuple(y.shape)}."
                )
            if y.shape[1] != n_vars:
                raise ValueError(f"values[{b}] has {y.shape[1]} variables, values[0] has {n_vars}.")
            if len(t) < 2:
                raise ValueError(f"Trajectory {b} has {len(t)} time point(s); at least 2 are needed.")
            if not (t[1:] > t[:-1]).all():
                raise ValueError(f"times[{b}] must be strictly increasing.")

        def initial(arr: ArrayLike, name: str) -> torch.Tensor:
            t = _as_tensor(arr, dtype, name)
            if t.numel() != len(ys) * n_vars:
                raise ValueError(f"{name} must have shape ({len(ys)}, {n_vars}), got {tuple(t.shape)}.")
            return t.reshape(len(ys), n_vars)

        x0_t = torch.stack([y[0] for y in ys]) if x0 is None else initial(x0, "x0")
        v0_t = None if v0 is None else initial(v0, "v0")
        data = cls(ts, ys, x0_t, v0_t)
        return data if held is None else data.with_held(held)

    def with_held(self, held: ArrayLike) -> Trajectories:
        """Return a copy whose trajectories hold ``held``: ``(B, n_vars)`` booleans (none held: ``None``)."""
        held_a = np.asarray(held)
        if held_a.dtype != bool or held_a.shape != (len(self), self.n_vars):
            raise ValueError(
                f"held must be booleans of shape ({len(self)}, {self.n_vars}), got {held_a.dtype} {held_a.shape}."
            )
        return replace(self, held=torch.as_tensor(held_a, device=self.x0.device) if held_a.any() else None)

    @property
    def n_vars(self) -> int:
        """Number of observed variables."""
        return self.values[0].shape[1]

    def __len__(self) -> int:
        return len(self.values)

    def to(self, device: torch.device | str) -> Trajectories:
        """Copy to ``device``."""
        return Trajectories(
            [t.to(device) for t in self.times],
            [y.to(device) for y in self.values],
            self.x0.to(device),
            None if self.v0 is None else self.v0.to(device),
            None if self.held is None else self.held.to(device),
        )

    def padded_values(self, t_max: int) -> torch.Tensor:
        """Values padded with zeros to ``(B, t_max, n_vars)``."""
        out = self.values[0].new_zeros(len(self), t_max, self.n_vars)
        for b, y in enumerate(self.values):
            out[b, : len(y)] = y
        return out
