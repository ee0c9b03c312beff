from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd
from anndata import AnnData

from ._dask import dask_client
from ._fit import warn_if_degenerate
from ._predict import validation_mse
from ._results import check_edge_score, path_record, record_params, write_results
from ._select import LambdaSearch
from ._setup import setup
from ._utils import writes_nothing_when_interrupted

if TYPE_CHECKING:
    from distributed import Client


@writes_nothing_when_interrupted
def lambda_path(
    adata: AnnData,
    lams: Sequence[float] | None = None,
    *,
    method: str = "pathreg",
    validation: AnnData | None = None,
    keep: float = 0.5,
    holdout_every: int = 5,
    max_extend: int = 3,
    key_added: str = "scnode",
    copy: bool = False,
    return_models: bool = False,
    client: Client | str | None = None,
    search_dir: str | os.PathLike | None = None,
    edge_score: str = "weights",
    **kwargs: Any,
) -> pd.DataFrame | tuple[Any, ...]:
    """Fit a range of penalty weights, tabulate them, and keep the selected one.

    Each ``lam`` is fitted independently, from the same initial weights (no warm start carries one
    fit's gates into the next), so a value gives the same graph whichever grid it is part of. Each
    is scored on validation data: every ``holdout_every``-th time point of each lineage, held out of
    every fit and predicted as the fit was trained (from the initial state, or from the observed
    state at each window's start), or, with ``validation``, another AnnData (e.g. a donor) scored as
    :func:`scnode.tl.score` does.

    **Selection rule.** Let *best* be the fit with the smallest validation error and *sparsest* the
    fit of the largest ``lam``; a fit's gain is the share of ``val(sparsest) - val(best)`` it
    recovers. The selected ``lam`` is the largest whose gain is at least ``keep`` (default: it keeps
    half of what the best fit's graph explains beyond the sparsest one), passing over fits whose graph
    is full or all-or-nothing per target (most targets with no regulator or every allowed one) when a
    sound graph keeps the gain too.

    **Range.** The rule needs both ends: a fit whose graph is empty (the reference of the gain) and
    one that keeps (nearly, 95 %) every candidate edge. Without ``lams``, the search starts at 0.1 and
    extends by decades, each side only while its end is not yet full (or empty), until it has both;
    it then fits the half-decades on either side of the selected value and, while the selected graph
    is full or all-or-nothing per target, the midpoint towards the next sparser fit (too many targets
    with every regulator) or denser one (too many with none), twice at most. With ``lams``, the grid
    is fitted and extended beyond either end by the grid's own step until it has both ends, up to
    ``max_extend`` fits a side. Every fit here is refitted and validated after its refit
    (:func:`scnode.tl.fit_sparse_ode` validates before the refit and refits only the selected fit).
    The table's ``stage`` column says which fits the grid held and which the search added;
    ``uns[key_added]["path"]`` records the rule and the searched range.

    Fits run here one after another, or, with ``client``, each round of them as parallel Dask tasks
    (the same results: each fit depends only on its ``lam`` and the seed).

    Parameters
    ----------
    adata
        Training cells (see :func:`scnode.tl.fit_sparse_ode`).
    lams
        Penalty weights to try; ``None``: search (see above).
    method
        Sparsity method (``"base"`` has no penalty to scan).
    validation
        Held-out AnnData with the same genes; default: held-out time points of ``adata``.
    keep
        Share of the validation gain the selected fit keeps (in (0, 1]).
    holdout_every
        Without ``validation``: hold out every this-many-th time point of each lineage.
    max_extend
        With ``lams``: fits added at most beyond either end.
    key_added, copy
        As in :func:`scnode.tl.fit_sparse_ode`.
    return_models
        Also return every fitted model (a list, in increasing order of ``lam``). The search keeps
        large fits on disk while it runs (:mod:`scnode.tl._store`); this reads them all back into memory.
    client
        A :class:`distributed.Client` or a scheduler address (``pip install scnode[dask]``; the workers
        need scnode installed; their progress bars are off). ``None``: everything here.
    search_dir
        As in :func:`scnode.tl.fit_sparse_ode`: a directory that keeps each fit as it ends, so that an
        interrupted call resumes (not with ``validation``).
    edge_score
        As in :func:`scnode.tl.fit_sparse_ode`: ``"weights"`` or ``"effects"``.
    **kwargs
        Preprocessing, model and training arguments of :func:`scnode.tl.fit_sparse_ode` (``time_key``,
        ``lineage_key``, ``genes``, ``regulators``, ``prior``, ``order``, ``lam1``, ``field``,
        ``hidden``, ``n_iter``, ``refit_iter``, ``window``, ``device``, ``random_state``, ...).

    Returns
    -------
    The fits as a DataFrame, one row per ``lam`` in increasing order: ``lam``, ``val_mse`` (mean
    over the held-out points or the validation lineages, scaled units), ``train_mse`` (the last
    iteration's), ``feature_sparsity``, ``weight_sparsity``, ``n_edges``, ``targets_without_regulators``,
    ``targets_with_all_regulators``, ``median_regulators``, ``edge_share`` (share of the candidate
    edges kept), ``seconds``, ``stage`` (``"grid"``, ``"extended"``, ``"refined"``), ``gain_kept`` and
    ``selected``. With ``copy=True`` the modified copy comes first, with ``return_models=True`` the
    models last. Writes what :func:`scnode.tl.fit_sparse_ode` writes, for the selected ``lam``, with
    the table, the rule and the searched range in ``adata.uns[key_added]["path"]`` and every pair
    scored by all the fits together in ``adata.varp[key_added + "_path"]`` (and ``"_path_sign"``).

    Warns
    -----
    UserWarning
        When the selected graph is empty, full or all-or-nothing per target, or the selection is an end
        of the searched range.
    """
    if method == "base":
        raise ValueError("method='base' has no penalty; choose a sparsity method for a path.")
    if lams is not None:
        lams = sorted(float(v) for v in lams)
        if not lams:
            raise ValueError("lams is empty; give at least one penalty weight (or None to search).")
        if min(lams) < 0:
            raise ValueError(f"Penalty weights must be >= 0, got {min(lams)}.")
    kwargs.pop("lam", None)
    if kwargs.pop("adaptive", "auto") is True:
        raise ValueError("lambda_path runs one search; the adaptive second search is fit_sparse_ode's (lam='auto').")
    check_edge_score(edge_score, kwargs.get("order", 1))
    st = setup(adata, method=method, adaptive=False, **kwargs)
    scorer = None
    if validation is not None:
        fit_kwargs = st.fit_kwargs

        def scorer(model: Any) -> float:
            return validation_mse(validation, model, {"batch_time": st.window} if st.window else fit_kwargs)

    with dask_client(client) as connected:
        fit_kwargs = {**st.fit_kwargs, "progress_bar": st.fit_kwargs.get("progress_bar", True) and connected is None}
        searcher = LambdaSearch(
            st.model,
            st.ts,
            window=st.window,
            fit_kwargs=fit_kwargs,
            holdout_every=holdout_every,
            keep=keep,
            within=st.within,
            client=connected,
            scorer=scorer,
            search_dir=search_dir,
        )
        search = searcher.run_auto() if lams is None else searcher.run_grid(lams, max_extend)
    table = search.table()
    model = search.model()
    lo, hi = float(table["lam"].min()), float(table["lam"].max())
    warn_if_degenerate(model, "the selected fit")
    searcher.warn_if_at_end()
    params = {**record_params(st, model), "selection": search.reason, "searched": [lo, hi], "edge_score": edge_score}
    params["validation"] = "held-out AnnData" if validation is not None else f"every {holdout_every}th time point"
    target = adata.copy() if copy else adata
    extra = {"path": path_record(search, (lo, hi))}
    write_results(
        target,
        model,
        st.ts,
        key_added,
        params,
        extra=extra,
        window=st.window,
        search_models=search.models,
        edge_score=edge_score,
    )
    out: list[Any] = [table]
    if copy:
        out.insert(0, target)
    if return_models:
        order = sorted(range(len(search.models)), key=lambda i: search.rows[i]["lam"])
        out.append([search.models[i] for i in order])
    search.models.close()  # the fits returned are in memory now: the spilled ones leave the disk
    return out[0] if len(out) == 1 else tuple(out)
