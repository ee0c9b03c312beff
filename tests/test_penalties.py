import itertools
import math

import numpy as np
import pytest
import torch

from scnode.core import METHODS, MLP, ODESystem, get_method
from scnode.core.penalties import (
    cnode_penalty,
    group_soft_threshold,
    grouplasso_penalty,
    hier_prox,
    l0_penalty,
    lassonet_penalty,
    pathreg_penalty,
)
from scnode.core.train import freeze_pattern

BETA, GAMMA, ZETA = 2.0 / 3.0, -0.1, 1.1


def p_nonzero(la):
    """Hand-written P(z != 0) = sigmoid(log_alpha - beta log(-gamma / zeta))."""
    la = np.asarray(la, float)
    return 1.0 / (1.0 + np.exp(-(la - BETA * math.log(-GAMMA / ZETA))))


def det_gate(la):
    la = np.asarray(la, float)
    return np.clip(1.0 / (1.0 + np.exp(-la)) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


def set_layers(system, weights, log_alphas=None):
    with torch.no_grad():
        for i, layer in enumerate(system.field.layers):
            layer.weight.copy_(torch.as_tensor(weights[i], dtype=layer.weight.dtype))
            if log_alphas is not None:
                layer.log_alpha.copy_(torch.as_tensor(log_alphas[i], dtype=layer.log_alpha.dtype))


def path_sum(mats, i, k):
    """sum over all paths k -> h1 -> ... -> i of the product of the matrix entries, by explicit loops."""
    widths = [m.shape[0] for m in mats[:-1]]
    total = 0.0
    for hs in itertools.product(*[range(w) for w in widths]):
        nodes = [k, *hs, i]
        prod = 1.0
        for layer, m in enumerate(mats):
            prod *= m[nodes[layer + 1], nodes[layer]]
        total += prod
    return total


def path_mean(mats):
    n_out, n_in = mats[-1].shape[0], mats[0].shape[1]
    n_paths = int(np.prod([m.shape[0] for m in mats[:-1]]))
    return np.mean([[path_sum(mats, i, k) for k in range(n_in)] for i in range(n_out)]) / n_paths


# ----------------------------------------------------------------------------------------- hand examples
W1 = np.array([[0.5, -1.0], [2.0, 0.0], [-0.25, 0.75]])  # (hidden=3, in=2)
W2 = np.array([[1.0, -0.5, 0.2], [0.0, 3.0, -1.5]])  # (out=2, hidden=3)
LA1 = np.array([[-1.0, 0.5], [2.0, -3.0], [0.0, 1.0]])
LA2 = np.array([[1.5, -0.5, 0.25], [-2.0, 0.0, 4.0]])


def test_l0_penalty_by_hand():
    system = ODESystem(n_vars=2, order=1, hidden=(3,), gated=True)
    set_layers(system, [W1, W2], [LA1, LA2])
    system.prepare(sample=False)
    all_la = np.concatenate([LA1.ravel(), LA2.ravel()])
    # 12 gates in all
    expected = 0.3 * sum(p_nonzero(v) for v in all_la) / 12
    assert l0_penalty(system, lam=0.3).item() == pytest.approx(expected, rel=1e-6)


def test_cnode_penalty_by_hand_one_hidden_layer():
    system = ODESystem(n_vars=2, order=1, hidden=(3,))
    set_layers(system, [W1, W2])
    system.prepare(sample=False)
    # A[i, k] = sum_h |W2[i, h]| |W1[h, k]|; mean over the 2 x 2 entries; 3 paths per pair
    a = np.zeros((2, 2))
    for i in range(2):
        for k in range(2):
            a[i, k] = sum(abs(W2[i, h]) * abs(W1[h, k]) for h in range(3))
    expected = 0.7 * a.mean() / 3
    assert cnode_penalty(system, lam=0.7).item() == pytest.approx(expected, rel=1e-6)
    # a concrete number, worked out by hand: A = [[1.35, 1.55], [6.375, 1.125]]
    assert a == pytest.approx(np.array([[0.5 + 1.0 + 0.05, 1.0 + 0.0 + 0.15], [6.0 + 0.375, 1.125]]))


def test_cnode_penalty_two_hidden_layers_and_mask():
    rng = np.random.default_rng(3)
    system = ODESystem(n_vars=2, order=1, hidden=(3, 4))
    ws = [rng.normal(size=(3, 2)), rng.normal(size=(4, 3)), rng.normal(size=(2, 4))]
    set_layers(system, ws)
    with torch.no_grad():
        system.field.layers[1].mask[1, 2] = 0.0
    system.prepare(sample=False)
    ws_eff = [np.abs(w) for w in ws]
    ws_eff[1][1, 2] = 0.0
    expected = 0.5 * path_mean(ws_eff)  # path_mean already divides by 3 * 4 = 12 paths
    assert system.field.n_paths == 12
    assert cnode_penalty(system, lam=0.5).item() == pytest.approx(expected, rel=1e-6)


def test_cnode_penalty_uses_weights_of_last_prepare():
    system = ODESystem(n_vars=2, order=1, hidden=(3,))
    set_layers(system, [W1, W2])
    system.prepare(sample=False)
    before = cnode_penalty(system, lam=1.0).item()
    with torch.no_grad():
        system.field.layers[0].weight.mul_(2.0)
    # not prepared again: the weights fixed by the last prepare are used
    assert cnode_penalty(system, lam=1.0).item() == pytest.approx(before, rel=1e-6)
    system.prepare(sample=False)
    assert cnode_penalty(system, lam=1.0).item() == pytest.approx(2 * before, rel=1e-6)


def test_pathreg_penalty_by_hand():
    system = ODESystem(n_vars=2, order=1, hidden=(3,), gated=True)
    set_layers(system, [W1, W2], [LA1, LA2])
    system.prepare(sample=False)
    g1, g2 = p_nonzero(LA1), p_nonzero(LA2)
    z1, z2 = det_gate(LA1), det_gate(LA2)
    gprod = np.zeros((2, 2))
    wprod = np.zeros((2, 2))
    for i in range(2):
        for k in range(2):
            gprod[i, k] = sum(g2[i, h] * g1[h, k] for h in range(3))
            wprod[i, k] = sum(abs(W2[i, h] * z2[i, h]) * abs(W1[h, k] * z1[h, k]) for h in range(3))
    lam, lam1 = 0.2, 0.05
    expected0 = lam * gprod.mean() / 3
    expected = expected0 + lam1 * wprod.mean() / 3
    assert pathreg_penalty(system, lam=lam).item() == pytest.approx(expected0, rel=1e-6)
    assert pathreg_penalty(system, lam=lam, lam1=lam1).item() == pytest.approx(expected, rel=1e-6)
    # some deterministic gates are exactly zero in this example, so the lam1 term is not the plain |W| one
    assert (z1 == 0).any()


def test_pathreg_penalty_drops_masked_gates():
    """A frozen pattern (mask) removes its gates' probabilities, also after a first penalty without one."""
    system = ODESystem(n_vars=2, order=1, hidden=(3,), gated=True)
    set_layers(system, [W1, W2], [LA1, LA2])
    system.prepare(sample=False)
    g1, g2 = p_nonzero(LA1), p_nonzero(LA2)
    unmasked = pathreg_penalty(system, lam=1.0).item()
    assert unmasked == pytest.approx((g2 @ g1).mean() / 3, rel=1e-6)
    with torch.no_grad():  # in place, as a refit's freeze writes it
        system.field.layers[0].mask[1, 0] = 0.0
        system.field.layers[1].mask[0, 2] = 0.0
    g1[1, 0] = 0.0
    g2[0, 2] = 0.0
    assert pathreg_penalty(system, lam=1.0).item() == pytest.approx((g2 @ g1).mean() / 3, rel=1e-6)


def test_input_gates_only():
    """gates="inputs": only the first layer is gated; PathReg counts the other layers' weights as present.

    L0 skips them."""
    system = ODESystem(n_vars=2, order=1, hidden=(3,), gated=True, gate_layers="inputs")
    assert [layer.gated for layer in system.field.layers] == [True, False]
    with torch.no_grad():
        system.field.layers[0].log_alpha.copy_(torch.as_tensor(LA1, dtype=torch.float32))
    system.prepare(sample=True, generator=torch.Generator().manual_seed(0))
    assert system.gate_samples()[1] is None
    g1 = p_nonzero(LA1)
    assert pathreg_penalty(system, lam=1.0).item() == pytest.approx((np.ones((2, 3)) @ g1).mean() / 3, rel=1e-6)
    assert l0_penalty(system, lam=1.0).item() == pytest.approx(g1.mean(), rel=1e-6)
    with torch.no_grad():  # a refit's frozen output weight removes its paths
        system.field.layers[1].mask[0, 2] = 0.0
    ones = np.ones((2, 3))
    ones[0, 2] = 0.0
    assert pathreg_penalty(system, lam=1.0).item() == pytest.approx((ones @ g1).mean() / 3, rel=1e-6)
    grouped = ODESystem(n_vars=2, order=1, hidden=(3,), gated=True, gate_layers="inputs", grouped=True, linear=True)
    assert [layer.gated for layer in grouped.sparse_layers()] == [True, False, True]  # the linear term: inputs
    with pytest.raises(ValueError, match="gates must be one of"):
        ODESystem(n_vars=2, gated=True, gate_layers="first")


def test_pair_gates_one_gate_per_output_input_pair():
    """gates="pairs": one first-layer gate per (output, input), shared by the output's hidden units.

    The effective weight is the weight times its pair's gate; PathReg's path mean is then the mean
    gate probability over pairs (every hidden unit's path carries the same gate), a non-regulator's
    self input one more pair; a frozen pattern is one mask entry per pair."""
    n, width = 3, 4
    system = ODESystem(
        n_vars=n,
        order=1,
        hidden=(width,),
        gated=True,
        gate_layers="pairs",
        grouped=True,
        inputs=[0, 1],
        self_inputs=True,
    )
    first, own = system.field.layers[0], system.field.self_layer
    assert first.log_alpha.shape == (n, 1, 2) and first.mask.shape == (n, 1, 2) and first.shared_gates
    assert own.log_alpha.shape == (n, 1, 1) and not system.field.layers[1].gated
    rng = np.random.default_rng(0)
    la = rng.uniform(-3, 3, size=(n, 1, 2))
    la_own = rng.uniform(-3, 3, size=(n, 1, 1))
    with torch.no_grad():
        first.log_alpha.copy_(torch.as_tensor(la, dtype=torch.float32))
        own.log_alpha.copy_(torch.as_tensor(la_own, dtype=torch.float32))
    system.prepare(sample=False)
    z = det_gate(la)
    expected_w = first.weight.detach().numpy() * z  # broadcast over the hidden units
    np.testing.assert_allclose(system.field.weights[0].detach().numpy(), expected_w, rtol=1e-6)
    own_p = p_nonzero(la_own)[:, 0, 0] * np.array([0.0, 0.0, 1.0])  # regulators read themselves as inputs
    expected = (p_nonzero(la).sum() + own_p.sum()) / (n * 3)
    assert pathreg_penalty(system, lam=1.0).item() == pytest.approx(expected, rel=1e-5)
    with torch.no_grad():
        first.weight[1, :, 0] = 0.0  # every weight of the pair (1, 0) zero: the refit cuts that pair
        first.weight[2, 1:, 1] = 0.0  # all but one weight of (2, 1) zero: the pair stays
        first.log_alpha[1, 0, 0] = first.log_alpha[2, 0, 1] = 5.0
    freeze_pattern(system)
    expected_mask = (z[:, 0, :] > 0).astype(np.float32)
    expected_mask[1, 0], expected_mask[2, 1] = 0.0, 1.0
    np.testing.assert_array_equal(first.mask[:, 0, :].numpy(), expected_mask)
    with pytest.raises(ValueError, match="gates='pairs' needs one network per output"):
        ODESystem(n_vars=2, gated=True, gate_layers="pairs")


def test_pathreg_output_gates_of_per_output_networks_weigh_n_inputs_times_more():
    """Why gates="inputs" exists: with every layer gated, an output-layer gate of a per-output network
    carries all of its hidden unit's paths, so the penalty pushes it n_inputs times harder than an input gate."""
    n = 6
    system = ODESystem(n_vars=n, order=1, hidden=(3,), gated=True, grouped=True)
    system.prepare(sample=False)
    pathreg_penalty(system, lam=1.0).backward()
    first, out = (layer.log_alpha.grad for layer in system.field.layers)  # (n, 3, n) and (n, 1, 3)
    torch.testing.assert_close(out[:, 0, :], n * first[:, :, 0], rtol=1e-5, atol=0.0)
    assert (first > 0).all()


def test_pathreg_penalty_two_hidden_layers():
    rng = np.random.default_rng(5)
    system = ODESystem(n_vars=2, order=2, hidden=(3, 2), gated=True)  # input 4 (x, v), output 2
    ws = [rng.normal(size=(3, 4)), rng.normal(size=(2, 3)), rng.normal(size=(2, 2))]
    las = [rng.uniform(-3, 3, size=w.shape) for w in ws]
    set_layers(system, ws, las)
    system.prepare(sample=False)
    gs = [p_nonzero(la) for la in las]
    wz = [np.abs(w * det_gate(la)) for w, la in zip(ws, las, strict=True)]
    expected = 0.1 * path_mean(gs) + 0.02 * path_mean(wz)
    assert pathreg_penalty(system, lam=0.1, lam1=0.02).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(("order", "skip_mode"), [(1, "inner"), (2, "inner"), (1, "outer")])
def test_lassonet_penalty_by_hand(order, skip_mode):
    rng = np.random.default_rng(order)
    system = ODESystem(n_vars=2, order=order, hidden=(3,), skip=skip_mode)
    s = rng.normal(size=tuple(system.skip.weight.shape))
    s[:, 0] = 0.0
    with torch.no_grad():
        system.skip.weight.copy_(torch.as_tensor(s))
    system.prepare(sample=False)
    expected = 0.4 * np.mean([math.sqrt(sum(s[i, k] ** 2 for i in range(s.shape[0]))) for k in range(s.shape[1])])
    assert lassonet_penalty(system, lam=0.4).item() == pytest.approx(expected, rel=1e-6)


def test_grouplasso_penalty_by_hand():
    rng = np.random.default_rng(11)
    system = ODESystem(n_vars=2, order=1, hidden=(3,), grouped=True)
    w1 = rng.normal(size=(2, 3, 2))  # (groups = outputs, hidden, inputs)
    w1[1, :, 0] = 0.0
    with torch.no_grad():
        system.field.layers[0].weight.copy_(torch.as_tensor(w1))
    system.prepare(sample=False)
    norms = [[math.sqrt(sum(w1[i, j, k] ** 2 for j in range(3))) for k in range(2)] for i in range(2)]
    expected = 0.25 * np.mean(norms)
    assert grouplasso_penalty(system, lam=0.25).item() == pytest.approx(expected, rel=1e-6)


def test_penalties_are_differentiable():
    system = ODESystem(n_vars=2, order=1, hidden=(3,), gated=True)
    system.prepare(sample=False)
    pathreg_penalty(system, lam=1.0, lam1=1.0).backward()
    la = system.field.layers[0].log_alpha
    assert la.grad is not None and torch.isfinite(la.grad).all() and (la.grad != 0).any()


# ------------------------------------------------------------------------------------------ proximal steps
def prox_objective(theta, w, theta0, w0, lam):
    return 0.5 * np.sum((theta - theta0) ** 2) + 0.5 * np.sum((w - w0) ** 2) + lam * np.linalg.norm(theta)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("threshold", "M"), [(0.0, 1.0), (0.3, 1.0), (0.1, 10.0), (1.0, 0.5)])
