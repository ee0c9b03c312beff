"""Choosing the penalty weight: independent fits on a lattice of lambdas that brackets the graph from full to empty.

Every lambda is fitted from scratch (same seed, same initial weights), so a fit does not depend on
which other lambdas were tried or in what order: two grids that share a value give it the same
graph. (A warm-started path carries the previous fit's gates along: started at a large lambda it can
close every gate before the data have been fitted, started small it keeps edges a fresh fit would
not.) The fits are independent tasks, so they also run in parallel on Dask.

Validation: every ``holdout_every``-th time point of each lineage (never the first or last) is left
out of every fit and predicted, as the fits were trained: from the lineage's initial state for
whole-trajectory fits, or from the observed state at the start of each window for windowed fits.

Rule: let ``best`` be the smallest validation error on the searched range and ``empty`` the error
of its sparsest fit. The gain of a fit is how much of ``empty - best`` it recovers; the selected
lambda is the largest whose gain is at least ``keep`` (default one half), passing over fits whose
graph is full or all-or-nothing per target if a sound one keeps the gain too. The search extends the
range until its sparsest fit has no edge left and its densest keeps (nearly) every edge, so that the
selection is never an end of the range by construction of the grid; then it refines around the
selected value (half-decade steps) and, while the selected graph is full or all-or-nothing per target,
towards its sparser or denser neighbour. An automatic search starts from one lambda and never fits
beyond a full or an empty graph: a smaller lambda than a full fit's keeps every edge too, a larger
one than an empty fit's none (on paul15 the search's densest full fit was its most expensive one).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..core import FitInterrupted
from ..model import SparseODE
from ..model._training import N_ITER, refit_copy, refit_iterations
from ..pp import TrajectorySet
from ._dask import map_tasks
from ._predict import lineage_mse
from ._search_dir import SearchDirectory
from ._store import FitStore
from ._utils import candidate_mask, degenerate_graph, initial_velocities, sparsity_summary

if TYPE_CHECKING:
    from distributed import Client

logger = logging.getLogger("scnode")

FULL_SHARE = 0.95
"""A graph keeping at least this share of its candidate edges counts as full (the dense end of a search)."""
START_LAM = 0.1
"""First lambda of an automatic search."""
MAX_DECADES = 5
"""How many decades an automatic search may extend beyond its first lambda on either side."""


def holdout_masks(times: list[np.ndarray], every: int) -> list[np.ndarray]:
    """Per lineage, a mask of held-out time points: every ``every``-th, never the first or last."""
    masks = []
    for t in times:
        mask = np.zeros(len(t), bool)
        mask[every::every] = True
        mask[[0, -1]] = False
        masks.append(mask)
    return masks


def held_out_errors(model: SparseODE, ts: TrajectorySet, held: list[np.ndarray], window: int | None) -> np.ndarray:
    """Squared errors (mean over genes) at the held-out time points, predicted as the model was trained."""
    if window is None:
        full = model.predict(ts.times, ts.x0, v0=initial_velocities(model, ts), held=ts.held)
        return np.concatenate([((p[h] - v[h]) ** 2).mean(1) for p, v, h in zip(full, ts.values, held, strict=True)])
    errors = []
    for k, (t, v, h) in enumerate(zip(ts.times, ts.values, held, strict=True)):
        starts = [s for s in range(len(t) - 1) if not h[s]]
        preds = model.predict([t[s : s + window] for s in starts], v[starts], held=ts.held_rows(k, len(starts)))
        for s, p in zip(starts, preds, strict=True):
            idx = np.arange(s, s + len(p))
            hit = h[idx].copy()
            hit[0] = False
            if hit.any():
                errors.append(((p[hit] - v[idx][hit]) ** 2).mean(1))
    return np.concatenate(errors) if errors else np.zeros(0)


@dataclass
class Search:
    """Fits of a lambda search and its selection."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    models: FitStore = field(default_factory=FitStore)
    """The fits, in the order of ``rows`` (large ones on disk: :class:`~scnode.tl._store.FitStore`)."""
    selected: int | None = None
    reason: str = ""

    def lams(self) -> list[float]:
        """Return the fitted lambdas."""
        return [r["lam"] for r in self.rows]

    def table(self) -> pd.DataFrame:
        """Return the fits as a DataFrame sorted by lambda, with the ``selected`` column."""
        frame = pd.DataFrame(self.rows)
        frame["selected"] = False
        if self.selected is not None:
            frame.loc[self.selected, "selected"] = True
        return frame.sort_values("lam", kind="stable").reset_index(drop=True)

    def model(self) -> SparseODE:
        """Return the selected fit."""
        return self.models[self.selected]


