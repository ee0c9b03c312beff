from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import matplotlib.patheffects as patheffects
import networkx as nx
import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.patches import ArrowStyle, FancyArrowPatch

from ..tl import edge_list
from ..tl._evaluate import truth_matrix
from ._layout import LAYOUTS, fit_into, graph_layout, grid, spread
from ._utils import PlotResult, finish, get_ax

SIGN_COLORS = {1: "tab:red", -1: "tab:blue", 0: "0.45"}
"""Edge colours by sign: activation, repression, unknown."""
FALSE_EDGE = (0, (3.0, 1.5))
"""Line style of a drawn edge that is not in the known network (dashed)."""
SHRINK = (1.0, 0.85, 0.72, 0.6, 0.5, 0.42)
"""Scales of font and node size tried, largest first, until every node and label fits the axes."""
MAX_SPREAD = 200
"""Graphs of more nodes go on a grid (pushing footprints apart takes time quadratic in the nodes)."""


def _arrowstyle(sign: int) -> ArrowStyle:
    """Return an arrow head for activation (and unknown signs), a flat bar for repression."""
    if sign == -1:
        return ArrowStyle("-[", widthB=0.5, lengthB=0.0)
    return ArrowStyle("-|>", head_length=0.5, head_width=0.25)


def _points(extent, dpi: float) -> tuple[float, float]:
    """Width and height of a display-space extent (pixels) in points."""
    return extent.width * 72.0 / dpi, extent.height * 72.0 / dpi


