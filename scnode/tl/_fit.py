from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from ..core import adjacency, get_method
from ..model import SparseODE
from ..pp import TrajectorySet, prepare_trajectories
from ._adaptive import adaptive_factors
from ._dask import dask_client
from ._predict import lineage_mse
from ._regulators import prior_penalty_factors, resolve_regulators
from ._retime import retime_cells
from ._select import LambdaSearch, Search
from ._utils import (
    candidate_mask,
    check_n_iter,
    degenerate_graph,
    initial_velocities,
    mean_of_scaled,
    sparsity_summary,
    used_pairs,
    writes_nothing_when_interrupted,
)

if TYPE_CHECKING:
    from distributed import Client

FIELDS = ("auto", "per_gene", "shared")
"""Vector fields of :func:`fit_sparse_ode`: see its ``field`` parameter."""
WINDOW_SHARE = 0.1
"""``window="auto"``: windows span this share of a lineage's time points (at least 3)."""
RETIMED_KEY = "_scnode_retimed"
"""``obs`` column of the refits' times (``refine_time``), in the light copy that carries them."""


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
        return block.astype(np.float32)
    rows, cols = np.meshgrid(idx, idx, indexing="ij")
    keep = block != 0
    return sparse.csr_matrix((block[keep].astype(np.float32), (rows[keep], cols[keep])), shape=(n_vars, n_vars))


@dataclass
class Setup:
    """A fit's prepared trajectories, how to build its models and how to train them."""

    ts: TrajectorySet
    build: Callable[[float], SparseODE]
    fit_kwargs: dict[str, Any]
    window: int | None
    settings: dict[str, Any]
    within: float | None = None
    factors: np.ndarray | None = None

    @property
    def adaptive(self) -> bool:
        """Whether the automatic penalty is searched a second time (``settings["adaptive"]``)."""
        return bool(self.settings.get("adaptive", False))

    def model(self, lam: float) -> SparseODE:
        """Return a new, unfitted model with penalty weight ``lam``."""
        return self.build(lam)

    def reweighted(self, factors: np.ndarray) -> Callable[[float], SparseODE]:
        """Return ``build(lam)`` for models whose pairs are penalised by ``factors`` (the adaptive stage)."""
        return partial(self.build, pair_factors=factors)


ORDER_DEFAULTS: dict[int, dict[str, Any]] = {
    1: {"scale_by": "lineage", "n_bins": 100, "x0_cells": 5, "within": None, "adaptive": False},
    2: {"scale_by": "all", "n_bins": None, "x0_cells": 1, "within": 2.0, "adaptive": True},
}
"""Preprocessing of ``fit_sparse_ode``'s ``"auto"`` settings. Order 1 (cells along pseudotime): each
lineage scaled on its own, cells averaged in 100 bins, the initial state from the first 5 cells.
Order 2 (trajectories of one physical system, observed at their times): one scaling for every
trajectory, the observations themselves, the first one as the initial state (and the initial
velocity estimated from the first time points, :func:`scnode.pp.prepare_trajectories`); the
automatic penalty is the largest within 2x of the best validation error (``within``,
:class:`scnode.tl._select.LambdaSearch`), the rule of ``benchmarks/synthetic.py``, searched twice:
the second time with each pair penalised by the inverse of its dependence's size in the first
search's fit (mean absolute Jacobian; ``adaptive``, :mod:`scnode.tl._adaptive`)."""

HORIZON_WARMUP_SHARE = 0.3
"""Second-order whole-trajectory fits: share of the penalised iterations over which the fitted time
span grows from 10 % of each trajectory to all of it (``horizon_warmup``)."""


SINGLE_CELL_GATE_EPS = 1e-16
"""First-order fits: Adam's ``eps`` of the gate group. The gates' gradients (1e-10 to 2e-9 on paul15
with 1000 genes) sit below torch's 1e-8, which turns Adam into plain gradient descent on them: the
penalty's identical push then moves every gate in lockstep, and the graph is full below a threshold
of λ and empty above it (docs/results.md, "Why the gates collapse")."""

