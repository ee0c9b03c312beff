import numpy as np
import pytest
import torch

import scnode as scn
from scnode.core import METHODS, NonFiniteLossError, Trajectories, layers

SMALL = {"hidden": (8,), "velocity_hidden": (4,), "device": "cpu"}
# the penalised phase alone: no refit, no horizon warm-up (their own tests say so explicitly)
PLAIN = {"refit_iter": 0, "horizon_warmup": 0}


@pytest.fixture(scope="module")
def data():
    adata = scn.datasets.second_order_system(n_trajectories=2, n_times=15, t_max=4.0, random_state=1)
    times, values, _ = scn.pp.trajectories(adata, trajectory_key="trajectory")
    return times, [v.astype(np.float32) for v in values]


def _state(model):
    return {k: v.detach().clone() for k, v in model.system.state_dict().items()}


def _assert_states_equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# -------------------------------------------------------------------------------------------- repeatability
def test_same_seed_same_result(data):
    times, values = data
    fits = [
        scn.SparseODE(3, method="pathreg", random_state=s, **SMALL).fit(
            times, values, n_iter=15, progress_bar=False, **PLAIN
        )
        for s in (0, 0, 1)
    ]
    a, b, c = fits
    assert len(a.history.loss) == 15
    assert a.history.loss == b.history.loss
    _assert_states_equal(_state(a), _state(b))
    assert a.history.loss != c.history.loss
    assert not torch.equal(a.system.field.layers[0].weight, c.system.field.layers[0].weight)


def test_seed_does_not_touch_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    scn.SparseODE(3, method="pathreg", random_state=5, **SMALL)
    assert torch.equal(torch.rand(3), expected)


# -------------------------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("method", ["pathreg", "l0"])
def test_checkpoint_resume_matches_straight_run(data, tmp_path, method):
    times, values = data
    kw = {"method": method, "random_state": 3, **SMALL}
    a = scn.SparseODE(3, **kw).fit(times, values, n_iter=20, lr_patience=3, progress_bar=False, **PLAIN)
    ckpt = tmp_path / "c.pt"
    b = scn.SparseODE(3, **kw).fit(
        times, values, n_iter=10, lr_patience=3, checkpoint=ckpt, checkpoint_every=10, progress_bar=False, **PLAIN
    )
    assert ckpt.exists()
    assert b.history.loss == a.history.loss[:10]
    c = scn.SparseODE(3, **kw).fit(times, values, n_iter=20, lr_patience=3, resume=ckpt, progress_bar=False, **PLAIN)
    assert len(c.history.loss) == 20
    assert c.history.loss == a.history.loss
    assert c.history.lr == a.history.lr
    _assert_states_equal(_state(c), _state(a))


def test_checkpoint_resume_spanning_refit(data, tmp_path):
    times, values = data
    kw = {"method": "pathreg", "random_state": 4, "lam": 0.5, **SMALL}
    a = scn.SparseODE(3, **kw).fit(times, values, n_iter=10, refit_iter=10, progress_bar=False)
    ckpt = tmp_path / "refit.pt"
    # B stops in the middle of the refit phase (iteration 15 of 20)
    scn.SparseODE(3, **kw).fit(
        times, values, n_iter=10, refit_iter=5, checkpoint=ckpt, checkpoint_every=100, progress_bar=False
    )
    assert torch.load(ckpt, weights_only=True)["iteration"] == 15  # tensors and plain data only
    c = scn.SparseODE(3, **kw).fit(times, values, n_iter=10, refit_iter=10, resume=ckpt, progress_bar=False)
    assert c.history.loss == a.history.loss
    _assert_states_equal(_state(c), _state(a))
    # gates are frozen during the refit
    assert not c.system.field.layers[0].log_alpha.requires_grad


def test_checkpoint_resume_at_refit_start(data, tmp_path):
    times, values = data
    kw = {"method": "pathreg", "random_state": 4, "lam": 0.5, **SMALL}
    a = scn.SparseODE(3, **kw).fit(times, values, n_iter=10, refit_iter=5, progress_bar=False)
    ckpt = tmp_path / "start.pt"
    scn.SparseODE(3, **kw).fit(times, values, n_iter=10, checkpoint=ckpt, refit_iter=0, progress_bar=False)
    c = scn.SparseODE(3, **kw).fit(times, values, n_iter=10, refit_iter=5, resume=ckpt, progress_bar=False)
    assert c.history.loss == a.history.loss
    _assert_states_equal(_state(c), _state(a))


def test_refit_keeps_zero_pattern(data):
    times, values = data
    m = scn.SparseODE(3, method="pathreg", lam=0.5, random_state=0, **SMALL)
    m.fit(times, values, n_iter=10, progress_bar=False, **PLAIN)
    zero_before = torch.from_numpy(m.adjacency() == 0)
    m2 = scn.SparseODE(3, method="pathreg", lam=0.5, random_state=0, **SMALL)
    m2.fit(times, values, n_iter=10, refit_iter=5, progress_bar=False)
    # the refit can only keep or add zeros of the pattern frozen at iteration 10
    assert (torch.from_numpy(m2.adjacency() == 0) >= zero_before).all()
    for layer in m2.system.field.layers:
        assert ((layer.weight * layer.mask)[layer.mask == 0] == 0).all()


