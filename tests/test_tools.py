"""The companion tools: predict, score, interventions, lambda paths, edge lists, GRN evaluation."""

import anndata as ad
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch
from helpers import FAST, FIT, cells, one_way_model, scaled_copy

import scnode as scn


@pytest.fixture(scope="module")
def fitted():
    adata = cells()
    model = scn.tl.fit_sparse_ode(
        adata, lineage_key="lineage", trim_start=2, x0_cells=2, n_bins=None, return_model=True, **FAST
    )
    return adata, model


def test_predict_starts_at_x0_in_data_units_and_extrapolates(fitted):
    adata, model = fitted
    pred = scn.tl.predict(adata, model, extrapolate=0.5, n_points=31)
    assert pred.shape == (2 * 31, 3) and list(pred.var_names) == ["g0", "g1", "g2"]
    assert set(pred.obs.columns) >= {"dpt_pseudotime", "scaled_time", "lineage", "extrapolated"}
    ts = scn.pp.prepare_trajectories(adata, lineage_key="lineage", trim_start=2, x0_cells=2)
    for k, name in enumerate(ts.lineages):
        part = pred[pred.obs["lineage"] == name]
        np.testing.assert_allclose(part.X[0], ts.unscale(k, ts.x0[k]), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(part.layers["scaled"][0], ts.x0[k], rtol=1e-5, atol=1e-6)
        # the last third of the grid lies beyond the lineage's last time, in the data's time units
        assert part.obs["extrapolated"].sum() == 10
        t_last = np.sort(adata.obs["dpt_pseudotime"][adata.obs["lineage"] == name])[-1]
        assert part.obs["dpt_pseudotime"].iloc[-1] == pytest.approx(t_last + 0.5 * (t_last - part.obs.iloc[0, 0]))
    with pytest.raises(ValueError, match="extrapolate must be >= 0"):
        scn.tl.predict(adata, model, extrapolate=-1)


def test_score_on_training_data_matches_the_fit_record(fitted):
    adata, model = fitted
    window = adata.uns["scnode"]["params"]["window"]  # the default fit trains (and records) on windows
    table = scn.tl.score(adata, model, window=window)
    assert list(table.index) == ["L0", "L1", "sum"]
    per = adata.uns["scnode"]["metrics"]["train_mse_per_lineage"]
    for name in ("L0", "L1"):
        assert table.loc[name, "mse"] == pytest.approx(per[name], rel=1e-5)
    assert table.loc["sum", "mse"] == pytest.approx(table["mse"].iloc[:2].sum())
    assert table.loc["sum", "n_times"] == table["n_times"].iloc[:2].sum()


def test_score_held_out_donor_uses_its_own_x0_and_leaves_it_untouched(fitted):
    _, model = fitted
    other = cells(seed=1)
    before = other.copy()
    table = scn.tl.score(other, model)
    assert np.isfinite(table["mse"]).all()
    assert other.obs.equals(before.obs) and not other.uns and not other.layers
    missing = other[:, ["g0", "g1"]].copy()
    with pytest.raises(KeyError, match="g2"):
        scn.tl.score(missing, model)
    with pytest.raises(TypeError, match="Unknown preprocessing"):
        scn.tl.score(other, model, smoothing=3)


def test_knockout_acts_downstream_only():
    adata = cells(n_genes=2)
    _, model = one_way_model(adata)
    out = scn.tl.simulate_intervention(adata, model, knockout="g0", start=0.4, n_points=21)
    assert set(out.layers) >= {"control", "delta", "scaled"}
    g0 = out.X[:, 0]
    acting = out.obs["intervened"].to_numpy()
    np.testing.assert_allclose(g0[acting], 0.0, atol=1e-5)  # knocked out in the data's units
    np.testing.assert_allclose(out.layers["delta"][~acting], 0.0, atol=1e-6)  # unchanged before start
    assert np.abs(out.layers["delta"][acting, 1]).max() > 1e-3  # g1 depends on g0 ...
    up = scn.tl.simulate_intervention(adata, model, hold={"g1": 5.0}, n_points=21)
    np.testing.assert_allclose(up.layers["delta"][:, 0], 0.0, atol=1e-6)  # ... g0 does not depend on g1
    np.testing.assert_allclose(up.X[:, 1], 5.0, rtol=1e-5)
    assert up.uns["intervention"]["hold"] == {"g1": 5.0}


def test_several_models_give_the_median_effect_and_its_spread():
    adata = cells(n_genes=2)
    _, model = one_way_model(adata)
    models = [scaled_copy(model, f) for f in (0.5, 1.0, 3.0)]  # g1's effect grows with the factor
    runs = [scn.tl.simulate_intervention(adata, m, knockout="g0", start=0.3, n_points=21) for m in models]
    out = scn.tl.simulate_intervention(adata, models[::-1], knockout="g0", start=0.3, n_points=21)
    deltas = np.stack([r.layers["delta"] for r in runs])
    assert np.abs(deltas[2] - deltas[1]).max() > 1e-2  # the models disagree ...
    np.testing.assert_allclose(out.layers["delta"], runs[1].layers["delta"], atol=1e-5)  # ... middle = median
    np.testing.assert_allclose(out.layers["delta_low"], np.quantile(deltas, 0.25, axis=0), atol=1e-5)
    np.testing.assert_allclose(out.layers["delta_high"], np.quantile(deltas, 0.75, axis=0), atol=1e-5)
    np.testing.assert_allclose(out.X, out.layers["control"] + out.layers["delta"], atol=1e-5)
    np.testing.assert_allclose(out.X[out.obs["intervened"].to_numpy(), 0], 0.0, atol=1e-5)
    assert out.uns["intervention"]["n_models"] == 3 and runs[0].uns["intervention"]["n_models"] == 1
    one = scn.tl.simulate_intervention(adata, [model], knockout="g0", start=0.3, n_points=21)
    np.testing.assert_allclose(one.X, runs[1].X, atol=1e-6)
    assert "delta_low" not in one.layers
    renamed = model.clone()
    renamed.config.var_names = ["g1", "g0"]
    with pytest.raises(ValueError, match="different genes"):
        scn.tl.simulate_intervention(adata, [model, renamed], knockout="g0")
    binned = model.clone()
    binned.preprocessing = {**model.preprocessing, "n_bins": 4}
    with pytest.raises(ValueError, match="differently prepared"):
        scn.tl.simulate_intervention(adata, [model, binned], knockout="g0")
    with pytest.raises(ValueError, match="No model given"):
        scn.tl.simulate_intervention(adata, [], knockout="g0")
    with pytest.raises(TypeError, match="SparseODE"):
        scn.tl.simulate_intervention(adata, [model, "model"], knockout="g0")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, ValueError, "Nothing to simulate"),
        ({"knockout": ["g9"]}, KeyError, "g9"),
        ({"knockout": ["g0"], "hold": {"g0": 1.0}}, ValueError, "both held and knocked out"),
        ({"hold": {"g0": np.nan}}, ValueError, "not finite"),
        ({"knockout": "g0", "start": -0.1}, ValueError, "start"),
    ],
)
def test_intervention_errors(fitted, kwargs, error, match):
    adata, model = fitted
    with pytest.raises(error, match=match):
        scn.tl.simulate_intervention(adata, model, **kwargs)


