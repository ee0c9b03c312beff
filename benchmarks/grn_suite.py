"""GRN suite: BEELINE's six synthetic networks, observational and with knockouts; scnode against its peers.

Usage::

    python benchmarks/grn_suite.py                  # eight systems, 2 seeds
    python benchmarks/grn_suite.py --seeds 1 --first-seed 3   # one more seed, never used before
    python benchmarks/grn_suite.py --models random30-1 random100-2 --seeds 1   # random networks never used before
    python benchmarks/grn_suite.py --quick          # two models, one seed, short fits: the same code path
    python benchmarks/grn_suite.py --pseudotime cells   # one cell per simulation (see PROTOCOLS)
    python benchmarks/grn_suite.py --pseudotime dpt     # ... ordered by diffusion pseudotime
    python benchmarks/grn_suite.py --pseudotime dpt --refine-time 2   # ... and scnode re-timing the cells
    python benchmarks/grn_suite.py --pseudotime dpt --refine-time auto  # ... while the fitted order differs
    python benchmarks/grn_suite.py --pseudotime geodesic  # ... ordered by scnode's geodesic pseudotime
    python benchmarks/grn_suite.py --pseudotime noisy --clock-noise 0.1  # ... ordered by a noisy clock
    python benchmarks/grn_suite.py --pseudotime noisy --binning states   # ... and scnode with state bins
    python benchmarks/grn_suite.py --edge-scores effects --peers   # scnode's edges also scored by effects

Data: each of BEELINE's six Boolean models (``scn.datasets.boolean_model``, files from the
``boolode`` data folder), scanpy's krumsiek11 rules (``scn.datasets.krumsiek11_boolean``, 11 genes)
and one fixed random sparse network of 60 genes (``scn.datasets.random_boolean_model``, 122 edges),
simulated with ``scn.datasets.simulate_boolean``: 1000 cells from 10 noisy simulations per
condition, the simulation time as pseudotime. *Observational*: the unperturbed cells only.
*Knockouts*: the same cells plus 1000 cells of each of three knockouts, of genes drawn at random
(seeded) among those with an outgoing edge, as an experimenter perturbs candidate regulators.

Rows. ``scnode``: the default call, ``scn.tl.fit_sparse_ode(adata, time_key="time",
lineage_key="simulation")``, with ``perturbation_key="perturbation"`` on the knockout data; scored by
its graph (``varp["scnode"]``) and by the ranking of every pair over its penalty search
(``varp["scnode_path"]``). Peers on the same cells (all conditions pooled: they cannot tell a
perturbed cell from another): GRNBoost2 (arboreto's per-target routine ``infer_partial_network``
with its own settings), GENIE3 (ExtraTrees on x, as GENIE3; and on dx/dt), the absolute correlation
of x_j with dx_i/dt, Lasso (cross-validated, on dx/dt) and PySINDy (STLSQ on a quadratic library; a
pair's score is the sum of the absolute coefficients of the terms holding the regulator). dx/dt:
finite differences along each simulation. The true network plays no part in any row.

Scores follow BEELINE: self-loops excluded; AUPRC ratio = AUPRC over the edge density; AUROC; EPR =
precision among the top-k (k = true edges) over the edge density; signs right = share of true edges
among the top k whose learned sign is the true one (scnode only).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Sequence
from datetime import date

import numpy as np
import pandas as pd
import torch
from _report import command, machine, total
from grn import evaluate
from scipy.stats import spearmanr
from sklearn.ensemble import ExtraTreesRegressor
from sklearn.linear_model import LassoCV

import scnode as scn
from scnode.cli import _refine_time

MODELS = [
    "linear",
    "linear-long",
    "cycle",
    "bifurcating",
    "bifurcating-converging",
    "trifurcating",
    "krumsiek11",
    "random60",
]
RANDOM_NETWORK_SEED = 0
"""``random60``: one fixed random network (``scn.datasets.random_boolean_model``); the seeds vary its cells."""
QUICK_MODELS = ["linear", "cycle"]
CELLS, SIMULATIONS, KNOCKOUTS = 1000, 10, 3
SCNODE = "scnode default call"
PEERS = ["GRNBoost2", "GENIE3 (x)", "GENIE3 (dx/dt)", "correlation (x_j, dx_i/dt)", "Lasso (dx/dt)", "PySINDy"]
PROTOCOLS = {
    "simulation": {"time_key": "time", "lineage_key": "simulation"},
    "cells": {"time_key": "time", "lineage_key": None},
    "dpt": {"time_key": "dpt_pseudotime", "lineage_key": None},
    "geodesic": {"time_key": "geodesic_pseudotime", "lineage_key": None},
    "noisy": {"time_key": "noisy_time", "lineage_key": None},
}
"""``simulation``: 10 simulations per condition, each a lineage, timed by the simulation clock.
``cells``: one cell per simulation, as BEELINE samples, one trajectory timed by the simulation clock
(each cell's own sampling time: what a perfect pseudotime would give).
``dpt``: one cell per simulation, one trajectory timed by diffusion pseudotime.
``geodesic``: the same timed by ``scn.tl.geodesic_pseudotime`` per condition (:func:`with_geodesic`).
``noisy``: one cell per simulation, one trajectory timed by the clock plus Gaussian noise of
``--clock-noise`` times the clock's range (seeded): a pseudotime of known, graded quality."""
SAMPLING = {
    "simulation": f"from {SIMULATIONS} simulations, each a lineage timed by its clock",
    "cells": "one per simulation, one trajectory timed by the simulation clock",
    "dpt": "one per simulation, one trajectory timed by diffusion pseudotime",
    "geodesic": "one per simulation, one trajectory timed by scnode's geodesic pseudotime",
    "noisy": "one per simulation, one trajectory timed by the clock plus noise",
}
CLOCK_NOISE = 0.1
"""``noisy``: the noise's standard deviation over the clock's range (``--clock-noise``)."""
NEIGHBOURS = 15
"""Local order of a pseudotime: each unperturbed cell's this many nearest neighbours in expression."""
MISSING: set[str] = set()
"""Peers left out because their package is not installed (``pip install -e ".[benchmarks]"``)."""
UNREACHED: list[str] = []
"""Per system and seed: cells left out under ``--pseudotime dpt`` because DPT could not reach them."""


def knockout_genes(model: scn.datasets.BooleanModel, seed: int) -> list[str]:
    """``KNOCKOUTS`` genes drawn at random among those that regulate another gene."""
    net = model.network().to_numpy() != 0
    np.fill_diagonal(net, False)
    candidates = [g for g, row in zip(model.genes, net, strict=True) if row.any()]
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(candidates, size=min(KNOCKOUTS, len(candidates)), replace=False).tolist())


