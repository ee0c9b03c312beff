"""Writing a fit into the AnnData: its graph, signs, the search's ranking of every pair, fitted values and record."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
from anndata import AnnData
from scipy import sparse

from ..model import SparseODE
from ..pp import TrajectorySet
from ._predict import lineage_mse
from ._select import Search
from ._utils import (
    ScaledMean,
    candidate_mask,
    initial_velocities,
    sparsity_summary,
)

if TYPE_CHECKING:
    from ._setup import Setup


def _h5ad_safe(d: dict[str, Any]) -> dict[str, Any]:
    """Drop ``None`` values and turn tuples into lists (h5ad cannot store ``None``)."""
    out = {}
    for k, v in d.items():
        if v is None:
            continue
        if isinstance(v, dict):
            out[k] = _h5ad_safe(v)
        else:
            out[k] = list(v) if isinstance(v, tuple) else v
    return out


def _to_varp(n_vars: int, idx: np.ndarray, block: np.ndarray) -> np.ndarray | sparse.csr_matrix:
    """Place a (regulators x targets) block of the fitted genes into an n_vars x n_vars matrix."""
    if len(idx) == n_vars and (idx == np.arange(n_vars)).all():
        return block.astype(np.float32, copy=False)  # the callers' blocks are theirs to give away
    rows, cols = np.meshgrid(idx, idx, indexing="ij")
    keep = block != 0
    return sparse.csr_matrix((block[keep].astype(np.float32), (rows[keep], cols[keep])), shape=(n_vars, n_vars))


def mean_jacobian(model: SparseODE, ts: TrajectorySet, *, absolute: bool = False) -> np.ndarray:
    """Return the fitted field's Jacobian averaged over the training states (outputs x inputs).

    First order: the observed (binned) states of every lineage; second order: the model's own
    positions and velocities along each lineage (velocities are not observed). ``absolute``: the
    mean of the entries' absolute values (:meth:`~scnode.SparseODE.jacobian`).
    """
    if model.config.order == 1:
        return model.jacobian(np.concatenate(ts.values), absolute=absolute)
    v0 = initial_velocities(model, ts)
    states = np.concatenate(model.predict(ts.times, ts.x0, v0=v0, return_velocity=True, held=ts.held))
    d = model.config.n_vars
    return model.jacobian(states[:, :d], states[:, d:], absolute=absolute)


EDGE_SCORES = ("weights", "effects")
"""How a fit's graph scores its edges: ``"weights"``, the path product of absolute weights
(:meth:`scnode.SparseODE.adjacency`, the paper's); ``"effects"``, that times each regulator's standard
deviation over the training states (:func:`regulator_spread`)."""


SPREAD_FLOOR = 1e-6
"""The smallest spread :func:`regulator_spread` returns (scaled units, in which a gene's cells span 1)."""


def check_edge_score(edge_score: str, order: int) -> None:
    """Raise a clear error for an unknown ``edge_score``, or ``"effects"`` with velocities as inputs."""
    if edge_score not in EDGE_SCORES:
        raise ValueError(f"edge_score must be one of {EDGE_SCORES}, got {edge_score!r}.")
    if edge_score == "effects" and order != 1:
        raise ValueError("edge_score='effects' scales by the genes' spread over first-order states; use order=1.")


def regulator_spread(ts: TrajectorySet) -> np.ndarray:
    """Return each gene's standard deviation over every trajectory's states (scaled units), ``(genes,)``.

    A gene detected in a few cells varies little once its cells are averaged into states; a large
    weight on it moves a target's rate as little as a small weight on a gene that varies fully.
    Multiplying an input's weights by its spread scores what the regulator's observed variation does.
    """
    d = len(ts.genes)
    spread = np.concatenate([v[:, :d] for v in ts.values], axis=0).std(axis=0)
    return np.maximum(spread, SPREAD_FLOOR)  # a constant gene keeps its edges, scored near zero


def edge_scores(adj: np.ndarray, spread: np.ndarray | None) -> np.ndarray:
    """Return a graph's scores (outputs x inputs, order 1): ``adj`` itself, or a copy times ``spread`` per input."""
    return adj if spread is None else adj * spread[None, :]


def path_network(
    models: Iterable[SparseODE], ts: TrajectorySet, spread: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Score every pair by the fits of a penalty search together, and sign it (outputs x inputs).

    Each fit's graph is divided by its largest entry and the graphs are averaged over the fits (from
    the full graph of the smallest lambda to the empty one of the largest): a pair scores high when
    its dependence is strong relative to the others and survives stronger penalties (``spread``: each
    graph scored by :func:`edge_scores`). The sign is that of the fits' Jacobians averaged over the
    training states, each over its largest entry.
    One pass over ``models``: one fit (read back from disk where the search spilled it) and its two
    matrices in memory at a time.
    """
    score, slope = ScaledMean(), ScaledMean()
    for model in models:
        score.add(edge_scores(model.adjacency(), spread))
        slope.add(mean_jacobian(model, ts))
        del model  # before the next fit is read back
    mean = score.mean()
    sign = slope.mean()  # a new array
    np.sign(sign, out=sign)
    sign[mean == 0] = 0
    return mean, sign


def record_params(setup: Setup, model: SparseODE) -> dict[str, Any]:
    """Everything needed to rerun a fit, h5ad-safe."""
    config = model.config
    return {
        **setup.ts.params,
        "method": config.method,
        "order": config.order,
        "lam": config.lam,
        "lam1": config.lam1,
        "hidden": list(config.hidden),
        "random_state": config.random_state,
        "model": _h5ad_safe(
            {k: v for k, v in vars(config).items() if k not in ("var_names", "inputs") and v is not None}
        ),
        "fit": _h5ad_safe({k: v for k, v in setup.fit_kwargs.items() if k not in ("progress_bar", "monitor")}),
        **_h5ad_safe(
            {k: v for k, v in setup.settings.items() if k in ("field", "window", "regulators", "prior", "adaptive")}
        ),
    }


def write_results(
    adata: AnnData,
    model: SparseODE,
    ts: TrajectorySet,
    key_added: str,
    params: dict,
    extra: dict | None = None,
    window: int | None = None,
    search_models: Iterable[SparseODE] | None = None,
    edge_score: str = "weights",
) -> None:
    """Write a fitted model's graph, signs, fitted values and record (plus ``extra`` entries) into ``adata``.

    ``window``: the fit's window length (its training MSE is recorded on windows), ``None`` for whole
    trajectories. ``search_models``: the fits of the penalty search, whose scores of every pair
    (:func:`path_network`) go to ``varp[key_added + "_path"]`` and ``varp[key_added + "_path_sign"]``.
    ``edge_score``: one of :data:`EDGE_SCORES`; the graph's zero pattern, and so its summary, is the same.
    """
    idx = adata.var_names.get_indexer(ts.genes)
    d = len(ts.genes)
    spread = regulator_spread(ts) if edge_score == "effects" else None
    varp = {}
    if search_models:  # first, while no other gene x gene matrix is held (each fit's are)
        path_score, path_sign = path_network(search_models, ts, spread)
        varp[f"{key_added}_path"] = _to_varp(adata.n_vars, idx, path_score[:, :d].T)
        varp[f"{key_added}_path_sign"] = _to_varp(adata.n_vars, idx, path_sign[:, :d].T)
        del path_score, path_sign
    adj = model.adjacency()  # outputs x inputs
    sign = np.sign(mean_jacobian(model, ts))
    sign[adj == 0] = 0
    varp[key_added] = _to_varp(adata.n_vars, idx, edge_scores(adj, spread)[:, :d].T)
    varp[f"{key_added}_sign"] = _to_varp(adata.n_vars, idx, sign[:, :d].T)
    if model.config.order == 2:
        varp[f"{key_added}_velocity"] = _to_varp(adata.n_vars, idx, adj[:, d:].T)
        varp[f"{key_added}_velocity_sign"] = _to_varp(adata.n_vars, idx, sign[:, d:].T)

    fitted = np.full((adata.n_obs, adata.n_vars), np.nan, dtype=np.float32)
    v0 = initial_velocities(model, ts)
    for k, start in enumerate(t[0] for t in ts.times):
        cells = np.flatnonzero(ts.cell_lineage == k)
        # cells before the first (binned) time get x0; times in float32, the solver's: 30,000 cells of one
        # lineage have times that differ in float64 and coincide in float32
        cell_t = np.maximum(ts.cell_time[cells], start).astype(np.float32)
        grid = np.unique(np.r_[np.float32(start), cell_t])
        pred = model.predict(grid, ts.x0[k], v0=None if v0 is None else v0[k], held=ts.held_rows(k, 1))
        fitted[np.ix_(cells, idx)] = ts.unscale(k, pred[np.searchsorted(grid, cell_t)])
    train_mse = dict(zip(ts.lineages, lineage_mse(model, ts, window), strict=True))
    summary = sparsity_summary(model, adj)
    off = sign[:, :d] * candidate_mask(model)[:, :d]
    record = {
        "params": _h5ad_safe(params),
        "history": {k: np.asarray(v) for k, v in model.history.as_dict().items() if k != "interrupted"},
        "metrics": {
            "train_mse": float(np.mean(list(train_mse.values()))),
            "train_mse_per_lineage": train_mse,
            **summary,
            "activating_edges": int((off > 0).sum()),
            "repressing_edges": int((off < 0).sum()),
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


def path_record(search: Search, lo_hi: tuple[float, float]) -> dict[str, Any]:
    """Return the search's table (arrays per column, h5ad-safe), the rule and the searched range."""
    table = search.table()
    out: dict[str, Any] = {c: table[c].to_numpy() for c in table.columns}
    out["stage"] = table["stage"].to_numpy().astype(str)
    return {"table": out, "rule": search.reason, "searched": [float(lo_hi[0]), float(lo_hi[1])]}