# ------------------------------------------------------------------------------------------- persistence
def test_save_load_round_trip(data, tmp_path):
    times, values = data
    m = scn.SparseODE(3, method="pathreg", order=2, var_names=["a", "b", "c"], **SMALL)
    m.fit(times, values, n_iter=5, progress_bar=False, **PLAIN)
    m.save(tmp_path / "model")
    loaded = scn.SparseODE.load(tmp_path / "model", device="cpu")
    x0 = values[0][0]
    np.testing.assert_array_equal(loaded.predict(times[0], x0), m.predict(times[0], x0))
    np.testing.assert_array_equal(loaded.adjacency(), m.adjacency())
    assert loaded.history.loss == m.history.loss
    assert loaded.config == m.config
    loaded2 = scn.SparseODE.load(tmp_path / "model", var_names=["a", "b", "c"], device="cpu")
    np.testing.assert_array_equal(loaded2.adjacency(), m.adjacency())
    with pytest.raises(ValueError, match=r"[Vv]ariable names"):
        scn.SparseODE.load(tmp_path / "model", var_names=["a", "c", "b"], device="cpu")
    with pytest.raises(FileNotFoundError):
        scn.SparseODE.load(tmp_path / "nothing", device="cpu")


def test_a_model_saved_with_float_masks_loads(data, tmp_path):
    """Masks are boolean buffers; a model saved when they were float (0/1) loads with the same pattern."""
    times, values = data
    m = scn.SparseODE(3, method="pathreg", per_output=True, lam=0.5, random_state=0, **SMALL)
    m.fit(times, values, n_iter=6, refit_iter=2, progress_bar=False)
    m.system.field.layers[0].mask[0, :, 1] = False  # a pattern, as a refit freezes one: gene 1 cut from gene 0
    masks = {k: v.clone() for k, v in m.system.state_dict().items() if k.endswith("mask")}
    assert masks and all(v.dtype == torch.bool for v in masks.values())
    assert m.adjacency()[0, 1] == 0
    m.save(tmp_path / "model")
    state = torch.load(tmp_path / "model" / "model.pt")
    torch.save({k: v.float() if k in masks else v for k, v in state.items()}, tmp_path / "model" / "model.pt")
    loaded = scn.SparseODE.load(tmp_path / "model", device="cpu")
    for k, v in loaded.system.state_dict().items():
        if k in masks:
            assert v.dtype == torch.bool and torch.equal(v, masks[k])
    np.testing.assert_array_equal(loaded.adjacency(), m.adjacency())
    np.testing.assert_array_equal(loaded.predict(times[0], values[0][0]), m.predict(times[0], values[0][0]))


# -------------------------------------------------------------------------------------------- prediction
def test_predict_shapes(data):
    _, values = data
    m1 = scn.SparseODE(3, method="base", **SMALL)
    t = np.linspace(0, 2, 7)
    assert m1.predict(t, values[0][0]).shape == (7, 3)
    out = m1.predict([t, t[:4] + 1.0], np.stack([values[0][0], values[1][0]]))
    assert isinstance(out, list) and [o.shape for o in out] == [(7, 3), (4, 3)]
    m2 = scn.SparseODE(3, method="base", order=2, **SMALL)
    assert m2.predict(t, values[0][0]).shape == (7, 3)
    assert m2.predict(t, values[0][0], return_velocity=True).shape == (7, 6)
    v0 = np.array([0.1, -0.2, 0.3])
    xv = m2.predict(t, values[0][0], v0=v0, return_velocity=True)
    np.testing.assert_allclose(xv[0], np.r_[values[0][0], v0], atol=1e-6)
    # the first predicted point is the initial state
    np.testing.assert_allclose(m1.predict(t, values[0][0])[0], values[0][0], atol=1e-6)
    with pytest.raises(ValueError):
        m1.predict([t, t], values[0][0:1])


@pytest.mark.parametrize("order", [1, 2])
def test_predict_hold(order):
    m = scn.SparseODE(3, method="base", order=order, var_names=["a", "b", "c"], **SMALL)
    t = np.linspace(0, 3, 11)
    x0 = np.array([1.0, -0.5, 0.3])
    pred = m.predict(t, x0, hold={0: 0.4})
    assert (pred[:, 0] == np.float32(0.4)).all()
    assert np.abs(np.diff(pred[:, 1:], axis=0)).max() > 1e-4  # the others move
    # names work too
    np.testing.assert_array_equal(m.predict(t, x0, hold={"a": 0.4}), pred)
    with pytest.raises(KeyError):
        m.predict(t, x0, hold={"zz": 0.4})
    with pytest.raises(ValueError):
        m.predict(t, x0, hold={5: 0.4})
    if order == 2:
        xv = m.predict(t, x0, hold={0: 0.4}, return_velocity=True)
        assert (xv[:, 3] == 0).all()


