"""Unseen knockouts: predict what knocking out a gene does, on the GRN suite's simulated systems.

Usage::

    python benchmarks/interventions.py             # eight systems, 2 seeds
    python benchmarks/interventions.py --quick     # two systems, 300 cells, short fits, one seed

A network earns its use when it predicts an experiment it was not shown. Each system of the GRN
suite (``grn_suite.py``: BEELINE's six Boolean models, scanpy's krumsiek11 rules, a random 60-gene
cascade) is simulated as there, 1000 cells from 10 noisy simulations per condition, unperturbed and
with each of three knocked-out genes (the suite's choice, seeded). Every knockout is then held out
and predicted by models trained on

* *observational*: the unperturbed cells alone;
* *other knockouts*: the unperturbed cells and the other two knockouts' cells (scnode is told which
  gene each perturbed cell lacks, ``perturbation_key``; the linear model below pools them).

The truth is the knockout's effect: the mean expression of the knocked-out cells minus that of the
unperturbed cells, in each of 20 bins of the simulation clock (genes in units of their standard
deviation over every cell of the system, all four conditions: over the unperturbed cells alone, a
gene that is off there and on in a knockout would weigh hundreds of times more; the knocked-out gene
itself left out). Predictions:

* ``scnode``: the default call, ``scn.tl.fit_sparse_ode(adata, time_key="time",
  lineage_key="simulation")``, then ``scn.tl.simulate_intervention(training cells, model,
  knockout=gene)``: each unperturbed simulation's trajectory (scaled as in the fit) run again from its
  initial state with the gene held at zero, minus the same run without; averaged per bin.
* ``scnode, median of the search's fits``: the same default call with ``return_models=True`` (every fit
  of its penalty search: the selected one refitted, the others as their penalised phase ended), and
  ``scn.tl.simulate_intervention(training cells, models, knockout=gene)``: the median over the fits
  of each one's effect.
* ``scnode, median of its non-empty fits``: the same without the fits whose graph is empty (the
  search's sparse end, where a knockout changes nothing): whether the median gains by agreement
  between fits or only by leaning towards "no change".
* ``linear propagation`` (CellOracle's simulation, written here from its description): one ridge
  regression per gene on every other gene (``RidgeCV``) over the training cells, and for each
  unperturbed cell the knockout's change (minus the gene's level) propagated three times through the
  coefficients, the gene's change reset after each step and expression kept non-negative; averaged
  per bin. (CellOracle fits one model per cell cluster, restricted to a base GRN; here one for all cells,
  every gene a candidate.)
* ``linear ODE``: ``dx/dt = x A + b`` fitted by cross-validated Lasso to finite differences along
  each training simulation (the GRN suite's Lasso peer), integrated from each unperturbed simulation's
  earliest cell with the gene held at zero, minus the same run without; averaged per bin.
* ``no change``: the knocked-out gene falls, nothing else moves (its RMSE is the size of the true effect).
* ``noise floor``: not a prediction but what sampling alone puts between two measurements of the same
  condition: a second unperturbed sample (10 more simulations, another seed) minus the first, scored
  as an effect against zero. A prediction of the knockout's expected effect, however right, errs by
  about this much against the measured one, which carries the same sampling noise.

Scores per knockout: *RMSE*, the root-mean-square error of the predicted effect over genes and bins
(in standard deviations; "no change" scores the size of the true effect, and a knockout that moves
nothing is scored too); *below 'no change'*, the knockouts whose prediction errs less than predicting
nothing; *correlation* of the predicted with the true effect over genes and bins; *signs*, the share
of the genes a knockout moves (mean effect over the last third of the clock beyond 0.25 standard
deviations) whose predicted late change has the true sign.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date

import numpy as np
import pandas as pd
import torch
from _report import command, machine, total
from grn_suite import CELLS, MODELS, PROTOCOLS, QUICK_MODELS, SIMULATIONS, derivatives, knockout_genes, load_model
from sklearn.linear_model import LassoCV, RidgeCV

import scnode as scn

BINS = 20
"""Bins of the simulation clock in which effects are averaged."""
PROPAGATION = 3
"""Propagation steps of the linear model (CellOracle's default)."""
MOVED = 0.25
"""A gene counts as moved by a knockout when its late effect exceeds this many standard deviations."""
FLOOR = "noise floor"
SEARCH = "scnode, median of the search's fits"
NONEMPTY = "scnode, median of its non-empty fits"
METHODS = ["scnode", SEARCH, NONEMPTY, "linear ODE", "linear propagation", "no change", FLOOR]
STEPS = 400
"""Euler steps of the linear ODE over the simulated time."""


def clock_bins(adata: scn.AnnData) -> np.ndarray:
    """Edges of :data:`BINS` equal bins over the simulated time."""
    return np.linspace(0.0, float(adata.uns["boolode"]["t_max"]), BINS + 1)


def binned_means(values: np.ndarray, times: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Mean of ``values`` (rows at ``times``) in each bin; NaN for an empty bin."""
    which = np.clip(np.searchsorted(edges, times, side="right") - 1, 0, len(edges) - 2)
    out = np.full((len(edges) - 1, values.shape[1]), np.nan)
    for b in range(len(edges) - 1):
        rows = which == b
        if rows.any():
            out[b] = values[rows].mean(axis=0)
    return out


def true_effect(full: scn.AnnData, gene: str, edges: np.ndarray) -> np.ndarray:
    """Knocked-out minus unperturbed mean expression per clock bin."""
    pert = full.obs["perturbation"].astype(object)
    x, t = np.asarray(full.X, float), full.obs["time"].to_numpy(float)
    wt, ko = pert.isna().to_numpy(), (pert == gene).to_numpy()
    return binned_means(x[ko], t[ko], edges) - binned_means(x[wt], t[wt], edges)


def scnode_effect(
    model: scn.SparseODE | list[scn.SparseODE], train: scn.AnnData, gene: str, edges: np.ndarray
) -> np.ndarray:
    """The fitted field's knockout from each unperturbed simulation's start, minus its unperturbed run.

    The trajectories are prepared from the training cells, so that each is scaled as in the fit (a
    simulation's unperturbed and perturbed cells share one scaling); the unperturbed ones are kept.
    Several models: the median of their effects (``simulate_intervention``'s ensemble).
    """
    run = scn.tl.simulate_intervention(train, model, knockout=gene, n_points=200)
    unperturbed = run.obs["simulation"].isin(train.obs.loc[train.obs["perturbation"].isna(), "simulation"]).to_numpy()
    delta = np.asarray(run.layers["delta"], float)[unperturbed]
    return binned_means(delta, run.obs["time"].to_numpy(float)[unperturbed], edges)


def ridge_coefficients(x: np.ndarray) -> np.ndarray:
    """``C[j, i]``: the coefficient of gene j in gene i's ridge regression on the other genes."""
    n = x.shape[1]
    coef = np.zeros((n, n))
    for i in range(n):
        others = np.delete(np.arange(n), i)
        fit = RidgeCV(alphas=np.logspace(-2, 3, 11)).fit(x[:, others], x[:, i])
        coef[others, i] = fit.coef_
    return coef


def propagation_effect(coef: np.ndarray, wt: scn.AnnData, gene: str, edges: np.ndarray) -> np.ndarray:
    """CellOracle-style shift of every unperturbed cell, averaged per clock bin."""
    x = np.asarray(wt.X, float)
    g = list(wt.var_names).index(gene)
    start = np.zeros_like(x)
    start[:, g] = -x[:, g]
    delta = start.copy()
    for _ in range(PROPAGATION):
        delta = delta @ coef
        delta[:, g] = start[:, g]
    delta = np.maximum(x + delta, 0.0) - x
    return binned_means(delta, wt.obs["time"].to_numpy(float), edges)


def linear_ode(train: scn.AnnData, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``dx/dt = x A + b`` by cross-validated Lasso on finite differences (the GRN suite's Lasso peer's fit)."""
    _, x, dx = derivatives(train, "time")
    fits = [LassoCV(cv=5, random_state=seed, max_iter=5000).fit(x, dx[:, i]) for i in range(x.shape[1])]
    return np.stack([f.coef_ for f in fits], axis=1), np.array([f.intercept_ for f in fits])


def ode_effect(ode: tuple[np.ndarray, np.ndarray], wt: scn.AnnData, gene: str, edges: np.ndarray) -> np.ndarray:
    """The linear ODE from each unperturbed simulation's earliest cell, the gene held at zero, minus the run without.

    Euler steps (:data:`STEPS` over the clock); expression kept within zero and ten times its largest
    observed level (a fitted linear field may be unstable outside its data).
    """
    a, b = ode
    x_all, t_all = np.asarray(wt.X, float), wt.obs["time"].to_numpy(float)
    g, top = list(wt.var_names).index(gene), 10.0 * x_all.max(axis=0)
    sims = wt.obs["simulation"].to_numpy()
    deltas, times = [], []
    for sim in pd.unique(sims):
        rows = np.flatnonzero(sims == sim)
        first = rows[np.argmin(t_all[rows])]
        grid = np.linspace(t_all[first], edges[-1], STEPS + 1)
        runs = []
        for knocked in (False, True):
            x = x_all[first].copy()
            path = [x]
            for dt in np.diff(grid):
                if knocked:
                    x[g] = 0.0
                x = np.clip(x + dt * (x @ a + b), 0.0, top)
                if knocked:
                    x[g] = 0.0
                path.append(x)
            runs.append(np.array(path))
        deltas.append(runs[1] - runs[0])
        times.append(grid)
    return binned_means(np.concatenate(deltas), np.concatenate(times), edges)


def scores(pred: np.ndarray, truth: np.ndarray, scale: np.ndarray, gene_index: int) -> dict[str, float]:
    """Root-mean-square error, correlation and late signs of one knockout's predicted effect (standard deviations)."""
    keep = np.delete(np.arange(truth.shape[1]), gene_index)
    rows = ~np.isnan(truth).any(axis=1) & ~np.isnan(pred).any(axis=1)
    p, t = pred[rows][:, keep] / scale[keep], truth[rows][:, keep] / scale[keep]
    late = slice(2 * len(t) // 3, None)
    moved = np.abs(t[late].mean(axis=0)) > MOVED
    p_late, t_late = p[late].mean(axis=0)[moved], t[late].mean(axis=0)[moved]
    corr = np.nan if p.std() == 0 or t.std() == 0 else float(np.corrcoef(p.ravel(), t.ravel())[0, 1])
    return {
        "rmse": float(np.sqrt(((p - t) ** 2).mean())),
        "correlation": corr,
        "signs": float((np.sign(p_late) == np.sign(t_late)).mean()) if moved.any() else np.nan,
        "moved": int(moved.sum()),
    }


def fit(train: scn.AnnData, seed: int, quick: bool) -> tuple[scn.SparseODE, list[tuple], float]:
    """The default call (told the perturbations when the training cells have any): its model, every fit of
    its penalty search with the fit's number of edges, and its seconds."""
    kwargs = {"n_iter": 20} if quick else {}
    if train.obs["perturbation"].notna().any():
        kwargs["perturbation_key"] = "perturbation"
    protocol = PROTOCOLS["simulation"]  # the suite's: time_key="time", lineage_key="simulation"
    tic = time.perf_counter()
    fitted, model, models = scn.tl.fit_sparse_ode(
        train,
        random_state=seed,
        progress_bar=False,
        copy=True,
        return_model=True,
        return_models=True,
        **protocol,
        **kwargs,
    )
    seconds = time.perf_counter() - tic
    table = fitted.uns["scnode"]["path"]["table"]
    edges = dict(zip(np.asarray(table["lam"], float), np.asarray(table["n_edges"], int), strict=True))
    return model, [(m, edges[float(m.config.lam)]) for m in models], seconds


def run_system(name: str, seed: int, quick: bool) -> list[dict]:
    """Every held-out knockout of one system and seed, under both trainings, by every method."""
    model = load_model(name)
    kos = knockout_genes(model, seed)
    full = scn.datasets.simulate_boolean(
        model, n_cells=300 if quick else CELLS, n_simulations=SIMULATIONS, knockouts=kos, seed=seed
    )
    edges = clock_bins(full)
    pert = full.obs["perturbation"].astype(object)
    wt = full[pert.isna().to_numpy()].copy()
    again = scn.datasets.simulate_boolean(model, n_cells=wt.n_obs, n_simulations=SIMULATIONS, seed=seed + 1000)
    x_wt, t_wt = np.asarray(wt.X, float), wt.obs["time"].to_numpy(float)
    noise = binned_means(np.asarray(again.X, float), again.obs["time"].to_numpy(float), edges)
    noise -= binned_means(x_wt, t_wt, edges)
    scale = np.asarray(full.X, float).std(axis=0)
    scale[scale == 0] = 1.0
    genes = list(full.var_names)
    rows = []
    trainings = {"observational": {ko: wt for ko in kos}}
    trainings["other knockouts"] = {ko: full[(pert != ko).to_numpy()].copy() for ko in kos}
    for training, data in trainings.items():
        fitted: dict[int, tuple] = {}
        for ko in kos:
            train = data[ko]
            if id(train) not in fitted:  # observational: one fit for every knockout
                node, fits, seconds = fit(train, seed, quick)
                coef = ridge_coefficients(np.asarray(train.X, float))
                fitted[id(train)] = (node, fits, seconds, coef, linear_ode(train, seed))
            node, fits, seconds, coef, ode = fitted[id(train)]
            truth = true_effect(full, ko, edges)
            preds = {
                "scnode": scnode_effect(node, train, ko, edges),
                SEARCH: scnode_effect([m for m, _ in fits], train, ko, edges),
                NONEMPTY: scnode_effect([m for m, e in fits if e > 0] or [fits[0][0]], train, ko, edges),
                "linear ODE": ode_effect(ode, wt, ko, edges),
                "linear propagation": propagation_effect(coef, wt, ko, edges),
                "no change": np.where(np.isnan(truth), np.nan, 0.0),
                FLOOR: noise,
            }
            for method, pred in preds.items():
                reference = truth if method != FLOOR else np.zeros_like(truth)
                rows.append(
                    {
                        "system": name,
                        "seed": seed,
                        "training": training,
                        "knockout": ko,
                        "method": method,
                        "seconds": seconds if method == "scnode" else np.nan,
                        "n_fits": len(fits) if method == SEARCH else np.nan,
                        "n_empty": sum(e == 0 for _, e in fits) if method == SEARCH else np.nan,
                        **scores(pred, reference, scale, genes.index(ko)),
                    }
                )
        print(f"  {name} seed {seed} {training}: done", file=sys.stderr, flush=True)
    return rows


def _fmt(v: float) -> str:
    return "—" if not np.isfinite(v) else f"{v:.2f}"


def tables(rows: list[dict]) -> str:
    """Per training: per-system RMSE and correlation (means over knockouts and seeds), and the summaries."""
    frame = pd.DataFrame(rows)
    systems = list(dict.fromkeys(frame["system"]))
    lines = []
    for training in ("observational", "other knockouts"):
        part = frame[frame["training"] == training]
        reference = part[part["method"] == "no change"].set_index(["system", "seed", "knockout"])["rmse"]
        lines += [f"### Trained on {training}", ""]
        head = ["method", *systems, "mean RMSE", "below 'no change'", "mean correlation", "signs right"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for method in METHODS:
            m = part[part["method"] == method]
            per = m.groupby("system", sort=False)[["rmse", "correlation"]].mean()
            cells = [f"{_fmt(per.loc[s, 'rmse'])} ({_fmt(per.loc[s, 'correlation'])})" for s in systems]
            below = (m.set_index(["system", "seed", "knockout"])["rmse"] < reference - 1e-9).sum()
            signs = (m["signs"] * m["moved"]).sum() / m["moved"].sum() if m["moved"].sum() else np.nan
            share = "—" if not np.isfinite(signs) else f"{100 * signs:.0f} %"
            lines.append(
                f"| {method} | "
                + " | ".join(cells)
                + f" | **{_fmt(per['rmse'].mean())}** | {below} of {len(m)}"
                + f" | {_fmt(per['correlation'].mean())} | {share} |"
            )
        seconds = part.loc[part["method"] == "scnode", "seconds"]
        search = part[part["method"] == SEARCH]
        moved = int(part.loc[part["method"] == "no change", "moved"].sum())
        lines += [
            "",
            f"Each cell: RMSE of the predicted effect in standard deviations (its correlation with the true effect); "
            f"signs over the {moved} genes the held-out knockouts move. scnode: {seconds.mean():.1f} s per default "
            f"call, its search {search['n_fits'].min():.0f}-{search['n_fits'].max():.0f} fits, "
            f"{search['n_empty'].min():.0f}-{search['n_empty'].max():.0f} of them with an empty graph.",
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    """Run the benchmark and print markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="two systems, 300 cells, short fits, one seed")
    parser.add_argument("--models", nargs="*", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    models = args.models or (QUICK_MODELS if args.quick else MODELS)
    seeds = [1] if args.quick else list(range(1, args.seeds + 1))
    start = time.perf_counter()
    rows = [r for name in models for seed in seeds for r in run_system(name, seed, args.quick)]
    text = "\n".join(
        [
            f"# Unseen knockouts: the GRN suite's systems ({date.today()})",
            "",
            command("interventions.py", argv),
            machine() + f"; seeds {seeds}; {300 if args.quick else CELLS} cells per condition, {BINS} clock bins.",
            "",
            tables(rows),
            total(start),
        ]
    )
    print(text)
    return text


if __name__ == "__main__":
    main()
