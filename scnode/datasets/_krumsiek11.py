from __future__ import annotations

import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc


def krumsiek11_network() -> pd.DataFrame:
    """Read the true couplings of scanpy's ``krumsiek11`` model file.

    Returns
    -------
    Signed coupling weights, rows = regulators, columns = targets (the orientation of
    ``adata.varp``), zero where there is no edge. Self-couplings are on the diagonal.
    """
    path = Path(sc.__file__).parent / "sim_models" / "krumsiek11.txt"
    genes, edges, in_couplings = [], [], False
    for line in path.read_text().splitlines():
        if line.startswith("# coupling list"):
            in_couplings = True
            continue
        if not line.strip() or line.startswith("#"):
            continue
        if in_couplings:
            target, source, weight = line.split()
            edges.append((source, target, float(weight)))
        else:
            genes.append(line.split("=")[0].strip())
    net = pd.DataFrame(0.0, index=genes, columns=genes)
    for source, target, weight in edges:
        if source not in net.index or target not in net.columns:
            raise ValueError(f"{path}: coupling {target} <- {source} names a gene without a rule.")
        net.loc[source, target] = weight
    return net


def krumsiek11() -> ad.AnnData:
    """Scanpy's simulated myeloid progenitors (Krumsiek et al. 2011) with time, realization and truth.

    The 640 cells are 4 realizations of a 160-step simulation of an 11-gene boolean network.

    Returns
    -------
    AnnData with ``obs['time']`` (simulation step), ``obs['realization']`` (categorical, use it as
    ``lineage_key``), ``obs['cell_type']``, and the true network in ``varp['true_network']`` (signed
    couplings, rows = regulators, columns = targets).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # scanpy's file has repeated observation names
        adata = sc.datasets.krumsiek11()
    time = adata.obs_names.to_numpy(float)
    realization = np.cumsum(time == 0) - 1
    adata.obs_names = [f"r{r}_t{int(t)}" for r, t in zip(realization, time, strict=True)]
    adata.obs["time"] = time
    adata.obs["realization"] = pd.Categorical(realization.astype(str))
    net = krumsiek11_network()
    if list(net.index) != list(adata.var_names):
        net = net.loc[adata.var_names, adata.var_names]
    adata.varp["true_network"] = net.to_numpy()
    return adata
