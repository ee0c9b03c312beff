"""A fit's preparation: the checked arguments, the prepared trajectories, how to build and train its models."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from ..core import get_method
from ..model import SparseODE
from ..pp import TrajectorySet, prepare_trajectories
from ._regulators import prior_penalty_factors, resolve_regulators
from ._utils import check_n_iter

FIELDS = ("auto", "per_gene", "shared")
"""Vector fields of :func:`scnode.tl.fit_sparse_ode`: see its ``field`` parameter."""
WINDOW_SHARE = 0.1
"""``window="auto"``: windows span this share of a lineage's time points (at least 3)."""


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
    1: {"scale_by": "lineage", "n_bins": 100, "x0_cells": 5, "min_cells": "auto", "within": None, "adaptive": False},
    2: {"scale_by": "all", "n_bins": None, "x0_cells": 1, "min_cells": 0, "within": 2.0, "adaptive": True},
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
of λ and empty above it (docs/results.md, "Why the gates needed grading")."""


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


def _warn_if_shorter_than_window(ts: TrajectorySet, window: int | None) -> None:
    """Warn that the trajectories with fewer time points than ``window`` take no part in training."""
    if window is None:
        return
    short = {name: len(t) for name, t in zip(ts.lineages, ts.times, strict=True) if len(t) < window}
    if short:
        named = ", ".join(f"{str(k)!r} ({v})" for k, v in short.items())
        warnings.warn(
            f"scnode: trajectory(ies) {named} have fewer time points than the window of {window}, and the fit "
            "does not train on them. Pass a shorter window=, or n_bins= for more time points.",
            UserWarning,
            stacklevel=3,
        )


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
    binning: str = "time",
    min_cells: int | str = "auto",
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

    def resolved(value: Any, name: str) -> Any:  # an "auto" preprocessing setting: the order's default
        return auto[name] if isinstance(value, str) and value == "auto" else value

    scale_by, n_bins = resolved(scale_by, "scale_by"), resolved(n_bins, "n_bins")
    x0_cells, min_cells = resolved(x0_cells, "x0_cells"), resolved(min_cells, "min_cells")
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
        binning=binning,
        min_cells=min_cells,
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
    _warn_if_shorter_than_window(ts, win)
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
