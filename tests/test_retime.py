"""Re-timing cells by the fitted field (``fit_sparse_ode(refine_time=n)``)."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from helpers import FIT, cells
from scipy import sparse
from scipy.integrate import solve_ivp
from scipy.stats import spearmanr

import scnode as scn


def cascade(n_cells: int = 300, seed: int = 0) -> ad.AnnData:
    """a -> b -> c (a decays, b rises and falls, c accumulates); ``pt`` swaps two stretches of the clock ``t``."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, 6, n_cells))
    x = solve_ivp(lambda _, y: [-y[0], 2 * y[0] - y[1], y[1] - 0.5 * y[2]], (0, 6), [1, 0, 0], t_eval=t, rtol=1e-8).y.T
    pt = t.copy()
    early, late = (t > 1.2) & (t < 2.4), (t > 3.6) & (t < 4.8)
    pt[early] += 2.4
    pt[late] -= 2.4
    obs = pd.DataFrame({"pt": pt, "t": t}, index=[f"c{i}" for i in range(n_cells)])
    x = x + rng.normal(0, 0.02, x.shape)
    return ad.AnnData(x.astype(np.float32), obs=obs, var=pd.DataFrame(index=["a", "b", "c"]))


def test_refine_time_reorders_misordered_cells():
    adata = cascade()
    given = spearmanr(adata.obs["pt"], adata.obs["t"])[0]
    out = scn.tl.fit_sparse_ode(
        adata, time_key="pt", lam=0.01, n_iter=100, refine_time=1, copy=True, progress_bar=False
    )
    refined = spearmanr(out.obs["scnode_time"], out.obs["t"])[0]
    assert given < 0.75 and refined > 0.95
    record = out.uns["scnode"]["refine_time"]
    assert len(record["spearman"]) == 1 and record["spearman"][0] == pytest.approx(
        spearmanr(out.obs["scnode_time"], adata.obs["pt"])[0], abs=0.05
    )
    assert out.uns["scnode"]["params"]["time_key"] == "scnode_time"
    assert out.uns["scnode"]["params"]["refined_time_key"] == "pt"
    # the new times lie in the given range; the user's AnnData is untouched
    assert (
        adata.obs["pt"].min() <= out.obs["scnode_time"].min() and out.obs["scnode_time"].max() <= adata.obs["pt"].max()
    )
    assert "scnode_time" not in adata.obs and "scnode" not in adata.uns


def test_refine_time_with_a_layer_sparse_cells_and_lineages():
    adata = cells(n_genes=3, n_cells=60)
    adata.layers["counts"] = sparse.csr_matrix(np.asarray(adata.X))
    adata.X = np.zeros_like(adata.X)
    scn.tl.fit_sparse_ode(adata, layer="counts", lineage_key="lineage", refine_time=1, **FIT)
    new = adata.obs["scnode_time"].to_numpy()
    assert np.isfinite(new).all()
    # each lineage's cells keep that lineage's range; the fitted layer follows the new times
    for _, group in adata.obs.groupby("lineage", observed=True):
        assert (
            group["dpt_pseudotime"].min()
            <= group["scnode_time"].min()
            <= group["scnode_time"].max()
            <= group["dpt_pseudotime"].max()
        )
    assert np.isfinite(adata.layers["scnode_fitted"]).all()


def test_refine_time_auto_retimes_until_the_order_holds():
    adata = cascade()
    kw = {"lam": 0.01, "n_iter": 100, "copy": True, "progress_bar": False}
    out = scn.tl.fit_sparse_ode(adata, time_key="pt", refine_time="auto", **kw)
    params, record = out.uns["scnode"]["params"], out.uns["scnode"]["refine_time"]
    rounds = params["refine_rounds"]
    assert params["refine_time"] == "auto" and 1 <= rounds <= 2
    # every fit's order was checked: it re-timed while the path reordered the cells, and stopped when not
    assert len(record["spearman"]) == rounds + 1
    assert (record["spearman"][:-1] < 0.9).all() and (record["spearman"][-1] >= 0.9 or rounds == 2)
    # it keeps the fit whose path passes closest to the cells: here a re-timed one
    assert params["refine_chosen"] == int(np.argmin(record["distance"])) >= 1
    assert spearmanr(out.obs["scnode_time"], out.obs["t"])[0] > 0.95
    assert params["time_key"] == "scnode_time" and "scnode_time" not in adata.obs


def test_refine_time_auto_keeps_a_good_order_and_its_fit():
    adata = cascade()
    kw = {"time_key": "t", "lam": 0.01, "n_iter": 100, "copy": True, "progress_bar": False}
    auto = scn.tl.fit_sparse_ode(adata, refine_time="auto", **kw)
    plain = scn.tl.fit_sparse_ode(adata, **kw)
    params = auto.uns["scnode"]["params"]
    assert params["refine_rounds"] == params["refine_chosen"] == 0
    assert params["time_key"] == "t" and "scnode_time" not in auto.obs
    assert auto.uns["scnode"]["refine_time"]["spearman"][0] >= 0.9
    np.testing.assert_array_equal(auto.varp["scnode"], plain.varp["scnode"])


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2", "Auto"])
def test_refine_time_must_be_a_count(bad):
    adata = cells()
    with pytest.raises(ValueError, match="refine_time must be an integer >= 0"):
        scn.tl.fit_sparse_ode(adata, refine_time=bad, **FIT)
    assert "scnode" not in adata.uns


def test_refine_time_leaves_a_trajectory_its_path_cannot_order():
    # a knockout of the cascade's head that changes nothing: its cells all sit at the start state, so
    # its fitted path's nearest state is the same for every cell (before: the refit found one time)
    adata = cascade()
    adata.obs["perturbation"] = pd.Categorical([None] * adata.n_obs, categories=["a"])
    dead = adata[:100].copy()
    dead.obs_names = [f"ko{i}" for i in range(dead.n_obs)]
    dead.X = np.zeros_like(dead.X)
    dead.obs["perturbation"] = "a"
    both = ad.concat([adata, dead])
    kw = {"lam": 0.01, "n_iter": 60, "copy": True, "progress_bar": False, "perturbation_key": "perturbation"}
    out = scn.tl.fit_sparse_ode(both, time_key="pt", refine_time=1, **kw)
    assert out.uns["scnode"]["refine_time"]["unordered"].tolist() == [1]
    knocked = out.obs["perturbation"] == "a"
    np.testing.assert_array_equal(out.obs.loc[knocked, "scnode_time"], both.obs.loc[knocked, "pt"])
    assert spearmanr(out.obs.loc[~knocked, "scnode_time"], out.obs.loc[~knocked, "t"])[0] > 0.9
