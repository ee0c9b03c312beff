from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from anndata import AnnData
from scipy import sparse

from ..core import get_method
from ..model import SparseODE
from ..pp import TrajectorySet, prepare_trajectories
from ._predict import lineage_mse
from ._utils import check_n_iter, sparsity_summary, writes_nothing_when_interrupted


def _h5ad_safe(d: dict[str, Any]) -> dict[str, Any]:
    """Drop ``None`` values and turn tuples into lists (h5ad cannot store ``None``)."""
    out = {}
    for k, v in d.items():
        if v is None:
            continue
        out[k] = list(v) if isinstance(v, tuple) else v
    return out


def _to_varp(n_vars: int, idx: np.ndarray, block: np.ndarray) -> np.ndarray | sparse.csr_matrix:
    """Place a (regulators x targets) block of the fitted genes into an n_vars x n_vars matrix."""
    if len(idx) == n_vars and (idx == np.arange(n_vars)).all():
        return block.astype(np.float32)
    rows, cols = np.meshgrid(idx, idx, indexing="ij")
    keep = block != 0
    return sparse.csr_matrix((block[keep].astype(np.float32), (rows[keep], cols[keep])), shape=(n_vars, n_vars))


def setup(
    adata: AnnData,
    *,
    method: str = "pathreg",
    time_key: str = "dpt_pseudotime",
    lineage_key: str | None = None,
    layer: str | None = None,
    genes: Sequence[str] | str | None = None,
    order: int = 1,
    lam: float | None = None,
    lam1: float | None = None,
    hidden: Sequence[int] = (32, 32),
    scaling: str = "minmax",
    trim_start: int = 0,
    trim_end: int = 0,
    n_bins: int | None = None,
    x0_cells: int = 1,
    device: str = "auto",
    random_state: int = 0,
    model_kwargs: dict | None = None,
) -> tuple[TrajectorySet, SparseODE]:
    """Check the arguments, prepare the trajectories and build an unfitted model (see :func:`fit_sparse_ode`)."""
    get_method(method)
    for name, value in (("lam", lam), ("lam1", lam1)):
        if value is not None and value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}.")
    ts = prepare_trajectories(
        adata,
        time_key=time_key,
        lineage_key=lineage_key,
        layer=layer,
        genes=genes,
        scaling=scaling,
        trim_start=trim_start,
        trim_end=trim_end,
        n_bins=n_bins,
        x0_cells=x0_cells,
    )
    model = SparseODE(
        len(ts.genes),
        method=method,
        order=order,
        lam=lam,
        lam1=lam1,
        hidden=hidden,
        device=device,
        random_state=random_state,
        var_names=ts.genes,
        **(model_kwargs or {}),
    )
    model.preprocessing = dict(ts.params)
    return ts, model


def record_params(
    ts: TrajectorySet, model: SparseODE, *, n_iter: int, lr: float, fit_kwargs: dict | None
) -> dict[str, Any]:
    """Everything needed to rerun a fit, h5ad-safe."""
    config = model.config
    return {
        **ts.params,
        "method": config.method,
        "order": config.order,
        "lam": config.lam,
        "lam1": config.lam1,
        "hidden": list(config.hidden),
        "n_iter": n_iter,
        "lr": lr,
        "random_state": config.random_state,
        "model": _h5ad_safe({k: v for k, v in vars(config).items() if k != "var_names" and v is not None}),
        "fit": fit_kwargs or {},
    }