@pytest.mark.parametrize("method", list(METHODS))
def test_predict_hold_every_method(data, method):
    times, values = data
    m = scn.SparseODE(3, method=method, solver="rk4", **SMALL)
    m.fit(times, values, n_iter=2, lr=0.05, progress_bar=False, **PLAIN)
    pred = m.predict(np.linspace(0, 3, 6), np.array([1.0, -0.5, 0.3]), hold={0: 0.4})
    np.testing.assert_allclose(pred[:, 0], 0.4, rtol=0, atol=1e-6)


@pytest.mark.parametrize("order", [1, 2])
def test_predict_replace(order):
    m = scn.SparseODE(3, method="base", order=order, **SMALL)
    t = np.linspace(0, 3, 11)
    x0 = np.array([1.0, -0.5, 0.3])
    v0 = np.zeros(3) if order == 2 else None
    pred = m.predict(t, x0, v0=v0, replace={0: lambda x, v: torch.zeros_like(x[..., 0])})
    assert (pred[:, 0] == np.float32(1.0)).all()
    free = m.predict(t, x0, v0=v0)
    assert np.abs(free[:, 0] - 1.0).max() > 1e-4
    # a replaced mechanism with a constant rate gives a straight line (first order)
    if order == 1:
        ramp = m.predict(t, x0, replace={1: lambda x, v: torch.ones_like(x[..., 0])})
        np.testing.assert_allclose(ramp[:, 1], -0.5 + t, atol=1e-5)


# -------------------------------------------------------------------------------------------- guards
def test_nonfinite_guard_huge_lr(data):
    times, values = data
    m = scn.SparseODE(3, method="base", solver="rk4", activation="relu", **SMALL)  # unbounded: must overflow
    with pytest.raises(NonFiniteLossError, match=r"learning rate|lr"):
        m.fit(times, values, n_iter=20, lr=1e6, progress_bar=False, **PLAIN)
    assert all(torch.isfinite(v).all() for v in m.system.state_dict().values())


def test_nonfinite_guard_huge_data(data):
    times, values = data
    m = scn.SparseODE(3, method="base", **SMALL)
    initial = _state(m)
    with pytest.raises(NonFiniteLossError, match=r"learning rate|lr") as info:
        m.fit(times, [v * 1e30 for v in values], n_iter=5, progress_bar=False, **PLAIN)
    assert isinstance(info.value, FloatingPointError)
    assert all(torch.isfinite(v).all() for v in m.system.state_dict().values())
    _assert_states_equal(_state(m), initial)  # it failed at iteration 0: the initial model is restored


def test_nonfinite_guard_restores_a_working_model(data):
    times, values = data
    m = scn.SparseODE(3, method="base", solver="rk4", **SMALL)
    with pytest.raises(NonFiniteLossError):
        m.fit(times, values, n_iter=20, lr=1e6, progress_bar=False, **PLAIN)
    assert np.isfinite(m.predict(times[0], values[0][0])).all()


# ------------------------------------------------------------------------------------------ data checks
def test_trajectories_from_arrays_errors():
    t = np.linspace(0, 1, 5)
    y = np.zeros((5, 2))
    tr = Trajectories.from_arrays(t, y)
    assert len(tr) == 1 and tr.n_vars == 2 and tr.x0.shape == (1, 2)
    with pytest.raises(ValueError, match="strictly increasing"):
        Trajectories.from_arrays(np.array([0.0, 0.5, 0.5, 0.7, 1.0]), y)
    with pytest.raises(ValueError, match="strictly increasing"):
        Trajectories.from_arrays(t[::-1].copy(), y)
    bad = y.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        Trajectories.from_arrays(t, bad)
    with pytest.raises(ValueError, match="NaN"):
        Trajectories.from_arrays(np.array([0, 0.1, np.inf, 0.3, 0.4]), y)
    with pytest.raises(ValueError, match=r"values\[0\] must have shape"):
        Trajectories.from_arrays(t, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="variables"):
        Trajectories.from_arrays([t, t], [y, np.zeros((5, 3))])
    with pytest.raises(ValueError, match="time grids"):
        Trajectories.from_arrays([t], [y, y])
    with pytest.raises(ValueError, match="at least 2"):
        Trajectories.from_arrays(t[:1], y[:1])
    with pytest.raises(ValueError, match="x0"):
        Trajectories.from_arrays(t, y, x0=np.zeros(3))


@pytest.mark.parametrize("key", ["x0", "v0"])
def test_trajectories_wrong_initial_state_size(key):
    t = np.linspace(0, 1, 5)
    y = np.zeros((5, 2))
    with pytest.raises(ValueError, match=key):
        Trajectories.from_arrays([t, t], [y, y], **{key: np.zeros(3)})


def test_fit_rejects_wrong_n_vars(data):
    times, values = data
    with pytest.raises(ValueError, match="variables"):
        scn.SparseODE(2, method="base", **SMALL).fit(times, values, n_iter=1, progress_bar=False, **PLAIN)