def test_hier_prox_enforces_hierarchy(seed, threshold, M):
    gen = torch.Generator().manual_seed(seed)
    skip = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    first = 2 * torch.randn(6, 5, generator=gen, dtype=torch.float64)
    hier_prox(skip, first, threshold=threshold, M=M)
    for k in range(5):
        assert first[:, k].abs().max().item() <= M * skip[:, k].norm().item() + 1e-6


@pytest.mark.parametrize("seed", [0, 1])
def test_hier_prox_is_the_proximal_point(seed):
    """No feasible point near the result has a lower proximal objective (column by column)."""
    threshold, M = 0.4, 2.0
    gen = torch.Generator().manual_seed(seed)
    skip0 = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    first0 = 2 * torch.randn(5, 4, generator=gen, dtype=torch.float64)
    skip, first = skip0.clone(), first0.clone()
    hier_prox(skip, first, threshold=threshold, M=M)
    rng = np.random.default_rng(seed)
    for k in range(4):
        t0, w0 = skip0[:, k].numpy(), first0[:, k].numpy()
        t_hat, w_hat = skip[:, k].numpy(), first[:, k].numpy()
        best = prox_objective(t_hat, w_hat, t0, w0, threshold)
        for _ in range(400):
            scale = rng.choice([1e-3, 1e-2, 1e-1])
            t = t_hat + scale * rng.normal(size=t_hat.shape)
            bound = M * np.linalg.norm(t)
            w = np.clip(w_hat + scale * rng.normal(size=w_hat.shape), -bound, bound)
            assert prox_objective(t, w, t0, w0, threshold) >= best - 1e-10


