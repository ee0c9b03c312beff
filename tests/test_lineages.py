import numpy as np
import pandas as pd
import pytest
from helpers import FIT, cells
from scipy import sparse

import scnode as scn


def branching(n_cells: int = 60):
    """Cells of ``helpers.cells`` with a Palantir-style boolean ``obsm["branch_masks"]``: the earliest
    third (the trunk) in both branches, the rest dealt to one of them, and one late cell in none."""
    adata = cells(n_cells=n_cells)
    del adata.obs["lineage"]
    t = adata.obs["dpt_pseudotime"].to_numpy()
    trunk = t < np.quantile(t, 1 / 3)
    late = np.flatnonzero(~trunk)
    ery, mono = trunk.copy(), trunk.copy()
    ery[late[::2]], mono[late[1::2]] = True, True
    mono[late[-1]] = ery[late[-1]] = False
    adata.obsm["branch_masks"] = pd.DataFrame({"ery": ery, "mono": mono}, index=adata.obs_names)
    adata.obsp["connectivities"] = sparse.eye(n_cells, format="csr")  # a pairwise graph, as sc.pp.neighbors writes
    return adata, trunk


def test_split_lineages_gives_shared_cells_one_copy_per_lineage(caplog):
    adata, trunk = branching()
    before = adata.copy()
    with caplog.at_level("INFO", logger="scnode"):
        out = scn.pp.split_lineages(adata, "branch_masks")
    assert "1 of 60 cells belong to no lineage of obsm['branch_masks']" in caplog.text
    masks = adata.obsm["branch_masks"]
    assert out.n_obs == masks.to_numpy().sum() == 2 * trunk.sum() + (~trunk).sum() - 1
    assert list(out.obs["lineage"].cat.categories) == ["ery", "mono"]
    assert out.obs_names.is_unique and out.obs_names[0] == f"{out.obs['cell'].iloc[0]}-ery"
    for name in ("ery", "mono"):  # each lineage holds exactly its masked cells, trunk included, in their order
        own = out[out.obs["lineage"] == name]
        assert list(own.obs["cell"]) == list(adata.obs_names[masks[name].to_numpy()])
        np.testing.assert_array_equal(own.X, adata[masks[name].to_numpy()].X)
        np.testing.assert_array_equal(own.obs["dpt_pseudotime"], adata.obs["dpt_pseudotime"][masks[name].to_numpy()])
    shared = out.obs["cell"].value_counts()
    assert set(shared[shared == 2].index) == set(adata.obs_names[trunk])
    assert not out.obsp and "connectivities" in adata.obsp  # the graph does not extend to copies
    assert adata.obs.equals(before.obs) and adata.obsm["branch_masks"].equals(before.obsm["branch_masks"])
    with pytest.raises(KeyError, match=r"scn.pp.split_lineages\(adata, 'branch_masks'\) gives each cell one copy"):
        scn.tl.fit_sparse_ode(adata, lineage_key="branch_masks", **FIT)
    fitted = scn.tl.fit_sparse_ode(out, lineage_key="lineage", copy=True, **FIT)
    assert list(fitted.uns["scnode"]["lineages"]) == ["ery", "mono"]
    assert np.isfinite(fitted.layers["scnode_fitted"]).all()


def test_split_lineages_reads_probabilities_with_a_threshold():
    adata = cells(n_cells=4)
    del adata.obs["lineage"]
    probs = np.array([[0.5, 0.5], [0.9, 0.1], [0.2, 0.8], [0.45, 0.55]])
    adata.obsm["lineages_fwd"] = probs  # CellRank's fate probabilities, names in uns
    adata.uns["lineages_fwd_names"] = np.array(["Ery", "Mono"], dtype=object)
    with pytest.raises(ValueError, match=r"values other than 0 and 1 \(probabilities\?\): pass threshold="):
        scn.pp.split_lineages(adata, "lineages_fwd")
    out = scn.pp.split_lineages(adata, "lineages_fwd", threshold=0.5)
    assert list(out.obs_names) == ["c0-Ery", "c1-Ery", "c0-Mono", "c2-Mono", "c3-Mono"]
    with pytest.raises(ValueError, match=r"No cell belongs to any lineage of obsm\['lineages_fwd'\] at threshold=1"):
        scn.pp.split_lineages(adata, "lineages_fwd", threshold=1.0)
    adata.obsm["codes"] = (probs > 0.5).astype(int)  # 0/1 without names
    assert list(scn.pp.split_lineages(adata, "codes").obs["lineage"].cat.categories) == ["0", "1"]


def test_split_lineages_errors_name_the_problem():
    adata, _ = branching(12)
    with pytest.raises(KeyError, match=r"adata.obsm has no key 'masks'; available: \['branch_masks'\]"):
        scn.pp.split_lineages(adata, "masks")
    adata.obs["lineage"] = "x"
    with pytest.raises(ValueError, match=r"adata.obs already has a column 'lineage'; pass another key_added="):
        scn.pp.split_lineages(adata, "branch_masks")
    assert len(scn.pp.split_lineages(adata, "branch_masks", key_added="branch").obs["branch"].cat.categories) == 2
    adata.obsm["bad"] = np.full((12, 2), np.nan)
    with pytest.raises(ValueError, match=r"obsm\['bad'\] has NaN or infinite values"):
        scn.pp.split_lineages(adata, "bad", threshold=0.5)
    adata.obsm["probs"] = np.full((12, 2), 0.5)
    with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\], got 0"):
        scn.pp.split_lineages(adata, "probs", threshold=0)
    adata.uns["probs_names"] = ["one"]
    with pytest.raises(ValueError, match=r"obsm\['probs'\] must be cells x lineages with one name per lineage"):
        scn.pp.split_lineages(adata, "probs", threshold=0.5)
