from __future__ import annotations

from collections.abc import Mapping, Sequence

import networkx as nx
import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from ..tl import edge_list
from ._utils import PlotResult, finish, get_ax

LAYOUTS = ("spring", "circular", "kamada_kawai", "shell", "spectral")
SIGN_COLORS = {1: "tab:red", -1: "tab:blue", 0: "0.45"}
"""Edge colours by sign: activation, repression, unknown."""


def _positions(graph: nx.DiGraph, layout: str, random_state: int) -> dict[str, np.ndarray]:
    if layout == "spring":
        return nx.spring_layout(graph, seed=random_state)
    if layout == "circular":
        return nx.circular_layout(graph)
    if layout == "kamada_kawai":
        return nx.kamada_kawai_layout(graph)
    if layout == "shell":
        return nx.shell_layout(graph)
    return nx.spectral_layout(graph)


def network(
    adata: AnnData,
    *,
    key: str = "scnode",
    top_k: int | None = 30,
    regulators: Sequence[str] | None = None,
    layout: str = "spring",
    random_state: int = 0,
    node_color: str | Mapping[str, str] = "lightsteelblue",
    node_size: float = 600,
    title: str | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
) -> PlotResult:
    """Draw the strongest edges of the learned network as a directed graph.

    Edges come from :func:`scnode.tl.edge_list`; each arrow points from regulator to target and its
    width is proportional to the edge weight. Where the fit recorded signs (``varp[key + "_sign"]``),
    activating edges are red arrows and repressing ones blue bars, with a legend; otherwise grey.

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
    layout
        Node layout: ``"spring"``, ``"circular"``, ``"kamada_kawai"``, ``"shell"`` or ``"spectral"``.
    random_state
        Seed of the spring layout.
    node_color
        One colour for every node, or a mapping gene -> colour (genes not in it get ``"lightgrey"``).
    node_size
        Node size (points²).
    title
        Axes title.
    ax
        Axes to draw into.
    show
        Show the figure (default: in interactive sessions).

    Returns
    -------
    :class:`PlotResult` with the Axes and the edges drawn: a DataFrame with the columns of
    :func:`scnode.tl.edge_list` (``sign`` where known), the colour of each edge (``color``) and the
    node positions ``x_source``, ``y_source``, ``x_target``, ``y_target``.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}.")
    edges = edge_list(adata, key=key, top_k=top_k, regulators=regulators)
    graph = nx.DiGraph()
    graph.add_nodes_from(dict.fromkeys([*edges["source"], *edges["target"]]))
    graph.add_weighted_edges_from(edges[["source", "target", "weight"]].itertuples(index=False, name=None))
    ax = get_ax(ax, (6.0, 6.0))
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    if edges.empty:
        ax.text(0.5, 0.5, "no edges", ha="center", va="center", transform=ax.transAxes)
        finish(show)
        return PlotResult(ax, edges.assign(x_source=[], y_source=[], x_target=[], y_target=[]))

    pos = _positions(graph, layout, random_state)
    nodes = list(graph.nodes)
    if isinstance(node_color, Mapping):
        colors = [node_color.get(n, "lightgrey") for n in nodes]
    else:
        colors = node_color
    strength = np.abs(edges["weight"].to_numpy(float))
    widths = 0.5 + 3.5 * strength / strength.max() if strength.max() > 0 else np.ones(len(edges))
    sign = edges["sign"].to_numpy(int) if "sign" in edges else np.zeros(len(edges), int)
    edge_colors = np.array([SIGN_COLORS[int(v)] for v in sign], dtype=object)
    nx.draw_networkx_nodes(graph, pos, nodelist=nodes, node_color=colors, node_size=node_size, ax=ax)
    for value, style in ((1, "-|>"), (-1, "-["), (0, "-|>")):
        part = sign == value
        if not part.any():
            continue
        nx.draw_networkx_edges(
            graph,
            pos,
            edgelist=list(zip(edges["source"][part], edges["target"][part], strict=True)),
            width=list(widths[part]),
            edge_color=SIGN_COLORS[value],
            arrows=True,
            arrowstyle=style,
            arrowsize=12,
            node_size=node_size,
            connectionstyle="arc3,rad=0.1",
            ax=ax,
        )
    nx.draw_networkx_labels(graph, pos, font_size=9, ax=ax)
    if "sign" in edges:
        handles = [
            Line2D([], [], color=SIGN_COLORS[v], lw=2, label=label)
            for v, label in ((1, "activation"), (-1, "repression"))
            if (sign == v).any()
        ]
        ax.legend(handles=handles, loc="lower right", fontsize="small", frameon=False)
    xy = pd.DataFrame(pos, index=["x", "y"]).T
    data = edges.assign(
        color=edge_colors,
        x_source=xy.loc[edges["source"], "x"].to_numpy(),
        y_source=xy.loc[edges["source"], "y"].to_numpy(),
        x_target=xy.loc[edges["target"], "x"].to_numpy(),
        y_target=xy.loc[edges["target"], "y"].to_numpy(),
    )
    finish(show)
    return PlotResult(ax, data)