PENALTY_DELAY_SHARE = 0.25
"""First-order fits: share of the penalised iterations fitted without the penalty first, so that the
gates' data gradients differ before the penalty pushes them (``penalty_delay``)."""


def _field_kwargs(field: str, method: str, order: int, hidden: Sequence[int] | None) -> dict[str, Any]:
    """Model arguments of a named field (``model_kwargs`` override them)."""
    if field not in FIELDS:
        raise ValueError(f"field must be one of {FIELDS}, got {field!r}.")
    spec = get_method(method)
    if field == "auto":
        field = "per_gene" if spec.skip is None else "shared"
    if field == "per_gene":
        if spec.skip is not None:
            raise ValueError(f"field='per_gene' is not available for {method!r} (its skip acts on a shared layer).")
        kwargs: dict[str, Any] = {"per_output": True, "hidden": (8,) if hidden is None else tuple(hidden)}
        if order == 1:
            kwargs["decay"] = True
        if spec.gated:
            kwargs["gates"] = "inputs"
        return kwargs
    kwargs = {"hidden": (32, 32) if hidden is None else tuple(hidden)}
    if order == 2 and spec.skip is None and not spec.grouped:
        kwargs["linear"] = True  # a linear term beside the network: a pruned field still extrapolates
    return kwargs


def _resolve_window(window: int | str | None, ts: TrajectorySet) -> int | None:
    if window is None:
        return None
    shortest = min(len(t) for t in ts.times)
    if window == "auto":
        return max(3, round(WINDOW_SHARE * float(np.median([len(t) for t in ts.times]))))
    if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 2:
        raise ValueError(f"window must be 'auto', None or an integer >= 2, got {window!r}.")
    if window > shortest:
        raise ValueError(f"window={window} is longer than the shortest lineage ({shortest} time points).")
    return int(window)


