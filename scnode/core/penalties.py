"""The seven methods in one registry: model flags, penalty term and proximal step.

Every penalty is normalised so that one ``lam`` means roughly the same across problem sizes:

* ``l0``: the mean of ``P(z != 0)`` over all gates of the field;
* ``cnode``: the mean entry of ``|W^{L+1}| ... |W^1|`` divided by the number of paths through
  the hidden units (so it is the mean over (output, input, path) of the path's weight product);
* ``pathreg``: the same mean for the gate-probability product ``G^{L+1} ... G^1`` (``lam``) plus the
  one for ``|W^{L+1} z| ... |W^1 z|`` (``lam1``);
* ``lassonet_inner`` / ``lassonet_outer``: the mean over inputs ``k`` of ``||S[:, k]||_2``
  (LassoNet's multi-output penalty, for which its hierarchical proximal operator is exact);
* ``grouplasso``: the mean over (output ``i``, input ``k``) of ``||W^1_i[:, k]||_2``.

With the field's linear term (``linear=True``) each (output, input) pair has one more path, the
linear weight itself: L0 counts its gates with the others, C-NODE and PathReg add it to the path sum
and divide by ``n_paths + 1``.

With per-pair penalty factors (``ODESystem.pair_weight``, from a prior network; per-output fields
only) each (output, input) pair's terms are multiplied by its factor: the first layer's gate
probabilities or weights of that pair and its linear-term weight (L0, C-NODE, PathReg), its group
norm and prox threshold (GroupLasso). The means stay over all pairs, so factors of one leave the
penalty unchanged.

The last two are applied by their proximal steps after each optimiser step (with threshold
``lr * lam / n_groups``); their penalty value is reported, not differentiated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from . import gates
from .fields import ODESystem
from .layers import SparseLinear

PenaltyFn = Callable[..., torch.Tensor]
ProxFn = Callable[..., None]


def _normalised_path_mean(
    system: ODESystem,
    matrices: list[torch.Tensor],
    linear: torch.Tensor | None = None,
    self_matrix: torch.Tensor | None = None,
    *,
    first_summed: bool = False,
) -> torch.Tensor:
    """Mean over (output, input, path) of the path products; ``linear`` is the linear term's path.

    ``self_matrix``: the self inputs' first-layer matrix (fields with ``self_inputs``), one more input
    per output. ``first_summed``: the first matrix is given summed over its inputs (see
    :meth:`MLP.path_mean`).
    """
    field = system.field
    total, n = field.path_mean(matrices, self_matrix, first_summed=first_summed), field.n_paths
    if linear is not None:
        total, n = total + linear.mean(), n + 1
    return total / n


def _weighted_first(system: ODESystem, first: torch.Tensor) -> torch.Tensor:
    """``first`` (a grouped first layer ``(outputs, width, inputs)``) times each pair's penalty factor."""
    pw = system.pair_weight
    return first if pw is None else first * pw.unsqueeze(1)


def _weighted_pairs(system: ODESystem, pairs: torch.Tensor | None) -> torch.Tensor | None:
    """``pairs`` (``(outputs, inputs)``, e.g. the linear term) times each pair's penalty factor."""
    pw = system.pair_weight
    return pairs if pw is None or pairs is None else pairs * pw


def _linear_abs(system: ODESystem) -> torch.Tensor | None:
    w = system.linear_weight()
    return None if w is None else _weighted_pairs(system, w.abs())


def _abs_weights(system: ODESystem) -> list[torch.Tensor]:
    ws = [w.abs() for w in system.field.weights]
    return [_weighted_first(system, ws[0]), *ws[1:]]


def _self_abs(system: ODESystem) -> torch.Tensor | None:
    w = system.field.self_weight
    return None if w is None else w.abs()


def l0_penalty(system: ODESystem, *, lam: float, **_: float) -> torch.Tensor:
    """``lam`` times the mean probability that a gate of the field is non-zero (over the gated layers)."""
    probs = []
    for k, layer in enumerate(system.sparse_layers()):
        if layer.gated:
            p = gates.prob_nonzero(layer.log_alpha)
            if k == 0:
                p = _weighted_first(system, p)
            elif layer is system.linear:
                p = _weighted_pairs(system, p)
            probs.append(p.flatten())
    return lam * torch.cat(probs).mean()


