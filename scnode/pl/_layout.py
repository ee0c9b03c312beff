"""Node layouts for :func:`scnode.pl.network`: a graph layout, then fitted into the axes without overlaps.

Positions are worked out in points (1/72 inch) on the axes, where node discs and labels have their
drawn sizes: each node's footprint is the rectangle around its disc and its centred label, and
footprints are pushed apart until no two overlap, nodes are kept off the edges between other nodes,
and everything stays inside the axes.
"""

from __future__ import annotations

import networkx as nx
import numpy as np

LAYOUTS = ("auto", "layered", "spring", "circular", "kamada_kawai", "shell", "spectral")
MAX_KAMADA_KAWAI = 150
"""``"auto"`` is a spring layout for graphs of more nodes (Kamada-Kawai's cost grows quadratically)."""
STALL = 50
"""Rounds without fewer nodes on edges before :func:`spread` stops moving them off (4x: without fewer overlaps)."""


def _hop_distances(graph: nx.DiGraph) -> dict[str, dict[str, float]]:
    """Undirected shortest-path lengths; pairs in different components sit one hop beyond the longest path."""
    undirected = graph.to_undirected()
    hops = dict(nx.all_pairs_shortest_path_length(undirected))
    far = 1.0 + max((d for row in hops.values() for d in row.values()), default=0)
    return {u: {v: float(hops[u].get(v, far)) for v in graph} for u in graph}


def _layers(graph: nx.DiGraph) -> dict[str, int]:
    """Layer of each node: the topological generation of its strongly connected component (regulators first)."""
    condensed = nx.condensation(graph)
    layer = {}
    for depth, generation in enumerate(nx.topological_generations(condensed)):
        for component in generation:
            for node in condensed.nodes[component]["members"]:
                layer[node] = depth
    return layer


def graph_layout(graph: nx.DiGraph, layout: str, random_state: int) -> np.ndarray:
    """Positions (one row per node, in ``graph`` order) of a networkx layout, before fitting into the axes.

    ``"auto"`` is Kamada-Kawai on hop distances (components kept apart at a finite distance; a spring
    layout above ``MAX_KAMADA_KAWAI`` nodes);
    ``"layered"`` puts pure regulators in the top row and each strongly connected group of genes
    below the groups that regulate it.
    """
    if len(graph) == 1:
        return np.zeros((1, 2))
    if layout == "auto" and len(graph) > MAX_KAMADA_KAWAI:
        layout = "spring"
    if layout in ("auto", "kamada_kawai"):
        dist = _hop_distances(graph) if layout == "auto" else None
        pos = nx.kamada_kawai_layout(graph, dist=dist, pos=nx.circular_layout(graph))
    elif layout == "layered":
        nx.set_node_attributes(graph, _layers(graph), "layer")
        pos = nx.multipartite_layout(graph, subset_key="layer", align="horizontal")
        pos = {node: (x, -y) for node, (x, y) in pos.items()}  # first layer on top
    elif layout == "spring":
        pos = nx.spring_layout(graph, seed=random_state)
    elif layout == "circular":
        pos = nx.circular_layout(graph)
    elif layout == "shell":
        pos = nx.shell_layout(graph)
    else:
        pos = nx.spectral_layout(graph)
    return np.array([pos[node] for node in graph], dtype=float)


