"""The AnnData entry point: :func:`fit_sparse_ode` (the penalty search or one fit, re-timing rounds)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from anndata import AnnData

from ..core import adjacency
from ..model import SparseODE
from ._adaptive import adaptive_factors
from ._dask import dask_client
from ._results import check_edge_score, mean_jacobian, path_record, record_params, write_results
from ._retime import retime_cells
from ._select import LambdaSearch, Search
from ._setup import Setup, setup
from ._utils import (
    degenerate_graph,
    initial_velocities,
    sparsity_summary,
    used_pairs,
    writes_nothing_when_interrupted,
)

if TYPE_CHECKING:
    from distributed import Client

    from ._store import FitStore

RETIMED_KEY = "_scnode_retimed"
"""``obs`` column of the refits' times (``refine_time``), in the light copy that carries them."""
AUTO_REFINE_ROUNDS = 2
"""``refine_time="auto"``: at most this many re-timings."""
AUTO_REFINE_RHO = 0.9
"""``refine_time="auto"``: re-time again while the fitted path's order of the cells agrees with the times
the fit was given by less than this rank correlation (per trajectory, averaged)."""


def _timed(adata: AnnData, layer: str | None) -> AnnData:
    """Return a light AnnData for refits on new times: the same matrix (``layer`` as ``X``), copies of obs and var."""
    x = adata.X if layer is None else adata.layers[layer]
    return AnnData(X=x, obs=adata.obs.copy(), var=adata.var.copy())


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
    search_dir: str | os.PathLike | None,
) -> tuple[SparseODE, FitStore | None, dict | None]:
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
                    build, st.ts, window=st.window, fit_kwargs=st.fit_kwargs, refit=refit, search_dir=search_dir, **rule
                ).run_auto()

            search = searched(st.model)
            first = None
            if st.adaptive:  # again, each pair penalised by the inverse of its size in the first search's fit
                first = search
                chosen = first.model()
                sizes = mean_jacobian(chosen, st.ts, absolute=True)
                first.models.close()  # only its table is kept: its spilled fits leave the disk
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
    binning: str = "time",
    min_cells: int | str = "auto",
    adaptive: bool | str = "auto",
    keep: float = 0.5,
    holdout_every: int = 5,
    device: str = "auto",
    random_state: int = 0,
    progress_bar: bool = True,
    key_added: str = "scnode",
    copy: bool = False,
    return_model: bool = False,
    return_models: bool = False,
    model_kwargs: dict | None = None,
    fit_kwargs: dict | None = None,
    client: Client | str | None = None,
    search_dir: str | os.PathLike | None = None,
    refine_time: int | str = 0,
    edge_score: str = "weights",
) -> AnnData | SparseODE | list[SparseODE] | tuple[Any, ...] | None:
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
    binning
        ``"time"``: equal-width pseudotime bins; ``"states"``: the cells clustered by expression, each
        cluster at its cells' mean pseudotime (see :func:`scnode.pp.prepare_trajectories`). Where the
        pseudotime is noisy, state bins keep distinct states apart: on the GRN suite's cells timed by
        the clock plus noise they rank edges better (docs/results.md); an option, not yet the default.
    min_cells
        Lineages with fewer cells are left out, with a warning naming them; ``0`` keeps every lineage.
        ``"auto"`` (order 1): fewer cells than ``n_bins`` and than 5 % of the largest lineage's, a
        stray group beside real lineages, such as the groups of 29 and 8 cells that ``sc.tl.dpt``
        split off paul15's 2730 (see :func:`scnode.pp.prepare_trajectories`); order 2 keeps every
        trajectory.
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
    return_models
        Also return every fit of the penalty search (``lam="auto"``), a list in increasing order of
        ``lam``: the selected fit refitted (the model ``return_model`` returns), the others as their
        penalised phase ended (the state the search validated and scored pairs with). Pass them to
        :func:`scnode.tl.simulate_intervention` for the median of their effects, which predicted
        unseen knockouts better than the selected fit alone (docs/results.md). With a fixed ``lam``:
        ``[model]``. Fits the search kept on disk (:mod:`scnode.tl._store`) are read back into memory.
    model_kwargs, fit_kwargs
        Further arguments of :class:`~scnode.SparseODE` and :meth:`~scnode.SparseODE.fit` (they
        override the field's and the defaults' settings).
    client
        A Dask client (or scheduler address): the fits of the automatic penalty search run as
        parallel tasks (``pip install scnode[dask]``).
    search_dir
        A directory to keep the automatic penalty search's fits in, each written as it ends. A later
        call that would make the same fit (the same data, preprocessing and settings) reads it back
        instead: an interrupted search (Ctrl-C, a job's time limit) resumes where it stopped, with the
        results of an uninterrupted one. Each set of settings gets its own subdirectory (a hash of
        what the fits depend on); delete them when done. For long searches (thousands of genes: at
        10,000 genes one fit takes 13-25 minutes on 2 CPU cores and its weights 0.7 GB; the whole call 2.4 hours).
    refine_time
        Re-time the cells this many times: after a fit, each fitted cell moves to the time of the
        nearest state on its trajectory's fitted path (from the trajectory's initial state), and the
        whole fit (penalty search included) is made again on the new times. For pseudotimes that
        misorder cells, such as diffusion pseudotime on genes that rise and fall again; each round costs
        another fit. The graph is the last fit's; the times it used go to ``obs[key_added + "_time"]``
        (cells not fitted keep their time, as do the cells of a trajectory whose path barely moves, such
        as a knockout that changes nothing: fewer than three distinct new times), and each round's
        selected λ, the rank correlation of its new times with the times it was fitted on, the cells'
        mean distance to their path and the number of trajectories that kept their times (``unordered``)
        to ``uns[key_added]["refine_time"]``. ``"auto"``: re-time while the times are not
        self-consistent, i.e. while the fitted path orders the cells it was fitted on with a rank
        correlation below :data:`AUTO_REFINE_RHO` (0.9) to their times, at most
        :data:`AUTO_REFINE_ROUNDS` (2) times, and keep, of the fits made, the one whose path passes
        closest to the cells (the cells' mean distance to it; ``params["refine_rounds"]`` counts the
        re-timings, ``params["refine_chosen"]`` names the fit kept, 0 for the given times, and the
        record holds every fit's check). A fit whose path keeps the given order costs one prediction
        more and is the fit of ``refine_time=0``. The order rule cannot tell a misordered pseudotime
        from a good time that one path cannot keep in order (a cycle, cells resting at a steady state):
        there it re-times too. See docs/results.md for when it helps.
    edge_score
        How ``varp[key_added]`` and ``varp[key_added + "_path"]`` score an edge: ``"weights"`` (the
        path product of the field's absolute weights, the paper's) or ``"effects"`` (that times the
        regulator's standard deviation over the training states: what its observed variation does to
        the target's rate). Weights favour regulators that vary little once cells are averaged into
        states, such as genes detected in few cells, which need large weights to matter; effects do
        not (docs/single_cell.md). The graph (which edges exist) is the same.

    Returns
    -------
    ``None``, or what is asked for, in this order (a tuple when more than one): the copy
    (``copy=True``), the model (``return_model=True``), the search's fits (``return_models=True``).
    Writes:

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
    if search_dir is not None and (lam != "auto" or method == "base"):
        raise ValueError(
            "search_dir keeps the fits of the automatic penalty search (lam='auto', a sparsity method); this call "
            "makes one fit. To resume one fit, pass fit_kwargs={'checkpoint': '<file>'}, then {'resume': '<file>'}."
        )
    auto = isinstance(refine_time, str) and refine_time == "auto"
    if not auto and (isinstance(refine_time, bool) or not isinstance(refine_time, int | np.integer) or refine_time < 0):
        raise ValueError(f"refine_time must be an integer >= 0 or 'auto', got {refine_time!r}.")
    max_rounds = AUTO_REFINE_ROUNDS if auto else int(refine_time)
    check_edge_score(edge_score, order)
    fixed_refit = refit_iter
    data, data_layer, fit_time_key, rounds = adata, layer, time_key, []
    candidates = []  # "auto": each fit with its cells' distance to its path and the times it used
    stores = []  # each search's store of fits, closed before returning
    for round_ in range(max_rounds + 1):
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
            binning=binning,
            min_cells=min_cells,
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
            search_dir=search_dir,
        )
        if models is not None:
            stores.append(models)
        if round_ == max_rounds and not auto:
            break
        moved = retime_cells(data, model, st.ts, data_layer)
        rounds.append(
            {
                "lam": float(model.config.lam),
                **{k: moved[k] for k in ("spearman", "distance")},
                "unordered": len(moved["unordered"]),
            }
        )
        if auto:
            used = None if data is adata else data.obs[RETIMED_KEY].to_numpy().copy()
            candidates.append((np.nan_to_num(moved["distance"], nan=np.inf), round_, st, model, models, extra, used))
        if round_ == max_rounds or (auto and not moved["spearman"] < AUTO_REFINE_RHO):
            break  # "auto": this fit's path keeps the order it was fitted on (NaN: a single time)
        if data is adata:  # a light AnnData for the refits: the same matrix (as X), obs with the new times
            data, data_layer, fit_time_key = _timed(adata, layer), None, RETIMED_KEY
        data.obs[RETIMED_KEY] = np.where(np.isnan(moved["time"]), data.obs[time_key], moved["time"])
    used = None if data is adata else data.obs[RETIMED_KEY].to_numpy()
    if auto:  # of the fits made, the one whose path passes closest to the cells (the first on ties)
        _, chosen, st, model, models, extra, used = min(candidates, key=lambda c: (c[0], c[1]))
    if method != "base":
        warn_if_degenerate(model, f"the {method!r} fit")
    refined = used is not None  # the kept fit ran on new times
    params = {**record_params(st, model), "refine_time": "auto" if auto else int(refine_time), "edge_score": edge_score}
    if auto:
        params.update(refine_rounds=round_, refine_chosen=chosen)
    if refined:  # the light copy's settings are the user's; the times of the last fit go beside the user's
        params.update(layer=layer, time_key=f"{key_added}_time", refined_time_key=time_key)
    if rounds:
        extra = {**(extra or {}), "refine_time": {k: np.array([r[k] for r in rounds]) for k in rounds[0]}}
    target = adata.copy() if copy else adata
    write_results(
        target,
        model,
        st.ts,
        key_added,
        params,
        extra=extra,
        window=st.window,
        search_models=models,
        edge_score=edge_score,
    )
    if refined:
        target.obs[f"{key_added}_time"] = used
    out: list[Any] = [target] if copy else []
    if return_model:
        out.append(model)
    if return_models:
        out.append([model] if models is None else sorted(models, key=lambda m: m.config.lam))
    for store in stores:  # every fit the caller gets is in memory now: the searches' spilled fits leave the disk
        store.close()
    return None if not out else out[0] if len(out) == 1 else tuple(out)
