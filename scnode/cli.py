"""The ``scnode`` command."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def demo(out: Path, *, n_iter: int = 800, seed: int = 0) -> dict:
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

    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    labels = {"row_names": [f"{n}''" for n in names], "col_names": inputs}
    scn.pl.adjacency(truth.astype(float), title="true graph", ax=axes[0], show=False, **labels)
    scn.pl.adjacency(scores, title="PathReg scores (blank = exact zero)", ax=axes[1], show=False, **labels)
    fig.tight_layout()
    figure = out / "adjacency.png"
    fig.savefig(figure, dpi=120)
    plt.close(fig)
    print(f"  figure: {figure}   ({summary['seconds']:.0f} s)")
    summary.update(found=found, scores=scores, figure=figure)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``scnode`` command."""
    parser = argparse.ArgumentParser(prog="scnode", description="Sparse neural ODEs (scnode).")
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="fit PathReg on the synthetic system (no download)")
    p_demo.add_argument("--out", type=Path, default=Path("scnode_demo"), help="folder for the figure")
    p_demo.add_argument("--n-iter", type=int, default=800, help="iterations of the penalised phase")
    p_demo.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo(args.out, n_iter=args.n_iter, seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
