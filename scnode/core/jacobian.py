"""The field's Jacobian averaged over states: the signed strength of each dependence.

For an MLP field ``f(s) = W^{L+1} D_L(s) W^L ... D_1(s) W^1 s``-style chains (``D_l`` the activation's
derivatives at state ``s``), the Jacobian at ``s`` is ``W^{L+1} D_L W^L ... D_1 W^1``. Its mean over
states is linear in everything right of ``D_1``, so the chains are averaged at the first hidden layer
and multiplied by ``W^1`` once: the cost is ``states x outputs x width^2`` plus one product with the
first layer, never ``states x outputs x inputs``. The linear term (and LassoNet-inner's skip) add
their weights; the decay term, which is no regulation, is left out.
"""

from __future__ import annotations

import torch

from .fields import MLP, ODESystem


def _activation_slope(act: torch.nn.Module, pre: torch.Tensor) -> torch.Tensor:
    """Return the derivative of the elementwise activation at ``pre``."""
    with torch.enable_grad():
        a = pre.detach().requires_grad_(True)
        (slope,) = torch.autograd.grad(act(a).sum(), a)
    return slope


def _first_layer_chain_mean(field: MLP, x: torch.Tensor, x_self: torch.Tensor | None) -> torch.Tensor:
    """Mean over the rows of ``x`` of ``d f / d h_1`` times ``D_1``: ``(outputs, width_1)``.

    ``h_1`` is the first layer's pre-activation; multiplying the result by the first layer's weight
    gives the mean Jacobian with respect to the field's inputs.
    """
    weights, layers = field.weights, field.layers
    pres, h = [], x
    offset = field.self_term(x_self)
    for i, (layer, w) in enumerate(zip(layers, weights, strict=True)):
        h = layer.linear(h, w)
        if i == 0 and offset is not None:
            h = h + offset
        if i < len(layers) - 1:
            pres.append(h)
            h = field.act(h)
    # backward from the output: g has shape (states, outputs, width of the current layer)
    n = x.shape[0]
    if field.grouped:
        g = weights[-1].squeeze(1).expand(n, -1, -1)  # (states, groups, width_L)
        for layer_pre, w in zip(reversed(pres[1:]), reversed(weights[1:-1]), strict=True):
            g = g * _activation_slope(field.act, layer_pre)
            g = (g.unsqueeze(-2) @ w).squeeze(-2)  # (states, groups, width_{l-1})
    else:
        g = weights[-1].expand(n, -1, -1)  # (states, outputs, width_L)
        for layer_pre, w in zip(reversed(pres[1:]), reversed(weights[1:-1]), strict=True):
            g = (g * _activation_slope(field.act, layer_pre).unsqueeze(1)) @ w
    slope = _activation_slope(field.act, pres[0]) if pres else None
    if slope is not None:
        g = g * (slope if field.grouped else slope.unsqueeze(1))
    return g.mean(0)


@torch.no_grad()
def mean_jacobian(system: ODESystem, states: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """Mean over ``states`` of the field's Jacobian, ``(n_vars, order * n_vars)`` (outputs x inputs).

    Deterministic gates; ``states`` has shape ``(S, order * n_vars)`` (positions, then velocities).
    Columns of variables that are not inputs of the field are zero. The decay term is left out.
    """
    if states.ndim != 2 or states.shape[-1] != system.n_vars * system.order or not len(states):
        raise ValueError(f"states must be (S, {system.n_vars * system.order}) with S >= 1, got {tuple(states.shape)}.")
    system.prepare(sample=False)
    field = system.field
    first = field.weights[0]
    states = states.to(first)
    inputs = system.field_input(states)
    own = None if field.self_layer is None else states[:, : system.n_vars]
    if len(field.layers) == 1:  # no hidden layer: the field is linear
        jac = first.squeeze(1) if field.grouped else first
    else:
        chain = sum(
            _first_layer_chain_mean(field, x, None if own is None else o[:, : system.n_vars]) * len(x)
            for x, o in zip(inputs.split(chunk), states.split(chunk), strict=True)
        ) / len(inputs)
        # grouped: (groups, 1, width) @ (groups, width, inputs); shared: (outputs, width) @ (width, inputs)
        jac = (chain.unsqueeze(1) @ first).squeeze(1) if field.grouped else chain @ first
    for extra in (system.linear_weight(), system.skip_weight() if system.skip_mode == "inner" else None):
        if extra is not None:
            jac = jac + extra
    jac = system.scatter_inputs(jac)
    if own is not None:  # each output's own level: the diagonal
        jac = jac + torch.diag_embed((chain * field.self_weight.squeeze(-1)).sum(-1))
    return jac
