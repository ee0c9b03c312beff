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

NAME_SIZE = (4.0, 9.0)
"""Font sizes (points) of the row and column names: the largest that fits, none below the smallest."""


def _strongest(strength: np.ndarray, keep: int) -> np.ndarray:
    """Return the indices (sorted) of the ``keep`` largest entries of ``strength``, none of them zero (at least one)."""
    order = np.argsort(-strength, kind="stable")[:keep]
    nonzero = order[strength[order] > 0]
    return np.sort(nonzero if len(nonzero) else order[:1])


def _as_frame(
    data: AnnData | SparseODE | np.ndarray | pd.DataFrame,
    key: str,
    row_names: Sequence[str] | None,
    col_names: Sequence[str] | None,
    keep: int | None = None,
) -> pd.DataFrame:
    """Return the matrix as a DataFrame; for an AnnData with ``keep``, only its ``keep`` strongest rows, columns.

    The strongest are chosen on the stored (possibly sparse) matrix, so a large ``varp`` is never made
    dense whole; ``frame.attrs["left_out"]`` counts the rows and columns left out.
    """
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, AnnData):
        if key not in data.varp:
            raise KeyError(
                f"adata.varp has no {key!r}; run scn.tl.fit_sparse_ode first (available: {list(data.varp)})."
            )
        m = data.varp[key]
        m = sparse.csr_matrix(m) if sparse.issparse(m) else np.asarray(m)
        rows, cols = np.arange(m.shape[0]), np.arange(m.shape[1])
        if keep is not None and max(m.shape) > keep:
            magnitude = abs(m)
            rows = _strongest(np.asarray(magnitude.sum(1)).ravel(), keep)
            cols = _strongest(np.asarray(magnitude.sum(0)).ravel(), keep)
        block = m[rows][:, cols]
        block = block.toarray() if sparse.issparse(block) else block
        frame = pd.DataFrame(block, index=data.var_names[rows], columns=data.var_names[cols])
        frame.attrs["left_out"] = (m.shape[0] - len(rows), m.shape[1] - len(cols))
        return frame
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


def _name_size(n: int, length: float) -> float | None:
    """Font size that fits ``n`` names side by side along ``length`` points, or ``None`` where none fits."""
    size = min(NAME_SIZE[1], 0.8 * length / max(n, 1))
    return size if size >= NAME_SIZE[0] else None


def adjacency(
    data: AnnData | SparseODE | np.ndarray | pd.DataFrame,
    *,
    key: str = "scnode",
    row_names: Sequence[str] | None = None,
    col_names: Sequence[str] | None = None,
    regulators: Sequence[str] | None = None,
    targets: Sequence[str] | None = None,
    cluster: bool | None = None,
    log: bool = False,
    cmap: str = "viridis",
    max_genes: int | None = 50,
    title: str | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
) -> PlotResult:
    """Heatmap of an adjacency matrix; exact zeros are drawn blank.

    Large matrices are cut to the ``max_genes`` strongest rows and columns (largest sums of
    ``|score|``; rows and columns without any score are left out, e.g. genes that were not fitted)
    unless ``regulators`` / ``targets`` name them; the axes labels say how many were left out, and
    the rows and columns kept are clustered. The figure stays within 16 x 14 inches, and names are
    written where they fit: at the largest font size up to 9 points that the Axes' height (rows) and
    width (columns) allow, and not at all below 4 points.

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
        ``None`` (default): when rows or columns were cut to the strongest (their order in the
        genes is then of no use); never for rows or columns named by ``regulators`` / ``targets``.
    log
        Colour by ``log10`` of the scores.
    cmap
        Colour map.
    max_genes
        Draw at most this many rows and columns (the strongest); ``None``: all.
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
    if max_genes is not None and max_genes < 1:
        raise ValueError(f"max_genes must be >= 1 (or None), got {max_genes}.")
    frame = _as_frame(data, key, row_names, col_names, max_genes if regulators is None and targets is None else None)
    frame = _restrict(_restrict(frame, regulators, "rows"), targets, "columns")
    cut = frame.attrs.get("left_out", (0, 0))
    if max_genes is not None:
        magnitude = np.abs(frame.to_numpy(float))
        rows = np.sort(np.argsort(-magnitude.sum(1), kind="stable")[:max_genes]) if regulators is None else None
        cols = np.sort(np.argsort(-magnitude.sum(0), kind="stable")[:max_genes]) if targets is None else None
        left = (0 if rows is None else frame.shape[0] - len(rows), 0 if cols is None else frame.shape[1] - len(cols))
        frame = frame.iloc[slice(None) if rows is None else rows, slice(None) if cols is None else cols]
        cut = (cut[0] + left[0], cut[1] + left[1])
    if cluster is None:
        cluster = bool(cut[0] or cut[1]) and regulators is None and targets is None
    if cluster:
        magnitude = np.abs(frame.to_numpy(float))
        frame = frame.iloc[_leaf_order(magnitude), _leaf_order(magnitude.T)]
    values = frame.to_numpy(float)
    shown = np.where(values == 0, np.nan, values)  # exact zeros blank
    if log:
        shown = np.log10(np.abs(shown))
    width, height = min(0.45 * values.shape[1] + 2.5, 16.0), min(0.45 * values.shape[0] + 1.5, 14.0)
    ax = get_ax(ax, (width, height))
    image = ax.imshow(np.ma.masked_invalid(shown), cmap=cmap, aspect="auto", interpolation="nearest")
    ax.figure.colorbar(image, ax=ax, label="log10 score" if log else "score")
    box = ax.get_window_extent()
    across, down = (extent * 72.0 / ax.figure.dpi for extent in (box.width, box.height))
    size = _name_size(values.shape[1], across)
    if size is None:
        ax.set_xticks([])
    else:
        ax.set_xticks(range(values.shape[1]), [str(c) for c in frame.columns], rotation=90, fontsize=size)
    size = _name_size(values.shape[0], down)
    if size is None:
        ax.set_yticks([])
    else:
        ax.set_yticks(range(values.shape[0]), [str(r) for r in frame.index], fontsize=size)
    if cut[0]:
        ax.set_ylabel(f"{values.shape[0]} strongest rows ({cut[0]} not shown)")
    if cut[1]:
        ax.set_xlabel(f"{values.shape[1]} strongest columns ({cut[1]} not shown)")
    frame.attrs["left_out"] = cut
    if title:
        ax.set_title(title)
    finish(show)
    return PlotResult(ax, frame)
