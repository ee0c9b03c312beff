import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch
from helpers import FAST, FIT, cells
from scipy import sparse

import scnode as scn
from scnode.tl._results import write_results


def _same(a, b):
    assert a.obs.equals(b.obs) and a.var.equals(b.var)
    np.testing.assert_array_equal(np.asarray(a.X), np.asarray(b.X))
    assert list(a.layers) == list(b.layers) and list(a.varp) == list(b.varp) and list(a.uns) == list(b.uns)


def test_varp_orientation_one_way_edge():
    adata = cells(n_genes=2)
    ts = scn.pp.prepare_trajectories(adata, lineage_key="lineage")
    model = scn.SparseODE(2, method="base", hidden=(2,), device="cpu", var_names=ts.genes)
    with torch.no_grad():  # g0 -> hidden 0 -> d g1/dt only: a one-way edge g0 -> g1
        w1, w2 = model.system.field.layers[0].weight, model.system.field.layers[1].weight
        w1.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
        w2.copy_(torch.tensor([[0.0, 0.0], [2.0, 0.0]]))
    write_results(adata, model, ts, "scnode", {"method": "base"})
    a = adata.varp["scnode"]
    assert a[0, 1] > 0  # regulator g0 (row) -> target g1 (column)
    assert a[1, 0] == 0 and a[0, 0] == 0 and a[1, 1] == 0
    metrics = adata.uns["scnode"]["metrics"]  # g0's rate depends on no gene, g1's on one
    assert metrics["n_edges"] == 1 and metrics["targets_without_regulators"] == 1
    assert metrics["median_regulators"] == 0.5 and metrics["feature_sparsity"] == 0.75


def test_fit_writes_contract_and_round_trips(tmp_path):
    adata = cells()
    scn.tl.fit_sparse_ode(adata, lineage_key="lineage", **FAST)
    assert adata.varp["scnode"].shape == (3, 3)
    fitted = adata.layers["scnode_fitted"]
    assert fitted.shape == adata.shape and np.isfinite(fitted).all()
    rec = adata.uns["scnode"]
    assert set(rec) >= {"params", "history", "metrics", "genes", "lineages"}
    assert len(rec["history"]["loss"]) == 6 + 3  # penalised + refit
    assert rec["params"]["method"] == "pathreg" and list(rec["lineages"]) == ["L0", "L1"]
    path = tmp_path / "a.h5ad"
    adata.write_h5ad(path)
    back = ad.read_h5ad(path)
    np.testing.assert_allclose(back.varp["scnode"], adata.varp["scnode"])
    assert back.uns["scnode"]["params"]["lam"] == rec["params"]["lam"]


def test_second_order_writes_velocity_block():
    adata = cells()
    model = scn.tl.fit_sparse_ode(adata, lineage_key="lineage", order=2, return_model=True, **FAST)
    adj = model.adjacency()
    np.testing.assert_allclose(adata.varp["scnode_velocity"], adj[:, 3:].T, rtol=1e-6)
    np.testing.assert_allclose(adata.varp["scnode"], adj[:, :3].T, rtol=1e-6)


def test_gene_subset_zero_elsewhere():
    adata = cells(n_genes=4)
    adata.var["hvg"] = [True, False, True, True]
    scn.tl.fit_sparse_ode(adata, genes="hvg", key_added="sub", **FAST)
    a = adata.varp["sub"]
    assert sparse.issparse(a) and a.shape == (4, 4)
    dense = a.toarray()
    assert (dense[1] == 0).all() and (dense[:, 1] == 0).all()
    assert np.isnan(adata.layers["sub_fitted"][:, 1]).all()
    assert list(adata.uns["sub"]["genes"]) == ["g0", "g2", "g3"]


def test_copy_leaves_input_identical():
    adata = cells()
    before = adata.copy()
    out, model = scn.tl.fit_sparse_ode(adata, lineage_key="lineage", copy=True, return_model=True, **FAST)
    _same(adata, before)
    assert "scnode" in out.varp and isinstance(model, scn.SparseODE)