# -------------------------------------------------------------------------------------------- methods
@pytest.mark.parametrize(
    ("method", "order"),
    [(m, o) for m in METHODS for o in (1, 2)],
)
def test_every_method_fits(data, method, order):
    times, values = data
    m = scn.SparseODE(3, method=method, order=order, solver="rk4", **SMALL)
    m.fit(times, values, n_iter=3, progress_bar=False, **PLAIN)
    assert len(m.history.loss) == 3
    assert np.isfinite(m.history.loss).all()
    adj = m.adjacency()
    assert adj.shape == (3, 3 * order)
    assert np.isfinite(adj).all()
    pred = m.predict(times[0], values[0][0])
    assert pred.shape == values[0].shape and np.isfinite(pred).all()
    assert np.isfinite(m.history.penalty).all()
    if METHODS[method].penalty is not None:
        assert m.history.penalty[-1] > 0
    else:
        assert m.history.penalty == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("lam", [40.0, 200.0])
def test_grouplasso_prox_gives_zero_groups(data, lam):
    times, values = data
    m = scn.SparseODE(3, method="grouplasso", lam=lam, solver="rk4", **SMALL)
    m.fit(times, values, n_iter=5, lr=0.05, progress_bar=False, **PLAIN)
    w1 = m.system.field.layers[0].weight.detach()
    zero_group = (w1 == 0).all(dim=1)  # (outputs, inputs)
    if lam == 200.0:  # threshold lr * lam / 9 > 1 per step: every group ends at zero
        assert zero_group.all()
    adj = torch.from_numpy(m.adjacency())
    assert (adj[zero_group] == 0).all()
    assert torch.equal(adj == 0, zero_group)
    assert m.feature_sparsity == pytest.approx(zero_group.float().mean().item())


@pytest.mark.parametrize("order", [1, 2])
def test_lassonet_inner_hierarchy_after_fit(data, order):
    times, values = data
    M = 2.0
    m = scn.SparseODE(3, method="lassonet_inner", order=order, lam=1.0, M=M, solver="rk4", **SMALL)
    m.fit(times, values, n_iter=5, lr=0.05, progress_bar=False, **PLAIN)
    skip = m.system.skip.weight.detach()
    first = m.system.field.layers[0].weight.detach()
    assert skip.shape == (3, 3 * order) and first.shape[1] == 3 * order
    for k in range(3 * order):
        assert first[:, k].abs().max().item() <= M * skip[:, k].norm().item() + 1e-6


def test_lassonet_outer_hierarchy_after_fit(data):
    times, values = data
    M = 2.0
    m = scn.SparseODE(3, method="lassonet_outer", lam=1.0, M=M, solver="rk4", **SMALL)
    m.fit(times, values, n_iter=5, lr=0.05, progress_bar=False, **PLAIN)
    skip = m.system.skip.weight.detach()
    first = m.system.field.layers[0].weight.detach()
    for k in range(3):
        assert first[:, k].abs().max().item() <= M * skip[:, k].norm().item() + 1e-6


def test_invalid_constructor_arguments():
    with pytest.raises(ValueError, match="nope"):
        scn.SparseODE(3, method="nope", device="cpu")
    with pytest.raises(ValueError):
        scn.SparseODE(3, method="base", solver="nope", device="cpu")
    with pytest.raises(ValueError):
        scn.SparseODE(3, method="l0", lam=-1.0, device="cpu")
    with pytest.raises(ValueError):
        scn.SparseODE(3, method="base", order=3, device="cpu")
    with pytest.raises(ValueError):
        scn.SparseODE(3, var_names=["a"], device="cpu")


# ----------------------------------------------------------------------------------------------- dataset
def test_second_order_system_dataset():
    adata = scn.datasets.second_order_system(n_times=30, t_max=6.0)
    assert adata.shape == (30, 3)
    assert list(adata.var_names) == ["x0", "x1", "x2"]
    assert {"time", "trajectory"} <= set(adata.obs.columns)
    np.testing.assert_allclose(adata.obs["time"].to_numpy(), np.linspace(0, 6, 30))
    assert adata.layers["velocity"].shape == (30, 3)
    truth = adata.uns["true_adjacency"]
    assert truth.shape == (3, 6)
    assert int((truth != 0).sum()) == 8
    np.testing.assert_allclose(adata.X[0], [0.4, 0.7, 1.8], atol=1e-6)

    multi = scn.datasets.second_order_system(n_trajectories=3, n_times=10)
    assert multi.shape == (30, 3)
    assert list(multi.obs["trajectory"].cat.categories) == ["0", "1", "2"]
    assert multi.uns["initial_state"].shape == (3, 6)


def test_second_order_system_hold_noise_irregular():
    held = scn.datasets.second_order_system(n_times=25, hold={0: 0.4})
    np.testing.assert_allclose(held.X[:, 0], 0.4, atol=1e-6)
    np.testing.assert_allclose(held.layers["velocity"][:, 0], 0.0, atol=1e-6)
    assert np.abs(np.diff(held.X[:, 1])).max() > 1e-3

    clean = scn.datasets.second_order_system(n_times=25)
    noisy = scn.datasets.second_order_system(n_times=25, noise=0.1)
    assert not np.allclose(clean.X, noisy.X)
    assert 0.03 < np.std(noisy.X - clean.X) < 0.3
    np.testing.assert_array_equal(noisy.layers["velocity"], clean.layers["velocity"])

    irr = scn.datasets.second_order_system(n_trajectories=2, n_times=20, irregular=True, t_max=5.0)
    for name in ("0", "1"):
        t = irr.obs.loc[irr.obs["trajectory"] == name, "time"].to_numpy()
        assert t[0] == 0.0
        assert (np.diff(t) > 0).all() and t[-1] <= 5.0
        assert np.std(np.diff(t)) > 1e-3  # not a uniform grid
    t0 = irr.obs.loc[irr.obs["trajectory"] == "0", "time"].to_numpy()
    t1 = irr.obs.loc[irr.obs["trajectory"] == "1", "time"].to_numpy()
    assert not np.allclose(t0, t1)


