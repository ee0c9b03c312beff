"""Speed and scale of the single-cell fit, against the paper's own implementation.

Reference (DESIGN.md / the speed issue): the authors' PathReg fit of donor s1d2 (3 lineages, 529
genes, every cell a time point, dopri5 rtol = atol = 1e-3, torch 2.13 CPU, 2 threads) takes a median
1.38 s per iteration.

Sections (``--sections``):

* ``iteration``: seconds and function evaluations per training iteration of PathReg on s1d2 through
  ``scn.tl.fit_sparse_ode`` (median over ``--iters`` iterations after 2 warm-up ones; full time span,
  no refit), every cell a time point and binned, shared MLP and one network per gene; GroupLasso;
  peak memory of each measurement (its own process: maximum resident set size; on CUDA the peak
  allocated GPU memory). Every fit of this script passes ``field="shared"`` (the per-gene rows add
  ``per_output=True`` on it: no decay or input gates unless a row says so), ``window=None`` (whole
  trajectories from x0), ``x0_noise=0`` unless a row gives its own, and a fixed ``lam`` and ``lam1``
  (``WHOLE_TRAJECTORIES``): ``fit_sparse_ode``'s settings before its single-cell defaults.
* ``whole``: seconds per iteration averaged over whole penalised fits of s1d2 (400 iterations with
  the default horizon warm-up) of the same variants, and GroupLasso's cost against PathReg's. As a
  field leaves its initial weights the adaptive solver takes more steps (for the shared MLP about 14
  function evaluations per iteration at the start, about 48 over a fit), so the start of a fit
  understates what an iteration costs and how much the variants differ.
* ``ratio``: GroupLasso's cost per iteration against the shared-MLP PathReg's over whole fits of
  s1d2 (100 bins, as in ``whole``), in ``--pairs`` interleaved pairs of fits (default 10): each
  pair's ratio, their median, the ratio of the means and how many pairs are at or below 3x. Single
  whole-fit timings on a shared 2-core machine vary by 10-30 %, most of all the shared MLP's short
  iterations, so one pair can land on either side of a threshold.
* ``scaling``: the same per-iteration cost for 100 ... 2000 genes of paul15 (two branches with
  diffusion pseudotime, genes ranked by variance), PathReg and GroupLasso, at the start of a fit and
  averaged over whole fits, and the fitted growth exponent ``seconds ~ genes^b``.
* ``fit``: the whole several-donor fit (train s1d1, s1d2, s2d4) with ``fit_sparse_ode``'s former
  defaults (``FORMER_DEFAULTS``: the paper's shared 32x32 MLP, PathReg at
  ``scnode.model.DEFAULT_LAM["pathreg"]`` = 21.5 and lam1 464, every cell a time point; not the
  current defaults, which choose lam on held-out points) and with the per-gene PathReg setting of
  ``benchmarks/hematopoiesis.py`` (without and with each gene's decay term): wall time and held-out
  MSE on s2d1 and s3d6 next to that benchmark's pooled-curve predictor.
* ``binning``: protocol (a) (train s1d2) with and without binning: training MSE (the reference
  reached 0.0353), held-out MSE on s1d1, s2d1, s3d6 and the time per iteration, to show what
  binning costs in accuracy.
* ``reach``: protocol (a) fitted with 25 ... 400 iterations (each fit from scratch, with its refit):
  wall time, training MSE and held-out MSE, and the wall time at which the fit first reaches the
  reference's training MSE (0.0353) and beats the authors' held-out MSE on s1d1, s2d1 and s3d6.
* ``solvers``: protocol (a) (train s1d2) with the per-gene setting and the decay term (the reach
  section's 400-iteration fit) under other solvers and tolerances: dopri5 at rtol = atol = 1e-2,
  1e-3 (the default) and 1e-4, and fixed-step rk4 and Euler. For each: wall time, seconds and
  function evaluations per iteration over the fit, training and held-out MSE, and the integration
  error of the fitted field under that solver (largest difference, in min-max units, from the same
  field integrated by dopri5 at 1e-7 over the training trajectories). Fixed steps on the data grid
  (``step_size=None``) are not among them: the three lineages' 100 bins each make about 300 output
  times, so rk4 would take about 1,200 evaluations per solve against dopri5's 40-50.
* ``kernels``: the grouped first layer's products (per-gene networks, GroupLasso) through torch's
  default BLAS and through oneDNN (scnode's default for large layers on the CPU), in the iteration
  section's fits; and what did not help: ``torch.compile`` of the vector field (``MLP.forward``
  compiled by inductor) and bfloat16 for the grouped first-layer product (the product alone, 3
  states x 529 genes -> 529 x 8 hidden units, next to float32 through BLAS and through oneDNN).

Usage::

    python benchmarks/speed.py                     # all sections, CPU (and CUDA if present)
    python benchmarks/speed.py --quick             # seconds: tiny iteration counts, 2 gene sizes
    python benchmarks/speed.py --sections iteration scaling --devices cpu
    python benchmarks/speed.py --sections genes --fields "per gene (default)" --regulators "every gene"
    python benchmarks/speed.py --sections genes --devices cuda --genes 529 2000 5000 10000 --whole-genes --iters 10
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import torch

import scnode as scn
from scnode.core import layers
from scnode.model import DEFAULT_LAM, DEFAULT_PATHREG_LAM1

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import command, total
from hematopoiesis import AUTHORS, TUNED_OPTIMISER, baselines, x0_noise  # pooled curve, x0 noise, optimiser
from hematopoiesis import load as load_donors

REFERENCE_S_PER_ITER = 1.38
PREP = {"time_key": "dpt_pseudotime", "lineage_key": "lineage", "trim_start": 10, "trim_end": 20, "x0_cells": 5}
WHOLE_TRAJECTORIES = {"field": "shared", "window": None, "x0_noise": 0.0, "fit_kwargs": TUNED_OPTIMISER}
"""Every fit here: the shared field's settings under ``hidden`` and ``model_kwargs`` (the per-gene rows add
``per_output=True`` only, not the per-gene field's decay and input gates), whole trajectories from x0, no
x0 noise unless a row adds its own, the hematopoiesis protocol rows' optimiser (``fit_sparse_ode``
before its single-cell defaults)."""
DEFAULT_PREP = {"time_key": "dpt_pseudotime", "lineage_key": "lineage"}
"""The gene sweep's fits: ``fit_sparse_ode``'s own defaults (no trimming; its bins, windows and x0)."""
PER_GENE = {"hidden": (8,), "model_kwargs": {"per_output": True}}
PATHREG = {**WHOLE_TRAJECTORIES, "method": "pathreg", "lam": 0.03, "lam1": 0.0}
GROUPLASSO = {**WHOLE_TRAJECTORIES, "method": "grouplasso", "lam": 1.0, "hidden": (8,)}
FORMER_DEFAULTS = {
    **WHOLE_TRAJECTORIES,
    "method": "pathreg",
    "hidden": (32, 32),
    "lam": DEFAULT_LAM["pathreg"],
    "lam1": DEFAULT_PATHREG_LAM1,
    "n_bins": None,
}
"""``fit_sparse_ode``'s former defaults (the shared 32x32 MLP, PathReg's default lam and lam1, every cell)."""
FORMER_DEFAULTS_NAME = (
    f"paper's shared 32x32 MLP PathReg (lam {FORMER_DEFAULTS['lam']:g}, lam1 {FORMER_DEFAULTS['lam1']:g}, every cell)"
)
VARIANTS: dict[str, dict] = {
    "PathReg, shared 32x32 MLP, every cell": {**PATHREG, "n_bins": None},
    "PathReg, shared 32x32 MLP, 100 bins": {**PATHREG, "n_bins": 100},
    "PathReg, per gene (8), every cell": {**PATHREG, **PER_GENE, "n_bins": None},
    "PathReg, per gene (8), 100 bins": {**PATHREG, **PER_GENE, "n_bins": 100},
    "GroupLasso (8), 100 bins": {**GROUPLASSO, "n_bins": 100},
}
"""Per-iteration rows of the ``iteration`` section: ``fit_sparse_ode`` arguments on top of PREP."""
WHOLE_ITERS = 400
"""Penalised iterations of the ``whole`` section's fits (the hematopoiesis benchmark's schedule)."""
GENES = [100, 250, 529, 1000, 2000]
WHOLE_GROUPLASSO_GENES = 529
"""The scaling section's whole GroupLasso fits stop here (2000 genes: about 2.5 s per iteration)."""
SCALING = {
    "PathReg, shared 32x32 MLP": {**PATHREG},
    "GroupLasso (8)": {**GROUPLASSO},
}
FIT = {**PATHREG, **PER_GENE, "n_bins": 100, "n_iter": 400}
"""The several-donor fit: the per-gene PathReg setting of the hematopoiesis benchmark (its lam path's middle)."""
FIT_DECAY = {**FIT, "model_kwargs": {**FIT["model_kwargs"], "decay": True}}
"""The same with each gene's decay term (``decay=True``)."""