def test_fitted_layer_follows_the_model():
    adata = cells(n_genes=2, lineages=1)
    model = scn.tl.fit_sparse_ode(adata, return_model=True, scaling="none", n_bins=None, **FIT)
    ts = scn.pp.prepare_trajectories(adata, **model.preprocessing)
    order = np.argsort(adata.obs["dpt_pseudotime"].to_numpy())
    pred = model.predict(ts.cell_time[order], ts.x0[0])
    np.testing.assert_allclose(adata.layers["scnode_fitted"][order], pred, rtol=1e-4, atol=1e-5)


def _set_time(adata, first=None, values=None):
    t = adata.obs["dpt_pseudotime"].to_numpy().copy() if values is None else np.asarray(values, float)
    if first is not None:
        t[0] = first
    adata.obs["dpt_pseudotime"] = t


def _text_time(adata):
    t = adata.obs["dpt_pseudotime"].to_numpy().astype(object)
    t[0] = "early"
    adata.obs["dpt_pseudotime"] = t


def _bad(mutate):
    adata = cells()
    mutate(adata)
    return adata


@pytest.mark.parametrize(
    ("mutate", "kwargs", "error", "match"),
    [
        (lambda a: None, {"time_key": "pt"}, KeyError, "no time column 'pt'"),
        (
            lambda a: _set_time(a, first=np.nan),
            {},
            ValueError,
            r"'dpt_pseudotime'\] is not finite for 1 of 40 cells \(1 NaN;",
        ),
        (
            lambda a: _set_time(a, first=np.inf),
            {},
            ValueError,
            r"is not finite for 1 of 40 cells \(1 infinite;.* adata\[np.isfinite\(adata.obs\['dpt_pseudotime'\]\)\]",
        ),
        (
            _text_time,
            {},
            ValueError,
            "non-numeric values, such as 'early'",
        ),
        (lambda a: a.X.__setitem__((0, 0), np.nan), {}, ValueError, "NaN or infinite"),
        (
            lambda a: _set_time(a, values=[0.0, 1.0] * 20),
            {"lineage_key": "lineage"},
            ValueError,
            "distinct time",
        ),
        (lambda a: None, {"genes": ["g0", "nope"]}, KeyError, "Unknown gene"),
        (lambda a: None, {"method": "lasso"}, ValueError, "Unknown method 'lasso'"),
        (lambda a: None, {"lam": -1.0}, ValueError, "lam must be >= 0"),
        (lambda a: None, {"lineage_key": "donor"}, KeyError, "no lineage column 'donor'"),
        (
            lambda a: a.layers.__setitem__("txt", np.full(a.shape, "x", dtype=object)),
            {"layer": "txt"},
            ValueError,
            "not numeric",
        ),
        pytest.param(
            lambda a: setattr(a, "var_names", ["g0", "g0", *a.var_names[2:]]),
            {},
            ValueError,
            r"var_names are not unique \(\['g0'\] repeat\); call adata.var_names_make_unique",
            marks=pytest.mark.filterwarnings("ignore:Variable names are not unique"),  # anndata's own
        ),
        (lambda a: None, {"device": "tpu"}, ValueError, "device must be 'auto', 'cpu' or 'cuda'"),
    ],
    ids=[
        "time-key",
        "nan-time",
        "inf-time",
        "text-time",
        "nan-expr",
        "few-times",
        "gene",
        "method",
        "lam",
        "lineage",
        "layer",
        "duplicate-var-names",
        "device",
    ],
)
def test_bad_inputs_leave_adata_untouched(mutate, kwargs, error, match):
    adata = _bad(mutate)
    before = adata.copy()
    with pytest.raises(error, match=match):
        scn.tl.fit_sparse_ode(adata, **{**FAST, **kwargs})
    _same(adata, before)
    assert "scnode" not in adata.uns and "scnode" not in adata.varp


