"""Linear layers with one hard-concrete gate per weight and an optional group dimension.

A :class:`SparseLinear` holds ``weight`` of shape ``(out, in)``, or ``(groups, out, in)`` when it
is one layer of ``groups`` independent sub-networks evaluated in one batched tensor operation
(GroupLasso's per-output networks). Its *effective* weight is ``weight * mask * z``: ``mask`` is a
fixed 0/1 buffer (all ones unless a refit froze a sparsity pattern) and ``z`` are the gates
(ones for ungated layers).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from . import gates


class SparseLinear(nn.Module):
    """Affine layer ``y = (W * mask * z) x + b``.

    Parameters
    ----------
    n_in, n_out
        Input and output widths.
    groups
        ``None`` for an ordinary layer; an integer ``G`` for ``G`` independent layers stacked
        along a leading dimension (input ``(..., n_in)`` for the first layer of a grouped network,
        ``(..., G, n_in)`` otherwise; output ``(..., G, n_out)``).
    gated
        One hard-concrete gate per weight.
    bias
        Learn a bias.
    init_keep
        Initial probability that a gate is non-zero (gated layers only).
    first
        For grouped layers: this is the first layer, whose input ``(..., n_in)`` is shared by
        all groups.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        *,
        groups: int | None = None,
        gated: bool = False,
        bias: bool = True,
        init_keep: float = 0.999,
        first: bool = False,
    ) -> None:
        super().__init__()
        self.n_in, self.n_out, self.groups, self.first = n_in, n_out, groups, first
        shape = (n_out, n_in) if groups is None else (groups, n_out, n_in)
        bound = 1.0 / math.sqrt(n_in)
        self.weight = nn.Parameter(torch.empty(shape).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(shape[:-1]).uniform_(-bound, bound)) if bias else None
        if gated:
            self.log_alpha = nn.Parameter(torch.full(shape, gates.log_alpha_for_keep_prob(init_keep)))
        else:
            self.register_parameter("log_alpha", None)
        self.register_buffer("mask", torch.ones(shape))

    @property
    def gated(self) -> bool:
        """Whether the layer has gates."""
        return self.log_alpha is not None

    def gate_values(self, *, sample: bool, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """Gates for one forward solve: a training sample or the deterministic value."""
        if self.log_alpha is None:
            return None
        if sample:
            return gates.sample(self.log_alpha, generator)
        return gates.deterministic(self.log_alpha)

    def effective_weight(self, z: torch.Tensor | None) -> torch.Tensor:
        """``weight * mask * z`` (``z`` omitted for ungated layers)."""
        w = self.weight * self.mask
        return w if z is None else w * z

    def linear(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Apply the layer with the effective weight ``w``."""
        if self.groups is None:
            y = x @ w.T
        elif self.first:
            # all groups read the same input: one (..., n_in) x (n_in, groups * n_out) product
            # (an einsum here becomes a batched product per group, about twice as slow with its backward)
            y = (x @ w.reshape(-1, self.n_in).T).unflatten(-1, (self.groups, self.n_out))
        else:
            y = torch.einsum("...gi,goi->...go", x, w)
        return y if self.bias is None else y + self.bias
