"""The ``scnode`` command."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np


def demo(out: Path, *, n_iter: int = 800, seed: int = 0) -> dict:
    """Run both demos: system identification (synthetic) and GRN recovery (krumsiek11).

    Returns ``{"synthetic": ..., "grn": ...}``, the summaries of :func:`demo_synthetic` and
    :func:`demo_grn`.
    """
    synthetic = demo_synthetic(out, n_iter=n_iter, seed=seed)
    return {"synthetic": synthetic, "grn": demo_grn(out, n_iter=n_iter // 2, seed=seed)}


def demo_synthetic(out: Path, *, n_iter: int = 800, seed: int = 0) -> dict:
    """Fit PathReg on the synthetic second-order system and compare its graph with the true one.

    Returns the recovered support, the scores and the summary numbers (also printed).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import scnode as scn
    from scnode.core import metrics

    start = time.perf_counter()
    train = scn.datasets.second_order_system(n_trajectories=20, random_state=1000 + seed)
    test = scn.datasets.second_order_system(n_trajectories=20, random_state=3000 + seed)
    print("scnode demo: PathReg on the paper's synthetic second-order system")
    print("  x0'' = -1.5 x0 - 0.5 v0;  x1'' = -2.7 x1 - v1;  x2'' = -2 x2 - v0 - v1 - 0.1 v2")
    print(f"  20 training trajectories from random initial states, {n_iter} + {n_iter // 2} (refit) iterations")

    def arrays(adata):
        times, values, _ = scn.pp.trajectories(adata, time_key="time", trajectory_key="trajectory")
        init = adata.uns["initial_state"]
        return times, values, init[:, :3], init[:, 3:]

    times, values, x0, v0 = arrays(train)
    model = scn.SparseODE(3, method="pathreg", order=2, random_state=seed, var_names=list(train.var_names))
    model.fit(times, values, x0=x0, v0=v0, n_iter=n_iter, horizon_warmup=n_iter * 5 // 16, refit_iter=n_iter // 2)
    scores = model.adjacency()
    truth = train.uns["true_adjacency"] != 0
    found = np.abs(scores) >= scn.core.ZERO_TOL
    t_times, t_values, t_x0, t_v0 = arrays(test)
    pred = model.predict(t_times, t_x0, v0=t_v0)
    test_mse = float(np.mean(np.concatenate([(p - y) ** 2 for p, y in zip(pred, t_values, strict=True)])))

    names = list(train.var_names)
    inputs = [*names, *(f"v{n[1:]}" for n in names)]
    print(f"\n  {'edge':<16}{'true':>6}{'found':>7}{'score':>10}")
    for i, target in enumerate(names):
        for j, source in enumerate(inputs):
            if truth[i, j] or found[i, j]:
                label = f"{source} -> {target}''"
                yes_no = ["yes" if truth[i, j] else "no", "yes" if found[i, j] else "no"]
                print(f"  {label:<16}{yes_no[0]:>6}{yes_no[1]:>7}{scores[i, j]:>10.3g}")
    summary = {
        "shd": metrics.shd(found, truth),
        "auprc": metrics.auprc(scores, truth),
        "true_edges": int(truth.sum()),
        "found_edges": int(found.sum()),
        "test_mse": test_mse,
        "seconds": time.perf_counter() - start,
    }
    print(
        f"\n  true edges {summary['true_edges']}, found {summary['found_edges']}, "
        f"structural Hamming distance {summary['shd']}, AUPRC {summary['auprc']:.3f}"
    )
    print(f"  MSE on 20 unseen initial states: {test_mse:.2e}")
    summary["positions_only"] = positions_only = _positions_only(train, test, truth, n_iter=n_iter // 2, seed=seed)

    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.2))
    labels = {"row_names": [f"{n}''" for n in names], "col_names": inputs}
    scn.pl.adjacency(truth.astype(float), title="true graph", ax=axes[0], show=False, **labels)
    scn.pl.adjacency(scores, title="known velocities (blank = exact zero)", ax=axes[1], show=False, **labels)
    title = "positions only, tl.fit_sparse_ode (scaled units)"
    scn.pl.adjacency(positions_only["scores"], title=title, ax=axes[2], show=False, **labels)
    fig.tight_layout()
    figure = out / "adjacency.png"
    fig.savefig(figure, dpi=120)
    plt.close(fig)
    print(f"  figure: {figure}   ({time.perf_counter() - start:.0f} s in all)")
    summary.update(found=found, scores=scores, figure=figure)
    return summary