def test_second_order_system_matches_coefficients():
    adata = scn.datasets.second_order_system(n_times=200, t_max=2.0)
    t = adata.obs["time"].to_numpy()
    x, v = adata.X.astype(float), adata.layers["velocity"].astype(float)
    c = adata.uns["coefficients"]
    acc = np.gradient(v, t, axis=0)
    np.testing.assert_allclose(acc[5:-5], (np.hstack([x, v]) @ c.T)[5:-5], atol=2e-3)
    np.testing.assert_allclose(np.gradient(x, t, axis=0)[5:-5], v[5:-5], atol=2e-3)


def test_per_output_field_is_an_option_for_gated_methods(tmp_path):
    model = scn.SparseODE(3, method="pathreg", per_output=True, hidden=(4,), device="cpu", random_state=1)
    assert model.system.field.grouped and model.system.field.layers[0].weight.shape == (3, 4, 3)
    with torch.no_grad():  # cut every path of output 0 in its own sub-network: only row 0 of A vanishes
        model.system.field.layers[1].weight[0].zero_()
    adj = model.adjacency()
    assert adj.shape == (3, 3) and (adj[0] == 0).all() and (adj[1:] != 0).all()
    model.save(tmp_path / "m")
    back = scn.SparseODE.load(tmp_path / "m")
    assert back.config.per_output
    np.testing.assert_allclose(back.adjacency(), adj)
    with pytest.raises(ValueError, match="per_output=True is not available for 'lassonet_outer'"):
        scn.SparseODE(3, method="lassonet_outer", per_output=True)


def test_input_gates_option(data, tmp_path):
    """gates="inputs": only the first layer (and the linear term) has gates; fits, refits, saves and loads."""
    times, values = data
    values = [v[:, :3] for v in values]
    model = scn.SparseODE(3, method="pathreg", per_output=True, gates="inputs", lam=0.5, random_state=1, **SMALL)
    field = model.system.field
    assert [layer.gated for layer in field.layers] == [True, False]
    out_before = field.layers[1].weight.detach().clone()
    model.fit(times, values, n_iter=6, refit_iter=2, progress_bar=False)
    assert len(model.history.loss) == 8 and np.isfinite(model.history.loss).all()
    assert not torch.equal(field.layers[1].weight, out_before)  # trained, without gates
    model.save(tmp_path / "m")
    back = scn.SparseODE.load(tmp_path / "m")
    assert back.config.gates == "inputs" and not back.system.field.layers[1].gated
    np.testing.assert_allclose(back.adjacency(), model.adjacency())
    with pytest.raises(ValueError, match="gates='inputs' applies to the gated methods"):
        scn.SparseODE(3, method="grouplasso", gates="inputs")


def test_pair_gates_option(data, tmp_path):
    """gates="pairs": one gate per (output, input) pair; fits, refits to a pair mask, saves and loads."""
    times, values = data
    values = [v[:, :3] for v in values]
    model = scn.SparseODE(3, method="pathreg", per_output=True, gates="pairs", lam=0.5, random_state=1, **SMALL)
    first = model.system.field.layers[0]
    assert first.log_alpha.shape == (3, 1, 3) and first.weight.shape == (3, 8, 3)
    model.fit(times, values, n_iter=6, refit_iter=2, progress_bar=False)
    assert np.isfinite(model.history.loss).all() and first.mask.shape == (3, 1, 3)
    adj = model.adjacency()
    np.testing.assert_array_equal(adj != 0, first.mask[:, 0, :].numpy() != 0)  # an edge is its pair's gate
    model.save(tmp_path / "m")
    back = scn.SparseODE.load(tmp_path / "m")
    assert back.config.gates == "pairs" and back.system.field.layers[0].log_alpha.shape == (3, 1, 3)
    np.testing.assert_allclose(back.adjacency(), adj)
    with pytest.raises(ValueError, match="gates='pairs' applies to the gated methods"):
        scn.SparseODE(3, method="grouplasso", gates="pairs")
    with pytest.raises(ValueError, match="gates='pairs' needs one network per output"):
        scn.SparseODE(3, method="pathreg", gates="pairs")