def setup(
    adata: AnnData,
    *,
    method: str = "pathreg",
    time_key: str = "dpt_pseudotime",
    lineage_key: str | None = None,
    perturbation_key: str | None = None,
    layer: str | None = None,
    genes: Sequence[str] | str | None = None,
    regulators: Sequence[str] | str | None = None,
    prior: pd.DataFrame | None = None,
    prior_strength: float = 0.9,
    order: int = 1,
    lam1: float | None = 0.0,
    field: str = "auto",
    hidden: Sequence[int] | None = None,
    n_iter: int = 400,
    refit_iter: int | None = None,
    lr: float = 1e-2,
    window: int | str | None = "auto",
    x0_noise: float | str = "auto",
    scaling: str = "minmax",
    scale_by: str = "auto",
    trim_start: int = 0,
    trim_end: int = 0,
    n_bins: int | str | None = "auto",
    x0_cells: int | str = "auto",
    adaptive: bool | str = "auto",
    device: str = "auto",
    random_state: int = 0,
    progress_bar: bool = True,
    model_kwargs: dict | None = None,
    fit_kwargs: dict | None = None,
) -> Setup:
    """Check the arguments, prepare the trajectories, say how to build and train the models (:func:`fit_sparse_ode`)."""
    get_method(method)
    check_n_iter(n_iter)
    if lam1 is not None and lam1 < 0:
        raise ValueError(f"lam1 must be >= 0, got {lam1}.")
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}.")
    auto = ORDER_DEFAULTS[order]
    scale_by = auto["scale_by"] if scale_by == "auto" else scale_by
    n_bins = auto["n_bins"] if isinstance(n_bins, str) and n_bins == "auto" else n_bins
    x0_cells = auto["x0_cells"] if isinstance(x0_cells, str) and x0_cells == "auto" else x0_cells
    if isinstance(window, str) and window == "auto" and order == 2:
        window = None
    ts = prepare_trajectories(
        adata,
        time_key=time_key,
        lineage_key=lineage_key,
        layer=layer,
        genes=genes,
        scaling=scaling,
        scale_by=scale_by,
        trim_start=trim_start,
        trim_end=trim_end,
        n_bins=n_bins,
        x0_cells=x0_cells,
        perturbation_key=perturbation_key,
    )
    kwargs = {**_field_kwargs(field, method, order, hidden), **(model_kwargs or {})}
    settings: dict[str, Any] = {"field": field}
    regs = resolve_regulators(adata, regulators, ts.genes)
    if regs is not None:
        kwargs["inputs"] = regs["index"]
        settings["regulators"] = regs["record"]
    factors = None
    if prior is not None:
        if not (kwargs.get("per_output") or get_method(method).grouped):
            raise ValueError("prior= needs one network per gene: field='per_gene' (the default for order 1).")
        factors, settings["prior"] = prior_penalty_factors(
            prior, ts.genes, prior_strength, None if regs is None else regs["index"]
        )
    if fit_kwargs and "batch_time" in fit_kwargs:  # windows given as a fit setting: they are the window
        window = fit_kwargs["batch_time"]
    win = _resolve_window(window, ts)
    fit_kw: dict[str, Any] = {"n_iter": n_iter, "lr": lr, "progress_bar": progress_bar}
    if win is None and order == 2:  # whole trajectories from a random field blow up: lengthen them gradually
        fit_kw["horizon_warmup"] = round(HORIZON_WARMUP_SHARE * n_iter)
    if order == 1:  # gates graded by the data, not moved in lockstep by the penalty
        fit_kw.update(gate_eps=SINGLE_CELL_GATE_EPS, penalty_delay=round(PENALTY_DELAY_SHARE * n_iter))
    if refit_iter is not None:
        fit_kw["refit_iter"] = refit_iter
    if win is not None:
        fit_kw.update(batch_time=win, batch_size=32)
    if x0_noise == "auto":  # whole trajectories of cells: start from noisy initial states, as a new sample would
        x0_noise = 0.0 if win is not None or order == 2 else float(np.sqrt(np.mean(ts.x0_sem**2)))
    elif isinstance(x0_noise, str) or not x0_noise >= 0:
        raise ValueError(f"x0_noise must be 'auto' or a number >= 0, got {x0_noise!r}.")
    if x0_noise:
        fit_kw["x0_noise"] = float(x0_noise)
    fit_kw.update(fit_kwargs or {})
    settings.update(window=win, model=dict(kwargs), fit={k: v for k, v in fit_kw.items() if k != "progress_bar"})
    kwargs.pop("var_names", None)

    per_pair = bool(kwargs.get("per_output")) or get_method(method).grouped
    if isinstance(adaptive, str):
        if adaptive != "auto":
            raise ValueError(f"adaptive must be 'auto', True or False, got {adaptive!r}.")
        adaptive = auto["adaptive"] and per_pair and method != "base"
    elif adaptive and not per_pair:
        raise ValueError(
            "adaptive=True penalises each (target, input) pair by its own factor and needs one network per "
            "gene: field='per_gene' (or method='grouplasso')."
        )
    settings["adaptive"] = bool(adaptive)

    def build(lam: float, pair_factors: np.ndarray | None = None) -> SparseODE:
        model = SparseODE(
            len(ts.genes),
            method=method,
            order=order,
            lam=lam,
            lam1=lam1,
            device=device,
            random_state=random_state,
            var_names=ts.genes,
            penalty_weights=factors if pair_factors is None else pair_factors,
            **kwargs,
        )
        model.preprocessing = dict(ts.params)
        return model

    build(0.0)  # check the model arguments before any fit
    return Setup(ts, build, fit_kw, win, settings, auto["within"], factors)


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


def path_network(models: Sequence[SparseODE], ts: TrajectorySet) -> tuple[np.ndarray, np.ndarray]:
    """Score every pair by the fits of a penalty search together, and sign it (outputs x inputs).

    Each fit's graph is divided by its largest entry and the graphs are averaged over the fits (from
    the full graph of the smallest lambda to the empty one of the largest): a pair scores high when
    its dependence is strong relative to the others and survives stronger penalties. The sign is
    that of the fits' Jacobians averaged over the training states, each over its largest entry.
    """
    score = mean_of_scaled([model.adjacency() for model in models])
    slope = mean_of_scaled([mean_jacobian(model, ts) for model in models])
    return score, np.sign(slope) * (score != 0)


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


