import importlib

import numpy as np
import pytest
import torch

import scnode.core as core
from scnode.core import ODESystem, adjacency, feature_sparsity, weight_sparsity


def _cut_input0_weights(gen):
    """W1 (4, 3), W2 (3, 4): input 0 feeds only hidden 0, and hidden 0 feeds only output 0."""
    w1 = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    w2 = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    w1[1:, 0] = 0.0
    w2[1:, 0] = 0.0
    return w1, w2


def _finite_difference_zero_pattern(system, n_in, eps=1e-3):
    """Entries (i, j) where perturbing input j leaves output i exactly unchanged at random states."""
    gen = torch.Generator().manual_seed(99)
    x = torch.randn(20, n_in, generator=gen, dtype=torch.float64)
    system.prepare(sample=False)
    with torch.no_grad():
        base = system.field(x)
        unchanged = torch.ones(base.shape[-1], n_in, dtype=torch.bool)
        for j in range(n_in):
            xp = x.clone()
            xp[:, j] += eps
            unchanged[:, j] = (system.field(xp) == base).all(0)
    return unchanged


def test_cut_path_gives_exact_zero_by_weights():
    system = ODESystem(n_vars=3, order=1, hidden=(4,)).double()
    w1, w2 = _cut_input0_weights(torch.Generator().manual_seed(0))
    with torch.no_grad():
        system.field.layers[0].weight.copy_(w1)
        system.field.layers[1].weight.copy_(w2)
    a = adjacency(system)
    assert a.shape == (3, 3)
    expected_zero = torch.zeros(3, 3, dtype=torch.bool)
    expected_zero[1:, 0] = True
    assert torch.equal(a == 0, expected_zero)
    # the adjacency is the |W2| |W1| product
    assert torch.allclose(a, w2.abs() @ w1.abs(), atol=1e-12)
    # numerically: output i does not move when input j is perturbed exactly where A[i, j] == 0
    unchanged = _finite_difference_zero_pattern(system, 3)
    assert torch.equal(unchanged, expected_zero)


def test_cut_path_gives_exact_zero_by_mask():
    system = ODESystem(n_vars=3, order=1, hidden=(4,)).double()
    with torch.no_grad():
        system.field.layers[0].mask[:, 2] = 0.0  # input 2 cut everywhere
        system.field.layers[1].mask[0, :] = 0.0  # output 0 depends on nothing
        system.field.layers[1].mask[1, :2] = 0.0  # output 1 only through hidden 2, 3
        system.field.layers[0].mask[2:, 1] = 0.0  # input 1 only into hidden 0, 1
    a = adjacency(system)
    expected_zero = torch.tensor([[True, True, True], [False, True, True], [False, False, True]])
    assert torch.equal(a == 0, expected_zero)
    assert torch.equal(_finite_difference_zero_pattern(system, 3), expected_zero)


