"""Small AnnData and fit settings shared by the tests of the AnnData-facing tools and plots."""

import anndata as ad
import numpy as np
import pandas as pd
import torch

import scnode as scn

FAST = {"n_iter": 6, "hidden": (8,), "progress_bar": False, "device": "cpu"}
"""Fit settings that keep a test fit well under a second (with ``lam="auto"``, each fit of the search)."""
FIT = {**FAST, "lam": 0.01}
"""One fit of a fixed penalty weight, no search."""


def cells(n_genes: int = 3, n_cells: int = 40, lineages: int = 2, seed: int = 0) -> ad.AnnData:
    """Noisy sine waves of ``n_genes`` genes over a random pseudotime, cells dealt round-robin to lineages."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 1, n_cells)
    x = np.stack([np.sin(3 * t + k) + 0.05 * rng.normal(size=n_cells) for k in range(n_genes)], 1)
    obs = pd.DataFrame(
        {"dpt_pseudotime": t, "lineage": pd.Categorical([f"L{i % lineages}" for i in range(n_cells)])},
        index=[f"c{i}" for i in range(n_cells)],
    )
    return ad.AnnData(x.astype(np.float32), obs=obs, var=pd.DataFrame(index=[f"g{k}" for k in range(n_genes)]))


def damped_system(n_trajectories: int = 3) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Times and values of the paper's synthetic second-order system: 20 times each in [0, 4]."""
    adata = scn.datasets.second_order_system(n_trajectories=n_trajectories, n_times=20, t_max=4.0, random_state=5)
    times, values, _ = scn.pp.trajectories(adata, trajectory_key="trajectory")
    return times, values


def one_way_model(adata: ad.AnnData) -> tuple[scn.pp.TrajectorySet, scn.SparseODE]:
    """A hand-built first-order field in which g0 drives g1 and nothing else happens."""
    ts = scn.pp.prepare_trajectories(adata, lineage_key="lineage")
    model = scn.SparseODE(2, method="base", hidden=(2,), device="cpu", var_names=ts.genes)
    with torch.no_grad():  # d g1/dt = 2 elu(g0); d g0/dt = 0
        model.system.field.layers[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
        model.system.field.layers[0].bias.zero_()
        model.system.field.layers[1].weight.copy_(torch.tensor([[0.0, 0.0], [2.0, 0.0]]))
        model.system.field.layers[1].bias.zero_()
    model.preprocessing = dict(ts.params)
    return ts, model


def scaled_copy(model: scn.SparseODE, factor: float) -> scn.SparseODE:
    """The one-way model with g1's response to g0 multiplied by ``factor``."""
    other = model.clone()
    with torch.no_grad():
        other.system.field.layers[1].weight.mul_(factor)
    return other
