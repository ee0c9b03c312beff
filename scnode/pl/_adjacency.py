from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes
from scipy import sparse

from ..model import SparseODE
from ._utils import PlotResult, finish, get_ax


def _as_frame(
    data: AnnData | SparseODE | np.ndarray | pd.DataFrame,
    key: str,
    row_names: Sequence[str] | None,
    col_names: Sequence[str] | None,
) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, AnnData):
        if key not in data.varp:
            raise KeyError(
                f"adata.varp has no {key!r}; run scn.tl.fit_sparse_ode first (available: {list(data.varp)})."
            )
        m = data.varp[key]
        m = m.toarray() if sparse.issparse(m) else np.asarray(m)
        return pd.DataFrame(m, index=data.var_names, columns=data.var_names)
    if isinstance(data, SparseODE):
        m = data.adjacency()
        names = data.config.var_names or [f"x{i}" for i in range(data.config.n_vars)]
        cols = list(names) if data.config.order == 1 else [*names, *(f"d{n}/dt" for n in names)]
        rows = [f"d{n}/dt" if data.config.order == 1 else f"d²{n}/dt²" for n in names]
        return pd.DataFrame(m, index=row_names or rows, columns=col_names or cols)
    m = np.asarray(data, float)
    if m.ndim != 2:
        raise ValueError(f"An adjacency matrix must be 2-D, got shape {m.shape}.")
    return pd.DataFrame(m, index=row_names, columns=col_names)


def adjacency(
    data: AnnData | SparseODE | np.ndarray | pd.DataFrame,
    *,
    key: str = "scnode",
    row_names: Sequence[str] | None = None,
    col_names: Sequence[str] | None = None,
    log: bool = False,
    cmap: str = "viridis",
    title: str | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
) -> PlotResult:
    """Heatmap of an adjacency matrix; exact zeros are drawn blank.

    Parameters
    ----------
    data
        An AnnData with ``varp[key]`` (rows = regulators, columns = targets), a fitted
        :class:`~scnode.SparseODE` (rows = outputs, columns = inputs), or a matrix.
    key
        Key in ``adata.varp``.
    row_names, col_names
        Labels of a plain matrix (or to override a model's).
    log
        Colour by ``log10`` of the scores.
    cmap
        Colour map.
    title
        Axes title.
    ax
        Axes to draw into.
    show
        Show the figure (default: in interactive sessions).

    Returns
    -------
    :class:`PlotResult` with the Axes and the matrix drawn (a DataFrame).
    """
    frame = _as_frame(data, key, row_names, col_names)
    values = frame.to_numpy(float)
    shown = np.where(values == 0, np.nan, np.log10(np.abs(values)) if log else values)
    ax = get_ax(ax, (0.45 * values.shape[1] + 2.5, 0.45 * values.shape[0] + 1.5))
    image = ax.imshow(np.ma.masked_invalid(shown), cmap=cmap, aspect="auto")
    ax.figure.colorbar(image, ax=ax, label="log10 score" if log else "score")
    ax.set_xticks(range(values.shape[1]), [str(c) for c in frame.columns], rotation=90)
    ax.set_yticks(range(values.shape[0]), [str(r) for r in frame.index])
    if title:
        ax.set_title(title)
    finish(show)
    return PlotResult(ax, frame)