def _fit_task(
    lam: float,
    build: Callable[[float], SparseODE],
    ts: TrajectorySet,
    held: list[np.ndarray] | None,
    window: int | None,
    fit_kwargs: dict,
    scorer: Callable[[SparseODE], float] | None,
) -> tuple[SparseODE, dict[str, Any]]:
    """One fit of the search (from scratch) and its row: validation error, graph summary, time."""
    start = time.perf_counter()
    train = training_part(ts, held)
    model = build(lam)
    model.fit(train.times, train.values, x0=ts.x0, v0=initial_velocities(model, ts), held=ts.held, **fit_kwargs)
    val, train_mse = _errors(model, ts, train, held, window, scorer)
    adj = model.adjacency()
    candidates = candidate_mask(model)
    summary = sparsity_summary(model, adj)
    problem = degenerate_graph(model, adj, summary)
    row = {
        "lam": float(lam),
        "val_mse": val,
        "train_mse": train_mse,
        **summary,
        "edge_share": float(((adj != 0) & candidates).sum() / max(int(candidates.sum()), 1)),
        "graph": "ok" if problem is None else problem.split(":")[0].removeprefix("it is ").split(" per ")[0],
        "seconds": time.perf_counter() - start,
    }
    return model, row


def _log(row: dict[str, Any], stage: str) -> None:
    """Report one fit of a search as it ends (a long search's progress), on the ``scnode`` logger."""
    logger.info(
        "lambda search: lam %g (%s) val_mse %.4g, %d edges (%.0f %% of the candidates, graph %s), %.0f s",
        row["lam"], stage, row["val_mse"], row["n_edges"], 100 * row["edge_share"], row["graph"], row["seconds"],
    )  # fmt: skip


def training_part(ts: TrajectorySet, held: list[np.ndarray] | None) -> TrajectorySet:
    """Return the trajectories without their held-out time points (all of them when nothing is held out)."""
    if held is None:
        return ts
    times = [t[~h] for t, h in zip(ts.times, held, strict=True)]
    values = [v[~h] for v, h in zip(ts.values, held, strict=True)]
    return dataclasses.replace(ts, times=times, values=values)


def _errors(
    model: SparseODE,
    ts: TrajectorySet,
    train: TrajectorySet,
    held: list[np.ndarray] | None,
    window: int | None,
    scorer: Callable[[SparseODE], float] | None,
) -> tuple[float, float]:
    """Return a fit's validation error and its error on ``train`` (mean over lineages)."""
    if scorer is not None:
        val = float(scorer(model))
    else:
        errors = held_out_errors(model, ts, held, window)
        val = float(errors.mean()) if len(errors) else float("nan")
    return val, float(np.mean(lineage_mse(model, train, window)))