def _positions_only(train, test, truth: np.ndarray, *, n_iter: int, seed: int) -> dict:
    """Fit the AnnData call on positions alone (its defaults, lam chosen automatically) and Base beside it."""
    import warnings

    import scnode as scn
    from scnode.core import metrics

    start = time.perf_counter()
    print("\n  Positions only: scn.tl.fit_sparse_ode(adata, method=..., order=2, time_key='time',")
    print("  lineage_key='trajectory'): velocities estimated, penalty chosen on held-out time points")
    call = {"order": 2, "time_key": "time", "lineage_key": "trajectory", "n_iter": n_iter, "random_state": seed}
    call.update(progress_bar=False, return_model=True)
    n = test.obs["trajectory"].nunique()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the demo prints what a warning would say
        model = scn.tl.fit_sparse_ode(train.copy(), method="pathreg", **call)
        base = scn.tl.fit_sparse_ode(train.copy(), method="base", **call)
    scores = model.adjacency()
    found = np.abs(scores) >= scn.core.ZERO_TOL
    result = {
        "lam": model.config.lam,
        "shd": metrics.shd(found, truth),
        "auprc": metrics.auprc(scores, truth),
        "found_edges": int(found.sum()),
        "test_mse": float(scn.tl.score(test, model).loc["sum", "mse"]) / n,
        "base_test_mse": float(scn.tl.score(test, base).loc["sum", "mse"]) / n,
        "scores": scores,
        "seconds": time.perf_counter() - start,
    }
    print(
        f"  PathReg (lam {result['lam']:.3g}): found {result['found_edges']} for {int(truth.sum())} true, "
        f"structural Hamming distance {result['shd']}, AUPRC {result['auprc']:.3f}"
    )
    print(
        f"  MSE on 20 unseen initial states (scaled units): {result['test_mse']:.2e}; "
        f"Base, same call: {result['base_test_mse']:.2e}   ({result['seconds']:.0f} s)"
    )
    return result