def _timed(adata: AnnData, layer: str | None) -> AnnData:
    """Return a light AnnData for refits on new times: the same matrix (``layer`` as ``X``), copies of obs and var."""
    x = adata.X if layer is None else adata.layers[layer]
    return AnnData(X=x, obs=adata.obs.copy(), var=adata.var.copy())


def write_results(
    adata: AnnData,
    model: SparseODE,
    ts: TrajectorySet,
    key_added: str,
    params: dict,
    extra: dict | None = None,
    window: int | None = None,
    search_models: Sequence[SparseODE] | None = None,
) -> None:
    """Write a fitted model's graph, signs, fitted values and record (plus ``extra`` entries) into ``adata``.

    ``window``: the fit's window length (its training MSE is recorded on windows), ``None`` for whole
    trajectories. ``search_models``: the fits of the penalty search, whose scores of every pair
    (:func:`path_network`) go to ``varp[key_added + "_path"]`` and ``varp[key_added + "_path_sign"]``.
    """
    idx = adata.var_names.get_indexer(ts.genes)
    d = len(ts.genes)
    adj = model.adjacency()  # outputs x inputs
    sign = np.sign(mean_jacobian(model, ts)) * (adj != 0)
    varp = {
        key_added: _to_varp(adata.n_vars, idx, adj[:, :d].T),
        f"{key_added}_sign": _to_varp(adata.n_vars, idx, sign[:, :d].T),
    }
    if search_models:
        path_score, path_sign = path_network(search_models, ts)
        varp[f"{key_added}_path"] = _to_varp(adata.n_vars, idx, path_score[:, :d].T)
        varp[f"{key_added}_path_sign"] = _to_varp(adata.n_vars, idx, path_sign[:, :d].T)
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


def warn_if_degenerate(model: SparseODE, what: str, *, stacklevel: int = 4) -> None:
    """Warn when a fitted graph is empty, full or all-or-nothing per target (see :func:`degenerate_graph`)."""
    adj = model.adjacency()
    problem = degenerate_graph(model, adj, sparsity_summary(model, adj))
    if problem is None:
        return
    lam = model.config.lam
    warnings.warn(
        f"The graph of {what} (lam={lam:g}) is degenerate: {problem}. With lam='auto' (the default) the penalty "
        "is chosen on held-out time points; scn.tl.lambda_path shows the whole range (scn.pl.lambda_path).",
        UserWarning,
        stacklevel=stacklevel,
    )


def _empty_monitor(n_iter: int) -> Callable[[int, Any], None]:
    """Return a training monitor that warns (once) as soon as the penalty has cut every edge."""
    warned = False

    def monitor(iteration: int, system: Any) -> None:
        nonlocal warned
        if warned:
            return
        empty = adjacency(system).abs().max() == 0
        system.release()  # the deterministic gates and weights: not kept until the next step
        if empty:
            warned = True
            warnings.warn(
                f"The penalty cut every edge by iteration {iteration} of {n_iter}: the fit will end with an "
                "empty graph. Pass a smaller lam, or lam='auto'.",
                UserWarning,
                stacklevel=2,  # shown once, from inside the fit
            )

    return monitor


def path_record(search: Search, lo_hi: tuple[float, float]) -> dict[str, Any]:
    """Return the search's table (arrays per column, h5ad-safe), the rule and the searched range."""
    table = search.table()
    out: dict[str, Any] = {c: table[c].to_numpy() for c in table.columns}
    out["stage"] = table["stage"].to_numpy().astype(str)
    return {"table": out, "rule": search.reason, "searched": [float(lo_hi[0]), float(lo_hi[1])]}


