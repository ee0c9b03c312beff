"""State bins: average the cells that share a state, not those that share a pseudotime.

A pseudotime is noisy: cells of one state get scattered times, and cells of distinct states share
one. Equal-width time bins then average over distinct states, which blurs the trajectory in time
(on switch-like networks, a regulator's switch and its target's response merge). State bins cluster
a trajectory's cells by expression (k-means) and place each cluster at its cells' mean pseudotime:
a bin holds one state, and its time averages the noise of its cells' times.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

STATE_COMPONENTS = 50
"""Above this many genes, cells are clustered on their leading principal components (of the scaled
expression), not on every gene."""
KMEANS_INIT = 3
"""k-means restarts (the best of them is kept)."""
TIME_DIGITS = 6
"""Clusters' times are rounded to this many digits of the trajectory's time span: those that would be
equal in float32 (the fit's precision) become one bin."""


def state_bin_times(
    x: np.ndarray | sparse.csr_matrix,
    center: np.ndarray,
    scale: np.ndarray,
    times: np.ndarray,
    n_bins: int,
    random_state: int = 0,
) -> np.ndarray:
    """Each cell's bin, given as its bin's time: the mean time of the cells k-means clusters with it.

    Parameters
    ----------
    x
        One trajectory's cells, ``(cells, genes)``, unscaled (dense or sparse).
    center, scale
        The genes' scaling: cells are clustered on ``(x - center) / scale``.
    times
        The cells' (scaled) times.
    n_bins
        Clusters (at most the number of distinct cells).
    random_state
        Seed of k-means and of the randomized principal components.

    Returns
    -------
    ``(cells,)``: the time of each cell's cluster. Cells with equal values share a bin, so grouping
    cells by these keys gives the bins in time order (clusters at equal times merge).
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    dense = x.toarray() if sparse.issparse(x) else np.asarray(x)
    z = ((dense - center) / scale).astype(np.float32)
    if z.shape[1] > STATE_COMPONENTS and z.shape[0] > STATE_COMPONENTS:
        z = PCA(STATE_COMPONENTS, svd_solver="randomized", random_state=random_state).fit_transform(z)
    k = min(n_bins, len(np.unique(z, axis=0)))
    labels = KMeans(n_clusters=k, n_init=KMEANS_INIT, random_state=random_state).fit_predict(z)
    counts = np.bincount(labels, minlength=k)
    cluster_time = np.bincount(labels, weights=times, minlength=k) / np.maximum(counts, 1)
    start, span = float(times.min()), float(np.ptp(times))
    if span > 0:  # clusters closer in time than 1e-6 of the span share a bin (times become float32 later)
        cluster_time = start + np.round((cluster_time - start) / span, TIME_DIGITS) * span
    return cluster_time[labels]
