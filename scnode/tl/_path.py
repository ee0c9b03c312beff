from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from anndata import AnnData

from ..core.metrics import mse
from ..model import SparseODE
from ..model._training import penalised_path, refit_copy
from ..pp import TrajectorySet
from ._dask import dask_client, map_tasks
from ._fit import record_params, setup, write_results
from ._predict import lineage_mse, validation_mse
from ._utils import sparsity_summary, writes_nothing_when_interrupted

if TYPE_CHECKING:
    from distributed import Client


def _holdout(times: list[np.ndarray], every: int) -> list[np.ndarray]:
    """Per lineage, a mask of held-out time points: every ``every``-th, never the first or last."""
    masks = []
    for t in times:
        mask = np.zeros(len(t), bool)
        mask[every::every] = True
        mask[[0, -1]] = False
        masks.append(mask)
    return masks


def _fit_data(ts: TrajectorySet, held: list[np.ndarray] | None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Return the time points and values the path is fitted to: all, or all but the held-out ones."""
    if held is None:
        return ts.times, ts.values
    times = [t[~h] for t, h in zip(ts.times, held, strict=True)]
    values = [v[~h] for v, h in zip(ts.values, held, strict=True)]
    return times, values


def _refit_and_score(
    state: SparseODE,
    ts: TrajectorySet,
    held: list[np.ndarray] | None,
    validation: AnnData | None,
    refit_iter: int,
    fit_kwargs: dict[str, Any],
) -> tuple[SparseODE, dict[str, Any]]:
    """Refit one penalised state of the path (its zeros frozen) and score it: the model and its row of the table."""
    times, values = _fit_data(ts, held)
    fitted = refit_copy(state, times, values, x0=ts.x0, refit_iter=refit_iter, **fit_kwargs)
    if held is not None:
        full = fitted.predict(ts.times, ts.x0)
        val = np.mean([mse(p[h], v[h]) for p, v, h in zip(full, ts.values, held, strict=True)])
        train = np.mean([mse(p[~h], v[~h]) for p, v, h in zip(full, ts.values, held, strict=True)])
    else:
        val = validation_mse(validation, fitted, fit_kwargs)
        train = np.mean(lineage_mse(fitted, ts, fit_kwargs.get("batch_time")))
    return fitted, {
        "lam": float(fitted.config.lam),
        "train_mse": float(train),
        "val_mse": float(val),
    } | sparsity_summary(fitted)


@writes_nothing_when_interrupted
def lambda_path(
    adata: AnnData,
    lams: Sequence[float],
    *,
    method: str = "pathreg",
    validation: AnnData | None = None,
    holdout_every: int = 5,
    tolerance: float = 0.1,
    n_iter: int = 1000,
    path_iter: int | None = None,
    refit_iter: int | None = None,
    lr: float = 1e-2,
    progress_bar: bool = True,
    key_added: str = "scnode",
    copy: bool = False,
    return_models: bool = False,
    fit_kwargs: dict | None = None,
    client: Client | str | None = None,
    **kwargs: Any,
) -> pd.DataFrame | tuple[pd.DataFrame, Any]:
    """Fit along a regularization path (warm starts), tabulate it, and keep the selected penalty weight.

    The penalty weights are fitted in increasing order, each starting from the previous penalised
    state (:meth:`scnode.SparseODE.fit_path`); each is refitted with its zero pattern frozen and scored
    on validation data. **Selection rule:** the largest ``lam`` whose validation MSE is at most
    ``(1 + tolerance)`` times the smallest validation MSE on the path (the sparsest model that
    predicts about as well as the best). Validation data: ``validation`` (e.g. another donor, scored
    as :func:`scnode.tl.score` does), or else every ``holdout_every``-th time point of each lineage,
    held out of the fit (an interpolation check). The selected model's results are written as
    :func:`scnode.tl.fit_sparse_ode` writes them.

    The penalised chain is sequential; the refits (and their scoring) are independent of each other
    and, with ``client``, run as one Dask task per ``lam`` (the chain still runs here). Each refit
    depends only on its penalised state (generator included), so on CPU the result is the same as
    without a client (see :func:`scnode.tl.sweep` on thread counts).

    Parameters
    ----------
    adata
        Training cells (see :func:`scnode.tl.fit_sparse_ode`).
    lams
        Penalty weights to try (at least one).
    method
        Sparsity method (``"base"`` has no penalty to scan).
    validation
        Held-out AnnData with the same genes; default: held-out time points of ``adata``.
    holdout_every
        Without ``validation``: hold out every this-many-th time point of each lineage.
    tolerance
        Relative validation-MSE tolerance of the selection rule.
    n_iter
        Penalised iterations of the first (smallest) ``lam``.
    path_iter
        Penalised iterations of each further ``lam`` (default ``n_iter // 2``).
    refit_iter
        Refit iterations of each ``lam`` (default ``n_iter // 2``).
    lr, progress_bar, key_added, copy, fit_kwargs
        As in :func:`scnode.tl.fit_sparse_ode`.
    return_models
        Also return the refitted model of every ``lam`` (a list, in increasing order of ``lam``).
    client
        A :class:`distributed.Client` or a scheduler address: run the refits on the cluster
        (``pip install scnode[dask]``; the workers need scnode installed; their progress bars are
        off). ``None``: everything here, without importing Dask.
    **kwargs
        Preprocessing and model arguments of :func:`scnode.tl.fit_sparse_ode` (``time_key``,
        ``lineage_key``, ``genes``, ``order``, ``lam1``, ``hidden``, ``trim_start``, ``device``,
        ``random_state``, ...).

    Returns
    -------
    The path as a DataFrame, one row per ``lam``: ``lam``, ``train_mse``, ``val_mse`` (mean over
    lineages, scaled units; with ``validation`` and ``batch_time`` windows both on windows),
    ``feature_sparsity``, ``weight_sparsity``, ``n_edges`` (nonzero regulator -> target entries,
    self-loops included), ``targets_without_regulators``, ``median_regulators`` and ``selected``.
    With ``copy=True`` the modified copy comes first, with ``return_models=True`` the models last. Writes what
    :func:`scnode.tl.fit_sparse_ode` writes, for the selected ``lam``, and the table as
    ``adata.uns[key_added]["path"]`` (with ``params["selection"]`` stating the rule).
    """
    lams = sorted(float(v) for v in lams)
    if not lams:
        raise ValueError("lams is empty; give at least one penalty weight.")
    if min(lams) < 0:
        raise ValueError(f"Penalty weights must be >= 0, got {min(lams)}.")
    if method == "base":
        raise ValueError("method='base' has no penalty; choose a sparsity method for a path.")
    if tolerance < 0 or holdout_every < 2:
        raise ValueError(f"Need tolerance >= 0 and holdout_every >= 2, got {tolerance} and {holdout_every}.")
    ts, model = setup(adata, method=method, **kwargs)
    held = _holdout(ts.times, holdout_every) if validation is None else None
    times, values = _fit_data(ts, held)
    train_kwargs = dict(lr=lr, **(fit_kwargs or {}))
    refit_iter = n_iter // 2 if refit_iter is None else refit_iter
    refit_kwargs = {**train_kwargs, "progress_bar": progress_bar and client is None}
    with dask_client(client) as connected:  # connect first: a bad client fails before the chain runs
        states = penalised_path(
            model,
            times,
            values,
            lams,
            x0=ts.x0,
            n_iter=n_iter,
            path_iter=path_iter,
            progress_bar=progress_bar,
            **train_kwargs,
        )
        results = map_tasks(_refit_and_score, states, (ts, held, validation, refit_iter, refit_kwargs), connected)
    models = [m for m, _ in results]
    rows = [row for _, row in results]
    table = pd.DataFrame(rows)
    ok = table["val_mse"] <= (1 + tolerance) * table["val_mse"].min()
    table["selected"] = False
    table.loc[ok[ok].index[-1], "selected"] = True
    best = models[int(np.flatnonzero(table["selected"])[0])]
    rule = f"largest lam with val_mse <= (1 + {tolerance}) * min val_mse"
    params = {
        **record_params(ts, best, n_iter=n_iter, lr=lr, fit_kwargs=fit_kwargs),
        "lams": lams,
        "selection": rule,
        "validation": "held-out AnnData" if validation is not None else f"every {holdout_every}th time point",
    }
    target = adata.copy() if copy else adata
    path = {c: table[c].to_numpy() for c in table.columns}
    write_results(target, best, ts, key_added, params, extra={"path": path})
    out: list[Any] = [table]
    if copy:
        out.insert(0, target)
    if return_models:
        out.append(models)
    return out[0] if len(out) == 1 else tuple(out)
