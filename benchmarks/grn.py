"""GRN recovery on krumsiek11 simulations: all seven methods against two simple baselines, same run.

Usage::

    python benchmarks/grn.py             # 3 simulation seeds, all methods
    python benchmarks/grn.py --quick     # a fast smoke run of the same code path

Data: scanpy's krumsiek11 model (11 genes, a curated boolean myeloid network with 26 couplings
between distinct genes), simulated with ``sc.tl.sim`` (4 realizations x 160 steps per seed; the
realizations start from one state and branch to different fates). Scores follow BEELINE: self-loops
excluded; AUPRC ratio = AUPRC / edge density; AUROC; EPR = precision among the top-k (k = true edges)
over edge density. The learned scores rank regulator -> target pairs by ``adata.varp["scnode"]``.

Rows. The *default call* is what a user runs, ``scn.tl.fit_sparse_ode(adata, time_key="time",
lineage_key="realization")``: the package's defaults choose the field (one network per gene with
decay and input gates), preprocessing (100 bins, min-max per realization), windows (10 % of a
realization, started from the data) and penalty (held-out time points of the same data). The
*method* rows fit the paper's shared MLP (GroupLasso its per-target networks) to every unscaled
step: because the realizations branch from a shared start, one deterministic ODE cannot follow each
whole realization from x0, so they are trained on time windows of ``WINDOW`` steps, each started
from the observed state.

lambda rule of the method rows: for each method and seed, the method's grid is fitted with
``scnode.tl.lambda_path`` (independent fits, exactly the grid) and validated on windows of an
independent simulation (seed + 1000) of the same model; the selected lambda is the largest whose
validation MSE is at most 1.1x the smallest on the grid. The true network plays no part in any row.

Prior ablation (``PRIORS``): the default call given a prior network of as many pairs as true
edges, half of them true and half false, or random pairs; the table shows the gain or harm against
the default call without a prior.

The default call's rows are scored twice: its graph (``varp["scnode"]``) and its ranking of every
pair by all the fits of its penalty search (``varp["scnode_path"]``); "signs right" is the share of
true edges among the top 26 whose learned sign is the true one (the default call's rows only).

Restarts (``--restarts R``, default 1): each method is fitted R times from different initial
weights and gates (random states ``seed + 1000 r``; for the sparse methods R validated paths), and
its edges are ranked by the mean over the R graphs, each divided by its largest entry, as tree
ensembles average their trees. Edges: those non-zero in any restart; lambda: the median of the
restarts' selected values. ``--decay`` adds each gene's unpenalised decay term to every field
(``model_kwargs={"decay": True}``).

Baselines, computed on the same simulations: the absolute correlation of x_j with dx_i/dt (finite differences
within each realization), and per-target tree ensembles a la GENIE3 (scikit-learn ExtraTrees, feature
importances of all genes for dx_i/dt, and of the other genes for x_i as in GENIE3 proper).
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
from sklearn.ensemble import ExtraTreesRegressor

import scnode as scn

WINDOW = 8
FIT = {"batch_time": WINDOW, "batch_size": 32}
SCHEDULE = {"n_iter": 400, "refit_iter": 200}
QUICK_SCHEDULE = {"n_iter": 8, "refit_iter": 4}
PREP = {
    "time_key": "time",
    "lineage_key": "realization",
    "scaling": "none",
    "n_bins": None,
    "x0_cells": 1,
    "window": WINDOW,
    "field": "shared",
}
"""The method rows: every simulation step a time point, unscaled values, windows of ``WINDOW`` steps,
the shared MLP (hidden (32, 32); GroupLasso's own per-target networks)."""
DEFAULT = "default call"
PRIORS = {
    f"{DEFAULT}, prior: half the true edges + as many false": "half",
    f"{DEFAULT}, prior: random pairs, as many": "random",
}
"""Prior ablation rows: the default call with ``prior=`` an edge list of 26 pairs (as many as true
edges): 13 true couplings and 13 non-edges drawn at random, or 26 pairs drawn at random from all
candidates (seeded by the simulation seed)."""
"""The row fitted with ``scn.tl.fit_sparse_ode(adata, time_key="time", lineage_key="realization")``:
the package's defaults choose field, preprocessing, windows and penalty (held-out time points)."""


def _grid(lo: float, n: int = 5) -> list[float]:
    """``n`` values, a factor of about 3 apart, from ``lo``."""
    return [float(f"{lo * 10 ** (k / 2):.3g}") for k in range(n)]


METHODS: dict[str, list[float]] = {
    "base": [],
    "l0": _grid(0.01),
    "cnode": _grid(0.1),
    "pathreg": _grid(0.01),
    "lassonet_inner": _grid(0.1),
    "lassonet_outer": _grid(0.1),
    "grouplasso": _grid(0.01),
}
"""Penalty grid per method (PathReg with lam1 = 0: its path term is C-NODE's, tried separately)."""
MODEL = {"hidden": (32, 32), "device": "cpu", "progress_bar": False}
GROUPLASSO_HIDDEN = (8,)


def simulate(seed: int) -> scn.AnnData:
    """One krumsiek11 simulation with time, realization and the true network (scnode.datasets)."""
    return scn.datasets.krumsiek11(seed=seed)


def derivatives(adata: scn.AnnData) -> tuple[np.ndarray, np.ndarray]:
    """States and finite-difference time derivatives, realization by realization."""
    xs, ds = [], []
    for name in adata.obs["realization"].cat.categories:
        part = adata[adata.obs["realization"] == name]
        order = np.argsort(part.obs["time"].to_numpy())
        x, t = np.asarray(part.X)[order], part.obs["time"].to_numpy(float)[order]
        xs.append(x)
        ds.append(np.gradient(x, t, axis=0))
    return np.concatenate(xs), np.concatenate(ds)


def baseline_scores(adata: scn.AnnData, seed: int) -> dict[str, np.ndarray]:
    """Regulator x target score matrices of the simple baselines (all three in one pass)."""
    x, dx = derivatives(adata)
    d = x.shape[1]
    corr = np.nan_to_num(np.abs(np.corrcoef(np.c_[x, dx].T)[:d, d:]))
    trees = {"GENIE3 (dx/dt)": np.zeros((d, d)), "GENIE3 (x)": np.zeros((d, d))}
    for i in range(d):
        for name, target, feats in (("GENIE3 (dx/dt)", dx[:, i], list(range(d))), ("GENIE3 (x)", x[:, i], None)):
            feats = feats if feats is not None else [j for j in range(d) if j != i]
            forest = ExtraTreesRegressor(200, max_features="sqrt", random_state=seed, n_jobs=1)
            forest.fit(x[:, feats], target)
            trees[name][feats, i] = forest.feature_importances_
    return {"correlation (abs. corr of x_j and dx_i/dt)": corr, **trees}


def evaluate(adata: scn.AnnData, scores: np.ndarray, signs: np.ndarray | None = None) -> dict[str, float]:
    """BEELINE scores of a regulator x target matrix against adata.varp['true_network'] (and signs, if given)."""
    probe = adata.copy()
    probe.varp["scores"] = np.asarray(scores, float)
    if signs is not None:
        probe.varp["scores_sign"] = np.asarray(signs, float)
    res = scn.tl.evaluate_grn(probe, probe.varp["true_network"], key="scores")
    keys = ("auprc_ratio", "auroc", "epr") + (("sign_accuracy",) if signs is not None else ())
    return {k: float(res[k]) for k in keys}


def _mean_graph(graphs: list[np.ndarray]) -> np.ndarray:
    """Each graph over its largest entry, averaged (as consensus_network does)."""
    return sum(g / g.max() if g.max() > 0 else g for g in graphs) / len(graphs)


def run_method(
    method: str,
    adata: scn.AnnData,
    validation: scn.AnnData,
    seed: int,
    schedule: dict,
    restarts: int = 1,
    model_kwargs: dict | None = None,
    gates: str | None = None,
) -> dict:
    """Fit a method (a validated lambda path for the sparse ones) ``restarts`` times and score the mean graph.

    ``gates``: the default call's rows with ``model_kwargs={"gates": gates}`` (``None``: its own).
    """
    start = time.perf_counter()
    fits = [
        _fit_model(method, adata, validation, seed + 1000 * r, schedule, model_kwargs, gates) for r in range(restarts)
    ]
    models = [m for m, _, _ in fits]
    ends = [e for _, e, _ in fits if e is not None]
    written = [w for _, _, w in fits if w is not None]
    seconds = time.perf_counter() - start
    mean = adata.copy()
    scn.tl.consensus_network(mean, models)  # each graph over its largest entry, averaged
    graph = np.asarray(mean.varp["scnode_consensus"], float)
    lams = [m.config.lam for m in models]
    off = ~np.eye(len(graph), dtype=bool)
    name = method + (", decay" if (model_kwargs or {}).get("decay") else "")
    name += f", gates={gates}" if gates and (method == DEFAULT or method in PRIORS) else ""
    name = name if restarts == 1 else f"{name}, mean of {restarts} restarts"
    row = {
        "method": name,
        "seed": seed,
        "lam": float(np.median(lams)),
        "edges": int((graph[off] != 0).sum()),
        "seconds": seconds,
        "at_end": f"{sum(ends)} of {len(ends)}" if ends else "",
        **evaluate(adata, graph, _sign_of(written, "scnode") if written else None),
    }
    if not written:
        return [row]
    path = _mean_graph([w["scnode_path"] for w in written])
    path_row = {
        **row,
        "method": f"{name}: every pair ranked by its search (varp['scnode_path'])",
        "edges": int((path[off] != 0).sum()),
        "at_end": "",
        **evaluate(adata, path, _sign_of(written, "scnode_path")),
    }
    return [row, path_row]


def _sign_of(written: list[dict], key: str) -> np.ndarray:
    """The signs of ``key`` (the majority over restarts, weighted by each restart's normalised scores)."""
    return np.sign(sum(w[f"{key}_sign"] * w[key] / max(w[key].max(), 1e-12) for w in written))


def prior_edges(adata: scn.AnnData, kind: str, seed: int) -> pd.DataFrame:
    """A prior edge list of as many pairs as true edges: half true + half false, or random pairs."""
    rng = np.random.default_rng(seed)
    truth = adata.varp["true_network"] != 0
    off = ~np.eye(len(truth), dtype=bool)
    true_pairs, false_pairs = np.argwhere(truth & off), np.argwhere(~truth & off)
    n = len(true_pairs)
    if kind == "half":
        pairs = np.r_[
            true_pairs[rng.choice(n, n // 2, replace=False)],
            false_pairs[rng.choice(len(false_pairs), n - n // 2, replace=False)],
        ]
    else:
        every = np.argwhere(off)
        pairs = every[rng.choice(len(every), n, replace=False)]
    names = np.asarray(adata.var_names)
    return pd.DataFrame({"source": names[pairs[:, 0]], "target": names[pairs[:, 1]]})


def _fit_model(
    method: str,
    adata: scn.AnnData,
    validation: scn.AnnData,
    random_state: int,
    schedule: dict,
    model_kwargs: dict | None = None,
    gates: str | None = None,
) -> tuple[scn.SparseODE, bool | None]:
    """One fit (for the sparse methods, the validated path's selected model).

    Returns the model and, for the default call's rows, whether the selected lambda is an end of the
    range its search covered and the networks it wrote (``varp``: the graph, the path score, their
    signs); ``None`` and ``None`` for the other rows.
    """
    if method == DEFAULT or method in PRIORS:
        kwargs = {} if schedule is SCHEDULE else {"n_iter": schedule["n_iter"]}
        if method in PRIORS:
            kwargs["prior"] = prior_edges(adata, PRIORS[method], random_state)
        if gates:
            kwargs["model_kwargs"] = {"gates": gates}
        out, model = scn.tl.fit_sparse_ode(
            adata,
            time_key="time",
            lineage_key="realization",
            random_state=random_state,
            progress_bar=False,
            copy=True,
            return_model=True,
            **kwargs,
        )
        lo, hi = out.uns["scnode"]["path"]["searched"]
        keys = ("scnode", "scnode_sign", "scnode_path", "scnode_path_sign")
        written = {
            k: np.asarray(out.varp[k].toarray() if hasattr(out.varp[k], "toarray") else out.varp[k]) for k in keys
        }
        return model, model.config.lam in (lo, hi), written
    model_kw = {**MODEL, "hidden": GROUPLASSO_HIDDEN if method == "grouplasso" else MODEL["hidden"]}
    if model_kwargs:
        model_kw["model_kwargs"] = model_kwargs
    if method == "base":
        return (
            scn.tl.fit_sparse_ode(
                adata,
                method="base",
                **PREP,
                **model_kw,
                n_iter=schedule["n_iter"],
                refit_iter=schedule["refit_iter"],
                random_state=random_state,
                fit_kwargs=FIT,
                copy=True,
                return_model=True,
            )[1],
            None,
            None,
        )
    table, models = scn.tl.lambda_path(
        adata.copy(),
        METHODS[method] if schedule is SCHEDULE else METHODS[method][:2],
        method=method,
        validation=validation,
        max_extend=0,
        **PREP,
        **model_kw,
        lam1=0.0 if method == "pathreg" else None,
        n_iter=schedule["n_iter"],
        refit_iter=schedule["refit_iter"],
        random_state=random_state,
        fit_kwargs=FIT,
        return_models=True,
    )
    # the benchmark's rule: the largest lam within 1.1x of the smallest validation MSE on the grid
    ok = table["val_mse"] <= 1.1 * table["val_mse"].min()
    return models[int(np.flatnonzero(ok)[-1])], None, None


def _summary(rows: list[dict]) -> str:
    frame = pd.DataFrame(rows)
    head = ["method", "AUPRC ratio", "AUROC", "EPR", "signs right", "edges (of 110)", "lambda", "selected at an end"]
    head.append("s / seed")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, part in frame.groupby("method", sort=False):
        ms = {c: f"{part[c].mean():.2f} ± {part[c].std(ddof=0):.2f}" for c in ("auprc_ratio", "auroc", "epr")}
        lam = ", ".join(f"{v:g}" for v in part["lam"]) if part["lam"].notna().all() else ""
        edges = f"{part['edges'].mean():.0f}" if part["edges"].notna().all() else ""
        signs = ""
        if "sign_accuracy" in part and part["sign_accuracy"].notna().all():
            signs = f"{part['sign_accuracy'].mean():.0%}"
        ends = ""
        if "at_end" in part and part["at_end"].notna().all() and (part["at_end"] != "").all():
            counts = [tuple(map(int, v.split(" of "))) for v in part["at_end"]]
            ends = f"{sum(a for a, _ in counts)} of {sum(b for _, b in counts)}"
        lines.append(
            f"| {method} | {ms['auprc_ratio']} | {ms['auroc']} | {ms['epr']} | {signs} | {edges} | {lam} | {ends} | "
            f"{part['seconds'].mean():.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    """Run the benchmark and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny schedule, two lambdas, one seed")
    parser.add_argument("--methods", nargs="*", default=[DEFAULT, *PRIORS, *METHODS])
    parser.add_argument("--restarts", type=int, default=1, help="fits per method and seed, graphs averaged")
    parser.add_argument("--decay", action="store_true", help="each gene's unpenalised decay term in every field")
    parser.add_argument("--gates", choices=["inputs", "pairs"], help="the default call's gates (default: its own)")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    schedule = QUICK_SCHEDULE if args.quick else SCHEDULE
    model_kwargs = {"decay": True} if args.decay else None
    seeds = [1] if args.quick else list(range(1, args.seeds + 1))
    start = time.perf_counter()
    rows = []
    for seed in seeds:
        adata, validation = simulate(seed), simulate(seed + 1000)
        t0 = time.perf_counter()
        baselines = baseline_scores(adata, seed)
        seconds = (time.perf_counter() - t0) / len(baselines)  # one pass computes them all
        for name, scores in baselines.items():
            rows.append({"method": f"*{name}*", "seed": seed, "seconds": seconds, **evaluate(adata, scores)})
        for method in args.methods:
            rows.extend(run_method(method, adata, validation, seed, schedule, args.restarts, model_kwargs, args.gates))
            print(f"  seed {seed} {method}: {rows[-1]['seconds']:.0f} s", file=sys.stderr, flush=True)
    text = "\n".join(
        [
            f"# GRN benchmark: krumsiek11 ({date.today()})",
            "",
            command("grn.py", argv),
            machine() + f"; seeds {seeds}; schedule {schedule}; windows of {WINDOW} steps.",
            "",
            "Mean ± sd over seeds; baselines in italics; 110 candidate edges, 26 true.",
            "",
            _summary(rows),
            "",
            total(start),
        ]
    )
    print(text)
    return text


if __name__ == "__main__":
    main()