def _fit_prepared(
    st: Setup,
    *,
    lam: float | str,
    method: str,
    order: int,
    n_iter: int,
    holdout_every: int,
    keep: float,
    client: Client | str | None,
) -> tuple[SparseODE, list[SparseODE] | None, dict | None]:
    """Fit a prepared setup (the penalty search or one fit of a fixed lam): the model, the search's fits, record."""
    if lam != "auto":  # a fixed lam is fitted once
        st.settings["adaptive"] = False
    extra, models = None, None
    if lam == "auto" and method != "base":
        with dask_client(client) as connected:

            def searched(build: Callable[[float], SparseODE]) -> Search:
                rule = {"holdout_every": holdout_every, "keep": keep, "within": st.within, "client": connected}
                refit = "selected" if order == 1 else "all"
                return LambdaSearch(
                    build, st.ts, window=st.window, fit_kwargs=st.fit_kwargs, refit=refit, **rule
                ).run_auto()

            search = searched(st.model)
            first = None
            if st.adaptive:  # again, each pair penalised by the inverse of its size in the first search's fit
                first = search
                chosen = first.model()
                sizes = mean_jacobian(chosen, st.ts, absolute=True)
                search = searched(st.reweighted(adaptive_factors(sizes, used_pairs(chosen), st.factors)))
        model, models = search.model(), search.models
        lams = search.lams()
        extra = {"path": path_record(search, (min(lams), max(lams)))}
        if first is not None:
            lams = first.lams()
            extra["path"]["first_stage"] = path_record(first, (min(lams), max(lams)))
    else:
        model = st.model(0.0 if lam == "auto" else float(lam))
        monitor = _empty_monitor(n_iter) if method != "base" else None
        v0 = initial_velocities(model, st.ts)
        model.fit(st.ts.times, st.ts.values, x0=st.ts.x0, v0=v0, held=st.ts.held, monitor=monitor, **st.fit_kwargs)
    return model, models, extra


