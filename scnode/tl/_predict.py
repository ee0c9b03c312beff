from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from ..core.metrics import mse
from ..model import SparseODE
from ..pp import TrajectorySet
from ._utils import initial_velocities, prepare_like, time_grids, trajectories_anndata


def predict(
    adata: AnnData, model: SparseODE, *, extrapolate: float = 0.0, n_points: int = 100, **prepare_kwargs: Any
) -> AnnData:
    """Integrate the fitted model from each lineage's initial state, optionally beyond its last time.

    ``adata`` is prepared like the model's training data (same genes, time and lineage columns,
    trimming, scaling, initial state from the first cells), so a held-out donor gets its own initial
    states and scaling. ``adata`` is not modified.

    Parameters
    ----------
    adata
        Cells with the model's genes and time column.
    model
        A model fitted by :func:`scnode.tl.fit_sparse_ode` (``return_model=True``).
    extrapolate
        How far to go beyond each lineage's last time, as a fraction of its time span
        (``0.5``: half as far again).
    n_points
        Time points per lineage.
    **prepare_kwargs
        Overrides of the model's preprocessing (``time_key``, ``lineage_key``, ``trim_start``, ...; see
        :func:`scnode.pp.prepare_trajectories`).

    Returns
    -------
    AnnData with one observation per lineage and time: ``X`` the predicted expression in the data's
    units; ``obs`` the time column in the data's units, ``scaled_time``, the lineage column and
    ``extrapolated``; ``layers["scaled"]`` the values in the model's scaled units.
    """
    ts = prepare_like(adata, model, prepare_kwargs)
    grids = time_grids(ts, extrapolate, n_points)
    pred = model.predict(grids, ts.x0, v0=initial_velocities(model, ts), held=ts.held)
    return trajectories_anndata(ts, grids, pred, {})


def score(adata: AnnData, model: SparseODE, *, window: int | None = None, **prepare_kwargs: Any) -> pd.DataFrame:
    """Mean squared error of the model on another AnnData with the same genes (e.g. a held-out donor).

    Each lineage of ``adata`` is prepared like the training data (its own scaling and initial state);
    the model is integrated from that initial state and compared with the lineage's (scaled) values at
    its time points, the paper's protocol. With ``window``, every run of ``window`` consecutive time
    points is predicted from its first observed state instead (for trajectories that branch from
    one start, or long ones; the match a model trained with ``batch_time`` windows aims for).
    ``adata`` is not modified.

    Parameters
    ----------
    adata
        Cells with the model's genes and time column.
    model
        A fitted model (see :func:`predict`).
    window
        Score windows of this many time points (each started from its first observation, which is
        not scored); ``None``: whole trajectories from their initial state.
    **prepare_kwargs
        Overrides of the model's preprocessing (see :func:`predict`).

    Returns
    -------
    DataFrame indexed by lineage with columns ``mse`` (scaled units) and ``n_times``, and a last row
    ``"sum"`` with the MSE summed over lineages (the paper's summary) and the total number of times.
    """
    ts = prepare_like(adata, model, prepare_kwargs)
    table = pd.DataFrame(
        {
            "mse": lineage_mse(model, ts, window),
            "n_times": [len(v) for v in ts.values],
        },
        index=pd.Index(ts.lineages, name="lineage"),
    )
    table.loc["sum"] = [float(table["mse"].sum()), int(table["n_times"].sum())]
    table["n_times"] = table["n_times"].astype(int)
    return table


def lineage_mse(model: SparseODE, ts: TrajectorySet, window: int | None = None) -> list[float]:
    """Per lineage, the MSE of whole trajectories from their initial states, or of ``window``-point runs."""
    if window is None:
        pred = model.predict(ts.times, ts.x0, v0=initial_velocities(model, ts), held=ts.held)
        return [mse(p, v) for p, v in zip(pred, ts.values, strict=True)]
    return [_window_mse(model, ts, k, window) for k in range(len(ts.lineages))]


def _window_mse(model: SparseODE, ts: TrajectorySet, lineage: int, window: int) -> float:
    """MSE of predicting each run of ``window`` time points of ``lineage`` from its first observation.

    The lineage's perturbed genes (:attr:`~scnode.pp.TrajectorySet.held`) are held.
    """
    times, values = ts.times[lineage], ts.values[lineage]
    if window < 2:
        raise ValueError(f"window must be at least 2 time points, got {window}.")
    starts = range(max(1, len(times) - window + 1))
    held = ts.held_rows(lineage, len(starts))
    preds = model.predict([times[s : s + window] for s in starts], values[list(starts)], held=held)
    return float(
        np.mean(np.concatenate([(p[1:] - values[s + 1 : s + len(p)]) ** 2 for s, p in zip(starts, preds, strict=True)]))
    )


def validation_mse(validation: AnnData, model: SparseODE, fit_kwargs: dict | None) -> float:
    """Mean over the lineages of :func:`score` on held-out data; on windows when the fit used ``batch_time`` windows."""
    window = (fit_kwargs or {}).get("batch_time")
    return float(score(validation, model, window=window)["mse"].iloc[:-1].mean())
