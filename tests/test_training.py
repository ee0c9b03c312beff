import importlib
import itertools

import numpy as np
import pytest
import torch
from helpers import damped_system

import scnode as scn
from scnode.core import SolverOptions, TimeGrid, solve_batched
from scnode.model import resolve_device

train_module = importlib.import_module("scnode.core.train")  # the module, not the function it exports
SMALL = {"hidden": (8,), "velocity_hidden": (4,), "device": "cpu"}


@pytest.fixture(scope="module")
def data():
    return damped_system()


def test_time_window_minibatches(data):
    times, values = data
    m = scn.SparseODE(3, method="base", **SMALL)
    m.fit(times, values, n_iter=8, batch_time=5, batch_size=4, refit_iter=0, progress_bar=False)
    assert len(m.history.loss) == 8 and np.isfinite(m.history.loss).all()
    assert len(m.history.seconds) == 8 and min(m.history.seconds) > 0  # wall time of each iteration
    with pytest.raises(ValueError, match="batch_time=50 is longer than every trajectory"):
        m.fit(times, values, n_iter=2, batch_time=50, progress_bar=False)
    with pytest.raises(ValueError, match="batch_time must be at least 2"):
        m.fit(times, values, n_iter=2, batch_time=1, progress_bar=False)


def test_training_reduces_the_loss(data):
    times, values = data
    m = scn.SparseODE(3, method="base", order=2, random_state=0, **SMALL)
    m.fit(times, values, n_iter=60, lr=0.02, refit_iter=0, horizon_warmup=0, progress_bar=False)
    assert min(m.history.mse[-10:]) < 0.5 * m.history.mse[0]


def test_horizon_warmup_fits_a_growing_span(data, monkeypatch):
    times, values = data
    seen = []
    original = train_module.solve_batched

    def spy(func, y0, grid, options):
        seen.append(float(grid.union[-1]))
        return original(func, y0, grid, options)

    monkeypatch.setattr(train_module, "solve_batched", spy)
    m = scn.SparseODE(3, method="base", **SMALL)
    m.fit(times, values, n_iter=10, horizon_warmup=5, refit_iter=0, progress_bar=False)
    span = max(float(t[-1] - t[0]) for t in times)
    assert seen[0] < 0.3 * span
    assert all(a <= b + 1e-6 for a, b in itertools.pairwise(seen[:6]))
    assert seen[-1] == pytest.approx(span, rel=1e-5)


def test_ctrl_c_keeps_the_best_model_and_stops_the_caller(data, monkeypatch):
    times, values = data
    calls = {"n": 0}
    original = train_module.solve_batched

    def interrupt_on_sixth(func, y0, grid, options):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return original(func, y0, grid, options)

    monkeypatch.setattr(train_module, "solve_batched", interrupt_on_sixth)
    m = scn.SparseODE(3, method="base", random_state=1, **SMALL)
    with pytest.raises(scn.core.FitInterrupted, match="after 5 of 50 iterations") as info:
        m.fit(times, values, n_iter=50, refit_iter=0, horizon_warmup=0, progress_bar=False)
    assert calls["n"] == 6  # nothing ran after the interrupt
    assert info.value.model is m and info.value.history is m.history
    assert m.history.interrupted
    assert len(m.history.loss) == 5
    assert info.value.best_iteration == int(np.argmin(m.history.loss))
    assert f"best state so far (iteration {info.value.best_iteration})" in str(info.value)
    best = int(np.argmin(m.history.loss))
    # the restored model reproduces the best recorded loss
    monkeypatch.setattr(train_module, "solve_batched", original)
    pred = m.predict(times, np.stack([v[0] for v in values]))
    mse = np.mean(np.concatenate([(p - v) ** 2 for p, v in zip(pred, values, strict=True)]))
    assert mse == pytest.approx(m.history.mse[best], rel=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "rtol", "atol"),
    [
        ({}, 1e-5, 1e-7),
        # a gated grouped field: deferred first-layer gradient and fused evaluations; its adjoint
        # gradient differs by 1.3e-5 relative with the layers applied one by one as well
        ({"grouped": True, "gated": True}, 1e-4, 1e-6),
    ],
)
def test_adjoint_gradients_match_direct(kwargs, rtol, atol):
    torch.manual_seed(0)
    system = scn.core.ODESystem(3, order=1, hidden=(6,), **kwargs).double()
    y0 = torch.randn(2, 3, dtype=torch.float64)
    grid = TimeGrid.from_times([torch.linspace(0, 1, 5, dtype=torch.float64), torch.linspace(0, 0.5, 4).double()])
    grads = []
    for adjoint in (False, True):
        system.zero_grad()
        system.prepare(sample=False)
        assert system.field._fused == bool(kwargs)
        out = solve_batched(system, y0, grid, SolverOptions(rtol=1e-9, atol=1e-9, adjoint=adjoint))
        out[grid.mask].pow(2).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in system.field.parameters() if p.grad is not None]))
    assert len(grads[0]) == sum(p.numel() for p in system.field.parameters())
    torch.testing.assert_close(grads[0], grads[1], rtol=rtol, atol=atol)


def test_device_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            scn.SparseODE(3, device="cuda")


def test_bad_config_errors():
    with pytest.raises(ValueError, match="Unknown method 'pathregg'"):
        scn.SparseODE(3, method="pathregg")
    with pytest.raises(ValueError, match="lam"):
        scn.SparseODE(3, lam=-1.0)
    with pytest.raises(ValueError, match="order must be 1 or 2"):
        scn.SparseODE(3, order=3)
    with pytest.raises(ValueError, match="Unknown solver"):
        scn.SparseODE(3, solver="rk5")
    with pytest.raises(ValueError, match="Unknown activation"):
        scn.SparseODE(3, activation="gelu2")


