"""Geodesic pseudotime: each cell's shortest-path distance from a root cell along a k-nearest-neighbour graph.

Diffusion pseudotime (``sc.tl.dpt``) orders cells by their distance from the root in a diffusion
map. Where genes switch on and later off, where a trajectory curves back toward its start, or
where branches share states, that distance says little about which of two neighbouring cells
comes first (on the GRN suite's simulations it orders a cell's neighbours no better than a coin,
docs/results.md), and a vector field fitted to that order learns the wrong dynamics. The length of
the shortest path through a sparse neighbour graph (few neighbours, as Isomap's geodesic distance
and Wanderlust's) follows the manifold instead: a cell is later than the cells on its path from
the root.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse
from scipy.sparse.csgraph import connected_components, dijkstra
from sklearn.neighbors import NearestNeighbors

N_NEIGHBORS = 5
"""Neighbours per cell. Few: a dense graph takes shortcuts across a curved trajectory (on the GRN
suite's cycle with 15, the cells at its end were placed next to its start)."""
MAX_GENES_AS_X = 50
"""Without ``use_rep``, ``X`` is used only up to this many genes (as scanpy's neighbours); beyond, ``X_pca``."""
JOIN_NEIGHBORS = 30
"""Neighbours per cell searched for the shortest gap between pieces of the graph (:func:`knn_graph`)."""


def _representation(adata: AnnData, use_rep: str | None) -> np.ndarray:
    """Return the cells' coordinates: ``obsm[use_rep]`` or ``X``; ``None``: ``X_pca`` if present, else ``X``."""
    if use_rep is None:
        use_rep = "X_pca" if "X_pca" in adata.obsm else "X"
        if use_rep == "X" and adata.n_vars > MAX_GENES_AS_X:
            raise ValueError(
                f"adata has {adata.n_vars} genes and no obsm['X_pca']: run sc.pp.pca(adata) first (distances "
                "between cells in every gene are mostly noise), or pass use_rep='X' to use them anyway."
            )
    if use_rep == "X":
        x = adata.X
    elif use_rep in adata.obsm:
        x = adata.obsm[use_rep]
    else:
        raise KeyError(f"use_rep={use_rep!r} is neither 'X' nor a key of adata.obsm ({list(adata.obsm)}).")
    x = np.asarray(x.toarray() if sparse.issparse(x) else x, dtype=float)
    if x.ndim != 2 or not np.isfinite(x).all():
        raise ValueError(f"The representation {use_rep!r} must be a finite 2-d array.")
    return x


def knn_graph(x: np.ndarray, n_neighbors: int = N_NEIGHBORS) -> sparse.csr_matrix:
    """Symmetric k-nearest-neighbour graph of the rows of ``x`` (Euclidean edge lengths), made connected.

    Pieces of the graph are joined Borůvka-style: in each round every piece is joined to the nearest
    cell outside it by its shortest such edge, until one piece is left. So no cell is unreachable,
    and a piece far from the others is reached over the shortest gap, as in a minimum spanning tree.
    The gaps are looked up among each cell's :data:`JOIN_NEIGHBORS` nearest cells; a piece whose
    shortest gap might lie beyond them is searched exhaustively (the same edges, found faster).
    """
    n = x.shape[0]
    k = min(n_neighbors, n - 1)
    index = NearestNeighbors().fit(x)
    dist, idx = index.kneighbors(x, n_neighbors=min(max(k, JOIN_NEIGHBORS) + 1, n))
    rows = np.repeat(np.arange(n), k)
    graph = sparse.csr_matrix((dist[:, 1 : k + 1].ravel(), (rows, idx[:, 1 : k + 1].ravel())), shape=(n, n))
    graph = graph.maximum(graph.T)
    n_pieces, label = connected_components(graph, directed=False)
    while n_pieces > 1:
        outside = label[idx] != label[:, None]  # neighbours in another piece
        gaps = np.where(outside, dist, np.inf)
        gap, partner = gaps.min(1), idx[np.arange(n), gaps.argmin(1)]
        # a cell with no outside cell listed is farther from the outside than its last listed neighbour
        bound = np.where(np.isfinite(gap), np.inf, dist[:, -1])
        new_a, new_b, new_d = [], [], []
        for piece in range(n_pieces):
            inside = np.flatnonzero(label == piece)
            best = inside[np.argmin(gap[inside])]
            if gap[best] <= bound[inside].min():  # the shortest gap: no unlisted one can be shorter
                a, b, d = best, partner[best], gap[best]
            else:  # search every outside cell
                rest = np.flatnonzero(label != piece)
                d_in, j_in = NearestNeighbors(n_neighbors=1).fit(x[rest]).kneighbors(x[inside])
                at = int(np.argmin(d_in[:, 0]))
                a, b, d = inside[at], rest[j_in[at, 0]], d_in[at, 0]
            new_a.append(a)
            new_b.append(b)
            new_d.append(max(float(d), np.finfo(float).tiny))  # a duplicate cell: length ~0, still an edge
        joins = sparse.csr_matrix((new_d, (new_a, new_b)), shape=(n, n))
        graph = graph.maximum(joins).maximum(joins.T)
        n_pieces, label = connected_components(graph, directed=False)
    return graph.tocsr()


def _root(adata: AnnData, root: int | str | None) -> int:
    if root is None:
        if "iroot" not in adata.uns:
            raise ValueError(
                "No root cell: pass root= (a cell's index or name), root_key= (an obs column: its earliest cell), "
                "or set adata.uns['iroot'], as for sc.tl.dpt."
            )
        root = adata.uns["iroot"]
    if isinstance(root, str):
        if root not in adata.obs_names:
            raise KeyError(f"root={root!r} is not among adata.obs_names.")
        return int(adata.obs_names.get_loc(root))
    root = int(root)
    if not 0 <= root < adata.n_obs:
        raise ValueError(f"root={root} is not the index of a cell (adata has {adata.n_obs}).")
    return root


def _earliest(values: np.ndarray, cells: np.ndarray, root_key: str, group: object = None) -> int:
    """Return the position in ``cells`` of the cell with the smallest finite value of ``obs[root_key]``."""
    own = values[cells]
    if not np.isfinite(own).any():
        where = "" if group is None else f" in group {group!r}"
        raise ValueError(f"obs[{root_key!r}] has no finite value{where}: no cell to root at.")
    return int(np.nanargmin(np.where(np.isfinite(own), own, np.nan)))


def _distances(x: np.ndarray, start: int, n_neighbors: int) -> np.ndarray:
    """Shortest-path distance of every row of ``x`` from row ``start``, scaled to [0, 1]."""
    if x.shape[0] < 2:
        return np.zeros(x.shape[0])
    distance = dijkstra(knn_graph(x, n_neighbors), directed=False, indices=start)
    top = distance.max()
    return distance / top if top > 0 else distance


def geodesic_pseudotime(
    adata: AnnData,
    root: int | str | None = None,
    *,
    root_key: str | None = None,
    groupby: str | None = None,
    use_rep: str | None = None,
    n_neighbors: int = N_NEIGHBORS,
    key_added: str = "geodesic_pseudotime",
    copy: bool = False,
) -> AnnData | None:
    """Order cells by their shortest-path distance from a root cell along a nearest-neighbour graph.

    A pseudotime for :func:`scnode.tl.fit_sparse_ode` (``time_key="geodesic_pseudotime"``) that
    follows the data's manifold: each cell's time is the length of the shortest path from the root
    through a graph joining each cell to its ``n_neighbors`` nearest cells (Euclidean lengths; pieces
    of the graph joined by their shortest gaps), scaled to [0, 1]. On the GRN suite's simulations it
    orders the cells of a linear, a cyclic and a bifurcating network as their clock does where
    diffusion pseudotime does not, and the default call's network from it ranks the true edges above
    the best peer's (docs/results.md). It does not branch: give the branches as groups (``groupby``,
    then the same column as ``lineage_key``) where the data have them.

    Parameters
    ----------
    adata
        Cells in ``obs``.
    root
        The root cell: its index or name; ``None``: the earliest cell by ``root_key`` if given, else
        ``adata.uns["iroot"]`` (as for ``sc.tl.dpt``). Not with ``groupby``.
    root_key
        A column of ``obs`` (e.g. ``"dpt_pseudotime"``): the root is the cell with its smallest
        finite value, in each group with ``groupby``.
    groupby
        A column of ``obs`` (branches, or perturbations that do not share a trajectory): each
        group's cells are ordered on their own, through a graph of their cells only, from their own
        root (``root_key``), and scaled to [0, 1]. Cells with no group get NaN.
    use_rep
        Coordinates of the cells: a key of ``obsm`` or ``"X"``; ``None``: ``obsm["X_pca"]`` if present,
        else ``X`` up to 50 genes (an error beyond: run ``sc.pp.pca`` first).
    n_neighbors
        Neighbours per cell. Keep it small: a dense graph takes shortcuts across curved trajectories.
    key_added
        Column of ``obs`` written.
    copy
        Return a copy instead of writing into ``adata``.

    Returns
    -------
    With ``copy=True`` a copy of ``adata``, otherwise ``None``; writes ``obs[key_added]``.

    Examples
    --------
    Each branch ordered from its earliest cell by diffusion pseudotime, then the network:

    >>> scn.tl.geodesic_pseudotime(adata, groupby="branch", root_key="dpt_pseudotime")  # doctest: +SKIP
    >>> scn.tl.fit_sparse_ode(adata, time_key="geodesic_pseudotime", lineage_key="branch")  # doctest: +SKIP
    """
    if n_neighbors < 1:
        raise ValueError(f"n_neighbors must be at least 1, got {n_neighbors}.")
    if adata.n_obs < 2:
        raise ValueError("adata needs at least two cells for a pseudotime.")
    for name, key in (("root_key", root_key), ("groupby", groupby)):
        if key is not None and key not in adata.obs:
            raise KeyError(f"{name}={key!r} is not a column of adata.obs ({list(adata.obs.columns)}).")
    if root is not None and (root_key is not None or groupby is not None):
        raise ValueError(
            "Pass either root= (one cell) or root_key= (each group's earliest cell by that obs column), not both; "
            "with groupby= every group needs its own root: pass root_key=."
        )
    if groupby is not None and root_key is None:
        raise ValueError(
            f"With groupby={groupby!r} each group needs its own root: pass root_key=, an obs column whose smallest "
            "value marks each group's earliest cell (e.g. 'dpt_pseudotime')."
        )
    values = None
    if root_key is not None:
        if not pd.api.types.is_numeric_dtype(adata.obs[root_key]):
            raise ValueError(f"obs[{root_key!r}] must be numeric (a time), got dtype {adata.obs[root_key].dtype}.")
        values = np.asarray(adata.obs[root_key], dtype=float)
    x = _representation(adata, use_rep)
    times = np.full(adata.n_obs, np.nan)
    if groupby is None:
        cells = np.arange(adata.n_obs)
        start = _root(adata, root) if values is None else _earliest(values, cells, root_key)
        times[:] = _distances(x, start, n_neighbors)
    else:
        labels = adata.obs[groupby]
        for group in labels.dropna().unique():
            cells = np.flatnonzero((labels == group).to_numpy())
            times[cells] = _distances(x[cells], _earliest(values, cells, root_key, group), n_neighbors)
    adata = adata.copy() if copy else adata
    adata.obs[key_added] = times
    return adata if copy else None
