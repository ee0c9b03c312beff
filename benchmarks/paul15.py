"""paul15 through a plain scanpy workflow and the default call: the time it takes and the graph it gives.

Usage::

    python benchmarks/paul15.py            # 1000 highly variable genes, the mouse TF list
    python benchmarks/paul15.py --quick    # 100 genes, short fits (a smoke run of the same code path)
    python benchmarks/paul15.py --pseudotime geodesic   # each branch timed by scn.tl.geodesic_pseudotime
    python benchmarks/paul15.py --lineages dpt --n-genes 2000   # DPT's own branching, all cells

Workflow (``--lineages branches``, the default; what a scanpy user has already done; nothing here is
tuned for scnode): raw counts of Paul
et al. 2015 (``scn.datasets.paul15``), ``normalize_total``, ``log1p``, ``highly_variable_genes``
(``--n-genes``), PCA, neighbours; two branches from the clusters (erythroid: 7MEP -> 6Ery ... 1Ery;
monocyte: 9GMP, 10GMP -> 14Mo, 15Mo), each with its own diffusion pseudotime rooted at its most
immature progenitor (the paul15 tutorial's recipe). Then the call::

    scn.tl.fit_sparse_ode(cells, time_key="branch_dpt", lineage_key="branch", genes="highly_variable",
                          regulators=scn.datasets.tf_list("mouse"))

``--lineages dpt`` follows the docs' advice for a user without curated branches instead: the same
normalisation and HVGs, then PCA, neighbours, diffmap and ``sc.tl.dpt(adata, n_branchings=1)`` on
all cells, rooted at the dataset's ``uns["iroot"]``, and the call with ``time_key="dpt_pseudotime",
lineage_key="dpt_groups"``. DPT's groups need not be branches; the report names those the call
left out (``min_cells="auto"``).

Reported: wall time of the scanpy steps and of the fit, the selected lambda and the searched range,
the graph's summary (edges, targets without regulators and with every allowed one, median regulators,
activating / repressing edges), the strongest edges, and as a sanity check the AUPRC ratio of the
edges among the krumsiek11 literature network's genes that are fitted regulators (a curated model,
not ground truth).
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from datetime import date

import numpy as np
import pandas as pd
import scanpy as sc
import torch
from _report import command, machine, total

import scnode as scn

BRANCHES = {
    "erythroid": (["7MEP"], ["6Ery", "5Ery", "4Ery", "3Ery", "2Ery", "1Ery"]),
    "monocyte": (["9GMP", "10GMP"], ["14Mo", "15Mo"]),
}
RENAME = {"Fog1": "Zfpm1", "EKLF": "Klf1", "SCL": "Tal1", "Pu.1": "Sfpi1", "EgrNab": "Egr1"}
"""krumsiek11's gene names as mouse symbols (Spi1 / PU.1 is ``Sfpi1`` in paul15)."""


def branch_pseudotime(adata: sc.AnnData, start: list[str], rest: list[str], method: str = "dpt") -> pd.Series:
    """Diffusion pseudotime on one branch's cells, rooted at its most immature progenitor.

    ``method="geodesic"``: ``scn.tl.geodesic_pseudotime`` on the cells' principal components, from the same root.
    """
    sub = adata[adata.obs["paul15_clusters"].isin(start + rest)].copy()
    sc.pp.neighbors(sub, n_neighbors=15, random_state=0)
    sc.tl.diffmap(sub, random_state=0)
    dc1 = sub.obsm["X_diffmap"][:, 1]
    mature = sub.obs["paul15_clusters"].isin(rest[-1:]).to_numpy()
    if dc1[mature].mean() < dc1.mean():  # orient the first component from progenitors to mature cells
        dc1 = -dc1
    progenitors = np.flatnonzero(sub.obs["paul15_clusters"].isin(start).to_numpy())
    sub.uns["iroot"] = progenitors[np.argmin(dc1[progenitors])]
    if method == "geodesic":
        scn.tl.geodesic_pseudotime(sub, use_rep="X_pca")
        return sub.obs["geodesic_pseudotime"]
    sc.tl.dpt(sub)
    return sub.obs["dpt_pseudotime"]


