"""CMU motion capture: second-order forecasting with all seven methods (walk, wave, golf).

Usage::

    python benchmarks/mocap.py            # all methods, three motions (SCNODE_DATA_DIR or download)
    python benchmarks/mocap.py --quick    # a fast smoke run of the same code path
    python benchmarks/mocap.py --methods base pathreg --seeds 0 1 2   # the comparison over seeds

Protocol (the paper's, DESIGN.md section 4): 3-D positions of 31 joints (93 coordinates) from forward
kinematics at 120 frames per second, in metres, root translation removed; a second-order model is
trained on frames 0-99 of a trial and extrapolates frames 100-199 from the same start. Values are not
rescaled (metres; z-scoring on 100 nearly still frames of a golf address would blow the later frames
up); time is scaled so that the training frames span [0, 1].
Unseen motion: for the walk, the first 100 frames of another trial (07_02) predicted from their own
first frame; wave and golf have one trial each here, so a held-back segment of the same trial (frames
200-299) is predicted from its own first frame instead.

Penalty weights: one fixed value per method (``METHODS``), not tuned on these data; L0 and PathReg (whose
lam = 1 cut every path in the first run) instead fit each lam of ``lams`` (``scnode.tl.lambda_path``
with ``max_extend=0``: exactly that grid, each lam an independent fit from the same initial weights,
n_iter penalised + n_iter // 2 refit iterations) and keep the largest lam whose MSE on every 5th
training frame, held out of the fits, is within 1.1x of the best (``TOLERANCE``, applied here to
the path's ``val_mse``: lambda_path's own rule, which keeps half the validation gain, is not used);
the extrapolation and unseen frames play no part.
Every fit: ``scn.tl.fit_sparse_ode``'s settings before its single-cell defaults (``PREP``): the
shared MLP (``field="shared"``, hidden (32, 32) unless given), whole trajectories from the first
frame (``window=None``, ``x0_noise=0``), every frame a time point (``n_bins=None``) and the first
frame itself as the initial state (``x0_cells=1``).
Fields: Base, L0, C-NODE and PathReg have the linear term (``linear=True``, as in
benchmarks/synthetic.py); the row "base, MLP only" is the paper's unregularised model without it.
PathReg's grid spans 0.1-100 because with the linear term its rule took the top of narrower grids
(0.01-0.1, then 0.03-1; run 3 in docs/results.md) on every motion: a linear weight costs its
penalty as much as one hidden path, so cutting input -> output pairs takes a larger lam.
Predictor without dynamics, computed in the same run: hold a frame — the last training frame (99)
for the extrapolation, the unseen segment's own first frame for the unseen MSE (what the models start
from).
Skeleton share: the share of a model's adjacency mass (positions block, self-dependence left out)
on coordinate pairs whose joints are the same or joined by a bone (a graph that ignores
the skeleton puts 8.5 % there: 726 of the 8556 ordered pairs): do the learned interactions follow the skeleton?
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from _report import command, machine, total

import scnode as scn

MOTIONS = {"walk": ("07_01", "07_02"), "wave": (None, None), "golf": (None, None)}
"""Motion -> (training trial, unseen trial); None: the only trial, with a held-back segment."""
TRAIN, EXTRAPOLATE, HELD_BACK = slice(0, 100), slice(100, 200), slice(200, 300)
LINEAR = {"model_kwargs": {"linear": True}}
METHODS: dict[str, dict] = {
    "base, MLP only": {"method": "base"},
    "base": LINEAR,
    "l0": {"lams": [0.01, 0.03, 0.1], **LINEAR},
    "cnode": {"lam": 10.0, **LINEAR},
    "pathreg": {"lams": [0.1, 1.0, 10.0, 100.0], "lam1": 0.0, **LINEAR},
    "lassonet_inner": {"lam": 10.0},
    "lassonet_outer": {"lam": 10.0},
    "grouplasso": {"lam": 1.0, "hidden": (8,)},
}
SCHEDULE = {"n_iter": 1000}
QUICK_SCHEDULE = {"n_iter": 6}
PREP = {
    "time_key": "time",
    "scaling": "none",
    "order": 2,
    "field": "shared",
    "window": None,
    "x0_noise": 0.0,
    "n_bins": None,
    "x0_cells": 1,
}
"""Every fit (see the module docstring): the protocol's preprocessing and ``fit_sparse_ode``'s former defaults."""
TOLERANCE = 0.1
"""L0 and PathReg keep the largest lam whose held-out MSE is at most (1 + TOLERANCE) times the path's smallest."""
METRES = 0.0254 / 0.45
"""CMU length unit (1/0.45 inch) in metres."""


