from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from pathlib import Path

import anndata as ad
import numpy as np

from ._files import fetch, github_raw

REPO, COMMIT, PATH = "vjcitn/Simba4Bioc", "85ccd7bfa642c6d91a1ba4d5fdcad6b9c995d274", "inst/extdata/paul15.h5ad.gz"
SHA256 = "b7b22bb3e47f88a53b4c99bd96bb13436b00d27fabcd898769dc008a0e6d8fe9"
REGULATORS = ("Gata1", "Gata2", "Sfpi1", "Cebpa", "Klf1", "Fli1", "Gfi1", "Irf8")
"""Known myeloid regulators among the genes (Spi1 / PU.1 under its former symbol ``Sfpi1``)."""


def paul15(*, data_dir: str | os.PathLike | None = None) -> ad.AnnData:
    """Mouse myeloid progenitors of Paul et al. (Cell 2015): raw MARS-seq counts, as ``scanpy.datasets.paul15``.

    2730 cells x 3451 genes from GEO GSE72857, copied from the public repository vjcitn/Simba4Bioc
    (``inst/extdata/paul15.h5ad.gz``); cells are named ``"0"`` to ``"2729"``. The cells run from
    myeloid progenitors (MEP, GMP) towards erythrocytes, megakaryocytes, basophils, monocytes,
    neutrophils, eosinophils and dendritic cells. Known myeloid regulators among the genes: Gata1,
    Gata2, Spi1 (PU.1; stored under its former symbol ``"Sfpi1"``), Cebpa, Klf1, Fli1, Gfi1 and Irf8.

    No pseudotime is stored. Compute diffusion pseudotime from the root cell ``uns["iroot"]``, e.g.::

        import scanpy as sc
        import scnode

        adata = scnode.datasets.paul15()
        sc.pp.normalize_total(adata)
        sc.pp.log1p(adata)
        sc.pp.pca(adata)
        sc.pp.neighbors(adata)
        sc.tl.diffmap(adata)
        sc.tl.dpt(adata)  # uses adata.uns["iroot"]; writes obs["dpt_pseudotime"]

    Parameters
    ----------
    data_dir
        Folder holding ``paul15/paul15.h5ad.gz``; default ``SCNODE_DATA_DIR``, else the file is
        downloaded from GitHub (and its SHA-256 checked).

    Returns
    -------
    AnnData with float32 raw counts in ``X``, ``obs["paul15_clusters"]`` (categorical, 19 clusters from
    ``"1Ery"`` to ``"19Lymph"``) and ``uns["iroot"]`` (index of the root cell for DPT).
    """
    path = fetch("paul15", "paul15.h5ad.gz", SHA256, github_raw(REPO, COMMIT, PATH), data_dir)
    with tempfile.TemporaryDirectory(prefix="scnode_paul15_") as tmp:
        h5ad = Path(tmp) / "paul15.h5ad"
        try:
            with gzip.open(path, "rb") as src, open(h5ad, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except (OSError, EOFError) as err:
            raise ValueError(f"{path} is not a readable gzip file: {err}") from err
        adata = ad.read_h5ad(h5ad)
    if adata.X is None:
        raise ValueError(f"{path} holds an AnnData without X.")
    if adata.X.dtype != np.float32:
        adata.X = adata.X.astype(np.float32)
    if not adata.var_names.is_unique:
        adata.var_names_make_unique()
    return adata
