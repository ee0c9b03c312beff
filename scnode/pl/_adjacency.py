from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes
from scipy import sparse
from scipy.cluster.hierarchy import leaves_list, linkage

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


def _restrict(frame: pd.DataFrame, names: Sequence[str] | None, axis: str) -> pd.DataFrame:
    """Keep the rows (``axis="rows"``) or columns named in ``names``, in that order."""
    if names is None:
        return frame
    names = [names] if isinstance(names, str) else list(names)
    labels = frame.index if axis == "rows" else frame.columns
    unknown = [n for n in names if n not in labels]
    if unknown:
        what = "regulator(s)" if axis == "rows" else "target(s)"
        more = " ..." if len(labels) > 10 else ""
        raise KeyError(f"Unknown {what} {unknown[:10]}; the matrix's {axis} are {[str(x) for x in labels[:10]]}{more}.")
    if not names:
        raise ValueError(f"Keep at least one of the {axis}.")
    return frame.loc[names] if axis == "rows" else frame.loc[:, names]


def _leaf_order(values: np.ndarray) -> np.ndarray:
    """Order of the rows of ``values`` by average-linkage clustering (Euclidean)."""
    if len(values) < 3:
        return np.arange(len(values))
    return leaves_list(linkage(values, method="average", metric="euclidean"))


def adjacency(
    data: AnnData | SparseODE | np.ndarray | pd.DataFrame,
    *,
    key: str = "scnode",
    row_names: Sequence[str] | None = None,
    col_names: Sequence[str] | None = None,
    regulators: Sequence[str] | None = None,
    targets: Sequence[str] | None = None,
    cluster: bool = False,
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
    regulators
        Draw only these rows, in this order: regulators (e.g. transcription factors) of an AnnData's
        ``varp``, outputs of a model. Unknown names raise a :class:`KeyError`.
    targets
        Draw only these columns (targets of ``varp``, inputs of a model), in this order.
    cluster
        Reorder rows and columns by hierarchical clustering (average linkage) of ``|matrix|``.
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
    :class:`PlotResult` with the Axes and the matrix drawn (a DataFrame, in the drawn order).
    """
    frame = _as_frame(data, key, row_names, col_names)
    frame = _restrict(_restrict(frame, regulators, "rows"), targets, "columns")
    if cluster:
        magnitude = np.abs(frame.to_numpy(float))
        frame = frame.iloc[_leaf_order(magnitude), _leaf_order(magnitude.T)]
    values = frame.to_numpy(float)
    shown = np.where(values == 0, np.nan, values)  # exact zeros blank
    if log:
        shown = np.log10(np.abs(shown))
    ax = get_ax(ax, (0.45 * values.shape[1] + 2.5, 0.45 * values.shape[0] + 1.5))
    image = ax.imshow(np.ma.masked_invalid(shown), cmap=cmap, aspect="auto")
    ax.figure.colorbar(image, ax=ax, label="log10 score" if log else "score")
    ax.set_xticks(range(values.shape[1]), [str(c) for c in frame.columns], rotation=90)
    ax.set_yticks(range(values.shape[0]), [str(r) for r in frame.index])
    if title:
        ax.set_title(title)
    finish(show)
    return PlotResult(ax, frame)