def test_prepare_trajectories_scaling_trimming_binning():
    adata = cells(n_cells=60, lineages=1)
    ts = scn.pp.prepare_trajectories(adata, trim_start=5, trim_end=10, x0_cells=3)
    v = ts.values[0]
    assert ts.times[0][0] == 0 and ts.times[0][-1] == 1
    assert v.min() >= 0 and v.max() <= 1 and len(ts.times[0]) == 45
    assert (ts.cell_lineage == 0).sum() == 45
    np.testing.assert_allclose(ts.x0[0], v[:3].mean(0))
    binned = scn.pp.prepare_trajectories(adata, n_bins=6)
    assert len(binned.times[0]) == 6 and (np.diff(binned.times[0]) > 0).all()
    np.testing.assert_allclose(binned.times[0], (np.arange(6) + 0.5) / 6)  # bin centres
    two = scn.pp.prepare_trajectories(cells(n_cells=60), lineage_key="lineage", n_bins=5)
    assert set(np.round(np.concatenate(two.times), 9)) <= set(np.round((np.arange(5) + 0.5) / 5, 9))
    z = scn.pp.prepare_trajectories(adata, scaling="zscore")
    raw = np.asarray(adata.X)[np.argsort(adata.obs["dpt_pseudotime"].to_numpy())]
    np.testing.assert_allclose(z.unscale(0, z.values[0]), raw, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="scaling must be one of"):
        scn.pp.prepare_trajectories(adata, scaling="log")
    sp = adata.copy()
    sp.X = sparse.csr_matrix(sp.X)
    np.testing.assert_allclose(scn.pp.prepare_trajectories(sp).values[0], ts_values_full(adata))


def test_cells_without_a_lineage_are_left_out(caplog):
    adata = cells(n_cells=60)
    adata.obs.loc[adata.obs_names[:6], "lineage"] = np.nan
    with caplog.at_level("INFO", logger="scnode"):
        ts = scn.pp.prepare_trajectories(adata, lineage_key="lineage")
    assert "6 of 60 cells have no lineage in obs['lineage'] and are not fitted" in caplog.text
    assert ts.lineages == ["L0", "L1"]
    assert (ts.cell_lineage[:6] == -1).all() and (ts.cell_lineage[6:] >= 0).all()
    assert sum(len(t) for t in ts.times) == 54


def test_a_stray_small_lineage_is_left_out_by_default_with_a_warning():
    adata = cells(n_cells=400)  # two lineages of 200 cells, and a stray group of 3 of their cells
    labels = adata.obs["lineage"].astype(str).to_numpy()
    labels[[0, 2, 4]] = "stray"
    names = [np.str_(c) for c in sorted(set(labels))]  # numpy strings, as sc.tl.dpt writes obs["dpt_groups"]
    adata.obs["lineage"] = pd.Categorical(labels, categories=names)
    before = adata.copy()
    with pytest.warns(UserWarning, match=r"lineage\(s\) 'stray' \(3 cells\) of obs\['lineage'\] are left out"):
        out = scn.tl.fit_sparse_ode(adata, lineage_key="lineage", copy=True, **FIT)
    assert list(out.uns["scnode"]["lineages"]) == ["L0", "L1"]
    assert np.isnan(out.layers["scnode_fitted"][[0, 2, 4]]).all() and not np.isnan(out.layers["scnode_fitted"][1]).any()
    _same(adata, before)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # kept on request, and no stray group among even lineages
        kept = scn.pp.prepare_trajectories(adata, lineage_key="lineage", n_bins=100, min_cells=0)
        even = scn.pp.prepare_trajectories(cells(n_cells=40), lineage_key="lineage", n_bins=100, min_cells="auto")
    assert kept.lineages == ["L0", "L1", "stray"] and even.lineages == ["L0", "L1"]
    with pytest.warns(
        UserWarning, match=r"trajectory\(ies\) 'stray' \(3\) have fewer time points than the window of \d+"
    ):
        scn.tl.fit_sparse_ode(adata, lineage_key="lineage", min_cells=0, copy=True, **FIT)  # kept, but not trained on
    with pytest.warns(UserWarning, match=r"'L0' \(197 cells\)"):  # an absolute threshold
        assert scn.pp.prepare_trajectories(adata, lineage_key="lineage", min_cells=199).lineages == ["L1"]
    with pytest.raises(ValueError, match=r"Every lineage of obs\['lineage'\] has fewer than min_cells=500"):
        scn.pp.prepare_trajectories(adata, lineage_key="lineage", min_cells=500)
    with pytest.raises(ValueError, match="min_cells must be 'auto' or an integer >= 0"):
        scn.pp.prepare_trajectories(adata, lineage_key="lineage", min_cells=-1)