def dpt_groups(adata: sc.AnnData) -> sc.AnnData:
    """All cells, DPT with one branching from the root cell: ``obs["dpt_pseudotime"]`` and ``obs["dpt_groups"]``."""
    sc.pp.pca(adata, mask_var="highly_variable", random_state=0)
    sc.pp.neighbors(adata, random_state=0)
    sc.tl.diffmap(adata, random_state=0)
    sc.tl.dpt(adata, n_branchings=1)
    return adata


def prepare(n_genes: int, pseudotime: str = "dpt", lineages: str = "branches") -> sc.AnnData:
    """The scanpy workflow: normalised, log, HVGs, the two branches with their pseudotime (or DPT's groups)."""
    adata = scn.datasets.paul15()
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    sc.pp.highly_variable_genes(adata, n_top_genes=n_genes)
    if lineages == "dpt":
        return dpt_groups(adata)
    sc.pp.pca(adata, n_comps=30, mask_var="highly_variable", random_state=0)
    sc.pp.neighbors(adata, n_neighbors=15, random_state=0)
    parts = []
    for name, (start, rest) in BRANCHES.items():
        parts.append(pd.DataFrame({"branch": name, "branch_dpt": branch_pseudotime(adata, start, rest, pseudotime)}))
    info = pd.concat(parts)
    cells = adata[info.index].copy()
    cells.obs["branch"] = pd.Categorical(info["branch"])
    cells.obs["branch_dpt"] = info["branch_dpt"].to_numpy()
    return cells


TOP_EDGES = 50
"""The strongest edges whose sources the report describes."""


def detection(adata: sc.AnnData, genes: list[str]) -> pd.Series:
    """The share of cells in which each gene is detected (a count above zero)."""
    x = adata[:, genes].X
    return pd.Series(np.asarray((x > 0).mean(axis=0)).ravel(), index=genes)


