"""Training on perturbed cells: held genes in the core, ``perturbation_key`` in preprocessing and the fit."""

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch
from helpers import FIT, cells
from scipy.integrate import solve_ivp

import scnode as scn
from scnode.core import Trajectories


def pulse_cells(perturbations=(None, "A", "B"), n_cells: int = 200, seed: int = 0) -> ad.AnnData:
    """A and B decay from 1 alike, C pulses driven by A alone (dC/dt = 2A - C); knocked-out genes start at 0 and stay.

    Observed without perturbations A and B are the same curve, so C's input may be either: only the
    knockouts tell them apart.
    """
    rng = np.random.default_rng(seed)
    xs, ts, labels = [], [], []
    for label in perturbations:
        held = {"A": [0], "B": [1]}.get(label, [])
        x0 = np.array([1.0, 1.0, 0.0])
        x0[held] = 0.0

        def rate(_t, x, held=held):
            d = np.array([-x[0], -x[1], 2 * x[0] - x[2]])
            d[held] = 0.0
            return d

        t = np.sort(rng.uniform(0, 5, n_cells))
        sol = solve_ivp(rate, (0, 5), x0, t_eval=t, rtol=1e-8)
        xs.append(sol.y.T + 0.01 * rng.standard_normal((n_cells, 3)))
        ts.append(t)
        labels += [label] * n_cells
    obs = pd.DataFrame({"t": np.concatenate(ts), "perturbation": pd.Categorical(labels)})
    obs.index = [f"c{i}" for i in range(len(obs))]
    return ad.AnnData(np.concatenate(xs).astype(np.float32), obs=obs, var=pd.DataFrame(index=list("ABC")))


def test_held_variable_stays_at_its_start_per_trajectory():
    model = scn.SparseODE(3, method="base", var_names=list("ABC"), random_state=0)
    t = np.linspace(0, 1, 5)
    pred = model.predict([t, t], np.array([[0.3, 0.5, 0.7], [0.3, 0.5, 0.7]]), held=[["A"], []])
    assert np.allclose(pred[0][:, 0], 0.3)
    assert not np.allclose(pred[1][:, 0], 0.3)  # the other trajectory moves freely
    assert np.allclose(pred[0][:, 1:], model.predict(t, [0.3, 0.5, 0.7], hold={"A": 0.3})[:, 1:], atol=1e-5)
    with pytest.raises(ValueError, match="start="):
        model.predict([t, t], np.zeros((2, 3)), held=[["A"], []], start=0.5)
    with pytest.raises(ValueError, match="2 trajectories"):
        model.predict([t, t], np.zeros((2, 3)), held=[["A"]])
    with pytest.raises(ValueError, match="shape"):
        Trajectories.from_arrays([t], [np.zeros((5, 3))], held=np.ones((1, 2), bool))


def test_training_windows_keep_each_trajectorys_held_genes():
    """The fit never moves a held gene: its rate is zero wherever it is held, whatever the field learns."""
    t = np.linspace(0, 1, 12)
    free = np.stack([t, t**2, np.sin(t)], 1)
    knocked = free.copy()
    knocked[:, 0] = 0.0
    model = scn.SparseODE(3, method="base", random_state=0)
    model.fit([t, t], [free, knocked], held=[[], [0]], n_iter=20, refit_iter=0, batch_time=4, batch_size=8)
    model.fit([t, t], [free, knocked], held=[[], [0]], n_iter=20, refit_iter=0)  # whole trajectories
    pred = model.predict([t, t], np.stack([free[0], knocked[0]]), held=[[], [0]])
    assert np.allclose(pred[1][:, 0], 0.0)
    mask = [[False] * 3, [True, False, False]]
    assert torch.is_tensor(Trajectories.from_arrays([t, t], [free, knocked], held=mask).held)