# ----------------------------------------------------------------------------- one measurement
def _peak_memory_mb(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def measure(spec: dict) -> dict:
    """Per-iteration cost of one fit (run in its own process so that peak memory is its own)."""
    torch.set_num_threads(spec["threads"])
    if spec.get("compile"):
        from scnode.core import fields

        fields.MLP.forward = torch.compile(fields.MLP.forward)
    if spec.get("blas"):  # the grouped first layer's products through torch's default BLAS, not oneDNN
        layers.ONEDNN_MIN_WEIGHTS = 2**62
    if str(spec["data"]).endswith(".h5ad"):
        adata = anndata.read_h5ad(spec["data"])
    else:
        adata = scn.datasets.hematopoiesis(donor=spec["data"])
    genes = spec.get("genes")
    settings = dict(spec["settings"])
    if spec.get("full"):  # a whole default fit: the lam search, the selected fit, its refit
        return full_fit(adata, spec)
    prep = {**(DEFAULT_PREP if spec.get("defaults") else PREP), **spec.get("prep", {})}
    whole = spec.get("whole", False)  # a whole penalised fit (with its horizon warm-up), not its start
    model = scn.tl.fit_sparse_ode(
        adata,
        genes=None if genes is None else list(adata.var_names[:genes]),
        n_iter=spec["iters"] if whole else spec["iters"] + 2,
        device=spec["device"],
        progress_bar=False,
        return_model=True,
        fit_kwargs={**settings.pop("fit_kwargs", {}), "refit_iter": 0, **({} if whole else {"horizon_warmup": 0})},
        **prep,
        **settings,
    )
    skip = 0 if whole else 2
    seconds, nfe = np.asarray(model.history.seconds[skip:]), np.asarray(model.history.nfe[skip:])
    return {
        "s_per_iter": float(np.median(seconds)),
        "s_mean": float(seconds.mean()),
        "nfe": float(np.median(nfe)),
        "nfe_mean": float(nfe.mean()),
        "mse": float(model.history.mse[-1]),
        "peak_mb": _peak_memory_mb(spec["device"]),
    }


class _ReadBack(logging.Handler):
    """Collects the lambdas a search read back from its ``search_dir`` (its log says so)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lams: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("lambda search: lam") and " read back from " in record.getMessage():
            self.lams.append(float(record.args[0]))


def full_fit(adata: anndata.AnnData, spec: dict) -> dict:
    """Wall time, peak memory and graph of ``fit_sparse_ode`` with its defaults (and the spec's regulators).

    With a ``search_dir`` among the settings, ``read_back`` counts the search's fits read back from
    it and ``read_back_s`` sums their own fitting time (their rows' ``seconds``).
    """
    start = time.perf_counter()
    if spec.get("genes") is not None:
        adata = adata[:, : spec["genes"]].copy()
    watch = _ReadBack()
    logger = logging.getLogger("scnode")
    level = logger.level
    logger.addHandler(watch)
    logger.setLevel(logging.INFO)
    try:
        scn.tl.fit_sparse_ode(adata, **DEFAULT_PREP, device=spec["device"], progress_bar=False, **spec["settings"])
    finally:
        logger.removeHandler(watch)
        logger.setLevel(level)
    record = adata.uns["scnode"]
    metrics = record["metrics"]
    table = pd.DataFrame(record["path"]["table"]) if "path" in record else None
    read_back = table[np.isin(table["lam"], watch.lams)] if table is not None else []
    return {
        "read_back": len(read_back),
        "read_back_s": float(read_back["seconds"].sum()) if len(read_back) else 0.0,
        "wall_s": time.perf_counter() - start,
        "peak_mb": _peak_memory_mb(spec["device"]),
        "lam": float(record["params"]["lam"]),
        "n_edges": int(metrics["n_edges"]),
        "median_regulators": float(metrics["median_regulators"]),
        "train_mse": float(metrics["train_mse"]),
        "fits": len(record["path"]["table"]["lam"]) if "path" in record else 1,
    }


def s1d2_spec(settings: dict, iters: int, device: str, threads: int, *, whole: bool = False) -> dict:
    """A :func:`measure` spec for s1d2: the start of a fit, or with ``whole`` a whole penalised fit."""
    spec = {"data": "s1d2", "settings": settings, "iters": iters, "device": device}
    if whole:
        spec["whole"] = True
    return {**spec, "threads": threads}


IN_PROCESS = False
"""Run :func:`run_isolated`'s measurements in this process (``--quick``: checks the script without a
Python start per measurement; peak memory is then this process's)."""


def run_isolated(spec: dict) -> dict:
    """Run :func:`measure` in a fresh Python process (in this one with :data:`IN_PROCESS`) and return its result."""
    if IN_PROCESS:
        from scnode.core import fields

        forward, min_weights = fields.MLP.forward, layers.ONEDNN_MIN_WEIGHTS
        try:
            return measure(spec)
        finally:  # undo a measurement's patches (compile, blas)
            fields.MLP.forward, layers.ONEDNN_MIN_WEIGHTS = forward, min_weights
    out = subprocess.run(
        [sys.executable, __file__, "--measure", json.dumps(spec)], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"measurement {spec} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- sections
def devices(requested: list[str]) -> list[str]:
    """The requested devices that exist here."""
    return [d for d in requested if d == "cpu" or (d == "cuda" and torch.cuda.is_available())]


def device_label(device: str, threads: int) -> str:
    """CPU with its thread count, or the GPU's model."""
    return f"CPU, {threads} threads" if device == "cpu" else f"GPU: {torch.cuda.get_device_name(0)}"


def section_iteration(args: argparse.Namespace) -> None:
    """Seconds per iteration of the s1d2 fit, per variant and device."""
    print("\n## Per iteration: PathReg on s1d2 (3 lineages, 529 genes)\n")
    print(f"Median over {args.iters} iterations after 2 warm-up ones; full time span, no refit.\n")
    print("| variant | device | s / iteration | speed-up vs 1.38 s | function evaluations | peak memory (MB) |")
    print("|---|---|---|---|---|---|")
    for device in devices(args.devices):
        for name, settings in VARIANTS.items():
            r = run_isolated(s1d2_spec(settings, args.iters, device, args.threads))
            speedup = REFERENCE_S_PER_ITER / r["s_per_iter"]
            print(
                f"| {name} | {device_label(device, args.threads)} | {r['s_per_iter']:.3f} | {speedup:.0f}x "
                f"| {r['nfe']:.0f} | {r['peak_mb']:.0f} |",
                flush=True,
            )


def section_whole(args: argparse.Namespace) -> None:
    """Seconds per iteration averaged over whole fits of s1d2, and GroupLasso against PathReg."""
    n = 6 if args.quick else WHOLE_ITERS
    print(f"\n## Per iteration over a whole fit: s1d2 (3 lineages, 529 genes), {n} penalised iterations\n")
    print(
        "Each fit from scratch with the default horizon warm-up (the first iterations integrate part of\n"
        "the time span), no refit; every iteration counted. The iteration section above measures the\n"
        "start of a fit over the full span instead, where a field still near its initial weights takes\n"
        "few solver steps.\n"
    )
    print("| variant | device | mean s / iteration | median | function evaluations (mean) | final MSE |")
    print("|---|---|---|---|---|---|")
    for device in devices(args.devices):
        means = {}
        for name, settings in VARIANTS.items():
            r = run_isolated(s1d2_spec(settings, n, device, args.threads, whole=True))
            means[name] = r["s_mean"]
            print(
                f"| {name} | {device_label(device, args.threads)} | {r['s_mean']:.3f} | {r['s_per_iter']:.3f} "
                f"| {r['nfe_mean']:.0f} | {r['mse']:.4f} |",
                flush=True,
            )
        shared, per_gene = means["PathReg, shared 32x32 MLP, 100 bins"], means["PathReg, per gene (8), 100 bins"]
        grouplasso = means["GroupLasso (8), 100 bins"]
        print(
            f"\nGroupLasso / PathReg per iteration ({device_label(device, args.threads)}, 100 bins): "
            f"{grouplasso / shared:.1f}x the shared MLP, {grouplasso / per_gene:.1f}x the per-gene field."
        )


def section_ratio(args: argparse.Namespace) -> None:
    """GroupLasso / shared-MLP PathReg per iteration over whole fits of s1d2, in interleaved pairs."""
    n = 6 if args.quick else WHOLE_ITERS
    names = ["PathReg, shared 32x32 MLP, 100 bins", "GroupLasso (8), 100 bins"]
    print(f"\n## GroupLasso against PathReg over whole fits: s1d2, {args.pairs} interleaved pairs\n")
    print(
        f"Each pair: a whole {n}-iteration fit of each (as in the whole section), one after the other in\n"
        "fresh processes; the mean seconds per iteration of each fit and their ratio.\n"
    )
    for device in devices(args.devices):
        label = device_label(device, args.threads)
        print(f"| pair | device | {names[0]} (s) | {names[1]} (s) | ratio |")
        print("|---|---|---|---|---|")
        pairs = []
        for k in range(args.pairs):
            means = []
            for name in names:
                means.append(run_isolated(s1d2_spec(VARIANTS[name], n, device, args.threads, whole=True))["s_mean"])
            pairs.append(means)
            print(f"| {k + 1} | {label} | {means[0]:.4f} | {means[1]:.4f} | {means[1] / means[0]:.2f} |", flush=True)
        shared, grouplasso = np.asarray(pairs).T
        ratios = grouplasso / shared
        print(
            f"\nGroupLasso / PathReg over {len(ratios)} pairs ({label}): median {np.median(ratios):.2f}x, "
            f"ratio of the means {grouplasso.mean() / shared.mean():.2f}x, "
            f"range {ratios.min():.2f}-{ratios.max():.2f}x, "
            f"{int((ratios <= 3).sum())} of {len(ratios)} at or below 3x.\n"
        )


def paul15_branches(path: Path, n_genes: int) -> None:
    """Write paul15 with diffusion pseudotime and two branches (genes ranked by variance) to ``path``."""
    import scanpy as sc

    adata = scn.datasets.paul15()
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    sc.pp.pca(adata, n_comps=30, random_state=0)
    sc.pp.neighbors(adata, n_neighbors=15, random_state=0)
    sc.tl.diffmap(adata, random_state=0)
    sc.tl.dpt(adata)  # root: uns["iroot"]
    clusters = adata.obs["paul15_clusters"].astype(str)
    branch = np.where(clusters.str.contains("Ery|MEP"), "erythroid", "")
    branch = np.where(clusters.str.contains("GMP|Mo|Neu"), "myeloid", branch)
    adata = adata[branch != ""].copy()
    adata.obs["lineage"] = pd.Categorical(branch[branch != ""])
    order = np.argsort(-np.asarray(adata.X.var(0)).ravel())[:n_genes]
    adata = adata[:, order].copy()
    adata.write_h5ad(path)


def section_scaling(args: argparse.Namespace) -> None:
    """Seconds per iteration against the number of genes (paul15, 100 bins per branch)."""
    genes = GENES[:2] if args.quick else GENES
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "paul15_branches.h5ad"
        paul15_branches(path, max(genes))
        n_whole = 6 if args.quick else WHOLE_ITERS
        print("\n## Scaling with the number of genes (paul15: erythroid and myeloid branches, 100 bins each)\n")
        print(
            "Genes ranked by variance. Rows without a note: the iteration section's schedule (the start of\n"
            f"a fit); rows marked 'whole fit': the mean over whole {n_whole}-iteration fits as in the whole\n"
            f"section (GroupLasso's only up to {WHOLE_GROUPLASSO_GENES} genes: beyond, a whole fit takes minutes).\n"
        )
        print("| model | device | " + " | ".join(f"{g} genes" for g in genes) + " | exponent b (s ~ genes^b) |")
        print("|---|---|" + "---|" * len(genes) + "---|")
        for device in devices(args.devices):
            for whole in (False, True):
                for name, settings in SCALING.items():
                    times = []
                    for g in genes:
                        if whole and settings["method"] == "grouplasso" and g > WHOLE_GROUPLASSO_GENES:
                            continue
                        spec = {
                            "data": str(path),
                            "genes": g,
                            "settings": {**settings, "n_bins": 100},
                            "prep": {"trim_start": 0, "trim_end": 0},
                            "iters": n_whole if whole else args.iters,
                            "whole": whole,
                            "device": device,
                            "threads": args.threads,
                        }
                        r = run_isolated(spec)
                        times.append(r["s_mean"] if whole else r["s_per_iter"])
                    slope = np.polyfit(np.log(genes[: len(times)]), np.log(times), 1)[0]
                    cells = " | ".join([f"{t:.3f}" for t in times] + ["—"] * (len(genes) - len(times)))
                    label = f"{name}, whole fit" if whole else name
                    print(f"| {label} | {device_label(device, args.threads)} | {cells} | {slope:.2f} |", flush=True)


def _held_out(tests: dict[str, scn.AnnData], model: scn.SparseODE) -> dict[str, float]:
    """Summed MSE over each donor's lineages at every distinct pseudotime (the paper's protocol)."""
    return {d: float(scn.tl.score(a, model, n_bins=None).loc["sum", "mse"]) for d, a in tests.items()}


def section_fit(args: argparse.Namespace) -> None:
    """The several-donor fit: wall time and held-out MSE, with the defaults and the per-gene setting."""
    adata, _ = load_donors()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        train = adata[adata.obs["donor"].isin(["s1d1", "s1d2", "s2d4"])].copy()
        tests = {d: adata[adata.obs["donor"] == d].copy() for d in ("s2d1", "s3d6")}
    prep = {**PREP, "lineage_key": "trajectory"}
    base = baselines(train, tests)
    n_iter = 4 if args.quick else FIT["n_iter"]
    noise = x0_noise(scn.pp.prepare_trajectories(train, **prep, n_bins=FIT["n_bins"]))
    per_gene = {**FIT, "n_iter": n_iter, "fit_kwargs": {**TUNED_OPTIMISER, "x0_noise": noise}}
    settings = {
        FORMER_DEFAULTS_NAME: {**FORMER_DEFAULTS, "n_iter": n_iter},
        f"PathReg per gene (8), lam 0.03, 100 bins, x0_noise {noise:.3f}": per_gene,
        f"the same with each gene's decay (decay=True), x0_noise {noise:.3f}": {
            **per_gene,
            "model_kwargs": FIT_DECAY["model_kwargs"],
        },
    }
    print("\n## The several-donor fit (train s1d1, s1d2, s2d4; test s2d1, s3d6)\n")
    print(f"{n_iter} + {n_iter // 2} (refit) iterations; summed held-out MSE over lineages at every pseudotime.\n")
    print("| setting | device | wall time (s) | s / iteration | feature sparsity | s2d1 | s3d6 |")
    print("|---|---|---|---|---|---|---|")
    for device in devices(args.devices):
        torch.set_num_threads(args.threads)
        for name, setting in settings.items():
            start = time.perf_counter()
            model = scn.tl.fit_sparse_ode(
                train, device=device, progress_bar=False, return_model=True, **prep, **setting
            )
            wall = time.perf_counter() - start
            held = _held_out(tests, model)
            print(
                f"| {name} | {device_label(device, args.threads)} | {wall:.0f} "
                f"| {np.median(model.history.seconds):.3f} | {model.feature_sparsity:.0%} "
                f"| {held['s2d1']:.4f} | {held['s3d6']:.4f} |",
                flush=True,
            )
    pooled = base.loc["pooled curve"]
    print(f"| *pooled curve (no dynamics)* | | | | | {pooled['s2d1']:.4f} | {pooled['s3d6']:.4f} |")


def section_binning(args: argparse.Namespace) -> None:
    """Protocol (a) with and without bins: training and held-out accuracy and time per iteration."""
    train = scn.datasets.hematopoiesis(donor="s1d2")
    tests = {d: scn.datasets.hematopoiesis(donor=d) for d in ("s1d1", "s2d1", "s3d6")}
    n_iter = 4 if args.quick else FIT["n_iter"]
    print("\n## What binning costs: protocol (a), train s1d2\n")
    print(f"PathReg, per gene (8), lam 0.03, {n_iter} + {n_iter // 2} (refit) iterations, CPU {args.threads} threads.")
    print("Train: s1d2 summed over lineages at every pseudotime (the reference reached 0.0353).\n")
    print("| time points | s / iteration | wall time (s) | train | s1d1 | s2d1 | s3d6 |")
    print("|---|---|---|---|---|---|---|")
    torch.set_num_threads(args.threads)
    for bins in (100, None):
        settings = {**FIT, "n_bins": bins, "n_iter": n_iter}
        start = time.perf_counter()
        model = scn.tl.fit_sparse_ode(train, device="cpu", progress_bar=False, return_model=True, **PREP, **settings)
        wall = time.perf_counter() - start
        held = _held_out({"train": train, **tests}, model)
        label = "every cell" if bins is None else f"{bins} bins"
        print(
            f"| {label} | {np.median(model.history.seconds):.3f} | {wall:.0f} | {held['train']:.4f} "
            f"| {held['s1d1']:.4f} | {held['s2d1']:.4f} | {held['s3d6']:.4f} |",
            flush=True,
        )


REACH_ITERS = [25, 50, 100, 200, 400]


def section_reach(args: argparse.Namespace) -> None:
    """Protocol (a) after 25 ... 400 iterations: wall time to the reference's training MSE and held-out level."""
    train = scn.datasets.hematopoiesis(donor="s1d2")
    tests = {d: scn.datasets.hematopoiesis(donor=d) for d in ("s1d1", "s2d1", "s3d6")}
    iters = REACH_ITERS[:2] if args.quick else REACH_ITERS
    noise = x0_noise(scn.pp.prepare_trajectories(train, **PREP, n_bins=FIT["n_bins"]))
    settings = {
        FORMER_DEFAULTS_NAME: FORMER_DEFAULTS,
        f"PathReg per gene (8) with decay, lam 0.03, 100 bins, x0_noise {noise:.3f}": {
            **FIT_DECAY,
            "fit_kwargs": {**TUNED_OPTIMISER, "x0_noise": noise},
        },
    }
    authors = " / ".join(f"{AUTHORS[d]}" for d in tests)
    print("\n## Time to the reference's accuracy: protocol (a), train s1d2\n")
    print(f"Each row a fit from scratch with n iterations and its refit (n // 2), CPU {args.threads} threads.")
    print("Train: s1d2 summed over lineages at every pseudotime (the reference reached 0.0353); held out:")
    print(f"s1d1, s2d1, s3d6 (the authors' PathReg: {authors}).\n")
    print("| setting | iterations | wall time (s) | feature sparsity | train | s1d1 | s2d1 | s3d6 |")
    print("|---|---|---|---|---|---|---|---|")
    torch.set_num_threads(args.threads)
    summary = []
    for name, setting in settings.items():
        reached: dict[str, float] = {}
        for n in iters:
            start = time.perf_counter()
            model = scn.tl.fit_sparse_ode(
                train, device="cpu", progress_bar=False, return_model=True, **PREP, **{**setting, "n_iter": n}
            )
            wall = time.perf_counter() - start
            held = _held_out({"train": train, **tests}, model)
            if held["train"] <= AUTHORS["train"]:
                reached.setdefault("train", wall)
            if all(held[d] < AUTHORS[d] for d in tests):
                reached.setdefault("held", wall)
            print(
                f"| {name} | {n} + {n // 2} | {wall:.0f} | {model.feature_sparsity:.0%} | {held['train']:.4f} "
                f"| {held['s1d1']:.4f} | {held['s2d1']:.4f} | {held['s3d6']:.4f} |",
                flush=True,
            )
        first = {k: f"after {reached[k]:.0f} s" if k in reached else "not reached" for k in ("train", "held")}
        summary.append(
            f"- {name}: train <= 0.0353 {first['train']}; below the authors on s1d1, s2d1 and s3d6 "
            f"{first['held']} (the wall time of the first fit that does it)."
        )
    print("\n" + "\n".join(summary))


SOLVERS: dict[str, dict] = {
    "dopri5, rtol = atol = 1e-3 (default)": {},
    "dopri5, rtol = atol = 1e-2": {"rtol": 1e-2, "atol": 1e-2},
    "dopri5, rtol = atol = 1e-4": {"rtol": 1e-4, "atol": 1e-4},
    "rk4, step 0.05": {"solver": "rk4", "step_size": 0.05},
    "euler, step 0.02": {"solver": "euler", "step_size": 0.02},
}
"""The solvers section's settings (``SparseODE`` solver options)."""


def _integration_error(model: scn.SparseODE, ts: scn.pp.TrajectorySet) -> float:
    """Largest difference between the model's trajectories under its own solver and under dopri5 at 1e-7."""
    config = model.config
    own = model.predict(ts.times, ts.x0)
    model.config = dataclasses.replace(config, solver="dopri5", rtol=1e-7, atol=1e-7, step_size=None)
    try:
        tight = model.predict(ts.times, ts.x0)
    finally:
        model.config = config
    return max(float(np.abs(a - b).max()) for a, b in zip(own, tight, strict=True))


def section_solvers(args: argparse.Namespace) -> None:
    """Protocol (a) under other solvers and tolerances: cost, accuracy of the fit and of the integration."""
    train = scn.datasets.hematopoiesis(donor="s1d2")
    tests = {d: scn.datasets.hematopoiesis(donor=d) for d in ("s1d1", "s2d1", "s3d6")}
    ts = scn.pp.prepare_trajectories(train, **PREP, n_bins=FIT["n_bins"])
    noise = x0_noise(ts)
    n = REACH_ITERS[0] if args.quick else FIT["n_iter"]
    solvers = dict(list(SOLVERS.items())[:2]) if args.quick else SOLVERS
    print("\n## Solvers and tolerances: protocol (a), train s1d2\n")
    print(
        f"PathReg per gene (8) with decay, lam 0.03, 100 bins, x0_noise {noise:.3f}: {n} + {n // 2} iterations\n"
        f"(the reach section's last fit), CPU {args.threads} threads. Seconds and function evaluations per\n"
        "iteration: means over the penalised iterations and the refit. Integration error: the largest\n"
        "difference (min-max units) between the fitted field's training trajectories under the row's\n"
        "solver and under dopri5 at rtol = atol = 1e-7. Held out: summed MSE at every pseudotime.\n"
    )
    print(
        "| solver | wall time (s) | s / iteration | function evaluations | integration error | feature sparsity "
        "| train | s1d1 | s2d1 | s3d6 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    torch.set_num_threads(args.threads)
    for name, options in solvers.items():
        setting = {
            **FIT_DECAY,
            "n_iter": n,
            "model_kwargs": {**FIT_DECAY["model_kwargs"], **options},
            "fit_kwargs": {**TUNED_OPTIMISER, "x0_noise": noise},
        }
        start = time.perf_counter()
        model = scn.tl.fit_sparse_ode(train, device="cpu", progress_bar=False, return_model=True, **PREP, **setting)
        wall = time.perf_counter() - start
        held = _held_out({"train": train, **tests}, model)
        h = model.history
        print(
            f"| {name} | {wall:.0f} | {np.mean(h.seconds):.3f} | {np.mean(h.nfe):.0f} "
            f"| {_integration_error(model, ts):.1e} | {model.feature_sparsity:.0%} | {held['train']:.4f} "
            f"| {held['s1d1']:.4f} | {held['s2d1']:.4f} | {held['s3d6']:.4f} |",
            flush=True,
        )


def _with_and_without(args: argparse.Namespace, name: str, flag: str) -> tuple[float, float]:
    """Seconds per iteration of an iteration-section variant on the CPU with ``flag`` set, then without."""
    spec = s1d2_spec(VARIANTS[name], args.iters, "cpu", args.threads)
    with_flag, without = (run_isolated({**spec, flag: value})["s_per_iter"] for value in (True, False))
    return with_flag, without


def section_kernels(args: argparse.Namespace) -> None:
    """oneDNN for the grouped first layer; torch.compile of the field; bfloat16 for the grouped product."""
    print("\n## Kernels: oneDNN (helps), torch.compile and bfloat16 (do not)\n")
    print("The grouped first layer's products (per-gene networks, GroupLasso) through torch's default BLAS")
    print(f"and through oneDNN (scnode's default above {layers.ONEDNN_MIN_WEIGHTS} weights on the CPU), s1d2,")
    print(f"median over {args.iters} iterations after 2 warm-up ones.\n")
    print("| variant | device | BLAS s / iteration | oneDNN s / iteration | speed-up |")
    print("|---|---|---|---|---|")
    for name in ("PathReg, per gene (8), 100 bins", "GroupLasso (8), 100 bins"):
        blas, onednn = _with_and_without(args, name, "blas")
        print(f"| {name} | {device_label('cpu', args.threads)} | {blas:.3f} | {onednn:.3f} | {blas / onednn:.1f}x |")
    print("\ntorch.compile (inductor, default options) of the field's forward (`scnode.core.fields.MLP.forward`),")
    print(f"s1d2, median over {args.iters} iterations after 2 warm-up ones (the first includes compilation).\n")
    print("| variant | device | eager s / iteration | compiled s / iteration |")
    print("|---|---|---|---|")
    for name in ("PathReg, shared 32x32 MLP, every cell", "PathReg, per gene (8), 100 bins"):
        compiled, eager = _with_and_without(args, name, "compile")
        print(f"| {name} | {device_label('cpu', args.threads)} | {eager:.3f} | {compiled:.3f} |", flush=True)
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    x, w = torch.randn(3, 529, generator=gen), torch.randn(529 * 8, 529, generator=gen)
    xb, wb = x.bfloat16(), w.bfloat16()

    def per_call(fn, n: int = 20 if args.quick else 400) -> float:
        for _ in range(10):
            fn()
        start = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - start) / n * 1e6

    def autocast() -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return x @ w.T

    ref = x @ w.T
    rel = float(((xb @ wb.T).float() - ref).norm() / ref.norm())
    products = layers.WeightGradients()  # scnode's own product: oneDNN where torch has it, the weight packed once
    products.collect(w)
    rel32 = float((products.product(x, w) - ref).norm() / ref.norm())
    print("\nGroupLasso's grouped first-layer product (3 states x 529 genes -> 529 x 8 hidden units), one call:\n")
    print("| precision | microseconds | relative error vs float32 |")
    print("|---|---|---|")
    print(f"| float32 (torch's default BLAS) | {per_call(lambda: x @ w.T):.0f} | 0 |")
    label = "float32 through oneDNN (weight packed once)" if products.onednn else "float32 (no oneDNN in this torch)"
    print(f"| {label} | {per_call(lambda: products.product(x, w)):.0f} | {rel32:.1e} |")
    print(f"| bfloat16 weights and states | {per_call(lambda: xb @ wb.T):.0f} | {rel:.1e} |")
    print(f"| float32 weights under torch.autocast(bfloat16) | {per_call(autocast):.0f} | {rel:.1e} |")


# ----------------------------------------------------------------------------- whole-transcriptome scale
SWEEP_GENES = [529, 1000, 2000, 5000, 10_000]
SWEEP_ALL_GENES_MAX = 2000
"""Beyond this, every gene a candidate regulator is not measured: at 5000 genes its first layer alone
(5000 x 8 x 5000 weights, with gates, gradients and Adam's moments) needs about 8 GB."""
REGULATOR_SETS = ("TF list among the genes", "10 % of the genes", "every gene")
SWEEP_WHOLE_GENES = (529, 2000)
"""Sizes with a whole-fit row; every gene a candidate regulator only at the first (at 2000 genes a whole
400-iteration fit of it takes about 17 minutes)."""
GENE_FIELDS = {
    "per gene (default)": {},
    "per gene, pair gates": {"settings": {"model_kwargs": {"gates": "pairs"}}},
    "per gene, bfloat16 gradients": {"settings": {"fit_kwargs": {"gradient_precision": "bfloat16"}}},
    "shared 32x32 MLP": {"settings": {"field": "shared"}},
}
"""The gene sweep's fields (``--fields``): the default per-gene field (one gate per first-layer weight),
the same with one gate per (target, regulator) pair (``gates="pairs"``), the same with its first
layer's backward products in bfloat16 (``fit_kwargs={"gradient_precision": "bfloat16"}``), and the
paper's shared MLP."""
SWEEP_LAM = 0.03
"""The sweep's fixed penalty weight (a fit that keeps most edges, as the search's first fits do)."""
FULL_FIT_GENES = (529, 2000)


def noisy_copies(path: Path, n_genes: int, seed: int = 0) -> None:
    """Write donor s1d2 widened to ``n_genes`` genes to ``path``: its 529 genes, then noisy copies of them.

    Copy ``k`` of gene ``g`` is named ``g_ck`` and is ``g``'s expression plus Gaussian noise of 10 % of
    its standard deviation. A copy of a transcription factor counts as one in the TF list.
    """
    adata = scn.datasets.hematopoiesis(donor="s1d2")
    x = np.asarray(adata.X, dtype=np.float32)
    rng = np.random.default_rng(seed)
    blocks, names = [x], list(adata.var_names)
    k = 0
    while len(names) < n_genes:
        k += 1
        n = min(x.shape[1], n_genes - len(names))
        noise = rng.normal(0.0, 1.0, (x.shape[0], n)).astype(np.float32) * (0.1 * x[:, :n].std(0) + 1e-3)
        blocks.append(x[:, :n] + noise)
        names += [f"{g}_c{k}" for g in adata.var_names[:n]]
    wide = anndata.AnnData(np.hstack(blocks), obs=adata.obs[["dpt_pseudotime", "lineage"]].copy())
    wide.var_names = names
    wide.write_h5ad(path)


@contextlib.contextmanager
def widened(n_genes: int) -> Iterator[tuple[Path, list[str]]]:
    """Yield the path of :func:`noisy_copies` of ``n_genes`` genes (a temporary file) and its gene names."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s1d2_wide.h5ad"
        noisy_copies(path, n_genes)
        yield path, list(anndata.read_h5ad(path, backed="r").var_names)


def sweep_regulators(names: list[str], which: str, seed: int = 0) -> list[str] | None:
    """The regulator list of a sweep row: TFs (copies included), a random 10 %, or ``None`` (every gene)."""
    if which == "every gene":
        return None
    if which == "10 % of the genes":
        rng = np.random.default_rng(seed)
        return [names[i] for i in np.sort(rng.permutation(len(names))[: len(names) // 10])]
    tfs = set(scn.datasets.tf_list("human"))
    return [g for g in names if g.split("_c")[0] in tfs]


def _sweep_spec(path: Path, n_genes: int, regulators: list[str] | None, args: argparse.Namespace, **extra) -> dict:
    settings = {"lam": SWEEP_LAM, "regulators": regulators, **extra.pop("settings", {})}
    spec = {"data": str(path), "genes": n_genes, "settings": settings, "defaults": True, "threads": args.threads}
    return {**spec, **extra}


def section_genes(args: argparse.Namespace) -> None:
    """The default field's and the shared MLP's cost per iteration from 529 to 10,000 genes."""
    genes = args.genes or (SWEEP_GENES[:2] if args.quick else SWEEP_GENES)
    n_whole = 6 if args.quick else WHOLE_ITERS
    whole_genes = SWEEP_WHOLE_GENES if args.whole_genes is None else tuple(args.whole_genes)
    with widened(max(genes)) as (path, names):
        print("\n## Whole-transcriptome scale: the default field from 529 to 10,000 genes\n")
        print(
            "Donor s1d2 (3 lineages) widened with noisy copies of its 529 genes; `fit_sparse_ode` with its\n"
            f"defaults (one network of 8 units per gene with input gates and decay, 100 bins, windows of 10\n"
            f"bins, 32 per iteration) at a fixed lam = {SWEEP_LAM}. 'start': median over {args.iters} iterations\n"
            f"after 2 warm-up ones from the initial weights; 'whole fit': the mean over a whole {n_whole}-\n"
            "iteration fit (the field's solver steps grow as it leaves its initial weights). Peak memory:\n"
            "the process's maximum resident set. Regulators: the human TF list among the genes (a copy of a\n"
            "TF counts as one; 130 of the 529 genes are TFs), a random 10 % of the genes, or every gene.\n"
            "'pair gates': the default field with one gate per (target, regulator) pair shared by its 8\n"
            "units (`model_kwargs={'gates': 'pairs'}`) instead of one per first-layer weight.\n"
        )
        print(
            "| field | regulators | genes | candidate edges | s / iteration (start) | evaluations | "
            "s / iteration (whole fit) | evaluations (whole) | peak memory (MB) | growth from 529 (start; whole) |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for device in devices(args.devices):
            for field_name in args.fields:
                extra = GENE_FIELDS[field_name]
                for which in args.regulators:
                    base = None
                    for g in genes:
                        if which == "every gene" and g > SWEEP_ALL_GENES_MAX:
                            continue
                        regs = sweep_regulators(names[:g], which)
                        spec = _sweep_spec(path, g, regs, args, device=device, iters=args.iters, **extra)
                        r = run_isolated(spec)
                        w = None
                        # every gene an input: by default a whole fit at the first size only (2000 takes ~15 min)
                        first_only = regs is None and args.whole_genes is None
                        if g in whole_genes[: 1 if first_only else None] or (args.quick and args.whole_genes is None):
                            w = run_isolated({**spec, "iters": n_whole, "whole": True})
                        edges = g * (g if regs is None else len(regs))
                        if base is None:
                            base = (r["s_per_iter"], None if w is None else w["s_mean"])
                        growth = f"{r['s_per_iter'] / base[0]:.1f}x"
                        if w is not None and base[1] is not None:
                            growth += f"; {w['s_mean'] / base[1]:.1f}x"
                        peak = max(r["peak_mb"], 0 if w is None else w["peak_mb"])
                        whole = ("—", "—") if w is None else (f"{w['s_mean']:.3f}", f"{w['nfe_mean']:.0f}")
                        label = "all" if regs is None else len(regs)
                        print(
                            f"| {field_name} | {which} ({label}) | {g} | {edges:,} | {r['s_per_iter']:.3f} "
                            f"| {r['nfe']:.0f} | {whole[0]} | {whole[1]} | {peak:.0f} | {growth} |",
                            flush=True,
                        )
            print(
                f"\nAt 529 genes the authors' implementation takes {REFERENCE_S_PER_ITER} s per iteration "
                "(every gene an input, every cell a time point, 2 CPU threads)."
            )


GENES_FIT_FIELDS = ("per gene (default)", "per gene, pair gates")
"""The whole-fit section's fields (those among ``--fields``): the default call and the same with pair gates."""


def section_genes_fit(args: argparse.Namespace) -> None:
    """Wall time of whole default fits (lam search included) at 529 and 2000 genes with a regulator list.

    The random 10 % at both sizes; the TF list at the first size only (at 2000 genes a quarter of the
    copies are TFs: about 25 minutes on 2 CPU cores). For each per-gene field among ``--fields`` and
    each of these lists among ``--regulators``; ``--genes`` replaces the sizes; ``--fit-iter`` gives
    every fit of the call that many iterations (its own schedule shortened: the whole call's memory at
    sizes whose full time would take hours).
    """
    genes = args.genes or ((100, 200) if args.quick else FULL_FIT_GENES)
    lists = [("10 % of the genes", genes), ("TF list among the genes", genes[:1])]
    lists = [(which, sizes) for which, sizes in lists if which in args.regulators]
    with widened(max(genes)) as (path, names):
        print("\n## Whole default fits, lam search included\n")
        print(
            "`scn.tl.fit_sparse_ode(adata, time_key=..., lineage_key=..., regulators=...)` with nothing else\n"
            "(pair gates: and `model_kwargs={'gates': 'pairs'}`), on donor s1d2 widened with noisy copies (as in\n"
            "the sweep above); one fresh process per fit.\n"
        )
        if args.fit_iter:
            print(f"Every fit with `n_iter={args.fit_iter}` (a short schedule: memory, not the fit's result).\n")
        if args.search_dir is not None:
            print(
                f"Each call keeps its search's fits in `{args.search_dir}`: a call run again after a stop reads back\n"
                "the fits made before; its wall time then adds their own fitting time (said in brackets).\n"
            )
        print(
            "| field | regulators | genes | wall time (min) | peak memory (MB) | lam | edges | median regulators "
            "| train MSE | fits |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for device in devices(args.devices):
            for field_name in [f for f in GENES_FIT_FIELDS if f in args.fields]:
                extra = GENE_FIELDS[field_name].get("settings", {})
                for which, sizes in lists:
                    for g in sizes:
                        regs = sweep_regulators(names[:g], which)
                        settings = {"regulators": regs, **extra}
                        spec = {"data": str(path), "genes": g, "settings": settings, "full": True}
                        spec.update(device=device, threads=args.threads, iters=0)
                        if args.search_dir is not None:
                            settings["search_dir"] = str(args.search_dir)
                        if args.quick or args.fit_iter:  # a short schedule: the pipeline's memory, not a fit
                            spec["settings"]["n_iter"] = args.fit_iter or 4
                        r = run_isolated(spec)
                        minutes = f"{(r['wall_s'] + r['read_back_s']) / 60:.1f}"
                        if r["read_back"]:
                            minutes += f" ({r['read_back']} fits read back: {r['read_back_s'] / 60:.1f} min of them)"
                        cells = [field_name, f"{which} ({len(regs)})", g, minutes]
                        cells += [f"{r['peak_mb']:.0f}", f"{r['lam']:.3g}", f"{r['n_edges']:,}"]
                        cells += [f"{r['median_regulators']:.0f}", f"{r['train_mse']:.4f}", r["fits"]]
                        print("| " + " | ".join(map(str, cells)) + " |", flush=True)


def section_cells(args: argparse.Namespace) -> None:
    """Preprocessing of 100,000 cells x 2000 genes (sparse X, 10 % non-zero, 3 lineages)."""
    n_cells, n_genes = (10_000, 200) if args.quick else (100_000, 2000)
    cmd = [sys.executable, __file__, "--cells", json.dumps([n_cells, n_genes])]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"\n## Cells: preprocessing {n_cells:,} cells x {n_genes:,} genes (sparse X, 10 % non-zero)\n")
    print("`scn.pp.prepare_trajectories(adata, lineage_key=..., n_bins=100, x0_cells=5)` in a fresh process;")
    print("peak memory: the process's maximum resident set, the AnnData itself included.\n")
    print("| cells | genes | process before (MB) | wall time (s) | peak memory (MB) | trajectories |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {n_cells:,} | {n_genes:,} | {r['data_mb']:.0f} | {r['wall_s']:.1f} | {r['peak_mb']:.0f} | {r['shapes']} |"
    )


def measure_cells(n_cells: int, n_genes: int) -> dict:
    """Build the sparse AnnData of :func:`section_cells` and time its preprocessing (this process)."""
    from scipy import sparse

    rng = np.random.default_rng(0)
    per_cell = n_genes // 10
    cols = np.sort(rng.integers(0, n_genes, size=(n_cells, per_cell), dtype=np.int32), axis=1).ravel()
    values = rng.gamma(2.0, 1.0, n_cells * per_cell).astype(np.float32)
    x = sparse.csr_matrix((values, cols, np.arange(0, n_cells * per_cell + 1, per_cell)), shape=(n_cells, n_genes))
    x.sum_duplicates()
    obs = pd.DataFrame(
        {"dpt_pseudotime": rng.random(n_cells), "lineage": pd.Categorical(rng.choice(["a", "b", "c"], n_cells))},
        index=[f"c{i}" for i in range(n_cells)],
    )
    adata = anndata.AnnData(x, obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(n_genes)]))
    data_mb = _peak_memory_mb("cpu")
    start = time.perf_counter()
    ts = scn.pp.prepare_trajectories(adata, lineage_key="lineage", n_bins=100, x0_cells=5)
    wall = time.perf_counter() - start
    shapes = ", ".join(f"{len(t)} x {v.shape[1]}" for t, v in zip(ts.times, ts.values, strict=True))
    return {"wall_s": wall, "peak_mb": _peak_memory_mb("cpu"), "data_mb": data_mb, "shapes": shapes}


SECTIONS = {
    "iteration": section_iteration,
    "whole": section_whole,
    "ratio": section_ratio,
    "scaling": section_scaling,
    "fit": section_fit,
    "binning": section_binning,
    "reach": section_reach,
    "solvers": section_solvers,
    "kernels": section_kernels,
    "genes": section_genes,
    "genes_fit": section_genes_fit,
    "cells": section_cells,
}


def main() -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", nargs="*", default=list(SECTIONS), choices=list(SECTIONS))
    parser.add_argument("--devices", nargs="*", default=["cpu", "cuda"], choices=["cpu", "cuda"])
    parser.add_argument("--iters", type=int, default=None, help="timed iterations per measurement (default 20)")
    parser.add_argument("--pairs", type=int, default=None, help="interleaved pairs of the ratio section (default 10)")
    parser.add_argument(
        "--fields", nargs="*", default=list(GENE_FIELDS), choices=list(GENE_FIELDS), help="genes section"
    )
    parser.add_argument(
        "--regulators", nargs="*", default=list(REGULATOR_SETS), choices=list(REGULATOR_SETS), help="genes section"
    )
    parser.add_argument(
        "--genes", nargs="*", type=int, default=None, help="sizes of the genes and genes_fit sections (default: all)"
    )
    parser.add_argument(
        "--whole-genes",
        nargs="*",
        type=int,
        default=None,
        help="sizes with a whole-fit row in the genes section (default 529 2000, with every gene an input 529 only; "
        "none given: start rows only)",
    )
    parser.add_argument(
        "--fit-iter",
        type=int,
        default=None,
        help="genes_fit: n_iter of every fit (default: the call's own); a short schedule measures the whole call's "
        "memory (search, fits kept on disk, path score) where its full time would take hours",
    )
    parser.add_argument(
        "--search-dir",
        type=Path,
        default=None,
        help="genes_fit: keep each call's penalty-search fits in this directory (fit_sparse_ode's search_dir): a "
        "call stopped before its end resumes when run again, and its row adds the fitting time of the fits it "
        "read back to its own wall time (a call of several hours in more than one run)",
    )
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="torch CPU threads")
    parser.add_argument(
        "--quick", action="store_true", help="a few iterations, two gene sizes, one process (checks the script)"
    )
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--cells", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(json.loads(args.measure))))
        return
    if args.cells:
        print(json.dumps(measure_cells(*json.loads(args.cells))))
        return
    global IN_PROCESS
    IN_PROCESS = args.quick
    if args.iters is None:
        args.iters = 2 if args.quick else 20
    if args.pairs is None:
        args.pairs = 2 if args.quick else 10
    start = time.perf_counter()
    print("# Speed and scale (`benchmarks/speed.py`)\n")
    print(command("speed.py"))
    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}"
        f"{', GPU ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else ''}; {date.today().isoformat()}."
    )
    print(f"Reference: the authors' implementation, {REFERENCE_S_PER_ITER} s per iteration (s1d2, 2 CPU threads).")
    for name in args.sections:
        SECTIONS[name](args)
    print(f"\n{total(start)}")


if __name__ == "__main__":
    main()