def test_cut_path_gated_system():
    system = ODESystem(n_vars=3, order=1, hidden=(4,), gated=True).double()
    with torch.no_grad():
        for layer in system.field.layers:
            layer.log_alpha.fill_(5.0)  # deterministic gate 1
        system.field.layers[0].log_alpha[1:, 0] = -20.0  # deterministic gate 0
        system.field.layers[1].log_alpha[1:, 0] = -20.0
    system.prepare(sample=False)
    assert (system.field.gate_samples[0][1:, 0] == 0).all()
    a = adjacency(system)
    expected_zero = torch.zeros(3, 3, dtype=torch.bool)
    expected_zero[1:, 0] = True
    assert torch.equal(a == 0, expected_zero)
    assert torch.equal(_finite_difference_zero_pattern(system, 3), expected_zero)
    # adjacency always uses deterministic gates, even after a training sample
    system.prepare(sample=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(adjacency(system), a)


def test_second_order_adjacency_shape():
    system = ODESystem(3, order=2, hidden=(5,))
    a = adjacency(system)
    assert a.shape == (3, 6)
    assert (a > 0).all()


def test_grouped_adjacency_zero_group():
    system = ODESystem(3, order=1, hidden=(4,), grouped=True).double()
    assert system.field.layers[0].weight.shape == (3, 4, 3)
    with torch.no_grad():
        system.field.layers[0].weight[1, :, 2] = 0.0
        system.field.layers[0].weight[0, :, 0] = 0.0
    a = adjacency(system)
    assert a.shape == (3, 3)
    expected_zero = torch.zeros(3, 3, dtype=torch.bool)
    expected_zero[1, 2] = expected_zero[0, 0] = True
    assert torch.equal(a == 0, expected_zero)
    assert torch.equal(_finite_difference_zero_pattern(system, 3), expected_zero)


def test_grouped_second_order_adjacency_shape():
    system = ODESystem(3, order=2, hidden=(4,), grouped=True)
    assert adjacency(system).shape == (3, 6)


def test_lassonet_skip_adds_to_adjacency():
    system = ODESystem(2, order=1, hidden=(3,), skip="inner").double()
    with torch.no_grad():
        system.field.layers[0].weight.zero_()
        system.skip.weight.copy_(torch.tensor([[0.0, -2.0], [0.5, 0.0]]))
    a = adjacency(system)
    assert torch.equal(a, torch.tensor([[0.0, 2.0], [0.5, 0.0]], dtype=torch.float64))


def test_feature_sparsity_by_hand():
    adj = torch.tensor([[0.0, 1e-6, 1.0], [2.0, -3e-6, 3.0]])
    assert feature_sparsity(adj) == pytest.approx(3 / 6)
    assert feature_sparsity(adj, tol=1e-7) == pytest.approx(1 / 6)
    assert feature_sparsity(torch.ones(2, 2)) == 0.0
    assert core.ZERO_TOL == 1e-5


def test_weight_sparsity_by_hand():
    system = ODESystem(2, order=1, hidden=(2,))  # W1 (2, 2), W2 (2, 2): 8 weights
    with torch.no_grad():
        for layer in system.field.layers:
            layer.weight.fill_(0.5)
        system.field.layers[0].weight[0, 1] = 0.0
        system.field.layers[1].weight[1, 0] = 1e-7
        system.field.layers[1].mask[0, 0] = 0.0
    assert weight_sparsity(system) == pytest.approx(3 / 8)


def test_weight_sparsity_counts_gates_and_skip():
    system = ODESystem(2, order=1, hidden=(2,), gated=True, skip="inner")  # 8 gated weights + 4 skip
    with torch.no_grad():
        for layer in system.field.layers:
            layer.weight.fill_(1.0)
            layer.log_alpha.fill_(5.0)
        system.field.layers[0].log_alpha[1, 1] = -10.0  # closed gate
        system.skip.weight.copy_(torch.tensor([[0.0, 1.0], [1.0, 1.0]]))  # one zero
    assert weight_sparsity(system) == pytest.approx(2 / 12)


def test_adjacency_numpy_consistency():
    rng = np.random.default_rng(0)
    system = ODESystem(2, order=1, hidden=(3, 2)).double()
    ws = [rng.normal(size=(3, 2)), rng.normal(size=(2, 3)), rng.normal(size=(2, 2))]
    with torch.no_grad():
        for layer, w in zip(system.field.layers, ws, strict=True):
            layer.weight.copy_(torch.as_tensor(w))
    expected = np.abs(ws[2]) @ np.abs(ws[1]) @ np.abs(ws[0])
    np.testing.assert_allclose(adjacency(system).numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("self_inputs", [False, True])
def test_grouped_adjacency_in_blocks_of_outputs_equals_the_whole_product(monkeypatch, self_inputs):
    """The absolute path product of per-output networks is taken block by block of outputs (no absolute
    copy of the whole first layer): the same matrix as the product of whole absolute layers."""
    torch.manual_seed(3)
    inputs = [0, 2, 3, 5] if self_inputs else None
    system = ODESystem(7, hidden=(4,), grouped=True, gated=True, inputs=inputs, self_inputs=self_inputs)
    with torch.no_grad():
        for p in system.parameters():
            p.normal_()
    system.prepare(sample=False)
    whole = system.field.path_product([w.abs() for w in system.field.weights])
    monkeypatch.setattr(importlib.import_module("scnode.core.fields"), "PATH_BLOCKS_MIN", 1)
    block = 2 * 4 * system.n_in  # two outputs per block: three blocks and a part
    monkeypatch.setattr(importlib.import_module("scnode.core.gates"), "REDRAW_BLOCK", block)
    blocks = system.field.path_product(system.field.weights, absolute=True)
    torch.testing.assert_close(blocks, whole, rtol=1e-6, atol=0)
    a = system.adjacency()
    assert a.shape == (7, 7) and (a >= 0).all()
    if self_inputs:  # each output's own input reaches it through its self weight: the diagonal is non-zero
        assert (torch.diagonal(a) > 0).all()
