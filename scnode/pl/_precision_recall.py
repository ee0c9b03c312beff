from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes

from ..core.metrics import auprc
from ..core.metrics import precision_recall as pr_curve
from ..tl._evaluate import candidate_scores
from ._utils import PlotResult, finish, get_ax


def precision_recall(
    adata: AnnData,
    truth: pd.DataFrame | np.ndarray,
    *,
    keys: str | Sequence[str] = "scnode",
    regulators: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
) -> PlotResult:
    """Precision against recall of one or more learned networks against a known one (BEELINE style).

    The candidate edges and the truth are those of :func:`scnode.tl.evaluate_grn` (every ordered pair
    of that network's fitted genes without self-loops, or ``regulators`` x fitted genes); each curve
    steps through the distinct scores, strongest first, and the legend gives its AUPRC ratio. The
    dashed line is the precision of a random ranking (the share of true edges).

    Parameters
    ----------
    adata
        AnnData with the networks in ``varp`` (e.g. after :func:`scnode.tl.fit_sparse_ode` and
        :func:`scnode.tl.consensus_network`).
    truth
        The known network, in any form :func:`scnode.tl.evaluate_grn` takes.
    keys
        Key(s) of the networks in ``varp``, one curve each.
    regulators
        Restrict the candidate regulators.
    labels
        Legend labels, one per key (default: the keys).
    ax
        Axes to draw into.
    show
        Show the figure (default: in interactive sessions).

    Returns
    -------
    :class:`PlotResult` with the Axes and the curves drawn: a DataFrame with columns ``key``,
    ``recall``, ``precision`` (one row per distinct score of each network) and ``density`` (the
    share of true edges among that network's candidates, the precision of a random ranking).
    """
    keys = [keys] if isinstance(keys, str) else list(keys)
    if not keys:
        raise ValueError("keys is empty; name at least one network in adata.varp.")
    labels = keys if labels is None else [str(label) for label in labels]
    if len(labels) != len(keys):
        raise ValueError(f"{len(labels)} labels for {len(keys)} keys.")
    ax = get_ax(ax, (7.0, 3.6))
    curves = []
    for key, label in zip(keys, labels, strict=True):  # each network's own candidates: the genes of its fit
        s, y = candidate_scores(adata, truth, key=key, regulators=regulators)
        r, p = pr_curve(s, y)
        ratio = auprc(s, y) / y.mean()
        ax.step(np.r_[0.0, r], np.r_[p[0], p], where="pre", label=f"{label} (AUPRC ratio {ratio:.2f})")
        curves.append(pd.DataFrame({"key": key, "recall": r, "precision": p, "density": y.mean()}))
    for density in sorted({float(c["density"].iloc[0]) for c in curves}):
        ax.axhline(density, color="0.5", linestyle="--", linewidth=1, label=f"random ({density:.2f})")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(fontsize="small", frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1.0))  # beside the curves
    finish(show)
    return PlotResult(ax, pd.concat(curves, ignore_index=True))