def ts_values_full(adata):
    return scn.pp.prepare_trajectories(adata).values[0]


def test_an_empty_graph_is_reported():
    adata = cells()
    with pytest.warns(UserWarning, match=r"'grouplasso' fit \(lam=1e\+06\) is degenerate: it is empty.*lambda_path"):
        scn.tl.fit_sparse_ode(adata, lineage_key="lineage", method="grouplasso", lam=1e6, **FAST)
    assert not adata.varp["scnode"].any()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a graph with edges, or an unpenalised fit: no warning
        scn.tl.fit_sparse_ode(adata, lineage_key="lineage", method="base", **FAST)
    assert adata.varp["scnode"].any()


def _large_sparse_cells(n_cells: int, n_genes: int) -> ad.AnnData:
    rng = np.random.default_rng(3)
    per_cell = n_genes // 10
    cols = np.sort(rng.choice(n_genes, size=(n_cells, per_cell)), axis=1).ravel()
    values = rng.gamma(2.0, 1.0, n_cells * per_cell)
    x = sparse.csr_matrix((values, cols, np.arange(0, n_cells * per_cell + 1, per_cell)), shape=(n_cells, n_genes))
    x.sum_duplicates()
    obs = pd.DataFrame(
        {"dpt_pseudotime": rng.random(n_cells), "lineage": pd.Categorical(rng.choice(["a", "b", "c"], n_cells))},
        index=[f"c{i}" for i in range(n_cells)],
    )
    return ad.AnnData(x, obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(n_genes)]))


@pytest.mark.parametrize(("scaling", "scale_by"), [("minmax", "lineage"), ("zscore", "lineage"), ("minmax", "all")])
def test_prepare_large_sparse_data_without_densifying(monkeypatch, scaling, scale_by):
    adata = _large_sparse_cells(20_000, 300)
    before = adata.X.copy()
    kwargs = {"lineage_key": "lineage", "n_bins": 100, "x0_cells": 5, "scaling": scaling, "scale_by": scale_by}
    dense = adata.copy()
    dense.X = dense.X.toarray()
    expected = scn.pp.prepare_trajectories(dense, **kwargs)
    densified = []
    original = sparse.csr_matrix.toarray

    def toarray(self, *args, **kw):
        densified.append(self.shape[0])
        return original(self, *args, **kw)

    monkeypatch.setattr(sparse.csr_matrix, "toarray", toarray)
    ts = scn.pp.prepare_trajectories(adata, **kwargs)
    assert max(densified) <= 100  # bin means and the first cells, never the 20,000 cells
    assert sparse.issparse(adata.X) and (adata.X != before).nnz == 0
    assert [len(t) for t in ts.times] == [100, 100, 100]
    for got, want in zip(ts.values, expected.values, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ts.x0, expected.x0, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ts.x0_sem, expected.x0_sem, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ts.v0, expected.v0, rtol=1e-9, atol=1e-9)
    if scale_by == "all":
        assert ts.params["reference"]["time_scale"] == pytest.approx(expected.params["reference"]["time_scale"])


def test_fitted_layer_for_cell_times_equal_in_float32():
    adata = cells(n_cells=60)
    t = adata.obs["dpt_pseudotime"].to_numpy().copy()
    lineage = adata.obs["lineage"].to_numpy()
    same = np.flatnonzero(lineage == "L0")[:2]
    t[same] = [0.5, 0.5 + 1e-9]  # distinct in float64, one float32 time: the solver's grid must not repeat it
    adata.obs["dpt_pseudotime"] = t
    scn.tl.fit_sparse_ode(adata, lineage_key="lineage", **FIT)
    fitted = adata.layers["scnode_fitted"]
    assert np.isfinite(fitted).all()
    np.testing.assert_array_equal(fitted[same[0]], fitted[same[1]])


