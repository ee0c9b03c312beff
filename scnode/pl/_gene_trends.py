from __future__ import annotations

from collections.abc import Sequence

import matplotlib.patheffects as patheffects
import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from scipy import sparse

from ..model import SparseODE
from ._utils import PlotResult, finish, gene_panels, lineage_colors, prediction_columns

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


def _binned(observed: pd.DataFrame, n_bins: int) -> pd.DataFrame:
    """Mean and standard deviation of the cells per gene, lineage and time bin (bins of 3 cells or more).

    Each lineage's observed time range is cut into ``n_bins`` bins of equal width; a bin's time is the
    mean time of its cells.
    """
    frames = []
    for (gene, name), part in observed.groupby(["gene", "lineage"], sort=False):
        t = part["time"].to_numpy(float)
        edges = np.linspace(t.min(), t.max(), n_bins + 1)
        which = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, n_bins - 1)
        stats = part.assign(bin=which).groupby("bin")[["time", "value"]].agg(["mean", "std", "size"])
        stats = stats[stats[("value", "size")] >= 3]
        frames.append(
            pd.DataFrame(
                {
                    "gene": gene,
                    "lineage": name,
                    "time": stats[("time", "mean")].to_numpy(float),
                    "value": stats[("value", "mean")].to_numpy(float),
                    "kind": "binned",
                    "sd": stats[("value", "std")].to_numpy(float),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _limits(values: list[np.ndarray], beyond: np.ndarray) -> tuple[float, float, float | None]:
    """Y limits around the data, the fit and the bins; the extrapolation may add half the range each side.

    Returns the limits and, when the extrapolated curve leaves them, its farthest value.
    """
    shown = np.concatenate([v[np.isfinite(v)] for v in values])
    low, high = float(shown.min()), float(shown.max())
    reach = 0.5 * (high - low if high > low else max(abs(high), 1.0))
    leaves = None
    if beyond.size:
        far_low, far_high = float(beyond.min()), float(beyond.max())
        if far_low < low - reach or far_high > high + reach:
            leaves = far_high if far_high - high >= low - far_low else far_low
        low, high = max(min(low, far_low), low - reach), min(max(high, far_high), high + reach)
    pad = 0.05 * (high - low if high > low else 1.0)
    return low - pad, high + pad, leaves


def _legend_handles(colors: dict, bins: pd.DataFrame, curve: pd.DataFrame) -> list[Line2D]:
    """One line per lineage (when more than one), then what the open circles and dashes mean."""
    handles = [Line2D([], [], color=c, lw=2.2, label=name) for name, c in colors.items()] if len(colors) > 1 else []
    handles.append(Line2D([], [], color="0.2", lw=2.2, label="model"))
    if len(bins):
        handles.append(
            Line2D([], [], color="0.3", marker="o", mfc="white", ms=4, lw=1.0, label="cells: mean ± sd per bin")
        )
    if (curve["kind"] == "extrapolated").any():
        handles.append(Line2D([], [], color="0.2", lw=2.2, ls="--", label="model, extrapolated"))
    return handles


def _draw_panel(ax: Axes, cells: pd.DataFrame, bins: pd.DataFrame, lines: pd.DataFrame, colors: dict, size: float):
    """One gene: cells, the cells' mean and spread per bin, the fitted curve and its extrapolation, shaded."""
    alpha = float(np.clip(8.0 / np.sqrt(max(len(cells), 1)), 0.05, 0.6))  # fainter the more cells overlap
    for name, part in cells.groupby("lineage", sort=False):
        ax.scatter(
            part["time"].to_numpy(float),
            part["value"].to_numpy(float),
            s=size,
            color=colors[name],
            alpha=alpha,
            linewidths=0,
            rasterized=True,
            zorder=1,
            gid="cells",
        )
    for name, part in bins.groupby("lineage", sort=False):
        bars = ax.errorbar(
            part["time"].to_numpy(float),
            part["value"].to_numpy(float),
            yerr=part["sd"].fillna(0.0).to_numpy(float),
            fmt="o",
            ms=4,
            mfc="white",
            mec=colors[name],
            mew=1.2,
            ecolor=colors[name],
            elinewidth=1.0,
            capsize=0,
            alpha=0.9,
            zorder=3,
        )
        bars.lines[0].set_gid("binned")
        for collection in bars.lines[2]:
            collection.set_gid("binned spread")
    outline = [patheffects.Stroke(linewidth=4.0, foreground="white"), patheffects.Normal()]
    ends, starts, beyond = [], [], []
    for name, part in lines.groupby("lineage", sort=False):
        inside = part["kind"].to_numpy() == "fitted"
        t, v = part["time"].to_numpy(), part["value"].to_numpy()
        if inside.any():
            ax.plot(
                t[inside], v[inside], color=colors[name], lw=2.2, label=name, path_effects=outline, zorder=4, gid="fit"
            )
        outside = np.flatnonzero(~inside)
        if len(outside):
            beyond.append(v[outside])
            if outside[0] > 0:  # start the dashed part at the last fitted point: one connected curve
                outside = np.r_[outside[0] - 1, outside]
            label = None if inside.any() else name
            ax.plot(
                t[outside], v[outside], color=colors[name], lw=2.2, ls="--", label=label, zorder=4, gid="extrapolated"
            )
            starts.append(t[outside[0]])
            ends.append(t[outside[-1]])
    inside_values = lines.loc[lines["kind"] == "fitted", "value"].to_numpy(float)
    mean, sd = bins["value"].to_numpy(float), bins["sd"].fillna(0.0).to_numpy(float)
    beyond = np.concatenate(beyond) if beyond else np.empty(0)
    low, high, leaves = _limits([cells["value"].to_numpy(float), inside_values, mean - sd, mean + sd], beyond)
    ax.set_ylim(low, high)
    if starts:  # shaded where no lineage has cells: from the last cell of any lineage on
        first = max(max(starts), float(cells["time"].max()) if len(cells) else -np.inf)
        ax.axvspan(first, max(ends), color="0.88", lw=0, zorder=0, gid="extrapolated region")
        note = "extrapolated:\nno cells" + ("" if leaves is None else f"\n(curve leaves\nthe axes: {leaves:.3g})")
        ax.annotate(
            note,
            xy=(first, 0.97),
            xycoords=ax.get_xaxis_transform(),
            xytext=(3, 0),
            textcoords="offset points",
            ha="left",
            va="top",
            fontsize="x-small",
            color="0.3",
            style="italic",
            zorder=5,
            gid="extrapolated note",
        )


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
    n_bins: int | None = 15,
    point_size: float = 6.0,
    axs: Axes | Sequence[Axes] | np.ndarray | None = None,
    show: bool | None = None,
) -> PlotResult:
    """Observed expression against (pseudo)time with the model's trajectory, one panel per gene.

    Cells are drawn as dots coloured by lineage (fainter the more cells a panel has), in the units of
    the fitted data (the layer recorded by the fit), with the cells' mean ± standard deviation per
    time bin (open circles) for comparison. The model's curve (one per lineage, on top) is solid
    within the observed time range and dashed where it is extrapolated (beyond its lineage's cells);
    the time beyond every lineage's last cell is shaded grey and labelled, and where the
    extrapolation runs far beyond the data the y-axis
    stops at half the data's range beyond it and the label says how far the curve goes.

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
    n_bins
        Time bins per lineage for the cells' mean ± standard deviation (bins of fewer than 3 cells are
        left out); ``None`` draws none.
    point_size
        Size of the cells' dots.
    axs
        One Axes per gene (default: a new figure with up to three panels per row).
    show
        Show the figure (default: in interactive sessions).

    Returns
    -------
    :class:`PlotResult` with an array of Axes (one per gene) and the data drawn: a long DataFrame with
    columns ``gene``, ``lineage``, ``time``, ``value``, ``kind`` (``"observed"`` for cells,
    ``"binned"`` for the cells' mean per time bin, ``"fitted"`` and ``"extrapolated"`` for the model's
    curve) and ``sd`` (the cells' standard deviation in a bin; NaN on other rows).
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

    if n_bins is not None and n_bins < 1:
        raise ValueError(f"n_bins must be >= 1 (or None), got {n_bins}.")
    bins = _binned(observed, n_bins) if n_bins else pd.DataFrame(columns=[*COLUMNS, "sd"])
    parts = [observed, bins, curve] if len(bins) else [observed, curve]
    data = pd.concat(parts, ignore_index=True).reindex(columns=[*COLUMNS, "sd"])
    colors = lineage_colors([*observed["lineage"], *curve["lineage"]])
    panels = gene_panels(axs, len(genes))
    units = params.get("layer") or "X"
    for ax, gene in zip(panels, genes, strict=True):
        _draw_panel(
            ax,
            observed[observed["gene"] == gene],
            bins[bins["gene"] == gene],
            curve[curve["gene"] == gene],
            colors,
            point_size,
        )
        ax.set_title(gene)
        ax.set_xlabel(time_key)
        ax.set_ylabel(f"expression ({units})")
    handles = _legend_handles(colors, bins, curve)
    if axs is None:  # a figure of its own: the legend beside the panels
        panels[0].figure.legend(handles=handles, title=lineage_key, fontsize="x-small", loc="outside right upper")
    else:
        panels[0].legend(handles=handles, title=lineage_key, fontsize="x-small")
    finish(show)
    return PlotResult(panels, data)