@pytest.mark.parametrize(("method", "order"), [("pathreg", 1), ("grouplasso", 2), ("l0", 2)])
def test_deferred_first_layer_gradient_learns_the_same(data, monkeypatch, method, order):
    """The grouped first layer's gradient formed once per backward equals autograd's per-product sum."""
    import scnode.core.fields as fields

    times, values = data
    if order == 1:
        values = [v[:, :3] for v in values]
    fits = []
    for deferred in (True, False):
        monkeypatch.setattr(fields, "DEFER_FIRST_LAYER_GRADIENT", deferred)
        model = scn.SparseODE(3, method=method, order=order, per_output=True, lam=0.05, random_state=2, **SMALL)
        fits.append(model.fit(times, values, n_iter=6, refit_iter=2, progress_bar=False))
    np.testing.assert_allclose(fits[0].history.loss, fits[1].history.loss, rtol=1e-5)
    w = [f.system.field.layers[0].weight.detach() for f in fits]
    assert w[0].abs().max() > 0
    torch.testing.assert_close(w[0], w[1], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("onednn", [False, True])
@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize(("self_inputs", "n_rows"), [(False, 3), (True, 3), (True, 30)])
def test_fused_grouped_network_equals_its_layers(monkeypatch, onednn, gated, self_inputs, n_rows):
    """One autograd node per evaluation gives the layers' values and the same gradients.

    With 3 rows the two evaluations stack 12 rows against 7 inputs, with 30 rows 120: the deferred
    weight gradient is formed both ways (fewer inputs than rows, and more).
    """
    import scnode.core.fields as fields

    if onednn and not layers._onednn_ops():
        pytest.skip("torch without oneDNN's packed-weight linear")
    monkeypatch.setattr(layers, "ONEDNN_MIN_WEIGHTS", 1 if onednn else 2**62)
    x = torch.randn(2, n_rows, 7, generator=torch.Generator().manual_seed(0))
    results = []
    for fused in (True, False):
        monkeypatch.setattr(fields, "FUSE_GROUPED_NETWORK", fused)
        torch.manual_seed(1)
        field = fields.MLP(7, 7, (5,), gated=gated, grouped=True, self_inputs=self_inputs)
        field.prepare(sample=True, generator=torch.Generator().manual_seed(3))
        assert field._fused == fused and field._deferred.onednn == onednn
        xi = x.clone().requires_grad_()
        own = xi if self_inputs else None
        y = field(field(xi, own).tanh() + xi, own)  # two evaluations sharing the weights
        assert y.shape == (2, n_rows, 7)
        (y.pow(2).sum() + y[..., 0].sum()).backward()
        grads = {n: p.grad for n, p in field.named_parameters()}
        results.append({"y": y.detach(), "x": xi.grad, **grads})
    # the node sums by vecdot and adds the self term by a fused multiply-add: equal up to float32 rounding
    torch.testing.assert_close(results[0]["y"], results[1]["y"], rtol=1e-5, atol=1e-7)
    for name, a in results[0].items():
        assert "log_alpha" in name or a.abs().max() > 0  # saturated gates (keep 0.999) have no gradient
        torch.testing.assert_close(a, results[1][name], rtol=1e-5, atol=1e-6)
    for kw in ({"activation": "tanh"}, {"hidden": (5, 4)}):  # other networks go layer by layer
        field = fields.MLP(7, 7, **{"hidden": (5,), **kw}, grouped=True)
        field.prepare(sample=False)
        assert not field._fused and field(x).shape == (2, n_rows, 7)


@pytest.mark.skipif(not layers._onednn_ops(), reason="torch without oneDNN's packed-weight linear")
def test_onednn_grouped_products_equal_blas(data, monkeypatch):
    """The grouped first layer's oneDNN products give BLAS's values, gradients and fits."""
    from scnode.core.fields import MLP

    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    results, fits = [], []
    for threshold in (1, 2**62):
        monkeypatch.setattr(layers, "ONEDNN_MIN_WEIGHTS", threshold)
        torch.manual_seed(1)
        field = MLP(6, 6, (5,), grouped=True)
        field.prepare(sample=False)
        assert field._deferred.onednn == (threshold == 1)
        xi = x.clone().requires_grad_()
        y = field(field(xi).tanh() + xi)  # two products sharing the packed weight
        y.pow(2).sum().backward()
        results.append((y.detach(), xi.grad, field.layers[0].weight.grad))
        model = scn.SparseODE(3, method="grouplasso", lam=0.05, random_state=2, **SMALL)
        fits.append(model.fit(data[0], [v[:, :3] for v in data[1]], n_iter=4, refit_iter=0, progress_bar=False))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fits[0].history.loss, fits[1].history.loss, rtol=1e-5)
    predicted = []
    for threshold in (1, 2**62):  # predictions (no gradients) use it too
        monkeypatch.setattr(layers, "ONEDNN_MIN_WEIGHTS", threshold)
        predicted.append(fits[0].predict(data[0][0], data[1][0][0, :3]))
        assert fits[0].system.field._deferred.onednn == (threshold == 1)
    # the products' float32 rounding, carried through an adaptive solve: measured against the
    # trajectory's scale (entries cross zero), 1e-5 of it; measured 0.6-2.3e-6 of it here
    scale = float(np.abs(predicted[1]).max())
    np.testing.assert_allclose(predicted[0], predicted[1], rtol=1e-5, atol=1e-5 * scale)