def test_hier_prox_large_threshold_zeroes_columns():
    gen = torch.Generator().manual_seed(0)
    skip = torch.randn(3, 4, generator=gen)
    first = torch.randn(5, 4, generator=gen)
    hier_prox(skip, first, threshold=1e4, M=1.0)
    assert (skip == 0).all()
    assert (first == 0).all()


def test_hier_prox_zeroes_only_weak_columns():
    skip = torch.tensor([[0.01, 3.0], [0.0, 4.0]])
    first = torch.tensor([[0.001, 1.0], [0.002, -2.0]])
    hier_prox(skip, first, threshold=0.5, M=1.0)
    assert (skip[:, 0] == 0).all() and (first[:, 0] == 0).all()
    assert (skip[:, 1] != 0).all() and (first[:, 1] != 0).all()


def test_hier_prox_threshold_zero_feasible_input_unchanged():
    gen = torch.Generator().manual_seed(4)
    skip = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    first = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    # make it feasible: |first[j, k]| <= M ||skip[:, k]||
    M = 2.0
    first = first / first.abs().max(0).values * (0.9 * M * skip.norm(dim=0))
    skip0, first0 = skip.clone(), first.clone()
    hier_prox(skip, first, threshold=0.0, M=M)
    assert torch.allclose(skip, skip0, rtol=1e-12, atol=0)
    assert torch.equal(first, first0)


