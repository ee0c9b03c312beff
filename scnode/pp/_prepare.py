from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from ._states import state_bin_times

logger = logging.getLogger("scnode")

SCALINGS = ("minmax", "zscore", "none")
SCALE_BY = ("lineage", "all")
BINNINGS = ("time", "states")
SMALL_LINEAGE_CELLS = 100
"""``min_cells="auto"``: the cell count below which a lineage may be left out, without bins (with bins: ``n_bins``)."""
SMALL_LINEAGE_SHARE = 0.05
"""``min_cells="auto"``: such a lineage is left out when it also has less than this share of the largest one's cells."""
VELOCITY_POINTS, VELOCITY_DEGREE = 5, 3
"""The initial velocity is the slope at the first time of a cubic fitted to a lineage's first 5 time
points (least squares): on the paper's second-order system, sampled every 0.2 time units, its error
is 2 % of the velocities' size (a quadratic through the first 5 points: 17 %)."""


@dataclass
class TrajectorySet:
    """Trajectories prepared from an AnnData for fitting (all arrays in scaled units).

    Attributes
    ----------
    genes
        Fitted variables, in order.
    lineages
        Trajectory names.
    times
        Per lineage, sorted distinct (scaled) times.
    values
        Per lineage, ``(len(times), n_genes)`` scaled values.
    x0
        ``(n_lineages, n_genes)`` initial states (mean of the first ``x0_cells`` cells).
    v0
        ``(n_lineages, n_genes)`` initial velocities (scaled units per scaled time), estimated from
        each lineage's first time points (:func:`initial_velocity`); second-order models start from them.
    x0_sem
        ``(n_lineages, n_genes)`` standard errors of the initial states: the standard deviation of the
        first ``2 * x0_cells`` cells over ``sqrt(x0_cells)`` (how far a new sample's start may lie).
    center, scale
        Per lineage, ``(n_genes,)``: raw value = scaled * scale + center.
    time_offset, time_scale
        Per lineage: raw time = scaled * time_scale + time_offset.
    cell_lineage
        ``(n_obs,)`` lineage index of each cell, -1 for cells not used (other lineage, trimmed).
    cell_time
        ``(n_obs,)`` scaled time of each used cell (NaN otherwise).
    params
        The preprocessing settings.
    held
        ``(n_lineages, n_genes)`` booleans, or ``None`` without perturbations: the genes perturbed in
        each trajectory (``perturbation_key``), held at their observed level while it is fitted.
    """

    genes: list[str]
    lineages: list[str]
    times: list[np.ndarray]
    values: list[np.ndarray]
    x0: np.ndarray
    center: list[np.ndarray]
    scale: list[np.ndarray]
    time_offset: np.ndarray
    time_scale: np.ndarray
    cell_lineage: np.ndarray
    cell_time: np.ndarray
    params: dict = field(default_factory=dict)
    x0_sem: np.ndarray | None = None
    v0: np.ndarray | None = None
    held: np.ndarray | None = None

    def unscale(self, lineage: int, values: np.ndarray) -> np.ndarray:
        """Scaled values of ``lineage`` back to the data's units."""
        return values * self.scale[lineage] + self.center[lineage]

    def held_rows(self, lineage: int, n: int) -> np.ndarray | None:
        """Return the perturbed genes of ``lineage`` as ``n`` rows of :attr:`held` (``None`` when it is unperturbed)."""
        if self.held is None or not self.held[lineage].any():
            return None
        return np.repeat(self.held[lineage : lineage + 1], n, axis=0)


