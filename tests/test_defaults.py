"""The single-cell default call and its automatic penalty: graphs, regulators, priors, signs, warnings, the search."""

import logging
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch
from helpers import FAST, FIT, cells

import scnode as scn
from scnode.core.train import ADAM_EPS
from scnode.tl._setup import SINGLE_CELL_GATE_EPS
from scnode.tl._utils import degenerate_graph, sparsity_summary

SHORT_SEARCH = {"lineage_key": "lineage", **FAST, "n_iter": 80, "refit_iter": 10}
"""Short searches: the first quarter of the 80 iterations without the penalty (the order-1 default),
then 60 penalised ones, enough to close every gate at the largest lambda."""


def simulated(weights: np.ndarray, *, n_traj: int = 8, n_cells: int = 60, seed: int = 0) -> ad.AnnData:
    """Cells from the linear system ``dx_i/dt = sum_j w[j, i] x_j - x_i`` (rows of ``w`` regulate columns).

    ``n_traj`` trajectories from random initial states in [-1, 1], ``n_cells`` cells each at random
    times in [0, 3], with noise of standard deviation 0.01.
    """
    rng = np.random.default_rng(seed)
    d = len(weights)
    steps, dt = 300, 0.01
    obs, xs = [], []
    for k in range(n_traj):
        x = rng.uniform(-1, 1, d)
        path = [x]
        for _ in range(steps):
            x = x + dt * (x @ weights - x)
            path.append(x)
        path = np.asarray(path)
        idx = np.sort(rng.choice(steps + 1, n_cells, replace=False))
        xs.append(path[idx] + 0.01 * rng.normal(size=(n_cells, d)))
        obs.append(pd.DataFrame({"time": idx * dt, "trajectory": f"T{k}"}))
    obs = pd.concat(obs, ignore_index=True)
    obs["trajectory"] = pd.Categorical(obs["trajectory"])
    obs.index = [f"c{i}" for i in range(len(obs))]
    x = np.concatenate(xs).astype(np.float32)
    return ad.AnnData(x, obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(d)]))


