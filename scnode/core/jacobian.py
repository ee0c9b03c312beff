"""The field's Jacobian averaged over states: the signed strength of each dependence.

For an MLP field ``f(s) = W^{L+1} D_L(s) W^L ... D_1(s) W^1 s``-style chains (``D_l`` the activation's
derivatives at state ``s``), the Jacobian at ``s`` is ``W^{L+1} D_L W^L ... D_1 W^1``. Its mean over
states is linear in everything right of ``D_1``, so the chains are averaged at the first hidden layer
and multiplied by ``W^1`` once: the cost is ``states x outputs x width^2`` plus one product with the
first layer, never ``states x outputs x inputs``. The linear term (and LassoNet-inner's skip) add
their weights; the decay term, which is no regulation, is left out.

:func:`mean_abs_jacobian` averages the Jacobian's absolute values instead (each state's Jacobian is
formed, ``states x outputs x inputs`` in chunks): a dependence whose sign changes between states
does not cancel out.
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


def _first_layer_chains(field: MLP, x: torch.Tensor, x_self: torch.Tensor | None) -> torch.Tensor:
    """``d f / d h_1`` times ``D_1`` at each row of ``x``: ``(states, outputs, width_1)``.

    ``h_1`` is the first layer's pre-activation; multiplying the result by the first layer's weight
    gives the Jacobian with respect to the field's inputs.
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
    return g


def _check_states(system: ODESystem, states: torch.Tensor) -> None:
    if states.ndim != 2 or states.shape[-1] != system.n_vars * system.order or not len(states):
        raise ValueError(f"states must be (S, {system.n_vars * system.order}) with S >= 1, got {tuple(states.shape)}.")


def _jacobian(system: ODESystem, chain: torch.Tensor | None) -> torch.Tensor:
    """Return the Jacobian from first-layer chains ``(..., outputs, width_1)`` (``None``: no hidden layer).

    ``(..., n_vars, order * n_vars)``: the chain times the first layer's weight, plus the linear term
    (and LassoNet-inner's skip), placed at the inputs' columns, plus each output's own level (self
    inputs) on the diagonal.
    """
    field = system.field
    first = field.weights[0]
    if chain is None:  # no hidden layer: the field is linear
        jac = first.squeeze(1) if field.grouped else first
    else:  # grouped: (..., groups, 1, width) @ (groups, width, inputs); shared: (..., outputs, width) @ W^1
        jac = (chain.unsqueeze(-2) @ first).squeeze(-2) if field.grouped else chain @ first
    for extra in (system.linear_weight(), system.skip_weight() if system.skip_mode == "inner" else None):
        if extra is not None:
            jac = jac + extra
    jac = system.scatter_inputs(jac)
    if chain is not None and field.self_layer is not None:  # each output's own level: the diagonal
        jac = jac + torch.diag_embed((chain * field.self_weight.squeeze(-1)).sum(-1))
    return jac


def _chunks(system: ODESystem, states: torch.Tensor, chunk: int):
    """Yield the first-layer chains of ``chunk`` states at a time (``(states, outputs, width_1)``)."""
    field = system.field
    for part in states.split(chunk):
        own = None if field.self_layer is None else part[:, : system.n_vars]
        yield _first_layer_chains(field, system.field_input(part), own)


@torch.no_grad()
def mean_abs_jacobian(system: ODESystem, states: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """Mean over ``states`` of the field's Jacobian's absolute values, ``(n_vars, order * n_vars)``.

    As :func:`mean_jacobian` (deterministic gates, the decay term left out), but each state's
    Jacobian is formed and its entries' sizes averaged: a dependence that raises a rate at some
    states and lowers it at others keeps its size.
    """
    _check_states(system, states)
    system.prepare(sample=False)
    states = states.to(system.field.weights[0])
    if len(system.field.layers) == 1:  # a linear field's Jacobian is the same at every state
        return _jacobian(system, None).abs()
    return sum(_jacobian(system, chain).abs().sum(0) for chain in _chunks(system, states, chunk)) / len(states)


@torch.no_grad()
def mean_jacobian(system: ODESystem, states: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """Mean over ``states`` of the field's Jacobian, ``(n_vars, order * n_vars)`` (outputs x inputs).

    Deterministic gates; ``states`` has shape ``(S, order * n_vars)`` (positions, then velocities).
    Columns of variables that are not inputs of the field are zero. The decay term is left out.
    """
    _check_states(system, states)
    system.prepare(sample=False)
    states = states.to(system.field.weights[0])
    if len(system.field.layers) == 1:
        return _jacobian(system, None)
    return _jacobian(system, sum(chain.sum(0) for chain in _chunks(system, states, chunk)) / len(states))