def test_hier_prox_zero_skip_column_is_feasible():
    skip = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    first = torch.ones(4, 2)
    hier_prox(skip, first, threshold=0.0, M=10.0)
    for k in range(2):
        assert first[:, k].abs().max().item() <= 10.0 * skip[:, k].norm().item() + 1e-6


def test_group_soft_threshold():
    w = torch.zeros(2, 3, 2, dtype=torch.float64)
    w[0, :, 0] = torch.tensor([3.0, 4.0, 0.0])  # norm 5
    w[0, :, 1] = torch.tensor([0.1, 0.2, -0.2])  # norm 0.3
    w[1, :, 0] = torch.tensor([-1.0, 2.0, 2.0])  # norm 3
    w[1, :, 1] = torch.tensor([0.0, 0.0, 0.5])  # norm 0.5
    w0 = w.clone()
    group_soft_threshold(w, 1.0)
    assert (w[0, :, 1] == 0).all()
    assert (w[1, :, 1] == 0).all()
    for i, k in [(0, 0), (1, 0)]:
        n0 = w0[i, :, k].norm().item()
        assert w[i, :, k].norm().item() == pytest.approx(n0 - 1.0, rel=1e-12)
        # direction preserved
        assert torch.allclose(w[i, :, k] / w[i, :, k].norm(), w0[i, :, k] / n0, atol=1e-12)
    assert torch.allclose(w[0, :, 0], torch.tensor([2.4, 3.2, 0.0], dtype=torch.float64), atol=1e-12)


