"""Human hematopoiesis (bone-marrow pseudotime trajectories): held-out donors and the TF prior, all seven methods.

Usage::

    python benchmarks/hematopoiesis.py            # both protocols, all methods (SCNODE_DATA_DIR or download)
    python benchmarks/hematopoiesis.py --quick    # a fast smoke run of the same code path

Protocols (DESIGN.md section 4; the authors' preprocessing): per donor x lineage trajectory, cells
sorted by diffusion pseudotime, the first 10 and last 20 dropped, each gene min-max scaled, pseudotime
scaled to [0, 1], x0 = mean of the first 5 cells. Every donor x lineage is one trajectory of the
one shared vector field.

(a) the paper's: train s1d2 (3 lineages), test s1d1, s2d1, s2d4, s3d6;
(b) several donors: train s1d1, s1d2, s2d4 (8 trajectories; s2d4 has no erythroid file), test s2d1, s3d6.

Test MSE: the model is integrated from the test trajectory's own x0 and compared with its scaled
values at every distinct pseudotime (``scnode.tl.score``); summed over the donor's lineages (the
paper's summary). Training uses the cells averaged in ``N_BINS`` equal pseudotime bins per trajectory
(bin centres; a shared grid keeps the batched solve cheap); testing uses every cell.

Predictors without dynamics, computed in the same run: zero; each gene's mean over the training
cells of the lineage; the training donors' pseudotime curves of the lineage (Gaussian kernel
smoother, bandwidth ``BANDWIDTH`` in scaled pseudotime, pooled over training donors) evaluated at the
test times.

Graph scores: spurious-feature sparsity = share of zero outgoing edges (rows of ``varp``) of the genes
that are no TF in the base GRN; AUPRC ratio of the TF -> target part against the authors' base GRN
(a prior, not ground truth; ``scnode.tl.evaluate_grn`` with the TFs as regulators).

Rows. The two *default* rows (``DEFAULT_ROWS``) are the call a user makes,
``scn.tl.fit_sparse_ode(train, time_key="dpt_pseudotime", lineage_key="trajectory")`` (and with
``regulators=scn.datasets.tf_list("human")``): the package's defaults choose the field,
preprocessing, windows and penalty (on held-out time points of the training donors). The *protocol*
rows (``METHODS``) fit whole trajectories from x0 with the protocol's preprocessing and ``N_BINS``
bins, dopri5 at rtol = atol = 1e-3, Adam at 1e-2, the initial states perturbed during training by their
own standard error (``x0_noise``, from the training cells' first time points), each row's field as
written (on the shared field's settings, ``field="shared"``).

lambda rule of the protocol rows: each sparse method fits its grid (``METHODS``) with
``scnode.tl.lambda_path`` (independent fits, extended past an end of the grid where the selection sits
there) with every 5th time point of each training trajectory held out; the selected lambda is the
largest that keeps half of the held-out gain of the best fit over the sparsest (the rule of the
default call). Test donors play no part in any choice. Every row is scored on the same cells
(``SCORE``: the protocol's trimming and initial states, every cell).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from datetime import date

import numpy as np
import pandas as pd
import torch
from _report import command, machine, total

import scnode as scn
from scnode.core.train import ADAM_EPS

PROTOCOLS = {
    "a": (["s1d2"], ["s1d1", "s2d1", "s2d4", "s3d6"]),
    "b": (["s1d1", "s1d2", "s2d4"], ["s2d1", "s3d6"]),
}
AUTHORS = {"train": 0.0353, "s1d1": 0.0365, "s2d1": 0.0384, "s2d4": 0.0273, "s3d6": 0.0729}
"""The authors' PathReg run (lambda = 0.01), summed test MSE per donor (DESIGN.md section 4)."""
PREP = {"time_key": "dpt_pseudotime", "lineage_key": "trajectory", "trim_start": 10, "trim_end": 20, "x0_cells": 5}
SCORE = {"trim_start": 10, "trim_end": 20, "x0_cells": 5, "n_bins": None}
"""Every row is scored on the same cells: the protocol's preprocessing, every cell of the held-out donors."""
N_BINS = 100
BANDWIDTH = 0.05
SCHEDULE = {"n_iter": 400, "refit_iter": 200}
QUICK_SCHEDULE = {"n_iter": 6, "refit_iter": 3}
PROTOCOL_FIT = {"field": "shared", "window": None}
"""The protocol rows: whole trajectories from x0 (with the benchmark's x0 noise), the field of each row
as written (``model_kwargs`` on the shared field's settings), the protocol's preprocessing."""
TUNED_OPTIMISER = {"gate_eps": ADAM_EPS, "penalty_delay": 0}
"""The protocol rows' optimiser, the one their grids were tuned with: Adam's own ``eps`` for the gates
and the penalty from the first iteration (order-1 ``fit_sparse_ode`` fits otherwise give the gates an
``eps`` of 1e-16 and fit a quarter of the iterations without the penalty first)."""
DEFAULT_ROWS = ("default call", "default call, TF regulators")
"""Rows fitted with ``scn.tl.fit_sparse_ode``'s defaults (only ``time_key``, ``lineage_key`` and, in the
second, ``regulators=scn.datasets.tf_list("human")``): their own preprocessing and penalty choice."""
METHODS: dict[str, dict] = {
    "base": {},
    "l0": {"lams": [0.3, 1.0, 3.0]},
    "cnode": {"lams": [3.0, 10.0, 30.0]},
    "pathreg": {"lams": [0.3, 1.0, 3.0], "lam1": 0.0},
    "lassonet_inner": {"lams": [3.0, 10.0, 30.0]},
    "lassonet_outer": {"lams": [3.0, 10.0, 30.0]},
    "grouplasso": {"lams": [0.3, 1.0, 3.0], "hidden": (8,)},
    "base, per output": {"method": "base", "hidden": (8,), "model_kwargs": {"per_output": True}},
    "pathreg, per output": {
        "method": "pathreg",
        "lams": [0.01, 0.03, 0.1],
        "lam1": 0.0,
        "hidden": (8,),
        "model_kwargs": {"per_output": True},
    },
}
"""Rows: the method (the row's name unless ``method`` is given), the penalty grid of its lambda path and
other ``fit_sparse_ode`` arguments (hidden (32, 32) unless given; PathReg without its weight-path term).
The "per output" rows use one 8-wide sub-network per gene, as GroupLasso does, instead of the shared
MLP; their PathReg grid is lower because each (target, regulator) pair has 8 paths there, not 1024.
The "decay" rows add each gene's own first-order loss, ``dx_i/dt = f_i(x) - gamma_i x_i``
(``decay=True``; unpenalised, not in the graph). The "input gates" row gates only the first layer of
each gene's network (``gates="inputs"``), so that PathReg cuts a gene's inputs instead of switching
its hidden units off; each (target, regulator) pair then has 8 paths whose output weights are
always present, and its grid is the shared MLP's."""
for _row in ("base, per output", "pathreg, per output"):
    METHODS[f"{_row}, decay"] = {
        **METHODS[_row],
        "model_kwargs": {**METHODS[_row]["model_kwargs"], "decay": True},
    }
