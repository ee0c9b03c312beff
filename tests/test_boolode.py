"""BEELINE's Boolean models: reading the rules and simulating cells with and without knockouts."""

import os
from pathlib import Path

import numpy as np
import pytest

import scnode as scn
from scnode.datasets._boolode import _parse_rule, _rule_probability

DATA = Path(os.environ.get("SCNODE_DATA_DIR", "/nonexistent"))
needs_models = pytest.mark.skipif(not (DATA / "boolode").is_dir(), reason="SCNODE_DATA_DIR has no boolode/")
"""The tests that read BEELINE's model files (as the other data sets' tests, they skip without them)."""


@needs_models
def test_linear_model_rules_truth_and_strengths():
    model = scn.datasets.boolean_model("linear")
    assert model.genes == [f"g{i}" for i in range(1, 8)]
    assert model.regulators["g1"] == ["g7"] and model.regulators["g7"] == ["g6", "g7"]
    assert model.on == ["g1"] and model.strengths[("g1", "g7")] == 5.0
    net = model.network()
    assert net.loc["g7", "g1"] == -1  # g1 = not g7
    assert net.loc["g1", "g2"] == 1 and net.loc["g6", "g7"] == 1 and net.loc["g7", "g7"] == 1
    assert int((net != 0).to_numpy().sum()) == 8  # seven couplings between genes and g7's self-activation


@needs_models
def test_bifurcating_model_signs_from_the_truth_table():
    net = scn.datasets.boolean_model("bifurcating").network()
    assert net.loc["g6", "g4"] == -1 and net.loc["g3", "g4"] == 1  # g4 = (g3 or g4) and not g6
    assert net.loc["g4", "g8"] == -1 and net.loc["g4", "g1"] == -1 and net.loc["g6", "g1"] == -1


@needs_models
def test_rule_probability_is_the_chance_the_rule_holds():
    model = scn.datasets.boolean_model("linear")
    k = 10.0
    high, low = np.full(7, 40.0), np.zeros(7)
    f_high, f_low = _rule_probability(model, high, k, 10.0), _rule_probability(model, low, k, 10.0)
    assert f_high[1] > 0.99 and f_low[1] < 1e-6  # g2 = g1: on exactly when g1's protein is
    assert f_high[0] < 1e-6 and f_low[0] > 0.99  # g1 = not g7
    half = _rule_probability(model, np.full(7, k), k, 10.0)
    assert half[1] == pytest.approx(0.5)
    # g7 = g6 or g7: g6 on with chance 1/2, g7 (strength 5 on itself) with 5 / 6
    assert half[6] == pytest.approx(1 - 0.5 / 6)


def test_bad_rules_are_named():
    with pytest.raises(ValueError, match="no gene of the model"):
        _parse_rule("g1 and gx", ["g1"], "g2")
    with pytest.raises(ValueError, match="unexpected character"):
        _parse_rule("g1; import os", ["g1"], "g2")


@needs_models
def test_simulation_cascade_knockouts_and_seed():
    adata = scn.datasets.simulate_boolean("linear", n_cells=200, n_simulations=4, knockouts=["g2"], seed=3)
    assert adata.shape == (400, 7)
    assert list(adata.obs["simulation"].cat.categories) == [f"sim{s}" for s in range(4)]
    ko = (adata.obs["perturbation"] == "g2").to_numpy()
    x = np.asarray(adata.X)
    assert ko.sum() == 200 and np.all(x[ko, 1] == 0)
    wt = adata.obs["perturbation"].isna().to_numpy()
    late = adata.obs["time"].to_numpy() > 4
    assert x[wt & late, 2].mean() > 1.5 and x[ko & late, 2].mean() < 0.2  # g3 = g2: on, unless g2 is knocked out
    assert np.array_equal(adata.varp["true_network"], scn.datasets.boolean_model("linear").network().to_numpy())
    again = scn.datasets.simulate_boolean("linear", n_cells=200, n_simulations=4, knockouts=["g2"], seed=3)
    assert np.array_equal(again.X, adata.X)
    with pytest.raises(ValueError, match="Cannot knock out"):
        scn.datasets.simulate_boolean("linear", knockouts=["g9"])
    with pytest.raises(ValueError, match="Unknown model"):
        scn.datasets.boolean_model("star")


def test_krumsiek11_rules_match_scanpys_couplings():
    model = scn.datasets.krumsiek11_boolean()
    net = model.network()
    couplings = scn.datasets.krumsiek11_network()
    assert model.genes == list(couplings.index)
    # every coupling of scanpy's list is an edge of the rules, with its sign
    assert np.array_equal(np.sign(couplings.to_numpy()), net.to_numpy())
    assert model.on == ["Gata2", "Cebpa", "Pu.1"]


def test_random_network_is_sparse_and_seeded():
    model = scn.datasets.random_boolean_model(30, seed=2)
    net = model.network().to_numpy()
    assert model.genes[:3] == model.on == ["g0", "g1", "g2"]
    assert all(1 <= len(model.regulators[g]) <= 3 for g in model.genes[3:])
    assert np.all(np.triu(net, 1)[:, :3] == 0) and np.all(np.tril(net, -1) == 0)  # regulators come earlier
    again = scn.datasets.random_boolean_model(30, seed=2).network().to_numpy()
    assert np.array_equal(net, again) and (net < 0).any() and (net > 0).any()
    with pytest.raises(ValueError, match="n_genes > n_sources"):
        scn.datasets.random_boolean_model(3)


def test_rules_model_builds_from_rules():
    model = scn.datasets.rules_model("toy", {"a": "a", "b.1": "a and not c", "c": "b.1"}, ["a"])
    assert model.regulators["b.1"] == ["a", "c"] and model.network().loc["c", "b.1"] == -1
    with pytest.raises(ValueError, match="start on but have no rule"):
        scn.datasets.rules_model("toy", {"a": "a"}, ["z"])
