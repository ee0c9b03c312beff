from __future__ import annotations

import matplotlib
import matplotlib.patheffects as patheffects
import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from scipy import sparse
from scipy.spatial import cKDTree

from ._utils import PlotResult, finish, get_ax, lineage_colors, prediction_columns

PLACEMENTS = ("smooth", "nearest")
MAX_COMPONENTS = 30
"""Expression is compared in at most this many principal components (of the standardized genes)."""
CHUNK = 64
"""Predicted states whose distances to every cell are computed at once."""
ARROW_REACH = 0.02
"""Least length of an arrow head's shaft, as a fraction of the embedding's size (its larger side)."""


def _dense(matrix) -> np.ndarray:
    return np.asarray(matrix.toarray() if sparse.issparse(matrix) else matrix, dtype=float)


def _expression(adata: AnnData, prediction: AnnData, layer: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Return the cells' and the states' expression over the prediction's genes (raw units)."""
    missing = [g for g in prediction.var_names if g not in adata.var_names]
    if missing:
        raise KeyError(f"The prediction's gene(s) {missing[:10]} are not in adata.var_names.")
    if layer is not None and layer not in adata.layers:
        raise KeyError(f"adata.layers has no {layer!r}; available: {list(adata.layers)}.")
    matrix = adata.X if layer is None else adata.layers[layer]
    return _dense(matrix[:, adata.var_names.get_indexer(prediction.var_names)]), _dense(prediction.X)


def project(
    adata: AnnData, prediction: AnnData, embedding: np.ndarray, n_neighbors: int, layer: str | None
) -> np.ndarray:
    """Embedding coordinates of each predicted state: the mean over its nearest cells in expression space."""
    if n_neighbors < 1:
        raise ValueError(f"n_neighbors must be >= 1, got {n_neighbors}.")
    cells, states = _expression(adata, prediction, layer)
    k = min(n_neighbors, adata.n_obs)
    _, idx = cKDTree(cells).query(states, k=k)
    idx = np.asarray(idx).reshape(len(states), k)
    return embedding[idx].mean(axis=1)


def _components(cells: np.ndarray, states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cells and states in the principal components of the cells' standardized expression."""
    mean, sd = cells.mean(0), cells.std(0)
    sd[sd == 0] = 1.0
    cells, states = (cells - mean) / sd, (states - mean) / sd
    if cells.shape[1] > MAX_COMPONENTS:
        _, _, vt = np.linalg.svd(cells, full_matrices=False)
        cells, states = cells @ vt[:MAX_COMPONENTS].T, states @ vt[:MAX_COMPONENTS].T
    return cells, states


def _kernel_weights(
    d2: np.ndarray, dt: np.ndarray | None, n_neighbors: int, bandwidth: float, span: float
) -> np.ndarray:
    """Weights of the cells (columns) for each state (rows): a biweight in time times a Gaussian in expression.

    The time window is ``bandwidth * span`` wide on each side, widened for a state until it holds
    ``n_neighbors`` cells; the Gaussian's width is the distance to the ``n_neighbors``-th nearest cell
    in that window, so each weight changes smoothly along the trajectory.
    """
    k = min(n_neighbors, d2.shape[1]) - 1
    if dt is None:
        in_time = np.ones_like(d2)
    else:
        reach = np.maximum(bandwidth * span, np.partition(np.abs(dt), k, axis=1)[:, k] * (1 + 1e-6))
        u = dt / np.maximum(reach, 1e-12)[:, None]
        in_time = np.clip(1 - u**2, 0.0, None) ** 2
    inside = np.where(in_time > 0, d2, np.inf)  # the window holds at least k + 1 cells
    width2 = np.maximum(np.partition(inside, k, axis=1)[:, k], 1e-12)
    nearest = inside.min(1, keepdims=True)
    return in_time * np.exp(-(d2 - nearest) / (2 * width2[:, None]))


def smooth_project(
    cells: np.ndarray,
    states: np.ndarray,
    embedding: np.ndarray,
    n_neighbors: int,
    cell_time: np.ndarray | None = None,
    state_time: np.ndarray | None = None,
    time_bandwidth: float | None = 0.1,
) -> np.ndarray:
    """Kernel-weighted mean embedding position of the cells near each state, in expression and in time.

    ``cells`` and ``states`` are in the same (component) space. With times, a state at time ``t``
    weighs cells by closeness to ``t`` (clipped to the cells' time range, so extrapolated states stay
    among the last cells) as well as by expression.
    """
    if n_neighbors < 1:
        raise ValueError(f"n_neighbors must be >= 1, got {n_neighbors}.")
    timed = cell_time is not None and state_time is not None and time_bandwidth is not None
    span = float(np.ptp(cell_time)) if timed else 0.0
    out = np.empty((len(states), embedding.shape[1]))
    for start in range(0, len(states), CHUNK):
        part = states[start : start + CHUNK]
        d2 = ((part**2).sum(1)[:, None] - 2 * part @ cells.T + (cells**2).sum(1)[None]).clip(0.0)
        dt = None
        if timed:
            t = np.clip(state_time[start : start + CHUNK], cell_time.min(), cell_time.max())
            dt = cell_time[None, :] - t[:, None]
        w = _kernel_weights(d2, dt, n_neighbors, time_bandwidth, span)
        out[start : start + len(part)] = (w @ embedding) / w.sum(1, keepdims=True)
    return out


def _groups(adata: AnnData, prediction: AnnData, lineage_key: str, by_lineage: bool | None) -> list[tuple]:
    """(cells, states) index pairs to place together: each lineage among its own cells, or all among all."""
    state_lineage = prediction.obs[lineage_key].astype(str).to_numpy()
    if by_lineage is None:
        by_lineage = lineage_key in adata.obs and set(state_lineage) <= set(adata.obs[lineage_key].astype(str))
    if not by_lineage:
        return [(np.arange(adata.n_obs), np.arange(prediction.n_obs))]
    if lineage_key not in adata.obs:
        raise KeyError(f"by_lineage=True needs the prediction's lineage column {lineage_key!r} in adata.obs.")
    cell_lineage = adata.obs[lineage_key].astype(str).to_numpy()
    groups = []
    for name in pd.unique(state_lineage):
        own = np.flatnonzero(cell_lineage == name)
        if not len(own):
            raise ValueError(f"No cell of lineage {name!r} in adata.obs[{lineage_key!r}].")
        groups.append((own, np.flatnonzero(state_lineage == name)))
    return groups


def _draw_cells(ax: Axes, adata: AnnData, xy: np.ndarray, color: str | None, size: float) -> dict[str, object]:
    """Scatter the cells; return the colour of each category when ``color`` is categorical."""
    if color is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=size, color="lightgrey", linewidths=0, rasterized=True, zorder=1)
        return {}
    if color not in adata.obs:
        raise KeyError(f"adata.obs has no column {color!r}; available: {list(adata.obs.columns)}.")
    values = adata.obs[color]
    if pd.api.types.is_numeric_dtype(values) and not isinstance(values.dtype, pd.CategoricalDtype):
        points = ax.scatter(
            xy[:, 0], xy[:, 1], s=size, c=values.to_numpy(float), cmap="Greys", linewidths=0, rasterized=True, zorder=1
        )
        ax.figure.colorbar(points, ax=ax, label=color, shrink=0.6)
        return {}
    labels = pd.Categorical(values)
    palette = list(adata.uns.get(f"{color}_colors", []))
    if len(palette) < len(labels.categories):
        cmap = matplotlib.colormaps["tab10" if len(labels.categories) <= 10 else "tab20"]
        palette = [cmap(i % cmap.N) for i in range(len(labels.categories))]
    for i, name in enumerate(labels.categories):
        keep = np.asarray(labels == name)
        ax.scatter(
            xy[keep, 0],
            xy[keep, 1],
            s=size,
            color=palette[i],
            alpha=0.35,
            linewidths=0,
            label=str(name),
            rasterized=True,
            zorder=1,
        )
    return {str(name): palette[i] for i, name in enumerate(labels.categories)}


def _arrow_tail(x: np.ndarray, y: np.ndarray, head: int, reach: float) -> int:
    """Index of the latest state before ``head`` at least ``reach`` away from it (the first state if none is).

    The state just before the head can lie almost on it (extrapolated states stay among the last
    cells): an arrow shorter than its head points any way at all.
    """
    far = np.flatnonzero(np.hypot(x[:head] - x[head], y[:head] - y[head]) >= reach)
    return int(far[-1]) if len(far) else 0


def _draw_path(ax: Axes, part: pd.DataFrame, color, norm: Normalize, cmap: str, reach: float) -> None:
    """One lineage: a line in its colour (dashed where extrapolated), time-coloured dots, arrow heads.

    Each arrow head points the way from the latest earlier state at least ``reach`` away (embedding
    units); its shaft is a quarter of that long, hidden under the line where the path bends.
    """
    part = part.sort_values("time", kind="stable")
    x, y, t, out = (part[c].to_numpy() for c in ("x", "y", "time", "extrapolated"))
    outline = [patheffects.Stroke(linewidth=4.5, foreground="0.1"), patheffects.Normal()]
    inside, outside = np.flatnonzero(~out), np.flatnonzero(out)
    name = str(part["lineage"].iloc[0])
    if len(inside):
        ax.plot(x[inside], y[inside], color=color, lw=2.5, label=name, path_effects=outline, zorder=3, gid="path")
    if len(outside):
        if outside[0] > 0:  # start the dashed part at the last fitted state: one connected path
            outside = np.r_[outside[0] - 1, outside]
        label = None if len(inside) else name
        ax.plot(x[outside], y[outside], color=color, lw=2.5, ls="--", label=label, zorder=3, gid="extrapolated path")
    every = max(1, len(x) // 12)
    dots = np.unique(np.r_[np.arange(0, len(x), every), len(x) - 1])
    ax.scatter(
        x[dots], y[dots], c=t[dots], cmap=cmap, norm=norm, s=22, edgecolors="0.15", linewidths=0.6, zorder=4, gid="time"
    )
    if len(x) > 1:
        heads = sorted({len(x) // 2, len(x) - 1} - {0})
        for i in heads:
            j = _arrow_tail(x, y, i, reach)
            way = np.array([x[i] - x[j], y[i] - y[j]])
            if not np.hypot(*way) > 0:
                continue
            tail = (x[i], y[i]) - 0.25 * reach * way / np.hypot(*way)
            ax.annotate(
                "",
                xy=(x[i], y[i]),
                xytext=tuple(tail),
                arrowprops={
                    "arrowstyle": "-|>",
                    "color": color,
                    "lw": 2.0,
                    "mutation_scale": 16,
                    "shrinkA": 0,
                    "shrinkB": 0,
                },
                zorder=5,
            )


def trajectory(
    adata: AnnData,
    prediction: AnnData,
    *,
    basis: str = "umap",
    n_neighbors: int = 10,
    color: str | None = None,
    layer: str | None = None,
    by_lineage: bool | None = None,
    placement: str = "smooth",
    time_bandwidth: float | None = 0.1,
    time_cmap: str = "viridis",
    point_size: float = 8.0,
    ax: Axes | None = None,
    show: bool | None = None,
) -> PlotResult:
    """Draw the model's trajectories on a cell embedding (e.g. a UMAP).

    Each predicted state is placed among the cells it resembles. With ``placement="smooth"`` (the
    default) that is a kernel-weighted mean of the cells' embedding positions: cells are weighted by
    closeness in expression (a Gaussian in the principal components of the standardized genes, as
    wide as the distance to the ``n_neighbors``-th nearest cell) and, where ``adata.obs`` has the
    prediction's time column, by closeness in time (a window of ``time_bandwidth`` of the lineage's
    time span), among the cells of the state's own lineage where ``adata.obs`` has its lineage
    column. The path then moves smoothly along the lineage's arm of the embedding instead of
    jumping between arms. ``placement="nearest"`` is the plain mean of the ``n_neighbors`` nearest
    cells in expression.

    Each lineage is one line in its colour (dashed where extrapolated) with arrow heads halfway and
    at its end; dots on it mark the time (colour bar).

    Parameters
    ----------
    adata
        Cells with an embedding in ``obsm[f"X_{basis}"]`` and the prediction's genes.
    prediction
        Model trajectories from :func:`scnode.tl.predict` (or :func:`scnode.tl.simulate_intervention`).
    basis
        Embedding: ``adata.obsm[f"X_{basis}"]`` (its first two columns are drawn).
    n_neighbors
        Cells averaged per predicted state (``"nearest"``), or the number of nearest cells that set
        the width of the expression kernel (``"smooth"``).
    color
        Column of ``obs`` colouring the cells (default: grey). When it is the prediction's lineage
        column, each path takes its lineage's colour.
    layer
        Layer with the cells' expression (default ``X``); it should be in the units the model was
        fitted in (those of the prediction).
    by_lineage
        Place each lineage's states among the cells of the same lineage. ``None`` (default): when
        ``adata.obs`` has the prediction's lineage column with every predicted lineage. With few
        genes, states of different branches can lie closest to the same cells; this keeps each path
        on its branch.
    placement
        ``"smooth"`` or ``"nearest"`` (see above).
    time_bandwidth
        With ``"smooth"``: half width of the time window, as a fraction of the lineage's time span;
        ``None`` places by expression only.
    time_cmap
        Colour map of the time dots.
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
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}.")
    if time_bandwidth is not None and not time_bandwidth > 0:
        raise ValueError(f"time_bandwidth must be > 0 (or None), got {time_bandwidth}.")
    obsm_key = f"X_{basis}"
    if obsm_key not in adata.obsm:
        raise KeyError(f"adata.obsm has no {obsm_key!r} (basis={basis!r}); available: {list(adata.obsm)}.")
    embedding = np.asarray(adata.obsm[obsm_key]).astype(float)
    if embedding.ndim != 2 or embedding.shape[1] < 2:
        raise ValueError(f"adata.obsm[{obsm_key!r}] needs at least 2 columns, got shape {embedding.shape}.")
    embedding = embedding[:, :2]
    time_key, lineage_key = prediction_columns(prediction, None, None)
    groups = _groups(adata, prediction, lineage_key, by_lineage)
    xy = np.empty((prediction.n_obs, 2))
    if placement == "nearest":
        for own, states in groups:
            xy[states] = project(adata[own], prediction[states], embedding[own], n_neighbors, layer)
    else:
        cells, states_x = _components(*_expression(adata, prediction, layer))
        timed = time_key in adata.obs and pd.api.types.is_numeric_dtype(adata.obs[time_key])
        cell_time = adata.obs[time_key].to_numpy(float) if timed else None
        state_time = prediction.obs[time_key].to_numpy(float)
        for own, states in groups:
            dated = own if cell_time is None else own[np.isfinite(cell_time[own])]  # e.g. inf pseudotimes
            own, times = (dated, cell_time[dated]) if len(dated) else (own, None)
            xy[states] = smooth_project(
                cells[own], states_x[states], embedding[own], n_neighbors, times, state_time[states], time_bandwidth
            )
    data = pd.DataFrame(
        {
            "lineage": prediction.obs[lineage_key].astype(str).to_numpy(),
            "time": prediction.obs[time_key].to_numpy(float),
            "x": xy[:, 0],
            "y": xy[:, 1],
            "extrapolated": prediction.obs["extrapolated"].to_numpy(bool),
        }
    )

    ax = get_ax(ax, (6.0, 5.0))
    palette = _draw_cells(ax, adata, embedding, color, point_size)
    colors = lineage_colors(data["lineage"])
    if color == lineage_key:
        colors = {name: palette.get(name, c) for name, c in colors.items()}
    norm = Normalize(data["time"].min(), data["time"].max())
    for name, part in data.groupby("lineage", sort=False):
        _draw_path(ax, part, colors[name], norm, time_cmap, ARROW_REACH * np.ptp(embedding, axis=0).max())
    ax.figure.colorbar(ScalarMappable(norm=norm, cmap=time_cmap), ax=ax, label=time_key, shrink=0.6, pad=0.02)
    ax.set_xlabel(f"{basis.upper()}1")
    ax.set_ylabel(f"{basis.upper()}2")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize="small", markerscale=2)
    finish(show)
    return PlotResult(ax, data)