def initial_velocity(times: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Slope at ``times[0]`` of a polynomial fitted to the first time points (see :data:`VELOCITY_POINTS`)."""
    n = min(VELOCITY_POINTS, len(times))
    t = np.asarray(times[:n], float) - float(times[0])
    basis = np.vander(t / t[-1], min(VELOCITY_DEGREE, n - 1) + 1, increasing=True)  # t / t[-1]: well conditioned
    coef, *_ = np.linalg.lstsq(basis, np.asarray(values[:n], float), rcond=None)
    return coef[1] / t[-1]


def require_unique_var_names(adata: AnnData) -> None:
    """Raise a ValueError naming the repeated names when ``adata.var_names`` are not unique."""
    if not adata.var_names.is_unique:
        dup = adata.var_names[adata.var_names.duplicated()].unique()
        raise ValueError(
            f"adata.var_names are not unique ({list(dup[:5])}{' ...' if len(dup) > 5 else ''} repeat); "
            "call adata.var_names_make_unique() first."
        )


def _select_genes(adata: AnnData, genes: Sequence[str] | str | None) -> list[str]:
    require_unique_var_names(adata)
    if adata.n_vars == 0:
        raise ValueError("adata has no genes (n_vars is 0).")
    if genes is None:
        return list(adata.var_names)
    if isinstance(genes, str):
        if genes not in adata.var:
            raise KeyError(f"genes={genes!r} is neither a list of genes nor a column of adata.var.")
        col = adata.var[genes]
        if col.dtype != bool:
            raise ValueError(f"adata.var[{genes!r}] must be boolean to select genes, got {col.dtype}.")
        chosen = list(adata.var_names[col.to_numpy()])
    else:
        chosen = [str(g) for g in genes]
        missing = [g for g in chosen if g not in adata.var_names]
        if missing:
            raise KeyError(
                f"Unknown gene(s) {missing[:10]}{' ...' if len(missing) > 10 else ''} (not in adata.var_names)."
            )
    if len(set(chosen)) != len(chosen):
        raise ValueError("The gene list has duplicates.")
    if not chosen:
        raise ValueError("No genes selected.")
    return chosen


def _matrix(adata: AnnData, layer: str | None, genes: list[str]) -> np.ndarray | sparse.csr_matrix:
    """Return the selected genes' values as float64: a dense array, or CSR rows for sparse data (never densified)."""
    if layer is not None and layer not in adata.layers:
        raise KeyError(f"adata.layers has no layer {layer!r}; available: {list(adata.layers)}.")
    idx = adata.var_names.get_indexer(genes)
    x = adata.X if layer is None else adata.layers[layer]
    if x is None:
        raise ValueError("adata.X is empty; pass layer=.")
    x = x[:, idx]
    x = sparse.csr_matrix(x) if sparse.issparse(x) else np.asarray(x)
    where = "adata.X" if layer is None else f"adata.layers[{layer!r}]"
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise ValueError(f"{where} is not numeric (dtype {x.dtype}).")
    x = x.astype(float)
    if not np.isfinite(x.data if sparse.issparse(x) else x).all():
        raise ValueError(f"{where} has NaN or infinite values in the selected genes.")
    return x


def _dense(x: np.ndarray | sparse.csr_matrix) -> np.ndarray:
    return x.toarray() if sparse.issparse(x) else x


def _group_means(x: np.ndarray | sparse.csr_matrix, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the sorted distinct ``keys`` and the mean row of ``x`` for each, ``(groups, genes)``, dense.

    One sparse averaging matrix times ``x``: sparse cells are never densified, and dense ones are
    averaged in one product (100k cells x 2000 genes: seconds).
    """
    groups, inverse = np.unique(keys, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(groups))
    average = sparse.csr_matrix(
        (1.0 / counts[inverse], (inverse, np.arange(len(keys)))), shape=(len(groups), len(keys))
    )
    return groups, np.asarray(_dense(average @ x))


def prepare_trajectories(
    adata: AnnData,
    *,
    time_key: str = "dpt_pseudotime",
    lineage_key: str | None = None,
    layer: str | None = None,
    genes: Sequence[str] | str | None = None,
    scaling: str = "minmax",
    scale_time: bool = True,
    scale_by: str = "lineage",
    reference: dict | None = None,
    trim_start: int = 0,
    trim_end: int = 0,
    n_bins: int | None = None,
    x0_cells: int = 1,
    perturbation_key: str | None = None,
    binning: str = "time",
    min_cells: int | str = 0,
) -> TrajectorySet:
    """Turn cells ordered by (pseudo)time into trajectories that share one vector field.

    Per lineage: cells are sorted by ``time_key``; the first ``trim_start`` and last ``trim_end``
    cells are dropped (the paper drops 10 and 20); each gene is scaled (``"minmax"`` to [0, 1] per
    gene per lineage as in the paper, ``"zscore"``, or ``"none"``; over all lineages together with
    ``scale_by="all"``); time is scaled to [0, 1] (``scale_time``); cells with identical times are
    averaged, or cells are averaged in ``n_bins`` equal-width time bins placed at the bins' centres
    (with ``scale_time``, all lineages then share one time grid, which makes the batched solve much
    cheaper); the initial state is the mean of the first ``x0_cells`` cells, the initial velocity
    the slope of a cubic through the first 5 time points.

    Parameters
    ----------
    adata
        Cells in ``obs``, genes in ``var``. Not modified.
    time_key
        Numeric column of ``obs`` with the (pseudo)time.
    lineage_key
        Categorical column of ``obs``: one trajectory per category (cells without a category, NaN,
        are left out); ``None`` for one trajectory.
    layer
        Layer to read instead of ``X`` (dense or sparse).
    genes
        Genes to fit: a list of names, the name of a boolean ``var`` column (e.g.
        ``"highly_variable"``), or ``None`` for all.
    scaling
        ``"minmax"``, ``"zscore"`` or ``"none"``.
    scale_time
        Scale each lineage's time to [0, 1]. With ``scale_by="all"``: start each lineage at 0 and
        measure time in the unit in which the trajectories' rates are of order one (their rms velocity
        over their rms acceleration, from finite differences; one over the angular frequency of a
        harmonic motion), so that a field of small weights can express them.
    scale_by
        ``"lineage"``: each lineage has its own gene scaling (and time scale), the paper's; ``"all"``:
        one scaling for every lineage, so that trajectories of one system (e.g. a second-order system
        from several initial states) keep one vector field in scaled units.
    reference
        With ``scale_by="all"``: the scaling to use (``{"center": ..., "scale": ..., "time_scale": ...}``,
        as recorded in the returned ``params["reference"]``) instead of computing it from ``adata``:
        new trajectories of a fitted system are scaled as its training data were.
    trim_start, trim_end
        Cells dropped at the start and end of each lineage after sorting.
    n_bins
        Average cells in this many bins per trajectory (``None``: average only cells with identical
        times); how, ``binning`` says.
    binning
        With ``n_bins``: ``"time"``, equal-width time bins, each placed at its centre (empty bins are
        skipped); ``"states"``, the trajectory's cells clustered by their scaled expression (k-means,
        on 50 principal components beyond 50 genes), each cluster placed at its cells' mean time
        (:mod:`scnode.pp._states`): a noisy pseudotime then scatters a state's cells in time without
        averaging distinct states together. A trajectory whose cells all share one state (a knockout
        that changes nothing) is binned by time: one state bin would leave it no trajectory.
    x0_cells
        Number of first cells whose mean is the initial state.
    min_cells
        Lineages with fewer cells are left out, with a warning that names them (``0``: keep every
        lineage). ``"auto"``: fewer than ``n_bins`` (100 without bins) and fewer than 5 % of the
        largest lineage's cells, a stray group beside real lineages (e.g. two of ``sc.tl.dpt``'s
        groups on paul15 held 29 and 8 of 2730 cells). Such a lineage's bins hold single cells, and
        fitting their noise makes the field rough: on paul15 (2000 genes) each fit took 3x as long.
    perturbation_key
        Column of ``obs`` naming the gene(s) perturbed in each cell (a knockout, knockdown or
        over-expression; several joined by ``"+"``); missing values and the labels of
        :data:`CONTROL_LABELS` mark unperturbed cells. Each lineage's cells of each perturbation
        form their own trajectory (named ``"<lineage> <perturbation>"``), scaled with its lineage
        (gene scaling and time over all its cells), and :attr:`TrajectorySet.held` marks its
        perturbed genes, which the fit holds at their observed level.

    Returns
    -------
    A :class:`TrajectorySet`.
    """
    if time_key not in adata.obs:
        raise KeyError(f"adata.obs has no time column {time_key!r}; available: {list(adata.obs.columns)}.")
    if lineage_key is not None and lineage_key not in adata.obs:
        if lineage_key in adata.obsm:
            raise KeyError(
                f"obs[{lineage_key!r}] should name each cell's lineage, and {lineage_key!r} is in adata.obsm (a cells "
                f"x lineages membership?): scn.pp.split_lineages(adata, {lineage_key!r}) gives each cell one copy per "
                "lineage it belongs to, in obs['lineage']."
            )
        raise KeyError(f"adata.obs has no lineage column {lineage_key!r}; available: {list(adata.obs.columns)}.")
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}.")
    if scale_by not in SCALE_BY:
        raise ValueError(f"scale_by must be one of {SCALE_BY}, got {scale_by!r}.")
    if min(trim_start, trim_end) < 0 or x0_cells < 1 or (n_bins is not None and n_bins < 3):
        raise ValueError("Need trim_start, trim_end >= 0, x0_cells >= 1 and n_bins >= 3 (or None).")
    if not (isinstance(min_cells, str) and min_cells == "auto") and (
        isinstance(min_cells, bool | str) or not isinstance(min_cells, int | np.integer) or min_cells < 0
    ):
        raise ValueError(f"min_cells must be 'auto' or an integer >= 0, got {min_cells!r}.")
    if binning not in BINNINGS:
        raise ValueError(f"binning must be one of {BINNINGS}, got {binning!r}.")
    if binning == "states" and n_bins is None:
        raise ValueError("binning='states' clusters the cells into n_bins states: give n_bins (e.g. 100).")
    if adata.n_obs == 0:
        raise ValueError("adata has no cells (n_obs is 0); there is no trajectory to fit.")
    t_all = _cell_times(adata.obs[time_key], time_key)
    chosen = _select_genes(adata, genes)
    x_all = _matrix(adata, layer, chosen)
    if lineage_key is None:
        labels = pd.Categorical(np.zeros(adata.n_obs, int)).rename_categories(["all"])
    else:
        labels = pd.Categorical(adata.obs[lineage_key])
        if (unlabelled := int(labels.isna().sum())) > 0:
            msg = "scnode: %d of %d cells have no lineage in obs[%r] and are not fitted."
            logger.info(msg, unlabelled, len(labels), lineage_key)
    labels = _without_small_lineages(labels, min_cells, n_bins, lineage_key)
    lineage_of, held_of = {str(c): str(c) for c in labels.categories}, {}
    if perturbation_key is not None:
        labels, lineage_of, held_of = _perturbed_trajectories(
            adata, labels, perturbation_key, chosen, named=lineage_key is not None
        )
    shared = None
    if scale_by == "all" and reference is not None:
        shared = (np.asarray(reference["center"], float), np.asarray(reference["scale"], float))
        shared += (float(reference["time_scale"]),)
        if shared[0].shape != (len(chosen),) or shared[1].shape != (len(chosen),):
            raise ValueError(
                f"reference has {shared[0].shape} centres and {shared[1].shape} scales for {len(chosen)} genes."
            )
    elif scale_by == "all":
        shared = _shared_scaling(x_all, t_all, labels, trim_start, trim_end, scaling)
    own = scaling if shared is None and scale_by == "lineage" else "none"  # "all": the shared one
    lineage_scaling = _lineage_scaling(x_all, t_all, labels, lineage_of, trim_start, trim_end, own)
    names, times, values, x0s, v0s, sems, centers, scales, offsets, tscales = ([] for _ in range(10))
    cell_lineage = np.full(adata.n_obs, -1)
    cell_time = np.full(adata.n_obs, np.nan)
    for name, idx in _lineage_cells(labels, t_all, trim_start, trim_end):
        t, x = t_all[idx], x_all[idx]
        if len(np.unique(t)) < 3:
            raise ValueError(
                f"Lineage {name!r} has {len(np.unique(t))} distinct time(s) after trimming; at least 3 are needed."
            )
        center, scale, t_first, t_last = lineage_scaling[lineage_of[str(name)]]
        offset, tscale = (t_first, t_last - t_first) if scale_time else (0.0, 1.0)
        if shared is not None:
            center, scale = shared[0], shared[1]
            tscale = shared[2] if scale_time else 1.0
        ts = (t - offset) / tscale
        by_state = n_bins is not None and binning == "states"
        if n_bins is None:
            keys = ts
        elif by_state:  # each cell keyed by its cluster's mean time
            keys = state_bin_times(x, center, scale, ts, n_bins)
        else:
            keys = _time_bins(ts, n_bins)
        groups, means = _group_means(x, keys)  # scaling is affine: the scaled means are the means' scaled
        if by_state and len(groups) < 2:  # one state (a knockout that changes nothing): flat, in time bins
            logger.info("scnode: the cells of trajectory %r share one state; it is binned by time.", str(name))
            by_state = False
            groups, means = _group_means(x, _time_bins(ts, n_bins))
        if n_bins is None or by_state:
            mean_t = groups
        else:  # bin centres: every lineage's times lie on one grid, which keeps the batched solve cheap
            mean_t = ts[0] + (groups + 0.5) * (ts[-1] - ts[0]) / n_bins
        first = (_dense(x[: 2 * x0_cells]) - center) / scale
        lin = len(names)
        names.append(str(name))
        times.append(mean_t)
        values.append((means - center) / scale)
        x0s.append(first[:x0_cells].mean(0))
        v0s.append(initial_velocity(times[-1], values[-1]))
        sems.append(first.std(0) / np.sqrt(x0_cells))
        centers.append(center)
        scales.append(scale)
        offsets.append(offset)
        tscales.append(tscale)
        cell_lineage[idx] = lin
        cell_time[idx] = ts
    if not names:
        raise ValueError(
            f"No cell has a lineage: adata.obs[{lineage_key!r}] is missing (NaN) for all {adata.n_obs} cells."
        )
    params = {
        "time_key": time_key,
        "lineage_key": lineage_key,
        "layer": layer,
        "scaling": scaling,
        "scale_time": scale_time,
        "scale_by": scale_by,
        "reference": None
        if shared is None
        else {"center": shared[0].tolist(), "scale": shared[1].tolist(), "time_scale": shared[2]},
        "trim_start": trim_start,
        "trim_end": trim_end,
        "n_bins": n_bins,
        "x0_cells": x0_cells,
        "perturbation_key": perturbation_key,
        "binning": binning,
        "min_cells": min_cells,
    }
    return TrajectorySet(
        chosen,
        names,
        times,
        values,
        np.stack(x0s),
        centers,
        scales,
        np.asarray(offsets, float),
        np.asarray(tscales, float),
        cell_lineage,
        cell_time,
        params,
        np.stack(sems),
        np.stack(v0s),
        None if perturbation_key is None else np.stack([held_of.get(n, np.zeros(len(chosen), bool)) for n in names]),
    )


def _cell_times(column: pd.Series, key: str) -> np.ndarray:
    """Return ``obs[key]`` as floats, or raise naming how many cells lack a finite time and how to drop them."""
    t = pd.to_numeric(column, errors="coerce").to_numpy(float)
    text = column[np.isnan(t) & column.notna().to_numpy()]
    if len(text):
        raise ValueError(f"adata.obs[{key!r}] has non-numeric values, such as {str(text.iloc[0])!r}.")
    bad = ~np.isfinite(t)
    if bad.any():
        kinds = ", ".join(f"{n} {k}" for k, n in (("NaN", np.isnan(t).sum()), ("infinite", np.isinf(t).sum())) if n)
        raise ValueError(
            f"adata.obs[{key!r}] is not finite for {int(bad.sum())} of {len(t)} cells ({kinds}; diffusion "
            f"pseudotime is infinite for cells it cannot reach from its root). Fit the cells that have a time: "
            f"adata = adata[np.isfinite(adata.obs[{key!r}])].copy()."
        )
    return t


def _time_bins(t: np.ndarray, n_bins: int) -> np.ndarray:
    """Each cell (times ``t``, not all equal) keyed by its equal-width time bin, 0 to ``n_bins - 1``."""
    start = t.min()
    return np.minimum((t - start) / (t.max() - start) * n_bins, n_bins - 1).astype(int)


def _without_small_lineages(
    labels: pd.Categorical, min_cells: int | str, n_bins: int | None, key: str | None
) -> pd.Categorical:
    """``labels`` with the lineages of fewer than ``min_cells`` cells (see :func:`prepare_trajectories`) left out."""
    counts = pd.Series(labels).value_counts()
    counts = counts[counts > 0]
    if min_cells == "auto":
        bins = SMALL_LINEAGE_CELLS if n_bins is None else n_bins
        threshold = min(bins, SMALL_LINEAGE_SHARE * counts.max())
        fewer = f"fewer cells than the {bins} bins of a trajectory" if n_bins else f"fewer than {bins} cells"
        why = f"{fewer} and than 5 % of the largest lineage ({counts.max()} cells)"
    else:
        threshold, why = min_cells, f"fewer than min_cells={min_cells} cells"
    small = counts[counts < threshold]
    if small.empty:
        return labels
    named = ", ".join(f"{str(k)!r} ({v} cells)" for k, v in small.items())
    if len(small) == len(counts):
        raise ValueError(f"Every lineage of obs[{key!r}] has {why}: {named}. Lower min_cells (0 keeps every lineage).")
    warnings.warn(
        f"scnode: lineage(s) {named} of obs[{key!r}] are left out: {why}. Bins of single cells are noise, which "
        "makes every fit slower and rougher; pass min_cells=0 to keep them.",
        UserWarning,
        stacklevel=3,
    )
    return labels.remove_categories(list(small.index))


def _lineage_cells(labels: pd.Categorical, t: np.ndarray, trim_start: int, trim_end: int):
    """Yield each non-empty lineage's name and its cells' indices, sorted by time, after trimming."""
    for name in labels.categories:
        idx = np.flatnonzero(labels == name)
        if len(idx):
            yield name, idx[np.argsort(t[idx], kind="stable")][trim_start : len(idx) - trim_end]


CONTROL_LABELS = ("control", "ctrl", "non-targeting", "nontargeting", "unperturbed", "wt", "wildtype", "none", "")
"""Labels of ``perturbation_key`` (compared in lower case) that mark unperturbed cells, besides missing values."""


def _perturbed_trajectories(
    adata: AnnData, labels: pd.Categorical, key: str, genes: list[str], *, named: bool
) -> tuple[pd.Categorical, dict[str, str], dict[str, np.ndarray]]:
    """Split each lineage by ``obs[key]``: trajectory labels, each trajectory's lineage, its held genes.

    A perturbed trajectory is named ``"<lineage> <label>"``, or ``"<label>"`` when the lineages are
    not ``named`` (one trajectory of all cells).
    """
    if key not in adata.obs:
        raise KeyError(f"adata.obs has no perturbation column {key!r}; available: {list(adata.obs.columns)}.")
    raw = adata.obs[key]
    names = np.where(raw.isna().to_numpy(), "", raw.astype(str).str.strip().to_numpy()).astype(object)
    control = np.isin(np.char.lower(names.astype(str)), CONTROL_LABELS)
    position = {g: i for i, g in enumerate(genes)}
    held_of_label: dict[str, np.ndarray] = {}
    for label in sorted(set(names[~control])):
        parts = [p.strip() for p in str(label).split("+")]
        unknown = [p for p in parts if p not in position]
        if unknown:
            raise ValueError(
                f"adata.obs[{key!r}] perturbs {unknown} (label {label!r}), which are not among the fitted genes; "
                f"a perturbed gene must be fitted to be held (controls: missing values or one of {CONTROL_LABELS[:5]})."
            )
        mask = np.zeros(len(genes), bool)
        mask[[position[p] for p in parts]] = True
        held_of_label[str(label)] = mask
    lineage = np.asarray(labels.astype(object))
    trajectory = np.full(adata.n_obs, None, dtype=object)
    lineage_of: dict[str, str] = {}
    held_of: dict[str, np.ndarray] = {}
    for c in labels.categories:
        in_lineage = lineage == c
        lineage_of[str(c)] = str(c)
        trajectory[in_lineage & control] = str(c)
        for label, mask in held_of_label.items():
            cells = in_lineage & (names == label)
            if cells.any():
                name = f"{c} {label}" if named else label
                trajectory[cells] = name
                lineage_of[name], held_of[name] = str(c), mask
    order = [n for n in lineage_of if (trajectory == n).any()]
    return pd.Categorical(trajectory, categories=order), lineage_of, held_of


def _lineage_scaling(
    x: np.ndarray | sparse.csr_matrix,
    t: np.ndarray,
    labels: pd.Categorical,
    lineage_of: dict[str, str],
    trim_start: int,
    trim_end: int,
    scaling: str,
) -> dict[str, tuple[np.ndarray, np.ndarray, float, float]]:
    """Per lineage: gene centre and scale and first and last time over all its trajectories' cells (after trimming)."""
    cells: dict[str, list[np.ndarray]] = {}
    for name, idx in _lineage_cells(labels, t, trim_start, trim_end):
        cells.setdefault(lineage_of[str(name)], []).append(idx)
    out = {}
    for lineage, parts in cells.items():
        idx = np.concatenate(parts)
        center, scale = _gene_scaling(x[idx] if scaling != "none" else x[:0], scaling)
        first, last = (float(t[idx].min()), float(t[idx].max())) if len(idx) else (0.0, 1.0)
        out[lineage] = (center, scale, first, last)
    return out


