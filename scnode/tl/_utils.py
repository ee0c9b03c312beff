"""Helpers shared by the tools: preparing AnnData like a fitted model, and trajectories as AnnData."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from scipy import sparse

from ..core import FitInterrupted, feature_sparsity
from ..model import SparseODE
from ..pp import TrajectorySet, prepare_trajectories

PREPARE_KEYS = (
    "time_key",
    "lineage_key",
    "layer",
    "scaling",
    "scale_time",
    "scale_by",
    "reference",
    "trim_start",
    "trim_end",
    "n_bins",
    "x0_cells",
    "perturbation_key",
    "binning",
    "min_cells",
)
"""Arguments of :func:`scnode.pp.prepare_trajectories` that a model remembers from its fit."""


P = ParamSpec("P")
R = TypeVar("R")


def writes_nothing_when_interrupted(tool: Callable[P, R]) -> Callable[P, R]:
    """Mark a tool that writes into an AnnData only after its fits: an interrupt passing through says so."""

    @functools.wraps(tool)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return tool(*args, **kwargs)
        except FitInterrupted as err:
            err.add_context(f"scn.tl.{tool.__name__} stopped and wrote nothing into the AnnData.")
            raise

    return wrapper


def check_n_iter(n_iter: int) -> None:
    """Raise a ValueError unless a tool's fit has a penalised phase (``n_iter >= 1``)."""
    if n_iter < 1:
        raise ValueError(
            f"n_iter must be at least 1, got {n_iter}: the penalised iterations are what learns the sparse graph "
            "(with none, the graph would be the random initial network's, every edge)."
        )


def initial_velocities(model: SparseODE, ts: TrajectorySet) -> np.ndarray | None:
    """Return the lineages' estimated initial velocities for a second-order model, ``None`` for a first-order one."""
    return ts.v0 if model.config.order == 2 else None


def prepare_like(adata: AnnData, model: SparseODE, overrides: dict[str, Any]) -> TrajectorySet:
    """Prepare ``adata`` as the model's training data was prepared (``overrides`` take precedence)."""
    unknown = sorted(set(overrides) - set(PREPARE_KEYS))
    if unknown:
        raise TypeError(f"Unknown preprocessing argument(s) {unknown}; allowed: {list(PREPARE_KEYS)}.")
    genes = model.config.var_names
    if genes is None:
        raise ValueError("The model has no var_names; fit it with scnode.tl.fit_sparse_ode or pass var_names.")
    missing = [g for g in genes if g not in adata.var_names]
    if missing:
        raise KeyError(
            f"The model's gene(s) {missing[:10]}{' ...' if len(missing) > 10 else ''} are not in adata.var_names."
        )
    prep = {k: v for k, v in (model.preprocessing or {}).items() if k in PREPARE_KEYS}
    prep.update(overrides)
    if prep.get("n_bins") is None and "binning" not in overrides:  # every cell: no bins of either kind
        prep.pop("binning", None)
    return prepare_trajectories(adata, genes=genes, **prep)


def time_grids(ts: TrajectorySet, extrapolate: float, n_points: int) -> list[np.ndarray]:
    """Per lineage, ``n_points`` times from its first time to ``extrapolate`` spans beyond its last."""
    if extrapolate < 0:
        raise ValueError(f"extrapolate must be >= 0, got {extrapolate}.")
    if n_points < 2:
        raise ValueError(f"n_points must be >= 2, got {n_points}.")
    return [np.linspace(t[0], t[-1] + extrapolate * (t[-1] - t[0]), n_points) for t in ts.times]


def trajectories_anndata(
    ts: TrajectorySet, grids: list[np.ndarray], scaled: list[np.ndarray], layers: dict[str, list[np.ndarray]]
) -> AnnData:
    """Model trajectories as AnnData: one observation per (lineage, time), values in the data's units.

    ``obs`` has the data's time column (original units), ``scaled_time``, the lineage column and
    ``extrapolated`` (beyond the lineage's last observed time); ``layers["scaled"]`` the scaled values
    and each entry of ``layers`` (scaled arrays per lineage) in the data's units.
    """
    time_key = ts.params.get("time_key", "time")
    lineage_key = ts.params.get("lineage_key") or "lineage"
    obs = pd.DataFrame(
        {
            time_key: np.concatenate([g * ts.time_scale[k] + ts.time_offset[k] for k, g in enumerate(grids)]),
            "scaled_time": np.concatenate(grids),
            lineage_key: pd.Categorical(
                np.repeat(ts.lineages, [len(g) for g in grids]), categories=list(dict.fromkeys(ts.lineages))
            ),
            "extrapolated": np.concatenate([g > ts.times[k][-1] + 1e-12 for k, g in enumerate(grids)]),
        }
    )
    obs.index = [f"{lin}_{i}" for lin, g in zip(ts.lineages, grids, strict=True) for i in range(len(g))]

    def unscaled(arrays: list[np.ndarray]) -> np.ndarray:
        return np.concatenate([ts.unscale(k, a) for k, a in enumerate(arrays)]).astype(np.float32)

    out = AnnData(unscaled(scaled), obs=obs, var=pd.DataFrame(index=list(ts.genes)))
    out.layers["scaled"] = np.concatenate(scaled).astype(np.float32)
    for name, arrays in layers.items():
        out.layers[name] = unscaled(arrays)
    return out