def load(motion: str, data_dir: str | None) -> tuple[scn.AnnData, scn.AnnData]:
    """The training trial and the unseen one (or the held-back segment), root translation removed."""
    train_trial, unseen_trial = MOTIONS[motion]
    kw = {"keep_root_translation": False, "unit_scale": METRES, "data_dir": data_dir}
    if train_trial is None:
        trial = scn.datasets.mocap(motion, **kw)
        return trial[: EXTRAPOLATE.stop].copy(), trial[HELD_BACK].copy()
    return scn.datasets.mocap(motion, trial=train_trial, **kw)[: EXTRAPOLATE.stop].copy(), scn.datasets.mocap(
        motion, trial=unseen_trial, **kw
    )[TRAIN].copy()


def skeleton_share(adjacency: np.ndarray, adata: scn.AnnData) -> float:
    """Share of the position-block adjacency mass on same-joint or bone-joined coordinate pairs."""
    joints = list(adata.uns["skeleton"]["joints"])
    near = np.eye(len(joints), dtype=bool)
    for a, b in adata.uns["skeleton"]["bones"]:
        near[a, b] = near[b, a] = True
    idx = np.asarray([joints.index(j) for j in adata.var["joint"]])
    d = len(idx)
    mass = np.abs(adjacency[:, :d]).copy()
    np.fill_diagonal(mass, 0.0)
    total = mass.sum()
    return float(mass[near[np.ix_(idx, idx)]].sum() / total) if total > 0 else float("nan")


def run(method: str, motion: str, seq: scn.AnnData, unseen: scn.AnnData, schedule: dict, seed: int) -> dict:
    """Fit on the first 100 frames, extrapolate the next 100, score the unseen motion."""
    train = seq[TRAIN].copy()
    settings = dict(METHODS[method])
    lams = settings.pop("lams", None)
    name, method = method, settings.pop("method", method)
    common = {**PREP, "device": "cpu", "random_state": seed, "progress_bar": False, **settings}
    start = time.perf_counter()
    if lams is None:
        model = scn.tl.fit_sparse_ode(train, method=method, return_model=True, **schedule, **common)
    else:
        table, models = scn.tl.lambda_path(
            train, lams, method=method, n_iter=schedule["n_iter"], max_extend=0, return_models=True, **common
        )
        ok = table["val_mse"] <= (1 + TOLERANCE) * table["val_mse"].min()
        model = models[int(np.flatnonzero(ok)[-1])]
    seconds = time.perf_counter() - start
    # frames 0-199 integrated from frame 0 as the model's training data were prepared (its time unit,
    # scaling and initial velocity), on the frames' own (equally spaced) times, in metres
    pred = scn.tl.predict(seq, model, n_points=seq.n_obs)
    if not np.allclose(pred.obs["time"].to_numpy(), seq.obs["time"].to_numpy()):
        raise RuntimeError("The predicted time grid is not the frames' times: frames are not equally spaced.")
    x_all, x_pred = np.asarray(seq.X, float), np.asarray(pred.X, float)
    mse = {
        k: float(np.mean((x_pred[s] - x_all[s]) ** 2)) for k, s in (("train", TRAIN), ("extrapolation", EXTRAPOLATE))
    }
    return {
        "method": name,
        "lam": float(model.config.lam),
        "motion": motion,
        **mse,
        "unseen": float(scn.tl.score(unseen, model).loc["sum", "mse"]),
        "feature": model.feature_sparsity,
        "weight": model.weight_sparsity,
        "skeleton": skeleton_share(model.adjacency(), seq),
        "seconds": seconds,
        "adjacency": model.adjacency(),
    }


def hold_frame(seq: scn.AnnData, unseen: scn.AnnData) -> dict:
    """MSE of holding a pose: frame 99 over the extrapolated frames, the unseen segment's first frame over it."""
    x, u = np.asarray(seq.X, float), np.asarray(unseen.X, float)
    last = TRAIN.stop - 1
    return {
        "extrapolation": float(np.mean((x[EXTRAPOLATE] - x[last]) ** 2)),
        "unseen": float(np.mean((u - u[0]) ** 2)),
    }