def _switches(n_cells=400, noise=0.15, seed=0):
    """Gene a switches on at time 0.5, gene b at 0.6; the pseudotime is the time plus noise."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(0, 1, n_cells)
    x = np.c_[u > 0.5, u > 0.6].astype(float) + rng.normal(0, 0.01, (n_cells, 2))
    obs = pd.DataFrame({"dpt_pseudotime": u + rng.normal(0, noise, n_cells)}, index=[f"c{i}" for i in range(n_cells)])
    return ad.AnnData(x, obs=obs, var=pd.DataFrame(index=["a", "b"]))


def test_state_bins_keep_states_apart_where_time_bins_blur_them():
    adata = _switches()
    by_time = scn.pp.prepare_trajectories(adata, n_bins=10).values[0]
    by_state = scn.pp.prepare_trajectories(adata, n_bins=10, binning="states")
    values, times = by_state.values[0], by_state.times[0]
    blur = np.abs(by_time - np.round(by_time))
    assert (blur > 0.2).any(axis=1).sum() >= 3  # time bins average cells of different states
    assert np.abs(values - np.round(values)).max() < 0.1  # each state bin holds one state
    assert len(times) <= 10 and (np.diff(times) > 0).all() and times.min() >= 0 and times.max() <= 1
    states = np.round(values)
    assert (np.diff(states, axis=0) >= 0).all()  # (0, 0), then (1, 0), then (1, 1): a switches before b
    assert {tuple(s) for s in states} == {(0.0, 0.0), (1.0, 0.0), (1.0, 1.0)}
    assert by_state.params["binning"] == "states"
    sp = adata.copy()
    sp.X = sparse.csr_matrix(sp.X)
    np.testing.assert_allclose(scn.pp.prepare_trajectories(sp, n_bins=10, binning="states").values[0], values)
    with pytest.raises(ValueError, match="binning='states' clusters the cells into n_bins states"):
        scn.pp.prepare_trajectories(adata, binning="states")
    with pytest.raises(ValueError, match="binning must be one of"):
        scn.pp.prepare_trajectories(adata, n_bins=10, binning="cells")
    before = adata.copy()
    scn.tl.fit_sparse_ode(adata, binning="states", lam=0.01, **FAST)
    assert adata.uns["scnode"]["params"]["binning"] == "states"
    np.testing.assert_array_equal(adata.X, before.X)
    model = scn.tl.fit_sparse_ode(adata, binning="states", n_bins=10, lam=0.01, return_model=True, **FAST)
    every_cell = scn.tl.score(adata, model, n_bins=None)  # scored on every cell: no bins, of either kind
    assert every_cell.loc["sum", "n_times"] == len(np.unique(adata.obs["dpt_pseudotime"]))
    assert scn.tl.score(adata, model).loc["sum", "n_times"] <= 10  # as fitted: the model's state bins


def test_state_bins_of_a_trajectory_in_one_state_fall_back_to_time_bins():
    adata = _switches()
    adata.obs["lineage"] = pd.Categorical(["L0"] * 300 + ["still"] * 100)
    adata.X[300:] = 0.0  # the second lineage's cells all share one state (its times stay distinct)
    by_state = scn.pp.prepare_trajectories(adata, lineage_key="lineage", n_bins=10, binning="states")
    by_time = scn.pp.prepare_trajectories(adata, lineage_key="lineage", n_bins=10)
    np.testing.assert_array_equal(by_state.times[1], by_time.times[1])  # a flat trajectory in 10 time bins
    np.testing.assert_array_equal(by_state.values[1], by_time.values[1])
    assert len(by_state.times[1]) == 10 and not np.array_equal(by_state.times[0], by_time.times[0])
    scn.tl.fit_sparse_ode(adata, lineage_key="lineage", binning="states", n_bins=10, **FIT)  # before: IndexError


def test_state_bins_closer_in_time_than_float32_resolves_merge():
    """Four well-separated states whose mean times differ by 1e-9 in two of them: three bins, increasing."""
    from scnode.pp._states import state_bin_times

    x = np.repeat(np.eye(4) * 10, 5, axis=0)
    times = np.repeat([0.0, 0.5, 0.5 + 1e-9, 1.0], 5)
    keys = state_bin_times(x, np.zeros(4), np.ones(4), times, n_bins=4)
    assert len(np.unique(keys)) == 3 and (keys[5:15] == keys[5]).all()
    assert np.unique(keys).astype(np.float32).tolist() == sorted(set(np.unique(keys).astype(np.float32).tolist()))