def test_group_soft_threshold_zero_threshold_is_identity():
    w = torch.randn(3, 4, 2, generator=torch.Generator().manual_seed(0))
    w0 = w.clone()
    group_soft_threshold(w, 0.0)
    assert torch.equal(w, w0)


def test_get_method_unknown_raises():
    with pytest.raises(ValueError, match="nope"):
        get_method("nope")


def test_methods_registry():
    assert set(METHODS) == {"base", "l0", "cnode", "pathreg", "lassonet_inner", "lassonet_outer", "grouplasso"}
    assert len(METHODS) == 7
    for name, method in METHODS.items():
        assert get_method(name) is method
        assert method.name == name
    assert METHODS["l0"].gated and METHODS["pathreg"].gated
    assert not METHODS["base"].gated and METHODS["base"].penalty is None
    assert METHODS["grouplasso"].grouped and METHODS["grouplasso"].prox is not None
    assert METHODS["lassonet_inner"].skip == "inner" and METHODS["lassonet_outer"].skip == "outer"
    assert METHODS["cnode"].uses_gradient_penalty and not METHODS["grouplasso"].uses_gradient_penalty


def test_mlp_n_paths():
    assert MLP(3, 2, (4, 5)).n_paths == 20
    assert MLP(3, 2, (4,)).n_paths == 4
    assert MLP(3, 2, (4, 5), grouped=True).n_paths == 20