class LambdaSearch:
    """Run the fits of a search (serially or on Dask) and apply the rule.

    Parameters
    ----------
    build
        ``build(lam)`` returns a new, unfitted model with that penalty weight.
    ts
        The prepared trajectories.
    window
        Window length of windowed fits (``None``: whole trajectories), for the validation.
    fit_kwargs
        Arguments of :meth:`~scnode.SparseODE.fit`.
    holdout_every
        Hold out every this-many-th time point.
    keep
        The rule's share of the validation gain a selected fit must keep.
    within
        Instead of ``keep``: select the largest lambda whose validation error is at most ``within``
        times the best (glmnet's ``lambda.1se`` in spirit). For noise-free trajectories of a physical
        system, whose errors span orders of magnitude from the best fit to the empty graph, a share
        of the gain over the empty graph keeps fits far worse than the best.
    client
        Optional Dask client: the fits of each round run as parallel tasks.
    scorer
        ``scorer(model)`` returns a fit's validation error (e.g. on another donor); the fits then use
        every time point. ``None``: held-out time points.
    refit
        ``"all"``: every fit of the search runs its refit (``fit_kwargs``' ``refit_iter``) and is
        validated after it. ``"selected"``: the fits are validated at the end of their penalised phase
        (the zero pattern the refit would freeze) and only the selected one is refitted, exactly as
        its whole fit would have continued (the same data, generator state and refit); its row gains
        ``val_mse_refit`` and ``train_mse_refit``. A search then costs a refit per fit less.
    search_dir
        Directory to write each fit to as it ends; a fit found there (made from the same data and
        settings) is read back instead of fitted again, so an interrupted search resumes
        (:mod:`scnode.tl._search_dir`). Not with a ``scorer`` (a function cannot be fingerprinted).
    """

    def __init__(
        self,
        build: Callable[[float], SparseODE],
        ts: TrajectorySet,
        *,
        window: int | None,
        fit_kwargs: dict,
        holdout_every: int = 5,
        keep: float = 0.5,
        within: float | None = None,
        client: Client | None = None,
        scorer: Callable[[SparseODE], float] | None = None,
        refit: str = "all",
        search_dir: str | os.PathLike | None = None,
    ) -> None:
        if refit not in ("all", "selected"):
            raise ValueError(f"refit must be 'all' or 'selected', got {refit!r}.")
        if not 0.0 < keep <= 1.0:
            raise ValueError(f"keep must be in (0, 1], got {keep}.")
        if within is not None and not within >= 1.0:
            raise ValueError(f"within must be >= 1, got {within}.")
        if holdout_every < 2:
            raise ValueError(f"holdout_every must be at least 2, got {holdout_every}.")
        held = None if scorer is not None else holdout_masks(ts.times, holdout_every)
        if held is not None and not any(h.any() for h in held):
            raise ValueError(
                f"No time point can be held out for validation (every {holdout_every}th, never the first or last): "
                "the trajectories are too short; use more time points (n_bins) or a smaller holdout_every."
            )
        self.build, self.ts, self.window, self.fit_kwargs = build, ts, window, fit_kwargs
        self.held, self.keep, self.within, self.client, self.scorer = held, keep, within, client, scorer
        self.refit_iter = 0
        if refit == "selected":
            self.refit_iter = refit_iterations(fit_kwargs.get("n_iter", N_ITER), fit_kwargs.get("refit_iter"))
            self.fit_kwargs = {**fit_kwargs, "refit_iter": 0}
        self.search = Search()
        self.kept: SearchDirectory | None = None
        if search_dir is not None:
            if scorer is not None:
                raise ValueError(
                    "search_dir cannot be combined with a validation scorer (another AnnData): a fit's record "
                    "would not say what it was validated on."
                )
            self.kept = SearchDirectory(search_dir, build, ts, held, window, self.fit_kwargs)

    # ---------------------------------------------------------------- fitting
    def fit(self, lams: Sequence[float], stage: str) -> None:
        """Fit the lambdas not fitted yet (one round, parallel with a client)."""
        done = {round(math.log10(v), 6) if v > 0 else -math.inf for v in self.search.lams()}
        todo = []
        for lam in sorted({float(v) for v in lams}):
            key = round(math.log10(lam), 6) if lam > 0 else -math.inf
            if key not in done:
                todo.append(lam)
                done.add(key)
        if not todo:
            return
        shared = (self.build, self.ts, self.held, self.window, self.fit_kwargs, self.scorer)
        store, kept = self.search.models, self.kept
        found: dict[float, tuple[Any, dict[str, Any]]] = {}
        for lam in todo if kept is not None else []:
            if lam in kept:
                model, row, path = kept.load(lam)
                seconds = row["seconds"]
                logger.info("lambda search: lam %g read back from %s (fitted in %.0f s)", lam, kept.path, seconds)
                found[lam] = store.stash(model, path), row
                del model

        def arrived(result: tuple[SparseODE, dict[str, Any]]) -> tuple[Any, dict[str, Any]]:
            _log(result[1], stage)
            path = None if kept is None else kept.save(*result)
            return store.stash(result[0], path), result[1]  # a large fit goes to disk before the next one starts

        pending = [lam for lam in todo if lam not in found]
        try:
            fitted = (
                map_tasks(_fit_task, pending, shared, self.client, label="fits of the lambda search", on_result=arrived)
                if pending
                else []
            )
        except FitInterrupted as err:
            if kept is not None:
                err.add_context(
                    f"The fits that ended are kept in {kept.path}: the same call with search_dir={str(kept.root)!r} "
                    "reads them back and fits only the others."
                )
            else:
                err.add_context("Pass search_dir='<directory>' to keep a search's fits, so that a rerun resumes.")
            raise
        fitted_by_lam = dict(zip(pending, fitted, strict=True))
        for lam in todo:
            entry, row = found[lam] if lam in found else fitted_by_lam[lam]
            row["stage"] = stage
            self.search.rows.append(row)
            store.append(entry)

    # ---------------------------------------------------------------- the rule
    def select(self) -> int:
        """Apply the rule to the fits so far; return the index of the selected fit."""
        rows = self.search.rows
        lams = np.array([r["lam"] for r in rows])
        val = np.array([r["val_mse"] for r in rows])
        order = np.argsort(lams)
        best = int(order[np.nanargmin(val[order])])
        sparsest = int(order[-1])
        gain_range = val[sparsest] - val[best]
        for r, v in zip(rows, val, strict=True):
            r["gain_kept"] = float(1.0 if gain_range <= 0 else (val[sparsest] - v) / gain_range)
        if self.within is None:
            ok = [i for i in order if rows[i]["gain_kept"] >= self.keep - 1e-12 and lams[i] >= lams[best]]
        else:
            ok = [i for i in order if val[i] <= self.within * val[best] and lams[i] >= lams[best]]
        sound = [i for i in ok if rows[i].get("graph", "ok") == "ok"]
        chosen = int(max(sound or ok, key=lambda i: lams[i]))
        self.search.selected = chosen
        skipped = "" if not sound or len(sound) == len(ok) else " (fits whose graph is full or all-or-nothing skipped)"
        if self.within is not None:
            self.search.reason = (
                f"largest lam whose validation error is at most {self.within:g} x the best (lam {lams[best]:g}, "
                f"val_mse {val[best]:.4g}){skipped}: lam {lams[chosen]:g}, val_mse {val[chosen]:.4g}"
            )
            return chosen
        self.search.reason = (
            f"largest lam keeping at least {self.keep:g} of the validation gain of the best fit (lam "
            f"{lams[best]:g}, val_mse {val[best]:.4g}) over the sparsest (lam {lams[sparsest]:g}, val_mse "
            f"{val[sparsest]:.4g}){skipped}: lam {lams[chosen]:g} keeps {rows[chosen]['gain_kept']:.2f}"
        )
        return chosen

    def refit_selected(self) -> None:
        """With ``refit="selected"``: refit the selected fit in place of its penalised state, add its errors."""
        if not self.refit_iter:
            return
        start = time.perf_counter()
        i = self.search.selected
        state = self.search.models[i]
        train = training_part(self.ts, self.held)
        kwargs = {k: v for k, v in self.fit_kwargs.items() if k not in ("n_iter", "refit_iter")}
        v0 = initial_velocities(state, self.ts)
        kwargs.update(x0=self.ts.x0, v0=v0, held=self.ts.held, refit_iter=self.refit_iter)
        model = refit_copy(state, train.times, train.values, **kwargs)
        self.search.models[i] = model
        row = self.search.rows[i]
        errors = _errors(model, self.ts, train, self.held, self.window, self.scorer)
        row["val_mse_refit"], row["train_mse_refit"] = errors
        row["seconds"] += time.perf_counter() - start

    def warn_if_at_end(self) -> None:
        """Warn when the selected fit is a non-degenerate end of the searched range, or every fit is empty."""
        chosen = self.search.rows[self.search.selected]
        dense_end, sparse_end = self._ends()
        if len(self.search.rows) < 2:
            return
        if all(r["edge_share"] == 0 for r in self.search.rows):  # equally empty fits: the rule cannot choose
            warnings.warn(
                f"Every fit of the searched range [{dense_end['lam']:g}, {sparse_end['lam']:g}] is empty and the "
                f"range could not be extended further (max_extend): the edges lie below lam {dense_end['lam']:g}. "
                "Pass a lower grid, or lams=None to search.",
                UserWarning,
                stacklevel=4,
            )
            return
        at_sparse = chosen is sparse_end and chosen["edge_share"] > 0
        at_dense = chosen is dense_end and chosen["edge_share"] < FULL_SHARE
        if at_sparse or at_dense:
            side = "largest" if at_sparse else "smallest"
            warnings.warn(
                f"The selected lam ({chosen['lam']:g}) is the {side} of the searched range "
                f"[{dense_end['lam']:g}, {sparse_end['lam']:g}] and the range could not be extended further "
                "(max_extend): the best lam may lie beyond it. Pass a wider grid, or lams=None to search.",
                UserWarning,
                stacklevel=4,
            )

    # ---------------------------------------------------------------- searches
    def _ends(self) -> tuple[dict, dict]:
        rows = sorted(self.search.rows, key=lambda r: r["lam"])
        return rows[0], rows[-1]

    def extend(self, up: float, down: float, max_steps: int) -> None:
        """Extend the range (by ``up`` / ``down`` factors) until its sparsest fit is empty and its densest full.

        At most ``max_steps`` fits a side; a round fits the next lambda of each side that needs one.
        """
        steps = [0, 0]
        while True:
            dense_end, sparse_end = self._ends()
            todo = []
            if sparse_end["edge_share"] > 0 and steps[0] < max_steps:
                todo.append(sparse_end["lam"] * up)
                steps[0] += 1
            if dense_end["edge_share"] < FULL_SHARE and dense_end["lam"] > 0 and steps[1] < max_steps:
                todo.append(dense_end["lam"] / down)
                steps[1] += 1
            if not todo:
                return
            self.fit(todo, "extended")

    def refine(self, ratio: float) -> None:
        """Fit the half-steps next to the selected lambda (within the range) and select again."""
        lam = self.search.rows[self.select()]["lam"]
        lo, hi = self._ends()[0]["lam"], self._ends()[1]["lam"]
        step = math.sqrt(ratio)
        self.fit([v for v in (lam / step, lam * step) if lo < v < hi], "refined")
        self.select()

    def sharpen(self, max_steps: int = 2) -> None:
        """Fit midpoints (log scale) next to the selected fit while its graph is full or all-or-nothing.

        Towards the next sparser fit when too many targets keep every regulator (or the graph is
        full), towards the next denser one when too many keep none. The rule is applied again after
        each fit (a midpoint is selected only if it keeps the gain and its graph is sound); at most
        ``max_steps`` midpoints.
        """
        for _ in range(max_steps):
            chosen = self.search.rows[self.select()]
            if chosen["graph"] not in ("full", "all-or-nothing") or chosen["lam"] <= 0:
                return
            sparser = chosen["graph"] == "full" or (
                chosen["targets_with_all_regulators"] >= chosen["targets_without_regulators"]
            )
            side = [r["lam"] for r in self.search.rows if (r["lam"] > chosen["lam"]) == sparser and r["lam"] > 0]
            side = [v for v in side if v != chosen["lam"]]
            if not side:
                return
            neighbour = min(side) if sparser else max(side)
            self.fit([math.sqrt(chosen["lam"] * neighbour)], "refined")
        self.select()

    def run_auto(self, start: float = START_LAM) -> Search:
        """Search from ``start`` (decades, then half-decades) until the graph runs from full to empty."""
        self.fit([start], "grid")
        self.extend(10.0, 10.0, MAX_DECADES)
        self.refine(10.0)
        self.sharpen()
        self.refit_selected()
        return self.search

    def run_grid(self, lams: Sequence[float], max_steps: int = 3) -> Search:
        """Fit a given grid and extend it by its own end steps until it runs from a full to an empty graph.

        At most ``max_steps`` fits a side.
        """
        lams = sorted(float(v) for v in lams)
        self.fit(lams, "grid")
        down = lams[1] / lams[0] if len(lams) > 1 and lams[0] > 0 else math.sqrt(10)
        up = lams[-1] / lams[-2] if len(lams) > 1 and lams[-2] > 0 else math.sqrt(10)
        self.extend(up, down, max_steps)
        self.select()
        self.refit_selected()
        return self.search