def _markdown(frame: pd.DataFrame) -> str:
    """A DataFrame as a markdown table (numbers to 4 significant digits)."""

    def cell(v: object) -> str:
        return f"{v:.4g}" if isinstance(v, float | np.floating) else str(v)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * frame.shape[1]]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    """Run the workflow and the default call; print a markdown report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 genes, 10-iteration fits")
    parser.add_argument("--n-genes", type=int, default=1000)
    parser.add_argument("--refine-time", type=int, default=0, help="fit_sparse_ode's refine_time (default: off)")
    parser.add_argument("--binning", choices=["time", "states"], default="time", help="fit_sparse_ode's binning")
    parser.add_argument(
        "--pseudotime", choices=["dpt", "geodesic"], default="dpt", help="each branch's pseudotime (default: DPT)"
    )
    parser.add_argument(
        "--lineages",
        choices=["branches", "dpt"],
        default="branches",
        help="the two curated branches (default), or sc.tl.dpt(n_branchings=1)'s groups on all cells",
    )
    parser.add_argument(
        "--edge-score", choices=["weights", "effects"], default="weights", help="fit_sparse_ode's edge_score"
    )
    parser.add_argument(
        "--gradient-precision", default=None, help="fit_kwargs' gradient_precision (default: the call's own)"
    )
    args = parser.parse_args(argv)
    if args.lineages == "dpt" and args.pseudotime != "dpt":
        parser.error("--lineages dpt uses DPT's own pseudotime; --pseudotime applies to the curated branches")
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    sc.settings.verbosity = 0
    n_genes = 100 if args.quick else args.n_genes
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        cells = prepare(n_genes, args.pseudotime, args.lineages)
    prep_seconds = time.perf_counter() - start
    kwargs = {"n_iter": 10} if args.quick else {}
    if args.gradient_precision:
        kwargs["fit_kwargs"] = {"gradient_precision": args.gradient_precision}
    tfs = scn.datasets.tf_list("mouse")
    time_key, lineage_key = ("dpt_pseudotime", "dpt_groups") if args.lineages == "dpt" else ("branch_dpt", "branch")
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        scn.tl.fit_sparse_ode(
            cells,
            time_key=time_key,
            lineage_key=lineage_key,
            genes="highly_variable",
            regulators=tfs,
            progress_bar=False,
            refine_time=args.refine_time,
            binning=args.binning,
            edge_score=args.edge_score,
            **kwargs,
        )
    fit_seconds = time.perf_counter() - t0
    messages = [str(w.message).removeprefix("scnode: ") for w in caught]
    left_out = [m.split(". Bins")[0] for m in messages if "are left out" in m]
    sizes = ", ".join(f"{k}: {v}" for k, v in cells.obs[lineage_key].value_counts().items())
    record = cells.uns["scnode"]
    metrics, params = record["metrics"], record["params"]
    path = pd.DataFrame(record["path"]["table"])
    edges = scn.tl.edge_list(cells, top_k=15)
    literature = scn.datasets.krumsiek11_network().rename(index=RENAME, columns=RENAME)
    fitted_regs = [g for g in literature.index if g in set(record["genes"]) and g in set(tfs)]
    sanity = "fewer than two of its genes are fitted regulators"
    if len(fitted_regs) >= 2:
        probe = cells.copy()
        try:
            res = scn.tl.evaluate_grn(probe, literature.loc[fitted_regs, fitted_regs], regulators=fitted_regs)
            sanity = f"{res['auprc_ratio']:.2f} over {int(res['n_candidates'])} pairs of {fitted_regs}"
        except ValueError as err:
            sanity = str(err)
    regs = params["regulators"]
    detected = detection(cells, [g for g in record["genes"] if g in set(tfs)])
    hubs = {}
    for key in ("scnode", "scnode_path"):
        top = scn.tl.edge_list(cells, key=key, top_k=TOP_EDGES)  # self-loops left out
        hubs[key] = (float(detected[top["source"]].median()), top["source"].value_counts().head(3))
    if args.lineages == "dpt":
        lineages, timing = "DPT's groups", "pseudotime: sc.tl.dpt(n_branchings=1) on all cells"
    else:
        lineages = "two branches"
        timing = "pseudotime per branch: " + (
            "diffusion (sc.tl.dpt)" if args.pseudotime == "dpt" else "geodesic (scn.tl.geodesic_pseudotime)"
        )
    cols = ["lam", "val_mse", "n_edges", "edge_share", "graph", "gain_kept", "stage", "selected", "seconds"]
    lines = [
        f"# paul15: the default call on a plain scanpy workflow ({date.today()})",
        "",
        command("paul15.py", argv),
        machine(),
        "",
        f"- cells: {cells.n_obs} in {lineages} ({sizes}); "
        f"genes fitted: {len(record['genes'])} highly variable; {timing}",
        *([f"- left out by the call: {'; '.join(left_out)}"] if left_out else []),
        f"- regulators: {regs['n_found']} of the {regs['n_given']} mouse TFs are among the fitted genes",
        f"- time: scanpy workflow {prep_seconds:.0f} s, fit_sparse_ode {fit_seconds:.0f} s "
        f"({len(path)} fits of the penalty search)",
        f"- selected lam {params['lam']:g} in the searched range {record['path']['searched']}: "
        f"{record['path']['rule']}",
        f"- graph: {metrics['n_edges']} edges (self-loops included), {metrics['targets_without_regulators']} of "
        f"{len(record['genes'])} targets without a regulator, {metrics['targets_with_all_regulators']} with every "
        f"allowed one, median {metrics['median_regulators']:g} regulators per target; "
        f"{metrics['activating_edges']} activating and {metrics['repressing_edges']} repressing edges",
        f"- krumsiek11 literature network among the fitted regulators (sanity check): AUPRC ratio {sanity}",
        f"- edges scored by {args.edge_score}; the sources of the {TOP_EDGES} strongest edges between two genes "
        "(the share of cells that detect a source; the fitted TFs' median "
        f"{detected.median():.3f}): "
        + "; ".join(
            f"{what} median {med:.3f}, most often "
            + ", ".join(f"{g} ({n}, {detected[g]:.3f})" for g, n in counts.items())
            for what, (med, counts) in zip(("graph", "search's ranking"), hubs.values(), strict=True)
        ),
        *(
            [
                f"- re-timed {args.refine_time}x: rank correlation of each round's new times with its old "
                f"{np.round(record['refine_time']['spearman'], 3).tolist()}, the cells' mean distance to their "
                f"path {np.round(record['refine_time']['distance'], 3).tolist()}"
            ]
            if args.refine_time
            else []
        ),
        "",
        "The penalty search:",
        "",
        _markdown(path[cols]),
        "",
        "The 15 strongest edges:",
        "",
        _markdown(edges),
        "",
        total(start),
    ]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
