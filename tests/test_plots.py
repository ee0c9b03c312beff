"""The plots of scnode.pl: each returns the data it drew; checked against their sources."""

import os
from pathlib import Path

import anndata as ad
import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from helpers import FAST, FIT, cells, one_way_model, scaled_copy
from scipy import sparse
from scipy.spatial import cKDTree

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
    legend = [t.get_text() for t in res.ax.get_legend().get_texts() if t.get_text().strip()]
    signs = [n for v, n in ((1, "activation"), (-1, "repression")) if (expected["sign"] == v).any()]
    weights = np.sort(expected["weight"].to_numpy())  # widths: the weakest, the median and the strongest edge
    assert legend == signs + [f"score {w:.3g}" for w in dict.fromkeys(weights[[0, len(weights) // 2, -1]])]
    # each arrow as wide as its score (strongest widest), in the edge list's order
    widths = np.array([p.get_linewidth() for p in res.ax.patches])
    np.testing.assert_allclose(widths, res.data["width"])
    np.testing.assert_allclose(np.diff(widths) / np.diff(expected["weight"]), 3.0 / expected["weight"].max())
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


def _krumsiek11_scores(seed=0):
    """krumsiek11 with the true couplings plus noise as its "learned" network (signs of the truth, + elsewhere).

    The three strongest noise edges outscore some true ones, so a drawing of the strongest edges holds
    false edges too.
    """
    rng = np.random.default_rng(seed)
    adata = scn.datasets.krumsiek11()
    truth = adata.varp["true_network"]
    noise = rng.uniform(0.0, 0.3, truth.shape) * (rng.random(truth.shape) < 0.3)
    noise[[0, 3, 10], [9, 6, 2]] = [2.0, 1.8, 1.6]  # Gata2 -> EgrNab, EKLF -> Cebpa, Gfi1 -> Fog1: false
    adata.varp["scnode"] = (np.abs(truth) * rng.uniform(0.5, 1.5, truth.shape) + noise) * (truth != 0) + noise
    adata.varp["scnode_sign"] = np.where(truth != 0, np.sign(truth), 1.0)
    return adata, truth


def _random_network(n_genes=50, n_edges=60, seed=1, name="Gene{}"):
    """A signed random network of ``n_edges`` edges touching ``n_genes`` genes (a ring through all of them)."""
    rng = np.random.default_rng(seed)
    names = [name.format(i) for i in range(n_genes)]
    g = np.zeros((n_genes, n_genes))
    g[np.arange(n_genes), (np.arange(n_genes) + 1) % n_genes] = rng.uniform(0.1, 1, n_genes)  # everyone drawn
    while (g != 0).sum() < n_edges:
        i, j = rng.integers(n_genes, size=2)
        if i != j:
            g[i, j] = rng.uniform(0.1, 1)
    adata = ad.AnnData(np.zeros((3, n_genes), np.float32), var=pd.DataFrame(index=names))
    adata.varp["scnode"] = g
    adata.varp["scnode_sign"] = np.where(rng.random(g.shape) < 0.5, 1, -1) * (g != 0)
    return adata


def _disc_and_label_overlaps(ax):
    """Overlapping pairs of node discs (centre distance < sum of radii) and of label bounding boxes, as drawn.

    Asserts that every disc and every label lies within the axes (1 pixel tolerance).
    """
    figure = ax.figure
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    (nodes,) = ax.collections
    centres = ax.transData.transform(nodes.get_offsets())
    radii = np.sqrt(np.broadcast_to(nodes.get_sizes(), len(centres))) / 2 * figure.dpi / 72
    distance = np.linalg.norm(centres[:, None] - centres[None], axis=2)
    upper = np.triu(np.ones(distance.shape, bool), 1)
    discs = int((upper & (distance < radii[:, None] + radii[None])).sum())
    boxes = np.array([t.get_window_extent(renderer).extents for t in ax.texts])  # x0, y0, x1, y1 (pixels)
    apart = (boxes[:, None, 2] <= boxes[None, :, 0]) | (boxes[None, :, 2] <= boxes[:, None, 0])
    apart |= (boxes[:, None, 3] <= boxes[None, :, 1]) | (boxes[None, :, 3] <= boxes[:, None, 1])
    labels = int((upper & ~apart).sum())
    inside = ax.get_window_extent()
    assert (centres - radii[:, None] >= [inside.x0 - 1, inside.y0 - 1]).all()
    assert (centres + radii[:, None] <= [inside.x1 + 1, inside.y1 + 1]).all()  # every disc within the axes
    assert (boxes[:, :2] >= [inside.x0 - 1, inside.y0 - 1]).all()
    assert (boxes[:, 2:] <= [inside.x1 + 1, inside.y1 + 1]).all()  # every label within the axes
    return discs, labels, len(centres)


@pytest.mark.parametrize(
    ("network", "top_k", "layout", "n_nodes"),
    [
        ("krumsiek11", 15, "auto", 11),  # as the demo draws it (the former spring layout overlapped two pairs here)
        ("krumsiek11", 10, "auto", 10),
        ("random", None, "auto", 50),
        ("random", None, "layered", 50),
        ("random", None, "spring", 50),
        ("long names", None, "auto", 50),  # 16-17 characters, wider than their discs: none may leave the axes
        ("long names", None, "layered", 50),
    ],
)
def test_network_nodes_and_labels_never_overlap(network, top_k, layout, n_nodes):
    if network == "krumsiek11":
        adata = _krumsiek11_scores()[0]
    else:
        adata = _random_network(name="Gene-long-name-{}" if network == "long names" else "Gene{}")
    res = scn.pl.network(adata, top_k=top_k, layout=layout, show=False)
    discs, labels, drawn = _disc_and_label_overlaps(res.ax)
    assert drawn == n_nodes and {t.get_text() for t in res.ax.texts} == {*res.data["source"], *res.data["target"]}
    assert discs == 0 and labels == 0, f"{discs} discs and {labels} labels overlap"
    # the legend sits under the graph: no disc reaches into it
    legend = res.ax.get_legend().get_window_extent()
    centres = res.ax.transData.transform(res.ax.collections[0].get_offsets())
    assert (centres[:, 1] > legend.y1).all(), f"lowest node at {centres[:, 1].min():.1f}, legend top {legend.y1:.1f}"
    # the graph fills the axes: its nodes span most of the width and of the height above the legend
    box = res.ax.get_window_extent()
    spans = (np.ptp(centres[:, 0]) / box.width, np.ptp(centres[:, 1]) / (box.y1 - legend.y1))
    assert spans[0] > 0.7 and spans[1] > 0.6, f"nodes span {spans[0]:.2f} of the width, {spans[1]:.2f} of the height"


def test_network_in_a_small_axes_shrinks_instead_of_overlapping():
    _, ax = plt.subplots(figsize=(3.0, 3.0), layout="constrained")
    res = scn.pl.network(_random_network(), top_k=None, ax=ax, show=False)
    discs, labels, drawn = _disc_and_label_overlaps(res.ax)
    assert drawn == 50 and discs == 0 and labels == 0
    assert res.ax.texts[0].get_fontsize() < 9.0 and res.ax.collections[0].get_sizes()[0] < 600


def test_network_marks_known_edges_and_colours_signs():
    adata, truth = _krumsiek11_scores()
    res = scn.pl.network(adata, top_k=15, truth=truth, show=False)
    names = list(adata.var_names)
    pairs = zip(res.data["source"], res.data["target"], strict=True)
    expected = [truth[names.index(s), names.index(t)] != 0 for s, t in pairs]
    assert list(res.data["true"]) == expected and 0 < sum(expected) < 15  # true and false edges among the 15
    for patch, row in zip(res.ax.patches, res.data.itertuples(), strict=True):  # one arrow per edge, in order
        assert (patch.get_linestyle() == "-") == row.true  # true solid, false dashed
        color = {1: "tab:red", -1: "tab:blue"}[row.sign]
        assert patch.get_edgecolor() == mcolors.to_rgba(color)  # colour by the learned sign
        truth_sign = np.sign(truth[names.index(row.source), names.index(row.target)])
        assert row.sign == (truth_sign if row.true else 1)
    repression = [p for p, s in zip(res.ax.patches, res.data["sign"], strict=True) if s == -1]
    assert repression and all(type(p.get_arrowstyle()).__name__ == "BracketB" for p in repression)  # flat bars
    texts = [t.get_text() for t in res.ax.get_legend().get_texts()]
    assert f"in the known network ({sum(expected)} of 15)" in texts and f"not in it ({15 - sum(expected)})" in texts
    # the same marks from an edge table of the truth
    rows, cols = np.nonzero(truth)
    table = pd.DataFrame({"source": np.array(names)[rows], "target": np.array(names)[cols]})
    from_table = scn.pl.network(adata, top_k=15, truth=table, show=False)
    pd.testing.assert_frame_equal(from_table.data, res.data)
    with pytest.raises(ValueError, match="n_vars x n_vars"):
        scn.pl.network(adata, truth=truth[:5, :5], show=False)


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
    assert list(res.data.columns) == ["gene", "lineage", "time", "value", "kind", "sd"]
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
    for ax in res.ax:  # per lineage: its cells, their mean per bin and the fitted curve
        assert [c.get_gid() for c in ax.collections if c.get_gid() == "cells"] == ["cells"] * 2
        assert [line.get_gid() for line in ax.lines] == ["binned"] * 2 + ["fit"] * 2


def test_gene_trends_from_model_dashes_extrapolation(fitted):
    adata, model = fitted
    res = scn.pl.gene_trends(adata, "g1", model=model, extrapolate=0.5, show=False)
    pred = scn.tl.predict(adata, model, extrapolate=0.5)
    curve = res.data[res.data["kind"].isin(["fitted", "extrapolated"])]
    np.testing.assert_allclose(curve["value"], pred[:, "g1"].X.ravel(), rtol=1e-6)
    np.testing.assert_array_equal(curve["kind"] == "extrapolated", pred.obs["extrapolated"])
    styles = [line.get_linestyle() for line in res.ax[0].lines]
    assert styles.count("-") == 2 and styles.count("--") == 2
    given = scn.pl.gene_trends(adata, ["g1"], prediction=pred, show=False)
    pd.testing.assert_frame_equal(given.data, res.data)


def test_gene_trends_tells_cells_bins_fit_and_extrapolation_apart(fitted):
    adata, model = fitted
    res = scn.pl.gene_trends(adata, ["g1", "g2"], model=model, extrapolate=0.5, n_bins=5, show=False)
    ax, data = res.ax[0], res.data[res.data["gene"] == "g1"]
    colors = {"L0": mcolors.to_rgb("C0"), "L1": mcolors.to_rgb("C1")}
    by_gid = {}
    for artist in [*ax.collections, *ax.lines, *ax.patches, *ax.texts]:
        by_gid.setdefault(artist.get_gid(), []).append(artist)
    # cells: faint dots at the observed values, under everything else
    cells = data[data["kind"] == "observed"]
    dots = by_gid["cells"]
    for d, (name, part) in zip(dots, cells.groupby("lineage", sort=False), strict=True):
        np.testing.assert_allclose(d.get_offsets(), part[["time", "value"]])
        assert mcolors.same_color(d.get_facecolor()[0][:3], colors[name]) and d.get_alpha() < 1
    # the cells' mean ± sd per time bin: open circles at the bins' means, bars as long as the sd
    binned = data[data["kind"] == "binned"]
    for line, (name, part) in zip(by_gid["binned"], binned.groupby("lineage", sort=False), strict=True):
        assert line.get_marker() == "o" and line.get_linestyle() == "None"
        assert mcolors.same_color(line.get_markeredgecolor(), colors[name])
        np.testing.assert_allclose(line.get_ydata(), part["value"])
        own = cells[cells["lineage"] == name]
        first = own[own["time"] < own["time"].min() + np.ptp(own["time"]) / 5]  # the first of 5 equal bins
        assert part["value"].iloc[0] == pytest.approx(first["value"].mean())
        assert part["sd"].iloc[0] == pytest.approx(first["value"].std())
    spreads = np.concatenate([np.asarray(c.get_segments()) for c in by_gid["binned spread"]])
    np.testing.assert_allclose(np.ptp(spreads[:, :, 1], axis=1), 2 * binned["sd"])
    # the fit: solid, on top, in the lineage's colour; the extrapolation: dashed, continuing it
    for fit, gone in zip(by_gid["fit"], by_gid["extrapolated"], strict=True):
        name = fit.get_label()
        assert fit.get_linestyle() == "-" and gone.get_linestyle() == "--"
        assert mcolors.same_color(fit.get_color(), colors[name]) and mcolors.same_color(gone.get_color(), colors[name])
        assert fit.get_zorder() > max(d.get_zorder() for d in dots + by_gid["binned"])
        assert (fit.get_xdata()[-1], fit.get_ydata()[-1]) == (gone.get_xdata()[0], gone.get_ydata()[0])
    # one shaded range, where no lineage has cells: from the last cell of any lineage to the farthest end
    (shade,) = by_gid["extrapolated region"]
    left, right = shade.get_x(), shade.get_x() + shade.get_width()
    assert left == max(cells["time"].max(), *(g.get_xdata()[0] for g in by_gid["extrapolated"]))
    assert right == max(g.get_xdata()[-1] for g in by_gid["extrapolated"]) > left
    curve = data[data["kind"].isin(["fitted", "extrapolated"])]
    for name, part in curve.groupby("lineage"):  # extrapolated: beyond the lineage's last cell
        last = cells.loc[cells["lineage"] == name, "time"].max()
        assert (part.loc[part["kind"] == "extrapolated", "time"] > last).all()
    assert [t.get_text() for t in by_gid["extrapolated note"]] == ["extrapolated:\nno cells"]
    low, high = ax.get_ylim()
    assert low <= cells["value"].min() and high >= cells["value"].max()  # the y axis in the data's units, all cells
    assert ax.get_ylabel() == "expression (X)"
    legend = [t.get_text() for t in res.ax[0].figure.legends[0].get_texts()]
    assert legend == ["L0", "L1", "model", "cells: mean ± sd per bin", "model, extrapolated"]


def test_gene_trends_runaway_extrapolation_leaves_the_axes(fitted):
    adata, model = fitted
    pred = scn.tl.predict(adata, model, extrapolate=0.5)
    out = pred.obs["extrapolated"].to_numpy()
    pred.X[out, pred.var_names.get_loc("g0")] = np.linspace(1, 50, out.sum())  # rises to 50; the data stay near 1
    res = scn.pl.gene_trends(adata, "g0", prediction=pred, n_bins=None, show=False)
    ax = res.ax[0]
    high = ax.get_ylim()[1]
    assert 1 < high < 5  # the data and the fit fill the axes
    (note,) = [t for t in ax.texts if t.get_gid() == "extrapolated note"]
    assert note.get_text().endswith("the axes: 50)")
    assert "binned" not in set(res.data["kind"]) and not [line for line in ax.lines if line.get_gid() == "binned"]
    with pytest.raises(ValueError, match="n_bins"):
        scn.pl.gene_trends(adata, "g0", n_bins=0, show=False)


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
    res = scn.pl.trajectory(adata, pred, n_neighbors=5, placement="nearest", by_lineage=False, show=False)
    assert list(res.data.columns[:4]) == ["lineage", "time", "x", "y"] and len(res.data) == pred.n_obs
    emb = adata.obsm["X_umap"]
    assert (res.data["x"].between(emb[:, 0].min(), emb[:, 0].max())).all()
    assert (res.data["y"].between(emb[:, 1].min(), emb[:, 1].max())).all()
    # one state by hand: mean embedding of its 5 nearest cells
    k = 7
    dist = np.linalg.norm(np.asarray(adata.X, float) - np.asarray(pred.X[k], float), axis=1)
    np.testing.assert_allclose(res.data.loc[k, ["x", "y"]].to_numpy(float), emb[np.argsort(dist)[:5]].mean(0))
    np.testing.assert_array_equal(res.data["time"], pred.obs["dpt_pseudotime"])
    assert len(res.ax.texts) == 4  # two arrow heads per lineage: halfway and at the end
    assert [line.get_gid() for line in res.ax.lines] == ["path", "extrapolated path"] * 2  # per lineage
    # sparse expression gives the same projection (either placement); obs colours work
    other = adata.copy()
    other.X = sparse.csr_matrix(other.X)
    again = scn.pl.trajectory(other, pred, n_neighbors=5, color="lineage", placement="nearest", by_lineage=False)
    pd.testing.assert_frame_equal(again.data, res.data)
    smooth = scn.pl.trajectory(adata, pred, show=False)
    pd.testing.assert_frame_equal(scn.pl.trajectory(other, pred, show=False).data, smooth.data)


def test_trajectory_by_lineage_places_states_among_their_own_cells(fitted):
    adata, model = fitted
    pred = scn.tl.predict(adata, model, n_points=10)
    res = scn.pl.trajectory(adata, pred, n_neighbors=3, by_lineage=True, placement="nearest", show=False)
    emb = adata.obsm["X_umap"]
    for k in (0, 5, 15):
        own = np.flatnonzero(adata.obs["lineage"].astype(str).to_numpy() == str(pred.obs["lineage"].iloc[k]))
        dist = np.linalg.norm(np.asarray(adata.X[own], float) - np.asarray(pred.X[k], float), axis=1)
        np.testing.assert_allclose(res.data.loc[k, ["x", "y"]].to_numpy(float), emb[own[np.argsort(dist)[:3]]].mean(0))
    bare = adata.copy()
    del bare.obs["lineage"]
    with pytest.raises(KeyError, match="lineage column 'lineage'"):
        scn.pl.trajectory(bare, pred, by_lineage=True, show=False)


def _branching(n_cells=150, seed=0):
    """Two lineages A and B of ``n_cells`` cells each: a shared stem (t < 0.3), then an arm each.

    Genes: g0 rises and g3 falls with t, g1 rises on arm A only, g2 on arm B only, g4 and g5 are
    noise. The "UMAP" is a Y: the stem from (0, 0) up to (0, 1), arm A to the upper left, B to the
    upper right.
    """
    rng = np.random.default_rng(seed)
    x, umap, obs = [], [], []
    for k, name in enumerate("AB"):
        t = np.sort(rng.uniform(0, 1, n_cells))
        arm = np.clip(t - 0.3, 0, None) / 0.7
        x.append(_branch_expression(t, k) + 0.1 * rng.normal(size=(n_cells, 6)))
        umap.append(np.c_[(2 * k - 1) * 2 * arm, np.minimum(t, 0.3) / 0.3 + 2 * arm])
        obs.append(pd.DataFrame({"t": t, "lineage": name}))
    obs = pd.concat(obs, ignore_index=True).astype({"lineage": "category"})
    obs.index = [f"c{i}" for i in range(len(obs))]
    adata = ad.AnnData(
        np.concatenate(x).astype(np.float32), obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(6)])
    )
    adata.obsm["X_umap"] = np.concatenate(umap) + 0.08 * rng.normal(size=(len(obs), 2))
    return adata


def _branch_expression(t, k):
    """Noise-free expression of lineage ``k`` (0: A, 1: B) at times ``t``."""
    x = np.zeros((len(t), 6))
    x[:, 0], x[:, 3] = t, 1 - t
    x[:, 1 + k] = 2 * np.clip(t - 0.3, 0, None) / 0.7
    return x


def _branching_prediction(n_points=40, between=0.6):
    """A model-free prediction of both lineages to t = 1.1 (extrapolated beyond 1) as scnode.tl.predict lays it out.

    Every other state is moved ``between`` of the way towards the other arm's expression: states
    between two arms, which the nearest cells in expression put on alternating arms.
    """
    t = np.linspace(0, 1.1, n_points)
    x, obs = [], []
    for k, name in enumerate("AB"):
        own, other = _branch_expression(t, k), _branch_expression(t, 1 - k)
        own[1::2] += between * (other[1::2] - own[1::2])
        x.append(own)
        obs.append(pd.DataFrame({"t": t, "scaled_time": t, "lineage": name, "extrapolated": t > 1}))
    obs = pd.concat(obs, ignore_index=True).astype({"lineage": "category"})
    obs.index = obs.index.astype(str)
    return ad.AnnData(
        np.concatenate(x).astype(np.float32), obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(6)])
    )