def write_results(
    adata: AnnData, model: SparseODE, ts: TrajectorySet, key_added: str, params: dict, extra: dict | None = None
) -> None:
    """Write a fitted model's graph, fitted values and record (plus ``extra`` entries) into ``adata``."""
    idx = adata.var_names.get_indexer(ts.genes)
    d = len(ts.genes)
    adj = model.adjacency()  # outputs x inputs
    varp = {key_added: _to_varp(adata.n_vars, idx, adj[:, :d].T)}
    if model.config.order == 2:
        varp[f"{key_added}_velocity"] = _to_varp(adata.n_vars, idx, adj[:, d:].T)

    fitted = np.full((adata.n_obs, adata.n_vars), np.nan, dtype=np.float32)
    for k, start in enumerate(t[0] for t in ts.times):
        cells = np.flatnonzero(ts.cell_lineage == k)
        cell_t = np.maximum(ts.cell_time[cells], start)  # cells before the first (binned) time get x0
        grid = np.unique(np.r_[start, cell_t])
        pred = model.predict(grid, ts.x0[k])
        fitted[np.ix_(cells, idx)] = ts.unscale(k, pred[np.searchsorted(grid, cell_t)])
    window = (params.get("fit") or {}).get("batch_time")  # a windowed fit is scored as it was trained
    train_mse = dict(zip(ts.lineages, lineage_mse(model, ts, window), strict=True))

    record = {
        "params": _h5ad_safe(params),
        "history": {k: np.asarray(v) for k, v in model.history.as_dict().items() if k != "interrupted"},
        "metrics": {
            "train_mse": float(np.mean(list(train_mse.values()))),
            "train_mse_per_lineage": train_mse,
            **sparsity_summary(model, adj),
        },
        "genes": np.asarray(ts.genes, dtype=object),
        "lineages": np.asarray(ts.lineages, dtype=object),
        **(extra or {}),
    }
    # everything is computed: only now write into the AnnData (nothing half-written on errors)
    for k, v in varp.items():
        adata.varp[k] = v
    adata.layers[f"{key_added}_fitted"] = fitted
    adata.uns[key_added] = record


def _warn_if_empty(model: SparseODE) -> None:
    """Say so when a penalised fit cut every edge: the graph in ``varp`` would be all zeros."""
    cfg = model.config
    if cfg.method == "base" or model.adjacency().any():
        return
    lams = f"lam={cfg.lam:g}" + (f", lam1={cfg.lam1:g}" if cfg.method == "pathreg" else "")
    warnings.warn(
        f"The {cfg.method!r} fit cut every edge ({lams}): the penalty outweighs this data's error, and "
        "the graph is empty. Pass a smaller lam (and lam1=0 for PathReg), or scan it with "
        "scn.tl.lambda_path. The defaults were chosen on the synthetic system; for min-max scaled "
        "single-cell trajectories the documentation's field is one small network per gene "
        "(hidden=(8,), model_kwargs={'per_output': True, 'decay': True, 'gates': 'inputs'}) "
        "with lam=0.3-3 and lam1=0.",
        UserWarning,
        stacklevel=3,
    )