SIGNED = np.array([[0.0, 2.0, -2.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
"""g0 activates g1 and represses g2; g1 and g2 regulate nothing."""


@pytest.fixture(scope="module")
def default_fit():
    """The default call (only the time and lineage keys) on a 4-gene cascade g0 -> g1 -> g2 -> g3, g0 -| g3."""
    w = np.zeros((4, 4))
    w[0, 1], w[1, 2], w[2, 3], w[0, 3] = 2.0, 2.0, 2.0, -2.0
    adata = simulated(w)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the default graph is not degenerate: no warning
        scn.tl.fit_sparse_ode(adata, time_key="time", lineage_key="trajectory", progress_bar=False, device="cpu")
    return adata, w


def test_default_graph_is_neither_empty_nor_full_and_finds_the_cascade(default_fit):
    adata, w = default_fit
    graph = np.asarray(adata.varp["scnode"])
    off = ~np.eye(4, dtype=bool)
    edges = (graph != 0) & off
    assert 0 < edges.sum() < off.sum()  # neither empty nor full
    metrics = adata.uns["scnode"]["metrics"]
    assert metrics["targets_with_all_regulators"] < 4 and metrics["targets_without_regulators"] < 4
    true = (w != 0) & off
    scores = scn.tl.evaluate_grn(adata, w)
    assert scores["auprc_ratio"] > 2.0 and scores["sign_accuracy"] == 1.0  # the true edges rank high, signs right
    assert edges[true].mean() >= 0.75
    path = adata.uns["scnode"]["path"]
    table = pd.DataFrame(path["table"])
    chosen = table[table["selected"]].iloc[0]
    assert table["edge_share"].iloc[-1] == 0 and table["edge_share"].iloc[0] >= 0.95  # searched from full to empty
    assert table["lam"].min() < chosen["lam"] < table["lam"].max()  # not an end of the searched range
    assert path["searched"] == [table["lam"].min(), table["lam"].max()] and "largest lam keeping" in path["rule"]
    # one first lambda, extended by decades only while an end is not yet full or empty: one fit of each end
    assert list(table.loc[table["stage"] == "grid", "lam"]) == [0.1]
    bracket = table[table["stage"] != "refined"]
    assert (bracket["edge_share"] >= 0.95).sum() == 1 and (bracket["edge_share"] == 0).sum() == 1


def test_first_order_default_lets_the_data_grade_the_gates(default_fit):
    adata, _ = default_fit
    fit = adata.uns["scnode"]["params"]["fit"]
    # the gates' Adam eps below their gradients, a quarter of the 400 iterations before the penalty
    assert fit["gate_eps"] == SINGLE_CELL_GATE_EPS < ADAM_EPS and fit["penalty_delay"] == 100
    times = np.repeat(np.arange(30.0), 2)
    second = ad.AnnData(np.c_[np.sin(times / 5), np.cos(times / 5)], obs=pd.DataFrame({"t": times}))
    scn.tl.fit_sparse_ode(second, time_key="t", order=2, lam=0.01, n_iter=4, progress_bar=False, device="cpu")
    assert {"gate_eps", "penalty_delay"}.isdisjoint(second.uns["scnode"]["params"]["fit"])  # order 2: the paper's


def test_path_score_ranks_every_pair_by_all_fits_of_the_search(default_fit):
    adata, w = default_fit
    graph, path = np.asarray(adata.varp["scnode"]), np.asarray(adata.varp["scnode_path"])
    off = ~np.eye(4, dtype=bool)
    assert ((path != 0) >= (graph != 0)).all()  # the selected graph's edges are among the scored pairs
    assert ((path != 0) & off).sum() > ((graph != 0) & off).sum()  # pairs the selected fit cut get a score
    assert path.max() <= 1.0 + 1e-6  # a mean of graphs each over its largest entry
    scores = scn.tl.evaluate_grn(adata, w, key="scnode_path")
    assert scores["auprc_ratio"] > 2.0 and scores["sign_accuracy"] == 1.0
    true = (w != 0) & off
    assert path[true].min() > np.median(path[~true & off])  # every true edge above the median non-edge


def test_path_score_is_the_mean_of_the_fits_graphs_each_over_its_largest(caplog):
    adata = cells()
    kw = SHORT_SEARCH
    with caplog.at_level(logging.INFO, logger="scnode"):
        table, models = scn.tl.lambda_path(adata, [0.001, 0.1, 1e5], max_extend=0, return_models=True, **kw)
    # each fit of the search is logged as it ends (progress of a long search), with its graph
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("lambda search: lam")]
    assert len(logged) == len(table) == 3
    assert "lam 100000 (grid)" in logged[-1] and " 0 edges (0 % of the candidates, graph empty)" in logged[-1]
    adj = [m.adjacency().T for m in models]  # regulators x targets
    expected = sum(a / a.max() for a in adj if a.max() > 0) / len(adj)
    assert any(a.max() == 0 for a in adj)  # an empty fit counts, with nothing
    np.testing.assert_allclose(np.asarray(adata.varp["scnode_path"]), expected, rtol=1e-5, atol=1e-7)
    sign = np.asarray(adata.varp["scnode_path_sign"])
    assert set(np.unique(sign)) <= {-1, 0, 1} and ((sign != 0) == (expected != 0)).all()


def test_signs_of_an_activating_and_a_repressing_edge():
    adata = simulated(SIGNED, seed=2)
    scn.tl.fit_sparse_ode(adata, time_key="time", lineage_key="trajectory", **{**FIT, "lam": 0.003, "n_iter": 300})
    sign = np.asarray(adata.varp["scnode_sign"])
    assert sign[0, 1] == 1 and sign[0, 2] == -1  # g0 -> g1 activation, g0 -| g2 repression
    edges = scn.tl.edge_list(adata)
    top = edges.set_index(["source", "target"])
    assert top.loc[("g0", "g1"), "sign"] == 1 and top.loc[("g0", "g2"), "sign"] == -1
    metrics = adata.uns["scnode"]["metrics"]
    assert metrics["activating_edges"] + metrics["repressing_edges"] == int((sign[~np.eye(3, dtype=bool)] != 0).sum())
    truth = pd.DataFrame({"source": ["g0", "g0"], "target": ["g1", "g2"], "weight": [1.0, -1.0]})
    assert scn.tl.evaluate_grn(adata, truth)["sign_accuracy"] == 1.0


def test_regulators_get_the_only_outgoing_edges():
    adata = cells(n_genes=5)
    adata.var["is_tf"] = [True, False, True, False, False]
    for regulators in (["g0", "g2", "not_a_gene"], "is_tf"):
        scn.tl.fit_sparse_ode(adata, lineage_key="lineage", regulators=regulators, **FIT)
        graph = np.asarray(adata.varp["scnode"])
        assert (graph[[1, 3, 4]] * (1 - np.eye(5))[[1, 3, 4]] == 0).all()  # non-regulators drive no other gene
        assert (graph[[0, 2]] != 0).any()
    record = adata.uns["scnode"]["params"]["regulators"]
    assert record["n_found"] == 2 and record["n_genes"] == 5
    before = adata.copy()
    with pytest.raises(ValueError, match=r"None of the 2 names in the regulator list \(GATA1, SPI1\)"):
        scn.tl.fit_sparse_ode(adata, lineage_key="lineage", regulators=["GATA1", "SPI1"], **FIT)
    with pytest.raises(KeyError, match="neither a list of genes nor a column"):
        scn.tl.fit_sparse_ode(adata, lineage_key="lineage", regulators="tf", **FIT)
    adata.var["none"] = False
    with pytest.raises(ValueError, match=r"adata.var\['none'\] marks no gene as a regulator"):
        scn.tl.fit_sparse_ode(adata, lineage_key="lineage", regulators="none", **FIT)
    with pytest.raises(ValueError, match="the regulator list is empty"):
        scn.tl.fit_sparse_ode(adata, lineage_key="lineage", regulators=[], **FIT)
    assert adata.uns["scnode"]["params"] == before.uns["scnode"]["params"]


def test_prior_edges_are_penalised_less():
    adata = cells(n_genes=4)
    prior = pd.DataFrame({"source": ["g0", "g1", "gX"], "target": ["g2", "g3", "g0"], "weight": [2.0, 1.0, 1.0]})
    model = scn.tl.fit_sparse_ode(adata, lineage_key="lineage", prior=prior, return_model=True, **FIT)
    factors = model.system.pair_weight.numpy()  # rows targets, columns regulators
    expected = np.ones((4, 4))
    expected[2, 0], expected[3, 1] = 1 - 0.9, 1 - 0.9 * 0.5  # strength 0.9, weights over the largest
    np.testing.assert_allclose(factors, expected, rtol=1e-6)
    assert adata.uns["scnode"]["params"]["prior"] == {"n_edges": 3, "n_used": 2, "strength": 0.9}
    matrix = pd.DataFrame(0.0, index=["g0", "g1"], columns=["g2", "g3"])
    matrix.loc["g0", "g2"] = 1.0
    model = scn.tl.fit_sparse_ode(
        adata, lineage_key="lineage", prior=matrix, prior_strength=0.5, return_model=True, **FIT
    )
    assert model.system.pair_weight[2, 0] == pytest.approx(0.5) and model.system.pair_weight[3, 1] == 1
    with pytest.raises(ValueError, match="per gene"):
        scn.tl.fit_sparse_ode(adata, lineage_key="lineage", prior=prior, field="shared", **FIT)
    with pytest.raises(ValueError, match="prior_strength"):
        scn.tl.fit_sparse_ode(adata, lineage_key="lineage", prior=prior, prior_strength=2, **FIT)


def _with_graph(model, adj):
    """A model whose adjacency() returns ``adj`` (to check the graph diagnostics by hand)."""
    model.adjacency = lambda: adj
    return model


def test_degenerate_graphs_are_named():
    model = scn.SparseODE(4, per_output=True, hidden=(4,), device="cpu")

    def problem(adj, fitted=model):
        return degenerate_graph(_with_graph(fitted, adj), adj, sparsity_summary(fitted, adj))

    assert problem(np.eye(4)).startswith("it is empty")  # self-loops only
    assert problem(np.ones((4, 4))).startswith("it is full")
    adj = np.zeros((4, 4))
    adj[0, 1:] = 1  # target 0 with every regulator, targets 1-3 with none: all-or-nothing
    assert problem(adj).startswith("it is all-or-nothing per target: 3 of 4 targets have no regulator and 1")
    adj = np.zeros((4, 4))
    adj[[0, 1, 2, 3], [1, 2, 3, 0]] = 1  # one regulator each
    assert problem(adj) is None
    # one regulator in the list: each target has it or not, all-or-nothing by construction, so not named
    single = scn.SparseODE(4, per_output=True, hidden=(4,), inputs=[0], device="cpu")
    adj = np.zeros((4, 4))
    adj[[1, 2], 0] = 1  # gene 0 drives targets 1 and 2, not 3
    assert problem(adj, single) is None
    adj[3, 0] = 1
    assert problem(adj, single).startswith("it is full")
    assert problem(np.eye(4), single).startswith("it is empty")


def test_degenerate_fits_warn():
    adata = cells()
    with pytest.warns(UserWarning, match=r"'pathreg' fit \(lam=0\) is degenerate: it is full"):
        scn.tl.fit_sparse_ode(adata, lineage_key="lineage", **{**FIT, "lam": 0.0})
    with pytest.warns(UserWarning) as record:
        scn.tl.fit_sparse_ode(adata, lineage_key="lineage", **{**FIT, "lam": 1e5, "n_iter": 120})
    messages = [str(w.message) for w in record]
    early = [m for m in messages if m.startswith("The penalty cut every edge by iteration")]
    assert len(early) == 1 and int(early[0].split("iteration ")[1].split(" ")[0]) < 120  # during the fit
    assert any("is degenerate: it is empty" in m for m in messages)


def test_grid_is_extended_past_either_end():
    adata = cells()
    kw = SHORT_SEARCH
    low = scn.tl.lambda_path(adata, [1e-5, 1e-4], max_extend=3, **kw)  # the graph is still full at its top
    assert (low["stage"] == "extended").any() and low["lam"].max() > 1e-4
    high = scn.tl.lambda_path(adata.copy(), [1e5, 1e6], max_extend=3, **kw)  # every edge cut: the edges lie below
    assert (high["stage"] == "extended").any() and high["lam"].min() < 1e5


def test_selection_does_not_depend_on_where_the_grid_starts():
    adata = cells()
    kw = SHORT_SEARCH
    a = scn.tl.lambda_path(adata, [0.01, 0.0316, 0.1, 0.316, 1.0, 3.16, 10.0, 31.6], max_extend=3, **kw)
    b = scn.tl.lambda_path(adata.copy(), [1.0, 3.16, 10.0, 31.6], max_extend=3, **kw)
    chosen = [float(t.loc[t["selected"], "lam"].iloc[0]) for t in (a, b)]
    assert abs(np.log10(chosen[0]) - np.log10(chosen[1])) <= 0.51  # within one grid step (3.16: 10**0.4997)
    shared = a.merge(b, on="lam", suffixes=("_a", "_b"))  # a lam fits the same graph in either grid
    np.testing.assert_array_equal(shared["n_edges_a"], shared["n_edges_b"])


def test_an_empty_selection_warns():
    adata = cells()
    with pytest.warns(UserWarning) as record:
        scn.tl.lambda_path(adata, [1e5, 1e6], lineage_key="lineage", max_extend=0, **{**FAST, "n_iter": 120})
    messages = [str(w.message) for w in record]
    assert any("selected fit (lam=" in m and "is degenerate: it is empty" in m for m in messages)
    # both fits equally empty: whichever the rule keeps, the warning points below the range
    assert any("Every fit of the searched range [100000, 1e+06] is empty" in m for m in messages)
    assert any("the edges lie below lam 100000" in m for m in messages)


def test_consensus_leaves_out_empty_fits_and_says_so():
    adata = cells()
    fits = [
        scn.tl.fit_sparse_ode(adata, lineage_key="lineage", copy=True, return_model=True, **settings)[1]
        for settings in ({**FIT, "lam": 1e-3}, {**FIT, "lam": 1e5, "n_iter": 120}, {**FIT, "lam": 1e-3})
    ]
    with pytest.warns(UserWarning, match=r"1 of 3 fits have an empty graph \(models \[1\]\)"):
        scn.tl.consensus_network(adata, fits)
    assert adata.uns["scnode_consensus"]["n_models"] == 2
    assert list(adata.uns["scnode_consensus"]["empty_models"]) == [1]
    with pytest.warns(UserWarning, match="Every one of the 1 fits has an empty graph"):
        scn.tl.consensus_network(adata, [fits[1]])


def test_refitting_only_the_selected_fit_gives_the_same_model_as_its_whole_fit():
    from scnode.tl._select import LambdaSearch
    from scnode.tl._setup import setup

    adata = cells()
    st = setup(adata, lineage_key="lineage", **{**FAST, "n_iter": 30, "refit_iter": 12})
    kw = {"window": st.window, "fit_kwargs": st.fit_kwargs}
    lams = [0.001, 0.01, 0.1]
    whole = LambdaSearch(st.model, st.ts, **kw).run_grid(lams, max_steps=0)
    cheap = LambdaSearch(st.model, st.ts, refit="selected", **kw).run_grid(lams, max_steps=0)
    i = cheap.selected
    lam = cheap.rows[i]["lam"]
    j = whole.lams().index(lam)
    assert len(cheap.models[i].history.loss) == 30 + 12  # the selected fit: penalised phase and refit
    assert all(len(m.history.loss) == 30 for k, m in enumerate(cheap.models) if k != i)  # the others: no refit
    a, b = cheap.models[i].system.state_dict(), whole.models[j].system.state_dict()
    for name in a:  # the same model as the whole fit of that lam, refit included
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)
    assert cheap.rows[i]["val_mse_refit"] == pytest.approx(whole.rows[j]["val_mse"])
    assert np.isnan(cheap.table()["val_mse_refit"]).sum() == len(lams) - 1
    with pytest.raises(ValueError, match="refit must be 'all' or 'selected'"):
        LambdaSearch(st.model, st.ts, refit="some", **kw)


def test_a_search_that_keeps_its_fits_on_disk_gives_the_same_results(monkeypatch):
    from scnode.tl import _store

    adata = cells()
    kw = {**SHORT_SEARCH, "lineage_key": "lineage", "copy": True}
    in_memory = scn.tl.fit_sparse_ode(adata, **kw)
    made = []
    init = _store.FitStore.__init__

    def recording_init(self):
        init(self)
        made.append(self)

    monkeypatch.setattr(_store, "SPILL_BYTES", 0)  # every fit goes to disk
    monkeypatch.setattr(_store.FitStore, "__init__", recording_init)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)  # no directory is left to the garbage collector
        on_disk = scn.tl.fit_sparse_ode(adata, **kw)
        [*models] = scn.tl.lambda_path(adata, lams=[0.1, 1.0], return_models=True, copy=True, **SHORT_SEARCH)[2]
    assert made and all(store.spilled == len(store) > 0 for store in made)
    for key in ("scnode", "scnode_sign", "scnode_path", "scnode_path_sign"):
        np.testing.assert_array_equal(np.asarray(on_disk.varp[key]), np.asarray(in_memory.varp[key]))
    np.testing.assert_array_equal(on_disk.layers["scnode_fitted"], in_memory.layers["scnode_fitted"])
    table = pd.DataFrame(on_disk.uns["scnode"]["path"]["table"]).drop(columns="seconds")
    expected = pd.DataFrame(in_memory.uns["scnode"]["path"]["table"]).drop(columns="seconds")
    pd.testing.assert_frame_equal(table, expected)
    dirs = [store.directory for store in made]
    assert all(d is not None for d in dirs)
    assert not any(d.exists() for d in dirs)  # the calls deleted the spilled fits before returning
    lams = [m.config.lam for m in models]  # the returned fits were read back first (the grid may extend)
    assert lams[:2] == [0.1, 1.0] and lams == sorted(lams)
    assert all(np.isfinite(m.adjacency()).all() for m in models)
