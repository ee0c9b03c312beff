"""scn.tl.geodesic_pseudotime: order along the manifold, connected pieces, roots and errors."""

import numpy as np
import pytest
from anndata import AnnData
from scipy.stats import spearmanr

import scnode as scn
from scnode.tl._pseudotime import knn_graph


def _horseshoe(n: int = 300, seed: int = 0) -> tuple[AnnData, np.ndarray]:
    """Cells along a curve that bends back toward its start (arc length 0..1), in a random order."""
    rng = np.random.default_rng(seed)
    s = rng.permutation(np.linspace(0.0, 1.0, n))
    angle = 1.7 * np.pi * s
    x = np.c_[np.cos(angle), np.sin(angle)] + rng.normal(0.0, 0.005, (n, 2))
    return AnnData(x.astype(np.float32)), s


def test_orders_cells_along_a_curve_that_returns_toward_its_start():
    adata, s = _horseshoe()
    root = int(np.argmin(s))
    scn.tl.geodesic_pseudotime(adata, root, use_rep="X")
    t = adata.obs["geodesic_pseudotime"].to_numpy()
    assert t[root] == 0.0 and t.max() == pytest.approx(1.0)
    assert spearmanr(t, s)[0] > 0.99
    # straight-line distance from the root puts the curve's end among its early cells
    straight = np.linalg.norm(adata.X - adata.X[root], axis=1)
    assert spearmanr(straight, s)[0] < 0.9


def test_pieces_far_apart_are_joined_and_come_later():
    rng = np.random.default_rng(1)
    near = rng.normal(0.0, 0.1, (40, 3))
    far = rng.normal(0.0, 0.1, (40, 3)) + 10.0
    adata = AnnData(np.r_[near, far].astype(np.float32))
    adata.uns["iroot"] = 0
    scn.tl.geodesic_pseudotime(adata, use_rep="X", n_neighbors=3)
    t = adata.obs["geodesic_pseudotime"].to_numpy()
    assert np.isfinite(t).all()
    assert t[:40].max() < t[40:].min()
    graph = knn_graph(np.r_[near, far], 3)
    assert (graph != graph.T).nnz == 0


def test_root_by_name_copy_and_representation():
    adata, s = _horseshoe(100)
    adata.obs_names = [f"c{i}" for i in range(adata.n_obs)]
    adata.obsm["X_pca"] = np.asarray(adata.X)[:, ::-1].copy()  # the default representation when present
    root = f"c{int(np.argmin(s))}"
    out = scn.tl.geodesic_pseudotime(adata, root, key_added="t", copy=True)
    assert "t" not in adata.obs and "t" in out.obs
    assert out.obs.loc[root, "t"] == 0.0
    assert spearmanr(out.obs["t"], s)[0] > 0.99


def test_groups_are_ordered_apart_each_from_its_earliest_cell():
    a, s_a = _horseshoe(120, seed=3)
    b, s_b = _horseshoe(80, seed=4)
    x = np.r_[np.asarray(a.X), np.asarray(b.X)[:, ::-1] + 0.05]  # two branches that overlap in space
    adata = AnnData(x.astype(np.float32))
    adata.obs["branch"] = ["a"] * 120 + ["b"] * 80
    adata.obs.loc[adata.obs_names[-3:], "branch"] = np.nan  # cells of no branch
    adata.obs["rough"] = np.r_[s_a, s_b] + np.random.default_rng(5).normal(0.0, 0.02, 200)  # e.g. DPT
    scn.tl.geodesic_pseudotime(adata, groupby="branch", root_key="rough", use_rep="X")
    t = adata.obs["geodesic_pseudotime"].to_numpy()
    assert np.isnan(t[-3:]).all() and np.isfinite(t[:-3]).all()
    for cells, s in ((slice(0, 120), s_a), (slice(120, 197), s_b[:-3])):
        assert t[cells].min() == 0.0 and t[cells].max() == pytest.approx(1.0)
        assert spearmanr(t[cells], s)[0] > 0.99
    # each group alone, from the same root: the same times
    alone = adata[:120].copy()
    scn.tl.geodesic_pseudotime(alone, int(np.argmin(alone.obs["rough"])), use_rep="X", key_added="alone")
    np.testing.assert_array_equal(alone.obs["alone"].to_numpy(), t[:120])
    # one root for all cells by root_key, without groups
    whole = scn.tl.geodesic_pseudotime(adata, root_key="rough", use_rep="X", copy=True)
    root = int(np.argmin(adata.obs["rough"]))
    np.testing.assert_array_equal(
        whole.obs["geodesic_pseudotime"],
        scn.tl.geodesic_pseudotime(adata, root, use_rep="X", copy=True).obs["geodesic_pseudotime"],
    )