@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize("hidden", [(), (4,), (4, 5)])
def test_path_mean_equals_mean_of_path_product(grouped, hidden):
    torch.manual_seed(0)
    field = MLP(7, 6, hidden, grouped=grouped)
    field.prepare(sample=False)
    mats = [w.detach().abs() + 0.1 for w in field.weights]
    expected = field.path_product(mats).mean()
    assert torch.allclose(field.path_mean(mats), expected, rtol=1e-5)


# ----------------------------------------------------------------------------------- the linear term
L = np.array([[0.5, 0.0], [-2.0, 1.0]])  # (out=2, in=2)
LAL = np.array([[1.0, -2.0], [0.0, 3.0]])


def _linear_system(gated):
    system = ODESystem(n_vars=2, order=1, hidden=(3,), gated=gated, linear=True)
    set_layers(system, [W1, W2], [LA1, LA2] if gated else None)
    with torch.no_grad():
        system.linear.weight.copy_(torch.as_tensor(L, dtype=torch.float32))
        if gated:
            system.linear.log_alpha.copy_(torch.as_tensor(LAL, dtype=torch.float32))
    system.prepare(sample=False)
    return system


def test_penalties_with_linear_term_by_hand():
    """The linear weight is one more path per (output, input) pair: n_paths + 1 in the mean."""
    gated = _linear_system(gated=True)
    all_la = np.concatenate([LA1.ravel(), LA2.ravel(), LAL.ravel()])
    assert l0_penalty(gated, lam=0.3).item() == pytest.approx(0.3 * p_nonzero(all_la).mean(), rel=1e-6)
    g1, g2, gl = p_nonzero(LA1), p_nonzero(LA2), p_nonzero(LAL)
    gprod = np.array([[sum(g2[i, h] * g1[h, k] for h in range(3)) for k in range(2)] for i in range(2)])
    expected = 0.2 * (gprod + gl).mean() / 4
    assert pathreg_penalty(gated, lam=0.2).item() == pytest.approx(expected, rel=1e-6)

    plain = _linear_system(gated=False)
    wprod = np.array([[sum(abs(W2[i, h] * W1[h, k]) for h in range(3)) for k in range(2)] for i in range(2)])
    expected = 0.7 * (wprod + np.abs(L)).mean() / 4
    assert cnode_penalty(plain, lam=0.7).item() == pytest.approx(expected, rel=1e-6)


def test_linear_term_adds_to_field_and_adjacency():
    system = _linear_system(gated=False)
    x = torch.tensor([[0.3, -1.2], [2.0, 0.5]])
    with torch.no_grad():
        mlp = system.field(x)
        assert torch.allclose(system(torch.tensor(0.0), x), mlp + x @ torch.as_tensor(L, dtype=torch.float32).T)
        system.field.layers[1].weight.zero_()  # no MLP path left: the adjacency is |L|
    system.prepare(sample=False)
    assert np.allclose(system.adjacency().detach().numpy(), np.abs(L))
    with pytest.raises(ValueError, match="LassoNet's skip already is one"):
        ODESystem(n_vars=2, hidden=(3,), skip="inner", linear=True)


def test_training_sample_reuses_the_layer_buffer_and_is_not_copied():
    """A sampled prepare draws per-weight gates into the layer's buffer: reused across steps, not deep-copied."""
    import copy

    system = ODESystem(n_vars=4, order=1, hidden=(3,), gated=True, grouped=True)
    first = system.field.layers[0]
    gen = torch.Generator().manual_seed(0)
    system.prepare(sample=True, generator=gen)
    buffer = first._gate_buffer
    assert buffer is not None and buffer.shape == first.log_alpha.shape
    assert system.gate_samples()[0] is None  # folded into the effective weight
    w1 = system.field.weights[0].detach().clone()
    system.prepare(sample=True, generator=gen)
    assert first._gate_buffer is buffer and not torch.equal(system.field.weights[0], w1)
    with torch.no_grad():
        system.prepare(sample=False)
    assert system.gate_samples()[0] is not None
    assert first._gate_buffer is buffer  # kept until training releases it
    assert copy.deepcopy(system).field.layers[0]._gate_buffer is None