def test_second_order_intervention_holds_position():
    adata = cells()
    model = scn.tl.fit_sparse_ode(adata, lineage_key="lineage", order=2, return_model=True, **FAST)
    out = scn.tl.simulate_intervention(adata, model, hold={"g2": 0.3}, start=0.5, n_points=11)
    np.testing.assert_allclose(out.X[out.obs["intervened"].to_numpy(), 2], 0.3, rtol=1e-5)


def _with_graph():
    adata = cells(n_genes=4)
    g = np.zeros((4, 4), np.float32)
    g[0, 1], g[0, 2], g[3, 1], g[2, 2], g[1, 3] = 3.0, 1.0, 2.0, 9.0, 0.5
    adata.varp["scnode"] = g
    return adata


def test_edge_list_orders_filters_and_exports():
    adata = _with_graph()
    edges = scn.tl.edge_list(adata)
    assert list(edges.columns) == ["source", "target", "weight"]
    assert list(zip(edges.source, edges.target, strict=True)) == [
        ("g0", "g1"),
        ("g3", "g1"),
        ("g0", "g2"),
        ("g1", "g3"),
    ]
    assert len(scn.tl.edge_list(adata, top_k=2)) == 2
    assert len(scn.tl.edge_list(adata, threshold=1.0)) == 2
    assert ("g2", "g2") in set(
        zip(*scn.tl.edge_list(adata, self_loops=True)[["source", "target"]].T.values, strict=True)
    )
    assert set(scn.tl.edge_list(adata, regulators=["g3"]).source) == {"g3"}
    graph = scn.tl.to_networkx(adata)
    assert isinstance(graph, nx.DiGraph) and set(graph.nodes) == {"g0", "g1", "g2", "g3"}
    assert graph["g0"]["g1"]["weight"] == 3.0 and not graph.has_edge("g1", "g0")
    assert set(scn.tl.to_networkx(edges.head(1)).edges) == {("g0", "g1")}
    with pytest.raises(KeyError, match="no 'other'"):
        scn.tl.edge_list(adata, key="other")