METHODS["pathreg, per output, decay, input gates"] = {
    **METHODS["pathreg, per output, decay"],
    "lams": [0.3, 1.0, 3.0],
    "model_kwargs": {**METHODS["pathreg, per output, decay"]["model_kwargs"], "gates": "inputs"},
}


def x0_noise(ts: scn.pp.TrajectorySet) -> float:
    """Standard error of the initial states: RMS over genes and trajectories of std(first cells) / sqrt(k).

    ``k = x0_cells``, the std over the first ``2 k`` time points. Training perturbs x0 by this much
    (``x0_noise``) so that the field is fitted around the uncertain starting point of a new donor.
    """
    k = PREP["x0_cells"]
    return float(np.sqrt(np.mean([np.mean(v[: 2 * k].std(0) ** 2) / k for v in ts.values])))


def load(data_dir: str | None = None) -> tuple[scn.AnnData, pd.DataFrame]:
    """All donors and lineages with a ``trajectory`` column (donor_lineage), and the base GRN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the missing erythroid s2d4 trajectory
        adata = scn.datasets.hematopoiesis(data_dir=data_dir)
    adata.obs["trajectory"] = pd.Categorical(adata.obs["donor"].astype(str) + "_" + adata.obs["lineage"].astype(str))
    grn = scn.datasets.hematopoiesis_base_grn(adata.var_names, data_dir=data_dir)
    return adata, grn


def _lineage(name: str) -> str:
    return name.split("_", 1)[1]


def _donor_sum(table: pd.DataFrame) -> float:
    return float(table["mse"].drop("sum").sum())


def baselines(train: scn.AnnData, tests: dict[str, scn.AnnData]) -> pd.DataFrame:
    """Summed test MSE of the predictors without dynamics (rows) per test donor (columns)."""
    tr = scn.pp.prepare_trajectories(train, **PREP)
    pooled: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for t, v, name in zip(tr.times, tr.values, tr.lineages, strict=True):
        t0, v0 = pooled.get(_lineage(name), (np.empty(0), np.empty((0, v.shape[1]))))
        pooled[_lineage(name)] = (np.r_[t0, t], np.r_[v0, v])
    rows: dict[str, dict[str, float]] = {"zero": {}, "gene mean": {}, "pooled curve": {}}
    for donor, test in tests.items():
        te = scn.pp.prepare_trajectories(test, **PREP)
        sums = dict.fromkeys(rows, 0.0)
        for t, v, name in zip(te.times, te.values, te.lineages, strict=True):
            pt, pv = pooled[_lineage(name)]
            w = np.exp(-0.5 * ((t[:, None] - pt[None, :]) / BANDWIDTH) ** 2)
            curve = (w @ pv) / w.sum(1, keepdims=True)
            sums["zero"] += np.mean(v**2)
            sums["gene mean"] += np.mean((v - pv.mean(0)) ** 2)
            sums["pooled curve"] += np.mean((v - curve) ** 2)
        for k in rows:
            rows[k][donor] = float(sums[k])
    return pd.DataFrame(rows).T


def graph_scores(adata: scn.AnnData, grn: pd.DataFrame) -> dict[str, float]:
    """Spurious-feature sparsity and the TF -> target AUPRC ratio against the base GRN."""
    graph = np.asarray(adata.varp["scnode"])
    non_tf = ~adata.var_names.isin(grn.index)
    res = scn.tl.evaluate_grn(adata, grn, regulators=list(grn.index))
    return {"spurious": float((graph[non_tf] == 0).mean()), "auprc_ratio": float(res["auprc_ratio"])}


def run(
    method: str,
    protocol: str,
    adata: scn.AnnData,
    grn: pd.DataFrame,
    schedule: dict,
    seed: int,
    gates: str | None = None,
    binning: str = "time",
    gradient_precision: str | None = None,
) -> dict:
    """Fit one method on a protocol's training donors and score it on its test donors.

    ``gates``: the default call's rows with ``model_kwargs={"gates": gates}`` (``None``: its own);
    ``binning``: the default call's rows with that ``binning``; ``gradient_precision``: theirs in
    ``fit_kwargs`` (``None``: its own).
    """
    train_donors, test_donors = PROTOCOLS[protocol]
    train = adata[adata.obs["donor"].isin(train_donors)].copy()
    if method in DEFAULT_ROWS:
        return _default_row(method, train, adata, test_donors, grn, schedule, seed, gates, binning, gradient_precision)
    settings = dict(METHODS[method])
    lams = settings.pop("lams", None)
    name, method = method, settings.pop("method", method)
    noise = x0_noise(scn.pp.prepare_trajectories(train, **PREP))
    common = {**PREP, **PROTOCOL_FIT, "n_bins": N_BINS, "device": "cpu", "random_state": seed, "progress_bar": False}
    common.update(settings)
    start = time.perf_counter()
    if lams is None:
        model = scn.tl.fit_sparse_ode(
            train,
            method=method,
            n_iter=schedule["n_iter"],
            return_model=True,
            fit_kwargs={**TUNED_OPTIMISER, "x0_noise": noise, "refit_iter": schedule["refit_iter"]},
            **common,
        )
        lam = 0.0
    else:
        table, models = scn.tl.lambda_path(
            train,
            lams if schedule is SCHEDULE else lams[:2],
            method=method,
            n_iter=schedule["n_iter"],
            refit_iter=schedule["refit_iter"],
            max_extend=3 if schedule is SCHEDULE else 0,
            return_models=True,
            fit_kwargs={**TUNED_OPTIMISER, "x0_noise": noise},
            **common,
        )
        chosen = int(np.flatnonzero(table["selected"])[0])
        model, lam = models[chosen], float(table["lam"].iloc[chosen])
    return _scores(name, lam, noise, time.perf_counter() - start, model, train, adata, test_donors, grn)


def _scores(
    name: str,
    lam: float,
    noise: float,
    seconds: float,
    model: scn.SparseODE,
    train: scn.AnnData,
    adata: scn.AnnData,
    test_donors: list[str],
    grn: pd.DataFrame,
) -> dict:
    """A row of the table: training and held-out donors' MSE (the protocol's cells), sparsity, TF scores."""
    row = {"method": name, "lam": lam, "x0_noise": noise, "seconds": seconds}
    n_train = train.obs["donor"].nunique()
    row["train"] = _donor_sum(scn.tl.score(train, model, **SCORE)) / n_train  # averaged over training donors
    for donor in test_donors:
        table = scn.tl.score(adata[adata.obs["donor"] == donor], model, **SCORE)
        row[donor] = _donor_sum(table)
        for lineage, mse in table["mse"].drop("sum").items():
            row[f"{donor}/{_lineage(lineage)}"] = float(mse)
    metrics = train.uns["scnode"]["metrics"]
    row.update(feature=model.feature_sparsity, weight=model.weight_sparsity, **graph_scores(train, grn))
    row.update(no_regulator=int(metrics["targets_without_regulators"]), median=float(metrics["median_regulators"]))
    return row


def _default_row(
    name: str,
    train: scn.AnnData,
    adata: scn.AnnData,
    test_donors: list[str],
    grn: pd.DataFrame,
    schedule: dict,
    seed: int,
    gates: str | None = None,
    binning: str = "time",
    gradient_precision: str | None = None,
) -> dict:
    """The default call on the training donors (the quick run shortens its fits)."""
    kwargs = {} if schedule is SCHEDULE else {"n_iter": schedule["n_iter"]}
    if name.endswith("TF regulators"):
        kwargs["regulators"] = scn.datasets.tf_list("human")
    if gates:
        kwargs["model_kwargs"] = {"gates": gates}
        name = f"{name}, gates={gates}"
    if binning != "time":
        kwargs["binning"] = binning
        name = f"{name}, binning={binning!r}"
    if gradient_precision:
        kwargs["fit_kwargs"] = {"gradient_precision": gradient_precision}
        name = f"{name}, gradient_precision={gradient_precision!r}"
    start = time.perf_counter()
    model = scn.tl.fit_sparse_ode(
        train,
        time_key="dpt_pseudotime",
        lineage_key="trajectory",
        random_state=seed,
        progress_bar=False,
        return_model=True,
        **kwargs,
    )
    seconds = time.perf_counter() - start
    return _scores(name, model.config.lam, 0.0, seconds, model, train, adata, test_donors, grn)


def _table(rows: list[dict], base: pd.DataFrame, protocol: str) -> str:
    test_donors = PROTOCOLS[protocol][1]
    head = [
        "method",
        "lambda",
        "train",
        *test_donors,
        "feature sp.",
        "weight sp.",
        "spurious sp.",
        "TF AUPRC ratio",
        "targets without regulator",
        "median regulators",
        "s",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["method"], f"{r['lam']:g}", f"{r['train']:.4f}", *(f"{r[d]:.4f}" for d in test_donors)]
        cells += [f"{100 * r['feature']:.1f}%", f"{100 * r['weight']:.1f}%", f"{100 * r['spurious']:.1f}%"]
        cells += [f"{r['auprc_ratio']:.2f}", str(r["no_regulator"]), f"{r['median']:g}", f"{r['seconds']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    blank = [""] * (len(head) - 3 - len(test_donors))
    for name, values in base.iterrows():
        cells = [f"*{name}*", "", "", *(f"{values[d]:.4f}" for d in test_donors), *blank]
        lines.append("| " + " | ".join(cells) + " |")
    if protocol == "a":
        cells = ["*authors' PathReg*", "0.01", f"{AUTHORS['train']:.4f}", *(f"{AUTHORS[d]:.4f}" for d in test_donors)]
        lines.append("| " + " | ".join([*cells, *blank]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    """Run the benchmark and print markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few iterations (smoke run)")
    parser.add_argument(
        "--methods", nargs="*", default=[*DEFAULT_ROWS, *METHODS], help="rows: DEFAULT_ROWS and METHODS"
    )
    parser.add_argument("--protocols", nargs="*", default=list(PROTOCOLS), choices=list(PROTOCOLS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--gates", choices=["inputs", "pairs"], help="the default call's gates (default: its own)")
    parser.add_argument("--binning", choices=["time", "states"], default="time", help="the default call's binning")
    parser.add_argument("--gradient-precision", default=None, help="the default call's (default: its own)")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    schedule = QUICK_SCHEDULE if args.quick else SCHEDULE
    adata, grn = load(args.data_dir)
    start = time.perf_counter()
    out = [
        f"# Hematopoiesis benchmark ({date.today()})",
        "",
        command("hematopoiesis.py", argv),
        machine() + f"; schedule {schedule}, {N_BINS} bins, seed {args.seed}.",
    ]
    for protocol in args.protocols:
        train_donors, test_donors = PROTOCOLS[protocol]
        tests = {d: adata[adata.obs["donor"] == d] for d in test_donors}
        base = baselines(adata[adata.obs["donor"].isin(train_donors)], tests)
        rows = []
        for method in args.methods:
            options = (args.gates, args.binning, args.gradient_precision)
            rows.append(run(method, protocol, adata, grn, schedule, args.seed, *options))
            print(f"  [{protocol}] {method}: {rows[-1]['seconds']:.0f} s", file=sys.stderr, flush=True)
        out += [
            "",
            f"## Protocol ({protocol}): train {', '.join(train_donors)}; test {', '.join(test_donors)}",
            "",
            "Summed test MSE per donor over its lineages (min-max units; train: per training donor).",
            "",
            _table(rows, base, protocol),
        ]
        if "s2d4" in test_donors:
            out += ["", "s2d4 per lineage (its erythroid trajectory is missing):", ""]
            out += [
                f"- {r['method']}: "
                + ", ".join(f"{k.split('/')[1]} {v:.4f}" for k, v in r.items() if k.startswith("s2d4/"))
                for r in rows
            ]
    out += ["", total(start)]
    text = "\n".join(out)
    print(text)
    return text


if __name__ == "__main__":
    main()
