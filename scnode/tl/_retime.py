"""Re-time cells by a fitted model: each cell moves to the time of the nearest state on its trajectory's path.

A pseudotime is distance in expression space, not time: where genes rise and later fall again, or a
system returns near its start, it places early cells among late ones, and a field fitted to that
order learns the mixed phases. The fitted path from a trajectory's initial state visits the states
in the order the field moves through them; timing each cell by the nearest state of that path and
fitting again (``fit_sparse_ode(refine_time=n)``) alternates the two estimates, as latent-time
methods do (scVelo's latent time, RegVelo).
"""

from __future__ import annotations

import numpy as np
from anndata import AnnData
from scipy import sparse
from scipy.stats import spearmanr

from ..model import SparseODE
from ..pp import TrajectorySet
from ..pp._prepare import _matrix
from ._utils import initial_velocities

GRID_PER_BIN = 4
"""Points of the fitted path per time point of the trajectory (at least 200 in all)."""
CHUNK = 4096
"""Cells per distance block."""
MIN_TIMES = 3
"""A trajectory is re-timed only if its cells then take at least this many distinct times after the
preprocessing's trims (what a fit needs): a path that does not move (a knockout that leaves every
level where it starts) cannot order its cells, and they keep their times."""


def _orderable(new: np.ndarray, trim_start: int, trim_end: int) -> bool:
    """Whether ``new`` keeps :data:`MIN_TIMES` distinct times without its ``trim_start`` lowest, ``trim_end`` highest.

    The next fit trims the trajectory's cells, these and those trimmed before, by time: it drops at
    most ``trim_start`` of these from below and ``trim_end`` from above, so what is left here is
    left there too.
    """
    kept = np.sort(new)[trim_start : len(new) - trim_end]
    return len(np.unique(kept)) >= MIN_TIMES


def _nearest(cells: np.ndarray | sparse.csr_matrix, path: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest row of ``path`` for each row of ``cells`` and the distance to it."""
    path_sq = (path**2).sum(1)
    index = np.empty(cells.shape[0], dtype=int)
    dist = np.empty(cells.shape[0])
    for lo in range(0, cells.shape[0], CHUNK):
        block = cells[lo : lo + CHUNK]
        block = block.toarray() if sparse.issparse(block) else block
        d2 = (block**2).sum(1)[:, None] - 2 * block @ path.T + path_sq[None]
        index[lo : lo + CHUNK] = d2.argmin(1)
        dist[lo : lo + CHUNK] = np.sqrt(np.maximum(d2.min(1), 0.0))
    return index, dist


def retime_cells(adata: AnnData, model: SparseODE, ts: TrajectorySet, layer: str | None = None) -> dict:
    """Time each cell of a fit by the nearest state of its trajectory's fitted path.

    Parameters
    ----------
    adata
        The cells the model was fitted to.
    model
        The fitted model.
    ts
        Its trajectories (:func:`scnode.pp.prepare_trajectories` of ``adata``).
    layer
        The layer fitted instead of ``X``.

    Returns
    -------
    ``time``: ``(n_obs,)`` new times in the units of the old ones (NaN for cells not fitted, and
    for the cells of a trajectory whose path cannot order them: see :data:`MIN_TIMES`);
    ``spearman``: rank correlation of the new times with the old ones over the fitted cells
    (per trajectory, averaged); ``distance``: the cells' mean distance to their path (scaled units,
    root of the summed squares over genes); ``unordered``: the names of the trajectories left as they were.
    """
    x = _matrix(adata, layer, ts.genes)
    v0 = initial_velocities(model, ts)
    new = np.full(adata.n_obs, np.nan)
    rhos, dists, unordered = [], [], []
    trims = (int(ts.params.get("trim_start", 0)), int(ts.params.get("trim_end", 0)))
    for k, t in enumerate(ts.times):
        cells = np.flatnonzero(ts.cell_lineage == k)
        if len(cells) == 0:
            continue
        grid = np.linspace(t[0], t[-1], max(200, GRID_PER_BIN * len(t)))
        path = model.predict(grid, ts.x0[k], v0=None if v0 is None else v0[k], held=ts.held_rows(k, 1))
        path = np.asarray(path, float)[:, : len(ts.genes)]  # scaled units
        # scaled cell = x / scale - center / scale: divide the cells (sparse ones stay sparse), shift the path
        xc = x[cells]
        xc = sparse.csr_matrix(xc.multiply(1.0 / ts.scale[k])) if sparse.issparse(xc) else xc / ts.scale[k]
        index, dist = _nearest(xc, path + ts.center[k] / ts.scale[k])
        timed = grid[index] * ts.time_scale[k] + ts.time_offset[k]
        if len(np.unique(timed)) > 1 and len(np.unique(ts.cell_time[cells])) > 1:
            rhos.append(float(spearmanr(timed, ts.cell_time[cells])[0]))
        dists.append(float(dist.mean()))
        if _orderable(timed, *trims):
            new[cells] = timed
        else:
            unordered.append(ts.lineages[k])
    return {
        "time": new,
        "spearman": float(np.mean(rhos)) if rhos else float("nan"),
        "distance": float(np.mean(dists)) if dists else float("nan"),
        "unordered": unordered,
    }
