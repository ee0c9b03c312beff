"""The plots of scnode.pl: each returns the data it drew; checked against their sources."""

import os
from pathlib import Path

import anndata as ad
import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from helpers import FAST, FIT, cells
from scipy import sparse

import scnode as scn


def _cells(n_genes=4, n_cells=40, seed=0):
    return cells(n_genes, n_cells, 2, seed)


@pytest.fixture(scope="module")
def fitted():
    adata = _cells()
    model = scn.tl.fit_sparse_ode(adata, lineage_key="lineage", trim_start=2, return_model=True, **FIT)
    adata.obsm["X_umap"] = np.asarray(adata[:, ["g0", "g1"]].X, dtype=float)  # a fake embedding
    return adata, model


@pytest.fixture(scope="module")
def path_fitted():
    adata = _cells()
    table = scn.tl.lambda_path(adata, [1.0, 10.0], lineage_key="lineage", **{**FAST, "n_iter": 4})
    return adata, table


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ----------------------------------------------------------------------------- network
def test_network_draws_the_top_edges(fitted):
    adata, _ = fitted
    res = scn.pl.network(adata, top_k=5, show=False)
    expected = scn.tl.edge_list(adata, top_k=5)
    pd.testing.assert_frame_equal(res.data[["source", "target", "weight", "sign"]], expected)
    assert len(res.ax.patches) == 5  # one arrow per edge
    colors = {1: mcolors.to_rgba("tab:red"), -1: mcolors.to_rgba("tab:blue")}
    drawn = sorted(tuple(p.get_edgecolor()) for p in res.ax.patches)
    assert drawn == sorted(colors[v] for v in expected["sign"])  # each arrow in its edge's sign colour
    legend = [t.get_text() for t in res.ax.get_legend().get_texts()]
    assert legend == [n for v, n in ((1, "activation"), (-1, "repression")) if (expected["sign"] == v).any()]
    nodes = set(expected["source"]) | set(expected["target"])
    assert {t.get_text() for t in res.ax.texts} == nodes
    # an edge's end points are its nodes' positions
    pos = {}
    for row in res.data.itertuples():
        for node, xy in ((row.source, (row.x_source, row.y_source)), (row.target, (row.x_target, row.y_target))):
            assert pos.setdefault(node, xy) == xy
    again = scn.pl.network(adata, top_k=5, show=False)
    pd.testing.assert_frame_equal(again.data, res.data)  # seeded layout


