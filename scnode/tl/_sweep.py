from __future__ import annotations

import inspect
import itertools
import time
from collections.abc import Sequence
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any

import pandas as pd
from anndata import AnnData

from ..core import get_method
from ..model import SparseODE
from ._dask import dask_client, map_tasks
from ._fit import fit_sparse_ode
from ._predict import validation_mse
from ._setup import setup
from ._utils import sparsity_summary

if TYPE_CHECKING:
    from distributed import Client

_GRID_KEYS = {"method": "methods", "lam": "lams", "random_state": "seeds"}
_FIXED_KEYS = ("copy", "return_model")


def _as_list(values: Any, name: str) -> list:
    """One value or a sequence of values as a non-empty list."""
    out = [values] if isinstance(values, str | Real) else list(values)
    if not out:
        raise ValueError(f"{name} is empty; give at least one value.")
    return out


def _check_grid(methods: Any, lams: Any, seeds: Any) -> tuple[list[str], list[float | None], list[int]]:
    methods = _as_list(methods, "methods")
    for m in methods:
        get_method(m)  # "Unknown method 'x'; choose one of [...]"
    lams = [None] if lams is None else _as_list(lams, "lams")
    for lam in lams:
        if lam is not None and (isinstance(lam, bool) or not isinstance(lam, Real) or not lam >= 0):
            raise ValueError(f"Penalty weights (lams) must be numbers >= 0, got {lam!r}.")
    seeds = _as_list(seeds, "seeds")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, Integral):
            raise ValueError(f"seeds must be integers, got {s!r}.")
    return methods, [None if lam is None else float(lam) for lam in lams], [int(s) for s in seeds]


def _fit_one(
    grid: tuple[str, float | None, int], adata: AnnData, validation: AnnData | None, kwargs: dict, keep_model: bool
) -> tuple[dict[str, Any], SparseODE | None]:
    """One cold fit of the sweep on a copy of ``adata``: its row of the table (and the model)."""
    method, lam, seed = grid
    start = time.perf_counter()
    fitted, model = fit_sparse_ode(
        adata,
        method=method,
        lam="auto" if lam is None else lam,
        random_state=seed,
        copy=True,
        return_model=True,
        **kwargs,
    )
    seconds = time.perf_counter() - start
    metrics = fitted.uns[kwargs.get("key_added", "scnode")]["metrics"]
    row: dict[str, Any] = {"method": method, "lam": float(model.config.lam), "seed": seed}
    row["train_mse"] = float(metrics["train_mse"])
    if validation is not None:
        row["val_mse"] = validation_mse(validation, model, kwargs.get("fit_kwargs"))
    row.update(sparsity_summary(model), seconds=seconds)
    return row, model if keep_model else None


def sweep(
    adata: AnnData,
    *,
    methods: str | Sequence[str] = ("pathreg",),
    lams: float | Sequence[float] | None = None,
    seeds: int | Sequence[int] = (0,),
    validation: AnnData | None = None,
    client: Client | str | None = None,
    return_models: bool = False,
    **kwargs: Any,
) -> pd.DataFrame | tuple[pd.DataFrame, list[SparseODE]]:
    """Fit every combination of methods, penalty weights and seeds, each from scratch, and tabulate them.

    Each combination is one independent :func:`scnode.tl.fit_sparse_ode` on a copy of ``adata``
    (``adata`` itself is never modified), optionally scored on ``validation`` as
    :func:`scnode.tl.score` does. The fits run one after another in this process, or, with
    ``client``, as one Dask task each on a ``distributed`` cluster (``pip install scnode[dask]``;
    the workers need scnode installed). The fits are seeded, so on CPU both give the same table,
    ``seconds`` aside (bit for bit in the tests; torch running with other thread counts on the
    workers could change the last bits on large problems).

    Parameters
    ----------
    adata
        Training cells (see :func:`scnode.tl.fit_sparse_ode`).
    methods
        Sparsity method(s), e.g. ``["l0", "pathreg"]``.
    lams
        Penalty weight(s); ``None``: chosen by :func:`scnode.tl.fit_sparse_ode` (``lam="auto"``, one
        search per method and seed).
    seeds
        Random seed(s) (``random_state`` of the fits).
    validation
        Held-out AnnData with the same genes (e.g. another donor), scored per lineage from its own
        initial states; with ``fit_kwargs={"batch_time": w}``, on windows of ``w`` time points.
    client
        A :class:`distributed.Client` or a scheduler address (``"tcp://host:8786"``); ``None`` runs
        serially without importing Dask. With a client, ``adata`` (and ``validation``) are sent to
        the cluster once with :meth:`~distributed.Client.scatter` and every fit is one task. A client
        made from an address is closed at the end.
    return_models
        Also return the fitted models, in the table's row order.
    **kwargs
        Further arguments of :func:`scnode.tl.fit_sparse_ode` for every fit (``time_key``,
        ``lineage_key``, ``genes``, ``hidden``, ``n_iter``, ``device``, ``fit_kwargs``, ...), except
        ``method``, ``lam`` and ``random_state`` (the grid) and ``copy`` and ``return_model``.
        ``progress_bar`` defaults to ``False`` here.

    Returns
    -------
    A DataFrame, one row per fit in the order methods x lams x seeds: ``method``, ``lam`` (the
    weight used), ``seed``, ``train_mse`` (mean over lineages, scaled units, as in the fit record),
    ``val_mse`` (with ``validation``: mean over its lineages), ``feature_sparsity``,
    ``weight_sparsity``, ``n_edges`` (nonzero regulator -> target entries, self-loops included),
    ``targets_without_regulators``, ``median_regulators`` and ``seconds`` (wall time of the fit).
    With ``return_models=True``, ``(table, models)``.
    """
    methods, lams, seeds = _check_grid(methods, lams, seeds)
    for key, grid_name in _GRID_KEYS.items():
        if key in kwargs:
            raise TypeError(f"sweep takes {key!r} through {grid_name}=, not as a keyword of the fits.")
    for key in _FIXED_KEYS:
        if key in kwargs:
            raise TypeError(f"sweep sets {key!r} itself (the fits run on copies); leave it out.")
    inspect.signature(fit_sparse_ode).bind(adata, **kwargs)  # unknown keywords fail here, not in every task
    kwargs.setdefault("progress_bar", False)
    setup_keys = set(inspect.signature(setup).parameters) - {"adata", "method", "lam", "random_state"}
    setup(adata, method=methods[0], **{k: v for k, v in kwargs.items() if k in setup_keys})  # bad data fail here
    grid = list(itertools.product(methods, lams, seeds))
    with dask_client(client) as connected:
        results = map_tasks(
            _fit_one, grid, (adata, validation, kwargs, return_models), connected, label="fits of the sweep"
        )
    table = pd.DataFrame([row for row, _ in results])
    if return_models:
        return table, [model for _, model in results]
    return table
