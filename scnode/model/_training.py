"""Fitting a :class:`~scnode.SparseODE`: one fit, the warm-started penalty path, the refit of a state.

Kept apart from the model object as scvi-tools keeps its training loop apart from its model: the
object holds the configuration, the torch system and the history; these functions move it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..core import FitInterrupted, History, NonFiniteLossError, TrainConfig, Trajectories, train
from ..core.data import ArrayLike
from ._prediction import HeldLike, held_mask

if TYPE_CHECKING:
    from ._sparse_ode import SparseODE


def concat_histories(a: History, b: History) -> History:
    """One history of two consecutive fits."""
    da, db = a.as_dict(), b.as_dict()
    return History(**{k: da[k] + db[k] for k in da if k != "interrupted"}, interrupted=a.interrupted or b.interrupted)


N_ITER = 1000
"""Penalised iterations of a fit when none are given."""


def refit_iterations(n_iter: int, refit_iter: int | None) -> int:
    """Return the refit's iterations: ``refit_iter``, or by default half the penalised ones."""
    return n_iter // 2 if refit_iter is None else refit_iter


def fit(
    model: SparseODE,
    times: ArrayLike | Sequence[ArrayLike],
    values: ArrayLike | Sequence[ArrayLike],
    *,
    x0: ArrayLike | None = None,
    v0: ArrayLike | None = None,
    n_iter: int = N_ITER,
    refit_iter: int | None = None,
    horizon_warmup: int | None = None,
    batch_time: int | None = None,
    held: HeldLike | None = None,
    **train_kwargs: Any,
) -> SparseODE:
    """Fit ``model`` in place (see :meth:`scnode.SparseODE.fit`); its history is replaced."""
    refit_iter = refit_iterations(n_iter, refit_iter)
    if n_iter == 0 and refit_iter == 0:
        raise ValueError(
            "n_iter and refit_iter are both 0: nothing would be fitted, and the model would keep its random "
            "initial weights (every edge)."
        )
    if horizon_warmup is None:
        horizon_warmup = n_iter // 4 if batch_time is None else 0
    data = Trajectories.from_arrays(times, values, x0=x0, v0=v0)
    if data.n_vars != model.config.n_vars:
        raise ValueError(f"The data have {data.n_vars} variables but the model was built for {model.config.n_vars}.")
    if held is not None:
        data = data.with_held(held_mask(model, held, len(data)))
    data = data.to(model.device)
    for key in ("checkpoint", "resume"):
        if train_kwargs.get(key) is not None:
            train_kwargs[key] = str(train_kwargs[key])
    cfg = TrainConfig(
        n_iter=n_iter, refit_iter=refit_iter, horizon_warmup=horizon_warmup, batch_time=batch_time, **train_kwargs
    )
    model.system.train()
    try:
        model.history = train(
            model.system,
            model.method,
            data,
            penalty_kwargs=model.config.penalty_kwargs,
            solver=model.config.solver_options,
            config=cfg,
            generator=model.generator,
        )
    except NonFiniteLossError as err:
        model.history = err.history or History()
        raise
    except FitInterrupted as err:
        model.history, err.model = err.history, model
        raise
    finally:
        model.system.eval()
    return model


def penalised_path(
    model: SparseODE,
    times: ArrayLike | Sequence[ArrayLike],
    values: ArrayLike | Sequence[ArrayLike],
    lams: Sequence[float],
    *,
    x0: ArrayLike | None = None,
    v0: ArrayLike | None = None,
    n_iter: int = 1000,
    path_iter: int | None = None,
    **fit_kwargs: Any,
) -> list[SparseODE]:
    """Run the sequential half of :meth:`~scnode.SparseODE.fit_path`: the warm-started penalised chain, no refits.

    Returns a copy of the penalised state after each ``lam`` (increasing order), its history the
    path's up to that ``lam``; ``model`` keeps the last state. Each copy is then refitted
    independently by :func:`refit_copy` (serially, or as parallel tasks by :func:`scnode.tl.lambda_path`).
    """
    if path_iter is None:
        path_iter = max(1, n_iter // 2)
    if n_iter < 1 or path_iter < 1:
        raise ValueError(
            f"A penalty path needs penalised iterations: n_iter >= 1 and path_iter >= 1, got {n_iter} and {path_iter}."
        )
    continued = {**fit_kwargs, "horizon_warmup": 0}  # warm starts fit the whole span at once
    lams = sorted(float(v) for v in lams)
    states, path_history = [], History()
    for k, lam in enumerate(lams):
        if lam < 0:
            raise ValueError(f"Penalty weights must be >= 0, got {lam}.")
        model.config.lam = lam
        first = k == 0
        try:
            fit(
                model,
                times,
                values,
                x0=x0,
                v0=v0,
                n_iter=n_iter if first else path_iter,
                refit_iter=0,
                **(fit_kwargs if first else continued),
            )
        except FitInterrupted as err:
            done = f" ({', '.join(f'{v:g}' for v in lams[:k])})" if k else ""
            err.add_context(
                f"The penalty path stopped at lam={lam:g}, {k} of its {len(lams)} weights done{done}.", resumable=False
            )
            raise
        path_history = concat_histories(path_history, model.history)
        state = model.clone()
        state.history = History(**copy.deepcopy(path_history.as_dict()))
        states.append(state)
    model.history = path_history
    return states


def refit_copy(
    state: SparseODE,
    times: ArrayLike | Sequence[ArrayLike],
    values: ArrayLike | Sequence[ArrayLike],
    *,
    x0: ArrayLike | None = None,
    v0: ArrayLike | None = None,
    refit_iter: int,
    **fit_kwargs: Any,
) -> SparseODE:
    """Run the parallel half of :meth:`~scnode.SparseODE.fit_path`: refit a copy of ``state``, its zeros frozen.

    Depends on nothing but the state and the arguments (its own generator state is cloned), so the
    refits of a path give the same result in any order or process. The copy's history is the
    state's followed by the refit's.
    """
    refitted = state.clone()
    if refit_iter == 0:
        return refitted
    continued = {**fit_kwargs, "horizon_warmup": 0}
    try:
        fit(refitted, times, values, x0=x0, v0=v0, n_iter=0, refit_iter=refit_iter, **continued)
    except FitInterrupted as err:
        err.add_context(f"It was the refit of lam={state.config.lam:g} on the penalty path.", resumable=False)
        raise
    refitted.history = concat_histories(state.history, refitted.history)
    return refitted