@writes_nothing_when_interrupted
def fit_sparse_ode(
    adata: AnnData,
    *,
    method: str = "pathreg",
    time_key: str = "dpt_pseudotime",
    lineage_key: str | None = None,
    perturbation_key: str | None = None,
    layer: str | None = None,
    genes: Sequence[str] | str | None = None,
    regulators: Sequence[str] | str | None = None,
    prior: pd.DataFrame | None = None,
    prior_strength: float = 0.9,
    order: int = 1,
    lam: float | str = "auto",
    lam1: float | None = 0.0,
    field: str = "auto",
    hidden: Sequence[int] | None = None,
    n_iter: int = 400,
    refit_iter: int | None = None,
    lr: float = 1e-2,
    window: int | str | None = "auto",
    x0_noise: float | str = "auto",
    scaling: str = "minmax",
    scale_by: str = "auto",
    trim_start: int = 0,
    trim_end: int = 0,
    n_bins: int | str | None = "auto",
    x0_cells: int | str = "auto",
    adaptive: bool | str = "auto",
    keep: float = 0.5,
    holdout_every: int = 5,
    device: str = "auto",
    random_state: int = 0,
    progress_bar: bool = True,
    key_added: str = "scnode",
    copy: bool = False,
    return_model: bool = False,
    model_kwargs: dict | None = None,
    fit_kwargs: dict | None = None,
    client: Client | str | None = None,
    refine_time: int = 0,
) -> AnnData | SparseODE | tuple[AnnData, SparseODE] | None:
    """Fit a sparse neural ODE to cells ordered by pseudotime; the learned gene network goes to ``varp``.

    All lineages (categories of ``lineage_key``) share one vector field. The defaults are the
    single-cell setting that measured best on data they were not tuned on (docs/results.md): one
    small network per gene with the gene's own decay and gates on its inputs (``field="per_gene"``),
    cells averaged in 100 pseudotime bins per lineage, training on windows of 10 % of a lineage
    started from the observed state (multiple shooting; lineages that branch from one start cannot
    be followed from it by one deterministic ODE), and the penalty weight chosen on held-out time
    points (``lam="auto"``): a search over independent fits from a full to an empty graph (see
    :func:`scnode.tl.lambda_path` for the rule), each validated at the end of its penalised phase
    (its zero pattern fixed), and only the selected one refitted. See
    :func:`scnode.pp.prepare_trajectories` for the preprocessing and :class:`scnode.SparseODE` for
    the model.

    Parameters
    ----------
    adata
        Cells in ``obs`` (with a time column), genes in ``var``. Not modified on errors.
    method
        ``"base"``, ``"l0"``, ``"cnode"``, ``"pathreg"``, ``"lassonet_inner"``, ``"lassonet_outer"``
        or ``"grouplasso"``.
    time_key
        Column of ``obs`` with the (pseudo)time.
    lineage_key
        Column of ``obs`` naming each cell's lineage; ``None`` for one trajectory.
    perturbation_key
        Column of ``obs`` naming the gene(s) perturbed in each cell (knockout, knockdown or
        over-expression; several joined by ``"+"``; missing or ``"control"`` for unperturbed cells).
        Each lineage's cells of one perturbation form their own trajectory, in which the perturbed
        genes are held at their observed level while the shared field moves the others: the fit
        learns from what the perturbation changed, which observational cells cannot tell (two
        regulators that always move together). The graph and signs come from the same one field.
        See :func:`scnode.pp.prepare_trajectories`.
    layer
        Layer to fit instead of ``X``.
    genes
        Genes to fit (names, or a boolean ``var`` column such as ``"highly_variable"``); default all.
    regulators
        Genes that may regulate others (names, e.g. ``scn.datasets.tf_list("human")``, or a boolean
        ``var`` column such as ``"is_tf"``); the other fitted genes are targets only, and the model
        builds no input weights for them (each gene still reads its own level, a self-loop). Names
        that are not among the fitted genes are ignored; ``uns[key_added]["params"]["regulators"]``
        counts them. ``None``: every fitted gene.
    prior
        A prior network: an edge list (DataFrame with columns ``source``, ``target`` and optionally
        ``weight``) or a regulators x targets DataFrame of weights. Prior edges are penalised less
        (``1 - prior_strength * weight / max weight`` times the penalty), not forced: the data can
        drop them and add others. Needs ``field="per_gene"``.
    prior_strength
        How much cheaper a prior edge of the largest weight is (0: not at all, 1: free).
    order
        1, or 2 for a second-order model (dependencies on velocities in ``varp[key_added + "_velocity"]``):
        trajectories of one physical system observed at their times (positions only). Its ``"auto"``
        settings differ: one scaling for all trajectories (``scale_by="all"``), no bins, the first
        observation as the initial state and the initial velocity estimated from the first time points
        (:attr:`scnode.pp.TrajectorySet.v0`), whole trajectories (``window=None``) whose fitted span
        grows over the first 30 % of the iterations, and the automatic penalty searched twice
        (``adaptive``).
    lam
        Penalty weight, or ``"auto"`` to choose it (see above; the search's table goes to
        ``uns[key_added]["path"]``).
    lam1
        PathReg's weight-path term (``None``: the method's default, the paper's).
    field
        ``"per_gene"``: one ``hidden``-wide network per gene (``per_output=True``), each gene's own
        decay (order 1) and, for the gated methods, gates on the inputs only; ``"shared"``: the
        paper's shared MLP (``hidden=(32, 32)``; with a linear term beside it for order 2 and the
        methods without a skip layer); ``"auto"``: per gene (shared for the LassoNet methods).
    hidden
        Hidden widths (``None``: ``(8,)`` per gene, ``(32, 32)`` shared).
    n_iter, refit_iter, lr
        Iterations of the penalised phase, of the refit with the zero pattern frozen (default
        ``n_iter // 2``), and the learning rate. Order 1 fits the first quarter of the penalised
        phase without the penalty and gives the gates' Adam an ``eps`` of 1e-16, so that the data,
        not the penalty alone, grades them (``penalty_delay``, ``gate_eps``; ``fit_kwargs`` override
        both).
    window
        Train on windows of this many time points, each started from the observed state, or on whole
        trajectories from their initial states (``None``, the paper's; initial states perturbed by
        their standard error). ``"auto"``: 10 % of a lineage's time points, at least 3 (order 1);
        whole trajectories (order 2).
    x0_noise
        Whole-trajectory fits: standard deviation of the noise added to the initial states at every
        iteration, so that the field learns to bring a new sample's noisy start back onto the
        trajectories; ``"auto"``: the initial states' standard error (:attr:`scnode.pp.TrajectorySet.x0_sem`).
        Windowed fits and second-order fits start from the data and use none (unless given).
    scaling, scale_by, trim_start, trim_end, n_bins, x0_cells
        Preprocessing, see :func:`scnode.pp.prepare_trajectories`. ``"auto"``: ``scale_by="lineage"``,
        ``n_bins=100`` and ``x0_cells=5`` for order 1; ``"all"``, ``None`` and ``1`` for order 2.
    adaptive
        With ``lam="auto"``: search the penalty a second time, each (target, input) pair penalised by
        the inverse of its score in the first search's selected fit (relative to the strongest pair,
        at most 1000x; times the prior's factors), so that weak pairs are cut to exact zeros and
        strong ones keep their size (:mod:`scnode.tl._adaptive`; the first search's table goes to
        ``uns[key_added]["path"]["first_stage"]``). Needs one network per gene. ``"auto"``: on for
        order 2, off for order 1. A fixed ``lam`` is fitted once.
    keep, holdout_every
        The automatic penalty's rule (share of the validation gain kept; order 2 instead selects the
        largest lambda within 2x of the best validation error) and held-out time points.
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
        Further arguments of :class:`~scnode.SparseODE` and :meth:`~scnode.SparseODE.fit` (they
        override the field's and the defaults' settings).
    client
        A Dask client (or scheduler address): the fits of the automatic penalty search run as
        parallel tasks (``pip install scnode[dask]``).
    refine_time
        Re-time the cells this many times: after a fit, each fitted cell moves to the time of the
        nearest state on its trajectory's fitted path (from the trajectory's initial state), and the
        whole fit (penalty search included) is made again on the new times. For pseudotimes that
        misorder cells, such as diffusion pseudotime on genes that rise and fall again; each round
        costs another fit. The graph is the last fit's; the times it used go to
        ``obs[key_added + "_time"]`` (cells not fitted keep their time), and each round's selected
        λ, the rank correlation of its new times with the times it was fitted on and the cells' mean
        distance to their path to ``uns[key_added]["refine_time"]``. See docs/results.md for when
        it helps.

    Returns
    -------
    ``None`` (or the copy with ``copy=True``; the model with ``return_model=True``; both as a tuple
    with both) and writes:

    ``adata.varp[key_added]``
        ``n_vars x n_vars`` dependency scores, **rows = regulators (inputs), columns = targets
        (outputs)**; zero for genes not fitted and for exact zeros of the model.
    ``adata.varp[key_added + "_sign"]``
        The sign of each edge: +1 where the regulator raises the target's rate (activation), -1
        where it lowers it (repression), from the field's Jacobian averaged over the observed states.
    ``adata.varp[key_added + "_velocity"]``, ``adata.varp[key_added + "_velocity_sign"]``
        (order 2) dependencies of each target's acceleration on each regulator's velocity.
    ``adata.varp[key_added + "_path"]``, ``adata.varp[key_added + "_path_sign"]``
        (``lam="auto"``) every candidate pair scored by the fits of the penalty search together:
        each fit's graph over its largest entry, averaged over the fits from the full graph to the
        empty one. Pairs that stay strong under stronger penalties rank first. Use it to rank all
        pairs (as GENIE3-style scores are compared, e.g. with :func:`scnode.tl.evaluate_grn`
        ``key=key_added + "_path"``); the graph itself is ``varp[key_added]``. Signs from the fits'
        Jacobians, likewise averaged.
    ``adata.layers[key_added + "_fitted"]``
        The model's trajectory at each cell's time from its lineage's initial state, in the data's
        units (NaN where not fitted).
    ``adata.uns[key_added]``
        ``params`` (everything to rerun, the resolved field, window and the regulators' and prior's
        overlap with the genes), ``history`` (loss, mse, penalty, lr, nfe per iteration), ``metrics``
        (training MSE in scaled units per lineage, on windows for windowed fits; feature and weight
        sparsity, number of edges, targets without any regulator and with every allowed one, median
        regulators per target, activating and repressing edges), ``genes``, ``lineages`` and, with
        ``lam="auto"``, ``path`` (the search's ``table``, its ``rule`` and the ``searched`` range).
    ``adata.obs[key_added + "_time"]``
        (``refine_time``) the times of the last fit; ``params["time_key"]`` names this column
        (``params["refined_time_key"]`` the one given).

    Warns
    -----
    UserWarning
        When the graph is empty, full, or all-or-nothing per target (most targets with no regulator
        or with every allowed one); with a fixed ``lam``, as soon as the penalty has cut every edge.
    """
    if not (lam == "auto" or (isinstance(lam, int | float) and not isinstance(lam, bool))):
        raise ValueError(f"lam must be a number >= 0 or 'auto', got {lam!r}.")
    if lam != "auto" and lam < 0:
        raise ValueError(f"lam must be >= 0, got {lam}.")
    if isinstance(refine_time, bool) or not isinstance(refine_time, int | np.integer) or refine_time < 0:
        raise ValueError(f"refine_time must be an integer >= 0, got {refine_time!r}.")
    fixed_refit = refit_iter
    data, data_layer, fit_time_key, rounds = adata, layer, time_key, []
    for round_ in range(int(refine_time) + 1):
        st = setup(
            data,
            method=method,
            time_key=fit_time_key,
            lineage_key=lineage_key,
            perturbation_key=perturbation_key,
            layer=data_layer,
            genes=genes,
            regulators=regulators,
            prior=prior,
            prior_strength=prior_strength,
            order=order,
            lam1=lam1,
            field=field,
            hidden=hidden,
            n_iter=n_iter,
            refit_iter=fixed_refit,
            lr=lr,
            window=window,
            x0_noise=x0_noise,
            scaling=scaling,
            scale_by=scale_by,
            trim_start=trim_start,
            trim_end=trim_end,
            n_bins=n_bins,
            x0_cells=x0_cells,
            adaptive=adaptive,
            device=device,
            random_state=random_state,
            progress_bar=progress_bar,
            model_kwargs=model_kwargs,
            fit_kwargs=fit_kwargs,
        )
        model, models, extra = _fit_prepared(
            st,
            lam=lam,
            method=method,
            order=order,
            n_iter=n_iter,
            holdout_every=holdout_every,
            keep=keep,
            client=client,
        )
        if round_ == refine_time:
            break
        moved = retime_cells(data, model, st.ts, data_layer)
        rounds.append({"lam": float(model.config.lam), **{k: moved[k] for k in ("spearman", "distance")}})
        if data is adata:  # a light AnnData for the refits: the same matrix (as X), obs with the new times
            data, data_layer, fit_time_key = _timed(adata, layer), None, RETIMED_KEY
        data.obs[RETIMED_KEY] = np.where(np.isnan(moved["time"]), data.obs[time_key], moved["time"])
    if method != "base":
        warn_if_degenerate(model, f"the {method!r} fit")
    params = {**record_params(st, model), "refine_time": int(refine_time)}
    if refine_time:  # the light copy's settings are the user's; the times of the last fit go beside the user's
        params.update(layer=layer, time_key=f"{key_added}_time", refined_time_key=time_key)
        extra = {**(extra or {}), "refine_time": {k: np.array([r[k] for r in rounds]) for k in rounds[0]}}
    target = adata.copy() if copy else adata
    write_results(target, model, st.ts, key_added, params, extra=extra, window=st.window, search_models=models)
    if refine_time:
        target.obs[f"{key_added}_time"] = data.obs[RETIMED_KEY].to_numpy()
    if copy and return_model:
        return target, model
    if copy:
        return target
    return model if return_model else None
