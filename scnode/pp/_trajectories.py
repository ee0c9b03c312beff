from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from anndata import AnnData

from ._prepare import prepare_trajectories


def trajectories(
    adata: AnnData,
    *,
    time_key: str = "time",
    trajectory_key: str | None = None,
    layer: str | None = None,
    var_names: Sequence[str] | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Split an AnnData into time-ordered trajectories in the data's own units.

    Observations with identical times in a trajectory are averaged. This is
    :func:`prepare_trajectories` without scaling, trimming or binning.

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
    ts = prepare_trajectories(
        adata,
        time_key=time_key,
        lineage_key=trajectory_key,
        layer=layer,
        genes=var_names,
        scaling="none",
        scale_time=False,
    )
    return ts.times, ts.values, ts.lineages