def _legend(ax: Axes, edges: pd.DataFrame, widths: np.ndarray, width_pt: float):
    """Put the legend under the nodes, a column per group: signs, known or not, what widths mean in scores."""
    groups = []
    if "sign" in edges:
        sign = edges["sign"].to_numpy(int)
        named = ((1, "activation"), (-1, "repression"), (0, "sign unknown"))
        groups.append(
            [Line2D([], [], color=SIGN_COLORS[v], lw=2, label=name) for v, name in named if (sign == v).any()]
        )
    if "true" in edges:
        true = edges["true"].to_numpy(bool)
        groups.append(
            [
                Line2D([], [], color="0.2", lw=1.5, label=f"in the known network ({true.sum()} of {len(true)})"),
                Line2D([], [], color="0.2", lw=1.5, ls=FALSE_EDGE, label=f"not in it ({(~true).sum()})"),
            ]
        )
    weight = np.abs(edges["weight"].to_numpy(float))
    picks = np.unique(np.argsort(-weight, kind="stable")[[0, len(weight) // 2, len(weight) - 1]])
    groups.append([Line2D([], [], color="0.2", lw=widths[i], label=f"score {weight[i]:.3g}") for i in picks[::-1]])
    rows = max(map(len, groups))
    blank = Line2D([], [], color="none", label=" ")
    in_columns = [handle for group in groups for handle in group + [blank] * (rows - len(group))]
    stacked = [handle for group in groups for handle in group]
    for handles, ncol in ((in_columns, len(groups)), (stacked, 1)):
        legend = ax.legend(
            handles=handles,
            loc="lower center",
            ncol=ncol,
            fontsize="small" if width_pt >= 300 else "x-small",
            frameon=False,
            handlelength=2.2,
            columnspacing=1.5,
            borderaxespad=0.2,
        )
        if _points(legend.get_window_extent(), ax.figure.dpi)[0] <= width_pt:
            break
    return legend


def _place(
    graph: nx.DiGraph,
    labels: list,
    node_size: float,
    font_size: float,
    box: tuple[float, float, float, float],
    layout: str,
    random_state: int,
    dpi: float,
) -> tuple[np.ndarray, float]:
    """Node positions (points) where no discs or labels overlap, shrinking font and nodes when needed."""
    nodes = list(graph)
    index = {n: i for i, n in enumerate(nodes)}
    pairs = np.array([(index[u], index[v]) for u, v in graph.edges], int).reshape(-1, 2)
    start = graph_layout(graph, layout, random_state)
    by_degree = np.argsort([-graph.degree(n) for n in nodes], kind="stable")
    tries = (False, True) if len(nodes) <= MAX_SPREAD else (True,)
    for fallback in tries:  # the layout at any scale first, a grid only where it never fits
        for scale in SHRINK:
            radius = np.full(len(nodes), np.sqrt(node_size) * scale / 2 + 1.0)  # + the disc's edge line
            for text in labels:
                text.set_fontsize(font_size * scale)
            size = np.array([_points(text.get_window_extent(), dpi) for text in labels])
            half = np.maximum(radius[:, None], size / 2 + 1.0)
            xy = grid(half, box, by_degree) if fallback else spread(start, half, box, edges=pairs, radius=radius)
            if xy is not None:
                return xy, scale
    warnings.warn(
        f"{len(nodes)} nodes do not fit the axes without overlaps; draw fewer edges (top_k) or a larger figure.",
        UserWarning,
        stacklevel=3,
    )
    return fit_into(start, half, box), SHRINK[-1]


def network(
    adata: AnnData,
    *,
    key: str = "scnode",
    top_k: int | None = 30,
    regulators: Sequence[str] | None = None,
    truth: pd.DataFrame | np.ndarray | None = None,
    layout: str = "auto",
    random_state: int = 0,
    node_color: str | Mapping[str, str] = "lightsteelblue",
    node_size: float = 600,
    font_size: float = 9.0,
    title: str | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
) -> PlotResult:
    """Draw the strongest edges of the learned network as a directed graph.

    Edges come from :func:`scnode.tl.edge_list`; each arrow points from regulator to target and its
    width is proportional to the edge's score. Where the fit recorded signs (``varp[key + "_sign"]``),
    activating edges are red arrows and repressing ones blue bars; otherwise grey arrows. Given a
    known network (``truth``), edges in it are solid and the others dashed. The legend under the graph
    says what colours, line styles and widths (in scores) mean.

    The layout is fitted into the axes in points: no two node discs and no two labels overlap (font
    and nodes shrink when many nodes need it), nodes are kept off the edges between other nodes, and
    the graph fills the axes. Each label is centred on its node.

    Parameters
    ----------
    adata
        AnnData with a fitted network in ``varp[key]`` (rows regulators, columns targets).
    key
        Key of the network in ``varp``.
    top_k
        Draw only the ``top_k`` strongest edges (``None``: every nonzero edge).
    regulators
        Draw only edges whose source is one of these genes (e.g. transcription factors).
    truth
        A known or prior network to mark the drawn edges against, as :func:`scnode.tl.evaluate_grn`
        takes it: an edge table with ``source`` and ``target`` (a ``weight`` of 0 marks a non-edge), a
        DataFrame matrix (index regulators, columns targets) or an ``n_vars x n_vars`` array in
        ``var_names`` order (nonzero = edge).
    layout
        Starting layout, then fitted into the axes without overlaps: ``"auto"`` (Kamada-Kawai on
        hop distances, separate parts of the graph kept close), ``"layered"`` (regulators above their
        targets, each strongly connected group of genes one layer), or a networkx layout:
        ``"spring"``, ``"circular"``, ``"kamada_kawai"``, ``"shell"``, ``"spectral"``.
    random_state
        Seed of the spring layout.
    node_color
        One colour for every node, or a mapping gene -> colour (genes not in it get ``"lightgrey"``).
    node_size
        Node size (points², as in :meth:`~matplotlib.axes.Axes.scatter`), before any shrinking.
    font_size
        Size of the gene names (points), before any shrinking.
    title
        Axes title.
    ax
        Axes to draw into.
    show
        Show the figure (default: in interactive sessions).

    Returns
    -------
    :class:`PlotResult` with the Axes and the edges drawn: a DataFrame with the columns of
    :func:`scnode.tl.edge_list` (``sign`` where known), ``true`` (with ``truth``: the edge is in the
    known network), the colour and line width of each edge (``color``, ``width``) and the node
    positions ``x_source``, ``y_source``, ``x_target``, ``y_target`` (data coordinates of the Axes,
    which are points from its lower left corner).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}.")
    edges = edge_list(adata, key=key, top_k=top_k, regulators=regulators)
    if truth is not None:
        known = truth_matrix(truth, adata, adata.var_names)
        src, tgt = adata.var_names.get_indexer(edges["source"]), adata.var_names.get_indexer(edges["target"])
        edges["true"] = known[src, tgt] != 0
    ax = get_ax(ax, (6.0, 6.0))
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    if edges.empty:
        ax.text(0.5, 0.5, "no edges", ha="center", va="center", transform=ax.transAxes)
        finish(show)
        empty = {c: [] for c in ("color", "width", "x_source", "y_source", "x_target", "y_target")}
        return PlotResult(ax, edges.assign(**empty))

    graph = nx.DiGraph()
    graph.add_nodes_from(dict.fromkeys([*edges["source"], *edges["target"]]))
    graph.add_edges_from(edges[["source", "target"]].itertuples(index=False, name=None))
    nodes = list(graph.nodes)
    strength = np.abs(edges["weight"].to_numpy(float))
    widths = 0.6 + 3.0 * strength / strength.max() if strength.max() > 0 else np.ones(len(edges))
    sign = edges["sign"].to_numpy(int) if "sign" in edges else np.zeros(len(edges), int)
    halo = [patheffects.withStroke(linewidth=2.5, foreground="white")]
    labels = [ax.text(0, 0, n, ha="center", va="center", zorder=4, path_effects=halo) for n in nodes]

    figure, dpi = ax.figure, ax.figure.dpi
    figure.draw_without_rendering()  # settle the figure's layout: the axes' size in points
    width_pt, height_pt = _points(ax.get_window_extent(), dpi)
    legend = _legend(ax, edges, widths, width_pt)
    bottom = _points(legend.get_window_extent(), dpi)[1] + 6.0
    box = (0.0, bottom, width_pt, height_pt)
    xy, scale = _place(graph, labels, node_size, font_size, box, layout, random_state, dpi)
    if scale < 1:  # thinner edges with smaller nodes, in the legend too
        widths = widths * scale
        for handle in legend.legend_handles:
            handle.set_linewidth(handle.get_linewidth() * scale)
    ax.set_xlim(0, width_pt)
    ax.set_ylim(0, height_pt)
    for text, (x, y) in zip(labels, xy, strict=True):
        text.set_position((x, y))
    size = node_size * scale**2
    if isinstance(node_color, Mapping):
        colors = [node_color.get(n, "lightgrey") for n in nodes]
    else:
        colors = node_color
    ax.scatter(xy[:, 0], xy[:, 1], s=size, c=colors, edgecolors="0.35", linewidths=0.8, zorder=3)

    pos = dict(zip(nodes, map(tuple, xy), strict=True))
    reciprocal = set(graph.edges) & {(v, u) for u, v in graph.edges}
    shrink = np.sqrt(size) / 2 + 1.5
    colors = np.array([SIGN_COLORS[int(v)] for v in sign], dtype=object)
    true = edges["true"].to_numpy(bool) if "true" in edges else np.ones(len(edges), bool)
    for k, (u, v) in enumerate(zip(edges["source"], edges["target"], strict=True)):
        arrow = FancyArrowPatch(
            pos[u],
            pos[v],
            arrowstyle=_arrowstyle(int(sign[k])),
            connectionstyle=f"arc3,rad={0.2 if (u, v) in reciprocal else 0.0}",
            shrinkA=shrink,
            shrinkB=shrink,
            mutation_scale=10 * scale + 2 * widths[k],
            linewidth=widths[k],
            linestyle="-" if true[k] else FALSE_EDGE,
            color=colors[k],
            zorder=2,
        )
        ax.add_patch(arrow)

    data = edges.assign(
        color=colors,
        width=widths,
        x_source=[pos[n][0] for n in edges["source"]],
        y_source=[pos[n][1] for n in edges["source"]],
        x_target=[pos[n][0] for n in edges["target"]],
        y_target=[pos[n][1] for n in edges["target"]],
    )
    finish(show)
    return PlotResult(ax, data)