def _gene_scaling(x: np.ndarray | sparse.csr_matrix, scaling: str) -> tuple[np.ndarray, np.ndarray]:
    """Return each gene's centre and scale (``scaling``; none for no cells); a constant gene gets scale 1."""
    if scaling == "minmax" and x.shape[0]:
        low, high = (np.ravel(_dense(m)) for m in (x.min(0), x.max(0)))
        center, scale = low, high - low
    elif scaling == "zscore" and sparse.issparse(x) and x.shape[0]:  # E[x^2] - E[x]^2: no dense copy
        center = np.ravel(x.mean(0))
        scale = np.sqrt(np.maximum(np.ravel(x.multiply(x).mean(0)) - center**2, 0.0))
    elif scaling == "zscore" and x.shape[0]:
        center, scale = x.mean(0), x.std(0)
    else:
        center, scale = np.zeros(x.shape[1]), np.ones(x.shape[1])
    return center, np.where(scale > 0, scale, 1.0)


def _shared_scaling(
    x: np.ndarray, t: np.ndarray, labels: pd.Categorical, trim_start: int, trim_end: int, scaling: str
) -> tuple[np.ndarray, np.ndarray, float]:
    """Return one gene scaling over all lineages' cells (after trimming) and a time unit (:func:`_rate_time_unit`)."""
    keep = [idx for _, idx in _lineage_cells(labels, t, trim_start, trim_end) if len(idx)]
    center, scale = _gene_scaling(x[np.concatenate(keep)] if keep else x[:0], scaling)
    return center, scale, _rate_time_unit([t[i] for i in keep], [x[i] for i in keep], center, scale)