def test_trajectory_moves_along_each_arm():
    adata, pred = _branching(), _branching_prediction()
    emb = adata.obsm["X_umap"]
    size = np.ptp(emb, axis=0).max()
    res = scn.pl.trajectory(adata, pred, color="lineage", show=False)
    cells = {c.get_label(): c for c in res.ax.collections if c.get_label() in ("A", "B")}
    paths = [line for line in res.ax.lines if line.get_gid() == "path"]
    assert [p.get_label() for p in paths] == ["A", "B"]  # one solid line per lineage (and a dashed end)
    tree = cKDTree(emb)
    for path in paths:
        name = path.get_label()
        part = res.data[res.data["lineage"] == name]
        xy = part[["x", "y"]].to_numpy()
        steps = np.linalg.norm(np.diff(xy, axis=0), axis=1)
        assert steps.max() < 0.08 * size  # no jumps
        assert (np.diff(xy[:, 1]) > -0.02 * size).all()  # up the stem and the arm, never back
        side = 1 if name == "B" else -1
        assert side * xy[-1, 0] > 1.5  # out on its own arm
        _, near = tree.query(xy[~part["extrapolated"].to_numpy()][-1], k=15)
        ends_among = adata.obs.iloc[near]
        assert (ends_among["lineage"] == name).mean() >= 0.8 and (ends_among["t"] > 0.8).all()
        # the line drawn is the path (all states up to the last fitted one), in the colour of the lineage's cells
        inside = ~part["extrapolated"].to_numpy()
        np.testing.assert_allclose(np.c_[path.get_xdata(), path.get_ydata()], xy[inside])
        assert mcolors.same_color(path.get_color(), cells[name].get_facecolor()[0][:3])
    # two arrow heads per lineage, each on a state and pointing the way from the latest earlier state of its path at
    # least 2 % of the embedding's size back (from the state just before, the extrapolated end's could point anywhere)
    ordered = {n: p.sort_values("time", kind="stable")[["x", "y"]].to_numpy() for n, p in res.data.groupby("lineage")}
    assert len(res.ax.texts) == 4
    for arrow in res.ax.texts:
        head, tail = np.asarray(arrow.xy), np.asarray(arrow.xyann)
        (name,) = [n for n, xy in ordered.items() if (xy == head).all(1).any()]
        xy = ordered[name]
        i = (xy == head).all(1).nonzero()[0][-1]
        j = np.flatnonzero(np.linalg.norm(xy[:i] - head, axis=1) >= 0.02 * size)[-1]
        way, drawn = head - xy[j], head - tail
        assert way @ drawn / np.linalg.norm(way) / np.linalg.norm(drawn) > 0.999
    # time dots coloured by the predicted time, one colour bar
    dots = [c for c in res.ax.collections if c.get_gid() == "time"]
    assert len(dots) == 2 and all(np.diff(d.get_array()).min() > 0 for d in dots)
    assert [a.get_label() for a in res.ax.figure.axes[1:]] == ["<colorbar>"]
    assert res.ax.figure.axes[1].get_ylabel() == "t"
    # what the former placement did: the nearest cells in expression put every other state on the other arm
    nearest = scn.pl.trajectory(adata, pred, placement="nearest", by_lineage=False, show=False)
    jumps = np.linalg.norm(np.diff(nearest.data.loc[nearest.data["lineage"] == "A", ["x", "y"]], axis=0), axis=1)
    assert jumps.max() > 0.5 * size


