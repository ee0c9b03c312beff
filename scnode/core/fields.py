"""Vector fields: the MLP ``f_theta`` and the first- and second-order systems built on it.

All fields are autonomous (``f`` does not depend on ``t``), so trajectories that start at
different times can be shifted to start at zero and solved together in one batched call.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from .gates import row_blocks
from .layers import SparseLinear, WeightGradients, grouped_elu_network

DEFER_FIRST_LAYER_GRADIENT = True
"""Form the gradient of a grouped network's first layer once per backward pass, and its products
through :class:`WeightGradients` (oneDNN on the CPU for large layers), in training and prediction."""

FUSE_GROUPED_NETWORK = True
"""Evaluate grouped networks with one ELU hidden layer (GroupLasso's and ``per_output`` fields) in one
autograd node per evaluation (:func:`~scnode.core.layers.grouped_elu_network`)."""

PATH_BLOCKS_MIN = 1 << 24
"""Grouped first layers with at least this many weights take that product block by block (smaller ones
whole: batched products of other batch sizes may round differently, by up to about 1e-7 relative)."""

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
    "silu": nn.SiLU,
    "relu": nn.ReLU,
}


def _activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}.")
    return ACTIVATIONS[name]()


GATE_LAYERS = ("all", "inputs", "pairs")
"""Which layers of a gated field carry gates: every layer, the first (input) layer only with one gate
per weight, or the first layer only with one gate per (output, input) pair (per-output networks)."""

INITIAL_DECAY_RHO = -2.2521684610440906
"""``softplus(INITIAL_DECAY_RHO) = 0.1``: the initial decay rate of ``decay=True``."""


class MLP(nn.Module):
    """Fully connected network ``W^{L+1} sigma(... sigma(W^1 x + b^1) ...) + b^{L+1}``.

    Parameters
    ----------
    n_in, n_out
        Input and output dimension.
    hidden
        Hidden widths (``L`` entries; may be empty for a linear map).
    activation
        Name of the activation (``"elu"``, ``"tanh"``, ``"softplus"``, ``"silu"``, ``"relu"``).
    gated
        One hard-concrete gate per weight (L0, PathReg).
    gate_layers
        With ``gated``: ``"all"`` layers carry gates (the paper), or only the first one, whose weights
        are the ``"inputs"``, or only the first one with one gate per (output, input) ``"pairs"``
        shared by the output's hidden units (``grouped`` networks with a hidden layer; see
        :class:`scnode.SparseODE`'s ``gates``).
    grouped
        One sub-network per output, all evaluated as one batched tensor operation (GroupLasso).
    init_keep
        Initial probability that a gate is non-zero.
    self_inputs
        Grouped networks with a hidden layer: each output's sub-network also reads one input of its
        own (the output variable's own level, passed to :meth:`forward` as ``x_self``), through
        :attr:`self_layer`, one weight per first-layer unit (gated like the first layer). This is the
        autoregulation of a gene that is no regulator of others.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        hidden: Sequence[int] = (32, 32),
        *,
        activation: str = "elu",
        gated: bool = False,
        gate_layers: str = "all",
        grouped: bool = False,
        init_keep: float = 0.999,
        self_inputs: bool = False,
    ) -> None:
        super().__init__()
        if gate_layers not in GATE_LAYERS:
            raise ValueError(f"gates must be one of {GATE_LAYERS}, got {gate_layers!r}.")
        if self_inputs and not (grouped and hidden):
            raise ValueError("self_inputs needs grouped networks with at least one hidden layer.")
        pairs = gated and gate_layers == "pairs"
        if pairs and not (grouped and hidden):
            raise ValueError("gates='pairs' needs one network per output (per_output=True) with a hidden layer.")
        self.n_in, self.n_out, self.grouped = n_in, n_out, grouped
        widths = [n_in, *hidden, 1 if grouped else n_out]
        groups = n_out if grouped else None
        self.layers = nn.ModuleList(
            SparseLinear(
                a,
                b,
                groups=groups,
                gated=gated and (i == 0 or gate_layers == "all"),
                init_keep=init_keep,
                first=i == 0,
                shared_gates=pairs and i == 0,
            )
            for i, (a, b) in enumerate(itertools.pairwise(widths))
        )
        if self_inputs:  # one weight per (output, first-layer unit), read by the output's own level
            self.self_layer = SparseLinear(
                1, hidden[0], groups=n_out, gated=gated, bias=False, init_keep=init_keep, shared_gates=pairs
            )
            bound = 1.0 / math.sqrt(n_in + 1)
            nn.init.uniform_(self.self_layer.weight, -bound, bound)
        else:
            self.self_layer = None
        self._z_self: torch.Tensor | None = None
        self._w_self: torch.Tensor | None = None
        self.act = _activation(activation)
        self._z: list[torch.Tensor | None] | None = None
        self._w: list[torch.Tensor] | None = None
        self._deferred: WeightGradients | None = None
        self._first_flat: torch.Tensor | None = None
        self._first_prob_sums: torch.Tensor | None = None
        self._fused = False

    @property
    def gated(self) -> bool:
        """Whether the layers carry gates."""
        return self.layers[0].gated

    def prepare(self, *, sample: bool, generator: torch.Generator | None = None) -> None:
        """Fix the gates and effective weights used by the next forward passes (one solve)."""
        self.release()  # free the old ones before the new ones exist
        first, *rest = self.layers
        if self.grouped and DEFER_FIRST_LAYER_GRADIENT:  # also without gradients: its products use oneDNN
            self._deferred = WeightGradients()
            z, self._first_flat, self._first_prob_sums = first.prepared_first(
                self._deferred, sample=sample, generator=generator
            )
            prepared = [(z, self._first_flat.view(first.weight.shape))]
        else:
            prepared = [first.prepared(sample=sample, generator=generator)]
        prepared += [layer.prepared(sample=sample, generator=generator) for layer in rest]
        self._z, self._w = [z for z, _ in prepared], [w for _, w in prepared]
        if self.self_layer is not None:
            self._z_self, self._w_self = self.self_layer.prepared(sample=sample, generator=generator)
        self._fused = (
            FUSE_GROUPED_NETWORK
            and self._deferred is not None
            and len(self.layers) == 2
            and type(self.act) is nn.ELU
            and all(layer.bias is not None for layer in self.layers)
        )

    def release(self) -> None:
        """Drop the gates and effective weights of the last :meth:`prepare` (until the next one).

        A training step calls it once its loss is formed: autograd then frees each effective weight as
        soon as the last product that reads it has run its backward, not one step later. The packed
        copy of the first layer's weight (:class:`WeightGradients`) is dropped at once: only forward
        products read it.
        """
        if self._deferred is not None:
            self._deferred.backward_started()
        self._z = self._w = self._z_self = self._w_self = self._deferred = self._first_flat = None
        self._first_prob_sums = None

    @property
    def first_prob_sums(self) -> torch.Tensor | None:
        """First-layer gate probabilities summed over the inputs, ``(n_out, width, 1)``, or ``None``.

        Set by a :meth:`prepare` of a training sample of per-weight gates in grouped networks: what
        PathReg's penalty reads of that layer, without a gate-shaped tensor.
        """
        return self._first_prob_sums

    @property
    def gate_samples(self) -> list[torch.Tensor | None]:
        """Gates fixed by the last :meth:`prepare`.

        ``None`` for ungated layers, and for per-weight gates of a training sample, which are drawn
        straight into the effective weights (see :meth:`SparseLinear.prepared`).
        """
        if self._z is None:
            raise RuntimeError("Call prepare() before using the field.")
        return self._z

    @property
    def weights(self) -> list[torch.Tensor]:
        """Effective weights fixed by the last :meth:`prepare`."""
        if self._w is None:
            raise RuntimeError("Call prepare() before using the field.")
        return self._w

    @property
    def self_weight(self) -> torch.Tensor | None:
        """Effective self-input weights ``(n_out, width, 1)`` fixed by the last :meth:`prepare` (``None`` without)."""
        if self.self_layer is None:
            return None
        if self._w_self is None:
            raise RuntimeError("Call prepare() before using the field.")
        return self._w_self

    @property
    def self_gate_samples(self) -> torch.Tensor | None:
        """Gates of the self-input weights fixed by the last :meth:`prepare`."""
        return self._z_self

    def self_inputs(self, x_self: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Return the outputs' own levels and their effective weights ``(n_out, width, 1)``, or ``None`` without."""
        if self.self_layer is None:
            return None
        if x_self is None:
            raise ValueError("This field reads each output's own level: pass x_self.")
        return x_self, self.self_weight

    def self_term(self, x_self: torch.Tensor | None) -> torch.Tensor | None:
        """Return the self inputs' share of the first layer's pre-activation, ``(..., n_out, width)``."""
        own = self.self_inputs(x_self)
        return None if own is None else own[0].unsqueeze(-1) * own[1].squeeze(-1)

    def forward(self, x: torch.Tensor, x_self: torch.Tensor | None = None) -> torch.Tensor:
        """Evaluate the field on ``x`` of shape ``(..., n_in)`` (and the outputs' own levels ``(..., n_out)``)."""
        weights = self.weights
        if self._fused:
            first, out = self.layers
            x_self, w_self = self.self_inputs(x_self) or (None, None)
            return grouped_elu_network(
                x,
                self._first_flat,
                first.bias,
                weights[1],
                out.bias,
                self._deferred,
                self.act.alpha,
                x_self=x_self,
                w_self=w_self,
            )
        offset = self.self_term(x_self)
        h = x
        for i, (layer, w) in enumerate(zip(self.layers, weights, strict=True)):
            if i == 0 and self._deferred is not None:
                h = layer.linear(h, self._first_flat, self._deferred)
            else:
                h = layer.linear(h, w)
            if i == 0 and offset is not None:
                h = h + offset
            if i < len(weights) - 1:
                h = self.act(h)
        return h.squeeze(-1) if self.grouped else h

    def path_product(self, matrices: Sequence[torch.Tensor], *, absolute: bool = False) -> torch.Tensor:
        """``M^{L+1} ... M^1`` of per-layer matrices, as an ``(n_out, n_in)`` matrix.

        For grouped networks each output's own chain is multiplied (batched). ``absolute``: of the
        matrices' absolute values; for grouped first layers of :data:`PATH_BLOCKS_MIN` weights or more
        taken block by block of outputs, so that no absolute copy of the whole layer is formed (at 2000
        genes with every gene an input, 122 MB).
        """
        if not (absolute and self.grouped and matrices[0].numel() >= PATH_BLOCKS_MIN):
            out = matrices[0].abs() if absolute else matrices[0]
            for m in matrices[1:]:
                out = (m.abs() if absolute else m) @ out
            return out.squeeze(1) if self.grouped else out
        first = matrices[0]
        out = first.new_empty((first.shape[0], matrices[-1].shape[1], first.shape[-1]))
        for rows in row_blocks(first.shape):
            block = first[rows].abs()
            for m in matrices[1:]:
                block = m[rows].abs() @ block
            out[rows] = block
        return out.squeeze(1)

    def path_mean(
        self, matrices: Sequence[torch.Tensor], self_matrix: torch.Tensor | None = None, *, first_summed: bool = False
    ) -> torch.Tensor:
        """Mean entry of :meth:`path_product` without forming the ``(n_out, n_in)`` product.

        ``self_matrix`` (grouped networks with self inputs, ``(n_out, width, 1)``): the self inputs'
        first-layer matrix, one more input per output (the mean is then over ``n_out * (n_in + 1)``).
        ``first_summed`` (grouped networks): the first matrix is given summed over its inputs,
        ``(n_out, width, 1)`` (:attr:`first_prob_sums`).

        The matrices are non-negative in every use, and the sum of a product's entries is
        ``1^T M^{L+1} ... M^1 1``: multiplied vector by matrix, the cost is linear in the number of
        weights instead of ``n_out * n_in * width``. A shared network is multiplied from the output
        side; grouped networks from the input side, summing the first layer over its inputs before
        the batched products: from the output side the batched products of 529 one-row matrices
        with the first layer and their backward took about 9 ms per iteration at 529 genes x 8,
        against about 1 ms (ad-hoc, benchmark machine).
        """
        n = matrices[-1].shape[0] * (self.n_in + (self_matrix is not None))
        if self.grouped:
            # (groups, width, 1), or (groups, 1, 1) for gates shared by the width; given summed (first_summed)
            u = matrices[0] if first_summed else matrices[0].sum(-1, keepdim=True)
            if self_matrix is not None:
                u = u + self_matrix
            if len(matrices) > 1:
                u = u.expand(-1, matrices[1].shape[-1], -1)
            for m in matrices[1:]:
                u = m @ u
            return u.sum() / n
        v = matrices[-1].sum(0, keepdim=True)
        for m in reversed(matrices[:-1]):
            v = v @ m
        return v.sum() / n

    @property
    def n_paths(self) -> int:
        """Number of input-output paths through the hidden units per (output, input) pair."""
        n = 1
        for layer in self.layers[1:]:
            n *= layer.n_in
        return n


class Intervention:
    """Changes applied to a system while it is integrated.

    Parameters
    ----------
    hold
        ``{index: value}``: the variable is set to ``value`` at the start and held there
        (its rate, and for second-order systems its velocity, are zero).
    replace
        ``{index: fn}``: the variable's mechanism is replaced. ``fn(x, v)`` returns its new
        rate (first order; ``v`` is ``None``) or acceleration (second order) for states of shape
        ``(..., n_vars)``.
    mask
        ``(B, n_vars)`` booleans, one row per trajectory of a batched solve: the variables each
        trajectory holds at its own initial value (its rate, and velocity, zero). This is how
        perturbed cells are fitted: a knocked-out gene stays at its observed level in their
        trajectory and the others follow the shared field.
    """

    def __init__(
        self,
        hold: Mapping[int, float] | None = None,
        replace: Mapping[int, Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]] | None = None,
        mask: torch.Tensor | None = None,
    ) -> None:
        self.hold = dict(hold or {})
        self.replace = dict(replace or {})
        self.mask = mask
        overlap = set(self.hold) & set(self.replace)
        if overlap:
            raise ValueError(f"Variables {sorted(overlap)} are both held and replaced.")

    def check(self, n_vars: int) -> None:
        """Raise if an index is out of range."""
        for i in [*self.hold, *self.replace]:
            if not 0 <= int(i) < n_vars:
                raise ValueError(f"Intervention on variable {i}, but the system has {n_vars} variables.")
        if self.mask is not None and (self.mask.ndim != 2 or self.mask.shape[1] != n_vars):
            raise ValueError(f"The intervention's mask has shape {tuple(self.mask.shape)}; expected (B, {n_vars}).")

    def apply_initial(self, x0: torch.Tensor, v0: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Set held variables in the initial state (masked ones keep their own value and get velocity zero)."""
        if not self.hold and self.mask is None:
            return x0, v0
        x0 = x0.clone()
        v0 = None if v0 is None else v0.clone()
        for i, value in self.hold.items():
            x0[..., i] = value
            if v0 is not None:
                v0[..., i] = 0.0
        if v0 is not None and self.mask is not None:
            v0 = v0.masked_fill(self.mask, 0.0)
        return x0, v0

    def apply_rate(self, rate: torch.Tensor, x: torch.Tensor, v: torch.Tensor | None) -> torch.Tensor:
        """Rates (or accelerations) after the intervention."""
        if self.hold or self.replace:
            cols = list(rate.unbind(-1))
            for i in self.hold:
                cols[i] = torch.zeros_like(cols[i])
            for i, fn in self.replace.items():
                cols[i] = fn(x, v).to(rate)
            rate = torch.stack(cols, -1)
        return rate if self.mask is None else rate.masked_fill(self.mask, 0.0)


class ODESystem(nn.Module):
    """A first- or second-order system with the vector field ``f_theta``.

    First order: ``dx/dt = f(x) (+ S^T x for LassoNet-inner)``. Second order (SONODE): the state
    is ``(x, v)``, ``dx/dt = v``, ``dv/dt = f([x, v]) (+ S^T [x, v])``, and ``v(0)`` is given or
    predicted from ``x(0)`` by a small learned network. LassoNet-outer adds ``S^T s(t)`` to the
    solved positions, ``s(t)`` being the solved state (our reading of eq. 8 of the paper: a linear
    skip applied after the solver); held variables stay at their held values.

    With ``linear=True`` the field gets a linear term, ``f(s) = MLP(s) + L s``: one more
    input -> output path per pair, gated per weight like the MLP's layers when ``gated``. Far from
    the training states an MLP with few active units extrapolates along its activation's flat side;
    the linear term lets a sparse field keep the linear part of the dynamics there.

    With ``decay=True`` (first order) every variable also decays at its own learned rate,
    ``dx_i/dt = f_i(x) - gamma_i x_i`` with ``gamma_i = softplus(rho_i) > 0``: the degradation term
    of gene-regulatory ODE models (production regulated by other genes, first-order loss). It is
    not penalised and not part of :meth:`adjacency` (it is no regulation), so a sparse field
    that cuts a gene's own input still lets that gene relax back towards what its regulators
    produce.

    Parameters
    ----------
    n_vars
        Number of observed variables ``d``.
    order
        1 or 2.
    hidden, activation, gated, gate_layers, grouped, init_keep
        Passed to :class:`MLP` (the linear term is gated with ``gated``: its weights are inputs).
    skip
        ``None``, ``"inner"`` or ``"outer"`` (LassoNet).
    linear
        Add the linear term ``L s`` to the field (not with ``skip``).
    decay
        Add the per-variable decay ``-gamma * x`` (first order only).
    velocity_hidden
        Hidden widths of the initial-velocity network (second order).
    inputs
        Indices of the variables that may drive the field (regulators); the others are outputs only
        and the field builds no input weights for them (for order 2, their velocities are left out as
        well). ``None``: every variable.
    self_inputs
        With ``inputs`` and grouped networks (first order): each output's sub-network also reads
        the output's own level (autoregulation), so that a gene that regulates no other gene still
        sees itself; see :class:`MLP`. Outputs that are inputs already see themselves: their
        self-input weights are masked to zero.
    pair_weights
        Keep a ``(n_vars, n_inputs)`` buffer :attr:`pair_weight` of per-(output, input) penalty
        factors (ones until set; a prior network makes its edges cheaper). Per-output fields only
        (``grouped``): a shared hidden layer has no weight that belongs to one pair.
    """

    def __init__(
        self,
        n_vars: int,
        *,
        order: int = 1,
        hidden: Sequence[int] = (32, 32),
        activation: str = "elu",
        gated: bool = False,
        gate_layers: str = "all",
        grouped: bool = False,
        skip: str | None = None,
        linear: bool = False,
        decay: bool = False,
        init_keep: float = 0.999,
        velocity_hidden: Sequence[int] = (16,),
        inputs: Sequence[int] | None = None,
        self_inputs: bool = False,
        pair_weights: bool = False,
    ) -> None:
        super().__init__()
        if self_inputs and (inputs is None or order != 1):
            raise ValueError("self_inputs needs a list of inputs and a first-order system.")
        if order not in (1, 2):
            raise ValueError(f"order must be 1 or 2, got {order}.")
        if decay and order != 1:
            raise ValueError("decay=True is a first-order term (dx/dt = f(x) - gamma * x); use order=1.")
        if skip not in (None, "inner", "outer"):
            raise ValueError(f"skip must be None, 'inner' or 'outer', got {skip!r}.")
        if linear and skip is not None:
            raise ValueError("linear=True adds a linear term; LassoNet's skip already is one.")
        if pair_weights and not grouped:
            raise ValueError(
                "Per-pair penalty weights (a prior network) need one network per output (per_output=True): "
                "a shared hidden layer has no weight that belongs to one (output, input) pair."
            )
        self.n_vars, self.order, self.skip_mode = n_vars, order, skip
        if inputs is None:
            self.input_index = None
            self.n_in = n_vars * order
        else:
            regs = [int(i) for i in inputs]
            if not regs or len(set(regs)) != len(regs) or min(regs) < 0 or max(regs) >= n_vars:
                raise ValueError(f"inputs must be distinct indices in [0, {n_vars}), at least one; got {inputs}.")
            index = regs + ([n_vars + i for i in regs] if order == 2 else [])
            self.register_buffer("input_index", torch.as_tensor(index, dtype=torch.long))
            self.n_in = len(index)
        self.field = MLP(
            self.n_in,
            n_vars,
            hidden,
            activation=activation,
            gated=gated,
            gate_layers=gate_layers,
            grouped=grouped,
            init_keep=init_keep,
            self_inputs=self_inputs,
        )
        if self_inputs:  # inputs see themselves through their input column already
            self.field.self_layer.mask[self.input_index] = 0.0
        if skip is None:
            self.skip = None
        else:
            self.skip = SparseLinear(self.n_in, n_vars, bias=False)
            nn.init.zeros_(self.skip.weight)
        self.linear = SparseLinear(self.n_in, n_vars, gated=gated, bias=False, init_keep=init_keep) if linear else None
        self._linear_z: torch.Tensor | None = None
        self._linear_w: torch.Tensor | None = None
        # gamma = softplus(rho) starts at 0.1 (time scaled to [0, 1]: a slow loss the fit can raise)
        self.decay_rho = nn.Parameter(torch.full((n_vars,), INITIAL_DECAY_RHO)) if decay else None
        self.velocity = MLP(n_vars, n_vars, velocity_hidden, activation=activation) if order == 2 else None
        if pair_weights:
            self.register_buffer("pair_weight", torch.ones(n_vars, self.n_in))
        else:
            self.pair_weight = None
        self.intervention = Intervention()
        self.nfe = 0

    @contextmanager
    def intervene(self, intervention: Intervention | None) -> Iterator[None]:
        """Apply ``intervention`` to every solve inside the ``with`` block."""
        if intervention is None:
            yield
            return
        intervention.check(self.n_vars)
        previous, self.intervention = self.intervention, intervention
        try:
            yield
        finally:
            self.intervention = previous

    def prepare(self, *, sample: bool, generator: torch.Generator | None = None) -> None:
        """Fix gates and effective weights for the next solve."""
        self.field.prepare(sample=sample, generator=generator)
        if self.linear is not None:
            self._linear_z, self._linear_w = self.linear.prepared(sample=sample, generator=generator)
        if self.velocity is not None:
            self.velocity.prepare(sample=False)

    def release(self) -> None:
        """Drop what the last :meth:`prepare` fixed (see :meth:`MLP.release`); the next use prepares again."""
        self.field.release()
        self._linear_z = self._linear_w = None
        if self.velocity is not None:
            self.velocity.release()

    def decay_rates(self) -> torch.Tensor | None:
        """Return the decay rates ``gamma`` (``n_vars``,), or ``None`` without the decay term."""
        return None if self.decay_rho is None else nn.functional.softplus(self.decay_rho)

    def skip_weight(self) -> torch.Tensor | None:
        """Effective LassoNet skip matrix ``S^T`` as ``(n_vars, inputs)``, or ``None``."""
        return None if self.skip is None else self.skip.effective_weight(None)

    def linear_weight(self) -> torch.Tensor | None:
        """Effective weight of the linear term, ``(n_vars, inputs)``, fixed by the last :meth:`prepare`."""
        if self.linear is None:
            return None
        if self._linear_w is None:
            raise RuntimeError("Call prepare() before using the field.")
        return self._linear_w

    def sparse_layers(self) -> list[SparseLinear]:
        """Return the layers, self inputs and linear term of the field: what gates, penalties and refit act on."""
        own = [self.field.self_layer] if self.field.self_layer is not None else []
        return [*self.field.layers, *own, *([self.linear] if self.linear is not None else [])]

    def gate_samples(self) -> list[torch.Tensor | None]:
        """Gates of :meth:`sparse_layers` fixed by the last :meth:`prepare` (``None``: see :attr:`MLP.gate_samples`)."""
        own = [self.field.self_gate_samples] if self.field.self_layer is not None else []
        lin = [self._linear_z] if self.linear is not None else []
        return [*self.field.gate_samples, *own, *lin]

    def field_input(self, state: torch.Tensor) -> torch.Tensor:
        """Select the entries of ``state`` (``(..., order * n_vars)``) that drive the field: all, or the inputs'."""
        return state if self.input_index is None else state.index_select(-1, self.input_index)

    def forward(self, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """Right-hand side of the ODE for states of shape ``(..., order * n_vars)``."""
        self.nfe += 1
        d = self.n_vars
        x = state[..., :d]
        v = state[..., d:] if self.order == 2 else None
        inp = self.field_input(state)
        rate = self.field(inp, x if self.field.self_layer is not None else None)
        if self.skip_mode == "inner":
            rate = rate + inp @ self.skip_weight().T
        elif self.linear is not None:
            rate = rate + inp @ self.linear_weight().T
        if self.decay_rho is not None:
            rate = rate - self.decay_rates() * x
        rate = self.intervention.apply_rate(rate, x, v)
        if self.order == 1:
            return rate
        return torch.cat([v, rate], -1)

    def initial_state(self, x0: torch.Tensor, v0: torch.Tensor | None = None) -> torch.Tensor:
        """Full initial state: ``x0``, or ``[x0, v0]`` with ``v0`` predicted when not given."""
        if self.order == 1:
            x0, _ = self.intervention.apply_initial(x0, None)
            return x0
        if v0 is None:
            v0 = self.velocity(x0)
        x0, v0 = self.intervention.apply_initial(x0, v0)
        return torch.cat([x0, v0], -1)

    def readout(self, states: torch.Tensor) -> torch.Tensor:
        """Observed variables from solved states (positions, plus the outer skip)."""
        x = states[..., : self.n_vars]
        if self.skip_mode == "outer":
            x = x + self.field_input(states) @ self.skip_weight().T
            for i, value in self.intervention.hold.items():
                x[..., i] = value
        return x

    def field_weights(self) -> list[torch.Tensor]:
        """Effective weights of the field, its linear term and the skip (what weight sparsity counts)."""
        ws = list(self.field.weights)
        extra = [w for w in (self.field.self_weight, self.linear_weight(), self.skip_weight()) if w is not None]
        return [*ws, *extra]

    def adjacency(self) -> torch.Tensor:
        """Input -> output dependency scores of the field, ``(n_vars, order * n_vars)``.

        The product ``|W^{L+1}| ... |W^1|`` of effective weights (deterministic gates): zero
        exactly where no path with non-zero weights joins input ``j`` to output ``i``, in which
        case output ``i`` does not depend on input ``j``. LassoNet adds ``|S^T|``, the linear
        term ``|L|``. Columns of variables that are no :attr:`inputs` are zero.
        """
        weights = self.field.weights
        a = self.field.path_product(weights, absolute=True)
        for extra in (self.linear_weight(), self.skip_weight()):
            if extra is not None:
                a = a + extra.abs()
        a = self.scatter_inputs(a)
        if self.field.self_layer is not None:  # each output's own input: the diagonal
            own = self.field.path_product([self.field.self_weight, *weights[1:]], absolute=True).squeeze(-1)
            a = a + torch.diag_embed(own)
        return a

    def scatter_inputs(self, a: torch.Tensor) -> torch.Tensor:
        """Place ``(..., n_in)`` columns of the field's inputs into ``(..., order * n_vars)`` (zeros elsewhere)."""
        if self.input_index is None:
            return a
        full = a.new_zeros((*a.shape[:-1], self.n_vars * self.order))
        full[..., self.input_index] = a
        return full