def test_mask_of_ones_is_skipped_until_it_changes():
    """The effective weight copies the weight while the mask is all ones, and sees every later mask."""
    layer = layers.SparseLinear(4, 3)
    w = layer.effective_weight(None)
    assert layer.mask_is_ones() and torch.equal(w, layer.weight) and w.data_ptr() != layer.weight.data_ptr()
    with torch.no_grad():
        layer.mask[1, 2] = 0.0  # an in-place write, as a refit's freeze
    assert not layer.mask_is_ones() and layer.effective_weight(None)[1, 2] == 0
    state = {k: v.clone() for k, v in layer.state_dict().items()}
    layer.mask.fill_(1.0)
    assert layer.mask_is_ones()
    layer.load_state_dict(state)  # a saved model with a frozen pattern
    assert layer.effective_weight(None)[1, 2] == 0 and layer.effective_weight(None)[0, 0] == layer.weight[0, 0]
    layer.mask = torch.ones(3, 4)  # another tensor
    assert layer.mask_is_ones()
    w = layer.effective_weight(None)
    w.sum().backward()  # the copy passes the gradient on unchanged
    assert torch.equal(layer.weight.grad, torch.ones(3, 4))
    gated = layers.SparseLinear(4, 3, gated=True)
    z = torch.rand(3, 4)
    assert torch.equal(gated.effective_weight(z), gated.weight * z)
    with torch.no_grad():
        gated.mask[0, 1] = 0.0
    assert gated.effective_weight(z)[0, 1] == 0 and torch.equal(gated.effective_weight(z)[1:], (gated.weight * z)[1:])


def test_linear_term_option(data, tmp_path):
    times, values = data
    model = scn.SparseODE(3, method="pathreg", order=2, linear=True, lam=0.5, random_state=0, **SMALL)
    assert model.system.linear.weight.shape == (3, 6) and model.system.linear.gated
    model.fit(times, values, n_iter=10, refit_iter=5, progress_bar=False)
    # the refit froze the linear term's zeros with the MLP's; its gates are folded into the weights
    lin = model.system.linear
    assert (lin.weight[lin.mask == 0] == 0).all() and not lin.log_alpha.requires_grad
    model.save(tmp_path / "m")
    back = scn.SparseODE.load(tmp_path / "m", device="cpu")
    assert back.config.linear
    np.testing.assert_array_equal(back.adjacency(), model.adjacency())
    np.testing.assert_array_equal(back.predict(times[0], values[0][0]), model.predict(times[0], values[0][0]))
    for method in ("lassonet_inner", "grouplasso"):
        with pytest.raises(ValueError, match=f"linear=True is not available for '{method}'"):
            scn.SparseODE(3, method=method, linear=True)


def test_rates_evaluates_the_field():
    model = scn.SparseODE(2, method="base", order=2, linear=True, hidden=(3,), device="cpu", random_state=0)
    with torch.no_grad():
        model.system.field.layers[1].weight.zero_()  # the MLP leaves only its output bias
        model.system.field.layers[1].bias.zero_()
        model.system.linear.weight.copy_(torch.tensor([[-1.5, 0.0, -0.5, 0.0], [0.0, -2.0, 0.0, -1.0]]))
    x, v = np.array([[1.0, 2.0], [-3.0, 0.5]]), np.array([[0.2, -1.0], [0.0, 4.0]])
    expected = np.c_[-1.5 * x[:, 0] - 0.5 * v[:, 0], -2.0 * x[:, 1] - v[:, 1]]
    np.testing.assert_allclose(model.rates(x, v), expected, rtol=1e-6)
    assert model.rates(x[0], v[0]).shape == (2,)
    with pytest.raises(ValueError, match="needs the velocities"):
        model.rates(x)
    with pytest.raises(ValueError, match="variables in its last axis"):
        model.rates(np.ones((2, 3)), np.ones((2, 3)))
    first = scn.SparseODE(2, method="base", hidden=(3,), device="cpu")
    with pytest.raises(ValueError, match="only for second-order"):
        first.rates(x, v)
    assert first.rates(x).shape == (2, 2)


def test_decay_term_relaxes_states_and_stays_out_of_the_graph(tmp_path):
    tight = {"rtol": 1e-7, "atol": 1e-7}
    model = scn.SparseODE(3, method="pathreg", decay=True, hidden=(4,), device="cpu", random_state=0, **tight)
    plain = scn.SparseODE(3, method="pathreg", hidden=(4,), device="cpu", random_state=0)
    # the term draws no random numbers: the field is the same as without it, and so is the graph
    np.testing.assert_array_equal(model.adjacency(), plain.adjacency())
    np.testing.assert_allclose(model.system.decay_rates().detach().numpy(), 0.1, rtol=1e-6)
    with torch.no_grad():
        for layer in model.system.field.layers:  # an empty field: only the decay is left
            layer.weight.zero_()
            layer.bias.zero_()
        model.system.decay_rho.copy_(torch.log(torch.expm1(torch.tensor([0.5, 1.0, 2.0]))))
    x = np.array([[1.0, -2.0, 3.0]])
    np.testing.assert_allclose(model.rates(x), -np.array([[0.5, 1.0, 2.0]]) * x, rtol=1e-5)
    t = np.linspace(0, 2, 9)
    expected = x * np.exp(-np.outer(t, [0.5, 1.0, 2.0]))
    np.testing.assert_allclose(model.predict(t, x[0]), expected, rtol=1e-5, atol=1e-6)
    assert not model.adjacency().any()  # no regulation, only each variable's own loss
    model.save(tmp_path / "m")
    back = scn.SparseODE.load(tmp_path / "m", device="cpu")
    assert back.config.decay
    np.testing.assert_array_equal(back.predict(t, x[0]), model.predict(t, x[0]))


