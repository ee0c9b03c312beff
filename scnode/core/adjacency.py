"""Adjacency of a trained field and the two sparsity measures of the paper."""

from __future__ import annotations

import torch

from .fields import ODESystem

ZERO_TOL = 1e-5
"""Entries with absolute value below this count as zero."""


@torch.no_grad()
def adjacency(system: ODESystem) -> torch.Tensor:
    """Input -> output dependency scores, ``(n_vars, order * n_vars)`` (outputs x inputs).

    Evaluated with deterministic gates; see :meth:`ODESystem.adjacency`.
    """
    system.prepare(sample=False)
    return system.adjacency().detach()


def feature_sparsity(adj: torch.Tensor, tol: float = ZERO_TOL) -> float:
    """Share of adjacency entries with ``|A| < tol``."""
    return float((adj.abs() < tol).float().mean())


@torch.no_grad()
def weight_sparsity(system: ODESystem, tol: float = ZERO_TOL) -> float:
    """Share of effective weights of the field (and LassoNet skip) with ``|w| < tol``."""
    system.prepare(sample=False)
    ws = torch.cat([w.flatten() for w in system.field_weights()])
    return float((ws.abs() < tol).float().mean())
