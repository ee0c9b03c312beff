from __future__ import annotations

from collections.abc import Sequence

import networkx as nx
import numpy as np
import pandas as pd
from anndata import AnnData

from ._utils import fitted_genes, network


def edge_list(
    adata: AnnData,
    *,
    key: str = "scnode",
    top_k: int | None = None,
    threshold: float = 0.0,
    self_loops: bool = False,
    regulators: Sequence[str] | None = None,
) -> pd.DataFrame:
    """List the learned network's edges, strongest first.

    Parameters
    ----------
    adata
        AnnData with a fitted network in ``varp[key]`` (rows regulators, columns targets).
    key
        Key of the network in ``varp`` (e.g. ``"scnode_velocity"`` for second-order velocity edges).
    top_k
        Keep only the ``top_k`` strongest edges.
    threshold
        Keep edges whose weight exceeds this (default: every nonzero edge).
    self_loops
        Keep edges from a gene to itself.
    regulators
        Keep only edges whose source is one of these genes (e.g. transcription factors).

    Returns
    -------
    DataFrame with columns ``source``, ``target``, ``weight`` and, when the fit recorded signs
    (``varp[key + "_sign"]``), ``sign`` (+1 activation, -1 repression), sorted by decreasing weight.
    """
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}.")
    graph = network(adata, key)
    keep = np.abs(graph.data) > threshold
    if not self_loops:
        keep &= graph.row != graph.col
    if regulators is not None:
        unknown = [g for g in regulators if g not in adata.var_names]
        if unknown:
            raise KeyError(f"Regulator(s) {unknown[:10]} are not in adata.var_names.")
        keep &= np.isin(graph.row, adata.var_names.get_indexer(list(regulators)))
    names = np.asarray(adata.var_names)
    edges = pd.DataFrame(
        {"source": names[graph.row[keep]], "target": names[graph.col[keep]], "weight": graph.data[keep].astype(float)}
    )
    if f"{key}_sign" in adata.varp:
        signs = network(adata, f"{key}_sign").tocsr()
        rows, cols = graph.row[keep], graph.col[keep]
        # no edge left: index nothing (a sparse matrix indexed by empty arrays returns a sparse matrix)
        picked = signs[rows, cols] if len(rows) else np.empty(0)
        edges["sign"] = np.asarray(picked).ravel().astype(int)
    edges = edges.sort_values(["weight", "source", "target"], ascending=[False, True, True], kind="stable")
    if top_k is not None:
        edges = edges.head(top_k)
    return edges.reset_index(drop=True)


def to_networkx(adata_or_edges: AnnData | pd.DataFrame, **edge_list_kwargs) -> nx.DiGraph:
    """Turn the learned network into a :class:`networkx.DiGraph` (edge attribute ``weight``).

    Parameters
    ----------
    adata_or_edges
        AnnData with a fitted network, or an edge table from :func:`edge_list`.
    **edge_list_kwargs
        Arguments of :func:`edge_list` (``key``, ``top_k``, ``threshold``, ...) when given an AnnData.

    Returns
    -------
    A directed graph regulator -> target (edge attributes ``weight`` and, where known, ``sign``); with
    an AnnData, every fitted gene is a node.
    """
    if isinstance(adata_or_edges, AnnData):
        edges = edge_list(adata_or_edges, **edge_list_kwargs)
        genes = fitted_genes(adata_or_edges, edge_list_kwargs.get("key", "scnode"))
    else:
        if edge_list_kwargs:
            raise TypeError("Edge-list arguments only apply to an AnnData.")
        edges = adata_or_edges
        missing = {"source", "target", "weight"} - set(edges.columns)
        if missing:
            raise KeyError(f"The edge table lacks column(s) {sorted(missing)}.")
        genes = []
    graph = nx.DiGraph()
    graph.add_nodes_from(genes)
    graph.add_weighted_edges_from(edges[["source", "target", "weight"]].itertuples(index=False, name=None))
    if "sign" in edges:
        nx.set_edge_attributes(
            graph, {(a, b): int(v) for a, b, v in edges[["source", "target", "sign"]].values}, "sign"
        )
    return graph
