import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch
from helpers import FIT, cells

import scnode as scn
from scnode.tl._results import regulator_spread, write_results
from scnode.tl._utils import prepare_like


def rare_and_common(n_cells: int = 200) -> ad.AnnData:
    """g0 detected in one cell (a rare regulator), g2 rising with time (a common one), g1 a target."""
    t = np.linspace(0, 1, n_cells)
    g0 = np.zeros(n_cells)
    g0[n_cells // 2] = 1.0
    x = np.stack([g0, np.sin(3 * t), t], 1).astype(np.float32)
    obs = pd.DataFrame({"dpt_pseudotime": t}, index=[f"c{i}" for i in range(n_cells)])
    return ad.AnnData(x, obs=obs, var=pd.DataFrame(index=["g0", "g1", "g2"]))


def test_effects_rank_a_rare_regulator_with_a_large_weight_below_a_common_one():
    adata = rare_and_common()
    ts = scn.pp.prepare_trajectories(adata, n_bins=20)  # the rare cell averaged into its state
    model = scn.SparseODE(3, method="base", hidden=(2,), device="cpu", var_names=ts.genes)
    with torch.no_grad():  # d g1/dt = elu(3 g0 + g2): a weight of 3 on the rare gene, 1 on the common one
        model.system.field.layers[0].weight.copy_(torch.tensor([[3.0, 0.0, 1.0], [0.0, 0.0, 0.0]]))
        model.system.field.layers[0].bias.zero_()
        model.system.field.layers[1].weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]]))
        model.system.field.layers[1].bias.zero_()
    spread = regulator_spread(ts)
    assert spread[0] < 0.05 < 0.25 < spread[2]  # the rare gene barely varies over the states
    weights, effects = adata.copy(), adata.copy()
    write_results(weights, model, ts, "scnode", {"method": "base"})
    write_results(effects, model, ts, "scnode", {"method": "base"}, edge_score="effects")
    w, e = weights.varp["scnode"], effects.varp["scnode"]  # regulators x targets
    assert w[0, 1] == pytest.approx(3 * w[2, 1]) and w[0, 1] > w[2, 1]  # weights: the rare gene first
    assert e[2, 1] > e[0, 1]  # effects: the gene that varies first
    np.testing.assert_allclose(e, w * spread[:, None], rtol=1e-6)
    assert ((e != 0) == (w != 0)).all() and effects.uns["scnode"]["metrics"] == weights.uns["scnode"]["metrics"]
    assert list(scn.tl.edge_list(effects, top_k=1)["source"]) == ["g2"]


def test_fit_sparse_ode_scores_edges_and_the_path_by_effects_on_request():
    adata = cells(n_cells=60)
    kw = {"lineage_key": "lineage", "copy": True, "random_state": 1, **FIT}
    weights, model = scn.tl.fit_sparse_ode(adata, return_model=True, **kw)
    effects = scn.tl.fit_sparse_ode(adata, edge_score="effects", **kw)
    spread = regulator_spread(prepare_like(adata, model, {}))  # the fit's own states
    np.testing.assert_allclose(effects.varp["scnode"], weights.varp["scnode"] * spread[:, None], rtol=1e-5)
    assert effects.uns["scnode"]["params"]["edge_score"] == "effects"
    assert weights.uns["scnode"]["params"]["edge_score"] == "weights"
    fast = {k: v for k, v in FIT.items() if k != "lam"}
    with pytest.warns(UserWarning, match="largest of the searched range"):
        scn.tl.lambda_path(adata, [0.001, 0.01], lineage_key="lineage", edge_score="effects", max_extend=0, **fast)
    assert adata.uns["scnode"]["params"]["edge_score"] == "effects" and "scnode_path" in adata.varp
    with pytest.raises(ValueError, match=r"edge_score must be one of \('weights', 'effects'\), got 'effect'"):
        scn.tl.fit_sparse_ode(adata, lineage_key="lineage", edge_score="effect", **FIT)
    with pytest.raises(ValueError, match="edge_score='effects' scales by the genes' spread over first-order states"):
        scn.tl.fit_sparse_ode(adata, lineage_key="lineage", order=2, edge_score="effects", **FIT)
