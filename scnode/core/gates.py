"""Hard-concrete gates (Louizos, Welling & Kingma, 2018), one gate per weight.

A gate ``z`` in [0, 1] multiplies one weight. During training ``z`` is a reparametrised sample
of the hard-concrete distribution; at evaluation it is a deterministic value that is exactly
zero when ``log_alpha`` is small enough, which is where exact zeros in a trained model come from.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

BETA = 2.0 / 3.0
"""Temperature of the concrete distribution."""
GAMMA = -0.1
"""Lower end of the stretched interval."""
ZETA = 1.1
"""Upper end of the stretched interval."""

_EPS = 1e-6

_S_LOW = -GAMMA / (ZETA - GAMMA)
"""``s`` below which a gate is clamped at 0."""
_S_HIGH = (1.0 - GAMMA) / (ZETA - GAMMA)
"""``s`` above which a gate is clamped at 1."""


def _stretched(s: torch.Tensor) -> torch.Tensor:
    """Return the gates ``clamp(s (zeta - gamma) + gamma, 0, 1)`` of concrete samples ``s``, as a new tensor."""
    return s.mul(ZETA - GAMMA).add_(GAMMA).clamp_(0.0, 1.0)


def _stretch_(s: torch.Tensor) -> torch.Tensor:
    """:func:`_stretched` in place."""
    return s.mul_(ZETA - GAMMA).add_(GAMMA).clamp_(0.0, 1.0)


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
        return _stretched(s)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (s,) = ctx.saved_tensors
        inside = (s >= _S_LOW) & (s <= _S_HIGH)
        return (1.0 - s).mul_(s).mul_((ZETA - GAMMA) / BETA).mul_(grad).mul_(inside), None


def sample_gated_weight(
    weight: torch.Tensor,
    log_alpha: torch.Tensor,
    buffer: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Return ``weight * z`` for one training sample ``z`` of per-weight gates, without forming ``z``.

    The same samples and values as ``weight * sample(log_alpha, generator)`` (``u`` drawn into
    ``buffer``, then ``s`` computed there in place), in one autograd node that saves ``weight`` and
    ``s`` and writes only its output and, in its backward, the two gradients. With many gates (a
    per-gene first layer of 2000 genes with every gene an input has 32 M) each freshly allocated
    gate-shaped tensor costs more than the arithmetic on it: the kernel maps and zeroes its pages on
    first touch, about 50 ms against 14 ms for an in-place product of 128 MB (ad-hoc, benchmark
    machine), and the separate sample, product and their backward allocated seven.

    Parameters
    ----------
    weight
        The layer's weight (masked, if a mask applies).
    log_alpha
        Gate locations, the shape of ``weight``.
    buffer
        A tensor of that shape, overwritten with the gates' ``s``; it must stay untouched until the
        backward pass (autograd checks its version and raises if it was written to since).
    generator
        Random generator used for ``u``.
    """
    draw_concrete(buffer, log_alpha, generator)
    return _GatedWeight.apply(weight, log_alpha, buffer)


@torch.no_grad()
def draw_concrete(buffer: torch.Tensor, log_alpha: torch.Tensor, generator: torch.Generator | None = None) -> None:
    """Overwrite ``buffer`` with one training sample's ``s = sigmoid((log u - log(1 - u) + log_alpha) / beta)``.

    The gates of that sample are ``clamp(s (zeta - gamma) + gamma, 0, 1)`` (:func:`gated_weight`).
    """
    buffer.uniform_(generator=generator)
    buffer.logit_(_EPS).add_(log_alpha).div_(BETA).sigmoid_()


REDRAW_BLOCK = 1 << 18
"""Entries per block of rows where gate-shaped work goes block by block (:func:`row_blocks`): a redrawn
sample (:func:`gated_weight_drawn`), the gates' probability sums, a large layer's path product."""


