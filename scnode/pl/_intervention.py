from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes

from ._utils import PlotResult, finish, gene_panels, lineage_colors, prediction_columns

MAX_PANELS = 24
"""Most genes one call draws (one panel each)."""


def _strongest(result: AnnData, n_genes: int) -> list[str]:
    """Return the ``n_genes`` genes with the largest absolute effect anywhere, the intervened genes left out."""
    held = set(result.uns["intervention"].get("hold", {}))
    size = np.nanmax(np.abs(np.asarray(result.layers["delta"], float)), axis=0)
    order = [j for j in np.argsort(-size, kind="stable") if result.var_names[j] not in held]
    return [str(result.var_names[j]) for j in order[:n_genes]]


def intervention(
    result: AnnData,
    genes: str | Sequence[str] | None = None,
    *,
    n_genes: int = 6,
    axs: Axes | Sequence[Axes] | np.ndarray | None = None,
    show: bool | None = None,
) -> PlotResult:
    """Draw the effect of an intervention over time, one panel per gene.

    Each panel draws, per lineage, the intervened minus the unchanged trajectory (data units) against
    time, with a dotted line where the intervention begins. Where the intervention ran several models
    (a list passed to :func:`scnode.tl.simulate_intervention`) the curve is their median effect and
    a band spans their 25th to 75th percentiles: narrow where the fits agree, wide where they do not.

    Parameters
    ----------
    result
        The AnnData returned by :func:`scnode.tl.simulate_intervention`.
    genes
        Gene(s) to draw (at most :data:`MAX_PANELS`); default: the ``n_genes`` with the largest effect
        (absolute, anywhere along the trajectories), the intervened genes left out.
    n_genes
        Without ``genes``: how many to draw.
    axs
        One Axes per gene (default: a new figure with up to three panels per row).
    show
        Show the figure (default: in interactive sessions).

    Returns
    -------
    :class:`PlotResult` with an array of Axes (one per gene) and the data drawn: a long DataFrame with
    columns ``gene``, ``lineage``, ``time``, ``delta``, ``low`` and ``high`` (the models' 25th and
    75th percentiles; NaN for one model) and ``intervened``.
    """
    if "delta" not in result.layers or "intervention" not in result.uns:
        raise KeyError(
            "result has no layers['delta'] or uns['intervention']; pass the AnnData of scnode.tl.simulate_intervention."
        )
    if genes is None:
        if not isinstance(n_genes, int | np.integer) or not 1 <= n_genes <= MAX_PANELS:
            raise ValueError(f"n_genes must be an integer from 1 to {MAX_PANELS}, got {n_genes!r}.")
        genes = _strongest(result, int(n_genes))
    genes = [genes] if isinstance(genes, str) else [str(g) for g in genes]
    if not genes:
        raise ValueError("Pass at least one gene (or genes=None for the most affected ones).")
    if len(genes) > MAX_PANELS:
        raise ValueError(f"{len(genes)} genes asked for; one call draws at most {MAX_PANELS} panels.")
    unknown = [g for g in genes if g not in result.var_names]
    if unknown:
        raise KeyError(f"Gene(s) {unknown} are not in the result's var_names.")
    time_key, lineage_key = prediction_columns(result, None, None)
    lineages = result.obs[lineage_key].astype(str).to_numpy()
    colors = lineage_colors(lineages)
    times = result.obs[time_key].to_numpy(float)
    acting = result.obs["intervened"].to_numpy(bool) if "intervened" in result.obs else np.zeros(result.n_obs, bool)
    band = "delta_low" in result.layers and "delta_high" in result.layers
    frames = []
    panels = gene_panels(axs, len(genes))
    for ax, gene in zip(panels, genes, strict=True):
        j = result.var_names.get_loc(gene)
        ax.axhline(0.0, color="0.6", lw=0.8)
        for name, color in colors.items():
            rows = np.flatnonzero(lineages == name)
            rows = rows[np.argsort(times[rows], kind="stable")]
            t = times[rows]
            delta = np.asarray(result.layers["delta"][rows, j], float)
            low = np.asarray(result.layers["delta_low"][rows, j], float) if band else np.full(len(rows), np.nan)
            high = np.asarray(result.layers["delta_high"][rows, j], float) if band else np.full(len(rows), np.nan)
            if band:
                ax.fill_between(t, low, high, color=color, alpha=0.25, lw=0)
            ax.plot(t, delta, color=color, lw=1.8, label=name)
            on = acting[rows]
            if on.any() and not on.all():
                ax.axvline(t[np.argmax(on)], color=color, ls=":", lw=1.0)
            frames.append(
                pd.DataFrame(
                    {
                        "gene": gene,
                        "lineage": name,
                        "time": t,
                        "delta": delta,
                        "low": low,
                        "high": high,
                        "intervened": on,
                    }
                )
            )
        ax.set_title(gene)
        ax.set_xlabel(time_key)
        ax.set_ylabel("effect (data units)")
    n_models = result.uns["intervention"].get("n_models", 1)
    what = f"median of {n_models} models, 25th-75th percentiles shaded" if band else "one model"
    panels[0].legend(title=what, fontsize="small", title_fontsize="small")
    finish(show)
    return PlotResult(panels, pd.concat(frames, ignore_index=True))
