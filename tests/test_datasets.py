import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import scnode as scn

DATA = Path(os.environ.get("SCNODE_DATA_DIR", "/nonexistent"))
needs_data = pytest.mark.skipif(not (DATA / "hematopoiesis").is_dir(), reason="SCNODE_DATA_DIR has no hematopoiesis/")


@needs_data
def test_hematopoiesis_one_donor():
    adata = scn.datasets.hematopoiesis(donor="s1d2")
    assert adata.n_vars == 529
    assert list(adata.obs.columns) == ["dpt_pseudotime", "donor", "lineage"]
    counts = adata.obs.groupby("lineage", observed=True).size().to_dict()
    assert counts == {"erythroid": 310, "monocyte": 854, "B": 198}
    assert (adata.obs["donor"] == "s1d2").all()
    assert np.isfinite(adata.X).all() and (adata.X >= 0).all()
    # rows are in file order, not sorted by pseudotime
    assert not np.all(np.diff(adata.obs["dpt_pseudotime"].to_numpy()) >= 0)


@needs_data
def test_hematopoiesis_missing_trajectory_is_skipped_with_warning():
    with pytest.warns(UserWarning, match="erythroid"):
        adata = scn.datasets.hematopoiesis(donor="s2d4")
    assert set(adata.obs["lineage"]) == {"monocyte", "B"}
    with pytest.raises(ValueError, match="No trajectory available"):
        scn.datasets.hematopoiesis(lineage="erythroid", donor="s2d4")


def test_hematopoiesis_bad_names():
    with pytest.raises(ValueError, match="Unknown donor"):
        scn.datasets.hematopoiesis(donor="s9d9", data_dir="/nonexistent")
    with pytest.raises(ValueError, match="Unknown lineage"):
        scn.datasets.hematopoiesis(lineage="T", data_dir="/nonexistent")


def test_missing_file_in_data_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"B_12_norm\.csv"):
        scn.datasets.hematopoiesis(lineage="B", donor="s1d2", data_dir=tmp_path)


@needs_data
def test_corrupt_file_fails_the_hash_check(tmp_path):
    target = tmp_path / "hematopoiesis" / "trajectories"
    target.mkdir(parents=True)
    src = DATA / "hematopoiesis" / "trajectories" / "B_36_norm.csv"
    shutil.copy(src, target / src.name)
    assert scn.datasets.hematopoiesis(lineage="B", donor="s3d6", data_dir=tmp_path).n_obs == 78
    with open(target / src.name, "a") as f:
        f.write("0\n")
    with pytest.raises(ValueError, match="SHA-256"):
        scn.datasets.hematopoiesis(lineage="B", donor="s3d6", data_dir=tmp_path)


@needs_data
def test_base_grn_prior_on_the_genes():
    adata = scn.datasets.hematopoiesis(lineage="B", donor="s3d6")
    grn = scn.datasets.hematopoiesis_base_grn(adata.var_names)
    assert grn.shape[0] == 113  # the TFs among the 529 genes
    assert set(grn.index) <= set(adata.var_names) and set(grn.columns) <= set(adata.var_names)
    assert set(np.unique(grn.to_numpy())) <= {0, 1}


@needs_data
def test_fit_on_hematopoiesis_smoke():
    adata = scn.datasets.hematopoiesis(donor="s1d2")
    genes = list(adata.var_names[:12])
    scn.tl.fit_sparse_ode(
        adata,
        genes=genes,
        lineage_key="lineage",
        trim_start=10,
        trim_end=20,
        x0_cells=5,
        n_iter=4,
        hidden=(8,),
        progress_bar=False,
        device="cpu",
        fit_kwargs={"refit_iter": 2},
    )
    a = adata.varp["scnode"]
    assert a.shape == (529, 529) and a.nnz <= 12 * 12
    assert list(adata.uns["scnode"]["lineages"]) == ["erythroid", "monocyte", "B"]