def test_trajectory_errors(fitted):
    adata, model = fitted
    pred = scn.tl.predict(adata, model, n_points=5)
    with pytest.raises(KeyError, match="X_tsne"):
        scn.pl.trajectory(adata, pred, basis="tsne", show=False)
    with pytest.raises(ValueError, match="placement must be one of"):
        scn.pl.trajectory(adata, pred, placement="closest", show=False)
    with pytest.raises(ValueError, match="n_neighbors"):
        scn.pl.trajectory(adata, pred, n_neighbors=0, show=False)
    with pytest.raises(ValueError, match="time_bandwidth"):
        scn.pl.trajectory(adata, pred, time_bandwidth=0, show=False)
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
    assert sorted(res.data.index) == sorted(adata.var_names[strongest])  # the strongest regulators ...
    in_genes = scn.pl.adjacency(adata, cluster=False, show=False)
    assert list(in_genes.data.index) == list(adata.var_names[strongest])  # ... in gene order unclustered,
    pd.testing.assert_frame_equal(res.data, in_genes.data.loc[res.data.index, res.data.columns])  # clustered
    assert res.data.index.get_indexer(in_genes.data.index).tolist() != list(range(50))
    # every name written, as large as the rows' and columns' spacing allows (at most 9 points)
    res.ax.figure.canvas.draw()
    box = res.ax.get_window_extent()
    for names, spacing in ((res.ax.get_yticklabels(), box.height / 50), (res.ax.get_xticklabels(), box.width / 50)):
        assert len(names) == 50 and 4 <= names[0].get_fontsize() <= 9
        extents = [n.get_window_extent() for n in names]
        assert max(min(e.width, e.height) for e in extents) <= spacing  # each name within its row or column
    # in a small Axes: names of 20 rows fit at a smaller size, those of 50 not at all
    fewer = scn.pl.adjacency(adata, max_genes=20, ax=plt.subplots(figsize=(3, 3))[1], show=False)
    assert len(fewer.ax.get_yticklabels()) == 20 and fewer.ax.get_yticklabels()[0].get_fontsize() < 9
    crowded = scn.pl.adjacency(adata, ax=plt.subplots(figsize=(3, 3))[1], show=False)
    assert not crowded.ax.get_yticklabels() and not crowded.ax.get_xticklabels()
    everything = scn.pl.adjacency(adata, max_genes=None, show=False)
    w, h = everything.ax.figure.get_size_inches()
    assert everything.data.shape == (2000, 2000) and w <= 16 and h <= 14 and not everything.ax.get_xticklabels()
    net = scn.pl.network(adata, show=False)
    assert len(net.data) == 30 and tuple(net.ax.figure.get_size_inches()) == (6.0, 6.0)
    effect = ad.AnnData(  # an intervention's result on 2000 genes, as simulate_intervention writes it
        np.zeros((20, 2000), np.float32),
        obs=pd.DataFrame(
            {"time": np.linspace(0, 1, 20), "lineage": ["a"] * 20, "extrapolated": False, "intervened": True}
        ),
        var=pd.DataFrame(index=adata.var_names),
    )
    effect.layers["delta"] = np.random.default_rng(2).normal(size=(20, 2000)).astype(np.float32)
    effect.uns["intervention"] = {"hold": {"g0": 0.0}, "start": 0.0, "n_models": 1}
    drawn = scn.pl.intervention(effect, show=False)
    strongest = np.argsort(-np.abs(effect.layers["delta"]).max(axis=0))[:7]
    expected = [f"g{j}" for j in strongest if j != 0][:6]
    assert list(drawn.data["gene"].unique()) == expected and tuple(drawn.ax[0].figure.get_size_inches()) == (12.0, 6.0)
    with pytest.raises(ValueError, match="at most 24"):
        scn.pl.intervention(effect, list(effect.var_names[:25]), show=False)
    with pytest.raises(ValueError, match="max_genes"):
        scn.pl.adjacency(adata, max_genes=0, show=False)
    # ten fitted genes among the 2000: only rows and columns with a score are drawn, not 40 blank ones
    few = _large()
    block = np.zeros((2000, 2000), np.float32)
    block[np.ix_(range(10), range(10))] = np.random.default_rng(1).random((10, 10)) + 0.1
    few.varp["scnode"] = sparse.csr_matrix(block)
    small = scn.pl.adjacency(few, show=False)
    assert small.data.shape == (10, 10) and set(small.data.index) == {f"g{i}" for i in range(10)}
    assert small.ax.get_ylabel() == "10 strongest rows (1990 not shown)"