def test_precision_recall_steps_through_the_scores_and_matches_evaluate_grn():
    adata = cells(n_genes=4)
    g = np.zeros((4, 4), np.float32)
    g[0, 1], g[3, 1], g[0, 2], g[1, 3], g[2, 2] = 3.0, 2.0, 1.0, 1.0, 9.0  # g2 -> g2 a self-loop, left out
    adata.varp["scnode"] = g
    adata.varp["reversed"] = g.T.copy()
    truth = pd.DataFrame({"source": ["g0", "g3"], "target": ["g1", "g1"]})
    res = scn.pl.precision_recall(adata, truth, keys=["scnode", "reversed"], labels=["fit", "reversed"], show=False)
    fit = res.data[res.data["key"] == "scnode"]
    # distinct scores 3, 2, 1 (two tied), 0 (eight pairs): both true edges on top
    np.testing.assert_allclose(fit["recall"], [0.5, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(fit["precision"], [1.0, 1.0, 2 / 4, 2 / 12])
    assert (res.data["density"] == 2 / 12).all()
    for key in ("scnode", "reversed"):
        curve = res.data[res.data["key"] == key]
        area = np.sum(np.diff(np.r_[0.0, curve["recall"]]) * curve["precision"])
        assert area == pytest.approx(scn.tl.evaluate_grn(adata, truth, key=key)["auprc"])
    texts = [t.get_text() for t in res.ax.get_legend().get_texts()]
    assert texts[0] == "fit (AUPRC ratio 6.00)" and texts[-1] == "random (0.17)"
    assert len(res.ax.get_lines()) == 3  # two curves and one chance line
    only = scn.pl.precision_recall(adata, truth, regulators=["g0"], show=False)
    assert only.data["density"].iloc[0] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="2 labels for 1 keys"):
        scn.pl.precision_recall(adata, truth, labels=["a", "b"], show=False)
    with pytest.raises(KeyError, match="no 'other'"):
        scn.pl.precision_recall(adata, truth, keys="other", show=False)


def test_network_regulators_and_layouts(fitted):
    adata, _ = fitted
    res = scn.pl.network(adata, top_k=None, regulators=["g1"], layout="circular", node_color={"g1": "red"}, show=False)
    assert set(res.data["source"]) == {"g1"}
    expected = scn.tl.edge_list(adata, regulators=["g1"])
    pd.testing.assert_frame_equal(res.data[["source", "target", "weight", "sign"]], expected)


def test_network_errors(fitted):
    adata, _ = fitted
    with pytest.raises(ValueError, match="layout"):
        scn.pl.network(adata, layout="hairball", show=False)
    with pytest.raises(KeyError, match="g9"):
        scn.pl.network(adata, regulators=["g9"], show=False)
    with pytest.raises(KeyError, match="varp has no 'other'"):
        scn.pl.network(adata, key="other", show=False)


# ----------------------------------------------------------------------------- gene_trends
def test_gene_trends_observed_and_fitted_layer(fitted):
    adata, _ = fitted
    res = scn.pl.gene_trends(adata, ["g0", "g2"], show=False)
    assert list(res.data.columns) == ["gene", "lineage", "time", "value", "kind"]
    assert len(res.ax) == 2 and [a.get_title() for a in res.ax] == ["g0", "g2"]
    observed = res.data[(res.data["kind"] == "observed") & (res.data["gene"] == "g2")]
    np.testing.assert_allclose(observed["value"], adata[:, "g2"].X.ravel(), rtol=1e-6)
    np.testing.assert_allclose(observed["time"], adata.obs["dpt_pseudotime"])
    assert list(observed["lineage"]) == list(adata.obs["lineage"].astype(str))
    # the fitted curve: trimmed cells (NaN in the layer) left out, sorted by time per lineage
    curve = res.data[(res.data["kind"] == "fitted") & (res.data["gene"] == "g0")]
    assert len(curve) == adata.n_obs - 2 * 2
    for _, part in curve.groupby("lineage"):
        assert part["time"].is_monotonic_increasing
    fitted_layer = adata[:, "g0"].layers["scnode_fitted"].ravel()
    np.testing.assert_allclose(np.sort(curve["value"]), np.sort(fitted_layer[np.isfinite(fitted_layer)]))
    for ax in res.ax:
        assert len(ax.collections) == 2 and len(ax.lines) == 2  # dots and a curve per lineage


def test_gene_trends_from_model_dashes_extrapolation(fitted):
    adata, model = fitted
    res = scn.pl.gene_trends(adata, "g1", model=model, extrapolate=0.5, show=False)
    pred = scn.tl.predict(adata, model, extrapolate=0.5)
    curve = res.data[res.data["kind"] != "observed"]
    np.testing.assert_allclose(curve["value"], pred[:, "g1"].X.ravel(), rtol=1e-6)
    np.testing.assert_array_equal(curve["kind"] == "extrapolated", pred.obs["extrapolated"])
    styles = [line.get_linestyle() for line in res.ax[0].lines]
    assert styles.count("-") == 2 and styles.count("--") == 2
    given = scn.pl.gene_trends(adata, ["g1"], prediction=pred, show=False)
    pd.testing.assert_frame_equal(given.data, res.data)


def test_gene_trends_errors(fitted):
    adata, _ = fitted
    with pytest.raises(KeyError, match="g9"):
        scn.pl.gene_trends(adata, ["g0", "g9"], show=False)
    bare = _cells()
    with pytest.raises(KeyError, match="fit_sparse_ode"):
        scn.pl.gene_trends(bare, "g0", show=False)
    with pytest.raises(KeyError, match="scnode_fitted"):
        scn.pl.gene_trends(bare, "g0", time_key="dpt_pseudotime", show=False)
    with pytest.raises(ValueError, match="one Axes per gene"):
        scn.pl.gene_trends(adata, ["g0", "g1"], axs=plt.subplots()[1], show=False)


# ----------------------------------------------------------------------------- trajectory
def test_trajectory_projects_states_onto_the_embedding(fitted):
    adata, model = fitted
    pred = scn.tl.predict(adata, model, extrapolate=0.2, n_points=15)
    res = scn.pl.trajectory(adata, pred, n_neighbors=5, show=False)
    assert list(res.data.columns[:4]) == ["lineage", "time", "x", "y"] and len(res.data) == pred.n_obs
    emb = adata.obsm["X_umap"]
    assert (res.data["x"].between(emb[:, 0].min(), emb[:, 0].max())).all()
    assert (res.data["y"].between(emb[:, 1].min(), emb[:, 1].max())).all()
    # one state by hand: mean embedding of its 5 nearest cells
    k = 7
    dist = np.linalg.norm(np.asarray(adata.X, float) - np.asarray(pred.X[k], float), axis=1)
    np.testing.assert_allclose(res.data.loc[k, ["x", "y"]].to_numpy(float), emb[np.argsort(dist)[:5]].mean(0))
    np.testing.assert_array_equal(res.data["time"], pred.obs["dpt_pseudotime"])
    assert len(res.ax.texts) == 2  # an arrow per lineage
    assert len(res.ax.lines) == 4  # solid and extrapolated (dashed) part per lineage
    # sparse expression gives the same projection; obs colours work
    other = adata.copy()
    other.X = sparse.csr_matrix(other.X)
    again = scn.pl.trajectory(other, pred, n_neighbors=5, color="lineage", show=False)
    pd.testing.assert_frame_equal(again.data, res.data)


def test_trajectory_by_lineage_places_states_among_their_own_cells(fitted):
    adata, model = fitted
    pred = scn.tl.predict(adata, model, n_points=10)
    res = scn.pl.trajectory(adata, pred, n_neighbors=3, by_lineage=True, show=False)
    emb = adata.obsm["X_umap"]
    for k in (0, 5, 15):
        own = np.flatnonzero(adata.obs["lineage"].astype(str).to_numpy() == str(pred.obs["lineage"].iloc[k]))
        dist = np.linalg.norm(np.asarray(adata.X[own], float) - np.asarray(pred.X[k], float), axis=1)
        np.testing.assert_allclose(res.data.loc[k, ["x", "y"]].to_numpy(float), emb[own[np.argsort(dist)[:3]]].mean(0))
    bare = adata.copy()
    del bare.obs["lineage"]
    with pytest.raises(KeyError, match="lineage column 'lineage'"):
        scn.pl.trajectory(bare, pred, by_lineage=True, show=False)


def test_trajectory_errors(fitted):
    adata, model = fitted
    pred = scn.tl.predict(adata, model, n_points=5)
    with pytest.raises(KeyError, match="X_tsne"):
        scn.pl.trajectory(adata, pred, basis="tsne", show=False)
    with pytest.raises(KeyError, match="nothing"):
        scn.pl.trajectory(adata, pred, color="nothing", show=False)
    with pytest.raises(KeyError, match="g3"):
        scn.pl.trajectory(adata[:, ["g0", "g1", "g2"]].copy(), pred, show=False)


# ----------------------------------------------------------------------------- loss
def test_loss_draws_the_history(fitted):
    adata, model = fitted
    res = scn.pl.loss(adata, show=False)
    history = adata.uns["scnode"]["history"]
    assert res.data.index.name == "iteration"
    for name in ("loss", "mse", "penalty", "lr", "nfe"):
        np.testing.assert_allclose(res.data[name], history[name])
    assert len(res.ax.lines) == 3 and res.ax.get_yscale() == "log"
    twin = [a for a in res.ax.figure.axes if a is not res.ax]
    assert len(twin) == 1 and len(twin[0].lines) == 1  # the learning rate
    from_model = scn.pl.loss(model, log=False, show=False)
    pd.testing.assert_frame_equal(from_model.data, res.data)
    assert from_model.ax.get_yscale() == "linear"


def test_loss_errors(fitted):
    with pytest.raises(KeyError, match="fit_sparse_ode"):
        scn.pl.loss(_cells(), show=False)
    with pytest.raises(ValueError, match="empty"):
        scn.pl.loss(scn.SparseODE(2, hidden=(4,), device="cpu"), show=False)


# ----------------------------------------------------------------------------- lambda_path
def test_lambda_path_draws_the_table(path_fitted):
    adata, table = path_fitted
    res = scn.pl.lambda_path(adata, show=False)
    pd.testing.assert_frame_equal(res.data, table, check_dtype=False)
    assert res.ax.get_xscale() == "log" and res.ax.get_yscale() == "log"
    added = int((table["stage"] != "grid").sum())
    assert len(res.ax.lines) == 3 + (added > 0)  # train, validation, (fits the search added), selected lam
    chosen = table.loc[table["selected"], "lam"].iloc[0]
    assert res.ax.lines[-1].get_xdata()[0] == chosen
    band = [p for p in res.ax.patches if p.get_label().startswith("searched")]  # the searched range, shaded
    assert len(band) == 1 and band[0].get_label() == f"searched {table['lam'].min():g}-{table['lam'].max():g}"
    twin = [a for a in res.ax.figure.axes if a is not res.ax]
    assert len(twin[0].lines) == 2  # feature sparsity, share of candidate edges kept
    from_table = scn.pl.lambda_path(table, show=False)
    pd.testing.assert_frame_equal(from_table.data, table)


def test_lambda_path_errors(fitted):
    adata, _ = fitted
    with pytest.raises(KeyError, match=r"run scnode\.tl\.lambda_path"):
        scn.pl.lambda_path(adata, show=False)
    with pytest.raises(KeyError, match="val_mse"):
        scn.pl.lambda_path(pd.DataFrame({"lam": [1.0], "train_mse": [0.1]}), show=False)


# ----------------------------------------------------------------------------- adjacency
def test_adjacency_cluster_permutes_the_matrix():
    rng = np.random.default_rng(3)
    blocks = np.kron(np.eye(3), np.ones((2, 2)))[rng.permutation(6)][:, rng.permutation(6)]
    m = blocks * rng.uniform(1, 2, (6, 6))
    names = [f"r{i}" for i in range(6)], [f"c{i}" for i in range(6)]
    plain = scn.pl.adjacency(m, row_names=names[0], col_names=names[1], show=False)
    res = scn.pl.adjacency(m, row_names=names[0], col_names=names[1], cluster=True, show=False)
    assert sorted(res.data.index) == names[0] and sorted(res.data.columns) == names[1]
    pd.testing.assert_frame_equal(res.data, plain.data.loc[res.data.index, res.data.columns])
    # rows of a block end up next to each other
    support = res.data.to_numpy() != 0
    for i in range(0, 6, 2):
        assert (support[i] == support[i + 1]).all()
    assert [t.get_text() for t in res.ax.get_yticklabels()] == list(res.data.index)
    np.testing.assert_array_equal(res.ax.images[0].get_array().filled(0), res.data.to_numpy())


def test_adjacency_regulators_and_targets(fitted):
    adata, _ = fitted
    res = scn.pl.adjacency(adata, regulators=["g2", "g0"], targets=["g1", "g3", "g0"], show=False)
    full = pd.DataFrame(adata.varp["scnode"], index=adata.var_names, columns=adata.var_names)
    pd.testing.assert_frame_equal(res.data, full.loc[["g2", "g0"], ["g1", "g3", "g0"]])
    assert res.ax.images[0].get_array().shape == (2, 3)
    clustered = scn.pl.adjacency(adata, regulators=["g2", "g0", "g1"], cluster=True, show=False)
    assert sorted(clustered.data.index) == ["g0", "g1", "g2"] and clustered.data.shape == (3, 4)


def test_adjacency_unknown_names(fitted):
    adata, _ = fitted
    with pytest.raises(KeyError, match=r"regulator.*g9"):
        scn.pl.adjacency(adata, regulators=["g0", "g9"], show=False)
    with pytest.raises(KeyError, match=r"target.*x1"):
        scn.pl.adjacency(adata, targets=["x1"], show=False)


# ----------------------------------------------------------------------------- skeleton
def _stick(n_frames=4, lift=0.0):
    """A three-joint figure (root -> knee -> foot) that walks along x."""
    joints = ["root", "knee", "foot"]
    frames = []
    for f in range(n_frames):
        root = np.array([0.1 * f, 2.0 + lift, 0.0])
        frames.append(np.concatenate([root, root + np.array([0.0, -1.0, 0.0]), root + np.array([0.2, -2.0, 0.1])]))
    var = pd.DataFrame(index=[f"{j}_{a}" for j in joints for a in "xyz"])
    out = ad.AnnData(np.asarray(frames, np.float32), var=var)
    out.uns["skeleton"] = {"joints": joints, "parents": [-1, 0, 1], "bones": [[0, 1], [1, 2]]}
    return out


def test_skeleton_draws_observed_and_predicted_bones():
    obs, pred = _stick(), _stick(lift=0.5)
    res = scn.pl.skeleton(obs, frames=[0, 3], prediction=pred, spacing=2.0, show=False)
    data = res.data
    assert len(data) == 2 * 2 * 2 and set(data["kind"]) == {"observed", "predicted"}  # bones x frames x kinds
    assert len(res.ax.lines) == 8
    foot = data[(data["kind"] == "observed") & (data["frame"] == 3) & (data["child"] == "foot")].iloc[0]
    # frame 3 is the second figure: shifted so that its root sits at x = 2.0; y is the height
    assert foot["x1"] == pytest.approx(2.0 + 0.2) and foot["y1"] == pytest.approx(0.0)
    lifted = data[(data["kind"] == "predicted") & (data["frame"] == 3) & (data["child"] == "foot")].iloc[0]
    assert lifted["y1"] == pytest.approx(0.5) and lifted["x1"] == pytest.approx(foot["x1"])
    spread = scn.pl.skeleton(obs, frames=3, view=("z", "y"), show=False)
    assert sorted(set(spread.data["frame"])) == [0, 2, 3]  # three frames spread over rows 0..3


def test_skeleton_errors():
    obs = _stick()
    with pytest.raises(ValueError, match="view must be two different axes"):
        scn.pl.skeleton(obs, view=("x", "x"), show=False)
    with pytest.raises(KeyError, match="lacks joint coordinate"):
        scn.pl.skeleton(obs, prediction=obs[:, :6].copy(), show=False)
    with pytest.raises(ValueError, match="Frame indices"):
        scn.pl.skeleton(obs, frames=[9], show=False)
    bare = obs.copy()
    del bare.uns["skeleton"]
    with pytest.raises(KeyError, match="skeleton"):
        scn.pl.skeleton(bare, show=False)


def test_skeleton_of_a_cmu_walk():
    if not (Path(os.environ.get("SCNODE_DATA_DIR", "/nonexistent")) / "mocap").is_dir():
        pytest.skip("SCNODE_DATA_DIR has no mocap/")
    walk = scn.datasets.mocap("walk", trial="07_01")
    res = scn.pl.skeleton(walk, frames=3, show=False)
    assert len(res.ax.lines) == 3 * len(walk.uns["skeleton"]["bones"]) == 90


def test_adjacency_log_scale_keeps_exact_zeros_blank():
    import warnings

    matrix = np.array([[0.0, 10.0], [1.0, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no log10(0) warning
        res = scn.pl.adjacency(matrix, log=True, show=False)
    image = res.ax.images[0].get_array()
    assert image.mask[0, 0] and image.mask[1, 1]
    assert image[0, 1] == pytest.approx(1.0) and image[1, 0] == pytest.approx(0.0)


def _large(n_genes=2000, seed=0):
    """An AnnData of 2000 genes with a sparse learned network and signs (as a fit writes them)."""
    rng = np.random.default_rng(seed)
    adata = ad.AnnData(
        rng.random((30, n_genes)).astype(np.float32),
        obs=pd.DataFrame(
            {"dpt_pseudotime": np.linspace(0, 1, 30), "lineage": pd.Categorical(["a"] * 30)},
            index=[f"c{i}" for i in range(30)],
        ),
        var=pd.DataFrame(index=[f"g{i}" for i in range(n_genes)]),
    )
    graph = sparse.random(n_genes, n_genes, density=0.002, random_state=seed, format="csr", dtype=np.float32)
    adata.varp["scnode"] = graph
    adata.varp["scnode_sign"] = graph.sign()
    adata.obsm["X_umap"] = rng.random((30, 2))
    return adata


def test_plots_of_2000_genes_stay_small():
    adata = _large()
    res = scn.pl.adjacency(adata, show=False)
    width, height = res.ax.figure.get_size_inches()
    assert width <= 16 and height <= 14 and res.data.shape == (50, 50)
    assert res.ax.get_ylabel() == "50 strongest rows (1950 not shown)" and res.data.attrs["left_out"] == (1950, 1950)
    graph = abs(adata.varp["scnode"])
    strongest = np.sort(np.argsort(-np.asarray(graph.sum(1)).ravel(), kind="stable")[:50])
    assert list(res.data.index) == list(adata.var_names[strongest])  # the strongest regulators, in gene order
    assert len(res.ax.get_xticklabels()) <= 60
    everything = scn.pl.adjacency(adata, max_genes=None, show=False)
    w, h = everything.ax.figure.get_size_inches()
    assert everything.data.shape == (2000, 2000) and w <= 16 and h <= 14 and not everything.ax.get_xticklabels()
    net = scn.pl.network(adata, show=False)
    assert len(net.data) == 30 and tuple(net.ax.figure.get_size_inches()) == (6.0, 6.0)
    with pytest.raises(ValueError, match="max_genes"):
        scn.pl.adjacency(adata, max_genes=0, show=False)