def test_edge_list_of_a_graph_without_edges_between_genes_is_empty_with_its_columns():
    # a search can select a graph of self-loops alone (each gene follows its own level): no edge to list
    adata = _with_graph()
    adata.varp["scnode"] = np.diag([1.0, 2.0, 0.0, 0.5]).astype(np.float32)
    adata.varp["scnode_sign"] = np.diag([-1.0, -1.0, 0.0, 1.0]).astype(np.float32)
    edges = scn.tl.edge_list(adata)
    assert edges.empty and list(edges.columns) == ["source", "target", "weight", "sign"]
    loops = scn.tl.edge_list(adata, self_loops=True)
    assert list(loops.source) == ["g1", "g0", "g3"] and list(loops.sign) == [-1, -1, 1]
    assert scn.tl.edge_list(adata, threshold=5.0, self_loops=True).empty
    assert scn.tl.to_networkx(adata).number_of_edges() == 0


def test_evaluate_grn_perfect_reversed_and_formats():
    adata = _with_graph()
    truth = pd.DataFrame({"source": ["g0", "g3", "g2"], "target": ["g1", "g1", "g2"]})  # g2 -> g2: a self-loop
    res = scn.tl.evaluate_grn(adata, truth)
    assert res["n_true_edges"] == 2 and res["n_candidates"] == 12  # self-loops excluded
    assert res["auprc"] == pytest.approx(1.0) and res["auroc"] == pytest.approx(1.0)
    assert res["epr"] == pytest.approx(1 / res["density"]) and res["auprc_ratio"] == pytest.approx(6.0)
    matrix = np.zeros((4, 4))
    matrix[0, 1] = matrix[3, 1] = 1
    frame = pd.DataFrame(matrix, index=adata.var_names, columns=adata.var_names)
    pd.testing.assert_series_equal(scn.tl.evaluate_grn(adata, matrix), res)
    pd.testing.assert_series_equal(scn.tl.evaluate_grn(adata, frame), res)
    worst = scn.tl.evaluate_grn(adata, pd.DataFrame({"source": ["g1"], "target": ["g0"]}))
    assert worst["auroc"] < 0.5
    only = scn.tl.evaluate_grn(adata, truth, regulators=["g0", "g1"])
    assert only["n_candidates"] == 6 and only["n_true_edges"] == 1
    with pytest.raises(ValueError, match="no edges"):
        scn.tl.evaluate_grn(adata, pd.DataFrame({"source": ["x"], "target": ["y"]}))
    with pytest.raises(ValueError, match="n_vars x n_vars"):
        scn.tl.evaluate_grn(adata, np.zeros((3, 3)))


