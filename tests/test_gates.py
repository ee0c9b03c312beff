import math

import pytest
import torch

from scnode.core import gates


@pytest.mark.parametrize("log_alpha", [-3.0, -1.5, -0.5, 0.0, 0.7, 2.0, 3.0])
def test_prob_nonzero_matches_monte_carlo(log_alpha):
    gen = torch.Generator().manual_seed(1234)
    la = torch.full((200_000,), log_alpha, dtype=torch.float64)
    z = gates.sample(la, gen)
    mc = (z != 0).double().mean().item()
    p = gates.prob_nonzero(torch.tensor(log_alpha, dtype=torch.float64)).item()
    assert abs(mc - p) < 0.01


def test_prob_nonzero_closed_form():
    # P(z != 0) = sigmoid(log_alpha - beta log(-gamma / zeta)), beta = 2/3, gamma = -0.1, zeta = 1.1
    la = torch.linspace(-4, 4, 9, dtype=torch.float64)
    expected = [1.0 / (1.0 + math.exp(-(v - (2.0 / 3.0) * math.log(0.1 / 1.1)))) for v in la.tolist()]
    assert torch.allclose(gates.prob_nonzero(la), torch.tensor(expected, dtype=torch.float64), atol=1e-12)


def test_deterministic_exact_zeros_and_ones():
    la = torch.tensor([-50.0, -10.0, -5.0, -3.0])
    assert (gates.deterministic(la) == 0.0).all()
    la = torch.tensor([3.5, 5.0, 10.0, 50.0])
    assert (gates.deterministic(la) == 1.0).all()
    mid = gates.deterministic(torch.linspace(-6, 6, 101))
    assert ((mid >= 0) & (mid <= 1)).all()
    # strictly between 0 and 1 near log_alpha = 0: sigmoid(0) * 1.2 - 0.1 = 0.5
    assert gates.deterministic(torch.tensor(0.0)).item() == pytest.approx(0.5)
    # monotone non-decreasing
    assert (mid[1:] >= mid[:-1]).all()


def test_sample_in_unit_interval_and_differentiable():
    gen = torch.Generator().manual_seed(0)
    la = torch.linspace(-3, 3, 1000).requires_grad_(True)
    z = gates.sample(la, gen)
    assert z.shape == la.shape
    assert ((z >= 0) & (z <= 1)).all()
    # both clamped ends are reached and some values lie strictly inside
    assert (z == 0).any() and (z == 1).any() and ((z > 0) & (z < 1)).any()
    (z * torch.arange(1000.0)).sum().backward()
    assert la.grad is not None
    assert torch.isfinite(la.grad).all()
    assert (la.grad != 0).any()


def test_sample_repeatable_with_generator():
    la = torch.zeros(100)
    a = gates.sample(la, torch.Generator().manual_seed(7))
    b = gates.sample(la, torch.Generator().manual_seed(7))
    c = gates.sample(la, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("p", [0.01, 0.1, 0.5, 0.9, 0.99])
def test_log_alpha_for_keep_prob_inverts_prob_nonzero(p):
    la = gates.log_alpha_for_keep_prob(p)
    assert gates.prob_nonzero(torch.tensor(la, dtype=torch.float64)).item() == pytest.approx(p, abs=1e-12)


@pytest.mark.parametrize("p", [0.0, 1.0, -0.1, 1.5])
def test_log_alpha_for_keep_prob_rejects_out_of_range(p):
    with pytest.raises(ValueError, match="keep_prob"):
        gates.log_alpha_for_keep_prob(p)


def test_sample_value_and_gradient_match_the_formula():
    """The in-place sampler equals the written formula, value and derivative (float64 gradcheck too)."""
    gen = torch.Generator().manual_seed(3)
    la = (torch.randn(4000, generator=gen, dtype=torch.float64) * 3).requires_grad_()
    u = torch.rand(4000, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    weights = torch.randn(4000, dtype=torch.float64)
    z = gates.sample(la, torch.Generator().manual_seed(4))
    uc = u.clamp(1e-6, 1 - 1e-6)
    ref = (torch.sigmoid((torch.log(uc) - torch.log1p(-uc) + la) / gates.BETA) * 1.2 - 0.1).clamp(0, 1)
    torch.testing.assert_close(z, ref, rtol=1e-12, atol=1e-12)
    (grad,) = torch.autograd.grad((z * weights).sum(), la)
    (grad_ref,) = torch.autograd.grad((ref * weights).sum(), la)
    torch.testing.assert_close(grad, grad_ref, rtol=1e-10, atol=1e-12)
    assert 0 < (z == 0).sum() and 0 < (z == 1).sum() and 0 < (grad == 0).sum() < len(grad)
    inside = la.detach()[:50].clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda a: gates._Sample.apply(a, u[:50]), (inside,))


def test_sampled_gated_weight_matches_weight_times_sample():
    """The one-node sample of ``weight * z`` gives the separate sample's values and gradients."""
    gen = torch.Generator().manual_seed(5)
    w = torch.randn(6, 8, 9, generator=gen, dtype=torch.float64).requires_grad_()
    la = (torch.randn(6, 8, 9, generator=gen, dtype=torch.float64) * 3).requires_grad_()
    g = torch.randn(6, 8, 9, generator=gen, dtype=torch.float64)
    ref = w * gates.sample(la, torch.Generator().manual_seed(9))
    ref_grads = torch.autograd.grad(ref, (w, la), g)
    buffer = torch.empty_like(la, requires_grad=False)
    out = gates.sample_gated_weight(w, la, buffer, torch.Generator().manual_seed(9))
    grads = torch.autograd.grad(out, (w, la), g)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    for got, expected in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-14)
    assert 0 < (grads[1] == 0).sum() < grads[1].numel()  # clamped gates pass no gradient to log_alpha
    again = gates.sample_gated_weight(w, la, buffer, torch.Generator().manual_seed(9))
    buffer.zero_()  # the next sample overwrote it before this one's backward: an error, not a wrong gradient
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        again.sum().backward()