def cnode_penalty(system: ODESystem, *, lam: float, **_: float) -> torch.Tensor:
    """``lam`` times the normalised mean of ``|W^{L+1}| ... |W^1|``."""
    return lam * _normalised_path_mean(system, _abs_weights(system), _linear_abs(system), _self_abs(system))


def _probabilities(layer: SparseLinear) -> torch.Tensor:
    """Each gate's probability of being non-zero (zero where the mask is), or the mask of an ungated layer."""
    if layer.gated:
        return layer.masked(gates.prob_nonzero(layer.log_alpha))
    return layer.mask.to(layer.weight.dtype)


def pathreg_penalty(system: ODESystem, *, lam: float, lam1: float = 0.0, **_: float) -> torch.Tensor:
    """PathReg (eq. 11-12): gate-probability path product plus the gated weight path product.

    A layer without gates (``gates="inputs"``) enters the path product with probability one per
    weight (zero where a refit's mask froze it).
    """
    field = system.field
    # a training sample of per-weight gates comes with the first layer's probabilities summed over the
    # inputs (no gate-shaped tensor); a prior's pair factors weigh each input, so they need the whole
    sums = field.first_prob_sums if system.pair_weight is None else None
    first = sums if sums is not None else _weighted_first(system, _probabilities(field.layers[0]))
    probs = [first, *(_probabilities(layer) for layer in field.layers[1:])]
    lin = system.linear
    lin_prob = None if lin is None else _weighted_pairs(system, lin.masked(gates.prob_nonzero(lin.log_alpha)))
    own = field.self_layer
    own_prob = None if own is None else _probabilities(own)
    value = lam * _normalised_path_mean(system, probs, lin_prob, own_prob, first_summed=sums is not None)
    if lam1:
        value = value + lam1 * _normalised_path_mean(
            system, _abs_weights(system), _linear_abs(system), _self_abs(system)
        )
    return value


def lassonet_penalty(system: ODESystem, *, lam: float, **_: float) -> torch.Tensor:
    """``lam`` times the mean over inputs of the norm of the skip weights leaving that input."""
    return lam * system.skip_weight().norm(dim=0).mean()