def test_fit_path_warm_starts_and_matches_a_plain_fit_at_its_first_lambda(data):
    times, values = data
    kw = {"method": "pathreg", "random_state": 2, **SMALL}
    plain = scn.SparseODE(3, lam=0.5, **kw)
    plain.fit(times, values, n_iter=8, refit_iter=4, horizon_warmup=2, progress_bar=False)
    path_model = scn.SparseODE(3, **kw)
    models = path_model.fit_path(
        times, values, [2.0, 0.5], n_iter=8, path_iter=3, refit_iter=4, horizon_warmup=2, progress_bar=False
    )
    assert [m.config.lam for m in models] == [0.5, 2.0]
    first = models[0]
    for k, v in plain.system.state_dict().items():
        assert torch.equal(v, first.system.state_dict()[k]), k
    assert len(models[1].history.loss) == 8 + 3 + 4  # warm start: the path's history goes on
    assert not torch.equal(models[0].system.field.layers[0].weight, models[1].system.field.layers[0].weight)
    with pytest.raises(ValueError, match=">= 0"):
        path_model.fit_path(times, values, [-1.0], n_iter=2, progress_bar=False)


def test_clone_is_independent(data):
    times, values = data
    m = scn.SparseODE(3, method="l0", **SMALL)
    c = m.clone()
    c.fit(times, values, n_iter=2, refit_iter=0, progress_bar=False)
    assert not torch.equal(m.system.field.layers[0].weight, c.system.field.layers[0].weight)
    assert m.history.loss == []


def test_x0_noise_perturbs_the_start_and_is_seeded(data, monkeypatch):
    times, values = data
    seen = []
    real = train_module._objective_terms

    def spy(system, method, batch, *args, **kwargs):
        seen.append(batch.x0.clone())
        return real(system, method, batch, *args, **kwargs)

    monkeypatch.setattr(train_module, "_objective_terms", spy)
    m = scn.SparseODE(3, method="base", **SMALL)
    m.fit(times, values, n_iter=3, x0_noise=0.1, refit_iter=0, horizon_warmup=0, progress_bar=False)
    x0 = torch.stack([torch.as_tensor(v[0], dtype=seen[0].dtype) for v in values])
    shifts = [s - x0 for s in seen]
    assert all(0.02 < float(d.std()) < 0.3 for d in shifts)  # about the requested size
    assert not torch.allclose(shifts[0], shifts[1])  # fresh noise every iteration
    seen.clear()
    m.fit(times, values, n_iter=1, refit_iter=0, horizon_warmup=0, progress_bar=False)
    torch.testing.assert_close(seen[0], x0)  # none by default
    with pytest.raises(ValueError, match="x0_noise must be >= 0"):
        m.fit(times, values, n_iter=1, x0_noise=-1.0, progress_bar=False)


@pytest.mark.parametrize("method", ["pathreg", "grouplasso"])
def test_fused_adam_learns_what_plain_adam_learns(data, monkeypatch, method):
    """The fused optimizer is an implementation detail: same losses and weights as the plain one."""
    times, values = data
    fits = []
    for fused in (True, False):
        monkeypatch.setattr(train_module, "FUSED_ADAM", fused)
        model = scn.SparseODE(3, method=method, order=2, lam=0.05, random_state=1, **SMALL)
        model.fit(times, values, n_iter=8, refit_iter=4, progress_bar=False)
        fits.append(model)
    monkeypatch.setattr(train_module, "FUSED_ADAM", True)
    groups = train_module._make_optimizer(fits[0].system, train_module.TrainConfig(), refit=False)[0].param_groups
    assert all(g["fused"] for g in groups)  # the fused kernel is what the first fit used
    np.testing.assert_allclose(fits[0].history.loss, fits[1].history.loss, rtol=1e-5)
    for a, b in zip(fits[0].system.parameters(), fits[1].system.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_penalty_delay_and_gate_eps(data):
    """Delayed iterations fit the data alone; the gates get their own Adam eps."""
    times, values = data
    with pytest.raises(ValueError, match="penalty_delay must be >= 0"):
        train_module.TrainConfig(penalty_delay=-1)
    with pytest.raises(ValueError, match="gate_eps must be positive"):
        train_module.TrainConfig(gate_eps=0.0)

    def gates(delay: int) -> torch.Tensor:
        model = scn.SparseODE(3, method="pathreg", order=2, lam=5.0, random_state=0, **SMALL)
        model.fit(times, values, n_iter=30, refit_iter=0, penalty_delay=delay, gate_eps=1e-16, progress_bar=False)
        groups = train_module._make_optimizer(model.system, train_module.TrainConfig(gate_eps=1e-16), refit=False)[0]
        assert [g["eps"] for g in groups.param_groups] == [1e-8, 1e-16]
        return torch.cat([layer.log_alpha.detach().flatten() for layer in model.system.sparse_layers()])

    start = importlib.import_module("scnode.core.gates").log_alpha_for_keep_prob(0.999)
    penalised, delayed = gates(0), gates(30)
    assert penalised.mean() < start - 1.0  # the penalty pulled every gate towards closing
    assert abs(float(delayed.mean()) - start) < 0.5  # without it only the data moved them, both ways
    assert delayed.min() < start < delayed.max()