def row_blocks(shape: torch.Size) -> Iterator[slice]:
    """Slices of the first dimension of a tensor of ``shape``, about :data:`REDRAW_BLOCK` entries each."""
    per_row = math.prod(shape[1:])
    step = max(1, REDRAW_BLOCK // max(per_row, 1))
    for start in range(0, shape[0], step):
        yield slice(start, start + step)


def _generator(generator: torch.Generator | None, device: torch.device) -> torch.Generator:
    if generator is not None:
        return generator
    if device.type == "cpu":
        return torch.default_generator
    return torch.cuda.default_generators[torch.cuda.current_device() if device.index is None else device.index]


def gated_weight_drawn(
    weight: torch.Tensor, log_alpha: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``weight * z`` for one training sample of per-weight gates, without keeping the sample.

    The concrete samples ``s`` (:func:`draw_concrete`) are drawn block by block of rows straight
    into the output, which then holds ``weight * z``. Returns it and the generator's state before the
    draw, from which :func:`redrawn_gated_weight_backward_` draws the same ``s`` again, in the same
    blocks: the same values as a kept sample, without a gate-shaped buffer, for one more draw in the
    backward pass. No autograd.
    """
    gen = _generator(generator, log_alpha.device)
    state = gen.get_state()
    out = torch.empty_like(weight)
    for rows in row_blocks(log_alpha.shape):
        block = out[rows]
        draw_concrete(block, log_alpha[rows], gen)
        _stretch_(block).mul_(weight[rows])
    return out, state


def redrawn_gated_weight_backward_(
    grad: torch.Tensor,
    weight: torch.Tensor,
    log_alpha: torch.Tensor,
    state: torch.Tensor,
    *,
    need_weight: bool = True,
    need_log_alpha: bool = True,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """:func:`gated_weight_backward_` for a sample of :func:`gated_weight_drawn`, drawn again from ``state``.

    The ``log_alpha`` gradient is written over ``grad``, as there.
    """
    gen = torch.Generator(device=log_alpha.device)
    gen.set_state(state)
    grad_weight = torch.empty_like(weight) if need_weight else None
    blocks = list(row_blocks(log_alpha.shape))
    buffer = torch.empty_like(log_alpha[blocks[0]])  # one block's samples, reused: no allocation per block
    for rows in blocks:
        la = log_alpha[rows]
        s = buffer[: la.shape[0]]
        draw_concrete(s, la, gen)
        gated_weight_backward_(
            grad[rows],
            weight[rows],
            s,
            need_weight=need_weight,
            need_log_alpha=need_log_alpha,
            out=None if grad_weight is None else grad_weight[rows],
        )
    return grad_weight, grad if need_log_alpha else None


@torch.no_grad()
def prob_nonzero_sums(log_alpha: torch.Tensor) -> torch.Tensor:
    """``prob_nonzero(log_alpha).sum(-1, keepdim=True)``, block by block of rows; no autograd.

    What PathReg's penalty needs of a grouped first layer's gates, without a gate-shaped tensor.
    """
    out = log_alpha.new_empty((*log_alpha.shape[:-1], 1))
    for rows in row_blocks(log_alpha.shape):
        out[rows] = prob_nonzero(log_alpha[rows]).sum(-1, keepdim=True)
    return out


@torch.no_grad()
def add_prob_nonzero_sums_backward_(into: torch.Tensor, log_alpha: torch.Tensor, grad_sums: torch.Tensor) -> None:
    """Add the ``log_alpha`` gradient of :func:`prob_nonzero_sums` for ``grad_sums`` to ``into``, in place.

    Block by block of rows, by autograd's arithmetic for a sigmoid (the values of :func:`prob_nonzero`'s
    gradient summed the same way).
    """
    for rows in row_blocks(log_alpha.shape):
        p = prob_nonzero(log_alpha[rows])
        into[rows].add_(torch.ops.aten.sigmoid_backward.grad_input(grad_sums[rows].expand_as(p), p, grad_input=p))


def gated_weight(weight: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``weight * z`` for the gates ``z`` of concrete samples ``s`` (:func:`draw_concrete`); no autograd."""
    return _stretched(s).mul_(weight)


def gated_weight_backward_(
    grad: torch.Tensor,
    weight: torch.Tensor,
    s: torch.Tensor,
    *,
    need_weight: bool = True,
    need_log_alpha: bool = True,
    out: torch.Tensor | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Gradients of :func:`gated_weight` for the weight and ``log_alpha``, given ``grad`` of its output.

    The ``log_alpha`` gradient is written over ``grad`` (returned in its place): pass a gradient that
    nothing else holds. The weight's gradient is the only new gate-shaped tensor, or is written into
    ``out`` (e.g. a block of rows of a larger gradient).
    """
    grad_weight = grad_log_alpha = None
    if need_weight:
        grad_weight = _stretched(s) if out is None else torch.mul(s, ZETA - GAMMA, out=out).add_(GAMMA).clamp_(0, 1)
        grad_weight.mul_(grad)
    if need_log_alpha:
        grad_log_alpha = _times_dz_dlog_alpha_(grad.mul_(weight), s)
    return grad_weight, grad_log_alpha


def _times_dz_dlog_alpha_(t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``t`` times ``dz / dlog_alpha = (zeta - gamma) s (1 - s) / beta`` (0 where the clamp is active), in place."""
    t.mul_(s)
    t.addcmul_(t, s, value=-1.0).mul_((ZETA - GAMMA) / BETA)  # times s (1 - s)
    return torch.ops.aten.hardtanh_backward.grad_input(t, s, _S_LOW, _S_HIGH, grad_input=t)


class _GatedWeight(torch.autograd.Function):
    """``weight * clamp(s (zeta - gamma) + gamma, 0, 1)`` for the ``s`` of :func:`sample_gated_weight`.

    Gradients: ``g z`` for the weight; ``g weight (zeta - gamma) s (1 - s) / beta`` for
    ``log_alpha`` where the clamp is inactive (``_S_LOW < s < _S_HIGH``), else 0.
    """

    @staticmethod
    def forward(ctx, weight: torch.Tensor, log_alpha: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(weight, s)
        return gated_weight(weight, s)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        weight, s = ctx.saved_tensors
        grad_weight = grad_log_alpha = None
        if ctx.needs_input_grad[1]:
            grad_log_alpha = _times_dz_dlog_alpha_(grad.mul(weight), s)
        if ctx.needs_input_grad[0]:
            grad_weight = _stretched(s).mul_(grad)
        return grad_weight, grad_log_alpha, None


def deterministic(log_alpha: torch.Tensor) -> torch.Tensor:
    """Return the evaluation value of each gate: ``clamp(sigmoid(log_alpha) (zeta - gamma) + gamma, 0, 1)``.

    Exactly zero where ``sigmoid(log_alpha) <= -gamma / (zeta - gamma)``.
    """
    if torch.is_grad_enabled() and log_alpha.requires_grad:
        return (torch.sigmoid(log_alpha) * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0)
    return _stretch_(torch.sigmoid(log_alpha))  # the same values in place: one gate-shaped tensor, not two


_LOG_RATIO = BETA * math.log(-GAMMA / ZETA)


def prob_nonzero(log_alpha: torch.Tensor) -> torch.Tensor:
    """Probability that a gate is not zero: ``sigmoid(log_alpha - beta log(-gamma / zeta))``.

    Differentiable in ``log_alpha`` through one node that saves nothing of the gates' shape (the
    probabilities are computed again in its backward, in the memory of the gradient it returns).
    """
    if torch.is_grad_enabled() and log_alpha.requires_grad:
        return _ProbNonzero.apply(log_alpha)
    return (log_alpha - _LOG_RATIO).sigmoid_()  # in place: one gate-shaped tensor, not two


class _ProbNonzero(torch.autograd.Function):
    """:func:`prob_nonzero` whose backward recomputes ``p`` instead of keeping it.

    A penalty sums the probabilities right away, so they are freed after the forward pass; saved,
    they and the gradient formed from them were two gate-shaped tensors at a training step's memory
    peak (122 MB each at 2000 genes with every gene an input). ``dp / dlog_alpha = p (1 - p)``, by
    the kernel autograd uses for a sigmoid (the same values).
    """

    @staticmethod
    def forward(ctx, log_alpha: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(log_alpha)
        return (log_alpha - _LOG_RATIO).sigmoid_()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (log_alpha,) = ctx.saved_tensors
        p = (log_alpha - _LOG_RATIO).sigmoid_()
        return torch.ops.aten.sigmoid_backward.grad_input(grad, p, grad_input=p)  # autograd's arithmetic, in place


def log_alpha_for_keep_prob(keep_prob: float) -> float:
    """``log_alpha`` at which a gate is non-zero with probability ``keep_prob``."""
    if not 0.0 < keep_prob < 1.0:
        raise ValueError(f"keep_prob must lie in (0, 1), got {keep_prob}.")
    return math.log(keep_prob) - math.log1p(-keep_prob) + BETA * math.log(-GAMMA / ZETA)