def network_figure(adata, truth: np.ndarray, scores, path: Path, *, top_k: int = 15) -> Path:
    """Draw the ``top_k`` strongest learned edges, the true ones solid, the scores against the truth in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import scnode as scn

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.5, 6.5), layout="constrained")
    title = (
        f"krumsiek11: the {top_k} strongest learned edges\n"
        f"AUPRC ratio {scores['auprc_ratio']:.2f}, AUROC {scores['auroc']:.2f}, EPR {scores['epr']:.2f}"
    )
    scn.pl.network(adata, top_k=top_k, truth=truth, title=title, ax=ax, show=False)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def demo_grn(out: Path, *, n_iter: int = 400, seed: int = 0) -> dict:
    """Recover scanpy's krumsiek11 network with the default call and score it against the true couplings.

    ``scn.tl.fit_sparse_ode(adata, time_key="time", lineage_key="realization")``: the single-cell
    defaults, the penalty chosen on held-out time points. Returns the scores (also printed), the
    correlation baseline's and the figure's path.
    """
    import scnode as scn

    start = time.perf_counter()
    print("\nscnode demo: gene-regulatory network of scanpy's krumsiek11 (11 genes, 4 branching realizations)")
    print('  scn.tl.fit_sparse_ode(adata, time_key="time", lineage_key="realization")  # the defaults, lam="auto"')
    adata = scn.datasets.krumsiek11()
    truth = adata.varp["true_network"]
    scn.tl.fit_sparse_ode(adata, time_key="time", lineage_key="realization", n_iter=n_iter, random_state=seed)
    record = adata.uns["scnode"]
    scores = scn.tl.evaluate_grn(adata, truth)
    x = np.asarray(adata.X)
    dx = np.concatenate(
        [np.gradient(x[idx], axis=0) for idx in adata.obs.groupby("realization", observed=True).indices.values()]
    )
    probe = adata.copy()
    probe.varp["corr"] = np.nan_to_num(np.abs(np.corrcoef(np.c_[x, dx].T)[:11, 11:]))
    baseline = scn.tl.evaluate_grn(probe, truth, key="corr")
    edges = scn.tl.edge_list(adata, top_k=10)
    names = list(adata.var_names)
    true_sign = [
        np.sign(truth[names.index(a), names.index(b)]) for a, b in zip(edges.source, edges.target, strict=True)
    ]
    edges["true"] = [t != 0 for t in true_sign]
    print(f"  lambda {record['params']['lam']:g}: {record['path']['rule']}")
    print(f"\n  {'top edges':<20}{'true':>6}{'sign':>6}{'score':>10}")
    for row, t in zip(edges.itertuples(), true_sign, strict=True):
        mark = {1: "+", -1: "-"}.get(int(row.sign), "0")
        verdict = ("yes" if row.true else "no") + ("" if not row.true else ("" if t == row.sign else "*"))
        print(f"  {row.source + ' -> ' + row.target:<20}{verdict:>6}{mark:>6}{row.weight:>10.3g}")
    signed = scn.tl.evaluate_grn(adata, truth)
    summary = {
        "lam": float(record["params"]["lam"]),
        "edges": int(scores["n_predicted"]),
        "auprc_ratio": float(scores["auprc_ratio"]),
        "auroc": float(scores["auroc"]),
        "epr": float(scores["epr"]),
        "sign_accuracy": float(signed.get("sign_accuracy", np.nan)),
        "baseline_auprc_ratio": float(baseline["auprc_ratio"]),
        "top10_true": int(edges["true"].sum()),
    }
    print(
        f"\n  {summary['edges']} edges; {int(scores['n_true_edges'])} true edges among {int(scores['n_candidates'])}"
        f" candidates (self-loops excluded): AUPRC ratio {summary['auprc_ratio']:.2f}, AUROC {summary['auroc']:.2f},"
        f" EPR {summary['epr']:.2f}; signs right on {summary['sign_accuracy']:.0%} of the true edges found"
        " (* marks a wrong sign)"
    )
    path = scn.tl.evaluate_grn(adata, truth, key="scnode_path")
    summary.update(path_auprc_ratio=float(path["auprc_ratio"]), path_sign_accuracy=float(path["sign_accuracy"]))
    print(
        f"  every pair ranked by the search's fits together (varp['scnode_path']): AUPRC ratio"
        f" {summary['path_auprc_ratio']:.2f}, AUROC {path['auroc']:.2f}, EPR {path['epr']:.2f};"
        f" signs right on {summary['path_sign_accuracy']:.0%} of the true edges in its top {int(path['n_true_edges'])}"
    )
    print(f"  baseline |corr(x_j, dx_i/dt)|: AUPRC ratio {summary['baseline_auprc_ratio']:.2f}")
    figure = network_figure(adata, truth, scores, out / "krumsiek11_network.png")
    summary.update(seconds=time.perf_counter() - start, figure=figure)
    print(f"  figure: {figure}   ({summary['seconds']:.0f} s)")
    return summary


class _InputError(Exception):
    """Bad input to ``scnode fit``: reported as ``scnode fit: error: ...`` with exit code 2."""


def _message(err: BaseException) -> str:
    """Return the text of an exception (``str(KeyError)`` would add quotes)."""
    return str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)


def _hidden(value: str) -> tuple[int, ...]:
    """Parse ``--hidden 32,32`` into ``(32, 32)``."""
    try:
        widths = tuple(int(v) for v in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 32,32, got {value!r}") from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"hidden widths must be positive integers, got {value!r}")
    return widths


def _auto_or(cast: type, what: str) -> Callable[[str], int | float | str]:
    """Return an argparse type that reads ``auto`` or a value of ``cast`` (``what`` names it in errors)."""

    def parse(value: str) -> int | float | str:
        if value == "auto":
            return value
        try:
            return cast(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what} or auto, got {value!r}") from None

    return parse


_lam = _auto_or(float, "a number")
"""Parse ``--lam auto`` or a number."""
_refine_time = _auto_or(int, "an integer")
"""Parse ``--refine-time auto`` or a number of re-timings."""


def _count_auto_or_none(value: str) -> int | str | None:
    """Parse ``auto``, ``none`` or an integer: ``--window`` (time points) and ``--n-bins`` (bins)."""
    if value in ("auto", "none"):
        return None if value == "none" else value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, auto or none, got {value!r}") from None


def _read_genes(path: Path) -> list[str]:
    """Gene names from a file with one gene per line (blank lines and ``#`` comments skipped)."""
    if not path.is_file():
        raise _InputError(f"genes file {path} does not exist.")
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    genes = [g for g in lines if g]
    if not genes:
        raise _InputError(f"genes file {path} lists no genes.")
    return genes


def fit(args: argparse.Namespace) -> dict:
    """Run ``scnode fit``: read the h5ad, fit :func:`scnode.tl.fit_sparse_ode`, write the results.

    Raises :class:`_InputError` for bad input (missing files, unknown keys or genes, bad settings).
    Returns the summary numbers (also printed).
    """
    import anndata as ad
    from scipy import sparse

    import scnode as scn

    if not args.input.is_file():
        raise _InputError(f"input file {args.input} does not exist.")
    genes = _read_genes(args.genes_file) if args.genes_file is not None else args.genes
    try:
        adata = ad.read_h5ad(args.input)
    except OSError as err:
        raise _InputError(f"cannot read {args.input} as h5ad: {err}") from err
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _InputError(f"cannot create the folder of --out {args.out}: {err}") from err
    regulators = None
    if args.regulators_file is not None:
        regulators = _read_genes(args.regulators_file)
    elif args.tf_list is not None:
        regulators = scn.datasets.tf_list(args.tf_list)
    prior = None
    if args.prior is not None:
        if not args.prior.is_file():
            raise _InputError(f"prior file {args.prior} does not exist.")
        import pandas as pd

        prior = pd.read_csv(args.prior, sep=None, engine="python")
    try:
        model = scn.tl.fit_sparse_ode(
            adata,
            method=args.method,
            time_key=args.time_key,
            lineage_key=args.lineage_key,
            perturbation_key=args.perturbation_key,
            layer=args.layer,
            genes=genes,
            regulators=regulators,
            prior=prior,
            prior_strength=args.prior_strength,
            order=args.order,
            lam=args.lam,
            lam1=args.lam1,
            field=args.field,
            hidden=args.hidden,
            n_iter=args.n_iter,
            lr=args.lr,
            window=args.window,
            scaling=args.scaling,
            trim_start=args.trim_start,
            trim_end=args.trim_end,
            n_bins=args.n_bins,
            x0_cells=args.x0_cells,
            binning=args.binning,
            min_cells=args.min_cells,
            edge_score=args.edge_score,
            refine_time=args.refine_time,
            device=args.device,
            random_state=args.seed,
            progress_bar=not args.no_progress,
            key_added=args.key_added,
            return_model=True,
            return_models=args.save_models is not None,
            search_dir=args.search_dir,
        )
    except (KeyError, ValueError) as err:
        raise _InputError(_message(err)) from err
    model, fits = model if args.save_models is not None else (model, [])
    folders = [args.save_models / f"lam_{fit.config.lam:g}" for fit in fits]  # one per penalty weight
    try:
        adata.write_h5ad(args.out)
        if args.save_model is not None:
            model.save(args.save_model)
        for fit, folder in zip(fits, folders, strict=True):
            fit.save(folder)
    except OSError as err:
        raise _InputError(f"cannot write the results: {err}") from err

    record = adata.uns[args.key_added]
    metrics = record["metrics"]
    graph = adata.varp[args.key_added]
    summary = {
        "genes": len(record["genes"]),
        "lineages": [str(x) for x in record["lineages"]],
        "train_mse": float(metrics["train_mse"]),
        "feature_sparsity": float(metrics["feature_sparsity"]),
        "edges": int(graph.count_nonzero() if sparse.issparse(graph) else np.count_nonzero(graph)),
        "targets_without_regulators": int(metrics["targets_without_regulators"]),
        "out": args.out,
        "model": args.save_model,
        "models": [str(folder) for folder in folders],
    }
    summary["lam"] = float(record["params"]["lam"])
    print(
        f"scnode fit: {args.method} (order {args.order}, lam {summary['lam']:g}) on {summary['genes']} genes, "
        f"{len(summary['lineages'])} lineage(s): {', '.join(summary['lineages'])}"
    )
    print(
        f"  train MSE (scaled units) {summary['train_mse']:.3g}, feature sparsity {summary['feature_sparsity']:.3f}, "
        f"{summary['edges']} nonzero edges in varp[{args.key_added!r}] (rows = regulators, columns = targets), "
        f"{summary['targets_without_regulators']} target(s) without any regulator, "
        f"{int(metrics['targets_with_all_regulators'])} with every allowed one"
    )
    saved = f"; model saved in {args.save_model}" if args.save_model is not None else ""
    if fits:
        saved += f"; the search's {len(fits)} fits saved in {args.save_models}"
    print(f"  wrote {args.out}{saved}")
    return summary


def _add_fit_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fit",
        help="fit a sparse neural ODE to an h5ad file (scnode.tl.fit_sparse_ode)",
        description="Fit a sparse neural ODE to cells ordered by (pseudo)time and write the graph to varp[KEY].",
    )
    p.add_argument("input", type=Path, help="input .h5ad file")
    p.add_argument("--out", type=Path, required=True, help="output .h5ad file (input plus the results)")
    methods = "base, l0, cnode, pathreg, lassonet_inner, lassonet_outer or grouplasso"
    p.add_argument("--method", default="pathreg", help=f"{methods} (default %(default)s)")
    p.add_argument(
        "--time-key", default="dpt_pseudotime", help="obs column with the (pseudo)time (default %(default)s)"
    )
    p.add_argument(
        "--lineage-key", default=None, help="obs column naming each cell's lineage (default: one trajectory)"
    )
    p.add_argument(
        "--perturbation-key",
        default=None,
        help="obs column naming each cell's perturbed gene(s), '+'-joined; missing or 'control' if none",
    )
    p.add_argument("--layer", default=None, help="layer to fit instead of X")
    genes = p.add_mutually_exclusive_group()
    genes.add_argument("--genes", default=None, metavar="COLUMN", help="boolean var column, e.g. highly_variable")
    genes.add_argument("--genes-file", type=Path, default=None, metavar="FILE", help="file with one gene per line")
    regs = p.add_mutually_exclusive_group()
    regs.add_argument(
        "--regulators-file", type=Path, default=None, metavar="FILE", help="genes that may regulate, one per line"
    )
    regs.add_argument(
        "--tf-list", default=None, metavar="ORGANISM", help="regulators: the TF list of human or mouse (tf_list)"
    )
    p.add_argument(
        "--prior", type=Path, default=None, metavar="FILE", help="prior network: table with source, target[, weight]"
    )
    p.add_argument("--prior-strength", type=float, default=0.9, help="how much cheaper prior edges are (0-1)")
    p.add_argument("--order", type=int, choices=(1, 2), default=1)
    p.add_argument(
        "--lam", type=_lam, default="auto", help="penalty weight, or auto (default: chosen on held-out data)"
    )
    p.add_argument("--lam1", type=float, default=0.0, help="PathReg's weight-path term (default %(default)s)")
    p.add_argument(
        "--field", choices=("auto", "per_gene", "shared"), default="auto", help="vector field (default %(default)s)"
    )
    p.add_argument("--hidden", type=_hidden, default=None, metavar="W,W", help="hidden widths (default: the field's)")
    p.add_argument("--n-iter", type=int, default=400, help="iterations of the penalised phase (default %(default)s)")
    p.add_argument("--lr", type=float, default=1e-2, help="learning rate (default %(default)s)")
    p.add_argument(
        "--window",
        type=_count_auto_or_none,
        default="auto",
        help="window length in time points, auto, or none (whole trajectories)",
    )
    p.add_argument("--scaling", choices=("minmax", "zscore", "none"), default="minmax")
    p.add_argument("--trim-start", type=int, default=0, help="cells dropped at the start of each lineage")
    p.add_argument("--trim-end", type=int, default=0, help="cells dropped at the end of each lineage")
    p.add_argument(
        "--n-bins",
        type=_count_auto_or_none,
        default="auto",
        help="average cells in this many time bins per lineage, none, or auto (100 for order 1, none for order 2)",
    )
    p.add_argument(
        "--x0-cells",
        type=_auto_or(int, "an integer"),
        default="auto",
        help="first cells averaged into the initial state, or auto (5 for order 1, 1 for order 2)",
    )
    p.add_argument(
        "--binning",
        choices=("time", "states"),
        default="time",
        help="time: equal-width pseudotime bins; states: cells clustered by expression (default %(default)s)",
    )
    p.add_argument(
        "--min-cells",
        type=_auto_or(int, "an integer"),
        default="auto",
        help="leave out lineages with fewer cells, or auto (fewer than the bins and than 5 %% of the largest's)",
    )
    p.add_argument(
        "--edge-score",
        choices=("weights", "effects"),
        default="weights",
        help="score edges by the field's weights, or by effects: times the regulator's spread (default %(default)s)",
    )
    p.add_argument(
        "--refine-time",
        type=_refine_time,
        default=0,
        help="re-time the cells by the fitted paths and refit, this many times, or auto (while the order changes)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--key-added", default="scnode", help="key in varp, layers and uns (default %(default)s)")
    p.add_argument("--save-model", type=Path, default=None, metavar="DIR", help="also save the model (SparseODE.save)")
    p.add_argument(
        "--save-models",
        type=Path,
        default=None,
        metavar="DIR",
        help="also save every fit of the penalty search, one folder per lam (DIR/lam_<lam>): pass them, loaded, "
        "to scn.tl.simulate_intervention for the median of their effects",
    )
    p.add_argument(
        "--search-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep each fit of the penalty search in DIR as it ends: the same command run again after an "
        "interrupt (Ctrl-C, a job's time limit) reads them back and fits only the others",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``scnode`` command."""
    parser = argparse.ArgumentParser(prog="scnode", description="Sparse neural ODEs (scnode).")
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="PathReg on the synthetic system and on krumsiek11 (no download)")
    p_demo.add_argument("--out", type=Path, default=Path("scnode_demo"), help="folder for the figures")
    p_demo.add_argument("--n-iter", type=int, default=800, help="iterations of the penalised phase")
    p_demo.add_argument("--seed", type=int, default=0)
    _add_fit_parser(sub)
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            demo(args.out, n_iter=args.n_iter, seed=args.seed)
        elif args.command == "fit":
            fit(args)
    except _InputError as err:
        print(f"scnode {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # a FitInterrupted says what was kept; nothing was written
        print(f"scnode {args.command}: interrupted. {err}".rstrip(), file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