def network(adata: AnnData, key: str) -> sparse.coo_matrix:
    """Read the learned network ``varp[key]`` (rows regulators, columns targets) as a COO matrix."""
    if key not in adata.varp:
        raise KeyError(
            f"adata.varp has no {key!r}; run scnode.tl.fit_sparse_ode first (available: {list(adata.varp)})."
        )
    return sparse.coo_matrix(adata.varp[key])


def fitted_genes(adata: AnnData, key: str) -> list[str]:
    """Genes of the fit behind ``varp[key]`` (or its ``_velocity``, ``_frequency`` blocks); all if unrecorded."""
    genes = adata.uns.get(key.removesuffix("_frequency").removesuffix("_velocity"), {}).get("genes")
    return [str(g) for g in (adata.var_names if genes is None else genes)]


def sparsity_summary(model: SparseODE, adj: np.ndarray | None = None) -> dict[str, Any]:
    """Sparsity of a fitted model's graph (``adj``: its :meth:`~scnode.SparseODE.adjacency`, if at hand).

    ``feature_sparsity``, ``weight_sparsity``, ``n_edges`` (nonzero regulator -> target entries,
    self-loops included), ``targets_without_regulators`` (targets whose rate depends on no other
    gene: they only follow their own level), ``targets_with_all_regulators`` (targets that depend on
    every gene allowed to regulate them) and ``median_regulators`` (other genes per target;
    velocities count as inputs for order 2). The last three tell a graph that selects each target's
    regulators from one that is sparse because whole targets were switched off (or dense because
    nothing was cut).
    """
    d = model.config.n_vars
    if adj is None:
        adj = model.adjacency()  # one evaluation of the graph for every number
    off = adj != 0
    off[:, :d][np.eye(d, dtype=bool)] = False
    allowed = candidate_mask(model)
    per_target = off.sum(1)
    return {
        "feature_sparsity": feature_sparsity(torch.as_tensor(adj)),
        "weight_sparsity": model.weight_sparsity,
        "n_edges": int((adj[:, :d] != 0).sum()),
        "targets_without_regulators": int((per_target == 0).sum()),
        "targets_with_all_regulators": int(((off == allowed) | ~allowed).all(1).sum()),
        "median_regulators": float(np.median(per_target)),
    }


def used_pairs(model: SparseODE) -> np.ndarray:
    """Which (target, input) entries of the adjacency the model has weights for (self-loops included)."""
    d, order = model.config.n_vars, model.config.order
    used = np.zeros((d, order * d), dtype=bool)
    inputs = range(d) if model.config.inputs is None else model.config.inputs
    for k in range(order):
        used[:, [k * d + i for i in inputs]] = True
    return used


def candidate_mask(model: SparseODE) -> np.ndarray:
    """Which (target, input) entries of the adjacency may be non-zero between distinct genes."""
    allowed = used_pairs(model)
    d = model.config.n_vars
    allowed[:, :d][np.eye(d, dtype=bool)] = False
    return allowed


def degenerate_graph(model: SparseODE, adj: np.ndarray, summary: dict[str, Any]) -> str | None:
    """Say what is degenerate about a fitted graph (empty, full, or all-or-nothing per target), or ``None``.

    ``adj``: the model's :meth:`~scnode.SparseODE.adjacency`; ``summary``: its :func:`sparsity_summary`.
    All-or-nothing: most targets have either no regulator or every allowed one, so the graph does
    not choose regulators target by target. Where no target may have more than one regulator (one
    regulator in the list, or two genes) every graph is all-or-nothing by construction, and only an
    empty or a full graph is named.
    """
    d = model.config.n_vars
    allowed = candidate_mask(model)
    edges = int(((adj != 0) & allowed).sum())
    if not allowed.any():
        return None
    if edges == 0:
        return "it is empty: no gene drives another"
    if edges == int(allowed.sum()):
        return "it is full: every gene drives every other one it may"
    without, full = summary["targets_without_regulators"], summary["targets_with_all_regulators"]
    if without + full > d / 2 and allowed.sum(1).max() > 1:
        return (
            f"it is all-or-nothing per target: {without} of {d} targets have no regulator and {full} have every "
            "allowed one"
        )
    return None


class ScaledMean:
    """Running mean of matrices, each divided by its largest absolute entry (all-zero ones stay zero).

    How several fits' graphs (or Jacobians) are put on one scale and averaged, as tree ensembles
    average their trees' importances. Matrices are added one at a time (at 5000 genes each fit's
    graph is 100 MB), in the order and precision of ``np.mean`` over their stack.
    """

    def __init__(self) -> None:
        self.total: np.ndarray | None = None
        self.n = 0

    def add(self, m: np.ndarray) -> None:
        """Add one matrix (scaled by its largest absolute entry)."""
        peak = np.abs(m).max()
        scaled = m / peak if peak > 0 else np.array(m)
        if self.total is None:
            self.total = scaled
        else:
            self.total += scaled
        self.n += 1

    def mean(self) -> np.ndarray:
        """Return the mean of the matrices added so far."""
        if self.total is None:
            raise ValueError("mean_of_scaled needs at least one matrix.")
        return self.total / self.n


def mean_of_scaled(matrices: Iterable[np.ndarray]) -> np.ndarray:
    """Return the mean of the matrices, each divided by its largest absolute entry (:class:`ScaledMean`).

    A generator keeps one matrix in memory at a time.
    """
    acc = ScaledMean()
    for m in matrices:
        acc.add(m)
    return acc.mean()