@pytest.mark.parametrize("redraw", [False, True])
def test_gated_collect_gives_the_separate_nodes_values_and_gradients(monkeypatch, redraw):
    """The grouped first layer's gated weight and probability sums through one node (kept or redrawn
    sample) equal ``weight * z`` with the deferred gradient and ``prob_nonzero(log_alpha).sum(-1)``,
    values and gradients, and leave the generator where a kept sample does; a redrawn sample is drawn
    in several blocks here."""
    from scnode.core import layers

    monkeypatch.setattr(gates, "REDRAW_BLOCK", 2 * 8 * 9)  # blocks of two rows: five blocks and a part
    gen = torch.Generator().manual_seed(5)
    w = torch.randn(11, 8, 9, generator=gen, dtype=torch.float64).requires_grad_()
    la = (torch.randn(11, 8, 9, generator=gen, dtype=torch.float64) * 3).requires_grad_()
    x = torch.randn(4, 9, generator=gen, dtype=torch.float64)
    c = torch.randn(11, 8, 1, generator=gen, dtype=torch.float64)

    def step(flat_weight, sums, deferred):
        y = deferred.matmul(x, flat_weight)
        loss = (y.tanh() * torch.arange(y.shape[-1])).sum() + (sums * c).sum()
        return torch.autograd.grad(loss, (w, la))

    ref_gen = torch.Generator().manual_seed(9)
    ref = w * gates.sample(la, ref_gen)
    ref_sums = gates.prob_nonzero(la).sum(-1, keepdim=True)
    d = layers.WeightGradients()
    ref_grads = step(d.collect(ref.reshape(-1, 9)), ref_sums, d)
    got_gen = torch.Generator().manual_seed(9)
    d = layers.WeightGradients()
    if redraw:
        flat, sums = d.collect_gated(w, la, None, got_gen)
    else:
        buffer = torch.empty_like(la, requires_grad=False)
        gates.draw_concrete(buffer, la, got_gen)
        flat, sums = d.collect_gated(w, la, buffer)
    torch.testing.assert_close(flat.view_as(w), ref, rtol=0, atol=0)
    torch.testing.assert_close(sums, ref_sums, rtol=0, atol=0)
    assert torch.equal(got_gen.get_state(), ref_gen.get_state())  # the next draws are the same
    grads = step(flat, sums, d)
    for got, expected in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-14)
    assert 0 < (grads[0] == 0).sum() < grads[0].numel()  # closed gates pass no gradient to their weight
    # the penalty alone (no product read the weight) still reaches log_alpha, and only it
    d = layers.WeightGradients()
    _, sums = d.collect_gated(w, la, None, torch.Generator().manual_seed(9))
    (alone,) = torch.autograd.grad((sums * c).sum(), la)
    (expected,) = torch.autograd.grad((gates.prob_nonzero(la).sum(-1, keepdim=True) * c).sum(), la)
    torch.testing.assert_close(alone, expected, rtol=1e-12, atol=1e-14)


def test_a_large_first_layer_keeps_no_sample_between_steps(monkeypatch):
    """Above REDRAW_MIN_GATES a training sample is drawn again in the backward pass: no gate buffer is
    kept, and a short fit is the same as with a kept sample."""
    import numpy as np

    import scnode as scn
    from scnode.core import layers

    t = np.linspace(0, 1, 12)
    values = [np.stack([np.sin(3 * t + k), np.cos(2 * t), t**2, np.exp(-t)], axis=1) for k in range(3)]
    fits = []
    for threshold in (1, 2**62):
        monkeypatch.setattr(layers, "REDRAW_MIN_GATES", threshold)
        model = scn.SparseODE(4, method="pathreg", per_output=True, hidden=(8,), lam=0.05, random_state=0)
        fits.append(model.fit([t] * 3, values, n_iter=5, refit_iter=0, batch_time=4, batch_size=6, progress_bar=False))
        first = model.system.field.layers[0]
        first.prepared_first(layers.WeightGradients(), sample=True, generator=torch.Generator())
        assert (first._gate_buffer is None) == (threshold == 1)
    assert fits[0].history.loss == fits[1].history.loss
    for a, b in zip(fits[0].system.parameters(), fits[1].system.parameters(), strict=True):
        assert torch.equal(a, b)


def test_prob_nonzero_gradient_is_autograds_sigmoid_gradient():
    """The penalty's probabilities, recomputed in their backward, give autograd's gradient exactly."""
    la = (torch.randn(7, 8, 5, generator=torch.Generator().manual_seed(2)) * 3).requires_grad_()
    p = gates.prob_nonzero(la)
    (grad,) = torch.autograd.grad((p.sum(-1) ** 2).sum(), la)
    ref = torch.sigmoid(la - gates.BETA * math.log(-gates.GAMMA / gates.ZETA))
    (ref_grad,) = torch.autograd.grad((ref.sum(-1) ** 2).sum(), la)
    assert torch.equal(p, ref) and torch.equal(grad, ref_grad)
    with torch.no_grad():
        assert torch.equal(gates.prob_nonzero(la), ref)
