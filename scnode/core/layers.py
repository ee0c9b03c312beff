"""Linear layers with one hard-concrete gate per weight and an optional group dimension.

A :class:`SparseLinear` holds ``weight`` of shape ``(out, in)``, or ``(groups, out, in)`` when it
is one layer of ``groups`` independent sub-networks evaluated in one batched tensor operation
(GroupLasso's per-output networks). Its *effective* weight is ``weight * mask * z``: ``mask`` is a
fixed boolean buffer (all ones unless a refit froze a sparsity pattern) and ``z`` are the gates
(ones for ungated layers).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
from collections.abc import Iterator

import torch
from torch import nn

from . import gates

ONEDNN_MIN_WEIGHTS = 1 << 18
"""Grouped first layers with at least this many weights use oneDNN's products on the CPU (see
:class:`WeightGradients`). Below it packing the weight costs about what the products save with three
rows, and with one row (a single trajectory, as in motion capture) torch's BLAS is the faster (ad-hoc
measurements at 130-180 k weights on the benchmark machine, made when the weight was packed twice per
solve, once transposed)."""


REDRAW_MIN_GATES = 1 << 24
"""A grouped first layer with at least this many per-weight gates draws each training sample of them
again in the backward pass instead of keeping it (:func:`gates.gated_weight_drawn`): one gate-shaped
tensor less at every moment of a step, for one more draw per step."""


GRADIENT_PRECISIONS = ("float32", "bfloat16", "auto")
"""Precisions of the backward products of a large grouped first layer (:func:`gradient_precision`)."""

_GRADIENT_PRECISION: contextvars.ContextVar[str] = contextvars.ContextVar("gradient_precision", default="float32")


def check_gradient_precision(precision: str) -> str:
    """Return ``precision`` if it is one of :data:`GRADIENT_PRECISIONS`, else raise a ``ValueError`` naming them."""
    if precision not in GRADIENT_PRECISIONS:
        raise ValueError(f"gradient_precision must be one of {GRADIENT_PRECISIONS}, got {precision!r}.")
    return precision


@contextlib.contextmanager
def gradient_precision(precision: str) -> Iterator[None]:
    """Compute the backward products of large grouped first layers on the CPU in ``precision`` within the block.

    ``"float32"``: as the forward pass. ``"bfloat16"``: the products that carry the gradient back
    through a first layer that goes through oneDNN (:class:`WeightGradients`: the input's gradient
    at every evaluation and the weight's gradient once per solve) read their operands rounded to
    bfloat16 (8 bits of mantissa), sum in float32 and round their results to bfloat16: gradients
    within a few tenths of a percent of float32's. The forward pass, and so the loss and the
    solver's steps, stay float32. ``"auto"``: bfloat16 where the CPU multiplies bfloat16 in hardware
    (Intel AMX), float32 elsewhere. Smaller layers, and other devices, stay float32. A
    :class:`WeightGradients` reads the precision when its layer is prepared (:meth:`collect`), and
    its backward products keep it.
    """
    token = _GRADIENT_PRECISION.set(check_gradient_precision(precision))
    try:
        yield
    finally:
        _GRADIENT_PRECISION.reset(token)


@functools.cache
def cpu_multiplies_bfloat16() -> bool:
    """Whether this CPU has Intel AMX's bfloat16 tiles (``torch.cpu.get_capabilities()``)."""
    try:
        return bool(torch.cpu.get_capabilities().get("amx_bf16", False))
    except (AttributeError, RuntimeError):
        return False


def _bfloat16_gradients(onednn: bool) -> bool:
    precision = _GRADIENT_PRECISION.get()
    return onednn and (precision == "bfloat16" or (precision == "auto" and cpu_multiplies_bfloat16()))


@functools.cache
def _onednn_ops() -> bool:
    """Whether this torch has oneDNN's packed-weight linear (the op inductor uses) and it runs."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        w = torch.ones(2, 3)
        out = torch.ops.mkldnn._linear_pointwise(torch.ones(1, 3), _pack(w, 1), None, "none", [], "")
        return bool(torch.equal(out, torch.full((1, 2), 3.0)))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


def _pack(weight: torch.Tensor, rows: int) -> torch.Tensor:
    """``weight`` (``(out, in)``) in oneDNN's blocked layout for products with about ``rows`` rows.

    The layout chosen for one row makes products with several rows 2x slower; the one for two rows
    serves one row as fast (ad-hoc measurement at 529 genes, benchmark machine).
    """
    return torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), max(rows, 2))


def _onednn_available(weight: torch.Tensor) -> bool:
    return (
        weight.device.type == "cpu"
        and weight.dtype == torch.float32
        and weight.numel() >= ONEDNN_MIN_WEIGHTS
        and _onednn_ops()
    )


class WeightGradients:
    """Deferred gradient of one weight that many products share (every evaluation of a solve).

    Autograd gives each product ``x_e W^T`` its own weight gradient ``g_e^T x_e`` and adds them up:
    for a grouped first layer (2.2 M weights at 529 genes) that is three passes over the weight's
    memory per evaluation, and memory traffic, not arithmetic, is what such a layer costs. Instead,
    each product's backward stores its ``(x_e, g_e)`` here, and the weight's gradient is formed once,
    as one product of the stacked pairs, when autograd reaches the weight (:meth:`collect`, an
    identity whose backward runs after every product's). The gradient is the same sum.

    On the CPU, for large float32 weights, the products of a solve go through oneDNN's linear, the op
    ``torch.compile`` uses on the CPU: with a few rows ``x_e`` (one per trajectory) torch's default
    BLAS runs them far below memory speed (at 529 genes on the benchmark machine about 600 us against
    100 us per product; ``benchmarks/speed.py --sections kernels``). The forward products ``x_e W^T``
    read the weight packed into oneDNN's blocked layout once per solve; the backward products
    ``g_e W`` read ``W`` itself through its transposed view, which oneDNN takes as a weight stored
    input-major: the same sums as a packed transposed copy, slower per product at 529 genes (about
    30 us alone, 90 us inside a fit, where it competes with the packed copy for the caches) but
    without the copy and its packing (about 5 ms per solve; ~40 backward products per solve in a
    GroupLasso fit). The stacked weight gradient is one oneDNN product too.
    """

    def __init__(self) -> None:
        self.pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.onednn = False
        self.bfloat16 = False
        self._packed: torch.Tensor | None = None
        self._weight_bf16: torch.Tensor | None = None

    def _enable(self, weight: torch.Tensor) -> None:
        self.onednn = _onednn_available(weight)
        self.bfloat16 = _bfloat16_gradients(self.onednn)

    def collect(self, weight: torch.Tensor) -> torch.Tensor:
        """Return ``weight`` (``(rows, n_in)``) through the node that adds the stored gradients."""
        self._enable(weight)
        return _Collect.apply(weight, self)

    def collect_gated(
        self,
        weight: torch.Tensor,
        log_alpha: torch.Tensor,
        s: torch.Tensor | None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``weight * z`` as ``(rows, n_in)`` for one training sample of per-weight gates, and sums.

        The sums are the gates' probabilities of being non-zero summed over the inputs,
        ``(groups, n_out, 1)``: what PathReg's penalty reads of the layer
        (:func:`gates.prob_nonzero_sums`). Both come through one node that also applies the gates'
        backward (:class:`_GatedCollect`). ``s``: the sample's concrete values (drawn by
        :func:`gates.draw_concrete`), which must stay untouched until the backward pass; or ``None`` to
        draw the sample from ``generator`` here and draw it again in the backward pass instead of
        keeping it (:func:`gates.gated_weight_drawn`).
        """
        self._enable(weight)
        return _GatedCollect.apply(weight, log_alpha, s, self, generator)

    def matmul(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """``x @ weight.T`` whose weight gradient is stored here, for a ``weight`` from :meth:`collect`."""
        return _DeferredProduct.apply(x, weight, self)

    @torch.compiler.disable  # oneDNN's packed weights are opaque to torch.compile: run the products eagerly
    def product(self, x: torch.Tensor, weight: torch.Tensor, *, transpose: bool = False) -> torch.Tensor:
        """``x @ weight.T`` (``x @ weight`` with ``transpose``), no autograd; oneDNN where enabled."""
        if not self.onednn:
            return x @ weight if transpose else x @ weight.T
        flat = x.reshape(-1, x.shape[-1])
        if transpose and self.bfloat16:  # the weight rounded once per backward pass, read as below
            if self._weight_bf16 is None:
                self._weight_bf16 = weight.detach().to(torch.bfloat16)
            out = torch.ops.mkldnn._linear_pointwise(
                flat.to(torch.bfloat16), self._weight_bf16.T, None, "none", [], ""
            ).float()
            return out.reshape(*x.shape[:-1], out.shape[-1])
        if transpose:  # oneDNN reads the transposed view as a weight stored (in, out): no copy, no packing
            w = weight.detach().contiguous().T
        else:
            w = self._packed
            if w is None:  # once per solve: the weight is fixed until the next prepare
                w = self._packed = _pack(weight.detach(), flat.shape[0])
        out = torch.ops.mkldnn._linear_pointwise(flat.contiguous(), w, None, "none", [], "")
        return out.reshape(*x.shape[:-1], out.shape[-1])

    def backward_started(self) -> None:
        """Drop the packed weight: the backward products read the weight itself (a forward after it repacks)."""
        self._packed = None

    @torch.compiler.disable
    def gradient(self) -> torch.Tensor | None:
        """Return the weight gradient of the stored pairs, ``sum_e g_e^T x_e`` (``None`` if none), and clear them.

        With oneDNN one of the two stackings is transposed, whichever is smaller: with fewer inputs
        than stacked rows (a regulator list; a fit's 13-30 evaluations of 32 windows stack 400-1000
        rows) ``x^T`` as ``(n_in, n)`` and the result ``(n_in, out)`` are transposed, and the ``g_e``
        stacked as they are serve as a weight stored input-major; otherwise (every gene an input at
        2000 genes) the ``g_e`` are stacked straight into ``(out, n)`` and ``x^T`` packed as the weight.
        At 529 genes, 130 regulators and 608 rows 5.2-5.7 against 7.5-8.0 ms; at 2000 genes with every
        gene an input the transposed result would cost 370 against 240 ms (ad hoc, 2 CPU threads). The
        same sums either way.
        """
        pairs, self.pairs = self.pairs, []
        self._weight_bf16 = None
        if not pairs:
            return None
        if self.bfloat16 or not self.onednn:  # one product of the stacked pairs (bfloat16: rounded, summed in float32)
            dtype = torch.bfloat16 if self.bfloat16 else pairs[0][1].dtype
            g = torch.cat([b.reshape(-1, b.shape[-1]) for _, b in pairs]).to(dtype)
            x = torch.cat([a.reshape(-1, a.shape[-1]) for a, _ in pairs]).to(dtype)
            del pairs
            total = g.T @ x
            return total.float() if self.bfloat16 else total
        rows, n_in = sum(a.numel() // a.shape[-1] for a, _ in pairs), pairs[0][0].shape[-1]
        if n_in < rows:  # stack the g_e as they are (rows of g), transpose the smaller result
            x_t = torch.cat([a.reshape(-1, a.shape[-1]).T for a, _ in pairs], dim=1)
            g = torch.cat([b.reshape(-1, b.shape[-1]) for _, b in pairs])
            del pairs  # the stacked copies hold them now: freed before the result is allocated
            return torch.ops.mkldnn._linear_pointwise(x_t, g.T, None, "none", [], "").T.contiguous()
        x = torch.cat([a.reshape(-1, a.shape[-1]) for a, _ in pairs])
        g_t = torch.cat([b.reshape(-1, b.shape[-1]).T for _, b in pairs], dim=1)
        del pairs
        return torch.ops.mkldnn._linear_pointwise(g_t, _pack(x.T, g_t.shape[0]), None, "none", [], "")


class _Collect(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weight: torch.Tensor, grads: WeightGradients) -> torch.Tensor:
        ctx.grads = grads
        ctx.set_materialize_grads(False)
        return weight.view_as(weight)

    @staticmethod
    def backward(ctx, grad: torch.Tensor | None) -> tuple[torch.Tensor | None, None]:
        total = ctx.grads.gradient()
        if total is None:
            return grad, None
        return (total if grad is None else grad + total), None


class _GatedCollect(torch.autograd.Function):
    """:class:`_Collect` of a gated weight ``weight * z``, the gates' backward applied in the same node.

    The stored products' weight gradient is a fresh tensor of this node's own, so the gates' backward
    overwrites it with the ``log_alpha`` gradient (:func:`gates.gated_weight_backward_`) instead of
    taking a copy; the weight's gradient is the one new gate-shaped tensor. The node's second output,
    the gates' probability sums, brings the penalty's gradient here too, added block by block into the
    same tensor. With separate nodes the effective weight's gradient, the penalty's and the gates'
    ``log_alpha`` gradients and the weight's lived at once: at 2000 genes with every gene an input,
    122 MB each at the memory peak of a training step.
    """

    @staticmethod
    def forward(
        ctx,
        weight: torch.Tensor,
        log_alpha: torch.Tensor,
        s: torch.Tensor | None,
        grads: WeightGradients,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ctx.grads = grads
        ctx.set_materialize_grads(False)
        if s is None:  # drawn here, drawn again in the backward pass
            w, ctx.state = gates.gated_weight_drawn(weight, log_alpha, generator)
            ctx.save_for_backward(weight, log_alpha, None)
        else:
            w, ctx.state = gates.gated_weight(weight, s), None
            ctx.save_for_backward(weight, log_alpha, s)
        return w.view(-1, weight.shape[-1]), gates.prob_nonzero_sums(log_alpha)

    @staticmethod
    def backward(ctx, grad: torch.Tensor | None, grad_sums: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        weight, log_alpha, s = ctx.saved_tensors
        need_weight, need_log_alpha = ctx.needs_input_grad[:2]
        total = ctx.grads.gradient()  # a new tensor, this node's to overwrite
        if grad is not None:
            total = grad.clone() if total is None else total.add_(grad)
        g_w = g_la = None
        if total is not None:
            total = total.view_as(weight)
            need = {"need_weight": need_weight, "need_log_alpha": need_log_alpha}
            if ctx.state is None:
                g_w, g_la = gates.gated_weight_backward_(total, weight, s, **need)
            else:
                g_w, g_la = gates.redrawn_gated_weight_backward_(total, weight, log_alpha, ctx.state, **need)
        if grad_sums is not None and need_log_alpha:
            if g_la is None:
                g_la = torch.zeros_like(log_alpha)
            gates.add_prob_nonzero_sums_backward_(g_la, log_alpha, grad_sums)
        return g_w, g_la, None, None, None


class _DeferredProduct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, grads: WeightGradients) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.grads = grads
        return grads.product(x, weight)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        x, weight = ctx.saved_tensors
        ctx.grads.backward_started()
        ctx.grads.pairs.append((x, g))
        return (ctx.grads.product(g, weight, transpose=True) if ctx.needs_input_grad[0] else None), None, None


class _GroupedELUNetwork(torch.autograd.Function):
    """One evaluation of grouped one-hidden-layer networks, ``y_g = w2_g . elu(W1_g x + s_g x_g + b1_g) + b2_g``.

    The same arithmetic as the layers applied one by one, in one autograd node instead of about
    a dozen (bias, self inputs' term, activation, broadcast product, sum, bias and their views), with
    the first layer's weight gradient deferred to ``grads``. The values and gradients are the layers'
    sums, some of them added in another order or with one rounding less (float32). The sums over hidden
    units and over rows are batched products (``vecdot``, ``bmm``), not a broadcast product and a sum:
    at 529 genes and 32 rows about half the time of the two operations each (ad hoc, 2 CPU threads).
    """

    @staticmethod
    def forward(
        ctx,
        x: torch.Tensor,
        weight: torch.Tensor,
        b1: torch.Tensor,
        w2: torch.Tensor,
        b2: torch.Tensor,
        x_self: torch.Tensor | None,
        w_self: torch.Tensor | None,
        grads: WeightGradients,
        alpha: float,
    ) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        groups, width = w2.shape[0], w2.shape[-1]
        h = grads.product(flat, weight).view(-1, groups, width).add_(b1.view(groups, width))
        own = None
        if x_self is not None:
            own = x_self.reshape(-1, groups)
            h.addcmul_(own.unsqueeze(-1), w_self.view(groups, width))
        e = torch.nn.functional.elu(h.view(flat.shape[0], -1), alpha, inplace=True)
        y = torch.linalg.vecdot(e.view(-1, groups, width), w2.view(groups, width)) + b2.view(groups)
        ctx.save_for_backward(flat, weight, e, w2, own, w_self)
        ctx.grads, ctx.alpha = grads, alpha
        ctx.shapes = (x.shape, b1.shape, b2.shape, None if x_self is None else x_self.shape)
        return y.view(*x.shape[:-1], groups)

    @staticmethod
    def backward(ctx, gy: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        flat, weight, e, w2, own, w_self = ctx.saved_tensors
        ctx.grads.backward_started()
        x_shape, b1_shape, b2_shape, self_shape = ctx.shapes
        groups, width = w2.shape[0], w2.shape[-1]
        gy = gy.reshape(-1, groups, 1)
        need = ctx.needs_input_grad
        by_group = e.view(-1, groups, width).transpose(0, 1)  # (groups, rows, width)
        g_w2 = torch.bmm(gy.permute(1, 2, 0), by_group).view_as(w2) if need[3] else None
        g_b2 = gy.sum(0).view(b2_shape) if need[4] else None
        ge = (gy * w2.view(groups, width)).view(-1, groups * width)
        ga = torch.ops.aten.elu_backward(ge, ctx.alpha, 1, 1, True, e)
        g_b1 = ga.sum(0).view(b1_shape) if need[2] else None
        g_own = g_w_self = None
        if own is not None:
            ga_groups = ga.view(-1, groups, width)
            if need[5]:
                g_own = torch.linalg.vecdot(ga_groups, w_self.view(groups, width)).view(self_shape)
            if need[6]:
                g_w_self = torch.bmm(own.T.unsqueeze(1), ga_groups.transpose(0, 1)).view_as(w_self)
        if need[1]:
            ctx.grads.pairs.append((flat, ga))
        g_x = ctx.grads.product(ga, weight, transpose=True).view(x_shape) if need[0] else None
        return g_x, None, g_b1, g_w2, g_b2, g_own, g_w_self, None, None


def grouped_elu_network(
    x: torch.Tensor,
    weight: torch.Tensor,
    b1: torch.Tensor,
    w2: torch.Tensor,
    b2: torch.Tensor,
    grads: WeightGradients,
    alpha: float = 1.0,
    *,
    x_self: torch.Tensor | None = None,
    w_self: torch.Tensor | None = None,
) -> torch.Tensor:
    """Evaluate grouped one-hidden-layer ELU networks in one autograd node (see :class:`_GroupedELUNetwork`).

    ``weight`` is the first layer's ``(groups * width, n_in)`` weight from ``grads.collect``, ``b1``
    its ``(groups, width)`` bias, ``w2`` ``(groups, 1, width)`` and ``b2`` ``(groups, 1)`` the
    output layer's; ``x_self`` (``(..., groups)``, each group's own input) with ``w_self`` (``groups *
    width`` weights, e.g. ``(groups, width, 1)``) adds ``w_self[g] * x_self[..., g]`` to group ``g``'s
    first layer. Returns ``(..., groups)`` for ``x`` of shape ``(..., n_in)``.
    """
    if (x_self is None) != (w_self is None):
        raise ValueError("Pass both x_self and w_self, or neither.")
    return _GroupedELUNetwork.apply(x, weight, b1, w2, b2, x_self, w_self, grads, alpha)


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
    shared_gates
        With ``gated``: one gate per row of inputs instead of per weight, shared by the layer's
        ``n_out`` units (grouped layers only): the gates have shape ``(groups, 1, n_in)`` and a
        closed gate cuts input ``k`` from group ``g``'s whole sub-network. Sampling, the gates'
        gradient and their optimiser state then cost ``1 / n_out`` of per-weight gates.
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
        shared_gates: bool = False,
    ) -> None:
        super().__init__()
        if shared_gates and groups is None:
            raise ValueError("shared_gates needs a grouped layer (one sub-network per output).")
        self.n_in, self.n_out, self.groups, self.first = n_in, n_out, groups, first
        shape = (n_out, n_in) if groups is None else (groups, n_out, n_in)
        bound = 1.0 / math.sqrt(n_in)
        self.weight = nn.Parameter(torch.empty(shape).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(shape[:-1]).uniform_(-bound, bound)) if bias else None
        gate_shape = (groups, 1, n_in) if gated and shared_gates else shape
        if gated:
            self.log_alpha = nn.Parameter(torch.full(gate_shape, gates.log_alpha_for_keep_prob(init_keep)))
        else:
            self.register_parameter("log_alpha", None)
        # one entry per gate (shared gates, shared mask); bool: a quarter of a float mask's memory, and
        # the best state's copy of it (at 2000 genes with every gene an input: 31 MB against 122 MB each)
        self.register_buffer("mask", torch.ones(gate_shape, dtype=torch.bool))
        self._gate_buffer: torch.Tensor | None = None
        self._mask_seen: tuple[int, int, int] | None = None
        self._mask_ones = True

    @property
    def gated(self) -> bool:
        """Whether the layer has gates."""
        return self.log_alpha is not None

    @property
    def shared_gates(self) -> bool:
        """Whether one gate serves a whole row of inputs (``(groups, 1, n_in)``), not one weight."""
        return self.log_alpha is not None and self.log_alpha.shape != self.weight.shape

    def gate_values(self, *, sample: bool, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """Gates for one forward solve: a training sample or the deterministic value (the gates' shape)."""
        if self.log_alpha is None:
            return None
        if sample:
            return gates.sample(self.log_alpha, generator)
        return gates.deterministic(self.log_alpha)

    def prepared(
        self, *, sample: bool, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Gates and effective weight for one forward solve, ``(z, weight * mask * z)``.

        A training sample of per-weight gates on an unmasked layer is drawn straight into the
        effective weight (:func:`gates.sample_gated_weight`, into a buffer the layer keeps between
        calls): the same values, without a gate-shaped tensor per step of the sample and its
        gradient. Its ``z`` is then not formed and ``None`` is returned in its place.
        """
        if self._samples_per_weight(sample):
            return None, gates.sample_gated_weight(self.weight, self.log_alpha, self._buffer(), generator)
        z = self.gate_values(sample=sample, generator=generator)
        return z, self.effective_weight(z)

    def prepared_first(
        self, deferred: WeightGradients, *, sample: bool, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
        """:meth:`prepared` for a grouped first layer whose products defer their gradient to ``deferred``.

        Returns the gates, the effective weight flattened to ``(groups * n_out, n_in)`` through
        ``deferred`` and, for a training sample of per-weight gates, the gates' probabilities summed
        over the inputs (``None`` otherwise; see :meth:`WeightGradients.collect_gated`). Such a
        sample of at least :data:`REDRAW_MIN_GATES` gates is drawn again in the backward pass
        instead of kept.
        """
        if self._samples_per_weight(sample):
            la = self.log_alpha
            if la.numel() >= REDRAW_MIN_GATES:
                self._gate_buffer = None
                return None, *deferred.collect_gated(self.weight, la, None, generator)
            buf = self._buffer()
            gates.draw_concrete(buf, la, generator)
            return None, *deferred.collect_gated(self.weight, la, buf)
        z = self.gate_values(sample=sample, generator=generator)
        return z, deferred.collect(self.effective_weight(z).reshape(-1, self.n_in)), None

    def _samples_per_weight(self, sample: bool) -> bool:
        """Whether a training sample of this layer's gates is drawn straight into its effective weight."""
        return sample and self.gated and not self.shared_gates and self.mask_is_ones()

    def _buffer(self) -> torch.Tensor:
        """Return the sampling buffer kept between training steps, (re)allocated to the gates' shape."""
        buf = getattr(self, "_gate_buffer", None)  # absent from a layer pickled before it existed
        la = self.log_alpha
        if buf is None or buf.shape != la.shape or buf.dtype != la.dtype or buf.device != la.device:
            buf = self._gate_buffer = torch.empty_like(la, requires_grad=False)
        return buf

    def release_buffers(self) -> None:
        """Drop the sampling buffer kept between training steps (see :meth:`prepared`)."""
        self._gate_buffer = None

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())
        state["_gate_buffer"] = None  # scratch space: not copied, pickled or sent to a worker
        return state

    def effective_weight(self, z: torch.Tensor | None) -> torch.Tensor:
        """``weight * mask * z`` (``z`` omitted for ungated layers), a new tensor.

        While ``mask`` is all ones it is skipped: an ungated layer's weight is copied (half the memory
        traffic of the product, and the copy's backward passes the gradient on unchanged), a gated
        one's multiplied by its gates only.
        """
        if z is not None:
            return self.masked(self.weight) * z
        return self.weight.clone() if self.mask_is_ones() else self.weight * self.mask

    @torch.no_grad()
    def freeze(self, z: torch.Tensor | None, tol: float) -> None:
        """Fold the gates ``z`` into the weight and fix its zero pattern (``|w| < tol``) as the mask.

        With shared gates the mask has the gates' shape: an entry stays open where any of its weights does.
        """
        w = self.effective_weight(z)
        self.weight.copy_(w)
        keep = w.abs() >= tol
        if self.shared_gates:
            keep = keep.any(dim=1, keepdim=True)
        self.mask.copy_(keep.to(self.mask))
        if self.log_alpha is not None:
            self.log_alpha.fill_(20.0)  # deterministic gate exactly 1

    def masked(self, values: torch.Tensor) -> torch.Tensor:
        """``values * mask`` for ``values`` shaped like the weight, ``values`` itself while the mask is all ones."""
        return values if self.mask_is_ones() else values * self.mask

    def mask_is_ones(self) -> bool:
        """Whether ``mask`` is all ones (no frozen pattern), when multiplying by it can be skipped.

        Checked again only when the mask changes (another tensor, or an in-place write such as a
        refit's freeze or ``load_state_dict``, which advance its version counter): for a grouped
        first layer (2.2 M weights at 529 genes) the product and its backward are memory passes of
        about a millisecond each, in every iteration.
        """
        mask = self.mask
        seen = (id(mask), mask.data_ptr(), mask._version)
        if seen != self._mask_seen:
            self._mask_seen, self._mask_ones = seen, bool((mask == 1).all())
        return self._mask_ones

    def linear(self, x: torch.Tensor, w: torch.Tensor, deferred: WeightGradients | None = None) -> torch.Tensor:
        """Apply the layer with the effective weight ``w``.

        ``deferred``: for a grouped first layer whose ``w`` is ``(groups * n_out, n_in)`` from
        ``deferred.collect``, the product whose weight gradient is formed once (:class:`WeightGradients`).
        """
        if self.groups is None:
            y = x @ w.T
        elif self.first:
            # all groups read the same input: one (..., n_in) x (n_in, groups * n_out) product
            # (an einsum here becomes a batched product per group, about twice as slow with its backward)
            flat = deferred.matmul(x, w) if deferred is not None else x @ w.reshape(-1, self.n_in).T
            y = flat.unflatten(-1, (self.groups, self.n_out))
        else:
            # each group's own small (n_out, n_in) block, broadcast and summed: a batched product of
            # tiny matrices (einsum, bmm) costs several times more, above all in its backward
            y = (x.unsqueeze(-2) * w).sum(-1)
        return y if self.bias is None else y + self.bias