def test_lambda_path_table_selection_and_record(tmp_path):
    adata = cells()
    table, models = scn.tl.lambda_path(
        adata,
        [10.0, 1.0, 100.0],
        lineage_key="lineage",
        n_iter=20,  # Adam's first steps move every lambda's gates alike: a few more let the lambdas differ
        refit_iter=3,
        hidden=(8,),
        device="cpu",
        progress_bar=False,
        return_models=True,
    )
    grid = table[table["stage"] == "grid"]
    assert list(grid["lam"]) == [1.0, 10.0, 100.0] and len(models) == len(table)
    assert table["lam"].is_monotonic_increasing and set(table["stage"]) <= {"grid", "extended"}
    assert set(table.columns) >= {"train_mse", "val_mse", "feature_sparsity", "weight_sparsity", "n_edges", "gain_kept"}
    assert table["selected"].sum() == 1
    chosen = table.loc[table["selected"]].iloc[0]
    # the rule: the gain of a fit is the share of val(sparsest) - val(best) it recovers; the largest lam keeping half
    best, sparsest = table["val_mse"].min(), table["val_mse"].iloc[-1]
    gain = (sparsest - table["val_mse"]) / (sparsest - best)
    np.testing.assert_allclose(table["gain_kept"], gain)
    ok = (gain >= 0.5) & (table["lam"] >= table.loc[table["val_mse"].idxmin(), "lam"])
    assert chosen["lam"] == table.loc[ok, "lam"].max()
    rec = adata.uns["scnode"]
    assert rec["params"]["lam"] == chosen["lam"] and "largest lam keeping at least 0.5" in rec["params"]["selection"]
    np.testing.assert_allclose(rec["path"]["table"]["val_mse"], table["val_mse"])
    assert rec["path"]["searched"] == [table["lam"].min(), table["lam"].max()]
    adata.write_h5ad(tmp_path / "p.h5ad")
    back = ad.read_h5ad(tmp_path / "p.h5ad")
    np.testing.assert_allclose(back.uns["scnode"]["path"]["table"]["lam"], table["lam"])
    with pytest.raises(ValueError, match="no penalty"):
        scn.tl.lambda_path(adata, [1.0], method="base")
    # the path's fits run as one ensemble: the median of their knockout effects
    each = np.stack([scn.tl.simulate_intervention(adata, m, knockout="g0").layers["delta"] for m in models])
    together = scn.tl.simulate_intervention(adata, models, knockout="g0")
    np.testing.assert_allclose(together.layers["delta"], np.median(each, axis=0), atol=1e-5)
    assert together.uns["intervention"]["n_models"] == len(models)


def test_default_call_returns_its_search_fits():
    adata = cells()
    model, fits = scn.tl.fit_sparse_ode(adata, lineage_key="lineage", return_model=True, return_models=True, **FAST)
    table = adata.uns["scnode"]["path"]["table"]
    assert len(fits) == len(table["lam"]) > 2 and all(isinstance(m, scn.SparseODE) for m in fits)
    np.testing.assert_allclose([m.config.lam for m in fits], np.sort(table["lam"]))
    chosen = [m for m in fits if m is model]  # the selected, refitted fit is the one returned
    assert len(chosen) == 1 and model.config.lam == adata.uns["scnode"]["params"]["lam"]
    ko = scn.tl.simulate_intervention(adata, fits, knockout="g0")
    assert ko.uns["intervention"]["n_models"] == len(fits)
    copy, fixed = scn.tl.fit_sparse_ode(adata, lineage_key="lineage", copy=True, return_models=True, **FIT)
    assert isinstance(copy, ad.AnnData) and len(fixed) == 1 and fixed[0].config.lam == FIT["lam"]


def test_lambda_path_with_validation_donor():
    adata, other = cells(), cells(seed=3)
    table = scn.tl.lambda_path(
        adata,
        [1.0, 10.0],
        validation=other,
        lineage_key="lineage",
        n_iter=4,
        hidden=(8,),
        device="cpu",
        progress_bar=False,
        copy=True,
    )
    out, table = table
    assert "scnode" in out.uns and "scnode" not in adata.uns
    assert table["val_mse"].notna().all()


def test_model_remembers_preprocessing_through_save_load(fitted, tmp_path):
    adata, model = fitted
    model.save(tmp_path / "m")
    back = scn.SparseODE.load(tmp_path / "m")
    assert back.preprocessing == model.preprocessing and back.preprocessing["trim_start"] == 2
    pd.testing.assert_frame_equal(scn.tl.score(adata, back), scn.tl.score(adata, model))


def test_outputs_of_every_tool_write_to_h5ad(fitted, tmp_path):
    adata, model = fitted
    for k, out in enumerate(
        [scn.tl.predict(adata, model, extrapolate=0.2), scn.tl.simulate_intervention(adata, model, knockout="g0")]
    ):
        out.write_h5ad(tmp_path / f"o{k}.h5ad")
        back = ad.read_h5ad(tmp_path / f"o{k}.h5ad")
        np.testing.assert_allclose(back.X, out.X)
    scn.tl.edge_list(adata), scn.tl.evaluate_grn(adata, pd.DataFrame({"source": ["g0"], "target": ["g1"]}))
    adata.write_h5ad(tmp_path / "a.h5ad")  # the tools that only read leave it writable
    assert "scnode" in ad.read_h5ad(tmp_path / "a.h5ad").uns


