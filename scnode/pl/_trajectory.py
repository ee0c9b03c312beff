from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes
from scipy import sparse
from scipy.spatial import cKDTree

from ._utils import PlotResult, finish, get_ax, lineage_colors, prediction_columns


def project(
    adata: AnnData, prediction: AnnData, embedding: np.ndarray, n_neighbors: int, layer: str | None
) -> np.ndarray:
    """Embedding coordinates of each predicted state: the mean over its nearest cells in expression space."""
    missing = [g for g in prediction.var_names if g not in adata.var_names]
    if missing:
        raise KeyError(f"The prediction's gene(s) {missing[:10]} are not in adata.var_names.")
    if layer is not None and layer not in adata.layers:
        raise KeyError(f"adata.layers has no {layer!r}; available: {list(adata.layers)}.")
    if n_neighbors < 1:
        raise ValueError(f"n_neighbors must be >= 1, got {n_neighbors}.")
    matrix = adata.X if layer is None else adata.layers[layer]
    cells = matrix[:, adata.var_names.get_indexer(prediction.var_names)]
    cells = cells.toarray() if sparse.issparse(cells) else np.asarray(cells)
    states = prediction.X.toarray() if sparse.issparse(prediction.X) else np.asarray(prediction.X)
    k = min(n_neighbors, adata.n_obs)
    _, idx = cKDTree(cells.astype(float)).query(states.astype(float), k=k)
    idx = np.asarray(idx).reshape(len(states), k)
    return embedding[idx].mean(axis=1)


def _draw_cells(ax: Axes, adata: AnnData, xy: np.ndarray, color: str | None, size: float) -> None:
    if color is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=size, color="lightgrey", linewidths=0, rasterized=True)
        return
    if color not in adata.obs:
        raise KeyError(f"adata.obs has no column {color!r}; available: {list(adata.obs.columns)}.")
    values = adata.obs[color]
    if pd.api.types.is_numeric_dtype(values) and not isinstance(values.dtype, pd.CategoricalDtype):
        points = ax.scatter(xy[:, 0], xy[:, 1], s=size, c=values.to_numpy(float), cmap="viridis", linewidths=0)
        ax.figure.colorbar(points, ax=ax, label=color)
        return
    labels = pd.Categorical(values)
    palette = list(adata.uns.get(f"{color}_colors", []))
    if len(palette) < len(labels.categories):
        cmap = matplotlib.colormaps["tab20"]
        palette = [cmap(i % 20) for i in range(len(labels.categories))]
    for i, name in enumerate(labels.categories):
        keep = np.asarray(labels == name)
        ax.scatter(xy[keep, 0], xy[keep, 1], s=size, color=palette[i], alpha=0.6, linewidths=0, label=str(name))


def trajectory(
    adata: AnnData,
    prediction: AnnData,
    *,
    basis: str = "umap",
    n_neighbors: int = 10,
    color: str | None = None,
    layer: str | None = None,
    by_lineage: bool = False,
    point_size: float = 8.0,
    ax: Axes | None = None,
    show: bool | None = None,
) -> PlotResult:
    """Draw the model's trajectories on a cell embedding (e.g. a UMAP).

    Each predicted state is placed at the mean embedding position of its ``n_neighbors`` nearest
    cells in expression space (Euclidean, over the prediction's genes), optionally among the cells
    of its own lineage only. Each lineage's path is drawn as a line (dashed where extrapolated) with
    an arrow at its end.

    Parameters
    ----------
    adata
        Cells with an embedding in ``obsm[f"X_{basis}"]`` and the prediction's genes.
    prediction
        Model trajectories from :func:`scnode.tl.predict` (or :func:`scnode.tl.simulate_intervention`).
    basis
        Embedding: ``adata.obsm[f"X_{basis}"]`` (its first two columns are drawn).
    n_neighbors
        Cells averaged per predicted state.
    color
        Column of ``obs`` colouring the cells (default: grey).
    layer
        Layer with the cells' expression (default ``X``); it should be in the units the model was
        fitted in (those of the prediction).
    by_lineage
        Place each lineage's states among the cells of the same lineage (``adata.obs`` must have the
        prediction's lineage column). With few genes, states of different branches can lie closest
        to the same cells; this keeps each path on its branch.
    point_size
        Size of the cells' dots.
    ax
        Axes to draw into.
    show
        Show the figure (default: in interactive sessions).

    Returns
    -------
    :class:`PlotResult` with the Axes and the paths drawn: a DataFrame with one row per predicted state
    and columns ``lineage``, ``time``, ``x``, ``y`` and ``extrapolated``.
    """
    obsm_key = f"X_{basis}"
    if obsm_key not in adata.obsm:
        raise KeyError(f"adata.obsm has no {obsm_key!r} (basis={basis!r}); available: {list(adata.obsm)}.")
    embedding = np.asarray(adata.obsm[obsm_key])[:, :2].astype(float)
    if embedding.shape[1] < 2:
        raise ValueError(f"adata.obsm[{obsm_key!r}] needs at least 2 columns, got {embedding.shape[1]}.")
    time_key, lineage_key = prediction_columns(prediction, None, None)
    if not by_lineage:
        xy = project(adata, prediction, embedding, n_neighbors, layer)
    else:
        if lineage_key not in adata.obs:
            raise KeyError(f"by_lineage=True needs the prediction's lineage column {lineage_key!r} in adata.obs.")
        xy = np.empty((prediction.n_obs, 2))
        cell_lineage = adata.obs[lineage_key].astype(str).to_numpy()
        state_lineage = prediction.obs[lineage_key].astype(str).to_numpy()
        for name in np.unique(state_lineage):
            own, states = cell_lineage == name, state_lineage == name
            if not own.any():
                raise ValueError(f"No cell of lineage {name!r} in adata.obs[{lineage_key!r}].")
            xy[states] = project(adata[own], prediction[states], embedding[own], n_neighbors, layer)
    data = pd.DataFrame(
        {
            "lineage": prediction.obs[lineage_key].astype(str).to_numpy(),
            "time": prediction.obs[time_key].to_numpy(float),
            "x": xy[:, 0],
            "y": xy[:, 1],
            "extrapolated": prediction.obs["extrapolated"].to_numpy(bool),
        }
    )

    ax = get_ax(ax, (5.5, 5.0))
    _draw_cells(ax, adata, embedding, color, point_size)
    colors = lineage_colors(data["lineage"])
    for name, part in data.groupby("lineage", sort=False):
        part = part.sort_values("time", kind="stable")
        x, y, out = part["x"].to_numpy(), part["y"].to_numpy(), part["extrapolated"].to_numpy()
        inside = np.flatnonzero(~out)
        outside = np.flatnonzero(out)
        if len(inside):
            ax.plot(x[inside], y[inside], color=colors[name], lw=2.5, label=name)
        if len(outside):
            if outside[0] > 0:
                outside = np.r_[outside[0] - 1, outside]
            ax.plot(x[outside], y[outside], color=colors[name], lw=2.5, ls="--", label=None if len(inside) else name)
        if len(x) > 1:
            ax.annotate(
                "",
                xy=(x[-1], y[-1]),
                xytext=(x[-2], y[-2]),
                arrowprops={"arrowstyle": "-|>", "color": colors[name], "lw": 2.5, "mutation_scale": 18},
            )
    ax.set_xlabel(f"{basis.upper()}1")
    ax.set_ylabel(f"{basis.upper()}2")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize="small")
    finish(show)
    return PlotResult(ax, data)
