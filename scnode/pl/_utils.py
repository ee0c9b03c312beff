from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes


@dataclass
class PlotResult:
    """What a plot drew: its Axes (an array of them for multi-panel plots) and the data behind it."""

    ax: Axes | np.ndarray
    data: Any


def get_ax(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    """``ax`` or a new one."""
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def finish(show: bool | None) -> None:
    """Show the figure when asked (default: only in interactive backends)."""
    if show is None:
        show = plt.isinteractive()
    if show:
        plt.show()


def fit_record(adata: Any, key: str) -> dict:
    """``adata.uns[key]`` as written by :func:`scnode.tl.fit_sparse_ode`, with a clear error when absent."""
    if key not in adata.uns:
        raise KeyError(f"adata.uns has no {key!r}; run scnode.tl.fit_sparse_ode first (available: {list(adata.uns)}).")
    return adata.uns[key]


def lineage_colors(names: Any) -> dict[str, str]:
    """One colour of the default cycle per lineage name, in order of first appearance."""
    return {name: f"C{i % 10}" for i, name in enumerate(dict.fromkeys(map(str, names)))}


def prediction_columns(prediction: Any, time_key: str | None, lineage_key: str | None) -> tuple[str, str]:
    """Find the time and lineage columns of a trajectory AnnData from :func:`scnode.tl.predict`.

    Given keys are checked; missing ones are found as :func:`scnode.tl.predict` writes them: the time
    column first, then ``scaled_time``, the lineage column and ``extrapolated``.
    """
    obs = prediction.obs
    if "extrapolated" not in obs:
        raise KeyError("The prediction has no obs['extrapolated']; pass an AnnData from scnode.tl.predict.")
    rest = [c for c in obs.columns if c not in ("scaled_time", "extrapolated", "intervened")]
    if time_key is None:
        numeric = [c for c in rest if pd.api.types.is_numeric_dtype(obs[c])]
        if not numeric:
            raise KeyError("The prediction has no numeric time column in obs; pass an AnnData from scnode.tl.predict.")
        time_key = numeric[0]
    if lineage_key is None:
        lineage_key = "lineage" if "lineage" in obs else next((c for c in rest if c != time_key), None)
    for what, column in (("time", time_key), ("lineage", lineage_key)):
        if column is None or column not in obs:
            raise KeyError(f"The prediction has no {what} column {column!r} in obs (available: {list(obs.columns)}).")
    return time_key, lineage_key


def gene_panels(axs: Axes | Sequence[Axes] | np.ndarray | None, n: int) -> np.ndarray:
    """Return ``n`` Axes, one per gene: those given (``axs``) or a new figure of up to three panels per row."""
    if axs is None:
        ncols = min(n, 3)
        nrows = -(-n // ncols)
        _, grid = plt.subplots(nrows, ncols, figsize=(4.0 * ncols, 3.0 * nrows), squeeze=False, layout="constrained")
        grid = grid.ravel()
        for extra in grid[n:]:
            extra.set_visible(False)
        return grid[:n]
    panels = np.atleast_1d(np.asarray(axs, dtype=object)).ravel()
    if len(panels) < n:
        raise ValueError(f"Need one Axes per gene: got {len(panels)} Axes for {n} genes.")
    return panels[:n]