@writes_nothing_when_interrupted
def fit_sparse_ode(
    adata: AnnData,
    *,
    method: str = "pathreg",
    time_key: str = "dpt_pseudotime",
    lineage_key: str | None = None,
    layer: str | None = None,
    genes: Sequence[str] | str | None = None,
    order: int = 1,
    lam: float | None = None,
    lam1: float | None = None,
    hidden: Sequence[int] = (32, 32),
    n_iter: int = 1000,
    lr: float = 1e-2,
    scaling: str = "minmax",
    trim_start: int = 0,
    trim_end: int = 0,
    n_bins: int | None = None,
    x0_cells: int = 1,
    device: str = "auto",
    random_state: int = 0,
    progress_bar: bool = True,
    key_added: str = "scnode",
    copy: bool = False,
    return_model: bool = False,
    model_kwargs: dict | None = None,
    fit_kwargs: dict | None = None,
) -> AnnData | SparseODE | tuple[AnnData, SparseODE] | None:
    """Fit a sparse neural ODE to cells ordered by pseudotime; the learned graph goes to ``varp``.

    All lineages (categories of ``lineage_key``) share one vector field and are solved together.
    See :func:`scnode.pp.prepare_trajectories` for the preprocessing and :class:`scnode.SparseODE`
    for the model.

    Parameters
    ----------
    adata
        Cells in ``obs`` (with a time column), genes in ``var``.
    method
        ``"base"``, ``"l0"``, ``"cnode"``, ``"pathreg"``, ``"lassonet_inner"``, ``"lassonet_outer"``
        or ``"grouplasso"``.
    time_key
        Column of ``obs`` with the (pseudo)time.
    lineage_key
        Column of ``obs`` naming each cell's lineage; ``None`` for one trajectory.
    layer
        Layer to fit instead of ``X``.
    genes
        Genes to fit (names, or a boolean ``var`` column such as ``"highly_variable"``); default all.
    order
        1, or 2 for a second-order model (dependencies on velocities in ``varp[key_added + "_velocity"]``).
    lam, lam1
        Penalty weights (``None``: the method's default).
    hidden
        Hidden widths of the vector field.
    n_iter, lr
        Iterations of the penalised phase and learning rate (a refit of ``n_iter // 2`` follows).
    scaling, trim_start, trim_end, n_bins, x0_cells
        Preprocessing, see :func:`scnode.pp.prepare_trajectories`.
    device
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    random_state
        Seed.
    progress_bar
        Show a progress bar.
    key_added
        Key of the results in ``varp``, ``layers`` and ``uns``.
    copy
        Return a modified copy instead of writing into ``adata``.
    return_model
        Also return the fitted :class:`~scnode.SparseODE`.
    model_kwargs, fit_kwargs
        Further arguments of :class:`~scnode.SparseODE` and :meth:`~scnode.SparseODE.fit`. For cells
        of several donors, ``hidden=(8,)`` with ``model_kwargs={"per_output": True, "decay": True}``
        (one small network per gene, each gene's own decay) is the field that generalises to new
        donors in the hematopoiesis benchmark; the shared MLP of the defaults is the paper's.

    Returns
    -------
    ``None`` (or the copy with ``copy=True``; the model with ``return_model=True``; both as a tuple
    with both) and writes:

    ``adata.varp[key_added]``
        ``n_vars x n_vars`` dependency scores, **rows = regulators (inputs), columns = targets
        (outputs)**; zero for genes not fitted and for exact zeros of the model.
    ``adata.varp[key_added + "_velocity"]``
        (order 2) dependencies of each target's acceleration on each regulator's velocity.
    ``adata.layers[key_added + "_fitted"]``
        The model's trajectory at each cell's time, in the data's units (NaN where not fitted).
    ``adata.uns[key_added]``
        ``params``, ``history`` (loss, mse, penalty, lr, nfe per iteration), ``metrics`` (training
        MSE in scaled units, per lineage — of whole trajectories from their initial states, or of
        ``batch_time``-point windows from the data when the fit used windows — feature and weight
        sparsity, number of edges, targets without any regulator, median regulators per target),
        ``genes``, ``lineages``.

    Warns
    -----
    UserWarning
        When a penalised fit cut every edge (the graph is empty): ``lam`` is too large for the
        data. The default ``lam`` was chosen on the synthetic system and does this to min-max
        scaled single-cell trajectories; pass a smaller one or scan it with :func:`scnode.tl.lambda_path`.
    """
    check_n_iter(n_iter)
    ts, model = setup(
        adata,
        method=method,
        time_key=time_key,
        lineage_key=lineage_key,
        layer=layer,
        genes=genes,
        order=order,
        lam=lam,
        lam1=lam1,
        hidden=hidden,
        scaling=scaling,
        trim_start=trim_start,
        trim_end=trim_end,
        n_bins=n_bins,
        x0_cells=x0_cells,
        device=device,
        random_state=random_state,
        model_kwargs=model_kwargs,
    )
    model.fit(ts.times, ts.values, x0=ts.x0, n_iter=n_iter, lr=lr, progress_bar=progress_bar, **(fit_kwargs or {}))
    _warn_if_empty(model)
    params = record_params(ts, model, n_iter=n_iter, lr=lr, fit_kwargs=fit_kwargs)
    target = adata.copy() if copy else adata
    write_results(target, model, ts, key_added, params)
    if copy and return_model:
        return target, model
    if copy:
        return target
    return model if return_model else None