def test_group_and_root_errors_leave_adata_untouched():
    adata, _ = _horseshoe(20)
    adata.obs["branch"] = "a"
    adata.obs["rough"] = np.nan
    with pytest.raises(ValueError, match="root_key"):
        scn.tl.geodesic_pseudotime(adata, groupby="branch", use_rep="X")
    with pytest.raises(ValueError, match="not both"):
        scn.tl.geodesic_pseudotime(adata, 0, root_key="rough", use_rep="X")
    with pytest.raises(KeyError, match="groupby='lineage'"):
        scn.tl.geodesic_pseudotime(adata, groupby="lineage", root_key="rough", use_rep="X")
    with pytest.raises(KeyError, match="root_key='dpt'"):
        scn.tl.geodesic_pseudotime(adata, root_key="dpt", use_rep="X")
    with pytest.raises(ValueError, match="must be numeric"):
        scn.tl.geodesic_pseudotime(adata, root_key="branch", use_rep="X")
    with pytest.raises(ValueError, match="no finite value in group 'a'"):
        scn.tl.geodesic_pseudotime(adata, groupby="branch", root_key="rough", use_rep="X")
    assert list(adata.obs.columns) == ["branch", "rough"]


def test_errors_name_the_problem():
    adata, _ = _horseshoe(20)
    with pytest.raises(ValueError, match="iroot"):
        scn.tl.geodesic_pseudotime(adata)
    with pytest.raises(KeyError, match="obsm"):
        scn.tl.geodesic_pseudotime(adata, 0, use_rep="X_umap")
    with pytest.raises(KeyError, match="obs_names"):
        scn.tl.geodesic_pseudotime(adata, "nope")
    with pytest.raises(ValueError, match="index of a cell"):
        scn.tl.geodesic_pseudotime(adata, 20)
    with pytest.raises(ValueError, match="n_neighbors"):
        scn.tl.geodesic_pseudotime(adata, 0, n_neighbors=0)
    wide = AnnData(np.random.default_rng(0).normal(size=(20, 60)).astype(np.float32))
    with pytest.raises(ValueError, match=r"sc\.pp\.pca"):
        scn.tl.geodesic_pseudotime(wide, 0)
    scn.tl.geodesic_pseudotime(wide, 0, use_rep="X")  # asked for: used
    assert wide.obs["geodesic_pseudotime"].max() == pytest.approx(1.0)
    assert list(adata.obs.columns) == []


def test_joins_are_the_shortest_gaps_whether_listed_or_searched(monkeypatch):
    rng = np.random.default_rng(2)
    x = np.r_[
        rng.normal(0.0, 0.1, (4, 2)),
        rng.normal(0.0, 0.1, (4, 2)) + np.array([5.0, 0.0]),
        rng.normal(0.0, 0.1, (4, 2)) + np.array([15.0, 0.0]),
    ]
    listed = knn_graph(x, 3)  # every gap among the 30 listed neighbours
    monkeypatch.setattr("scnode.tl._pseudotime.JOIN_NEIGHBORS", 3)  # none listed: searched exhaustively
    searched = knn_graph(x, 3)
    assert (listed != searched).nnz == 0
    between = listed[:4][:, 4:8].toarray()
    exact = np.linalg.norm(x[:4, None] - x[None, 4:8], axis=2)
    assert (between > 0).sum() == 1 and between.max() == pytest.approx(exact.min())
    assert listed[:4][:, 8:].nnz == 0  # the far piece joins the middle one, not the first
