from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse


def trajectories(
    adata: AnnData,
    *,
    time_key: str = "time",
    trajectory_key: str | None = None,
    layer: str | None = None,
    var_names: Sequence[str] | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Split an AnnData into time-ordered trajectories.

    Observations with identical times in a trajectory are averaged.

    Parameters
    ----------
    adata
        Observations in ``obs``, variables in ``var``.
    time_key
        Column of ``obs`` with the time (or pseudotime).
    trajectory_key
        Categorical column of ``obs`` naming the trajectory (lineage) of each observation;
        ``None`` for one trajectory.
    layer
        Layer to read instead of ``X``.
    var_names
        Variables to use (default: all).

    Returns
    -------
    times
        One sorted array of distinct times per trajectory.
    values
        One ``(len(times), n_vars)`` array per trajectory.
    names
        Trajectory names, in ``obs[trajectory_key]``'s category order.
    """
    if time_key not in adata.obs:
        raise KeyError(f"adata.obs has no time column {time_key!r}; available: {list(adata.obs.columns)}.")
    if trajectory_key is not None and trajectory_key not in adata.obs:
        raise KeyError(f"adata.obs has no column {trajectory_key!r}; available: {list(adata.obs.columns)}.")
    if layer is not None and layer not in adata.layers:
        raise KeyError(f"adata.layers has no layer {layer!r}; available: {list(adata.layers)}.")
    view = adata if var_names is None else adata[:, list(var_names)]
    x = view.X if layer is None else view.layers[layer]
    x = np.asarray(x.toarray() if sparse.issparse(x) else x, dtype=float)
    t = pd.to_numeric(adata.obs[time_key], errors="coerce").to_numpy(float)
    if not np.isfinite(t).all():
        raise ValueError(f"adata.obs[{time_key!r}] has NaN, infinite or non-numeric values.")
    if not np.isfinite(x).all():
        raise ValueError("The expression matrix has NaN or infinite values.")
    groups = (
        pd.Series("all", index=adata.obs_names).astype("category")
        if trajectory_key is None
        else adata.obs[trajectory_key].astype("category")
    )
    times, values, names = [], [], []
    for name in groups.cat.categories:
        sel = (groups == name).to_numpy()
        if not sel.any():
            continue
        frame = pd.DataFrame(x[sel]).groupby(t[sel]).mean()
        times.append(frame.index.to_numpy(float))
        values.append(frame.to_numpy(float))
        names.append(str(name))
    return times, values, names