def test_windowed_score_starts_each_window_from_the_data():
    adata = cells(n_genes=2)
    _, model = one_way_model(adata)
    ts = scn.pp.prepare_trajectories(adata, lineage_key="lineage")
    table = scn.tl.score(adata, model, window=3)
    t, v = ts.times[0], ts.values[0]
    errs = []
    for s in range(len(t) - 2):
        p = model.predict(t[s : s + 3], v[s])
        errs.append((p[1:] - v[s + 1 : s + 3]) ** 2)
    assert table.loc["L0", "mse"] == pytest.approx(np.mean(errs), rel=1e-5)
    assert table.loc["L0", "mse"] < scn.tl.score(adata, model).loc["L0", "mse"]  # short horizons drift less
    with pytest.raises(ValueError, match="window must be at least 2"):
        scn.tl.score(adata, model, window=1)


def test_a_windowed_fit_records_its_windowed_training_mse():
    adata, validation = cells(), cells(seed=3)
    windows = {"lineage_key": "lineage", "fit_kwargs": {"batch_time": 4, "batch_size": 8}, **FAST}
    model = scn.tl.fit_sparse_ode(adata, return_model=True, **windows)
    windowed = scn.tl.score(adata, model, window=4)["mse"].iloc[:-1]
    metrics = adata.uns["scnode"]["metrics"]
    assert metrics["train_mse_per_lineage"]["L0"] == pytest.approx(windowed["L0"], rel=1e-6)
    assert metrics["train_mse"] == pytest.approx(windowed.mean(), rel=1e-6)
    assert metrics["train_mse"] < scn.tl.score(adata, model)["mse"].iloc[:-1].mean()  # not from x0
    table, models = scn.tl.lambda_path(
        adata.copy(), [0.01, 0.1], method="pathreg", validation=validation, return_models=True, **windows
    )
    for row, fitted in zip(table.itertuples(), models, strict=True):
        assert row.train_mse == pytest.approx(scn.tl.score(adata, fitted, window=4)["mse"].iloc[:-1].mean(), rel=1e-6)
        assert row.val_mse == pytest.approx(scn.tl.score(validation, fitted, window=4)["mse"].iloc[:-1].mean())


def _hand_model(var_names, first, second, order=1):
    """A base model with the given first- and output-layer weights (no biases)."""
    model = scn.SparseODE(len(var_names), method="base", order=order, hidden=(2,), device="cpu", var_names=var_names)
    with torch.no_grad():
        for layer, weight in zip(model.system.field.layers, (first, second), strict=True):
            layer.weight.copy_(torch.tensor(weight))
            layer.bias.zero_()
    return model


def _dense(m):
    return m.toarray() if hasattr(m, "toarray") else np.asarray(m)


