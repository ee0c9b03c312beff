from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from anndata import AnnData

from ..model import SparseODE
from ..pp import TrajectorySet
from ._utils import initial_velocities, prepare_like, time_grids, trajectories_anndata

SPREAD = (0.25, 0.75)
"""Quantiles of the models' effects written as ``delta_low`` and ``delta_high`` (several models)."""


def simulate_intervention(
    adata: AnnData,
    model: SparseODE | Sequence[SparseODE],
    *,
    hold: Mapping[str, float] | None = None,
    knockout: Sequence[str] | str | None = None,
    start: float = 0.0,
    extrapolate: float = 0.0,
    n_points: int = 100,
    **prepare_kwargs: Any,
) -> AnnData:
    """Hold genes at a value, or knock them out, from a time on, and integrate the fitted model.

    Each lineage of ``adata`` is prepared like the training data; the model runs unchanged from the
    lineage's initial state up to ``start`` and then with the intervened genes fixed (rate zero)
    at their values. ``adata`` is not modified.

    Given several models (e.g. every fit of the penalty search: :func:`scnode.tl.fit_sparse_ode` or
    :func:`scnode.tl.lambda_path` with ``return_models=True``), each is run so, and the effect is
    their **median**: per lineage, time and gene, the median over the models of intervened minus
    unchanged, with the interquartile range beside it. A sparse fit commits to one of the regulator
    sets that explain the data equally well, and a knockout tests exactly the edges it chose; fits
    under different penalties choose differently, and their median keeps the effects they agree on.
    On the GRN suite's simulated knockouts, held out of training, the median over a search's fits
    predicted the effects' size better than one selected fit (docs/results.md, "Unseen knockouts").

    Parameters
    ----------
    adata
        Cells with the model's genes and time column (the training data or another donor). Each
        lineage is scaled from the cells given here, as in training; after a fit with
        ``perturbation_key`` (where a lineage's perturbed and unperturbed cells are scaled together),
        pass all the training cells to run the fit's own unperturbed trajectories in the fit's units.
    model
        A fitted model (from :func:`scnode.tl.fit_sparse_ode` with ``return_model=True``), or a
        sequence of models fitted to the same genes with the same preprocessing.
    hold
        ``{gene: value}`` in the data's units (e.g. ``{"GATA1": 2.0}``).
    knockout
        Genes set to zero (in the data's units).
    start
        When the intervention begins, as a fraction of each lineage's time span (0: from the start).
    extrapolate, n_points, **prepare_kwargs
        See :func:`scnode.tl.predict`.

    Returns
    -------
    AnnData like :func:`scnode.tl.predict`'s, with ``X`` the intervened trajectories,
    ``layers["control"]`` the unchanged ones, ``layers["delta"]`` intervened minus control (data
    units), ``layers["scaled"]`` the intervened values in scaled units, ``obs["intervened"]`` whether
    the intervention acts at that time, and ``uns["intervention"]`` what was done (``hold``,
    ``start``, ``n_models``). With several models: ``control`` is the median of their unchanged
    runs, ``delta`` the median of their effects, ``X = control + delta``, and ``layers["delta_low"]``
    and ``layers["delta_high"]`` the effects' 25th and 75th percentiles over the models.
    """
    models = _models(model)
    knockout = [knockout] if isinstance(knockout, str) else list(knockout or [])
    values = {str(g): float(v) for g, v in (hold or {}).items()}
    both = sorted(set(values) & set(knockout))
    if both:
        raise ValueError(f"Gene(s) {both} are both held and knocked out.")
    values.update({str(g): 0.0 for g in knockout})
    if not values:
        raise ValueError("Nothing to simulate: pass hold={gene: value} and/or knockout=[genes].")
    genes = models[0].config.var_names or []
    unknown = [g for g in values if g not in genes]
    if unknown:
        raise KeyError(f"Gene(s) {unknown} are not among the model's genes.")
    bad = [g for g, v in values.items() if not np.isfinite(v)]
    if bad:
        raise ValueError(f"The values of {bad} are not finite.")
    if not np.isfinite(start) or start < 0:
        raise ValueError(f"start must be a finite fraction >= 0 of the time span, got {start}.")

    ts = prepare_like(adata, models[0], prepare_kwargs)
    grids = time_grids(ts, extrapolate, n_points)
    onsets = [ts.times[k][0] + start * (ts.times[k][-1] - ts.times[k][0]) for k in range(len(grids))]
    plan = []  # per lineage, what every model runs: the held genes (scaled units), from when, its perturbation
    for k in range(len(grids)):
        held = {g: (v - ts.center[k][ts.genes.index(g)]) / ts.scale[k][ts.genes.index(g)] for g, v in values.items()}
        perturbed = ts.held_rows(k, 1)
        if perturbed is not None and start > 0:
            raise ValueError(
                f"Trajectory {ts.lineages[k]!r} is perturbed from its start (perturbation_key); an intervention on it "
                "must start there too (start=0)."
            )
        plan.append({"hold": held, "start": None if perturbed is not None else onsets[k], "held": perturbed})
    runs = [_run(m, ts, grids, plan) for m in models]
    control = [np.median([run[0][k] for run in runs], axis=0) for k in range(len(grids))]
    effects = [np.stack([run[1][k] - run[0][k] for run in runs]) for k in range(len(grids))]
    changed = [c + np.median(e, axis=0) for c, e in zip(control, effects, strict=True)]
    layers = {"control": control}
    if len(models) > 1:
        for name, q in zip(("low", "high"), SPREAD, strict=True):
            layers[name] = [c + np.quantile(e, q, axis=0) for c, e in zip(control, effects, strict=True)]
    out = trajectories_anndata(ts, grids, changed, layers)
    out.layers["delta"] = out.X - out.layers["control"]
    for name in ("low", "high"):
        if name in out.layers:
            out.layers[f"delta_{name}"] = out.layers.pop(name) - out.layers["control"]
    out.obs["intervened"] = np.concatenate([grid >= t_on for grid, t_on in zip(grids, onsets, strict=True)])
    out.uns["intervention"] = {"hold": values, "start": float(start), "n_models": len(models)}
    return out