def test_intervention_plot_draws_the_median_effect_and_the_models_spread():
    adata = cells(n_genes=2)
    _, model = one_way_model(adata)
    models = [scaled_copy(model, f) for f in (0.5, 1.0, 3.0)]
    ensemble = scn.tl.simulate_intervention(adata, models, knockout="g0", start=0.3, n_points=21)
    res = scn.pl.intervention(ensemble, show=False)
    assert list(res.data["gene"].unique()) == ["g1"]  # the knocked-out gene is left out by default
    assert len(res.ax) == 1 and res.ax[0].get_title() == "g1"
    lineage = ensemble.obs["lineage"].astype(str).to_numpy()
    for name, part in res.data.groupby("lineage"):
        rows = np.flatnonzero(lineage == name)
        np.testing.assert_allclose(part["delta"], ensemble.layers["delta"][rows, 1], rtol=1e-6)
        np.testing.assert_allclose(part["low"], ensemble.layers["delta_low"][rows, 1], rtol=1e-6)
        assert (part["high"] >= part["delta"] - 1e-6).all() and (part["low"] <= part["delta"] + 1e-6).all()
    assert len(res.ax[0].collections) == 2  # one band per lineage
    assert "median of 3 models" in res.ax[0].get_legend().get_title().get_text()
    single = scn.pl.intervention(scn.tl.simulate_intervention(adata, model, knockout="g0"), ["g0", "g1"], show=False)
    assert single.data["low"].isna().all() and not single.ax[0].collections and len(single.ax) == 2
    with pytest.raises(KeyError, match="simulate_intervention"):
        scn.pl.intervention(scn.tl.predict(adata, model), show=False)
    with pytest.raises(KeyError, match="g7"):
        scn.pl.intervention(ensemble, "g7", show=False)
    with pytest.raises(ValueError, match="n_genes"):
        scn.pl.intervention(ensemble, n_genes=0, show=False)
    plt.close("all")
