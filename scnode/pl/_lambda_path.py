from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes

from ._utils import PlotResult, finish, get_ax

REQUIRED = ("lam", "train_mse", "val_mse")


def _table(data: AnnData | pd.DataFrame, key: str) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        table = data.copy()
    elif isinstance(data, AnnData):
        record = data.uns.get(key)
        path = record.get("path") if hasattr(record, "get") else None
        if path is None:
            raise KeyError(
                f"adata.uns[{key!r}] has no 'path'; run scnode.tl.lambda_path (or fit_sparse_ode, lam='auto') first."
            )
        table = pd.DataFrame({k: np.asarray(v) for k, v in path["table"].items()})
    else:
        raise TypeError(f"Expected an AnnData or the table of scnode.tl.lambda_path, got {type(data).__name__}.")
    missing = [c for c in REQUIRED if c not in table]
    if missing:
        raise KeyError(f"The lambda path lacks column(s) {missing}; use the table of scnode.tl.lambda_path.")
    if table.empty:
        raise ValueError("The lambda path is empty.")
    return table


def lambda_path(
    data: AnnData | pd.DataFrame,
    *,
    key: str = "scnode",
    ax: Axes | None = None,
    show: bool | None = None,
) -> PlotResult:
    """Training and validation MSE along a regularization path, with sparsity on a twin axis.

    The selected penalty weight (column ``selected``) is marked by a vertical line, the searched range
    (from the smallest to the largest fitted ``lam``) by a shaded band; fits that a search added to a
    given grid (``stage`` ``"extended"`` or ``"refined"``) are drawn as open markers. The x axis is
    logarithmic (symmetric-logarithmic when the path includes ``lam = 0``), the MSE axis logarithmic.

    Parameters
    ----------
    data
        An AnnData after :func:`scnode.tl.lambda_path` or an automatic :func:`scnode.tl.fit_sparse_ode`
        (``uns[key]["path"]``), or the table it returns.
    key
        Key of the fit in ``uns``.
    ax
        Axes to draw into (the sparsities go on a twin of it).
    show
        Show the figure (default: in interactive sessions).

    Returns
    -------
    :class:`PlotResult` with the main Axes and the path drawn (a DataFrame, one row per ``lam``).
    """
    table = _table(data, key)
    lam = table["lam"].to_numpy(float)
    order = np.argsort(lam, kind="stable")
    ax = get_ax(ax, (6.0, 4.0))
    ax.axvspan(lam.min(), lam.max(), color="0.93", zorder=0, label=f"searched {lam.min():g}-{lam.max():g}")
    ax.plot(lam[order], table["train_mse"].to_numpy(float)[order], "o-", color="C0", label="train MSE")
    ax.plot(lam[order], table["val_mse"].to_numpy(float)[order], "s-", color="C1", label="validation MSE")
    if "stage" in table:
        added = (table["stage"].astype(str) != "grid").to_numpy()
        if added.any():
            ax.plot(
                lam[added],
                table["val_mse"].to_numpy(float)[added],
                "s",
                mfc="white",
                color="C1",
                label="added by search",
            )
    positive = lam[lam > 0]
    if (lam <= 0).any():
        ax.set_xscale("symlog", linthresh=positive.min() if len(positive) else 1.0)
    else:
        ax.set_xscale("log")
    ax.set_yscale("log", nonpositive="mask")
    ax.set_xlabel("lam")
    ax.set_ylabel("MSE")
    if "selected" in table and table["selected"].astype(bool).any():
        chosen = float(table.loc[table["selected"].astype(bool), "lam"].iloc[0])
        ax.axvline(chosen, color="black", ls="--", lw=1, label=f"selected lam = {chosen:g}")
    handles, labels = ax.get_legend_handles_labels()
    sparsity = [c for c in ("feature_sparsity", "edge_share") if c in table]
    if sparsity:
        twin = ax.twinx()
        for i, name in enumerate(sparsity):
            twin.plot(lam[order], table[name].to_numpy(float)[order], "^:", color=f"C{i + 2}", label=name)
        twin.set_ylim(-0.02, 1.02)
        twin.set_ylabel("share")
        more_handles, more_labels = twin.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    ax.legend(handles, labels, fontsize="small")
    finish(show)
    return PlotResult(ax, table)
