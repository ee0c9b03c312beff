from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes
from scipy import sparse

from ..model import SparseODE
from ._utils import PlotResult, finish, lineage_colors, prediction_columns

COLUMNS = ["gene", "lineage", "time", "value", "kind"]


def _column(m: np.ndarray | sparse.spmatrix, j: int) -> np.ndarray:
    col = m[:, j]
    col = col.toarray() if sparse.issparse(col) else np.asarray(col)
    return col.ravel().astype(float)


def _observed(adata: AnnData, genes: list[str], time_key: str, lineage_key: str | None, layer: str | None):
    if time_key not in adata.obs:
        raise KeyError(f"adata.obs has no time column {time_key!r}; available: {list(adata.obs.columns)}.")
    if lineage_key is not None and lineage_key not in adata.obs:
        raise KeyError(f"adata.obs has no lineage column {lineage_key!r}; available: {list(adata.obs.columns)}.")
    if layer is not None and layer not in adata.layers:
        raise KeyError(f"adata.layers has no {layer!r} (the layer of the fit); available: {list(adata.layers)}.")
    matrix = adata.X if layer is None else adata.layers[layer]
    time = pd.to_numeric(adata.obs[time_key]).to_numpy(float)
    lineage = np.full(adata.n_obs, "all", object) if lineage_key is None else adata.obs[lineage_key].astype(str)
    frames = [
        pd.DataFrame(
            {
                "gene": gene,
                "lineage": np.asarray(lineage),
                "time": time,
                "value": _column(matrix, adata.var_names.get_loc(gene)),
                "kind": "observed",
            }
        )
        for gene in genes
    ]
    return pd.concat(frames, ignore_index=True)


def _curve_from_prediction(prediction: AnnData, genes: list[str], time_key: str, lineage_key: str) -> pd.DataFrame:
    missing = [g for g in genes if g not in prediction.var_names]
    if missing:
        raise KeyError(f"Gene(s) {missing} are not in the prediction (genes: {list(prediction.var_names)[:10]}).")
    time_key, lineage_key = prediction_columns(prediction, time_key, lineage_key)
    obs = prediction.obs
    kind = np.where(obs["extrapolated"].to_numpy(bool), "extrapolated", "fitted")
    frames = [
        pd.DataFrame(
            {
                "gene": gene,
                "lineage": obs[lineage_key].astype(str).to_numpy(),
                "time": obs[time_key].to_numpy(float),
                "value": _column(prediction.X, prediction.var_names.get_loc(gene)),
                "kind": kind,
            }
        )
        for gene in genes
    ]
    return pd.concat(frames, ignore_index=True)


def _curve_from_layer(adata: AnnData, genes: list[str], key: str, observed: pd.DataFrame) -> pd.DataFrame:
    layer = f"{key}_fitted"
    if layer not in adata.layers:
        raise KeyError(
            f"adata.layers has no {layer!r}; run scnode.tl.fit_sparse_ode first, or pass prediction= or model=."
        )
    fitted = adata.layers[layer]
    frames = []
    for gene in genes:
        part = observed[observed["gene"] == gene].assign(value=_column(fitted, adata.var_names.get_loc(gene)))
        part = part[np.isfinite(part["value"])].assign(kind="fitted")
        frames.append(part.sort_values(["lineage", "time"], kind="stable"))
    return pd.concat(frames, ignore_index=True)


def _panels(axs: Axes | Sequence[Axes] | np.ndarray | None, n: int) -> np.ndarray:
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


