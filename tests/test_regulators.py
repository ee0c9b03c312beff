"""Regulators (inputs), self inputs, per-pair penalty factors and the mean Jacobian, on the engine."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

import scnode as scn
from scnode.core import ODESystem
from scnode.core.jacobian import mean_abs_jacobian, mean_jacobian
from scnode.core.penalties import cnode_penalty, grouplasso_penalty, l0_penalty, pathreg_penalty


def _jitter(system, scale=0.3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in system.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))


def _autograd_mean_jacobian(system, states, absolute=False):
    system.prepare(sample=False)
    d = system.n_vars

    def rate(s):
        out = system(torch.zeros(()), s)
        if system.decay_rho is not None:
            out = out + system.decay_rates() * s[..., :d]
        return out[..., d:] if system.order == 2 else out

    jacobians = torch.stack([torch.autograd.functional.jacobian(rate, s) for s in states])
    return (jacobians.abs() if absolute else jacobians).mean(0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"hidden": (6, 5)},
        {"hidden": (6,), "gated": True, "linear": True},
        {"hidden": (8,), "grouped": True},
        {"hidden": (4, 5), "grouped": True, "gated": True},
        {"hidden": (8,), "grouped": True, "gated": True, "gate_layers": "inputs", "decay": True, "inputs": [0, 2]},
        {"hidden": (8,), "grouped": True, "inputs": [1], "self_inputs": True, "linear": True},
        {"hidden": (4, 3), "grouped": True, "inputs": [0, 3], "self_inputs": True, "gated": True},
        {"hidden": (5,), "order": 2, "inputs": [1, 2]},
        {"hidden": (6,), "order": 2, "grouped": True, "gated": True, "gate_layers": "inputs"},
        {"hidden": (), "grouped": True},
    ],
)
def test_mean_jacobian_matches_autograd(kwargs):
    torch.manual_seed(0)
    system = ODESystem(4, **kwargs)
    _jitter(system)
    states = torch.randn(9, 4 * system.order)
    expected = _autograd_mean_jacobian(system, states)
    got = mean_jacobian(system, states, chunk=4)  # several chunks
    assert got.shape == (4, 4 * system.order)
    np.testing.assert_allclose(got.numpy(), expected.detach().numpy(), atol=1e-5)
    # the mean of the entries' sizes: no cancellation between states where a dependence changes sign
    sizes = mean_abs_jacobian(system, states, chunk=4)
    np.testing.assert_allclose(sizes.numpy(), _autograd_mean_jacobian(system, states, True).numpy(), atol=1e-5)
    assert (sizes >= got.abs() - 1e-6).all()


def test_inputs_build_weights_only_for_regulators_and_never_depend_on_others():
    system = ODESystem(5, hidden=(8,), grouped=True, inputs=[0, 3])
    assert system.field.layers[0].weight.shape == (5, 8, 2)  # no input weights for genes 1, 2, 4
    _jitter(system)
    system.prepare(sample=False)
    adj = system.adjacency().detach().numpy()
    assert (adj[:, [1, 2, 4]] == 0).all() and (adj[:, [0, 3]] != 0).all()
    x = torch.rand(3, 5)
    moved = x.clone()
    moved[:, [1, 2, 4]] += 1.0  # non-regulators (with no self input here) change nothing
    out, out_moved = system(torch.zeros(()), x), system(torch.zeros(()), moved)
    torch.testing.assert_close(out, out_moved)


def test_self_inputs_add_the_diagonal_only_for_non_regulators():
    system = ODESystem(4, hidden=(8,), grouped=True, inputs=[0, 1], self_inputs=True)
    _jitter(system)
    system.prepare(sample=False)
    adj = system.adjacency().detach().numpy()
    assert (adj[:, 2:] == np.diag(np.diag(adj))[:, 2:]).all()  # columns 2, 3: only their own target
    assert adj[2, 2] > 0 and adj[3, 3] > 0
    assert (system.field.self_layer.mask[[0, 1]] == 0).all()  # regulators see themselves as inputs already
    x = torch.rand(2, 4)
    moved = x.clone()
    moved[:, 3] += 1.0
    delta = (system(torch.zeros(()), moved) - system(torch.zeros(()), x)).abs()
    assert (delta[:, :3] == 0).all() and (delta[:, 3] > 0).all()  # gene 3 drives only itself


def test_self_inputs_need_inputs_and_first_order():
    with pytest.raises(ValueError, match="self_inputs"):
        ODESystem(3, grouped=True, hidden=(4,), self_inputs=True)
    with pytest.raises(ValueError, match="self_inputs"):
        ODESystem(3, grouped=True, hidden=(4,), inputs=[0], self_inputs=True, order=2)


@pytest.mark.parametrize(
    ("penalty", "kwargs"),
    [
        (pathreg_penalty, {"gated": True, "gate_layers": "inputs"}),
        (pathreg_penalty, {"gated": True, "linear": True}),
        (l0_penalty, {"gated": True}),
        (cnode_penalty, {}),
        (grouplasso_penalty, {}),
    ],
)
def test_pair_weights_scale_each_pairs_penalty(penalty, kwargs):
    """Factors of one leave the penalty unchanged; a factor f on one pair scales its gradient by f."""
    torch.manual_seed(0)
    plain = ODESystem(3, hidden=(4,), grouped=True, **kwargs)
    weighted = ODESystem(3, hidden=(4,), grouped=True, pair_weights=True, **kwargs)
    _jitter(plain)
    weighted.load_state_dict(plain.state_dict(), strict=False)  # all but the factors (ones)
    for s in (plain, weighted):
        s.prepare(sample=False)
    torch.testing.assert_close(penalty(plain, lam=1.0), penalty(weighted, lam=1.0))

    weighted.pair_weight[1, 2] = 0.1  # a prior edge 2 -> 1
    params = "log_alpha" if kwargs.get("gated") else "weight"
    grads = []
    for s in (plain, weighted):
        first = getattr(s.field.layers[0], params)
        first.grad = None
        s.prepare(sample=False)
        penalty(s, lam=1.0).backward()
        grads.append(first.grad[1, :, 2].clone())
        other = first.grad[0, :, 2].clone()
        grads.append(other)
    torch.testing.assert_close(grads[2], 0.1 * grads[0])  # the prior pair: a tenth of the push
    torch.testing.assert_close(grads[3], grads[1])  # other pairs: unchanged


def test_pair_weights_need_a_per_output_field():
    with pytest.raises(ValueError, match="per_output"):
        scn.SparseODE(3, hidden=(4,), penalty_weights=np.ones((3, 3)))
    model = scn.SparseODE(3, hidden=(4,), per_output=True, inputs=[0, 2], penalty_weights=np.full((3, 3), 0.5))
    np.testing.assert_allclose(model.system.pair_weight.numpy(), 0.5)
    assert model.system.pair_weight.shape == (3, 2)  # only the regulators' columns are kept
    with pytest.raises(ValueError, match="shape"):
        model.set_penalty_weights(np.ones((3, 2)))
    with pytest.raises(ValueError, match="non-negative"):
        model.set_penalty_weights(-np.ones((3, 3)))


def test_inputs_by_name_and_round_trip(tmp_path):
    model = scn.SparseODE(
        3, hidden=(4,), per_output=True, var_names=["a", "b", "c"], inputs=["c", "a"], penalty_weights=np.eye(3) + 1
    )
    assert model.config.inputs == [2, 0] and model.config.self_inputs
    t = np.linspace(0, 1, 8)
    values = np.c_[np.sin(t), np.cos(t), t]
    model.fit(t, values, n_iter=3, refit_iter=2, progress_bar=False)
    model.save(tmp_path)
    loaded = scn.SparseODE.load(tmp_path)
    torch.testing.assert_close(loaded.system.pair_weight, model.system.pair_weight)
    np.testing.assert_allclose(loaded.predict(t, values[0]), model.predict(t, values[0]))
    np.testing.assert_allclose(loaded.jacobian(values), model.jacobian(values))
    with pytest.raises(KeyError, match="'z'"):
        scn.SparseODE(3, var_names=["a", "b", "c"], inputs=["z"])


@pytest.mark.skipif(
    not (Path(os.environ.get("SCNODE_DATA_DIR", "")) / "tfs").is_dir(), reason="SCNODE_DATA_DIR has no tfs/"
)
def test_tf_list_reads_the_organisms_lists():
    human, mouse = scn.datasets.tf_list("human"), scn.datasets.tf_list("mouse")
    assert len(human) > 1500 and len(mouse) > 1500
    assert "GATA1" in human and "Gata1" in mouse and "SPI1" in human
    assert scn.datasets.tf_list("hs") == human
    with pytest.raises(ValueError, match="Unknown organism 'yeast'"):
        scn.datasets.tf_list("yeast")