def group_norms(weight: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
    """Norms ``||weight[i, :, k]||_2`` of a grouped first layer ``(groups, hidden, inputs)``.

    Squares added one hidden row at a time, not ``Tensor.norm(dim=1)``: on the CPU the latter reduces
    this middle dimension about 25x slower (19 ms at 529 groups x 8 x 529), and
    ``(weight * weight).sum(1)`` first writes every square (1.7 ms against 0.7 ms in a GroupLasso
    fit; ad-hoc, benchmark machine). The gradient at an all-zero group is zero, as for the norm.
    """
    squares = weight[:, 0] * weight[:, 0]
    for j in range(1, weight.shape[1]):
        squares = squares.addcmul(weight[:, j], weight[:, j])
    if keepdim:
        squares = squares.unsqueeze(1)
    return squares.clamp_min(1e-30).sqrt()


def grouplasso_penalty(system: ODESystem, *, lam: float, **_: float) -> torch.Tensor:
    """``lam`` times the mean norm of the groups ``W^1_i[:, k]`` (output ``i``, input ``k``), last prepare's weights."""
    norms = _weighted_pairs(system, group_norms(system.field.weights[0]))
    own = system.field.self_weight
    if own is not None:  # each output's self input is one more group
        norms = torch.cat([norms, group_norms(own)], 1)
    return lam * norms.mean()


@torch.no_grad()
def hier_prox(skip: torch.Tensor, first: torch.Tensor, *, threshold: float, M: float) -> None:
    """LassoNet's hierarchical proximal operator, in place.

    For each input ``k`` it solves the proximal problem of ``threshold * ||skip[:, k]||_2`` under the
    constraint ``max_j |first[j, k]| <= M * ||skip[:, k]||_2`` (Lemhadri et al. 2021, Alg. 2).

    Parameters
    ----------
    skip
        Skip weights ``S^T``, shape ``(n_out, n_in)``; column ``k`` leaves input ``k``.
    first
        First-layer weights of the field, shape ``(hidden, n_in)``.
    threshold
        Soft-threshold applied to the norm of each skip column.
    M
        Hierarchy multiplier.
    """
    v_norm = skip.norm(dim=0)  # (n_in,)
    u = first.abs().T  # (n_in, K)
    u_sorted, _ = u.sort(dim=1, descending=True)
    k = u.shape[1]
    zeros = torch.zeros_like(v_norm)[:, None]
    cums = torch.cat([zeros, u_sorted.cumsum(1)], 1)  # (n_in, K + 1), m = 0..K
    m = torch.arange(k + 1, dtype=skip.dtype, device=skip.device)
    w = M / (1 + m * M**2) * (v_norm[:, None] + M * cums - threshold).clamp_min(0)
    upper = torch.cat([torch.full_like(zeros, float("inf")), u_sorted], 1)
    lower = torch.cat([u_sorted, zeros], 1)
    ok = (lower <= w) & (w <= upper)
    idx = ok.to(torch.int8).argmax(1, keepdim=True)
    w_sel = w.gather(1, idx).squeeze(1)  # (n_in,)
    # A zero skip column has no direction; any unit direction attains the proximal optimum.
    direction = torch.where(v_norm > 0, skip / v_norm.clamp_min(1e-30), skip.new_full((), skip.shape[0] ** -0.5))
    skip.copy_(direction * (w_sel / M)[None, :])
    first.copy_(first.sign() * torch.minimum(first.abs(), w_sel[None, :]))


def lassonet_prox(system: ODESystem, *, step: float, lam: float, M: float = 10.0, **_: float) -> None:
    """Hier-prox on the skip and first-layer weights with threshold ``step * lam / n_inputs``."""
    skip = system.skip.weight
    hier_prox(skip.data, system.field.layers[0].weight.data, threshold=step * lam / skip.shape[1], M=M)
    system.skip.weight.data.mul_(system.skip.mask)


@torch.no_grad()
def group_soft_threshold(weight: torch.Tensor, threshold: float | torch.Tensor) -> None:
    """Shrink each group ``weight[i, :, k]`` towards zero by ``threshold`` in norm, in place.

    ``threshold``: one number, or one per group, ``(outputs, inputs)``.
    """
    norms = group_norms(weight, keepdim=True)
    if torch.is_tensor(threshold):
        threshold = threshold.unsqueeze(1)
    weight.mul_((1 - threshold / norms).clamp_min(0))


def grouplasso_prox(system: ODESystem, *, step: float, lam: float, **_: float) -> None:
    """Group soft-threshold of the first layer with threshold ``step * lam / n_groups`` (times each pair's factor)."""
    w = system.field.layers[0].weight.data
    own = system.field.self_layer
    threshold = step * lam / (w.shape[0] * (w.shape[2] + (own is not None)))
    pw = system.pair_weight
    group_soft_threshold(w, threshold if pw is None else threshold * pw)
    if own is not None:
        group_soft_threshold(own.weight.data, threshold)


@dataclass(frozen=True)
class Method:
    """One sparsity method: how its model is built and how it is penalised."""

    name: str
    description: str
    gated: bool = False
    grouped: bool = False
    skip: str | None = None
    penalty: PenaltyFn | None = None
    prox: ProxFn | None = None

    @property
    def uses_gradient_penalty(self) -> bool:
        """Whether the penalty is added to the loss (otherwise the proximal step applies it)."""
        return self.penalty is not None and self.prox is None


METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method("base", "unregularised neural ODE"),
        Method("l0", "L0 on every weight via hard-concrete gates", gated=True, penalty=l0_penalty),
        Method("cnode", "C-NODE: L1 of the |W| path product", penalty=cnode_penalty),
        Method("pathreg", "PathReg: gate-probability path product", gated=True, penalty=pathreg_penalty),
        Method(
            "lassonet_inner",
            "LassoNet with the skip inside the field",
            skip="inner",
            penalty=lassonet_penalty,
            prox=lassonet_prox,
        ),
        Method(
            "lassonet_outer",
            "LassoNet with the skip after the solver",
            skip="outer",
            penalty=lassonet_penalty,
            prox=lassonet_prox,
        ),
        Method(
            "grouplasso",
            "GroupLasso on the inputs of one sub-network per output",
            grouped=True,
            penalty=grouplasso_penalty,
            prox=grouplasso_prox,
        ),
    ]
}


def get_method(name: str) -> Method:
    """Look a method up by name, with a clear error for unknown names."""
    if name not in METHODS:
        raise ValueError(f"Unknown method {name!r}; choose one of {list(METHODS)}.")
    return METHODS[name]