def derivatives(adata: scn.AnnData, time_key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every cell, and states with finite-difference derivatives, along ``time_key`` per simulation and condition.

    Returns the cells ordered by simulation, condition and time; the states (cells at equal times
    averaged into one); their derivatives.
    """
    cells, xs, ds = [], [], []
    condition = adata.obs["perturbation"].astype(str).to_numpy()
    simulation = adata.obs["simulation"].astype(str).to_numpy()
    for name in sorted(set(zip(simulation, condition, strict=True))):
        part = adata[(simulation == name[0]) & (condition == name[1])]
        if part.n_obs < 3:
            continue
        times = part.obs[time_key].to_numpy(float)
        cells.append(np.asarray(part.X, float)[np.argsort(times, kind="stable")])
        t, at = np.unique(times, return_inverse=True)
        if len(t) < 3:
            continue
        x = np.zeros((len(t), part.n_vars))
        np.add.at(x, at, np.asarray(part.X, float))
        xs.append(x / np.bincount(at)[:, None])
        ds.append(np.gradient(xs[-1], t, axis=0))
    return np.concatenate(cells), np.concatenate(xs), np.concatenate(ds)


def peer_scores(
    adata: scn.AnnData, seed: int, time_key: str, peers: Sequence[str] = PEERS
) -> dict[str, tuple[np.ndarray, float]]:
    """Regulator x target scores of each peer named and its seconds (GRNBoost2 and PySINDy when installed)."""
    cells, x, dx = derivatives(adata, time_key)
    d = x.shape[1]
    names = list(adata.var_names)
    out: dict[str, tuple[np.ndarray, float]] = {}

    def timed(name, fn):
        tic = time.perf_counter()
        out[name] = (np.nan_to_num(fn()), time.perf_counter() - tic)

    def grnboost2():
        from arboreto.core import SGBM_KWARGS, infer_partial_network

        scores = np.zeros((d, d))
        expr = np.asarray(adata.X, float)
        for i, gene in enumerate(names):
            links = infer_partial_network("GBM", SGBM_KWARGS, expr, names, gene, expr[:, i], seed=seed)
            for reg, imp in zip(links["TF"], links["importance"], strict=True):
                scores[names.index(reg), i] = imp
        return scores

    def genie3(inputs, targets):
        scores = np.zeros((d, d))
        for i in range(d):
            feats = [j for j in range(d) if j != i] if targets is inputs else list(range(d))
            forest = ExtraTreesRegressor(200, max_features="sqrt", random_state=seed, n_jobs=1)
            forest.fit(inputs[:, feats], targets[:, i])
            scores[feats, i] = forest.feature_importances_
        return scores

    def lasso():
        scores = np.zeros((d, d))
        for i in range(d):
            scores[:, i] = np.abs(LassoCV(cv=5, random_state=seed, max_iter=5000).fit(x, dx[:, i]).coef_)
        return scores

    def sindy():
        import pysindy as ps

        model = ps.SINDy(optimizer=ps.STLSQ(threshold=0.1), feature_library=ps.PolynomialLibrary(degree=2))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(x, x_dot=dx, t=1.0)
        coef = np.abs(model.coefficients())  # targets x library terms
        terms = model.get_feature_names()
        scores = np.zeros((d, d))
        for f, term in enumerate(terms):
            for j in range(d):
                if f"x{j}" in term.replace("^", " ").split():
                    scores[j] += coef[:, f]
        return scores

    fns = {
        "GRNBoost2": grnboost2,
        "GENIE3 (x)": lambda: genie3(cells, cells),  # every cell: it needs no time
        "GENIE3 (dx/dt)": lambda: genie3(x, dx),
        "correlation (x_j, dx_i/dt)": lambda: np.abs(np.corrcoef(np.c_[x, dx].T)[:d, d:]),
        "Lasso (dx/dt)": lasso,
        "PySINDy": sindy,
    }
    for name in peers:
        try:
            timed(name, fns[name])
        except ImportError as err:  # benchmark-only dependencies: pip install -e ".[benchmarks]"
            MISSING.add(f"{name} ({err.name} not installed)")
    return out


def scnode_rows(
    adata: scn.AnnData,
    seed: int,
    quick: bool,
    perturbed: bool,
    protocol: dict,
    refine_time: int | str = 0,
    binning: str = "time",
    edge_score: str = "weights",
) -> list[dict]:
    """The default call's graph and path ranking (with ``refine_time``: that call with the cells re-timed;
    with ``binning="states"``: with state bins; with ``edge_score="effects"``: edges scored by effects)."""
    kwargs = {"n_iter": 20} if quick else {}
    if edge_score != "weights":
        kwargs["edge_score"] = edge_score
    if perturbed:
        kwargs["perturbation_key"] = "perturbation"
    if refine_time:
        kwargs["refine_time"] = refine_time
    if binning != "time":
        kwargs["binning"] = binning
    tic = time.perf_counter()
    out = scn.tl.fit_sparse_ode(adata, random_state=seed, progress_bar=False, copy=True, **protocol, **kwargs)
    seconds = time.perf_counter() - tic
    dense = {k: np.asarray(v.toarray() if hasattr(v, "toarray") else v, float) for k, v in out.varp.items()}
    lam = out.uns["scnode"]["params"]["lam"]
    name = f"{SCNODE}, refine_time={refine_time}" if refine_time else SCNODE
    if binning != "time":
        name += f", binning={binning!r}"
    if edge_score != "weights":
        name += f", edge_score={edge_score!r}"
    order = {}
    if refine_time and "time" in adata.obs:
        wt = adata.obs["perturbation"].isna().to_numpy() if "perturbation" in adata.obs else slice(None)
        fitted = out.obs["scnode_time"] if "scnode_time" in out.obs else adata.obs[protocol["time_key"]]  # auto: none
        order = {"refined_spearman": float(spearmanr(fitted[wt], adata.obs["time"][wt])[0])}
    if refine_time == "auto":
        order["refine_rounds"] = int(out.uns["scnode"]["params"]["refine_rounds"])
        order["refine_chosen"] = int(out.uns["scnode"]["params"]["refine_chosen"])
    return [
        {
            "method": name,
            "lam": lam,
            "seconds": seconds,
            **order,
            **evaluate(adata, dense["scnode"], dense["scnode_sign"]),
        },
        {
            "method": f"{name}: path ranking",
            "lam": lam,
            "seconds": seconds,
            **evaluate(adata, dense["scnode_path"], dense["scnode_path_sign"]),
        },
    ]


def load_model(name: str) -> scn.datasets.BooleanModel:
    """One of BEELINE's models, scanpy's krumsiek11 rules, or a random network of n genes.

    ``random<n>``: the suite's fixed network (:data:`RANDOM_NETWORK_SEED`); ``random<n>-<s>``: the one
    drawn with network seed ``s``, for networks never used before.
    """
    if name == "krumsiek11":
        return scn.datasets.krumsiek11_boolean()
    if name.startswith("random"):
        size, _, seed = name[len("random") :].partition("-")
        return scn.datasets.random_boolean_model(int(size), seed=int(seed) if seed else RANDOM_NETWORK_SEED)
    return scn.datasets.boolean_model(name)


def with_dpt(adata: scn.AnnData, label: str = "") -> scn.AnnData:
    """Diffusion pseudotime of all cells (every condition), rooted at the earliest unperturbed cell.

    Cells that DPT cannot reach from the root (a neighbour graph in several pieces: its pseudotime is
    infinite) are left out, as the default call's error message tells a user to, and counted in
    :data:`UNREACHED` under ``label``.
    """
    import scanpy as sc

    adata = adata.copy()
    sc.pp.neighbors(adata, n_neighbors=15, use_rep="X")
    sc.tl.diffmap(adata)
    wt = np.flatnonzero(adata.obs["perturbation"].isna().to_numpy())
    adata.uns["iroot"] = int(wt[np.argmin(adata.obs["time"].to_numpy()[wt])])
    sc.tl.dpt(adata)
    reached = np.isfinite(adata.obs["dpt_pseudotime"].to_numpy(float))
    if not reached.all():
        wt_lost = int((~reached & adata.obs["perturbation"].isna().to_numpy()).sum())
        UNREACHED.append(f"{label}: {int((~reached).sum())} of {adata.n_obs} cells ({wt_lost} unperturbed)")
        adata = adata[reached].copy()
    return adata


def with_geodesic(adata: scn.AnnData) -> scn.AnnData:
    """``scn.tl.geodesic_pseudotime`` on expression, per condition, each rooted at its earliest cell.

    As a user would compute it: the unperturbed cells alone (what the observational data set has)
    and each knockout's cells alone (cells of different conditions share no trajectory in the fit).
    """
    adata = adata.copy()
    condition = adata.obs["perturbation"].astype(str).to_numpy()
    times = np.zeros(adata.n_obs)
    for name in np.unique(condition):
        cells = np.flatnonzero(condition == name)
        part = adata[cells].copy()
        scn.tl.geodesic_pseudotime(part, int(np.argmin(part.obs["time"].to_numpy())), use_rep="X")
        times[cells] = part.obs["geodesic_pseudotime"].to_numpy()
    adata.obs["geodesic_pseudotime"] = times
    return adata


def with_noisy_clock(adata: scn.AnnData, noise: float, seed: int) -> scn.AnnData:
    """``obs["noisy_time"]``: the clock plus Gaussian noise of ``noise`` times its range, shifted to start at 0."""
    adata = adata.copy()
    clock = adata.obs["time"].to_numpy(float)
    rng = np.random.default_rng([seed, 7])
    noisy = clock + rng.normal(0.0, noise * (clock.max() - clock.min()), clock.shape)
    adata.obs["noisy_time"] = noisy - noisy.min()
    return adata


def pseudotime_order(adata: scn.AnnData, key: str) -> tuple[float, float]:
    """How well ``obs[key]`` orders the unperturbed cells: globally and locally.

    Returns the Spearman correlation with the simulation clock, and the share of pairs of a cell and
    one of its :data:`NEIGHBOURS` nearest neighbours in expression (unperturbed cells, distinct clock
    times) that the pseudotime puts in the clock's order: 0.5 is no local information, 1 the clock's.
    """
    from sklearn.neighbors import NearestNeighbors

    wt = adata.obs["perturbation"].isna().to_numpy()
    pseudo, clock = adata.obs[key].to_numpy(float)[wt], adata.obs["time"].to_numpy(float)[wt]
    x = np.asarray(adata.X, float)[wt]
    near = NearestNeighbors(n_neighbors=NEIGHBOURS + 1).fit(x).kneighbors(x, return_distance=False)[:, 1:]
    i, j = np.repeat(np.arange(len(clock)), NEIGHBOURS), near.ravel()
    apart = clock[i] != clock[j]
    agree = np.sign(pseudo[j] - pseudo[i])[apart] == np.sign(clock[j] - clock[i])[apart]
    return float(spearmanr(pseudo, clock)[0]), float(agree.mean())


def run_system(
    name: str,
    seed: int,
    quick: bool,
    protocol: dict,
    refine: Sequence[int | str] = (),
    clock_noise: float = CLOCK_NOISE,
    binnings: Sequence[str] = (),
    peers: Sequence[str] = PEERS,
    edge_scores: Sequence[str] = (),
) -> list[dict]:
    """Both data sets of one model and seed: every row."""
    model = load_model(name)
    kos = knockout_genes(model, seed)
    cells = 300 if quick else CELLS
    sims = cells if protocol["lineage_key"] is None else SIMULATIONS
    full = scn.datasets.simulate_boolean(model, n_cells=cells, n_simulations=sims, knockouts=kos, seed=seed)
    order = (None, None)
    if protocol["time_key"] == "dpt_pseudotime":
        full = with_dpt(full, f"{name} seed {seed}")
    elif protocol["time_key"] == "geodesic_pseudotime":
        full = with_geodesic(full)
    elif protocol["time_key"] == "noisy_time":
        full = with_noisy_clock(full, clock_noise, seed)
    if protocol["time_key"] != "time":
        order = pseudotime_order(full, protocol["time_key"])
    if protocol["lineage_key"] is None:  # one trajectory: the peers' dx/dt along all cells of a condition
        full.obs["simulation"] = pd.Categorical(["all"] * full.n_obs)
    observed = full[full.obs["perturbation"].isna()].copy()
    rows = []
    for data, label in ((observed, "observational"), (full, f"knockouts of {', '.join(kos)}")):
        perturbed = data is full
        common = {
            "system": name,
            "seed": seed,
            "data": "knockouts" if perturbed else "observational",
            "knocked": label,
            "pseudotime_spearman": order[0],
            "pseudotime_local": order[1],
        }
        for method, (scores, seconds) in peer_scores(data, seed, protocol["time_key"], peers).items():
            rows.append({**common, "method": method, "seconds": seconds, **evaluate(data, scores)})
        for n in (0, *refine):
            rows.extend({**common, **r} for r in scnode_rows(data, seed, quick, perturbed, protocol, n))
        for binning in binnings:
            rows.extend({**common, **r} for r in scnode_rows(data, seed, quick, perturbed, protocol, binning=binning))
        for score in edge_scores:
            rows.extend({**common, **r} for r in scnode_rows(data, seed, quick, perturbed, protocol, edge_score=score))
        print(f"  {name} seed {seed} {common['data']}: done", file=sys.stderr, flush=True)
    return rows


def _tables(rows: list[dict]) -> str:
    frame = pd.DataFrame(rows)
    lines = []
    for data, part in frame.groupby("data", sort=False):
        systems = list(dict.fromkeys(part["system"]))
        head = ["method", *systems, "mean", "AUROC (mean)", "EPR (mean)", "signs right", "s / fit"]
        lines += [f"### {data}", "", "AUPRC ratio per system (mean over seeds)", ""]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        per = part.groupby(["method", "system"], sort=False)["auprc_ratio"].mean().unstack()[systems]
        for method in dict.fromkeys(part["method"]):
            sub = part[part["method"] == method]
            signed = "sign_accuracy" in sub and sub["sign_accuracy"].notna().all()
            signs = f"{sub['sign_accuracy'].mean():.0%}" if signed else ""
            cells = [f"{per.loc[method, s]:.2f}" for s in systems]
            lines.append(
                f"| {method} | {' | '.join(cells)} | **{per.loc[method].mean():.2f}** | {sub['auroc'].mean():.2f} | "
                f"{sub['epr'].mean():.2f} | {signs} | {sub['seconds'].mean():.1f} |"
            )
        best_peer = per.drop(index=[m for m in per.index if m.startswith(SCNODE)]).mean(axis=1)
        lines += [""]
        for method in (m for m in per.index if m.startswith(SCNODE) and len(best_peer)):
            lines.append(
                f"- {method}: mean AUPRC ratio over the best peer's ({best_peer.idxmax()}, {best_peer.max():.2f}): "
                f"{per.loc[method].mean() / best_peer.max():.2f}"
            )
        if "refined_spearman" in part and part["refined_spearman"].notna().any():
            refined = part.dropna(subset=["refined_spearman"]).groupby("system", sort=False)["refined_spearman"].mean()
            cells = ", ".join(f"{system} {rho:.2f}" for system, rho in refined.items())
            lines.append(f"- Spearman correlation of the re-timed cells with the clock (unperturbed cells): {cells}")
        if "refine_rounds" in part and part["refine_rounds"].notna().any():
            made = part.dropna(subset=["refine_rounds"])
            pairs = made[["refine_rounds", "refine_chosen"]].to_numpy(int)
            made = made.assign(made=[f"{n} ({k})" for n, k in pairs])
            cells = ", ".join(f"{system} {', '.join(g)}" for system, g in made.groupby("system", sort=False)["made"])
            lines.append(f"- Re-timings made by `refine_time='auto'` (in brackets the fit kept; per seed): {cells}")
        lines += [""]
    order = frame.dropna(subset=["pseudotime_spearman"]).groupby("system", sort=False)["pseudotime_spearman"].mean()
    if len(order):
        cells = ", ".join(f"{system} {rho:.2f}" for system, rho in order.items())
        lines += [f"Spearman correlation of the pseudotime with the simulation clock (unperturbed cells): {cells}", ""]
        local = frame.groupby("system", sort=False)["pseudotime_local"].mean()
        cells = ", ".join(f"{system} {share:.2f}" for system, share in local.items())
        lines += [
            f"Pairs of a cell and one of its {NEIGHBOURS} nearest neighbours that the pseudotime puts in the clock's "
            f"order (unperturbed cells; 0.5: no local order): {cells}",
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    """Run the suite and print markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument(
        "--first-seed", type=int, default=1, help="seeds first-seed ... first-seed + seeds - 1 (0 is for development)"
    )
    parser.add_argument("--quick", action="store_true", help="two models, 300 cells, short fits, one seed")
    parser.add_argument("--models", nargs="*", default=None)
    parser.add_argument("--pseudotime", choices=list(PROTOCOLS), default="simulation", help="see PROTOCOLS")
    parser.add_argument("--gates", choices=["inputs", "pairs"], help="scnode's gates (default: the default call's)")
    parser.add_argument(
        "--refine-time",
        type=_refine_time,
        nargs="*",
        default=[],
        help="also scnode's rows with refine_time=n, per n (or auto) given",
    )
    parser.add_argument(
        "--clock-noise", type=float, default=CLOCK_NOISE, help="--pseudotime noisy: noise over the clock's range"
    )
    parser.add_argument(
        "--binning", nargs="*", default=[], choices=["states"], help="also scnode's rows with this binning="
    )
    parser.add_argument("--peers", nargs="*", choices=PEERS, default=PEERS, help="the peers to run (default: all)")
    parser.add_argument(
        "--edge-scores", nargs="*", default=[], choices=["effects"], help="also scnode's rows with this edge_score="
    )
    args = parser.parse_args(argv)
    protocol = dict(PROTOCOLS[args.pseudotime])
    if args.gates:
        protocol["model_kwargs"] = {"gates": args.gates}
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    models = args.models or (QUICK_MODELS if args.quick else MODELS)
    seeds = [args.first_seed] if args.quick else list(range(args.first_seed, args.first_seed + args.seeds))
    start = time.perf_counter()
    rows = [
        r
        for name in models
        for seed in seeds
        for r in run_system(
            name,
            seed,
            args.quick,
            protocol,
            args.refine_time,
            args.clock_noise,
            args.binning,
            args.peers,
            args.edge_scores,
        )
    ]
    cells = 300 if args.quick else CELLS
    sampling = SAMPLING[args.pseudotime]
    if args.pseudotime == "noisy":
        sampling += f" (standard deviation {args.clock_noise:g} of its range)"
    text = "\n".join(
        [
            f"# GRN suite: BEELINE's synthetic networks ({date.today()})",
            "",
            command("grn_suite.py", argv),
            machine() + f"; seeds {seeds}; {cells} cells per condition, {sampling}.",
            "",
            _tables(rows),
            *([f"Left out: {', '.join(sorted(MISSING))}.", ""] if MISSING else []),
            *([f"Cells DPT could not reach, left out: {'; '.join(UNREACHED)}.", ""] if UNREACHED else []),
            total(start),
        ]
    )
    print(text)
    return text


if __name__ == "__main__":
    main()