def test_consensus_network_averages_normalised_graphs_in_varp_orientation(tmp_path):
    adata = cells(n_genes=3)
    one_way = _hand_model(["g0", "g1"], [[1.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [2.0, 0.0]])  # g0 -> g1
    # genes in the other order: g0 -> g1 (through unit 0) and g1 -> g0 (unit 1, weaker)
    both = _hand_model(["g1", "g0"], [[0.0, 1.0], [1.0, 0.0]], [[3.0, 0.0], [0.0, 0.5]])
    a, b = np.abs(one_way.adjacency()), np.abs(both.adjacency())  # outputs x inputs, own gene order
    assert a[1, 0] > 0 and np.count_nonzero(a) == 1 and b[0, 1] > b[1, 0] > 0
    before = adata.copy()
    out = scn.tl.consensus_network(adata, [one_way, both], copy=True)
    assert "scnode_consensus" not in adata.varp and adata.uns.keys() == before.uns.keys()
    mean = np.asarray(_dense(out.varp["scnode_consensus"]))
    freq = np.asarray(_dense(out.varp["scnode_consensus_frequency"]))
    assert mean[0, 1] == pytest.approx(1.0)  # rows regulators: g0 -> g1, the largest edge of both fits
    assert mean[1, 0] == pytest.approx(0.5 * b[1, 0] / b[0, 1])  # g1 -> g0 only in the second fit
    assert freq[0, 1] == 1 and freq[1, 0] == 0.5
    assert not mean[2].any() and not mean[:, 2].any() and not freq[2].any()  # g2 was not fitted
    rec = out.uns["scnode_consensus"]
    assert rec["n_models"] == 2 and list(rec["genes"]) == ["g0", "g1"] and list(rec["methods"]) == ["base", "base"]
    edges = scn.tl.edge_list(out, key="scnode_consensus")
    assert list(zip(edges.source, edges.target, strict=True)) == [("g0", "g1"), ("g1", "g0")]
    truth = pd.DataFrame({"source": ["g0"], "target": ["g1"]})
    assert scn.tl.evaluate_grn(out, truth, key="scnode_consensus")["n_candidates"] == 2  # the fitted genes only
    out.write_h5ad(tmp_path / "c.h5ad")
    back = ad.read_h5ad(tmp_path / "c.h5ad")
    np.testing.assert_allclose(_dense(back.varp["scnode_consensus"]), mean)
    assert back.uns["scnode_consensus"]["n_models"] == 2


def test_consensus_of_fits_matches_their_varp_and_keeps_velocities():
    adata = cells()
    table, models = scn.tl.sweep(adata, seeds=[0, 1], lineage_key="lineage", return_models=True, **FAST)
    single = adata.copy()
    scn.tl.fit_sparse_ode(single, lineage_key="lineage", random_state=1, **FAST)
    scn.tl.consensus_network(single, models[1:], key_added="one")
    fit_graph = np.abs(_dense(single.varp["scnode"]))
    np.testing.assert_allclose(_dense(single.varp["one"]), fit_graph / fit_graph.max(), rtol=1e-6)
    assert list(single.uns["one"]["seeds"]) == [1] and list(table["seed"]) == [0, 1]
    second = _hand_model(["g0", "g1"], np.ones((2, 4)).tolist(), [[1.0, 0.0], [0.0, 2.0]], order=2)
    two = cells(n_genes=2)
    scn.tl.consensus_network(two, (m for m in [second, second]))  # any iterable
    assert {"scnode_consensus_velocity", "scnode_consensus_velocity_frequency"} <= set(two.varp)
    full = np.abs(second.adjacency())
    np.testing.assert_allclose(_dense(two.varp["scnode_consensus_velocity"]), full[:, 2:].T / full.max(), rtol=1e-6)


@pytest.mark.parametrize(
    ("models", "error", "match"),
    [
        (lambda m: [], ValueError, "non-empty list"),
        (lambda m: m, ValueError, "non-empty list"),
        (lambda m: [m, "model"], TypeError, r"models\[1\] is a str"),
        (lambda m: [m, _hand_model(["g0", "g2"], np.eye(2).tolist(), np.eye(2).tolist())], ValueError, "other genes"),
        (lambda m: [_hand_model(["g0", "zz"], np.eye(2).tolist(), np.eye(2).tolist())], KeyError, r"\['zz'\]"),
    ],
    ids=["empty", "not-a-list", "not-a-model", "other-genes", "unknown-gene"],
)
def test_consensus_network_errors_leave_adata_untouched(models, error, match):
    adata = cells(n_genes=3)
    model = _hand_model(["g0", "g1"], np.eye(2).tolist(), np.eye(2).tolist())
    with pytest.raises(error, match=match):
        scn.tl.consensus_network(adata, models(model))
    assert not adata.varp and not adata.uns


@pytest.mark.filterwarnings("ignore:Variable names are not unique")  # anndata's own
def test_consensus_network_needs_unique_var_names():
    adata = cells(n_genes=3)
    adata.var_names = ["g0", "g0", "g2"]
    model = _hand_model(["g0", "g2"], np.eye(2).tolist(), np.eye(2).tolist())
    with pytest.raises(ValueError, match=r"not unique \(\['g0'\] repeat\)"):
        scn.tl.consensus_network(adata, [model])
    assert not adata.varp and not adata.uns


def test_mean_of_scaled_sums_a_stream_of_matrices_as_the_stacked_mean():
    from scnode.tl._utils import mean_of_scaled

    rng = np.random.default_rng(0)
    graphs = [rng.normal(size=(6, 7)).astype(np.float32) for _ in range(4)] + [np.zeros((6, 7), np.float32)]
    kept = [g.copy() for g in graphs]
    stacked = np.mean([g / np.abs(g).max() if np.abs(g).max() > 0 else g for g in graphs], axis=0)
    streamed = mean_of_scaled(g for g in graphs)  # a generator: one matrix at a time
    assert streamed.dtype == np.float32
    np.testing.assert_array_equal(streamed, stacked)
    assert all(np.array_equal(g, k) for g, k in zip(graphs, kept, strict=True))  # inputs left as they were
    zero_first = mean_of_scaled([np.zeros((2, 2)), np.eye(2) * 4])
    np.testing.assert_array_equal(zero_first, np.eye(2) / 2)
    with pytest.raises(ValueError, match="at least one matrix"):
        mean_of_scaled([])