def gene_trends(
    adata: AnnData,
    genes: str | Sequence[str],
    *,
    prediction: AnnData | None = None,
    model: SparseODE | None = None,
    extrapolate: float = 0.0,
    key: str = "scnode",
    time_key: str | None = None,
    lineage_key: str | None = None,
    point_size: float = 6.0,
    axs: Axes | Sequence[Axes] | np.ndarray | None = None,
    show: bool | None = None,
) -> PlotResult:
    """Observed expression against (pseudo)time with the model's trajectory, one panel per gene.

    Cells are drawn as small dots coloured by lineage, in the units of the fitted data (the layer
    recorded by the fit). The model's curve (one per lineage) is solid within the observed time range
    and dashed where it is extrapolated.

    Parameters
    ----------
    adata
        The cells (fitted with :func:`scnode.tl.fit_sparse_ode` unless ``time_key`` and a curve
        source are given).
    genes
        Gene name(s) to draw.
    prediction
        Model trajectories from :func:`scnode.tl.predict` to draw as curves.
    model
        Without ``prediction``: a fitted model, integrated with :func:`scnode.tl.predict` on ``adata``.
        Without either, the curves are the fitted values ``adata.layers[f"{key}_fitted"]`` (cells
        sorted by time, per lineage).
    extrapolate
        With ``model``: how far to integrate beyond each lineage's last time (fraction of its span).
    key
        Key of the fit in ``uns`` (and prefix of its ``layers``).
    time_key, lineage_key
        Time and lineage columns of ``obs``; default: those of the fit (``adata.uns[key]["params"]``).
    point_size
        Size of the cells' dots.
    axs
        One Axes per gene (default: a new figure with up to three panels per row).
    show
        Show the figure (default: in interactive sessions).

    Returns
    -------
    :class:`PlotResult` with an array of Axes (one per gene) and the data drawn: a long DataFrame with
    columns ``gene``, ``lineage``, ``time``, ``value`` and ``kind`` (``"observed"`` for cells,
    ``"fitted"`` and ``"extrapolated"`` for the model's curve).
    """
    genes = [genes] if isinstance(genes, str) else [str(g) for g in genes]
    if not genes:
        raise ValueError("Pass at least one gene.")
    unknown = [g for g in genes if g not in adata.var_names]
    if unknown:
        raise KeyError(f"Gene(s) {unknown} are not in adata.var_names.")
    params = adata.uns.get(key, {}).get("params", {})
    if time_key is None:
        if "time_key" not in params:
            raise KeyError(
                f"adata.uns[{key!r}]['params'] has no 'time_key'; run scnode.tl.fit_sparse_ode first or pass time_key=."
            )
        time_key = params["time_key"]
    if lineage_key is None:
        lineage_key = params.get("lineage_key")
    observed = _observed(adata, genes, time_key, lineage_key, params.get("layer"))

    if prediction is None and model is not None:
        from ..tl import predict

        prediction = predict(adata, model, extrapolate=extrapolate)
    if prediction is not None:
        curve = _curve_from_prediction(prediction, genes, time_key, lineage_key or "lineage")
    else:
        fitted_genes = adata.uns.get(key, {}).get("genes")
        if fitted_genes is not None:
            unfitted = [g for g in genes if g not in set(map(str, fitted_genes))]
            if unfitted:
                raise KeyError(f"Gene(s) {unfitted} were not fitted (adata.uns[{key!r}]['genes']).")
        curve = _curve_from_layer(adata, genes, key, observed)

    data = pd.concat([observed, curve], ignore_index=True)[COLUMNS]
    colors = lineage_colors([*observed["lineage"], *curve["lineage"]])
    panels = _panels(axs, len(genes))
    for ax, gene in zip(panels, genes, strict=True):
        cells = observed[observed["gene"] == gene]
        for name, part in cells.groupby("lineage", sort=False):
            ax.scatter(part["time"], part["value"], s=point_size, color=colors[name], alpha=0.5, linewidths=0)
        lines = curve[curve["gene"] == gene]
        for name, part in lines.groupby("lineage", sort=False):
            inside = part["kind"].to_numpy() == "fitted"
            t, v = part["time"].to_numpy(), part["value"].to_numpy()
            if inside.any():
                ax.plot(t[inside], v[inside], color=colors[name], lw=2, label=name)
            outside = np.flatnonzero(~inside)
            if len(outside):
                if outside[0] > 0:  # start the dashed part at the last fitted point: one connected curve
                    outside = np.r_[outside[0] - 1, outside]
                label = None if inside.any() else name
                ax.plot(t[outside], v[outside], color=colors[name], lw=2, ls="--", label=label)
        ax.set_title(gene)
        ax.set_xlabel(time_key)
        ax.set_ylabel("expression")
    if len(colors) > 1:
        panels[0].legend(title=lineage_key, fontsize="small")
    finish(show)
    return PlotResult(panels, data)