def fit_into(xy: np.ndarray, half: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """Stretch each coordinate to fill the box, minus the largest footprint at either side."""
    low = np.array(box[:2]) + half.max(0)
    high = np.array(box[2:]) - half.max(0)
    span = xy.max(0) - xy.min(0)
    unit = np.where(span > 0, (xy - xy.min(0)) / np.where(span > 0, span, 1.0), 0.5)
    return low + unit * (high - low)


def _edge_push(xy: np.ndarray, radius: np.ndarray, edges: np.ndarray, clearance: float) -> np.ndarray:
    """Move each node that lies on an edge between two other nodes off it, at right angles to the edge."""
    a, b = xy[edges[:, 0]], xy[edges[:, 1]]
    ab = b - a
    length2 = np.maximum((ab**2).sum(1), 1e-9)
    # projection of every node (rows) on every edge (columns), clipped to the segment
    s = np.clip(((xy[:, None, :] - a[None]) * ab[None]).sum(2) / length2[None], 0.0, 1.0)
    nearest = a[None] + s[..., None] * ab[None]
    away = xy[:, None, :] - nearest
    dist = np.sqrt((away**2).sum(2))
    need = radius[:, None] + clearance
    own = (edges[None, :, 0] == np.arange(len(xy))[:, None]) | (edges[None, :, 1] == np.arange(len(xy))[:, None])
    hit = (dist < need) & ~own & (s > 0.0) & (s < 1.0)
    if not hit.any():
        return np.zeros_like(xy)
    normal = np.stack([-ab[:, 1], ab[:, 0]], 1) / np.sqrt(length2)[:, None]
    side = np.sign((away * normal[None]).sum(2))
    side[side == 0] = 1.0
    step = np.where(hit, need - dist, 0.0)[..., None] * side[..., None] * normal[None]
    return step.sum(1)


def _rect_push(xy: np.ndarray, half: np.ndarray, gap: float) -> tuple[np.ndarray, int]:
    """Half the overlap of every overlapping pair of footprints, along its shallower axis, for each node.

    Returns the moves and the number of overlapping pairs.
    """
    delta = xy[:, None, :] - xy[None, :, :]
    depth = half[:, None, :] + half[None, :, :] + gap - np.abs(delta)
    n = len(xy)
    overlap = (depth > 0).all(2) & ~np.eye(n, dtype=bool)
    if not overlap.any():
        return np.zeros_like(xy), 0
    axis = np.argmin(depth, axis=2)
    direction = np.sign(delta)
    tie = direction == 0  # identical coordinates: the earlier node goes left / down
    earlier = np.broadcast_to((np.arange(n)[:, None] < np.arange(n)[None, :])[..., None], direction.shape)
    direction[tie] = np.where(earlier, -1.0, 1.0)[tie]
    step = np.zeros((n, n, 2))
    for k in (0, 1):
        chosen = overlap & (axis == k)
        step[..., k] = np.where(chosen, 0.5 * depth[..., k] * direction[..., k], 0.0)
    return step.sum(1), int(overlap.sum()) // 2


def overlapping_pairs(xy: np.ndarray, half: np.ndarray, gap: float = 0.0) -> int:
    """How many pairs of footprints (centres ``xy``, half extents ``half``) overlap."""
    depth = half[:, None, :] + half[None, :, :] + gap - np.abs(xy[:, None, :] - xy[None, :, :])
    return int(np.triu((depth > 0).all(2), 1).sum())


def spread(
    xy: np.ndarray,
    half: np.ndarray,
    box: tuple[float, float, float, float],
    *,
    edges: np.ndarray | None = None,
    radius: np.ndarray | None = None,
    gap: float = 3.0,
    clearance: float = 3.0,
    max_iter: int = 1500,
) -> np.ndarray | None:
    """Fit a layout into ``box`` and push its footprints apart; ``None`` where they cannot all fit.

    Parameters
    ----------
    xy
        Positions of a graph layout (any units), one row per node.
    half
        Half width and half height of each node's footprint, in the units of ``box``.
    box
        ``(x0, y0, x1, y1)``: the area the footprints must stay in.
    edges
        Pairs of node indices; a node is kept ``clearance`` beyond its disc off the straight line of
        every edge it is not an end of (as far as that is possible without overlaps).
    radius
        Radius of each node's disc (default: the smaller half extent).
    gap
        Least space between two footprints.
    clearance
        Space kept between a disc and the edges of other nodes.
    max_iter
        Rounds of pushing before giving up.

    Returns
    -------
    Positions in the units of ``box``, or ``None`` when some footprints still overlap.
    """
    low = np.array(box[:2]) + half
    high = np.array(box[2:]) - half
    if (low > high).any():
        return None
    xy = fit_into(np.asarray(xy, float), half, box)
    radius = half.min(1) if radius is None else radius
    edges = np.zeros((0, 2), int) if edges is None else np.asarray(edges, int).reshape(-1, 2)
    pushing, best_off, stalled_off = len(edges) > 0, np.inf, 0
    best_overlap, stalled = np.inf, 0
    for _ in range(max_iter):
        off = _edge_push(xy, radius, edges, clearance) if pushing else np.zeros_like(xy)
        step, overlaps = _rect_push(xy, half, gap)
        n_off = int(off.any(1).sum())
        if overlaps == 0 and n_off == 0:
            return xy
        if pushing:  # give up keeping nodes off edges once that stops improving
            best_off, stalled_off = (n_off, 0) if n_off < best_off else (best_off, stalled_off + 1)
            pushing = stalled_off < STALL
        best_overlap, stalled = (overlaps, 0) if overlaps < best_overlap else (best_overlap, stalled + 1)
        if stalled >= 4 * STALL:
            break
        xy = np.clip(xy + step + 0.5 * off, low, high)
    return xy if overlapping_pairs(xy, half) == 0 else None


def grid(half: np.ndarray, box: tuple[float, float, float, float], order: np.ndarray) -> np.ndarray | None:
    """Footprints on a regular grid filled in ``order`` (the fallback that cannot overlap), or ``None``."""
    cell = 2 * half.max(0)
    columns = int((box[2] - box[0]) // cell[0])
    rows = int((box[3] - box[1]) // cell[1])
    if columns < 1 or rows < 1 or columns * rows < len(half):
        return None
    columns = min(columns, int(np.ceil(np.sqrt(len(half) * (box[2] - box[0]) / (box[3] - box[1])))))
    columns = max(columns, int(np.ceil(len(half) / rows)))
    xy = np.empty((len(half), 2))
    for slot, node in enumerate(order):
        r, c = divmod(slot, columns)
        xy[node] = (box[0] + (c + 0.5) * cell[0], box[3] - (r + 0.5) * cell[1])
    return xy