def test_krumsiek11_with_time_realization_and_truth():
    adata = scn.datasets.krumsiek11()
    assert adata.shape == (640, 11) and adata.obs_names.is_unique
    assert list(adata.obs["realization"].cat.categories) == ["0", "1", "2", "3"]
    assert (adata.obs.groupby("realization", observed=True)["time"].max() == 159).all()
    net = adata.varp["true_network"]
    names = list(adata.var_names)
    # "Fog1 = Gata1": Gata1 regulates Fog1 (row = regulator, column = target) with coupling 0.1
    assert net[names.index("Gata1"), names.index("Fog1")] == pytest.approx(0.1)
    assert net[names.index("Fog1"), names.index("Gata1")] == 0
    assert net[names.index("Gfi1"), names.index("EgrNab")] == pytest.approx(-1.3)
    assert (net != 0).sum() == 30  # the 30 lines of the model's coupling list


def test_krumsiek11_fits_through_tl():
    adata = scn.datasets.krumsiek11()
    scn.tl.fit_sparse_ode(
        adata, time_key="time", lineage_key="realization", n_iter=3, hidden=(8,), progress_bar=False, device="cpu"
    )
    assert adata.varp["scnode"].shape == (11, 11)


needs_paul15 = pytest.mark.skipif(not (DATA / "paul15").is_dir(), reason="SCNODE_DATA_DIR has no paul15/")


@pytest.fixture(scope="module")
def paul15():
    return scn.datasets.paul15()


@needs_paul15
def test_paul15_counts_clusters_and_root(paul15):
    adata = paul15
    assert adata.shape == (2730, 3451)
    assert adata.X.dtype == np.float32
    assert adata.var_names.is_unique and adata.obs_names.is_unique
    x = adata.X[:100]
    assert (x >= 0).all() and np.array_equal(x, np.round(x))  # raw counts
    clusters = adata.obs["paul15_clusters"]
    assert isinstance(clusters.dtype, pd.CategoricalDtype)
    assert len(clusters.cat.categories) == 19
    assert clusters.cat.categories[0] == "1Ery" and clusters.cat.categories[-1] == "19Lymph"
    assert int(adata.uns["iroot"]) == 840
    assert "dpt_pseudotime" not in adata.obs


@needs_paul15
def test_paul15_has_the_myeloid_regulators(paul15):
    regulators = ["Gata1", "Gata2", "Sfpi1", "Cebpa", "Klf1", "Fli1", "Gfi1", "Irf8"]
    assert set(regulators) <= set(paul15.var_names)
    assert "Spi1" not in paul15.var_names  # PU.1 is stored under its former symbol


@needs_paul15
def test_paul15_corrupt_file_fails_the_hash_check(tmp_path):
    target = tmp_path / "paul15"
    target.mkdir()
    shutil.copyfile(DATA / "paul15" / "paul15.h5ad.gz", target / "paul15.h5ad.gz")  # not the read-only mode
    with open(target / "paul15.h5ad.gz", "r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ValueError, match="SHA-256"):
        scn.datasets.paul15(data_dir=tmp_path)


def test_paul15_missing_file_in_data_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"paul15\.h5ad\.gz"):
        scn.datasets.paul15(data_dir=tmp_path)


def test_failed_download_says_how_to_point_at_local_data(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    def offline(url, path):
        raise urllib.error.URLError("no network")

    monkeypatch.delenv("SCNODE_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(urllib.request, "urlretrieve", offline)
    with pytest.raises(OSError, match="SCNODE_DATA_DIR"):
        scn.datasets.hematopoiesis(lineage="B", donor="s1d1")
    assert not list(tmp_path.rglob("*.part"))


def test_krumsiek11_new_simulation_has_the_same_layout():
    adata = scn.datasets.krumsiek11(seed=3)
    shipped = scn.datasets.krumsiek11()
    assert adata.shape == shipped.shape and list(adata.var_names) == list(shipped.var_names)
    assert list(adata.obs["realization"].cat.categories) == ["0", "1", "2", "3"]
    np.testing.assert_array_equal(adata.varp["true_network"], shipped.varp["true_network"])
    assert not np.allclose(np.asarray(adata.X), np.asarray(shipped.X))
