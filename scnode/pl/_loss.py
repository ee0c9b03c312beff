from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes

from ..model import SparseODE
from ._utils import PlotResult, finish, fit_record, get_ax

CURVES = ("loss", "mse", "penalty")


def _history(data: AnnData | SparseODE, key: str) -> pd.DataFrame:
    if isinstance(data, SparseODE):
        record = data.history.as_dict()
    elif isinstance(data, AnnData):
        fit = fit_record(data, key)
        if "history" not in fit:
            raise KeyError(f"adata.uns[{key!r}] has no 'history'; run scnode.tl.fit_sparse_ode first.")
        record = fit["history"]
    else:
        raise TypeError(f"Expected an AnnData or a fitted scnode.SparseODE, got {type(data).__name__}.")
    columns = {k: pd.Series(np.asarray(v, float)) for k, v in record.items() if k != "interrupted"}
    history = pd.DataFrame(columns)
    if history.empty or "loss" not in history:
        raise ValueError("The training history is empty; fit the model first.")
    history.index.name = "iteration"
    return history


def loss(
    data: AnnData | SparseODE,
    *,
    key: str = "scnode",
    log: bool = True,
    ax: Axes | None = None,
    show: bool | None = None,
) -> PlotResult:
    """Training curves: loss, MSE and penalty per iteration, and the learning rate on a twin axis.

    Parameters
    ----------
    data
        An AnnData fitted with :func:`scnode.tl.fit_sparse_ode` (``uns[key]["history"]``) or a fitted
        :class:`~scnode.SparseODE` (its ``history``).
    key
        Key of the fit in ``uns``.
    log
        Logarithmic y axes (non-positive values are left out).
    ax
        Axes to draw into (the learning rate goes on a twin of it).
    show
        Show the figure (default: in interactive sessions).

    Returns
    -------
    :class:`PlotResult` with the main Axes and the history drawn: a DataFrame indexed by iteration with
    columns ``loss``, ``mse``, ``penalty``, ``lr`` and ``nfe`` (as recorded).
    """
    history = _history(data, key)
    ax = get_ax(ax, (6.0, 4.0))
    iteration = history.index.to_numpy()
    for i, name in enumerate(CURVES):
        if name in history and history[name].notna().any():
            ax.plot(iteration, history[name].to_numpy(), color=f"C{i}", lw=1.5, label=name)
    if log:
        ax.set_yscale("log", nonpositive="mask")
    ax.set_xlabel("iteration")
    ax.set_ylabel("objective")
    handles, labels = ax.get_legend_handles_labels()
    if "lr" in history and history["lr"].notna().any():
        twin = ax.twinx()
        twin.plot(iteration, history["lr"].to_numpy(), color="grey", lw=1, ls=":", label="lr")
        if log:
            twin.set_yscale("log", nonpositive="mask")
        twin.set_ylabel("learning rate")
        more_handles, more_labels = twin.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    ax.legend(handles, labels, fontsize="small")
    finish(show)
    return PlotResult(ax, history)