RATE_BINS = 20
"""The time unit is measured on each lineage's means in at most this many equal-width time bins, so
that the noise of single cells does not pass for acceleration."""


def _rate_time_unit(
    times: list[np.ndarray], values: list[np.ndarray | sparse.csr_matrix], center: np.ndarray, scale: np.ndarray
) -> float:
    """Return the time unit in which the trajectories' rates are of order one: rms velocity over rms acceleration.

    From finite differences of each lineage's means in :data:`RATE_BINS` time bins, pooled over
    lineages and genes; for a harmonic motion it is one over its angular frequency. Falls back to the
    longest lineage's span when no lineage has three distinct times or nothing accelerates.
    ``values`` are each lineage's cells, unscaled; ``center`` and ``scale`` the gene scaling.
    """
    vel, acc, spans = [], [], []
    for t, v in zip(times, values, strict=True):
        span = float(t.max() - t.min()) if len(t) else 0.0
        spans.append(span)
        if len(np.unique(t)) < 3:
            continue
        keys = _time_bins(t, RATE_BINS)
        tt = _group_means(t[:, None], keys)[1][:, 0]
        vv = (_group_means(v, keys)[1] - center) / scale
        if len(tt) < 3:
            continue
        d1 = np.diff(vv, axis=0) / np.diff(tt)[:, None]
        vel.append(d1)
        acc.append(np.diff(d1, axis=0) / ((tt[2:] - tt[:-2]) / 2)[:, None])
    longest = max(spans, default=0.0)
    fallback = longest if longest > 0 else 1.0
    if not acc:
        return fallback
    rms_v, rms_a = (float(np.sqrt(np.mean(np.concatenate(a) ** 2))) for a in (vel, acc))
    return rms_v / rms_a if rms_a > 0 and rms_v > 0 else fallback