def _models(model: SparseODE | Sequence[SparseODE]) -> list[SparseODE]:
    """Return the models to run, checked to share their genes and preprocessing."""
    models = [model] if isinstance(model, SparseODE) else list(model)
    if not models:
        raise ValueError("No model given: pass a fitted SparseODE or a non-empty list of them.")
    wrong = sorted({type(m).__name__ for m in models if not isinstance(m, SparseODE)})
    if wrong:
        raise TypeError(f"Expected fitted SparseODE models, got {wrong}.")
    first = models[0]
    for m in models[1:]:
        if list(m.config.var_names or []) != list(first.config.var_names or []):
            raise ValueError("The models were fitted to different genes; an ensemble needs one gene set, in one order.")
        if m.preprocessing != first.preprocessing:
            raise ValueError(
                "The models were fitted on differently prepared data (their preprocessing records differ); "
                "an ensemble runs every model on the same trajectories."
            )
    return models


def _run(
    model: SparseODE, ts: TrajectorySet, grids: list[np.ndarray], plan: list[dict]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Return one model's unchanged and intervened trajectories per lineage (scaled units).

    ``plan``: per lineage, the ``hold``, ``start`` and ``held`` arguments of :meth:`~scnode.SparseODE.predict`.
    """
    v0 = initial_velocities(model, ts)
    control = model.predict(grids, ts.x0, v0=v0, held=ts.held)
    changed = [
        model.predict(grid, ts.x0[k], v0=None if v0 is None else v0[k], **plan[k]) for k, grid in enumerate(grids)
    ]
    return list(control), changed
