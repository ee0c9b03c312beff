"""Hard-concrete gates (Louizos, Welling & Kingma, 2018), one gate per weight.

A gate ``z`` in [0, 1] multiplies one weight. During training ``z`` is a reparametrised sample
of the hard-concrete distribution; at evaluation it is a deterministic value that is exactly
zero when ``log_alpha`` is small enough, which is where exact zeros in a trained model come from.
"""

from __future__ import annotations

import math

import torch

BETA = 2.0 / 3.0
"""Temperature of the concrete distribution."""
GAMMA = -0.1
"""Lower end of the stretched interval."""
ZETA = 1.1
"""Upper end of the stretched interval."""

_EPS = 1e-6


def sample(log_alpha: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one training sample of each gate.

    ``u ~ U(0, 1)``, ``s = sigmoid((log u - log(1 - u) + log_alpha) / beta)``,
    ``z = clamp(s (zeta - gamma) + gamma, 0, 1)``.

    Parameters
    ----------
    log_alpha
        Gate locations, any shape.
    generator
        Random generator used for ``u`` (for repeatable runs).

    Returns
    -------
    Gate values of the shape of ``log_alpha``, differentiable in ``log_alpha``.
    """
    u = torch.rand(log_alpha.shape, generator=generator, device=log_alpha.device, dtype=log_alpha.dtype)
    return _Sample.apply(log_alpha, u)


class _Sample(torch.autograd.Function):
    """:func:`sample`'s arithmetic in place, with its derivative written out.

    Autograd would keep and revisit about ten intermediate tensors of the gates' shape; with 2.2 M
    gates (a per-gene first layer at 529 genes) those passes cost more than the network's products.
    ``dz / dlog_alpha = (zeta - gamma) s (1 - s) / beta`` where the clamp is inactive, else 0.
    """

    @staticmethod
    def forward(ctx, log_alpha: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        s = torch.logit(u, eps=_EPS).add_(log_alpha).div_(BETA).sigmoid_()
        ctx.save_for_backward(s)
        return s.mul(ZETA - GAMMA).add_(GAMMA).clamp_(0.0, 1.0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (s,) = ctx.saved_tensors
        inside = (s >= -GAMMA / (ZETA - GAMMA)) & (s <= (1.0 - GAMMA) / (ZETA - GAMMA))
        return (1.0 - s).mul_(s).mul_((ZETA - GAMMA) / BETA).mul_(grad).mul_(inside), None


def deterministic(log_alpha: torch.Tensor) -> torch.Tensor:
    """Return the evaluation value of each gate: ``clamp(sigmoid(log_alpha) (zeta - gamma) + gamma, 0, 1)``.

    Exactly zero where ``sigmoid(log_alpha) <= -gamma / (zeta - gamma)``.
    """
    return (torch.sigmoid(log_alpha) * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0)


def prob_nonzero(log_alpha: torch.Tensor) -> torch.Tensor:
    """Probability that a gate is not zero: ``sigmoid(log_alpha - beta log(-gamma / zeta))``."""
    return torch.sigmoid(log_alpha - BETA * math.log(-GAMMA / ZETA))


def log_alpha_for_keep_prob(keep_prob: float) -> float:
    """``log_alpha`` at which a gate is non-zero with probability ``keep_prob``."""
    if not 0.0 < keep_prob < 1.0:
        raise ValueError(f"keep_prob must lie in (0, 1), got {keep_prob}.")
    return math.log(keep_prob) - math.log1p(-keep_prob) + BETA * math.log(-GAMMA / ZETA)