def test_decay_term_is_trained_in_the_refit(data):
    model = scn.SparseODE(3, method="pathreg", decay=True, lam=0.5, hidden=(4,), device="cpu", random_state=0)
    times, values = data
    model.fit(times, values, n_iter=6, refit_iter=4, progress_bar=False)
    assert model.system.decay_rho.requires_grad
    assert not torch.allclose(model.system.decay_rates(), torch.tensor(0.1))  # it learns


def test_decay_term_is_first_order_only():
    with pytest.raises(ValueError, match="decay=True is a first-order term"):
        scn.SparseODE(3, order=2, decay=True)


@pytest.mark.skipif(not layers._onednn_ops(), reason="torch without oneDNN's packed-weight linear")
@pytest.mark.parametrize("gated", [False, True])
def test_bfloat16_gradients_stay_close_and_leave_the_forward_pass_alone(monkeypatch, gated):
    """``gradient_precision="bfloat16"``: the same values, gradients within bfloat16's rounding of float32's."""
    from scnode.core.fields import MLP

    monkeypatch.setattr(layers, "ONEDNN_MIN_WEIGHTS", 1)
    x = torch.rand(2, 16, 40, generator=torch.Generator().manual_seed(0))
    results = []
    for precision in ("float32", "bfloat16", None):
        torch.manual_seed(1)
        field = MLP(40, 40, (8,), gated=gated, grouped=True, self_inputs=True)
        context = layers.gradient_precision(precision) if precision else torch.enable_grad()
        with context:
            field.prepare(sample=True, generator=torch.Generator().manual_seed(3))
            assert field._deferred.bfloat16 == (precision == "bfloat16")
            xi = x.clone().requires_grad_()
            y = field(field(xi, xi).tanh() + xi, xi)  # two evaluations sharing the weights
            y.pow(2).sum().backward()
        grads = {n: p.grad for n, p in field.named_parameters() if p.grad is not None}
        results.append({"y": y.detach(), "x": xi.grad, **grads})
    f32, bf16, default = results
    for name, value in f32.items():
        assert torch.equal(value, default[name])  # float32 is the default
    assert torch.equal(f32["y"], bf16["y"])  # the forward pass stays float32
    for name in ("x", "layers.0.weight", *(["layers.0.log_alpha"] if gated else [])):
        assert not torch.equal(f32[name], bf16[name])  # rounded differently ...
    for name, a in f32.items():  # ... within 1 % (measured 0.02-0.25 %), also where it flows on
        assert float((a - bf16[name]).norm() / a.norm()) < 0.01, name


def test_gradient_precision_is_checked_and_auto_follows_the_cpu(monkeypatch):
    """Bad precisions name the choices; ``auto`` is bfloat16 only on a CPU that multiplies it in hardware."""
    with pytest.raises(ValueError, match="gradient_precision must be one of"):
        scn.SparseODE(3, method="pathreg", per_output=True, **SMALL).fit(
            [np.linspace(0, 1, 5)], [np.zeros((5, 3))], n_iter=2, gradient_precision="float16"
        )
    with pytest.raises(ValueError, match="gradient_precision must be one of"), layers.gradient_precision("half"):
        pass
    for hardware in (False, True):
        monkeypatch.setattr(layers, "cpu_multiplies_bfloat16", lambda hardware=hardware: hardware)
        with layers.gradient_precision("auto"):
            assert layers._bfloat16_gradients(True) == hardware
            assert not layers._bfloat16_gradients(False)  # only layers that go through oneDNN
    assert not layers._bfloat16_gradients(True)  # float32 outside the block


@pytest.mark.skipif(not layers._onednn_ops(), reason="torch without oneDNN's packed-weight linear")
def test_a_fit_in_bfloat16_gradients_starts_from_the_same_loss_and_stays_close(data, monkeypatch):
    """The fit setting reaches the first layer's products: the first loss equal, the weights close, not equal."""
    monkeypatch.setattr(layers, "ONEDNN_MIN_WEIGHTS", 1)
    times, values = data
    values3 = [v[:, :3] for v in values]
    fits = []
    for precision in ("float32", "bfloat16"):
        model = scn.SparseODE(3, method="pathreg", per_output=True, lam=0.05, random_state=2, **SMALL)
        fits.append(model.fit(times, values3, n_iter=6, refit_iter=0, progress_bar=False, gradient_precision=precision))
    f32, bf16 = fits
    assert f32.history.loss[0] == bf16.history.loss[0]  # the forward pass is float32 in both
    np.testing.assert_allclose(f32.history.loss, bf16.history.loss, rtol=1e-2)
    w = [f.system.field.layers[0].weight.detach() for f in fits]
    assert not torch.equal(w[0], w[1])
    torch.testing.assert_close(w[0], w[1], rtol=0, atol=1e-3)