def _table(rows: list[dict], hold: dict) -> str:
    head = [
        "method",
        "lambda",
        "train MSE",
        "extrapolation MSE",
        "unseen MSE",
        "feature sp.",
        "weight sp.",
        "skeleton share",
        "s",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["method"], f"{r['lam']:g}", f"{r['train']:.3g}", f"{r['extrapolation']:.3g}", f"{r['unseen']:.3g}"]
        cells += [f"{100 * r['feature']:.1f}%", f"{100 * r['weight']:.1f}%", f"{100 * r['skeleton']:.1f}%"]
        lines.append("| " + " | ".join([*cells, f"{r['seconds']:.0f}"]) + " |")
    cells = ["*hold a frame (no dynamics)*", "", "", f"{hold['extrapolation']:.3g}", f"{hold['unseen']:.3g}"]
    lines.append("| " + " | ".join([*cells, "", "", "", ""]) + " |")
    return "\n".join(lines)


def _over_seeds(by_seed: dict[int, list[dict]]) -> str:
    """Each method's extrapolation and unseen MSE over the seeds, and on how many it beats Base's extrapolation."""
    seeds = list(by_seed)
    head = ["method", "extrapolation MSE, mean ± sd", "per seed", "below Base's", "unseen MSE, mean ± sd"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    base = {seed: next((r for r in rows if r["method"] == "base"), None) for seed, rows in by_seed.items()}
    for i, method in enumerate(r["method"] for r in by_seed[seeds[0]]):
        runs = [by_seed[seed][i] for seed in seeds]
        ext, unseen = np.array([r["extrapolation"] for r in runs]), np.array([r["unseen"] for r in runs])
        below = ""
        if method != "base" and all(base.values()):
            wins = sum(r["extrapolation"] < base[seed]["extrapolation"] for seed, r in zip(seeds, runs, strict=True))
            below = f"{wins} of {len(seeds)}"
        cells = [method, f"{ext.mean():.3g} ± {ext.std():.2g}", " / ".join(f"{v:.3g}" for v in ext), below]
        lines.append("| " + " | ".join([*cells, f"{unseen.mean():.3g} ± {unseen.std():.2g}"]) + " |")
    return "\n".join(lines)


def figure(rows: list[dict], motion: str, out: Path) -> Path:
    """One adjacency panel per method (positions and velocities as inputs).

    Every coordinate in its order (``max_genes=None``: pl.adjacency's default cut to the 50 strongest
    rows and columns, clustered, would hide the joints' order and label each small panel).
    """
    fig, axes = plt.subplots(1, len(rows), figsize=(3.2 * len(rows), 2.6), squeeze=False)
    for ax, r in zip(axes[0], rows, strict=True):
        scn.pl.adjacency(r["adjacency"], title=r["method"], log=True, max_genes=None, ax=ax, show=False)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"mocap_{motion}_adjacency.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> str:
    """Run the benchmark and print markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few iterations (smoke run)")
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--motions", nargs="*", default=list(MOTIONS), choices=list(MOTIONS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        help="several seeds (instead of --seed): the first seed's tables, then each method over all seeds",
    )
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--figures", type=Path, default=None, help="folder for the adjacency figures")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    schedule = QUICK_SCHEDULE if args.quick else SCHEDULE
    seeds = args.seeds or [args.seed]
    start = time.perf_counter()
    out = [
        f"# Motion-capture benchmark ({date.today()})",
        "",
        command("mocap.py", argv),
        machine() + f"; schedule {schedule} (+ n_iter // 2 refit), seed{'s' * (len(seeds) > 1)} "
        f"{', '.join(map(str, seeds))}.",
    ]
    for motion in args.motions:
        seq, unseen = load(motion, args.data_dir)
        by_seed: dict[int, list[dict]] = {}
        for seed in seeds:
            by_seed[seed] = []
            for method in args.methods:
                by_seed[seed].append(run(method, motion, seq, unseen, schedule, seed))
                print(
                    f"  {motion} {method} seed {seed}: {by_seed[seed][-1]['seconds']:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
        rows = by_seed[seeds[0]]
        what = "trial 07_02, frames 0-99" if MOTIONS[motion][1] else "frames 200-299 of the same trial (only trial)"
        out += [
            "",
            f"## {motion} (unseen: {what})",
            "",
            "MSE in m² (mean over coordinates and frames).",
            "",
            _table(rows, hold_frame(seq, unseen)),
        ]
        if len(seeds) > 1:
            out[-1:-1] = [f"Seed {seeds[0]}:", ""]
            out += ["", f"Over seeds {', '.join(map(str, seeds))} (sd over seeds):", "", _over_seeds(by_seed)]
        if args.figures is not None and rows:
            out += ["", f"Adjacency figure: {figure(rows, motion, args.figures)}"]
    out += ["", total(start)]
    text = "\n".join(out)
    print(text)
    return text


if __name__ == "__main__":
    main()
