from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes

from ._utils import PlotResult, finish, get_ax

AXES = ("x", "y", "z")


def _positions(data: AnnData, joints: list[str], frames: np.ndarray, what: str) -> np.ndarray:
    """``(len(frames), n_joints, 3)`` joint positions of ``data`` (columns named ``<joint>_<axis>``)."""
    names = [f"{j}_{a}" for j in joints for a in AXES]
    missing = [n for n in names if n not in data.var_names]
    if missing:
        raise KeyError(f"The {what} lacks joint coordinate(s) {missing[:6]} (var names '<joint>_<axis>').")
    if frames.min() < 0 or frames.max() >= data.n_obs:
        raise ValueError(f"Frame indices must lie in [0, {data.n_obs}) of the {what}, got {frames.tolist()}.")
    values = np.asarray(data[:, names].X, dtype=float)[frames]
    return values.reshape(len(frames), len(joints), 3)


def skeleton(
    adata: AnnData,
    *,
    frames: int | Sequence[int] = 5,
    prediction: AnnData | None = None,
    view: tuple[str, str] = ("x", "y"),
    spacing: float | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
) -> PlotResult:
    """Stick figures of motion-capture frames, observed next to predicted (the paper's Figure 4).

    Each chosen frame is drawn as the skeleton's bones projected on two axes, frames side by side
    along the first axis; with ``prediction`` (same joints, e.g. from :func:`scnode.tl.predict`), the
    predicted figure of the same frame index is drawn over the observed one in another colour.

    Parameters
    ----------
    adata
        Frames in ``obs``, joint coordinates ``<joint>_<axis>`` in ``var`` and the skeleton in
        ``uns["skeleton"]`` (``joints`` and ``bones``), as :func:`scnode.datasets.mocap` returns.
    frames
        Frame indices (rows) to draw, or a number of frames spread evenly over the shorter of the
        data and the prediction.
    prediction
        Predicted frames with the same joint coordinates; row ``i`` is compared with row ``i`` of
        ``adata``.
    view
        The two axes to project on (``"x"``, ``"y"``, ``"z"``); the default is a side view with y up.
    spacing
        Horizontal distance between figures (default: 1.5 times the widest figure).
    ax
        Axes to draw into.
    show
        Show the figure (default: in interactive sessions).

    Returns
    -------
    :class:`PlotResult` with the Axes and the bones drawn: a DataFrame with one row per bone and figure,
    columns ``frame``, ``kind`` (``"observed"`` or ``"predicted"``), ``parent``, ``child`` and the
    projected, shifted end points ``x0``, ``y0``, ``x1``, ``y1``.
    """
    if "skeleton" not in adata.uns or not {"joints", "bones"} <= set(adata.uns["skeleton"]):
        raise KeyError(
            "adata.uns['skeleton'] with 'joints' and 'bones' is missing; load data with scnode.datasets.mocap."
        )
    if len(view) != 2 or not set(view) <= set(AXES) or view[0] == view[1]:
        raise ValueError(f"view must be two different axes of {AXES}, got {view!r}.")
    joints = [str(j) for j in adata.uns["skeleton"]["joints"]]
    bones = np.asarray(adata.uns["skeleton"]["bones"], dtype=int).reshape(-1, 2)
    n = adata.n_obs if prediction is None else min(adata.n_obs, prediction.n_obs)
    if isinstance(frames, int | np.integer):
        if frames < 1:
            raise ValueError(f"frames must be positive, got {frames}.")
        chosen = np.unique(np.linspace(0, n - 1, int(frames)).round().astype(int))
    else:
        chosen = np.asarray(list(frames), dtype=int)
        if chosen.size == 0:
            raise ValueError("frames is empty.")
    figures = {"observed": _positions(adata, joints, chosen, "data")}
    if prediction is not None:
        figures["predicted"] = _positions(prediction, joints, chosen, "prediction")
    a, b = AXES.index(view[0]), AXES.index(view[1])
    observed = figures["observed"]
    if spacing is None:
        width = np.ptp(observed[..., a], axis=1).max()
        spacing = 1.5 * float(width) if width > 0 else 1.0
    rows = []
    for kind, pos in figures.items():
        for k, frame in enumerate(chosen):
            shift = k * spacing - observed[k, 0, a]  # each figure centred on its observed root
            for parent, child in bones:
                rows.append(
                    {
                        "frame": int(frame),
                        "kind": kind,
                        "parent": joints[parent],
                        "child": joints[child],
                        "x0": pos[k, parent, a] + shift,
                        "y0": pos[k, parent, b],
                        "x1": pos[k, child, a] + shift,
                        "y1": pos[k, child, b],
                    }
                )
    data = pd.DataFrame(rows)

    ax = get_ax(ax, (1.6 * len(chosen) + 1, 3.5))
    colours = {"observed": "black", "predicted": "tab:red"}
    for kind, part in data.groupby("kind", sort=False):
        segments = part[["x0", "x1", "y0", "y1"]].to_numpy()
        for i, (x0, x1, y0, y1) in enumerate(segments):
            ax.plot([x0, x1], [y0, y1], color=colours[kind], lw=1.5, label=kind if i == 0 else None)
    for k, frame in enumerate(chosen):
        ax.text(k * spacing, observed[:, :, b].min(), f"frame {frame}", ha="center", va="top", fontsize="small")
    ax.set_aspect("equal")
    ax.set_xlabel(view[0])
    ax.set_ylabel(view[1])
    if prediction is not None:
        ax.legend(fontsize="small")
    finish(show)
    return PlotResult(ax, data)
