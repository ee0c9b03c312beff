from __future__ import annotations

import tempfile
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


def krumsiek11(*, seed: int | None = None) -> ad.AnnData:
    """Scanpy's simulated myeloid progenitors (Krumsiek et al. 2011) with time, realization and truth.

    Without ``seed``: scanpy's shipped data, 640 cells from 4 realizations of a 160-step simulation of
    an 11-gene boolean network. With ``seed``: a new simulation of the same model with
    :func:`scanpy.tl.sim` (its default parameters; a few seconds; files go to a temporary directory).

    Parameters
    ----------
    seed
        Seed of a new simulation; ``None`` loads the shipped one.

    Returns
    -------
    AnnData with ``obs['time']`` (simulation step), ``obs['realization']`` (categorical, use it as
    ``lineage_key``), ``obs['cell_type']`` (shipped data only), and the true network in
    ``varp['true_network']`` (signed couplings, rows = regulators, columns = targets).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # scanpy's tables have repeated observation names
        if seed is None:
            adata = sc.datasets.krumsiek11()
        else:
            with tempfile.TemporaryDirectory() as tmp:
                adata = sc.tl.sim("krumsiek11", seed=int(seed), writedir=tmp)
    adata.X = np.asarray(adata.X, dtype=np.float32)
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