def test_prepare_splits_lineages_by_perturbation():
    adata = cells(n_genes=3, n_cells=120, lineages=2)
    adata.obs["ko"] = pd.Categorical(["ctrl", "g0", np.nan, "g1+g2", "g0"] * 24)
    before = adata.copy()
    ts = scn.pp.prepare_trajectories(adata, lineage_key="lineage", perturbation_key="ko", n_bins=10)
    assert ts.lineages == ["L0", "L0 g0", "L0 g1+g2", "L1", "L1 g0", "L1 g1+g2"]
    assert ts.held.tolist() == 2 * [[False] * 3, [True, False, False], [False, True, True]]
    # a perturbed trajectory is scaled with its lineage: one centre and scale, one clock
    assert np.allclose(ts.center[0], ts.center[1]) and np.allclose(ts.scale[0], ts.scale[1])
    assert ts.time_offset[0] == ts.time_offset[1] and ts.time_scale[0] == ts.time_scale[1]
    plain = scn.pp.prepare_trajectories(adata, lineage_key="lineage", n_bins=10)
    assert plain.held is None and plain.lineages == ["L0", "L1"]
    assert adata.obs.equals(before.obs) and np.array_equal(adata.X, before.X)
    adata.obs["ko"] = pd.Categorical(["ctrl", "nope"] * 60)
    with pytest.raises(ValueError, match=r"perturbs \['nope'\]"):
        scn.pp.prepare_trajectories(adata, perturbation_key="ko")
    with pytest.raises(KeyError, match="perturbation column"):
        scn.pp.prepare_trajectories(adata, perturbation_key="missing")


def test_fit_with_perturbations_writes_held_fitted_values():
    adata = pulse_cells(n_cells=60)
    scn.tl.fit_sparse_ode(adata, time_key="t", perturbation_key="perturbation", **FIT)
    assert list(adata.uns["scnode"]["lineages"]) == ["all", "A", "B"]
    knocked = (adata.obs["perturbation"] == "A").to_numpy()
    fitted_a = adata.layers["scnode_fitted"][knocked, 0]
    assert np.ptp(fitted_a) < 1e-6  # held at the knocked-out cells' level
    assert abs(fitted_a[0]) < 0.05


def test_knockout_in_training_removes_an_edge_observational_data_cannot_decide():
    """A and B are one curve in unperturbed cells: C's input is A, B or both. Knockouts of A and B decide it."""
    adata = pulse_cells()
    observed = adata[adata.obs["perturbation"].isna()].copy()
    assert np.corrcoef(observed.X[:, 0], observed.X[:, 1])[0, 1] > 0.99
    for seed in (0, 1):  # one lam for both fits (the search's choice on the knockout data), two seeds
        kw = {"time_key": "t", "n_iter": 200, "lam": 0.1, "progress_bar": False, "random_state": seed}
        with warnings.catch_warnings():  # A and B have no regulator: the graph is all-or-nothing, as it should
            warnings.simplefilter("ignore", UserWarning)
            scn.tl.fit_sparse_ode(observed, **kw)
            scn.tl.fit_sparse_ode(adata, perturbation_key="perturbation", **kw)
        obs_net, ko_net = (np.asarray(a.varp["scnode"]) for a in (observed, adata))  # regulator x target
        assert obs_net[0, 2] > 0 and obs_net[1, 2] > 0  # without knockouts the fit keeps both inputs of C
        assert ko_net[0, 2] > 0 and ko_net[1, 2] == 0  # with them, only the true one


def test_tools_on_a_perturbation_fit_hold_the_perturbed_genes(tmp_path):
    from scnode.cli import main

    adata = pulse_cells(n_cells=60)
    model = scn.tl.fit_sparse_ode(adata, time_key="t", perturbation_key="perturbation", return_model=True, **FIT)
    pred = scn.tl.predict(adata, model)
    knocked = pred[pred.obs["lineage"] == "A"]
    assert np.ptp(knocked.X[:, 0]) < 1e-6 and np.ptp(pred[pred.obs["lineage"] == "all"].X[:, 0]) > 0.5
    out = scn.tl.simulate_intervention(adata, model, knockout="C")
    assert np.allclose(out[out.obs["lineage"] == "B"].X[:, 1], out[out.obs["lineage"] == "B"].X[0, 1], atol=1e-6)
    with pytest.raises(ValueError, match="perturbed from its start"):
        scn.tl.simulate_intervention(adata, model, knockout="C", start=0.5)
    src, dst = tmp_path / "in.h5ad", tmp_path / "out.h5ad"
    adata.write_h5ad(src)
    args = ["fit", str(src), "--out", str(dst), "--time-key", "t", "--perturbation-key", "perturbation"]
    assert main([*args, "--n-iter", "6", "--lam", "0.01", "--device", "cpu", "--no-progress"]) == 0
    assert list(ad.read_h5ad(dst).uns["scnode"]["lineages"]) == ["all", "A", "B"]
