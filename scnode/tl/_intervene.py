from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from anndata import AnnData

from ..model import SparseODE
from ._utils import initial_velocities, prepare_like, time_grids, trajectories_anndata


def simulate_intervention(
    adata: AnnData,
    model: SparseODE,
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

    Parameters
    ----------
    adata
        Cells with the model's genes and time column (the training data or another donor). Each
        lineage is scaled from the cells given here, as in training; after a fit with
        ``perturbation_key`` (where a lineage's perturbed and unperturbed cells are scaled together),
        pass all the training cells to run the fit's own unperturbed trajectories in the fit's units.
    model
        A fitted model (from :func:`scnode.tl.fit_sparse_ode` with ``return_model=True``).
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
    the intervention acts at that time, and ``uns["intervention"]`` what was done.
    """
    knockout = [knockout] if isinstance(knockout, str) else list(knockout or [])
    values = {str(g): float(v) for g, v in (hold or {}).items()}
    both = sorted(set(values) & set(knockout))
    if both:
        raise ValueError(f"Gene(s) {both} are both held and knocked out.")
    values.update({str(g): 0.0 for g in knockout})
    if not values:
        raise ValueError("Nothing to simulate: pass hold={gene: value} and/or knockout=[genes].")
    genes = model.config.var_names or []
    unknown = [g for g in values if g not in genes]
    if unknown:
        raise KeyError(f"Gene(s) {unknown} are not among the model's genes.")
    bad = [g for g, v in values.items() if not np.isfinite(v)]
    if bad:
        raise ValueError(f"The values of {bad} are not finite.")
    if not np.isfinite(start) or start < 0:
        raise ValueError(f"start must be a finite fraction >= 0 of the time span, got {start}.")

    ts = prepare_like(adata, model, prepare_kwargs)
    grids = time_grids(ts, extrapolate, n_points)
    v0 = initial_velocities(model, ts)
    control = model.predict(grids, ts.x0, v0=v0, held=ts.held)
    changed, acting = [], []
    for k, grid in enumerate(grids):
        t_on = ts.times[k][0] + start * (ts.times[k][-1] - ts.times[k][0])
        held = {g: (v - ts.center[k][ts.genes.index(g)]) / ts.scale[k][ts.genes.index(g)] for g, v in values.items()}
        perturbed = ts.held_rows(k, 1)
        if perturbed is not None and start > 0:
            raise ValueError(
                f"Trajectory {ts.lineages[k]!r} is perturbed from its start (perturbation_key); an intervention on it "
                "must start there too (start=0)."
            )
        at = None if perturbed is not None else t_on
        kw = {"v0": None if v0 is None else v0[k], "hold": held, "start": at, "held": perturbed}
        changed.append(model.predict(grid, ts.x0[k], **kw))
        acting.append(grid >= t_on)
    out = trajectories_anndata(ts, grids, changed, {"control": control})
    out.layers["delta"] = out.X - out.layers["control"]
    out.obs["intervened"] = np.concatenate(acting)
    out.uns["intervention"] = {"hold": values, "start": float(start)}
    return out
